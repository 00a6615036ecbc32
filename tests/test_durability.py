"""Nothing acknowledged is lost: SIGKILL the server in the middle of a bulk ingest.

A real ``citydesk serve`` process takes CreateObservations batches from a client; partway
through, the server is killed with SIGKILL. Every observation whose request was answered 201
must then be in the database with its value, and every batch is all-or-nothing (a batch that
was not acknowledged may be stored, but never half of it). Runs on PostgreSQL and SQLite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from citydesk.auth import Role, create_user
from citydesk.db import make_engine
from tests.conftest import migrated_engine

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
BATCH = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "citydesk.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/sta/v1.1", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _setup(url: str) -> None:
    engine = migrated_engine(url)
    create_user(engine, "loader", Role.OFFICIAL, "loader-password", now=datetime.now(UTC))
    engine.dispose()


@pytest.mark.timeout(240)
def test_sigkill_during_bulk_ingest_loses_no_acknowledged_observation(db_url: str) -> None:
    _setup(db_url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/sta/v1.1"
    auth = ("loader", "loader-password")
    proc = _start(db_url, port)
    thing = {
        "name": "durability",
        "Locations": [
            {
                "name": "p",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [126.978, 37.5665]},
            }
        ],
        "Datastreams": [
            {
                "name": "d",
                "unitOfMeasurement": {"name": "n", "symbol": "n", "definition": "n"},
                "observationType": MEASUREMENT,
                "Sensor": {"name": "s", "encodingType": "text/plain", "metadata": "-"},
                "ObservedProperty": {"name": "n", "definition": "urn:n"},
            }
        ],
    }
    assert httpx.post(f"{base}/Things", json=thing, auth=auth).status_code == 201
    ds_id = httpx.get(f"{base}/Datastreams").json()["value"][0]["@iot.id"]
    start = datetime.now(UTC) - timedelta(hours=6)
    acknowledged: dict[int, list[str]] = {}
    sent: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(auth=auth, timeout=10) as client:
            b = 0
            while not stop.is_set():
                rows = [
                    [(start + timedelta(seconds=b * BATCH + i)).isoformat(), float(b * BATCH + i)]
                    for i in range(BATCH)
                ]
                body = [
                    {
                        "Datastream": {"@iot.id": ds_id},
                        "components": ["phenomenonTime", "result"],
                        "dataArray": rows,
                    }
                ]
                sent.append(b)
                try:
                    r = client.post(f"{base}/CreateObservations", json=body)
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged[b] = r.json()
                b += 1

    loader = threading.Thread(target=load)
    loader.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    loader.join(timeout=30)
    assert len(acknowledged) >= 20, "the server acknowledged too little before the kill"
    assert len(sent) > len(acknowledged), "the kill did not interrupt a request in flight"

    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = {
            int(v): int(i)
            for i, v in conn.execute(
                text("SELECT id, result_number FROM observations WHERE datastream_id = :d"), {"d": ds_id}
            )
        }
    engine.dispose()
    for b, links in acknowledged.items():
        for i, link in enumerate(links):
            value = b * BATCH + i
            assert value in stored, f"acknowledged observation {value} (batch {b}) is missing"
            assert link.endswith(f"Observations({stored[value]})")
    for b in sent:
        present = sum((b * BATCH + i) in stored for i in range(BATCH))
        assert present in (0, BATCH), f"batch {b} was half stored ({present} of {BATCH})"
    # The server comes back on the same database and serves what was stored.
    proc = _start(db_url, port)
    try:
        count = httpx.get(f"{base}/Datastreams({ds_id})/Observations?$count=true&$top=1").json()["@iot.count"]
        assert count == len(stored)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
