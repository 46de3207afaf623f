#!/usr/bin/python3
"""MQTT 5.0 conformance: sessions and Session Expiry Interval (3.1.2-4 to 3.1.2-6, 3.1.2-23, 4.1),
Will Delay Interval (3.1.2-8, 3.1.3-9), redelivery after reconnect (3.3.1-1, 4.3, 4.4), message expiry
while a session is offline (3.3.2-5, 3.3.2-6) and DISCONNECT's Session Expiry Interval."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()
# Sessions become congested at 2 queued messages and are disconnected after 1 s of congestion.
slow = SharedBroker(config="max_queued_messages 2\nslow_subscriber_timeout 1\n")


def expiry(seconds):
    return p_u32(0x11, seconds)


def persistent(b, cid, filters, secs=60, **kw):
    """A client with a Session Expiry Interval, subscribed to filters, then disconnected."""
    c = subscribed5(b, cid, filters, props=expiry(secs), **kw)
    c.send(DISCONNECT)
    assert c.expect_closed() == []
    return c


def resume(b, cid, present=True, secs=None, props=b"", **kw):
    """Reconnects with Clean Start 0 (Session Expiry `secs`, default 0) and checks Session Present."""
    return connected5(b, cid, clean=False, session_present=present,
                      props=(b"" if secs is None else expiry(secs)) + props, **kw)


def end(c):
    """Ends the session of connection c (DISCONNECT with Session Expiry Interval 0)."""
    c.send(disconnect5(0, expiry(0)))
    c.expect_closed()


def publisher(b, cid):
    return connected5(b, id_on_worker(cid, 2))


def send_q1(p, topic, payload, pid, props=b""):
    p.send(publish5(topic, payload, qos=1, pid=pid, props=props))
    p.expect(ack5(0x40, pid))


def send_q2(p, topic, payload, pid, props=b""):
    p.send(publish5(topic, payload, qos=2, pid=pid, props=props))
    p.expect(ack5(0x50, pid))
    p.send(ack5(0x62, pid))
    p.expect(ack5(0x70, pid))


# ---- 3.1.2 Clean Start and Session Expiry ------------------------------------------------------------

def test_MQTT_3_1_2_4():
    # Clean Start 1 discards the session: Session Present 0, its subscription and queued message gone.
    b = broker()
    cid = id_on_worker("x3124", 1)
    persistent(b, cid, [("x3124/t", 1)])
    p = publisher(b, "x3124-pub")
    send_q1(p, "x3124/t", "queued", 1)
    c = connected5(b, cid, clean=True, session_present=False, props=expiry(60))
    expect_nothing(c)
    p.send(publish5("x3124/t", "after", qos=1, pid=2))
    p.expect(ack5(0x40, 2, 0x10))
    end(c)


def test_MQTT_3_1_2_5():
    # Clean Start 0 with a session: its subscriptions and queued messages are used.
    b = broker()
    cid = id_on_worker("x3125", 1)
    persistent(b, cid, [("x3125/t", 2)])
    p = publisher(b, "x3125-pub")
    send_q2(p, "x3125/t", "kept", 1)
    c = resume(b, cid)
    pid = expect_publish5(c, "x3125/t", b"kept", qos=2)
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.send(ack5(0x70, pid))
    p.send(publish5("x3125/t", "live"))
    expect_publish5(c, "x3125/t", b"live")
    end(c)


def test_MQTT_3_1_2_6():
    # Clean Start 0 without a session creates one (Session Present 0) that then persists.
    b = broker()
    cid = id_on_worker("x3126", 1)
    c = resume(b, cid, present=False, secs=60)
    c.send(subscribe5(1, [("x3126/t", 1)]))
    c.expect(suback5(1, 1))
    c.send(DISCONNECT)
    c.expect_closed()
    c = resume(b, cid, present=True)
    end(c)


def test_MQTT_3_1_2_23():
    # Session Expiry Interval above 0: the session state survives the close of the connection (no
    # DISCONNECT): subscription, QoS 1 and QoS 2 messages queued in the meantime.
    b = broker()
    cid = id_on_worker("x31223", 1)
    c = subscribed5(b, cid, [("x31223/t", 2)], props=expiry(30))
    c.close()
    time.sleep(0.2)
    # On the subscriber's worker, so that each message has reached the session when PUBACK comes.
    p = connected5(b, id_on_worker("x31223-pub", 1))
    p.send(publish5("x31223/t", "zero"))  # QoS 0 is not queued for an offline session
    send_q1(p, "x31223/t", "one", 1)
    send_q2(p, "x31223/t", "two", 2)
    c = resume(b, cid)
    p1 = expect_publish5(c, "x31223/t", b"one", qos=1)
    p2 = expect_publish5(c, "x31223/t", b"two", qos=2)
    c.send(ack5(0x40, p1) + ack5(0x50, p2))
    c.expect(ack5(0x62, p2))
    c.send(ack5(0x70, p2))
    expect_nothing(c)
    end(c)


def test_v5_session_expiry_zero():
    # Session Expiry Interval absent (0): the session ends with the connection.
    b = broker()
    cid = id_on_worker("x-exp0", 1)
    c = subscribed5(b, cid, [("x-exp0/t", 1)])
    c.close()
    time.sleep(0.2)
    resume(b, cid, present=False).send(DISCONNECT)


# ---- 3.1.2-8, 3.1.3-9 Will Delay Interval ------------------------------------------------------------

def will_client(b, cid, topic, delay, secs):
    return connected5(b, id_on_worker(cid, 0), props=expiry(secs), will=(topic, "gone", 0, False),
                      will_props=p_u32(0x18, delay) + p_str(0x03, "text/plain"))


def test_MQTT_3_1_2_8():
    # Will Delay 2 s, Session Expiry 60 s: nothing at once, the will after 2 s (its properties
    # without the Will Delay Interval).
    b = broker()
    sub = subscribed5(b, id_on_worker("x3128-sub", 1), [("x3128/will", 0)])
    w = will_client(b, "x3128-w", "x3128/will", 2, 60)
    w.close()
    start = time.time()
    expect_nothing(sub, 1.0)
    expect_publish5(sub, "x3128/will", b"gone", props=p_str(0x03, "text/plain"), timeout=4)
    assert 1.5 <= time.time() - start <= 3.6, time.time() - start
    resume(b, id_on_worker("x3128-w", 0)).send(disconnect5(0, expiry(0)))


def test_MQTT_3_1_2_8_b():
    # Will Delay 30 s, but the session ends with the connection (expiry 0): the will goes out at once.
    b = broker()
    sub = subscribed5(b, id_on_worker("x3128b-sub", 1), [("x3128b/will", 0)])
    w = will_client(b, "x3128b-w", "x3128b/will", 30, 0)
    w.close()
    expect_publish5(sub, "x3128b/will", b"gone", props=p_str(0x03, "text/plain"), timeout=1.0)


def test_MQTT_3_1_2_8_c():
    # Will Delay 30 s, Session Expiry 2 s: the will goes out when the session ends, after 2 s.
    b = broker()
    sub = subscribed5(b, id_on_worker("x3128c-sub", 1), [("x3128c/will", 0)])
    w = will_client(b, "x3128c-w", "x3128c/will", 30, 2)
    w.close()
    start = time.time()
    expect_publish5(sub, "x3128c/will", b"gone", props=p_str(0x03, "text/plain"), timeout=5)
    assert 1.5 <= time.time() - start <= 4.0, time.time() - start


def test_MQTT_3_1_3_9():
    # A new connection to the session within the Will Delay (2 s): the will is never sent.
    b = broker()
    sub = subscribed5(b, id_on_worker("x3139-sub", 1), [("x3139/will", 0)])
    w = will_client(b, "x3139-w", "x3139/will", 2, 60)
    w.close()
    time.sleep(0.5)
    c = resume(b, id_on_worker("x3139-w", 0))
    expect_nothing(sub, 3.0)
    end(c)
    expect_nothing(sub, 0.3)
    publisher(b, "x3139-pub").send(publish5("x3139/will", "marker"))
    expect_publish5(sub, "x3139/will", b"marker")


# ---- 3.3.1-1, 3.3.2-5/6 redelivery and expiry for offline sessions ------------------------------------

def test_MQTT_3_3_1_1():
    # Redelivered after reconnect: DUP 1, same Packet Identifier; a fresh message has DUP 0.
    b = broker()
    cid = id_on_worker("x3311", 1)
    c = subscribed5(b, cid, [("x3311/t", 1)], props=expiry(60))
    p = publisher(b, "x3311-pub")
    send_q1(p, "x3311/t", "again", 1)
    pid = expect_publish5(c, "x3311/t", b"again", qos=1, dup=False)
    c.close()
    c = resume(b, cid)
    expect_publish5(c, "x3311/t", b"again", qos=1, dup=True, pid=pid)
    c.send(ack5(0x40, pid))
    send_q1(p, "x3311/t", "new", 2)
    c.send(ack5(0x40, expect_publish5(c, "x3311/t", b"new", qos=1, dup=False)))
    end(c)


def test_MQTT_3_3_2_5():
    # A message whose Message Expiry Interval (1 s) passes while the session is offline is deleted;
    # one without expiry, and one with a longer expiry, are delivered.
    b = broker()
    cid = id_on_worker("x3325", 1)
    persistent(b, cid, [("x3325/t", 1)])
    p = publisher(b, "x3325-pub")
    send_q1(p, "x3325/t", "short", 1, props=p_u32(0x02, 1))
    send_q1(p, "x3325/t", "none", 2)
    send_q1(p, "x3325/t", "long", 3, props=p_u32(0x02, 600))
    time.sleep(2.2)
    c = resume(b, cid)
    c.send(ack5(0x40, expect_publish5(c, "x3325/t", b"none", qos=1)))
    got = c.recv()
    pid = parse_publish(got, 5)["pid"]
    allowed = [publish5("x3325/t", "long", qos=1, pid=pid, props=p_u32(0x02, v)) for v in (598, 597)]
    assert got in allowed, got.hex()
    c.send(ack5(0x40, pid))
    expect_nothing(c)
    end(c)


def test_MQTT_3_3_2_6():
    # The Message Expiry Interval sent after 2.2 s in an offline session is 2 s less (60 -> 58).
    b = broker()
    cid = id_on_worker("x3326", 1)
    persistent(b, cid, [("x3326/t", 1)])
    p = publisher(b, "x3326-pub")
    send_q1(p, "x3326/t", "aged", 1, props=p_u32(0x02, 60) + p_user("k", "v"))
    time.sleep(2.2)
    c = resume(b, cid)
    got = c.recv()
    pid = parse_publish(got, 5)["pid"]
    allowed = [publish5("x3326/t", "aged", qos=1, pid=pid, props=p_u32(0x02, v) + p_user("k", "v"))
               for v in (58, 57)]
    assert got in allowed, got.hex()
    c.send(ack5(0x40, pid))
    end(c)


# ---- 4.1 Session state ---------------------------------------------------------------------------------

def test_MQTT_4_1_0_1():
    # Session Expiry 1 s counts only once the connection is closed: connected for 2.5 s, the
    # session is intact (messages flow; after a close and quick reconnect it is present).
    b = broker()
    cid = id_on_worker("x4101", 1)
    c = subscribed5(b, cid, [("x4101/t", 1)], props=expiry(1))
    time.sleep(2.5)
    p = publisher(b, "x4101-pub")
    send_q1(p, "x4101/t", "still", 1)
    c.send(ack5(0x40, expect_publish5(c, "x4101/t", b"still", qos=1)))
    c.send(DISCONNECT)
    c.expect_closed()
    c = resume(b, cid, present=True)
    end(c)


def test_MQTT_4_1_0_2():
    # Session Expiry 1 s: 2.5 s after the close the session is gone (Session Present 0, no queued
    # message, no subscription).
    b = broker()
    cid = id_on_worker("x4102", 1)
    persistent(b, cid, [("x4102/t", 1)], secs=1)
    p = publisher(b, "x4102-pub")
    send_q1(p, "x4102/t", "lost", 1)
    time.sleep(2.5)
    c = resume(b, cid, present=False, secs=60)
    expect_nothing(c)
    p.send(publish5("x4102/t", "nobody", qos=1, pid=2))
    p.expect(ack5(0x40, 2, 0x10))
    end(c)


def test_v5_disconnect_sets_session_expiry():
    # DISCONNECT may change a non-zero Session Expiry Interval: 60 -> 0 ends the session at once;
    # 1 -> 60 keeps it beyond the original second.
    b = broker()
    cid = id_on_worker("x-dse", 1)
    c = subscribed5(b, cid, [("x-dse/t", 1)], props=expiry(60))
    c.send(disconnect5(0, expiry(0)))
    assert c.expect_closed() == []
    c = resume(b, cid, present=False, secs=1)
    c.send(disconnect5(0, expiry(60)))
    assert c.expect_closed() == []
    time.sleep(2.5)
    c = resume(b, cid, present=True)
    end(c)


def test_v5_disconnect_expiry_from_zero():
    # Session Expiry 0 in CONNECT and non-zero in DISCONNECT: Protocol Error (DISCONNECT 0x82), and
    # the session still ends with the connection.
    b = broker()
    cid = id_on_worker("x-dez", 1)
    c = subscribed5(b, cid, [("x-dez/t", 1)])
    c.send(disconnect5(0, expiry(60)))
    expect_disconnect5(c, 0x82)
    resume(b, cid, present=False).send(DISCONNECT)


# ---- 4.3, 4.4 QoS flows across reconnects ---------------------------------------------------------------

def test_MQTT_4_3_2_3():
    # A QoS 1 PUBLISH stays unacknowledged until PUBACK: resent after each reconnect until then,
    # never after.
    b = broker()
    cid = id_on_worker("x4323", 1)
    c = subscribed5(b, cid, [("x4323/t", 1)], props=expiry(60))
    p = publisher(b, "x4323-pub")
    send_q1(p, "x4323/t", "ack me", 1)
    pid = expect_publish5(c, "x4323/t", b"ack me", qos=1)
    for _ in range(2):
        c.close()
        c = resume(b, cid, secs=60)
        expect_publish5(c, "x4323/t", b"ack me", qos=1, dup=True, pid=pid)
    c.send(ack5(0x40, pid))
    c.send(DISCONNECT)
    c.expect_closed()
    c = resume(b, cid)
    expect_nothing(c)
    end(c)


def test_MQTT_4_3_3_3():
    # A QoS 2 PUBLISH stays unacknowledged until PUBREC: resent (DUP 1) after a reconnect.
    b = broker()
    cid = id_on_worker("x4333", 1)
    c = subscribed5(b, cid, [("x4333/t", 2)], props=expiry(60))
    p = publisher(b, "x4333-pub")
    send_q2(p, "x4333/t", "rec me", 1)
    pid = expect_publish5(c, "x4333/t", b"rec me", qos=2)
    c.close()
    c = resume(b, cid)
    expect_publish5(c, "x4333/t", b"rec me", qos=2, dup=True, pid=pid)
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.send(ack5(0x70, pid))
    end(c)


def test_MQTT_4_3_3_5():
    # The PUBREL stays unacknowledged until PUBCOMP: resent after a reconnect.
    b = broker()
    cid = id_on_worker("x4335", 1)
    c = subscribed5(b, cid, [("x4335/t", 2)], props=expiry(60))
    p = publisher(b, "x4335-pub")
    send_q2(p, "x4335/t", "comp me", 1)
    pid = expect_publish5(c, "x4335/t", b"comp me", qos=2)
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.close()
    c = resume(b, cid, secs=60)
    c.expect(ack5(0x62, pid))
    c.send(ack5(0x70, pid))
    c.send(DISCONNECT)
    c.expect_closed()
    c = resume(b, cid)
    expect_nothing(c)
    end(c)


def test_MQTT_4_3_3_6():
    # After PUBREL the PUBLISH is never sent again: a reconnect resends only the PUBREL.
    b = broker()
    cid = id_on_worker("x4336", 1)
    c = subscribed5(b, cid, [("x4336/t", 2)], props=expiry(60))
    p = publisher(b, "x4336-pub")
    send_q2(p, "x4336/t", "once", 1)
    pid = expect_publish5(c, "x4336/t", b"once", qos=2)
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.close()
    c = resume(b, cid)
    got = c.recv()
    assert got == ack5(0x62, pid), got.hex()
    c.send(ack5(0x70, pid))
    expect_nothing(c)
    end(c)


def test_MQTT_4_3_3_7():
    # Once a QoS 2 PUBLISH has been sent, message expiry no longer applies: it is resent after a
    # reconnect even though its Message Expiry Interval (1 s) has passed.
    b = broker()
    cid = id_on_worker("x4337", 1)
    c = subscribed5(b, cid, [("x4337/t", 2)], props=expiry(60))
    p = publisher(b, "x4337-pub")
    send_q2(p, "x4337/t", "sent", 1, props=p_u32(0x02, 1))
    got = c.recv()
    pid = parse_publish(got, 5)["pid"]
    assert got == publish5("x4337/t", "sent", qos=2, pid=pid, props=p_u32(0x02, 1)), got.hex()
    c.close()
    time.sleep(2.2)
    c = resume(b, cid)
    got = c.recv(2)
    assert got is not None and got[0] == 0x3C and parse_publish(got, 5)["pid"] == pid \
        and parse_publish(got, 5)["payload"] == b"sent", \
        f"expected the PUBLISH again (DUP 1), got {got.hex() if got else got}"
    c.send(ack5(0x50, pid))
    c.expect(ack5(0x62, pid))
    c.send(ack5(0x70, pid))
    end(c)


def test_MQTT_4_4_0_1():
    # On reconnect the unacknowledged PUBLISHes (QoS 1 and 2) and PUBRELs are resent with their
    # original identifiers and in their original order; while connected nothing is resent.
    b = broker()
    cid = id_on_worker("x4401", 1)
    c = subscribed5(b, cid, [("x4401/t", 2)], props=expiry(60))
    p = publisher(b, "x4401-pub")
    send_q1(p, "x4401/t", "a", 1)
    send_q2(p, "x4401/t", "b", 2)
    send_q2(p, "x4401/t", "c", 3)
    send_q1(p, "x4401/t", "d", 4)
    pa = expect_publish5(c, "x4401/t", b"a", qos=1)
    pb = expect_publish5(c, "x4401/t", b"b", qos=2)
    pc = expect_publish5(c, "x4401/t", b"c", qos=2)
    pd = expect_publish5(c, "x4401/t", b"d", qos=1)
    c.send(ack5(0x50, pc))
    c.expect(ack5(0x62, pc))
    expect_nothing(c, 1.0)
    c.close()
    c = resume(b, cid)
    expect_publish5(c, "x4401/t", b"a", qos=1, dup=True, pid=pa)
    expect_publish5(c, "x4401/t", b"b", qos=2, dup=True, pid=pb)
    c.expect(ack5(0x62, pc))
    expect_publish5(c, "x4401/t", b"d", qos=1, dup=True, pid=pd)
    c.send(ack5(0x40, pa) + ack5(0x50, pb) + ack5(0x70, pc) + ack5(0x40, pd))
    c.expect(ack5(0x62, pb))
    c.send(ack5(0x70, pb))
    expect_nothing(c)
    end(c)


def test_MQTT_4_4_0_1_b():
    # The resend does not depend on Message Expiry: a QoS 1 PUBLISH already sent, whose expiry (1 s)
    # passes while the client is away, is resent on reconnect; with Receive Maximum 1 the next
    # message follows its PUBACK (the in-flight slot is not lost).
    b = broker()
    cid = id_on_worker("x4401b", 1)
    c = subscribed5(b, cid, [("x4401b/t", 1)], props=expiry(60) + p_u16(0x21, 1))
    p = publisher(b, "x4401b-pub")
    send_q1(p, "x4401b/t", "sent", 1, props=p_u32(0x02, 1))
    got = c.recv()
    pid = parse_publish(got, 5)["pid"]
    assert got == publish5("x4401b/t", "sent", qos=1, pid=pid, props=p_u32(0x02, 1)), got.hex()
    c.close()
    time.sleep(2.2)
    c = resume(b, cid, props=p_u16(0x21, 1))
    send_q1(p, "x4401b/t", "next", 2)
    got = c.recv(2)
    assert got is not None and got[0] == 0x3A and parse_publish(got, 5)["pid"] == pid \
        and parse_publish(got, 5)["payload"] == b"sent", \
        f"expected the PUBLISH again (DUP 1), got {got.hex() if got else got}"
    c.send(ack5(0x40, pid))
    c.send(ack5(0x40, expect_publish5(c, "x4401b/t", b"next", qos=1)))
    end(c)


def test_MQTT_4_4_0_2():
    # PUBACK 0x80 and PUBREC 0x80 end the flows: nothing is resent after a reconnect.
    b = broker()
    cid = id_on_worker("x4402", 1)
    c = subscribed5(b, cid, [("x4402/t", 2)], props=expiry(60))
    p = publisher(b, "x4402-pub")
    send_q1(p, "x4402/t", "no1", 1)
    send_q2(p, "x4402/t", "no2", 2)
    c.send(ack5(0x40, expect_publish5(c, "x4402/t", b"no1", qos=1), 0x80))
    c.send(ack5(0x50, expect_publish5(c, "x4402/t", b"no2", qos=2), 0x80))
    expect_nothing(c)
    c.close()
    c = resume(b, cid)
    expect_nothing(c)
    send_q1(p, "x4402/t", "marker", 3)  # the session itself still works
    c.send(ack5(0x40, expect_publish5(c, "x4402/t", b"marker", qos=1)))
    end(c)


def test_MQTT_4_5_0_1():
    # An accepted message is added to the session of every matching subscriber, online or offline.
    b = broker()
    off = id_on_worker("x4501-off", 1)
    persistent(b, off, [("x4501/#", 1)])
    on = subscribed5(b, id_on_worker("x4501-on", 3), [("x4501/+", 1)])
    p = publisher(b, "x4501-pub")
    send_q1(p, "x4501/t", "all", 1)
    on.send(ack5(0x40, expect_publish5(on, "x4501/t", b"all", qos=1)))
    c = resume(b, off)
    c.send(ack5(0x40, expect_publish5(c, "x4501/t", b"all", qos=1)))
    end(c)


def test_v5_slow_subscriber_0x97():
    # A subscriber that stays congested (max_queued_messages 2, never acknowledging with Receive
    # Maximum 1) for slow_subscriber_timeout (1 s) gets DISCONNECT 0x97 (Quota exceeded).
    b = slow()
    sub = subscribed5(b, id_on_worker("x-slow-sub", 1), [("x-slow/t", 1)], props=p_u16(0x21, 1))
    p = connected5(b, id_on_worker("x-slow-pub", 2))
    p.send(b"".join(publish5("x-slow/t", f"{i}", qos=1, pid=i + 1) for i in range(5)))
    got = sub.expect_closed(6)
    assert got[0] == publish5("x-slow/t", "0", qos=1, pid=parse_publish(got[0], 5)["pid"]), got[0].hex()
    assert got[1:] == [bytes([0xE0, 0x01, 0x97])], [g.hex() for g in got]


if __name__ == "__main__":
    main([
        test_MQTT_3_1_2_4, test_MQTT_3_1_2_5, test_MQTT_3_1_2_6, test_MQTT_3_1_2_23,
        test_v5_session_expiry_zero, test_MQTT_3_1_2_8, test_MQTT_3_1_2_8_b, test_MQTT_3_1_2_8_c,
        test_MQTT_3_1_3_9, test_MQTT_3_3_1_1, test_MQTT_3_3_2_5, test_MQTT_3_3_2_6, test_MQTT_4_1_0_1,
        test_MQTT_4_1_0_2, test_v5_disconnect_sets_session_expiry, test_v5_disconnect_expiry_from_zero,
        test_MQTT_4_3_2_3, test_MQTT_4_3_3_3, test_MQTT_4_3_3_5, test_MQTT_4_3_3_6, test_MQTT_4_3_3_7,
        test_MQTT_4_4_0_1, test_MQTT_4_4_0_1_b, test_MQTT_4_4_0_2, test_MQTT_4_5_0_1,
        test_v5_slow_subscriber_0x97,
    ], broker, slow)
