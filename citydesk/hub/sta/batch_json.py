"""The JSON batch format (OData JSON Format 4.01 §19): ``{"requests": [...]}`` in,
``{"responses": [...]}`` out."""

from __future__ import annotations

from typing import Any

import orjson

from citydesk.errors import BadRequest
from citydesk.hub.sta.batch_model import BatchRequest, BatchResponse

MEMBERS = {"id", "method", "url", "atomicityGroup", "dependsOn", "headers", "body"}
"""``if`` (conditional requests) is not supported: a batch naming it is refused, not half-run."""


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def parse(doc: Any) -> list[BatchRequest]:
    """The requests of a JSON batch body; a malformed one refuses the whole batch (400)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise BadRequest('a JSON batch is an object {"requests": [...]}')
    out: list[BatchRequest] = []
    for i, item in enumerate(doc["requests"]):
        where = f"requests[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} is not a JSON object")
        unknown = sorted(set(item) - MEMBERS)
        if unknown:
            raise BadRequest(f"{where}: {unknown[0]!r} is not supported in a batch request")
        rid, method, url = item.get("id"), item.get("method"), item.get("url")
        if not (isinstance(rid, str) and rid and isinstance(method, str) and isinstance(url, str)):
            raise BadRequest(f"{where} needs id, method and url, each a string")
        group = item.get("atomicityGroup")
        if group is not None and not (isinstance(group, str) and group):
            raise BadRequest(f"{where}: atomicityGroup must be a string")
        depends_on = item.get("dependsOn", [])
        if not _strings(depends_on):
            raise BadRequest(f"{where}: dependsOn must be an array of request ids")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BadRequest(f"{where}: headers must be an object of strings")
        body = item.get("body")
        if body is not None and method.upper() in ("GET", "DELETE"):
            raise BadRequest(f"{where}: a {method.upper()} request has no body")
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "application/json")
        out.append(BatchRequest(rid, method.upper(), url, body, None, content_type, group, tuple(depends_on)))
    return out


def render(responses: list[BatchResponse]) -> bytes:
    return orjson.dumps({"responses": [_response(r) for r in responses]})


def _response(r: BatchResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "status": r.status}
    if r.group is not None:
        out["atomicityGroup"] = r.group
    if r.headers:
        out["headers"] = r.headers
    if r.body is not None:
        out["body"] = r.body
    return out
