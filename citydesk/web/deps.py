"""FastAPI dependencies shared by every sub-package's routes: the one app object, passed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from citydesk.web.app import App


def get_app(request: Request) -> App:
    """The citydesk app object (settings, engine, caches) the ASGI app was built around."""
    return request.app.state.citydesk  # type: ignore[no-any-return]
