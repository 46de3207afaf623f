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
from ternlib import TERN, Broker, MosquittoBroker, TestCerts, free_port  # noqa: E402

TESTS = os.path.join(os.path.dirname(os.path.abspath(TERN)), "tests", "tern_client_tests")
PSK_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def main():
    d = tempfile.mkdtemp(prefix="tern-client-lib-")
    os.chmod(d, 0o777)
    try:
        # For localhost only: connecting to 127.0.0.1 must fail the host name check.
        certs = TestCerts(d)
        with open(os.path.join(d, "psk.txt"), "w") as f:
            f.write(f"tern:{PSK_KEY}\n")
        os.chmod(os.path.join(d, "psk.txt"), 0o644)
        tls_port, psk_port = free_port(), free_port()
        sock = os.path.join(d, "mosquitto.sock")
        conf = (f"listener {tls_port} 127.0.0.1\ncafile {certs.ca}\ncertfile {certs.server}\nkeyfile {certs.server_key}\n"
                f"listener {psk_port} 127.0.0.1\npsk_hint tern-test\npsk_file {d}/psk.txt\n"
                f"listener 0 {sock}\n")
        with Broker() as tern, MosquittoBroker(conf) as mosq:
            env = dict(os.environ, TERN_PORT=str(tern.port), MOSQ_PORT=str(mosq.port), MOSQ_TLS_PORT=str(tls_port),
                       TLS_CA=certs.ca, TLS_OTHER_CA=certs.other, MOSQ_PSK_PORT=str(psk_port),
                       PSK_KEY=PSK_KEY, MOSQ_UNIX=sock)
            r = subprocess.run([TESTS, *sys.argv[1:]], env=env, timeout=300)
            if r.returncode != 0:
                print(mosq.log()[-3000:])
            return r.returncode
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
