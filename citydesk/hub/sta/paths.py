"""Resource paths: ``/Things(1)/Datastreams``, ``/Datastreams(1)/Observations/$ref``,
``/Observations(5)/result/$value``: parsed into the entity set addressed and how it is reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from citydesk.errors import InvalidQuery, NotFound
from citydesk.hub.sta.entities import MAX_ID, SETS, EntitySet, Relation

SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((?:'?(\d+)'?)\))?$")


@dataclass(frozen=True)
class Step:
    """One hop: from the previous entity (set, id) over ``relation``."""

    set: EntitySet
    id: int | None
    relation: Relation | None = None


@dataclass
class ResourcePath:
    steps: list[Step] = field(default_factory=list)
    attribute: str | None = None
    value: bool = False
    ref: bool = False

    @property
    def target(self) -> EntitySet:
        return self.steps[-1].set

    @property
    def single(self) -> bool:
        """Whether the path names one entity (an id, or a to-one navigation)."""
        last = self.steps[-1]
        return last.id is not None or (last.relation is not None and last.relation.kind == "one")

    @property
    def parent(self) -> Step | None:
        return self.steps[-2] if len(self.steps) > 1 else None


def _id(es: EntitySet, text: str | None) -> int | None:
    if not text:
        return None
    ident = int(text)
    if ident > MAX_ID:
        raise NotFound(f"no {es.singular} with @iot.id {text}")
    return ident


def parse_path(path: str) -> ResourcePath:
    """Parse the part of the URL after the version prefix."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise InvalidQuery("empty resource path")
    out = ResourcePath()
    for i, part in enumerate(parts):
        if part == "$ref":
            if i != len(parts) - 1 or not out.steps:
                raise InvalidQuery("$ref must end the path")
            out.ref = True
            continue
        if part == "$value":
            if out.attribute is None or i != len(parts) - 1:
                raise InvalidQuery("$value must follow a property")
            out.value = True
            continue
        m = SEGMENT.match(part)
        if m is None:
            raise InvalidQuery(f"invalid path segment {part!r}")
        name, ident = m.group(1), m.group(2)
        if not out.steps:
            es = SETS.get(name)
            if es is None:
                raise NotFound(f"no entity set named {name}")
            out.steps.append(Step(es, _id(es, ident)))
            continue
        if out.attribute is not None:
            raise InvalidQuery(f"nothing can follow the property {out.attribute}")
        prev = out.steps[-1]
        if prev.id is None and (prev.relation is None or prev.relation.kind != "one"):
            raise InvalidQuery(f"{prev.set.name} needs an id before /{part}")
        rel = prev.set.relation(name)
        if rel is not None:
            if ident and rel.kind == "one":
                raise InvalidQuery(f"{name} is a single entity and takes no id")
            out.steps.append(Step(SETS[rel.target], _id(SETS[rel.target], ident), rel))
        elif (prev.set.field(name) is not None or name == "id") and not ident:
            out.attribute = name
        else:
            raise NotFound(f"{prev.set.singular} has no property or navigation {name!r}")
    return out
