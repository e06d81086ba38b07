#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER for scripts/test-windows.sh's test build: cargo runs it as
# `clippy-wrapper.sh RUSTC ARGS...` for each crate of the workspace it compiles. Clippy's driver
# (CLIPPY_DRIVER) compiles them, so that the build lints them as `cargo clippy` would, in the
# one pass over the dependencies the tests need anyway; but not the C ABI (polar_license_c,
# RUSTC_ONLY: crate names, space-separated), the one crate with unsafe code: clippy-driver's
# builds carry no runtime check of a misaligned or null pointer's dereference, which rustc's
# debug builds do (a misaligned read panics built by rustc and reads on built by
# clippy-driver), and its unit tests under wine keep them. It has no line of its own for
# Windows to lint (no cfg by OS in bindings/c/src): its lints are the Linux clippy stage's.
rustc="$1"
shift
for arg in "$@"; do
    for crate in ${RUSTC_ONLY:-polar_license_c}; do
        [[ "$arg" == "$crate" ]] && exec "$rustc" "$@"
    done
done
exec "${CLIPPY_DRIVER:?CLIPPY_DRIVER: the path of clippy-driver}" "$rustc" "$@"
