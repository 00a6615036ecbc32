"""Staff pages of the data hub: sources with their status, adding and editing them, the
quarantine, and manual entry.

Each page takes its data from the same service call as its JSON twin in ``api.py`` (Datasette's
rule), so a test can compare them, and each form submits through the same runner call as its API
route (``create``, ``update``, ``delete``). Signed-out visitors are sent to the sign-in page;
the forms that manage sources need what the API needs, ``sources.manage``. What the add and edit
forms show, and how a submitted form becomes a ``SourceIn``/``SourcePatch``, is ``editor``'s job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from citydesk.auth import CurrentPrincipal, Permission, Principal
from citydesk.errors import CitydeskError, Conflict, ValidationFailed
from citydesk.hub.connectors.manual.config import ManualEntry, parse_time
from citydesk.hub.sources import editor, service
from citydesk.hub.sources.api import manual, next_url
from citydesk.hub.sources.runner import runner_of
from citydesk.hub.sources.types import SourcePatch
from citydesk.web.deps import get_app
from citydesk.web.templating import render

pages_router = APIRouter(include_in_schema=False)
LISTING = "/hub/sources"
REFUSED = (editor.FormInvalid, ValidationFailed, Conflict)
"""What a form shows on itself (status 422): bad input, a failed check, a taken name."""
CONFIRM_DELETE = "삭제하려면 확인란을 선택하십시오. Tick the box to confirm the deletion."


def _sign_in(request: Request, who: Principal, then: str | None = None) -> Response | None:
    """Send a signed-out visitor to sign in, and then back here (or to ``then``: a POST-only URL
    cannot be returned to)."""
    if who.is_staff:
        return None
    target = then or request.url.path + (f"?{request.url.query}" if request.url.query else "")
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


# -- adding, editing, switching and deleting sources ------------------------------------------------
async def _manage(
    request: Request, who: Principal, page: Callable[[], Awaitable[Response]], then: str | None = None
) -> Response:
    """Run ``page`` for staff allowed to manage sources; refusals (and an unknown kind or source)
    are answered with a page, since a person, not a program, is reading."""
    if (redirect := _sign_in(request, who, then)) is not None:
        return redirect
    try:
        who.require(Permission.SOURCES_MANAGE)
        return await page()
    except CitydeskError as exc:
        context = {"who": who, "status": exc.status, "message": exc.message}
        return render(request, "hub_refused.html", context, status_code=exc.status)


def _form_page(request: Request, who: Principal, form: editor.SourceForm, status: int = 200) -> Response:
    return render(request, "hub_source_form.html", {"form": form, "who": who}, status_code=status)


async def _submitted(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _back_to_listing() -> Response:
    """After a change, the listing (303: a reload does not post again), where the change shows."""
    return RedirectResponse(LISTING, status_code=303)


def _new_form(request: Request, kind: str) -> editor.SourceForm:
    registry = runner_of(get_app(request)).registry
    return editor.new_form(service.describe_kind(registry, kind), registry.config_model(kind))


async def _edit_form(request: Request, source_id: int) -> editor.SourceForm:
    app = get_app(request)
    registry = runner_of(app).registry
    source = await asyncio.to_thread(service.source_detail, app.engine, registry, source_id)
    kind = service.describe_kind(registry, source["kind"])
    return editor.edit_form(kind, registry.config_model(source["kind"]), source)


@pages_router.get("/hub/sources/new", response_class=HTMLResponse)
async def kinds_page(request: Request, who: CurrentPrincipal) -> Response:
    async def page() -> Response:
        data = service.connectors_listing(runner_of(get_app(request)).registry)
        return render(request, "hub_source_kinds.html", {"data": data, "who": who})

    return await _manage(request, who, page)


@pages_router.get("/hub/sources/new/{kind}", response_class=HTMLResponse)
async def new_source_page(request: Request, kind: str, who: CurrentPrincipal) -> Response:
    async def page() -> Response:
        return _form_page(request, who, _new_form(request, kind))

    return await _manage(request, who, page)


@pages_router.post("/hub/sources/new/{kind}", response_class=HTMLResponse)
async def new_source_submit(request: Request, kind: str, who: CurrentPrincipal) -> Response:
    async def page() -> Response:
        form = _new_form(request, kind)
        try:
            await runner_of(get_app(request)).create(editor.source_in(form, await _submitted(request)))
        except REFUSED as exc:
            editor.explain(form, exc)
            return _form_page(request, who, form, 422)
        return _back_to_listing()

    return await _manage(request, who, page)


@pages_router.get("/hub/sources/{source_id}/edit", response_class=HTMLResponse)
async def edit_source_page(request: Request, source_id: int, who: CurrentPrincipal) -> Response:
    async def page() -> Response:
        return _form_page(request, who, await _edit_form(request, source_id))

    return await _manage(request, who, page)


@pages_router.post("/hub/sources/{source_id}/edit", response_class=HTMLResponse)
async def edit_source_submit(request: Request, source_id: int, who: CurrentPrincipal) -> Response:
    async def page() -> Response:
        form = await _edit_form(request, source_id)
        try:
            patch = editor.source_patch(form, await _submitted(request))
            await runner_of(get_app(request)).update(source_id, patch)
        except REFUSED as exc:
            editor.explain(form, exc)
            return _form_page(request, who, form, 422)
        return _back_to_listing()

    return await _manage(request, who, page)


@pages_router.post("/hub/sources/{source_id}/enabled", response_class=HTMLResponse)
async def switch_source(
    request: Request, source_id: int, who: CurrentPrincipal, enabled: Annotated[bool, Form()]
) -> Response:
    async def page() -> Response:
        await runner_of(get_app(request)).update(source_id, SourcePatch(enabled=enabled))
        return _back_to_listing()

    return await _manage(request, who, page, then=f"/hub/sources/{source_id}/edit")


@pages_router.post("/hub/sources/{source_id}/delete", response_class=HTMLResponse)
async def delete_source(
    request: Request, source_id: int, who: CurrentPrincipal, confirm: Annotated[str, Form()] = ""
) -> Response:
    async def page() -> Response:
        if confirm != "yes":
            form = await _edit_form(request, source_id)
            form.problems = [CONFIRM_DELETE]
            return _form_page(request, who, form, 422)
        await runner_of(get_app(request)).delete(source_id)
        return _back_to_listing()

    return await _manage(request, who, page, then=f"/hub/sources/{source_id}/edit")
