"""Helpers for push tests: run async test bodies, open in-process WebSocket connections."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import warnings
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from accounts.models import Account
from jmap.routing import websocket_urlpatterns
from tests.conftest import PASSWORD
from tests.mail.factories import ingest, message

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
WS_PATH = "/jmap/push/websocket/"


# Seconds after the body ends for the loop's other tasks to end on their cancellation.
TEARDOWN_GRACE = 20.0


def run(coroutine_function):
    """Run an async test body to completion in a fresh event loop.

    The loop's other tasks are cancelled when it ends (asyncio.run waits for them). Once,
    in a full CI run on PostgreSQL and Redis, a task did not end on that cancellation and the
    run never returned (not reproduced since). So a watcher gives them TEARDOWN_GRACE
    seconds, then warns with the stacks of those still pending and cancels them again, every
    TEARDOWN_GRACE seconds, until the loop has ended."""
    state: dict[str, Any] = {}
    finished = threading.Event()

    async def body():
        state["loop"] = asyncio.get_running_loop()
        try:
            return await coroutine_function()
        finally:
            threading.Thread(target=_watch_teardown, args=(state["loop"], finished), daemon=True).start()

    try:
        return async_to_sync(body)()
    finally:
        finished.set()


def _watch_teardown(loop: asyncio.AbstractEventLoop, finished: threading.Event) -> None:
    def cancel_again() -> None:
        for task in asyncio.all_tasks(loop):
            stack = io.StringIO()
            task.print_stack(file=stack)
            warnings.warn(f"push test teardown: still pending, cancelled again: {task!r}\n{stack.getvalue()}")
            task.cancel()

    while not finished.wait(TEARDOWN_GRACE):
        try:
            loop.call_soon_threadsafe(cancel_again)
        except RuntimeError:  # the loop is closed: it ended meanwhile
            return


def basic_header(email: str, password: str = PASSWORD) -> tuple[bytes, bytes]:
    return b"authorization", ("Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()).encode()


class Socket:
    """An RFC 8887 client over Channels' in-process communicator."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.subprotocol: str | None = None

    @classmethod
    async def open(
        cls,
        email: str | None,
        *,
        subprotocols: list[str] | None = None,
        headers: list | None = None,
        path: str = WS_PATH,
    ) -> tuple[Socket, bool]:
        all_headers = list(headers or [])
        if email is not None:
            all_headers.append(basic_header(email))
        communicator = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns),
            path,
            headers=all_headers,
            subprotocols=["jmap"] if subprotocols is None else subprotocols,
        )
        connected, subprotocol = await communicator.connect(timeout=10)
        socket = cls(communicator)
        socket.subprotocol = subprotocol
        return socket, connected

    async def send(self, value: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=orjson.dumps(value).decode())

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        return orjson.loads(await self.communicator.receive_from(timeout=timeout))

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def request(self, calls: list, request_id: str = "r1", using: list[str] | None = None) -> dict[str, Any]:
        await self.send({"@type": "Request", "id": request_id, "using": using or [CORE, MAIL], "methodCalls": calls})
        return await self.receive_type("Response")

    async def enable_push(self, data_types: list[str] | None = None, **extra: Any) -> None:
        """WebSocketPushEnable, then a round trip so it has surely been handled."""
        await self.send({"@type": "WebSocketPushEnable", "dataTypes": data_types, **extra})
        await self.request([["Core/echo", {}, "sync"]], request_id="sync", using=[CORE])

    async def receive_type(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next message of this @type (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.receive(timeout=max(0.01, deadline - loop.time()))
            if value.get("@type") == kind:
                return value

    async def close(self) -> None:
        await self.communicator.disconnect()


@database_sync_to_async
def deliver(user, subject: str = "Hello") -> None:
    """A message delivered into the user's inbox, as the LMTP process would store it."""
    account = Account.objects.get(owner=user, is_personal=True)
    ingest(account, message(subject=subject, message_id=f"<{subject.replace(' ', '.')}@example.com>"))


# The users of tests/conftest.py, in committed transactions: push happens after commit, and
# the push code reads the database from other threads.
@pytest.fixture
def alice(transactional_db, user):
    return user


@pytest.fixture
def bob(transactional_db, other_user):
    return other_user


@pytest.fixture(autouse=True)
def _push_process_connections():
    """As in the push process (groupware/asgi.py sets DATABASE_CONN_MAX_AGE=0): worker
    threads close their database connection after each use, so none is left open when the
    test database is dropped."""
    from django.db import connections

    from jmap.push.db import db_threads

    saved = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield
    connections.settings["default"]["CONN_MAX_AGE"] = saved
    db_threads.close()  # the request threads' persistent connections
