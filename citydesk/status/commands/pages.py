"""Staff pages of commands: the department's inbox, one command's timeline, the "send" form.

Each page takes its data from the same service call as its JSON twin (``/inbox`` ↔
``GET /api/status/commands``, ``/commands/{id}`` ↔ ``GET /api/status/commands/{id}``), so a test
can compare them. Forms post to the same service functions as the API; a refused change is shown
on the page it came from, with the service's message. Signed-out visitors are sent to sign in.

``/commands/new?event=ID`` (or ``?subject_kind=district&subject_ref=11680``) is the link an event
page or the dashboard offers to send a command about what it shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citydesk.auth import CurrentPrincipal, Permission, Principal
from citydesk.errors import CitydeskError, Forbidden, InvalidTransition, ValidationFailed
from citydesk.status.commands import service
from citydesk.status.commands.api import StatusFilter, next_url
from citydesk.status.commands.schemas import CommandIn, SubjectKind
from citydesk.web.deps import get_app
from citydesk.web.templating import city_clock, render

pages_router = APIRouter(include_in_schema=False)

DURATIONS: list[tuple[str, dict[str, str]]] = [
    ("PT30M", {"ko": "30분 안에", "en": "in 30 min"}),
    ("PT1H", {"ko": "1시간 안에", "en": "in 1 h"}),
    ("PT2H", {"ko": "2시간 안에", "en": "in 2 h"}),
    ("PT4H", {"ko": "4시간 안에", "en": "in 4 h"}),
    ("PT8H", {"ko": "8시간 안에", "en": "in 8 h"}),
    ("P1D", {"ko": "1일 안에", "en": "in 1 day"}),
    ("P3D", {"ko": "3일 안에", "en": "in 3 days"}),
    ("P7D", {"ko": "7일 안에", "en": "in 7 days"}),
]
"""The due times the form offers besides an exact date and time (ISO 8601 durations)."""


def _sign_in(request: Request, who: Principal) -> Response | None:
    if who.is_staff:
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _back(target: str, fallback: str) -> str:
    """Where a form returns to: one of our command pages, never another site."""
    return target if target.startswith(("/inbox", "/commands/")) and "//" not in target else fallback


def _context(request: Request, who: Principal, **values: Any) -> dict[str, Any]:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {
        "who": who,
        "when": city_clock(request, empty="–"),
        "here": here,
        "timezone": get_app(request).settings.timezone,
        "can_send": who.can(Permission.COMMANDS_SEND),
    } | values


@pages_router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    who: CurrentPrincipal,
    department: Annotated[str | None, Query(max_length=100)] = None,
    status: StatusFilter = "open",
    mine: bool = False,
    next: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    """Department staff: their department's commands; others: every department's (filterable)."""
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    app = get_app(request)
    data = service.listing(
        app, who, now=app.now(), department=department or None, status=status, mine=mine, next=next
    )
    data |= {"next_url": next_url(request, data["next"])}
    choices = service.department_choices(app, who)["departments"]
    return render(request, "inbox.html", _context(request, who, data=data, departments=choices))


@pages_router.get("/commands/new", response_class=HTMLResponse)
def new_command(
    request: Request,
    who: CurrentPrincipal,
    event: int | None = None,
    subject_kind: Annotated[str | None, Query(max_length=32)] = None,
    subject_ref: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    kind = subject_kind if subject_kind in get_args(SubjectKind) and subject_ref else None
    values = {
        "event_id": event,
        "subject_kind": kind,
        "subject_ref": subject_ref if kind else None,
        "department": department or "",
        "due_in": "PT2H",
    }
    return _form(request, who, values)


def _form(
    request: Request, who: Principal, values: dict[str, Any], errors: list[str] | None = None
) -> Response:
    app = get_app(request)
    data = service.new_form(
        app,
        who,
        event_id=values["event_id"],
        subject_kind=values["subject_kind"],
        subject_ref=values["subject_ref"],
    )
    if not values.get("department") and data["suggested_department"]:
        values = values | {"department": data["suggested_department"]}
    context = _context(request, who, data=data, values=values, errors=errors or [], durations=DURATIONS)
    return render(request, "command_new.html", context, status_code=400 if errors else 200)


def _due_at(text: str, timezone: str) -> datetime | None:
    """A ``datetime-local`` value (naive, the city's clock) as an aware time; empty means not given."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed("the due time is not a date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


@pages_router.post("/commands/new", response_class=HTMLResponse)
def send_command(
    request: Request,
    who: CurrentPrincipal,
    title: Annotated[str, Form()] = "",
    body: Annotated[str, Form()] = "",
    department: Annotated[str, Form()] = "",
    due_in: Annotated[str, Form()] = "",
    due_at: Annotated[str, Form()] = "",
    event_id: Annotated[str, Form()] = "",
    subject_kind: Annotated[str, Form()] = "",
    subject_ref: Annotated[str, Form()] = "",
) -> Response:
    who.require(Permission.COMMANDS_SEND)
    app = get_app(request)
    values: dict[str, Any] = {
        "title": title,
        "body": body,
        "department": department,
        "due_in": due_in,
        "due_at": due_at,
        "event_id": int(event_id) if event_id.strip().isdigit() else None,
        "subject_kind": subject_kind or None,
        "subject_ref": subject_ref or None,
    }
    try:
        exact = _due_at(due_at, app.settings.timezone)
        command = CommandIn.model_validate(
            {
                "title": title,
                "body": body,
                "department": department,
                "due_at": exact,
                "due_in": None if exact else (due_in or None),
                "event_id": values["event_id"],
                "subject_kind": values["subject_kind"],
                "subject_ref": values["subject_ref"],
            }
        )
        sent = service.send(app, who, command, now=app.now())
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in err['loc']) or 'form'}: {err['msg']}" for err in exc.errors()]
        return _form(request, who, values, errors)
    except ValidationFailed as exc:
        return _form(request, who, values, [exc.message])
    return RedirectResponse(sent["url"], status_code=303)


def _detail(
    request: Request, who: Principal, command_id: int, error: CitydeskError | None = None
) -> Response:
    app = get_app(request)
    data = service.detail(app, who, command_id, now=app.now())
    context = _context(request, who, data=data, error=error.message if error else None)
    return render(request, "command.html", context, status_code=error.status if error else 200)


@pages_router.get("/commands/{command_id}", response_class=HTMLResponse)
def command_page(request: Request, who: CurrentPrincipal, command_id: int) -> Response:
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    return _detail(request, who, command_id)


@pages_router.post("/commands/{command_id}/act", response_class=HTMLResponse)
def act(
    request: Request,
    who: CurrentPrincipal,
    command_id: int,
    action: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """A button of the inbox or the timeline page: back where it came from, or the refusal shown
    on the command's page (a missing note, a change someone else made first)."""
    app = get_app(request)
    try:
        service.act(app, who, command_id, action, note, now=app.now())
    except (ValidationFailed, InvalidTransition, Forbidden) as exc:
        return _detail(request, who, command_id, exc)
    return RedirectResponse(_back(next, f"/commands/{command_id}"), status_code=303)
