"""What quotas and blob management cost: an in-process benchmark (no HTTP server).

    python3 -m bench.quotas [--messages 300] [--database postgres://.../groupware_quota_bench]

Against a fresh database (SQLite in a temporary directory by default; a PostgreSQL URL
whose database name contains 'bench' is dropped and recreated), one staff user:

- ``email_ingest`` of small messages (2-6 KB), per message: without any quota, with an
  account quota (octets and count), and with account, domain and global quotas;
- ``Quota/get`` (ids null, three quotas visible) through the JMAP API view with the Django
  test client (authentication and the engine included, no network);
- ``Blob/upload`` of 64 KiB given as base64 and ``Blob/get`` of it with data and a SHA-256
  digest, one request each;
- ``manage.py quota_recompute`` of the account at the end.

Prints a table (median and p95 in milliseconds) and writes bench/results/quotas-<date>.json.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, percentile, recreate_database


def _timed(function, repeat: int) -> list[float]:
    samples = []
    for index in range(repeat):
        start = time.perf_counter()
        function(index)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _queries(function) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        function(10**6)
    return len(captured.captured_queries)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(percentile(ordered, 0.95), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300, help="messages per ingest scenario (default 300)")
    parser.add_argument("--requests", type=int, default=200, help="requests per API scenario (default 200)")
    parser.add_argument("--database", default=None, help="a postgres:// URL whose database name contains 'bench'")
    options = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="quota-bench-"))
    os.environ.update(DATA_DIR=str(data_dir), FAST_PASSWORD_HASHER="true", LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
    for key in ("REDIS_URL", "DATABASE_URL"):
        os.environ.pop(key, None)
    if options.database:
        os.environ["DATABASE_URL"] = options.database
        recreate_database(options.database, "bench.quotas")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)

    from accounts import services
    from accounts.models import Account
    from accounts.quotas import quota_set
    from groupware.mail.models import Mailbox
    from groupware.mail.services.emails import email_ingest

    password = "bench-password-1234"
    user = services.user_create(email="bench@example.com", password=password, is_staff=True)
    domain = services.domain_create(name="example.com")
    account = Account.objects.get(owner=user)
    inbox = Mailbox.objects.get(account=account, role="inbox").pk
    body = ("lorem ipsum dolor sit amet " * 200).encode()

    def raw(scenario: str, index: int) -> bytes:
        size = 2000 + (index * 37) % 4000
        return (
            f"From: a@example.org\r\nTo: bench@example.com\r\nSubject: {scenario} {index}\r\n"
            f"Message-ID: <{scenario}.{index}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
        ).encode() + body[:size]

    def ingest(scenario: str):
        return lambda index: email_ingest(account=account, raw=raw(scenario, index), mailbox_ids=[inbox], keywords={})

    results: dict[str, dict[str, float]] = {}
    _timed(ingest("warmup"), 50)  # caches, the first pages of the tables
    queries: dict[str, int] = {}
    results["ingest, no quota"] = _summary(_timed(ingest("none"), options.messages))
    queries["ingest, no quota"] = _queries(ingest("none"))
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=10**12)
    quota_set(scope="account", account=account, resource_type="count", hard_limit=10**9)
    results["ingest, account quotas"] = _summary(_timed(ingest("account"), options.messages))
    queries["ingest, account quotas"] = _queries(ingest("account"))
    quota_set(scope="domain", domain=domain, resource_type="octets", hard_limit=10**12)
    quota_set(scope="global", resource_type="count", hard_limit=10**9)
    results["ingest, account+domain+global"] = _summary(_timed(ingest("all"), options.messages))
    queries["ingest, account+domain+global"] = _queries(ingest("all"))

    client = Client()
    auth = "Basic " + base64.b64encode(f"{user.email}:{password}".encode()).decode()
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:quota",
             "urn:ietf:params:jmap:blob"]  # fmt: skip

    def api(calls: list) -> dict:
        response = client.post(
            "/jmap/api/", json.dumps({"using": using, "methodCalls": calls}),
            content_type="application/json", HTTP_AUTHORIZATION=auth,
        )  # fmt: skip
        assert response.status_code == 200, response.content
        answer = json.loads(response.content)["methodResponses"][0]
        assert answer[0] != "error", answer
        return answer[1]

    found = api([["Quota/get", {"accountId": account.jmap_id, "ids": None}, "0"]])
    assert len(found["list"]) == 4, found
    results["Quota/get (4 quotas)"] = _summary(
        _timed(lambda index: api([["Quota/get", {"accountId": account.jmap_id, "ids": None}, "0"]]), options.requests)
    )
    chunk = os.urandom(64 * 1024)

    def upload(index: int) -> None:
        data = base64.b64encode(index.to_bytes(4, "big") + chunk).decode()
        create = {"b": {"data": [{"data:asBase64": data}]}}
        created = api([["Blob/upload", {"accountId": account.jmap_id, "create": create}, "0"]])
        assert created["created"], created

    results["Blob/upload 64 KiB base64"] = _summary(_timed(upload, options.requests))
    blob = api([["Blob/upload", {"accountId": account.jmap_id, "create": {"b": {"data": [
        {"data:asBase64": base64.b64encode(chunk).decode()}]}}}, "0"]])["created"]["b"]["id"]  # fmt: skip
    get = ["Blob/get", {"accountId": account.jmap_id, "ids": [blob], "properties": ["data", "digest:sha-256"]}, "0"]
    results["Blob/get 64 KiB + sha-256"] = _summary(_timed(lambda index: api([get]), options.requests))
    start = time.perf_counter()
    call_command("quota_recompute", stdout=io.StringIO())
    recompute_ms = (time.perf_counter() - start) * 1000
    account.refresh_from_db()

    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "database": connection.vendor,
        "python": platform.python_version(),
        "messages_per_scenario": options.messages,
        "results": results,
        "sql_statements_per_ingest": queries,
        "quota_recompute_ms": round(recompute_ms, 1),
        "account_usage": {"octets": account.used_octets, "count": account.used_count},
    }
    print(f"database: {connection.vendor}, {options.messages} messages per ingest scenario")
    print(f"{'scenario':34} {'median ms':>10} {'p95 ms':>10} {'SQL/message':>12}")
    for name, summary in results.items():
        statements = str(queries.get(name, ""))
        print(f"{name:34} {summary['median_ms']:>10.2f} {summary['p95_ms']:>10.2f} {statements:>12}")
    print(f"quota_recompute of {account.used_count} messages: {recompute_ms:.1f} ms")
    out = ROOT / "bench" / "results" / f"quotas-{datetime.date.today().isoformat()}-{connection.vendor}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
