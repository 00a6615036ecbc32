"""Parser for SensorThings API 1.1 ``$filter`` and ``$orderby`` expressions (OData 4 subset, §9.3.3).

It only builds a small immutable tree; typing and SQL live in ``filter_sql``, so the grammar is tested
without a database. Every problem with user input is an ``InvalidQuery`` with a 1-based character
position, because people write these by hand and need to see where they went wrong. Precedence, low to
high: ``or``, ``and``, ``not``, comparisons, ``add sub``, ``mul div mod``, unary minus, primaries.
``and``/``or`` chains stay n-ary so that a long ``id eq 1 or id eq 2 ...`` list stays shallow.
Operator keywords and function names are case-insensitive; property names are not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, TypeVar

import shapely
from shapely.errors import ShapelyError

from citydesk.errors import InvalidQuery

# Bounds that keep this parser and SQLAlchemy's (recursive) compiler far from Python's recursion limit.
MAX_NESTING = 32  # parentheses, not, minus and calls inside each other
MAX_DEPTH = 32  # depth of the resulting tree
MAX_LENGTH = 20_000
INT64_MAX = 2**63 - 1
_T = TypeVar("_T")

COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
ADDITIVE = frozenset({"add", "sub"})
MULTIPLICATIVE = frozenset({"mul", "div", "mod"})
_RESERVED = COMPARISONS | ADDITIVE | MULTIPLICATIVE | {"and", "or", "not", "asc", "desc"}

# name -> (minimum, maximum) number of arguments; the compiler implements exactly these.
FUNCTIONS: dict[str, tuple[int, int]] = {
    "substringof": (2, 2), "startswith": (2, 2), "endswith": (2, 2), "contains": (2, 2),
    "length": (1, 1), "indexof": (2, 2), "substring": (2, 3), "tolower": (1, 1), "toupper": (1, 1),
    "trim": (1, 1), "concat": (2, 2),
    "year": (1, 1), "month": (1, 1), "day": (1, 1), "hour": (1, 1), "minute": (1, 1), "second": (1, 1),
    "fractionalseconds": (1, 1), "date": (1, 1), "time": (1, 1), "totaloffsetminutes": (1, 1),
    "now": (0, 0), "mindatetime": (0, 0), "maxdatetime": (0, 0),
    "round": (1, 1), "floor": (1, 1), "ceiling": (1, 1),
    "geo.distance": (2, 2), "geo.length": (1, 1), "geo.intersects": (2, 2),
    "st_equals": (2, 2), "st_disjoint": (2, 2), "st_touches": (2, 2), "st_within": (2, 2),
    "st_overlaps": (2, 2), "st_crosses": (2, 2), "st_intersects": (2, 2), "st_contains": (2, 2),
    "st_relate": (3, 3),
}  # fmt: skip

# The tree. ``pos`` (0-based offset into the text) is left out of equality so tests compare shapes.


@dataclass(frozen=True)
class Literal:
    """A constant; ``type``: number, string, bool, null, datetime, date, time, duration or geometry.
    Geometry values are validated WKT text (an ``SRID=4326;`` prefix removed)."""

    value: Any
    type: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Path:
    """A property path such as ``Datastream/ObservedProperty/name``; ``@iot.id`` becomes ``id``."""

    segments: tuple[str, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    """A function call: ``name`` is lower-cased, known to ``FUNCTIONS`` and given a valid arity."""

    name: str
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    """``not``, or arithmetic negation ``neg``."""

    op: str
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """A comparison (eq ne gt ge lt le) or arithmetic (add sub mul div mod)."""

    op: str
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Logical:
    """``and`` / ``or`` over two or more operands."""

    op: str
    operands: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node = Literal | Path | Call | Unary | Binary | Logical

_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME_RE = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?")
_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_DURATION_RE = re.compile(rf"(-)?P(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_IDENT_RE = re.compile(r"@?[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_SRID_RE = re.compile(r"\s*SRID\s*=\s*([0-9]+)\s*;", re.IGNORECASE)


def _micro(fraction: str | None) -> int:
    return int((fraction or "")[:6].ljust(6, "0"))


def parse_datetime_text(text: str) -> datetime | None:
    """An aware datetime for ISO 8601 ``text`` (no offset means UTC), or None if it is not one.

    Raises ValueError for well-formed but impossible values (month 13), so callers can say so; the
    value must also survive conversion to UTC.
    """
    if not (m := _DATETIME_RE.fullmatch(text)):
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    tz = UTC
    if off and off not in "Zz":
        offset = timedelta(hours=int(off[1:3]), minutes=int(off[4:6]))
        tz = timezone(-offset if off[0] == "-" else offset)
    value = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), _micro(frac), tzinfo=tz)
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("out of range") from exc
    return value


def parse_date_text(text: str) -> date | None:
    """A date for ``YYYY-MM-DD`` or None; ValueError if that day does not exist."""
    m = _DATE_RE.fullmatch(text)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


def parse_time_text(text: str) -> time | None:
    """A time of day for ``HH:MM[:SS[.fff]]`` or None; ValueError if out of range."""
    m = _TIME_RE.fullmatch(text)
    return time(int(m[1]), int(m[2]), int(m[3] or 0), _micro(m[4])) if m else None


def parse_duration_text(text: str) -> timedelta | None:
    """A timedelta for an ISO 8601 day-time duration (``P1DT2H30M``), or None. Years and months are
    not accepted: their length depends on the calendar."""
    m = _DURATION_RE.fullmatch(text)
    if not m or not any(m.groups()[1:]) or text.endswith("T"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups()[1:])
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return -value if m[1] else value


def parse_wkt_text(text: str) -> str:
    """Validated WKT, else ValueError with the reason. Only WGS 84 (an optional ``SRID=4326;``) is
    accepted: stored GeoJSON is WGS 84 and nothing is reprojected."""
    if m := _SRID_RE.match(text):
        if m[1] != "4326":
            raise ValueError(f"only SRID 4326 is supported, not {m[1]}")
        text = text[m.end() :]
    try:
        geom = shapely.from_wkt(text.strip())
    except (ShapelyError, ValueError, TypeError) as exc:
        raise ValueError("not valid WKT") from exc
    if geom is None or geom.is_empty:
        raise ValueError("empty geometry")
    if not geom.is_valid:  # PostGIS may raise on invalid input at execution time
        raise ValueError(f"invalid geometry ({shapely.is_valid_reason(geom)})")
    return text.strip()


@dataclass(frozen=True)
class Token:
    kind: str  # a Literal type, "ident", one of "(),/-", or "eof"
    text: str
    pos: int
    value: Any = None


class _Parser:
    """Tokenizer plus recursive descent, one method per precedence level."""

    def __init__(self, text: str, label: str) -> None:
        self.text, self.label = text, label
        if len(text) > MAX_LENGTH:
            raise InvalidQuery(f"{label}: expression longer than {MAX_LENGTH} characters")
        self.toks = self.tokenize()
        self.i = self.nesting = 0

    def error(self, message: str, pos: int) -> InvalidQuery:
        return InvalidQuery(f"{self.label}: {message} at position {pos + 1}")

    # -- tokens
    def tokenize(self) -> list[Token]:
        text, i, out = self.text, 0, []
        while i < len(text):
            ch = text[i]
            if ch.isspace():
                i += 1
                continue
            if ch in "(),/-":
                tok = Token(ch, ch, i)
            elif ch == "'":
                value, end = self.string(i)
                tok = Token("string", text[i:end], i, value)
            elif "0" <= ch <= "9":
                tok = self.numeric(i)
            elif ch == ":":  # only lambda operators would use one
                raise self.error(
                    "unexpected ':' (the lambda operators any and all are not in SensorThings 1.1)", i
                )
            elif not (m := _IDENT_RE.match(text, i)):
                raise self.error(f"unexpected character {ch!r}", i)
            elif m.end() < len(text) and text[m.end()] == "'":
                tok = self.typed(m[0], i, m.end())
            else:
                tok = Token("ident", m[0], i)
            out.append(tok)
            i += len(tok.text)
        out.append(Token("eof", "", len(text)))
        return out

    def string(self, start: int) -> tuple[str, int]:
        """The value of the quoted string at ``start`` ('' escapes a quote) and the offset after it."""
        i, parts = start + 1, []
        while (j := self.text.find("'", i)) >= 0:
            parts.append(self.text[i:j])
            if not self.text.startswith("''", j):
                return "".join(parts), j + 1
            parts.append("'")
            i = j + 2
        raise self.error("unterminated string literal starting", start)

    def numeric(self, i: int) -> Token:
        parsers: list[tuple[str, re.Pattern[str], Callable[[str], Any]]] = [
            ("datetime", _DATETIME_RE, parse_datetime_text), ("date", _DATE_RE, parse_date_text),
            ("time", _TIME_RE, parse_time_text)]  # fmt: skip
        for kind, regex, parse in parsers:
            if m := regex.match(self.text, i):
                try:
                    return Token(kind, m[0], i, parse(m[0]))
                except ValueError:
                    raise self.error(f"invalid {kind} {m[0]!r}", i) from None
        m = _NUMBER_RE.match(self.text, i)
        assert m is not None  # text[i] is a digit
        raw = m[0]
        value = int(raw) if raw.isdigit() else float(raw)
        if (raw.isdigit() and value > INT64_MAX) or not math.isfinite(value):
            raise self.error(f"{'integer' if raw.isdigit() else 'number'} {raw} is out of range", i)
        return Token("number", raw, i, value)

    def typed(self, prefix: str, start: int, quote: int) -> Token:
        """``duration'…'``, ``geography'…'`` and ``geometry'…'``."""
        body, end = self.string(quote)
        kind, raw = prefix.lower(), self.text[start:end]
        if kind == "duration":
            if re.search(r"[YW]|P[^T]*M", body):
                raise self.error("durations with years, months or weeks are not supported", start)
            try:
                value = parse_duration_text(body)
            except (OverflowError, ValueError):
                raise self.error(f"duration {body!r} is out of range", start) from None
            if value is None:
                raise self.error(f"invalid duration {body!r}, expected e.g. 'P1DT2H30M'", start)
            return Token("duration", raw, start, value)
        if kind in ("geography", "geometry"):
            try:
                return Token("geometry", raw, start, parse_wkt_text(body))
            except ValueError as exc:
                raise self.error(f"invalid {kind} literal: {exc}", start) from None
        raise self.error(f"unknown literal type {prefix!r}, expected duration, geography or geometry", start)

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def advance(self) -> Token:
        self.i += 1
        return self.toks[self.i - 1]

    def keyword(self) -> str | None:
        return self.tok.text.lower() if self.tok.kind == "ident" else None

    def expected(self, what: str) -> InvalidQuery:
        found = "end of input" if self.tok.kind == "eof" else repr(self.tok.text)
        return InvalidQuery(f"{self.label}: expected {what} at position {self.tok.pos + 1}, found {found}")

    def nested(self, parse: Callable[[], _T]) -> _T:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"expression nested more than {MAX_NESTING} levels deep", self.tok.pos)
        node = parse()
        self.nesting -= 1
        return node

    # -- grammar
    def expression(self) -> Node:
        return self.logical("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.logical("and", self.not_expr)

    def logical(self, op: str, operand: Callable[[], Node]) -> Node:
        items = [operand()]
        while self.keyword() == op:
            self.advance()
            items.append(operand())
        return items[0] if len(items) == 1 else Logical(op, tuple(items), items[0].pos)

    def not_expr(self) -> Node:
        if self.keyword() != "not":
            return self.binary(COMPARISONS, self.additive)
        pos = self.advance().pos
        return Unary("not", self.nested(self.not_expr), pos)

    def additive(self) -> Node:
        return self.binary(ADDITIVE, self.multiplicative)

    def multiplicative(self) -> Node:
        return self.binary(MULTIPLICATIVE, self.unary)

    def binary(self, ops: frozenset[str], operand: Callable[[], Node]) -> Node:
        left = operand()
        while (kw := self.keyword()) in ops:
            pos = self.advance().pos
            left = Binary(str(kw), left, operand(), pos)
        return left

    def unary(self) -> Node:
        if self.tok.kind != "-":
            return self.primary()
        pos = self.advance().pos
        operand = self.nested(self.unary)
        if isinstance(operand, Literal) and operand.type in ("number", "duration"):
            return Literal(-operand.value, operand.type, pos)
        return Unary("neg", operand, pos)

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind in ("number", "string", "datetime", "date", "time", "duration", "geometry"):
            self.advance()
            return Literal(tok.value, tok.kind, tok.pos)
        if tok.kind == "(":
            self.advance()
            inner = self.nested(self.expression)
            if self.tok.kind != ")":
                raise self.expected("')'")
            self.advance()
            return inner
        word = self.keyword()
        if word in ("true", "false"):
            self.advance()
            return Literal(word == "true", "bool", tok.pos)
        if word == "null":
            self.advance()
            return Literal(None, "null", tok.pos)
        if word is not None and self.toks[self.i + 1].kind == "(":
            return self.call()
        if word is None or word in _RESERVED:
            raise self.expected("an operand")
        segments = [_segment(self.advance().text)]
        while self.tok.kind == "/":
            self.advance()
            if not (self.tok.kind == "ident" or (self.tok.kind == "number" and self.tok.text.isdigit())):
                raise self.expected("a property name after '/'")
            segments.append(_segment(self.advance().text))  # keywords are names here; digits index arrays
        return Path(tuple(segments), tok.pos)

    def call(self) -> Node:
        tok = self.advance()
        name = tok.text.lower()
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {tok.text!r}", tok.pos)
        self.advance()  # "("
        args = self.nested(self.arguments)
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} or {high}"
            raise self.error(f"function {name} takes {want} argument(s), got {len(args)}", tok.pos)
        return Call(name, tuple(args), tok.pos)

    def arguments(self) -> list[Node]:
        """The argument list after '(', through ')'."""
        args: list[Node] = []
        if self.tok.kind != ")":
            args.append(self.expression())
            while self.tok.kind == ",":
                self.advance()
                args.append(self.expression())
        if self.tok.kind != ")":
            raise self.expected("',' or ')'")
        self.advance()
        return args

    def check_depth(self, root: Node) -> Node:
        """Refuse trees deeper than MAX_DEPTH, iteratively: a long ``add`` chain is left-deep."""
        stack: list[tuple[Node, int]] = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.error(f"expression nested more than {MAX_DEPTH} levels deep", node.pos)
            if isinstance(node, Call | Logical):
                stack.extend((k, depth + 1) for k in (node.args if isinstance(node, Call) else node.operands))
            elif isinstance(node, Unary | Binary):
                kids = (node.operand,) if isinstance(node, Unary) else (node.left, node.right)
                stack.extend((k, depth + 1) for k in kids)
        return root


def _segment(text: str) -> str:
    return "id" if text == "@iot.id" else text


def parse_filter(text: str) -> Node:
    """Parse a ``$filter`` value into a tree (raises InvalidQuery)."""
    p = _Parser(text, "$filter")
    if p.tok.kind == "eof":
        raise p.expected("an expression")
    node = p.expression()
    if p.keyword() == "in":
        raise p.error("'in' is OData 4.01, not SensorThings 1.1: write a eq 1 or a eq 2", p.tok.pos)
    if p.tok.kind != "eof":
        raise p.expected("an operator or end of expression")
    return p.check_depth(node)


def parse_orderby(text: str) -> list[tuple[Node, bool]]:
    """Parse an ``$orderby`` value, ``expr [asc|desc], ...``, into (tree, descending) pairs."""
    p = _Parser(text, "$orderby")
    items: list[tuple[Node, bool]] = []
    while True:
        if p.tok.kind in ("eof", ","):
            raise p.expected("an expression")
        node = p.check_depth(p.expression())
        descending = p.keyword() == "desc"
        if p.keyword() in ("asc", "desc"):
            p.advance()
        items.append((node, descending))
        if p.tok.kind == "eof":
            return items
        if p.tok.kind != ",":
            raise p.expected("',', 'asc', 'desc' or end of expression")
        p.advance()
