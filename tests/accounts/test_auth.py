"""API authentication: Basic (RFC 7617), app passwords, Bearer tokens (RFC 6750), limits."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import orjson
import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from accounts.auth import (
    AuthenticationFailed,
    CredentialCache,
    authenticate_api,
    client_address,
    credential_cache,
    parse_basic,
    verify_basic,
)
from accounts.models import ApiToken, AppPassword
from accounts.services import (
    api_token_create,
    api_token_revoke,
    app_password_revoke,
    user_create,
    user_disable,
    user_enable,
    user_set_password,
)
from tests.conftest import CORE, PASSWORD, basic

ECHO = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"ping": 1}, "c0"]]})
SESSION = "/.well-known/jmap"
API = "/jmap/api/"


def raw_basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def get_session(authorization: str | None, *, address: str = "192.0.2.1", client: Client | None = None):
    client = client or Client()
    extra = {"REMOTE_ADDR": address}
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    return client.get(SESSION, **extra)


def post_echo(authorization: str, *, address: str = "192.0.2.1"):
    return Client().post(
        API, ECHO, content_type="application/json", HTTP_AUTHORIZATION=authorization, REMOTE_ADDR=address
    )


def assert_unauthorized(response, *, bearer_error: str | None = None) -> dict:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Basic realm="JMAP", charset="UTF-8", Bearer realm="JMAP"')
    if bearer_error:
        assert f'error="{bearer_error}"' in challenge
    else:
        assert "error=" not in challenge
    body = orjson.loads(response.content)
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert body["type"] == "about:blank"
    return body


# --- Basic with the account password ------------------------------------------------------


def test_basic_password_session(user):
    response = get_session(basic(user.email))
    assert response.status_code == 200
    assert orjson.loads(response.content)["username"] == user.email


def test_basic_password_api(user):
    response = post_echo(basic(user.email))
    assert response.status_code == 200
    assert orjson.loads(response.content)["methodResponses"] == [["Core/echo", {"ping": 1}, "c0"]]


@pytest.mark.parametrize("login", ["ALICE@EXAMPLE.COM", "Alice@Example.com"])
def test_login_matches_email_case_insensitively(user, login):
    assert get_session(basic(login)).status_code == 200


def test_scheme_is_case_insensitive(user):
    # RFC 7235 §2.1
    header = basic(user.email).replace("Basic ", "bAsIc   ")
    assert get_session(header).status_code == 200


def test_password_may_contain_colons(db):
    # RFC 7617 §2: only the first colon separates the user-id.
    user = user_create(email="colon@example.com", password="a:b:c:d e f")
    assert get_session(basic(user.email, "a:b:c:d e f")).status_code == 200


def test_wrong_password(user):
    body = assert_unauthorized(get_session(basic(user.email, "wrong")))
    assert body["detail"] == "Invalid credentials."


def test_unknown_user_looks_like_wrong_password(user):
    wrong = get_session(basic(user.email, "wrong"))
    unknown = get_session(basic("nobody@example.com", PASSWORD))
    assert wrong.content == unknown.content
    assert wrong["WWW-Authenticate"] == unknown["WWW-Authenticate"]


def test_inactive_user_looks_like_wrong_password(user):
    user_disable(user=user)
    wrong = get_session(basic("nobody@example.com", PASSWORD))
    inactive = get_session(basic(user.email))
    assert_unauthorized(inactive)
    assert inactive.content == wrong.content


def test_user_without_password_cannot_use_basic(db):
    user = user_create(email="nopw@example.com", password=None)
    assert_unauthorized(get_session(basic(user.email, "")))
    assert_unauthorized(get_session(basic(user.email, "!")))


def test_missing_header_is_challenged(user):
    body = assert_unauthorized(get_session(None))
    assert body["detail"] == "Authentication required."


def test_non_ascii_password_is_utf8(db):
    password = "pässwörd ✓ 密码"
    user = user_create(email="utf8@example.com", password=password)
    assert get_session(raw_basic(f"{user.email}:{password}".encode())).status_code == 200
    # RFC 7617 §2.1: charset="UTF-8" was announced; other encodings don't match.
    assert_unauthorized(get_session(raw_basic(f"{user.email}:pässwörd".encode("latin-1"))))


def test_non_ascii_login(db):
    user = user_create(email="joerg@bücher.example", password=PASSWORD)
    assert get_session(raw_basic(f"{user.email}:{PASSWORD}".encode())).status_code == 200


MALFORMED = {
    "scheme only": "Basic",
    "scheme and space": "Basic ",
    "not base64": "Basic !!!not-base64!!!",
    "bad padding": "Basic " + base64.b64encode(b"alice@example.com:x").decode().rstrip("=") + "=",
    "trailing garbage": basic("alice@example.com") + " extra",
    "no colon": raw_basic(b"alice@example.com"),
    "empty user-id": raw_basic(b":" + PASSWORD.encode()),
    "not UTF-8": raw_basic(b"alice@example.com:\xff\xfe\xfd"),
    "not UTF-8 login": raw_basic(b"\xe9lice@example.com:" + PASSWORD.encode()),
    "control char in user-id": raw_basic(b"alice@example.com\x00:" + PASSWORD.encode()),
    "newline in user-id": raw_basic(b"alice\n@example.com:" + PASSWORD.encode()),
    "non-ASCII header": "Basic ä" + basic("alice@example.com")[6:],
    "unknown scheme": "Digest username=alice",
    "no scheme": base64.b64encode(f"alice@example.com:{PASSWORD}".encode()).decode(),
    "whitespace only": "   ",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_basic_is_401_never_500(user, header):
    assert_unauthorized(get_session(header))
    assert_unauthorized(post_echo(header))


MALFORMED_BEARER = {
    "scheme only": "Bearer",
    "scheme and space": "Bearer ",
    "spaces in token": "Bearer gw_abc def",
    "bad characters": "Bearer gw_abc!def",
    "non-ASCII": "Bearer gw_äbc",
    "too long": "Bearer gw_" + "a" * 2000,
    "padding in the middle": "Bearer gw_ab=cd",
}


@pytest.mark.parametrize("header", MALFORMED_BEARER.values(), ids=MALFORMED_BEARER.keys())
def test_malformed_bearer_is_401(user, header):
    assert_unauthorized(get_session(header), bearer_error="invalid_token")


def test_parse_basic():
    assert parse_basic(base64.b64encode(b"a@b.c:p:q").decode()) == ("a@b.c", "p:q")
    assert parse_basic(base64.b64encode(b"a@b.c:").decode()) == ("a@b.c", "")
    assert parse_basic("%%%") is None


# --- Session cookies are not credentials for the API --------------------------------------


def test_session_cookie_refused_on_session_resource(user):
    client = Client()
    client.force_login(user)
    assert_unauthorized(client.get(SESSION))
    assert_unauthorized(client.get("/jmap/session"))


def test_session_cookie_refused_on_api(user):
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    assert_unauthorized(client.post(API, ECHO, content_type="application/json"))


def test_session_cookie_does_not_replace_bad_credentials(user):
    client = Client()
    client.force_login(user)
    assert_unauthorized(client.get(SESSION, HTTP_AUTHORIZATION=basic(user.email, "wrong")))


# --- App passwords ------------------------------------------------------------------------


def test_app_password(user, app_password):
    record, plaintext = app_password
    assert record.last_used is None
    assert post_echo(basic(user.email, plaintext)).status_code == 200
    record.refresh_from_db()
    assert record.last_used is not None


@pytest.mark.parametrize("typed", [str.upper, lambda p: p.replace("-", ""), lambda p: p.replace("-", " ")])
def test_app_password_as_retyped(user, app_password, typed):
    assert get_session(basic(user.email, typed(app_password[1]))).status_code == 200


def test_app_password_login_case_insensitive(user, app_password):
    assert get_session(basic(user.email.upper(), app_password[1])).status_code == 200


def test_revoked_app_password(user, app_password):
    record, plaintext = app_password
    app_password_revoke(app_password=record)
    assert_unauthorized(get_session(basic(user.email, plaintext)))
    # The account password still works.
    assert get_session(basic(user.email)).status_code == 200


def test_app_password_of_another_user(user, other_user, app_password):
    assert_unauthorized(get_session(basic(other_user.email, app_password[1])))


def test_app_password_of_inactive_user(user, app_password):
    user_disable(user=user)
    assert_unauthorized(get_session(basic(user.email, app_password[1])))


def test_account_password_shaped_like_an_app_password(db):
    # A real password with an app password's shape falls back to the password check.
    user = user_create(email="shape@example.com", password="abcd-efgh-ijkl-mnop")
    assert get_session(basic(user.email, "abcd-efgh-ijkl-mnop")).status_code == 200


def test_app_password_last_used_written_at_most_once_a_minute(user, app_password):
    record, plaintext = app_password
    recent = timezone.now() - timedelta(seconds=10)
    AppPassword.objects.filter(pk=record.pk).update(last_used=recent)
    assert get_session(basic(user.email, plaintext)).status_code == 200
    record.refresh_from_db()
    assert record.last_used == recent
    old = timezone.now() - timedelta(minutes=5)
    AppPassword.objects.filter(pk=record.pk).update(last_used=old)
    assert get_session(basic(user.email, plaintext)).status_code == 200
    record.refresh_from_db()
    assert record.last_used > old


# --- Bearer tokens ------------------------------------------------------------------------


def test_bearer_token(user, api_token):
    record, plaintext = api_token
    response = post_echo(f"Bearer {plaintext}")
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.last_used is not None


def test_bearer_scheme_case_insensitive(user, api_token):
    assert get_session(f"bearer {api_token[1]}").status_code == 200


def test_bearer_session_username(user, api_token):
    response = get_session(f"Bearer {api_token[1]}")
    assert orjson.loads(response.content)["username"] == user.email


def test_unknown_bearer_token(user, api_token):
    body = assert_unauthorized(get_session("Bearer gw_" + "A" * 43), bearer_error="invalid_token")
    assert "invalid" in body["detail"]


def test_expired_bearer_token(user):
    _, plaintext = api_token_create(user=user, name="soon", expires=timezone.now() + timedelta(hours=1))
    assert get_session(f"Bearer {plaintext}").status_code == 200
    ApiToken.objects.filter(user=user).update(expires=timezone.now() - timedelta(seconds=1))
    assert_unauthorized(get_session(f"Bearer {plaintext}"), bearer_error="invalid_token")


def test_revoked_bearer_token(user, api_token):
    record, plaintext = api_token
    api_token_revoke(api_token=record)
    assert_unauthorized(get_session(f"Bearer {plaintext}"), bearer_error="invalid_token")


def test_bearer_token_of_inactive_user(user, api_token):
    user_disable(user=user)
    assert_unauthorized(get_session(f"Bearer {api_token[1]}"), bearer_error="invalid_token")


def test_token_is_not_a_basic_password(user, api_token):
    assert_unauthorized(get_session(basic(user.email, api_token[1])))


def test_bearer_last_used_written_at_most_once_a_minute(user, api_token):
    record, plaintext = api_token
    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=record.pk).update(last_used=recent)
    assert get_session(f"Bearer {plaintext}").status_code == 200
    record.refresh_from_db()
    assert record.last_used == recent


# --- Remembered Basic credentials ---------------------------------------------------------


def test_verified_credentials_are_remembered(user):
    assert len(credential_cache) == 0
    assert get_session(basic(user.email)).status_code == 200
    assert len(credential_cache) == 1
    assert get_session(basic(user.email)).status_code == 200
    assert len(credential_cache) == 1
    # Failures and app passwords are never remembered.
    get_session(basic(user.email, "wrong"))
    assert len(credential_cache) == 1


def test_password_change_invalidates_remembered_credentials(user):
    assert get_session(basic(user.email)).status_code == 200
    user_set_password(user=user, password="a brand new password")
    assert_unauthorized(get_session(basic(user.email)))
    assert get_session(basic(user.email, "a brand new password")).status_code == 200


def test_setting_the_same_password_again_still_works(user):
    assert get_session(basic(user.email)).status_code == 200
    user_set_password(user=user, password=PASSWORD)  # new salt, new hash
    assert get_session(basic(user.email)).status_code == 200


def test_disable_invalidates_remembered_credentials(user):
    assert get_session(basic(user.email)).status_code == 200
    user_disable(user=user)
    assert_unauthorized(get_session(basic(user.email)))
    user_enable(user=user)
    assert get_session(basic(user.email)).status_code == 200


def test_removed_password_invalidates_remembered_credentials(user):
    assert get_session(basic(user.email)).status_code == 200
    user_set_password(user=user, password=None)
    assert_unauthorized(get_session(basic(user.email)))


@override_settings(AUTH_CACHE_SECONDS=0)
def test_remembering_can_be_turned_off(user):
    assert get_session(basic(user.email)).status_code == 200
    assert len(credential_cache) == 0


@override_settings(PASSWORD_HASHERS=["tests.accounts.hashers.CountingHasher"])
def test_password_hash_runs_once_not_per_request(db):
    from tests.accounts.hashers import CountingHasher

    user = user_create(email="count@example.com", password=PASSWORD)
    CountingHasher.verifications = 0
    for _ in range(5):
        assert get_session(basic(user.email)).status_code == 200
    assert CountingHasher.verifications == 1


def test_credential_cache_is_bounded_lru():
    cache = CredentialCache(max_entries=2)
    keys = [CredentialCache.key(f"u{i}@example.com", "pw") for i in range(3)]
    cache.put(keys[0], user_pk=1, password_hash="h", ttl=60)
    cache.put(keys[1], user_pk=2, password_hash="h", ttl=60)
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[2], user_pk=3, password_hash="h", ttl=60)
    assert len(cache) == 2
    assert cache.get(keys[1]) is None  # least recently used, evicted
    assert cache.get(keys[0]) is not None
    assert cache.get(keys[2]) is not None


def test_credential_cache_entries_expire():
    cache = CredentialCache()
    key = CredentialCache.key("a@example.com", "pw")
    cache.put(key, user_pk=1, password_hash="h", ttl=-1)
    assert cache.get(key) is None
    assert len(cache) == 0


def test_credential_cache_key_is_keyed_and_unambiguous():
    assert CredentialCache.key("a@example.com", "b") != CredentialCache.key("a@example.com", "c")
    # "login\0password" is unambiguous because a login can't contain NUL.
    assert parse_basic(base64.b64encode(b"a\0b:c").decode()) is None
    assert verify_basic("a\0b", "c") is None
    with override_settings(SECRET_KEY="another secret key that is long enough for django"):
        other = CredentialCache.key("a@example.com", "b")
    assert other != CredentialCache.key("a@example.com", "b")


# --- Query counts (one query per authenticated request) -----------------------------------


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def data_queries(captured) -> list[str]:
    """The statements that read or write data, without transaction control.

    The engine runs each method call in its own atomic block, which shows up as SAVEPOINT
    statements inside the test's transaction (or BEGIN IMMEDIATE on SQLite in production);
    what is pinned here is the authentication's own cost.
    """
    return [query["sql"] for query in captured.captured_queries if not query["sql"].startswith(TRANSACTION_CONTROL)]


def test_query_count_cached_basic_api_request(user, django_assert_max_num_queries):
    assert post_echo(basic(user.email)).status_code == 200  # verifies and remembers
    with django_assert_max_num_queries(3) as captured:
        assert post_echo(basic(user.email)).status_code == 200
    [query] = data_queries(captured)  # the user, by primary key
    assert query.startswith("SELECT") and "accounts_user" in query


def test_query_count_bearer_api_request(user, api_token, django_assert_max_num_queries):
    plaintext = api_token[1]
    with django_assert_max_num_queries(4) as captured:
        assert post_echo(f"Bearer {plaintext}").status_code == 200
    assert len(data_queries(captured)) == 2  # token with user, then last_used (first use)
    with django_assert_max_num_queries(3) as captured:
        assert post_echo(f"Bearer {plaintext}").status_code == 200
    [query] = data_queries(captured)  # token joined with its user
    assert "accounts_apitoken" in query and "accounts_user" in query


def test_query_count_app_password_api_request(user, app_password, django_assert_max_num_queries):
    plaintext = app_password[1]
    assert post_echo(basic(user.email, plaintext)).status_code == 200
    with django_assert_max_num_queries(3) as captured:
        assert post_echo(basic(user.email, plaintext)).status_code == 200
    [query] = data_queries(captured)  # app password joined with its user, by digest
    assert "accounts_apppassword" in query and "accounts_user" in query


def test_query_count_authenticate_api(user, api_token, django_assert_num_queries):
    request = RequestFactory().get(SESSION, HTTP_AUTHORIZATION=basic(user.email))
    authenticate_api(request)
    with django_assert_num_queries(1):
        assert authenticate_api(request).pk == user.pk
    ApiToken.objects.filter(pk=api_token[0].pk).update(last_used=timezone.now())
    request = RequestFactory().get(SESSION, HTTP_AUTHORIZATION=f"Bearer {api_token[1]}")
    with django_assert_num_queries(1):
        assert authenticate_api(request).pk == user.pk


def test_missing_header_costs_no_query(user, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(AuthenticationFailed):
        authenticate_api(RequestFactory().get(SESSION))


# --- Failed-login limits ------------------------------------------------------------------


_WINDOWED = {
    "test_limit_per_user",
    "test_limit_per_address",
    "test_bearer_and_malformed_failures_count_per_address",
    "test_ipv6_counted_per_64",
    "test_successes_and_missing_credentials_do_not_count",
    "test_limit_applies_to_admin_login",
}


@pytest.fixture(autouse=True)
def _whole_failure_window(request):
    """The limiter counts in fixed 60-second windows aligned on the clock: a test whose
    attempts straddled a window edge would see its count restart. Start such tests early
    in a window (they take a few seconds at most)."""
    if request.node.name in _WINDOWED:
        left = 60 - time.time() % 60
        if left < 15:
            time.sleep(left + 0.1)


def assert_too_many(response) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert 1 <= int(response["Retry-After"]) <= 60
    body = orjson.loads(response.content)
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
def test_limit_per_user(user, other_user):
    for attempt in range(3):
        # A different address each time: only the per-user counter can trip.
        assert_unauthorized(get_session(basic(user.email, "wrong"), address=f"198.51.100.{attempt}"))
    # Now even the right password is refused, from anywhere, without being checked.
    assert_too_many(get_session(basic(user.email), address="203.0.113.9"))
    assert_too_many(get_session(basic(user.email.upper(), "wrong"), address="203.0.113.10"))
    # Other users are unaffected.
    assert get_session(basic(other_user.email), address="203.0.113.9").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
def test_limit_per_address(user, other_user):
    for attempt in range(3):
        assert_unauthorized(get_session(basic(f"guess{attempt}@example.com", "x"), address="198.51.100.7"))
    assert_too_many(get_session(basic(user.email), address="198.51.100.7"))
    assert_too_many(post_echo(basic(user.email), address="198.51.100.7"))
    assert_too_many(get_session(f"Bearer gw_{'a' * 43}", address="198.51.100.7"))
    # The same user from another address is fine.
    assert get_session(basic(user.email), address="198.51.100.8").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
def test_bearer_and_malformed_failures_count_per_address(user, api_token):
    get_session("Bearer gw_unknown", address="198.51.100.20")
    get_session("Basic ***", address="198.51.100.20")
    get_session(raw_basic(b"nocolon"), address="198.51.100.20")
    assert_too_many(get_session("Bearer gw_another_guess", address="198.51.100.20"))
    # A valid token is a 256-bit secret, not a guess: it works even from a limited address
    # (the limiter is only consulted when a token fails, which keeps it off the hot path).
    assert get_session(f"Bearer {api_token[1]}", address="198.51.100.20").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
def test_ipv6_counted_per_64(user):
    for host in range(1, 4):
        get_session(basic(user.email + ".x", "wrong"), address=f"2001:db8:1:2::{host}")
    assert_too_many(get_session(basic(user.email), address="2001:db8:1:2:ffff::1"))
    assert get_session(basic(user.email), address="2001:db8:1:3::1").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
def test_successes_and_missing_credentials_do_not_count(user):
    for _ in range(5):
        assert get_session(basic(user.email)).status_code == 200
        assert_unauthorized(get_session(None))
    assert get_session(basic(user.email)).status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=2, AUTH_FAILURE_WINDOW=60)
def test_limit_applies_to_admin_login(user, rf):
    request = rf.post("/admin/login/", REMOTE_ADDR="198.51.100.30")
    assert authenticate(request, username=user.email, password="wrong") is None
    assert authenticate(request, username=user.email, password="wrong") is None
    assert authenticate(request, username=user.email, password=PASSWORD) is None


def test_client_address():
    factory = RequestFactory()
    assert client_address(factory.get("/", REMOTE_ADDR="192.0.2.5")) == "192.0.2.5"
    assert client_address(factory.get("/", REMOTE_ADDR="::ffff:192.0.2.5")) == "192.0.2.5"
    assert client_address(factory.get("/", REMOTE_ADDR="2001:db8::1")) == "2001:db8::/64"
    assert client_address(None) is None


# --- The admin login backend --------------------------------------------------------------


def test_admin_backend_matches_email_case_insensitively(user, rf):
    request = rf.post("/admin/login/")
    assert authenticate(request, username="ALICE@example.COM", password=PASSWORD) == user
    assert authenticate(request, username=user.email, password="wrong") is None
    assert authenticate(request, email=user.email, password=PASSWORD) == user


def test_admin_backend_refuses_inactive_user(user, rf):
    user_disable(user=user)
    assert authenticate(rf.post("/admin/login/"), username=user.email, password=PASSWORD) is None


def test_admin_login_page(user, client):
    user_create(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    response = client.post("/admin/login/", {"username": "ROOT@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
