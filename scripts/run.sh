#!/usr/bin/env bash
# Quick start: install what is missing, build a release, run the broker on localhost:1883.
# Extra arguments go to `tern broker` (e.g. -v for the verbose packet log).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
exec build/release/tern broker "$@"
