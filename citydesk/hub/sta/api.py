"""HTTP routes of the SensorThings API under ``/sta/v1.1``: a thin shell over ``service``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from citydesk.auth import Principal, principal
from citydesk.errors import BadRequest
from citydesk.hub.sta import aggregate, service
from citydesk.web.deps import get_app

router = APIRouter(tags=["SensorThings API 1.1"])
JSON_PATCH = "application/json-patch+json"
PrincipalDep = Annotated[Principal, Depends(principal)]


class STAResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + service.VERSION_PREFIX


async def _body(request: Request) -> Any:
    """The JSON body. ``NaN`` and ``Infinity`` (not JSON, but what some loggers write) are read as
    numbers so that validation can refuse them with its own reason rather than "not JSON"."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("the request has no JSON body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest(f"the body is not valid JSON: {exc}") from None


@router.get("/sta/v1.1", summary="Service root: entity sets and server settings")
@router.get("/sta/v1.1/", include_in_schema=False)
def root(request: Request) -> STAResponse:
    return STAResponse(service.service_root(get_app(request), base_url(request)))


@router.post("/sta/v1.1/CreateObservations", status_code=201, summary="Create Observations from dataArrays")
async def create_observations(request: Request, who: PrincipalDep) -> STAResponse:
    body = await _body(request)
    app = get_app(request)
    base = base_url(request)
    links = await to_thread.run_sync(service.create_observations, app, who, body, base)
    # Every 201 names what it created: the first Observation stored (else the collection).
    first = next((link for link in links if link != "error"), f"{base}/Observations")
    return STAResponse(links, status_code=201, headers={"Location": first})


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
    result = service.get(get_app(request), who, path, request.query_params, base_url(request))
    if isinstance(result, tuple) and result[0] == "raw":
        value = result[1]
        if isinstance(value, dict | list):
            return STAResponse(value)
        return PlainTextResponse("" if value is None else str(value))
    return STAResponse(result)


@router.post("/sta/v1.1/{path:path}", status_code=201, summary="Create (deep insert) or link with $ref")
async def post_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    body = await _body(request)
    app = get_app(request)
    if path.rstrip("/").endswith("$ref"):
        await to_thread.run_sync(service.link, app, who, path, body)
        return Response(status_code=204)
    es, ident = await to_thread.run_sync(service.post, app, who, path, body)
    location = f"{base_url(request)}/{es.name}({ident})"
    return Response(status_code=201, headers={"Location": location})


@router.patch("/sta/v1.1/{path:path}", summary="Update an entity")
@router.put("/sta/v1.1/{path:path}", include_in_schema=False)
async def patch_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    body = await _body(request)
    app = get_app(request)
    if path.rstrip("/").endswith("$ref"):  # PUT Datastreams(1)/Sensor/$ref: re-point a to-one link
        await to_thread.run_sync(service.link, app, who, path, body)
        return Response(status_code=204)
    json_patch = request.headers.get("content-type", "").split(";")[0].strip() == JSON_PATCH
    await to_thread.run_sync(lambda: service.patch(app, who, path, body, json_patch=json_patch))
    return Response(status_code=200)


@router.delete("/sta/v1.1/{path:path}", summary="Delete an entity, or unlink with $ref")
def delete_resource(request: Request, path: str, who: PrincipalDep) -> Response:
    service.delete(get_app(request), who, path)
    return Response(status_code=200)
