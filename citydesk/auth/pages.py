"""The sign-in and sign-out pages, for staff using the web pages rather than the API.

A successful sign-in sets the ``citydesk_session`` cookie (HttpOnly, SameSite=Lax: scripts cannot
read it and cross-site POSTs do not carry it) and redirects with 303 so a reload does not re-post.
A failed one re-renders the form with a message and status 401: never a stack trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from citydesk.auth import service
from citydesk.auth.deps import SESSION_COOKIE, AuthApp, auth_app
from citydesk.errors import Unauthorized

TEMPLATES = Path(__file__).parent / "templates"
BAD_LOGIN = "사용자 이름 또는 비밀번호가 올바르지 않습니다. / Wrong user name or password."

router = APIRouter(tags=["pages"])
AppDep = Annotated[AuthApp, Depends(auth_app)]


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: the login form must not be an open redirect.

    ``//host`` and ``/\\host`` are refused because browsers read both as another host.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _render(status: int = 200, **context: Any) -> HTMLResponse:
    # Built per render: the login page is rare, and no template cache lives at module level.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    values = {"public": False, "error": None, "name": "", "next": "/"} | context
    html = env.get_template("login.html").render(**values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/login", response_class=HTMLResponse)
def login_form(app: AppDep, next: str = "/") -> HTMLResponse:
    if app.settings.public_mode:
        return _render(403, public=True)
    return _render(next=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    app: AppDep,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    if app.settings.public_mode:
        return _render(403, public=True)
    target = safe_next(next)
    now = app.now()
    try:
        who = service.authenticate_password(app.engine, name, password, now=now)
    except Unauthorized:
        return _render(401, error=BAD_LOGIN, name=name[:100], next=target)
    if who.user_id is None:  # a password never yields the anonymous principal; keeps the type honest
        return _render(401, error=BAD_LOGIN, name=name[:100], next=target)
    token = service.create_session(app.engine, who.user_id, now=now, ttl=service.SESSION_TTL)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(service.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=app.settings.base_url.startswith("https://"),
    )
    return response


@router.post("/logout")
def logout(request: Request, app: AppDep) -> RedirectResponse:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(app.engine, token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
