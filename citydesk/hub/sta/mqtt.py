"""The SensorThings MQTT extension: subscribers to an entity set get new entities, and clients
create Observations by publishing them.

Listens on the bus for committed writes and publishes them (QoS 0, JSON as in the HTTP API) to
``v1.1/<EntitySet>`` and, for Observations, ``v1.1/Datastreams(<id>)/Observations`` and
``v1.1/FeaturesOfInterest(<id>)/Observations``. Only public entities are published: a broker
has no per-subscriber view. Each message carries the MQTT 5 user property
``citydesk-origin=server`` so the ingest side does not take the server's own echoes as new data.
The create side is an ordinary ``mqtt`` source in SensorThings layout (QoS 1, acknowledged after
commit), which this service makes sure exists: ``SensorThings MQTT`` on ``v1.1/+/Observations``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citydesk.auth import ANONYMOUS, Disclosure
from citydesk.bus import Event
from citydesk.hub.connectors.mqtt import ORIGIN
from citydesk.hub.records import StoredObservation
from citydesk.hub.sta import service
from citydesk.hub.sta.serialize import iso

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)
QUEUE_LIMIT = 100_000


def observation_message(base: str, o: StoredObservation) -> dict[str, Any]:
    result: Any = o.result_number if o.result_number is not None else o.result_json
    if isinstance(result, float) and result.is_integer() and o.result_json is None:
        result = int(result)
    phen = iso(o.phenomenon_time)
    if o.phenomenon_time_end is not None:
        phen = f"{phen}/{iso(o.phenomenon_time_end)}"
    return {
        "@iot.id": o.id,
        "@iot.selfLink": f"{base}/Observations({o.id})",
        "phenomenonTime": phen,
        "resultTime": iso(o.result_time),
        "result": result,
        "Datastream@iot.navigationLink": f"{base}/Observations({o.id})/Datastream",
        "FeatureOfInterest@iot.navigationLink": f"{base}/Observations({o.id})/FeatureOfInterest",
    }


BUILTIN_SOURCE = "SensorThings MQTT"


async def ensure_create_source(app: App) -> None:
    """Create (once) and launch the source that takes Observations published by clients."""
    from citydesk.hub import sources

    runner = sources.runner_of(app)
    existing = await asyncio.to_thread(sources.find_source, app.engine, BUILTIN_SOURCE)
    if existing is None:
        spec = sources.SourceIn(
            name=BUILTIN_SOURCE,
            kind="mqtt",
            config={
                "url": app.settings.mqtt_url,
                "topics": ["v1.1/+/Observations"],
                "layout": "sta",
                "client_id": "citydesk-sta-create",
            },
            disclosure=Disclosure.PUBLIC,
        )
        await runner.create(spec)  # an existing one was launched with the other sources


class MqttExtension:
    """Background service: bus events in, MQTT messages out (bounded queue); the create source."""

    name = "mqtt (SensorThings extension)"

    def __init__(self, app: App) -> None:
        self.app = app
        self.state = "stopped"
        self.base = app.settings.base_url.rstrip("/") + service.VERSION_PREFIX
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0

    async def start(self) -> None:
        url = urlparse(self.app.settings.mqtt_url or "")
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="citydesk-sta-publisher", protocol=mqtt.MQTTv5
        )
        client.connect_async(url.hostname or "127.0.0.1", url.port or 1883)
        client.loop_start()
        self._client = client
        self.app.bus.on("observations.stored", self._on_observations)
        self.app.bus.on("sta.created", self._on_created)
        self._thread = threading.Thread(target=self._drain, name="mqtt-publisher", daemon=True)
        self._thread.start()
        try:
            await ensure_create_source(self.app)
            self.state = "running"
        except Exception as exc:
            log.warning("SensorThings MQTT create side not started: %s", exc)
            self.state = f"publishing only: {exc}"

    async def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
        self.state = "stopped"

    def _offer(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((topic, orjson.dumps(payload)))
        except queue.Full:
            self.dropped += 1

    def _on_observations(self, event: Event) -> None:
        rows: list[StoredObservation] = event.data["observations"]
        with self.app.engine.connect().execution_options(read_only=True) as conn:
            facts = self.app.catalog.get_many(conn, {o.datastream_id for o in rows})
        for o in rows:
            f = facts.get(o.datastream_id)
            if f is None or f.disclosure != "public":
                continue
            msg = observation_message(self.base, o)
            self._offer(f"v1.1/Datastreams({o.datastream_id})/Observations", msg)
            self._offer("v1.1/Observations", msg)
            if o.foi_id is not None:
                self._offer(f"v1.1/FeaturesOfInterest({o.foi_id})/Observations", msg)

    def _on_created(self, event: Event) -> None:
        set_name = event.data["set"]
        if set_name == "Observations":
            return  # published from observations.stored, with no database read
        try:
            entity = service.get(self.app, ANONYMOUS, f"{set_name}({event.data['id']})", {}, self.base)
        except Exception:
            return
        self._offer(f"v1.1/{set_name}", entity)

    def _drain(self) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [ORIGIN]
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._client is not None:
                self._client.publish(item[0], item[1], qos=0, properties=props)
