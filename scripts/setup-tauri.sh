#!/usr/bin/env bash
# Installs what the Tauri stage needs (scripts/test-tauri.sh), idempotently: Debian's
# libwebkit2gtk-4.1-dev (it brings GTK 3 and libsoup 3, whose pkg-config files the build
# scripts of tauri's -sys crates need, even with no window) and the guest package's npm
# packages (@tauri-apps/api for its IPC mocks, typescript) from its lock file. Run by
# scripts/setup.sh; safe to run by hand. About 35 s for apt on a fresh Debian 12.
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GUEST="$ROOT/crates/tauri/guest-js"

step_apt() {
    if dpkg-query -W -f='${Status}' libwebkit2gtk-4.1-dev 2>/dev/null | grep -q "install ok installed"; then
        echo "libwebkit2gtk-4.1-dev present, skipping apt"
        return 0
    fi
    apt_install --recommends libwebkit2gtk-4.1-dev
}

step_npm() { npm_ci_once "$GUEST" guest-js "" npm ci --prefix "$GUEST" --no-audit --no-fund; }

run_steps_of setup-tauri "$@" -- apt npm
