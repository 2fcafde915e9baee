"""SieveScript (RFC 9661): /get, /changes, /set, /query, /queryChanges and /validate.

Script content is a blob (uploaded first, RFC 9661 §2.2); SieveScript/set checks it with
the Sieve engine and refuses a script that doesn't parse with invalidSieve, whose
description carries the engine's line, column and message. onSuccessActivateScript and
onSuccessDeactivateScript run after the creates, updates and destroys, in the same
transaction, only when all of them succeeded (§2.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Q

from groupware.core.blobs import BlobNotFound, blob_id
from groupware.core.changes import account_changes, encode_state
from groupware.mail.delivery.models import SieveScript
from groupware.mail.services import sieve_scripts as services
from jmap import args as a
from jmap.errors import SetError, invalid_properties
from jmap.registry import Capability, Method, registry
from jmap.standard import Filter, ModelDataType, Prop, SetContext, Sort, register_standard_methods
from jmap.standard.set import SET_ARGS, standard_set

if TYPE_CHECKING:
    from accounts.models import Account
    from jmap.context import CallContext

SIEVE = "urn:ietf:params:jmap:sieve"
IMPLEMENTATION = "groupware Sieve"


def _account_value(account: Account) -> dict[str, Any]:
    from groupware.mail import sieve

    limits = sieve.Limits()
    # RFC 9661 §1.2.1.
    return {
        "implementation": IMPLEMENTATION,
        "maxSizeScriptName": services.MAX_SIZE_SCRIPT_NAME,
        "maxSizeScript": services.MAX_SIZE_SCRIPT,
        "maxNumberScripts": services.MAX_NUMBER_SCRIPTS,
        "maxNumberRedirects": limits.max_redirects,
        "sieveExtensions": sorted(sieve.SUPPORTED_EXTENSIONS),
        "notificationMethods": None,
        "externalLists": None,
    }


registry.add_capability(Capability(urn=SIEVE, session_value=dict, account_value=_account_value))


def _name(value: Any, name: str) -> str | None:
    return None if value is None else a.string(value, name)


def set_error(error: Exception) -> SetError:
    """The RFC 9661 §2.4 SetError for a service error."""
    if isinstance(error, services.SieveInvalid):
        return SetError("invalidSieve", str(error))
    if isinstance(error, services.ScriptNameTaken):
        return SetError("alreadyExists", str(error), existingId=services.sieve_script_id(error.existing.pk))
    if isinstance(error, services.ScriptNameInvalid):
        return invalid_properties(["name"], str(error))
    if isinstance(error, services.ScriptTooLarge):
        return SetError("tooLarge", str(error))
    if isinstance(error, services.ScriptsOverQuota):
        return SetError("overQuota", str(error))
    if isinstance(error, services.ScriptIsActive):
        return SetError("scriptIsActive", str(error))
    if isinstance(error, BlobNotFound):
        return SetError("blobNotFound", "no such blob in this account", notFound=[str(error.args[0])])
    raise error


class SieveScriptType(ModelDataType):
    name = "SieveScript"
    capability = SIEVE
    model = SieveScript
    id_prefix = services.SIEVE_SCRIPT_ID_PREFIX
    properties = {
        "id": Prop("id", server_set=True),
        "name": Prop("name", _name, default=None),
        "blobId": Prop("blobId", a.id_),
        "isActive": Prop("isActive", server_set=True),
    }
    filters = {
        "name": Filter(a.string, lambda value: Q(name__icontains=value)),
        "isActive": Filter(a.boolean, lambda value: Q(is_active=value)),
    }
    sorts = {"name": Sort("name"), "isActive": Sort("is_active", "boolean")}
    extra_args = {
        "set": (
            a.arg("onSuccessActivateScript", a.nullable(a.string), None),  # an id or "#creationId"
            a.arg("onSuccessDeactivateScript", a.nullable(a.boolean), None),
        )
    }

    def queryset(self, account: Account) -> Any:
        return SieveScript.objects.filter(account=account).order_by("pk")

    def to_json(self, record: SieveScript, properties: Any) -> dict[str, Any]:
        values = {
            "id": lambda: self.object_id(record),
            "name": lambda: record.name,
            "blobId": lambda: blob_id(record.blob_id),
            "isActive": lambda: record.is_active,
        }
        return {name: values[name]() for name in properties}

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[SieveScript, dict[str, Any]]:
        try:
            script = services.sieve_script_create(
                account=ctx.account, name=values["name"], blob=values["blobId"], user=ctx.call.user
            )
        except (services.SieveScriptError, BlobNotFound) as error:
            raise set_error(error) from None
        return script, {"name": script.name, "isActive": False}

    def update(self, ctx: SetContext, record: SieveScript, values: dict[str, Any]) -> dict[str, Any] | None:
        if "name" in values and values["name"] is None:
            raise invalid_properties(["name"], "name: a script keeps a name")
        try:
            services.sieve_script_update(
                script=record, name=values.get("name"), blob=values.get("blobId"), user=ctx.call.user
            )
        except (services.SieveScriptError, BlobNotFound) as error:
            raise set_error(error) from None
        return None

    def destroy(self, ctx: SetContext, record: SieveScript) -> None:
        try:
            services.sieve_script_destroy(script=record)
        except services.SieveScriptError as error:
            raise set_error(error) from None


SIEVE_SCRIPT = SieveScriptType()
register_standard_methods(SIEVE_SCRIPT, ("get", "changes", "query", "queryChanges"))


def sieve_script_set(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """SieveScript/set (RFC 9661 §2.4): the standard /set, then (de)activation."""
    parsed = a.parse(SET_ARGS + SIEVE_SCRIPT.extra_args["set"], arguments)
    account = call.account(parsed["accountId"], write=True)
    with account_changes(account.pk) as changes:
        response = standard_set(SIEVE_SCRIPT, call, arguments)
        failed = response["notCreated"] or response["notUpdated"] or response["notDestroyed"]
        if not failed:
            _activation(call, account, response, parsed["onSuccessDeactivateScript"], parsed["onSuccessActivateScript"])
        touched = changes.touched_types().get(SIEVE_SCRIPT.name)
    response["newState"] = encode_state(touched) if touched is not None else response["oldState"]
    return response


def _activation(
    call: CallContext, account: Account, response: dict[str, Any], deactivate: bool | None, activate: str | None
) -> None:
    changed: list[tuple[SieveScript, bool]] = []
    if deactivate:  # processed first (RFC 9661 §2.4)
        changed += services.sieve_script_activate(account=account, script=None)
    if activate is not None:
        object_id = call.created_id(activate[1:]) if activate.startswith("#") else activate
        pk = SIEVE_SCRIPT.parse_id(object_id) if object_id else None
        script = SieveScript.objects.filter(account=account, pk=pk).first() if pk is not None else None
        if script is not None:  # an unknown id is ignored
            changed += services.sieve_script_activate(account=account, script=script)
    final = {script.pk: (script, active) for script, active in changed}
    created_ids = {item["id"]: key for key, item in (response["created"] or {}).items()}
    for script, active in final.values():
        object_id = SIEVE_SCRIPT.object_id(script)
        if object_id in created_ids:
            response["created"][created_ids[object_id]]["isActive"] = active
        else:
            updated = response["updated"] or {}
            updated[object_id] = {**(updated.get(object_id) or {}), "isActive": active}
            response["updated"] = updated


VALIDATE_ARGS = (a.arg("accountId", a.id_), a.arg("blobId", a.id_))


def sieve_script_validate(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """SieveScript/validate (RFC 9661 §2.6): would this blob be accepted as a script?"""
    parsed = a.parse(VALIDATE_ARGS, arguments)
    account = call.account(parsed["accountId"])
    error: dict[str, Any] | None = None
    try:
        services.sieve_blob_read(account, parsed["blobId"], call.user)
    except (services.SieveScriptError, BlobNotFound) as problem:
        error = set_error(problem).as_dict()
    return {"accountId": account.jmap_id, "error": error}


registry.add_method(Method(name="SieveScript/set", capability=SIEVE, handler=sieve_script_set, writes=True))
registry.add_method(Method(name="SieveScript/validate", capability=SIEVE, handler=sieve_script_validate))
