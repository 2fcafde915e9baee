"""What the benchmarks share: the database they drop and recreate, the environment of the
servers they start, the account bench/setup_data.py (or another setup module) prepares, and
latency percentiles."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"


def default_database(name: str, fallback: str | None = None) -> str:
    """Database ``name`` on the PostgreSQL server of DATABASE_URL; else ``fallback``, by
    default that database on the local server."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    return fallback if fallback is not None else f"{LOCAL_POSTGRES}/{name}"


def recreate_database(url: str, prog: str) -> None:
    """Drop and create the PostgreSQL database of ``url``, whose name must contain 'bench'."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"{prog}: the PostgreSQL database name must contain 'bench' (it is dropped and recreated)")
    import psycopg

    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def server_environment(work: Path, **settings: str) -> dict[str, str]:
    """The environment of a benchmarked server: this one without DATABASE_URL and REDIS_URL,
    a fresh DATA_DIR under ``work`` and SECRET_KEY, and ``settings`` on top."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="groupware.settings",
        PYTHONPATH=str(ROOT),
        DATA_DIR=str(work / "data"),
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="false",
        LOG_LEVEL="WARNING",
    )
    env.update(settings)
    return env


def bench_json(module: str, *args: str, env: dict[str, str], prog: str) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON of its last ``BENCH_JSON`` line."""
    completed = subprocess.run([PYTHON, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"{prog}: preparing the database failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(lines[-1][len("BENCH_JSON ") :])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank ``fraction`` percentile of samples sorted in ascending order."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
