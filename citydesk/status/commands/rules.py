"""Who may read and do what with a command, and when it is overdue: pure rules, no database.

* reading: staff only (commands are internal); department staff see their own department's
  commands only, everyone else with ``internal`` sight sees all of them;
* handling (acknowledge, start, report progress, close, return): ``commands.handle``, and for
  department staff only in their own department (``users.department``);
* cancelling: ``commands.send``, by the user who sent the command (or an admin).

Whether a status may follow the current one is the lifecycle table's call (``workflow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from citydesk.auth import Disclosure, Permission, Principal, Role
from citydesk.errors import Forbidden, NotFound, Unauthorized
from citydesk.status.commands.workflow import (
    ACTION_LABELS,
    COMMAND_LIFECYCLE,
    OPEN_STATUSES,
    PROGRESS,
    PROGRESS_STATUSES,
    SENDER_STATUSES,
)

Row = Mapping[Any, Any]


def department_bound(who: Principal) -> bool:
    """Department staff work for one department; officials, the mayor and admins for the city."""
    return who.role is Role.DEPARTMENT_STAFF


def require_reader(who: Principal) -> None:
    if not who.is_staff:
        raise Unauthorized("sign-in required: commands are internal")
    if Disclosure.INTERNAL not in who.levels:
        raise Forbidden("commands are internal")


def check_visible(who: Principal, row: Row) -> None:
    require_reader(who)
    if row["disclosure"] not in who.levels:
        raise NotFound(f"no command {row['id']}")
    if department_bound(who) and row["department"] != who.department:
        raise Forbidden(f"command {row['id']} is for {row['department']}, not your department")


def refusal(who: Principal, row: Row, action: str) -> str | None:
    """Why ``who`` may not do ``action`` (a status or ``progress``) on this command, or None.

    Only the people side: whether the status may follow the current one is the lifecycle's call.
    """
    if action in SENDER_STATUSES:
        if not who.can(Permission.COMMANDS_SEND):
            return f"role {who.role.value!r} may not cancel commands"
        if row["created_by"] != who.user_id and who.role is not Role.ADMIN:
            return "only the sender of a command (or an admin) may cancel it"
        return None
    if not who.can(Permission.COMMANDS_HANDLE):
        return f"role {who.role.value!r} may not handle commands"
    if department_bound(who) and row["department"] != who.department:
        return f"command {row['id']} is for {row['department']}, not your department"
    return None


def actions(who: Principal, row: Row) -> list[str]:
    """What this viewer may do to this command now: the buttons a page shows."""
    status = row["status"]
    possible = [
        s for s in COMMAND_LIFECYCLE.allowed.get(status, ()) if s not in COMMAND_LIFECYCLE.system_only
    ]
    if status in PROGRESS_STATUSES:
        possible.append(PROGRESS)
    order = list(ACTION_LABELS)
    return sorted((a for a in possible if refusal(who, row, a) is None), key=order.index)


def is_overdue(status: str, due_at: datetime, now: datetime) -> bool:
    return status in OPEN_STATUSES and due_at < now
