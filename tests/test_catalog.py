"""The datastream catalog is a cache: it must let go of what other workers changed, and the
ingest pipeline must survive a datastream deleted under it (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from sqlalchemy import delete, update

from citydesk.hub.catalog import DatastreamCatalog
from citydesk.hub.models import datastreams
from citydesk.hub.records import ObservationIn
from citydesk.web.app import App
from tests.conftest import create_sensor


def test_the_catalog_reloads_after_max_age(app: App) -> None:
    """Without a shared bus, another worker's edit reaches this cache within ``max_age``."""
    now = [0.0]
    catalog = DatastreamCatalog(max_age=60, clock=lambda: now[0])
    ds = create_sensor(app, "A")
    assert catalog.lookup(app.engine, {ds})[ds].disclosure == "public"
    with app.engine.begin() as conn:  # another worker's PATCH
        conn.execute(update(datastreams).where(datastreams.c.id == ds).values(disclosure="internal"))
    now[0] = 59.0
    assert catalog.lookup(app.engine, {ds})[ds].disclosure == "public", "still cached"
    now[0] = 61.0
    assert catalog.lookup(app.engine, {ds})[ds].disclosure == "internal"


def test_a_datastream_deleted_by_another_worker_is_refused_not_a_crash(app: App) -> None:
    keep, gone = create_sensor(app, "kept"), create_sensor(app, "deleted")
    t = datetime.now(UTC) - timedelta(minutes=5)
    app.ingest.ingest([ObservationIn(gone, 1.0, phenomenon_time=t)], channel="t")  # facts cached
    with app.engine.begin() as conn:  # deleted elsewhere; this process's cache does not know
        conn.execute(delete(datastreams).where(datastreams.c.id == gone))
    batch = [
        ObservationIn(keep, 2.0, phenomenon_time=t),
        ObservationIn(gone, 3.0, phenomenon_time=t + timedelta(seconds=1)),
    ]
    result = app.ingest.ingest(batch, channel="t")
    assert [r.datastream_id for r in result.stored] == [keep]
    assert [r.reason for r in result.rejected] == [f"unknown datastream {gone}"]


def test_warming_loads_every_datastream_in_one_go(app: App) -> None:
    ids = {create_sensor(app, name) for name in "ABC"}
    catalog = DatastreamCatalog()
    assert catalog.warm(app.engine) == len(ids)
    app.engine.dispose()  # no connection is needed any more to answer for them
    with patch.object(app.engine, "connect", side_effect=AssertionError("queried")):
        facts = catalog.lookup(app.engine, ids)
    assert {f.observed_property for f in facts.values()} == {"PM10"}
