#!/usr/bin/python3
"""The client library as a package: `cmake --install` into a temporary prefix, then the examples in
examples/cpp are built against it twice, with find_package(Tern) and with pkg-config, and run
against the real `tern broker` and Debian's `mosquitto` broker (both on free loopback ports)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import TERN, Broker, MosquittoBroker, run_tests  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.path.dirname(os.path.abspath(TERN))
WORK = tempfile.mkdtemp(prefix="tern-pkg-")
PREFIX = os.path.join(WORK, "prefix")


def sh(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def libdir():
    for d in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        if os.path.exists(os.path.join(PREFIX, d, "pkgconfig", "tern-client.pc")):
            return os.path.join(PREFIX, d)
    raise AssertionError("tern-client.pc not installed: " + sh(["find", PREFIX]))


def test_install_layout():
    sh(["cmake", "--install", BUILD, "--prefix", PREFIX])
    lib = libdir()
    for f in ("libtern-client.so", "libtern-client.so.0", "cmake/Tern/TernConfig.cmake",
              "cmake/Tern/TernConfigVersion.cmake", "cmake/Tern/TernTargets.cmake"):
        assert os.path.exists(os.path.join(lib, f)), f
    for h in ("client.hpp", "mqtt.hpp"):
        assert os.path.exists(os.path.join(PREFIX, "include/tern", h)), h
    assert os.path.exists(os.path.join(PREFIX, "bin/tern"))
    soname = sh(["readelf", "-d", os.path.join(lib, "libtern-client.so")])
    assert "Library soname: [libtern-client.so.0]" in soname, soname
    # Only the public API is exported: no function of the codec or the protocol core (weak template
    # instantiations from Boost's headers may still name them in template arguments).
    syms = [line for line in sh(["nm", "-DC", "--defined-only", os.path.join(lib, "libtern-client.so")]).splitlines()
            if " T " in line]
    assert any("tern::BlockingClient::connect" in x for x in syms) and any("tern::AsyncClient::publish" in x for x in syms)
    internal = [x for x in syms if " tern::codec::" in x or " tern::protocol::" in x]
    assert not internal, internal[:5]


def build_cmake():
    out = os.path.join(WORK, "cmake-build")
    sh(["cmake", "-S", os.path.join(ROOT, "examples/cpp"), "-B", out, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={PREFIX}"])
    sh(["cmake", "--build", out])
    return out


def build_pkgconfig():
    out = os.path.join(WORK, "pkg-build")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir(), "pkgconfig"))
    flags = sh(["pkg-config", "--cflags", "--libs", "tern-client"], env=env).split()
    exe = os.path.join(out, "blocking_pubsub")
    sh(["g++", "-std=c++20", os.path.join(ROOT, "examples/cpp/blocking_pubsub.cpp"), "-o", exe] + flags)
    return exe


def run_examples(port, cmake_out, pkg_exe):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir())
    for exe in (os.path.join(cmake_out, "blocking_pubsub"), pkg_exe):
        out = sh([exe, "127.0.0.1", str(port)], env=env)
        assert out == "examples/greeting hello (QoS 1, 1 user properties)\n", out
    out = sh([os.path.join(cmake_out, "async_publisher"), "127.0.0.1", str(port), "20000"], env=env)
    assert out == "20000 messages acknowledged\n", out


def test_examples_against_both_brokers():
    cmake_out = build_cmake()
    pkg_exe = build_pkgconfig()
    with Broker() as b:
        run_examples(b.port, cmake_out, pkg_exe)
    with MosquittoBroker() as m:
        run_examples(m.port, cmake_out, pkg_exe)


if __name__ == "__main__":
    try:
        run_tests([test_install_layout, test_examples_against_both_brokers])
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
