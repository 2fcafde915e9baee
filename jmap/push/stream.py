"""What one push connection reports: its user's accounts, its types, coalesced StateChanges.

Shared by the EventSource view and the WebSocket consumer. Every connection listens, through
its process's hub (jmap.push.hub), to the channel-layer group of each account its user may
see and to the user's own group, which announces grant changes; StateChange objects carry
only those accounts and the types the client asked for. Changes arriving within
``PUSH_COALESCE_SECONDS`` of the previous StateChange are merged into the next one, so a burst
becomes one message per connection.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from accounts.models import User
from groupware.core.changes import decode_state
from groupware.core.ids import account_id
from groupware.push.fanout import account_group, user_group
from groupware.push.states import changed_since, encode_push_state
from jmap.push.db import db_async
from jmap.push.hub import Listener, get_hub

# channels-redis forgets group members after a day (group_expiry): re-join well before.
REJOIN_SECONDS = 3600.0


def load_access(user_pk: int) -> tuple[bool, dict[int, int]]:
    """Whether the user is still active, and the modseq of each account they may see."""
    from accounts.services import accessible_accounts

    user = User.objects.filter(pk=user_pk, is_active=True).first()
    if user is None:
        return False, {}
    return True, {access.account.pk: access.account.modseq for access in accessible_accounts(user)}


# Not thread-sensitive: many connections opening at once run their queries side by side.
_load_access = db_async(load_access, thread_sensitive=False)


@db_async
def _changed_since(seen: dict[int, int], current: dict[int, int]) -> dict[int, dict[str, str]]:
    return changed_since(seen, current)


class PushStream:
    """``listener`` is called (in the event loop) with each state or access message."""

    def __init__(self, *, user_pk: int, listener: Listener) -> None:
        self.user_pk = user_pk
        self.listener = listener
        self.hub = get_hub()
        self.types: frozenset[str] | None = None  # None: every type
        self.accounts: set[int] = set()
        self.seen: dict[int, int] = {}  # account pk -> modseq the client has been told of
        self.pending: dict[int, dict[str, str]] = {}
        self.last_sent = 0.0
        self.joined_at = 0.0
        self.coalesce = float(settings.PUSH_COALESCE_SECONDS)

    async def open(self, access: tuple[bool, dict[int, int]] | None = None) -> bool:
        """Join the groups; False if the user may no longer connect. ``access``: what
        ``load_access`` returned, if the caller read it already."""
        await self.hub.join(user_group(self.user_pk), self.listener)
        return await self.refresh_access(access)

    async def refresh_access(self, access: tuple[bool, dict[int, int]] | None = None) -> bool:
        """Re-read the accounts the user may see (after a grant change, and periodically)."""
        active, current = access if access is not None else await _load_access(self.user_pk)
        if not active:
            return False
        for pk in self.accounts - current.keys():
            await self.hub.leave(account_group(pk), self.listener)
            self.pending.pop(pk, None)
            self.seen.pop(pk, None)
        for pk in current.keys() - self.accounts:
            await self.hub.join(account_group(pk), self.listener)
        if access is None:
            await self.hub.renew()
        for pk, modseq in current.items():
            self.seen[pk] = max(self.seen.get(pk, 0), modseq)
            self.hub.note(pk, modseq)
        self.accounts = set(current)
        self.joined_at = time.monotonic()
        return True

    def rejoin_delay(self) -> float:
        """Seconds until the group memberships should be renewed (and access re-read)."""
        return self.joined_at + REJOIN_SECONDS - time.monotonic()

    async def close(self) -> None:
        for pk in self.accounts:
            await self.hub.leave(account_group(pk), self.listener)
        await self.hub.leave(user_group(self.user_pk), self.listener)
        self.accounts = set()

    async def catch_up(self, push_state: dict[int, int]) -> None:
        """Queue what changed since a pushState / Last-Event-ID the client presented."""
        current = {pk: self.seen[pk] for pk in self.accounts}
        for pk, states in (await _changed_since(push_state, current)).items():
            self._merge(pk, states)

    def add(self, account_pk: int, states: dict[str, str]) -> None:
        if account_pk not in self.accounts:
            return  # access was revoked since the message was sent
        for state in states.values():
            modseq = decode_state(state)
            if modseq is not None and modseq > self.seen.get(account_pk, 0):
                self.seen[account_pk] = modseq
        self._merge(account_pk, states)

    def _merge(self, account_pk: int, states: dict[str, str]) -> None:
        wanted = {name: state for name, state in states.items() if self.types is None or name in self.types}
        if not wanted:
            return
        pending = self.pending.setdefault(account_pk, {})
        for name, state in wanted.items():
            old = decode_state(pending.get(name))
            new = decode_state(state)
            if old is None or new is None or new > old:
                pending[name] = state

    def flush_delay(self) -> float | None:
        """Seconds until the pending changes may go out; None if nothing is pending."""
        if not self.pending:
            return None
        return max(0.0, self.last_sent + self.coalesce - time.monotonic())

    def take(self) -> dict[str, Any] | None:
        """The StateChange for everything pending (RFC 8620 §7.1), or None."""
        if not self.pending:
            return None
        changed = {account_id(pk): states for pk, states in self.pending.items()}
        self.pending = {}
        self.last_sent = time.monotonic()
        return {"@type": "StateChange", "changed": changed}

    @property
    def push_state(self) -> str:
        return encode_push_state(self.seen)
