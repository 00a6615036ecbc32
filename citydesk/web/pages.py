"""The landing page and its JSON twin: one service call, two renderings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
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


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs() -> HTMLResponse:
    """Swagger UI from our own static folder: FastAPI's default page loads it from a CDN, which a
    city's internal network (and our no-network rule) would not reach."""
    vendor = "/static/vendor/swagger-ui"
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="citydesk API",
        swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
        swagger_css_url=f"{vendor}/swagger-ui.css",
        swagger_favicon_url=f"{vendor}/favicon-32x32.png",
    )
