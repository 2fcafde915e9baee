"""Foo/changes (RFC 8620 §5.2): one range scan over the type's change records."""

from __future__ import annotations

from typing import Any

from groupware.core.changes import changes_since, decode_state, encode_state, type_state
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.standard.datatype import DataType

CHANGES_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("sinceState", a.string),
    a.arg("maxChanges", a.nullable(a.positive), None),
)


def since_modseq(account: Any, datatype: DataType, state: str) -> tuple[int, str]:
    """The modseq behind a state string and the type's current state (or cannotCalculateChanges)."""
    origin, since, current_state = _parse_since(account, datatype, state)
    if origin != since:
        raise MethodError("cannotCalculateChanges", "an intermediate /changes state is not a query state")
    return since, current_state


def _parse_since(account: Any, datatype: DataType, state: str) -> tuple[int, int, str]:
    """(origin, since, current state) of a state string.

    An intermediate state (after hasMoreChanges) is "origin-since": the client has seen
    every change up to ``since``, but it started from ``origin``, so a record created
    after ``origin`` is still reported as created, never as updated (RFC 8620 §5.2).
    """
    origin_text, _, since_text = state.partition("-")
    origin = decode_state(origin_text)
    since = decode_state(since_text) if since_text else origin
    current_state = type_state(account, datatype.name)
    current = decode_state(current_state)
    if (
        origin is None
        or since is None
        or current is None
        or not origin <= since <= current
        or (since_text and origin == since)
        or origin < account.purged_modseq
    ):
        raise MethodError("cannotCalculateChanges", "the state is unknown or too old; resynchronise")
    return origin, since, current_state


def standard_changes(datatype: DataType, call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(CHANGES_ARGS + datatype.extra_args.get("changes", ()), arguments)
    account = call.account(parsed["accountId"])
    origin, since, current_state = _parse_since(account, datatype, parsed["sinceState"])
    limit = min(parsed["maxChanges"] or datatype.max_changes, datatype.max_changes)
    rows = changes_since(account, datatype.name, since, limit + 1)
    has_more = len(rows) > limit
    if has_more:
        rows = rows[:limit]
        # Every object has its own modseq, so cutting after a row is an exact state.
        new_state = f"{encode_state(origin)}-{encode_state(rows[-1].modseq)}"
    else:
        # A change committed between the two reads is already in rows: never report a
        # newState older than what was returned.
        newest = rows[-1].modseq if rows else 0
        new_state = current_state if newest <= (decode_state(current_state) or 0) else encode_state(newest)
    created: list[str] = []
    updated: list[str] = []
    destroyed: list[str] = []
    for row in rows:
        is_new = row.created_modseq > origin
        if row.destroyed:
            if not is_new:  # created and destroyed since: omitted (RFC 8620 §5.2)
                destroyed.append(row.object_id)
        elif is_new:
            created.append(row.object_id)
        else:
            updated.append(row.object_id)
    response = {
        "accountId": account.jmap_id,
        "oldState": parsed["sinceState"],
        "newState": new_state,
        "hasMoreChanges": has_more,
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
    }
    response.update(datatype.changes_extra(account, origin, rows))
    return response
