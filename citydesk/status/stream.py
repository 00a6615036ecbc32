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
instead of showing a map with holes.

A reconnecting client (the browser does it by itself after ``retry`` ms, sending the last ``id``
it saw as ``Last-Event-ID``) gets what it missed from the worker's short ``Journal`` — so an alert
raised during a kiosk's network blip still reaches it. When the journal cannot say (another
worker's id, or more was missed than it keeps), the client is told to ``resync`` instead. The
subscription stays open ``LINGER_SECONDS`` after the last viewer leaves, so a lone kiosk's
reconnect finds its events kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
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
JOURNAL_SIZE = 2048
"""Messages a worker keeps for reconnecting clients (at the demo's rate: several minutes)."""
LINGER_SECONDS = 30.0
"""How long the feed keeps listening after its last viewer left, for that viewer's reconnect."""
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
    queue: asyncio.Queue[tuple[str, bytes, bytes]] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )
    """(event id, SSE event name, data) triples."""
    dropped: int = 0
    """Messages dropped so far because the client read too slowly (or before it reconnected)."""

    def offer(self, payload: bytes, event: bytes = b"observations", event_id: str = "") -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait((event_id, event, payload))


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


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as the journal keeps it: observation rows, or a notice with its level."""

    seq: int
    name: bytes
    rows: list[Row] | None = None
    disclosure: str | None = None
    payload: bytes | None = None

    def for_viewer(self, levels: frozenset[str], measure: str | None) -> bytes | None:
        """What a viewer with these levels and this measure is sent, or None if nothing."""
        if self.rows is not None:
            return encode(self.rows, levels, measure)
        return self.payload if self.disclosure in levels else None


class Journal:
    """The worker's last ``size`` messages, numbered, for clients that reconnect.

    Ids are ``<epoch>.<seq>``: the epoch is drawn when the worker starts, so an id from another
    worker (or from before a restart) is recognised as unknown rather than misread.
    """

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        self.epoch = secrets.token_hex(4)
        self._entries: deque[Entry] = deque(maxlen=size)
        self._seq = 0

    def add(self, name: bytes, **fields: Any) -> Entry:
        self._seq += 1
        entry = Entry(self._seq, name, **fields)
        self._entries.append(entry)
        return entry

    def event_id(self, entry: Entry) -> str:
        return f"{self.epoch}.{entry.seq}"

    def since(self, last_event_id: str) -> list[Entry] | None:
        """The entries after ``last_event_id``, or None when the journal cannot tell what was
        missed (an id from elsewhere, malformed, or older than what is kept)."""
        epoch, _, seq_text = last_event_id.partition(".")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        oldest = self._entries[0].seq if self._entries else self._seq + 1
        if seq > self._seq or seq < oldest - 1:
            return None
        return [e for e in self._entries if e.seq > seq]


class LiveFeed:
    """The worker's single bus subscription for live pages, fanned out to its viewers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.viewers: set[Viewer] = set()
        self.journal = Journal()
        self.linger = LINGER_SECONDS
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._leaving: asyncio.TimerHandle | None = None

    @asynccontextmanager
    async def watch(
        self, levels: frozenset[str], measure: str | None, last_event_id: str | None = None
    ) -> AsyncIterator[Viewer]:
        """A viewer that receives batches from now on (and, given the id of the last message it
        saw, what it missed); the bus is left ``linger`` seconds after the last one goes."""
        viewer = Viewer(levels, measure)
        if last_event_id:
            self._catch_up(viewer, last_event_id)
        self.viewers.add(viewer)
        if self._leaving is not None:
            self._leaving.cancel()
            self._leaving = None
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
                self._leaving = asyncio.get_running_loop().call_later(self.linger, self._leave)

    def _catch_up(self, viewer: Viewer, last_event_id: str) -> None:
        missed = self.journal.since(last_event_id)
        if missed is None:
            viewer.dropped = 1  # unknown gap: the client is told to resync before anything else
            return
        for entry in missed:
            payload = entry.for_viewer(viewer.levels, viewer.measure)
            if payload is not None:
                viewer.offer(payload, entry.name, self.journal.event_id(entry))

    def _leave(self) -> None:
        self._leaving = None
        if self.viewers:
            return
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
            entry = self.journal.add(
                kind.encode(), disclosure=disclosure, payload=orjson.dumps(notice.get("data") or {})
            )
            self._deliver(entry)

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
        self._deliver(self.journal.add(b"observations", rows=rows))

    def _deliver(self, entry: Entry) -> None:
        """Journal's newest entry to every viewer that may see it, encoded once per filter."""
        event_id = self.journal.event_id(entry)
        encoded: dict[tuple[frozenset[str], str | None], bytes | None] = {}
        for viewer in list(self.viewers):
            key = (viewer.levels, viewer.measure)
            if key not in encoded:
                encoded[key] = entry.for_viewer(*key)
            payload = encoded[key]
            if payload is not None:
                viewer.offer(payload, entry.name, event_id)


def message(event: bytes, data: bytes, event_id: str = "") -> bytes:
    """One Server-Sent Event (``data`` is one line of JSON). Pings and resyncs carry no id, so
    the browser's ``Last-Event-ID`` stays that of the last real message."""
    head = b"id: %s\n" % event_id.encode() if event_id else b""
    return head + b"event: %s\ndata: %s\n\n" % (event, data)


async def events(viewer: Viewer, *, ping_seconds: float = PING_SECONDS) -> AsyncIterator[bytes]:
    """The byte stream of one viewer: a ``retry`` hint, then observations, notices, resyncs and
    pings."""
    yield b"retry: %d\n: connected\n\n" % RETRY_MS
    told = 0
    while True:
        if viewer.dropped != told:
            yield message(b"resync", orjson.dumps({"dropped": viewer.dropped - told}))
            told = viewer.dropped
        try:
            async with asyncio.timeout(ping_seconds):  # no task per wait, unlike wait_for: 1,000 viewers
                event_id, name, payload = await viewer.queue.get()
        except TimeoutError:
            yield message(b"ping", b"{}")
            continue
        if viewer.dropped != told:  # lost while this one waited in the queue: say so first
            yield message(b"resync", orjson.dumps({"dropped": viewer.dropped - told}))
            told = viewer.dropped
        yield message(name, payload, event_id)


async def stream(
    feed: LiveFeed, levels: frozenset[str], measure: str | None, last_event_id: str | None = None
) -> AsyncIterator[bytes]:
    """What ``/api/status/stream`` sends: the viewer joins the feed when the response starts."""
    async with feed.watch(levels, measure, last_event_id) as viewer:
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
