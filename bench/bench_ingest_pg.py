"""Bulk ingest into PostgreSQL through the SensorThings API vs plain COPY, same rows, same run.

The API side: ``POST /sta/v1.1/CreateObservations`` with dataArray batches of 1,000 observations
(10 datastreams × 100 rows), sent by 4 client threads to ``citydesk serve --workers 2``; bodies
are encoded before the clock starts. The COPY side: the same rows into an equivalent plain table
(same columns, same two indexes) with ``COPY`` in batches of 1,000, one commit each, and once as a
single COPY. Target (issue #2): ≥ 50,000 observations/s and ≥ half the speed of plain COPY.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import create_datastreams, data_array_bodies, fresh_postgres, make_app, post_all
from cpu import cpu_use, report
from server import serving

TOTAL = int(os.environ.get("BENCH_OBSERVATIONS", "300000"))
BATCH = 1000
PER_REQUEST_STREAMS = 10
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
USER, PASSWORD = "bench", "bench-password"


def copy_rows(payloads: list[bytes]) -> list[list[tuple[object, ...]]]:
    batches = []
    n = 0
    for body in payloads:
        rows = []
        for g in orjson.loads(body):
            d = g["Datastream"]["@iot.id"]
            for t, v in g["dataArray"]:
                n += 1
                rows.append((n, d, "bench", datetime.fromisoformat(t), v))
        batches.append(rows)
    return batches


def run_copy(url: str, batches: list[list[tuple[object, ...]]], *, single: bool) -> float:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_bench")
        conn.execute(
            "CREATE TABLE copy_bench (id bigint PRIMARY KEY, datastream_id bigint NOT NULL, family text NOT NULL, "
            "phenomenon_time timestamptz NOT NULL, phenomenon_time_end timestamptz, result_time timestamptz, "
            "valid_time_start timestamptz, valid_time_end timestamptz, result_number float8, result_json jsonb, "
            "result_quality jsonb, parameters jsonb, foi_id bigint, district_code text, dedup_key bigint)"
        )
        conn.execute("CREATE UNIQUE INDEX ON copy_bench (datastream_id, phenomenon_time, dedup_key, family)")
        conn.commit()
        t0 = time.perf_counter()
        groups = [[r for b in batches for r in b]] if single else batches
        for rows in groups:
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY copy_bench (id, datastream_id, family, phenomenon_time, result_number) FROM STDIN (FORMAT BINARY)"
                ) as cp,
            ):
                cp.set_types(["int8", "int8", "text", "timestamptz", "float8"])
                for r in rows:
                    cp.write_row(r)
            conn.commit()
        return time.perf_counter() - t0


def main() -> None:
    url = fresh_postgres("citydesk_bench_ingest")
    app = make_app(url)
    ds = create_datastreams(app, 100, 10)
    from citydesk.auth import Role, create_user

    create_user(app.engine, USER, Role.OFFICIAL, PASSWORD, now=datetime.now(UTC))
    app.engine.dispose()
    start = datetime.now(UTC) - timedelta(days=1)
    payloads = data_array_bodies(ds, start, TOTAL, BATCH, PER_REQUEST_STREAMS)
    n = len(payloads) * BATCH
    print(f"PostgreSQL bulk ingest: {n:,} observations over {len(ds):,} datastreams, batches of {BATCH:,}")
    with serving(url, workers=WORKERS) as base:
        auth = (USER, PASSWORD)
        post_all(base, auth, payloads[:1], 1)  # warm up both workers' connections and caches
        rest = payloads[1:]
        with cpu_use() as use:
            api_s, errors = post_all(base, auth, rest, CLIENTS)
    api_rate = (len(rest) * BATCH) / api_s
    stored = (
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        .execute("SELECT count(*) FROM observations")
        .fetchone()
    )
    batches = copy_rows(payloads)
    copy_s = run_copy(url, batches, single=False)
    single_s = run_copy(url, batches, single=True)
    copy_rate, single_rate = n / copy_s, n / single_s
    print(
        f"{f'API CreateObservations ({WORKERS} workers, {CLIENTS} clients)':<52} {api_rate:>10,.0f} obs/s  "
        f"({errors} failed requests)"
    )
    print(f"{'plain COPY, batches of 1,000, commit each':<52} {copy_rate:>10,.0f} obs/s")
    print(f"{'plain COPY, one COPY of all rows':<52} {single_rate:>10,.0f} obs/s")
    print(
        f"API / batched COPY = {api_rate / copy_rate:.2f}   API / single COPY = {api_rate / single_rate:.2f}"
    )
    print(f"rows stored by the API: {stored[0] if stored else 0:,} (expected {n:,})")
    print(report(use, len(rest) * BATCH))


if __name__ == "__main__":
    main()
