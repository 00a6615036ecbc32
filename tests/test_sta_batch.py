"""SensorThings batch requests (``POST /$batch``) on SQLite and PostgreSQL: the JSON format (OData
4.01) and the multipart/mixed format of the SensorThings conformance class; atomicity groups (all
or nothing), ``$id`` references in URLs and in ``@iot.id`` links, ``dependsOn``, the per-request
access rules, and the refusals of malformed batches in the SensorThings error format.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import HTTP
from typing import Any, cast

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_sta_api import CITY_HALL, T0, B, Sta, datastream, error, iso, ok, thing

from citydesk.web.app import App

BATCH = "http://www.opengis.net/spec/iot_sensing/1.1/req/batch-request/batch-request"


@pytest.fixture
def sta(client: TestClient, staff: tuple[str, str]) -> Sta:
    return Sta(client, staff)


@pytest.fixture
def station(sta: Sta) -> dict[str, int]:
    """A Thing with a Location and one Datastream (its Sensor and ObservedProperty)."""
    t = sta.post("/Things", thing("Air-1", CITY_HALL, datastream("PM10 at City Hall")))
    ds = sta.first(f"/Things({t})/Datastreams")
    sensor = sta.get(f"/Datastreams({ds})/Sensor")["@iot.id"]
    prop = sta.get(f"/Datastreams({ds})/ObservedProperty")["@iot.id"]
    return {"thing": t, "ds": ds, "sensor": sensor, "prop": prop}


def run(sta: Sta, *requests: dict[str, Any], auth: bool = True, **headers: str) -> dict[str, dict[str, Any]]:
    """A JSON batch; its responses by id (each response must name its request)."""
    r = sta.c.post(
        f"{B}/$batch", json={"requests": list(requests)}, auth=sta.auth if auth else None, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    responses = r.json()["responses"]
    by_id = {resp["id"]: resp for resp in responses}
    assert len(by_id) == len(responses)
    return by_id


def new_id(response: dict[str, Any]) -> int:
    assert response["status"] == 201, response
    return int(response["headers"]["location"].rsplit("(", 1)[1].rstrip(")"))


def sensor_body(name: str) -> dict[str, Any]:
    return {"name": name, "encodingType": "application/pdf", "metadata": "http://x/s.pdf"}


def stream_body(name: str, **links: Any) -> dict[str, Any]:
    body = datastream(name)
    del body["Sensor"], body["ObservedProperty"]
    return {**body, **links}


# ------------------------------------------------------------------------------------------- JSON


def test_json_batch_groups_references_and_dependencies(sta: Sta, station: dict[str, int]) -> None:
    t, prop = station["thing"], station["prop"]
    got = run(
        sta,
        {"id": "read", "method": "get", "url": f"Things({t})?$select=name"},
        {"id": "sensor1", "atomicityGroup": "g1", "method": "post", "url": "Sensors", "body": sensor_body("S1")},
        {
            "id": "ds1",
            "atomicityGroup": "g1",
            "method": "POST",
            "url": f"Things({t})/Datastreams",
            "body": stream_body("D1", Sensor={"@iot.id": "$sensor1"}, ObservedProperty={"@iot.id": prop}),
        },
        {
            "id": "ds2",
            "atomicityGroup": "g1",
            "method": "post",
            "url": "$sensor1/Datastreams",
            "body": stream_body("D2", Thing={"@iot.id": t}, ObservedProperty={"@iot.id": prop}),
        },
        {"id": "rename", "atomicityGroup": "g1", "method": "patch", "url": f"/sta/v1.1/Things({t})", "body": {"name": "Air-1b"}},
        {"id": "obs", "dependsOn": ["g1"], "method": "post", "url": "$ds1/Observations", "body": {"phenomenonTime": iso(T0), "result": 4.5}},
        {"id": "streams", "dependsOn": ["g1"], "method": "get", "url": "$sensor1/Datastreams?$orderby=name&$select=name"},
        {"id": "value", "method": "get", "url": "$obs/result/$value"},
        {"id": "missing", "method": "get", "url": "Things(999999)"},
    )  # fmt: skip
    assert got["read"] == {"id": "read", "status": 200, "body": {"name": "Air-1"}}
    sensor = new_id(got["sensor1"])
    assert got["sensor1"]["atomicityGroup"] == "g1"
    assert got["sensor1"]["headers"]["location"] == f"http://testserver{B}/Sensors({sensor})"
    d1, d2 = new_id(got["ds1"]), new_id(got["ds2"])
    assert got["rename"]["status"] == 200 and "body" not in got["rename"]
    assert sta.get(f"/Datastreams({d1})/Sensor")["@iot.id"] == sensor, (
        "@iot.id $sensor1 linked the new Sensor"
    )
    assert sta.get(f"/Datastreams({d2})/Sensor")["@iot.id"] == sensor, "$sensor1/Datastreams created under it"
    assert sta.get(f"/Things({t})")["name"] == "Air-1b"
    obs = new_id(got["obs"])
    assert sta.get(f"/Observations({obs})/Datastream")["@iot.id"] == d1
    assert got["streams"]["body"]["value"] == [{"name": "D1"}, {"name": "D2"}]
    assert got["value"]["body"] == "4.5" and got["value"]["headers"]["content-type"] == "text/plain"
    assert got["missing"]["status"] == 404
    assert got["missing"]["body"] == {
        "code": 404,
        "type": "error",
        "message": got["missing"]["body"]["message"],
    }


def test_atomicity_group_is_all_or_nothing(sta: Sta, station: dict[str, int], app: App) -> None:
    t, ds, prop = station["thing"], station["ds"], station["prop"]
    things_before = sta.ids("/Things")
    late = iso(datetime.now(UTC) + timedelta(days=2))
    got = run(
        sta,
        {"id": "a", "atomicityGroup": "g", "method": "post", "url": "Things", "body": {"name": "kept?"}},
        {"id": "b", "atomicityGroup": "g", "method": "patch", "url": f"Things({t})", "body": {"name": "renamed?"}},
        {"id": "c", "atomicityGroup": "g", "method": "post", "url": "Sensors", "body": {"name": "no encodingType"}},
        {"id": "d", "atomicityGroup": "g", "method": "post", "url": "Things", "body": {"name": "never tried"}},
        {"id": "after", "dependsOn": ["g"], "method": "get", "url": "Things"},
        {"id": "ref", "method": "get", "url": "$a"},
        {"id": "free", "method": "get", "url": f"Things({t})?$select=name"},
        # An Observation the pipeline would refuse fails its group inside the transaction, so the
        # Datastream created beside it is rolled back too.
        {"id": "ds", "atomicityGroup": "h", "method": "post", "url": f"Things({t})/Datastreams",
         "body": stream_body("D", Sensor={"@iot.id": station["sensor"]}, ObservedProperty={"@iot.id": prop})},
        {"id": "o", "atomicityGroup": "h", "method": "post", "url": "$ds/Observations",
         "body": {"phenomenonTime": late, "result": 1}},
        {"id": "o2", "atomicityGroup": "h2", "method": "post", "url": f"Datastreams({ds})/Observations",
         "body": {"phenomenonTime": iso(T0), "result": 2}},
        {"id": "o3", "atomicityGroup": "h2", "method": "get", "url": "$o2"},
    )  # fmt: skip
    assert got["c"]["status"] == 400 and "encodingType" in got["c"]["body"]["message"]
    for rid in ("a", "b", "d"):
        assert got[rid]["status"] == 424, got[rid]
        assert "'c'" in got[rid]["body"]["message"] and got[rid]["atomicityGroup"] == "g"
    assert got["after"]["status"] == 424
    assert got["ref"]["status"] == 424, "a reference to a rolled-back request fails as its dependency"
    assert got["free"]["body"] == {"name": "Air-1"}, "the PATCH of the failed group was rolled back"
    assert sta.ids("/Things") == things_before
    assert got["o"]["status"] == 400 and "future" in got["o"]["body"]["message"]
    assert got["ds"]["status"] == 424
    assert [d["name"] for d in sta.get(f"/Things({t})/Datastreams")["value"]] == ["PM10 at City Hall"]
    assert got["o2"]["status"] == 424 and got["o3"]["status"] == 400
    assert "stored when the group commits" in got["o3"]["body"]["message"]
    assert sta.get(f"/Datastreams({ds})/Observations")["value"] == []


def test_batch_applies_each_requests_own_access_rules(client: TestClient, sta: Sta, app: App) -> None:
    """A batch is no way around the checks of the single routes: anonymous writes are refused
    (401), hidden data stays hidden (404, as for a missing id), restricted reads are audited."""
    from citydesk.auth.models import audit_log

    public = sta.post("/Things", thing("Open", CITY_HALL, datastream("open")))
    secret = sta.post(
        "/Things",
        thing("Secret", CITY_HALL, datastream("restricted", properties={"disclosure": "restricted"})),
    )
    hidden = sta.first(f"/Things({secret})/Datastreams")
    got = run(
        sta,
        {"id": "list", "method": "get", "url": "Datastreams?$select=name"},
        {"id": "hidden", "method": "get", "url": f"Datastreams({hidden})"},
        {"id": "write", "method": "post", "url": "Things", "body": {"name": "anonymous"}},
        {"id": "grouped", "atomicityGroup": "g", "method": "patch", "url": f"Things({public})", "body": {"name": "x"}},
        {"id": "obs", "method": "post", "url": f"Datastreams({hidden})/Observations", "body": {"result": 1}},
        auth=False,
    )  # fmt: skip
    assert got["list"]["body"]["value"] == [{"name": "open"}]
    assert got["hidden"]["status"] == 404
    assert got["write"]["status"] == 401 and got["write"]["body"]["message"] == "sign-in required"
    assert got["write"]["headers"]["www-authenticate"].startswith("Basic")
    assert got["grouped"]["status"] == 401 and got["obs"]["status"] == 401
    assert [t["name"] for t in sta.get("/Things")["value"]] == ["Open", "Secret"]

    before = _audits(app, audit_log)
    got = run(
        sta,
        {"id": "one", "method": "get", "url": f"Datastreams({hidden})"},
        {"id": "grouped", "atomicityGroup": "g", "method": "get", "url": f"Datastreams({hidden})/name"},
    )
    assert got["one"]["body"]["name"] == "restricted" and got["grouped"]["body"] == {"name": "restricted"}
    assert _audits(app, audit_log)[len(before) :] == [
        ("sta.read", f"Datastreams({hidden})", "1 restricted entities"),
        ("sta.read", f"Datastreams({hidden})/name", "1 restricted entities"),
    ]


def _audits(app: App, table: Any) -> list[tuple[str, str, str]]:
    with app.engine.connect() as conn:
        return [(r.action, r.target, r.detail) for r in conn.execute(select(table).order_by(table.c.id))]


def test_json_batch_continue_on_error_and_put(sta: Sta, station: dict[str, int]) -> None:
    t = station["thing"]
    requests = [
        {"id": "bad", "method": "get", "url": "Thingz"},
        {"id": "put", "method": "put", "url": f"Things({t})", "body": {"name": "replaced"}},
        {"id": "ref", "method": "put", "url": f"Datastreams({station['ds']})/Sensor/$ref",
         "body": {"@iot.id": "$s"}},
    ]  # fmt: skip
    got = run(sta, *requests, prefer="continue-on-error=false")
    assert list(got) == ["bad"], "processing stops at the first error when the client asks for it"
    got = run(
        sta,
        {"id": "s", "method": "post", "url": "Sensors", "body": sensor_body("S2")},
        *requests,
    )
    assert got["bad"]["status"] == 404 and got["put"]["status"] == 200 and got["ref"]["status"] == 204
    replaced = sta.get(f"/Things({t})")
    assert replaced["name"] == "replaced" and "properties" not in replaced and replaced["description"] == ""
    assert sta.get(f"/Datastreams({station['ds']})/Sensor")["@iot.id"] == new_id(got["s"])


def test_create_observations_and_json_patch_in_a_batch(sta: Sta, station: dict[str, int]) -> None:
    ds = station["ds"]
    data = [{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"],
             "dataArray": [[iso(T0), 1], [iso(T0 + timedelta(hours=1)), 2]]}]  # fmt: skip
    got = run(
        sta,
        {"id": "rows", "method": "post", "url": "CreateObservations", "body": data},
        {"id": "grouped", "atomicityGroup": "g", "method": "post", "url": "CreateObservations", "body": data},
        {"id": "jp", "method": "patch", "url": f"Things({station['thing']})", "body": [
            {"op": "add", "path": "/properties/height", "value": 3}],
         "headers": {"content-type": "application/json-patch+json"}},
    )  # fmt: skip
    assert got["rows"]["status"] == 201 and len(got["rows"]["body"]) == 2
    assert got["rows"]["headers"]["location"] == got["rows"]["body"][0]
    assert got["grouped"]["status"] == 400 and "atomicity group" in got["grouped"]["body"]["message"]
    assert got["jp"]["status"] == 200
    assert sta.get(f"/Things({station['thing']})")["properties"] == {"owner": "seoul", "height": 3}
    assert [o["result"] for o in sta.get(f"/Datastreams({ds})/Observations")["value"]] == [1, 2]


# -------------------------------------------------------------------------------------- multipart


def _part(method: str, url: str, body: Any = None, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\n" + (f"Content-ID: {content_id}\r\n" if content_id else "")
    request = f"{method} {url} HTTP/1.1\r\nHost: testserver\r\n"
    if body is None:
        return head + "\r\n" + request + "\r\n"
    text = orjson.dumps(body).decode()
    return (
        head
        + "\r\n"
        + request
        + f"Content-Type: application/json\r\nContent-Length: {len(text)}\r\n\r\n{text}"
    )


def _multipart(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--"


def _changeset(boundary: str, parts: list[str]) -> str:
    return f"Content-Type: multipart/mixed;boundary={boundary}\r\n\r\n" + _multipart(boundary, parts)


def multipart(sta: Sta, body: str, **headers: str) -> list[Any]:
    """Post a multipart batch; its response parts as (Content-ID, status, headers, body) or, for a
    change set, a list of those."""
    r = sta.c.post(
        f"{B}/$batch",
        content=body.encode(),
        headers={"content-type": "multipart/mixed;boundary=batch_36522ad7", **headers},
        auth=sta.auth,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    message = message_from_bytes(
        b"Content-Type: " + r.headers["content-type"].encode() + b"\r\n\r\n" + r.content, policy=HTTP
    )
    return [_read_part(cast(EmailMessage, p)) for p in cast(EmailMessage, message).iter_parts()]


def _read_part(part: EmailMessage) -> Any:
    if part.is_multipart():
        return [_read_part(cast(EmailMessage, p)) for p in part.iter_parts()]
    raw = cast(bytes, part.get_payload(decode=True))
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    parsed = (
        orjson.loads(body) if body and headers.get("content-type") == "application/json" else body.decode()
    )
    return part.get("Content-ID"), int(status_line.split()[1]), headers, parsed


def test_multipart_batch_as_in_the_standard(sta: Sta, station: dict[str, int]) -> None:
    """The example of SensorThings 1.1 §11.2.1 and §11.2.2 (as the OGC test suite sends them)."""
    t, prop = station["thing"], station["prop"]
    body = _multipart("batch_36522ad7", [
        _part("GET", f"/sta/v1.1/Things({t})?$select=name"),
        _changeset("changeset_77162fcd", [
            _part("POST", "/sta/v1.1/Things", {"name": "New", "description": "Thing"}, "1"),
            _part("PATCH", f"/sta/v1.1/Things({t})", {"name": "Patched"}, "2"),
            _part("POST", "Sensors", sensor_body("DS18B20"), "sensor1"),
            _part("POST", f"http://testserver/sta/v1.1/Things({t})/Datastreams",
                  stream_body("T5", Sensor={"@iot.id": "$sensor1"}, ObservedProperty={"@iot.id": prop}), "any"),
        ]),
        _part("GET", "Things?$count=true&$filter=name%20eq%20'Patched'&$select=name"),
        _part("GET", "Things(999999)"),
    ])  # fmt: skip
    first, changeset, search, missing = multipart(sta, body)
    assert first == (None, 200, {"content-type": "application/json"}, {"name": "Air-1"})
    assert [(cid, status) for cid, status, _, _ in changeset] == [
        ("1", 201),
        ("2", 200),
        ("sensor1", 201),
        ("any", 201),
    ]
    new_thing = changeset[0][2]["location"]
    assert sta.get(new_thing.removeprefix(f"http://testserver{B}"))["name"] == "New"
    ds = changeset[3][2]["location"].removeprefix(f"http://testserver{B}")
    assert sta.get(f"{ds}/Sensor")["name"] == "DS18B20"
    assert search[3] == {"@iot.count": 1, "value": [{"name": "Patched"}]}
    assert missing[1] == 404 and missing[3]["type"] == "error"


def test_multipart_failed_changeset_and_stop_on_error(sta: Sta, station: dict[str, int]) -> None:
    t = station["thing"]
    body = _multipart("batch_36522ad7", [
        _changeset("cs_1", [
            _part("POST", "Things", {"name": "rolled back"}, "1"),
            _part("POST", "Sensors", {"name": "no encodingType"}, "2"),
        ]),
        _part("PATCH", f"Things({t})", {"name": "after"}),
        "Content-Type: application/http\r\n\r\nPOST Things HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{broken",
    ])  # fmt: skip
    parts = multipart(sta, body)
    assert len(parts) == 1, "processing stops at the first failure by default (OData 4.0 §11.7)"
    cid, status, _, failure = parts[0]
    assert (cid, status) == ("2", 400), "a failed change set is answered by one part: its error"
    assert "encodingType" in failure["message"]
    assert [x["name"] for x in sta.get("/Things")["value"]] == ["Air-1"]
    parts = multipart(sta, body, prefer="odata.continue-on-error")
    assert [p[1] for p in parts] == [400, 200, 400]
    assert "not valid JSON" in parts[2][3]["message"], "a bad part fails alone"
    assert sta.get(f"/Things({t})")["name"] == "after"


# ----------------------------------------------------------------------------------------- errors

BATCH_ERRORS: list[tuple[str, str, str, int, str]] = [
    # (case, content type, body, status, fragment of the message)
    ("not JSON", "application/json", '{"requests": [', 400, "not valid JSON"),
    ("no requests", "application/json", '{"request": []}', 400, '{"requests"'),
    ("request not an object", "application/json", '{"requests": [1]}', 400, "requests[0]"),
    ("no url", "application/json", '{"requests": [{"id": "1", "method": "get"}]}', 400, "url"),
    ("numeric id", "application/json", '{"requests": [{"id": 1, "method": "get", "url": "Things"}]}', 400, "id"),
    ("unknown member", "application/json", '{"requests": [{"id": "1", "method": "get", "url": "Things", "if": "x"}]}', 400, "'if'"),
    ("bad method", "application/json", '{"requests": [{"id": "1", "method": "head", "url": "Things"}]}', 400, "HEAD"),
    ("body on GET", "application/json", '{"requests": [{"id": "1", "method": "get", "url": "Things", "body": {}}]}', 400, "no body"),
    ("duplicate id", "application/json", '{"requests": [{"id": "1", "method": "get", "url": "Things"}, {"id": "1", "method": "get", "url": "Things"}]}', 400, "used twice"),
    ("group not adjacent", "application/json", '{"requests": [{"id": "1", "atomicityGroup": "g", "method": "get", "url": "Things"}, {"id": "2", "method": "get", "url": "Things"}, {"id": "3", "atomicityGroup": "g", "method": "get", "url": "Things"}]}', 400, "adjacent"),
    ("forward dependency", "application/json", '{"requests": [{"id": "1", "dependsOn": ["2"], "method": "get", "url": "Things"}, {"id": "2", "method": "get", "url": "Things"}]}', 400, "no earlier request"),
    ("depends on own group", "application/json", '{"requests": [{"id": "1", "atomicityGroup": "g", "dependsOn": ["g"], "method": "get", "url": "Things"}]}', 400, "no earlier"),
    ("depends into a group", "application/json", '{"requests": [{"id": "1", "atomicityGroup": "g", "method": "get", "url": "Things"}, {"id": "2", "dependsOn": ["1"], "method": "get", "url": "Things"}]}', 400, "atomicity group"),
    ("group named like a request", "application/json", '{"requests": [{"id": "g", "method": "get", "url": "Things"}, {"id": "2", "atomicityGroup": "g", "method": "get", "url": "Things"}]}', 400, "both a request and an atomicity group"),
    ("too many", "application/json", orjson.dumps({"requests": [{"id": str(i), "method": "get", "url": "Things"} for i in range(1001)]}).decode(), 400, "at most 1000"),
    ("wrong content type", "text/plain", "GET Things", 415, "application/json or multipart/mixed"),
    ("no boundary", "multipart/mixed", "--x\r\n\r\n--x--", 400, "boundary"),
    ("part not HTTP", "multipart/mixed;boundary=x", "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--", 400, "application/http"),
    ("no request line", "multipart/mixed;boundary=x", "--x\r\nContent-Type: application/http\r\n\r\nhello\r\n--x--", 400, "request line"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "kind", "body", "status", "fragment"), BATCH_ERRORS, ids=[c[0] for c in BATCH_ERRORS]
)
def test_malformed_batches_are_refused_whole(
    batch_client: tuple[TestClient, tuple[str, str]],
    case: str,
    kind: str,
    body: str,
    status: int,
    fragment: str,
) -> None:
    client, auth = batch_client
    r = client.post(f"{B}/$batch", content=body.encode(), headers={"content-type": kind}, auth=auth)
    message = error(r, status, fragment)
    assert "Traceback" not in message and len(message) < 500
    assert ok(client.get(f"{B}/Things", auth=auth))["value"] == [], "nothing ran"


@pytest.fixture(scope="module")
def batch_client(
    module_client: TestClient, module_staff: tuple[str, str]
) -> Iterator[tuple[TestClient, tuple[str, str]]]:
    yield module_client, module_staff


def test_references_that_cannot_be_followed(sta: Sta, station: dict[str, int]) -> None:
    got = run(
        sta,
        {"id": "s", "method": "post", "url": "Sensors", "body": sensor_body("S")},
        {"id": "list", "method": "get", "url": "Things"},
        {"id": "wrong set", "method": "post", "url": f"Things({station['thing']})/Datastreams",
         "body": stream_body("D", Sensor={"@iot.id": station["sensor"]}, ObservedProperty={"@iot.id": "$s"})},
        {"id": "collection", "method": "get", "url": "$list/Datastreams"},
        {"id": "unknown", "method": "get", "url": "$nobody"},
        {"id": "outside", "method": "get", "url": "/other/Things"},
        {"id": "nested", "method": "post", "url": "$batch", "body": {"requests": []}},
    )  # fmt: skip
    assert (
        got["wrong set"]["status"] == 400
        and "is a Sensor, not one of the ObservedProperties" in got["wrong set"]["body"]["message"]
    )
    assert got["collection"]["status"] == 400 and "$list" in got["collection"]["body"]["message"]
    assert got["unknown"]["status"] == 400 and got["outside"]["status"] == 400
    assert got["nested"]["status"] == 400


def test_service_root_lists_batch_once_and_no_multidatastream(client: TestClient) -> None:
    conformance = ok(client.get(B))["serverSettings"]["conformance"]
    assert conformance.count(BATCH) == 1
    assert not any("multi-datastream" in c.lower() or "multidatastream" in c.lower() for c in conformance)
    assert len(conformance) == len(set(conformance))
