"""Events and their status history: what happened where, how bad, and how the city responded.

``workflow`` is the lifecycle table and its labels; ``service`` is the only code that reads or
changes events; ``api`` (``/api/status/events``) and ``pages`` (``/status/events``) are its shells.
Alert rules (``citydesk.status.alerts``) raise and clear events through ``raise_alert`` and
``clear_alert``.
"""

from citydesk.status.events.api import router
from citydesk.status.events.pages import pages_router
from citydesk.status.events.service import (
    SYSTEM_ACTOR,
    EventIn,
    Filters,
    Kind,
    Severity,
    StatusChange,
    clear_alert,
    detail,
    geojson,
    listing,
    move,
    open_among,
    open_key,
    raise_alert,
    report,
    stricter,
)
from citydesk.status.events.workflow import EVENT_LIFECYCLE, KINDS, SEVERITIES, STATUS_LABELS

__all__ = [
    "EVENT_LIFECYCLE",
    "KINDS",
    "SEVERITIES",
    "STATUS_LABELS",
    "SYSTEM_ACTOR",
    "EventIn",
    "Filters",
    "Kind",
    "Severity",
    "StatusChange",
    "clear_alert",
    "detail",
    "geojson",
    "listing",
    "move",
    "open_among",
    "open_key",
    "pages_router",
    "raise_alert",
    "report",
    "router",
    "stricter",
]
