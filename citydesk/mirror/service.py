"""One publishing run, and a loop of them: internal database → public database, one way.

Only this module opens transactions. The internal side is read in one snapshot (PostgreSQL
REPEATABLE READ, SQLite's deferred read transaction under WAL), so the rows, the rollups and the
latest values shipped in a run agree with each other; the public side is written in one
transaction together with the watermark (see ``state``). The public instance never connects back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from citydesk.bus import Bus
from citydesk.hub.models import datastream_latest, datastreams, features_of_interest, observations
from citydesk.hub.records import StoredObservation
from citydesk.hub.store import ObservationStore
from citydesk.mirror import state
from citydesk.mirror.observations import ObservationShipper, Shipped
from citydesk.mirror.publish import TableChange, select_public, sync_tables

log = logging.getLogger(__name__)

SETTLE_SECONDS = 300.0
"""How long an id missing below newer ones is looked for again (see ``observations``)."""


@dataclass
class PublishReport:
    """What one run did; ``lines()`` is what the command prints."""

    at: datetime
    tables: list[TableChange] = field(default_factory=list)
    observations: Shipped = field(default_factory=Shipped)
    withheld_datastreams: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return (
            self.observations.rows > 0
            or self.observations.removed > 0
            or any(
                t.inserted or t.updated or t.deleted for t in self.tables if t.table != "datastream_latest"
            )
        )

    def lines(self) -> list[str]:
        o = self.observations
        out = [
            f"published at {self.at.isoformat()} in {self.seconds:.2f} s: {o.rows} observations shipped "
            f"({o.backfilled} for newly public datastreams, {o.resynced_hours} hours copied again), "
            f"{o.removed} removed"
        ]
        out += [
            f"  {t.table}: +{t.inserted} ~{t.updated} -{t.deleted}"
            for t in self.tables
            if t.inserted or t.updated or t.deleted
        ]
        if self.withheld_datastreams:
            out.append(
                "  withheld (public, but on a Thing, Sensor or ObservedProperty that is not): Datastreams "
                + ", ".join(map(str, self.withheld_datastreams))
            )
        return out


def _snapshot(engine: Engine) -> Connection:
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine.connect().execution_options(read_only=True)


def publish_once(
    src_engine: Engine,
    dst_engine: Engine,
    *,
    now: datetime,
    timezone: str = "UTC",
    settle: float = SETTLE_SECONDS,
    notify: Bus | None = None,
) -> PublishReport:
    """Make the public database hold exactly the disclosable subset of the internal one.

    ``timezone`` is the city's (daily rollups follow its day). ``notify``
    is the public instance's event bus, when this process can reach it (the demo), so that its
    live pages show what was shipped."""
    started = now.timestamp()
    store = ObservationStore(dst_engine, timezone)
    report = PublishReport(at=now)
    with _snapshot(src_engine) as src, src.begin(), dst_engine.begin() as dst:
        sel = select_public(src)
        report.withheld_datastreams = sorted(sel.withheld_datastreams)
        marker, mark = state.load(dst, now)
        before = set(dst.execute(select(datastreams.c.id)).scalars())
        before_features = set(dst.execute(select(features_of_interest.c.id)).scalars())
        report.tables = sync_tables(src, dst, sel)
        ship = ObservationShipper(src, dst, store)
        ship.remove(before - sel.datastreams)
        gone_features = before_features - sel.features
        if gone_features:
            dst.execute(
                observations.update()
                .where(observations.c.foi_id.in_(sorted(gone_features)))
                .values(foi_id=None)
            )
        staying = before & sel.datastreams
        ship.incremental(mark, staying, sel.features, now=started, settle=settle)
        ship.backfill(sel.datastreams - before, sel.features)
        ship.copy_touched_rollups()
        ship.reconcile(staying, sel.features)
        report.observations = ship.finish()
        state.save(dst, marker, mark, now=now, shipped=ship.result.rows)
    if notify is not None and report.observations.datastreams:
        _announce(dst_engine, notify, report.observations.datastreams)
    return report


def _announce(dst_engine: Engine, bus: Bus, shipped: set[int]) -> None:
    """Tell the public instance's live pages, after the commit, the newest value of each Datastream
    a run shipped rows for, as its own ingest would (``observations.stored``)."""
    latest, d = datastream_latest.c, datastreams.c
    with dst_engine.connect().execution_options(read_only=True) as conn:
        rows = conn.execute(
            select(
                latest.datastream_id,
                d.family,
                latest.phenomenon_time,
                latest.result_number,
                latest.result_json,
                latest.observation_id,
            )
            .join(datastreams, d.id == latest.datastream_id)
            .where(latest.datastream_id.in_(sorted(shipped)))
        ).all()
    stored = [
        StoredObservation(
            ds, family, t, None, None, None, None, number, result, None, None, None, None, id=oid
        )
        for ds, family, t, number, result, oid in rows
    ]
    if stored:
        bus.publish("observations.stored", {"channel": "publish", "source_id": None, "observations": stored})


class Publisher:
    """Publishing every ``interval`` seconds, as a background service of the internal app (the demo)
    or the body of ``citydesk publish --follow``."""

    name = "publish"

    def __init__(
        self,
        src_engine: Engine,
        dst_engine: Engine,
        clock: Callable[[], datetime],
        *,
        interval: float = 5.0,
        timezone: str = "UTC",
        notify: Bus | None = None,
    ) -> None:
        self.src, self.dst, self.clock, self.interval = src_engine, dst_engine, clock, interval
        self.notify = notify
        self.timezone = timezone
        self.state = "stopped"
        self._task: asyncio.Task[None] | None = None

    def run_once(self) -> PublishReport:
        t0 = self.clock()
        report = publish_once(self.src, self.dst, now=t0, timezone=self.timezone, notify=self.notify)
        report.seconds = (self.clock() - t0).total_seconds()
        return report

    async def loop(self, on_report: Callable[[PublishReport], None] | None = None) -> None:
        """Publish, wait, repeat; a failed run is logged and retried at the next interval."""
        while True:
            try:
                report = await asyncio.to_thread(self.run_once)
                self.state = "running"
                if on_report is not None:
                    on_report(report)
            except Exception:
                self.state = "failing"
                log.exception("publishing failed; retrying in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state = "stopped"
