"""Retention per family drops old raw observations (whole partitions on PostgreSQL) while the
rollups, and the aggregates served from them, stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from citydesk.auth import Principal, Role
from citydesk.hub.models import observations, rollup_daily, rollup_hourly
from citydesk.hub.records import ObservationIn
from citydesk.hub.retention import apply_retention, set_policy
from citydesk.web.app import App
from tests.conftest import create_sensor

ADMIN = Principal.for_user(None, "t", Role.ADMIN)


def _partitions(app: App) -> set[str]:
    with app.engine.connect() as conn:
        return {
            r[0]
            for r in conn.execute(
                text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'obs\\_sdot\\_%'")
            )
        }


def test_retention_drops_old_raw_data_and_keeps_rollups(app: App, client: TestClient) -> None:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    sdot = create_sensor(
        app, "sdot", family="sdot", observed_property="PM10-sdot", lon_lat=(126.9784, 37.5667)
    )
    other = create_sensor(app, "traffic", family="traffic", observed_property="PM10-traffic")
    set_policy(app.engine, "sdot", raw_days=2, hourly_days=30, daily_days=None)
    days_ago = [5, 4, 1, 0]
    records = [
        ObservationIn(ds, 10.0 * d + i, phenomenon_time=now - timedelta(days=d, minutes=i))
        for ds in (sdot, other)
        for d in days_ago
        for i in range(3)
    ]
    result = app.ingest.ingest(records, channel="t")
    assert len(result.stored) == len(records)
    postgres = app.engine.dialect.name == "postgresql"
    if postgres:
        before = _partitions(app)
        assert len(before) >= 4
    report = apply_retention(app.engine, now=now)
    with app.engine.connect() as conn:
        raw = dict(
            conn.execute(
                select(observations.c.datastream_id, func.count()).group_by(observations.c.datastream_id)
            ).all()
        )
        hourly = conn.execute(
            select(func.count()).select_from(rollup_hourly).where(rollup_hourly.c.datastream_id == sdot)
        ).scalar()
        daily = conn.execute(
            select(func.count()).select_from(rollup_daily).where(rollup_daily.c.datastream_id == sdot)
        ).scalar()
    assert raw[sdot] == 6, report  # only the last two days of the sdot family remain
    assert raw[other] == 12  # the default policy (90 days) keeps everything of the other family
    assert hourly == 4 and daily >= 4
    if postgres:
        dropped = before - _partitions(app)
        assert len(dropped) == 2 and all("sdot" in name for name in dropped)
        assert any("dropped raw partition" in line for line in report)
    # Aggregates over the dropped days still answer, from the rollups.
    start = (now - timedelta(days=6)).isoformat()
    body = client.get(
        f"/sta/v1.1/Datastreams({sdot})/Observations/$aggregate", params={"interval": "hour", "start": start}
    ).json()
    counts = [p["count"] for p in body["value"]]
    assert counts == [3, 3, 3, 3]
    assert body["value"][0]["max"] == 52.0  # 5 days ago: 50, 51, 52
    # Writing into a day whose partition was dropped recreates it (this process learns of the drop).
    late = app.ingest.ingest(
        [ObservationIn(sdot, 1.0, phenomenon_time=now - timedelta(days=5, hours=2))], channel="t"
    )
    assert len(late.stored) == 1
