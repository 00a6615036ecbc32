"""What one worker keeps for the live status: the SSE feed and recently computed answers.

Built with the app object (``App.status``), so every route reaches the same instance through
``get_app`` and nothing lives at module level; everything here is rebuilt from the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from citydesk.bus import Event
from citydesk.status.stream import LiveFeed

if TYPE_CHECKING:
    from citydesk.web.app import App

ANSWER_SECONDS = 1.0
"""How long a computed status answer is served again. A wall screen, 1,000 kiosks and every
citizen's phone ask for the same figures; recomputing them (a few database queries, 10-25 ms)
for each capped two workers at ~60 requests/s in ``bench/bench_status.py``. One second is the
freshness the latest-values snapshot already has across workers, and open pages get every new
value through the stream anyway."""


class AnswerCache:
    """Encoded answers by key (measure and disclosure levels, never the user) for ``ttl`` seconds.

    When an answer expires, one request recomputes it while the others keep getting the previous
    one: under load, every request that arrived during a recomputation would otherwise recompute
    too, and a worker would spend its time on the same three queries. No lock is held while the
    database is asked.

    Emptied at once on any ``sta.*`` change, in this worker or another, so a datastream made
    internal through the API leaves every cached anonymous answer immediately, as it leaves the
    latest-values snapshot.
    """

    def __init__(self, ttl: float = ANSWER_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, bytes]] = {}
        self._computing: set[Hashable] = set()
        self._lock = threading.Lock()

    def peek(self, key: Hashable) -> bytes | None:
        """The answer if it can be served without computing (fresh, or being recomputed); cheap
        enough for the event loop, so a hit costs no thread hop."""
        now = self._clock()
        with self._lock:
            found = self._answers.get(key)
            if found is not None and (now - found[0] < self.ttl or key in self._computing):
                return found[1]
        return None

    def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The cached answer, or ``compute()``'s (stored); call from a worker thread."""
        now = self._clock()
        with self._lock:
            found = self._answers.get(key)
            if found is not None and (now - found[0] < self.ttl or key in self._computing):
                return found[1]
            self._computing.add(key)
        try:
            answer = compute()
        finally:
            with self._lock:
                self._computing.discard(key)
        with self._lock:
            self._answers[key] = (now, answer)
        return answer

    def clear(self, _: Event | None = None) -> None:
        with self._lock:
            self._answers.clear()


class LiveStatus:
    """The worker's live-status state: one feed for every stream, one cache for the JSON answers."""

    def __init__(self, app: App) -> None:
        self.feed = LiveFeed(app)
        self.answers = AnswerCache()
        app.bus.on("sta.*", self.answers.clear, remote=True)
