"""The dashboard pages.

``/dashboard`` is a server-rendered shell: the figures, the map and the charts are filled in by
``/static/dashboard.js`` from the JSON routes of :mod:`citydesk.status.api` and kept live by their
event stream, so the page and its JSON twins cannot drift apart and what a viewer sees is exactly
what those routes disclose to them.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from citydesk.auth import CurrentPrincipal
from citydesk.status.screens import ViewQuery, screen_context
from citydesk.web.templating import render

pages_router = APIRouter(include_in_schema=False)


@pages_router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    who: CurrentPrincipal,
    measure: str = Query("PM10", max_length=40, description="the measure shown first"),
    view: ViewQuery = None,
) -> HTMLResponse:
    """The main screen: the city map with the chosen measure per district, and the key figures
    of the sections in the viewer's layout (an official's department's sections first)."""
    return render(request, "dashboard.html", screen_context(request, who, view) | {"measure": measure})
