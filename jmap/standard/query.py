"""Foo/query and Foo/queryChanges (RFC 8620 §5.5, §5.6).

Filtering happens in the database (one query returning each match's key and sort
values); sorting happens in Python with the requested collation, so every backend
orders strings the same way and the order is stable (ties broken by the record key).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Q

from groupware.core.changes import changes_since, decode_state, type_state
from groupware.core.collation import COLLATIONS, DEFAULT_COLLATION
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.standard.changes import since_modseq
from jmap.standard.datatype import DataType
from jmap.standard.get import options_of

QUERY_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("filter", a.nullable(a.obj), None),
    a.arg("sort", a.nullable(a.list_of(a.obj)), None),
    a.arg("position", a.integer, 0),
    a.arg("anchor", a.nullable(a.id_), None),
    a.arg("anchorOffset", a.integer, 0),
    a.arg("limit", a.nullable(a.unsigned), None),
    a.arg("calculateTotal", a.boolean, False),
)

QUERY_CHANGES_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("filter", a.nullable(a.obj), None),
    a.arg("sort", a.nullable(a.list_of(a.obj)), None),
    a.arg("sinceQueryState", a.string),
    a.arg("maxChanges", a.nullable(a.positive), None),
    a.arg("upToId", a.nullable(a.id_), None),
    a.arg("calculateTotal", a.boolean, False),
)

_OPERATORS = {"AND", "OR", "NOT"}
T = TypeVar("T")


def fold_filter(
    tree: Any,
    *,
    condition: Callable[[dict[str, Any], str], T],
    operator: Callable[[str, list[T]], T],
    max_depth: int,
    max_parts: int,
) -> T:
    """Check a FilterOperator/FilterCondition tree (RFC 8620 §5.5) and fold it bottom-up:
    ``condition(node, where)`` for each FilterCondition, ``operator(name, children)`` for
    each AND/OR/NOT. Too deep or too large a tree is unsupportedFilter."""
    budget = [max_parts]

    def fold(node: Any, depth: int, where: str) -> T:
        if not isinstance(node, dict):
            raise MethodError("invalidArguments", f"{where} must be a FilterOperator or FilterCondition object")
        if depth > max_depth:
            raise MethodError("unsupportedFilter", f"filters may nest at most {max_depth} levels")
        budget[0] -= 1
        if budget[0] < 0:
            raise MethodError("unsupportedFilter", f"filters may have at most {max_parts} parts")
        if "operator" not in node:
            return condition(node, where)
        name, conditions = node.get("operator"), node.get("conditions")
        if set(node) != {"operator", "conditions"} or name not in _OPERATORS or not isinstance(conditions, list):
            raise MethodError(
                "invalidArguments", f"{where}: a FilterOperator has operator AND/OR/NOT and conditions (an array)"
            )
        children = [fold(child, depth + 1, f"{where}/conditions/{index}") for index, child in enumerate(conditions)]
        return operator(name, children)

    return fold(tree, 1, "filter")


def build_filter(datatype: DataType, tree: dict[str, Any] | None) -> Q:
    if tree is None:
        return Q()

    def condition(node: dict[str, Any], where: str) -> Q:
        result = Q()
        for name, value in node.items():
            spec = datatype.filters.get(name)
            if spec is None:
                raise MethodError("unsupportedFilter", f"{where}: {name} is not a filter condition of {datatype.name}")
            result &= spec.to_q(spec.check(value, f"{where}/{name}"))
        return result

    def operator(name: str, parts: list[Q]) -> Q:
        if name == "AND":
            return functools.reduce(lambda left, right: left & right, parts, Q())
        combined = functools.reduce(lambda left, right: left | right, parts, Q(pk__in=[]))
        return ~combined if name == "NOT" else combined

    return fold_filter(
        tree,
        condition=condition,
        operator=operator,
        max_depth=datatype.max_filter_depth,
        max_parts=datatype.max_filter_conditions,
    )


def _sort_plan(datatype: DataType, sort: list[dict] | None) -> list[tuple[str, str, bool, Any]]:
    plan = []
    for index, comparator in enumerate(sort or []):
        where = f"sort[{index}]"
        prop = comparator.get("property")
        ascending = comparator.get("isAscending", True)
        collation = comparator.get("collation", DEFAULT_COLLATION)
        if not isinstance(prop, str) or not isinstance(ascending, bool) or not isinstance(collation, str):
            raise MethodError(
                "invalidArguments", f"{where}: property (String), isAscending (Boolean), collation (String)"
            )
        extra = set(comparator) - {"property", "isAscending", "collation"}
        if extra:
            raise MethodError("invalidArguments", f"{where}: unknown members {', '.join(sorted(extra))}")
        spec = datatype.sorts.get(prop)
        if spec is None:
            raise MethodError("unsupportedSort", f"{where}: cannot sort {datatype.name} by {prop}")
        if collation not in COLLATIONS:
            raise MethodError("unsupportedSort", f"{where}: unknown collation {collation}")
        plan.append((spec.field, spec.kind, ascending, COLLATIONS[collation]))
    return plan


class SortKey:
    """Sort key over several comparators, each ascending or descending."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple) -> None:
        self.parts = parts

    def __lt__(self, other: SortKey) -> bool:
        for (mine, ascending), (theirs, _) in zip(self.parts, other.parts, strict=True):
            if mine != theirs:
                return (mine < theirs) if ascending else (theirs < mine)
        return False


def _value_key(value: Any, kind: str, collate: Any) -> tuple:
    # None sorts first in ascending order, whatever the type.
    if value is None:
        return (0, 0)
    if kind == "string":
        return (1, collate(value))
    return (1, value)


class SortPlan:
    """A checked Comparator list: the fields to read and a sort key over their values."""

    def __init__(self, datatype: DataType, sort: list[dict] | None) -> None:
        self.comparators = _sort_plan(datatype, sort)
        self.fields = [field for field, _, _, _ in self.comparators]

    def key(self, values: Any, *tie_breaks: Any) -> SortKey:
        """The key of a record whose sort fields hold ``values`` (in ``fields`` order);
        ``tie_breaks`` (ascending) order records the comparators find equal."""
        parts = tuple(
            (_value_key(value, kind, collate), ascending)
            for value, (_, kind, ascending, collate) in zip(values, self.comparators, strict=True)
        )
        return SortKey((*parts, *((tie_break, True) for tie_break in tie_breaks)))


def ordered_ids(datatype: DataType, account: Any, filter_tree: dict | None, sort: list[dict] | None) -> list[str]:
    """Every matching id in query order."""
    condition = build_filter(datatype, filter_tree)
    plan = SortPlan(datatype, sort)
    rows = datatype.queryset(account).filter(condition).values_list(datatype.tie_break_field, *plan.fields)
    rows = sorted(rows, key=lambda row: plan.key(row[1:], row[0]))
    return [datatype.object_id_from_key(row[0]) for row in rows]


def standard_query(datatype: DataType, call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(QUERY_ARGS + datatype.extra_args.get("query", ()), arguments)
    account = call.account(parsed["accountId"])
    query_state = type_state(account, datatype.name)
    ids = datatype.query_ids(account, parsed["filter"], parsed["sort"], options_of(datatype, "query", parsed))
    total = len(ids)
    if parsed["anchor"] is not None:
        try:
            index = ids.index(parsed["anchor"])
        except ValueError:
            raise MethodError("anchorNotFound") from None
        position = max(index + parsed["anchorOffset"], 0)
    else:
        position = parsed["position"]
        if position < 0:
            position = max(total + position, 0)
    limit = parsed["limit"]
    result: dict[str, Any] = {
        "accountId": account.jmap_id,
        "queryState": query_state,
        "canCalculateChanges": True,
        "position": position,
    }
    if limit is None or limit > datatype.max_query_limit:
        limit = datatype.max_query_limit
        result["limit"] = limit
    result["ids"] = ids[position : position + limit] if position < total else []
    if parsed["calculateTotal"]:
        result["total"] = total
    return result


def standard_query_changes(datatype: DataType, call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Every record changed since the old state is "removed", and re-"added" at its new
    index if it is in the results now: exact for any filter and sort on mutable
    properties (RFC 8620 §5.6 allows the extra removals)."""
    parsed = a.parse(QUERY_CHANGES_ARGS + datatype.extra_args.get("queryChanges", ()), arguments)
    account = call.account(parsed["accountId"])
    since, current_state = since_modseq(account, datatype, parsed["sinceQueryState"])
    options = options_of(datatype, "queryChanges", parsed)
    ids = datatype.query_ids(account, parsed["filter"], parsed["sort"], options)
    rows = changes_since(account, datatype.name, since, None)
    newest = max([decode_state(current_state) or 0, *(row.modseq for row in rows)])
    changed = {row.object_id: row for row in rows}
    removed = [object_id for object_id, row in changed.items() if row.created_modseq <= since]
    up_to = None
    if parsed["upToId"] is not None and parsed["upToId"] in ids:
        up_to = ids.index(parsed["upToId"])
    added = [
        {"id": object_id, "index": index}
        for index, object_id in enumerate(ids)
        if object_id in changed and (up_to is None or index <= up_to)
    ]
    max_changes = parsed["maxChanges"]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges", f"{len(removed) + len(added)} changes exceed maxChanges")
    result: dict[str, Any] = {
        "accountId": account.jmap_id,
        "oldQueryState": parsed["sinceQueryState"],
        "newQueryState": str(newest),
        "removed": removed,
        "added": added,
    }
    if parsed["calculateTotal"]:
        result["total"] = len(ids)
    return result
