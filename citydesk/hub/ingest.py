"""The ingest pipeline: the one path from "records arrived" to "stored, announced".

Every channel (SensorThings POST, MQTT, connectors, manual entry, the simulator) calls
``IngestPipeline.ingest``: validate against the datastream catalog, resolve FeaturesOfInterest,
write the good rows and quarantine the bad ones in one transaction, and only after the commit
publish ``observations.stored`` on the bus. A caller may acknowledge its sender once this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine

from citydesk.bus import MemoryBus
from citydesk.hub.catalog import DatastreamCatalog
from citydesk.hub.features import Locator, foi_for_feature, foi_for_thing, geometry_of, point_of
from citydesk.hub.models import quarantine
from citydesk.hub.records import IngestResult, ObservationIn, Rejected, StoredObservation
from citydesk.hub.store import DatastreamGone, ObservationStore, WriteAgain
from citydesk.hub.validate import validate

log = logging.getLogger(__name__)


class CityLocator(Locator, Protocol):
    """What ingestion needs from the city's geography (see ``citydesk.geo.CityGeo``)."""

    def in_city(self, lon: float, lat: float) -> bool: ...

    def district_of(self, lon: float, lat: float) -> str | None: ...


def _payload_text(payload: Any) -> str:
    if isinstance(payload, bytes | bytearray):
        return payload.decode("utf-8", "replace")
    if isinstance(payload, str):
        return payload
    if isinstance(payload, ObservationIn):
        payload = {
            "datastream_id": payload.datastream_id,
            "result": payload.result,
            "phenomenonTime": payload.phenomenon_time,
            "feature": payload.feature,
        }
    return orjson.dumps(payload, default=str).decode()


class IngestPipeline:
    """Validates, stores and announces observation batches."""

    def __init__(
        self,
        engine: Engine,
        store: ObservationStore,
        catalog: DatastreamCatalog,
        geo: CityLocator,
        bus: MemoryBus,
        *,
        max_future: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.store = store
        self.catalog = catalog
        self.geo = geo
        self.bus = bus
        self.max_future = max_future
        self.clock = clock

    def ingest(
        self,
        records: Sequence[ObservationIn],
        *,
        channel: str,
        source_id: int | None = None,
        dedupe: bool = False,
        rejected: Sequence[Rejected] = (),
        quarantine_rejects: bool = True,
    ) -> IngestResult:
        """Store what is valid, quarantine what is not (unless the caller reports it itself).

        Validation uses cached datastream facts. If a datastream was deleted meanwhile (by another
        worker, whose news has not arrived), the derived rows' foreign keys refuse the batch: the
        cache is then dropped and the batch validated and written again, once.
        """
        now = self.clock()
        for attempt in (1, 2, 3):
            result = IngestResult(rejected=list(rejected))
            good = self._validate(records, result, now=now, dedupe=dedupe)
            self.store.prepare(s for _, s in good)
            try:
                with self.engine.begin() as conn:
                    rows, no_feature, generated = self._attach_features(conn, good)
                    result.duplicates = self.store.write(conn, rows, dedupe=dedupe)
                    if quarantine_rejects and (result.rejected or no_feature):
                        self._quarantine(conn, result.rejected + no_feature, channel, source_id, now)
                for thing_id, foi_id in generated.items():  # committed: now the cache may know them
                    self.catalog.set_default_foi(thing_id, foi_id)
                result.stored = [r for r in rows if r.id is not None]
                result.rejected += no_feature
                break
            except WriteAgain:
                # A partition dropped by retention elsewhere, or the stage lost with a rollback.
                if attempt == 3:
                    raise
            except DatastreamGone:
                if attempt == 3:
                    raise
                log.info("a datastream vanished under a batch; reloading the datastream catalog")
                self.catalog.forget()
        if result.stored:
            self.bus.publish(
                "observations.stored",
                {"channel": channel, "source_id": source_id, "observations": result.stored},
            )
        return result

    def _validate(
        self, records: Sequence[ObservationIn], result: IngestResult, *, now: datetime, dedupe: bool
    ) -> list[tuple[ObservationIn, StoredObservation]]:
        facts = self.catalog.lookup(self.engine, {r.datastream_id for r in records})
        good: list[tuple[ObservationIn, StoredObservation]] = []
        for rec in records:
            checked = validate(
                rec,
                facts.get(rec.datastream_id),
                now=now,
                max_future=self.max_future,
                in_city=self.geo.in_city,
                with_dedup_key=dedupe,
            )
            if isinstance(checked, Rejected):
                result.rejected.append(checked)
            else:
                good.append((rec, checked))
        return good

    def _attach_features(
        self, conn: Connection, good: list[tuple[ObservationIn, StoredObservation]]
    ) -> tuple[list[StoredObservation], list[Rejected], dict[int, int | None]]:
        """Give every row its FeatureOfInterest (and district, if it reports a position).

        Also returns the FeaturesOfInterest generated from Things' Locations on the way (by Thing),
        for the catalog to learn once the transaction has committed.
        """
        rows: list[StoredObservation] = []
        refused: list[Rejected] = []
        thing_foi: dict[int, int | None] = {}
        thing_of: dict[int, int] = {}
        for rec, row in good:
            if rec.feature is not None and rec.foi_id is None and geometry_of(rec.feature):
                row.foi_id = foi_for_feature(conn, rec.feature, self.geo)
                point = point_of(rec.feature)
                if point is not None:
                    row.district_code = self.geo.district_of(*point) or row.district_code
            if row.foi_id is None:
                thing_id = thing_of.get(row.datastream_id)
                if thing_id is None:
                    thing_id = thing_of[row.datastream_id] = self.catalog.get_many(conn, {row.datastream_id})[
                        row.datastream_id
                    ].thing_id
                if thing_id not in thing_foi:
                    thing_foi[thing_id] = foi_for_thing(conn, thing_id, self.geo)
                row.foi_id = thing_foi[thing_id]
                if row.foi_id is None:
                    refused.append(
                        Rejected(
                            rec, "no FeatureOfInterest given and the Thing has no Location to derive one"
                        )
                    )
                    continue
            rows.append(row)
        return rows, refused, thing_foi

    @staticmethod
    def _quarantine(
        conn: Connection, rejects: list[Rejected], channel: str, source_id: int | None, now: datetime
    ) -> None:
        conn.execute(
            quarantine.insert(),
            [
                {
                    "source_id": source_id,
                    "channel": channel,
                    "received_at": now,
                    "payload": _payload_text(r.payload),
                    "reason": r.reason,
                }
                for r in rejects
            ],
        )
        log.info("quarantined %d record(s) from %s", len(rejects), channel)
