#!/usr/bin/env bash
# Fuzz smoke: builds the libFuzzer targets (fuzz preset, tests/fuzz/) and runs each for SECONDS
# (default 15) on a temporary copy of its seed corpus, so the tree is not modified. Exits non-zero
# if any target crashes (sanitizer report, failed check, leak, timeout or out of memory); the inputs
# that did are kept under build/fuzz/findings/. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
targets=(fuzz_decode fuzz_topic fuzz_config fuzz_server_connection fuzz_websocket fuzz_store_records)
scripts/install-deps.sh --fuzz
cmake --preset fuzz >/dev/null
# Only the fuzz targets: the broker and unit tests are not needed here.
cmake --build --preset fuzz --target tern_fuzz >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
findings=build/fuzz/findings
rm -rf "$findings"
failed=()
for t in "${targets[@]}"; do
  cp -r "tests/fuzz/corpus/$t" "$work/$t"
  mkdir -p "$work/$t.artifacts"
  status=ok
  build/fuzz/tests/fuzz/"$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$t.artifacts/" "$work/$t" >"$work/$t.log" 2>&1 || status=FAILED
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$t.log")
  corpus=$(find "$work/$t" -type f | wc -l)
  echo "$t: $status, ${execs:-?} executions in ${secs} s, corpus $corpus inputs"
  if [ "$status" != ok ]; then
    failed+=("$t")
    mkdir -p "$findings"
    for f in "$work/$t.artifacts/"*; do
      if [ -e "$f" ]; then cp "$f" "$findings/$t-$(basename "$f")"; fi
    done
    cp "$work/$t.log" "$findings/$t.log"
    grep -E -B2 -A40 '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer' "$work/$t.log" | head -60 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} crashed; reproducers and logs in $findings/ (run the target with the file as its argument)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
