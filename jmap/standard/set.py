"""Foo/set (RFC 8620 §5.3): creates, then updates, then destroys, each record atomic."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from groupware.core.changes import account_changes, encode_state, type_state
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError, SetError, invalid_properties
from jmap.standard.datatype import DataType, Prop, SetContext
from jmap.standard.get import options_of
from jmap.standard.patch import apply_patch

if TYPE_CHECKING:
    from accounts.models import Account

SET_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("ifInState", a.nullable(a.string), None),
    a.arg("create", a.nullable(a.map_of(a.obj, key=a.creation_id_key)), None),
    a.arg("update", a.nullable(a.map_of(a.obj)), None),
    a.arg("destroy", a.nullable(a.list_of(a.string)), None),
)


def standard_set(
    datatype: DataType,
    call: CallContext,
    arguments: dict[str, Any],
    *,
    account_for: Callable[[str], Account] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """/set (RFC 8620 §5.3). ``account_for`` picks the account from the accountId argument
    (default: any the user may write); ``options`` receives the type's extra arguments and
    whatever its create/update/destroy leave there for the caller."""
    parsed = a.parse(SET_ARGS + datatype.extra_args.get("set", ()), arguments)
    account = (account_for or (lambda account_id: call.account(account_id, write=True)))(parsed["accountId"])
    if options is None:
        options = {}
    options.update(options_of(datatype, "set", parsed))
    create, update, destroy = parsed["create"] or {}, parsed["update"] or {}, parsed["destroy"] or []
    limit = settings.JMAP["maxObjectsInSet"]
    if len(create) + len(update) + len(destroy) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} objects per /set (maxObjectsInSet)")
    return perform_set(
        datatype,
        call,
        account,
        if_in_state=parsed["ifInState"],
        create=create,
        update=update,
        destroy=destroy,
        options=options,
    )


def perform_set(
    datatype: DataType,
    call: CallContext,
    account: Any,
    *,
    if_in_state: str | None,
    create: dict[str, dict],
    update: dict[str, dict],
    destroy: list[str],
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    with account_changes(account.pk) as changes:
        # The account row is locked: the state can't move until we commit (ifInState is exact).
        old_state = type_state(account, datatype.name)
        if if_in_state is not None and if_in_state != old_state:
            raise MethodError("stateMismatch", "ifInState does not match the current state")
        ctx = SetContext(call=call, account=account, changes=changes, options=options or {})
        created, not_created = _creates(datatype, ctx, create)
        updated, not_updated = _updates(datatype, ctx, update, destroy)
        destroyed, not_destroyed = _destroys(datatype, ctx, destroy)
        touched = changes.touched_types().get(datatype.name)
    return {
        "accountId": account.jmap_id,
        "oldState": old_state,
        "newState": encode_state(touched) if touched is not None else old_state,
        "created": created or None,
        "updated": updated or None,
        "destroyed": destroyed or None,
        "notCreated": not_created or None,
        "notUpdated": not_updated or None,
        "notDestroyed": not_destroyed or None,
    }


def creation_order(datatype: DataType, create: dict[str, dict]) -> list[str]:
    """Creates that reference other creates of this call come after them (RFC 8620 §5.3)."""
    refs = [name for name, prop in datatype.properties.items() if prop.id_ref]
    depends: dict[str, set[str]] = {}
    for cid, values in create.items():
        wanted = {
            values.get(name)[1:]
            for name in refs
            if isinstance(values.get(name), str) and values.get(name).startswith("#")
        }
        depends[cid] = {ref for ref in wanted if ref in create and ref != cid}
    order: list[str] = []
    done: set[str] = set()
    remaining = list(create)
    while remaining:
        ready = [cid for cid in remaining if depends[cid] <= done]
        if not ready:  # a cycle: let the unresolved references fail as invalidProperties
            ready = remaining[:1]
        for cid in ready:
            order.append(cid)
            done.add(cid)
        remaining = [cid for cid in remaining if cid not in done]
    return order


def check_values(datatype: DataType, ctx: SetContext, values: dict[str, Any]) -> dict[str, Any]:
    """Validate client-given property values; resolve "#creationId" references."""
    checked: dict[str, Any] = {}
    bad: list[str] = []
    problems: list[str] = []
    for name, value in values.items():
        prop: Prop | None = datatype.properties.get(name)
        if prop is None:
            bad.append(name)
            problems.append(f"{name}: unknown property")
            continue
        if prop.id_ref and isinstance(value, str) and value.startswith("#"):
            resolved = ctx.resolve_id(value)
            if resolved is None:
                bad.append(name)
                problems.append(f"{name}: unknown creation id {value}")
                continue
            value = resolved
        try:
            checked[name] = prop.check(value, name)
        except MethodError as error:
            bad.append(name)
            problems.append(error.description or name)
    if bad:
        raise invalid_properties(bad, "; ".join(problems))
    return checked


def generic_create(datatype: DataType, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Validate a create against the declared properties, then call the type's create hook.

    Returns the record and the properties to report in ``created`` beyond its id.
    """
    server_set = [name for name in values if name in datatype.properties and datatype.properties[name].server_set]
    if server_set:
        raise invalid_properties(server_set, "these properties are set by the server")
    missing = [
        name
        for name, prop in datatype.properties.items()
        if name not in values and not prop.server_set and not prop.has_default
    ]
    if missing:
        raise invalid_properties(missing, "required properties are missing")
    checked = check_values(datatype, ctx, values)
    defaults = {
        name: prop.default_value()
        for name, prop in datatype.properties.items()
        if name not in values and not prop.server_set and prop.has_default
    }
    record, extra = datatype.create(ctx, {**defaults, **checked})
    return record, {**defaults, **extra}


def _creates(datatype: DataType, ctx: SetContext, create: dict[str, dict]) -> tuple[dict, dict]:
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    for cid in creation_order(datatype, create):
        try:
            with ctx.changes.savepoint():
                record, extra = datatype.create_record(ctx, create[cid])
        except SetError as error:
            not_created[cid] = error.as_dict()
            continue
        object_id = datatype.object_id(record)
        ctx.call.add_created_id(cid, object_id)
        ctx.created_here[cid] = object_id
        created[cid] = {"id": object_id, **extra}
    return created, not_created


def _resolve(ctx: SetContext, given: str) -> str | None:
    if given.startswith("#"):
        return ctx.call.created_id(given[1:])
    return given


def _load(datatype: DataType, ctx: SetContext, object_ids: list[str]) -> dict[str, Any]:
    keys = {}
    for object_id in object_ids:
        key = datatype.parse_id(object_id)
        if key is not None:
            keys[key] = object_id
    if not keys:
        return {}
    records = datatype.load(ctx.account, list(keys), for_update=True)
    return {keys[key]: record for key, record in records.items()}


def _updates(datatype: DataType, ctx: SetContext, update: dict[str, dict], destroy: list[str]) -> tuple[dict, dict]:
    updated: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    resolved = {given: _resolve(ctx, given) for given in update}
    doomed = {_resolve(ctx, given) for given in destroy}
    records = _load(datatype, ctx, [object_id for object_id in resolved.values() if object_id])
    settable = datatype.all_properties()
    for given, patch in update.items():
        object_id = resolved[given]
        record = records.get(object_id) if object_id else None
        if record is None:
            not_updated[given] = SetError("notFound").as_dict()
            continue
        if object_id in doomed:
            not_updated[object_id] = SetError("willDestroy", "the record is destroyed in this call").as_dict()
            continue
        try:
            current = datatype.to_json(record, settable)
            patched = apply_patch(current, patch, datatype.properties)
            changed = {name: value for name, value in patched.items() if value != current.get(name)}
            frozen = [
                name for name in changed if datatype.properties[name].server_set or datatype.properties[name].immutable
            ]
            if frozen:
                raise invalid_properties(frozen, "these properties cannot be changed")
            checked = check_values(datatype, ctx, changed)
            with ctx.changes.savepoint():
                extra = datatype.update(ctx, record, checked) if checked else None
        except SetError as error:
            not_updated[object_id] = error.as_dict()
            continue
        updated[object_id] = extra or None
    return updated, not_updated


def _destroys(datatype: DataType, ctx: SetContext, destroy: list[str]) -> tuple[list, dict]:
    destroyed: list[str] = []
    not_destroyed: dict[str, Any] = {}
    resolved = {given: _resolve(ctx, given) for given in dict.fromkeys(destroy)}
    records = _load(datatype, ctx, [object_id for object_id in resolved.values() if object_id])
    for given, object_id in resolved.items():
        record = records.get(object_id) if object_id else None
        if record is None:
            not_destroyed[given] = SetError("notFound").as_dict()
            continue
        try:
            with ctx.changes.savepoint():
                datatype.destroy(ctx, record)
        except SetError as error:
            not_destroyed[object_id] = error.as_dict()
            continue
        destroyed.append(object_id)
    return destroyed, not_destroyed
