"""Field mappings as tables: which source field feeds which datastream, through which converter.

Every connector that receives rows (HTTP APIs, SQL queries, files, MQTT device messages) turns them
into observations here, so "how does column X become datastream 17" is data a staff member edits in
a form, not code. Two layouts cover what city feeds look like:

- ``wide``: one row holds a time and several value columns (``PM10``, ``PM25``, ``O3``), each mapped
  to a datastream; ``key_fields`` (e.g. the station name) can pick a different table row per key.
- ``long``: one row is one value: ``key_fields`` name the series (``device``/``measure``), and the
  table maps each key to its datastream.

A row that cannot be converted becomes a ``Rejected`` with its reason (it ends in quarantine):
never dropped silently, never an exception that would lose the rest of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.records import Batch, ObservationIn, Rejected


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        # Korean open data often writes thousands separators ("1,234.5").
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on", "예", "참"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off", "아니오", "거짓"})


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not true or false")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "float": _number,
    "int": _integer,
    "bool": _boolean,
    "str": _text,
    "json": lambda v: v,
    "fahrenheit_to_celsius": lambda v: (_number(v) - 32.0) * 5.0 / 9.0,
    "kelvin_to_celsius": lambda v: _number(v) - 273.15,
    "percent_from_fraction": lambda v: _number(v) * 100.0,
    "fraction_from_percent": lambda v: _number(v) / 100.0,
    "ppm_to_ppb": lambda v: _number(v) * 1000.0,
    "ppb_to_ppm": lambda v: _number(v) / 1000.0,
    "kmh_to_ms": lambda v: _number(v) / 3.6,
}
"""Converter name → function. A constant table: names are what mappings store and forms offer."""

TIME_FORMATS_SPECIAL = ("iso", "epoch", "epoch_ms")


class FieldMap(BaseModel):
    """One line of a mapping table: a source field (or key) → a datastream."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="wide: the value column; long: the series key (key_fields joined by '/')")
    datastream_id: int = Field(gt=0)
    key: str | None = Field(
        default=None, description="wide with key_fields: apply only to rows whose key equals this"
    )
    converter: str = "float"
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _known_converter(self) -> FieldMap:
        if self.converter not in CONVERTERS:
            raise ValueError(f"unknown converter {self.converter!r}; known: {', '.join(sorted(CONVERTERS))}")
        return self


class Mapping(BaseModel):
    """How rows become observations (see the module docstring for the two layouts)."""

    model_config = ConfigDict(extra="forbid")

    layout: Literal["wide", "long"] = "wide"
    fields: list[FieldMap] = Field(min_length=1)
    time_field: str | None = Field(
        default=None, description="None: stamped with the time of receipt (then re-imports cannot dedupe)"
    )
    time_format: str = Field(default="iso", description="iso, epoch, epoch_ms, or a strftime pattern")
    timezone: str | None = Field(default=None, description="zone of naive source times; default: the city's")
    key_fields: list[str] = Field(default_factory=list)
    value_field: str | None = Field(default=None, description="long layout: the column holding the value")
    lon_field: str | None = None
    lat_field: str | None = None
    geometry_field: str | None = Field(default=None, description="a column holding a GeoJSON geometry")
    parameter_fields: list[str] = Field(default_factory=list, description="copied into parameters")
    missing: list[str] = Field(default_factory=lambda: ["", "-", "NA", "N/A", "null"])
    """Cell values meaning "no measurement": such a cell is not an observation (nor an error)."""
    unmapped: Literal["reject", "skip"] = "reject"
    """What to do with a row whose key has no line in the table: quarantine it, or skip on purpose."""

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        if self.layout == "long" and (not self.key_fields or not self.value_field):
            raise ValueError("a long mapping needs key_fields and value_field")
        if (self.lon_field is None) != (self.lat_field is None):
            raise ValueError("lon_field and lat_field go together")
        if self.time_format not in TIME_FORMATS_SPECIAL and "%" not in self.time_format:
            raise ValueError("time_format is iso, epoch, epoch_ms or a strftime pattern")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {self.timezone!r}") from None
        seen: set[tuple[str | None, str]] = set()
        for f in self.fields:
            ident = (f.key, f.source)
            if ident in seen:
                raise ValueError(
                    f"mapping lists {f.source!r} twice" + (f" for key {f.key!r}" if f.key else "")
                )
            seen.add(ident)
        return self


def dig(row: Any, path: str) -> Any:
    """``row[path]``, or the dotted path (``data.items``) walked through nested dicts and lists."""
    if isinstance(row, dict) and path in row:
        return row[path]
    value = row
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                raise KeyError(path)
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def parse_time(value: Any, time_format: str, zone: ZoneInfo) -> datetime:
    """A zone-aware time from a source value; naive values are read in ``zone``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif time_format in ("epoch", "epoch_ms"):
        seconds = _number(value) / (1000.0 if time_format == "epoch_ms" else 1.0)
        return datetime.fromtimestamp(seconds, UTC)
    elif time_format == "iso":
        moment = datetime.fromisoformat(str(value).strip())
    else:
        moment = datetime.strptime(str(value).strip(), time_format)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


class _Plan:
    """A mapping compiled for one run: lookup tables built once, applied to every row."""

    def __init__(self, mapping: Mapping, timezone: str) -> None:
        self.m = mapping
        self.zone = ZoneInfo(mapping.timezone or timezone)
        self.missing = frozenset(mapping.missing)
        self.by_key: dict[str | None, list[FieldMap]] = {}
        for f in mapping.fields:
            ident = f.source if mapping.layout == "long" else f.key
            self.by_key.setdefault(ident, []).append(f)

    def key_of(self, row: Any) -> str | None:
        if not self.m.key_fields:
            return None
        return "/".join(_text(_field(row, k)) for k in self.m.key_fields)

    def is_missing(self, value: Any) -> bool:
        return value is None or (isinstance(value, str) and value.strip() in self.missing)

    def common(self, row: Any) -> tuple[datetime | None, dict[str, Any] | None, dict[str, Any] | None]:
        """Time, position and parameters shared by every observation of a row (ValueError if bad)."""
        when = None
        if self.m.time_field is not None:
            raw = _field(row, self.m.time_field)
            if self.is_missing(raw):
                raise ValueError(f"{self.m.time_field}: no time given")
            try:
                when = parse_time(raw, self.m.time_format, self.zone)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"{self.m.time_field}: {raw!r} is not a time ({exc})") from None
        feature = None
        if self.m.lon_field and self.m.lat_field:
            lon, lat = _field(row, self.m.lon_field), _field(row, self.m.lat_field)
            if not (self.is_missing(lon) and self.is_missing(lat)):
                feature = {"type": "Point", "coordinates": [_number(lon), _number(lat)]}
        elif self.m.geometry_field:
            geom = _field(row, self.m.geometry_field)
            if geom is not None:
                if not isinstance(geom, dict) or "type" not in geom:
                    raise ValueError(f"{self.m.geometry_field}: not a GeoJSON geometry")
                feature = geom
        params = {p: _field(row, p) for p in self.m.parameter_fields} or None
        return when, feature, params

    def lines(self, row: Any) -> list[tuple[FieldMap, Any]] | None:
        """The (table line, raw value) pairs of a row; None when its key has no line."""
        key = self.key_of(row)
        if self.m.layout == "long":
            found = self.by_key.get(key)
            if not found:
                return None
            assert self.m.value_field is not None
            return [(found[0], _field(row, self.m.value_field))]
        found = self.by_key.get(key, []) + (self.by_key.get(None, []) if key is not None else [])
        if not found:
            return None
        return [(f, _field(row, f.source)) for f in found]

    def apply(self, row: Any, batch: Batch) -> None:
        try:
            when, feature, params = self.common(row)
            lines = self.lines(row)
        except (KeyError, ValueError) as exc:
            batch.rejected.append(Rejected(row, _reason(exc)))
            return
        if lines is None:
            if self.m.unmapped == "reject":
                batch.rejected.append(Rejected(row, f"no mapping for key {self.key_of(row)!r}"))
            return
        for line, raw in lines:
            if self.is_missing(raw):
                continue
            try:
                result = CONVERTERS[line.converter](raw)
                if (line.scale != 1.0 or line.offset != 0.0) and isinstance(result, int | float):
                    result = result * line.scale + line.offset
            except (ValueError, TypeError) as exc:
                where = line.source if self.m.layout == "wide" else f"{self.m.value_field} ({line.source})"
                batch.rejected.append(Rejected(row, f"{where}: {exc}"))
                continue
            batch.observations.append(
                ObservationIn(
                    datastream_id=line.datastream_id,
                    result=result,
                    phenomenon_time=when,
                    parameters=params,
                    feature=feature,
                )
            )


class _MissingField(KeyError):
    def __str__(self) -> str:
        return f"field {self.args[0]!r} is missing"


def _field(row: Any, name: str) -> Any:
    try:
        return dig(row, name)
    except KeyError:
        raise _MissingField(name) from None


def _reason(exc: Exception) -> str:
    return f"field {exc} is missing" if type(exc) is KeyError else str(exc)


def rows_to_batch(rows: Iterable[Any], mapping: Mapping, *, timezone: str = "Asia/Seoul") -> Batch:
    """Convert rows (dicts) with ``mapping``; each bad row or cell becomes a ``Rejected``."""
    plan = _Plan(mapping, timezone)
    batch = Batch()
    for row in rows:
        if not isinstance(row, dict):
            batch.rejected.append(Rejected(row, "not a record (expected an object with fields)"))
            continue
        plan.apply(row, batch)
    return batch


def iter_batches(
    rows: Iterable[Any], mapping: Mapping, *, timezone: str = "Asia/Seoul", size: int = 1000
) -> Iterator[Batch]:
    """``rows`` converted ``size`` at a time, so a large file or result set is never all in memory."""
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield rows_to_batch(chunk, mapping, timezone=timezone)
            chunk = []
    if chunk:
        yield rows_to_batch(chunk, mapping, timezone=timezone)


def check_sample(rows: list[Any], mapping: Mapping, *, timezone: str = "Asia/Seoul") -> None:
    """Refuse a mapping under which every sample row is rejected (the usual typo in a column name).

    Used by ``check`` before a source is saved: a source whose every row would go to quarantine
    is a configuration error, better reported in the form than discovered in the quarantine.
    Rows whose key has no line in the table do not count against it.
    """
    if not rows:
        return
    # A sample may hold only keys the table leaves out (other stations): that is no error.
    batch = rows_to_batch(rows, mapping.model_copy(update={"unmapped": "skip"}), timezone=timezone)
    refused = {id(r.payload) for r in batch.rejected}
    if len(refused) == len(rows):
        raise ConnectorError(
            f"the mapping fits none of the first {len(rows)} record(s): {batch.rejected[0].reason}",
            details={"sample": rows[0] if isinstance(rows[0], dict) else repr(rows[0])},
        )
