#!/usr/bin/python3
"""MQTT 5.0 Will Delay Interval against the real broker: the will goes out at the earlier of the
delay and the end of the session; a client that comes back in time with clean start 0 cancels it
[MQTT-3.1.3-9]; one that comes back with clean start 1 ends the old session, so the will goes out
then. Will properties reach the subscriber."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402


def u32_prop(ident, value):
    return bytes([ident]) + struct.pack("!I", value)


def will_client(b, client_id, delay, session_expiry, clean=True):
    c = Client(b.port)
    c.send(connect(client_id, version=5, clean=clean, will=("will/" + client_id, "gone", 1, False),
                   properties=u32_prop(0x11, session_expiry),
                   will_properties=u32_prop(0x18, delay) + b"\x03" + s("text/plain")))
    ack = c.recv()
    assert ack[0] == 0x20 and ack[3] == 0, ack.hex()
    return c


def watcher(b):
    w = Client(b.port)
    w.send(connect("watcher", version=5))
    w.recv()
    w.send(subscribe(1, [("will/#", 1)], version=5))
    assert w.recv()[0] == 0x90
    return w


def wait_will(w, timeout):
    """Seconds until a will PUBLISH arrives (acknowledged), or None."""
    start = time.time()
    p = w.recv(timeout)
    if p is None:
        return None
    assert p[0] >> 4 == 3, p.hex()
    assert b"gone" in p and b"text/plain" in p, "will payload and Content Type property"
    pid = conflib.parse_publish(p, version=5)["pid"]
    w.send(ack("puback", pid))
    return time.time() - start


def test_will_waits_for_its_delay():
    with Broker("") as b:
        w = watcher(b)
        c = will_client(b, "delayed", delay=2, session_expiry=60)
        c.close()  # no DISCONNECT: the will is due
        assert w.recv(1.2) is None, "will sent before its delay"
        assert wait_will(w, 3.0) is not None, "will never sent"


def test_return_within_delay_cancels_will():
    with Broker("") as b:
        w = watcher(b)
        c = will_client(b, "returns", delay=3, session_expiry=60)
        c.close()
        time.sleep(0.5)
        c2 = Client(b.port)
        c2.send(connect("returns", version=5, clean=False, properties=u32_prop(0x11, 60)))
        ack = c2.recv()
        assert ack[2] == 1, "session present"
        b.wait_log(r"Client returns returned within its will delay; will cancelled\.")
        assert w.recv(4.0) is None, "will sent although the client came back in time"


def test_return_with_clean_start_sends_will_at_once():
    with Broker("") as b:
        w = watcher(b)
        c = will_client(b, "cleaner", delay=30, session_expiry=60)
        c.close()
        time.sleep(0.3)
        c2 = Client(b.port)
        c2.send(connect("cleaner", version=5, clean=True))
        c2.recv()
        took = wait_will(w, 3.0)
        assert took is not None and took < 2.5, "the old session ended: its will is due"


def test_session_end_before_delay_sends_will():
    with Broker("") as b:
        w = watcher(b)
        c = will_client(b, "shortlived", delay=30, session_expiry=1)
        c.close()
        took = wait_will(w, 4.0)
        assert took is not None and took < 3.5, "the session expired first: the will goes out then"


def test_no_session_expiry_means_no_delay():
    with Broker("") as b:
        w = watcher(b)
        c = will_client(b, "nosession", delay=30, session_expiry=0)
        c.close()
        took = wait_will(w, 2.0)
        assert took is not None and took < 1.5, "session expiry 0 ends the session at once"


if __name__ == "__main__":
    run_tests([
        test_will_waits_for_its_delay,
        test_return_within_delay_cancels_will,
        test_return_with_clean_start_sends_will_at_once,
        test_session_end_before_delay_sends_will,
        test_no_session_expiry_means_no_delay,
    ])
