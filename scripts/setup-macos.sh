#!/usr/bin/env bash
# The macOS stage's tools (scripts/test-macos.sh): the two Apple targets' standard libraries and
# Zig as their C compiler (ring's C, through cargo-zigbuild), pinned. Idempotent: quick when done.
set -euo pipefail

ZIG_VERSION="0.17.1"
ZIGBUILD_VERSION="0.24.1"

have() {
    python3 -m pip show "$1" 2>/dev/null | grep -qx "Version: $2"
}
if have ziglang "$ZIG_VERSION" && have cargo-zigbuild "$ZIGBUILD_VERSION"; then
    echo "ziglang $ZIG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION already installed"
else
    python3 -m pip install --quiet --disable-pip-version-check \
        "ziglang==$ZIG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
fi
command -v cargo-zigbuild >/dev/null || {
    echo "cargo-zigbuild is not on PATH after pip install" >&2
    exit 1
}
rustup target add aarch64-apple-darwin x86_64-apple-darwin
