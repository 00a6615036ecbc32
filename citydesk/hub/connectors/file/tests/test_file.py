"""file: Seoul's published CSV as it is (multi-line quoted headers, CRLF, with and without a BOM),
JSON with a records path, GeoJSON, and ``import_file`` storing each observation once however often
the same file is imported."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citydesk.errors import NotFound
from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.connectors.file.config import FileConfig
from citydesk.hub.connectors.file.connector import import_file
from citydesk.hub.connectors.mapping import Mapping
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.testing import collect, count_observations, make_datastreams, quarantined
from citydesk.hub.models import features_of_interest
from citydesk.hub.sources import SourceIn, SourceRunner, get_source
from citydesk.web.app import App

PAYLOADS = Path(__file__).parent / "payloads"
AIR = PAYLOADS / "air_quality_2019_11_12.csv"
FULL_YEAR = Path("/work/shared/data/seoul/air_quality/seoul_air_quality_daily_by_district_2019.csv")
COLUMNS = [
    "미세먼지",
    "초미세먼지",
    "오존",
    "이산화질소 NO2 (ppm)",
    "일산화탄소 CO (ppm)",
    "아황산가스 SO2(ppm)",
]
COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
pytestmark = pytest.mark.anyio


def stations(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return sorted({row[1] for row in list(csv.reader(fh))[1:] if row[0] != "전체"})


def expected_cells(path: Path) -> int:
    """Non-empty measurements of dated rows, counted independently of the connector."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))[1:]
    return sum(1 for row in rows if row[0] != "전체" for cell in row[2:] if cell.strip())


def air_mapping(app: App, names: list[str]) -> Mapping:
    fields = []
    for station in names:
        ids = make_datastreams(app.engine, COLUMNS, thing=f"{station} 대기질 측정소")
        fields += [{"source": c, "key": station, "datastream_id": ids[c]} for c in COLUMNS]
    return Mapping.model_validate({"time_field": "날짜", "key_fields": ["측정소명"], "fields": fields})


async def file_source(app: App, root: Path, name: str, path: Path, mapping: Mapping, **extra: object) -> int:
    runner = SourceRunner(app, file_roots=[root])
    spec = SourceIn(
        name=name, kind="file", config={"path": str(path), "mapping": mapping.model_dump(), **extra}
    )
    source = await runner.create(spec)
    return source.id


async def test_import_twice_stores_once(app: App, tmp_path: Path) -> None:
    path = tmp_path / "air.csv"
    path.write_bytes(b"\xef\xbb\xbf" + AIR.read_bytes())  # as Excel saves it: with a BOM
    mapping = air_mapping(app, stations(AIR))
    source_id = await file_source(app, tmp_path, "대기질 일평균 2019", path, mapping)
    first = import_file(app, path, source_name="대기질 일평균 2019")
    assert first.stored == expected_cells(AIR) > 9000
    assert first.rejected == 1 and first.batches == 2  # 1,587 rows: the "전체" summary row is not dated
    second = import_file(app, path, source_name="대기질 일평균 2019")
    assert (second.stored, second.duplicates) == (0, first.stored)
    assert count_observations(app.engine) == first.stored
    status = get_source(app.engine, source_id).status
    assert (status.records_in, status.records_rejected, status.last_run_records) == (first.stored, 2, 0)
    payload, reason = quarantined(app.engine, source_id)[0]
    assert reason.startswith("날짜: '전체' is not a time") and '"_line":5' in payload


async def test_import_with_a_mapping_but_no_source(app: App, tmp_path: Path) -> None:
    mapping = air_mapping(app, ["종로구"])
    mapping.unmapped = "skip"
    with pytest.raises(NotFound, match="create it first"):
        import_file(app, AIR, source_name="nobody")
    report = import_file(app, AIR, source_name="ad hoc", mapping=mapping)
    assert report.source_id is None and report.stored > 300


async def test_json_with_records_path_and_geojson_positions(app: App, tmp_path: Path) -> None:
    ids = make_datastreams(app.engine, ["강남구 PM10", "종로구 PM10"])
    mapping = Mapping.model_validate(
        {
            "time_field": "date",
            "key_fields": ["station"],
            "unmapped": "skip",
            "fields": [
                {"source": "pm10", "key": s, "datastream_id": ids[f"{s} PM10"]} for s in ("강남구", "종로구")
            ],
        }
    )
    config = FileConfig(
        path=str(PAYLOADS / "air_quality_20191231.json"), records_path="data.items", mapping=mapping
    )
    batch = await collect(ConnectorRegistry().connector("file").run(config, _ctx(app)))
    assert sorted(o.result for o in batch.observations) == [22.0, 27.0]

    path = PAYLOADS / "ddareungi_jongno_202306.geojson"
    station_ids = [str(f["id"]) for f in json.loads(path.read_text())["features"]]
    racks = make_datastreams(
        app.engine, station_ids, thing="따릉이 종로구", position=None, observation_type=COUNT
    )
    geo = Mapping.model_validate(
        {
            "time_field": "설치시기",
            "key_fields": ["대여소번호"],
            "fields": [
                {"source": "QR", "key": k, "datastream_id": racks[k], "converter": "int"} for k in station_ids
            ],
        }
    )
    report = import_file(app, path, source_name="따릉이", mapping=geo)
    assert report.stored == 20 and report.rejected == 0
    with app.engine.connect() as conn:  # every station's position became a FeatureOfInterest
        assert conn.execute(select(func.count()).select_from(features_of_interest)).scalar_one() == 20


def _ctx(app: App, root: Path | None = None, state: dict | None = None):
    runner = SourceRunner(app, file_roots=[root] if root else None)
    import httpx

    ctx = runner.context(None, httpx.AsyncClient())
    ctx.state = state if state is not None else {}
    return ctx


async def test_a_source_rereads_only_changed_files_and_resumes_after_a_crash(
    app: App, tmp_path: Path
) -> None:
    path = tmp_path / "air.csv"
    shutil.copy(AIR, path)
    mapping = air_mapping(app, stations(AIR))
    config = FileConfig(path=str(path), mapping=mapping)
    connector = ConnectorRegistry().connector("file")
    ctx = _ctx(app, tmp_path)
    gen = connector.run(config, ctx)
    await anext(gen)  # rows 1-1000 handed over...
    await anext(gen)  # ...and committed when the runner comes back for more
    assert ctx.state["rows"] == 1000 and ctx.state["complete"] is False
    await gen.aclose()  # crash while rows 1001-1587 were being stored
    rest = await collect(connector.run(config, ctx))
    assert ctx.state["rows"] == 1587 and ctx.state["complete"] is True
    assert min(str(o.phenomenon_time) for o in rest.observations) >= "2019-11-01"
    assert (await collect(connector.run(config, ctx))).observations == []  # unchanged: nothing to do
    with path.open("a", encoding="utf-8", newline="") as fh:
        fh.write("2020-01-01,종로구,41,25,0.01,0.03,0.5,0.003\r\n")
    assert len((await collect(connector.run(config, ctx))).observations) > 9000  # changed: read again


async def test_paths_outside_the_import_folder_are_refused(app: App, tmp_path: Path) -> None:
    config = FileConfig(path="/etc/passwd", format="csv", mapping=air_mapping(app, ["종로구"]))
    connector = ConnectorRegistry().connector("file")
    with pytest.raises(ConnectorError, match="outside the import folder"):
        await connector.check(config, _ctx(app, tmp_path))
    with pytest.raises(ConnectorError, match="no file"):
        await connector.check(
            config.model_copy(update={"path": str(tmp_path / "x.csv")}), _ctx(app, tmp_path)
        )
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("날짜,측정소명\r\n".encode("cp949"))
    with pytest.raises(ConnectorError, match="is not utf-8 text"):
        await connector.check(config.model_copy(update={"path": str(bad)}), _ctx(app, tmp_path))


@pytest.mark.skipif(not FULL_YEAR.exists(), reason="the shared Seoul data bundle is not here")
async def test_full_year_import_figures(app: App) -> None:
    mapping = air_mapping(app, stations(FULL_YEAR))
    started = time.perf_counter()
    first = import_file(app, FULL_YEAR, source_name="2019", mapping=mapping)
    elapsed = time.perf_counter() - started
    again = import_file(app, FULL_YEAR, source_name="2019", mapping=mapping)
    assert first.stored == expected_cells(FULL_YEAR) == count_observations(app.engine)
    assert again.stored == 0 and again.duplicates == first.stored
    print(
        f"\nfile → {app.engine.dialect.name}: {first.stored} observations from 9,491 rows in {elapsed:.2f} s "
        f"({first.stored / elapsed:.0f}/s); re-import {again.seconds:.2f} s"
    )
