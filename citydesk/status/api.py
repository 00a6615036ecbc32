"""JSON routes of the live city status, and its Server-Sent Events stream.

Thin shells over ``service`` (and ``stream`` for the live feed): the dashboard pages and any other
client read the same answers. Routes that read the database are plain ``def`` (it is synchronous),
except the two answers every screen polls, which are ``async`` around a per-worker cache; the
stream's body is an async generator that runs in the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from citydesk.auth import Principal, principal
from citydesk.status import service
from citydesk.status.fastpath import GEOJSON, answer_key
from citydesk.status.stream import EventStreamResponse, stream
from citydesk.web.deps import get_app

if TYPE_CHECKING:
    from citydesk.web.app import App

router = APIRouter(prefix="/api/status", tags=["city status"])
PrincipalDep = Annotated[Principal, Depends(principal)]
MeasureQuery = Annotated[
    str, Query(description="ObservedProperty name, e.g. PM10 (see /api/status/measures)")
]
EVENT_STREAM = "text/event-stream"


async def cached_answer(
    app: App, key: Hashable, compute: Callable[[], dict[str, Any]], media_type: str = "application/json"
) -> Response:
    """A recent answer straight from the event loop, else computed in a worker thread (see
    ``live.AnswerCache``): the routes are ``async`` so that a cache hit costs no thread hop.
    Anonymous hits do not even get here (``fastpath``)."""
    body = app.status.answers.peek(key)
    if body is None:
        body = await run_in_threadpool(app.status.answers.get, key, lambda: orjson.dumps(compute()))
    return Response(body, media_type=media_type)


@router.get("/measures", summary="Numeric measures the caller may see, with unit and bilingual label")
def measures(request: Request, who: PrincipalDep) -> dict[str, Any]:
    return service.measures(get_app(request), who)


@router.get(
    "/air",
    summary="One measure per district and for the city: latest values, health bands, last 24 h",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, 404: {"description": "unknown measure"}},
)
async def air(request: Request, who: PrincipalDep, measure: MeasureQuery) -> Response:
    """``districts`` lists all 25 districts in code order (value null without a sensor); ``series``
    holds hourly means from the rollups; ``levels`` is null for a measure without health bands."""
    app = get_app(request)
    return await cached_answer(
        app, answer_key("air", measure, who.levels), lambda: service.air(app, who, measure, now=app.now())
    )


@router.get(
    "/sensors",
    summary="Sensors measuring one measure, with their latest value, as GeoJSON",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}, 404: {"description": "unknown measure"}},
)
async def sensors(request: Request, who: PrincipalDep, measure: MeasureQuery) -> Response:
    app = get_app(request)
    return await cached_answer(
        app, answer_key("sensors", measure, who.levels), lambda: service.sensors(app, who, measure), GEOJSON
    )


@router.get(
    "/stream",
    summary="Live observations as Server-Sent Events",
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {}},
            "description": "Events `observations` (data: {measure?, datastreams: [{id, district, "
            "measure, phenomenonTime, result}]}), `resync` (data: {dropped}: reload the figures), "
            "`ping` every 15 s.",
        },
        404: {"description": "unknown measure"},
    },
)
def live(
    request: Request,
    who: PrincipalDep,
    measure: Annotated[str | None, Query(description="only this measure, e.g. PM10")] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="sent by a reconnecting browser: replay what it missed"),
    ] = None,
) -> EventStreamResponse:
    """Every stored batch the caller may see, from any worker, as it is committed."""
    app = get_app(request)
    if measure is not None:
        service.require_measure(app, who, measure)
    return EventStreamResponse(
        stream(app.status.feed, who.levels, measure, last_event_id),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
