"""RFC 8620 §5.3 /set, through the test-only Note type."""

from __future__ import annotations

import pytest

from tests.jmaptest.models import Note


def test_create_returns_server_set_and_defaulted_properties(notes):
    result = notes.ok("Note/set", {"create": {"k1": {"title": "Hello", "rank": 2}}})
    created = result["created"]["k1"]
    assert set(created) == {"id", "created", "body", "isPinned", "parentId"}
    assert created["body"] == "" and created["isPinned"] is False and created["parentId"] is None
    assert result["oldState"] != result["newState"]
    assert result["updated"] is None and result["destroyed"] is None
    assert result["notCreated"] is None and result["notUpdated"] is None and result["notDestroyed"] is None


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ({"title": "x", "id": "n1"}, ["id"]),  # server-set
        ({"title": "x", "created": "2020-01-01T00:00:00Z"}, ["created"]),
        ({"title": "x", "colour": "red"}, ["colour"]),  # unknown
        ({"title": 5}, ["title"]),  # wrong type
        ({"title": ""}, ["title"]),
        ({"body": "no title"}, ["title"]),  # required missing
        ({"title": "x", "rank": 2**53}, ["rank"]),  # beyond Int
        ({"title": "x", "parentId": "#nowhere"}, ["parentId"]),
        ({"title": "x", "parentId": "n999999"}, ["parentId"]),  # foreign key to nothing
    ],
)
def test_create_invalid_properties(notes, values, bad):
    before = notes.state()
    result = notes.ok("Note/set", {"create": {"k": values}})
    error = result["notCreated"]["k"]
    assert error["type"] == "invalidProperties"
    assert error["properties"] == bad
    assert result["created"] is None
    assert notes.state() == before == result["newState"]


def test_creation_id_references_in_any_order_and_across_calls(jmap, notes):
    response = jmap.request(
        [
            [
                "Note/set",
                {
                    "accountId": notes.account_id,
                    "create": {
                        "child": {"title": "Child", "parentId": "#parent"},
                        "parent": {"title": "Parent"},
                    },
                },
                "s1",
            ],
            [
                "Note/set",
                {
                    "accountId": notes.account_id,
                    "create": {"grandchild": {"title": "G", "parentId": "#child"}},
                    "update": {"#parent": {"rank": 9}},
                },
                "s2",
            ],
            [
                "Note/get",
                {"accountId": notes.account_id, "ids": ["#grandchild", "#child"], "properties": ["parentId"]},
                "g",
            ],
        ],
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
        createdIds={"earlier": "nabc"},
    )
    first, second, got = (r[1] for r in response["methodResponses"])
    parent, child = first["created"]["parent"]["id"], first["created"]["child"]["id"]
    grandchild = second["created"]["grandchild"]["id"]
    assert second["updated"] == {parent: None}
    parents = {item["id"]: item["parentId"] for item in got["list"]}
    assert parents == {grandchild: child, child: parent}
    # createdIds: given in, so returned with every new creation id added (§3.3, §3.4).
    assert response["createdIds"] == {"earlier": "nabc", "parent": parent, "child": child, "grandchild": grandchild}


def test_created_ids_absent_unless_given(jmap, notes):
    response = jmap.request(
        [["Note/set", {"accountId": notes.account_id, "create": {"a": {"title": "A"}}}, "s"]],
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    assert "createdIds" not in response


def test_if_in_state(notes):
    state = notes.state()
    ids = notes.create(a={"title": "A"})
    error = notes.error("Note/set", {"ifInState": state, "update": {ids["a"]: {"title": "B"}}})
    assert error["type"] == "stateMismatch"
    assert Note.objects.get().title == "A"
    result = notes.ok("Note/set", {"ifInState": notes.state(), "update": {ids["a"]: {"title": "B"}}})
    assert result["updated"] == {ids["a"]: None}


def test_update_with_patch_paths_and_whole_objects(notes):
    ids = notes.create(a={"title": "A", "rank": 1, "body": "text"})
    full = notes.ok("Note/get", {"ids": [ids["a"]]})["list"][0]
    # The whole object, server-set properties included unchanged, is a valid patch (§5.3).
    result = notes.ok("Note/set", {"update": {ids["a"]: {**full, "title": "Whole"}}})
    assert result["updated"] == {ids["a"]: None}
    # null resets a property to its default.
    notes.ok("Note/set", {"update": {ids["a"]: {"body": None, "rank": None}}})
    got = notes.ok("Note/get", {"ids": [ids["a"]]})["list"][0]
    assert got["title"] == "Whole" and got["body"] == "" and got["rank"] == 0


def test_update_server_set_property_changed_is_invalid(notes):
    ids = notes.create(a={"title": "A"})
    result = notes.ok("Note/set", {"update": {ids["a"]: {"created": "2000-01-01T00:00:00Z", "title": "B"}}})
    assert result["notUpdated"][ids["a"]]["type"] == "invalidProperties"
    assert result["notUpdated"][ids["a"]]["properties"] == ["created"]
    # Nothing of a rejected update is applied (atomic per record).
    assert Note.objects.get().title == "A"


@pytest.mark.parametrize(
    "patch",
    [
        {"parentId/x": 1},  # parent is not an object
        {"title/0": "x"},
        {"body": "x", "body/y": 2},  # one path is a prefix of another
        {"": 1},
    ],
)
def test_invalid_patch(notes, patch):
    ids = notes.create(a={"title": "A"})
    result = notes.ok("Note/set", {"update": {ids["a"]: patch}})
    assert result["notUpdated"][ids["a"]]["type"] == "invalidPatch"


def test_update_unknown_property_is_invalid_properties(notes):
    ids = notes.create(a={"title": "A"})
    result = notes.ok("Note/set", {"update": {ids["a"]: {"colour": "red"}}})
    assert result["notUpdated"][ids["a"]] == {
        "type": "invalidProperties",
        "description": "unknown properties",
        "properties": ["colour"],
    }


def test_update_and_destroy_not_found(notes, other_notes):
    foreign = other_notes.create(x={"title": "Theirs"})["x"]
    result = notes.ok("Note/set", {"update": {foreign: {"title": "Mine"}, "nope": {}}, "destroy": [foreign, "n0"]})
    assert result["notUpdated"] == {foreign: {"type": "notFound"}, "nope": {"type": "notFound"}}
    assert result["notDestroyed"] == {foreign: {"type": "notFound"}, "n0": {"type": "notFound"}}
    assert Note.objects.get(pk__isnull=False).title == "Theirs"


def test_update_of_destroyed_record_will_destroy(notes):
    ids = notes.create(a={"title": "A"})
    result = notes.ok("Note/set", {"update": {ids["a"]: {"title": "B"}}, "destroy": [ids["a"]]})
    assert result["notUpdated"][ids["a"]]["type"] == "willDestroy"
    assert result["destroyed"] == [ids["a"]]


def test_destroy_then_destroy_again(notes):
    ids = notes.create(a={"title": "A"})
    assert notes.ok("Note/set", {"destroy": [ids["a"]]})["destroyed"] == [ids["a"]]
    result = notes.ok("Note/set", {"destroy": [ids["a"]]})
    assert result["notDestroyed"] == {ids["a"]: {"type": "notFound"}}
    assert result["oldState"] == result["newState"]


def test_one_failure_does_not_stop_the_others(notes):
    ids = notes.create(a={"title": "A"}, b={"title": "B"})
    result = notes.ok(
        "Note/set",
        {
            "create": {"good": {"title": "Good"}, "bad": {"title": 7}},
            "update": {ids["a"]: {"rank": "high"}, ids["b"]: {"rank": 3}},
            "destroy": ["n0", ids["a"]],
        },
    )
    assert set(result["created"]) == {"good"} and set(result["notCreated"]) == {"bad"}
    assert result["updated"] == {ids["b"]: None} and set(result["notUpdated"]) == {ids["a"]}
    assert result["destroyed"] == [ids["a"]] and set(result["notDestroyed"]) == {"n0"}


def test_side_effect_changes_are_tracked(notes):
    ids = notes.create(parent={"title": "P"}, child={"title": "C", "parentId": "#parent"})
    state = notes.state()
    notes.ok("Note/set", {"destroy": [ids["parent"]]})
    result = notes.ok("Note/changes", {"sinceState": state})
    # Destroying the parent cleared the child's parentId: both changes are visible.
    assert result["updated"] == [ids["child"]] and result["destroyed"] == [ids["parent"]]


def test_max_objects_in_set(notes, settings):
    settings.JMAP = {**settings.JMAP, "maxObjectsInSet": 2}
    error = notes.error("Note/set", {"create": {"a": {"title": "A"}, "b": {"title": "B"}}, "destroy": ["n1"]})
    assert error["type"] == "requestTooLarge"
    assert Note.objects.count() == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"create": []},
        {"create": {"a": "not an object"}},
        {"create": {"bad key!": {"title": "x"}}},
        {"update": {"n1": 5}},
        {"destroy": "n1"},
        {"destroy": [1]},
        {"ifInState": 3},
    ],
)
def test_set_argument_types(notes, arguments):
    assert notes.error("Note/set", arguments)["type"] == "invalidArguments"


def test_cycle_is_rejected(notes):
    ids = notes.create(a={"title": "A"}, b={"title": "B", "parentId": "#a"})
    result = notes.ok("Note/set", {"update": {ids["a"]: {"parentId": ids["b"]}}})
    assert result["notUpdated"][ids["a"]]["type"] == "invalidProperties"


def test_type_specific_set_errors_pass_through(notes, settings):
    ids = notes.create(pinned={"title": "P", "isPinned": True}, other={"title": "O"})
    result = notes.ok(
        "Note/set",
        {
            "create": {"big": {"title": "B", "body": "x" * 1001}},
            "update": {ids["other"]: {"body": "y" * 1001}},
            "destroy": [ids["pinned"]],
        },
    )
    assert result["notCreated"]["big"] == {
        "type": "tooLarge",
        "description": "body is limited to 1000 characters",
        "maxSize": 1000,
    }
    assert result["notUpdated"][ids["other"]]["type"] == "tooLarge"
    assert result["notDestroyed"][ids["pinned"]]["type"] == "forbidden"
    assert result["oldState"] == result["newState"]


def test_over_quota(notes):
    notes.create(**{f"n{i}": {"title": f"N{i}"} for i in range(50)})
    result = notes.ok("Note/set", {"create": {"one-more": {"title": "X"}}})
    assert result["notCreated"]["one-more"]["type"] == "overQuota"
