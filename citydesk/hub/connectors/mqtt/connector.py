"""The ``mqtt`` connector: a QoS 1 subscriber whose acknowledgements follow the database commit.

A persistent MQTT 5 session (``clean_start`` false, a session expiry, a stable client id per
source) makes the broker keep every unacknowledged message, and a message is PUBACKed only after
the batch holding it was committed, that is after ``yield`` returned. A crash between receipt and
commit therefore means redelivery, and the ingest pipeline's dedupe makes the redelivered
observation store once. Messages are batched (up to ``batch_max`` or ``batch_window_ms``);
malformed ones become ``Rejected`` (quarantined in the same transaction) and are acknowledged like
the rest, since they are durably kept. The connection itself is ``session.Session``.

Topics in the SensorThings layout are the standard's create topics: ``.../Datastreams(<id>)/
Observations``, or ``.../Observations`` with the Datastream linked in the body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any
from uuid import uuid4

import orjson

from citydesk.hub.connectors.base import Connector, RunContext
from citydesk.hub.connectors.mapping import Mapping, rows_to_batch
from citydesk.hub.connectors.mqtt.config import MqttConfig
from citydesk.hub.connectors.mqtt.session import Message, Session
from citydesk.hub.records import Batch, ObservationIn, Rejected
from citydesk.hub.times import parse_instant, parse_interval

STA_TOPIC = re.compile(r"(?:^|/)(?:Datastreams\((\d+)\)/)?Observations$")


def sta_datastream(topic: str, doc: Any) -> int:
    """The Datastream an Observation is for: from the topic, else from its ``Datastream`` link."""
    found = STA_TOPIC.search(topic)
    if found is None:
        raise ValueError("topic is not .../Datastreams(<id>)/Observations or .../Observations")
    if found.group(1) is not None:
        return int(found.group(1))
    link = doc.get("Datastream") if isinstance(doc, dict) else None
    if not isinstance(link, dict) or not isinstance(link.get("@iot.id"), int):
        raise ValueError('an Observation sent to .../Observations needs "Datastream": {"@iot.id": <id>}')
    return int(link["@iot.id"])


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
        try:
            doc = orjson.loads(msg.payload)
        except orjson.JSONDecodeError as exc:
            text = msg.payload.decode("utf-8", "replace")
            batch.rejected.append(Rejected({"topic": msg.topic, "payload": text}, f"not JSON: {exc}"))
            continue
        if config.layout == "sta":
            try:
                batch.observations.append(sta_observation(sta_datastream(msg.topic, doc), doc))
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
        session = Session(config, f"citydesk-check-{uuid4().hex[:12]}", persistent=False)
        await session.open()
        await session.close()

    async def run(self, config: MqttConfig, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        share = f"citydesk-{ctx.source_id}" if config.consumers > 1 else None
        session = Session(config, self.client_id(config, ctx), persistent=True, share=share)
        await session.open()
        ctx.log.info("source %s subscribed to %s", ctx.source_name, ", ".join(config.topics))
        try:
            while True:
                messages = await session.gather()
                yield to_batch(messages, config, ctx.timezone)
                session.ack(messages)  # committed: now, and only now, the broker may forget them
        finally:
            await session.close()
