"""The city-status sections: TOML validation, widgets computed from known data, disclosure,
map layers, and the layouts per perspective.

The real facilities are seeded (``seed_city``); the feeds' values are then ingested by hand so
every figure can be checked against arithmetic done here.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from citydesk.bus import Event
from citydesk.city import seed_city
from citydesk.city.catalog import TAXES
from citydesk.errors import InvalidSetting
from citydesk.hub.connectors.file.connector import import_file
from citydesk.hub.models import datastreams, observed_properties, things
from citydesk.hub.records import ObservationIn
from citydesk.status.sections.config import SECTION_IDS, load_sections, parse_section, sections
from citydesk.status.stream import NOTICE_TOPIC
from citydesk.web.app import App
from tests.conftest import create_sensor

GANGNAM, JONGNO = "11680", "11110"


def streams_of(app: App, measure: str, facility: str) -> dict[tuple[str, str | None], int]:
    """(facility_key, series key) -> Datastream id of an ObservedProperty on one facility kind."""
    stmt = (
        select(datastreams.c.id, datastreams.c.properties, things.c.properties)
        .join(things, things.c.id == datastreams.c.thing_id)
        .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
        .where(observed_properties.c.name == measure)
    )
    with app.engine.connect() as conn:
        return {
            (t["facility_key"], d.get("key")): ident
            for ident, d, t in conn.execute(stmt)
            if t.get("facility") == facility
        }


def thing_of(app: App, facility_key: str) -> int:
    with app.engine.connect() as conn:
        for ident, props in conn.execute(select(things.c.id, things.c.properties)):
            if props and props.get("facility_key") == facility_key:
                return int(ident)
    raise LookupError(facility_key)


def widget(body: dict[str, Any], widget_id: str) -> dict[str, Any]:
    found = [w for w in body["widgets"] if w["id"] == widget_id]
    assert found, f"no widget {widget_id} in {[w['id'] for w in body['widgets']]}"
    return found[0]


@pytest.fixture
def city(app: App, tmp_path: Path) -> App:
    seed_city(app.engine, imports=tmp_path, settings=app.settings)
    return app


def fresh(app: App) -> None:
    """Announce a change made behind the SensorThings API's back, as its writes do (answers and
    the rollup-based widgets are cached: the announcement empties both caches)."""
    app.bus.publish("sta.updated", {"set": "Things", "id": 0})


# -- configuration -----------------------------------------------------------------------------
def test_packaged_sections_are_the_contracts_eight() -> None:
    found = sections()
    assert set(found) == set(SECTION_IDS)
    assert [s.order for s in found.values()] == sorted(s.order for s in found.values())
    for s in found.values():
        assert s.title.ko and s.title.en and all(w.label.ko and w.label.en for w in s.widgets)


BAD_AGGREGATE = """
id = "transport"
order = 3
title = { ko = "교통", en = "Transportation" }

[[widgets]]
id = "ok"
kind = "figure"
label = { ko = "가", en = "A" }
select = { observed_property = "Bikes available" }

[[widgets]]
id = "bad"
kind = "figure"
label = { ko = "나", en = "B" }
select = { observed_property = "Bikes available", aggregate = "median" }
"""


def test_a_bad_selector_is_reported_with_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting) as err:
        parse_section(BAD_AGGREGATE, "transport.toml")
    assert err.value.message.startswith("transport.toml: widgets[1].select.aggregate:")
    (tmp_path / "transport.toml").write_text(
        BAD_AGGREGATE.replace("median", "sum").replace('"ok"', '"x"'), "utf-8"
    )
    assert list(load_sections(str(tmp_path))) == ["transport"]
    cases = {
        'select = { aggregate = "sum" }': "widgets[0].select",  # neither property nor facility
        'select = { observed_property = "X", thing_property = "y", facility = "f" }': "widgets[0].select",
        'select = { observed_property = "X", colour = "red" }': "widgets[0].select.colour",
    }
    for line, field in cases.items():
        text = BAD_AGGREGATE.replace('select = { observed_property = "Bikes available" }', line)
        with pytest.raises(InvalidSetting) as bad:
            parse_section(text, "transport.toml")
        assert bad.value.message.startswith(f"transport.toml: {field}:"), bad.value.message
    with pytest.raises(InvalidSetting, match=r"^prices\.toml: id: the section 'transport' belongs in"):
        parse_section(BAD_AGGREGATE.replace("median", "sum"), "prices.toml")
    with pytest.raises(InvalidSetting, match=r"^transport\.toml: not valid TOML"):
        parse_section("id = ", "transport.toml")


# -- figures from known data -------------------------------------------------------------------
def test_prices_table_gives_highest_and_lowest_per_good(city: App, client: TestClient) -> None:
    prices = streams_of(city, "Retail price", "market")
    now = datetime.now(UTC) - timedelta(minutes=1)
    known = {
        ("market:gwangjang", "rice"): 61000.0,
        ("market:mangwon", "rice"): 54500.0,
        ("market:tongin", "rice"): 58000.0,
        ("market:mangwon", "eggs"): 7100.0,
        ("market:gyeongdong", "eggs"): 6900.0,
    }
    city.ingest.ingest(
        [ObservationIn(prices[k], v, phenomenon_time=now) for k, v in known.items()], channel="t"
    )
    body = client.get("/api/status/sections/prices").json()
    table = widget(body, "staples")
    rows = {r["item"]["en"]: r for r in table["rows"]}
    assert set(rows) == {"Rice (20 kg)", "Eggs (30)"}
    rice, eggs = rows["Rice (20 kg)"], rows["Eggs (30)"]
    assert (rice["max"], rice["max_at"]["ko"], rice["min"], rice["min_at"]["ko"]) == (
        61000,
        "광장시장",
        54500,
        "망원시장",
    )
    assert (eggs["max"], eggs["max_at"]["en"], eggs["min"], eggs["min_at"]["en"]) == (
        7100,
        "Mangwon Market",
        6900,
        "Gyeongdong Market",
    )
    assert rice["count"] == 3 and table["unit"] == "KRW"
    assert [c["id"] for c in table["columns"]][:5] == ["item", "max", "max_at", "min", "min_at"]
    assert body["updated"] is not None


def test_bikes_available_sum_per_city_and_district(city: App, client: TestClient) -> None:
    bikes = streams_of(city, "Bikes available", "bike_station")
    with city.engine.connect() as conn:
        district = {
            ident: code for ident, code in conn.execute(select(datastreams.c.id, datastreams.c.district_code))
        }
    chosen = sorted(bikes.values())[:40:7]  # six stations
    now = datetime.now(UTC) - timedelta(minutes=1)
    city.ingest.ingest(
        [ObservationIn(ds, i + 3, phenomenon_time=now) for i, ds in enumerate(chosen)], channel="t"
    )
    body = client.get("/api/status/sections/transport").json()
    figure = widget(body, "bikes_available")
    assert figure["value"] == sum(i + 3 for i in range(len(chosen)))
    assert figure["detail"] == {"min": 3, "max": 3 + len(chosen) - 1, "count": len(chosen)}
    assert figure["unit"] == "{bikes}"
    bars = widget(body, "bikes_by_district")
    assert len(bars["categories"]) == 25 == len(bars["values"])
    expected: dict[str, float] = {}
    for i, ds in enumerate(chosen):
        expected[district[ds]] = expected.get(district[ds], 0) + i + 3
    codes = [code for code, _, _ in city.geo.districts()]
    assert dict(zip(codes, bars["values"], strict=True)) == {c: expected.get(c) for c in codes}
    assert widget(body, "stations_count")["value"] == 2749


def test_air_figures_are_district_means_with_trend_and_series(app: App, client: TestClient) -> None:
    ids = {
        "g1": create_sensor(app, "g1"),
        "g2": create_sensor(app, "g2", lon_lat=(127.03, 37.51)),
        "j1": create_sensor(app, "j1", lon_lat=(126.9816, 37.5735)),
    }
    now = datetime.now(UTC)
    day_ago = now - timedelta(hours=24)
    app.ingest.ingest(
        [
            ObservationIn(ids[k], v, phenomenon_time=day_ago)
            for k, v in {"g1": 10.0, "g2": 20.0, "j1": 60.0}.items()
        ]
        + [
            ObservationIn(ids[k], v, phenomenon_time=now - timedelta(minutes=1))
            for k, v in {"g1": 20.0, "g2": 40.0, "j1": 90.0}.items()
        ]
        + [ObservationIn(ids["g1"], 50.0, phenomenon_time=now - timedelta(hours=2))],
        channel="t",
    )
    body = client.get("/api/status/sections/air").json()
    pm10 = widget(body, "pm10")
    assert pm10["value"] == pytest.approx(fmean([20, 40, 90]))
    assert pm10["trend"] == pytest.approx(fmean([20, 40, 90]) - fmean([10, 20, 60]))
    choropleth = {d["code"]: d["value"] for d in widget(body, "pm10_districts")["districts"]}
    assert len(choropleth) == 25
    assert choropleth[GANGNAM] == pytest.approx(30.0) and choropleth[JONGNO] == pytest.approx(90.0)
    assert sum(v is not None for v in choropleth.values()) == 2
    series = {s["key"]: s["points"] for s in widget(body, "pm10_24h")["series"]}
    # Hourly buckets of the last 24 h, the current one included (the hour 24 h ago is not).
    assert [p[1] for p in series[GANGNAM]] == pytest.approx([50.0, 30.0])
    assert [p[1] for p in series[JONGNO]] == pytest.approx([90.0])
    assert {w["id"] for w in body["widgets"]} == {"pm10", "pm10_districts", "pm10_24h"}  # no other data


def test_park_series_sums_the_parks_per_hour(city: App, client: TestClient) -> None:
    parks = streams_of(city, "Park visitors", "park")
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    a, b = parks["park:seoulforest", None], parks["park:olympic", None]
    city.ingest.ingest(
        [
            ObservationIn(a, 100, phenomenon_time=now - timedelta(hours=2)),
            ObservationIn(a, 300, phenomenon_time=now - timedelta(hours=2, minutes=10)),
            ObservationIn(b, 1000, phenomenon_time=now - timedelta(hours=2)),
            ObservationIn(a, 500, phenomenon_time=now),
        ],
        channel="t",
    )
    body = client.get("/api/status/sections/parks").json()
    (line,) = widget(body, "visitors_24h")["series"]
    assert [p[1] for p in line["points"]] == [200 + 1000, 500]  # mean per park, summed over parks
    assert widget(body, "visitors")["value"] == 500 + 1000


def test_ground_vibration_is_the_highest_s_dot_reading(
    app: App, client: TestClient, staff: tuple[str, str]
) -> None:
    ids = {
        "g1": create_sensor(app, "g1", observed_property="Vibration"),
        "g2": create_sensor(app, "g2", observed_property="Vibration", lon_lat=(127.03, 37.51)),
        "j1": create_sensor(app, "j1", observed_property="Vibration", lon_lat=(126.9816, 37.5735)),
        "hidden": create_sensor(app, "hidden", observed_property="Vibration", disclosure="internal"),
    }
    now = datetime.now(UTC)
    app.ingest.ingest(
        [
            ObservationIn(ids[k], v, phenomenon_time=now - timedelta(hours=24))
            for k, v in {"g1": 0.1, "g2": 0.2, "j1": 0.04}.items()
        ]
        + [
            ObservationIn(ids[k], v, phenomenon_time=now - timedelta(minutes=1))
            for k, v in {"g1": 0.12, "g2": 0.3, "j1": 0.05, "hidden": 9.9}.items()
        ]
        + [ObservationIn(ids["g1"], 0.5, phenomenon_time=now - timedelta(hours=2))],
        channel="t",
    )
    body = client.get("/api/status/sections/safety").json()
    figure = widget(body, "vibration")
    assert figure["value"] == pytest.approx(0.3) and figure["decimals"] == 3
    assert figure["trend"] == pytest.approx(0.3 - 0.2)
    choropleth = {d["code"]: d["value"] for d in widget(body, "vibration_districts")["districts"]}
    assert choropleth[GANGNAM] == pytest.approx(0.3) and choropleth[JONGNO] == pytest.approx(0.05)
    assert sum(v is not None for v in choropleth.values()) == 2
    (line,) = widget(body, "vibration_24h")["series"]
    assert [p[1] for p in line["points"]] == pytest.approx([0.5, 0.3])  # the highest sensor, per hour
    inside = client.get("/api/status/sections/safety", auth=staff).json()
    assert widget(inside, "vibration")["value"] == pytest.approx(9.9)  # the internal sensor counts inside


def test_car_parks_free_spaces_and_occupancy_keep_the_staff_lot_inside(
    city: App, client: TestClient, staff: tuple[str, str]
) -> None:
    free = streams_of(city, "Parking spaces free", "parking_lot")
    taken = streams_of(city, "Parking occupancy", "parking_lot")
    readings = {  # lot -> (free spaces, occupancy %)
        f"parking:{GANGNAM}-1": (40, 80.0),
        f"parking:{GANGNAM}-2": (10, 95.0),
        f"parking:{JONGNO}-1": (25, 50.0),
        "parking:cityhall-staff": (7, 90.0),  # internal, in Jung-gu
    }
    now = datetime.now(UTC) - timedelta(minutes=1)
    city.ingest.ingest(
        [ObservationIn(free[lot, None], f, phenomenon_time=now) for lot, (f, _) in readings.items()]
        + [ObservationIn(taken[lot, None], o, phenomenon_time=now) for lot, (_, o) in readings.items()],
        channel="t",
    )
    codes = [code for code, _, _ in city.geo.districts()]
    jung = "11140"

    public = client.get("/api/status/sections/transport").json()
    figure = widget(public, "parking_free")
    assert figure["value"] == 40 + 10 + 25 and figure["detail"]["count"] == 3
    assert figure["unit"] == "{spaces}"
    bars = dict(zip(codes, widget(public, "parking_by_district")["values"], strict=True))
    assert bars[GANGNAM] == pytest.approx(87.5) and bars[JONGNO] == pytest.approx(50.0)
    assert bars[jung] is None and sum(v is not None for v in bars.values()) == 2
    assert widget(public, "parking_24h")["series"][0]["points"][-1][1] == 40 + 10 + 25
    layer = client.get("/api/status/sections/transport/layers/parking_map").json()
    features = {f["properties"]["name"]["en"]: f["properties"] for f in layer["features"]}
    assert len(features) == 75 and "Seoul City Hall staff car park" not in features
    assert features["Gangnam-gu public car park 1"]["value"] == 80.0
    assert features["Gangnam-gu public car park 1"]["facility_label"]["en"] == "Public car park"
    assert features["Gangnam-gu public car park 3"]["value"] is None  # no reading yet

    inside = client.get("/api/status/sections/transport", auth=staff).json()
    assert widget(inside, "parking_free")["value"] == 40 + 10 + 25 + 7
    staff_bars = dict(zip(codes, widget(inside, "parking_by_district")["values"], strict=True))
    assert staff_bars[jung] == pytest.approx(90.0)
    staff_layer = client.get("/api/status/sections/transport/layers/parking_map", auth=staff).json()
    assert len(staff_layer["features"]) == 76


def test_rainfall_figures_are_the_gauges_latest_readings(city: App, client: TestClient) -> None:
    gauges = streams_of(city, "Rainfall intensity", "rain_gauge")
    assert len(gauges) == 25
    now = datetime.now(UTC) - timedelta(minutes=1)
    city.ingest.ingest(
        [
            ObservationIn(gauges[f"rain:{GANGNAM}", None], 12.5, phenomenon_time=now),
            ObservationIn(gauges[f"rain:{JONGNO}", None], 3.0, phenomenon_time=now),
        ],
        channel="t",
    )
    body = client.get("/api/status/sections/safety").json()
    figure = widget(body, "rain_max")
    assert figure["value"] == 12.5 and figure["unit"] == "mm/h" and figure["detail"]["count"] == 2
    choropleth = {d["code"]: d["value"] for d in widget(body, "rain_districts")["districts"]}
    assert choropleth[GANGNAM] == 12.5 and choropleth[JONGNO] == 3.0
    assert sum(v is not None for v in choropleth.values()) == 2
    assert widget(body, "fire_stations")["value"] == 119  # the real facilities are there too


# -- disclosure ---------------------------------------------------------------------------------
def test_internal_facilities_and_streams_never_reach_the_public(
    city: App, client: TestClient, staff: tuple[str, str]
) -> None:
    bikes = streams_of(city, "Bikes available", "bike_station")
    first, second, third = (bikes[f"bike:{n}", None] for n in ("301", "302", "303"))
    now = datetime.now(UTC) - timedelta(minutes=1)
    city.ingest.ingest(
        [ObservationIn(ds, v, phenomenon_time=now) for ds, v in ((first, 5), (second, 7), (third, 11))],
        channel="t",
    )
    before = client.get("/api/status/sections/transport").json()
    assert widget(before, "bikes_24h")["series"][0]["points"][-1][1] == 5 + 7 + 11
    hidden_station = thing_of(city, "bike:301")
    with city.engine.begin() as conn:
        conn.execute(update(things).where(things.c.id == hidden_station).values(disclosure="internal"))
        conn.execute(update(datastreams).where(datastreams.c.id == third).values(disclosure="internal"))
    fresh(city)

    public = client.get("/api/status/sections/transport").json()
    assert widget(public, "bikes_available")["value"] == 7
    assert widget(public, "bikes_24h")["series"][0]["points"][-1][1] == 7  # the cached series too
    assert widget(public, "stations_count")["value"] == 2748
    layer = client.get("/api/status/sections/transport/layers/stations")
    assert layer.headers["content-type"].startswith("application/geo+json")
    features = {f["properties"]["name"]["en"]: f for f in layer.json()["features"]}
    assert "Ddareungi station 301" not in features and len(features) == 2748
    assert features["Ddareungi station 302"]["properties"]["value"] == 7
    assert features["Ddareungi station 303"]["properties"]["value"] is None  # its stream is internal

    inside = client.get("/api/status/sections/transport", auth=staff).json()
    assert widget(inside, "bikes_available")["value"] == 5 + 7 + 11
    staff_layer = client.get("/api/status/sections/transport/layers/stations", auth=staff).json()
    assert len(staff_layer["features"]) == 2749

    # A section whose only data is internal has nothing for the public: no widgets, not listed.
    plants = [
        thing_of(city, f"water:{k}") for k in ("gwangam", "guui", "ttukdo", "yeongdeungpo", "amsa", "gangbuk")
    ]
    with city.engine.begin() as conn:
        conn.execute(update(things).where(things.c.id.in_(plants)).values(disclosure="internal"))
    fresh(city)
    assert client.get("/api/status/sections/water").json()["widgets"] == []
    listed = {s["id"]: s for s in client.get("/api/status/sections").json()["sections"]}
    assert "water" not in listed and "transport" in listed and "air" not in listed  # no S-DoT here
    assert listed["transport"]["title"] == {"ko": "교통", "en": "Transportation"}
    assert client.get("/api/status/sections/water/layers/plants").json()["features"] == []
    staff_water = client.get("/api/status/sections/water", auth=staff).json()
    assert widget(staff_water, "plants")["count"] == 6
    assert "water" in {s["id"] for s in client.get("/api/status/sections", auth=staff).json()["sections"]}


def test_unknown_sections_and_layers_are_404(city: App, client: TestClient) -> None:
    assert client.get("/api/status/sections/opinion").status_code == 404
    assert client.get("/api/status/sections/transport/layers/bikes_available").status_code == 404
    assert client.get("/api/status/sections/transport/layers/nothing").status_code == 404


# -- layouts ------------------------------------------------------------------------------------
def test_layouts_default_override_and_validation(
    app: App, client: TestClient, staff: tuple[str, str]
) -> None:
    for p in ("mayor", "official", "citizen"):
        got = client.get(f"/api/status/layouts/{p}").json()
        assert got["perspective"] == p and "kiosk" not in got and got["saved"] is None
        assert {s["id"] for s in got["sections"]} <= set(SECTION_IDS) and got["sections"]
    kiosk = client.get("/api/status/layouts/kiosk").json()
    assert kiosk["kiosk"] == {"interval_s": 20, "idle_resume_s": 60}
    assert client.get("/api/status/layouts/tourist").status_code == 404

    notices: list[Event] = []
    app.bus.on(NOTICE_TOPIC, notices.append)
    body = {"sections": [{"id": "transport", "size": "l", "widgets": ["bikes_available"]}, {"id": "air"}]}
    assert client.put("/api/status/layouts/citizen", json=body).status_code == 401
    assert notices == []
    bad = client.put(
        "/api/status/layouts/citizen",
        json={"sections": [{"id": "opinion"}, {"id": "air"}, {"id": "civic"}]},
        auth=staff,
    )
    assert bad.status_code == 400 and "opinion, civic" in bad.json()["error"]["message"]
    assert bad.json()["error"]["details"] == {"unknown_sections": ["opinion", "civic"]}
    bad_widget = client.put(
        "/api/status/layouts/citizen", json={"sections": [{"id": "air", "widgets": ["pm1"]}]}, auth=staff
    )
    assert bad_widget.status_code == 400 and "air: pm1" in bad_widget.json()["error"]["message"]
    timing = {"sections": [{"id": "air"}], "kiosk": {"interval_s": 30, "idle_resume_s": 90}}
    assert client.put("/api/status/layouts/mayor", json=timing, auth=staff).status_code == 400
    assert client.put(
        "/api/status/layouts/kiosk", json={"sections": [], "size": "xl"}, auth=staff
    ).status_code in (400, 422)

    saved = client.put("/api/status/layouts/citizen", json=body, auth=staff)
    assert saved.status_code == 200
    got = client.get("/api/status/layouts/citizen").json()
    assert got["sections"] == [
        {"id": "transport", "widgets": ["bikes_available"], "size": "l"},
        {"id": "air", "widgets": None, "size": "m"},
    ]
    assert got["saved"]["by"] is not None
    assert [e.data for e in notices] == [
        {"kind": "layout", "disclosure": "public", "data": {"perspective": "citizen"}}
    ]
    kiosk_saved = client.put("/api/status/layouts/kiosk", json=timing, auth=staff).json()
    assert kiosk_saved["kiosk"] == {"interval_s": 30, "idle_resume_s": 90}

    # A saved layout naming a section this installation lacks (a later issue's) skips it on read.
    from citydesk.status.models import layouts

    with app.engine.begin() as conn:
        conn.execute(
            update(layouts)
            .where(layouts.c.perspective == "citizen")
            .values(layout={"sections": [{"id": "opinion"}, {"id": "prices", "size": "s"}]})
        )
    assert [s["id"] for s in client.get("/api/status/layouts/citizen").json()["sections"]] == ["prices"]


def test_finances_from_the_demo_file_by_month_and_by_tax(
    city: App, client: TestClient, tmp_path: Path
) -> None:
    import_file(city, tmp_path / "finances.csv", source_name="City finances (demo file)")
    with (tmp_path / "finances.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    monthly: dict[str, float] = {}
    for r in rows:
        if r["item"] != "budget_execution_rate":
            monthly[r["month"]] = monthly.get(r["month"], 0) + float(r["value"])
    last = max(monthly)
    body = client.get("/api/status/sections/finances").json()
    by_month = widget(body, "tax_by_month")
    assert by_month["interval"] == "day" and by_month["unit"] == "억원"
    # The window is the widget's 9,600 hours up to now: the oldest months fall out as time passes.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1 - 9600)
    seoul = ZoneInfo("Asia/Seoul")
    shown = sorted(m for m in monthly if datetime.fromisoformat(m).replace(tzinfo=seoul) >= start)
    assert shown and by_month["categories"] == shown  # the city's calendar days, not UTC instants
    assert by_month["values"] == [monthly[m] for m in shown]
    assert widget(body, "tax_latest_month")["value"] == monthly[last]
    by_tax = widget(body, "tax_by_kind")
    latest_tax = {
        r["item"]: float(r["value"])
        for r in rows
        if r["month"] == last and r["item"] != "budget_execution_rate"
    }
    assert dict(zip((c["en"] for c in by_tax["categories"]), by_tax["values"], strict=True)) == {
        TAXES[k][1]: v for k, v in latest_tax.items()
    }
    rate = next(r for r in rows if r["month"] == last and r["item"] == "budget_execution_rate")
    assert widget(body, "budget_execution")["value"] == float(rate["value"])
