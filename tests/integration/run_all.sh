#!/usr/bin/env bash
# Runs every integration and conformance test script against the given tern binary.
set -uo pipefail
tern="$1"
here="$(cd "$(dirname "$0")" && pwd)"
fail=0
for t in "$here"/../conformance/test_*.py "$here"/test_*.py "$here"/test_*.sh; do
  [ -e "$t" ] || continue
  echo "=== $(basename "$t")"
  if ! TERN_BIN="$tern" timeout 600 "$t"; then
    echo "FAILED: $(basename "$t")"
    fail=1
  fi
done
exit $fail
