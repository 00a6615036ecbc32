"""Validation of incoming observations: every channel's records pass through here.

A record is refused, with a reason a person can act on, when its datastream is unknown, its
result does not fit the datastream's observation type (NaN and infinities included), its time
lies too far in the future, or its position is outside the city. Nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from citydesk.hub.catalog import (
    COUNT_OBSERVATION,
    NUMERIC_TYPES,
    TRUTH_OBSERVATION,
    DatastreamFacts,
)
from citydesk.hub.records import ObservationIn, Rejected, StoredObservation

PointCheck = Callable[[float, float], bool]


def dedup_key(datastream_id: int, phenomenon_time: datetime, result: Any, feature: Any = None) -> int:
    """A signed 64-bit key for "the same observation again" (redelivery, re-import).

    Two messages with the same datastream, time, result and position are one observation: that
    is what makes an MQTT redelivery after a crash, or a file imported twice, store once. The
    position counts, because a mobile or shared datastream may report the same value at the same
    moment from two places.
    """
    # orjson writes an aware datetime exactly as ``isoformat()`` does, without the Python call.
    raw = orjson.dumps([datastream_id, phenomenon_time, result, feature], option=orjson.OPT_SORT_KEYS)
    return int(struct.unpack(">q", hashlib.blake2b(raw, digest_size=8).digest())[0])


def result_columns(result: Any, facts: DatastreamFacts) -> tuple[float | None, Any]:
    """Split a result into (number, json) columns, or raise ValueError with the reason."""
    kind = type(result)
    if kind is float or kind is int:  # the common case, checked without the general path's cost
        value = float(result)
        if not math.isfinite(value):
            raise ValueError(f"result {result!r} is not a finite number")
        if facts.observation_type == COUNT_OBSERVATION and not value.is_integer():
            raise ValueError(f"result {result!r} is not a whole count")
        if facts.observation_type == TRUTH_OBSERVATION:
            raise ValueError(f"result {result!r} is not true or false")
        return value, None
    if facts.observation_type in NUMERIC_TYPES:
        if isinstance(result, bool) or not isinstance(result, int | float):
            if isinstance(result, str):
                try:
                    result = float(result)
                except ValueError:
                    raise ValueError(f"result {result!r} is not a number") from None
            else:
                raise ValueError(f"result {result!r} is not a number")
        value = float(result)
        if not math.isfinite(value):
            raise ValueError(f"result {result!r} is not a finite number")
        if facts.observation_type == COUNT_OBSERVATION and not value.is_integer():
            raise ValueError(f"result {result!r} is not a whole count")
        return value, None
    if facts.observation_type == TRUTH_OBSERVATION and not isinstance(result, bool):
        raise ValueError(f"result {result!r} is not true or false")
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"result {result!r} is not a finite number")
    if isinstance(result, int | float) and not isinstance(result, bool):
        return float(result), None
    return None, result


def _position(feature: Any) -> tuple[float, float] | None:
    """(lon, lat) of a Point geometry or Feature; None for other shapes and for no geometry."""
    if not isinstance(feature, dict):
        raise ValueError("the position must be a GeoJSON geometry or Feature object")
    geom = feature.get("geometry") if feature.get("type") == "Feature" else feature
    if geom is None:
        return None
    if not isinstance(geom, dict):
        raise ValueError("the Feature's geometry must be a GeoJSON object or null")
    if geom.get("type") == "Point":
        coords = geom.get("coordinates")
        if (
            isinstance(coords, list)
            and len(coords) >= 2
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords[:2])
        ):
            return float(coords[0]), float(coords[1])
        raise ValueError("Point coordinates must be [lon, lat] numbers")
    return None


def _check_time(name: str, t: datetime, limit: datetime) -> None:
    if t.tzinfo is None:
        raise ValueError(f"{name} has no time zone")
    if t > limit:
        raise ValueError(f"{name} {t.isoformat()} is in the future (clock error?)")


def _well_typed(record: ObservationIn) -> None:
    """Records come from many parsers; a wrong type must be a refusal, never a crash."""
    for value in (
        record.phenomenon_time,
        record.phenomenon_time_end,
        record.result_time,
        record.valid_time_start,
        record.valid_time_end,
    ):
        if value is not None and not isinstance(value, datetime):
            raise ValueError(f"a time is {type(value).__name__} {value!r}, not a date-time")
    if record.parameters is not None and not isinstance(record.parameters, dict):
        raise ValueError("parameters must be a JSON object")


def validate(
    record: ObservationIn,
    facts: DatastreamFacts | None,
    *,
    now: datetime,
    max_future: timedelta,
    in_city: PointCheck,
    with_dedup_key: bool,
) -> StoredObservation | Rejected:
    """Check one record against its datastream; return what to store or why it is refused."""
    if facts is None:
        return Rejected(record, f"unknown datastream {record.datastream_id}")
    try:
        _well_typed(record)
        number, json_value = result_columns(record.result, facts)
        limit = now + max_future
        phen = record.phenomenon_time
        if phen is None:
            phen = now
        else:
            _check_time("phenomenonTime", phen, limit)
        if record.phenomenon_time_end is not None:
            _check_time("phenomenonTime end", record.phenomenon_time_end, limit)
        if record.result_time is not None:
            _check_time("resultTime", record.result_time, limit)
        if record.phenomenon_time_end is not None and record.phenomenon_time_end < phen:
            raise ValueError("phenomenonTime interval ends before it starts")
        if record.feature is not None:
            point = _position(record.feature)
            if point is not None and not in_city(*point):
                raise ValueError(f"position {point[0]:.5f},{point[1]:.5f} is outside the city")
    except ValueError as exc:
        return Rejected(record, str(exc))
    if phen.utcoffset():
        phen = phen.astimezone(UTC)
    return StoredObservation(
        datastream_id=facts.id,
        family=facts.family,
        phenomenon_time=phen,
        phenomenon_time_end=record.phenomenon_time_end,
        result_time=record.result_time,
        valid_time_start=record.valid_time_start,
        valid_time_end=record.valid_time_end,
        result_number=number,
        result_json=json_value,
        result_quality=record.result_quality,
        parameters=record.parameters,
        foi_id=record.foi_id if record.foi_id is not None else facts.default_foi_id,
        district_code=facts.district_code,
        dedup_key=(
            dedup_key(facts.id, phen, record.result, record.feature)
            if with_dedup_key and record.phenomenon_time is not None
            else None
        ),
    )
