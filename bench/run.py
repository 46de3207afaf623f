#!/usr/bin/python3
"""Tern vs Mosquitto with the neutral load generator (shared/mqtt-loadgen).

Runs the nine standard scenarios, p2p-qos0 and p2p-qos1 over MQTT 5.0, and the relay ceiling, in alternating rounds, against Tern on its
defaults (its store in a fresh temporary directory per run) and Debian's mosquitto (listener, allow_anonymous true, set_tcp_nodelay true), and prints
medians with min and max and the ratio Tern/Mosquitto. Any QoS 1/2 loss fails the run (exit 1).

  bench/run.py --tern build/release/tern --loadgen DIR [--rounds 3] [--smoke] [--only p2p-qos0,...]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TIMING = ["--warmup", "2", "--duration", "8", "--drain", "5"]
SMOKE_TIMING = ["--warmup", "0.5", "--duration", "1", "--drain", "1"]

SCENARIOS = {
    "p2p-qos0": "--mode p2p --pairs 100 --qos 0 --e2e-window 100 --poll-us 100 --payload 64",
    "p2p-qos1": "--mode p2p --pairs 100 --qos 1 --window 100 --e2e-window 100 --poll-us 100 --payload 64",
    "p2p-qos2": "--mode p2p --pairs 100 --qos 2 --window 20 --e2e-window 20 --poll-us 100 --payload 64",
    "fanin-qos0": "--mode fanin --pubs 100 --subs 1 --wildcard --qos 0 --e2e-window 100 --poll-us 100 --payload 64",
    "fanout-qos0": "--mode fanout --subs 1000 --qos 0 --e2e-window 100 --poll-us 100 --payload 64",
    "fanin-qos1-open": "--mode fanin --pubs 100 --subs 1 --wildcard --qos 1 --window 100 --payload 64",
    "lat-qos0": "--mode p2p --pairs 100 --qos 0 --rate 100 --payload 64",
    "lat-qos1": "--mode p2p --pairs 100 --qos 1 --window 100 --rate 100 --payload 64",
    "conn": "--mode conn --conns 10000 --hold 6 --settle 3 --connect-concurrency 100 --src-ips 127.0.0.2-127.0.0.9",
    # MQTT 5.0 variants of the p2p scenarios (same arguments plus --mqtt 5).
    "p2p-qos0-v5": "--mode p2p --pairs 100 --qos 0 --e2e-window 100 --poll-us 100 --payload 64 --mqtt 5",
    "p2p-qos1-v5": "--mode p2p --pairs 100 --qos 1 --window 100 --e2e-window 100 --poll-us 100 --payload 64 --mqtt 5",
}
SMOKE_OVERRIDES = {"conn": "--mode conn --conns 500 --hold 1 --settle 1 --connect-concurrency 50"}


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


def start_broker(kind, args, tmp):
    """Returns (process, port, store directory to remove after the run or None)."""
    port = free_port()
    log = open(os.path.join(tmp, f"{kind}.log"), "a")
    store = None
    if kind == "tern":
        # Tern persists by default: every run starts from an empty store of its own. Open to all: run
        # as root, tern drops privileges to `user` (mosquitto or nobody) after binding.
        store = tempfile.mkdtemp(prefix="tern-bench-store-")
        os.chmod(store, 0o777)
        conf = os.path.join(tmp, "tern.conf")
        with open(conf, "w") as f:
            f.write(f"persistence_location {store}\n")
        cmd = [args.tern, "broker", "-c", conf, "-p", str(port)]
    elif kind == "mosquitto":
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port}\nallow_anonymous true\nset_tcp_nodelay true\n")
        cmd = ["/usr/sbin/mosquitto", "-c", conf]
    else:  # relay: copies bytes between each publisher and its subscriber, the client's ceiling
        cmd = [os.path.join(args.loadgen, "mqtt-relay"), "--port", str(port), "--threads", "2"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port):
        proc.kill()
        proc.wait()
        if store:
            shutil.rmtree(store, ignore_errors=True)
        raise RuntimeError(f"{kind} did not start: {' '.join(cmd)}")
    return proc, port, store


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(kind, name, args, tmp):
    proc, port, store = start_broker(kind, args, tmp)
    try:
        spec = (SMOKE_OVERRIDES.get(name) if args.smoke else None) or SCENARIOS[name]
        cmd = [os.path.join(args.loadgen, "mqtt-loadgen"), "--port", str(port), "--json",
               "--broker-pid", str(proc.pid), "--label", f"{kind} {name}"] + spec.split()
        if name != "conn":
            cmd += SMOKE_TIMING if args.smoke else TIMING
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        result = None
        for line in out.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
        if args.verbose:
            print(out.stdout, file=sys.stderr)
        if result is None:
            raise RuntimeError(f"{kind} {name}: no result\n{out.stdout}\n{out.stderr}")
        result["exit"] = out.returncode
        return result
    finally:
        stop(proc)
        if store:
            shutil.rmtree(store, ignore_errors=True)


def metric(name, r):
    if name == "conn":
        return r.get("connects_per_s", 0)
    if name.startswith("lat-"):
        return r.get("lat_p50_us", 0)
    return r.get("recv_per_s", 0)


def fmt(values, unit):
    med = statistics.median(values)
    if unit == "us":
        return f"{med:8.0f} us ({min(values):.0f}-{max(values):.0f})"
    return f"{med/1000:8.1f} k/s ({min(values)/1000:.1f}-{max(values)/1000:.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--loadgen", required=True, help="folder with mqtt-loadgen and mqtt-relay")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="short runs, numbers not meaningful")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-mosquitto", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    names = [n for n in SCENARIOS if not args.only or n in args.only.split(",")]
    kinds = ["tern"] + ([] if args.no_mosquitto or not os.path.exists("/usr/sbin/mosquitto") else ["mosquitto"])
    tmp = tempfile.mkdtemp(prefix="tern-bench-")
    results = {(k, n): [] for k in kinds + ["relay"] for n in names}
    failures = []
    for rnd in range(args.rounds):
        for n in names:
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))
            for k in order:
                r = run_one(k, n, args, tmp)
                results[(k, n)].append(r)
                lost = r.get("lost", 0)
                qos = r.get("qos", 0)
                print(f"round {rnd+1} {k:9s} {n:16s} {metric(n, r):12.1f} lost {lost:.0f} exit {r['exit']}",
                      flush=True)
                if k == "tern" and qos and (lost or r.get("unacked", 0)):
                    failures.append(f"tern {n} round {rnd+1}: lost {lost}")
            if n == "p2p-qos0" and rnd == 0 and not args.smoke:
                results[("relay", n)].append(run_one("relay", n, args, tmp))
    print()
    print(f"{'scenario':18s} {'tern (median, min-max)':34s} {'mosquitto (median, min-max)':34s} ratio")
    for n in names:
        unit = "us" if n.startswith("lat-") else "k/s"
        t = [metric(n, r) for r in results[("tern", n)]]
        line = f"{n:18s} {fmt(t, unit):34s}"
        if "mosquitto" in kinds:
            m = [metric(n, r) for r in results[("mosquitto", n)]]
            ratio = statistics.median(t) / max(1e-9, statistics.median(m))
            line += f" {fmt(m, unit):34s} {ratio:5.2f}x"
        print(line)
        if n.startswith("lat-"):
            p99 = [r.get("lat_p99_us", 0) for r in results[("tern", n)]]
            print(f"{'':18s} tern p99 {statistics.median(p99):.0f} us")
        if n == "conn":
            rss = [r.get("broker_rss_per_conn_bytes", 0) for r in results[("tern", n)]]
            print(f"{'':18s} tern RSS per idle connection {statistics.median(rss)/1024:.1f} KiB")
        if n == "fanin-qos1-open":
            lost = [r.get("lost", 0) for r in results[("tern", n)]]
            print(f"{'':18s} tern lost {max(lost):.0f}")
    if results.get(("relay", "p2p-qos0")):
        rel = metric("p2p-qos0", results[("relay", "p2p-qos0")][0])
        print(f"{'relay ceiling':18s} {rel/1000:8.1f} k/s (p2p-qos0, one run)")
    if failures:
        print("QoS 1/2 LOSS:", *failures, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
