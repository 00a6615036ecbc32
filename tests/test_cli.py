"""The commands a city runs: migrate, seed, user create, and serve refusing an unmigrated database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from citydesk.cli import main
from citydesk.db import make_engine
from citydesk.geo.models import districts, dongs


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
