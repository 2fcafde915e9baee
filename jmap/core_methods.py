"""The core capability (RFC 8620 §2) and Core/echo (§4)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jmap.context import CallContext
from jmap.registry import CORE, Capability, registry


def _core_capability() -> dict[str, Any]:
    limits = settings.JMAP
    return {
        "maxSizeUpload": limits["maxSizeUpload"],
        "maxConcurrentUpload": limits["maxConcurrentUpload"],
        "maxSizeRequest": limits["maxSizeRequest"],
        "maxConcurrentRequests": limits["maxConcurrentRequests"],
        "maxCallsInRequest": limits["maxCallsInRequest"],
        "maxObjectsInGet": limits["maxObjectsInGet"],
        "maxObjectsInSet": limits["maxObjectsInSet"],
        "collationAlgorithms": list(limits["collationAlgorithms"]),
    }


registry.add_capability(Capability(urn=CORE, session_value=_core_capability, account_value=None))


@registry.method("Core/echo", capability=CORE)
def core_echo(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    # RFC 8620 §4: the arguments come back unchanged.
    return arguments
