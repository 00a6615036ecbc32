"""Routes of the city-status sections and layouts (the screens read these).

Section answers are cached per worker like ``/api/status/air`` (``app.status.answers``, keyed by
section and the caller's disclosure levels, never the user), so a wall of screens costs one
computation per second per level set.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from citydesk.auth import Permission, Principal, principal, requires
from citydesk.status.api import GEOJSON, cached_answer
from citydesk.status.sections import layouts, service
from citydesk.web.deps import get_app

router = APIRouter(prefix="/api/status", tags=["city status"])
PrincipalDep = Annotated[Principal, Depends(principal)]
SectionId = Annotated[str, Path(description="section id, e.g. air, safety, transport")]
JSON_ONLY: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}}}}


@router.get(
    "/sections",
    summary="Sections the caller has something to see in, with their bilingual title and widget count",
    response_class=Response,
    responses=JSON_ONLY,
)
async def sections(request: Request, who: PrincipalDep) -> Response:
    app = get_app(request)

    def one(section_id: str) -> dict[str, Any]:
        key = ("section", section_id, who.levels)
        body = app.status.answers.get(
            key, lambda: orjson.dumps(service.section(app, who, section_id, now=app.now()))
        )
        return dict(orjson.loads(body))

    def compute() -> dict[str, Any]:
        return service.listing(app, who, now=app.now(), compute_section=one)

    return await cached_answer(app, ("sections", who.levels), compute)


@router.get(
    "/sections/{section_id}",
    summary="One section: its widgets computed from the hub data the caller may see",
    response_class=Response,
    responses={**JSON_ONLY, 404: {"description": "unknown section"}},
)
async def section(request: Request, who: PrincipalDep, section_id: SectionId) -> Response:
    """Widgets: ``figure`` (value, time, detail, trend), ``series``, ``bars``, ``table``,
    ``choropleth`` (all 25 districts), ``points`` (url of its GeoJSON layer), ``events`` (filter)."""
    app = get_app(request)
    return await cached_answer(
        app, ("section", section_id, who.levels), lambda: service.section(app, who, section_id, now=app.now())
    )


@router.get(
    "/sections/{section_id}/layers/{widget_id}",
    summary="The facilities of a points widget as GeoJSON (name, facility, latest value)",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}, 404: {"description": "unknown section or layer"}},
)
async def section_layer(
    request: Request, who: PrincipalDep, section_id: SectionId, widget_id: str
) -> Response:
    app = get_app(request)
    return await cached_answer(
        app,
        ("layer", section_id, widget_id, who.levels),
        lambda: service.points_layer(app, who, section_id, widget_id, now=app.now()),
        GEOJSON,
    )


@router.get(
    "/layouts/{perspective}", summary="The sections a perspective shows (mayor, official, citizen, kiosk)"
)
def get_layout(request: Request, perspective: str) -> dict[str, Any]:
    return layouts.get_layout(get_app(request), perspective)


@router.put(
    "/layouts/{perspective}",
    summary="Save a perspective's layout (needs layouts.manage); unknown section ids are refused",
)
async def put_layout(
    request: Request,
    perspective: str,
    layout: layouts.Layout,
    who: Annotated[Principal, Depends(requires(Permission.LAYOUTS_MANAGE))],
) -> dict[str, Any]:
    app = get_app(request)
    return await run_in_threadpool(layouts.save_layout, app, who, perspective, layout, now=app.now())
