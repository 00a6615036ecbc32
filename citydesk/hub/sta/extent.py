"""A Datastream's ``observedArea`` and ``resultTime``, computed when it is read.

SensorThings 1.1 (§8.2.4) gives a Datastream the spatial bounding box of the FeaturesOfInterest
of its Observations (``observedArea``) and the interval of their result times (``resultTime``),
both absent while it has no Observations. The store keeps a Datastream's phenomenonTime extent
(``datastream_latest``) but not these, so they are computed here, for a page of Datastreams at
once: one grouped scan of their Observations (by the ``datastream_id`` index) yields, per
Datastream and FeatureOfInterest, the first and last result time; one more query reads the
features, and the envelope is taken in Python. Only FeaturesOfInterest the caller may see count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from citydesk.hub.features import geometry_of
from citydesk.hub.models import observations
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS
from citydesk.hub.sta.geometry import positions
from citydesk.hub.sta.serialize import interval


def fill(
    conn: Connection,
    levels: Collection[str],
    ids: Sequence[int],
    items: Sequence[dict[str, Any]],
    names: Collection[str],
) -> None:
    """Add the derived properties ``names`` to the serialised Datastreams ``items`` (ids ``ids``)."""
    if not ids or not names:
        return
    o = observations.c
    rows = conn.execute(
        select(o.datastream_id, o.foi_id, func.min(o.result_time), func.max(o.result_time))
        .where(o.datastream_id.in_(sorted(set(ids))))
        .group_by(o.datastream_id, o.foi_id)
    )
    times: dict[int, list[datetime]] = defaultdict(list)
    fois: dict[int, set[int]] = defaultdict(set)
    for ds, foi, first, last in rows:
        times[ds] += [t for t in (first, last) if t is not None]
        if foi is not None:
            fois[ds].add(foi)
    areas = _areas(conn, levels, fois) if "observedArea" in names else {}
    for ds, item in zip(ids, items, strict=True):
        if "resultTime" in names and times.get(ds):
            item["resultTime"] = interval(min(times[ds]), max(times[ds]))
        if ds in areas:
            item["observedArea"] = areas[ds]


def _areas(conn: Connection, levels: Collection[str], fois: dict[int, set[int]]) -> dict[int, dict[str, Any]]:
    """Each Datastream's envelope of its visible FeaturesOfInterest, as GeoJSON."""
    wanted = set().union(*fois.values()) if fois else set()
    if not wanted:
        return {}
    es = SETS["FeaturesOfInterest"]
    found = conn.execute(
        select(es.col("id"), es.col("feature")).where(es.col("id").in_(sorted(wanted)), visible(es, levels))
    )
    points = {foi: list(positions(geometry_of(feature), "feature")) for foi, feature in found}
    areas: dict[int, dict[str, Any]] = {}
    for ds, ids in fois.items():
        xy = [p for foi in ids for p in points.get(foi, [])]
        if xy:
            areas[ds] = envelope(xy)
    return areas


def envelope(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """The bounding box of ``points`` as GeoJSON: a Polygon, or (as PostGIS ``ST_Envelope`` does)
    a Point or a LineString when it has no width or no height."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    west, east, south, north = min(xs), max(xs), min(ys), max(ys)
    if west == east and south == north:
        return {"type": "Point", "coordinates": [west, south]}
    if west == east or south == north:
        return {"type": "LineString", "coordinates": [[west, south], [east, north]]}
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}
