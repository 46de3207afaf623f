#!/usr/bin/python3
"""`persistence true` with Mosquitto's meaning: sessions (subscriptions, queued and in-flight
messages, inbound QoS 2 ids) and retained messages survive a restart; autosave_interval saves while
running; a damaged or foreign file stops the broker with a clear error. And Debian's own
/etc/mosquitto/mosquitto.conf (its keys, with paths moved to a temporary directory) starts Tern."""
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
    # Open to all: run as root, Tern drops privileges to `user` (mosquitto or nobody) after binding,
    # and must still write its snapshot here, as Debian's /var/lib/mosquitto is the mosquitto user's.
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o777)
    return d


def persistent_conf(d, extra=""):
    return f"persistence true\npersistence_location {d}/\n" + extra


def pub_packet(p):
    """(topic, packet id or None, payload, first byte) of a 3.1.1 PUBLISH."""
    d = conflib.parse_publish(p)
    return d["topic"].decode(), d["pid"], d["payload"], p[0]


def test_restart_keeps_sessions_queues_and_retained():
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
            pub.close()
        assert os.path.exists(os.path.join(d, "tern.db")), "no snapshot written on shutdown"
        with Broker(persistent_conf(d)) as b:
            b.wait_log(r"Restored 1 sessions and 1 retained messages")
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


def test_v5_properties_survive_restart():
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
            pub.send(conflib.publish5("r/p", b"retained", qos=0, retain=True, props=props))
            pub.close()
            time.sleep(0.2)
        with Broker(persistent_conf(d)) as b:
            b.wait_log(r"Restored 1 sessions and 1 retained messages")
            sub = Client(b.port)
            sub.send(conflib.connect5("props-keeper", clean=False, props=conflib.p_u32(0x11, 3600)))
            assert sub.recv()[0] == 0x20
            got = sub.recv()
            pid = conflib.parse_publish(got, version=5)["pid"]
            assert got == conflib.publish5("p/q", b"queued", qos=1, pid=pid, props=props), got.hex()
            late = Client(b.port)
            late.send(conflib.connect5("props-late"))
            assert late.recv()[0] == 0x20
            late.send(conflib.subscribe5(1, [("r/#", 0)]))
            assert late.recv()[0] == 0x90
            assert late.recv() == conflib.publish5("r/p", b"retained", retain=True, props=props)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_inflight_resent_with_dup_after_restart():
    d = tmpdir("tern-persist-")
    try:
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            sub.connect("flyer", clean=False)
            sub.send(subscribe(1, [("f", 1)]))
            sub.recv()
            pub = Client(b.port)
            pub.connect("p")
            pub.send(publish("f", "unacked", qos=1, packet_id=5))
            topic, pid, payload, first = pub_packet(sub.recv())
            assert payload == b"unacked"
            # no PUBACK: the message stays in flight across the restart
        with Broker(persistent_conf(d)) as b:
            sub = Client(b.port)
            assert sub.connect("flyer", clean=False) == connack(True)
            topic2, pid2, payload2, first2 = pub_packet(sub.recv())
            assert (topic2, pid2, payload2) == ("f", pid, b"unacked")
            assert first2 & 0x08, "resent PUBLISH must have DUP=1 [MQTT-4.4.0-1]"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_inbound_qos2_id_survives_restart():
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


def test_autosave_interval_saves_while_running():
    d = tmpdir("tern-persist-")
    try:
        b = Broker(persistent_conf(d, "autosave_interval 1\n"))
        try:
            c = Client(b.port)
            c.connect("saved", clean=False)
            c.send(subscribe(1, [("a/b", 1)]))
            c.recv()
            b.wait_log(r"Saving in-memory database", timeout=5)
            time.sleep(1.2)  # a save after the SUBSCRIBE
        finally:
            b.stop(signal.SIGKILL)  # no shutdown save: only the autosave counts
        with Broker(persistent_conf(d)) as b2:
            b2.wait_log(r"Restored 1 sessions")
            c = Client(b2.port)
            assert c.connect("saved", clean=False) == connack(True)
            pub = Client(b2.port)
            pub.connect("pp")
            pub.send(publish("a/b", "x", qos=1, packet_id=1))
            assert pub_packet(c.recv())[2] == b"x", "subscription lost"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_autosave_on_changes():
    d = tmpdir("tern-persist-")
    try:
        b = Broker(persistent_conf(d, "autosave_interval 2\nautosave_on_changes true\n"))
        try:
            c = Client(b.port)
            c.connect("changer", clean=False)
            c.send(subscribe(1, [("x", 1)]))
            c.recv()
            time.sleep(1.5)
            assert "Saving in-memory database" not in b.log(), "saved before 2 changes"
            c.send(subscribe(2, [("y", 1)]))
            c.recv()
            b.wait_log(r"Saving in-memory database", timeout=4)
        finally:
            b.stop(signal.SIGKILL)
        with Broker(persistent_conf(d)) as b2:
            b2.wait_log(r"Restored 1 sessions")
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


def test_foreign_or_damaged_file_stops_the_broker():
    d = tmpdir("tern-persist-")
    try:
        with open(os.path.join(d, "tern.db"), "wb") as f:
            f.write(b"\x00\x00\x00\x05mosquitto-db-like-content")
        rc, out = start_fails(persistent_conf(d))
        assert rc != 0 and "is not a Tern snapshot" in out, out
        with Broker(persistent_conf(d).replace("persistence true", "persistence true\npersistence_file good.db")) as b:
            c = Client(b.port)
            c.connect("dmg", clean=False)
            c.send(subscribe(1, [("z", 1)]))
            c.recv()
        data = bytearray(open(os.path.join(d, "good.db"), "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(os.path.join(d, "good.db"), "wb").write(bytes(data))
        rc, out = start_fails(persistent_conf(d) + "persistence_file good.db\n")
        assert rc != 0 and "damaged" in out, out
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unwritable_location_is_a_start_error():
    rc, out = start_fails("persistence true\npersistence_location /nonexistent/dir/\n")
    assert rc != 0 and "/nonexistent/dir/tern.db" in out, out


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
        owner = os.stat(os.path.join(d, "lib")).st_uid
        assert os.path.exists(os.path.join(d, "lib", "tern.db")) or owner != os.geteuid(), "no snapshot"
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run_tests([
        test_restart_keeps_sessions_queues_and_retained,
        test_v5_properties_survive_restart,
        test_inflight_resent_with_dup_after_restart,
        test_inbound_qos2_id_survives_restart,
        test_autosave_interval_saves_while_running,
        test_autosave_on_changes,
        test_foreign_or_damaged_file_stops_the_broker,
        test_unwritable_location_is_a_start_error,
        test_debian_mosquitto_conf_starts_tern,
    ])
