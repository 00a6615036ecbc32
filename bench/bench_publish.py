"""How many observations/s ``citydesk publish`` ships, PostgreSQL → PostgreSQL.

An internal database with 50 public datastreams (and 10 internal ones, whose rows must be skipped)
is filled through the ingest pipeline; then a first publish copies everything (the path of a
datastream that starts crossing), and after as many new rows again, a second publish ships only
those (the incremental path of ``publish --follow``). Both print observations/s; the figures
include copying the rollups and latest values of the buckets touched.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import SYSTEM, create_datastreams, fresh_postgres, make_app

from citydesk.db import make_engine, upgrade
from citydesk.hub.records import ObservationIn
from citydesk.hub.sta import service
from citydesk.mirror import publish_once

TOTAL = int(os.environ.get("BENCH_OBSERVATIONS", "200000"))
BATCH = 5000


def fill(app, datastreams: list[int], start: datetime, total: int) -> None:  # type: ignore[no-untyped-def]
    """``total`` observations, one a minute per datastream, in ingest batches of ``BATCH``."""
    batch: list[ObservationIn] = []
    for i in range(total):
        ds = datastreams[i % len(datastreams)]
        at = start + timedelta(minutes=i // len(datastreams))
        batch.append(ObservationIn(ds, 20.0 + (i % 97) / 10, phenomenon_time=at))
        if len(batch) == BATCH:
            app.ingest.ingest(batch, channel="bench")
            batch = []
    if batch:
        app.ingest.ingest(batch, channel="bench")


def main() -> None:
    internal = make_app(fresh_postgres("citydesk_bench_internal"))
    public = make_engine(fresh_postgres("citydesk_bench_public"))
    upgrade(public)
    ds = create_datastreams(internal, things=10, per_thing=6)
    hidden = ds[-10:]
    for d in hidden:
        service.request(
            internal, SYSTEM, "PATCH", f"Datastreams({d})", {"properties": {"disclosure": "internal"}}, ""
        )
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=6)
    fill(internal, ds, start, TOTAL)
    rounds = (
        ("first publish (every row of newly public datastreams)", None),
        ("incremental publish (new rows only)", start + timedelta(days=3)),
    )
    for label, more_from in rounds:
        if more_from is not None:
            fill(internal, ds, more_from, TOTAL)
        t0 = time.perf_counter()
        report = publish_once(
            internal.engine, public, now=datetime.now(UTC), timezone=internal.settings.timezone
        )
        seconds = time.perf_counter() - t0
        shipped = report.observations.rows
        print(
            f"{label}: {shipped:,} observations in {seconds:.2f} s = {shipped / seconds:,.0f} observations/s"
        )
    public_share = (len(ds) - len(hidden)) / len(ds)
    print(f"({TOTAL:,} rows written per round, {public_share:.0%} of them public; PostgreSQL → PostgreSQL)")


if __name__ == "__main__":
    main()
