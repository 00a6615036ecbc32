"""What ingestion needs to know about each datastream, cached in memory.

Validation runs for every observation (7,000 a second for S-DoT), so it must not query the
database per record. The catalog loads datastream facts on first use and is told to forget a
datastream when the SensorThings layer changes it; everything here can be rebuilt from the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, select, true

from citydesk.bus import Event, MemoryBus
from citydesk.hub.models import datastreams, features_of_interest, observed_properties, thing_locations

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
TRUTH_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"
CATEGORY_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
NUMERIC_TYPES = frozenset({MEASUREMENT, COUNT_OBSERVATION})


@dataclass(frozen=True, slots=True)
class DatastreamFacts:
    id: int
    family: str
    observation_type: str
    disclosure: str
    district_code: str | None
    thing_id: int
    default_foi_id: int | None
    """FoI generated from the Thing's Location, used when an observation names none."""
    observed_property: str | None = None
    """Its ObservedProperty's name, for live pages that filter by measure (loaded by the catalog;
    None in facts read for one write transaction, which do not need it)."""


class DatastreamCatalog:
    """Thread-safe cache of ``DatastreamFacts`` keyed by datastream id.

    Changes made in this process are forgotten at once, other workers' changes when their bus
    event arrives (``follow``). Without a shared bus those events never come, so the whole cache
    is also dropped every ``max_age`` seconds: another worker's edit is seen within that time.
    """

    def __init__(self, max_age: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._facts: dict[int, DatastreamFacts] = {}
        self._lock = threading.Lock()
        self.max_age = max_age
        self._clock = clock
        self._since = clock()

    def _expire(self) -> None:
        """Called with the lock held."""
        now = self._clock()
        if now - self._since > self.max_age:
            self._facts.clear()
            self._since = now

    def get_many(self, conn: Connection, ids: set[int]) -> dict[int, DatastreamFacts]:
        """Facts for the known ids among ``ids``; unknown ids are simply absent."""
        with self._lock:
            self._expire()
            found = {i: self._facts[i] for i in ids if i in self._facts}
        missing = ids - found.keys()
        if missing:
            loaded = self._load(conn, missing)
            with self._lock:
                self._facts.update(loaded)
            found.update(loaded)
        return found

    def lookup(self, engine: Engine, ids: set[int]) -> dict[int, DatastreamFacts]:
        """``get_many`` that opens a connection only when something is not cached yet."""
        with self._lock:
            self._expire()
            if ids <= self._facts.keys():
                return {i: self._facts[i] for i in ids}
        with engine.connect().execution_options(read_only=True) as conn:
            return self.get_many(conn, ids)

    def forget(self, datastream_id: int | None = None) -> None:
        """Drop one datastream (or all) so the next lookup reads the database again."""
        with self._lock:
            if datastream_id is None:
                self._facts.clear()
            else:
                self._facts.pop(datastream_id, None)

    def follow(self, bus: MemoryBus) -> None:
        """Forget what other workers change through the SensorThings API (their own forgetting
        happens in the writing process only). Observations, Sensors and ObservedProperties do not
        change the facts; a Thing or Location may change the default FeatureOfInterest of any
        of its datastreams, so those forget everything (rare edits, cheap reloads)."""
        bus.on("sta.*", self._on_remote_change, remote=True)

    def _on_remote_change(self, event: Event) -> None:
        if event.origin is None:
            return  # this process's own change: forgotten right after its commit
        kind = event.data.get("set")
        if kind == "Datastreams":
            self.forget(int(event.data["id"]))
        elif kind in ("Things", "Locations", "HistoricalLocations", "FeaturesOfInterest"):
            self.forget()

    def set_default_foi(self, thing_id: int, foi_id: int | None) -> None:
        """Record the FeatureOfInterest just generated from a Thing's Location in its datastreams' facts.

        Updating in place, rather than forgetting them, spares the next batch a reload.
        """
        with self._lock:
            for ds, f in list(self._facts.items()):
                if f.thing_id == thing_id:
                    self._facts[ds] = replace(f, default_foi_id=foi_id)

    def warm(self, engine: Engine) -> int:
        """Load every datastream's facts at once (at start-up): otherwise each worker's first
        batches to each datastream would pay a query of their own. Returns how many."""
        with engine.connect().execution_options(read_only=True) as conn:
            loaded = self._load(conn, None)
        with self._lock:
            self._facts = loaded
            self._since = self._clock()
        return len(loaded)

    def _load(self, conn: Connection, ids: set[int] | None) -> dict[int, DatastreamFacts]:
        """Facts of ``ids`` (of every datastream if None)."""
        foi = (
            select(features_of_interest.c.id)
            .join(thing_locations, thing_locations.c.location_id == features_of_interest.c.location_id)
            .where(thing_locations.c.thing_id == datastreams.c.thing_id)
            .order_by(features_of_interest.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = conn.execute(
            select(
                datastreams.c.id,
                datastreams.c.family,
                datastreams.c.observation_type,
                datastreams.c.disclosure,
                datastreams.c.district_code,
                datastreams.c.thing_id,
                foi.label("foi_id"),
                observed_properties.c.name,
            )
            .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
            .where(datastreams.c.id.in_(sorted(ids)) if ids is not None else true())
        )
        return {
            r.id: DatastreamFacts(
                r.id,
                r.family,
                r.observation_type,
                r.disclosure,
                r.district_code,
                r.thing_id,
                r.foi_id,
                r.name,
            )
            for r in rows
        }
