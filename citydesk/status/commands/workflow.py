"""The lifecycle of a command to a department, as a table (see ``citydesk.workflow``).

    sent ──► acknowledged ──► in_progress ──► done
      │            │    └──────────────────► done      (a quick task closed straight after receipt)
      └────────────┴───────────┴──────────► returned  (the department hands it back, in writing)
      └────────────┴───────────┴──────────► cancelled (the sender withdraws it, in writing)

Why each rule:

* ``sent`` cannot jump to ``in_progress``: acknowledging is the receipt the mayor's office waits
  for ("has the department seen it?"), so it is never skipped, only done in the same minute.
* ``done`` needs a note: the note *is* the report the sender reads on the timeline.
* ``returned`` exists because a department that cannot carry an instruction out (not its remit,
  blocked by another body) must say so in writing rather than let it run silently overdue. It is
  final: the sender reads the reason and sends a new command (to another department, or later),
  so each record keeps one honest history instead of being re-pointed after the fact.
* ``cancelled`` belongs to the sender side only (``commands.send``), and needs a note: a
  withdrawn instruction says why, for the department that may already be working on it.
* Progress reports while ``in_progress`` change no status: they are history entries with a note.

Who may make which change is not the table's business (it knows statuses, not people): see
``HANDLER_STATUSES`` / ``SENDER_STATUSES`` and ``service.may``.
"""

from __future__ import annotations

from citydesk.workflow import Lifecycle

SENT, ACKNOWLEDGED, IN_PROGRESS = "sent", "acknowledged", "in_progress"
DONE, RETURNED, CANCELLED = "done", "returned", "cancelled"

COMMAND_LIFECYCLE = Lifecycle(
    name="command",
    initial=SENT,
    allowed={
        SENT: frozenset({ACKNOWLEDGED, RETURNED, CANCELLED}),
        ACKNOWLEDGED: frozenset({IN_PROGRESS, DONE, RETURNED, CANCELLED}),
        IN_PROGRESS: frozenset({DONE, RETURNED, CANCELLED}),
        DONE: frozenset(),
        RETURNED: frozenset(),
        CANCELLED: frozenset(),
    },
    needs_note=frozenset({DONE, RETURNED, CANCELLED}),
)

OPEN_STATUSES = frozenset(s for s in COMMAND_LIFECYCLE.statuses if s not in COMMAND_LIFECYCLE.final)
"""A command is open (and can be overdue) until it reaches a final status."""
HANDLER_STATUSES = frozenset({ACKNOWLEDGED, IN_PROGRESS, DONE, RETURNED})
"""Set by the receiving department (``commands.handle``, own department for department staff)."""
SENDER_STATUSES = frozenset({CANCELLED})
"""Set by the sending side (``commands.send``: the sender, or an admin)."""
PROGRESS = "progress"
"""The action name of a progress report: a history entry with a note, the status unchanged."""
PROGRESS_STATUSES = frozenset({IN_PROGRESS})
"""Where a progress report may be written."""

STATUS_LABELS: dict[str, dict[str, str]] = {
    SENT: {"ko": "보냄", "en": "Sent"},
    ACKNOWLEDGED: {"ko": "접수", "en": "Acknowledged"},
    IN_PROGRESS: {"ko": "처리 중", "en": "In progress"},
    DONE: {"ko": "완료", "en": "Done"},
    RETURNED: {"ko": "반려", "en": "Returned"},
    CANCELLED: {"ko": "취소", "en": "Cancelled"},
}
ACTION_LABELS: dict[str, dict[str, str]] = {
    ACKNOWLEDGED: {"ko": "접수", "en": "Acknowledge"},
    IN_PROGRESS: {"ko": "처리 시작", "en": "Start"},
    PROGRESS: {"ko": "진행 보고", "en": "Report progress"},
    DONE: {"ko": "완료 보고", "en": "Close (done)"},
    RETURNED: {"ko": "반려", "en": "Return"},
    CANCELLED: {"ko": "지시 취소", "en": "Cancel command"},
}
"""What the buttons say; every status a person may set, and ``progress``."""

ALIASES: dict[str, str] = {"ack": ACKNOWLEDGED, "start": IN_PROGRESS, "return": RETURNED, "cancel": CANCELLED}
"""Short verbs the status route also takes (``{"status": "ack"}``), for hand-written API calls."""
