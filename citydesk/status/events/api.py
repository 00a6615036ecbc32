"""``/api/status/events``: list, map layer, one event with its timeline, report, move on.

Thin shells over ``service``, which decides what each caller may see. Reads are open to everyone
(anonymous callers get public events only); reporting and moving events need ``events.manage``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from citydesk.auth import CurrentPrincipal, Permission, Principal, requires
from citydesk.status.events import service
from citydesk.web.deps import get_app

router = APIRouter(prefix="/api/status", tags=["city status: events"])
Manager = Annotated[Principal, Depends(requires(Permission.EVENTS_MANAGE))]
GEOJSON = "application/geo+json"


def next_url(request: Request, token: str | None) -> str | None:
    return str(request.url.include_query_params(next=token)) if token else None


def filters(
    status: Annotated[Literal["open", "resolved", "all"], Query(description="open, resolved or all")] = "all",
    kind: Annotated[str | None, Query(max_length=32)] = None,
    severity: Annotated[str | None, Query(max_length=16)] = None,
    district: Annotated[str | None, Query(max_length=10, description="district code")] = None,
    since: Annotated[
        datetime | None, Query(description="opened or changed since (ISO 8601 with zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    next: Annotated[str | None, Query(description="the `next` token of the previous page")] = None,
) -> service.Filters:
    return service.Filters(
        status=status, kind=kind, severity=severity, district=district, since=since, limit=limit, next=next
    )


def page(request: Request, who: Principal, chosen: service.Filters) -> dict[str, Any]:
    """The list as the API and the page both show it (with ``next_url``)."""
    app = get_app(request)
    data = service.listing(app, who, chosen, now=app.now())
    return data | {"next_url": next_url(request, data["next"])}


@router.get(
    "/events",
    summary="Events the caller may see, newest first (?f=geojson: open events as GeoJSON)",
    responses={200: {"content": {"application/json": {}, GEOJSON: {}}}},
)
def list_events(
    request: Request,
    who: CurrentPrincipal,
    chosen: Annotated[service.Filters, Depends(filters)],
    f: Annotated[Literal["json", "geojson"], Query(description="geojson: the map layer")] = "json",
) -> Any:
    if f == "geojson":
        app = get_app(request)
        return JSONResponse(service.geojson(app, who, now=app.now()), media_type=GEOJSON)
    return page(request, who, chosen)


@router.get(
    "/events.geojson",
    summary="Open events with a position, as GeoJSON (the map layer)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}}},
)
def events_geojson(request: Request, who: CurrentPrincipal) -> Response:
    app = get_app(request)
    return JSONResponse(service.geojson(app, who, now=app.now()), media_type=GEOJSON)


@router.get("/events/{event_id}", summary="One event with its timeline")
def get_event(request: Request, event_id: int, who: CurrentPrincipal) -> dict[str, Any]:
    app = get_app(request)
    return service.detail(app, who, event_id, now=app.now())


@router.post("/events", status_code=201, summary="Report an event (events.manage)")
def report_event(request: Request, body: service.EventIn, who: Manager) -> dict[str, Any]:
    app = get_app(request)
    return service.report(app, who, body, now=app.now())


@router.post(
    "/events/{event_id}/status",
    summary="Move an event on (reported → dispatched → in_progress → resolved; resolving needs a note)",
    responses={409: {"description": "the lifecycle does not allow this change"}},
)
def move_event(request: Request, event_id: int, body: service.StatusChange, who: Manager) -> dict[str, Any]:
    app = get_app(request)
    return service.move(app, who, event_id, body, now=app.now())
