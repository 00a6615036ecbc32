"""Latest observation of every datastream, 50,000 datastreams, 10 million observations (PostgreSQL).

What a city map asks on every refresh. The store keeps one ``datastream_latest`` row per
datastream in the write transaction, so the read is one scan of a narrow table joined to
``datastreams`` for the visibility filter and district. Measured: the service query as the
anonymous public sees it and as staff see it, and the HTTP route ``/api/hub/latest`` end to end.
Target (issue #2): p95 under 50 ms with 10 million observations stored.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).parent))
from common import MEASUREMENT, fresh_postgres, make_app

from citydesk.auth import ANONYMOUS, Principal, Role
from citydesk.hub.models import (
    datastream_latest,
    datastreams,
    locations,
    observed_properties,
    sensors,
    thing_locations,
    things,
)
from citydesk.hub.records import StoredObservation
from citydesk.web.app import create_asgi

DATASTREAMS = int(os.environ.get("BENCH_DATASTREAMS", "50000"))
OBSERVATIONS = int(os.environ.get("BENCH_LATEST_OBSERVATIONS", "10000000"))
PER_THING = 10
BATCH = 20_000
RUNS = 40


def provision(app) -> list[int]:  # type: ignore[no-untyped-def]
    """Things, Locations and Datastreams in bulk (a tenth of the datastreams internal)."""
    n_things = DATASTREAMS // PER_THING
    with app.engine.begin() as conn:
        sensor = conn.execute(
            insert(sensors)
            .values(name="bench", encoding_type="text/plain", metadata="-")
            .returning(sensors.c.id)
        ).scalar_one()
        props = [
            conn.execute(
                insert(observed_properties)
                .values(name=f"P{i}", definition=f"urn:p{i}")
                .returning(observed_properties.c.id)
            ).scalar_one()
            for i in range(PER_THING)
        ]
        conn.execute(insert(things), [{"id": t + 1, "name": f"t{t}"} for t in range(n_things)])
        conn.execute(
            insert(locations),
            [
                {
                    "id": t + 1,
                    "name": "p",
                    "location": {
                        "type": "Point",
                        "coordinates": [126.9 + (t % 100) / 500, 37.5 + (t // 100) / 1000],
                    },
                    "district_code": "11140",
                }
                for t in range(n_things)
            ],
        )
        conn.execute(
            insert(thing_locations), [{"thing_id": t + 1, "location_id": t + 1} for t in range(n_things)]
        )
        conn.execute(
            insert(datastreams),
            [
                {
                    "name": f"d{t}/{i}",
                    "unit_of_measurement": {"name": "x"},
                    "observation_type": MEASUREMENT,
                    "thing_id": t + 1,
                    "sensor_id": sensor,
                    "observed_property_id": props[i],
                    "family": "bench",
                    "district_code": "11140",
                    "disclosure": "internal" if i == 0 else "public",
                }
                for t in range(n_things)
                for i in range(PER_THING)
            ],
        )
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence('things','id'), (SELECT max(id) FROM things))")
        )
        return [r[0] for r in conn.execute(text("SELECT id FROM datastreams ORDER BY id"))]


def load(app, ds: list[int]) -> float:  # type: ignore[no-untyped-def]
    """OBSERVATIONS rows through the store's own write path (rollups and latest values included)."""
    start = datetime.now(UTC) - timedelta(days=2)
    per_stream = OBSERVATIONS // len(ds)
    t0 = time.perf_counter()
    done = 0
    rows: list[StoredObservation] = []
    for step in range(per_stream):
        t = start + timedelta(minutes=step * 5)
        for d in ds:
            rows.append(
                StoredObservation(
                    d,
                    "bench",
                    t,
                    None,
                    None,
                    None,
                    None,
                    20.0 + (d + step) % 40,
                    None,
                    None,
                    None,
                    None,
                    "11140",
                )
            )
            if len(rows) == BATCH:
                app.store.prepare(rows)
                with app.engine.begin() as conn:
                    app.store.write(conn, rows, dedupe=False)
                done += len(rows)
                rows = []
    if rows:
        app.store.prepare(rows)
        with app.engine.begin() as conn:
            app.store.write(conn, rows, dedupe=False)
        done += len(rows)
    dt = time.perf_counter() - t0
    print(f"loaded {done:,} observations in {dt:.0f} s ({done / dt:,.0f}/s through ObservationStore.write)")
    return dt


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[max(0, round(0.95 * len(s)) - 1)]
    return (
        f"p50 {statistics.median(s) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   max {s[-1] * 1000:6.1f} ms"
    )


def main() -> None:
    url = fresh_postgres("citydesk_bench_latest")
    app = make_app(url)
    ds = provision(app)
    load(app, ds)
    with app.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        n_obs = conn.execute(text("SELECT count(*) FROM observations")).scalar_one()
    print(f"{len(ds):,} datastreams, {n_obs:,} observations stored")
    staff = Principal.for_user(None, "bench", Role.OFFICIAL)
    sql = (
        select(
            datastream_latest.c.datastream_id,
            datastream_latest.c.phenomenon_time,
            datastream_latest.c.result_number,
            datastream_latest.c.result_json,
            datastreams.c.district_code,
        )
        .join(datastreams, datastreams.c.id == datastream_latest.c.datastream_id)
        .where(datastreams.c.disclosure == "public")
    )
    samples = []
    for _ in range(RUNS // 4):
        t0 = time.perf_counter()
        with app.engine.connect() as conn:
            n = len(conn.execute(sql).all())
        samples.append(time.perf_counter() - t0)
    print(f"straight from the database (SQLAlchemy), public  {n:>7,} rows   {percentiles(samples)}")
    app.latest.refresh(full=True)
    stop = threading.Event()

    def poller() -> None:  # what the server's background task does: a delta poll every second
        while not stop.wait(1.0):
            app.latest.refresh()

    app.latest._task = True  # type: ignore[assignment]  # reads must not poll inline: the thread does (as the server's task)
    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    for who, label in ((ANONYMOUS, "anonymous (public only)"), (staff, "official (all levels)")):
        samples = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            with app.engine.connect().execution_options(read_only=True) as conn:
                values = app.latest.values(conn, who.levels)
            samples.append(time.perf_counter() - t0)
            time.sleep(0.05)
        print(f"snapshot values(), {label:<26} {len(values):>7,} rows   {percentiles(samples)}")
    with TestClient(create_asgi(app)) as client:
        samples = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            r = client.get("/api/hub/latest")
            samples.append(time.perf_counter() - t0)
            time.sleep(0.05)
        print(
            f"GET /api/hub/latest, anonymous, {len(r.content) / 1e6:.1f} MB JSON          {percentiles(samples)}"
        )
    stop.set()


if __name__ == "__main__":
    main()
