"""JSON Patch (RFC 6902), which SensorThings 1.1 allows for updates (``application/json-patch+json``).

Only what an entity's JSON needs: objects and arrays, the six operations, JSON Pointer paths
(RFC 6901). The patch applies to a copy; any failing operation (a ``test`` included) refuses the
whole patch with a 400.
"""

from __future__ import annotations

import copy
from typing import Any

from citydesk.errors import ValidationFailed

OPS = ("add", "remove", "replace", "move", "copy", "test")


def _tokens(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise ValidationFailed(f"JSON Patch: {pointer!r} is not a JSON Pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _index(container: list[Any], token: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise ValidationFailed(f"JSON Patch: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not adding):
        raise ValidationFailed(f"JSON Patch: index {i} is out of range")
    return i


def _parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    """The container holding the last token's target, and that token."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, adding=False)]
        else:
            raise ValidationFailed(f"JSON Patch: path /{'/'.join(tokens)} does not exist")
    return node, tokens[-1]


def _get(doc: Any, pointer: Any) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return doc
    node, last = _parent(doc, tokens)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list):
        return node[_index(node, last, adding=False)]
    raise ValidationFailed(f"JSON Patch: path {pointer} does not exist")


def _remove(doc: Any, pointer: Any) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        raise ValidationFailed("JSON Patch: the whole entity cannot be removed")
    node, last = _parent(doc, tokens)
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list):
        return node.pop(_index(node, last, adding=False))
    raise ValidationFailed(f"JSON Patch: path {pointer} does not exist")


def _add(doc: Any, pointer: Any, value: Any) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    node, last = _parent(doc, tokens)
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        node.insert(_index(node, last, adding=True), value)
    else:
        raise ValidationFailed(f"JSON Patch: path {pointer} does not exist")
    return doc


def apply(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """``doc`` with the operations ``ops`` applied (``doc`` itself is left unchanged)."""
    if not isinstance(ops, list):
        raise ValidationFailed("a JSON Patch body is an array of operations")
    out: Any = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in OPS:
            raise ValidationFailed(f"JSON Patch: {op!r} is not an operation ({', '.join(OPS)})")
        name, path = op["op"], op.get("path")
        if name in ("add", "replace", "test") and "value" not in op:
            raise ValidationFailed(f"JSON Patch: {name} needs a value")
        if name == "add":
            out = _add(out, path, copy.deepcopy(op["value"]))
        elif name == "remove":
            _remove(out, path)
        elif name == "replace":
            _get(out, path)
            out = _add(_remove_for_replace(out, path), path, copy.deepcopy(op["value"]))
        elif name == "move":
            value = _remove(out, op.get("from"))
            out = _add(out, path, value)
        elif name == "copy":
            out = _add(out, path, copy.deepcopy(_get(out, op.get("from"))))
        elif _get(out, path) != op["value"]:
            raise ValidationFailed(f"JSON Patch: test failed at {path}")
    if not isinstance(out, dict):
        raise ValidationFailed("JSON Patch: the result is not a JSON object")
    return dict(out)


def _remove_for_replace(doc: Any, pointer: Any) -> Any:
    if _tokens(pointer):
        _remove(doc, pointer)
    return doc
