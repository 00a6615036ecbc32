"""JSON routes of the data hub's sources (``/api/hub``): thin wrappers over ``service`` and the runner.

Everything here is staff-only: source configs describe internal systems and the quarantine holds
raw payloads. Managing sources needs ``sources.manage``; typing figures in needs ``manual.entry``.
Errors are raised as ``citydesk.errors`` classes and rendered by the app's one handler.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from citydesk.auth import Principal, require_staff, requires
from citydesk.errors import ValidationFailed
from citydesk.hub.connectors.manual.config import ManualEntry
from citydesk.hub.sources import service
from citydesk.hub.sources.runner import runner_of
from citydesk.hub.sources.types import SourceIn, SourcePatch
from citydesk.web.deps import get_app

if TYPE_CHECKING:
    from citydesk.hub.connectors.manual.connector import ManualConnector
    from citydesk.web.app import App

router = APIRouter(prefix="/api/hub", tags=["hub sources"])
Staff = Annotated[Principal, Depends(require_staff)]
Manager = Annotated[Principal, Depends(requires("sources.manage"))]
Writer = Annotated[Principal, Depends(requires("manual.entry"))]


def manual(app: App) -> ManualConnector:
    """The manual-entry connector, loaded through the registry like every other kind."""
    return cast("ManualConnector", runner_of(app).registry.connector("manual"))


def next_url(request: Request, token: str | None) -> str | None:
    return str(request.url.include_query_params(next=token)) if token else None


@router.get("/connectors", summary="Connector kinds with their config schema and strings")
def connectors(request: Request, who: Staff) -> dict[str, Any]:
    return service.connectors_listing(runner_of(get_app(request)).registry)


@router.get("/connectors/{kind}", summary="One connector kind: the schema its source form is made from")
def connector(request: Request, kind: str, who: Staff) -> dict[str, Any]:
    return service.describe_kind(runner_of(get_app(request)).registry, kind)


@router.get("/sources", summary="Sources with their status")
def list_sources(request: Request, who: Staff) -> dict[str, Any]:
    app = get_app(request)
    return service.sources_listing(app.engine, runner_of(app).registry)


@router.post("/sources", status_code=201, summary="Create a source (its connection is checked first)")
async def create_source(request: Request, body: SourceIn, who: Manager) -> dict[str, Any]:
    runner = runner_of(get_app(request))
    source = await runner.create(body)
    return service.source_json(runner.registry, source)


@router.get("/sources/{source_id}", summary="One source with its status")
def get_source(request: Request, source_id: int, who: Staff) -> dict[str, Any]:
    app = get_app(request)
    return service.source_detail(app.engine, runner_of(app).registry, source_id)


@router.patch("/sources/{source_id}", summary="Change, enable or disable a source (a new config is checked)")
async def update_source(request: Request, source_id: int, body: SourcePatch, who: Manager) -> dict[str, Any]:
    runner = runner_of(get_app(request))
    source = await runner.update(source_id, body)
    return service.source_json(runner.registry, source)


@router.delete("/sources/{source_id}", status_code=204, summary="Delete a source (its quarantine stays)")
async def delete_source(request: Request, source_id: int, who: Manager) -> Response:
    await runner_of(get_app(request)).delete(source_id)
    return Response(status_code=204)


@router.post("/sources/{source_id}/run", summary="Run a poll source once, now")
async def run_source(request: Request, source_id: int, who: Manager) -> dict[str, Any]:
    app = get_app(request)
    runner = runner_of(app)
    outcome = await runner.run_now(source_id)
    source = await asyncio.to_thread(service.get_source, app.engine, source_id)
    return {"run": outcome.as_json(), "source": service.source_json(runner.registry, source)}


@router.get("/quarantine", summary="Quarantined records, newest first")
def list_quarantine(
    request: Request,
    who: Staff,
    source_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    next: str | None = None,
) -> dict[str, Any]:
    data = service.quarantine_listing(get_app(request).engine, source_id=source_id, limit=limit, next=next)
    return data | {"next_url": next_url(request, data["next"])}


@router.get("/manual", summary="What the manual-entry form offers")
def manual_form(request: Request, who: Writer, source_id: int | None = None) -> dict[str, Any]:
    app = get_app(request)
    return manual(app).form_data(app, who, source_id=source_id)


@router.post("/manual", status_code=201, summary="Type in one figure or a list of figures")
def manual_entry(
    request: Request, who: Writer, body: Annotated[ManualEntry | list[ManualEntry], Body()]
) -> dict[str, Any]:
    entries = body if isinstance(body, list) else [body]
    if not entries:
        raise ValidationFailed("no entries given")
    app = get_app(request)
    result = manual(app).submit(app, who, entries)
    if result["rejected"] and not result["stored"] and not result["duplicates"]:
        raise ValidationFailed(result["rejected"][0]["reason"], details=result["rejected"])
    return result
