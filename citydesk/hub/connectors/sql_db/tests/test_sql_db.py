"""sql_db against real databases: a fresh PostgreSQL database and a SQLite file play "the other system"."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, String, Table, create_engine, func, select
from sqlalchemy import DateTime as SaDateTime

from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.connectors.registry import ConnectorRegistry
from citydesk.hub.connectors.sql_db.config import SqlDbConfig
from citydesk.hub.connectors.testing import collect, count_observations, make_datastreams, run_context
from citydesk.web.app import App

ROWS = Path(__file__).parent / "payloads" / "air_quality_2019_12_three_districts.csv"
SEOUL = ZoneInfo("Asia/Seoul")
STATIONS = ("강남구", "종로구", "중구")
pytestmark = pytest.mark.anyio

meta = MetaData()
readings = Table(
    "readings",
    meta,
    Column("id", Integer, primary_key=True),
    Column("station", String(20), nullable=False),
    Column("measured_at", SaDateTime, nullable=False),  # naive: the other system's local time
    Column("pm10", Numeric(6, 1)),
    Column("pm25", Numeric(6, 1)),
)


def _recorded() -> list[dict]:
    with ROWS.open(newline="", encoding="utf-8") as fh:
        return [
            {
                "station": r["station"],
                "measured_at": datetime.fromisoformat(r["date"]),
                "pm10": Decimal(r["pm10"]),
                "pm25": Decimal(r["pm25"]),
            }
            for r in csv.DictReader(fh)
        ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def other_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of another system's database holding 93 daily readings (December 2019, three districts)."""
    url = f"sqlite:///{tmp_path}/other.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(readings.insert(), _recorded())
    engine.dispose()
    yield url


def add_rows(url: str, rows: list[dict]) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(readings.insert(), rows)
    engine.dispose()


def config_for(url: str, ids: dict[str, int] | None = None, **extra: object) -> SqlDbConfig:
    ids = ids or {
        f"{s} {p}": n for n, (s, p) in enumerate(((s, p) for s in STATIONS for p in ("pm10", "pm25")), 1)
    }
    fields = [
        {"source": p, "key": s, "datastream_id": ids[f"{s} {p}"]} for s in STATIONS for p in ("pm10", "pm25")
    ]
    raw = {
        "url": url,
        "query": "SELECT id, station, measured_at, pm10, pm25 FROM readings",
        "cursor_column": "id",
        "batch_size": 40,
        "mapping": {"time_field": "measured_at", "key_fields": ["station"], "fields": fields},
    } | extra
    return SqlDbConfig.model_validate(raw)


def connector():
    return ConnectorRegistry().connector("sql_db")


async def test_rows_are_taken_once_with_the_cursor(other_db: str) -> None:
    config = config_for(other_db)
    ctx = run_context()
    first = await collect(connector().run(config, ctx))
    assert len(first.observations) == 93 * 2 and first.rejected == []
    assert ctx.state == {"cursor": 93}
    assert min(str(o.phenomenon_time) for o in first.observations) == "2019-12-01 00:00:00+09:00"
    assert {type(o.result) for o in first.observations} == {float}
    again = await collect(connector().run(config, ctx))
    assert again.observations == [] and ctx.state == {"cursor": 93}
    add_rows(
        other_db,
        [
            {"station": "중구", "measured_at": datetime(2020, 1, 1), "pm10": 41, "pm25": None},
            {"station": "마포구", "measured_at": datetime(2020, 1, 1), "pm10": 39, "pm25": 22},
        ],
    )
    new = await collect(connector().run(config, ctx))
    assert [(o.result, str(o.phenomenon_time)) for o in new.observations] == [
        (41.0, "2020-01-01 00:00:00+09:00")
    ]
    assert [r.reason for r in new.rejected] == ["no mapping for key '마포구'"]  # unknown station: quarantined
    assert ctx.state == {"cursor": 95}


async def test_cursor_moves_only_after_the_batch_is_committed(other_db: str) -> None:
    ctx = run_context(state={"cursor": 10})
    gen = connector().run(config_for(other_db), ctx)
    await anext(gen)  # rows 11..50 handed over, not yet stored
    assert ctx.state == {"cursor": 10}
    await anext(gen)  # the runner came back: rows 11..50 are committed
    assert ctx.state == {"cursor": 50}
    await gen.aclose()  # crash before rows 51..90 were stored: they will be read again
    assert ctx.state == {"cursor": 50}


@pytest.mark.postgres
async def test_the_session_is_read_only(pg_url: str) -> None:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    meta.create_all(engine)
    add_rows(pg_url, _recorded()[:3])
    sneaky = config_for(
        pg_url, query="WITH gone AS (DELETE FROM readings RETURNING *) SELECT * FROM gone", cursor_column=None
    )
    with pytest.raises(ConnectorError, match="read-only transaction"):
        await collect(connector().run(sneaky, run_context()))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 3
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query": "DELETE FROM readings"}, "single SELECT"),
        ({"query": "SELECT 1; DROP TABLE readings"}, "single statement"),
        ({"url": "postgresql://reader:hunter2@db/air"}, "password field"),
        ({"url": "oracle://reader@db/air"}, "unsupported database"),
        ({"cursor_column": "id; --"}, "plain column name"),
    ],
)
def test_config_refuses_what_is_not_a_plain_read(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_for(str(change.pop("url", "sqlite:///x.db")), **change)


async def test_check_reports_unreachable_databases_and_bad_mappings(tmp_path: Path, other_db: str) -> None:
    with pytest.raises(ConnectorError, match="unable to open database file"):
        await connector().check(config_for(f"sqlite:///{tmp_path}/missing.db"), run_context())
    assert not (tmp_path / "missing.db").exists()  # read-only open never creates a file
    with pytest.raises(ConnectorError, match="query failed"):
        await connector().check(config_for(other_db, query="SELECT * FROM no_such_table"), run_context())
    bad = config_for(other_db)
    bad.mapping.time_field = "measured"
    with pytest.raises(ConnectorError, match="field 'measured' is missing"):
        await connector().check(bad, run_context())
    await connector().check(config_for(other_db), run_context())


async def test_without_a_cursor_large_results_are_refused(other_db: str) -> None:
    config = config_for(other_db, cursor_column=None, max_rows=50)
    with pytest.raises(ConnectorError, match="more than 50 rows: set a cursor column"):
        await collect(connector().run(config, run_context()))
    whole = await collect(connector().run(config_for(other_db, cursor_column=None), run_context()))
    assert len(whole.observations) == 186


async def test_mariadb_needs_its_driver() -> None:
    pytest.importorskip("pymysql", reason="pymysql is not installed: MySQL/MariaDB sources are untested here")
    with pytest.raises(ConnectorError):
        await connector().check(config_for("mysql://reader@127.0.0.1:1/air"), run_context())


async def test_stored_once_even_when_the_cursor_is_lost(app: App, other_db: str) -> None:
    names = [f"{s} {p}" for s in STATIONS for p in ("pm10", "pm25")]
    ids = make_datastreams(app.engine, names)
    config = config_for(other_db, ids)
    for _ in range(2):  # the second run starts from scratch, as after a lost cursor
        batch = await collect(connector().run(config, run_context()))
        app.ingest.ingest(batch.observations, channel="sql_db", dedupe=True, rejected=batch.rejected)
    assert count_observations(app.engine, ids.values()) == 186
