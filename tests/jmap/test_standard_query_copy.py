"""RFC 8620 §5.5 /query, §5.6 /queryChanges and §5.4 /copy, through the test-only Note type."""

from __future__ import annotations

import pytest

from accounts.models import Account
from tests.jmaptest.models import Note


@pytest.fixture
def sample(notes):
    return notes.create(
        a={"title": "apple", "rank": 3, "isPinned": True},
        b={"title": "Banana", "rank": 1},
        c={"title": "cherry", "rank": 2, "body": "red fruit"},
        d={"title": "10 dates", "rank": 5},
        e={"title": "9 figs", "rank": 4, "isPinned": True},
    )


def query(notes, **arguments):
    return notes.ok("Note/query", arguments)


def test_query_default_order_is_stable(notes, sample):
    first = query(notes)["ids"]
    assert sorted(first) == sorted(sample.values())
    assert query(notes)["ids"] == first


def test_query_sort_collations(notes, sample):
    s = sample
    by_title = query(notes, sort=[{"property": "title"}])["ids"]
    assert by_title == [s["d"], s["e"], s["a"], s["b"], s["c"]]  # case-insensitive by default
    octet = query(notes, sort=[{"property": "title", "collation": "i;octet"}])["ids"]
    assert octet == [s["d"], s["e"], s["b"], s["a"], s["c"]]  # "B" < "a" in octets
    numeric = query(notes, sort=[{"property": "title", "collation": "i;ascii-numeric"}])["ids"]
    assert numeric[:2] == [s["e"], s["d"]]  # 9 < 10; non-numbers after
    descending = query(notes, sort=[{"property": "rank", "isAscending": False}])["ids"]
    assert descending == [s["d"], s["e"], s["a"], s["c"], s["b"]]
    pinned_then_rank = query(notes, sort=[{"property": "isPinned", "isAscending": False}, {"property": "rank"}])["ids"]
    assert pinned_then_rank == [s["a"], s["e"], s["b"], s["c"], s["d"]]  # true before false when descending


def test_query_filters_and_operators(notes, sample):
    s = sample
    assert set(query(notes, filter={"isPinned": True})["ids"]) == {s["a"], s["e"]}
    assert set(query(notes, filter={"text": "FRUIT"})["ids"]) == {s["c"]}
    both = {"operator": "AND", "conditions": [{"isPinned": True}, {"minRank": 4}]}
    assert query(notes, filter=both)["ids"] == [s["e"]]
    either = {"operator": "OR", "conditions": [{"text": "apple"}, {"minRank": 5}]}
    assert set(query(notes, filter=either)["ids"]) == {s["a"], s["d"]}
    neither = {"operator": "NOT", "conditions": [{"isPinned": True}, {"minRank": 5}]}
    assert set(query(notes, filter=neither)["ids"]) == {s["b"], s["c"]}
    nested = {"operator": "NOT", "conditions": [{"operator": "OR", "conditions": []}]}
    assert len(query(notes, filter=nested)["ids"]) == 5
    assert query(notes, filter={"operator": "OR", "conditions": []})["ids"] == []


def test_query_window_position_anchor_limit_total(notes, sample):
    order = query(notes, sort=[{"property": "rank"}])["ids"]
    rank = [{"property": "rank"}]
    assert query(notes, sort=rank, position=1, limit=2)["ids"] == order[1:3]
    result = query(notes, sort=rank, position=-2, calculateTotal=True)
    assert result["ids"] == order[-2:] and result["position"] == 3 and result["total"] == 5
    assert query(notes, sort=rank, position=-99)["position"] == 0
    assert query(notes, sort=rank, position=7)["ids"] == []
    result = query(notes, sort=rank, anchor=order[2], anchorOffset=-1, limit=2, position=4)
    assert result["ids"] == order[1:3] and result["position"] == 1  # position ignored with an anchor
    assert query(notes, sort=rank, anchor=order[0], anchorOffset=-3)["position"] == 0
    assert "total" not in query(notes)
    assert notes.error("Note/query", {"anchor": "n0"})["type"] == "anchorNotFound"


def test_query_server_limit_is_reported(notes, sample):
    result = query(notes, limit=2)
    assert len(result["ids"]) == 2 and "limit" not in result
    result = query(notes)
    assert result["limit"] >= 5  # the server's cap when no limit is given


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"limit": -1}, "invalidArguments"),
        ({"position": "1"}, "invalidArguments"),
        ({"calculateTotal": 1}, "invalidArguments"),
        ({"sort": [{"property": "title", "isAscending": "yes"}]}, "invalidArguments"),
        ({"sort": [{"property": "body"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"isPinned": "yes"}}, "invalidArguments"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [5]}}, "invalidArguments"),
        ({"filter": []}, "invalidArguments"),
    ],
)
def test_query_bad_arguments(notes, arguments, error):
    assert notes.error("Note/query", arguments)["type"] == error


def test_query_state_and_query_changes(notes, sample):
    rank = [{"property": "rank"}]
    first = query(notes, sort=rank, filter={"minRank": 2})
    assert first["canCalculateChanges"] is True
    old_ids = first["ids"]
    notes.ok(
        "Note/set",
        {
            "create": {"n": {"title": "new", "rank": 0}, "m": {"title": "mid", "rank": 3}},
            "update": {sample["b"]: {"rank": 10}, sample["c"]: {"rank": 0}},
            "destroy": [sample["d"]],
        },
    )
    now = query(notes, sort=rank, filter={"minRank": 2})
    assert now["queryState"] != first["queryState"]
    changes = notes.ok(
        "Note/queryChanges",
        {
            "sinceQueryState": first["queryState"],
            "sort": rank,
            "filter": {"minRank": 2},
            "calculateTotal": True,
        },
    )
    assert changes["oldQueryState"] == first["queryState"] and changes["newQueryState"] == now["queryState"]
    assert changes["total"] == len(now["ids"])
    # Applying removed then added (in index order) to the old list gives the new list (§5.6).
    rebuilt = [item for item in old_ids if item not in changes["removed"]]
    for added in changes["added"]:
        rebuilt.insert(added["index"], added["id"])
    assert rebuilt == now["ids"]
    assert [a["index"] for a in changes["added"]] == sorted(a["index"] for a in changes["added"])


def test_query_changes_up_to_id_and_max_changes(notes, sample):
    rank = [{"property": "rank"}]
    first = query(notes, sort=rank)
    notes.ok("Note/set", {"update": {sample["b"]: {"title": "b2"}, sample["d"]: {"title": "d2"}}})
    now = query(notes, sort=rank)["ids"]
    upto = notes.ok("Note/queryChanges", {"sinceQueryState": first["queryState"], "sort": rank, "upToId": now[1]})
    assert [a["id"] for a in upto["added"]] == [sample["b"]]  # d is beyond upToId
    error = notes.error("Note/queryChanges", {"sinceQueryState": first["queryState"], "sort": rank, "maxChanges": 1})
    assert error["type"] == "tooManyChanges"
    bogus = notes.error("Note/queryChanges", {"sinceQueryState": "nonsense", "sort": rank})
    assert bogus["type"] == "cannotCalculateChanges"


# -- /copy ---------------------------------------------------------------------------------


@pytest.fixture
def team(user):
    # A second account the same user can write to (sharing will add more ways to have one).
    return Account.objects.create(owner=user, name="Team", is_personal=False)


def test_copy_between_accounts(jmap, notes, team, sample):
    response = jmap.request(
        [
            [
                "Note/copy",
                {
                    "fromAccountId": notes.account_id,
                    "accountId": team.jmap_id,
                    "create": {"k1": {"id": sample["a"], "title": "apple copy"}, "k2": {"id": "n0"}},
                },
                "c",
            ],
            ["Note/get", {"accountId": team.jmap_id, "ids": ["#k1"], "properties": ["title", "rank", "isPinned"]}, "g"],
        ],
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    (name, copied, _), (_, got, _) = response["methodResponses"]
    assert name == "Note/copy"
    assert copied["fromAccountId"] == notes.account_id and copied["accountId"] == team.jmap_id
    new_id = copied["created"]["k1"]["id"]
    assert copied["notCreated"]["k2"]["type"] == "notFound"
    assert got["list"] == [{"id": new_id, "title": "apple copy", "rank": 3, "isPinned": True}]
    assert Note.objects.filter(account=team).count() == 1
    # The original stays where it was.
    assert Note.objects.filter(account__is_personal=True, title="apple").exists()


def test_copy_on_success_destroy_original(jmap, notes, team, sample):
    response = jmap.request(
        [
            [
                "Note/copy",
                {
                    "fromAccountId": notes.account_id,
                    "accountId": team.jmap_id,
                    "create": {"k1": {"id": sample["b"]}},
                    "onSuccessDestroyOriginal": True,
                },
                "c",
            ]
        ],
        using=["urn:ietf:params:jmap:core", "urn:example:jmaptest"],
    )
    (copy_name, _, copy_call), (set_name, destroyed, set_call) = response["methodResponses"]
    assert (copy_name, set_name) == ("Note/copy", "Note/set")
    assert copy_call == set_call == "c"  # the implicit /set shares the call id
    assert destroyed["destroyed"] == [sample["b"]] and destroyed["accountId"] == notes.account_id


def test_copy_errors(notes, other_notes, team, sample):
    same = notes.error("Note/copy", {"fromAccountId": notes.account_id, "create": {}})
    assert same["type"] == "invalidArguments"
    foreign = other_notes.account_id
    assert (
        notes.error("Note/copy", {"fromAccountId": foreign, "accountId": team.jmap_id, "create": {}})["type"]
        == "fromAccountNotFound"
    )
    assert (
        notes.error("Note/copy", {"fromAccountId": notes.account_id, "accountId": foreign, "create": {}})["type"]
        == "accountNotFound"
    )
    mismatch = notes.error(
        "Note/copy", {"fromAccountId": team.jmap_id, "ifFromInState": "77", "accountId": notes.account_id, "create": {}}
    )
    assert mismatch["type"] == "stateMismatch"
    result = notes.ok(
        "Note/copy",
        {
            "fromAccountId": notes.account_id,
            "accountId": team.jmap_id,
            "create": {
                "x": {"id": sample["a"], "created": "2000-01-01T00:00:00Z"},
                "y": {"id": sample["a"], "title": ""},
            },
        },
    )
    assert result["notCreated"]["x"]["type"] == "invalidProperties"
    assert result["notCreated"]["y"]["type"] == "invalidProperties"
