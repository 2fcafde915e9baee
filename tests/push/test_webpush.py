"""Web Push delivery end to end: a real push service on loopback receives RFC 8291-encrypted,
VAPID-signed PushVerification and StateChange objects, decrypted here with the client's keys.

Embedded default (no REDIS_URL): the deliveries run in a background thread of this process.
With REDIS_URL and PostgreSQL: a real Celery worker process sends them.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid

import orjson
import pytest
from django.conf import settings
from py_vapid import Vapid02

from accounts.models import Account
from groupware.push.models import PushSubscription
from tests.conftest import JmapClient
from tests.mail.factories import ingest, message
from tests.push.pushservice import ClientKeys, PushService
from tests.test_celery_worker import Worker, database_url_for_worker

CORE = "urn:ietf:params:jmap:core"
VAPID = "urn:ietf:params:jmap:webpush-vapid"


@pytest.fixture(scope="module")
def push_queue(django_db_setup, django_db_blocker):
    """Where deliveries run: None in-process (embedded default), else a worker's queue."""
    if not settings.REDIS_URL:
        yield None
        return
    database_url = database_url_for_worker()
    if database_url is None:
        pytest.skip("REDIS_URL with in-memory SQLite: a worker process can't open the test database")
    os.environ["WEB_PUSH_ALLOW_LOOPBACK"] = "true"  # the worker's own setting (SSRF guard off for loopback)
    try:
        worker = Worker(f"test-push-{uuid.uuid4().hex[:12]}", database_url)
    finally:
        del os.environ["WEB_PUSH_ALLOW_LOOPBACK"]
    try:
        worker.wait_ready()
        yield worker.queue
    finally:
        worker.stop()


@pytest.fixture
def service(settings, push_queue):
    settings.WEB_PUSH_ALLOW_LOOPBACK = True
    if push_queue is not None:
        settings.WEB_PUSH_QUEUE = push_queue
    running = PushService()
    yield running
    running.stop()


def deliver(user, subject: str) -> None:
    account = Account.objects.get(owner=user, is_personal=True)
    ingest(account, message(subject=subject, message_id=f"<{uuid.uuid4().hex}@example.com>"))


def jwt_claims(authorization: str) -> dict:
    token = authorization.split("t=", 1)[1].split(",", 1)[0]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_verification_then_encrypted_state_changes_then_gone(alice, service):
    jmap = JmapClient(alice)
    keys = ClientKeys()
    session = jmap.session()
    server_key = session["capabilities"][VAPID]["applicationServerKey"]
    created = jmap.call(
        "PushSubscription/set",
        {
            "create": {
                "s": {
                    "deviceClientId": "phone-1",
                    "url": service.url("alice"),
                    "keys": keys.as_jmap(),
                    "types": ["Email", "Mailbox"],
                }
            }
        },
        using=[CORE],
    )[1]["created"]["s"]

    # 1. The verification, encrypted with the client's keys and signed with the server's VAPID key.
    push = service.next()
    assert push.path == "/push/alice"
    assert push.headers["content-encoding"] == "aes128gcm"
    assert push.headers["ttl"] == str(settings.WEB_PUSH_TTL)
    assert push.headers["urgency"] == "normal"
    authorization = push.headers["authorization"]
    assert authorization.startswith("vapid ")
    assert authorization.rsplit("k=", 1)[1] == server_key  # RFC 9749 §4
    assert Vapid02.verify(authorization)
    claims = jwt_claims(authorization)
    assert claims["aud"] == service.origin
    assert claims["exp"] > time.time()
    verification = orjson.loads(keys.decrypt(push.body))
    assert verification["@type"] == "PushVerification"
    assert verification["pushSubscriptionId"] == created["id"]
    code = verification["verificationCode"]
    assert len(code) >= 32

    # 2. Nothing else before the client proves it got the code.
    deliver(alice, "before verification")
    assert service.nothing(1.0)
    got = jmap.call("PushSubscription/get", {"ids": None}, using=[CORE])[1]["list"]
    assert got[0]["verificationCode"] is None
    wrong = jmap.call(
        "PushSubscription/set", {"update": {created["id"]: {"verificationCode": "0" * 64}}}, using=[CORE]
    )[1]
    assert wrong["notUpdated"][created["id"]]["type"] == "invalidProperties"
    right = jmap.call("PushSubscription/set", {"update": {created["id"]: {"verificationCode": code}}}, using=[CORE])[1]
    assert right["updated"] == {created["id"]: None}

    # 3. Now a delivery is pushed, encrypted, with only the subscribed types.
    deliver(alice, "after verification")
    push = service.next()
    change = orjson.loads(keys.decrypt(push.body))
    account_id = jmap.account_id
    assert change["@type"] == "StateChange"
    assert set(change["changed"]) == {account_id}
    assert set(change["changed"][account_id]) == {"Email", "Mailbox"}
    assert Vapid02.verify(push.headers["authorization"])

    # 4. A 5xx is retried; the change still arrives.
    service.answers = [503]
    deliver(alice, "retried")
    first, second = service.next(), service.next(timeout=20)
    assert orjson.loads(keys.decrypt(first.body)) == orjson.loads(keys.decrypt(second.body))

    # 5. 410 Gone: the subscription is destroyed.
    service.answers = [410]
    deliver(alice, "gone")
    service.next()
    deadline = time.monotonic() + 15
    while PushSubscription.objects.filter(user=alice).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not PushSubscription.objects.filter(user=alice).exists()
    deliver(alice, "after gone")
    assert service.nothing(1.0)


def test_unencrypted_subscription_gets_json(alice, bob, service):
    jmap = JmapClient(alice)
    created = jmap.call(
        "PushSubscription/set", {"create": {"s": {"deviceClientId": "d", "url": service.url("plain")}}}, using=[CORE]
    )[1]["created"]["s"]
    push = service.next()
    assert push.headers["content-type"] == "application/json"
    assert "content-encoding" not in push.headers
    code = orjson.loads(push.body)["verificationCode"]
    jmap.call("PushSubscription/set", {"update": {created["id"]: {"verificationCode": code}}}, using=[CORE])
    # Bob's changes are not alice's business.
    deliver(bob, "bob only")
    assert service.nothing(1.0)
    deliver(alice, "alice")
    change = orjson.loads(service.next().body)
    assert set(change["changed"]) == {jmap.account_id}
    # A disabled user gets nothing more.
    from accounts.services import user_disable

    user_disable(user=alice)
    deliver(alice, "disabled")
    assert service.nothing(1.0)
