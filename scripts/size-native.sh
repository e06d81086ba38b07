#!/usr/bin/env bash
# Sizes of the native artifacts (issue #6), as a markdown table with the commands run:
#
# * the release `polar-license` binary (as built, and stripped);
# * the static library (`cargo rustc -p polar-license-c --lib --profile c-release`);
# * bindings/c/examples/validate.c (target <= 2 MB) and launch.c (the README's quick start),
#   each linked against the static library, stripped.
#
#   scripts/size-native.sh
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
LOG_DIR="$TARGET_DIR/bench-logs"
OUT="$TARGET_DIR/size"
mkdir -p "$LOG_DIR" "$OUT"
CC="${CC:-cc}"
failed=0
ROWS=()

size_of() { stat -c %s "$1"; }
human() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.2f MB", b / 1048576; else printf "%.1f KB", b / 1024 }'; }
run() { # LOG CMD...: runs, logs, prints the tail on failure
    local log="$1"
    shift
    echo "==> $*"
    if ! "$@" >"$LOG_DIR/$log" 2>&1; then
        tail -n 20 "$LOG_DIR/$log"
        return 1
    fi
}
row() { ROWS+=("| $1 | $2 | $3 | $4 | \`$5\` |"); }

# The CLI binary.
build_cli=(cargo build --release -p polar-license-cli)
if run size-cli.log "${build_cli[@]}"; then
    bin="$TARGET_DIR/release/polar-license"
    cp "$bin" "$OUT/polar-license.stripped"
    strip "$OUT/polar-license.stripped"
    row "\`polar-license\` (release, as built: strip = \"debuginfo\")" "$(human "$(size_of "$bin")")" "$(size_of "$bin")" "" "${build_cli[*]}"
    row "\`polar-license\` stripped" "$(human "$(size_of "$OUT/polar-license.stripped")")" "$(size_of "$OUT/polar-license.stripped")" "" "strip $bin"
else
    failed=1
fi

# The static library.
build_lib=(cargo rustc -p polar-license-c --lib --profile c-release -- --print native-static-libs)
if run size-staticlib.log "${build_lib[@]}"; then
    lib="$TARGET_DIR/c-release/libpolar_license_c.a"
    row "\`libpolar_license_c.a\` (polar-license-c, staticlib)" "$(human "$(size_of "$lib")")" "$(size_of "$lib")" "" "${build_lib[*]}"
    native_libs="$(sed -n 's/.*native-static-libs: //p' "$LOG_DIR/size-staticlib.log" | tail -n 1)"

    # validate.c, the smallest whole program (the 2 MB target), and launch.c, the README's
    # quick start (activate once, then check; measured, no target).
    for name in validate launch; do
        example="bindings/c/examples/$name.c"
        if [[ ! -f "$example" ]]; then
            ROWS+=("| C example | not built: $example does not exist | | | |")
            continue
        fi
        exe="$OUT/$name"
        # shellcheck disable=SC2086 # native_libs is a list of -l flags
        link=("$CC" -Os -ffunction-sections -fdata-sections -Ibindings/c/include "$example" "$lib"
            -Wl,--gc-sections $native_libs -o "$exe")
        if run "size-c-$name.log" "${link[@]}"; then
            strip "$exe"
            s="$(size_of "$exe")"
            verdict=""
            if [[ "$name" == validate ]]; then
                verdict="<= 2 MB: $(awk -v b="$s" 'BEGIN { if (b <= 2 * 1048576) print "pass"; else printf "miss (%.2fx)", b / 2097152 }')"
            fi
            row "C example \`$name\`, linked + stripped" "$(human "$s")" "$s" "$verdict" "${link[*]} && strip $exe"
        else
            failed=1
        fi
    done
else
    failed=1
fi

echo
echo "### native sizes ($(uname -m), $(rustc --version))"
echo
echo "| artifact | size | bytes | target | command |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit "$failed"
