#!/usr/bin/python3
"""`tern pub`, `tern sub` and `tern rr` against Debian 12's mosquitto_pub, mosquitto_sub and mosquitto_rr.

Every scenario runs twice, once with the Mosquitto tool and once with the Tern tool, and the two
runs must give the same stdout, stderr and exit code (normalised only where ids, process ids and
clocks differ). Each runs against both brokers: the real `tern broker` and Debian's `mosquitto`,
which this test starts on a free loopback port (never 1883) with a plain, an authenticating, a TLS,
a TLS-PSK and a Unix socket listener, and stops by its PID. TLS and PSK run against Mosquitto only
(Tern's broker has no TLS listener yet). Refusals the brokers cannot be made to give come from a
small fake broker in this file. Every subprocess has a timeout.

Usage: TERN_BIN=build/dev/tern tests/integration/test_tools.py [test_name ...]
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
import tempfile
import threading
import time
from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import TERN, Broker, MosquittoBroker, TestCerts, run_tests  # noqa: E402

IMPLS = ("mosquitto", "tern")
HOST = "127.0.0.1"
RUN_TIMEOUT = 20.0
WORK = tempfile.mkdtemp(prefix="tern-tools-")
# No option files (~/.config/mosquitto_pub ...) and a fixed zone for the time formats.
ENV = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME",)}
ENV["HOME"] = os.path.join(WORK, "home")
ENV["TZ"] = "UTC"
os.makedirs(ENV["HOME"], exist_ok=True)

Result = namedtuple("Result", "rc out err")


# ---- processes --------------------------------------------------------------------------------

def cmd(impl, tool, args):
    if impl == "mosquitto":
        return [f"mosquitto_{tool}"] + list(args)
    return [TERN, tool] + list(args)


def run(impl, tool, args, stdin=None, timeout=RUN_TIMEOUT):
    """Runs a tool to completion; returns Result(rc, stdout bytes, stderr bytes)."""
    p = subprocess.run(cmd(impl, tool, args), input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, env=ENV)
    return Result(p.returncode, p.stdout, p.stderr)


class Bg:
    """A tool running in the background (a subscriber); killed at the end whatever happens."""

    def __init__(self, impl, tool, args, broker=None, wait_subscribed=True, stdin=subprocess.DEVNULL, big_output=False):
        before = broker.count(r"Sending SUBACK to") if broker and wait_subscribed else 0
        self.args = cmd(impl, tool, args)
        # A pipe nobody reads holds 64 KiB: large outputs go to a file so the tool never blocks.
        self.out_file = tempfile.TemporaryFile(dir=WORK) if big_output else None
        self.p = subprocess.Popen(self.args, stdin=stdin, stdout=self.out_file or subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=ENV)
        if broker and wait_subscribed:
            deadline = time.time() + 10
            while broker.count(r"Sending SUBACK to") <= before:
                if time.time() > deadline or self.p.poll() is not None:
                    self.kill()
                    raise AssertionError(f"{self.args} never subscribed: {self.p.communicate()}")
                time.sleep(0.02)

    def finish(self, timeout=RUN_TIMEOUT):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.p.communicate()
            raise AssertionError(f"{self.args} did not finish; stdout {out!r} stderr {err!r}")
        if self.out_file:
            self.out_file.seek(0)
            out = self.out_file.read()
            self.out_file.close()
        return Result(self.p.returncode, out, err)

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


# ---- brokers ----------------------------------------------------------------------------------

def free_port():
    while True:
        s = socket.socket()
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        s.close()
        if port != 1883:
            return port


def mosquitto_binary():
    """Debian's mosquitto; installed with its service kept from starting (scripts/install-deps.sh)."""
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if path or os.geteuid() != 0:
        return path
    created = False
    if not os.path.exists("/usr/sbin/policy-rc.d"):
        with open("/usr/sbin/policy-rc.d", "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod("/usr/sbin/policy-rc.d", 0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mosquitto"],
                       env=env, capture_output=True, timeout=600)
    finally:
        if created:
            os.remove("/usr/sbin/policy-rc.d")
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


PSK_IDENTITY, PSK_KEY = "tern-id", "deadbeef00112233"
USER, PASSWORD = "alice", "s3cret"


class Mosquitto(MosquittoBroker):
    """Debian's mosquitto with several listeners on free loopback ports; stopped by its PID only
    (log() and stop() are ternlib.MosquittoBroker's)."""

    def __init__(self, certs=None, plain_port=None, global_conf=()):
        self.name = "mosquitto"
        self.dir = tempfile.mkdtemp(prefix="tern-mosq-", dir=WORK)
        os.chmod(self.dir, 0o755)
        self.port = plain_port or free_port()
        self.auth_port = free_port()
        self.tls_port = free_port() if certs else None
        self.psk_port = free_port() if certs else None
        self.socket = os.path.join(self.dir, "mosquitto.sock")
        passwd = os.path.join(self.dir, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, USER, PASSWORD], check=True, capture_output=True,
                       timeout=30)
        pskfile = os.path.join(self.dir, "psk")
        with open(pskfile, "w") as f:
            f.write(f"{PSK_IDENTITY}:{PSK_KEY}\n")
        conf = []
        if os.geteuid() == 0:
            conf.append("user root")  # keep root: the files and the socket live in a root-owned temp dir
        conf += list(global_conf)
        conf += ["per_listener_settings true", "log_type all",
                 f"listener {self.port} {HOST}", "allow_anonymous true",
                 f"listener {self.auth_port} {HOST}", "allow_anonymous false", f"password_file {passwd}",
                 f"listener 0 {self.socket}", "allow_anonymous true"]
        if certs:
            conf += [f"listener {self.tls_port} {HOST}", "allow_anonymous true", f"cafile {certs.ca}",
                     f"certfile {certs.server}", f"keyfile {certs.server_key}",
                     f"listener {self.psk_port} {HOST}", "allow_anonymous true", "psk_hint tern",
                     f"psk_file {pskfile}"]
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        for n in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, n), 0o644)
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.start()

    def start(self):
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf, "-v"], stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if "running" in self.log():
                try:
                    socket.create_connection((HOST, self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited:\n" + self.log())
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start:\n" + self.log())

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))



class TernBroker(Broker):
    name = "tern"

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))


class FakeBroker:
    """A scripted MQTT server: CONNACK with `code` (or none, or a close), SUBACK with `suback`
    codes, and acknowledgements unless `ack` is False. Records what it receives."""

    def __init__(self, code=0, v5=False, mode="normal", suback=0, ack=True):
        self.code, self.v5, self.mode, self.suback, self.ack = code, v5, mode, suback, ack
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _packet(self, c):
        head = self._read(c, 1)
        length, mult = 0, 1
        while True:
            b = self._read(c, 1)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return head[0], self._read(c, length)

    def _serve(self, c):
        c.settimeout(30)
        try:
            while True:
                first, body = self._packet(c)
                with self.lock:
                    self.packets.append((first, body))
                kind = first >> 4
                if kind == 1:
                    if self.mode == "close":
                        c.close()
                        return
                    if self.mode == "noconnack":
                        continue
                    c.sendall(bytes([0x20, 3, 0, self.code, 0]) if self.v5 else bytes([0x20, 2, 0, self.code]))
                elif kind == 8:
                    # packet id, (5.0: properties), then (filter, options) pairs
                    i = 2 + (1 + body[2] if self.v5 else 0)
                    n = 0
                    while i < len(body):
                        i += 2 + struct.unpack("!H", body[i:i + 2])[0] + 1
                        n += 1
                    ack = body[:2] + (b"\x00" if self.v5 else b"") + bytes([self.suback]) * n
                    c.sendall(bytes([0x90, len(ack)]) + ack)
                elif kind == 3 and self.ack:
                    qos = (first >> 1) & 3
                    if qos:
                        tl = struct.unpack("!H", body[:2])[0]
                        pid = body[2 + tl:4 + tl]
                        c.sendall(bytes([0x40 if qos == 1 else 0x50, 2]) + pid)
                elif kind == 6:
                    c.sendall(bytes([0x70, 2]) + body[:2])
                elif kind == 12:
                    c.sendall(b"\xd0\x00")
                elif kind == 14:
                    return
        except (EOFError, OSError):
            return
        finally:
            c.close()

    def kinds(self):
        with self.lock:
            return [(f >> 4, b) for f, b in self.packets]

    def close(self):
        self.stopped = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- comparing --------------------------------------------------------------------------------

AUTO_ID = re.compile(rb"auto-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")
MOSQ_ID = re.compile(rb"mosq-[A-Za-z0-9]{18}")
_prefix_counter = [0]


def new_prefix():
    """A topic/client id prefix of fixed length, unique per run, replaced by PFX when comparing."""
    _prefix_counter[0] += 1
    return f"tt{os.getpid() % 1000:03d}{_prefix_counter[0]:05d}"


def norm(data, prefix=None, extra=()):
    if isinstance(data, str):
        data = data.encode()
    data = AUTO_ID.sub(b"auto-ID", data)
    data = MOSQ_ID.sub(b"mosq-ID", data)
    # Tern names itself where Mosquitto says mosquitto_pub etc.
    data = re.sub(rb"tern (pub|sub|rr)\b", rb"mosquitto_\1", data)
    if prefix:
        data = data.replace(prefix.encode(), b"PFX")
    for pattern, repl in extra:
        data = re.sub(pattern, repl, data)
    return data


def normalize(value, prefix, extra=()):
    if isinstance(value, Result):
        return Result(value.rc, norm(value.out, prefix, extra), norm(value.err, prefix, extra))
    if isinstance(value, list):
        return [normalize(v, prefix, extra) for v in value]
    if isinstance(value, (bytes, str)):
        return norm(value, prefix, extra)
    return value


def check_same(label, m, t):
    assert m == t, f"{label}: the tools differ\n  mosquitto: {m!r}\n  tern:      {t!r}"


def compare(brokers, scenario, label, extra=()):
    """Runs scenario(broker, impl, prefix) with both tools on each broker and compares the results."""
    results = {}
    for b in brokers:
        got = {}
        for impl in IMPLS:
            p = new_prefix()
            got[impl] = normalize(scenario(b, impl, p), p, extra)
        check_same(f"{label} [{b.name} broker]", got["mosquitto"], got["tern"])
        results[b.name] = got["tern"]
    return results


def compare_runs(label, tool, args, stdin=None, accept=None, extra=()):
    """Runs one command line with both tools (no broker state involved) and compares."""
    m = normalize(run("mosquitto", tool, args, stdin=stdin), None, extra)
    t = normalize(run("tern", tool, args, stdin=stdin), None, extra)
    if accept is not None:
        # Mosquitto itself is not deterministic here: Tern must give one of the accepted outcomes.
        assert m in accept, f"{label}: unexpected mosquitto outcome {m!r}"
        assert t in accept, f"{label}: tern gave {t!r}, not one of {accept!r}"
        return t
    check_same(label, m, t)
    return t


def conn(b):
    return ["-h", HOST, "-p", str(b.port)]


def ok(r, label=""):
    assert r.rc == 0, f"{label} rc {r.rc}: {r.err!r}"
    return r


def helper_pub(b, args, stdin=None):
    """Publishes with mosquitto_pub (the tool not under test in that step)."""
    return ok(run("mosquitto", "pub", conn(b) + args, stdin=stdin), f"mosquitto_pub {args}")


# Set up once for the whole file.
MOSQUITTO = None
CERTS = None
TERN_B = None
MOSQ_B = None
BROKERS = []


def setup():
    global MOSQUITTO, CERTS, TERN_B, MOSQ_B, BROKERS
    for tool in ("mosquitto_pub", "mosquitto_sub", "mosquitto_rr", "mosquitto_passwd", "openssl"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is missing: run scripts/install-deps.sh")
    MOSQUITTO = mosquitto_binary()
    if not MOSQUITTO:
        raise RuntimeError("Debian's mosquitto is missing (apt-get install mosquitto, with services kept off)")
    CERTS = TestCerts(tempfile.mkdtemp(prefix="certs-", dir=WORK), san="DNS:localhost,IP:127.0.0.1")
    os.chmod(CERTS.dir, 0o755)
    TERN_B = TernBroker()
    # Mosquitto drops QoS 1/2 messages for an online subscriber whose queue holds max_queued_messages
    # (1000 by default), which a fast publisher reaches depending on the machine's load: unbounded
    # here, so that the tools, not Mosquitto's loss policy, are what the tests compare.
    MOSQ_B = Mosquitto(CERTS, global_conf=("max_queued_messages 0",))
    BROKERS = [TERN_B, MOSQ_B]


def teardown():
    for b in (TERN_B, MOSQ_B):
        if b:
            b.stop()
    shutil.rmtree(WORK, ignore_errors=True)


# ---- the lecture ------------------------------------------------------------------------------

def test_lecture_commands():
    """`sub -t '#' -v` and `pub -t hello -m world -q 2` verbatim (plus -h/-p), on fresh brokers."""
    for make in (TernBroker, lambda: Mosquitto()):
        b = make()
        try:
            got = {}
            for impl in IMPLS:
                with Bg(impl, "sub", conn(b) + ["-t", "#", "-v"], broker=b) as sub:
                    pubs = [run(impl, "pub", conn(b) + ["-t", "hello", "-m", "world", "-q", "2"]),
                            run(impl, "pub", conn(b) + ["-t", "hello", "-m", "world"]),
                            run(impl, "pub", conn(b) + ["-t", "hello", "-m", "world", "-q", "1", "-d"])]
                    deadline = time.time() + 5
                    while b.count(r"Sending PUBLISH to .*'hello'") < 3 * (IMPLS.index(impl) + 1) and time.time() < deadline:
                        time.sleep(0.02)
                    time.sleep(0.2)
                    sub.signal(signal.SIGINT)
                    got[impl] = normalize([sub.finish()] + pubs, None)
            check_same(f"lecture [{b.name}]", got["mosquitto"], got["tern"])
            assert got["tern"][0] == Result(0, b"hello world\n" * 3, b""), got["tern"][0]
            # On the wire, as the lecture's broker log shows it (the second QoS 2 flow is Tern's).
            log = b.log()
            for pattern in (r"Received PUBLISH from auto-\S+ \(d0, q2, r0, m1, 'hello', \.\.\. \(5 bytes\)\)",
                            r"Sending PUBREC to auto-\S+ \(m1, rc0\)", r"Received PUBREL from auto-\S+ \(Mid: 1\)",
                            r"Sending PUBCOMP to auto-\S+ \(m1\)"):
                assert len(re.findall(pattern, log)) == 2, f"{pattern} not twice in\n{log[-3000:]}"
        finally:
            b.stop()


# ---- QoS, versions, debug output --------------------------------------------------------------

def test_qos_and_versions_debug():
    """Every -V x publish QoS x subscription QoS, with -d on both sides."""
    for v in ("31", "311", "5"):
        for q in (0, 1, 2):
            for sq in (0, 2):
                def scenario(b, impl, p):
                    with Bg(impl, "sub", conn(b) + ["-V", v, "-q", str(sq), "-t", f"{p}/q", "-v", "-d", "-C", "2",
                                                    "-i", f"{p}-s"], broker=b) as sub:
                        r1 = run(impl, "pub", conn(b) + ["-V", v, "-q", str(q), "-t", f"{p}/q", "-m", "hello", "-d",
                                                         "-i", f"{p}-p"])
                        r2 = run(impl, "pub", conn(b) + ["-V", v, "-q", str(q), "-t", f"{p}/q", "-n", "-d"])
                        s = sub.finish()
                        # The two QoS 2 flows may interleave either way (the broker's timing, not the
                        # tool's): the subscriber's lines are compared as a set, each flow's order is MQTT's.
                        return [s._replace(out=b"".join(sorted(s.out.splitlines(keepends=True)))), r1, r2]
                res = compare(BROKERS, scenario, f"-V {v} -q {q} sub -q {sq}")
                for b in BROKERS:
                    assert res[b.name][0].rc == 0 and b"PFX/q hello\n" in res[b.name][0].out, res[b.name]
    # The protocol level and flags reach the broker as asked.
    for b in BROKERS:
        p = new_prefix()
        for v, level in (("31", "p1"), ("311", "p2"), ("5", "p5")):
            ok(run("tern", "pub", conn(b) + ["-V", v, "-i", f"{p}-{v}", "-k", "33", "-t", f"{p}/x", "-m", "x"]))
            assert re.search(rf"New client connected from \S+ as {p}-{v} \({level}, c1, k33\)", b.log()), b.log()[-2000:]


def test_connect_flags_on_the_wire():
    """-c, -k, -A, --will-* and -u/-P reach the broker as given (its -v log), for both tools."""
    for b in BROKERS:
        for impl in IMPLS:
            p = new_prefix()
            ok(run(impl, "pub", conn(b) + ["-i", f"{p}-f", "-c", "-k", "40", "-A", HOST, "--will-topic", f"{p}/w",
                                           "--will-payload", "abc", "--will-qos", "1", "--will-retain", "-t",
                                           f"{p}/x", "-m", "x", "-q", "1"]), impl)
            log = b.log()
            assert re.search(rf"New client connected from 127\.0\.0\.1:\d+ as {p}-f \(p2, c0, k40\)\.\n"
                             rf".*Will message specified \(3 bytes\) \(r1, q1\)\.\n.*\t{p}/w\n", log), log[-2000:]
            ok(run(impl, "sub", conn(b) + ["-i", f"{p}-f", "-t", f"{p}/x", "-E"]))  # end the session
    m = MOSQ_B
    for impl in IMPLS:
        ok(run(impl, "pub", ["-h", HOST, "-p", str(m.auth_port), "-u", USER, "-P", PASSWORD, "-t", "a", "-m", "x",
                             "-i", f"{impl}-auth"]), impl)
        assert re.search(rf"New client connected from \S+ as {impl}-auth \(p2, c1, k60\, u'{USER}'\)", m.log()), \
            m.log()[-2000:]
    # -M is the window of QoS 1/2 messages in flight.
    for impl in IMPLS:
        with FakeBroker(ack=False) as fake:
            with Bg(impl, "pub", ["-h", HOST, "-p", str(fake.port), "-t", "w", "-q", "1", "-l", "-M", "5"],
                    stdin=subprocess.PIPE) as pub:
                pub.p.stdin.write(b"line\n" * 50)
                pub.p.stdin.flush()
                time.sleep(1.0)
                assert sum(1 for k, _ in fake.kinds() if k == 3) == 5, (impl, fake.kinds())


def test_retained_messages():
    def scenario(b, impl, p):
        out = [run(impl, "pub", conn(b) + ["-t", f"{p}/r", "-m", "kept", "-r", "-q", "1", "-d"])]
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "-C", "1", "-v", "-d"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "-F", "%r %q %t %p", "-C", "1", "-q", "1"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "-R", "-W", "1"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "--retained-only", "-W", "1", "-v"]))
        out.append(run(impl, "pub", conn(b) + ["-t", f"{p}/r", "-n", "-r"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "-W", "1", "-v"]))
        return out
    res = compare(BROKERS, scenario, "retained")
    for r in res.values():
        assert r[1].out.endswith(b"PFX/r kept\nClient (null) sending DISCONNECT\n"), r[1]
        assert r[2].out == b"1 1 PFX/r kept\n" and r[3] == Result(27, b"", b"Timed out\n") and r[6].out == b"", r


def test_will():
    """--will-*: the broker publishes the will when the client vanishes (SIGKILL), and on 5.0 also
    when `sub` is interrupted, since mosquitto_sub then disconnects with reason 4."""
    for v, how in (("311", signal.SIGKILL), ("5", signal.SIGKILL), ("5", signal.SIGINT), ("311", signal.SIGINT)):
        expect_will = how == signal.SIGKILL or v == "5"
        wait = "5" if expect_will else "1"

        def scenario(b, impl, p):
            with Bg("mosquitto", "sub", conn(b) + ["-t", f"{p}/will", "-C", "1", "-W", wait, "-F", "%r %q %t %p"],
                    broker=b) as watcher:
                with Bg(impl, "sub", conn(b) + ["-V", v, "-t", f"{p}/other", "-i", f"{p}-w", "--will-topic",
                                               f"{p}/will", "--will-payload", "bye", "--will-qos", "1",
                                               "--will-retain"], broker=b) as victim:
                    victim.signal(how)
                    r = victim.finish()
                w = watcher.finish()
            later = run("mosquitto", "sub", conn(b) + ["-t", f"{p}/will", "-C", "1", "-W", wait, "-F", "%r %t %p"])
            helper_pub(b, ["-t", f"{p}/will", "-r", "-n"])
            return [Result(r.rc, r.out, r.err), w, later]
        res = compare(BROKERS, scenario, f"will -V {v} {how.name}")
        for r in res.values():
            if expect_will:
                assert r[1].out == b"0 0 PFX/will bye\n" and r[2].out == b"1 PFX/will bye\n", r
            else:
                assert r[0].rc == 0 and r[1].out == b"" and r[2].out == b"", r


# ---- pub ----------------------------------------------------------------------------------------

BINARY = bytes(range(256)) + b"\x00end"


def test_pub_payload_sources():
    binfile = os.path.join(WORK, "payload.bin")
    with open(binfile, "wb") as f:
        f.write(BINARY)
    emptyfile = os.path.join(WORK, "empty.bin")
    open(emptyfile, "wb").close()
    lines = b"first line\nsecond\r\n\n  spaced  \nunterminated"
    cases = [
        (["-m", "from -m"], None, 1),
        (["-f", binfile], None, 1),
        (["-f", emptyfile], None, 1),
        (["-s"], b"all of\nstdin\n", 1),
        (["-n"], None, 1),
        (["-l"], lines, 5),
        (["-l", "-q", "1"], lines, 5),
        (["-l", "-q", "2"], b"a\nb\x00c\nnever sent\n", 2),
        (["-l"], b"", 0),
        (["-m", "again", "--repeat", "3"], None, 3),
        (["-m", "delayed", "--repeat", "2", "--repeat-delay", "0.3", "-q", "1"], None, 2),
        (["-m", "retained", "-r", "-q", "2"], None, 1),
    ]
    for args, stdin, n in cases:
        def scenario(b, impl, p):
            with Bg("mosquitto", "sub", conn(b) + ["-t", f"{p}/x", "-q", "2", "-C", str(max(n, 1)), "-W", "5" if n else "1",
                                                   "-F", "%r %q %l %x"], broker=b) as sub:
                # -d is deterministic when the publisher waits for nothing (QoS 0, one at a time).
                debug = ["-d"] if "-l" not in args or "-q" not in args else []
                r = run(impl, "pub", conn(b) + ["-t", f"{p}/x", "-q", "0"] + args + debug, stdin=stdin)
                s = sub.finish()
            if "-r" in args:
                helper_pub(b, ["-t", f"{p}/x", "-r", "-n"])
            return [r, s]
        res = compare(BROKERS, scenario, f"pub {args}")
        for r in res.values():
            assert r[0].rc == 0, r
            assert r[1].out.count(b"\n") == n, r


def test_pub_stdin_line_window():
    """`pub -l` reads only while fewer than max(100, 2 * -M) messages are unacknowledged: with a broker
    that never acknowledges, a writer of 100,000 lines of 1 KB is stopped after a few hundred."""
    with FakeBroker(ack=False) as fake:
        p = subprocess.Popen([TERN, "pub", "-h", HOST, "-p", str(fake.port), "-t", "w", "-q", "1", "-l"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        written = [0]

        def writer():
            line = b"x" * 1023 + b"\n"
            try:
                for _ in range(100000):
                    p.stdin.write(line)
                    p.stdin.flush()
                    written[0] += 1
            except (BrokenPipeError, ValueError, OSError):
                pass
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(2.0)
        sent = sum(1 for k, _ in fake.kinds() if k == 3)
        p.kill()
        p.wait()
        t.join(5)
        assert sent == 20, f"{sent} PUBLISH in flight, expected -M's 20"
        assert written[0] < 400, f"{written[0]} lines were read: the window does not hold"


def test_pub_stdin_line_many():
    """A 20,000-line file with -l -q 1 arrives complete and in order."""
    data = b"".join(b"%d\n" % i for i in range(20000))
    for b in BROKERS:
        p = new_prefix()
        with Bg("mosquitto", "sub", conn(b) + ["-t", f"{p}/many", "-q", "1", "-C", "20000", "-W", "60"], broker=b,
                big_output=True) as sub:
            r = run("tern", "pub", conn(b) + ["-t", f"{p}/many", "-q", "1", "-l"], stdin=data, timeout=60)
            s = sub.finish(timeout=60)
        assert r.rc == 0 and s.rc == 0, (r, s.rc, s.err)
        assert s.out == data, f"{b.name}: {len(s.out.splitlines())} lines arrived"


def test_pub_v5_refusals():
    """PUBACK/PUBREC with an error (5.0): mosquitto_pub warns and still exits 0."""
    with RefusingBroker(0x87) as fake:
        for q in ("1", "2"):
            t = compare_runs(f"refused publish q{q}", "pub", ["-h", HOST, "-p", str(fake.port), "-V", "5", "-t", "a",
                                                              "-m", "x", "-q", q, "-d", "--repeat", "2"])
            assert t.rc == 0 and t.err == b"Warning: Publish 1 failed: Not authorized.\nWarning: Publish 2 failed: " \
                b"Not authorized.\n", t


class RefusingBroker(FakeBroker):
    """Accepts the connection and answers each PUBLISH with a PUBACK/PUBREC carrying `reason` (5.0)."""

    def __init__(self, reason):
        super().__init__(v5=True, ack=False)
        self.reason = reason

    def _serve(self, c):
        try:
            while True:
                first, body = self._packet(c)
                kind = first >> 4
                if kind == 1:
                    c.sendall(bytes([0x20, 3, 0, 0, 0]))
                elif kind == 3:
                    qos = (first >> 1) & 3
                    tl = struct.unpack("!H", body[:2])[0]
                    pid = body[2 + tl:4 + tl]
                    c.sendall(bytes([0x40 if qos == 1 else 0x50, 3]) + pid + bytes([self.reason]))
                elif kind == 14:
                    return
        except (EOFError, OSError):
            return
        finally:
            c.close()


# ---- sub ----------------------------------------------------------------------------------------

def test_sub_counting_and_filters():
    def scenario(b, impl, p):
        helper_pub(b, ["-t", f"{p}/a", "-m", "A", "-r"])
        helper_pub(b, ["-t", f"{p}/b", "-m", "B", "-r", "-q", "1"])
        helper_pub(b, ["-t", f"{p}/c/d", "-m", "CD", "-r"])
        out = []
        # -C counts printed messages only: retained ones dropped by -R and topics dropped by -T do not count.
        with Bg(impl, "sub", conn(b) + ["-t", f"{p}/#", "-R", "-C", "1", "-v"], broker=b) as s:
            helper_pub(b, ["-t", f"{p}/fresh", "-m", "F"])
            out.append(s.finish())
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/#", "-T", f"{p}/a", "-T", f"{p}/c/#", "-C", "1", "-v"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/a", "-t", f"{p}/b", "-C", "2", "-N"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/a", "-t", f"{p}/c/+", "-C", "2", "-v", "-N"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/none", "-E", "-d", "-q", "1"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/x", "-U", f"{p}/x", "-U", f"{p}/y", "-E", "-d"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/none", "-W", "1", "-d"]))
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/none", "-W", "1", "--quiet"]))
        with Bg(impl, "sub", conn(b) + ["-t", f"{p}/a", "-t", f"{p}/b", "-t", f"{p}/c/d", "-t", f"{p}/fresh",
                                       "--retained-only", "-v", "-q", "1"], broker=b) as s:
            helper_pub(b, ["-t", f"{p}/fresh", "-m", "ends it"])
            out.append(s.finish())
        with Bg(impl, "sub", conn(b) + ["-t", f"{p}/e", "-v", "-C", "3"], broker=b) as s:
            helper_pub(b, ["-t", f"{p}/e", "-n"])
            helper_pub(b, ["-t", f"{p}/e", "-m", ""])
            helper_pub(b, ["-t", f"{p}/e", "-m", "x"])
            out.append(s.finish())
        with Bg(impl, "sub", conn(b) + ["-t", f"{p}/e", "-C", "2"], broker=b) as s:
            helper_pub(b, ["-t", f"{p}/e", "-n"])
            helper_pub(b, ["-t", f"{p}/e", "-m", "x"])
            out.append(s.finish())
        for t in ("a", "b", "c/d"):
            helper_pub(b, ["-t", f"{p}/{t}", "-r", "-n"])
        return out
    res = compare(BROKERS, scenario, "sub -C -R -T -N -E -U -W --retained-only")
    for r in res.values():
        assert r[0].out == b"PFX/fresh F\n", r[0]
        assert r[1].out == b"PFX/b B\n", r[1]
        assert r[2].out == b"AB", r[2]
        assert r[6].rc == 27 and r[7] == Result(27, b"", b""), r[6:8]
        assert b"UNSUBSCRIBE (Mid: 2, Topic: PFX/x)" in r[5].out and b"UNSUBSCRIBE (Mid: 3, Topic: PFX/y)" in r[5].out, r[5]
        assert r[9].out == b"PFX/e (null)\nPFX/e (null)\nPFX/e x\n" and r[10].out == b"x\n", r[9:]


def test_sub_remove_retained():
    def scenario(b, impl, p):
        for t, q in (("r1", "0"), ("r2", "1"), ("keep", "0")):
            helper_pub(b, ["-t", f"{p}/{t}", "-m", t, "-r", "-q", q])
        out = [run(impl, "sub", conn(b) + ["-t", f"{p}/r1", "-t", f"{p}/r2", "-t", f"{p}/keep", "--remove-retained",
                                           "-T", f"{p}/keep", "--retained-only", "-W", "2", "-v", "-d", "-i", f"{p}-rm"])]
        out.append(run("mosquitto", "sub", conn(b) + ["-t", f"{p}/#", "-W", "1", "-v"]))
        # -R keeps retained messages from being removed as well as from being printed.
        helper_pub(b, ["-t", f"{p}/r1", "-m", "again", "-r"])
        out.append(run(impl, "sub", conn(b) + ["-t", f"{p}/r1", "--remove-retained", "-R", "-W", "1"]))
        out.append(run("mosquitto", "sub", conn(b) + ["-t", f"{p}/keep", "-t", f"{p}/r1", "-W", "1", "-v"]))
        for t in ("r1", "keep"):
            helper_pub(b, ["-t", f"{p}/{t}", "-r", "-n"])
        return out
    res = compare(BROKERS, scenario, "--remove-retained")
    for r in res.values():
        assert b"sending PUBLISH (d0, q1, r1, m2, 'PFX/r1', ... (0 bytes))" in r[0].out, r[0]
        assert r[0].rc == 27 and r[1].out == b"PFX/keep keep\n", r[:2]
        assert r[3].out == b"PFX/keep keep\nPFX/r1 again\n", r[3]


def test_sub_remove_retained_with_count():
    """Measured difference: with -C reached while a removal is unacknowledged, mosquitto_sub never exits
    by itself (it waits for -W or a signal); tern sub exits once the removal is acknowledged."""
    for b in BROKERS:
        got = {}
        for impl in IMPLS:
            p = new_prefix()
            helper_pub(b, ["-t", f"{p}/r", "-m", "x", "-r"])
            got[impl] = normalize(run(impl, "sub", conn(b) + ["-t", f"{p}/r", "--remove-retained", "-C", "1", "-W", "3",
                                                              "-v"]), p)
        assert got["mosquitto"] == Result(27, b"PFX/r x\n", b"Timed out\n"), got
        assert got["tern"] == Result(0, b"PFX/r x\n", b""), got


def test_server_limits():
    """A broker with maximum QoS 1, no retained messages and a 200-byte maximum packet size (5.0):
    libmosquitto refuses QoS 2, silently clears the retain flag and drops oversized messages."""
    b = Mosquitto(global_conf=["max_qos 1", "retain_available false", "max_packet_size 200"])
    try:
        big = os.path.join(WORK, "300.bin")
        with open(big, "wb") as f:
            f.write(b"z" * 300)
        a = conn(b)
        for label, tool, args in (
                ("QoS 2 on 5.0", "pub", a + ["-t", "a", "-m", "x", "-q", "2", "-V", "5", "-d"]),
                ("retain not available", "pub", a + ["-t", "a", "-m", "x", "-r", "-V", "5", "-d"]),
                ("packet too large", "pub", a + ["-t", "a", "-f", big, "-V", "5", "-d"]),
                ("QoS 2 on 3.1.1: the broker disconnects", "pub", a + ["-t", "a", "-m", "x", "-q", "2", "-d"]),
                ("rr QoS 2", "rr", a + ["-t", "a", "-m", "x", "-q", "2", "-e", "r", "-W", "2"]),
                ("sub QoS 2 granted 1", "sub", a + ["-t", "a", "-q", "2", "-V", "5", "-E", "-d"])):
            compare_runs(label, tool, args)
    finally:
        b.stop()


def test_client_ids():
    """-i verbatim, -I prefix + process id, 3.1's random mosq- id, 5.0's assigned id."""
    pid = [(rb"pfx-\d+", b"pfx-PID")]
    for b in BROKERS:
        for v in ("31", "311", "5"):
            compare_runs(f"-I -V {v} [{b.name}]", "pub", conn(b) + ["-V", v, "-I", "pfx-", "-t", "a", "-m", "x", "-d"],
                         extra=pid)
            compare_runs(f"no id -V {v} [{b.name}]", "pub", conn(b) + ["-V", v, "-t", "a", "-m", "x", "-d"])
        t = run("tern", "pub", conn(b) + ["-V", "31", "-t", "a", "-m", "x", "-d"])
        assert re.match(rb"Client mosq-[A-Za-z0-9]{18} sending CONNECT\n", t.out), t


def test_sub_output_is_prompt():
    """mosquitto_sub flushes stdout after every message, also into a pipe and with -N."""
    for extra in ([], ["-N"], ["-d"]):
        for impl in IMPLS:
            b = TERN_B
            p = new_prefix()
            with Bg(impl, "sub", conn(b) + ["-t", f"{p}/f"] + extra, broker=b) as s:
                helper_pub(b, ["-t", f"{p}/f", "-m", "prompt"])
                # With -d the debug lines come first: read until the message or 5 s.
                data = b""
                deadline = time.time() + 5.0
                while b"prompt" not in data and time.time() < deadline:
                    ready, _, _ = select.select([s.p.stdout], [], [], max(0.0, deadline - time.time()))
                    if not ready:
                        break
                    chunk = os.read(s.p.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    data += chunk
                assert b"prompt" in data, f"{impl} {extra}: nothing on stdout within 5 s: {data!r}"


def test_sub_random_filter():
    """--random-filter N prints N/10 percent of the messages (measured: mosquitto_sub compares tenths
    of N with rand() % 10000, whatever its help says): 500 prints about half of 400 messages, 50
    about 5%, 1000 all. Each tool draws its own random numbers, so only the proportion is compared."""
    lines = b"".join(b"m%d\n" % i for i in range(400))
    for pct, low, high in (("500", 120, 280), ("50", 2, 60), ("1000", 400, 400)):
        for impl in IMPLS:
            b = TERN_B
            p = new_prefix()
            with Bg(impl, "sub", conn(b) + ["-t", f"{p}/r", "-q", "1", "--random-filter", pct, "-W", "3"], broker=b,
                    big_output=True) as s:
                helper_pub(b, ["-t", f"{p}/r", "-q", "1", "-l"], stdin=lines)
                r = s.finish()
            n = r.out.count(b"\n")
            assert r.rc == 27 and low <= n <= high, f"{impl} --random-filter {pct}: {n} of 400"


def test_sub_denied_subscriptions():
    for v5 in (False, True):
        with FakeBroker(v5=v5, suback=0x87 if v5 else 0x80) as fake:
            args = ["-h", HOST, "-p", str(fake.port), "-t", "a", "-t", "b", "-d"] + (["-V", "5"] if v5 else [])
            t = compare_runs("all subscriptions denied", "sub", args)
            assert t.rc == 0 and t.err == b"All subscription requests were denied.\n", t


def test_sub_signals():
    def scenario(b, impl, p):
        out = []
        for v in ("311", "5"):
            with Bg(impl, "sub", conn(b) + ["-V", v, "-t", f"{p}/s", "-v", "-d"], broker=b) as s:
                helper_pub(b, ["-t", f"{p}/s", "-m", "before the signal"])
                time.sleep(0.3)
                s.signal(signal.SIGINT)
                out.append(s.finish())
        with Bg(impl, "sub", conn(b) + ["-t", f"{p}/s"], broker=b) as s:
            s.signal(signal.SIGTERM)
            out.append(s.finish())
        return out
    compare(BROKERS, scenario, "sub SIGINT/SIGTERM")
    # Before a CONNACK, the signal ends it with 255 at once; pub and rr die of the signal.
    with FakeBroker(mode="noconnack") as fake:
        got = {}
        for impl in IMPLS:
            r = []
            for tool, extra in (("sub", ["-t", "a"]), ("rr", ["-t", "a", "-e", "b", "-m", "x"]),
                                ("pub", ["-t", "a", "-m", "x"])):
                with Bg(impl, tool, ["-h", HOST, "-p", str(fake.port), "-d"] + extra) as s:
                    time.sleep(0.5)
                    s.signal(signal.SIGINT)
                    r.append(s.finish())
            got[impl] = r
        check_same("signal before CONNACK", got["mosquitto"], got["tern"])
        assert [r.rc for r in got["tern"]] == [255, -signal.SIGINT, -signal.SIGINT], got["tern"]


def test_sub_reconnects():
    """After losing an established connection, `sub` reconnects every second and subscribes again."""
    got = {}
    for impl in IMPLS:
        b = Mosquitto()
        try:
            with Bg(impl, "sub", conn(b) + ["-t", "lost", "-v", "-d", "-i", "reconnecting"], broker=b) as s:
                b.stop()
                time.sleep(1.5)
                b.start()
                deadline = time.time() + 10
                while b.count(r"Sending SUBACK to reconnecting") < 2 and time.time() < deadline:
                    time.sleep(0.05)
                helper_pub(b, ["-t", "lost", "-m", "back"])
                time.sleep(0.3)
                s.signal(signal.SIGINT)
                got[impl] = s.finish()
        finally:
            b.stop()
    check_same("sub reconnect", got["mosquitto"], got["tern"])
    assert got["tern"].out.endswith(b"Subscribed (mid: 2): 0\nClient reconnecting received PUBLISH (d0, q0, r0, m0, "
                                    b"'lost', ... (4 bytes))\nlost back\nClient reconnecting sending DISCONNECT\n"), got


# ---- output formats -----------------------------------------------------------------------------

FORMATS = [
    "%t", "%p", "%x", "%X", "%l", "%m", "%q", "%r", "%C", "%R", "%E", "%F", "%A", "%S", "%D", "%P", "%j", "%J",
    "%%", "[%10t]", "[%-10t|%.3t]", "[%5p]", "[%-p]", "[%12x]", "[%-x]", "[%05l]", "[%-5m]", "%t %l %q %r",
    "\\t%t\\n", "\\e[1m%t\\e[0m", "@@ %% \\\\", "[%10.4C]", "[%-8F|%08E|%5S]", "%j|%J", "x%t\\0y", "%p%p",
    "[%6.2R]", "%A%F%S%E",
]
TIME_FORMATS = ["%I", "%U", "@Y-@m-@dT@H:@M:@S", "@N", "@s.@N %t", "%j", "[%30I]"]
BAD_FORMATS = ["%z", "%0-8x", "\\q", "%", "x%5"]


def test_output_formats():
    """-F with 45 formats, -N and --pretty on empty, binary, non-UTF-8, JSON and property-laden
    messages (MQTT 5, retained, QoS 1); times compared with the digits masked."""
    json_payload = b'{"a": 1.50, "b": [true, null, "x\\u00e9"], "c": {"d": -0, "e": 1e400}, "f": 01}'
    binfile = os.path.join(WORK, "format.bin")
    with open(binfile, "wb") as f:
        f.write(BINARY)
    latin = os.path.join(WORK, "latin1.bin")
    with open(latin, "wb") as f:
        f.write(b"caf\xe9 \xff\xfe")
    jfile = os.path.join(WORK, "json.bin")
    with open(jfile, "wb") as f:
        f.write(json_payload)

    topics = ("bin", "latin1", "json", "props", "empty")

    def publish_all(b, p):
        base = ["-V", "5", "-q", "1", "-r"]
        helper_pub(b, base + ["-t", f"{p}/bin", "-f", binfile])
        helper_pub(b, base + ["-t", f"{p}/latin1", "-f", latin, "-D", "publish", "payload-format-indicator", "0"])
        helper_pub(b, base + ["-t", f"{p}/json", "-f", jfile, "-D", "publish", "payload-format-indicator", "1",
                              "-D", "publish", "content-type", "application/json"])
        helper_pub(b, base + ["-t", f"{p}/props", "-m", '["props", 2]',
                              "-D", "publish", "content-type", "text/x-tern", "-D", "publish", "response-topic",
                              f"{p}/reply", "-D", "publish", "correlation-data", "corr-42",
                              "-D", "publish", "user-property", "k1", "v1", "-D", "publish", "user-property", "k2",
                              "v 2", "-D", "publish", "user-property", "k1", "again"])

    def clear_all(b, p):
        for t in topics[:-1]:
            helper_pub(b, ["-t", f"{p}/{t}", "-r", "-n"])

    def one(b, impl, p, fmt, extra=(), norm_extra=()):
        # Four retained messages, then an empty one (an empty retained message would delete itself).
        # The subscription identifier only where %S asks for it: Tern's broker appends it after the
        # user properties, and %j would then list them in another order (docs/tools.md).
        sid = ["-D", "subscribe", "subscription-identifier", "7"] if "%S" in fmt else []
        args = conn(b) + ["-V", "5", "-q", "1", "-C", "5", "-W", "5"] + sid + \
            [x for t in topics for x in ("-t", f"{p}/{t}")] + ["-F", fmt] + list(extra)
        with Bg(impl, "sub", args, broker=b) as s:
            helper_pub(b, ["-V", "5", "-q", "1", "-t", f"{p}/empty", "-n", "-D", "publish", "content-type", "none"])
            return normalize(s.finish(), p, norm_extra)

    variants = [(f, ()) for f in FORMATS] + [("%j", ("--pretty",)), ("%J", ("--pretty",)), ("%j|%J", ("--pretty",)),
                                              ("%t:%p", ("-N",)), ("%x", ("-N", "-v"))]
    mask = [(rb"\d", b"9")]
    for b in BROKERS:
        got = {}
        for impl in IMPLS:
            p = new_prefix()
            publish_all(b, p)
            # %j and %J start with the reception time: masked like the time formats.
            got[impl] = [one(b, impl, p, fmt, extra, mask if re.search("%[jJ]", fmt) else ())
                         for fmt, extra in variants]
            got[impl] += [one(b, impl, p, fmt, (), mask) for fmt in TIME_FORMATS]
            clear_all(b, p)
        formats = [f"{fmt} {' '.join(extra)}" for fmt, extra in variants] + TIME_FORMATS
        for name, m, t in zip(formats, got["mosquitto"], got["tern"]):
            check_same(f"-F {name!r} [{b.name}]", m, t)
        assert len(formats) >= 30
        iso = got["tern"][len(variants)]
        assert re.fullmatch(rb"(9999-99-99T99:99:99\+9999\n){5}", iso.out), iso
        assert got["tern"][0] == Result(0, b"PFX/bin\nPFX/latin1\nPFX/json\nPFX/props\nPFX/empty\n", b""), got["tern"][0]
    # Bad formats are refused before connecting, as mosquitto_sub does.
    for fmt in BAD_FORMATS:
        compare_runs(f"bad -F {fmt!r}", "sub", ["-h", HOST, "-p", "1", "-t", "a", "-F", fmt])


# ---- MQTT 5 properties, sessions, unix sockets ------------------------------------------------

def test_properties():
    def scenario(b, impl, p):
        with Bg("mosquitto", "sub", conn(b) + ["-V", "5", "-t", f"{p}/w", "-C", "1", "-W", "5", "-F",
                                               "%t %p %C|%P|%F|%E"], broker=b) as will_watch:
            with Bg(impl, "sub", conn(b) + ["-V", "5", "-t", f"{p}/p", "-C", "1", "-v", "-F", "%t %p %C|%R|%D|%P|%S|%F",
                                           "-D", "connect", "user-property", "who", "me",
                                           "-D", "connect", "session-expiry-interval", "30",
                                           "-D", "subscribe", "subscription-identifier", "99",
                                           "-D", "subscribe", "user-property", "s", "1",
                                           "-D", "will", "content-type", "text/will", "-D", "will", "user-property",
                                           "wk", "wv", "--will-topic", f"{p}/w", "--will-payload", "gone",
                                           "-D", "disconnect", "session-expiry-interval", "0",
                                           "-i", f"{p}-props"], broker=b) as s:
                r = run(impl, "pub", conn(b) + ["-t", f"{p}/p", "-m", "payload", "-q", "1",
                                                "-D", "publish", "content-type", "text/plain",
                                                "-D", "publish", "response-topic", f"{p}/rt",
                                                "-D", "publish", "correlation-data", "c0rr",
                                                "-D", "publish", "payload-format-indicator", "1",
                                                "-D", "publish", "user-property", "a", "b",
                                                "-D", "publish", "message-expiry-interval", "3600",
                                                "-D", "connect", "receive-maximum", "5",
                                                "-D", "disconnect", "reason-string", "bye"])
                got = s.finish()
            will_watch.kill()
        return [r, got]
    res = compare(BROKERS, scenario, "-D properties")
    for r in res.values():
        assert r[1].out == b"PFX/p payload text/plain|PFX/rt|c0rr|a:b|99|1\n", r[1]


def test_persistent_sessions():
    # -x alone keeps clean start on: the next connection starts afresh, so nothing waits.
    for v, opts, kept in (("311", ["-c"], True), ("5", ["-c"], True), ("5", ["-c", "-x", "60"], True),
                          ("5", ["-x", "60"], False)):
        def scenario(b, impl, p):
            sid = f"{p}-sess"
            first = run(impl, "sub", conn(b) + ["-V", v, "-q", "1", "-t", f"{p}/s", "-i", sid, "-E", "-d"] + opts)
            helper_pub(b, ["-t", f"{p}/s", "-m", "while away", "-q", "1"])
            again = run(impl, "sub", conn(b) + ["-V", v, "-q", "1", "-t", f"{p}/s", "-i", sid, "-C", "1", "-W",
                                                "3" if kept else "1",
                                                "-v", "-d"] + opts)
            # -x 0 / clean start: end the session.
            run(impl, "sub", conn(b) + ["-V", v, "-t", f"{p}/s", "-i", sid, "-E"])
            return [first, again]
        res = compare(BROKERS, scenario, f"session -V {v} {opts}")
        for r in res.values():
            assert (r[1].rc == 0 and b"PFX/s while away\n" in r[1].out) if kept else r[1].rc == 27, r


def test_unix_socket():
    def scenario(b, impl, p):
        with Bg(impl, "sub", ["--unix", b.socket, "-t", f"{p}/u", "-C", "1", "-v", "-d"], broker=b) as s:
            r = run(impl, "pub", ["--unix", b.socket, "-t", f"{p}/u", "-m", "over a unix socket", "-d"])
            return [r, s.finish()]
    res = compare([MOSQ_B], scenario, "--unix")
    assert b"PFX/u over a unix socket\n" in res["mosquitto"][1].out
    compare_runs("--unix missing", "pub", ["--unix", os.path.join(WORK, "nothing.sock"), "-t", "a", "-m", "b"])


# ---- rr -----------------------------------------------------------------------------------------

def responder(b, p, answer_args):
    """Answers one request on p/req: mosquitto_sub prints the response topic, mosquitto_pub answers."""
    def work():
        r = run("mosquitto", "sub", conn(b) + ["-V", "5", "-t", f"{p}/req", "-C", "1", "-W", "10", "-F", "%R"])
        topic = r.out.decode().strip()
        if topic:
            run("mosquitto", "pub", conn(b) + ["-V", "5", "-t", topic] + answer_args)
    t = threading.Thread(target=work, daemon=True)
    before = b.count(r"Sending SUBACK to")
    t.start()
    deadline = time.time() + 10
    while b.count(r"Sending SUBACK to") <= before and time.time() < deadline:
        time.sleep(0.02)
    return t


def test_rr():
    cases = [
        (["-m", "question", "-v"], ["-m", "answer", "-q", "1"]),
        (["-m", "question", "-d", "-q", "1"], ["-m", "answer", "-q", "1", "-D", "publish", "correlation-data", "id-1"]),
        (["-m", "question", "-q", "2", "-d", "-F", "%t|%p|%D|%q"], ["-m", "answer", "-q", "2", "-D", "publish",
                                                                     "correlation-data", "id-2"]),
        (["-n", "-N"], ["-m", "no newline"]),
        (["-m", "q", "-D", "publish", "correlation-data", "c1", "-D", "publish", "user-property", "k", "v"],
         ["-m", "with properties"]),
    ]
    for args, answer in cases:
        def scenario(b, impl, p):
            t = responder(b, p, answer)
            r = run(impl, "rr", conn(b) + ["-t", f"{p}/req", "-e", f"{p}/resp"] + args)
            t.join(10)
            return r
        res = compare(BROKERS, scenario, f"rr {args}")
        for r in res.values():
            assert r.rc == 0, r

    def timeout_scenario(b, impl, p):
        return [run(impl, "rr", conn(b) + ["-t", f"{p}/req", "-e", f"{p}/resp", "-m", "x", "-W", "1", "-d"]),
                run(impl, "rr", conn(b) + ["-t", f"{p}/req", "-e", f"{p}/resp", "-m", "x", "-W", "1", "--quiet"]),
                run(impl, "rr", conn(b) + ["-t", f"{p}/req", "-e", f"{p}/resp", "-m", "x", "-W", "1", "-V", "311"])]
    res = compare(BROKERS, timeout_scenario, "rr -W")
    for r in res.values():
        assert [x.rc for x in r] == [27, 27, 27] and r[0].err == b"Timed out\n" and r[1].err == b"", r


# ---- failures and exit codes --------------------------------------------------------------------

def test_failure_exit_codes():
    closed = free_port()
    m = MOSQ_B
    auth = ["-h", HOST, "-p", str(m.auth_port)]
    table = [
        ("bad option", "pub", ["--nonsense"]),
        ("bad qos", "sub", ["-t", "a", "-q", "3"]),
        ("rr without -e", "rr", ["-t", "a", "-m", "x"]),
        ("pub without message", "pub", ["-t", "a"]),
        ("-R with --retained-only", "sub", ["-t", "a", "-R", "--retained-only"]),
        ("nothing listening", "pub", ["-h", HOST, "-p", str(closed), "-t", "a", "-m", "x"]),
        ("nothing listening sub", "sub", ["-h", HOST, "-p", str(closed), "-t", "a"]),
        ("nothing listening rr", "rr", ["-h", HOST, "-p", str(closed), "-t", "a", "-e", "b", "-m", "x"]),
        ("nothing listening quiet", "sub", ["-h", HOST, "-p", str(closed), "-t", "a", "--quiet"]),
        ("unknown host", "pub", ["-h", "no-such-host.invalid", "-t", "a", "-m", "x"]),
        ("unknown host sub", "sub", ["-h", "no-such-host.invalid", "-t", "a"]),
        ("bind address not local", "pub", ["-h", HOST, "-p", str(m.port), "-A", "192.0.2.123", "-t", "a", "-m", "x"]),
        ("anonymous refused 3.1.1", "pub", auth + ["-t", "a", "-m", "x"]),
        ("anonymous refused 5", "pub", auth + ["-t", "a", "-m", "x", "-V", "5"]),
        ("anonymous refused sub 3.1.1", "sub", auth + ["-t", "a"]),
        ("anonymous refused sub 5 -d", "sub", auth + ["-t", "a", "-V", "5", "-d"]),
        ("anonymous refused rr", "rr", auth + ["-t", "a", "-e", "b", "-m", "x"]),
        ("anonymous refused quiet", "pub", auth + ["-t", "a", "-m", "x", "--quiet"]),
        ("bad password", "pub", auth + ["-t", "a", "-m", "x", "-u", USER, "-P", "wrong"]),
        ("bad password 5", "sub", auth + ["-t", "a", "-u", USER, "-P", "wrong", "-V", "5"]),
        ("good password", "pub", auth + ["-t", "a", "-m", "x", "-u", USER, "-P", PASSWORD, "-d"]),
        ("-W timeout", "sub", ["-h", HOST, "-p", str(m.port), "-t", "nothing/here", "-W", "1"]),
        ("-f missing", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-f", "/nonexistent/file"]),
        ("-f directory", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-f", WORK]),
        ("empty -i", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-m", "x", "-i", ""]),
        ("-P without -u", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-m", "x", "-P", "pw"]),
        ("connect property on 3.1.1", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-m", "x", "-D", "connect",
                                              "user-property", "a", "b", "-V", "311"]),
        ("will property on 3.1.1", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-m", "x", "-D", "will",
                                           "user-property", "a", "b", "--will-topic", "w", "-V", "311"]),
        ("empty topic", "pub", ["-h", HOST, "-p", str(m.port), "-t", "", "-m", "x"]),
        ("empty topic rr", "rr", ["-h", HOST, "-p", str(m.port), "-t", "", "-e", "r", "-m", "x"]),
        ("port 0 is a unix socket", "pub", ["-h", HOST, "-p", "0", "-t", "a", "-m", "x"]),
    ]
    for label, tool, args in table:
        if label == "pub without message":
            # The usage printed with it is Tern's own text (docs/tools-options.md).
            mr, t = run("mosquitto", tool, args), run("tern", tool, args)
            check_same(label, (mr.rc, mr.err), (t.rc, t.err))
            assert t.out.startswith(b"tern pub is a simple MQTT client"), t.out[:200]
            continue
        compare_runs(label, tool, args)
    compare_runs("-s with empty stdin", "pub", ["-h", HOST, "-p", str(m.port), "-t", "a", "-s"], stdin=b"")

    # Every CONNACK refusal, from the fake broker.
    for code in (1, 2, 3, 4, 5, 6):
        with FakeBroker(code=code) as fake:
            a = ["-h", HOST, "-p", str(fake.port), "-d"]
            compare_runs(f"CONNACK {code}", "pub", a + ["-t", "a", "-m", "x"])
            compare_runs(f"CONNACK {code} sub", "sub", a + ["-t", "a"])
            compare_runs(f"CONNACK {code} rr", "rr", a + ["-t", "a", "-e", "b", "-m", "x", "-V", "311"])
    for code in (0x80, 0x81, 0x82, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A,
                 0x9B, 0x9C, 0x9D, 0x9F, 0xA3):
        with FakeBroker(code=code, v5=True) as fake:
            a = ["-h", HOST, "-p", str(fake.port), "-V", "5"]
            t = compare_runs(f"CONNACK 0x{code:02x}", "pub", a + ["-t", "a", "-m", "x"])
            assert t.rc == code, t
            compare_runs(f"CONNACK 0x{code:02x} sub", "sub", a + ["-t", "a", "-d"])
            compare_runs(f"CONNACK 0x{code:02x} rr", "rr", a + ["-t", "a", "-e", "b", "-m", "x"])
    # The server closes before CONNACK: pub and rr report a lost connection.
    with FakeBroker(mode="close") as fake:
        for tool, extra in (("pub", ["-m", "x"]), ("rr", ["-e", "b", "-m", "x"])):
            compare_runs(f"closed before CONNACK {tool}", tool, ["-h", HOST, "-p", str(fake.port), "-t", "a", "-d"] + extra)
    with FakeBroker(mode="noconnack") as fake:
        compare_runs("no CONNACK -W sub", "sub", ["-h", HOST, "-p", str(fake.port), "-t", "a", "-W", "1"])
        compare_runs("no CONNACK -W rr", "rr", ["-h", HOST, "-p", str(fake.port), "-t", "a", "-e", "b", "-m", "x",
                                                "-W", "1"])


def test_tls_and_psk():
    m = MOSQ_B
    tls = ["-h", "localhost", "-p", str(m.tls_port)]
    psk = ["-h", HOST, "-p", str(m.psk_port)]
    for tool, extra in (("pub", ["-t", "a", "-m", "x"]), ("sub", ["-t", "a", "-E"])):
        compare_runs(f"TLS {tool}", tool, tls + ["--cafile", CERTS.ca, "-d"] + extra)
        compare_runs(f"TLS by IP {tool}", tool, ["-h", HOST, "-p", str(m.tls_port), "--cafile", CERTS.ca] + extra)
        compare_runs(f"TLS 1.3 {tool}", tool, tls + ["--cafile", CERTS.ca, "--tls-version", "tlsv1.3"] + extra)
        compare_runs(f"PSK {tool}", tool, psk + ["--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY, "-d"] + extra)
        # TLS against a plain MQTT listener: the handshake dies in the network loop.
        compare_runs(f"TLS to plain {tool}", tool, ["-h", HOST, "-p", str(m.port), "--cafile", CERTS.ca, "-d"] + extra)
        # Verification and PSK failures: libmosquitto reports them from mosquitto_connect or from its
        # loop depending on timing (both measured on 2.0.11); Tern always gives the first.
        either = {Result(1, b"", b"Unable to connect (A TLS error occurred.).\n"),
                  Result(8, b"", b"Error: A TLS error occurred.\n")}
        compare_runs(f"TLS wrong CA {tool}", tool, tls + ["--cafile", CERTS.other] + extra, accept=either)
        compare_runs(f"PSK wrong key {tool}", tool, psk + ["--psk", "00" + PSK_KEY[2:], "--psk-identity",
                                                           PSK_IDENTITY] + extra, accept=either)
        compare_runs(f"TLS missing CA file {tool}", tool, tls + ["--cafile", os.path.join(WORK, "none.crt")] + extra)
        compare_runs(f"TLS bad version {tool}", tool, tls + ["--cafile", CERTS.ca, "--tls-version", "tlsv1"] + extra)
    compare_runs("TLS wrong CA rr", "rr", tls + ["--cafile", CERTS.other, "-t", "a", "-e", "b", "-m", "x"],
                 accept={Result(8, b"", b"Error: A TLS error occurred.\n"),
                         Result(1, b"", b"Unable to connect (A TLS error occurred.).\n")})
    compare_runs("TLS wrong CA -d", "pub", tls + ["--cafile", CERTS.other, "-t", "a", "-m", "x", "-d"],
                 accept={Result(1, b"OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed\n",
                                b"Unable to connect (A TLS error occurred.).\n"),
                         Result(8, b"Client (null) sending CONNECT\nOpenSSL Error[0]: error:0A000086:SSL routines::"
                                   b"certificate verify failed\n", b"Error: A TLS error occurred.\n")})
    # A message over TLS end to end.
    p = new_prefix()
    with Bg("tern", "sub", tls + ["--cafile", CERTS.ca, "-t", f"{p}/tls", "-C", "1", "-v"], broker=m) as s:
        ok(run("tern", "pub", tls + ["--cafile", CERTS.ca, "-t", f"{p}/tls", "-m", "secret"]))
        assert s.finish().out == f"{p}/tls secret\n".encode()


# ---- help ---------------------------------------------------------------------------------------

def test_help():
    for tool in ("pub", "sub", "rr"):
        h = subprocess.run([TERN, "help", tool], capture_output=True, timeout=10, env=ENV)
        u = subprocess.run([TERN, tool, "--help"], capture_output=True, timeout=10, env=ENV)
        assert h.returncode == 0 and h.stdout and h.stdout == u.stdout and u.returncode == 1, (h, u)
    top = subprocess.run([TERN, "help"], capture_output=True, text=True, timeout=10).stdout
    for tool in ("pub", "sub", "rr"):
        assert re.search(rf"^  {tool} ", top, re.M), top


TESTS = [
    test_help,
    test_lecture_commands,
    test_qos_and_versions_debug,
    test_connect_flags_on_the_wire,
    test_retained_messages,
    test_will,
    test_pub_payload_sources,
    test_pub_stdin_line_window,
    test_pub_stdin_line_many,
    test_pub_v5_refusals,
    test_sub_counting_and_filters,
    test_sub_remove_retained,
    test_sub_remove_retained_with_count,
    test_sub_denied_subscriptions,
    test_server_limits,
    test_client_ids,
    test_sub_output_is_prompt,
    test_sub_random_filter,
    test_sub_signals,
    test_sub_reconnects,
    test_output_formats,
    test_properties,
    test_persistent_sessions,
    test_unix_socket,
    test_rr,
    test_failure_exit_codes,
    test_tls_and_psk,
]

if __name__ == "__main__":
    setup()
    try:
        run_tests(TESTS)
    finally:
        teardown()
