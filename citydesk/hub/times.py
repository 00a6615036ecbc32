"""ISO 8601 instants and intervals, as SensorThings clients and connectors send them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citydesk.errors import ValidationFailed


class BadTime(ValidationFailed, ValueError):
    """A time that is not an ISO 8601 date-time with a zone: a 400 on the API, a ``ValueError``
    (hence a quarantined record) in a connector."""


def parse_instant(value: Any, name: str) -> datetime:
    """An ISO 8601 date-time with a zone offset (``Z`` or ``+09:00``); naive times are refused."""
    if not isinstance(value, str):
        raise BadTime(f"{name} must be an ISO 8601 string")
    try:
        t = datetime.fromisoformat(value)  # takes "Z" itself (3.11): the common case, no copies
    except ValueError:
        try:  # a lower-case "z" or stray spaces, as some devices send
            t = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise BadTime(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    if t.tzinfo is None:
        raise BadTime(f"{name}: {value!r} has no time zone (add Z or an offset like +09:00)")
    return t


def parse_interval(value: Any, name: str) -> tuple[datetime, datetime | None]:
    """``start/end`` or a single instant (end ``None``)."""
    if isinstance(value, str) and "/" in value:
        start_text, _, end_text = value.partition("/")
        start, end = parse_instant(start_text, name), parse_instant(end_text, name)
        if end < start:
            raise BadTime(f"{name}: the interval ends before it starts")
        return start, end
    return parse_instant(value, name), None
