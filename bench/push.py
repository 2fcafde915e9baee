"""The push benchmark: StateChange latency, idle WebSocket fan-out, WebSocket vs HTTP requests.

Run with ``python3 tasks.py bench-push [OPTIONS]`` (``--help``). It recreates a PostgreSQL
database whose name contains ``bench``, starts the push process as in production (daphne,
``DATABASE_CONN_MAX_AGE=0``) and the HTTP process (granian WSGI), with Redis between them
and this process, and measures:

1. latency from the commit of a change to the StateChange arriving at a WebSocket client and
   at an EventSource client, for ``Email/set`` (the JMAP engine) and for a delivery
   (``email_ingest``, what the LMTP process calls). The changes are made in this process,
   which is a third process writing to the database and publishing through Redis; the commit
   time is taken in a ``transaction.on_commit`` callback registered before the change's own
   (so it includes publishing); clients run here too, on the same clock;
2. ``--connections`` idle WebSocket connections (push enabled) on one daphne process: its
   resident memory per connection, and the time from one commit until every connection got it;
3. the same JMAP request (``Mailbox/get``) over one WebSocket and over HTTP keep-alive.

Clients and servers share the machine's CPUs. Results go to bench/results/push-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import connect

from bench.common import default_database
from bench.mail import percentiles, prepare, server_environment
from bench.run import RESULTS, SERVERS, Server, database_for, git_commit

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
TARGET_P50_MS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tasks.py bench-push", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", default=default_database("groupware_push_bench"), help="postgres:// URL, name containing 'bench'"
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6")
    parser.add_argument("--writes", type=int, default=200, help="changes per latency scenario")
    parser.add_argument("--gap", type=float, default=0.08, help="seconds between changes (above the coalescing window)")
    parser.add_argument("--connections", type=int, default=2000, help="idle WebSocket connections")
    parser.add_argument("--requests", type=int, default=1000, help="JMAP requests per transport")
    return parser.parse_args(argv)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- writes made in this process ------------------------------------------------------------------


class Writer:
    """Makes changes through the real services, returning (commit time, new Email state)."""

    def __init__(self, email: str) -> None:
        from accounts.models import User
        from accounts.services import primary_account

        self.user = User.objects.get(email=email)
        self.account = primary_account(self.user)
        from groupware.mail.models import Mailbox

        self.inbox = Mailbox.objects.get(account=self.account, role="inbox").pk
        self.drafts_id = None
        self.count = 0

    def write(self, kind: str) -> tuple[float, str]:
        from django.db import transaction

        from groupware.core.changes import type_state
        from groupware.mail.services.emails import email_ingest
        from jmap import engine

        self.count += 1
        stamp: dict[str, float] = {}
        with transaction.atomic():
            transaction.on_commit(lambda: stamp.setdefault("commit", time.monotonic()))
            if kind == "delivery":
                raw = (
                    f"From: a@example.com\r\nTo: bench@example.com\r\nSubject: push {self.count}\r\n"
                    f"Message-ID: <push{self.count}.{time.time()}@example.com>\r\n\r\nHello.\r\n"
                ).encode()
                email_ingest(account=self.account, raw=raw, mailbox_ids=[self.inbox], keywords={})
            else:
                from groupware.mail.services.counts import mailbox_id

                create = {"mailboxIds": {mailbox_id(self.inbox): True}, "subject": f"set {self.count}"}
                request = {
                    "using": [CORE, MAIL],
                    "methodCalls": [["Email/set", {"accountId": self.account.jmap_id, "create": {"c": create}}, "s"]],
                }
                response = engine.process(self.user, request, session_state="")
                assert "created" in response["methodResponses"][0][1], response
        self.account.refresh_from_db()
        return stamp["commit"], type_state(self.account, "Email")


# --- clients ----------------------------------------------------------------------------------------


class Arrivals:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def note(self, change: dict[str, Any], account_id: str) -> None:
        state = change.get("changed", {}).get(account_id, {}).get("Email")
        if state is not None:
            self.times.setdefault(state, time.monotonic())


async def websocket_client(
    url: str, headers: dict[str, str], account_id: str, arrivals: Arrivals, ready: asyncio.Event
):
    async with connect(url, subprotocols=["jmap"], additional_headers=headers, max_queue=None) as socket:
        await socket.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}))
        ready.set()
        async for text in socket:
            arrivals.note(json.loads(text), account_id)


async def eventsource_client(
    url: str, headers: dict[str, str], account_id: str, arrivals: Arrivals, ready: asyncio.Event
):
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        async with client.stream("GET", url, headers=headers) as response:
            ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    arrivals.note(json.loads(line[6:]), account_id)


async def latency(args, writer: Writer, push_base: str, headers: dict[str, str], account_id: str) -> dict[str, Any]:
    ws_arrivals, sse_arrivals = Arrivals(), Arrivals()
    ready_ws, ready_sse = asyncio.Event(), asyncio.Event()
    ws_url = push_base.replace("http", "ws", 1) + "/jmap/push/websocket/"
    sse_url = push_base + "/jmap/push/eventsource/?types=*&closeafter=no&ping=0"
    tasks = [
        asyncio.create_task(websocket_client(ws_url, headers, account_id, ws_arrivals, ready_ws)),
        asyncio.create_task(eventsource_client(sse_url, headers, account_id, sse_arrivals, ready_sse)),
    ]
    await asyncio.wait_for(asyncio.gather(ready_ws.wait(), ready_sse.wait()), 30)
    await asyncio.sleep(0.5)
    results: dict[str, Any] = {}
    for kind in ("Email/set", "delivery"):
        commits: list[tuple[float, str]] = []
        for _ in range(args.writes):
            commits.append(await asyncio.to_thread(writer.write, "delivery" if kind == "delivery" else "set"))
            await asyncio.sleep(args.gap)
        await asyncio.sleep(1.0)
        for client, arrivals in (("WebSocket", ws_arrivals), ("EventSource", sse_arrivals)):
            samples = [
                (arrivals.times[state] - committed) * 1000 for committed, state in commits if state in arrivals.times
            ]
            results[f"{kind} -> {client}"] = {**percentiles(samples), "missing": len(commits) - len(samples)}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def fanout(args, writer: Writer, push: Server, headers: dict[str, str], account_id: str) -> dict[str, Any]:
    ws_url = push.base.replace("http", "ws", 1) + "/jmap/push/websocket/"
    pid = push.processes[0].pid
    before = rss_mb(pid)
    sockets = []
    opened = time.monotonic()
    limit = asyncio.Semaphore(20)
    failed_attempts = 0

    async def open_one():
        nonlocal failed_attempts
        async with limit:
            for attempt in range(5):
                try:
                    socket = await connect(
                        ws_url, subprotocols=["jmap"], additional_headers=headers, max_queue=None, open_timeout=60
                    )
                    break
                except (OSError, websockets.exceptions.InvalidHandshake):
                    # A client would reconnect: count it, back off, try again.
                    failed_attempts += 1
                    await asyncio.sleep(0.5 * (attempt + 1))
            else:
                return
            await socket.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}))
            sockets.append(socket)

    await asyncio.gather(*(open_one() for _ in range(args.connections)))
    open_seconds = time.monotonic() - opened
    await asyncio.sleep(3)
    after = rss_mb(pid)
    arrivals: list[float] = []

    async def wait_one(socket):
        text = await asyncio.wait_for(socket.recv(), 60)
        arrivals.append(time.monotonic())
        assert json.loads(text)["changed"][account_id]["Email"]

    waiting = [asyncio.create_task(wait_one(socket)) for socket in sockets]
    await asyncio.sleep(0.5)
    committed, _ = await asyncio.to_thread(writer.write, "delivery")
    await asyncio.gather(*waiting, return_exceptions=True)
    delays = sorted((moment - committed) * 1000 for moment in arrivals)
    for socket in sockets:
        await socket.close()
    return {
        "connections": len(sockets),
        "failed_handshakes": failed_attempts,
        "open_seconds": round(open_seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "kb_per_connection": round((after - before) * 1024 / max(1, len(sockets)), 1),
        "received": len(delays),
        "first_ms": round(delays[0], 1) if delays else None,
        "p50_ms": round(statistics.median(delays), 1) if delays else None,
        "all_ms": round(delays[-1], 1) if delays else None,
    }


async def request_rates(args, push: Server, http: Server, headers: dict[str, str], account_id: str) -> dict[str, Any]:
    request = {"using": [CORE, MAIL], "methodCalls": [["Mailbox/get", {"accountId": account_id, "ids": None}, "m"]]}
    body = json.dumps(request).encode()
    results: dict[str, Any] = {}
    ws_url = push.base.replace("http", "ws", 1) + "/jmap/push/websocket/"
    async with connect(ws_url, subprotocols=["jmap"], additional_headers=headers, max_queue=None) as socket:
        for in_flight in (1, 8):
            for phase, count in (("warmup", 50), ("measure", args.requests)):
                started = time.monotonic()
                sent = received = 0
                while received < count:
                    while sent < count and sent - received < in_flight:
                        await socket.send(json.dumps({"@type": "Request", "id": str(sent), **request}))
                        sent += 1
                    answer = json.loads(await socket.recv())
                    assert answer["@type"] == "Response", answer
                    received += 1
                if phase == "measure":
                    results[f"WebSocket (daphne), {in_flight} in flight"] = round(count / (time.monotonic() - started))
    for name, server in (("HTTP keep-alive (daphne)", push), ("HTTP keep-alive (granian WSGI)", http)):
        async with httpx.AsyncClient(
            base_url=server.base, headers={**headers, "Content-Type": "application/json"}
        ) as client:
            for phase, count in (("warmup", 50), ("measure", args.requests)):
                started = time.monotonic()
                for _ in range(count):
                    response = await client.post("/jmap/api/", content=body)
                    assert response.status_code == 200, response.text
                if phase == "measure":
                    results[f"{name}, 1 in flight"] = round(count / (time.monotonic() - started))
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections * 2 + 1000)), hard))
    work = Path(tempfile.mkdtemp(prefix="groupware-bench-push-"))
    database_url = database_for(args)
    env = server_environment(args, work, database_url)
    prepared = prepare(env)
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{prepared['email']}:{prepared['password']}".encode()).decode()
    }
    push = Server(SERVERS["daphne"], env, workers=1, threads=4, log=work / "daphne.log")
    http = Server(SERVERS["granian-wsgi"], env, workers=1, threads=4, log=work / "granian.log")
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": {key: value for key, value in vars(args).items() if key != "database"},
    }
    try:
        push.wait_ready()
        http.wait_ready()
        os.environ.update(env)
        import django

        django.setup()
        writer = Writer(prepared["email"])
        account_id = prepared["account_id"]
        print("1. commit -> StateChange latency ...", flush=True)
        result["latency"] = asyncio.run(latency(args, writer, push.base, headers, account_id))
        print(f"2. {args.connections} idle WebSocket connections ...", flush=True)
        result["fanout"] = asyncio.run(fanout(args, writer, push, headers, account_id))
        print("3. requests over WebSocket and HTTP ...", flush=True)
        result["requests_per_second"] = asyncio.run(request_rates(args, push, http, headers, account_id))
    finally:
        push.stop()
        http.stop()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"push-{result['date'][:10]}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"\nwritten to {path.relative_to(RESULTS.parent.parent)}")


def print_report(result: dict[str, Any]) -> None:
    print("\n| path | n | p50 ms | p90 ms | p99 ms | max ms | missing |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name, row in result["latency"].items():
        cells = [row["n"], row["p50_ms"], row["p90_ms"], row["p99_ms"], row["max_ms"], row["missing"]]
        print(f"| {name} | " + " | ".join(str(cell) for cell in cells) + " |")
    print(f"\ntarget: p50 under {TARGET_P50_MS} ms")
    fan = result["fanout"]
    print(
        f"\n{fan['connections']} idle WebSocket connections (opened in {fan['open_seconds']} s, "
        f"{fan['failed_handshakes']} handshakes failed and were retried): daphne RSS "
        f"{fan['rss_before_mb']} -> {fan['rss_after_mb']} MB, {fan['kb_per_connection']} KB per connection; "
        f"one change reached {fan['received']} of them: "
        f"first {fan['first_ms']} ms, half {fan['p50_ms']} ms, all {fan['all_ms']} ms"
    )
    print("\n| transport | requests/s |\n| --- | --- |")
    for name, value in result["requests_per_second"].items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
