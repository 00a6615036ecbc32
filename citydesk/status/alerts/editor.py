"""The add and edit forms of an alert rule: its own fields plus its kind's generated params fields.

``pages.py`` only routes. This module turns a kind (``kinds.describe``, the twin of
``GET /api/status/alert-kinds``) and a rule (``service.get_rule``, the twin of
``GET /api/status/alert-rules/{id}``) into what the form shows with ``citydesk.web.forms`` (the
machinery the hub's source forms use); a submitted form into the ``RuleIn``/``RulePatch`` the API
takes, so both go through the same service call; and that call's refusals back onto the form.

The form is checked here against the same models the service uses (``RuleIn`` and the kind's
params model) only so that every mistake is shown at once, next to its field; the service still
checks whatever it is given, as it does for the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citydesk.errors import CitydeskError
from citydesk.status.alerts.kinds import describe, kind_of
from citydesk.status.alerts.service import RuleIn, RulePatch
from citydesk.status.events import KINDS as EVENT_KINDS
from citydesk.status.events import SEVERITIES
from citydesk.web.forms import (
    FormField,
    FormInvalid,
    load_strings,
    read,
    schema_fields,
    texts,
    typed,
    validate,
)

STRINGS = Path(__file__).with_name("strings.toml")
PARAMS = "params."
"""Prefix of the params inputs' names, so a kind's param may be called ``name`` like the rule."""
OWN = ["name", "datastream_id", "observed_property", "district_code", "severity", "event_kind", "disclosure"]
"""The rule's own inputs (its kind is chosen by the page's address; "enabled" only when adding:
an existing rule has its own button)."""


@dataclass
class RuleForm:
    """Everything the add/edit template shows."""

    kind: dict[str, Any]
    """The kind as ``GET /api/status/alert-kinds`` lists it: name, labels, params schema."""
    own: list[FormField]
    params: list[FormField]
    values: dict[str, str]
    """Input key → text shown."""
    rule: dict[str, Any] | None = None
    """The rule being edited, as ``GET /api/status/alert-rules/{id}`` returns it."""
    errors: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Errors of no one field (e.g. neither a datastream nor a measure), shown at the top."""
    stored_secrets: frozenset[str] = frozenset()
    """Rules have no secrets; the shared field template asks."""

    @property
    def action(self) -> str:
        if self.rule is None:
            return f"/status/alert-rules/new?kind={self.kind['name']}"
        return f"/status/alert-rules/{self.rule['id']}/edit"


def kind_choices() -> list[dict[str, Any]]:
    """Every registered kind (what the new-rule page offers)."""
    return describe()


def _kind(name: str) -> dict[str, Any]:
    kind_of(name)  # an unknown kind is a 400 in our error format
    return next(k for k in describe() if k["name"] == name)


def _strings() -> dict[str, Any]:
    """``strings.toml``, with the events' own words for the severities and event kinds offered."""
    strings = load_strings(STRINGS)
    for lang in ("ko", "en"):
        fields = strings[lang]["fields"]
        fields["severity"]["options"] = {code: words[lang] for code, words in SEVERITIES.items()}
        fields["event_kind"]["options"] = {code: words[lang] for code, words in EVENT_KINDS.items()}
    return strings


def _fields(kind: Mapping[str, Any], *, editing: bool) -> tuple[list[FormField], list[FormField]]:
    strings = _strings()
    own = schema_fields(RuleIn.model_json_schema(), strings, only=OWN if editing else [*OWN, "enabled"])
    return own, schema_fields(kind["params"], strings, prefix=PARAMS)


def new_form(kind_name: str) -> RuleForm:
    kind = _kind(kind_name)
    own, params = _fields(kind, editing=False)
    return RuleForm(kind, own, params, texts(own, {}) | texts(params, {}))


def edit_form(rule: dict[str, Any]) -> RuleForm:
    kind = _kind(rule["kind"])
    own, params = _fields(kind, editing=True)
    return RuleForm(kind, own, params, texts(own, rule) | texts(params, rule["params"]), rule)


def _parse(form: RuleForm, data: Mapping[str, str]) -> RuleIn:
    form.values = typed(form.own + form.params, data)
    own, unread_own = read(form.own, data)
    params, unread = read(form.params, data)
    kept = {"enabled": form.rule["enabled"]} if form.rule is not None else {}
    parsed, errors, problems = validate(
        RuleIn, own | kept | {"kind": form.kind["name"], "params": params}, form.own
    )
    _, params_errors, params_problems = validate(kind_of(form.kind["name"]).params, params, form.params)
    # An input refused while reading (left empty) is missing from ``params``: the model's
    # "required" would only repeat it.
    errors |= unread_own | unread | {k: v for k, v in params_errors.items() if k not in unread}
    problems += params_problems
    if parsed is None or errors or problems:
        raise FormInvalid(errors, problems)
    return parsed


def rule_in(form: RuleForm, data: Mapping[str, str]) -> RuleIn:
    """The new rule a submitted add form describes (what ``POST /api/status/alert-rules`` takes)."""
    return _parse(form, data)


def rule_patch(form: RuleForm, data: Mapping[str, str]) -> RulePatch:
    """The change a submitted edit form describes (what ``PATCH /api/status/alert-rules/{id}``
    takes): every field, a target left empty included, so moving a rule from a datastream to a
    measure clears the datastream."""
    return RulePatch.model_validate(_parse(form, data).model_dump(exclude={"enabled"}))


def explain(form: RuleForm, refusal: FormInvalid | CitydeskError) -> None:
    """Put a refusal on the form: next to the field it names (an unknown datastream or district),
    else at the top."""
    if isinstance(refusal, FormInvalid):
        form.errors, form.problems = refusal.errors, refusal.problems
        return
    keys = {f.name: f.key for f in form.own}
    named = [keys[k] for k in refusal.details if k in keys] if isinstance(refusal.details, dict) else []
    if named:
        form.errors = {named[0]: [refusal.message]}
    else:
        form.problems = [refusal.message]
