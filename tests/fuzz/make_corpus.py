#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (small hand-built MQTT packets, topic
pairs and configuration files). Run again after changing it: python3 tests/fuzz/make_corpus.py"""
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(b)) + b


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect(level, client_id, flags=0x02, keepalive=60, prop=b"", will=b"", tail=b""):
    name = "MQIsdp" if level == 3 else "MQTT"
    body = s(name) + bytes([level, flags]) + struct.pack(">H", keepalive)
    if level == 5:
        body += prop or props()
    return packet(0x10, body + s(client_id) + will + tail)


def publish(topic, payload, qos=0, pid=1, retain=False, v5=False, prop=b""):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"")
    if v5:
        body += prop or props()
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribe(pid, filters, v5=False, prop=b""):
    body = struct.pack(">H", pid) + ((prop or props()) if v5 else b"")
    for f, opts in filters:
        body += s(f) + bytes([opts])
    return packet(0x82, body)


def unsubscribe(pid, filters, v5=False):
    body = struct.pack(">H", pid) + (props() if v5 else b"")
    return packet(0xA2, body + b"".join(s(f) for f in filters))


def ack(kind, pid, reason=None):
    first = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62, "pubcomp": 0x70}[kind]
    return packet(first, struct.pack(">H", pid) + (bytes([reason]) if reason is not None else b""))


PINGREQ = packet(0xC0, b"")
DISCONNECT = packet(0xE0, b"")

V5_CONNECT_PROPS = props(b"\x11" + struct.pack(">I", 300), b"\x21" + struct.pack(">H", 10),
                         b"\x27" + struct.pack(">I", 65536), b"\x22" + struct.pack(">H", 5),
                         b"\x26" + s("k") + s("v"))
V5_WILL = props(b"\x18" + struct.pack(">I", 5), b"\x01\x01") + s("will/topic") + s(b"bye")
V5_PUBLISH_PROPS = props(b"\x01\x01", b"\x02" + struct.pack(">I", 60), b"\x03" + s("text/plain"),
                         b"\x08" + s("reply/to"), b"\x09" + s(b"\x00\x01"), b"\x23\x00\x01")

decode = {
    "connect_v31": connect(3, "c31", tail=b""),
    "connect_v311": connect(4, "client-1", flags=0xC2, tail=s("user") + s(b"secret")),
    "connect_v311_will": connect(4, "c2", flags=0x2E, will=s("will/t") + s(b"gone")),
    "connect_v5": connect(5, "client-5", flags=0xC6 | 0x08, prop=V5_CONNECT_PROPS, will=V5_WILL,
                          tail=s("user") + s(b"pw")),
    "connack_v5": packet(0x20, b"\x00\x00" + props(b"\x21\x00\x0a", b"\x22\x00\x0a")),
    "publish_qos0": publish("a/b", b"hello"),
    "publish_qos1_v5": publish("sensors/t1", b"21.5", qos=1, pid=7, v5=True, prop=V5_PUBLISH_PROPS),
    "publish_qos2_retain": publish("r/x", b"kept", qos=2, pid=9, retain=True),
    "subscribe_v311": subscribe(1, [("a/+/c", 1), ("#", 0), ("$SYS/#", 2)]),
    "subscribe_v5": subscribe(2, [("a/#", 0x2E)], v5=True, prop=props(b"\x0b\x05")),
    "unsubscribe": unsubscribe(3, ["a/+/c", "#"]),
    "acks": ack("puback", 7) + ack("pubrec", 9) + ack("pubrel", 9) + ack("pubcomp", 9),
    "ack_v5_reason": ack("pubrec", 3, 0x10) + packet(0x40, b"\x00\x04\x80" + props(b"\x1f" + s("no"))),
    "suback": packet(0x90, b"\x00\x01\x00\x01\x80"),
    "ping_disconnect": PINGREQ + packet(0xD0, b"") + DISCONNECT,
    "disconnect_v5": packet(0xE0, b"\x04" + props(b"\x11\x00\x00\x00\x00", b"\x1f" + s("bye"))),
    "auth_v5": packet(0xF0, b"\x18" + props(b"\x15" + s("SCRAM"), b"\x16" + s(b"\x01\x02"))),
}

# fuzz_server_connection: byte 0 is the set-up byte (chunks, limits, clock; see the target).
v311 = (connect(4, "sub-1", keepalive=10) + subscribe(1, [("t/#", 2), ("+", 1)])
        + publish("t/a", b"x", qos=1, pid=1) + publish("t/b", b"y", qos=2, pid=2, retain=True)
        + ack("pubrel", 2) + ack("puback", 1) + ack("pubrec", 2) + ack("pubcomp", 2)
        + subscribe(3, [("t/b", 1)]) + unsubscribe(4, ["+"]) + PINGREQ + DISCONNECT)
v5 = (connect(5, "", prop=V5_CONNECT_PROPS, flags=0x06, will=V5_WILL)
      + subscribe(1, [("t/#", 0x02), ("s/+", 0x05)], v5=True, prop=props(b"\x0b\x07"))
      + publish("t/a", b"x" * 40, qos=1, pid=1, v5=True, prop=props(b"\x23\x00\x01"))
      + publish("", b"again", qos=2, pid=2, v5=True, prop=props(b"\x23\x00\x01"))
      + ack("pubrel", 2) + ack("puback", 1) + ack("pubrec", 1, 0x80)
      + unsubscribe(2, ["s/+", "nope"], v5=True) + PINGREQ
      + packet(0xE0, b"\x04" + props(b"\x11\x00\x00\x00\x0a")))
server = {
    "v311_session": bytes([0x01]) + v311,
    "v311_small_limits_paused": bytes([0x1B]) + v311,
    "v5_session": bytes([0x02]) + v5,
    "v5_small_limits_clock": bytes([0xEF]) + v5,
    "v31_connect": bytes([0x00]) + connect(3, "c31") + publish("a", b"b") + DISCONNECT,
    "keepalive_timeout": bytes([0xE3]) + connect(4, "k", keepalive=2) + PINGREQ,
    "bad_protocol": bytes([0x00]) + packet(0x10, s("HTTP") + b"\x04\x02\x00\x3c" + s("x")),
}

topic = {
    "exact": b"a/b/c\x00a/b/c",
    "plus": b"sport/+/player1\x00sport/tennis/player1",
    "hash_parent": b"sport/#\x00sport",
    "hash_dollar": b"#\x00$SYS/broker/uptime",
    "empty_levels": b"+/+\x00/finance",
    "invalid_filter": b"a/b#\x00a/b",
    "utf8": "caf\u00e9/+/\U0001F600\x00caf\u00e9/\u00fc/\U0001F600".encode(),
    "bad_utf8": b"\xed\xa0\x80/a\x00\xc0\xaf",
}

config = {
    "mosquitto.conf": b"""# A small Mosquitto 2.0 configuration
listener 1883 127.0.0.1
listener 8883
socket_domain ipv4
max_connections 100
allow_anonymous true
allow_zero_length_clientid false
auto_id_prefix tern-
max_keepalive 120
max_inflight_messages 10
max_queued_messages 500
max_queued_bytes 1048576
message_size_limit 65536
max_packet_size 1048576
persistent_client_expiration 2d
queue_qos0_messages true
log_type error
log_type warning
log_dest stdout
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true
sys_interval 10
persistence false
""",
    "defaults.conf": b"port 1883\r\nlog_dest file /tmp/tern.log\r\nautosave_interval 60\r\n",
    "refused.conf": b"listener 1883\npassword_file /etc/mosquitto/passwd\n",
    "bad_value.conf": b"max_keepalive 70000\n",
}


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


UPGRADE = (b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
# First byte: odd = handshake, even = frames (bits 1-7 pick the chunk size).
websocket = {
    "upgrade": b"\x01" + UPGRADE,
    "plain_get": b"\x01GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
    "connect_frame": b"\x00" + ws_frame(2, connect(4, "ws")),
    "fragments": b"\x06" + ws_frame(2, connect(5, "ws")[:5], fin=False) + ws_frame(9, b"ping")
    + ws_frame(0, connect(5, "ws")[5:]),
    "long": b"\x10" + ws_frame(2, publish("t", b"x" * 300)),
    "text": b"\x00" + ws_frame(1, b"hello"),
    "close": b"\x02" + ws_frame(8, b"\x03\xe8bye"),
}


# fuzz_store_records: byte 0 picks the decoder (0 message, 1 session, 2 queue entry, 3 inbound id,
# 4 retained, 5 format version), byte 1 is the key's length, then the key, then the value (the
# encodings of src/store/records.cpp, version 1).
def s32(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def store_input(kind, key, value):
    return bytes([kind, len(key)]) + key + value


def store_message(topic, payload, qos=1, retain=False, expiry=None, origin="pub", prop=b"\x00"):
    flags = qos | (4 if retain else 0) | (8 if expiry is not None else 0)
    return (bytes([1, flags]) + (struct.pack(">Q", expiry) if expiry is not None else b"") + s(topic) + s(origin)
            + prop + s32(payload))


STORE_PROPS = props(b"\x01\x01", b"\x02" + struct.pack(">I", 60), b"\x03" + s("text/plain"),
                    b"\x08" + s("reply/to"), b"\x09" + s(b"\x00\x01"), b"\x26" + s("k") + s("v"))
STORE_SESSION = (bytes([1, 5]) + struct.pack(">I", 3600) + bytes([3]) + struct.pack(">Q", 1700000000000)
                 + struct.pack(">I", 3) + s("a/+/c") + bytes([0x05]) + struct.pack(">I", 0)
                 + s("$share/g/x/#") + bytes([0x2A]) + struct.pack(">I", 268435455)
                 + s("#") + bytes([0x10]) + struct.pack(">I", 7)
                 + bytes([0x05]) + s("will/t") + s32(b"gone") + STORE_PROPS + struct.pack(">I", 30))
store = {
    "message": store_input(0, b"M" + struct.pack(">Q", 1), store_message("a/b", b"hello")),
    "message_props": store_input(0, b"M" + struct.pack(">Q", 2**63),
                                 store_message("caf\u00e9/x", b"\x00\xff", 2, True, 1700000000123, prop=STORE_PROPS)),
    "session": store_input(1, b"S" + b"client-1", STORE_SESSION),
    "session_minimal": store_input(1, b"Sm", bytes([1, 4]) + struct.pack(">I", 0) + b"\x00" + struct.pack(">I", 0)),
    "queue_queued": store_input(2, b"Q" + s("c1") + struct.pack(">Q", 1),
                                bytes([1]) + struct.pack(">Q", 1) + b"\x01" + struct.pack(">HI", 0, 0)),
    "queue_released": store_input(2, b"Q" + s("c1") + struct.pack(">Q", 256),
                                  bytes([1]) + struct.pack(">Q", 9) + bytes([0x2E]) + struct.pack(">HI", 7, 2)
                                  + struct.pack(">II", 1, 268435455)),
    "inbound": store_input(3, b"I" + s("c1") + struct.pack(">H", 7), bytes([1]) + struct.pack(">Q", 0)),
    "retained": store_input(4, b"Rr/x", store_message("r/x", b"kept", retain=True)),
    "format": store_input(5, b"\x00format", b"tern-store" + struct.pack(">I", 1)),
}


def write(name, files):
    d = ROOT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for fname, data in files.items():
        (d / fname).write_bytes(data)


write("fuzz_decode", decode)
write("fuzz_server_connection", server)
write("fuzz_topic", topic)
write("fuzz_config", config)
write("fuzz_websocket", websocket)
write("fuzz_store_records", store)
