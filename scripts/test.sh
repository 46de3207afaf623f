#!/usr/bin/env bash
# The whole test suite: install what is missing, build (dev preset: warnings are errors), then run
# unit, conformance and integration tests with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh dev
ctest --preset dev -j2 "$@"
