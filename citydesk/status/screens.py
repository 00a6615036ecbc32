"""The screens of the city-status sections: one generic section page, the kiosk, the layout editor.

Every page here is a server-rendered shell. Which sections and widgets it shows, in which order and
size, comes from ``/api/status/layouts/{perspective}`` and the figures from
``/api/status/sections/{id}``, fetched by ``/static/section.js`` (``kiosk.js``, ``layouts.js``):
a page cannot show a number its JSON twin did not disclose to the same viewer, and a city changes
a screen by editing configuration, not a template.

The perspective (whose layout) follows from the device asked for in the URL (``?view=``) or else
from the signed-in role and the viewport: the mayor's wall screen, an official's desktop, a
citizen's phone (``common.js`` holds that table, since only the browser knows the viewport). The
kiosk is always anonymous: it is a public screen in a station, whoever signed in on its browser.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citydesk.auth import ANONYMOUS, CurrentPrincipal, Permission, Principal
from citydesk.errors import NotFound
from citydesk.status.sections.config import sections
from citydesk.status.sections.layouts import PERSPECTIVES, defaults
from citydesk.web.deps import get_app
from citydesk.web.templating import render

router = APIRouter(include_in_schema=False)


class View(StrEnum):
    """A device class; each reads the layout of one perspective (mayor, official, citizen, kiosk)."""

    WALL = "wall"
    DESKTOP = "desktop"
    MOBILE = "mobile"
    KIOSK = "kiosk"


SectionId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="a section id, e.g. air")]
ViewQuery = Annotated[View | None, Query(description="wall, desktop, mobile or kiosk")]


@cache
def department_sections() -> dict[str, list[str]]:
    """Department name → the section ids its staff see first (``[departments]`` of layouts.toml)."""
    text = resources.files("citydesk.status").joinpath("layouts.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text).get("departments", {})
    return {str(k): [str(s) for s in v] for k, v in table.items()}


def screen_context(request: Request, who: Principal, view: View | None) -> dict[str, object]:
    """What every screen's shell tells its script (``perspectiveOf`` in ``common.js`` turns it into
    a perspective): the device the URL asked for, else the viewer's role; the sections of the
    viewer's department (shown first); and the city's time zone."""
    return {
        "who": who,
        "view": view.value if view else "",
        "role": who.role.value,
        "mine": department_sections().get(who.department or "", []),
        "timezone": get_app(request).settings.timezone,
    }


@router.get("/status/layouts/{perspective}", response_class=HTMLResponse)
def layout_editor(
    request: Request,
    who: CurrentPrincipal,
    perspective: Annotated[str, Path(pattern=f"^({'|'.join(PERSPECTIVES)})$")],
) -> Response:
    """The layout editor: staff with ``layouts.manage`` reorder, resize and hide sections and
    widgets of one perspective, and save or reset through the layouts API."""
    if not who.is_staff:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    who.require(Permission.LAYOUTS_MANAGE)
    context = screen_context(request, who, None) | {
        "perspective": perspective,
        "perspectives": PERSPECTIVES,
        # "Reset" puts the packaged default back in the editor; saving it makes it the layout again.
        "default": defaults()[perspective].model_dump(mode="json", exclude_none=True),
    }
    return render(request, "layout_editor.html", context)


@router.get("/status/{section}", response_class=HTMLResponse)
def section_page(
    request: Request, who: CurrentPrincipal, section: SectionId, view: ViewQuery = None
) -> HTMLResponse:
    """One section (air, safety, transport, ...) with its widgets, live."""
    if section not in sections():
        raise NotFound(f"no section {section!r}", {"section": section})
    context = screen_context(request, who, view) | {"section": section}
    return render(request, "section.html", context)


@router.get("/kiosk", response_class=HTMLResponse)
def kiosk(request: Request) -> HTMLResponse:
    """The kiosk: the kiosk playlist's sections in turn, full screen, public data only. The
    principal is not even looked at, and the script fetches without cookies."""
    return render(request, "kiosk.html", screen_context(request, ANONYMOUS, View.KIOSK))
