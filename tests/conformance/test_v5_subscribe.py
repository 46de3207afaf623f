#!/usr/bin/python3
"""MQTT 5.0 conformance: subscription options and retained messages (3.3.1-9 to 3.3.1-13),
SUBSCRIBE / SUBACK (3.8, 3.9), UNSUBSCRIBE / UNSUBACK (3.10, 3.11), topic names and filters (4.7)
and shared subscriptions (4.8.2)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()

SUBACK_REASON_CODES = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}
UNSUBACK_REASON_CODES = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}
# Subscription options: QoS in bits 0-1, No Local 0x04, Retain As Published 0x08, Retain Handling.
NL, RAP, RH1, RH2 = 0x04, 0x08, 0x10, 0x20


def publisher(b, cid):
    return connected5(b, id_on_worker(cid, 2))


def retain(b, topic, payload, qos=0):
    """Stores a retained message (and waits until the broker has handled it)."""
    p = connected5(b, "retainer")
    p.send(publish5(topic, payload, qos=qos, pid=1, retain=True))
    if qos == 1:
        got = p.recv()
        assert got in (ack5(0x40, 1), ack5(0x40, 1, 0x10)), got.hex()
    p.send(PINGREQ)
    p.expect(PINGRESP)
    p.send(DISCONNECT)
    p.expect_closed()


def unretain(b, topic):
    retain(b, topic, b"")


def flush(c):
    c.send(PINGREQ)
    c.expect(PINGRESP)


# ---- 3.3.1 Retain Handling and Retain As Published ----------------------------------------------------

def test_MQTT_3_3_1_9():
    # Retain Handling 0: the retained messages matching the filter are sent (RETAIN 1), on the first
    # SUBSCRIBE and again on a repeated one.
    b = broker()
    retain(b, "s3319/a", "A")
    retain(b, "s3319/b", "B")
    c = connected5(b, id_on_worker("s3319", 1))
    for pid in (1, 2):
        c.send(subscribe5(pid, [("s3319/+", 0)]))
        c.expect(suback5(pid, 0))
        got = {c.recv(), c.recv()}
        assert got == {publish5("s3319/a", "A", retain=True), publish5("s3319/b", "B", retain=True)}, got
    unretain(b, "s3319/a")
    unretain(b, "s3319/b")


def test_MQTT_3_3_1_10():
    # Retain Handling 1: retained messages for a new subscription only, not when it already exists.
    b = broker()
    retain(b, "s33110/t", "R")
    c = connected5(b, id_on_worker("s33110", 1))
    c.send(subscribe5(1, [("s33110/t", RH1)]))
    c.expect(suback5(1, 0))
    expect_publish5(c, "s33110/t", b"R", retain=True)
    c.send(subscribe5(2, [("s33110/t", RH1 | 1)]))
    c.expect(suback5(2, 1))
    expect_nothing(c)
    p = publisher(b, "s33110-pub")
    p.send(publish5("s33110/t", "live"))
    expect_publish5(c, "s33110/t", b"live")
    unretain(b, "s33110/t")


def test_MQTT_3_3_1_11():
    # Retain Handling 2: no retained messages, but live messages flow.
    b = broker()
    retain(b, "s33111/t", "R")
    c = connected5(b, id_on_worker("s33111", 1))
    c.send(subscribe5(1, [("s33111/t", RH2)]))
    c.expect(suback5(1, 0))
    expect_nothing(c)
    p = publisher(b, "s33111-pub")
    p.send(publish5("s33111/t", "live"))
    expect_publish5(c, "s33111/t", b"live")
    unretain(b, "s33111/t")


def test_MQTT_3_3_1_12():
    # Retain As Published 0: a retained PUBLISH is forwarded to an existing subscription with RETAIN 0.
    b = broker()
    c = subscribed5(b, id_on_worker("s33112", 1), [("s33112/t", 0)])
    p = publisher(b, "s33112-pub")
    p.send(publish5("s33112/t", "r", retain=True))
    expect_publish5(c, "s33112/t", b"r", retain=False)
    unretain(b, "s33112/t")


def test_MQTT_3_3_1_13():
    # Retain As Published 1: RETAIN as in the received PUBLISH (1, then 0).
    b = broker()
    c = subscribed5(b, id_on_worker("s33113", 1), [("s33113/t", RAP)])
    p = publisher(b, "s33113-pub")
    p.send(publish5("s33113/t", "r", retain=True))
    p.send(publish5("s33113/t", "n", retain=False))
    expect_publish5(c, "s33113/t", b"r", retain=True)
    expect_publish5(c, "s33113/t", b"n", retain=False)
    unretain(b, "s33113/t")


def test_v5_retain_handling_3():
    # Retain Handling 3 is a Protocol Error.
    c = connected5(broker(), "s-rh3")
    c.send(subscribe5(1, [("s-rh3/t", 0x30)]))
    expect_disconnect5(c, 0x82)


def test_v5_subscription_identifier_zero():
    # Subscription Identifier 0 is a Protocol Error.
    c = connected5(broker(), "s-sid0")
    c.send(subscribe5(1, [("s-sid0/t", 0)], props=p_varint(0x0B, 0)))
    expect_disconnect5(c, 0x82)


def test_v5_subscription_identifier_on_retained():
    # Retained messages sent because of a SUBSCRIBE carry its Subscription Identifier.
    b = broker()
    retain(b, "s-sidr/t", "R")
    c = connected5(b, "s-sidr")
    c.send(subscribe5(1, [("s-sidr/#", 0)], props=p_varint(0x0B, 300)))
    c.expect(suback5(1, 0))
    expect_publish5(c, "s-sidr/t", b"R", retain=True, props=p_varint(0x0B, 300))
    unretain(b, "s-sidr/t")


# ---- 3.3.4-5, 3.8 SUBSCRIBE ---------------------------------------------------------------------------

def test_MQTT_3_3_4_5():
    # A shared and a non-shared subscription of one client both match: two copies, each with the
    # Subscription Identifier of its own subscription.
    b = broker()
    c = connected5(b, id_on_worker("s3345", 1))
    c.send(subscribe5(1, [("s3345/t", 0)], props=p_varint(0x0B, 1)))
    c.expect(suback5(1, 0))
    c.send(subscribe5(2, [("$share/g/s3345/t", 0)], props=p_varint(0x0B, 2)))
    c.expect(suback5(2, 0))
    p = publisher(b, "s3345-pub")
    p.send(publish5("s3345/t", "x"))
    got = {c.recv(), c.recv()}
    assert got == {publish5("s3345/t", "x", props=p_varint(0x0B, 1)),
                   publish5("s3345/t", "x", props=p_varint(0x0B, 2))}, [g.hex() for g in got]
    expect_nothing(c)


def test_MQTT_3_8_1_1():
    # SUBSCRIBE with flags 0011 instead of 0010: Malformed Packet.
    c = connected5(broker(), "s3811")
    c.send(bytes([0x83]) + subscribe5(1, [("s3811/t", 0)])[1:])
    expect_disconnect5(c, 0x81)


def test_MQTT_3_8_3_1():
    # A topic filter that is not UTF-8: Malformed Packet.
    c = connected5(broker(), "s3831")
    c.send(subscribe5(1, [(b"s3831/\xc1\xbf", 0)]))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_8_3_2():
    # A SUBSCRIBE without any Topic Filter: Protocol Error.
    c = connected5(broker(), "s3832")
    c.send(bytes([0x82, 0x03, 0x00, 0x01, 0x00]))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_8_3_3():
    # No Local: the publishing client does not get its own message (not even over a new connection
    # with the same client id); another subscriber does.
    b = broker()
    cid = id_on_worker("s3833", 1)
    me = connected5(b, cid, props=p_u32(0x11, 60))
    me.send(subscribe5(1, [("s3833/t", NL | 1)]))
    me.expect(suback5(1, 1))
    other = subscribed5(b, id_on_worker("s3833-o", 2), [("s3833/t", 0)])
    me.send(publish5("s3833/t", "mine", qos=1, pid=1))
    me.expect(ack5(0x40, 1))
    expect_publish5(other, "s3833/t", b"mine")
    me.send(DISCONNECT)
    me.expect_closed()
    me = connected5(b, cid, clean=False, session_present=True)
    me.send(publish5("s3833/t", "again"))
    expect_publish5(other, "s3833/t", b"again")
    flush(me)
    expect_nothing(me)
    p = publisher(b, "s3833-p")
    p.send(publish5("s3833/t", "theirs"))
    expect_publish5(me, "s3833/t", b"theirs")
    me.send(DISCONNECT)


def test_MQTT_3_8_3_4():
    # No Local on a shared subscription: Protocol Error.
    c = connected5(broker(), "s3834")
    c.send(subscribe5(1, [("$share/g/s3834/t", NL)]))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_8_3_5():
    # Reserved bits 6 and 7 of the Subscription Options: Malformed Packet.
    b = broker()
    for bit in (0x40, 0x80):
        c = connected5(b, "s3835")
        c.send(subscribe5(1, [("s3835/t", bit)]))
        expect_disconnect5(c, 0x81)


def test_MQTT_3_8_4_1():
    c = connected5(broker(), "s3841")
    c.send(subscribe5(1, [("s3841/t", 2)]))
    c.expect(bytes([0x90, 0x04, 0x00, 0x01, 0x00, 0x02]))


def test_MQTT_3_8_4_2():
    # SUBACK carries the SUBSCRIBE's Packet Identifier (several in a row, in order).
    c = connected5(broker(), "s3842")
    c.send(subscribe5(0xFFFF, [("s3842/a", 0)]) + subscribe5(0x0100, [("s3842/b", 1)]) +
           subscribe5(1, [("s3842/c", 2)]))
    c.expect(suback5(0xFFFF, 0))
    c.expect(suback5(0x0100, 1))
    c.expect(suback5(1, 2))


def test_MQTT_3_8_4_3():
    # An identical filter replaces the subscription: new QoS (2 -> 0), new options (No Local) and
    # new Subscription Identifier; one copy, not two.
    b = broker()
    c = connected5(b, id_on_worker("s3843", 1))
    c.send(subscribe5(1, [("s3843/t", 2)], props=p_varint(0x0B, 1)))
    c.expect(suback5(1, 2))
    c.send(subscribe5(2, [("s3843/t", NL)], props=p_varint(0x0B, 2)))
    c.expect(suback5(2, 0))
    p = publisher(b, "s3843-pub")
    p.send(publish5("s3843/t", "x", qos=2, pid=1))
    p.expect(ack5(0x50, 1))
    p.send(ack5(0x62, 1))
    p.expect(ack5(0x70, 1))
    expect_publish5(c, "s3843/t", b"x", props=p_varint(0x0B, 2))
    c.send(publish5("s3843/t", "own"))
    flush(c)
    expect_nothing(c)


def test_MQTT_3_8_4_4():
    # Replacing a subscription with Retain Handling 0 re-sends the retained messages, and no message
    # published meanwhile is lost.
    b = broker()
    retain(b, "s3844/r", "R")
    c = connected5(b, id_on_worker("s3844", 1))
    c.send(subscribe5(1, [("s3844/+", 1)]))
    c.expect(suback5(1, 1))
    expect_publish5(c, "s3844/r", b"R", retain=True)  # stored at QoS 0
    p = publisher(b, "s3844-pub")
    p.send(b"".join(publish5("s3844/live", f"{i}", qos=1, pid=i + 1) for i in range(20)))
    c.send(subscribe5(2, [("s3844/+", 1)]))
    got = []
    while len(got) < 22:  # SUBACK, the retained message, 20 live messages
        pkt = c.recv()
        assert pkt is not None, f"only {len(got)} packets: {[g.hex() for g in got]}"
        got.append(pkt)
        if pkt[0] & 0xF0 == 0x30 and pkt[0] & 0x06:
            c.send(ack5(0x40, parse_publish(pkt, 5)["pid"]))
    assert suback5(2, 1) in got
    msgs = [parse_publish(g, 5) for g in got if g[0] >> 4 == 3]
    assert [m["payload"] for m in msgs if m["topic"] == b"s3844/r"] == [b"R"]
    assert [m["retain"] for m in msgs if m["topic"] == b"s3844/r"] == [True]
    assert [int(m["payload"]) for m in msgs if m["topic"] == b"s3844/live"] == list(range(20))
    unretain(b, "s3844/r")


def test_MQTT_3_8_4_5():
    # Several filters in one SUBSCRIBE act like several SUBSCRIBEs: the same filter twice leaves one
    # subscription with the options of the later one; one SUBACK.
    b = broker()
    c = connected5(b, id_on_worker("s3845", 1))
    c.send(subscribe5(1, [("s3845/a", 1), ("s3845/b", 0), ("s3845/a", 2)]))
    c.expect(suback5(1, 1, 0, 2))
    p = publisher(b, "s3845-pub")
    p.send(publish5("s3845/a", "A", qos=2, pid=1))
    p.expect(ack5(0x50, 1))
    p.send(ack5(0x62, 1))
    p.expect(ack5(0x70, 1))
    p.send(publish5("s3845/b", "B"))
    pid = expect_publish5(c, "s3845/a", b"A", qos=2)
    expect_publish5(c, "s3845/b", b"B")
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.send(ack5(0x70, pid))
    expect_nothing(c)


def test_MQTT_3_8_4_6():
    # One reason code per Topic Filter / Subscription Options pair (five filters, five codes).
    c = connected5(broker(), "s3846")
    c.send(subscribe5(1, [("s3846/a", 0), ("s3846/b", 1), ("s3846/#/x", 2), ("s3846/c", 2), ("", 0)]))
    c.expect(suback5(1, 0, 1, 0x8F, 2, 0x8F))


def test_MQTT_3_8_4_7():
    # Each code is the granted QoS or a failure (>= 0x80): a bad shared filter fails, the rest are
    # granted.
    c = connected5(broker(), "s3847")
    c.send(subscribe5(1, [("$share//s3847", 1), ("s3847/+", 1), ("s3847+", 2)]))
    got = c.recv()
    assert got == suback5(1, 0x8F, 1, 0x8F), got.hex()


def test_MQTT_3_8_4_8():
    # Delivered QoS is min(published QoS, granted QoS), for every pair.
    b = broker()
    subs = {g: subscribed5(b, id_on_worker(f"s3848-{g}", 1 + g % 2), [("s3848/t", g)]) for g in (0, 1, 2)}
    p = publisher(b, "s3848-pub")
    for q in (0, 1, 2):
        p.send(publish5("s3848/t", f"q{q}", qos=q, pid=q + 1))
        if q == 1:
            p.expect(ack5(0x40, 2))
        if q == 2:
            p.expect(ack5(0x50, 3))
            p.send(ack5(0x62, 3))
            p.expect(ack5(0x70, 3))
        for g, s_ in subs.items():
            want = min(q, g)
            pid = expect_publish5(s_, "s3848/t", f"q{q}".encode(), qos=want)
            if want == 1:
                s_.send(ack5(0x40, pid))
            if want == 2:
                s_.send(ack5(0x50, pid))
                s_.expect(ack5(0x62, pid))
                s_.send(ack5(0x70, pid))


# ---- 3.9 SUBACK ---------------------------------------------------------------------------------------

def test_MQTT_3_9_3_1():
    # Reason codes in the order of the filters.
    c = connected5(broker(), "s3931")
    c.send(subscribe5(1, [("s3931/2", 2), ("s3931/bad#", 0), ("s3931/0", 0), ("s3931/1", 1)]))
    c.expect(suback5(1, 2, 0x8F, 0, 1))


def test_MQTT_3_9_3_2():
    # Every code the server sends is a Subscribe Reason Code.
    c = connected5(broker(), "s3932")
    filters = [("s3932/a", 0), ("s3932/b", 1), ("s3932/c", 2), ("s3932/#/d", 1), ("$share/x+/s3932", 0)]
    c.send(subscribe5(1, filters))
    got = c.recv()
    assert got[:5] == bytes([0x90, 3 + len(filters), 0, 1, 0]), got.hex()
    assert all(code in SUBACK_REASON_CODES for code in got[5:]), got.hex()
    assert got == suback5(1, 0, 1, 2, 0x8F, 0x8F), got.hex()


# ---- 3.10 UNSUBSCRIBE, 3.11 UNSUBACK --------------------------------------------------------------------

def test_MQTT_3_10_1_1():
    # UNSUBSCRIBE with flags 0000 instead of 0010: Malformed Packet.
    c = connected5(broker(), "s31011")
    c.send(bytes([0xA0]) + unsubscribe5(1, ["s31011/t"])[1:])
    expect_disconnect5(c, 0x81)


def test_MQTT_3_10_3_1():
    c = connected5(broker(), "s31031")
    c.send(unsubscribe5(1, [b"s31031/\xed\xbf\xbf"]))
    expect_disconnect5(c, 0x81)


def test_MQTT_3_10_3_2():
    # UNSUBSCRIBE without a Topic Filter: Protocol Error.
    c = connected5(broker(), "s31032")
    c.send(bytes([0xA2, 0x03, 0x00, 0x01, 0x00]))
    expect_disconnect5(c, 0x82)


def test_MQTT_3_10_4_1():
    # Filters are compared character by character: "s31041/+" does not remove "s31041/a", and only
    # the exact "s31041/+" removes the wildcard subscription.
    b = broker()
    c = connected5(b, id_on_worker("s31041", 1))
    c.send(subscribe5(1, [("s31041/a", 0), ("s31041/+", 1)]))
    c.expect(suback5(1, 0, 1))
    c.send(unsubscribe5(2, ["s31041/A", "s31041/+"]))
    c.expect(unsuback5(2, 0x11, 0x00))
    p = publisher(b, "s31041-pub")
    p.send(publish5("s31041/a", "a", qos=1, pid=1))
    p.expect(ack5(0x40, 1))
    p.send(publish5("s31041/b", "b"))
    expect_publish5(c, "s31041/a", b"a")  # granted 0 on the remaining exact subscription
    expect_nothing(c)


def test_MQTT_3_10_4_2():
    # After UNSUBSCRIBE no new message is added for the client.
    b = broker()
    c = subscribed5(b, id_on_worker("s31042", 1), [("s31042/t", 1)])
    p = publisher(b, "s31042-pub")
    p.send(publish5("s31042/t", "before"))
    expect_publish5(c, "s31042/t", b"before")
    c.send(unsubscribe5(2, ["s31042/t"]))
    c.expect(unsuback5(2, 0))
    p.send(publish5("s31042/t", "after", qos=1, pid=1))
    p.expect(ack5(0x40, 1, 0x10))
    expect_nothing(c)


def test_MQTT_3_10_4_3():
    # QoS 1 and QoS 2 deliveries already started are completed after UNSUBSCRIBE.
    b = broker()
    c = subscribed5(b, id_on_worker("s31043", 1), [("s31043/t", 2)])
    p = publisher(b, "s31043-pub")
    p.send(publish5("s31043/t", "one", qos=1, pid=1))
    p.expect(ack5(0x40, 1))
    p.send(publish5("s31043/t", "two", qos=2, pid=2))
    p.expect(ack5(0x50, 2))
    p.send(ack5(0x62, 2))
    p.expect(ack5(0x70, 2))
    p1 = expect_publish5(c, "s31043/t", b"one", qos=1)
    p2 = expect_publish5(c, "s31043/t", b"two", qos=2)
    c.send(unsubscribe5(3, ["s31043/t"]))
    c.expect(unsuback5(3, 0))
    c.send(ack5(0x40, p1))
    c.send(ack5(0x50, p2))
    c.expect(ack5(0x62, p2))
    c.send(ack5(0x70, p2))
    flush(c)


def test_MQTT_3_10_4_4():
    c = connected5(broker(), "s31044")
    c.send(subscribe5(1, [("s31044/t", 0)]))
    c.expect(suback5(1, 0))
    c.send(unsubscribe5(0x0203, ["s31044/t"]))
    c.expect(bytes([0xB0, 0x04, 0x02, 0x03, 0x00, 0x00]))


def test_MQTT_3_10_4_5():
    # UNSUBACK with the same identifier even when nothing was deleted (0x11 No subscription existed).
    c = connected5(broker(), "s31045")
    c.send(unsubscribe5(0x4242, ["s31045/none"]))
    c.expect(bytes([0xB0, 0x04, 0x42, 0x42, 0x00, 0x11]))


def test_MQTT_3_10_4_6():
    # Several filters: handled one after the other (the second copy of a filter finds nothing), one
    # UNSUBACK.
    c = connected5(broker(), "s31046")
    c.send(subscribe5(1, [("s31046/a", 0), ("s31046/b", 0)]))
    c.expect(suback5(1, 0, 0))
    c.send(unsubscribe5(2, ["s31046/a", "s31046/a", "s31046/b"]))
    c.expect(unsuback5(2, 0x00, 0x11, 0x00))
    expect_nothing(c)


def test_MQTT_3_11_3_1():
    # UNSUBACK reason codes in the order of the filters.
    c = connected5(broker(), "s31131")
    c.send(subscribe5(1, [("s31131/b", 0)]))
    c.expect(suback5(1, 0))
    c.send(unsubscribe5(2, ["s31131/a", "s31131/b", "s31131/#/c", "s31131/b"]))
    c.expect(unsuback5(2, 0x11, 0x00, 0x8F, 0x11))


def test_MQTT_3_11_3_2():
    # Every code the server sends is an Unsubscribe Reason Code (0x00, 0x11, 0x8F here).
    c = connected5(broker(), "s31132")
    c.send(subscribe5(1, [("s31132/x", 0)]))
    c.expect(suback5(1, 0))
    c.send(unsubscribe5(2, ["s31132/x", "s31132/y", "s31132+"]))
    got = c.recv()
    assert got == unsuback5(2, 0x00, 0x11, 0x8F), got.hex()
    assert all(code in UNSUBACK_REASON_CODES for code in got[5:])


# ---- 4.7 Topic names and topic filters ---------------------------------------------------------------

def test_MQTT_4_7_0_1():
    # Wildcards are allowed in filters, never in a PUBLISH topic (DISCONNECT 0x90).
    c = connected5(broker(), "s4701")
    c.send(subscribe5(1, [("s4701/+/#", 0)]))
    c.expect(suback5(1, 0))
    c.send(publish5("s4701/+/x", "bad"))
    expect_disconnect5(c, 0x90)


def test_MQTT_4_7_1_1():
    # '#' alone or after '/', and last: "s4711/#/x", "s4711#", "#/s4711" fail; "#", "s4711/#" work,
    # and "s4711/#" also matches the parent level.
    b = broker()
    c = connected5(b, id_on_worker("s4711", 1))
    c.send(subscribe5(1, [("s4711/#/x", 0), ("s4711#", 0), ("#/s4711", 0), ("s4711/#", 0)]))
    c.expect(suback5(1, 0x8F, 0x8F, 0x8F, 0))
    p = publisher(b, "s4711-pub")
    for t in ["s4711", "s4711/a", "s4711/a/b"]:
        p.send(publish5(t, t))
    for t in ["s4711", "s4711/a", "s4711/a/b"]:
        expect_publish5(c, t, t.encode())


def test_MQTT_4_7_1_2():
    # '+' takes a whole level: "s4712+", "s4712/+x" fail; "+/+", "s4712/+/c" work and match empty
    # levels too.
    b = broker()
    c = connected5(b, id_on_worker("s4712", 1))
    c.send(subscribe5(1, [("s4712+", 0), ("s4712/+x", 0), ("s4712/+/c", 0)]))
    c.expect(suback5(1, 0x8F, 0x8F, 0))
    p = publisher(b, "s4712-pub")
    for t in ["s4712/b/c", "s4712//c", "s4712/b/c/d", "s4712/c"]:
        p.send(publish5(t, t))
    expect_publish5(c, "s4712/b/c", b"s4712/b/c")
    expect_publish5(c, "s4712//c", b"s4712//c")
    expect_nothing(c)


def test_MQTT_4_7_2_1():
    # Filters starting with a wildcard do not match topics starting with '$'; "$s4721/#" does.
    b = broker()
    wild = subscribed5(b, id_on_worker("s4721-w", 1), [("#", 0), ("+/s4721", 0)])
    dollar = subscribed5(b, id_on_worker("s4721-d", 3), [("$s4721/#", 0)])
    p = publisher(b, "s4721-pub")
    p.send(publish5("$s4721/s4721", "d"))
    expect_publish5(dollar, "$s4721/s4721", b"d")
    p.send(publish5("s4721/marker", "m"))
    got = wild.recv()
    while got is not None and parse_publish(got, 5)["topic"] != b"s4721/marker":
        assert not parse_publish(got, 5)["topic"].startswith(b"$s4721"), got.hex()
        got = wild.recv()
    assert got == publish5("s4721/marker", "m"), got


def test_MQTT_4_7_3_1():
    # Zero-length topic filter: 0x8F. Zero-length topic name without a Topic Alias: Protocol Error.
    c = connected5(broker(), "s4731")
    c.send(subscribe5(1, [("", 0)]))
    c.expect(suback5(1, 0x8F))
    c.send(unsubscribe5(2, [""]))
    c.expect(unsuback5(2, 0x8F))
    c.send(publish5("", "x"))
    expect_disconnect5(c, 0x82)


def test_MQTT_4_7_3_2():
    # U+0000 in a topic filter: Malformed Packet.
    c = connected5(broker(), "s4732")
    c.send(subscribe5(1, [(b"s4732/\x00", 0)]))
    expect_disconnect5(c, 0x81)


def test_MQTT_4_7_3_3():
    # A 65535-byte topic (the most a UTF-8 string can hold) subscribes and publishes.
    b = broker()
    topic = "s4733/" + "x" * (65535 - 6)
    c = subscribed5(b, id_on_worker("s4733", 1), [(topic, 0)])
    p = publisher(b, "s4733-pub")
    p.send(publish5(topic, "long"))
    expect_publish5(c, topic, b"long")


def test_MQTT_4_7_3_4():
    # No normalization: case, a trailing '/', and precomposed vs combining 'é' are different topics.
    b = broker()
    c = subscribed5(b, id_on_worker("s4734", 1), [("s4734/Caf\u00e9", 0)])
    p = publisher(b, "s4734-pub")
    for t in ["s4734/caf\u00e9", "s4734/Caf\u00e9/", "s4734/Cafe\u0301", "s4734/Caf\u00e9"]:
        p.send(publish5(t, "x"))
    expect_publish5(c, "s4734/Caf\u00e9", b"x")
    expect_nothing(c)


# ---- 4.8.2 Shared subscriptions ----------------------------------------------------------------------

def test_MQTT_4_8_2_1():
    # "$share/" needs a ShareName of at least one character: "$share//t" fails; "$share/g/t" works.
    c = connected5(broker(), "s4821")
    c.send(subscribe5(1, [("$share//s4821", 0), ("$share/g/s4821", 0)]))
    c.expect(suback5(1, 0x8F, 0))


def test_MQTT_4_8_2_2():
    # The ShareName has no '/', '+' or '#' and is followed by '/' and a Topic Filter.
    c = connected5(broker(), "s4822")
    c.send(subscribe5(1, [("$share/g+/s4822", 0), ("$share/g#/s4822", 0), ("$share/g", 0),
                          ("$share/g/", 0), ("$share/g/s4822/#", 0)]))
    c.expect(suback5(1, 0x8F, 0x8F, 0x8F, 0x8F, 0))


def test_MQTT_4_8_2_3():
    # A group member is sent the message at its own granted QoS (0 here, for a QoS 1 message).
    b = broker()
    c = subscribed5(b, id_on_worker("s4823", 1), [("$share/g/s4823/t", 0)])
    p = publisher(b, "s4823-pub")
    p.send(publish5("s4823/t", "x", qos=1, pid=1))
    p.expect(ack5(0x40, 1))
    expect_publish5(c, "s4823/t", b"x", qos=0)


def test_MQTT_4_8_2_4():
    # A QoS 2 message sent to the chosen member whose connection breaks is completed with that member
    # when it reconnects (resent with DUP 1), and not given to the other member.
    b = broker()
    cid = id_on_worker("s4824-a", 1)
    a = subscribed5(b, cid, [("$share/g/s4824/t", 2)], props=p_u32(0x11, 60))
    p = publisher(b, "s4824-pub")
    p.send(publish5("s4824/t", "q2", qos=2, pid=1))
    p.expect(ack5(0x50, 1))
    p.send(ack5(0x62, 1))
    p.expect(ack5(0x70, 1))
    pid = expect_publish5(a, "s4824/t", b"q2", qos=2)
    other = subscribed5(b, id_on_worker("s4824-b", 3), [("$share/g/s4824/t", 2)])
    a.close()
    time.sleep(0.3)
    expect_nothing(other, 0.5)
    a = connected5(b, cid, clean=False, session_present=True, props=p_u32(0x11, 60))
    expect_publish5(a, "s4824/t", b"q2", qos=2, dup=True, pid=pid)
    a.send(ack5(0x50, pid))
    a.expect(ack5(0x62, pid))
    a.send(ack5(0x70, pid))
    a.send(disconnect5(0, p_u32(0x11, 0)))
    expect_nothing(other)


def test_MQTT_4_8_2_5():
    # If that member's session ends before it reconnects, the QoS 2 message is not sent to another
    # member.
    b = broker()
    cid = id_on_worker("s4825-a", 1)
    a = subscribed5(b, cid, [("$share/g/s4825/t", 2)], props=p_u32(0x11, 60))
    p = publisher(b, "s4825-pub")
    p.send(publish5("s4825/t", "q2", qos=2, pid=1))
    p.expect(ack5(0x50, 1))
    p.send(ack5(0x62, 1))
    p.expect(ack5(0x70, 1))
    expect_publish5(a, "s4825/t", b"q2", qos=2)
    other = subscribed5(b, id_on_worker("s4825-b", 3), [("$share/g/s4825/t", 2)])
    a.close()
    time.sleep(0.3)
    connected5(b, cid, clean=True, session_present=False).send(DISCONNECT)  # ends the session
    expect_nothing(other, 1.0)
    p.send(publish5("s4825/t", "marker"))  # the remaining member gets new messages
    expect_publish5(other, "s4825/t", b"marker")


def test_MQTT_4_8_2_6():
    # A member that answers PUBACK 0x80: the message is discarded, not sent to the other member.
    b = broker()
    a = subscribed5(b, id_on_worker("s4826-a", 1), [("$share/g/s4826/t", 1)])
    p = publisher(b, "s4826-pub")
    p.send(publish5("s4826/t", "no", qos=1, pid=1))
    p.expect(ack5(0x40, 1))
    pid = expect_publish5(a, "s4826/t", b"no", qos=1)
    other = subscribed5(b, id_on_worker("s4826-b", 3), [("$share/g/s4826/t", 1)])
    a.send(ack5(0x40, pid, 0x80))
    a.close()
    expect_nothing(other, 1.0)
    p.send(publish5("s4826/t", "marker", qos=1, pid=2))  # the remaining member gets new messages
    p.expect(ack5(0x40, 2))
    other.send(ack5(0x40, expect_publish5(other, "s4826/t", b"marker", qos=1)))


if __name__ == "__main__":
    main([
        test_MQTT_3_3_1_9, test_MQTT_3_3_1_10, test_MQTT_3_3_1_11, test_MQTT_3_3_1_12, test_MQTT_3_3_1_13,
        test_v5_retain_handling_3, test_v5_subscription_identifier_zero,
        test_v5_subscription_identifier_on_retained, test_MQTT_3_3_4_5, test_MQTT_3_8_1_1,
        test_MQTT_3_8_3_1, test_MQTT_3_8_3_2, test_MQTT_3_8_3_3, test_MQTT_3_8_3_4, test_MQTT_3_8_3_5,
        test_MQTT_3_8_4_1, test_MQTT_3_8_4_2, test_MQTT_3_8_4_3, test_MQTT_3_8_4_4, test_MQTT_3_8_4_5,
        test_MQTT_3_8_4_6, test_MQTT_3_8_4_7, test_MQTT_3_8_4_8, test_MQTT_3_9_3_1, test_MQTT_3_9_3_2,
        test_MQTT_3_10_1_1, test_MQTT_3_10_3_1, test_MQTT_3_10_3_2, test_MQTT_3_10_4_1, test_MQTT_3_10_4_2,
        test_MQTT_3_10_4_3, test_MQTT_3_10_4_4, test_MQTT_3_10_4_5, test_MQTT_3_10_4_6, test_MQTT_3_11_3_1,
        test_MQTT_3_11_3_2, test_MQTT_4_7_0_1, test_MQTT_4_7_1_1, test_MQTT_4_7_1_2, test_MQTT_4_7_2_1,
        test_MQTT_4_7_3_1, test_MQTT_4_7_3_2, test_MQTT_4_7_3_3, test_MQTT_4_7_3_4, test_MQTT_4_8_2_1,
        test_MQTT_4_8_2_2, test_MQTT_4_8_2_3, test_MQTT_4_8_2_4, test_MQTT_4_8_2_5, test_MQTT_4_8_2_6,
    ], broker)
