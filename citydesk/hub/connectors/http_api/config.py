"""Configuration of an ``http_api`` source: where to poll, how to read the body, how to map it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from citydesk.hub.connectors.base import ConnectorConfig, Secret
from citydesk.hub.connectors.mapping import Mapping


class HttpApiConfig(ConnectorConfig):
    url: str = Field(description="http(s) URL; may contain {api_key}, replaced at request time")
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, description="values may contain {api_key}")
    params: dict[str, str] = Field(
        default_factory=dict, description="query parameters; may contain {api_key}"
    )
    api_key: Secret | None = Field(default=None, description="kept secret: never shown back")
    format: Literal["auto", "json", "csv"] = "auto"
    records_path: str | None = Field(default=None, description="dotted path to the records, e.g. data.items")
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    mapping: Mapping

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("the URL must start with http:// or https://")
        return value
