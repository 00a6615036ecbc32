"""What is running: the facts the landing page shows and ``/api/overview`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from citydesk import __version__
from citydesk.hub.models import datastreams, sources, things
from citydesk.hub.sta.access import visible
from citydesk.hub.sta.entities import SETS

if TYPE_CHECKING:
    from citydesk.auth import Principal
    from citydesk.web.app import App


def overview(app: App, who: Principal) -> dict[str, Any]:
    """Counts the caller may see, the database kind, and the background services' states."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        n_things = conn.execute(
            select(func.count()).select_from(things).where(visible(SETS["Things"], who.levels))
        ).scalar_one()
        n_ds = conn.execute(
            select(func.count()).select_from(datastreams).where(visible(SETS["Datastreams"], who.levels))
        ).scalar_one()
        n_sources = (
            conn.execute(select(func.count()).select_from(sources)).scalar_one() if who.is_staff else None
        )
    return {
        "version": __version__,
        "database": app.engine.dialect.name,
        "public_mode": app.settings.public_mode,
        "published_at": _published_at(app),
        "districts": len(app.geo.districts()),
        "things": n_things,
        "datastreams": n_ds,
        "sources": n_sources,
        "services": [{"name": s.name, "state": s.state} for s in app.background],
        "mqtt": app.settings.mqtt_url,
        "links": {
            "SensorThings API": "/sta/v1.1",
            "API docs (OpenAPI)": "/docs",
            "Districts (GeoJSON)": "/api/geo/districts",
            "Latest values": "/api/hub/latest",
            "Sources": "/hub/sources",
        },
    }


def _published_at(app: App) -> str | None:
    """On a public instance, when ``citydesk publish`` last wrote to it (ISO 8601), else None."""
    if not app.settings.public_mode:
        return None
    from citydesk.mirror import last_published

    at = last_published(app.engine)
    # In the city's time: a citizen reads "13:05", not the UTC hour.
    return (
        None if at is None else at.astimezone(ZoneInfo(app.settings.timezone)).isoformat(timespec="seconds")
    )
