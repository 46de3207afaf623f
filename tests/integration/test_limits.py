#!/usr/bin/python3
"""Limits and defences (docs/security.md): each limit is exceeded against the real broker, which
must react exactly as documented (reason code, or close, or pause), count the hit in
$SYS/broker/tern/limits/<key>, and keep serving a canary client on the same broker. A last test runs
normal traffic right up to every default and checks that no counter moves."""
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402

LIMITS = ["max_connect_size", "max_clientid_len", "max_topic_levels", "max_topic_length", "max_packet_properties",
          "max_subscriptions", "messages_rate", "bytes_rate", "max_packet_size", "message_size_limit",
          "connect_timeout", "max_connections", "max_conn_rate", "open_files", "max_inflight_messages",
          "max_queued_messages", "max_queued_bytes", "slow_subscriber_timeout"]


# ---- helpers ---------------------------------------------------------------------------------

def user_props(n):
    """n User Property (0x26) entries."""
    return b"".join(bytes([0x26]) + s(f"k{i}") + s("v") for i in range(n))


def deep(levels):
    return "/".join(["l"] * levels)


def sys_topic(p):
    """(topic, payload text) of a 3.1.1 PUBLISH; None for other packets."""
    if p[0] >> 4 != 3:
        return None
    d = conflib.parse_publish(p)
    return d["topic"].decode() if isinstance(d["topic"], bytes) else d["topic"], d["payload"].decode()


def counters(port, want=None, timeout=8.0, settle=2.5):
    """$SYS/broker/tern/limits/<key> values, from a fresh subscriber. With `want` ({key: minimum}),
    returns once every minimum is reached (failing after `timeout`); without, after `settle` seconds
    (two publications at sys_interval 1)."""
    mon = Client(port)
    assert mon.connect("limits-monitor") == connack()
    mon.send(subscribe(1, [("$SYS/broker/tern/limits/#", 0)]))
    values = {}
    end = time.time() + (timeout if want else settle)
    while time.time() < end:
        p = mon.recv(max(0.05, end - time.time()))
        if p is None:
            continue
        m = sys_topic(p)
        if m and m[0].startswith("$SYS/broker/tern/limits/"):
            values[m[0].rsplit("/", 1)[1]] = int(m[1])
        if want and len(values) == len(LIMITS) and all(values[k] >= v for k, v in want.items()):
            break
    mon.close()
    assert set(values) == set(LIMITS), f"limit topics: {sorted(values)}"
    if want:
        for k, v in want.items():
            assert values[k] >= v, f"$SYS/broker/tern/limits/{k} = {values[k]}, expected at least {v}"
    return values


def canary(port, tag):
    """A well-behaved client on the same broker: subscribes, publishes QoS 1 to itself, gets it."""
    c = Client(port)
    assert c.connect(f"canary-{tag}") == connack()
    c.send(subscribe(1, [(f"canary/{tag}", 1)]))
    assert c.recv() == bytes([0x90, 3, 0, 1, 1])
    c.send(publish(f"canary/{tag}", b"alive", qos=1, packet_id=7))
    got = [c.recv(), c.recv()]
    assert bytes([0x40, 2, 0, 7]) in got, [p.hex() for p in got if p]
    pub = [p for p in got if p and p[0] >> 4 == 3]
    assert pub and conflib.parse_publish(pub[0])["payload"] == b"alive"
    c.send(DISCONNECT)
    c.close()


def connected(port, client_id, **kw):
    """A 3.1.1 client, connected (CONNACK 0; with clean=False a session may be present)."""
    c = Client(port)
    ok = (connack(),) if kw.get("clean", True) else (connack(), connack(session_present=True))
    assert c.connect(client_id, **kw) in ok
    return c


def subscriber(port, client_id, topic, qos, **kw):
    """A connected 3.1.1 client subscribed to `topic` (SUBACK read)."""
    c = connected(port, client_id, **kw)
    c.send(subscribe(1, [(topic, qos)]))
    c.recv()
    return c


def connack5(code):
    """A 5.0 CONNACK refusing with `code` and no properties."""
    return bytes([0x20, 3, 0, code, 0])


def expect_disconnect5(c, reason):
    """The connection ends with a 5.0 DISCONNECT carrying `reason` (its Reason String may follow)."""
    got = c.expect_closed()
    assert got and got[-1][0] == 0xE0 and got[-1][2] == reason, [p.hex() for p in got]


# ---- one test per limit ----------------------------------------------------------------------

def test_max_connect_size_refuses_a_large_connect_before_reading_it():
    with Broker("sys_interval 1\nmax_connect_size 1k\n", verbose=False) as b:
        # The CONNECT announces 60 kB, but only its first 64 bytes are sent: the fixed header and the
        # protocol level are enough to refuse it, so nothing waits for (or buffers) the rest.
        big = connect("big", version=5, will=("w", b"x" * 60000, 0, False))
        c = Client(b.port)
        c.send(big[:64])
        assert c.expect_closed() == [connack5(0x95)], "5.0: CONNACK 0x95 Packet too large"
        c3 = Client(b.port)
        c3.send(connect("big3", will=("w", b"x" * 60000, 0, False))[:64])
        assert c3.expect_closed() == [], "3.1.1 has no return code for it: closed"
        # Just below the limit is fine.
        ok = Client(b.port)
        p = ok.connect("fits", version=5, will=("w", b"x" * 900, 0, False))
        assert p[0] == 0x20 and p[3] == 0, p.hex()
        canary(b.port, "connect-size")
        assert counters(b.port, {"max_connect_size": 2})["max_connect_size"] == 2


def test_max_clientid_len_refuses_a_long_client_id():
    with Broker("sys_interval 1\nmax_clientid_len 16\n", verbose=False) as b:
        c = Client(b.port)
        c.send(connect("x" * 17, version=5))
        assert c.expect_closed() == [connack5(0x85)], "5.0: CONNACK 0x85 Client Identifier not valid"
        c3 = Client(b.port)
        c3.send(connect("x" * 17))
        assert c3.expect_closed() == [connack(code=2)], "3.1.1: CONNACK 0x02 Identifier rejected"
        assert Client(b.port).connect("y" * 16) == connack()
        canary(b.port, "id")
        assert counters(b.port, {"max_clientid_len": 2})["max_clientid_len"] == 2
        b.wait_log(r"sent a client identifier of 17 bytes \(max_clientid_len 16\)")


def test_max_topic_levels_closes_publishers_and_refuses_filters():
    # 5 levels: the $SYS filter that reads the counters has 5.
    with Broker("sys_interval 1\nmax_topic_levels 5\n", verbose=False) as b:
        sub = Client(b.port)
        sub.send(connect("sub5", version=5))
        assert sub.recv()[3] == 0
        sub.send(subscribe(1, [(deep(5), 0), (deep(6), 0), ("l/l/l/l/#", 0), ("$share/g/l/l/l/l/l/+", 0)], version=5))
        assert sub.recv() == bytes([0x90, 7, 0, 1, 0, 0, 0x8F, 0, 0x8F]), "5.0: 0x8F for each filter beyond it"
        sub3 = Client(b.port)
        assert sub3.connect("sub3") == connack()
        sub3.send(subscribe(2, [(deep(6), 1), (deep(2), 1)]))
        assert sub3.recv() == bytes([0x90, 4, 0, 2, 0x80, 1]), "3.1.1: 0x80"
        pub = Client(b.port)
        pub.send(connect("pub5", version=5))
        pub.recv()
        pub.send(publish(deep(5), b"ok", version=5))
        pub.send(publish(deep(6), b"no", qos=1, version=5))
        expect_disconnect5(pub, 0x90)
        assert conflib.parse_publish(sub.recv(), 5)["payload"] == b"ok"
        pub3 = Client(b.port)
        assert pub3.connect("pub3") == connack()
        pub3.send(publish(deep(6), b"no"))
        assert pub3.expect_closed() == [], "3.1.1: closed"
        assert sub.recv(0.3) is None, "nothing beyond the limit was routed"
        canary(b.port, "levels")
        assert counters(b.port, {"max_topic_levels": 5})["max_topic_levels"] == 5


def test_max_topic_length_closes_publishers_and_refuses_filters():
    with Broker("sys_interval 1\nmax_topic_length 64\n", verbose=False) as b:
        sub = Client(b.port)
        sub.send(connect("sub5", version=5))
        sub.recv()
        sub.send(subscribe(1, [("a" * 64, 0), ("a" * 65, 0)], version=5))
        assert sub.recv() == bytes([0x90, 5, 0, 1, 0, 0, 0x8F])
        sub3 = Client(b.port)
        assert sub3.connect("sub3") == connack()
        sub3.send(subscribe(2, [("b" * 65, 0)]))
        assert sub3.recv() == bytes([0x90, 3, 0, 2, 0x80])
        pub = Client(b.port)
        pub.send(connect("pub5", version=5))
        pub.recv()
        pub.send(publish("a" * 64, b"ok", version=5))
        pub.send(publish("a" * 65, b"no", version=5))
        expect_disconnect5(pub, 0x90)
        assert conflib.parse_publish(sub.recv(), 5)["payload"] == b"ok"
        pub3 = Client(b.port)
        assert pub3.connect("pub3") == connack()
        pub3.send(publish("c" * 65, b"no"))
        assert pub3.expect_closed() == []
        # A will topic meets the same limits: 5.0 CONNACK 0x90.
        w = Client(b.port)
        w.send(connect("will", version=5, will=("w" * 65, b"gone", 0, False)))
        assert w.expect_closed() == [connack5(0x90)]
        canary(b.port, "length")
        assert counters(b.port, {"max_topic_length": 5})["max_topic_length"] == 5


def test_max_packet_properties_is_quota_exceeded():
    with Broker("sys_interval 1\nmax_packet_properties 8\n", verbose=False) as b:
        sub = Client(b.port)
        sub.send(connect("sub5", version=5))
        sub.recv()
        sub.send(subscribe(1, [("p", 0)], version=5))
        sub.recv()
        pub = Client(b.port)
        pub.send(connect("pub5", version=5))
        pub.recv()
        pub.send(publish("p", b"eight", version=5, properties=user_props(8)))
        assert conflib.parse_publish(sub.recv(), 5)["payload"] == b"eight"
        pub.send(publish("p", b"nine", version=5, properties=user_props(9)))
        expect_disconnect5(pub, 0x97)
        # A CONNECT's properties and its will's count together.
        c = Client(b.port)
        c.send(connect("many", version=5, properties=user_props(5), will=("w", b"x", 0, False),
                       will_properties=user_props(4)))
        assert c.expect_closed() == [connack5(0x97)], "CONNACK 0x97 Quota exceeded"
        assert sub.recv(0.3) is None
        canary(b.port, "props")
        assert counters(b.port, {"max_packet_properties": 2})["max_packet_properties"] == 2


def test_max_subscriptions_refuses_filters_beyond_it():
    with Broker("sys_interval 1\nmax_subscriptions 5\n", verbose=False) as b:
        c = Client(b.port)
        c.send(connect("subs5", version=5))
        c.recv()
        c.send(subscribe(1, [(f"s/{i}", 1) for i in range(7)], version=5))
        assert c.recv() == bytes([0x90, 10, 0, 1, 0, 1, 1, 1, 1, 1, 0x97, 0x97]), "5.0: 0x97 Quota exceeded"
        c.send(subscribe(2, [("s/0", 0)], version=5))
        assert c.recv() == bytes([0x90, 4, 0, 2, 0, 0]), "replacing a subscription is not a new one"
        c.send(unsubscribe(3, ["s/4"], version=5))
        assert c.recv()[0] == 0xB0
        c.send(subscribe(4, [("s/9", 0), ("s/10", 0)], version=5))
        assert c.recv() == bytes([0x90, 5, 0, 4, 0, 0, 0x97]), "room for one again"
        c3 = Client(b.port)
        assert c3.connect("subs3") == connack()
        c3.send(subscribe(5, [(f"t/{i}", 0) for i in range(6)]))
        assert c3.recv() == bytes([0x90, 8, 0, 5, 0, 0, 0, 0, 0, 0x80]), "3.1.1: 0x80"
        b.wait_log(r"Client subs5 has 5 subscriptions \(max_subscriptions\): 's/5' refused\.")
        canary(b.port, "subs")
        assert counters(b.port, {"max_subscriptions": 4})["max_subscriptions"] == 4


def pubacks_over_time(c, n, timeout=20.0):
    """Arrival times of the PUBACKs for n QoS 1 PUBLISH packets."""
    times = []
    end = time.time() + timeout
    while len(times) < n and time.time() < end:
        p = c.recv(max(0.05, end - time.time()))
        if p is None:
            continue
        assert p[0] == 0x40, p.hex()
        times.append(time.time())
    assert len(times) == n, f"{len(times)} PUBACKs of {n}"
    return times


def test_messages_rate_pauses_the_publisher_and_loses_nothing():
    with Broker("sys_interval 1\nmessages_rate 20/s\n", verbose=False) as b:
        sub = subscriber(b.port, "rate-sub", "rate/t", 0)
        pub = connected(b.port, "rate-pub")
        start = time.time()
        pub.send(b"".join(publish("rate/t", f"m{i}", qos=1, packet_id=i + 1) for i in range(100)))
        # Another client is not slowed down by the first one's limit: each client has its own bucket.
        canary(b.port, "rate")
        assert time.time() - start < 2.0
        times = pubacks_over_time(pub, 100)
        # 20 at once (the bucket), then 20 per second: the last about 4 s after the first.
        assert times[19] - start < 1.0, f"the burst took {times[19] - start:.2f} s"
        assert 3.0 <= times[-1] - start <= 8.0, f"100 messages took {times[-1] - start:.2f} s at 20/s"
        got = [conflib.parse_publish(sub.recv())["payload"] for _ in range(100)]
        assert got == [f"m{i}".encode() for i in range(100)], "paused, never dropped"
        pub.send(PINGREQ)
        assert pub.recv() == PINGRESP
        assert counters(b.port, {"messages_rate": 1})["bytes_rate"] == 0


def test_bytes_rate_pauses_the_publisher():
    with Broker("sys_interval 1\nbytes_rate 10KB/s\n", verbose=False) as b:
        pub = Client(b.port)
        assert pub.connect("bytes-pub") == connack()
        start = time.time()
        # 40 PUBLISH packets of 1 KiB: 10 KiB at once, then 10 KiB per second.
        one = lambda i: publish("bytes/t", b"x" * (1024 - 14), qos=1, packet_id=i + 1)  # noqa: E731
        assert len(one(0)) == 1024
        pub.send(b"".join(one(i) for i in range(40)))
        canary(b.port, "bytes")
        times = pubacks_over_time(pub, 40)
        assert 2.0 <= times[-1] - start <= 7.0, f"40 KiB took {times[-1] - start:.2f} s at 10 KiB/s"
        assert counters(b.port, {"bytes_rate": 1})["messages_rate"] == 0


def test_max_conn_rate_slows_accepting():
    with Broker("sys_interval 1\nmax_conn_rate 5/s\n", verbose=False) as b:
        time.sleep(1.1)  # a full bucket
        start = time.time()
        clients = []
        for i in range(20):
            c = Client(b.port)  # the kernel completes the handshake; the broker accepts later
            c.send(connect(f"rate-{i}"))
            clients.append(c)
        done = []
        for c in clients:
            assert c.recv(10) == connack()
            done.append(time.time() - start)
        # 5 at once, then 5 per second: the 20th about 3 s later. Nobody is refused.
        assert done[3] < 1.0, f"the burst took {done[3]:.2f} s"
        assert 2.0 <= done[-1] <= 6.0, f"20 connections took {done[-1]:.2f} s at 5/s"
        for c in clients:
            c.close()
        b.wait_log(r"Listener on port \d+ reached max_conn_rate \(5 per 1000 ms\): accepting more slowly\.")
        canary(b.port, "conn-rate")
        counters(b.port, {"max_conn_rate": 10})


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_does_not_spin_the_acceptor():
    # No store (it needs descriptors of its own), max_connections above what the descriptors allow,
    # so that accept(2) itself runs out.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))  # inherited by the broker only
    try:
        b = Broker(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nmax_connections 100000\n"
                   "sys_interval 1\npersistence false\nconnect_timeout 60\n", workers=2, verbose=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with b:
        clients = []
        for i in range(200):
            c = Client(b.port)
            c.send(connect(f"fd-{i}"))
            clients.append(c)
        b.wait_log(r"Cannot accept connections: Too many open files \(open-file limit 128\); retrying every 100 ms\.")
        time.sleep(0.5)
        before = cpu_seconds(b.proc.pid)
        time.sleep(3.0)
        used = cpu_seconds(b.proc.pid) - before
        assert used / 3.0 < 0.05, f"the broker used {100 * used / 3.0:.1f}% CPU while out of descriptors"
        assert b.log().count("Cannot accept connections") == 1, "logged once per episode"
        served = sum(1 for c in clients if c.recv(0.01) == connack())
        assert 50 < served < 128, f"{served} connections got CONNACK"
        for c in clients:
            c.close()
        b.wait_log(r"Accepting connections again\.", timeout=10)
        # The broker serves new clients again.
        deadline = time.time() + 10
        while True:
            try:
                canary(b.port, "fd")
                break
            except (AssertionError, EOFError, OSError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        counters(b.port, {"open_files": 1})


def test_max_packet_size_closes_with_0x95():
    with Broker("sys_interval 1\nmax_packet_size 1000\n", verbose=False) as b:
        c = Client(b.port)
        p = c.connect("mps5", version=5)
        assert p[0] == 0x20 and p[3] == 0, p.hex()
        # [MQTT-3.2.2-15]: the CONNACK announces the limit; a larger packet is a protocol error.
        c.send(publish("mps/t", b"x" * 1500, qos=1, packet_id=1, version=5))
        expect_disconnect5(c, 0x95)
        c3 = Client(b.port)
        assert c3.connect("mps3") == connack()
        c3.send(publish("mps/t", b"x" * 1500, qos=1, packet_id=1))
        assert c3.expect_closed() == [], "3.1.1 has no reason code: closed"
        # Just below it is delivered.
        ok = subscriber(b.port, "mps-ok", "mps/t", 0)
        ok.send(publish("mps/t", b"y" * 900))
        assert conflib.parse_publish(ok.recv())["payload"] == b"y" * 900
        canary(b.port, "packet-size")
        assert counters(b.port, {"max_packet_size": 2})["max_packet_size"] == 2


def test_message_size_limit_drops_with_0x97():
    with Broker("sys_interval 1\nmessage_size_limit 100\n", verbose=False) as b:
        sub = subscriber(b.port, "msl-sub", "msl/t", 1)
        c = Client(b.port)
        assert c.connect("msl5", version=5)[3] == 0
        c.send(publish("msl/t", b"x" * 101, qos=1, packet_id=3, version=5))
        p = c.recv()
        assert p[0] == 0x40 and p[2:4] == b"\x00\x03" and p[4] == 0x97, f"5.0 PUBACK 0x97: {p.hex()}"
        c.send(publish("msl/t", b"x" * 101, qos=2, packet_id=4, version=5))
        p = c.recv()
        assert p[0] == 0x50 and p[2:4] == b"\x00\x04" and p[4] == 0x97, f"5.0 PUBREC 0x97: {p.hex()}"
        c3 = Client(b.port)
        assert c3.connect("msl3") == connack()
        c3.send(publish("msl/t", b"x" * 101, qos=1, packet_id=5))
        assert c3.recv() == bytes([0x40, 2, 0, 5]), "3.1.1: acknowledged and dropped"
        # The connections stay open; a payload at the limit goes through, the others never arrived.
        c3.send(publish("msl/t", b"z" * 100, qos=1, packet_id=6))
        assert c3.recv() == bytes([0x40, 2, 0, 6])
        d = conflib.parse_publish(sub.recv())
        assert d["payload"] == b"z" * 100, "only the message within the limit is delivered"
        sub.send(ack("puback", d["pid"]))
        assert sub.recv(0.5) is None
        canary(b.port, "message-size")
        assert counters(b.port, {"message_size_limit": 3})["message_size_limit"] == 3


def test_connect_timeout_closes_sockets_that_never_connect():
    with Broker("sys_interval 1\nconnect_timeout 1\n", verbose=False) as b:
        start = time.time()
        silent = Client(b.port)
        partial = Client(b.port)
        partial.send(connect("slow")[:7])
        assert silent.expect_closed(timeout=4) == []
        assert partial.expect_closed(timeout=4) == []
        took = time.time() - start
        assert 0.8 <= took <= 4.0, f"closed after {took:.2f} s with connect_timeout 1"
        b.wait_log(r"did not send CONNECT in time, disconnecting\.")
        canary(b.port, "connect-timeout")
        assert counters(b.port, {"connect_timeout": 2})["connect_timeout"] == 2


def test_max_connections_is_per_listener():
    limited, other = free_port(), free_port()
    with Broker(f"listener {limited} 127.0.0.1\nmax_connections 3\nallow_anonymous true\n"
                f"listener {other} 127.0.0.1\nsys_interval 1\n", verbose=False) as b:
        held = []
        for i in range(3):
            c = Client(limited)
            assert c.connect(f"mc-{i}") == connack()
            held.append(c)
        refused = Client(limited)
        refused.send(connect("mc-3"))
        assert refused.expect_closed() == [], "closed at once, without CONNACK (as Mosquitto)"
        b.wait_log(r"Client connection from 127\.0\.0\.1 denied: max_connections exceeded\.")
        # The other listener has its own count (the open-file default).
        canary(other, "max-connections")
        # Sockets that have not sent CONNECT count too (as Mosquitto counts from accept on).
        held.pop().close()
        time.sleep(0.3)
        silent = Client(limited)
        time.sleep(0.3)
        refused = Client(limited)
        refused.send(connect("mc-4"))
        assert refused.expect_closed() == [], "a silent socket holds a place"
        silent.close()
        # A closed connection frees its place.
        held.pop().close()
        deadline = time.time() + 5
        while True:
            c = Client(limited)
            c.send(connect("mc-again"))
            try:
                if c.recv(2) == connack():
                    break
            except EOFError:
                pass
            assert time.time() < deadline, "no place freed after a client left"
            time.sleep(0.1)
        assert counters(other, {"max_connections": 1})["max_connections"] >= 1


def test_max_inflight_messages_holds_deliveries_back():
    with Broker("sys_interval 1\nmax_inflight_messages 2\n", verbose=False) as b:
        sub = subscriber(b.port, "mi-sub", "mi/t", 1)
        pub = connected(b.port, "mi-pub")
        for i in range(5):
            pub.send(publish("mi/t", f"m{i}", qos=1, packet_id=i + 1))
            assert pub.recv() == bytes([0x40, 2, 0, i + 1])
        first = [conflib.parse_publish(sub.recv()) for _ in range(2)]
        assert sub.recv(0.5) is None, "a third message went out with 2 unacknowledged"
        got = [d["payload"] for d in first]
        for d in first:
            sub.send(ack("puback", d["pid"]))
        got += drain_qos1(sub)
        assert got == [f"m{i}".encode() for i in range(5)], got
        canary(b.port, "inflight")
        assert counters(b.port, {"max_inflight_messages": 3})["max_inflight_messages"] == 3


def offline_subscriber(b, client_id, topic):
    """A persistent 3.1.1 session subscribed to `topic` at QoS 1, then disconnected: returns once the
    broker has seen the DISCONNECT (before it, messages would still go to the connection)."""
    c = subscriber(b.port, client_id, topic, 1, clean=False)
    c.send(DISCONNECT)
    c.close()
    b.wait_log(rf"Client {client_id} disconnected\.")


def test_max_queued_messages_bounds_the_offline_queue():
    with Broker("sys_interval 1\nmax_queued_messages 5\n") as b:
        offline_subscriber(b, "mq-sub", "mq/t")
        pub = connected(b.port, "mq-pub")
        for i in range(8):
            pub.send(publish("mq/t", f"m{i}", qos=1, packet_id=i + 1))
            assert pub.recv() == bytes([0x40, 2, 0, i + 1])
        sub = Client(b.port)
        assert sub.connect("mq-sub", clean=False) == connack(session_present=True)
        got = drain_qos1(sub)
        assert got == [f"m{i}".encode() for i in range(5)], f"the first 5 kept, the rest dropped: {got}"
        canary(b.port, "queued")
        assert counters(b.port, {"max_queued_messages": 3})["max_queued_messages"] == 3


def test_max_queued_bytes_bounds_the_offline_queue():
    with Broker("sys_interval 1\nmax_queued_messages 0\nmax_queued_bytes 100\n") as b:
        offline_subscriber(b, "mqb-sub", "mqb/t")
        pub = connected(b.port, "mqb-pub")
        for i in range(5):
            pub.send(publish("mqb/t", f"{i}".encode() * 40, qos=1, packet_id=i + 1))
            assert pub.recv() == bytes([0x40, 2, 0, i + 1])
        sub = Client(b.port)
        assert sub.connect("mqb-sub", clean=False) == connack(session_present=True)
        got = drain_qos1(sub)
        assert got == [b"0" * 40, b"1" * 40], f"80 bytes kept; 120 would pass the bound: {got}"
        canary(b.port, "queued-bytes")
        values = counters(b.port, {"max_queued_bytes": 3})
        assert values["max_queued_bytes"] == 3 and values["max_queued_messages"] == 0, values


def test_slow_subscriber_timeout_disconnects_and_counts():
    with Broker("sys_interval 1\nmax_queued_messages 10\nmax_inflight_messages 2\nslow_subscriber_timeout 1\n",
                verbose=False) as b:
        sub = Client(b.port)
        assert sub.connect("stuck-sub", version=5)[3] == 0
        sub.send(subscribe(1, [("ss/t", 1)], version=5))
        assert sub.recv()[0] == 0x90
        pub = connected(b.port, "ss-pub")
        pub.send(b"".join(publish("ss/t", f"m{i}", qos=1, packet_id=i + 1) for i in range(50)))
        b.wait_log(r"Client stuck-sub has not read its messages for 1 s \(slow_subscriber_timeout\), disconnecting\.",
                   timeout=6)
        got = sub.expect_closed(timeout=3)
        assert got and got[-1][0] == 0xE0 and got[-1][2] == 0x97, [p.hex() for p in got[-2:]]
        canary(b.port, "slow")
        assert counters(b.port, {"slow_subscriber_timeout": 1})["slow_subscriber_timeout"] == 1


def test_defaults_do_not_trigger_for_normal_traffic():
    with Broker("sys_interval 1\n", verbose=False) as b:
        # A 60 kB CONNECT (a large will), a 1024-byte client id, 128 user properties.
        c = Client(b.port)
        c.send(connect("i" * 1024, version=5, properties=user_props(64),
                       will=("will/t", b"w" * 60000, 0, False), will_properties=user_props(64)))
        p = c.recv()
        assert p[0] == 0x20 and p[3] == 0, p.hex()
        # 1000 subscriptions, one of them 128 levels deep, one of 65535 bytes.
        filters = [deep(128), "f" * 65535] + [f"n/{i}" for i in range(998)]
        for k in range(0, 1000, 100):
            c.send(subscribe(k + 1, [(f, 0) for f in filters[k:k + 100]], version=5))
            ack = c.recv()
            assert ack[0] == 0x90 and set(ack[5:]) == {0}, ack[:8].hex()
        # Publishing at will: 2000 QoS 0 messages at once, one with a 128-level topic and 128 user
        # properties, one on a 65535-byte topic.
        c.send(publish(deep(128), b"deep", version=5, properties=user_props(128)))
        assert conflib.parse_publish(c.recv(), 5)["payload"] == b"deep"
        c.send(publish("f" * 65535, b"long", version=5))
        assert conflib.parse_publish(c.recv(), 5)["payload"] == b"long"
        c.send(b"".join(publish("n/1", f"{i}", version=5) for i in range(2000)))
        for i in range(2000):
            assert conflib.parse_publish(c.recv(), 5)["payload"] == f"{i}".encode()
        canary(b.port, "defaults")
        values = counters(b.port)
        assert all(v == 0 for v in values.values()), values


if __name__ == "__main__":
    run_tests([
        test_max_connect_size_refuses_a_large_connect_before_reading_it,
        test_max_clientid_len_refuses_a_long_client_id,
        test_max_topic_levels_closes_publishers_and_refuses_filters,
        test_max_topic_length_closes_publishers_and_refuses_filters,
        test_max_packet_properties_is_quota_exceeded,
        test_max_subscriptions_refuses_filters_beyond_it,
        test_messages_rate_pauses_the_publisher_and_loses_nothing,
        test_bytes_rate_pauses_the_publisher,
        test_max_conn_rate_slows_accepting,
        test_out_of_file_descriptors_does_not_spin_the_acceptor,
        test_max_packet_size_closes_with_0x95,
        test_message_size_limit_drops_with_0x97,
        test_connect_timeout_closes_sockets_that_never_connect,
        test_max_connections_is_per_listener,
        test_max_inflight_messages_holds_deliveries_back,
        test_max_queued_messages_bounds_the_offline_queue,
        test_max_queued_bytes_bounds_the_offline_queue,
        test_slow_subscriber_timeout_disconnects_and_counts,
        test_defaults_do_not_trigger_for_normal_traffic,
    ])
