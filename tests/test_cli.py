"""The commands a city runs: migrate, seed, user create, and serve refusing an unmigrated database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from citydesk.cli import main
from citydesk.db import make_engine
from citydesk.geo.models import districts, dongs
from citydesk.hub.models import observations


def _run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "citydesk.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_serve_refuses_an_unmigrated_database_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    done = _run("serve", "--port", "0", url=url)
    assert done.returncode == 2
    assert "has no citydesk schema" in done.stderr and "citydesk migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_seed_and_user_create(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    try:
        assert main(["migrate"]) == 0
        assert main(["migrate"]) == 0  # idempotent
        assert main(["seed"]) == 0
        assert main(["seed"]) == 0  # idempotent: same rows
        assert main(["user", "create", "park", "--role", "staff", "--password", "a-long-password"]) == 0
        assert main(["user", "create", "park", "--role", "staff", "--password", "a-long-password"]) == 2
        assert main(["check"]) == 0
    finally:
        del os.environ["DATABASE_URL"]
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(districts)).scalar() == 25
        assert conn.execute(select(func.count()).select_from(dongs)).scalar() == 423
    engine.dispose()


def test_import_command_stores_a_file_once(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from citydesk.config import Settings
    from citydesk.hub.connectors.mapping import Mapping
    from citydesk.hub.sources import SourceIn, SourceRunner
    from citydesk.web.app import build_app
    from tests.conftest import create_sensor, migrated_engine

    engine = migrated_engine(sqlite_url)
    app = build_app(Settings(database_url=sqlite_url), engine=engine)
    ds = create_sensor(app, "종로구 측정소", observed_property="PM10")
    path = tmp_path / "pm10.csv"
    path.write_text("날짜,PM10\n2019-12-30,41\n2019-12-31,38\n2019-12-32,?\n", encoding="utf-8")
    mapping = Mapping.model_validate(
        {"time_field": "날짜", "fields": [{"source": "PM10", "datastream_id": ds}]}
    )

    async def make_source() -> None:
        spec = SourceIn(
            name="PM10 files", kind="file", config={"path": str(path), "mapping": mapping.model_dump()}
        )
        await SourceRunner(app, file_roots=[tmp_path]).create(spec)

    asyncio.run(make_source())
    engine.dispose()
    os.environ["DATABASE_URL"] = sqlite_url
    try:
        assert main(["import", str(path), "--source", "PM10 files"]) == 0
        first = capsys.readouterr().out
        assert main(["import", str(path), "--source", "PM10 files"]) == 0
        second = capsys.readouterr().out
        assert main(["import", str(path), "--source", "no such source"]) == 2
    finally:
        del os.environ["DATABASE_URL"]
    assert "2 stored, 0 already there, 1 rejected" in first, first
    assert "0 stored, 2 already there, 1 rejected" in second, second
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        values = sorted(r[0] for r in conn.execute(select(observations.c.result_number)))
    engine.dispose()
    assert values == [38.0, 41.0]
