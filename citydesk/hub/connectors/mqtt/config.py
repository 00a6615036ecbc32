"""Configuration of an ``mqtt`` source: broker, topics, topic layout and (device layout) the mapping table."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from citydesk.hub.connectors.base import ConnectorConfig, Secret
from citydesk.hub.connectors.mapping import FieldMap


class MqttConfig(ConnectorConfig):
    url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host:port or mqtts://host:port")
    topics: list[str] = Field(min_length=1, description="subscriptions, e.g. v1.1/# or sdot/+/+")
    layout: Literal["sta", "device"] = Field(
        default="sta",
        description="sta: v1.1/Datastreams(<id>)/Observations with SensorThings JSON; "
        'device: <prefix>/<device>/<measure> with {"t", "v", "lon", "lat"}',
    )
    devices: list[FieldMap] = Field(
        default_factory=list, description="device layout: source '<device>/<measure>' → datastream"
    )
    time_format: str = Field(default="iso", description="device layout: format of t")
    username: str | None = None
    password: Secret | None = None
    client_id: str | None = Field(
        default=None, description="default: citydesk-source-<id>, stable per source"
    )
    session_expiry_seconds: int = Field(default=7 * 86400, ge=0, le=0xFFFFFFFF)
    batch_max: int = Field(default=1000, ge=1, le=10_000)
    batch_window_ms: int = Field(default=50, ge=1, le=10_000)
    consumers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="processes sharing the subscription (MQTT 5 shared subscription): one per web worker",
    )
    inflight_max: int = Field(
        default=10_000, ge=1, le=65_535, description="unacknowledged messages the broker may send ahead"
    )
    keepalive_seconds: int = Field(default=60, ge=5, le=3600)

    @field_validator("url")
    @classmethod
    def _broker(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("the broker URL looks like mqtt://host:1883 or mqtts://host:8883")
        return value

    @model_validator(mode="after")
    def _devices_for_device_layout(self) -> MqttConfig:
        if self.layout == "device" and not self.devices:
            raise ValueError(
                "the device layout needs the devices table (which device/measure is which datastream)"
            )
        return self
