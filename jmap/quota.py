"""Quota/get, /changes, /query, /queryChanges (RFC 9425): the standard methods over
the quotas that apply to an account (accounts.quotas), with their current usage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from django.db.models import Q

from accounts.models import Account, Quota
from accounts.quotas import ACCOUNT, COUNTED_TYPES, QUOTA_ID_PREFIX, QUOTA_TYPE, quotas_of
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.mail_capability import MAIL
from jmap.registry import Capability, Method, registry
from jmap.standard import ModelDataType, Prop
from jmap.standard.changes import standard_changes
from jmap.standard.datatype import Filter, Sort
from jmap.standard.get import standard_get
from jmap.standard.query import standard_query, standard_query_changes

QUOTA = "urn:ietf:params:jmap:quota"

# The capability that makes each counted type known to a client (RFC 9425 §4.1 types:
# "The server MUST filter out any types for which the client did not request the
# associated capability in the using section of the request").
TYPE_CAPABILITIES = {"Email": MAIL}

# The request's "using", for the hooks (the standard methods pass them the account only).
_using: ContextVar[frozenset[str]] = ContextVar("quota_using", default=frozenset())


def _known_types() -> list[str]:
    using = _using.get()
    return [name for name in COUNTED_TYPES if TYPE_CAPABILITIES.get(name) in using]


def _one_of(*values: str) -> Callable[[Any, str], str]:
    def check(value: Any, name: str) -> str:
        value = a.string(value, name)
        if value not in values:
            raise MethodError("invalidArguments", f"{name} must be one of {', '.join(values)}")
        return value

    return check


class QuotaType(ModelDataType):
    """Read-only: quotas are set by administrators (the admin, the provisioning API)."""

    name = QUOTA_TYPE
    capability = QUOTA
    model = Quota
    id_prefix = QUOTA_ID_PREFIX
    properties = {
        name: Prop(name, server_set=True)
        for name in (
            "id",
            "resourceType",
            "used",
            "hardLimit",
            "scope",
            "name",
            "types",
            "warnLimit",
            "softLimit",
            "description",
        )
    }
    filters = {
        "name": Filter(a.string, lambda value: Q(name__icontains=value)),
        "scope": Filter(_one_of(*Quota.Scope.values), lambda value: Q(scope=value)),
        "resourceType": Filter(_one_of(*Quota.ResourceType.values), lambda value: Q(resource_type=value)),
        "type": Filter(a.string, lambda value: Q() if value in _known_types() else Q(pk__in=[])),
    }
    # RFC 9425 §4.3: name and used MUST be supported.
    sorts = {"name": Sort("name"), "used": Sort("used", "number")}

    def queryset(self, account: Account) -> Any:
        if not _known_types():
            # RFC 9425 §4.1: no Quota whose types the client doesn't know.
            return Quota.objects.none()
        return quotas_of(account, visible=True)

    def to_json(self, record: Quota, properties: Iterable[str]) -> dict[str, Any]:
        values = {
            "id": self.object_id(record),
            "resourceType": record.resource_type,
            "used": record.used,  # type: ignore[attr-defined]  (annotated by quotas_of)
            "hardLimit": record.hard_limit,
            "scope": record.scope,
            "name": record.name,
            "types": _known_types(),
            "warnLimit": record.warn_limit,
            "softLimit": record.soft_limit,
            "description": record.description or None,
        }
        return {name: values[name] for name in properties}

    def changes_extra(self, account: Account, origin: int, rows: list[Any]) -> dict[str, Any]:
        """RFC 9425 §4.2 updatedProperties: ["used"] when nothing else may have changed.

        Known only for account-scope quotas (their props_modseq); null otherwise.
        """
        if not rows or any(row.destroyed or row.created_modseq > origin for row in rows):
            return {"updatedProperties": None}
        keys = {self.parse_id(row.object_id) for row in rows}
        found = list(Quota.objects.filter(pk__in=keys).values_list("scope", "props_modseq"))
        if len(found) != len(keys) or any(scope != ACCOUNT or modseq > origin for scope, modseq in found):
            return {"updatedProperties": None}
        return {"updatedProperties": ["used"]}


QUOTA_DATATYPE = QuotaType()


def _handler(implementation: Callable[..., dict[str, Any]]) -> Callable[[CallContext, dict[str, Any]], dict]:
    def handler(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        token = _using.set(call.request.using)
        try:
            return implementation(QUOTA_DATATYPE, call, arguments)
        finally:
            _using.reset(token)

    return handler


def register() -> None:
    # RFC 9425 §2: an empty object in the session and in every account.
    registry.add_capability(Capability(urn=QUOTA, session_value=dict, account_value=lambda account: {}))
    for suffix, implementation in (
        ("get", standard_get),
        ("changes", standard_changes),
        ("query", standard_query),
        ("queryChanges", standard_query_changes),
    ):
        registry.add_method(Method(name=f"Quota/{suffix}", capability=QUOTA, handler=_handler(implementation)))


register()
