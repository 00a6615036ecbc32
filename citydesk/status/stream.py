"""Live observations for open dashboards, as Server-Sent Events.

One ``LiveFeed`` per worker holds one bus subscription to ``observations.stored`` (this worker's
batches and, when ``BUS_URL`` names Redis or NATS, every other worker's) while at least one page is
connected, describes each batch once (district, measure, disclosure from the datastream catalog)
and hands every connected ``Viewer`` the part it may see, encoded once per distinct filter, so
1,000 open kiosks cost one lookup and a few encodings per batch, not 1,000.

Disclosure comes from ``DatastreamCatalog``: this worker's own changes apply at once, other
workers' when their ``sta.*`` event arrives, and at the latest after the catalog's ``max_age``.

Each viewer's queue is bounded: a client that does not read fast enough loses its oldest events,
and is then sent ``event: resync`` (``{"dropped": n}``) so that it reloads ``/api/status/air``
instead of showing a map with holes. A reconnecting client (the browser does it by itself after
``retry`` ms) should do the same: events are live notifications, not a log to replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from citydesk.bus import CompactObservations, Subscription

if TYPE_CHECKING:
    from citydesk.web.app import App

log = logging.getLogger(__name__)

PING_SECONDS = 15.0
"""Idle connections get ``event: ping`` this often, so proxies and load balancers keep them."""
RETRY_MS = 3000
"""How long the browser waits before reconnecting a dropped stream."""
VIEWER_QUEUE = 256
"""Batches waiting for one client; past this its oldest are dropped and it is told to resync."""


@dataclass(frozen=True, slots=True)
class Row:
    """One datastream's newest value in a batch, with what the filters need."""

    id: int
    district: str | None
    measure: str | None
    disclosure: str
    phenomenon_time: str
    result: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "district": self.district,
            "measure": self.measure,
            "phenomenonTime": self.phenomenon_time,
            "result": self.result,
        }


@dataclass(eq=False)
class Viewer:
    """One open stream: what it may see, which measure it asked for, and its bounded queue."""

    levels: frozenset[str]
    measure: str | None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))
    dropped: int = 0
    """Batches dropped so far because the client read too slowly."""

    def offer(self, payload: bytes) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(payload)


def encode(rows: list[Row], levels: Collection[str], measure: str | None) -> bytes | None:
    """The ``data:`` of an ``observations`` event for one filter, or None if nothing passes it."""
    shown = [
        r.as_json() for r in rows if r.disclosure in levels and (measure is None or r.measure == measure)
    ]
    if not shown:
        return None
    body: dict[str, Any] = {"datastreams": shown}
    if measure is not None:
        body = {"measure": measure, **body}
    return orjson.dumps(body)


class LiveFeed:
    """The worker's single bus subscription for live pages, fanned out to its viewers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.viewers: set[Viewer] = set()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def watch(self, levels: frozenset[str], measure: str | None) -> AsyncIterator[Viewer]:
        """A viewer that receives batches from now on; the bus is left when the last one goes."""
        viewer = Viewer(levels, measure)
        self.viewers.add(viewer)
        if self._task is None:
            self._subscription = self.app.bus.subscribe("observations.stored")
            self._task = asyncio.create_task(self._run(self._subscription), name="status-live-feed")
        try:
            yield viewer
        finally:
            self.viewers.discard(viewer)
            if not self.viewers:
                self._leave()

    def _leave(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
        self._subscription, self._task = None, None

    async def _run(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.portable is None:
                continue  # a batch that could not be reduced stays off live pages (logged by the bus)
            try:
                rows = await asyncio.to_thread(self.describe, cast(CompactObservations, event.portable))
            except Exception:
                log.exception("cannot describe a stored batch for live pages; skipped")
                continue
            self.fan_out(rows)

    def describe(self, batch: CompactObservations) -> list[Row]:
        """The batch's datastreams with district, measure and disclosure (deleted ones left out)."""
        facts = self.app.catalog.lookup(self.app.engine, {d["id"] for d in batch["datastreams"]})
        return [
            Row(d["id"], f.district_code, f.observed_property, f.disclosure, d["phenomenonTime"], d["result"])
            for d in batch["datastreams"]
            if (f := facts.get(d["id"])) is not None
        ]

    def fan_out(self, rows: list[Row]) -> None:
        encoded: dict[tuple[frozenset[str], str | None], bytes | None] = {}
        for viewer in list(self.viewers):
            key = (viewer.levels, viewer.measure)
            if key not in encoded:
                encoded[key] = encode(rows, *key)
            payload = encoded[key]
            if payload is not None:
                viewer.offer(payload)


def message(event: str, data: bytes, event_id: int) -> bytes:
    """One Server-Sent Event (``data`` is one line of JSON)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event.encode(), data)


async def events(viewer: Viewer, *, ping_seconds: float = PING_SECONDS) -> AsyncIterator[bytes]:
    """The byte stream of one viewer: a ``retry`` hint, then observations, resyncs and pings."""
    yield b"retry: %d\n: connected\n\n" % RETRY_MS
    sent = 0
    told = 0
    while True:
        try:
            async with asyncio.timeout(ping_seconds):  # no task per wait, unlike wait_for: 1,000 viewers
                payload = await viewer.queue.get()
        except TimeoutError:
            sent += 1
            yield message("ping", b"{}", sent)
            continue
        if viewer.dropped != told:
            sent += 1
            yield message("resync", orjson.dumps({"dropped": viewer.dropped - told}), sent)
            told = viewer.dropped
        sent += 1
        yield message("observations", payload, sent)


async def stream(feed: LiveFeed, levels: frozenset[str], measure: str | None) -> AsyncIterator[bytes]:
    """What ``/api/status/stream`` sends: the viewer joins the feed when the response starts."""
    async with feed.watch(levels, measure) as viewer:
        async for chunk in events(viewer):
            yield chunk


class EventStreamResponse(StreamingResponse):
    """``text/event-stream`` that stops as soon as the client disconnects.

    Starlette stops a stream only at its next write once the server speaks ASGI 2.4; a viewer
    waiting for data would hold its subscription until the next ping. Here the disconnect is
    awaited beside the stream, so the generator is cancelled (and its viewer removed) at once.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def send_all() -> None:
                with contextlib.suppress(OSError):  # the client went while we wrote
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(send_all)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
