"""Demo accounts that show the commands flow: the mayor and one clerk per packaged department.

``citydesk seed`` also seeds production databases, so it never creates accounts; ``citydesk demo``
calls this instead. Each run gives every demo account a fresh random password, printed once to the
console of whoever started the demo: nothing guessable is ever stored, and a forgotten password
costs a restart. An existing account of the same name that is not a demo account of the same role
and department (or is switched off) is left alone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from citydesk.auth import Role, create_user, list_users, set_password
from citydesk.status.commands.departments import packaged

PREFIX = "demo."


@dataclass(frozen=True)
class DemoAccount:
    name: str
    role: Role
    department: str | None
    password: str | None
    """None: an account of that name exists and is not ours to reset."""


def demo_accounts(engine: Engine, *, now: datetime) -> list[DemoAccount]:
    """Create the demo accounts, or reset their passwords; returns them with the new passwords."""
    wanted: list[tuple[str, Role, str | None]] = [(f"{PREFIX}mayor", Role.MAYOR, None)]
    wanted += [(f"{PREFIX}{d.slug}", Role.DEPARTMENT_STAFF, d.name) for d in packaged() if d.slug]
    existing = {u.name: u for u in list_users(engine)}
    made: list[DemoAccount] = []
    for name, role, department in wanted:
        password = secrets.token_urlsafe(12)
        user = existing.get(name)
        if user is None:
            create_user(engine, name, role, password, now=now, department=department)
        elif user.active and user.role is role and user.department == department:
            set_password(engine, user.id, password)
        else:
            made.append(DemoAccount(name, role, department, None))
            continue
        made.append(DemoAccount(name, role, department, password))
    return made
