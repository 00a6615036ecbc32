"""MQTT 5.0 packets as bytes: what a QoS 1 subscriber sends and receives, nothing more.

The connector used paho-mqtt, whose reader takes a system call per header byte and builds a
``Properties`` object for every message: about 70 µs of CPU a message, most of a core at the
10,000 messages/s a city's sensor fan-in needs. Here a whole socket read is split into packets in
one loop, and a PUBLISH without properties (the common case) costs a few slices. Only the packets
a subscriber needs are built: CONNECT, SUBSCRIBE, PUBACK, PINGREQ, DISCONNECT, and PUBLISH for
tools and tests that play the sensor. Section numbers refer to the OASIS MQTT 5.0 standard.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    1,
    2,
    3,
    4,
    8,
    9,
    12,
    13,
    14,
)

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # reason 0x00, normal disconnection (§3.14.2.1: may be omitted)

# §2.2.2.2: property identifier → how its value is encoded.
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _STR,  # content type
    0x08: _STR,  # response topic
    0x09: _BIN,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,  # session expiry interval
    0x12: _STR,  # assigned client identifier
    0x13: _U16,  # server keep alive
    0x15: _STR,  # authentication method
    0x16: _BIN,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _STR,  # response information
    0x1C: _STR,  # server reference
    0x1F: _STR,  # reason string
    0x21: _U16,  # receive maximum
    0x22: _U16,  # topic alias maximum
    0x23: _U16,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _PAIR,  # user property
    0x27: _U32,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifiers available
    0x2A: _BYTE,  # shared subscription available
}
SESSION_EXPIRY, SERVER_KEEP_ALIVE, REASON_STRING, RECEIVE_MAXIMUM, USER_PROPERTY = (
    0x11,
    0x13,
    0x1F,
    0x21,
    0x26,
)

REASONS = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA0: "maximum connect time",
    0xA2: "wildcard subscriptions not supported",
}


class ProtocolError(ValueError):
    """The peer sent something that is not MQTT 5 as we understand it."""


def reason_text(code: int, properties: dict[int, Any] | None = None) -> str:
    """A reason code as words, with the broker's own reason string when it sent one."""
    text = REASONS.get(code, f"reason code 0x{code:02x}")
    said = (properties or {}).get(REASON_STRING)
    return f"{text} ({said})" if said else text


# -- encoding ---------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """§1.5.5 variable byte integer."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _properties(props: dict[int, Any]) -> bytes:
    out = bytearray()
    for ident, value in props.items():
        kind = _PROPERTY_TYPES[ident]
        pairs = value if kind == _PAIR else [value]
        for item in pairs:
            out += varint(ident)
            if kind == _BYTE:
                out.append(item)
            elif kind == _U16:
                out += struct.pack("!H", item)
            elif kind == _U32:
                out += struct.pack("!I", item)
            elif kind == _VARINT:
                out += varint(item)
            elif kind in (_STR, _BIN):
                out += _string(item)
            else:
                out += _string(item[0]) + _string(item[1])
    return varint(len(out)) + bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    keepalive: int,
    clean_start: bool,
    session_expiry: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """§3.1 CONNECT, protocol level 5, no will."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    flags |= 0x02 if clean_start else 0
    props = {SESSION_EXPIRY: session_expiry, RECEIVE_MAXIMUM: receive_maximum}
    body = _string("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + _properties(props)
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def subscribe_packet(mid: int, topics: list[str], qos: int = 1) -> bytes:
    """§3.8 SUBSCRIBE; retained messages are sent on subscribe (retain handling 0)."""
    body = struct.pack("!H", mid) + _properties({})
    for topic in topics:
        body += _string(topic) + bytes([qos])
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def puback_packet(mid: int) -> bytes:
    """§3.4 PUBACK with success: the reason code and properties may be left out."""
    return b"\x40\x02" + struct.pack("!H", mid)


def publish_packet(
    topic: str, payload: bytes, *, qos: int = 1, mid: int = 0, properties: dict[int, Any] | None = None
) -> bytes:
    """§3.3 PUBLISH (used by the sensor side in tools and tests)."""
    body = _string(topic) + (struct.pack("!H", mid) if qos else b"") + _properties(properties or {})
    return _packet(PUBLISH << 4 | qos << 1, body + payload)


# -- decoding ---------------------------------------------------------------------------------
def _read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise IndexError
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than four bytes")


def parse_properties(data: bytes, pos: int) -> tuple[dict[int, Any], int]:
    """§2.2.2 properties at ``pos``: values by identifier (user properties as a list of pairs)."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    props: dict[int, Any] = {}
    try:
        while pos < end:
            ident, pos = _read_varint(data, pos)
            kind = _PROPERTY_TYPES.get(ident)
            if kind is None:
                raise ProtocolError(f"unknown property 0x{ident:02x}")
            if kind == _BYTE:
                value: Any = data[pos]
                pos += 1
            elif kind == _U16:
                (value,) = struct.unpack_from("!H", data, pos)
                pos += 2
            elif kind == _U32:
                (value,) = struct.unpack_from("!I", data, pos)
                pos += 4
            elif kind == _VARINT:
                value, pos = _read_varint(data, pos)
            else:
                first, pos = _read_string(data, pos)
                if kind == _PAIR:
                    second, pos = _read_string(data, pos)
                    props.setdefault(ident, []).append((first.decode(), second.decode()))
                    continue
                value = first.decode() if kind == _STR else first
            props[ident] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError("malformed properties") from exc
    if pos != end:
        raise ProtocolError("properties overrun their length")
    return props, end


def _read_string(data: bytes, pos: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from("!H", data, pos)
    pos += 2
    if pos + length > len(data):
        raise IndexError
    return data[pos : pos + length], pos + length


@dataclass(slots=True)
class Publish:
    """A received PUBLISH: ``mid`` is 0 for QoS 0."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    properties: dict[int, Any] = field(default_factory=dict)

    def user_properties(self) -> list[tuple[str, str]]:
        return list(self.properties.get(USER_PROPERTY, ()))


def parse_publish(flags: int, body: bytes) -> Publish:
    """§3.3: topic, packet id (QoS > 0), properties, payload."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    try:
        (tlen,) = struct.unpack_from("!H", body, 0)
        pos = 2 + tlen
        topic = body[2:pos].decode()
        mid = 0
        if qos:
            (mid,) = struct.unpack_from("!H", body, pos)
            pos += 2
        if body[pos] == 0:  # no properties: the fast, common case
            return Publish(topic, body[pos + 1 :], qos, mid)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError("malformed PUBLISH") from exc
    props, pos = parse_properties(body, pos)
    return Publish(topic, body[pos:], qos, mid, props)


def parse_connack(body: bytes) -> tuple[bool, int, dict[int, Any]]:
    """§3.2: session present, reason code, properties."""
    if len(body) < 2:
        raise ProtocolError("CONNACK too short")
    props, _ = parse_properties(body, 2) if len(body) > 2 else ({}, 2)
    return bool(body[0] & 1), body[1], props


def parse_disconnect(body: bytes) -> tuple[int, dict[int, Any]]:
    """§3.14: reason code and properties; either may be left out (then: normal, none)."""
    if not body:
        return 0, {}
    props, _ = parse_properties(body, 1) if len(body) > 1 else ({}, 1)
    return body[0], props


def parse_suback(body: bytes) -> tuple[int, list[int], dict[int, Any]]:
    """§3.9: packet id, one reason code per topic filter, properties."""
    (mid,) = struct.unpack_from("!H", body, 0)
    props, pos = parse_properties(body, 2)
    return mid, list(body[pos:]), props


class PacketReader:
    """Splits a byte stream into ``(packet type, flags, body)``; keeps a partial packet for later."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        if self._rest:
            data = self._rest + data
        packets = []
        pos, size = 0, len(data)
        try:
            while pos + 2 <= size:
                first = data[pos]
                length, start = _read_varint(data, pos + 1)
                end = start + length
                if end > size:
                    break
                packets.append((first >> 4, first & 0x0F, data[start:end]))
                pos = end
        except IndexError:
            pass  # the length itself is not complete yet
        self._rest = data[pos:]
        return packets
