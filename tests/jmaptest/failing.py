"""Test-only methods that fail on purpose, to test the engine's error handling.

``Failing/crash`` raises an unexpected exception, optionally after writing a Note through
the service (which bumps the state); ``Failing/refuse`` writes and then raises a
method-level error. Either way the call must leave no trace (RFC 8620 §3.6.2).
"""

from __future__ import annotations

from typing import Any

from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.registry import registry
from tests.jmaptest import services
from tests.jmaptest.methods import CAPABILITY

# Must never reach a client: the tests look for it in every response.
SECRET = "secret-detail-4f1c: /srv/groupware/settings.py password=hunter2"

_ARGS = (a.arg("accountId", a.id_), a.arg("title", a.nullable(a.string), None))


def _write(call: CallContext, arguments: dict[str, Any]) -> None:
    parsed = a.parse(_ARGS, arguments)
    account = call.account(parsed["accountId"], write=True, capability=CAPABILITY)
    if parsed["title"] is not None:
        services.note_create(account=account, title=parsed["title"])
        call.add_created_id("crashed", "nphantom")


@registry.method("Failing/crash", capability=CAPABILITY, writes=True)
def failing_crash(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    _write(call, arguments)
    raise RuntimeError(SECRET)


@registry.method("Failing/refuse", capability=CAPABILITY, writes=True)
def failing_refuse(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    _write(call, arguments)
    raise MethodError("forbidden", "refused on purpose, after writing")
