#!/usr/bin/python3
"""Durable acknowledgements: what persistent sessions cost, Tern's store modes next to Mosquitto.

In one run (docs/durability.md, "Benchmark"):
  1. two load generator scenarios with persistent sessions (MQTT 3.1.1, clean session 0), in
     alternating rounds, against Tern with `persistence_mode sync`, `persistence_mode batched`,
     `persistence false`, and Debian's mosquitto with `persistence true`:
       durable-qos1     p2p QoS 1, subscribers online, closed loop (the p2p-qos1 standard scenario)
       durable-offline  p2p QoS 1, subscribers offline while 80 msg/s per publisher are published
                        (800 per session with the standard timing, under max_queued_messages 1000),
                        then they reconnect and take their queues
     Tern's syncs per second and messages per sync come from the `Store:` line it logs at SIGTERM.
  2. the sync scenario once more under `strace -f -c -e trace=fdatasync,fsync -p PID`, next to the
     broker's own sync count;
  3. the cost of one fdatasync (64-byte append) in the file system of the store directories;
  4. restart: N persistent sessions, M queued QoS 1 messages, SIGTERM, start again: time to
     accepting connections (TCP and CONNACK), time to the first queued message for a reconnecting
     session, store size, and every queued message checked after the restart.

Any QoS 1 loss (or unacknowledged publish) of a Tern row with persistence fails the run (exit 1);
for `persistence false` and mosquitto it is only printed. Harness errors exit 2.

  bench/durable.py --tern build/release/tern --loadgen DIR [--rounds 3] [--smoke] [--only NAMES]
                   [--no-strace] [--no-restart] [--sessions N] [--queued M] [--json PATH]
"""
import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import SMOKE_TIMING, TIMING, free_port, wait_port  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
SCENARIOS = {
    "durable-qos1": "--mode p2p --pairs 100 --qos 1 --window 100 --e2e-window 100 --poll-us 100 --payload 64 --clean 0",
    "durable-offline": "--mode p2p --pairs 100 --qos 1 --window 100 --poll-us 100 --payload 64 --clean 0"
                       " --sub-offline --rate 80",
}
BROKERS = {  # row name -> (kind, configuration lines; STORE is the run's fresh store directory)
    "tern-sync": ("tern", ["persistence true", "persistence_location STORE", "persistence_mode sync"]),
    "tern-batched": ("tern", ["persistence true", "persistence_location STORE", "persistence_mode batched",
                              "persistence_batch_window 10"]),
    "tern-nopersist": ("tern", ["persistence false"]),
    "mosquitto": ("mosquitto", ["persistence true", "persistence_location STORE/", "set_tcp_nodelay true"]),
}
DURABLE_ROWS = ("tern-sync", "tern-batched")  # QoS 1 loss fails the run only for these
MOSQUITTO_NOTE = ("mosquitto `persistence true` writes its snapshot only every autosave_interval (1800 s) "
                  "and at shutdown and never syncs per message: its acknowledgements are not durable")
START_LINE = re.compile(r"Store .*: restored .* in (\d+) ms.*")
STORE_LINE = re.compile(r"Store: (\d+) writes, (\d+) syncs, (\d+) batches, (\d+) records\.")
QUIET_PATTERN = "bench/run.py|bench/tools.py|bench/durable.py|ctest|ninja"


class HarnessError(Exception):
    pass


class StartError(Exception):
    """The broker exited or did not listen: its row is skipped, not a harness error."""


def log(*a):
    print(*a, flush=True)


def wait_quiet(args):
    """Waits (bounded) while other benchmarks, test runs or builds are running."""
    if args.no_wait:
        return True
    deadline = time.monotonic() + args.max_wait
    said = False
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-f", QUIET_PATTERN], capture_output=True, text=True).stdout.split()
        others = [p for p in out if int(p) not in ancestors()]
        if not others:
            return True
        if not said:
            log(f"  waiting for other benchmarks/tests/builds to finish (pids {' '.join(others)})")
            said = True
        time.sleep(5)
    log(f"  still busy after {args.max_wait} s: measuring anyway")
    return False


def ancestors():
    """This process and its parents (a shell or `timeout` that started this script names it too)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def du_bytes(path):
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True, timeout=120)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout else None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------------------- brokers

class Broker:
    """One broker process on a fresh store directory in the run's temporary folder. The directory is
    world-writable: a broker started as root may run as user mosquitto."""

    def __init__(self, row, args, tmp, extra=(), port=None):
        self.row, self.args = row, args
        self.kind, lines = BROKERS[row]
        self.dir = tempfile.mkdtemp(prefix=f"{row}-", dir=tmp)
        os.chmod(self.dir, 0o777)
        self.store = os.path.join(self.dir, "store")
        os.mkdir(self.store)
        os.chmod(self.store, 0o777)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "broker.conf")
        self.log_path = os.path.join(self.dir, "broker.log")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port}\nallow_anonymous true\n")
            for line in list(lines) + list(extra):
                f.write(line.replace("STORE", self.store) + "\n")
        os.chmod(self.conf, 0o644)
        self.proc = None
        self.exit_code = None
        self.stop_seconds = None

    def start(self, timeout=30, wait=True):
        """Starts the broker; returns seconds from the start of the process to the listening port
        (without `wait`, returns at once: probe_restart measures)."""
        exe = self.args.tern if self.kind == "tern" else MOSQUITTO
        cmd = [exe, "broker", "-c", self.conf] if self.kind == "tern" else [exe, "-c", self.conf]
        logf = open(self.log_path, "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir)
        logf.close()
        self.t_start = t0
        if not wait:
            return None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                raise StartError(f"exit {self.proc.returncode}: {self.log_tail(3)}")
            if wait_port(self.port, timeout=0.2):
                return time.monotonic() - t0
        self.kill()
        raise StartError(f"not listening on port {self.port} after {timeout} s: {self.log_tail(3)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=120):
        """SIGTERM and wait; SIGKILL after `timeout`. Returns the exit code (None when killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            return self.exit_code
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            self.exit_code = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.kill()
            self.exit_code = None
        self.stop_seconds = time.monotonic() - t0
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n):
        lines = [ln.strip() for ln in self.log_text().splitlines() if ln.strip()]
        return " | ".join(lines[-n:]) or "(no output)"

    def store_counters(self):
        """The last `Store:` line of the log (counters since start), or None."""
        found = STORE_LINE.findall(self.log_text())
        if not found:
            return None
        w, s, b, r = map(int, found[-1])
        return {"writes": w, "syncs": s, "batches": b, "records": r}

    def restored_line(self):
        """The last start line of the store ("Store DIR (MODE mode): restored ... in N ms; ..."), or None."""
        found = list(START_LINE.finditer(self.log_text()))
        return (found[-1].group(0).strip(), int(found[-1].group(1))) if found else (None, None)

    def error_lines(self):
        return [ln.strip() for ln in self.log_text().splitlines()
                if re.search(r"\b(error|fatal|assert|corrupt)", ln, re.I)]

    def cleanup(self):
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------- load generator runs

def run_loadgen(args, broker, scenario):
    spec = SCENARIOS[scenario].split()
    timing = SMOKE_TIMING if args.smoke else TIMING
    cmd = [os.path.join(args.loadgen, "mqtt-loadgen"), "--port", str(broker.port), "--json",
           "--broker-pid", str(broker.proc.pid), "--label", f"{broker.row} {scenario}"] + spec + timing
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        return None, time.monotonic() - t0, f"loadgen timed out after 300 s: {e.stdout or ''}"
    seconds = time.monotonic() - t0
    result = None
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if args.verbose:
        print(out.stdout, out.stderr, file=sys.stderr)
    if result is None:
        return None, seconds, f"loadgen exit {out.returncode}, no result: {(out.stdout + out.stderr).strip()[-600:]}"
    result["exit"] = out.returncode
    return result, seconds, None


def started(broker, rec):
    """Starts the broker; False with rec["skipped"] set when it would not start."""
    try:
        broker.start()
        return True
    except StartError as e:
        rec["skipped"] = str(e)
        return False


def measure_row(args, tmp, row, scenario, rnd, strace=False):
    """One broker, one load generator run. Returns a row dict (skipped=reason when it did not start)."""
    quiet = wait_quiet(args)
    rec = {"row": row, "scenario": scenario, "round": rnd, "quiet": quiet, "loadavg": loadavg()}
    broker = Broker(row, args, tmp)
    try:
        if not started(broker, rec):
            return rec
        tracer = None
        if strace:
            tracer = start_strace(broker, tmp)
        result, seconds, err = run_loadgen(args, broker, scenario)
        if tracer:
            rec["strace"] = stop_strace(*tracer)
        crashed = not broker.alive()
        code = broker.stop()
        rec.update({"loadgen_seconds": seconds, "crashed": crashed, "broker_exit": code,
                    "stop_seconds": broker.stop_seconds, "error": err, "result": result,
                    "store": broker.store_counters() if broker.kind == "tern" else None,
                    "broker_errors": broker.error_lines()[:5]})
        if crashed:
            rec["error"] = (err or "") + f" broker died during the run (exit {code}): {broker.log_tail(3)}"
        elif code != 0:
            rec["error"] = (err or "") + f" exit {code} after SIGTERM: {broker.log_tail(3)}"
        st = rec["store"]
        if result and st and st["syncs"]:
            rec["syncs_per_s"] = st["syncs"] / seconds
            rec["msgs_per_sync"] = result.get("acked", 0) / st["syncs"]
        return rec
    finally:
        broker.kill()
        broker.cleanup()


def start_strace(broker, tmp):
    out = os.path.join(broker.dir, "strace.txt")
    err = open(os.path.join(broker.dir, "strace.err"), "w")
    proc = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fdatasync,fsync", "-o", out,
                             "-p", str(broker.proc.pid)], stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        with open(os.path.join(broker.dir, "strace.err")) as f:
            if "attached" in f.read():
                break
        time.sleep(0.05)
    time.sleep(0.2)  # the other threads
    return proc, out


def stop_strace(proc, out):
    """Detaches strace (SIGINT) and returns {syscall: calls} from its summary."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    calls = {"fdatasync": 0, "fsync": 0}
    try:
        with open(out) as f:
            for line in f:
                parts = line.split()
                # % time  seconds  usecs/call  calls  [errors]  syscall
                if parts and parts[-1] in calls and len(parts) >= 5:
                    calls[parts[-1]] = int(parts[3])
    except OSError:
        calls["error"] = "no strace output"
    return calls


# ------------------------------------------------------------------------------------ fdatasync cost

def fdatasync_cost(directory, n=2000):
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    data = b"x" * 64
    times = []
    try:
        for _ in range(n):
            os.write(fd, data)
            t0 = time.perf_counter_ns()
            os.fdatasync(fd)
            times.append((time.perf_counter_ns() - t0) / 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return {"n": n, "median_us": statistics.median(times), "p90_us": times[int(n * 0.9)],
            "p99_us": times[int(n * 0.99)], "max_us": times[-1]}


# ----------------------------------------------------------------------- raw MQTT 3.1.1 client (restart)

def _vbi(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(h, body):
    return bytes([h]) + _vbi(len(body)) + body


def _s16(b):
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id, clean):
    return _packet(0x10, _s16(b"MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack("!H", 0)
                   + _s16(client_id.encode()))


def subscribe_packet(pid, topic, qos=1):
    return _packet(0x82, struct.pack("!H", pid) + _s16(topic.encode()) + bytes([qos]))


DISCONNECT = b"\xe0\x00"
SESSION_ID = "durable-{}"
SESSION_TOPIC = "durable/{}"


class Reader:
    """Splits a byte stream into (first byte, body) packets."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        buf = self.buf
        buf += data
        out, i, n = [], 0, len(buf)
        while n - i >= 2:
            j, mult, rl = i + 1, 1, 0
            while True:
                if j >= n:
                    rl = None
                    break
                b = buf[j]
                j += 1
                rl += (b & 0x7F) * mult
                mult <<= 7
                if not b & 0x80:
                    break
            if rl is None or j + rl > n:
                break
            out.append((buf[i], bytes(buf[j:j + rl])))
            i = j + rl
        del buf[:i]
        return out


def parse_publish(h, body):
    """Returns (packet id bytes or None, message index from the payload)."""
    tl = (body[0] << 8) | body[1]
    off = 2 + tl
    pid = None
    if (h >> 1) & 3:
        pid = body[off:off + 2]
        off += 2
    return pid, struct.unpack_from("!Q", body, off)[0] if len(body) >= off + 8 else -1


class SessionClient(asyncio.Protocol):
    """create: CONNECT (clean session 0), SUBSCRIBE QoS 1, DISCONNECT after the SUBACK.
    drain: CONNECT (clean session 0), acknowledge every PUBLISH, DISCONNECT after `expect` distinct ones."""

    def __init__(self, index, mode, expect, loop):
        self.index, self.mode, self.expect = index, mode, expect
        self.done = loop.create_future()
        self.reader = Reader()
        self.seen = set()
        self.received = 0
        self.error = None
        self.session_present = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        data = connect_packet(SESSION_ID.format(self.index), clean=False)
        if self.mode == "create":
            data += subscribe_packet(1, SESSION_TOPIC.format(self.index))
        transport.write(data)

    def data_received(self, data):
        acks = []
        for h, body in self.reader.feed(data):
            t = h >> 4
            if t == 2:
                self.session_present = body[0] & 1
                if body[1]:
                    return self.finish(f"CONNACK refused, code {body[1]}")
                if self.mode == "drain" and self.expect == 0:
                    return self.finish()
            elif t == 9:
                if body[2] == 0x80:
                    return self.finish("SUBACK failure")
                return self.finish()
            elif t == 3:
                pid, idx = parse_publish(h, body)
                if pid is not None:
                    acks.append(b"\x40\x02" + pid)
                self.received += 1
                self.seen.add(idx)
        if acks:
            self.transport.write(b"".join(acks))
        if self.mode == "drain" and len(self.seen) >= self.expect and not self.done.done():
            self.finish()

    def finish(self, error=None):
        self.error = error
        if self.transport and not self.transport.is_closing():
            if error is None:
                self.transport.write(DISCONNECT)
            self.transport.close()
        if not self.done.done():
            self.done.set_result(error)

    def connection_lost(self, exc):
        if not self.done.done():
            self.error = f"closed by the broker ({exc})" if exc else "closed by the broker"
            self.done.set_result(self.error)


SRC_IPS = [f"127.0.0.{i}" for i in range(2, 10)]


async def open_client(loop, port, factory, i, timeout):
    """Connects from one of 8 loopback source addresses (so 100,000 sessions do not run out of
    ephemeral ports), with IP_BIND_ADDRESS_NO_PORT so the port is picked at connect."""
    last = None
    for attempt in range(5):
        sock = socket.socket()
        try:
            sock.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
            sock.bind((SRC_IPS[i % len(SRC_IPS)], 0))
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
            _, proto = await loop.create_connection(factory, sock=sock)
            return proto
        except (OSError, asyncio.TimeoutError) as e:
            sock.close()
            last = e
            await asyncio.sleep(0.2 * (attempt + 1))
    raise ConnectionError(f"connect failed: {last!r}")


async def run_sessions(port, indices, mode, expect, wave, concurrency, wave_timeout):
    """Runs one SessionClient per index in waves of at most `wave` connections open at once.
    Returns {index: client} and a list of errors."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)  # connects in flight
    clients, errors = {}, []

    async def one(i):
        async with sem:
            proto = await open_client(loop, port, lambda: SessionClient(i, mode, expect(i), loop), i, 10)
        clients[i] = proto
        err = await proto.done
        if err:
            errors.append(f"{SESSION_ID.format(i)}: {err}")

    for start in range(0, len(indices), wave):
        tasks = [asyncio.ensure_future(one(i)) for i in indices[start:start + wave]]
        done, pending = await asyncio.wait(tasks, timeout=wave_timeout)
        for t in done:
            if t.exception() is not None:
                errors.append(str(t.exception()))
        for t in pending:
            t.cancel()
        if pending:
            errors.append(f"{len(pending)} sessions not finished within {wave_timeout} s")
            for c in clients.values():
                if c.transport and not c.transport.is_closing():
                    c.transport.abort()
            await asyncio.sleep(0)
            break
    return clients, errors


class Publisher(asyncio.Protocol):
    """Clean-session QoS 1 publisher of the message indices `indices`, `window` in flight; message j
    goes to session j % sessions, its payload starts with j (64 bytes in all)."""

    def __init__(self, indices, sessions, window, loop):
        self.indices, self.sessions, self.window = indices, sessions, window
        self.next = 0
        self.inflight = set()
        self.acked = 0
        self.pid = 0
        self.reader = Reader()
        self.done = loop.create_future()
        self.ready = False
        self.pad = b"p" * 56

    def connection_made(self, transport):
        self.transport = transport
        transport.write(connect_packet(f"durable-pub-{os.getpid()}-{id(self)}", clean=True))

    def pump(self):
        out = []
        while len(self.inflight) < self.window and self.next < len(self.indices):
            j = self.indices[self.next]
            self.next += 1
            self.pid = self.pid % 65535 + 1
            while self.pid in self.inflight:
                self.pid = self.pid % 65535 + 1
            self.inflight.add(self.pid)
            topic = SESSION_TOPIC.format(j % self.sessions).encode()
            body = _s16(topic) + struct.pack("!H", self.pid) + struct.pack("!Q", j) + self.pad
            out.append(b"\x32" + _vbi(len(body)) + body)
        if out:
            self.transport.write(b"".join(out))

    def data_received(self, data):
        for h, body in self.reader.feed(data):
            t = h >> 4
            if t == 2:
                if body[1]:
                    self.fail(f"CONNACK refused, code {body[1]}")
                    return
                self.ready = True
            elif t == 4:
                pid = (body[0] << 8) | body[1]
                if pid in self.inflight:
                    self.inflight.discard(pid)
                    self.acked += 1
        if self.ready:
            if self.acked >= len(self.indices):
                if not self.done.done():
                    self.transport.write(DISCONNECT)
                    self.transport.close()
                    self.done.set_result(None)
            else:
                self.pump()

    def fail(self, why):
        if not self.done.done():
            self.done.set_result(why)
        self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(f"closed by the broker after {self.acked} acknowledgements")


async def publish_all(port, sessions, messages, conns, window, timeout):
    loop = asyncio.get_running_loop()
    pubs = []
    for k in range(conns):
        idx = range(k, messages, conns)
        pubs.append(await open_client(loop, port, lambda idx=idx: Publisher(idx, sessions, window, loop), k, 10))
    done, pending = await asyncio.wait([p.done for p in pubs], timeout=timeout)
    errors = [f.result() for f in done if f.result()]
    if pending:
        errors.append(f"publishing not finished within {timeout} s: {sum(p.acked for p in pubs)} acknowledged")
        for p in pubs:
            p.transport.abort()
    return sum(p.acked for p in pubs), errors


def expected_for(sessions, messages):
    base, extra = divmod(messages, sessions)
    return lambda i: base + (1 if i < extra else 0)


def recv_packets(sock, reader, deadline):
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed by the broker")
    return reader.feed(data)


def probe_restart(broker, sessions, messages, timeout):
    """After a start: seconds from process start to (a) the port accepting, (a') CONNACK for a fresh
    client, (b) the first queued message of session 0 reconnecting; then takes session 0's queue."""
    t0, deadline = broker.t_start, broker.t_start + timeout
    res = {}
    while True:
        if time.monotonic() > deadline:
            raise StartError(f"no CONNACK within {timeout} s")
        if broker.proc.poll() is not None:
            raise StartError(f"exit {broker.proc.returncode}: {broker.log_tail(3)}")
        try:
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=0.5)
        except OSError:
            time.sleep(0.005)
            continue
        res.setdefault("accept_s", time.monotonic() - t0)
        try:
            s.sendall(connect_packet("durable-probe", clean=True))
            reader, got = Reader(), []
            while not got:
                got = recv_packets(s, reader, deadline)
            if got[0][0] >> 4 == 2 and got[0][1][1] == 0:
                res["connack_s"] = time.monotonic() - t0
                s.sendall(DISCONNECT)
                break
        except (OSError, ConnectionError):
            pass
        finally:
            s.close()
        time.sleep(0.005)
    # (b) session 0 comes back and waits for its queue
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    try:
        s.sendall(connect_packet(SESSION_ID.format(0), clean=False))
        reader, seen, received = Reader(), set(), 0
        want = expected_for(sessions, messages)(0)
        while len(seen) < want:
            acks = []
            for h, body in recv_packets(s, reader, deadline):
                if h >> 4 == 2:
                    res["session_present"] = body[0] & 1
                elif h >> 4 == 3:
                    res.setdefault("first_message_s", time.monotonic() - t0)
                    pid, idx = parse_publish(h, body)
                    if pid is not None:
                        acks.append(b"\x40\x02" + pid)
                    seen.add(idx)
                    received += 1
            if acks:
                s.sendall(b"".join(acks))
        res["session0_s"] = time.monotonic() - t0
        s.sendall(DISCONNECT)
    except (OSError, ConnectionError) as e:
        res["session0_error"] = f"{e!r} after {len(seen)}/{want} messages"
    finally:
        s.close()
    res["session0_received"], res["session0_distinct"] = received, len(seen)
    return res


def restart_test(args, tmp, row):
    """Sessions, queued messages, SIGTERM, start again, probe, and take every queue."""
    n, m = args.sessions, args.queued
    rec = {"row": row, "sessions": n, "queued": m, "loadavg": loadavg(), "quiet": wait_quiet(args)}
    extra = ["max_queued_messages 0", "connection_messages false"]
    broker = Broker(row, args, tmp, extra)
    expect = expected_for(n, m)
    wave = min(args.wave, 10000)
    try:
        if not started(broker, rec):
            return rec
        t = time.monotonic()
        clients, errors = asyncio.run(run_sessions(broker.port, list(range(n)), "create", lambda i: 0, wave,
                                                   args.connect_concurrency, args.wave_timeout))
        rec["create_s"] = time.monotonic() - t
        if errors:
            rec["error"] = f"creating sessions: {len(errors)} errors, first: {errors[0]}"
            return rec
        log(f"  {row}: {n} sessions in {rec['create_s']:.1f} s")
        t = time.monotonic()
        acked, errors = asyncio.run(publish_all(broker.port, n, m, args.publishers, args.pub_window,
                                                args.wave_timeout * 4))
        rec["publish_s"] = time.monotonic() - t
        rec["publish_acked"] = acked
        if errors:
            rec["error"] = f"publishing: {errors[0]}"
            return rec
        log(f"  {row}: {m} QoS 1 messages queued in {rec['publish_s']:.1f} s ({m / rec['publish_s']:.0f} msg/s)")
        time.sleep(0.5)
        rec["store_bytes_running"] = du_bytes(broker.store)
        rec["rss_kib_before"] = rss_kib(broker.proc.pid)
        crashed = not broker.alive()
        code = broker.stop(timeout=args.stop_timeout)
        rec.update({"stop_s": broker.stop_seconds, "stop_exit": code, "crashed_before_stop": crashed,
                    "store_bytes_stopped": du_bytes(broker.store),
                    "store_first": broker.store_counters() if broker.kind == "tern" else None})
        if crashed or code not in (0,):
            rec["error"] = f"first stop: exit {code}{' (died before SIGTERM)' if crashed else ''}: {broker.log_tail(3)}"
            return rec
        log(f"  {row}: stopped in {broker.stop_seconds:.1f} s; restarting")
        broker.start(wait=False)
        try:
            rec.update(probe_restart(broker, n, m, args.stop_timeout))
        except StartError as e:
            rec["error"] = f"restart: {e}"
            return rec
        rec["rss_kib_after"] = rss_kib(broker.proc.pid)
        rec["restored_line"], rec["restored_ms"] = broker.restored_line() if broker.kind == "tern" else (None, None)
        log(f"  {row}: CONNACK {rec['connack_s']:.2f} s, first queued message "
            f"{rec.get('first_message_s', float('nan')):.2f} s after the process started; checking every queue")
        if args.verify:
            t = time.monotonic()
            clients, errors = asyncio.run(run_sessions(broker.port, list(range(1, n)), "drain", expect, wave,
                                                       args.connect_concurrency, args.wave_timeout))
            rec["drain_all_s"] = time.monotonic() - t
            received = rec.get("session0_received", 0) + sum(c.received for c in clients.values())
            distinct = rec.get("session0_distinct", 0) + sum(len(c.seen) for c in clients.values())
            absent = sum(1 for c in clients.values() if not c.session_present)
            rec.update({"verify_received": received, "verify_lost": m - distinct,
                        "verify_duplicates": received - distinct, "verify_errors": errors[:5],
                        "verify_sessions_absent": absent + (0 if rec.get("session_present") else 1)})
        crashed = not broker.alive()
        code = broker.stop(timeout=args.stop_timeout)
        rec["store_second"] = broker.store_counters() if broker.kind == "tern" else None
        rec["broker_errors"] = broker.error_lines()[:5]
        if crashed or code != 0:
            rec["error"] = f"second stop: exit {code}{' (died before SIGTERM)' if crashed else ''}: {broker.log_tail(3)}"
        return rec
    finally:
        broker.kill()
        broker.cleanup()


# ----------------------------------------------------------------------------------------- reporting

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_rate(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m / 1000:.1f}k"
    return f"{m / 1000:.1f}k ({min(values) / 1000:.1f}-{max(values) / 1000:.1f})"


def fmt_num(v, spec=".0f"):
    return "n/a" if v is None else format(v, spec)


def mib(b):
    return "n/a" if b is None else f"{b / 1048576:.1f} MiB"


def secs(v):
    return "n/a" if v is None else f"{v:.2f} s"


def print_scenarios(recs, scenarios, rows, rounds):
    log(f"\nPersistent sessions, MQTT 3.1.1, clean session 0; median of {rounds} round(s) (min-max); "
        "latency end to end (loadgen measures no acknowledgement latency)")
    head = (f"{'scenario':16} {'broker':15} {'acked/s':>22} {'delivered/s':>22} {'p50 us':>7} {'p99 us':>7} "
            f"{'lost':>5} {'dup':>5} {'syncs/s':>8} {'msg/sync':>9} {'cpu %':>6}")
    log(head)
    log("-" * len(head))
    for sc in scenarios:
        for row in rows:
            rs = [r for r in recs if r["scenario"] == sc and r["row"] == row]
            ok = [r for r in rs if r.get("result")]
            if not ok:
                why = next((r.get("skipped") or r.get("error") for r in rs), "not run")
                log(f"{sc:16} {row:15} skipped: {why}")
                continue
            res = [r["result"] for r in ok]
            offline = sc == "durable-offline"
            delivered = [x.get("offline_recv_per_s") if offline else x.get("recv_per_s") for x in res]
            lat = [x for x in res if x.get("lat_samples")]
            p50 = med([x["lat_p50_us"] for x in lat]) if lat else None
            p99 = med([x["lat_p99_us"] for x in lat]) if lat else None
            lost = sum(x.get("lost", 0) for x in res)
            dup = sum(x.get("duplicates", 0) for x in res)
            sps = med([r.get("syncs_per_s") for r in ok])
            mps = med([r.get("msgs_per_sync") for r in ok])
            cpu = med([x.get("broker_cpu_pct") for x in res])
            log(f"{sc:16} {row:15} {fmt_rate([x.get('ack_per_s') for x in res]):>22} {fmt_rate(delivered):>22} "
                f"{fmt_num(p50):>7} {fmt_num(p99):>7} {lost:>5.0f} {dup:>5.0f} {fmt_num(sps):>8} "
                f"{fmt_num(mps, '.1f'):>9} {fmt_num(cpu):>6}")
            for r in rs:
                if r.get("error"):
                    log(f"{'':16} {'':15} round {r['round']}: {r['error']}")
    log("  acked/s: publishes acknowledged per second (durable-offline: the subscribers are offline, so "
        "this is the rate into persistent queues); delivered/s for durable-offline: after the reconnect")
    log("  syncs/s = the broker's syncs (Store: line at SIGTERM, whole run) / loadgen run time; "
        "msg/sync = messages acknowledged / syncs")
    log(f"  {MOSQUITTO_NOTE}")


def print_restart(recs):
    if not recs:
        return
    log("\nRestart with persistent sessions and queued QoS 1 messages (seconds from the process start)")
    keys = [("sessions", lambda r: f"{r['sessions']}"), ("queued messages", lambda r: f"{r['queued']}"),
            ("create sessions", lambda r: secs(r.get("create_s"))),
            ("queue messages", lambda r: secs(r.get("publish_s"))),
            ("  = msg/s", lambda r: fmt_num(r["queued"] / r["publish_s"] if r.get("publish_s") else None)),
            ("store size, running", lambda r: mib(r.get("store_bytes_running"))),
            ("store size, stopped", lambda r: mib(r.get("store_bytes_stopped"))),
            ("broker RSS before stop", lambda r: mib(r["rss_kib_before"] * 1024) if r.get("rss_kib_before") else "n/a"),
            ("SIGTERM to exit", lambda r: secs(r.get("stop_s"))),
            ("syncs (first run)", lambda r: fmt_num((r.get("store_first") or {}).get("syncs"))),
            ("port accepts", lambda r: secs(r.get("accept_s"))),
            ("CONNACK, fresh client", lambda r: secs(r.get("connack_s"))),
            ("first queued message", lambda r: secs(r.get("first_message_s"))),
            ("store load (its log line)", lambda r: secs(r["restored_ms"] / 1000) if r.get("restored_ms") is not None else "n/a"),
            ("broker RSS after restart", lambda r: mib(r["rss_kib_after"] * 1024) if r.get("rss_kib_after") else "n/a"),
            ("all queues taken in", lambda r: secs(r.get("drain_all_s"))),
            ("lost after restart", lambda r: fmt_num(r.get("verify_lost"))),
            ("duplicates", lambda r: fmt_num(r.get("verify_duplicates"))),
            ("sessions not present", lambda r: fmt_num(r.get("verify_sessions_absent")))]
    log(f"{'':26}" + "".join(f"{r['row']:>20}" for r in recs))
    for name, fn in keys:
        cells = []
        for r in recs:
            try:
                cells.append("skipped" if r.get("skipped") else fn(r))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("n/a")
        log(f"{name:26}" + "".join(f"{c:>20}" for c in cells))
    for r in recs:
        for k in ("skipped", "error"):
            if r.get(k):
                log(f"  {r['row']}: {k}: {r[k]}")
        if r.get("restored_line"):
            log(f"  {r['row']}: {r['restored_line']}")
        if r.get("verify_errors"):
            log(f"  {r['row']}: after restart: {'; '.join(r['verify_errors'])}")
    log("  mosquitto writes its snapshot at shutdown (store size, running: before it)")


# --------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tern", required=True)
    ap.add_argument("--loadgen", required=True, help="folder with mqtt-loadgen")
    ap.add_argument("--rounds", type=int, default=None, help="3 (1 with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="short runs, numbers not meaningful")
    ap.add_argument("--only", default="", help="comma-separated scenario and/or broker row names: "
                    + ", ".join(list(SCENARIOS) + list(BROKERS)))
    ap.add_argument("--strace", action=argparse.BooleanOptionalAction, default=shutil.which("strace") is not None)
    ap.add_argument("--scenarios", action=argparse.BooleanOptionalAction, default=True,
                    help="the load generator scenarios (part 1)")
    ap.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--fdatasync", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="after the restart, take every queue and count lost and duplicate messages")
    ap.add_argument("--sessions", type=int, default=None, help="restart: persistent sessions (100000; smoke 2000)")
    ap.add_argument("--queued", type=int, default=None, help="restart: queued messages (1000000; smoke 20000)")
    ap.add_argument("--wave", type=int, default=10000, help="restart: connections open at once (at most 10000)")
    ap.add_argument("--connect-concurrency", type=int, default=500)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--pub-window", type=int, default=500)
    ap.add_argument("--wave-timeout", type=float, default=300)
    ap.add_argument("--stop-timeout", type=float, default=600, help="restart: SIGTERM and start bounds")
    ap.add_argument("--tmpdir", default=None, help="where the stores go (default: the system temp dir)")
    ap.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "tern-durable.json"))
    ap.add_argument("--keep", action="store_true", help="keep the store directories and logs")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks and builds")
    ap.add_argument("--max-wait", type=float, default=900)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.smoke else 3)
    args.sessions = args.sessions or (2000 if args.smoke else 100000)
    args.queued = args.queued or (20000 if args.smoke else 1000000)
    only = [x for x in args.only.split(",") if x]
    unknown = [x for x in only if x not in SCENARIOS and x not in BROKERS]
    if unknown:
        ap.error(f"--only: unknown {', '.join(unknown)}")
    scenarios = [s for s in SCENARIOS if args.scenarios and (not any(x in SCENARIOS for x in only) or s in only)]
    rows = [b for b in BROKERS if not any(x in BROKERS for x in only) or b in only]
    if not os.path.exists(MOSQUITTO):
        log(f"{MOSQUITTO} missing: no mosquitto rows")
        rows = [r for r in rows if r != "mosquitto"]
    args.tern, args.loadgen = os.path.abspath(args.tern), os.path.abspath(args.loadgen)
    for exe in (args.tern, os.path.join(args.loadgen, "mqtt-loadgen")):
        if not os.access(exe, os.X_OK):
            raise HarnessError(f"{exe}: not an executable")

    tmp = tempfile.mkdtemp(prefix="tern-durable-", dir=args.tmpdir)
    os.chmod(tmp, 0o777)
    # Every round runs the same binary, even when build/release is rebuilt during the run.
    built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(args.tern).st_mtime))
    with open(args.tern, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    tern_copy = os.path.join(tmp, "tern")
    shutil.copy2(args.tern, tern_copy)
    os.chmod(tern_copy, 0o755)
    tern_path, args.tern = args.tern, tern_copy
    out = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv, "rounds": rounds,
           "smoke": args.smoke, "tmpdir": tmp, "scenarios": {s: SCENARIOS[s] for s in scenarios},
           "timing": " ".join(SMOKE_TIMING if args.smoke else TIMING), "brokers": BROKERS, "runs": [],
           "tern": {"path": tern_path, "built": built, "sha256": digest}}
    failures = []
    skipped_rows = {}
    try:
        log(f"tern {tern_path} (built {built}, sha256 {digest}, copied for the run), stores in {tmp}, "
            f"{rounds} round(s)")
        for rnd in range(1, rounds + 1):
            for sc in scenarios:
                order = rows if rnd % 2 else list(reversed(rows))
                for row in order:
                    if row in skipped_rows:
                        out["runs"].append({"row": row, "scenario": sc, "round": rnd, "skipped": skipped_rows[row]})
                        continue
                    r = measure_row(args, tmp, row, sc, rnd)
                    out["runs"].append(r)
                    if r.get("skipped"):
                        skipped_rows[row] = r["skipped"]
                        log(f"round {rnd} {sc:16} {row:15} SKIPPED (did not start): {r['skipped']}")
                        continue
                    x = r.get("result") or {}
                    st = r.get("store")
                    offline = sc == "durable-offline"
                    log(f"round {rnd} {sc:16} {row:15} acked {x.get('ack_per_s', 0):9.0f}/s delivered "
                        f"{x.get('offline_recv_per_s' if offline else 'recv_per_s', 0):9.0f}/s "
                        f"p50 {x.get('lat_p50_us', 0):7.0f} us lost {x.get('lost', 0):.0f} dup "
                        f"{x.get('duplicates', 0):.0f} unacked {x.get('unacked', 0):.0f} "
                        f"store {'n/a' if not st else str(st['syncs']) + ' syncs'} exit {x.get('exit', '-')}"
                        + (f"  ERROR {r['error']}" if r.get("error") else ""))
                    if row in DURABLE_ROWS and (r.get("error") or x.get("lost", 0) or x.get("unacked", 0)):
                        failures.append(f"{row} {sc} round {rnd}: lost {x.get('lost', 0):.0f}, unacked "
                                        f"{x.get('unacked', 0):.0f}{'; ' + r['error'] if r.get('error') else ''}")
        if scenarios:
            print_scenarios(out["runs"], scenarios, rows, rounds)

        if args.strace and "tern-sync" in rows and "tern-sync" not in skipped_rows:
            if not shutil.which("strace"):
                raise HarnessError("--strace: strace is not installed")
            log("\nstrace cross-check: durable-qos1 on tern-sync once more, strace attached after the start")
            r = measure_row(args, tmp, "tern-sync", "durable-qos1", 0, strace=True)
            out["strace"] = r
            st, calls = r.get("store"), r.get("strace") or {}
            x = r.get("result") or {}
            log(f"  fdatasync calls {calls.get('fdatasync')}, fsync calls {calls.get('fsync')} (strace, attach to "
                f"detach) vs broker syncs {st['syncs'] if st else 'n/a'} (Store: line, start to exit, includes the "
                f"shutdown); acked {x.get('ack_per_s', 0):.0f}/s under strace (slowed by ptrace)")
            if r.get("error") or r.get("skipped"):
                log(f"  error: {r.get('error') or r.get('skipped')}")

        if args.fdatasync:
            fs = fdatasync_cost(tmp)
            out["fdatasync"] = fs
            dev = subprocess.run(["df", "--output=source,fstype,target", tmp], capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1]
            out["fdatasync"]["filesystem"] = dev
            log(f"\nfdatasync after a 64-byte append, {fs['n']} times in {tmp} ({dev}): median "
                f"{fs['median_us']:.0f} us, p90 {fs['p90_us']:.0f} us, p99 {fs['p99_us']:.0f} us, max {fs['max_us']:.0f} us")

        if args.restart:
            restart_rows = [r for r in ("tern-sync", "mosquitto") if r in rows and r not in skipped_rows]
            log(f"\nrestart: {args.sessions} sessions, {args.queued} queued messages: {', '.join(restart_rows)}")
            recs = []
            for row in restart_rows:
                r = restart_test(args, tmp, row)
                recs.append(r)
                if row in DURABLE_ROWS and (r.get("error") or r.get("verify_lost")):
                    failures.append(f"{row} restart: lost {r.get('verify_lost')}; {r.get('error') or ''}")
            out["restart"] = recs
            print_restart(recs)
    finally:
        out["failures"] = failures
        out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"\nJSON: {args.json}")
    if failures:
        log("FAILURES (durable rows):", *failures, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 -- any harness failure is exit 2, never 1 (loss)
        import traceback
        traceback.print_exc()
        print(f"harness error: {e}", file=sys.stderr)
        sys.exit(2)
