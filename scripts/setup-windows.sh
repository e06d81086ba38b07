#!/usr/bin/env bash
# Installs what the Windows stage needs (scripts/test-windows.sh), idempotently: the
# x86_64-pc-windows-gnu target (rustup), Debian's MinGW-w64 cross compiler and Debian's wine
# (8.0, 64-bit). Run by scripts/setup.sh; safe to run by hand.
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET=x86_64-pc-windows-gnu

step_target() {
    if rustup target list --installed | grep -qx "$TARGET"; then
        echo "$TARGET present, skipping"
        return 0
    fi
    rustup target add "$TARGET"
}

# tool:package pairs installed from apt when the tool is missing (Debian's wine64 puts its loader
# in /usr/lib/wine, not on PATH: checked by its path, else apt ran on every set-up).
APT_TOOLS=(x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64 wine:wine /usr/lib/wine/wine64:wine64)

step_apt() { apt_tools "MinGW-w64 gcc and wine" "${APT_TOOLS[@]}"; }

run_steps_of setup-windows "$@" -- target apt
