"""Which routers make up the app. Sub-packages own their routes; this only assembles them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from citydesk.web.app import App


def include_routers(api: FastAPI, app: App) -> None:
    from citydesk import auth, geo
    from citydesk.hub import api as hub_api
    from citydesk.hub.sta import api as sta_api
    from citydesk.web import pages

    api.include_router(pages.router)
    api.include_router(auth.router)
    api.include_router(auth.pages_router)
    api.include_router(geo.router)
    api.include_router(hub_api.router)
    api.include_router(sta_api.router)
    try:
        from citydesk.hub import sources

        sources.router  # noqa: B018
    except (ImportError, AttributeError):  # TEMPORARY while hub.sources is assembled
        return
    api.include_router(sources.router)
    api.include_router(sources.pages_router)
