"""RFC 8620 §2: the Session resource, its discovery URL and its authentication."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import orjson
import pytest

from accounts.models import User
from jmap.registry import registry
from tests.conftest import basic
from tests.jmaptest.methods import CAPABILITY

CORE = "urn:ietf:params:jmap:core"
MAX_UNSIGNED = 2**53 - 1
SESSION_URLS = ["/.well-known/jmap", "/jmap/session"]
CORE_LIMITS = [
    "maxSizeUpload",
    "maxConcurrentUpload",
    "maxSizeRequest",
    "maxConcurrentRequests",
    "maxCallsInRequest",
    "maxObjectsInGet",
    "maxObjectsInSet",
]
ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# RFC 6570 level 1: only simple {name} expressions, no operators.
TEMPLATE_EXPRESSION = re.compile(r"\{([^}]*)\}")
VARNAME = re.compile(r"[A-Za-z0-9_]+")


def is_unsigned_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UNSIGNED


def template_variables(template: str) -> list[str]:
    names = TEMPLATE_EXPRESSION.findall(template)
    assert all(VARNAME.fullmatch(name) for name in names), template
    assert "{" not in TEMPLATE_EXPRESSION.sub("", template) and "}" not in TEMPLATE_EXPRESSION.sub("", template)
    return names


def assert_absolute(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme in ("https", "http") and parts.netloc, url


# --- Discovery and authentication ---------------------------------------------------------


@pytest.mark.parametrize("path", SESSION_URLS)
def test_session_needs_credentials(client, user, path):
    response = client.get(path)
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"]
    assert user.email.encode() not in response.content


@pytest.mark.parametrize("path", SESSION_URLS)
def test_session_refuses_a_wrong_password(client, user, path):
    response = client.get(path, HTTP_AUTHORIZATION=basic(user.email, "not the password"))
    assert response.status_code == 401
    assert b"capabilities" not in response.content


def test_well_known_answers_the_session_itself(jmap):
    # RFC 8620 §2.2: /.well-known/jmap is the Session resource (after any redirects).
    well_known = jmap.http.get("/.well-known/jmap", HTTP_AUTHORIZATION=jmap.auth, follow=True)
    direct = jmap.http.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth)
    assert well_known.status_code == direct.status_code == 200
    assert well_known["Content-Type"] == "application/json"
    assert orjson.loads(well_known.content) == orjson.loads(direct.content)


@pytest.mark.parametrize("path", SESSION_URLS)
def test_session_is_not_cached(jmap, path):
    response = jmap.http.get(path, HTTP_AUTHORIZATION=jmap.auth)
    assert "no-store" in response["Cache-Control"]


def test_session_head_and_other_methods(jmap):
    head = jmap.http.head("/.well-known/jmap", HTTP_AUTHORIZATION=jmap.auth)
    assert head.status_code == 200 and head.content == b""
    post = jmap.http.post("/.well-known/jmap", b"{}", content_type="application/json", HTTP_AUTHORIZATION=jmap.auth)
    assert post.status_code == 405


def test_session_has_every_property(jmap):
    session = jmap.session()
    required = {
        "capabilities",
        "accounts",
        "primaryAccounts",
        "username",
        "apiUrl",
        "downloadUrl",
        "uploadUrl",
        "eventSourceUrl",
        "state",
    }
    assert required <= set(session)


# --- capabilities ------------------------------------------------------------------------


def test_core_capability_has_every_limit(jmap, settings):
    core = jmap.session()["capabilities"][CORE]
    for name in CORE_LIMITS:
        assert is_unsigned_int(core[name]), name
        assert core[name] == settings.JMAP[name]
    algorithms = core["collationAlgorithms"]
    assert isinstance(algorithms, list) and algorithms
    assert all(isinstance(item, str) for item in algorithms)
    assert {"i;ascii-casemap", "i;unicode-casemap"} <= set(algorithms)


def test_core_limits_follow_the_settings(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxCallsInRequest": 7, "maxObjectsInGet": 11}
    core = jmap.session()["capabilities"][CORE]
    assert core["maxCallsInRequest"] == 7 and core["maxObjectsInGet"] == 11


def test_limits_meet_the_suggested_minimums(jmap):
    # RFC 8620 §2 suggests minimums that let clients use the network efficiently.
    core = jmap.session()["capabilities"][CORE]
    minimums = {
        "maxSizeUpload": 50_000_000,
        "maxConcurrentUpload": 4,
        "maxSizeRequest": 10_000_000,
        "maxConcurrentRequests": 4,
        "maxCallsInRequest": 16,
        "maxObjectsInGet": 500,
        "maxObjectsInSet": 500,
    }
    for name, minimum in minimums.items():
        assert core[name] >= minimum, name


def test_capabilities_are_what_the_registry_implements(jmap):
    capabilities = jmap.session()["capabilities"]
    assert set(capabilities) == set(registry.advertised())
    assert CORE in capabilities and CAPABILITY in capabilities
    assert all(isinstance(value, dict) for value in capabilities.values())


# --- accounts ------------------------------------------------------------------------------


def test_accounts_list_the_users_own_account(jmap, other_jmap):
    session = jmap.session()
    accounts = session["accounts"]
    assert list(accounts) == [jmap.account_id]
    assert other_jmap.account_id not in accounts
    account = accounts[jmap.account_id]
    assert ID.fullmatch(jmap.account_id)
    assert account["name"] == "alice@example.com"
    assert account["isPersonal"] is True
    assert account["isReadOnly"] is False


def test_account_capabilities_are_advertised_capabilities(jmap):
    session = jmap.session()
    account_capabilities = session["accounts"][jmap.account_id]["accountCapabilities"]
    # Each capability with methods on this account is there (RFC 8620 §2), with an object.
    assert CAPABILITY in account_capabilities
    for urn, value in account_capabilities.items():
        assert urn in session["capabilities"]
        assert isinstance(value, dict)


def test_primary_accounts(jmap):
    session = jmap.session()
    primary = session["primaryAccounts"]
    assert primary[CAPABILITY] == jmap.account_id
    assert CORE not in primary  # RFC 8620 §2: "SHOULD NOT be present"
    for urn, account_id in primary.items():
        assert urn in session["accounts"][account_id]["accountCapabilities"]


def test_username_is_the_login(jmap, user):
    assert jmap.session()["username"] == user.email


# --- URLs --------------------------------------------------------------------------------


def test_api_url_is_absolute_and_answers(jmap):
    api_url = jmap.session()["apiUrl"]
    assert_absolute(api_url)
    body = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"ok": True}, "c"]]})
    response = jmap.http.post(
        urlsplit(api_url).path, body, content_type="application/json", HTTP_AUTHORIZATION=jmap.auth
    )
    assert response.status_code == 200
    assert orjson.loads(response.content)["methodResponses"] == [["Core/echo", {"ok": True}, "c"]]


def test_download_url_template(jmap):
    template = jmap.session()["downloadUrl"]
    assert_absolute(template)
    assert set(template_variables(template)) >= {"accountId", "blobId", "type", "name"}
    # RECOMMENDED: the type variable in the query section (slashes in media types).
    assert template.index("{type}") > template.index("?")


def test_upload_url_template(jmap):
    template = jmap.session()["uploadUrl"]
    assert_absolute(template)
    assert "accountId" in template_variables(template)


def test_event_source_url_template(jmap):
    template = jmap.session()["eventSourceUrl"]
    assert_absolute(template)
    assert set(template_variables(template)) >= {"types", "closeafter", "ping"}


def test_urls_use_the_public_url_when_configured(jmap, settings):
    settings.PUBLIC_URL = "https://jmap.example.net"
    session = jmap.session()
    for key in ("apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"):
        assert session[key].startswith("https://jmap.example.net/"), key


def test_urls_follow_the_host_asked_for(jmap):
    response = jmap.http.get("/.well-known/jmap", HTTP_AUTHORIZATION=jmap.auth, HTTP_HOST="localhost")
    session = orjson.loads(response.content)
    assert urlsplit(session["apiUrl"]).netloc == "localhost"


# --- state ---------------------------------------------------------------------------------


def test_state_is_a_short_string_and_stable(jmap):
    first, second = jmap.session()["state"], jmap.session()["state"]
    assert isinstance(first, str) and 0 < len(first) <= 64
    assert first == second


def test_session_state_is_on_every_response(jmap):
    state = jmap.session()["state"]
    response = jmap.request([["Core/echo", {}, "c"]])
    assert response["sessionState"] == state


def test_state_changes_when_the_session_changes(jmap, user):
    before = jmap.session()["state"]
    # What a change of the user's accounts (e.g. a share) does to the session generation.
    User.objects.filter(pk=user.pk).update(session_generation=user.session_generation + 1)
    after = jmap.session()["state"]
    assert after != before
    assert jmap.request([["Core/echo", {}, "c"]])["sessionState"] == after


def test_each_user_sees_their_own_session(jmap, other_jmap):
    mine, theirs = jmap.session(), other_jmap.session()
    assert mine["username"] != theirs["username"]
    assert set(mine["accounts"]).isdisjoint(theirs["accounts"])
