"""The latest-values snapshot: fresh from this worker's writes, caught up with other writers,
and never showing a datastream that is no longer public."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from citydesk.auth import ANONYMOUS, Principal, Role
from citydesk.hub.models import datastreams
from citydesk.hub.records import ObservationIn, StoredObservation
from citydesk.web.app import App
from tests.conftest import create_sensor

ADMIN = Principal.for_user(None, "t", Role.ADMIN)


def _values(app: App, who: Principal = ANONYMOUS, **kw: str) -> dict[int, object]:
    with app.engine.connect() as conn:
        return {e["datastream"]: e["result"] for e in app.latest.values(conn, who.levels, **kw)}


def test_own_writes_show_at_once_and_other_writers_after_a_poll(app: App) -> None:
    ds = create_sensor(app, "A")
    now = datetime.now(UTC)
    app.ingest.ingest([ObservationIn(ds, 41.0, phenomenon_time=now - timedelta(minutes=2))], channel="t")
    assert _values(app) == {ds: 41.0}
    app.ingest.ingest([ObservationIn(ds, 12.5, phenomenon_time=now - timedelta(minutes=1))], channel="t")
    app.ingest.ingest([ObservationIn(ds, 99.0, phenomenon_time=now - timedelta(minutes=30))], channel="t")
    assert _values(app) == {ds: 12.5}, "an older observation must not replace the latest"
    # Another process writes straight through the store: no event reaches this worker.
    row = StoredObservation(ds, "default", now, None, None, None, None, 7.0, None, None, None, None, "11680")
    app.store.prepare([row])
    with app.engine.begin() as conn:
        app.store.write(conn, [row], dedupe=False)
    assert _values(app) == {ds: 12.5}
    app.latest.refresh()
    assert _values(app) == {ds: 7.0}


def test_visibility_is_checked_on_every_read(app: App) -> None:
    public, internal = create_sensor(app, "P"), create_sensor(app, "I", disclosure="internal")
    now = datetime.now(UTC)
    app.ingest.ingest(
        [ObservationIn(public, 1.0, phenomenon_time=now), ObservationIn(internal, 2.0, phenomenon_time=now)],
        channel="t",
    )
    assert set(_values(app)) == {public}
    assert set(_values(app, ADMIN)) == {public, internal}
    assert _values(app, observed_property="PM10") == {public: 1.0}
    assert _values(app, observed_property="NO2") == {}
    # Made internal by another worker (straight in the database): hidden on the very next read.
    with app.engine.begin() as conn:
        conn.execute(update(datastreams).where(datastreams.c.id == public).values(disclosure="internal"))
    assert _values(app) == {}


def test_latest_route(app: App, client: TestClient) -> None:
    ds = create_sensor(app, "R")
    app.ingest.ingest([ObservationIn(ds, 33.0, phenomenon_time=datetime.now(UTC))], channel="t")
    body = client.get("/api/hub/latest").json()
    assert body["value"][0]["datastream"] == ds
    assert body["value"][0]["result"] == 33.0
    assert body["value"][0]["district"] == "11680"
