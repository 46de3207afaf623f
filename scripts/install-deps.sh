#!/usr/bin/env bash
# Installs what Tern needs to build and test, from Debian 12's packages. Safe to run again.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config libboost-dev libfmt-dev libjemalloc-dev libssl-dev openssl librocksdb-dev libgtest-dev
      googletest python3 python3-paho-mqtt mosquitto-clients
      mosquitto)  # mosquitto_passwd for the security tests, and the comparison broker (its service kept from starting)
# MQTT.js (npm) drives the WebSocket tests; a machine without npm gets Debian's Node.js and npm.
if ! command -v npm >/dev/null 2>&1; then pkgs+=(nodejs npm); fi
# libFuzzer (scripts/fuzz.sh): Debian ships it in libclang-rt-14-dev, only recommended by clang.
if [ "${1:-}" = "--fuzz" ]; then pkgs+=(clang libclang-rt-14-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's mosquitto package would start a broker on port 1883: keep services from starting.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
