"""Identity/get, /changes, /set (RFC 8621 §6) over the sending services."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from groupware.mail.submission import identities
from groupware.mail.submission.identities import IDENTITY_ID_PREFIX, IDENTITY_TYPE, IdentityError
from groupware.mail.submission.models import Identity
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.registry import Method, registry
from jmap.standard import ModelDataType, Prop, SetContext
from jmap.standard.changes import standard_changes
from jmap.standard.get import standard_get
from jmap.standard.set import standard_set
from jmap.submission_capability import SUBMISSION, sending_account, set_errors


def _email_addresses(value: Any, name: str) -> list[dict[str, Any]] | None:
    """EmailAddress[]|null (RFC 8621 §4.1.2.3)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise MethodError("invalidArguments", f"{name} must be an array of EmailAddress or null")
    result = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "email"} or not isinstance(item.get("email"), str):
            raise MethodError("invalidArguments", f"{name}: an EmailAddress has name and email")
        if item.get("name") is not None and not isinstance(item["name"], str):
            raise MethodError("invalidArguments", f"{name}: name must be a String or null")
        result.append({"name": item.get("name"), "email": item["email"]})
    return result


_FIELDS = {
    "name": "name",
    "email": "email",
    "replyTo": "reply_to",
    "bcc": "bcc",
    "textSignature": "text_signature",
    "htmlSignature": "html_signature",
}


class IdentityType(ModelDataType):
    name = IDENTITY_TYPE
    capability = SUBMISSION
    model = Identity
    id_prefix = IDENTITY_ID_PREFIX
    properties = {
        "id": Prop("id", server_set=True),
        "name": Prop("name", a.string, default=""),
        "email": Prop("email", a.string, immutable=True),
        "replyTo": Prop("replyTo", _email_addresses, default=None),
        "bcc": Prop("bcc", _email_addresses, default=None),
        "textSignature": Prop("textSignature", a.string, default=""),
        "htmlSignature": Prop("htmlSignature", a.string, default=""),
        "mayDelete": Prop("mayDelete", server_set=True),
    }

    def queryset(self, account: Any) -> Any:
        return Identity.objects.filter(account=account).order_by("pk")

    def to_json(self, record: Identity, properties: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in properties:
            if name == "id":
                result[name] = self.object_id(record)
            elif name == "mayDelete":
                result[name] = record.may_delete
            else:
                result[name] = getattr(record, _FIELDS[name])
        return result

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        fields = {_FIELDS[name]: value for name, value in values.items()}
        with set_errors(IdentityError):
            identity = identities.identity_create(account=ctx.account, user=ctx.call.user, values=fields)
        return identity, {"mayDelete": identity.may_delete}

    def update(self, ctx: SetContext, record: Identity, values: dict[str, Any]) -> dict[str, Any] | None:
        with set_errors(IdentityError):
            identities.identity_update(identity=record, values={_FIELDS[name]: value for name, value in values.items()})
        return None

    def destroy(self, ctx: SetContext, record: Identity) -> None:
        with set_errors(IdentityError):
            identities.identity_destroy(identity=record)


IDENTITY = IdentityType()


def _with_default_identity(implementation: Any) -> Any:
    def handler(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        account = sending_account(call, arguments.get("accountId"), write=False)
        identities.identity_ensure_default(account)
        return implementation(IDENTITY, call, arguments)

    return handler


for _suffix, _implementation, _writes in (
    ("get", standard_get, False),
    ("changes", standard_changes, False),
    ("set", standard_set, True),
):
    registry.add_method(
        Method(
            name=f"Identity/{_suffix}",
            capability=SUBMISSION,
            handler=_with_default_identity(_implementation),
            writes=_writes,
        )
    )
