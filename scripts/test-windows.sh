#!/usr/bin/env bash
# Windows: bash scripts/test-windows.sh [--c-only [SUITE...]]
#
#   --c-only [SUITE...]  builds the CLI and the static library and runs only the C quick start
#                        and the C suites named (e.g. `--c-only devices seats`; none: the run's
#                        list below): no demo, clippy or Rust suites (for working on a C suite).
#
# Cross-builds the library, the command line, the Rust test suites and the C quick start for
# x86_64-pc-windows-gnu (MinGW-w64) and runs them under Debian's wine 8 (64-bit), in a
# throwaway wine prefix under target/windows:
#   1. the CLI demo on the embedded emulator (all 17 steps);
#   2. the Rust test suites (the emulator, the grace scenarios, Licensing with a file store,
#      the trust attacks, the real binary's commands, crash safety of the cache, the fault
#      matrix, the C ABI called from Rust, the machine id with a planted reg.exe, signed mode,
#      the relay and its verdict store with its crash tests, Polar's webhooks and the token
#      budget), run by cargo through wine;
#   3. the C quick start (bindings/c/examples/validate.c) built by MinGW-w64 against the
#      static library and run twice against the Windows emulator;
#   4. the C suites that are not Linux-specific (signed mode through the relay among them),
#      built the same way, run against it.
# Rust's std imports bcryptprimitives.dll!ProcessPrng (Windows 10 and later), which wine 8
# lacks: scripts/windows/process_prng.c is built into a stand-in DLL that only this script
# puts on wine's PATH (never shipped). The last line is `windows: N passed, N failed`.
set -u -o pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

TARGET=x86_64-pc-windows-gnu
OUT="target/windows"
mkdir -p "$OUT/shim"
STAGE=windows
# Cargo's output: $CARGO_TARGET_DIR when set (relative to the repository or absolute), else
# target. The test command gives this stage a build directory of its own, so that it can build
# beside the wasm stage without waiting for cargo's lock on target (scripts/test.sh).
BUILD="${CARGO_TARGET_DIR:-target}"
[[ "$BUILD" == /* ]] || BUILD="$ROOT/$BUILD"
# build CMD...: a step that only compiles, at the niceness BUILD_NICE (default 0): in the
# background beside the wasm stage the compiling yields the cores to its timed suites, while
# what runs under wine keeps the normal priority.
build() { nice -n "${BUILD_NICE:-0}" "$@"; }

C_ONLY=0
C_ONLY_SUITES=()
if [[ "${1:-}" == "--c-only" ]]; then
    C_ONLY=1
    shift
    C_ONLY_SUITES=("$@")
    for t in "${C_ONLY_SUITES[@]}"; do
        [[ -f "bindings/c/tests/test_$t.c" ]] || { echo "no bindings/c/tests/test_$t.c" >&2; exit 2; }
    done
fi

export WINEPREFIX="$ROOT/$OUT/wineprefix" WINEARCH=win64 WINEDEBUG=-all
# The stand-in first, then wine's own; no Mono or Gecko installers on a closed network.
export WINEDLLOVERRIDES="bcryptprimitives=n,b;mscoree,mshtml="
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
# The prefix is this run's: a test may use the user's real data folder in it.
export POLAR_LICENSE_TEST_THROWAWAY_PROFILE=1
# The static library for the C programs: FULL=1 builds it in the c-release profile that ships
# (LTO, opt-level z); the default run builds it in the dev profile, whose dependencies the Rust
# suites above already compiled for this target (1 unit to build, where c-release compiled the
# library and its 98 dependencies again at opt-level z, LTO or not): the Linux C stage builds and
# tests the shipped library, and what can fail only here is the Windows link and run (issue #55).
if full; then C_PROFILE=c-release C_PROFILE_DIR=c-release; else C_PROFILE=dev C_PROFILE_DIR=debug; fi
C_LIB="$BUILD/$TARGET/$C_PROFILE_DIR/libpolar_license_c.a"
# The fault-matrix rows of these runs stay here: target/fault-matrix is the Linux table's.
mkdir -p "$OUT/fault-matrix"
export POLAR_FAULT_MATRIX_DIR="$ROOT/$OUT/fault-matrix"
export POLAR_FAULT_MATRIX_OUT="$ROOT/$OUT/fault-matrix/c.tsv"

if ! x86_64-w64-mingw32-gcc -shared -O2 -Wall -Werror -o "$OUT/shim/bcryptprimitives.dll" \
    scripts/windows/process_prng.c -ladvapi32; then
    record shim 0 1
    echo "windows: $PASSED passed, $FAILED failed"
    exit 1
fi
# An attacker's reg.exe for tests/windows_machine_id.rs (it must change nothing).
mkdir -p "$OUT/fake"
x86_64-w64-mingw32-gcc -O2 -o "$OUT/fake/reg.exe" scripts/windows/fake_reg.c || FAILED=$((FAILED + 1))
wineboot --init >/dev/null 2>&1
POLAR_LICENSE_TEST_FAKE_REG="$(winepath -w "$ROOT/$OUT/fake/reg.exe" 2>/dev/null)"
export POLAR_LICENSE_TEST_FAKE_REG
WINEPATH="$(winepath -w "$ROOT/$OUT/shim" 2>/dev/null)"
export WINEPATH
echo "wine $(wine --version 2>/dev/null), prefix $WINEPREFIX, shim on WINEPATH=$WINEPATH"

# The integration suites by name, from whichever crate holds them (the library's, the
# emulator's, the command line's), and the unit tests of the crates with a library (the C ABI's
# Rust tests are among its unit tests: bindings/c/src/tests/).
# The default run keeps what can fail only on Windows: paths and the file store (the library's
# and the C ABI's unit tests, licensing, the CLI), the machine id (a planted reg.exe), the cache
# under crashes, the network (sockets, timeouts, a dead port), the remembered key, the relay's
# store on disk. FULL=1 runs every suite below (560 tests), as before issue #55.
if full; then
    SUITES=(api_emulator emulator_http core_protocol grace_scenarios licensing trust polar_versions
        cli cli_grace cli_trust cli_versions cli_features cli_network features cache_crash
        fault_matrix windows_machine_id async_api network remembered_key cli_remember
        signed_mode cli_signed cli_relay cli_relay_store cli_token_budget relay store webhooks)
    LIBS=(polar-license polar-license-emulator polar-license-rules polar-license-c polar-license-relay)
else
    SUITES=(licensing cli cache_crash windows_machine_id network remembered_key cli_relay_store store)
    LIBS=(polar-license polar-license-c polar-license-relay)
fi
# The test build: the suites and the libraries' unit tests, and the CLI's binary with them (its
# suites run it), in the workspace's features for these crates. In the default run, compiled by
# clippy-driver (Clippy's rustc, as `cargo clippy` runs it: RUSTC_WORKSPACE_WRAPPER; the crates
# from crates.io are compiled by rustc as before): the lints for Windows of every crate of ours
# it compiles -- the library, the CLI, the relay, the emulator, the rules, the testkit, and the
# suites above; the C ABI, which has no line of its own for Windows, is compiled by rustc,
# keeping its pointer checks -- in the one pass over the dependencies that the run needs
# anyway; any warning fails `clippy`, as -D warnings did. Before, `cargo clippy --all-targets`
# was a check pass of its own over the same dependencies, and `cargo build -p
# polar-license-cli` a third build of the CLI, the core and the dependencies whose features
# differ without the suites' dev-dependencies. FULL=1: that clippy pass over every target of
# the workspace, as before (the other suites' own lines for Windows: cli_seats, cli_writes,
# cli_prompt, cli_devices, relay, ... which run on Windows only with FULL=1 or never).
TEST_ARGS=()
for s in "${SUITES[@]}"; do TEST_ARGS+=(--test "$s"); done
PACKAGES=(-p polar-license-cli)
for l in "${LIBS[@]}"; do PACKAGES+=(-p "$l"); done
# (scripts/clippy-wrapper.sh: clippy-driver for every crate of ours but the C ABI's,
# whose unsafe code keeps rustc's checks of pointer dereferences in its unit tests.)
if ! full && [[ $C_ONLY == 0 ]]; then
    CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
    export CLIPPY_DRIVER RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/clippy-wrapper.sh"
fi

# ---- 1. the demo --------------------------------------------------------------------------
EXE="$BUILD/$TARGET/debug/polar-license.exe"
if [[ $C_ONLY == 1 ]]; then
    echo "==> cargo build --target $TARGET -p polar-license-cli"
    build cargo build --target "$TARGET" -p polar-license-cli || EXE=""
else
    echo "==> cargo test --target $TARGET ${PACKAGES[*]} --no-run --lib ${TEST_ARGS[*]}${RUSTC_WORKSPACE_WRAPPER:+ (compiled by $RUSTC_WORKSPACE_WRAPPER: clippy)}"
    build cargo test --target "$TARGET" "${PACKAGES[@]}" --no-run --lib "${TEST_ARGS[@]}" \
        >"$OUT/build.log" 2>&1
    rc=$?
    tail -n 3 "$OUT/build.log"
    [[ $rc -eq 0 && -x "$EXE" ]] || { grep -E '^(error|warning)' -A 12 "$OUT/build.log" | head -n 80; EXE=""; }
    if ! full; then
        # Cargo's line for each crate that warned ("warning: `polar-license` (lib) generated 1
        # warning"; replayed from an earlier build's output when nothing was recompiled).
        warned="$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/build.log" | grep -E '^warning: .* generated [0-9]+ warnings?' || true)"
        if [[ $rc -eq 0 && -z "$warned" ]]; then
            record clippy 1 0
        else
            [[ -n "$warned" ]] && echo "clippy: warnings denied (-D warnings):" && echo "$warned" &&
                sed 's/\x1b\[[0-9;]*m//g' "$OUT/build.log" | grep -E '^warning' -A 12 | head -n 80
            record clippy 0 1
        fi
    fi
fi
if [[ -n "$EXE" ]]; then
    if [[ $C_ONLY == 1 ]]; then
        : # the C suites only
    elif timeout 300 wine "$EXE" demo | tee "$OUT/demo.log" | tail -n 3 &&
        grep -q "all 17 steps gave the expected answer" "$OUT/demo.log"; then
        record demo 1 0
    else
        record demo 0 1
    fi
else
    record build 0 1
fi

# Lints for the Windows code paths too (the registry read, the Windows-only tests), FULL=1: every
# target of the workspace (the npm package's wasm crates and the test-only ones too, which never
# run on Windows); the default run's clippy is the test build's, above.
if full && [[ $C_ONLY == 0 ]]; then
    if build cargo clippy --target "$TARGET" --workspace --exclude tauri-plugin-polar-license \
        --all-features --all-targets -- -D warnings; then
        record clippy 1 0
    else
        record clippy 0 1
    fi
fi

# ---- 2. the Rust suites -------------------------------------------------------------------
rust_suites() {
    echo "windows: $([[ "$FULL" == 1 ]] && echo "FULL=1, every suite" || echo "default run (FULL=1 for every suite)"): ${SUITES[*]}; libraries ${LIBS[*]}"
    args=("${TEST_ARGS[@]}")
    packages=("${PACKAGES[@]}")
    echo "==> cargo test --target $TARGET ${packages[*]} --lib ${args[*]}"
    # Built first (a failure to build shows in the run below, which then builds nothing new).
    build cargo test --target "$TARGET" "${packages[@]}" --no-run --lib "${args[@]}" 2>&1 | tail -n 3
    timeout 1800 cargo test --target "$TARGET" "${packages[@]}" --no-fail-fast --lib "${args[@]}" \
        2>&1 | tee "$OUT/rust.log" | grep -E '^(test result|     Running|.*FAILED|failures:)'
    # A test binary that wine did not start at all (no `running N tests` line after its
    # `Running`: wine's loader gave up before the harness began; seen once, on network.rs, in a
    # run whose every other binary passed) is run once more, and said so; a second failure counts.
    : >"$OUT/rust-retry.log"
    while read -r again; do
        echo "windows: wine did not start the binary of \`$again\`: run once more"
        # shellcheck disable=SC2086 # `-p PKG --test NAME`, as cargo printed it: words
        timeout 600 cargo test --target "$TARGET" --no-fail-fast $again 2>&1 |
            tee -a "$OUT/rust-retry.log" | grep -E '^(test result|     Running|.*FAILED|failures:)'
    done < <(tr -d '\r' <"$OUT/rust.log" | sed 's/\x1b\[[0-9;]*m//g' | awk '
        /^     Running / { started = 0; next }
        /^running [0-9]+ tests?$/ { started = 1; next }
        /^error: test failed, to rerun pass `/ && !started {
            match($0, /`[^`]*`/); print substr($0, RSTART + 1, RLENGTH - 2) }')
    cat "$OUT/rust-retry.log" >>"$OUT/rust.log"
    read -r p f < <(sed 's/\x1b\[[0-9;]*m//g' "$OUT/rust.log" | grep -E '^test result: ' | awk '
        { for (i = 1; i <= NF; i++) { v = $(i - 1) + 0
              if ($i ~ /^passed/) p += v; else if ($i ~ /^failed/) f += v } }
        END { print p + 0, f + 0 }')
    # A failing test's own output (its panic message), so the CI log says why, not only which.
    tr -d '\r' <"$OUT/rust.log" | sed -n '/^---- .* stdout ----$/,/^failures:$/p' | head -n 200
    suites_run=$(grep -c '^test result: ' "$OUT/rust.log")
    # A suite that did not build or run counts as failed.
    missing=$(( ${#SUITES[@]} + ${#LIBS[@]} - suites_run ))
    [[ $missing -gt 0 ]] && f=$((f + missing))
    record rust "$p" "$f"
}
if [[ $C_ONLY == 0 ]]; then rust_suites; fi

# ---- 3. the C quick start -----------------------------------------------------------------
# c_build: the static library, with the native libraries it links printed (staticlib.log), and
# the forge the C suites run. The default run builds them in the test build's packages,
# features and wrapper (`cargo build` of those packages' libraries and suites: all fresh but
# the two new units, the C ABI's static library, compiled by rustc, and the forge), so that
# they reuse its dependencies: `cargo rustc -p polar-license-c` alone resolved other features
# (serde, http, uuid, windows-sys, ...) and, without the wrapper, other hashes for our crates,
# and compiled 17 units again (measured on 2026-11-29 after the test build: 47.7 s of CPU for
# the library and the forge, now 4.1). FULL=1 (the shipped c-release profile) and --c-only:
# as before.
c_build() {
    if [[ -n "${RUSTC_WORKSPACE_WRAPPER:-}" && "$C_PROFILE" == dev ]]; then
        build env PRINT_NATIVE_STATIC_LIBS=polar_license_c cargo build --target "$TARGET" "${PACKAGES[@]}" \
            -p polar-license-forge-c --lib --bin polar-license-forge-c "${TEST_ARGS[@]}"
    else
        # (rustc's, not clippy-driver's: `--print native-static-libs` as rustc prints it; the
        # C ABI's lines are linted in the test build, its unit tests.)
        local rc=0
        build env -u RUSTC_WORKSPACE_WRAPPER cargo rustc -p polar-license-c --lib --target "$TARGET" \
            --profile "$C_PROFILE" -- --print native-static-libs || rc=1
        build env -u RUSTC_WORKSPACE_WRAPPER cargo build --target "$TARGET" -p polar-license-forge-c
        return $rc
    fi
}

# The address an emulator started under wine printed first in LOG ("listening on URL"), waited
# for up to a minute (wine starts a process slowly on a loaded machine: 20 s was once too few
# beside a release build); empty when none came.
listening() {
    local url="" i
    for i in $(seq 1 600); do
        url="$(sed -n '1s/^listening on //p' "$1" | tr -d '\r')"
        [[ -n "$url" ]] && break
        sleep 0.1
    done
    echo "$url"
}

c_quick_start() {
    c_build 2>&1 | tee "$OUT/staticlib.log" | tail -n 2 || return 1
    local native lib="$C_LIB"
    native="$(sed -n 's/.*native-static-libs: //p' "$OUT/staticlib.log" | tail -n 1)"
    echo "native-static-libs: $native"
    # `-lwindows.0.52.0` names the windows-targets crate's import library, which is not on a C
    # project's path; MinGW-w64's own import libraries of the same system DLLs (the rest of
    # the list) resolve every symbol, so the documented link line leaves it out.
    native="$(tr ' ' '\n' <<<"$native" | grep -v '^-lwindows\.' | tr '\n' ' ')"
    echo "link line: x86_64-w64-mingw32-gcc app.c libpolar_license_c.a $native"
    # shellcheck disable=SC2086 # the list is words
    x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -pedantic -Ibindings/c/include \
        bindings/c/examples/validate.c "$lib" $native -o "$OUT/validate.exe" || return 1
    x86_64-w64-mingw32-strip -o "$OUT/validate.stripped.exe" "$OUT/validate.exe" &&
        echo "size: validate.exe stripped $(stat -c %s "$OUT/validate.stripped.exe") bytes"
    [[ -n "$EXE" ]] || return 1
    wine "$EXE" emulator --port 0 >"$OUT/emulator.log" 2>&1 &
    local pid=$! url
    url="$(listening "$OUT/emulator.log")"
    if [[ -z "$url" ]]; then
        echo "  the emulator under wine printed no address within 60 s: $(tail -n 3 "$OUT/emulator.log")"
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
    fi
    local ok=1 run
    for run in 1 2; do
        if out="$(POLAR_ORGANIZATION_ID=2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10 POLAR_API_URL="$url" \
            timeout 120 wine "$OUT/validate.exe" DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A 2>&1)"; then
            echo "  run $run: $(echo "$out" | tail -n 1)"
            grep -q "licensed" <<<"$out" || ok=0
        else
            echo "  run $run failed: $out"
            ok=0
        fi
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [[ $ok -eq 1 ]]
}
if c_quick_start; then record c-quick-start 1 0; else record c-quick-start 0 1; fi

# ---- 4. the C suites ------------------------------------------------------------------------
# Every suite that is not Linux-specific (test_interop and test_trust use fork, mount namespaces
# and POSIX permissions), built with MinGW-w64 as on Linux (-Wall -Wextra -Werror -pedantic,
# statically: no MinGW DLL to ship) and run against the Windows emulator answering as API
# version 2027-01, like scripts/test-c.sh does. test_signed spawns the Windows binary's
# `relay serve` and the Windows build of bindings/c/forge (the forged-record attack);
# test_devices and test_seats start it through the harness's proc_start (CreateProcess here).
# Default: the C suites whose Windows build differs (paths and UTF-8 input, threads, the store
# of the remembered key, processes started and ended: the relay of a key's devices and of
# seats); FULL=1: every C suite that is not Linux-specific.
if full; then
    C_SUITES=(inputs reasons grace features versions background threads faults remember signed
        devices seats)
else
    C_SUITES=(inputs threads remember devices seats)
fi
if [[ ${#C_ONLY_SUITES[@]} -gt 0 ]]; then C_SUITES=("${C_ONLY_SUITES[@]}"); fi
c_suites() {
    local lib="$C_LIB" native t out p f
    native="$(sed -n 's/.*native-static-libs: //p' "$OUT/staticlib.log" | tail -n 1 |
        tr ' ' '\n' | grep -v '^-lwindows\.' | tr '\n' ' ')"
    mkdir -p "$OUT/c"
    local forge=""
    # (Built by c_build with the static library.)
    if [[ -x "$BUILD/$TARGET/debug/polar-license-forge-c.exe" ]]; then
        forge="$(winepath -w "$BUILD/$TARGET/debug/polar-license-forge-c.exe" 2>/dev/null)"
    fi
    wine "$EXE" emulator --port 0 --api-version 2027-01 >"$OUT/c-emulator.log" 2>&1 &
    local pid=$! url
    url="$(listening "$OUT/c-emulator.log")"
    for t in "${C_SUITES[@]}"; do
        # shellcheck disable=SC2086 # the list is words
        if ! x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -pedantic -pthread -static \
            -Ibindings/c/include bindings/c/tests/harness.c "bindings/c/tests/test_$t.c" \
            "$lib" $native -o "$OUT/c/test_$t.exe"; then
            record "c test_$t (build)" 0 1
            continue
        fi
        out="$(POLAR_EMULATOR_URL="$url" POLAR_LICENSE_CLI="$(winepath -w "$EXE")" \
            POLAR_LICENSE_FORGE_C="$forge" timeout 600 wine "$OUT/c/test_$t.exe" 2>&1 | tr -d '\r')"
        grep -E '^(not ok|  bindings/)' <<<"$out" || true
        p=""
        f=""
        read -r p f < <(sed -n "s/^test_$t: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p" <<<"$out")
        if [[ -z "${p:-}" ]]; then
            echo "$out" | tail -n 5
            p=0
            f=1
        fi
        record "c test_$t" "$p" "$f"
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
if [[ -n "$EXE" ]]; then c_suites; else record c-suites 0 1; fi

echo
echo "windows: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
