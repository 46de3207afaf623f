#!/usr/bin/python3
"""MQTT 5.0 basics next to the 3.1.1 conformance suite: CONNACK properties, assigned client id,
takeover DISCONNECT, malformed packets after CONNACK, unsupported protocol level."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


def read_varint(data, i):
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def decode_props(raw):
    """Decodes an MQTT 5 property block (without its length) into {id: value or [values]}."""
    out = {}
    i = 0
    u8 = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
    u16 = {0x13, 0x21, 0x22, 0x23}
    u32 = {0x02, 0x11, 0x18, 0x27}
    strs = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
    binary = {0x09, 0x16}
    while i < len(raw):
        pid, i = read_varint(raw, i)
        if pid in u8:
            v = raw[i]
            i += 1
        elif pid in u16:
            v = struct.unpack("!H", raw[i:i + 2])[0]
            i += 2
        elif pid in u32:
            v = struct.unpack("!I", raw[i:i + 4])[0]
            i += 4
        elif pid in strs or pid in binary:
            n = struct.unpack("!H", raw[i:i + 2])[0]
            v = raw[i + 2:i + 2 + n]
            i += 2 + n
            if pid in strs:
                v = v.decode("utf-8")
        elif pid == 0x0B:
            v, i = read_varint(raw, i)
        elif pid == 0x26:
            n = struct.unpack("!H", raw[i:i + 2])[0]
            k = raw[i + 2:i + 2 + n].decode()
            i += 2 + n
            n = struct.unpack("!H", raw[i:i + 2])[0]
            v = (k, raw[i + 2:i + 2 + n].decode())
            i += 2 + n
        else:
            raise AssertionError(f"unknown property 0x{pid:02x} in {raw.hex()}")
        assert pid not in out or pid == 0x26, f"property 0x{pid:02x} twice"
        out.setdefault(pid, []).append(v) if pid == 0x26 else out.__setitem__(pid, v)
    return out


def parse_connack5(pkt):
    """Returns (session_present, reason, properties) of a v5 CONNACK."""
    assert pkt is not None and pkt[0] == 0x20, f"expected CONNACK, got {pkt.hex() if pkt else pkt}"
    length, i = read_varint(pkt, 1)
    assert len(pkt) == i + length
    flags, reason = pkt[i], pkt[i + 1]
    assert flags & 0xFE == 0, pkt.hex()
    plen, j = read_varint(pkt, i + 2)
    assert j + plen == len(pkt), f"property length mismatch in {pkt.hex()}"
    return bool(flags & 1), reason, decode_props(pkt[j:j + plen])


def parse_disconnect5(pkt):
    assert pkt is not None and pkt[0] == 0xE0, f"expected DISCONNECT, got {pkt.hex() if pkt else pkt}"
    length, i = read_varint(pkt, 1)
    assert len(pkt) == i + length
    reason = pkt[i] if length >= 1 else 0
    props = {}
    if length >= 2:
        plen, j = read_varint(pkt, i + 1)
        props = decode_props(pkt[j:j + plen])
    return reason, props


def test_v5_connack_properties():
    c = Client(broker().port)
    c.send(connect("v5-props", version=5))
    present, reason, props = parse_connack5(c.recv())
    assert (present, reason) == (False, 0)
    assert props.get(0x22) == 10, props  # Topic Alias Maximum
    assert props.get(0x27) == 16 * 1024 * 1024, props  # Maximum Packet Size
    assert 0x12 not in props, props  # no Assigned Client Identifier for a client that has one
    c.send(bytes([0xE0, 0x00]))
    assert c.expect_closed() == []


def test_v5_assigned_client_identifier():
    b = broker()
    c = Client(b.port)
    c.send(connect("", version=5))
    present, reason, props = parse_connack5(c.recv())
    assert (present, reason) == (False, 0)
    assigned = props.get(0x12)
    assert assigned, f"no Assigned Client Identifier: {props}"
    assert assigned.startswith("auto-"), assigned
    # A second empty-id client gets another id.
    c2 = Client(b.port)
    c2.send(connect("", version=5))
    _, _, props2 = parse_connack5(c2.recv())
    assert props2.get(0x12) and props2[0x12] != assigned, (assigned, props2)


def test_v5_takeover_disconnect_0x8e():
    b = broker()
    first = Client(b.port)
    first.send(connect("v5-take", version=5))
    assert parse_connack5(first.recv())[1] == 0
    second = Client(b.port)
    second.send(connect("v5-take", version=5))
    assert parse_connack5(second.recv())[1] == 0
    got = first.expect_closed()
    assert len(got) == 1, [p.hex() for p in got]
    reason, _ = parse_disconnect5(got[0])
    assert reason == 0x8E, f"reason 0x{reason:02x}"
    second.send(bytes([0xE0, 0x00]))


def test_v5_malformed_after_connack_0x81():
    c = Client(broker().port)
    c.send(connect("v5-mal", version=5))
    assert parse_connack5(c.recv())[1] == 0
    c.send(bytes([0x36]) + publish("v5/t", "x", qos=1, packet_id=1, version=5)[1:])  # QoS 3
    got = c.expect_closed()
    assert len(got) == 1, [p.hex() for p in got]
    reason, _ = parse_disconnect5(got[0])
    assert reason == 0x81, f"reason 0x{reason:02x}"


def test_v5_level6_refused():
    # An unknown protocol level gets the 3.1.1-form CONNACK 0x01, then close.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("v5-l6"), level=6))
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x01])]


if __name__ == "__main__":
    main([
        test_v5_connack_properties, test_v5_assigned_client_identifier,
        test_v5_takeover_disconnect_0x8e, test_v5_malformed_after_connack_0x81,
        test_v5_level6_refused,
    ], broker)
