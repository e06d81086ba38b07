#!/usr/bin/env bash
# Installs what packing the npm package needs (scripts/build-npm.sh), and nothing else,
# idempotently (each step checks first and skips when its work is done):
#
#   rustup target wasm32-unknown-unknown
#   the pinned nightly + rust-src the npm package's wasm is built with (scripts/wasm-toolchain.sh)
#   the wasm-bindgen CLI, exactly the wasm-bindgen crate's version (cargo install)
#   scripts/pack's three npm packages: binaryen's wasm-opt, @gfx/zopfli, esbuild
#
# No browser, no test tool, nothing as root. scripts/setup-wasm.sh (the tests' set-up) runs it
# first and adds the test tools; its `target` and `toolchain` steps are these. Named steps
# (`bash scripts/setup-pack.sh toolchain`) run alone. Exit status: 0 when every step is done, 1
# otherwise.
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/wasm-toolchain.sh
source "$ROOT/scripts/wasm-toolchain.sh"

cd "$ROOT"

step_target() {
    if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        echo "wasm32-unknown-unknown already installed"
        return 0
    fi
    rustup target add wasm32-unknown-unknown
}

# The pinned nightly and its std sources that the npm package's wasm is built with
# (scripts/wasm-toolchain.sh).
step_toolchain() {
    local sysroot
    sysroot="$(rustup run "$WASM_TOOLCHAIN" rustc --print sysroot 2>/dev/null)"
    if [[ -n "$sysroot" && -d "$sysroot/lib/rustlib/src/rust/library" ]]; then
        echo "$WASM_TOOLCHAIN with rust-src already installed"
        return 0
    fi
    rustup toolchain install "$WASM_TOOLCHAIN" --profile minimal --component rust-src
}

step_wasm_bindgen() {
    local want have
    want="$(wasm_bindgen_version)"
    if [[ -z "$want" ]]; then
        echo "cannot read the pinned wasm-bindgen version from Cargo.toml" >&2
        return 1
    fi
    have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
    if [[ "$have" == "$want" ]]; then
        echo "wasm-bindgen $want already on PATH"
        return 0
    fi
    # No --locked: the registry mirror lacks one of its locked dependencies.
    cargo_tool wasm-bindgen-cli "$want" --force
}

# `npm ci` of scripts/pack (its lock), once per lock and node version. The prefix as the
# directory really is: through a symbolic link (a checkout linked beside an app, as the docs
# stage links it), npm ci takes the package for a dependency of itself missing from its lock.
step_npm() {
    npm_ci_once "$PACK_NPM_DIR" pack wasm-opt \
        npm ci --prefix "$(cd "$PACK_NPM_DIR" && pwd -P)" --no-audit --no-fund
}

run_steps_of setup-pack "$@" -- target toolchain wasm_bindgen npm
