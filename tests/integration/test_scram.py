#!/usr/bin/python3
"""MQTT 5 enhanced authentication with SCRAM-SHA-512 and SCRAM-SHA-256 against the real broker
(docs/security.md, "Enhanced authentication (SCRAM)").

The client side of SCRAM (RFC 5802) is written here with Python's hashlib and hmac, independently of
the broker's code, and speaks raw MQTT over a socket. SCRAM-SHA-512 runs against a password file
written by Debian's mosquitto_passwd (the broker never sees a password), SCRAM-SHA-256 against a
scram_file written by `tern passwd -S`."""
import base64
import hashlib
import hmac
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

TMP = tempfile.mkdtemp(prefix="tern-scram-")
os.chmod(TMP, 0o755)  # the broker reads its files as the account it drops to

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


# ---- files -----------------------------------------------------------------------------------

def mosquitto_passwd_file():
    """alice/secret1 and bob/secret2 in PBKDF2-SHA512 ($7$), carol/secret3 in plain SHA-512 ($6$),
    written by Debian's mosquitto_passwd."""
    path = os.path.join(TMP, "mosquitto-passwd")
    if not os.path.exists(path):
        subprocess.run(["mosquitto_passwd", "-c", "-b", path, "alice", "secret1"], check=True)
        subprocess.run(["mosquitto_passwd", "-b", path, "bob", "secret2"], check=True)
        subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", path, "carol", "secret3"], check=True)
        os.chmod(path, 0o644)
    return path


def tern_files(tag=""):
    """A password file and a scram_file written together by `tern passwd -S`: dave/pw4, and a user
    whose name needs saslname escaping."""
    pw = os.path.join(TMP, f"passwd{tag}")
    scram = os.path.join(TMP, f"scram{tag}")
    subprocess.run([TERN, "passwd", "-S", scram, "-c", "-b", pw, "dave", "pw4"], check=True)
    subprocess.run([TERN, "passwd", "-S", scram, "-b", pw, "x=y,z", "p,w=5"], check=True)
    os.chmod(pw, 0o644)
    os.chmod(scram, 0o644)
    return pw, scram


# ---- MQTT 5 properties, AUTH ------------------------------------------------------------------

def auth_props(method, data=None):
    raw = bytes([0x15]) + s(method)  # Authentication Method
    if data is not None:
        raw += bytes([0x16]) + s(data)  # Authentication Data
    return raw


def auth_packet(reason, method, data):
    return packet(0xF0, bytes([reason]) + props(auth_props(method, data)))


def read_varint(buf, i):
    mult, value = 1, 0
    while True:
        b = buf[i]
        i += 1
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, i


# Property identifier -> type: byte, two-byte int, four-byte int, varint, string, binary, string pair.
PROP_TYPES = {0x01: "b", 0x02: "4", 0x03: "s", 0x08: "s", 0x09: "d", 0x0B: "v", 0x11: "4", 0x12: "s",
              0x13: "2", 0x15: "s", 0x16: "d", 0x17: "b", 0x19: "b", 0x1A: "s", 0x1C: "s", 0x1F: "s",
              0x21: "2", 0x22: "2", 0x23: "2", 0x24: "b", 0x25: "b", 0x26: "p", 0x27: "4", 0x28: "b",
              0x29: "b", 0x2A: "b"}


def parse_props(buf, i):
    n, i = read_varint(buf, i)
    end = i + n
    out = {}
    while i < end:
        pid = buf[i]
        i += 1
        t = PROP_TYPES[pid]
        if t == "b":
            out[pid], i = buf[i], i + 1
        elif t == "2":
            out[pid], i = struct.unpack("!H", buf[i:i + 2])[0], i + 2
        elif t == "4":
            out[pid], i = struct.unpack("!I", buf[i:i + 4])[0], i + 4
        elif t == "v":
            out[pid], i = read_varint(buf, i)
        elif t in "sd":
            ln = struct.unpack("!H", buf[i:i + 2])[0]
            out[pid], i = buf[i + 2:i + 2 + ln], i + 2 + ln
        else:  # a string pair
            k = struct.unpack("!H", buf[i:i + 2])[0]
            v = struct.unpack("!H", buf[i + 2 + k:i + 4 + k])[0]
            i += 4 + k + v
    return out, end


def parse_reply(p):
    """(kind, reason, properties) of a CONNACK, AUTH or DISCONNECT."""
    assert p is not None, "no reply"
    _, i = read_varint(p, 1)
    if p[0] == 0x20:  # CONNACK: flags, reason, properties
        pr, _ = parse_props(p, i + 2)
        return "connack", p[i + 1], pr
    if p[0] in (0xF0, 0xE0):
        kind = "auth" if p[0] == 0xF0 else "disconnect"
        if i == len(p):
            return kind, 0, {}
        pr, _ = parse_props(p, i + 1) if i + 1 < len(p) else ({}, 0)
        return kind, p[i], pr
    raise AssertionError(f"unexpected packet {p.hex()}")


# ---- the SCRAM client (RFC 5802 section 3) -----------------------------------------------------

def saslname(name):
    return name.replace("=", "=3D").replace(",", "=2C")


class Scram:
    def __init__(self, method, user, password, nonce=None):
        self.method = method
        self.h = HASHES.get(method, "sha256")
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bare = f"n={saslname(user)},r={self.nonce}"

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce), sf
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.h).digest()
        stored_key = hashlib.new(self.h, client_key).digest()
        self.server_key = hmac.new(salted, b"Server Key", self.h).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.bare},{sf},{without_proof}".encode()
        signature = hmac.new(stored_key, self.auth_message, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        """The server proves it knows the user's ServerKey too."""
        expected = hmac.new(self.server_key, self.auth_message, self.h).digest()
        assert server_final == b"v=" + base64.b64encode(expected), server_final


def scram_login(b, method, user, password, client_id="s1", username=None, final=None):
    """CONNECT with the method, AUTH 0x18 back and forth. Returns (client, scram, reply, server_first);
    reply is the last parsed packet (CONNACK, or an early one)."""
    c = Client(b.port)
    sc = Scram(method, user, password)
    c.send(connect(client_id, version=5, username=username, properties=auth_props(method, sc.first())))
    kind, reason, pr = parse_reply(c.recv())
    if kind != "auth":
        return c, sc, (kind, reason, pr), None
    assert reason == 0x18 and pr[0x15] == method.encode(), (reason, pr)
    server_first = pr[0x16]
    c.send(auth_packet(0x18, method, final if final is not None else sc.final(server_first)))
    return c, sc, parse_reply(c.recv()), server_first


def expect_success(c, sc, reply, method):
    kind, reason, pr = reply
    assert (kind, reason) == ("connack", 0), reply
    assert pr[0x15] == method.encode(), "CONNACK names the method"
    sc.verify(pr[0x16])
    return c


def expect_refused(c, reply, code=0x87):
    assert reply[:2] == ("connack", code), reply
    c.expect_closed()


def server_first_fields(sf):
    return dict(a.split("=", 1) for a in sf.decode().split(","))


# ---- tests -----------------------------------------------------------------------------------

def test_scram_sha512_with_a_mosquitto_passwd_file():
    acl = os.path.join(TMP, "acl")
    with open(acl, "w") as f:
        f.write("user alice\ntopic readwrite alice/#\n")
    os.chmod(acl, 0o644)
    with Broker(f"allow_anonymous false\npassword_file {mosquitto_passwd_file()}\nacl_file {acl}\n") as b:
        c, sc, reply, sf = scram_login(b, "SCRAM-SHA-512", "alice", "secret1")
        expect_success(c, sc, reply, "SCRAM-SHA-512")
        fields = server_first_fields(sf)
        assert fields["i"] == "101" and len(base64.b64decode(fields["s"])) == 12, fields  # mosquitto_passwd's
        # No username in CONNECT: the SCRAM user is the client's username for the ACL.
        c.send(subscribe(1, [("alice/#", 1), ("bob/#", 1)], version=5))
        p = c.recv()
        assert p[0] == 0x90 and list(p[5:]) == [1, 0x87], p.hex()
        c.send(publish("alice/x", "hello", qos=1, packet_id=7, version=5))
        got = [c.recv(), c.recv()]
        assert any(g[0] == 0x40 for g in got) and any(g[0] & 0xF0 == 0x30 and b"hello" in g for g in got), got
        b.wait_log(r"Client s1 from \S+ authenticated as 'alice' \(SCRAM-SHA-512\)")
        # A $6$ entry holds nothing SCRAM can use: the right password fails like a wrong one.
        c2, _, reply, _ = scram_login(b, "SCRAM-SHA-512", "carol", "secret3", client_id="s2")
        expect_refused(c2, reply)
        # A plain CONNECT with the same file still works, of course.
        c3 = Client(b.port)
        c3.send(connect("s3", version=5, username="bob", password="secret2"))
        assert parse_reply(c3.recv())[:2] == ("connack", 0)


def test_scram_sha256_with_a_tern_passwd_scram_file():
    pw, scram = tern_files()
    with Broker(f"allow_anonymous false\npassword_file {pw}\nscram_file {scram}\n") as b:
        for method in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # tern passwd wrote $7$ too
            c, sc, reply, sf = scram_login(b, method, "dave", "pw4", client_id="d-" + method)
            expect_success(c, sc, reply, method)
            if method == "SCRAM-SHA-256":
                fields = server_first_fields(sf)
                assert fields["i"] == "4096" and len(base64.b64decode(fields["s"])) == 16, fields
        # "x=y,z" travels as n=x=3Dy=2Cz.
        c, sc, reply, _ = scram_login(b, "SCRAM-SHA-256", "x=y,z", "p,w=5", client_id="esc")
        expect_success(c, sc, reply, "SCRAM-SHA-256")


def test_wrong_password_and_unknown_user_fail_alike():
    pw, scram = tern_files("-2")
    for method, conf, user in (("SCRAM-SHA-512", f"password_file {mosquitto_passwd_file()}\n", "alice"),
                               ("SCRAM-SHA-256", f"password_file {pw}\nscram_file {scram}\n", "dave")):
        with Broker("allow_anonymous false\n" + conf) as b:
            c, _, known_reply, known = scram_login(b, method, user, "wrong", client_id="w1")
            expect_refused(c, known_reply)  # 0x87 Not authorized: docs/security.md says why not 0x86
            firsts = []
            for i in range(2):
                c, _, reply, sf = scram_login(b, method, "mallory", "secret1", client_id=f"u{i}")
                assert reply == known_reply, (reply, known_reply)
                expect_refused(c, reply)
                firsts.append(server_first_fields(sf))
            k = server_first_fields(known)
            for f in firsts:
                assert f["i"] == k["i"], (f, k)
                assert len(f["s"]) == len(k["s"]) and len(f["r"]) == len(k["r"]), (f, k)
            assert firsts[0]["s"] == firsts[1]["s"], "an unknown user always gets the same salt"
            assert firsts[0]["r"] != firsts[1]["r"]


def test_reauthentication():
    with Broker(f"allow_anonymous false\npassword_file {mosquitto_passwd_file()}\n") as b:
        c, sc, reply, _ = scram_login(b, "SCRAM-SHA-512", "alice", "secret1", client_id="r1")
        expect_success(c, sc, reply, "SCRAM-SHA-512")
        # AUTH 0x19 Re-authenticate, AUTH 0x18, then AUTH 0x00 with server-final-message (section 4.12.1).
        again = Scram("SCRAM-SHA-512", "alice", "secret1")
        c.send(auth_packet(0x19, "SCRAM-SHA-512", again.first()))
        kind, reason, pr = parse_reply(c.recv())
        assert (kind, reason) == ("auth", 0x18), (kind, reason)
        c.send(auth_packet(0x18, "SCRAM-SHA-512", again.final(pr[0x16])))
        kind, reason, pr = parse_reply(c.recv())
        assert (kind, reason) == ("auth", 0x00), (kind, reason)
        again.verify(pr[0x16])
        c.send(PINGREQ)
        assert c.recv() == PINGRESP, "still connected"
        # A failed re-authentication ends the connection: DISCONNECT 0x87.
        bad = Scram("SCRAM-SHA-512", "alice", "wrong")
        c.send(auth_packet(0x19, "SCRAM-SHA-512", bad.first()))
        kind, reason, pr = parse_reply(c.recv())
        assert (kind, reason) == ("auth", 0x18)
        c.send(auth_packet(0x18, "SCRAM-SHA-512", bad.final(pr[0x16])))
        got = c.expect_closed()
        assert got and parse_reply(got[-1])[:2] == ("disconnect", 0x87), [g.hex() for g in got]


def test_unsupported_methods_get_0x8c():
    with Broker(f"allow_anonymous false\npassword_file {mosquitto_passwd_file()}\n") as b:
        for method in ("SCRAM-SHA-1", "PLAIN", "scram-sha-512", "SCRAM-SHA-512-PLUS",
                       "SCRAM-SHA-256"):  # the last: no scram_file configured
            c = Client(b.port)
            c.send(connect("m1", version=5, properties=auth_props(method, b"n,,n=alice,r=abc")))
            expect_refused(c, parse_reply(c.recv()), 0x8C)


def test_malformed_messages_fail():
    with Broker(f"allow_anonymous false\npassword_file {mosquitto_passwd_file()}\n") as b:
        for data in (b"p=tls-unique,,n=alice,r=abc", b"hello", b"n,,n=alice", b"n,,n=al=ice,r=abc",
                     b"n,,m=ext,n=alice,r=abc", b""):
            c = Client(b.port)
            c.send(connect("m2", version=5, properties=auth_props("SCRAM-SHA-512", data)))
            expect_refused(c, parse_reply(c.recv()))
        b.wait_log(r"failed SCRAM-SHA-512: the client requires channel binding, which is not supported")
        # A malformed client-final-message.
        c, _, reply, _ = scram_login(b, "SCRAM-SHA-512", "alice", "secret1", final=b"c=biws,garbage")
        expect_refused(c, reply)


def test_connect_username_must_be_the_scram_user():
    with Broker(f"allow_anonymous false\npassword_file {mosquitto_passwd_file()}\n") as b:
        c, _, reply, _ = scram_login(b, "SCRAM-SHA-512", "alice", "secret1", username="bob")
        expect_refused(c, reply)
        c, sc, reply, _ = scram_login(b, "SCRAM-SHA-512", "alice", "secret1", username="alice")
        expect_success(c, sc, reply, "SCRAM-SHA-512")


def test_sighup_reload_rechecks_scram_clients():
    pw, scram = tern_files("-3")
    with Broker(f"allow_anonymous false\npassword_file {pw}\nscram_file {scram}\n") as b:
        c256, sc, reply, _ = scram_login(b, "SCRAM-SHA-256", "dave", "pw4", client_id="h256")
        expect_success(c256, sc, reply, "SCRAM-SHA-256")
        c512, sc, reply, _ = scram_login(b, "SCRAM-SHA-512", "dave", "pw4", client_id="h512")
        expect_success(c512, sc, reply, "SCRAM-SHA-512")
        other, sc, reply, _ = scram_login(b, "SCRAM-SHA-256", "x=y,z", "p,w=5", client_id="hxyz")
        expect_success(other, sc, reply, "SCRAM-SHA-256")
        # dave leaves the scram_file only: his SCRAM-SHA-256 client goes, his SCRAM-SHA-512 one stays.
        with open(scram) as f:
            lines = [line for line in f if not line.startswith("dave:")]
        with open(scram, "w") as f:
            f.writelines(lines)
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log(r"Reloading config")
        got = c256.expect_closed()
        assert got and parse_reply(got[-1])[:2] == ("disconnect", 0x87), [g.hex() for g in got]
        for c in (c512, other):
            c.send(PINGREQ)
            assert c.recv() == PINGRESP, "users still in their file keep their connections"


if __name__ == "__main__":
    try:
        run_tests([
            test_scram_sha512_with_a_mosquitto_passwd_file,
            test_scram_sha256_with_a_tern_passwd_scram_file,
            test_wrong_password_and_unknown_user_fail_alike,
            test_reauthentication,
            test_unsupported_methods_get_0x8c,
            test_malformed_messages_fail,
            test_connect_username_must_be_the_scram_user,
            test_sighup_reload_rechecks_scram_clients,
        ])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
