#!/usr/bin/python3
"""Process options of `tern broker`, through the real binary: -d, -p, pid_file, user, include_dir,
several listeners, log_dest file, signals, configuration errors.

The reference is Debian 12's mosquitto 2.0.11. Where a test states what Mosquitto does, that was
checked by running /usr/sbin/mosquitto 2.0.11 the same way.

Every port is found free at run time and only 127.0.0.1 / ::1 are bound. Every process the tests
start (including daemons, found by their pid file or by their unique config path) is stopped by
PID, and every temporary directory is removed, even when a test fails.
"""
import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403
from ternlib import TERN  # noqa: E402

_procs = []      # Popen objects started by this file
_pids = set()    # other PIDs (daemons) started by this file
_dirs = []       # temporary directories
_stray = []      # files a broken daemon may leave outside the temporary directories


class Skip(Exception):
    """Raised by a test that does not apply here; counted neither as pass nor fail."""


# ---- process and file helpers ----------------------------------------------------------------

def _pid_alive(pid):
    """True while the process exists and is not a zombie (a daemon's zombie may linger when PID 1
    does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids_with_arg(text):
    """PIDs whose command line contains `text` (a unique temporary path)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in args) and int(d) != os.getpid():
            out.append(int(d))
    return out


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _dirs:
        for pid in _pids_with_arg(d):
            _pids.add(pid)
    for pid in _pids:
        if _pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)
    for f in _stray:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass


atexit.register(_cleanup)


def tmpdir():
    """A temporary directory readable by the broker after it drops privileges (Tern and Mosquitto
    drop to the `mosquitto` user, or `nobody`, when started as root), with a world-writable `run`
    subdirectory for pid and log files."""
    d = tempfile.mkdtemp(prefix="tern-proc-")
    _dirs.append(d)
    os.chmod(d, 0o755)
    run = os.path.join(d, "run")
    os.mkdir(run)
    os.chmod(run, 0o777)
    return d


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def free_port(v4=True, v6=False):
    """A TCP port free on 127.0.0.1 (v4) and/or ::1 (v6) right now."""
    for _ in range(100):
        fam, host = (socket.AF_INET, "127.0.0.1") if v4 else (socket.AF_INET6, "::1")
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if v4 and v6:
            t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                t.bind(("::1", port))
            except OSError:
                continue
            finally:
                t.close()
        return port
    raise AssertionError("no free port")


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def start(args, cwd=None):
    """Starts `tern broker ARGS` in the foreground; output goes to a file. Returns (proc, out_path)."""
    d = tmpdir()
    out = os.path.join(d, "stdout.txt")
    with open(out, "w") as f:
        # The working directory is the broker's own: its store (persistence_location's default) goes there.
        p = subprocess.Popen([TERN, "broker"] + list(args), stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=cwd or d)
    _procs.append(p)
    return p, out


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_serving(port, host="127.0.0.1", proc=None, out=None, timeout=10.0):
    """Waits until the port accepts TCP connections."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"tern exited with {proc.returncode}:\n{read(out) if out else ''}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listening on {host} port {port}:\n{read(out) if out else ''}")


def wait_file(path, timeout=10.0, nonempty=True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = read(path)
        if os.path.exists(path) and (text.strip() or not nonempty):
            return text
        time.sleep(0.02)
    raise AssertionError(f"{path} not written within {timeout} s")


def wait_gone(pid, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def stop(proc, sig=signal.SIGTERM, timeout=5.0):
    """Sends `sig` and returns the exit code; fails if the process does not exit in time."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"tern did not exit within {timeout} s of signal {sig}")


def mqtt_ok(port, host="127.0.0.1", client_id="probe", version=4):
    """A raw CONNECT gets CONNACK 'accepted'."""
    c = Client(port, host=host)
    try:
        got = c.connect(client_id, version=version)
        assert got is not None and got[0] == 0x20, f"no CONNACK from {host}:{port}: {got!r}"
        code = got[3]
        assert code == 0, f"CONNACK from {host}:{port} refused the client: code {code}"
        c.send(DISCONNECT)
    finally:
        c.close()


def refused(port, host):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return False
    except OSError:
        return True


def proc_status(pid):
    """Fields of /proc/PID/status as a dict of strings."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def pubsub_roundtrip(pub_port, pub_host, sub_port, sub_host, topic, tag):
    sub = Client(sub_port, host=sub_host)
    pub = Client(pub_port, host=pub_host)
    try:
        assert sub.connect(f"{tag}-sub") == connack()
        sub.send(subscribe(1, [(topic, 0)]))
        assert sub.recv() == bytes([0x90, 0x03, 0x00, 0x01, 0x00])
        assert pub.connect(f"{tag}-pub") == connack()
        pub.send(publish(topic, f"from {pub_host}"))
        assert sub.recv() == publish(topic, f"from {pub_host}")
    finally:
        sub.close()
        pub.close()


# ---- 1. -d ---------------------------------------------------------------------------------

def test_daemon_mode():
    d = tmpdir()
    port = free_port()
    pid_file = os.path.join(d, "run", "tern.pid")
    log_file = os.path.join(d, "run", "tern.log")
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 2\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                 f"pid_file {pid_file}\nlog_dest file {log_file}\n")
    t0 = time.time()
    # capture_output: if the daemon kept our pipes as its stdout/stderr, this would not return.
    r = subprocess.run([TERN, "broker", "-c", conf, "-d"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL, cwd=d)
    elapsed = time.time() - t0
    for pid in _pids_with_arg(conf):
        _pids.add(pid)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}"
    assert elapsed < 3, f"-d took {elapsed:.1f} s to return"
    text = wait_file(pid_file)
    pid = int(text.strip())
    _pids.add(pid)
    assert _pid_alive(pid), f"pid {pid} from the pid file is not running"
    st = proc_status(pid)
    assert int(st["PPid"]) != os.getpid(), "the daemon's parent is the test"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = f.read().split(b"\0")
    assert conf.encode() in cmd and b"-d" in cmd, cmd
    # Detached: a new session and stdio on /dev/null (as Mosquitto's fork + setsid + freopen).
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) == pid, f"daemon is not a session leader (session {fields[3]})"
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null", (fd, os.readlink(f"/proc/{pid}/fd/{fd}"))
    wait_serving(port)
    mqtt_ok(port, client_id="daemon-probe")
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid, 5), "daemon still running 5 s after SIGTERM"
    assert refused(port, "127.0.0.1"), "port still open after the daemon stopped"
    # Mosquitto 2.0.11 removes its pid file when it stops.
    deadline = time.time() + 2
    while os.path.exists(pid_file) and time.time() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(pid_file), "pid file left behind after SIGTERM"


def test_daemon_relative_pid_file():
    """Mosquitto 2.0.11's -d does fork + setsid but no chdir: a relative pid_file is written in the
    directory the broker was started from (checked with mosquitto -d and `pid_file rel.pid`)."""
    d = tmpdir()
    run = os.path.join(d, "run")
    port = free_port()
    name = f"tern-proc-{os.getpid()}-{port}.pid"
    _stray.append("/" + name)  # where a daemon that does chdir("/") would put it
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 1\nlistener {port} 127.0.0.1\nallow_anonymous true\npid_file {name}\n"
                 f"log_dest file {os.path.join(run, 'tern.log')}\n")
    r = subprocess.run([TERN, "broker", "-c", conf, "-d"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL, cwd=run)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr!r}"
    expected = os.path.join(run, name)
    deadline = time.time() + 3
    while not read(expected).strip() and time.time() < deadline:
        time.sleep(0.02)
    pids = _pids_with_arg(conf)
    _pids.update(pids)
    try:
        cwd = ", ".join(f"{pid}: {os.readlink(f'/proc/{pid}/cwd')}" for pid in pids) or "none running"
        assert read(expected).strip(), (
            f"relative pid_file not written in the start directory {run}; daemon cwd: {cwd}; "
            f"/{name} exists: {os.path.exists('/' + name)}; log:\n{read(os.path.join(run, 'tern.log'))}")
        pid = int(read(expected).strip())
        assert pid in pids, f"pid file holds {pid}, daemons: {pids}"
        wait_serving(port)
        mqtt_ok(port, client_id="relpid-probe")
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in pids:
            wait_gone(pid, 5)


# ---- 2. pid_file without -d ----------------------------------------------------------------

def test_pid_file_foreground():
    d = tmpdir()
    port = free_port()
    pid_file = os.path.join(d, "run", "fg.pid")
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 1\nlistener {port} 127.0.0.1\nallow_anonymous true\npid_file {pid_file}\n")
    p, out = start(["-c", conf])
    wait_serving(port, proc=p, out=out)
    text = wait_file(pid_file)
    assert int(text.strip()) == p.pid, f"pid file holds {text!r}, broker pid is {p.pid}"
    mqtt_ok(port, client_id="pidfile-probe")
    assert stop(p) == 0
    assert not os.path.exists(pid_file), "pid file left behind after SIGTERM"


# ---- 3. user -------------------------------------------------------------------------------

def test_user_drops_privileges():
    if os.geteuid() != 0:
        raise Skip("not root")
    nobody = pwd.getpwnam("nobody")
    d = tmpdir()
    port = free_port()
    pid_file = os.path.join(d, "run", "user.pid")
    log_file = os.path.join(d, "run", "user.log")
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 2\nlistener {port} 127.0.0.1\nallow_anonymous true\nuser nobody\n"
                 f"pid_file {pid_file}\nlog_dest file {log_file}\nlog_type all\n")
    p, out = start(["-c", conf])
    wait_serving(port, proc=p, out=out)
    assert int(wait_file(pid_file).strip()) == p.pid
    # Every thread (the workers too), real, effective, saved and filesystem ids.
    deadline = time.time() + 5
    while True:
        bad = []
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                st = proc_status(f"{p.pid}/task/{tid}")
            except FileNotFoundError:
                continue  # a short-lived thread that ended between listing and reading
            uids = [int(x) for x in st["Uid"].split()]
            gids = [int(x) for x in st["Gid"].split()]
            if uids != [nobody.pw_uid] * 4 or gids != [nobody.pw_gid] * 4:
                bad.append((tid, st["Uid"], st["Gid"]))
        if not bad or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not bad, f"threads not running as nobody ({nobody.pw_uid}:{nobody.pw_gid}): {bad}"
    groups = proc_status(p.pid)["Groups"].split()
    assert "0" not in groups, f"supplementary group root kept: {groups}"
    pubsub_roundtrip(port, "127.0.0.1", port, "127.0.0.1", "user/t", "user")
    assert re.search(r"New client connected from 127\.0\.0\.1:\d+ as user-sub", read(log_file)), read(log_file)
    assert stop(p) == 0
    # The pid file's directory is writable by nobody, so it can be removed as in Mosquitto.
    assert not os.path.exists(pid_file), "pid file left behind after SIGTERM"


def test_user_unknown_refused():
    """Mosquitto 2.0.11 with `user no_such_user` (as root) exits 1 with 'Error: Unable to drop
    privileges to 'no_such_user' because this user does not exist.'; it falls back to nobody only
    for its default user `mosquitto`. Running as another account than the one configured is not
    acceptable."""
    if os.geteuid() != 0:
        raise Skip("not root")
    d = tmpdir()
    port = free_port()
    user = "tern_no_such_user"
    try:
        pwd.getpwnam(user)
        raise Skip(f"user {user} exists")
    except KeyError:
        pass
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 1\nlistener {port} 127.0.0.1\nallow_anonymous true\nuser {user}\n")
    p, out = start(["-c", conf])
    try:
        rc = p.wait(timeout=3)
    except subprocess.TimeoutExpired:
        st = proc_status(p.pid)
        stop(p)
        raise AssertionError(f"broker kept running (Uid {st['Uid']}) with an unknown user:\n{read(out)}")
    assert rc != 0
    assert user in read(out), read(out)


# ---- 4. include_dir ------------------------------------------------------------------------

def test_include_dir():
    d = tmpdir()
    inc = os.path.join(d, "conf.d")
    os.mkdir(inc)
    os.chmod(inc, 0o755)
    p1, p2, p3 = free_port(), free_port(), free_port()
    assert len({p1, p2, p3}) == 3
    # Alphabetical order: b.conf's allow_anonymous true comes after a.conf's false.
    write(os.path.join(inc, "a.conf"), f"listener {p2} 127.0.0.1\nallow_anonymous false\n")
    write(os.path.join(inc, "b.conf"), f"# second\nlistener {p3} 127.0.0.1\nallow_anonymous true\n")
    write(os.path.join(inc, "ignored.txt"), "this_key_does_not_exist 1\nlistener 1 nowhere\n")
    conf = write(os.path.join(d, "tern.conf"), f"workers 1\nlistener {p1} 127.0.0.1\ninclude_dir {inc}\n")
    p, out = start(["-c", conf])
    wait_serving(p1, proc=p, out=out)
    wait_serving(p2, proc=p, out=out)
    wait_serving(p3, proc=p, out=out)
    for port in (p1, p2, p3):
        mqtt_ok(port, client_id=f"inc-{port}")  # anonymous allowed by b.conf
    pubsub_roundtrip(p2, "127.0.0.1", p3, "127.0.0.1", "inc/t", "inc")
    assert stop(p) == 0


def test_include_dir_unknown_key():
    d = tmpdir()
    inc = os.path.join(d, "conf.d")
    os.mkdir(inc)
    os.chmod(inc, 0o755)
    port = free_port()
    write(os.path.join(inc, "a.conf"), "allow_anonymous true\n")
    bad = write(os.path.join(inc, "b.conf"), "# comment\nsys_interval 5\nnot_a_mosquitto_key 7\n")
    conf = write(os.path.join(d, "tern.conf"), f"listener {port} 127.0.0.1\ninclude_dir {inc}\n")
    p, out = start(["-c", conf])
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop(p)
        raise AssertionError("broker started despite an unknown key in an included file")
    text = read(out)
    assert rc != 0, text
    assert f"{bad}:3" in text and "not_a_mosquitto_key" in text, text
    assert refused(port, "127.0.0.1")


# ---- 5. several listeners ------------------------------------------------------------------

def test_ipv4_and_ipv6_listeners():
    if not have_ipv6():
        raise Skip("no IPv6 loopback")
    d = tmpdir()
    a = free_port(v4=True, v6=True)
    b = free_port(v4=True, v6=True)
    assert a != b
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 2\nallow_anonymous true\n"
                 f"listener {a} 127.0.0.1\n"
                 f"listener {b} ::1\nsocket_domain ipv6\n")
    p, out = start(["-c", conf, "-v"])
    wait_serving(a, "127.0.0.1", proc=p, out=out)
    wait_serving(b, "::1", proc=p, out=out)
    assert f"Opening ipv4 listen socket on port {a}." in read(out), read(out)
    assert f"Opening ipv6 listen socket on port {b}." in read(out), read(out)
    # Each listener is bound to its own address only.
    assert refused(a, "::1"), f"port {a} also open on ::1"
    assert refused(b, "127.0.0.1"), f"port {b} also open on 127.0.0.1"
    mqtt_ok(a, "127.0.0.1", "l4")
    mqtt_ok(b, "::1", "l6", version=5)
    pubsub_roundtrip(a, "127.0.0.1", b, "::1", "cross/v4-to-v6", "x46")
    pubsub_roundtrip(b, "::1", a, "127.0.0.1", "cross/v6-to-v4", "x64")
    assert stop(p) == 0


# ---- 6. graceful stop ----------------------------------------------------------------------

def _graceful_stop(sig):
    d = tmpdir()
    port = free_port()
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 2\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
    p, out = start(["-c", conf])
    wait_serving(port, proc=p, out=out)
    v5 = Client(port)
    v3 = Client(port)
    try:
        got = v5.connect(f"stop5-{sig}", version=5)
        assert got and got[0] == 0x20 and got[3] == 0, got
        assert v3.connect(f"stop3-{sig}") == connack()
        time.sleep(0.2)
        t0 = time.time()
        p.send_signal(sig)
        pk5 = v5.expect_closed(timeout=5)
        assert len(pk5) == 1, f"5.0 client got {[x.hex() for x in pk5]} before close"
        disc = pk5[0]
        assert disc[0] == 0xE0 and disc[1] >= 1 and disc[2] == 0x8B, f"not DISCONNECT 0x8B: {disc.hex()}"
        pk3 = v3.expect_closed(timeout=5)
        assert pk3 == [], f"3.1.1 client got {[x.hex() for x in pk3]} before close"
        rc = p.wait(timeout=5)
        elapsed = time.time() - t0
        assert rc == 0, f"exit code {rc}:\n{read(out)}"
        assert elapsed < 4, f"took {elapsed:.1f} s to stop"
        assert refused(port, "127.0.0.1")
    finally:
        v5.close()
        v3.close()


def test_sigterm_graceful_stop():
    _graceful_stop(signal.SIGTERM)


def test_sigint_graceful_stop():
    _graceful_stop(signal.SIGINT)


def test_sigterm_will_like_mosquitto():
    """Mosquitto 2.0.11 on SIGTERM publishes the will of every client still connected before it
    closes the connections (src/mosquitto.c: context__send_will for each context after the main
    loop): a subscriber connected to the same broker receives it, then the connection closes.
    Checked with /usr/sbin/mosquitto 2.0.11: a 3.1.1 subscriber of will/t received
    PUBLISH will/t 'gone' then EOF, every run. MQTT [MQTT-3.1.2-8]: the will is published when the
    network connection closes without a DISCONNECT from the client."""
    d = tmpdir()
    port = free_port()
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 2\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
    p, out = start(["-c", conf])
    wait_serving(port, proc=p, out=out)
    sub = Client(port)
    w = Client(port)
    try:
        assert sub.connect("will-sub") == connack()
        sub.send(subscribe(1, [("will/t", 0)]))
        assert sub.recv() == bytes([0x90, 0x03, 0x00, 0x01, 0x00])
        assert w.connect("will-holder", will=("will/t", b"gone", 0, False)) == connack()
        time.sleep(0.2)
        assert stop(p) == 0
        got = sub.expect_closed(timeout=5)
        assert publish("will/t", "gone") in got, (
            f"subscriber got {[x.hex() for x in got]} before close; Mosquitto 2.0.11 delivers "
            f"the will {publish('will/t', 'gone').hex()}")
    finally:
        sub.close()
        w.close()


# ---- 7. -p without a configuration ---------------------------------------------------------

def _non_loopback_ipv4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent
        addr = s.getsockname()[0]
        return None if addr.startswith("127.") or addr == "0.0.0.0" else addr
    except OSError:
        return None
    finally:
        s.close()


def test_dash_p_without_config():
    v6 = have_ipv6()
    port = free_port(v4=True, v6=v6)
    p, out = start(["-p", str(port)])
    wait_serving(port, "127.0.0.1", proc=p, out=out)
    mqtt_ok(port, "127.0.0.1", "dashp4")  # anonymous allowed in local only mode
    if v6:
        wait_serving(port, "::1", proc=p, out=out)
        mqtt_ok(port, "::1", "dashp6", version=5)
    other = _non_loopback_ipv4()
    if other:
        assert refused(port, other), f"port {port} reachable on {other}: not loopback only"
    text = read(out)
    assert "Starting in local only mode" in text, text
    assert stop(p) == 0


# ---- 8. log_dest file ----------------------------------------------------------------------

def test_log_dest_file():
    d = tmpdir()
    port = free_port()
    log_file = os.path.join(d, "run", "broker.log")
    conf = write(os.path.join(d, "tern.conf"),
                 f"workers 1\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                 f"log_dest file {log_file}\nlog_type all\n")
    p, out = start(["-c", conf])
    wait_serving(port, proc=p, out=out)
    c = Client(port)
    try:
        local_port = c.sock.getsockname()[1]
        assert c.connect("logcheck", keepalive=60) == connack()
        c.send(subscribe(1, [("log/t", 0)]))
        c.recv()
        c.send(DISCONNECT)
        c.expect_closed()
    finally:
        c.close()
    deadline = time.time() + 3
    pat = (rf"(?m)^(\d+): New client connected from 127\.0\.0\.1:{local_port} as logcheck "
           r"\(p2, c1, k60\)\.$")
    while time.time() < deadline and not (re.search(pat, read(log_file))
                                          and "Client logcheck disconnected." in read(log_file)):
        time.sleep(0.02)
    text = read(log_file)
    m = re.search(pat, text)
    assert m, f"no connect line in the log file:\n{text}"
    assert abs(int(m.group(1)) - time.time()) < 60, f"timestamp {m.group(1)} is not now"
    # log_type all: debug lines too.
    assert "Sending CONNACK to logcheck" in text, text
    assert "Received SUBSCRIBE from logcheck" in text, text
    assert re.search(r"(?m)^\d+: Client logcheck disconnected\.$", text), text
    # Every line has the timestamp prefix.
    for line in text.splitlines():
        assert re.match(r"^\d+: ", line) or line.startswith("\t"), f"line without timestamp: {line!r}"
    assert stop(p) == 0
    # log_dest file only: nothing on stderr/stdout.
    assert read(out) == "", f"output besides the log file: {read(out)!r}"


# ---- 9. configuration error ----------------------------------------------------------------

def test_config_error_unknown_key():
    d = tmpdir()
    port = free_port()
    conf = write(os.path.join(d, "tern.conf"), f"# comment\nlistener {port} 127.0.0.1\nfoo_bar 1\n")
    p, out = start(["-c", conf])
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop(p)
        raise AssertionError("broker started despite an unknown key")
    text = read(out)
    assert rc != 0, text
    assert conf in text and f"{conf}:3" in text and "foo_bar" in text, text
    assert refused(port, "127.0.0.1")


# ---- runner --------------------------------------------------------------------------------

TESTS = [
    test_daemon_mode,
    test_daemon_relative_pid_file,
    test_pid_file_foreground,
    test_user_drops_privileges,
    test_user_unknown_refused,
    test_include_dir,
    test_include_dir_unknown_key,
    test_ipv4_and_ipv6_listeners,
    test_sigterm_graceful_stop,
    test_sigint_graceful_stop,
    test_sigterm_will_like_mosquitto,
    test_dash_p_without_config,
    test_log_dest_file,
    test_config_error_unknown_key,
]


def main():
    """As ternlib.run_tests, plus SKIP lines counted neither as pass nor fail."""
    import traceback
    passed = failed = skipped = 0
    only = sys.argv[1:]
    t_start = time.time()
    try:
        for t in TESTS:
            if only and t.__name__ not in only:
                continue
            t0 = time.time()
            try:
                t()
                print(f"PASS {t.__name__} ({time.time() - t0:.1f} s)", flush=True)
                passed += 1
            except Skip as e:
                print(f"SKIP {t.__name__}: {e}", flush=True)
                skipped += 1
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                print(f"FAIL {t.__name__}: {e}", flush=True)
                traceback.print_exc()
                failed += 1
    finally:
        _cleanup()
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
          + f" ({time.time() - t_start:.1f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
