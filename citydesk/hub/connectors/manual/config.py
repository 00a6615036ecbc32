"""Configuration of a ``manual`` source, and the shape of one typed-in entry."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from citydesk.hub.connectors.base import ConnectorConfig


class ManualConfig(ConnectorConfig):
    datastream_ids: list[int] = Field(
        default_factory=list, description="datastreams offered in the form; empty: all the person may see"
    )


class ManualEntry(BaseModel):
    """One figure typed in: the API body and the form fields."""

    model_config = ConfigDict(extra="forbid")

    datastream_id: int = Field(gt=0)
    value: float | int | bool | str
    time: datetime | None = Field(
        default=None, description="when it was observed; naive: city time; empty: now"
    )
    note: str | None = Field(default=None, max_length=500)
    source_id: int | None = Field(default=None, description="the manual source this entry belongs to, if any")


def parse_time(text: str, timezone: str) -> datetime | None:
    """A form's ``datetime-local`` value (naive, city time) as an aware time; empty means now."""
    if not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))
