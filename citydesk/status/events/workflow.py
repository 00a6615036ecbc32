"""The event lifecycle as a table (see ``citydesk.workflow``), and the words shown for it.

reported → dispatched → in_progress → resolved is the normal course of an incident; a report that
turns out to be nothing (a false alarm, a sensor glitch, air back to normal) may be resolved
straight from ``reported`` or ``dispatched``. Resolving always needs a note, so the timeline says
why an incident ended.

A resolved event is final: it is not reopened. Its timeline is the record of one incident, and
its ``open_key`` is already free, so a recurrence (the same rule firing again, a second fire at
the same place) is a new event with its own timeline rather than a confusing loop in the old one.
"""

from __future__ import annotations

from citydesk.workflow import Lifecycle

REPORTED, DISPATCHED, IN_PROGRESS, RESOLVED = "reported", "dispatched", "in_progress", "resolved"

EVENT_LIFECYCLE = Lifecycle(
    name="event",
    initial=REPORTED,
    allowed={
        REPORTED: frozenset({DISPATCHED, RESOLVED}),
        DISPATCHED: frozenset({IN_PROGRESS, RESOLVED}),
        IN_PROGRESS: frozenset({RESOLVED}),
        RESOLVED: frozenset(),
    },
    needs_note=frozenset({RESOLVED}),
)

OPEN_STATUSES = tuple(s for s in EVENT_LIFECYCLE.statuses if s not in EVENT_LIFECYCLE.final)

STATUS_LABELS: dict[str, dict[str, str]] = {
    REPORTED: {"ko": "접수", "en": "Reported"},
    DISPATCHED: {"ko": "출동", "en": "Dispatched"},
    IN_PROGRESS: {"ko": "처리 중", "en": "In progress"},
    RESOLVED: {"ko": "종료", "en": "Resolved"},
}

SEVERITIES: dict[str, dict[str, str]] = {
    "info": {"ko": "정보", "en": "Info"},
    "minor": {"ko": "경미", "en": "Minor"},
    "major": {"ko": "중대", "en": "Major"},
    "critical": {"ko": "심각", "en": "Critical"},
}
"""In rising order: lists and the map sort and mark events by this."""

KINDS: dict[str, dict[str, str]] = {
    "disaster": {"ko": "재난", "en": "Disaster"},
    "fire": {"ko": "화재", "en": "Fire"},
    "flood": {"ko": "침수", "en": "Flood"},
    "earthquake": {"ko": "지진", "en": "Earthquake"},
    "accident": {"ko": "사고", "en": "Accident"},
    "air": {"ko": "대기오염", "en": "Air pollution"},
    "outage": {"ko": "장애", "en": "Outage"},
    "alert": {"ko": "경보", "en": "Alert"},
    "other": {"ko": "기타", "en": "Other"},
}
