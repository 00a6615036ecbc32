"""SQLite embedded ingest: the demo's default database (WAL, synchronous=FULL: durable commits).

Measured two ways, same rows: the ingest pipeline in-process (what the simulator, connectors and
MQTT use) with batches of 1,000, and ``POST /sta/v1.1/CreateObservations`` to a one-worker
server (SQLite has one writer) with batches of 1,000 from 2 client threads.
Target (issue #2): at least 20,000 observations/s.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import create_datastreams, data_array_bodies, make_app, post_all, rows, timed
from server import serving

from citydesk.auth import Role, create_user
from citydesk.hub.records import ObservationIn

TOTAL = int(os.environ.get("BENCH_OBSERVATIONS", "200000"))
BATCH = 1000


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="citydesk-bench-"))
    url = f"sqlite:///{folder}/bench.db"
    app = make_app(url)
    ds = create_datastreams(app, 100, 10)
    create_user(app.engine, "bench", Role.OFFICIAL, "bench-password", now=datetime.now(UTC))
    print(
        f"SQLite embedded ingest: {TOTAL:,} observations over {len(ds):,} datastreams, batches of {BATCH:,}"
    )
    records = [ObservationIn(d, v, phenomenon_time=t) for d, t, v in rows(ds, TOTAL)]
    with timed("ingest pipeline in-process", len(records)):
        for i in range(0, len(records), BATCH):
            app.ingest.ingest(records[i : i + BATCH], channel="bench")
    app.engine.dispose()
    payloads = data_array_bodies(ds, datetime.now(UTC) - timedelta(days=3), TOTAL, BATCH, 10)
    with serving(url, workers=1) as base:
        dt, failed = post_all(base, ("bench", "bench-password"), payloads, 2)
    n = len(payloads) * BATCH
    print(
        f"{'API CreateObservations (1 worker, 2 clients)':<58} {n:>10,} observations in {dt:7.2f} s = "
        f"{n / dt:>10,.0f} /s  ({failed} failed requests)"
    )
    print(f"database file: {sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.0f} MB in {folder}")


if __name__ == "__main__":
    main()
