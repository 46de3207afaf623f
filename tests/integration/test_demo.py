#!/usr/bin/python3
"""The lecture's hands-on demo (examples/*.py) against a real tern broker."""
import json
import re
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../examples"))
PY = "/usr/bin/python3"


def experiment(port, *args, timeout=60):
    r = subprocess.run([PY, os.path.join(EXAMPLES, "qos_experiment.py"), "--host", "127.0.0.1", "--port", str(port),
                        *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    last = r.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    return {res["qos"]: res for res in data["results"]}, r.stdout


def check_experiment(results, out, count):
    assert sorted(results) == [0, 1, 2], results
    for q, res in results.items():
        assert res["sent"] == count, res
        assert res["received"] + res["lost"] == count, res
        assert res["reconnects"] >= 1, f"QoS {q}: the connection was never cut: {res}"
        assert res["session_present"], f"QoS {q}: session not resumed after reconnect: {res}"
        # the table line for this QoS matches the JSON
        row = f"{q:>3}  {res['sent']:>6}  {res['received']:>8}  {res['lost']:>6}  {res['duplicated']:>10}"
        assert row in out, (row, out)
    assert results[1]["lost"] == 0, f"QoS 1 lost messages: {results[1]}"
    assert results[2]["lost"] == 0, f"QoS 2 lost messages: {results[2]}"
    assert results[2]["duplicated"] == 0, f"QoS 2 duplicated messages: {results[2]}"
    # QoS 0 may lose, QoS 1 may duplicate: nothing to assert there.


def test_qos_experiment_small():
    with Broker() as b:
        results, out = experiment(b.port, "--count", "30")
        check_experiment(results, out, 30)
        # the cut was abrupt (no DISCONNECT) and the same client id came back with its session
        log = b.log()
        for q in (0, 1, 2):
            assert f"Client qos-experiment-sub-q{q} closed its connection." in log, log[-3000:]
            assert re.search(rf"Sending CONNACK to qos-experiment-sub-q{q} \(1, 0\)", log), log[-3000:]
        assert b.alive()


def test_qos_experiment_default_count_twice():
    """Default 200 messages, run twice against the same broker (the second run must not see the first's leftovers)."""
    with Broker() as b:
        for _ in range(2):
            results, out = experiment(b.port)
            check_experiment(results, out, 200)
        assert b.alive()


def test_qos_experiment_cannot_connect():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = subprocess.run([PY, os.path.join(EXAMPLES, "qos_experiment.py"), "--host", "127.0.0.1", "--port", str(port)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "cannot connect" in r.stderr, (r.returncode, r.stdout, r.stderr)


def test_qos_experiment_refused():
    """A broker that refuses the connection (explicit listener, no allow_anonymous) also means exit code 1."""
    with Broker(config="listener 0\n") as b:
        r = subprocess.run([PY, os.path.join(EXAMPLES, "qos_experiment.py"), "--host", "127.0.0.1", "--port",
                            str(b.port)], capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and "refused" in r.stderr, (r.returncode, r.stdout, r.stderr)
        assert b.alive()


def test_publisher_and_subscriber_scripts():
    with Broker() as b:
        for q in (0, 1, 2):
            sub = subprocess.Popen([PY, os.path.join(EXAMPLES, "subscriber.py"), "-h", "127.0.0.1", "-p", str(b.port),
                                    "-t", "#", "-q", str(q), "-C", "3", "--id", f"demo-sub-{q}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                b.wait_log(rf"Sending SUBACK to demo-sub-{q}\n")
                r = subprocess.run([PY, os.path.join(EXAMPLES, "publisher.py"), "-h", "127.0.0.1", "-p", str(b.port),
                                    "-t", "hello", "-m", "world", "-q", str(q)], capture_output=True, text=True, timeout=15)
                assert r.returncode == 0 and "published 1/1" in r.stdout, (r.stdout, r.stderr)
                r = subprocess.run([PY, os.path.join(EXAMPLES, "publisher.py"), "-h", "127.0.0.1", "-p", str(b.port),
                                    "-t", "sensors/temp", "-m", "t", "-n", "2", "-q", str(q)],
                                   capture_output=True, text=True, timeout=15)
                assert r.returncode == 0 and "published 2/2" in r.stdout, (r.stdout, r.stderr)
                out, err = sub.communicate(timeout=15)
                assert sub.returncode == 0 and out.splitlines() == ["world", "t #0", "t #1"], (out, err)
            finally:
                if sub.poll() is None:
                    sub.kill()
                    sub.communicate()
        log = b.log()
        assert re.search(r"Received PUBLISH from \S+ \(d0, q2, r0, m1, 'hello', \.\.\. \(5 bytes\)\)", log)
        assert re.search(r"Sending PUBLISH to demo-sub-2 \(d0, q2, r0, m1, 'hello', \.\.\. \(5 bytes\)\)", log)
        assert b.alive()


def test_persistent_subscriber_script_with_mosquitto_pub():
    """subscriber.py --persistent keeps its QoS 1 subscription while away; mosquitto_pub fills the queue."""
    with Broker() as b:
        base = [PY, os.path.join(EXAMPLES, "subscriber.py"), "-h", "127.0.0.1", "-p", str(b.port), "-t", "away",
                "-q", "1", "--id", "sleepy", "--persistent"]
        sub = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            b.wait_log(r"Sending SUBACK to sleepy\n")
        finally:
            sub.kill()  # abrupt end: no DISCONNECT
            sub.communicate()
        b.wait_log(r"Client sleepy closed its connection\.")
        for i in range(3):
            r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1", "-t", "away",
                                "-m", f"while away {i}"], capture_output=True, text=True, timeout=10)
            assert r.returncode == 0, r.stderr
        r = subprocess.run(base + ["-C", "3"], capture_output=True, text=True, timeout=15)
        assert r.stdout.splitlines() == [f"while away {i}" for i in range(3)], (r.stdout, r.stderr)
        assert "session present" in r.stderr, r.stderr
        assert b.alive()


if __name__ == "__main__":
    run_tests([
        test_qos_experiment_small,
        test_qos_experiment_default_count_twice,
        test_qos_experiment_cannot_connect,
        test_qos_experiment_refused,
        test_publisher_and_subscriber_scripts,
        test_persistent_subscriber_script_with_mosquitto_pub,
    ])
