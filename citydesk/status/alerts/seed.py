"""The demo's alert rules for Seoul (``citydesk seed``): added once, found by name afterwards.

The limits are the Ministry of Environment's "very bad" bands (``status.measures.BANDS``), not
figures typed here: PM10 from 151 ㎍/㎥ and PM2.5 from 76 raise a major, public air event (after two
readings in a row, so one noisy reading does not); a PM10 rise of 100 within 10 minutes raises a
minor internal one; a PM10 sensor silent for 15 minutes raises a minor internal outage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from citydesk.status.alerts.kinds import parse_params
from citydesk.status.measures import BANDS
from citydesk.status.models import alert_rules


def _very_bad(measure: str) -> int:
    return next(b.low for b in BANDS[measure] if b.level == "very_bad")


def demo_rules() -> list[dict[str, Any]]:
    def air(measure: str, ko: str) -> dict[str, Any]:
        return {
            "name": f"{ko} 매우나쁨 · {measure} very bad",
            "kind": "threshold",
            "observed_property": measure,
            "params": {"op": ">=", "limit": _very_bad(measure), "consecutive": 2},
            "severity": "major",
            "event_kind": "air",
            "disclosure": "public",
        }

    return [
        air("PM10", "미세먼지"),
        air("PM2.5", "초미세먼지"),
        {
            "name": "미세먼지 급상승 · PM10 sharp rise",
            "kind": "rate",
            "observed_property": "PM10",
            "params": {"delta": 100, "window_minutes": 10},
            "severity": "minor",
            "event_kind": "air",
            "disclosure": "internal",
        },
        {
            "name": "미세먼지 센서 수신 없음 · PM10 sensor silent",
            "kind": "nodata",
            "observed_property": "PM10",
            "params": {"minutes": 15},
            "severity": "minor",
            "event_kind": "outage",
            "disclosure": "internal",
        },
    ]


def seed_alert_rules(engine: Engine, *, now: datetime | None = None) -> str:
    """Add the demo rules missing by name; a rule a city changed or disabled is left alone."""
    at = now or datetime.now(UTC)
    added = 0
    with engine.begin() as conn:
        known = set(conn.execute(select(alert_rules.c.name)).scalars())
        for rule in demo_rules():
            if rule["name"] in known:
                continue
            params = parse_params(rule["kind"], rule["params"]).model_dump()
            conn.execute(
                insert(alert_rules).values(**rule | {"params": params, "created_at": at, "updated_at": at})
            )
            added += 1
    return f"{added} alert rule(s) added, {len(demo_rules()) - added} already there"
