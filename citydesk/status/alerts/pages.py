"""Staff pages of alert rules: ``/status/alert-rules`` (the list), ``/status/alert-rules/new`` and
``/status/alert-rules/{id}/edit`` (create, change, switch on and off, delete).

Each page takes its data from the same service call as its JSON twin in ``api.py`` (a test
compares them), and each form submits through the same service call as its API route. Signed-out
visitors are sent to sign in; everything else needs what the API needs, ``alerts.manage``,
and a refusal is answered with a page, since a person is reading. What the forms show, and how a
submitted form becomes a ``RuleIn``/``RulePatch``, is ``editor``'s job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citydesk.auth import CurrentPrincipal, Permission, Principal
from citydesk.errors import CitydeskError, ValidationFailed
from citydesk.status.alerts import editor, service
from citydesk.status.events import SEVERITIES
from citydesk.web.deps import get_app
from citydesk.web.forms import FormInvalid
from citydesk.web.templating import city_clock, render

pages_router = APIRouter(include_in_schema=False)
LISTING = "/status/alert-rules"
CONFIRM_DELETE = "삭제하려면 확인란을 선택하십시오. Tick the box to confirm the deletion."


def _manage(
    request: Request, who: Principal, page: Callable[[], Response], then: str | None = None
) -> Response:
    """Run ``page`` (synchronous: it calls the services) for staff who may manage alert rules: a signed-out visitor is sent to sign in
    (and back to ``then``, for a POST-only address), a refusal or a missing rule is a page."""
    if not who.is_staff:
        target = then or request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    try:
        who.require(Permission.ALERTS_MANAGE)
        return page()
    except CitydeskError as exc:
        context = {"who": who, "status": exc.status, "message": exc.message}
        return render(request, "alert_rules_refused.html", context, status_code=exc.status)


def _form_page(request: Request, who: Principal, form: editor.RuleForm, status: int = 200) -> Response:
    context = {"form": form, "who": who, "kinds": editor.kind_choices()}
    return render(request, "alert_rule_form.html", context, status_code=status)


def _back_to_listing() -> Response:
    """After a change, the listing (303: a reload does not post again), where the change shows."""
    return RedirectResponse(LISTING, status_code=303)


async def _submitted(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@pages_router.get("/status/alert-rules", response_class=HTMLResponse)
def rules_page(request: Request, who: CurrentPrincipal) -> Response:
    def page() -> Response:
        data = service.list_rules(get_app(request))
        context = {"data": data, "who": who, "severities": SEVERITIES, "local": city_clock(request)}
        return render(request, "alert_rules.html", context)

    return _manage(request, who, page)


@pages_router.get("/status/alert-rules/new", response_class=HTMLResponse)
def new_rule_page(request: Request, who: CurrentPrincipal, kind: str = "threshold") -> Response:
    return _manage(request, who, lambda: _form_page(request, who, editor.new_form(kind)))


@pages_router.post("/status/alert-rules/new", response_class=HTMLResponse)
async def new_rule_submit(request: Request, who: CurrentPrincipal, kind: str = "threshold") -> Response:
    data = await _submitted(request)

    def page() -> Response:
        app = get_app(request)
        form = editor.new_form(kind)
        try:
            service.create_rule(app, editor.rule_in(form, data), now=app.now())
        except (FormInvalid, ValidationFailed) as exc:
            editor.explain(form, exc)
            return _form_page(request, who, form, 422)
        return _back_to_listing()

    return await asyncio.to_thread(_manage, request, who, page)


@pages_router.get("/status/alert-rules/{rule_id}/edit", response_class=HTMLResponse)
def edit_rule_page(request: Request, rule_id: int, who: CurrentPrincipal) -> Response:
    def page() -> Response:
        return _form_page(request, who, editor.edit_form(service.get_rule(get_app(request), rule_id)))

    return _manage(request, who, page)


@pages_router.post("/status/alert-rules/{rule_id}/edit", response_class=HTMLResponse)
async def edit_rule_submit(request: Request, rule_id: int, who: CurrentPrincipal) -> Response:
    data = await _submitted(request)

    def page() -> Response:
        app = get_app(request)
        form = editor.edit_form(service.get_rule(app, rule_id))
        try:
            service.update_rule(app, rule_id, editor.rule_patch(form, data), now=app.now())
        except (FormInvalid, ValidationFailed) as exc:
            editor.explain(form, exc)
            return _form_page(request, who, form, 422)
        return _back_to_listing()

    return await asyncio.to_thread(_manage, request, who, page)


@pages_router.post("/status/alert-rules/{rule_id}/enabled", response_class=HTMLResponse)
def switch_rule(
    request: Request, rule_id: int, who: CurrentPrincipal, enabled: Annotated[bool, Form()]
) -> Response:
    def page() -> Response:
        app = get_app(request)
        service.update_rule(app, rule_id, service.RulePatch(enabled=enabled), now=app.now())
        return _back_to_listing()

    return _manage(request, who, page, then=f"/status/alert-rules/{rule_id}/edit")


@pages_router.post("/status/alert-rules/{rule_id}/delete", response_class=HTMLResponse)
def delete_rule(
    request: Request, rule_id: int, who: CurrentPrincipal, confirm: Annotated[str, Form()] = ""
) -> Response:
    def page() -> Response:
        app = get_app(request)
        if confirm != "yes":
            form = editor.edit_form(service.get_rule(app, rule_id))
            form.problems = [CONFIRM_DELETE]
            return _form_page(request, who, form, 422)
        service.delete_rule(app, rule_id)
        return _back_to_listing()

    return _manage(request, who, page, then=f"/status/alert-rules/{rule_id}/edit")
