#!/usr/bin/env bash
# Installs what the tests need, idempotently. Run by scripts/test.sh; safe to run by hand.
#
# Each step is a function `step_<name>` registered in STEPS below; it is timed and its
# result printed. A step should be quick when its work is already done (check, then skip).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NPM_DIR="scripts/npm"

# npm tools pinned in scripts/npm/package-lock.json (Prism, the OpenAPI contract proxy).
step_npm() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm not found: install node 20 and npm" >&2
        return 1
    fi
    local stamp="$NPM_DIR/node_modules/.setup-stamp"
    local want
    want="$(cat "$NPM_DIR/package.json" "$NPM_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node-$(node --version)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$NPM_DIR/node_modules/.bin/prism" ]]; then
        echo "npm packages up to date (lock unchanged), skipping npm ci"
        return 0
    fi
    bash "$(dirname "${BASH_SOURCE[0]}")/npm-ci.sh" || return 1
    echo "$want" >"$stamp"
}

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

STEPS=(npm c wasm fuzz windows tauri macos)

now() { date +%s.%N; }

failed=0
for step in "${STEPS[@]}"; do
    echo "==> setup: $step"
    start="$(now)"
    if "step_$step"; then result=ok; else result=FAILED; failed=1; fi
    secs="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
    echo "==> setup: $step: $result (${secs}s)"
done
exit "$failed"
