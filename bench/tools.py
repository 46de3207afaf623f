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
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, wait_port  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"


def publishers(args, port, qos, lines):
    inflight = ["-M", "100"] if qos > 0 else []
    common = ["-h", "127.0.0.1", "-p", str(port), "-t", "bench/tools", "-q", str(qos)]
    return {
        "mosquitto_pub -l": (["mosquitto_pub", *common, "-l", *inflight], lines),
        "tern pub -l": ([args.tern, "pub", *common, "-l", *inflight], lines),
        "async API": ([args.client_pub, "127.0.0.1", str(port), "bench/tools", str(qos), "100" if qos else "20", lines], None),
    }


def subscriptions_logged(log_path):
    with open(log_path) as f:
        return sum(1 for line in f if line.rstrip().endswith(" bench/tools"))


def wait_subscribed(log_path, before):
    """Waits until the broker logs one more subscription to the benchmark topic (log_type subscribe)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        if subscriptions_logged(log_path) > before:
            return
        time.sleep(0.02)
    raise RuntimeError("the subscriber did not subscribe")


def peak_rss_kib(pid, stop):
    """Polls VmHWM (the peak resident set since exec) until `stop` is set; returns the last value."""
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        stop.wait(0.02)
    return peak


def run_one(cmd, stdin_path, port, qos, n, log_path):
    """Returns (seconds to the last message, messages received, publisher peak RSS in KiB, publisher
    output). The subscriber's lines are counted as they arrive; a run ends when all N arrived, or 5 s
    after the publisher exited with nothing more arriving (then messages were lost)."""
    import threading
    before = subscriptions_logged(log_path)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/tools", "-q", str(qos),
                            "-C", str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_subscribed(log_path, before)
    except RuntimeError:
        sub.kill()
        sub.wait()
        raise
    got = {"count": 0, "last": None}

    def count():
        while True:
            chunk = sub.stdout.read1(1 << 16)
            if not chunk:
                return
            got["count"] += chunk.count(b"\n")
            got["last"] = time.monotonic()

    counter = threading.Thread(target=count)
    counter.start()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.monotonic()
    pub = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop = threading.Event()
    rss = [0]
    poller = threading.Thread(target=lambda: rss.__setitem__(0, peak_rss_kib(pub.pid, stop)))
    poller.start()
    out = (pub.stdout.read() + pub.stderr.read()).decode()
    pub.wait(timeout=600)
    stop.set()
    poller.join()
    deadline = time.monotonic() + 600
    while sub.poll() is None and time.monotonic() < deadline:
        if got["count"] < n and time.monotonic() - max(got["last"] or t0, t0) > 5:
            break  # nothing more is coming
        time.sleep(0.05)
    if sub.poll() is None:
        sub.kill()
    sub.wait()
    counter.join()
    if stdin_path:
        stdin.close()
    if pub.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])}: exit {pub.returncode}: {out}")
    return (got["last"] or t0) - t0, got["count"], rss[0], out.strip()


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
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n"
                f"log_dest file {tmp}/subscriptions.log\nlog_type error\nlog_type warning\nlog_type subscribe\n")
    log = open(os.path.join(tmp, "mosquitto.log"), "w")
    # mosquitto writes its file log line by line (flushed), as user mosquitto when run as root.
    log_path = os.path.join(tmp, "subscriptions.log")
    open(log_path, "w").close()
    os.chmod(log_path, 0o666)
    os.chmod(tmp, 0o755)
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
                    secs, received, rss, out = run_one(cmd, stdin_path, port, qos, args.lines, log_path)
                    results.setdefault((qos, name), []).append((secs, rss, out, received))
                    lost = f"  LOST {args.lines - received}" if received < args.lines else ""
                    print(f"round {r + 1} qos{qos} {name:18} {secs:7.2f} s  {received / secs / 1000:8.1f} k msg/s"
                          f"  peak RSS {rss / 1024:6.1f} MiB{lost}", flush=True)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
    print(f"\n{args.lines} messages, median of {args.rounds} rounds, through Debian's mosquitto broker")
    print(f"{'scenario':10} {'publisher':18} {'seconds':>8} {'k msg/s':>9} {'peak RSS':>10} {'lost':>8}   vs mosquitto_pub")
    slower = []
    for qos in (0, 1):
        base_runs = results[(qos, "mosquitto_pub -l")]
        base = statistics.median(s for s, _, _, _ in base_runs)
        base_complete = all(rcv == args.lines for _, _, _, rcv in base_runs)
        for name in ("mosquitto_pub -l", "tern pub -l", "async API"):
            runs = results[(qos, name)]
            secs = statistics.median(s for s, _, _, _ in runs)
            rate = statistics.median(rcv / s for s, _, _, rcv in runs)  # messages delivered per second
            rss = max(m for _, m, _, _ in runs)
            lost = max(args.lines - rcv for _, _, _, rcv in runs)
            label = f"qos{qos}" + (" M100" if qos else "")
            ratio = f"{base / secs:5.2f}x" if base_complete else "(mosquitto_pub lost messages: compare rates)"
            print(f"{label:10} {name:18} {secs:8.2f} {rate / 1000:9.1f} {rss / 1024:8.1f} MiB {lost:8}   {ratio}")
            if name != "mosquitto_pub -l" and (lost or (base_complete and secs > base)):
                slower.append(f"{label} {name}")
        print(f"{'':10} async API: {runs[-1][2]}")
    if slower:
        print("slower than mosquitto_pub or lost messages: " + ", ".join(slower))


if __name__ == "__main__":
    main()
