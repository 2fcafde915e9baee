"""RFC 8621 §1.3.1 the urn:ietf:params:jmap:mail capability, and default mailboxes."""

from __future__ import annotations

from accounts.services import account_grant, primary_account, user_create
from groupware.mail.models import Mailbox
from groupware.mail.services.mailboxes import mailboxes_provision_defaults
from jmap.mail_capability import EMAIL_QUERY_SORT_OPTIONS, MAIL
from tests.mail.test_mailbox import CORE, MailboxApi


def test_session_advertises_mail(jmap):
    session = jmap.session()
    # The session value is an empty object (§1.3.1).
    assert session["capabilities"][MAIL] == {}
    value = session["accounts"][jmap.account_id]["accountCapabilities"][MAIL]
    assert value == {
        "maxMailboxesPerEmail": 256,
        "maxMailboxDepth": 16,
        "maxSizeMailboxName": 255,
        "maxSizeAttachmentsPerEmail": 50_000_000,
        "emailQuerySortOptions": list(EMAIL_QUERY_SORT_OPTIONS),
        "mayCreateTopLevelMailbox": True,
    }
    assert session["primaryAccounts"][MAIL] == jmap.account_id


def test_capability_limits_follow_settings(jmap, settings):
    settings.MAIL_MAX_MAILBOXES_PER_EMAIL = None
    settings.MAIL_MAX_MAILBOX_DEPTH = None
    settings.MAIL_MAX_SIZE_MAILBOX_NAME = 20  # below the RFC's minimum: 100 is advertised
    settings.MAIL_MAX_SIZE_ATTACHMENTS_PER_EMAIL = 1000
    value = jmap.session()["accounts"][jmap.account_id]["accountCapabilities"][MAIL]
    assert value["maxMailboxesPerEmail"] is None
    assert value["maxMailboxDepth"] is None
    assert value["maxSizeMailboxName"] == 100
    assert value["maxSizeAttachmentsPerEmail"] == 1000


def test_shared_accounts_have_mail_too(jmap, other_jmap, user, other_user):
    # §1.4: every account the user may use mail with lists the capability.
    account_grant(account=primary_account(user), user=other_user)
    accounts = other_jmap.session()["accounts"]
    assert MAIL in accounts[jmap.account_id]["accountCapabilities"]


def test_methods_need_the_capability_in_using(jmap):
    response = jmap.call("Mailbox/get", {"accountId": jmap.account_id}, using=[CORE])
    assert response == ["error", {"type": "unknownMethod"}, "c0"]


def test_no_mailbox_copy(jmap):
    response = jmap.call("Mailbox/copy", {}, using=[CORE, MAIL])
    assert response[1]["type"] == "unknownMethod"


def test_new_users_get_the_default_mailboxes(db):
    user = user_create(email="carol@example.com", password="x" * 12)
    account = primary_account(user)
    boxes = list(Mailbox.objects.filter(account=account).order_by("sort_order"))
    assert [(box.role, box.name) for box in boxes] == [
        ("inbox", "Inbox"),
        ("drafts", "Drafts"),
        ("sent", "Sent"),
        ("archive", "Archive"),
        ("junk", "Junk"),
        ("trash", "Trash"),
    ]
    assert all(box.parent_id is None and box.is_subscribed for box in boxes)
    # Recorded as changes: a client syncing from the empty state sees them as created.
    assert account.modseq >= 6
    assert all(box.props_modseq > 0 for box in boxes)
    # Running it again adds nothing.
    assert mailboxes_provision_defaults(account) == []


def test_default_mailboxes_via_jmap(jmap):
    api = MailboxApi(jmap)
    listed = api.ok("Mailbox/get", {"ids": None})["list"]
    assert sorted(item["role"] for item in listed) == sorted(["inbox", "drafts", "sent", "archive", "junk", "trash"])
    changes = api.ok("Mailbox/changes", {"sinceState": "0"})
    assert sorted(changes["created"]) == sorted(item["id"] for item in listed)
    assert changes["updatedProperties"] is None


def test_default_mailboxes_follow_settings(db, settings):
    settings.MAIL_DEFAULT_MAILBOXES = (("inbox", "Posteingang", 1), ("trash", "Papierkorb", 2))
    user = user_create(email="dora@example.com", password="x" * 12)
    names = Mailbox.objects.filter(account=primary_account(user)).order_by("sort_order").values_list("name", flat=True)
    assert list(names) == ["Posteingang", "Papierkorb"]
