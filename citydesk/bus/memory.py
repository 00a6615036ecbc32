"""In-process publish/subscribe, usable from worker threads and the event loop alike.

This is the local half of every process's bus (``citydesk.bus.process.Bus`` adds the link to
other processes). Local events carry their rich data (``StoredObservation`` objects and all) and
their portable JSON form side by side; events from other processes carry the JSON form only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from citydesk.bus.topics import portable_form

log = logging.getLogger(__name__)

Handler = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, after it was committed: ``topic`` like ``sta.created``.

    ``data`` is what the publisher gave (for a remote event: its portable form). ``portable`` is
    the JSON form that crosses processes (``citydesk.bus.topics``), or None for a topic that stays
    in its process; consumers that must treat this process's and other processes' events alike
    (live pages, the latest-values snapshot) read ``portable``. ``origin`` is None for an event
    published in this process, else the id of the process that published it.
    """

    topic: str
    data: dict[str, Any]
    portable: dict[str, Any] | None = None
    origin: str | None = None

    @property
    def remote(self) -> bool:
        return self.origin is not None


def _matches(pattern: str, topic: str) -> bool:
    return pattern == "*" or topic == pattern or (pattern.endswith(".*") and topic.startswith(pattern[:-1]))


@dataclass
class Subscription:
    """An async iterator of events for one consumer, with a bounded queue."""

    pattern: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    dropped: int = 0
    _bus: MemoryBus | None = None

    def _offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    def close(self) -> None:
        if self._bus is not None:
            self._bus._remove(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


@dataclass(frozen=True, slots=True)
class _Registration:
    pattern: str
    handler: Handler
    remote: bool


class MemoryBus:
    """Everything in one process: handlers, subscriptions, and delivery to both."""

    def __init__(self) -> None:
        self._handlers: list[_Registration] = []
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def on(self, pattern: str, handler: Handler, *, remote: bool = False) -> None:
        """Call ``handler`` synchronously for matching events.

        This process's events reach it in the publisher's thread. Other processes' events reach it
        only with ``remote=True`` (in the event loop's thread, so it must be quick): handlers with
        a side effect that must happen once per event (publishing to MQTT, raising an alert) stay
        local, so that exactly one process, the one that wrote, acts on each event.
        """
        with self._lock:
            self._handlers.append(_Registration(pattern, handler, remote))

    def subscribe(self, pattern: str) -> Subscription:
        """An async subscription to this process's events and other processes' alike.

        Must be called from within the event loop that will read it. A live page reads
        ``event.portable`` so that it shows every worker's events in one form.
        """
        sub = Subscription(pattern, asyncio.get_running_loop(), _bus=self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        """Deliver to this process's handlers and subscribers; never raises (see ``deliver``)."""
        event = Event(topic, data, portable_form(topic, data))
        self.deliver(event)
        return event

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to matching handlers and subscriptions; a failing handler is logged."""
        with self._lock:
            handlers = [
                r.handler
                for r in self._handlers
                if _matches(r.pattern, event.topic) and (r.remote or not event.remote)
            ]
            subs = [s for s in self._subs if _matches(s.pattern, event.topic)]
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("bus handler for %s failed", event.topic)
        for sub in subs:
            if sub.loop.is_closed():
                self._remove(sub)
                continue
            sub.loop.call_soon_threadsafe(sub._offer, event)
