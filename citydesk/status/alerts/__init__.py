"""Alert rules on datastreams: threshold, rate of change, no data for N minutes.

``kinds`` is the registry of rule kinds; ``service`` stores rules; ``engine`` judges readings
(each worker its own stored batches, plus a periodic check for silence) and raises or clears
events through ``citydesk.status.events``; ``api`` is the CRUD for ``alerts.manage``, and ``pages``
(forms by ``editor``) its staff pages at ``/status/alert-rules``; ``seed`` adds the demo's Seoul
rules. ``attach`` wires it all into an app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from citydesk.status.alerts.api import router
from citydesk.status.alerts.engine import BACK_TO_NORMAL, AlertEngine, NodataCheck, RuleCache
from citydesk.status.alerts.kinds import KINDS, RuleKind, register
from citydesk.status.alerts.pages import pages_router
from citydesk.status.alerts.seed import seed_alert_rules
from citydesk.status.alerts.service import RULES_TOPIC, RuleIn, RulePatch, create_rule

if TYPE_CHECKING:
    from citydesk.web.app import App

__all__ = [
    "BACK_TO_NORMAL",
    "KINDS",
    "RULES_TOPIC",
    "AlertEngine",
    "NodataCheck",
    "RuleCache",
    "RuleIn",
    "RuleKind",
    "RulePatch",
    "attach",
    "create_rule",
    "pages_router",
    "register",
    "router",
    "seed_alert_rules",
]


def attach(app: App, *, nodata_period: float = 60.0) -> AlertEngine:
    """Judge this worker's stored batches from now on, and add the periodic no-data check to
    ``app.background`` (started with the web app). Attaching twice returns the first engine."""
    for service_ in app.background:
        if isinstance(service_, NodataCheck):
            return service_.engine
    engine = AlertEngine(app)
    engine.follow()
    app.background.append(NodataCheck(engine, period=nodata_period))
    return engine
