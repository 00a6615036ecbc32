"""GeoJSON as SensorThings entities carry it (``Location.location``, ``FeatureOfInterest.feature``):
checked for shape (so that nothing downstream meets a malformed position) and for being in the city.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from citydesk.errors import ValidationFailed
from citydesk.hub.features import geometry_of
from citydesk.hub.ingest import CityLocator

GEOMETRY_DEPTH = {
    "Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3,
}  # fmt: skip
"""How deeply each GeoJSON geometry type nests its positions."""


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{name} must be GeoJSON (a geometry or a Feature)")
    return value


def positions(geom: dict[str, Any], name: str) -> Iterator[tuple[float, float]]:
    """Every (lon, lat) of a GeoJSON geometry, checking its structure on the way."""
    kind = geom.get("type")
    if kind == "GeometryCollection":
        parts = geom.get("geometries")
        if not isinstance(parts, list):
            raise ValidationFailed(f"{name}: a GeometryCollection needs a list of geometries")
        for part in parts:
            yield from positions(_object(part, name), name)
        return
    depth = GEOMETRY_DEPTH.get(str(kind))
    if depth is None:
        raise ValidationFailed(f"{name}: {kind!r} is not a GeoJSON geometry type")

    def walk(coords: Any, level: int) -> Iterator[tuple[float, float]]:
        if level == 0:
            if (
                not isinstance(coords, list)
                or not 2 <= len(coords) <= 3
                or not all(
                    isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
                    for c in coords
                )
            ):
                shown = str(coords)[:40]
                raise ValidationFailed(f"{name}: a position must be [longitude, latitude], not {shown}")
            yield float(coords[0]), float(coords[1])
            return
        if not isinstance(coords, list) or not coords:
            raise ValidationFailed(f"{name}: the coordinates of a {kind} must be non-empty nested arrays")
        for inner in coords:
            yield from walk(inner, level - 1)

    yield from walk(geom.get("coordinates"), depth)


def check_geometry(geo: CityLocator, value: dict[str, Any], name: str) -> None:
    """A well-formed GeoJSON geometry (or Feature) inside the city: each point, or a shape's interior."""
    if value.get("type") == "Feature":
        if value.get("geometry") is None:
            return
        _object(value["geometry"], name)
    geom = geometry_of(value)
    points = list(positions(geom, name))
    if not points:
        raise ValidationFailed(f"{name}: an empty geometry has no place in the city")
    if geom.get("type") in ("Point", "MultiPoint"):
        outside = next(((lon, lat) for lon, lat in points if not geo.in_city(lon, lat)), None)
    else:
        outside = None if geo.district_of_geometry(geom) is not None else points[0]
    if outside is not None:
        raise ValidationFailed(f"{name}: position {outside[0]:.5f},{outside[1]:.5f} is outside the city")
