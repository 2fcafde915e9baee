"""JMAP over WebSocket (RFC 8887) through the real consumer and the real engine."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async

from accounts.models import Account
from accounts.services import account_grant, account_revoke
from groupware.core.changes import type_state
from groupware.push.fanout import account_group
from jmap.push.auth import push_token_create
from jmap.push.hub import get_hub
from tests.push.conftest import CORE, MAIL, Socket, deliver, run


async def listening(group: str, wanted: bool) -> None:
    """Wait until this process's hub does (or doesn't) listen to a group."""
    import asyncio

    for _ in range(200):
        if (group in get_hub().listeners) == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the hub's listening to {group} did not become {wanted}")


def account_id(user) -> str:
    return Account.objects.get(owner=user, is_personal=True).jmap_id


def test_handshake_answers_the_jmap_subprotocol(alice):
    async def body():
        socket, connected = await Socket.open(alice.email)
        assert connected
        assert socket.subprotocol == "jmap"
        await socket.close()

    run(body)


@pytest.mark.parametrize(
    ("email", "subprotocols", "headers"),
    [
        (None, None, []),  # no credentials
        ("alice@example.com", [], []),  # no "jmap" subprotocol offered
        ("alice@example.com", ["chat"], []),
        ("alice@example.com", None, [(b"origin", b"https://evil.example")]),  # cross-site page
    ],
)
def test_handshake_refused(alice, email, subprotocols, headers):
    async def body():
        _, connected = await Socket.open(email, subprotocols=subprotocols, headers=headers)
        assert not connected

    run(body)


def test_wrong_password_is_refused(alice):
    async def body():
        _, connected = await Socket.open(None, headers=[(b"authorization", b"Basic YWxpY2VAZXhhbXBsZS5jb206bm8=")])
        assert not connected

    run(body)


def test_same_origin_browser_and_access_token(alice):
    token = push_token_create(alice)

    async def body():
        socket, connected = await Socket.open(
            None,
            headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")],
            path=f"/jmap/push/websocket/?access_token={token}",
        )
        assert connected
        response = await socket.request([["Core/echo", {"hello": True}, "c1"]])
        assert response["methodResponses"] == [["Core/echo", {"hello": True}, "c1"]]
        await socket.close()
        _, connected = await Socket.open(None, path="/jmap/push/websocket/?access_token=" + token[:-2] + "xx")
        assert not connected

    run(body)


def test_request_and_response_carry_the_request_id(alice):
    async def body():
        socket, _ = await Socket.open(alice.email)
        response = await socket.request(
            [["Mailbox/get", {"accountId": await database_sync_to_async(account_id)(alice), "ids": None}, "m"]],
            request_id="req-7",
        )
        assert response["@type"] == "Response"
        assert response["requestId"] == "req-7"
        name, result, call_id = response["methodResponses"][0]
        assert (name, call_id) == ("Mailbox/get", "m")
        assert {mailbox["role"] for mailbox in result["list"]} >= {"inbox", "sent", "trash"}
        assert isinstance(response["sessionState"], str)
        # Without an id, the response has no requestId (RFC 8887 §4.3.3).
        await socket.send({"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {}, "e"]]})
        response = await socket.receive()
        assert response["@type"] == "Response" and "requestId" not in response
        await socket.close()

    run(body)


def test_request_errors(alice):
    async def body():
        socket, _ = await Socket.open(alice.email)
        await socket.communicator.send_to(text_data="{not json")
        error = await socket.receive()
        assert error["@type"] == "RequestError"
        assert error["type"] == "urn:ietf:params:jmap:error:notJSON"
        await socket.send({"@type": "Request", "id": "x", "using": ["urn:example:nope", CORE], "methodCalls": []})
        error = await socket.receive()
        assert error == {
            "@type": "RequestError",
            "requestId": "x",
            "type": "urn:ietf:params:jmap:error:unknownCapability",
            "status": 400,
            "detail": error["detail"],
        }
        await socket.send({"@type": "Request", "id": "y", "using": [CORE], "methodCalls": {}})
        error = await socket.receive()
        assert (error["requestId"], error["type"]) == ("y", "urn:ietf:params:jmap:error:notRequest")
        await socket.send({"@type": "Bogus", "id": "z"})
        error = await socket.receive()
        assert (error["requestId"], error["type"]) == ("z", "urn:ietf:params:jmap:error:notRequest")
        await socket.communicator.send_to(bytes_data=b"{}")
        error = await socket.receive()
        assert error["type"] == "urn:ietf:params:jmap:error:notJSON"
        # The connection is still usable.
        response = await socket.request([["Core/echo", {"a": 1}, "c"]])
        assert response["methodResponses"] == [["Core/echo", {"a": 1}, "c"]]
        await socket.close()

    run(body)


def test_max_concurrent_requests_per_connection(alice, settings, monkeypatch):
    settings.JMAP = {**settings.JMAP, "maxConcurrentRequests": 1}
    # Each request takes a moment, so the ten surely overlap (Core/echo alone can finish
    # before the next message is read, on a fast machine).
    from jmap.push import websocket

    real_run = websocket._run_request

    def slow_run(*args, **kwargs):
        time.sleep(0.05)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(websocket, "_run_request", slow_run)

    async def body():
        socket, _ = await Socket.open(alice.email)
        for number in range(10):
            await socket.send(
                {"@type": "Request", "id": f"r{number}", "using": [CORE], "methodCalls": [["Core/echo", {}, "c"]]}
            )
        answers = [await socket.receive() for _ in range(10)]
        assert sorted(answer["requestId"] for answer in answers) == sorted(f"r{n}" for n in range(10))
        limited = [answer for answer in answers if answer["@type"] == "RequestError"]
        assert limited, "ten requests at once with a limit of one were all run"
        assert all(answer["type"] == "urn:ietf:params:jmap:error:limit" for answer in limited)
        assert all(answer["limit"] == "maxConcurrentRequests" for answer in limited)
        assert any(answer["@type"] == "Response" for answer in answers)
        await socket.close()

    run(body)


def test_push_after_email_set_and_delivery(alice):
    async def body():
        socket, _ = await Socket.open(alice.email)
        await socket.enable_push()
        mine = await database_sync_to_async(account_id)(alice)
        drafts = await socket.request([["Mailbox/query", {"accountId": mine, "filter": {"role": "drafts"}}, "q"]])
        drafts_id = drafts["methodResponses"][0][1]["ids"][0]
        # Email/set over the same socket: the Response and a StateChange both arrive.
        await socket.send(
            {
                "@type": "Request",
                "id": "set",
                "using": [CORE, MAIL],
                "methodCalls": [
                    [
                        "Email/set",
                        {
                            "accountId": mine,
                            "create": {
                                "d": {"mailboxIds": {drafts_id: True}, "subject": "draft", "keywords": {"$draft": True}}
                            },
                        },
                        "s",
                    ]
                ],
            }
        )
        seen = {}
        while "Response" not in seen or "StateChange" not in seen:
            value = await socket.receive()
            seen[value["@type"]] = value
        new_state = seen["Response"]["methodResponses"][0][1]["newState"]
        change = seen["StateChange"]
        assert change["changed"][mine]["Email"] == new_state
        assert {"Email", "Mailbox", "Thread"} <= set(change["changed"][mine])
        assert isinstance(change["pushState"], str)
        # A delivery (as the LMTP process stores it) is pushed too.
        await deliver(alice, "delivered")
        change = await socket.receive_type("StateChange")
        assert set(change["changed"]) == {mine}
        assert int(change["changed"][mine]["Email"]) > int(new_state)
        await socket.close()

    run(body)


def test_only_accessible_accounts_and_grant_changes(alice, bob):
    async def body():
        socket, _ = await Socket.open(alice.email)
        await socket.enable_push(["Email"])
        bobs = await database_sync_to_async(account_id)(bob)
        await deliver(bob, "not for alice")
        assert await socket.nothing(0.5), "a change in an account alice can't see was pushed"
        bob_account = await database_sync_to_async(Account.objects.get)(owner=bob, is_personal=True)
        await database_sync_to_async(account_grant)(account=bob_account, user=alice)
        await listening(account_group(bob_account.pk), True)  # the consumer heard of the grant
        await deliver(bob, "shared now")
        change = await socket.receive_type("StateChange")
        assert list(change["changed"]) == [bobs]
        assert list(change["changed"][bobs]) == ["Email"]  # dataTypes filter
        await database_sync_to_async(account_revoke)(account=bob_account, user=alice)
        await listening(account_group(bob_account.pk), False)  # ... and of the revocation
        await deliver(bob, "revoked again")
        assert await socket.nothing(0.5), "a change was pushed after the grant was revoked"
        await socket.close()

    run(body)


def test_push_disable_and_push_state_catch_up(alice):
    async def body():
        mine = await database_sync_to_async(account_id)(alice)
        socket, _ = await Socket.open(alice.email)
        await socket.enable_push()
        await deliver(alice, "first")
        first = await socket.receive_type("StateChange")
        await socket.send({"@type": "WebSocketPushDisable"})
        await socket.request([["Core/echo", {}, "sync"]], using=[CORE])  # the disable was handled
        await deliver(alice, "while disabled")
        assert await socket.nothing(0.5)
        await socket.close()
        # Reconnect with the last pushState: what was missed comes at once (RFC 8887 §4.3.5.2).
        socket, _ = await Socket.open(alice.email)
        await socket.send({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": first["pushState"]})
        missed = await socket.receive_type("StateChange", timeout=5)
        assert int(missed["changed"][mine]["Email"]) > int(first["changed"][mine]["Email"])
        # An up-to-date pushState sends nothing.
        await socket.send({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": missed["pushState"]})
        assert await socket.nothing(0.5)
        await socket.close()

    run(body)


def test_burst_is_coalesced(alice, settings):
    window = 1.0
    settings.PUSH_COALESCE_SECONDS = window

    async def body():
        mine = await database_sync_to_async(account_id)(alice)
        socket, _ = await Socket.open(alice.email)
        await socket.enable_push()
        started = time.monotonic()
        for number in range(8):
            await deliver(alice, f"burst {number}")
        elapsed = time.monotonic() - started
        changes = []
        while not await socket.nothing(window + 0.5):
            changes.append(await socket.receive())
        # The first change goes at once; the rest wait out the window, one message per window.
        assert 1 <= len(changes) <= 2 + int(elapsed / window), (elapsed, changes)
        assert len(changes) < 8 or elapsed > 6 * window
        final = await database_sync_to_async(
            lambda: type_state(Account.objects.get(owner=alice, is_personal=True), "Email")
        )()
        # The last message names the final state.
        assert changes[-1]["changed"][mine]["Email"] == final
        await socket.close()

    run(body)


def test_disabling_the_user_closes_the_connection(alice):
    from accounts.services import user_disable

    async def body():
        socket, _ = await Socket.open(alice.email)
        await socket.enable_push()
        await database_sync_to_async(user_disable)(user=alice)
        closed = await socket.communicator.receive_output(timeout=10)
        assert closed == {"type": "websocket.close", "code": 1008}
        await socket.close()

    run(body)


def test_request_threads_keep_their_database_connection(alice, settings):
    """Requests over WebSocket run in a few threads that keep their connection, although the
    push process otherwise closes connections after each use (DATABASE_CONN_MAX_AGE=0)."""
    from django.db import connection

    from jmap.push.db import db_threads

    db_threads.close()
    settings.PUSH_DB_THREADS = 1  # both calls in the same thread

    def raw_connection():
        connection.ensure_connection()
        return connection.connection

    async def body():
        first = await db_threads.run(raw_connection)
        second = await db_threads.run(raw_connection)
        assert first is second
        return first

    raw = run(body)
    db_threads.close()
    if connection.vendor == "postgresql":  # Django never closes the in-memory SQLite test database
        assert raw.closed


def test_requests_run_with_the_connections_credential_and_end_with_it(alice):
    # RFC 8620 §7.2 ties a push subscription to the credential that made it: over a
    # WebSocket that is the credential of the handshake. Revoking it ends the connection
    # at its next request, as a new HTTP request with it would be refused.
    from accounts.services import app_password_create, app_password_revoke
    from tests.push.conftest import basic_header
    from tests.push.test_subscriptions import PUBLIC_URL

    app_password, secret = app_password_create(user=alice, name="tablet")

    async def body():
        socket, connected = await Socket.open(None, headers=[basic_header(alice.email, secret)])
        assert connected
        create = {"s": {"deviceClientId": "tablet-1", "url": PUBLIC_URL}}
        response = await socket.request([["PushSubscription/set", {"create": create}, "p"]], using=[CORE])
        name, result, _ = response["methodResponses"][0]
        # (Before, a request over WebSocket had no credential and this was "forbidden".)
        assert name == "PushSubscription/set" and "s" in result["created"], result
        await database_sync_to_async(app_password_revoke)(app_password=app_password)
        await socket.send({"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {}, "e"]]})
        closed = await socket.communicator.receive_output(timeout=10)
        assert closed["type"] == "websocket.close"
        await socket.close()

    run(body)


def test_a_task_that_outlives_its_cancellation_does_not_hang_the_test_body(monkeypatch):
    """The harness (tests/push/conftest.py run): a task that swallows the loop's first
    cancellation is cancelled again after the grace time, with a warning naming it."""
    import asyncio
    import time

    from tests.push import conftest

    monkeypatch.setattr(conftest, "TEARDOWN_GRACE", 0.5)

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # the first cancellation is swallowed

    left: list[asyncio.Task] = []

    async def body() -> str:
        left.append(asyncio.ensure_future(stubborn()))
        await asyncio.sleep(0)
        return "done"

    started = time.monotonic()
    with pytest.warns(UserWarning, match="still pending, cancelled again"):
        assert run(body) == "done"
    assert time.monotonic() - started < 10
    assert left[0].cancelled()
