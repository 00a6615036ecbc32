"""The figures of the air and weather screen, computed from latest values and rollups (pure).

``service.air`` reads the data; this module turns it into the per-district and city figures, so
the arithmetic (means of the latest values, health bands, hourly series) is testable without a
database and lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from statistics import fmean
from typing import Any

from citydesk.geo import DistrictInfo
from citydesk.status.measures import level


def number(result: Any) -> float | None:
    """The numeric value of an observation result, or None (a JSON result, a boolean)."""
    if isinstance(result, bool) or not isinstance(result, int | float):
        return None
    return float(result)


def newest(times: Iterable[str]) -> str | None:
    """The latest of some ISO 8601 instants (compared as instants, not as strings)."""
    return max(times, key=datetime.fromisoformat, default=None)


def city_figure(values: Sequence[float]) -> dict[str, Any]:
    """The city's mean, lowest and highest latest value, over ``values`` (one per sensor)."""
    return {
        "value": fmean(values) if values else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
        "sensors": len(values),
    }


def district_figures(
    measure: str, entries: Iterable[dict[str, Any]], districts: Sequence[DistrictInfo]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(city, districts): the mean of the latest numeric values per district, with its band.

    ``entries`` are ``LatestSnapshot.values`` rows already filtered to what the caller may see.
    Every district is listed, in code order; one without a sensor has value and level None. Sensors
    outside every district count for the city only.
    """
    per_district: dict[str | None, list[float]] = {}
    for e in entries:
        value = number(e["result"])
        if value is not None:
            per_district.setdefault(e["district"], []).append(value)
    rows = []
    for code, name_ko, name_en in districts:
        values = per_district.get(code, [])
        mean = fmean(values) if values else None
        rows.append(
            {
                "code": code,
                "name": {"ko": name_ko, "en": name_en},
                "value": mean,
                "sensors": len(values),
                "level": level(measure, mean),
            }
        )
    everything = [v for values in per_district.values() for v in values]
    return city_figure(everything), rows


def hourly_series(groups: Iterable[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """``aggregate.by_group`` series as ``{district: [[hour start, mean], ...]}``."""
    return {
        g["key"]: [[p["phenomenonTime"].split("/", 1)[0], p["mean"]] for p in g["points"]]
        for g in groups
        if g["key"] is not None
    }
