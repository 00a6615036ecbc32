"""Staff pages of the data hub: sources with their status, the quarantine, and manual entry.

Each page takes its data from the same service call as its JSON twin in ``api.py`` (Datasette's
rule), so a test can compare them. Signed-out visitors are sent to the sign-in page.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citydesk.auth import CurrentPrincipal, Permission, Principal
from citydesk.errors import CitydeskError
from citydesk.hub.connectors.manual.config import ManualEntry, parse_time
from citydesk.hub.sources import service
from citydesk.hub.sources.api import manual, next_url
from citydesk.hub.sources.runner import runner_of
from citydesk.web.deps import get_app
from citydesk.web.templating import render

pages_router = APIRouter(include_in_schema=False)


def _sign_in(request: Request, who: Principal) -> Response | None:
    if who.is_staff:
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


@pages_router.get("/hub/sources", response_class=HTMLResponse)
def sources_page(request: Request, who: CurrentPrincipal) -> Response:
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    app = get_app(request)
    data = service.sources_listing(app.engine, runner_of(app).registry)
    return render(request, "hub_sources.html", {"data": data, "who": who})


@pages_router.get("/hub/quarantine", response_class=HTMLResponse)
def quarantine_page(
    request: Request,
    who: CurrentPrincipal,
    source_id: int | None = None,
    limit: int = 50,
    next: str | None = None,
) -> Response:
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    data = service.quarantine_listing(
        get_app(request).engine, source_id=source_id, limit=min(max(limit, 1), 500), next=next
    )
    data |= {"next_url": next_url(request, data["next"])}
    return render(request, "hub_quarantine.html", {"data": data, "who": who})


def _manual(
    request: Request, who: Principal, source_id: int | None, status: int = 200, **extra: Any
) -> Response:
    app = get_app(request)
    data = manual(app).form_data(app, who, source_id=source_id)
    context = {"data": data, "who": who, "result": None, "errors": [], "values": {}} | extra
    return render(request, "hub_manual.html", context, status_code=status)


@pages_router.get("/hub/manual", response_class=HTMLResponse)
def manual_page(request: Request, who: CurrentPrincipal, source_id: int | None = None) -> Response:
    if (redirect := _sign_in(request, who)) is not None:
        return redirect
    who.require(Permission.MANUAL_ENTRY)
    return _manual(request, who, source_id)


@pages_router.post("/hub/manual", response_class=HTMLResponse)
def manual_submit(
    request: Request,
    who: CurrentPrincipal,
    datastream_id: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    time: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    source_id: Annotated[str, Form()] = "",
) -> Response:
    who.require(Permission.MANUAL_ENTRY)
    app = get_app(request)
    values = {"datastream_id": datastream_id, "value": value, "time": time, "note": note}
    source = int(source_id) if source_id.strip().isdigit() else None
    try:
        entry = ManualEntry(
            datastream_id=int(datastream_id or 0),
            value=value.strip(),
            time=parse_time(time, app.settings.timezone),
            note=note.strip() or None,
            source_id=source,
        )
        result = manual(app).submit(app, who, [entry])
    except (ValueError, ValidationError) as exc:
        errors = (
            [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [str(exc)]
        )
        return _manual(request, who, source, 400, errors=errors, values=values)
    except CitydeskError as exc:
        return _manual(request, who, source, exc.status, errors=[exc.message], values=values)
    ok = bool(result["stored"] or result["duplicates"])
    errors = [r["reason"] for r in result["rejected"]]
    return _manual(
        request, who, source, 200 if ok else 400, result=result, errors=errors, values={} if ok else values
    )
