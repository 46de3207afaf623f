#!/usr/bin/env bash
# Quick start: install what is missing, build a release, run the broker on localhost:1883.
# Extra arguments go to `tern broker` (e.g. -v for the verbose packet log).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
root="$(pwd)"
# As root the broker drops privileges to `mosquitto` (or `nobody`): its store (tern-store in the
# working directory, persistence_location's default) goes to /var/lib/tern, which that account can
# reach wherever this checkout is. A relative -c path is made absolute first.
args=()
prev=""
for a in "$@"; do
  if [ "$prev" = "-c" ] && [ -e "$a" ]; then args+=("$(realpath "$a")"); else args+=("$a"); fi
  prev="$a"
done
if [ "$(id -u)" = 0 ]; then
  mkdir -p /var/lib/tern
  cd /var/lib/tern
fi
exec "$root/build/release/tern" broker "${args[@]+"${args[@]}"}"
