"""The PyPI ``frost-sta-client``, unchanged, against a real uvicorn server on a localhost port.

The client is what a city's data team would use; whatever it sends (links by ``@iot.id`` with
all their other properties, PUT of a whole entity it has read, JSON Patch, dataArrays) and
whatever it expects (the id in the ``Location`` header, ``@iot.nextLink`` paging, the error
body) must work as it is. Incompatibilities are fixed on the server, never in the client. (The
client sends no batch requests: those are tested in ``test_sta_batch``.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import frost_sta_client as fsc
import geojson
import pytest
import requests
from frost_sta_client.model.ext.data_array_value import DataArrayValue

from citydesk.web.app import App

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _service(live_server: str, auth: tuple[str, str] | None) -> fsc.SensorThingsService:
    handler = fsc.AuthHandler(username=auth[0], password=auth[1]) if auth else None
    return fsc.SensorThingsService(f"{live_server}/sta/v1.1", auth_handler=handler)


def _station(service: fsc.SensorThingsService, name: str) -> tuple[fsc.Thing, fsc.Datastream]:
    """A Thing with its Location, and a Datastream with a new Sensor and ObservedProperty."""
    location = fsc.Location(
        name=f"{name} site",
        description="by City Hall",
        encoding_type="application/geo+json",
        location=geojson.Point((126.9780, 37.5665)),
    )
    thing = fsc.Thing(
        name=name, description="air quality station", properties={"district": "Jung-gu"}, locations=[location]
    )
    service.create(thing)
    assert isinstance(thing.id, int)
    sensor = fsc.Sensor(
        name="PMS7003",
        description="laser particle counter",
        encoding_type="application/pdf",
        metadata="https://example.org/pms7003.pdf",
    )
    prop = fsc.ObservedProperty(
        name="PM10", definition="http://dbpedia.org/page/Particulates", description="particles below 10 µm"
    )
    service.create(sensor)
    service.create(prop)
    datastream = fsc.Datastream(
        name=f"PM10 at {name}",
        description="hourly PM10",
        observation_type=MEASUREMENT,
        unit_of_measurement=fsc.UnitOfMeasurement(
            name="microgram per cubic metre",
            symbol="µg/m³",
            definition="http://unitsofmeasure.org/ucum#ug/m3",
        ),
        thing=thing,
        sensor=sensor,
        observed_property=prop,
    )
    service.create(datastream)
    assert isinstance(datastream.id, int)
    return thing, datastream


def test_frost_client_create_query_page_update_delete(live_server: str, staff: tuple[str, str]) -> None:
    service = _service(live_server, staff)
    thing, datastream = _station(service, "Air-1")
    # The Datastream was sent with its Thing, Sensor and ObservedProperty as whole objects (ids and
    # all their properties): they were taken as links, not created again.
    assert len(service.sensors().query().list().entities) == 1
    assert [t.id for t in service.things().query().list()] == [thing.id]

    # Observations one by one (the Datastream is sent whole again), then a dataArray.
    for i in range(30):
        service.create(
            fsc.Observation(result=float(i), phenomenon_time=T0 + timedelta(minutes=i), datastream=datastream)
        )
    doc = fsc.DataArrayDocument()
    dav = DataArrayValue()
    dav.datastream = datastream
    dav.components = {DataArrayValue.Property.PHENOMENON_TIME, DataArrayValue.Property.RESULT}
    for i in range(30, 150):
        dav.add_observation(fsc.Observation(result=float(i), phenomenon_time=T0 + timedelta(minutes=i)))
    doc.add_data_array_value(dav)
    created = service.observations().create(doc)
    assert len(created) == 120 and all(o.self_link.startswith(live_server) for o in created)

    # filter + orderby + top, iterated across pages through @iot.nextLink.
    query = service.observations().query().filter("result ge 20").orderby("result", "DESC").top(25).count()
    page = query.list()
    assert page.count == 130 and len(page.entities) == 25 and page.next_link
    results = [o.result for o in page]
    assert results == [float(i) for i in range(149, 19, -1)]
    # Navigation from an entity the client holds.
    found = (
        datastream.get_observations().query().filter("result lt 3").orderby("phenomenonTime", "ASC").list()
    )
    assert [o.result for o in found] == [0, 1, 2]
    # expand, nested with its own options.
    [expanded] = (
        service.things()
        .query()
        .expand("Locations,Datastreams($expand=Observations($orderby=result desc;$top=2),Sensor)")
        .list()
        .entities
    )
    assert expanded.locations.entities[0].name == "Air-1 site"
    [ds] = expanded.datastreams.entities
    assert ds.sensor.name == "PMS7003"
    assert [o.result for o in ds.observations.entities] == [149, 148]
    assert ds.observations.next_link is not None

    # find + update (PUT of everything the client read, computed properties included).
    ds_found = service.datastreams().find(datastream.id)
    assert ds_found.phenomenon_time is not None and ds_found.unit_of_measurement.symbol == "µg/m³"
    ds_found.description = "hourly PM10, calibrated"
    service.update(ds_found)
    assert service.datastreams().find(datastream.id).description == "hourly PM10, calibrated"
    thing_found = service.things().find(thing.id)
    thing_found.properties = {"district": "Jung-gu", "operator": "Seoul"}
    service.update(thing_found)
    assert service.things().find(thing.id).properties == {"district": "Jung-gu", "operator": "Seoul"}
    obs = service.observations().query().filter("result eq 5").list().entities[0]
    obs.result = 500.0
    service.update(obs)
    assert service.observations().find(obs.id).result == 500
    # JSON Patch (RFC 6902), as service.patch sends it.
    service.patch(
        thing_found,
        [
            {"op": "replace", "path": "/name", "value": "Air-1b"},
            {"op": "add", "path": "/properties/height", "value": 3},
        ],
    )
    patched = service.things().find(thing.id)
    assert patched.name == "Air-1b" and patched.properties["height"] == 3
    # ``update`` is a PUT, which replaces: the client leaves empty properties out, so they go.
    patched.properties = {}
    service.update(patched)
    assert "properties" not in requests.get(f"{live_server}/sta/v1.1/Things({thing.id})", timeout=10).json()
    assert service.things().find(thing.id).name == "Air-1b"

    # delete; what is gone is a 404 to the client.
    service.delete(obs)
    with pytest.raises(requests.exceptions.HTTPError) as info:
        service.observations().find(obs.id)
    assert info.value.response.status_code == 404
    assert info.value.response.json()["type"] == "error"
    service.delete(thing_found)
    assert service.datastreams().query().list().entities == []
    assert service.observations().query().count().top(1).list().count == 0


def test_frost_client_auth(live_server: str, staff: tuple[str, str], app: App) -> None:
    anonymous = _service(live_server, None)
    with pytest.raises(requests.exceptions.HTTPError) as info:
        anonymous.create(fsc.Thing(name="nope", description="no credentials"))
    assert info.value.response.status_code == 401
    assert info.value.response.headers["www-authenticate"].startswith("Basic")
    assert info.value.response.json()["message"] == "sign-in required"
    wrong = _service(live_server, (staff[0], "not the password"))
    with pytest.raises(requests.exceptions.HTTPError) as info:
        wrong.create(fsc.Thing(name="nope", description="wrong password"))
    assert info.value.response.status_code == 401
    assert anonymous.things().query().list().entities == []

    service = _service(live_server, staff)
    thing, datastream = _station(service, "Air-2")
    assert [t.name for t in anonymous.things().query().list()] == ["Air-2"], "public data needs no credential"
    # Refusals reach the client as HTTPError with the server's reason.
    with pytest.raises(requests.exceptions.HTTPError) as info:
        service.create(fsc.Observation(result="high", phenomenon_time=T0, datastream=datastream))
    assert info.value.response.status_code == 400
    assert "not a number" in info.value.response.json()["message"]
    with pytest.raises(requests.exceptions.HTTPError) as info:
        service.create(
            fsc.Observation(
                result=1.0, phenomenon_time=datetime.now(UTC) + timedelta(days=1), datastream=datastream
            )
        )
    assert "future" in info.value.response.json()["message"]
    # An internal Datastream made with the client is invisible to the anonymous client.
    secret = fsc.Datastream(
        name="internal stream",
        description="",
        observation_type=MEASUREMENT,
        properties={"disclosure": "internal"},
        unit_of_measurement=fsc.UnitOfMeasurement(name="n", symbol="s", definition="d"),
        thing=thing,
        sensor=datastream.sensor,
        observed_property=datastream.observed_property,
    )
    service.create(secret)
    service.create(fsc.Observation(result=1.0, phenomenon_time=T0, datastream=secret))
    assert {d.name for d in service.datastreams().query().list()} == {"PM10 at Air-2", "internal stream"}
    assert [d.name for d in anonymous.datastreams().query().list()] == ["PM10 at Air-2"]
    assert anonymous.observations().query().list().entities == []
    with pytest.raises(requests.exceptions.HTTPError) as info:
        anonymous.datastreams().find(secret.id)
    assert info.value.response.status_code == 404
