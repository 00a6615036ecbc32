"""FeaturesOfInterest: generated from a Thing's Location, or from a position an observation carries.

The standard says a server generates the FeatureOfInterest from the Thing's Location when an
Observation names none; a device that reports its own position gets one per distinct position.
Both are found again by a key instead of being created twice.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import orjson
from sqlalchemy import ColumnElement, Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from citydesk.hub.models import features_of_interest, locations, thing_locations


class Locator(Protocol):
    """The part of ``citydesk.geo.CityGeo`` these functions need."""

    def district_of_geometry(self, geojson: dict[str, Any]) -> str | None: ...

    def h3_cell(self, lon: float, lat: float) -> str: ...


def geometry_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The GeoJSON geometry inside a geometry or a Feature."""
    return obj.get("geometry") or {} if obj.get("type") == "Feature" else obj


def point_of(obj: dict[str, Any]) -> tuple[float, float] | None:
    """(lon, lat) for Point geometries; None otherwise."""
    geom = geometry_of(obj)
    coords = geom.get("coordinates")
    if geom.get("type") == "Point" and isinstance(coords, list) and len(coords) >= 2:
        return float(coords[0]), float(coords[1])
    return None


def spatial_columns(geojson: dict[str, Any], geo: Locator) -> dict[str, Any]:
    """lon, lat, district and H3 cell of a location-like GeoJSON value, for storing beside it."""
    point = point_of(geojson)
    return {
        "lon": point[0] if point else None,
        "lat": point[1] if point else None,
        "district_code": geo.district_of_geometry(geometry_of(geojson)),
        "h3_cell": geo.h3_cell(*point) if point else None,
    }


def feature_key(geojson: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(geometry_of(geojson), option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def _insert_once(conn: Connection, values: dict[str, Any], key: ColumnElement[Any]) -> int:
    """Insert a generated FeatureOfInterest unless a concurrent writer already did; return its id.

    ``ON CONFLICT DO NOTHING`` waits for the other transaction and then skips, so two workers
    ingesting the first observations of one sensor at once do not fail on the unique key.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(features_of_interest).values(**values).on_conflict_do_nothing())
    return int(conn.execute(select(features_of_interest.c.id).where(key)).scalar_one())


def foi_for_feature(conn: Connection, geojson: dict[str, Any], geo: Locator, name: str = "") -> int:
    """Find or create the FeatureOfInterest for an inline position."""
    key = feature_key(geojson)
    where = features_of_interest.c.feature_key == key
    found = conn.execute(select(features_of_interest.c.id).where(where)).scalar()
    if found is not None:
        return int(found)
    geom = geometry_of(geojson)
    return _insert_once(
        conn,
        {
            "name": name or f"Position {key[:8]}",
            "description": "Generated from the position reported with an observation",
            "encoding_type": "application/geo+json",
            "feature": geom,
            "feature_key": key,
            **spatial_columns(geom, geo),
        },
        where,
    )


def foi_for_thing(conn: Connection, thing_id: int, geo: Locator) -> int | None:
    """The FeatureOfInterest generated from the Thing's (latest) Location, creating it once."""
    loc = conn.execute(
        select(locations)
        .join(thing_locations, thing_locations.c.location_id == locations.c.id)
        .where(thing_locations.c.thing_id == thing_id)
        .order_by(locations.c.id.desc())
        .limit(1)
    ).first()
    if loc is None:
        return None
    where = features_of_interest.c.location_id == loc.id
    found = conn.execute(select(features_of_interest.c.id).where(where)).scalar()
    if found is not None:
        return int(found)
    return _insert_once(
        conn,
        {
            "name": loc.name,
            "description": loc.description or f"Generated from Location {loc.id}",
            "encoding_type": loc.encoding_type,
            "feature": loc.location,
            "location_id": loc.id,
            "lon": loc.lon,
            "lat": loc.lat,
            "district_code": loc.district_code,
            "h3_cell": loc.h3_cell,
            "disclosure": loc.disclosure,
        },
        where,
    )
