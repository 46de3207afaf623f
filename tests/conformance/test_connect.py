#!/usr/bin/python3
"""MQTT 3.1.1 conformance: CONNECT / CONNACK / PINGREQ / DISCONNECT (sections 3.1, 3.2, 3.12, 3.14)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


def closed_without_connack(c):
    got = c.expect_closed()
    assert got == [], f"expected a close without CONNACK, got {[p.hex() for p in got]}"


# ---- 3.1.0 ---------------------------------------------------------------------------------------

def test_MQTT_3_1_0_1():
    # PINGREQ as the first packet: closed, nothing sent back.
    c = Client(broker().port)
    c.send(PINGREQ)
    closed_without_connack(c)


def test_MQTT_3_1_0_1_b():
    # SUBSCRIBE as the first packet.
    c = Client(broker().port)
    c.send(subscribe(1, [("a", 0)]))
    closed_without_connack(c)


def test_MQTT_3_1_0_1_c():
    # PUBLISH as the first packet is not forwarded either.
    b = broker()
    sub = subscribed(b, "c010c-sub", [("c010c/t", 0)])
    c = Client(b.port)
    c.send(publish("c010c/t", "bad"))
    closed_without_connack(c)
    pub = connected(b, "c010c-pub")
    pub.send(publish("c010c/t", "marker"))
    expect_publish(sub, "c010c/t", b"marker")


def test_MQTT_3_1_0_2():
    c = connected(broker(), "c0102")
    c.send(connect("c0102"))
    assert c.expect_closed() == []


# ---- 3.1.2 variable header -----------------------------------------------------------------------

def test_MQTT_3_1_2_1():
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c0121"), name=b"MQTX"))
    closed_without_connack(c)


def test_MQTT_3_1_2_2():
    # Protocol level 6: CONNACK 0x01 (unacceptable protocol level), then close.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c0122"), level=6))
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x01])]


def test_MQTT_3_1_2_2_b():
    # "MQTT" with level 3 (which only exists as MQIsdp).
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c0122b"), level=3))
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x01])]


def test_MQTT_3_1_2_3():
    c = Client(broker().port)
    c.send(raw_connect(0x03, s("c0123")))
    closed_without_connack(c)


def test_MQTT_3_1_2_8():
    # Will published when the network connection closes without DISCONNECT.
    b = broker()
    sub = subscribed(b, "c0128-sub", [("c0128/will", 1)])
    w = connected(b, "c0128-w", will=("c0128/will", "gone", 1, False))
    w.close()
    expect_publish(sub, "c0128/will", b"gone", qos=1)


def test_MQTT_3_1_2_8_b():
    # Will published when the server closes the connection for a protocol violation.
    b = broker()
    sub = subscribed(b, "c0128b-sub", [("c0128b/will", 0)])
    w = connected(b, "c0128b-w", will=("c0128b/will", "bad", 0, False))
    w.send(bytes([0xC1, 0x00]))  # PINGREQ with reserved flags: malformed
    w.expect_closed()
    expect_publish(sub, "c0128b/will", b"bad")


def test_MQTT_3_1_2_9():
    # Will flag set but the will topic / message are missing: malformed, closed without CONNACK.
    c = Client(broker().port)
    c.send(raw_connect(0x06, s("c0129")))
    closed_without_connack(c)


def test_MQTT_3_1_2_10():
    # Will removed on DISCONNECT: nothing published when the connection then closes.
    b = broker()
    sub = subscribed(b, "c01210-sub", [("c01210/will", 0)])
    w = connected(b, "c01210-w", will=("c01210/will", "x", 0, False))
    w.send(DISCONNECT)
    w.expect_closed()
    time.sleep(0.1)
    pub = connected(b, "c01210-pub")
    pub.send(publish("c01210/will", "marker"))
    expect_publish(sub, "c01210/will", b"marker")
    expect_nothing(sub)


def test_MQTT_3_1_2_10_b():
    # Will removed once published: it is published exactly once.
    b = broker()
    sub = subscribed(b, "c01210b-sub", [("c01210b/will", 0)])
    w = connected(b, "c01210b-w", will=("c01210b/will", "once", 0, False))
    w.close()
    expect_publish(sub, "c01210b/will", b"once")
    expect_nothing(sub, 0.5)


def test_MQTT_3_1_2_11():
    # Will flag 0 with will QoS 1: malformed.
    c = Client(broker().port)
    c.send(raw_connect(0x02 | 0x08, s("c01211")))
    closed_without_connack(c)


def test_MQTT_3_1_2_12():
    # No will flag: nothing is published when the connection drops.
    b = broker()
    sub = subscribed(b, "c01212-sub", [("#", 0)])
    c = connected(b, "c01212-c")
    c.close()
    time.sleep(0.2)
    pub = connected(b, "c01212-pub")
    pub.send(publish("c01212/marker", "m"))
    expect_publish(sub, "c01212/marker", b"m")
    sub.send(unsubscribe(2, ["#"]))
    sub.close()


def test_MQTT_3_1_2_13():
    # Will flag 0 with will QoS 2: malformed.
    c = Client(broker().port)
    c.send(raw_connect(0x02 | 0x10, s("c01213")))
    closed_without_connack(c)


def test_MQTT_3_1_2_14():
    # Will QoS 3.
    c = Client(broker().port)
    c.send(raw_connect(0x02 | 0x04 | 0x18, s("c01214") + s("w/t") + s("m")))
    closed_without_connack(c)


def test_MQTT_3_1_2_15():
    # Will retain set without the will flag.
    c = Client(broker().port)
    c.send(raw_connect(0x02 | 0x20, s("c01215")))
    closed_without_connack(c)


def test_MQTT_3_1_2_16():
    # Will retain 0: published as a non-retained message (no retained copy afterwards).
    b = broker()
    sub = subscribed(b, "c01216-sub", [("c01216/will", 0)])
    w = connected(b, "c01216-w", will=("c01216/will", "nr", 0, False))
    w.close()
    expect_publish(sub, "c01216/will", b"nr")
    late = connected(b, "c01216-late")
    late.send(subscribe(1, [("c01216/will", 0)]))
    late.expect(suback(1, 0))
    expect_nothing(late)


def test_MQTT_3_1_2_17():
    # Will retain 1: published as a retained message.
    b = broker()
    w = connected(b, "c01217-w", will=("c01217/will", "r", 1, True))
    w.close()
    time.sleep(0.2)
    late = connected(b, "c01217-late")
    late.send(subscribe(1, [("c01217/will", 1)]))
    late.expect(suback(1, 1))
    pid = expect_publish(late, "c01217/will", b"r", qos=1, retain=True)
    late.send(puback(pid))
    late.send(publish("c01217/will", "", retain=True))  # clear it


def test_MQTT_3_1_2_18():
    # User name flag 0 but a user name present: trailing bytes, malformed.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c01218") + s("user")))
    closed_without_connack(c)


def test_MQTT_3_1_2_19():
    # User name flag 1 but no user name.
    c = Client(broker().port)
    c.send(raw_connect(0x82, s("c01219")))
    closed_without_connack(c)


def test_MQTT_3_1_2_20():
    # Password flag 0 but a password present.
    c = Client(broker().port)
    c.send(raw_connect(0x82, s("c01220") + s("user") + s("pw")))
    closed_without_connack(c)


def test_MQTT_3_1_2_21():
    # Password flag 1 but no password.
    c = Client(broker().port)
    c.send(raw_connect(0xC2, s("c01221") + s("user")))
    closed_without_connack(c)


def test_MQTT_3_1_2_22():
    # Password flag 1 with user name flag 0.
    c = Client(broker().port)
    c.send(raw_connect(0x42, s("c01222") + s("pw")))
    closed_without_connack(c)


def test_MQTT_3_1_2_24():
    # Keep alive 1 s: open after 1.2 s of silence, closed by about 1.5 s (ticks are 1 s apart).
    c = connected(broker(), "c01224", keepalive=1)
    start = time.time()
    assert c.recv(1.2) is None  # still open (EOFError otherwise)
    c.expect_closed(2.5)
    elapsed = time.time() - start
    assert 1.4 <= elapsed <= 3.2, f"closed after {elapsed:.2f} s"


def test_MQTT_3_1_2_24_b():
    # Traffic within the keep alive keeps the connection open.
    c = connected(broker(), "c01224b", keepalive=1)
    for _ in range(4):
        time.sleep(0.6)
        c.send(PINGREQ)
        c.expect(PINGRESP)
    c.send(DISCONNECT)


# ---- 3.1.3 payload -------------------------------------------------------------------------------

def test_MQTT_3_1_3_2():
    # The client identifier names the session: another id does not see it.
    b = broker()
    c = connected(b, "c0132-a", clean=False)
    c.send(DISCONNECT)
    c.expect_closed()
    other = connected(b, "c0132-b", clean=False)
    other.send(DISCONNECT)
    same = connected(b, "c0132-a", clean=False, session_present=True)
    same.send(DISCONNECT)


def test_MQTT_3_1_3_3():
    # No client identifier at all in the payload.
    c = Client(broker().port)
    c.send(raw_connect(0x02, b""))
    closed_without_connack(c)


def test_MQTT_3_1_3_4():
    # Client identifier that is not valid UTF-8.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s(b"ab\xff")))
    closed_without_connack(c)


def test_MQTT_3_1_3_5():
    b = broker()
    cid = "0123456789abcdefghijkXY"  # 23 bytes of the required character set
    c = connected(b, cid)
    c.send(DISCONNECT)
    c2 = connected(b, "Z")  # 1 byte
    c2.send(DISCONNECT)


def test_MQTT_3_1_3_6():
    # Zero-length client id with clean session 1: accepted, and the connection works.
    c = Client(broker().port)
    assert c.connect("", clean=True) == connack(False, 0)
    c.send(subscribe(1, [("c0136/t", 1)]))
    c.expect(suback(1, 1))
    c.send(publish("c0136/t", "self", qos=1, packet_id=5))
    pkts = [c.recv(), c.recv()]
    assert puback(5) in pkts, [p.hex() for p in pkts]
    other = [p for p in pkts if p != puback(5)][0]
    assert parse_publish(other)["payload"] == b"self"


def test_MQTT_3_1_3_6_b():
    # Two zero-length-id clients get distinct identifiers: neither takes the other over.
    b = broker()
    c1 = Client(b.port)
    assert c1.connect("") == connack()
    c2 = Client(b.port)
    assert c2.connect("") == connack()
    c1.send(PINGREQ)
    c1.expect(PINGRESP)
    c2.send(PINGREQ)
    c2.expect(PINGRESP)


def test_MQTT_3_1_3_7():
    # (Client rule) a zero-length id comes with clean session 1; the server accepts it, session present 0.
    c = Client(broker().port)
    c.send(connect("", clean=True))
    c.expect(bytes([0x20, 0x02, 0x00, 0x00]))
    c.send(DISCONNECT)


def test_MQTT_3_1_3_8():
    c = Client(broker().port)
    c.send(connect("", clean=False))
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x02])]


def test_MQTT_3_1_3_9():
    # A server that rejects the id (zero-length ids disallowed): CONNACK 0x02, then close.
    with Broker(config="allow_zero_length_clientid false\n") as b:
        c = Client(b.port)
        c.send(connect("", clean=True))
        assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x02])]


def test_MQTT_3_1_3_10():
    # Will topic that is not valid UTF-8.
    c = Client(broker().port)
    c.send(raw_connect(0x06, s("c01310") + s(b"w/\xc0\x80") + s("m")))
    closed_without_connack(c)


def test_MQTT_3_1_3_10_b():
    # Will topic with a wildcard is not a valid topic name.
    c = Client(broker().port)
    c.send(raw_connect(0x06, s("c01310b") + s("w/#") + s("m")))
    closed_without_connack(c)


def test_MQTT_3_1_3_11():
    # User name that is not valid UTF-8.
    c = Client(broker().port)
    c.send(raw_connect(0x82, s("c01311") + s(b"u\xed\xa0\x80")))
    closed_without_connack(c)


# ---- 3.1.4 response ------------------------------------------------------------------------------

def test_MQTT_3_1_4_1():
    # Trailing bytes after the CONNECT payload.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c0141") + b"\x00"))
    closed_without_connack(c)


def test_MQTT_3_1_4_1_b():
    # Truncated CONNECT variable header.
    c = Client(broker().port)
    c.send(packet(0x10, s("MQTT") + bytes([4])))
    closed_without_connack(c)


def test_MQTT_3_1_4_2():
    # Takeover: a second connection with the same id closes the first.
    b = broker()
    first = connected(b, "c0142")
    second = connected(b, "c0142")
    assert first.expect_closed() == []
    second.send(PINGREQ)
    second.expect(PINGRESP)
    second.send(DISCONNECT)


def test_MQTT_3_1_4_2_b():
    # Takeover of a persistent session keeps it: session present 1 on the new connection.
    b = broker()
    first = connected(b, "c0142b", clean=False)
    first.send(subscribe(1, [("c0142b/t", 1)]))
    first.expect(suback(1, 1))
    second = connected(b, "c0142b", clean=False, session_present=True)
    assert first.expect_closed() == []
    pub = connected(b, "c0142b-pub")
    pub.send(publish("c0142b/t", "after", qos=1, packet_id=3))
    pub.expect(puback(3))
    pid = expect_publish(second, "c0142b/t", b"after", qos=1)
    second.send(puback(pid))
    second.send(connect("c0142b", clean=True))  # second CONNECT closes; clean up below
    second.expect_closed()
    clean = connected(b, "c0142b", clean=True)
    clean.send(DISCONNECT)


def test_MQTT_3_1_4_4():
    c = Client(broker().port)
    c.send(connect("c0144"))
    c.expect(bytes([0x20, 0x02, 0x00, 0x00]))
    c.send(DISCONNECT)


def test_MQTT_3_1_4_5():
    # After a refused CONNECT the server processes nothing else the client sent.
    b = broker()
    sub = subscribed(b, "c0145-sub", [("c0145/t", 0)])
    c = Client(b.port)
    c.send(connect("", clean=False) + publish("c0145/t", "leak") + PINGREQ)
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x02])]
    pub = connected(b, "c0145-pub")
    pub.send(publish("c0145/t", "marker"))
    expect_publish(sub, "c0145/t", b"marker")


# ---- 3.2 CONNACK ---------------------------------------------------------------------------------

def test_MQTT_3_2_0_1():
    # CONNECT and PINGREQ in one write: the first packet back is CONNACK.
    c = Client(broker().port)
    c.send(connect("c0320") + PINGREQ)
    c.expect(connack())
    c.expect(PINGRESP)


def test_MQTT_3_2_2_1():
    # Clean session 1: session present 0 even if a stored session existed.
    b = broker()
    c = connected(b, "c0322-1", clean=False)
    c.send(DISCONNECT)
    c.expect_closed()
    c = Client(b.port)
    c.send(connect("c0322-1", clean=True))
    c.expect(bytes([0x20, 0x02, 0x00, 0x00]))
    c.send(DISCONNECT)


def test_MQTT_3_2_2_2():
    b = broker()
    c = connected(b, "c0322-2", clean=False)
    c.send(DISCONNECT)
    c.expect_closed()
    c = Client(b.port)
    c.send(connect("c0322-2", clean=False))
    c.expect(bytes([0x20, 0x02, 0x01, 0x00]))
    c.send(DISCONNECT)
    c.expect_closed()
    connected(b, "c0322-2", clean=True, session_present=False).send(DISCONNECT)


def test_MQTT_3_2_2_3():
    c = Client(broker().port)
    c.send(connect("c0322-3-new", clean=False))
    c.expect(bytes([0x20, 0x02, 0x00, 0x00]))
    c.send(DISCONNECT)
    c.expect_closed()
    connected(broker(), "c0322-3-new", clean=True).send(DISCONNECT)


def test_MQTT_3_2_2_4():
    # A refusal carries session present 0 even when a session is stored for that id.
    b = broker()
    c = connected(b, "c0322-4", clean=False)
    c.send(DISCONNECT)
    c.expect_closed()
    r = Client(b.port)
    r.send(raw_connect(0x00, s("c0322-4"), level=6))
    assert r.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x01])]
    connected(b, "c0322-4", clean=True).send(DISCONNECT)


def test_MQTT_3_2_2_5():
    # After a non-zero return code the server closes the connection (and ignores what follows).
    c = Client(broker().port)
    c.send(connect("", clean=False))
    c.expect(bytes([0x20, 0x02, 0x00, 0x02]))
    try:
        c.send(PINGREQ)
    except OSError:
        pass
    assert c.expect_closed() == []


def test_MQTT_3_2_2_6():
    # No return code applies to a malformed CONNECT: closed without CONNACK.
    c = Client(broker().port)
    c.send(raw_connect(0x02, s("c0322-6") + b"\xff"))
    closed_without_connack(c)


# ---- 3.12 PINGREQ, 3.14 DISCONNECT ---------------------------------------------------------------

def test_MQTT_3_12_4_1():
    c = connected(broker(), "c12")
    c.send(PINGREQ)
    c.expect(bytes([0xD0, 0x00]))
    c.send(PINGREQ + PINGREQ)
    c.expect(PINGRESP)
    c.expect(PINGRESP)
    c.send(DISCONNECT)


def test_MQTT_3_14_1_1():
    # DISCONNECT with reserved flags set: closed as malformed, so the will IS published.
    b = broker()
    sub = subscribed(b, "c14-1-sub", [("c1411/will", 0)])
    w = connected(b, "c14-1-w", will=("c1411/will", "w", 0, False))
    w.send(bytes([0xE2, 0x00]))
    assert w.expect_closed() == []
    expect_publish(sub, "c1411/will", b"w")


def test_MQTT_3_14_4_1():
    # (Client rule) after DISCONNECT the network connection is closed; the server closes it too.
    c = connected(broker(), "c14-4-1")
    c.send(DISCONNECT)
    assert c.expect_closed() == []


def test_MQTT_3_14_4_3():
    # On DISCONNECT the retained will is discarded without publishing it.
    b = broker()
    w = connected(b, "c14-4-3", will=("c1443/will", "no", 1, True))
    w.send(DISCONNECT)
    w.expect_closed()
    time.sleep(0.1)
    late = connected(b, "c14-4-3-late")
    late.send(subscribe(1, [("c1443/will", 1)]))
    late.expect(suback(1, 1))
    expect_nothing(late)


# ---- MQTT 3.1 (MQIsdp, level 3) ------------------------------------------------------------------

def test_mqtt31_connect_publish():
    b = broker()
    c = Client(b.port)
    c.send(connect("c31", version=3))
    c.expect(bytes([0x20, 0x02, 0x00, 0x00]))
    c.send(subscribe(1, [("c31/t", 1)]))
    c.expect(suback(1, 1))
    c.send(publish("c31/t", "v31", qos=1, packet_id=9))
    pkts = [c.recv(), c.recv()]
    assert puback(9) in pkts, [p.hex() if p else p for p in pkts]
    other = [p for p in pkts if p != puback(9)][0]
    pid = parse_publish(other)["pid"]
    assert other == publish("c31/t", "v31", qos=1, packet_id=pid)
    c.send(puback(pid))
    c.send(PINGREQ)
    c.expect(PINGRESP)
    c.send(DISCONNECT)
    c.expect_closed()


def test_mqtt31_empty_client_id_refused():
    # 3.1 requires 1 to 23 character ids: CONNACK 0x02 (identifier rejected), then close.
    c = Client(broker().port)
    c.send(connect("", version=3))
    assert c.expect_closed() == [bytes([0x20, 0x02, 0x00, 0x02])]


if __name__ == "__main__":
    main([
        test_MQTT_3_1_0_1, test_MQTT_3_1_0_1_b, test_MQTT_3_1_0_1_c, test_MQTT_3_1_0_2,
        test_MQTT_3_1_2_1, test_MQTT_3_1_2_2, test_MQTT_3_1_2_2_b, test_MQTT_3_1_2_3,
        test_MQTT_3_1_2_8, test_MQTT_3_1_2_8_b, test_MQTT_3_1_2_9, test_MQTT_3_1_2_10,
        test_MQTT_3_1_2_10_b, test_MQTT_3_1_2_11, test_MQTT_3_1_2_12, test_MQTT_3_1_2_13,
        test_MQTT_3_1_2_14, test_MQTT_3_1_2_15, test_MQTT_3_1_2_16, test_MQTT_3_1_2_17,
        test_MQTT_3_1_2_18, test_MQTT_3_1_2_19, test_MQTT_3_1_2_20, test_MQTT_3_1_2_21,
        test_MQTT_3_1_2_22, test_MQTT_3_1_2_24, test_MQTT_3_1_2_24_b,
        test_MQTT_3_1_3_2, test_MQTT_3_1_3_3, test_MQTT_3_1_3_4, test_MQTT_3_1_3_5,
        test_MQTT_3_1_3_6, test_MQTT_3_1_3_6_b, test_MQTT_3_1_3_7, test_MQTT_3_1_3_8,
        test_MQTT_3_1_3_9, test_MQTT_3_1_3_10, test_MQTT_3_1_3_10_b, test_MQTT_3_1_3_11,
        test_MQTT_3_1_4_1, test_MQTT_3_1_4_1_b, test_MQTT_3_1_4_2, test_MQTT_3_1_4_2_b,
        test_MQTT_3_1_4_4, test_MQTT_3_1_4_5,
        test_MQTT_3_2_0_1, test_MQTT_3_2_2_1, test_MQTT_3_2_2_2, test_MQTT_3_2_2_3,
        test_MQTT_3_2_2_4, test_MQTT_3_2_2_5, test_MQTT_3_2_2_6,
        test_MQTT_3_12_4_1, test_MQTT_3_14_1_1, test_MQTT_3_14_4_1, test_MQTT_3_14_4_3,
        test_mqtt31_connect_publish, test_mqtt31_empty_client_id_refused,
    ], broker)
