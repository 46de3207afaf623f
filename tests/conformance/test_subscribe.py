#!/usr/bin/python3
"""MQTT 3.1.1 conformance: SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK (sections 3.8 to 3.11)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


def test_MQTT_3_8_3_2():
    # Tern supports wildcards: wildcard filters are granted, never refused.
    c = connected(broker(), "u3832")
    c.send(subscribe(1, [("u3832/+/x", 1), ("u3832/#", 2), ("+", 0), ("#", 1)]))
    c.expect(suback(1, 1, 2, 0, 1))
    c.send(unsubscribe(2, ["+", "#"]))
    c.expect(unsuback(2))


def test_MQTT_3_8_4_1():
    c = connected(broker(), "u3841")
    c.send(subscribe(1, [("u3841/t", 1)]))
    c.expect(bytes([0x90, 0x03, 0x00, 0x01, 0x01]))


def test_MQTT_3_8_4_2():
    c = connected(broker(), "u3842")
    for pid in (0x0102, 0xFFFF, 0x8000):
        c.send(subscribe(pid, [("u3842/t", 2)]))
        c.expect(bytes([0x90, 0x03, pid >> 8, pid & 0xFF, 0x02]))


def test_MQTT_3_8_4_3():
    # An identical filter replaces the subscription (new QoS, one copy) and re-sends retained.
    b = broker()
    pub = connected(b, "u3843-pub")
    pub.send(publish("u3843/t", "ret", qos=1, retain=True, packet_id=1))
    pub.expect(puback(1))
    c = connected(b, "u3843")
    c.send(subscribe(1, [("u3843/t", 0)]))
    c.expect(suback(1, 0))
    expect_publish(c, "u3843/t", b"ret", qos=0, retain=True)
    c.send(subscribe(2, [("u3843/t", 1)]))
    c.expect(suback(2, 1))
    pid = expect_publish(c, "u3843/t", b"ret", qos=1, retain=True)
    c.send(puback(pid))
    pub.send(publish("u3843/t", "live", qos=1, packet_id=2))
    pub.expect(puback(2))
    pid = expect_publish(c, "u3843/t", b"live", qos=1)
    c.send(puback(pid))
    expect_nothing(c)
    pub.send(publish("u3843/t", "", retain=True))


def test_MQTT_3_8_4_4():
    # Several filters in one SUBSCRIBE act as several SUBSCRIBEs, answered by one SUBACK.
    b = broker()
    c = connected(b, "u3844")
    c.send(subscribe(7, [("u3844/a", 0), ("u3844/b", 1), ("u3844/c", 2)]))
    c.expect(bytes([0x90, 0x05, 0x00, 0x07, 0x00, 0x01, 0x02]))
    pub = connected(b, "u3844-pub")
    for i, t in enumerate(("u3844/a", "u3844/b", "u3844/c")):
        pub.send(publish(t, t, qos=1, packet_id=i + 1))
        pub.expect(puback(i + 1))
        pid = expect_publish(c, t, t.encode(), qos=min(i, 1))
        if pid:
            c.send(puback(pid))
    expect_nothing(c)


def test_MQTT_3_8_4_5():
    # One return code per filter, showing the granted QoS.
    c = connected(broker(), "u3845")
    c.send(subscribe(3, [("u3845/x", 2), ("u3845/y", 2)]))
    c.expect(bytes([0x90, 0x04, 0x00, 0x03, 0x02, 0x02]))


def test_MQTT_3_9_3_1():
    # Return codes in the order of the filters.
    c = connected(broker(), "u3931")
    c.send(subscribe(4, [("u3931/q2", 2), ("u3931/q0", 0), ("u3931/q1", 1), ("u3931/q0b", 0)]))
    c.expect(bytes([0x90, 0x06, 0x00, 0x04, 0x02, 0x00, 0x01, 0x00]))


def test_MQTT_3_9_3_2():
    # Only 0x00, 0x01, 0x02 and 0x80 are used as return codes.
    c = connected(broker(), "u3932")
    c.send(subscribe(5, [(f"u3932/{i}", i % 3) for i in range(9)]))
    p = c.recv()
    assert p[:4] == bytes([0x90, 11, 0x00, 0x05]), p.hex()
    assert all(code in (0, 1, 2, 0x80) for code in p[4:]), p.hex()
    assert list(p[4:]) == [i % 3 for i in range(9)], p.hex()


def test_MQTT_3_10_4_1():
    # UNSUBSCRIBE compares filters byte for byte: only the exact filter is removed.
    b = broker()
    c = connected(b, "u31041")
    c.send(subscribe(1, [("u31041/+", 0), ("u31041/a", 1)]))
    c.expect(suback(1, 0, 1))
    c.send(unsubscribe(2, ["U31041/+", "u31041/a/"]))  # match nothing
    c.expect(unsuback(2))
    c.send(unsubscribe(3, ["u31041/a"]))
    c.expect(unsuback(3))
    pub = connected(b, "u31041-pub")
    pub.send(publish("u31041/a", "via+", qos=1, packet_id=1))
    pub.expect(puback(1))
    expect_publish(c, "u31041/a", b"via+", qos=0)  # only the wildcard one is left
    expect_nothing(c)


def test_MQTT_3_10_4_2():
    # After UNSUBACK no new messages are added for the client.
    b = broker()
    c = connected(b, "u31042")
    c.send(subscribe(1, [("u31042/gone", 1), ("u31042/kept", 0)]))
    c.expect(suback(1, 1, 0))
    c.send(unsubscribe(2, ["u31042/gone"]))
    c.expect(unsuback(2))
    pub = connected(b, "u31042-pub")
    pub.send(publish("u31042/gone", "no", qos=1, packet_id=1) + publish("u31042/kept", "marker"))
    expect_publish(c, "u31042/kept", b"marker")
    expect_nothing(c)


def test_MQTT_3_10_4_3():
    # A QoS 2 delivery started before UNSUBSCRIBE is completed after it.
    b = broker()
    c = connected(b, "u31043")
    c.send(subscribe(1, [("u31043/t", 2)]))
    c.expect(suback(1, 2))
    pub = connected(b, "u31043-pub")
    pub.send(publish("u31043/t", "m", qos=2, packet_id=1))
    pub.expect(pubrec(1))
    pub.send(pubrel(1))
    pub.expect(pubcomp(1))
    pid = expect_publish(c, "u31043/t", b"m", qos=2)
    c.send(unsubscribe(2, ["u31043/t"]))
    c.expect(unsuback(2))
    c.send(pubrec(pid))
    c.expect(pubrel(pid))
    c.send(pubcomp(pid))
    expect_nothing(c)


def test_MQTT_3_10_4_4():
    c = connected(broker(), "u31044")
    c.send(subscribe(1, [("u31044/t", 0)]))
    c.expect(suback(1, 0))
    c.send(unsubscribe(0xBEEF, ["u31044/t"]))
    c.expect(bytes([0xB0, 0x02, 0xBE, 0xEF]))


def test_MQTT_3_10_4_5():
    # UNSUBACK even when nothing was deleted.
    c = connected(broker(), "u31045")
    c.send(unsubscribe(9, ["u31045/never"]))
    c.expect(bytes([0xB0, 0x02, 0x00, 0x09]))


def test_MQTT_3_10_4_6():
    # Several filters in one UNSUBSCRIBE: all handled, one UNSUBACK.
    b = broker()
    c = connected(b, "u31046")
    c.send(subscribe(1, [("u31046/a", 0), ("u31046/b", 0), ("u31046/c", 0)]))
    c.expect(suback(1, 0, 0, 0))
    c.send(unsubscribe(2, ["u31046/a", "u31046/nope", "u31046/b"]))
    c.expect(unsuback(2))
    expect_nothing(c, 0.2)
    pub = connected(b, "u31046-pub")
    pub.send(publish("u31046/a", "1") + publish("u31046/b", "2") + publish("u31046/c", "3"))
    expect_publish(c, "u31046/c", b"3")
    expect_nothing(c)


if __name__ == "__main__":
    main([
        test_MQTT_3_8_3_2, test_MQTT_3_8_4_1, test_MQTT_3_8_4_2, test_MQTT_3_8_4_3,
        test_MQTT_3_8_4_4, test_MQTT_3_8_4_5, test_MQTT_3_9_3_1, test_MQTT_3_9_3_2,
        test_MQTT_3_10_4_1, test_MQTT_3_10_4_2, test_MQTT_3_10_4_3, test_MQTT_3_10_4_4,
        test_MQTT_3_10_4_5, test_MQTT_3_10_4_6,
    ], broker)
