#!/usr/bin/env bash
# The macOS stage's tools (scripts/test-macos.sh): the two Apple targets' standard libraries and
# Zig as their C compiler (ring's C, through cargo-zigbuild), pinned. Idempotent: quick when done.
# Run by scripts/setup.sh; safe to run by hand (`bash scripts/setup-macos.sh [STEP...]`).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ZIG_VERSION="0.17.1"
ZIGBUILD_VERSION="0.24.1"

# (importlib.metadata: what `pip show` prints, in 0.05 s where pip takes seconds to start.)
have() {
    [[ "$(python3 -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null)" == "$2" ]]
}
step_zig() {
    if have ziglang "$ZIG_VERSION" && have cargo-zigbuild "$ZIGBUILD_VERSION"; then
        echo "ziglang $ZIG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION already installed"
    else
        python3 -m pip install --quiet --disable-pip-version-check \
            "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" || return 1
    fi
    command -v cargo-zigbuild >/dev/null || {
        echo "cargo-zigbuild is not on PATH after pip install" >&2
        return 1
    }
}

step_targets() { rustup target add aarch64-apple-darwin x86_64-apple-darwin; }

run_steps_of setup-macos "$@" -- zig targets
