"""``/status/events`` (the list, filterable) and ``/status/events/{id}`` (one event, its timeline,
and for staff who may manage events a form to move it on).

Each page renders exactly what its JSON twin under ``/api/status/events`` returns for the same
caller (the same service call), plus the city's clock for showing times.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citydesk.auth import CurrentPrincipal, Permission, Principal
from citydesk.errors import CitydeskError
from citydesk.status.events import service
from citydesk.status.events.api import filters, page
from citydesk.status.events.workflow import KINDS, SEVERITIES, STATUS_LABELS
from citydesk.web.deps import get_app
from citydesk.web.templating import city_clock, render

pages_router = APIRouter(include_in_schema=False)


def _common(request: Request, who: Principal) -> dict[str, Any]:
    return {
        "who": who,
        "local": city_clock(request),
        "kinds": KINDS,
        "severities": SEVERITIES,
        "statuses": STATUS_LABELS,
        "districts": get_app(request).geo.districts(),
        "may_manage": who.can(Permission.EVENTS_MANAGE) and not get_app(request).settings.public_mode,
        "may_command": who.can(Permission.COMMANDS_SEND) and not get_app(request).settings.public_mode,
    }


@pages_router.get("/status/events", response_class=HTMLResponse)
def events_page(
    request: Request, who: CurrentPrincipal, chosen: Annotated[service.Filters, Depends(filters)]
) -> Response:
    data = page(request, who, chosen)
    return render(request, "events_list.html", _common(request, who) | {"data": data, "chosen": chosen})


def _detail(
    request: Request, who: Principal, event_id: int, status: int = 200, error: str | None = None
) -> Response:
    app = get_app(request)
    data = service.detail(app, who, event_id, now=app.now())
    context = _common(request, who) | {"event": data, "error": error}
    return render(request, "events_detail.html", context, status_code=status)


@pages_router.get("/status/events/{event_id}", response_class=HTMLResponse)
def event_page(request: Request, event_id: int, who: CurrentPrincipal) -> Response:
    return _detail(request, who, event_id)


@pages_router.post("/status/events/{event_id}/status", response_class=HTMLResponse)
def event_move(
    request: Request,
    event_id: int,
    who: CurrentPrincipal,
    status: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The form's target: on success back to the event (303), else the page with the reason."""
    if not who.is_staff:
        return RedirectResponse(f"/login?next={quote(f'/status/events/{event_id}')}", status_code=303)
    app = get_app(request)
    try:
        who.require(Permission.EVENTS_MANAGE)
        service.move(app, who, event_id, service.StatusChange(status=status, note=note), now=app.now())
    except CitydeskError as exc:
        if exc.status == 404:
            raise
        return _detail(request, who, event_id, exc.status, exc.message)
    return RedirectResponse(f"/status/events/{event_id}", status_code=303)
