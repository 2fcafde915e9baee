"""State-change notifications, published only after the transaction commits.

Listeners (push over EventSource/WebSocket/Web Push) subscribe here; publishing happens in
``transaction.on_commit`` so nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

StateListener = Callable[[int, dict[str, str]], None]
_listeners: list[StateListener] = []


def subscribe(listener: StateListener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: StateListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


AccessListener = Callable[[int], None]
_access_listeners: list[AccessListener] = []


def subscribe_access(listener: AccessListener) -> None:
    """Hear of changes to which accounts a user may see (grants, revocations, disabling)."""
    if listener not in _access_listeners:
        _access_listeners.append(listener)


def publish_access_change(user_pk: int) -> None:
    for listener in list(_access_listeners):
        try:
            listener(user_pk)
        except Exception:
            logger.exception("access change listener %r failed", listener)


def publish_state_change(account_pk: int, states: dict[str, str]) -> None:
    """Tell every listener that these types of this account are now at these states."""
    for listener in list(_listeners):
        try:
            listener(account_pk, states)
        except Exception:  # a broken listener must not break the write that triggered it
            logger.exception("state change listener %r failed", listener)
