"""Housekeeping that runs beside the web app: partitions ahead of time, retention once a day."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from citydesk.hub.models import datastreams
from citydesk.hub.retention import apply_retention

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)


class Maintenance:
    name = "maintenance"

    def __init__(self, app: App, *, every: timedelta = timedelta(hours=1)) -> None:
        self.app = app
        self.every = every
        self.state = "stopped"
        self._task: asyncio.Task[None] | None = None
        self._last_retention_day: object = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())
        self.state = "running"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.state = "stopped"

    def run_once(self) -> None:
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

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.run_once)
                self.state = "running"
            except Exception as exc:
                log.exception("maintenance failed")
                self.state = f"failed: {exc}"
            await asyncio.sleep(self.every.total_seconds())
