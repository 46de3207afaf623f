#!/usr/bin/env bash
# The whole test suite: install what is missing, build (dev preset: warnings are errors), run unit,
# conformance and integration tests with ctest; then the router and the cross-worker hand-off under
# ThreadSanitizer; the unit, conformance, bad-input and crash tests under AddressSanitizer and
# UndefinedBehaviorSanitizer; and every fuzz target for 30 s (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh dev
ctest --preset dev -j2 "$@"

echo "=== ThreadSanitizer: router and cross-worker delivery"
scripts/build.sh tsan >/dev/null
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
build/tsan/tests/tern_unit_tests --gtest_filter='Router*' --gtest_brief=1
TERN_BIN=build/tsan/tern tests/integration/test_sys.py
TERN_BIN=build/tsan/tern tests/conformance/test_publish.py
TERN_BIN=build/tsan/tern tests/integration/test_persistence.py  # the store's threads and the workers

echo "=== AddressSanitizer + UndefinedBehaviorSanitizer: unit, conformance, bad input, crash"
scripts/asan-ubsan.sh

echo "=== fuzz: every target 30 s from its corpus"
scripts/fuzz.sh 30
