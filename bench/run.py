"""The HTTP benchmark: JMAP over HTTP/1.1 keep-alive against several ways of serving the app.

Run with ``python3 tasks.py bench [OPTIONS]`` (``--help`` lists them). For each server set-up
it starts the server on a free loopback port against a fresh database, checks every scenario
once for a correct answer, then drives it with wrk (or bench/loadgen.py when wrk is missing)
and reports requests/s, p50/p99 latency, CPU used by the server and by the load generator, and
the peak RSS of every server process. The load generator runs on the same machine and shares
its CPUs with the server. Results go to bench/results/<date>.json and are printed as a table.
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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.common import PYTHON, ROOT, bench_json, default_database, free_port, recreate_database, server_environment

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
CORE = "urn:ietf:params:jmap:core"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
UPLOAD_SIZE = 1024 * 1024
SERVICE_PROCESS_NAMES = {"postgres", "redis-server"}

# Targets from the foundation issue, for this 2-core machine.
TARGET_ECHO_RPS = 2000
TARGET_ENGINE_ADDED_P50_MS = 1.0


# --- server set-ups ------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    description: str
    interface: str  # "asgi" or "wsgi"

    def argv(self, port: int, workers: int, threads: int, fd: int | None = None) -> list[list[str]]:
        """One command per process tree to start (several only for daphne-shared)."""
        app_asgi, app_wsgi = "groupware.asgi:application", "groupware.wsgi:application"
        host = "127.0.0.1"
        if self.name == "daphne":
            return [[PYTHON, "-m", "daphne", "-v", "0", "-b", host, "-p", str(port), app_asgi]]
        if self.name == "daphne-shared":
            return [[PYTHON, "-m", "daphne", "-v", "0", "--fd", str(fd), app_asgi] for _ in range(workers)]
        if self.name == "uvicorn":
            return [
                [
                    PYTHON,
                    "-m",
                    "uvicorn",
                    app_asgi,
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--no-access-log",
                    "--lifespan",
                    "off",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--log-level",
                    "warning",
                ]
            ]
        if self.name == "granian-asgi":
            return [
                [
                    str(BIN / "granian"),
                    "--interface",
                    "asginl",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                    app_asgi,
                ]
            ]
        if self.name == "granian-wsgi":
            return [
                [
                    str(BIN / "granian"),
                    "--interface",
                    "wsgi",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--blocking-threads",
                    str(threads),
                    "--no-ws",
                    "--log-level",
                    "warning",
                    app_wsgi,
                ]
            ]
        if self.name == "gunicorn":
            return [
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    app_wsgi,
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    str(workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(threads),
                    "--keep-alive",
                    "30",
                    "--log-level",
                    "warning",
                ]
            ]
        raise ValueError(self.name)


SERVERS = {
    spec.name: spec
    for spec in [
        ServerSpec("daphne", "daphne, 1 process (what `tasks.py run` serves)", "asgi"),
        ServerSpec("daphne-shared", "daphne, N processes accepting on one shared socket (--fd)", "asgi"),
        ServerSpec("uvicorn", "uvicorn --workers N (uvloop, httptools)", "asgi"),
        ServerSpec("granian-asgi", "granian --interface asginl --workers N", "asgi"),
        ServerSpec("granian-wsgi", "granian --interface wsgi --workers N --blocking-threads T", "wsgi"),
        ServerSpec("gunicorn", "gunicorn --workers N --worker-class gthread --threads T", "wsgi"),
    ]
}


# --- processes ------------------------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (parent pid, CPU ticks used, command name, CPU ticks of its exited children)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), name, int(fields[13]) + int(fields[14]))
    return table


def tree(roots: list[int]) -> list[int]:
    table = process_table()
    found, frontier = [], list(roots)
    while frontier:
        pid = frontier.pop()
        if pid in table:
            found.append(pid)
            frontier.extend(child for child, (parent, *_) in table.items() if parent == pid)
    return sorted(found)


def cpu_ticks(pids: list[int]) -> int:
    table = process_table()
    return sum(table[pid][1] for pid in pids if pid in table)


def service_ticks() -> int:
    """CPU ticks used so far by the PostgreSQL and Redis server processes on this machine,
    including PostgreSQL backends that have exited (counted in their parent's children time)."""
    return sum(
        ticks + children for _, ticks, name, children in process_table().values() if name in SERVICE_PROCESS_NAMES
    )


def busy_ticks() -> int:
    """CPU ticks spent by the whole machine (all cores) outside idle and iowait."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


class Server:
    """A server set-up started in its own process groups, stopped by its own pids."""

    def __init__(self, spec: ServerSpec, env: dict[str, str], workers: int, threads: int, log: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.listener: socket.socket | None = None
        fd = None
        if spec.name == "daphne-shared":
            self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
            self.port = self.listener.getsockname()[1]
            fd = self.listener.fileno()
        self.commands = spec.argv(self.port, workers, threads, fd)
        if spec.interface == "asgi":
            # Under ASGI, Django runs each request's sync code in a new thread, and a
            # persistent connection per thread leaks until PostgreSQL refuses more clients
            # ("too many clients already"): close the connection after each request.
            env = {**env, "DATABASE_CONN_MAX_AGE": "0"}
        self.env_overrides = {"DATABASE_CONN_MAX_AGE": "0"} if spec.interface == "asgi" else {}
        self.log = log.open("ab")
        self.processes = [
            subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(fd,) if fd is not None else (),
            )
            for argv in self.commands
        ]
        self.base = f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return tree([process.pid for process in self.processes])

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.spec.name} exited with code {process.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.base + "/.well-known/jmap", timeout=2).status_code == 401:
                    if len(self.processes) > 1:
                        time.sleep(3)  # the first answered; give the others sharing the socket time
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.spec.name} did not answer within {timeout:.0f}s; see {self.log.name}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and its workers
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.listener is not None:
            self.listener.close()
        self.log.close()


# --- scenarios -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    connections: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    expect: Any = None  # the exact JSON response expected, when known
    description: str = ""


def echo_body(calls: int) -> bytes:
    """A Request of ``calls`` Core/echo calls; each after the first takes its argument from the
    previous response through a result reference (RFC 8620 §3.7)."""
    arguments = {"hello": True, "list": [1, 2, 3], "text": "The quick brown fox jumps over the lazy dog"}
    method_calls: list[list[Any]] = [["Core/echo", arguments, "c0"]]
    for index in range(1, calls):
        reference = {"resultOf": f"c{index - 1}", "name": "Core/echo", "path": "/list"}
        method_calls.append(["Core/echo", {"#list": reference, "n": index}, f"c{index}"])
    return json.dumps({"using": [CORE], "methodCalls": method_calls}).encode()


def echo_expected(calls: int) -> list[list[Any]]:
    arguments = {"hello": True, "list": [1, 2, 3], "text": "The quick brown fox jumps over the lazy dog"}
    responses: list[list[Any]] = [["Core/echo", arguments, "c0"]]
    responses += [["Core/echo", {"list": [1, 2, 3], "n": index}, f"c{index}"] for index in range(1, calls)]
    return responses


def scenarios(setup: dict[str, Any], args: argparse.Namespace, blob_id: str | None) -> list[Scenario]:
    basic = "Basic " + base64.b64encode(f"{setup['email']}:{setup['password']}".encode()).decode()
    auth = {"Authorization": basic}
    json_headers = {**auth, "Content-Type": "application/json"}
    account = setup["account_id"]
    many, few = args.connections, args.upload_connections
    result = [
        Scenario("session", "GET", "/.well-known/jmap", many, headers=auth, description="session resource"),
        Scenario(
            "echo", "POST", "/jmap/api/", many, echo_body(1), json_headers, echo_expected(1), "Core/echo, Basic auth"
        ),
        Scenario(
            "bare-echo",
            "POST",
            "/bench/echo",
            many,
            echo_body(1),
            json_headers,
            echo_expected(1),
            "bare Django view, same JSON",
        ),
        Scenario(
            "echo-10-refs",
            "POST",
            "/jmap/api/",
            many,
            echo_body(10),
            json_headers,
            echo_expected(10),
            "10 Core/echo calls chained with #references",
        ),
        Scenario(
            "echo",
            "POST",
            "/jmap/api/",
            1,
            echo_body(1),
            json_headers,
            echo_expected(1),
            "one client: latency without queueing",
        ),
        Scenario(
            "bare-echo",
            "POST",
            "/bench/echo",
            1,
            echo_body(1),
            json_headers,
            echo_expected(1),
            "one client: latency without queueing",
        ),
        Scenario(
            "upload-1MB",
            "POST",
            f"/jmap/upload/{account}/",
            few,
            b"",
            {**auth, "Content-Type": "application/octet-stream"},
            None,
            "1 MiB blob upload",
        ),
        Scenario(
            "download-1MB",
            "GET",
            f"/jmap/download/{account}/{blob_id}/bench.bin?accept=application/octet-stream",
            few,
            headers=auth,
            description="1 MiB blob download",
        ),
    ]
    if setup.get("token"):
        bearer = {"Authorization": f"Bearer {setup['token']}", "Content-Type": "application/json"}
        result.insert(
            2,
            Scenario(
                "echo-bearer",
                "POST",
                "/jmap/api/",
                many,
                echo_body(1),
                bearer,
                echo_expected(1),
                "Core/echo, Bearer token",
            ),
        )
    return result


def check_once(base: str, scenario: Scenario, upload_body: bytes) -> str | None:
    """Send the scenario's request once; return None if the answer is right, else the problem."""
    body = upload_body if scenario.name == "upload-1MB" else scenario.body
    response = httpx.request(
        scenario.method, base + scenario.path, content=body or None, headers=scenario.headers, timeout=30
    )
    if response.status_code == 404 and scenario.name in ("upload-1MB", "download-1MB"):
        return f"skipped: {scenario.path.split('/')[2]} endpoint answered 404 (not implemented yet)"
    if not 200 <= response.status_code < 300:
        return f"failed: HTTP {response.status_code}: {response.text[:300]}"
    if scenario.expect is not None and response.json().get("methodResponses") != scenario.expect:
        return f"failed: unexpected response {response.text[:300]}"
    if scenario.name == "download-1MB" and response.content != upload_body:
        return "failed: the downloaded blob differs from the uploaded one"
    return None


def upload_probe(base: str, setup: dict[str, Any], upload_body: bytes) -> tuple[str | None, str]:
    basic = "Basic " + base64.b64encode(f"{setup['email']}:{setup['password']}".encode()).decode()
    response = httpx.post(
        f"{base}/jmap/upload/{setup['account_id']}/",
        content=upload_body,
        headers={"Authorization": basic, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    if response.status_code == 404:
        return None, "upload endpoint answered 404 (not implemented yet)"
    if response.status_code not in (200, 201):
        return None, f"upload answered HTTP {response.status_code}: {response.text[:200]}"
    return response.json().get("blobId"), ""


# --- load generation -------------------------------------------------------------------------------


def load(base: str, scenario: Scenario, duration: float, body_file: Path | None, loadgen: str) -> dict[str, Any]:
    """Drive one scenario; return the generator's numbers plus the generator's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    headers = [f"{name}: {value}" for name, value in scenario.headers.items()]
    url = base + scenario.path
    env = {**os.environ, "BENCH_METHOD": scenario.method, "BENCH_BODY_FILE": str(body_file or "")}
    if loadgen == "wrk":
        seconds = max(1, round(duration))  # wrk takes whole seconds
        argv = [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(scenario.connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--script",
            str(BENCH / "wrk_report.lua"),
        ]
        for header in headers:
            argv += ["--header", header]
        argv.append(url)
    else:
        argv = [
            PYTHON,
            "-m",
            "bench.loadgen",
            "--url",
            url,
            "--method",
            scenario.method,
            "--connections",
            str(scenario.connections),
            "--duration",
            str(duration),
        ]
        if body_file:
            argv += ["--body-file", str(body_file)]
        for header in headers:
            argv += ["--header", header]
    output = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in output.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            numbers = json.loads(line[len("BENCH_JSON ") :])
            numbers["loadgen_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            return numbers
    raise RuntimeError(f"{argv[0]} printed no result: {output.stdout[-500:]} {output.stderr[-500:]}")


def ensure_wrk(choice: str) -> str:
    if choice == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if choice == "auto" and shutil.which("apt-get") and os.geteuid() == 0:
        print("bench: wrk is missing; trying `apt-get install -y wrk`", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True)
        if shutil.which("wrk"):
            return "wrk"
    if choice == "wrk":
        raise SystemExit("bench: wrk is not installed (apt-get install wrk), or use --loadgen python")
    print("bench: wrk is not available; using the Python load generator (bench/loadgen.py)", flush=True)
    return "python"


# --- profiling -----------------------------------------------------------------------------------


def fold_stacks(raw: str, inclusive: Counter[str], own: Counter[str]) -> int:
    """Add py-spy's raw (collapsed) output to the inclusive and self counts of each frame;
    the number of samples read."""
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total


def print_frames(profile: dict[str, Any]) -> None:
    """The inclusive and self percentages of a profile, one frame a line."""
    for frame, pct in profile["inclusive"]:
        print(f"  {pct:>5.1f}%  {frame}")
    print("self %:")
    for frame, pct in profile["self"]:
        print(f"  {pct:>5.1f}%  {frame}")


def profile(server: Server, scenario: Scenario, duration: float, loadgen: str, body_file: Path | None) -> dict:
    """Sample the busiest server process with py-spy while the scenario runs."""
    pids = server.pids()
    before = {pid: cpu_ticks([pid]) for pid in pids}
    load(server.base, scenario, 2, body_file, loadgen)
    busiest = max(pids, key=lambda pid: cpu_ticks([pid]) - before[pid])
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
        raw_path = Path(handle.name)
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(busiest),
            "--duration",
            str(int(duration)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--function",
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: Python CPU time, not waits
            "--output",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    load(server.base, scenario, duration, body_file, loadgen)
    _, error = spy.communicate(timeout=duration + 30)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = fold_stacks(raw_path.read_text(), inclusive, own)
    raw_path.unlink(missing_ok=True)
    if total == 0:
        return {"error": f"py-spy recorded nothing: {error.decode()[-300:]}"}
    return {
        "pid": busiest,
        "command": command_line(busiest),
        "samples": total,
        "inclusive": [(frame, round(100 * count / total, 1)) for frame, count in inclusive.most_common(40)],
        "self": [(frame, round(100 * count / total, 1)) for frame, count in own.most_common(25)],
    }


# --- the run -------------------------------------------------------------------------------------


def database_for(args: argparse.Namespace) -> str | None:
    """The DATABASE_URL the servers get (None: SQLite in the temporary DATA_DIR)."""
    choice = args.database
    if choice == "sqlite":
        return None
    if urlsplit(choice).scheme not in ("postgres", "postgresql"):
        raise SystemExit("bench: --database must be 'sqlite' or a postgres:// URL")
    recreate_database(choice, "bench")
    return choice


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return head.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tasks.py bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from: {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2, one per core)")
    parser.add_argument("--threads", type=int, default=4, help="threads per WSGI worker (default 4)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive clients (default 32)")
    parser.add_argument("--upload-connections", type=int, default=4, help="clients for 1 MiB up/downloads")
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per scenario (default 6)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each scenario")
    parser.add_argument(
        "--database",
        default=default_database("groupware_bench", fallback="sqlite"),
        help="'sqlite' (a fresh file), or postgres://.../NAME with 'bench' in NAME, which is "
        "dropped and recreated (default: derived from DATABASE_URL, else sqlite)",
    )
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", ""), help="REDIS_URL for the servers")
    parser.add_argument("--fast-hasher", action="store_true", help="FAST_PASSWORD_HASHER=true for the servers")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--profile", action="store_true", help="also sample the busiest worker of each server with py-spy during 'echo'"
    )
    parser.add_argument("--output", type=Path, help="result file (default bench/results/<date>.json)")
    return parser.parse_args(argv)


def warm_up(server: Server, setup: dict[str, Any], args: argparse.Namespace, loadgen: str, log_dir: Path) -> None:
    """Load every worker before measuring: each process verifies the password once (PBKDF2) and
    then serves from its credential cache, and imports and caches fill up on first use."""
    for scenario in scenarios(setup, args, None):
        if scenario.name in ("session", "echo", "bare-echo") and scenario.connections > 1:
            body_file = None
            if scenario.body:
                body_file = log_dir / f"body-{scenario.name}.json"
                body_file.write_bytes(scenario.body)
            load(server.base, scenario, 3, body_file, loadgen)


def run_server(spec: ServerSpec, args, env, setup, upload_body, upload_file, loadgen, log_dir) -> dict[str, Any]:
    print(f"\n== {spec.name}: {spec.description}\n{TABLE_HEADER}", flush=True)
    server = Server(spec, env, args.workers, args.threads, log_dir / f"{spec.name}.log")
    record: dict[str, Any] = {
        "env_overrides": server.env_overrides,
        "server": spec.name,
        "description": spec.description,
        "interface": spec.interface,
        "commands": server.commands,
        "scenarios": [],
    }
    try:
        server.wait_ready()
        blob_id, upload_problem = upload_probe(server.base, setup, upload_body)
        warm_up(server, setup, args, loadgen, log_dir)
        wanted = {name for name in args.scenarios.split(",") if name}
        for scenario in scenarios(setup, args, blob_id):
            if wanted and scenario.name not in wanted:
                continue
            entry: dict[str, Any] = {
                "scenario": scenario.name,
                "connections": scenario.connections,
                "description": scenario.description,
                "status": "not run",
            }
            record["scenarios"].append(entry)
            if scenario.name == "download-1MB" and blob_id is None:
                entry["status"] = f"skipped: {upload_problem or 'no blob was uploaded'}"
                print(table_row(spec.name, entry), flush=True)
                continue
            problem = check_once(server.base, scenario, upload_body)
            if problem:
                entry["status"] = problem
                print(table_row(spec.name, entry), flush=True)
                continue
            body_file = upload_file if scenario.name == "upload-1MB" else None
            if scenario.body:
                body_file = log_dir / f"body-{scenario.name}.json"
                body_file.write_bytes(scenario.body)
            if args.warmup > 0:
                load(server.base, scenario, args.warmup, body_file, loadgen)
            pids = server.pids()
            ticks, machine_ticks, db_ticks = cpu_ticks(pids), busy_ticks(), service_ticks()
            numbers = load(server.base, scenario, args.duration, body_file, loadgen)
            server_cpu = (cpu_ticks(pids) - ticks) / CLOCK_TICKS
            db_cpu = (service_ticks() - db_ticks) / CLOCK_TICKS
            machine_cpu = (busy_ticks() - machine_ticks) / CLOCK_TICKS
            seconds = numbers["duration_us"] / 1e6
            errors = sum(value for key, value in numbers.items() if key.startswith("errors_"))
            entry.update(
                status="ok" if errors == 0 else f"{errors} errors",
                requests=numbers["requests"],
                requests_per_s=round(numbers["requests"] / seconds, 1),
                p50_ms=round(numbers["p50_us"] / 1000, 2),
                p90_ms=round(numbers["p90_us"] / 1000, 2),
                p99_ms=round(numbers["p99_us"] / 1000, 2),
                max_ms=round(numbers["max_us"] / 1000, 2),
                errors={key[7:]: value for key, value in numbers.items() if key.startswith("errors_") and value},
                server_cpu_pct=round(100 * server_cpu / seconds),
                loadgen_cpu_pct=round(100 * numbers["loadgen_cpu_s"] / seconds),
                db_cpu_pct=round(100 * db_cpu / seconds),
                # Whatever else ran on the machine meanwhile (noise; ideally near 0).
                other_cpu_pct=max(
                    0, round(100 * (machine_cpu - server_cpu - db_cpu - numbers["loadgen_cpu_s"]) / seconds)
                ),
            )
            print(table_row(spec.name, entry), flush=True)
        if args.profile:
            echo = next(s for s in scenarios(setup, args, blob_id) if s.name == "echo" and s.connections > 1)
            body_file = log_dir / "body-echo.json"
            body_file.write_bytes(echo.body)
            print("  profiling 'echo' with py-spy ...", flush=True)
            record["profile"] = profile(server, echo, max(args.duration, 8), loadgen, body_file)
        record["processes"] = [
            {"pid": pid, "command": command_line(pid), "peak_rss_mb": round(peak_rss_mb(pid) or 0, 1)}
            for pid in server.pids()
        ]
    except Exception as exc:
        record["error"] = str(exc)
        print(f"  error: {exc}", flush=True)
    finally:
        server.stop()
    return record


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        by_key = {(s["scenario"], s["connections"]): s for s in record["scenarios"] if "requests_per_s" in s}
        echo = next((s for (name, c), s in by_key.items() if name == "echo" and c > 1), None)
        echo_1 = next((s for (name, c), s in by_key.items() if name == "echo" and c == 1), None)
        bare_1 = next((s for (name, c), s in by_key.items() if name == "bare-echo" and c == 1), None)
        row = {"server": record["server"], "echo_rps": echo["requests_per_s"] if echo else None}
        if echo_1 and bare_1:
            row["engine_added_p50_ms"] = round(echo_1["p50_ms"] - bare_1["p50_ms"], 2)
        row["echo_target_met"] = bool(echo and echo["requests_per_s"] >= TARGET_ECHO_RPS)
        row["engine_target_met"] = row.get("engine_added_p50_ms", 99) <= TARGET_ENGINE_ADDED_P50_MS
        rows.append(row)
    return rows


TABLE_HEADER = (
    f"{'server':<14} {'scenario':<13} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'server%':>7} {'db%':>4} {'loadgen%':>8} {'other%':>6}  status"
)


def table_row(server: str, entry: dict[str, Any]) -> str:
    start = f"{server:<14} {entry['scenario']:<13} {entry['connections']:>5}"
    if "requests_per_s" not in entry:
        return f"{start}  {entry['status']}"
    return (
        f"{start} {entry['requests_per_s']:>8.1f} {entry['p50_ms']:>8.2f} {entry['p99_ms']:>8.2f} "
        f"{entry['server_cpu_pct']:>7} {entry['db_cpu_pct']:>4} {entry['loadgen_cpu_pct']:>8} "
        f"{entry['other_cpu_pct']:>6}  {entry['status']}"
    )


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nBenchmark {result['date']}  commit {result['commit']}  database {result['database']}  "
        f"redis {'yes' if result['redis'] else 'no'}  load generator {result['loadgen']} "
        f"(same machine, shares the {result['cpus']} CPUs)  {result['duration_s']:.0f}s per scenario"
    )
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for record in result["servers"]:
        if "error" in record:
            print(f"{record['server']:<14} error: {record['error']}")
        for entry in record["scenarios"]:
            print(table_row(record["server"], entry))
        rss = ", ".join(f"{p['peak_rss_mb']:.0f}" for p in record.get("processes", []))
        print(f"{record['server']:<14} peak RSS per process (MB): {rss}")
    print(f"CPU columns: % of one core (the machine has {result['cpus']}); db% = PostgreSQL and Redis processes")
    print(
        f"\nTargets: Core/echo >= {TARGET_ECHO_RPS} req/s; JMAP engine adds <= {TARGET_ENGINE_ADDED_P50_MS} ms "
        "at p50 over the bare view (one client)"
    )
    for row in result["summary"]:
        added = row.get("engine_added_p50_ms")
        print(
            f"  {row['server']:<14} echo {row['echo_rps'] or 0:>8.1f} req/s "
            f"[{'met' if row['echo_target_met'] else 'missed'}]  engine adds "
            f"{'?' if added is None else f'{added:.2f}'} ms at p50 "
            f"[{'met' if row['engine_target_met'] else 'missed'}]"
        )
    for record in result["servers"]:
        if "profile" in record and "inclusive" in record["profile"]:
            prof = record["profile"]
            print(
                f"\nProfile of {record['server']} pid {prof['pid']} ({prof['samples']} samples), "
                "inclusive % of samples:"
            )
            print_frames(prof)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        raise SystemExit(f"bench: unknown servers {unknown}; choose from {', '.join(SERVERS)}")
    loadgen = ensure_wrk(args.loadgen)
    database_url = database_for(args)
    work = Path(tempfile.mkdtemp(prefix="groupware-bench-"))
    env = server_environment(
        work,
        BENCH_VIEWS="1",
        # One user drives all connections: the per-user concurrency limits would turn most of
        # the load into 'limit' errors, which is not what is measured here.
        JMAP_MAX_CONCURRENT_REQUESTS="10000",
        JMAP_MAX_CONCURRENT_UPLOAD="10000",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    if args.redis:
        env["REDIS_URL"] = args.redis
    if args.fast_hasher:
        env["FAST_PASSWORD_HASHER"] = "true"
    password = secrets.token_urlsafe(16)
    setup = {
        **bench_json("bench.setup_data", env={**env, "BENCH_PASSWORD": password}, prog="bench"),
        "password": password,
    }
    if not setup["token"]:
        print(f"bench: no Bearer scenario: {setup['token_reason']}", flush=True)
    upload_body = os.urandom(UPLOAD_SIZE)
    upload_file = work / "upload.bin"
    upload_file.write_bytes(upload_body)
    now = datetime.datetime.now(datetime.UTC)
    wrk_version = ""
    if loadgen == "wrk":
        wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split(" [")[0]
    result: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": "python3 tasks.py bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.system()} {platform.release()}, python {platform.python_version()}",
        "loadgen": f"{wrk_version}, 1 thread" if wrk_version else "bench/loadgen.py (Python asyncio, 1 process)",
        "database": "postgresql" if database_url else "sqlite",
        "redis": bool(args.redis),
        "password_hasher": "MD5 (FAST_PASSWORD_HASHER)" if args.fast_hasher else "PBKDF2 (default)",
        "workers": args.workers,
        "wsgi_threads": args.threads,
        "duration_s": args.duration,
        "load_average_before": os.getloadavg(),
        "servers": [],
    }
    try:
        for name in names:
            result["servers"].append(
                run_server(SERVERS[name], args, env, setup, upload_body, upload_file, loadgen, work)
            )
    finally:
        result["summary"] = summary(result["servers"])
        output = args.output or RESULTS / f"{now:%Y-%m-%d}.json"
        if args.output is None:
            counter = 2
            while output.exists():
                output = RESULTS / f"{now:%Y-%m-%d}-{counter}.json"
                counter += 1
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        print_table(result)
        print(
            f"\nResults written to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}; "
            f"server logs in {work}"
        )


if __name__ == "__main__":
    main()
