"""What a widget's selector picks from the hub, limited to what the caller may see.

A Datastream counts only if both it and its Thing are of a level in ``who.levels`` (marking a
facility internal hides every figure it feeds); a Thing on a map needs a visible Location too.
Latest values come from the worker's ``LatestSnapshot`` and history from the rollups through
``aggregate.by_group`` — the same two readers the air screen uses — so nothing here scans raw
observations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from citydesk.auth import Principal
from citydesk.hub.models import datastreams, locations, observed_properties, thing_locations, things
from citydesk.hub.sta import aggregate
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS
from citydesk.hub.sta.serialize import iso
from citydesk.status.air import number
from citydesk.status.sections.config import Selector

if TYPE_CHECKING:
    from citydesk.web.app import App


def bilingual(value: Any, fallback: str) -> dict[str, str]:
    if isinstance(value, dict) and isinstance(value.get("ko"), str) and isinstance(value.get("en"), str):
        return {"ko": value["ko"], "en": value["en"]}
    return {"ko": fallback, "en": fallback}


@dataclass(frozen=True, slots=True)
class Stream:
    id: int
    thing: int
    thing_name: dict[str, str]
    district: str | None
    key: str | None
    label: dict[str, str] | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class Place:
    id: int
    name: dict[str, str]
    facility: str | None
    district: str | None
    properties: dict[str, Any]
    lon: float | None = None
    lat: float | None = None


def _facility(sel_facility: str | None) -> list[Any]:
    return [] if sel_facility is None else [things.c.properties["facility"].as_string() == sel_facility]


def streams(conn: Connection, who: Principal, sel: Selector) -> list[Stream]:
    """The visible Datastreams of ``sel.observed_property`` (on visible Things of ``sel.facility``)."""
    d = datastreams.c
    stmt = (
        select(d.id, d.thing_id, d.district_code, d.properties, d.unit_of_measurement, things.c.name,
               things.c.properties.label("thing_properties"))
        .join(observed_properties, observed_properties.c.id == d.observed_property_id)
        .join(things, things.c.id == d.thing_id)
        .where(
            observed_properties.c.name == sel.observed_property,
            visible(SETS["Datastreams"], who.levels),
            visible(SETS["Things"], who.levels),
            *_facility(sel.facility),
            *([d.district_code == sel.district] if sel.district else []),
            *([d.properties["key"].as_string() == sel.key] if sel.key else []),
        )
        .order_by(d.id)
    )  # fmt: skip
    out = []
    for ident, thing, district, props, unit, thing_name, thing_props in conn.execute(stmt):
        props = props if isinstance(props, dict) else {}
        thing_props = thing_props if isinstance(thing_props, dict) else {}
        out.append(
            Stream(
                int(ident),
                int(thing),
                bilingual(thing_props.get("name"), thing_name),
                district,
                props.get("key"),
                bilingual(props["label"], str(props.get("key"))) if "label" in props else None,
                unit.get("symbol") if isinstance(unit, dict) else None,
            )
        )
    return out


def places(conn: Connection, who: Principal, sel: Selector, *, located: bool = False) -> list[Place]:
    """The visible Things of ``sel.facility`` with their newest visible Location (if any).

    ``located``: only Things with a visible Location (for maps). A Thing's district is its
    Location's.
    """
    loc = locations.c
    stmt = (
        select(things.c.id, things.c.name, things.c.properties, loc.district_code, loc.lon, loc.lat)
        .select_from(things)
        .outerjoin(thing_locations, thing_locations.c.thing_id == things.c.id)
        .outerjoin(
            locations, (loc.id == thing_locations.c.location_id) & visible(SETS["Locations"], who.levels)
        )
        .where(visible(SETS["Things"], who.levels), *_facility(sel.facility))
        .order_by(things.c.id, loc.id)
    )
    found: dict[int, Place] = {}
    for ident, name, props, district, lon, lat in conn.execute(stmt):
        props = props if isinstance(props, dict) else {}
        if lon is None and ident in found:
            continue
        found[int(ident)] = Place(
            int(ident), bilingual(props.get("name"), name), props.get("facility"), district, props, lon, lat
        )
    return [
        p
        for p in found.values()
        if (not located or p.lon is not None) and (sel.district is None or p.district == sel.district)
    ]


def unit_of(selected: list[Stream]) -> str | None:
    """The unit most of the selected Datastreams give (ties: the first by symbol)."""
    counts = Counter(s.unit for s in selected)
    return min(counts, key=lambda u: (-counts[u], u or "")) if counts else None


@dataclass(frozen=True, slots=True)
class Latest:
    value: float
    time: str


def latest(
    app: App, conn: Connection, who: Principal, observed_property: str, ids: set[int]
) -> dict[int, Latest]:
    """The latest numeric value of each of ``ids`` that has one."""
    out = {}
    for e in app.latest.values(conn, who.levels, observed_property=observed_property):
        value = number(e["result"])
        if e["datastream"] in ids and value is not None:
            out[e["datastream"]] = Latest(value, e["phenomenonTime"])
    return out


def hourly_means(
    app: App, who: Principal, sel: Selector, ids: set[int], *, start: datetime, end: datetime
) -> dict[int, list[tuple[str, float]]]:
    """Per Datastream of ``ids``: (bucket start, mean) from the ``sel.interval`` rollups in [start, end)."""
    assert sel.observed_property is not None
    rollups = aggregate.by_group(
        app,
        who,
        observed_property=sel.observed_property,
        interval=sel.interval,
        group_by="datastream",
        start=iso(start),
        end=iso(end),
    )
    return {
        g["key"]: [
            (p["phenomenonTime"].split("/", 1)[0], p["mean"]) for p in g["points"] if p["mean"] is not None
        ]
        for g in rollups["series"]
        if g["key"] in ids
    }
