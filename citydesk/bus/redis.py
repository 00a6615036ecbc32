"""Redis as the bus: pub/sub on one channel (``BUS_URL=redis://host:port/db``).

Pub/sub, not Streams: a message reaches the workers subscribed at that moment and is kept
nowhere, so a worker that is disconnected misses what was published meanwhile. That is the
bus's contract anyway (at most once, the database is the truth), and pub/sub needs no trimming,
no per-worker read positions and no memory on the Redis server.

Redis pub/sub ignores the database number (a message published "in" db 1 reaches subscribers of
every db), so the channel carries it: ``citydesk.bus.<db>``. Instances that share a Redis, such as
the internal and the public one, are kept apart by giving them different db numbers, as one would
for their keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from citydesk.bus.remote import redacted

POLL_SECONDS = 1.0
"""How long one read waits for a message; between reads redis-py pings a quiet connection."""


class RedisTransport:
    """Publishes on, and subscribes to, ``citydesk.bus.<db>``."""

    def __init__(self, url: str) -> None:
        self.url = redacted(url)
        self._raw_url = url
        self._client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        db = parse_url(url).get("db", 0)
        self.channel = f"citydesk.bus.{db}"

    async def open(self) -> None:
        # One quick retry after a failed command: after a Redis restart the pooled connection is
        # stale and the first command on it fails although the server is back. Longer outages are
        # the link's business (it reconnects with backoff), not each command's.
        self._client = aioredis.Redis.from_url(
            self._raw_url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 1),
        )
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self.channel)
        # Wait for the confirmation: from then on, every message published on the channel is ours.
        while await self._pubsub.get_message(timeout=POLL_SECONDS) is None:
            pass

    async def send(self, payloads: Sequence[bytes]) -> None:
        assert self._client is not None
        async with self._client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel, payload)
            await pipe.execute()

    async def receive(self) -> AsyncIterator[bytes]:
        assert self._pubsub is not None
        while True:
            message: dict[str, Any] | None = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=POLL_SECONDS
            )
            if message is not None and message["type"] == "message":
                yield message["data"]

    async def close(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            await pubsub.aclose()
        if client is not None:
            await client.aclose()
