"""PUT replaces an entity (SensorThings 1.1 §10.3, OData 4.0 Protocol 11.4.3), PATCH merges, on
SQLite and PostgreSQL: properties left out of a PUT go back to their defaults, a required one left
out is a 400, computed ones are ignored, relations left out are kept, ``$ref`` PUTs re-point."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from test_sta_api import CITY_HALL, MEASUREMENT, T0, UNIT, B, Sta, datastream, error, iso, thing


@pytest.fixture
def sta(client: TestClient, staff: tuple[str, str]) -> Sta:
    return Sta(client, staff)


def put(sta: Sta, path: str, body: object) -> None:
    r = sta.c.put(B + path, json=body, auth=sta.auth)
    assert r.status_code == 200, r.text


def test_put_replaces_and_patch_merges(sta: Sta) -> None:
    t = sta.post("/Things", thing("Air-1", CITY_HALL, datastream("PM10")))
    loc = sta.first(f"/Things({t})/Locations")
    sta.patch(f"/Things({t})", {"name": "Air-1b"})
    merged = sta.get(f"/Things({t})")
    assert merged["description"] == "Air-1 station" and merged["properties"] == {"owner": "seoul"}

    put(sta, f"/Things({t})", {"@iot.id": 12345, "name": "Air-1c", "@iot.selfLink": "ignored"})
    replaced = sta.get(f"/Things({t})")
    assert replaced["@iot.id"] == t and replaced["name"] == "Air-1c"
    assert replaced["description"] == "" and "properties" not in replaced
    assert sta.ids(f"/Things({t})/Locations") == [loc], "relations left out of a PUT are kept"
    assert len(sta.ids(f"/Things({t})/HistoricalLocations")) == 1, "no Location change, no new history"

    put(sta, f"/Locations({loc})", {"name": "moved", "encodingType": "application/geo+json",
                                    "location": {"type": "Point", "coordinates": [127.0473, 37.5172]}})  # fmt: skip
    assert sta.get(f"/Locations({loc})")["description"] == ""
    assert len(sta.ids(f"/Things({t})/HistoricalLocations")) == 2, "a moved Location is history"


def test_put_refuses_a_missing_required_property(sta: Sta) -> None:
    sensor = sta.post(
        "/Sensors", {"name": "S", "description": "d", "encodingType": "application/pdf", "metadata": "m"}
    )
    for body, missing in (
        ({"name": "S2", "encodingType": "application/pdf"}, "metadata"),
        ({"encodingType": "application/pdf", "metadata": "m"}, "name"),
    ):
        error(sta.c.put(f"{B}/Sensors({sensor})", json=body, auth=sta.auth), 400, missing, "required")
    unchanged = sta.get(f"/Sensors({sensor})")
    assert (unchanged["name"], unchanged["metadata"], unchanged["description"]) == ("S", "m", "d")
    error(sta.c.put(f"{B}/Sensors(999999)", json={"name": "x"}, auth=sta.auth), 404, "999999")
    error(sta.c.put(f"{B}/Sensors", json={"name": "x"}, auth=sta.auth), 400, "one entity")
    error(
        sta.c.put(
            f"{B}/Sensors({sensor})",
            content=orjson.dumps([{"op": "replace", "path": "/name", "value": "x"}]),
            headers={"content-type": "application/json-patch+json"},
            auth=sta.auth,
        ),
        400,
        "PATCH",
    )
    error(
        sta.c.put(f"{B}/Sensors({sensor})", json={"name": "S", "colour": "red"}, auth=sta.auth), 400, "colour"
    )


def test_put_of_a_datastream_keeps_what_the_server_derives(sta: Sta, client: TestClient) -> None:
    t = sta.post(
        "/Things",
        thing(
            "Air-1", CITY_HALL, datastream("secret", properties={"disclosure": "internal", "family": "sdot"})
        ),
    )
    ds = sta.first(f"/Things({t})/Datastreams")
    sta.observations(ds, [[iso(T0), 1], [iso(T0 + timedelta(hours=1)), 2]])
    current = sta.get(f"/Datastreams({ds})")
    first_sensor = sta.get(f"/Datastreams({ds})/Sensor")["@iot.id"]
    other = sta.post("/Sensors", {"name": "S2", "encodingType": "application/pdf", "metadata": "m"})
    body = {k: v for k, v in current.items() if "@" not in k} | {
        "description": "new",
        "properties": {"note": 1},
    }
    put(sta, f"/Datastreams({ds})", body | {"Sensor": {"@iot.id": other}})
    after = sta.get(f"/Datastreams({ds})")
    assert after["description"] == "new" and after["properties"] == {"note": 1}
    assert after["phenomenonTime"] == current["phenomenonTime"], "computed properties are ignored"
    assert sta.get(f"/Datastreams({ds})/Sensor")["@iot.id"] == other, "a link in a PUT replaces the relation"
    assert sta.get(f"/Datastreams({ds})/Thing")["@iot.id"] == t
    assert client.get(f"{B}/Datastreams({ds})").status_code == 404, "still internal: disclosure is not reset"
    error(
        sta.c.put(f"{B}/Datastreams({ds})", json={"name": "x", "unitOfMeasurement": UNIT}, auth=sta.auth),
        400,
        "observationType",
    )
    put(sta, f"/Datastreams({ds})", {"name": "x", "unitOfMeasurement": UNIT, "observationType": MEASUREMENT})
    assert "properties" not in sta.get(f"/Datastreams({ds})")
    # PUT on a to-one $ref re-points it, as before.
    r = sta.c.put(f"{B}/Datastreams({ds})/Sensor/$ref", json={"@iot.id": first_sensor}, auth=sta.auth)
    assert r.status_code == 204, r.text
    assert sta.get(f"/Datastreams({ds})/Sensor")["@iot.id"] == first_sensor


def test_put_of_an_observation(sta: Sta) -> None:
    t = sta.post("/Things", thing("Air-1", CITY_HALL, datastream("PM10")))
    ds = sta.first(f"/Things({t})/Datastreams")
    obs = sta.post(
        f"/Datastreams({ds})/Observations",
        {"phenomenonTime": iso(T0), "result": 1, "resultTime": iso(T0), "resultQuality": "good",
         "parameters": {"k": 1}, "validTime": f"{iso(T0)}/{iso(T0 + timedelta(hours=1))}"},
    )  # fmt: skip
    later = iso(T0 + timedelta(days=3))
    put(sta, f"/Observations({obs})", {"phenomenonTime": later, "result": 7})
    got = sta.get(f"/Observations({obs})")
    assert got["phenomenonTime"] == later and got["result"] == 7 and got["resultTime"] is None
    assert not {"resultQuality", "parameters", "validTime"} & set(got)
    assert sta.get(f"/Datastreams({ds})")["phenomenonTime"] == later, "the extent follows the move"
    for body, missing in (({"result": 8}, "phenomenonTime"), ({"phenomenonTime": later}, "result")):
        error(sta.c.put(f"{B}/Observations({obs})", json=body, auth=sta.auth), 400, missing, "required")
    assert sta.get(f"/Observations({obs})")["result"] == 7
