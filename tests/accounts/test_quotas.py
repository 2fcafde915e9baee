"""Quotas (RFC 9425): usage kept exactly as mail comes and goes, limits enforced everywhere
data grows, the JMAP Quota methods, push, and the recompute command."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts import services
from accounts.models import Account, Quota
from accounts.quotas import OverQuota, quota_check, quota_delete, quota_recompute, quota_set, quota_update
from groupware.core import events
from groupware.mail.models import Email
from tests.conftest import CORE, JmapClient
from tests.mail.factories import MAIL, MailApi, ingest, message

QUOTA = "urn:ietf:params:jmap:quota"
USING = [CORE, MAIL, QUOTA]


def account_of(user) -> Account:
    return Account.objects.get(owner=user, is_personal=True)


def usage(account: Account) -> tuple[int, int]:
    account.refresh_from_db(fields=["used_octets", "used_count"])
    return account.used_octets, account.used_count


class QuotaApi(MailApi):
    using = USING


@pytest.fixture
def api(jmap) -> QuotaApi:
    return QuotaApi(jmap)


RAW = message(body="x" * 500)


# -- usage ------------------------------------------------------------------------------


def test_usage_follows_ingest_copy_and_destroy(user, other_user):
    account, other = account_of(user), account_of(other_user)
    first = ingest(account, RAW)
    second = ingest(account, message(message_id="<m2@example.com>", body="y" * 100))
    assert usage(account) == (first.size + second.size, 2)
    from groupware.mail.services.emails import email_copy, email_destroy
    from tests.mail.factories import mailbox

    email_copy(email=first, account=other, mailbox_ids=[mailbox(other).pk], keywords={})
    assert usage(other) == (first.size, 1)
    email_destroy(email=first)
    assert usage(account) == (second.size, 1)
    assert usage(other) == (first.size, 1)


def test_recompute_command_repairs_counters(user):
    account = account_of(user)
    email = ingest(account, RAW)
    Account.objects.filter(pk=account.pk).update(used_octets=7, used_count=99)
    out = io.StringIO()
    call_command("quota_recompute", stdout=out)
    assert usage(account) == (email.size, 1)
    assert user.email in out.getvalue()
    assert quota_recompute(account=account) == (email.size, 1)


def test_one_update_of_the_account_row_per_ingest(user, django_assert_max_num_queries):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=10**9)
    ingest(account, RAW)  # warm caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        ingest(account, message(message_id="<m3@example.com>"))
    updates = [
        q["sql"]
        for q in captured.captured_queries
        # On PostgreSQL the update ends the statement that records the changes.
        if "UPDATE accounts_account" in q["sql"] or 'UPDATE "accounts_account"' in q["sql"]
    ]
    assert len(updates) == 1, updates
    assert "used_octets" in updates[0] and "modseq" in updates[0]


# -- enforcement ------------------------------------------------------------------------


def test_ingest_over_account_quota_is_refused_and_nothing_is_stored(user):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=1)
    ingest(account, RAW)
    with pytest.raises(OverQuota) as refused:
        ingest(account, message(message_id="<m2@example.com>"))
    assert Email.objects.filter(account=account).count() == 1
    assert usage(account)[1] == 1
    assert refused.value.smtp_reply()[0] == 452  # would fit once mail is deleted: retry
    assert "allows 1 message;" in str(refused.value)


def test_message_larger_than_the_quota_is_a_permanent_failure(user):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=100)
    with pytest.raises(OverQuota) as refused:
        quota_check(account=account, octets=len(RAW))
    assert refused.value.permanent
    code, text = refused.value.smtp_reply()
    assert code == 552 and text.startswith("5.2.2")


def test_domain_and_global_quotas_sum_over_their_accounts(user, db):
    carol = services.user_create(email="carol@example.com", password="x" * 12)
    dave = services.user_create(email="dave@other.example", password="x" * 12)
    domain = services.domain_create(name="example.com")
    first = ingest(account_of(user), RAW)
    ingest(account_of(carol), RAW)
    quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=first.size * 2 + 10)
    with pytest.raises(OverQuota):
        ingest(account_of(carol), message(message_id="<m9@example.com>"))
    ingest(account_of(dave), RAW)  # another domain: not limited by it
    quota_set(scope="global", resource_type="count", hard_limit=3)
    with pytest.raises(OverQuota):
        ingest(account_of(dave), message(message_id="<m8@example.com>"))


def test_limits_are_validated(user):
    account = account_of(user)
    with pytest.raises(ValidationError):
        quota_set(scope="account", account=account, resource_type="octets", hard_limit=10, soft_limit=20)
    with pytest.raises(ValidationError):
        quota_set(scope="account", account=account, resource_type="octets", hard_limit=10, warn_limit=8, soft_limit=5)
    with pytest.raises(ValidationError):
        quota_set(scope="domain", resource_type="octets", hard_limit=10)


def test_email_import_and_set_answer_over_quota(api, user):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=1)
    api.import_message(RAW)
    blob = api.upload(message(message_id="<m2@example.com>"))
    result = api.ok("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {api.mailbox_id(): True}}}})
    assert result["notCreated"]["i"]["type"] == "overQuota"
    assert "allows 1 message;" in result["notCreated"]["i"]["description"]
    created = api.ok(
        "Email/set",
        {"create": {"d": {"mailboxIds": {api.mailbox_id("drafts"): True}, "subject": "hi", "bodyValues": {}}}},
    )
    assert created["notCreated"]["d"]["type"] == "overQuota"


def test_email_copy_answers_over_quota(api, other_user, user):
    other = account_of(other_user)
    services.account_grant(account=other, user=user, may_write=True)
    source = api.import_message(RAW)
    quota_set(scope="account", account=other, resource_type="octets", hard_limit=10)
    from groupware.mail.services.counts import mailbox_id
    from tests.mail.factories import mailbox

    result = api.ok(
        "Email/copy",
        {
            "fromAccountId": api.account_id,
            "accountId": other.jmap_id,
            "create": {"c": {"id": source["id"], "mailboxIds": {mailbox_id(mailbox(other).pk): True}}},
        },
    )
    assert result["notCreated"]["c"]["type"] == "overQuota"


def test_upload_over_quota_is_refused(api, user):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=100)
    response = api.client.http.post(
        f"/jmap/upload/{api.account_id}/", b"z" * 101, content_type="text/plain", HTTP_AUTHORIZATION=api.client.auth
    )
    assert response.status_code == 403
    problem = orjson.loads(response.content)
    assert problem["type"] == "urn:ietf:params:jmap:error:overQuota"
    assert "100 octets" in problem["detail"]
    assert api.upload(b"z" * 100, "text/plain")  # what fits is accepted


# -- JMAP Quota methods -----------------------------------------------------------------


def test_session_advertises_quota(jmap):
    session = jmap.session()
    assert session["capabilities"][QUOTA] == {}
    assert session["accounts"][jmap.account_id]["accountCapabilities"][QUOTA] == {}


def test_quota_get_shows_usage_and_limits(api, user):
    account = account_of(user)
    quota = quota_set(
        scope="account",
        account=account,
        resource_type="octets",
        hard_limit=10_000,
        warn_limit=8_000,
        soft_limit=9_000,
        description="Personal mail storage.",
    )
    email = api.import_message(RAW)
    result = api.ok("Quota/get", {"ids": None})
    assert result["list"] == [
        {
            "id": result["list"][0]["id"],
            "resourceType": "octets",
            "used": email["size"],
            "hardLimit": 10_000,
            "scope": "account",
            "name": quota.name,
            "types": ["Email"],
            "warnLimit": 8_000,
            "softLimit": 9_000,
            "description": "Personal mail storage.",
        }
    ]
    assert quota.name == "alice@example.com storage"


def test_quota_get_query_count(api, user, django_assert_num_queries):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=10_000)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=100)
    quota_set(scope="global", resource_type="count", hard_limit=100)
    api.ok("Quota/get", {"ids": None})
    # auth session + accounts + state + one query for every quota with its usage
    with django_assert_num_queries(4):
        result = api.ok("Quota/get", {"ids": None})
    assert len(result["list"]) == 2  # the global quota is for staff eyes only (RFC 9425 §6)


def test_domain_and_global_quotas_are_shown_to_staff(db):
    admin = services.user_create(email="root@example.com", password="x" * 12, is_staff=True)
    domain = services.domain_create(name="example.com")
    quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=10**6)
    quota_set(scope="global", resource_type="count", hard_limit=10**6)
    api = QuotaApi(JmapClient(admin, "x" * 12))
    found = api.ok("Quota/get", {"ids": None})["list"]
    assert sorted(item["scope"] for item in found) == ["domain", "global"]


def test_quotas_appear_and_go_with_the_staff_flag(api, user):
    """Domain and global quotas are shown to staff owners only: when the flag changes (in
    the admin or through the provisioning API), Quota/changes reports them created, then
    destroyed, and Quota/get follows."""
    from django.test import Client

    from accounts.models import User
    from accounts.quotas import quota_object_id

    domain = services.domain_create(name="example.com")
    own = quota_set(scope="account", account=account_of(user), resource_type="count", hard_limit=10**6)
    shared = [
        quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=10**6),
        quota_set(scope="global", resource_type="count", hard_limit=10**6),
    ]
    first = api.ok("Quota/get", {"ids": None})
    assert [item["id"] for item in first["list"]] == [quota_object_id(own.pk)]
    root = services.user_create(email="root@example.com", password="x" * 12, is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    form = {"email": user.email, "name": user.name, "is_active": "on", "is_staff": "on"}
    response = admin.post(f"/admin/accounts/user/{user.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert User.objects.get(pk=user.pk).is_staff
    became = api.ok("Quota/changes", {"sinceState": first["state"]})
    assert sorted(became["created"]) == sorted(quota_object_id(quota.pk) for quota in shared)
    assert became["updated"] == became["destroyed"] == []
    assert len(api.ok("Quota/get", {"ids": None})["list"]) == 3
    token = services.api_token_create(user=root, name="ops")[1]
    response = Client().patch(
        f"/api/admin/v1/users/{user.pk}/",
        orjson.dumps({"is_staff": False}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    left = api.ok("Quota/changes", {"sinceState": became["newState"]})
    assert sorted(left["destroyed"]) == sorted(quota_object_id(quota.pk) for quota in shared)
    assert left["created"] == left["updated"] == []
    assert [item["id"] for item in api.ok("Quota/get", {"ids": None})["list"]] == [quota_object_id(own.pk)]
    response = admin.post(f"/admin/accounts/user/{user.pk}/change/", {**form, "is_staff": ""})
    assert response.status_code == 302
    assert api.ok("Quota/changes", {"sinceState": left["newState"]})["newState"] == left["newState"]


def test_quotas_need_a_known_type(api, user):
    quota_set(scope="account", account=account_of(user), resource_type="count", hard_limit=5)
    response = api.client.call("Quota/get", {"accountId": api.account_id, "ids": None}, using=[CORE, QUOTA])
    assert response[1]["list"] == []  # RFC 9425 §4.1: Email is unknown without the mail capability


def test_quota_changes_report_used_only(api, user):
    account = account_of(user)
    quota = quota_set(scope="account", account=account, resource_type="count", hard_limit=5)
    state = api.ok("Quota/get", {"ids": None})["state"]
    api.import_message(RAW)
    responses = api.request(
        [
            ["Quota/changes", {"accountId": api.account_id, "sinceState": state}, "0"],
            [
                "Quota/get",
                {
                    "accountId": api.account_id,
                    "#ids": {"resultOf": "0", "name": "Quota/changes", "path": "/updated"},
                    "#properties": {"resultOf": "0", "name": "Quota/changes", "path": "/updatedProperties"},
                },
                "1",
            ],
        ]
    )
    changes, got = responses[0][1], responses[1][1]
    assert changes["updated"] == [got["list"][0]["id"]]
    assert changes["updatedProperties"] == ["used"]
    assert got["list"] == [{"id": changes["updated"][0], "used": 1}]
    quota_update(quota=quota, hard_limit=6)
    later = api.ok("Quota/changes", {"sinceState": changes["newState"]})
    assert later["updated"] == changes["updated"] and later["updatedProperties"] is None
    quota_delete(quota=quota)
    gone = api.ok("Quota/changes", {"sinceState": later["newState"]})
    assert gone["destroyed"] == changes["updated"]


def test_quota_query_filters_and_sorts(api, user):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=5, name="b messages")
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=10**6, name="a storage")
    api.import_message(RAW)
    by_used = api.ok("Quota/query", {"sort": [{"property": "used", "isAscending": False}]})["ids"]
    by_name = api.ok("Quota/query", {"sort": [{"property": "name"}]})["ids"]
    assert by_used == by_name  # "a storage" holds ~600 octets, "b messages" 1 message
    ascending = api.ok("Quota/query", {"sort": [{"property": "used"}]})["ids"]
    assert ascending == list(reversed(by_used))
    only = api.ok("Quota/query", {"filter": {"resourceType": "count", "scope": "account", "type": "Email"}})
    assert len(only["ids"]) == 1
    assert api.ok("Quota/query", {"filter": {"type": "Calendar"}})["ids"] == []
    assert api.ok("Quota/query", {"filter": {"name": "STORAGE"}})["ids"] == [by_name[0]]
    assert api.error("Quota/query", {"filter": {"scope": "planet"}})["type"] == "invalidArguments"
    changes = api.ok("Quota/queryChanges", {"sinceQueryState": api.ok("Quota/query", {})["queryState"]})
    assert changes["added"] == [] and changes["removed"] == []


def test_quota_push_state_change_when_usage_changes(user, django_capture_on_commit_callbacks):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=5)
    seen: list[tuple[int, dict]] = []

    def listener(account_pk: int, states: dict) -> None:
        seen.append((account_pk, states))

    events.subscribe(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ingest(account, RAW)
    finally:
        events.unsubscribe(listener)
    assert any(pk == account.pk and "Quota" in states for pk, states in seen), seen


def test_quota_methods_are_read_only(api):
    assert api.error("Quota/set", {"create": {}})["type"] == "unknownMethod"
    assert Quota.objects.count() == 0


def test_quota_query_count(api, user, django_assert_num_queries):
    account = account_of(user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=10_000)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=100)
    arguments = {"filter": {"scope": "account"}, "sort": [{"property": "used"}], "calculateTotal": True}
    api.ok("Quota/query", arguments)
    # auth session + accounts + query state + one query for the matching quotas with usage
    with django_assert_num_queries(4):
        assert api.ok("Quota/query", arguments)["total"] == 2


def test_email_import_batch_stores_what_fits(api, user):
    # One Email/import of several messages: each is charged in order; one that doesn't
    # fit is refused with overQuota, the smaller one after it still fits.
    account = account_of(user)
    small = [message(message_id=f"<s{index}@example.com>", body="s") for index in range(2)]
    big = message(message_id="<big@example.com>", body="b" * 5000)
    emails = {
        key: {"blobId": api.upload(raw), "mailboxIds": {api.mailbox_id(): True}}
        for key, raw in (("a", small[0]), ("big", big), ("b", small[1]))
    }
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=len(small[0]) * 2 + 100)
    result = api.ok("Email/import", {"emails": emails})
    assert set(result["created"]) == {"a", "b"}
    assert result["notCreated"]["big"]["type"] == "overQuota"
    assert usage(account) == (len(small[0]) + len(small[1]), 2)
    # A message whose blob is gone is refused and charges nothing.
    gone = {"blobId": "b" + "0" * 64, "mailboxIds": {api.mailbox_id(): True}}
    result = api.ok("Email/import", {"emails": {"gone": gone}})
    assert result["notCreated"]["gone"]["type"] == "invalidProperties"
    assert usage(account) == (len(small[0]) + len(small[1]), 2)
