"""The records that flow through ingestion, whatever channel they came in by.

Connectors, the MQTT listener, the SensorThings API and the simulator all produce
``ObservationIn``; validation turns each into a ``StoredObservation`` (ready to write) or a
``Rejected`` (kept in quarantine with its reason). One shape for every channel is what makes
"the simulator publishes through the same path as real data" true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class ObservationIn:
    """One observation as received, before validation. Times must be zone-aware if given."""

    datastream_id: int
    result: Any
    phenomenon_time: datetime | None = None
    phenomenon_time_end: datetime | None = None
    result_time: datetime | None = None
    valid_time_start: datetime | None = None
    valid_time_end: datetime | None = None
    result_quality: Any = None
    parameters: dict[str, Any] | None = None
    feature: dict[str, Any] | None = None
    """GeoJSON geometry (or Feature) of where it was observed, if the channel gives one."""
    foi_id: int | None = None


@dataclass(slots=True)
class StoredObservation:
    """A validated observation with everything the store needs, derived fields included."""

    datastream_id: int
    family: str
    phenomenon_time: datetime
    phenomenon_time_end: datetime | None
    result_time: datetime | None
    valid_time_start: datetime | None
    valid_time_end: datetime | None
    result_number: float | None
    result_json: Any
    result_quality: Any
    parameters: dict[str, Any] | None
    foi_id: int | None
    district_code: str | None
    dedup_key: int | None = None
    id: int | None = None


@dataclass(slots=True)
class Rejected:
    """A record that failed validation: what arrived, and why it was refused."""

    payload: Any
    reason: str


@dataclass(slots=True)
class Batch:
    """What one connector step yields: records to validate, and rejects it already knows of."""

    observations: list[ObservationIn] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(slots=True)
class IngestResult:
    """What a write did: ids of stored rows, how many were duplicates, and what was refused."""

    stored: list[StoredObservation] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [o.id for o in self.stored if o.id is not None]
