"""Account access (RFC 8620 §1.6.2, §2, §3.6.2): granted, read-only and foreign accounts."""

from __future__ import annotations

from accounts.services import account_grant, account_revoke, primary_account
from tests.jmaptest.models import Note


def test_granted_account_appears_in_session_with_its_rights(jmap, other_jmap, user, other_user):
    before = other_jmap.session()
    account = primary_account(user)
    account_grant(account=account, user=other_user, may_write=False)
    after = other_jmap.session()
    assert after["state"] != before["state"]
    shared = after["accounts"][account.jmap_id]
    assert shared["isReadOnly"] is True and shared["isPersonal"] is True
    # The user's own primary account stays primary.
    assert account.jmap_id not in after["primaryAccounts"].values()
    account_revoke(account=account, user=other_user)
    assert account.jmap_id not in other_jmap.session()["accounts"]


def test_read_only_account_refuses_writes(notes, other_notes, user, other_user):
    notes.create(a={"title": "Mine"})
    account = primary_account(user)
    account_grant(account=account, user=other_user, may_write=False)
    reader = other_notes.client
    got = reader.call(
        "Note/get",
        {"accountId": account.jmap_id, "ids": None},
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    assert [item["title"] for item in got[1]["list"]] == ["Mine"]
    denied = reader.call(
        "Note/set",
        {"accountId": account.jmap_id, "create": {"x": {"title": "Theirs"}}},
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    assert denied == ["error", {"type": "accountReadOnly"}, "c0"]
    assert Note.objects.count() == 1


def test_writable_grant_allows_writes(notes, other_notes, user, other_user):
    account = primary_account(user)
    account_grant(account=account, user=other_user, may_write=True)
    response = other_notes.client.call(
        "Note/set",
        {"accountId": account.jmap_id, "create": {"x": {"title": "Shared"}}},
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    assert response[0] == "Note/set" and "x" in response[1]["created"]


def test_foreign_and_unknown_accounts_look_the_same(notes, other_user):
    foreign = primary_account(other_user).jmap_id
    for account_id in (foreign, "a999999", "nonsense"):
        assert notes.client.call(
            "Note/get",
            {"accountId": account_id, "ids": None},
            using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
        ) == ["error", {"type": "accountNotFound"}, "c0"]
