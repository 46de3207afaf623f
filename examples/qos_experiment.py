#!/usr/bin/python3
"""The lecture's "Exploring QoS levels" experiment, with Eclipse Paho.

For each QoS 0, 1 and 2:
  1. a persistent subscriber (clean_session=False, fixed client id) subscribes at that QoS;
  2. a publisher sends --count numbered messages at that QoS, a few milliseconds apart;
  3. after about a third of them have arrived, the subscriber's TCP connection is cut
     (socket shutdown, no DISCONNECT: like a device losing its network);
  4. after a short outage the subscriber reconnects with the same client id (same session) and
     waits for the rest.
Then it prints, per QoS, how many messages were sent, received (distinct), lost and duplicated
(delivered more than once), and finally the same numbers as one JSON line.

Expected: QoS 0 may lose messages (those in flight at the cut and those sent during the outage);
QoS 1 loses none but may duplicate (a message delivered but not yet acknowledged when the
connection died is sent again); QoS 2 loses none and duplicates none.

    examples/qos_experiment.py                      # broker on localhost:1883
    examples/qos_experiment.py --port 1884 --count 500
"""
import argparse
import json
import socket
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt


def connect_or_die(client, host, port):
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        print(f"cannot connect to {host}:{port}: {e}", file=sys.stderr)
        sys.exit(1)


def wait_connack(client, event, timeout=5.0):
    """Runs client's network loop until event is set (by a callback) or timeout."""
    deadline = time.time() + timeout
    while not event.is_set() and time.time() < deadline:
        if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
            break
    return event.is_set()


def wipe_session(host, port, client_id, exit_on_error=True):
    """Connects with clean_session=True and disconnects: the broker then holds no session for client_id."""
    done = threading.Event()
    c = mqtt.Client(client_id=client_id, clean_session=True)

    def on_connect(client, userdata, flags, rc):
        if rc != 0 and exit_on_error:
            print(f"connection to {host}:{port} refused: {mqtt.connack_string(rc)}", file=sys.stderr)
            sys.exit(1)
        done.set()
    c.on_connect = on_connect
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        if not exit_on_error:
            return
        print(f"cannot connect to {host}:{port}: {e}", file=sys.stderr)
        sys.exit(1)
    if not wait_connack(c, done) and exit_on_error:
        print(f"no CONNACK from {host}:{port}", file=sys.stderr)
        sys.exit(1)
    c.disconnect()
    for _ in range(5):
        if c.loop(0.02) != mqtt.MQTT_ERR_SUCCESS:
            break


def run_one(host, port, qos, count, interval, outage, run_id, verbose):
    topic = f"qos-experiment/{run_id}/q{qos}"
    sub_id = f"qos-experiment-sub-q{qos}"
    prefix = f"{run_id}:{qos}:"

    # Start from an empty session: connect once with clean_session=True and leave.
    wipe_session(host, port, sub_id)

    deliveries = []          # sequence numbers in arrival order (duplicates included)
    cut = threading.Event()  # set when we have cut the connection
    connected = threading.Event()
    session_present = []
    lock = threading.Lock()
    cut_after = max(1, count // 3)

    sub = mqtt.Client(client_id=sub_id, clean_session=False)

    def on_connect(client, userdata, flags, rc):
        session_present.append(flags.get("session present", 0))
        connected.set()

    def on_message(client, userdata, msg):
        text = msg.payload.decode(errors="replace")
        if not text.startswith(prefix):
            return  # a leftover from an earlier run
        with lock:
            deliveries.append(int(text[len(prefix):]))
            n = len(deliveries)
        if n >= cut_after and not cut.is_set():
            # Cut the TCP connection without DISCONNECT, right while handling this message: for QoS 1
            # its PUBACK never leaves, so the broker will send it again after the reconnect.
            cut.set()
            sock = client.socket()
            if sock:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    subscribed = threading.Event()
    sub.on_connect = on_connect
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    connect_or_die(sub, host, port)
    if not wait_connack(sub, connected):
        print(f"no CONNACK from {host}:{port}", file=sys.stderr)
        sys.exit(1)
    sub.subscribe(topic, qos)
    if not wait_connack(sub, subscribed):  # same loop, waiting for the SUBACK
        print(f"no SUBACK from {host}:{port}", file=sys.stderr)
        sys.exit(1)

    # The publisher runs in its own thread, with paho's network thread.
    pub = mqtt.Client(client_id=f"qos-experiment-pub-{run_id}-q{qos}", clean_session=True)
    connect_or_die(pub, host, port)
    pub.loop_start()
    infos = []
    pub_done = threading.Event()

    def publish_all():
        for i in range(count):
            infos.append(pub.publish(topic, f"{prefix}{i}", qos=qos))
            time.sleep(interval)
        for info in infos:
            info.wait_for_publish(timeout=10)
        pub_done.set()

    publisher = threading.Thread(target=publish_all, daemon=True)
    publisher.start()

    # The subscriber's network loop runs here; on a lost connection, wait and reconnect (same id).
    reconnects = 0
    last_progress = time.time()
    last_n = 0
    deadline = time.time() + 30 + count * interval * 2
    while time.time() < deadline:
        rc = sub.loop(0.05)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            if verbose:
                print(f"  q{qos}: connection lost after {len(deliveries)} deliveries (rc {rc}); "
                      f"reconnecting in {outage}s", file=sys.stderr)
            time.sleep(outage)
            connected.clear()
            try:
                sub.reconnect()
            except OSError as e:
                print(f"reconnect failed: {e}", file=sys.stderr)
                time.sleep(0.2)
                continue
            reconnects += 1
            wait_connack(sub, connected)
            continue
        with lock:
            n = len(deliveries)
            distinct = len(set(deliveries))
        if n != last_n:
            last_n, last_progress = n, time.time()
        if pub_done.is_set() and cut.is_set() and reconnects:
            if distinct >= count and time.time() - last_progress > 0.3:
                break  # everything is here; a short grace period lets late duplicates show
            if time.time() - last_progress > 1.5:
                break  # nothing more is coming (QoS 0 losses)

    publisher.join(timeout=5)
    pub.disconnect()
    pub.loop_stop()
    # Leave no session behind on the broker.
    sub.disconnect()
    sub.loop(0.1)
    wipe_session(host, port, sub_id, exit_on_error=False)

    with lock:
        distinct = set(deliveries)
        total = len(deliveries)
    return {
        "qos": qos,
        "sent": count,
        "received": len(distinct),
        "lost": count - len(distinct),
        "duplicated": total - len(distinct),
        "in_order": deliveries == sorted(deliveries),
        "reconnects": reconnects,
        "session_present": bool(session_present[-1]) if len(session_present) > 1 else False,
    }


def main():
    ap = argparse.ArgumentParser(description="Lose the subscriber's connection mid-stream at QoS 0, 1 and 2.")
    ap.add_argument("--host", default="localhost", help="broker host (default localhost)")
    ap.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    ap.add_argument("--count", type=int, default=200, help="messages per QoS level (default 200)")
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between publishes (default 0.005)")
    ap.add_argument("--outage", type=float, default=0.5, help="seconds the subscriber stays away (default 0.5)")
    ap.add_argument("--verbose", action="store_true", help="narrate on stderr")
    args = ap.parse_args()

    run_id = uuid.uuid4().hex[:8]
    results = [run_one(args.host, args.port, q, args.count, args.interval, args.outage, run_id, args.verbose)
               for q in (0, 1, 2)]

    print(f"QoS experiment against {args.host}:{args.port}: {args.count} messages per level, "
          f"subscriber connection cut after ~{max(1, args.count // 3)} and resumed {args.outage}s later")
    print()
    print(f"{'qos':>3}  {'sent':>6}  {'received':>8}  {'lost':>6}  {'duplicated':>10}  {'session resumed':>15}")
    for r in results:
        print(f"{r['qos']:>3}  {r['sent']:>6}  {r['received']:>8}  {r['lost']:>6}  {r['duplicated']:>10}  "
              f"{'yes' if r['session_present'] else 'no':>15}")
    print()
    print(json.dumps({"host": args.host, "port": args.port, "count": args.count, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
