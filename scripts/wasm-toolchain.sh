# How the npm package's wasm is compiled; sourced by scripts/build-npm.sh (the package),
# scripts/size-floor.sh (its probes, built the same way) and scripts/setup-wasm.sh (installs it),
# each with ROOT set to the repository's root.
#
# A pinned nightly, only for this one artifact (the crate itself builds on stable for every
# target, wasm32 included; the tests' wasm builds and clippy use stable): std rebuilt with the
# package (`-Zbuild-std`, at the package's opt-level "z", with std's `optimize_for_size`
# choices) and panics compiled to a bare trap (`-Cpanic=immediate-abort`), so no panic message
# machinery is linked. Panics on wasm32-unknown-unknown already aborted (a trap, no unwinding,
# and no panic hook is installed, so the message went nowhere; library code has no
# unwrap/expect/panic): behaviour is unchanged, the wasm 7.5 KB smaller
# gzipped (121.1 -> 113.6 KB, measured with this nightly on 2026-11-23). A pinned date, so a
# newer nightly never changes the shipped bytes or the flags' spelling under us.
#
# `-Ctarget-feature=-reference-types`: wasm-bindgen then keeps the JS values a module holds in
# its glue's own array (the classic way) instead of a wasm `externref` table, which takes a
# shim around each export, the table's allocator and its calls out of every module: the npm
# default entry 365 B smaller gzipped (the inline entry 238 B, the relay's wasm 757 B; measured
# on 2026-11-26 with scripts/build-npm.sh and scripts/size.sh, docs/performance.md). The JS
# API and what crosses it are the same; one wasm feature fewer is asked of the host.
WASM_TOOLCHAIN="nightly-2026-05-19"
WASM_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Ctarget-feature=-reference-types"
WASM_BUILD_STD=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)

# The wasm-bindgen crate version pinned in Cargo.toml (`wasm-bindgen = "=X.Y.Z"`), without the
# `=`: the CLI's schema must match it exactly.
wasm_bindgen_version() {
    sed -n 's/^wasm-bindgen *= *"=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1
}

# What packing needs from npm (binaryen's wasm-opt, @gfx/zopfli, esbuild): scripts/pack, which
# scripts/setup-pack.sh installs alone; the tests' scripts/npm holds the same versions, used when
# scripts/pack is not installed.
PACK_NPM_DIR="$ROOT/scripts/pack"
if [[ -x "$PACK_NPM_DIR/node_modules/.bin/wasm-opt" ]]; then
    PACK_MODULES="$PACK_NPM_DIR/node_modules"
else
    PACK_MODULES="$ROOT/scripts/npm/node_modules"
fi
WASM_OPT="$PACK_MODULES/.bin/wasm-opt"

# need_wasm_opt WHO: exits 1 (WHO saying what to run) when WASM_OPT is not installed.
need_wasm_opt() {
    if [[ ! -x "$WASM_OPT" ]]; then
        echo "$1: $WASM_OPT missing: run scripts/setup-pack.sh" >&2
        exit 1
    fi
}
