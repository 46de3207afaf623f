#!/usr/bin/python3
"""MQTT 3.1.1 conformance: PUBLISH and its acknowledgements, retained messages, QoS flows, ordering
(sections 2.3, 3.3 to 3.7, 4.3, 4.6)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


# ---- 2.3.1 packet identifiers --------------------------------------------------------------------

def test_MQTT_2_3_1_4():
    # The server gives each unacknowledged QoS > 0 PUBLISH it sends a distinct non-zero id.
    b = broker()
    sub = subscribed(b, "p2314-sub", [("p2314/t", 2)])
    pub = connected(b, "p2314-pub")
    for i in range(5):
        pub.send(publish("p2314/t", f"m{i}", qos=1, packet_id=10 + i))
    ids = []
    for i in range(5):
        ids.append(expect_publish(sub, "p2314/t", f"m{i}".encode(), qos=1))
    assert len(set(ids)) == 5 and 0 not in ids, ids


def test_MQTT_2_3_1_5():
    # A QoS 0 PUBLISH carries no packet identifier.
    b = broker()
    sub = subscribed(b, "p2315-sub", [("p2315/t", 2)])
    pub = connected(b, "p2315-pub")
    pub.send(publish("p2315/t", "zero"))
    sub.expect(bytes([0x30, 0x0D]) + b"\x00\x07p2315/t" + b"zero")


def test_MQTT_2_3_1_6():
    # PUBACK / PUBREC / PUBCOMP carry the packet id of the PUBLISH / PUBREL they answer.
    c = connected(broker(), "p2316")
    c.send(publish("p2316/t", "a", qos=1, packet_id=0x1234))
    c.expect(bytes([0x40, 0x02, 0x12, 0x34]))
    c.send(publish("p2316/t", "b", qos=2, packet_id=0xABCD))
    c.expect(bytes([0x50, 0x02, 0xAB, 0xCD]))
    c.send(pubrel(0xABCD))
    c.expect(bytes([0x70, 0x02, 0xAB, 0xCD]))


def test_MQTT_2_3_1_7():
    c = connected(broker(), "p2317")
    c.send(subscribe(0x4321, [("p2317/t", 0)]))
    c.expect(bytes([0x90, 0x03, 0x43, 0x21, 0x00]))
    c.send(unsubscribe(0x8765, ["p2317/t"]))
    c.expect(bytes([0xB0, 0x02, 0x87, 0x65]))


# ---- 3.3.1 fixed header --------------------------------------------------------------------------

def test_MQTT_3_3_1_3():
    # An incoming DUP=1 is not propagated: the forwarded copy has DUP=0.
    b = broker()
    sub = subscribed(b, "p3313-sub", [("p3313/t", 1)])
    pub = connected(b, "p3313-pub")
    pub.send(publish("p3313/t", "d", qos=1, dup=True, packet_id=7))
    pub.expect(puback(7))
    pid = expect_publish(sub, "p3313/t", b"d", qos=1, dup=False)
    sub.send(puback(pid))


def test_MQTT_3_3_1_5():
    # RETAIN=1: message and QoS stored for future subscribers.
    b = broker()
    pub = connected(b, "p3315-pub")
    pub.send(publish("p3315/t", "kept", qos=1, retain=True, packet_id=2))
    pub.expect(puback(2))
    late = connected(b, "p3315-late")
    late.send(subscribe(1, [("p3315/t", 2)]))
    late.expect(suback(1, 2))
    pid = expect_publish(late, "p3315/t", b"kept", qos=1, retain=True)
    late.send(puback(pid))
    pub.send(publish("p3315/t", "", retain=True))


def test_MQTT_3_3_1_6():
    # A new subscription gets the last retained message of every matching topic.
    b = broker()
    pub = connected(b, "p3316-pub")
    pub.send(publish("p3316/a", "A1", retain=True) + publish("p3316/a", "A2", retain=True)
             + publish("p3316/b", "B", retain=True) + publish("p3316/c/d", "no", retain=True))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    late = connected(b, "p3316-late")
    late.send(subscribe(1, [("p3316/+", 0)]))
    late.expect(suback(1, 0))
    got = sorted([late.recv(), late.recv()])
    want = sorted([publish("p3316/a", "A2", retain=True), publish("p3316/b", "B", retain=True)])
    assert got == want, [p.hex() if p else p for p in got]
    expect_nothing(late)
    pub.send(publish("p3316/a", "", retain=True) + publish("p3316/b", "", retain=True)
             + publish("p3316/c/d", "", retain=True))


def test_MQTT_3_3_1_7():
    # A QoS 0 retained message replaces the previously retained one.
    b = broker()
    pub = connected(b, "p3317-pub")
    pub.send(publish("p3317/t", "old", qos=1, retain=True, packet_id=1))
    pub.expect(puback(1))
    pub.send(publish("p3317/t", "new", qos=0, retain=True))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    late = connected(b, "p3317-late")
    late.send(subscribe(1, [("p3317/t", 1)]))
    late.expect(suback(1, 1))
    expect_publish(late, "p3317/t", b"new", qos=0, retain=True)
    expect_nothing(late)
    pub.send(publish("p3317/t", "", retain=True))


def test_MQTT_3_3_1_8():
    # Retained messages sent because of a new subscription have RETAIN=1.
    b = broker()
    pub = connected(b, "p3318-pub")
    pub.send(publish("p3318/t", "r", retain=True))
    pub.send(PINGREQ)
    pub.expect(PINGRESP)
    late = connected(b, "p3318-late")
    late.send(subscribe(1, [("p3318/#", 0)]))
    late.expect(suback(1, 0))
    late.expect(bytes([0x31]) + bytes([2 + 7 + 1]) + b"\x00\x07p3318/t" + b"r")
    pub.send(publish("p3318/t", "", retain=True))


def test_MQTT_3_3_1_9():
    # A retained PUBLISH forwarded to an established subscription has RETAIN=0.
    b = broker()
    sub = subscribed(b, "p3319-sub", [("p3319/t", 1)])
    pub = connected(b, "p3319-pub")
    pub.send(publish("p3319/t", "live", qos=1, retain=True, packet_id=4))
    pub.expect(puback(4))
    pid = expect_publish(sub, "p3319/t", b"live", qos=1, retain=False)
    sub.send(puback(pid))
    pub.send(publish("p3319/t", "", retain=True))


def test_MQTT_3_3_1_10():
    # An empty retained PUBLISH is forwarded as normal and clears the retained message.
    b = broker()
    pub = connected(b, "p33110-pub")
    pub.send(publish("p33110/t", "old", retain=True))
    sub = subscribed(b, "p33110-sub", [("p33110/t", 0)])
    expect_publish(sub, "p33110/t", b"old", retain=True)
    pub.send(publish("p33110/t", "", retain=True))
    expect_publish(sub, "p33110/t", b"", retain=False)
    late = connected(b, "p33110-late")
    late.send(subscribe(1, [("p33110/t", 0)]))
    late.expect(suback(1, 0))
    expect_nothing(late)


def test_MQTT_3_3_1_11():
    # A zero-byte retained message is not stored (no earlier retained message either).
    b = broker()
    pub = connected(b, "p33111-pub")
    pub.send(publish("p33111/t", "", qos=1, retain=True, packet_id=1))
    pub.expect(puback(1))
    late = connected(b, "p33111-late")
    late.send(subscribe(1, [("p33111/t", 0)]))
    late.expect(suback(1, 0))
    expect_nothing(late)


def test_MQTT_3_3_1_12():
    # RETAIN=0 neither stores nor replaces the retained message.
    b = broker()
    pub = connected(b, "p33112-pub")
    pub.send(publish("p33112/t", "keep", retain=True))
    pub.send(publish("p33112/t", "transient", qos=1, packet_id=3))
    pub.expect(puback(3))
    late = connected(b, "p33112-late")
    late.send(subscribe(1, [("p33112/t", 0)]))
    late.expect(suback(1, 0))
    expect_publish(late, "p33112/t", b"keep", retain=True)
    expect_nothing(late)
    pub.send(publish("p33112/t", "", retain=True))


# ---- 3.3.2 to 3.3.5 ------------------------------------------------------------------------------

def test_MQTT_3_3_2_3():
    # The topic name sent to the subscriber matches its filter (it is the published name).
    b = broker()
    sub = subscribed(b, "p3323-sub", [("p3323/+/c", 0)])
    pub = connected(b, "p3323-pub")
    pub.send(publish("p3323/bb/c", "x"))
    expect_publish(sub, "p3323/bb/c", b"x")


def test_MQTT_3_3_4_1():
    # QoS 0: no response; QoS 1: PUBACK; QoS 2: PUBREC.
    c = connected(broker(), "p3341")
    c.send(publish("p3341/t", "q0") + PINGREQ)
    c.expect(PINGRESP)
    c.send(publish("p3341/t", "q1", qos=1, packet_id=1))
    c.expect(bytes([0x40, 0x02, 0x00, 0x01]))
    c.send(publish("p3341/t", "q2", qos=2, packet_id=2))
    c.expect(bytes([0x50, 0x02, 0x00, 0x02]))
    c.send(pubrel(2))
    c.expect(pubcomp(2))


def test_MQTT_3_3_5_1():
    # Overlapping subscriptions: one copy, at the maximum granted QoS.
    b = broker()
    sub = subscribed(b, "p3351-sub", [("p3351/#", 1), ("p3351/a", 2), ("p3351/+", 0)])
    pub = connected(b, "p3351-pub")
    pub.send(publish("p3351/a", "two", qos=2, packet_id=1))
    pub.expect(pubrec(1))
    pub.send(pubrel(1))
    pub.expect(pubcomp(1))
    pid = expect_publish(sub, "p3351/a", b"two", qos=2)
    sub.send(pubrec(pid))
    sub.expect(pubrel(pid))
    sub.send(pubcomp(pid))
    pub.send(publish("p3351/b", "one", qos=2, packet_id=2))  # matches p3351/# (1) and p3351/+ (0)
    pub.expect(pubrec(2))
    pub.send(pubrel(2))
    pub.expect(pubcomp(2))
    pid = expect_publish(sub, "p3351/b", b"one", qos=1)
    sub.send(puback(pid))
    expect_nothing(sub)


def test_MQTT_3_8_4_6():
    # Delivered QoS = min(published QoS, granted QoS).
    b = broker()
    sub = subscribed(b, "p3846-sub", [("p3846/one", 1), ("p3846/two", 2)])
    pub = connected(b, "p3846-pub")
    pub.send(publish("p3846/one", "2to1", qos=2, packet_id=1))
    pub.expect(pubrec(1))
    pub.send(pubrel(1))
    pub.expect(pubcomp(1))
    pid = expect_publish(sub, "p3846/one", b"2to1", qos=1)
    sub.send(puback(pid))
    pub.send(publish("p3846/two", "0to0"))
    expect_publish(sub, "p3846/two", b"0to0", qos=0)
    pub.send(publish("p3846/two", "1to1", qos=1, packet_id=2))
    pub.expect(puback(2))
    pid = expect_publish(sub, "p3846/two", b"1to1", qos=1)
    sub.send(puback(pid))


# ---- 4.3 QoS flows -------------------------------------------------------------------------------

def test_MQTT_4_3_1_1():
    # The server sends QoS 0 messages with QoS=0, DUP=0 (even if the publisher set QoS 1).
    b = broker()
    sub = subscribed(b, "p4311-sub", [("p4311/t", 0)])
    pub = connected(b, "p4311-pub")
    pub.send(publish("p4311/t", "x", qos=1, packet_id=1))
    pub.expect(puback(1))
    sub.expect(publish("p4311/t", "x"))


def test_MQTT_4_3_2_1():
    # QoS 1 sender: DUP=0 on first send; unacknowledged until PUBACK (then the id is reusable).
    b = broker()
    sub = subscribed(b, "p4321-sub", [("p4321/t", 1)])
    pub = connected(b, "p4321-pub")
    pub.send(publish("p4321/t", "a", qos=1, packet_id=1))
    pid_a = expect_publish(sub, "p4321/t", b"a", qos=1, dup=False)
    pub.send(publish("p4321/t", "b", qos=1, packet_id=2))
    pid_b = expect_publish(sub, "p4321/t", b"b", qos=1, dup=False)
    assert pid_a != pid_b
    sub.send(puback(pid_a) + puback(pid_b))
    sub.send(PINGREQ)
    sub.expect(PINGRESP)


def test_MQTT_4_3_2_2():
    # QoS 1 receiver: PUBACK with the id; the same id afterwards is a new publication.
    b = broker()
    sub = subscribed(b, "p4322-sub", [("p4322/t", 0)])
    pub = connected(b, "p4322-pub")
    pub.send(publish("p4322/t", "first", qos=1, packet_id=77))
    pub.expect(puback(77))
    expect_publish(sub, "p4322/t", b"first")
    pub.send(publish("p4322/t", "again", qos=1, packet_id=77, dup=True))
    pub.expect(puback(77))
    expect_publish(sub, "p4322/t", b"again")


def test_MQTT_4_3_3_1():
    # QoS 2 sender: PUBREC -> PUBREL with the same id; PUBCOMP ends the flow.
    b = broker()
    sub = subscribed(b, "p4331-sub", [("p4331/t", 2)])
    pub = connected(b, "p4331-pub")
    pub.send(publish("p4331/t", "x", qos=2, packet_id=1))
    pub.expect(pubrec(1))
    pub.send(pubrel(1))
    pub.expect(pubcomp(1))
    pid = expect_publish(sub, "p4331/t", b"x", qos=2, dup=False)
    sub.send(pubrec(pid))
    sub.expect(bytes([0x62, 0x02, pid >> 8, pid & 0xFF]))
    sub.send(pubcomp(pid))
    expect_nothing(sub)


def test_MQTT_4_3_3_2():
    # QoS 2 receiver: PUBREC; the message goes on only after PUBREL; a resent PUBLISH with the
    # same id is acknowledged with PUBREC but not forwarded twice; PUBREL -> PUBCOMP.
    b = broker()
    sub = subscribed(b, "p4332-sub", [("p4332/t", 2)])
    pub = connected(b, "p4332-pub")
    pub.send(publish("p4332/t", "once", qos=2, packet_id=9))
    pub.expect(pubrec(9))
    expect_nothing(sub)  # not forwarded before PUBREL
    pub.send(publish("p4332/t", "once", qos=2, packet_id=9, dup=True))
    pub.expect(pubrec(9))
    pub.send(pubrel(9))
    pub.expect(pubcomp(9))
    pid = expect_publish(sub, "p4332/t", b"once", qos=2)
    sub.send(pubrec(pid))
    sub.expect(pubrel(pid))
    sub.send(pubcomp(pid))
    expect_nothing(sub)
    # After PUBCOMP the same id is a new publication.
    pub.send(publish("p4332/t", "new", qos=2, packet_id=9))
    pub.expect(pubrec(9))
    pub.send(pubrel(9))
    pub.expect(pubcomp(9))
    pid = expect_publish(sub, "p4332/t", b"new", qos=2)
    sub.send(pubrec(pid))
    sub.expect(pubrel(pid))
    sub.send(pubcomp(pid))


# ---- 4.6 ordering --------------------------------------------------------------------------------

def test_MQTT_4_6_0_2():
    # PUBACKs are sent in the order the QoS 1 PUBLISHes were received.
    c = connected(broker(), "p4602")
    ids = [5, 3, 900, 1, 65535, 42]
    c.send(b"".join(publish("p4602/t", "x", qos=1, packet_id=i) for i in ids))
    for i in ids:
        c.expect(puback(i))


def test_MQTT_4_6_0_3():
    # PUBRECs are sent in the order the QoS 2 PUBLISHes were received.
    c = connected(broker(), "p4603")
    ids = [8, 2, 700, 65534]
    c.send(b"".join(publish("p4603/t", "x", qos=2, packet_id=i) for i in ids))
    for i in ids:
        c.expect(pubrec(i))
    c.send(b"".join(pubrel(i) for i in ids))
    for i in ids:
        c.expect(pubcomp(i))


def test_MQTT_4_6_0_5():
    # Topics are ordered by default: mixed QoS 0 messages from one publisher arrive in order.
    b = broker()
    sub_id, pub_id = ids_on_different_workers("p4605")
    sub = subscribed(b, sub_id, [("p4605/t", 0)])
    pub = connected(b, pub_id)
    pub.send(b"".join(publish("p4605/t", f"{i}") for i in range(100)))
    for i in range(100):
        expect_publish(sub, "p4605/t", f"{i}".encode())


def test_MQTT_4_6_0_6():
    # 200 QoS 1 messages from one publisher reach a subscriber on another worker in order.
    b = broker()
    sub_id, pub_id = ids_on_different_workers("p4606")
    sub = subscribed(b, sub_id, [("p4606/t", 1)])
    pub = connected(b, pub_id)
    pub.send(b"".join(publish("p4606/t", f"msg{i}", qos=1, packet_id=i + 1) for i in range(200)))
    acks = 0
    got = 0
    while got < 200:
        p = sub.recv(5)
        assert p is not None, f"only {got} of 200 messages arrived"
        m = parse_publish(p)
        assert m["qos"] == 1 and m["payload"] == f"msg{got}".encode(), \
            f"message {got}: got {m['payload']!r} (qos {m['qos']})"
        sub.send(puback(m["pid"]))
        got += 1
    while acks < 200:
        pub.expect(puback(acks + 1))
        acks += 1
    expect_nothing(sub)


if __name__ == "__main__":
    main([
        test_MQTT_2_3_1_4, test_MQTT_2_3_1_5, test_MQTT_2_3_1_6, test_MQTT_2_3_1_7,
        test_MQTT_3_3_1_3, test_MQTT_3_3_1_5, test_MQTT_3_3_1_6, test_MQTT_3_3_1_7,
        test_MQTT_3_3_1_8, test_MQTT_3_3_1_9, test_MQTT_3_3_1_10, test_MQTT_3_3_1_11,
        test_MQTT_3_3_1_12, test_MQTT_3_3_2_3, test_MQTT_3_3_4_1, test_MQTT_3_3_5_1,
        test_MQTT_3_8_4_6, test_MQTT_4_3_1_1, test_MQTT_4_3_2_1, test_MQTT_4_3_2_2,
        test_MQTT_4_3_3_1, test_MQTT_4_3_3_2, test_MQTT_4_6_0_2, test_MQTT_4_6_0_3,
        test_MQTT_4_6_0_5, test_MQTT_4_6_0_6,
    ], broker)
