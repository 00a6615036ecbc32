"""The link from one process's bus to the others, over a broker named by ``BUS_URL``.

Delivery is at most once. Events are live notifications and the database is the truth: what a
worker misses while it or the broker is away it reads from the database (the latest-values
snapshot polls every second; a live page reloads its state when it reconnects). So publishing never
waits on the broker: the writer's thread only queues the encoded event (bounded; the oldest is
dropped when full), one task sends, and while the broker is down events are dropped and counted,
the loss is logged once, and the link reconnects in the background with capped backoff.

Messages are JSON envelopes ``{"origin", "topic", "data"}``; ``origin`` is a random id per
process, so a process never takes back its own events (Redis pub/sub and JetStream consumers both
hand a publisher its own messages).

Brokers are adapters (``Transport``), imported only when ``BUS_URL`` names them, so their client
packages are optional extras (``citydesk[redis]``, ``citydesk[nats]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

from citydesk.bus.memory import Event
from citydesk.errors import BusUnavailable, InvalidSetting

log = logging.getLogger(__name__)

TRANSPORTS: dict[str, tuple[str, str]] = {
    "redis": ("citydesk.bus.redis:RedisTransport", "redis"),
    "rediss": ("citydesk.bus.redis:RedisTransport", "redis"),
    "nats": ("citydesk.bus.nats:NatsTransport", "nats"),
}
"""``BUS_URL`` scheme → (adapter class, the extra that installs its client package)."""

OPEN_TIMEOUT = 5.0
SEND_TIMEOUT = 5.0
QUEUE_LIMIT = 10_000
SEND_BATCH = 500
"""At most this many queued events go out in one round trip (a burst costs few waits on the broker)."""
"""Events waiting to be sent; past this the oldest are dropped (a burst while the broker is slow)."""
BACKOFF = (0.5, 30.0)
"""First and longest wait between reconnection attempts (doubling in between)."""


class Transport(Protocol):
    """One broker connection for publishing and receiving bus messages.

    ``RemoteLink`` owns retries: ``open`` connects (and subscribes) once or raises, ``send``
    publishes a few payloads in one round trip (in order) or raises, ``receive`` yields payloads
    until the connection is lost (then raises or ends), ``close`` is idempotent and may be called
    after a failed ``open``. A transport may be opened again after ``close``.
    """

    url: str
    """``BUS_URL`` without its password, for messages."""

    async def open(self) -> None: ...

    async def send(self, payloads: Sequence[bytes]) -> None: ...

    def receive(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


def redacted(url: str) -> str:
    """``url`` without its password (it goes into logs and the landing page)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def transport_for(url: str) -> Transport | None:
    """The adapter for ``BUS_URL`` (None for ``memory://``), imported only now."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return None
    if scheme not in TRANSPORTS:
        raise InvalidSetting(
            f"BUS_URL {redacted(url)} has an unknown scheme {scheme!r}: use memory://, "
            f"redis://host:port/db or nats://host:port"
        )
    target, extra = TRANSPORTS[scheme]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise  # our own adapter is missing: a broken install, not a missing extra
        raise InvalidSetting(
            f"BUS_URL {redacted(url)} needs the {exc.name} package: pip install 'citydesk[{extra}]'"
        ) from exc
    try:
        transport: Transport = getattr(module, class_name)(url)
    except ValueError as exc:
        raise InvalidSetting(f"BUS_URL {redacted(url)}: {exc}") from exc
    return transport


def process_id() -> str:
    """An id for this process's bus that no other process (or restarted worker) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RemoteLink:
    """Sends this process's portable events to the broker and delivers other processes' events."""

    def __init__(self, transport: Transport, deliver: Callable[[Event], None]) -> None:
        self.transport = transport
        self.origin = process_id()
        self.state = "stopped"
        self.dropped = 0
        """Events not sent: queue full, broker down, or a failed send."""
        self._deliver = deliver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._up = False
        self._generation = 0
        """Counts successful opens, so a send that failed on an old connection leaves a new one be."""

    # -- start and stop ------------------------------------------------------------------------
    def check(self) -> None:
        """Connect once and disconnect; raise ``BusUnavailable`` with the reason if that fails.

        Called while the app is built, like the database's migration check, so that a wrong or
        unreachable ``BUS_URL`` stops ``citydesk serve`` with a clear message rather than leaving
        workers that cannot see each other's events. Runs its own event loop in a helper thread,
        as the app may be built inside a running loop (uvicorn's factory).
        """

        async def probe() -> None:
            try:
                await asyncio.wait_for(self.transport.open(), OPEN_TIMEOUT)
            finally:
                await self.transport.close()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bus-check") as pool:
            try:
                pool.submit(asyncio.run, probe()).result()
            except Exception as exc:
                raise BusUnavailable(
                    f"The event bus {self.transport.url} cannot be used ({_reason(exc)}). Start it, "
                    "or set BUS_URL=memory:// to run a single process.",
                    {"bus_url": self.transport.url},
                ) from exc

    async def start(self) -> None:
        """Connect and start the sender and the receiver; if the broker is down, keep trying."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=QUEUE_LIMIT)
        opened = await self._open()
        self._tasks = [
            asyncio.create_task(self._receive_loop(opened), name="bus-receive"),
            asyncio.create_task(self._send_loop(), name="bus-send"),
        ]

    async def stop(self, drain_seconds: float = 1.0) -> None:
        """Send what is queued (for at most ``drain_seconds``), then disconnect."""
        if self._queue is not None and self._up:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_seconds)
        self._loop = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._close()
        self._up = False
        self.state = "stopped"

    # -- sending -------------------------------------------------------------------------------
    def send(self, topic: str, data: dict[str, Any]) -> None:
        """Queue an event for other processes; any thread; never blocks or raises."""
        loop = self._loop
        if loop is None:
            return  # not started (or stopped): the event stays in this process
        try:
            payload = orjson.dumps({"origin": self.origin, "topic": topic, "data": data})
        except TypeError:
            log.exception("the %s event is not JSON; it stays in this process", topic)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while stopping: nothing more is sent
            loop.call_soon_threadsafe(self._enqueue, payload)

    def _enqueue(self, payload: bytes) -> None:
        assert self._queue is not None
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
        self._queue.put_nowait(payload)

    async def _send_loop(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            payloads = [await queue.get()]
            while len(payloads) < SEND_BATCH and not queue.empty():
                payloads.append(queue.get_nowait())
            try:
                if not self._up:
                    self.dropped += len(payloads)
                    continue
                generation = self._generation
                try:
                    await asyncio.wait_for(self.transport.send(payloads), SEND_TIMEOUT)
                except Exception as exc:
                    self.dropped += len(payloads)
                    if generation == self._generation:
                        self._down(exc)
                        await self._close()  # the receiver sees the connection end and reopens it
            finally:
                for _ in payloads:
                    queue.task_done()

    # -- receiving and reconnecting ------------------------------------------------------------
    async def _receive_loop(self, opened: bool) -> None:
        delay = BACKOFF[0]
        while True:
            if not opened:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF[1])
                opened = await self._open()
                continue
            delay = BACKOFF[0]
            try:
                async for payload in self.transport.receive():
                    self._take(payload)
                raise ConnectionError("the subscription ended")
            except Exception as exc:
                self._down(exc)
            await self._close()
            opened = False

    async def _open(self) -> bool:
        try:
            await asyncio.wait_for(self.transport.open(), OPEN_TIMEOUT)
        except Exception as exc:
            self._down(exc)
            await self._close()
            return False
        if self.state != "stopped":
            log.info("event bus %s is back; events reach the other workers again", self.transport.url)
        self._generation += 1
        self._up = True
        self.state = f"connected to {self.transport.url}"
        return True

    def _take(self, payload: bytes) -> None:
        try:
            message = orjson.loads(payload)
            origin, topic, data = message["origin"], message["topic"], message["data"]
            if not (isinstance(origin, str) and isinstance(topic, str) and isinstance(data, dict)):
                raise TypeError(payload)
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning("event bus %s: ignored a message that is not a citydesk event", self.transport.url)
            return
        if origin != self.origin:
            self._deliver(Event(topic, data, data, origin))

    def _down(self, exc: BaseException) -> None:
        """Note a lost (or never made) connection; logged once per outage."""
        if self._up or self.state == "stopped":
            log.warning(
                "event bus %s is unreachable (%s): events reach only this worker until it returns; "
                "reconnecting in the background",
                self.transport.url,
                _reason(exc),
            )
        self._up = False
        self.state = f"reconnecting: {_reason(exc)}"

    async def _close(self) -> None:
        try:
            await self.transport.close()
        except Exception as exc:
            log.debug("closing the event bus connection: %s", exc)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
