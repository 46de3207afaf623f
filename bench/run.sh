#!/usr/bin/env bash
# Builds a release and the load generator, then runs bench/run.py (Tern vs Debian's mosquitto).
# Usage: bench/run.sh [--smoke] [--rounds N] [--only p2p-qos0,...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench
# Debian's mosquitto package may have started a service on 1883; the benchmark never uses it.
systemctl stop mosquitto 2>/dev/null || true
scripts/build.sh release >/dev/null
lg="${TMPDIR:-/tmp}/tern-loadgen"
../shared/mqtt-loadgen/build.sh "$lg" >/dev/null
exec bench/run.py --tern build/release/tern --loadgen "$lg" "$@"
