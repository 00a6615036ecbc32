"""JSON routes of the data hub beside SensorThings: latest values and rollup aggregates."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from citydesk.auth import Principal, principal
from citydesk.hub.sta import aggregate
from citydesk.web.deps import get_app

router = APIRouter(prefix="/api/hub", tags=["data hub"])
PrincipalDep = Annotated[Principal, Depends(principal)]


@router.get("/latest", summary="Latest observation of every datastream the caller may see")
def latest(request: Request, who: PrincipalDep, observed_property: str | None = None) -> Response:
    """From the worker's in-memory snapshot (at most a second behind other workers' writes)."""
    app = get_app(request)
    with app.engine.connect().execution_options(read_only=True) as conn:
        values = app.latest.values(conn, who.levels, observed_property=observed_property)
    return Response(orjson.dumps({"value": values}), media_type="application/json")


@router.get(
    "/aggregates", summary="Rollup aggregates of an observed property by district, datastream or city"
)
def aggregates(
    request: Request,
    who: PrincipalDep,
    observed_property: Annotated[str, Query(description="ObservedProperty name or definition, e.g. PM10")],
    interval: Annotated[str, Query(pattern="^(hour|day)$")] = "hour",
    group_by: Annotated[str, Query(pattern="^(district|datastream|none)$")] = "district",
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    return aggregate.by_group(
        get_app(request),
        who,
        observed_property=observed_property,
        interval=interval,
        group_by=group_by,
        start=start,
        end=end,
    )
