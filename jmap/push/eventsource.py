"""The event source resource (RFC 8620 §7.3): StateChange objects as ``text/event-stream``.

An async view: served by the ASGI push process (daphne), where each open stream is a
coroutine, not a thread. Query variables: ``types`` (``*`` or a comma-separated list),
``closeafter`` (``state`` or ``no``), ``ping`` (seconds, 0 for none; clamped to
PUSH_PING_MIN..PUSH_PING_MAX). Each ``state`` event carries an ``id`` naming everything the
client has been told; a reconnecting client's ``Last-Event-ID`` gets what it missed at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from accounts.auth import AuthenticationFailed, authenticate_api
from accounts.models import User
from groupware.push.states import decode_push_state
from jmap.http import method_not_allowed, simple_problem
from jmap.jsonio import dumps
from jmap.push.auth import push_token_user
from jmap.push.db import db_async
from jmap.push.origin import origin_allowed
from jmap.push.stream import PushStream


@db_async
def _authenticate(request: HttpRequest) -> User | HttpResponse:
    token = request.GET.get("access_token")
    if token is not None:
        user = push_token_user(token)
        if user is None:
            return simple_problem(401, "Unauthorized", "The access token is invalid or has expired.")
        return user
    try:
        return authenticate_api(request)
    except AuthenticationFailed as failure:
        return failure.response()


def parse_arguments(query: Any) -> tuple[frozenset[str] | None, bool, int] | str:
    """(types, close after state, ping seconds), or what is wrong with them."""
    types_value = query.get("types", "*")
    if types_value == "*":
        types = None
    else:
        names = [name.strip() for name in types_value.split(",")]
        if not all(names):
            return "types must be * or a comma-separated list of type names"
        types = frozenset(names)
    closeafter = query.get("closeafter", "no")
    if closeafter not in ("state", "no"):
        return "closeafter must be state or no"
    ping_value = query.get("ping", "0")
    if not ping_value.isdigit() or len(ping_value) > 9:
        return "ping must be a non-negative integer"
    ping = int(ping_value)
    if ping:
        # RFC 8620 §7.3: a minimum no higher than 30 s, a maximum no lower than 300 s.
        ping = min(max(ping, settings.PUSH_PING_MIN), settings.PUSH_PING_MAX)
    return types, closeafter == "state", ping


def _event(name: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()


async def eventsource_view(request: HttpRequest) -> HttpResponse:
    try:
        return await _open(request)
    except (OperationalError, InterfaceError):
        return simple_problem(503, "Service Unavailable", "The database is unavailable.", Retry_After="5")


async def _open(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return method_not_allowed(["GET"])
    if not origin_allowed(request.headers.get("Origin"), request.get_host()):
        return simple_problem(403, "Forbidden", "Push connections are not allowed from this origin.")
    user = await _authenticate(request)
    if isinstance(user, HttpResponse):
        return user
    parsed = parse_arguments(request.GET)
    if isinstance(parsed, str):
        return simple_problem(400, "Bad Request", parsed)
    types, close_after_state, ping = parsed
    queue: asyncio.Queue = asyncio.Queue()
    stream = PushStream(user_pk=user.pk, listener=queue.put_nowait)
    stream.types = types
    try:
        if not await stream.open():
            await stream.close()
            return simple_problem(401, "Unauthorized", "The user is disabled.")
        last_event_id = request.headers.get("Last-Event-ID")
        if last_event_id:
            await stream.catch_up(decode_push_state(last_event_id))
    except BaseException:
        await stream.close()
        raise
    response = StreamingHttpResponse(
        _events(stream, queue, close_after_state=close_after_state, ping=ping),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def _events(
    stream: PushStream, queue: asyncio.Queue, *, close_after_state: bool, ping: int
) -> AsyncIterator[bytes]:
    try:
        # The current state as an event id, so a reconnect can catch up even if no
        # state event came before the connection broke.
        yield f"id: {stream.push_state}\n\n".encode()
        last_event = time.monotonic()
        while True:
            delay = stream.flush_delay()
            if delay == 0:
                state_change = stream.take()
                if state_change is not None:
                    yield _event("state", state_change, stream.push_state)
                    last_event = time.monotonic()
                    if close_after_state:
                        return
                continue
            timeouts = [delay] if delay is not None else []
            timeouts.append(max(0.0, stream.rejoin_delay()))
            if ping:
                timeouts.append(max(0.0, last_event + ping - time.monotonic()))
            try:
                message = await asyncio.wait_for(queue.get(), timeout=min(timeouts))
            except TimeoutError:
                if stream.rejoin_delay() <= 0 and not await stream.refresh_access():
                    return
                if ping and time.monotonic() >= last_event + ping:
                    # RFC 8620 §7.3: no id on pings.
                    yield _event("ping", {"interval": ping})
                    last_event = time.monotonic()
                continue
            if message["type"] == "push.state":
                stream.add(message["account"], message["states"])
            elif message["type"] == "push.access" and not await stream.refresh_access():
                return  # the user was disabled
    finally:
        await stream.close()
