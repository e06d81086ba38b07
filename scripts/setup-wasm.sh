#!/usr/bin/env bash
# Installs what the WebAssembly build and its tests need, idempotently (each step checks
# first and skips when its work is done). Called by scripts/setup.sh; safe to run by hand.
#
#   scripts/setup-pack.sh: what packing alone needs (the target, the nightly, the wasm-bindgen
#   CLI, scripts/pack's wasm-opt, zopfli and esbuild); then the test tools:
#   rustup target wasm32-unknown-unknown
#   the pinned nightly + rust-src the npm package's wasm is built with (scripts/wasm-toolchain.sh)
#   wasm-bindgen CLI + wasm-bindgen-test-runner, exactly the wasm-bindgen crate's version
#   geckodriver (crates.io, pinned) for the Rust wasm suites in Firefox ESR
#   the browsers of the browser tests (apt, as root; tests/browser/engines.mjs): chromium +
#   chromium-driver, firefox-esr (driven by puppeteer-core over WebDriver BiDi), and WebKitGTK's
#   MiniBrowser with webkit2gtk-driver (WebKitWebDriver) on an Xvfb display (xvfb)
#   scripts/npm devDependencies (binaryen's wasm-opt, esbuild, typescript, vite, playwright-core,
#   puppeteer-core and selenium-webdriver (the Firefox and WebKit drivers' clients),
#   @polar-sh/sdk for the size comparison; rollup + @rollup/plugin-node-resolve, webpack and bun
#   for the bundler matrix, tests/bundlers)
#
# Exit status: 0 when every step is done, 1 otherwise (every step still runs).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/wasm-toolchain.sh
source "$ROOT/scripts/wasm-toolchain.sh"

cd "$ROOT"

NPM_DIR="scripts/npm"

# What packing needs, alone (scripts/build-npm.sh), installed once for both.
step_pack() { bash "$ROOT/scripts/setup-pack.sh"; }

# Steps of its own for scripts/setup.sh's lanes, done by scripts/setup-pack.sh (one place).
step_target() { bash "$ROOT/scripts/setup-pack.sh" target; }
step_toolchain() { bash "$ROOT/scripts/setup-pack.sh" toolchain; }

step_wasm_bindgen() {
    local want have runner
    want="$(wasm_bindgen_version)"
    if [[ -z "$want" ]]; then
        echo "cannot read the pinned wasm-bindgen version from Cargo.toml" >&2
        return 1
    fi
    have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
    runner="$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')"
    if [[ "$have" == "$want" && "$runner" == "$want" ]]; then
        echo "wasm-bindgen $want already on PATH"
        return 0
    fi
    # No --locked: the registry mirror lacks one of its locked dependencies.
    # At opt-level 0 but for the crates that read, transform and write the test binaries
    # (walrus, wasmparser, wasm-encoder, the CLI's support crate and theirs): its compile took
    # 178 s of CPU instead of 296 at opt-level 1 throughout, and the test runner 16.4 to 17.2 s
    # instead of 16.1 to 16.2 for the largest test binary (polar-license-wasm's unit tests,
    # 14 MB, in node; about 33 such runs a test command); at opt-level 0 throughout it took
    # 5.3 s more a run (measured 2026-11-29; the rest 2026-11-30, on 2 cores, /usr/bin/time).
    local hot=() p
    for p in walrus wasmparser wasm-encoder wasm-bindgen-cli-support wasm-bindgen-shared leb128 \
        leb128fmt id-arena hashbrown indexmap gimli rustc-demangle; do
        hot+=(--config "profile.release.package.\"$p\".opt-level=1")
    done
    TOOL_OPT_LEVEL=0 cargo_tool wasm-bindgen-cli "$want" --force "${hot[@]}"
}

# geckodriver (Mozilla's, from crates.io), which wasm-bindgen-test-runner drives Firefox ESR
# with for the Rust wasm suites (scripts/test-wasm.sh, wasm-firefox: FULL=1's alone; with no step
# named, compiled with FULL=1 only). Pinned.
GECKODRIVER_VERSION="0.37.1"
step_geckodriver() {
    if [[ "$(geckodriver --version 2>/dev/null | head -n 1)" == "geckodriver $GECKODRIVER_VERSION"* ]]; then
        echo "geckodriver $GECKODRIVER_VERSION already on PATH"
        return 0
    fi
    cargo_tool geckodriver "$GECKODRIVER_VERSION" --locked --force
}

# The three engines of tests/browser (engines.mjs): Chromium, Firefox ESR, WebKitGTK.
BROWSER_PACKAGES=(chromium chromium-driver firefox-esr webkit2gtk-driver xvfb)
step_browsers() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 &&
        command -v firefox-esr >/dev/null 2>&1 && command -v WebKitWebDriver >/dev/null 2>&1 &&
        command -v Xvfb >/dev/null 2>&1; then
        echo "browsers present: $(chromium --version 2>/dev/null | head -n 1); $(firefox-esr --version 2>/dev/null | head -n 1); WebKitGTK $(dpkg-query -W -f='${Version}' webkit2gtk-driver 2>/dev/null)"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        echo "browsers missing; run as root: apt-get update && apt-get install -y ${BROWSER_PACKAGES[*]}" >&2
        return 1
    fi
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${BROWSER_PACKAGES[@]}"
}

# The same stamp scripts/setup.sh writes, so whichever runs first does the work once.
step_npm() { npm_ci_once "$NPM_DIR" npm wasm-opt bash scripts/npm-ci.sh; }

DEFAULT_STEPS=(pack wasm_bindgen browsers npm)
full && DEFAULT_STEPS+=(geckodriver)
run_steps_of setup-wasm "$@" -- "${DEFAULT_STEPS[@]}"
