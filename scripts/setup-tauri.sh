#!/usr/bin/env bash
# Installs what the Tauri stage needs (scripts/test-tauri.sh), idempotently: Debian's
# libwebkit2gtk-4.1-dev (it brings GTK 3 and libsoup 3, whose pkg-config files the build
# scripts of tauri's -sys crates need, even with no window) and the guest package's npm
# packages (@tauri-apps/api for its IPC mocks, typescript) from its lock file. Run by
# scripts/setup.sh; safe to run by hand. About 35 s for apt on a fresh Debian 12.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GUEST="$ROOT/crates/tauri/guest-js"

step_apt() {
    if dpkg-query -W -f='${Status}' libwebkit2gtk-4.1-dev 2>/dev/null | grep -q "install ok installed"; then
        echo "libwebkit2gtk-4.1-dev present, skipping apt"
        return 0
    fi
    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    echo "installing from apt: libwebkit2gtk-4.1-dev"
    $sudo apt-get update &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y libwebkit2gtk-4.1-dev
}

step_npm() {
    local stamp="$GUEST/node_modules/.setup-stamp" want
    want="$(cat "$GUEST/package.json" "$GUEST/package-lock.json" | sha256sum | cut -d' ' -f1) node-$(node --version)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "guest-js packages up to date (lock unchanged), skipping npm ci"
        return 0
    fi
    npm ci --prefix "$GUEST" --no-audit --no-fund && echo "$want" >"$stamp"
}

STEPS=(apt npm)

now() { date +%s.%N; }

failed=0
for step in "${STEPS[@]}"; do
    echo "==> setup-tauri: $step"
    start="$(now)"
    if "step_$step"; then result=ok; else result=FAILED; failed=1; fi
    secs="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
    echo "==> setup-tauri: $step: $result (${secs}s)"
done
exit "$failed"
