"""HTML form fields generated from a pydantic model's JSON schema, and submitted text read back.

Every connector's ``config.py`` and every alert-rule kind's params are pydantic models; the JSON
schema says which inputs a staff form has and a ``strings.toml`` what they are called in Korean
and English. So a new kind (a plugin included) gets its add and edit pages without any HTML, and
the page and the API are checked by the same model. The mapping from schema to widget:

============================================  ===========================================
schema                                        widget
============================================  ===========================================
``SecretStr`` (``writeOnly``/``password``)    ``password``: never filled in, never echoed
``enum`` (``Literal``, ``StrEnum``)           ``select``
``boolean``                                   ``checkbox``
``integer``, ``number``                       ``number``, with the schema's bounds
``string``                                    ``text`` (``format`` picks url/email)
union of scalars (``int | str``)              ``text``, read back as the first type it fits
list of scalars (``list[str]``)               ``lines``: a textarea, one item per line
anything else (objects, ``list[FieldMap]``)   ``json``: a textarea with an example and a
                                              reference of the object's keys
============================================  ===========================================

Nothing here validates beyond "is this JSON": the model does that, once, in the service, and its
errors are placed back on the fields by ``place_errors``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from citydesk.hub.connectors.base import MASK

Widget = Literal["password", "select", "checkbox", "number", "text", "lines", "json"]
SCALARS = ("string", "integer", "number", "boolean")
INPUT_TYPES = {"uri": "url", "url": "url", "email": "email", "multiline": "multiline"}
"""JSON-schema string formats that have an HTML input of their own (``multiline``: a textarea,
for text such as SQL that is written over several lines)."""
Model = TypeVar("Model", bound=BaseModel)
REQUIRED = "필수 항목입니다. Required."
BAD_JSON = "JSON 형식이 아닙니다. Not valid JSON"


@dataclass(frozen=True)
class Words:
    """A text in both languages of the pages."""

    ko: str
    en: str


@dataclass(frozen=True)
class Member:
    """One key of a JSON field's object, listed under its textarea so staff know what to write."""

    name: str
    type: str
    required: bool
    default: str
    description: str
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class FormField:
    """One input of a generated form; ``key`` is its HTML name (``config.url``)."""

    name: str
    key: str
    widget: Widget
    label: Words
    help: Words
    required: bool
    nullable: bool
    types: tuple[str, ...]
    """JSON types a typed text may become (several for a union such as ``int | float | str``)."""
    default: Any = None
    input_type: str = "text"
    options: tuple[str, ...] = ()
    option_labels: tuple[Words, ...] = ()
    """What each option is called (``strings.toml``: ``fields.<name>.options.<value>``); the value
    itself where no words are given."""
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    example: str = ""
    members: tuple[Member, ...] = ()

    @property
    def id(self) -> str:
        return self.key.replace(".", "-")

    @property
    def step(self) -> str:
        return "1" if self.types == ("integer",) else "any"


# -- schema → fields ------------------------------------------------------------------------------
def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and pydantic's ``allOf: [$ref]``); keys beside the reference win."""
    ref = prop.get("$ref") or (prop["allOf"][0].get("$ref") if len(prop.get("allOf", ())) == 1 else None)
    if ref is None:
        return dict(prop)
    target = defs[ref.rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}


def _unwrap(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The shape of a property without its ``None`` branch, and whether ``None`` is allowed."""
    shape = _resolve(prop, defs)
    branches = shape.pop("anyOf", None)
    if branches is None:
        return shape, False
    kept = [_resolve(b, defs) for b in branches if b.get("type") != "null"]
    inner = kept[0] if len(kept) == 1 else {"anyOf": kept}
    return {**inner, **shape}, len(kept) < len(branches)


def _types(shape: Mapping[str, Any]) -> tuple[str, ...]:
    if "anyOf" in shape:
        return tuple(t for b in shape["anyOf"] for t in _types(b))
    kind = shape.get("type")
    return tuple(kind) if isinstance(kind, list) else ((kind,) if kind else ())


def _widget(shape: Mapping[str, Any], defs: Mapping[str, Any]) -> Widget:
    types = _types(shape)
    if shape.get("writeOnly") or shape.get("format") == "password":
        return "password"
    if "enum" in shape:
        return "select"
    if types == ("boolean",):
        return "checkbox"
    if types in (("integer",), ("number",)):
        return "number"
    if types and all(t in SCALARS for t in types):
        return "text"
    if types == ("array",):
        items = _resolve(shape.get("items", {}), defs)
        if "enum" not in items and _types(items) and all(t in SCALARS for t in _types(items)):
            return "lines"
    return "json"


def _words(strings: Mapping[str, Any], name: str, key: str, fallback: str) -> Words:
    """The field's text in each language from ``strings.toml``; the schema's (English) otherwise."""

    def one(lang: str) -> str:
        return str(strings.get(lang, {}).get("fields", {}).get(name, {}).get(key, "")).strip()

    en = one("en") or fallback
    return Words(ko=one("ko") or en, en=en)


def _option_words(strings: Mapping[str, Any], name: str, options: Iterable[str]) -> tuple[Words, ...]:
    def one(lang: str, option: str) -> str:
        found = strings.get(lang, {}).get("fields", {}).get(name, {}).get("options", {}).get(option, "")
        return str(found).strip()

    return tuple(Words(ko=one("ko", o) or one("en", o) or o, en=one("en", o) or o) for o in options)


def _type_name(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    shape, nullable = _unwrap(prop, defs)
    if "enum" in shape:
        name = " | ".join(json.dumps(v, ensure_ascii=False) for v in shape["enum"])
    elif _types(shape) == ("array",):
        name = f"list of {_type_name(shape.get('items', {}), defs)}"
    elif _types(shape) == ("object",) and "properties" in shape:
        name = str(shape.get("title", "object"))
    elif _types(shape) == ("object",):
        name = f"object of {_type_name(shape.get('additionalProperties', {}), defs)}"
    else:
        name = " | ".join(_types(shape)) or "any"
    return f"{name} | null" if nullable else name


def _object_of(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """The object a JSON field holds, or holds a list of (whose keys the reference lists)."""
    shape, _ = _unwrap(prop, defs)
    if _types(shape) == ("array",):
        shape, _ = _unwrap(shape.get("items", {}), defs)
    return shape if "properties" in shape else {}


def _members(prop: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 2) -> tuple[Member, ...]:
    obj = _object_of(prop, defs)
    required = set(obj.get("required", ()))
    return tuple(
        Member(
            name=name,
            type=_type_name(sub, defs),
            required=name in required,
            default="" if sub.get("default") is None else json.dumps(sub["default"], ensure_ascii=False),
            description=str(_resolve(sub, defs).get("description", "")),
            members=_members(sub, defs, depth - 1) if depth > 1 else (),
        )
        for name, sub in obj.get("properties", {}).items()
    )


def _example(name: str, prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """A smallest valid-looking value: the required keys only, placeholders in ``<angle brackets>``."""
    shape, _ = _unwrap(prop, defs)
    types = _types(shape)
    if "enum" in shape:
        return shape.get("default", shape["enum"][0])
    if "default" in shape and shape["default"] not in (None, [], {}):
        return shape["default"]
    if "properties" in shape:
        return {k: _example(k, shape["properties"][k], defs) for k in shape.get("required", ())}
    if types == ("object",):
        return {"<name>": _example("value", shape.get("additionalProperties", {}), defs)}
    if types == ("array",):
        return [_example(name, shape.get("items", {}), defs)] * max(1, int(shape.get("minItems", 1)))
    if types[:1] in (("integer",), ("number",)):
        low = shape.get("minimum", shape.get("exclusiveMinimum", 0) + 1)
        return int(low) if types[0] == "integer" else float(low)
    if types[:1] == ("boolean",):
        return False
    return f"<{name}>"


def _bound(shape: Mapping[str, Any], inclusive: str, exclusive: str, step: int) -> float | None:
    """An HTML min/max; an exclusive integer bound moves by one, a decimal one stays (the model decides)."""
    if inclusive in shape:
        return shape[inclusive]
    if exclusive in shape:
        return shape[exclusive] + (step if _types(shape) == ("integer",) else 0)
    return None


def schema_fields(
    schema: Mapping[str, Any],
    strings: Mapping[str, Any],
    *,
    prefix: str = "",
    only: Iterable[str] | None = None,
) -> list[FormField]:
    """The form fields of a model's JSON schema, in the model's order (or ``only``'s)."""
    defs = schema.get("$defs", {})
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fields = []
    for name in only if only is not None else properties:
        prop = properties[name]
        shape, nullable = _unwrap(prop, defs)
        widget = _widget(shape, defs)
        fields.append(
            FormField(
                name=name,
                key=prefix + name,
                widget=widget,
                label=_words(strings, name, "label", str(shape.get("title", name))),
                help=_words(strings, name, "help", str(shape.get("description", ""))),
                required=name in required,
                nullable=nullable,
                types=_types(shape),
                default=shape.get("default"),
                input_type=INPUT_TYPES.get(str(shape.get("format")), "text"),
                options=tuple(str(v) for v in shape.get("enum", ())),
                option_labels=_option_words(strings, name, (str(v) for v in shape.get("enum", ()))),
                minimum=_bound(shape, "minimum", "exclusiveMinimum", 1),
                maximum=_bound(shape, "maximum", "exclusiveMaximum", -1),
                min_length=shape.get("minLength"),
                max_length=shape.get("maxLength"),
                example=json.dumps(_example(name, prop, defs), ensure_ascii=False, indent=2)
                if widget == "json"
                else "",
                members=_members(prop, defs) if widget == "json" else (),
            )
        )
    return fields


# -- values ↔ text --------------------------------------------------------------------------------
def _as_text(field: FormField, value: Any) -> str:
    if value is None:
        return ""
    if field.widget == "checkbox":
        return "on" if value else ""
    if field.widget == "lines":
        return "\n".join(str(item) for item in value)
    if field.widget == "json":
        return json.dumps(value, ensure_ascii=False, indent=2)
    return str(value)


def texts(fields: Iterable[FormField], values: Mapping[str, Any]) -> dict[str, str]:
    """What each input shows for these values (the schema's default where a value is missing).

    Secrets are left out whatever ``values`` holds: a password input is never filled in."""
    return {f.key: _as_text(f, values.get(f.name, f.default)) for f in fields if f.widget != "password"}


def typed(fields: Iterable[FormField], form: Mapping[str, str]) -> dict[str, str]:
    """What the person typed, to show again after an error (secrets excepted: they type it again)."""
    return {f.key: str(form.get(f.key, "")) for f in fields if f.widget != "password"}


def _scalar(text: str, types: tuple[str, ...]) -> Any:
    """A text for a union such as ``int | float | str``: the first type it reads as."""
    readers = {"integer": int, "number": float}
    for kind in types:
        if kind in readers:
            try:
                return readers[kind](text)
            except ValueError:
                continue
        if kind == "string":
            return text
    return text


def read(
    fields: Iterable[FormField], form: Mapping[str, str], *, keep_secrets: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The values of a submitted form (for the model to validate), and the inputs refused here:
    JSON that does not parse, a required input left empty (the form, not the model, says what is
    required: an edit's model takes a missing name as "unchanged").

    An empty input means the model's default, or ``None`` where the model allows it. An empty
    secret means "none" when creating and "keep the stored one" (``MASK``) when ``keep_secrets``.
    """
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for f in fields:
        text = str(form.get(f.key, ""))
        if f.widget == "checkbox":
            values[f.name] = f.key in form
        elif f.widget == "password":
            if text or keep_secrets:
                values[f.name] = text or MASK
        elif not text.strip():
            if f.required:
                errors[f.key] = [REQUIRED]
            elif f.nullable:
                values[f.name] = None
        elif f.widget == "lines":
            values[f.name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif f.widget == "json":
            try:
                values[f.name] = json.loads(text)
            except json.JSONDecodeError as exc:
                errors[f.key] = [f"{BAD_JSON}: {exc.msg} (line {exc.lineno}, column {exc.colno})."]
        elif f.widget == "number":
            values[f.name] = text.strip()
        elif f.widget == "text" and len(f.types) > 1:
            values[f.name] = _scalar(text.strip(), f.types)
        else:
            values[f.name] = text
    return values, errors


# -- model errors → fields ------------------------------------------------------------------------
def human(error: Mapping[str, Any], depth: int = 1) -> str:
    """A pydantic error as staff read it: no "Value error," prefix; the path inside the field, if any."""
    message = REQUIRED if error.get("type") == "missing" else str(error["msg"]).removeprefix("Value error, ")
    inside = ".".join(str(p) for p in list(error.get("loc", ()))[depth:])
    return f"{inside}: {message}" if inside else message


def place_errors(
    details: Iterable[Mapping[str, Any]], fields: Iterable[FormField]
) -> tuple[dict[str, list[str]], list[str]]:
    """Model errors (``loc``/``msg``/``type``) by field key, and those of no one field (the whole model)."""
    by_name = {f.name: f.key for f in fields}
    placed: dict[str, list[str]] = {}
    general: list[str] = []
    for error in details:
        loc = list(error.get("loc", ()))
        key = by_name.get(str(loc[0])) if loc else None
        if key is None:
            general.append(human(error, depth=0))
        else:
            placed.setdefault(key, []).append(human(error))
    return placed, general


def load_strings(path: Path) -> dict[str, Any]:
    """A ``strings.toml``: ``{lang: {"fields": {name: {"label", "help"}}}}``, as ``schema_fields`` reads it."""
    with path.open("rb") as fh:
        return tomllib.load(fh)


class FormInvalid(Exception):
    """A submitted form cannot become its model: bad JSON, a required input left empty, a bad field."""

    def __init__(self, errors: dict[str, list[str]], problems: list[str]) -> None:
        super().__init__(errors, problems)
        self.errors = errors
        self.problems = problems


def validate(
    model: type[Model], values: dict[str, Any], fields: list[FormField]
) -> tuple[Model | None, dict[str, list[str]], list[str]]:
    """``values`` as ``model``, or its errors placed on ``fields`` (and those of no one field)."""
    try:
        return model.model_validate(values), {}, []
    except ValidationError as exc:
        return None, *place_errors(exc.errors(), fields)
