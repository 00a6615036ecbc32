"""The registry of alert-rule kinds: each kind is a small class with a pydantic params model.

Built-in kinds register the way a plugin would (``register``). A kind looks at one datastream and
answers a ``Verdict``: the condition holds (raise an event), it is over (clear it), or this
reading does not settle it (leave things as they are). What a kind needs beyond the newest reading
(the last N values, the range over a window) it asks of a ``Probe``, which reads the database only
when asked, so a kind that can decide from the newest value costs no query.

* ``threshold``: the value is above or below a limit, optionally only after N readings in a row.
* ``rate``: the value rose (or fell) by more than ``delta`` within ``window_minutes``.
* ``nodata``: no observation for ``minutes`` (checked periodically, never on ingest).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from citydesk.errors import ValidationFailed


class Probe(Protocol):
    """What a kind may ask about one datastream's recent past (``engine.DatabaseProbe``)."""

    def last_values(self, n: int) -> list[float]:
        """The newest ``n`` numeric results, newest first (fewer if there are fewer)."""
        ...

    def range_since(self, start: datetime) -> tuple[float, float] | None:
        """(min, max) of the numeric results from ``start`` on, or None without any."""
        ...


@dataclass(frozen=True, slots=True)
class Reading:
    """The newest observation of a datastream (for ``nodata``: its time, ``value`` unused)."""

    time: datetime
    value: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """``firing`` True: raise; False: the condition is over; ``text`` says why, for people."""

    firing: bool
    text: str
    details: dict[str, Any] = field(default_factory=dict)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleKind:
    """Base of every kind: its name, labels, params model, and when it is evaluated."""

    name: ClassVar[str]
    label: ClassVar[dict[str, str]]
    params: ClassVar[type[Params]]
    on_ingest: ClassVar[bool] = True
    """Evaluated on each stored batch (else only by the periodic check)."""

    def evaluate(self, params: Any, newest: Reading, probe: Probe, *, now: datetime) -> Verdict | None:
        raise NotImplementedError


KINDS: dict[str, RuleKind] = {}


def register(kind: type[RuleKind]) -> type[RuleKind]:
    """Add a kind to the registry (a class decorator; a name used twice is a programming error)."""
    if kind.name in KINDS:
        raise ValueError(f"alert-rule kind {kind.name!r} registered twice")
    KINDS[kind.name] = kind()
    return kind


def kind_of(name: str) -> RuleKind:
    found = KINDS.get(name)
    if found is None:
        raise ValidationFailed(f"unknown alert-rule kind {name!r}", {"kind": name, "kinds": sorted(KINDS)})
    return found


def parse_params(kind: str, params: Any) -> Params:
    """``params`` checked against the kind's model; a 400 with pydantic's details otherwise."""
    model = kind_of(kind).params
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        details = [
            {"loc": ["params", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        raise ValidationFailed(f"invalid params for a {kind} rule: {details[0]['msg']}", details) from None


def describe() -> list[dict[str, Any]]:
    """Every kind with its labels and params JSON Schema (for forms and API clients)."""
    return [
        {"name": k.name, "label": k.label, "on_ingest": k.on_ingest, "params": k.params.model_json_schema()}
        for k in KINDS.values()
    ]


def _num(v: float) -> str:
    return f"{v:g}"


# -- the built-in kinds ------------------------------------------------------------------------------
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


class ThresholdParams(Params):
    op: Literal[">=", ">", "<=", "<"] = Field(description="how the value compares with the limit")
    limit: float
    consecutive: int = Field(1, ge=1, le=60, description="readings in a row needed to raise")


@register
class Threshold(RuleKind):
    name = "threshold"
    label: ClassVar[dict[str, str]] = {"ko": "기준치", "en": "Threshold"}
    params = ThresholdParams

    def evaluate(
        self, params: ThresholdParams, newest: Reading, probe: Probe, *, now: datetime
    ) -> Verdict | None:
        if newest.value is None:
            return None
        beyond = COMPARE[params.op]
        text = f"{_num(newest.value)} {params.op} {_num(params.limit)}"
        details = {"value": newest.value, "limit": params.limit, "op": params.op}
        if not beyond(newest.value, params.limit):
            return Verdict(False, f"{_num(newest.value)} back within {_num(params.limit)}", details)
        if params.consecutive > 1:
            values = probe.last_values(params.consecutive)
            if len(values) < params.consecutive or not all(beyond(v, params.limit) for v in values):
                return None  # beyond the limit, but not long enough yet
            text += f" ({params.consecutive} readings in a row)"
        return Verdict(True, text, details)


class RateParams(Params):
    delta: float = Field(description="rise (positive) or fall (negative) that raises the alert")
    window_minutes: int = Field(ge=1, le=1440)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("delta must not be 0: positive for a rise, negative for a fall")
        return v


@register
class Rate(RuleKind):
    name = "rate"
    label: ClassVar[dict[str, str]] = {"ko": "급변", "en": "Rate of change"}
    params = RateParams

    def evaluate(self, params: RateParams, newest: Reading, probe: Probe, *, now: datetime) -> Verdict | None:
        if newest.value is None:
            return None
        seen = probe.range_since(newest.time - timedelta(minutes=params.window_minutes))
        if seen is None:
            return None
        low, high = seen
        change = newest.value - low if params.delta > 0 else newest.value - high
        firing = change >= params.delta if params.delta > 0 else change <= params.delta
        text = f"{change:+g} within {params.window_minutes} min (limit {params.delta:+g})"
        return Verdict(firing, text, {"value": newest.value, "change": change, "delta": params.delta})


class NoDataParams(Params):
    minutes: int = Field(ge=1, le=10080, description="silence that raises the alert")


@register
class NoData(RuleKind):
    name = "nodata"
    label: ClassVar[dict[str, str]] = {"ko": "수신 없음", "en": "No data"}
    params = NoDataParams
    on_ingest = False

    def evaluate(
        self, params: NoDataParams, newest: Reading, probe: Probe, *, now: datetime
    ) -> Verdict | None:
        silent = now - newest.time
        minutes = int(silent.total_seconds() // 60)
        details = {"last": newest.time.isoformat(), "minutes": params.minutes}
        if silent > timedelta(minutes=params.minutes):
            return Verdict(True, f"no data for {minutes} min (limit {params.minutes})", details)
        return Verdict(False, "data again", details)
