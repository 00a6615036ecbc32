"""SensorThings ``$filter``/``$orderby``: parser units, then the same queries on SQLite and PostgreSQL.

The execution tests use a small table of their own (not the hub schema) so that every storage
convention the compiler relies on — UTC text times on SQLite, JSONB, GeoJSON columns, the two result
columns — is exercised directly, including through a correlated subquery like the STA layer builds.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Float, FromClause, Integer, MetaData, Table, Text, select, text
from sqlalchemy.exc import OperationalError

from citydesk.db.engine import make_engine
from citydesk.db.metadata import Json, UtcDateTime
from citydesk.errors import InvalidQuery
from citydesk.hub.sta import filter_parse as fp
from citydesk.hub.sta.filter_parse import FUNCTIONS, Binary, Call, Literal, Logical, Unary
from citydesk.hub.sta.filter_sql import Operand, compile_filter, compile_order

P = fp.Path
parse_filter, parse_orderby = fp.parse_filter, fp.parse_orderby
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ parser


def lit(value: Any, type_: str = "number") -> Literal:
    return Literal(value, type_)


def test_precedence_or_and_not_comparison() -> None:
    tree = parse_filter("a or b and not c eq 1")
    c_eq_1 = Binary("eq", P(("c",)), lit(1))
    assert tree == Logical("or", (P(("a",)), Logical("and", (P(("b",)), Unary("not", c_eq_1)))))


def test_arithmetic_precedence_and_left_associativity() -> None:
    assert parse_filter("a add b mul -c sub 1 eq 2") == Binary(
        "eq",
        Binary("sub", Binary("add", P(("a",)), Binary("mul", P(("b",)), Unary("neg", P(("c",))))), lit(1)),
        lit(2),
    )
    assert parse_filter("a div b mod c") == Binary("mod", Binary("div", P(("a",)), P(("b",))), P(("c",)))


def test_parentheses_override_precedence() -> None:
    tree = parse_filter("((a or b)) and (not (c eq (1 add 2)))")
    assert tree == Logical(
        "and",
        (
            Logical("or", (P(("a",)), P(("b",)))),
            Unary("not", Binary("eq", P(("c",)), Binary("add", lit(1), lit(2)))),
        ),
    )


def test_or_chains_stay_flat() -> None:
    tree = parse_filter(" or ".join(f"id eq {i}" for i in range(500)))
    assert isinstance(tree, Logical) and len(tree.operands) == 500


def test_keywords_are_case_insensitive_paths_are_not() -> None:
    assert parse_filter("Name EQ 'x' AND NOT Flag") == Logical(
        "and", (Binary("eq", P(("Name",)), lit("x", "string")), Unary("not", P(("Flag",))))
    )


def test_string_escapes() -> None:
    assert parse_filter("name eq 'it''s'").right == lit("it's", "string")  # type: ignore[union-attr]
    assert parse_filter("name eq ''''").right == lit("'", "string")  # type: ignore[union-attr]
    assert parse_filter("name eq ''").right == lit("", "string")  # type: ignore[union-attr]


def test_numbers() -> None:
    vals = [parse_filter(f"x eq {s}").right for s in ("42", "4.5", "1e3", "2.5E-2", "-7")]  # type: ignore[union-attr]
    assert vals == [lit(42), lit(4.5), lit(1000.0), lit(0.025), lit(-7)]
    assert isinstance(vals[0].value, int)  # type: ignore[union-attr]


def test_literals_bool_null() -> None:
    assert parse_filter("a eq true or a eq false or a eq null") == Logical(
        "or",
        (Binary("eq", P(("a",)), lit(True, "bool")), Binary("eq", P(("a",)), lit(False, "bool")),
         Binary("eq", P(("a",)), lit(None, "null"))),
    )  # fmt: skip


def test_datetimes_dates_times() -> None:
    def right(s: str) -> Any:
        return parse_filter(f"t ge {s}").right  # type: ignore[union-attr]

    assert right("2016-01-01T00:00:00Z") == lit(datetime(2016, 1, 1, tzinfo=UTC), "datetime")
    v = right("2016-01-01T05:00:00.123+09:00").value
    assert v == datetime(2016, 1, 1, 5, 0, 0, 123000, tzinfo=timezone(timedelta(hours=9)))
    assert v.astimezone(UTC) == datetime(2015, 12, 31, 20, 0, 0, 123000, tzinfo=UTC)
    assert right("2016-01-01T05:00Z").value == datetime(2016, 1, 1, 5, tzinfo=UTC)
    assert right("2016-01-01T05:00:00").value.tzinfo == UTC  # no offset: UTC
    assert right("2016-01-01") == lit(date(2016, 1, 1), "date")
    assert right("13:45:30.5") == lit(time(13, 45, 30, 500000), "time")


def test_durations() -> None:
    assert parse_filter("duration'P1DT2H'") == lit(timedelta(days=1, hours=2), "duration")
    assert parse_filter("duration'PT1.5S'") == lit(timedelta(seconds=1.5), "duration")
    assert parse_filter("-duration'PT30M'") == lit(timedelta(minutes=-30), "duration")
    assert parse_filter("duration'-P2D'") == lit(timedelta(days=-2), "duration")
    for bad in ("duration'P1Y'", "duration'P1M'", "duration'PT'", "duration'1D'", "duration'P'"):
        with pytest.raises(InvalidQuery, match="duration"):
            parse_filter(bad)


def test_geography_literals() -> None:
    tree = parse_filter("st_within(location, geography'POLYGON((0 0, 1 0, 1 1, 0 0))')")
    assert tree == Call("st_within", (P(("location",)), lit("POLYGON((0 0, 1 0, 1 1, 0 0))", "geometry")))
    assert parse_filter("geometry'SRID=4326;POINT(127 37.5)'") == lit("POINT(127 37.5)", "geometry")
    with pytest.raises(InvalidQuery, match="invalid geography literal: not valid WKT at position 1"):
        parse_filter("geography'POINT(1'")
    with pytest.raises(InvalidQuery, match="Self-intersection"):
        parse_filter("geography'POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))'")
    with pytest.raises(InvalidQuery, match="SRID 4326"):
        parse_filter("geography'SRID=3857;POINT(1 2)'")


def test_paths_and_functions() -> None:
    assert parse_filter("Datastream/ObservedProperty/name eq 'x'").left == P(  # type: ignore[union-attr]
        ("Datastream", "ObservedProperty", "name")
    )
    assert parse_filter("@iot.id eq 1").left == P(("id",))  # type: ignore[union-attr]
    assert parse_filter("Thing/@iot.id eq 1").left == P(("Thing", "id"))  # type: ignore[union-attr]
    assert parse_filter("properties/tags/0 eq 'a'").left == P(("properties", "tags", "0"))  # type: ignore[union-attr]
    assert parse_filter("geo.distance(a, b) lt 1").left == Call("geo.distance", (P(("a",)), P(("b",))))  # type: ignore[union-attr]
    assert parse_filter("now() gt t").left == Call("now", ())  # type: ignore[union-attr]
    assert parse_filter("SUBSTRING(a, 1, 2) eq 'x'").left.name == "substring"  # type: ignore[union-attr]
    assert parse_filter("not(a eq 1)") == Unary("not", Binary("eq", P(("a",)), lit(1)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(a eq 1", "$filter: expected ')' at position 8, found end of input"),
        ("(a eq 1 eq", "$filter: expected an operand at position 11, found end of input"),
        ("substringof('a' 'b', name)", "$filter: expected ',' or ')' at position 17, found \"'b'\""),
        ("name eq 'abc", "$filter: unterminated string literal starting at position 9"),
        ("name eq", "$filter: expected an operand at position 8, found end of input"),
        ("name eq 1 foo", "$filter: expected an operator or end of expression at position 11, found 'foo'"),
        ("foo(1) eq 2", "$filter: unknown function 'foo' at position 1"),
        ("length(a, b) eq 1", "$filter: function length takes 1 argument(s), got 2 at position 1"),
        ("substring(a) eq 'x'", "$filter: function substring takes 2 or 3 argument(s), got 1 at position 1"),
        ("a eq 2019-02-30", "$filter: invalid date '2019-02-30' at position 6"),
        ("a eq 2019-01-01T25:00:00Z", "$filter: invalid datetime '2019-01-01T25:00:00Z' at position 6"),
        ("a eq 99999999999999999999", "$filter: integer 99999999999999999999 is out of range at position 6"),
        ("a eq 1e999", "$filter: number 1e999 is out of range at position 6"),
        ("a eq #", "$filter: unexpected character '#' at position 6"),
        ("a eq eq 1", "$filter: expected an operand at position 6, found 'eq'"),
        ("properties/ (1)", "$filter: expected a property name after '/' at position 13, found '('"),
        ("blob'xx'", "unknown literal type 'blob', expected duration, geography or geometry at position 1"),
        ("", "$filter: expected an expression at position 1, found end of input"),
        # Not in the SensorThings 1.1 grammar (OData 4.0 Table 22): said so, not just "unexpected".
        (
            "name in ('a', 'b')",
            "$filter: 'in' is OData 4.01, not SensorThings 1.1: write a eq 1 or a eq 2 at position 6",
        ),
        ("Datastreams/any(d: d/name eq 'x')", "the lambda operators any and all are not in SensorThings 1.1"),
        ("a eq (" * 40, "nested more than 32 levels deep"),
        (" add ".join(["a"] * 40) + " eq 1", "nested more than 32 levels deep"),
    ],
)
def test_syntax_errors_point_at_the_position(text: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        parse_filter(text)
    assert message in str(exc.value)


def test_orderby_parse() -> None:
    assert parse_orderby("result desc, name") == [(P(("result",)), True), (P(("name",)), False)]
    assert parse_orderby("length(name) ASC,id") == [
        (Call("length", (P(("name",)),)), False),
        (P(("id",)), False),
    ]
    for bad, message in [
        ("", "$orderby: expected an expression at position 1, found end of input"),
        ("name,", "$orderby: expected an expression at position 6, found end of input"),
        ("name sideways", "$orderby: expected ',', 'asc', 'desc' or end of expression at position 6, found"),
        ("name desc desc", "at position 11"),
    ]:
        with pytest.raises(InvalidQuery) as exc:
            parse_orderby(bad)
        assert message in str(exc.value)


def test_fuzz_garbage_only_raises_invalid_query() -> None:
    """Random text, and random token soup: parsing and compiling raise InvalidQuery or succeed."""
    rng = random.Random(1234)
    resolver = Resolver(_table(MetaData(), None))
    words = """name id result properties/x location eq and or not ( ) , ' '' / - 1 2.5e 1e9 2019-01-01
        T00:00:00Z +09:00 duration geography 'POINT(1_2)' substring( geo.distance( @iot.id null true é # $ \\
        :: asc desc 12:30 P1D st_relate( mod add 9999999999999999999999"""
    pieces = [w.replace("_", " ") for w in words.split()] + [" ", "\t"]
    parsed = 0
    for _ in range(4000):
        if rng.random() < 0.2:
            s = "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 30)))
        else:
            s = "".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randrange(0, 12)))
        with contextlib.suppress(InvalidQuery):
            items = parse_orderby(s)
            for dialect in ("sqlite", "postgresql"):
                with contextlib.suppress(InvalidQuery):
                    compile_order(items, resolver, dialect)
        with contextlib.suppress(InvalidQuery):
            tree = parse_filter(s)
            parsed += 1
            for dialect in ("sqlite", "postgresql"):
                with contextlib.suppress(InvalidQuery):
                    compile_filter(tree, resolver, dialect)
    assert parsed > 100


# ------------------------------------------------------------------------------------- execution


def _row(id: int, name: str, number: float | None, result: Any, when: datetime, properties: Any,
         location: Any) -> dict[str, Any]:  # fmt: skip
    return dict(id=id, name=name, result_number=number, result_json=result, phenomenon_time=when,
                properties=properties, location=location)  # fmt: skip


def _point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y]}


ROWS = [
    _row(1, "PM10", 21.4, None, datetime(2019, 3, 1, tzinfo=UTC),
         {"owner": "seoul", "height": 10, "active": True, "tags": ["a", "b"]}, _point(127, 37.5)),
    _row(2, "PM2.5", 20.5, None, datetime(2019, 2, 28, 15, tzinfo=UTC), {"owner": "busan", "height": "10"},
         _point(129, 35.1)),
    _row(3, "Temp", None, "on", datetime(2018, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
         {"owner": "seoul", "height": 25.5, "active": False},
         {"type": "Feature", "properties": {}, "geometry": _point(127.01, 37.51)}),
    _row(4, "pm10 x", -3.0, None, datetime(2019, 7, 15, 12, 30, 0, 123456, tzinfo=UTC), None, None),
    _row(5, "it's", None, True, datetime(2020, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))), {"owner": None},
         {"type": "Polygon",
          "coordinates": [[[126.9, 37.4], [127.1, 37.4], [127.1, 37.6], [126.9, 37.6], [126.9, 37.4]]]}),
    _row(6, "Temp2", 100.0, None, datetime(2019, 3, 1, tzinfo=UTC), {"nested": {"x": 1}},
         {"type": "LineString", "coordinates": [[127, 37], [128, 38]]}),
    _row(7, "Empty", None, None, datetime(2021, 6, 1, tzinfo=UTC), {}, None),
]  # fmt: skip
ALL = [1, 2, 3, 4, 5, 6, 7]
POLY = "geography'POLYGON((126.5 37, 127.5 37, 127.5 38, 126.5 38, 126.5 37))'"


class Resolver:
    """Like the STA layer's: plain columns, JSON prefixes, and ``Self/...`` as a correlated subquery."""

    def __init__(self, table: FromClause) -> None:
        self.t = table

    def resolve(self, path: tuple[str, ...]) -> tuple[Operand, int]:
        c = self.t.c
        head = path[0]
        if head == "Self" and len(path) > 1:
            a = self.t.alias("self")
            inner, used = Resolver(a).resolve(path[1:])

            def sub(col: Any) -> Any:
                return select(col).where(a.c.id == c.id).scalar_subquery()

            alt = sub(inner.alt) if inner.alt is not None else None
            return Operand(sub(inner.expr), inner.kind, alt=alt), used + 1
        known: dict[str, Operand] = {
            "id": Operand(c.id, "id"),
            "name": Operand(c.name, "string"),
            "result": Operand(c.result_number, "result", alt=c.result_json),
            "phenomenonTime": Operand(c.phenomenon_time, "datetime"),
            "properties": Operand(c.properties, "json"),
            "location": Operand(c.location, "geometry"),
        }
        if head not in known:
            raise InvalidQuery(f"unknown property {head!r}")
        return known[head], 1


def _table(metadata: MetaData, schema: str | None) -> Table:
    return Table(
        "obs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", Text),
        Column("result_number", Float),
        Column("result_json", Json),
        Column("phenomenon_time", UtcDateTime()),
        Column("properties", Json),
        Column("location", Json),
        schema=schema,
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Table]]:
    schema = None
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('sta') / 't.db'}")
    else:
        engine = make_engine(PG_URL, pool_size=2)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        except OperationalError:
            engine.dispose()
            pytest.skip("PostgreSQL is not reachable at " + PG_URL)
        schema = f"sta_filter_{uuid.uuid4().hex[:12]}"
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    metadata = MetaData()
    table = _table(metadata, schema)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
    try:
        yield engine, table
    finally:
        if schema:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def ids(db: tuple[Engine, Table], flt: str | None = None, orderby: str | None = None) -> list[int]:
    engine, table = db
    resolver, dialect = Resolver(table), engine.dialect.name
    stmt = select(table.c.id)
    if flt is not None:
        stmt = stmt.where(compile_filter(parse_filter(flt), resolver, dialect, now=NOW))
    if orderby is not None:
        stmt = stmt.order_by(*compile_order(parse_orderby(orderby), resolver, dialect, now=NOW), table.c.id)
    else:
        stmt = stmt.order_by(table.c.id)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(stmt)]


FILTERS: list[tuple[str, list[int]]] = [
    # the brief's examples
    ("result gt 20 and startswith(name,'PM')", [1, 2]),
    ("year(phenomenonTime) eq 2019", [1, 2, 4, 6]),
    (f"st_within(location, {POLY})", [1, 3, 5]),
    ("properties/owner eq 'seoul'", [1, 3]),
    ("result eq 'on'", [3]),
    ("phenomenonTime ge 2019-03-01T00:00:00+09:00", [1, 2, 4, 5, 6, 7]),
    ("round(result) eq 21", [1, 2]),
    ("substringof('10', name)", [1, 4]),
    ("tolower(name) eq 'pm10'", [1]),
    ("length(name) gt 4", [2, 4, 6, 7]),
    # logic, null, ids
    ("true", ALL),
    ("false", []),
    ("1 eq 1", ALL),
    ("not (id eq 1) and id le 3", [2, 3]),
    ("id eq 3 or id eq 5 or id eq 99", [3, 5]),
    ("id eq '3'", [3]),
    ("@iot.id ge 6", [6, 7]),
    ("result eq null", [7]),
    ("result ne null", [1, 2, 3, 4, 5, 6]),
    ("result eq true", [5]),
    ("result", [5]),
    ("location eq null", [4, 7]),
    ("name eq 'it''s'", [5]),
    ("name ne 'PM10'", [2, 3, 4, 5, 6, 7]),
    ("name eq 'pm10'", []),
    # arithmetic
    ("id add 1 eq 3", [2]),
    ("id mul 2 gt 7", [4, 5, 6, 7]),
    ("id div 0 eq 1", []),
    ("id div 2 eq 1.5", [3]),
    ("id mod 2 eq 1", [1, 3, 5, 7]),
    ("id eq 3 mul 0 add 3 and -7 mod 3 eq -1 and 7.5 mod -2 eq 1.5 and 1 div 0 eq null", [3]),
    ("result mod 7 eq 2", [6]),
    ("-id lt -5", [6, 7]),
    ("result div 2 gt 10", [1, 2, 6]),
    ("result sub 1.5 gt result div 5", [1, 2, 6]),
    ("id mul 9223372036854775807 gt 0", ALL),
    ("result mul 1e300 mul 1e300 gt 1", [1, 2, 6]),
    ("floor(result) eq 21", [1]),
    ("ceiling(result) eq -3", [4]),
    ("round(-2.5) eq -3 and floor(-2.5) eq -3 and ceiling(2.1) eq 3", ALL),
    ("round(result div 100) eq 1", [6]),
    # JSON properties
    ("properties/height gt 5", [1, 3]),
    ("properties/height eq '10'", [2]),
    ("properties/height eq 10", [1]),
    ("properties/active eq true", [1]),
    ("properties/active", [1]),
    ("not properties/active", [3]),
    ("properties/owner eq null", [4, 5, 6, 7]),
    ("properties/owner ne null", [1, 2, 3]),
    ("properties/nested/x eq 1", [6]),
    ("properties/tags/1 eq 'b'", [1]),
    ("startswith(properties/owner, 'se')", [1, 3]),
    ("result gt properties/height", [1]),
    ("properties/height eq properties/height", [1, 2, 3]),
    ("properties/height add 1 eq 26.5", [3]),
    # date and time
    ("hour(phenomenonTime) eq 15", [2]),
    ("minute(phenomenonTime) eq 30", [4]),
    ("second(phenomenonTime) eq 59", [3]),
    ("fractionalseconds(phenomenonTime) gt 0.4", [3]),
    ("fractionalseconds(phenomenonTime) eq 0.123456", [4]),
    ("month(phenomenonTime) eq 12", [3]),
    ("day(phenomenonTime) eq 28", [2]),
    ("date(phenomenonTime) eq 2019-03-01", [1, 6]),
    ("year(date(phenomenonTime)) eq 2018", [3]),
    ("time(phenomenonTime) eq 12:30:00.123456", [4]),
    ("hour(time(phenomenonTime)) eq 12", [4]),
    ("time(phenomenonTime) lt 01:00", [1, 5, 6, 7]),
    ("phenomenonTime gt now() sub duration'P1D'", [5, 7]),
    ("phenomenonTime add duration'PT9H' ge 2019-03-01T00:00:00Z", [1, 2, 4, 5, 6, 7]),
    ("duration'PT9H' add phenomenonTime lt 2019-03-01T00:00:00Z", [3]),
    ("phenomenonTime sub duration'PT0.5S' eq 2018-12-31T23:59:59Z", [3]),
    # datetime sub datetime is a duration (OData 4.0 URL Conventions 5.1.1.2.3), to the microsecond
    ("phenomenonTime sub 2019-03-01T00:00:00Z eq duration'PT0S'", [1, 6]),
    ("phenomenonTime sub 2019-03-01T00:00:00Z lt duration'-PT8H'", [2, 3]),
    ("2019-03-01T00:00:00Z sub phenomenonTime eq duration'PT9H'", [2]),
    ("2019-01-01T00:00:00Z sub phenomenonTime eq duration'PT0.5S'", [3]),
    ("phenomenonTime sub 2019-07-15T12:30:00Z eq duration'PT0.123456S'", [4]),
    ("now() sub phenomenonTime gt duration'P365D'", [3]),
    ("phenomenonTime sub now() gt duration'P500D'", [7]),
    ("phenomenonTime sub Self/phenomenonTime eq duration'PT0S'", ALL),
    ("-(phenomenonTime sub 2019-03-01T00:00:00Z) eq duration'PT9H'", [2]),
    ("phenomenonTime sub 2019-03-01T00:00:00Z add duration'PT9H' eq duration'PT0S'", [2]),
    ("duration'PT1H' add (phenomenonTime sub phenomenonTime) eq duration'PT1H'", ALL),
    ("year(phenomenonTime add (2019-03-01T00:00:00Z sub phenomenonTime)) eq 2019", ALL),
    ("phenomenonTime sub (2019-03-01T00:00:00Z sub duration'PT9H') eq duration'PT0S'", [2]),
    ("phenomenonTime lt '2019-01-01'", [3]),
    ("phenomenonTime eq 2019-03-01", [1, 6]),
    ("phenomenonTime eq 2019-03-01T09:00:00+09:00", [1, 6]),
    ("totaloffsetminutes(phenomenonTime) eq 0", ALL),
    ("totaloffsetminutes(2019-03-01T09:00:00+09:00) eq 540", ALL),
    ("year(now()) eq 2020 and phenomenonTime lt maxdatetime() and phenomenonTime gt mindatetime()", ALL),
    # strings
    ("indexof(name, 'mp') eq 2", [3, 6]),
    ("indexof(name, 'mp') eq 1", [7]),
    ("substring(name, 1) eq 'M10'", [1]),
    ("substring(name, 0, 2) eq 'PM'", [1, 2]),
    ("substring(name, -1, -5) eq ''", ALL),
    ("substring(name, id, 1) eq '2'", [2]),
    ("endswith(name, '2')", [6]),
    ("endswith(name, '')", ALL),
    ("endswith(name, 'a very long suffix')", []),
    ("contains(name, 'emp')", [3, 6]),
    ("concat(name, 'x') eq 'PM10x'", [1]),
    ("toupper(name) eq 'PM10 X'", [4]),
    ("trim(concat(' ', name)) eq 'PM10'", [1]),
    ("length(result) eq 2", [3]),
    # geometry
    (f"st_contains({POLY}, location)", [1, 3, 5]),
    ("st_intersects(location, geography'POINT(127 37.5)')", [1, 5]),
    ("geo.intersects(location, geography'POINT(127.01 37.51)')", [3, 5]),
    ("st_disjoint(location, geography'POINT(0 0)')", [1, 2, 3, 5, 6]),
    ("st_equals(location, geography'POINT(129 35.1)')", [2]),
    ("st_touches(location, geography'POINT(128 38)')", [6]),
    ("st_crosses(location, geography'LINESTRING(127 38, 128 37)')", [6]),
    ("st_overlaps(location, geography'POLYGON((127 37.5, 128 37.5, 128 38, 127 38, 127 37.5))')", [5]),
    (f"st_relate(location, {POLY}, 'T*F**F***')", [1, 3, 5]),
    ("geo.distance(location, geography'POINT(127 37.5)') lt 0.1", [1, 3, 5]),
    ("geo.length(location) gt 1", [6]),
    ("geo.length(location) eq 0", [1, 2, 3, 5]),
    # navigation through a correlated subquery
    ("Self/name eq 'PM10'", [1]),
    ("Self/properties/owner eq 'busan'", [2]),
    ("Self/result gt 50", [6]),
    ("Self/result eq 'on'", [3]),
    ("year(Self/phenomenonTime) eq 2021", [7]),
    ("st_within(Self/location, geography'POINT(127 37.5)')", [1]),
]


@pytest.mark.parametrize(("flt", "expected"), FILTERS, ids=[f for f, _ in FILTERS])
def test_filter(db: tuple[Engine, Table], flt: str, expected: list[int]) -> None:
    assert ids(db, flt) == expected


ORDERS: list[tuple[str, list[int]]] = [
    ("result desc, name", [6, 1, 2, 4, 3, 7, 5]),
    ("phenomenonTime", [3, 2, 1, 6, 4, 5, 7]),
    ("phenomenonTime desc", [7, 5, 4, 1, 6, 2, 3]),
    ("properties/owner", [4, 5, 6, 7, 2, 1, 3]),
    ("properties/height desc", [3, 1, 2, 4, 5, 6, 7]),
    ("length(name) desc, id desc", [4, 7, 6, 2, 5, 3, 1]),
    ("geo.distance(location, geography'POINT(127 37.5)')", [4, 7, 1, 5, 3, 6, 2]),
    ("1, result eq null desc, id desc", [7, 6, 5, 4, 3, 2, 1]),
    ("2020-01-01T00:00:00Z sub phenomenonTime", [7, 5, 4, 1, 6, 2, 3]),
]


@pytest.mark.parametrize(("orderby", "expected"), ORDERS, ids=[o for o, _ in ORDERS])
def test_orderby(db: tuple[Engine, Table], orderby: str, expected: list[int]) -> None:
    assert ids(db, orderby=orderby) == expected


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("name gt 5", "$filter: cannot compare a string with a number (5) at position 6"),
        ("id eq 'abc'", "cannot compare an id with a string ('abc')"),
        ("phenomenonTime gt 5", "cannot compare a datetime with a number (5)"),
        ("location eq location", "cannot compare a geometry with a geometry; use st_equals()"),
        ("name", "$filter expects a boolean, found a string at position 1"),
        ("name and true", "and expects a boolean, found a string at position 1"),
        ("length(id) eq 1", "length() expects a string, found an id at position 8"),
        ("year(name) eq 1", "year() expects a datetime or a date, found a string"),
        ("hour(2019-01-01) eq 1", "hour() expects a datetime or a time of day, found a date"),
        ("st_within(name, location)", "st_within() expects a geometry, found a string"),
        ("st_relate(location, location, 'X')", "DE-9IM pattern"),
        ("name gt null", "null can only be compared with eq or ne"),
        ("phenomenonTime mul 2 eq 1", "cannot mul a datetime and a number (2)"),
        ("name add 1 eq 1", "add expects a number, found a string"),
        ("substring(name, 1.5) eq 'x'", "substring() expects an integer, found a number (1.5)"),
        ("nope eq 1", "unknown property 'nope'"),
        ("name/x eq 1", "'name' has no property 'x'"),
        ("properties/a eq phenomenonTime", "cannot compare a JSON property (a) with a datetime"),
        ("2000-01-01T00:00:00+01:00 sub duration'P5000000D' eq now()", "datetime out of range"),
        ("phenomenonTime sub phenomenonTime eq 5", "cannot compare a duration with a number (5)"),
        ("phenomenonTime add phenomenonTime eq now()", "cannot add a datetime and a datetime"),
        ("duration'PT1H' sub phenomenonTime eq now()", "cannot sub a duration and a datetime"),
    ],
)
def test_type_errors(flt: str, message: str) -> None:
    metadata = MetaData()
    resolver = Resolver(_table(metadata, None))
    for dialect in ("sqlite", "postgresql"):
        with pytest.raises(InvalidQuery) as exc:
            compile_filter(parse_filter(flt), resolver, dialect)
        assert message in str(exc.value)


def test_orderby_errors() -> None:
    resolver = Resolver(_table(MetaData(), None))
    with pytest.raises(InvalidQuery, match=r"\$orderby: cannot order by a geometry at position 1"):
        compile_order(parse_orderby("location"), resolver, "sqlite")


def test_now_is_a_parameter() -> None:
    resolver = Resolver(_table(MetaData(), None))
    clause = compile_filter(parse_filter("phenomenonTime lt now()"), resolver, "postgresql", now=NOW)
    assert "now()" not in str(clause).lower()


# ---------------------------------------------------------------------------------- random queries

LEAVES = ["id", "result", "name", "phenomenonTime", "properties", "properties/height", "properties/owner",
          "properties/active", "properties/tags/0", "location", "Self/result", "Self/properties/height",
          "Self/phenomenonTime", "1", "0", "-2.5", "'PM'", "''", "'10'", "true", "false", "null",
          "2019-03-01T00:00:00Z", "2019-03-01", "12:30:00", "duration'PT1H'", POLY,
          "geography'POINT(127 37.5)'",
          "'2019-03-01'", "'T*F**F***'", "now()"]  # fmt: skip
# Where float (SQLite) and exact NUMERIC (PostgreSQL) arithmetic may legitimately round differently.
HUGE = ["1e300", "9223372036854775807"]
OPERATORS = ["eq", "ne", "gt", "ge", "lt", "le", "add", "sub", "mul", "div", "mod", "and", "or"]


def _random_expr(rng: random.Random, depth: int = 0) -> str:
    """Any function, operator or operand, well-typed or not."""
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice(LEAVES + HUGE) if rng.random() < 0.97 else rng.choice(HUGE)
    if r < 0.6:
        name = rng.choice(list(FUNCTIONS))
        low, high = FUNCTIONS[name]
        return f"{name}({', '.join(_random_expr(rng, depth + 1) for _ in range(rng.randint(low, high)))})"
    if r < 0.7:
        return f"{rng.choice(['not ', '-'])}({_random_expr(rng, depth + 1)})"
    return f"({_random_expr(rng, depth + 1)}) {rng.choice(OPERATORS)} ({_random_expr(rng, depth + 1)})"


@pytest.mark.postgres
def test_random_expressions_run_and_agree_on_both_databases(db: tuple[Engine, Table], tmp_path: Path) -> None:
    """Whatever compiles must run on both engines (no SQL errors) and return the same rows."""
    if db[0].dialect.name != "postgresql":
        pytest.skip("compares against a SQLite copy; runs once, from the PostgreSQL parametrisation")
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    table = _table(MetaData(), None)
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), ROWS)
    rng = random.Random(2024)
    ran = 0
    for _ in range(1500):
        expr = _random_expr(rng)
        for kind in ("flt", "orderby"):
            args = {kind: expr}
            try:
                lite = ids((engine, table), **args)
            except InvalidQuery as exc:
                with pytest.raises(InvalidQuery) as pg_exc:
                    ids(db, **args)
                assert str(pg_exc.value) == str(exc)
                continue
            pg = ids(db, **args)
            ran += 1
            if not any(h in expr for h in HUGE):
                assert pg == lite, f"{kind}: {expr}"
    engine.dispose()
    assert ran > 500


@pytest.mark.parametrize(
    ("template", "leaf", "tail"),
    [
        ("not (X)", "id eq 1", ""),
        ("tolower(X)", "name", " eq 'pm10'"),
        ("(X) add 1", "id", " gt 0"),
        ("-(X)", "result", " ne 0"),
        ("round(X)", "result", " eq 21"),
        ("concat(X, 'a')", "name", " ne ''"),
        ("length(substring(name, X))", "id", " ge 0"),
        ("(X) or id eq 2", "id eq 1", ""),
    ],
)
def test_deepest_accepted_expressions_run(
    db: tuple[Engine, Table], template: str, leaf: str, tail: str
) -> None:
    """Right at the nesting limit: compiles and runs, or is refused as too complex — never a crash."""
    expr, deepest = leaf, None
    for _ in range(60):
        expr = template.replace("X", expr)
        try:
            parse_filter(expr + tail)
        except InvalidQuery:
            break
        deepest = expr + tail
    assert deepest is not None
    try:
        ids(db, deepest)
    except InvalidQuery as exc:
        assert "too complex" in str(exc)
