"""Which routers make up the app. Sub-packages own their routes; this only assembles them."""

from __future__ import annotations

from fastapi import FastAPI


def include_routers(api: FastAPI) -> None:
    from citydesk import auth, geo
    from citydesk.hub import api as hub_api
    from citydesk.hub import sources
    from citydesk.hub.sta import api as sta_api
    from citydesk.status import alerts, commands, events
    from citydesk.status import api as status_api
    from citydesk.status import pages as status_pages
    from citydesk.status import screens as status_screens
    from citydesk.status.sections import api as sections_api
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
        sections_api.router,
        status_pages.pages_router,
        commands.router,
        commands.pages_router,
        events.router,
        events.pages_router,
        alerts.router,
        alerts.pages_router,
        status_screens.router,
    ):
        api.include_router(router)
