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


# ---- MQTT 5.0 helpers (tests/conformance/test_v5_*.py) -------------------------------------------

def p_byte(ident, value):
    """A Byte property (Payload Format Indicator, Request Problem Information, ...)."""
    return bytes([ident, value])


def p_u16(ident, value):
    return bytes([ident]) + struct.pack("!H", value)


def p_u32(ident, value):
    return bytes([ident]) + struct.pack("!I", value)


def p_str(ident, value):
    """A UTF-8 string or Binary Data property (raw bytes are passed through unchanged)."""
    from ternlib import s
    return bytes([ident]) + s(value)


def p_varint(ident, value):
    from ternlib import varint
    return bytes([ident]) + varint(value)


def p_user(key, value):
    from ternlib import s
    return b"\x26" + s(key) + s(value)


# Properties of Tern's CONNACK with the default configuration: Topic Alias Maximum 10, Maximum
# Packet Size 16 MiB (encoded in property identifier order, as Tern does).
V5_CONNACK_PROPS = p_u16(0x22, 10) + p_u32(0x27, 16 * 1024 * 1024)


def connack5(session_present=False, code=0, props=None):
    """A 5.0 CONNACK: Tern's default properties on success, none on a refusal unless given."""
    from ternlib import packet, props as block
    if props is None:
        props = V5_CONNACK_PROPS if code == 0 else b""
    return packet(0x20, bytes([1 if session_present else 0, code]) + block(props))


def connect5(client_id="", clean=True, keepalive=60, props=b"", will=None, will_props=b"", **kw):
    from ternlib import connect
    return connect(client_id, version=5, clean=clean, keepalive=keepalive, will=will,
                   properties=props, will_properties=will_props, **kw)


def publish5(topic, payload=b"", qos=0, retain=False, dup=False, pid=1, props=b""):
    from ternlib import publish
    return publish(topic, payload, qos=qos, retain=retain, dup=dup, packet_id=pid, version=5,
                   properties=props)


def subscribe5(pid, filters, props=b""):
    """filters: [(filter, options byte)]."""
    from ternlib import subscribe
    return subscribe(pid, filters, version=5, properties=props)


def unsubscribe5(pid, filters, props=b""):
    from ternlib import unsubscribe
    return unsubscribe(pid, filters, version=5, properties=props)


def ack5(first, pid, reason=None):
    """PUBACK 0x40 / PUBREC 0x50 / PUBREL 0x62 / PUBCOMP 0x70; reason None: the short form."""
    body = struct.pack("!H", pid) + (b"" if reason is None else bytes([reason]))
    return bytes([first, len(body)]) + body


def suback5(pid, *codes):
    return bytes([0x90, 3 + len(codes), pid >> 8, pid & 0xFF, 0]) + bytes(codes)


def unsuback5(pid, *codes):
    return bytes([0xB0, 3 + len(codes), pid >> 8, pid & 0xFF, 0]) + bytes(codes)


def disconnect5(code=0, props=b""):
    from ternlib import packet, props as block
    if code == 0 and not props:
        return bytes([0xE0, 0])
    return packet(0xE0, bytes([code]) + (block(props) if props else b""))


def connected5(broker, client_id, session_present=False, props=b"", connack_props=None, **kw):
    """A 5.0 Client whose CONNACK (success) was checked byte for byte."""
    from ternlib import Client
    c = Client(broker.port)
    c.send(connect5(client_id, props=props, **kw))
    want = connack5(session_present, 0, connack_props)
    got = c.recv()
    assert got == want, f"CONNACK for {client_id!r}: expected {want.hex()} got {got.hex() if got else got}"
    return c


def subscribed5(broker, client_id, filters, pid=1, sub_props=b"", **kw):
    """A connected 5.0 Client subscribed to filters [(filter, options)]; SUBACK asserted."""
    c = connected5(broker, client_id, **kw)
    c.send(subscribe5(pid, filters, sub_props))
    c.expect(suback5(pid, *[o & 3 for _, o in filters]))
    return c


def v5_reason_string_only(props):
    """True if the property block `props` (without its length) is exactly one Reason String."""
    if not props or props[0] != 0x1F or len(props) < 3:
        return False
    n = struct.unpack("!H", props[1:3])[0]
    if len(props) != 3 + n:
        return False
    props[3:].decode("utf-8")
    return True


def check_disconnect5(pkt, code):
    """Asserts pkt is a server DISCONNECT with `code`, carrying at most a Reason String."""
    assert pkt is not None and pkt[0] == 0xE0, \
        f"expected DISCONNECT 0x{code:02x}, got {pkt.hex() if pkt else pkt}"
    if pkt == bytes([0xE0, 0x01, code]) or (code == 0 and pkt == bytes([0xE0, 0])):
        return
    from ternlib import varint
    body = pkt[2:] if pkt[1] < 0x80 else None
    assert body is not None and len(body) == pkt[1], f"bad DISCONNECT {pkt.hex()}"
    assert body[0] == code, f"expected DISCONNECT 0x{code:02x}, got {pkt.hex()}"
    plen = body[1]
    assert plen < 0x80 and bytes([plen]) == varint(len(body) - 2), pkt.hex()
    assert v5_reason_string_only(body[2:]), f"DISCONNECT properties other than a Reason String: {pkt.hex()}"


def expect_disconnect5(c, code, timeout=3.0):
    """Asserts that the server sends exactly one DISCONNECT with `code` (a Reason String is
    allowed) and then closes the connection."""
    got = c.expect_closed(timeout)
    assert len(got) == 1, f"expected one DISCONNECT 0x{code:02x} then close, got {[p.hex() for p in got]}"
    check_disconnect5(got[0], code)


def expect_refused5(c, code, timeout=3.0):
    """Asserts CONNACK (session present 0, `code`, no properties) and then a close."""
    got = c.expect_closed(timeout)
    want = connack5(False, code)
    assert got == [want], f"expected {want.hex()} then close, got {[p.hex() for p in got]}"


def id_on_worker(prefix, worker, workers=4):
    """A client id starting with `prefix` that worker `worker` owns."""
    i = 0
    while True:
        cid = f"{prefix}-{i}"
        if owner_of(cid, workers) == worker:
            return cid
        i += 1


def expect_publish5(c, topic, payload=b"", qos=0, retain=False, dup=False, props=b"", pid=None, timeout=None):
    """Receives one packet and asserts it is exactly the 5.0 PUBLISH described (`props` without
    its length). For QoS > 0 the packet id is taken from the packet unless given; returns it."""
    got = c.recv(timeout)
    assert got is not None, f"expected PUBLISH {topic!r} {payload!r}, got nothing"
    if qos and pid is None:
        pid = parse_publish(got, 5)["pid"]
        assert pid, f"QoS {qos} PUBLISH without a non-zero packet id: {got.hex()}"
    want = publish5(topic, payload, qos=qos, retain=retain, dup=dup, pid=pid or 1, props=props)
    assert got == want, f"expected {want.hex()} got {got.hex()}"
    return pid
