"""Evaluating alert rules: on every batch this worker stores, and periodically for silence.

Each worker evaluates only the batches it stored itself (``bus.on`` without ``remote``): every
batch is stored by exactly one worker, so every reading is judged exactly once across workers.
Evaluation runs in the storing thread right after the commit, so it must be cheap when nothing
applies: rules come from a per-worker ``RuleCache`` (reloaded when ``alerts.rules`` says a rule
changed, in any worker, and at least every ``max_age`` seconds), datastream facts from the hub's
catalog; a batch no rule targets costs no query. A batch that rules do target costs one query for
their open events, plus what each kind asks its ``Probe`` (a ``rate`` rule: one indexed range
query per datastream; a ``threshold`` rule with ``consecutive`` > 1: one, only past the limit).

When a condition holds an event is raised (once: see ``events.raise_alert``); when it is over,
the event is resolved by the platform with the note ``BACK_TO_NORMAL`` if nobody has touched it
yet, and left to people once someone has dispatched it.

``NodataCheck`` is the periodic half: ``nodata`` rules cannot be judged on ingest (silence sends
no batch). Every worker runs it; two raising at once meet at the unique open key. A silence is
counted from when the check started at the earliest, so a restart does not flag every sensor
that reported before the server went down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from citydesk.bus import Event
from citydesk.hub.catalog import DatastreamFacts
from citydesk.hub.models import (
    datastream_latest,
    datastreams,
    locations,
    observations,
    observed_properties,
    thing_locations,
)
from citydesk.hub.records import StoredObservation
from citydesk.periodic import Periodic
from citydesk.status import events
from citydesk.status.alerts.kinds import Reading, Verdict, kind_of
from citydesk.status.alerts.service import RULES_TOPIC, Rule, enabled_rules

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)

BACK_TO_NORMAL = "정상 복귀 · back to normal"
"""The note of an event the platform resolves because its condition is over."""
STALE = timedelta(hours=1)
"""Readings older than this when stored (a backfill, a logger's late upload) are not judged: an
alert is about the present, and history replayed should not raise events for what is over."""


class RuleCache:
    """This worker's enabled rules; reloaded after a change or ``max_age`` seconds."""

    def __init__(
        self, app: App, *, max_age: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.max_age = max_age
        self._clock = clock
        self._rules: list[Rule] | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    def get(self) -> list[Rule]:
        with self._lock:
            if self._rules is not None and self._clock() - self._loaded <= self.max_age:
                return self._rules
        rules = enabled_rules(self.app)
        with self._lock:
            self._rules, self._loaded = rules, self._clock()
        return rules

    def invalidate(self, _: Event | None = None) -> None:
        with self._lock:
            self._rules = None


class DatabaseProbe:
    """A ``kinds.Probe`` over one datastream's stored observations (indexed by datastream, time)."""

    def __init__(self, conn: Connection, datastream_id: int) -> None:
        self.conn = conn
        self.datastream_id = datastream_id

    def last_values(self, n: int) -> list[float]:
        o = observations.c
        stmt = (
            select(o.result_number)
            .where(o.datastream_id == self.datastream_id, o.result_number.is_not(None))
            .order_by(o.phenomenon_time.desc())
            .limit(n)
        )
        return [float(v) for v in self.conn.execute(stmt).scalars()]

    def range_since(self, start: datetime) -> tuple[float, float] | None:
        o = observations.c
        stmt = select(func.min(o.result_number), func.max(o.result_number)).where(
            o.datastream_id == self.datastream_id, o.phenomenon_time >= start
        )
        low, high = self.conn.execute(stmt).one()
        return None if low is None else (float(low), float(high))


Judged = tuple[Rule, DatastreamFacts, Verdict]


class AlertEngine:
    """Judges readings against this worker's cached rules and raises or clears events."""

    def __init__(self, app: App, rules: RuleCache | None = None) -> None:
        self.app = app
        self.rules = rules or RuleCache(app)

    def follow(self) -> None:
        """Judge this worker's stored batches; reload rules when any worker changes one."""
        self.app.bus.on("observations.stored", self.on_stored)
        self.app.bus.on(RULES_TOPIC, self.rules.invalidate, remote=True)

    def on_stored(self, event: Event) -> None:
        self.judge_batch(event.data["observations"])

    def judge_batch(self, stored: Sequence[StoredObservation]) -> None:
        rules = [r for r in self.rules.get() if kind_of(r.kind).on_ingest]
        if not rules:
            return
        newest: dict[int, StoredObservation] = {}
        for s in stored:
            known = newest.get(s.datastream_id)
            if known is None or s.phenomenon_time >= known.phenomenon_time:
                newest[s.datastream_id] = s
        now = self.app.now()
        fresh = {ds for ds, s in newest.items() if now - s.phenomenon_time <= STALE}
        facts = self.app.catalog.lookup(self.app.engine, fresh) if fresh else {}
        pairs = [(r, f) for f in facts.values() for r in rules if r.applies_to(f)]
        if not pairs:
            return
        judged: list[Judged] = []
        with self.app.engine.connect().execution_options(read_only=True) as conn:
            for rule, f in pairs:
                s = newest[f.id]
                reading = Reading(s.phenomenon_time, s.result_number)
                verdict = kind_of(rule.kind).evaluate(
                    rule.params, reading, DatabaseProbe(conn, f.id), now=now
                )
                if verdict is not None:
                    judged.append((rule, f, verdict))
        self.act(judged, now=now)

    def check_silence(self, *, now: datetime, since: datetime) -> None:
        """Judge every ``nodata`` rule's datastreams (those that ever reported) at ``now``."""
        judged: list[Judged] = []
        for rule in (r for r in self.rules.get() if not kind_of(r.kind).on_ingest):
            last = self._last_times(rule)
            facts = self.app.catalog.lookup(self.app.engine, set(last))
            for ds, f in facts.items():
                reading = Reading(max(last[ds], since), None)
                verdict = kind_of(rule.kind).evaluate(rule.params, reading, _NoProbe(), now=now)
                if verdict is not None:
                    judged.append((rule, f, verdict))
        self.act(judged, now=now)

    def _last_times(self, rule: Rule) -> dict[int, datetime]:
        d, dl = datastreams.c, datastream_latest.c
        stmt = (
            select(dl.datastream_id, dl.phenomenon_time)
            .join(datastreams, d.id == dl.datastream_id)
            .join(observed_properties, observed_properties.c.id == d.observed_property_id)
        )
        if rule.datastream_id is not None:
            stmt = stmt.where(d.id == rule.datastream_id)
        else:
            stmt = stmt.where(observed_properties.c.name == rule.observed_property)
            if rule.district_code is not None:
                stmt = stmt.where(d.district_code == rule.district_code)
        with self.app.engine.connect().execution_options(read_only=True) as conn:
            return {ds: t for ds, t in conn.execute(stmt)}

    def act(self, judged: list[Judged], *, now: datetime) -> None:
        """Raise what fires and is not open; clear what is open and no longer fires."""
        keyed = [(events.open_key(rule.id, f.id), rule, f, v) for rule, f, v in judged]
        already = events.open_among(self.app, {k for k, *_ in keyed})
        for key, rule, f, verdict in keyed:
            if verdict.firing and key not in already:
                events.raise_alert(self.app, self._event(rule, f, verdict), key, now=now)
            elif not verdict.firing and key in already:
                events.clear_alert(self.app, key, BACK_TO_NORMAL, now=now)

    def _event(self, rule: Rule, f: DatastreamFacts, verdict: Verdict) -> dict[str, Any]:
        """The columns of the event a rule raises on one datastream, placed at its Thing."""
        lon, lat = self._position(f.thing_id)
        district = self.app.geo.district_info(f.district_code) if f.district_code else None
        where = f" — {district.name_ko} {district.name_en}" if district else ""
        measure = f.observed_property or f"datastream {f.id}"
        return {
            "kind": rule.event_kind,
            "title": f"{rule.name}{where}",
            "description": f"{measure}: {verdict.text}",
            "severity": rule.severity,
            "disclosure": events.stricter(rule.disclosure, f.disclosure),
            "lon": lon,
            "lat": lat,
            "district_code": f.district_code
            or (self.app.geo.district_of(lon, lat) if lon is not None and lat is not None else None),
            "rule_id": rule.id,
            "datastream_id": f.id,
            "details": {"rule": rule.name, "rule_kind": rule.kind, "observed_property": f.observed_property}
            | verdict.details,
        }

    def _position(self, thing_id: int) -> tuple[float | None, float | None]:
        loc = locations.c
        stmt = (
            select(loc.lon, loc.lat)
            .join(thing_locations, thing_locations.c.location_id == loc.id)
            .where(thing_locations.c.thing_id == thing_id, loc.lon.is_not(None))
            .order_by(loc.id.desc())
            .limit(1)
        )
        with self.app.engine.connect().execution_options(read_only=True) as conn:
            found = conn.execute(stmt).first()
        return (found.lon, found.lat) if found is not None else (None, None)


class _NoProbe:
    """``nodata`` needs no history: a probe that is never asked."""

    def last_values(self, n: int) -> list[float]:
        raise NotImplementedError

    def range_since(self, start: datetime) -> tuple[float, float] | None:
        raise NotImplementedError


class NodataCheck(Periodic):
    """Runs ``AlertEngine.check_silence`` every ``period`` seconds on the app's clock."""

    name = "alerts-nodata"

    def __init__(
        self, engine: AlertEngine, *, period: float = 60.0, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(period)
        self.engine = engine
        self.clock = clock or engine.app.now
        self.since: datetime | None = None
        """When this worker started watching: silences count from then at the earliest."""

    def step(self) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
        self.engine.check_silence(now=now, since=self.since)
