"""Helpers for connector and source tests: datastreams to write to, a run context, counting rows.

The SensorThings layer has its own service; tests here insert the few catalog rows they need with
SQLAlchemy Core so they depend only on the tables, not on another sub-package's code paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine, func, select

from citydesk.hub.connectors.base import RunContext
from citydesk.hub.models import (
    datastreams,
    locations,
    observations,
    observed_properties,
    quarantine,
    sensors,
    thing_locations,
    things,
)
from citydesk.hub.records import Batch

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CITY_HALL = (126.978, 37.5665)


def make_datastreams(
    engine: Engine,
    names: Iterable[str],
    *,
    thing: str = "Test station",
    position: tuple[float, float] | None = CITY_HALL,
    observation_type: str = MEASUREMENT,
    disclosure: str = "public",
    unit: str = "µg/m³",
) -> dict[str, int]:
    """One Thing (located at ``position`` unless None) with one Datastream per name; name → id."""
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        thing_id = conn.execute(
            things.insert().values(name=thing, disclosure=disclosure).returning(things.c.id)
        ).scalar_one()
        if position is not None:
            loc_id = conn.execute(
                locations.insert()
                .values(
                    name=f"{thing} location",
                    location={"type": "Point", "coordinates": list(position)},
                    lon=position[0],
                    lat=position[1],
                )
                .returning(locations.c.id)
            ).scalar_one()
            conn.execute(thing_locations.insert().values(thing_id=thing_id, location_id=loc_id))
        sensor_id = conn.execute(
            sensors.insert().values(name="sensor", encoding_type="text/plain").returning(sensors.c.id)
        ).scalar_one()
        for name in names:
            prop_id = conn.execute(
                observed_properties.insert().values(name=name).returning(observed_properties.c.id)
            ).scalar_one()
            ids[name] = conn.execute(
                datastreams.insert()
                .values(
                    name=name,
                    unit_of_measurement={"name": unit, "symbol": unit, "definition": ""},
                    observation_type=observation_type,
                    thing_id=thing_id,
                    sensor_id=sensor_id,
                    observed_property_id=prop_id,
                    disclosure=disclosure,
                )
                .returning(datastreams.c.id)
            ).scalar_one()
    return ids


def run_context(
    http: httpx.AsyncClient | None = None,
    *,
    state: dict | None = None,
    source_id: int | None = None,
    name: str = "test source",
) -> RunContext:
    """A context with a fixed clock; ``http`` defaults to a client that refuses every request."""
    client = http or httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(599)))
    return RunContext(
        source_id=source_id,
        source_name=name,
        http=client,
        state=state if state is not None else {},
        clock=lambda: datetime(2024, 5, 1, 3, 0, tzinfo=UTC),
    )


async def collect(gen: AsyncIterator[Batch]) -> Batch:
    """All batches of one poll merged into one."""
    merged = Batch()
    async for batch in gen:
        merged.observations += batch.observations
        merged.rejected += batch.rejected
    return merged


def count_observations(engine: Engine, datastream_ids: Iterable[int] | None = None) -> int:
    query = select(func.count()).select_from(observations)
    if datastream_ids is not None:
        query = query.where(observations.c.datastream_id.in_(list(datastream_ids)))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def quarantined(engine: Engine, source_id: int | None = None) -> list[tuple[str, str]]:
    """(payload, reason) of quarantined records, oldest first."""
    query = select(quarantine.c.payload, quarantine.c.reason).order_by(quarantine.c.id)
    if source_id is not None:
        query = query.where(quarantine.c.source_id == source_id)
    with engine.connect() as conn:
        return [(r.payload, r.reason) for r in conn.execute(query)]
