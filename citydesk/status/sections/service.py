"""The sections of the city-status screens, computed for one caller from the TOML and the hub.

A widget appears only if the caller may see some of its data; a section only if it keeps a
widget. ``updated`` is the newest datum behind the section's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from weakref import ref

from citydesk.auth import Principal
from citydesk.errors import NotFound
from citydesk.status.air import newest
from citydesk.status.live import AnswerCache
from citydesk.status.sections.config import Section, sections
from citydesk.status.sections.widgets import Context, compute, layer

if TYPE_CHECKING:
    from citydesk.web.app import App

HISTORY_SECONDS = 60.0
_history: dict[int, tuple[ref[App], AnswerCache]] = {}


def _history_of(app: App) -> AnswerCache:
    """The app's cache of rollup-based widgets (one per app object, like its answer cache)."""
    key = id(app)
    found = _history.get(key)
    if found is None or found[0]() is not app:
        found = (ref(app, lambda _: _history.pop(key, None)), AnswerCache(ttl=HISTORY_SECONDS))
        _history[key] = found
        # A Datastream or Thing made internal must leave the public answers at once, not in a minute.
        app.bus.on("sta.*", found[1].clear, remote=True)
    return found[1]


def _section(section_id: str) -> Section:
    found = sections().get(section_id)
    if found is None:
        raise NotFound(f"no section {section_id!r}: see /api/status/sections", {"section": section_id})
    return found


def section(app: App, who: Principal, section_id: str, *, now: datetime) -> dict[str, Any]:
    """One section with its widgets computed from what ``who`` may see."""
    config = _section(section_id)
    with app.engine.connect().execution_options(read_only=True) as conn:
        ctx = Context(app, who, conn, now, config.id, history=_history_of(app))
        widgets = [w for w in (compute(ctx, w) for w in config.widgets) if w is not None]
    return {
        "id": config.id,
        "title": config.title.model_dump(),
        "order": config.order,
        "updated": newest(ctx.times),
        "widgets": widgets,
    }


def listing(
    app: App, who: Principal, *, now: datetime, compute_section: Callable[[str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Every section ``who`` has something to see in, with how many widgets it shows them.

    ``compute_section(id)`` gives a section's answer (the API passes its cached one)."""
    get = compute_section or (lambda sid: section(app, who, sid, now=now))
    out = []
    for sid, config in sections().items():
        widgets = get(sid)["widgets"]
        if widgets:
            out.append(
                {
                    "id": sid,
                    "title": config.title.model_dump(),
                    "order": config.order,
                    "widgets": len(widgets),
                }
            )
    return {"sections": out}


def points_layer(
    app: App, who: Principal, section_id: str, widget_id: str, *, now: datetime
) -> dict[str, Any]:
    """The GeoJSON of a ``points`` widget (empty for a caller who may see none of its facilities)."""
    config = _section(section_id)
    widget = next((w for w in config.widgets if w.id == widget_id and w.kind == "points"), None)
    if widget is None:
        raise NotFound(f"section {section_id!r} has no map layer {widget_id!r}", {"widget": widget_id})
    with app.engine.connect().execution_options(read_only=True) as conn:
        return layer(Context(app, who, conn, now, config.id), widget)
