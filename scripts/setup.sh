#!/usr/bin/env bash
# Installs what the tests need, idempotently. Run by scripts/test.sh; safe to run by hand.
#
#   bash scripts/setup.sh           every step: the first ones, then the rest (below)
#   bash scripts/setup.sh --first   what the stages before the C, Tauri, Windows and wasm ones need
#                                   (tests: Prism from npm, strace, systemd-socket-activate;
#                                   doc-wasm: the wasm32 target)
#   bash scripts/setup.sh --rest    the rest, in two lanes at once: the downloads (apt, rustup,
#                                   pip, npm: network and disk) and the builds (the four tools
#                                   cargo compiles: CPU), each lane's steps in order
#
# scripts/test.sh runs --first as its setup stage, then --rest in the background beside fmt,
# clippy, doc, tests, doctests and one-answer, which need none of it, and waits for it before
# the C, Tauri, Windows and wasm stages: on a fresh machine the installs' minutes (mostly apt
# and downloads) pass while those stages compile.
#
# Each step is a function `step_<name>`, timed and its result printed (`==> setup: name: ok
# (1.2s)`); a step should be quick when its work is already done (check, then skip). The exit
# status is 1 when a step failed (every step still runs; the failed ones are named at the end).
# A new step: define step_NAME; list it in FIRST only if a stage before the C stage needs it, in
# BUILDS if cargo compiles it; any other step runs in the downloads lane (DOWNLOADS lists their
# order; a step listed nowhere runs after them).
set -u -o pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cd "$ROOT"

NPM_DIR="scripts/npm"

# npm tools pinned in scripts/npm/package-lock.json (Prism, the OpenAPI contract proxy; the
# wasm stage's wasm-opt, bundlers, browser drivers' clients).
step_npm() { npm_ci_once "$NPM_DIR" npm prism bash scripts/npm-ci.sh; }

# The C ABI's tools (scripts/setup-c.sh): gcc, g++, valgrind, cmake, strace,
# systemd-socket-activate, ... from apt, and the sanitizer runtimes; the pinned cbindgen.
step_c_tools() { bash scripts/setup-c.sh apt sanitizers; }
step_cbindgen() { bash scripts/setup-c.sh cbindgen; }

# The wasm toolchain (scripts/setup-wasm.sh): the wasm32 target, the pinned nightly the npm
# package is built with, the pinned wasm-bindgen CLI, geckodriver, the three browser engines.
step_wasm_target() { bash scripts/setup-wasm.sh target; }
step_wasm_toolchain() { bash scripts/setup-wasm.sh toolchain; }
step_wasm_bindgen() { bash scripts/setup-wasm.sh wasm_bindgen; }
step_geckodriver() { bash scripts/setup-wasm.sh geckodriver; }
step_browsers() { bash scripts/setup-wasm.sh browsers; }

# Fuzzing: the nightly toolchain and cargo-fuzz (scripts/setup-fuzz.sh).
step_fuzz_nightly() { bash scripts/setup-fuzz.sh nightly; }
step_cargo_fuzz() { bash scripts/setup-fuzz.sh cargo_fuzz; }

# Windows under wine: the windows-gnu target, MinGW-w64 and wine (scripts/setup-windows.sh).
step_windows() { bash scripts/setup-windows.sh; }

# The Tauri plugin: libwebkit2gtk-4.1-dev (GTK 3, libsoup 3) and the guest package's npm
# packages (scripts/setup-tauri.sh).
step_tauri() { bash scripts/setup-tauri.sh; }

# macOS, compiled and linted: the Apple targets and Zig through cargo-zigbuild, pinned
# (scripts/setup-macos.sh).
step_macos() { bash scripts/setup-macos.sh; }

# The Python package: a venv of the pinned maturin, mypy and pyright, pyright's node package
# fetched once (scripts/setup-python.sh).
step_python() { bash scripts/setup-python.sh; }

# The registry stage (scripts/test-registry.sh): Verdaccio (scripts/release/tools) and actionlint
# (a venv of its own, pinned by hash).
step_registry() {
    npm_ci_once scripts/release/tools release-tools verdaccio \
        npm ci --prefix "$ROOT/scripts/release/tools" --no-audit --no-fund --silent || return 1
    local venv="$ROOT/target/release-tools/actionlint"
    [[ -x "$venv/bin/actionlint" ]] && { echo "actionlint present, skipping"; return 0; }
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
        --require-hashes -r scripts/release/requirements-lint.txt
}

FIRST=(npm c_tools wasm_target)
BUILDS=(cbindgen wasm_bindgen)
DOWNLOADS=(browsers wasm_toolchain tauri windows macos python registry)
# Live fuzzing (the nightly toolchain, cargo-fuzz compiled) is the whole matrix's alone: the
# default run replays the committed corpus through the same bodies on stable
# (crates/fuzz-bodies/tests/corpus.rs, in the tests stage).
# geckodriver likewise: only the Rust-on-wasm suites in Firefox ESR use it (test-wasm.sh's
# wasm-firefox, FULL=1's alone); the npm package's browser suites drive Firefox over WebDriver
# BiDi (puppeteer-core). Compiled, it held the builds lane, whose end npm-build and the wasm
# stage wait for, 904 s longer in the set-up of 2026-11-29.
FULL_ONLY=(fuzz_nightly cargo_fuzz geckodriver)
if full; then
    BUILDS+=(geckodriver cargo_fuzz)
    DOWNLOADS+=(fuzz_nightly)
fi
# Steps listed nowhere (a step added without a list) join the downloads lane.
for fn in $(declare -F | awk '{ print $3 }' | sed -n 's/^step_//p'); do
    [[ " ${FIRST[*]} ${BUILDS[*]} ${DOWNLOADS[*]} ${FULL_ONLY[*]} " == *" $fn "* ]] || DOWNLOADS+=("$fn")
done

# rest: the downloads and the builds lanes at once, each lane's steps in order, each lane's
# output in target/setup-logs/LANE.log, shown when both have ended.
rest() {
    local dir="$ROOT/target/setup-logs" lane failed=0
    mkdir -p "$dir"
    echo "==> setup: the downloads (${DOWNLOADS[*]}) and the builds (${BUILDS[*]}) at once; each lane's log follows when both end"
    # downloads.ended: the downloads lane is over (passed or not), for the test command's stages
    # that need only it (scripts/test.sh, after_downloads), which start before the builds end.
    rm -f "$dir/downloads.ended"
    (
        (run_steps setup "${DOWNLOADS[@]}")
        rc=$?
        touch "$dir/downloads.ended"
        exit "$rc"
    ) </dev/null >"$dir/downloads.log" 2>&1 &
    local downloads=$!
    # At niceness 10: beside the test command's first stages (timed tests among them) the
    # compiling takes the cycles they leave, and still all of both cores when they have ended.
    (
        renice -n 10 -p "$BASHPID" >/dev/null
        run_steps setup "${BUILDS[@]}"
    ) </dev/null >"$dir/builds.log" 2>&1 &
    local builds=$!
    wait "$downloads" || failed=1
    wait "$builds" || failed=1
    for lane in downloads builds; do
        echo
        echo "==> setup: the $lane lane (target/setup-logs/$lane.log)"
        cat "$dir/$lane.log"
    done
    if [[ $failed -ne 0 ]]; then
        echo
        echo "==> setup: failed: $(sed -n 's/^==> setup: \([a-z_0-9]*\): FAILED .*/\1/p' \
            "$dir/downloads.log" "$dir/builds.log" | tr '\n' ' ')"
    fi
    return "$failed"
}

case "${1:-}" in
    --first) run_steps setup "${FIRST[@]}" ;;
    --rest) rest; exit $? ;;
    "")
        (run_steps setup "${FIRST[@]}")
        first=$?
        rest
        rest_rc=$?
        [[ $first -eq 0 && $rest_rc -eq 0 ]]
        exit $?
        ;;
    *)
        echo "usage: bash scripts/setup.sh [--first | --rest]" >&2
        exit 2
        ;;
esac
