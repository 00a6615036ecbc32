"""The ``mqtt`` connector: a QoS 1 subscriber whose acknowledgements follow the database commit.

paho-mqtt runs with ``manual_ack=True`` and MQTT 5: a persistent session (``clean_start=False``,
a session expiry, a stable client id per source) makes the broker keep every unacknowledged
message, and a message is PUBACKed only after the batch holding it was committed, that is after
``yield`` returned. A crash between receipt and commit therefore means redelivery, and the ingest
pipeline's dedupe makes the redelivered observation store once. Messages are batched (up to
``batch_max`` or ``batch_window_ms``); malformed ones become ``Rejected`` (quarantined in the same
transaction) and are acknowledged like the rest, since they are durably kept.

paho's network thread hands messages to the event loop with ``call_soon_threadsafe``; the
acknowledgements are sent from the loop (paho's send path is thread-safe).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citydesk.hub.connectors.base import Connector, ConnectorError, RunContext
from citydesk.hub.connectors.mapping import Mapping, rows_to_batch
from citydesk.hub.connectors.mqtt.config import MqttConfig
from citydesk.hub.records import Batch, ObservationIn, Rejected
from citydesk.hub.times import parse_instant, parse_interval

STA_TOPIC = re.compile(r"(?:^|/)Datastreams\((\d+)\)/Observations$")
CONNECT_TIMEOUT = 10.0
ORIGIN = ("citydesk-origin", "server")
"""MQTT 5 user property on what citydesk's own SensorThings publisher sends (``hub.sta.mqtt``)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What the loop keeps of a paho message: enough to map it and to acknowledge it later."""

    session: int
    """Which connection delivered it: an ack is only valid on the connection that received it."""
    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Lost:
    reason: str


def sta_observation(datastream_id: int, doc: Any) -> ObservationIn:
    """A SensorThings Observation (JSON) as ``ObservationIn``; ``ValueError`` says what is wrong."""
    if not isinstance(doc, dict) or "result" not in doc:
        raise ValueError("a SensorThings Observation is an object with a result")
    obs = ObservationIn(datastream_id=datastream_id, result=doc["result"])
    if doc.get("phenomenonTime") is not None:
        obs.phenomenon_time, obs.phenomenon_time_end = parse_interval(doc["phenomenonTime"], "phenomenonTime")
    if doc.get("resultTime") is not None:
        obs.result_time = parse_instant(doc["resultTime"], "resultTime")
    if doc.get("validTime") is not None:
        obs.valid_time_start, obs.valid_time_end = parse_interval(doc["validTime"], "validTime")
    if doc.get("parameters") is not None:
        if not isinstance(doc["parameters"], dict):
            raise ValueError("parameters must be an object")
        obs.parameters = doc["parameters"]
    obs.result_quality = doc.get("resultQuality")
    foi = doc.get("FeatureOfInterest")
    if foi is not None:
        if isinstance(foi, dict) and isinstance(foi.get("@iot.id"), int):
            obs.foi_id = foi["@iot.id"]
        elif isinstance(foi, dict) and isinstance(foi.get("feature"), dict):
            feature = foi["feature"]
            if feature.get("type") == "Feature" and not isinstance(feature.get("geometry"), dict):
                raise ValueError("the FeatureOfInterest's feature has no geometry")
            obs.feature = feature
        else:
            raise ValueError("FeatureOfInterest needs a GeoJSON feature or an @iot.id")
    return obs


def device_mapping(config: MqttConfig) -> Mapping:
    """The device layout as a long mapping: (device, measure) is the key, ``v`` the value."""
    return Mapping(
        layout="long",
        key_fields=["device", "measure"],
        value_field="v",
        time_field="t",
        time_format=config.time_format,
        lon_field="lon",
        lat_field="lat",
        fields=config.devices,
    )


def to_batch(messages: list[Message], config: MqttConfig, timezone: str) -> Batch:
    """Map one batch of messages; every malformed one is a ``Rejected`` carrying its topic."""
    batch = Batch()
    rows: list[dict[str, Any]] = []
    for msg in messages:
        text = msg.payload.decode("utf-8", "replace")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            batch.rejected.append(Rejected({"topic": msg.topic, "payload": text}, f"not JSON: {exc.msg}"))
            continue
        if config.layout == "sta":
            found = STA_TOPIC.search(msg.topic)
            try:
                if found is None:
                    raise ValueError("topic is not .../Datastreams(<id>)/Observations")
                batch.observations.append(sta_observation(int(found.group(1)), doc))
            except ValueError as exc:
                batch.rejected.append(Rejected({"topic": msg.topic, "payload": doc}, str(exc)))
            continue
        parts = msg.topic.split("/")
        if not isinstance(doc, dict) or len(parts) < 3:
            batch.rejected.append(
                Rejected(
                    {"topic": msg.topic, "payload": doc},
                    "expected <prefix>/<device>/<measure> and a JSON object",
                )
            )
            continue
        rows.append({**doc, "device": parts[-2], "measure": parts[-1], "topic": msg.topic})
    if rows:
        mapped = rows_to_batch(rows, device_mapping(config), timezone=timezone)
        batch.observations += mapped.observations
        batch.rejected += mapped.rejected
    return batch


class _Session:
    """One paho client and the queue its thread fills; lives for one ``run``."""

    def __init__(
        self, config: MqttConfig, client_id: str, *, persistent: bool, share: str | None = None
    ) -> None:
        self.config = config
        # Several consumers split one stream through an MQTT 5 shared subscription.
        self.subscriptions = [f"$share/{share}/{t}" if share else t for t in config.topics]
        self.loop = asyncio.get_running_loop()
        # paho's thread appends; the loop drains in bulk. The loop is woken only when the deque goes
        # from empty to non-empty: one wake-up per burst, not per message.
        self.inbox: deque[Message | _Lost] = deque()
        self.ready = asyncio.Event()
        self.connected: asyncio.Future[None] = self.loop.create_future()
        self.generation = 0
        self.persistent = persistent
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self.client.reconnect_delay_set(1, 30)
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            self.client.username_pw_set(config.username, password)
        if urlsplit(config.url).scheme == "mqtts":
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # paho's thread -------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.loop.call_soon_threadsafe(self._settle, ConnectorError(f"the broker refused us: {reason}"))
            return
        self.generation += 1
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.loop.call_soon_threadsafe(self._settle, None)

    def _deliver(self, item: Message | _Lost) -> None:
        was_empty = not self.inbox
        self.inbox.append(item)
        if was_empty:
            self.loop.call_soon_threadsafe(self.ready.set)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._deliver(_Lost(str(reason)))

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if ORIGIN in (getattr(msg.properties, "UserProperty", None) or []):
            client.ack(msg.mid, msg.qos)  # our own SensorThings echo: not new data, nothing to keep
            return
        self._deliver(Message(self.generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    def _settle(self, error: ConnectorError | None) -> None:
        if self.connected.done():
            return
        if error is None:
            self.connected.set_result(None)
        else:
            self.connected.set_exception(error)

    # the event loop ------------------------------------------------------------------------
    async def open(self) -> None:
        parts = urlsplit(self.config.url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_seconds if self.persistent else 0
        # How many unacknowledged messages the broker may send ahead while a batch commits. Beyond
        # it the broker queues (Mosquitto: at most max_queued_messages, 1,000 by default, then drops).
        props.ReceiveMaximum = max(self.config.inflight_max, self.config.batch_max)
        try:
            await asyncio.to_thread(
                self.client.connect,
                host,
                port,
                self.config.keepalive_seconds,
                clean_start=not self.persistent,
                properties=props,
            )
        except (OSError, ValueError) as exc:
            raise ConnectorError(f"cannot reach the broker at {host}:{port}: {exc}") from None
        self.client.loop_start()
        try:
            await asyncio.wait_for(self.connected, CONNECT_TIMEOUT)
        except (TimeoutError, ConnectorError) as exc:
            await self.close()
            if isinstance(exc, ConnectorError):
                raise
            raise ConnectorError(f"no answer from the broker at {host}:{port}") from None

    async def close(self) -> None:
        """Leave without acknowledging anything still held: the broker will deliver it again."""
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _take(self, batch: list[Message]) -> bool:
        """Move queued messages into ``batch``; False once a lost connection is next in line."""
        while self.inbox and len(batch) < self.config.batch_max:
            item = self.inbox[0]
            if isinstance(item, _Lost):
                return False
            batch.append(self.inbox.popleft())  # type: ignore[arg-type]
        return True

    async def gather(self) -> list[Message]:
        """The next batch: wait for one message, then take more for up to the batch window."""
        batch: list[Message] = []
        while not batch:
            self.ready.clear()
            if not self.inbox:
                await self.ready.wait()
            if isinstance(self.inbox[0], _Lost):
                raise ConnectorError(f"lost the connection to the broker: {self.inbox[0].reason}")
            self._take(batch)
        deadline = self.loop.time() + self.config.batch_window_ms / 1000
        while len(batch) < self.config.batch_max:
            if not self._take(batch):
                break  # store what arrived first; fail on the next gather
            remaining = deadline - self.loop.time()
            if len(batch) >= self.config.batch_max or remaining <= 0:
                break
            self.ready.clear()
            if not self.inbox:
                try:
                    await asyncio.wait_for(self.ready.wait(), remaining)
                except TimeoutError:
                    break
        return batch

    def ack(self, messages: list[Message]) -> None:
        for msg in messages:
            if msg.session == self.generation:  # after a reconnect the broker redelivers instead
                self.client.ack(msg.mid, msg.qos)


class MqttConnector(Connector):
    config_model = MqttConfig

    def client_id(self, config: MqttConfig, ctx: RunContext) -> str:
        """Stable per source and consumer: the broker keeps each consumer's session under it."""
        base = (
            config.client_id or f"citydesk-source-{ctx.source_id if ctx.source_id is not None else 'unsaved'}"
        )
        return f"{base}-{ctx.consumer}" if config.consumers > 1 else base

    async def check(self, config: MqttConfig, ctx: RunContext) -> None:
        # A throwaway client id and a clean session: checking must not take over the source's session.
        session = _Session(config, f"citydesk-check-{uuid4().hex[:12]}", persistent=False)
        await session.open()
        await session.close()

    async def run(self, config: MqttConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        share = f"citydesk-{ctx.source_id}" if config.consumers > 1 else None
        session = _Session(config, self.client_id(config, ctx), persistent=True, share=share)
        await session.open()
        ctx.log.info("source %s subscribed to %s", ctx.source_name, ", ".join(config.topics))
        try:
            while True:
                messages = await session.gather()
                yield to_batch(messages, config, ctx.timezone)
                session.ack(messages)  # committed: now, and only now, the broker may forget them
        finally:
            await session.close()
