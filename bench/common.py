"""Shared set-up for the benchmarks: a fresh database, the Seoul districts, N datastreams.

Benchmarks run against the real local PostgreSQL (or a SQLite file) and print their figures;
they never assert on time (tests check behaviour, benchmarks measure it).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, text

from citydesk.auth import Principal, Role
from citydesk.config import Settings
from citydesk.db import make_engine, upgrade
from citydesk.hub.sta import service
from citydesk.seed import seed_geography
from citydesk.web.app import App, build_app

PG_ADMIN = os.environ.get("CITYDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SYSTEM = Principal.for_user(None, "bench", Role.ADMIN)
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def fresh_postgres(name: str) -> str:
    admin = make_engine(PG_ADMIN)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def migrated(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    seed_geography(engine)
    return engine


def make_app(url: str) -> App:
    engine = migrated(url)
    return build_app(Settings(database_url=url), engine=engine)


def create_datastreams(app: App, things: int, per_thing: int, *, seed: int = 7) -> list[int]:
    """``things`` sensors at random points in Seoul, each with ``per_thing`` datastreams."""
    rnd = random.Random(seed)
    _, sensor_id = service.post(
        app, SYSTEM, "Sensors", {"name": "bench", "encodingType": "text/plain", "metadata": "-"}
    )
    props = [
        service.post(app, SYSTEM, "ObservedProperties", {"name": f"P{i}", "definition": f"urn:bench:{i}"})[1]
        for i in range(per_thing)
    ]
    for t in range(things):
        lon, lat = 126.90 + rnd.random() * 0.2, 37.50 + rnd.random() * 0.1
        service.post(
            app,
            SYSTEM,
            "Things",
            {
                "name": f"bench {t}",
                "Locations": [
                    {
                        "name": "p",
                        "encodingType": "application/geo+json",
                        "location": {"type": "Point", "coordinates": [lon, lat]},
                    }
                ],
                "Datastreams": [
                    {
                        "name": f"bench {t}/{i}",
                        "unitOfMeasurement": {"name": "x", "symbol": "x", "definition": "x"},
                        "observationType": MEASUREMENT,
                        "properties": {"family": "bench"},
                        "Sensor": {"@iot.id": sensor_id},
                        "ObservedProperty": {"@iot.id": props[i]},
                    }
                    for i in range(per_thing)
                ],
            },
        )
    with app.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM datastreams ORDER BY id"))]


def rows(
    datastreams: list[int], n: int, start: datetime | None = None
) -> Iterator[tuple[int, datetime, float]]:
    """``n`` (datastream, time, value) rows, round-robin over datastreams, one second apart per stream."""
    start = start or datetime.now(UTC) - timedelta(hours=12)
    k = len(datastreams)
    for i in range(n):
        yield datastreams[i % k], start + timedelta(seconds=i // k), 20.0 + (i % 97) * 0.5


def data_array_bodies(ds: list[int], start: datetime, total: int, batch: int, streams: int) -> list[bytes]:
    """CreateObservations request bodies, encoded ahead: ``streams`` datastreams × rows each."""
    out = []
    per = batch // streams
    for b in range(total // batch):
        groups = []
        for k in range(streams):
            d = ds[(b * streams + k) % len(ds)]
            t0 = start + timedelta(seconds=b * per)
            groups.append(
                {
                    "Datastream": {"@iot.id": d},
                    "components": ["phenomenonTime", "result"],
                    "dataArray": [
                        [(t0 + timedelta(seconds=i)).isoformat(), 20.0 + (i % 50) * 0.5] for i in range(per)
                    ],
                }
            )
        out.append(orjson.dumps(groups))
    return out


def post_all(base: str, auth: tuple[str, str], payloads: list[bytes], clients: int) -> tuple[float, int]:
    """POST every body to CreateObservations from ``clients`` threads; (seconds, failed requests)."""

    def send(chunk: list[bytes]) -> int:
        bad = 0
        with httpx.Client(base_url=base, auth=auth, timeout=60) as client:
            for body in chunk:
                r = client.post(
                    "/sta/v1.1/CreateObservations", content=body, headers={"content-type": "application/json"}
                )
                bad += r.status_code != 201 or b'"error"' in r.content
        return bad

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        failed = sum(pool.map(send, [payloads[i::clients] for i in range(clients)]))
    return time.perf_counter() - t0, failed


@contextmanager
def timed(label: str, count: int, unit: str = "observations") -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    yield out
    dt = time.perf_counter() - t0
    out["seconds"] = dt
    out["rate"] = count / dt
    print(f"{label:<58} {count:>10,} {unit} in {dt:7.2f} s = {count / dt:>10,.0f} /s")
