"""The shapes sources are described in: what staff submit, what a source and its status are,
what one run did. Plain values, no database: ``service`` builds and stores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from citydesk.auth import Disclosure
from citydesk.hub.records import IngestResult


class SourceState(StrEnum):
    """What ``source_status.state`` may hold."""

    IDLE = "idle"
    RUNNING = "running"
    STREAMING = "streaming"
    FAILING = "failing"


def _name(value: str | None) -> str | None:
    """Names are compared as shown, so surrounding blanks are dropped and a blank name refused."""
    if value is not None and not value.strip():
        raise ValueError("a name is required")
    return None if value is None else value.strip()


class SourceIn(BaseModel):
    """A new source as staff submit it (API body and form)."""

    name: str = Field(min_length=1, max_length=200)
    kind: str
    config: dict[str, Any]
    interval_seconds: int | None = Field(default=None, ge=5, le=7 * 86400)
    enabled: bool = True
    disclosure: Disclosure = Disclosure.INTERNAL

    _strip = field_validator("name")(_name)


class SourcePatch(BaseModel):
    """A change to a source; absent fields stay as they are. ``reset_cursor`` re-reads from the start."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    interval_seconds: int | None = Field(default=None, ge=5, le=7 * 86400)
    enabled: bool | None = None
    disclosure: Disclosure | None = None
    reset_cursor: bool = False

    _strip = field_validator("name")(_name)


@dataclass(frozen=True)
class SourceStatus:
    state: str
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    records_in: int
    records_rejected: int
    last_run_records: int
    last_run_rejected: int
    cursor: dict[str, Any] | None


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    """As stored: secrets included. Show ``shown_config`` instead."""
    interval_seconds: int | None
    enabled: bool
    created_at: datetime
    disclosure: str
    status: SourceStatus


@dataclass
class RunOutcome:
    """What one run (or one stretch of a stream) did; ``record_run`` adds it to the source's status."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    error: str | None = None

    def add(self, result: IngestResult) -> None:
        self.stored += len(result.stored)
        self.duplicates += result.duplicates
        self.rejected += len(result.rejected)
        self.batches += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "batches": self.batches,
            "error": self.error,
        }


@dataclass(frozen=True)
class DatastreamChoice:
    """A datastream offered in the manual-entry form."""

    id: int
    name: str
    unit: str
    observation_type: str
    disclosure: str


@dataclass
class QuarantinePage:
    items: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None
