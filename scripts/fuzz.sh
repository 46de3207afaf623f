#!/usr/bin/env bash
# Fuzzing (docs/testing.md): builds the libFuzzer targets (fuzz preset, tests/fuzz/) and runs each
# for SECONDS (default 30) on a temporary copy of its seed corpus tests/fuzz/corpus/TARGET/, so the
# tree is not modified. Exits non-zero if any target crashes (sanitizer report, failed check, leak,
# timeout or out of memory) and prints the path of each crashing input, kept with the log under
# build/fuzz/findings/.
#   scripts/fuzz.sh                       every target, 30 s each
#   scripts/fuzz.sh 3600 fuzz_acl         one target for an hour (several targets may be named)
#   scripts/fuzz.sh --list                the targets
# FUZZ_JOBS=N runs N targets at a time (default: the number of cores); FUZZ_KEEP_CORPUS=DIR keeps
# each target's grown corpus in DIR/TARGET and its log in DIR/TARGET.log (to minimise into the seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
all=(fuzz_decode fuzz_topic fuzz_config fuzz_server_connection fuzz_websocket fuzz_store_records
     fuzz_password_file fuzz_acl fuzz_scram)
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${all[@]}"
  exit 0
fi
secs="${1:-30}"
case "$secs" in
  ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] | --list" >&2; exit 2 ;;
esac
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${all[@]}"); fi
for t in "${targets[@]}"; do
  if [[ ! " ${all[*]} " =~ " $t " ]]; then
    echo "fuzz: unknown target '$t' (scripts/fuzz.sh --list)" >&2
    exit 2
  fi
done

scripts/install-deps.sh --fuzz
findings="$PWD/build/fuzz/findings"
mkdir -p build/fuzz
# Only the fuzz targets: the broker and unit tests are not needed here.
if ! { cmake --preset fuzz && cmake --build --preset fuzz --target tern_fuzz; } >build/fuzz/fuzz-build.log 2>&1; then
  tail -50 build/fuzz/fuzz-build.log
  echo "fuzz: build failed (build/fuzz/fuzz-build.log)"
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$findings"

# One target: fuzz from a copy of the seeds, then record the outcome in $work/$t.status.
run_target() {
  local t="$1" status=ok start
  cp -r "tests/fuzz/corpus/$t" "$work/$t"
  mkdir -p "$work/$t.artifacts"
  start=$(date +%s)
  build/fuzz/tests/fuzz/"$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$t.artifacts/" "$work/$t" >"$work/$t.log" 2>&1 || status=FAILED
  echo "$status $(($(date +%s) - start))" >"$work/$t.status"
}

# Targets run side by side, FUZZ_JOBS at a time (default: one per core); each still gets SECONDS.
jobs="${FUZZ_JOBS:-$(nproc)}"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait

failed=()
for t in "${targets[@]}"; do
  read -r status took <"$work/$t.status" || { status=FAILED; took="?"; }
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$t.log")
  corpus=$(find "$work/$t" -type f | wc -l)
  seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
  rate="?"
  if [[ "$took" =~ ^[1-9][0-9]*$ && "${execs:-}" =~ ^[0-9]+$ ]]; then rate=$((execs / took)); fi
  # libFuzzer's last status line: cov = covered edges, ft = features (edges, counters, comparisons).
  cov=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/cov \1, ft \2/p')
  echo "$t: $status, ${execs:-?} executions in $took s (${rate}/s), ${cov:-cov ?}, corpus $seeds -> $corpus inputs"
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp "$work/$t"/* "$FUZZ_KEEP_CORPUS/$t/"
    cp "$work/$t.log" "$FUZZ_KEEP_CORPUS/$t.log"
  fi
  if [ "$status" != ok ]; then
    failed+=("$t")
    mkdir -p "$findings"
    cp "$work/$t.log" "$findings/$t.log"
    grep -E -B2 -A40 '^==[0-9]+==ERROR|runtime error|check failed|ERROR: libFuzzer' "$work/$t.log" | head -60 || true
    found=0
    for f in "$work/$t.artifacts/"*; do
      if [ -e "$f" ]; then
        cp "$f" "$findings/$t-$(basename "$f")"
        echo "$t: crashing input $findings/$t-$(basename "$f") (replay: build/fuzz/tests/fuzz/$t FILE)"
        found=1
      fi
    done
    if [ $found -eq 0 ]; then echo "$t: no input saved; log $findings/$t.log"; fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} crashed; reproducers and logs in $findings/"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs} s each ($jobs at a time), no crash"
