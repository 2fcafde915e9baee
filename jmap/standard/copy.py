"""Foo/copy (RFC 8620 §5.4): copy records between two accounts, optionally destroying
the originals with an implicit Foo/set whose response follows the Foo/copy response."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from groupware.core.changes import accounts_changes, encode_state, type_state
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError, SetError
from jmap.standard.datatype import DataType, SetContext
from jmap.standard.set import check_values, perform_set

COPY_ARGS = (
    a.arg("fromAccountId", a.id_),
    a.arg("ifFromInState", a.nullable(a.string), None),
    a.arg("accountId", a.id_),
    a.arg("ifInState", a.nullable(a.string), None),
    a.arg("create", a.map_of(a.obj, key=a.creation_id_key)),
    a.arg("onSuccessDestroyOriginal", a.boolean, False),
    a.arg("destroyFromIfInState", a.nullable(a.string), None),
)


def standard_copy(datatype: DataType, call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(COPY_ARGS, arguments)
    if parsed["fromAccountId"] == parsed["accountId"]:
        raise MethodError("invalidArguments", "fromAccountId and accountId must be different accounts")
    try:
        source = call.account(parsed["fromAccountId"], write=parsed["onSuccessDestroyOriginal"])
    except MethodError as error:
        if error.kind == "accountNotFound":
            raise MethodError("fromAccountNotFound") from None
        if error.kind == "accountNotSupportedByMethod":
            raise MethodError("fromAccountNotSupportedByMethod") from None
        raise
    target = call.account(parsed["accountId"], write=True)
    create = parsed["create"]
    limit = settings.JMAP["maxObjectsInSet"]
    if len(create) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} objects per /copy (maxObjectsInSet)")

    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    copied_from: list[str] = []
    with accounts_changes([source.pk, target.pk]) as change_sets:
        if parsed["ifFromInState"] is not None and parsed["ifFromInState"] != type_state(source, datatype.name):
            raise MethodError("stateMismatch", "ifFromInState does not match the source account's state")
        old_state = type_state(target, datatype.name)
        if parsed["ifInState"] is not None and parsed["ifInState"] != old_state:
            raise MethodError("stateMismatch", "ifInState does not match the target account's state")
        changes = change_sets[target.pk]
        ctx = SetContext(call=call, account=target, changes=changes)
        wanted = {}
        for cid, values in create.items():
            source_id = values.get("id")
            key = datatype.parse_id(source_id) if isinstance(source_id, str) else None
            wanted[cid] = key
        originals = datatype.load(source, [key for key in wanted.values() if key is not None])
        for cid, values in create.items():
            record = originals.get(wanted[cid]) if wanted[cid] is not None else None
            if record is None:
                not_created[cid] = SetError("notFound", "no such record in the source account").as_dict()
                continue
            try:
                overrides = {name: value for name, value in values.items() if name != "id"}
                server_set = [
                    name for name in overrides if name in datatype.properties and datatype.properties[name].server_set
                ]
                if server_set:
                    raise SetError("invalidProperties", "server-set properties", properties=server_set)
                merged = {**datatype.copy_values(record), **check_values(datatype, ctx, overrides)}
                with changes.savepoint():
                    copy, extra = datatype.create(ctx, merged)
            except SetError as error:
                not_created[cid] = error.as_dict()
                continue
            object_id = datatype.object_id(copy)
            call.add_created_id(cid, object_id)
            created[cid] = {"id": object_id, **extra}
            copied_from.append(values["id"])
        touched = changes.touched_types().get(datatype.name)
    response = {
        "fromAccountId": source.jmap_id,
        "accountId": target.jmap_id,
        "oldState": old_state,
        "newState": encode_state(touched) if touched is not None else old_state,
        "created": created or None,
        "notCreated": not_created or None,
    }
    if parsed["onSuccessDestroyOriginal"] and copied_from:
        # The implicit Foo/set (RFC 8620 §5.4) is its own unit: its failure is its own error.
        try:
            result = perform_set(
                datatype,
                call,
                source,
                if_in_state=parsed["destroyFromIfInState"],
                create={},
                update={},
                destroy=copied_from,
            )
            call.emit(f"{datatype.name}/set", result)
        except MethodError as error:
            call.emit("error", error.arguments())
    return response
