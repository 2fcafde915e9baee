"""The admin's quota pages, usage columns and quota actions (Django's test client)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from accounts import services
from accounts.models import Account, Quota
from accounts.quotas import quota_set
from tests.conftest import PASSWORD
from tests.mail.factories import ingest, message

MIB = 1024 * 1024


@pytest.fixture
def admin_user(db):
    return services.user_create(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def account_of(user) -> Account:
    return Account.objects.get(owner=user, is_personal=True)


def logged(user_or_quota, text: str) -> bool:
    return any(text in entry.get_change_message() for entry in LogEntry.objects.filter(object_id=str(user_or_quota.pk)))


def test_user_list_shows_usage_and_quota_percentage(admin_client, user):
    email = ingest(account_of(user), message(body="x" * 2000))
    quota_set(scope="account", account=account_of(user), resource_type="octets", hard_limit=email.size * 4)
    response = admin_client.get("/admin/accounts/user/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "(25.0&nbsp;%)" in page
    assert "1 message" in page


def test_user_list_has_no_query_per_row(admin_client, user, django_assert_max_num_queries):
    admin_client.get("/admin/accounts/user/")
    for number in range(6):
        other = services.user_create(email=f"u{number}@example.com", password=PASSWORD)
        quota_set(scope="account", account=account_of(other), resource_type="count", hard_limit=10)
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/accounts/user/")
    assert response.context["cl"].result_count == 8


def test_add_user_with_a_storage_quota(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"email": "new@example.com", "password1": "a long new password", "password2": "a long new password",
         "storage_quota_mib": "50"},
    )  # fmt: skip
    assert response.status_code == 302
    quota = Quota.objects.get(account__owner__email="new@example.com")
    assert (quota.scope, quota.resource_type, quota.hard_limit) == ("account", "octets", 50 * MIB)
    # The default mailboxes were provisioned by the same service as everywhere else.
    assert account_of(quota.account.owner).mailboxes.filter(role="inbox").exists()


def test_set_and_remove_storage_quota_actions(admin_client, user, other_user):
    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "set_storage_quota", "_selected_action": [user.pk, other_user.pk], "limit": "20"},
    )
    assert response.status_code == 302
    limits = set(Quota.objects.filter(scope="account").values_list("account__owner__email", "hard_limit"))
    assert limits == {(user.email, 20 * MIB), (other_user.email, 20 * MIB)}
    assert logged(user, "Set the storage quota to 20 MiB.")
    admin_client.post(
        "/admin/accounts/user/", {"action": "set_storage_quota", "_selected_action": [user.pk], "limit": "30"}
    )
    assert Quota.objects.get(account__owner=user).hard_limit == 30 * MIB  # changed, not a second quota
    missing = admin_client.post(
        "/admin/accounts/user/", {"action": "set_storage_quota", "_selected_action": [user.pk]}, follow=True
    )
    assert "Type the quota in MiB" in missing.content.decode()
    admin_client.post("/admin/accounts/user/", {"action": "remove_storage_quota", "_selected_action": [user.pk]})
    assert list(Quota.objects.values_list("account__owner", flat=True)) == [other_user.pk]


def test_disable_action_is_logged(admin_client, user):
    admin_client.post("/admin/accounts/user/", {"action": "disable_users", "_selected_action": [user.pk]})
    assert logged(user, "Disabled.")


def test_quota_changelist_filters_and_search(admin_client, user):
    domain = services.domain_create(name="example.com")
    ingest(account_of(user), message())
    quota_set(scope="account", account=account_of(user), resource_type="count", hard_limit=1)
    quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=10 * MIB)
    quota_set(scope="global", resource_type="count", hard_limit=1000)
    page = admin_client.get("/admin/accounts/quota/")
    assert page.status_code == 200 and page.context["cl"].result_count == 3
    assert "(100.0&nbsp;%)" in page.content.decode()
    for query, expected in [
        ({"scope__exact": "domain"}, 1),
        ({"resource_type__exact": "count"}, 2),
        ({"usage": "full"}, 1),
        ({"usage": "high"}, 1),
        ({"usage": "warn"}, 0),
        ({"q": "alice"}, 1),
        ({"q": "example.com"}, 2),
        ({"o": "5"}, 3),  # sorted by usage
    ]:
        response = admin_client.get("/admin/accounts/quota/", query)
        assert response.status_code == 200
        assert response.context["cl"].result_count == expected, query


def test_add_change_and_delete_a_quota(admin_client, user, jmap):
    account = account_of(user)
    data = {"scope": "account", "account": account.pk, "resource_type": "count", "hard_limit": "10",
            "warn_limit": "8", "soft_limit": "9", "name": "", "description": "Messages you may keep."}  # fmt: skip
    response = admin_client.post("/admin/accounts/quota/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    quota = Quota.objects.get()
    assert quota.name == "alice@example.com messages" and quota.warn_limit == 8
    assert LogEntry.objects.filter(object_id=str(quota.pk), action_flag=1).exists()
    # The user's JMAP client sees it.
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:quota"]
    seen = jmap.call("Quota/get", {"accountId": jmap.account_id, "ids": None}, using=using)[1]
    assert [item["hardLimit"] for item in seen["list"]] == [10]
    response = admin_client.post(
        f"/admin/accounts/quota/{quota.pk}/change/",
        {"hard_limit": "20", "warn_limit": "", "soft_limit": "", "name": "Mail", "description": ""},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    quota.refresh_from_db()
    assert (quota.hard_limit, quota.warn_limit, quota.name) == (20, None, "Mail")
    later = jmap.call("Quota/changes", {"accountId": jmap.account_id, "sinceState": seen["state"]}, using=using)[1]
    assert later["updated"] == [seen["list"][0]["id"]]
    response = admin_client.post(f"/admin/accounts/quota/{quota.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Quota.objects.exists()
    gone = jmap.call("Quota/changes", {"accountId": jmap.account_id, "sinceState": later["newState"]}, using=using)
    assert gone[1]["destroyed"] == [seen["list"][0]["id"]]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scope": "domain", "resource_type": "octets", "hard_limit": "10"}, "domain"),
        ({"scope": "account", "resource_type": "octets", "hard_limit": "10"}, "account"),
        ({"scope": "global", "resource_type": "octets", "hard_limit": "10", "soft_limit": "11"}, "soft_limit"),
        ({"scope": "global", "resource_type": "octets", "hard_limit": "10", "warn_limit": "11"}, "warn_limit"),
        ({"scope": "global", "resource_type": "octets", "hard_limit": "-1"}, "hard_limit"),
    ],
)
def test_quota_form_errors(admin_client, data, field):
    response = admin_client.post("/admin/accounts/quota/add/", {"name": "", "description": "", **data})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Quota.objects.exists()


def test_second_global_quota_of_a_type_is_refused(admin_client):
    quota_set(scope="global", resource_type="count", hard_limit=5)
    response = admin_client.post(
        "/admin/accounts/quota/add/",
        {"scope": "global", "resource_type": "count", "hard_limit": "9", "name": "", "description": ""},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Quota.objects.get().hard_limit == 5


def test_set_hard_limit_action(admin_client, user):
    storage = quota_set(scope="account", account=account_of(user), resource_type="octets", hard_limit=5 * MIB,
                        warn_limit=4 * MIB)  # fmt: skip
    count = quota_set(scope="global", resource_type="count", hard_limit=100, soft_limit=90)
    response = admin_client.post(
        "/admin/accounts/quota/", {"action": "set_hard_limit", "_selected_action": [storage.pk, count.pk], "limit": "3"}
    )
    assert response.status_code == 302
    storage.refresh_from_db()
    count.refresh_from_db()
    assert (storage.hard_limit, storage.warn_limit) == (3 * MIB, None)  # a warn limit above it is dropped
    assert (count.hard_limit, count.soft_limit) == (3, None)
    assert logged(count, "Set the hard limit to 3 messages.")


def test_domain_list_shows_users_and_usage(admin_client, user):
    domain = services.domain_create(name="example.com")
    services.user_create(email="carol@EXAMPLE.com", password=PASSWORD)
    email = ingest(account_of(user), message())
    quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=email.size * 2)
    response = admin_client.get("/admin/accounts/domain/")
    row = response.context["cl"].result_list[0]
    assert (row.user_count, row.used_octets) == (3, email.size)  # alice, carol and root
    assert "(50.0&nbsp;%)" in response.content.decode()


def test_admin_is_for_staff_only(user):
    client = Client()
    client.force_login(user)
    for url in ("/admin/", "/admin/accounts/quota/", "/admin/accounts/user/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    staff = services.user_create(email="helper@example.com", password=PASSWORD, is_staff=True)
    client.force_login(staff)  # staff, but without the model permissions
    assert client.get("/admin/accounts/quota/").status_code == 403
    assert client.post("/admin/accounts/quota/add/", {}).status_code == 403


def test_domain_list_shows_dkim_key_status(admin_client, django_assert_max_num_queries):
    from groupware.mail.submission.dkim_keys import dkim_key_generate

    signed = services.domain_create(name="signed.example")
    services.domain_create(name="plain.example")
    key = dkim_key_generate(domain=signed)
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/accounts/domain/")
    text = response.content.decode()
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert set(rows) >= {"signed.example", "plain.example"}
    assert f"signing ({key.selector})" in text and "no key" in text
