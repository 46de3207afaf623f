#!/usr/bin/env bash
# Builds a release and runs bench/tools.py: tern pub -l, mosquitto_pub -l and the client library's
# async API end to end through Debian's mosquitto broker. Usage: bench/tools.sh [--lines N] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench
systemctl stop mosquitto 2>/dev/null || true
cmake --preset release >/dev/null
cmake --build --preset release --target tern bench_client_pub >/dev/null
exec bench/tools.py --tern build/release/tern --client-pub build/release/bench_client_pub "$@"
