#!/usr/bin/python3
"""MQTT 5.0 chapter 6, MQTT over WebSockets, byte for byte: the opening handshake's subprotocol,
binary frames in both directions, packets that do not line up with frames, and the close on a text
frame. A WebSocket listener next to the MQTT one; frames are built by hand (ternlib.WsClient)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../integration"))
from ternlib import *  # noqa: E402,F403
from conflib import *  # noqa: E402,F403

broker = SharedBroker(config="allow_anonymous true\nlistener 0 127.0.0.1\nlistener 0 127.0.0.1\nprotocol websockets\n")
_ws_port = []


def ws_port():
    b = broker()
    if not _ws_port:
        _ws_port.append(int(b.wait_log(r"Opening websockets listen socket on port (\d+)\.").group(1)))
    return _ws_port[0]


def ws_connected(client_id, **kw):
    c = WsClient(ws_port())
    assert c.response.startswith("HTTP/1.1 101 "), c.response
    c.send(connect5(client_id, **kw))
    assert c.recv() == connack5(False, 0), "no CONNACK"
    return c


def test_MQTT_6_0_0_1():
    """Every packet from the server comes in binary frames (WsClient asserts the opcode of each data
    frame); a text frame from the client closes the network connection, with WebSocket close code
    1003, and nothing else: other clients go on."""
    c = ws_connected("ws-text", will=("ws/will", b"gone", 0, False))
    other = ws_connected("ws-other")
    other.send(subscribe5(1, [("ws/#", 0)]))
    assert other.recv() == suback5(1, 0)
    c.send_frame(1, publish5("ws/x", b"y"))
    assert c.expect_closed() == [], "no MQTT packet after a text frame"
    assert (8, b"\x03\xeb") in c.control, c.control
    # The connection ended without DISCONNECT, so the will is published.
    assert other.recv() == publish5("ws/will", b"gone")
    other.send(publish5("ws/still", b"here"))
    assert other.recv() == publish5("ws/still", b"here")


def test_MQTT_6_0_0_2():
    """A CONNECT split over a fragmented message (with a ping between fragments), two packets in one
    frame, and a PUBLISH split over two messages are read as one byte stream."""
    c = WsClient(ws_port())
    pkt = connect5("ws-frames")
    c.send_frame(2, pkt[:3], fin=False)
    c.send_frame(9, b"ping!")
    c.send_frame(0, pkt[3:7], fin=False)
    c.send_frame(0, pkt[7:], fin=True)
    assert c.recv() == connack5(False, 0)
    assert (0xA, b"ping!") in c.control, c.control  # the pong echoes the ping
    c.send(subscribe5(1, [("split/t", 0)]) + publish5("split/t", b"one"))
    assert c.recv() == suback5(1, 0)
    assert c.recv() == publish5("split/t", b"one")
    p = publish5("split/t", b"two")
    c.send(p[:4])
    c.send(p[4:])
    assert c.recv() == publish5("split/t", b"two")
    c.send(bytes([0xE0, 0x00]))
    c.expect_closed()


def test_MQTT_6_0_0_3():
    """Client requirement. The server side: a client that offers only other subprotocols is refused
    with HTTP 400; one that offers none is served without a Sec-WebSocket-Protocol header."""
    c = WsClient(ws_port(), protocols="chat, superchat")
    assert c.response.startswith("HTTP/1.1 400 "), c.response
    c = WsClient(ws_port(), protocols="")
    assert c.response.startswith("HTTP/1.1 101 "), c.response
    assert "Sec-WebSocket-Protocol" not in c.response, c.response


def test_MQTT_6_0_0_4():
    c = WsClient(ws_port(), protocols="chat, mqtt")
    assert c.response.startswith("HTTP/1.1 101 Switching Protocols"), c.response
    assert re.search(r"(?mi)^Sec-WebSocket-Protocol: mqtt\r?$", c.response), c.response
    # RFC 6455's example key and its accept value.
    assert re.search(r"(?mi)^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r?$", c.response), c.response
    c.send(connect5("ws-proto"))
    assert c.recv() == connack5(False, 0)


if __name__ == "__main__":
    main([test_MQTT_6_0_0_1, test_MQTT_6_0_0_2, test_MQTT_6_0_0_3, test_MQTT_6_0_0_4], broker)
