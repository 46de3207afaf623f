#!/usr/bin/python3
"""Subscribes to a topic and prints what arrives, with Eclipse Paho (the lecture's hands-on demo).

    examples/subscriber.py -t '#'            # like: mosquitto_sub -t '#'
    examples/subscriber.py -t hello -q 2 -v  # QoS 2, print the topic too
"""
import argparse
import sys

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser(description="Subscribe and print messages with paho-mqtt.", add_help=False)
    ap.add_argument("--help", action="help", help="show this help and exit")
    ap.add_argument("-h", "--host", default="localhost", help="broker host (default localhost)")
    ap.add_argument("-p", "--port", type=int, default=1883, help="broker port (default 1883)")
    ap.add_argument("-t", "--topic", default="#", help="topic filter (default #)")
    ap.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="QoS (default 0)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload' (and QoS, retain)")
    ap.add_argument("-C", "--count", type=int, default=0, help="exit after this many messages (default: never)")
    ap.add_argument("--id", default="", help="client id (default: chosen by paho)")
    ap.add_argument("--persistent", action="store_true",
                    help="clean_session=False: the broker keeps the subscription and queues QoS 1/2 "
                         "messages while we are away (needs --id)")
    args = ap.parse_args()
    if args.persistent and not args.id:
        ap.error("--persistent needs --id")

    received = 0

    def on_connect(client, userdata, flags, rc):
        if rc != 0:
            print(f"connection refused: {mqtt.connack_string(rc)}", file=sys.stderr)
            client.disconnect()
            return
        if flags.get("session present"):
            print("(session present: subscription kept by the broker)", file=sys.stderr)
        # Subscribing in on_connect renews the subscription after every reconnect.
        client.subscribe(args.topic, args.qos)

    def on_message(client, userdata, msg):
        nonlocal received
        text = msg.payload.decode(errors="replace")
        if args.verbose:
            print(f"{msg.topic} {text}  (qos {msg.qos}{', retained' if msg.retain else ''})", flush=True)
        else:
            print(text, flush=True)
        received += 1
        if args.count and received >= args.count:
            client.disconnect()

    client = mqtt.Client(client_id=args.id, clean_session=not args.persistent, protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=60)
    except OSError as e:
        print(f"cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    try:
        client.loop_forever()  # reconnects on its own if the connection drops
    except KeyboardInterrupt:
        client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
