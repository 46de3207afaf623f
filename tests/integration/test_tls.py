#!/usr/bin/python3
"""TLS listeners with Mosquitto's keys, against the real broker: mosquitto_pub/sub over TLS 1.2 and
1.3, client certificates (require_certificate, a CA the broker does not trust, a CRL), usernames from
certificates and PSK identities, PSK listeners, paho-mqtt, MQTT.js and a raw client over secure
WebSockets, TLS garbage and stalled handshakes next to a working client, and the configuration errors
that stop the broker. Certificates are made with the openssl command in a temporary folder."""
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import (DISCONNECT, TERN, Broker, Client, TestCerts, WsClient, connack, connect, publish,  # noqa: E402
                     run_tests, subscribe)

HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = tempfile.mkdtemp(prefix="tern-tls-")
os.chmod(CERTS, 0o755)  # the broker may run as user mosquitto
P = lambda name: os.path.join(CERTS, name)  # noqa: E731
CONNECT_TIMEOUT = 3
BROKER = None
PORTS = {}  # listener name -> port


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def client_cert(name, subject, ca="ca", ca_key="ca.key"):
    """A client certificate signed by `ca`: P(name + '.crt') and P(name + '.key')."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", P(name + ".key"), "-out", P(name + ".csr"),
            "-subj", subject)
    openssl("x509", "-req", "-in", P(name + ".csr"), "-CA", P(ca + ".crt"), "-CAkey", P(ca_key), "-CAcreateserial",
            "-out", P(name + ".crt"), "-days", "2")


def make_certs():
    certs = TestCerts(CERTS, san="DNS:localhost,IP:127.0.0.1")  # ca.crt, server.crt, other.crt
    # A comma in a subject value shows the escaping of the RFC 2253 form Mosquitto uses.
    client_cert("client", "/C=DE/O=Tern Test/OU=Dev, Ops/CN=client one")
    client_cert("revoked", "/O=Tern Test/CN=revoked client")
    client_cert("stranger", "/CN=stranger", ca="other", ca_key="other.key")
    client_cert("nocn", "/O=Tern Test/OU=no common name")
    # A CRL revoking one client certificate, made with `openssl ca` and a minimal database.
    with open(P("index.txt"), "w"):
        pass
    with open(P("ca.cnf"), "w") as f:
        f.write(f"[ca]\ndefault_ca = tern\n[tern]\ndatabase = {P('index.txt')}\ncertificate = {certs.ca}\n"
                f"private_key = {certs.ca_key}\ndefault_md = sha256\ndefault_crl_days = 2\n")
    openssl("ca", "-config", P("ca.cnf"), "-revoke", P("revoked.crt"))
    openssl("ca", "-config", P("ca.cnf"), "-gencrl", "-out", P("crl.pem"))
    with open(P("psk.txt"), "w") as f:
        f.write("# identity:key\n\ndevice-1:00112233445566778899aabbccddeeff\ndevice-2:abc\n")
    with open(P("not-pem.txt"), "w") as f:
        f.write("this is not a certificate\n")
    for n in os.listdir(CERTS):
        os.chmod(P(n), 0o644)
    return certs


# An OpenSSL configuration that caps a client (mosquitto_pub) at TLS 1.2: its --tls-version is a
# minimum, as the broker's tls_version is.
MAX_TLS12 = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
"""

LISTENERS = ["plain", "tls", "cert_cn", "cert_subject", "psk", "wss", "tls13"]


def start():
    global BROKER
    with open(P("max12.cnf"), "w") as f:
        f.write(MAX_TLS12)
    server = f"certfile {P('server.crt')}\nkeyfile {P('server.key')}\n"
    config = f"""allow_anonymous true
connect_timeout {CONNECT_TIMEOUT}
psk_file {P('psk.txt')}
listener 0 127.0.0.1
listener 0 127.0.0.1
{server}
listener 0 127.0.0.1
{server}cafile {P('ca.crt')}
require_certificate true
use_identity_as_username true
crlfile {P('crl.pem')}
listener 0 127.0.0.1
{server}cafile {P('ca.crt')}
require_certificate true
use_subject_as_username true
listener 0 127.0.0.1
psk_hint tern test hint
use_identity_as_username true
listener 0 127.0.0.1
protocol websockets
{server}
listener 0 127.0.0.1
{server}tls_version tlsv1.3
"""
    BROKER = Broker(config)
    ports = []
    deadline = time.time() + 10
    while len(ports) < len(LISTENERS) and time.time() < deadline:
        ports = re.findall(r"Opening (?:ipv4|websockets) listen socket on port (\d+)\.", BROKER.log())
        time.sleep(0.05)
    assert len(ports) == len(LISTENERS), BROKER.log()
    PORTS.update(zip(LISTENERS, map(int, ports)))


def client_ctx(cert=None, maximum=None):
    ctx = ssl.create_default_context(cafile=P("ca.crt"))
    if cert:
        ctx.load_cert_chain(P(cert + ".crt"), P(cert + ".key"))
    if maximum:
        ctx.maximum_version = maximum
    return ctx


class TlsClient(Client):
    """ternlib's raw MQTT client over a TLS socket."""

    def __init__(self, port, ctx=None, timeout=5.0):  # noqa: super().__init__ would open a plain socket
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = (ctx or client_ctx()).wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.timeout = timeout

    def _read_chunk(self, deadline):
        # Bytes already decrypted inside the SSL object do not make the socket readable.
        if self.sock.pending():
            return self.sock.recv(65536)
        return super()._read_chunk(deadline)


class TlsWsClient(TlsClient, WsClient):
    """A raw MQTT client over secure WebSockets (wss): TLS, the HTTP upgrade, then masked frames."""

    def __init__(self, port, timeout=5.0):  # noqa: WsClient.__init__ would open a plain socket
        TlsClient.__init__(self, port, timeout=timeout)
        self.sock.sendall(f"GET /mqtt HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the WebSocket handshake"
            head += chunk
        self.response, _, self.raw = head.partition(b"\r\n\r\n")
        self.response = self.response.decode(errors="replace")
        self.control = []

    def _fill(self, deadline):
        return WsClient._fill(self, deadline)


def mosquitto(tool, listener, *args, env=None, timeout=15):
    """Runs mosquitto_pub/mosquitto_sub against a listener; returns the CompletedProcess."""
    cmd = [tool, "-h", "localhost", "-p", str(PORTS[listener]), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def start_sub(listener, topic, count, *args):
    cmd = ["mosquitto_sub", "-h", "localhost", "-p", str(PORTS[listener]), "-t", topic, "-C", str(count), "-v",
           "-W", "10", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(client_id):
    BROKER.wait_log(rf"Sending SUBACK to {re.escape(client_id)}\b")


def tls12_env():
    return dict(os.environ, OPENSSL_CONF=P("max12.cnf"))


def test_mosquitto_clients_over_tls13_and_tls12():
    ca = ["--cafile", P("ca.crt")]
    sub = start_sub("tls", "tls/#", 2, *ca, "-i", "sub-tls")
    try:
        wait_subscribed("sub-tls")
        r = mosquitto("mosquitto_pub", "tls", *ca, "--tls-version", "tlsv1.3", "-t", "tls/13", "-m", "over 1.3",
                      "-q", "1", "-i", "pub-13")
        assert r.returncode == 0, r.stderr
        r = mosquitto("mosquitto_pub", "tls", *ca, "--tls-version", "tlsv1.2", "-t", "tls/12", "-m", "over 1.2",
                      "-q", "2", "-i", "pub-12", env=tls12_env())
        assert r.returncode == 0, r.stderr
        out, err = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert out.splitlines() == ["tls/13 over 1.3", "tls/12 over 1.2"], (out, err)
    log = BROKER.log()
    assert re.search(r"TLS connection from [\d.:]+: TLSv1\.3 ", log), log[-2000:]
    assert re.search(r"TLS connection from [\d.:]+: TLSv1\.2 ", log), log[-2000:]
    # A client that does not trust the server's CA refuses the broker.
    r = mosquitto("mosquitto_pub", "tls", "--cafile", P("other.crt"), "-t", "x", "-m", "x", "-i", "distrustful")
    assert r.returncode != 0
    assert "distrustful" not in BROKER.log()


def test_tls_version_is_a_minimum():
    r = mosquitto("mosquitto_pub", "tls13", "--cafile", P("ca.crt"), "-t", "x", "-m", "x", "-i", "pub-13-only")
    assert r.returncode == 0, r.stderr
    with socket.create_connection(("127.0.0.1", PORTS["tls13"]), timeout=5) as raw:
        port = raw.getsockname()[1]
        try:
            client_ctx(maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname="localhost")
            raise AssertionError("a TLS 1.2 client was accepted by a tls_version tlsv1.3 listener")
        except ssl.SSLError:
            pass
    BROKER.wait_log(rf"Client 127\.0\.0\.1:{port} disconnected: TLS handshake failed: .*unsupported protocol")


def test_require_certificate():
    ca = ["--cafile", P("ca.crt")]
    r = mosquitto("mosquitto_pub", "cert_cn", *ca, "--cert", P("client.crt"), "--key", P("client.key"),
                  "-t", "c", "-m", "with a certificate", "-i", "with-cert")
    assert r.returncode == 0, r.stderr
    BROKER.wait_log(r"New client connected from [\d.:]+ as with-cert ")
    for name, extra in (("no-cert", []), ("stranger-cert", ["--cert", P("stranger.crt"), "--key", P("stranger.key")])):
        r = mosquitto("mosquitto_pub", "cert_cn", *ca, *extra, "-t", "c", "-m", "x", "-i", name)
        assert r.returncode != 0, f"{name} accepted"
        assert f"as {name} " not in BROKER.log()
    BROKER.wait_log(r"TLS handshake failed: .*peer did not return a certificate")
    BROKER.wait_log(r"TLS handshake failed: .*certificate verify failed \(unable to get local issuer certificate\)")


def test_use_identity_as_username():
    # The username and password the client sends are replaced by the certificate's Common Name.
    r = mosquitto("mosquitto_pub", "cert_cn", "--cafile", P("ca.crt"), "--cert", P("client.crt"), "--key",
                  P("client.key"), "-u", "someone-else", "-P", "secret", "-t", "c", "-m", "x", "-i", "cn-user",
                  "-V", "mqttv5")
    assert r.returncode == 0, r.stderr
    BROKER.wait_log(r"New client connected from [\d.:]+ as cn-user \(p5, c1, k60, u'client one'\)\.")
    # A certificate without a CN gives no username: CONNACK "bad user name or password", as Mosquitto.
    r = mosquitto("mosquitto_pub", "cert_cn", "--cafile", P("ca.crt"), "--cert", P("nocn.crt"), "--key",
                  P("nocn.key"), "-t", "c", "-m", "x", "-i", "no-cn")
    assert r.returncode != 0
    assert "username or password" in r.stderr.lower() or "user name or password" in r.stderr.lower(), r.stderr
    BROKER.wait_log(r"Refused client no-cn from [\d.:]+: ")


def test_identity_users_need_no_password():
    """With allow_anonymous false and a password file, a name from the client certificate is
    authenticated by TLS: no password is checked (Mosquitto), while plain clients still need one."""
    passwd = P("passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "alice", "alice-pw"], check=True, timeout=30,
                   capture_output=True)
    os.chmod(passwd, 0o644)
    b = Broker(f"""allow_anonymous false
password_file {passwd}
listener 0 127.0.0.1
listener 0 127.0.0.1
certfile {P('server.crt')}
keyfile {P('server.key')}
cafile {P('ca.crt')}
require_certificate true
use_identity_as_username true
""")
    try:
        ports = [int(p) for p in re.findall(r"Opening ipv4 listen socket on port (\d+)\.", b.log())]
        deadline = time.time() + 5
        while len(ports) < 2 and time.time() < deadline:
            time.sleep(0.05)
            ports = [int(p) for p in re.findall(r"Opening ipv4 listen socket on port (\d+)\.", b.log())]
        plain, tls = ports
        ctx = client_ctx("client")
        c = TlsClient(tls, ctx)
        assert c.connect("cert-no-password") == connack()  # no username or password sent at all
        c.close()
        c = TlsClient(tls, ctx)
        assert c.connect("cert-wrong-password", username="alice", password="wrong") == connack()
        c.close()
        b.wait_log(r"as cert-wrong-password \(p2, c1, k60, u'client one'\)")
        anon = Client(plain)
        assert anon.connect("anonymous") == connack(code=5)
        anon.close()
        alice = Client(plain)
        assert alice.connect("alice", username="alice", password="alice-pw") == connack()
        alice.close()
    finally:
        b.stop()
        shutil.rmtree(b.dir, ignore_errors=True)


def test_use_subject_as_username():
    r = mosquitto("mosquitto_pub", "cert_subject", "--cafile", P("ca.crt"), "--cert", P("client.crt"), "--key",
                  P("client.key"), "-t", "c", "-m", "x", "-i", "subject-user")
    assert r.returncode == 0, r.stderr
    # The form mosquitto 2.0.11 logs for the same certificate (RFC 2253: most specific first).
    BROKER.wait_log(re.escape("as subject-user (p2, c1, k60, u'CN=client one,OU=Dev\\, Ops,O=Tern Test,C=DE')."))


def test_crlfile_refuses_the_revoked_certificate():
    r = mosquitto("mosquitto_pub", "cert_cn", "--cafile", P("ca.crt"), "--cert", P("revoked.crt"), "--key",
                  P("revoked.key"), "-t", "c", "-m", "x", "-i", "revoked-client")
    assert r.returncode != 0
    BROKER.wait_log(r"TLS handshake failed: .*certificate verify failed \(certificate revoked\)")
    assert "as revoked-client " not in BROKER.log()


def test_psk():
    sub = start_sub("psk", "psk/#", 2, "--psk", "00112233445566778899aabbccddeeff", "--psk-identity", "device-1",
                    "-i", "psk-sub")
    try:
        wait_subscribed("psk-sub")
        BROKER.wait_log(r"as psk-sub \(p2, c1, k60, u'device-1'\)")
        # An odd number of hex digits has an implied leading zero (as Mosquitto reads the file).
        r = mosquitto("mosquitto_pub", "psk", "--psk", "0abc", "--psk-identity", "device-2", "-t", "psk/13",
                      "-m", "psk 1.3", "-i", "psk-pub")
        assert r.returncode == 0, r.stderr
        r = mosquitto("mosquitto_pub", "psk", "--psk", "abc", "--psk-identity", "device-2", "-t", "psk/12",
                      "-m", "psk 1.2", "-i", "psk-pub-12", env=tls12_env())
        assert r.returncode == 0, r.stderr
        out, err = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sorted(out.splitlines()) == ["psk/12 psk 1.2", "psk/13 psk 1.3"], (out, err)
    log = BROKER.log()
    assert re.search(r"as psk-pub-12 \(p2, c1, k60, u'device-2'\)", log), log[-2000:]
    assert re.search(r"TLS connection from [\d.:]+: TLSv1\.2 .*PSK", log), log[-2000:]
    for name, key, identity in (("wrong-key", "ffff", "device-1"), ("no-such-identity", "abc", "device-9")):
        r = mosquitto("mosquitto_pub", "psk", "--psk", key, "--psk-identity", identity, "-t", "x", "-m", "x",
                      "-i", name)
        assert r.returncode != 0, f"{name} accepted"
        assert f"as {name} " not in BROKER.log()


def paho_client(client_id, listener, version=mqtt.MQTTv311, cert=None, tls_version=None):
    got = []
    c = mqtt.Client(client_id=client_id, protocol=version)
    kw = {"certfile": P(cert + ".crt"), "keyfile": P(cert + ".key")} if cert else {}
    if tls_version:
        kw["tls_version"] = tls_version
    c.tls_set(ca_certs=P("ca.crt"), **kw)
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload, m.qos))
    rc = []
    if version == mqtt.MQTTv5:
        c.on_connect = lambda cl, u, flags, code, p=None: rc.append(code)
    else:
        c.on_connect = lambda cl, u, flags, code: rc.append(code)
    c.connect("localhost", PORTS[listener], 30)
    c.loop_start()
    deadline = time.time() + 5
    while not rc and time.time() < deadline:
        time.sleep(0.02)
    assert rc == [0], rc
    return c, got


def test_paho_over_tls():
    for version in (mqtt.MQTTv311, mqtt.MQTTv5):
        sub, got = paho_client(f"paho-sub-{version}", "cert_cn", version, cert="client")
        pub, _ = paho_client(f"paho-pub-{version}", "tls", version)
        sub.subscribe("paho/#", qos=2)
        wait_subscribed(f"paho-sub-{version}")
        big = bytes(range(256)) * 400  # 100 KiB: several TLS records
        for qos in (0, 1, 2):
            pub.publish(f"paho/{qos}", f"qos {qos}", qos=qos)
        pub.publish("paho/big", big, qos=1).wait_for_publish(5)
        deadline = time.time() + 5
        while len(got) < 4 and time.time() < deadline:
            time.sleep(0.02)
        assert sorted(got) == sorted([("paho/0", b"qos 0", 0), ("paho/1", b"qos 1", 1), ("paho/2", b"qos 2", 2),
                                      ("paho/big", big, 1)]), [(t, len(p), q) for t, p, q in got]
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


def test_mqttjs_over_secure_websockets():
    """MQTT.js from npm over wss://, trusting the test CA, MQTT 3.1.1 and 5.0."""
    mjs = os.path.join(HERE, "mqttjs")
    if not os.path.isdir(os.path.join(mjs, "node_modules", "mqtt")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=mjs, check=True, timeout=300)
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=P("ca.crt"))
    for version in ("4", "5"):
        r = subprocess.run(["node", os.path.join(mjs, "pubsub.js"), f"wss://127.0.0.1:{PORTS['wss']}/mqtt", version],
                           capture_output=True, text=True, timeout=30, env=env)
        print(r.stdout, end="")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("ok ") >= 9, r.stdout


def test_raw_client_over_secure_websockets():
    ws = TlsWsClient(PORTS["wss"])
    assert ws.response.startswith("HTTP/1.1 101"), ws.response
    assert ws.connect("wss-raw") == connack()
    ws.send(subscribe(1, [("wss/t", 1)]))
    assert ws.recv() == bytes([0x90, 0x03, 0x00, 0x01, 0x01])
    tcp = Client(PORTS["plain"])
    assert tcp.connect("wss-peer") == connack()
    payload = os.urandom(70000)  # larger than a TLS record and a WebSocket short frame
    tcp.send(publish("wss/t", payload, qos=0))
    got = ws.recv(timeout=5)
    assert got is not None and got.endswith(payload), got[:20] if got else got
    ws.send(DISCONNECT)
    assert ws.expect_closed() == []
    assert (8, b"\x03\xe8") in ws.control, ws.control  # a close frame follows the last packet
    tcp.close()


def client_hello():
    """The first bytes a TLS client sends (a ClientHello), made with an in-memory TLS object."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def canary():
    c = TlsClient(PORTS["tls"])
    assert c.connect("canary") == connack()
    c.send(subscribe(1, [("canary/t", 0)]))
    assert c.recv() == bytes([0x90, 0x03, 0x00, 0x01, 0x00])
    return c


def canary_still_works(c, n):
    c.send(publish("canary/t", f"ping {n}"))
    assert c.recv() == publish("canary/t", f"ping {n}")


def test_tls_garbage_closes_that_connection_only():
    c = canary()
    hello = client_hello()
    assert hello[0] == 0x16, hello[:5].hex()  # a handshake record
    garbage = [
        ("random bytes", bytes(random.Random(7).getrandbits(8) for _ in range(300)), False),
        ("plain MQTT CONNECT", connect("plain-on-tls"), False),
        ("truncated ClientHello", hello[:len(hello) // 2], True),  # the client then gives up
    ]
    for i, (what, data, client_closes) in enumerate(garbage):
        s = socket.create_connection(("127.0.0.1", PORTS["tls"]), timeout=5)
        port = s.getsockname()[1]
        s.sendall(data)
        if client_closes:
            time.sleep(0.2)
            s.close()
        else:
            s.settimeout(5)
            try:
                while s.recv(4096):  # an alert, perhaps, then the close
                    pass
            except ConnectionResetError:
                pass
            s.close()
        line = BROKER.wait_log(rf"Client 127\.0\.0\.1:{port} disconnected: TLS handshake failed: [^\n]*").group(0)
        print(f"  {what}: {line}")
        time.sleep(0.1)
        mentions = [ln for ln in BROKER.log().splitlines() if f"127.0.0.1:{port}" in ln]
        assert len(mentions) == 2, mentions  # "New connection from ..." and the one failure line
        canary_still_works(c, i)
    assert "as plain-on-tls " not in BROKER.log()
    c.send(DISCONNECT)
    c.close()


def test_stalled_handshake_is_closed_after_connect_timeout():
    c = canary()
    hello = client_hello()
    stalled = []
    for data in (b"", hello[:20]):  # nothing at all, and half a ClientHello
        s = socket.create_connection(("127.0.0.1", PORTS["tls"]), timeout=CONNECT_TIMEOUT + 5)
        s.sendall(data)
        stalled.append((s, time.time()))
    for s, t0 in stalled:
        try:
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass
        waited = time.time() - t0
        assert CONNECT_TIMEOUT - 0.5 <= waited <= CONNECT_TIMEOUT + 3, waited
        port = s.getsockname()[1]
        BROKER.wait_log(rf"Client 127\.0\.0\.1:{port} disconnected: TLS handshake failed: not completed within "
                        rf"connect_timeout \({CONNECT_TIMEOUT} s\)\.")
        s.close()
    canary_still_works(c, 99)
    c.send(DISCONNECT)
    c.close()


def broker_error(config):
    """Starts the broker with `config` and returns (exit code, output): it must stop by itself."""
    d = tempfile.mkdtemp(prefix="tern-tls-conf-")
    try:
        conf = os.path.join(d, "tern.conf")
        with open(conf, "w") as f:
            f.write(f"persistence false\nlistener 0 127.0.0.1\n{config}")
        r = subprocess.run([TERN, "broker", "-c", conf], capture_output=True, text=True, timeout=15)
        return r.returncode, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_configuration_errors_stop_the_broker():
    cert, key = f"certfile {P('server.crt')}\n", f"keyfile {P('server.key')}\n"
    cases = [
        (cert, "certfile without keyfile"),
        (key, "keyfile without certfile"),
        (f"certfile {P('missing.crt')}\n{key}", f"certfile {P('missing.crt')}: cannot read: No such file or directory"),
        (f"certfile {CERTS}\n{key}", f"certfile {CERTS}: is a directory"),
        (f"certfile {P('not-pem.txt')}\n{key}", f"certfile {P('not-pem.txt')}: cannot load the certificate: "
                                                 "error:0480006C:PEM routines::no start line"),
        (f"{cert}keyfile {P('not-pem.txt')}\n", f"keyfile {P('not-pem.txt')}: cannot load the private key"),
        (f"{cert}keyfile {P('client.key')}\n", f"keyfile {P('client.key')} does not match certfile"),
        (f"{cert}{key}cafile {P('not-pem.txt')}\n", f"cafile {P('not-pem.txt')}: cannot load CA certificates"),
        (f"{cert}{key}cafile {P('ca.crt')}\nrequire_certificate true\ncrlfile {P('not-pem.txt')}\n",
         f"crlfile {P('not-pem.txt')}: cannot load the revocation list"),
        (f"{cert}{key}dhparamfile {P('not-pem.txt')}\n", f"dhparamfile {P('not-pem.txt')}: no PEM DH parameters"),
        (f"{cert}{key}ciphers NO-SUCH-CIPHER\n", "ciphers 'NO-SUCH-CIPHER': no usable cipher"),
        (f"{cert}{key}ciphers_tls1.3 NO_SUCH_SUITE\n", "ciphers_tls1.3 'NO_SUCH_SUITE': no usable ciphersuite"),
        (f"{cert}{key}require_certificate true\n", "require_certificate needs cafile or capath"),
        (f"{cert}{key}tls_version tlsv1.0\n", "tls_version: expects tlsv1.3, tlsv1.2 or tlsv1.1"),
        ("require_certificate true\n", "require_certificate needs a TLS listener"),
        ("psk_hint x\n", "psk_hint needs psk_file"),
        (f"psk_file {P('missing.txt')}\npsk_hint x\n", f"psk_file {P('missing.txt')}: cannot read"),
        (f"psk_file {P('not-pem.txt')}\npsk_hint x\n", f"psk_file {P('not-pem.txt')}:1: expects identity:hexkey"),
        ("tls_engine pkcs11\n", "tls_engine: this Mosquitto option is not supported"),
    ]
    for config, message in cases:
        code, out = broker_error(config)
        assert code != 0, (config, out)
        assert message in out, (config, message, out)
        assert "Opening ipv4 listen socket" not in out or "Error" in out, out
    # tls_version tlsv1.1 is read as a minimum of TLS 1.2, with a warning.
    d = tempfile.mkdtemp(prefix="tern-tls-conf-")
    try:
        with open(os.path.join(d, "tern.conf"), "w") as f:
            f.write(f"persistence false\nallow_anonymous true\nlistener 0 127.0.0.1\n{cert}{key}tls_version tlsv1.1\n")
        proc = subprocess.Popen([TERN, "broker", "-c", os.path.join(d, "tern.conf")], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            out = ""
            while "Opening ipv4 listen socket" not in out:
                line = proc.stdout.readline()  # the broker logs and listens at once, or exits
                if not line:
                    break
                out += line
            assert "TLS 1.1 is deprecated (RFC 8996) and not offered; the minimum is TLS 1.2" in out, out
            assert "Opening ipv4 listen socket" in out, out
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_sighup_reloads_certificates():
    """SIGHUP reads certfile/keyfile again: new connections get the new certificate, open ones stay."""
    d = tempfile.mkdtemp(prefix="tern-tls-reload-")
    os.chmod(d, 0o755)
    b = None
    try:
        os.makedirs(os.path.join(d, "a"))
        os.makedirs(os.path.join(d, "b"))
        first = TestCerts(os.path.join(d, "a"), san="DNS:localhost,IP:127.0.0.1")
        second = TestCerts(os.path.join(d, "b"), san="DNS:localhost,IP:127.0.0.1")
        for sub in ("a", "b"):
            os.chmod(os.path.join(d, sub), 0o755)
        live_crt, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
        shutil.copy(first.server, live_crt)
        shutil.copy(first.server_key, live_key)
        os.chmod(live_crt, 0o644)
        os.chmod(live_key, 0o644)
        b = Broker(f"allow_anonymous true\nlistener 0 127.0.0.1\ncertfile {live_crt}\nkeyfile {live_key}\n")

        def pub(ca, client_id):
            return subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(b.port), "--cafile", ca, "-t", "r",
                                   "-m", "x", "-i", client_id], capture_output=True, text=True, timeout=15)

        assert pub(first.ca, "before").returncode == 0
        held = ssl.create_default_context(cafile=first.ca).wrap_socket(
            socket.create_connection(("127.0.0.1", b.port), timeout=5), server_hostname="localhost")
        held.sendall(connect("held", version=4))
        assert held.recv(4) == connack()
        shutil.copy(second.server, live_crt)
        shutil.copy(second.server_key, live_key)
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log(r"Reloading config\.")
        time.sleep(0.3)
        assert pub(second.ca, "after-new-ca").returncode == 0, "the new certificate is served"
        assert pub(first.ca, "after-old-ca").returncode != 0, "the old one is not"
        held.sendall(bytes([0xC0, 0]))  # PINGREQ on the connection opened before the reload
        assert held.recv(2) == bytes([0xD0, 0])
        held.close()
        # A key that does not load keeps the certificates in force, with one log line.
        with open(live_key, "w") as f:
            f.write("not a key\n")
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log(r"Error: reload failed: listener \d+: .*live\.key")
        assert pub(second.ca, "after-bad-key").returncode == 0
    finally:
        if b:
            b.stop()
            shutil.rmtree(b.dir, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    passed = False
    try:
        make_certs()
        start()
        run_tests([
            test_mosquitto_clients_over_tls13_and_tls12,
            test_tls_version_is_a_minimum,
            test_require_certificate,
            test_use_identity_as_username,
            test_identity_users_need_no_password,
            test_use_subject_as_username,
            test_crlfile_refuses_the_revoked_certificate,
            test_psk,
            test_paho_over_tls,
            test_mqttjs_over_secure_websockets,
            test_raw_client_over_secure_websockets,
            test_tls_garbage_closes_that_connection_only,
            test_stalled_handshake_is_closed_after_connect_timeout,
            test_configuration_errors_stop_the_broker,
            test_sighup_reloads_certificates,
        ])
    finally:
        if BROKER:
            BROKER.stop()
            shutil.rmtree(BROKER.dir, ignore_errors=True)
        shutil.rmtree(CERTS, ignore_errors=True)
