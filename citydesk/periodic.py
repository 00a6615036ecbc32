"""Background services that run a step periodically, in a worker thread, beside the web app.

Every background service has ``name``, ``state``, ``async start()`` and ``async stop()`` (the
landing page lists them); ``Periodic`` is that contract for the ones that just repeat a
synchronous step: a failing step is logged and shown in ``state``, and tried again next period.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``step`` every ``period`` seconds; ``first`` runs once before the loop starts."""

    name = "periodic"
    failed_state = "failed"

    def __init__(self, period: float) -> None:
        self.period = period
        self.state = "stopped"
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def first(self) -> None:
        """What to do before the first period (default: one step)."""
        self.step()

    def step(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._guarded(self.first)
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.state = "stopped"

    async def _guarded(self, fn: object) -> None:
        try:
            await asyncio.to_thread(fn)  # type: ignore[arg-type]
            self.state = "running"
        except Exception as exc:
            log.exception("%s failed", self.name)
            self.state = f"{self.failed_state}: {exc}"

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self._guarded(self.step)
