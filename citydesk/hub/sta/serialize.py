"""Rows to SensorThings JSON: ``@iot.id``, ``@iot.selfLink``, navigation links, times, results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from citydesk.hub.sta.entities import EntitySet, FieldSpec

ALWAYS_SHOWN = {("Observations", "resultTime"), ("Observations", "result")}


def iso(t: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``; milliseconds only when there are any."""
    if t is None:
        return None
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def interval(start: datetime | None, end: datetime | None) -> str | None:
    """An ISO 8601 interval ``start/end``; an instant when it has no length."""
    if start is None:
        return None
    return iso(start) if end is None or end == start else f"{iso(start)}/{iso(end)}"


def field_value(spec: FieldSpec, row: Row[Any]) -> Any:
    m = row._mapping
    if spec.kind == "result":
        number = m["result_number"]
        if number is not None:
            whole = number.is_integer() and abs(number) < 2**53 and m["result_json"] is None
            return int(number) if whole else number
        return m["result_json"]
    value = m[spec.column] if spec.column else None
    if spec.kind == "interval":
        return interval(value, m[spec.end_column] if spec.end_column else None)
    if spec.kind == "datetime":
        return iso(value)
    return value


def links(base: str, es: EntitySet, ident: int) -> dict[str, str]:
    return {"@iot.selfLink": f"{base}/{es.name}({ident})"}


def entity_json(es: EntitySet, row: Row[Any], base: str, select: list[str] | None) -> dict[str, Any]:
    """One entity as JSON, restricted to ``select`` when given."""
    ident = row._mapping["id"]
    out: dict[str, Any] = {}
    if select is None or "id" in select:
        out["@iot.id"] = ident
    if select is None or "selfLink" in select:
        out.update(links(base, es, ident))
    for spec in es.fields:
        if spec.derived or (select is not None and spec.name not in select):
            continue
        value = field_value(spec, row)
        if value is None and (es.name, spec.name) not in ALWAYS_SHOWN:
            continue
        out[spec.name] = value
    for rel in es.relations:
        if select is None or rel.name in select:
            out[f"{rel.name}@iot.navigationLink"] = f"{base}/{es.name}({ident})/{rel.name}"
    return out
