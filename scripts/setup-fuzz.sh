#!/usr/bin/env bash
# Installs what scripts/fuzz.sh needs, idempotently: a nightly toolchain and cargo-fuzz.
# Quick when everything is there (checks, then skips). Run by scripts/setup.sh; safe to run by
# hand (`bash scripts/setup-fuzz.sh [STEP...]`, default every step).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step_nightly() {
    if rustup toolchain list | grep -q '^nightly'; then
        echo "nightly toolchain present: $(rustc +nightly --version)"
        return 0
    fi
    echo "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
}

step_cargo_fuzz() {
    if cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz present: $(cargo fuzz --version)"
        return 0
    fi
    echo "cargo install cargo-fuzz --locked (scripts/common.sh cargo_tool)"
    cargo_tool cargo-fuzz "" --locked
}

run_steps_of setup-fuzz "$@" -- nightly cargo_fuzz
