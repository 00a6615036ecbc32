"""In-process publish/subscribe, usable from worker threads and the event loop alike."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, after it was committed: ``topic`` like ``sta.Observations.created``."""

    topic: str
    data: dict[str, Any]


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


class MemoryBus:
    """The default bus: everything in one process."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def on(self, pattern: str, handler: Handler) -> None:
        """Call ``handler`` synchronously, in the publisher's thread, for matching events."""
        with self._lock:
            self._handlers.append((pattern, handler))

    def subscribe(self, pattern: str) -> Subscription:
        """An async subscription; must be called from within the event loop that will read it."""
        sub = Subscription(pattern, asyncio.get_running_loop(), _bus=self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Deliver to handlers and subscribers; a failing handler is logged, never raised."""
        event = Event(topic, data)
        with self._lock:
            handlers = [h for p, h in self._handlers if _matches(p, topic)]
            subs = [s for s in self._subs if _matches(s.pattern, topic)]
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("bus handler for %s failed", topic)
        for sub in subs:
            if sub.loop.is_closed():
                self._remove(sub)
                continue
            sub.loop.call_soon_threadsafe(sub._offer, event)
