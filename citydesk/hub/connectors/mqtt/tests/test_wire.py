"""The MQTT 5 packet layer, checked against paho-mqtt's own encoder and decoder.

paho stays a test dependency (and the SensorThings publisher's library), which makes it an
independent second implementation to compare the bytes with.
"""

from __future__ import annotations

import struct

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citydesk.hub.connectors.mqtt import wire


def paho_properties(kind: int, **values: object) -> bytes:
    props = Properties(kind)
    for name, value in values.items():
        setattr(props, name, value)
    return bytes(props.pack())


def test_varint_boundaries() -> None:
    for n, encoded in [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ]:
        assert wire.varint(n) == encoded
        assert wire._read_varint(encoded, 0) == (n, len(encoded))
    with pytest.raises(wire.ProtocolError):
        wire._read_varint(b"\xff\xff\xff\xff\x01", 0)


def test_properties_decode_as_paho_encodes_them() -> None:
    raw = paho_properties(
        PacketTypes.CONNACK,
        SessionExpiryInterval=300,
        ReceiveMaximum=20,
        ServerKeepAlive=30,
        ReasonString="because",
        UserProperty=[("a", "1"), ("b", "2")],
    )
    props, end = wire.parse_properties(raw, 0)
    assert end == len(raw)
    assert props == {
        wire.SESSION_EXPIRY: 300,
        wire.RECEIVE_MAXIMUM: 20,
        wire.SERVER_KEEP_ALIVE: 30,
        wire.REASON_STRING: "because",
        wire.USER_PROPERTY: [("a", "1"), ("b", "2")],
    }


def test_properties_we_encode_are_what_paho_reads() -> None:
    encoded = wire._properties({wire.SESSION_EXPIRY: 604_800, wire.RECEIVE_MAXIMUM: 10_000})
    props = Properties(PacketTypes.CONNECT)
    props.unpack(encoded)
    assert getattr(props, "SessionExpiryInterval") == 604_800  # noqa: B009 (set dynamically by paho)
    assert getattr(props, "ReceiveMaximum") == 10_000  # noqa: B009


def test_connect_packet_layout() -> None:
    packet = wire.connect_packet(
        "citydesk-source-7",
        keepalive=60,
        clean_start=False,
        session_expiry=3600,
        receive_maximum=1000,
        username="sensor",
        password="s3cret",
    )
    (kind, flags, body), *rest = wire.PacketReader().feed(packet)
    assert (kind, flags, rest) == (wire.CONNECT, 0, [])
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0xC0  # user name and password, no clean start, no will
    assert struct.unpack_from("!H", body, 8) == (60,)
    props, pos = wire.parse_properties(body, 10)
    assert props == {wire.SESSION_EXPIRY: 3600, wire.RECEIVE_MAXIMUM: 1000}
    assert body[pos:] == b"\x00\x11citydesk-source-7\x00\x06sensor\x00\x06s3cret"


def test_publish_round_trip_with_and_without_properties() -> None:
    plain = wire.publish_packet("v1.1/Datastreams(3)/Observations", b'{"result":1}', qos=1, mid=513)
    tagged = wire.publish_packet(
        "t", b"x", qos=1, mid=2, properties={wire.USER_PROPERTY: [("citydesk-origin", "server")]}
    )
    quiet = wire.publish_packet("t", b"", qos=0)
    packets = wire.PacketReader().feed(plain + tagged + quiet)
    got = [wire.parse_publish(flags, body) for _, flags, body in packets]
    assert [(p.topic, p.payload, p.qos, p.mid) for p in got] == [
        ("v1.1/Datastreams(3)/Observations", b'{"result":1}', 1, 513),
        ("t", b"x", 1, 2),
        ("t", b"", 0, 0),
    ]
    assert got[1].user_properties() == [("citydesk-origin", "server")]


def test_reader_reassembles_packets_split_anywhere() -> None:
    stream = b"".join(wire.publish_packet(f"t/{i}", b"p" * (i * 40), mid=i + 1) for i in range(20))
    for cut in (1, 2, 3, 7, 64, 129):
        reader = wire.PacketReader()
        packets = []
        for start in range(0, len(stream), cut):
            packets += reader.feed(stream[start : start + cut])
        assert [wire.parse_publish(f, b).topic for _, f, b in packets] == [f"t/{i}" for i in range(20)]


def test_acks_and_replies() -> None:
    assert wire.puback_packet(258) == b"\x40\x02\x01\x02"
    assert wire.parse_connack(b"\x01\x00\x00") == (True, 0, {})  # session present, success
    reason = wire._properties({wire.REASON_STRING: "no ACL for this topic"})
    present, code, props = wire.parse_connack(b"\x00\x87" + reason)
    assert not present
    assert wire.reason_text(code, props) == "not authorized (no ACL for this topic)"
    assert wire.parse_disconnect(b"") == (0, {})  # nothing: a normal disconnection
    assert wire.parse_disconnect(b"\x8e") == (0x8E, {})
    code, props = wire.parse_disconnect(b"\x8b" + wire._properties({wire.REASON_STRING: "bye"}))
    assert wire.reason_text(code, props) == "server shutting down (bye)"
    assert wire.parse_suback(b"\x00\x01\x00\x01\x87") == (1, [1, 0x87], {})
    subscribe = wire.subscribe_packet(1, ["$share/g/a/#", "b/+"])
    assert subscribe[0] == 0x82  # SUBSCRIBE's fixed header flags are 0010


@pytest.mark.parametrize(
    "body",
    [b"\x00\x05ab", b"\x00\x01t\x00", b"\x00\x01t\x00\x01\x05\x99"],
    ids=["topic overruns", "no packet id", "unknown property"],
)
def test_malformed_publish_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_publish(0x02, body)
