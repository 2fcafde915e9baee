"""HTTP/1.1 keep-alive load generator in Python, used when wrk is not available.

Each of N connections sends the same request, waits for the whole response, and sends the
next one (a closed loop, like wrk). Runs in its own process; prints one JSON object with the
same fields as bench/wrk_report.lua.

    python -m bench.loadgen --url http://127.0.0.1:8000/jmap/api/ --method POST \
        --body-file body.json --header "Authorization: Basic ..." --connections 32 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlsplit


class Stats:
    def __init__(self) -> None:
        self.latencies_us: list[int] = []
        self.bytes = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}


def build_request(url: str, method: str, headers: list[str], body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += headers
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read one response; return (status, bytes read). Raises on a closed connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    size = len(head)
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            chunk = int(size_line.split(b";")[0], 16)
            await reader.readexactly(chunk + 2)
            size += len(size_line) + chunk + 2
            if chunk == 0:
                break
    elif length:
        await reader.readexactly(length)
        size += length
    return status, size


async def client(host: str, port: int, request: bytes, deadline: float, stats: Stats, timeout: float) -> None:
    writer = None
    try:
        while time.monotonic() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError:
                    stats.errors["connect"] += 1
                    await asyncio.sleep(0.01)
                    continue
            start = time.perf_counter_ns()
            try:
                writer.write(request)
                status, size = await asyncio.wait_for(read_response(reader), timeout)
            except TimeoutError:
                stats.errors["timeout"] += 1
                writer.close()
                writer = None
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError):
                stats.errors["read"] += 1
                writer.close()
                writer = None
                continue
            stats.latencies_us.append((time.perf_counter_ns() - start) // 1000)
            stats.bytes += size
            if status >= 400:
                stats.errors["status"] += 1
    finally:
        if writer is not None:
            writer.close()


def percentile(sorted_values: list[int], fraction: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict:
    body = Path(args.body_file).read_bytes() if args.body_file else b""
    host, port, request = build_request(args.url, args.method, args.header, body)
    stats = Stats()
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(*(client(host, port, request, deadline, stats, args.timeout) for _ in range(args.connections)))
    elapsed = time.monotonic() - started
    latencies = sorted(stats.latencies_us)
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1_000_000),
        "bytes": stats.bytes,
        "p50_us": percentile(latencies, 0.50),
        "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99),
        "max_us": latencies[-1] if latencies else 0,
        "mean_us": sum(latencies) / len(latencies) if latencies else 0.0,
        **{f"errors_{name}": count for name, count in stats.errors.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print("BENCH_JSON " + json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
