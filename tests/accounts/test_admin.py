"""The Django admin for accounts: every page loads, and creation goes through the services."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts import services
from accounts.models import Account, Alias, ApiToken, AppPassword, Domain, User
from tests.conftest import PASSWORD, basic


@pytest.fixture
def admin_client(db) -> Client:
    admin = services.user_create(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def objects(user):
    domain = services.domain_create(name="example.com")
    return {
        "user": user,
        "domain": domain,
        "alias": services.alias_create(user=user, address="sales@example.com"),
        "apppassword": services.app_password_create(user=user, name="phone")[0],
        "apitoken": services.api_token_create(user=user, name="cli")[0],
        "account": services.primary_account(user),
    }


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


MODELS = ["user", "domain", "alias", "apppassword", "apitoken", "account"]


@pytest.mark.parametrize("model", MODELS)
def test_changelist_loads(admin_client, objects, model):
    response = admin_client.get(f"/admin/accounts/{model}/")
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", MODELS)
def test_changelist_search(admin_client, objects, model):
    response = admin_client.get(f"/admin/accounts/{model}/", {"q": "example"})
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", MODELS)
def test_change_page_loads(admin_client, objects, model):
    response = admin_client.get(f"/admin/accounts/{model}/{objects[model].pk}/change/")
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["user", "domain", "alias", "apppassword", "apitoken"])
def test_add_page_loads(admin_client, objects, model):
    assert admin_client.get(f"/admin/accounts/{model}/add/").status_code == 200


def test_accounts_are_not_added_or_deleted_in_the_admin(admin_client, objects):
    # A personal account comes with its user (services.user_create).
    assert admin_client.get("/admin/accounts/account/add/").status_code == 403
    assert admin_client.get(f"/admin/accounts/account/{objects['account'].pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("user", {"is_active__exact": "1"}),
        ("user", {"is_staff__exact": "0"}),
        ("domain", {"is_active__exact": "1"}),
        ("alias", {"kind": "catchall"}),
        ("alias", {"kind": "address"}),
        ("apppassword", {"status": "active"}),
        ("apppassword", {"status": "revoked"}),
        ("apitoken", {"status": "active"}),
        ("apitoken", {"status": "expired"}),
        ("apitoken", {"status": "revoked"}),
        ("account", {"is_personal__exact": "1"}),
    ],
)
def test_list_filters(admin_client, objects, model, query):
    assert admin_client.get(f"/admin/accounts/{model}/", query).status_code == 200


def test_other_user_pages_load(admin_client, objects):
    pk = objects["user"].pk
    assert admin_client.get(f"/admin/accounts/user/{pk}/password/").status_code == 200
    assert admin_client.get(f"/admin/accounts/user/{pk}/delete/").status_code == 200
    assert admin_client.get(f"/admin/accounts/user/{pk}/history/").status_code == 200


# --- Users --------------------------------------------------------------------------------


def test_add_user_creates_account(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "new@Example.com",
            "name": "New",
            "password1": "a long new password",
            "password2": "a long new password",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    user = User.objects.get(email="new@example.com")
    assert user.name == "New" and user.check_password("a long new password")
    assert not user.is_staff
    account = Account.objects.get(owner=user)
    assert account.is_personal
    assert response["Location"] == f"/admin/accounts/user/{user.pk}/change/"
    # They can use the API straight away.
    assert (
        Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=basic(user.email, "a long new password")).status_code
        == 200
    )


def test_add_user_without_password(admin_client):
    response = admin_client.post("/admin/accounts/user/add/", {"email": "nopw@example.com"})
    assert response.status_code == 302
    user = User.objects.get(email="nopw@example.com")
    assert not user.has_usable_password()
    assert Account.objects.filter(owner=user).exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "ALICE@example.com"}, "__all__"),
        ({"email": "alice@example.com"}, "email"),
        ({"email": "not an email"}, "email"),
        ({"email": "x@example.com", "password1": "a long new password", "password2": "different"}, "password2"),
        ({"email": "x@example.com", "password1": "password", "password2": "password"}, "password2"),
    ],
)
def test_add_user_errors_are_shown_on_the_form(admin_client, user, data, field):
    before = User.objects.count()
    response = admin_client.post("/admin/accounts/user/add/", data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert User.objects.count() == before


def test_change_user(admin_client, user):
    response = admin_client.post(
        f"/admin/accounts/user/{user.pk}/change/",
        {"email": user.email, "name": "Alice Changed", "is_active": "on", "date_joined_0": "2020-01-01"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.name == "Alice Changed"


def test_change_password_in_admin_invalidates_api_credentials(admin_client, user):
    auth = basic(user.email)
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=auth).status_code == 200
    response = admin_client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "another long password", "password2": "another long password", "usable_password": "true"},
    )
    assert response.status_code == 302
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=auth).status_code == 401


def test_disable_users_action(admin_client, user, other_user):
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "disable_users", "_selected_action": [user.pk, other_user.pk]}
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk__in=[user.pk, other_user.pk], is_active=True).exists()
    admin_client.post("/admin/accounts/user/", {"action": "enable_users", "_selected_action": [user.pk]})
    assert User.objects.get(pk=user.pk).is_active


# --- Domains and aliases ------------------------------------------------------------------


def test_add_domain(admin_client):
    response = admin_client.post("/admin/accounts/domain/add/", {"name": "Example.ORG.", "is_active": "on"})
    assert response.status_code == 302
    assert Domain.objects.get().name == "example.org"


def test_add_invalid_domain(admin_client):
    response = admin_client.post("/admin/accounts/domain/add/", {"name": "not a domain", "is_active": "on"})
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert not Domain.objects.exists()


def test_add_alias(admin_client, user):
    services.domain_create(name="example.com")
    response = admin_client.post("/admin/accounts/alias/add/", {"address": "Info@Example.com", "user": user.pk})
    assert response.status_code == 302
    assert Alias.objects.get().address == "info@example.com"


def test_add_alias_in_unknown_domain(admin_client, user):
    response = admin_client.post("/admin/accounts/alias/add/", {"address": "info@nowhere.example", "user": user.pk})
    assert response.status_code == 200
    assert "address" in response.context["adminform"].form.errors
    assert not Alias.objects.exists()


# --- Credentials --------------------------------------------------------------------------


def test_add_app_password_shows_it_once(admin_client, user):
    response = admin_client.post("/admin/accounts/apppassword/add/", {"user": user.pk, "name": "laptop"})
    assert response.status_code == 302
    record = AppPassword.objects.get(name="laptop")
    [shown] = [m for m in messages_of(response) if "App password" in m]
    plaintext = re.search(r"<code>([a-z0-9-]+)</code>", shown).group(1)
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=basic(user.email, plaintext)).status_code == 200
    # Shown on the next page, and never again.
    assert plaintext in admin_client.get(response["Location"]).content.decode()
    page = admin_client.get(f"/admin/accounts/apppassword/{record.pk}/change/")
    assert plaintext not in page.content.decode()
    assert record.digest not in page.content.decode()


def test_add_api_token_shows_it_once(admin_client, user):
    response = admin_client.post("/admin/accounts/apitoken/add/", {"user": user.pk, "name": "script"})
    assert response.status_code == 302
    record = ApiToken.objects.get(name="script")
    [shown] = [m for m in messages_of(response) if "API token" in m]
    plaintext = re.search(r"<code>(gw_[A-Za-z0-9_-]+)</code>", shown).group(1)
    assert plaintext.startswith(record.prefix)
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    assert plaintext in admin_client.get(response["Location"]).content.decode()
    page = admin_client.get(f"/admin/accounts/apitoken/{record.pk}/change/")
    assert plaintext not in page.content.decode()


def test_add_api_token_with_past_expiry(admin_client, user):
    response = admin_client.post(
        "/admin/accounts/apitoken/add/",
        {"user": user.pk, "name": "old", "expires_0": "2000-01-01", "expires_1": "00:00:00"},
    )
    assert response.status_code == 200
    assert "expires" in response.context["adminform"].form.errors
    assert not ApiToken.objects.exists()


def test_revoke_actions(admin_client, user, app_password, api_token):
    response = admin_client.post(
        "/admin/accounts/apppassword/", {"action": "revoke", "_selected_action": [app_password[0].pk]}
    )
    assert response.status_code == 302
    assert AppPassword.objects.get(pk=app_password[0].pk).revoked is not None
    response = admin_client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [api_token[0].pk]}
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=api_token[0].pk).revoked is not None
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=f"Bearer {api_token[1]}").status_code == 401


def test_rename_app_password(admin_client, app_password):
    record = app_password[0]
    response = admin_client.post(f"/admin/accounts/apppassword/{record.pk}/change/", {"name": "old phone"})
    assert response.status_code == 302
    refreshed = AppPassword.objects.get(pk=record.pk)
    assert refreshed.name == "old phone" and refreshed.digest == record.digest


# --- JMAP accounts ------------------------------------------------------------------------


GRANTS_NONE = {"grants-TOTAL_FORMS": "0", "grants-INITIAL_FORMS": "0"}


def test_grant_through_admin_changes_the_session_state(admin_client, user, other_user):
    account = services.primary_account(user)
    generation = other_user.session_generation
    response = admin_client.post(
        f"/admin/accounts/account/{account.pk}/change/",
        {
            "name": account.name,
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "0",
            "grants-0-user": str(other_user.pk),
            "grants-0-may_write": "",
        },
    )
    assert response.status_code == 302, response.content
    other_user.refresh_from_db()
    assert other_user.session_generation == generation + 1
    access = {item.account.pk: item.is_read_only for item in services.accessible_accounts(other_user)}
    assert access == {services.primary_account(other_user).pk: False, account.pk: True}


def test_account_modseq_is_read_only(admin_client, user):
    account = services.primary_account(user)
    Account.objects.filter(pk=account.pk).update(modseq=7)
    response = admin_client.post(
        f"/admin/accounts/account/{account.pk}/change/",
        {"name": "Renamed", "modseq": "999", "purged_modseq": "5", **GRANTS_NONE},
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Renamed"
    assert account.modseq == 7 and account.purged_modseq == 0


def test_admin_requires_staff(user):
    client = Client()
    client.force_login(user)
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
