"""The landing page and its JSON twin: one service call, two renderings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from citydesk.auth import Principal, principal
from citydesk.web.deps import get_app
from citydesk.web.overview import overview
from citydesk.web.templating import render

router = APIRouter()
PrincipalDep = Annotated[Principal, Depends(principal)]


@router.get("/api/overview", tags=["platform"], summary="What is running")
def overview_json(request: Request, who: PrincipalDep) -> dict[str, Any]:
    return overview(get_app(request), who)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def landing(request: Request, who: PrincipalDep) -> HTMLResponse:
    return render(request, "index.html", {"o": overview(get_app(request), who), "who": who})
