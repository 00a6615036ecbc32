"""Which routers make up the app. Sub-packages own their routes; this only assembles them."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(api: FastAPI) -> None:
    from citydesk import auth, geo
    from citydesk.hub import api as hub_api
    from citydesk.hub import sources
    from citydesk.hub.sta import api as sta_api
    from citydesk.status import api as status_api
    from citydesk.status import pages as status_pages
    from citydesk.web import pages

    for router in (
        pages.router,
        auth.router,
        auth.pages_router,
        geo.router,
        hub_api.router,
        sta_api.router,
        sources.router,
        sources.pages_router,
        status_api.router,
        status_pages.pages_router,
    ):
        api.include_router(router)
