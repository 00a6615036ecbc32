"""Sections as configuration: the TOML files that say what each city-status screen shows.

One file per section (``citydesk/status/sections/*.toml``, or the folder named by
``CITYDESK_SECTIONS``). A widget names its kind and a *selector* of hub data — an ObservedProperty,
a Thing ``facility`` kind, a Thing property, an aggregate — never a figure, so a city changes a
screen by editing a file. Files are validated when first read; an error names the file and the
field (``transport.toml: widgets[1].select.aggregate: ...``).
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citydesk.errors import InvalidSetting

SECTION_IDS = ("air", "safety", "transport", "prices", "finances", "water", "parks", "population")
"""The sections of issue #3; later issues add more (a layout skips ids it does not know)."""
ENV = "CITYDESK_SECTIONS"
WidgetKind = Literal["figure", "series", "bars", "table", "choropleth", "points", "events"]


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ko: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Selector(BaseModel):
    """Which hub data a widget computes from; every field narrows the selection.

    Values come from the latest observation of each selected Datastream (``observed_property``,
    optionally only on Things of a ``facility`` kind), or — with ``thing_property`` — from a
    numeric property of the selected Things (e.g. registered population), or, with a ``facility``
    alone, 1 per Thing (to count facilities). ``group_by`` splits the
    values (per district, per Thing, per Datastream ``key`` such as the good priced, or per time
    bucket of the rollups for ``series``/``bars``); ``aggregate`` combines each group.
    """

    model_config = ConfigDict(extra="forbid")

    observed_property: str | None = None
    facility: str | None = None
    thing_property: str | None = None
    key: str | None = None
    """Only Datastreams with this ``key`` property (one series of a keyed feed, e.g. one good)."""
    district: str | None = Field(default=None, pattern=r"^\d{5}$")
    aggregate: Literal["mean", "sum", "min", "max", "count"] = "mean"
    group_by: Literal["city", "district", "thing", "key", "time"] = "city"
    interval: Literal["hour", "day"] = "hour"
    hours: int = Field(default=24, ge=1, le=24 * 400)
    """Window of ``series`` and time ``bars``, ending now."""

    @model_validator(mode="after")
    def _one_source(self) -> Selector:
        if self.observed_property is not None and self.thing_property is not None:
            raise ValueError("give observed_property or thing_property, not both")
        if self.observed_property is None and self.facility is None:
            raise ValueError("give an observed_property, or a facility kind (with or without thing_property)")
        return self


class Widget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: WidgetKind
    label: Bilingual
    unit: str | None = None
    """Shown unit; default: the unit most of the selected Datastreams give."""
    select: Selector | None = None
    filter: list[str] = Field(default_factory=list)
    """``events`` widgets: the event kinds the page asks ``/api/status/events`` for."""
    decimals: int | None = Field(default=None, ge=0, le=6)
    """How many decimals the figures deserve (turbidity 0.063 NTU needs three); None: the page's default."""
    trend: bool = False
    """``figure``: also give the change against the same hour yesterday (from the hourly rollups)."""

    @model_validator(mode="after")
    def _fits_kind(self) -> Widget:
        if self.kind == "events":
            if not self.filter:
                raise ValueError("an events widget needs a filter (event kinds)")
            return self
        if self.select is None:
            raise ValueError(f"a {self.kind} widget needs a select table")
        sel = self.select
        if self.kind == "points" and sel.facility is None:
            raise ValueError("a points widget needs select.facility")
        if self.kind == "series" and sel.observed_property is None:
            raise ValueError("a series widget reads the rollups: it needs select.observed_property")
        if self.kind == "table" and sel.group_by != "key":
            raise ValueError('a table widget lists Datastream keys: set select.group_by = "key"')
        if sel.group_by == "time" and (self.kind != "bars" or sel.observed_property is None):
            raise ValueError('group_by = "time" is for bars of an observed_property')
        return self


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: Bilingual
    order: int
    widgets: list[Widget] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_widgets(self) -> Section:
        seen = [w.id for w in self.widgets]
        if dupes := sorted({w for w in seen if seen.count(w) > 1}):
            raise ValueError(f"widget ids repeated: {', '.join(dupes)}")
        return self


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse_section(text: str, name: str) -> Section:
    """One section from TOML text; ``InvalidSetting`` naming ``name`` and the field on any error."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSetting(f"{name}: not valid TOML ({exc})") from None
    try:
        section = Section.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problems = [{"field": _where(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise InvalidSetting(f"{name}: {_where(first['loc'])}: {first['msg']}", problems) from None
    if f"{section.id}.toml" != name.rsplit("/", 1)[-1]:
        raise InvalidSetting(f"{name}: id: the section {section.id!r} belongs in {section.id}.toml")
    return section


def _files(folder: str | None) -> list[tuple[str, str]]:
    if folder:
        return [(str(p), p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.toml"))]
    root = resources.files("citydesk.status.sections")
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in root.iterdir() if p.name.endswith(".toml"))


@cache
def load_sections(folder: str | None = None) -> dict[str, Section]:
    """Every section of ``folder`` (default: the packaged ones), by id, in display order."""
    sections = [parse_section(text, name) for name, text in _files(folder)]
    return {s.id: s for s in sorted(sections, key=lambda s: (s.order, s.id))}


def sections() -> dict[str, Section]:
    """The sections in force: ``CITYDESK_SECTIONS`` if set, else the packaged ones."""
    return load_sections(os.environ.get(ENV) or None)
