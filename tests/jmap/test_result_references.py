"""RFC 8620 §3.7: references to previous method results.

Core/echo returns its arguments, so an echo call can stand for any earlier response and
a second echo shows what a reference resolves to.
"""

from __future__ import annotations

import pytest

from tests.jmap.conftest import USING
from tests.jmaptest.models import Note

CORE = "urn:ietf:params:jmap:core"


def ref(result_of: str, name: str, path: str) -> dict:
    return {"resultOf": result_of, "name": name, "path": path}


def resolve(jmap, document: dict, path: str):
    """What "#value" pointing at ``path`` in an echoed ``document`` resolves to."""
    result = jmap.request(
        [["Core/echo", document, "doc"], ["Core/echo", {"#value": ref("doc", "Core/echo", path)}, "r"]],
        using=[CORE],
    )["methodResponses"]
    assert result[0] == ["Core/echo", document, "doc"]
    return result[1]


def resolved(jmap, document: dict, path: str):
    response = resolve(jmap, document, path)
    assert response[0] == "Core/echo", response
    assert list(response[1]) == ["value"]
    return response[1]["value"]


def fails(jmap, document: dict, path: str) -> None:
    response = resolve(jmap, document, path)
    assert response[0] == "error" and response[2] == "r"
    assert response[1]["type"] == "invalidResultReference", response


# --- the RFC's examples ------------------------------------------------------------------------

CHANGES = {
    "accountId": "A1",
    "oldState": "abcdef",
    "newState": "123456",
    "hasMoreChanges": False,
    "created": ["f1", "f4"],
    "updated": [],
    "destroyed": [],
}
EMAIL_GET = {
    "accountId": "A1",
    "state": "123456",
    "list": [{"id": "msg1023", "threadId": "trd194"}, {"id": "msg223", "threadId": "trd114"}],
    "notFound": [],
}
THREAD_GET = {
    "accountId": "A1",
    "state": "123456",
    "list": [
        {"id": "trd194", "emailIds": ["msg1020", "msg1021", "msg1023"]},
        {"id": "trd114", "emailIds": ["msg201", "msg223"]},
    ],
    "notFound": [],
}


def test_rfc_simple_example(jmap):
    assert resolved(jmap, CHANGES, "/created") == ["f1", "f4"]


def test_rfc_example_star_maps_through_an_array(jmap):
    assert resolved(jmap, EMAIL_GET, "/list/*/threadId") == ["trd194", "trd114"]


def test_rfc_example_star_flattens_arrays(jmap):
    assert resolved(jmap, THREAD_GET, "/list/*/emailIds") == ["msg1020", "msg1021", "msg1023", "msg201", "msg223"]


def test_rfc_example_chain_across_four_calls(jmap):
    """The Email/query → Email/get → Thread/get → Email/get chain, with echoes."""
    result = jmap.request(
        [
            ["Core/echo", {"ids": ["msg1023", "msg223"]}, "t0"],
            ["Core/echo", {"#ids": ref("t0", "Core/echo", "/ids"), "list": EMAIL_GET["list"]}, "t1"],
            ["Core/echo", {"#threads": ref("t1", "Core/echo", "/list/*/threadId"), "list": THREAD_GET["list"]}, "t2"],
            ["Core/echo", {"#ids": ref("t2", "Core/echo", "/list/*/emailIds")}, "t3"],
        ],
        using=[CORE],
    )["methodResponses"]
    assert result[1][1]["ids"] == ["msg1023", "msg223"]
    assert result[2][1]["threads"] == ["trd194", "trd114"]
    assert result[3] == ["Core/echo", {"ids": ["msg1020", "msg1021", "msg1023", "msg201", "msg223"]}, "t3"]


# --- JSON Pointer (RFC 6901) with the "*" addition ------------------------------------------


@pytest.mark.parametrize(
    ("document", "path", "value"),
    [
        ({"a": 1}, "", {"a": 1}),  # the whole arguments object
        ({"a": {"b": {"c": "deep"}}}, "/a/b/c", "deep"),
        ({"a/b": 1}, "/a~1b", 1),  # ~1 is "/"
        ({"m~n": 2}, "/m~0n", 2),  # ~0 is "~"
        ({"~1": 3, "/": 4}, "/~01", 3),  # "~01" is "~1", not "/" (RFC 6901 §4)
        ({"": 5}, "/", 5),  # the empty member name
        ({"a": {"": {"": 6}}}, "/a//", 6),
        ({" ": 7}, "/ ", 7),
        ({"list": ["x", "y", "z"]}, "/list/0", "x"),
        ({"list": ["x", "y", "z"]}, "/list/2", "z"),
        ({"list": [[1, 2], [3]]}, "/list/1/0", 3),
        ({"obj": {"0": "member"}}, "/obj/0", "member"),  # a digit on an object is a member name
        ({"obj": {"*": "star"}}, "/obj/*", "star"),  # "*" is special only on arrays
        ({"value": None}, "/value", None),
        ({"value": False}, "/value", False),
        ({"list": []}, "/list/*/id", []),
        ({"list": [{"id": "a"}, {"id": "b"}]}, "/list/*", [{"id": "a"}, {"id": "b"}]),
        ({"list": [{"id": "a"}, {"id": "b"}]}, "/list/*/id", ["a", "b"]),
        ({"list": [[1, 2], [3], []]}, "/list/*", [1, 2, 3]),  # flattened
        ({"list": [{"x": [{"y": 1}, {"y": 2}]}, {"x": [{"y": 3}]}]}, "/list/*/x/*/y", [1, 2, 3]),
        ({"list": [{"t": "a"}, {"t": ["b", "c"]}]}, "/list/*/t", ["a", "b", "c"]),
        ({"ids": ["n1"]}, "/ids/*", ["n1"]),
    ],
)
def test_pointer_evaluation(jmap, document, path, value):
    assert resolved(jmap, document, path) == value


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"a": 1}, "/b"),  # no such member
        ({"a": 1}, "a"),  # not a pointer
        ({"a": 1}, "#/a"),  # URI fragment form is not accepted here
        ({"a": {"b": 1}}, "/a/c"),
        ({"a": 1}, "/a/b"),  # into a number
        ({"a": "text"}, "/a/0"),  # into a string
        ({"a": None}, "/a/b"),
        ({"list": ["x"]}, "/list/1"),  # beyond the array
        ({"list": ["x"]}, "/list/-"),  # the "-" element does not exist yet
        ({"list": ["x", "y"]}, "/list/01"),  # leading zeros are not an index
        ({"list": ["x"]}, "/list/-1"),
        ({"list": ["x"]}, "/list/x"),
        ({"list": ["x"]}, "/list/ 0"),
        ({"list": [{"id": "a"}, {"other": "b"}]}, "/list/*/id"),  # one item lacks it
        ({"obj": {"a": 1}}, "/obj/*"),  # "*" on an object is a (missing) member
        ({"a~b": 1}, "/a~b"),  # "~" must be escaped as ~0
    ],
)
def test_pointer_failures(jmap, document, path):
    fails(jmap, document, path)


# --- Which response is referenced --------------------------------------------------------------


def test_the_first_response_with_the_call_id_is_used(jmap):
    result = jmap.request(
        [
            ["Core/echo", {"v": 1}, "dup"],
            ["Core/echo", {"v": 2}, "dup"],
            ["Core/echo", {"#v": ref("dup", "Core/echo", "/v")}, "r"],
        ],
        using=[CORE],
    )["methodResponses"]
    assert result[2] == ["Core/echo", {"v": 1}, "r"]


def test_the_first_response_decides_the_name(jmap):
    # The first response for "dup" is an error, so a reference naming the later one fails.
    result = jmap.request(
        [
            ["Foo/bar", {}, "dup"],
            ["Core/echo", {"v": 2}, "dup"],
            ["Core/echo", {"#v": ref("dup", "Core/echo", "/v")}, "r"],
        ],
        using=[CORE],
    )["methodResponses"]
    assert result[2][0] == "error" and result[2][1]["type"] == "invalidResultReference"


def test_name_mismatch_fails(jmap):
    response = jmap.request(
        [["Core/echo", {"ids": []}, "a"], ["Core/echo", {"#ids": ref("a", "Note/query", "/ids")}, "r"]],
        using=[CORE],
    )["methodResponses"][1]
    assert response[0] == "error" and response[1]["type"] == "invalidResultReference"


def test_name_is_case_sensitive(jmap):
    response = jmap.request(
        [["Core/echo", {"ids": []}, "a"], ["Core/echo", {"#ids": ref("a", "core/echo", "/ids")}, "r"]],
        using=[CORE],
    )["methodResponses"][1]
    assert response[1]["type"] == "invalidResultReference"


def test_unknown_call_id_fails(jmap):
    response = jmap.request(
        [["Core/echo", {"ids": []}, "a"], ["Core/echo", {"#ids": ref("b", "Core/echo", "/ids")}, "r"]],
        using=[CORE],
    )["methodResponses"][1]
    assert response[1]["type"] == "invalidResultReference"


def test_reference_to_a_later_call_fails(jmap):
    result = jmap.request(
        [["Core/echo", {"#ids": ref("later", "Core/echo", "/ids")}, "r"], ["Core/echo", {"ids": ["x"]}, "later"]],
        using=[CORE],
    )["methodResponses"]
    assert result[0][0] == "error" and result[0][1]["type"] == "invalidResultReference"
    assert result[1] == ["Core/echo", {"ids": ["x"]}, "later"]


def test_reference_to_itself_fails(jmap):
    result = jmap.request([["Core/echo", {"#ids": ref("self", "Core/echo", "/ids")}, "self"]], using=[CORE])
    assert result["methodResponses"][0][1]["type"] == "invalidResultReference"


def test_reference_to_an_error_response_fails(jmap, notes):
    result = jmap.request(
        [
            ["Note/query", {"accountId": "nowhere"}, "q"],
            ["Note/get", {"accountId": notes.account_id, "#ids": ref("q", "Note/query", "/ids")}, "g"],
        ],
        using=USING,
    )["methodResponses"]
    assert result[0][0] == "error" and result[0][1]["type"] == "accountNotFound"
    assert result[1][0] == "error" and result[1][1]["type"] == "invalidResultReference"


def test_references_do_not_reach_previous_requests(jmap):
    jmap.request([["Core/echo", {"ids": ["x"]}, "a"]], using=[CORE])
    result = jmap.request([["Core/echo", {"#ids": ref("a", "Core/echo", "/ids")}, "r"]], using=[CORE])
    assert result["methodResponses"][0][1]["type"] == "invalidResultReference"


# --- The ResultReference object and the arguments ------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        None,
        "a",
        ["a", "Core/echo", "/v"],
        5,
        {"resultOf": "a", "name": "Core/echo"},  # no path
        {"resultOf": "a", "path": "/v"},  # no name
        {"name": "Core/echo", "path": "/v"},  # no resultOf
        {"resultOf": 1, "name": "Core/echo", "path": "/v"},
        {"resultOf": "a", "name": None, "path": "/v"},
        {"resultOf": "a", "name": "Core/echo", "path": ["v"]},
    ],
)
def test_malformed_reference_object(jmap, reference):
    result = jmap.request([["Core/echo", {"v": 1}, "a"], ["Core/echo", {"#v": reference}, "r"]], using=[CORE])[
        "methodResponses"
    ]
    assert result[1][0] == "error" and result[1][1]["type"] == "invalidResultReference"


def test_both_plain_and_referenced_argument_is_invalid_arguments(jmap, notes):
    # RFC 8620 §3.7: foo and #foo together MUST be invalidArguments.
    result = jmap.request(
        [
            ["Note/query", {"accountId": notes.account_id}, "q"],
            ["Note/get", {"accountId": notes.account_id, "ids": [], "#ids": ref("q", "Note/query", "/ids")}, "g"],
            ["Core/echo", {"#v": ref("q", "Note/query", "/ids"), "v": 1}, "e"],
        ],
        using=USING,
    )["methodResponses"]
    assert result[1][0] == "error" and result[1][1]["type"] == "invalidArguments"
    assert result[2][0] == "error" and result[2][1]["type"] == "invalidArguments"


def test_several_references_in_one_call(jmap):
    result = jmap.request(
        [
            ["Core/echo", {"a": [1], "b": {"c": "d"}}, "x"],
            ["Core/echo", {"#one": ref("x", "Core/echo", "/a"), "#two": ref("x", "Core/echo", "/b/c"), "k": 0}, "y"],
        ],
        using=[CORE],
    )["methodResponses"]
    assert result[1] == ["Core/echo", {"one": [1], "two": "d", "k": 0}, "y"]


def test_one_bad_reference_fails_the_whole_call(jmap):
    result = jmap.request(
        [
            ["Core/echo", {"a": 1}, "x"],
            ["Core/echo", {"#one": ref("x", "Core/echo", "/a"), "#two": ref("x", "Core/echo", "/nope")}, "y"],
        ],
        using=[CORE],
    )["methodResponses"]
    assert result[1][0] == "error" and result[1][1]["type"] == "invalidResultReference"


def test_resolved_value_is_checked_like_a_direct_argument(jmap, notes):
    result = jmap.request(
        [
            ["Core/echo", {"n": 5}, "x"],
            ["Note/get", {"accountId": notes.account_id, "#ids": ref("x", "Core/echo", "/n")}, "g"],
        ],
        using=USING,
    )["methodResponses"]
    assert result[1][0] == "error" and result[1][1]["type"] == "invalidArguments"


def test_failed_reference_makes_no_change(jmap, notes):
    ids = notes.create(a={"title": "a"}, b={"title": "b"})
    before = notes.state()
    result = jmap.request(
        [
            ["Note/query", {"accountId": notes.account_id}, "q"],
            ["Note/set", {"accountId": notes.account_id, "#destroy": ref("q", "Note/query", "/idz")}, "s"],
        ],
        using=USING,
    )["methodResponses"]
    assert result[1][1]["type"] == "invalidResultReference"
    assert notes.state() == before
    assert Note.objects.filter(title__in=["a", "b"]).count() == 2
    assert set(ids.values()) <= set(notes.ok("Note/query", {})["ids"])


# --- With real methods ---------------------------------------------------------------------------


def test_query_then_get(jmap, notes):
    ids = notes.create(a={"title": "alpha", "rank": 2}, b={"title": "beta", "rank": 1})
    result = jmap.request(
        [
            ["Note/query", {"accountId": notes.account_id, "sort": [{"property": "rank"}]}, "q"],
            [
                "Note/get",
                {"accountId": notes.account_id, "#ids": ref("q", "Note/query", "/ids"), "properties": ["title"]},
                "g",
            ],
            ["Core/echo", {"#titles": ref("g", "Note/get", "/list/*/title")}, "e"],
        ],
        using=USING,
    )["methodResponses"]
    assert result[0][1]["ids"] == [ids["b"], ids["a"]]
    assert result[1][1]["list"] == [{"id": ids["b"], "title": "beta"}, {"id": ids["a"], "title": "alpha"}]
    assert result[2] == ["Core/echo", {"titles": ["beta", "alpha"]}, "e"]


def test_changes_then_get(jmap, notes):
    since = notes.state()
    ids = notes.create(a={"title": "new"})
    result = jmap.request(
        [
            ["Note/changes", {"accountId": notes.account_id, "sinceState": since}, "t0"],
            [
                "Note/get",
                {"accountId": notes.account_id, "#ids": ref("t0", "Note/changes", "/created"), "properties": ["title"]},
                "t1",
            ],
        ],
        using=USING,
    )["methodResponses"]
    assert result[1] == [
        "Note/get",
        {
            "accountId": notes.account_id,
            "state": result[0][1]["newState"],
            "list": [{"id": ids["a"], "title": "new"}],
            "notFound": [],
        },
        "t1",
    ]


def test_set_query_then_destroy_by_reference(jmap, notes):
    keep = notes.create(k={"title": "keep"})["k"]
    result = jmap.request(
        [
            ["Note/set", {"accountId": notes.account_id, "create": {"k": {"title": "short-lived"}}}, "s1"],
            ["Note/query", {"accountId": notes.account_id, "filter": {"text": "short"}}, "q"],
            ["Note/set", {"accountId": notes.account_id, "#destroy": ref("q", "Note/query", "/ids")}, "s2"],
            ["Note/get", {"accountId": notes.account_id, "#ids": ref("s1", "Note/set", "/created/k/id")}, "g"],
        ],
        using=USING,
    )["methodResponses"]
    created = result[0][1]["created"]["k"]["id"]
    assert result[2][1]["destroyed"] == [created]
    # A reference to one id is not an Id[] argument.
    assert result[3][0] == "error" and result[3][1]["type"] == "invalidArguments"
    assert not Note.objects.filter(title="short-lived").exists()
    assert notes.ok("Note/query", {})["ids"] == [keep]
