#!/usr/bin/python3
"""Shared subscriptions ($share/GROUP/FILTER, MQTT 5.0 section 4.8.2) end to end against the real
binary: Eclipse Paho (Debian python3-paho-mqtt 1.6, MQTT 5.0) and raw byte-level clients (ternlib),
5.0 and 3.1.1 members, members on different workers (the broker runs 4).

Run: TERN_BIN=build/shared/tern tests/integration/test_shared.py [test_name ...]
"""
import os
import queue
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403
from ternlib import Broker, Client, ack, connect, packet, props, publish, run_tests, subscribe, unsubscribe  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

WORKERS = 4
WAIT = 5.0


# ---- helpers -----------------------------------------------------------------------------------

def owner_of(client_id, workers=WORKERS):
    """The worker that owns a client id (mirrors Broker::owner_of, FNV-1a)."""
    h = 1469598103934665603
    for ch in client_id.encode():
        h ^= ch
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % workers


def ids_on_workers(prefix, n):
    """n client ids owned by n different workers."""
    ids, used, i = [], set(), 0
    while len(ids) < n:
        cid = f"{prefix}-{i}"
        if owner_of(cid) not in used:
            used.add(owner_of(cid))
            ids.append(cid)
        i += 1
    return ids


def read_varint(buf, i):
    n, shift = 0, 0
    while True:
        b = buf[i]
        n |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            return n, i


def parse_publish(pkt, version):
    assert pkt is not None, "expected a PUBLISH, got nothing"
    assert pkt[0] >> 4 == 3, f"expected a PUBLISH, got {pkt.hex()}"
    _, i = read_varint(pkt, 1)
    tlen = struct.unpack("!H", pkt[i:i + 2])[0]
    topic = pkt[i + 2:i + 2 + tlen].decode()
    i += 2 + tlen
    qos = (pkt[0] >> 1) & 3
    pid = None
    if qos:
        pid = struct.unpack("!H", pkt[i:i + 2])[0]
        i += 2
    prop = b""
    if version == 5:
        plen, j = read_varint(pkt, i)
        prop = pkt[j:j + plen]
        i = j + plen
    return {"dup": bool(pkt[0] & 8), "qos": qos, "retain": bool(pkt[0] & 1), "topic": topic, "pid": pid,
            "payload": pkt[i:], "props": prop}


def session_expiry(seconds):
    return b"\x11" + struct.pack("!I", seconds)


def raw_member(port, client_id, filt, version=5, qos=1, clean=True, expiry=0, opts=None, sub_props=b""):
    """A raw client connected and subscribed to `filt`; SUBACK checked."""
    c = Client(port)
    p = session_expiry(expiry) if (version == 5 and expiry) else b""
    got = c.connect(client_id, version=version, clean=clean, properties=p) if version == 5 else \
        c.connect(client_id, version=version, clean=clean)
    assert got is not None and got[0] == 0x20 and got[3] == 0, f"CONNACK for {client_id}: {got.hex() if got else got}"
    c.send(subscribe(1, [(filt, qos if opts is None else opts)], version=version, properties=sub_props))
    assert suback_codes(c.recv(), version) == [qos], f"SUBACK for {client_id}"
    return c


def suback_codes(pkt, version):
    assert pkt is not None and pkt[0] == 0x90, f"expected SUBACK, got {pkt.hex() if pkt else pkt}"
    _, i = read_varint(pkt, 1)
    i += 2
    if version == 5:
        plen, i = read_varint(pkt, i)
        i += plen
    return list(pkt[i:])


def raw_publisher(port, client_id, version=5):
    c = Client(port)
    got = c.connect(client_id, version=version)
    assert got is not None and got[0] == 0x20 and got[3] == 0
    return c


def pub_qos1(c, topic, payloads, version=5, start_pid=1):
    """Publishes QoS 1 messages and waits for every PUBACK."""
    data = b"".join(publish(topic, p, qos=1, packet_id=start_pid + i, version=version) for i, p in enumerate(payloads))
    c.send(data)
    for _ in payloads:
        a = c.recv()
        assert a is not None and a[0] == 0x40, f"expected PUBACK, got {a.hex() if a else a}"


def collect(c, version, timeout=0.5, auto_ack=True):
    """PUBLISHes received until `timeout` s of silence (QoS 1 acknowledged unless auto_ack is off)."""
    got = []
    while True:
        pkt = c.recv(timeout)
        if pkt is None:
            return got
        p = parse_publish(pkt, version)
        got.append(p)
        if auto_ack and p["qos"] == 1:
            c.send(ack("puback", p["pid"]))


def expect_nothing(c, timeout=0.5):
    pkt = c.recv(timeout)
    assert pkt is None, f"expected nothing, got {pkt.hex()}"


class Paho:
    """A paho 5.0 (or 3.1.1) client on its own loop thread, recording what it receives."""

    def __init__(self, port, client_id, protocol=mqtt.MQTTv5):
        self.protocol = protocol
        self.port = port
        if protocol == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=client_id, protocol=protocol)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=True, protocol=protocol)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, flags, rc, props=None: self.connacks.put(rc)
        self.c.on_subscribe = lambda c, u, mid, granted, *a: self.subacks.put((mid, granted))
        self._stop = False
        self.thread = None

    def _loop(self):
        while not self._stop:
            if self.c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break

    def connect(self):
        kw = {"clean_start": True} if self.protocol == mqtt.MQTTv5 else {}
        self.c.connect("127.0.0.1", self.port, keepalive=60, **kw)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        rc = self.connacks.get(timeout=WAIT)
        assert int(getattr(rc, "value", rc)) == 0, rc
        return self

    def subscribe(self, topic, qos):
        if self.protocol == mqtt.MQTTv5:
            rc, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos))
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        got_mid, granted = self.subacks.get(timeout=WAIT)
        assert got_mid == mid
        g = granted[0]
        return int(getattr(g, "value", g))

    def publish_all(self, topic, payloads, qos):
        infos = [self.c.publish(topic, p, qos) for p in payloads]
        deadline = time.time() + 20
        for info in infos:
            while not info.is_published() and time.time() < deadline:
                time.sleep(0.005)
            assert info.is_published(), f"publish on {topic} not acknowledged"

    def drain(self, quiet=0.5):
        """Every message received until `quiet` s pass without one."""
        got = []
        while True:
            try:
                got.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return got

    def close(self):
        try:
            self.c.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self._stop = True
        if self.thread:
            self.thread.join(timeout=WAIT)


def payloads(prefix, n):
    return [f"{prefix}{i}".encode() for i in range(n)]


# ---- tests -----------------------------------------------------------------------------------

def test_MQTT_4_8_2_round_robin_three_members_on_three_workers():
    """300 QoS 1 messages over three 5.0 members on three different workers: each gets exactly 100
    (round robin), none is duplicated, none is lost."""
    with Broker(verbose=False) as b:
        ids = ids_on_workers("sh-rr", 3)
        members = [Paho(b.port, cid).connect() for cid in ids]
        pub = Paho(b.port, "sh-rr-pub").connect()
        try:
            for m in members:
                assert m.subscribe("$share/workers/rr/#", 1) == 1
            sent = payloads("m", 300)
            pub.publish_all("rr/jobs", sent, 1)
            got = [[msg.payload for msg in m.drain(1.0)] for m in members]
            counts = [len(g) for g in got]
            everything = [p for g in got for p in g]
            assert sorted(everything) == sorted(sent), \
                f"lost {len(set(sent) - set(everything))}, duplicated {len(everything) - len(set(everything))}"
            assert counts == [100, 100, 100], f"not round robin: {counts}"
            for m, g in zip(members, got):
                msgs = [int(p[1:]) for p in g]
                assert msgs == sorted(msgs), "one publisher's messages reach a member in order"
        finally:
            for m in members + [pub]:
                m.close()
        assert b.alive()


def test_v311_and_v5_members_in_one_group():
    """A 3.1.1 client joins a group with a 5.0 client; SUBACK 0x01; messages alternate."""
    with Broker(verbose=False) as b:
        v3 = raw_member(b.port, "sh-v3", "$share/mixed/mx/t", version=4, qos=1)
        v5 = raw_member(b.port, "sh-v5", "$share/mixed/mx/t", version=5, qos=1)
        pub = raw_publisher(b.port, "sh-mx-pub", version=4)
        pub_qos1(pub, "mx/t", payloads("x", 10), version=4)
        g3 = collect(v3, 4)
        g5 = collect(v5, 5)
        assert len(g3) == 5 and len(g5) == 5, (len(g3), len(g5))
        assert sorted(p["payload"] for p in g3 + g5) == sorted(payloads("x", 10))
        assert all(p["topic"] == "mx/t" for p in g3 + g5)
        # A paho 3.1.1 client joins as well.
        p3 = Paho(b.port, "sh-paho311", mqtt.MQTTv311).connect()
        try:
            assert p3.subscribe("$share/mixed/mx/t", 1) == 1
            pub_qos1(pub, "mx/t", payloads("y", 9), version=4, start_pid=100)
            counts = [len(collect(v3, 4)), len(collect(v5, 5)), len(p3.drain())]
            assert counts == [3, 3, 3], counts
        finally:
            p3.close()


def test_sticky_strategy_keeps_a_publisher_on_one_member():
    """shared_subscription_strategy sticky: each publisher's messages go to one member while it is
    connected; when that member leaves they move to one other member. The default (round robin)
    spreads the same traffic over every member."""
    def run(config):
        with Broker(config, verbose=False) as b:
            ids = ids_on_workers("sh-st", 3)
            members = {cid: raw_member(b.port, cid, "$share/s/st/t", version=5, qos=1) for cid in ids}
            pubs = [raw_publisher(b.port, f"sh-st-pub{i}") for i in range(2)]
            for i, p in enumerate(pubs):
                pub_qos1(p, "st/t", [f"p{i}-{k}".encode() for k in range(30)])
            got = {cid: collect(c, 5) for cid, c in members.items()}
            where = {}  # publisher -> set of members
            for cid, msgs in got.items():
                for m in msgs:
                    where.setdefault(m["payload"].split(b"-")[0].decode(), set()).add(cid)
            assert sum(len(v) for v in got.values()) == 60
            if "sticky" not in config:
                return where, None
            # The first member of publisher 0 leaves: its messages move, to one member again.
            first = next(iter(where["p0"]))
            members.pop(first).send(bytes([0xE0, 0x00]))
            time.sleep(0.2)
            pub_qos1(pubs[0], "st/t", [f"p0-late{k}".encode() for k in range(20)], start_pid=200)
            later = {cid: [m for m in collect(c, 5)] for cid, c in members.items()}
            late_members = {cid for cid, msgs in later.items() if msgs}
            assert sum(len(v) for v in later.values()) == 20
            return where, (first, late_members)

    where, _ = run("")
    assert all(len(v) == 3 for v in where.values()), f"round robin should use every member: {where}"
    where, (first, late) = run("shared_subscription_strategy sticky\n")
    assert all(len(v) == 1 for v in where.values()), f"sticky: one member per publisher: {where}"
    assert where["p0"] != where["p1"], "publishers are spread over the members"
    assert len(late) == 1 and first not in late, (first, late)


def test_qos1_in_flight_goes_to_another_member_on_disconnect():
    """A QoS 1 message sent to a member that drops its connection before PUBACK goes to another
    connected member, for a session that ends (clean) and one that persists. A persistent member
    does not get it again when it returns."""
    for persistent in (False, True):
        with Broker(verbose=False) as b:
            m1 = raw_member(b.port, "sh-q1-a", "$share/g/q1/t", version=5, qos=1, clean=True,
                            expiry=300 if persistent else 0)
            pub = raw_publisher(b.port, "sh-q1-pub")
            pub_qos1(pub, "q1/t", [b"first"])
            p = parse_publish(m1.recv(), 5)
            assert p["payload"] == b"first" and p["qos"] == 1
            m2 = raw_member(b.port, "sh-q1-b", "$share/g/q1/t", version=5, qos=1)
            m1.close()  # no PUBACK, no DISCONNECT
            got = collect(m2, 5, timeout=1.5)
            assert [(g["payload"], g["qos"], g["dup"]) for g in got] == [(b"first", 1, False)], \
                f"persistent={persistent}: {got}"
            if persistent:
                back = Client(b.port)
                r = back.connect("sh-q1-a", version=5, clean=False, properties=session_expiry(300))
                assert r[0] == 0x20 and r[2] == 1, f"session present expected: {r.hex()}"
                expect_nothing(back, 0.7)
            assert b.alive()


def test_MQTT_4_8_2_4_qos2_in_flight_stays_with_its_member():
    """A QoS 2 message in flight to a member that disconnects is not given to another member; it is
    completed with that member when it reconnects (before PUBREC: PUBLISH again with DUP; after:
    PUBREL again)."""
    for stage in ("publish", "pubrel"):
        with Broker(verbose=False) as b:
            m1 = raw_member(b.port, "sh-q2-a", "$share/g/q2/t", version=5, qos=2, expiry=300)
            pub = raw_publisher(b.port, "sh-q2-pub")
            pub.send(publish("q2/t", b"exactly-once", qos=2, packet_id=9, version=5))
            assert pub.recv()[0] == 0x50
            pub.send(ack("pubrel", 9))
            assert pub.recv()[0] == 0x70
            p = parse_publish(m1.recv(), 5)
            assert p["qos"] == 2 and p["payload"] == b"exactly-once"
            if stage == "pubrel":
                m1.send(ack("pubrec", p["pid"]))
                rel = m1.recv()
                assert rel[0] == 0x62, rel.hex()
            m2 = raw_member(b.port, "sh-q2-b", "$share/g/q2/t", version=5, qos=2)
            m1.close()
            expect_nothing(m2, 1.0)  # never to another member
            back = Client(b.port)
            r = back.connect("sh-q2-a", version=5, clean=False, properties=session_expiry(300))
            assert r[0] == 0x20 and r[2] == 1, r.hex()
            again = back.recv()
            if stage == "publish":
                q = parse_publish(again, 5)
                assert (q["payload"], q["qos"], q["dup"], q["pid"]) == (b"exactly-once", 2, True, p["pid"]), q
                back.send(ack("pubrec", q["pid"]))
                again = back.recv()
            assert again[0] == 0x62 and struct.unpack("!H", again[2:4])[0] == p["pid"], again.hex()
            back.send(ack("pubcomp", p["pid"]))
            expect_nothing(back, 0.3)
            expect_nothing(m2, 0.3)


def test_MQTT_4_8_2_5_qos2_in_flight_dies_with_its_session():
    """A QoS 2 message in flight to a member whose session ends is sent to no other member."""
    with Broker(verbose=False) as b:
        m1 = raw_member(b.port, "sh-q25-a", "$share/g/q25/t", version=5, qos=2)  # session ends with the connection
        pub = raw_publisher(b.port, "sh-q25-pub")
        pub.send(publish("q25/t", b"once", qos=2, packet_id=3, version=5))
        assert pub.recv()[0] == 0x50
        pub.send(ack("pubrel", 3))
        assert pub.recv()[0] == 0x70
        assert parse_publish(m1.recv(), 5)["qos"] == 2
        m2 = raw_member(b.port, "sh-q25-b", "$share/g/q25/t", version=5, qos=2)
        m1.close()
        expect_nothing(m2, 1.0)
        # The group still works: the next message goes to m2.
        pub.send(publish("q25/t", b"next", qos=1, packet_id=4, version=5))
        assert pub.recv()[0] == 0x40
        assert [g["payload"] for g in collect(m2, 5)] == [b"next"]


def test_MQTT_4_8_2_6_negative_ack_discards_the_message():
    """PUBACK (QoS 1) or PUBREC (QoS 2) with reason 0x80 from a member: the message is discarded,
    not resent to that member and not sent to another one."""
    for qos, kind in ((1, 0x40), (2, 0x50)):
        with Broker(verbose=False) as b:
            m1 = raw_member(b.port, "sh-neg-a", "$share/g/neg/t", version=5, qos=qos, expiry=300)
            pub = raw_publisher(b.port, "sh-neg-pub")
            pub.send(publish("neg/t", b"refused", qos=qos, packet_id=5, version=5))
            assert pub.recv()[0] == (0x40 if qos == 1 else 0x50)
            if qos == 2:
                pub.send(ack("pubrel", 5))
                assert pub.recv()[0] == 0x70
            p = parse_publish(m1.recv(), 5)
            m1.send(packet(kind, struct.pack("!H", p["pid"]) + b"\x80"))  # 0x80 Unspecified error
            expect_nothing(m1, 0.3)
            m2 = raw_member(b.port, "sh-neg-b", "$share/g/neg/t", version=5, qos=qos)
            m1.close()
            expect_nothing(m2, 1.0)
            back = Client(b.port)
            r = back.connect("sh-neg-a", version=5, clean=False, properties=session_expiry(300))
            assert r[2] == 1, r.hex()
            expect_nothing(back, 0.5)


def test_MQTT_4_8_2_1_and_2_bad_share_names():
    """An empty share name, '+' or '#' in it, or no filter after it: SUBACK 0x8F on 5.0 and 0x80 on
    3.1.1 for that filter; the other filters of the SUBSCRIBE are granted, the connection stays."""
    bad = ["$share//t", "$share/+/t", "$share/a+/t", "$share/#/t", "$share/a#/t", "$share/#", "$share/g",
           "$share/g/", "$share"]
    with Broker(verbose=False) as b:
        for version, code in ((5, 0x8F), (4, 0x80)):
            c = Client(b.port)
            assert c.connect(f"sh-bad-{version}", version=version)[3] == 0
            c.send(subscribe(7, [(f, 1) for f in bad] + [("$share/ok/t", 1), ("plain/t", 0)], version=version))
            assert suback_codes(c.recv(), version) == [code] * len(bad) + [1, 0], version
            c.send(PINGREQ)
            assert c.recv() == PINGRESP
        # 5.0: an invalid filter after a valid share name is 0x8F as well.
        c = Client(b.port)
        c.connect("sh-bad-inner", version=5)
        c.send(subscribe(8, [("$share/g/a#", 0), ("$share/g/a/+b", 0)], version=5))
        assert suback_codes(c.recv(), 5) == [0x8F, 0x8F]


def test_MQTT_3_8_3_4_no_local_on_a_shared_subscription_is_a_protocol_error():
    with Broker(verbose=False) as b:
        c = Client(b.port)
        c.connect("sh-nl", version=5)
        c.send(subscribe(1, [("$share/g/nl/t", 0x04 | 1)], version=5))
        got = c.expect_closed()
        assert got and got[-1][0] == 0xE0 and got[-1][2] == 0x82, [g.hex() for g in got]
        # No Local on an ordinary subscription is fine.
        c = Client(b.port)
        c.connect("sh-nl2", version=5)
        c.send(subscribe(1, [("nl/t", 0x04 | 1)], version=5))
        assert suback_codes(c.recv(), 5) == [1]


def test_no_retained_messages_on_a_shared_subscription():
    with Broker(verbose=False) as b:
        pub = raw_publisher(b.port, "sh-ret-pub")
        pub.send(publish("ret/t", b"kept", qos=1, retain=True, packet_id=1, version=5))
        assert pub.recv()[0] == 0x40
        for version in (5, 4):
            c = raw_member(b.port, f"sh-ret-{version}", f"$share/g{version}/ret/#", version=version, qos=1)
            expect_nothing(c, 0.5)
            # The subscription is live: a new message on the topic arrives (RETAIN 0 when forwarded).
            pub.send(publish("ret/live", b"live", qos=1, packet_id=2 + version, version=5))
            assert pub.recv()[0] == 0x40
            p = parse_publish(c.recv(), version)
            assert (p["topic"], p["payload"], p["retain"]) == ("ret/live", b"live", False), p
            c.send(ack("puback", p["pid"]))
            # Control: an ordinary subscription of the same client gets it.
            c.send(subscribe(2, [("ret/#", 1)], version=version))
            assert suback_codes(c.recv(), version) == [1]
            p = parse_publish(c.recv(), version)
            assert (p["payload"], p["retain"]) == (b"kept", True)
            c.send(ack("puback", p["pid"]))


def test_offline_persistent_member_gets_the_message_when_none_is_connected():
    """No member connected: the message waits in one persistent member's queue (each message in
    exactly one). A connected member takes precedence over offline ones."""
    with Broker(verbose=False) as b:
        ids = ids_on_workers("sh-off", 2)
        for cid in ids:
            c = raw_member(b.port, cid, "$share/g/off/t", version=5, qos=1, expiry=300)
            c.send(bytes([0xE0, 0x00]))
            c.expect_closed()
        # A non-persistent member that has left is not a member any more.
        gone = raw_member(b.port, "sh-off-clean", "$share/g/off/t", version=5, qos=1)
        gone.send(bytes([0xE0, 0x00]))
        gone.expect_closed()
        pub = raw_publisher(b.port, "sh-off-pub")
        pub_qos1(pub, "off/t", payloads("o", 10))
        got = []
        for cid in ids:
            c = Client(b.port)
            r = c.connect(cid, version=5, clean=False, properties=session_expiry(300))
            assert r[2] == 1, r.hex()
            mine = collect(c, 5)
            assert mine, f"{cid} got nothing: the queue should be spread round robin"
            got += [m["payload"] for m in mine]
            c.send(bytes([0xE0, 0x00]))
            c.expect_closed()
        assert sorted(got) == sorted(payloads("o", 10)), got
        # One member connected, one offline: all to the connected one.
        on = Client(b.port)
        assert on.connect(ids[0], version=5, clean=False, properties=session_expiry(300))[2] == 1
        pub_qos1(pub, "off/t", payloads("c", 6), start_pid=50)
        assert sorted(m["payload"] for m in collect(on, 5)) == sorted(payloads("c", 6))
        off = Client(b.port)
        assert off.connect(ids[1], version=5, clean=False, properties=session_expiry(300))[2] == 1
        expect_nothing(off, 0.5)


def test_offline_member_queue_moves_when_it_disconnects_with_another_connected():
    """Messages queued for a member beyond its in-flight window move to a connected member when it
    disconnects; nothing is lost or duplicated."""
    with Broker("max_inflight_messages 2\n", verbose=False) as b:
        slow = raw_member(b.port, "sh-mv-slow", "$share/g/mv/t", version=5, qos=1, expiry=300)
        pub = raw_publisher(b.port, "sh-mv-pub")
        pub_qos1(pub, "mv/t", payloads("q", 8))
        first = [parse_publish(slow.recv(), 5) for _ in range(2)]  # the window; 6 more wait in its queue
        expect_nothing(slow, 0.3)
        fast = raw_member(b.port, "sh-mv-fast", "$share/g/mv/t", version=5, qos=1)
        slow.close()
        got = collect(fast, 5, timeout=1.0)
        assert sorted(g["payload"] for g in got) == sorted(payloads("q", 8)), [g["payload"] for g in got]
        assert [p["payload"] for p in first] == [b"q0", b"q1"]
        assert [g["payload"] for g in got] == [f"q{i}".encode() for i in range(8)], "order kept"


def test_unsubscribe_removes_the_membership():
    with Broker(verbose=False) as b:
        m1 = raw_member(b.port, "sh-un-a", "$share/g/un/t", version=5, qos=1)
        m2 = raw_member(b.port, "sh-un-b", "$share/g/un/t", version=5, qos=1)
        m1.send(unsubscribe(2, ["$share/g/un/t"], version=5))
        u = m1.recv()
        assert u[0] == 0xB0 and u[-1] == 0x00, u.hex()
        m1.send(unsubscribe(3, ["$share/g/un/t"], version=5))
        u = m1.recv()
        assert u[0] == 0xB0 and u[-1] == 0x11, f"no subscription existed: {u.hex()}"
        pub = raw_publisher(b.port, "sh-un-pub")
        pub_qos1(pub, "un/t", payloads("u", 6))
        assert len(collect(m2, 5)) == 6
        expect_nothing(m1, 0.2)
        m2.send(unsubscribe(2, ["$share/g/un/t"], version=5))
        assert m2.recv()[-1] == 0x00
        pub.send(publish("un/t", b"nobody", qos=1, packet_id=77, version=5))
        a = pub.recv()
        assert a[0] == 0x40 and a[-1] == 0x10, f"the group is gone: 0x10 no matching subscribers: {a.hex()}"


def test_subscription_identifier_and_qos_as_for_ordinary_subscriptions():
    """[MQTT-4.8.2-3] Each member gets the message at min(published, its granted QoS), with its own
    subscription identifier."""
    with Broker(verbose=False) as b:
        m1 = raw_member(b.port, "sh-id-a", "$share/g/id/t", version=5, qos=1, sub_props=b"\x0b\x05")
        m0 = raw_member(b.port, "sh-id-b", "$share/g/id/t", version=5, qos=0)
        pub = raw_publisher(b.port, "sh-id-pub")
        for i in range(4):
            pub.send(publish("id/t", f"s{i}", qos=2, packet_id=10 + i, version=5))
            assert pub.recv()[0] == 0x50
            pub.send(ack("pubrel", 10 + i))
            assert pub.recv()[0] == 0x70
        g1 = collect(m1, 5)
        g0 = collect(m0, 5)
        assert len(g1) == 2 and len(g0) == 2, (len(g1), len(g0))
        assert all(g["qos"] == 1 and g["props"] == b"\x0b\x05" for g in g1), g1
        assert all(g["qos"] == 0 and g["props"] == b"" for g in g0), g0


def test_ordinary_and_shared_subscription_of_one_client_are_separate():
    """A client with an ordinary and a shared subscription matching a topic gets the ordinary copy
    and, when chosen, the shared one as well."""
    with Broker(verbose=False) as b:
        c = raw_member(b.port, "sh-both", "both/t", version=5, qos=1, sub_props=b"\x0b\x01")
        c.send(subscribe(2, [("$share/g/both/t", 1)], version=5, properties=b"\x0b\x02"))
        assert suback_codes(c.recv(), 5) == [1]
        pub = raw_publisher(b.port, "sh-both-pub")
        pub_qos1(pub, "both/t", [b"one"])
        got = collect(c, 5)
        assert sorted(g["props"] for g in got) == [b"\x0b\x01", b"\x0b\x02"], got
        # With a second member, the client gets its ordinary copy of every message and half the shared.
        other = raw_member(b.port, "sh-both-o", "$share/g/both/t", version=5, qos=1)
        pub_qos1(pub, "both/t", payloads("b", 4), start_pid=20)
        mine = collect(c, 5)
        assert sum(g["props"] == b"\x0b\x01" for g in mine) == 4
        assert sum(g["props"] == b"\x0b\x02" for g in mine) == 2
        assert len(collect(other, 5)) == 2


def test_members_leaving_under_load_lose_nothing():
    """Members on every worker come and go (clean sessions) while a publisher sends QoS 1: every
    acknowledged message reaches a member at least once, and a member that stays connected and
    acknowledges never sees a duplicate."""
    with Broker(verbose=False) as b:
        ids = ids_on_workers("sh-churn", 4)
        stay = raw_member(b.port, ids[0], "$share/g/ch/t", version=5, qos=1)
        pub = raw_publisher(b.port, "sh-churn-pub")
        received = []
        for rnd in range(5):
            others = [raw_member(b.port, cid, "$share/g/ch/t", version=5, qos=1) for cid in ids[1:]]
            batch = [f"r{rnd}-{i}".encode() for i in range(40)]
            pub_qos1(pub, "ch/t", batch, start_pid=1 + rnd * 100)
            # One leaves without acknowledging, one acknowledges and leaves, one stays a little.
            others[0].close()
            received += [g["payload"] for g in collect(others[1], 5, timeout=0.2)]
            others[1].send(bytes([0xE0, 0x00]))
            received += [g["payload"] for g in collect(others[2], 5, timeout=0.2)]
            others[2].close()
            received += [g["payload"] for g in collect(stay, 5, timeout=0.5)]
        received += [g["payload"] for g in collect(stay, 5, timeout=1.0)]
        sent = {f"r{r}-{i}".encode() for r in range(5) for i in range(40)}
        assert sent <= set(received), f"lost: {sorted(sent - set(received))[:10]}"
        assert b.alive()


def test_shared_membership_survives_a_restart_with_persistence():
    """persistence true: a persistent member's shared subscription is saved and restored; after the
    restart, with the member offline, messages wait in its queue."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tern-shared-db-")
    os.chmod(d, 0o777)  # a broker started as root writes it as the mosquitto user
    conf = f"persistence true\npersistence_location {d}/\n"
    with Broker(conf, verbose=False) as b:
        c = raw_member(b.port, "sh-db", "$share/g/db/t", version=5, qos=1, expiry=3600)
        c.send(bytes([0xE0, 0x00]))
        c.expect_closed()
    with Broker(conf, verbose=False) as b:
        pub = raw_publisher(b.port, "sh-db-pub")
        pub_qos1(pub, "db/t", payloads("d", 3))
        c = Client(b.port)
        r = c.connect("sh-db", version=5, clean=False, properties=session_expiry(3600))
        assert r[2] == 1, r.hex()
        assert [g["payload"] for g in collect(c, 5)] == payloads("d", 3)


if __name__ == "__main__":
    run_tests([
        test_MQTT_4_8_2_round_robin_three_members_on_three_workers,
        test_v311_and_v5_members_in_one_group,
        test_sticky_strategy_keeps_a_publisher_on_one_member,
        test_qos1_in_flight_goes_to_another_member_on_disconnect,
        test_MQTT_4_8_2_4_qos2_in_flight_stays_with_its_member,
        test_MQTT_4_8_2_5_qos2_in_flight_dies_with_its_session,
        test_MQTT_4_8_2_6_negative_ack_discards_the_message,
        test_MQTT_4_8_2_1_and_2_bad_share_names,
        test_MQTT_3_8_3_4_no_local_on_a_shared_subscription_is_a_protocol_error,
        test_no_retained_messages_on_a_shared_subscription,
        test_offline_persistent_member_gets_the_message_when_none_is_connected,
        test_offline_member_queue_moves_when_it_disconnects_with_another_connected,
        test_unsubscribe_removes_the_membership,
        test_subscription_identifier_and_qos_as_for_ordinary_subscriptions,
        test_ordinary_and_shared_subscription_of_one_client_are_separate,
        test_members_leaving_under_load_lose_nothing,
        test_shared_membership_survives_a_restart_with_persistence,
    ])
