"""PostgreSQL's write path stages each batch in a session temp table, created once per pooled
connection; a rollback of the transaction that created it must not break the next batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citydesk.config import Settings
from citydesk.hub.records import IngestResult, ObservationIn
from citydesk.web.app import build_app
from tests.conftest import create_sensor, migrated_engine


@pytest.mark.postgres
def test_a_rolled_back_first_write_does_not_lose_the_stage(pg_url: str) -> None:
    app = build_app(Settings(database_url=pg_url), engine=migrated_engine(pg_url))
    ds = create_sensor(app, "A")
    app.engine.dispose()  # a fresh pool: its connection has never made the stage
    t = datetime.now(UTC) - timedelta(minutes=1)
    first = app.ingest._validate(
        [ObservationIn(ds, 1.0, phenomenon_time=t)], IngestResult(), now=t, dedupe=False
    )
    rows = [stored for _, stored in first]
    app.store.prepare(rows)
    with pytest.raises(RuntimeError), app.engine.begin() as conn:
        app.store.write(conn, rows, dedupe=False)  # makes the stage ...
        raise RuntimeError("... in a transaction that is rolled back")
    result = app.ingest.ingest([ObservationIn(ds, 2.0, phenomenon_time=t)], channel="t")
    assert [r.result_number for r in result.stored] == [2.0]
    app.engine.dispose()
