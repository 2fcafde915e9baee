"""The provisioning API (/api/admin/v1/): staff-token auth, CRUD through the services,
pagination, JSON validation errors and the OpenAPI schema."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.management import call_command
from django.test import Client

from accounts import services
from accounts.models import Account, Alias, ApiToken, Domain, Quota, User
from tests.conftest import PASSWORD, basic

BASE = "/api/admin/v1"


class Api:
    def __init__(self, token: str) -> None:
        self.http = Client()
        self.auth = f"Bearer {token}"

    def __getattr__(self, method: str):
        def send(path: str, body: dict | None = None, **extra):
            kwargs = {"HTTP_AUTHORIZATION": self.auth, **extra}
            if body is not None:
                kwargs.update(data=orjson.dumps(body), content_type="application/json")
            response = getattr(self.http, method)(f"{BASE}{path}", **kwargs)
            response.json_body = orjson.loads(response.content) if response.content else None
            return response

        return send


@pytest.fixture
def staff(db) -> User:
    return services.user_create(email="ops@example.com", password=PASSWORD, is_staff=True)


@pytest.fixture
def api(staff) -> Api:
    return Api(services.api_token_create(user=staff, name="automation")[1])


def test_authentication_is_a_staff_token(user, staff, api):
    anonymous = Client().get(f"{BASE}/users/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert orjson.loads(anonymous.content)["detail"]
    not_staff = Api(services.api_token_create(user=user, name="mine")[1]).get("/users/")
    assert not_staff.status_code == 403
    wrong = Api("not-a-token").get("/users/")
    assert wrong.status_code == 401
    # Basic credentials and the admin session are not accepted.
    assert Client().get(f"{BASE}/users/", HTTP_AUTHORIZATION=basic(staff.email)).status_code == 401
    admin = Client()
    admin.force_login(staff)
    assert admin.get(f"{BASE}/users/").status_code == 401
    assert api.get("/users/").status_code == 200
    token = ApiToken.objects.get(name="automation")
    assert token.last_used is not None


def test_revoked_token_stops_working(staff, api):
    token = ApiToken.objects.get(name="automation")
    services.api_token_revoke(api_token=token)
    assert api.get("/users/").status_code == 401


def test_set_up_a_domain_users_aliases_and_quotas(api):
    created = api.post("/domains/", {"name": "Example.COM"})
    assert created.status_code == 201, created.json_body
    assert created.json_body["name"] == "example.com"
    user = api.post("/users/", {"email": "carol@example.com", "name": "Carol", "password": "a long password here"})
    assert user.status_code == 201, user.json_body
    body = user.json_body
    assert "password" not in body
    account = Account.objects.get(pk=body["account"])
    assert body["account_id"] == account.jmap_id and account.owner.email == "carol@example.com"
    assert account.mailboxes.filter(role="inbox").exists()  # provisioned like every account
    session = Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=basic("carol@example.com", "a long password here"))
    assert session.status_code == 200
    alias = api.post("/aliases/", {"address": "Sales@example.com", "user": "carol@example.com"})
    assert alias.status_code == 201 and alias.json_body["address"] == "sales@example.com"
    catch_all = api.post("/aliases/", {"address": "@example.com", "user": "carol@example.com"})
    assert catch_all.status_code == 201
    quota = api.post("/quotas/", {"scope": "account", "account": body["account"], "resource_type": "octets",
                                  "hard_limit": 1000, "warn_limit": 800})  # fmt: skip
    assert quota.status_code == 201, quota.json_body
    assert quota.json_body["used"] == 0 and quota.json_body["name"] == "carol@example.com storage"
    domain_quota = api.post("/quotas/", {"scope": "domain", "domain": "example.com", "hard_limit": 10**9})
    assert domain_quota.status_code == 201, domain_quota.json_body
    again = api.post("/quotas/", {"scope": "domain", "domain": "example.com", "hard_limit": 5})
    assert again.status_code == 201 and again.json_body["id"] == domain_quota.json_body["id"]
    assert Quota.objects.count() == 2
    assert api.get("/quotas/", QUERY_STRING="scope=domain").json_body["count"] == 1


def test_validation_errors_are_json(api, user):
    duplicate = api.post("/users/", {"email": "ALICE@example.com"})
    assert duplicate.status_code == 400 and duplicate["Content-Type"] == "application/json"
    assert duplicate.json_body
    weak = api.post("/users/", {"email": "dave@example.com", "password": "password"})
    assert weak.status_code == 400 and "password" in weak.json_body
    assert api.post("/domains/", {"name": "not a domain"}).json_body == {"name": ["Enter a valid domain name."]}
    bad_alias = api.post("/aliases/", {"address": "x@unknown.example", "user": user.email})
    assert bad_alias.status_code == 400 and "address" in bad_alias.json_body
    limits = api.post("/quotas/", {"scope": "global", "hard_limit": 10, "soft_limit": 20})
    assert limits.status_code == 400 and "soft_limit" in limits.json_body
    missing = api.post("/quotas/", {"scope": "account", "hard_limit": 10})
    assert missing.status_code == 400 and "account" in missing.json_body
    negative = api.post("/quotas/", {"scope": "global", "hard_limit": -1})
    assert negative.status_code == 400 and "hard_limit" in negative.json_body
    not_json = api.post("/domains/", None, data=b"{", content_type="application/json")
    assert not_json.status_code == 400
    assert api.get("/users/999999/").status_code == 404
    assert Quota.objects.count() == 0


def test_update_and_disable_a_user(api, user):
    response = api.patch(f"/users/{user.pk}/", {"name": "Alice B", "is_active": False, "email": "x@example.com"})
    assert response.status_code == 200, response.json_body
    user.refresh_from_db()
    assert (user.name, user.is_active, user.email) == ("Alice B", False, "alice@example.com")
    api.patch(f"/users/{user.pk}/", {"is_active": True, "password": "a brand new password"})
    user.refresh_from_db()
    assert user.is_active and user.check_password("a brand new password")


def test_quota_update_and_delete(api, user):
    account = Account.objects.get(owner=user)
    quota = api.post("/quotas/", {"account": account.pk, "resource_type": "count", "hard_limit": 10}).json_body
    changed = api.patch(f"/quotas/{quota['id']}/", {"hard_limit": 20, "scope": "global"})
    assert changed.status_code == 200 and changed.json_body["hard_limit"] == 20
    assert changed.json_body["scope"] == "account"  # read-only once created
    assert api.delete(f"/quotas/{quota['id']}/").status_code == 204
    assert not Quota.objects.exists()


def test_tokens_are_shown_once_and_revoked_by_delete(api, user):
    created = api.post("/tokens/", {"user": user.email, "name": "backup"})
    assert created.status_code == 201
    secret = created.json_body["token"]
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    listed = api.get("/tokens/").json_body["results"]
    assert all("token" not in item or item["token"] is None for item in listed)
    assert api.delete(f"/tokens/{created.json_body['id']}/").status_code == 204
    assert api.get(f"/tokens/{created.json_body['id']}/").json_body["revoked"] is not None
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_pagination_and_search(api, django_assert_max_num_queries):
    for number in range(7):
        services.user_create(email=f"user{number}@example.com", password=PASSWORD)
    page = api.get("/users/", QUERY_STRING="page_size=3&page=2").json_body
    assert page["count"] == 8 and len(page["results"]) == 3
    assert page["next"] and page["previous"]
    found = api.get("/users/", QUERY_STRING="search=user4").json_body
    assert [item["email"] for item in found["results"]] == ["user4@example.com"]
    with django_assert_max_num_queries(8):  # no query per user
        api.get("/users/", QUERY_STRING="page_size=50")


def test_aliases_and_domains_delete(api, user):
    services.domain_create(name="example.com")
    alias = services.alias_create(user=user, address="info@example.com")
    assert api.delete(f"/aliases/{alias.pk}/").status_code == 204
    assert not Alias.objects.exists()
    assert api.put(f"/aliases/{alias.pk}/", {"address": "x@example.com", "user": user.email}).status_code == 405
    domain = Domain.objects.get()
    renamed = api.patch(f"/domains/{domain.pk}/", {"name": "other.example", "is_active": False})
    assert renamed.status_code == 200 and renamed.json_body["name"] == "example.com"
    assert renamed.json_body["is_active"] is False


def test_openapi_schema(api):
    response = Client().get(f"{BASE}/schema/")
    assert response.status_code == 200
    schema = orjson.loads(response.content)
    assert schema["openapi"].startswith("3.")
    for resource in ("domains", "users", "aliases", "quotas", "tokens"):
        assert f"{BASE}/{resource}/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["staffToken"]["scheme"] == "bearer"
    yaml = Client().get(f"{BASE}/schema/", {"format": "yaml"})
    assert yaml.status_code == 200 and b"openapi: 3" in yaml.content
    # The schema generates without warnings (a warning means an undocumented field).
    call_command("spectacular", "--fail-on-warn", "--validate", stdout=io.StringIO())
