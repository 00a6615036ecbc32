"""The city-status data set: Seoul's real facilities and the demo feeds, seeded into the hub.

Real data (``data/README.md`` gives provenance and SHA-256): the 119 safety centres, emergency
rooms, Ddareungi bike stations, registered population (2020) and CCTV cameras (2016) per district.
Where Seoul publishes no usable data here, synthetic feeds stand in for the city's own: the
simulator writes bikes available, car-park occupancy (at synthetic car parks), rainfall (at a
simulated gauge per district), water quality, park visitors and living population
(``citydesk.simulator.city``); prices and finances arrive as CSV files through ``file`` sources
(``feeds``). ``seed_city`` loads it all, idempotently, in a few seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import shapely
from sqlalchemy import Engine

from citydesk.city.facilities import (
    bike_stations,
    district_statistics,
    emergency_rooms,
    fire_stations,
    parking_lots,
    rain_gauges,
    synthetic_places,
)
from citydesk.city.feeds import register_sources
from citydesk.city.provision import provision
from citydesk.config import Settings
from citydesk.geo import CityGeo, read_districts
from citydesk.hub.sources.runner import IMPORT_FOLDER

DEMO_IMPORTS = IMPORT_FOLDER / "seoul-demo"


def _district_points(geo: CityGeo) -> list[tuple[str, str, str, float, float]]:
    """Each seeded district with a point inside it (where its statistics Thing is placed)."""
    known = {d.code for d in geo.districts()}
    out = []
    for d in read_districts():
        if d.code in known:
            p = shapely.point_on_surface(shapely.from_geojson(json.dumps(d.geometry)))
            out.append((d.code, d.name_ko, d.name_en, round(p.x, 6), round(p.y, 6)))
    return out


def seed_city(engine: Engine, *, imports: Path = DEMO_IMPORTS, settings: Settings | None = None) -> str:
    """Facilities, feeds' Datastreams and the demo file sources; needs the districts seeded first."""
    settings = settings or Settings.from_env()
    with engine.begin() as conn:
        geo = CityGeo.from_db(conn, settings)
        districts = _district_points(geo)
        facilities = (
            fire_stations()
            + emergency_rooms()
            + bike_stations()
            + district_statistics(districts)
            + rain_gauges(districts)
            + synthetic_places()
            + parking_lots()
        )
        now = datetime.now(UTC)
        new_things, new_streams = provision(conn, geo, facilities, now=now)
        new_sources = register_sources(conn, imports, now=now)
    return (
        f"{len(facilities)} facilities ({new_things} new), {new_streams} new datastreams, "
        f"{new_sources} new file sources"
    )
