"""JMAP over WebSocket (RFC 8887), subprotocol ``jmap``.

Requests run through the same engine as the HTTP API (``jmap.engine``), in a worker
thread; several may run at once on one connection, up to ``maxConcurrentRequests``, and
answers carry the request's ``id`` as ``requestId``. ``WebSocketPushEnable`` starts
StateChange pushes (RFC 8887 §4.3.5) from the shared ``PushStream``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.auth import AuthenticationFailed, authenticate_authorization
from accounts.credentials import Credential, credential_valid
from accounts.models import User
from groupware.push.states import decode_push_state
from jmap import engine, errors
from jmap.errors import RequestError
from jmap.jsonio import JSONError, dumps, loads_strict
from jmap.push.auth import push_token_user
from jmap.push.db import db_async, db_threads
from jmap.push.origin import origin_allowed
from jmap.push.stream import REJOIN_SECONDS, PushStream, load_access
from jmap.session import session_state

logger = logging.getLogger("jmap.websocket")
SUBPROTOCOL = "jmap"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _authenticate(scope: dict[str, Any]) -> tuple[User, tuple[bool, dict[int, int]]] | None:
    """The user and their accounts (one trip to the database thread), or None."""
    token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
    if token:
        user = push_token_user(token[0])
    else:
        client = scope.get("client")
        try:
            user = authenticate_authorization(_header(scope, b"authorization"), address=client[0] if client else None)
        except AuthenticationFailed:
            user = None
    return None if user is None else (user, load_access(user.pk))


def _run_request(user_pk: int, credential: Credential | None, request: dict[str, Any]) -> dict[str, Any] | None:
    """Run one request as the user, with the credential that opened the connection; None
    if that no longer authenticates them (disabled, password changed, revoked), as a new
    HTTP request would be refused."""
    user = User.objects.filter(pk=user_pk, is_active=True).first()
    if user is None or (credential is not None and not credential_valid(user, credential)):
        return None
    user.credential = credential
    return engine.process(user, request, session_state=session_state(user))


class JmapWebSocketConsumer(AsyncWebsocketConsumer):
    # No channel of its own: pushes come through the process's hub (jmap.push.hub).
    channel_layer_alias = "none"

    async def connect(self) -> None:
        self.user: User | None = None
        self.stream: PushStream | None = None
        self.pushing = False
        self.running: set[asyncio.Task] = set()
        self.running_push: set[asyncio.Task] = set()
        self.flush_task: asyncio.Task | None = None
        self.rejoin_task: asyncio.Task | None = None
        # RFC 8887 §4.2: the client offers "jmap"; refuse a handshake without it.
        if SUBPROTOCOL not in self.scope.get("subprotocols", []):
            await self.close()
            return
        if not origin_allowed(_header(self.scope, b"origin"), _header(self.scope, b"host")):
            await self.close()
            return
        authenticated = await db_async(_authenticate, thread_sensitive=False)(self.scope)
        if authenticated is None:
            await self.close()
            return
        self.user, access = authenticated
        self.stream = PushStream(user_pk=self.user.pk, listener=self._on_push)
        if not await self.stream.open(access):
            await self.close()
            return
        await self.accept(subprotocol=SUBPROTOCOL)
        self.rejoin_task = asyncio.ensure_future(self._rejoin_periodically())

    async def disconnect(self, code: int) -> None:
        for task in [*self.running, *self.running_push]:
            task.cancel()
        for task in (self.flush_task, self.rejoin_task):
            if task is not None:
                task.cancel()
        if self.stream is not None:
            await self.stream.close()

    # --- Client messages ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            # RFC 8887 §4.3: JMAP messages are text frames holding I-JSON.
            await self._send_error(None, errors.not_json("Messages must be sent as text frames."))
            return
        if len(text_data) > settings.JMAP["maxSizeRequest"]:
            await self._send_error(
                None, errors.limit("maxSizeRequest", "The message is larger than the server accepts.")
            )
            return
        try:
            message = loads_strict(text_data.encode())
        except JSONError as exc:
            await self._send_error(None, errors.not_json(f"The message did not parse as I-JSON: {exc}"))
            return
        if not isinstance(message, dict):
            await self._send_error(None, errors.not_request("A message must be a JSON object."))
            return
        kind = message.get("@type")
        if kind == "Request":
            await self._request(message)
        elif kind == "WebSocketPushEnable":
            await self._push_enable(message)
        elif kind == "WebSocketPushDisable":
            self.pushing = False
        else:
            request_id = message.get("id") if isinstance(message.get("id"), str) else None
            await self._send_error(request_id, errors.not_request("Unknown or missing @type."))

    async def _request(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        if request_id is not None and not isinstance(request_id, str):
            await self._send_error(None, errors.not_request("The request id must be a String."))
            return
        # RFC 8887 §4.3.1: the same limit as over HTTP, counted per connection here.
        if len(self.running) >= settings.JMAP["maxConcurrentRequests"]:
            limit = errors.limit("maxConcurrentRequests", "Too many requests at once on this connection.")
            await self._send_error(request_id, limit)
            return
        request = {key: value for key, value in message.items() if key not in ("@type", "id")}
        try:
            checked = engine.check_request(request)
        except RequestError as error:
            await self._send_error(request_id, error)
            return
        task = asyncio.ensure_future(self._process(request_id, checked))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _process(self, request_id: str | None, request: dict[str, Any]) -> None:
        assert self.user is not None
        try:
            # A few threads with persistent connections; requests of many connections share them.
            result = await db_threads.run(_run_request, self.user.pk, self.user.credential, request)
        except RequestError as error:
            await self._send_error(request_id, error)
            return
        except Exception:
            logger.exception("WebSocket request failed")
            await self._send_error(request_id, RequestError("serverFail", "An internal error occurred.", status=500))
            return
        if result is None:  # the user was disabled or the credential revoked meanwhile
            await self._shut()
            return
        response: dict[str, Any] = {"@type": "Response"}
        if request_id is not None:
            response["requestId"] = request_id
        response.update(result)
        await self.send(text_data=dumps(response).decode())

    async def _send_error(self, request_id: str | None, error: RequestError) -> None:
        body: dict[str, Any] = {"@type": "RequestError"}
        if request_id is not None:
            body["requestId"] = request_id
        body.update(error.problem())
        await self.send(text_data=dumps(body).decode())

    async def _push_enable(self, message: dict[str, Any]) -> None:
        assert self.stream is not None
        types = message.get("dataTypes")
        push_state = message.get("pushState")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            await self._send_error(None, errors.not_request("dataTypes must be null or an array of type names."))
            return
        if push_state is not None and not isinstance(push_state, str):
            await self._send_error(None, errors.not_request("pushState must be a String."))
            return
        self.stream.types = None if types is None else frozenset(types)
        self.stream.pending = {}
        self.pushing = True
        if push_state is not None:
            # RFC 8887 §4.3.5.2: send what changed since that state at once.
            await self.stream.catch_up(decode_push_state(push_state))
            await self._flush(force=True)

    # --- Pushed messages ------------------------------------------------------------------

    def _on_push(self, message: dict[str, Any]) -> None:
        """Called by the hub, in the event loop, for each message of this user's groups."""
        if self.stream is None:
            return
        if message["type"] == "push.access":
            self._spawn(self._refresh())
            return
        self.stream.add(message["account"], message["states"])
        if self.pushing:
            self._spawn(self._flush())
        else:
            self.stream.pending = {}

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.running_push.add(task)
        task.add_done_callback(self.running_push.discard)

    async def _rejoin_periodically(self) -> None:
        # Group memberships expire on the Redis layer; a quiet connection renews them too.
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            await self._refresh()

    async def _refresh(self) -> None:
        if self.stream is not None and not await self.stream.refresh_access():
            await self._shut()  # the user was disabled

    async def _shut(self) -> None:
        """Close from the server side (RFC 6455 1008: policy violation)."""
        if self.stream is not None:
            await self.stream.close()
        await self.close(code=1008)

    async def _flush(self, force: bool = False) -> None:
        assert self.stream is not None
        delay = self.stream.flush_delay()
        if delay is None:
            return
        if delay > 0 and not force:
            if self.flush_task is None or self.flush_task.done():
                self.flush_task = asyncio.ensure_future(self._flush_later(delay))
            return
        state_change = self.stream.take()
        if state_change is not None:
            state_change["pushState"] = self.stream.push_state
            await self.send(text_data=dumps(state_change).decode())

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.pushing:
            await self._flush(force=True)
