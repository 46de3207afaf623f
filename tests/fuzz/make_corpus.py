#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/ (small hand-built MQTT packets, topic
pairs, configuration, password, ACL and scram files, SCRAM exchanges). Run again after changing it:
python3 tests/fuzz/make_corpus.py. The store's seeds come from its own encoders instead:
build/fuzz/tests/fuzz/make_store_corpus tests/fuzz/corpus/fuzz_store_records"""
import base64
import hashlib
import hmac
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
    # MQTT 3.1: will, user name and password, then a session's packets.
    "session_v31": connect(3, "c31-full", flags=0xEE, will=s("w/t") + s(b"bye"), tail=s("u") + s(b"p"))
    + subscribe(1, [("a/#", 1)]) + publish("a/b", b"x", qos=1, pid=2) + ack("puback", 2)
    + unsubscribe(3, ["a/#"]) + PINGREQ + DISCONNECT,
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
    # A second CONNECT with an unsupported level: DISCONNECT 0x82, never CONNACK's 0x84 (a finding).
    "v5_second_connect_bad_level": bytes([0x02]) + connect(5, "a")
    + packet(0x10, s("MQTT") + b"\x00\x02\x00\x3c" + s("x")),
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
    # Refused by finalize(), which checks what needs the whole file (a finding of the harness).
    "keyfile_only.conf": b"listener 8883\nkeyfile /etc/tern/server.key\n",
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


# fuzz_password_file: the file, then optionally NUL, a user name, NUL and a password to check.
# MOSQUITTO_PASSWD was written by Debian's mosquitto_passwd 2.0.11 (-c -b; carol with -H sha512):
# alice "correct horse", bob "secret", carol "pa:ss word", "dave smith" "x".
MOSQUITTO_PASSWD = (
    b"alice:$7$101$dQ/meqmPGaam8Hwp$HAgwR8mrM8S0r4FhJ4iF2+WGS5LOizFnLZkiCY1nb62DaOuXfWU1GPCsZvFH8mbjx/WRXZhoLBW"
    b"iuuRl3QEh8Q==\n"
    b"bob:$7$101$kyrSwBBq+AuZMW4j$O3hUebgDtkZQ4bbo/gjd39TXbQLznOW256LRcSyTRfRVUVjngrqVvMqQ7goxw4oMilXtIOnHPSMo2j/"
    b"CKbCKyQ==\n"
    b"carol:$6$xDouvOP7Fw1i3/VH$JDnByf5y5KU2ZVRfzuRxme3YPNJcwG4dkK/ezFfJTVfSHbMXodVLwyXG81zkzqJtMiWUWTXMHLEmDA1ly"
    b"G71fA==\n"
    b"dave smith:$7$101$ugo4W0daYB66v2ds$KK6/HJf0J6IEm7qnkY958dJa+2iN8Lo+w+G0dj/NSBDtuSiDlOJStqMNZQzlFYM75B4L8CiQLSI"
    b"1J7fDmsatxg==\n")


def scram_sha256_line(user, password, salt_b64, iterations=4096):
    """A scram_file line (RFC 5803 form) computed with hashlib."""
    salt = base64.b64decode(salt_b64)
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b)  # noqa: E731
    return (user + b":SCRAM-SHA-256$" + str(iterations).encode() + b":" + b64(salt) + b"$" + b64(stored) + b":"
            + b64(server) + b"\n")


passwords = {
    "mosquitto_passwd": MOSQUITTO_PASSWD,
    "check_pbkdf2": MOSQUITTO_PASSWD + b"\x00bob\x00secret",
    "check_sha512": MOSQUITTO_PASSWD + b"\x00carol\x00pa:ss word",
    "check_unknown": MOSQUITTO_PASSWD + b"\x00nobody\x00x",
    "comments_crlf": b"# users\r\n\r\n  # indented comment\r\n  bob : " + MOSQUITTO_PASSWD.split(b"\n")[1][4:]
    + b"\r\n",
    "scram_file": scram_sha256_line(b"user", b"pencil", "W22ZaJ0SNY7soEsUEjb6gQ==")
    + scram_sha256_line(b"x=y", b"z", "QSXCR+Q6sek8bf92", 1) + b"\x00user\x00",
    "bad_argon2": b"eve:$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA\n",
    "bad_plain": b"frank:password\n",
    "bad_twice": MOSQUITTO_PASSWD + MOSQUITTO_PASSWD.split(b"\n")[0] + b"\n",
}

# fuzz_acl: the file, then optionally NUL, a flags byte (1: the client has a user name), and
# NUL-separated client id, user name, topic names and filters.
MOSQUITTO_ACL = b"""# anonymous clients
topic read $SYS/#
topic public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic read sensors/+/temp

user dave smith
topic write a topic with spaces

# every client
pattern read dev/%c/#
pattern write dev/%u/cmd
pattern deny dev/%c/secret
"""


def acl_query(has_user, client_id, username, *items):
    return b"\x00" + bytes([1 if has_user else 0]) + b"\x00".join([client_id, username, *items])


acl = {
    "mosquitto_acl": MOSQUITTO_ACL,
    "alice": MOSQUITTO_ACL + acl_query(True, b"dev1", b"alice", b"alice/x", b"alice/secret", b"alice/#",
                                       b"dev/dev1/a", b"sensors/+/temp", b"$share/g/alice/#", b"dev/alice/cmd"),
    "anonymous": MOSQUITTO_ACL + acl_query(False, b"c1", b"", b"public/a", b"$SYS/broker/uptime", b"#", b"+/+",
                                           b"dev/c1/secret", b"dev/c1/#"),
    "client_id_slash": MOSQUITTO_ACL + acl_query(True, b"a/b", b"x/y", b"dev/a/b/secret", b"dev/a/b/c", b"dev/a/#"),
    "client_id_hash": MOSQUITTO_ACL + acl_query(True, b"#", b"+", b"dev/#", b"dev/+/cmd", b"dev/x/secret"),
    "spaces": MOSQUITTO_ACL + acl_query(True, b"d", b"dave smith", b"a topic with spaces", b"a topic/+"),
    "deny_all": b"topic deny #\ntopic read +/#\npattern readwrite %u/%c\n"
    + acl_query(True, b"c", b"u", b"u/c", b"+/c"),
    "bad_access": b"topic foo bar baz\n",
    "bad_pattern": b"pattern read a/%cx/b\n",
    "bad_statement": b"user alice\nsubscribe a/b\n",
}

# fuzz_scram: byte 0 is the hash (0 SHA-1, 1 SHA-256, 2 SHA-512) plus 4 for an unknown user; then the
# client-first-message, NUL, the client-final-message. RFC 5802 section 5 and RFC 7677 section 3.
RFC7677_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                 b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
scram = {
    "rfc7677_sha256": b"\x01" + RFC7677_FIRST + b"\x00" + RFC7677_FINAL,
    "rfc5802_sha1": b"\x00n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL\x00"
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "sha512": b"\x02" + RFC7677_FIRST + b"\x00c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
    "unknown_user": b"\x05" + RFC7677_FIRST + b"\x00" + RFC7677_FINAL,
    "authzid": b"\x01n,a=user,n=user,r=abc\x00c=" + base64.b64encode(b"n,a=user,")
    + b",r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
    "saslname_extensions": b"\x01y,,n=us=2Cer=3D,r=abc,x=1\x00c=eSws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,y=2,p=AAAA",
    "channel_binding": b"\x01p=tls-unique,,n=user,r=abc",
    "mandatory_extension": b"\x01n,,m=ext,n=user,r=abc",
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
write("fuzz_password_file", passwords)
write("fuzz_acl", acl)
write("fuzz_scram", scram)
