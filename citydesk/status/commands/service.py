"""Commands to departments: sending, answering, listing, and the mayor's summary.

The only commands code that touches the database. Every change follows Signalen's order: lock the
row, check who is asking, check the lifecycle table, append the history entry, update the row,
write the audit log, commit, and only then tell open pages (``publish_notice``). Overdue is never
stored: a command is overdue when it is open and its due time is before the ``now`` passed in.

Who may do what is stated in ``rules``; the keyset tokens of listings are ``paging``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, and_, case, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from citydesk.auth import Disclosure, Permission, Principal, audit
from citydesk.errors import (
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from citydesk.status.commands import departments, paging, rules
from citydesk.status.commands.schemas import CommandIn
from citydesk.status.commands.workflow import (
    ACTION_LABELS,
    ALIASES,
    COMMAND_LIFECYCLE,
    OPEN_STATUSES,
    PROGRESS,
    PROGRESS_STATUSES,
    RETURNED,
    STATUS_LABELS,
)
from citydesk.status.models import command_history, commands, events
from citydesk.status.stream import publish_notice

if TYPE_CHECKING:
    from citydesk.web.app import App

MAX_DUE = timedelta(days=366)
"""A due time further ahead is a typo, not an instruction."""
DISCLOSURE = Disclosure.INTERNAL.value
"""Every command is internal: it names people, departments and unfinished work."""
STATUS_FILTERS = ("open", "done", "returned", "cancelled", "all")
SUMMARY_OVERDUE = 20
"""How many overdue commands the mayor's summary lists (most overdue first)."""
RETURNED_WINDOW = timedelta(hours=24)
SUMMARY_RETURNED = 5
"""The summary also lists commands handed back in the last day: the sender has to decide anew."""

c, h, e = commands.c, command_history.c, events.c


def _reading(app: App) -> Connection:
    """A read-only connection: on SQLite a deferred transaction that runs beside the writer."""
    return app.engine.connect().execution_options(read_only=True)


# -- JSON ---------------------------------------------------------------------------------------
def _sender() -> Any:
    """The name of whoever sent the command: the actor of its first history entry."""
    return (
        select(h.actor).where(h.command_id == c.id).order_by(h.id).limit(1).scalar_subquery().label("sender")
    )


def _query() -> Select[Any]:
    return select(
        commands,
        _sender(),
        e.title.label("event_title"),
        e.disclosure.label("event_disclosure"),
        e.status.label("event_status"),
    ).outerjoin(events, events.c.id == c.event_id)


def _subject(app: App, who: Principal, row: Mapping[Any, Any]) -> dict[str, Any] | None:
    if row["event_id"] is not None:
        shown = row["event_disclosure"] in who.levels
        return {
            "kind": "event",
            "ref": str(row["event_id"]),
            "event_id": row["event_id"],
            "label": row["event_title"] if shown else None,
            "url": f"/status/events/{row['event_id']}",
        }
    if row["subject_kind"] is None:
        return None
    label: Any = row["subject_ref"]
    if row["subject_kind"] == "district" and (info := app.geo.district_info(row["subject_ref"])):
        label = {"ko": info.name_ko, "en": info.name_en}
    return {"kind": row["subject_kind"], "ref": row["subject_ref"], "event_id": None, "label": label}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _item(
    app: App, who: Principal, row: RowMapping, names: dict[str, dict[str, str]], now: datetime
) -> dict[str, Any]:
    department = row["department"]
    return {
        "id": row["id"],
        "title": row["title"],
        "body": row["body"],
        "department": department,
        "department_label": names.get(department, {"ko": department, "en": department}),
        "status": row["status"],
        "status_label": STATUS_LABELS[row["status"]],
        "open": row["status"] in OPEN_STATUSES,
        "overdue": rules.is_overdue(row["status"], row["due_at"], now),
        "due_at": _iso(row["due_at"]),
        "subject": _subject(app, who, row),
        "sender": row["sender"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "closed_at": _iso(row["closed_at"]),
        "actions": [{"action": a, "label": ACTION_LABELS[a]} for a in rules.actions(who, row)],
        "url": f"/commands/{row['id']}",
    }


def _timeline(conn: Connection, command_id: int) -> list[dict[str, Any]]:
    """The history, oldest first; an entry that keeps the status is a progress report."""
    rows = conn.execute(select(command_history).where(h.command_id == command_id).order_by(h.at, h.id)).all()
    entries, previous = [], None
    for r in rows:
        kind = "sent" if previous is None else PROGRESS if r.status == previous else "status"
        entries.append(
            {
                "at": r.at.isoformat(),
                "status": r.status,
                "status_label": STATUS_LABELS[r.status],
                "kind": kind,
                "label": ACTION_LABELS[PROGRESS] if kind == PROGRESS else STATUS_LABELS[r.status],
                "note": r.note,
                "actor": r.actor,
            }
        )
        previous = r.status
    return entries


def detail(app: App, who: Principal, command_id: int, *, now: datetime) -> dict[str, Any]:
    """``GET /api/status/commands/{id}`` and the ``/commands/{id}`` page: one command, its timeline."""
    rules.require_reader(who)
    with _reading(app) as conn:
        row = conn.execute(_query().where(c.id == command_id)).mappings().one_or_none()
        if row is None:
            raise NotFound(f"no command {command_id}")
        rules.check_visible(who, row)
        item = _item(app, who, row, departments.labels(conn), now)
        item["timeline"] = _timeline(conn, command_id)
    return item


# -- listing and paging -------------------------------------------------------------------------
def _scoped(query: Select[Any], who: Principal, department: str | None) -> Select[Any]:
    """Only what ``who`` may read; a department filter outside one's own department is a 403."""
    query = query.where(c.disclosure.in_(sorted(level.value for level in who.levels)))
    if rules.department_bound(who):
        if department is not None and department != who.department:
            raise Forbidden("department staff see their own department's commands only")
        department = who.department or ""  # staff without a department see nothing
    if department is not None:
        query = query.where(c.department == department)
    return query


def listing(
    app: App,
    who: Principal,
    *,
    now: datetime,
    department: str | None = None,
    status: str = "open",
    overdue: bool = False,
    mine: bool = False,
    limit: int = 50,
    next: str | None = None,
) -> dict[str, Any]:
    """``GET /api/status/commands`` and the ``/inbox`` page (routes add ``next_url``).

    Open commands come most urgent first (by due time, so the overdue ones lead); closed ones
    most recently changed first. Keyset paging on (time, id): no OFFSET, no count.
    """
    rules.require_reader(who)
    if status not in STATUS_FILTERS:
        raise ValidationFailed(f"unknown status filter {status!r}", {"accepted": list(STATUS_FILTERS)})
    query = _scoped(_query(), who, department)
    if status == "open" or overdue:
        query = query.where(c.status.in_(sorted(OPEN_STATUSES)))
    elif status != "all":
        query = query.where(c.status == status)
    if overdue:
        query = query.where(c.due_at < now)
    if mine:
        query = query.where(c.created_by == who.user_id)
    ascending = status == "open" or overdue
    order, key = ("due", c.due_at) if ascending else ("changed", c.updated_at)
    if next:
        at, last = paging.after(next, order)
        if ascending:
            query = query.where(or_(key > at, and_(key == at, c.id > last)))
        else:
            query = query.where(or_(key < at, and_(key == at, c.id < last)))
    query = query.order_by(key.asc(), c.id.asc()) if ascending else query.order_by(key.desc(), c.id.desc())
    with _reading(app) as conn:
        rows = conn.execute(query.limit(limit + 1)).mappings().all()
        names = departments.labels(conn)
    page = rows[:limit]
    token = None
    if len(rows) > limit:
        last_row = page[-1]
        token = paging.token(
            order, last_row["due_at"] if ascending else last_row["updated_at"], last_row["id"]
        )
    return {
        "now": now.isoformat(),
        "filters": {"department": department, "status": status, "overdue": overdue, "mine": mine},
        "scope": who.department if rules.department_bound(who) else None,
        "items": [_item(app, who, r, names, now) for r in page],
        "next": token,
    }


def summary(app: App, who: Principal, *, now: datetime) -> dict[str, Any]:
    """``GET /api/status/commands/summary``: for the mayor's screen, open and overdue commands
    per department, the most overdue ones, and those handed back in the last day (department
    staff: their department only)."""
    rules.require_reader(who)
    late = c.due_at < now
    counts = _scoped(
        select(c.department, func.count().label("open"), func.sum(case((late, 1), else_=0)).label("overdue")),
        who,
        None,
    ).where(c.status.in_(sorted(OPEN_STATUSES)))
    overdue_q = _scoped(_query(), who, None).where(c.status.in_(sorted(OPEN_STATUSES)), late)
    returned_q = _scoped(_query(), who, None).where(
        c.status == RETURNED, c.updated_at >= now - RETURNED_WINDOW
    )
    with _reading(app) as conn:
        per = conn.execute(counts.group_by(c.department)).all()
        rows = conn.execute(overdue_q.order_by(c.due_at, c.id).limit(SUMMARY_OVERDUE + 1)).mappings().all()
        returned = (
            conn.execute(returned_q.order_by(c.updated_at.desc(), c.id.desc()).limit(SUMMARY_RETURNED))
            .mappings()
            .all()
        )
        names = departments.labels(conn)
    rows_per = sorted(per, key=lambda r: (-int(r.overdue or 0), -int(r.open), r.department))
    return {
        "now": now.isoformat(),
        "totals": {"open": sum(int(r.open) for r in per), "overdue": sum(int(r.overdue or 0) for r in per)},
        "departments": [
            {
                "name": r.department,
                "label": names.get(r.department, {"ko": r.department, "en": r.department}),
                "open": int(r.open),
                "overdue": int(r.overdue or 0),
            }
            for r in rows_per
        ],
        "overdue": [_item(app, who, r, names, now) for r in rows[:SUMMARY_OVERDUE]],
        "overdue_more": len(rows) > SUMMARY_OVERDUE,
        "returned": [_item(app, who, r, names, now) for r in returned],
    }


def department_choices(app: App, who: Principal) -> dict[str, Any]:
    """``GET /api/status/commands/departments``: where a command may be sent."""
    rules.require_reader(who)
    with _reading(app) as conn:
        return {"departments": [d.as_json() for d in departments.known(conn)]}


def new_form(
    app: App, who: Principal, *, event_id: int | None, subject_kind: str | None, subject_ref: str | None
) -> dict[str, Any]:
    """What the "send a command" form offers: the departments, and the subject it was opened from
    (an event page, a district or a figure on the dashboard), labelled as the command will be, and
    the event's own department as the suggested addressee."""
    who.require(Permission.COMMANDS_SEND)
    with _reading(app) as conn:
        choices = [d.as_json() for d in departments.known(conn)]
        event = None
        if event_id is not None:
            _event_check(conn, who, event_id)
            event = conn.execute(select(e.title, e.disclosure, e.department).where(e.id == event_id)).one()
    row = {
        "event_id": event_id,
        "event_title": event.title if event else None,
        "event_disclosure": event.disclosure if event else None,
        "subject_kind": None if event_id is not None else subject_kind,
        "subject_ref": None if event_id is not None else subject_ref,
    }
    return {
        "departments": choices,
        "subject": _subject(app, who, row),
        "suggested_department": event.department if event else None,
    }


# -- changes ------------------------------------------------------------------------------------
def _event_check(conn: Connection, who: Principal, event_id: int) -> None:
    row = conn.execute(select(e.id, e.disclosure).where(e.id == event_id)).one_or_none()
    if row is None or row.disclosure not in who.levels:
        raise ValidationFailed(f"no event {event_id}", {"event_id": event_id})


def _history(
    conn: Connection, command_id: int, status: str, note: str, who: Principal, now: datetime
) -> None:
    conn.execute(
        insert(command_history).values(
            command_id=command_id, at=now, status=status, note=note, user_id=who.user_id, actor=who.name
        )
    )


def send(app: App, who: Principal, body: CommandIn, *, now: datetime) -> dict[str, Any]:
    """Send a command to a department (``commands.send``); returns it as ``detail`` does."""
    who.require(Permission.COMMANDS_SEND)
    due = body.due(now)
    if due <= now:
        raise ValidationFailed("the due time must be in the future", {"due_at": due.isoformat()})
    if due - now > MAX_DUE:
        raise ValidationFailed("the due time is more than a year ahead", {"due_at": due.isoformat()})
    with app.engine.begin() as conn:
        department = departments.resolve(conn, body.department)
        if body.event_id is not None:
            _event_check(conn, who, body.event_id)
        if body.subject_kind == "district" and app.geo.district_info(body.subject_ref or "") is None:
            raise ValidationFailed(f"no district {body.subject_ref!r}", {"subject_ref": body.subject_ref})
        command_id = conn.execute(
            insert(commands)
            .values(
                title=body.title,
                body=body.body,
                department=department.name,
                status=COMMAND_LIFECYCLE.initial,
                due_at=due,
                subject_kind="event" if body.event_id is not None else body.subject_kind,
                subject_ref=str(body.event_id) if body.event_id is not None else body.subject_ref,
                event_id=body.event_id,
                disclosure=DISCLOSURE,
                created_by=who.user_id,
                created_at=now,
                updated_at=now,
            )
            .returning(c.id)
        ).scalar_one()
        _history(conn, command_id, COMMAND_LIFECYCLE.initial, "", who, now)
        audit(
            conn,
            who,
            "command.sent",
            f"command:{command_id}",
            f"to {department.name}, due {due.isoformat()}",
            now=now,
        )
    _notify(app, command_id, COMMAND_LIFECYCLE.initial, department.name, "sent")
    return detail(app, who, command_id, now=now)


def act(
    app: App, who: Principal, command_id: int, action: str, note: str, *, now: datetime
) -> dict[str, Any]:
    """Move a command on (a status of the lifecycle, or an alias) or report progress (``progress``).

    Raises 401/403 (who), 404 (no such command), 409 (the table forbids it), 400 (a note missing).
    """
    rules.require_reader(who)
    action = ALIASES.get(action, action)
    note = note.strip()
    with app.engine.begin() as conn:
        row = (
            conn.execute(select(commands).where(c.id == command_id).with_for_update())
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise NotFound(f"no command {command_id}")
        rules.check_visible(who, row)
        if action != PROGRESS and action not in COMMAND_LIFECYCLE.allowed:
            raise ValidationFailed(
                f"{action!r} is not a command status",
                {"status": action, "statuses": list(COMMAND_LIFECYCLE.statuses), "aliases": ALIASES},
            )
        if (why := rules.refusal(who, row, action)) is not None:
            raise Forbidden(why)
        if action == PROGRESS:
            if row["status"] not in PROGRESS_STATUSES:
                raise InvalidTransition(
                    f"progress is reported while a command is in progress, not {row['status']!r}",
                    {"from": row["status"], "allowed": sorted(PROGRESS_STATUSES)},
                )
            if not note:
                raise ValidationFailed("a progress report needs a note")
            status = row["status"]
        else:
            COMMAND_LIFECYCLE.check(row["status"], action, note=note)
            status = action
        _history(conn, command_id, status, note, who, now)
        closed = now if status in COMMAND_LIFECYCLE.final else None
        conn.execute(
            update(commands).where(c.id == command_id).values(status=status, updated_at=now, closed_at=closed)
        )
        audit(conn, who, f"command.{action}", f"command:{command_id}", note[:500], now=now)
    _notify(app, command_id, status, row["department"], action)
    return detail(app, who, command_id, now=now)


def _notify(app: App, command_id: int, status: str, department: str, action: str) -> None:
    """After commit: open dashboards and inboxes refetch (the notice itself holds no content)."""
    publish_notice(
        app,
        "command",
        DISCLOSURE,
        {"id": command_id, "status": status, "department": department, "action": action},
    )
