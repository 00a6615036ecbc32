"""Status API throughput: ``/api/status/air?measure=PM10`` against a bare uvicorn app (issue #3).

The city: the S-DoT simulator's 100 sensors (4 per district, 11 measures each) with 24 hours of
readings every 10 minutes, on PostgreSQL. Both servers run with 2 uvicorn workers, side by side in
the same run; the bare app is a raw ASGI callable answering every request with a JSON body of the
same size as the status answer. The load comes from one client process holding ``CONNECTIONS``
keep-alive connections with a minimal HTTP/1.1 client (httpx would be the bottleneck). Target: the
status API serves at least half the bare app's requests/s. For scale, the same server's SensorThings
service root (no database, a few hundred bytes) is measured too: what any route costs there.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_postgres, make_app
from server import free_port, serving

from citydesk.simulator.runner import Simulator

PATH = "/api/status/air?measure=PM10"
ROOT = "/sta/v1.1"
"""A reference in the same server: the SensorThings service root, a small answer with no query."""
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
BODY_FILE = "BENCH_BARE_BODY"


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare app: the same JSON body for every request (read once from ``$BENCH_BARE_BODY``)."""
    if scope["type"] != "http":
        return
    body = _body()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@functools.cache
def _body() -> bytes:
    return Path(os.environ[BODY_FILE]).read_bytes()


@contextmanager
def serving_bare(body: bytes, workers: int = 2) -> Iterator[str]:
    """The bare app under ``uvicorn --workers``, like ``citydesk serve``."""
    path = Path(f"/tmp/bench_bare_body_{os.getpid()}.json")
    path.write_bytes(body)
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "bench_status:bare", "--app-dir", str(Path(__file__).parent)),
            *("--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"),
        ],
        env={**os.environ, BODY_FILE: str(path)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        path.unlink()


async def _worker(port: int, request: bytes, stop: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.perf_counter() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            n += 1
    finally:
        counts.append(n)
        writer.close()


def load(base: str, path: str, seconds: float) -> float:
    """Requests per second over ``seconds`` with ``CONNECTIONS`` keep-alive connections."""
    port = int(base.rsplit(":", 1)[1])
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def run() -> int:
        counts: list[int] = []
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(_worker(port, request, stop, counts) for _ in range(CONNECTIONS)))
        return sum(counts)

    t0 = time.perf_counter()
    done = asyncio.run(run())
    return done / (time.perf_counter() - t0)


def main() -> None:
    url = fresh_postgres("citydesk_bench_status")
    app = make_app(url)
    sim = Simulator(app, sensors_per_district=4, backfill_hours=24)

    async def city() -> None:
        await sim.provision()
        await sim.backfill(24)

    t0 = time.perf_counter()
    asyncio.run(city())
    print(
        f"city: {len(sim.sensors)} sensors, {sim.stats.backfilled:,} observations in {time.perf_counter() - t0:.0f} s"
    )
    app.engine.dispose()
    with serving(url, workers=2) as status_base:
        body = httpx.get(status_base + PATH, timeout=10).content
        with serving_bare(body) as bare_base:
            assert len(httpx.get(bare_base + "/", timeout=10).content) == len(body)
            print(f"{PATH}: {len(body):,} bytes; {CONNECTIONS} connections, {SECONDS:.0f} s each, 2 workers")
            load(status_base, PATH, 2)  # warm up both: pools, caches, the latest-values snapshot
            load(bare_base, "/", 2)
            status_rate = load(status_base, PATH, SECONDS)
            bare_rate = load(bare_base, "/", SECONDS)
            root_rate = load(status_base, ROOT, SECONDS)
    print(f"status API  {status_rate:>9,.0f} requests/s")
    print(f"{ROOT}   {root_rate:>9,.0f} requests/s   (same server: the cost of routing, auth, thread pool)")
    print(f"bare app    {bare_rate:>9,.0f} requests/s")
    print(f"ratio       {status_rate / bare_rate:>9.2f}   (target >= 0.5)")


if __name__ == "__main__":
    main()
