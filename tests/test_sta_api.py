"""SensorThings API 1.1 over HTTP: CRUD of the eight sets, deep insert, navigation, query options,
paging, dataArray, CreateObservations, rollups, cascades and error bodies, on SQLite and PostgreSQL.

Everything goes through the FastAPI test client against a real migrated database; nothing is
mocked. ``TestClient`` re-raises server exceptions, so any 500 fails the test that caused it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from citydesk.web.app import App

B = "/sta/v1.1"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
CITY_HALL = [126.9780, 37.5665]
GANGNAM = [127.0473, 37.5172]
TOKYO = [139.6917, 35.6895]
T0 = datetime(2025, 3, 1, tzinfo=UTC)
UNIT = {
    "name": "microgram per cubic metre",
    "symbol": "µg/m³",
    "definition": "http://unitsofmeasure.org/ucum#ug/m3",
}


# ----------------------------------------------------------------------------------------- helpers


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created(r: Response) -> int:
    """The id from the ``Location`` header of a 201 (every create must send one)."""
    assert r.status_code == 201, r.text
    m = re.fullmatch(r"http://testserver/sta/v1\.1/(\w+)\((\d+)\)", r.headers["location"])
    assert m is not None, r.headers["location"]
    return int(m.group(2))


def ok(r: Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def error(r: Response, status: int, *fragments: str) -> str:
    """Assert the SensorThings error body ``{"code", "type": "error", "message"}``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "type", "message"}, body
    assert body["code"] == status and body["type"] == "error"
    for fragment in fragments:
        assert fragment.lower() in body["message"].lower(), body["message"]
    return str(body["message"])


def location(name: str, point: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} location",
        "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": point},
    }


def datastream(name: str, *, sensor: Any = None, prop: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} stream",
        "unitOfMeasurement": UNIT,
        "observationType": MEASUREMENT,
        "Sensor": sensor
        or {"name": f"{name} sensor", "encodingType": "application/pdf", "metadata": "http://x/s.pdf"},
        "ObservedProperty": prop or {"name": "PM10", "definition": "http://dbpedia.org/page/Particulates"},
        **extra,
    }


def thing(
    name: str, point: list[float] = CITY_HALL, *streams: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} station",
        "properties": {"owner": "seoul"},
        "Locations": [location(f"{name} site", point)],
        "Datastreams": list(streams),
        **extra,
    }


class Sta:
    """Shortcuts over the test client, as the official: writes that must succeed, reads that must be 200."""

    def __init__(self, client: TestClient, auth: tuple[str, str]) -> None:
        self.c = client
        self.auth = auth

    def post(self, path: str, body: Any) -> int:
        return created(self.c.post(B + path, json=body, auth=self.auth))

    def get(self, path: str, **params: Any) -> Any:
        return ok(self.c.get(B + path, params=params, auth=self.auth))

    def ids(self, path: str, **params: Any) -> list[int]:
        return [e["@iot.id"] for e in self.get(path, **params)["value"]]

    def first(self, path: str, **params: Any) -> int:
        return self.ids(path, **params)[0]

    def patch(self, path: str, body: Any) -> None:
        r = self.c.patch(B + path, json=body, auth=self.auth)
        assert r.status_code == 200, r.text

    def delete(self, path: str) -> None:
        r = self.c.delete(B + path, auth=self.auth)
        assert r.status_code == 200, r.text

    def gone(self, path: str) -> None:
        error(self.c.get(B + path, auth=self.auth), 404)

    def observations(
        self, ds: int, rows: list[list[Any]], components: tuple[str, ...] = ("phenomenonTime", "result")
    ) -> list[int]:
        r = self.c.post(
            B + "/CreateObservations",
            json=[{"Datastream": {"@iot.id": ds}, "components": list(components), "dataArray": rows}],
            auth=self.auth,
        )
        assert r.status_code == 201, r.text
        links = r.json()
        assert "error" not in links, links
        return [int(re.search(r"\((\d+)\)$", link).group(1)) for link in links]  # type: ignore[union-attr]


@pytest.fixture
def sta(client: TestClient, staff: tuple[str, str]) -> Sta:
    return Sta(client, staff)


def world(sta: Sta) -> dict[str, int]:
    """Two stations, three datastreams, hourly observations: the scene most tests query."""
    a = sta.post(
        "/Things",
        thing(
            "Air-1",
            CITY_HALL,
            datastream("PM10 at City Hall"),
            datastream(
                "NO2 at City Hall",
                prop={"name": "NO2", "definition": "http://dbpedia.org/page/Nitrogen_dioxide"},
            ),
        ),
    )
    b = sta.post(
        "/Things", thing("Noise-2", GANGNAM, datastream("PM10 in Gangnam"), properties={"owner": "gangnam"})
    )
    ds = {d["name"]: d["@iot.id"] for d in sta.get("/Datastreams")["value"]}
    pm_a, no2_a, pm_b = ds["PM10 at City Hall"], ds["NO2 at City Hall"], ds["PM10 in Gangnam"]
    sta.observations(pm_a, [[iso(T0 + timedelta(hours=h)), h + 1] for h in range(10)])
    sta.observations(no2_a, [[iso(T0 + timedelta(hours=h)), 100 + h] for h in range(3)])
    sta.observations(pm_b, [[iso(T0 + timedelta(hours=h)), 50 + h] for h in range(4)])
    return {"a": a, "b": b, "pm_a": pm_a, "no2_a": no2_a, "pm_b": pm_b}


# ------------------------------------------------------------------------------------ create/read


def check_service_root(client: TestClient, app: App) -> None:
    """The service root lists the eight sets and only the conformance classes that are served."""
    root = ok(client.get(B))
    assert [v["name"] for v in root["value"]] == [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "Observations",
        "FeaturesOfInterest",
    ]
    assert all(v["url"] == f"http://testserver{B}/{v['name']}" for v in root["value"])
    conformance = root["serverSettings"]["conformance"]
    for cls in (
        "datamodel",
        "resource-path/resource-path-to-entities",
        "request-data",
        "create-update-delete",
        "data-array/data-array",
    ):
        assert f"http://www.opengis.net/spec/iot_sensing/1.1/req/{cls}" in conformance
    assert not any("mqtt" in c for c in conformance), "no broker is configured, so no MQTT class"
    assert ok(client.get(B + "/")) == root
    app.settings.mqtt_url = "mqtt://127.0.0.1:1883"
    settings = ok(client.get(B))["serverSettings"]
    mqtt = "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations"
    assert mqtt in settings["conformance"]
    assert settings[mqtt] == {"endpoints": ["mqtt://127.0.0.1:1883"]}
    app.settings.mqtt_url = None


def test_crud_of_every_entity_set(sta: Sta, app: App) -> None:
    """Create, read, update and delete each of the eight sets on its own (links by @iot.id)."""
    check_service_root(sta.c, app)
    thing_id = sta.post("/Things", {"name": "T", "description": "d", "properties": {"k": 1}})
    loc = sta.post("/Locations", {**location("L", CITY_HALL), "Things": [{"@iot.id": thing_id}]})
    sensor = sta.post(
        "/Sensors", {"name": "S", "description": "d", "encodingType": "application/pdf", "metadata": "m"}
    )
    prop = sta.post("/ObservedProperties", {"name": "P", "definition": "http://p", "description": "d"})
    ds = sta.post(
        "/Datastreams",
        {
            "name": "D",
            "description": "d",
            "unitOfMeasurement": UNIT,
            "observationType": MEASUREMENT,
            "Thing": {"@iot.id": thing_id},
            "Sensor": {"@iot.id": sensor},
            "ObservedProperty": {"@iot.id": prop},
        },
    )
    foi = sta.post(
        "/FeaturesOfInterest",
        {
            "name": "F",
            "description": "d",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": GANGNAM},
        },
    )
    obs = sta.post(
        "/Observations",
        {
            "phenomenonTime": iso(T0),
            "result": 12.5,
            "resultTime": iso(T0),
            "Datastream": {"@iot.id": ds},
            "FeatureOfInterest": {"@iot.id": foi},
            "parameters": {"calibrated": True},
            "resultQuality": "good",
            "validTime": f"{iso(T0)}/{iso(T0 + timedelta(hours=1))}",
        },
    )
    hl = sta.post(
        "/HistoricalLocations",
        {"time": iso(T0), "Thing": {"@iot.id": thing_id}, "Locations": [{"@iot.id": loc}]},
    )

    got = sta.get(f"/Things({thing_id})")
    assert got["@iot.id"] == thing_id and got["@iot.selfLink"] == f"http://testserver{B}/Things({thing_id})"
    assert got["properties"] == {"k": 1}
    for rel in ("Locations", "HistoricalLocations", "Datastreams"):
        assert got[f"{rel}@iot.navigationLink"] == f"http://testserver{B}/Things({thing_id})/{rel}"
    assert sta.get(f"/Locations({loc})")["location"] == {"type": "Point", "coordinates": CITY_HALL}
    assert sta.ids(f"/Locations({loc})/Things") == [thing_id]
    assert sta.get(f"/Sensors({sensor})")["metadata"] == "m"
    assert sta.get(f"/ObservedProperties({prop})")["definition"] == "http://p"
    d = sta.get(f"/Datastreams({ds})")
    assert d["unitOfMeasurement"] == UNIT and d["observationType"] == MEASUREMENT
    assert d["phenomenonTime"] == iso(T0), "the Datastream's phenomenonTime spans its observations"
    o = sta.get(f"/Observations({obs})")
    assert o["result"] == 12.5 and o["phenomenonTime"] == iso(T0) and o["resultTime"] == iso(T0)
    assert o["parameters"] == {"calibrated": True} and o["resultQuality"] == "good"
    assert o["validTime"] == f"{iso(T0)}/{iso(T0 + timedelta(hours=1))}"
    assert sta.get(f"/Observations({obs})/FeatureOfInterest")["@iot.id"] == foi
    assert sta.get(f"/FeaturesOfInterest({foi})")["feature"]["coordinates"] == GANGNAM
    h = sta.get(f"/HistoricalLocations({hl})")
    assert h["time"] == iso(T0)
    assert sta.get(f"/HistoricalLocations({hl})/Thing")["@iot.id"] == thing_id
    assert sta.ids(f"/HistoricalLocations({hl})/Locations") == [loc]

    # PATCH: only the given properties change.
    sta.patch(f"/Things({thing_id})", {"description": "new", "properties": {"k": 2}})
    assert sta.get(f"/Things({thing_id})") | {} == got | {"description": "new", "properties": {"k": 2}}
    sta.patch(f"/Locations({loc})", {"location": {"type": "Point", "coordinates": GANGNAM}})
    assert sta.get(f"/Locations({loc})")["location"]["coordinates"] == GANGNAM
    sta.patch(f"/Sensors({sensor})", {"metadata": "m2"})
    sta.patch(f"/ObservedProperties({prop})", {"name": "P2"})
    sta.patch(
        f"/Datastreams({ds})",
        {"name": "D2", "unitOfMeasurement": {"name": "ppm", "symbol": "ppm", "definition": "x"}},
    )
    sta.patch(f"/FeaturesOfInterest({foi})", {"name": "F2"})
    sta.patch(f"/Observations({obs})", {"result": 13, "resultQuality": "checked"})
    sta.patch(f"/HistoricalLocations({hl})", {"time": iso(T0 + timedelta(days=1))})
    assert sta.get(f"/Sensors({sensor})/metadata") == {"metadata": "m2"}
    assert sta.get(f"/ObservedProperties({prop})/name") == {"name": "P2"}
    assert sta.get(f"/Datastreams({ds})")["unitOfMeasurement"]["symbol"] == "ppm"
    assert sta.get(f"/FeaturesOfInterest({foi})")["name"] == "F2"
    assert sta.get(f"/Observations({obs})")["result"] == 13
    assert sta.get(f"/Observations({obs})")["resultQuality"] == "checked"
    assert sta.get(f"/HistoricalLocations({hl})")["time"] == iso(T0 + timedelta(days=1))
    # PUT replaces the whole entity (frost-sta-client's ``update`` sends everything it read).
    r = sta.c.put(
        f"{B}/Things({thing_id})",
        json={"@iot.id": thing_id, "name": "T3", "description": "x", "properties": {"k": 2}},
        auth=sta.auth,
    )
    assert r.status_code == 200, r.text
    assert sta.get(f"/Things({thing_id})")["name"] == "T3"

    # JSON Patch (RFC 6902) as an alternative body of PATCH.
    ops = [
        {"op": "test", "path": "/name", "value": "T3"},
        {"op": "copy", "from": "/name", "path": "/description"},
        {"op": "add", "path": "/properties/tags", "value": ["a"]},
        {"op": "add", "path": "/properties/tags/-", "value": "b"},
    ]
    r = sta.c.patch(
        f"{B}/Things({thing_id})",
        content=orjson.dumps(ops),
        auth=sta.auth,
        headers={"content-type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert sta.get(f"/Things({thing_id})", **{"$select": "description,properties"}) == {
        "description": "T3",
        "properties": {"k": 2, "tags": ["a", "b"]},
    }
    r = sta.c.patch(
        f"{B}/Things({thing_id})",
        content=b'[{"op": "remove", "path": "/description"}]',
        auth=sta.auth,
        headers={"content-type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert sta.get(f"/Things({thing_id})")["description"] == "", "an optional text property cleared is empty"
    error(
        sta.c.patch(
            f"{B}/Things({thing_id})",
            content=b'[{"op": "test", "path": "/name", "value": "no"}]',
            auth=sta.auth,
            headers={"content-type": "application/json-patch+json"},
        ),
        400,
        "test failed",
    )
    other = sta.post("/Things", {"name": "N", "description": None})
    assert sta.get(f"/Things({other})")["description"] == ""
    sta.delete(f"/Things({other})")

    # DELETE each; afterwards each is gone.
    for path in (
        f"/HistoricalLocations({hl})",
        f"/Observations({obs})",
        f"/FeaturesOfInterest({foi})",
        f"/Datastreams({ds})",
        f"/Sensors({sensor})",
        f"/ObservedProperties({prop})",
        f"/Locations({loc})",
        f"/Things({thing_id})",
    ):
        sta.delete(path)
        sta.gone(path)
    for name in (
        "Things",
        "Locations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
        "FeaturesOfInterest",
    ):
        assert sta.get(f"/{name}")["value"] == [], name


def test_deep_insert_links_with_extra_properties_and_location_headers(sta: Sta, client: TestClient) -> None:
    a = sta.post(
        "/Things",
        thing(
            "Air-1",
            CITY_HALL,
            datastream(
                "PM10",
                Observations=[
                    {"phenomenonTime": iso(T0), "result": 7},
                    {"phenomenonTime": iso(T0 + timedelta(hours=1)), "result": 8},
                ],
            ),
        ),
    )
    full = sta.get(
        f"/Things({a})",
        **{
            "$expand": "Locations,HistoricalLocations,Datastreams($expand=Sensor,"
            "ObservedProperty,Observations($orderby=phenomenonTime))"
        },
    )
    assert [loc["name"] for loc in full["Locations"]] == ["Air-1 site"]
    assert len(full["HistoricalLocations"]) == 1, "giving a Thing a Location records a HistoricalLocation"
    [ds] = full["Datastreams"]
    assert ds["Sensor"]["name"] == "PM10 sensor" and ds["ObservedProperty"]["name"] == "PM10"
    assert [o["result"] for o in ds["Observations"]] == [7, 8]
    sensor, prop, loc = (
        ds["Sensor"]["@iot.id"],
        ds["ObservedProperty"]["@iot.id"],
        full["Locations"][0]["@iot.id"],
    )

    # Related entities given by @iot.id *with other properties* (as frost-sta-client sends them)
    # are links to the existing entities: nothing new is created, nothing is changed.
    b = sta.post(
        "/Things",
        {
            "name": "Air-2",
            "description": "d",
            "Locations": [
                {"@iot.id": loc, "name": "ignored", "location": {"type": "Point", "coordinates": [0, 0]}}
            ],
            "Datastreams": [
                datastream(
                    "NO2",
                    sensor={"@iot.id": sensor, "name": "ignored too"},
                    prop={"@iot.id": prop, "name": "PM10", "definition": "whatever"},
                )
            ],
        },
    )
    assert (
        len(sta.ids("/Sensors")) == 1
        and len(sta.ids("/ObservedProperties")) == 1
        and len(sta.ids("/Locations")) == 1
    )
    assert sta.get(f"/Locations({loc})")["location"]["coordinates"] == CITY_HALL
    assert sorted(sta.ids(f"/Locations({loc})/Things")) == [a, b]
    ds2 = sta.post(
        "/Datastreams",
        datastream(
            "O3",
            sensor={"@iot.id": sensor, "name": "S", "encodingType": "x"},
            prop={"@iot.id": prop},
            Thing={"@iot.id": a, "name": "Air-1"},
        ),
    )
    assert sorted(sta.ids(f"/Things({a})/Datastreams")) == sorted([ds["@iot.id"], ds2])
    assert len(sta.ids("/Sensors")) == 1

    # Creating under a navigation path links to the parent, and still answers with Location.
    ds3 = sta.post(
        f"/Things({b})/Datastreams", datastream("CO", sensor={"@iot.id": sensor}, prop={"@iot.id": prop})
    )
    assert sta.get(f"/Datastreams({ds3})/Thing")["@iot.id"] == b
    loc2 = sta.post(f"/Things({b})/Locations", location("Moved", GANGNAM))
    assert loc2 in sta.ids(f"/Things({b})/Locations")
    obs = sta.post(f"/Datastreams({ds3})/Observations", {"phenomenonTime": iso(T0), "result": 3})
    assert sta.get(f"/Observations({obs})/Datastream")["@iot.id"] == ds3
    foi = sta.post(
        "/FeaturesOfInterest",
        {
            "name": "F",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": GANGNAM},
        },
    )
    obs2 = sta.post(f"/FeaturesOfInterest({foi})/Observations", {"result": 4, "Datastream": {"@iot.id": ds3}})
    assert sta.get(f"/Observations({obs2})/FeatureOfInterest")["@iot.id"] == foi
    # An inline FeatureOfInterest is created with the Observation.
    obs3 = sta.post(
        "/Observations",
        {
            "result": 5,
            "Datastream": {"@iot.id": ds3},
            "FeatureOfInterest": {
                "name": "Inline",
                "encodingType": "application/geo+json",
                "feature": {"type": "Point", "coordinates": CITY_HALL},
            },
        },
    )
    assert sta.get(f"/Observations({obs3})/FeatureOfInterest")["name"] == "Inline"
    hl = sta.post(f"/Things({b})/HistoricalLocations", {"time": iso(T0), "Locations": [{"@iot.id": loc2}]})
    assert sta.get(f"/HistoricalLocations({hl})/Thing")["@iot.id"] == b

    # A deep insert is one transaction: a bad nested Observation leaves nothing behind.
    before = {name: sta.ids(f"/{name}") for name in ("Things", "Datastreams", "Sensors", "Observations")}
    error(
        client.post(
            B + "/Things",
            json=thing(
                "Broken",
                CITY_HALL,
                datastream(
                    "X",
                    Observations=[
                        {"phenomenonTime": iso(T0), "result": 1},
                        {"phenomenonTime": iso(T0), "result": "not a number"},
                    ],
                ),
            ),
            auth=sta.auth,
        ),
        400,
        "not a number",
    )
    assert {name: sta.ids(f"/{name}") for name in before} == before


def test_navigation_value_and_ref(sta: Sta, client: TestClient) -> None:
    w = world(sta)
    a, pm_a = w["a"], w["pm_a"]
    assert sorted(sta.ids(f"/Things({a})/Datastreams")) == sorted([pm_a, w["no2_a"]])
    assert sta.get(f"/Datastreams({pm_a})/Thing")["name"] == "Air-1"
    assert sta.get(f"/Datastreams({pm_a})/Thing/Locations")["value"][0]["name"] == "Air-1 site"
    obs = sta.first(f"/Datastreams({pm_a})/Observations", **{"$orderby": "phenomenonTime"})
    assert sta.get(f"/Observations({obs})/Datastream/ObservedProperty")["name"] == "PM10"
    assert sta.get(f"/Datastreams({pm_a})/Observations({obs})")["result"] == 1
    assert len(sta.ids(f"/Things({a})/Datastreams({pm_a})/Observations")) == 10
    foi = sta.get(f"/Observations({obs})/FeatureOfInterest")
    assert foi["feature"] == {"type": "Point", "coordinates": CITY_HALL}
    assert obs in sta.ids(f"/FeaturesOfInterest({foi['@iot.id']})/Observations")
    assert len(sta.ids(f"/Things({a})/HistoricalLocations")) == 1
    assert sta.get(f"/Sensors({sta.first('/Sensors')})/Datastreams")["value"]

    # Properties, and their raw $value.
    assert sta.get(f"/Things({a})/name") == {"name": "Air-1"}
    assert sta.get(f"/Things({a})/properties") == {"properties": {"owner": "seoul"}}
    r = client.get(f"{B}/Things({a})/name/$value")
    assert r.status_code == 200 and r.text == "Air-1" and r.headers["content-type"].startswith("text/plain")
    assert client.get(f"{B}/Observations({obs})/result/$value").text == "1"
    assert client.get(f"{B}/Observations({obs})/phenomenonTime/$value").text == iso(T0)
    assert orjson.loads(client.get(f"{B}/Things({a})/properties/$value").content) == {"owner": "seoul"}
    assert sta.get(f"/Things({a})/id") == {"@iot.id": a}

    # $ref: links only.
    refs = sta.get(f"/Things({a})/Datastreams/$ref")
    assert {v["@iot.selfLink"] for v in refs["value"]} == {
        f"http://testserver{B}/Datastreams({pm_a})",
        f"http://testserver{B}/Datastreams({w['no2_a']})",
    }
    assert all(set(v) == {"@iot.selfLink"} for v in refs["value"])
    assert sta.get(f"/Datastreams({pm_a})/Thing/$ref") == {
        "@iot.selfLink": f"http://testserver{B}/Things({a})"
    }
    assert len(sta.get("/Observations/$ref", **{"$top": 3})["value"]) == 3

    # $ref POST links, DELETE unlinks, for many-to-many and to-one relations.
    loc_b = sta.first(f"/Things({w['b']})/Locations")
    r = client.post(f"{B}/Things({a})/Locations/$ref", json={"@iot.id": loc_b}, auth=sta.auth)
    assert r.status_code == 204, r.text
    assert loc_b in sta.ids(f"/Things({a})/Locations")
    r = client.delete(f"{B}/Things({a})/Locations({loc_b})/$ref", auth=sta.auth)
    assert r.status_code == 200, r.text
    assert loc_b not in sta.ids(f"/Things({a})/Locations")
    assert sta.get(f"/Locations({loc_b})")["name"] == "Noise-2 site", "unlinking deletes nothing"
    r = client.post(
        f"{B}/Locations({loc_b})/Things/$ref",
        json={"@iot.selfLink": f"http://testserver{B}/Things({a})"},
        auth=sta.auth,
    )
    assert r.status_code == 204, r.text
    assert a in sta.ids(f"/Locations({loc_b})/Things")
    r = client.post(f"{B}/Datastreams({pm_a})/Thing/$ref", json={"@iot.id": w["b"]}, auth=sta.auth)
    assert r.status_code == 204, r.text
    assert sta.get(f"/Datastreams({pm_a})/Thing")["@iot.id"] == w["b"]
    # PUT re-points a to-one link; POST on a to-many collection's $ref re-parents the entity.
    sensor_b = sta.get(f"/Datastreams({w['pm_b']})/Sensor")["@iot.id"]
    r = client.put(f"{B}/Datastreams({pm_a})/Sensor/$ref", json={"@iot.id": sensor_b}, auth=sta.auth)
    assert r.status_code == 204, r.text
    assert sta.get(f"/Datastreams({pm_a})/Sensor")["@iot.id"] == sensor_b
    r = client.post(f"{B}/Things({a})/Datastreams/$ref", json={"@iot.id": w["pm_b"]}, auth=sta.auth)
    assert r.status_code == 204, r.text
    assert w["pm_b"] in sta.ids(f"/Things({a})/Datastreams")
    error(
        client.delete(f"{B}/Things({a})/Datastreams({w['pm_b']})/$ref", auth=sta.auth),
        400,
        "delete the Datastream",
    )
    # POST of {"@iot.id"} to a navigation collection links the existing entity (201, Location).
    loc_a = sta.first(f"/Things({a})/Locations")
    r = client.post(
        f"{B}/Things({w['b']})/Locations", json={"@iot.id": loc_a, "name": "extra is ignored"}, auth=sta.auth
    )
    assert created(r) == loc_a and r.headers["location"].endswith(f"/Locations({loc_a})")
    assert loc_a in sta.ids(f"/Things({w['b']})/Locations")
    error(
        client.post(f"{B}/Things({a})/Locations/$ref", json={"@iot.id": 999999}, auth=sta.auth), 404, "999999"
    )
    error(client.post(f"{B}/Things({a})/Locations/$ref", json={"name": "x"}, auth=sta.auth), 400, "@iot.id")

    # Unknown ids and navigation names are 404s with the standard body.
    error(client.get(f"{B}/Things(999999)"), 404)
    error(client.get(f"{B}/Things(999999)/Datastreams"), 404)
    error(client.get(f"{B}/Things({a})/Sensor"), 404, "Sensor")
    error(client.get(f"{B}/Thingz"), 404, "Thingz")


def test_filter_select_orderby_top_skip_count(sta: Sta) -> None:
    w = world(sta)
    pm_a, pm_b = w["pm_a"], w["pm_b"]

    def results(path: str, flt: str, **more: str) -> list[Any]:
        return [o["result"] for o in sta.get(path, **{"$filter": flt, "$orderby": "result", **more})["value"]]

    obs = f"/Datastreams({pm_a})/Observations"
    # Comparison and logical operators.
    assert results(obs, "result gt 8") == [9, 10]
    assert results(obs, "result ge 3 and result le 4") == [3, 4]
    assert results(obs, "result eq 1 or result eq 10") == [1, 10]
    assert results(obs, "not (result lt 9)") == [9, 10]
    assert results(obs, "result ne 1 and result lt 4") == [2, 3]
    assert results(obs, "(result lt 3 or result gt 9) and not (result eq 1)") == [2, 10]
    # Arithmetic.
    assert results(obs, "result mul 2 eq 8") == [4]
    assert results(obs, "result add 1 eq 5") == [4]
    assert results(obs, "result sub 1 eq 0") == [1]
    assert results(obs, "result div 2 eq 2.5") == [5]
    assert results(obs, "result mod 3 eq 0") == [3, 6, 9]
    assert results(obs, "round(result div 4) eq 1") == [2, 3, 4, 5]
    # Temporal.
    assert results(obs, f"phenomenonTime ge {iso(T0 + timedelta(hours=8))}") == [9, 10]
    assert results(obs, "hour(phenomenonTime) eq 3") == [4]
    assert results(
        obs, "year(phenomenonTime) eq 2025 and month(phenomenonTime) eq 3 and day(phenomenonTime) eq 1"
    ) == list(range(1, 11))
    assert results(
        obs, f"phenomenonTime lt {iso(T0 + timedelta(hours=2))} and phenomenonTime gt {iso(T0)}"
    ) == [2]
    assert results(obs, "phenomenonTime lt now()") == list(range(1, 11))

    # String functions on Things and Datastreams.
    def names(flt: str) -> list[str]:
        return [t["name"] for t in sta.get("/Things", **{"$filter": flt, "$orderby": "name"})["value"]]

    assert names("startswith(name, 'Air')") == ["Air-1"]
    assert names("endswith(name, '-2')") == ["Noise-2"]
    assert names("substringof('oise', name)") == ["Noise-2"]
    assert names("tolower(name) eq 'air-1'") == ["Air-1"]
    assert names("toupper(name) eq 'NOISE-2'") == ["Noise-2"]
    assert names("length(name) eq 5") == ["Air-1"]
    assert names("indexof(name, '-') eq 5") == ["Noise-2"]
    assert names("substring(name, 0, 3) eq 'Air'") == ["Air-1"]
    assert names("concat(name, '!') eq 'Air-1!'") == ["Air-1"]
    assert names("trim(' Air-1 ') eq name") == ["Air-1"]
    assert names("properties/owner eq 'gangnam'") == ["Noise-2"]
    assert names("name eq 'Air-1' or properties/owner eq 'gangnam'") == ["Air-1", "Noise-2"]
    # Paths through to-one relations.
    assert len(sta.ids("/Observations", **{"$filter": "Datastream/ObservedProperty/name eq 'NO2'"})) == 3
    assert sorted(sta.ids("/Datastreams", **{"$filter": "Thing/name eq 'Air-1'"})) == sorted(
        [pm_a, w["no2_a"]]
    )
    assert sta.ids("/Datastreams", **{"$filter": f"Thing/@iot.id eq {w['b']}"}) == [pm_b]
    assert len(sta.ids("/Observations", **{"$filter": f"Datastream/@iot.id eq {pm_b} and result ge 52"})) == 2
    # Geospatial on GeoJSON: City Hall is inside the box, Gangnam is not.
    box = "geography'POLYGON((126.95 37.55, 127.00 37.55, 127.00 37.58, 126.95 37.58, 126.95 37.55))'"

    def locs(flt: str) -> list[str]:
        return [x["name"] for x in sta.get("/Locations", **{"$filter": flt})["value"]]

    assert locs(f"geo.intersects(location, {box})") == ["Air-1 site"]
    assert locs(f"st_within(location, {box})") == ["Air-1 site"]
    assert locs(f"not st_within(location, {box})") == ["Noise-2 site"]
    assert len(sta.ids("/Observations", **{"$filter": f"st_within(FeatureOfInterest/feature, {box})"})) == 13
    assert [
        f["name"]
        for f in sta.get("/FeaturesOfInterest", **{"$filter": f"geo.intersects(feature, {box})"})["value"]
    ] == ["Air-1 site"]

    # $select: only the named properties (plus nothing else).
    sel = sta.get(f"/Things({w['a']})", **{"$select": "name,properties"})
    assert sel == {"name": "Air-1", "properties": {"owner": "seoul"}}
    sel = sta.get("/Things", **{"$select": "id,name", "$orderby": "name"})["value"]
    assert sel == [{"@iot.id": w["a"], "name": "Air-1"}, {"@iot.id": w["b"], "name": "Noise-2"}]
    assert sta.get(obs, **{"$select": "result", "$top": 1, "$orderby": "result"})["value"] == [{"result": 1}]

    # $orderby (several keys, directions, across a relation), $top, $skip, $count.
    assert results(obs, "result gt 0", **{"$orderby": "result desc", "$top": "3"}) == [10, 9, 8]
    page = sta.get(obs, **{"$orderby": "phenomenonTime desc", "$top": 3, "$skip": 2, "$count": "true"})
    assert [o["result"] for o in page["value"]] == [8, 7, 6]
    assert page["@iot.count"] == 10
    assert "@iot.nextLink" in page
    by_stream = sta.get("/Observations", **{"$orderby": "Datastream/name desc,result asc", "$top": 4})[
        "value"
    ]
    assert [o["result"] for o in by_stream] == [50, 51, 52, 53], "'PM10 in Gangnam' sorts first in desc"
    names_desc = [t["name"] for t in sta.get("/Things", **{"$orderby": "name desc"})["value"]]
    assert names_desc == ["Noise-2", "Air-1"]
    counted = sta.get("/Observations", **{"$filter": "result ge 100", "$count": "true", "$top": 1})
    assert counted["@iot.count"] == 3 and len(counted["value"]) == 1
    assert "@iot.count" not in sta.get("/Observations", **{"$count": "false"})
    assert sta.get("/Things", **{"$top": 0, "$count": "true"}) == {"@iot.count": 2, "value": []}, (
        "no nextLink"
    )
    assert sta.get("/Things", **{"$count": "true"})["@iot.count"] == 2
    assert sta.get("/Things", **{"$skip": 5})["value"] == []


def test_nested_expand_with_its_own_options(sta: Sta) -> None:
    w = world(sta)
    expand = (
        "Datastreams($orderby=name desc;$top=1;$count=true;$select=id,name;"
        "$expand=Observations($top=2;$orderby=result desc;$filter=result lt 9;$select=result;$count=true))"
    )
    [a] = sta.get("/Things", **{"$filter": "name eq 'Air-1'", "$expand": expand})["value"]
    assert a["Datastreams@iot.count"] == 2
    [ds] = a["Datastreams"]
    assert ds["name"] == "PM10 at City Hall" and ds["@iot.id"] == w["pm_a"]
    assert set(ds) == {
        "@iot.id",
        "name",
        "Observations",
        "Observations@iot.count",
        "Observations@iot.nextLink",
    }
    assert ds["Observations"] == [{"result": 8}, {"result": 7}]
    assert ds["Observations@iot.count"] == 8
    assert "Datastreams@iot.nextLink" in a
    # The nested nextLink pages on within that entity's collection with the same options.
    nxt = sta.c.get(ds["Observations@iot.nextLink"], auth=sta.auth).json()
    assert [o["result"] for o in nxt["value"]] == [6, 5]

    # Several expansions, paths with '/', and expansions of to-one relations.
    t = sta.get(
        f"/Things({w['a']})", **{"$expand": "Locations,Datastreams/Sensor,Datastreams/ObservedProperty"}
    )
    assert [x["name"] for x in t["Locations"]] == ["Air-1 site"]
    assert {d["ObservedProperty"]["name"] for d in t["Datastreams"]} == {"PM10", "NO2"}
    assert all("Sensor" in d for d in t["Datastreams"])
    o = sta.get(
        "/Observations",
        **{
            "$top": 1,
            "$orderby": "result desc",
            "$expand": "Datastream($select=name;$expand=Thing($select=name)),FeatureOfInterest",
        },
    )
    [first] = o["value"]
    assert first["Datastream"] == {"name": "NO2 at City Hall", "Thing": {"name": "Air-1"}}
    assert first["FeatureOfInterest"]["feature"]["coordinates"] == CITY_HALL
    # Three levels down from a Location, with options at each level.
    deep = sta.get(
        "/Locations",
        **{
            "$orderby": "name",
            "$expand": "Things($expand=Datastreams($filter=startswith(name,'PM10');"
            "$expand=Observations($orderby=result;$top=1)))",
        },
    )["value"]
    assert [
        [[o["result"] for o in d["Observations"]] for d in t["Datastreams"]]
        for loc in deep
        for t in loc["Things"]
    ] == [[[1]], [[50]]]
    # $expand on a navigation path and on a single entity reached by navigation.
    assert (
        sta.get(f"/Datastreams({w['pm_a']})/Thing", **{"$expand": "Datastreams($count=true;$top=0)"})[
            "Datastreams@iot.count"
        ]
        == 2
    )
    hl = sta.get(f"/Things({w['b']})/HistoricalLocations", **{"$expand": "Locations"})["value"]
    assert hl[0]["Locations"][0]["name"] == "Noise-2 site"


def test_next_link_paging_count_estimate_and_data_array(sta: Sta, app: App, client: TestClient) -> None:
    w = world(sta)
    ds = sta.post(
        "/Datastreams",
        datastream(
            "Bulk",
            sensor={"@iot.id": sta.first("/Sensors")},
            prop={"@iot.id": sta.first("/ObservedProperties")},
            Thing={"@iot.id": w["a"]},
        ),
    )
    made = sta.observations(ds, [[iso(T0 + timedelta(minutes=i)), i] for i in range(250)])
    assert len(set(made)) == 250

    def walk(url: str, **params: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        page = ok(client.get(url, params=params))
        pages = 1
        while True:
            seen += page["value"]
            if "@iot.nextLink" not in page:
                return seen
            assert page["@iot.nextLink"].startswith("http://testserver/sta/v1.1/")
            page = ok(client.get(page["@iot.nextLink"]))
            pages += 1
            assert pages < 100

    # Default $top is 100: three pages, every id exactly once, no nextLink on the last page.
    everything = walk(f"{B}/Datastreams({ds})/Observations")
    assert sorted(o["@iot.id"] for o in everything) == sorted(made)
    first = ok(client.get(f"{B}/Datastreams({ds})/Observations"))
    assert len(first["value"]) == 100
    # Options are kept across pages (filter, order, select, count).
    got = walk(
        f"{B}/Observations",
        **{
            "$filter": f"Datastream/@iot.id eq {ds} and result ge 10",
            "$orderby": "result desc",
            "$top": 7,
            "$select": "id,result",
            "$count": "true",
        },
    )
    assert [o["result"] for o in got] == list(range(249, 9, -1))
    assert len({o["@iot.id"] for o in got}) == 240
    page = ok(
        client.get(
            f"{B}/Observations",
            params={"$filter": f"Datastream/@iot.id eq {ds}", "$count": "true", "$top": 50, "$skip": 200},
        )
    )
    assert page["@iot.count"] == 250 and len(page["value"]) == 50 and "@iot.nextLink" not in page
    assert ok(client.get(f"{B}/Observations", params={"$top": app.settings.sta_max_top}))["value"]

    # $count above count_exact_limit: the planner's estimate on PostgreSQL (never below the exact
    # count here), the exact number on SQLite.
    exact = ok(client.get(f"{B}/Observations", params={"$count": "true", "$top": 1}))["@iot.count"]
    assert exact == 250 + 17
    app.settings.count_exact_limit = 20
    postgres = app.engine.dialect.name == "postgresql"
    if postgres:  # the statistics autovacuum keeps on a live table of this size
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    for auth in (None, sta.auth):
        estimate = ok(client.get(f"{B}/Observations", params={"$count": "true", "$top": 1}, auth=auth))[
            "@iot.count"
        ]
        assert estimate >= exact if postgres else estimate == exact
    # Literals that mean something to SQL drivers (':' binds, '%' placeholders) in the EXPLAIN.
    odd = ok(
        client.get(
            f"{B}/Observations",
            params={"$count": "true", "$top": 1, "$filter": "Datastream/name ne 'a:b%c' and result ge 0"},
        )
    )
    assert odd["@iot.count"] > 20 if postgres else odd["@iot.count"] == exact
    small = ok(
        client.get(
            f"{B}/Observations", params={"$count": "true", "$filter": "result ge 100 and result le 102"}
        )
    )
    assert small["@iot.count"] == 3 + 3, "below the threshold the count stays exact"

    # $resultFormat=dataArray, per Datastream, with $select as the components.
    arr = ok(
        client.get(
            f"{B}/Datastreams({ds})/Observations",
            params={
                "$resultFormat": "dataArray",
                "$select": "id,phenomenonTime,result",
                "$orderby": "result",
                "$top": 3,
                "$count": "true",
            },
        )
    )
    assert arr["@iot.count"] == 250 and "@iot.nextLink" in arr
    [group] = arr["value"]
    assert group["Datastream@iot.navigationLink"] == f"http://testserver{B}/Datastreams({ds})"
    assert group["components"] == ["id", "phenomenonTime", "result"]
    assert group["dataArray@iot.count"] == 3
    assert [row[1:] for row in group["dataArray"]] == [[iso(T0 + timedelta(minutes=i)), i] for i in range(3)]
    mixed = ok(
        client.get(
            f"{B}/Observations",
            params={
                "$resultFormat": "dataArray",
                "$filter": "result ge 100 and result le 103",
                "$orderby": "result",
            },
        )
    )["value"]
    assert {g["Datastream@iot.navigationLink"].rsplit("(", 1)[1] for g in mixed} == {
        f"{w['no2_a']})",
        f"{ds})",
    }
    assert mixed[0]["components"] == [
        "id",
        "phenomenonTime",
        "result",
        "resultTime",
        "resultQuality",
        "validTime",
        "parameters",
    ]


def test_create_observations_marks_bad_rows_and_stores_good_ones(sta: Sta, client: TestClient) -> None:
    w = world(sta)
    ds = w["pm_a"]
    foi = sta.post(
        "/FeaturesOfInterest",
        {
            "name": "F",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": GANGNAM},
        },
    )
    day_ahead = iso(datetime.now(UTC) + timedelta(days=1))
    # Sent as text: the NaN row is literally ``NaN`` (not valid JSON, but what some loggers write).
    rows = [
        '["2025-04-01T00:00:00Z", 1.5, null]',  # good
        '["2025-04-01T01:00:00Z", "high", null]',  # not a number
        '["2025-04-01T02:00:00Z", NaN, null]',  # NaN
        f'["{day_ahead}", 4, null]',  # a day in the future
        '["2025-04-01T04:00:00", 5, null]',  # naive time
        '["2025-04-01T05:00:00Z", 6]',  # a component short
        f'["2025-04-01T06:00:00Z", 7, {foi}]',  # good, with its FeatureOfInterest
        '["2025-04-01T07:00:00Z", 8, 999999]',  # unknown FeatureOfInterest
    ]
    body = (
        f'[{{"Datastream": {{"@iot.id": {ds}}},'
        ' "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],'
        f' "dataArray": [{", ".join(rows)}]}},'
        ' {"Datastream": {"@iot.id": 999999}, "components": ["result"], "dataArray": [[1]]},'
        f' {{"Datastream": {{"@iot.id": {w["pm_b"]}}}, "components": ["result", "phenomenonTime"],'
        '  "dataArray": [[9, "2025-04-01T08:00:00+09:00"]]}]'
    )
    r = client.post(
        f"{B}/CreateObservations", content=body, headers={"content-type": "application/json"}, auth=sta.auth
    )
    assert r.status_code == 201, r.text
    links = r.json()
    assert r.headers["location"] == links[0]
    assert [link if link == "error" else "ok" for link in links] == [
        "ok",
        "error",
        "error",
        "error",
        "error",
        "error",
        "ok",
        "error",
        "error",
        "ok",
    ]
    got = [ok(client.get(links[i])) for i in (0, 6, 9)]
    assert [o["result"] for o in got] == [1.5, 7, 9]
    assert got[2]["phenomenonTime"] == "2025-03-31T23:00:00Z"
    assert sta.get(f"/Observations({got[1]['@iot.id']})/FeatureOfInterest")["@iot.id"] == foi
    assert (
        sta.get(f"/Observations({got[0]['@iot.id']})/FeatureOfInterest")["feature"]["coordinates"]
        == CITY_HALL
    )
    assert len(sta.ids(f"/Datastreams({ds})/Observations")) == 12
    # A malformed envelope is an error for the whole request.
    error(
        client.post(f"{B}/CreateObservations", json={"Datastream": {"@iot.id": ds}}, auth=sta.auth),
        400,
        "array",
    )
    error(
        client.post(
            f"{B}/CreateObservations", json=[{"Datastream": {"@iot.id": ds}, "dataArray": []}], auth=sta.auth
        ),
        400,
        "components",
    )
    error(client.post(f"{B}/CreateObservations", json=[], auth=None), 401)


def test_patch_observation_updates_the_hourly_rollup(sta: Sta, client: TestClient) -> None:
    w = world(sta)
    ds = w["pm_b"]
    h0 = T0 + timedelta(days=10)
    ids = sta.observations(
        ds, [[iso(h0 + timedelta(minutes=m)), v] for m, v in ((5, 10), (10, 20), (15, 30))]
    )
    window = {"start": iso(h0 - timedelta(days=1)), "end": iso(h0 + timedelta(days=3))}

    def series(interval: str = "hour") -> list[tuple[str, int, float, float, float]]:
        body = ok(
            client.get(
                f"{B}/Datastreams({ds})/Observations/$aggregate", params={**window, "interval": interval}
            )
        )
        assert body["interval"] == interval
        return [
            (p["phenomenonTime"].split("/")[0], p["count"], p["mean"], p["min"], p["max"])
            for p in body["value"]
        ]

    hour0 = iso(h0)
    assert series() == [(hour0, 3, 20.0, 10.0, 30.0)]
    sta.patch(f"/Observations({ids[1]})", {"result": 50})
    assert series() == [(hour0, 3, 30.0, 10.0, 50.0)]
    assert sta.get(f"/Observations({ids[1]})/result") == {"result": 50}
    # Moving an observation to another hour (and another day: another partition on PostgreSQL)
    # fixes both buckets.
    later = h0 + timedelta(days=1, hours=2)
    sta.patch(f"/Observations({ids[2]})", {"phenomenonTime": iso(later)})
    assert series() == [(hour0, 2, 30.0, 10.0, 50.0), (iso(later), 1, 30.0, 30.0, 30.0)]
    assert sta.get(f"/Observations({ids[2]})")["phenomenonTime"] == iso(later)
    sta.delete(f"/Observations({ids[0]})")
    assert series() == [(hour0, 1, 50.0, 50.0, 50.0), (iso(later), 1, 30.0, 30.0, 30.0)]
    assert [p[1] for p in series("day")] == [1, 1]
    # A PATCH is validated like a new observation.
    error(
        client.patch(f"{B}/Observations({ids[1]})", json={"result": "lots"}, auth=sta.auth),
        400,
        "not a number",
    )
    error(
        client.patch(
            f"{B}/Observations({ids[1]})",
            json={"phenomenonTime": iso(datetime.now(UTC) + timedelta(days=1))},
            auth=sta.auth,
        ),
        400,
        "future",
    )
    error(client.patch(f"{B}/Observations({ids[1]})", json={"colour": "red"}, auth=sta.auth), 400, "colour")
    assert series() == [(hour0, 1, 50.0, 50.0, 50.0), (iso(later), 1, 30.0, 30.0, 30.0)]
    error(
        client.get(f"{B}/Datastreams({ds})/Observations/$aggregate", params={"interval": "week"}),
        400,
        "interval",
    )


def test_delete_cascades_and_generated_feature_of_interest(sta: Sta, client: TestClient) -> None:
    w = world(sta)
    a, pm_a, no2_a, pm_b = w["a"], w["pm_a"], w["no2_a"], w["pm_b"]
    # Observations without a FeatureOfInterest get one generated from the Thing's Location.
    loc = sta.get(f"/Things({a})/Locations")["value"][0]
    foi = sta.get(f"/Observations({sta.first(f'/Datastreams({pm_a})/Observations')})/FeatureOfInterest")
    assert foi["feature"] == loc["location"] and foi["name"] == loc["name"]
    assert foi["encodingType"] == "application/geo+json"
    assert len(sta.ids(f"/FeaturesOfInterest({foi['@iot.id']})/Observations")) == 13, (
        "one FoI per Location, reused"
    )
    assert len(sta.ids("/FeaturesOfInterest")) == 2
    a_obs = sta.ids(f"/Datastreams({pm_a})/Observations") + sta.ids(f"/Datastreams({no2_a})/Observations")
    hls = sta.ids(f"/Things({a})/HistoricalLocations")

    # Thing → its Datastreams → their Observations (and HistoricalLocations); Locations stay.
    sta.delete(f"/Things({a})")
    for path in (
        f"/Things({a})",
        f"/Datastreams({pm_a})",
        f"/Datastreams({no2_a})",
        *(f"/Observations({o})" for o in a_obs[:3]),
        *(f"/HistoricalLocations({h})" for h in hls),
    ):
        sta.gone(path)
    assert set(sta.ids("/Observations")).isdisjoint(a_obs)
    assert sta.ids("/Datastreams") == [pm_b]
    assert sta.get(f"/Locations({loc['@iot.id']})")["name"] == loc["name"]
    latest = ok(client.get("/api/hub/latest", auth=sta.auth))["value"]
    assert [v["datastream"] for v in latest] == [pm_b]
    error(client.get(f"{B}/Datastreams({pm_a})/Observations/$aggregate"), 404)

    # Datastream → Observations; Sensor / ObservedProperty → Datastreams → Observations.
    b_obs = sta.ids(f"/Datastreams({pm_b})/Observations")
    sensor = sta.get(f"/Datastreams({pm_b})/Sensor")["@iot.id"]
    sta.delete(f"/Sensors({sensor})")
    sta.gone(f"/Datastreams({pm_b})")
    sta.gone(f"/Observations({b_obs[0]})")
    assert sta.ids("/Observations") == []

    t = sta.post("/Things", thing("T", CITY_HALL, datastream("D1"), datastream("D2")))
    d1, d2 = sorted(sta.ids(f"/Things({t})/Datastreams"))
    prop = sta.get(f"/Datastreams({d1})/ObservedProperty")["@iot.id"]
    o1 = sta.observations(d1, [[iso(T0), 1]])
    sta.delete(f"/ObservedProperties({prop})")
    sta.gone(f"/Datastreams({d1})")
    sta.gone(f"/Observations({o1[0]})")
    o2 = sta.observations(d2, [[iso(T0), 1], [iso(T0 + timedelta(hours=1)), 2]])
    sta.delete(f"/Datastreams({d2})")
    for o in o2:
        sta.gone(f"/Observations({o})")
    assert sta.get(f"/Things({t})")["name"] == "T"

    # FeatureOfInterest → its Observations; Location → only its links.
    d3 = sta.post(f"/Things({t})/Datastreams", datastream("D3"))
    f = sta.post(
        "/FeaturesOfInterest",
        {
            "name": "F",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": GANGNAM},
        },
    )
    kept = sta.observations(d3, [[iso(T0), 1]])
    dropped = sta.post(
        "/Observations",
        {
            "result": 2,
            "phenomenonTime": iso(T0),
            "Datastream": {"@iot.id": d3},
            "FeatureOfInterest": {"@iot.id": f},
        },
    )
    sta.delete(f"/FeaturesOfInterest({f})")
    sta.gone(f"/Observations({dropped})")
    assert sta.ids(f"/Datastreams({d3})/Observations") == kept
    t_loc = sta.first(f"/Things({t})/Locations")
    sta.delete(f"/Locations({t_loc})")
    assert sta.ids(f"/Things({t})/Locations") == []
    assert sta.get(f"/Things({t})")["name"] == "T"
    # Without a Location (and no FoI given) there is nothing to generate a FeatureOfInterest from.
    error(
        client.post(f"{B}/Observations", json={"result": 1, "Datastream": {"@iot.id": d3}}, auth=sta.auth),
        400,
        "FeatureOfInterest",
    )


def test_writes_need_a_staff_credential(client: TestClient, staff: tuple[str, str], app: App) -> None:
    from citydesk.auth import Role, create_token, create_user

    body = {"name": "T", "description": "d"}
    r = client.post(f"{B}/Things", json=body)
    error(r, 401, "sign-in")
    assert r.headers["www-authenticate"].startswith("Basic")
    error(client.post(f"{B}/Things", json=body, auth=(staff[0], "wrong password")), 401)
    thing_id = created(client.post(f"{B}/Things", json=body, auth=staff))
    user = create_user(
        app.engine, "lee.staff", Role.DEPARTMENT_STAFF, "another long password", now=datetime.now(UTC)
    )
    token = create_token(app.engine, user.id, "sensor gateway", now=datetime.now(UTC))
    bearer = {"authorization": f"Bearer {token}"}
    created(client.post(f"{B}/Things", json=body, headers=bearer))
    error(client.post(f"{B}/Things", json=body, headers={"authorization": "Bearer nope"}), 401)
    for method in ("patch", "put"):
        error(client.request(method, f"{B}/Things({thing_id})", json=body), 401)
    error(client.delete(f"{B}/Things({thing_id})"), 401)
    error(client.post(f"{B}/Things({thing_id})/Locations/$ref", json={"@iot.id": 1}), 401)
    # Department staff may write, but not create data above the levels they may see.
    error(
        client.post(f"{B}/Things", json={**body, "properties": {"disclosure": "restricted"}}, headers=bearer),
        400,
        "restricted",
    )
    assert ok(client.get(f"{B}/Things"))["value"], "reading public data needs no credential"


# ------------------------------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def err_world(module_client: TestClient, module_staff: tuple[str, str]) -> Iterator[dict[str, Any]]:
    sta = Sta(module_client, module_staff)
    t = sta.post(
        "/Things", thing("E", CITY_HALL, datastream("Num"), datastream("Cat", observationType=CATEGORY))
    )
    ds = {d["name"]: d["@iot.id"] for d in sta.get(f"/Things({t})/Datastreams")["value"]}
    yield {"thing": t, "ds": ds["Num"], "cat": ds["Cat"], "client": module_client, "auth": module_staff}


def _obs(ds: str = "{ds}", **extra: Any) -> str:
    body = {"result": 1, "phenomenonTime": "2025-03-01T00:00:00Z", "Datastream": {"@iot.id": "DS"}, **extra}
    return orjson.dumps(body).decode().replace('"DS"', ds)


FUTURE = iso(datetime.now(UTC) + timedelta(days=1))
ERROR_CASES: list[tuple[str, str, str, str | None, int, tuple[str, ...]]] = [
    # (case, method, path, body, status, fragments of the message)
    ("bad JSON", "POST", "/Things", '{"name": "x",', 400, ("not valid JSON",)),
    ("empty body", "POST", "/Things", "", 400, ("no JSON body",)),
    ("not an object", "POST", "/Things", '["x"]', 400, ("JSON object",)),
    ("unknown property", "POST", "/Things", '{"name": "x", "colour": "red"}', 400, ("colour",)),
    (
        "unknown nested property",
        "POST",
        "/Things",
        '{"name": "x", "Locations": [{"name": "l", "encodingType": "application/geo+json", '
        '"location": {"type": "Point", "coordinates": [126.97, 37.56]}, "altitude": 3}]}',
        400,
        ("altitude",),
    ),
    (
        "missing required",
        "POST",
        "/Sensors",
        '{"name": "s", "metadata": "m"}',
        400,
        ("encodingType", "required"),
    ),
    (
        "missing relation",
        "POST",
        "/Datastreams",
        f'{{"name": "d", "unitOfMeasurement": {{}}, "observationType": "{MEASUREMENT}"}}',
        400,
        ("Thing",),
    ),
    ("wrong type", "POST", "/Things", '{"name": 5}', 400, ("name", "string")),
    (
        "wrong unit type",
        "POST",
        "/Datastreams",
        '{"name": "d", "unitOfMeasurement": "ug", "observationType": '
        f'"{MEASUREMENT}", "Thing": {{"@iot.id": {{thing}}}}, "Sensor": {{"@iot.id": 1}}, '
        '"ObservedProperty": {"@iot.id": 1}}',
        400,
        ("unitOfMeasurement",),
    ),
    (
        "unknown observationType",
        "POST",
        "/Things({thing})/Datastreams",
        '{"name": "d", "unitOfMeasurement": {},'
        ' "observationType": "http://x", "Sensor": {"@iot.id": 1}, "ObservedProperty": {"@iot.id": 1}}',
        400,
        ("observationType",),
    ),
    (
        "bad disclosure",
        "POST",
        "/Things",
        '{"name": "x", "properties": {"disclosure": "secret"}}',
        400,
        ("disclosure",),
    ),
    (
        "not GeoJSON",
        "POST",
        "/Locations",
        '{"name": "l", "encodingType": "application/geo+json", "location": "here"}',
        400,
        ("GeoJSON",),
    ),
    (
        "Location outside Seoul",
        "POST",
        "/Locations",
        '{"name": "l", "encodingType": "application/geo+json", '
        f'"location": {{"type": "Point", "coordinates": {TOKYO}}}}}',
        400,
        ("outside",),
    ),
    ("wrong result type", "POST", "/Observations", _obs(result="high"), 400, ("not a number",)),
    ("boolean for a Measurement", "POST", "/Observations", _obs(result=True), 400, ("not a number",)),
    ("NaN", "POST", "/Observations", _obs().replace('"result":1', '"result":NaN'), 400, ("finite",)),
    ("Infinity", "POST", "/Datastreams({ds})/Observations", '{"result": -Infinity}', 400, ("finite",)),
    (
        "missing result",
        "POST",
        "/Datastreams({ds})/Observations",
        '{"phenomenonTime": "2025-03-01T00:00:00Z"}',
        400,
        ("result", "required"),
    ),
    ("unknown datastream", "POST", "/Observations", _obs("999999"), 400, ("Datastream", "999999")),
    ("no datastream", "POST", "/Observations", '{"result": 1}', 400, ("Datastream",)),
    (
        "unknown datastream in the path",
        "POST",
        "/Datastreams(999999)/Observations",
        '{"result": 1}',
        404,
        ("999999",),
    ),
    (
        "FoI outside Seoul",
        "POST",
        "/Observations",
        _obs(
            FeatureOfInterest={
                "name": "f",
                "encodingType": "application/geo+json",
                "feature": {"type": "Point", "coordinates": TOKYO},
            }
        ),
        400,
        ("outside",),
    ),
    (
        "FoI outside Seoul, own set",
        "POST",
        "/FeaturesOfInterest",
        '{"name": "f", "encodingType": '
        f'"application/geo+json", "feature": {{"type": "Point", "coordinates": {TOKYO}}}}}',
        400,
        ("outside",),
    ),
    ("a day in the future", "POST", "/Observations", _obs(phenomenonTime=FUTURE), 400, ("future",)),
    ("resultTime in the future", "POST", "/Observations", _obs(resultTime=FUTURE), 400, ("future",)),
    ("naive time", "POST", "/Observations", _obs(phenomenonTime="2025-03-01T00:00:00"), 400, ("time zone",)),
    ("not a time", "POST", "/Observations", _obs(phenomenonTime="yesterday"), 400, ("ISO 8601",)),
    (
        "reversed interval",
        "POST",
        "/Observations",
        _obs(phenomenonTime="2025-03-02T00:00:00Z/2025-03-01T00:00:00Z"),
        400,
        ("before",),
    ),
    ("category result as object", "POST", "/Observations", _obs("{cat}", result=None), 400, ("result",)),
    (
        "unknown FoI",
        "POST",
        "/Observations",
        _obs(FeatureOfInterest={"@iot.id": 999999}),
        400,
        ("FeatureOfInterest", "999999"),
    ),
    ("bad $filter", "GET", "/Things?$filter=name eq", None, 400, ("$filter",)),
    ("unknown $filter property", "GET", "/Things?$filter=colour eq 'red'", None, 400, ("colour",)),
    ("unknown $expand", "GET", "/Things?$expand=Sensors", None, 400, ("Sensors",)),
    ("unknown nested $expand", "GET", "/Things?$expand=Datastreams($expand=Things)", None, 400, ("Things",)),
    ("$top above the maximum", "GET", "/Things?$top=10001", None, 400, ("$top", "10000")),
    (
        "nested $top above the maximum",
        "GET",
        "/Things?$expand=Datastreams($top=10001)",
        None,
        400,
        ("10000",),
    ),
    ("negative $skip", "GET", "/Things?$skip=-1", None, 400, ("$skip",)),
    ("bad $count", "GET", "/Things?$count=yes", None, 400, ("$count",)),
    ("bad $orderby", "GET", "/Things?$orderby=name sideways", None, 400, ("$orderby",)),
    ("unknown option", "GET", "/Things?$format=xml", None, 400, ("$format",)),
    ("unknown $select", "GET", "/Things?$select=colour", None, 400, ("colour",)),
    ("dataArray on Things", "GET", "/Things?$resultFormat=dataArray", None, 400, ("Observations",)),
    ("unknown set", "GET", "/Thingz", None, 404, ("Thingz",)),
    ("unknown id", "GET", "/Things(999999)", None, 404, ("Thing",)),
    ("bad segment", "GET", "/Things(abc)", None, 400, ("abc",)),
    ("unknown navigation", "GET", "/Things({thing})/Sensors", None, 404, ("Sensors",)),
    ("$value without property", "GET", "/Things({thing})/$value", None, 400, ("$value",)),
    ("PATCH unknown id", "PATCH", "/Things(999999)", '{"name": "x"}', 404, ("999999",)),
    ("PATCH a collection", "PATCH", "/Things", '{"name": "x"}', 400, ("one entity",)),
    ("PATCH with a wrong type", "PATCH", "/Things({thing})", '{"name": 1}', 400, ("string",)),
    ("DELETE unknown id", "DELETE", "/Sensors(999999)", None, 404, ("999999",)),
    ("DELETE a collection", "DELETE", "/Things", None, 400, ("one entity",)),
    ("POST to one entity", "POST", "/Things({thing})", '{"name": "x"}', 400, ("collection",)),
    ("aggregate of unknown datastream", "GET", "/Datastreams(999999)/Observations/$aggregate", None, 404, ()),
    (
        "aggregate beyond 64 bits",
        "GET",
        "/Datastreams(99999999999999999999)/Observations/$aggregate",
        None,
        404,
        (),
    ),
    ("aggregate of a bad id", "GET", "/Datastreams(x)/Observations/$aggregate", None, 400, ()),
    ("id beyond 64 bits", "GET", "/Things(99999999999999999999999)", None, 404, ("Thing",)),
    (
        "navigation from an id beyond 64 bits",
        "GET",
        "/Things(99999999999999999999999)/Datastreams",
        None,
        404,
        (),
    ),
    ("$skip beyond 64 bits", "GET", "/Things?$skip=99999999999999999999", None, 400, ("$skip", "at most")),
    (
        "nested $skip beyond 64 bits",
        "GET",
        "/Things?$expand=Datastreams($skip=99999999999999999999)",
        None,
        400,
        ("$skip",),
    ),
    (
        "link id beyond 64 bits",
        "POST",
        "/Things",
        '{"name": "x", "Locations": [{"@iot.id": 99999999999999999999}]}',
        400,
        ("not a valid id",),
    ),
    (
        "link id true",
        "POST",
        "/Things",
        '{"name": "x", "Locations": [{"@iot.id": true}]}',
        400,
        ("not a valid id",),
    ),
    ("top-level @iot.id", "POST", "/Things", '{"@iot.id": 5, "name": "x"}', 400, ("@iot.id",)),
    (
        "position not numbers",
        "POST",
        "/Locations",
        '{"name": "l", "encodingType": "application/geo+json", '
        '"location": {"type": "Point", "coordinates": ["126.9", "37.5"]}}',
        400,
        ("position",),
    ),
    (
        "polygon too short",
        "POST",
        "/Locations",
        '{"name": "l", "encodingType": "application/geo+json", '
        '"location": {"type": "Polygon", "coordinates": [[[126.9, 37.5], [127.0, 37.5]]]}}',
        400,
        ("GeoJSON",),
    ),
    (
        "$ref to garbage",
        "POST",
        "/Things({thing})/Locations/$ref",
        '{"@iot.selfLink": "garbage"}',
        400,
        ("@iot.selfLink",),
    ),
    (
        "$ref to the wrong set",
        "POST",
        "/Things({thing})/Locations/$ref",
        '{"@iot.selfLink": "http://testserver/sta/v1.1/Things(1)"}',
        400,
        ("Locations",),
    ),
    (
        "unknown CreateObservations component",
        "POST",
        "/CreateObservations",
        '[{"Datastream": {"@iot.id": {ds}}, "components": ["result", "colour"], "dataArray": [[1, "red"]]}]',
        400,
        ("colour",),
    ),
    (
        "Datastream other than the path's",
        "POST",
        "/Datastreams({ds})/Observations",
        '{"result": 1, "Datastream": {"@iot.id": {cat}}}',
        400,
        ("Datastream",),
    ),
    ("JSON Patch not a list", "PATCH", "/Things({thing})", '{"op": "replace"}', 400, ("array",)),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "status", "fragments"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_error_bodies(
    err_world: dict[str, Any],
    case: str,
    method: str,
    path: str,
    body: str | None,
    status: int,
    fragments: tuple[str, ...],
) -> None:
    fill = {"{ds}": err_world["ds"], "{cat}": err_world["cat"], "{thing}": err_world["thing"]}
    url, content = B + path, body
    for key, value in fill.items():
        url = url.replace(key, str(value))
        content = None if content is None else content.replace(key, str(value))
    client: TestClient = err_world["client"]
    kind = "application/json-patch+json" if case.startswith("JSON Patch") else "application/json"
    r = client.request(method, url, content=content, headers={"content-type": kind}, auth=err_world["auth"])
    message = error(r, status, *fragments)
    assert "Traceback" not in message and len(message) < 500


def test_error_cases_leave_no_trace(err_world: dict[str, Any]) -> None:
    """Refused writes (the cases above) created nothing: no stray Thing, Location or FoI."""
    client: TestClient = err_world["client"]
    sta = Sta(client, err_world["auth"])
    assert [t["name"] for t in sta.get("/Things")["value"]] == ["E"]
    assert len(sta.ids("/Locations")) == 1
    assert len(sta.ids("/FeaturesOfInterest")) <= 1
    assert sta.get(f"/Things({err_world['thing']})")["name"] == "E"
