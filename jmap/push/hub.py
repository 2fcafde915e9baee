"""One channel-layer subscription per push process, shared by all its connections.

Each connection used to join the account's group itself, so one change became one Redis
message per connection (2,000 idle connections: 2,000 messages through Redis and back). The
hub joins each group once per process, with one channel of its own, and hands every message
to the local connections that want it: one message per process, then in-memory calls.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.listeners: dict[str, set[Listener]] = {}
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def join(self, group: str, listener: Listener) -> None:
        async with self._lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self._reader = asyncio.ensure_future(self._read(self.channel))
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
            group = message.get("group")
            for listener in list(self.listeners.get(group, ())):
                try:
                    listener(message)
                except Exception:
                    logger.exception("push listener failed")


# One hub per event loop (the layer's connections belong to a loop).
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(get_channel_layer())
    return hub
