#!/usr/bin/python3
"""MQTT 5.0 conformance: a Reason String or User Property never pushes a server packet over the
client's Maximum Packet Size (CONNACK 3.2.2-19/20, PUBACK 3.4.2-2/3, PUBREC 3.5.2-2/3, PUBREL
3.6.2-2/3, PUBCOMP 3.7.2-2/3, SUBACK 3.9.2-1/2, UNSUBACK 3.11.2-1/2, DISCONNECT 3.14.2-4).

Each test gives the client a small Maximum Packet Size, provokes the packet (with a non-zero reason
code where the packet has one, the case where a Reason String would be most tempting) and checks
the exact bytes: the packet fits, and carries no Reason String (0x1F) or User Property (0x26)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker()


def small(n):
    """CONNECT property: Maximum Packet Size n."""
    return p_u32(0x27, n)


def property_ids(block):
    """Property identifiers in a property block (without its length), in order."""
    ids, i = [], 0
    sizes = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2, 0x22: 2, 0x23: 2,
             0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}
    while i < len(block):
        ident = block[i]
        ids.append(ident)
        i += 1
        if ident in sizes:
            i += sizes[ident]
        elif ident == 0x0B:
            while block[i] & 0x80:
                i += 1
            i += 1
        elif ident == 0x26:
            for _ in range(2):
                i += 2 + struct.unpack("!H", block[i:i + 2])[0]
        else:  # strings and binary data
            i += 2 + struct.unpack("!H", block[i:i + 2])[0]
    assert i == len(block), f"bad property block {block.hex()}"
    return ids


def check_fits(pkt, limit, what):
    assert pkt is not None, f"no {what}"
    assert len(pkt) <= limit, f"{what} of {len(pkt)} bytes exceeds the client's Maximum Packet Size {limit}"


def test_MQTT_3_2_2_19():
    # A success CONNACK (with Tern's properties) and a refusal (0x8C) both fit and carry no Reason String.
    b = broker()
    c = Client(b.port)
    c.send(connect5("mps-connack", props=small(40)))
    ack = c.recv()
    check_fits(ack, 40, "CONNACK")
    assert ack[3] == 0 and 0x1F not in property_ids(ack[5:]), ack.hex()
    r = Client(b.port)
    r.send(connect5("mps-refused", props=small(8) + p_str(0x15, "NO-SUCH-METHOD")))
    ack = r.recv()
    check_fits(ack, 8, "CONNACK")
    assert ack == bytes([0x20, 3, 0, 0x8C, 0]), ack.hex()


def test_MQTT_3_2_2_20():
    b = broker()
    c = Client(b.port)
    c.send(connect5("mps-connack-up", props=small(40)))
    ack = c.recv()
    check_fits(ack, 40, "CONNACK")
    assert 0x26 not in property_ids(ack[5:]), ack.hex()


def puback_0x10(client_id):
    c = connected5(broker(), client_id, props=small(5))
    c.send(publish5("mps/nobody/" + client_id, "x", qos=1, pid=1))
    return c.recv()


def test_MQTT_3_4_2_2():
    pkt = puback_0x10("mps-puback")
    check_fits(pkt, 5, "PUBACK")
    assert pkt == ack5(0x40, 1, 0x10), pkt.hex()  # No matching subscribers, and nothing else


def test_MQTT_3_4_2_3():
    pkt = puback_0x10("mps-puback-up")
    assert pkt == ack5(0x40, 1, 0x10), pkt.hex()


def pubrec_0x87(client_id):
    c = connected5(broker(), client_id, props=small(5))
    c.send(publish5("$SYS/mps/" + client_id, "x", qos=2, pid=2))  # refused: $SYS is the broker's
    return c.recv()


def test_MQTT_3_5_2_2():
    pkt = pubrec_0x87("mps-pubrec")
    check_fits(pkt, 5, "PUBREC")
    assert pkt == ack5(0x50, 2, 0x87), pkt.hex()


def test_MQTT_3_5_2_3():
    pkt = pubrec_0x87("mps-pubrec-up")
    assert pkt == ack5(0x50, 2, 0x87), pkt.hex()


def pubrel_to(client_id):
    b = broker()
    sub = subscribed5(b, client_id, [("mps/rel/" + client_id, 2)], props=small(64))
    p = connected5(b, id_on_worker("mps-relpub", 1))
    p.send(publish5("mps/rel/" + client_id, "x", qos=2, pid=3))
    assert p.recv() == ack5(0x50, 3)
    p.send(ack5(0x62, 3))
    assert p.recv() == ack5(0x70, 3)
    pid = expect_publish5(sub, "mps/rel/" + client_id, b"x", qos=2)
    sub.send(ack5(0x50, pid))
    return sub.recv(), pid


def test_MQTT_3_6_2_2():
    pkt, pid = pubrel_to("mps-pubrel")
    check_fits(pkt, 64, "PUBREL")
    assert pkt == ack5(0x62, pid), pkt.hex()


def test_MQTT_3_6_2_3():
    pkt, pid = pubrel_to("mps-pubrel-up")
    assert pkt == ack5(0x62, pid), pkt.hex()


def pubcomp_0x92(client_id):
    c = connected5(broker(), client_id, props=small(5))
    c.send(ack5(0x62, 9))  # PUBREL for an id the server does not hold
    return c.recv()


def test_MQTT_3_7_2_2():
    pkt = pubcomp_0x92("mps-pubcomp")
    check_fits(pkt, 5, "PUBCOMP")
    assert pkt == ack5(0x70, 9, 0x92), pkt.hex()


def test_MQTT_3_7_2_3():
    pkt = pubcomp_0x92("mps-pubcomp-up")
    assert pkt == ack5(0x70, 9, 0x92), pkt.hex()


def suback_0x8f(client_id):
    c = connected5(broker(), client_id, props=small(6))
    c.send(subscribe5(4, [("a/#/b", 1)]))
    return c.recv()


def test_MQTT_3_9_2_1():
    pkt = suback_0x8f("mps-suback")
    check_fits(pkt, 6, "SUBACK")
    assert pkt == suback5(4, 0x8F), pkt.hex()


def test_MQTT_3_9_2_2():
    pkt = suback_0x8f("mps-suback-up")
    assert pkt == suback5(4, 0x8F), pkt.hex()


def unsuback_0x11(client_id):
    c = connected5(broker(), client_id, props=small(6))
    c.send(unsubscribe5(5, ["never/subscribed"]))
    return c.recv()


def test_MQTT_3_11_2_1():
    pkt = unsuback_0x11("mps-unsuback")
    check_fits(pkt, 6, "UNSUBACK")
    assert pkt == unsuback5(5, 0x11), pkt.hex()


def test_MQTT_3_11_2_2():
    pkt = unsuback_0x11("mps-unsuback-up")
    assert pkt == unsuback5(5, 0x11), pkt.hex()


def test_MQTT_3_14_2_4():
    # A takeover: the old connection hears DISCONNECT 0x8E, with no User Property, within its limit.
    b = broker()
    old = connected5(b, "mps-takeover", props=small(3))
    connected5(b, "mps-takeover")
    got = old.expect_closed()
    assert got, "no DISCONNECT"
    check_fits(got[-1], 3, "DISCONNECT")
    assert got[-1] == bytes([0xE0, 1, 0x8E]), got[-1].hex()


if __name__ == "__main__":
    main([
        test_MQTT_3_2_2_19, test_MQTT_3_2_2_20, test_MQTT_3_4_2_2, test_MQTT_3_4_2_3, test_MQTT_3_5_2_2,
        test_MQTT_3_5_2_3, test_MQTT_3_6_2_2, test_MQTT_3_6_2_3, test_MQTT_3_7_2_2, test_MQTT_3_7_2_3,
        test_MQTT_3_9_2_1, test_MQTT_3_9_2_2, test_MQTT_3_11_2_1, test_MQTT_3_11_2_2, test_MQTT_3_14_2_4,
    ], broker)
