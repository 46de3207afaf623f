#!/usr/bin/python3
"""Interoperability with Eclipse Paho's Python client (Debian python3-paho-mqtt 1.6) over MQTT 3.1.1 and 5.0.

Each client runs its own network-loop thread calling Client.loop() (not loop_start(), whose automatic
reconnect would make takeover tests ping-pong between two clients with the same id).
"""
import os
import queue
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

PROTOCOLS = [("3.1.1", mqtt.MQTTv311), ("5.0", mqtt.MQTTv5)]
WAIT = 5.0


class Paho:
    """A paho client with queues for what its callbacks saw and its own loop thread."""

    def __init__(self, port, client_id, protocol, clean=True, will=None, session_expiry=None, keepalive=60):
        self.protocol = protocol
        self.port = port
        self.client_id = client_id
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        if protocol == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=client_id, protocol=protocol)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=protocol)
        if will:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos, retain)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = lambda c, u, mid, granted, *props: self.subacks.put((mid, granted))
        # paho 1.6 drops the reason code of a DISCONNECT whose Remaining Length is <= 2 (it wants > 2,
        # eclipse-paho/paho.mqtt.python#860), so `e0 01 8e` reaches on_disconnect as rc 7 (connection lost).
        # Record the raw DISCONNECT body as well so the tests can see what the broker really sent.
        self.server_disconnects = queue.Queue()
        handle = self.c._handle_disconnect

        def record_disconnect():
            self.server_disconnects.put(bytes(self.c._in_packet["packet"]))
            return handle()
        self.c._handle_disconnect = record_disconnect
        self._stop = False
        self.thread = None

    def _on_connect(self, c, userdata, flags, rc, properties=None):
        self.connacks.put((flags, rc))

    def _on_disconnect(self, c, userdata, rc, properties=None):
        self.disconnects.put(rc)

    def _loop(self):
        while not self._stop:
            rc = self.c.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break  # connection gone; never reconnect on our own

    def connect(self):
        """Connects and waits for CONNACK; returns (session_present, reason code as int)."""
        kw = {}
        if self.protocol == mqtt.MQTTv5:
            kw["clean_start"] = self.clean
            if self.session_expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = self.session_expiry
                kw["properties"] = p
        self.c.connect("127.0.0.1", self.port, keepalive=self.keepalive, **kw)
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        flags, rc = self.connacks.get(timeout=WAIT)
        return flags.get("session present", 0), int(getattr(rc, "value", rc))

    def subscribe(self, topic, qos):
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        got_mid, granted = self.subacks.get(timeout=WAIT)
        assert got_mid == mid
        g = granted[0]
        return int(getattr(g, "value", g))

    def publish(self, topic, payload, qos=0, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return info

    def publish_wait(self, topic, payload, qos=0, retain=False):
        info = self.publish(topic, payload, qos, retain)
        deadline = time.time() + WAIT
        while not info.is_published() and time.time() < deadline:
            time.sleep(0.01)
        assert info.is_published(), f"publish {topic} q{qos} not acknowledged"

    def message(self, timeout=WAIT):
        return self.messages.get(timeout=timeout)

    def no_message(self, timeout=0.5):
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {m.topic} {m.payload!r}")

    def disconnect(self):
        """Normal DISCONNECT."""
        self.c.disconnect()
        self.join()

    def kill_socket(self):
        """Drops the TCP connection without DISCONNECT (like a device losing power)."""
        self._stop = True
        if self.thread:
            self.thread.join(timeout=WAIT)
        sock = self.c.socket()
        if sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def join(self):
        if self.thread:
            self.thread.join(timeout=WAIT)
            assert not self.thread.is_alive(), "paho loop thread did not end"

    def close(self):
        self._stop = True
        if self.thread:
            self.thread.join(timeout=WAIT)
        sock = self.c.socket()
        if sock:
            sock.close()


def each_protocol(fn):
    """Runs fn(broker, name, protocol) for 3.1.1 and 5.0, each against its own broker."""
    def wrapper():
        for name, proto in PROTOCOLS:
            with Broker() as b:
                try:
                    fn(b, name, proto)
                except AssertionError as e:
                    raise AssertionError(f"[MQTT {name}] {e}") from e
                assert b.alive(), f"[MQTT {name}] broker died"
    wrapper.__name__ = fn.__name__
    return wrapper


@each_protocol
def test_subscribe_publish_qos012(b, name, proto):
    sub = Paho(b.port, "sub", proto)
    pub = Paho(b.port, "pub", proto)
    try:
        assert sub.connect() == (0, 0)
        assert pub.connect() == (0, 0)
        for q in (0, 1, 2):
            assert sub.subscribe(f"t/{q}", q) == q
        for q in (0, 1, 2):
            for pq in (0, 1, 2):
                pub.publish_wait(f"t/{q}", f"sub q{q} pub q{pq}", pq)
                m = sub.message()
                assert (m.topic, m.payload, m.qos, m.retain) == (f"t/{q}", f"sub q{q} pub q{pq}".encode(), min(q, pq), False), \
                    (m.topic, m.payload, m.qos, m.retain)
        # many in flight at once, in order (4 workers: publisher and subscriber may live on different workers)
        for i in range(200):
            pub.publish(f"t/{i % 3}", f"n{i}", i % 3)
        got = [sub.message().payload.decode() for _ in range(200)]
        assert got == [f"n{i}" for i in range(200)] or sorted(got) == sorted(f"n{i}" for i in range(200)), got[:20]
        per_topic = {}
        for p in got:
            per_topic.setdefault(int(p[1:]) % 3, []).append(int(p[1:]))
        assert all(v == sorted(v) for v in per_topic.values()), "per-topic order broken"
        sub.no_message(0.3)
        b.wait_log(r"Received PUBCOMP from sub \(Mid: \d+, RC:0\)")
    finally:
        sub.close()
        pub.close()


@each_protocol
def test_retained(b, name, proto):
    pub = Paho(b.port, "rpub", proto)
    try:
        pub.connect()
        pub.publish_wait("r/a", "temp 21", 1, retain=True)
        pub.publish_wait("r/b", "temp 22", 2, retain=True)
        pub.publish_wait("r/c", "gone", 0, retain=True)
        pub.publish_wait("r/c", "", 0, retain=True)  # clears r/c
        pub.publish_wait("r/d", "not retained", 1)
        late = Paho(b.port, "late", proto)
        try:
            late.connect()
            assert late.subscribe("r/#", 2) == 2
            ms = [late.message(), late.message()]
            got = sorted((m.topic, m.payload, m.qos, m.retain) for m in ms)
            assert got == [("r/a", b"temp 21", 1, True), ("r/b", b"temp 22", 2, True)], got
            late.no_message(0.3)
            # live messages on a retained topic come with retain=0 to an existing subscriber
            pub.publish_wait("r/a", "temp 23", 1, retain=True)
            m = late.message()
            assert (m.topic, m.payload, m.retain) == ("r/a", b"temp 23", False), (m.topic, m.payload, m.retain)
        finally:
            late.close()
    finally:
        pub.close()


@each_protocol
def test_will_on_abrupt_close(b, name, proto):
    watcher = Paho(b.port, "watcher", proto)
    dev = Paho(b.port, "device", proto, will=("status/device", "offline", 1, False))
    try:
        watcher.connect()
        assert watcher.subscribe("status/#", 1) == 1
        dev.connect()
        dev.publish_wait("status/device", "online", 1)
        assert watcher.message().payload == b"online"
        dev.kill_socket()
        m = watcher.message()
        assert (m.topic, m.payload, m.qos) == ("status/device", b"offline", 1), (m.topic, m.payload, m.qos)
        watcher.no_message(0.3)
    finally:
        watcher.close()
        dev.close()


@each_protocol
def test_no_will_on_normal_disconnect(b, name, proto):
    watcher = Paho(b.port, "watcher", proto)
    dev = Paho(b.port, "device", proto, will=("status/device", "offline", 1, False))
    try:
        watcher.connect()
        assert watcher.subscribe("status/#", 1) == 1
        dev.connect()
        dev.disconnect()
        b.wait_log(r"Received DISCONNECT from device")
        b.wait_log(r"Client device disconnected\.")
        watcher.no_message(1.0)
    finally:
        watcher.close()
        dev.close()


@each_protocol
def test_persistent_session_offline_queue(b, name, proto):
    expiry = 300 if proto == mqtt.MQTTv5 else None
    sub = Paho(b.port, "durable", proto, clean=False, session_expiry=expiry)
    try:
        assert sub.connect() == (0, 0)
        assert sub.subscribe("queue/t", 1) == 1
        sub.disconnect()
        b.wait_log(r"Client durable disconnected\.")
        pub = Paho(b.port, "producer", proto)
        try:
            pub.connect()
            for i in range(10):
                pub.publish_wait("queue/t", f"offline {i}", 1)
        finally:
            pub.disconnect()
        sub = Paho(b.port, "durable", proto, clean=False, session_expiry=expiry)
        present, rc = sub.connect()
        assert (present, rc) == (1, 0), (present, rc)
        got = [sub.message() for _ in range(10)]
        assert [m.payload.decode() for m in got] == [f"offline {i}" for i in range(10)], [m.payload for m in got]
        assert all(m.qos == 1 for m in got)
        sub.no_message(0.3)
        # the subscription survived too: a live message still arrives
        pub = Paho(b.port, "producer2", proto)
        try:
            pub.connect()
            pub.publish_wait("queue/t", "live", 1)
            assert sub.message().payload == b"live"
        finally:
            pub.close()
    finally:
        sub.close()


@each_protocol
def test_clean_session_discards_queue(b, name, proto):
    expiry = 300 if proto == mqtt.MQTTv5 else None
    sub = Paho(b.port, "durable", proto, clean=False, session_expiry=expiry)
    sub.connect()
    sub.subscribe("queue/t", 1)
    sub.disconnect()
    b.wait_log(r"Client durable disconnected\.")
    pub = Paho(b.port, "producer", proto)
    pub.connect()
    pub.publish_wait("queue/t", "lost", 1)
    pub.disconnect()
    sub = Paho(b.port, "durable", proto, clean=True)
    try:
        assert sub.connect() == (0, 0)
        sub.no_message(0.5)
    finally:
        sub.close()


@each_protocol
def test_takeover(b, name, proto):
    first = Paho(b.port, "same-id", proto)
    second = Paho(b.port, "same-id", proto)
    other = Paho(b.port, "other", proto)
    try:
        first.connect()
        first.subscribe("take/#", 1)
        assert second.connect() == (0, 0)
        rc = first.disconnects.get(timeout=WAIT)
        code = int(getattr(rc, "value", rc))
        if proto == mqtt.MQTTv5:
            # The broker sends DISCONNECT with reason code 0x8E (Session taken over) [MQTT-3.1.4-3].
            raw = first.server_disconnects.get(timeout=WAIT)
            assert raw[:1] == b"\x8e", f"DISCONNECT body {raw.hex()}, expected reason code 8e"
            # paho reports 142 only if the packet also has properties (see Paho.__init__); a bare
            # `e0 01 8e`, which is also what Mosquitto sends, shows up as 7 (MQTT_ERR_CONN_LOST).
            expected = 0x8E if len(raw) > 2 else mqtt.MQTT_ERR_CONN_LOST
            assert code == expected, f"on_disconnect reason {rc!r} for DISCONNECT body {raw.hex()}"
        else:
            assert first.server_disconnects.empty(), "DISCONNECT sent to a 3.1.1 client"
            assert code == mqtt.MQTT_ERR_CONN_LOST, rc  # 3.1.1: the connection is just closed
        first.join()
        # the second connection works and the first is really gone
        second.subscribe("take/#", 1)
        other.connect()
        other.publish_wait("take/x", "to the new one", 1)
        assert second.message().payload == b"to the new one"
        first.no_message(0.3)
        b.wait_log(r"Client same-id already connected, closing old connection\.")
    finally:
        first.close()
        second.close()
        other.close()


def test_takeover_disconnect_bytes():
    """The exact packet the displaced 5.0 client gets, read with a raw socket: e0 01 8e (or with properties)."""
    with Broker() as b:
        a = Client(b.port)
        r = a.connect("same-id", version=5)
        assert r[0] == 0x20 and r[2:4] == b"\x00\x00", r.hex()  # CONNACK, no session, success
        c = Client(b.port)
        r = c.connect("same-id", version=5)
        assert r[0] == 0x20 and r[2:4] == b"\x00\x00", r.hex()
        got = a.expect_closed()
        assert len(got) == 1 and got[0][0] == 0xE0 and got[0][2] == 0x8E, [p.hex() for p in got]
        a.close()
        c.close()
        assert b.alive()


def test_cross_worker_fan_out():
    """20 subscribers spread by the broker over its 4 workers each get every message from one publisher.
    (Tern's log has no cross-worker counter, so nothing about the spread itself is asserted.)"""
    with Broker() as b:
        subs = [Paho(b.port, f"fan-{i}", mqtt.MQTTv311) for i in range(20)]
        pub = Paho(b.port, "fan-pub", mqtt.MQTTv5)
        try:
            for s in subs:
                s.connect()
                s.subscribe("fan/+", 1)
            pub.connect()
            for i in range(50):
                pub.publish(f"fan/{i % 2}", f"{i}", 1)
            for s in subs:
                got = [int(s.message().payload) for _ in range(50)]
                assert got == list(range(50)), (s.client_id, got)
        finally:
            for s in subs:
                s.close()
            pub.close()
        assert b.alive()


if __name__ == "__main__":
    run_tests([
        test_subscribe_publish_qos012,
        test_retained,
        test_will_on_abrupt_close,
        test_no_will_on_normal_disconnect,
        test_persistent_session_offline_queue,
        test_clean_session_discards_queue,
        test_takeover,
        test_takeover_disconnect_bytes,
        test_cross_worker_fan_out,
    ])
