#!/usr/bin/python3
"""A full store: the broker refuses new persistent work and recovers by itself.

1. A real full disk: a 4 MiB tmpfs in a private mount namespace (`unshare -m --propagation private`,
   as root), with a 2 MiB filler file in it (more than the store holds when full, so that deleting it
   leaves room for RocksDB to flush what it has). A holder process keeps the namespace (and the tmpfs)
   alive, and the broker runs inside it with `nsenter -m`, so it can be killed and restarted on the
   same store. The test fails, not skips, if the tmpfs cannot be mounted. Once full, the rest of the
   tmpfs is taken too and the broker is left idle for 12 s: it must stay up.
2. `persistence_max_size 300k` on an ordinary directory.

In both: QoS 1 messages with random payloads (compression cannot help) go to offline persistent
subscribers until the broker refuses them. Then, while full: a 5.0 publisher gets PUBACK/PUBREC
0x97, a 3.1.1 publisher is disconnected without PUBACK, a clean-session subscriber still gets QoS 0
and QoS 1 messages, a new persistent session gets CONNACK 0x97 (5.0) or 0x03 (3.1.1), a persistent
session can come back (its SUBSCRIBE gets SUBACK 0x97) and an offline subscriber can drain its queue,
and the log says so once. A PUBACK 0x00 is never given for a message
that is missing later (after a drain or a kill -9 and restart). When space returns (the filler
deleted; the subscribers drained) the broker takes persistent work again by itself within 15 s.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402

EXPIRY = conflib.p_u32(0x11, 3600)
FULL_LOG = r"The store at .* is full"
PAYLOAD = 6000


def tmpdir(prefix):
    # Open to all: run as root, Tern drops privileges after binding and writes the store as that user.
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o777)
    return d


class NsBroker(Broker):
    """`tern broker` started behind a command prefix (nsenter into the tmpfs's mount namespace); as
    ternlib.Broker otherwise (port from the log, stop by PID)."""

    def __init__(self, config, prefix=(), workers=4):
        self.dir = tmpdir("tern-test-")
        self.conf = os.path.join(self.dir, "tern.conf")
        self.store = None
        with open(self.conf, "w") as f:
            f.write(f"workers {workers}\n" + config)
        self.log_path = os.path.join(self.dir, "broker.log")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(list(prefix) + [TERN, "broker", "-c", self.conf, "-p", "0", "-v"],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.port is None:
            m = re.search(r"Opening ipv4 listen socket on port (\d+)\.", self.log())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise RuntimeError("tern exited early:\n" + self.log())
            else:
                time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise RuntimeError("tern did not start:\n" + self.log())
        self.wait_log(r"Store .* mode\): restored", timeout=15)


class Tmpfs:
    """A size-limited tmpfs at `mnt` in a private mount namespace, with a filler file of `filler`
    bytes (random) in it; kept alive by a holder process (the only PID it starts)."""

    def __init__(self, mnt, size="4m", filler=2 << 20):
        self.mnt = mnt
        script = (f"mount -t tmpfs -o size={size},mode=1777 tmpfs {mnt} && "
                  f"head -c {filler} /dev/urandom > {mnt}/filler && echo mounted && exec sleep 600")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "mounted":
            self.proc.wait(timeout=10)
            raise AssertionError(f"cannot mount a tmpfs in a private mount namespace (needs root): "
                                 f"{line}{self.proc.stdout.read()}")
        self.root = f"/proc/{self.proc.pid}/root{mnt}"  # the tmpfs, seen from outside its namespace
        assert os.path.exists(os.path.join(self.root, "filler")), "filler not in the tmpfs"
        assert not os.path.exists(os.path.join(mnt, "filler")), "the tmpfs is visible outside its namespace"

    def prefix(self):
        return ["nsenter", "-t", str(self.proc.pid), "-m"]

    def top_up(self):
        """Takes whatever space is left, so that nothing at all can be written."""
        with open(os.path.join(self.root, "topup"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(os.urandom(4096))
            except OSError:
                pass

    def free(self):
        for name in ("filler", "topup"):
            if os.path.exists(os.path.join(self.root, name)):
                os.unlink(os.path.join(self.root, name))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def connect_v5(port, cid, persistent=True, clean=True):
    """(client, CONNACK or None when the connection was closed)."""
    c = Client(port)
    c.send(conflib.connect5(cid, clean=clean, props=EXPIRY if persistent else b""))
    try:
        return c, c.recv()
    except EOFError:
        return c, None


def connect_v4(port, cid, clean):
    c = Client(port)
    c.send(connect(cid, version=4, clean=clean))
    try:
        return c, c.recv()
    except EOFError:
        return c, None


def store_lines(b, cid):
    """The broker's log lines about `cid` and the store."""
    return "; ".join(l for l in b.log().splitlines() if cid in l and "store" in l)


def seq_of(payload):
    return int(payload.split(b"|", 1)[0])


class Scenario:
    def __init__(self, broker_factory, free_space, label, stay_full=None):
        self.make = broker_factory
        self.free_space = free_space
        self.stay_full = stay_full
        self.label = label
        self.brokers = []
        self.seq = 0
        self.acked = set()  # seqs acknowledged with PUBACK 0x00 (persistent subscribers must get them)
        self.refused = set()
        self.notes = []

    def start(self):
        b = self.make()
        self.brokers.append(b)
        return b

    def payload(self):
        self.seq += 1
        return f"{self.seq}|".encode() + os.urandom(PAYLOAD)

    def pub5(self, pub, topic, qos=1, retain=False):
        """Publishes one numbered message from the 5.0 client; returns the reason code of the PUBACK
        or PUBREC (completing QoS 2 on success) or None for QoS 0."""
        data = self.payload()
        pid = self.seq % 65535 + 1
        pub.send(conflib.publish5(topic, data, qos=qos, pid=pid, retain=retain))
        if qos == 0:
            return None
        a = pub.recv(timeout=10)
        want = 0x40 if qos == 1 else 0x50
        assert a is not None and a[0] == want and int.from_bytes(a[2:4], "big") == pid, \
            f"expected {'PUBACK' if qos == 1 else 'PUBREC'} {pid}, got {a.hex() if a else a}"
        code = a[4] if a[1] >= 3 else 0
        if qos == 2 and code < 0x80:
            pub.send(ack("pubrel", pid))
            comp = pub.recv(timeout=10)
            assert comp is not None and comp[0] == 0x70, comp
        if topic.startswith("df/"):
            (self.acked if code < 0x80 else self.refused).add(self.seq)
        return code

    def refill(self):
        """Publishes until the broker refuses twice in a row, a little over a second apart: a store
        at persistence_max_size may make room by compacting (at most once a second after a write),
        so the checks that follow run against a store that stays full."""
        for _ in range(50):
            while self.pub5(self.pub, "df/x") != 0x97:
                pass
            time.sleep(1.2)
            if self.pub5(self.pub, "df/x") == 0x97:
                return
        raise AssertionError("the store never stayed full")

    def drain(self, port, cid, version, present=True):
        """Connects a persistent subscriber and reads everything queued; returns the seqs."""
        if version == 5:
            c, ca = connect_v5(port, cid, clean=False)
            assert ca and ca[:4] == bytes([0x20, ca[1], 1 if present else 0, 0]), \
                f"{cid}: CONNACK {ca.hex() if ca else ca}"
        else:
            c, ca = connect_v4(port, cid, clean=False)
            assert ca == connack(present), f"{cid}: CONNACK {ca.hex() if ca else ca}"
        return [seq_of(p) for p in drain_qos1(c, version, idle=1.5)]

    def check_drained(self, got, who, since=0):
        missing = sorted(s for s in self.acked if s > since and s not in set(got))
        self.check(not missing, f"{who}: {len(missing)} messages acknowledged with PUBACK 0x00 are missing: "
                                f"{missing[:30]}")
        leaked = sorted(set(got) & self.refused)
        if leaked:
            self.notes.append(f"{who}: {len(leaked)} messages refused with 0x97 were delivered anyway: {leaked[:10]}")

    def check(self, cond, msg):
        """A check that lets the scenario go on: every failure is reported at the end."""
        if not cond:
            self.errors.append(msg)
        return cond

    def alive(self, b, when):
        if not b.alive():
            lines = [l for l in b.log().splitlines() if not re.search(r"PUBLISH|PUBACK|PUBREC|PUBREL|PUBCOMP", l)]
            raise AssertionError(f"the broker died {when}; its last log lines:\n    " + "\n    ".join(lines[-8:])
                                 + "".join(f"\n  also: {e}" for e in self.errors))

    def run(self):
        self.errors = []
        t0 = time.time()
        b = self.start()
        # Offline persistent subscribers (5.0 and 3.1.1) and an online clean-session one.
        c, ca = connect_v5(b.port, "df-off5", clean=True)
        assert ca[3] == 0, ca.hex()
        c.send(conflib.subscribe5(1, [("df/#", 1)]))
        assert c.recv() == conflib.suback5(1, 1)
        c.send(DISCONNECT)
        c.close()
        c, ca = connect_v4(b.port, "df-off3", clean=False)
        assert ca == connack(False), ca.hex()
        c.send(subscribe(1, [("df/#", 1)]))
        assert c.recv() == bytes([0x90, 3, 0, 1, 1])
        c.send(DISCONNECT)
        c.close()
        live, ca = connect_v4(b.port, "df-live", clean=True)
        assert ca == connack(False)
        live.send(subscribe(1, [("live/#", 1)]))
        assert live.recv() == bytes([0x90, 3, 0, 1, 1])
        pub, ca = connect_v5(b.port, "df-pub5", persistent=False)
        assert ca[3] == 0, ca.hex()
        self.pub = pub

        # Fill until the broker refuses.
        n = 0
        while True:
            code = self.pub5(pub, "df/x")
            n += 1
            if code == 0x97:
                break
            assert code == 0, f"PUBACK 0x{code:02x} while filling"
            assert n < 2000, "the store never filled up"
        filled = len(self.acked)
        assert filled > 10, f"refused after {filled} messages only"
        b.wait_log(FULL_LOG)
        fill_time = time.time() - t0

        # While full: refused, three times over.
        self.refill()
        for i in range(3):
            code = self.pub5(pub, "df/x")
            self.check(code == 0x97, f"PUBACK 0x{code:02x} for a persistent message while the store is full")
        code = self.pub5(pub, "df/x", qos=2)
        self.check(code == 0x97, f"PUBREC 0x{code:02x} for a persistent QoS 2 message while the store is full")
        code = self.pub5(pub, "df/retained", qos=1, retain=True)
        self.check(code == 0x97, f"PUBACK 0x{code:02x} for a retained message while the store is full")
        # A 3.1.1 publisher cannot be told: it is disconnected without PUBACK (QoS 1) or PUBREC (QoS 2).
        for qos in (1, 2):
            p3, ca = connect_v4(b.port, f"df-pub3-q{qos}", clean=True)
            assert ca == connack(False), ca.hex()
            p3.send(publish("df/x", self.payload(), qos=qos, packet_id=7))
            self.refused.add(self.seq)
            try:
                got = p3.expect_closed(5.0)
                self.check(not got, f"3.1.1 QoS {qos} publisher got {[g.hex() for g in got]} while the store is full")
            except AssertionError as e:
                self.check(False, f"3.1.1 QoS {qos} publisher not disconnected while the store is full: {e}")
            p3.close()
        # Messages for clean sessions flow.
        for qos in (0, 1):
            code = self.pub5(pub, "live/x", qos=qos)
            self.check(code in (None, 0), f"PUBACK {code!r} for a QoS 1 message to a clean session only")
            p = live.recv(timeout=5)
            if self.check(p is not None and p[0] >> 4 == 3,
                          f"clean-session subscriber got {p.hex() if p else p} instead of a QoS {qos} message"):
                d = conflib.parse_publish(p)
                self.check(seq_of(d["payload"]) == self.seq and d["qos"] == qos, f"clean-session subscriber got {d}")
                if qos:
                    live.send(ack("puback", d["pid"]))
        # New persistent sessions are refused; a clean one is not.
        self.refill()
        c5, ca = connect_v5(b.port, "df-new5")
        self.check(ca is not None and ca[:4] == bytes([0x20, ca[1], 0, 0x97]),
                   f"new 5.0 persistent session while full: CONNACK {ca.hex() if ca else ca}, expected 0x97")
        c5.close()
        c3, ca = connect_v4(b.port, "df-new3", clean=False)
        self.check(ca == connack(False, 3),
                   f"new 3.1.1 persistent session while full: CONNACK {ca.hex() if ca else ca}, expected 0x03")
        c3.close()
        c, ca = connect_v5(b.port, "df-clean5", persistent=False)
        self.check(ca is not None and ca[3] == 0, f"a 5.0 clean session while full: CONNACK {ca.hex() if ca else ca}")
        c.close()
        # An existing persistent session comes back: its SUBSCRIBE is refused.
        self.refill()
        c, ca = connect_v5(b.port, "df-off5", clean=False)
        if self.check(ca is not None and ca[2:4] == bytes([1, 0]),
                      f"an existing 5.0 persistent session coming back while the store is full: CONNACK "
                      f"{ca.hex() if ca else 'none (connection closed)'}; log: {store_lines(b, 'df-off5')}"):
            c.send(conflib.subscribe5(2, [("df2/#", 1)]))
            try:
                got = c.recv(timeout=5)
                while got is not None and got[0] >> 4 == 3:  # its queue starts coming: not acknowledged here
                    got = c.recv(timeout=5)
                self.check(got == conflib.suback5(2, 0x97),
                           f"SUBSCRIBE of a persistent session while full: {got.hex() if got else got}, expected "
                           f"SUBACK 0x97")
                c.send(DISCONNECT)
            except EOFError:
                self.check(False, "an existing 5.0 persistent session coming back while the store is full got "
                                  "CONNACK 0x00 (session present) and was then disconnected before its SUBACK: "
                                  + store_lines(b, "df-off5"))
        c.close()
        self.alive(b, "while the store was full")
        full_lines = re.findall(FULL_LOG + ".*", b.log())
        self.check(len(full_lines) == 1, f"the full store was logged {len(full_lines)} times, expected once")

        # The 3.1.1 subscriber drains while full: every acknowledged message is there.
        try:
            got = self.drain(b.port, "df-off3", 4)
            self.check_drained(got, "df-off3 (drained while full)")
        except (EOFError, AssertionError) as e:
            self.check(False, f"df-off3 could not drain while the store is full: {e!r}; log: "
                       + store_lines(b, "df-off3"))
        drained3 = self.seq
        self.alive(b, "while a subscriber drained with the store full")
        if self.stay_full:
            self.stay_full(self, b)

        # Space returns; the broker notices by itself.
        drained5 = self.free_space(self, b)
        t1 = time.time()
        deadline = t1 + 15
        while True:
            self.alive(b, "after space returned")
            code = self.pub5(pub, "df/x")
            if code == 0:
                break
            assert code == 0x97, f"PUBACK 0x{code:02x}"
            if time.time() > deadline:
                raise AssertionError("the broker still refuses persistent messages 15 s after space returned "
                                     "(PUBACK 0x97)" + "".join(f"\n  also: {e}" for e in self.errors))
            time.sleep(0.5)
        recovered_in = time.time() - t1
        for i in range(5):
            code = self.pub5(pub, "df/x")
            self.check(code == 0, f"PUBACK 0x{code:02x} after the store recovered")
        c5, ca = connect_v5(b.port, "df-new5")
        self.check(ca is not None and ca[3] == 0,
                   f"new 5.0 persistent session after recovery: CONNACK {ca.hex() if ca else ca}")
        c5.send(DISCONNECT)
        c5.close()
        pub.send(DISCONNECT)
        pub.close()
        live.close()
        self.alive(b, "after the store recovered")

        # kill -9 and restart: nothing acknowledged is missing.
        b.stop(signal.SIGKILL)
        b = self.start()
        m = b.wait_log(r"restored (\d+) sessions, (\d+) queued")
        self.check(int(m.group(1)) == 3, f"restored {m.group(1)} sessions, expected 3 (df-off5, df-off3, df-new5)")
        got5 = self.drain(b.port, "df-off5", 5)
        self.check_drained(got5, "df-off5 (after kill -9 and restart)", since=drained5)
        got3 = self.drain(b.port, "df-off3", 4)
        self.check_drained(got3, "df-off3 (after kill -9 and restart)", since=drained3)
        b.stop()
        print(f"  {self.label}: full after {filled} messages of {PAYLOAD} bytes ({fill_time:.1f} s); "
              f"{len(self.refused)} refused; took persistent work again {recovered_in:.1f} s after space returned; "
              f"{len(got5)} delivered to df-off5 after kill -9 and restart ({len(self.acked)} acknowledged)")
        for n in self.notes:
            print(f"  note: {n}")
        if self.errors:
            raise AssertionError(f"{len(self.errors)} problems:\n  " + "\n  ".join(self.errors))

    def cleanup(self, ok):
        for b in self.brokers:
            b.stop(signal.SIGKILL)
            if ok:
                shutil.rmtree(b.dir, ignore_errors=True)


def run_scenario(sc, extra_cleanup):
    ok = False
    try:
        sc.run()
        ok = True
    except Exception as e:
        logs = ", ".join(b.log_path for b in sc.brokers)
        raise AssertionError(f"{e}\n  broker logs: {logs}") from (None if isinstance(e, AssertionError) else e)
    finally:
        sc.cleanup(ok)
        extra_cleanup(ok)


def test_full_disk_tmpfs():
    mnt = tmpdir("tern-diskfull-")
    try:
        fs = Tmpfs(mnt)
    except AssertionError:
        os.rmdir(mnt)
        raise
    conf = f"persistence_location {mnt}\n"

    def free(sc, b):
        fs.free()  # the filler goes
        return 0

    def stay_full(sc, b):
        # Nothing at all can be written for a while (RocksDB's own recovery polls the free space every
        # 5 s and writes to its info log): the broker goes on refusing, and stays up.
        fs.top_up()
        deadline = time.time() + 12
        while time.time() < deadline:
            sc.alive(b, "while the disk was full (nothing could be written) and the broker idle")
            time.sleep(0.5)
        code = sc.pub5(sc.pub, "df/x")
        sc.check(code == 0x97, f"PUBACK 0x{code:02x} after 12 s on a full disk")

    sc = Scenario(lambda: NsBroker(conf, fs.prefix()), free, "tmpfs 4 MiB", stay_full)

    def done(ok):
        fs.close()
        shutil.rmtree(mnt, ignore_errors=True)

    run_scenario(sc, done)


def test_persistence_max_size():
    d = tmpdir("tern-maxsize-")
    conf = f"persistence_location {d}\npersistence_max_size 300k\n"

    def free(sc, b):
        # Draining the other subscriber too leaves its messages unreferenced: erased and compacted away.
        got = sc.drain(b.port, "df-off5", 5)
        sc.check_drained(got, "df-off5 (drained at the bound)")
        return sc.seq

    sc = Scenario(lambda: NsBroker(conf), free, "persistence_max_size 300k")

    def done(ok):
        if ok:
            shutil.rmtree(d, ignore_errors=True)

    run_scenario(sc, done)


if __name__ == "__main__":
    run_tests([test_full_disk_tmpfs, test_persistence_max_size])
