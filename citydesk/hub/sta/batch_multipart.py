"""The multipart/mixed batch format: the one the SensorThings 1.1 batch conformance class names
(§11, adapted from OData 4.0 Protocol §11.7).

Each part is an ``application/http`` request (request line, headers, body) or a change set: a
nested multipart whose parts form one atomicity group (named by its boundary). The response
mirrors the request part for part; a change set that failed is answered by a single part, its
error, as OData requires.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import HTTP
from http import HTTPStatus
from typing import cast
from uuid import uuid4

import orjson

from citydesk.errors import BadRequest
from citydesk.hub.sta.batch_model import BatchRequest, BatchResponse, chunks

REQUEST_LINE = re.compile(r"([A-Za-z]+)[ \t]+(\S+)(?:[ \t]+HTTP/\d(?:\.\d)?)?")
CRLF = b"\r\n"


def parse(content_type: str, raw: bytes) -> list[BatchRequest]:
    """The requests of a multipart batch body; a malformed one refuses the whole batch (400)."""
    message = cast(
        EmailMessage,
        message_from_bytes(
            b"Content-Type: " + content_type.encode("latin-1") + CRLF + CRLF + raw, policy=HTTP
        ),
    )
    if not message.is_multipart():
        raise BadRequest("a multipart batch needs a boundary, and parts that start with it")
    out: list[BatchRequest] = []
    for part in message.iter_parts():
        part = cast(EmailMessage, part)
        if part.get_content_type() == "multipart/mixed":
            group = part.get_boundary() or f"changeset-{len(out) + 1}"
            out += [
                _request(cast(EmailMessage, sub), group, len(out) + i)
                for i, sub in enumerate(part.iter_parts())
            ]
        else:
            out.append(_request(part, None, len(out)))
    return out


def _request(part: EmailMessage, group: str | None, index: int) -> BatchRequest:
    where = f"batch part {index + 1}"
    if part.get_content_type() != "application/http":
        raise BadRequest(f"{where} is {part.get_content_type()}, not application/http")
    payload = part.get_payload(decode=True)
    message = payload if isinstance(payload, bytes) else b""
    head, _, body = message.replace(CRLF, b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    match = REQUEST_LINE.fullmatch(lines[0].strip())
    if match is None:
        raise BadRequest(f"{where} does not start with a request line such as 'GET Things(1) HTTP/1.1'")
    headers = {
        name.strip().lower(): value.strip()
        for name, sep, value in (line.partition(":") for line in lines[1:])
        if sep
    }
    content_id = part.get("Content-ID") or headers.get("content-id")
    return BatchRequest(
        id=str(content_id) if content_id else f"#{index + 1}",
        method=match[1].upper(),
        url=match[2],
        payload=body if body.strip() else None,
        content_type=headers.get("content-type", "application/json"),
        group=group,
        named=bool(content_id),
    )


def render(requests: list[BatchRequest], responses: list[BatchResponse]) -> tuple[str, bytes]:
    """The multipart response: one part per request, a nested multipart per change set."""
    named = {r.id for r in requests if r.named}
    parts: list[bytes] = []
    for chunk in chunks(responses):
        failed = [r for r in chunk if not r.ok]
        if chunk[0].group is None or failed:
            # A change set that failed answers with one part: the error that failed it.
            cause = next((r for r in failed if r.status != HTTPStatus.FAILED_DEPENDENCY), None)
            parts.append(_part(cause or (failed or chunk)[0], named))
            continue
        boundary = f"changesetresponse_{uuid4()}"
        parts.append(
            f"Content-Type: multipart/mixed; boundary={boundary}".encode()
            + CRLF
            + CRLF
            + _multipart(boundary, [_part(r, named) for r in chunk])
        )
    boundary = f"batchresponse_{uuid4()}"
    return f"multipart/mixed; boundary={boundary}", _multipart(boundary, parts)


def _part(response: BatchResponse, named: set[str]) -> bytes:
    head = ["Content-Type: application/http"]
    if response.id in named:
        head.append(f"Content-ID: {response.id}")
    body = b""
    headers = dict(response.headers)
    if response.body is not None:
        body = str(response.body).encode() if response.raw else orjson.dumps(response.body)
        headers.setdefault("content-type", "text/plain" if response.raw else "application/json")
    status = f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"
    lines = [*head, "", status, *(f"{_title(k)}: {v}" for k, v in headers.items()), ""]
    return "\r\n".join(lines).encode() + CRLF + body


def _title(name: str) -> str:
    return "-".join(word.capitalize() for word in name.split("-"))


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + CRLF + part + CRLF for part in parts) + delimiter + b"--" + CRLF
