#!/usr/bin/python3
"""`tern store check|dump|power-cut` on the store a real `tern broker` wrote: counts, "ok" and the
exit status (0 ok, 1 problem, 2 usage), one dump line per record, a foreign directory reported as a
problem, and a simulated power cut after kill -9 leaving a store that checks."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403


def store(*args, cwd=None):
    """Runs `tern store ARGS`; returns (exit status, stdout + stderr)."""
    r = subprocess.run([os.path.abspath(TERN), "store", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def count(out, name):
    m = re.search(rf"^{name}: (\d+)", out, re.M)
    assert m, f"no '{name}' in:\n{out}"
    return int(m.group(1))


def keeper_with_one_queued_message(b):
    """Two 3.1.1 persistent sessions, offline: "keeper" subscribed to t/# and "keeper2" to t/x, both at
    QoS 1. "queued" (t/x) lands in both: one message record, two entries; "solo" (t/y) in keeper only:
    one entry with the message inside."""
    for cid, flt in (("keeper", "t/#"), ("keeper2", "t/x")):
        sub = Client(b.port)
        assert sub.connect(cid, clean=False) == connack(False)
        sub.send(subscribe(1, [(flt, 1)]))
        assert sub.recv() == bytes([0x90, 3, 0, 1, 1])
        sub.send(DISCONNECT)
        sub.close()
        b.wait_log(rf"Client {cid} disconnected")
    pub = Client(b.port)
    pub.connect("pusher")
    pub.send(publish("t/x", "queued", qos=1, packet_id=1))
    assert pub.recv() == ack("puback", 1)
    pub.send(publish("t/y", "solo", qos=1, packet_id=2))
    assert pub.recv() == ack("puback", 2)
    pub.send(DISCONNECT)
    pub.close()


def test_check_and_dump_the_store_of_a_stopped_broker():
    with Broker() as b:
        keeper_with_one_queued_message(b)
        assert b.stop() == 0, b.log()
    try:
        check_and_dump(b)
    finally:
        shutil.rmtree(b.dir, ignore_errors=True)


def check_and_dump(b):
    rc, out = store("check", b.store)
    assert rc == 0, out
    assert out.rstrip().endswith("\nok"), out
    assert count(out, "format version") == 1, out
    assert count(out, "sessions") == 2, out
    assert count(out, "queue entries") == 3, out
    assert count(out, "messages") == 1, out
    assert count(out, "orphans") == 0, out
    assert count(out, "bytes") > 0, out
    # -c: the store of that config (persistence_location + tern-store).
    rc2, out2 = store("check", "-c", b.conf)
    assert rc2 == 0, out2
    assert out2.splitlines()[1:] == out.splitlines()[1:], (out, out2)
    rc, out = store("dump", b.store)
    assert rc == 0, out
    assert re.search(r'^session client="keeper" protocol=4 .*subscriptions=\["t/#" qos=1 ', out, re.M), out
    assert re.search(r'^queue client="keeper" seq=\d+ message=[1-9]\d* qos=1 ', out, re.M), out
    assert re.search(r'^queue client="keeper2" seq=\d+ message=[1-9]\d* qos=1 ', out, re.M), out
    assert re.search(r'^message id=\d+ topic="t/x" qos=1 .*payload\[6\]="queued"', out, re.M), out
    assert re.search(r'^queue client="keeper" seq=\d+ message=0 qos=1 .* topic="t/y" .*payload\[4\]="solo"', out, re.M), out
    assert "pusher" not in out.replace('origin="pusher"', ""), "a clean session was stored:\n" + out
    assert "bad key" not in out, out


def test_a_directory_that_is_not_a_store_is_a_problem():
    d = tempfile.mkdtemp(prefix="tern-store-tools-")
    try:
        foreign_directory(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def foreign_directory(d):
    foreign = os.path.join(d, "foreign")
    os.mkdir(foreign)
    with open(os.path.join(foreign, "CURRENT"), "w") as f:
        f.write("not RocksDB's\n")
    rc, out = store("check", foreign)
    assert rc == 1, (rc, out)
    assert "problem: " in out and "\nok" not in out, out
    rc, out = store("dump", foreign)
    assert rc == 1, (rc, out)
    with open(os.path.join(foreign, "CURRENT")) as f:
        assert f.read() == "not RocksDB's\n", "the tools changed a foreign directory"
    # Nothing at all there: a problem too.
    rc, out = store("check", os.path.join(d, "missing"))
    assert rc == 1, (rc, out)


def test_default_path_and_usage():
    d = tempfile.mkdtemp(prefix="tern-store-tools-")
    try:
        default_path_and_usage(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def default_path_and_usage(d):
    # Without arguments: tern-store in the working directory.
    rc, out = store("check", cwd=d)
    assert rc == 1 and "store: tern-store\n" in out, (rc, out)
    conf = os.path.join(d, "t.conf")
    with open(conf, "w") as f:
        f.write("persistence_location /nonexistent/dir/\n")
    rc, out = store("check", "-c", conf)
    assert rc == 1 and "store: /nonexistent/dir/tern-store\n" in out, (rc, out)
    for args in [(), ("check", "a", "b"), ("check", "-x"), ("frobnicate",), ("dump", "-c"),
                 ("check", "-c", os.path.join(d, "missing.conf"))]:
        rc, out = store(*args)
        assert rc == 2, (args, rc, out)
    with open(conf, "w") as f:
        f.write("frobnicate 1\n")
    rc, out = store("check", "-c", conf)
    assert rc == 2 and "t.conf:1: frobnicate" in out, (rc, out)
    rc, out = store("--help")
    assert rc == 0 and "tern store check" in out, out
    help_out = subprocess.run([TERN, "help"], capture_output=True, text=True).stdout
    assert re.search(r"^  store ", help_out, re.M), help_out


def test_power_cut_leaves_a_store_that_checks():
    rc, out = store("--help")
    if "power-cut" not in out:
        print("skipped: not a test build (TERN_TEST_HOOKS off)")
        return
    with Broker("persistence_track_syncs true\n") as b:
        keeper_with_one_queued_message(b)
        b.stop(signal.SIGKILL)
    try:
        power_cut(b)
    finally:
        shutil.rmtree(b.dir, ignore_errors=True)


def power_cut(b):
    manifest = b.store + ".syncs"
    assert os.path.exists(manifest), "the broker wrote no sync manifest"
    rc, out = store("power-cut", b.store)
    assert rc == 0, out
    assert "power cut simulated" in out, out
    rc, out = store("check", b.store)
    assert rc == 0, out
    # kSync: what was acknowledged (SUBACK, PUBACK) was synced and survives.
    assert count(out, "sessions") == 2, out
    assert count(out, "queue entries") == 3, out
    rc, out = store("power-cut")
    assert rc == 2, out
    rc, out = store("power-cut", os.path.join(b.dir, "nowhere"))
    assert rc == 1, out


if __name__ == "__main__":
    run_tests([
        test_check_and_dump_the_store_of_a_stopped_broker,
        test_a_directory_that_is_not_a_store_is_a_problem,
        test_default_path_and_usage,
        test_power_cut_leaves_a_store_that_checks,
    ])
