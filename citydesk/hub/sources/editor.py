"""The add and edit forms of a source: its own fields plus its kind's generated config fields.

``pages.py`` only routes. This module turns a kind's description (``service.describe_kind``, the
twin of ``GET /api/hub/connectors/{kind}``) and a source (``service.source_json``, the twin of
``GET /api/hub/sources/{id}``) into what the form shows; a submitted form into the ``SourceIn`` or
``SourcePatch`` the API takes, so both go through the same ``SourceRunner`` call; and that call's
refusals (a failed check, a taken name) back onto the form.

The form is validated here against the same models the service uses (``SourceIn`` and the kind's
config model) only so that every mistake is shown at once, next to its field; the service still
validates whatever it is given, as it does for the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citydesk.errors import CitydeskError, Conflict
from citydesk.hub.connectors.base import MASK, ConnectorConfig
from citydesk.hub.sources.service import DEFAULT_INTERVAL, CheckFailed
from citydesk.hub.sources.types import SourceIn, SourcePatch
from citydesk.web.forms import (
    FormField,
    FormInvalid,
    Model,
    load_strings,
    read,
    schema_fields,
    texts,
    typed,
    validate,
)

STRINGS = Path(__file__).with_name("strings.toml")
CONFIG = "config."
"""Prefix of the config inputs' names, so a config field may be called ``name`` like the source."""
TAKEN = "이 이름의 소스가 이미 있습니다. Another source has this name."
CHECK_FAILED = "저장하지 않았습니다. 소스 확인에 실패했습니다. Not saved: the source failed its check"


@dataclass
class SourceForm:
    """Everything the add/edit template shows."""

    kind: dict[str, Any]
    """The kind's description: manifest, JSON schema, strings."""
    model: type[ConnectorConfig]
    """The kind's config model, which the fields were generated from."""
    common: list[FormField]
    config: list[FormField]
    values: dict[str, str]
    """Input key → text shown (never a secret)."""
    source: dict[str, Any] | None = None
    """The source being edited, as ``GET /api/hub/sources/{id}`` returns it (secrets masked)."""
    errors: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Errors of no one field, shown at the top."""

    @property
    def action(self) -> str:
        if self.source is None:
            return f"/hub/sources/new/{self.kind['kind']}"
        return f"/hub/sources/{self.source['id']}/edit"

    @property
    def stored_secrets(self) -> set[str]:
        """Keys of secret inputs with a stored value, which an empty input keeps."""
        shown = self.source["config"] if self.source else {}
        return {f.key for f in self.config if f.widget == "password" and shown.get(f.name) == MASK}


def _common(kind: Mapping[str, Any], *, editing: bool) -> list[FormField]:
    """The source's own fields: the interval only for poll kinds; "enabled" only when adding
    (an existing source has its own button); "read again" only for poll kinds, when editing."""
    poll = kind["mode"] == "poll"
    strings = load_strings(STRINGS)
    names = ["name", *(["interval_seconds"] if poll else []), "disclosure"]
    fields = schema_fields(
        SourceIn.model_json_schema(), strings, only=names if editing else [*names, "enabled"]
    )
    if editing and poll:
        fields += schema_fields(SourcePatch.model_json_schema(), strings, only=["reset_cursor"])
    return fields


def _config(kind: Mapping[str, Any]) -> list[FormField]:
    return schema_fields(kind["schema"], kind["strings"], prefix=CONFIG)


def new_form(kind: dict[str, Any], model: type[ConnectorConfig]) -> SourceForm:
    common, config = _common(kind, editing=False), _config(kind)
    values = texts(common, {"interval_seconds": DEFAULT_INTERVAL}) | texts(config, {})
    return SourceForm(kind, model, common, config, values)


def edit_form(kind: dict[str, Any], model: type[ConnectorConfig], source: dict[str, Any]) -> SourceForm:
    common, config = _common(kind, editing=True), _config(kind)
    values = texts(common, source) | texts(config, source["config"])
    return SourceForm(kind, model, common, config, values, source)


def _parse(form: SourceForm, data: Mapping[str, str], model: type[Model], extra: dict[str, Any]) -> Model:
    form.values = typed(form.common + form.config, data)
    own, unread_own = read(form.common, data)
    config, unread = read(form.config, data, keep_secrets=form.source is not None)
    parsed, errors, problems = validate(model, own | extra | {"config": config}, form.common)
    _, config_errors, config_problems = validate(form.model, config, form.config)
    # An input refused while reading (bad JSON, left empty) is missing from ``config``: the
    # model's "required" would only repeat it.
    errors |= unread_own | unread | {k: v for k, v in config_errors.items() if k not in unread}
    problems += config_problems
    if parsed is None or errors or problems:
        raise FormInvalid(errors, problems)
    return parsed


def source_in(form: SourceForm, data: Mapping[str, str]) -> SourceIn:
    """The new source a submitted add form describes (what ``POST /api/hub/sources`` takes)."""
    return _parse(form, data, SourceIn, {"kind": form.kind["kind"]})


def source_patch(form: SourceForm, data: Mapping[str, str]) -> SourcePatch:
    """The change a submitted edit form describes (what ``PATCH /api/hub/sources/{id}`` takes);
    an empty secret keeps the stored one."""
    return _parse(form, data, SourcePatch, {})


def explain(form: SourceForm, refusal: FormInvalid | CitydeskError) -> None:
    """Put a refusal on the form: next to the fields it concerns, else at the top."""
    if isinstance(refusal, FormInvalid):
        form.errors, form.problems = refusal.errors, refusal.problems
    elif isinstance(refusal, CheckFailed):
        form.problems = [f"{CHECK_FAILED}: {refusal.reason}"]
    elif isinstance(refusal, Conflict):
        form.errors = {"name": [TAKEN]}
    else:
        form.problems = [refusal.message]
