"""The live city status API: figures computed from known observations, and disclosure.

One small city: two public PM10 sensors in Gangnam-gu, one in Jongno-gu, an internal PM10 sensor
in Jongno-gu, a public Temperature sensor and an internal-only Noise sensor. Anonymous callers
must never see the internal ones, in any route.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from citydesk.hub.models import datastreams
from citydesk.hub.records import ObservationIn
from citydesk.status.fastpath import CachedStatusAnswers
from citydesk.status.live import AnswerCache
from citydesk.status.measures import level, levels
from citydesk.web.app import App
from tests.conftest import create_sensor

GANGNAM, JONGNO = "11680", "11110"
JONGNO_POINT = (126.9816, 37.5735)


def hour_of(t: datetime) -> str:
    return t.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def city(app: App) -> dict[str, Any]:
    """The sensors above with an older hour of PM10 and a latest value each; returns ids and times."""
    ids = {
        "g1": create_sensor(app, "g1"),
        "g2": create_sensor(app, "g2", lon_lat=(127.03, 37.51)),
        "j1": create_sensor(app, "j1", lon_lat=JONGNO_POINT),
        "secret": create_sensor(app, "secret", disclosure="internal", lon_lat=JONGNO_POINT),
        "temp": create_sensor(app, "temp", observed_property="Temperature"),
        "noise": create_sensor(app, "noise", disclosure="internal", observed_property="Noise"),
    }
    now = datetime.now(UTC)
    old = now.replace(minute=10, second=0, microsecond=0) - timedelta(hours=2)
    new = now - timedelta(minutes=1)
    earlier = {"g1": 10.0, "g2": 30.0, "j1": 90.0, "secret": 7000.5}
    latest = {"g1": 20.0, "g2": 40.0, "j1": 100.0, "secret": 5000.5, "temp": 21.5, "noise": 55.0}
    app.ingest.ingest(
        [ObservationIn(ids[k], v, phenomenon_time=old) for k, v in earlier.items()]
        + [ObservationIn(ids[k], v, phenomenon_time=new) for k, v in latest.items()],
        channel="test",
    )
    return {"ids": ids, "old": old, "new": new}


def test_bands_follow_the_ministry_of_environment_grades() -> None:
    cases = [
        ("PM10", 0, "good"),
        ("PM10", 30, "good"),
        ("PM10", 30.4, "moderate"),
        ("PM10", 80, "moderate"),
        ("PM10", 81, "bad"),
        ("PM10", 150, "bad"),
        ("PM10", 151, "very_bad"),
        ("PM2.5", 15, "good"),
        ("PM2.5", 16, "moderate"),
        ("PM2.5", 35, "moderate"),
        ("PM2.5", 75, "bad"),
        ("PM2.5", 76, "very_bad"),
        ("Noise", 99, None),
        ("PM10", None, None),
    ]
    for measure, value, expected in cases:
        assert level(measure, value) == expected, (measure, value)
    assert levels("Temperature") is None
    bands = levels("PM2.5")
    assert bands is not None
    assert [(b["level"], b["from"], b["to"]) for b in bands] == [
        ("good", 0, 15),
        ("moderate", 16, 35),
        ("bad", 36, 75),
        ("very_bad", 76, None),
    ]


def test_measures_list_only_what_the_caller_may_see(
    city: dict[str, Any], client: TestClient, staff: tuple[str, str]
) -> None:
    anonymous = {m["name"]: m for m in client.get("/api/status/measures").json()["measures"]}
    assert set(anonymous) == {"PM10", "Temperature"}
    assert anonymous["PM10"] == {
        "name": "PM10",
        "unit": "u",
        "datastreams": 3,
        "label": {"ko": "미세먼지", "en": "Fine dust (PM10)"},
    }
    assert anonymous["Temperature"]["label"] == {"ko": "기온", "en": "Temperature"}
    official = {m["name"]: m for m in client.get("/api/status/measures", auth=staff).json()["measures"]}
    assert set(official) == {"PM10", "Temperature", "Noise"}
    assert official["PM10"]["datastreams"] == 4


def test_air_figures_per_district_and_city(city: dict[str, Any], client: TestClient) -> None:
    body = client.get("/api/status/air", params={"measure": "PM10"}).json()
    assert body["measure"] == "PM10"
    assert body["unit"] == "u"
    assert body["label"]["ko"] == "미세먼지"
    assert abs(datetime.fromisoformat(body["updated"]) - city["new"]) < timedelta(milliseconds=1)
    assert body["city"] == {"value": pytest.approx(fmean([20, 40, 100])), "min": 20, "max": 100, "sensors": 3}
    districts = body["districts"]
    assert [d["code"] for d in districts] == sorted(d["code"] for d in districts)
    assert len(districts) == 25
    by_code = {d["code"]: d for d in districts}
    assert by_code[GANGNAM] == {
        "code": GANGNAM,
        "name": {"ko": "강남구", "en": "Gangnam-gu"},
        "value": 30.0,
        "sensors": 2,
        "level": "good",
    }
    assert by_code[JONGNO]["value"] == 100.0  # the internal 5000.5 is not in the public mean
    assert by_code[JONGNO]["level"] == "bad"
    assert by_code["11440"] == {
        "code": "11440",
        "name": {"ko": "마포구", "en": "Mapo-gu"},
        "value": None,
        "sensors": 0,
        "level": None,
    }
    assert [b["level"] for b in body["levels"]] == ["good", "moderate", "bad", "very_bad"]
    # The last 24 h from the hourly rollups: every observation, not only the latest ones.
    series = body["series"]
    assert set(series) == {GANGNAM, JONGNO}
    gangnam = dict((t, v) for t, v in series[GANGNAM])
    assert gangnam[hour_of(city["old"])] == 20.0
    assert gangnam[hour_of(city["new"])] == 30.0
    assert dict((t, v) for t, v in series[JONGNO]) == {
        hour_of(city["old"]): 90.0,
        hour_of(city["new"]): 100.0,
    }


def test_staff_figures_include_internal_sensors(
    city: dict[str, Any], client: TestClient, staff: tuple[str, str]
) -> None:
    body = client.get("/api/status/air", params={"measure": "PM10"}, auth=staff).json()
    jongno = next(d for d in body["districts"] if d["code"] == JONGNO)
    assert (jongno["value"], jongno["sensors"], jongno["level"]) == (2550.25, 2, "very_bad")
    assert body["city"]["max"] == 5000.5
    assert dict((t, v) for t, v in body["series"][JONGNO])[hour_of(city["old"])] == 3545.25


def test_a_measure_without_bands(city: dict[str, Any], client: TestClient) -> None:
    body = client.get("/api/status/air", params={"measure": "Temperature"}).json()
    assert body["levels"] is None
    assert body["city"]["value"] == 21.5
    assert {d["level"] for d in body["districts"]} == {None}


@pytest.mark.parametrize("route", ["air", "sensors", "stream"])
def test_unknown_and_internal_only_measures_are_not_found(
    city: dict[str, Any], client: TestClient, staff: tuple[str, str], route: str
) -> None:
    for measure in ("NO2", "Noise"):  # Noise exists, but is internal
        r = client.get(f"/api/status/{route}", params={"measure": measure})
        assert r.status_code == 404, (route, measure)
        assert r.json()["error"]["code"] == "not_found"
    if route != "stream":  # a stream does not end: its staff side is tested end to end
        assert client.get(f"/api/status/{route}", params={"measure": "Noise"}, auth=staff).status_code == 200
        r = client.get(f"/api/status/{route}")
        assert r.status_code == 400, "the measure is required"
        assert r.json()["error"]["code"] == "validation_failed"


def test_sensors_as_geojson(city: dict[str, Any], client: TestClient, staff: tuple[str, str]) -> None:
    r = client.get("/api/status/sensors", params={"measure": "PM10"})
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["type"] == "FeatureCollection"
    features = {f["properties"]["datastream"]: f for f in body["features"]}
    ids = city["ids"]
    assert set(features) == {ids["g1"], ids["g2"], ids["j1"]}
    j1 = features[ids["j1"]]
    assert j1["geometry"] == {"type": "Point", "coordinates": list(JONGNO_POINT)}
    assert j1["properties"]["district"] == JONGNO
    assert j1["properties"]["value"] == 100.0
    assert j1["properties"]["phenomenonTime"] is not None
    assert isinstance(j1["properties"]["thing"], int)
    staff_body = client.get("/api/status/sensors", params={"measure": "PM10"}, auth=staff).json()
    assert {f["properties"]["datastream"] for f in staff_body["features"]} == set(features) | {ids["secret"]}


def test_nothing_internal_reaches_anonymous_json_routes(city: dict[str, Any], client: TestClient) -> None:
    secret, noise = city["ids"]["secret"], city["ids"]["noise"]
    for path in ("/api/status/measures", "/api/status/air?measure=PM10", "/api/status/sensors?measure=PM10"):
        text = client.get(path).text
        for token in ("5000.5", "7000.5", "2550.25", "3545.25", "Noise"):
            assert token not in text, (path, token)
    sensors = client.get("/api/status/sensors?measure=PM10").json()["features"]
    assert {f["properties"]["datastream"] for f in sensors}.isdisjoint({secret, noise})


def test_documented_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("measures", "air", "sensors", "stream"):
        assert f"/api/status/{route}" in paths
    assert "text/event-stream" in paths["/api/status/stream"]["get"]["responses"]["200"]["content"]


def test_cached_answers_are_per_level_and_dropped_on_a_change(
    city: dict[str, Any], app: App, client: TestClient, staff: tuple[str, str]
) -> None:
    official = client.get("/api/status/air", params={"measure": "PM10"}, auth=staff).json()
    assert official["city"]["max"] == 5000.5
    assert client.get("/api/status/air", params={"measure": "PM10"}).json()["city"]["max"] == 100.0
    # Made internal, and announced as the SensorThings layer does after its commit: gone at once.
    with app.engine.begin() as conn:
        conn.execute(
            update(datastreams).where(datastreams.c.id == city["ids"]["j1"]).values(disclosure="internal")
        )
    app.bus.publish("sta.updated", {"set": "Datastreams", "id": city["ids"]["j1"]})
    assert client.get("/api/status/air", params={"measure": "PM10"}).json()["city"]["max"] == 40.0


def test_answer_cache_recomputes_once_per_period() -> None:
    now = [0.0]
    cache = AnswerCache(ttl=1.0, clock=lambda: now[0])
    calls: list[int] = []

    def compute() -> bytes:
        if calls:  # while one request recomputes, the others still get the previous answer
            assert cache.peek("k") == b"%d" % len(calls)
        calls.append(1)
        return b"%d" % len(calls)

    assert cache.get("k", compute) == b"1"
    now[0] = 0.5
    assert cache.peek("k") == b"1" and cache.get("k", compute) == b"1"
    now[0] = 1.5
    assert cache.peek("k") is None
    assert cache.get("k", compute) == b"2"
    cache.clear()
    assert cache.peek("k") is None
    assert len(calls) == 2


def test_anonymous_cache_hits_skip_the_router_with_the_routes_bytes(
    city: dict[str, Any], app: App, client: TestClient, staff: tuple[str, str]
) -> None:
    routed = client.get("/api/status/air", params={"measure": "PM10"})  # computed and cached
    entered: list[str] = []

    async def router(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])

    def call(path: str, query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": query,
            "headers": headers or [],
        }
        asyncio.run(CachedStatusAnswers(router, citydesk=app)(scope, None, send))  # type: ignore[arg-type]
        return {"start": sent[0], "body": sent[1]["body"]} if sent else {}

    hit = call("/api/status/air", b"measure=PM10")
    assert hit["body"] == routed.content and entered == []
    assert dict(hit["start"]["headers"])[b"content-type"] == b"application/json"
    assert int(dict(hit["start"]["headers"])[b"content-length"]) == len(routed.content)
    # Everything else goes to the route: a miss, credentials, a session cookie, an odd query.
    assert call("/api/status/air", b"measure=PM2.5") == {}
    assert call("/api/status/air", b"measure=PM10", [(b"authorization", b"Basic eDp5")]) == {}
    assert call("/api/status/air", b"measure=PM10", [(b"cookie", b"citydesk_session=abc")]) == {}
    assert call("/api/status/air", b"measure=PM10&measure=PM10") == {}
    assert entered == ["/api/status/air"] * 4
    # Staff answers are cached under their own levels and never served to anonymous viewers.
    staff_answer = client.get("/api/status/air", params={"measure": "PM10"}, auth=staff).json()
    assert staff_answer["city"]["max"] == 5000.5
    assert client.get("/api/status/air", params={"measure": "PM10"}).json()["city"]["max"] == 100.0
