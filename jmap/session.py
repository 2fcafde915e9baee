"""The JMAP Session resource (RFC 8620 §2)."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse

from jmap.registry import registry

WEBSOCKET = "urn:ietf:params:jmap:websocket"

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User


@cache
def _capabilities_digest() -> str:
    return hashlib.sha256(",".join(sorted(registry.advertised())).encode()).hexdigest()[:8]


def session_state(user: User) -> str:
    """Changes whenever anything the session resource shows may have changed."""
    return f"{user.session_generation:x}-{_capabilities_digest()}"


def base_url(request: HttpRequest) -> str:
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL
    return f"{request.scheme}://{request.get_host()}"


def session_resource(user: User, request: HttpRequest) -> dict[str, Any]:
    from accounts.services import accessible_accounts

    advertised = registry.advertised()
    accounts: dict[str, Any] = {}
    accesses = accessible_accounts(user)
    for access in accesses:
        account = access.account
        account_capabilities = {}
        for urn, capability in advertised.items():
            if capability.account_value is not None:
                value = capability.account_value(account)
                if value is not None:
                    account_capabilities[urn] = value
        accounts[account.jmap_id] = {
            "name": account.name,
            "isPersonal": account.is_personal,
            "isReadOnly": access.is_read_only,
            "accountCapabilities": account_capabilities,
        }
    # The user's first personal account (the same rule as accounts.services.primary_account).
    owned = [access.account for access in accesses if access.account.owner_id == user.pk and access.account.is_personal]
    primary = owned[0] if owned else None
    primary_accounts = {}
    if primary is not None:
        for urn, capability in advertised.items():
            if capability.account_value is not None and capability.has_primary_account:
                if capability.account_value(primary) is not None:
                    primary_accounts[urn] = primary.jmap_id
    base = base_url(request)
    capabilities = {urn: capability.session_value() for urn, capability in advertised.items()}
    if "url" in capabilities.get(WEBSOCKET, {}):
        # RFC 8887 §4.1: the WebSocket URL, on the push path the proxy sends to the ASGI server.
        capabilities[WEBSOCKET]["url"] = "ws" + base.removeprefix("http") + "/jmap/push/websocket/"
    return {
        "capabilities": capabilities,
        "accounts": accounts,
        "primaryAccounts": primary_accounts,
        "username": user.email,
        "apiUrl": base + reverse("jmap-api"),
        # RFC 8620 §2: URI Templates (RFC 6570) level 1 with these variables.
        "downloadUrl": base + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
        "uploadUrl": base + "/jmap/upload/{accountId}/",
        "eventSourceUrl": base + reverse("jmap-eventsource") + "?types={types}&closeafter={closeafter}&ping={ping}",
        "state": session_state(user),
    }
