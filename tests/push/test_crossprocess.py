"""Push across processes: a daphne server process holds a WebSocket (the `websockets`
library) and an EventSource stream (httpx); the changes are made by a Celery worker process
and by a separate `manage.py shell` process. Redis carries them between the processes.

Needs REDIS_URL and a database other processes can open (PostgreSQL): CI's PostgreSQL and
Redis run covers it; the embedded run skips it with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from websockets.sync.client import connect

from accounts.models import Account
from tests.celery_probe import deliver_here
from tests.conftest import PASSWORD
from tests.interop.server import free_port
from tests.test_celery_worker import Worker, database_url_for_worker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def process_env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url}


@pytest.fixture(scope="module")
def database_url(django_db_setup, django_db_blocker):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: no channel layer between processes; CI's Redis run covers this")
    url = database_url_for_worker()
    if url is None:
        pytest.skip("in-memory SQLite can't be opened by other processes; CI's PostgreSQL run covers this")
    return url


@pytest.fixture(scope="module")
def daphne(database_url, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "groupware.asgi:application"],
            cwd=ROOT,
            env=process_env(database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/.well-known/jmap", timeout=2)
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"daphne did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)
    yield port
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def worker(database_url):
    running = Worker(f"test-xproc-{uuid.uuid4().hex[:12]}", database_url)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


class SseReader:
    """Reads an event stream in a thread; parsed events land in a queue."""

    def __init__(self, url: str, authorization: str) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.opened = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self.thread = threading.Thread(target=self._read, args=(url, authorization), daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the event stream did not open"

    def _read(self, url: str, authorization: str) -> None:
        try:
            with self.client.stream("GET", url, headers={"Authorization": authorization}) as response:
                assert response.status_code == 200
                self.opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "data" in fields:
                            fields["received"] = str(time.monotonic())
                            self.events.put(fields)
                        fields = {}
                        continue
                    name, _, value = line.partition(": ")
                    fields[name] = value
        except (httpx.HTTPError, RuntimeError):
            pass

    def close(self) -> None:
        self.client.close()


def state_for(account_id: str, received: dict) -> str | None:
    return received.get("changed", {}).get(account_id, {}).get("Email")


def test_changes_from_other_processes_reach_websocket_and_eventsource(alice, daphne, worker, database_url):
    account = Account.objects.get(owner=alice, is_personal=True)
    authorization = "Basic " + base64.b64encode(f"{alice.email}:{PASSWORD}".encode()).decode()
    base = f"127.0.0.1:{daphne}"
    session = httpx.get(f"http://{base}/.well-known/jmap", headers={"Authorization": authorization}).json()
    ws_url = session["capabilities"]["urn:ietf:params:jmap:websocket"]["url"]
    assert ws_url == f"ws://{base}/jmap/push/websocket/"
    sse = SseReader(f"http://{base}/jmap/push/eventsource/?types=Email&closeafter=no&ping=0", authorization)
    with connect(ws_url, subprotocols=["jmap"], additional_headers={"Authorization": authorization}) as socket:
        assert socket.subprotocol == "jmap"
        socket.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}))
        # A round trip: messages are handled in order, so push is on once this is answered.
        echo = {"@type": "Request", "id": "e", "using": ["urn:ietf:params:jmap:core"], "methodCalls": []}
        socket.send(json.dumps(echo))
        assert json.loads(socket.recv(timeout=20))["requestId"] == "e"

        # 1. A Celery worker process stores a message.
        deliver_here.apply_async(args=[account.pk, "from-worker"], queue=worker.queue)
        pushed = json.loads(socket.recv(timeout=20))
        assert pushed["@type"] == "StateChange"
        worker_state = state_for(account.jmap_id, pushed)
        assert worker_state is not None
        event = sse.events.get(timeout=20)
        assert event["event"] == "state"
        assert state_for(account.jmap_id, json.loads(event["data"])) == worker_state

        # 2. A separate management-command process stores another.
        script = (
            "from accounts.models import Account; from tests.mail.factories import ingest, message; "
            f"ingest(Account.objects.get(pk={account.pk}), "
            "message(subject='from-shell', message_id='<shell@example.com>'))"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=process_env(database_url),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        pushed = json.loads(socket.recv(timeout=20))
        shell_state = state_for(account.jmap_id, pushed)
        assert int(shell_state) > int(worker_state)
        event = sse.events.get(timeout=20)
        assert state_for(account.jmap_id, json.loads(event["data"])) == shell_state

        # 3. A JMAP request over the same socket sees the state the push announced.
        socket.send(
            json.dumps(
                {
                    "@type": "Request",
                    "id": "get",
                    "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                    "methodCalls": [["Email/get", {"accountId": account.jmap_id, "ids": []}, "g"]],
                }
            )
        )
        response = json.loads(socket.recv(timeout=20))
        assert response["requestId"] == "get"
        assert response["methodResponses"][0][1]["state"] == shell_state
    sse.close()
