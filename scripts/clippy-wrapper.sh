#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER for the test builds that lint as they compile: the tests stage's
# (scripts/test.sh, the default run: its clippy row) and scripts/test-windows.sh's. Cargo runs it
# as `clippy-wrapper.sh RUSTC ARGS...` for each crate of the workspace it compiles. Clippy's
# driver (CLIPPY_DRIVER) compiles them, so that the build lints them as `cargo clippy` would, in
# the one pass over the dependencies the tests need anyway (the crates from crates.io are
# compiled by rustc, as cargo clippy leaves them).
#
# But not the C ABI (polar_license_c; RUSTC_ONLY: crate names, space-separated), the one crate
# with unsafe code: clippy-driver's builds carry no runtime check of a misaligned or null
# pointer's dereference, which rustc's debug builds do (a misaligned read panics built by rustc
# and reads on built by clippy-driver), and its unit tests keep them. With CLIPPY_RUSTC_ONLY=lint
# (the tests stage: no other default-run stage lints the C ABI on Linux) such a crate is linted
# first, clippy-driver writing its metadata only into a scratch directory (its own check of this
# one crate, a few seconds; no artifact notice, so cargo waits for the real build's), then
# compiled by rustc with its lints capped, so each warning is printed once. Without it (the
# Windows stage: no cfg by OS in bindings/c/src, so no line of its own for Windows to lint), it
# is compiled by rustc alone.
rustc="$1"
shift
rustc_only=0
for arg in "$@"; do
    for crate in ${RUSTC_ONLY-polar_license_c}; do
        [[ "$arg" == "$crate" ]] && rustc_only=1
    done
done
driver="${CLIPPY_DRIVER:?CLIPPY_DRIVER: the path of clippy-driver}"

# RUSTDOC_CRATE (a crate name; scripts/test-tauri.sh: the plugin's): its library, once compiled,
# is documented too, by rustdoc with the same sources, cfgs, editions and dependencies (the
# build's own rlibs: `cargo doc` would check every dependency once more, in a mode of its own),
# warnings denied, into the build's doc directory. Its output and status go to
# RUSTDOC_CRATE's `.rustdoc` files there (a failure fails the caller's doc check, not the build).
rustdoc_too() {
    local a next="" out="" args=() doc
    for a in "$@"; do
        case "$next" in
            keep) args+=("$a"); next=""; continue ;;
            out) out="$a"; next=""; continue ;;
            skip) next=""; continue ;;
        esac
        case "$a" in
            --crate-name | --edition | --crate-type | --cfg | --check-cfg | -L | --extern | \
                --cap-lints | -W | -A | -D | -F | --warn | --allow | --deny | --forbid | --target)
                args+=("$a"); next=keep ;;
            --out-dir) next=out ;;
            --out-dir=*) out="${a#--out-dir=}" ;;
            -C | -l | --emit | --error-format | --json | --diagnostic-width | -o | -Z | --remap-path-prefix) next=skip ;;
            --edition=* | --crate-type=* | --cap-lints=* | -L?* | -W?* | -A?* | -D?* | -F?* | --warn=* | \
                --allow=* | --deny=* | --forbid=* | --target=*) args+=("$a") ;;
            -*) ;;
            *.rs) args+=("$a") ;;
        esac
    done
    doc="${out%/deps}"
    doc="${doc%/*}/doc"
    mkdir -p "$doc"
    local log="$doc/.$RUSTDOC_CRATE.rustdoc"
    if "$(dirname "$(command -v "$rustc")")/rustdoc" "${args[@]}" -o "$doc" \
        --crate-version "${CARGO_PKG_VERSION:-0.0.0}" -D warnings >"$log.log" 2>&1; then
        echo 0 >"$log.status"
    else
        echo 1 >"$log.status"
    fi
}
if [[ -n "${RUSTDOC_CRATE:-}" ]]; then
    lib_of_it=0
    prev=""
    for arg in "$@"; do
        [[ "$prev" == --crate-name && "$arg" == "$RUSTDOC_CRATE" ]] && lib_of_it=1
        [[ "$arg" == --test ]] && lib_of_it=0 && break
        prev="$arg"
    done
    # (A build script is compiled as `build_script_build`: only the library matches.)
    if [[ $lib_of_it == 1 ]] && printf '%s\n' "$@" | grep -qx lib; then
        "$driver" "$rustc" "$@" || exit
        rustdoc_too "$@"
        exit 0
    fi
fi
# PRINT_NATIVE_STATIC_LIBS (a crate name; scripts/test-windows.sh: the C ABI's): when the
# build compiles that crate as a static library, rustc prints the native libraries a C program
# links it with (`native-static-libs: ...`), as `cargo rustc -- --print native-static-libs`
# would, but in a build of the caller's packages and features: `cargo rustc` takes one
# package, and with that package's features alone the dependencies compile once more.
if [[ -n "${PRINT_NATIVE_STATIC_LIBS:-}" ]]; then
    prev=""
    named=0
    staticlib=0
    for arg in "$@"; do
        [[ "$prev" == --crate-name && "$arg" == "$PRINT_NATIVE_STATIC_LIBS" ]] && named=1
        [[ "$prev" == --crate-type && "$arg" == staticlib ]] && staticlib=1
        prev="$arg"
    done
    [[ $named == 1 && $staticlib == 1 ]] && set -- "$@" --print native-static-libs
fi
[[ $rustc_only == 1 ]] || exec "$driver" "$rustc" "$@"
[[ "${CLIPPY_RUSTC_ONLY:-}" == lint ]] || exec "$rustc" "$@"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
args=()
next=""
for arg in "$@"; do
    case "$next" in
        out) args+=("$scratch"); next=""; continue ;;
        codegen)
            next=""
            # No incremental session shared with the real build.
            [[ "$arg" == incremental=* ]] || args+=(-C "$arg")
            continue
            ;;
    esac
    case "$arg" in
        --out-dir) args+=("$arg"); next=out ;;
        --out-dir=*) args+=("--out-dir=$scratch") ;;
        -C) next=codegen ;;
        -Cincremental=*) ;;
        --emit=*) args+=(--emit=metadata) ;;
        # Cargo's `artifacts` notice would tell it the scratch metadata is the crate's.
        --json=*) args+=("$(sed -E 's/(^--json=|,)artifacts(,|$)/\1\2/; s/,,/,/; s/=,/=/; s/,$//' <<<"$arg")") ;;
        *) args+=("$arg") ;;
    esac
done
"$driver" "$rustc" "${args[@]}" || exit
exec "$rustc" "$@" --cap-lints=allow
