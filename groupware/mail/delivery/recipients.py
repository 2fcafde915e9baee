"""Which account an envelope recipient address delivers to.

In order: a user's own address, an alias, the same two for the address without its
``+detail`` (RFC 5233 subaddress: ``user+tag@domain``), then the domain's catch-all alias
(``@domain``). Local parts compare case-insensitively (RFC 5321 §2.4 leaves that to us),
domains always do. Inactive users receive nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from accounts.models import Account, Alias, User

SUBADDRESS_SEPARATOR = "+"


@dataclass(frozen=True)
class Recipient:
    """A resolved envelope recipient."""

    address: str  # as given (without angle brackets)
    user: User
    account: Account  # the user's personal account
    detail: str | None  # the subaddress detail ("tag" of user+tag@), if any
    addresses: tuple[str, ...] = ()  # every address of the user (see user_addresses)


def address_split(address: str) -> tuple[str, str] | None:
    """(local part, lower-cased domain) of a mailbox address, or None if it isn't one."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(char.isspace() for char in address):
        return None
    return local, domain.rstrip(".").lower()


def _user_for(local: str, domain: str) -> User | None:
    address = f"{local}@{domain}"
    user = User.objects.filter(email__iexact=address).first()
    if user is not None:
        return user
    alias = Alias.objects.select_related("user").filter(address=address.lower()).first()
    return alias.user if alias is not None else None


def recipient_resolve(address: str) -> Recipient | None:
    """The Recipient for an envelope address, or None if nobody here receives it."""
    parts = address_split(address)
    if parts is None:
        return None
    local, domain = parts
    detail: str | None = None
    user = _user_for(local, domain)
    if user is None and SUBADDRESS_SEPARATOR in local:
        base, _, detail = local.partition(SUBADDRESS_SEPARATOR)
        user = _user_for(base, domain) if base else None
    if user is None:
        detail = None
        alias = Alias.objects.select_related("user").filter(address=f"@{domain}").first()
        user = alias.user if alias is not None else None
    if user is None or not user.is_active:
        return None
    account = Account.objects.filter(owner=user, is_personal=True).order_by("pk").first()
    if account is None:
        return None
    return Recipient(
        address=address.strip().strip("<>"), user=user, account=account, detail=detail, addresses=user_addresses(user)
    )


# RCPT resolves each address and DATA needs it again moments later: a short-lived cache
# saves those queries. A removed or disabled user is noticed after at most this long
# (until then its mail answers 451, not 250); unknown addresses are never remembered.
RESOLVE_CACHE_SECONDS = 10.0
RESOLVE_CACHE_SIZE = 10_000
_cache: dict[str, tuple[float, Recipient]] = {}
_cache_lock = threading.Lock()


def recipient_cached(address: str) -> Recipient | None:
    """The recipient as remembered (see ``recipient_resolve_cached``), or None when it
    isn't: no database work, so an event loop may ask."""
    key = address.strip().lower()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < RESOLVE_CACHE_SECONDS:
        return replace(hit[1], address=address.strip().strip("<>"))
    return None


def recipient_resolve_cached(address: str) -> Recipient | None:
    """recipient_resolve, remembered for RESOLVE_CACHE_SECONDS per address."""
    cached = recipient_cached(address)
    if cached is not None:
        return cached
    key = address.strip().lower()
    now = time.monotonic()
    found = recipient_resolve(address)
    if found is None:  # not remembered: a user created a moment later must not bounce
        return None
    with _cache_lock:
        if len(_cache) >= RESOLVE_CACHE_SIZE:
            _cache.clear()
        _cache[key] = (now, found)
    return found


def recipient_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def user_addresses(user: User) -> tuple[str, ...]:
    """Every address that delivers to the user (own address and aliases; no catch-alls):
    what Sieve's vacation treats as "one of the user's addresses" (RFC 5230 §4.5)."""
    aliases = Alias.objects.filter(user=user).values_list("address", flat=True)
    return (user.email.lower(), *(address for address in aliases if not address.startswith("@")))
