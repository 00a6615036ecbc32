"""Events (a fire, a flood, an alert raised by a rule) and their status history.

Only this module opens transactions on ``events`` and ``event_history``. Every change follows the
one path the style guide asks for: lock the row, check ``EVENT_LIFECYCLE``, append the history
entry, update the row, commit, then ``publish_notice`` so open dashboards refetch.

Disclosure is decided here, field by field (``event_json``): a caller sees an event only if they
may see its level, and anonymous callers never see the internal fields (department, the rule and
datastream behind an alert, its details) nor who did what: a public timeline keeps each status and
its time, without the staff member's name or note. Reports and status changes by people, and every
read of a restricted event, are written to the audit log.

Alert rules raise events through ``raise_alert``: ``open_key`` (rule + datastream) is unique while
an event is open, so a second raise, even by another worker at the same instant, hits the unique
index and is answered "already open" (None), not an error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from sqlalchemy import Connection, Row, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from citydesk.auth import Disclosure, Principal, audit
from citydesk.errors import InvalidQuery, NotFound, ValidationFailed
from citydesk.status.events.workflow import (
    EVENT_LIFECYCLE,
    KINDS,
    OPEN_STATUSES,
    RESOLVED,
    SEVERITIES,
    STATUS_LABELS,
)
from citydesk.status.models import event_history, events
from citydesk.status.stream import publish_notice

if TYPE_CHECKING:
    from citydesk.web.app import App

SYSTEM_ACTOR = "system"
"""The actor of changes the platform makes itself (a rule raising or clearing its event)."""
SYSTEM = Principal.for_user(None, SYSTEM_ACTOR, "admin")
"""Whom the platform reads events as: every level (it never shows them to anyone)."""
STRICTNESS = {level: rank for rank, level in enumerate(Disclosure)}
"""public < internal < restricted."""


def _member(table: Mapping[str, Any], what: str, value: str) -> str:
    if value not in table:
        raise ValueError(f"unknown {what} {value!r}: one of {', '.join(table)}")
    return value


def _kind(value: str) -> str:
    return _member(KINDS, "event kind", value)


def _severity(value: str) -> str:
    return _member(SEVERITIES, "severity", value)


# Limited to the keys of the tables in ``workflow``, which stay the one list of each.
Kind = Annotated[str, AfterValidator(_kind), WithJsonSchema({"type": "string", "enum": list(KINDS)})]
Severity = Annotated[
    str, AfterValidator(_severity), WithJsonSchema({"type": "string", "enum": list(SEVERITIES)})
]


def stricter(a: str, b: str) -> str:
    """The more restricted of two disclosure levels (an event is never more open than its source)."""
    return a if STRICTNESS[Disclosure(a)] >= STRICTNESS[Disclosure(b)] else b


class EventIn(BaseModel):
    """An event reported by staff. A place is a point (its district is looked up) or a district."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    severity: Severity
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    district: str | None = Field(None, max_length=10, description="district code, if no point is given")
    department: str | None = Field(None, max_length=100)
    disclosure: Disclosure = Disclosure.INTERNAL
    details: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _point_or_nothing(self) -> EventIn:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or neither")
        return self


class StatusChange(BaseModel):
    """Move an event on: the target status, and a note (required to resolve)."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(min_length=1, max_length=16)
    note: str = Field("", max_length=2000)


class Filters(BaseModel):
    """What ``GET /api/status/events`` and ``/status/events`` filter by."""

    status: Literal["open", "resolved", "all"] = "all"
    kind: str | None = None
    severity: str | None = None
    district: str | None = None
    since: datetime | None = Field(None, description="only events opened or changed since then")
    limit: int = Field(50, ge=1, le=500)
    next: str | None = None


# -- reading -------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _district(app: App, code: str | None) -> dict[str, Any] | None:
    info = app.geo.district_info(code) if code else None
    if info is None:
        return None if code is None else {"code": code, "name": {"ko": code, "en": code}}
    return {"code": info.code, "name": {"ko": info.name_ko, "en": info.name_en}}


def event_json(
    app: App, who: Principal, row: Row[Any], timeline: list[Row[Any]] | None = None
) -> dict[str, Any]:
    """One event as ``who`` may see it (the caller has checked its level); with its timeline if
    given. Anonymous callers get neither the internal fields nor the timeline's names and notes."""
    staff = who.is_staff
    body: dict[str, Any] = {
        "id": row.id,
        "url": f"/status/events/{row.id}",
        "kind": row.kind,
        "kind_label": KINDS.get(row.kind, {"ko": row.kind, "en": row.kind}),
        "title": row.title,
        "description": row.description,
        "severity": row.severity,
        "severity_label": SEVERITIES[row.severity],
        "status": row.status,
        "status_label": STATUS_LABELS[row.status],
        "disclosure": row.disclosure,
        "lon": row.lon,
        "lat": row.lat,
        "district": _district(app, row.district_code),
        "opened_at": _iso(row.opened_at),
        "updated_at": _iso(row.updated_at),
        "resolved_at": _iso(row.resolved_at),
    }
    if staff:
        body |= {
            "department": row.department,
            "rule_id": row.rule_id,
            "datastream_id": row.datastream_id,
            "details": row.details,
            "next_statuses": sorted(EVENT_LIFECYCLE.allowed[row.status]),
        }
    if timeline is not None:
        body["timeline"] = [
            {"status": h.status, "status_label": STATUS_LABELS[h.status], "at": _iso(h.at)}
            | ({"note": h.note, "actor": h.actor} if staff else {})
            for h in timeline
        ]
    return body


def _visible(who: Principal) -> Any:
    return events.c.disclosure.in_(sorted(who.levels))


def _read(app: App) -> Connection:
    return app.engine.connect().execution_options(read_only=True)


def _token(opened_at: datetime, event_id: int) -> str:
    raw = orjson.dumps([opened_at.isoformat(), event_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(token: str) -> tuple[datetime, int]:
    try:
        at, event_id = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return datetime.fromisoformat(at), int(event_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidQuery("invalid next token", {"next": token}) from None


def listing(app: App, who: Principal, filters: Filters, *, now: datetime) -> dict[str, Any]:
    """Events ``who`` may see, newest first, a page at a time (``next``: an opaque token)."""
    e = events.c
    stmt = select(events).where(_visible(who))
    if filters.status == "open":
        stmt = stmt.where(e.status.in_(OPEN_STATUSES))
    elif filters.status == "resolved":
        stmt = stmt.where(e.status == RESOLVED)
    if filters.kind:
        stmt = stmt.where(e.kind == filters.kind)
    if filters.severity:
        stmt = stmt.where(e.severity == filters.severity)
    if filters.district:
        stmt = stmt.where(e.district_code == filters.district)
    if filters.since is not None:
        if filters.since.tzinfo is None:
            raise ValidationFailed("since needs a time zone, e.g. 2026-11-22T09:00:00+09:00")
        stmt = stmt.where(e.updated_at >= filters.since)
    if filters.next:
        at, last = _after(filters.next)
        stmt = stmt.where(or_(e.opened_at < at, and_(e.opened_at == at, e.id < last)))
    stmt = stmt.order_by(e.opened_at.desc(), e.id.desc()).limit(filters.limit + 1)
    with _read(app) as conn:
        rows = conn.execute(stmt).all()
    page = rows[: filters.limit]
    more = len(rows) > filters.limit
    _audit_reads(app, who, page, now=now)
    return {
        "events": [event_json(app, who, r) for r in page],
        "next": _token(page[-1].opened_at, page[-1].id) if more else None,
    }


def geojson(app: App, who: Principal, *, now: datetime) -> dict[str, Any]:
    """Open events with a position, as a GeoJSON FeatureCollection (the dashboard's map layer)."""
    e = events.c
    stmt = (
        select(events)
        .where(_visible(who), e.status.in_(OPEN_STATUSES), e.lon.is_not(None), e.lat.is_not(None))
        .order_by(e.opened_at.desc(), e.id.desc())
    )
    with _read(app) as conn:
        rows = conn.execute(stmt).all()
    _audit_reads(app, who, rows, now=now)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r.id,
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": event_json(app, who, r),
            }
            for r in rows
        ],
    }


def _audit_reads(app: App, who: Principal, rows: Sequence[Row[Any]], *, now: datetime) -> None:
    """Reads of restricted events (personal data, e.g. a named casualty) go to the audit log."""
    seen = [r.id for r in rows if r.disclosure == Disclosure.RESTRICTED]
    if seen:
        target = f"event:{seen[0]}" if len(seen) == 1 else "events"
        audit(
            app.engine, who, "event.read", target, f"restricted events {', '.join(map(str, seen))}", now=now
        )


def _load(conn: Connection, who: Principal, event_id: int, *, lock: bool = False) -> Row[Any]:
    stmt = select(events).where(events.c.id == event_id, _visible(who))
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).one_or_none()
    if row is None:  # also when it exists at a level ``who`` may not see: no hint that it does
        raise NotFound(f"no event {event_id}", {"id": event_id})
    return row


def _timeline(conn: Connection, event_id: int) -> list[Row[Any]]:
    h = event_history.c
    return list(conn.execute(select(event_history).where(h.event_id == event_id).order_by(h.at, h.id)))


def detail(app: App, who: Principal, event_id: int, *, now: datetime) -> dict[str, Any]:
    """One event with its timeline, oldest step first (a restricted one's read is audited)."""
    found = _detail(app, who, event_id)
    if found["disclosure"] == Disclosure.RESTRICTED:
        audit(app.engine, who, "event.read", f"event:{event_id}", now=now)
    return found


def _detail(app: App, who: Principal, event_id: int) -> dict[str, Any]:
    """``detail`` without the audit: what a report or a change answers (itself audited)."""
    with _read(app) as conn:
        row = _load(conn, who, event_id)
        return event_json(app, who, row, _timeline(conn, event_id))


# -- changing --------------------------------------------------------------------------------------
def _notice(app: App, row: Row[Any] | dict[str, Any]) -> None:
    r = row if isinstance(row, dict) else row._mapping
    publish_notice(
        app,
        "event",
        r["disclosure"],
        {"id": r["id"], "status": r["status"], "severity": r["severity"], "kind": r["kind"]},
    )


def _history(
    conn: Connection, event_id: int, status: str, at: datetime, who: Principal | None, note: str
) -> None:
    conn.execute(
        insert(event_history).values(
            event_id=event_id,
            at=at,
            status=status,
            note=note,
            user_id=who.user_id if who is not None else None,
            actor=who.name if who is not None else SYSTEM_ACTOR,
        )
    )


def _place(app: App, data: EventIn) -> str | None:
    if data.lon is not None and data.lat is not None:
        if not app.geo.in_city(data.lon, data.lat):
            raise ValidationFailed("the point is outside the city", {"lon": data.lon, "lat": data.lat})
        return app.geo.district_of(data.lon, data.lat)
    if data.district is not None and app.geo.district_info(data.district) is None:
        raise ValidationFailed(f"no district {data.district!r}", {"district": data.district})
    return data.district


def report(app: App, who: Principal, data: EventIn, *, now: datetime) -> dict[str, Any]:
    """A staff member reports an event: it starts ``reported`` with one history entry."""
    if not who.may_see(data.disclosure):
        raise ValidationFailed(
            "you cannot file an event at a level you may not see", {"disclosure": data.disclosure}
        )
    values = data.model_dump(exclude={"district"}) | {
        "district_code": _place(app, data),
        "status": EVENT_LIFECYCLE.initial,
        "opened_at": now,
        "updated_at": now,
    }
    with app.engine.begin() as conn:
        event_id = conn.execute(insert(events).values(**values).returning(events.c.id)).scalar_one()
        _history(conn, event_id, EVENT_LIFECYCLE.initial, now, who, "")
        audit(conn, who, "event.report", f"event:{event_id}", data.title, now=now)
    _notice(app, values | {"id": event_id})
    return _detail(app, who, event_id)


def move(app: App, who: Principal, event_id: int, change: StatusChange, *, now: datetime) -> dict[str, Any]:
    """Move an event along its lifecycle for a staff member; returns the event as they now see it."""
    _change(app, who, event_id, change, now=now)
    return _detail(app, who, event_id)


def _change(
    app: App,
    who: Principal | None,
    event_id: int,
    change: StatusChange,
    *,
    now: datetime,
    only_from: str | None = None,
) -> bool:
    """Lock, check the table, append the history, update, commit, publish. ``who`` None is the
    platform (it sees every level); ``only_from``: do nothing unless the event is in that status
    when locked (returns False then)."""
    note = change.note.strip()
    with app.engine.begin() as conn:
        row = _load(conn, who or SYSTEM, event_id, lock=True)
        if only_from is not None and row.status != only_from:
            return False
        EVENT_LIFECYCLE.check(row.status, change.status, by_system=who is None, note=note)
        _history(conn, event_id, change.status, now, who, note)
        if who is not None:
            audit(conn, who, f"event.{change.status}", f"event:{event_id}", note[:500], now=now)
        done = change.status == RESOLVED
        conn.execute(
            update(events)
            .where(events.c.id == event_id)
            .values(
                status=change.status,
                updated_at=now,
                **({"resolved_at": now, "open_key": None} if done else {}),
            )
        )
    _notice(app, dict(row._mapping) | {"status": change.status})
    return True


# -- raised by alert rules -------------------------------------------------------------------------
def open_key(rule_id: int, datastream_id: int) -> str:
    return f"rule:{rule_id}:ds:{datastream_id}"


def open_among(app: App, keys: set[str]) -> set[str]:
    """Which of ``keys`` have an open event (one query for a whole batch's rules)."""
    if not keys:
        return set()
    with _read(app) as conn:
        stmt = select(events.c.open_key).where(events.c.open_key.in_(sorted(keys)))
        return {k for k in conn.execute(stmt).scalars() if k is not None}


def raise_alert(app: App, values: dict[str, Any], key: str, *, now: datetime) -> int | None:
    """Open an event for a rule's condition on one datastream, unless one is open already.

    ``values`` are the event's columns (kind, title, severity, disclosure, place, rule, datastream,
    details). Returns the new event's id, or None if an event with ``key`` is open: found first,
    or inserted by someone else between that check and our insert (the unique index says so).
    """
    with _read(app) as conn:
        if conn.execute(select(events.c.id).where(events.c.open_key == key)).first() is not None:
            return None
    row = values | {
        "open_key": key,
        "status": EVENT_LIFECYCLE.initial,
        "opened_at": now,
        "updated_at": now,
    }
    try:
        with app.engine.begin() as conn:
            event_id = conn.execute(insert(events).values(**row).returning(events.c.id)).scalar_one()
            _history(conn, event_id, EVENT_LIFECYCLE.initial, now, None, "")
    except IntegrityError:
        with _read(app) as conn:
            if conn.execute(select(events.c.id).where(events.c.open_key == key)).first() is None:
                raise  # another constraint: a real error
        return None
    _notice(app, row | {"id": event_id})
    return int(event_id)


def clear_alert(app: App, key: str, note: str, *, now: datetime) -> bool:
    """The condition behind ``key`` is over: resolve its event if no one has touched it yet.

    An event still ``reported`` was only ever seen by the platform, so the platform may take it
    back; once a person dispatched it, people close it (the alert's end may not be the incident's).
    Returns whether an event was resolved.
    """
    with _read(app) as conn:
        found = conn.execute(
            select(events.c.id, events.c.status).where(events.c.open_key == key)
        ).one_or_none()
    if found is None or found.status != EVENT_LIFECYCLE.initial:
        return False
    change = StatusChange(status=RESOLVED, note=note)
    return _change(app, None, found.id, change, now=now, only_from=EVENT_LIFECYCLE.initial)
