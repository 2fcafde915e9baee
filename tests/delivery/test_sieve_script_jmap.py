"""SieveScript/get, /set, /query, /changes and /validate (RFC 9661)."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import CallAssertions, JmapClient

CORE = "urn:ietf:params:jmap:core"
SIEVE = "urn:ietf:params:jmap:sieve"
USING = [CORE, SIEVE]
IMAPFLAGS_SCRIPT = (
    'require "imap4flags";\r\nif address :is ["To", "Cc"] "jmap@ietf.org" {\r\n  setflag "\\\\Flagged";\r\n}\r\n'
)


class SieveApi(CallAssertions):
    def __init__(self, client: JmapClient) -> None:
        self.client = client
        self.account_id = client.account_id

    def call(self, name: str, arguments: dict) -> list:
        return self.client.call(name, {"accountId": self.account_id, **arguments}, using=USING)

    def upload(self, text: str | bytes) -> str:
        data = text.encode() if isinstance(text, str) else text
        response = self.client.http.post(
            f"/jmap/upload/{self.account_id}/",
            data,
            content_type="application/sieve",
            HTTP_AUTHORIZATION=self.client.auth,
        )
        assert response.status_code == 201, response.content
        return orjson.loads(response.content)["blobId"]

    def create(self, text: str, name: str | None = None, **extra) -> dict:
        result = self.ok("SieveScript/set", {"create": {"A": {"name": name, "blobId": self.upload(text)}}, **extra})
        assert result["notCreated"] is None, result["notCreated"]
        return result


@pytest.fixture
def api(jmap) -> SieveApi:
    return SieveApi(jmap)


def test_capability_in_session(jmap):
    session = jmap.session()
    assert session["capabilities"][SIEVE] == {}
    value = session["accounts"][jmap.account_id]["accountCapabilities"][SIEVE]
    assert value["maxSizeScriptName"] == 512 and value["maxNumberRedirects"] >= 1
    for extension in ("fileinto", "imap4flags", "vacation", "reject", "envelope"):
        assert extension in value["sieveExtensions"]
    assert set(value) == {
        "implementation", "maxSizeScriptName", "maxSizeScript", "maxNumberScripts", "maxNumberRedirects",
        "sieveExtensions", "notificationMethods", "externalLists",
    }  # fmt: skip
    assert session["primaryAccounts"][SIEVE] == jmap.account_id


def test_create_activate_and_get(api):
    # RFC 9661 §2.4.1: create and activate in one call.
    result = api.create(IMAPFLAGS_SCRIPT, onSuccessActivateScript="#A")
    created = result["created"]["A"]
    assert created["isActive"] is True and created["name"]
    script_id = created["id"]
    [script] = api.ok("SieveScript/get", {"ids": [script_id]})["list"]
    assert script["isActive"] is True and script["name"] == created["name"]
    download = api.client.http.get(
        f"/jmap/download/{api.account_id}/{script['blobId']}/s.siv", HTTP_AUTHORIZATION=api.client.auth
    )
    content = b"".join(download.streaming_content if download.streaming else [download.content])
    assert content == IMAPFLAGS_SCRIPT.encode()
    # A second script activated deactivates the first, reported in "updated".
    second = api.create("keep;\r\n", name="plain", onSuccessActivateScript="#A")
    assert second["created"]["A"]["isActive"] is True
    assert second["updated"] == {script_id: {"isActive": False}}
    states = {s["name"]: s["isActive"] for s in api.ok("SieveScript/get", {"ids": None})["list"]}
    assert states == {created["name"]: False, "plain": True}


def test_deactivate_then_destroy(api):
    script_id = api.create("keep;\r\n", name="one", onSuccessActivateScript="#A")["created"]["A"]["id"]
    refused = api.ok("SieveScript/set", {"destroy": [script_id]})
    assert refused["notDestroyed"][script_id]["type"] == "scriptIsActive"
    done = api.ok("SieveScript/set", {"onSuccessDeactivateScript": True})
    assert done["updated"] == {script_id: {"isActive": False}}
    assert api.ok("SieveScript/set", {"destroy": [script_id]})["destroyed"] == [script_id]


def test_invalid_sieve_reports_line_and_text(api):
    blob = api.upload('require "fileinto";\r\nfileinto "a"\r\nkeep;\r\n')
    create = {"A": {"name": "bad", "blobId": blob}}
    result = api.ok("SieveScript/set", {"create": create, "onSuccessActivateScript": "#A"})
    error = result["notCreated"]["A"]
    assert error["type"] == "invalidSieve" and "line " in error["description"]
    assert result["created"] is None and result["updated"] is None
    validated = api.ok("SieveScript/validate", {"blobId": blob})
    assert validated["error"]["type"] == "invalidSieve" and validated["error"]["description"] == error["description"]
    assert api.ok("SieveScript/validate", {"blobId": api.upload("keep;")})["error"] is None
    missing = api.ok("SieveScript/validate", {"blobId": "b" + "0" * 64})["error"]
    assert missing["type"] == "blobNotFound"
    unsupported = api.ok("SieveScript/validate", {"blobId": api.upload('require "nosuchext";\r\n')})["error"]
    assert unsupported["type"] == "invalidSieve"


def test_names_unique_and_rename(api):
    first = api.create("keep;", name="work")["created"]["A"]["id"]
    clash = api.ok("SieveScript/set", {"create": {"B": {"name": "work", "blobId": api.upload("keep;")}}})
    assert clash["notCreated"]["B"] == {
        "type": "alreadyExists",
        "description": "a script named 'work' exists",
        "existingId": first,
    }
    renamed = api.ok("SieveScript/set", {"update": {first: {"name": "home"}}})
    assert renamed["updated"] == {first: None}
    bad_name = api.ok("SieveScript/set", {"update": {first: {"name": ""}}})
    assert bad_name["notUpdated"][first]["type"] == "invalidProperties"
    new_blob = api.upload("discard;")
    api.ok("SieveScript/set", {"update": {first: {"blobId": new_blob}}})
    [script] = api.ok("SieveScript/get", {"ids": [first]})["list"]
    assert script == {"id": first, "name": "home", "blobId": new_blob, "isActive": False}


def test_query_changes_and_other_users(api, other_jmap):
    api.create("keep;", name="b-script")
    api.create("keep;", name="a-script", onSuccessActivateScript="#A")
    state = api.ok("SieveScript/get", {"ids": []})["state"]
    ids = api.ok("SieveScript/query", {"sort": [{"property": "name"}]})["ids"]
    names = [s["name"] for s in api.ok("SieveScript/get", {"ids": ids})["list"]]
    assert names == ["a-script", "b-script"]
    active = api.ok("SieveScript/query", {"filter": {"isActive": True}})["ids"]
    assert len(active) == 1
    assert api.ok("SieveScript/changes", {"sinceState": state})["created"] == []
    # Another user sees none of them: notFound, and its own empty list.
    other = SieveApi(other_jmap)
    assert other.ok("SieveScript/get", {"ids": ids})["notFound"] == ids
    assert other.ok("SieveScript/get", {"ids": None})["list"] == []


def _queries(api: SieveApi, method: str, arguments: dict) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        api.ok(method, arguments)
    return len(captured)


def test_get_and_query_count_independent_of_the_number_of_scripts(api):
    api.create("keep;", name="s0")
    api.ok("SieveScript/get", {"ids": None})  # warm the credential cache
    one_get = _queries(api, "SieveScript/get", {"ids": None})
    one_query = _queries(api, "SieveScript/query", {"sort": [{"property": "name"}]})
    for index in range(1, 8):
        api.create("keep;", name=f"s{index}")
    assert _queries(api, "SieveScript/get", {"ids": None}) == one_get <= 4
    assert _queries(api, "SieveScript/query", {"sort": [{"property": "name"}]}) == one_query <= 4
