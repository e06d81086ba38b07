#!/usr/bin/env bash
# Builds the npm package `polar-license` into target/npm/pkg/ and packs it into target/npm/:
#
#   1. cargo: the library as a cdylib for wasm32-unknown-unknown, release, opt-level "z",
#      feature `npm` (the talc allocator) (`[lib] crate-type` stays rlib-only;
#      `cargo rustc --crate-type cdylib` builds it on demand)
#   2. wasm-bindgen (the CLI pinned to the crate's exact version), `--target web`
#   3. wasm-opt -Oz from scripts/npm (npm `binaryen`; never Debian's, which breaks in Chrome)
#   4. pkg-template/ copied beside it, the version filled in from Cargo.toml
#   5. npm pack -> target/npm/polar-license-<version>.tgz
#
# Nothing generated is ever written into the source tree. Run scripts/setup-wasm.sh first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/npm"
PKG="$OUT/pkg"
WASM_OPT="$ROOT/scripts/npm/node_modules/.bin/wasm-opt"

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
want_bindgen="$(sed -n 's/^wasm-bindgen *= *"=\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)"
have_bindgen="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
if [[ "$have_bindgen" != "$want_bindgen" ]]; then
    echo "build-npm: wasm-bindgen $want_bindgen needed, found '${have_bindgen:-none}': run scripts/setup-wasm.sh" >&2
    exit 1
fi
if [[ ! -x "$WASM_OPT" ]]; then
    echo "build-npm: $WASM_OPT missing: run scripts/setup-wasm.sh" >&2
    exit 1
fi

echo "==> cargo (wasm32-unknown-unknown, release, opt-level z)"
# opt-level z only for this build (the native release profile keeps opt-level 3);
# panic is already abort on wasm32-unknown-unknown.
CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
    cargo rustc --lib --release --target wasm32-unknown-unknown --crate-type cdylib --features npm
RAW="$TARGET_DIR/wasm32-unknown-unknown/release/polar_license.wasm"

echo "==> wasm-bindgen $have_bindgen (--target web)"
rm -rf "$PKG"
mkdir -p "$PKG"
wasm-bindgen "$RAW" --out-dir "$PKG" --out-name polar_license --target web \
    --no-typescript --omit-default-module-path

echo "==> wasm-opt -Oz ($("$WASM_OPT" --version))"
# The features Rust enables by default for wasm32-unknown-unknown (every browser since 2021).
"$WASM_OPT" -Oz --strip-debug --strip-producers \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    "$PKG/polar_license_bg.wasm" -o "$PKG/polar_license_bg.wasm.opt"
mv "$PKG/polar_license_bg.wasm.opt" "$PKG/polar_license_bg.wasm"

echo "==> package template"
for f in pkg-template/*; do
    cp "$f" "$PKG/"
done
sed -i "s/\"version\": \"0.0.0-template\"/\"version\": \"$version\"/" "$PKG/package.json"
cp LICENSE-APACHE LICENSE-MIT "$PKG/"

echo "==> npm pack"
rm -f "$OUT"/polar-license-*.tgz
(cd "$PKG" && npm pack --pack-destination "$OUT" --silent >/dev/null)
tarball="$(ls "$OUT"/polar-license-*.tgz)"
ls -l "$PKG"
echo "build-npm: $tarball ($(wc -c <"$tarball") bytes)"
