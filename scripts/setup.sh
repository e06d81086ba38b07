#!/usr/bin/env bash
# Installs what the tests need, idempotently. Run by scripts/test.sh; safe to run by hand.
#
# Each step is a function `step_<name>` registered in STEPS below; it is timed and its
# result printed. A step should be quick when its work is already done (check, then skip).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"

NPM_DIR="scripts/npm"

# npm tools pinned in scripts/npm/package-lock.json (Prism, the OpenAPI contract proxy).
step_npm() { npm_ci_once "$NPM_DIR" npm prism bash scripts/npm-ci.sh; }

# The C ABI's tools (cbindgen pinned, cmake, g++, valgrind): scripts/setup-c.sh.
step_c() { bash scripts/setup-c.sh; }

# The wasm toolchain (wasm32 target, the pinned wasm-bindgen CLI, chromium + chromedriver):
# scripts/setup-wasm.sh.
step_wasm() { bash scripts/setup-wasm.sh; }

# Fuzzing: the nightly toolchain and cargo-fuzz (scripts/setup-fuzz.sh).
step_fuzz() { bash scripts/setup-fuzz.sh; }

# Windows under wine: the windows-gnu target, MinGW-w64 and wine (scripts/setup-windows.sh).
step_windows() { bash scripts/setup-windows.sh; }

# macOS, compiled and linted: the Apple targets and Zig through cargo-zigbuild, pinned
# (scripts/setup-macos.sh).
step_macos() { bash scripts/setup-macos.sh; }

# The Tauri plugin: libwebkit2gtk-4.1-dev (GTK 3, libsoup 3) and the guest package's npm
# packages (scripts/setup-tauri.sh).
step_tauri() { bash scripts/setup-tauri.sh; }

run_steps setup npm c wasm fuzz windows tauri macos
