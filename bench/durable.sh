#!/usr/bin/env bash
# Builds a release and the load generator, installs strace if missing, then runs bench/durable.py:
# persistent sessions with Tern's store (sync, batched, off) and Debian's mosquitto, the strace
# cross-check of the syncs, the cost of one fdatasync, and the restart with queued messages.
# Usage: bench/durable.sh [--smoke] [--rounds N] [--only NAMES] [--no-restart] [--json PATH] ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --bench
if ! command -v strace >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace >/dev/null; }
fi
# Debian's mosquitto package may have started a service on 1883; the benchmark never uses it.
systemctl stop mosquitto 2>/dev/null || true
cmake --preset release >/dev/null
cmake --build --preset release --target tern >/dev/null
lg="${TMPDIR:-/tmp}/tern-loadgen"
../shared/mqtt-loadgen/build.sh "$lg" >/dev/null
exec bench/durable.py --tern build/release/tern --loadgen "$lg" "$@"
