"""RFC 8621 §2.3 Mailbox/query (filters, sorts, sortAsTree, filterAsTree), §2.4 /queryChanges."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.mail.test_mailbox import MailboxApi


@pytest.fixture
def tree(jmap) -> tuple[MailboxApi, dict[str, str]]:
    """The six default mailboxes plus Projects(5) > {Beta, alpha > Deep}."""
    api = MailboxApi(jmap)
    ids = {item["name"]: item["id"] for item in api.get()}
    ids.update(
        {
            name: value
            for name, value in api.create(
                Projects={"name": "Projects", "sortOrder": 5},
                Beta={"name": "Beta", "parentId": "#Projects"},
                alpha={"name": "alpha", "parentId": "#Projects"},
                Deep={"name": "Deep", "parentId": "#alpha"},
            ).items()
        }
    )
    return api, ids


def names(api: MailboxApi, ids: dict[str, str], arguments: dict) -> list[str]:
    by_id = {value: key for key, value in ids.items()}
    return [by_id[object_id] for object_id in api.ok("Mailbox/query", arguments)["ids"]]


DEFAULTS = ["Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash"]


def test_sort_by_sort_order_then_name(tree):
    api, ids = tree
    result = names(api, ids, {"sort": [{"property": "sortOrder"}]})
    # Equal sortOrder: by name (§2 sortOrder), in the default i;unicode-casemap collation.
    assert result == ["alpha", "Beta", "Deep", "Projects", *DEFAULTS]


def test_sort_by_name(tree):
    api, ids = tree
    ascending = names(api, ids, {"sort": [{"property": "name"}]})
    assert ascending == sorted(ids, key=str.upper)
    descending = names(api, ids, {"sort": [{"property": "name", "isAscending": False}]})
    assert descending == list(reversed(ascending))
    octets = names(api, ids, {"sort": [{"property": "name", "collation": "i;octet"}]})
    assert octets == sorted(ids)


def test_sort_as_tree(tree):
    api, ids = tree
    result = names(api, ids, {"sort": [{"property": "sortOrder"}], "sortAsTree": True})
    # Parents before children; siblings by the comparators; subtrees stay together.
    assert result == ["Projects", "alpha", "Deep", "Beta", *DEFAULTS]
    by_name = names(api, ids, {"sort": [{"property": "name", "isAscending": False}], "sortAsTree": True})
    assert by_name == ["Trash", "Sent", "Projects", "Beta", "alpha", "Deep", "Junk", "Inbox", "Drafts", "Archive"]


def test_sort_as_tree_with_filter(tree):
    api, ids = tree
    result = names(api, ids, {"filter": {"hasAnyRole": False}, "sort": [{"property": "name"}], "sortAsTree": True})
    assert result == ["Projects", "alpha", "Deep", "Beta"]
    # Without their parent in the results the order still follows the tree.
    result = names(api, ids, {"filter": {"name": "e"}, "sort": [{"property": "name"}], "sortAsTree": True})
    # Deep (under the unmatched alpha) still sorts within the Projects subtree, before Beta.
    assert result == ["Archive", "Projects", "Deep", "Beta", "Sent"]


def test_filter_as_tree(tree):
    api, ids = tree
    plain = names(api, ids, {"filter": {"name": "a"}, "sort": [{"property": "sortOrder"}]})
    assert plain == ["alpha", "Beta", "Drafts", "Archive", "Trash"]
    # alpha and Beta are dropped: their parent Projects does not match.
    as_tree = names(api, ids, {"filter": {"name": "a"}, "sort": [{"property": "sortOrder"}], "filterAsTree": True})
    assert as_tree == ["Drafts", "Archive", "Trash"]
    deep = names(api, ids, {"filter": {"name": "p"}, "filterAsTree": True, "sortAsTree": True})
    assert deep == ["Projects", "alpha", "Deep"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"parentId": None}, {"Projects", *DEFAULTS}),
        ({"role": "inbox"}, {"Inbox"}),
        ({"role": None}, {"Projects", "Beta", "alpha", "Deep"}),
        ({"hasAnyRole": True}, set(DEFAULTS)),
        ({"hasAnyRole": False}, {"Projects", "Beta", "alpha", "Deep"}),
        ({"name": "ALPHA"}, {"alpha"}),  # contains, case-insensitively
        ({"name": "rash"}, {"Trash"}),
        ({"isSubscribed": True}, {"Projects", "Beta", "alpha", "Deep", *DEFAULTS} - {"Junk"}),
        ({"isSubscribed": False}, {"Junk"}),
        ({}, {"Projects", "Beta", "alpha", "Deep", *DEFAULTS}),
        ({"parentId": "m999999"}, set()),
        ({"parentId": "not-a-mailbox"}, set()),
        ({"hasAnyRole": False, "parentId": None}, {"Projects"}),
        ({"operator": "OR", "conditions": [{"role": "inbox"}, {"name": "Deep"}]}, {"Inbox", "Deep"}),
        ({"operator": "NOT", "conditions": [{"hasAnyRole": True}, {"parentId": None}]}, {"Beta", "alpha", "Deep"}),
        ({"operator": "AND", "conditions": []}, {"Projects", "Beta", "alpha", "Deep", *DEFAULTS}),
        ({"operator": "OR", "conditions": []}, set()),
    ],
)
def test_filters(tree, condition, expected):
    api, ids = tree
    api.update(ids["Junk"], {"isSubscribed": False})
    assert set(names(api, ids, {"filter": condition})) == expected


def test_filter_by_parent(tree):
    api, ids = tree
    assert set(names(api, ids, {"filter": {"parentId": ids["Projects"]}})) == {"Beta", "alpha"}


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [5]}}, "invalidArguments"),
        ({"filter": {"hasAnyRole": "yes"}}, "invalidArguments"),
        ({"filter": {"name": None}}, "invalidArguments"),
        ({"sort": [{"property": "totalEmails"}]}, "unsupportedSort"),
        ({"sort": [{"property": "name", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"sortAsTree": "yes"}, "invalidArguments"),
        ({"filterAsTree": 1}, "invalidArguments"),
        ({"onDestroyRemoveEmails": True}, "invalidArguments"),
    ],
)
def test_query_errors(tree, arguments, kind):
    api, _ = tree
    assert api.error("Mailbox/query", arguments)["type"] == kind


def test_filter_depth_limit(tree):
    api, _ = tree
    node: dict = {"name": "x"}
    for _ in range(40):
        node = {"operator": "AND", "conditions": [node]}
    assert api.error("Mailbox/query", {"filter": node})["type"] == "unsupportedFilter"


def test_paging_and_total(tree):
    api, ids = tree
    arguments = {"sort": [{"property": "sortOrder"}], "sortAsTree": True, "calculateTotal": True}
    result = api.ok("Mailbox/query", {**arguments, "position": 1, "limit": 2})
    assert result["total"] == 10 and result["position"] == 1
    assert result["ids"] == [ids["alpha"], ids["Deep"]]
    anchored = api.ok("Mailbox/query", {**arguments, "anchor": ids["Deep"], "anchorOffset": 1, "limit": 1})
    assert anchored["ids"] == [ids["Beta"]]
    assert result["canCalculateChanges"] is True


def test_query_changes(tree):
    api, ids = tree
    arguments = {"filter": {"hasAnyRole": False}, "sort": [{"property": "name"}], "sortAsTree": True}
    first = api.ok("Mailbox/query", arguments)
    api.update(ids["Beta"], {"name": "Aardvark"})
    changes = api.ok("Mailbox/queryChanges", {**arguments, "sinceQueryState": first["queryState"]})
    assert changes["removed"] == [ids["Beta"]]
    assert changes["added"] == [{"id": ids["Beta"], "index": 1}]
    assert changes["oldQueryState"] == first["queryState"] and changes["newQueryState"] != first["queryState"]
    now = api.ok("Mailbox/query", arguments)
    assert now["ids"] == [ids["Projects"], ids["Beta"], ids["alpha"], ids["Deep"]]


def test_query_count_is_pinned(tree):
    api, _ = tree
    arguments = {"filter": {"isSubscribed": True}, "sort": [{"property": "name"}], "sortAsTree": True}
    with CaptureQueriesContext(connection) as few:
        api.ok("Mailbox/query", arguments)
    api.create(**{f"b{i}": {"name": f"Box {i}", "parentId": "#b0" if i else None} for i in range(30)})
    with CaptureQueriesContext(connection) as many:
        assert len(api.ok("Mailbox/query", arguments)["ids"]) == 40
    assert len(many) == len(few)
    # auth + accounts + state + mailboxes
    assert len(many.captured_queries) <= 4, [query["sql"] for query in many.captured_queries]
