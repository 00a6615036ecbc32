"""The app object and the ASGI application.

``App`` is built once per process and holds everything with state: settings, the engine, the bus,
the city's geography, the ingest pipeline, the connector runner. Routes reach it through
``citydesk.web.deps.get_app``; nothing with state lives at module level.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from citydesk.auth import CredentialCache, refuse_writes_on_public_instance
from citydesk.bus import Bus
from citydesk.config import Settings
from citydesk.db import check_current, make_engine
from citydesk.geo import CityGeo
from citydesk.hub.catalog import DatastreamCatalog
from citydesk.hub.ingest import IngestPipeline
from citydesk.hub.latest import LatestSnapshot
from citydesk.hub.store import ObservationStore
from citydesk.status.fastpath import CachedStatusAnswers
from citydesk.status.live import LiveStatus
from citydesk.web.errors import install_error_handlers
from citydesk.web.paths import STATIC_DIR

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """Everything one citydesk process holds; rebuilt from the database at each start."""

    settings: Settings
    engine: Engine
    bus: Bus
    geo: CityGeo
    catalog: DatastreamCatalog
    store: ObservationStore
    ingest: IngestPipeline
    credentials: CredentialCache
    latest: LatestSnapshot = field(init=False)
    status: LiveStatus = field(init=False)
    background: list[Any] = field(default_factory=list)
    """Services started with the web app (connector runner, MQTT bridge, simulator)."""

    def __post_init__(self) -> None:
        self.latest = LatestSnapshot(self)
        self.status = LiveStatus(self)

    def now(self) -> datetime:
        return utc_now()


def build_app(settings: Settings, *, engine: Engine | None = None) -> App:
    """Connect to the database (which must be migrated) and the event bus (which must answer),
    and assemble the app object. The bus's link to other workers starts with the web app."""
    engine = engine or make_engine(settings.database_url)
    check_current(engine)
    bus = Bus.from_url(settings.bus_url)
    bus.check()
    with engine.connect() as conn:
        geo = CityGeo.from_db(conn, settings)
    catalog = DatastreamCatalog()
    catalog.warm(engine)
    catalog.follow(bus)
    store = ObservationStore(engine, settings.timezone)
    ingest = IngestPipeline(
        engine,
        store,
        catalog,
        geo,
        bus,
        max_future=timedelta(seconds=settings.max_future_seconds),
        clock=utc_now,
    )
    return App(settings, engine, bus, geo, catalog, store, ingest, CredentialCache())


def create_asgi(app: App) -> FastAPI:
    """The FastAPI application: every sub-package's routers, error handlers, static files."""
    from citydesk.web.routes import include_routers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for service in app.background:
            await service.start()
        try:
            yield
        finally:
            for service in reversed(app.background):
                await service.stop()

    api = FastAPI(
        title="citydesk",
        version="0.1.0",
        description="Open smart-city platform: data hub, OGC SensorThings API 1.1, live city status.",
        lifespan=lifespan,
        docs_url=None,  # served by ``web.pages`` from the vendored Swagger UI, not a CDN
        redoc_url=None,
        # The public-mode switch, in one place: a public instance holds only what `citydesk publish`
        # wrote, and nothing may write beside it.
        dependencies=[Depends(refuse_writes_on_public_instance)] if app.settings.public_mode else None,
    )
    api.state.citydesk = app
    install_error_handlers(api)
    include_routers(api)
    api.add_middleware(CachedStatusAnswers, citydesk=app)
    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    api.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return api
