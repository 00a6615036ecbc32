"""HTTP routes of the SensorThings API under ``/sta/v1.1``: a thin shell over ``service``."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from citydesk.auth import Principal, principal
from citydesk.hub.sta import aggregate, batch, service
from citydesk.hub.sta.body import is_json_patch, parse_json
from citydesk.web.deps import get_app

router = APIRouter(tags=["SensorThings API 1.1"])
PrincipalDep = Annotated[Principal, Depends(principal)]


class STAResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + service.VERSION_PREFIX


async def _body(request: Request) -> Any:
    return parse_json(await request.body())


def _answer(outcome: service.Outcome, base: str) -> Response:
    """An operation's outcome as the HTTP response of a single route."""
    if outcome.raw and not isinstance(outcome.body, dict | list):
        return PlainTextResponse("" if outcome.body is None else str(outcome.body))
    location = outcome.location(base)
    headers = {"Location": location} if location else None
    if outcome.body is None:
        return Response(status_code=outcome.status, headers=headers)
    return STAResponse(outcome.body, status_code=outcome.status, headers=headers)


@router.get("/sta/v1.1", summary="Service root: entity sets and server settings")
@router.get("/sta/v1.1/", include_in_schema=False)
def root(request: Request) -> STAResponse:
    return STAResponse(service.service_root(get_app(request), base_url(request)))


@router.post("/sta/v1.1/CreateObservations", status_code=201, summary="Create Observations from dataArrays")
async def create_observations(request: Request, who: PrincipalDep) -> Response:
    body = await _body(request)
    app, base = get_app(request), base_url(request)
    return _answer(await to_thread.run_sync(service.create_observations, app, who, body, base), base)


@router.post("/sta/v1.1/$batch", summary="Batch requests: JSON (OData 4.01) or multipart/mixed")
async def batch_requests(request: Request, who: PrincipalDep) -> Response:
    raw = await request.body()
    app, headers = get_app(request), request.headers
    content_type, content = await to_thread.run_sync(
        lambda: batch.handle(
            app, who, headers.get("content-type", ""), headers.get("prefer", ""), raw, base_url(request)
        )
    )
    return Response(content, media_type=content_type)


@router.get(
    "/sta/v1.1/Datastreams({ident})/Observations/$aggregate", summary="Hourly or daily aggregates (extension)"
)
def datastream_aggregate(
    request: Request,
    ident: int,
    who: PrincipalDep,
    interval: str = "hour",
    start: str | None = None,
    end: str | None = None,
) -> STAResponse:
    app = get_app(request)
    return STAResponse(aggregate.datastream_series(app, who, ident, interval, start, end))


@router.get("/sta/v1.1/{path:path}", summary="Read entities, navigation paths, properties, $value and $ref")
def get_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    base = base_url(request)
    return _answer(service.read_request(get_app(request), who, path, request.query_params, base), base)


async def _write(request: Request, method: str, path: str, who: Principal) -> Response:
    body = None if method == "DELETE" else await _body(request)
    json_patch = is_json_patch(request.headers.get("content-type", ""))
    app, base = get_app(request), base_url(request)
    outcome = await to_thread.run_sync(
        lambda: service.request(app, who, method, path, body, base, json_patch=json_patch)
    )
    return _answer(outcome, base)


@router.post("/sta/v1.1/{path:path}", status_code=201, summary="Create (deep insert) or link with $ref")
async def post_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    return await _write(request, "POST", path, who)


@router.patch("/sta/v1.1/{path:path}", summary="Update an entity (JSON merge or JSON Patch)")
async def patch_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    return await _write(request, "PATCH", path, who)


@router.put("/sta/v1.1/{path:path}", summary="Replace an entity, or re-point a to-one $ref")
async def put_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    return await _write(request, "PUT", path, who)


@router.delete("/sta/v1.1/{path:path}", summary="Delete an entity, or unlink with $ref")
async def delete_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    return await _write(request, "DELETE", path, who)
