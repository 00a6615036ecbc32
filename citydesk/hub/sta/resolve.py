"""Property paths in ``$filter``/``$orderby`` resolved to columns of an entity set.

``name`` is a column; ``properties/owner`` a JSON path (the compiler takes the rest of the path);
``Datastream/ObservedProperty/name`` a correlated subquery through to-one relations, each hop
restricted to what the caller may see.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from citydesk.errors import InvalidQuery
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS, EntitySet
from citydesk.hub.sta.filter_sql import Operand

KIND_OF = {
    "string": "string",
    "number": "number",
    "datetime": "datetime",
    "interval": "datetime",
    "json": "json",
    "geometry": "geometry",
}


class EntityResolver:
    """Implements the compiler's ``Resolver`` protocol for one entity set."""

    def __init__(self, es: EntitySet, levels: Collection[str]) -> None:
        self.es = es
        self.levels = levels

    def resolve(self, path: tuple[str, ...]) -> tuple[Operand, int]:
        head = path[0]
        es = self.es
        if head in ("id", "@iot.id"):
            return Operand(es.col("id"), "id"), 1
        spec = es.field(head)
        if spec is not None and spec.column is None:
            raise InvalidQuery(
                f"{es.singular}.{head} is computed when read and cannot be filtered or sorted on"
            )
        if spec is not None and spec.column is not None:
            if spec.kind == "result":
                return Operand(es.col("result_number"), "result", alt=es.col("result_json")), 1
            kind = KIND_OF[spec.kind]
            if len(path) > 1 and kind != "json":
                raise InvalidQuery(f"{head} has no sub-properties")
            return Operand(es.col(spec.column), kind), 1  # type: ignore[arg-type]
        rel = es.relation(head)
        if rel is None:
            raise InvalidQuery(f"{es.singular} has no property {head!r}")
        if rel.kind != "one":
            raise InvalidQuery(f"$filter through the to-many navigation {head!r} is not supported")
        if len(path) == 1:
            raise InvalidQuery(f"{head} is an entity; name one of its properties, e.g. {head}/id")
        target = SETS[rel.target]
        inner, used = EntityResolver(target, self.levels).resolve(path[1:])
        assert rel.local is not None
        if inner.kind == "id" and used == len(path) - 1:
            return Operand(es.col(rel.local), "id"), 1 + used
        sub = (
            select(inner.expr)
            .where(target.col("id") == es.col(rel.local), visible(target, self.levels))
            .scalar_subquery()
        )
        alt = None
        if inner.alt is not None:
            alt = (
                select(inner.alt)
                .where(target.col("id") == es.col(rel.local), visible(target, self.levels))
                .scalar_subquery()
            )
        return Operand(sub, inner.kind, alt=alt), 1 + used
