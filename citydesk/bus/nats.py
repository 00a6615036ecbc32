"""NATS JetStream as the bus (``BUS_URL=nats://host:port`` or ``nats://host:port/<name>``).

Every event goes into one JetStream stream (``<NAME>_BUS``, subject ``<name>.bus``, default name
``citydesk``) that keeps at most ``MAX_AGE_SECONDS`` of events in the server's memory. Each worker
reads it through an ordered consumer that starts at the newest event. The stream is what JetStream
adds over core NATS: when a worker loses its connection and reconnects within ``MAX_AGE_SECONDS``,
it resumes after the last event it saw, so a short network blip or a reconnect costs it nothing.
Beyond that it is at most once like Redis (the database is the truth); memory storage because
these are live notifications, not records: a NATS restart may lose the last minute, as a Redis
restart loses its pub/sub traffic. The stream is created (or its limits updated) on every connect,
so it reappears after such a restart.

The path names the stream, so that instances sharing a NATS server (the internal and the public
one) are kept apart: ``nats://nats:4222/citydesk_public``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, ServiceUnavailableError

from citydesk.bus.remote import redacted

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 60.0
"""How long the stream keeps an event: the longest reconnect a worker survives without loss."""
MAX_BYTES = 64 * 1024 * 1024
"""And at most this much of them (the oldest go first), whatever the rate."""
PUBLISH_TIMEOUT = 2.0
QUIET_CHECK_SECONDS = 30.0
"""After this long without an event, check that the stream was not deleted under the consumer."""
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class NatsTransport:
    """Publishes to the stream (waiting for its acknowledgements) and reads it in order."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        name = parts.path.strip("/") or "citydesk"
        if not _NAME.fullmatch(name):
            raise ValueError(f"the stream name {name!r} may have only letters, digits, _ and -")
        self.url = redacted(url)
        self.subject = f"{name}.bus"
        self.stream = f"{name.upper()}_BUS"
        self._server = urlunsplit(parts._replace(path="", query="", fragment=""))
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: Subscription | None = None
        self._position: tuple[datetime | None, int] | None = None
        """(the stream's creation time, the last stream sequence read): where to resume."""
        self._failure: Exception | None = None
        """The last error the client reported, the reason behind its "no servers available"."""

    async def open(self) -> None:
        # No reconnecting inside the client: the link reconnects, and resumes the stream here. The
        # client's own first-connect loop would retry for two minutes and then say only "no
        # servers available", so it tries twice and the reason it got is what we raise.
        self._failure = None
        try:
            self._nc = await nats.connect(
                self._server,
                name="citydesk-bus",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=2,
                error_cb=self._on_error,
            )
        except NoServersError:
            raise self._failure or ConnectionError("no NATS server answered") from None
        self._js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT)
        info = await self._ensure_stream(self._js)
        if self._position is not None and info.created is not None and self._position[0] == info.created:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._position[1] + 1
            )
        else:  # first connect, or the stream was made anew (a NATS restart): from now on
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            self._position = (info.created, info.state.last_seq)
        self._sub = await self._js.subscribe(
            self.subject, stream=self.stream, ordered_consumer=True, config=config
        )

    async def _ensure_stream(self, js: JetStreamContext) -> StreamInfo:
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            storage=StorageType.MEMORY,
            max_age=MAX_AGE_SECONDS,
            max_bytes=MAX_BYTES,
            discard=DiscardPolicy.OLD,
        )
        try:
            return await js.add_stream(config)
        except ServiceUnavailableError:
            raise ConnectionError("this NATS server has no JetStream: run it with -js") from None
        except BadRequestError:
            # It exists with other settings (an older citydesk's limits, or an operator's choice of
            # file storage or replicas): bring the limits to ours, keep what cannot change.
            existing = (await js.stream_info(self.stream)).config
            config.storage, config.num_replicas = existing.storage, existing.num_replicas
            return await js.update_stream(config)

    async def send(self, payloads: Sequence[bytes]) -> None:
        """Publish all, then wait for the stream's acknowledgements (one round trip, not one each)."""
        assert self._js is not None
        acks = [await self._js.publish_async(self.subject, p, stream=self.stream) for p in payloads]
        await asyncio.gather(*acks)

    async def receive(self) -> AsyncIterator[bytes]:
        assert self._js is not None and self._sub is not None and self._position is not None
        js, sub, created = self._js, self._sub, self._position[0]
        while True:
            try:
                msg = await sub.next_msg(timeout=QUIET_CHECK_SECONDS)
            except NatsTimeoutError:
                # Quiet for a while: make sure the stream is still the one we read. If it was
                # deleted (and maybe made anew by another worker) the client's consumer would wait
                # for sequence numbers that the new stream reaches much later, or never.
                if (await js.stream_info(self.stream)).created != created:
                    raise ConnectionError("the stream was made anew") from None
                continue
            self._position = (created, msg.metadata.sequence.stream)
            yield msg.data

    async def close(self) -> None:
        nc = self._nc
        self._nc = self._js = self._sub = None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        self._failure = exc
        log.debug("nats: %s", exc)  # the link logs the outage once; this is its detail
