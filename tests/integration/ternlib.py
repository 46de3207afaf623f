"""Shared helpers for Tern's integration and conformance tests.

Starts the real `tern` binary on a free loopback port (it binds port 0 and reports the port in its
log), and speaks raw MQTT over sockets so tests can check exact bytes.
"""
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import atexit
import tempfile
import time

# The temporary directories of the brokers this process started (configuration, log, store): removed
# at exit when run_tests saw every test pass, kept for reading otherwise.
_BROKER_DIRS = []
_ALL_PASSED = [False]


@atexit.register
def _remove_broker_dirs():
    if _ALL_PASSED[0]:
        for d in _BROKER_DIRS:
            shutil.rmtree(d, ignore_errors=True)


TERN = os.environ.get("TERN_BIN") or os.path.join(os.path.dirname(__file__), "../../build/dev/tern")


class Broker:
    """A running `tern broker`. Use as a context manager; stops it by PID."""

    def __init__(self, config="", workers=4, verbose=True, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="tern-test-")
        _BROKER_DIRS.append(self.dir)
        self.conf = os.path.join(self.dir, "tern.conf")
        self.store = None  # the store's directory, unless the config chooses it
        if "persistence_location" not in config:
            # Each broker its own store (persistence is on by default), in its own directory. Open to
            # all: run as root, Tern drops privileges to `user` (mosquitto or nobody) after binding.
            os.chmod(self.dir, 0o777)
            config = f"persistence_location {self.dir}\n" + config
            self.store = os.path.join(self.dir, "tern-store")
        with open(self.conf, "w") as f:
            f.write(f"workers {workers}\n" + config)
        self.log_path = os.path.join(self.dir, "broker.log")
        self.logf = open(self.log_path, "w")
        args = [TERN, "broker", "-c", self.conf]
        if "listener" not in config:
            args += ["-p", "0"]
        if verbose:
            args.append("-v")
        args += list(extra_args)
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline:
            m = re.search(r"Opening ipv4 listen socket on port (\d+)\.", self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("tern exited early:\n" + self.log())
            time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise RuntimeError("tern did not start:\n" + self.log())

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, pattern, timeout=5.0):
        """Waits until the log matches the regular expression; returns the match."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.log()[-3000:]}")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MOSQUITTO = "/usr/sbin/mosquitto"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


class MosquittoBroker:
    """Debian's mosquitto 2.0.11 (the comparison broker) on a free loopback port, anonymous access,
    plus `config` lines; installed if missing (its service kept from starting); stopped by its PID."""

    def __init__(self, config=""):
        if not os.path.exists(MOSQUITTO):
            # The mosquitto package comes with the benchmark dependencies; the script keeps its
            # service from starting (policy-rc.d), so nothing listens on 1883 afterwards.
            subprocess.run([os.path.join(ROOT, "scripts/install-deps.sh"), "--bench"], check=True)
        assert os.path.exists(MOSQUITTO), f"{MOSQUITTO} missing after scripts/install-deps.sh --bench"
        self.dir = tempfile.mkdtemp(prefix="tern-test-mosquitto-")
        _BROKER_DIRS.append(self.dir)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        for _ in range(5):
            self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n" + config)
            self.logf = open(self.log_path, "w")
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.logf, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.stop()  # the port was taken meanwhile: try another
        raise RuntimeError("mosquitto did not start")

    def _wait_ready(self):
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class TestCerts:
    """In folder `d`: a CA (ca, ca_key), a server certificate for `san` signed by it (server,
    server_key) and an unrelated CA (other); readable by all, as mosquitto runs as its own user."""

    def __init__(self, d, san="DNS:localhost"):
        p = lambda n: os.path.join(d, n)  # noqa: E731
        self.dir = d
        self.ca, self.ca_key = p("ca.crt"), p("ca.key")
        self.server, self.server_key = p("server.crt"), p("server.key")
        self.other = p("other.crt")

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out", self.ca,
                "-days", "2", "-subj", "/CN=Tern test CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.server_key, "-out", p("server.csr"),
                "-subj", "/CN=localhost")
        with open(p("ext.cnf"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", p("server.csr"), "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-out", self.server, "-days", "2", "-extfile", p("ext.cnf"))
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("other.key"), "-out", self.other,
                "-days", "2", "-subj", "/CN=Some other CA")
        for n in os.listdir(d):
            os.chmod(p(n), 0o644)


# ---- MQTT encoding helpers -------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


def props(raw=b""):
    return varint(len(raw)) + raw


def connect(client_id="", version=4, clean=True, keepalive=60, will=None, username=None,
            password=None, properties=b"", will_properties=b""):
    """CONNECT packet. will = (topic, payload, qos, retain)."""
    name = "MQIsdp" if version == 3 else "MQTT"
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += (props(will_properties) if version == 5 else b"") + s(topic) + s(msg)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    body = s(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += props(properties)
    return packet(0x10, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=1, version=4, properties=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = s(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += props(properties)
    return packet(0x30 | flags, body + payload)


def subscribe(packet_id, filters, version=4, properties=b""):
    """filters: list of (filter, options byte)."""
    body = struct.pack("!H", packet_id) + (props(properties) if version == 5 else b"")
    for f, o in filters:
        body += s(f) + bytes([o])
    return packet(0x82, body)


def unsubscribe(packet_id, filters, version=4, properties=b""):
    body = struct.pack("!H", packet_id) + (props(properties) if version == 5 else b"")
    for f in filters:
        body += s(f)
    return packet(0xA2, body)


def ack(kind, packet_id):
    """PUBACK/PUBREC/PUBREL/PUBCOMP with no reason code."""
    first = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62, "pubcomp": 0x70}[kind]
    return packet(first, struct.pack("!H", packet_id))


PINGREQ = bytes([0xC0, 0x00])
PINGRESP = bytes([0xD0, 0x00])
DISCONNECT = bytes([0xE0, 0x00])


class Client:
    """A raw MQTT client over a TCP socket."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def _read_chunk(self, deadline):
        """The next bytes from the socket, or None when none came before the deadline. Raises
        EOFError when the peer closed."""
        remaining = deadline - time.time()
        if remaining <= 0:
            return None
        r, _, _ = select.select([self.sock], [], [], remaining)
        if not r:
            return None
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            raise EOFError("connection closed")
        return chunk

    def _fill(self, deadline):
        chunk = self._read_chunk(deadline)
        if chunk is None:
            return False
        self.buf += chunk
        return True

    def recv(self, timeout=None):
        """Returns the next whole packet as bytes, or None on timeout. Raises EOFError on close."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    pkt, self.buf = self.buf[: i + length], self.buf[i + length:]
                    return pkt
            if not self._fill(deadline):
                return None

    def expect(self, data, timeout=None):
        got = self.recv(timeout)
        assert got == data, f"expected {data.hex()} got {got.hex() if got else got}"
        return got

    def expect_closed(self, timeout=3.0):
        """Asserts that the server closes the connection (after any packets it still sends).
        Returns the packets received before the close."""
        got = []
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                p = self.recv(max(0.01, deadline - time.time()))
                if p is None:
                    break
                got.append(p)
        except EOFError:
            return got
        raise AssertionError(f"connection not closed; received {[p.hex() for p in got]}")

    def connect(self, client_id="c", version=4, **kw):
        self.send(connect(client_id, version=version, **kw))
        return self.recv()

    def close(self):
        self.sock.close()


class WsClient(Client):
    """A raw MQTT client over WebSockets: the handshake, then every send() is one masked binary frame
    (or frames given with send_frame) and received binary frames are unwrapped into the byte stream
    recv() reads. Control frames received are kept in self.control as (opcode, payload)."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, protocols="mqtt", path="/mqtt"):
        super().__init__(port, host, timeout)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if protocols:
            req += f"Sec-WebSocket-Protocol: {protocols}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in head and time.time() < deadline:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        self.response, _, self.raw = head.partition(b"\r\n\r\n")
        self.response = self.response.decode(errors="replace")
        self.control = []

    @staticmethod
    def frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n <= 0xFFFF:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send(self, data):
        self.sock.sendall(self.frame(2, data))

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(self.frame(opcode, payload, fin))

    def _unframe(self):
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            assert not b1 & 0x80, "server frames must not be masked"
            n, i = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, i = struct.unpack(">H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, i = struct.unpack(">Q", self.raw[2:10])[0], 10
            if len(self.raw) < i + n:
                return
            opcode, payload, self.raw = b0 & 0x0F, self.raw[i:i + n], self.raw[i + n:]
            if opcode >= 8:
                self.control.append((opcode, payload))
            else:
                assert opcode in (0, 2), f"MQTT must come in binary frames, got opcode {opcode}"
                self.buf += payload

    def _fill(self, deadline):
        before = len(self.buf)
        self._unframe()
        if len(self.buf) != before:
            return True
        chunk = self._read_chunk(deadline)
        if chunk is None:
            return False
        self.raw += chunk
        self._unframe()
        return True


def connack(session_present=False, code=0):
    return bytes([0x20, 0x02, 1 if session_present else 0, code])


def drain_qos1(client, version=4, idle=1.0):
    """Reads PUBLISH packets until `idle` seconds pass without one, acknowledging each (PUBACK), then
    disconnects. Returns their payloads in arrival order."""
    import conflib  # tests/conformance, on the path of every script that imports this
    payloads = []
    while True:
        p = client.recv(timeout=idle)
        if p is None:
            break
        if p[0] >> 4 != 3:
            continue
        d = conflib.parse_publish(p, version)
        payloads.append(d["payload"])
        client.send(ack("puback", d["pid"]))
    client.send(DISCONNECT)
    client.close()
    return payloads


def kill_all(brokers, passed, *dirs):
    """Kills the brokers (by PID); when the test passed, removes their directories and `dirs` (a
    failure keeps them, and their logs, to look at)."""
    for b in brokers:
        b.stop(signal.SIGKILL)
        if passed:
            shutil.rmtree(b.dir, ignore_errors=True)
    if passed:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def run_tests(tests):
    """Runs test functions; prints one line each and 'N passed, N failed' at the end."""
    passed = failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        try:
            t()
            print(f"PASS {t.__name__}")
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            import traceback
            print(f"FAIL {t.__name__}: {e}")
            traceback.print_exc()
            failed += 1
    print(f"{passed} passed, {failed} failed")
    _ALL_PASSED[0] = failed == 0
    sys.exit(1 if failed else 0)
