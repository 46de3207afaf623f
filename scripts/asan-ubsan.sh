#!/usr/bin/env bash
# The tests under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer (docs/testing.md):
# builds the asan-ubsan preset (tern and the unit tests only) and runs against it the unit tests, the
# conformance tests, the bad-input table (Tern only) and the crash test (fewer kills). Any sanitizer
# report fails the step: the processes write their reports to files (log_path), which are printed and
# counted after every test script, so a report from a broker that a test stopped or killed is not
# lost in its log. The preset builds with clang: its one sanitizer runtime writes UBSan reports to
# log_path too, where GCC's separate libubsan prints them to stderr whatever the options say.
# Usage: scripts/asan-ubsan.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-build" ]; then
  scripts/install-deps.sh --fuzz  # clang and its sanitizer runtimes
  cmake --preset asan-ubsan >/dev/null
  cmake --build --preset asan-ubsan --target tern tern_unit_tests
fi
bin=build/asan-ubsan/tern
unit=build/asan-ubsan/tests/tern_unit_tests

# Reports go to $reports/report.PID. The broker drops root privileges after binding (to `mosquitto`
# or `nobody`), so the directory must be writable by everyone.
reports="$(mktemp -d /tmp/tern-asan-ubsan.XXXXXX)"
chmod 1777 "$reports"
trap 'rm -rf "$reports"' EXIT
supp="$PWD/tests/sanitizers"
# halt_on_error/abort_on_error=0: the first report ends the process with exit code 1, without a core
# dump. detect_leaks: LeakSanitizer runs when a process exits normally (a broker stopped with SIGTERM,
# the unit tests); a broker killed with SIGKILL is never checked for leaks. Suppressions are for
# third-party code only (tests/sanitizers/*.supp say why).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1"
ASAN_OPTIONS+=":strict_init_order=1:log_path=$reports/report"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=0:print_stacktrace=1:report_error_type=1"
UBSAN_OPTIONS+=":log_path=$reports/report:suppressions=$supp/ubsan.supp"

failed=()
# Prints and removes the reports written since the last call; returns 1 when there were any.
check_reports() {
  local name="$1" found=0
  for f in "$reports"/report.*; do
    [ -e "$f" ] || continue
    found=1
    echo "--- sanitizer report of $name: $(basename "$f")"
    cat "$f"
    rm -f "$f"
  done
  return $found
}
# Runs one step with a time bound; a failure or a report marks it failed and the run goes on.
step() {
  local name="$1" limit="$2" t0 rc=0
  shift 2
  echo "=== asan-ubsan: $name"
  t0=$(date +%s)
  timeout "$limit" "$@" || rc=$?
  if ! check_reports "$name" && [ "$rc" = 0 ]; then rc=1; fi
  echo "=== asan-ubsan: $name: $([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)") in $(($(date +%s) - t0)) s"
  if [ "$rc" != 0 ]; then failed+=("$name"); fi
}

step "unit tests" 900 "$unit" --gtest_brief=1
for t in tests/conformance/test_*.py; do
  step "$(basename "$t")" 600 env TERN_BIN="$bin" "$t"
done
# The resident-memory bound of each group (2 MiB) cannot hold with ASan's quarantine of freed memory;
# 16 MiB still catches a gross leak, and LeakSanitizer checks the broker at its exit.
step "test_bad_input.py --tern-only" 900 \
  env TERN_BIN="$bin" TERN_BAD_INPUT_RSS_BOUND=$((16 * 1024 * 1024)) tests/integration/test_bad_input.py --tern-only
# Half the kills of the default (20 + 6 in the one-worker run instead of 40 + 13): each restart of a
# sanitizer build costs more, and 26 random kills still land inside QoS 1 and QoS 2 flows with
# subscribers online and offline. The graceful restart at the end of each run is checked for leaks.
kills="${TERN_CRASH_KILLS:-20}"
step "test_crash.py (TERN_CRASH_KILLS=$kills)" 900 \
  env TERN_BIN="$bin" TERN_CRASH_KILLS="$kills" tests/integration/test_crash.py

if [ ${#failed[@]} -gt 0 ]; then
  printf 'asan-ubsan: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "asan-ubsan: every step passed without a sanitizer report"
