"""Reading SensorThings entities: collections, single entities, navigation and ``$expand``.

One generic implementation for all eight sets, driven by ``entities.SETS``. Expanded
collections are fetched for all parents in one query with a window function (``row_number``
per parent), so ``$expand=Datastreams($top=1)`` on 100 Things is one query, not a hundred.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Connection, Select, func, literal_column, select
from sqlalchemy.exc import CompileError

from citydesk.errors import InvalidQuery, NotFound
from citydesk.hub.sta import extent
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS, EntitySet, Relation
from citydesk.hub.sta.filter_sql import compile_filter, compile_order
from citydesk.hub.sta.paths import ResourcePath
from citydesk.hub.sta.query import Expand, Query
from citydesk.hub.sta.resolve import EntityResolver
from citydesk.hub.sta.serialize import entity_json, field_value


@dataclass
class ReadContext:
    conn: Connection
    levels: Collection[str]
    base: str
    """The service root URL, e.g. ``http://host/sta/v1.1``."""
    default_top: int
    max_top: int
    count_exact_limit: int
    now: datetime
    restricted_read: int = 0
    """How many restricted (personal) entities this request has shown: the service audits them."""
    _restricted_streams: set[int] | None = None

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def note(self, es: EntitySet, rows: list[Any]) -> None:
        """Count the restricted rows about to be shown (only callers who may see them get any)."""
        if "restricted" not in self.levels or not rows:
            return
        if "disclosure" in es.table.c:
            self.restricted_read += sum(1 for r in rows if r._mapping["disclosure"] == "restricted")
        elif es.name == "Observations":
            if self._restricted_streams is None:
                ds = SETS["Datastreams"]
                found = self.conn.execute(select(ds.col("id")).where(ds.col("disclosure") == "restricted"))
                self._restricted_streams = {r[0] for r in found}
            streams = self._restricted_streams
            self.restricted_read += sum(1 for r in rows if r._mapping["datastream_id"] in streams)


def path_conditions(ctx: ReadContext, path: ResourcePath) -> list[ColumnElement[bool]]:
    """WHERE clauses on the target set that express the navigation path, hop by hop."""
    conds: list[ColumnElement[bool]] = []
    prev_es: EntitySet | None = None
    prev_ids: Any = None  # a scalar id or a subquery of ids of the previous hop
    for step in path.steps:
        es = step.set
        here: list[ColumnElement[bool]] = [visible(es, ctx.levels)]
        if step.id is not None:
            here.append(es.col("id") == step.id)
        if step.relation is not None and prev_es is not None:
            here.append(related_to(es, step.relation, prev_es, prev_ids))
        prev_ids = select(es.col("id")).where(*here).scalar_subquery() if step is not path.steps[-1] else None
        if step is path.steps[-1]:
            conds = here
        prev_es = es
    return conds


def related_to(target: EntitySet, rel: Relation, parent: EntitySet, parent_ids: Any) -> ColumnElement[bool]:
    """Rows of ``target`` reached from the parent rows in ``parent_ids`` over ``rel``."""
    if rel.kind == "one":
        assert rel.local is not None
        return target.col("id").in_(select(parent.col(rel.local)).where(parent.col("id").in_(parent_ids)))
    if rel.kind == "many":
        assert rel.remote is not None
        return target.col(rel.remote).in_(parent_ids)
    assert rel.through is not None and rel.local and rel.remote
    return target.col("id").in_(
        select(rel.through.c[rel.remote]).where(rel.through.c[rel.local].in_(parent_ids))
    )


def apply_query(ctx: ReadContext, es: EntitySet, stmt: Select[Any], q: Query) -> Select[Any]:
    """``stmt`` narrowed by ``$filter`` (and ``$select`` checked against the set's properties)."""
    for name in q.select or ():
        if name not in ("id", "selfLink") and es.field(name) is None and es.relation(name) is None:
            raise InvalidQuery(f"$select: {es.singular} has no property {name!r}")
    resolver = EntityResolver(es, ctx.levels)
    if q.filter is not None:
        stmt = stmt.where(compile_filter(q.filter, resolver, ctx.dialect, now=ctx.now))
    return stmt


def order_of(ctx: ReadContext, es: EntitySet, q: Query) -> list[Any]:
    order = compile_order(q.orderby, EntityResolver(es, ctx.levels), ctx.dialect) if q.orderby else []
    return [*order, es.col("id")]


def count_rows(ctx: ReadContext, stmt: Select[Any]) -> int:
    """Exact up to ``count_exact_limit``; above it the planner's estimate (PostgreSQL), as FROST does.

    The exact part is a count capped at ``limit + 1`` rows, so it stays cheap on any table.
    """
    limit = ctx.count_exact_limit
    # ``maintain_column_froms``: without it, a statement with no WHERE on the table loses its FROM.
    ones: Select[Any] = stmt.with_only_columns(literal_column("1"), maintain_column_froms=True)
    n = int(ctx.conn.execute(select(func.count()).select_from(ones.limit(limit + 1).subquery())).scalar_one())
    if n <= limit:
        return n
    if ctx.dialect != "postgresql":
        return int(ctx.conn.execute(select(func.count()).select_from(ones.subquery())).scalar_one())
    try:
        compiled = str(ones.compile(ctx.conn, compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError):  # a parameter type without a literal form: count instead
        return int(ctx.conn.execute(select(func.count()).select_from(ones.subquery())).scalar_one())
    # Driver SQL, not ``text()``: a ':' inside a string literal is not a bind parameter.
    plan = ctx.conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}").scalar_one()
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if estimate <= limit:
        # Below what was just counted: the statistics are stale (a table never analysed), so
        # the estimate is known to be wrong; count instead.
        return int(ctx.conn.execute(select(func.count()).select_from(ones.subquery())).scalar_one())
    return estimate


def next_link(url_base: str, q: Query, skip: int, top: int) -> str:
    params = {k: v for k, v in q.raw.items() if k not in ("$skip", "$top")}
    params["$top"] = str(top)
    params["$skip"] = str(skip + top)
    return f"{url_base}?{urlencode(params)}"


def check_parents(ctx: ReadContext, path: ResourcePath) -> None:
    """404 unless the entities a navigation path starts from exist (and may be seen)."""
    if len(path.steps) < 2:
        return
    prefix = ResourcePath(steps=path.steps[:-1])
    parent = prefix.target
    found = ctx.conn.execute(select(parent.col("id")).where(*path_conditions(ctx, prefix)).limit(1)).first()
    if found is None:
        raise NotFound(f"no {parent.singular} at {'/'.join(s.set.name for s in prefix.steps)}")


def read_collection(ctx: ReadContext, path: ResourcePath, q: Query, self_url: str) -> dict[str, Any]:
    es = path.target
    check_parents(ctx, path)
    base_stmt = apply_query(ctx, es, select(*es.columns()).where(*path_conditions(ctx, path)), q)
    top = ctx.default_top if q.top is None else q.top
    out: dict[str, Any] = {}
    if q.count:
        out["@iot.count"] = count_rows(ctx, base_stmt)
    rows = list(ctx.conn.execute(base_stmt.order_by(*order_of(ctx, es, q)).offset(q.skip).limit(top + 1)))
    more = len(rows) > top > 0
    rows = rows[:top]
    if q.result_format == "dataArray":
        out["value"] = data_array(ctx, es, rows, q)
    else:
        out["value"] = render(ctx, es, rows, q)
    if more:
        out["@iot.nextLink"] = next_link(self_url, q, q.skip, top)
    return out


def read_single(ctx: ReadContext, path: ResourcePath, q: Query) -> tuple[EntitySet, dict[str, Any]]:
    es = path.target
    stmt = apply_query(ctx, es, select(*es.columns()).where(*path_conditions(ctx, path)), q)
    row = ctx.conn.execute(stmt.limit(1)).first()
    if row is None:
        raise NotFound(f"no {es.singular} at {'/'.join(s.set.name for s in path.steps)}")
    return es, render(ctx, es, [row], q)[0]


def read_property(ctx: ReadContext, path: ResourcePath) -> Any:
    """``/Things(1)/name``: the value of one property (``None`` is a valid answer)."""
    es = path.target
    row = ctx.conn.execute(select(*es.columns()).where(*path_conditions(ctx, path)).limit(1)).first()
    if row is None:
        raise NotFound(f"no {es.singular} there")
    assert path.attribute is not None
    ctx.note(es, [row])
    if path.attribute == "id":
        return row._mapping["id"]
    spec = es.field(path.attribute)
    assert spec is not None
    if spec.derived:
        item: dict[str, Any] = {}
        extent.fill(ctx.conn, ctx.levels, [row._mapping["id"]], [item], [spec.name])
        return item.get(spec.name)
    return field_value(spec, row)


def render(ctx: ReadContext, es: EntitySet, rows: list[Any], q: Query) -> list[dict[str, Any]]:
    """Serialise rows and attach their expansions."""
    select_fields = q.select
    ctx.note(es, rows)
    items = [entity_json(es, r, ctx.base, select_fields) for r in rows]
    derived = [f.name for f in es.fields if f.derived and (select_fields is None or f.name in select_fields)]
    extent.fill(ctx.conn, ctx.levels, [r._mapping["id"] for r in rows], items, derived)
    for exp in q.expand:
        expand_into(ctx, es, rows, items, exp)
    return items


def expand_into(
    ctx: ReadContext, es: EntitySet, rows: list[Any], items: list[dict[str, Any]], exp: Expand
) -> None:
    rel = es.relation(exp.name)
    if rel is None:
        raise InvalidQuery(f"$expand: {es.singular} has no navigation property {exp.name!r}")
    target = SETS[rel.target]
    q = exp.query
    if not rows:
        return
    if rel.kind == "one":
        assert rel.local is not None
        ids = {r._mapping[rel.local] for r in rows} - {None}
        one = select(*target.columns()).where(target.col("id").in_(ids), visible(target, ctx.levels))
        found = {r._mapping["id"]: r for r in ctx.conn.execute(apply_query(ctx, target, one, q))}
        rendered = dict(zip(found, render(ctx, target, list(found.values()), q), strict=True))
        for row, item in zip(rows, items, strict=True):
            child = rendered.get(row._mapping[rel.local])
            if child is not None:
                item[exp.name] = child
        return
    parent_ids = [r._mapping["id"] for r in rows]
    if rel.kind == "many":
        assert rel.remote is not None
        parent_key = target.col(rel.remote)
        stmt: Select[Any] = select(*target.columns(), parent_key.label("_parent")).where(
            parent_key.in_(parent_ids)
        )
    else:
        assert rel.through is not None and rel.local and rel.remote
        parent_key = rel.through.c[rel.local]
        stmt = (
            select(*target.columns(), parent_key.label("_parent"))
            .join(rel.through, rel.through.c[rel.remote] == target.col("id"))
            .where(parent_key.in_(parent_ids))
        )
    stmt = apply_query(ctx, target, stmt.where(visible(target, ctx.levels)), q)
    top = ctx.default_top if q.top is None else q.top
    rn = func.row_number().over(partition_by=parent_key, order_by=order_of(ctx, target, q)).label("_rn")
    cols = [rn]
    if q.count:
        cols.append(func.count().over(partition_by=parent_key).label("_n"))
    inner = stmt.add_columns(*cols).subquery()
    # ``inner.c["_parent"]``, not ``inner.c._parent``: that attribute is the column collection's own.
    rank = inner.c["_rn"]
    window = select(inner).where(rank > q.skip, rank <= q.skip + top + 1).order_by(inner.c["_parent"], rank)
    groups: dict[Any, list[Any]] = defaultdict(list)
    counts: dict[Any, int] = {}
    for r in ctx.conn.execute(window):
        groups[r._mapping["_parent"]].append(r)
        if q.count:
            counts[r._mapping["_parent"]] = r._mapping["_n"]
    for pid, item in zip(parent_ids, items, strict=True):
        children = groups.get(pid, [])
        more = len(children) > top > 0
        children = children[:top]
        if q.count:
            item[f"{exp.name}@iot.count"] = counts.get(pid, 0)
        item[exp.name] = render(ctx, target, children, q)
        if more:
            url = f"{ctx.base}/{es.name}({pid})/{exp.name}"
            item[f"{exp.name}@iot.nextLink"] = next_link(url, q, q.skip, top)


DATA_ARRAY_DEFAULT = [
    "id", "phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters",
]  # fmt: skip


def data_array(ctx: ReadContext, es: EntitySet, rows: list[Any], q: Query) -> list[dict[str, Any]]:
    """``$resultFormat=dataArray``: observations grouped per Datastream as rows of components."""
    if es.name != "Observations":
        raise InvalidQuery("$resultFormat=dataArray applies to Observations only")
    components = q.select or DATA_ARRAY_DEFAULT
    ctx.note(es, rows)
    groups: dict[int, list[list[Any]]] = defaultdict(list)
    for r in rows:
        values: list[Any] = []
        for c in components:
            if c == "id":
                values.append(r._mapping["id"])
            else:
                spec = es.field(c)
                if spec is None:
                    raise InvalidQuery(f"dataArray component {c!r} is not an Observation property")
                values.append(field_value(spec, r))
        groups[r._mapping["datastream_id"]].append(values)
    return [
        {
            "Datastream@iot.navigationLink": f"{ctx.base}/Datastreams({ds})",
            "components": components,
            "dataArray@iot.count": len(arr),
            "dataArray": arr,
        }
        for ds, arr in groups.items()
    ]
