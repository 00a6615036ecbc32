"""An internal Datastream, and its Observations, cannot be reached anonymously by any path.

One world per database: a public Thing with a public and an internal Datastream that share the
Thing, the Sensor, the ObservedProperty and the generated FeatureOfInterest, so every navigation
that could lead from public data into internal data exists. Each row of ``PATHS`` is read twice:
by the official (who must see the internal data there: the path is real) and anonymously (who
must get a 4xx, or a 200 that mentions none of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citydesk.web.app import App

B = "/sta/v1.1"
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
T0 = datetime(2025, 5, 1, tzinfo=UTC)
WINDOW = "start=2025-04-30T00:00:00Z&end=2025-05-03T00:00:00Z"
SECRET_VALUES = (9001, 9002, 9003)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(r: Any) -> int:
    assert r.status_code == 201, r.text
    return int(r.headers["location"].rsplit("(", 1)[1].rstrip(")"))


@pytest.fixture(scope="module")
def world(
    module_client: TestClient, module_staff: tuple[str, str], module_app: App
) -> Iterator[dict[str, Any]]:
    c, auth = module_client, module_staff

    def post(path: str, body: Any) -> int:
        return _created(c.post(B + path, json=body, auth=auth))

    thing = post(
        "/Things",
        {
            "name": "Station",
            "description": "public station",
            "Locations": [
                {
                    "name": "Site",
                    "description": "",
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [126.978, 37.5665]},
                }
            ],
        },
    )
    sensor = post("/Sensors", {"name": "Shared sensor", "encodingType": "application/pdf", "metadata": "m"})
    prop = post("/ObservedProperties", {"name": "PM10", "definition": "http://dbpedia.org/page/Particulates"})

    def stream(name: str, disclosure: str) -> int:
        return post(
            "/Datastreams",
            {
                "name": name,
                "description": "",
                "observationType": MEASUREMENT,
                "unitOfMeasurement": {"name": "ug", "symbol": "ug/m3", "definition": "x"},
                "properties": {"disclosure": disclosure},
                "Thing": {"@iot.id": thing},
                "Sensor": {"@iot.id": sensor},
                "ObservedProperty": {"@iot.id": prop},
            },
        )

    public, secret, restricted = (
        stream("Open stream", "public"),
        stream("SECRET-STREAM", "internal"),
        stream("RESTRICTED-STREAM", "restricted"),
    )

    def observe(ds: int, values: tuple[int, ...], minute: int) -> list[str]:
        rows = [[_iso(T0 + timedelta(minutes=minute + i)), v] for i, v in enumerate(values)]
        r = c.post(
            B + "/CreateObservations",
            json=[
                {"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime", "result"], "dataArray": rows}
            ],
            auth=auth,
        )
        assert r.status_code == 201 and "error" not in r.json(), r.text
        return [link.rsplit("/", 1)[1] for link in r.json()]

    observe(public, (1, 2, 3), 0)
    secret_obs = observe(secret, SECRET_VALUES, 10)
    observe(restricted, (7001,), 20)
    own_foi = post(
        "/FeaturesOfInterest",
        {
            "name": "Secret spot",
            "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": [127.0, 37.55]},
        },
    )
    extra = post(
        "/Observations",
        {
            "result": 9004,
            "phenomenonTime": _iso(T0 + timedelta(minutes=30)),
            "Datastream": {"@iot.id": secret},
            "FeatureOfInterest": {"@iot.id": own_foi},
        },
    )
    secret_obs.append(f"Observations({extra})")
    foi = c.get(f"{B}/{secret_obs[0]}/FeatureOfInterest", auth=auth).json()["@iot.id"]
    loc = c.get(f"{B}/Things({thing})/Locations", auth=auth).json()["value"][0]["@iot.id"]
    yield {
        "thing": thing,
        "sensor": sensor,
        "prop": prop,
        "public": public,
        "secret": secret,
        "restricted": restricted,
        "obs": secret_obs,
        "foi": foi,
        "own_foi": own_foi,
        "loc": loc,
        "client": c,
        "auth": auth,
        "app": module_app,
    }


def markers(w: dict[str, Any]) -> list[str]:
    """Strings that only appear in a response that reveals the internal Datastream or its data."""
    return [
        "SECRET-STREAM",
        f"Datastreams({w['secret']})",
        *(str(v) for v in (*SECRET_VALUES, 9004)),
        *w["obs"],
        "RESTRICTED-STREAM",
        "7001",
    ]


# (what, path with {placeholders}, what the official sees there that proves the path is real)
PATHS: list[tuple[str, str, str]] = [
    ("top-level list", "/Datastreams", "SECRET-STREAM"),
    ("by id", "/Datastreams({secret})", "SECRET-STREAM"),
    ("property", "/Datastreams({secret})/name", "SECRET-STREAM"),
    ("$value", "/Datastreams({secret})/name/$value", "SECRET-STREAM"),
    ("its Thing", "/Datastreams({secret})/Thing", "Station"),
    ("its Sensor", "/Datastreams({secret})/Sensor", "Shared sensor"),
    ("its ObservedProperty $value", "/Datastreams({secret})/ObservedProperty/name/$value", "PM10"),
    ("its Observations", "/Datastreams({secret})/Observations", "9001"),
    ("its Observations $ref", "/Datastreams({secret})/Observations/$ref", "{obs0}"),
    ("one of its Observations", "/Datastreams({secret})/Observations({obs0_id})", "9001"),
    ("Observations list", "/Observations?$top=1000", "9001"),
    ("Observations $ref", "/Observations/$ref?$top=1000", "{obs0}"),
    ("Observation by id", "/{obs0}", "9001"),
    ("Observation result $value", "/{obs0}/result/$value", "9001"),
    ("Observation → Datastream", "/{obs0}/Datastream", "SECRET-STREAM"),
    ("Observation → Datastream $ref", "/{obs0}/Datastream/$ref", "Datastreams({secret})"),
    ("Observation → FoI", "/{obs0}/FeatureOfInterest", "Site"),
    ("Thing → Datastreams", "/Things({thing})/Datastreams", "SECRET-STREAM"),
    ("Thing → Datastreams $ref", "/Things({thing})/Datastreams/$ref", "Datastreams({secret})"),
    ("Thing → Datastream(id)", "/Things({thing})/Datastreams({secret})", "SECRET-STREAM"),
    ("Thing → Datastream → Observations", "/Things({thing})/Datastreams({secret})/Observations", "9002"),
    ("Sensor → Datastreams", "/Sensors({sensor})/Datastreams", "SECRET-STREAM"),
    ("ObservedProperty → Datastreams", "/ObservedProperties({prop})/Datastreams", "SECRET-STREAM"),
    ("FoI → Observations", "/FeaturesOfInterest({foi})/Observations?$top=1000", "9003"),
    ("own FoI → Observations", "/FeaturesOfInterest({own_foi})/Observations", "9004"),
    ("Location → Things → Datastreams", "/Locations({loc})/Things({thing})/Datastreams", "SECRET-STREAM"),
    ("$expand on Things", "/Things?$expand=Datastreams", "SECRET-STREAM"),
    ("$expand two deep", "/Things?$expand=Datastreams($expand=Observations)", "9001"),
    ("$expand three deep", "/Locations?$expand=Things($expand=Datastreams($expand=Observations))", "9002"),
    ("$expand path syntax", "/Sensors?$expand=Datastreams/Observations", "9003"),
    (
        "$expand from ObservedProperty",
        "/ObservedProperties({prop})?$expand=Datastreams($select=name)",
        "SECRET-STREAM",
    ),
    ("$expand from FoI", "/FeaturesOfInterest?$expand=Observations($expand=Datastream)", "SECRET-STREAM"),
    ("$expand on an Observation", "/Observations?$expand=Datastream&$top=1000", "SECRET-STREAM"),
    (
        "$expand with $count",
        "/Things({thing})?$expand=Datastreams($count=true;$top=0)",
        '"Datastreams@iot.count":3',
    ),
    (
        "$expand Observations $count",
        "/Datastreams?$expand=Observations($count=true;$top=0)",
        '"Observations@iot.count":4',
    ),
    ("$filter through Datastream/name", "/Observations?$filter=Datastream/name eq 'SECRET-STREAM'", "9001"),
    ("$filter through Datastream/@iot.id", "/Observations?$filter=Datastream/@iot.id eq {secret}", "9001"),
    ("$filter through Datastream/id", "/Observations?$filter=Datastream/id eq {secret}", "9001"),
    ("$filter on result", "/Observations?$filter=result gt 9000", "9001"),
    ("$filter on Datastream name", "/Datastreams?$filter=name eq 'SECRET-STREAM'", "SECRET-STREAM"),
    ("$filter on Thing's streams", "/Datastreams?$filter=Thing/name eq 'Station'", "SECRET-STREAM"),
    ("$orderby", "/Observations?$orderby=result desc&$top=1", "9004"),
    ("$count", "/Observations?$count=true&$top=0", '"@iot.count":8'),
    ("dataArray", "/Observations?$resultFormat=dataArray&$top=1000", "Datastreams({secret})"),
    ("$aggregate", "/Datastreams({secret})/Observations/$aggregate?interval=hour&" + WINDOW, '"max":9004'),
    (
        "daily $aggregate",
        "/Datastreams({secret})/Observations/$aggregate?interval=day&" + WINDOW,
        '"max":9004',
    ),
    ("/api/hub/latest", "/api/hub/latest", "9004"),
    ("/api/hub/latest by property", "/api/hub/latest?observed_property=PM10", "9004"),
    (
        "/api/hub/aggregates by datastream",
        "/api/hub/aggregates?observed_property=PM10&group_by=datastream&" + WINDOW,
        "9004",
    ),
    ("/api/hub/aggregates by district", "/api/hub/aggregates?observed_property=PM10&" + WINDOW, "9004"),
    (
        "/api/hub/aggregates citywide",
        "/api/hub/aggregates?observed_property=PM10&group_by=none&interval=day&" + WINDOW,
        "9004",
    ),
]


def _url(w: dict[str, Any], path: str) -> str:
    fill = {k: str(v) for k, v in w.items() if isinstance(v, int)}
    fill["obs0"] = w["obs"][0]
    fill["obs0_id"] = w["obs"][0].split("(")[1].rstrip(")")
    for key, value in fill.items():
        path = path.replace("{" + key + "}", value)
    return path if path.startswith("/api/") else B + path


@pytest.mark.parametrize(("what", "path", "proof"), PATHS, ids=[p[0] for p in PATHS])
def test_internal_datastream_is_unreachable_anonymously(
    world: dict[str, Any], what: str, path: str, proof: str
) -> None:
    c: TestClient = world["client"]
    url = _url(world, path)
    staff = c.get(url, auth=world["auth"])
    assert staff.status_code == 200, (what, staff.text)
    assert _url(world, proof).removeprefix(B) in staff.text, (
        f"{what}: the official must see it ({staff.text[:300]})"
    )
    anon = c.get(url)
    assert anon.status_code in (200, 404), (what, anon.text)
    if anon.status_code == 404:
        assert anon.json()["type"] == "error"
        return
    leaked = [m for m in markers(world) if m in anon.text]
    assert not leaked, f"{what}: anonymous response reveals {leaked}: {anon.text[:400]}"
    if proof not in PUBLIC_PROOFS:
        assert _url(world, proof).removeprefix(B) not in anon.text, f"{what}: {anon.text[:400]}"


PUBLIC_PROOFS = {"Station", "Shared sensor", "PM10", "Site"}
"""Proofs that name public entities: an anonymous reply may contain them (reached another way)."""


def test_hidden_and_missing_look_the_same(world: dict[str, Any]) -> None:
    """An anonymous 404 for an internal id says exactly what it says for an id that does not exist."""
    c: TestClient = world["client"]
    missing = 999_999
    for template in (
        "/Datastreams({})",
        "/Datastreams({})/Observations",
        "/Datastreams({})/Observations/$aggregate",
        "/Datastreams({})/name/$value",
        "/Things({t})/Datastreams({})",
    ):
        hidden = c.get(B + template.replace("{t}", str(world["thing"])).format(world["secret"]))
        absent = c.get(B + template.replace("{t}", str(world["thing"])).format(missing))
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["message"] == absent.json()["message"].replace(
            str(missing), str(world["secret"])
        )


def test_public_counts_and_expansions_exclude_internal_data(world: dict[str, Any]) -> None:
    c: TestClient = world["client"]
    thing = c.get(f"{B}/Things({world['thing']})", params={"$expand": "Datastreams($count=true)"}).json()
    assert thing["Datastreams@iot.count"] == 1
    assert [d["name"] for d in thing["Datastreams"]] == ["Open stream"]
    assert c.get(f"{B}/Observations", params={"$count": "true"}).json()["@iot.count"] == 3
    assert c.get(f"{B}/Datastreams", params={"$count": "true"}).json()["@iot.count"] == 1
    # The public FeatureOfInterest is still there; only the internal Observations at it are not.
    foi = c.get(
        f"{B}/FeaturesOfInterest({world['foi']})", params={"$expand": "Observations($count=true)"}
    ).json()
    assert foi["Observations@iot.count"] == 3


def test_department_staff_see_internal_but_not_restricted(world: dict[str, Any]) -> None:
    from citydesk.auth import Role, create_user

    app: App = world["app"]
    create_user(app.engine, "park.dept", Role.DEPARTMENT_STAFF, "department password", now=datetime.now(UTC))
    c: TestClient = world["client"]
    auth = ("park.dept", "department password")
    names = [d["name"] for d in c.get(f"{B}/Datastreams", auth=auth).json()["value"]]
    assert names == ["Open stream", "SECRET-STREAM"]
    assert c.get(f"{B}/Datastreams({world['restricted']})/Observations", auth=auth).status_code == 404
    text = c.get(f"{B}/Things", params={"$expand": "Datastreams($expand=Observations)"}, auth=auth).text
    assert "9001" in text and "7001" not in text and "RESTRICTED-STREAM" not in text
    # Writes that would reach data above the writer's levels are refused like missing data.
    r = c.post(f"{B}/Datastreams({world['restricted']})/Observations", json={"result": 1}, auth=auth)
    assert r.status_code == 404, r.text
    r = c.post(
        f"{B}/Observations", json={"result": 1, "Datastream": {"@iot.id": world["restricted"]}}, auth=auth
    )
    assert r.status_code == 400 and str(world["restricted"]) in r.json()["message"]


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_anonymous_writes_are_refused_before_any_lookup(world: dict[str, Any], method: str) -> None:
    """No write reveals whether an internal entity exists: anonymous gets 401 for it and for nothing."""
    c: TestClient = world["client"]
    for target in (world["secret"], 999_999):
        path = f"{B}/Datastreams({target})" + ("/Observations" if method == "POST" else "")
        r = c.request(method, path, json={"result": 1} if method != "DELETE" else None)
        assert r.status_code == 401, r.text
        assert r.json()["message"] == "sign-in required"


@pytest.mark.parametrize("who", ["anonymous", "official"])
def test_batch_reads_show_exactly_what_single_reads_show(world: dict[str, Any], who: str) -> None:
    """Every SensorThings path above, read inside one ``$batch`` (every other one in an atomicity
    group of its own, which reads in the group's transaction), answers as the single route does for
    the same caller: a batch is no way around the disclosure rules."""
    c: TestClient = world["client"]
    auth = world["auth"] if who == "official" else None
    urls = [_url(world, p) for _, p, _ in PATHS if not p.startswith("/api/") and "$aggregate" not in p]
    requests = [
        {"id": str(i), "method": "get", "url": url.removeprefix(B + "/")}
        | ({"atomicityGroup": f"g{i}"} if i % 2 else {})
        for i, url in enumerate(urls)
    ]
    r = c.post(f"{B}/$batch", json={"requests": requests}, auth=auth)
    assert r.status_code == 200, r.text
    answers = {a["id"]: a for a in r.json()["responses"]}
    for i, url in enumerate(urls):
        single = c.get(url, auth=auth)
        answer = answers[str(i)]
        assert answer["status"] == single.status_code, (url, answer)
        expected = single.text if url.endswith("$value") and single.status_code == 200 else single.json()
        assert answer["body"] == expected, url
