"""Alert rules: stored, checked and changed here (the only code that writes ``alert_rules``).

A rule watches one datastream, or every datastream of an ObservedProperty (optionally in one
district); its params are checked against its kind's model (``kinds``), so a stored rule always
evaluates. After every committed change ``alerts.rules`` is published, and every worker's rule
cache (``engine.RuleCache``) reloads on its next batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Row, delete, func, insert, select, update

from citydesk.auth import Disclosure
from citydesk.errors import NotFound, ValidationFailed
from citydesk.hub.catalog import DatastreamFacts
from citydesk.hub.models import datastreams
from citydesk.status.alerts.kinds import Params, kind_of, parse_params
from citydesk.status.events import Kind, Severity
from citydesk.status.models import alert_rules, events

if TYPE_CHECKING:
    from citydesk.web.app import App

RULES_TOPIC = "alerts.rules"
"""Published after a rule is created, changed or deleted (forwarded to every worker)."""


class RuleIn(BaseModel):
    """A rule as created (and, merged with the stored one, as changed)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=32, description="threshold, rate or nodata")
    datastream_id: int | None = Field(None, description="one datastream, or instead:")
    observed_property: str | None = Field(None, max_length=200, description="every datastream of it")
    district_code: str | None = Field(None, max_length=10, description="with observed_property only")
    params: dict[str, Any]
    severity: Severity = "minor"
    event_kind: Kind = "alert"
    disclosure: Disclosure = Disclosure.INTERNAL
    """The events' level at most as open as this (and never more open than the datastream)."""
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> RuleIn:
        if (self.datastream_id is None) == (self.observed_property is None):
            raise ValueError("give either datastream_id or observed_property")
        if self.district_code is not None and self.observed_property is None:
            raise ValueError("district_code narrows an observed_property rule only")
        return self


class RulePatch(BaseModel):
    """A partial change; unset fields keep their stored value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    kind: str | None = None
    datastream_id: int | None = None
    observed_property: str | None = None
    district_code: str | None = None
    params: dict[str, Any] | None = None
    severity: Severity | None = None
    event_kind: Kind | None = None
    disclosure: Disclosure | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule with its params parsed, as the engine holds it."""

    id: int
    name: str
    kind: str
    datastream_id: int | None
    observed_property: str | None
    district_code: str | None
    params: Params
    severity: str
    event_kind: str
    disclosure: str

    def applies_to(self, facts: DatastreamFacts) -> bool:
        if self.datastream_id is not None:
            return facts.id == self.datastream_id
        return facts.observed_property == self.observed_property and (
            self.district_code is None or facts.district_code == self.district_code
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def rule_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "kind_label": kind_of(row.kind).label,
        "datastream_id": row.datastream_id,
        "observed_property": row.observed_property,
        "district_code": row.district_code,
        "params": row.params,
        "severity": row.severity,
        "event_kind": row.event_kind,
        "disclosure": row.disclosure,
        "enabled": row.enabled,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _checked(app: App, conn: Connection, rule: RuleIn) -> dict[str, Any]:
    """The columns of a valid rule: known kind, valid params, existing datastream and district."""
    params = parse_params(rule.kind, rule.params)
    if rule.datastream_id is not None:
        found = conn.execute(select(datastreams.c.id).where(datastreams.c.id == rule.datastream_id)).first()
        if found is None:
            raise ValidationFailed(
                f"no datastream {rule.datastream_id}", {"datastream_id": rule.datastream_id}
            )
    if rule.district_code is not None and app.geo.district_info(rule.district_code) is None:
        raise ValidationFailed(f"no district {rule.district_code!r}", {"district_code": rule.district_code})
    return rule.model_dump() | {"params": params.model_dump()}


def _get(conn: Connection, rule_id: int) -> Row[Any]:
    row = conn.execute(select(alert_rules).where(alert_rules.c.id == rule_id)).one_or_none()
    if row is None:
        raise NotFound(f"no alert rule {rule_id}", {"id": rule_id})
    return row


def _changed(app: App, rule_id: int) -> None:
    app.bus.publish(RULES_TOPIC, {"id": rule_id})


def _raised(conn: Connection) -> dict[int, tuple[int, datetime | None]]:
    """Per rule: how many of its events are open, and when it last raised one (one query)."""
    stmt = (
        select(
            events.c.rule_id,
            func.count().filter(events.c.resolved_at.is_(None)),
            func.max(events.c.opened_at),
        )
        .where(events.c.rule_id.is_not(None))
        .group_by(events.c.rule_id)
    )
    return {rule_id: (open_, last) for rule_id, open_, last in conn.execute(stmt)}


def list_rules(app: App) -> dict[str, Any]:
    """Every rule, with its open events and when it last raised one (what staff check first)."""
    with app.engine.connect() as conn:
        rows = conn.execute(select(alert_rules).order_by(alert_rules.c.id)).all()
        raised = _raised(conn)
    rules = []
    for r in rows:
        open_events, last = raised.get(r.id, (0, None))
        rules.append(rule_json(r) | {"open_events": open_events, "last_raised": _iso(last)})
    return {"rules": rules}


def get_rule(app: App, rule_id: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return rule_json(_get(conn, rule_id))


def create_rule(app: App, rule: RuleIn, *, now: datetime) -> dict[str, Any]:
    with app.engine.begin() as conn:
        values = _checked(app, conn, rule) | {"created_at": now, "updated_at": now}
        rule_id = conn.execute(insert(alert_rules).values(**values).returning(alert_rules.c.id)).scalar_one()
        row = _get(conn, rule_id)
    _changed(app, rule_id)
    return rule_json(row)


def update_rule(app: App, rule_id: int, patch: RulePatch, *, now: datetime) -> dict[str, Any]:
    with app.engine.begin() as conn:
        stored = _get(conn, rule_id)
        merged = {k: getattr(stored, k) for k in RuleIn.model_fields} | patch.model_dump(exclude_unset=True)
        values = _checked(app, conn, RuleIn.model_validate(merged)) | {"updated_at": now}
        conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(**values))
        row = _get(conn, rule_id)
    _changed(app, rule_id)
    return rule_json(row)


def delete_rule(app: App, rule_id: int) -> None:
    """Delete a rule; its events stay (their ``rule_id`` becomes null, their history intact)."""
    with app.engine.begin() as conn:
        _get(conn, rule_id)
        conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))
    _changed(app, rule_id)


def enabled_rules(app: App) -> list[Rule]:
    """Every enabled rule, parsed (what the engine caches)."""
    with app.engine.connect().execution_options(read_only=True) as conn:
        rows = conn.execute(select(alert_rules).where(alert_rules.c.enabled.is_(True))).all()
    return [
        Rule(
            r.id,
            r.name,
            r.kind,
            r.datastream_id,
            r.observed_property,
            r.district_code,
            parse_params(r.kind, r.params),
            r.severity,
            r.event_kind,
            r.disclosure,
        )
        for r in rows
    ]
