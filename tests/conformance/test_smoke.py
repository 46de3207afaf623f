#!/usr/bin/python3
"""Byte-exact smoke dialogue: CONNECT, SUBSCRIBE, PUBLISH QoS 1 to self, PINGREQ, DISCONNECT."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403


def test_smoke_roundtrip():
    with Broker() as b:
        c = Client(b.port)
        assert c.connect("smoke") == connack()
        c.send(subscribe(1, [("a/b", 1)]))
        c.expect(bytes([0x90, 0x03, 0x00, 0x01, 0x01]))
        c.send(publish("a/b", "hi", qos=1, packet_id=7))
        pkts = [c.recv(), c.recv()]
        assert bytes([0x40, 0x02, 0x00, 0x07]) in pkts
        assert publish("a/b", "hi", qos=1, packet_id=1) in pkts
        c.send(PINGREQ)
        c.expect(PINGRESP)
        c.send(DISCONNECT)
        c.expect_closed()
        assert b.alive()


if __name__ == "__main__":
    run_tests([test_smoke_roundtrip])
