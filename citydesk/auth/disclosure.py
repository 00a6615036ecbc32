"""Who may see what and who may do what, stated as tables rather than scattered ``if``s.

Every entity a citizen could reach carries a :class:`Disclosure` level; every request runs as a
:class:`Role`. ``ROLE_LEVELS`` and ``ROLE_PERMISSIONS`` are the single source of truth that the
API, the pages and the public instance all consult, so a test can walk every role through them.
"""

from __future__ import annotations

from enum import StrEnum

from citydesk.errors import ValidationFailed


class Disclosure(StrEnum):
    """How far a piece of data may travel."""

    PUBLIC = "public"
    """Open data: anyone, including the public instance."""
    INTERNAL = "internal"
    """City staff only (operational detail, unvalidated feeds)."""
    RESTRICTED = "restricted"
    """Personal data: officials only, and every read is written to the audit log."""


class Role(StrEnum):
    """What a user account is; ``ANONYMOUS`` is the pseudo-role of citizens and unsigned requests."""

    ADMIN = "admin"
    MAYOR = "mayor"
    OFFICIAL = "official"
    DEPARTMENT_STAFF = "department_staff"
    ANONYMOUS = "anonymous"


class Permission(StrEnum):
    """Actions beyond reading; a ``StrEnum`` so ``principal.can("sta.write")`` reads naturally."""

    STA_WRITE = "sta.write"
    """Create/update/delete SensorThings entities and observations."""
    SOURCES_MANAGE = "sources.manage"
    """Configure data-hub connectors (sources)."""
    MANUAL_ENTRY = "manual.entry"
    """Type observations in by hand through the pages."""
    USERS_MANAGE = "users.manage"
    """Create, deactivate and reset staff accounts; revoke anyone's tokens."""
    RESTRICTED_READ = "restricted.read"
    """Read personal data (each read is audited)."""
    EVENTS_MANAGE = "events.manage"
    """Report events (a fire, a flood) and move them along their status history."""
    ALERTS_MANAGE = "alerts.manage"
    """Create, change and switch off alert rules on datastreams."""
    COMMANDS_SEND = "commands.send"
    """Send an instruction to a department, with a due time; cancel it."""
    COMMANDS_HANDLE = "commands.handle"
    """Acknowledge, report progress on and close the commands sent to one's own department."""
    LAYOUTS_MANAGE = "layouts.manage"
    """Rearrange the dashboard's widgets for a perspective (mayor, official, citizen, kiosk)."""


_ALL_LEVELS = frozenset(Disclosure)

ROLE_LEVELS: dict[Role, frozenset[Disclosure]] = {
    Role.ANONYMOUS: frozenset({Disclosure.PUBLIC}),
    Role.DEPARTMENT_STAFF: frozenset({Disclosure.PUBLIC, Disclosure.INTERNAL}),
    Role.OFFICIAL: _ALL_LEVELS,
    Role.MAYOR: _ALL_LEVELS,
    Role.ADMIN: _ALL_LEVELS,
}
"""The disclosure levels each role may see."""

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ANONYMOUS: frozenset(),
    Role.DEPARTMENT_STAFF: frozenset(
        {Permission.STA_WRITE, Permission.MANUAL_ENTRY, Permission.EVENTS_MANAGE, Permission.COMMANDS_HANDLE}
    ),
    Role.OFFICIAL: frozenset(
        {
            Permission.STA_WRITE,
            Permission.MANUAL_ENTRY,
            Permission.RESTRICTED_READ,
            Permission.SOURCES_MANAGE,
            Permission.EVENTS_MANAGE,
            Permission.ALERTS_MANAGE,
            Permission.COMMANDS_SEND,
            Permission.COMMANDS_HANDLE,
            Permission.LAYOUTS_MANAGE,
        }
    ),
    Role.MAYOR: frozenset(
        {
            Permission.STA_WRITE,
            Permission.MANUAL_ENTRY,
            Permission.RESTRICTED_READ,
            Permission.EVENTS_MANAGE,
            Permission.COMMANDS_SEND,
            Permission.LAYOUTS_MANAGE,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}
"""What each role may do. Only admins manage users; only officials and admins manage sources and
alert rules; the mayor and officials send commands, department staff (and officials) answer them."""

STAFF_ROLES: frozenset[Role] = frozenset(Role) - {Role.ANONYMOUS}
"""Roles a user account may have."""

ROLE_ALIASES: dict[str, Role] = {"staff": Role.DEPARTMENT_STAFF}
"""Short spellings the CLI accepts (``citydesk user add kim --role staff``)."""


def parse_role(text: str) -> Role:
    """The staff role named by ``text`` (case-insensitive, aliases allowed); never ``ANONYMOUS``.

    Raises :class:`ValidationFailed` listing the accepted names, so a CLI typo gets a useful answer.
    """
    key = text.strip().lower()
    role = ROLE_ALIASES.get(key)
    if role is None and key in {r.value for r in STAFF_ROLES}:
        role = Role(key)
    if role is None:
        accepted = sorted({r.value for r in STAFF_ROLES} | set(ROLE_ALIASES))
        raise ValidationFailed(f"unknown role {text!r}", details={"accepted": accepted})
    return role
