"""Configuration of a ``file`` source: which file, in which format, mapped how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from citydesk.hub.connectors.base import ConnectorConfig
from citydesk.hub.connectors.mapping import Mapping


class FileConfig(ConnectorConfig):
    path: str = Field(description="file on the server, inside the import folder")
    format: Literal["auto", "csv", "json", "geojson"] = "auto"
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    records_path: str | None = Field(default=None, description="JSON: dotted path to the records")
    only_if_changed: bool = Field(default=True, description="skip a poll when the file is unchanged")
    mapping: Mapping
