"""Capabilities and the "Type/method" handler registry.

Handlers register with a decorator at import time; the registry is frozen when Django
has loaded every app, and the session's capabilities are derived from it, so what is
advertised is exactly what is implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import Account
    from jmap.context import CallContext

CORE = "urn:ietf:params:jmap:core"

Handler = Callable[["CallContext", dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Capability:
    urn: str
    # The capability object in the session's "capabilities" (server-wide limits etc.).
    session_value: Callable[[], dict[str, Any]]
    # The object in an account's "accountCapabilities", or None if the account lacks it.
    account_value: Callable[[Account], dict[str, Any] | None] | None = None
    # Whether this capability names the user's primary account in "primaryAccounts".
    has_primary_account: bool = True


@dataclass(frozen=True)
class Method:
    name: str
    capability: str
    handler: Handler
    # Methods that change state are refused on read-only accounts (accountReadOnly).
    writes: bool = False
    # Extra capabilities this method also accepts as enabling it (e.g. a shared type).
    also_enabled_by: tuple[str, ...] = field(default_factory=tuple)


class Registry:
    def __init__(self) -> None:
        self.capabilities: dict[str, Capability] = {}
        self.methods: dict[str, Method] = {}
        self.frozen = False
        self._advertised: dict[str, Capability] | None = None

    def add_capability(self, capability: Capability) -> None:
        self._check_open()
        self.capabilities[capability.urn] = capability

    def add_method(self, method: Method) -> None:
        self._check_open()
        if method.capability not in self.capabilities:
            raise LookupError(f"{method.name}: capability {method.capability} is not registered")
        if method.name in self.methods:
            raise LookupError(f"{method.name} is registered twice")
        self.methods[method.name] = method

    def method(self, name: str, *, capability: str, writes: bool = False) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.add_method(Method(name=name, capability=capability, handler=handler, writes=writes))
            return handler

        return decorate

    def advertised(self) -> dict[str, Capability]:
        """Capabilities with at least one method (core is always there)."""
        if self._advertised is not None:
            return self._advertised
        used = {method.capability for method in self.methods.values()}
        used.add(CORE)
        return {urn: cap for urn, cap in self.capabilities.items() if urn in used or cap.account_value is None}

    def freeze(self) -> None:
        self._advertised = None
        self._advertised = self.advertised()
        self.frozen = True

    def _check_open(self) -> None:
        if self.frozen:
            raise RuntimeError("the JMAP registry is frozen once the apps are loaded")


registry = Registry()
