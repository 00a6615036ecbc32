"""The one contract every connector kind follows (Home Assistant's integration shape, made small).

A connector is configured by a pydantic model (which also generates the staff form and the API
checks), proves it can reach its source in ``check`` before a source is saved, and yields
``Batch``es from ``run``. It never writes to the database: the runner stores each batch through
the ingest pipeline and only then resumes the generator, so code after ``yield`` may acknowledge
the sender (an MQTT PUBACK, a cursor advanced in ``ctx.state``). The only exception a connector
lets escape is ``ConnectorError``, whose message is shown to staff as the source's last error.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, PlainSerializer, SecretStr, SerializationInfo

from citydesk.hub.records import Batch

Mode = Literal["poll", "stream", "push"]
T = TypeVar("T")
MASK = "********"
"""What a secret config value looks like when a source is read back; sent back unchanged, it keeps
the stored value (so editing a source's interval does not require retyping its password)."""


class ConnectorError(Exception):
    """A failure staff can act on ("HTTP 401 from ...", "broker refused the connection").

    Connectors turn their library's exceptions into this one, so the runner and the API have a
    single thing to catch and a message fit for the status page; ``details`` is for the API body.
    """

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def _secret_out(value: SecretStr | None, info: SerializationInfo) -> str | None:
    if value is None:
        return None
    if info.context and info.context.get("reveal"):
        return value.get_secret_value()
    return MASK


Secret = Annotated[SecretStr, PlainSerializer(_secret_out, when_used="always")]
"""A config field never shown back: dumped as ``MASK`` unless dumped with ``context={"reveal": True}``
(which only the sources service does, to store it)."""


class ConnectorConfig(BaseModel):
    """Base of every kind's config model: unknown keys are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")

    def stored(self) -> dict[str, Any]:
        """The JSON kept in ``sources.config`` (secrets included)."""
        return self.model_dump(mode="json", context={"reveal": True})

    def shown(self) -> dict[str, Any]:
        """The JSON shown to staff (secrets masked)."""
        return self.model_dump(mode="json")


@dataclass
class RunContext:
    """What a connector gets from the runner for one run: its identity, tools and persisted cursor.

    Everything with state is passed in (the HTTP client, the clock), so tests give a mock transport
    and a fixed time, and nothing lives at module level.
    """

    source_id: int | None
    source_name: str
    http: httpx.AsyncClient
    state: dict[str, Any] = field(default_factory=dict)
    """Persisted between runs (``source_status.cursor``); change it only after a ``yield`` returns."""
    clock: Callable[[], datetime] | None = None
    timezone: str = "Asia/Seoul"
    """The zone naive source times are read in, unless the mapping names another."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("citydesk.hub.connectors"))
    file_roots: tuple[Path, ...] | None = None
    """Folders a ``file`` source may read; None (the CLI, run by the operator) means anywhere."""
    consumer: int = 0
    """Which of a stream source's consumers this run is (they share the stream; see ``slots``)."""

    def now(self) -> datetime:
        if self.clock is None:
            raise RuntimeError("RunContext has no clock")
        return self.clock()


@dataclass(frozen=True)
class Manifest:
    """A kind's ``manifest.toml``: what it is, how it runs, where its code is (imported lazily)."""

    kind: str
    name: str
    mode: Mode
    entry: str
    """``module:Class`` of the connector; imported only when a source of this kind is used."""
    config: str
    """``module:Class`` of the config model (plain pydantic: cheap to import for forms and checks)."""
    requirements: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    quality: dict[str, str] = field(default_factory=dict)
    """Quality-scale rules: ``done``, ``todo`` or ``exempt: <reason>``."""
    folder: str = ""


class Connector(ABC):
    """Base class of every connector; one instance serves every source of its kind (it holds no state)."""

    config_model: ClassVar[type[ConnectorConfig]]

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    @property
    def mode(self) -> Mode:
        return self.manifest.mode

    @abstractmethod
    async def check(self, config: Any, ctx: RunContext) -> None:
        """Connect and validate before a source is saved; raise ``ConnectorError`` with the reason."""

    @abstractmethod
    def run(self, config: Any, ctx: RunContext) -> AsyncGenerator[Batch, None]:
        """Yield batches: a poll yields one poll's batches and returns, a stream runs until cancelled."""


def chunked(items: list[T], size: int) -> list[list[T]]:
    """``items`` in slices of ``size`` (the last may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def snippet(text: str | bytes, limit: int = 200) -> str:
    """The start of a body for an error message: enough to recognise, never a whole page."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
