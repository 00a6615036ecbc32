"""Live observations and notices for open dashboards, as Server-Sent Events.

One ``LiveFeed`` per worker holds one bus subscription to ``observations.stored`` (this worker's
batches and, when ``BUS_URL`` names Redis or NATS, every other worker's) and one to
``status.notice`` (alerts, events, commands: see ``publish_notice``) while at least one page is
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
NOTICE_TOPIC = "status.notice"
NOTICE_KINDS = frozenset({"event", "command", "layout"})
"""SSE event names a notice may carry; anything else is refused at publication."""


def publish_notice(app: App, kind: str, disclosure: str, data: dict[str, Any]) -> None:
    """Tell every open dashboard (of every worker) that something other than an observation
    changed: an event was raised or moved on, a command was sent or answered, a layout was saved.

    Call it after the change is committed. Viewers receive ``event: <kind>`` with ``data`` only if
    they may see ``disclosure``; the payload should be small (ids, status, title): pages refetch
    the details from the JSON routes, which decide disclosure field by field.
    """
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    app.bus.publish(NOTICE_TOPIC, {"kind": kind, "disclosure": disclosure, "data": data})


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
    queue: asyncio.Queue[tuple[bytes, bytes]] = field(default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))
    """(SSE event name, data) pairs."""
    dropped: int = 0
    """Messages dropped so far because the client read too slowly."""

    def offer(self, payload: bytes, event: bytes = b"observations") -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait((event, payload))


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
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []

    @asynccontextmanager
    async def watch(self, levels: frozenset[str], measure: str | None) -> AsyncIterator[Viewer]:
        """A viewer that receives batches from now on; the bus is left when the last one goes."""
        viewer = Viewer(levels, measure)
        self.viewers.add(viewer)
        if not self._tasks:
            batches = self.app.bus.subscribe("observations.stored")
            notices = self.app.bus.subscribe(NOTICE_TOPIC)
            self._subscriptions = [batches, notices]
            self._tasks = [
                asyncio.create_task(self._run(batches), name="status-live-feed"),
                asyncio.create_task(self._notices(notices), name="status-live-notices"),
            ]
        try:
            yield viewer
        finally:
            self.viewers.discard(viewer)
            if not self.viewers:
                self._leave()

    def _leave(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        for task in self._tasks:
            task.cancel()
        self._subscriptions, self._tasks = [], []

    async def _notices(self, subscription: Subscription) -> None:
        async for event in subscription:
            notice = event.portable if event.portable is not None else event.data
            kind, disclosure = notice.get("kind"), notice.get("disclosure")
            if kind not in NOTICE_KINDS or not isinstance(disclosure, str):
                log.warning("notice without a known kind or disclosure skipped: %r", notice)
                continue
            payload = orjson.dumps(notice.get("data") or {})
            name = kind.encode()
            for viewer in list(self.viewers):
                if disclosure in viewer.levels:
                    viewer.offer(payload, name)

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
    """The byte stream of one viewer: a ``retry`` hint, then observations, notices, resyncs and
    pings."""
    yield b"retry: %d\n: connected\n\n" % RETRY_MS
    sent = 0
    told = 0
    while True:
        try:
            async with asyncio.timeout(ping_seconds):  # no task per wait, unlike wait_for: 1,000 viewers
                name, payload = await viewer.queue.get()
        except TimeoutError:
            sent += 1
            yield message("ping", b"{}", sent)
            continue
        if viewer.dropped != told:
            sent += 1
            yield message("resync", orjson.dumps({"dropped": viewer.dropped - told}), sent)
            told = viewer.dropped
        sent += 1
        yield message(name.decode(), payload, sent)


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
