#!/usr/bin/python3
"""MQTT 3.1.1 conformance: sessions, CleanSession, redelivery, offline queueing (3.1.2.4, 4.1, 4.4,
4.5, 4.6)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


def drop(c):
    """Ends a connection without DISCONNECT and gives the broker a moment to notice."""
    c.close()
    time.sleep(0.15)


def cleanup(b, cid):
    c = connected(b, cid, clean=True)
    c.send(DISCONNECT)
    c.expect_closed()


def test_MQTT_3_1_2_4_a():
    # CleanSession 0 resumes the stored session: session present 1, subscriptions kept.
    b = broker()
    c = connected(b, "s3124a", clean=False)
    c.send(subscribe(1, [("s3124a/t", 1)]))
    c.expect(suback(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected(b, "s3124a", clean=False, session_present=True)
    pub = connected(b, "s3124a-pub")
    pub.send(publish("s3124a/t", "still", qos=1, packet_id=1))
    pub.expect(puback(1))
    pid = expect_publish(c, "s3124a/t", b"still", qos=1)
    c.send(puback(pid))
    c.send(DISCONNECT)
    cleanup(b, "s3124a")


def test_MQTT_3_1_2_4_b():
    # Subscribe with clean 0, reconnect with clean 1 (discards it), then clean 0 again:
    # session present 0 and no delivery.
    b = broker()
    c = connected(b, "s3124b", clean=False)
    c.send(subscribe(1, [("s3124b/t", 1)]))
    c.expect(suback(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected(b, "s3124b", clean=True, session_present=False)
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected(b, "s3124b", clean=False, session_present=False)
    pub = connected(b, "s3124b-pub")
    pub.send(publish("s3124b/t", "gone", qos=1, packet_id=1))
    pub.expect(puback(1))
    pub.send(subscribe(2, [("s3124b/t", 0)]))  # marker: the publisher's own copy arrives
    pub.expect(suback(2, 0))
    pub.send(publish("s3124b/t", "marker"))
    expect_publish(pub, "s3124b/t", b"marker")
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s3124b")


def test_MQTT_3_1_2_5():
    # While a CleanSession 0 client is away, QoS 1 and QoS 2 messages are stored for it.
    b = broker()
    c = connected(b, "s3125", clean=False)
    c.send(subscribe(1, [("s3125/t", 2)]))
    c.expect(suback(1, 2))
    drop(c)
    pub = connected(b, "s3125-pub")
    pub.send(publish("s3125/t", "one", qos=1, packet_id=1))
    pub.expect(puback(1))
    pub.send(publish("s3125/t", "two", qos=2, packet_id=2))
    pub.expect(pubrec(2))
    pub.send(pubrel(2))
    pub.expect(pubcomp(2))
    c = connected(b, "s3125", clean=False, session_present=True)
    p1 = expect_publish(c, "s3125/t", b"one", qos=1)
    p2 = expect_publish(c, "s3125/t", b"two", qos=2)
    c.send(puback(p1) + pubrec(p2))
    c.expect(pubrel(p2))
    c.send(pubcomp(p2))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s3125")


def test_MQTT_3_1_2_6():
    # CleanSession 1: the session ends with the connection and is never reused.
    b = broker()
    c = connected(b, "s3126", clean=True)
    c.send(subscribe(1, [("s3126/t", 1)]))
    c.expect(suback(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected(b, "s3126", clean=False, session_present=False)
    pub = connected(b, "s3126-pub")
    pub.send(subscribe(2, [("s3126/t", 0)]))
    pub.expect(suback(2, 0))
    pub.send(publish("s3126/t", "x", qos=1, packet_id=1))
    got = sorted([pub.recv(), pub.recv()])
    assert got == sorted([puback(1), publish("s3126/t", "x")]), [p.hex() for p in got if p]
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s3126")


def test_MQTT_3_1_2_7():
    # Retained messages are not part of the session: they survive its end.
    b = broker()
    c = connected(b, "s3127", clean=True)
    c.send(publish("s3127/t", "stays", qos=1, retain=True, packet_id=1))
    c.expect(puback(1))
    c.send(DISCONNECT)
    c.expect_closed()
    late = connected(b, "s3127-late")
    late.send(subscribe(1, [("s3127/t", 0)]))
    late.expect(suback(1, 0))
    expect_publish(late, "s3127/t", b"stays", retain=True)
    late.send(publish("s3127/t", "", retain=True))


def test_MQTT_3_3_1_1():
    # DUP=1 when the server re-delivers an unacknowledged PUBLISH after reconnect.
    b = broker()
    c = connected(b, "s3311", clean=False)
    c.send(subscribe(1, [("s3311/t", 1)]))
    c.expect(suback(1, 1))
    pub = connected(b, "s3311-pub")
    pub.send(publish("s3311/t", "redo", qos=1, packet_id=1))
    pub.expect(puback(1))
    pid = expect_publish(c, "s3311/t", b"redo", qos=1, dup=False)
    drop(c)
    c = connected(b, "s3311", clean=False, session_present=True)
    expect_publish(c, "s3311/t", b"redo", qos=1, dup=True, pid=pid)
    c.send(puback(pid))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s3311")


def test_MQTT_4_3_2_1_resend():
    # An unacknowledged QoS 1 PUBLISH stays in flight until PUBACK: resent on every reconnect.
    b = broker()
    c = connected(b, "s4321", clean=False)
    c.send(subscribe(1, [("s4321/t", 1)]))
    c.expect(suback(1, 1))
    pub = connected(b, "s4321-pub")
    pub.send(publish("s4321/t", "m", qos=1, packet_id=1))
    pub.expect(puback(1))
    pid = expect_publish(c, "s4321/t", b"m", qos=1)
    drop(c)
    c = connected(b, "s4321", clean=False, session_present=True)
    expect_publish(c, "s4321/t", b"m", qos=1, dup=True, pid=pid)
    drop(c)
    c = connected(b, "s4321", clean=False, session_present=True)
    expect_publish(c, "s4321/t", b"m", qos=1, dup=True, pid=pid)
    c.send(puback(pid))
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected(b, "s4321", clean=False, session_present=True)
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s4321")


def test_MQTT_4_3_3_1_no_resend_after_pubrel():
    # QoS 2 sender: after PUBREC the PUBLISH is never re-sent, only the PUBREL.
    b = broker()
    c = connected(b, "s4331", clean=False)
    c.send(subscribe(1, [("s4331/t", 2)]))
    c.expect(suback(1, 2))
    pub = connected(b, "s4331-pub")
    pub.send(publish("s4331/t", "m", qos=2, packet_id=1))
    pub.expect(pubrec(1))
    pub.send(pubrel(1))
    pub.expect(pubcomp(1))
    pid = expect_publish(c, "s4331/t", b"m", qos=2)
    c.send(pubrec(pid))
    c.expect(pubrel(pid))
    drop(c)
    c = connected(b, "s4331", clean=False, session_present=True)
    c.expect(pubrel(pid))
    c.send(pubcomp(pid))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s4331")


def test_MQTT_4_4_0_1():
    # On reconnect: unacknowledged PUBLISHes (DUP=1) and PUBRELs, original ids, original order.
    b = broker()
    sub_id, pub_id = ids_on_different_workers("s4401")
    c = connected(b, sub_id, clean=False)
    c.send(subscribe(1, [("s4401/t", 2)]))
    c.expect(suback(1, 2))
    pub = connected(b, pub_id)
    pub.send(publish("s4401/t", "m1", qos=1, packet_id=1))
    pub.expect(puback(1))
    p1 = expect_publish(c, "s4401/t", b"m1", qos=1)
    for pid, text in ((2, "m2"), (3, "m3")):
        pub.send(publish("s4401/t", text, qos=2, packet_id=pid))
        pub.expect(pubrec(pid))
        pub.send(pubrel(pid))
        pub.expect(pubcomp(pid))
    p2 = expect_publish(c, "s4401/t", b"m2", qos=2)
    p3 = expect_publish(c, "s4401/t", b"m3", qos=2)
    c.send(pubrec(p2))
    c.expect(pubrel(p2))
    drop(c)
    c = connected(b, sub_id, clean=False, session_present=True)
    expect_publish(c, "s4401/t", b"m1", qos=1, dup=True, pid=p1)
    c.expect(pubrel(p2))
    expect_publish(c, "s4401/t", b"m3", qos=2, dup=True, pid=p3)
    c.send(puback(p1) + pubcomp(p2) + pubrec(p3))
    c.expect(pubrel(p3))
    c.send(pubcomp(p3))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, sub_id)


def test_MQTT_4_5_0_1():
    # Messages accepted while a persistent subscriber is offline join its session and are
    # delivered, in order, when it returns.
    b = broker()
    sub_id, pub_id = ids_on_different_workers("s4501")
    c = connected(b, sub_id, clean=False)
    c.send(subscribe(1, [("s4501/+", 1)]))
    c.expect(suback(1, 1))
    drop(c)
    pub = connected(b, pub_id)
    for i in range(5):
        pub.send(publish(f"s4501/{i % 2}", f"q{i}", qos=1, packet_id=i + 1))
        pub.expect(puback(i + 1))
    c = connected(b, sub_id, clean=False, session_present=True)
    for i in range(5):
        pid = expect_publish(c, f"s4501/{i % 2}", f"q{i}".encode(), qos=1)
        c.send(puback(pid))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, sub_id)


def test_MQTT_4_6_0_1():
    # Re-sent PUBLISHes go out in the order of their first sending.
    b = broker()
    c = connected(b, "s4601", clean=False)
    c.send(subscribe(1, [("s4601/t", 1)]))
    c.expect(suback(1, 1))
    pub = connected(b, "s4601-pub")
    pub.send(b"".join(publish("s4601/t", f"{i}", qos=1, packet_id=i + 1) for i in range(6)))
    pids = [expect_publish(c, "s4601/t", f"{i}".encode(), qos=1) for i in range(6)]
    c.send(puback(pids[2]))  # ack one in the middle
    c.send(PINGREQ)
    c.expect(PINGRESP)
    drop(c)
    c = connected(b, "s4601", clean=False, session_present=True)
    for i in (0, 1, 3, 4, 5):
        expect_publish(c, "s4601/t", f"{i}".encode(), qos=1, dup=True, pid=pids[i])
        c.send(puback(pids[i]))
    expect_nothing(c)
    c.send(DISCONNECT)
    cleanup(b, "s4601")


if __name__ == "__main__":
    main([
        test_MQTT_3_1_2_4_a, test_MQTT_3_1_2_4_b, test_MQTT_3_1_2_5, test_MQTT_3_1_2_6,
        test_MQTT_3_1_2_7, test_MQTT_3_3_1_1, test_MQTT_4_3_2_1_resend,
        test_MQTT_4_3_3_1_no_resend_after_pubrel, test_MQTT_4_4_0_1, test_MQTT_4_5_0_1,
        test_MQTT_4_6_0_1,
    ], broker)
