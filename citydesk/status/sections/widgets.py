"""The widget kinds: each computes its figures from the hub for one caller (one registry).

A kind is a function ``(ctx, widget) -> dict | None``: the widget's kind fields (see the section
contract in the API docs), or None when the caller may see none of its data — an anonymous caller
then gets no widget at all rather than an empty one built from what is hidden. Values are the
latest observation of each selected Datastream, or a numeric property of each selected Thing
(``thing_property``), combined per group by the selector's ``aggregate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection

from citydesk.auth import Principal
from citydesk.status.air import newest, number
from citydesk.status.live import AnswerCache
from citydesk.status.sections import hubdata
from citydesk.status.sections.config import Selector, Widget

if TYPE_CHECKING:
    from citydesk.web.app import App

Group = tuple[Any, dict[str, str] | str]
"""A group's key and its label (a district's name, a Thing's name, a series' label)."""

FACILITY_LABELS: dict[str, dict[str, str]] = {
    "fire_station": {"ko": "119안전센터", "en": "119 safety centre"},
    "emergency_room": {"ko": "응급실", "en": "Emergency room"},
    "bike_station": {"ko": "따릉이 대여소", "en": "Ddareungi bike station"},
    "parking_lot": {"ko": "공영주차장", "en": "Public car park"},
    "water_plant": {"ko": "아리수정수센터", "en": "Arisu purification centre"},
    "park": {"ko": "공원", "en": "Park"},
    "market": {"ko": "전통시장", "en": "Traditional market"},
    "district": {"ko": "자치구", "en": "District"},
    "city_finance": {"ko": "시 재정", "en": "City finances"},
}
"""Names of the seeded facility kinds for map legends (a kind not listed shows its id)."""

AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": fmean,
    "sum": lambda v: float(sum(v)),
    "min": min,
    "max": max,
    "count": lambda v: float(len(v)),
}


def combine(how: str, values: list[float]) -> float | None:
    return AGGREGATES[how](values) if values else None


@dataclass
class Context:
    """One caller's view while a section is computed (one read-only connection)."""

    app: App
    who: Principal
    conn: Connection
    now: datetime
    section: str
    times: list[str] = field(default_factory=list)
    """Times of every datum used, for the section's ``updated``."""
    history: AnswerCache | None = None
    """Where rollup-based widgets are kept for a while (``HISTORY_SECONDS``): their past buckets do
    not change and the current one changes slowly, while summing thousands of stations is not free."""
    _memo: dict[tuple[str, str], Any] = field(default_factory=dict)

    def slowly(self, w: Widget, compute: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        if self.history is None:
            return compute()
        key = (self.section, w.id, tuple(sorted(self.who.levels)))
        return orjson.loads(self.history.get(key, lambda: orjson.dumps(compute())))  # type: ignore[no-any-return]

    def streams(self, sel: Selector) -> list[hubdata.Stream]:
        """``hubdata.streams``, read once per selection while the section is computed."""
        key = ("streams", sel.model_dump_json(include={"observed_property", "facility", "key", "district"}))
        if key not in self._memo:
            self._memo[key] = hubdata.streams(self.conn, self.who, sel)
        return list(self._memo[key])

    def places(self, sel: Selector, *, located: bool = False) -> list[hubdata.Place]:
        """``hubdata.places``, read once per facility kind while the section is computed."""
        key = ("places", sel.model_dump_json(include={"facility", "district"}))
        if key not in self._memo:
            self._memo[key] = hubdata.places(self.conn, self.who, sel)
        return [p for p in self._memo[key] if not located or p.lon is not None]


@dataclass(frozen=True, slots=True)
class Value:
    """One datum with the group keys it can fall in."""

    value: float
    district: str | None
    thing: int
    thing_name: dict[str, str]
    key: str | None
    key_label: dict[str, str] | None
    time: str | None


def values(ctx: Context, sel: Selector) -> tuple[list[Value], str | None] | None:
    """The selected values and their unit; None when nothing selected is visible."""
    if sel.observed_property is None:
        found = ctx.places(sel)
        if not found:
            return None
        out = []
        for p in found:
            v = 1.0 if sel.thing_property is None else number(p.properties.get(sel.thing_property))
            if v is not None:
                out.append(Value(v, p.district, p.id, p.name, None, None, None))
        return out, None
    selected = ctx.streams(sel)
    if not selected:
        return None
    assert sel.observed_property is not None
    last = hubdata.latest(ctx.app, ctx.conn, ctx.who, sel.observed_property, {s.id for s in selected})
    out = [
        Value(last[s.id].value, s.district, s.thing, s.thing_name, s.key, s.label, last[s.id].time)
        for s in selected
        if s.id in last
    ]
    ctx.times += [v.time for v in out if v.time]
    return out, hubdata.unit_of(selected)


def _group_key(v: Value, by: str) -> Group:
    if by == "district":
        return v.district, v.district or ""
    if by == "thing":
        return v.thing, v.thing_name
    if by == "key":
        return v.key, v.key_label or (v.key or "")
    return "city", "city"


def grouped(found: Iterable[Value], by: str) -> dict[Any, tuple[dict[str, str] | str, list[float]]]:
    out: dict[Any, tuple[dict[str, str] | str, list[float]]] = {}
    for v in found:
        key, label = _group_key(v, by)
        out.setdefault(key, (label, []))[1].append(v.value)
    return out


def _districts(ctx: Context) -> list[tuple[str, dict[str, str]]]:
    return [(code, {"ko": ko, "en": en}) for code, ko, en in ctx.app.geo.districts()]


# -- the kinds ------------------------------------------------------------------------------------
def figure(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    got = values(ctx, w.select)
    if got is None:
        return None
    found, unit = got
    nums = [v.value for v in found]
    out: dict[str, Any] = {
        "unit": w.unit or unit,
        "value": combine(w.select.aggregate, nums),
        "time": newest(v.time for v in found if v.time),
    }
    if len(nums) > 1 and (w.select.observed_property is not None or w.select.thing_property is not None):
        out["detail"] = {"min": min(nums, default=None), "max": max(nums, default=None), "count": len(nums)}
    if w.trend and w.select.observed_property is not None and out["value"] is not None:
        then = _day_ago(ctx, w.select, {s.id for s in ctx.streams(w.select)})
        out["trend"] = None if then is None else out["value"] - then
    return out


def _day_ago(ctx: Context, sel: Selector, ids: set[int]) -> float | None:
    """The same aggregate over the Datastreams' means in the hour 24 h ago (hourly rollups)."""
    hour = (ctx.now - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
    hourly = sel.model_copy(update={"interval": "hour"})
    means = hubdata.hourly_means(ctx.app, ctx.who, hourly, ids, start=hour, end=hour + timedelta(hours=1))
    return combine(sel.aggregate, [points[0][1] for points in means.values() if points])


def _buckets(
    ctx: Context, w: Widget
) -> tuple[list[hubdata.Stream], dict[Any, dict[str, list[float]]]] | None:
    """Rollup means per group and bucket: {group: {bucket start: [mean per Datastream]}}."""
    assert w.select is not None
    sel = w.select
    selected = ctx.streams(sel)
    if not selected:
        return None
    step = timedelta(hours=1) if sel.interval == "hour" else timedelta(days=1)
    end = ctx.now.replace(minute=0, second=0, microsecond=0) + step
    means = hubdata.hourly_means(
        ctx.app, ctx.who, sel, {s.id for s in selected}, start=end - timedelta(hours=sel.hours), end=end
    )
    by = "city" if sel.group_by == "time" else sel.group_by
    out: dict[Any, dict[str, list[float]]] = {}
    for s in selected:
        key, _ = _group_key(Value(0, s.district, s.thing, s.thing_name, s.key, s.label, None), by)
        for bucket, mean in means.get(s.id, []):
            out.setdefault(key, {}).setdefault(bucket, []).append(mean)
    return selected, out


def series(ctx: Context, w: Widget) -> dict[str, Any] | None:
    return ctx.slowly(w, lambda: _series(ctx, w))


def _series(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    got = _buckets(ctx, w)
    if got is None:
        return None
    selected, buckets = got
    labels = _labels(ctx, w.select.group_by, selected, w)
    return {
        "unit": w.unit or hubdata.unit_of(selected),
        "interval": w.select.interval,
        "series": [
            {
                "key": key,
                "name": labels.get(key, str(key)),
                "points": [[t, combine(w.select.aggregate, v)] for t, v in sorted(points.items())],
            }
            for key, points in buckets.items()
        ],
    }


def _labels(ctx: Context, by: str, selected: list[hubdata.Stream], w: Widget) -> dict[Any, Any]:
    if by == "district":
        return dict(_districts(ctx))
    if by == "thing":
        return {s.thing: s.thing_name for s in selected}
    if by == "key":
        return {s.key: s.label or s.key for s in selected}
    return {"city": w.label.model_dump()}


def bars(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    sel = w.select
    if sel.group_by == "time":
        return ctx.slowly(w, lambda: _time_bars(ctx, w))
    got = values(ctx, sel)
    if got is None:
        return None
    found, unit = got
    groups = grouped(found, sel.group_by)
    if sel.group_by == "district":
        order = _districts(ctx)
        cats: list[Any] = [label for _, label in order]
        vals = [combine(sel.aggregate, groups[code][1]) if code in groups else None for code, _ in order]
    else:
        keys = sorted(groups, key=lambda k: str(k))
        cats = [groups[k][0] for k in keys]
        vals = [combine(sel.aggregate, groups[k][1]) for k in keys]
    return {"unit": w.unit or unit, "categories": cats, "values": vals}


def _time_bars(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    got = _buckets(ctx, w)
    if got is None:
        return None
    selected, buckets = got
    points = buckets.get("city", {})
    zone = ZoneInfo(ctx.app.settings.timezone)
    shown = "%Y-%m-%d" if w.select.interval == "day" else "%m-%d %H:%M"
    return {
        "unit": w.unit or hubdata.unit_of(selected),
        "interval": w.select.interval,
        "categories": [datetime.fromisoformat(t).astimezone(zone).strftime(shown) for t in sorted(points)],
        "times": sorted(points),
        "values": [combine(w.select.aggregate, points[t]) for t in sorted(points)],
    }


def table(ctx: Context, w: Widget) -> dict[str, Any] | None:
    """Per Datastream key (e.g. each staple good): highest and lowest latest value, and where."""
    assert w.select is not None
    got = values(ctx, w.select)
    if got is None:
        return None
    found, unit = got
    unit = w.unit or unit
    by_key: dict[Any, list[Value]] = {}
    for v in found:
        by_key.setdefault(v.key, []).append(v)
    rows = []
    for key in sorted(by_key, key=str):
        group = by_key[key]
        hi, lo = max(group, key=lambda v: v.value), min(group, key=lambda v: v.value)
        rows.append(
            {
                "item": group[0].key_label or key,
                "max": hi.value,
                "max_at": hi.thing_name,
                "min": lo.value,
                "min_at": lo.thing_name,
                "count": len(group),
            }
        )
    columns = [
        ("item", "품목", "Item", None),
        ("max", "최고", "Highest", unit),
        ("max_at", "최고 지점", "Highest at", None),
        ("min", "최저", "Lowest", unit),
        ("min_at", "최저 지점", "Lowest at", None),
        ("count", "조사 지점 수", "Places surveyed", None),
    ]
    return {
        "unit": unit,
        "columns": [{"id": c, "label": {"ko": ko, "en": en}, "unit": u} for c, ko, en, u in columns],
        "rows": rows,
    }


def choropleth(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    got = values(ctx, w.select)
    if got is None:
        return None
    found, unit = got
    groups = grouped(found, "district")
    return {
        "unit": w.unit or unit,
        "districts": [
            {
                "code": code,
                "name": name,
                "value": combine(w.select.aggregate, groups[code][1]) if code in groups else None,
            }
            for code, name in _districts(ctx)
        ],
    }


def points(ctx: Context, w: Widget) -> dict[str, Any] | None:
    assert w.select is not None
    found = ctx.places(w.select, located=True)
    if not found:
        return None
    return {"unit": w.unit, "count": len(found), "url": f"/api/status/sections/{ctx.section}/layers/{w.id}"}


def events(ctx: Context, w: Widget) -> dict[str, Any] | None:
    return {"filter": list(w.filter)}


KINDS: dict[str, Callable[[Context, Widget], dict[str, Any] | None]] = {
    "figure": figure,
    "series": series,
    "bars": bars,
    "table": table,
    "choropleth": choropleth,
    "points": points,
    "events": events,
}


def compute(ctx: Context, w: Widget) -> dict[str, Any] | None:
    """The widget as the contract gives it, or None when the caller may see none of its data."""
    fields = KINDS[w.kind](ctx, w)
    if fields is None:
        return None
    extra = {} if w.decimals is None else {"decimals": w.decimals}
    return {"id": w.id, "kind": w.kind, "label": w.label.model_dump(), "unit": w.unit, **extra, **fields}


def layer(ctx: Context, w: Widget) -> dict[str, Any]:
    """The GeoJSON FeatureCollection of a ``points`` widget: its facilities, with their latest value
    (combined per facility by the selector's aggregate) when it names an observed_property."""
    assert w.select is not None
    sel = w.select
    found = ctx.places(sel, located=True)
    per_thing: dict[int, list[float]] = {}
    times: dict[int, list[str]] = {}
    unit = w.unit
    if sel.observed_property is not None:
        selected = ctx.streams(sel)
        unit = unit or hubdata.unit_of(selected)
        last = hubdata.latest(ctx.app, ctx.conn, ctx.who, sel.observed_property, {s.id for s in selected})
        for s in selected:
            if s.id in last:
                per_thing.setdefault(s.thing, []).append(last[s.id].value)
                times.setdefault(s.thing, []).append(last[s.id].time)
    features = []
    for p in found:
        props: dict[str, Any] = {
            "name": p.name,
            "facility": p.facility,
            "facility_label": FACILITY_LABELS.get(p.facility or "", p.facility),
            "district": p.district,
            "address": p.properties.get("address"),
        }
        if sel.observed_property is not None:
            props |= {
                "value": combine(sel.aggregate, per_thing.get(p.id, [])),
                "unit": unit,
                "time": newest(times.get(p.id, [])),
            }
        elif sel.thing_property is not None:
            props |= {"value": number(p.properties.get(sel.thing_property)), "unit": unit}
        features.append(
            {
                "type": "Feature",
                "id": p.id,
                "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}
