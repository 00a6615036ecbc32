"""Housekeeping that runs beside the web app: partitions ahead of time, retention once a day."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from citydesk.hub.models import datastreams
from citydesk.hub.retention import apply_retention
from citydesk.periodic import Periodic

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)


class Maintenance(Periodic):
    name = "maintenance"

    def __init__(self, app: App, *, every: timedelta = timedelta(hours=1)) -> None:
        super().__init__(every.total_seconds())
        self.app = app
        self._last_retention_day: date | None = None

    def step(self) -> None:
        """Create today's and tomorrow's partitions for every family; apply retention daily."""
        now = self.app.now()
        with self.app.engine.connect() as conn:
            families = {r[0] for r in conn.execute(select(datastreams.c.family).distinct())} | {"default"}
        days = {now.date(), (now + timedelta(days=1)).date()}
        self.app.store.ensure_partitions({(f, d) for f in families for d in days})
        if self._last_retention_day != now.date():
            for line in apply_retention(self.app.engine, now=now):
                log.info("retention: %s", line)
            self.app.store.forget_partitions()
            self._last_retention_day = now.date()
