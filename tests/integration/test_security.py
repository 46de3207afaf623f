#!/usr/bin/python3
"""password_file, allow_anonymous, clientid_prefixes, acl_file and per_listener_settings against the
real broker, with files made by Debian's mosquitto_passwd and exact packets over sockets
(docs/security.md)."""
import os
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

TMP = tempfile.mkdtemp(prefix="tern-security-")
os.chmod(TMP, 0o755)  # the broker reads its files as the account it drops to


def passwd_file():
    """alice/secret1 and bob/secret2 in PBKDF2 ($7$), carol/secret3 in the legacy SHA-512 ($6$), all
    written by Debian's mosquitto_passwd."""
    path = os.path.join(TMP, "passwd")
    if not os.path.exists(path):
        subprocess.run(["mosquitto_passwd", "-c", "-b", path, "alice", "secret1"], check=True)
        subprocess.run(["mosquitto_passwd", "-b", path, "bob", "secret2"], check=True)
        subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", path, "carol", "secret3"], check=True)
        os.chmod(path, 0o644)  # readable by the account the broker drops to
    return path


def acl_file(text):
    fd, path = tempfile.mkstemp(dir=TMP, suffix=".acl")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def connack_code(c, version):
    p = c.recv()
    assert p is not None and p[0] == 0x20, p
    if version == 5:
        return p[3]
    return p[3]


def try_connect(b, version=4, port=None, **kw):
    c = Client(port or b.port)
    c.send(connect(kw.pop("client_id", "c1"), version=version, **kw))
    code = connack_code(c, version)
    return c, code


def test_mosquitto_passwd_file_accepted():
    with Broker(f"allow_anonymous false\npassword_file {passwd_file()}\n") as b:
        for user, pw in (("alice", "secret1"), ("bob", "secret2"), ("carol", "secret3")):
            c, code = try_connect(b, username=user, password=pw)
            assert code == 0, (user, code)
            c.close()
        # mosquitto_pub with -u/-P, as the lecture's commands.
        r = subprocess.run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-u", "alice", "-P", "secret1",
                            "-t", "t", "-m", "x"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-u", "alice", "-P", "nope",
                            "-t", "t", "-m", "x"], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0, "a wrong password is refused"


def test_wrong_password_and_unknown_user_get_the_same_answer():
    with Broker(f"allow_anonymous false\npassword_file {passwd_file()}\n") as b:
        # 3.1.1: CONNACK 4 (bad user name or password); 5.0: 0x86.
        for version, expected in ((4, 4), (5, 0x86)):
            for user, pw in (("alice", "wrong"), ("mallory", "secret1"), ("alice", None)):
                c, code = try_connect(b, version=version, username=user, password=pw)
                assert code == expected, (version, user, pw, code)
                c.expect_closed()
        assert b.alive()


def test_anonymous_refused_when_allow_anonymous_false():
    with Broker(f"allow_anonymous false\npassword_file {passwd_file()}\n") as b:
        for version, expected in ((4, 5), (5, 0x87)):
            c, code = try_connect(b, version=version)
            assert code == expected, (version, code)
            c.expect_closed()


def test_anonymous_and_users_together():
    with Broker(f"allow_anonymous true\npassword_file {passwd_file()}\n") as b:
        c, code = try_connect(b)
        assert code == 0
        c, code = try_connect(b, username="alice", password="wrong")
        assert code == 4, "a user that gives a name is checked even when anonymous access is allowed"


def test_username_without_password_file_counts_as_anonymous():
    # Mosquitto 2.0.11: with no password file a username proves nothing; allow_anonymous decides.
    with Broker("allow_anonymous false\n") as b:
        c, code = try_connect(b, username="anyone", password="whatever")
        assert code == 5, code
        c, code = try_connect(b, client_id="c2")
        assert code == 5, code
    with Broker("allow_anonymous true\n") as b:
        c, code = try_connect(b, username="anyone", password="whatever")
        assert code == 0, code


def test_clientid_prefixes():
    with Broker("allow_anonymous true\nclientid_prefixes plant-\n") as b:
        c, code = try_connect(b, client_id="plant-7")
        assert code == 0
        c, code = try_connect(b, client_id="office-1")
        assert code == 5, code


ACL = """# anonymous clients: read the news only
topic read news/#

user alice
topic readwrite sensors/#
topic deny sensors/secret/#
topic read $SYS/#

user bob
topic write sensors/bob/#
topic read alerts

pattern readwrite devices/%c/#
pattern read users/%u/inbox
"""


def acl_broker():
    return Broker(f"allow_anonymous true\npassword_file {passwd_file()}\nacl_file {acl_file(ACL)}\n")


def login(b, user, client_id, version=4):
    pw = {"alice": "secret1", "bob": "secret2", "carol": "secret3"}
    c = Client(b.port)
    c.send(connect(client_id, version=version, username=user, password=pw.get(user) if user else None)
           if user else connect(client_id, version=version))
    p = c.recv()
    assert p[0] == 0x20 and p[3] == 0, p.hex()
    return c


def suback_codes(c, filters, version=4, pid=1):
    c.send(subscribe(pid, [(f, 1) for f in filters], version=version))
    p = c.recv()
    assert p[0] == 0x90, p.hex()
    return list(p[4:]) if version == 4 else list(p[5:])


def test_acl_subscribe_refusals():
    with acl_broker() as b:
        a = login(b, "alice", "a1")
        # 3.1.1: refused filters get 0x80.
        codes = suback_codes(a, ["sensors/#", "sensors/secret/x", "sensors/secret/#", "news/#", "#", "sensors/+/t"])
        assert codes == [1, 0x80, 0x80, 0x80, 1, 1], codes
        a5 = login(b, "alice", "a5", version=5)
        codes = suback_codes(a5, ["sensors/secret/#", "sensors/a"], version=5)
        assert codes == [0x87, 1], codes
        anon = login(b, None, "anon")
        assert suback_codes(anon, ["news/today", "sensors/#"]) == [1, 0x80]
        assert b.wait_log(r"Denied SUBSCRIBE from a1 to 'sensors/secret/x'")


def test_acl_wildcard_delivers_only_readable_topics():
    with acl_broker() as b:
        a = login(b, "alice", "a1")
        assert suback_codes(a, ["#"]) == [1]
        pub = login(b, "bob", "pubber")  # bob may write sensors/bob/#
        root = login(b, None, "devices-root")
        # alice reads sensors/# except sensors/secret/#; her "#" must not bring her anything else.
        pub.send(publish("sensors/bob/t", "ok", qos=1, packet_id=1))
        assert pub.recv() == bytes([0x40, 2, 0, 1])
        got = a.recv(timeout=3)
        assert got is not None and conflib.parse_publish(got, 4)["topic"] == b"sensors/bob/t", got
        a.send(ack("puback", conflib.parse_publish(got, 4)["pid"]))
        # A topic alice may not read, published by a client allowed to write it (pattern %c).
        dev = login(b, None, "x")
        dev.send(publish("devices/x/news", "private", qos=0))
        assert a.recv(timeout=1) is None, "alice's '#' must not deliver devices/x/news"
        root.close()


def test_acl_publish_denied_v311_acked_and_dropped_v5_0x87():
    with acl_broker() as b:
        watcher = login(b, "alice", "w")
        assert suback_codes(watcher, ["sensors/#"]) == [1]
        bob = login(b, "bob", "bob1")
        # bob may not write sensors/other: 3.1.1 QoS 1 gets a plain PUBACK [MQTT-3.3.5-2], QoS 2 a PUBREC.
        bob.send(publish("sensors/other", "no", qos=1, packet_id=5))
        assert bob.recv() == bytes([0x40, 2, 0, 5])
        bob.send(publish("sensors/other", "no", qos=2, packet_id=6))
        assert bob.recv() == bytes([0x50, 2, 0, 6])
        bob.send(ack("pubrel", 6))
        assert bob.recv() == bytes([0x70, 2, 0, 6])
        assert watcher.recv(timeout=1) is None, "a denied message is not forwarded"
        bob5 = login(b, "bob", "bob5", version=5)
        bob5.send(publish("sensors/other", "no", qos=1, packet_id=7, version=5))
        p = bob5.recv()
        assert p[0] == 0x40 and p[4] == 0x87, p.hex()
        bob5.send(publish("sensors/other", "no", qos=2, packet_id=8, version=5))
        p = bob5.recv()
        assert p[0] == 0x50 and p[4] == 0x87, p.hex()
        bob5.send(publish("sensors/other", "no", qos=0, version=5))
        bob5.send(PINGREQ)
        assert bob5.recv() == PINGRESP, "QoS 0 is dropped silently, the connection stays"
        assert watcher.recv(timeout=1) is None
        assert b.wait_log(r"Denied PUBLISH from bob1 .*'sensors/other'")
        # $SYS stays read-only even for a client with a readwrite '#'.
        bob.send(publish("sensors/bob/ok", "yes", qos=1, packet_id=9))
        assert bob.recv() == bytes([0x40, 2, 0, 9])
        got = watcher.recv(timeout=3)
        assert got is not None and conflib.parse_publish(got, 4)["payload"] == b"yes"


def test_acl_patterns_and_the_cve_2017_7650_rule():
    with acl_broker() as b:
        dev = login(b, None, "dev1")
        assert suback_codes(dev, ["devices/dev1/#", "devices/dev2/#"]) == [1, 0x80]
        for bad_id in ("#", "+", "a/b"):
            c = login(b, None, bad_id)
            # "devices/%c/#" must not become "devices/#/#", "devices/+/#" or reach into "devices/a/...".
            assert suback_codes(c, ["devices/#"]) == [0x80], bad_id
            c.send(publish(f"devices/{bad_id if bad_id == 'a/b' else 'z'}/x", "p", qos=1, packet_id=2))
            assert c.recv() == bytes([0x40, 2, 0, 2])
            c.close()
        alice = login(b, "alice", "a-inbox")
        assert suback_codes(alice, ["users/alice/inbox", "users/bob/inbox"]) == [1, 0x80]
        anon = login(b, None, "anon-inbox")
        assert suback_codes(anon, ["users/alice/inbox"]) == [0x80], "%u never matches a client without a username"


def test_acl_retained_messages_pass_the_read_check():
    with acl_broker() as b:
        bob = login(b, "bob", "bob-r")
        bob.send(publish("sensors/bob/state", "on", qos=1, retain=True, packet_id=1))
        assert bob.recv() == bytes([0x40, 2, 0, 1])
        dev = login(b, None, "sensors")  # pattern devices/%c/#: may write devices/sensors/#
        dev.send(publish("devices/sensors/cfg", "v1", qos=1, retain=True, packet_id=1))
        assert dev.recv() == bytes([0x40, 2, 0, 1])
        alice = login(b, "alice", "a-ret")
        assert suback_codes(alice, ["#"]) == [1]
        got = alice.recv(timeout=3)
        assert got is not None and conflib.parse_publish(got, 4)["topic"] == b"sensors/bob/state"
        assert alice.recv(timeout=1) is None, "devices/sensors/cfg is not alice's to read"


def test_acl_will_topic_is_checked():
    with acl_broker() as b:
        c = Client(b.port)
        c.send(connect("bob-will", username="bob", password="secret2", will=("alerts", "gone", 0, False)))
        assert c.recv() == connack(code=5), "bob may only read alerts: his will there is refused"
        c.expect_closed()
        c = Client(b.port)
        c.send(connect("bob-will2", username="bob", password="secret2", will=("sensors/bob/lwt", "gone", 0, False)))
        assert c.recv() == connack(code=0)
        assert b.wait_log(r"Denied will of client bob-will on 'alerts'")


def test_per_listener_settings():
    p1, p2 = free_port(), free_port()
    conf = (f"per_listener_settings true\n"
            f"listener {p1} 127.0.0.1\nallow_anonymous true\n"
            f"listener {p2} 127.0.0.1\nallow_anonymous false\npassword_file {passwd_file()}\n")
    with Broker(conf) as b:
        c, code = try_connect(b, port=p1)
        assert code == 0, "anonymous on the first listener"
        c, code = try_connect(b, port=p2, client_id="c2")
        assert code == 5, "not on the second"
        c, code = try_connect(b, port=p2, client_id="c3", username="alice", password="secret1")
        assert code == 0
        c, code = try_connect(b, port=p1, client_id="c4", username="alice", password="wrong")
        assert code == 0, "the first listener has no password file: the name is not checked"


def test_bad_files_stop_the_broker_with_the_line():
    bad = os.path.join(TMP, "bad-passwd")
    with open(bad, "w") as f:
        f.write("alice:$7$101$mP957xNi1qQ6VULy$YgvfDLv71ZdSoLqv\nnocolon\n")
    os.chmod(bad, 0o644)
    bad_acl = acl_file("topic read a/#\nfrobnicate x\n")
    for conf, needle in ((f"password_file {bad}\n", "bad-passwd:1"),
                         (f"acl_file {bad_acl}\n", ".acl:2"),
                         (f"password_file {TMP}/missing\n", "missing")):
        try:
            Broker(conf)
        except RuntimeError as e:
            assert needle in str(e), (needle, str(e))
        else:
            raise AssertionError(f"broker started with {conf!r}")


def copy_passwd():
    """A password file of its own (a reload test rewrites it)."""
    path = os.path.join(TMP, f"passwd-{time.time_ns()}")
    shutil.copy(passwd_file(), path)
    os.chmod(path, 0o644)
    return path


def test_sighup_reload_disconnects_removed_users():
    pw = copy_passwd()
    with Broker(f"allow_anonymous false\npassword_file {pw}\n") as b:
        alice = login(b, "alice", "alice-1", version=5)
        bob = login(b, "bob", "bob-1", version=5)
        bob3 = login(b, "bob", "bob-3", version=4)
        subprocess.run(["mosquitto_passwd", "-D", pw, "bob"], check=True)
        b.proc.send_signal(signal.SIGHUP)
        # 5.0: DISCONNECT 0x87 Not authorized, then the close; 3.1.1: the close.
        got = bob.expect_closed()
        assert got and got[-1][0] == 0xE0 and got[-1][2] == 0x87, [g.hex() for g in got]
        bob3.expect_closed()
        alice.send(PINGREQ)
        assert alice.recv() == PINGRESP, "a user still in the file keeps its connection"
        c, code = try_connect(b, version=4, client_id="bob-2", username="bob", password="secret2")
        assert code == 4
        assert b.wait_log(r"Client bob-1 no longer passes")


def test_sighup_reload_applies_a_new_acl_to_existing_connections():
    acl = acl_file("user alice\ntopic readwrite a/#\nuser bob\ntopic write a/#\n")
    with Broker(f"allow_anonymous true\npassword_file {passwd_file()}\nacl_file {acl}\n") as b:
        alice = login(b, "alice", "alice-acl")
        bob = login(b, "bob", "bob-acl")
        assert suback_codes(alice, ["a/#"]) == [1]
        bob.send(publish("a/secret", "before", qos=0))
        assert conflib.parse_publish(alice.recv(), 4)["payload"] == b"before"
        with open(acl, "w") as f:
            f.write("user alice\ntopic read a/#\ntopic deny a/secret\nuser bob\ntopic write a/#\n")
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log(r"Reloading")
        time.sleep(0.5)
        # Reading a/secret is gone for the existing subscription.
        bob.send(publish("a/secret", "after", qos=0))
        bob.send(publish("a/ok", "ok", qos=0))
        assert conflib.parse_publish(alice.recv(), 4)["payload"] == b"ok"
        # Writing is gone: 3.1.1 acknowledges and drops.
        alice.send(publish("a/y", "2", qos=1, packet_id=2))
        assert alice.recv() == bytes([0x40, 2, 0, 2])
        assert alice.recv(timeout=1) is None, "not forwarded: alice may no longer write a/y"


def test_sighup_with_a_broken_file_keeps_the_old_one():
    pw = copy_passwd()
    with Broker(f"allow_anonymous false\npassword_file {pw}\n") as b:
        c, code = try_connect(b, username="alice", password="secret1")  # serving: SIGHUP reloads now
        assert code == 0
        with open(pw, "a") as f:
            f.write("broken line without a colon\n")
        b.proc.send_signal(signal.SIGHUP)
        m = b.wait_log(r"(?m)^.*Error.*reload.*$")
        assert "passwd" in m.group(0) and ":4" in m.group(0), m.group(0)
        c, code = try_connect(b, username="alice", password="secret1")
        assert code == 0, "the old file stays in force"
        assert b.alive()


if __name__ == "__main__":
    try:
        run_tests([
            test_mosquitto_passwd_file_accepted,
            test_wrong_password_and_unknown_user_get_the_same_answer,
            test_anonymous_refused_when_allow_anonymous_false,
            test_anonymous_and_users_together,
            test_username_without_password_file_counts_as_anonymous,
            test_clientid_prefixes,
            test_acl_subscribe_refusals,
            test_acl_wildcard_delivers_only_readable_topics,
            test_acl_publish_denied_v311_acked_and_dropped_v5_0x87,
            test_acl_patterns_and_the_cve_2017_7650_rule,
            test_acl_retained_messages_pass_the_read_check,
            test_acl_will_topic_is_checked,
            test_per_listener_settings,
            test_bad_files_stop_the_broker_with_the_line,
            test_sighup_reload_disconnects_removed_users,
            test_sighup_reload_applies_a_new_acl_to_existing_connections,
            test_sighup_with_a_broken_file_keeps_the_old_one,
        ])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
