#!/usr/bin/python3
"""$SYS topics: Mosquitto's names, and Tern's cross-worker counter showing that deliveries crossed
workers (the broker runs 4 workers; client ids are chosen to land on different ones)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
from ternlib import *  # noqa: E402,F403
from conflib import owner_of  # noqa: E402


def ids_on_different_workers():
    a = "sys-pub-0"
    for i in range(1000):
        b = f"sys-sub-{i}"
        if owner_of(b) != owner_of(a):
            return a, b
    raise AssertionError("no pair found")


def read_sys(c, topic, timeout=5.0):
    """Returns the payload of the next PUBLISH on `topic` as text."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = c.recv(max(0.05, deadline - time.time()))
        if p is None:
            break
        if p[0] >> 4 != 3:
            continue
        tlen = int.from_bytes(p[2:4], "big") if p[1] < 128 else int.from_bytes(p[3:5], "big")
        off = 4 if p[1] < 128 else 5
        t = p[off:off + tlen].decode()
        qos = (p[0] >> 1) & 3
        body = p[off + tlen + (2 if qos else 0):]
        if t == topic:
            return body.decode()
    raise AssertionError(f"no {topic} within {timeout} s")


def test_sys_cross_worker_counter():
    pub_id, sub_id = ids_on_different_workers()
    with Broker(config="sys_interval 1\n") as b:
        sub = Client(b.port)
        assert sub.connect(sub_id) == connack()
        sub.send(subscribe(1, [("x/y", 0)]))
        sub.recv()
        pub = Client(b.port)
        assert pub.connect(pub_id) == connack()
        for _ in range(10):
            pub.send(publish("x/y", "m"))
        for _ in range(10):
            assert sub.recv() == publish("x/y", "m")
        mon = Client(b.port)
        assert mon.connect("sys-monitor") == connack()
        mon.send(subscribe(1, [("$SYS/broker/tern/cross_worker/deliveries", 0)]))
        mon.recv()
        # The retained value arrives first; wait for one that counts our ten deliveries.
        deadline = time.time() + 5
        value = 0
        while time.time() < deadline and value < 10:
            value = int(read_sys(mon, "$SYS/broker/tern/cross_worker/deliveries"))
        assert value >= 10, value


def test_sys_mosquitto_names():
    with Broker(config="sys_interval 1\n") as b:
        c = Client(b.port)
        assert c.connect("sys-names") == connack()
        c.send(subscribe(1, [("$SYS/broker/version", 0), ("$SYS/broker/clients/connected", 0)]))
        c.recv()
        assert read_sys(c, "$SYS/broker/version").startswith("tern version ")
        assert int(read_sys(c, "$SYS/broker/clients/connected")) >= 1


def test_sys_not_matched_by_hash():
    # [MQTT-4.7.2-1] '#' does not match $SYS topics.
    with Broker(config="sys_interval 1\n") as b:
        c = Client(b.port)
        assert c.connect("sys-hash") == connack()
        c.send(subscribe(1, [("#", 0)]))
        c.recv()
        assert c.recv(timeout=1.5) is None


if __name__ == "__main__":
    run_tests([test_sys_cross_worker_counter, test_sys_mosquitto_names, test_sys_not_matched_by_hash])
