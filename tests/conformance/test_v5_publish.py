#!/usr/bin/python3
"""MQTT 5.0 conformance: PUBLISH and its acknowledgements (2.2.1, 3.3 to 3.7), the QoS flows (4.3),
ordering (4.6), flow control (4.9), Maximum Packet Size and topic aliases (3.1.2-24 to 3.1.2-27).
Publishers and subscribers are placed on different workers of the 4-worker broker."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()
# At most 2 inbound QoS 2 messages awaiting PUBREL; payloads above 10 bytes are refused.
small = SharedBroker(config="receive_maximum 2\nmessage_size_limit 10\n")
SMALL_CONNACK_PROPS = p_u16(0x21, 2) + V5_CONNACK_PROPS

PUBACK_REASON_CODES = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}
PUBREC_REASON_CODES = PUBACK_REASON_CODES
PUBREL_REASON_CODES = {0x00, 0x92}
PUBCOMP_REASON_CODES = {0x00, 0x92}


def pair(b, prefix, filters, sub_props=b"", **kw):
    """A subscriber (worker 1, subscribed to filters) and a publisher (worker 2)."""
    sub = subscribed5(b, id_on_worker(prefix + "-sub", 1), filters, sub_props=sub_props, **kw)
    pub = connected5(b, id_on_worker(prefix + "-pub", 2))
    return sub, pub


def publish_acked(pub, topic, payload, qos, pid, props=b"", retain=False, reason=None):
    """Publishes and completes the publisher's side of the QoS flow (PUBACK with `reason`)."""
    pub.send(publish5(topic, payload, qos=qos, pid=pid, props=props, retain=retain))
    if qos == 1:
        pub.expect(ack5(0x40, pid, reason))
    elif qos == 2:
        pub.expect(ack5(0x50, pid))
        pub.send(ack5(0x62, pid))
        pub.expect(ack5(0x70, pid))


# ---- 2.2.1 Packet Identifier -------------------------------------------------------------------------

def test_MQTT_2_2_1_2():
    # A QoS 0 PUBLISH from the server has no Packet Identifier: 30, length, topic, 00, payload.
    sub, pub = pair(broker(), "p2212", [("p2212/t", 2)])
    pub.send(publish5("p2212/t", "zero"))
    sub.expect(bytes([0x30, 0x0E, 0x00, 0x07]) + b"p2212/t" + b"\x00" + b"zero")


def test_MQTT_2_2_1_3():
    # Client requirement; the server treats a QoS 1 PUBLISH with Packet Identifier 0 as malformed.
    c = connected5(broker(), "p2213")
    c.send(publish5("p2213/t", "x", qos=1, pid=0))
    expect_disconnect5(c, 0x81)


def test_MQTT_2_2_1_4():
    # Ten QoS 1 messages in flight at once carry ten different non-zero Packet Identifiers, and an
    # identifier freed by PUBACK is the only kind reused while the others are still in flight.
    sub, pub = pair(broker(), "p2214", [("p2214/t", 1)])
    for i in range(10):
        publish_acked(pub, "p2214/t", f"m{i}", 1, i + 1)
    ids = [expect_publish5(sub, "p2214/t", f"m{i}".encode(), qos=1) for i in range(10)]
    assert len(set(ids)) == 10 and 0 not in ids, ids
    sub.send(ack5(0x40, ids[0]))
    publish_acked(pub, "p2214/t", "m10", 1, 11)
    new = expect_publish5(sub, "p2214/t", b"m10", qos=1)
    assert new not in ids[1:], (new, ids)
    for pid in ids[1:] + [new]:
        sub.send(ack5(0x40, pid))


def test_MQTT_2_2_1_5():
    # PUBACK, PUBREC, PUBCOMP from the server carry the client's identifier (0x1234, 0xABCD); the
    # server's PUBREL carries the identifier of its own PUBLISH.
    sub, pub = pair(broker(), "p2215", [("p2215/t", 2)])
    pub.send(publish5("p2215/t", "one", qos=1, pid=0x1234))
    pub.expect(bytes([0x40, 0x02, 0x12, 0x34]))
    pid = expect_publish5(sub, "p2215/t", b"one", qos=1)
    sub.send(ack5(0x40, pid))
    pub.send(publish5("p2215/t", "two", qos=2, pid=0xABCD))
    pub.expect(bytes([0x50, 0x02, 0xAB, 0xCD]))
    pub.send(bytes([0x62, 0x02, 0xAB, 0xCD]))
    pub.expect(bytes([0x70, 0x02, 0xAB, 0xCD]))
    pid = expect_publish5(sub, "p2215/t", b"two", qos=2)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))


# ---- 3.1.2 Maximum Packet Size and Topic Alias Maximum of the client --------------------------------

def test_MQTT_3_1_2_24():
    # Client Maximum Packet Size 40: a 41-byte PUBLISH is not sent to it, a 40-byte one is.
    sub, pub = pair(broker(), "p31224", [("p31224/t", 0)], props=p_u32(0x27, 40))
    small_one = publish5("p31224/t", b"s" * 27)
    big_one = publish5("p31224/t", b"b" * 28)
    assert (len(small_one), len(big_one)) == (40, 41)
    pub.send(big_one)
    pub.send(small_one)
    sub.expect(small_one)
    expect_nothing(sub)


def test_MQTT_3_1_2_25():
    # A QoS 1 message too large for the client is discarded as if its delivery had completed: with
    # Receive Maximum 1 the next message goes out at once (the window is not held), and the large one
    # is never sent later.
    sub, pub = pair(broker(), "p31225", [("p31225/t", 1)], props=p_u32(0x27, 40) + p_u16(0x21, 1))
    publish_acked(pub, "p31225/t", b"B" * 60, 1, 1)
    publish_acked(pub, "p31225/t", b"ok", 1, 2)
    pid = expect_publish5(sub, "p31225/t", b"ok", qos=1)
    sub.send(ack5(0x40, pid))
    expect_nothing(sub)


def test_MQTT_3_1_2_26():
    # Client Topic Alias Maximum 2: the first two topics get aliases 1 and 2 (sent once with the
    # topic, then with an empty topic); a third topic never gets an alias.
    sub, pub = pair(broker(), "p31226", [("p31226/#", 0)], props=p_u16(0x22, 2))
    for t in ["p31226/a", "p31226/b", "p31226/c", "p31226/a", "p31226/c", "p31226/b"]:
        pub.send(publish5(t, t[-1]))
    sub.expect(publish5("p31226/a", "a", props=p_u16(0x23, 1)))
    sub.expect(publish5("p31226/b", "b", props=p_u16(0x23, 2)))
    sub.expect(publish5("p31226/c", "c"))
    sub.expect(publish5("", "a", props=p_u16(0x23, 1)))
    sub.expect(publish5("p31226/c", "c"))
    sub.expect(publish5("", "b", props=p_u16(0x23, 2)))


def test_MQTT_3_1_2_27():
    # Topic Alias Maximum absent, or 0: no Topic Alias, however often a topic repeats.
    b = broker()
    for cid, props in [("p31227-a", b""), ("p31227-z", p_u16(0x22, 0))]:
        sub, pub = pair(b, cid, [("p31227/t", 0)], props=props)
        for _ in range(3):
            pub.send(publish5("p31227/t", "r"))
        for _ in range(3):
            sub.expect(publish5("p31227/t", "r"))


# ---- 3.3.1 PUBLISH fixed header ----------------------------------------------------------------------

def test_MQTT_3_3_1_2():
    # Client requirement on its QoS 0 PUBLISH; the server treats QoS 0 with DUP 1 as malformed.
    c = connected5(broker(), "p3312")
    c.send(bytes([0x38]) + publish5("p3312/t", "x")[1:])
    expect_disconnect5(c, 0x81)


def test_MQTT_3_3_1_3():
    # An incoming PUBLISH with DUP 1 is forwarded with DUP 0: the outgoing DUP is the server's own.
    sub, pub = pair(broker(), "p3313", [("p3313/t", 1)])
    pub.send(publish5("p3313/t", "dup", qos=1, pid=5, dup=True))
    pub.expect(ack5(0x40, 5))
    pid = expect_publish5(sub, "p3313/t", b"dup", qos=1, dup=False)
    sub.send(ack5(0x40, pid))


def test_MQTT_3_3_1_4():
    # Both QoS bits set: Malformed Packet.
    c = connected5(broker(), "p3314")
    c.send(bytes([0x36]) + publish5("p3314/t", "x", qos=1, pid=1)[1:])
    expect_disconnect5(c, 0x81)


def test_MQTT_3_3_1_5():
    # RETAIN 1 stores the message and its QoS, replacing the previous one.
    b = broker()
    pub = connected5(b, id_on_worker("p3315-pub", 2))
    publish_acked(pub, "p3315/t", "first", 1, 1, retain=True, reason=0x10)  # no subscriber yet
    publish_acked(pub, "p3315/t", "second", 1, 2, retain=True, reason=0x10)
    late = subscribed5(b, id_on_worker("p3315-late", 3), [("p3315/t", 2)])
    pid = expect_publish5(late, "p3315/t", b"second", qos=1, retain=True)
    late.send(ack5(0x40, pid))
    expect_nothing(late)
    publish_acked(pub, "p3315/t", b"", 0, 0, retain=True)


def test_MQTT_3_3_1_6():
    # A zero-byte retained PUBLISH is delivered as usual and removes the retained message.
    b = broker()
    sub, pub = pair(b, "p3316", [("p3316/t", 0)])
    pub.send(publish5("p3316/t", "kept", retain=True))
    expect_publish5(sub, "p3316/t", b"kept")
    pub.send(publish5("p3316/t", b"", retain=True))
    expect_publish5(sub, "p3316/t", b"")
    late = subscribed5(b, "p3316-late", [("p3316/t", 0)])
    expect_nothing(late)
    pub.send(publish5("p3316/t", "marker"))
    expect_publish5(late, "p3316/t", b"marker")


def test_MQTT_3_3_1_7():
    # A zero-byte retained message is never stored (no retained message existed before).
    b = broker()
    pub = connected5(b, "p3317-pub")
    pub.send(publish5("p3317/t", b"", retain=True))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    late = subscribed5(b, "p3317-late", [("p3317/#", 0)])
    expect_nothing(late)
    pub.send(publish5("p3317/t", "marker"))
    expect_publish5(late, "p3317/t", b"marker")


def test_MQTT_3_3_1_8():
    # RETAIN 0 neither stores the message nor replaces or removes the retained one.
    b = broker()
    pub = connected5(b, "p3318-pub")
    pub.send(publish5("p3318/t", "retained", retain=True))
    pub.send(publish5("p3318/t", "live"))
    pub.send(publish5("p3318/u", "live"))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    late = subscribed5(b, "p3318-late", [("p3318/#", 0)])
    expect_publish5(late, "p3318/t", b"retained", retain=True)
    expect_nothing(late)
    pub.send(publish5("p3318/t", b"", retain=True))


# ---- 3.3.2 PUBLISH variable header -------------------------------------------------------------------

def test_MQTT_3_3_2_1():
    # A Topic Name that is not UTF-8: Malformed Packet.
    c = connected5(broker(), "p3321")
    c.send(publish5(b"p3321/\xfe", "x"))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_3_2_2():
    # Wildcards in a Topic Name: DISCONNECT 0x90 (Topic Name invalid).
    b = broker()
    for t in ["p3322/+", "p3322/#"]:
        c = connected5(b, "p3322")
        c.send(publish5(t, "x"))
        expect_disconnect5(c, 0x90)


def test_MQTT_3_3_2_3():
    # The Topic Name sent to a subscriber is the published one, which its filter matches.
    sub, pub = pair(broker(), "p3323", [("p3323/+/x/#", 0)])
    pub.send(publish5("p3323/a/x/b/c", "m"))
    pub.send(publish5("p3323/a/y/b", "no"))
    pub.send(publish5("p3323/q/x", "m2"))
    expect_publish5(sub, "p3323/a/x/b/c", b"m")
    expect_publish5(sub, "p3323/q/x", b"m2")
    expect_nothing(sub)


def test_MQTT_3_3_2_4():
    # Payload Format Indicator 1 (UTF-8) and 0 (bytes) reach the subscriber unaltered.
    sub, pub = pair(broker(), "p3324", [("p3324/t", 0)])
    pub.send(publish5("p3324/t", "héllo", props=p_byte(0x01, 1)))
    pub.send(publish5("p3324/t", b"\xff\x00", props=p_byte(0x01, 0)))
    expect_publish5(sub, "p3324/t", "héllo".encode(), props=p_byte(0x01, 1))
    expect_publish5(sub, "p3324/t", b"\xff\x00", props=p_byte(0x01, 0))


def test_MQTT_3_3_2_4_b():
    # A Payload Format Indicator 1 whose payload is not UTF-8: PUBACK 0x99, not forwarded.
    sub, pub = pair(broker(), "p3324b", [("p3324b/t", 0)])
    pub.send(publish5("p3324b/t", b"\xc3\x28", qos=1, pid=3, props=p_byte(0x01, 1)))
    pub.expect(ack5(0x40, 3, 0x99))
    pub.send(publish5("p3324b/t", "marker"))
    expect_publish5(sub, "p3324b/t", b"marker")


def test_MQTT_3_3_2_5():
    # A message whose expiry passes while it waits in the session (Receive Maximum 1, the first
    # message unacknowledged) is not sent; a message without expiry behind it is.
    sub, pub = pair(broker(), "p3325", [("p3325/t", 1)], props=p_u16(0x21, 1))
    publish_acked(pub, "p3325/t", "first", 1, 1)
    publish_acked(pub, "p3325/t", "expires", 1, 2, props=p_u32(0x02, 1))
    publish_acked(pub, "p3325/t", "stays", 1, 3)
    pid = expect_publish5(sub, "p3325/t", b"first", qos=1)
    time.sleep(2.2)
    sub.send(ack5(0x40, pid))
    pid = expect_publish5(sub, "p3325/t", b"stays", qos=1)
    sub.send(ack5(0x40, pid))
    expect_nothing(sub)


def test_MQTT_3_3_2_5_b():
    # Retained messages expire too: 2.2 s after they were stored, a new subscription gets the one with
    # Message Expiry Interval 100 (as 98, the time waited taken off) but not the one with 1.
    b = broker()
    pub = connected5(b, id_on_worker("p3325b-pub", 2))
    pub.send(publish5("p3325b/short", "gone", retain=True, props=p_u32(0x02, 1)))
    pub.send(publish5("p3325b/long", "kept", retain=True, props=p_u32(0x02, 100)))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    time.sleep(2.2)
    sub = subscribed5(b, id_on_worker("p3325b-sub", 1), [("p3325b/+", 0)])
    got = sub.recv()
    assert got in [publish5("p3325b/long", "kept", retain=True, props=p_u32(0x02, v)) for v in (98, 97)], \
        got.hex() if got else got
    expect_nothing(sub)
    pub.send(publish5("p3325b/long", b"", retain=True))


def test_MQTT_3_3_2_6():
    # The Message Expiry Interval sent is the received one minus the time the message waited:
    # unchanged when forwarded at once, 2 s less after waiting 2.2 s behind an unacknowledged one.
    sub, pub = pair(broker(), "p3326", [("p3326/t", 1)], props=p_u16(0x21, 1))
    publish_acked(pub, "p3326/t", "now", 1, 1, props=p_u32(0x02, 100))
    pid = expect_publish5(sub, "p3326/t", b"now", qos=1, props=p_u32(0x02, 100))
    publish_acked(pub, "p3326/t", "later", 1, 2, props=p_u32(0x02, 100))
    time.sleep(2.2)
    sub.send(ack5(0x40, pid))
    got = sub.recv()
    pid = parse_publish(got, 5)["pid"]
    allowed = [publish5("p3326/t", "later", qos=1, pid=pid, props=p_u32(0x02, v)) for v in (98, 97)]
    assert got in allowed, f"got {got.hex()}, expected Message Expiry Interval 98 (or 97)"
    sub.send(ack5(0x40, pid))


def test_MQTT_3_3_2_7():
    # Topic alias mappings do not outlive the connection: a client that set alias 1 and reconnects
    # cannot use it (Protocol Error); outbound, the server sends the topic again after a reconnect.
    b = broker()
    sub = subscribed5(b, id_on_worker("p3327-sub", 1), [("p3327/t", 0)])
    c = connected5(b, id_on_worker("p3327-pub", 2))
    c.send(publish5("p3327/t", "set", props=p_u16(0x23, 1)))
    c.send(publish5("", "use", props=p_u16(0x23, 1)))
    expect_publish5(sub, "p3327/t", b"set")
    expect_publish5(sub, "p3327/t", b"use")
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected5(b, id_on_worker("p3327-pub", 2))
    c.send(publish5("", "stale", props=p_u16(0x23, 1)))
    expect_disconnect5(c, 0x82)
    expect_nothing(sub)


def test_MQTT_3_3_2_7_b():
    # Outbound: a subscriber that reconnects (session resumed) gets the topic with alias 1 again.
    b = broker()
    cid = id_on_worker("p3327b-sub", 1)
    sub = subscribed5(b, cid, [("p3327b/t", 0)], props=p_u16(0x22, 5) + p_u32(0x11, 60))
    pub = connected5(b, id_on_worker("p3327b-pub", 2))
    pub.send(publish5("p3327b/t", "1"))
    pub.send(publish5("p3327b/t", "2"))
    sub.expect(publish5("p3327b/t", "1", props=p_u16(0x23, 1)))
    sub.expect(publish5("", "2", props=p_u16(0x23, 1)))
    sub.send(DISCONNECT)
    sub.expect_closed()
    sub = connected5(b, cid, clean=False, session_present=True, props=p_u16(0x22, 5))
    pub.send(publish5("p3327b/t", "3"))
    sub.expect(publish5("p3327b/t", "3", props=p_u16(0x23, 1)))
    sub.send(DISCONNECT)


def test_MQTT_3_3_2_8():
    # Topic Alias 0 from a client: DISCONNECT 0x94 (Topic Alias invalid).
    c = connected5(broker(), "p3328")
    c.send(publish5("p3328/t", "x", props=p_u16(0x23, 0)))
    expect_disconnect5(c, 0x94)


def test_MQTT_3_3_2_9():
    # Client requirement; a Topic Alias above the server's Topic Alias Maximum (10): DISCONNECT 0x94.
    c = connected5(broker(), "p3329")
    c.send(publish5("p3329/t", "x", props=p_u16(0x23, 11)))
    expect_disconnect5(c, 0x94)


def test_MQTT_3_3_2_11():
    # Client Topic Alias Maximum 1: only the first topic gets an alias, never alias 2 or more.
    sub, pub = pair(broker(), "p33211", [("p33211/#", 0)], props=p_u16(0x22, 1))
    for t in ["p33211/a", "p33211/b", "p33211/b", "p33211/a"]:
        pub.send(publish5(t, "x"))
    sub.expect(publish5("p33211/a", "x", props=p_u16(0x23, 1)))
    sub.expect(publish5("p33211/b", "x"))
    sub.expect(publish5("p33211/b", "x"))
    sub.expect(publish5("", "x", props=p_u16(0x23, 1)))


def test_MQTT_3_3_2_12():
    # The server accepts every alias from 1 to its Topic Alias Maximum (10), set and reused.
    sub, pub = pair(broker(), "p33212", [("p33212/#", 0)])
    for a in range(1, 11):
        pub.send(publish5(f"p33212/{a}", "set", props=p_u16(0x23, a)))
    for a in (10, 1, 5):
        pub.send(publish5("", "use", props=p_u16(0x23, a)))
    for a in range(1, 11):
        expect_publish5(sub, f"p33212/{a}", b"set")
    for a in (10, 1, 5):
        expect_publish5(sub, f"p33212/{a}", b"use")


def test_MQTT_3_3_2_12_b():
    # A known alias can be re-pointed at another topic.
    sub, pub = pair(broker(), "p33212b", [("p33212b/#", 0)])
    pub.send(publish5("p33212b/x", "1", props=p_u16(0x23, 3)))
    pub.send(publish5("p33212b/y", "2", props=p_u16(0x23, 3)))
    pub.send(publish5("", "3", props=p_u16(0x23, 3)))
    expect_publish5(sub, "p33212b/x", b"1")
    expect_publish5(sub, "p33212b/y", b"2")
    expect_publish5(sub, "p33212b/y", b"3")


def test_MQTT_3_3_2_13():
    # A Response Topic that is not UTF-8: Malformed Packet.
    c = connected5(broker(), "p33213")
    c.send(publish5("p33213/t", "x", props=p_str(0x08, b"resp/\xff")))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_3_2_14():
    # A Response Topic with a wildcard: Protocol Error.
    c = connected5(broker(), "p33214")
    c.send(publish5("p33214/t", "x", props=p_str(0x08, "resp/#")))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_3_2_15():
    sub, pub = pair(broker(), "p33215", [("p33215/t", 0)])
    props = p_str(0x08, "p33215/reply/é")
    pub.send(publish5("p33215/t", "q", props=props))
    expect_publish5(sub, "p33215/t", b"q", props=props)


def test_MQTT_3_3_2_16():
    # Correlation Data (binary, with 00 and FF bytes) reaches the subscriber unaltered.
    sub, pub = pair(broker(), "p33216", [("p33216/t", 1)])
    props = p_str(0x08, "p33216/reply") + p_str(0x09, b"\x00\xff\x01corr")
    publish_acked(pub, "p33216/t", "q", 1, 9, props=props)
    pid = expect_publish5(sub, "p33216/t", b"q", qos=1, props=props)
    sub.send(ack5(0x40, pid))


def test_MQTT_3_3_2_17():
    # User Properties (empty key and value, non-ASCII) reach the subscriber unaltered.
    sub, pub = pair(broker(), "p33217", [("p33217/t", 0)])
    props = p_user("k", "v") + p_user("", "") + p_user("ключ", "значение")
    pub.send(publish5("p33217/t", "u", props=props))
    expect_publish5(sub, "p33217/t", b"u", props=props)


def test_MQTT_3_3_2_18():
    # User Properties keep their order, repeated keys included, at every QoS.
    sub, pub = pair(broker(), "p33218", [("p33218/t", 2)])
    props = p_user("b", "2") + p_user("a", "1") + p_user("b", "1") + p_user("a", "0")
    publish_acked(pub, "p33218/t", "o", 2, 4, props=props)
    pid = expect_publish5(sub, "p33218/t", b"o", qos=2, props=props)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))


def test_MQTT_3_3_2_19():
    # A Content Type that is not UTF-8: Malformed Packet.
    c = connected5(broker(), "p33219")
    c.send(publish5("p33219/t", "x", props=p_str(0x03, b"text/\xc0\xaf")))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_3_2_20():
    # Content Type reaches the subscriber unaltered, next to the other properties.
    sub, pub = pair(broker(), "p33220", [("p33220/t", 0)])
    props = (p_byte(0x01, 1) + p_u32(0x02, 3600) + p_str(0x03, "application/json; charset=utf-8") +
             p_str(0x08, "p33220/r") + p_str(0x09, b"id-1") + p_user("x", "y"))
    pub.send(publish5("p33220/t", '{"a":1}', props=props))
    expect_publish5(sub, "p33220/t", b'{"a":1}', props=props)


# ---- 3.3.4 PUBLISH actions ---------------------------------------------------------------------------

def test_MQTT_3_3_4_1():
    # QoS 0: no answer; QoS 1: PUBACK; QoS 2: PUBREC (and PUBCOMP for the PUBREL).
    c = connected5(broker(), "p3341")
    c.send(subscribe5(1, [("p3341/t", 0)]))
    c.expect(suback5(1, 0))
    c.send(publish5("p3341/t", "q0"))
    expect_publish5(c, "p3341/t", b"q0")
    c.send(publish5("p3341/t", "q1", qos=1, pid=2))
    got = [c.recv(), c.recv()]
    assert ack5(0x40, 2) in got and publish5("p3341/t", "q1") in got, [p.hex() for p in got]
    c.send(publish5("p3341/t", "q2", qos=2, pid=3))
    c.expect(ack5(0x50, 3))
    c.send(ack5(0x62, 3))
    got = [c.recv(), c.recv()]
    assert ack5(0x70, 3) in got and publish5("p3341/t", "q2") in got, [p.hex() for p in got]
    expect_nothing(c)


def test_MQTT_3_3_4_2():
    # Overlapping subscriptions (QoS 0 and QoS 2): one copy at QoS 2.
    sub, pub = pair(broker(), "p3342", [("p3342/#", 0), ("p3342/a", 2)])
    publish_acked(pub, "p3342/a", "max", 2, 1)
    pid = expect_publish5(sub, "p3342/a", b"max", qos=2)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))
    expect_nothing(sub)


def test_MQTT_3_3_4_3():
    # Overlapping subscriptions with Subscription Identifiers 1 and 2: both are in the PUBLISH.
    b = broker()
    sub = connected5(b, id_on_worker("p3343-sub", 1))
    sub.send(subscribe5(1, [("p3343/#", 0)], props=p_varint(0x0B, 1)))
    sub.expect(suback5(1, 0))
    sub.send(subscribe5(2, [("p3343/+", 0)], props=p_varint(0x0B, 2)))
    sub.expect(suback5(2, 0))
    pub = connected5(b, id_on_worker("p3343-pub", 2))
    pub.send(publish5("p3343/a", "ids"))
    got = sub.recv()
    allowed = [publish5("p3343/a", "ids", props=p_varint(0x0B, x) + p_varint(0x0B, y))
               for x, y in ((1, 2), (2, 1))]
    assert got in allowed, got.hex() if got else got
    expect_nothing(sub)


def test_MQTT_3_3_4_4():
    # One copy for three overlapping subscriptions: it carries the identifiers of the two that have
    # one (5 and 268435455, the largest), and nothing for the third.
    b = broker()
    sub = connected5(b, id_on_worker("p3344-sub", 1))
    sub.send(subscribe5(1, [("p3344/#", 1)], props=p_varint(0x0B, 5)))
    sub.expect(suback5(1, 1))
    sub.send(subscribe5(2, [("p3344/+", 0)]))
    sub.expect(suback5(2, 0))
    sub.send(subscribe5(3, [("p3344/b", 0)], props=p_varint(0x0B, 268435455)))
    sub.expect(suback5(3, 0))
    pub = connected5(b, id_on_worker("p3344-pub", 2))
    publish_acked(pub, "p3344/b", "one", 1, 1)
    got = sub.recv()
    pid = parse_publish(got, 5)["pid"]
    ids = [p_varint(0x0B, 5), p_varint(0x0B, 268435455)]
    allowed = [publish5("p3344/b", "one", qos=1, pid=pid, props=ids[0] + ids[1]),
               publish5("p3344/b", "one", qos=1, pid=pid, props=ids[1] + ids[0])]
    assert got in allowed, got.hex()
    sub.send(ack5(0x40, pid))
    expect_nothing(sub)


def test_MQTT_3_3_4_6():
    # A Subscription Identifier in a client's PUBLISH: Protocol Error.
    c = connected5(broker(), "p3346")
    c.send(publish5("p3346/t", "x", props=p_varint(0x0B, 3)))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_3_4_7():
    # Client requirement; a third QoS 2 PUBLISH awaiting PUBREL over the server's Receive Maximum 2:
    # DISCONNECT 0x93 (Receive Maximum exceeded).
    c = connected5(small(), "p3347", connack_props=SMALL_CONNACK_PROPS)
    for pid in (1, 2):
        c.send(publish5("p3347/t", "x", qos=2, pid=pid))
        c.expect(ack5(0x50, pid))
    c.send(publish5("p3347/t", "x", qos=2, pid=3))
    expect_disconnect5(c, 0x93)


def test_MQTT_3_3_4_7_b():
    # Completing a flow frees its place: PUBREL / PUBCOMP, then a third QoS 2 PUBLISH is accepted.
    c = connected5(small(), "p3347b", connack_props=SMALL_CONNACK_PROPS)
    for pid in (1, 2):
        c.send(publish5("p3347b/t", "x", qos=2, pid=pid))
        c.expect(ack5(0x50, pid))
    c.send(ack5(0x62, 1))
    c.expect(ack5(0x70, 1))
    c.send(publish5("p3347b/t", "x", qos=2, pid=3))
    c.expect(ack5(0x50, 3))


def test_MQTT_3_3_4_9():
    # Client Receive Maximum 2: of four QoS 1 messages only two are sent until one is acknowledged.
    sub, pub = pair(broker(), "p3349", [("p3349/t", 1)], props=p_u16(0x21, 2))
    for i in range(4):
        publish_acked(pub, "p3349/t", f"m{i}", 1, i + 1)
    p0 = expect_publish5(sub, "p3349/t", b"m0", qos=1)
    p1 = expect_publish5(sub, "p3349/t", b"m1", qos=1)
    expect_nothing(sub, 0.5)
    sub.send(ack5(0x40, p0))
    p2 = expect_publish5(sub, "p3349/t", b"m2", qos=1)
    expect_nothing(sub)
    sub.send(ack5(0x40, p1) + ack5(0x40, p2))
    p3 = expect_publish5(sub, "p3349/t", b"m3", qos=1)
    sub.send(ack5(0x40, p3))


def test_MQTT_3_3_4_10():
    # With its send quota at 0 (Receive Maximum 1, one QoS 1 message unacknowledged) the server still
    # answers PINGREQ, SUBSCRIBE and UNSUBSCRIBE at once, and sends QoS 0 messages.
    sub, pub = pair(broker(), "p33410", [("p33410/t", 1)], props=p_u16(0x21, 1))
    publish_acked(pub, "p33410/t", "held", 1, 1)
    publish_acked(pub, "p33410/t", "waits", 1, 2)
    pid = expect_publish5(sub, "p33410/t", b"held", qos=1)
    sub.send(PINGREQ)
    sub.expect(PINGRESP)
    sub.send(subscribe5(7, [("p33410/zero", 0)]))
    sub.expect(suback5(7, 0))
    pub.send(publish5("p33410/zero", "q0"))
    expect_publish5(sub, "p33410/zero", b"q0")
    sub.send(unsubscribe5(8, ["p33410/zero"]))
    sub.expect(unsuback5(8, 0))
    sub.send(ack5(0x40, pid))
    pid = expect_publish5(sub, "p33410/t", b"waits", qos=1)
    sub.send(ack5(0x40, pid))


# ---- 3.4 to 3.7 acknowledgements -------------------------------------------------------------------

def test_MQTT_3_4_2_1():
    # The server's PUBACK reason codes: 0x00 (short form), 0x10 No matching subscribers, 0x99
    # Payload format invalid, 0x87 Not authorized ($SYS is read-only).
    b = small()
    sub = subscribed5(b, "p3421-sub", [("p3421/t", 0)], connack_props=SMALL_CONNACK_PROPS)
    c = connected5(b, "p3421", connack_props=SMALL_CONNACK_PROPS)
    cases = [(publish5("p3421/t", "x", qos=1, pid=1), ack5(0x40, 1)),
             (publish5("p3421/none", "x", qos=1, pid=2), ack5(0x40, 2, 0x10)),
             (publish5("p3421/t", b"\xff", qos=1, pid=3, props=p_byte(0x01, 1)), ack5(0x40, 3, 0x99)),
             (publish5("$SYS/p3421", "x", qos=1, pid=5), ack5(0x40, 5, 0x87))]
    for data, want in cases:
        c.send(data)
        c.expect(want)
        assert (want[4] if len(want) > 4 else 0) in PUBACK_REASON_CODES
    expect_publish5(sub, "p3421/t", b"x")
    expect_nothing(sub)


def test_MQTT_3_4_2_1_b():
    # A payload above message_size_limit (10) is refused with a PUBACK error code from the PUBACK
    # table (0x95 Packet too large is not one of them), and not forwarded.
    b = small()
    sub = subscribed5(b, "p3421b-sub", [("p3421b/t", 0)], connack_props=SMALL_CONNACK_PROPS)
    c = connected5(b, "p3421b", connack_props=SMALL_CONNACK_PROPS)
    c.send(publish5("p3421b/t", b"x" * 11, qos=1, pid=4))
    got = c.recv()
    assert got is not None and got[:4] == bytes([0x40, 0x03, 0x00, 0x04]), got.hex() if got else got
    assert got[4] >= 0x80 and got[4] in PUBACK_REASON_CODES, \
        f"PUBACK reason 0x{got[4]:02x} is not a PUBACK Reason Code"
    expect_nothing(sub)


def test_MQTT_3_5_2_1():
    # The server's PUBREC reason codes: 0x00 and 0x99 Payload format invalid.
    c = connected5(small(), "p3521", connack_props=SMALL_CONNACK_PROPS)
    cases = [(publish5("p3521/t", "x", qos=2, pid=1), ack5(0x50, 1)),
             (publish5("p3521/t", b"\xfe", qos=2, pid=2, props=p_byte(0x01, 1)), ack5(0x50, 2, 0x99))]
    for data, want in cases:
        c.send(data)
        c.expect(want)
        assert (want[4] if len(want) > 4 else 0) in PUBREC_REASON_CODES
    c.send(ack5(0x62, 1))
    c.expect(ack5(0x70, 1))


def test_MQTT_3_5_2_1_b():
    # A QoS 2 payload above message_size_limit (10): PUBREC with an error code from the PUBREC table
    # (0x95 is not one of them).
    c = connected5(small(), "p3521b", connack_props=SMALL_CONNACK_PROPS)
    c.send(publish5("p3521b/t", b"y" * 11, qos=2, pid=3))
    got = c.recv()
    assert got is not None and got[:4] == bytes([0x50, 0x03, 0x00, 0x03]), got.hex() if got else got
    assert got[4] >= 0x80 and got[4] in PUBREC_REASON_CODES, \
        f"PUBREC reason 0x{got[4]:02x} is not a PUBREC Reason Code"


def test_MQTT_3_6_1_1():
    # PUBREL with flags 0000 instead of 0010: Malformed Packet.
    c = connected5(broker(), "p3611")
    c.send(publish5("p3611/t", "x", qos=2, pid=1))
    c.expect(ack5(0x50, 1))
    c.send(bytes([0x60, 0x02, 0x00, 0x01]))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_6_2_1():
    # The server's PUBREL reason codes: 0x00 after a PUBREC for its PUBLISH, 0x92 (Packet Identifier
    # not found) after a PUBREC for an identifier it never used.
    sub, pub = pair(broker(), "p3621", [("p3621/t", 2)])
    publish_acked(pub, "p3621/t", "x", 2, 1)
    pid = expect_publish5(sub, "p3621/t", b"x", qos=2)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))
    sub.send(ack5(0x50, 0x7777))
    sub.expect(bytes([0x62, 0x03, 0x77, 0x77, 0x92]))


def test_MQTT_3_7_2_1():
    # The server's PUBCOMP reason codes: 0x00 for a known PUBREL, 0x92 for an unknown identifier.
    c = connected5(broker(), "p3721")
    c.send(publish5("p3721/t", "x", qos=2, pid=4))
    c.expect(ack5(0x50, 4))
    c.send(ack5(0x62, 4))
    c.expect(ack5(0x70, 4))
    c.send(ack5(0x62, 4))
    c.expect(bytes([0x70, 0x03, 0x00, 0x04, 0x92]))
    assert 0x92 in PUBCOMP_REASON_CODES and 0x92 in PUBREL_REASON_CODES


# ---- 4.3 Quality of Service levels and protocol flows -----------------------------------------------

def test_MQTT_4_3_1_1():
    # QoS 0 delivery: QoS 0 and DUP 0 (first byte 30), also when the subscription allows QoS 2.
    sub, pub = pair(broker(), "p4311", [("p4311/t", 2)])
    pub.send(publish5("p4311/t", "fire"))
    got = sub.recv()
    assert got == publish5("p4311/t", "fire") and got[0] == 0x30, got.hex()


def test_MQTT_4_3_2_1():
    # QoS 1: each new message gets an identifier not in use (five unacknowledged at once).
    sub, pub = pair(broker(), "p4321", [("p4321/t", 1)])
    for i in range(5):
        publish_acked(pub, "p4321/t", f"{i}", 1, 1)  # the publisher reuses its id after each PUBACK
    ids = [expect_publish5(sub, "p4321/t", f"{i}".encode(), qos=1) for i in range(5)]
    assert len(set(ids)) == 5, ids
    for pid in ids:
        sub.send(ack5(0x40, pid))


def test_MQTT_4_3_2_2():
    # QoS 1: the PUBLISH has the identifier, QoS 1 and DUP 0 (first byte 32).
    sub, pub = pair(broker(), "p4322", [("p4322/t", 1)])
    publish_acked(pub, "p4322/t", "one", 1, 1)
    got = sub.recv()
    assert got[0] == 0x32, got.hex()
    pid = parse_publish(got, 5)["pid"]
    assert got == publish5("p4322/t", "one", qos=1, pid=pid)
    sub.send(ack5(0x40, pid))


def test_MQTT_4_3_2_4():
    # QoS 1 receiver: PUBACK with the identifier of the PUBLISH (including 0xFFFF).
    sub, pub = pair(broker(), "p4324", [("p4324/t", 0)])
    pub.send(publish5("p4324/t", "x", qos=1, pid=0xFFFF))
    pub.expect(bytes([0x40, 0x02, 0xFF, 0xFF]))
    expect_publish5(sub, "p4324/t", b"x")


def test_MQTT_4_3_2_5():
    # After PUBACK, a PUBLISH with the same identifier is a new message, even with DUP 1.
    sub, pub = pair(broker(), "p4325", [("p4325/t", 0)])
    pub.send(publish5("p4325/t", "a", qos=1, pid=9))
    pub.expect(ack5(0x40, 9))
    pub.send(publish5("p4325/t", "a", qos=1, pid=9, dup=True))
    pub.expect(ack5(0x40, 9))
    expect_publish5(sub, "p4325/t", b"a")
    expect_publish5(sub, "p4325/t", b"a")


def test_MQTT_4_3_3_1():
    # QoS 2: each new message gets an identifier not in use (three unacknowledged at once).
    sub, pub = pair(broker(), "p4331", [("p4331/t", 2)])
    for i in range(3):
        publish_acked(pub, "p4331/t", f"{i}", 2, 1)
    ids = [expect_publish5(sub, "p4331/t", f"{i}".encode(), qos=2) for i in range(3)]
    assert len(set(ids)) == 3 and 0 not in ids, ids
    for pid in ids:
        sub.send(ack5(0x50, pid))
        sub.expect(ack5(0x62, pid))
        sub.send(ack5(0x70, pid))


def test_MQTT_4_3_3_2():
    # QoS 2: the PUBLISH has the identifier, QoS 2 and DUP 0 (first byte 34).
    sub, pub = pair(broker(), "p4332", [("p4332/t", 2)])
    publish_acked(pub, "p4332/t", "two", 2, 1)
    got = sub.recv()
    assert got[0] == 0x34, got.hex()
    pid = parse_publish(got, 5)["pid"]
    assert got == publish5("p4332/t", "two", qos=2, pid=pid)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))


def test_MQTT_4_3_3_4():
    # PUBREC below 0x80: PUBREL with the same identifier. PUBREC 0x80 or above ends the flow: no
    # PUBREL, and the identifier is free (the next message may use it).
    sub, pub = pair(broker(), "p4334", [("p4334/t", 2)], props=p_u16(0x21, 1))
    publish_acked(pub, "p4334/t", "ok", 2, 1)
    pid = expect_publish5(sub, "p4334/t", b"ok", qos=2)
    sub.send(ack5(0x50, pid, 0x10))  # 0x10 No matching subscribers is a success code
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))
    publish_acked(pub, "p4334/t", "refused", 2, 2)
    pid = expect_publish5(sub, "p4334/t", b"refused", qos=2)
    sub.send(ack5(0x50, pid, 0x80))
    publish_acked(pub, "p4334/t", "next", 2, 3)
    pid = expect_publish5(sub, "p4334/t", b"next", qos=2)  # Receive Maximum 1: the slot was freed
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))


def test_MQTT_4_3_3_8():
    # QoS 2 receiver: PUBREC with the identifier of the PUBLISH.
    c = connected5(broker(), "p4338")
    c.send(publish5("p4338/t", "x", qos=2, pid=0x0102))
    c.expect(bytes([0x50, 0x02, 0x01, 0x02]))
    c.send(bytes([0x62, 0x02, 0x01, 0x02]))
    c.expect(bytes([0x70, 0x02, 0x01, 0x02]))


def test_MQTT_4_3_3_9():
    # After a PUBREC of 0x80 or above, a PUBLISH with that identifier is a new message.
    sub, pub = pair(broker(), "p4339", [("p4339/t", 0)])
    pub.send(publish5("p4339/t", b"\xff", qos=2, pid=6, props=p_byte(0x01, 1)))
    pub.expect(ack5(0x50, 6, 0x99))
    pub.send(publish5("p4339/t", "good", qos=2, pid=6, props=p_byte(0x01, 1)))
    pub.expect(ack5(0x50, 6))
    pub.send(ack5(0x62, 6))
    pub.expect(ack5(0x70, 6))
    expect_publish5(sub, "p4339/t", b"good", props=p_byte(0x01, 1))
    expect_nothing(sub)


def test_MQTT_4_3_3_10():
    # Until PUBREL, a PUBLISH with the same identifier gets PUBREC again and is not delivered twice.
    sub, pub = pair(broker(), "p43310", [("p43310/t", 0)])
    pub.send(publish5("p43310/t", "once", qos=2, pid=7))
    pub.expect(ack5(0x50, 7))
    pub.send(publish5("p43310/t", "once", qos=2, pid=7, dup=True))
    pub.expect(ack5(0x50, 7))
    pub.send(ack5(0x62, 7))
    pub.expect(ack5(0x70, 7))
    expect_publish5(sub, "p43310/t", b"once")
    expect_nothing(sub)


def test_MQTT_4_3_3_11():
    # PUBREL gets PUBCOMP with the same identifier, also when the PUBRELs come pipelined.
    c = connected5(broker(), "p43311")
    c.send(publish5("p43311/t", "a", qos=2, pid=1) + publish5("p43311/t", "b", qos=2, pid=2))
    c.expect(ack5(0x50, 1))
    c.expect(ack5(0x50, 2))
    c.send(ack5(0x62, 2) + ack5(0x62, 1))
    c.expect(ack5(0x70, 2))
    c.expect(ack5(0x70, 1))


def test_MQTT_4_3_3_12():
    # After PUBCOMP, a PUBLISH with the same identifier is a new message.
    sub, pub = pair(broker(), "p43312", [("p43312/t", 0)])
    publish_acked(pub, "p43312/t", "first", 2, 8)
    publish_acked(pub, "p43312/t", "second", 2, 8)
    expect_publish5(sub, "p43312/t", b"first")
    expect_publish5(sub, "p43312/t", b"second")


def test_MQTT_4_3_3_13():
    # The QoS 2 flow goes on after message expiry: a message that expires while the server waits for
    # PUBREL still gets PUBCOMP (and is not delivered, being expired).
    sub, pub = pair(broker(), "p43313", [("p43313/t", 0)])
    pub.send(publish5("p43313/t", "late", qos=2, pid=3, props=p_u32(0x02, 1)))
    pub.expect(ack5(0x50, 3))
    time.sleep(2.2)
    pub.send(ack5(0x62, 3))
    pub.expect(ack5(0x70, 3))
    pub.send(publish5("p43313/t", "marker"))
    expect_publish5(sub, "p43313/t", b"marker")


# ---- 4.6 Message ordering, 4.9 Flow control, 4.2 Network connections --------------------------------

def test_MQTT_4_6_0_5():
    # 60 messages at QoS 1 from one client reach a subscriber on another worker in the order sent.
    sub, pub = pair(broker(), "p4605", [("p4605/t", 1)])
    data = b"".join(publish5("p4605/t", f"{i:03}", qos=1, pid=i + 1) for i in range(60))
    pub.send(data)
    for i in range(60):
        pub.expect(ack5(0x40, i + 1))
    for i in range(60):
        pid = expect_publish5(sub, "p4605/t", f"{i:03}".encode(), qos=1)
        sub.send(ack5(0x40, pid))


def test_MQTT_4_6_0_6():
    # Every topic is ordered by default: QoS 0 messages from two publishers on two workers, each
    # stream arriving in its own order at subscribers on the two other workers.
    b = broker()
    subs = [subscribed5(b, id_on_worker(f"p4606-s{w}", w), [("p4606/#", 0)]) for w in (0, 3)]
    pubs = [connected5(b, id_on_worker(f"p4606-p{w}", w)) for w in (1, 2)]
    for k, p in enumerate(pubs):
        p.send(b"".join(publish5(f"p4606/{k}", f"{i}") for i in range(100)))
    for s in subs:
        seen = {0: [], 1: []}
        for _ in range(200):
            m = recv_publish(s, version=5)
            seen[int(m["topic"].decode()[-1])].append(int(m["payload"]))
        assert seen[0] == list(range(100)) and seen[1] == list(range(100))


def test_MQTT_4_9_0_1():
    # The initial send quota is the client's Receive Maximum (3), never more: exactly 3 in flight.
    sub, pub = pair(broker(), "p4901", [("p4901/t", 1)], props=p_u16(0x21, 3))
    for i in range(5):
        publish_acked(pub, "p4901/t", f"{i}", 1, i + 1)
    ids = [expect_publish5(sub, "p4901/t", f"{i}".encode(), qos=1) for i in range(3)]
    expect_nothing(sub, 0.5)
    sub.send(b"".join(ack5(0x40, p) for p in ids))
    for i in range(3, 5):
        sub.send(ack5(0x40, expect_publish5(sub, "p4901/t", f"{i}".encode(), qos=1)))


def test_MQTT_4_9_0_2():
    # Quota 0 (Receive Maximum 1, one unacknowledged QoS 2 message): no QoS 1 or 2 PUBLISH until the
    # flow completes (PUBCOMP; PUBREC alone does not restore the quota).
    sub, pub = pair(broker(), "p4902", [("p4902/t", 2)], props=p_u16(0x21, 1))
    publish_acked(pub, "p4902/t", "a", 2, 1)
    publish_acked(pub, "p4902/t", "b", 1, 2)
    pid = expect_publish5(sub, "p4902/t", b"a", qos=2)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    expect_nothing(sub, 0.5)
    sub.send(ack5(0x70, pid))
    sub.send(ack5(0x40, expect_publish5(sub, "p4902/t", b"b", qos=1)))


def test_MQTT_4_9_0_3():
    # With the quota at 0 the server goes on processing the client's packets: its PUBLISH (QoS 1)
    # is acknowledged and routed, its PINGREQ answered.
    sub, pub = pair(broker(), "p4903", [("p4903/t", 1)], props=p_u16(0x21, 1))
    publish_acked(pub, "p4903/t", "held", 1, 1)
    pid = expect_publish5(sub, "p4903/t", b"held", qos=1)
    sub.send(publish5("p4903/other", "from sub", qos=1, pid=50))
    sub.expect(ack5(0x40, 50, 0x10))
    sub.send(PINGREQ)
    sub.expect(PINGRESP)
    sub.send(ack5(0x40, pid))


def test_MQTT_4_2_0_1():
    # The byte stream is all that counts: one packet sent a byte at a time, and many packets in one
    # write, are both handled exactly.
    sub, pub = pair(broker(), "p4201", [("p4201/t", 1)])
    data = publish5("p4201/t", "split", qos=1, pid=1, props=p_user("k", "v"))
    for i in range(len(data)):
        pub.send(data[i:i + 1])
        time.sleep(0.005)
    pub.expect(ack5(0x40, 1))
    pub.send(publish5("p4201/t", "a") + PINGREQ + publish5("p4201/t", "b", qos=1, pid=2))
    pub.expect(PINGRESP)
    pub.expect(ack5(0x40, 2))
    sub.send(ack5(0x40, expect_publish5(sub, "p4201/t", b"split", qos=1, props=p_user("k", "v"))))
    expect_publish5(sub, "p4201/t", b"a")
    sub.send(ack5(0x40, expect_publish5(sub, "p4201/t", b"b", qos=1)))


if __name__ == "__main__":
    main([
        test_MQTT_2_2_1_2, test_MQTT_2_2_1_3, test_MQTT_2_2_1_4, test_MQTT_2_2_1_5, test_MQTT_3_1_2_24,
        test_MQTT_3_1_2_25, test_MQTT_3_1_2_26, test_MQTT_3_1_2_27, test_MQTT_3_3_1_2, test_MQTT_3_3_1_3,
        test_MQTT_3_3_1_4, test_MQTT_3_3_1_5, test_MQTT_3_3_1_6, test_MQTT_3_3_1_7, test_MQTT_3_3_1_8,
        test_MQTT_3_3_2_1, test_MQTT_3_3_2_2, test_MQTT_3_3_2_3, test_MQTT_3_3_2_4, test_MQTT_3_3_2_4_b,
        test_MQTT_3_3_2_5, test_MQTT_3_3_2_5_b, test_MQTT_3_3_2_6, test_MQTT_3_3_2_7, test_MQTT_3_3_2_7_b,
        test_MQTT_3_3_2_8, test_MQTT_3_3_2_9, test_MQTT_3_3_2_11, test_MQTT_3_3_2_12, test_MQTT_3_3_2_12_b,
        test_MQTT_3_3_2_13, test_MQTT_3_3_2_14, test_MQTT_3_3_2_15, test_MQTT_3_3_2_16, test_MQTT_3_3_2_17,
        test_MQTT_3_3_2_18, test_MQTT_3_3_2_19, test_MQTT_3_3_2_20, test_MQTT_3_3_4_1, test_MQTT_3_3_4_2,
        test_MQTT_3_3_4_3, test_MQTT_3_3_4_4, test_MQTT_3_3_4_6, test_MQTT_3_3_4_7, test_MQTT_3_3_4_7_b,
        test_MQTT_3_3_4_9, test_MQTT_3_3_4_10, test_MQTT_3_4_2_1, test_MQTT_3_4_2_1_b, test_MQTT_3_5_2_1,
        test_MQTT_3_5_2_1_b, test_MQTT_3_6_1_1, test_MQTT_3_6_2_1, test_MQTT_3_7_2_1, test_MQTT_4_3_1_1,
        test_MQTT_4_3_2_1, test_MQTT_4_3_2_2, test_MQTT_4_3_2_4, test_MQTT_4_3_2_5, test_MQTT_4_3_3_1,
        test_MQTT_4_3_3_2, test_MQTT_4_3_3_4, test_MQTT_4_3_3_8, test_MQTT_4_3_3_9, test_MQTT_4_3_3_10,
        test_MQTT_4_3_3_11, test_MQTT_4_3_3_12, test_MQTT_4_3_3_13, test_MQTT_4_6_0_5, test_MQTT_4_6_0_6,
        test_MQTT_4_9_0_1, test_MQTT_4_9_0_2, test_MQTT_4_9_0_3, test_MQTT_4_2_0_1,
    ], broker, small)
