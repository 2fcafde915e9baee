"""Hostile input: every malformed or abusive request gets the RFC's error, never a 500.

Each test names the exact error type expected and checks that nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest

from jmap.jsonio import MAX_DEPTH
from tests.jmap.conftest import USING
from tests.jmap.test_request_level import assert_problem
from tests.jmaptest.models import Note

CORE = "urn:ietf:params:jmap:core"
MAX_INT = 2**53 - 1


def send(jmap, body: bytes):
    response = jmap.post(body)
    assert response.status_code != 500
    assert b"Traceback" not in response.content
    return response


def raw_call(name: str, arguments: bytes, using: list[str] | None = None) -> bytes:
    """A request whose arguments are given as raw JSON text."""
    head = orjson.dumps({"using": using or USING})[:-1]
    return head + b',"methodCalls":[["' + name.encode() + b'",' + arguments + b',"c"]]}'


def one(jmap, name: str, arguments: dict) -> list:
    response = send(jmap, orjson.dumps({"using": USING, "methodCalls": [[name, arguments, "c"]]}))
    assert response.status_code == 200, response.content[:300]
    result = orjson.loads(response.content)["methodResponses"]
    assert len(result) >= 1 and result[0][2] == "c"
    return result[0]


def error_of(jmap, name: str, arguments: dict) -> dict:
    response = one(jmap, name, arguments)
    assert response[0] == "error", response
    return response[1]


def note_snapshot(jmap) -> tuple:
    state = one(jmap, "Note/get", {"accountId": jmap.account_id, "ids": []})[1]["state"]
    rows = list(Note.objects.filter(account__owner=jmap.user).order_by("pk").values_list("pk", "title", "body", "rank"))
    return state, rows


@contextmanager
def unchanged(jmap) -> Iterator[None]:
    """Asserts that the Note state and records of the user did not change."""
    before = note_snapshot(jmap)
    yield
    assert note_snapshot(jmap) == before


# --- malformed JSON --------------------------------------------------------------------------

MALFORMED = [
    b"{" * 5000,
    b"[" * 5000,
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":' + b"[" * 50 + b"]" * 49 + b'},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\\',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1e400},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":-1e400},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1e99999999999},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":--1},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1e},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":tRue},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"x"\x00},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"x\x00y"},"c"]]}',  # raw NUL
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"line\nbreak"},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\\ud800"},"c"]]}',  # lone high
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\\udc00"},"c"]]}',  # lone low
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\\ud800\\u0041"},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\\udc00\\ud800"},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"\\ud800":1},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":"\xed\xb0\x80"},"c"]]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":1},"c"]]}\x00',
    b'\x00{"using":["urn:ietf:params:jmap:core"],"methodCalls":[]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[]}}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[]]',
    b'{"using":["urn:ietf:params:jmap:core"] "methodCalls":[]}',
    b'{"using":["urn:ietf:params:jmap:core"],,"methodCalls":[]}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[],"createdIds":{"a":"b","a":"c"}}',
    b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Note/set",{"create":{"k":{"title":"x","title":"y"}}},"c"]]}',
    b"\xff\xfe{\x00}\x00",
    '{"using":["urn:ietf:params:jmap:core"],"methodCalls":[]}'.encode("utf-32"),
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00",  # gzip magic, not JSON
    b"<?xml version='1.0'?><request/>",
    b"using=urn:ietf:params:jmap:core&methodCalls=[]",
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json_is_not_json(jmap, body):
    with unchanged(jmap):
        assert_problem(send(jmap, body), "notJSON")


def test_json_is_not_confused_by_colons_and_quotes_in_strings(jmap):
    # The duplicate-name check must not count look-alike keys inside strings.
    arguments = {
        "a": '"a": 1',
        "b": "\\",
        "c": '\\"c\\": 2',
        "d": ['"d":', {"d": 'x":y'}],
        "e\\": ":",
        "f": "}:{",
        "g": {"a": 1, "b": {"a": 2}},
        "h": [{"a": 1}, {"a": 1}],
    }
    body = raw_call("Core/echo", orjson.dumps(arguments), using=[CORE])
    assert orjson.loads(send(jmap, body).content)["methodResponses"] == [["Core/echo", arguments, "c"]]


def test_whitespace_between_names_and_colons(jmap):
    body = (
        b'{ "using" : [ "urn:ietf:params:jmap:core" ] ,\r\n\t"methodCalls" :[["Core/echo",{"a"\n:\n1 , "b" : 2},"c"]]}'
    )
    assert orjson.loads(send(jmap, body).content)["methodResponses"] == [["Core/echo", {"a": 1, "b": 2}, "c"]]


def test_whitespace_separated_duplicates_are_found(jmap):
    body = b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a" \n\t: 1, "a"\r\n:2},"c"]]}'
    assert_problem(send(jmap, body), "notJSON")


# --- nesting ---------------------------------------------------------------------------------


def nested_echo(levels: int) -> bytes:
    """Core/echo with ``levels`` arrays nested in its arguments (4 levels above them)."""
    return raw_call("Core/echo", b'{"a":' + b"[" * levels + b"]" * levels + b"}", using=[CORE])


def test_ten_thousand_levels_of_arrays(jmap):
    assert_problem(send(jmap, nested_echo(10_000)), "notJSON")


def test_ten_thousand_levels_of_filter(jmap):
    level = b'{"operator":"NOT","conditions":['
    filter_text = level * 10_000 + b'{"text":"x"}' + b"]}" * 10_000
    body = raw_call("Note/query", b'{"accountId":"' + jmap.account_id.encode() + b'","filter":' + filter_text + b"}")
    with unchanged(jmap):
        assert_problem(send(jmap, body), "notJSON")


def test_nesting_up_to_the_limit_is_answered(jmap):
    # The deepest request accepted can still be answered: the echo nests just as deep.
    levels = MAX_DEPTH - 4
    response = send(jmap, nested_echo(levels))
    assert response.status_code == 200
    expected: list = []
    for _ in range(levels - 1):
        expected = [expected]
    assert orjson.loads(response.content)["methodResponses"] == [["Core/echo", {"a": expected}, "c"]]
    assert_problem(send(jmap, nested_echo(levels + 1)), "notJSON")


@pytest.mark.parametrize("levels", [255, 300, 1000, 1023, 1024, 1025, 2000])
def test_deep_nesting_never_fails_the_server(jmap, levels):
    # Depths around the JSON library's own parse (1024) and serialise (255) limits.
    assert_problem(send(jmap, nested_echo(levels)), "notJSON")


def test_filter_a_hundred_levels_deep_is_unsupported(jmap):
    node: dict = {"text": "x"}
    for _ in range(100):
        node = {"operator": "AND", "conditions": [node]}
    with unchanged(jmap):
        assert error_of(jmap, "Note/query", {"accountId": jmap.account_id, "filter": node})["type"] == (
            "unsupportedFilter"
        )
        assert (
            error_of(
                jmap,
                "Note/queryChanges",
                {
                    "accountId": jmap.account_id,
                    "filter": node,
                    "sinceQueryState": "0",
                },
            )["type"]
            == "unsupportedFilter"
        )


def test_shallow_nested_filter_works(jmap):
    node: dict = {"text": "x"}
    for operator in ("AND", "OR", "NOT", "AND", "OR"):
        node = {"operator": operator, "conditions": [node]}
    assert one(jmap, "Note/query", {"accountId": jmap.account_id, "filter": node})[0] == "Note/query"


def test_very_wide_filter_is_unsupported(jmap):
    node = {"operator": "OR", "conditions": [{"text": f"t{i}"} for i in range(10_000)]}
    with unchanged(jmap):
        assert error_of(jmap, "Note/query", {"accountId": jmap.account_id, "filter": node})["type"] == (
            "unsupportedFilter"
        )


# --- size --------------------------------------------------------------------------------------


def test_a_million_ids_in_get_is_request_too_large_and_fast(jmap):
    # RFC 8620 §5.1: more ids than maxObjectsInGet is requestTooLarge (a method error).
    ids = [f"n{i}" for i in range(1_000_000)]
    body = orjson.dumps(
        {"using": USING, "methodCalls": [["Note/get", {"accountId": jmap.account_id, "ids": ids}, "c"]]}
    )
    assert len(body) < 10_000_000  # within maxSizeRequest, so it reaches the method
    started = time.monotonic()
    response = send(jmap, body)
    elapsed = time.monotonic() - started
    assert orjson.loads(response.content)["methodResponses"][0][1]["type"] == "requestTooLarge"
    assert elapsed < 10, elapsed


def test_a_million_long_ids_is_over_the_request_size_limit(jmap, settings):
    ids = [f"n{i:010d}" for i in range(1_000_000)]
    body = orjson.dumps(
        {"using": USING, "methodCalls": [["Note/get", {"accountId": jmap.account_id, "ids": ids}, "c"]]}
    )
    assert len(body) > settings.JMAP["maxSizeRequest"]
    assert_problem(send(jmap, body), "limit", limit="maxSizeRequest")


def test_too_many_objects_in_set_is_request_too_large(jmap, settings):
    limit = settings.JMAP["maxObjectsInSet"]
    create = {f"k{i}": {"title": "x"} for i in range(limit)}
    with unchanged(jmap):
        error = error_of(jmap, "Note/set", {"accountId": jmap.account_id, "create": create, "destroy": ["n1"]})
    assert error["type"] == "requestTooLarge"


def test_huge_string_is_echoed(jmap):
    text = "é" * 4_000_000  # 8 MB of UTF-8
    response = send(jmap, orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"t": text}, "c"]]}))
    assert orjson.loads(response.content)["methodResponses"][0][1]["t"] == text


def test_huge_strings_in_arguments(jmap):
    huge = "x" * 1_000_000
    with unchanged(jmap):
        result = one(
            jmap,
            "Note/set",
            {
                "accountId": jmap.account_id,
                "create": {
                    "k1": {"title": huge},
                    "k2": {"title": "ok", huge: 1},
                },
            },
        )[1]
        assert result["created"] is None
        assert result["notCreated"]["k1"]["type"] == "invalidProperties"
        assert result["notCreated"]["k1"]["properties"] == ["title"]
        assert result["notCreated"]["k2"]["type"] == "invalidProperties"
        assert result["notCreated"]["k2"]["properties"] == [huge]
        assert error_of(jmap, huge, {})["type"] == "unknownMethod"
        assert error_of(jmap, "Note/get", {"accountId": huge})["type"] == "invalidArguments"
        assert error_of(jmap, "Note/get", {"accountId": jmap.account_id, huge: 1})["type"] == "invalidArguments"
        assert one(jmap, "Note/query", {"accountId": jmap.account_id, "filter": {"text": huge}})[1]["ids"] == []


def test_huge_call_id_and_capability(jmap):
    call_id = "c" * 1_000_000
    body = orjson.dumps({"using": [CORE], "methodCalls": [["Core/echo", {}, call_id]]})
    assert orjson.loads(send(jmap, body).content)["methodResponses"] == [["Core/echo", {}, call_id]]
    body = orjson.dumps({"using": [CORE, "urn:" + "x" * 1_000_000], "methodCalls": []})
    assert_problem(send(jmap, body), "unknownCapability")


def test_many_unknown_arguments(jmap):
    arguments = {"accountId": jmap.account_id, **{f"arg{i}": i for i in range(100_000)}}
    assert error_of(jmap, "Note/get", arguments)["type"] == "invalidArguments"


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("Note/query", {"position": MAX_INT + 1}),
        ("Note/query", {"position": -MAX_INT - 1}),
        ("Note/query", {"position": 2**63}),
        ("Note/query", {"position": 2**64 - 1}),
        ("Note/query", {"anchor": "n1", "anchorOffset": MAX_INT + 1}),
        ("Note/query", {"limit": MAX_INT + 1}),
        ("Note/query", {"limit": 2**64 - 1}),
        ("Note/changes", {"sinceState": "0", "maxChanges": MAX_INT + 1}),
        ("Note/queryChanges", {"sinceQueryState": "0", "maxChanges": 2**64 - 1}),
    ],
)
def test_int_beyond_two_to_the_53_is_invalid_arguments(jmap, name, arguments):
    with unchanged(jmap):
        assert error_of(jmap, name, {"accountId": jmap.account_id, **arguments})["type"] == "invalidArguments"


@pytest.mark.parametrize("text", [b"9007199254740992", b"18446744073709551616", b"1e300", b"-9.5e18"])
def test_int_argument_written_as_a_big_json_number(jmap, text):
    body = raw_call("Note/query", b'{"accountId":"' + jmap.account_id.encode() + b'","position":' + text + b"}")
    result = orjson.loads(send(jmap, body).content)["methodResponses"][0]
    assert result[0] == "error" and result[1]["type"] == "invalidArguments"


def test_largest_ints_are_accepted(jmap):
    result = one(jmap, "Note/query", {"accountId": jmap.account_id, "position": MAX_INT, "limit": MAX_INT})
    assert result[0] == "Note/query" and result[1]["ids"] == []
    result = one(jmap, "Note/query", {"accountId": jmap.account_id, "position": -MAX_INT})
    assert result[0] == "Note/query"
    result = one(jmap, "Note/changes", {"accountId": jmap.account_id, "sinceState": "0", "maxChanges": MAX_INT})
    assert result[0] == "Note/changes"


def test_int_beyond_two_to_the_53_in_a_record(jmap):
    with unchanged(jmap):
        result = one(jmap, "Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": "x", "rank": 2**53}}})
    assert result[1]["notCreated"]["k"]["type"] == "invalidProperties"
    assert result[1]["notCreated"]["k"]["properties"] == ["rank"]


@pytest.mark.parametrize(
    "text",
    [
        b"9007199254740993",
        b"-9007199254740993",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"18446744073709551615",
        b"0",
        b"-0",
        b"1.5",
        b"1e-300",
        b"123456789012345678",
    ],
)
def test_core_echo_returns_big_numbers_unchanged(jmap, text):
    body = raw_call("Core/echo", b'{"n":' + text + b"}", using=[CORE])
    response = send(jmap, body)
    assert response.status_code == 200
    assert orjson.loads(response.content)["methodResponses"][0][1]["n"] == orjson.loads(text)
    if b"." not in text and b"e" not in text and text != b"-0":
        assert b'"n":' + text + b"}" in response.content  # exactly the same digits


def test_core_echo_of_a_number_only_a_double_can_hold(jmap):
    # Beyond 64 bits the number is read as a double (I-JSON, RFC 7493 §2.2): same value back.
    body = raw_call("Core/echo", b'{"n":100000000000000000000000000000}', using=[CORE])
    assert orjson.loads(send(jmap, body).content)["methodResponses"][0][1]["n"] == 1e29


@pytest.mark.parametrize("text", [b"1e400", b"-1e400", b"1E309", b"123456789e999"])
def test_core_echo_of_an_infinite_number_is_not_json(jmap, text):
    assert_problem(send(jmap, raw_call("Core/echo", b'{"n":' + text + b"}", using=[CORE])), "notJSON")


# --- strings -----------------------------------------------------------------------------------


def test_surrogate_pairs_are_fine(jmap):
    body = raw_call("Core/echo", b'{"s":"\\ud83d\\ude00 \xf0\x9f\x98\x80"}', using=[CORE])
    assert orjson.loads(send(jmap, body).content)["methodResponses"][0][1]["s"] == "😀 😀"


def test_escaped_nul_is_echoed(jmap):
    body = raw_call("Core/echo", b'{"s":"a\\u0000b","\\u0000":1}', using=[CORE])
    assert orjson.loads(send(jmap, body).content)["methodResponses"][0][1] == {"s": "a\x00b", "\x00": 1}


def test_nul_in_record_properties_is_refused_on_every_database(jmap, notes):
    ids = notes.create(k={"title": "clean"})
    with unchanged(jmap):
        result = one(
            jmap,
            "Note/set",
            {
                "accountId": jmap.account_id,
                "create": {"n": {"title": "a\x00b"}, "m": {"title": "ok", "body": "\x00"}},
                "update": {ids["k"]: {"title": "x\x00"}},
            },
        )[1]
        assert result["notCreated"]["n"]["type"] == "invalidProperties"
        assert result["notCreated"]["n"]["properties"] == ["title"]
        assert result["notCreated"]["m"]["properties"] == ["body"]
        assert result["notUpdated"][ids["k"]]["type"] == "invalidProperties"
        assert result["created"] is None and result["updated"] is None


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("Note/query", {"filter": {"text": "\x00"}}),
        ("Note/get", {"ids": ["n\x001"]}),
        ("Note/set", {"destroy": ["n1\x00"]}),
        ("Note/set", {"ifInState": "0\x00"}),
        ("Note/changes", {"sinceState": "\x00"}),
    ],
)
def test_nul_in_string_arguments_is_invalid_arguments(jmap, name, arguments):
    with unchanged(jmap):
        assert error_of(jmap, name, {"accountId": jmap.account_id, **arguments})["type"] == "invalidArguments"


def test_control_and_odd_characters_in_properties(jmap):
    title = "\u0001\u001f\u007f\u200b\u202e\ufeff\uffff \U0010ffff"
    created = one(jmap, "Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": title}}})[1]
    note_id = created["created"]["k"]["id"]
    got = one(jmap, "Note/get", {"accountId": jmap.account_id, "ids": [note_id], "properties": ["title"]})[1]
    assert got["list"] == [{"id": note_id, "title": title}]


# --- wrong types for every standard argument ---------------------------------------------------------

WRONG_TYPES = [
    ("Note/get", {"accountId": 5}),
    ("Note/get", {"accountId": None}),
    ("Note/get", {"accountId": ["a1"]}),
    ("Note/get", {"accountId": ""}),
    ("Note/get", {"accountId": "a b"}),
    ("Note/get", {"ids": "n1"}),
    ("Note/get", {"ids": {"n1": True}}),
    ("Note/get", {"ids": [1]}),
    ("Note/get", {"ids": [None]}),
    ("Note/get", {"ids": True}),
    ("Note/get", {"properties": "title"}),
    ("Note/get", {"properties": [1]}),
    ("Note/get", {"properties": ["title", None]}),
    ("Note/get", {"properties": ["nonesuch"]}),
    ("Note/get", {"unknown": 1}),
    ("Note/changes", {"sinceState": 5}),
    ("Note/changes", {"sinceState": None}),
    ("Note/changes", {"sinceState": ["0"]}),
    ("Note/changes", {}),
    ("Note/changes", {"sinceState": "0", "maxChanges": 0}),
    ("Note/changes", {"sinceState": "0", "maxChanges": -1}),
    ("Note/changes", {"sinceState": "0", "maxChanges": "5"}),
    ("Note/changes", {"sinceState": "0", "maxChanges": 1.5}),
    ("Note/changes", {"sinceState": "0", "maxChanges": True}),
    ("Note/changes", {"sinceState": "0", "unknown": 1}),
    ("Note/set", {"ifInState": 5}),
    ("Note/set", {"ifInState": ["0"]}),
    ("Note/set", {"create": []}),
    ("Note/set", {"create": "k"}),
    ("Note/set", {"create": {"k": "title"}}),
    ("Note/set", {"create": {"k": 5}}),
    ("Note/set", {"create": {"k": None}}),
    ("Note/set", {"create": {"": {"title": "x"}}}),
    ("Note/set", {"create": {"not an id": {"title": "x"}}}),
    ("Note/set", {"update": []}),
    ("Note/set", {"update": "n1"}),
    ("Note/set", {"update": {"n1": "title"}}),
    ("Note/set", {"update": {"n1": None}}),
    ("Note/set", {"update": {"n1": [["title", "x"]]}}),
    ("Note/set", {"destroy": "n1"}),
    ("Note/set", {"destroy": {"n1": True}}),
    ("Note/set", {"destroy": [1]}),
    ("Note/set", {"destroy": [None]}),
    ("Note/set", {"unknown": 1}),
    ("Note/query", {"filter": []}),
    ("Note/query", {"filter": "text"}),
    ("Note/query", {"filter": 5}),
    ("Note/query", {"filter": {"text": 5}}),
    ("Note/query", {"filter": {"operator": "XOR", "conditions": []}}),
    ("Note/query", {"filter": {"operator": "AND", "conditions": {}}}),
    ("Note/query", {"filter": {"operator": "AND"}}),
    ("Note/query", {"filter": {"operator": "AND", "conditions": ["x"]}}),
    ("Note/query", {"sort": {}}),
    ("Note/query", {"sort": "title"}),
    ("Note/query", {"sort": ["title"]}),
    ("Note/query", {"sort": [None]}),
    ("Note/query", {"sort": [{"property": 5}]}),
    ("Note/query", {"sort": [{}]}),
    ("Note/query", {"sort": [{"property": "title", "isAscending": "yes"}]}),
    ("Note/query", {"sort": [{"property": "title", "collation": 5}]}),
    ("Note/query", {"sort": [{"property": "title", "extra": 1}]}),
    ("Note/query", {"position": "0"}),
    ("Note/query", {"position": 1.5}),
    ("Note/query", {"position": None}),
    ("Note/query", {"position": True}),
    ("Note/query", {"anchor": 5}),
    ("Note/query", {"anchor": ""}),
    ("Note/query", {"anchor": "not an id"}),
    ("Note/query", {"anchorOffset": "1"}),
    ("Note/query", {"anchorOffset": 0.5}),
    ("Note/query", {"limit": -1}),
    ("Note/query", {"limit": "10"}),
    ("Note/query", {"limit": 2.5}),
    ("Note/query", {"calculateTotal": "true"}),
    ("Note/query", {"calculateTotal": 1}),
    ("Note/query", {"calculateTotal": None}),
    ("Note/query", {"unknown": 1}),
    ("Note/queryChanges", {"sinceQueryState": 5}),
    ("Note/queryChanges", {"sinceQueryState": None}),
    ("Note/queryChanges", {}),
    ("Note/queryChanges", {"sinceQueryState": "0", "maxChanges": 0}),
    ("Note/queryChanges", {"sinceQueryState": "0", "maxChanges": "1"}),
    ("Note/queryChanges", {"sinceQueryState": "0", "upToId": 5}),
    ("Note/queryChanges", {"sinceQueryState": "0", "calculateTotal": "x"}),
    ("Note/queryChanges", {"sinceQueryState": "0", "filter": []}),
    ("Note/queryChanges", {"sinceQueryState": "0", "sort": {}}),
    ("Note/queryChanges", {"sinceQueryState": "0", "unknown": 1}),
    ("Note/copy", {"create": {}}),  # no fromAccountId
    ("Note/copy", {"fromAccountId": 5, "create": {}}),
    ("Note/copy", {"fromAccountId": "a999999"}),  # no create
    ("Note/copy", {"fromAccountId": "a999999", "create": []}),
    ("Note/copy", {"fromAccountId": "a999999", "create": "x"}),
    ("Note/copy", {"fromAccountId": "a999999", "create": {}, "onSuccessDestroyOriginal": "yes"}),
    ("Note/copy", {"fromAccountId": "a999999", "create": {}, "ifFromInState": 5}),
    ("Note/copy", {"fromAccountId": "a999999", "create": {}, "ifInState": 5}),
    ("Note/copy", {"fromAccountId": "a999999", "create": {}, "destroyFromIfInState": 5}),
    ("Note/copy", {"fromAccountId": "a999999", "create": {}, "unknown": 1}),
    ("Note/copy", {"fromAccountId": "{account}", "create": {}}),  # the same account
]


@pytest.mark.parametrize(("name", "arguments"), WRONG_TYPES)
def test_wrong_argument_types_are_invalid_arguments(jmap, name, arguments):
    arguments = {"accountId": jmap.account_id, **arguments}
    arguments = {key: jmap.account_id if value == "{account}" else value for key, value in arguments.items()}
    with unchanged(jmap):
        error = error_of(jmap, name, arguments)
    assert error["type"] == "invalidArguments", error


# --- other people's accounts and records ---------------------------------------------------------------

ACCOUNT_CALLS = [
    ("Note/get", {"ids": []}),
    ("Note/get", {"ids": None}),
    ("Note/changes", {"sinceState": "0"}),
    ("Note/set", {"create": {"k": {"title": "intruder"}}}),
    ("Note/set", {"destroy": ["n1"]}),
    ("Note/query", {}),
    ("Note/queryChanges", {"sinceQueryState": "0"}),
    ("Failing/refuse", {"title": "intruder"}),
]


@pytest.mark.parametrize(("name", "arguments"), ACCOUNT_CALLS)
def test_foreign_and_missing_accounts_are_indistinguishable(jmap, other_jmap, name, arguments):
    with unchanged(other_jmap):
        foreign = error_of(jmap, name, {"accountId": other_jmap.account_id, **arguments})
        missing = error_of(jmap, name, {"accountId": "a999999", **arguments})
        never = error_of(jmap, name, {"accountId": "zzzz", **arguments})
    assert foreign == missing == never == {"type": "accountNotFound"}


def test_copy_from_a_foreign_account(jmap, other_jmap, other_notes):
    theirs = other_notes.create(k={"title": "private"})["k"]
    with unchanged(jmap), unchanged(other_jmap):
        foreign = error_of(
            jmap,
            "Note/copy",
            {
                "fromAccountId": other_jmap.account_id,
                "accountId": jmap.account_id,
                "create": {"c": {"id": theirs}},
                "onSuccessDestroyOriginal": True,
            },
        )
        missing = error_of(
            jmap,
            "Note/copy",
            {
                "fromAccountId": "a999999",
                "accountId": jmap.account_id,
                "create": {"c": {"id": theirs}},
            },
        )
        into = error_of(
            jmap,
            "Note/copy",
            {
                "fromAccountId": jmap.account_id,
                "accountId": other_jmap.account_id,
                "create": {},
            },
        )
    assert foreign == missing == {"type": "fromAccountNotFound"}
    assert into == {"type": "accountNotFound"}


def test_another_users_notes_are_not_found(jmap, other_jmap, notes, other_notes):
    theirs = other_notes.create(a={"title": "their secret"}, b={"title": "their other"})
    mine = notes.create(m={"title": "mine"})["m"]
    their_ids = list(theirs.values())
    with unchanged(other_jmap):
        got = notes.ok("Note/get", {"ids": their_ids})
        assert got["list"] == [] and got["notFound"] == their_ids
        assert [record["id"] for record in notes.ok("Note/get", {"ids": None})["list"]] == [mine]
        result = notes.ok(
            "Note/set",
            {
                "update": {their_ids[0]: {"title": "pwned"}},
                "destroy": [their_ids[1]],
                "create": {"child": {"title": "child", "parentId": their_ids[0]}},
            },
        )
        assert list(result["notUpdated"]) == [their_ids[0]]
        assert result["notUpdated"][their_ids[0]]["type"] == "notFound"
        assert result["notDestroyed"][their_ids[1]]["type"] == "notFound"
        assert result["notCreated"]["child"]["type"] == "invalidProperties"
        assert result["updated"] is None and result["destroyed"] is None and result["created"] is None
        assert notes.ok("Note/query", {})["ids"] == [mine]
        assert notes.ok("Note/query", {"filter": {"parentId": their_ids[0]}})["ids"] == []
        assert notes.error("Note/query", {"anchor": their_ids[0]})["type"] == "anchorNotFound"
        changes = notes.ok("Note/changes", {"sinceState": "0"})
        assert set(changes["created"]) == {mine}
    assert not Note.objects.filter(title__in=["pwned", "child"]).exists()
    assert Note.objects.filter(title="their secret").count() == 1


# --- whole requests ---------------------------------------------------------------------------


def test_failed_requests_change_nothing(jmap, settings):
    settings.JMAP = {**settings.JMAP, "maxCallsInRequest": 3}
    create = ["Note/set", {"accountId": jmap.account_id, "create": {"k": {"title": "never"}}}, "s"]
    with unchanged(jmap):
        assert_problem(
            send(jmap, orjson.dumps({"using": USING, "methodCalls": [create] * 4})), "limit", limit="maxCallsInRequest"
        )
        assert_problem(
            send(jmap, orjson.dumps({"using": [*USING, "urn:x"], "methodCalls": [create]})), "unknownCapability"
        )
        assert_problem(send(jmap, orjson.dumps({"using": USING, "methodCalls": [create, ["x"]]})), "notRequest")
        assert_problem(send(jmap, orjson.dumps({"using": USING, "methodCalls": [create]})[:-3]), "notJSON")
    assert not Note.objects.filter(title="never").exists()
