"""Aggregates served from the hourly and daily rollups, never from raw rows.

Two shapes: one Datastream's series (a documented SensorThings extension,
``/Datastreams(id)/Observations/$aggregate``) and an observed property grouped by district
(``/api/hub/aggregates``: "PM10 by district, hourly, last 7 days"). Both keep working after the
raw partitions have been dropped by retention.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, or_, select

from citydesk.auth import Principal
from citydesk.errors import InvalidQuery, NotFound
from citydesk.hub.models import datastreams, observed_properties, rollup_daily, rollup_hourly
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import MAX_ID, SETS
from citydesk.hub.sta.serialize import iso
from citydesk.hub.times import parse_instant

if TYPE_CHECKING:
    from citydesk.web.app import App

INTERVALS: dict[str, tuple[Table, timedelta]] = {
    "hour": (rollup_hourly, timedelta(hours=1)),
    "day": (rollup_daily, timedelta(days=1)),
}
GROUPS = ("district", "datastream", "none")


def _window(
    app: App, interval: str, start: str | None, end: str | None
) -> tuple[Table, timedelta, datetime, datetime]:
    if interval not in INTERVALS:
        raise InvalidQuery(f"interval must be one of {', '.join(INTERVALS)}")
    table, width = INTERVALS[interval]
    stop = parse_instant(end, "end") if end else app.now()
    begin = parse_instant(start, "start") if start else stop - timedelta(days=7)
    if begin >= stop:
        raise InvalidQuery("start must be before end")
    return table, width, begin, stop


def _point(bucket: datetime, width: timedelta, n: int, total: float, lo: float, hi: float) -> dict[str, Any]:
    return {
        "phenomenonTime": f"{iso(bucket)}/{iso(bucket + width)}",
        "count": int(n),
        "mean": total / n if n else None,
        "min": lo,
        "max": hi,
    }


def datastream_series(
    app: App, who: Principal, datastream_id: int, interval: str, start: str | None, end: str | None
) -> dict[str, Any]:
    table, width, begin, stop = _window(app, interval, start, end)
    if not 0 < datastream_id <= MAX_ID:
        raise NotFound(f"no Datastream with @iot.id {datastream_id}")
    with app.engine.connect().execution_options(read_only=True) as conn:
        ds = SETS["Datastreams"]
        shown = select(ds.col("id")).where(ds.col("id") == datastream_id, visible(ds, who.levels))
        if conn.execute(shown).first() is None:
            raise NotFound(f"no Datastream with @iot.id {datastream_id}")
        rows = conn.execute(
            select(table.c.bucket, table.c["count"], table.c["sum"], table.c["min"], table.c["max"])
            .where(table.c.datastream_id == datastream_id, table.c.bucket >= begin, table.c.bucket < stop)
            .order_by(table.c.bucket)
        ).all()
    return {"interval": interval, "value": [_point(r[0], width, r[1], r[2], r[3], r[4]) for r in rows]}


def by_group(
    app: App,
    who: Principal,
    *,
    observed_property: str,
    interval: str = "hour",
    group_by: str = "district",
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """An observed property (by name or definition) aggregated per district, datastream or city."""
    if group_by not in GROUPS:
        raise InvalidQuery(f"group_by must be one of {', '.join(GROUPS)}")
    table, width, begin, stop = _window(app, interval, start, end)
    key = {
        "district": datastreams.c.district_code,
        "datastream": datastreams.c.id,
        "none": None,
    }[group_by]
    cols = [
        table.c.bucket,
        func.sum(table.c["count"]),
        func.sum(table.c["sum"]),
        func.min(table.c["min"]),
        func.max(table.c["max"]),
    ]
    stmt = (
        select(*([key] if key is not None else []), *cols)
        .join(datastreams, datastreams.c.id == table.c.datastream_id)
        .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
        .where(
            or_(
                observed_properties.c.name == observed_property,
                observed_properties.c.definition == observed_property,
            ),
            visible(SETS["Datastreams"], who.levels),
            table.c.bucket >= begin,
            table.c.bucket < stop,
        )
        .group_by(*([key] if key is not None else []), table.c.bucket)
        .order_by(*([key] if key is not None else []), table.c.bucket)
    )
    series: dict[Any, list[dict[str, Any]]] = {}
    with app.engine.connect().execution_options(read_only=True) as conn:
        for row in conn.execute(stmt):
            group = row[0] if key is not None else "city"
            values = row[1:] if key is not None else row
            series.setdefault(group, []).append(_point(values[0], width, *values[1:]))
    names = {code: (ko, en) for code, ko, en in app.geo.districts()} if group_by == "district" else {}
    return {
        "observed_property": observed_property,
        "interval": interval,
        "group_by": group_by,
        "start": iso(begin),
        "end": iso(stop),
        "series": [
            {
                "key": group,
                **(
                    dict(zip(("name_ko", "name_en"), names.get(group, (None, None)), strict=True))
                    if names
                    else {}
                ),
                "points": points,
            }
            for group, points in series.items()
        ],
    }
