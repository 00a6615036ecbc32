"""Compile parsed SensorThings ``$filter`` / ``$orderby`` trees into SQLAlchemy Core expressions.

One compiler serves SQLite and PostgreSQL, emitting different SQL where they differ so that a query
returns the same rows on both. Values are typed at compile time: a mismatch (``name gt 5``) is an
``InvalidQuery`` naming the position, never SQL that fails at execution. JSON values are read behind a
type guard (a JSON string only equals a string; no PostgreSQL cast can meet ``"n/a"``). PostgreSQL
does arithmetic and rounding in NUMERIC (no float8 overflow errors; ``round`` is half away from zero,
as in SQLite), divisors go through NULLIF (``div 0`` is null) and ``div`` is true division on both;
SQLite computes in doubles, so the last digits may differ. Times are UTC: SQLite text
``YYYY-MM-DD HH:MM:SS.ffffff``, PostgreSQL ``timestamptz`` read ``AT TIME ZONE 'UTC'``. Geometry is
planar EPSG:4326 (``geo.distance`` is in degrees, as in the STA examples): PostGIS, or the ``cd_st_*``
functions of ``citydesk.geo.sqlfunc``. Comparisons keep SQL null semantics (``x ne 1`` skips nulls).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy import Column, ColumnElement, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from citydesk.db.metadata import Timestamp
from citydesk.errors import InvalidQuery
from citydesk.hub.sta import filter_parse as fp

SQL = ColumnElement[Any]
Kind = Literal["number", "string", "datetime", "bool", "geometry", "json", "result", "id"]


@dataclass(frozen=True)
class Operand:
    """What a Resolver returns for a property path.

    ``kind="result"``: ``expr`` is the numeric result column, ``alt`` the JSON column holding the other
    results. ``kind="geometry"``: ``expr`` is a JSON column of GeoJSON (a geometry or a Feature).
    ``kind="json"``: the path segments the resolver did not consume are keys inside ``expr``.
    """

    expr: SQL
    kind: Kind
    alt: SQL | None = None


class Resolver(Protocol):
    def resolve(self, path: tuple[str, ...]) -> tuple[Operand, int]:
        """The operand for the longest known prefix of ``path`` and how many segments it consumed.

        Raises InvalidQuery for unknown properties; expressions may be correlated scalar subqueries.
        """
        ...


@dataclass(frozen=True)
class _Val:
    """A typed intermediate value: a literal (``expr is None``; Python ``value``) or an expression."""

    kind: str  # an Operand kind, or date, time, duration, null
    pos: int
    expr: SQL | None = None
    value: Any = None
    alt: SQL | None = None  # kind "result": the JSON column
    path: tuple[str, ...] = ()  # kind "json": keys below expr
    numeric: bool = False  # PostgreSQL: expr is NUMERIC, so compare the other side as NUMERIC too

    @property
    def lit(self) -> bool:
        return self.expr is None


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
    "le": operator.le, "add": operator.add, "sub": operator.sub, "mul": operator.mul,
}  # fmt: skip
_NAMES = {
    "number": "a number", "id": "an id", "string": "a string", "datetime": "a datetime", "date": "a date",
    "time": "a time of day", "bool": "a boolean", "geometry": "a geometry", "json": "a JSON property",
    "result": "the result", "duration": "a duration", "null": "null",
}  # fmt: skip
# (start, length) of each part in SQLite's datetime text, and in the time text time() yields
_SQLITE_PARTS = {"year": (1, 4), "month": (6, 2), "day": (9, 2), "hour": (12, 2), "minute": (15, 2),
                 "second": (18, 2), "fractionalseconds": (21, 6)}  # fmt: skip
_SQLITE_TIME_PARTS = {"hour": (1, 2), "minute": (4, 2), "second": (7, 2), "fractionalseconds": (10, 6)}
_DATE_FUNCTIONS = ("year", "month", "day", "hour", "minute", "second", "fractionalseconds", "date", "time",
                   "totaloffsetminutes")  # fmt: skip
_PREDICATES = {"geo.intersects": "intersects", **{f"st_{n}": n for n in (
    "equals", "disjoint", "touches", "within", "overlaps", "crosses", "intersects", "contains")}}  # fmt: skip
_FIXED_TIMES = {"mindatetime": datetime(1, 1, 1, tzinfo=UTC),
                "maxdatetime": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}  # fmt: skip
_TEMPORAL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "datetime": Timestamp, "date": sa.Date(), "time": sa.Time()}  # fmt: skip
_BIG = 2_000_000_000  # clamp for substring indexes (PostgreSQL int4)
MAX_SQL_NODES = 20_000  # a 1000-term "id eq n or ..." list is about 7000


def _const(text: str) -> SQL:
    """A fixed SQL literal we control: no bound parameter, so plans stay stable."""
    return sa.literal_column(text)


def _iso(value: Any) -> str:
    """ISO 8601 text of a temporal literal, as JSON documents usually hold times (UTC with ``Z``)."""
    if isinstance(value, datetime):
        v = value.astimezone(UTC)
        frac = f".{v.microsecond:06d}".rstrip("0") if v.microsecond else ""
        return v.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
    return str(value.isoformat())


def _number(pos: int, value: int | float) -> _Val:
    """A folded number in the range both engines bind (ints beyond int64 become floats), else null."""
    if isinstance(value, int) and abs(value) > fp.INT64_MAX:
        value = float(value)
    return _Val("number", pos, value=value) if math.isfinite(value) else _Val("null", pos)


class _Compiler:
    def __init__(self, resolver: Resolver, dialect: str, now: datetime | None, label: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported dialect {dialect!r}")
        self.resolver, self.pg, self.label = resolver, dialect == "postgresql", label
        if now is not None and now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now or datetime.now(UTC)

    def err(self, message: str, pos: int) -> InvalidQuery:
        return InvalidQuery(f"{self.label}: {message} at position {pos + 1}")

    def describe(self, v: _Val) -> str:
        if v.lit and v.kind in ("number", "string"):
            return f"{_NAMES[v.kind]} ({v.value!r})"
        return f"{_NAMES['json']} ({'/'.join(v.path)})" if v.kind == "json" and v.path else _NAMES[v.kind]

    def type_error(self, v: _Val, want: str, ctx: str) -> InvalidQuery:
        return self.err(f"{ctx} expects {want}, found {self.describe(v)}", v.pos)

    def mismatch(self, left: _Val, right: _Val, pos: int, hint: str = "") -> InvalidQuery:
        return self.err(f"cannot compare {self.describe(left)} with {self.describe(right)}{hint}", pos)

    def value(self, node: fp.Node) -> _Val:
        if isinstance(node, fp.Literal):
            return _Val(node.type, node.pos, value=node.value)
        if isinstance(node, fp.Path):
            return self.path(node)
        if isinstance(node, fp.Logical):
            return self.logical(node)
        if isinstance(node, fp.Call):
            return self.call(node)
        if isinstance(node, fp.Unary):
            v = self.value(node.operand)
            if node.op == "not":
                if v.lit and v.kind == "bool":
                    return _Val("bool", node.pos, value=not v.value)
                return _Val("bool", node.pos, expr=not_(self.boolean(v, "not")))
            if v.lit and v.kind == "number":
                return _number(node.pos, -v.value)
            if v.kind == "duration":
                zero = _Val("duration", node.pos, value=timedelta(0))
                return _Val(
                    "duration", node.pos, expr=self.span(zero) - self.span(v)
                )  # Interval has no unary minus
            a = self.num(v, "'-'")[0]
            return _Val("number", node.pos, expr=-cast(a, sa.Numeric) if self.pg else -a, numeric=self.pg)
        left, right = self.value(node.left), self.value(node.right)
        if node.op not in fp.COMPARISONS:
            return self.arith(node.op, left, right, node.pos)
        expr = self.compare(node.op, left, right, node.pos)
        if isinstance(expr, sa.sql.elements.True_ | sa.sql.elements.False_):  # keep constants literal
            return _Val("bool", node.pos, value=isinstance(expr, sa.sql.elements.True_))
        return _Val("bool", node.pos, expr=expr)

    def logical(self, node: fp.Logical) -> _Val:
        """``and``/``or``, folding literal operands here: SQLAlchemy's own folding leaves constants that
        PostgreSQL refuses in ORDER BY (and SQLite reads as a column number)."""
        neutral, parts, decided = node.op == "and", [], False
        for operand in node.operands:
            v = self.value(operand)
            if v.lit and v.kind == "bool":
                decided = decided or v.value != neutral
            else:
                parts.append(self.boolean(v, node.op))
        if decided or not parts:
            return _Val("bool", node.pos, value=not neutral if decided else neutral)
        return _Val("bool", node.pos, expr=(and_ if neutral else or_)(*parts) if len(parts) > 1 else parts[0])

    def path(self, node: fp.Path) -> _Val:
        operand, used = self.resolver.resolve(node.segments)
        if not 1 <= used <= len(node.segments):
            raise ValueError(f"resolver consumed {used} of {len(node.segments)} path segments")
        rest = node.segments[used:]
        if not rest:
            return _Val(operand.kind, node.pos, expr=operand.expr, alt=operand.alt)
        if operand.kind == "json" or (operand.kind == "result" and operand.alt is not None):
            col = operand.expr if operand.kind == "json" else operand.alt
            return _Val("json", node.pos, expr=col, path=rest)
        raise self.err(f"'{'/'.join(node.segments[:used])}' has no property '{rest[0]}'", node.pos)

    def json(self, col: SQL, path: tuple[str, ...], want: str) -> SQL:
        """``col`` at ``path`` as a string, number or bool (null when the JSON value has another type),
        or as ``text``: any value as text, for null tests."""
        if self.pg:
            arr = literal(list(path), ARRAY(sa.Text())) if path else _const("'{}'::text[]")
            text: SQL = col.op("#>>", return_type=sa.Text())(arr)
            typ = func.jsonb_typeof(col.op("#>", return_type=JSONB())(arr) if path else col)
            read = {"string": ("string", text), "number": ("number", cast(text, sa.Numeric)),
                    "bool": ("boolean", cast(text, sa.Boolean))}  # fmt: skip
        else:
            p = "$" + "".join(f"[{k}]" if k.isascii() and k.isdigit() else f'."{k}"' for k in path)
            text = func.json_extract(col, literal(p, sa.Text()))
            typ = func.json_type(col, literal(p, sa.Text()))
            if want == "bool":
                flag = case((typ == _const("'true'"), 1), (typ == _const("'false'"), 0))
                return sa.type_coerce(flag, sa.Boolean())
            if want == "number":
                number = typ.in_([_const("'integer'"), _const("'real'")])
                return case((number, sa.type_coerce(text, sa.Float())))
            read = {"string": ("text", sa.type_coerce(text, sa.Text()))}
        if want == "text":
            return text
        name, expr = read[want]
        return case((typ == _const(f"'{name}'"), expr))

    def json_of(self, v: _Val, want: str) -> SQL | None:
        """``v`` read from JSON (a JSON property, or a result's JSON column); None if it is neither."""
        if v.kind == "json" and v.expr is not None:
            return self.json(v.expr, v.path, want)
        return self.json(v.alt, (), want) if v.kind == "result" and v.alt is not None else None

    def num(self, v: _Val, ctx: str) -> tuple[SQL, bool]:
        """SQL number for ``v`` and whether it is NUMERIC on PostgreSQL."""
        if v.kind in ("number", "id"):
            if v.expr is None:
                return literal(v.value, sa.BigInteger() if isinstance(v.value, int) else sa.Double()), False
            return v.expr, v.numeric
        if v.kind == "result" and v.expr is not None:
            return v.expr, False
        if v.kind == "json" and v.expr is not None:
            return self.json(v.expr, v.path, "number"), self.pg
        raise self.type_error(v, "a number", ctx)

    def string(self, v: _Val, ctx: str) -> SQL:
        if v.kind == "string":
            return literal(v.value, sa.Text()) if v.expr is None else v.expr
        if (got := self.json_of(v, "string")) is None:
            raise self.type_error(v, "a string", ctx)
        return got

    def boolean(self, v: _Val, ctx: str) -> SQL:
        if v.kind == "bool":
            return (true() if v.value else false()) if v.expr is None else v.expr
        if (got := self.json_of(v, "bool")) is None:
            raise self.type_error(v, "a boolean", ctx)
        return got

    def temporal(self, v: _Val, kind: str, ctx: str) -> SQL:
        if v.kind != kind:
            raise self.type_error(v, _NAMES[kind], ctx)
        if v.expr is not None:
            return v.expr
        return literal(v.value, _TEMPORAL_TYPES[kind])

    def geometry(self, v: _Val, ctx: str) -> SQL:
        if v.kind != "geometry":
            raise self.type_error(v, "a geometry", ctx)
        if v.expr is None:
            wkt = literal(v.value, sa.Text())
            return func.ST_GeomFromText(wkt, _const("4326")) if self.pg else wkt
        if not self.pg:
            return sa.type_coerce(v.expr, sa.Text())
        g = func.coalesce(v.expr.op("->", return_type=JSONB())(_const("'geometry'")), v.expr)  # a Feature's
        geom = func.ST_SetSRID(func.ST_GeomFromGeoJSON(cast(g, sa.Text)), _const("4326"))
        return case((func.jsonb_typeof(g) == _const("'object'"), geom))  # JSON null would be an error

    def is_null(self, v: _Val) -> SQL:
        if v.expr is None:
            return true() if v.kind == "null" else false()
        if v.kind in ("json", "geometry"):  # SQL NULL, JSON null or missing key
            return self.json(v.expr, v.path, "text").is_(None)
        if v.kind == "result" and v.alt is not None:
            return and_(v.expr.is_(None), self.json(v.alt, (), "text").is_(None))
        return v.expr.is_(None)

    def coerce(self, v: _Val, kind: str) -> _Val:
        """Literal ``v`` read as ``kind`` where that is unambiguous (``'2019-01-01'`` as a datetime, ``'42'``
        as an id, a date as midnight UTC); otherwise ``v`` unchanged."""
        value: Any = None
        try:
            if v.kind == "string" and kind == "datetime":
                value = fp.parse_datetime_text(v.value)
                day = None if value else fp.parse_date_text(v.value)
                value = datetime.combine(day, time(), tzinfo=UTC) if day else value
            elif v.kind == "string" and kind in ("date", "time"):
                value = (fp.parse_date_text if kind == "date" else fp.parse_time_text)(v.value)
            elif v.kind == "date" and kind == "datetime":
                value = datetime.combine(v.value, time(), tzinfo=UTC)
            elif v.kind == "string" and kind == "id" and v.value.isascii() and v.value.isdigit():
                value, kind = (int(v.value) if int(v.value) <= fp.INT64_MAX else None), "number"
        except ValueError:
            return v
        return v if value is None else _Val(kind, v.pos, value=value)

    def compare(self, op: str, left: _Val, right: _Val, pos: int) -> SQL:
        if "null" in (left.kind, right.kind):
            if op not in ("eq", "ne"):
                raise self.err(f"null can only be compared with eq or ne, not {op}", pos)
            test = self.is_null(right if left.kind == "null" else left)
            return test if op == "eq" else not_(test)
        fn, soft = _OPS[op], ("json", "result")
        if left.kind == right.kind == "json":  # match only values of the same JSON type
            assert left.expr is not None and right.expr is not None
            return or_(*(fn(self.json(left.expr, left.path, t), self.json(right.expr, right.path, t))
                         for t in ("number", "string", "bool")))  # fmt: skip
        if left.kind in soft or right.kind in soft:  # the other side decides how JSON is read
            hard = left if right.kind in soft else right
            target = "number" if hard.kind in (*soft, "id") else hard.kind
            if target in ("datetime", "date", "time") and hard.lit:  # JSON keeps times as ISO text
                a, b = self.string(left if hard is right else right, op), literal(_iso(hard.value), sa.Text())
                return fn(a, b) if hard is right else fn(b, a)
            if target not in ("number", "string", "bool"):
                raise self.mismatch(left, right, pos)
        else:
            left = self.coerce(left, right.kind) if left.lit else left
            right = self.coerce(right, left.kind) if right.lit else right
            target = "number" if left.kind == "id" else left.kind
            if target != ("number" if right.kind == "id" else right.kind) or target == "geometry":
                raise self.mismatch(left, right, pos, "; use st_equals()" if target == "geometry" else "")
        if target == "number":
            (x, nx), (y, ny) = self.num(left, op), self.num(right, op)
            return fn(cast(x, sa.Numeric), cast(y, sa.Numeric)) if self.pg and (nx or ny) else fn(x, y)
        if target == "string":
            return fn(self.string(left, op), self.string(right, op))
        if target == "bool":  # bound, not true()/false(): SQLAlchemy allows those with eq/ne only
            return fn(*(self.boolean(v, op) if v.expr is not None else literal(v.value, sa.Boolean())
                        for v in (left, right)))  # fmt: skip
        if target in ("datetime", "date", "time"):
            return fn(self.temporal(left, target, op), self.temporal(right, target, op))
        if target == "duration" and left.lit and right.lit:
            return true() if fn(left.value, right.value) else false()
        if target == "duration":
            return fn(self.span(left), self.span(right))
        raise self.mismatch(left, right, pos)

    def arith(self, op: str, left: _Val, right: _Val, pos: int) -> _Val:
        if {left.kind, right.kind} & {"datetime", "duration"}:
            return self.time_arith(op, left, right, pos)
        if left.lit and right.lit and left.kind == right.kind == "number":
            x, y = left.value, right.value
            if op in ("div", "mod") and y == 0:
                return _Val("null", pos)
            if op == "mod":  # the sign of the dividend, as in SQL
                return _number(pos, (abs(x) % abs(y)) * (1 if x >= 0 else -1))
            return _number(pos, x / y if op == "div" else _OPS[op](x, y))
        a, b = self.num(left, op)[0], self.num(right, op)[0]
        if self.pg:
            a, b = cast(a, sa.Numeric), cast(b, sa.Numeric)
            safe_b = func.nullif(b, 0)
            expr = a / safe_b if op == "div" else func.mod(a, safe_b) if op == "mod" else _OPS[op](a, b)
            return _Val("number", pos, expr=expr, numeric=True)
        # SQLite: x / 0 is null, integer overflow turns into REAL, and '%' would truncate REALs.
        real_a = cast(a, sa.Float)
        expr = real_a / b if op == "div" else a - b * cast(real_a / b, sa.Integer) if op == "mod" else None
        return _Val("number", pos, expr=_OPS[op](a, b) if expr is None else expr)

    def time_arith(self, op: str, left: _Val, right: _Val, pos: int) -> _Val:
        """``datetime add/sub duration``, ``duration add/sub duration`` and ``datetime sub datetime``
        (a duration), as OData 4.0 URL Conventions §5.1.1.2 define them. Literals fold here; a
        duration expression is an ``interval`` on PostgreSQL and a number of seconds on SQLite."""
        kinds = (left.kind, right.kind)
        if op == "sub" and kinds == ("datetime", "datetime"):
            if left.lit and right.lit:
                return _Val("duration", pos, value=left.value - right.value)
            return _Val("duration", pos, expr=self.elapsed(left, right, op))
        if op in ("add", "sub") and kinds == ("duration", "duration"):
            if left.lit and right.lit:
                return _Val("duration", pos, value=_OPS[op](left.value, right.value))
            return _Val("duration", pos, expr=_OPS[op](self.span(left), self.span(right)))
        if op == "add" and kinds == ("duration", "datetime"):
            left, right = right, left
        elif not (op in ("add", "sub") and kinds == ("datetime", "duration")):
            raise self.err(f"cannot {op} {self.describe(left)} and {self.describe(right)}", pos)
        if left.lit and right.lit:
            try:
                return _Val("datetime", pos, value=_OPS[op](left.value, right.value))
            except OverflowError:
                raise self.err("datetime out of range", pos) from None
        start = self.temporal(left, "datetime", op)
        if self.pg:
            return _Val("datetime", pos, expr=_OPS[op](start, self.span(right)))
        # SQLite shifts by a "+N.NNNNNN seconds" modifier; it keeps milliseconds, padded to six digits.
        if right.lit:
            delta: timedelta = right.value if op == "add" else -right.value
            seconds: SQL = _const(f"'{delta.total_seconds():+.6f} seconds'")
        else:
            signed = self.span(right) if op == "add" else -self.span(right)
            seconds = func.printf(_const("'%+.6f seconds'"), signed, type_=sa.Text())
        shifted = func.strftime("%Y-%m-%d %H:%M:%f", start, seconds, type_=sa.Text())
        return _Val("datetime", pos, expr=shifted.concat(_const("'000'")))

    def span(self, v: _Val) -> SQL:
        """A duration as SQL: an ``interval`` on PostgreSQL, seconds on SQLite."""
        if v.expr is not None:
            return v.expr
        if self.pg:
            return literal(v.value, sa.Interval())
        return literal(v.value.total_seconds(), sa.Float())

    def elapsed(self, left: _Val, right: _Val, ctx: str) -> SQL:
        """``left - right`` for two datetimes, as a duration (``span``). SQLite stores UTC text
        ``YYYY-MM-DD HH:MM:SS.ffffff``: whole epoch seconds and the fraction are subtracted apart,
        so that microseconds survive the doubles."""
        a, b = self.temporal(left, "datetime", ctx), self.temporal(right, "datetime", ctx)
        if self.pg:
            return sa.type_coerce(a - b, sa.Interval())
        whole = cast(func.strftime("%s", a), sa.Integer) - cast(func.strftime("%s", b), sa.Integer)
        fraction = cast(func.substr(a, 20), sa.Float) - cast(func.substr(b, 20), sa.Float)
        return sa.type_coerce(whole + fraction, sa.Float())

    def call(self, node: fp.Call) -> _Val:
        name, pos = node.name, node.pos
        if name in ("now", *_FIXED_TIMES):
            return _Val("datetime", pos, value=self.now if name == "now" else _FIXED_TIMES[name])
        args, ctx = [self.value(a) for a in node.args], f"{name}()"
        if name in ("round", "floor", "ceiling"):
            return self.math(name, args[0], pos)
        if name in _DATE_FUNCTIONS:
            return self.datepart(name, args[0], pos)
        if not name.startswith(("st_", "geo.")):
            return self.text_fn(name, args, pos)
        geoms = [self.geometry(a, ctx) for a in args[:2]]
        if name in ("geo.distance", "geo.length"):
            fn = getattr(func, ("ST_" if self.pg else "cd_st_") + name[4:])
            return _Val("number", pos, expr=fn(*geoms))
        if name == "st_relate":
            pat = args[2]
            if not (pat.lit and pat.kind == "string" and len(pat.value) == 9
                    and set(pat.value.upper()) <= set("TF*012")):  # fmt: skip
                raise self.err("st_relate() expects a 9-character DE-9IM pattern string", pat.pos)
            geoms.append(literal(pat.value.upper(), sa.Text()))
        fn = getattr(func, ("ST_" if self.pg else "cd_st_") + _PREDICATES.get(name, "relate"))
        return _Val("bool", pos, expr=sa.type_coerce(fn(*geoms), sa.Boolean()))

    def text_fn(self, name: str, args: list[_Val], pos: int) -> _Val:
        ctx = f"{name}()"
        if name == "substring":
            text, start = self.string(args[0], ctx), self.index_arg(args[1], ctx, 1)
            length = [self.index_arg(args[2], ctx, 0)] if len(args) == 3 else []
            return _Val("string", pos, expr=func.substr(text, start, *length))
        s = [self.string(a, ctx) for a in args]
        find = func.strpos if self.pg else func.instr
        if name in ("substringof", "contains"):
            hay, needle = (s[1], s[0]) if name == "substringof" else (s[0], s[1])
            return _Val("bool", pos, expr=find(hay, needle) > 0)  # not LIKE: no wildcards, case-sensitive
        if name == "startswith":
            return _Val("bool", pos, expr=func.substr(s[0], 1, func.length(s[1])) == s[1])
        if name == "endswith":
            # (SQLite's substr counts from the end when start < 1, PostgreSQL's does not)
            tail = (func.right(s[0], func.length(s[1])) if self.pg
                    else func.substr(s[0], func.length(s[0]) - func.length(s[1]) + 1))  # fmt: skip
            return _Val("bool", pos, expr=tail == s[1])
        if name == "length":
            return _Val("number", pos, expr=func.length(s[0]))
        if name == "indexof":
            return _Val("number", pos, expr=find(s[0], s[1]) - 1)
        if name == "concat":
            return _Val("string", pos, expr=s[0].concat(s[1]))
        fn = {"tolower": func.lower, "toupper": func.upper, "trim": func.trim}[name]
        return _Val("string", pos, expr=fn(s[0], type_=sa.Text()))

    def index_arg(self, v: _Val, ctx: str, offset: int) -> SQL:
        """A non-negative int4 (plus ``offset``) for substr(): PostgreSQL rejects negative lengths."""
        if v.lit and v.kind == "number":
            if v.value != int(v.value):
                raise self.type_error(v, "an integer", ctx)
            return literal(min(max(int(v.value), 0), _BIG) + offset, sa.Integer())
        a = self.num(v, ctx)[0]
        return cast(case((a < 0, 0), (a > _BIG, _BIG), else_=a), sa.Integer) + offset  # PG: NaN > _BIG

    def math(self, name: str, v: _Val, pos: int) -> _Val:
        sql_name = "ceil" if name == "ceiling" else name
        if v.lit and v.kind == "number":
            x = v.value
            r = math.copysign(math.floor(abs(x) + 0.5), x) if name == "round" else getattr(math, sql_name)(x)
            return _number(pos, int(r))
        a = self.num(v, f"{name}()")[0]
        if self.pg:
            return _Val("number", pos, expr=getattr(func, sql_name)(cast(a, sa.Numeric)), numeric=True)
        if name == "round":  # SQLite's round is half away from zero, like PostgreSQL's on NUMERIC
            return _Val("number", pos, expr=func.round(a))
        # SQLite may lack floor()/ceil() (optional math functions); beyond 2**52 every double is whole.
        whole, big = cast(a, sa.Integer), _const("4503599627370496.0")
        step = case((whole > a, whole - 1) if name == "floor" else (whole < a, whole + 1), else_=whole)
        return _Val("number", pos, expr=case((or_(a >= big, a <= -big), a), else_=step))

    def datepart(self, name: str, v: _Val, pos: int) -> _Val:
        allowed: tuple[str, ...] = ("datetime", "time")
        if name in ("year", "month", "day", "date", "time", "totaloffsetminutes"):
            allowed = ("datetime", "date") if name in ("year", "month", "day") else ("datetime",)
        if v.kind not in allowed:
            raise self.type_error(v, " or ".join(_NAMES[k] for k in allowed), f"{name}()")
        kind = name if name in ("date", "time") else "number"
        if v.expr is None:  # literals keep the offset they were written with
            x = v.value
            folded = {"date": lambda: x.date(), "time": lambda: x.replace(tzinfo=None).time(),
                      "fractionalseconds": lambda: x.microsecond / 1e6,
                      "totaloffsetminutes": lambda: int(x.utcoffset().total_seconds() // 60)}  # fmt: skip
            return _Val(kind, pos, value=folded[name]() if name in folded else getattr(x, name))
        col = v.expr
        if name == "totaloffsetminutes":  # stored times are UTC
            return _Val("number", pos, expr=case((col.is_not(None), _const("0"))))
        if self.pg:
            src = func.timezone(_const("'UTC'"), col) if v.kind == "datetime" else col
            if name in ("date", "time"):
                return _Val(kind, pos, expr=cast(src, sa.Date if name == "date" else sa.Time))
            if name == "fractionalseconds":
                micros = func.mod(cast(sa.extract("microseconds", src), sa.Numeric), 1000000)
                return _Val("number", pos, expr=micros / 1000000, numeric=True)
            part = func.floor(sa.extract("second", src)) if name == "second" else sa.extract(name, src)
            return _Val("number", pos, expr=cast(part, sa.Integer))
        if name in ("date", "time"):
            return _Val(kind, pos, expr=func.substr(col, 1, 10) if name == "date" else func.substr(col, 12))
        start, length = (_SQLITE_TIME_PARTS if v.kind == "time" else _SQLITE_PARTS)[name]
        digits = cast(func.substr(col, start, length), sa.Integer)
        return _Val("number", pos, expr=digits / 1e6 if name == "fractionalseconds" else digits)

    def sort_keys(self, v: _Val) -> list[SQL]:
        if v.expr is None:
            return []  # a constant orders nothing (and a bare number would mean a column index)
        if v.kind in ("number", "id", "string", "datetime", "date", "time", "bool", "duration"):
            return [v.expr]
        if v.kind == "result":
            return [v.expr] + ([self.json(v.alt, (), "string")] if v.alt is not None else [])
        if v.kind == "json":
            return [self.json(v.expr, v.path, "number"), self.json(v.expr, v.path, "string")]
        raise self.err(f"cannot order by {self.describe(v)}", v.pos)


def _check_size(exprs: Sequence[SQL], label: str) -> None:
    """Refuse expressions whose SQL would be huge. Some translations repeat their operand (SQLite
    ``floor``, clamped substring indexes), so nesting them grows the text exponentially while the tree
    stays small. Counts nodes as rendered, memoising shared subtrees so that counting stays cheap."""
    size: dict[int, int] = {}
    keep: list[Any] = []  # visited nodes stay alive, so their ids stay unique
    stack: list[tuple[Any, list[Any] | None]] = [(e, None) for e in exprs]
    while stack:
        node, kids = stack.pop()
        if kids is None:
            if id(node) not in size:
                kids = list(node.get_children())
                keep.append(node)
                stack.append((node, kids))
                stack.extend((k, None) for k in kids if id(k) not in size)
            continue
        size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        if size[id(node)] > MAX_SQL_NODES:
            raise InvalidQuery(f"{label}: expression is too complex")


def compile_filter(
    node: fp.Node, resolver: Resolver, dialect: str, *, now: datetime | None = None
) -> ColumnElement[bool]:
    """The WHERE condition for a parsed ``$filter`` on ``dialect`` ("sqlite" or "postgresql").

    ``now`` is what ``now()`` means, bound as a parameter (default: the current UTC time).
    """
    c = _Compiler(resolver, dialect, now, "$filter")
    clause = c.boolean(c.value(node), "$filter")
    _check_size([clause], "$filter")
    return clause


def compile_order(
    items: Sequence[tuple[fp.Node, bool]], resolver: Resolver, dialect: str, *, now: datetime | None = None
) -> list[SQL]:
    """ORDER BY terms for a parsed ``$orderby`` (the list ``parse_orderby`` returns).

    Nulls come first ascending and last descending on both engines, as OData specifies; the clause is
    left out for NOT NULL columns so that PostgreSQL can still walk an index. Results and JSON
    properties sort by their numbers, then by their strings.
    """
    c = _Compiler(resolver, dialect, now, "$orderby")
    out: list[SQL] = []
    for node, descending in items:
        for key in c.sort_keys(c.value(node)):
            plain = isinstance(key, Column) and not key.nullable
            if descending:
                out.append(key.desc() if plain else key.desc().nulls_last())
            else:
                out.append(key.asc() if plain else key.asc().nulls_first())
    _check_size(out, "$orderby")
    return out
