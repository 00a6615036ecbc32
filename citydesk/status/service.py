"""The live city status read from the data hub: which measures exist, the air screen, its sensors.

Every answer is limited to what the caller may see: datastreams (and, for the sensor map, their
Things and Locations) of a disclosure level in ``who.levels``. Latest values come from the worker's
``LatestSnapshot`` (which checks visibility on every read), history from the hourly rollups through
``aggregate.by_group``: nothing here scans raw observations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from citydesk.auth import Principal
from citydesk.errors import NotFound
from citydesk.hub.catalog import NUMERIC_TYPES
from citydesk.hub.models import datastreams, locations, observed_properties, thing_locations, things
from citydesk.hub.sta import aggregate
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS
from citydesk.hub.sta.serialize import iso
from citydesk.status import air as figures
from citydesk.status.measures import label, levels

if TYPE_CHECKING:
    from citydesk.web.app import App

SERIES_HOURS = 24


@dataclass(frozen=True, slots=True)
class Measure:
    """A numeric observed property the caller may see: how many datastreams, in which unit."""

    name: str
    unit: str | None
    datastreams: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "datastreams": self.datastreams,
            "label": label(self.name),
        }


def _measures(conn: Connection, who: Principal, name: str | None = None) -> dict[str, Measure]:
    """Numeric observed properties with datastreams ``who`` may see (one of them: ``name``).

    A measure's unit is the symbol most of its datastreams give (ties: the first by symbol), so a
    single misconfigured datastream does not relabel the whole map.
    """
    symbol = datastreams.c.unit_of_measurement["symbol"].as_string()
    stmt = (
        select(observed_properties.c.name, symbol, func.count())
        .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
        .where(
            datastreams.c.observation_type.in_(sorted(NUMERIC_TYPES)),
            visible(SETS["Datastreams"], who.levels),
        )
        .group_by(observed_properties.c.name, symbol)
        .order_by(observed_properties.c.name, symbol)
    )
    if name is not None:
        stmt = stmt.where(observed_properties.c.name == name)
    units: dict[str, Counter[str | None]] = {}
    for prop, unit, n in conn.execute(stmt):
        units.setdefault(prop, Counter())[unit] += n
    return {
        prop: Measure(prop, counts.most_common(1)[0][0], sum(counts.values()))
        for prop, counts in units.items()
    }


def _measure(conn: Connection, who: Principal, name: str) -> Measure:
    """The measure ``name``, or ``NotFound`` (also when it exists only at levels ``who`` may not see)."""
    found = _measures(conn, who, name).get(name)
    if found is None:
        raise NotFound(f"no measure {name!r}: see /api/status/measures", {"measure": name})
    return found


def require_measure(app: App, who: Principal, name: str) -> None:
    """``NotFound`` unless ``who`` may see a numeric measure called ``name``."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        _measure(conn, who, name)


def measures(app: App, who: Principal) -> dict[str, Any]:
    """Every numeric measure ``who`` may see, by name."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        found = _measures(conn, who)
    return {"measures": [m.as_json() for m in found.values()]}


def air(app: App, who: Principal, measure: str, *, now: datetime) -> dict[str, Any]:
    """The air and weather screen for one measure: city and district figures, 24 h, bands.

    ``series`` covers the ``SERIES_HOURS`` hourly buckets up to ``now``, the current one included
    (partly filled), per district that has data.
    """
    with app.engine.connect().execution_options(read_only=True) as conn:
        found = _measure(conn, who, measure)
        entries = app.latest.values(conn, who.levels, observed_property=measure)
    city, districts = figures.district_figures(measure, entries, app.geo.districts())
    hour = now.replace(minute=0, second=0, microsecond=0)
    rollups = aggregate.by_group(
        app,
        who,
        observed_property=measure,
        interval="hour",
        group_by="district",
        start=iso(hour - timedelta(hours=SERIES_HOURS - 1)),
        end=iso(hour + timedelta(hours=1)),
    )
    return {
        "measure": measure,
        "unit": found.unit,
        "label": label(measure),
        "updated": figures.newest(e["phenomenonTime"] for e in entries),
        "city": city,
        "districts": districts,
        "series": figures.hourly_series(rollups["series"]),
        "levels": levels(measure),
    }


def sensors(app: App, who: Principal, measure: str) -> dict[str, Any]:
    """The sensors measuring ``measure`` as a GeoJSON FeatureCollection, with their latest value.

    A sensor is a visible Datastream whose Thing and Location ``who`` may also see; a Thing with
    several Locations is placed at the newest one.
    """
    d, loc = datastreams.c, locations.c
    stmt = (
        select(d.id, d.thing_id, d.district_code, loc.lon, loc.lat)
        .join(observed_properties, observed_properties.c.id == d.observed_property_id)
        .join(thing_locations, thing_locations.c.thing_id == d.thing_id)
        .join(locations, loc.id == thing_locations.c.location_id)
        .join(things, things.c.id == d.thing_id)
        .where(
            observed_properties.c.name == measure,
            d.observation_type.in_(sorted(NUMERIC_TYPES)),
            visible(SETS["Datastreams"], who.levels),
            visible(SETS["Things"], who.levels),
            visible(SETS["Locations"], who.levels),
            loc.lon.is_not(None),
        )
        .order_by(d.id, loc.id)
    )
    with app.engine.connect().execution_options(read_only=True) as conn:
        _measure(conn, who, measure)
        placed = {ds: (thing, district, lon, lat) for ds, thing, district, lon, lat in conn.execute(stmt)}
        latest = {e["datastream"]: e for e in app.latest.values(conn, who.levels, observed_property=measure)}
    features = []
    for ds, (thing, district, lon, lat) in placed.items():
        entry = latest.get(ds, {})
        features.append(
            {
                "type": "Feature",
                "id": ds,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "datastream": ds,
                    "thing": thing,
                    "district": district,
                    "value": entry.get("result"),
                    "phenomenonTime": entry.get("phenomenonTime"),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
