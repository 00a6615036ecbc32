"""Query options of a SensorThings request, parsed in one place.

``$filter``, ``$orderby``, ``$expand`` (nested, each with its own options), ``$select``, ``$top``,
``$skip``, ``$count`` and ``$resultFormat``. Expression parsing is in ``filter_parse``; this
module splits and checks the options around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from citydesk.errors import InvalidQuery
from citydesk.hub.sta.filter_parse import parse_filter, parse_orderby

KNOWN = {"$filter", "$orderby", "$expand", "$select", "$top", "$skip", "$count", "$resultFormat"}


@dataclass
class Expand:
    """One ``$expand`` item: a navigation property and the options applied to it."""

    name: str
    query: Query


@dataclass
class Query:
    filter: Any = None
    orderby: list[tuple[Any, bool]] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)
    result_format: str | None = None
    raw: dict[str, str] = field(default_factory=dict)
    """The options as given, to build ``@iot.nextLink``."""


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote, start = 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InvalidQuery(f"unbalanced ')' at position {i} in {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quote:
        raise InvalidQuery(f"unbalanced parentheses or quotes in {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _int(name: str, value: str, minimum: int, maximum: int = 2**62) -> int:
    try:
        n = int(value)
    except ValueError:
        raise InvalidQuery(f"{name} must be a whole number, not {value!r}") from None
    if n < minimum:
        raise InvalidQuery(f"{name} must be at least {minimum}")
    if n > maximum:
        raise InvalidQuery(f"{name} may be at most {maximum}")
    return n


def parse_query(options: Mapping[str, str], *, max_top: int, nested: bool = False) -> Query:
    """Parse query options (already URL-decoded); unknown ``$`` options are errors."""
    q = Query(raw={k: v for k, v in options.items() if k.startswith("$")})
    for key, value in options.items():
        if not key.startswith("$"):
            continue
        if key not in KNOWN:
            raise InvalidQuery(f"unknown query option {key}")
        if key == "$filter":
            q.filter = parse_filter(value)
        elif key == "$orderby":
            q.orderby = parse_orderby(value)
        elif key == "$top":
            q.top = _int("$top", value, 0, max_top)
        elif key == "$skip":
            q.skip = _int("$skip", value, 0)
        elif key == "$count":
            if value not in ("true", "false"):
                raise InvalidQuery("$count must be true or false")
            q.count = value == "true"
        elif key == "$select":
            aliases = {"@iot.id": "id", "@iot.selfLink": "selfLink"}
            q.select = [aliases.get(s.strip(), s.strip()) for s in value.split(",") if s.strip()]
            if not q.select:
                raise InvalidQuery("$select needs at least one property")
        elif key == "$expand":
            q.expand = _merge(parse_expand(value, max_top=max_top))
        elif key == "$resultFormat":
            if value != "dataArray" or nested:
                raise InvalidQuery("$resultFormat supports only dataArray, at the top level")
            q.result_format = value
    return q


def parse_expand(text: str, *, max_top: int) -> list[Expand]:
    """``Datastreams($top=1;$expand=Observations),Locations`` and ``Datastreams/Sensor``."""
    items: list[Expand] = []
    for part in split_top(text, ","):
        options: dict[str, str] = {}
        head = part
        if part.endswith(")"):
            open_at = part.index("(")
            head = part[:open_at].strip()
            for opt in split_top(part[open_at + 1 : -1], ";"):
                if "=" not in opt:
                    raise InvalidQuery(f"$expand option {opt!r} is not name=value")
                k, v = opt.split("=", 1)
                options[k.strip()] = v.strip()
        names = [n.strip() for n in head.split("/")]
        if not all(n.isidentifier() for n in names):
            raise InvalidQuery(f"$expand: {head!r} is not a navigation path")
        inner = parse_query(options, max_top=max_top, nested=True)
        for name in reversed(names[1:]):
            inner = Query(expand=[Expand(name, inner)])
        items.append(Expand(names[0], inner))
    return items


def _merge(items: list[Expand]) -> list[Expand]:
    """``Datastreams/Sensor,Datastreams/Thing`` expands Datastreams once, with both inside."""
    merged: dict[str, Expand] = {}
    for item in items:
        if item.name in merged:
            merged[item.name].query.expand = _merge(merged[item.name].query.expand + item.query.expand)
        else:
            merged[item.name] = item
    return list(merged.values())
