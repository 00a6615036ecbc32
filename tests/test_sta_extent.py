"""A Datastream's ``observedArea`` (the envelope of its Observations' FeaturesOfInterest) and
``resultTime`` (the interval of their result times), computed when read, on SQLite and PostgreSQL:
absent without Observations, in ``$select`` and ``$expand``, ``resultTime`` in ``$filter`` and
``$orderby``, and only FeaturesOfInterest the caller may see counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_sta_api import CITY_HALL, GANGNAM, T0, B, Sta, datastream, error, iso, ok, thing


@pytest.fixture
def sta(client: TestClient, staff: tuple[str, str]) -> Sta:
    return Sta(client, staff)


def feature(name: str, point: list[float], **props: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "encodingType": "application/geo+json",
        "feature": {"type": "Point", "coordinates": point},
    }
    return body | ({"properties": props} if props else {})


def test_observed_area_and_result_time(sta: Sta, client: TestClient) -> None:
    t = sta.post(
        "/Things", thing("Air-1", CITY_HALL, datastream("fixed"), datastream("mobile"), datastream("idle"))
    )
    streams = {d["name"]: d["@iot.id"] for d in sta.get(f"/Things({t})/Datastreams")["value"]}
    fixed, mobile, idle = streams["fixed"], streams["mobile"], streams["idle"]
    # fixed: the FeatureOfInterest generated from the Thing's Location; no result times.
    sta.observations(fixed, [[iso(T0), 1], [iso(T0 + timedelta(hours=1)), 2]])
    # mobile: three positions, and result times.
    secret_spot = sta.post("/FeaturesOfInterest", feature("home", [127.1, 37.6], disclosure="restricted"))
    for hour, foi in enumerate([feature("a", CITY_HALL), feature("b", GANGNAM), {"@iot.id": secret_spot}]):
        sta.post(
            f"/Datastreams({mobile})/Observations",
            {"phenomenonTime": iso(T0 + timedelta(hours=hour)), "resultTime": iso(T0 + timedelta(hours=hour, minutes=5)),
             "result": hour, "FeatureOfInterest": foi},
        )  # fmt: skip

    got = sta.get(f"/Datastreams({fixed})")
    assert got["observedArea"] == {"type": "Point", "coordinates": CITY_HALL}
    assert "resultTime" not in got, "no Observation has a resultTime"
    assert not {"observedArea", "resultTime", "phenomenonTime"} & set(sta.get(f"/Datastreams({idle})"))
    assert sta.get(f"/Datastreams({idle})/observedArea") == {"observedArea": None}

    got = sta.get(f"/Datastreams({mobile})")
    assert got["resultTime"] == f"{iso(T0 + timedelta(minutes=5))}/{iso(T0 + timedelta(hours=2, minutes=5))}"
    west, south, east, north = CITY_HALL[0], GANGNAM[1], 127.1, 37.6
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    assert got["observedArea"] == {"type": "Polygon", "coordinates": [ring]}
    # Anonymously the restricted FeatureOfInterest does not count: the box shrinks to the others.
    anon = ok(client.get(f"{B}/Datastreams({mobile})"))
    box = [
        [CITY_HALL[0], GANGNAM[1]],
        [GANGNAM[0], GANGNAM[1]],
        [GANGNAM[0], CITY_HALL[1]],
        [CITY_HALL[0], CITY_HALL[1]],
    ]
    assert anon["observedArea"] == {"type": "Polygon", "coordinates": [[*box, box[0]]]}

    # $select, $value, $expand and navigation compute them too; other reads do not show them.
    assert sta.get(f"/Datastreams({mobile})", **{"$select": "resultTime"}) == {
        "resultTime": got["resultTime"]
    }
    assert sta.get(f"/Datastreams({mobile})/resultTime") == {"resultTime": got["resultTime"]}
    text = sta.c.get(f"{B}/Datastreams({mobile})/resultTime/$value", auth=sta.auth).text
    assert text == got["resultTime"]
    assert "observedArea" not in sta.get(f"/Datastreams({mobile})", **{"$select": "name"})
    things = sta.get("/Things", **{"$expand": "Datastreams($select=name,observedArea;$orderby=name)"})[
        "value"
    ]
    assert [d.get("observedArea", {}).get("type") for d in things[0]["Datastreams"]] == [
        "Point",
        None,
        "Polygon",
    ]
    expanded = sta.get(
        "/Observations",
        **{"$filter": f"Datastream/id eq {mobile}", "$expand": "Datastream($select=resultTime)"},
    )["value"]
    assert [o["Datastream"] for o in expanded] == [{"resultTime": got["resultTime"]}] * 3

    # resultTime filters and sorts (by its start); observedArea is refused, not silently empty.
    after = iso(T0)
    assert sta.ids("/Datastreams", **{"$filter": f"resultTime ge {after}"}) == [mobile]
    assert sta.ids("/Datastreams", **{"$filter": "resultTime eq null", "$orderby": "id"}) == [fixed, idle]
    assert sta.ids("/Datastreams", **{"$orderby": "resultTime desc,id"})[0] == mobile
    message = error(
        sta.c.get(
            f"{B}/Datastreams",
            params={"$filter": "st_intersects(observedArea, geography'POINT(126.978 37.5665)')"},
            auth=sta.auth,
        ),
        400,
        "observedArea",
    )
    assert "computed" in message
    # Datetime arithmetic on the hub's own columns: how late each result came.
    late = sta.ids("/Observations", **{"$filter": "resultTime sub phenomenonTime eq duration'PT5M'"})
    assert late == sta.ids(f"/Datastreams({mobile})/Observations")
    error(
        sta.c.get(f"{B}/Things", params={"$filter": "name in ('a')"}, auth=sta.auth), 400, "SensorThings 1.1"
    )
