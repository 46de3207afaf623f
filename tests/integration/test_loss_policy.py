#!/usr/bin/python3
"""The loss policy end to end: a QoS 1 subscriber that stops acknowledging pauses the publisher
feeding it (its PUBACKs stop) and loses nothing once it reads again; one that stays stuck for
slow_subscriber_timeout is disconnected (5.0: DISCONNECT 0x97) and the publisher goes on."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402


def parse_publish(p):
    """(packet id, payload) of a QoS 1 PUBLISH (3.1.1)."""
    d = conflib.parse_publish(p)
    return d["pid"], d["payload"]


def flood(pub, first, count):
    data = b"".join(publish("lp", f"m{i}", qos=1, packet_id=i % 65535 + 1) for i in range(first, first + count))
    pub.send(data)


def count_pubacks(pub, timeout, within=30.0):
    """PUBACKs received until `timeout` s of silence or `within` s in all."""
    n = 0
    end = time.time() + within
    while time.time() < end:
        p = pub.recv(min(timeout, max(0.01, end - time.time())))
        if p is None:
            return n
        assert p[0] == 0x40, p.hex()
        n += 1
    return n


def test_stuck_subscriber_pauses_publisher_and_loses_nothing():
    with Broker("max_queued_messages 50\nmax_inflight_messages 10\nslow_subscriber_timeout 0\n",
                verbose=False) as b:
        sub = Client(b.port)
        sub.connect("lp-sub")
        sub.send(subscribe(1, [("lp", 1)]))
        assert sub.recv() == bytes([0x90, 3, 0, 1, 1])
        pub = Client(b.port)
        pub.connect("lp-pub")
        # In steps, as a live publisher does: the first burst may all be routed before the
        # subscriber's worker flags the congestion; what follows is held back.
        total = 1000
        for first in range(0, total, 50):
            flood(pub, first, 50)
            time.sleep(0.02)
        acked = count_pubacks(pub, 1.0, within=1.5)
        assert acked < total / 2, f"publisher was not paused ({acked} acknowledged)"
        assert acked >= 50, f"paused too early ({acked} acknowledged)"
        # The subscriber now reads and acknowledges everything: all arrive, in order.
        got = []
        deadline = time.time() + 20
        while len(got) < total and time.time() < deadline:
            p = sub.recv(2.0)
            assert p is not None, f"stalled after {len(got)} messages"
            pid, payload = parse_publish(p)
            got.append(payload)
            sub.send(ack("puback", pid))
        assert got == [f"m{i}".encode() for i in range(total)], "lost or reordered"
        acked += count_pubacks(pub, 1.0)
        assert acked == total, f"publisher got {acked} PUBACKs of {total}"


def test_slow_subscriber_timeout_disconnects_with_0x97():
    with Broker("max_queued_messages 20\nmax_inflight_messages 5\nslow_subscriber_timeout 2\n") as b:
        sub = Client(b.port)
        sub.send(connect("stuck", version=5))
        assert sub.recv()[0] == 0x20
        sub.send(subscribe(1, [("lp", 1)], version=5))
        assert sub.recv()[0] == 0x90
        pub = Client(b.port)
        pub.connect("lp-pub2")
        flood(pub, 0, 200)
        start = time.time()
        b.wait_log(r"Client stuck has not read its messages for 2 s \(slow_subscriber_timeout\), disconnecting\.",
                   timeout=6)
        got = sub.expect_closed(timeout=3)
        assert got and got[-1] == bytes([0xE0, 0x01, 0x97]) or got[-1][:3] == bytes([0xE0, 0x02, 0x97]), \
            f"last packet {got[-1].hex() if got else None}"
        assert time.time() - start >= 1.0
        # With the stuck subscriber gone the publisher is read again and everything is acknowledged.
        assert count_pubacks(pub, 2.0) + 0 > 0
        pub.send(PINGREQ)
        assert pub.recv() == PINGRESP


if __name__ == "__main__":
    run_tests([
        test_stuck_subscriber_pauses_publisher_and_loses_nothing,
        test_slow_subscriber_timeout_disconnects_with_0x97,
    ])
