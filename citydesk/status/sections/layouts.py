"""Which sections each perspective shows: the packaged default, or the layout staff saved.

``citydesk/status/layouts.toml`` holds the default per perspective (the kiosk's with its playlist
timing); a ``status_layouts`` row, written by staff with ``layouts.manage``, overrides it. A layout
decides arrangement only, never disclosure: every section is computed for the caller. Reading
skips section ids this installation does not know (later issues add sections, and a saved layout
may outlive one); saving refuses them, naming them.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert, select

from citydesk.auth import Principal, audit
from citydesk.errors import InvalidSetting, NotFound, ValidationFailed
from citydesk.status.models import layouts as status_layouts
from citydesk.status.sections.config import sections
from citydesk.status.stream import publish_notice

if TYPE_CHECKING:
    from citydesk.web.app import App

PERSPECTIVES = ("mayor", "official", "citizen", "kiosk")
Perspective = Literal["mayor", "official", "citizen", "kiosk"]


class Placement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    widgets: list[str] | None = None
    """Widget ids to show, in order; None: all of the section's."""
    size: Literal["s", "m", "l"] = "m"


class KioskTiming(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_s: int = Field(ge=5, le=3600)
    """Seconds each section stays on screen."""
    idle_resume_s: int = Field(ge=5, le=3600)
    """Seconds after the last touch before the playlist resumes."""


class Layout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sections: list[Placement]
    kiosk: KioskTiming | None = None


@cache
def defaults() -> dict[str, Layout]:
    """The packaged default layouts; a broken file is an error naming the perspective and field."""
    raw = tomllib.loads(
        resources.files("citydesk.status").joinpath("layouts.toml").read_text(encoding="utf-8")
    )
    out = {}
    for p in PERSPECTIVES:
        try:
            out[p] = Layout.model_validate(raw.get(p))
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e["loc"])
            raise InvalidSetting(f"layouts.toml: {p}.{where}: {e['msg']}") from None
    return out


def _perspective(name: str) -> str:
    if name not in PERSPECTIVES:
        raise NotFound(f"no perspective {name!r}; known: {', '.join(PERSPECTIVES)}", {"perspective": name})
    return name


def get_layout(app: App, perspective: str) -> dict[str, Any]:
    """The layout in force for ``perspective``, without sections this installation lacks."""
    perspective = _perspective(perspective)
    with app.engine.connect().execution_options(read_only=True) as conn:
        row = conn.execute(select(status_layouts).where(status_layouts.c.perspective == perspective)).first()
    layout, saved = defaults()[perspective], None
    if row is not None:
        try:
            layout = Layout.model_validate(row.layout)
            saved = {"at": row.updated_at.isoformat(), "by": row.updated_by}
        except ValidationError:
            pass  # a row written by an older version: the default stands until staff save again
    known = sections()
    out: dict[str, Any] = {
        "perspective": perspective,
        "sections": [p.model_dump() for p in layout.sections if p.id in known],
        "saved": saved,
    }
    if perspective == "kiosk":
        timing = layout.kiosk or defaults()["kiosk"].kiosk
        out["kiosk"] = timing.model_dump() if timing else None
    return out


def _check(perspective: str, layout: Layout) -> None:
    known = sections()
    unknown = [p.id for p in layout.sections if p.id not in known]
    if unknown:
        raise ValidationFailed(f"unknown section id(s): {', '.join(unknown)}", {"unknown_sections": unknown})
    seen = [p.id for p in layout.sections]
    if dupes := sorted({s for s in seen if seen.count(s) > 1}):
        raise ValidationFailed(f"section(s) listed twice: {', '.join(dupes)}", {"duplicate_sections": dupes})
    bad = {
        p.id: missing
        for p in layout.sections
        if (missing := [w for w in p.widgets or [] if w not in {x.id for x in known[p.id].widgets}])
    }
    if bad:
        names = "; ".join(f"{sid}: {', '.join(ws)}" for sid, ws in bad.items())
        raise ValidationFailed(f"unknown widget id(s): {names}", {"unknown_widgets": bad})
    if layout.kiosk is not None and perspective != "kiosk":
        raise ValidationFailed("only the kiosk layout has playlist timing (kiosk)")


def save_layout(
    app: App, who: Principal, perspective: str, layout: Layout, *, now: datetime
) -> dict[str, Any]:
    """Validate and store ``perspective``'s layout, then tell every open dashboard."""
    perspective = _perspective(perspective)
    _check(perspective, layout)
    with app.engine.begin() as conn:
        conn.execute(delete(status_layouts).where(status_layouts.c.perspective == perspective))
        conn.execute(
            insert(status_layouts).values(
                perspective=perspective,
                layout=layout.model_dump(mode="json", exclude_none=True),
                updated_at=now,
                updated_by=who.user_id,
            )
        )
        audit(conn, who, "layout.save", f"layout:{perspective}", now=now)
    publish_notice(app, "layout", "public", {"perspective": perspective})
    return get_layout(app, perspective)
