#!/usr/bin/python3
"""Command-line publishers end to end: `tern pub -l`, `mosquitto_pub -l` and the client library's
asynchronous API (bench/client_pub.cpp) publish the same N-line file through Debian's mosquitto
broker to one `mosquitto_sub -C N` subscriber. The time runs from starting the publisher (its
first CONNECT) to the subscriber's exit after the N-th message. QoS 0, and QoS 1 with 100 in
flight; alternating rounds; medians. Also the publishers' peak RSS.

  bench/tools.py --tern build/release/tern --client-pub build/release/bench_client_pub [--lines N] [--rounds 3]
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def publishers(args, port, qos, lines):
    inflight = ["-M", "100"] if qos > 0 else []
    common = ["-h", "127.0.0.1", "-p", str(port), "-t", "bench/tools", "-q", str(qos)]
    return {
        "mosquitto_pub -l": (["mosquitto_pub", *common, "-l", *inflight], lines),
        "tern pub -l": ([args.tern, "pub", *common, "-l", *inflight], lines),
        "async API": ([args.client_pub, "127.0.0.1", str(port), "bench/tools", str(qos), "100" if qos else "20", lines], None),
    }


def run_one(cmd, stdin_path, port, qos, n):
    """Returns (seconds, publisher peak RSS in KiB, publisher output)."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/tools", "-q", str(qos),
                            "-C", str(n)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # subscribed (the broker is idle otherwise)
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.monotonic()
    pub = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(pub.pid, 0)
    pub.returncode = os.waitstatus_to_exitcode(status)
    out = pub.stdout.read().decode() + pub.stderr.read().decode()
    try:
        sub.wait(timeout=300)
        elapsed = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        sub.kill()
        sub.wait()
        raise RuntimeError(f"{cmd[0]}: the subscriber did not get {n} messages in 300 s ({out.strip()})")
    if stdin_path:
        stdin.close()
    if pub.returncode != 0 or sub.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])}: exit {pub.returncode}, subscriber {sub.returncode}: {out}"
                           f"{sub.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss, out.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--client-pub", required=True)
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tern-bench-tools-")
    lines = os.path.join(tmp, "lines.txt")
    with open(lines, "w") as f:
        for i in range(args.lines):
            f.write(f"reading {i:07d} temperature=21.5 humidity=40\n")
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        # No queue limits: the subscriber must see every message of every run.
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n")
    log = open(os.path.join(tmp, "mosquitto.log"), "w")
    broker = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    results = {}
    try:
        if not wait_port(port):
            sys.exit("mosquitto did not start")
        for r in range(args.rounds):
            for qos in (0, 1):
                order = list(publishers(args, port, qos, lines).items())
                if r % 2:
                    order.reverse()
                for name, (cmd, stdin_path) in order:
                    secs, rss, out = run_one(cmd, stdin_path, port, qos, args.lines)
                    results.setdefault((qos, name), []).append((secs, rss, out))
                    print(f"round {r + 1} qos{qos} {name:18} {secs:7.2f} s  {args.lines / secs / 1000:8.1f} k msg/s"
                          f"  peak RSS {rss / 1024:6.1f} MiB", flush=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
    print(f"\n{args.lines} messages, median of {args.rounds} rounds, through Debian's mosquitto broker")
    print(f"{'scenario':10} {'publisher':18} {'seconds':>8} {'k msg/s':>9} {'peak RSS':>10}   vs mosquitto_pub")
    slower = []
    for qos in (0, 1):
        base = statistics.median(s for s, _, _ in results[(qos, "mosquitto_pub -l")])
        for name in ("mosquitto_pub -l", "tern pub -l", "async API"):
            runs = results[(qos, name)]
            secs = statistics.median(s for s, _, _ in runs)
            rss = max(m for _, m, _ in runs)
            label = f"qos{qos}" + (" M100" if qos else "")
            print(f"{label:10} {name:18} {secs:8.2f} {args.lines / secs / 1000:9.1f} {rss / 1024:8.1f} MiB   {base / secs:5.2f}x")
            if name != "mosquitto_pub -l" and secs > base:
                slower.append(f"{label} {name}")
        print(f"{'':10} async API: {runs[-1][2]}")
    if slower:
        print("slower than mosquitto_pub: " + ", ".join(slower))


if __name__ == "__main__":
    main()
