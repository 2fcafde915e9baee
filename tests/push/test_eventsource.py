"""The event source resource (RFC 8620 §7.3) through Django's real ASGI handler."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.core.asgi import get_asgi_application

from accounts.models import Account
from jmap.push.auth import push_token_create
from tests.push.conftest import basic_header, deliver, run

PATH = "/jmap/push/eventsource/"


class EventStream:
    """An SSE client on the ASGI application: sends the GET, parses events as they come."""

    def __init__(self, query: str, headers: list) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        self.app = ApplicationCommunicator(get_asgi_application(), scope)
        self.buffer = b""
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.ended = False

    async def start(self) -> int:
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.app.receive_output(timeout=10)
        assert start["type"] == "http.response.start"
        self.status = start["status"]
        self.headers = dict(start["headers"])
        return self.status

    async def body(self) -> bytes:
        while not self.ended:
            message = await self.app.receive_output(timeout=10)
            self.buffer += message.get("body", b"")
            self.ended = not message.get("more_body", False)
        return self.buffer

    async def event(self, timeout: float = 10) -> dict[str, str]:
        """The next block with a data line (comments and id-only blocks are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while b"\n\n" in self.buffer:
                block, self.buffer = self.buffer.split(b"\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.decode().split("\n"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
                if "data" in fields:
                    return fields
                if "id" in fields:
                    self.last_id = fields["id"]
            if self.ended:
                raise EOFError("the stream ended")
            # Not receive_output(timeout): on a timeout it cancels the application.
            message = await asyncio.wait_for(self.app.output_queue.get(), max(0.01, deadline - loop.time()))
            self.buffer += message.get("body", b"")
            self.ended = not message.get("more_body", False)

    async def quiet(self, timeout: float) -> bool:
        try:
            await self.event(timeout)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        if self.app.future.done():
            self.app.future.result()
        await self.app.send_input({"type": "http.disconnect"})
        try:
            await self.app.wait(timeout=5)
        except TimeoutError:
            pass


def account_id(user) -> str:
    return Account.objects.get(owner=user, is_personal=True).jmap_id


def test_unauthenticated_is_401(alice):
    async def body():
        stream = EventStream("types=*&closeafter=no&ping=0", [])
        assert await stream.start() == 401
        await stream.body()

    run(body)


def test_state_events_for_deliveries_and_types_filter(alice, bob):
    async def body():
        mine = await database_sync_to_async(account_id)(alice)
        stream = EventStream("types=Email,Mailbox&closeafter=no&ping=0", [basic_header(alice.email)])
        assert await stream.start() == 200
        assert stream.headers[b"Content-Type"] == b"text/event-stream"
        await deliver(bob, "not for alice")
        await deliver(alice, "for alice")
        event = await stream.event()
        assert event["event"] == "state"
        data = orjson.loads(event["data"])
        assert data["@type"] == "StateChange"
        assert set(data["changed"]) == {mine}
        assert set(data["changed"][mine]) == {"Email", "Mailbox"}  # no Thread: not asked for
        assert event["id"]  # the pushState, for Last-Event-ID
        assert await stream.quiet(0.4)
        await stream.close()

    run(body)


def test_closeafter_state_and_last_event_id(alice):
    async def body():
        mine = await database_sync_to_async(account_id)(alice)
        stream = EventStream("types=*&closeafter=state&ping=0", [basic_header(alice.email)])
        await stream.start()
        await deliver(alice, "one")
        first = await stream.event()
        # closeafter=state: the response ends after the state event.
        await stream.body()
        assert stream.ended
        await deliver(alice, "two")
        # Reconnecting with Last-Event-ID: the missed change comes at once.
        stream = EventStream(
            "types=*&closeafter=state&ping=0", [basic_header(alice.email), (b"last-event-id", first["id"].encode())]
        )
        await stream.start()
        missed = await stream.event(timeout=5)
        assert int(orjson.loads(missed["data"])["changed"][mine]["Email"]) > int(
            orjson.loads(first["data"])["changed"][mine]["Email"]
        )
        await stream.body()

    run(body)


def test_ping_is_clamped_and_carries_the_interval(alice, settings):
    settings.PUSH_PING_MIN = 1

    async def body():
        stream = EventStream("types=*&closeafter=no&ping=0", [basic_header(alice.email)])
        await stream.start()
        assert await stream.quiet(1.5)  # ping=0: no pings at all
        await stream.close()
        stream = EventStream("types=*&closeafter=no&ping=1", [basic_header(alice.email)])
        await stream.start()
        ping = await stream.event(timeout=5)
        assert ping["event"] == "ping"
        assert orjson.loads(ping["data"]) == {"interval": 1}
        assert "id" not in ping  # RFC 8620 §7.3: a ping sets no event id
        await stream.close()

    run(body)


@pytest.mark.parametrize(
    "query", ["types=&closeafter=no&ping=0", "types=*&closeafter=maybe&ping=0", "types=*&closeafter=no&ping=-1"]
)
def test_bad_arguments_are_400(alice, query):
    async def body():
        stream = EventStream(query, [basic_header(alice.email)])
        assert await stream.start() == 400
        assert b"problem+json" in stream.headers[b"Content-Type"]
        await stream.body()

    run(body)


def test_access_token_in_the_query_string(alice, client):
    # The token comes from an authenticated POST; then a browser's EventSource uses it.
    response = client.post("/jmap/push-token/", HTTP_AUTHORIZATION=basic_header(alice.email)[1].decode())
    assert response.status_code == 200
    token = response.json()["accessToken"]
    assert response.json()["expiresIn"] == 60
    # The token is no API credential.
    api = client.post("/jmap/api/", b"{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.status_code == 401

    async def body():
        stream = EventStream(
            f"types=*&closeafter=state&ping=0&access_token={token}", [(b"origin", b"http://testserver")]
        )
        assert await stream.start() == 200
        await deliver(alice, "via token")
        assert (await stream.event())["event"] == "state"
        await stream.body()
        forged = EventStream(f"types=*&closeafter=state&ping=0&access_token={push_token_create(alice)}x", [])
        assert await forged.start() == 401
        await forged.body()
        other_origin = EventStream(
            f"types=*&closeafter=state&ping=0&access_token={token}", [(b"origin", b"https://evil.example")]
        )
        assert await other_origin.start() == 403
        await other_origin.body()

    run(body)


def test_expired_access_token(alice, settings):
    token = push_token_create(alice)
    settings.PUSH_TOKEN_SECONDS = -1

    async def body():
        stream = EventStream(f"types=*&closeafter=state&ping=0&access_token={token}", [])
        assert await stream.start() == 401
        await stream.body()

    run(body)


IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _elsewhere(user, subject: str) -> None:
    """A delivery committed as another process would commit it: this process's channel
    layer hears nothing of it (as with serve_mail beside the web server on the embedded
    default)."""
    from groupware.core import events
    from tests.mail.factories import ingest, message

    saved = list(events._listeners)
    events._listeners.clear()
    try:
        ingest(Account.objects.get(owner=user, is_personal=True), message(subject=subject))
    finally:
        events._listeners.extend(saved)


def test_changes_of_other_processes_reach_the_stream_without_redis(alice, settings):
    """Embedded default: the in-memory channel layer doesn't cross processes, so the push
    process reads the states of the accounts it reports on (PUSH_POLL_SECONDS) and
    announces what other processes changed, once."""
    settings.CHANNEL_LAYERS = IN_MEMORY
    settings.PUSH_POLL_SECONDS = 0.1

    async def body():
        mine = await database_sync_to_async(account_id)(alice)
        stream = EventStream("types=*&closeafter=no&ping=0", [basic_header(alice.email)])
        assert await stream.start() == 200
        await database_sync_to_async(_elsewhere)(alice, "from serve_mail")
        event = await stream.event(timeout=5)
        data = orjson.loads(event["data"])
        assert set(data["changed"]) == {mine}
        assert {"Email", "Mailbox", "Thread"} <= set(data["changed"][mine])
        assert await stream.quiet(0.6)  # announced once
        # A change this process commits is announced by its own message, not twice.
        await deliver(alice, "from this process")
        await stream.event(timeout=5)
        assert await stream.quiet(0.6)
        await stream.close()

    run(body)
