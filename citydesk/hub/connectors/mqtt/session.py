"""One MQTT 5 connection of an ``mqtt`` source: connect, subscribe, receive, acknowledge later.

Runs on the event loop as an ``asyncio.Protocol`` (no thread, no per-message wake-up): every read
from the socket is split into packets and its PUBLISHes appended to ``inbox`` in one go, and the
connector takes them in batches. PUBACKs are not sent on receipt: ``ack`` sends them, in one
write, after the batch holding the messages was committed. The broker keeps what is not
acknowledged in the persistent session (``clean_start`` false, a session expiry), so a crash
between receipt and commit means redelivery, never loss.

A session lives for one connection. When it is lost, ``gather`` raises ``ConnectorError`` and the
source runner reconnects with back-off; messages received but not acknowledged on the old
connection are delivered again by the broker on the new one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from citydesk.hub.connectors.base import ConnectorError
from citydesk.hub.connectors.mqtt import ORIGIN, wire
from citydesk.hub.connectors.mqtt.config import MqttConfig

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """A received PUBLISH, kept until its batch is committed and it can be acknowledged."""

    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Lost:
    reason: str


class Session(asyncio.Protocol):
    """A QoS 1 subscriber on one connection; ``open`` it, then ``gather`` and ``ack`` in turn."""

    def __init__(
        self, config: MqttConfig, client_id: str, *, persistent: bool, share: str | None = None
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.persistent = persistent
        # Several consumers split one stream through an MQTT 5 shared subscription.
        self.subscriptions = [f"$share/{share}/{t}" if share else t for t in config.topics]
        self.loop = asyncio.get_running_loop()
        self.inbox: deque[Message | _Lost] = deque()
        self.ready = asyncio.Event()
        self.keepalive = config.keepalive_seconds
        self._reader = wire.PacketReader()
        self._transport: asyncio.Transport | None = None
        self._replies: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._pinger: asyncio.Task[None] | None = None
        self._heard_at = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._heard_at = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self._heard_at = self.loop.time()
        was_empty = not self.inbox
        try:
            for kind, flags, body in self._reader.feed(data):
                if kind == wire.PUBLISH:
                    self._received(wire.parse_publish(flags, body))
                elif kind in (wire.CONNACK, wire.SUBACK):
                    reply = self._replies.pop(kind, None)
                    if reply is not None and not reply.done():
                        reply.set_result((kind, body))
                elif kind == wire.DISCONNECT:
                    code, props = wire.parse_disconnect(body)
                    self._lose(f"the broker disconnected us: {wire.reason_text(code, props)}")
                elif kind != wire.PINGRESP:
                    raise wire.ProtocolError(f"unexpected packet type {kind}")
        except wire.ProtocolError as exc:
            self._lose(f"the broker sent something that is not MQTT 5: {exc}")
        if was_empty and self.inbox:
            self.ready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"lost the connection to the broker: {exc or 'closed by the broker'}")

    # -- receiving ----------------------------------------------------------------------------
    def _received(self, publish: wire.Publish) -> None:
        if publish.qos == 2:
            raise wire.ProtocolError("a QoS 2 message on a QoS 1 subscription")
        if publish.properties and ORIGIN in publish.user_properties():
            # Our own SensorThings echo: not new data, nothing to keep.
            if publish.qos:
                self._send(wire.puback_packet(publish.mid))
            return
        self.inbox.append(Message(publish.mid, publish.qos, publish.topic, publish.payload))

    def _lose(self, reason: str) -> None:
        """Record the end of the connection once, behind whatever was already received."""
        if self._transport is None:
            return
        transport, self._transport = self._transport, None
        transport.close()
        self.inbox.append(_Lost(reason))
        self.ready.set()
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(ConnectorError(reason))
        self._replies.clear()

    def _send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _request(self, packet: bytes, reply_kind: int) -> bytes:
        reply: asyncio.Future[tuple[int, bytes]] = self.loop.create_future()
        self._replies[reply_kind] = reply
        self._send(packet)
        try:
            _, body = await asyncio.wait_for(reply, CONNECT_TIMEOUT)
        except TimeoutError:
            raise ConnectorError("no answer from the broker") from None
        return body

    # -- the connector's side -----------------------------------------------------------------
    async def open(self) -> None:
        """Connect and subscribe; ``ConnectorError`` says in words why the broker would not."""
        parts = urlsplit(self.config.url)
        host = parts.hostname or "127.0.0.1"
        tls = parts.scheme == "mqtts"
        port = parts.port or (8883 if tls else 1883)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: self, host, port, ssl=ssl.create_default_context() if tls else None
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectorError(f"cannot reach the broker at {host}:{port}: {exc or 'timed out'}") from None
        try:
            await self._handshake()
        except BaseException:
            await self.close()
            raise
        self._pinger = asyncio.create_task(self._ping(), name=f"mqtt keep-alive {self.client_id}")

    async def _handshake(self) -> None:
        password = self.config.password.get_secret_value() if self.config.password else None
        connect = wire.connect_packet(
            self.client_id,
            keepalive=self.config.keepalive_seconds,
            clean_start=not self.persistent,
            session_expiry=self.config.session_expiry_seconds if self.persistent else 0,
            # How many unacknowledged messages the broker may send ahead while a batch commits.
            receive_maximum=max(self.config.inflight_max, self.config.batch_max),
            username=self.config.username,
            password=password,
        )
        try:
            _, code, props = wire.parse_connack(await self._request(connect, wire.CONNACK))
        except wire.ProtocolError as exc:
            raise ConnectorError(f"the broker answered something that is not MQTT 5: {exc}") from None
        if code >= 0x80:
            raise ConnectorError(f"the broker refused us: {wire.reason_text(code, props)}")
        self.keepalive = props.get(wire.SERVER_KEEP_ALIVE, self.keepalive)
        body = await self._request(wire.subscribe_packet(1, self.subscriptions), wire.SUBACK)
        _, codes, props = wire.parse_suback(body)
        for topic, code in zip(self.subscriptions, codes, strict=False):
            if code >= 0x80:
                raise ConnectorError(
                    f"the broker refused the subscription to {topic}: {wire.reason_text(code, props)}"
                )

    async def _ping(self) -> None:
        """PINGREQ every half keep-alive; silence for 1.5 keep-alives means the link is dead."""
        if not self.keepalive:
            return
        while self._transport is not None:
            await asyncio.sleep(self.keepalive / 2)
            if self.loop.time() - self._heard_at > self.keepalive * 1.5:
                self._lose("the broker stopped answering keep-alive pings")
                return
            self._send(wire.PINGREQ_PACKET)

    async def close(self) -> None:
        """Leave without acknowledging anything still held: the broker will deliver it again."""
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None:
            self._send(wire.DISCONNECT_PACKET)
            transport, self._transport = self._transport, None
            transport.close()

    def _take(self, batch: list[Message]) -> bool:
        """Move queued messages into ``batch``; False once a lost connection is next in line."""
        inbox, limit = self.inbox, self.config.batch_max
        while inbox and len(batch) < limit:
            item = inbox[0]
            if isinstance(item, _Lost):
                return False
            batch.append(inbox.popleft())  # type: ignore[arg-type]
        return True

    async def gather(self) -> list[Message]:
        """The next batch: wait for one message, then take more for up to the batch window."""
        batch: list[Message] = []
        while not batch:
            self.ready.clear()
            if not self.inbox:
                await self.ready.wait()
            head = self.inbox[0]
            if isinstance(head, _Lost):
                raise ConnectorError(head.reason)
            self._take(batch)
        deadline = self.loop.time() + self.config.batch_window_ms / 1000
        while len(batch) < self.config.batch_max:
            if not self._take(batch):
                break  # store what arrived first; fail on the next gather
            remaining = deadline - self.loop.time()
            if len(batch) >= self.config.batch_max or remaining <= 0:
                break
            self.ready.clear()
            if not self.inbox:
                try:
                    await asyncio.wait_for(self.ready.wait(), remaining)
                except TimeoutError:
                    break
        return batch

    def ack(self, messages: list[Message]) -> None:
        """PUBACK the messages of a committed batch, in one write (QoS 0 needs none)."""
        self._send(b"".join([wire.puback_packet(m.mid) for m in messages if m.qos]))
