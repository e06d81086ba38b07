#!/usr/bin/env bash
# Builds and tests the C ABI (bindings/c): bash scripts/test-c.sh [--regen | --only TEST...]
#
#   --only TEST...  builds, checks the header, and runs only these C test programs (e.g.
#                   `--only test_signed`), plain, under ASan+UBSan and under valgrind: no quick
#                   start, install, CMake or README steps (for working on one suite).
#
#   1. builds the static and shared libraries (the crate polar-license-c, bindings/c, profile
#      `c-release`) and the polar-license binary (crates/cli, for the emulator);
#   2. checks the committed header against a fresh run of the pinned cbindgen (drift fails;
#      `--regen` rewrites the header instead and exits);
#   3. starts the emulator (stopped on exit, failures included);
#   4. builds and runs the quick start (static, then through pkg-config and CMake) and
#      asserts what the launch example (bindings/c/examples/launch.c) prints; checks the
#      installed shared library's SONAME and links; builds a C++ app with CMake against the
#      installed package, shared and static, installs it with the library beside it, removes
#      the package and runs the copy (bindings/c/tests/cmake-app); then the C
#      blocks of bindings/c/README.md, the C++ smoke test, and the C tests (every
#      bindings/c/tests/test_*.c, test_features.c included) plain, under ASan+UBSan and under
#      valgrind (test_signed.c drives `polar-license relay serve` and bindings/c/forge's
#      polar-license-forge-c, built in step 1, and the testkit's recording proxy
#      polar-license-tape for its replay and late-grant tests of issue #53). test_faults.c (the fault matrix) writes its rows to target/fault-matrix/c.tsv
#      (c-asan.tsv, c-valgrind.tsv for the other two runs) for scripts/fault-table.sh.
#      test_seller_table.c (issue #54) writes its rows to target/seller-table/c.tsv (c-asan.tsv,
#      c-valgrind.tsv) for scripts/seller-table.sh.
#
# Everything is built under target/c (the libraries and the binary under $CARGO_TARGET_DIR, by
# default target). One line per suite, `SUITE: N passed, N failed`, then
# a total; the exit status is 1 when anything failed. Needs scripts/setup-c.sh first.
set -u -o pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

OUT="target/c"
# Cargo's output: $CARGO_TARGET_DIR when set (relative to the repository), else target.
CARGO_OUT="${CARGO_TARGET_DIR:-target}"
[[ "$CARGO_OUT" == /* ]] || CARGO_OUT="$ROOT/$CARGO_OUT"
LIBDIR="$CARGO_OUT/c-release"
HEADER="bindings/c/include/polar_license.h"
# The build tree's names (the crate's lib name is polar_license_c, so it cannot clash with the
# Rust crate's); bindings/c/install.sh installs them as libpolar_license.{a,so}.
LIB_A="$LIBDIR/libpolar_license_c.a"
LIB_SO="$LIBDIR/libpolar_license_c.so"
CBINDGEN_VERSION="0.29.4"
DEMO_ORG="2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"
DEMO_KEY="DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A"
REVOKED_KEY="DEMO-REVOKED-7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"
CFLAGS=(-std=c11 -D_XOPEN_SOURCE=700 -Wall -Wextra -Werror -pedantic -g -pthread
    -Ibindings/c/include -Ibindings/c/tests)
SANITIZE=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
VALGRIND=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)

mkdir -p "$OUT"

regen_header() {
    cbindgen --config bindings/c/cbindgen.toml --output "$1" bindings/c/src/lib.rs
}

if [[ "${1:-}" == "--regen" ]]; then
    regen_header "$HEADER" && echo "wrote $HEADER"
    exit $?
fi

ONLY=()
if [[ "${1:-}" == "--only" ]]; then
    shift
    ONLY=("$@")
    if [[ ${#ONLY[@]} -eq 0 ]]; then
        echo "--only needs test names (e.g. test_signed)" >&2
        exit 2
    fi
    for t in "${ONLY[@]}"; do
        [[ -f "bindings/c/tests/$t.c" ]] || { echo "no bindings/c/tests/$t.c" >&2; exit 2; }
    done
fi

SUITES=()
RESULTS=()
TOTAL_PASSED=0
TOTAL_FAILED=0

# record SUITE PASSED FAILED
record() {
    SUITES+=("$1")
    RESULTS+=("$2 passed, $3 failed")
    TOTAL_PASSED=$((TOTAL_PASSED + $2))
    TOTAL_FAILED=$((TOTAL_FAILED + $3))
    echo "$1: $2 passed, $3 failed"
}

# step NAME CMD...: a build or check step that passes or fails as a whole.
step() {
    local name="$1"
    shift
    echo "==> $name: $*"
    if "$@"; then
        record "$name" 1 0
        return 0
    fi
    record "$name" 0 1
    return 1
}

# expect NAME CMD...: one assertion of a suite; prints `ok - NAME` or `not ok - NAME` and
# counts it in EXPECT_PASSED / EXPECT_FAILED (a suite's `record` adds them up).
EXPECT_PASSED=0
EXPECT_FAILED=0
expect() {
    local name="$1"
    shift
    if "$@"; then
        echo "ok - $name"
        EXPECT_PASSED=$((EXPECT_PASSED + 1))
        return 0
    fi
    echo "not ok - $name"
    EXPECT_FAILED=$((EXPECT_FAILED + 1))
    return 1
}
# record_expected SUITE: records the suite's assertions and starts the next suite's count.
record_expected() {
    record "$1" "$EXPECT_PASSED" "$EXPECT_FAILED"
    EXPECT_PASSED=0
    EXPECT_FAILED=0
}

finish() {
    echo
    echo "suite         result"
    echo "------------  ------"
    local i
    for i in "${!SUITES[@]}"; do
        printf '%-12s  %s\n' "${SUITES[$i]}" "${RESULTS[$i]}"
    done
    echo
    echo "c: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
    [[ $TOTAL_FAILED -eq 0 ]] && exit 0
    exit 1
}

# ---- 1. libraries and the polar-license binary ---------------------------------------------

build_libs() {
    # The crate declares staticlib and cdylib: one build makes both (and prints what a C
    # program links besides the archive).
    cargo rustc -p polar-license-c --lib --profile c-release \
        -- --print native-static-libs 2>&1 | tee "$OUT/staticlib-build.log" || return 1
    sed -n 's/.*native-static-libs: //p' "$OUT/staticlib-build.log" | tail -n 1 \
        >"$OUT/native-static-libs.txt"
    echo "native-static-libs: $(cat "$OUT/native-static-libs.txt")"
    [[ -f "$LIB_A" && -f "$LIB_SO" ]]
}

if ! step build-libs build_libs; then finish; fi
# The debug binaries: in the test command, the tests stage's build of them (built_bin, common.sh).
if ! step build-cli built_bin polar-license -p polar-license-cli; then finish; fi
CLI="$BUILT"
# The forged-record attack of issue #25 for test_signed.c (bindings/c/forge, test-only).
if ! step build-forge built_bin polar-license-forge-c -p polar-license-forge-c; then finish; fi
FORGE="$BUILT"
# The recording proxy of issue #53 for test_signed.c's replay and late-grant tests (crates/testkit).
if ! step build-tape built_bin polar-license-tape -p polar-license-testkit --bin polar-license-tape; then finish; fi
TAPE="$BUILT"

# ---- 2. header drift -----------------------------------------------------------------------

check_header() {
    local have
    have="$(cbindgen --version 2>/dev/null | awk '{print $2}')"
    if [[ "$have" != "$CBINDGEN_VERSION" ]]; then
        echo "cbindgen ${have:-missing}, need $CBINDGEN_VERSION: run scripts/setup-c.sh" >&2
        return 1
    fi
    regen_header "$OUT/polar_license.h" || return 1
    if ! diff -u "$HEADER" "$OUT/polar_license.h"; then
        echo "$HEADER is out of date: run scripts/test-c.sh --regen and commit it" >&2
        return 1
    fi
}
step header-drift check_header

# ---- 3. the emulator -----------------------------------------------------------------------

EMU_PID=""
stop_emulator() {
    if [[ -n "$EMU_PID" ]]; then
        kill "$EMU_PID" 2>/dev/null
        wait "$EMU_PID" 2>/dev/null
        EMU_PID=""
    fi
}
trap stop_emulator EXIT
trap 'stop_emulator; exit 130' INT TERM

# As Polar's API version 2027-01 (the shape the current version takes next: member,
# subscription and order in every license answer), so every C suite reads it; the Rust and CLI
# suites cover 2026-04 and 2026-10 (tests/polar_versions.rs).
"$CLI" emulator --port 0 --api-version 2027-01 >"$OUT/emulator.log" 2>&1 &
EMU_PID=$!
EMU_URL=""
for _ in $(seq 1 100); do
    EMU_URL="$(sed -n '1s/^listening on //p' "$OUT/emulator.log")"
    [[ -n "$EMU_URL" ]] && break
    sleep 0.1
done
if [[ -z "$EMU_URL" ]]; then
    echo "the emulator did not start:" >&2
    cat "$OUT/emulator.log" >&2
    record emulator 0 1
    finish
fi
echo "emulator at $EMU_URL (pid $EMU_PID)"
export POLAR_EMULATOR_URL="$EMU_URL"
export POLAR_LICENSE_CLI="$CLI"
export POLAR_LICENSE_FORGE_C="$FORGE"
export POLAR_LICENSE_TAPE="$TAPE"
# The tests never touch the user's own cache: the default location is under target/c.
export XDG_DATA_HOME="$ROOT/$OUT/xdg-data"
rm -rf "$XDG_DATA_HOME"

# ---- 4. the quick start, pkg-config, CMake, C++ (not with --only) --------------------------

if [[ ${#ONLY[@]} -eq 0 ]]; then

# run_example BINARY: licensed (exit 0), denied (exit 1), invalid input (exit 2).
run_example() {
    local bin="$1" passed=0 failed=0 out rc key want
    for pair in "$DEMO_KEY:0" "$REVOKED_KEY:1" ":2"; do
        key="${pair%:*}"
        want="${pair##*:}"
        out="$(POLAR_ORGANIZATION_ID="$DEMO_ORG" POLAR_API_URL="$EMU_URL" "$bin" "$key" 2>&1)"
        rc=$?
        if [[ $rc -eq $want ]]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "  $bin '$key': exit $rc, expected $want: $out" >&2
        fi
        echo "  $out" | tail -n 1
    done
    EXAMPLE_PASSED=$passed
    EXAMPLE_FAILED=$failed
}

if gcc "${CFLAGS[@]}" bindings/c/examples/validate.c "$LIB_A" \
    -o "$OUT/validate"; then
    run_example "$OUT/validate"
    record example "$EXAMPLE_PASSED" "$EXAMPLE_FAILED"
    strip -o "$OUT/validate.stripped" "$OUT/validate"
    echo "sizes: example stripped $(stat -c %s "$OUT/validate.stripped") bytes," \
        "libpolar_license_c.a $(stat -c %s "$LIB_A") bytes," \
        "libpolar_license_c.so $(stat -c %s "$LIB_SO") bytes"
else
    record example 0 1
fi

# The launch example (bindings/c/examples/launch.c, the README's quick start), run as a user
# would on one machine: the first launch activates and is licensed, the second only checks,
# a revoked key is denied with its reason and Polar's words. Every line reads well: no empty
# parenthesis or field, no trailing space.
launch_run() { # DATA_HOME KEY
    XDG_DATA_HOME="$1" POLAR_ORGANIZATION_ID="$DEMO_ORG" POLAR_API_URL="$EMU_URL" \
        LICENSE_KEY="$2" "$OUT/launch"
}
# lines_match OUTPUT REGEX...: OUTPUT is exactly one line per (extended, whole-line) REGEX.
lines_match() {
    local out="$1" i=0 re
    shift
    local -a got
    mapfile -t got <<<"$out"
    if [[ ${#got[@]} -eq $# ]]; then
        for re in "$@"; do
            [[ "${got[$i]}" =~ ^$re$ ]] || break
            i=$((i + 1))
        done
        [[ $i -eq $# ]] && return 0
    fi
    echo "  printed:"
    sed 's/^/    /' <<<"$out"
    return 1
}
exits_printing() { # RC WANT_RC OUTPUT REGEX...: the exit status, then lines_match
    local rc="$1" want="$2"
    shift 2
    [[ $rc -eq $want ]] || echo "  exit $rc, expected $want"
    lines_match "$@" && [[ $rc -eq $want ]]
}
reads_well() { # OUTPUT
    if grep -nE '\(\)|[[:space:]]$|: *:|:$|, *,|,$' <<<"$1"; then return 1; fi
}
# readme_is_launch: the README's quick-start block (its first C block) is launch.c's code.
readme_is_launch() {
    awk '/^```c$/ { n++; on = (n == 1); next } /^```$/ { on = 0 } on' bindings/c/README.md \
        >"$OUT/readme-quick-start.c"
    diff -u <(sed -n '/^#include <stdio.h>/,$p' bindings/c/examples/launch.c) "$OUT/readme-quick-start.c"
}
launch_example() {
    local data="$ROOT/$OUT/launch-data" first second revoked rc1 rc2 rc3
    rm -rf "$data"
    expect "launch: bindings/c/README.md's quick start is examples/launch.c" readme_is_launch
    expect "launch.c builds" gcc "${CFLAGS[@]}" bindings/c/examples/launch.c "$LIB_A" \
        -o "$OUT/launch" || return
    first="$(launch_run "$data" "$DEMO_KEY")"
    rc1=$?
    second="$(launch_run "$data" "$DEMO_KEY")"
    rc2=$?
    revoked="$(launch_run "$data" "$REVOKED_KEY")"
    rc3=$?
    printf '  first launch:  %s\n  second launch: %s\n  revoked key:   %s\n' \
        "${first//$'\n'/ | }" "${second//$'\n'/ | }" "${revoked//$'\n'/ | }"
    expect "launch: the first launch activates, then is licensed from the cache (exit 0)" \
        exits_printing "$rc1" 0 "$first" \
        'activate: done, activation [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' \
        'check: licensed \(from the cache\)'
    expect "launch: the second launch only checks (exit 0)" \
        exits_printing "$rc2" 0 "$second" 'check: licensed \(from the cache\)'
    expect "launch: a revoked key is denied online with its reason and Polar's detail (exit 1)" \
        exits_printing "$rc3" 1 "$revoked" \
        'activate: denied \(online\): inactive: License key is no longer active\..*' \
        'check: error: invalid_input: activation_id: no activation remembered on this machine: activate first'
    expect "launch: no empty parenthesis, field or trailing space" \
        reads_well "$first"$'\n'"$second"$'\n'"$revoked"
}
launch_example
record_expected quick-start
source scripts/test-c-devices.sh
devices_example
record_expected devices-example

# Installs into target/c/prefix with the user's own command (bindings/c/install.sh): header,
# libraries, the shared and the static .pc (relocatable), the CMake config.
install_prefix() {
    rm -rf "$ROOT/$OUT/prefix"
    bash bindings/c/install.sh --prefix "$ROOT/$OUT/prefix" 2>"$OUT/install.log" ||
        { cat "$OUT/install.log"; return 1; }
}

# The README's pkg-config lines as written: the shared one starts with no LD_LIBRARY_PATH (the
# .pc carries an rpath), the static one links the archive (never the .so), and both keep
# working when the prefix is moved (the .pc files are relocatable).
pkg_config_example() {
    local prefix="$ROOT/$OUT/prefix" moved="$ROOT/$OUT/prefix-moved" linked
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    echo "pkg-config --cflags --libs polar_license: $(pkg-config --cflags --libs polar_license)"
    echo "pkg-config --cflags --libs polar_license-static: $(pkg-config --cflags --libs polar_license-static)"
    gcc "${CFLAGS[@]}" bindings/c/examples/validate.c $(pkg-config --cflags --libs polar_license) \
        -o "$OUT/validate-pc-shared" || return 1
    gcc "${CFLAGS[@]}" bindings/c/examples/validate.c \
        $(pkg-config --cflags --libs polar_license-static) -o "$OUT/validate-pc-static" || return 1
    # (ldd's output is captured first: `ldd | grep -q` can fail under pipefail on SIGPIPE.)
    linked="$(env -u LD_LIBRARY_PATH ldd "$OUT/validate-pc-shared")"
    local so
    so="$(sed -n 's/.*libpolar_license\.so[.0-9]* => \([^ ]*\) .*/\1/p' <<<"$linked")"
    [[ -n "$so" && "$(realpath "$so")" == "$(realpath "$prefix/lib/libpolar_license.so")" ]] ||
        { echo "$linked"; return 1; }
    linked="$(ldd "$OUT/validate-pc-static")"
    [[ "$linked" != *libpolar_license* ]] || { echo "static links the .so: $linked"; return 1; }
    run_example "$OUT/validate-pc-shared"
    [[ $EXAMPLE_FAILED -eq 0 ]] || return 1
    run_example "$OUT/validate-pc-static"
    [[ $EXAMPLE_FAILED -eq 0 ]] || return 1
    # Moved: the .pc files find their prefix from where they are.
    rm -rf "$moved"
    cp -a "$prefix" "$moved"
    [[ "$(PKG_CONFIG_PATH="$moved/lib/pkgconfig" pkg-config --cflags polar_license-static)" == *"$moved"* ]] ||
        { echo "the .pc is not relocatable"; return 1; }
    rm -rf "$moved"
}

cmake_example() {
    local build="$OUT/cmake-build"
    rm -rf "$build"
    cmake -S bindings/c/examples/cmake -B "$build" -DCMAKE_PREFIX_PATH="$ROOT/$OUT/prefix" \
        >"$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log"; return 1; }
    cmake --build "$build" >>"$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log"; return 1; }
    run_example "$build/validate"
    [[ $EXAMPLE_FAILED -eq 0 ]]
}

if step install install_prefix; then
    step pkg-config pkg_config_example
    if command -v cmake >/dev/null 2>&1; then
        step cmake cmake_example
    else
        echo "cmake not found (scripts/setup-c.sh installs it): CMake package not tested"
        record cmake 0 1
    fi
fi

# The installed shared library: its SONAME is cargo-c's (libpolar_license.so.0.Y for 0.Y.Z),
# the build tree's has the same, and the links are libpolar_license.so -> .so.<sover> ->
# .so.X.Y.Z (a file).
VERSION="$(sed -n 's/^#define POLAR_LICENSE_VERSION "\(.*\)"/\1/p' "$HEADER")"
IFS=. read -r V_MAJOR V_MINOR V_PATCH <<<"$VERSION"
if [[ "$V_MAJOR" == 0 && "$V_MINOR" == 0 ]]; then SOVER="0.0.$V_PATCH"
elif [[ "$V_MAJOR" == 0 ]]; then SOVER="0.$V_MINOR"
else SOVER="$V_MAJOR"; fi
SONAME="libpolar_license.so.$SOVER"
soname_of() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
has_soname() { # FILE: its SONAME is $SONAME
    local got
    got="$(soname_of "$1")"
    echo "  $1: SONAME ${got:-(none)}"
    [[ "$got" == "$SONAME" ]]
}
link_chain() { # LIBDIR
    local l="$1"
    echo "  $(cd "$l" && ls -l libpolar_license.so* | awk '{ $1 = $2 = $3 = $4 = $5 = $6 = $7 = $8 = ""; print }')"
    [[ -L "$l/libpolar_license.so" && "$(readlink "$l/libpolar_license.so")" == "$SONAME" &&
        -L "$l/$SONAME" && "$(readlink "$l/$SONAME")" == "libpolar_license.so.$VERSION" &&
        -f "$l/libpolar_license.so.$VERSION" && ! -L "$l/libpolar_license.so.$VERSION" ]]
}
soname_checks() {
    local lib="$ROOT/$OUT/prefix/lib"
    expect "soname: the build tree's libpolar_license_c.so is $SONAME" has_soname "$LIB_SO"
    expect "soname: the installed libpolar_license.so.$VERSION is $SONAME" \
        has_soname "$lib/libpolar_license.so.$VERSION"
    expect "soname: libpolar_license.so -> $SONAME -> libpolar_license.so.$VERSION" link_chain "$lib"
}

# A C++ app built with CMake against the installed package (bindings/c/tests/cmake-app,
# polar_license::polar_license), installed with `cmake --install` into a directory of its
# own (the shared variant with the library and its SONAME link beside it, rpath `$ORIGIN`),
# copied elsewhere; then the package it was built against and its build are removed, and the
# copy must run (it validates the demo key on the emulator).
ship_build() { # VARIANT PACKAGE BUILD DIST
    local opt=OFF
    [[ "$1" == shared ]] && opt=ON
    { cmake -S bindings/c/tests/cmake-app -B "$3" -DCMAKE_PREFIX_PATH="$2" \
        -DPOLAR_LICENSE_USE_SHARED="$opt" && cmake --build "$3" && cmake --install "$3" --prefix "$4"
    } >"$OUT/ship-$1.log" 2>&1 || { tail -n 30 "$OUT/ship-$1.log"; return 1; }
}
dynamic_of() { readelf -d "$1" | grep -E '\((NEEDED|RPATH|RUNPATH)\)'; }
shared_names() { # APP: needs the SONAME, finds it through $ORIGIN alone, names no path
    local dyn
    dyn="$(dynamic_of "$1")"
    sed 's/^ */  /' <<<"$dyn"
    grep -q "(NEEDED).*\[$SONAME\]" <<<"$dyn" &&
        grep -q '(RUNPATH).*\[\$ORIGIN\]$' <<<"$dyn" &&
        ! grep -q '/' <<<"$dyn"
}
static_names() { # APP: no libpolar_license in its dynamic section
    local dyn
    dyn="$(dynamic_of "$1")"
    sed 's/^ */  /' <<<"$dyn"
    ! grep -q 'libpolar_license' <<<"$dyn"
}
resolves_beside() { # APP: the dynamic loader finds the library in the app's directory
    local linked so
    linked="$(env -u LD_LIBRARY_PATH ldd "$1")"
    so="$(sed -n "s/.*$SONAME => \([^ ]*\) .*/\1/p" <<<"$linked")"
    echo "  $SONAME => ${so:-not found}"
    [[ -n "$so" && "$(dirname "$so")" == "$(dirname "$1")" ]]
}
library_beside() { # DIR: the library and its SONAME link
    ls -l "$1" | sed -n 's/^.* \(libpolar_license.*\)/  \1/p'
    [[ -L "$1/$SONAME" && "$(readlink "$1/$SONAME")" == "libpolar_license.so.$VERSION" &&
        -f "$1/libpolar_license.so.$VERSION" ]]
}
runs() { # APP
    local out
    out="$(env -u LD_LIBRARY_PATH "$1" 2>&1)" || { echo "$out"; return 1; }
    echo "  $out"
}
cmake_ship() { # VARIANT
    local v="$1" pkg="$ROOT/$OUT/ship-package" build="$ROOT/$OUT/ship-$1-build"
    local dist="$ROOT/$OUT/ship-$1-dist" copy="$ROOT/$OUT/shipped-$1/app-dir"
    rm -rf "$pkg" "$build" "$dist" "${copy%/*}"
    cp -a "$ROOT/$OUT/prefix" "$pkg"
    expect "cmake $v: a C++ app builds against the installed package and installs" \
        ship_build "$v" "$pkg" "$build" "$dist" || return
    if [[ "$v" == shared ]]; then
        expect "cmake shared: the app needs $SONAME through RUNPATH \$ORIGIN, no absolute path" \
            shared_names "$dist/app"
        expect "cmake shared: installed beside the app: $SONAME -> libpolar_license.so.$VERSION" \
            library_beside "$dist"
    else
        expect "cmake static: the app needs no libpolar_license" static_names "$dist/app"
    fi
    mkdir -p "${copy%/*}"
    cp -a "$dist" "$copy"
    rm -rf "$pkg" "$build" "$dist"
    [[ "$v" == shared ]] && expect "cmake shared: the copy loads the library beside it" \
        resolves_beside "$copy/app"
    expect "cmake $v: the copy runs with the package and the build removed" runs "$copy/app"
}

if [[ -d "$ROOT/$OUT/prefix/lib" ]]; then
    soname_checks
    record_expected soname
    if command -v cmake >/dev/null 2>&1; then
        cmake_ship shared
        cmake_ship static
        record_expected cmake-ship
    fi
fi

# The C programs of bindings/c/README.md (the quick start, feature gating, the background
# check; not the fragments), each compiled and
# run as written with the demo key, twice on one cache (the platform default, under its own
# XDG_DATA_HOME): both runs must exit 0, and the quick start (block 1) must activate on the
# first run only.
run_readme() { # BINARY DATA_HOME
    XDG_DATA_HOME="$2" POLAR_ORGANIZATION_ID="$DEMO_ORG" POLAR_API_URL="$EMU_URL" \
        LICENSE_KEY="$DEMO_KEY" "$1"
}
readme_examples() {
    local src n=0 data first second
    rm -f "$OUT"/readme_example_*.c
    # (A block marked `<!-- not-run: a fragment … -->` is calls in context, not a program.)
    awk -v out="$OUT/readme_example_" '/^```c$/ { if (mark ~ /not-run: a fragment/) { skip = 1; next }
        on = 1; n++; next } /^```$/ { on = 0; skip = 0; next } skip { next }
        on { print > (out n ".c"); next } NF { mark = $0 }' bindings/c/README.md
    for src in "$OUT"/readme_example_*.c; do
        [[ -s "$src" ]] || return 1
        echo "  ${src##*/}"
        gcc "${CFLAGS[@]}" "$src" "$LIB_A" -o "${src%.c}" || return 1
        data="$XDG_DATA_HOME/${src##*/}"
        first="$(run_readme "${src%.c}" "$data")" || { echo "$first"; return 1; }
        second="$(run_readme "${src%.c}" "$data")" || { echo "$second"; return 1; }
        printf '    first run:  %s\n    second run: %s\n' "${first//$'\n'/ | }" "${second//$'\n'/ | }"
        reads_well "$first"$'\n'"$second" ||
            { echo "    an empty parenthesis, field or a trailing space"; return 1; }
        if [[ "${src##*/}" == readme_example_1.c ]]; then
            grep -q '^activate: done' <<<"$first" || { echo "    the first run did not activate"; return 1; }
            ! grep -q '^activate:' <<<"$second" || { echo "    the second run activated again"; return 1; }
        fi
        n=$((n + 1))
    done
    [[ $n -ge 2 ]]
}
step readme readme_examples

cpp_smoke() {
    g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Ibindings/c/include \
        bindings/c/tests/smoke.cpp "$LIB_A" -o "$OUT/smoke_cpp" || return 1
    "$OUT/smoke_cpp"
}
step cpp-smoke cpp_smoke
fi

# ---- 5. the C tests: plain, ASan+UBSan, valgrind -------------------------------------------

TESTS=()
for src in bindings/c/tests/test_*.c; do
    TESTS+=("$(basename "$src" .c)")
done
[[ ${#ONLY[@]} -eq 0 ]] || TESTS=("${ONLY[@]}")
# The seller's rows (tests/vectors/seller-rows.json) flattened for test_seller_table.c, each
# expected verdict rendered as every face renders it (tests/js/seller-rows.mjs).
export POLAR_SELLER_ROWS="$ROOT/$OUT/seller-rows.tsv"
node tests/js/seller-rows.mjs --flat >"$POLAR_SELLER_ROWS" || echo "seller rows: could not flatten the table" >&2
# The values rows (issue #68) start tests/js/values-world.mjs from the checkout.
export POLAR_SELLER_ROOT="$ROOT"

# run_suite NAME VARIANT: builds every test program for VARIANT (plain, asan) and runs it
# (under valgrind for the valgrind suite); sums the programs' `N passed, N failed` lines.
run_suite() {
    local suite="$1" variant="$2" passed=0 failed=0 t bin log rc line p f checks
    local flags=("${CFLAGS[@]}")
    [[ "$variant" == asan ]] && flags+=("${SANITIZE[@]}")
    # Where test_faults.c writes the fault-matrix rows of this run.
    local matrix=c
    [[ "$suite" == c-plain ]] || matrix="$suite"
    export POLAR_FAULT_MATRIX_OUT="$ROOT/target/fault-matrix/$matrix.tsv"
    # Where test_seller_table.c writes the seller's rows of this run (scripts/seller-table.sh).
    export POLAR_SELLER_TABLE_OUT="$ROOT/target/seller-table/$matrix.tsv"
    for t in "${TESTS[@]}"; do
        bin="$OUT/$t-$variant"
        log="$OUT/$t-$suite.log"
        if [[ ! -x "$bin" || "$suite" != c-valgrind ]]; then  # valgrind reuses the plain build
            if ! gcc "${flags[@]}" "bindings/c/tests/$t.c" bindings/c/tests/harness.c \
                "$LIB_A" -o "$bin"; then
                echo "  $t: does not build" >&2
                failed=$((failed + 1))
                continue
            fi
        fi
        case "$suite" in
            c-valgrind) POLAR_SELLER_VALUES=0 "${VALGRIND[@]}" "$bin" >"$log" 2>&1 ;;
            c-asan) ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                "$bin" >"$log" 2>&1 ;;
            *) "$bin" >"$log" 2>&1 ;;
        esac
        rc=$?
        line="$(grep -E "^$t: [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n 1)"
        p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"
        f="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")"
        [[ -n "$line" ]] || { p=0; f=0; }
        # How many checks the program made (the harness's count, passed or failed).
        checks="$(sed -n "s/^$t: \([0-9]*\) checks$/\1/p" "$log" | tail -n 1)"
        # A crash, a sanitizer report or a valgrind error fails the program as a whole.
        if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
        if [[ $rc -ne 0 ]]; then
            echo "  $t ($suite): exit $rc; log $log:" >&2
            grep -v '^ok - ' "$log" | tail -n 40 >&2
        fi
        echo "  $t ($suite): ${p} passed, ${f} failed (${checks:-no} checks)"
        passed=$((passed + p))
        failed=$((failed + f))
    done
    record "$suite" "$passed" "$failed"
}

run_suite c-plain plain
run_suite c-asan asan
run_suite c-valgrind plain

finish
