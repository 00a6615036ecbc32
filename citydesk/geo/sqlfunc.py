"""Spatial SQL functions for SQLite, so one ``$filter`` compiler serves both databases.

PostgreSQL uses PostGIS; SQLite gets the same function names, implemented with Shapely, registered
on every connection. Geometries travel as GeoJSON text (columns) or WKT (query literals).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from functools import lru_cache

import shapely
from shapely.geometry.base import BaseGeometry


@lru_cache(maxsize=4096)
def _parse(text: str) -> BaseGeometry:
    text = text.strip()
    if text.startswith("{"):
        obj = json.loads(text)
        if obj.get("type") == "Feature":
            obj = obj["geometry"]
        return shapely.geometry.shape(obj)
    return shapely.from_wkt(text)


# A Python exception inside a SQLite function aborts the whole statement; a value that is not a
# geometry (malformed text, JSON ``null``, a Feature without geometry) reads as SQL NULL instead.
_BAD_INPUT = (ValueError, TypeError, KeyError, AttributeError, IndexError, shapely.errors.ShapelyError)


def _binary(
    op: Callable[[BaseGeometry, BaseGeometry], bool],
) -> Callable[[str | None, str | None], int | None]:
    def fn(a: str | None, b: str | None) -> int | None:
        if a is None or b is None:
            return None
        try:
            return int(bool(op(_parse(a), _parse(b))))
        except _BAD_INPUT:
            return None

    return fn


PREDICATES: dict[str, Callable[[BaseGeometry, BaseGeometry], bool]] = {
    "cd_st_intersects": lambda a, b: a.intersects(b),
    "cd_st_within": lambda a, b: a.within(b),
    "cd_st_contains": lambda a, b: a.contains(b),
    "cd_st_crosses": lambda a, b: a.crosses(b),
    "cd_st_disjoint": lambda a, b: a.disjoint(b),
    "cd_st_equals": lambda a, b: a.equals(b),
    "cd_st_overlaps": lambda a, b: a.overlaps(b),
    "cd_st_touches": lambda a, b: a.touches(b),
}


def _distance(a: str | None, b: str | None) -> float | None:
    if a is None or b is None:
        return None
    try:
        return float(_parse(a).distance(_parse(b)))
    except _BAD_INPUT:
        return None


def _linear_length(geom: BaseGeometry) -> float:
    """Length as PostGIS ``ST_Length`` measures it: lines only (a polygon has length 0, not its perimeter)."""
    if geom.geom_type in ("LineString", "LinearRing", "MultiLineString"):
        return float(geom.length)
    if geom.geom_type == "GeometryCollection":
        return sum(_linear_length(part) for part in geom.geoms)  # type: ignore[attr-defined]
    return 0.0


def _length(a: str | None) -> float | None:
    if a is None:
        return None
    try:
        return _linear_length(_parse(a))
    except _BAD_INPUT:
        return None


def _relate(a: str | None, b: str | None, pattern: str | None) -> int | None:
    """``ST_Relate(a, b, pattern)``: does the DE-9IM matrix of ``a`` and ``b`` match ``pattern``."""
    if a is None or b is None or pattern is None:
        return None
    try:
        return int(bool(_parse(a).relate_pattern(_parse(b), pattern)))
    except _BAD_INPUT:
        return None


def register_sqlite_geo_functions(conn: sqlite3.Connection) -> None:
    """Register the ``cd_st_*`` functions on a raw SQLite connection."""
    for name, op in PREDICATES.items():
        conn.create_function(name, 2, _binary(op), deterministic=True)
    conn.create_function("cd_st_distance", 2, _distance, deterministic=True)
    conn.create_function("cd_st_length", 1, _length, deterministic=True)
    conn.create_function("cd_st_relate", 3, _relate, deterministic=True)
