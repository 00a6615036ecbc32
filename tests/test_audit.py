"""Reads of restricted (personal) data through the SensorThings API are written to the audit log;
reads that show none are not."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from citydesk.auth import Role, create_user
from citydesk.auth.models import audit_log
from citydesk.hub.records import ObservationIn
from citydesk.web.app import App
from tests.conftest import create_sensor


def _audit(app: App) -> list[tuple[str, str, str]]:
    with app.engine.connect() as conn:
        return [
            (r.action, r.target, r.detail) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ]


def test_restricted_reads_are_audited(app: App, client: TestClient, staff: tuple[str, str]) -> None:
    create_user(app.engine, "lee.staff", Role.DEPARTMENT_STAFF, "department-password", now=datetime.now(UTC))
    counts = create_sensor(app, "Crowd counter", disclosure="restricted", observed_property="People")
    public = create_sensor(app, "Noise", observed_property="Noise")
    now = datetime.now(UTC)
    app.ingest.ingest(
        [ObservationIn(counts, 12.0, phenomenon_time=now), ObservationIn(public, 55.0, phenomenon_time=now)],
        channel="t",
    )
    assert client.get(f"/sta/v1.1/Datastreams({public})/Observations", auth=staff).status_code == 200
    assert (
        client.get(f"/sta/v1.1/Datastreams({counts})", auth=("lee.staff", "department-password")).status_code
        == 404
    )
    assert client.get("/sta/v1.1/Observations").status_code == 200  # anonymous: public only
    assert _audit(app) == []
    assert (
        client.get(f"/sta/v1.1/Datastreams({counts})/Observations", auth=staff).json()["value"][0]["result"]
        == 12
    )
    assert (
        client.get("/sta/v1.1/Observations", params={"$resultFormat": "dataArray"}, auth=staff).status_code
        == 200
    )
    assert (
        client.get(f"/sta/v1.1/Datastreams({counts})/name/$value", auth=staff).text == "Crowd counter People"
    )
    entries = _audit(app)
    assert [(a, t) for a, t, _ in entries] == [
        ("sta.read", f"Datastreams({counts})/Observations"),
        ("sta.read", "Observations?%24resultFormat=dataArray"),
        ("sta.read", f"Datastreams({counts})/name/$value"),
    ]
    assert entries[0][2] == "1 restricted entities"
