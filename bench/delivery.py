"""Delivery benchmark: messages over LMTP into users with a 20-rule Sieve script.

    python3 tasks.py bench-delivery                         # 10,000 messages, 4 connections
    python3 tasks.py bench-delivery --kill-every 3          # the same, SIGKILL of serve_mail every 3 s

Drops and recreates a PostgreSQL database whose name contains "bench" (default
groupware_delivery_bench on the server of DATABASE_URL, else on 127.0.0.1), prepares users
with the Sieve script of bench/delivery_setup.py, starts ``manage.py serve_mail`` (LMTP
only) and sends the messages of bench/mailcorpus.py from 4 LMTP connections (smtplib), each
retrying a message until it is answered 250, as a sending MTA does. Recipients rotate over
the users. Prints messages/s and per-message latency percentiles (from the start of a
message's first attempt to its 250) and then checks the store: with --kill-every, the
number of Emails stored must equal the number of messages answered 250, with no message
stored twice. Without --kill-every it also reports the CPU time spent per message over the
sending, by serve_mail and its workers, by PostgreSQL, by the sender and by the whole machine
(this machine's speed drifts: CPU per message compares runs better than the rate alone).
Results go to bench/results/delivery-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import PYTHON, ROOT, bench_json, default_database, percentile, recreate_database, server_environment
from bench.mailcorpus import MailCorpus
from bench.run import CLOCK_TICKS, busy_ticks, cpu_ticks, service_ticks, tree

PORT_LINE = re.compile(r"serve_mail: LMTP listening on [\d.]+:(\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tasks.py bench-delivery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--users", type=int, default=8, help="recipients rotate over this many users")
    parser.add_argument("--processes", type=int, default=1, help="serve_mail processes sharing the port")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes serving the connections per serve_mail (0: none)"
    )
    parser.add_argument("--threads", type=int, default=2, help="delivery threads per delivering process")
    parser.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL serve_mail every N seconds")
    parser.add_argument("--database", default=default_database("groupware_delivery_bench"))
    parser.add_argument("--port", type=int, default=18224)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


class Servers:
    """serve_mail processes on one port (SO_REUSEPORT), restartable."""

    def __init__(self, env: dict[str, str], args: argparse.Namespace) -> None:
        self.env, self.args = env, args
        self.processes: list[subprocess.Popen] = []
        self.kills = 0

    def start(self) -> None:
        for _ in range(self.args.processes):
            process = subprocess.Popen(
                [PYTHON, "manage.py", "serve_mail", "--lmtp", f"127.0.0.1:{self.args.port}", "--smtp", "off",
                 "--threads", str(self.args.threads), "--workers", str(self.args.workers), "--reuse-port"],
                cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            assert process.stdout is not None
            for line in process.stdout:
                if PORT_LINE.search(line):
                    break
            else:
                raise SystemExit("bench-delivery: serve_mail did not start")
            threading.Thread(target=lambda p=process: [None for _ in p.stdout], daemon=True).start()
            self.processes.append(process)

    def kill(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.processes.clear()
        self.kills += 1

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)
        self.processes.clear()


def sender(
    port: int,
    messages: list[tuple[int, bytes]],
    addresses: list[str],
    answered: list[int],
    latencies: list[float],
    retries: list[int],
) -> None:
    client: smtplib.LMTP | None = None
    for index, raw in messages:
        start = time.perf_counter()
        while True:
            try:
                if client is None:
                    client = smtplib.LMTP("127.0.0.1", port, timeout=60)
                client.sendmail("sender@example.net", [addresses[index % len(addresses)]], raw)
                break
            except (OSError, smtplib.SMTPException):
                retries.append(index)
                try:
                    if client is not None:
                        client.close()
                except OSError:
                    pass
                client = None
                time.sleep(0.05)
        latencies.append(time.perf_counter() - start)
        answered.append(index)
    if client is not None:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            pass


def cpu_sample(servers: Servers) -> dict[str, float]:
    """CPU ticks so far: serve_mail with its workers, PostgreSQL (with Redis, idle here), this
    process (the senders), the whole machine."""
    own = os.times()
    return {
        "serve_mail": cpu_ticks(tree([process.pid for process in servers.processes])),
        "postgresql": service_ticks(),
        "sender": (own.user + own.system) * CLOCK_TICKS,
        "machine": busy_ticks(),
    }


def store_counts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as connection:
        emails, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT (account_id, message_id::text)) FROM mail_email"
        ).fetchone()
        records = connection.execute("SELECT count(*) FROM mail_deliveryrecord").fetchone()[0]
    return {"emails": emails, "distinct_messages": distinct, "delivery_records": records}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    recreate_database(args.database, "bench-delivery")
    work = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    env = server_environment(work, DATABASE_URL=args.database)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    addresses = bench_json("bench.delivery_setup", str(args.users), env=env, prog="bench-delivery")["addresses"]
    print(f"bench-delivery: generating {args.messages} messages", flush=True)
    corpus = [message.raw for message in MailCorpus(seed=args.seed).messages(args.messages)]
    total_octets = sum(len(raw) for raw in corpus)
    servers = Servers(env, args)
    servers.start()
    answered: list[int] = []
    latencies: list[float] = []
    retries: list[int] = []
    shares = [[(i, corpus[i]) for i in range(c, len(corpus), args.connections)] for c in range(args.connections)]
    threads = [
        threading.Thread(target=sender, args=(args.port, share, addresses, answered, latencies, retries))
        for share in shares
    ]
    print(
        f"bench-delivery: sending over {args.connections} LMTP connections"
        + (f", SIGKILL every {args.kill_every} s" if args.kill_every else ""),
        flush=True,
    )
    started = time.perf_counter()
    cpu_before = cpu_sample(servers)
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            if args.kill_every:
                deadline = time.perf_counter() + args.kill_every
                while time.perf_counter() < deadline and any(t.is_alive() for t in threads):
                    time.sleep(0.1)
                if any(t.is_alive() for t in threads):
                    servers.kill()
                    servers.start()
            else:
                time.sleep(0.2)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_sample(servers)
    finally:
        servers.stop()
    counts = store_counts(args.database)
    ordered = sorted(latencies)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "messages": args.messages,
        "octets": total_octets,
        "connections": args.connections,
        "users": args.users,
        "processes": args.processes,
        "workers": args.workers,
        "threads": args.threads,
        "kill_every": args.kill_every,
        "kills": servers.kills,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(answered) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 0.5) * 1000, 1),
            "p90": round(percentile(ordered, 0.9) * 1000, 1),
            "p99": round(percentile(ordered, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
        "retried_attempts": len(retries),
        "answered_250": len(set(answered)),
        **counts,
    }
    if not args.kill_every:  # a killed serve_mail takes its CPU time with it
        result["cpu_ms_per_message"] = {
            name: round(1000 * (cpu_after[name] - cpu_before[name]) / CLOCK_TICKS / len(answered), 2)
            for name in cpu_before
        }
    result["stored_equals_answered"] = counts["emails"] == len(set(answered)) == counts["distinct_messages"]
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    suffix = "-crash" if args.kill_every else ""
    (results / f"delivery{suffix}-{datetime.now(UTC):%Y%m%d-%H%M%S}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not result["stored_equals_answered"]:
        raise SystemExit("bench-delivery: stored messages differ from messages answered 250")


if __name__ == "__main__":
    main()
