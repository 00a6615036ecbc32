"""Where the simulated S-DoT sensors stand, and the SensorThings entities that describe them.

Sensors are placed at random points *inside* their district's polygon (rejection sampling,
deterministic by seed), so the ingest path files each one under the right district exactly as it
would a real device. Each sensor becomes one Thing with one Location and eleven Datastreams, the
way Seoul publishes S-DoT: one Sensor entity for the device model and one ObservedProperty per
measure, both shared by every sensor (created once, then linked by ``@iot.id``). People counts
are ``internal``, as in the real system; everything else is public. The ``find_*`` functions
recognise what an earlier run created, so provisioning twice creates nothing the second time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, select

from citydesk.hub.models import datastreams, observed_properties, sensors, things
from citydesk.simulator.model import MEASURES

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
NETWORK = "S-DoT (simulated)"
SENSOR_MODEL = "S-DoT v1"
FAMILY = "sdot"
"""Retention family of every simulated Datastream (S-DoT's volume deserves its own policy)."""
QUDT = "http://qudt.org/vocab"
CITYDESK = "urn:citydesk:def"


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """How one measure is published: ObservedProperty, unit, observation type, disclosure."""

    key: str
    name: str
    definition: str
    description: str
    unit: dict[str, str]
    observation_type: str = MEASUREMENT
    disclosure: str = "public"


def _unit(name: str, symbol: str, definition: str) -> dict[str, str]:
    return {"name": name, "symbol": symbol, "definition": definition}


SPECS: dict[str, MeasureSpec] = {
    s.key: s
    for s in (
        MeasureSpec("pm10", "PM10", f"{QUDT}/quantitykind/MassConcentration#PM10",
                    "Mass concentration of particulate matter up to 10 µm",
                    _unit("microgram per cubic metre", "µg/m³", f"{QUDT}/unit/MicroGM-PER-M3")),
        MeasureSpec("pm25", "PM2.5", f"{QUDT}/quantitykind/MassConcentration#PM2.5",
                    "Mass concentration of particulate matter up to 2.5 µm",
                    _unit("microgram per cubic metre", "µg/m³", f"{QUDT}/unit/MicroGM-PER-M3")),
        MeasureSpec("temperature", "Temperature", f"{QUDT}/quantitykind/Temperature",
                    "Air temperature", _unit("degree Celsius", "°C", f"{QUDT}/unit/DEG_C")),
        MeasureSpec("humidity", "Humidity", f"{QUDT}/quantitykind/RelativeHumidity",
                    "Relative humidity of the air", _unit("percent", "%", f"{QUDT}/unit/PERCENT")),
        MeasureSpec("illuminance", "Illuminance", f"{QUDT}/quantitykind/Illuminance",
                    "Illuminance at the sensor", _unit("lux", "lx", f"{QUDT}/unit/LUX")),
        MeasureSpec("noise", "Noise", f"{QUDT}/quantitykind/SoundPressureLevel",
                    "A-weighted sound pressure level",
                    _unit("decibel (A-weighted)", "dB(A)", f"{QUDT}/unit/DeciB_A")),
        MeasureSpec("vibration", "Vibration", f"{QUDT}/quantitykind/Velocity#vibration",
                    "Peak particle velocity of ground vibration",
                    _unit("millimetre per second", "mm/s", f"{QUDT}/unit/MilliM-PER-SEC")),
        MeasureSpec("wind_direction", "Wind direction", f"{CITYDESK}:property:wind-direction",
                    "Direction the wind blows from, clockwise from north",
                    _unit("degree", "°", f"{QUDT}/unit/DEG")),
        MeasureSpec("wind_speed", "Wind speed", f"{CITYDESK}:property:wind-speed",
                    "Wind speed", _unit("metre per second", "m/s", f"{QUDT}/unit/M-PER-SEC")),
        MeasureSpec("uv", "UV index", f"{CITYDESK}:property:uv-index",
                    "WHO/WMO ultraviolet index", _unit("UV index", "UVI", f"{CITYDESK}:unit:uv-index")),
        MeasureSpec("floating_population", "Floating population", f"{CITYDESK}:property:floating-population",
                    "People passing the sensor in the minute before phenomenonTime",
                    _unit("people per minute", "{people}/min", f"{CITYDESK}:unit:people-per-minute"),
                    COUNT_OBSERVATION, "internal"),
    )
}  # fmt: skip
assert tuple(SPECS) == MEASURES


@dataclass(frozen=True, slots=True)
class SensorSite:
    """One sensor's place: its district, number within the district, and position."""

    district: str
    district_name: str
    number: int
    lon: float
    lat: float

    @property
    def key(self) -> str:
        """Stable identity across restarts: ``<SIG_CD>-<number>``."""
        return f"{self.district}-{self.number}"

    @property
    def name(self) -> str:
        return f"S-DoT {self.district_name} #{self.number}"


def place_sensors(
    districts: Sequence[tuple[str, str, BaseGeometry]],
    per_district: int,
    seed: int,
    accept: Callable[[str, float, float], bool] | None = None,
    max_tries: int = 10_000,
) -> list[SensorSite]:
    """``per_district`` sites at random points inside each (code, Korean name, polygon).

    Each district has its own seeded generator, so adding a district or changing N for one does
    not move the sensors of another, and sensor #k stays put when N grows. ``accept`` lets the
    caller veto a point (the runner checks that the city's live index agrees on the district).
    """
    sites: list[SensorSite] = []
    for code, name, geom in sorted(districts, key=lambda d: d[0]):
        rng = random.Random(f"{seed}:layout:{code}")
        shapely.prepare(geom)
        x0, y0, x1, y1 = geom.bounds
        for number in range(1, per_district + 1):
            for _ in range(max_tries):
                lon, lat = round(rng.uniform(x0, x1), 6), round(rng.uniform(y0, y1), 6)
                if shapely.contains_xy(geom, lon, lat) and (accept is None or accept(code, lon, lat)):
                    sites.append(SensorSite(code, name, number, lon, lat))
                    break
            else:
                raise ValueError(f"could not place sensor {number} inside district {code} ({name})")
    return sites


def sensor_payload() -> dict[str, Any]:
    """The one Sensor entity for the device model, shared by all simulated sensors."""
    return {
        "name": SENSOR_MODEL,
        "description": "Simulated Seoul S-DoT multi-sensor (10 environmental measures + people count)",
        "encodingType": "text/plain",
        "metadata": "Simulated by citydesk.simulator: "
        + ", ".join(f"{s.name} ({s.unit['symbol']})" for s in SPECS.values()),
        "properties": {"network": NETWORK, "simulated": True, "measures": list(MEASURES)},
    }


def observed_property_payload(measure: str) -> dict[str, Any]:
    spec = SPECS[measure]
    return {
        "name": spec.name,
        "definition": spec.definition,
        "description": spec.description,
        "properties": {"measure": spec.key},
    }


def thing_payload(site: SensorSite, sensor_id: int, property_ids: Mapping[str, int]) -> dict[str, Any]:
    """Deep insert of one sensor: Thing, its Location, and a Datastream per measure."""
    point = {"type": "Point", "coordinates": [site.lon, site.lat]}
    return {
        "name": site.name,
        "description": f"Simulated S-DoT urban data sensor in {site.district_name}",
        "properties": {
            "district": site.district,
            "network": NETWORK,
            "simulated": True,
            "sensor_key": site.key,
        },
        "Locations": [
            {
                "name": f"{site.name} site",
                "description": f"Pole-mounted sensor, {site.district_name}",
                "encodingType": "application/geo+json",
                "location": point,
            }
        ],
        "Datastreams": [
            {
                "name": f"{site.name} {spec.name}",
                "description": f"{spec.description}, measured by {site.name}",
                "unitOfMeasurement": spec.unit,
                "observationType": spec.observation_type,
                "properties": {
                    "family": FAMILY,
                    "disclosure": spec.disclosure,
                    "measure": spec.key,
                    "simulated": True,
                },
                "Sensor": {"@iot.id": sensor_id},
                "ObservedProperty": {"@iot.id": property_ids[spec.key]},
            }
            for spec in SPECS.values()
        ],
    }


# -- finding them again (provisioning must be idempotent) ------------------------------------------
def find_shared(conn: Connection) -> tuple[int | None, dict[str, int]]:
    """The existing device-model Sensor id (or None) and ObservedProperty id per measure.

    ObservedProperties are matched by definition URL: a real connector's "PM10" with the same
    definition is the same phenomenon, and sharing it lets the dashboard compare both.
    """
    sensor_id = conn.execute(
        select(sensors.c.id).where(sensors.c.name == SENSOR_MODEL).order_by(sensors.c.id).limit(1)
    ).scalar()
    defs = {s.definition: k for k, s in SPECS.items()}
    rows = conn.execute(
        select(observed_properties.c.id, observed_properties.c.definition)
        .where(observed_properties.c.definition.in_(list(defs)))
        .order_by(observed_properties.c.id)
    )
    found: dict[str, int] = {}
    for row in rows:
        found.setdefault(defs[row.definition], int(row.id))
    return (None if sensor_id is None else int(sensor_id)), found


def find_things(conn: Connection) -> dict[str, int]:
    """sensor_key -> Thing id of the simulated sensors already stored."""
    found: dict[str, int] = {}
    for row in conn.execute(select(things.c.id, things.c.properties).where(things.c.name.like("S-DoT %"))):
        props = row.properties if isinstance(row.properties, dict) else {}
        if props.get("network") == NETWORK and props.get("sensor_key"):
            found.setdefault(str(props["sensor_key"]), int(row.id))
    return found


def find_datastreams(conn: Connection, thing_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Thing id -> {measure: Datastream id}, from the ``measure`` property set at creation."""
    out: dict[int, dict[str, int]] = {}
    rows = conn.execute(
        select(datastreams.c.id, datastreams.c.thing_id, datastreams.c.properties)
        .where(datastreams.c.thing_id.in_(list(thing_ids)))
        .order_by(datastreams.c.id)
    )
    for row in rows:
        measure = row.properties.get("measure") if isinstance(row.properties, dict) else None
        if measure in SPECS:
            out.setdefault(int(row.thing_id), {}).setdefault(measure, int(row.id))
    return out
