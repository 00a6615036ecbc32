"""Shared fixtures: real databases (SQLite file and PostgreSQL), migrated, and an app on them.

No mocks of the database or the broker: PostgreSQL tests get a fresh database of their own on the
local server (created and dropped here); services that are down are started by ``services.sh``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from citydesk.config import Settings
from citydesk.db import make_engine, upgrade
from citydesk.seed import seed_geography
from citydesk.web.app import App, build_app, create_asgi

PG_ADMIN_URL = os.environ.get("CITYDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICES = Path(__file__).resolve().parents[2] / "shared" / "services.sh"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
"""Screenshots of the browser tests (git-ignored), to be looked at."""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_counter = itertools.count()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pytest_sessionstart(session: pytest.Session) -> None:
    if SERVICES.exists() and not all(port_open(p) for p in (5432, 1883)):
        subprocess.run(["bash", str(SERVICES), "postgres", "mosquitto"], check=False)


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the local server; dropped (forcibly) afterwards."""
    if not port_open(5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"{prefix}{os.getpid()}_{next(_counter)}"
    admin = make_engine(PG_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with fresh_pg_database("citydesk_t") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/citydesk.db"


def migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    seed_geography(engine)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on the embedded SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/citydesk.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    engine = migrated_engine(db_url)
    yield build_app(Settings(database_url=db_url), engine=engine)
    engine.dispose()


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_asgi(app)) as c:
        yield c


STAFF_PASSWORD = "correct horse battery"


@pytest.fixture
def staff(app: App) -> tuple[str, str]:
    """HTTP Basic credentials of an official (may write, sees every level)."""
    from datetime import UTC, datetime

    from citydesk.auth import Role, create_user

    create_user(app.engine, "kim.official", Role.OFFICIAL, STAFF_PASSWORD, now=datetime.now(UTC))
    return ("kim.official", STAFF_PASSWORD)


# -- SensorThings: a real HTTP server, and one shared world per module ------------------------------


@contextmanager
def serving_asgi(asgi: FastAPI) -> Iterator[str]:
    """``asgi`` served by a real uvicorn (lifespan on) on a free localhost port, in a thread."""
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def live_server(app: App) -> Iterator[str]:
    """The app served by a real uvicorn on a free localhost port (for clients that speak HTTP)."""
    with serving_asgi(create_asgi(app)) as base:
        yield base


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Like ``app`` but shared by a module's tests (for read-only tables of cases over one world)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('module_db')}/citydesk.db"
        engine = migrated_engine(url)
        yield build_app(Settings(database_url=url), engine=engine)
        engine.dispose()
        return
    with fresh_pg_database("citydesk_m") as url:
        engine = migrated_engine(url)
        try:
            yield build_app(Settings(database_url=url), engine=engine)
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def module_client(module_app: App) -> Iterator[TestClient]:
    with TestClient(create_asgi(module_app)) as c:
        yield c


@pytest.fixture(scope="module")
def module_staff(module_app: App) -> tuple[str, str]:
    """HTTP Basic credentials of an official in ``module_app``."""
    from datetime import UTC, datetime

    from citydesk.auth import Role, create_user

    create_user(module_app.engine, "kim.official", Role.OFFICIAL, STAFF_PASSWORD, now=datetime.now(UTC))
    return ("kim.official", STAFF_PASSWORD)


def create_sensor(
    app: App,
    name: str,
    *,
    disclosure: str = "public",
    family: str | None = None,
    observed_property: str = "PM10",
    lon_lat: tuple[float, float] = (127.0473, 37.5172),
) -> int:
    """A Thing with a Location and one Measurement Datastream, through the SensorThings service;
    returns the Datastream's id."""
    from citydesk.auth import Principal, Role
    from citydesk.hub.catalog import MEASUREMENT
    from citydesk.hub.models import datastreams
    from citydesk.hub.sta import service

    props: dict[str, str] = {"disclosure": disclosure}
    if family:
        props["family"] = family
    _, thing = service.post(
        app,
        Principal.for_user(None, "fixture", Role.ADMIN),
        "Things",
        {
            "name": name,
            "Locations": [
                {
                    "name": name,
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": list(lon_lat)},
                }
            ],
            "Datastreams": [
                {
                    "name": f"{name} {observed_property}",
                    "unitOfMeasurement": {"name": "unit", "symbol": "u", "definition": "-"},
                    "observationType": MEASUREMENT,
                    "properties": props,
                    "Sensor": {"name": "sensor", "encodingType": "text/plain", "metadata": "-"},
                    "ObservedProperty": {"name": observed_property, "definition": f"urn:{observed_property}"},
                }
            ],
        },
    )
    with app.engine.connect() as conn:
        return int(conn.execute(datastreams.select().where(datastreams.c.thing_id == thing)).one().id)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (the set-up installs it; skipped where it is absent)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
