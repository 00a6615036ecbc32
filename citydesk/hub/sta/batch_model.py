"""What a ``$batch`` holds and answers, whichever format carried it (JSON or multipart/mixed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from citydesk.errors import CitydeskError
from citydesk.hub.sta.body import is_json_patch


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch. ``group`` is its atomicity group (a multipart change set)."""

    id: str
    method: str
    url: str
    body: Any = None
    payload: bytes | None = None
    """A multipart part's raw body, read when the request runs, so a bad one fails only it."""
    content_type: str = "application/json"
    group: str | None = None
    depends_on: tuple[str, ...] = ()
    named: bool = True
    """Whether the client gave the id (a multipart part outside a change set need not)."""

    @property
    def json_patch(self) -> bool:
        return is_json_patch(self.content_type)


@dataclass
class BatchResponse:
    """The answer to one request: status, headers (lower-case names) and body."""

    id: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    raw: bool = False
    """``body`` is text (a ``$value``), not JSON."""

    @property
    def ok(self) -> bool:
        return self.status < 400


def error_response(request: BatchRequest, error: CitydeskError) -> BatchResponse:
    """A refusal in the SensorThings error format, as the single route would send it."""
    return BatchResponse(
        request.id,
        error.status,
        {"code": error.status, "type": "error", "message": error.message},
        {k.lower(): v for k, v in (error.headers or {}).items()},
        request.group,
    )


class _Grouped(Protocol):
    @property
    def group(self) -> str | None: ...


G = TypeVar("G", bound=_Grouped)


def chunks(items: Sequence[G]) -> Iterator[list[G]]:
    """Consecutive items by atomicity group: a whole group, or one request outside any."""
    i = 0
    while i < len(items):
        j = i + 1
        if items[i].group is not None:
            while j < len(items) and items[j].group == items[i].group:
                j += 1
        yield list(items[i:j])
        i = j
