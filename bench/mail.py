"""The mail store benchmark: a generated corpus imported into one account over HTTP, and
what a mail client does with it, timed at mailbox sizes along the way.

Run with ``python3 tasks.py bench-mail [OPTIONS]`` (``--help`` lists them). It generates the
corpus of bench/mailcorpus.py (deterministic for a seed) into a spool file, prepares a fresh
PostgreSQL database whose name contains 'bench' (dropped and recreated), starts the production
serving path (granian WSGI, 4 workers x 2 threads) with Redis, and then through the JMAP API:

1. imports the messages into one account: each client uploads a batch of messages to
   /jmap/upload/{accountId}/ and stores them with one Email/import; several clients at once.
   Reported: messages/s per segment between checkpoints, and the CPU used by the server, by
   PostgreSQL and Redis, and by this client.
2. at each checkpoint (a number of messages in the store), after a VACUUM (ANALYZE) of the
   database (what autovacuum does on a live server), with one client, sequentially:
   - "open the inbox": Email/query (inMailbox inbox, receivedAt descending, collapseThreads,
     limit 50) and Email/get of the list properties by a result reference, in one request;
   - a full-text search: Email/query with a text filter of a word in ~1% of the messages,
     limit 50 (checked once against the corpus with calculateTotal);
   - one new message arrives (upload and Email/import, not timed here), then Email/changes
     since the state before it, and Mailbox/get of every mailbox, each timed on its own.

Results go to bench/results/mail-<date>.json and are printed as a table. The client runs on
the same machine and shares its CPUs with the server and the database.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench import common
from bench.common import bench_json, default_database, percentile
from bench.mailcorpus import SEARCH_WORD, MailCorpus
from bench.run import (
    BIN,
    CLOCK_TICKS,
    RESULTS,
    ROOT,
    SERVERS,
    Server,
    busy_ticks,
    command_line,
    cpu_ticks,
    database_for,
    fold_stacks,
    git_commit,
    peak_rss_mb,
    print_frames,
    service_ticks,
)

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]
LIST_PROPERTIES = [
    "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "size", "preview", "hasAttachment",
]  # fmt: skip
SERVER_SPEC = "granian-wsgi"

# Targets from the mail store issue, for this 2-core machine.
TARGET_IMPORT_PER_S = 300
TARGET_INBOX_P50_MS = 25
TARGET_CHANGES_P50_MS = 5
TARGET_SEARCH_P50_MS = 50


# --- the corpus spool ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Spooled:
    """A corpus message written to the spool file: where its octets are, and where it goes."""

    index: int
    offset: int
    size: int
    mailbox: str
    keywords: dict[str, bool]
    has_search_word: bool


def spool_corpus(path: Path, count: int, seed: int) -> tuple[list[Spooled], dict[str, Any]]:
    """Generate ``count`` messages into one file; return their places and corpus statistics."""
    started = time.perf_counter()
    spooled: list[Spooled] = []
    kinds: Counter[str] = Counter()
    charsets: Counter[str] = Counter()
    mailboxes: Counter[str] = Counter()
    replies = attachments = 0
    offset = 0
    with path.open("wb") as handle:
        for message in MailCorpus(seed=seed).messages(count):
            handle.write(message.raw)
            spooled.append(
                Spooled(
                    message.index,
                    offset,
                    len(message.raw),
                    message.mailbox,
                    message.keywords,
                    message.has_search_word,
                )
            )
            offset += len(message.raw)
            kinds[message.kind] += 1
            charsets[message.charset] += 1
            mailboxes[message.mailbox] += 1
            replies += message.is_reply
            attachments += message.attachments > 0
            if (message.index + 1) % 20000 == 0:
                print(f"  generated {message.index + 1} messages", flush=True)
    sizes = sorted(item.size for item in spooled)
    stats = {
        "seed": seed,
        "messages": count,
        "total_mb": round(offset / 1e6, 1),
        "size_bytes": {
            "min": sizes[0],
            "p50": sizes[len(sizes) // 2],
            "mean": round(offset / count),
            "p99": sizes[min(len(sizes) - 1, int(len(sizes) * 0.99))],
            "max": sizes[-1],
        },
        "over_1mb": sum(size > 1_048_576 for size in sizes),
        "kinds": dict(kinds),
        "charsets": dict(charsets),
        "mailboxes": dict(mailboxes),
        "replies": replies,
        "with_attachments": attachments,
        "with_search_word": sum(item.has_search_word for item in spooled),
        "search_word": SEARCH_WORD,
        "generation_s": round(time.perf_counter() - started, 1),
    }
    return spooled, stats


class Spool:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, item: Spooled) -> bytes:
        return os.pread(self.fd, item.size, item.offset)

    def close(self) -> None:
        os.close(self.fd)


# --- the JMAP client ----------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to the API as the bench user."""

    def __init__(self, base: str, auth: str, account_id: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": auth}, timeout=120)
        self.account_id = account_id

    def api(self, calls: list[list[Any]]) -> tuple[list[list[Any]], float]:
        """The methodResponses of a request, and its latency in milliseconds."""
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        started = time.perf_counter()
        response = self.http.post("/jmap/api/", content=body, headers={"Content-Type": "application/json"})
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        responses = response.json()["methodResponses"]
        for name, arguments, _ in responses:
            if name == "error":
                raise RuntimeError(f"method error: {json.dumps(arguments)[:500]}")
        return responses, elapsed

    def upload(self, data: bytes) -> str:
        response = self.http.post(
            f"/jmap/upload/{self.account_id}/", content=data, headers={"Content-Type": "message/rfc822"}
        )
        if response.status_code != 201:
            raise RuntimeError(f"upload: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()["blobId"]

    def import_messages(
        self, spool: Spool, items: list[Spooled], mailboxes: dict[str, str]
    ) -> tuple[dict[str, Any], float]:
        """Upload and import these messages in one Email/import; the response and its latency."""
        emails = {}
        for item in items:
            emails[f"m{item.index}"] = {
                "blobId": self.upload(spool.read(item)),
                "mailboxIds": {mailboxes[item.mailbox]: True},
                "keywords": item.keywords,
            }
        responses, elapsed = self.api([["Email/import", {"accountId": self.account_id, "emails": emails}, "i"]])
        result = responses[0][1]
        if result.get("notCreated"):
            raise RuntimeError(f"Email/import refused: {json.dumps(result['notCreated'])[:500]}")
        return result, elapsed

    def close(self) -> None:
        self.http.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(percentile(ordered, 0.9), 2),
        "p99_ms": round(percentile(ordered, 0.99), 2),
        "max_ms": round(ordered[-1], 2),
    }


# --- the phases ----------------------------------------------------------------------------------


def import_segment(
    base: str,
    auth: str,
    account_id: str,
    spool: Spool,
    items: list[Spooled],
    mailboxes: dict[str, str],
    *,
    clients: int,
    batch: int,
    server_pids: list[int],
) -> dict[str, Any]:
    """Import ``items`` with ``clients`` concurrent clients, ``batch`` messages a request."""
    batches = [items[start : start + batch] for start in range(0, len(items), batch)]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    position = [0]
    done = [0]
    last_report = [time.monotonic()]

    def work() -> None:
        client = Client(base, auth, account_id)
        try:
            while True:
                with lock:
                    if position[0] >= len(batches) or errors:
                        return
                    chunk = batches[position[0]]
                    position[0] += 1
                try:
                    _, elapsed = client.import_messages(spool, chunk, mailboxes)
                except Exception as exc:  # reported, and the run stops
                    with lock:
                        errors.append(str(exc))
                    return
                with lock:
                    latencies.append(elapsed)
                    done[0] += len(chunk)
                    if time.monotonic() - last_report[0] > 15:
                        last_report[0] = time.monotonic()
                        print(f"  imported {done[0]}/{len(items)} of this segment", flush=True)
        finally:
            client.close()

    own_before = resource.getrusage(resource.RUSAGE_SELF)
    ticks, db_ticks, machine_ticks = cpu_ticks(server_pids), service_ticks(), busy_ticks()
    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    if errors:
        raise RuntimeError(f"import failed: {errors[0]}")
    server_cpu = (cpu_ticks(server_pids) - ticks) / CLOCK_TICKS
    db_cpu = (service_ticks() - db_ticks) / CLOCK_TICKS
    machine_cpu = (busy_ticks() - machine_ticks) / CLOCK_TICKS
    client_cpu = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    return {
        "messages": len(items),
        "megabytes": round(sum(item.size for item in items) / 1e6, 1),
        "seconds": round(seconds, 1),
        "messages_per_s": round(len(items) / seconds, 1),
        "import_request": percentiles(latencies),
        "server_cpu_pct": round(100 * server_cpu / seconds),
        "db_cpu_pct": round(100 * db_cpu / seconds),
        "client_cpu_pct": round(100 * client_cpu / seconds),
        "other_cpu_pct": max(0, round(100 * (machine_cpu - server_cpu - db_cpu - client_cpu) / seconds)),
    }


def inbox_calls(account_id: str, inbox: str) -> list[list[Any]]:
    query = {
        "accountId": account_id,
        "filter": {"inMailbox": inbox},
        "sort": [{"property": "receivedAt", "isAscending": False}],
        "collapseThreads": True,
        "position": 0,
        "limit": 50,
    }
    get = {
        "accountId": account_id,
        "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
        "properties": LIST_PROPERTIES,
    }
    return [["Email/query", query, "q"], ["Email/get", get, "g"]]


def search_calls(account_id: str, total: bool = False) -> list[list[Any]]:
    query = {
        "accountId": account_id,
        "filter": {"text": SEARCH_WORD},
        "sort": [{"property": "receivedAt", "isAscending": False}],
        "limit": 50,
        "calculateTotal": total,
    }
    return [["Email/query", query, "s"]]


def timed(client: Client, calls: list[list[Any]], repeat: int, warmup: int) -> tuple[dict[str, Any], list]:
    """Send the same request ``warmup`` times untimed, then ``repeat`` times timed."""
    responses: list = []
    for _ in range(warmup):
        responses, _ = client.api(calls)
    samples = []
    for _ in range(repeat):
        responses, elapsed = client.api(calls)
        samples.append(elapsed)
    return percentiles(samples), responses


def measure_checkpoint(
    client: Client,
    spool: Spool,
    arrivals: list[Spooled],
    mailboxes: dict[str, str],
    expected_hits: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    account_id = client.account_id
    result: dict[str, Any] = {}
    checks: list[str] = []

    inbox, responses = timed(client, inbox_calls(account_id, mailboxes["inbox"]), args.repeat, 5)
    ids, found = responses[0][1]["ids"], responses[1][1]["list"]
    if len(ids) != 50 or len(found) != 50 or any(set(LIST_PROPERTIES) - set(email) for email in found):
        checks.append(f"inbox: {len(ids)} ids, {len(found)} emails (expected 50 with every list property)")
    if len({email["threadId"] for email in found}) != len(found):
        checks.append("inbox: collapseThreads returned two emails of one thread")
    result["inbox"] = inbox

    search, responses = timed(client, search_calls(account_id), args.search_repeat, 3)
    result["search"] = search
    responses, _ = client.api(search_calls(account_id, total=True))
    hits = responses[0][1]["total"]
    result["search"]["total"] = hits
    result["search"]["expected_total"] = expected_hits
    if hits != expected_hits:
        checks.append(f"search: total {hits}, but {expected_hits} messages contain {SEARCH_WORD!r}")

    responses, _ = client.api([["Email/get", {"accountId": account_id, "ids": []}, "s"]])
    state = responses[0][1]["state"]
    changes_ms: list[float] = []
    mailbox_ms: list[float] = []
    deliver_ms: list[float] = []
    for item in arrivals:
        item = replace(item, mailbox="inbox", keywords={})  # new mail: in the inbox, unread
        started = time.perf_counter()
        imported, _ = client.import_messages(spool, [item], mailboxes)
        deliver_ms.append((time.perf_counter() - started) * 1000)
        new_id = imported["created"][f"m{item.index}"]["id"]
        calls = [["Email/changes", {"accountId": account_id, "sinceState": state}, "c"]]
        responses, elapsed = client.api(calls)
        changes_ms.append(elapsed)
        changed = responses[0][1]
        if changed["created"] != [new_id] or changed["hasMoreChanges"]:
            checks.append(f"Email/changes: created {changed['created']}, expected [{new_id}]")
        state = changed["newState"]
        responses, elapsed = client.api([["Mailbox/get", {"accountId": account_id, "ids": None}, "m"]])
        mailbox_ms.append(elapsed)
        if len(responses[0][1]["list"]) != len(mailboxes):
            checks.append("Mailbox/get: not every mailbox listed")
    result["email_changes"] = percentiles(changes_ms)
    result["mailbox_get"] = percentiles(mailbox_ms)
    result["deliver_one"] = percentiles(deliver_ms)
    result["checks"] = sorted(set(checks)) or ["ok"]
    return result


# --- profiling -------------------------------------------------------------------------------------


class Profiler:
    """py-spy on every process of the server, aggregated: where the server's CPU time goes."""

    def __init__(self, pids: list[int], seconds: int, work: Path, label: str) -> None:
        self.label = label
        self.spies = []
        for pid in pids:
            path = work / f"spy-{label}-{pid}.txt"
            argv = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(seconds)]
            argv += ["--rate", "200", "--format", "raw", "--function", "--nonblocking", "--output", str(path)]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.spies.append((spy, path))

    def report(self) -> dict[str, Any]:
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for spy, path in self.spies:
            try:
                spy.wait(timeout=120)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if not path.exists():
                continue
            total += fold_stacks(path.read_text(), inclusive, own)
        if total == 0:
            return {"label": self.label, "error": "py-spy recorded nothing"}
        return {
            "label": self.label,
            "samples": total,
            "inclusive": [(frame, round(100 * n / total, 1)) for frame, n in inclusive.most_common(45)],
            "self": [(frame, round(100 * n / total, 1)) for frame, n in own.most_common(25)],
        }


# --- the run --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tasks.py bench-mail", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages to import (default 100000)")
    parser.add_argument(
        "--checkpoints",
        default="10000",
        help="comma-separated store sizes at which to measure, besides --messages (default 10000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent import clients (default 8)")
    parser.add_argument("--batch", type=int, default=10, help="messages per Email/import request (default 10)")
    parser.add_argument("--repeat", type=int, default=200, help="timed 'open the inbox' requests (default 200)")
    parser.add_argument("--search-repeat", type=int, default=100, help="timed searches (default 100)")
    parser.add_argument("--arrivals", type=int, default=50, help="new messages per checkpoint (default 50)")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="server processes (default 4: two per core, as requests wait on the database)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads per WSGI worker (default 2)")
    parser.add_argument(
        "--database",
        default=default_database("groupware_mail_bench"),
        help="postgres://.../NAME with 'bench' in NAME: dropped and recreated "
        "(default: DATABASE_URL's server, else the local one, database groupware_mail_bench)",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"),
        help="REDIS_URL for the server (default REDIS_URL, else the local Redis, database 5)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="measure without running VACUUM (ANALYZE) at each checkpoint first",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy during import and the last checkpoint's queries",
    )
    parser.add_argument("--profile-seconds", type=int, default=20, help="seconds of import to profile (default 20)")
    parser.add_argument("--output", type=Path, help="result file (default bench/results/mail-<date>.json)")
    args = parser.parse_args(argv)
    if not args.database.startswith(("postgres://", "postgresql://")):
        parser.error("--database must be a postgres:// URL (the mail benchmark measures PostgreSQL)")
    return args


def checkpoints_of(args: argparse.Namespace) -> list[int]:
    wanted = {int(value) for value in args.checkpoints.split(",") if value.strip()}
    return sorted({value for value in wanted if 0 < value < args.messages} | {args.messages})


def server_environment(args: argparse.Namespace, work: Path, database_url: str) -> dict[str, str]:
    return common.server_environment(
        work,
        DATABASE_URL=database_url,
        REDIS_URL=args.redis,
        # One user runs every client: the per-user concurrency limits are not what is measured.
        JMAP_MAX_CONCURRENT_REQUESTS="10000",
        JMAP_MAX_CONCURRENT_UPLOAD="10000",
    )


def prepare(env: dict[str, str]) -> dict[str, Any]:
    password = secrets.token_urlsafe(16)
    prepared = bench_json("bench.setup_data", env={**env, "BENCH_PASSWORD": password}, prog="bench-mail")
    return {**prepared, "password": password}


def mailbox_ids(client: Client) -> dict[str, str]:
    """role -> Mailbox id; creates inbox, archive and sent if the account lacks them."""
    responses, _ = client.api([["Mailbox/get", {"accountId": client.account_id, "ids": None}, "m"]])
    found = {mailbox["role"]: mailbox["id"] for mailbox in responses[0][1]["list"] if mailbox["role"]}
    missing = {role: {"name": role.title(), "role": role} for role in ("inbox", "archive", "sent") if role not in found}
    if missing:
        responses, _ = client.api([["Mailbox/set", {"accountId": client.account_id, "create": missing}, "s"]])
        created = responses[0][1].get("created") or {}
        if set(created) != set(missing):
            raise SystemExit(f"bench-mail: could not create mailboxes: {responses[0][1]}")
        found.update({role: item["id"] for role, item in created.items()})
    return {role: found[role] for role in ("inbox", "archive", "sent")} | {
        role: found[role] for role in found if role not in ("inbox", "archive", "sent")
    }


def storage(database_url: str, data_dir: Path) -> dict[str, float]:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url) as connection:
        database_bytes = connection.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]
    blob_bytes = sum(path.stat().st_size for path in data_dir.rglob("*") if path.is_file())
    return {"database_mb": round(database_bytes / 1e6, 1), "data_dir_mb": round(blob_bytes / 1e6, 1)}


def vacuum_analyze(database_url: str) -> dict[str, Any]:
    """VACUUM (ANALYZE) the bench database, as autovacuum would have by the time a real
    mailbox reaches this size: without statistics the planner estimates a few rows per
    table and picks plans that read all of them (with autovacuum off, as on the
    development machine, the tables are never analyzed at all)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        autovacuum = connection.execute("SHOW autovacuum").fetchone()[0]
        started = time.perf_counter()
        connection.execute("VACUUM (ANALYZE)")
        seconds = time.perf_counter() - started
    return {"autovacuum": autovacuum, "vacuum_analyze_s": round(seconds, 1)}


def run(args: argparse.Namespace, result: dict[str, Any], work: Path) -> None:
    checkpoints = checkpoints_of(args)
    arrival_count = args.arrivals * len(checkpoints)
    print(f"bench-mail: generating {args.messages + arrival_count} messages (seed {args.seed})", flush=True)
    spooled, result["corpus"] = spool_corpus(work / "corpus.bin", args.messages + arrival_count, args.seed)
    corpus = result["corpus"]
    print(
        f"  {corpus['total_mb']} MB in {corpus['generation_s']} s; sizes {corpus['size_bytes']}; "
        f"{corpus['with_search_word']} contain {SEARCH_WORD!r}",
        flush=True,
    )
    # The arrivals at each checkpoint are the messages that come next in the stream.
    imports: list[list[Spooled]] = []
    arrivals: list[list[Spooled]] = []
    cursor = stored = 0
    for checkpoint in checkpoints:
        take = checkpoint - stored
        imports.append(spooled[cursor : cursor + take])
        arrivals.append(spooled[cursor + take : cursor + take + args.arrivals])
        cursor += take + args.arrivals
        stored = checkpoint + args.arrivals

    database_url = database_for(argparse.Namespace(database=args.database))
    env = server_environment(args, work, database_url)
    setup = prepare(env)
    auth = "Basic " + base64.b64encode(f"{setup['email']}:{setup['password']}".encode()).decode()
    spec = SERVERS[SERVER_SPEC]
    server = Server(spec, env, args.workers, args.threads, work / "server.log")
    result["server"] = {"description": spec.description, "commands": server.commands}
    spool = Spool(work / "corpus.bin")
    try:
        server.wait_ready()
        client = Client(server.base, auth, setup["account_id"])
        for _ in range(4 * args.workers):  # every worker verifies the password once
            client.api([["Core/echo", {}, "e"]])
        mailboxes = mailbox_ids(client)
        pids = server.pids()
        hits = 0
        in_store = 0
        for number, checkpoint in enumerate(checkpoints):
            items = imports[number]
            print(f"\n== importing {len(items)} messages ({in_store} -> {checkpoint})", flush=True)
            last = number == len(checkpoints) - 1
            profiler = None
            if args.profile and last:
                profiler = Profiler(pids, args.profile_seconds, work, "import")
            segment = import_segment(
                server.base,
                auth,
                setup["account_id"],
                spool,
                items,
                mailboxes,
                clients=args.clients,
                batch=args.batch,
                server_pids=pids,
            )
            if profiler is not None:
                result.setdefault("profiles", []).append(profiler.report())
            segment["from"], segment["to"] = in_store, checkpoint
            result["imports"].append(segment)
            print(
                f"  {segment['messages_per_s']} messages/s ({segment['seconds']} s); server CPU "
                f"{segment['server_cpu_pct']}%, db {segment['db_cpu_pct']}%, client {segment['client_cpu_pct']}%",
                flush=True,
            )
            hits += sum(item.has_search_word for item in items)
            maintenance: dict[str, Any] = {"vacuum_analyze_s": None}
            if not args.no_analyze:
                maintenance = vacuum_analyze(database_url)
                print(
                    f"== VACUUM (ANALYZE): {maintenance['vacuum_analyze_s']} s "
                    f"(autovacuum is {maintenance['autovacuum']} on this server)",
                    flush=True,
                )
            print(f"== measuring at {checkpoint} messages", flush=True)
            if args.profile and last:
                profiler = Profiler(pids, 15, work, "queries")
            measured = measure_checkpoint(client, spool, arrivals[number], mailboxes, hits, args)
            if args.profile and last and profiler is not None:
                result.setdefault("profiles", []).append(profiler.report())
            hits += sum(item.has_search_word for item in arrivals[number])
            in_store = checkpoint + len(arrivals[number])
            measured.update(messages=checkpoint, **maintenance, **storage(database_url, work / "data"))
            result["checkpoints"].append(measured)
            print(checkpoint_line(measured), flush=True)
        client.close()
        result["processes"] = [
            {"pid": pid, "command": command_line(pid), "peak_rss_mb": round(peak_rss_mb(pid) or 0, 1)}
            for pid in server.pids()
        ]
    finally:
        spool.close()
        server.stop()


def checkpoint_line(measured: dict[str, Any]) -> str:
    return (
        f"  {measured['messages']} messages: inbox p50 {measured['inbox']['p50_ms']} ms "
        f"(p99 {measured['inbox']['p99_ms']}), search p50 {measured['search']['p50_ms']} ms "
        f"({measured['search']['total']} hits), Email/changes p50 {measured['email_changes']['p50_ms']} ms, "
        f"Mailbox/get p50 {measured['mailbox_get']['p50_ms']} ms; checks: {', '.join(measured['checks'])}"
    )


def summary(result: dict[str, Any]) -> dict[str, Any]:
    imports = result["imports"]
    checkpoints = result["checkpoints"]
    if not imports or not checkpoints:
        return {}
    messages = sum(segment["messages"] for segment in imports)
    seconds = sum(segment["seconds"] for segment in imports)
    rate = round(messages / seconds, 1) if seconds else 0
    return {
        "import_messages_per_s": rate,
        "import_target_met": rate >= TARGET_IMPORT_PER_S,
        "inbox_target_met": all(c["inbox"]["p50_ms"] < TARGET_INBOX_P50_MS for c in checkpoints),
        "changes_target_met": all(
            c["email_changes"]["p50_ms"] < TARGET_CHANGES_P50_MS and c["mailbox_get"]["p50_ms"] < TARGET_CHANGES_P50_MS
            for c in checkpoints
        ),
        "search_target_met": all(c["search"]["p50_ms"] < TARGET_SEARCH_P50_MS for c in checkpoints),
        "checks_ok": all(c["checks"] == ["ok"] for c in checkpoints),
    }


def print_table(result: dict[str, Any]) -> None:
    corpus = result.get("corpus", {})
    print(
        f"\nMail benchmark {result['date']}  commit {result['commit']}  {result['server_setup']}  "
        f"{result['clients']} import clients x {result['batch']} messages per Email/import  "
        f"corpus seed {corpus.get('seed')}: {corpus.get('messages')} messages, {corpus.get('total_mb')} MB"
    )
    header = (
        f"{'messages':>9} {'import msg/s':>12} {'inbox p50/p99 ms':>17} {'changes p50/p99':>16} "
        f"{'Mailbox/get p50/p99':>20} {'search p50/p99':>15} {'hits':>6} {'db MB':>7}  checks"
    )
    print(header)
    print("-" * len(header))
    for segment, measured in zip(result["imports"], result["checkpoints"], strict=False):
        print(
            f"{measured['messages']:>9} {segment['messages_per_s']:>12.1f} "
            f"{measured['inbox']['p50_ms']:>8.2f}/{measured['inbox']['p99_ms']:<8.2f} "
            f"{measured['email_changes']['p50_ms']:>7.2f}/{measured['email_changes']['p99_ms']:<8.2f} "
            f"{measured['mailbox_get']['p50_ms']:>10.2f}/{measured['mailbox_get']['p99_ms']:<9.2f} "
            f"{measured['search']['p50_ms']:>7.2f}/{measured['search']['p99_ms']:<7.2f} "
            f"{measured['search']['total']:>6} {measured['database_mb']:>7.0f}  {', '.join(measured['checks'])}"
        )
    for segment in result["imports"]:
        print(
            f"import {segment['from']}->{segment['to']}: {segment['messages_per_s']} msg/s, "
            f"{segment['megabytes']} MB in {segment['seconds']} s; Email/import request p50 "
            f"{segment['import_request']['p50_ms']} ms; CPU % of one core: server {segment['server_cpu_pct']}, "
            f"PostgreSQL+Redis {segment['db_cpu_pct']}, client {segment['client_cpu_pct']}, "
            f"other {segment['other_cpu_pct']}"
        )
    row = result.get("summary") or {}
    if row:

        def verdict(met: bool) -> str:
            return "met" if met else "missed"

        print(
            f"\nTargets: import >= {TARGET_IMPORT_PER_S} msg/s [{verdict(row['import_target_met'])}: "
            f"{row['import_messages_per_s']}]; inbox p50 < {TARGET_INBOX_P50_MS} ms "
            f"[{verdict(row['inbox_target_met'])}]; Email/changes and Mailbox/get p50 < {TARGET_CHANGES_P50_MS} ms "
            f"[{verdict(row['changes_target_met'])}]; search p50 < {TARGET_SEARCH_P50_MS} ms "
            f"[{verdict(row['search_target_met'])}]; answers checked [{'ok' if row['checks_ok'] else 'FAILED'}]"
        )
    for profile in result.get("profiles", []):
        if "inclusive" not in profile:
            print(f"\nProfile {profile['label']}: {profile.get('error')}")
            continue
        print(f"\nProfile of the server during {profile['label']} ({profile['samples']} samples), inclusive %:")
        print_frames(profile)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="groupware-bench-mail-"))
    now = datetime.datetime.now(datetime.UTC)
    result: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": "python3 tasks.py bench-mail " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, python {platform.python_version()}",
        "server_setup": f"granian WSGI, {args.workers} workers x {args.threads} threads, PostgreSQL, Redis",
        "database": urlunsplit(urlsplit(args.database)._replace(netloc=urlsplit(args.database).hostname or "")),
        "clients": args.clients,
        "batch": args.batch,
        "repeat": {"inbox": args.repeat, "search": args.search_repeat, "arrivals": args.arrivals},
        "load_average_before": os.getloadavg(),
        "imports": [],
        "checkpoints": [],
    }
    failed = None
    try:
        run(args, result, work)
    except Exception as exc:  # recorded with whatever was measured
        failed = exc
        result["error"] = str(exc)
        print(f"bench-mail: error: {exc}", flush=True)
    finally:
        result["summary"] = summary(result)
        output = args.output or RESULTS / f"mail-{now:%Y-%m-%d}.json"
        if args.output is None:
            counter = 2
            while output.exists():
                output = RESULTS / f"mail-{now:%Y-%m-%d}-{counter}.json"
                counter += 1
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print_table(result)
        # The spool and the blobs are gigabytes at full size: keep only the server log.
        (work / "corpus.bin").unlink(missing_ok=True)
        shutil.rmtree(work / "data", ignore_errors=True)
        shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
        print(f"\nResults written to {shown}; server log in {work}")
    if failed is not None:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
