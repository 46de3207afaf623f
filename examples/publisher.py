#!/usr/bin/python3
"""Publishes messages to an MQTT broker with Eclipse Paho (the lecture's hands-on demo).

    examples/publisher.py -t hello -m world            # like: mosquitto_pub -t hello -m world
    examples/publisher.py -t sensors/temp -q 1 -n 10   # ten numbered messages at QoS 1
"""
import argparse
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser(description="Publish messages with paho-mqtt.", add_help=False)
    ap.add_argument("--help", action="help", help="show this help and exit")
    ap.add_argument("-h", "--host", default="localhost", help="broker host (default localhost)")
    ap.add_argument("-p", "--port", type=int, default=1883, help="broker port (default 1883)")
    ap.add_argument("-t", "--topic", default="hello", help="topic (default hello)")
    ap.add_argument("-q", "--qos", type=int, choices=(0, 1, 2), default=0, help="QoS (default 0)")
    ap.add_argument("-m", "--message", default="world", help="payload (default world)")
    ap.add_argument("-n", "--count", type=int, default=1, help="number of messages; >1 appends ' #i' (default 1)")
    ap.add_argument("-i", "--interval", type=float, default=0.0, help="seconds between messages (default 0)")
    ap.add_argument("-r", "--retain", action="store_true", help="set the retain flag")
    ap.add_argument("--id", default="", help="client id (default: chosen by paho)")
    args = ap.parse_args()

    client = mqtt.Client(client_id=args.id, protocol=mqtt.MQTTv311)
    try:
        client.connect(args.host, args.port, keepalive=60)
    except OSError as e:
        print(f"cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    client.loop_start()  # background thread: sends, receives acknowledgements
    infos = []
    for i in range(args.count):
        payload = args.message if args.count == 1 else f"{args.message} #{i}"
        infos.append(client.publish(args.topic, payload, qos=args.qos, retain=args.retain))
        if args.interval:
            time.sleep(args.interval)
    for info in infos:
        info.wait_for_publish(timeout=10)  # QoS 1: PUBACK received; QoS 2: PUBCOMP received
    print(f"published {sum(i.is_published() for i in infos)}/{args.count} to {args.topic!r} at QoS {args.qos}")
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
