#!/usr/bin/env bash
# The Tauri plugin (crates/tauri) and its guest package: bash scripts/test-tauri.sh
#
# Kept out of the workspace-wide stages (clippy, doc, tests, doctests, windows, package run
# with --exclude tauri-plugin-polar-license), so that their build graphs stay as they were and
# no wasm32 or Windows build meets Tauri. Here, on Linux with libwebkit2gtk-4.1-dev
# (scripts/setup-tauri.sh):
#   1. its docs, warnings denied, and clippy of the crate and its tests, warnings denied, both
#      in the build of step 2 (clippy-driver compiles it, and rustdoc documents the library
#      with that build's rlibs: one pass over Tauri's dependencies, not three; FULL=1: `cargo
#      doc` of its own, as before);
#   2. its Rust tests: the commands through Tauri's IPC on the mock runtime against the
#      emulator (they record every answer for step 4), the seller table's rows through the
#      commands (tests/seller_table.rs: target/seller-table/tauri.tsv for
#      scripts/seller-table.sh), the permissions, the guide against the sample app, the
#      doctests;
#   3. what `cargo package` would ship (the permissions and build.rs in, the tests out);
#   4. the guest package (crates/tauri/guest-js) in node against @tauri-apps/api's IPC mocks,
#      replaying the answers of step 2, and tsc over them against index.d.ts.
# Measured cold (a fresh target dir, CPU seconds user + system, on a machine shared with other
# builds at load averages 10 to 28): before clippy moved into the test build, clippy 286 s,
# then doc 74 s (a re-check of glib, gio, gtk, webkit2gtk, tauri-runtime, ... whose features
# differ without the dev-dependencies), then the test build; now doc 272 s, then the test build
# with clippy 294 s; warm, about 24 s (the tests and the guest package). The last line is
# `tauri: N passed, N failed`.
set -u -o pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
OUT="target/tauri"
mkdir -p "$OUT"
STAGE=tauri
# build CMD...: a step that only compiles, at the niceness BUILD_NICE (default 0): in the
# background beside the wasm stage (scripts/test.sh, with a build directory of its own) the
# compiling yields the cores to that stage's timed suites, while the tests keep the normal
# priority.
build() { nice -n "${BUILD_NICE:-0}" "$@"; }
check() { # name command...
    local name="$1"
    shift
    echo "==> $*"
    if "$@"; then record "$name" 1 0; else record "$name" 0 1; fi
}

# Its docs: FULL=1, `cargo doc` as before (the crate's own features, without the
# dev-dependencies); the default run documents the library inside the test build below.
if full; then
    check doc build env RUSTDOCFLAGS=-Dwarnings cargo doc -p tauri-plugin-polar-license --no-deps
fi

# Clippy inside the test build: clippy-driver, Clippy's rustc (cargo clippy's own
# RUSTC_WORKSPACE_WRAPPER), compiles the workspace's crates of this build -- the plugin's library,
# its tests and build script, and the workspace crates it uses -- with Clippy's lints, as
# `cargo clippy -p tauri-plugin-polar-license --all-targets` checks them, and it makes the
# binaries too; the crates from crates.io are compiled by rustc. One pass over Tauri's
# dependencies where clippy's check and the test build made two (a check of every crate cannot
# serve a build: cargo keeps their outputs apart). The doc step above is a pass of its own:
# without the dev-dependencies (tauri's `test` feature, the relay's server, ...), the features of
# half of Tauri's dependencies differ from the tests', so it cannot reuse theirs either.
# Warnings do not stop the build (its tests still run): any warning it prints fails clippy, as
# `-D warnings` did. What else clippy-driver changes: `--cfg clippy` (no code here reads it) and
# no MIR optimisation and no null and alignment checks of unsafe code in these crates (none
# has any: #![deny(unsafe_code)]).
# The docs ride in the same build (scripts/clippy-wrapper.sh, RUSTDOC_CRATE): once the plugin's
# library is compiled, rustdoc documents it with the build's own rlibs, warnings denied. `cargo
# doc` was a pass of its own: its dependencies checked in a mode no build shares (glib, gtk,
# webkit2gtk, soup3, tauri, tokio, rustls, ureq, the core: 52 crates), and, without the
# dev-dependencies, their build scripts and proc macros again where their features differ
# (measured cold on 2026-11-29: the test build with the docs in it 514 s of CPU; `cargo doc`
# after it 256 s more, 132 crates compiled and 72 checked).
CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export CLIPPY_DRIVER RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/clippy-wrapper.sh" RUSTDOC_CRATE=polar_license_tauri
# `--tests`: the suites (tests/plugin.rs) and the library they use, as `--all-targets` built
# them but for the library's unit-test harness, which has no test (`test = false` in its
# Cargo.toml; the crate has no example, bench or binary).
echo "==> cargo test -p tauri-plugin-polar-license --tests --no-run (compiled by $CLIPPY_DRIVER: clippy)"
# The fixtures step 4 reads: this run's only.
rm -rf "${CARGO_TARGET_DIR:-target}/tmp/polar-license-tauri"
# Built first (a failure to build shows in the run below, which then builds nothing new).
build cargo test -p tauri-plugin-polar-license --tests --no-run 2>&1 | tee "$OUT/build.log"
rc=${PIPESTATUS[0]}
# Cargo's line for each crate that warned: "warning: `tauri-plugin-polar-license` (lib test)
# generated 1 warning" (kept from an earlier build's output when nothing was recompiled).
warned="$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/build.log" | grep -E '^warning: .* generated [0-9]+ warnings?' || true)"
if [[ $rc -eq 0 && -z "$warned" ]]; then
    record clippy 1 0
else
    [[ -n "$warned" ]] && echo "clippy: warnings denied (-D warnings):" && echo "$warned"
    record clippy 0 1
fi
# The docs the build wrote (the wrapper's status and rustdoc's output, from the build that
# compiled the library: kept while it stays fresh); `cargo doc` when there are none.
if ! full; then
    docs="${CARGO_TARGET_DIR:-target}/doc/.polar_license_tauri.rustdoc"
    if [[ -f "$docs.status" ]]; then
        echo "==> rustdoc -D warnings of polar_license_tauri, in the test build ($docs.log)"
        cat "$docs.log"
        if [[ "$(cat "$docs.status")" == 0 ]]; then record doc 1 0; else record doc 0 1; fi
    else
        check doc build env -u RUSTC_WORKSPACE_WRAPPER RUSTDOCFLAGS=-Dwarnings cargo doc -p tauri-plugin-polar-license --no-deps
    fi
fi

# The seller table's values rows (issue #68) run `polar-license emulator` and `relay serve`
# (tests/js/values-world.mjs): the binary the suite finds next to it (testkit's cli_bin).
# In the test command (TEST_BINS_MARK), the tests stage's build of it (POLAR_LICENSE_CLI, which
# the testkit's cli_bin reads), once that stage has written where it is: this stage starts
# before it and is usually still compiling Tauri when it ends. Else (or when that build failed)
# a build of its own here, as run alone.
cli=""
if [[ -n "${TEST_BINS_MARK:-}" ]]; then
    echo "==> waiting for the tests stage's build of the CLI ($TEST_BINS_MARK)"
    while [[ ! -e "$TEST_BINS_MARK" ]]; do sleep 2; done
    bins="$(cat "$TEST_BINS_MARK")"
    [[ -n "$bins" && -x "$bins/polar-license" ]] && cli="$bins/polar-license"
fi
if [[ -n "$cli" ]]; then
    echo "==> the values rows' emulator and relay: $cli (the tests stage's build)"
    export POLAR_LICENSE_CLI="$cli"
else
    echo "==> cargo build -p polar-license-cli (the values rows' emulator and relay)"
    env -u RUSTC_WORKSPACE_WRAPPER cargo build -q -p polar-license-cli
fi
# Its Workers cells need the npm package scripts/test-wasm.sh installs (CONSUMER): in
# scripts/test.sh, SELLER_WORKERS_CONSUMER names it, and when its install has ended by now (its
# mark, CONSUMER.installed) the runner plays them here beside the native cells; else
# scripts/seller-workers.sh plays them after this stage, with this build's binary.
workers=()
if [[ -n "${SELLER_WORKERS_CONSUMER:-}" && -e "$SELLER_WORKERS_CONSUMER.installed" ]]; then
    workers=(CONSUMER="$SELLER_WORKERS_CONSUMER")
    echo "==> the seller table's Workers cells with CONSUMER=$SELLER_WORKERS_CONSUMER"
fi
echo "==> cargo test -p tauri-plugin-polar-license"
env "${workers[@]}" cargo test -p tauri-plugin-polar-license --no-fail-fast 2>&1 | tee "$OUT/cargo-test.log"
rc=${PIPESTATUS[0]}
read -r p f <<<"$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/cargo-test.log" | grep -E '^test result: ' |
    awk '{ for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i - 1); if ($i ~ /^failed/) f += $(i - 1) } }
         END { print p + 0, f + 0 }')"
[[ $rc -ne 0 && $f -eq 0 ]] && f=1
record rust "$p" "$f"

echo "==> cargo package --list -p tauri-plugin-polar-license"
if cargo package --list --allow-dirty -p tauri-plugin-polar-license >"$OUT/package.list" 2>"$OUT/package.err"; then
    missing=0
    for want in build.rs src/lib.rs src/answers.rs README.md permissions/default.toml \
        permissions/autogenerated/commands/check.toml permissions/schemas/schema.json; do
        grep -qx "$want" "$OUT/package.list" || { echo "missing: $want"; missing=1; }
    done
    if grep -E '^(tests|guest-js)/' "$OUT/package.list"; then missing=1; fi
    if [[ $missing -eq 0 ]]; then record package 1 0; else record package 0 1; fi
else
    cat "$OUT/package.err"
    record package 0 1
fi

echo "==> node --test crates/tauri/guest-js/test/"
(cd crates/tauri/guest-js && node --test test/) 2>&1 | tee "$OUT/guest-js.log"
rc=${PIPESTATUS[0]}
p="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$OUT/guest-js.log" | tail -n 1)"
f="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$OUT/guest-js.log" | tail -n 1)"
p=${p:-0}
f=${f:-0}
[[ $rc -ne 0 && $f -eq 0 ]] && f=1
record guest-js "$p" "$f"

echo "tauri: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
