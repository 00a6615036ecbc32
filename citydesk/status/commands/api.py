"""JSON routes of commands to departments (``/api/status/commands``): thin shells over ``service``.

Everything here is staff-only (commands are internal): anonymous callers get 401, a public
instance 403, before anything is read. Routes are plain ``def``: the service is synchronous.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from citydesk.auth import Permission, Principal, require_staff, requires
from citydesk.status.commands import service
from citydesk.status.commands.schemas import CommandIn, ProgressIn, StatusIn
from citydesk.status.commands.workflow import PROGRESS
from citydesk.web.deps import get_app

router = APIRouter(prefix="/api/status/commands", tags=["commands"])
Staff = Annotated[Principal, Depends(require_staff)]
Sender = Annotated[Principal, Depends(requires(Permission.COMMANDS_SEND))]
StatusFilter = Literal["open", "done", "returned", "cancelled", "all"]


def next_url(request: Request, token: str | None) -> str | None:
    """The same listing's next page: every filter kept, ``next`` replaced."""
    return str(request.url.include_query_params(next=token)) if token else None


@router.get("/departments", summary="Departments a command may be sent to, with bilingual labels")
def departments(request: Request, who: Staff) -> dict[str, Any]:
    return service.department_choices(get_app(request), who)


@router.get("/summary", summary="For the mayor's screen: open and overdue commands per department")
def summary(request: Request, who: Staff) -> dict[str, Any]:
    """Department staff get their own department's figures only."""
    app = get_app(request)
    return service.summary(app, who, now=app.now())


@router.get("", summary="Commands, most urgent first (open) or most recently changed (closed)")
def list_commands(
    request: Request,
    who: Staff,
    department: Annotated[str | None, Query(max_length=100)] = None,
    status: StatusFilter = "open",
    overdue: Annotated[bool, Query(description="open and past their due time")] = False,
    mine: Annotated[bool, Query(description="sent by me")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    next: Annotated[str | None, Query(max_length=400, description="the previous page's `next`")] = None,
) -> dict[str, Any]:
    app = get_app(request)
    data = service.listing(
        app,
        who,
        now=app.now(),
        department=department,
        status=status,
        overdue=overdue,
        mine=mine,
        limit=limit,
        next=next,
    )
    return data | {"next_url": next_url(request, data["next"])}


@router.post("", status_code=201, summary="Send a command to a department (commands.send)")
def send(request: Request, body: CommandIn, who: Sender) -> dict[str, Any]:
    app = get_app(request)
    return service.send(app, who, body, now=app.now())


@router.get("/{command_id}", summary="One command with its timeline and what the caller may do")
def one(request: Request, command_id: int, who: Staff) -> dict[str, Any]:
    app = get_app(request)
    return service.detail(app, who, command_id, now=app.now())


@router.post("/{command_id}/status", summary="Acknowledge, start, close, return or cancel a command")
def change_status(request: Request, command_id: int, body: StatusIn, who: Staff) -> dict[str, Any]:
    """409 if the lifecycle does not allow the change, 403 if the caller may not make it,
    400 if it needs a note (done, returned, cancelled) and none was given."""
    app = get_app(request)
    return service.act(app, who, command_id, body.status, body.note, now=app.now())


@router.post("/{command_id}/progress", summary="Report progress on a command in progress")
def progress(request: Request, command_id: int, body: ProgressIn, who: Staff) -> dict[str, Any]:
    app = get_app(request)
    return service.act(app, who, command_id, PROGRESS, body.note, now=app.now())
