"""The registry of connector kinds: discovered from ``*/manifest.toml``, imported only when used.

Built-in kinds are found exactly the way a plugin's would be (a folder with a manifest), so there
is no list of built-ins to keep in sync. A manifest names its connector and config classes by
dotted path (pygeoapi style): config models are plain pydantic and are imported for forms and API
checks, while ``connector.py`` (which may need paho-mqtt or a database driver) is imported only
when a source of that kind is checked or run. ``validate_manifests`` is what ``citydesk check``
and the test suite run: every manifest complete, every config field labelled in every language.
"""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from citydesk.errors import ValidationFailed
from citydesk.hub.connectors.base import Connector, ConnectorConfig, ConnectorError, Manifest, Mode

BUILTIN_FOLDER = Path(__file__).parent
REQUIRED_KEYS = ("kind", "name", "mode", "entry", "config", "requirements", "owners", "quality")
LANGUAGES = ("en", "ko")
MODES: tuple[str, ...] = get_args(Mode)


def _load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _import(dotted: str) -> Any:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def read_manifest(path: Path) -> Manifest:
    """Parse one ``manifest.toml`` (missing keys raise ``KeyError``; ``validate_manifests`` reports them)."""
    raw = _load_toml(path)
    return Manifest(
        kind=raw["kind"],
        name=raw["name"],
        mode=raw["mode"],
        entry=raw["entry"],
        config=raw["config"],
        requirements=tuple(raw.get("requirements", ())),
        owners=tuple(raw.get("owners", ())),
        quality=dict(raw.get("quality", {})),
        folder=str(path.parent),
    )


class ConnectorRegistry:
    """Kinds by name; loaded connector instances are kept per registry (one per app), never globally."""

    def __init__(self, folders: Iterable[Path] = (BUILTIN_FOLDER,)) -> None:
        self._manifests: dict[str, Manifest] = {}
        self._loaded: dict[str, Connector] = {}
        for folder in folders:
            self.add_folder(folder)

    def add_folder(self, folder: Path) -> None:
        """Register every ``<kind>/manifest.toml`` below ``folder`` (how plugins add kinds)."""
        for path in sorted(Path(folder).glob("*/manifest.toml")):
            self.register(read_manifest(path))

    def register(self, manifest: Manifest) -> None:
        self._manifests[manifest.kind] = manifest
        self._loaded.pop(manifest.kind, None)

    def kinds(self) -> list[str]:
        return sorted(self._manifests)

    def manifest(self, kind: str) -> Manifest:
        try:
            return self._manifests[kind]
        except KeyError:
            raise ValidationFailed(
                f"unknown connector kind {kind!r}", details={"known": self.kinds()}
            ) from None

    def config_model(self, kind: str) -> type[ConnectorConfig]:
        model = _import(self.manifest(kind).config)
        if not (isinstance(model, type) and issubclass(model, ConnectorConfig)):
            raise TypeError(f"{kind}: config {self.manifest(kind).config} is not a ConnectorConfig")
        return model

    def parse_config(self, kind: str, raw: dict[str, Any]) -> ConnectorConfig:
        """Validate a config against its kind's schema; errors become a 400 listing each field."""
        try:
            return self.config_model(kind).model_validate(raw)
        except ValidationError as exc:
            details = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()
            ]
            first = details[0]
            raise ValidationFailed(
                f"config.{'.'.join(first['loc'])}: {first['msg']}", details=details
            ) from None

    def connector(self, kind: str) -> Connector:
        """The connector of ``kind``, importing its module on first use."""
        if kind not in self._loaded:
            manifest = self.manifest(kind)
            try:
                cls = _import(manifest.entry)
            except ImportError as exc:
                needs = ", ".join(manifest.requirements) or "nothing extra"
                raise ConnectorError(
                    f"connector {kind!r} cannot be loaded ({exc}); it needs {needs}"
                ) from exc
            self._loaded[kind] = cls(manifest)
        return self._loaded[kind]

    def strings(self, kind: str) -> dict[str, Any]:
        path = Path(self.manifest(kind).folder) / "strings.toml"
        return _load_toml(path) if path.exists() else {}

    def describe(self, kind: str) -> dict[str, Any]:
        """What the staff form and ``GET /api/hub/connectors`` need: manifest, JSON schema, strings."""
        m = self.manifest(kind)
        return {
            "kind": m.kind,
            "name": m.name,
            "mode": m.mode,
            "requirements": list(m.requirements),
            "owners": list(m.owners),
            "quality": m.quality,
            "schema": self.config_model(kind).model_json_schema(),
            "strings": self.strings(kind),
        }

    def validate_manifests(self) -> list[str]:
        """Every problem with every kind's manifest and strings file; empty when all is well."""
        problems: list[str] = []
        for kind in self.kinds():
            problems += [f"{kind}: {p}" for p in _manifest_problems(self.manifest(kind))]
        return problems


def _quality_problems(quality: dict[str, Any]) -> list[str]:
    bad = []
    for rule, state in quality.items():
        ok = state in ("done", "todo") or (
            isinstance(state, str) and state.startswith("exempt:") and state[7:].strip()
        )
        if not ok:
            bad.append(f"quality rule {rule!r} is {state!r}: use done, todo or 'exempt: <reason>'")
    return bad


def _strings_problems(strings: dict[str, Any], fields: list[str]) -> list[str]:
    problems = []
    for lang in LANGUAGES:
        block = strings.get(lang)
        if not isinstance(block, dict):
            problems.append(f"strings.toml has no [{lang}] table")
            continue
        for key in ("title", "description"):
            if not str(block.get(key, "")).strip():
                problems.append(f"strings.toml [{lang}] lacks {key}")
        labelled = block.get("fields", {})
        for name in fields:
            if not str(labelled.get(name, {}).get("label", "")).strip():
                problems.append(f"strings.toml [{lang}] has no label for config field {name!r}")
        problems += [f"strings.toml [{lang}] labels unknown field {n!r}" for n in labelled if n not in fields]
    return problems


def _manifest_problems(m: Manifest) -> list[str]:
    folder = Path(m.folder)
    raw = _load_toml(folder / "manifest.toml")
    problems = [f"manifest.toml lacks {key!r}" for key in REQUIRED_KEYS if key not in raw]
    if m.kind != folder.name:
        problems.append(f"manifest kind {m.kind!r} differs from its folder {folder.name!r}")
    if m.mode not in MODES:
        problems.append(f"mode {m.mode!r} is not one of {', '.join(MODES)}")
    problems += _quality_problems(m.quality)
    module = m.entry.partition(":")[0]
    if ":" not in m.entry or importlib.util.find_spec(module) is None:
        problems.append(f"entry {m.entry!r} does not name an importable module:Class")
    if not (folder / "tests").is_dir():
        problems.append("has no tests/ folder")
    try:
        model = _import(m.config)
    except (ImportError, AttributeError, ValueError) as exc:
        return [*problems, f"config {m.config!r} cannot be imported: {exc}"]
    if not (isinstance(model, type) and issubclass(model, ConnectorConfig)):
        return [*problems, f"config {m.config!r} is not a ConnectorConfig"]
    strings_path = folder / "strings.toml"
    if not strings_path.exists():
        return [*problems, "has no strings.toml"]
    return problems + _strings_problems(_load_toml(strings_path), list(model.model_fields))
