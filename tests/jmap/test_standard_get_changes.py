"""RFC 8620 §5.1 /get and §5.2 /changes, through the test-only Note type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from groupware.core.changes import purge_tombstones
from groupware.core.models import ObjectChange

# -- /get ---------------------------------------------------------------------------------


def test_get_all_and_properties(notes):
    ids = notes.create(a={"title": "One", "rank": 1}, b={"title": "Two"})
    result = notes.ok("Note/get", {"ids": None})
    assert {item["id"] for item in result["list"]} == set(ids.values())
    assert result["notFound"] == []
    full = next(item for item in result["list"] if item["id"] == ids["a"])
    assert set(full) == {"id", "title", "body", "rank", "isPinned", "parentId", "created"}
    # Only the properties asked for, and always the id (§5.1).
    result = notes.ok("Note/get", {"ids": [ids["a"]], "properties": ["rank"]})
    assert result["list"] == [{"id": ids["a"], "rank": 1}]


def test_get_invalid_property_is_invalid_arguments(notes):
    assert notes.error("Note/get", {"ids": [], "properties": ["nope"]})["type"] == "invalidArguments"


def test_get_duplicates_answered_once_and_not_found(notes, other_notes):
    ids = notes.create(a={"title": "One"})
    foreign = other_notes.create(x={"title": "Theirs"})["x"]
    result = notes.ok("Note/get", {"ids": [ids["a"], ids["a"], "nzzzz", "zz", foreign, "nope", "nope"]})
    assert [item["id"] for item in result["list"]] == [ids["a"]]
    # Another user's record does not exist to us; a repeated unknown id is listed once.
    assert sorted(result["notFound"]) == sorted(["nzzzz", "zz", foreign, "nope"])


def test_get_empty_ids(notes):
    notes.create(a={"title": "One"})
    result = notes.ok("Note/get", {"ids": []})
    assert result["list"] == [] and result["notFound"] == []


def test_get_too_many_ids(notes, settings):
    settings.JMAP = {**settings.JMAP, "maxObjectsInGet": 3}
    assert notes.error("Note/get", {"ids": ["n1", "n2", "n3", "n4"]})["type"] == "requestTooLarge"
    notes.create(a={"title": "1"}, b={"title": "2"}, c={"title": "3"}, d={"title": "4"})
    assert notes.error("Note/get", {"ids": None})["type"] == "requestTooLarge"


def test_get_state_changes_only_with_data(notes):
    first = notes.state()
    assert notes.state() == first
    notes.create(a={"title": "One"})
    assert notes.state() != first


def test_get_query_count_does_not_grow_with_records(notes):
    notes.create(**{f"c{i}": {"title": f"Note {i}"} for i in range(3)})
    with CaptureQueriesContext(connection) as few:
        notes.ok("Note/get", {"ids": None})
    notes.create(**{f"d{i}": {"title": f"Note {i}"} for i in range(40)})
    with CaptureQueriesContext(connection) as many:
        result = notes.ok("Note/get", {"ids": None})
    assert len(result["list"]) == 43
    assert len(many) == len(few)
    # auth + accounts + records + state (+ savepoint bookkeeping on some backends)
    assert len(many.captured_queries) <= 6, [q["sql"] for q in many.captured_queries]


# -- /changes -----------------------------------------------------------------------------


def test_changes_created_updated_destroyed(notes):
    start = notes.state()
    ids = notes.create(a={"title": "A"}, b={"title": "B"}, c={"title": "C"})
    middle = notes.state()
    notes.ok("Note/set", {"update": {ids["a"]: {"title": "A2"}}, "destroy": [ids["b"]]})
    result = notes.ok("Note/changes", {"sinceState": middle})
    assert result["oldState"] == middle
    assert result["newState"] == notes.state()
    assert result["hasMoreChanges"] is False
    assert result["created"] == [] and result["updated"] == [ids["a"]] and result["destroyed"] == [ids["b"]]
    # From the start: created+updated is created; created+destroyed is omitted (§5.2 SHOULDs).
    result = notes.ok("Note/changes", {"sinceState": start})
    assert sorted(result["created"]) == sorted([ids["a"], ids["c"]])
    assert result["updated"] == [] and result["destroyed"] == []


def test_changes_from_current_state_is_empty(notes):
    notes.create(a={"title": "A"})
    state = notes.state()
    result = notes.ok("Note/changes", {"sinceState": state})
    assert result == {
        "accountId": notes.account_id,
        "oldState": state,
        "newState": state,
        "hasMoreChanges": False,
        "created": [],
        "updated": [],
        "destroyed": [],
    }


@pytest.mark.parametrize("state", ["", "garbage", "-1", "01", "99999999", "1.5", "9" * 40])
def test_changes_unknown_state(notes, state):
    notes.create(a={"title": "A"})
    assert notes.error("Note/changes", {"sinceState": state})["type"] == "cannotCalculateChanges"


@pytest.mark.parametrize("value", [0, -1, "5", 1.5, True])
def test_changes_max_changes_must_be_positive(notes, value):
    error = notes.error("Note/changes", {"sinceState": "0", "maxChanges": value})
    assert error["type"] == "invalidArguments"


def test_changes_intermediate_states(notes):
    start = notes.state()
    ids = notes.create(**{f"c{i}": {"title": f"N{i}"} for i in range(7)})
    notes.ok("Note/set", {"update": {ids["c0"]: {"rank": 5}}, "destroy": [ids["c1"]]})
    seen_created: list[str] = []
    state, rounds = start, 0
    while True:
        result = notes.ok("Note/changes", {"sinceState": state, "maxChanges": 2})
        total = len(result["created"]) + len(result["updated"]) + len(result["destroyed"])
        assert total <= 2  # MUST NOT exceed maxChanges
        seen_created += result["created"]
        assert not result["destroyed"]  # never reported as destroyed before being created
        state = result["newState"]
        rounds += 1
        if not result["hasMoreChanges"]:
            break
    assert state == notes.state()
    assert sorted(seen_created) == sorted(v for k, v in ids.items() if k != "c1")
    assert rounds >= 3


def test_changes_is_one_range_query(notes):
    notes.create(**{f"c{i}": {"title": f"N{i}"} for i in range(30)})
    state = notes.state()
    notes.create(x={"title": "new"})
    with CaptureQueriesContext(connection) as queries:
        result = notes.ok("Note/changes", {"sinceState": state})
    assert len(result["created"]) == 1
    change_queries = [q["sql"] for q in queries.captured_queries if "core_objectchange" in q["sql"]]
    # The state lookup and the range scan: neither reads the Note table.
    assert len(change_queries) == 2
    assert not any("jmaptest_note" in q["sql"] for q in queries.captured_queries)


def test_changes_after_purge_cannot_be_calculated(notes):
    old = notes.state()
    ids = notes.create(a={"title": "A"}, b={"title": "B"})
    notes.ok("Note/set", {"destroy": [ids["a"]]})
    ObjectChange.objects.filter(destroyed=True).update(changed=timezone.now() - timedelta(days=90))
    state_before_purge = notes.state()
    assert purge_tombstones(older_than=timezone.now() - timedelta(days=30)) == 1
    assert notes.error("Note/changes", {"sinceState": old})["type"] == "cannotCalculateChanges"
    # States never go backwards, and a state given after the purge still works.
    assert int(notes.state()) >= int(state_before_purge)
    assert notes.ok("Note/changes", {"sinceState": notes.state()})["hasMoreChanges"] is False
