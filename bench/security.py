#!/usr/bin/python3
"""What security costs (docs/security.md#cost).

1. ACL: p2p-qos0 and p2p-qos1 (bench/run.py's scenarios, shorter) with no acl_file and with the same
   1,000-rule acl_file, on Tern and on Debian's mosquitto, alternating in the same run. The rules
   are 999 for other topics and, last, the one that lets the load through, so a broker that reads
   its rules in order reads all of them for every PUBLISH and every delivery.
2. TLS: the client library's asynchronous publisher (bench_client_pub) sends N messages to one
   `tern sub -C N` subscriber through Tern, both over plain TCP or both over TLS 1.3 to the same
   broker; the time runs from starting the publisher to the subscriber's exit. QoS 0 and QoS 1
   (100 in flight). Medians of the rounds.

  bench/security.py --tern build/release/tern --client-pub build/release/bench_client_pub --loadgen DIR
                    [--rounds 3] [--messages N] [--smoke]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, stop, wait_port  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/integration"))
from ternlib import TestCerts  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
SCENARIOS = {
    "p2p-qos0": "--mode p2p --pairs 100 --qos 0 --e2e-window 100 --poll-us 100 --payload 64",
    "p2p-qos1": "--mode p2p --pairs 100 --qos 1 --window 100 --e2e-window 100 --poll-us 100 --payload 64",
}


def acl_text():
    lines = ["# 999 rules for other devices, then the one for the benchmark's topics"]
    lines += [f"topic readwrite plant/line-{i}/station/+/#" for i in range(999)]
    lines.append("topic readwrite bench/#")
    return "\n".join(lines) + "\n"


def start(kind, args, tmp, acl):
    port = free_port()
    log = open(os.path.join(tmp, f"{kind}.log"), "a")
    conf = os.path.join(tmp, f"{kind}.conf")
    with open(conf, "w") as f:
        if kind == "tern":
            f.write(f"persistence false\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
        else:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        if acl:
            f.write(f"acl_file {acl}\n")
    cmd = [args.tern, "broker", "-c", conf] if kind == "tern" else [MOSQUITTO, "-c", conf]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{kind} did not start")
    return proc, port


def loadgen(args, port, name, label):
    timing = ["--warmup", "0.5", "--duration", "1", "--drain", "1"] if args.smoke else \
        ["--warmup", "2", "--duration", "6", "--drain", "3"]
    cmd = [os.path.join(args.loadgen, "mqtt-loadgen"), "--port", str(port), "--json", "--prefix", "bench/acl",
           "--label", label] + SCENARIOS[name].split() + timing
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            import json
            r = json.loads(line[7:])
            return r.get("recv_per_s", 0.0), r.get("lost", 0)
    raise RuntimeError(f"{label}: no result\n{out.stdout}\n{out.stderr}")


def acl_part(args, tmp):
    acl = os.path.join(tmp, "bench.acl")
    with open(acl, "w") as f:
        f.write(acl_text())
    os.chmod(acl, 0o644)
    kinds = ["tern"] + (["mosquitto"] if os.path.exists(MOSQUITTO) else [])
    results = {}
    for rnd in range(args.rounds):
        for name in SCENARIOS:
            for kind in (kinds if rnd % 2 == 0 else list(reversed(kinds))):
                for with_acl in (False, True):
                    proc, port = start(kind, args, tmp, acl if with_acl else None)
                    try:
                        rate, lost = loadgen(args, port, name, f"{kind} {name} acl={with_acl}")
                    finally:
                        stop(proc)
                    results.setdefault((kind, name, with_acl), []).append(rate)
                    print(f"round {rnd + 1} {kind:9s} {name:9s} {'1000-rule acl' if with_acl else 'no acl':14s} "
                          f"{rate / 1000:9.1f} k/s lost {lost}", flush=True)
    print()
    print(f"{'broker':10s} {'scenario':9s} {'no acl':>12s} {'1000-rule acl':>14s} {'acl/none':>9s}")
    for kind in kinds:
        for name in SCENARIOS:
            none = statistics.median(results[(kind, name, False)])
            with_ = statistics.median(results[(kind, name, True)])
            print(f"{kind:10s} {name:9s} {none / 1000:9.1f} k/s {with_ / 1000:11.1f} k/s {with_ / none:8.2f}x")
    for name in SCENARIOS:
        if "mosquitto" in kinds:
            t = statistics.median(results[("tern", name, True)])
            m = statistics.median(results[("mosquitto", name, True)])
            print(f"with the acl_file, {name}: Tern/mosquitto {t / m:.1f}x")
    print()


def tls_part(args, tmp):
    certs_dir = os.path.join(tmp, "certs")
    os.makedirs(certs_dir)
    os.chmod(certs_dir, 0o755)
    certs = TestCerts(certs_dir, san="DNS:localhost,IP:127.0.0.1")
    plain, tls = free_port(), free_port()
    conf = os.path.join(tmp, "tls.conf")
    with open(conf, "w") as f:
        f.write(f"persistence false\nallow_anonymous true\nlistener {plain} 127.0.0.1\n"
                f"listener {tls} 127.0.0.1\ncertfile {certs.server}\nkeyfile {certs.server_key}\n")
    log = open(os.path.join(tmp, "tls.log"), "a")
    proc = subprocess.Popen([args.tern, "broker", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    lines = os.path.join(tmp, "lines.txt")
    with open(lines, "w") as f:
        for i in range(args.messages):
            f.write(f"{i:016d}{'x' * 48}\n")  # 64-byte payloads
    results = {}
    try:
        if not wait_port(plain) or not wait_port(tls):
            raise RuntimeError("tern did not start")
        for rnd in range(args.rounds):
            for qos in (0, 1):
                for transport in (("tcp", "tls") if rnd % 2 == 0 else ("tls", "tcp")):
                    port = tls if transport == "tls" else plain
                    ca = ["--cafile", certs.ca] if transport == "tls" else []
                    topic = f"bench/tls/{rnd}/{qos}/{transport}"
                    sub = subprocess.Popen([args.tern, "sub", "-h", "localhost", "-p", str(port), *ca, "-t", topic,
                                            "-q", str(qos), "-C", str(args.messages), "-i", f"s-{topic}"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    deadline = time.time() + 10
                    while not re.search(rf"s-{re.escape(topic)}", open(os.path.join(tmp, "tls.log")).read()):
                        if time.time() > deadline:
                            raise RuntimeError("subscriber did not connect")
                        time.sleep(0.02)
                    time.sleep(0.2)  # its SUBSCRIBE
                    t0 = time.time()
                    pub = [args.client_pub, "localhost", str(port), topic, str(qos), "100", lines]
                    if transport == "tls":
                        pub.append(certs.ca)
                    p = subprocess.run(pub, capture_output=True, text=True, timeout=300)
                    if p.returncode != 0:
                        raise RuntimeError(f"publisher failed: {p.stderr}")
                    sub.wait(timeout=120)
                    dt = time.time() - t0
                    rate = args.messages / dt
                    results.setdefault((qos, transport), []).append(rate)
                    print(f"round {rnd + 1} qos {qos} {transport}: {args.messages} messages in {dt:.2f} s, "
                          f"{rate / 1000:.1f} k/s", flush=True)
    finally:
        stop(proc)
    print()
    print(f"{'qos':4s} {'plain TCP':>12s} {'TLS 1.3':>12s} {'TLS/TCP':>8s}")
    for qos in (0, 1):
        tcp = statistics.median(results[(qos, "tcp")])
        tl = statistics.median(results[(qos, "tls")])
        print(f"{qos:<4d} {tcp / 1000:8.1f} k/s {tl / 1000:8.1f} k/s {tl / tcp:7.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--client-pub", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", choices=["acl", "tls"])
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.messages = 1, 2000
    tmp = tempfile.mkdtemp(prefix="tern-bench-security-")
    os.chmod(tmp, 0o755)
    try:
        if args.only != "tls":
            acl_part(args, tmp)
        if args.only != "acl":
            tls_part(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
