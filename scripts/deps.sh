#!/usr/bin/env bash
# Installs what building and testing libivmon needs on Debian 12 (run as root). Idempotent: it
# asks apt only for packages that are missing, so a warm machine starts at once.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcmocka-dev python3 clang-format cppcheck valgrind
      util-linux procps clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
