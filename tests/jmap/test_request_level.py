"""RFC 8620 §3 (requests, responses, errors) and §4 (Core/echo), through the HTTP API."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from jmap import views
from tests.jmap.conftest import USING
from tests.jmaptest.failing import SECRET
from tests.jmaptest.methods import CAPABILITY
from tests.jmaptest.models import Note

CORE = "urn:ietf:params:jmap:core"
URN = "urn:ietf:params:jmap:error:"


# --- helpers shared with the other request-level test modules -----------------------------


def assert_problem(response, kind: str, *, limit: str | None = None, status: int = 400) -> dict:
    """A request-level error: RFC 7807 problem details with the JMAP type (RFC 8620 §3.6.1)."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    assert b"Traceback" not in response.content
    problem = orjson.loads(response.content)
    assert problem["type"] == URN + kind, problem
    assert problem["status"] == status
    assert isinstance(problem["detail"], str) and problem["detail"]
    if limit is not None:
        assert problem["limit"] == limit  # RFC 8620 §3.6.1: MUST be present for "limit"
    else:
        assert "limit" not in problem
    return problem


def envelope(*calls: list, using: list[str] | None = None, **extra) -> bytes:
    return orjson.dumps({"using": using or USING, "methodCalls": list(calls), **extra})


def responses(jmap, *calls: list, using: list[str] | None = None) -> list[list]:
    return jmap.request(list(calls), using=using or USING)["methodResponses"]


def note_state(jmap) -> str:
    return responses(jmap, ["Note/get", {"accountId": jmap.account_id, "ids": []}, "s"])[0][1]["state"]


def asgi_post(user_auth: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """POST through Django's ASGI handler with exactly these headers and body chunks."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jmap/api/",
        "raw_path": b"/jmap/api/",
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"testserver"), (b"authorization", user_auth.encode()), *headers],
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the response is sent
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    # As Django's test client does: keep the test's transaction (and connection) open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(ASGIHandler())(scope, receive, send)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return status, body


class RawResponse:
    """Just enough of an HttpResponse for assert_problem."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status_code, self.content, self._type = status, body, content_type

    def __getitem__(self, name: str) -> str:
        assert name == "Content-Type"
        return self._type


# --- HTTP framing ----------------------------------------------------------------------------


def test_api_needs_credentials(client, user):
    response = client.post("/jmap/api/", envelope(["Core/echo", {}, "c"]), content_type="application/json")
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"]


def test_api_accepts_only_post(jmap):
    assert jmap.http.get("/jmap/api/", HTTP_AUTHORIZATION=jmap.auth).status_code == 405


def test_successful_response_is_json_and_not_cached(jmap):
    response = jmap.post(envelope(["Core/echo", {}, "c"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json"])
def test_json_content_type_variants_are_accepted(jmap, content_type):
    response = jmap.post(envelope(["Core/echo", {}, "c"]), content_type=content_type)
    assert response.status_code == 200


# --- notJSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/jsonx",
        "text/json",
        "application/problem+json",
        "multipart/form-data; boundary=x",
    ],
)
def test_not_json_content_type(jmap, content_type):
    response = jmap.http.post(
        "/jmap/api/", envelope(["Core/echo", {}, "c"]), content_type=content_type, HTTP_AUTHORIZATION=jmap.auth
    )
    assert_problem(response, "notJSON")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b" ",
        b"{",
        b"}",
        b"[",
        b'{"using": [',
        b"nul",
        b"undefined",
        b"{using: []}",
        b"{'using': []}",
        b'{"using": [], "methodCalls": [],}',
        b'{"a" 1}',
        b'{"a": 1} {"b": 2}',
        b'{"a": 1}x',
        b"// c\n{}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 0x10}',
        b'{"a": 01}',
        b'{"a": .5}',
        b'{"a": 1.}',
        b'{"a": +1}',
        b'{"a": "\t"}',
        b'{"a": "\\x41"}',
        b'{"a": "\\u12"}',
        b'{"a": "unterminated}',
    ],
)
def test_not_json_bad_json(jmap, body):
    assert_problem(jmap.post(body), "notJSON")


@pytest.mark.parametrize(
    "bad_bytes",
    [
        b"\xff",
        b"\xfe",
        b"\xc0\xaf",  # never valid; an overlong "/"
        b"\xe2\x82",
        b"\xf0\x9f\x98",  # truncated sequences
        b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8 (CESU)
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"caf\xe9",  # Latin-1
    ],
)
def test_not_json_invalid_utf8(jmap, bad_bytes):
    body = b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": "' + bad_bytes
    body += b'"}, "c"]]}'
    assert_problem(jmap.post(body), "notJSON")


def test_not_json_byte_order_mark(jmap):
    # RFC 8259 §8.1: implementations MUST NOT add a BOM; I-JSON is plain UTF-8.
    assert_problem(jmap.post(b"\xef\xbb\xbf" + envelope(["Core/echo", {}, "c"])), "notJSON")


def test_not_json_utf16(jmap):
    assert_problem(jmap.post(envelope(["Core/echo", {}, "c"]).decode().encode("utf-16")), "notJSON")


@pytest.mark.parametrize(
    "body",
    [
        b'{"using": ["urn:ietf:params:jmap:core"], "using": [], "methodCalls": []}',
        b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": 1, "a": 2}, "c"]]}',
        b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"x": {"y": [{"k": 1, "k": 1}]}},'
        b' "c"]]}',
        # The same name spelled with an escape is still the same name (RFC 8259 §8.3).
        b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": 1, "\\u0061": 2}, "c"]]}',
    ],
)
def test_not_json_duplicate_member_names(jmap, body):
    # I-JSON (RFC 7493 §2.3): objects MUST NOT have members with duplicate names.
    assert_problem(jmap.post(body), "notJSON")


# --- notRequest ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_value",
    [
        [],
        "request",
        1,
        None,
        True,
        {},
        {"methodCalls": []},  # no using
        {"using": CORE, "methodCalls": []},
        {"using": None, "methodCalls": []},
        {"using": [CORE, 1], "methodCalls": []},
        {"using": {CORE: True}, "methodCalls": []},
        {"using": [CORE]},  # no methodCalls
        {"using": [CORE], "methodCalls": None},
        {"using": [CORE], "methodCalls": {"c": ["Core/echo", {}, "c"]}},
        {"using": [CORE], "methodCalls": ["Core/echo", {}, "c"]},  # one invocation, not a list of them
        {"using": [CORE], "methodCalls": [["Core/echo", {}]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, "c", "extra"]]},
        {"using": [CORE], "methodCalls": [[]]},
        {"using": [CORE], "methodCalls": [[None, {}, "c"]]},
        {"using": [CORE], "methodCalls": [[["Core/echo"], {}, "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", [], "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", None, "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", "{}", "c"]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, 1]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, None]]},
        {"using": [CORE], "methodCalls": [["Core/echo", {}, "ok"], ["Core/echo", {}]]},  # a later one is bad
        {"using": [CORE], "methodCalls": [{"name": "Core/echo", "arguments": {}, "id": "c"}]},
        {"using": [CORE], "methodCalls": [], "createdIds": []},
        {"using": [CORE], "methodCalls": [], "createdIds": "k1"},
        {"using": [CORE], "methodCalls": [], "createdIds": {"k1": 5}},
        {"using": [CORE], "methodCalls": [], "createdIds": {"k1": None}},
    ],
)
def test_not_request(jmap, request_value):
    assert_problem(jmap.post(orjson.dumps(request_value)), "notRequest")


def test_not_request_runs_no_call(jmap):
    before = note_state(jmap)
    body = {
        "using": USING,
        "methodCalls": [
            ["Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": "never"}}}, "c1"],
            ["Core/echo", {}],
        ],
    }
    assert_problem(jmap.post(orjson.dumps(body)), "notRequest")
    assert note_state(jmap) == before
    assert not Note.objects.filter(title="never").exists()


# --- unknownCapability and "using" -------------------------------------------------------------


def test_unknown_capability(jmap):
    problem = assert_problem(jmap.post(envelope(using=[CORE, "https://example.com/apis/foobar"])), "unknownCapability")
    assert "https://example.com/apis/foobar" in problem["detail"]


def test_unknown_capability_even_if_unused(jmap):
    body = envelope(["Core/echo", {}, "c"], using=[CORE, "urn:ietf:params:jmap:nonesuch"])
    assert_problem(jmap.post(body), "unknownCapability")


def test_using_must_include_core(jmap):
    # RFC 8620 §3.3: core MUST be in "using"; this server answers unknownCapability.
    assert_problem(jmap.post(envelope(["Core/echo", {}, "c"], using=[CAPABILITY])), "unknownCapability")
    assert_problem(jmap.post(orjson.dumps({"using": [], "methodCalls": []})), "unknownCapability")


def test_using_may_list_capabilities_the_calls_do_not_use(jmap):
    assert responses(jmap, ["Core/echo", {"a": 1}, "c"], using=[CORE, CAPABILITY, CORE]) == [
        ["Core/echo", {"a": 1}, "c"]
    ]


def test_unknown_request_properties_are_ignored(jmap):
    body = orjson.dumps(
        {
            "using": [CORE],
            "methodCalls": [["Core/echo", {"a": 1}, "c"]],
            "@type": "Request",
            "futureExtension": {"x": [1, 2]},
            "foo": None,
        }
    )
    response = jmap.post(body)
    assert response.status_code == 200
    result = orjson.loads(response.content)
    assert result["methodResponses"] == [["Core/echo", {"a": 1}, "c"]]
    assert "futureExtension" not in result and "createdIds" not in result


# --- limits ------------------------------------------------------------------------------------


def test_limit_max_calls_in_request(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxCallsInRequest": 4}
    calls = [["Core/echo", {"i": i}, f"c{i}"] for i in range(5)]
    assert len(responses(jmap, *calls[:4])) == 4
    assert_problem(jmap.post(envelope(*calls)), "limit", limit="maxCallsInRequest")


def test_limit_max_calls_in_request_runs_no_call(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxCallsInRequest": 2}
    before = note_state(jmap)
    calls = [
        ["Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": f"t{i}"}}}, f"c{i}"] for i in range(3)
    ]
    assert_problem(jmap.post(envelope(*calls)), "limit", limit="maxCallsInRequest")
    assert note_state(jmap) == before


def padded_echo(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes."""
    base = envelope(["Core/echo", {"pad": ""}, "c"], using=[CORE])
    padding = size - len(base)
    assert padding >= 0
    return base.replace(b'"pad":""', b'"pad":"' + b"x" * padding + b'"')


def test_limit_max_size_request(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxSizeRequest": 4096}
    assert jmap.post(padded_echo(4096)).status_code == 200
    assert_problem(jmap.post(padded_echo(4097)), "limit", limit="maxSizeRequest")


def test_limit_max_size_request_default_is_enforced(jmap, settings):
    maximum = settings.JMAP["maxSizeRequest"]
    assert_problem(jmap.post(padded_echo(maximum + 1)), "limit", limit="maxSizeRequest")


def test_limit_when_content_length_claims_too_much(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxSizeRequest": 4096}
    response = jmap.http.post(
        "/jmap/api/",
        padded_echo(100),
        content_type="application/json",
        HTTP_AUTHORIZATION=jmap.auth,
        CONTENT_LENGTH="1000000",
    )
    assert_problem(response, "limit", limit="maxSizeRequest")


def test_content_length_claiming_too_little_is_never_read_past(jmap, settings):
    # Only the declared length is the body: the rest is not JSON we accept.
    settings.JMAP = {**settings.JMAP, "maxSizeRequest": 4096}
    response = jmap.http.post(
        "/jmap/api/",
        padded_echo(50_000),
        content_type="application/json",
        HTTP_AUTHORIZATION=jmap.auth,
        CONTENT_LENGTH="100",
    )
    assert_problem(response, "notJSON")


def test_limit_over_asgi_without_content_length(jmap, settings):
    # A chunked upload has no Content-Length; the body must still be bounded.
    settings.JMAP = {**settings.JMAP, "maxSizeRequest": 4096}
    body = padded_echo(20_000)
    chunks = [body[index : index + 1000] for index in range(0, len(body), 1000)]
    status, content = asgi_post(jmap.auth, chunks, [(b"content-type", b"application/json")])
    assert_problem(RawResponse(status, content, "application/problem+json"), "limit", limit="maxSizeRequest")
    status, content = asgi_post(jmap.auth, [padded_echo(4096)], [(b"content-type", b"application/json")])
    assert status == 200 and orjson.loads(content)["methodResponses"][0][0] == "Core/echo"


def test_limit_over_asgi_when_content_length_lies(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxSizeRequest": 4096}
    headers = [(b"content-type", b"application/json"), (b"content-length", b"10")]
    status, content = asgi_post(jmap.auth, [padded_echo(20_000)], headers)
    # Django's ASGI handler spools the whole body, so the view sees (and refuses) all of it.
    assert_problem(RawResponse(status, content, "application/problem+json"), "limit", limit="maxSizeRequest")


def test_limit_max_concurrent_requests(jmap, other_jmap, user, settings):
    maximum = settings.JMAP["maxConcurrentRequests"]
    with ExitStack() as running:
        for _ in range(maximum):
            running.enter_context(views._requests.slot(user.pk, maximum))
        assert_problem(jmap.post(envelope(["Core/echo", {}, "c"])), "limit", limit="maxConcurrentRequests")
        # The limit is per user: someone else is not held up.
        assert other_jmap.post(envelope(["Core/echo", {}, "c"])).status_code == 200
    assert jmap.post(envelope(["Core/echo", {}, "c"])).status_code == 200


# --- the Response object -----------------------------------------------------------------------


def test_calls_are_processed_in_order(jmap):
    account = jmap.account_id
    result = responses(
        jmap,
        ["Note/set", {"accountId": account, "create": {"k1": {"title": "first"}}}, "a"],
        ["Note/get", {"accountId": account, "ids": ["#k1"], "properties": ["title"]}, "b"],
        ["Note/set", {"accountId": account, "destroy": ["#k1"]}, "c"],
        ["Note/get", {"accountId": account, "ids": ["#k1"]}, "d"],
        ["Core/echo", {"last": True}, "e"],
    )
    assert [(name, call_id) for name, _, call_id in result] == [
        ("Note/set", "a"),
        ("Note/get", "b"),
        ("Note/set", "c"),
        ("Note/get", "d"),
        ("Core/echo", "e"),
    ]
    created = result[0][1]["created"]["k1"]["id"]
    assert result[1][1]["list"] == [{"id": created, "title": "first"}]
    assert result[2][1]["destroyed"] == [created]
    assert result[3][1]["notFound"] == ["#k1"]


def test_call_ids_are_echoed_even_if_repeated_or_odd(jmap):
    calls = [
        ["Core/echo", {"n": 1}, "same"],
        ["Core/echo", {"n": 2}, "same"],
        ["Core/echo", {}, ""],
        ["Core/echo", {}, "#☃ with spaces"],
    ]
    assert responses(jmap, *calls, using=[CORE]) == calls


def test_empty_method_calls(jmap):
    result = jmap.request([], using=[CORE])
    assert result["methodResponses"] == []
    assert isinstance(result["sessionState"], str) and result["sessionState"]


def test_created_ids_absent_unless_given(jmap):
    result = jmap.request(
        [["Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": "x"}}}, "c"]], using=USING
    )
    assert "createdIds" not in result


def test_created_ids_in_and_out(jmap):
    account = jmap.account_id
    first = jmap.request(
        [["Note/set", {"accountId": account, "create": {"one": {"title": "one"}}}, "c"]],
        using=USING,
        createdIds={},
    )
    one = first["methodResponses"][0][1]["created"]["one"]["id"]
    assert first["createdIds"] == {"one": one}
    # A proxy passes the map on to the next request: "#one" still resolves there.
    second = jmap.request(
        [
            ["Note/get", {"accountId": account, "ids": ["#one"], "properties": ["title"]}, "g"],
            ["Note/set", {"accountId": account, "create": {"two": {"title": "two", "parentId": "#one"}}}, "s"],
        ],
        using=USING,
        createdIds={**first["createdIds"], "unrelated": "nzzz"},
    )
    got, made = second["methodResponses"][0][1], second["methodResponses"][1][1]
    assert got["list"] == [{"id": one, "title": "one"}]
    two = made["created"]["two"]["id"]
    assert second["createdIds"] == {"one": one, "unrelated": "nzzz", "two": two}


def test_created_ids_leave_out_failed_creates(jmap):
    result = jmap.request(
        [["Note/set", {"accountId": jmap.account_id, "create": {"bad": {"title": ""}, "good": {"title": "g"}}}, "c"]],
        using=USING,
        createdIds={},
    )
    assert set(result["createdIds"]) == {"good"}


def test_session_state_matches_the_session(jmap):
    result = jmap.request([["Core/echo", {}, "c"]], using=[CORE])
    assert result["sessionState"] == jmap.session()["state"]


# --- method-level errors -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Foo/bar", "Core/nope", "error", "", "note/get", "Note/Get", "Note/get ", "Core"])
def test_unknown_method(jmap, name):
    assert responses(jmap, [name, {}, "c"]) == [["error", {"type": "unknownMethod"}, "c"]]


def test_method_of_a_capability_not_in_using_is_unknown(jmap):
    call = ["Note/get", {"accountId": jmap.account_id, "ids": []}, "c"]
    assert responses(jmap, call, using=[CORE]) == [["error", {"type": "unknownMethod"}, "c"]]
    assert responses(jmap, call, using=USING)[0][0] == "Note/get"


def test_method_errors_are_not_http_errors(jmap):
    response = jmap.post(envelope(["Foo/bar", {}, "c"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("Note/get", {"accountId": 5, "ids": []}),  # wrong type
        ("Note/get", {"ids": []}),  # required accountId missing
        ("Note/get", {"accountId": "{account}", "ids": "n1"}),
        ("Note/get", {"accountId": "{account}", "ids": [], "colour": "red"}),  # unknown argument
        ("Note/changes", {"accountId": "{account}"}),  # sinceState missing
        ("Note/queryChanges", {"accountId": "{account}"}),  # sinceQueryState missing
        ("Note/set", {"accountId": "{account}", "create": []}),
        ("Note/query", {"accountId": "{account}", "limit": -1}),
    ],
)
def test_invalid_arguments(jmap, name, arguments):
    arguments = {key: jmap.account_id if value == "{account}" else value for key, value in arguments.items()}
    error = responses(jmap, [name, arguments, "c"])[0]
    assert error[0] == "error" and error[2] == "c"
    assert error[1]["type"] == "invalidArguments"
    assert isinstance(error[1].get("description", ""), str)


def test_invalid_result_reference_is_a_method_error(jmap):
    ref = {"resultOf": "nowhere", "name": "Note/query", "path": "/ids"}
    result = responses(jmap, ["Note/get", {"accountId": jmap.account_id, "#ids": ref}, "c"])
    assert result[0][0] == "error" and result[0][1]["type"] == "invalidResultReference"


def test_a_failing_call_does_not_stop_the_others(jmap):
    account = jmap.account_id
    result = responses(
        jmap,
        ["Note/set", {"accountId": account, "create": {"a": {"title": "a"}}}, "1"],
        ["Foo/bar", {}, "2"],
        ["Note/get", {"accountId": account, "ids": 7}, "3"],
        ["Failing/crash", {"accountId": account}, "4"],
        ["Note/get", {"accountId": "anywhere", "ids": []}, "5"],
        ["Note/set", {"accountId": account, "create": {"b": {"title": "b"}}}, "6"],
        ["Note/get", {"accountId": account, "ids": ["#a", "#b"], "properties": ["title"]}, "7"],
    )
    assert [(name, call_id) for name, _, call_id in result] == [
        ("Note/set", "1"),
        ("error", "2"),
        ("error", "3"),
        ("error", "4"),
        ("error", "5"),
        ("Note/set", "6"),
        ("Note/get", "7"),
    ]
    assert [error["type"] for name, error, _ in result if name == "error"] == [
        "unknownMethod",
        "invalidArguments",
        "serverFail",
        "accountNotFound",
    ]
    assert [note["title"] for note in result[6][1]["list"]] == ["a", "b"]


def test_unexpected_exception_is_server_fail_without_details(jmap, caplog):
    before = note_state(jmap)
    response = jmap.post(envelope(["Failing/crash", {"accountId": jmap.account_id, "title": "phantom"}, "c"]))
    assert response.status_code == 200
    error = orjson.loads(response.content)["methodResponses"][0]
    assert error[0] == "error" and error[2] == "c"
    assert error[1]["type"] == "serverFail"
    for leak in (SECRET.encode(), b"RuntimeError", b"Traceback", b"failing.py", b".py"):
        assert leak not in response.content
    # Logged for the administrator instead.
    assert any(
        record.name == "jmap.engine" and record.exc_info and str(record.exc_info[1]) == SECRET
        for record in caplog.records
    )
    # No partial write: the created note is gone and the state did not move (RFC 8620 §3.6.2).
    assert note_state(jmap) == before
    assert not Note.objects.filter(title="phantom").exists()


def test_server_fail_drops_created_ids_of_the_failed_call(jmap):
    result = jmap.request(
        [["Failing/crash", {"accountId": jmap.account_id, "title": "phantom"}, "c"]],
        using=USING,
        createdIds={"kept": "nkept"},
    )
    assert result["createdIds"] == {"kept": "nkept"}


def test_method_error_after_a_write_changes_nothing(jmap):
    before = note_state(jmap)
    result = responses(jmap, ["Failing/refuse", {"accountId": jmap.account_id, "title": "refused"}, "c"])
    assert result[0][0] == "error" and result[0][1]["type"] == "forbidden"
    assert note_state(jmap) == before
    assert not Note.objects.filter(title="refused").exists()


def test_changes_of_earlier_calls_survive_a_later_server_fail(jmap):
    account = jmap.account_id
    result = responses(
        jmap,
        ["Note/set", {"accountId": account, "create": {"k": {"title": "kept"}}}, "1"],
        ["Failing/crash", {"accountId": account, "title": "phantom"}, "2"],
    )
    assert result[0][1]["created"]["k"]["id"]
    assert Note.objects.filter(title="kept").count() == 1
    assert not Note.objects.filter(title="phantom").exists()
    assert note_state(jmap) == result[0][1]["newState"]


# --- Core/echo (RFC 8620 §4) -------------------------------------------------------------------


def test_core_echo_rfc_example(jmap):
    call = ["Core/echo", {"hello": True, "high": 5}, "b3ff"]
    assert responses(jmap, call, using=[CORE]) == [call]


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"nested": {"list": [1, 2.5, -3, None, True, False, "s", [], {}]}},
        {"unicode": 'Grüße ☃ 😀 \u2028 "quoted" \\ back', "empty": ""},
        {"accountId": "not-checked", "ids": "not-checked"},
        {"big": 2**53 - 1, "small": -(2**53 - 1), "float": 1.5e300, "zero": 0},
    ],
)
def test_core_echo_returns_the_same_arguments(jmap, arguments):
    assert responses(jmap, ["Core/echo", arguments, "e"], using=[CORE]) == [["Core/echo", arguments, "e"]]


def test_core_echo_is_always_usable_with_core(jmap):
    result = jmap.request([["Core/echo", {"x": 1}, "e"]], using=[CORE, CAPABILITY])
    assert result["methodResponses"] == [["Core/echo", {"x": 1}, "e"]]


def test_wrong_http_method_gets_problem_details(jmap):
    response = jmap.http.get("/jmap/api/", HTTP_AUTHORIZATION=jmap.auth)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "POST"
