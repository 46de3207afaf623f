#!/usr/bin/python3
"""The C++ client library against real brokers: starts the real `tern broker` and Debian's
mosquitto (plain, TLS with a certificate made here, TLS-PSK and a Unix socket listener), then runs
the GoogleTest binary tern_client_tests (tests/client/) with their addresses in the environment."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import TERN, Broker, MosquittoBroker, free_port  # noqa: E402

TESTS = os.path.join(os.path.dirname(os.path.abspath(TERN)), "tests", "tern_client_tests")
PSK_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d):
    """A CA, a server certificate for localhost signed by it, and an unrelated CA."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=Tern test {ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)  # mosquitto reads them as user mosquitto


def main():
    d = tempfile.mkdtemp(prefix="tern-client-lib-")
    os.chmod(d, 0o777)
    try:
        make_certs(d)
        with open(os.path.join(d, "psk.txt"), "w") as f:
            f.write(f"tern:{PSK_KEY}\n")
        os.chmod(os.path.join(d, "psk.txt"), 0o644)
        tls_port, psk_port = free_port(), free_port()
        sock = os.path.join(d, "mosquitto.sock")
        conf = (f"listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
                f"listener {psk_port} 127.0.0.1\npsk_hint tern-test\npsk_file {d}/psk.txt\n"
                f"listener 0 {sock}\n")
        with Broker() as tern, MosquittoBroker(conf) as mosq:
            env = dict(os.environ, TERN_PORT=str(tern.port), MOSQ_PORT=str(mosq.port), MOSQ_TLS_PORT=str(tls_port),
                       TLS_CA=f"{d}/ca.crt", TLS_OTHER_CA=f"{d}/other-ca.crt", MOSQ_PSK_PORT=str(psk_port),
                       PSK_KEY=PSK_KEY, MOSQ_UNIX=sock)
            r = subprocess.run([TESTS, *sys.argv[1:]], env=env, timeout=300)
            if r.returncode != 0:
                print(mosq.log()[-3000:])
            return r.returncode
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
