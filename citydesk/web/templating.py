"""Jinja2 rendering for server-side pages, with every sub-package's templates on the path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from citydesk.web.deps import get_app
from citydesk.web.paths import TEMPLATES_DIR

PACKAGE = Path(__file__).resolve().parents[1]


def environment(request: Request) -> Environment:
    """One environment per app (kept on ``app.state``), so templates are compiled once."""
    env = getattr(request.app.state, "jinja", None)
    if env is None:
        dirs: list[str] = [str(TEMPLATES_DIR)]
        dirs += sorted(str(p) for p in PACKAGE.glob("**/templates") if p != TEMPLATES_DIR)
        env = Environment(loader=FileSystemLoader(dirs), autoescape=select_autoescape(["html"]))
        request.app.state.jinja = env
    return env


def city_clock(request: Request, empty: str = "—") -> Callable[[str | None], str]:
    """A formatter of ISO times on the city's clock (``Settings.timezone``), to the minute: what
    a control room reads on a server-rendered page before its script formats times per language."""
    zone = ZoneInfo(get_app(request).settings.timezone)

    def local(iso: str | None) -> str:
        return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M") if iso else empty

    return local


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    html = environment(request).get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)
