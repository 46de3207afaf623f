#!/usr/bin/python3
"""MQTT over WebSockets (`protocol websockets` listeners) against the real broker: paho-mqtt's
websocket transport and MQTT.js (npm) as real clients, WebSocket and TCP clients exchanging messages
through one broker, bad framing, the close handshake and the will, the handshake's refusals and
http_dir. The chapter 6 statements have byte-level tests in tests/conformance/test_v5_websockets.py."""
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import (DISCONNECT, Broker, Client, WsClient, connack, connect, publish, run_tests,  # noqa: E402
                     subscribe)

HERE = os.path.dirname(os.path.abspath(__file__))
HTTP_DIR = tempfile.mkdtemp(prefix="tern-http-")
os.chmod(HTTP_DIR, 0o755)  # the broker may run as user mosquitto
with open(os.path.join(HTTP_DIR, "index.html"), "w") as f:
    f.write("<h1>tern websockets</h1>")
CONFIG = f"""allow_anonymous true
listener 0 127.0.0.1
listener 0 127.0.0.1
protocol websockets
http_dir {HTTP_DIR}
"""
BROKER = None
WS_PORT = None


def start():
    global BROKER, WS_PORT
    BROKER = Broker(CONFIG)
    WS_PORT = int(BROKER.wait_log(r"Opening websockets listen socket on port (\d+)\.").group(1))


def paho_client(client_id, version=mqtt.MQTTv311, transport="websockets"):
    msgs = queue.Queue()
    c = mqtt.Client(client_id=client_id, protocol=version, transport=transport)
    c.on_message = lambda cl, u, m: msgs.put(m)
    connected = queue.Queue()
    if version == mqtt.MQTTv5:
        c.on_connect = lambda cl, u, flags, rc, p=None: connected.put(rc)
    else:
        c.on_connect = lambda cl, u, flags, rc: connected.put(rc)
    port = WS_PORT if transport == "websockets" else BROKER.port
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    rc = connected.get(timeout=5)
    assert rc == 0, rc
    return c, msgs


def test_paho_websockets_and_tcp_clients_exchange_messages():
    for version in (mqtt.MQTTv311, mqtt.MQTTv5):
        ws, ws_msgs = paho_client(f"ws-{version}", version)
        tcp, tcp_msgs = paho_client(f"tcp-{version}", version, transport="tcp")
        ws.subscribe("room/ws", qos=2)
        tcp.subscribe("room/tcp", qos=2)
        time.sleep(0.3)
        for qos in (0, 1, 2):
            tcp.publish("room/ws", f"to-ws-{qos}", qos=qos)
            ws.publish("room/tcp", f"to-tcp-{qos}", qos=qos)
            m = ws_msgs.get(timeout=5)
            assert (m.topic, m.payload, m.qos) == ("room/ws", f"to-ws-{qos}".encode(), qos), m
            m = tcp_msgs.get(timeout=5)
            assert (m.topic, m.payload, m.qos) == ("room/tcp", f"to-tcp-{qos}".encode(), qos), m
        # A payload far larger than one read or one frame header's short forms.
        big = bytes(range(256)) * 1000
        tcp.publish("room/ws", big, qos=1)
        assert ws_msgs.get(timeout=5).payload == big
        for c in (ws, tcp):
            c.disconnect()
            c.loop_stop()


def test_bad_framing_closes_with_1002():
    for what, raw in [
        ("unmasked", bytes([0x82, 0x02, 0xC0, 0x00])),
        ("reserved bits", bytes([0xC2, 0x80, 0, 0, 0, 0])),
        ("unknown opcode", WsClient.frame(3, b"x")),
    ]:
        c = WsClient(WS_PORT)
        assert c.connect(f"bad-{len(raw)}") == connack()
        c.sock.sendall(raw)
        c.expect_closed()
        assert (8, b"\x03\xea") in c.control, (what, c.control)


def test_close_frame_is_echoed_and_publishes_the_will():
    watcher = Client(BROKER.port)
    assert watcher.connect("watcher2") == connack()
    watcher.send(subscribe(1, [("wills/#", 0)]))
    watcher.recv()
    c = WsClient(WS_PORT)
    assert c.connect("closer", will=("wills/closer", b"bye", 0, False)) == connack()
    c.send_frame(8, b"\x03\xe9")  # 1001 going away, without DISCONNECT
    c.expect_closed()
    assert (8, b"\x03\xe9") in c.control, c.control
    assert watcher.recv() == publish("wills/closer", b"bye")
    # With DISCONNECT first, there is no will, and the server closes with 1000.
    c = WsClient(WS_PORT)
    assert c.connect("closer2", will=("wills/closer2", b"bye", 0, False)) == connack()
    c.send(DISCONNECT)
    c.expect_closed()
    assert (8, b"\x03\xe8") in c.control, c.control
    assert watcher.recv(timeout=0.5) is None
    watcher.close()


def test_malformed_mqtt_inside_frames_is_a_protocol_error():
    c = WsClient(WS_PORT)
    c.send(bytes([0x10, 0x02, 0x00, 0x00]))  # a CONNECT too short to hold a protocol name
    c.expect_closed()
    assert (8, b"\x03\xea") in c.control, c.control


def test_handshake_refusals():
    def raw(request):
        s = socket.create_connection(("127.0.0.1", WS_PORT), timeout=5)
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode(errors="replace")

    c = WsClient(WS_PORT, protocols="chat")
    assert c.response.startswith("HTTP/1.1 400 "), c.response
    BROKER.wait_log(r"WebSocket handshake from 127\.0\.0\.1:\d+ refused: no MQTT subprotocol offered \(chat\)")
    assert raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").startswith("HTTP/1.1 405 ")
    assert raw(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 5000 + b"\r\n\r\n").startswith("HTTP/1.1 431 ")
    # http_dir: plain GETs are served from it, and only from it.
    page = raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert page.startswith("HTTP/1.1 200 OK") and page.endswith("<h1>tern websockets</h1>"), page
    assert raw(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n").startswith("HTTP/1.1 403 ")
    # An MQTT client on the WebSocket port gets no MQTT answer; a WebSocket client on the MQTT port
    # is not an MQTT CONNECT and is closed.
    s = Client(WS_PORT)
    s.send(connect("confused"))
    s.expect_closed()
    ws = socket.create_connection(("127.0.0.1", BROKER.port), timeout=5)
    ws.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ws.recv(100) == b""
    assert BROKER.alive()


def test_mqttjs_over_websockets():
    """MQTT.js from npm (the client browsers use), MQTT 3.1.1 and 5.0."""
    mjs = os.path.join(HERE, "mqttjs")
    if not os.path.isdir(os.path.join(mjs, "node_modules", "mqtt")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=mjs, check=True, timeout=300)
    for version in ("4", "5"):
        r = subprocess.run(["node", os.path.join(mjs, "pubsub.js"), f"ws://127.0.0.1:{WS_PORT}/mqtt", version],
                           capture_output=True, text=True, timeout=30)
        print(r.stdout, end="")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("ok ") >= 9, r.stdout


if __name__ == "__main__":
    start()
    try:
        run_tests([
            test_paho_websockets_and_tcp_clients_exchange_messages,
            test_bad_framing_closes_with_1002,
            test_close_frame_is_echoed_and_publishes_the_will,
            test_malformed_mqtt_inside_frames_is_a_protocol_error,
            test_handshake_refusals,
            test_mqttjs_over_websockets,
        ])
    finally:
        BROKER.stop()
        shutil.rmtree(HTTP_DIR, ignore_errors=True)
