"""Lifecycles as data: which status may follow which, who may set it, what it needs.

Amsterdam's Signalen states each workflow as one table of allowed changes; citydesk does the same
for every lifecycle (events, commands to departments, later complaints and polls), so that "may a
command go from *done* back to *in progress*?" is answered by reading a table, and a test can walk
every (from, to) pair. Services call ``Lifecycle.check`` inside the transaction that locks the row
and appends the history entry; nothing else decides whether a change is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from citydesk.errors import InvalidTransition, ValidationFailed


@dataclass(frozen=True)
class Lifecycle:
    """One workflow: its statuses, the allowed changes, and the rules on who makes them."""

    name: str
    initial: str
    allowed: Mapping[str, frozenset[str]]
    """status -> the statuses that may follow it; a final status maps to an empty set."""
    system_only: frozenset[str] = field(default_factory=frozenset)
    """Statuses only the platform sets (e.g. an alert rule resolving its own event)."""
    needs_note: frozenset[str] = field(default_factory=frozenset)
    """Statuses that need a written note (closing, returning, rejecting)."""

    def __post_init__(self) -> None:
        unknown = {t for targets in self.allowed.values() for t in targets} - set(self.allowed)
        if self.initial not in self.allowed or unknown:
            raise ValueError(f"lifecycle {self.name}: unknown statuses {sorted(unknown) or [self.initial]}")

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(self.allowed)

    @property
    def final(self) -> frozenset[str]:
        return frozenset(s for s, targets in self.allowed.items() if not targets)

    def check(self, current: str, target: str, *, by_system: bool = False, note: str = "") -> None:
        """Raise ``InvalidTransition`` (409) unless ``current -> target`` is allowed for this caller,
        or ``ValidationFailed`` (400) if the target needs a note and none was given."""
        if target not in self.allowed:
            raise ValidationFailed(
                f"{target!r} is not a {self.name} status",
                {"status": target, "statuses": list(self.statuses)},
            )
        if target not in self.allowed.get(current, frozenset()):
            raise InvalidTransition(
                f"a {self.name} cannot go from {current!r} to {target!r}",
                {"from": current, "to": target, "allowed": sorted(self.allowed.get(current, ()))},
            )
        if target in self.system_only and not by_system:
            raise InvalidTransition(
                f"only the platform sets a {self.name} to {target!r}", {"from": current, "to": target}
            )
        if target in self.needs_note and not note.strip():
            raise ValidationFailed(f"setting a {self.name} to {target!r} needs a note", {"status": target})
