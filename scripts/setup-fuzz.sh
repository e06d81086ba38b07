#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs, idempotently: a nightly toolchain and cargo-fuzz.
# Quick when everything is there (checks, then skips).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
else
    echo "nightly toolchain present: $(rustc +nightly --version)"
fi

if cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz present: $(cargo fuzz --version)"
else
    echo "==> cargo install cargo-fuzz --locked (scripts/common.sh cargo_tool)"
    cargo_tool cargo-fuzz "" --locked
fi
