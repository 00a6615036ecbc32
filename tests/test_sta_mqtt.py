"""The SensorThings MQTT extension against the real Mosquitto: publish an Observation to
``v1.1/Datastreams(id)/Observations`` and it is stored; subscribers to an entity set receive new
entities, public ones only."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as mqtt
import pytest
from conftest import create_sensor, migrated_engine, port_open
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citydesk.auth import Principal, Role
from citydesk.config import Settings
from citydesk.hub.models import observations
from citydesk.hub.sta import service
from citydesk.hub.sta.mqtt import ORIGIN
from citydesk.web.app import App, build_app, create_asgi
from citydesk.web.assemble import attach_services

pytestmark = pytest.mark.mqtt
ADMIN = Principal.for_user(None, "t", Role.ADMIN)


@pytest.fixture
def mqtt_app(db_url: str) -> Iterator[App]:
    """An app with its background services (MQTT extension included) running, as ``serve`` has."""
    if not port_open(1883):
        pytest.skip("Mosquitto is not reachable on 127.0.0.1:1883")
    engine = migrated_engine(db_url)
    app = build_app(Settings(database_url=db_url, mqtt_url="mqtt://127.0.0.1:1883"), engine=engine)
    attach_services(app)
    with TestClient(create_asgi(app)):  # runs the lifespan: starts and stops the services
        yield app
    engine.dispose()


def _subscriber(topics: list[str]) -> tuple[mqtt.Client, queue.Queue[tuple[str, dict[str, object]]]]:
    """Collects what the *server* publishes (its messages carry citydesk-origin=server); what other
    clients publish on the same topics is the broker's business (ACLs), not the server's."""
    inbox: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        if ORIGIN in (getattr(m.properties, "UserProperty", None) or []):
            inbox.put((m.topic, orjson.loads(m.payload)))

    client.on_message = on_message
    client.connect("127.0.0.1", 1883)
    client.subscribe([(t, 0) for t in topics])
    client.loop_start()
    time.sleep(0.3)
    return client, inbox


def _count(app: App, ds: int) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(observations).where(observations.c.datastream_id == ds)
            ).scalar_one()
        )


def test_publish_creates_and_subscribers_receive_public_entities(mqtt_app: App) -> None:
    public = create_sensor(mqtt_app, "public noise", observed_property="Noise", lon_lat=(127.0, 37.55))
    internal = create_sensor(
        mqtt_app, "internal noise", disclosure="internal", observed_property="Noise", lon_lat=(127.0, 37.55)
    )
    sub, inbox = _subscriber(
        [
            f"v1.1/Datastreams({public})/Observations",
            f"v1.1/Datastreams({internal})/Observations",
            "v1.1/Things",
        ]
    )
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:8]}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        t = datetime.now(UTC).replace(microsecond=0)
        for ds, value in ((public, 61.5), (internal, 47.0)):
            body = {"phenomenonTime": t.isoformat(), "result": value}
            pub.publish(f"v1.1/Datastreams({ds})/Observations", orjson.dumps(body), qos=1).wait_for_publish(5)
        pub.publish(f"v1.1/Datastreams({public})/Observations", b"not json", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 15
        while (_count(mqtt_app, public), _count(mqtt_app, internal)) != (
            1,
            1,
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (_count(mqtt_app, public), _count(mqtt_app, internal)) == (1, 1), [
            (s.name, s.state) for s in mqtt_app.background
        ]
        received: list[tuple[str, dict[str, object]]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                received.append(inbox.get(timeout=0.2))
            except queue.Empty:
                if received:
                    break
        topics = [topic for topic, _ in received]
        assert f"v1.1/Datastreams({public})/Observations" in topics
        assert f"v1.1/Datastreams({internal})/Observations" not in topics, (
            "an internal observation was published"
        )
        msg = next(m for topic, m in received if topic.endswith(f"({public})/Observations"))
        assert msg["result"] == 61.5 and msg["phenomenonTime"] == t.strftime("%Y-%m-%dT%H:%M:%SZ")
        # The server's own echo on the same topic is not taken as a new observation.
        time.sleep(1)
        assert _count(mqtt_app, public) == 1
        # A new public Thing reaches subscribers of v1.1/Things; an internal one does not.
        service.post(mqtt_app, ADMIN, "Things", {"name": "kiosk", "properties": {"disclosure": "public"}})
        service.post(mqtt_app, ADMIN, "Things", {"name": "secret", "properties": {"disclosure": "internal"}})
        things = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not things:
            try:
                topic, m = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic == "v1.1/Things":
                things.append(m["name"])
        time.sleep(0.5)
        while not inbox.empty():
            topic, m = inbox.get()
            if topic == "v1.1/Things":
                things.append(m["name"])
        assert things == ["kiosk"]
        # The malformed message was quarantined with its reason.
        from citydesk.hub.models import quarantine

        with mqtt_app.engine.connect() as conn:
            reasons = [r[0] for r in conn.execute(select(quarantine.c.reason))]
        assert any("not JSON" in r for r in reasons)
    finally:
        pub.loop_stop()
        sub.loop_stop()
