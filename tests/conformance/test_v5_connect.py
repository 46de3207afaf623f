#!/usr/bin/python3
"""MQTT 5.0 conformance: data representation (1.5), packet format (2), CONNECT / CONNACK (3.1, 3.2),
PINGREQ (3.12), DISCONNECT (3.14), AUTH (3.15), authentication (4.12) and error handling (4.13).
Every test speaks MQTT 5.0 byte for byte to the real broker (4 workers)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()
# A broker that supports QoS 0 and 1 only, no retained messages, no zero-length client ids, at most
# 2 inbound QoS 2 in flight and packets of at most 100 bytes.
limited = SharedBroker(config="max_qos 1\nretain_available false\nallow_zero_length_clientid false\n"
                              "receive_maximum 2\nmax_packet_size 100\n")
LIMITED_CONNACK_PROPS = (p_u16(0x21, 2) + p_u16(0x22, 10) + p_byte(0x24, 1) + p_byte(0x25, 0) +
                         p_u32(0x27, 100))
# A broker that lets no client in (no password file, anonymous access off).
closed = SharedBroker(config="allow_anonymous false\n")
# A broker whose max_keepalive is 2 s: 5.0 clients get Server Keep Alive 2.
short_keepalive = SharedBroker(config="max_keepalive 2\n")

CONNECT_REASON_CODES = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
                        0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
DISCONNECT_REASON_CODES = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
                           0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
                           0xA0, 0xA1, 0xA2}


def refused(b, data, code):
    """Sends raw bytes on a new connection and asserts CONNACK `code` then close."""
    c = Client(b.port)
    c.send(data)
    expect_refused5(c, code)


def assigned_id(connack):
    """The Assigned Client Identifier of a CONNACK: `auto-` + an uppercase UUID."""
    m = re.search(rb"\x12\x00\x29(auto-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})",
                  connack or b"")
    assert m, f"no Assigned Client Identifier in {connack.hex() if connack else connack}"
    return m.group(1).decode()


def closed_silently(c):
    got = c.expect_closed()
    assert got == [], f"expected a close without any packet, got {[p.hex() for p in got]}"


def watcher(b, cid, topic, opts=0):
    """A subscriber on a worker other than 0 (the will clients below are put on worker 0)."""
    return subscribed5(b, id_on_worker(cid, 1), [(topic, opts)])


# ---- 1.5 Data representation ---------------------------------------------------------------------

def test_MQTT_1_5_4_1():
    # A surrogate (U+D800, ED A0 80) in a topic filter: Malformed Packet.
    c = connected5(broker(), "c1541")
    c.send(subscribe5(1, [(b"c1541/\xed\xa0\x80", 0)]))
    expect_disconnect5(c, 0x81)


def test_MQTT_1_5_4_1_b():
    # Ill-formed UTF-8 (a lone continuation byte) in the client identifier: CONNACK 0x81.
    refused(broker(), connect5(b"c1541b\x80"), 0x81)


def test_MQTT_1_5_4_2():
    # U+0000 in a topic name: Malformed Packet.
    c = connected5(broker(), "c1542")
    c.send(publish5(b"c1542/a\x00b", "x"))
    expect_disconnect5(c, 0x81)


def test_MQTT_1_5_4_3():
    # EF BB BF is U+FEFF and part of the topic: "\ufeffc1543/t" and "c1543/t" are different topics.
    b = broker()
    sub = subscribed5(b, "c1543-sub", [(b"\xef\xbb\xbfc1543/t", 0)])
    pub = connected5(b, "c1543-pub")
    pub.send(publish5("c1543/t", "plain"))
    pub.send(publish5(b"\xef\xbb\xbfc1543/t", "bom"))
    expect_publish5(sub, b"\xef\xbb\xbfc1543/t", b"bom")
    expect_nothing(sub)


def test_MQTT_1_5_5_1():
    # PINGREQ whose Remaining Length 0 is encoded in two bytes (80 00): Malformed Packet.
    c = connected5(broker(), "c1551")
    c.send(bytes([0xC0, 0x80, 0x00]))
    expect_disconnect5(c, 0x81)


def test_MQTT_1_5_5_1_b():
    # A Property Length of 0 encoded in two bytes (80 00) inside a PUBLISH: Malformed Packet.
    c = connected5(broker(), "c1551b")
    c.send(packet(0x30, s("c1551b/t") + b"\x80\x00" + b"x"))
    expect_disconnect5(c, 0x81)


def test_MQTT_1_5_7_1():
    # A User Property (UTF-8 String Pair) whose value is not UTF-8: Malformed Packet.
    c = connected5(broker(), "c1571")
    c.send(publish5("c1571/t", "x", props=b"\x26" + s("key") + s(b"\xc3\x28")))
    expect_disconnect5(c, 0x81)


# ---- 2 Control packet format ---------------------------------------------------------------------

def test_MQTT_2_1_3_1():
    # PINGREQ with a reserved flag bit set (C1): Malformed Packet.
    c = connected5(broker(), "c2131")
    c.send(bytes([0xC1, 0x00]))
    expect_disconnect5(c, 0x81)


def test_MQTT_2_1_3_1_b():
    # SUBSCRIBE with flags 0000 instead of 0010.
    c = connected5(broker(), "c2131b")
    c.send(bytes([0x80]) + subscribe5(1, [("c2131b/t", 0)])[1:])
    expect_disconnect5(c, 0x81)


def test_MQTT_2_2_2_1():
    # Packets without properties carry a Property Length of 0: CONNACK (refused), SUBACK, UNSUBACK.
    b = broker()
    refused(b, connect5("c2221-r", props=p_u16(0x21, 0)), 0x82)  # 20 03 00 82 00
    c = connected5(b, "c2221")
    c.send(subscribe5(7, [("c2221/t", 1)]))
    c.expect(bytes([0x90, 0x04, 0x00, 0x07, 0x00, 0x01]))
    c.send(unsubscribe5(8, ["c2221/t"]))
    c.expect(bytes([0xB0, 0x04, 0x00, 0x08, 0x00, 0x00]))


# ---- 3.1 CONNECT ---------------------------------------------------------------------------------

def test_MQTT_3_1_0_1():
    # An AUTH packet (a 5.0-only type) as the first packet: closed, nothing sent back.
    c = Client(broker().port)
    c.send(bytes([0xF0, 0x00]))
    closed_silently(c)


def test_MQTT_3_1_0_2():
    # A second CONNECT is a Protocol Error: DISCONNECT 0x82, then close.
    c = connected5(broker(), "c3102")
    c.send(connect5("c3102"))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_1_2_1():
    # Protocol name "MQTX" with level 5: closed without CONNACK.
    c = Client(broker().port)
    c.send(raw_connect(0x02, b"\x00" + s("c3121"), name=b"MQTX", level=5))
    closed_silently(c)


def test_MQTT_3_1_2_3():
    # The reserved CONNECT flag set: CONNACK 0x81 (Malformed Packet), then close.
    refused(broker(), raw_connect(0x03, b"\x00" + s("c3123"), level=5), 0x81)


def test_MQTT_3_1_2_7():
    # Will flag 1: the will is stored and published when the connection closes without DISCONNECT.
    b = broker()
    sub = watcher(b, "c3127-sub", "c3127/will", 1)
    w = connected5(b, id_on_worker("c3127-w", 0), will=("c3127/will", "gone", 1, False))
    w.close()
    pid = expect_publish5(sub, "c3127/will", b"gone", qos=1)
    sub.send(ack5(0x40, pid))


def test_MQTT_3_1_2_9():
    # Will flag 1 without Will Properties, Will Topic and Will Payload: CONNACK 0x81.
    refused(broker(), raw_connect(0x06, b"\x00" + s("c3129"), level=5), 0x81)


def test_MQTT_3_1_2_9_b():
    # Will Properties present, Will Topic and Will Payload missing.
    refused(broker(), raw_connect(0x06, b"\x00" + s("c3129b") + b"\x00", level=5), 0x81)


def test_MQTT_3_1_2_10():
    # DISCONNECT 0x00 removes the will: nothing is published when the connection then closes.
    b = broker()
    sub = watcher(b, "c31210-sub", "c31210/will")
    w = connected5(b, id_on_worker("c31210-w", 0), will=("c31210/will", "x", 0, False))
    w.send(bytes([0xE0, 0x01, 0x00]))
    w.expect_closed()
    pub = connected5(b, "c31210-pub")
    pub.send(publish5("c31210/will", "marker"))
    expect_publish5(sub, "c31210/will", b"marker")
    expect_nothing(sub)


def test_MQTT_3_1_2_10_b():
    # Once published, the will is gone: it is published exactly once.
    b = broker()
    sub = watcher(b, "c31210b-sub", "c31210b/will")
    w = connected5(b, id_on_worker("c31210b-w", 0), will=("c31210b/will", "once", 0, False))
    w.close()
    expect_publish5(sub, "c31210b/will", b"once")
    expect_nothing(sub, 0.5)


def test_MQTT_3_1_2_11():
    # Will flag 0 with Will QoS 1: CONNACK 0x81.
    refused(broker(), raw_connect(0x02 | 0x08, b"\x00" + s("c31211"), level=5), 0x81)


def test_MQTT_3_1_2_12():
    # Will QoS 3: CONNACK 0x81.
    payload = b"\x00" + s("c31212") + b"\x00" + s("c31212/will") + s("x")
    refused(broker(), raw_connect(0x02 | 0x04 | 0x18, payload, level=5), 0x81)


def test_MQTT_3_1_2_12_b():
    # Will QoS 2 is accepted, and the will is published at QoS 2.
    b = broker()
    sub = watcher(b, "c31212b-sub", "c31212b/will", 2)
    w = connected5(b, id_on_worker("c31212b-w", 0), will=("c31212b/will", "q2", 2, False))
    w.close()
    pid = expect_publish5(sub, "c31212b/will", b"q2", qos=2)
    sub.send(ack5(0x50, pid))
    sub.expect(ack5(0x62, pid))
    sub.send(ack5(0x70, pid))


def test_MQTT_3_1_2_13():
    # Will flag 0 with Will Retain 1: CONNACK 0x81.
    refused(broker(), raw_connect(0x02 | 0x20, b"\x00" + s("c31213"), level=5), 0x81)


def test_MQTT_3_1_2_14():
    # Will Retain 0: published as a non-retained message (a Retain As Published subscriber sees
    # RETAIN 0, and a later subscriber gets no retained message).
    b = broker()
    sub = watcher(b, "c31214-sub", "c31214/will", 0x08)
    w = connected5(b, id_on_worker("c31214-w", 0), will=("c31214/will", "plain", 0, False))
    w.close()
    expect_publish5(sub, "c31214/will", b"plain", retain=False)
    late = subscribed5(b, "c31214-late", [("c31214/will", 0)])
    expect_nothing(late)
    connected5(b, "c31214-pub").send(publish5("c31214/will", "marker"))
    expect_publish5(late, "c31214/will", b"marker")


def test_MQTT_3_1_2_15():
    # Will Retain 1: published as a retained message.
    b = broker()
    sub = watcher(b, "c31215-sub", "c31215/will", 0x08)
    w = connected5(b, id_on_worker("c31215-w", 0), will=("c31215/will", "kept", 0, True))
    w.close()
    expect_publish5(sub, "c31215/will", b"kept", retain=True)
    late = subscribed5(b, "c31215-late", [("c31215/will", 0)])
    expect_publish5(late, "c31215/will", b"kept", retain=True)
    pub = connected5(b, "c31215-clean")
    pub.send(publish5("c31215/will", b"", retain=True))  # remove the retained will


def test_MQTT_3_1_2_16():
    # User Name Flag 0 but a user name in the payload: the bytes are left over, CONNACK 0x81.
    refused(broker(), raw_connect(0x02, b"\x00" + s("c31216") + s("user"), level=5), 0x81)


def test_MQTT_3_1_2_17():
    # User Name Flag 1 without a user name.
    refused(broker(), raw_connect(0x82, b"\x00" + s("c31217"), level=5), 0x81)


def test_MQTT_3_1_2_17_b():
    # User Name Flag 1 with a user name is accepted.
    c = Client(broker().port)
    c.send(raw_connect(0x82, b"\x00" + s("c31217b") + s("user"), level=5))
    c.expect(connack5())


def test_MQTT_3_1_2_18():
    # Password Flag 0 but a password after the user name.
    refused(broker(), raw_connect(0x82, b"\x00" + s("c31218") + s("u") + s("pw"), level=5), 0x81)


def test_MQTT_3_1_2_19():
    # Password Flag 1 without a password.
    refused(broker(), raw_connect(0x42, b"\x00" + s("c31219"), level=5), 0x81)


def test_MQTT_3_1_2_19_b():
    # 5.0 allows a password without a user name: accepted.
    c = Client(broker().port)
    c.send(raw_connect(0x42, b"\x00" + s("c31219b") + s("pw"), level=5))
    c.expect(connack5())


def test_MQTT_3_1_2_22():
    # Keep Alive 1: without any packet the server sends DISCONNECT 0x8D after 1.5 s and closes.
    c = connected5(broker(), "c31222", keepalive=1)
    start = time.time()
    got = c.expect_closed(5)
    elapsed = time.time() - start
    assert got == [bytes([0xE0, 0x01, 0x8D])], [p.hex() for p in got]
    assert 1.4 <= elapsed <= 3.0, f"closed after {elapsed:.2f} s"


def test_MQTT_3_1_2_22_b():
    # Packets reset the clock: PINGREQ every 0.8 s keeps a Keep Alive 1 connection open for 3 s.
    c = connected5(broker(), "c31222b", keepalive=1)
    for _ in range(4):
        time.sleep(0.8)
        c.send(PINGREQ)
        c.expect(PINGRESP)
    c.send(DISCONNECT)
    assert c.expect_closed() == []


def test_MQTT_3_1_2_28():
    # Request Response Information absent or 0: no Response Information; 1: `response/` + client id.
    b = broker()
    connected5(b, "c31228-a")  # default CONNACK, no 0x1A
    connected5(b, "c31228-b", props=p_byte(0x19, 0))
    connected5(b, "c31228-c", props=p_byte(0x19, 1),
               connack_props=p_str(0x1A, "response/c31228-c") + V5_CONNACK_PROPS)


def test_MQTT_3_1_2_29():
    # Request Problem Information 0: no Reason String or User Property on PUBACK, SUBACK, UNSUBACK
    # (here with failure codes, where one would be most likely) nor on the DISCONNECT.
    c = connected5(broker(), "c31229", props=p_byte(0x17, 0))
    c.send(publish5("c31229/nobody", "x", qos=1, pid=1))
    c.expect(bytes([0x40, 0x03, 0x00, 0x01, 0x10]))
    c.send(subscribe5(2, [("c31229/#/bad", 0)]))
    c.expect(suback5(2, 0x8F))
    c.send(unsubscribe5(3, ["c31229/none"]))
    c.expect(unsuback5(3, 0x11))
    c.send(connect5("c31229"))
    assert c.expect_closed() == [bytes([0xE0, 0x01, 0x82])]


def test_MQTT_3_1_3_1():
    # Every payload field, in order (client id, will properties, will topic, will payload, user name,
    # password): accepted, and the will (with its properties) is published on close.
    b = broker()
    sub = watcher(b, "c3131-sub", "c3131/will")
    cid = id_on_worker("c3131-w", 0)
    wprops = p_str(0x03, "text/plain")
    c = Client(b.port)
    c.send(connect5(cid, will=("c3131/will", "bye", 0, False), will_props=wprops, username="user",
                    password="secret"))
    c.expect(connack5())
    c.close()
    expect_publish5(sub, "c3131/will", b"bye", props=wprops)


def test_MQTT_3_1_3_2():
    # The client id identifies the session: same id resumes it, another id does not.
    b = broker()
    a = connected5(b, "c3132-a", props=p_u32(0x11, 60))
    a.send(subscribe5(1, [("c3132/t", 1)]))
    a.expect(suback5(1, 1))
    a.send(DISCONNECT)
    a.expect_closed()
    other = connected5(b, "c3132-b", clean=False, session_present=False)
    other.send(DISCONNECT)
    a = connected5(b, "c3132-a", clean=False, session_present=True, props=p_u32(0x11, 60))
    pub = connected5(b, "c3132-pub")
    pub.send(publish5("c3132/t", "hi", qos=1, pid=1))
    pub.expect(ack5(0x40, 1))
    pid = expect_publish5(a, "c3132/t", b"hi", qos=1)
    a.send(ack5(0x40, pid))
    a.send(disconnect5(0, p_u32(0x11, 0)))  # end the session
    a.expect_closed()


def test_MQTT_3_1_3_3():
    # A CONNECT without a client identifier field: CONNACK 0x81.
    refused(broker(), raw_connect(0x02, b"\x00", level=5), 0x81)


def test_MQTT_3_1_3_4():
    # A client identifier that is not UTF-8 (overlong encoding C0 80): CONNACK 0x81.
    refused(broker(), connect5(b"c3134\xc0\x80"), 0x81)


def test_MQTT_3_1_3_5():
    # 23 bytes of 0-9a-zA-Z are accepted.
    c = connected5(broker(), "0123456789abcdefghijXYZ")
    c.send(PINGREQ)
    c.expect(PINGRESP)


def test_MQTT_3_1_3_6():
    # A zero-length client id gets a unique one, returned as Assigned Client Identifier (before the
    # usual CONNACK properties).
    b = broker()
    ids = []
    for _ in range(2):
        c = Client(b.port)
        c.send(connect5(""))
        got = c.recv()
        cid = assigned_id(got)
        assert got == connack5(props=p_str(0x12, cid) + V5_CONNACK_PROPS), got.hex()
        ids.append(cid)
    assert ids[0] != ids[1], ids


def test_MQTT_3_1_3_7():
    # The CONNECT is processed as if the client had sent the assigned id: Response Information is
    # built from it, and a later CONNECT with that id resumes the session.
    b = broker()
    c = Client(b.port)
    c.send(connect5("", props=p_u32(0x11, 60) + p_byte(0x19, 1)))
    got = c.recv()
    assigned = assigned_id(got)
    assert got == connack5(props=p_str(0x12, assigned) + p_str(0x1A, "response/" + assigned) +
                           V5_CONNACK_PROPS), got.hex()
    c.send(subscribe5(1, [("c3137/t", 1)]))
    c.expect(suback5(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    again = connected5(b, assigned, clean=False, session_present=True, props=p_u32(0x11, 60))
    pub = connected5(b, "c3137-pub")
    pub.send(publish5("c3137/t", "mine", qos=1, pid=1))
    pub.expect(ack5(0x40, 1))
    pid = expect_publish5(again, "c3137/t", b"mine", qos=1)
    again.send(ack5(0x40, pid))
    again.send(disconnect5(0, p_u32(0x11, 0)))


def test_MQTT_3_1_3_8():
    # allow_zero_length_clientid false: a zero-length id is rejected with CONNACK 0x85, then close.
    refused(limited(), connect5(""), 0x85)


def test_MQTT_3_1_3_10():
    # The will's User Properties keep their order (repeated keys included) when it is published.
    b = broker()
    sub = watcher(b, "c31310-sub", "c31310/will")
    wprops = p_user("z", "1") + p_user("a", "2") + p_user("z", "0") + p_user("m", "")
    w = connected5(b, id_on_worker("c31310-w", 0), will=("c31310/will", "w", 0, False), will_props=wprops)
    w.close()
    expect_publish5(sub, "c31310/will", b"w", props=wprops)


def test_MQTT_3_1_3_11():
    # A Will Topic that is not UTF-8: CONNACK 0x81.
    payload = b"\x00" + s("c31311") + b"\x00" + s(b"c31311/\xff") + s("x")
    refused(broker(), raw_connect(0x06, payload, level=5), 0x81)


def test_MQTT_3_1_3_12():
    # A User Name that is not UTF-8: CONNACK 0x81.
    refused(broker(), raw_connect(0x82, b"\x00" + s("c31312") + s(b"us\xffer"), level=5), 0x81)


def test_MQTT_3_1_4_1():
    # A CONNECT that does not match the format (a byte after the last field): CONNACK 0x81, close.
    refused(broker(), raw_connect(0x02, b"\x00" + s("c3141") + b"\x00", level=5), 0x81)


def test_MQTT_3_1_4_1_b():
    # A property that CONNECT may not carry (Topic Alias, 0x23): CONNACK 0x81.
    refused(broker(), connect5("c3141b", props=p_u16(0x23, 1)), 0x81)


def test_MQTT_3_1_4_1_c():
    # A property given twice (Session Expiry Interval): Protocol Error, CONNACK 0x82.
    refused(broker(), connect5("c3141c", props=p_u32(0x11, 1) + p_u32(0x11, 2)), 0x82)


def test_MQTT_3_1_4_2():
    # Anonymous access off and no way to authenticate: CONNACK 0x87 (Not authorized), then close.
    refused(closed(), connect5("c3142", username="u", password="p"), 0x87)


def test_MQTT_3_1_4_3():
    # A second connection with the same client id: the first gets DISCONNECT 0x8E and is closed.
    b = broker()
    first = connected5(b, "c3143")
    second = connected5(b, "c3143")
    assert first.expect_closed() == [bytes([0xE0, 0x01, 0x8E])]
    second.send(PINGREQ)
    second.expect(PINGRESP)


def test_MQTT_3_1_4_5():
    # An accepted CONNECT gets CONNACK with Reason Code 0x00.
    c = Client(broker().port)
    c.send(connect5("c3145"))
    c.expect(bytes([0x20, 0x0B, 0x00, 0x00, 0x08, 0x22, 0x00, 0x0A, 0x27, 0x01, 0x00, 0x00, 0x00]))


def test_MQTT_3_1_4_6():
    # A refused CONNECT (Receive Maximum 0) followed at once by a PUBLISH: the PUBLISH is not processed.
    b = broker()
    sub = subscribed5(b, "c3146-sub", [("c3146/t", 0)])
    c = Client(b.port)
    c.send(connect5("c3146", props=p_u16(0x21, 0)) + publish5("c3146/t", "must not pass"))
    expect_refused5(c, 0x82)
    pub = connected5(b, "c3146-pub")
    pub.send(publish5("c3146/t", "marker"))
    expect_publish5(sub, "c3146/t", b"marker")
    expect_nothing(sub)


# ---- 3.2 CONNACK ---------------------------------------------------------------------------------

def test_MQTT_3_2_0_1():
    # A resumed session with a queued message: CONNACK comes first, then the PUBLISH.
    b = broker()
    c = connected5(b, "c3201", props=p_u32(0x11, 60))
    c.send(subscribe5(1, [("c3201/t", 1)]))
    c.expect(suback5(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    pub = connected5(b, "c3201-pub")
    pub.send(publish5("c3201/t", "queued", qos=1, pid=1))
    pub.expect(ack5(0x40, 1))
    c = Client(b.port)
    c.send(connect5("c3201", clean=False, props=p_u32(0x11, 60)))
    c.expect(connack5(True))
    pid = expect_publish5(c, "c3201/t", b"queued", qos=1)
    c.send(ack5(0x40, pid))
    c.send(disconnect5(0, p_u32(0x11, 0)))


def test_MQTT_3_2_0_2():
    # At most one CONNACK: a second CONNECT gets DISCONNECT, not another CONNACK.
    c = Client(broker().port)
    c.send(connect5("c3202") + connect5("c3202"))
    got = c.expect_closed()
    assert len(got) == 2 and got[0] == connack5(), [p.hex() for p in got]
    check_disconnect5(got[1], 0x82)


def test_MQTT_3_2_2_1():
    # CONNACK Acknowledge Flags: bits 7-1 are 0 (byte 01 with a session present, 00 without).
    b = broker()
    c = connected5(b, "c3221", props=p_u32(0x11, 60))
    c.send(DISCONNECT)
    c.expect_closed()
    c = Client(b.port)
    c.send(connect5("c3221", clean=False))
    got = c.recv()
    assert got == connack5(True) and got[2] == 0x01, got.hex()


def test_MQTT_3_2_2_2():
    # Clean Start 1 with a stored session: Session Present 0.
    b = broker()
    c = connected5(b, "c3222", props=p_u32(0x11, 60))
    c.send(DISCONNECT)
    c.expect_closed()
    connected5(b, "c3222", clean=True, session_present=False)


def test_MQTT_3_2_2_3():
    # Clean Start 0: Session Present 1 if the server has the session, 0 if not; Reason Code 0.
    b = broker()
    c = connected5(b, "c3223", clean=False, session_present=False, props=p_u32(0x11, 60))
    c.send(DISCONNECT)
    c.expect_closed()
    c = connected5(b, "c3223", clean=False, session_present=True)  # expiry 0 from now on
    c.send(DISCONNECT)
    c.expect_closed()
    connected5(b, "c3223", clean=False, session_present=False)


def test_MQTT_3_2_2_6():
    # A refused CONNECT for a client id with a stored session: Session Present 0.
    b = broker()
    c = connected5(b, "c3226", props=p_u32(0x11, 60))
    c.send(DISCONNECT)
    c.expect_closed()
    refused(b, connect5("c3226", clean=False, props=p_u16(0x21, 0)), 0x82)  # 20 03 00 82 00
    c = connected5(b, "c3226", clean=False, session_present=True)
    c.send(DISCONNECT)


def test_MQTT_3_2_2_7():
    # A CONNACK of 0x80 or more is followed by a close, even if the client sends more.
    c = Client(broker().port)
    c.send(connect5("c3227", props=p_u32(0x27, 0)))  # Maximum Packet Size 0: Protocol Error
    assert c.recv() == connack5(False, 0x82)
    try:
        c.send(PINGREQ)
    except OSError:
        pass
    closed_silently(c)


def test_MQTT_3_2_2_8():
    # Every refusal uses a Connect Reason Code.
    b = broker()
    cases = [
        (b, raw_connect(0x01, b"\x00" + s("c3228"), level=5)),
        (b, connect5("c3228", props=p_byte(0x17, 2))),
        (b, connect5("c3228", props=p_str(0x15, "NOPE"))),
        (limited(), connect5("")),
        (limited(), connect5("c3228", will=("c3228/w", "x", 2, False))),
        (limited(), connect5("c3228", will=("c3228/w", "x", 0, True))),
        (closed(), connect5("c3228")),
    ]
    for br, data in cases:
        c = Client(br.port)
        c.send(data)
        got = c.expect_closed()
        assert len(got) == 1 and got[0] == connack5(False, got[0][3]), [p.hex() for p in got]
        assert got[0][3] in CONNECT_REASON_CODES and got[0][3] >= 0x80, got[0].hex()


def test_MQTT_3_2_2_9():
    # max_qos 1: the CONNACK carries Maximum QoS 1.
    connected5(limited(), "c3229", connack_props=LIMITED_CONNACK_PROPS)


def test_MQTT_3_2_2_10():
    # max_qos 1: SUBSCRIBE with Requested QoS 0, 1 and 2 is accepted (granted 0, 1, 1).
    c = connected5(limited(), "c32210", connack_props=LIMITED_CONNACK_PROPS)
    c.send(subscribe5(1, [("c32210/a", 0), ("c32210/b", 1), ("c32210/c", 2)]))
    c.expect(suback5(1, 0, 1, 1))


def test_MQTT_3_2_2_11():
    # Client requirement; the server answers a PUBLISH above Maximum QoS with DISCONNECT 0x9B.
    c = connected5(limited(), "c32211", connack_props=LIMITED_CONNACK_PROPS)
    c.send(publish5("c32211/t", "x", qos=2, pid=1))
    expect_disconnect5(c, 0x9B)


def test_MQTT_3_2_2_12():
    # max_qos 1 and a Will QoS 2: CONNACK 0x9B, then close.
    refused(limited(), connect5("c32212", will=("c32212/w", "x", 2, False)), 0x9B)


def test_MQTT_3_2_2_13():
    # retain_available false and Will Retain 1: CONNACK 0x9A, then close.
    refused(limited(), connect5("c32213", will=("c32213/w", "x", 0, True)), 0x9A)


def test_MQTT_3_2_2_14():
    # Client requirement; the server answers RETAIN 1 with DISCONNECT 0x9A when retain is unavailable.
    c = connected5(limited(), "c32214", connack_props=LIMITED_CONNACK_PROPS)
    c.send(publish5("c32214/t", "x", retain=True))
    expect_disconnect5(c, 0x9A)


def test_MQTT_3_2_2_15():
    # Client requirement; a packet above the server's Maximum Packet Size (100) gets DISCONNECT 0x95.
    c = connected5(limited(), "c32215", connack_props=LIMITED_CONNACK_PROPS)
    big = publish5("c32215/t", b"x" * 100)
    assert len(big) > 100
    c.send(big)
    expect_disconnect5(c, 0x95)


def test_MQTT_3_2_2_15_b():
    # A packet of exactly 100 bytes is accepted.
    b = limited()
    sub = subscribed5(b, "c32215b-sub", [("c32215b/t", 0)], connack_props=LIMITED_CONNACK_PROPS)
    c = connected5(b, "c32215b", connack_props=LIMITED_CONNACK_PROPS)
    exact = publish5("c32215b/t", b"y" * 86)
    assert len(exact) == 100, len(exact)
    c.send(exact)
    expect_publish5(sub, "c32215b/t", b"y" * 86)


def test_MQTT_3_2_2_16():
    # The Assigned Client Identifier is new: eight clients get eight different ones, none of them
    # the id of a session that exists (one connected client uses the configured prefix too).
    b = broker()
    connected5(b, "auto-00000000-0000-0000-0000-000000000000")
    seen = set()
    for _ in range(8):
        c = Client(b.port)
        c.send(connect5(""))
        got = c.recv()
        cid = assigned_id(got)
        assert got == connack5(props=p_str(0x12, cid) + V5_CONNACK_PROPS), got.hex()
        assert cid not in seen and cid != "auto-00000000-0000-0000-0000-000000000000", cid
        seen.add(cid)


def test_MQTT_3_2_2_22():
    # Without a Server Keep Alive (default max_keepalive) the client's Keep Alive 1 is used.
    c = Client(broker().port)
    c.send(connect5("c32222", keepalive=1))
    c.expect(connack5())  # no 0x13 property
    start = time.time()
    assert c.expect_closed(5) == [bytes([0xE0, 0x01, 0x8D])]
    assert 1.4 <= time.time() - start <= 3.0


def test_v5_server_keep_alive():
    # max_keepalive 2: a client asking for 60 (or 0) gets Server Keep Alive 2, and the server
    # applies 2 s: DISCONNECT 0x8D after 3 s of silence.
    b = short_keepalive()
    connected5(b, "sk-zero", keepalive=0, connack_props=p_u16(0x13, 2) + V5_CONNACK_PROPS)
    c = connected5(b, "sk-sixty", keepalive=60, connack_props=p_u16(0x13, 2) + V5_CONNACK_PROPS)
    start = time.time()
    assert c.expect_closed(6) == [bytes([0xE0, 0x01, 0x8D])]
    elapsed = time.time() - start
    assert 2.9 <= elapsed <= 4.5, f"closed after {elapsed:.2f} s"


# ---- 3.12 PINGREQ, 3.14 DISCONNECT, 3.15 AUTH ------------------------------------------------------

def test_MQTT_3_12_4_1():
    c = connected5(broker(), "c31241")
    c.send(PINGREQ)
    c.expect(PINGRESP)
    c.send(PINGREQ + PINGREQ)
    c.expect(PINGRESP)
    c.expect(PINGRESP)


def test_MQTT_3_14_0_1():
    # Before a successful CONNACK the server never sends DISCONNECT: a malformed CONNECT gets
    # CONNACK 0x81, and a PUBLISH before CONNECT just a close.
    b = broker()
    refused(b, raw_connect(0x02, b"\x00" + s("c31401") + b"junk", level=5), 0x81)
    c = Client(b.port)
    c.send(publish5("c31401/t", "x"))
    closed_silently(c)


def test_MQTT_3_14_1_1():
    # DISCONNECT with a reserved flag set (E1): the server answers DISCONNECT 0x81 and closes.
    c = connected5(broker(), "c31411")
    c.send(bytes([0xE1, 0x00]))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_14_2_1():
    # The server's DISCONNECT reason codes are DISCONNECT Reason Codes: 0x8B on shutdown.
    with Broker() as b:
        c = connected5(b, "c31421")
        b.proc.send_signal(15)
        got = c.expect_closed(10)
        assert got == [bytes([0xE0, 0x01, 0x8B])], [p.hex() for p in got]
        assert got[0][2] in DISCONNECT_REASON_CODES


def test_MQTT_3_14_2_2():
    # The server never sends a Session Expiry Interval in DISCONNECT (takeover and keep alive shown).
    b = broker()
    first = connected5(b, "c31422", props=p_u32(0x11, 30))
    second = connected5(b, "c31422", clean=False, session_present=True, keepalive=1, props=p_u32(0x11, 30))
    assert first.expect_closed() == [bytes([0xE0, 0x01, 0x8E])]
    assert second.expect_closed(5) == [bytes([0xE0, 0x01, 0x8D])]
    connected5(b, "c31422", session_present=False).send(DISCONNECT)  # ends the stored session


def test_MQTT_3_14_2_3():
    # A client with Maximum Packet Size 20 commits a Protocol Error: the DISCONNECT must leave out a
    # Reason String that would make it larger than 20 bytes (E0 01 82 is 3 bytes).
    c = connected5(broker(), "c31423", props=p_u32(0x27, 20))
    c.send(connect5("c31423"))
    got = c.expect_closed()
    too_big = [p.hex() for p in got if len(p) > 20]
    assert not too_big, f"packet above the client's Maximum Packet Size: {too_big}"
    assert got == [bytes([0xE0, 0x01, 0x82])], [p.hex() for p in got]


def test_MQTT_3_14_4_1():
    # After its DISCONNECT the server sends nothing more: a subscriber fed every 0.1 s times out
    # (Keep Alive 1); the DISCONNECT 0x8D is the last packet before the close.
    b = broker()
    sub = subscribed5(b, id_on_worker("c31441-sub", 1), [("c31441/t", 0)], keepalive=1)
    pub = connected5(b, id_on_worker("c31441-pub", 2))
    got = []
    deadline = time.time() + 5
    closed_at = None
    while time.time() < deadline and closed_at is None:
        pub.send(publish5("c31441/t", "tick"))
        try:
            while True:
                p = sub.recv(0.1)
                if p is None:
                    break
                got.append(p)
        except EOFError:
            closed_at = time.time()
    assert closed_at is not None, "subscriber not disconnected"
    assert got and got[-1] == bytes([0xE0, 0x01, 0x8D]), [p.hex() for p in got[-3:]]
    assert all(p == publish5("c31441/t", "tick") for p in got[:-1])
    assert len(got) >= 5, "publications were flowing before the DISCONNECT"


def test_MQTT_3_14_4_2():
    # After sending DISCONNECT the server closes the connection (here for a Protocol Error).
    c = connected5(broker(), "c31442")
    c.send(publish5("c31442/t", "x", props=p_varint(0x0B, 1)))  # Subscription Identifier from a client
    start = time.time()
    expect_disconnect5(c, 0x82)
    assert time.time() - start < 1.0


def test_MQTT_3_14_4_3():
    # DISCONNECT 0x00 (here written out with an empty property block): the will is discarded.
    b = broker()
    sub = watcher(b, "c31443-sub", "c31443/will")
    w = connected5(b, id_on_worker("c31443-w", 0), will=("c31443/will", "x", 0, False))
    w.send(bytes([0xE0, 0x02, 0x00, 0x00]))
    assert w.expect_closed() == []
    time.sleep(0.2)
    pub = connected5(b, "c31443-pub")
    pub.send(publish5("c31443/will", "marker"))
    expect_publish5(sub, "c31443/will", b"marker")
    expect_nothing(sub)


def test_v5_disconnect_with_will():
    # DISCONNECT 0x04 (Disconnect with Will Message) keeps the will: it is published.
    b = broker()
    sub = watcher(b, "dww-sub", "dww/will")
    w = connected5(b, id_on_worker("dww-w", 0), will=("dww/will", "still", 0, False))
    w.send(bytes([0xE0, 0x01, 0x04]))
    assert w.expect_closed() == []
    expect_publish5(sub, "dww/will", b"still")


def test_MQTT_3_15_1_1():
    # AUTH with a reserved flag set (F1): Malformed Packet.
    c = connected5(broker(), "c31511")
    c.send(bytes([0xF1, 0x00]))
    expect_disconnect5(c, 0x81)


# ---- 4.12 Enhanced authentication, 4.13 Handling errors --------------------------------------------

def test_MQTT_4_12_0_1():
    # An Authentication Method the server does not support: CONNACK 0x8C, then close.
    refused(broker(), connect5("c41201", props=p_str(0x15, "SCRAM-SHA-1") + p_str(0x16, b"\x01\x02")), 0x8C)


def test_MQTT_4_12_0_6():
    # No Authentication Method in CONNECT: no Authentication Method in CONNACK (the exact default
    # CONNACK) and no AUTH from the server; a client AUTH is a Protocol Error, answered by DISCONNECT.
    c = connected5(broker(), "c41206")
    c.send(bytes([0xF0, 0x02, 0x19, 0x00]))  # AUTH 0x19 Re-authenticate
    expect_disconnect5(c, 0x82)


def test_MQTT_4_13_1_1():
    # A Malformed Packet (0x81) and a Protocol Error (0x82) both end with DISCONNECT and a close.
    b = broker()
    c = connected5(b, "c41311")
    c.send(bytes([0x00, 0x00]))  # packet type 0
    expect_disconnect5(c, 0x81)
    c = connected5(b, "c41311")
    c.send(subscribe5(1, [("c41311/t", 0)], props=p_varint(0x0B, 1) + p_varint(0x0B, 2)))
    expect_disconnect5(c, 0x82)


def test_MQTT_4_13_2_1():
    # CONNACK or DISCONNECT with 0x80 or above: the connection is closed right after it.
    b = broker()
    c = Client(b.port)
    c.send(connect5("c41321", props=p_byte(0x19, 2)))  # Request Response Information 2
    start = time.time()
    expect_refused5(c, 0x82)
    c = connected5(b, "c41321")
    c.send(publish5("c41321/t", "x", props=p_u16(0x23, 0)))  # Topic Alias 0
    expect_disconnect5(c, 0x94)
    assert time.time() - start < 2.0


if __name__ == "__main__":
    main([
        test_MQTT_1_5_4_1, test_MQTT_1_5_4_1_b, test_MQTT_1_5_4_2, test_MQTT_1_5_4_3, test_MQTT_1_5_5_1,
        test_MQTT_1_5_5_1_b, test_MQTT_1_5_7_1, test_MQTT_2_1_3_1, test_MQTT_2_1_3_1_b, test_MQTT_2_2_2_1,
        test_MQTT_3_1_0_1, test_MQTT_3_1_0_2, test_MQTT_3_1_2_1, test_MQTT_3_1_2_3, test_MQTT_3_1_2_7,
        test_MQTT_3_1_2_9, test_MQTT_3_1_2_9_b, test_MQTT_3_1_2_10, test_MQTT_3_1_2_10_b,
        test_MQTT_3_1_2_11, test_MQTT_3_1_2_12, test_MQTT_3_1_2_12_b, test_MQTT_3_1_2_13,
        test_MQTT_3_1_2_14, test_MQTT_3_1_2_15, test_MQTT_3_1_2_16, test_MQTT_3_1_2_17,
        test_MQTT_3_1_2_17_b, test_MQTT_3_1_2_18, test_MQTT_3_1_2_19, test_MQTT_3_1_2_19_b,
        test_MQTT_3_1_2_22, test_MQTT_3_1_2_22_b, test_MQTT_3_1_2_28, test_MQTT_3_1_2_29, test_MQTT_3_1_3_1,
        test_MQTT_3_1_3_2, test_MQTT_3_1_3_3, test_MQTT_3_1_3_4, test_MQTT_3_1_3_5, test_MQTT_3_1_3_6,
        test_MQTT_3_1_3_7, test_MQTT_3_1_3_8, test_MQTT_3_1_3_10, test_MQTT_3_1_3_11, test_MQTT_3_1_3_12,
        test_MQTT_3_1_4_1, test_MQTT_3_1_4_1_b, test_MQTT_3_1_4_1_c, test_MQTT_3_1_4_2, test_MQTT_3_1_4_3,
        test_MQTT_3_1_4_5, test_MQTT_3_1_4_6, test_MQTT_3_2_0_1, test_MQTT_3_2_0_2, test_MQTT_3_2_2_1,
        test_MQTT_3_2_2_2, test_MQTT_3_2_2_3, test_MQTT_3_2_2_6, test_MQTT_3_2_2_7, test_MQTT_3_2_2_8,
        test_MQTT_3_2_2_9, test_MQTT_3_2_2_10, test_MQTT_3_2_2_11, test_MQTT_3_2_2_12, test_MQTT_3_2_2_13,
        test_MQTT_3_2_2_14, test_MQTT_3_2_2_15, test_MQTT_3_2_2_15_b, test_MQTT_3_2_2_16,
        test_MQTT_3_2_2_22, test_v5_server_keep_alive, test_MQTT_3_12_4_1, test_MQTT_3_14_0_1,
        test_MQTT_3_14_1_1, test_MQTT_3_14_2_1, test_MQTT_3_14_2_2, test_MQTT_3_14_2_3, test_MQTT_3_14_4_1,
        test_MQTT_3_14_4_2, test_MQTT_3_14_4_3, test_v5_disconnect_with_will, test_MQTT_3_15_1_1,
        test_MQTT_4_12_0_1, test_MQTT_4_12_0_6, test_MQTT_4_13_1_1, test_MQTT_4_13_2_1,
    ], broker, limited, closed, short_keepalive)
