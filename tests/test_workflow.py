"""The lifecycle table machinery every workflow (events, commands, ...) is stated in."""

from __future__ import annotations

import pytest

from citydesk.errors import InvalidTransition, ValidationFailed
from citydesk.workflow import Lifecycle

DOOR = Lifecycle(
    "door",
    initial="closed",
    allowed={
        "closed": frozenset({"open", "locked"}),
        "open": frozenset({"closed"}),
        "locked": frozenset({"closed", "broken"}),
        "broken": frozenset(),
    },
    system_only=frozenset({"broken"}),
    needs_note=frozenset({"locked"}),
)


@pytest.mark.parametrize("current", DOOR.statuses)
@pytest.mark.parametrize("target", DOOR.statuses)
def test_every_pair_is_allowed_or_refused_by_the_table(current: str, target: str) -> None:
    if target in DOOR.allowed[current]:
        DOOR.check(current, target, by_system=True, note="why")
    else:
        with pytest.raises(InvalidTransition):
            DOOR.check(current, target, by_system=True, note="why")


def test_system_only_and_notes() -> None:
    with pytest.raises(InvalidTransition, match="only the platform"):
        DOOR.check("locked", "broken")
    with pytest.raises(ValidationFailed, match="needs a note"):
        DOOR.check("closed", "locked", note="  ")
    with pytest.raises(ValidationFailed, match="not a door status"):
        DOOR.check("closed", "ajar")
    assert DOOR.final == {"broken"}


def test_a_table_naming_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown statuses"):
        Lifecycle("bad", initial="a", allowed={"a": frozenset({"b"})})
