#!/usr/bin/python3
"""Crash test: `kill -9` the broker at random moments while persistent publishers send numbered QoS 1
and QoS 2 messages to persistent subscribers (3.1.1 clean session 0 and 5.0 with a Session Expiry
Interval; some online, some offline and reconnecting now and then, one subscribing late), restart it
on the same store, reconnect everyone with their sessions and go on. The clients behave as real
ones: a publisher resends what was not acknowledged with DUP=1 (PUBREL after PUBREC), a QoS 2
receiver keeps each packet id from PUBREC to PUBREL and delivers once.

At the end, with everything drained:
- every message the broker acknowledged (PUBACK for QoS 1, PUBREC for QoS 2) reached every
  subscriber that was subscribed before it was first sent;
- first deliveries of each publisher arrive in order (per QoS: a persistent publisher's QoS 2
  message is routed at PUBREL);
- a QoS 1 message comes twice on one connection only if it was sent in more than one broker run
  (a resend after a restart); QoS 2 is delivered exactly once;
- the retained message of each publisher's topic is the last one it sent with RETAIN (one QoS per
  publisher, so that routing order is send order);
- a graceful restart afterwards restores the sessions with nothing queued, in flight or held (an
  inbound QoS 2 id left over would take the next message with that packet id for a resend).
One publisher uses the lowest free packet id (ids come back at once), the other the next one.
A QoS 1 message delivered again after a restart although its PUBACK went out well before the kill
(TERN_CRASH_STALE seconds, default 0.3) is reported as a note, not a failure.

test_retained_delivery_in_flight_survives_kill9: a retained QoS 2 message sent at SUBSCRIBE to a
persistent session is session state too (the random test subscribes with Retain Handling 2).

The random choices come from a seed printed at the start (env TERN_CRASH_SEED to repeat them; the
timing of the events is not repeated); TERN_CRASH_KILLS sets the number of kills of the main test.
"""
import collections
import os
import random
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
import conflib  # noqa: E402

SEED = int(os.environ.get("TERN_CRASH_SEED") or random.SystemRandom().randrange(1, 2**31))
KILLS = int(os.environ.get("TERN_CRASH_KILLS") or 40)
TOPIC_FILTER = "crash/#"
STALE = float(os.environ.get("TERN_CRASH_STALE") or 0.3)
SESSION_EXPIRY = conflib.p_u32(0x11, 3600)


class Failure(AssertionError):
    pass


def tmpdir(prefix):
    # Open to all: run as root, Tern drops privileges after binding and writes the store as that user.
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o777)
    return d


def pid_of(pkt):
    return struct.unpack("!H", pkt[2:4])[0]


def reason_of(pkt):
    """Reason code of a PUBACK/PUBREC/PUBREL/PUBCOMP (0 in the short form)."""
    return pkt[4] if pkt[1] >= 3 else 0


class Run:
    """What one test run shares: the random generator, the clock of events (ticks), the broker,
    the kill trigger and the counters of the summary."""

    def __init__(self, name, rng, conf, workers):
        self.name = name
        self.workers = workers
        self.rng = rng
        self.conf = conf
        self.tick = 0
        self.run_no = 0  # broker runs: 1 for the first start, +1 per restart
        self.broker = None
        self.brokers = []
        self.killed = False
        self.trigger = None  # (event kind, occurrences left) or None
        self.kill_at = None  # time.time() for a time trigger
        self.kills = collections.Counter()
        self.kill_times = []
        self.problems = []  # protocol anomalies seen on the way (reported at the end)

    def next_tick(self):
        self.tick += 1
        return self.tick

    def start(self, expect_sessions=None):
        self.run_no += 1
        self.broker = Broker(self.conf, workers=self.workers, verbose=True)
        self.brokers.append(self.broker)
        m = self.broker.wait_log(r"Store .* mode\): restored (\d+) sessions, (\d+) queued and (\d+) in-flight "
                                 r"messages, (\d+) inbound QoS 2 ids", timeout=15)
        if expect_sessions is not None and int(m.group(1)) != expect_sessions:
            raise Failure(f"run {self.run_no}: restored {m.group(1)} sessions, expected {expect_sessions}: "
                          f"{m.group(0)}")
        self.killed = False
        return m

    def event(self, kind):
        """Called after each client event; kills the broker when the trigger says so."""
        if self.killed or self.trigger is None or self.trigger[0] != kind:
            return
        left = self.trigger[1] - 1
        if left > 0:
            self.trigger = (kind, left)
            return
        self.kill(kind)

    def kill(self, why):
        if self.killed:
            return
        if self.broker.proc.poll() is not None:
            raise Failure(f"run {self.run_no}: the broker died by itself before the kill:\n"
                          + self.broker.log()[-4000:])
        self.broker.proc.send_signal(signal.SIGKILL)
        self.kill_times.append(time.time())
        self.killed = True
        self.trigger = None
        self.kill_at = None
        self.kills[why] += 1

    def cleanup(self, keep):
        for b in self.brokers:
            b.stop(signal.SIGKILL)
            if not keep:
                shutil.rmtree(b.dir, ignore_errors=True)


class Peer:
    """One client with a persistent session. Its session state (what a real client keeps in memory)
    outlives its connections; `c` is the current ternlib.Client or None."""

    def __init__(self, run, name, version):
        self.run = run
        self.name = name
        self.version = version
        self.c = None
        self.conn_no = 0
        self.has_session = False  # got a CONNACK once: the broker must restore the session
        self.last_rx = time.time()

    def connected(self):
        return self.c is not None

    def connect(self, port):
        c = Client(port, timeout=5.0)
        if self.version == 5:
            c.send(conflib.connect5(self.name, clean=False, props=SESSION_EXPIRY))
        else:
            c.send(connect(self.name, version=self.version, clean=False))
        ca = c.recv(timeout=10.0)
        if ca is None or ca[0] != 0x20 or ca[3] != 0:
            raise Failure(f"run {self.run.run_no}: {self.name}: CONNACK {ca.hex() if ca else ca}")
        present = bool(ca[2] & 1)
        if present != self.has_session:
            raise Failure(f"run {self.run.run_no}: {self.name}: session present {int(present)}, expected "
                          f"{int(self.has_session)} (CONNACK {ca.hex()})")
        self.has_session = True
        self.c = c
        self.conn_no += 1
        self.last_rx = time.time()
        self.on_connected()
        self.process_buffered()

    def on_connected(self):
        pass

    def send(self, data):
        if self.c is None or self.run.killed:
            return False  # the broker is gone: the bytes would go nowhere
        try:
            self.c.sock.sendall(data)
            return True
        except OSError:
            return False

    def disconnect(self):
        self.send(DISCONNECT)
        self.drop()

    def drop(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def process_buffered(self):
        while self.c is not None:
            p = self.c.recv(0)
            if p is None:
                return
            self.last_rx = time.time()
            self.handle(p)

    def on_readable(self):
        """Reads what is there; returns False when the connection ended."""
        try:
            chunk = self.c.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.process_buffered()
            self.drop()
            return False
        self.c.buf += chunk
        self.process_buffered()
        return True

    def drain_after_kill(self):
        """What arrived before the broker died is read and handled (acknowledgements are not sent)."""
        deadline = time.time() + 2.0
        while self.c is not None and time.time() < deadline:
            r, _, _ = select.select([self.c.sock], [], [], 0.2)
            if r:
                self.on_readable()
        self.drop()


class Publisher(Peer):
    def __init__(self, run, name, version, topic):
        super().__init__(run, name, version)
        self.topic = topic
        self.next_seq = 1
        self.next_pid = 1
        self.inflight = collections.OrderedDict()  # pid -> [seq, qos, state 'pub' | 'rel']
        self.acked = {}  # seq -> qos
        self.qos_of = {}  # seq -> qos
        self.first_tick = {}  # seq -> tick of the first send
        self.sent_runs = collections.defaultdict(set)  # seq -> broker runs it was sent in
        self.todo = 0
        self.window = 10
        self.payloads = {}  # seq -> payload
        # Seqs sent with RETAIN: of one QoS only, so that the last one is the last routed one (a persistent
        # publisher's QoS 2 message is routed at PUBREL, after QoS 1 messages sent meanwhile).
        self.retained = set()
        self.retain_qos = 1 if version != 5 else 2
        self.lowest_pid = version != 5  # else the next id, cycling through 1..65535

    def payload(self, seq, qos):
        pad = bytes(self.run.rng.randrange(256) for _ in range(self.run.rng.randrange(0, 48)))
        return f"{self.name}|{seq}|{qos}|".encode() + pad.hex().encode()

    def publish_packet(self, pid, seq, qos, dup):
        data = self.payloads[seq]
        retain = seq in self.retained
        if self.version == 5:
            return conflib.publish5(self.topic, data, qos=qos, pid=pid, dup=dup, retain=retain)
        return publish(self.topic, data, qos=qos, packet_id=pid, dup=dup, version=self.version, retain=retain)

    def alloc_pid(self):
        if self.lowest_pid:
            # The lowest free packet id, as some clients do: ids are reused at once, so a packet id the
            # broker still holds from before a crash meets a new message soon.
            pid = 1
            while pid in self.inflight:
                pid += 1
            return pid
        while True:
            pid = self.next_pid
            self.next_pid = pid % 65535 + 1
            if pid not in self.inflight:
                return pid

    def on_connected(self):
        # Resend what the broker did not acknowledge, in the original order [MQTT-4.4.0-1].
        for pid, (seq, qos, state) in list(self.inflight.items()):
            if state == "pub":
                self.sent_runs[seq].add(self.run.run_no)
                self.send(self.publish_packet(pid, seq, qos, dup=True))
            else:
                self.send(ack("pubrel", pid))

    def send_more(self):
        while self.c is not None and self.todo > 0 and len(self.inflight) < self.window and not self.run.killed:
            seq = self.next_seq
            self.next_seq += 1
            self.todo -= 1
            qos = self.run.rng.choice((1, 2))
            self.qos_of[seq] = qos
            if qos == self.retain_qos and self.run.rng.random() < 0.3:
                self.retained.add(seq)
            self.payloads[seq] = self.payload(seq, qos)
            pid = self.alloc_pid()
            self.inflight[pid] = [seq, qos, "pub"]
            self.first_tick[seq] = self.run.next_tick()
            self.sent_runs[seq].add(self.run.run_no)
            self.send(self.publish_packet(pid, seq, qos, dup=False))
            self.run.event("pub_send")

    def handle(self, p):
        kind = p[0] >> 4
        if kind not in (4, 5, 7):
            self.run.problems.append(f"{self.name}: unexpected packet {p.hex()}")
            return
        pid = pid_of(p)
        f = self.inflight.get(pid)
        if kind == 4:  # PUBACK
            if f is None or f[1] != 1 or f[2] != "pub":
                self.run.problems.append(f"run {self.run.run_no}: {self.name}: PUBACK for {pid} not awaited ({f})")
                return
            if reason_of(p) >= 0x80:
                raise Failure(f"run {self.run.run_no}: {self.name}: PUBACK {p.hex()} refused seq {f[0]}")
            self.acked[f[0]] = 1
            del self.inflight[pid]
            self.run.event("pub_puback")
        elif kind == 5:  # PUBREC
            if f is None or f[1] != 2:
                self.run.problems.append(f"run {self.run.run_no}: {self.name}: PUBREC for {pid} not awaited ({f})")
                return
            if reason_of(p) >= 0x80:
                raise Failure(f"run {self.run.run_no}: {self.name}: PUBREC {p.hex()} refused seq {f[0]}")
            self.acked[f[0]] = 2
            f[2] = "rel"
            self.run.event("pub_pubrec")  # may kill before the PUBREL goes out
            if self.send(ack("pubrel", pid)):
                self.run.event("pub_pubrel")
        else:  # PUBCOMP
            if f is None or f[2] != "rel":
                self.run.problems.append(f"run {self.run.run_no}: {self.name}: PUBCOMP for {pid} not awaited ({f})")
                return
            del self.inflight[pid]
            self.run.event("pub_pubcomp")


class Subscriber(Peer):
    def __init__(self, run, name, version, mode):
        super().__init__(run, name, version)
        self.mode = mode  # online | offline | late
        self.sub_tick = None  # tick when the SUBACK came
        self.awaiting_rel = {}  # pid -> (publisher, seq): QoS 2 received, PUBREC sent, no PUBREL yet
        self.held_retain = {}  # pid -> RETAIN flag of that PUBLISH (1: a retained message sent at SUBSCRIBE)
        self.deferred = collections.deque()  # (due, packet, event kind)
        self.deliveries = []  # (publisher, seq, qos, conn_no, run_no)
        self.count = collections.Counter()  # (publisher, seq) -> deliveries to the application
        self.conn_count = collections.Counter()  # (publisher, seq, conn_no) -> deliveries
        self.first_order = collections.defaultdict(list)  # (publisher, qos) -> seqs in first-delivery order
        self.qos2_resends = 0  # QoS 2 PUBLISH of a held packet id: answered, not delivered again
        self.leave_at = None  # offline subscriber's visit: when it disconnects again
        self.puback_at = {}  # (publisher, seq) -> when its last PUBACK went out
        self.stale_dups = []  # QoS 1 resent after a restart although PUBACKed long before the kill: gaps (s)

    def subscribe(self):
        if self.version == 5:
            # Retain Handling 2: no retained messages at SUBSCRIBE (those deliveries have a test of their
            # own, test_retained_delivery_in_flight_survives_kill9).
            self.c.send(conflib.subscribe5(1, [(TOPIC_FILTER, 0x22)]))
            want = conflib.suback5(1, 2)
        else:
            self.c.send(subscribe(1, [(TOPIC_FILTER, 2)]))
            want = bytes([0x90, 3, 0, 1, 2])
        got = self.c.recv(timeout=10.0)
        if got != want:
            raise Failure(f"{self.name}: SUBACK {got.hex() if got else got}, expected {want.hex()}")
        self.sub_tick = self.run.next_tick()

    def ack_out(self, pkt, kind, key=None):
        if self.deferred or self.run.rng.random() < 0.1:
            # Now and then an acknowledgement waits a little: flows stay in flight across kills.
            self.deferred.append((time.time() + self.run.rng.uniform(0.002, 0.08), pkt, kind, key))
            return
        self.ack_now(pkt, kind, key)

    def ack_now(self, pkt, kind, key):
        if self.send(pkt):
            if key is not None:
                self.puback_at[key] = time.time()
            self.run.event(kind)

    def flush_deferred(self):
        now = time.time()
        while self.deferred and self.deferred[0][0] <= now and not self.run.killed:
            _, pkt, kind, key = self.deferred.popleft()
            self.ack_now(pkt, kind, key)

    def drop(self):
        super().drop()
        self.deferred.clear()  # unsent acknowledgements die with the connection; the broker resends

    def deliver(self, pub, seq, qos):
        key = (pub, seq)
        self.deliveries.append((pub, seq, qos, self.conn_no, self.run.run_no))
        if self.count[key] == 0:
            self.first_order[(pub, qos)].append(seq)
        elif qos == 1 and key in self.puback_at:
            acked = self.puback_at[key]
            kill = next((k for k in self.run.kill_times if k > acked), None)
            if kill is not None and kill - acked > STALE and len(self.run.pub_by_name[pub].sent_runs[seq]) == 1:
                self.stale_dups.append(kill - acked)
        self.count[key] += 1
        self.conn_count[(pub, seq, self.conn_no)] += 1

    def handle(self, p):
        kind = p[0] >> 4
        if kind == 3:
            d = conflib.parse_publish(p, self.version)
            try:
                pub, seq, qos_pub, _ = d["payload"].split(b"|", 3)
                pub, seq, qos_pub = pub.decode(), int(seq), int(qos_pub)
            except ValueError:
                raise Failure(f"{self.name}: unexpected payload {d['payload']!r}")
            qos = d["qos"]
            if qos != qos_pub:
                raise Failure(f"{self.name}: {pub} seq {seq} published at QoS {qos_pub} came at QoS {qos}")
            if qos == 1:
                if d["pid"] in self.awaiting_rel:
                    raise Failure(f"run {self.run.run_no}: {self.name}: QoS 1 PUBLISH with packet id {d['pid']}, "
                                  f"which a QoS 2 message still holds: {self.held_desc(d['pid'])}")
                self.deliver(pub, seq, qos)
                self.ack_out(ack("puback", d["pid"]), "sub_puback", (pub, seq))
            elif qos == 2:
                held = self.awaiting_rel.get(d["pid"])
                if held is not None:
                    # [MQTT-4.3.3-9] the same packet id before PUBREL: PUBREC again, no second delivery.
                    if held != (pub, seq):
                        raise Failure(f"run {self.run.run_no}: {self.name}: packet id {d['pid']} reused for "
                                      f"{(pub, seq)} before PUBREL of {self.held_desc(d['pid'])}: a receiver "
                                      f"takes it for a resend and never delivers {(pub, seq)}")
                    if not d["dup"]:
                        self.run.problems.append(f"run {self.run.run_no}: {self.name}: QoS 2 resend of "
                                                 f"{held} without DUP")
                    self.qos2_resends += 1
                else:
                    self.awaiting_rel[d["pid"]] = (pub, seq)
                    self.held_retain[d["pid"]] = d["retain"]
                    self.deliver(pub, seq, qos)
                self.ack_out(ack("pubrec", d["pid"]), "sub_pubrec")
            else:
                raise Failure(f"{self.name}: QoS 0 delivery of {pub} seq {seq}")
        elif kind == 6:  # PUBREL
            self.awaiting_rel.pop(pid_of(p), None)
            self.ack_out(ack("pubcomp", pid_of(p)), "sub_pubcomp")
        else:
            self.run.problems.append(f"{self.name}: unexpected packet {p.hex()}")

    def held_desc(self, pid):
        what = f"{self.awaiting_rel[pid]}"
        if self.held_retain.get(pid):
            what += " (a retained message sent at SUBSCRIBE)"
        return what

    def quiet(self):
        return not self.awaiting_rel and not self.deferred


def held_report(subs):
    """[(subscriber, [messages awaiting PUBREL])] for the subscribers that hold any."""
    return [(s.name, [s.held_desc(p) for p in s.awaiting_rel]) for s in subs if s.awaiting_rel]


def pump(run, peers, pubs, subs, seconds, done=None):
    """Runs the clients until the broker is killed, `done()` holds or `seconds` passed."""
    deadline = time.time() + seconds
    while time.time() < deadline and not run.killed:
        if done is not None and done():
            return True
        if run.broker.proc.poll() is not None:
            raise Failure(f"run {run.run_no}: the broker died by itself:\n" + run.broker.log()[-4000:])
        socks = {p.c.sock: p for p in peers if p.connected()}
        r, _, _ = select.select(list(socks), [], [], 0.002) if socks else ([], [], [])
        for sock in r:
            p = socks[sock]
            if p.connected() and not p.on_readable() and not run.killed:
                raise Failure(f"run {run.run_no}: the broker closed {p.name}'s connection:\n"
                              + run.broker.log()[-3000:])
            if run.killed:
                break
        if run.killed:
            break
        now = time.time()
        for s in subs:
            if s.connected():
                s.flush_deferred()
                if s.leave_at is not None and now >= s.leave_at and not run.killed:
                    s.leave_at = None
                    s.disconnect()
        for p in pubs:
            p.send_more()
        if run.kill_at is not None and now >= run.kill_at:
            run.kill("time")
    return done is not None and not run.killed and done()


def crash_run(name, seed, kills, mode="sync", workers=4):
    rng = random.Random(f"{seed}:{name}")
    t0 = time.time()
    store_dir = tmpdir("tern-crash-")
    conf = f"persistence_location {store_dir}\npersistence_mode {mode}\n"
    run = Run(name, rng, conf, workers)
    ok = False
    try:
        pubs = [Publisher(run, "crash-pub3", 4, "crash/p3"), Publisher(run, "crash-pub5", 5, "crash/p5")]
        run.pub_by_name = {p.name: p for p in pubs}
        subs = [Subscriber(run, "crash-on3", 4, "online"), Subscriber(run, "crash-on5", 5, "online"),
                Subscriber(run, "crash-off3", 4, "offline"), Subscriber(run, "crash-off5", 5, "offline"),
                Subscriber(run, "crash-late5", 5, "late")]
        late = subs[-1]
        late_epoch = rng.randrange(2, max(3, kills // 2))
        peers = pubs + subs

        def sessions():
            return sum(1 for p in peers if p.has_session)

        run.start(0)
        for s in subs:
            if s.mode == "late":
                continue
            s.connect(run.broker.port)
            s.subscribe()
            if s.mode == "offline":
                s.disconnect()
        for p in pubs:
            p.connect(run.broker.port)
        since_visit = {s.name: 0 for s in subs}

        kinds = ["time", "pub_send", "pub_puback", "pub_pubrec", "pub_pubrel", "pub_pubcomp",
                 "sub_puback", "sub_pubrec", "sub_pubcomp", "quiet"]
        for epoch in range(kills + 1):
            final = epoch == kills
            if epoch == late_epoch:
                late.connect(run.broker.port)
                late.subscribe()
            for p in pubs:
                p.todo = 0
            for s in subs:
                # Offline subscribers come by now and then and may leave again; every 4th run at the latest
                # one drains its queue completely (far below max_queued_messages, the offline bound).
                if s.mode != "offline" or s.connected() or final:
                    continue
                since_visit[s.name] += 1
                if since_visit[s.name] >= 4:
                    since_visit[s.name] = 0
                    s.connect(run.broker.port)
                    if not pump(run, peers, pubs, subs, 15.0,
                                done=lambda: s.quiet() and time.time() - s.last_rx > 0.15):
                        raise Failure(f"run {run.run_no}: {s.name} did not drain in 15 s; awaiting PUBREL for "
                                      f"{[s.held_desc(p) for p in s.awaiting_rel]}")
                    s.disconnect()
                elif rng.random() < 0.35:
                    since_visit[s.name] = 0
                    s.connect(run.broker.port)
                    if rng.random() < 0.5:
                        s.leave_at = time.time() + rng.uniform(0.05, 0.6)
            for p in pubs:
                # Mostly a few messages, now and then a burst (many batches per group commit).
                p.todo = rng.randrange(30, 61) if rng.random() < 0.2 else rng.randrange(5, 21)
                p.window = rng.choice((1, 3, 10, 20))
            if final:
                break
            kind = rng.choice(kinds)
            if kind == "time":
                # Half of them while the restored sessions are being resent, right after the reconnects.
                run.kill_at = time.time() + rng.uniform(0.0, rng.choice((0.03, 0.5)))
            elif kind != "quiet":
                run.trigger = (kind, rng.randrange(1, 9))

            def settled():
                return (all(p.todo == 0 and not p.inflight for p in pubs)
                        and all(s.quiet() for s in subs if s.connected())
                        and time.time() - max(p.last_rx for p in peers) > 0.05)

            if not pump(run, peers, pubs, subs, 8.0, done=None if kind == "time" else settled) and not run.killed:
                raise Failure(f"run {run.run_no}: clients did not settle in 8 s; publishers in flight "
                              f"{[len(p.inflight) for p in pubs]}, subscribers awaiting PUBREL "
                              f"{held_report(s for s in subs if s.connected())}")
            if not run.killed:
                # The trigger did not come up (or none was set): the kill lands in a quiet moment.
                time.sleep(rng.uniform(0.0, 0.05))
                run.kill("quiet" if kind == "quiet" else f"{kind} (not reached)")
            for p in peers:
                if p.connected():
                    p.drain_after_kill()
            for s in subs:
                s.leave_at = None
            run.broker.stop(signal.SIGKILL)
            run.start(sessions())
            order = list(peers)
            rng.shuffle(order)
            for p in order:
                if isinstance(p, Subscriber) and (p.mode == "offline" or p.sub_tick is None):
                    continue
                p.connect(run.broker.port)

        # The end: publish what was drawn for the last run, let everything complete and drain every
        # subscriber, offline ones too.
        for s in subs:
            if not s.connected():
                s.connect(run.broker.port)
            s.leave_at = None

        def drained():
            return (all(p.todo == 0 and not p.inflight for p in pubs) and all(s.quiet() for s in subs)
                    and time.time() - max(p.last_rx for p in peers) > 1.0)

        if not pump(run, peers, pubs, subs, 30.0, done=drained):
            raise Failure(f"not drained in 30 s: publishers in flight {[dict(p.inflight) for p in pubs]}, "
                          f"subscribers awaiting PUBREL {held_report(subs)}\n"
                          + run.broker.log()[-3000:])
        check(run, pubs, subs)
        check_retained(run, pubs, "after the last kill")

        # A graceful restart now finds nothing left to deliver.
        for p in peers:
            p.disconnect()
        run.broker.stop()
        m = run.start(sessions())
        left = tuple(int(m.group(i)) for i in (2, 3, 4))
        if left != (0, 0, 0):
            raise Failure(f"after everything was acknowledged and completed, a graceful restart restored "
                          f"{left[0]} queued, {left[1]} in-flight messages and {left[2]} inbound QoS 2 ids")
        check_retained(run, pubs, "after a graceful restart")
        for s in subs:
            s.connect(run.broker.port)
        pump(run, peers, pubs, subs, 0.5)
        extra = [s.name for s in subs if s.deliveries and s.deliveries[-1][4] == run.run_no]
        if extra:
            raise Failure(f"messages delivered again after a graceful restart to {extra}")

        acked = sum(len(p.acked) for p in pubs)
        sent = sum(p.next_seq - 1 for p in pubs)
        q1 = sum(1 for p in pubs for q in p.acked.values() if q == 1)
        deliveries = sum(len(s.deliveries) for s in subs)
        firsts = sum(len(s.count) for s in subs)
        dup1 = sum(n - 1 for s in subs for n in s.count.values() if n > 1)
        dup1_resent = sum(n - 1 for s in subs for (pn, seq), n in s.count.items()
                          if n > 1 and len(run.pub_by_name[pn].sent_runs[seq]) > 1)
        resends2 = sum(s.qos2_resends for s in subs)
        stale = [g for s in subs for g in s.stale_dups]
        kills_done = sum(run.kills.values())
        kinds_done = ", ".join(f"{k} {n}" for k, n in sorted(run.kills.items()))
        print(f"  {name}: seed {seed}, {kills_done} kills ({kinds_done}), "
              f"{sent} sent, {acked} acknowledged ({q1} QoS 1, {acked - q1} QoS 2), {deliveries} deliveries, "
              f"{firsts} first deliveries, {dup1} QoS 1 duplicates (all after a restart; {dup1_resent} of messages the "
              f"publisher sent again), "
              f"{resends2} QoS 2 resends held back by packet id, 0 QoS 2 duplicates, {time.time() - t0:.1f} s")
        if stale:
            print(f"  note: {len(stale)} QoS 1 messages came again after a restart although their PUBACK went out "
                  f"{STALE} s or more before the kill (up to {max(stale):.2f} s)")
        for prob in run.problems[:20]:
            print(f"  note: {prob}")
        ok = True
    except Exception as e:
        # Every run's log, in order, next to the store that is kept.
        with open(os.path.join(store_dir, "broker-logs.txt"), "w") as f:
            f.write("".join(f"run {i + 1}: {b.log_path}\n" for i, b in enumerate(run.brokers)))
        logs = ", ".join(b.log_path for b in run.brokers[-2:])
        raise Failure(f"{e}\n  seed {seed} (TERN_CRASH_SEED={seed} {sys.argv[0]} to repeat; the timing is not "
                      f"repeated); store {store_dir}; last broker logs {logs} (all: {store_dir}/broker-logs.txt)") \
            from (None if isinstance(e, AssertionError) else e)
    finally:
        run.cleanup(keep=not ok)
        if ok:
            shutil.rmtree(store_dir, ignore_errors=True)


def check_retained(run, pubs, when):
    """The retained message of each publisher's topic is the last one it sent with RETAIN (all are
    acknowledged by now)."""
    c = Client(run.broker.port)
    c.send(conflib.connect5("crash-retained-check"))
    ca = c.recv()
    assert ca and ca[3] == 0, ca
    c.send(conflib.subscribe5(1, [(TOPIC_FILTER, 1)]))
    got = {}
    deadline = time.time() + 5
    while time.time() < deadline:
        p = c.recv(timeout=1.0)
        if p is None:
            break
        if p[0] >> 4 == 3:
            d = conflib.parse_publish(p, 5)
            pub, seq = d["payload"].split(b"|")[:2]
            if not d["retain"]:
                raise Failure(f"{when}: a PUBLISH without RETAIN right after SUBSCRIBE: {d}")
            got[pub.decode()] = int(seq)
            if d["qos"]:
                c.send(ack("puback", d["pid"]))
    c.send(DISCONNECT)
    c.close()
    for p in pubs:
        if not p.retained:
            continue
        have = got.get(p.name)
        if have != max(p.retained):
            raise Failure(f"{when}: the retained message of {p.topic} is seq {have}; the last one sent with "
                          f"RETAIN (QoS {p.retain_qos}, acknowledged) is {max(p.retained)}")


def check(run, pubs, subs):
    errors = []
    for s in subs:
        for p in pubs:
            missing = [seq for seq in sorted(p.acked)
                       if p.first_tick[seq] > s.sub_tick and (p.name, seq) not in s.count]
            if missing:
                errors.append(f"{s.name}: {len(missing)} acknowledged messages of {p.name} never delivered: "
                              f"{missing[:20]}")
            unknown = [seq for (pn, seq) in s.count if pn == p.name and seq not in p.qos_of]
            if unknown:
                errors.append(f"{s.name}: delivered seqs {p.name} never sent: {unknown[:10]}")
            for qos in (1, 2):
                order = [seq for seq in s.first_order[(p.name, qos)] if p.first_tick[seq] > s.sub_tick]
                bad = [(a, b) for a, b in zip(order, order[1:]) if b < a]
                if bad:
                    errors.append(f"{s.name}: first deliveries of {p.name} QoS {qos} out of order at {bad[:5]}")
        for (pn, seq), n in s.count.items():
            qos = next(p for p in pubs if p.name == pn).qos_of[seq]
            if qos == 2 and n > 1:
                errors.append(f"{s.name}: QoS 2 {pn} seq {seq} delivered {n} times")
        for (pn, seq, conn), n in s.conn_count.items():
            p = next(p for p in pubs if p.name == pn)
            if p.qos_of[seq] == 1 and n > len(p.sent_runs[seq]):
                errors.append(f"{s.name}: QoS 1 {pn} seq {seq} came {n} times on connection {conn} but was sent in "
                              f"{len(p.sent_runs[seq])} broker run(s) only (a duplicate without a restart)")
    for p in pubs:
        if len(p.acked) != p.next_seq - 1:
            errors.append(f"{p.name}: {p.next_seq - 1 - len(p.acked)} messages never acknowledged")
    if errors:
        raise Failure("\n  ".join([f"{len(errors)} problems:"] + errors[:40]))


def test_kill9_sync():
    crash_run("kill9_sync", SEED, KILLS)


def test_kill9_batched_one_worker():
    """Batched mode loses nothing at kill -9 either (the page cache survives the process)."""
    crash_run("kill9_batched_one_worker", SEED, max(4, KILLS // 3), mode="batched", workers=1)


def test_retained_delivery_in_flight_survives_kill9():
    """A retained QoS 2 message sent to a persistent session at SUBSCRIBE is session state like any
    other delivery: after kill -9 it comes back (PUBLISH with DUP=1 and the same packet id, or PUBREL
    after PUBREC), and its packet id is not given to another message meanwhile."""
    store_dir = tmpdir("tern-crash-retained-")
    conf = f"persistence_location {store_dir}\n"
    brokers = []
    errors = []
    ok = False
    try:
        for pubrec_first in (False, True):
            b = Broker(conf)
            brokers.append(b)
            cid = f"crash-ret-{int(pubrec_first)}"
            pub = Client(b.port)
            pub.connect("crash-ret-pub")
            pub.send(publish(f"ret/{cid}", "kept", qos=2, retain=True, packet_id=1))
            assert pub.recv() == ack("pubrec", 1)
            pub.send(ack("pubrel", 1))
            assert pub.recv() == ack("pubcomp", 1)
            pub.close()
            sub = Client(b.port)
            assert sub.connect(cid, clean=False) == connack(False)
            sub.send(subscribe(1, [(f"ret/{cid}", 2)]))
            got = [sub.recv(), sub.recv()]
            pubs = [conflib.parse_publish(p) for p in got if p and p[0] >> 4 == 3]
            assert len(pubs) == 1 and pubs[0]["qos"] == 2 and pubs[0]["retain"], [p.hex() if p else p for p in got]
            pid = pubs[0]["pid"]
            if pubrec_first:
                sub.send(ack("pubrec", pid))
                assert sub.recv() == ack("pubrel", pid)
            b.stop(signal.SIGKILL)
            b = Broker(conf)
            brokers.append(b)
            sub = Client(b.port)
            assert sub.connect(cid, clean=False) == connack(True)
            p = sub.recv(timeout=2.0)
            if pubrec_first:
                if p != ack("pubrel", pid):
                    errors.append(f"after PUBREC for the retained QoS 2 message (packet id {pid}) and kill -9: "
                                  f"expected PUBREL {pid}, got {p.hex() if p else 'nothing'} (the client holds the "
                                  f"id forever)")
            elif p is None or p[0] >> 4 != 3:
                errors.append(f"the retained QoS 2 message in flight (packet id {pid}, no PUBREC yet) did not come "
                              f"back after kill -9 (got {p.hex() if p else 'nothing'})")
            else:
                d = conflib.parse_publish(p)
                if not (d["pid"] == pid and d["dup"] and d["payload"] == b"kept"):
                    errors.append(f"the retained QoS 2 message came back as {d}")
            b.stop()
        assert not errors, "; ".join(errors)
        ok = True
    finally:
        kill_all(brokers, ok, store_dir)


if __name__ == "__main__":
    print(f"seed {SEED} (TERN_CRASH_SEED={SEED} to repeat)")
    run_tests([test_kill9_sync, test_kill9_batched_one_worker, test_retained_delivery_in_flight_survives_kill9])
