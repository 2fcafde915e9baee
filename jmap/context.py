"""Per-request and per-call state of the JMAP engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jmap.errors import MethodError

if TYPE_CHECKING:
    from accounts.models import Account, User
    from jmap.registry import Method


@dataclass(frozen=True)
class AccountAccess:
    account: Account
    is_read_only: bool


@dataclass
class RequestContext:
    """What every call of one API request shares."""

    user: User
    using: frozenset[str]
    created_ids: dict[str, str] = field(default_factory=dict)
    responses: list[list[Any]] = field(default_factory=list)
    _accounts: dict[str, AccountAccess] | None = None

    def accounts(self) -> dict[str, AccountAccess]:
        """The accounts this user may access, by JMAP id (loaded once per request)."""
        if self._accounts is None:
            from accounts.services import accessible_accounts

            self._accounts = {access.account.jmap_id: access for access in accessible_accounts(self.user)}
        return self._accounts


@dataclass
class CallContext:
    """One method call: its request, its call id, and any extra responses it emits."""

    request: RequestContext
    method: Method
    call_id: str
    extra_responses: list[list[Any]] = field(default_factory=list)

    @property
    def user(self) -> User:
        return self.request.user

    def account(self, account_id: Any, *, write: bool | None = None, capability: str | None = None) -> Account:
        """The account for ``accountId``, checked for existence, capability and rights.

        Accounts the user can't access are indistinguishable from accounts that don't
        exist: both are accountNotFound (RFC 8620 §3.6.2).
        """
        if not isinstance(account_id, str):
            raise MethodError("invalidArguments", "accountId must be a String")
        access = self.request.accounts().get(account_id)
        if access is None:
            raise MethodError("accountNotFound")
        wanted = capability or self.method.capability
        from jmap.registry import registry

        cap = registry.capabilities.get(wanted)
        if cap is not None and cap.account_value is not None and cap.account_value(access.account) is None:
            raise MethodError("accountNotSupportedByMethod")
        if (self.method.writes if write is None else write) and access.is_read_only:
            raise MethodError("accountReadOnly")
        return access.account

    def emit(self, name: str, arguments: dict[str, Any]) -> None:
        """Add a further response after this call's own (e.g. the implicit /set of /copy)."""
        self.extra_responses.append([name, arguments, self.call_id])

    def created_id(self, creation_id: str) -> str | None:
        return self.request.created_ids.get(creation_id)

    def add_created_id(self, creation_id: str, object_id: str) -> None:
        self.request.created_ids[creation_id] = object_id
