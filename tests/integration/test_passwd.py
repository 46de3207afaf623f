#!/usr/bin/python3
"""`tern passwd`: mosquitto_passwd's options (-c, -b, -D, -U, -H, -I), its file format (checked here
with hashlib, independently of Tern's code), its messages and exit statuses, prompting on stdin and on a
terminal without echo, safe rewrites that keep other lines, mode and owner, and files that Debian's
mosquitto 2.0.11 broker accepts."""
import base64
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import *  # noqa: E402,F403

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
PBKDF2_LINE = re.compile(r"^([^:]+):\$7\$(\d+)\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)$")
SHA512_LINE = re.compile(r"^([^:]+):\$6\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)$")


def passwd(*args, stdin=None):
    """Runs `tern passwd ARGS`; returns (exit status, stdout, stderr)."""
    r = subprocess.run([TERN, "passwd", *args], input=stdin, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def lines(path):
    with open(path) as f:
        return f.read().splitlines()


def entry(path, user):
    for line in lines(path):
        if line.startswith(user + ":"):
            return line
    return None


def verifies(line, password):
    """Checks a password file line against a password the way Mosquitto 2.0.11 does."""
    m = PBKDF2_LINE.match(line)
    if m:
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(m.group(3)), int(m.group(2)))
        return digest == base64.b64decode(m.group(4))
    m = SHA512_LINE.match(line)
    assert m, f"not a $7$ or $6$ entry: {line!r}"
    return hashlib.sha512(password.encode() + base64.b64decode(m.group(2))).digest() == base64.b64decode(m.group(3))


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="tern-passwd-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def test_create_add_update_delete():
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        assert passwd("-c", "-b", pw, "alice", "secret") == (0, "", "")
        assert passwd("-b", pw, "bob", "hunter2")[0] == 0
        assert passwd("-H", "sha512", "-b", pw, "carol", "legacy")[0] == 0
        assert passwd("-I", "1000", "-b", pw, "dave", "slow")[0] == 0
        assert passwd("-H", "sha512-pbkdf2", "-b", pw, "erin", "")[0] == 0  # batch mode allows it, as Mosquitto
        got = lines(pw)
        assert [line.split(":")[0] for line in got] == ["alice", "bob", "carol", "dave", "erin"], got
        assert PBKDF2_LINE.match(got[0]) and PBKDF2_LINE.match(got[0]).group(2) == "101", got[0]
        assert SHA512_LINE.match(got[2]), got[2]
        assert PBKDF2_LINE.match(got[3]).group(2) == "1000", got[3]
        assert verifies(got[0], "secret") and not verifies(got[0], "Secret")
        assert verifies(got[1], "hunter2")
        assert verifies(got[2], "legacy") and not verifies(got[2], "legacy ")
        assert verifies(got[3], "slow")
        assert verifies(got[4], "")
        # Update in place: the line keeps its position, with a new salt.
        old_bob = got[1]
        assert passwd("-b", pw, "bob", "changed")[0] == 0
        got = lines(pw)
        assert [line.split(":")[0] for line in got] == ["alice", "bob", "carol", "dave", "erin"], got
        assert got[1] != old_bob and verifies(got[1], "changed")
        # Delete.
        assert passwd("-D", pw, "carol")[0] == 0
        assert [line.split(":")[0] for line in lines(pw)] == ["alice", "bob", "dave", "erin"]
        # -c overwrites an existing file.
        assert passwd("-c", "-b", pw, "zed", "z")[0] == 0
        assert [line.split(":")[0] for line in lines(pw)] == ["zed"]
        # No temporary file is left behind.
        assert os.listdir(d) == ["pw"], os.listdir(d)


def test_errors_and_usage():
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        missing = os.path.join(d, "missing")
        assert passwd("-c", "-b", pw, "alice", "secret")[0] == 0
        before = open(pw).read()
        no_file = f"Error: Unable to open password file {missing}. No such file or directory."
        cases = [
            (("-b", missing, "u", "p"), 1, no_file),
            (("-D", missing, "u"), 1, no_file),
            (("-c", "-b", os.path.join(d, "no/dir/pw"), "u", "p"), 1, "Error: Unable to open file "),
            (("-D", pw, "nobody"), 1, "Warning: User nobody not found in password file."),
            (("-c", "-D", pw, "u"), 1, "Error: -c and -D cannot be used together."),
            (("-H", "md5", "-b", pw, "u", "p"), 1, "Error: Unknown hash type 'md5'"),
            (("-H",), 1, "Error: -H argument given but not enough other arguments."),
            (("-I",), 1, "Error: -I argument given but not enough other arguments."),
            (("-I", "0", "-b", pw, "u", "p"), 1, "Error: Number of iterations must be > 0."),
            (("-I", "x", "-b", pw, "u", "p"), 1, "Error: Number of iterations must be > 0."),
            (("-b", pw, "a:b", "p"), 1, "Error: Username must not contain the ':' character."),
            (("-b", pw, "", "p"), 1, "Error: Username must not be empty."),
            (("-b", pw, "#x", "p"), 1, "Error: Username must not start with '#'"),
            (("-b", pw, "a\nb", "p"), 1, "Error: Username must not contain control characters."),
            (("-b", pw, "x" * 65536, "p"), 1, "Error: Username must be less than 65536 characters long."),
            (("-b", pw, "u", "p" * 65536), 1, "Error: Password must be less than 65536 characters long."),
            (("-U",), 1, "Error: -U argument given but password file missing."),
            (("-U", "-b", pw), 1, "Error: -U cannot be used with -b, -c or -D."),
            (("-c", pw), 1, "Error: -c argument given but password file or username missing."),
            (("-x", pw, "u"), 1, "Error: Unknown option '-x'."),
            ((), 1, "Usage: tern passwd"),
            (("-b", pw, "u"), 1, "Usage: tern passwd"),
            ((pw, "u", "extra"), 1, "Usage: tern passwd"),
        ]
        for args, rc, message in cases:
            got_rc, out, err = passwd(*args)
            assert got_rc == rc, (args, got_rc, out, err)
            assert message in err, (args, err)
        assert open(pw).read() == before, "a failed command changed the file"
        assert sorted(os.listdir(d)) == ["pw"], os.listdir(d)


def test_help():
    rc, out, err = passwd("--help")
    assert rc == 0 and out.startswith("Usage: tern passwd") and " -U " in out and " -I " in out, (rc, out, err)
    r = subprocess.run([TERN, "help", "passwd"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == out, r
    r = subprocess.run([TERN, "help"], capture_output=True, text=True, timeout=30)
    assert re.search(r"^  passwd ", r.stdout, re.M), r.stdout


def test_password_from_stdin():
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        # Not a terminal: two lines from stdin, the prompts on stdout (as mosquitto_passwd).
        rc, out, err = passwd("-c", pw, "alice", stdin="pässwörd 1\npässwörd 1\n")
        assert rc == 0, (rc, out, err)
        assert out == "Password: \nReenter password: \n", repr(out)
        assert verifies(entry(pw, "alice"), "pässwörd 1")
        rc, out, err = passwd(pw, "bob", stdin="one\ntwo\n")
        assert rc == 2 and "Error: Passwords do not match." in err, (rc, err)
        rc, out, err = passwd(pw, "bob", stdin="\n\n")
        assert rc == 1 and "Error: Empty password." in err, (rc, err)
        rc, out, err = passwd(pw, "bob", stdin="")
        assert rc == 1 and "Error: Empty password." in err, (rc, err)
        rc, out, err = passwd(pw, "bob", stdin="only once\n")
        assert rc == 2 and "Error: Passwords do not match." in err, (rc, err)
        assert entry(pw, "bob") is None
        # CRLF input: the '\r' is not part of the password.
        assert passwd(pw, "carol", stdin="crlf\r\ncrlf\r\n")[0] == 0
        assert verifies(entry(pw, "carol"), "crlf")


def wait_echo(fd, on, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if bool(termios.tcgetattr(fd)[3] & termios.ECHO) == on:
            return
        time.sleep(0.01)
    raise AssertionError(f"terminal echo never turned {'on' if on else 'off'}")


def read_until(proc, text, timeout=10):
    out = b""
    deadline = time.time() + timeout
    while text.encode() not in out:
        r, _, _ = select.select([proc.stdout], [], [], max(0, deadline - time.time()))
        if not r:
            raise AssertionError(f"no {text!r} in {out!r}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"EOF before {text!r}: {out!r}")
        out += chunk
    return out


def test_password_from_a_terminal_is_not_echoed():
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        master, slave = os.openpty()
        proc = subprocess.Popen([TERN, "passwd", "-c", pw, "ttyuser"], stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            # Type each line only once echo is off: turning it off flushes what was typed ahead.
            read_until(proc, "Password: ")
            wait_echo(slave, False)
            os.write(master, b"s3cret-tty\n")
            read_until(proc, "Reenter password: ")  # echo was restored before this prompt
            wait_echo(slave, False)
            os.write(master, b"s3cret-tty\n")
            assert proc.wait(timeout=30) == 0, proc.stderr.read()
            wait_echo(slave, True)  # and restored at the end
            echoed = b""
            while select.select([master], [], [], 0.2)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                echoed += chunk
            assert b"s3cret" not in echoed, f"the password was echoed: {echoed!r}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)
        assert verifies(entry(pw, "ttyuser"), "s3cret-tty")


def test_convert_plain_text_file():
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("# plain passwords\nalice:secret\n\n  bob : two words  \ncarol:pa:ss\n")
        assert passwd("-b", pw, "erin", "hashed")[0] == 0
        already = entry(pw, "erin")
        rc, out, err = passwd("-U", pw)
        assert rc == 0, (rc, out, err)
        assert "Warning: " in err and "'erin' is already a hash" in err, err
        got = lines(pw)
        assert got[0] == "# plain passwords" and got[2] == "", got
        assert verifies(got[1], "secret") and got[1].startswith("alice:")
        assert got[3].startswith("bob:") and verifies(got[3], "two words")  # blanks around are trimmed
        # The whole rest of the line is the password (mosquitto_passwd would stop at the second ':').
        assert got[4].startswith("carol:") and verifies(got[4], "pa:ss")
        assert got[5] == already, "an existing hash was hashed again"
        # -U with -H sha512.
        with open(pw, "w") as f:
            f.write("dave:legacy\n")
        assert passwd("-H", "sha512", "-U", pw)[0] == 0
        assert SHA512_LINE.match(lines(pw)[0]) and verifies(lines(pw)[0], "legacy")
        # A line without ':' stops the conversion and leaves the file as it was.
        with open(pw, "w") as f:
            f.write("a:b\nbroken\n")
        rc, out, err = passwd("-U", pw)
        assert rc == 1 and f"{pw}:2: no ':'" in err and "file not changed" in err, (rc, err)
        assert open(pw).read() == "a:b\nbroken\n"


def test_keeps_other_lines_of_a_mosquitto_passwd_file():
    if not os.path.exists(MOSQUITTO_PASSWD):
        print("skipped: no mosquitto_passwd")
        return
    with TempDir() as d:
        pw = os.path.join(d, "pw")
        subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", pw, "m1", "one"], check=True, timeout=30)
        subprocess.run([MOSQUITTO_PASSWD, "-b", pw, "m2", "two"], check=True, timeout=30)
        subprocess.run([MOSQUITTO_PASSWD, "-H", "sha512", "-b", pw, "m3", "three"], check=True, timeout=30)
        subprocess.run([MOSQUITTO_PASSWD, "-b", pw, "m4", "four"], check=True, timeout=30)
        original = lines(pw)
        assert verifies(original[0], "one") and verifies(original[2], "three")  # the format is as documented
        # Comments and blank lines, which mosquitto_passwd itself would drop with every line after them.
        with open(pw, "a") as f:
            f.write("\n# added by hand\n")
        os.chmod(pw, 0o640)
        if os.geteuid() == 0:
            os.chown(pw, 65534, 65534)  # nobody: the broker may read the file as another user
        st = os.stat(pw)
        assert passwd("-b", pw, "m2", "new two")[0] == 0
        got = lines(pw)
        assert got[0] == original[0] and got[2:4] == original[2:4], (original, got)
        assert got[1] != original[1] and verifies(got[1], "new two")
        assert got[4:] == ["", "# added by hand"], got
        assert passwd("-b", pw, "t5", "five")[0] == 0
        assert lines(pw)[:6] == got[:4] + ["", "# added by hand"] and lines(pw)[6].startswith("t5:")
        assert passwd("-D", pw, "m1")[0] == 0
        assert lines(pw)[0] == got[1]
        st2 = os.stat(pw)
        assert stat.S_IMODE(st2.st_mode) == 0o640, oct(st2.st_mode)
        assert (st2.st_uid, st2.st_gid) == (st.st_uid, st.st_gid), (st, st2)
        # And mosquitto_passwd reads what Tern wrote (it stops at comments, so without them).
        entries = [line for line in lines(pw) if line and not line.startswith("#")]
        with open(pw, "w") as f:
            f.write("\n".join(entries) + "\n")
        r = subprocess.run([MOSQUITTO_PASSWD, "-b", pw, "m4", "four2"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", r
        assert [line.split(":")[0] for line in lines(pw)] == ["m2", "m3", "m4", "t5"], lines(pw)


def test_symbolic_link_is_followed():
    with TempDir() as d:
        target = os.path.join(d, "real")
        link = os.path.join(d, "link")
        assert passwd("-c", "-b", target, "a", "1")[0] == 0
        os.symlink("real", link)
        assert passwd("-b", link, "b", "2")[0] == 0
        assert os.path.islink(link), "the link was replaced by a file"
        assert [line.split(":")[0] for line in lines(target)] == ["a", "b"]


def mosquitto_pub(port, user, password):
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-t", "t",
                        "-m", "x", "-q", "1"], capture_output=True, text=True, timeout=20)
    return r.returncode


def test_mosquitto_broker_accepts_the_file():
    if not os.path.exists(MOSQUITTO) or not shutil.which("mosquitto_pub"):
        print("skipped: no mosquitto broker or mosquitto_pub")
        return
    with TempDir() as d:
        # Started as root, mosquitto reads the file as user mosquitto.
        os.chmod(d, 0o755)
        pw = os.path.join(d, "pw")
        assert passwd("-c", "-b", pw, "alice", "s3cret")[0] == 0
        assert passwd("-H", "sha512", "-b", pw, "carol", "legacy pw")[0] == 0
        assert passwd("-I", "500", "-b", pw, "dave", "päss")[0] == 0
        with open(pw) as f:
            text = f.read()
        with open(pw, "w") as f:
            f.write("# comment\n\n" + text)  # Tern's comments are Mosquitto's too
        assert passwd("-b", pw, "bob", "hunter2")[0] == 0
        os.chmod(pw, 0o644)
        m = MosquittoBroker(f"allow_anonymous false\npassword_file {pw}\n")
        try:
            log = m.log
            assert mosquitto_pub(m.port, "alice", "s3cret") == 0, log()
            assert mosquitto_pub(m.port, "alice", "wrong") != 0, log()
            assert mosquitto_pub(m.port, "bob", "hunter2") == 0, log()
            assert mosquitto_pub(m.port, "carol", "legacy pw") == 0, log()
            assert mosquitto_pub(m.port, "carol", "legacy") != 0, log()
            assert mosquitto_pub(m.port, "dave", "päss") == 0, log()
            assert mosquitto_pub(m.port, "nobody", "s3cret") != 0, log()
            assert "Error" not in log() and "Warning" not in log(), log()
        finally:
            m.stop()
            shutil.rmtree(m.dir, ignore_errors=True)


if __name__ == "__main__":
    run_tests([
        test_create_add_update_delete,
        test_errors_and_usage,
        test_help,
        test_password_from_stdin,
        test_password_from_a_terminal_is_not_echoed,
        test_convert_plain_text_file,
        test_keeps_other_lines_of_a_mosquitto_passwd_file,
        test_symbolic_link_is_followed,
        test_mosquitto_broker_accepts_the_file,
    ])
