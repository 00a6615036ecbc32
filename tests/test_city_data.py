"""The city-status data set: real facilities seeded into the hub, the demo file sources, and the
simulator's synthetic city feeds (bikes, car parks, water quality, parks, living population).

Counts are those of the real files (119 safety centres, 68 emergency rooms, 2,749 Ddareungi
stations, 25 districts with 10,013,781 registered residents in 2020).
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest
from sqlalchemy import func, select

from citydesk.city import seed_city
from citydesk.city.catalog import GOODS, TAXES
from citydesk.hub.connectors.file.connector import import_file
from citydesk.hub.models import (
    datastream_latest,
    datastreams,
    historical_locations,
    locations,
    sources,
    thing_locations,
    things,
)
from citydesk.simulator import Simulator, load_calibration
from citydesk.simulator.city import CityFeeds, FeedStream, bike_fill, parking_taken
from citydesk.simulator.model import CityModel
from citydesk.web.app import App

SEOUL_LON, SEOUL_LAT = (126.76, 127.19), (37.42, 37.70)
"""Where every real facility lies (the data README's bounding boxes)."""
SHARED = Path("/work/shared/data/seoul")


def _facilities(app: App) -> list[dict[str, Any]]:
    stmt = (
        select(things.c.properties, locations.c.lon, locations.c.lat, locations.c.district_code)
        .join(thing_locations, thing_locations.c.thing_id == things.c.id)
        .join(locations, locations.c.id == thing_locations.c.location_id)
    )
    with app.engine.connect() as conn:
        return [
            {**row.properties, "lon": row.lon, "lat": row.lat, "district_code": row.district_code}
            for row in conn.execute(stmt)
        ]


def _count(app: App, table: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_seeding_loads_the_real_facilities_once(app: App, tmp_path: Path) -> None:
    first = seed_city(app.engine, imports=tmp_path, settings=app.settings)
    found = _facilities(app)
    kinds = Counter(f["facility"] for f in found)
    assert kinds["fire_station"] == 119
    assert kinds["emergency_room"] == 68
    assert kinds["bike_station"] == 2749
    assert kinds["district"] == 25
    assert kinds["parking_lot"] == 76  # synthetic: three per district and the City Hall staff car park
    assert kinds["rain_gauge"] == 25  # simulated, one per district
    for f in found:
        assert set(f["name"]) == {"ko", "en"} and f["name"]["ko"] and f["source"]
        if f["facility"] in (
            "fire_station",
            "emergency_room",
            "bike_station",
            "district",
            "parking_lot",
            "rain_gauge",
        ):
            assert SEOUL_LON[0] <= f["lon"] <= SEOUL_LON[1] and SEOUL_LAT[0] <= f["lat"] <= SEOUL_LAT[1]
            assert f["district_code"] is not None, f["name"]
    districts = {f["district_code"]: f for f in found if f["facility"] == "district"}
    assert sorted(districts) == sorted(code for code, _, _ in app.geo.districts())
    assert sum(f["registered_population"] for f in districts.values()) == 10_013_781
    with (SHARED / "safety/seoul_cctv_by_gu_2016.csv").open(encoding="utf-8") as fh:
        cctv = {r["기관명"]: int(r["소계"]) for r in csv.DictReader(fh)}
    assert {f["name"]["ko"]: f["cctv_cameras"] for f in districts.values()} == cctv
    # A station's district comes from its coordinates; it agrees with the district the file names.
    names = {code: ko for code, ko, _ in app.geo.districts()}
    stations = [f for f in found if f["facility"] == "bike_station"]
    agree = sum(names[f["district_code"]] == f["district_name"] for f in stations)
    assert agree >= 0.99 * len(stations)

    tables = (things, locations, historical_locations, datastreams, sources)
    counts = [_count(app, t) for t in tables]
    assert counts[2] == counts[0]  # each Thing got its Location once: one HistoricalLocation
    again = seed_city(app.engine, imports=tmp_path, settings=app.settings)
    assert "(0 new), 0 new datastreams, 0 new file sources" in again and "(3083 new)" in first
    assert [_count(app, t) for t in tables] == counts


def test_the_staff_car_park_is_internal_everywhere(app: App, tmp_path: Path) -> None:
    seed_city(app.engine, imports=tmp_path, settings=app.settings)
    stmt = (
        select(things.c.properties, things.c.disclosure, locations.c.disclosure, datastreams.c.disclosure)
        .join(thing_locations, thing_locations.c.thing_id == things.c.id)
        .join(locations, locations.c.id == thing_locations.c.location_id)
        .join(datastreams, datastreams.c.thing_id == things.c.id)
    )
    with app.engine.connect() as conn:
        levels = {
            (props["facility_key"], thing, location, stream)
            for props, thing, location, stream in conn.execute(stmt)
            if props.get("facility") == "parking_lot"
        }
    internal = {key for key, *marks in levels if set(marks) == {"internal"}}
    assert internal == {"parking:cityhall-staff"}
    assert all(set(marks) == {"public"} for key, *marks in levels if key not in internal)
    assert len({key for key, *_ in levels}) == 76


def test_demo_files_arrive_through_their_file_sources(app: App, tmp_path: Path) -> None:
    seed_city(app.engine, imports=tmp_path, settings=app.settings)
    reports = {
        name: import_file(app, tmp_path / file, source_name=name)
        for file, name in (
            ("prices.csv", "Staple-goods prices (demo file)"),
            ("finances.csv", "City finances (demo file)"),
        )
    }
    assert reports["Staple-goods prices (demo file)"].stored == 6 * len(GOODS) * 2
    assert reports["City finances (demo file)"].stored == 12 * (len(TAXES) + 1)
    assert all(r.rejected == 0 for r in reports.values())
    # The newest price of rice at Gwangjang Market is the CSV's value of the last survey.
    with (tmp_path / "prices.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["market"] == "gwangjang" and r["good"] == "rice"]
    expected = float(max(rows, key=lambda r: r["date"])["price"])
    stmt = (
        select(datastream_latest.c.result_number, datastreams.c.properties, things.c.properties)
        .join(datastreams, datastreams.c.id == datastream_latest.c.datastream_id)
        .join(things, things.c.id == datastreams.c.thing_id)
    )
    with app.engine.connect() as conn:
        latest = {
            (t["facility_key"], d.get("key")): value
            for value, d, t in conn.execute(stmt)
            if "facility_key" in t
        }
    assert latest["market:gwangjang", "rice"] == expected
    # Seeding again neither overwrites the (city's) file nor adds a second source.
    (tmp_path / "prices.csv").write_text("date,market,good,price\n", encoding="utf-8")
    seed_city(app.engine, imports=tmp_path, settings=app.settings)
    assert (tmp_path / "prices.csv").read_text(encoding="utf-8") == "date,market,good,price\n"


def test_simulator_writes_the_city_feeds(app: App, tmp_path: Path) -> None:
    seed_city(app.engine, imports=tmp_path, settings=app.settings)

    async def scenario() -> Simulator:
        sim = Simulator(app, sensors_per_district=1, backfill_hours=2)
        await sim.provision()
        await sim.backfill()
        await sim.tick(app.now() + timedelta(minutes=6))  # every stream is due once in 5 minutes
        return sim

    sim = asyncio.run(scenario())
    assert sim.city is not None and sim.stats.rejected == 0 and sim.stats.failures == 0
    by_measure = Counter(s.measure for s in sim.city.streams)
    assert by_measure == {
        "bikes_available": 2749,
        "parking_available": 76,
        "parking_occupancy": 76,
        "rainfall": 25,
        "turbidity": 6,
        "residual_chlorine": 6,
        "ph": 6,
        "park_visitors": 8,
        "living_population": 25,
    }
    stmt = (
        select(datastreams.c.properties, datastream_latest.c.result_number, things.c.properties)
        .join(datastream_latest, datastream_latest.c.datastream_id == datastreams.c.id)
        .join(things, things.c.id == datastreams.c.thing_id)
    )
    values: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    with app.engine.connect() as conn:
        for props, value, thing in conn.execute(stmt):
            if props.get("feed") == "simulator":
                values.setdefault(props["measure"], []).append((value, thing))
    assert {m: len(v) for m, v in values.items()} == dict(by_measure)  # every stream has a value
    assert all(0 <= v <= t["docks"] for v, t in values["bikes_available"])
    occupancy = {t["facility_key"]: v for v, t in values["parking_occupancy"]}
    for free, lot in values["parking_available"]:
        assert 0 <= free <= lot["capacity"]
        # Both streams of a car park come from the same spaces taken.
        assert occupancy[lot["facility_key"]] == pytest.approx(100 * (1 - free / lot["capacity"]), abs=0.051)
    assert all(0 <= v < 150 for v, _ in values["rainfall"])  # mm/h
    assert all(0 < v < 0.5 for v, _ in values["turbidity"])  # drinking-water limit 0.5 NTU
    assert all(0.1 <= v <= 4.0 for v, _ in values["residual_chlorine"])
    assert all(5.8 <= v <= 8.5 for v, _ in values["ph"])
    living = sum(v for v, _ in values["living_population"])
    assert 0.98 * 10_013_781 < living < 1.12 * 10_013_781  # residents, plus commuters by day
    assert sim.observations_per_second < 40  # stations report every few minutes, not every second


def test_commuters_empty_residential_stations_and_fill_offices() -> None:
    residential, office = "11350", "11680"  # Nowon-gu, Gangnam-gu
    assert bike_fill(residential, 8.5, weekend=False) < bike_fill(residential, 2.0, weekend=False) - 0.2
    assert bike_fill(office, 9.0, weekend=False) > bike_fill(office, 2.0, weekend=False) + 0.2
    assert bike_fill(office, 19.0, weekend=False) < bike_fill(office, 9.0, weekend=False)


def test_car_parks_fill_with_office_hours_or_with_the_evening() -> None:
    residential, office = "11350", "11680"  # Nowon-gu, Gangnam-gu
    assert parking_taken(office, 11.0, weekend=False) > parking_taken(office, 3.0, weekend=False) + 0.5
    assert (
        parking_taken(residential, 22.0, weekend=False)
        > parking_taken(residential, 13.0, weekend=False) + 0.3
    )
    assert parking_taken(office, 11.0, weekend=True) < parking_taken(office, 11.0, weekend=False) - 0.3
    for district in (residential, office, "11440"):  # and a mixed one (Mapo-gu)
        for hour in range(24):
            for weekend in (False, True):
                assert 0.1 <= parking_taken(district, hour, weekend) <= 0.95


def test_rainfall_adds_up_to_the_real_normals_and_falls_when_the_air_is_humid() -> None:
    model = CityModel(load_calibration())
    feeds = CityFeeds(model, [])
    normal_year = sum(model.cal.normal(m).precipitation for m in range(1, 13))
    assert 1300 < normal_year < 1450  # Seoul, 2005-2021 (the calibration's weather file)
    start = datetime(2010, 1, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(24 * 365 * 10)]
    rain = [feeds.rainfall("11680", t) for t in hours]
    assert abs(sum(rain) / 10 - normal_year) < 0.1 * normal_year  # ten years of hourly rates
    assert 0.04 < sum(r > 0 for r in rain) / len(rain) < 0.15  # it rains now and then, not always
    sensor = model.new_state("rain-test")
    humidity: dict[bool, list[float]] = {True: [], False: []}
    for t in hours[: 24 * 120 : 3]:
        humidity[feeds.rainfall("11680", t) > 0].append(model.reading("humidity", "11680", t, sensor))
    assert humidity[True] and fmean(humidity[True]) > fmean(humidity[False]) + 5  # humid while it rains
    again = CityFeeds(CityModel(load_calibration()), [])  # a restart writes the same numbers
    assert [again.rainfall("11680", t) for t in hours[:500]] == rain[:500]


def test_living_population_moves_to_offices_and_grows_by_day() -> None:
    model = CityModel(load_calibration())
    streams = [
        FeedStream(1, "living_population", "district:11680", "11680", 540_000),  # Gangnam
        FeedStream(2, "living_population", "district:11350", "11350", 530_000),  # Nowon
    ]
    feeds = CityFeeds(model, streams)
    kst = timedelta(hours=9)
    noon = datetime(2026, 11, 18, 12, tzinfo=UTC) - kst  # a Wednesday
    night = datetime(2026, 11, 18, 4, tzinfo=UTC) - kst
    day = [feeds.reading(s, noon) for s in streams]
    dark = [feeds.reading(s, night) for s in streams]
    assert day[0] > dark[0] and day[1] < dark[1]  # residents leave Nowon for Gangnam's offices
    assert abs(sum(dark) - 1_070_000) < 0.02 * 1_070_000  # at night: the residents
    assert 1.05 * sum(dark) < sum(day) < 1.12 * sum(dark)  # by day: commuters from outside too
