"""One channel-layer subscription per push process, shared by all its connections.

Each connection used to join the account's group itself, so one change became one Redis
message per connection (2,000 idle connections: 2,000 messages through Redis and back). The
hub joins each group once per process, with one channel of its own, and hands every message
to the local connections that want it: one message per process, then in-memory calls.

On the embedded default the channel layer is in memory: it carries what this process
commits, but a change made by another process (``serve_mail`` delivering mail, a management
command) never reaches it. There the hub also reads the modseq of the accounts it listens to
every ``PUSH_POLL_SECONDS`` and announces what moved on without a message (a change has to be
seen by two reads in a row, so one this process is about to announce itself isn't announced
twice).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from groupware.core import sql
from groupware.core.changes import decode_state
from groupware.push.fanout import STATE_MESSAGE, account_group
from groupware.push.states import changed_since
from jmap.push.db import db_async

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.listeners: dict[str, set[Listener]] = {}
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # The in-memory layer only: account pk -> the highest modseq announced, and what
        # the last read found beyond it.
        self.polls = isinstance(layer, InMemoryChannelLayer)
        self.known: dict[int, int] = {}
        self._sighted: dict[int, int] = {}
        self._poller: asyncio.Task | None = None

    def note(self, account_pk: int, modseq: int) -> None:
        """A connection starts from this modseq of the account (what it told its client)."""
        self.known.setdefault(account_pk, modseq)

    async def join(self, group: str, listener: Listener) -> None:
        async with self._lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self._reader = asyncio.ensure_future(self._read(self.channel))
            if self.polls and self._poller is None:
                self._poller = asyncio.ensure_future(self._poll())
            if group not in self.listeners:
                self.listeners[group] = set()
                await self.layer.group_add(group, self.channel)
            self.listeners[group].add(listener)

    async def leave(self, group: str, listener: Listener) -> None:
        async with self._lock:
            members = self.listeners.get(group)
            if members is None:
                return
            members.discard(listener)
            if not members:
                del self.listeners[group]
                pk = _account_of(group)
                self.known.pop(pk, None)
                self._sighted.pop(pk, None)
                if self.channel is not None:
                    await self.layer.group_discard(group, self.channel)
            if not self.listeners:
                await self._stop()

    async def renew(self) -> None:
        """Join every group again (the Redis layer forgets members after group_expiry)."""
        async with self._lock:
            if self.channel is not None:
                for group in list(self.listeners):
                    await self.layer.group_add(group, self.channel)

    async def _stop(self) -> None:
        # Not awaited: channels-redis may take until its blocking pop times out (seconds) to
        # wind a cancelled receive down, and the last connection's close must not wait for it.
        reader, self._reader, self.channel = self._reader, None, None
        if reader is not None:
            reader.cancel()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()

    async def _read(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis gone for a moment: keep trying, pushes resume when it is back.
                logger.exception("receiving from the channel layer failed")
                await asyncio.sleep(1.0)
                continue
            if self.polls and message.get("type") == STATE_MESSAGE:
                self._heard(message)
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        for listener in list(self.listeners.get(message.get("group"), ())):
            try:
                listener(message)
            except Exception:
                logger.exception("push listener failed")

    def _heard(self, message: dict[str, Any]) -> None:
        pk = message.get("account")
        modseqs = [decode_state(state) for state in (message.get("states") or {}).values()]
        top = max((modseq for modseq in modseqs if modseq is not None), default=None)
        if isinstance(pk, int) and top is not None and top > self.known.get(pk, 0):
            self.known[pk] = top

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(settings.PUSH_POLL_SECONDS)
            watched = {pk: modseq for pk, modseq in self.known.items() if account_group(pk) in self.listeners}
            if not watched:
                continue
            try:
                changed = await _changes_beyond(watched)
            except Exception:
                logger.exception("reading account states for push failed")
                continue
            for pk, (modseq, states) in changed.items():
                if modseq <= self.known.get(pk, 0):
                    continue  # announced meanwhile, by this process
                if self._sighted.get(pk) is None:
                    self._sighted[pk] = modseq  # seen once: announce if still unheard next time
                    continue
                self.known[pk] = modseq
                self._sighted.pop(pk, None)
                if states:
                    message = {"type": STATE_MESSAGE, "group": account_group(pk), "account": pk, "states": states}
                    self._dispatch(message)
            for pk in watched.keys() - changed.keys():
                self._sighted.pop(pk, None)


def _account_of(group: str) -> int | None:
    prefix = account_group(0)[:-1]
    tail = group[len(prefix) :] if group.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _read_changes(watched: dict[int, int]) -> dict[int, tuple[int, dict[str, str]]]:
    """Accounts whose modseq is beyond ``watched``: (modseq, the states of the types that
    changed since)."""
    pks = sorted(watched)
    rows = sql.rows(f"SELECT id, modseq FROM accounts_account WHERE id IN ({sql.placeholders(len(pks))})", pks)  # noqa: S608
    current = {pk: modseq for pk, modseq in rows if modseq > watched[pk]}
    if not current:
        return {}
    states = changed_since({pk: watched[pk] for pk in current}, current)
    return {pk: (modseq, states.get(pk, {})) for pk, modseq in current.items()}


_changes_beyond = db_async(_read_changes, thread_sensitive=False)


# One hub per event loop (the layer's connections belong to a loop).
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(get_channel_layer())
    return hub
