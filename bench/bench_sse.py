"""SSE fan-out: 1,000 open dashboards, delay from an observation's commit to its arrival (issue #3).

``citydesk serve`` runs 2 workers on PostgreSQL with a Redis bus. ``CLIENTS`` streams of
``/api/status/stream?measure=PM10`` are opened by ``PROCESSES`` client processes (raw asyncio
sockets reading the chunked event stream; uvicorn spreads them over the workers). This process
then writes ``BATCHES`` single observations through its own app object, as a connector worker
would: each commit is timed by a bus handler that runs right after it, the batch crosses Redis to
both server workers, and every client notes the wall-clock time at which the event arrived.
Figures: how many (client, batch) events arrived, and p50/p95/max delay. Target: p95 < 250 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import orjson
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
from common import MEASUREMENT, SYSTEM, fresh_postgres, migrated
from server import serving

from citydesk.bus import Event
from citydesk.config import Settings
from citydesk.hub.models import datastreams
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta import service
from citydesk.web.app import App, build_app

CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "1000"))
PROCESSES = 2
BATCHES = int(os.environ.get("BENCH_SSE_BATCHES", "60"))
INTERVAL = 0.25
"""Seconds between batches: S-DoT-like live load is a few batches a second."""
BUS_URL = os.environ.get("BENCH_BUS_URL", "redis://127.0.0.1:6379/13")
WAIT = 20.0
"""Seconds the clients wait for the last batch after the first one was sent."""


async def _client(
    port: int, ready: asyncio.Queue[None], arrivals: list[tuple[int, float]], last: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /api/status/stream?measure=PM10 HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
        raise RuntimeError(head.decode(errors="replace"))
    try:
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            if b": connected" in chunk:
                ready.put_nowait(None)
            for line in chunk.split(b"\n"):
                if line.startswith(b'data: {"measure"'):
                    for d in orjson.loads(line[6:])["datastreams"]:
                        arrivals.append((int(d["result"]), now))
                        if d["result"] == last:
                            return
    finally:
        writer.close()


def clients(port: int, n: int, pipe: Connection) -> None:
    """One client process: ``n`` streams; says "ready" once all are connected, then sends arrivals."""

    async def run() -> list[tuple[int, float]]:
        ready: asyncio.Queue[None] = asyncio.Queue()
        arrivals: list[tuple[int, float]] = []
        tasks = [asyncio.create_task(_client(port, ready, arrivals, BATCHES - 1)) for _ in range(n)]
        for _ in range(n):
            await ready.get()
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # the first batch is being sent
        _, pending = await asyncio.wait(tasks, timeout=WAIT + BATCHES * INTERVAL)
        for task in pending:
            task.cancel()
        return arrivals

    pipe.send(asyncio.run(run()))


def provision(app: App) -> int:
    """One public PM10 sensor in Gangnam-gu; returns its Datastream id."""
    _, thing = service.post(
        app,
        SYSTEM,
        "Things",
        {
            "name": "bench",
            "Locations": [
                {
                    "name": "bench",
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [127.0473, 37.5172]},
                }
            ],
            "Datastreams": [
                {
                    "name": "bench PM10",
                    "unitOfMeasurement": {
                        "name": "microgram per cubic metre",
                        "symbol": "µg/m³",
                        "definition": "-",
                    },
                    "observationType": MEASUREMENT,
                    "Sensor": {"name": "bench", "encodingType": "text/plain", "metadata": "-"},
                    "ObservedProperty": {"name": "PM10", "definition": "urn:bench:PM10"},
                }
            ],
        },
    )
    with app.engine.connect() as conn:
        return int(conn.execute(select(datastreams.c.id).where(datastreams.c.thing_id == thing)).scalar_one())


def start_bus(app: App) -> asyncio.AbstractEventLoop:
    """Run this process's bus link (to Redis) in a loop of its own thread, as a worker would."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(app.bus.start(), loop).result()
    while not app.bus.state.startswith("connected"):
        time.sleep(0.05)
    return loop


def main() -> None:
    url = fresh_postgres("citydesk_bench_sse")
    app = build_app(Settings(database_url=url, bus_url=BUS_URL), engine=migrated(url))
    ds = provision(app)
    committed: dict[int, float] = {}

    def on_stored(event: Event) -> None:  # runs in the writer's thread right after the commit
        for d in (event.portable or {}).get("datastreams", []):
            committed[int(d["result"])] = time.time()

    app.bus.on("observations.stored", on_stored)
    with serving(url, workers=2, env={"BUS_URL": BUS_URL}) as base:
        port = int(base.rsplit(":", 1)[1])
        pipes, procs = [], []
        for i in range(PROCESSES):
            mine, theirs = mp.Pipe()
            n = CLIENTS // PROCESSES + (i < CLIENTS % PROCESSES)
            procs.append(mp.get_context("fork").Process(target=clients, args=(port, n, theirs)))
            pipes.append(mine)
            procs[-1].start()
        t0 = time.perf_counter()
        for pipe in pipes:
            assert pipe.recv() == "ready"
        print(
            f"{CLIENTS:,} SSE clients connected in {time.perf_counter() - t0:.1f} s ({PROCESSES} processes)"
        )
        loop = start_bus(app)
        time.sleep(1.0)  # the server workers' Redis subscriptions are up long since; let this one settle
        for pipe in pipes:
            pipe.send("go")
        for seq in range(BATCHES):
            app.ingest.ingest(
                [ObservationIn(ds, float(seq), phenomenon_time=datetime.now(UTC))], channel="bench"
            )
            time.sleep(INTERVAL)
        arrivals = [a for pipe in pipes for a in pipe.recv()]
        for proc in procs:
            proc.join(timeout=30)
        asyncio.run_coroutine_threadsafe(app.bus.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
    delays = sorted(t - committed[seq] for seq, t in arrivals if seq in committed)
    expected = CLIENTS * BATCHES
    p95 = delays[max(0, round(0.95 * len(delays)) - 1)]
    print(
        f"{BATCHES} batches, {INTERVAL * 1000:.0f} ms apart; delivered {len(delays):,} of {expected:,} events"
    )
    print(
        f"commit -> client delay: p50 {statistics.median(delays) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   "
        f"max {delays[-1] * 1000:6.1f} ms   (target p95 < 250 ms)"
    )


if __name__ == "__main__":
    main()
