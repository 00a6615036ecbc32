"""Sources: the registry, the service, the runner and the API/pages, on SQLite and PostgreSQL.

The far side of each connector is real (files, a SQLite "other system", Mosquitto) except HTTP,
where only the transport is swapped for ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from citydesk.auth import create_user
from citydesk.hub.connectors.base import Connector, RunContext
from citydesk.hub.connectors.manual.config import ManualConfig
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.testing import count_observations, make_datastreams, quarantined
from citydesk.hub.models import quarantine, sources
from citydesk.hub.records import Batch, ObservationIn, Rejected
from citydesk.hub.sources import Backoff, SourceIn, SourceRunner, attach, create_source, get_source
from citydesk.web.app import App
from tests.conftest import port_open

CONNECTORS = Path(__file__).resolve().parents[1] / "citydesk" / "hub" / "connectors"
AIR_CSV = CONNECTORS / "file" / "tests" / "payloads" / "air_quality_2019_11_12.csv"
AIR_JSON = CONNECTORS / "http_api" / "tests" / "payloads" / "daily_average_air_quality_20191231.json"
PW = "correct horse battery"
OFFICIAL, STAFF = ("kim", PW), ("lee", PW)


# -- fixtures and helpers ---------------------------------------------------------------------
def air_api(status: int = 200) -> httpx.MockTransport:
    body = AIR_JSON.read_bytes()
    return httpx.MockTransport(lambda r: httpx.Response(status, content=body if status == 200 else b"busy"))


@pytest.fixture
def users(app: App) -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    create_user(app.engine, "kim", "official", PW, now=now)
    create_user(app.engine, "lee", "department_staff", PW, now=now)


@pytest.fixture
def imports(tmp_path: Path) -> Path:
    folder = tmp_path / "imports"
    folder.mkdir()
    shutil.copy(AIR_CSV, folder / "air.csv")
    return folder


@pytest.fixture
def hub(app: App, users: None, imports: Path, client: TestClient) -> Iterator[TestClient]:
    """The API with an (unstarted) runner reading files from ``imports`` and HTTP from a mock."""
    attach(app, http_factory=lambda: httpx.AsyncClient(transport=air_api()), file_roots=[imports])
    yield client


def air_mapping(app: App, station: str = "종로구") -> dict[str, Any]:
    ids = make_datastreams(app.engine, ["PM10", "PM2.5"], thing=f"{station} 측정소")
    return {
        "time_field": "날짜",
        "key_fields": ["측정소명"],
        "unmapped": "skip",
        "fields": [
            {"source": "미세먼지", "key": station, "datastream_id": ids["PM10"]},
            {"source": "초미세먼지", "key": station, "datastream_id": ids["PM2.5"]},
        ],
    }


def file_source(app: App, imports: Path, name: str = "대기질", **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "file",
        "config": {"path": str(imports / "air.csv"), "mapping": air_mapping(app), **config},
    }


def api_source(app: App, name: str = "서울 열린데이터 대기질") -> dict[str, Any]:
    ids = make_datastreams(app.engine, ["강남구 PM10"])
    return {
        "name": name,
        "kind": "http_api",
        "interval_seconds": 3600,
        "config": {
            "url": "http://openapi.seoul.go.kr:8088/{api_key}/json/DailyAverageAirQuality/1/25/",
            "api_key": "6d4b-secret",
            "records_path": "DailyAverageAirQuality.row",
            "mapping": {
                "time_field": "MSRDT_DE",
                "time_format": "%Y%m%d",
                "key_fields": ["MSRSTE_NM"],
                "fields": [{"source": "PM10", "key": "강남구", "datastream_id": ids["강남구 PM10"]}],
            },
        },
    }


# -- registry -------------------------------------------------------------------------------
def test_every_manifest_and_strings_file_is_valid() -> None:
    registry = ConnectorRegistry()
    assert registry.kinds() == ["file", "http_api", "manual", "mqtt", "sql_db"]
    assert registry.validate_manifests() == []


def test_connector_code_is_imported_only_when_used() -> None:
    code = (
        "import sys; from citydesk.hub.connectors.registry import ConnectorRegistry as R; r = R(); "
        "m = 'citydesk.hub.connectors.mqtt.session'; "
        "[r.describe(k) for k in r.kinds()]; print(m in sys.modules, end=' '); "
        "r.connector('mqtt'); print(m in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False True"


def test_a_plugin_registers_like_a_builtin_and_is_checked(tmp_path: Path) -> None:
    kind = tmp_path / "weather_station"
    (kind / "tests").mkdir(parents=True)
    (kind / "manifest.toml").write_text(
        'kind = "weather_station"\nname = "Weather"\nmode = "poll"\n'
        'entry = "citydesk.hub.connectors.http_api.connector:HttpApiConnector"\n'
        'config = "citydesk.hub.connectors.http_api.config:HttpApiConfig"\n'
        'requirements = []\nowners = ["@someone"]\n[quality]\nconfig_schema = "maybe"\n'
    )
    (kind / "strings.toml").write_text(
        '[en]\ntitle = "Weather"\ndescription = "x"\n[en.fields.url]\nlabel = "URL"\n'
    )
    registry = ConnectorRegistry([CONNECTORS, tmp_path])
    assert "weather_station" in registry.kinds()
    problems = registry.validate_manifests()
    assert all(p.startswith("weather_station: ") for p in problems)
    text = "\n".join(problems)
    assert "quality rule 'config_schema' is 'maybe'" in text
    assert "strings.toml has no [ko] table" in text
    assert "[en] has no label for config field 'mapping'" in text


# -- API: auth, create, check, conflicts -----------------------------------------------------
def test_sources_are_staff_only_and_managed_by_officials(app: App, hub: TestClient, imports: Path) -> None:
    assert hub.get("/api/hub/sources").status_code == 401
    assert hub.get("/api/hub/sources", auth=STAFF).json() == {"sources": []}
    assert hub.post("/api/hub/sources", json=file_source(app, imports), auth=STAFF).status_code == 403
    created = hub.post("/api/hub/sources", json=file_source(app, imports), auth=OFFICIAL)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["kind"], body["mode"], body["interval_seconds"], body["status"]["state"]) == (
        "file",
        "poll",
        300,
        "idle",
    )
    assert hub.get("/api/hub/quarantine").status_code == 401
    kinds = hub.get("/api/hub/connectors", auth=STAFF).json()["connectors"]
    mqtt = next(k for k in kinds if k["kind"] == "mqtt")
    assert mqtt["mode"] == "stream" and "topics" in mqtt["schema"]["properties"]
    assert mqtt["strings"]["ko"]["fields"]["topics"]["label"] == "토픽"


def test_create_refuses_duplicates_bad_configs_and_failed_checks(
    app: App, hub: TestClient, imports: Path
) -> None:
    assert hub.post("/api/hub/sources", json=file_source(app, imports), auth=OFFICIAL).status_code == 201
    dup = hub.post("/api/hub/sources", json=file_source(app, imports), auth=OFFICIAL)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
    bad = file_source(app, imports, name="typo", pathh="x")
    answer = hub.post("/api/hub/sources", json=bad, auth=OFFICIAL).json()["error"]
    assert answer["code"] == "validation_failed" and answer["message"].startswith("config.pathh")
    missing = file_source(app, imports, name="missing", path=str(imports / "nope.csv"))
    failed = hub.post("/api/hub/sources", json=missing, auth=OFFICIAL)
    assert failed.status_code == 400 and "failed its check: no file" in failed.json()["error"]["message"]
    unknown = hub.post("/api/hub/sources", json={"name": "x", "kind": "ftp", "config": {}}, auth=OFFICIAL)
    assert unknown.json()["error"]["details"]["known"] == ["file", "http_api", "manual", "mqtt", "sql_db"]
    assert [s["name"] for s in hub.get("/api/hub/sources", auth=STAFF).json()["sources"]] == ["대기질"]


def test_run_status_quarantine_paging_and_the_page_twins(app: App, hub: TestClient, imports: Path) -> None:
    body = file_source(app, imports)
    body["config"]["mapping"]["unmapped"] = "reject"
    source = hub.post("/api/hub/sources", json=body, auth=OFFICIAL).json()
    run = hub.post(f"/api/hub/sources/{source['id']}/run", auth=OFFICIAL).json()
    assert run["run"]["stored"] == 122 and run["run"]["error"] is None  # 종로구 PM10 + PM2.5, Nov-Dec 2019
    status = run["source"]["status"]
    assert status["records_in"] == 122 and status["records_rejected"] == run["run"]["rejected"] > 1500
    assert status["cursor"]["complete"] is True and status["last_success_at"] is not None

    page1 = hub.get(f"/api/hub/quarantine?source_id={source['id']}&limit=2", auth=STAFF).json()
    assert page1["items"][0]["reason"].startswith("no mapping for key")
    assert page1["items"][0]["id"] > page1["items"][1]["id"]  # newest first
    page2 = hub.get(page1["next_url"], auth=STAFF).json()
    assert page2["items"][0]["id"] < page1["items"][1]["id"]
    assert hub.get("/api/hub/quarantine?next=garbage", auth=STAFF).json()["error"]["code"] == "invalid_query"

    # Each page is rendered from the same service call as its JSON twin.
    listing = hub.get("/api/hub/sources", auth=STAFF).json()["sources"][0]
    page = hub.get("/hub/sources", auth=STAFF).text
    assert listing["name"] in page and f">{listing['status']['records_in']} <" in page
    assert f"/hub/quarantine?source_id={listing['id']}" in page
    qhtml = hub.get(f"/hub/quarantine?source_id={source['id']}&limit=2", auth=STAFF).text
    assert html.unescape(qhtml).count(page1["items"][0]["reason"]) == 1 and 'rel="next"' in qhtml
    signed_out = hub.get("/hub/sources", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login?next=/hub/sources"


def test_patch_keeps_masked_secrets_and_delete_keeps_quarantine(app: App, hub: TestClient) -> None:
    created = hub.post("/api/hub/sources", json=api_source(app), auth=OFFICIAL)
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["config"]["api_key"] == "********"
    config = source["config"] | {"timeout_seconds": 5}
    patched = hub.patch(
        f"/api/hub/sources/{source['id']}", json={"config": config, "enabled": False}, auth=OFFICIAL
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    stored = get_source(app.engine, source["id"]).config
    assert stored["api_key"] == "6d4b-secret" and stored["timeout_seconds"] == 5
    run = hub.post(f"/api/hub/sources/{source['id']}/run", auth=OFFICIAL).json()["run"]
    assert (run["stored"], run["rejected"]) == (1, 24)
    assert (
        hub.patch(f"/api/hub/sources/{source['id']}", json={"name": "x" * 201}, auth=OFFICIAL).status_code
        == 400
    )
    assert hub.delete(f"/api/hub/sources/{source['id']}", auth=STAFF).status_code == 403
    assert hub.delete(f"/api/hub/sources/{source['id']}", auth=OFFICIAL).status_code == 204
    assert hub.get(f"/api/hub/sources/{source['id']}", auth=STAFF).status_code == 404
    with app.engine.connect() as conn:
        kept = conn.execute(select(quarantine.c.source_id, quarantine.c.channel)).all()
    assert len(kept) == 24 and {tuple(r) for r in kept} == {(None, "http_api")}


# -- manual entry ------------------------------------------------------------------------------
def test_manual_entry_api_and_form(app: App, hub: TestClient) -> None:
    public = make_datastreams(app.engine, ["종로구 소음"], unit="dB")
    secret = make_datastreams(app.engine, ["청사 출입 인원"], disclosure="restricted")
    offered = hub.get("/api/hub/manual", auth=STAFF).json()["datastreams"]
    assert [d["name"] for d in offered] == ["종로구 소음"]  # staff may not see restricted data
    entry = {"datastream_id": public["종로구 소음"], "value": "61.5", "time": "2024-05-01T14:00:00"}
    ok = hub.post("/api/hub/manual", json=entry, auth=STAFF)
    assert ok.status_code == 201 and len(ok.json()["stored"]) == 1
    assert hub.post("/api/hub/manual", json=entry, auth=STAFF).json()["duplicates"] == 1  # a double click
    bad = hub.post("/api/hub/manual", json=entry | {"value": "시끄러움"}, auth=STAFF)
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "'시끄러움' is not a number"
    hidden = hub.post("/api/hub/manual", json=entry | {"datastream_id": secret["청사 출입 인원"]}, auth=STAFF)
    assert hidden.status_code == 404
    assert hub.post("/api/hub/manual", json=entry).status_code == 401

    form = hub.get("/hub/manual", auth=STAFF).text
    assert "종로구 소음 (dB)" in form and "청사 출입 인원" not in form
    fields = {
        "datastream_id": str(public["종로구 소음"]),
        "value": "58",
        "time": "2024-05-01T15:00",
        "note": "점검",
    }
    saved = hub.post("/hub/manual", data=fields, auth=STAFF)
    assert saved.status_code == 200 and "Stored" in saved.text
    refused = hub.post("/hub/manual", data=fields | {"value": "abc"}, auth=STAFF)
    assert refused.status_code == 400 and "&#39;abc&#39; is not a number" in refused.text
    assert count_observations(app.engine, public.values()) == 2
    with app.engine.connect() as conn:
        assert conn.execute(select(quarantine)).first() is None  # typos are shown, not quarantined


# -- runner ------------------------------------------------------------------------------------
class Flaky:
    """An HTTP API that fails ``failures`` times, then answers the recorded payload."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            return httpx.Response(503, text="<html>Service Temporarily Unavailable</html>")
        return httpx.Response(200, content=AIR_JSON.read_bytes())


async def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_runner_backs_off_logs_once_per_streak_and_isolates_sources(
    app: App, imports: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup = SourceRunner(
        app, http_factory=lambda: httpx.AsyncClient(transport=air_api()), file_roots=[imports]
    )
    http, _ = await setup.client()
    ctx = setup.context(None, http)
    api = await create_source(
        app.engine, setup.registry, SourceIn.model_validate(api_source(app)), now=app.now(), ctx=ctx
    )
    spec = SourceIn.model_validate(file_source(app, imports) | {"interval_seconds": 3600})
    other = await create_source(app.engine, setup.registry, spec, now=app.now(), ctx=ctx)
    await http.aclose()
    flaky = Flaky(failures=4)
    runner = SourceRunner(
        app,
        http_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(flaky)),
        file_roots=[imports],
        backoff=Backoff(base=0.01, cap=0.05),
    )
    caplog.set_level(logging.INFO, logger="citydesk.hub.sources.runner")
    await runner.start()
    try:
        await wait_for(lambda: get_source(app.engine, api.id).status.records_in == 1)
        await wait_for(lambda: get_source(app.engine, other.id).status.records_in == 122)
    finally:
        await runner.stop()
    status = get_source(app.engine, api.id).status
    assert status.consecutive_failures == 0  # recovered; the last error stays on record, key masked
    assert status.last_error == (
        "HTTP 503 from http://openapi.seoul.go.kr:8088/***/json/DailyAverageAirQuality/1/25/: "
        "<html>Service Temporarily Unavailable</html>"
    )
    assert flaky.calls == 5
    messages = [r.getMessage() for r in caplog.records if f"source {api.id} " in r.getMessage()]
    assert [m.split(":")[0] for m in messages] == [
        f"source {api.id} (서울 열린데이터 대기질) failing",
        f"source {api.id} (서울 열린데이터 대기질) recovered after 4 failure(s)",
    ]
    assert runner.running() == []


@pytest.mark.anyio
async def test_a_sql_source_takes_each_row_once_across_runs(app: App, tmp_path: Path) -> None:
    other = create_engine(f"sqlite:///{tmp_path}/plant.db")
    with other.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, at TEXT, station TEXT, pm10 REAL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO readings (at, station, pm10) VALUES "
            "('2019-12-30 00:00:00', '종로구', 31), ('2019-12-31 00:00:00', '종로구', 27)"
        )
    ds = make_datastreams(app.engine, ["PM10"])["PM10"]
    runner = SourceRunner(app)
    http, _ = await runner.client()
    spec = SourceIn(
        name="plant",
        kind="sql_db",
        config={
            "url": f"sqlite:///{tmp_path}/plant.db",
            "query": "SELECT * FROM readings",
            "cursor_column": "id",
            "mapping": {"time_field": "at", "fields": [{"source": "pm10", "datastream_id": ds}]},
        },
    )
    source = await create_source(
        app.engine, runner.registry, spec, now=app.now(), ctx=runner.context(None, http)
    )
    await http.aclose()
    assert (await runner.run_now(source.id)).stored == 2
    with other.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO readings (at, station, pm10) VALUES ('2020-01-01 00:00:00', '중구', 41)"
        )
    third = await runner.run_now(source.id)
    assert (third.stored, third.duplicates) == (1, 0)  # only the new row was read
    assert get_source(app.engine, source.id).status.cursor == {"cursor": 3}
    assert count_observations(app.engine, [ds]) == 3
    other.dispose()


@pytest.mark.anyio
@pytest.mark.mqtt
async def test_a_stream_source_runs_until_stopped(app: App) -> None:
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")
    from citydesk.hub.connectors.mqtt.tests.test_mqtt import prime, publish

    ds = make_datastreams(app.engine, ["S-DoT 온도"])["S-DoT 온도"]
    prefix = f"citydesk-test/{uuid.uuid4().hex[:10]}"
    runner = SourceRunner(app, stream_flush_seconds=0.0)
    http, _ = await runner.client()
    spec = SourceIn(
        name="S-DoT",
        kind="mqtt",
        config={
            "topics": [f"{prefix}/v1.1/#"],
            "client_id": f"cd-{prefix[-10:]}",
            "session_expiry_seconds": 300,
        },
    )
    source = await create_source(
        app.engine, runner.registry, spec, now=app.now(), ctx=runner.context(None, http)
    )
    await http.aclose()
    with pytest.raises(Exception, match="not run on demand"):
        await runner.run_now(source.id)
    prime(f"cd-{prefix[-10:]}", [f"{prefix}/v1.1/#"])
    await runner.start()
    try:
        msgs = [
            (
                f"{prefix}/v1.1/Datastreams({ds})/Observations",
                json.dumps({"result": 3.5 + i, "phenomenonTime": f"2019-12-31T0{i}:00:00+09:00"}),
            )
            for i in range(5)
        ]
        await asyncio.to_thread(publish, [*msgs, (f"{prefix}/v1.1/Datastreams({ds})/Observations", "{oops")])
        await wait_for(lambda: get_source(app.engine, source.id).status.records_in == 5)
        await wait_for(lambda: get_source(app.engine, source.id).status.records_rejected == 1)
        assert get_source(app.engine, source.id).status.state == "streaming"
    finally:
        await runner.stop()
    assert count_observations(app.engine, [ds]) == 5
    with app.engine.connect() as conn:
        assert conn.execute(select(sources.c.name)).scalar_one() == "S-DoT"


class PoisonConnector(Connector):
    """A plugin with a bug: one record breaks the pipeline's contract (a time given as text)."""

    config_model = ManualConfig

    async def check(self, config: Any, ctx: RunContext) -> None:
        return None

    async def run(self, config: Any, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        when = datetime(2019, 12, 31, tzinfo=UTC)
        ds = config.datastream_ids[0]
        yield Batch(
            observations=[
                ObservationIn(ds, 27.0, when),
                # A plugin bug validation cannot see: parameters that cannot be stored as JSON.
                ObservationIn(ds, 31.0, when.replace(day=29), parameters={"bad": {1, 2}}),
                ObservationIn(ds, 16.0, when.replace(day=30)),
            ],
            rejected=[Rejected({"raw": "PM10=?"}, "not a number")],
        )


@pytest.mark.anyio
async def test_a_record_that_breaks_the_pipeline_is_quarantined_not_retried_forever(
    app: App, tmp_path: Path
) -> None:
    folder = tmp_path / "poison"
    (folder / "tests").mkdir(parents=True)
    (folder / "manifest.toml").write_text(
        f'kind = "poison"\nname = "Poison"\nmode = "poll"\nentry = "{__name__}:PoisonConnector"\n'
        'config = "citydesk.hub.connectors.manual.config:ManualConfig"\nrequirements = []\nowners = []\n'
        "[quality]\n"
    )
    registry = ConnectorRegistry([CONNECTORS, tmp_path])
    ds = make_datastreams(app.engine, ["PM10"])["PM10"]
    runner = SourceRunner(app, registry=registry)
    http, _ = await runner.client()
    spec = SourceIn(name="buggy plugin", kind="poison", config={"datastream_ids": [ds]})
    source = await create_source(app.engine, registry, spec, now=app.now(), ctx=runner.context(None, http))
    await http.aclose()
    outcome = await runner.run_now(source.id)
    assert (outcome.stored, outcome.rejected, outcome.error) == (2, 2, None)
    reasons = sorted(reason for _, reason in quarantined(app.engine, source.id))
    assert reasons[0].startswith("could not be processed (") and reasons[1] == "not a number"
