"""The S-DoT simulator: calibration on real 2019 data, the model's cycles, layout, and a live run.

The model tests run on the pure functions; the run tests start the simulator against a real,
migrated app (SQLite and PostgreSQL) and read back through the SensorThings read path.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from statistics import fmean

import pytest
import shapely
from sqlalchemy import ColumnElement, Table, func, select

from citydesk.auth import ANONYMOUS
from citydesk.geo import read_districts
from citydesk.hub.models import datastreams, observations, things
from citydesk.hub.sta import service
from citydesk.simulator import Calibration, Simulator, attach, load_calibration
from citydesk.simulator.calibration import day_index, fill_gaps
from citydesk.simulator.layout import SPECS, place_sensors, thing_payload
from citydesk.simulator.model import MEASURES, SEOUL, CityModel, sun_elevation, sunrise_hour
from citydesk.simulator.runner import system_principal
from citydesk.web.app import App

BASE = "http://x/sta/v1.1"
OP_NAMES = [
    "PM10", "PM2.5", "Temperature", "Humidity", "Illuminance", "Noise",
    "Vibration", "Wind direction", "Wind speed", "UV index", "Floating population",
]  # fmt: skip


@pytest.fixture(scope="module")
def cal() -> Calibration:
    return load_calibration()


def day_series(model: CityModel, measure: str, district: str, day: date, key: str = "t-1") -> list[float]:
    """One sensor's readings every minute of a Seoul local day."""
    state = model.new_state(key)
    t0 = datetime(day.year, day.month, day.day, tzinfo=SEOUL)
    return [model.reading(measure, district, t0 + timedelta(minutes=m), state) for m in range(1440)]


# -- calibration ------------------------------------------------------------------------------
def test_calibration_has_25_districts_with_a_full_year(cal: Calibration) -> None:
    assert len(cal.districts()) == 25 and set(cal.districts()) == {d.code for d in read_districts()}
    for code in cal.districts():
        assert len(cal.pm10[code]) == len(cal.pm25[code]) == 365
        assert all(v > 0 for v in cal.pm10[code]) and all(v > 0 for v in cal.pm25[code])
    assert cal.names["11680"] == "강남구" and cal.names["11230"] == "동대문구"
    # Spot checks against the file: 2019-12-31 강남구 22/14, 강동구 27/19; 2019-03-05 was a dust day.
    new_year_eve = date(2019, 12, 31)
    assert cal.daily("pm10", "11680", new_year_eve) == 22 and cal.daily("pm25", "11680", new_year_eve) == 14
    assert cal.daily("pm10", "11740", date(2031, 12, 31)) == 27  # any year: 2019's calendar day
    assert cal.daily("pm10", "11680", date(2024, 2, 29)) == cal.daily("pm10", "11680", date(2019, 2, 28))
    assert cal.daily("pm25", "11680", date(2019, 3, 5)) > 100
    assert sum(cal.filled.values()) == 213 + 203  # every missing district-day was filled
    assert len(cal.climate) == 12 and cal.normal(8).temp_mean > 25 > 0 > cal.normal(1).temp_mean
    assert all(n.temp_min < n.temp_mean < n.temp_max for n in cal.climate)


def test_gaps_filled_from_the_average_scaled_by_the_district() -> None:
    filled, n = fill_gaps([20.0, None, 30.0], [10.0, 40.0, 15.0])
    assert n == 1 and filled == (20.0, 80.0, 30.0)  # district runs at twice the average
    assert day_index(date(2019, 1, 1)) == 0 and day_index(date(2019, 12, 31)) == 364


# -- model ------------------------------------------------------------------------------------
def test_model_is_deterministic_by_seed(cal: Calibration) -> None:
    def run(seed: int) -> list[float]:
        model = CityModel(cal, seed)
        state = model.new_state("11680-1")
        t0 = datetime(2025, 5, 1, tzinfo=UTC)
        times = [t0 + timedelta(minutes=i) for i in range(200)]
        return [model.reading(m, "11680", t, state) for t in times for m in MEASURES]

    assert run(7) == run(7)
    assert run(7) != run(8)
    with pytest.raises(ValueError):
        CityModel(cal).reading("pm10", "11680", datetime(2025, 5, 1), CityModel(cal).new_state("x"))


@pytest.mark.parametrize("district", ["11680", "11320", "11140", "11620"])
def test_daily_mean_pm_matches_real_2019(cal: Calibration, district: str) -> None:
    model = CityModel(cal, 2019)
    for day in (date(2025, 1, 14), date(2025, 3, 5), date(2025, 6, 20), date(2025, 8, 10), date(2025, 11, 2)):
        for measure in ("pm10", "pm25"):
            sim = fmean(day_series(model, measure, district, day, key=f"{district}-1"))
            real = cal.daily(measure, district, day)
            assert abs(sim / real - 1) <= 0.25, (district, day, measure, sim, real)


def test_temperature_lowest_before_dawn_highest_in_the_afternoon(cal: Calibration) -> None:
    model = CityModel(cal, 2019)
    for start in (date(2025, 1, 6), date(2025, 4, 7), date(2025, 7, 7), date(2025, 10, 6)):
        state = model.new_state("11440-1")
        hourly = [[] for _ in range(24)]  # type: list[list[float]]
        for d in range(7):
            t0 = datetime(start.year, start.month, start.day, tzinfo=SEOUL) + timedelta(days=d)
            for m in range(0, 1440, 5):
                t = t0 + timedelta(minutes=m)
                hourly[m // 60].append(model.reading("temperature", "11440", t, state))
        profile = [fmean(h) for h in hourly]
        coldest, warmest = profile.index(min(profile)), profile.index(max(profile))
        rise = sunrise_hour(datetime(start.year, start.month, start.day, 12, tzinfo=SEOUL))
        assert 2 <= coldest < rise, (start, coldest, rise)
        assert 13 <= warmest <= 16, (start, warmest)
        normal = cal.normal(start.month)
        assert abs(fmean(profile) - normal.temp_mean) < 4
        assert max(profile) - min(profile) > 0.5 * (normal.temp_max - normal.temp_min)


def test_light_uv_noise_and_people_follow_the_day(cal: Calibration) -> None:
    model = CityModel(cal, 2019)
    day = date(2025, 6, 18)  # a Wednesday
    lux = day_series(model, "illuminance", "11140", day)
    uv = day_series(model, "uv", "11140", day)
    noise = day_series(model, "noise", "11140", day)
    people = day_series(model, "floating_population", "11140", day)
    assert lux[0] == 0 and uv[0] == 0 and lux[12 * 60] > 10_000 and 3 <= max(uv) <= 10
    assert all(v == 0 for v in lux[: 3 * 60])  # the sun is far below the horizon until 3 a.m.
    assert 35 <= fmean(noise[1 * 60 : 4 * 60]) <= 52 and 55 <= fmean(noise[10 * 60 : 19 * 60]) <= 72
    assert all(float(p).is_integer() and p >= 0 for p in people)
    assert fmean(people[18 * 60 : 19 * 60]) > 5 * fmean(people[3 * 60 : 4 * 60])
    for t in (datetime(2025, 1, 1, 0, tzinfo=SEOUL), datetime(2025, 6, 21, 0, tzinfo=SEOUL)):
        assert sun_elevation(t) < -20
    assert 74 < sun_elevation(datetime(2025, 6, 21, 12, 32, tzinfo=SEOUL)) < 77  # 90 - 37.57 + 23.44
    state = model.new_state("x")
    t0 = datetime(2025, 6, 18, tzinfo=UTC)
    wind = [model.reading("wind_direction", "11140", t0 + timedelta(minutes=i), state) for i in range(600)]
    assert all(0 <= w < 360 for w in wind) and len(set(wind)) > 30
    vib = [model.reading("vibration", "11140", t0 + timedelta(minutes=i), state) for i in range(600)]
    assert all(0 <= v < 5 for v in vib)


def test_spikes_occur_at_the_expected_rate(cal: Calibration) -> None:
    model = CityModel(cal, 2019)
    states = [model.new_state(f"spike-{i}") for i in range(10)]
    t0 = datetime(2025, 4, 1, tzinfo=UTC)
    n, big = 10_000, 0
    for state in states:
        for i in range(n):
            v = model.reading("pm10", "11680", t0 + timedelta(minutes=i), state)
            big += v > 2.5 * cal.daily("pm10", "11680", (t0 + timedelta(minutes=i)).date())
    spikes = sum(s.spikes.get("pm10", 0) for s in states)
    # 0.2 % per reading, less the time a spike is still decaying (no new one starts then).
    expected = 0.002 * n * len(states) * 0.92
    assert 0.8 * expected <= spikes <= 1.2 * expected, (spikes, expected)
    assert big >= spikes  # each spike shows as at least one reading far above the day's level
    # The rate is per unit of time: a 10-minute cadence sees ten times the chance per reading.
    slow = model.new_state("slow")
    for i in range(20_000):
        model.reading("pm10", "11680", t0 + timedelta(minutes=10 * i), slow)
    assert 0.7 * 20_000 * 0.0198 * 0.95 <= slow.spikes["pm10"] <= 1.3 * 20_000 * 0.0198


# -- layout -----------------------------------------------------------------------------------
def test_sensors_are_placed_inside_their_district() -> None:
    shapes = [(d.code, d.name_ko, shapely.from_geojson(json.dumps(d.geometry))) for d in read_districts()]
    sites = place_sensors(shapes, 3, seed=2019)
    assert len(sites) == 75 and Counter(s.district for s in sites) == {code: 3 for code, _, _ in shapes}
    polygons = {code: geom for code, _, geom in shapes}
    for s in sites:
        assert polygons[s.district].contains(shapely.Point(s.lon, s.lat)), s
    assert sites == place_sensors(shapes, 3, seed=2019)
    assert sites != place_sensors(shapes, 3, seed=1)
    assert place_sensors(shapes, 1, seed=2019) == [s for s in sites if s.number == 1]  # #1 stays put
    gangnam = [s for s in sites if s.district == "11680"]
    assert [s.name for s in gangnam] == ["S-DoT 강남구 #1", "S-DoT 강남구 #2", "S-DoT 강남구 #3"]
    assert all(s.key == f"11680-{s.number}" for s in gangnam)


def test_thing_payload_is_a_deep_insert_linking_shared_entities() -> None:
    shapes = [(d.code, d.name_ko, shapely.from_geojson(json.dumps(d.geometry))) for d in read_districts()[:1]]
    site = place_sensors(shapes, 1, seed=2019)[0]
    body = thing_payload(site, 5, {m: 100 + i for i, m in enumerate(MEASURES)})
    assert body["properties"]["district"] == site.district and body["properties"]["simulated"] is True
    assert body["Locations"][0]["location"] == {"type": "Point", "coordinates": [site.lon, site.lat]}
    assert [SPECS[ds["properties"]["measure"]].name for ds in body["Datastreams"]] == OP_NAMES
    for ds in body["Datastreams"]:
        assert ds["Sensor"] == {"@iot.id": 5} and ds["properties"]["family"] == "sdot"
        assert set(ds["unitOfMeasurement"]) == {"name", "symbol", "definition"}
        internal = ds["properties"]["measure"] == "floating_population"
        assert ds["properties"]["disclosure"] == ("internal" if internal else "public")
        assert ds["observationType"].endswith("OM_CountObservation" if internal else "OM_Measurement")


# -- running against a real app (SQLite and PostgreSQL) ---------------------------------------
def _count(app: App, table: Table, *where: ColumnElement[bool]) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_simulator_provisions_once_and_streams_through_ingest(app: App) -> None:
    async def scenario() -> None:
        sim = Simulator(app, sensors_per_district=1, backfill_hours=0.5)
        assert await sim.provision() == 25
        assert _count(app, things) == 25 and _count(app, datastreams) == 25 * 11
        backfilled = await sim.backfill()
        assert backfilled >= 25 * 11 * 3 and sim.stats.rejected == 0
        before = _count(app, observations)
        stored = await sim.tick(app.now() + timedelta(seconds=90))
        assert stored >= 25 * 11 and _count(app, observations) == before + stored
        assert sim.stats.failures == 0 and sim.stats.duplicates == 0

        again = Simulator(app, sensors_per_district=1, backfill_hours=0.5)
        assert await again.provision() == 0  # restart: same Things, none created
        assert [s.thing_id for s in again.sensors] == [s.thing_id for s in sim.sensors]
        await again.backfill()  # resumes after what is stored: no second copy of the same hours
        assert again.stats.duplicates == 0

    asyncio.run(scenario())
    assert _count(app, things) == 25
    with app.engine.connect() as conn:
        per_time = conn.execute(
            select(observations.c.datastream_id, observations.c.phenomenon_time, func.count())
            .group_by(observations.c.datastream_id, observations.c.phenomenon_time)
            .having(func.count() > 1)
        ).all()
        assert per_time == []
        # The pipeline filed each observation under its sensor's district.
        row = conn.execute(
            select(observations.c.district_code, things.c.properties)
            .join(datastreams, datastreams.c.id == observations.c.datastream_id)
            .join(things, things.c.id == datastreams.c.thing_id)
            .limit(1)
        ).one()
        assert row.district_code == row.properties["district"]


def test_read_path_hides_people_counts_from_the_public(app: App) -> None:
    asyncio.run(_provision_and_tick(app))
    count = {"$count": "true", "$top": "1"}
    assert service.get(app, ANONYMOUS, "Datastreams", count, BASE)["@iot.count"] == 25 * 10
    assert service.get(app, system_principal(), "Datastreams", count, BASE)["@iot.count"] == 25 * 11
    listing = {"$top": "1000", "$select": "id"}
    assert len(service.get(app, ANONYMOUS, "Datastreams", listing, BASE)["value"]) == 25 * 10
    assert len(service.get(app, system_principal(), "Datastreams", listing, BASE)["value"]) == 25 * 11
    people = {"$filter": "ObservedProperty/name eq 'Floating population'", **count}
    assert service.get(app, ANONYMOUS, "Datastreams", people, BASE)["@iot.count"] == 0
    assert service.get(app, system_principal(), "Datastreams", people, BASE)["@iot.count"] == 25
    ops = service.get(app, ANONYMOUS, "ObservedProperties", {"$top": "50"}, BASE)["value"]
    assert sorted(op["name"] for op in ops) == sorted(OP_NAMES)  # shared, created once
    pm = {"$filter": "Datastream/ObservedProperty/name eq 'PM10'", "$top": "5", "$count": "true"}
    obs = service.get(app, ANONYMOUS, "Observations", pm, BASE)
    assert obs["@iot.count"] >= 25 and all(0 < o["result"] < 1000 for o in obs["value"])
    with app.engine.connect() as conn:
        hidden = conn.execute(
            select(func.count()).select_from(observations).where(observations.c.result_json.is_not(None))
        ).scalar_one()
    assert hidden == 0  # every result is numeric, counts included


async def _provision_and_tick(app: App) -> None:
    sim = Simulator(app, sensors_per_district=1, backfill_hours=0)
    await sim.provision()
    await sim.backfill()
    await sim.tick(app.now() + timedelta(seconds=61))


def test_service_start_stop_and_attach(app: App) -> None:
    sim = attach(app, sensors_per_district=1, rate_per_minute=60, backfill_hours=0.2)
    assert app.background[-1] is sim and sim.name == "simulator" and sim.state == "stopped"

    async def scenario() -> None:
        sim.tick_seconds = 0.2
        await sim.start()
        assert sim.state == "running"
        await sim.wait_ready(60)
        await asyncio.sleep(1.5)
        await sim.stop()

    asyncio.run(scenario())
    assert sim.state == "stopped" and sim.stats.ticks >= 2 and sim.stats.failures == 0
    assert sim.stats.backfilled >= 25 * 11 and sim.stats.stored >= sim.stats.backfilled + 25 * 11
    assert _count(app, things) == 25 and _count(app, observations) == sim.stats.stored


def test_a_failing_write_is_counted_not_raised(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulator(app, sensors_per_district=1, backfill_hours=0)
    assert sim.observations_per_second == 0

    async def scenario() -> None:
        await sim.provision()
        await sim.backfill()

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("database is down")

        monkeypatch.setattr(app.ingest, "ingest", broken)
        assert await sim.tick(app.now() + timedelta(seconds=61)) == 0
        monkeypatch.undo()
        assert await sim.tick(app.now() + timedelta(seconds=122)) >= 25 * 11  # and it carries on

    asyncio.run(scenario())
    assert sim.stats.failures == 1 and sim.stats.last_error == "database is down"
    assert sim.observations_per_second == pytest.approx(25 * 11 / 60)
