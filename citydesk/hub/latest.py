"""The latest observation of every datastream: what a city map asks for on every refresh.

The store keeps one ``datastream_latest`` row per datastream, in the write transaction. Reading
50,000 of them through the database on every map refresh costs hundreds of milliseconds of row
conversion, so each worker keeps a snapshot in memory:

* built from ``datastream_latest`` at first use (everything here can be rebuilt from the database);
* updated at once from ``observations.stored`` events: this process's own and, when ``BUS_URL``
  names a shared bus, other workers' too. Both are applied from the event's compact portable form
  (newest phenomenonTime and result per datastream), which is exactly what a snapshot entry holds,
  so one path serves both and a value written through any worker shows on every worker within
  milliseconds instead of at the next poll;
* caught up by polling rows whose ``updated_at`` moved (once a second, re-reading a 5-second
  overlap so that a write transaction that committed after the previous poll began is not missed;
  ingest transactions last milliseconds), and rebuilt in full every 5 minutes. The bus delivers at
  most once, so the poll stays: it is the safety net for events lost while a worker or the bus was
  away, and the only path on the embedded in-process bus with several processes writing.

Disclosure is never taken from the snapshot: every read asks the database which datastreams are
not public right now (a short list, by index), so a datastream made internal disappears from every
worker's answers at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, select

from citydesk.bus import CompactObservations, Event
from citydesk.hub.models import datastream_latest, datastreams, observed_properties
from citydesk.hub.sta.access import ALL_LEVELS
from citydesk.hub.sta.serialize import iso
from citydesk.periodic import Periodic

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)
Entry = dict[str, Any]


class LatestSnapshot(Periodic):
    """The in-memory latest values of one worker, and the background poller that keeps it fresh."""

    name = "latest-values"
    failed_state = "stale"

    def __init__(
        self,
        app: App,
        *,
        poll_seconds: float = 1.0,
        overlap: timedelta = timedelta(seconds=5),
        rebuild_every: timedelta = timedelta(minutes=5),
    ) -> None:
        super().__init__(poll_seconds)
        self.app = app
        self.poll_seconds = poll_seconds
        self.overlap = overlap
        self.rebuild_every = rebuild_every
        self._entries: dict[int, Entry] = {}
        self._times: dict[int, datetime] = {}
        self._meta: dict[int, tuple[str | None, str]] = {}
        self._lock = threading.Lock()
        self._polled_at = 0.0
        self._rebuilt_at = 0.0
        self._since: datetime | None = None
        app.bus.on("observations.stored", self._on_stored, remote=True)
        app.bus.on("sta.*", self._on_sta_change, remote=True)

    # -- keeping it fresh --------------------------------------------------------------------
    def _apply(self, ds: int, t: datetime, result: Any) -> None:
        known = self._times.get(ds)
        if known is not None and t < known:
            return
        district = self._meta.get(ds, (None, ""))[0]
        self._times[ds] = t
        self._entries[ds] = {
            "datastream": ds,
            "phenomenonTime": iso(t),
            "result": result,
            "district": district,
        }

    def _on_stored(self, event: Event) -> None:
        """Apply a batch, this worker's or another's, from its compact form (see the module doc).

        A datastream this worker has no metadata for yet stays hidden until the next poll reads it.
        """
        if event.portable is None:
            return  # the batch could not be reduced (logged by the bus): the poll will catch up
        batch = cast(CompactObservations, event.portable)
        with self._lock:
            for d in batch["datastreams"]:
                self._apply(d["id"], datetime.fromisoformat(d["phenomenonTime"]), d["result"])

    def _on_sta_change(self, event: Event) -> None:
        """Metadata or values changed by hand, in any worker: rebuild on next use."""
        if event.data.get("set") in (
            "Datastreams",
            "Things",
            "Locations",
            "ObservedProperties",
            "Observations",
        ):
            self._rebuilt_at = 0.0

    @staticmethod
    def _read_meta(conn: Connection, ids: Collection[int] | None) -> dict[int, tuple[str | None, str]]:
        stmt = select(datastreams.c.id, datastreams.c.district_code, observed_properties.c.name).join(
            observed_properties, observed_properties.c.id == datastreams.c.observed_property_id
        )
        if ids is not None:
            stmt = stmt.where(datastreams.c.id.in_(sorted(ids)))
        return {ds: (district, prop) for ds, district, prop in conn.execute(stmt)}

    def refresh(self, *, full: bool = False) -> None:
        """Poll the database for changed rows (or rebuild everything); the lock is held only to apply."""
        started = time.monotonic()
        full = full or started - self._rebuilt_at > self.rebuild_every.total_seconds()
        now = datetime.now(UTC)
        cols = (
            datastream_latest.c.datastream_id,
            datastream_latest.c.phenomenon_time,
            datastream_latest.c.result_number,
            datastream_latest.c.result_json,
        )
        with self.app.engine.connect().execution_options(read_only=True) as conn:
            stmt = select(*cols)
            if not full and self._since is not None:
                stmt = stmt.where(datastream_latest.c.updated_at > self._since - self.overlap)
            rows = conn.execute(stmt).all()
            unknown = None if full else {r[0] for r in rows} - self._meta.keys()
            meta = self._read_meta(conn, unknown) if full or unknown else {}
        with self._lock:
            if full:
                self._meta, self._entries, self._times = meta, {}, {}
            else:
                self._meta.update(meta)
            for ds, (district, _) in meta.items():
                if ds in self._entries:
                    self._entries[ds]["district"] = district
            for ds, t, number, js in rows:
                self._apply(ds, t, number if number is not None else js)
        self._since = now
        self._polled_at = started
        if full:
            self._rebuilt_at = started

    def _fresh(self) -> None:
        if time.monotonic() - self._polled_at > self.poll_seconds or self._rebuilt_at == 0.0:
            self.refresh()

    # -- reading -----------------------------------------------------------------------------
    def values(
        self, conn: Connection, levels: Collection[str], *, observed_property: str | None = None
    ) -> list[Entry]:
        """Latest values of the datastreams ``levels`` may see, optionally of one observed property."""
        if not self.running:
            self._fresh()  # no background poller (tests, CLI): poll on demand
        hidden: set[int] = set()
        if not set(levels) >= ALL_LEVELS:
            hidden = {
                r[0]
                for r in conn.execute(
                    select(datastreams.c.id).where(datastreams.c.disclosure.not_in(sorted(levels)))
                )
            }
        with self._lock:
            meta = self._meta
            return [
                e
                for ds, e in self._entries.items()
                if ds not in hidden
                and ds in meta
                and (observed_property is None or meta[ds][1] == observed_property)
            ]

    # -- background service ------------------------------------------------------------------
    def first(self) -> None:
        self.refresh(full=True)

    def step(self) -> None:
        self.refresh()
