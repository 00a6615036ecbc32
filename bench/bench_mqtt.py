"""MQTT end to end: publish to Mosquitto → stored and committed in PostgreSQL, counted.

The broker is a Mosquitto of the bench's own, configured as a production broker for sensor
fan-in must be (``max_queued_messages 0``: the default of 1,000 queued messages per client makes
the broker itself drop QoS 1 messages whenever a subscriber is briefly behind). Two publisher
processes (the sensors' side, writing MQTT packets straight to a socket) send QoS 1 SensorThings messages to
``<prefix>/v1.1/Datastreams(<id>)/Observations`` at a fixed total rate for a fixed time; a
``citydesk serve`` process runs an ``mqtt`` source subscribed to them (acknowledging after
commit). Afterwards the database is counted: rows stored, distinct observations (no
duplicates), and messages lost. Target (issue #2): ≥ 10,000 observations/s sustained for 60 s with
zero loss and zero duplicates.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import create_datastreams, fresh_postgres, make_app
from server import free_port, serving

from citydesk.auth import Role, create_user
from citydesk.config import Settings
from citydesk.hub.connectors.mqtt import wire
from citydesk.hub.sources import SourceIn, SourceRunner
from citydesk.web.app import build_app

RATE = int(os.environ.get("BENCH_MQTT_RATE", "10000"))
SECONDS = int(os.environ.get("BENCH_MQTT_SECONDS", "60"))
PUBLISHERS = 2
WORKERS = int(os.environ.get("BENCH_MQTT_WORKERS", "2"))
CONSUMERS = int(os.environ.get("BENCH_MQTT_CONSUMERS", "2"))


@contextmanager
def broker() -> Iterator[int]:
    """A dedicated Mosquitto on a free port with production queue settings (else the local one)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        yield 1883
        return
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="citydesk-mqtt-"))
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def publish(
    worker: int, port: int, prefix: str, datastreams: list[int], rate: float, seconds: int, start_at: float
) -> None:
    """One sensor-side process: QoS 1 over a plain socket, paced to ``rate`` messages a second in
    10 ms slices, with at most 20,000 messages not yet acknowledged by the broker.

    The packets come from ``citydesk.hub.connectors.mqtt.wire``; a paho publisher costs about as
    much CPU per message as the consumer under test, which on two cores measured the publishers.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        wire.connect_packet(
            f"bench-pub-{prefix}-{worker}",
            keepalive=600,
            clean_start=True,
            session_expiry=0,
            receive_maximum=100,
        )
    )
    reader = wire.PacketReader()
    acked = 0
    while not any(kind == wire.CONNACK for kind, _, _ in reader.feed(sock.recv(1024))):
        pass

    def count_acks() -> None:
        nonlocal acked
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return
            acked += sum(1 for kind, _, _ in reader.feed(data) if kind == wire.PUBACK)

    threading.Thread(target=count_acks, daemon=True).start()
    base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=worker)
    total = int(rate * seconds)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        packets = []
        for i in range(sent, due):
            ds = datastreams[i % len(datastreams)]
            body = {
                "phenomenonTime": (base + timedelta(milliseconds=i)).isoformat(),
                "result": float(i % 500),
            }
            topic = f"{prefix}/v1.1/Datastreams({ds})/Observations"
            packets.append(wire.publish_packet(topic, orjson.dumps(body), mid=i % 65_535 + 1))
        sock.sendall(b"".join(packets))
        sent = due
        while sent - acked > 20_000:
            time.sleep(0.001)
        time.sleep(0.01)
    while acked < total:
        time.sleep(0.01)
    sent_in = time.perf_counter() - t0
    print(f"publisher {worker}: {total:,} messages acknowledged by the broker in {sent_in:.1f} s", flush=True)
    sock.sendall(wire.DISCONNECT_PACKET)
    sock.close()


def count(url: str) -> tuple[int, int]:
    """Rows stored and distinct observations: the final check for loss and duplicates."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (datastream_id, phenomenon_time)) FROM observations"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def progress(url: str) -> int:
    """Observations committed so far, from the daily rollups (a few thousand rows, committed with
    the observations): cheap enough to poll every second while measuring, where counting the
    observations table each second took a fair share of the two cores."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0) FROM obs_rollup_daily").fetchone()
        assert row is not None
        return int(row[0])


def main() -> None:
    url = fresh_postgres("citydesk_bench_mqtt")
    app = make_app(url)
    ds = create_datastreams(app, 100, 10)
    create_user(app.engine, "bench", Role.ADMIN, "bench-password", now=datetime.now(UTC))
    app.engine.dispose()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    total = RATE * SECONDS
    print(f"MQTT end to end: {total:,} messages at {RATE:,}/s for {SECONDS} s over {len(ds):,} datastreams")
    print(f"consumers: {CONSUMERS} (MQTT 5 shared subscription) in a server with {WORKERS} worker(s)")
    with broker() as port:
        source = {
            "url": f"mqtt://127.0.0.1:{port}",
            "topics": [f"{prefix}/v1.1/+/Observations"],
            "layout": "sta",
            "client_id": f"citydesk-{prefix}",
            "consumers": CONSUMERS,
        }
        asyncio.run(add_source(url, source))  # before the server starts: every worker sees it
        with serving(url, workers=WORKERS):
            measure(url, port, prefix, ds, total)


async def add_source(url: str, config: dict[str, Any]) -> None:
    app = build_app(Settings(database_url=url))
    await SourceRunner(app).create(SourceIn(name="bench mqtt", kind="mqtt", config=config))
    app.engine.dispose()


def measure(url: str, port: int, prefix: str, ds: list[int], total: int) -> None:
    """Publish for SECONDS at RATE and count what the database holds until it stops growing."""
    time.sleep(3)  # the runners claim their slots and subscribe
    start_at = time.time() + 1
    halves = [ds[0::2], ds[1::2]]
    procs = [
        mp.Process(target=publish, args=(w, port, prefix, halves[w], RATE / PUBLISHERS, SECONDS, start_at))
        for w in range(PUBLISHERS)
    ]
    for p in procs:
        p.start()
    last_change, last = time.time(), -1
    samples = []
    while True:
        time.sleep(1)
        done = progress(url)
        samples.append((time.time() - start_at, done))
        if done != last:
            last_change, last = time.time(), done
        if done >= total or (time.time() - last_change > 20 and all(not p.is_alive() for p in procs)):
            break
    for p in procs:
        p.join()
    stored, distinct = count(url)
    done_at = last_change
    elapsed = done_at - start_at
    in_window = max((n for t, n in samples if t <= SECONDS), default=0)
    print(
        f"stored {stored:,} rows, {distinct:,} distinct observations in {elapsed:.1f} s from the first publish"
    )
    print(
        f"end-to-end rate {distinct / elapsed:,.0f} observations/s; stored during the {SECONDS} s of publishing: "
        f"{in_window:,} ({in_window / SECONDS:,.0f}/s)"
    )
    print(f"lost {total - distinct:,}   duplicates {stored - distinct:,}")


if __name__ == "__main__":
    main()
