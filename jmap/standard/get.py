"""Foo/get (RFC 8620 §5.1)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from groupware.core.changes import type_state
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.standard.datatype import DataType

GET_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("ids", a.nullable(a.list_of(a.string)), None),
    a.arg("properties", a.nullable(a.list_of(a.string)), None),
)


def checked_properties(datatype: DataType, requested: list[str] | None) -> list[str]:
    if requested is None:
        return list(datatype.default_properties or datatype.all_properties())
    unknown = sorted({name for name in requested if name not in datatype.properties})
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    names = list(dict.fromkeys(requested))
    if "id" not in names:
        names.insert(0, "id")
    return names


def options_of(datatype: DataType, method: str, parsed: dict[str, Any]) -> dict[str, Any]:
    return {spec.name: parsed[spec.name] for spec in datatype.extra_args.get(method, ())}


def requested_keys(datatype: DataType, call: CallContext, requested: list[str]) -> tuple[dict[Any, str], list[str]]:
    """The lookup keys of /get's ids (each answered once; "#creationId" resolved) mapped to
    the id as given, and the ids that can't be ours. requestTooLarge past maxObjectsInGet."""
    limit = settings.JMAP["maxObjectsInGet"]
    if len(requested) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} ids per call (maxObjectsInGet)")
    keys: dict[Any, str] = {}
    not_found: list[str] = []
    for given in dict.fromkeys(requested):  # an id asked for twice is answered once
        object_id = given
        if given.startswith("#"):  # a creation id from earlier in the request
            object_id = call.created_id(given[1:]) or given
        key = datatype.parse_id(object_id)
        if key is None:
            not_found.append(given)
        else:
            keys[key] = given
    return keys, not_found


def standard_get(datatype: DataType, call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(GET_ARGS + datatype.extra_args.get("get", ()), arguments)
    account = call.account(parsed["accountId"])
    properties = checked_properties(datatype, parsed["properties"])
    # The state is read before the records: if a write lands in between, the client holds
    # newer data under an older state and merely re-fetches it; never the other way round.
    state = type_state(account, datatype.name)
    limit = settings.JMAP["maxObjectsInGet"]
    requested = parsed["ids"]
    not_found: list[str] = []
    if requested is None:
        if not datatype.get_all:
            raise MethodError("requestTooLarge", "ids must be given for this type")
        records = list(datatype.load(account, None).values())
        if len(records) > limit:
            raise MethodError("requestTooLarge", f"more than {limit} records; ask for ids")
        found = records
    else:
        keys, not_found = requested_keys(datatype, call, requested)
        loaded = datatype.load(account, list(keys)) if keys else {}
        found = []
        for key, given in keys.items():
            record = loaded.get(key)
            if record is None:
                not_found.append(given)
            else:
                found.append(record)
    return {
        "accountId": account.jmap_id,
        "state": state,
        "list": datatype.records_to_json(account, found, properties, options_of(datatype, "get", parsed)),
        "notFound": not_found,
    }
