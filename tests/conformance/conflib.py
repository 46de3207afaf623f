"""Small helpers shared by the MQTT 3.1.1 conformance tests (on top of ternlib)."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F401,F403
from ternlib import Client, connack, ack  # noqa: E402


def puback(pid):
    return bytes([0x40, 0x02, pid >> 8, pid & 0xFF])


def pubrec(pid):
    return bytes([0x50, 0x02, pid >> 8, pid & 0xFF])


def pubrel(pid):
    return bytes([0x62, 0x02, pid >> 8, pid & 0xFF])


def pubcomp(pid):
    return bytes([0x70, 0x02, pid >> 8, pid & 0xFF])


def suback(pid, *codes):
    return bytes([0x90, 2 + len(codes), pid >> 8, pid & 0xFF]) + bytes(codes)


def unsuback(pid):
    return bytes([0xB0, 0x02, pid >> 8, pid & 0xFF])


def connected(broker, client_id, session_present=False, **kw):
    """A Client connected with CONNACK (session_present, 0) asserted byte for byte."""
    c = Client(broker.port)
    got = c.connect(client_id, **kw)
    want = connack(session_present)
    assert got == want, f"CONNACK for {client_id!r}: expected {want.hex()} got {got.hex() if got else got}"
    return c


def subscribed(broker, client_id, filters, pid=1, **kw):
    """A connected Client subscribed to filters [(filter, qos)]; SUBACK asserted."""
    from ternlib import subscribe
    c = connected(broker, client_id, **kw)
    c.send(subscribe(pid, filters))
    c.expect(suback(pid, *[q for _, q in filters]))
    return c


def expect_nothing(c, timeout=0.3):
    """Asserts that nothing arrives (and the connection stays open) for `timeout` seconds."""
    got = c.recv(timeout)
    assert got is None, f"expected nothing, got {got.hex()}"


def parse_publish(pkt, version=4):
    """Decodes a PUBLISH into a dict: dup, qos, retain, topic, pid, payload (props for v5)."""
    assert pkt is not None, "expected a PUBLISH, got nothing"
    assert pkt[0] >> 4 == 3, f"expected a PUBLISH, got {pkt.hex()}"
    i = 1
    while pkt[i] & 0x80:
        i += 1
    i += 1
    first = pkt[0]
    tlen = struct.unpack("!H", pkt[i:i + 2])[0]
    topic = pkt[i + 2:i + 2 + tlen]
    i += 2 + tlen
    qos = (first >> 1) & 3
    pid = None
    if qos:
        pid = struct.unpack("!H", pkt[i:i + 2])[0]
        i += 2
    props = b""
    if version == 5:
        n, shift, plen = 0, 0, 0
        while True:
            b = pkt[i + n]
            plen |= (b & 0x7F) << shift
            shift += 7
            n += 1
            if not b & 0x80:
                break
        props = pkt[i + n:i + n + plen]
        i += n + plen
    return {"dup": bool(first & 8), "qos": qos, "retain": bool(first & 1), "topic": topic,
            "pid": pid, "payload": pkt[i:], "props": props}


def recv_publish(c, timeout=None, version=4):
    return parse_publish(c.recv(timeout), version)


def wait_closed_by(c, seconds):
    """Returns the time (s) until the server closed the connection, failing after `seconds`."""
    start = time.time()
    c.expect_closed(seconds)
    return time.time() - start


def expect_publish(c, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, timeout=None):
    """Receives one packet and asserts it is exactly the PUBLISH described (byte for byte).
    For QoS > 0 the packet id is taken from the packet unless `pid` is given; returns it."""
    from ternlib import publish
    got = c.recv(timeout)
    assert got is not None, f"expected PUBLISH {topic!r} {payload!r}, got nothing"
    if qos and pid is None:
        pid = parse_publish(got)["pid"]
        assert pid, f"QoS {qos} PUBLISH without a non-zero packet id: {got.hex()}"
    want = publish(topic, payload, qos=qos, retain=retain, dup=dup, packet_id=pid or 1)
    assert got == want, f"expected {want.hex()} got {got.hex()}"
    return pid


def raw_connect(flags, payload, name=b"MQTT", level=4, keepalive=60):
    """A CONNECT with arbitrary flags and payload bytes."""
    from ternlib import packet, s
    return packet(0x10, s(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload)


def owner_of(client_id, workers=4):
    """The worker that owns a client id (mirrors Broker::owner_of, FNV-1a)."""
    h = 1469598103934665603
    for ch in client_id.encode():
        h ^= ch
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % workers


def ids_on_different_workers(prefix, workers=4):
    """Two client ids owned by different workers."""
    a = prefix + "-0"
    i = 1
    while True:
        b = f"{prefix}-{i}"
        if owner_of(b, workers) != owner_of(a, workers):
            return a, b
        i += 1


class SharedBroker:
    """One Broker per test file, started lazily and stopped at exit."""

    def __init__(self, **kw):
        self.kw = kw
        self.b = None

    def __call__(self):
        from ternlib import Broker
        if self.b is None:
            self.b = Broker(**self.kw)
        assert self.b.alive(), "broker died:\n" + self.b.log()[-3000:]
        return self.b

    def stop(self):
        if self.b is not None:
            self.b.stop()
            self.b = None


def main(tests, *brokers):
    from ternlib import run_tests
    try:
        run_tests(tests)
    finally:
        for b in brokers:
            b.stop()
