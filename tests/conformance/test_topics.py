#!/usr/bin/python3
"""MQTT 3.1.1 conformance: topic names, topic filters and matching (section 4.7)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()
_n = [0]


def violation(data):
    _n[0] += 1
    c = connected(broker(), f"top-{_n[0]}")
    c.send(data)
    got = c.expect_closed(1.5)
    assert got == [], f"expected a silent close, got {[p.hex() for p in got]}"


def matches(prefix, filt, topics_yes, topics_no):
    """Subscribes to filt and checks which of the topics are delivered (in publish order)."""
    b = broker()
    sub = subscribed(b, f"{prefix}-sub", [(filt, 0)])
    pub = connected(b, f"{prefix}-pub")
    everything = [(t, True) for t in topics_yes] + [(t, False) for t in topics_no]
    for t, _ in everything:
        pub.send(publish(t, t))
    for t in topics_yes:
        expect_publish(sub, t, t.encode())
    expect_nothing(sub)
    sub.send(DISCONNECT)
    pub.send(DISCONNECT)


def test_MQTT_4_7_1_1():
    # Wildcards are not allowed in a topic name: closed.
    violation(publish("t471/+", "x"))
    violation(publish("t471/#", "x", qos=1, packet_id=1))
    violation(publish("+", "x"))


def test_MQTT_4_7_1_2():
    # '#' must be alone in the last level.
    for f in ("t472/#/a", "t472#", "t472/a#", "#/a", "##"):
        violation(subscribe(1, [(f, 0)]))


def test_MQTT_4_7_1_2_b():
    # Valid '#' filters match the parent level and every child level.
    matches("t472b", "t472b/a/#", ["t472b/a", "t472b/a/b", "t472b/a/b/c", "t472b/a/"],
            ["t472b/b", "t472b/ab"])


def test_MQTT_4_7_1_2_c():
    # An invalid '#' filter in UNSUBSCRIBE is a protocol violation too.
    violation(unsubscribe(1, ["t472c/#/a"]))


def test_MQTT_4_7_1_3():
    # '+' must occupy a whole level.
    for f in ("t473+", "t473/+a", "t473/a+/b", "++"):
        violation(subscribe(1, [(f, 0)]))


def test_MQTT_4_7_1_3_b():
    # Valid '+' filters: one level each, including first, last and empty levels.
    matches("t473b", "+/t473b/+", ["x/t473b/y", "/t473b/", "a/t473b/"],
            ["x/t473b/y/z", "t473b/y", "x/y/t473b/z"])


def test_MQTT_4_7_1_3_c():
    # An invalid '+' filter in UNSUBSCRIBE.
    violation(unsubscribe(1, ["t473c/a+"]))


def test_MQTT_4_7_2_1():
    # Filters starting with a wildcard do not match topics starting with '$'.
    b = broker()
    sub = subscribed(b, "t4721-sub", [("#", 0), ("+/t4721", 0), ("+/+", 0)])
    dsub = subscribed(b, "t4721-dsub", [("$t4721/#", 0)])
    pub = connected(b, "t4721-pub")
    pub.send(publish("$t4721/x", "dollar") + publish("$t4721", "dollar2"))
    expect_publish(dsub, "$t4721/x", b"dollar")
    expect_publish(dsub, "$t4721", b"dollar2")
    pub.send(publish("t4721/marker", "m"))
    expect_publish(sub, "t4721/marker", b"m")  # one copy at QoS 0 ('#' and '+/+')
    expect_nothing(sub)
    sub.send(DISCONNECT)


def test_MQTT_4_7_3_1():
    # Empty topic name in PUBLISH, empty filter in SUBSCRIBE.
    violation(publish("", "x"))
    violation(subscribe(1, [("", 0)]))


def test_MQTT_4_7_3_1_b():
    # Empty filter in UNSUBSCRIBE.
    violation(unsubscribe(1, [""]))


def test_MQTT_4_7_3_2():
    # U+0000 in a topic name or filter.
    violation(publish("t/\x00", "x"))
    violation(subscribe(1, [("t/\x00/#", 0)]))


def test_MQTT_4_7_3_3():
    # Topic name and filter of 65535 bytes (the maximum a UTF-8 string can encode) work.
    b = broker()
    topic = "t4733/" + "x" * (65535 - 6)
    assert len(topic) == 65535
    sub = subscribed(b, "t4733-sub", [(topic, 1)])
    pub = connected(b, "t4733-pub")
    pub.send(publish(topic, "long", qos=1, packet_id=1))
    pub.expect(puback(1))
    pid = expect_publish(sub, topic, b"long", qos=1)
    sub.send(puback(pid))


def test_MQTT_4_7_3_4():
    # No normalisation: case, trailing '/', empty levels and Unicode forms stay distinct.
    nfc = "t4734/\u00e9"
    nfd = "t4734/e\u0301"
    matches("t4734a", "t4734/a/b", ["t4734/a/b"], ["T4734/a/b", "t4734/a/b/", "t4734//a/b", "t4734/a//b"])
    matches("t4734b", nfc, [nfc], [nfd])


if __name__ == "__main__":
    main([
        test_MQTT_4_7_1_1, test_MQTT_4_7_1_2, test_MQTT_4_7_1_2_b, test_MQTT_4_7_1_2_c,
        test_MQTT_4_7_1_3, test_MQTT_4_7_1_3_b, test_MQTT_4_7_1_3_c, test_MQTT_4_7_2_1,
        test_MQTT_4_7_3_1, test_MQTT_4_7_3_1_b, test_MQTT_4_7_3_2, test_MQTT_4_7_3_3,
        test_MQTT_4_7_3_4,
    ], broker)
