"""State changes onto the Channels layer, after commit, from whichever process made them.

``groupware.core.events`` calls ``state_changed`` once a transaction that changed an account
has committed. It sends one message to the account's group on the channel layer (Redis in
production, so a change made by a Celery worker, the LMTP process or a management command
reaches the WebSocket and EventSource connections held by the push processes), and hands the
change to Web Push. Grant and credential changes go to a per-user group, so open connections
re-check which accounts they may report on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from groupware.core import events

logger = logging.getLogger(__name__)

STATE_MESSAGE = "push.state"  # handled by the consumers' ``push_state``
ACCESS_MESSAGE = "push.access"  # handled by ``push_access``
SEND_TIMEOUT = 5.0


def account_group(account_pk: int) -> str:
    return f"jmap-account-{account_pk}"


def user_group(user_pk: int) -> str:
    return f"jmap-user-{user_pk}"


def install() -> None:
    events.subscribe(state_changed)
    events.subscribe_access(access_changed)


def state_changed(account_pk: int, states: dict[str, str]) -> None:
    group = account_group(account_pk)
    group_send(group, {"type": STATE_MESSAGE, "group": group, "account": account_pk, "states": states})
    from groupware.push.webpush import dispatch_state_change

    dispatch_state_change(account_pk=account_pk, states=states)


def access_changed(user_pk: int) -> None:
    group = user_group(user_pk)
    group_send(group, {"type": ACCESS_MESSAGE, "group": group, "user": user_pk})
    from groupware.push.services import push_subscriptions_prune

    # A revoked or changed credential ends the push subscriptions it created (RFC 8620 §7.2).
    push_subscriptions_prune(user_pk=user_pk)


class _LayerLoop:
    """One event loop thread per process for sending from synchronous code.

    A fresh loop per message (what ``async_to_sync`` does outside ASGI) would open a new
    Redis connection for every change; this loop keeps the layer's connections alive.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, coroutine: Any) -> Future:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="channel-layer-send", daemon=True).start()
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)


_layer_loop = _LayerLoop()


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send to a group from synchronous code; never raises (a push is not worth a failed write)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if isinstance(layer, InMemoryChannelLayer):
            if not getattr(layer, "groups", {}).get(group):
                # Nobody in this process listens (serve_mail, a command): nothing to send,
                # and no event loop to start for it. Push processes poll for such changes.
                return
            # The in-memory layer lives in the server's own event loop: only reachable
            # from that loop's threads (Django runs sync code there via sync_to_async).
            async_to_sync(layer.group_send)(group, message)
        else:
            _layer_loop.submit(layer.group_send(group, message)).result(timeout=SEND_TIMEOUT)
    except Exception:
        logger.exception("could not publish to %s", group)
