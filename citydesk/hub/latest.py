"""The latest observation of every datastream: what a city map needs on every refresh.

Served from ``datastream_latest`` (one row per datastream, kept by the store in the write
transaction), so the answer costs one index-free scan of a narrow table, not a search through
millions of observations.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, select

from citydesk.hub.models import datastream_latest, datastreams, observed_properties
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS
from citydesk.hub.sta.serialize import iso


def latest_rows(
    conn: Connection, levels: Collection[str], *, observed_property: str | None = None
) -> list[tuple[int, Any, float | None, Any, str | None]]:
    """(datastream id, time, number, json result, district) for each visible datastream."""
    stmt = (
        select(
            datastream_latest.c.datastream_id,
            datastream_latest.c.phenomenon_time,
            datastream_latest.c.result_number,
            datastream_latest.c.result_json,
            datastreams.c.district_code,
        )
        .join(datastreams, datastreams.c.id == datastream_latest.c.datastream_id)
        .where(visible(SETS["Datastreams"], levels))
    )
    if observed_property is not None:
        stmt = stmt.join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id).where(
            observed_properties.c.name == observed_property
        )
    return [tuple(r) for r in conn.execute(stmt)]  # type: ignore[misc]


def latest_json(rows: list[tuple[int, Any, float | None, Any, str | None]]) -> list[dict[str, Any]]:
    return [
        {
            "datastream": ds,
            "phenomenonTime": iso(t),
            "result": number if number is not None else js,
            "district": district,
        }
        for ds, t, number, js, district in rows
    ]
