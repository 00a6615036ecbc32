"""Writing facilities into the hub as SensorThings entities, in bulk and idempotently.

Three thousand Things one deep insert at a time would take a minute; seeding must take seconds, so
the rows are written here with multi-row inserts in one transaction, filling the same derived
columns the SensorThings layer fills (``spatial_columns``: lon, lat, district, H3 cell; a
Datastream's district from its Thing's Location). A Thing is recognised by its ``facility_key``
property and a Datastream by (Thing, ``measure``, ``key``), so seeding twice adds nothing, and
a Datastream added to the catalogue later is created on the next run. Two purification centres
that supply Seoul stand outside it (Gwangam in Hanam, Gangbuk in Namyangju): the platform stores
their real position, with no district, although a source could not send such a position (the hub
refuses positions outside the city from sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from citydesk.city.catalog import MEASURES
from citydesk.city.facilities import Facility
from citydesk.geo import CityGeo
from citydesk.hub.features import spatial_columns
from citydesk.hub.models import (
    datastreams,
    historical_location_locations,
    historical_locations,
    locations,
    observed_properties,
    sensors,
    thing_locations,
    things,
)

FAMILY = "city"
"""Retention family of the city feeds' Datastreams."""
FEED_SENSORS = {
    "simulator": ("citydesk city-feed simulator", "Simulated city feeds (bikes, car parks, rainfall, water "
                  "quality, parks, living population) standing in for the city's own systems"),
    "file": ("Demo file feed", "Synthetic CSV files read by the hub's file connector, standing in for "
             "the city's own exports (prices, finances)"),
}  # fmt: skip


def _sensor(conn: Connection, feed: str) -> int:
    name, description = FEED_SENSORS[feed]
    found = conn.execute(select(sensors.c.id).where(sensors.c.name == name).order_by(sensors.c.id)).scalar()
    if found is not None:
        return int(found)
    values = {
        "name": name,
        "description": description,
        "encoding_type": "text/plain",
        "metadata": description,
        "properties": {"simulated": True, "feed": feed},
    }
    return int(conn.execute(insert(sensors).values(values).returning(sensors.c.id)).scalar_one())


def observed_property_ids(conn: Connection) -> dict[str, int]:
    """The ObservedProperty of every city measure, created if missing (matched by definition)."""
    by_definition = {m.definition: m for m in MEASURES.values()}
    rows = conn.execute(
        select(observed_properties.c.id, observed_properties.c.definition)
        .where(observed_properties.c.definition.in_(sorted(by_definition)))
        .order_by(observed_properties.c.id)
    )
    found: dict[str, int] = {}
    for ident, definition in rows:
        found.setdefault(by_definition[definition].key, int(ident))
    for m in MEASURES.values():
        if m.key not in found:
            values = {
                "name": m.name,
                "definition": m.definition,
                "description": m.description,
                "properties": {"measure": m.key},
            }
            found[m.key] = int(
                conn.execute(insert(observed_properties).values(values).returning(observed_properties.c.id))
                .scalar_one()
            )  # fmt: skip
    return found


def existing_facilities(conn: Connection) -> dict[str, int]:
    """facility_key -> Thing id of the facilities already stored."""
    found: dict[str, int] = {}
    for ident, props in conn.execute(select(things.c.id, things.c.properties).order_by(things.c.id)):
        if isinstance(props, dict) and isinstance(props.get("facility_key"), str):
            found.setdefault(props["facility_key"], int(ident))
    return found


def _location_row(f: Facility, geo: CityGeo) -> dict[str, Any]:
    point = {"type": "Point", "coordinates": [f.lon, f.lat]}
    return {
        "name": f"{f.name_ko} ({f.name_en})",
        "description": f.address,
        "encoding_type": "application/geo+json",
        "location": point,
        "disclosure": f.disclosure,
        **spatial_columns(point, geo),
    }


def provision(
    conn: Connection, geo: CityGeo, facilities: Sequence[Facility], *, now: datetime
) -> tuple[int, int]:
    """Create the missing Things (with Location) and Datastreams; returns (Things, Datastreams) created."""
    known = existing_facilities(conn)
    new = [f for f in facilities if f.key not in known]
    if new:
        ids = conn.execute(
            insert(things).returning(things.c.id, sort_by_parameter_order=True),
            [
                {
                    "name": f"{f.name_ko} ({f.name_en})",
                    "description": f.address,
                    "properties": f.properties(),
                    "disclosure": f.disclosure,
                }
                for f in new
            ],
        ).scalars()
        created = dict(zip((f.key for f in new), (int(i) for i in ids), strict=True))
        known.update(created)
        loc_ids = conn.execute(
            insert(locations).returning(locations.c.id, sort_by_parameter_order=True),
            [_location_row(f, geo) for f in new],
        ).scalars()
        links = [{"thing_id": known[f.key], "location_id": int(i)} for f, i in zip(new, loc_ids, strict=True)]
        conn.execute(insert(thing_locations), links)
        # As the SensorThings layer does when a Thing gets its Location: one HistoricalLocation each.
        history = conn.execute(
            insert(historical_locations).returning(historical_locations.c.id, sort_by_parameter_order=True),
            [{"time": now, "thing_id": link["thing_id"]} for link in links],
        ).scalars()
        conn.execute(
            insert(historical_location_locations),
            [
                {"historical_location_id": int(h), "location_id": link["location_id"]}
                for h, link in zip(history, links, strict=True)
            ],
        )
    return len(new), _provision_streams(conn, geo, facilities, known)


def _provision_streams(
    conn: Connection, geo: CityGeo, facilities: Sequence[Facility], known: dict[str, int]
) -> int:
    wanted = [(f, s) for f in facilities for s in f.streams]
    if not wanted:
        return 0
    have = set()
    thing_ids = sorted({known[f.key] for f, _ in wanted})
    for thing_id, props in conn.execute(
        select(datastreams.c.thing_id, datastreams.c.properties).where(datastreams.c.thing_id.in_(thing_ids))
    ):
        if isinstance(props, dict):
            have.add((int(thing_id), props.get("measure"), props.get("key")))
    missing = [(f, s) for f, s in wanted if (known[f.key], s.measure, s.key) not in have]
    if not missing:
        return 0
    props_ids = observed_property_ids(conn)
    sensor_ids = {feed: _sensor(conn, feed) for feed in sorted({s.feed for _, s in missing})}
    rows = []
    for f, s in missing:
        m = MEASURES[s.measure]
        series = f" {s.label[1]}" if s.label else ""
        properties: dict[str, Any] = {
            "family": FAMILY,
            "disclosure": f.disclosure,
            "measure": s.measure,
            "feed": s.feed,
            "simulated": True,
        }
        if s.key is not None:
            properties["key"] = s.key
        if s.label is not None:
            properties["label"] = {"ko": s.label[0], "en": s.label[1]}
        rows.append(
            {
                "name": f"{f.name_en} {m.name}{series}",
                "description": f"{m.description}: {f.name_ko}{series}",
                "unit_of_measurement": m.unit,
                "observation_type": m.observation_type,
                "properties": properties,
                "thing_id": known[f.key],
                "sensor_id": sensor_ids[s.feed],
                "observed_property_id": props_ids[s.measure],
                "family": FAMILY,
                "disclosure": f.disclosure,
                "district_code": geo.district_of(f.lon, f.lat),
            }
        )
    conn.execute(insert(datastreams), rows)
    return len(rows)


def feed_datastreams(conn: Connection, feed: str) -> dict[tuple[str, str, str | None], int]:
    """(facility_key, measure, key) -> Datastream id of every stream written by ``feed``."""
    stmt = (
        select(datastreams.c.id, datastreams.c.properties, things.c.properties.label("thing"))
        .join(things, things.c.id == datastreams.c.thing_id)
        .order_by(datastreams.c.id)
    )
    out: dict[tuple[str, str, str | None], int] = {}
    for ident, props, thing in conn.execute(stmt):
        if isinstance(props, dict) and props.get("feed") == feed and isinstance(thing, dict):
            out.setdefault((str(thing.get("facility_key")), props["measure"], props.get("key")), int(ident))
    return out
