#!/usr/bin/python3
"""The embedded store (docs/durability.md): sessions (subscriptions, queued and in-flight messages,
inbound QoS 2 ids) and retained messages survive a graceful restart and a kill -9 alike; Mosquitto's
snapshot keys are accepted with a warning; a foreign or damaged store stops the broker with a clear
error. And Debian's own /etc/mosquitto/mosquitto.conf (its keys, with paths moved to a temporary
directory) starts Tern."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402

DEBIAN_CONF = """# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def tmpdir(prefix):
    # Open to all: run as root, Tern drops privileges to `user` (mosquitto or nobody) after binding
    # (it gives the store's own directory to that user first).
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o777)
    return d


def persistent_conf(d, extra=""):
    return f"persistence true\npersistence_location {d}/\n" + extra


STOPS = {"sigterm": signal.SIGTERM, "kill9": signal.SIGKILL}


def restored(b, sessions, retained):
    b.wait_log(rf"restored {sessions} sessions, .* and {retained} retained messages")


def pub_packet(p):
    """(topic, packet id or None, payload, first byte) of a 3.1.1 PUBLISH."""
    d = conflib.parse_publish(p)
    return d["topic"].decode(), d["pid"], d["payload"], p[0]


def test_restart_keeps_sessions_queues_and_retained(stop):
    d = tmpdir("tern-persist-")
    try:
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            assert sub.connect("keeper", clean=False) == connack(False)
            sub.send(subscribe(1, [("t/#", 1)]))
            assert sub.recv() == bytes([0x90, 3, 0, 1, 1])
            sub.send(DISCONNECT)
            sub.close()
            b.wait_log(r"Client keeper disconnected")
            pub = Client(b.port)
            pub.connect("pusher")
            pub.send(publish("r/1", "kept", qos=1, retain=True, packet_id=1))
            assert pub.recv() == ack("puback", 1)
            for i in range(3):
                pub.send(publish("t/x", f"m{i}", qos=1, packet_id=10 + i))
                assert pub.recv() == ack("puback", 10 + i)
            b.stop(STOPS[stop])  # acknowledged: kept whether the broker stops or is killed
        assert os.path.isdir(os.path.join(d, "tern-store")), "no store"
        with Broker(persistent_conf(d)) as b:
            restored(b, 1, 1)
            sub = Client(b.port)
            assert sub.connect("keeper", clean=False) == connack(True), "session not restored"
            got = [pub_packet(sub.recv()) for _ in range(3)]
            assert [g[2] for g in got] == [b"m0", b"m1", b"m2"], got
            assert all(g[0] == "t/x" and (g[3] >> 1) & 3 == 1 for g in got), got
            for g in got:
                sub.send(ack("puback", g[1]))
            sub.close()
            late = Client(b.port)
            late.connect("late")
            late.send(subscribe(1, [("r/#", 0)]))
            assert late.recv() == bytes([0x90, 3, 0, 1, 0])
            topic, _, payload, first = pub_packet(late.recv())
            assert (topic, payload, first & 1) == ("r/1", b"kept", 1), "retained message not restored"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_v5_properties_survive_restart(stop):
    """A queued message and a retained message with MQTT 5 properties come back with them."""
    d = tmpdir("tern-persist-props-")
    # In property id order, the order Tern forwards them in (only User Properties have an order
    # that must be kept [MQTT-3.3.2-18]).
    props = conflib.p_str(0x03, "text/plain") + conflib.p_user("k", "v") + conflib.p_user("k", "w")
    try:
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            sub.send(conflib.connect5("props-keeper", clean=False, props=conflib.p_u32(0x11, 3600)))
            assert sub.recv()[0] == 0x20
            sub.send(conflib.subscribe5(1, [("p/#", 1)]))
            assert sub.recv()[0] == 0x90
            sub.send(bytes([0xE0, 0]))
            sub.close()
            b.wait_log(r"Client props-keeper disconnected")
            pub = Client(b.port)
            pub.send(conflib.connect5("props-pusher"))
            assert pub.recv()[0] == 0x20
            pub.send(conflib.publish5("p/q", b"queued", qos=1, pid=1, props=props))
            assert pub.recv()[0] == 0x40
            pub.send(conflib.publish5("r/p", b"retained", qos=1, pid=2, retain=True, props=props))
            assert pub.recv()[0] == 0x40
            b.stop(STOPS[stop])
        with Broker(persistent_conf(d)) as b:
            restored(b, 1, 1)
            sub = Client(b.port)
            sub.send(conflib.connect5("props-keeper", clean=False, props=conflib.p_u32(0x11, 3600)))
            assert sub.recv()[0] == 0x20
            got = sub.recv()
            pid = conflib.parse_publish(got, version=5)["pid"]
            # A QoS 1 message from the store may have been sent before: DUP=1 [MQTT-3.3.1-1].
            assert got[0] == 0x3A, got.hex()
            assert bytes([0x32]) + got[1:] == conflib.publish5("p/q", b"queued", qos=1, pid=pid, props=props), got.hex()
            late = Client(b.port)
            late.send(conflib.connect5("props-late"))
            assert late.recv()[0] == 0x20
            late.send(conflib.subscribe5(1, [("r/#", 0)]))
            assert late.recv()[0] == 0x90
            assert late.recv() == conflib.publish5("r/p", b"retained", retain=True, props=props)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_inflight_resent_with_dup_after_restart(stop):
    """QoS 1 in flight comes back with DUP=1 (its packet id may differ: QoS 1 is not stored as sent);
    QoS 2 in flight comes back with its packet id, and after PUBREC as PUBREL."""
    d = tmpdir("tern-persist-")
    try:
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            sub.connect("flyer", clean=False)
            sub.send(subscribe(1, [("f", 1)]))
            sub.recv()
            sub.send(subscribe(2, [("g", 2)]))
            sub.recv()
            pub = Client(b.port)
            pub.connect("p")
            pub.send(publish("f", "unacked", qos=1, packet_id=5))
            assert pub.recv() == ack("puback", 5)
            topic, pid, payload, first = pub_packet(sub.recv())
            assert payload == b"unacked"
            pub.send(publish("g", "two", qos=2, packet_id=6))
            assert pub.recv() == ack("pubrec", 6)
            pub.send(ack("pubrel", 6))
            assert pub.recv() == ack("pubcomp", 6)
            _, pid_g, payload_g, _ = pub_packet(sub.recv())
            assert payload_g == b"two"
            pub.send(publish("g", "three", qos=2, packet_id=7))
            assert pub.recv() == ack("pubrec", 7)
            pub.send(ack("pubrel", 7))
            assert pub.recv() == ack("pubcomp", 7)
            _, pid_h, payload_h, _ = pub_packet(sub.recv())
            assert payload_h == b"three"
            sub.send(ack("pubrec", pid_h))
            assert sub.recv() == ack("pubrel", pid_h)
            # no PUBACK, no PUBREC for "two", no PUBCOMP for "three": all stay in flight
            b.stop(STOPS[stop])
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            assert sub.connect("flyer", clean=False) == connack(True)
            got = [sub.recv() for _ in range(3)]
            pubs = [pub_packet(g) for g in got if g[0] >> 4 == 3]
            rels = [g for g in got if g[0] >> 4 == 6]
            by_payload = {p[2]: p for p in pubs}
            assert set(by_payload) == {b"unacked", b"two"}, got
            assert all(p[3] & 0x08 for p in pubs), "resent PUBLISH must have DUP=1 [MQTT-4.4.0-1]"
            assert by_payload[b"two"][1] == pid_g, "a QoS 2 resend keeps its packet id"
            assert rels == [ack("pubrel", pid_h)], "after PUBREC, PUBREL is resent, not the PUBLISH"
            sub.send(ack("puback", by_payload[b"unacked"][1]))
            sub.send(ack("pubrec", pid_g))
            assert sub.recv() == ack("pubrel", pid_g)
            sub.send(ack("pubcomp", pid_g))
            sub.send(ack("pubcomp", pid_h))
            sub.send(DISCONNECT)
            sub.close()
            b.wait_log(r"Client flyer disconnected")
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            assert sub.connect("flyer", clean=False) == connack(True)
            assert sub.recv(timeout=0.5) is None, "completed flows came back"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_inbound_qos2_id_survives_restart(stop):
    d = tmpdir("tern-persist-")
    try:
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            sub.connect("q2sub", clean=False)
            sub.send(subscribe(1, [("q2", 2)]))
            sub.recv()
            sub.send(DISCONNECT)
            sub.close()
            pub = Client(b.port)
            pub.connect("q2pub", clean=False)
            pub.send(publish("q2", "once", qos=2, packet_id=7))
            assert pub.recv() == ack("pubrec", 7)
            # PUBREL never sent before the restart
            b.stop(STOPS[stop])
        with Broker(persistent_conf(d)) as b:
            pub = Client(b.port)
            assert pub.connect("q2pub", clean=False) == connack(True)
            pub.send(publish("q2", "once", qos=2, packet_id=7, dup=True))
            assert pub.recv() == ack("pubrec", 7), "held id answered with PUBREC [MQTT-4.3.3-9]"
            pub.send(ack("pubrel", 7))
            assert pub.recv() == ack("pubcomp", 7)
            sub = Client(b.port)
            assert sub.connect("q2sub", clean=False) == connack(True)
            topic, pid, payload, first = pub_packet(sub.recv())
            assert payload == b"once"
            sub.send(ack("pubrec", pid))
            assert sub.recv() == ack("pubrel", pid)
            sub.send(ack("pubcomp", pid))
            assert sub.recv(timeout=0.5) is None, "delivered twice"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_wills_across_a_restart(stop):
    """A delayed will pending when the broker stops keeps its due time; the will of a connection that
    was open when the broker stopped or was killed goes out when it starts again."""
    d = tmpdir("tern-persist-will-")
    try:
        with Broker(persistent_conf(d)) as b:
            watcher = Client(b.port)
            assert watcher.connect("will-watcher", clean=False) == connack(False)
            watcher.send(subscribe(1, [("wills/#", 1)]))
            watcher.recv()
            watcher.send(DISCONNECT)
            watcher.close()
            # Open at the stop: its will goes out at the next start (3.1.1 session, no delay).
            live = Client(b.port)
            assert live.connect("will-live", clean=False, will=("wills/live", "gone", 1, False)) == connack(False)
            # A 5.0 will with a 3 s delay, its connection lost before the stop: pending, not yet sent.
            late = Client(b.port)
            late.send(conflib.connect5("will-late", clean=False, props=conflib.p_u32(0x11, 3600),
                                       will=("wills/late", "later", 1, False), will_props=conflib.p_u32(0x18, 3)))
            assert late.recv()[0] == 0x20
            late.close()
            b.wait_log(r"Client will-late closed its connection")
            time.sleep(0.3)
            b.stop(STOPS[stop])
        started = time.time()
        with Broker(persistent_conf(d)) as b:
            watcher = Client(b.port)
            assert watcher.connect("will-watcher", clean=False) == connack(True)
            got = {}
            deadline = time.time() + 6
            while len(got) < 2 and time.time() < deadline:
                p = watcher.recv(timeout=max(0.1, deadline - time.time()))
                if p is None:
                    continue
                topic, pid, payload, _ = pub_packet(p)
                got[topic] = (payload, time.time() - started)
                watcher.send(ack("puback", pid))
            assert set(got) == {"wills/live", "wills/late"}, got
            assert got["wills/live"][0] == b"gone" and got["wills/live"][1] < 2.5, got
            assert got["wills/late"][0] == b"later", got
            assert 1.0 < got["wills/late"][1] < 5.5, f"the delayed will kept its delay: {got}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_expiry_across_a_restart():
    """Sessions and messages whose expiry passes while the broker is down are gone at start; the rest
    come back, a message with what is left of its Message Expiry Interval [MQTT-3.3.2-6]."""
    d = tmpdir("tern-persist-exp-")
    try:
        with Broker(persistent_conf(d)) as b:
            for cid, expiry in (("short-lived", 2), ("long-lived", 3600)):
                c = Client(b.port)
                c.send(conflib.connect5(cid, clean=False, props=conflib.p_u32(0x11, expiry)))
                assert c.recv()[0] == 0x20
                c.send(conflib.subscribe5(1, [("exp/#", 1)]))
                assert c.recv()[0] == 0x90
                c.send(bytes([0xE0, 0]))
                c.close()
                b.wait_log(rf"Client {cid} disconnected")
            pub = Client(b.port)
            pub.send(conflib.connect5("exp-pub"))
            assert pub.recv()[0] == 0x20
            pub.send(conflib.publish5("exp/a", b"brief", qos=1, pid=1, props=conflib.p_u32(0x02, 2)))
            assert pub.recv()[0] == 0x40
            pub.send(conflib.publish5("exp/b", b"lasting", qos=1, pid=2, props=conflib.p_u32(0x02, 100)))
            assert pub.recv()[0] == 0x40
            pub.send(conflib.publish5("exp/r", b"retained-brief", qos=1, pid=3, retain=True,
                                      props=conflib.p_u32(0x02, 2)))
            assert pub.recv()[0] == 0x40
            b.stop(signal.SIGKILL)
        time.sleep(3.2)
        with Broker(persistent_conf(d)) as b:
            b.wait_log(r"restored 1 sessions, 1 queued .* and 0 retained messages .*; [1-9]\d* expired records removed")
            c = Client(b.port)
            c.send(conflib.connect5("short-lived", clean=False, props=conflib.p_u32(0x11, 2)))
            assert c.recv()[2] == 0, "an expired session came back (session present)"
            c.close()
            c = Client(b.port)
            c.send(conflib.connect5("long-lived", clean=False, props=conflib.p_u32(0x11, 3600)))
            assert c.recv()[2] == 1, "session present"
            got = c.recv()
            m = conflib.parse_publish(got, version=5)
            assert m["payload"] == b"lasting", m
            assert c.recv(timeout=0.5) is None, "an expired message was delivered"
            left = got.find(bytes([0x02]))  # Message Expiry Interval property in the property block
            assert left > 0
            remaining = int.from_bytes(got[left + 1:left + 5], "big")
            assert 90 <= remaining < 100, remaining
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_expired_records_leave_the_store_while_running():
    """A message that expires in an offline session's queue, and an expired retained message, are
    removed from the store while the broker runs (queues are swept every 10 s)."""
    d = tmpdir("tern-persist-sweep-")
    store = os.path.join(d, "tern-store")
    try:
        b = Broker(persistent_conf(d))
        try:
            c = Client(b.port)
            c.send(conflib.connect5("sweeper", clean=False, props=conflib.p_u32(0x11, 3600)))
            assert c.recv()[0] == 0x20
            c.send(conflib.subscribe5(1, [("sw/#", 1)]))
            assert c.recv()[0] == 0x90
            c.send(bytes([0xE0, 0]))
            c.close()
            b.wait_log(r"Client sweeper disconnected")
            pub = Client(b.port)
            pub.send(conflib.connect5("sweep-pub"))
            assert pub.recv()[0] == 0x20
            pub.send(conflib.publish5("sw/a", b"brief", qos=1, pid=1, props=conflib.p_u32(0x02, 1)))
            assert pub.recv()[0] == 0x40
            pub.send(conflib.publish5("sw/r", b"brief-retained", qos=1, pid=2, retain=True,
                                      props=conflib.p_u32(0x02, 1)))
            assert pub.recv()[0] == 0x40
            time.sleep(11.5)
        finally:
            b.stop(signal.SIGKILL)  # what the store holds now is what the sweep left
        out = subprocess.run([TERN, "store", "dump", store], capture_output=True, text=True, timeout=30).stdout
        assert "session client=\"sweeper\"" in out, out
        assert "queue client=" not in out, f"an expired message stayed queued in the store:\n{out}"
        assert "retained" not in out, f"an expired retained message stayed in the store:\n{out}"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_payload_queued_to_many_sessions_is_stored_once():
    """1 KiB queued to 1,000 offline persistent sessions takes less than 2 KiB + 100 bytes x 1,000
    of store: one message record and a small entry per session (measured on the table files after
    a graceful stop, which flushes everything into them)."""
    d = tmpdir("tern-persist-once-")
    n = 1000
    store = os.path.join(d, "tern-store")

    def table_bytes():
        return sum(os.path.getsize(os.path.join(store, f)) for f in os.listdir(store) if f.endswith(".sst"))

    try:
        with Broker(persistent_conf(d)) as b:
            for i in range(n):
                c = Client(b.port)
                c.connect(f"s{i:04d}", clean=False)
                c.send(subscribe(1, [("fan/out", 1)]))
                c.recv()
                c.send(DISCONNECT)
                c.close()
        before = table_bytes()
        with Broker(persistent_conf(d)) as b:
            restored(b, n, 0)
            pub = Client(b.port)
            pub.connect("fan-pub")
            pub.send(publish("fan/out", os.urandom(1024), qos=1, packet_id=1))
            assert pub.recv(timeout=10) == ack("puback", 1)
        after = table_bytes()
        out = subprocess.run([TERN, "store", "dump", store], capture_output=True, text=True, timeout=30).stdout
        assert out.count("\nmessage id=") + out.startswith("message id=") == 1, "the payload is stored once"
        assert out.count("queue client=") == n
        grew = after - before
        print(f"  1 KiB queued to {n} sessions: {grew} bytes of table files")
        assert grew < 2048 + 100 * n, grew
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mosquitto_snapshot_keys_are_accepted_with_a_warning():
    d = tmpdir("tern-persist-")
    try:
        conf = persistent_conf(d, "persistence_file mosquitto.db\nautosave_interval 60\nautosave_on_changes true\n")
        with Broker(conf) as b:
            for key in ("persistence_file", "autosave_interval", "autosave_on_changes"):
                b.wait_log(rf"Warning: .*{key} is ignored")
            c = Client(b.port)
            assert c.connect("warned", clean=False) == connack(False)
        assert not os.path.exists(os.path.join(d, "mosquitto.db"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_persistence_false_keeps_nothing():
    d = tmpdir("tern-persist-")
    try:
        conf = f"persistence false\npersistence_location {d}/\n"
        with Broker(conf) as b:
            c = Client(b.port)
            c.connect("mem", clean=False)
            c.send(subscribe(1, [("m", 1)]))
            c.recv()
        assert not os.path.exists(os.path.join(d, "tern-store"))
        with Broker(conf) as b:
            c = Client(b.port)
            assert c.connect("mem", clean=False) == connack(False)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start_fails(conf_text):
    d = tempfile.mkdtemp(prefix="tern-persist-conf-")
    path = os.path.join(d, "t.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    try:
        r = subprocess.run([TERN, "broker", "-c", path, "-p", "0"], capture_output=True, text=True, timeout=10)
        return r.returncode, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_foreign_or_damaged_store_stops_the_broker():
    d = tmpdir("tern-persist-")
    try:
        store = os.path.join(d, "tern-store")
        os.makedirs(store)
        with open(os.path.join(store, "CURRENT"), "w") as f:
            f.write("not a manifest\n")
        rc, out = start_fails(persistent_conf(d))
        assert rc != 0 and "tern-store" in out, out
        shutil.rmtree(store)
        with Broker(persistent_conf(d)) as b:
            c = Client(b.port)
            c.connect("dmg", clean=False)
            c.send(subscribe(1, [("z", 1)]))
            c.recv()
            pub = Client(b.port)
            pub.connect("dmgpub")
            for i in range(50):
                pub.send(publish("z", os.urandom(200), qos=1, packet_id=i + 1))
                assert pub.recv() == ack("puback", i + 1)
        # Graceful stop flushed the records into table files: damage one in the middle.
        tables = [f for f in os.listdir(store) if f.endswith(".sst")]
        assert tables, os.listdir(store)
        path = os.path.join(store, tables[0])
        data = bytearray(open(path, "rb").read())
        data[len(data) // 3] ^= 0xFF
        open(path, "wb").write(bytes(data))
        rc, out = start_fails(persistent_conf(d))
        assert rc != 0 and ("orrupt" in out or "checksum" in out.lower()), out
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unwritable_location_is_a_start_error():
    rc, out = start_fails("persistence true\npersistence_location /nonexistent/dir/\n")
    assert rc != 0 and "/nonexistent/dir/tern-store" in out, out


def test_debian_mosquitto_conf_starts_tern():
    if os.path.exists("/etc/mosquitto/mosquitto.conf"):
        # The text below is Debian 12's file; keep the test honest if the package changes it.
        real = [l.split() for l in open("/etc/mosquitto/mosquitto.conf") if l.strip() and not l.startswith("#")]
        ours = [l.split() for l in DEBIAN_CONF.splitlines() if l.strip() and not l.startswith("#")]
        assert [l[0] for l in real] == [l[0] for l in ours], real
    d = tmpdir("tern-debian-")
    try:
        for sub in ("run", "lib", "log", "conf.d"):
            os.makedirs(os.path.join(d, sub))
            os.chmod(os.path.join(d, sub), 0o777)
        with open(os.path.join(d, "conf.d", "README"), "w") as f:
            f.write("Any files placed in this directory that have a .conf ending will be loaded\n")
        conf = (DEBIAN_CONF.replace("/run/mosquitto/", f"{d}/run/").replace("/var/lib/mosquitto/", f"{d}/lib/")
                .replace("/var/log/mosquitto/", f"{d}/log/").replace("/etc/mosquitto/conf.d", f"{d}/conf.d"))
        path = os.path.join(d, "mosquitto.conf")
        with open(path, "w") as f:
            f.write(conf)
        # -p 0: Debian's file has no listener, so Tern serves loopback only, here on a free port.
        proc = subprocess.Popen([TERN, "broker", "-c", path, "-p", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            logf = os.path.join(d, "log", "mosquitto.log")
            port = None
            deadline = time.time() + 10
            while time.time() < deadline and port is None:
                if os.path.exists(logf):
                    m = re.search(r"Opening ipv4 listen socket on port (\d+)\.", open(logf).read())
                    if m:
                        port = int(m.group(1))
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.05)
            assert port, "no listener in the log file"
            pid = int(open(os.path.join(d, "run", "mosquitto.pid")).read())
            assert pid == proc.pid
            sub = Client(port)
            assert sub.connect("deb", clean=False) == connack(False)
            sub.send(subscribe(1, [("hello", 1)]))
            sub.recv()
            pubc = Client(port)
            pubc.connect("debpub")
            pubc.send(publish("hello", "world", qos=1, packet_id=1))
            assert pub_packet(sub.recv())[2] == b"world"
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
        assert rc == 0
        assert not os.path.exists(os.path.join(d, "run", "mosquitto.pid")), "pid file left behind"
        assert os.path.isdir(os.path.join(d, "lib", "tern-store")), "no store"
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    import functools
    tests = []
    for t in (test_restart_keeps_sessions_queues_and_retained, test_v5_properties_survive_restart,
              test_inflight_resent_with_dup_after_restart, test_inbound_qos2_id_survives_restart,
              test_wills_across_a_restart):
        for stop in STOPS:
            f = functools.partial(t, stop)
            f.__name__ = f"{t.__name__}[{stop}]"
            tests.append(f)
    run_tests(tests + [
        test_expiry_across_a_restart,
        test_expired_records_leave_the_store_while_running,
        test_payload_queued_to_many_sessions_is_stored_once,
        test_mosquitto_snapshot_keys_are_accepted_with_a_warning,
        test_persistence_false_keeps_nothing,
        test_foreign_or_damaged_store_stops_the_broker,
        test_unwritable_location_is_a_start_error,
        test_debian_mosquitto_conf_starts_tern,
    ])
