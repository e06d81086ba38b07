#!/usr/bin/env bash
# Installs what the Windows stage needs (scripts/test-windows.sh), idempotently: the
# x86_64-pc-windows-gnu target (rustup), Debian's MinGW-w64 cross compiler and Debian's wine
# (8.0, 64-bit). Run by scripts/setup.sh; safe to run by hand.
set -u -o pipefail

TARGET=x86_64-pc-windows-gnu

step_target() {
    if rustup target list --installed | grep -qx "$TARGET"; then
        echo "$TARGET present, skipping"
        return 0
    fi
    rustup target add "$TARGET"
}

# tool:package pairs installed from apt when the tool is missing.
APT_TOOLS=(x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64 wine:wine wine64:wine64)

step_apt() {
    local missing=() pair
    for pair in "${APT_TOOLS[@]}"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "MinGW-w64 gcc and wine present, skipping apt"
        return 0
    fi
    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    echo "installing from apt: ${missing[*]}"
    $sudo apt-get update &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

STEPS=(target apt)

now() { date +%s.%N; }

failed=0
for step in "${STEPS[@]}"; do
    echo "==> setup-windows: $step"
    start="$(now)"
    if "step_$step"; then result=ok; else result=FAILED; failed=1; fi
    secs="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
    echo "==> setup-windows: $step: $result (${secs}s)"
done
exit "$failed"
