#!/usr/bin/python3
"""MQTT 3.1.1 conformance: malformed packets and protocol violations close the connection
(sections 1.5.3, 2.2.2, 2.3.1, 3.3.1, 3.3.2, 3.6.1, 3.8.1, 3.8.3, 3.10.1, 3.10.3, 3.14.1, 4.8)."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()
_n = [0]


def violation(data, name=None):
    """Connects, sends `data` and asserts the server closes the connection sending nothing."""
    _n[0] += 1
    c = connected(broker(), name or f"mal-{_n[0]}")
    c.send(data)
    got = c.expect_closed()
    assert got == [], f"expected a silent close, got {[p.hex() for p in got]}"


def raw_publish(first, topic_bytes, rest=b""):
    return packet(first, struct.pack("!H", len(topic_bytes)) + topic_bytes + rest)


# ---- 1.5.3 UTF-8 ---------------------------------------------------------------------------------

def test_MQTT_1_5_3_1():
    # Ill-formed UTF-8 in a topic name.
    violation(raw_publish(0x30, b"a/\xff/b", b"x"))


def test_MQTT_1_5_3_1_b():
    # Encoded surrogate U+D800 in a topic filter.
    violation(packet(0x82, b"\x00\x01" + s(b"a/\xed\xa0\x80") + b"\x00"))


def test_MQTT_1_5_3_1_c():
    # Overlong encoding of '/' in a topic name.
    violation(raw_publish(0x30, b"a\xc0\xafb", b"x"))


def test_MQTT_1_5_3_2():
    # U+0000 in a topic name.
    violation(raw_publish(0x30, b"a\x00b", b"x"))


def test_MQTT_1_5_3_2_b():
    # U+0000 in a topic filter.
    violation(packet(0x82, b"\x00\x01" + s(b"a\x00") + b"\x00"))


def test_MQTT_1_5_3_3():
    # U+FEFF (EF BB BF) is kept as is, not stripped: it is part of the topic.
    b = broker()
    topic = "\ufeffbom/t"
    sub = subscribed(b, "m1533-sub", [(topic, 0)])
    pub = connected(b, "m1533-pub")
    pub.send(publish("bom/t", "plain") + publish(topic, "bom"))
    expect_publish(sub, topic, b"bom")
    expect_nothing(sub)


# ---- 2.2.2 fixed header flags --------------------------------------------------------------------

def test_MQTT_2_2_2_1():
    # PINGREQ with a reserved flag bit set.
    violation(bytes([0xC1, 0x00]))


def test_MQTT_2_2_2_2():
    # PUBACK with reserved flags.
    violation(bytes([0x48, 0x02, 0x00, 0x01]))


def test_MQTT_2_2_2_2_b():
    # PUBCOMP and PUBREC with reserved flags.
    violation(bytes([0x72, 0x02, 0x00, 0x01]))
    violation(bytes([0x51, 0x02, 0x00, 0x01]))


# ---- 2.3.1 packet identifiers --------------------------------------------------------------------

def test_MQTT_2_3_1_1():
    # QoS 1 PUBLISH with packet id 0.
    violation(publish("m/t", "x", qos=1, packet_id=0))


def test_MQTT_2_3_1_1_b():
    # SUBSCRIBE and UNSUBSCRIBE with packet id 0.
    violation(subscribe(0, [("m/t", 0)]))
    violation(unsubscribe(0, ["m/t"]))


def test_MQTT_2_3_1_1_c():
    # QoS 2 PUBLISH with packet id 0.
    violation(publish("m/t", "x", qos=2, packet_id=0))


# ---- 3.3 PUBLISH ---------------------------------------------------------------------------------

def test_MQTT_3_3_1_2():
    # DUP=1 on a QoS 0 PUBLISH.
    violation(bytes([0x38]) + publish("m/t", "x")[1:])


def test_MQTT_3_3_1_4():
    # QoS 3 PUBLISH: closed, and not forwarded.
    b = broker()
    sub = subscribed(b, "m3314-sub", [("m3314/t", 2)])
    violation(bytes([0x36]) + publish("m3314/t", "x", qos=1, packet_id=1)[1:])
    pub = connected(b, "m3314-pub")
    pub.send(publish("m3314/t", "marker"))
    expect_publish(sub, "m3314/t", b"marker")


def test_MQTT_3_3_2_1():
    # PUBLISH too short to hold its topic name.
    violation(bytes([0x30, 0x03, 0x00, 0x05, 0x61]))


def test_MQTT_3_3_2_2():
    # Wildcards in a topic name.
    violation(publish("m/+/t", "x"))
    violation(publish("m/#", "x"))
    violation(publish("m/t+", "x", qos=1, packet_id=1))


# ---- 3.6 PUBREL, 3.8 SUBSCRIBE, 3.10 UNSUBSCRIBE, 3.14 DISCONNECT --------------------------------

def test_MQTT_3_6_1_1():
    # PUBREL with flags 0000 instead of 0010.
    c = connected(broker(), "m3611")
    c.send(publish("m3611/t", "x", qos=2, packet_id=1))
    c.expect(pubrec(1))
    c.send(bytes([0x60, 0x02, 0x00, 0x01]))
    assert c.expect_closed() == []


def test_MQTT_3_8_1_1():
    # SUBSCRIBE with flags 0000 and 0011.
    violation(packet(0x80, b"\x00\x01" + s("m/t") + b"\x00"))
    violation(packet(0x83, b"\x00\x01" + s("m/t") + b"\x00"))


def test_MQTT_3_8_3_1():
    # Topic filter that is not valid UTF-8.
    violation(packet(0x82, b"\x00\x01" + s(b"m/\xfe") + b"\x00"))


def test_MQTT_3_8_3_3():
    # SUBSCRIBE without any filter.
    violation(bytes([0x82, 0x02, 0x00, 0x01]))


def test_MQTT_3_8_3_4():
    # Reserved bits in the requested QoS byte, and QoS 3.
    violation(subscribe(1, [("m/t", 0x04)]))
    violation(subscribe(1, [("m/t", 0x81)]))
    violation(subscribe(1, [("m/t", 0x03)]))


def test_MQTT_3_8_3_4_b():
    # A bad option byte on the second filter: the whole SUBSCRIBE is refused (no SUBACK).
    violation(subscribe(1, [("m/ok", 1), ("m/t", 0x10)]))


def test_MQTT_3_10_1_1():
    # UNSUBSCRIBE with flags 0000 and 0110.
    violation(packet(0xA0, b"\x00\x01" + s("m/t")))
    violation(packet(0xA6, b"\x00\x01" + s("m/t")))


def test_MQTT_3_10_3_1():
    # UNSUBSCRIBE filter that is not valid UTF-8.
    violation(packet(0xA2, b"\x00\x01" + s(b"\xc3")))


def test_MQTT_3_10_3_2():
    # UNSUBSCRIBE without any filter.
    violation(bytes([0xA2, 0x02, 0x00, 0x01]))


# ---- 4.8 protocol violations ---------------------------------------------------------------------

def test_MQTT_4_8_0_1():
    # Packets only a server sends, reserved types, and bodies where none belong.
    violation(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK
    violation(bytes([0x90, 0x03, 0x00, 0x01, 0x00]))  # SUBACK
    violation(bytes([0xD0, 0x00]))  # PINGRESP
    violation(bytes([0x00, 0x00]))  # reserved type 0
    violation(bytes([0xF0, 0x00]))  # type 15 (AUTH) before MQTT 5
    violation(bytes([0xC0, 0x01, 0x00]))  # PINGREQ with a body
    violation(bytes([0x40, 0x03, 0x00, 0x01, 0x00]))  # PUBACK of length 3


def test_MQTT_4_8_0_1_b():
    # Remaining length longer than four bytes.
    violation(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))


def test_malformed_isolation():
    # A malformed packet from one client does not disturb another connected client.
    b = broker()
    sub = subscribed(b, "m-iso-sub", [("m-iso/t", 1)])
    pub = connected(b, "m-iso-pub")
    pub.send(publish("m-iso/t", "before", qos=1, packet_id=1))
    pub.expect(puback(1))
    pid = expect_publish(sub, "m-iso/t", b"before", qos=1)
    sub.send(puback(pid))
    for bad in (bytes([0x36, 0x00]), publish("m/#", "x"), bytes([0xC1, 0x00]),
                bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])):
        violation(bad)
        pub.send(publish("m-iso/t", "after", qos=1, packet_id=2))
        pub.expect(puback(2))
        pid = expect_publish(sub, "m-iso/t", b"after", qos=1)
        sub.send(puback(pid))
    sub.send(PINGREQ)
    sub.expect(PINGRESP)
    assert b.alive()


if __name__ == "__main__":
    main([
        test_MQTT_1_5_3_1, test_MQTT_1_5_3_1_b, test_MQTT_1_5_3_1_c, test_MQTT_1_5_3_2,
        test_MQTT_1_5_3_2_b, test_MQTT_1_5_3_3, test_MQTT_2_2_2_1, test_MQTT_2_2_2_2,
        test_MQTT_2_2_2_2_b, test_MQTT_2_3_1_1, test_MQTT_2_3_1_1_b, test_MQTT_2_3_1_1_c,
        test_MQTT_3_3_1_2, test_MQTT_3_3_1_4, test_MQTT_3_3_2_1, test_MQTT_3_3_2_2,
        test_MQTT_3_6_1_1, test_MQTT_3_8_1_1, test_MQTT_3_8_3_1, test_MQTT_3_8_3_3,
        test_MQTT_3_8_3_4, test_MQTT_3_8_3_4_b, test_MQTT_3_10_1_1, test_MQTT_3_10_3_1,
        test_MQTT_3_10_3_2, test_MQTT_4_8_0_1, test_MQTT_4_8_0_1_b, test_malformed_isolation,
    ], broker)
