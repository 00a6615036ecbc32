"""Request bodies as JSON, read the same way for a single request and for each part of a batch."""

from __future__ import annotations

import json
from typing import Any

import orjson

from citydesk.errors import BadRequest

JSON_PATCH = "application/json-patch+json"
"""The media type of a JSON Patch (RFC 6902) body, which SensorThings 1.1 allows for PATCH."""


def is_json_patch(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == JSON_PATCH


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``. ``NaN`` and ``Infinity`` (not JSON, but what some loggers write)
    are read as numbers so that validation can refuse them with its own reason rather than "not
    JSON"."""
    if not raw.strip():
        raise BadRequest("the request has no JSON body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
