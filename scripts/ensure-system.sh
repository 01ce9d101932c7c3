#!/usr/bin/env bash
# Installs the Debian packages the test suites need, only when they are missing, and says what it installs.
set -euo pipefail
need=()
# (each suite that needs a system package adds its check here)
if ((${#need[@]})); then
  echo "npm test: installing missing system packages: ${need[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
