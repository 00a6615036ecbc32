"""The departments a command may go to: the packaged organisation chart (``departments.toml``)
plus every department a staff account names.

``users.department`` is free text set when an account is created, so a city that has not edited
the packaged list still reaches every department that has staff; the packaged list gives English
labels and lets a command be sent before a department's first account exists.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files

from sqlalchemy import Connection

from citydesk.auth import list_users
from citydesk.errors import ValidationFailed


@dataclass(frozen=True)
class Department:
    name: str
    """The key: what ``users.department`` and ``commands.department`` hold."""
    en: str
    slug: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "label": {"ko": self.name, "en": self.en}}


def packaged() -> list[Department]:
    """The organisation chart shipped with citydesk (Seoul's, abridged)."""
    text = files("citydesk.status.commands").joinpath("departments.toml").read_text("utf-8")
    return [
        Department(d["name"], d.get("en", d["name"]), d.get("slug"))
        for d in tomllib.loads(text)["department"]
    ]


def known(conn: Connection) -> list[Department]:
    """Packaged departments first (in their order), then those only staff accounts name."""
    chart = packaged()
    names = {d.name for d in chart}
    staffed = {u.department for u in list_users(conn, include_inactive=False)}
    extra = sorted(n for n in staffed if n and n.strip() and n not in names)
    return chart + [Department(n, n) for n in extra]


def resolve(conn: Connection, name: str) -> Department:
    """The department called ``name``, or a 400 listing the ones there are."""
    departments = known(conn)
    for department in departments:
        if department.name == name.strip():
            return department
    raise ValidationFailed(
        f"unknown department {name!r}", {"department": name, "known": [d.name for d in departments]}
    )


def labels(conn: Connection) -> dict[str, dict[str, str]]:
    """Department name -> its bilingual label, for listings."""
    return {d.name: {"ko": d.name, "en": d.en} for d in known(conn)}
