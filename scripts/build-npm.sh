#!/usr/bin/env bash
# Builds the npm package `polar-license` into target/npm/pkg/ and packs it into target/npm/:
#
#   1. cargo: the npm engine (the crate polar-license-wasm, bindings/wasm: a cdylib with its
#      own allocator) for wasm32-unknown-unknown, release, opt-level "z", with the pinned nightly, std
#      rebuilt and panics as bare traps (scripts/wasm-toolchain.sh says why), in its own
#      target directory (target/npm-wasm: the stable wasm builds of the tests keep theirs)
#   2. wasm-bindgen (the CLI pinned to the crate's exact version), `--target web`
#   3. wasm-opt -Oz from scripts/pack (npm `binaryen`; never Debian's, which breaks in Chrome);
#      the engine's imports and exports then renamed short in it and its glue (short-names.mjs)
#   4. polar_license_inline.js: the same wasm gzipped (zopfli), as base64 text (`polar-license/inline`)
#   5. the local Polar of `polar-license/emulator` (the crate polar-license-emulator-wasm,
#      bindings/emulator-wasm): steps 1 to 3 again into polar_license_emulator{.js,_bg.wasm}, a
#      wasm of its own that only emulator.js loads (the default entry's does not change)
#   6. the seller's relay of `polar-license/relay` (the crate polar-license-relay-wasm,
#      bindings/relay-wasm): steps 1 to 3 into polar_license_relay{.js,_bg.wasm}, loaded only
#      by the relay entries
#   7. signed mode's add-on (the crate polar-license-ed25519-wasm, bindings/ed25519-wasm: Ed25519
#      for hosts whose WebCrypto has none): steps 1 to 3 into polar_license_ed25519{.js,_bg.wasm},
#      loaded by the default entries on a client's first lease only where the host cannot verify;
#      then the local trial's add-on (the crate polar-license-trial-wasm, bindings/trial-wasm:
#      the core's trial step) into polar_license_trial{.js,_bg.wasm}, loaded by the default
#      entries only for a client with `trial` on a check with no key and none remembered
#      (then the devices module's and the seat module's, polar_license_devices and
#      polar_license_seat, loaded only by polar-license/devices and polar-license/seat)
#   8. pkg-template/ copied beside it, the version filled in from Cargo.toml, the reason table
#      written into license.js and commonjs.cjs from the core's (scripts/npm/reasons.mjs), and
#      why a key stopped's sentences into polar_license_stopped.js from the core's
#      (scripts/npm/stopped.mjs, through bindings/stopped-wasm, built for the pack and never
#      shipped), imported by license.js only for a denial that carries why
#   9. the default entries (browser.js, node.js) bundled, one module each (esbuild); the
#      modules as they were also in target/npm/parts (tests, benchmarks; never packed); then
#      devices.js, seat.js and usage.js, each with drive.js (the package's one drive loop, the
#      loader and sender they share) inside
#  10. npm pack -> target/npm/polar-license-<version>.tgz
#
# Nothing generated is ever written into the source tree. Run scripts/setup-pack.sh first (what
# packing needs, alone: the wasm32 target, the pinned nightly, the wasm-bindgen CLI, scripts/pack's
# wasm-opt, zopfli and esbuild); the tests' scripts/setup-wasm.sh runs it too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/wasm-toolchain.sh
source "$ROOT/scripts/wasm-toolchain.sh"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/npm-wasm"
OUT="$ROOT/target/npm"
PKG="$OUT/pkg"

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
want_bindgen="$(wasm_bindgen_version)"
have_bindgen="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
if [[ "$have_bindgen" != "$want_bindgen" ]]; then
    echo "build-npm: wasm-bindgen $want_bindgen needed, found '${have_bindgen:-none}': run scripts/setup-pack.sh" >&2
    exit 1
fi
if ! rustup run "$WASM_TOOLCHAIN" rustc --print sysroot >/dev/null 2>&1 ||
    [[ ! -d "$(rustup run "$WASM_TOOLCHAIN" rustc --print sysroot)/lib/rustlib/src/rust/library" ]]; then
    echo "build-npm: the $WASM_TOOLCHAIN toolchain with rust-src is needed: run scripts/setup-pack.sh" >&2
    exit 1
fi
need_wasm_opt build-npm
if [[ ! -f "$PACK_MODULES/@gfx/zopfli/package.json" ]]; then
    echo "build-npm: $PACK_MODULES/@gfx/zopfli missing: run scripts/setup-pack.sh" >&2
    exit 1
fi

# What wasm-opt -Oz and zopfli made, kept by what they were made from (the input's bytes, the
# tool's version, its flags) in $TARGET_DIR/made: a pack of unchanged code (the docs stage's
# `bash scripts/build-npm.sh` after the wasm stage's) takes them instead of spending a minute
# remaking the same bytes (both tools are deterministic). Entries this pack did not use are
# removed at its end.
MADE="$TARGET_DIR/made"
mkdir -p "$MADE"
PACK_STARTED="$MADE/.started"
touch "$PACK_STARTED"
# reused INPUT WHAT...: the path where the output for INPUT's bytes and WHAT is kept (it exists
# when an earlier pack made it; then it counts as used by this one).
reused() {
    local input="$1" key
    shift
    key="$({ printf '%s\n' "$@"; cat "$input"; } | sha256sum | cut -d ' ' -f 1)"
    [[ -f "$MADE/$key" ]] && touch "$MADE/$key"
    echo "$MADE/$key"
}
# keep FILE PATH: FILE's bytes kept at PATH (written whole, then renamed into place).
keep() {
    cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
}

# wasm_module CRATE NAME [WASM_OPT_FLAGS...]: CRATE built for wasm32 in a cargo run of its own
# (crates built together share unified dependency features, and one module could change
# another), then wasm-bindgen (`--target web`) and wasm-opt -Oz (with WASM_OPT_FLAGS) into
# $PKG/NAME.js and $PKG/NAME_bg.wasm.
wasm_module() {
    local crate="$1" name="$2"
    shift 2
    echo "==> cargo +$WASM_TOOLCHAIN -p $crate (wasm32-unknown-unknown, release, opt-level z, std rebuilt, panic immediate-abort)"
    # opt-level z only for this build (the native release profile keeps opt-level 3). LTO and one
    # codegen unit as Cargo.toml's release profile says, whatever the caller's environment
    # overrides (the docs stage's runs skip LTO for native builds): the shipped bytes never
    # depend on who packs them.
    CARGO_TARGET_DIR="$TARGET_DIR" CARGO_PROFILE_RELEASE_OPT_LEVEL=z RUSTFLAGS="$WASM_RUSTFLAGS" \
        CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
        cargo "+$WASM_TOOLCHAIN" build "${WASM_BUILD_STD[@]}" -p "$crate" --lib --release \
        --target wasm32-unknown-unknown
    echo "==> wasm-bindgen $have_bindgen (--target web), wasm-opt -Oz ($("$WASM_OPT" --version)): $name"
    # --encode-into always: no stand-in for TextEncoder's encodeInto in the glue; every host
    # that runs license.js (its #private methods: Safari 15, Chrome 84, node 14.6) has it
    # (Safari 14.1, Chrome 74, node 12). About 50 B of each glue gzipped.
    wasm-bindgen "$TARGET_DIR/wasm32-unknown-unknown/release/${crate//-/_}.wasm" --out-dir "$PKG" \
        --out-name "$name" --target web --no-typescript --omit-default-module-path \
        --encode-into always
    # The features Rust enables by default for wasm32-unknown-unknown (every browser since 2021).
    local flags=(-Oz "$@" --strip-debug --strip-producers
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
        --enable-mutable-globals --enable-multivalue --enable-reference-types)
    local made
    made="$(reused "$PKG/${name}_bg.wasm" "$("$WASM_OPT" --version)" "${flags[@]}")"
    if [[ -f "$made" ]]; then
        echo "    (wasm-opt's output for these bytes and flags, kept from an earlier pack)"
        cp "$made" "$PKG/${name}_bg.wasm"
        return
    fi
    "$WASM_OPT" "${flags[@]}" "$PKG/${name}_bg.wasm" -o "$PKG/${name}_bg.wasm.opt"
    keep "$PKG/${name}_bg.wasm.opt" "$made"
    mv "$PKG/${name}_bg.wasm.opt" "$PKG/${name}_bg.wasm"
}

rm -rf "$PKG"
mkdir -p "$PKG"
# A function with one caller stays a function of its own unless it is tiny: V8 compiles each
# wasm function on its first call, and the engine's steps (one caller each, the dispatch) would
# otherwise be inlined back into one body that a cached check compiles whole (issue #38:
# +0.6 KB gzipped, 1.2 ms less before node's first answer).
# --converge: -Oz's passes again until the module stops shrinking (about -120 B gzipped).
# --low-memory-unused: loads and stores may fold a constant into their offset, sound when
# nothing lives in the first KB of memory: Rust's wasm32 links the stack first (1 MB from 0,
# growing down; the data above it), so only a stack 1023 KB deep would reach it (about -390 B).
# Both together: 169,757 -> 168,628 B, 77,607 -> 77,101 B gzipped (measured 2026-11-26). The
# other modules keep plain -Oz: the relay's, the largest, would take twice as long for 0.7 KB
# of a server-side wasm.
# --strip-target-features: the `target_features` section (148 B) is for linkers; engines ignore it.
wasm_module polar-license-wasm polar_license --one-caller-inline-max-function-size=100 \
    --converge --low-memory-unused --strip-target-features
# The engine's imports and exports renamed a, b… in the .wasm and its glue alike (-740 B gzipped:
# scripts/npm/short-names.mjs says why it is safe). Before the inline copy, which must match.
node scripts/npm/short-names.mjs "$PKG/polar_license_bg.wasm" "$PKG/polar_license.js"

echo "==> inline wasm (polar_license_inline.js: the wasm gzipped by zopfli, as base64, for polar-license/inline)"
# Gzipped before base64: base64 hides the wasm's redundancy from the gzip a server or bundle
# applies, so the inline entry would cost a third more than the .wasm; gzipped first it costs
# about what the .wasm does. Zopfli (@gfx/zopfli, scripts/npm; deterministic, standard gzip that
# DecompressionStream and node:zlib inflate) packs it 5.6 % tighter than zlib's level 9: 3 KB of
# the inline entry (53,955 -> 50,943 bytes of it gzipped, measured 2026-11-23). inline.js inflates
# it with DecompressionStream, inline-node.js with node:zlib.
inline_made="$(reused "$PKG/polar_license_bg.wasm" "zopfli $(node -p 'require(process.argv[1] + "/package.json").version' "$PACK_MODULES/@gfx/zopfli") numiterations 15 inline.js 1")"
if [[ -f "$inline_made" ]]; then
    echo "    (the inline copy of these bytes, kept from an earlier pack)"
    cp "$inline_made" "$PKG/polar_license_inline.js"
else
node -e '
    const fs = require("fs");
    const zlib = require("zlib");
    const { gzipAsync } = require(process.argv[3]);
    const wasm = fs.readFileSync(process.argv[1]);
    gzipAsync(wasm, { numiterations: 15 }).then((gz) => {
        gz = Buffer.from(gz);
        if (!zlib.gunzipSync(gz).equals(wasm)) throw new Error("zopfli output does not inflate to the wasm");
        fs.writeFileSync(process.argv[2], "// The WebAssembly of polar-license, gzipped, as base64 (generated by scripts/build-npm.sh).\n" +
            `export default "${gz.toString("base64")}";\n`);
    });
' "$PKG/polar_license_bg.wasm" "$PKG/polar_license_inline.js" "$PACK_MODULES/@gfx/zopfli"
keep "$PKG/polar_license_inline.js" "$inline_made"
fi

# The emulator's (`polar-license/emulator`): loaded only by emulator.js.
wasm_module polar-license-emulator-wasm polar_license_emulator

# The relay's (`polar-license/relay`): the client's wasm never carries the relay (its signing,
# Polar's input checks), and the relay's is loaded only by polar-license/relay.
wasm_module polar-license-relay-wasm polar_license_relay

# Signed mode's add-on (issue #38): the default entry's wasm verifies no signature, and this one
# is loaded on a client's first lease only where the host has no Ed25519 (the inline entries
# carry none: in a one-file bundle it would be in every app's bytes).
wasm_module polar-license-ed25519-wasm polar_license_ed25519

# The local trial's add-on (issue #54 item 4): the default entry's wasm carries no local trial
# (issue #54's cap on it), and this one is loaded only by a client with `trial` on a check with
# no key and none remembered (the inline entries carry none, as for the verifier).
wasm_module polar-license-trial-wasm polar_license_trial

# The devices module (issue #64, `polar-license/devices`): the core's customer-portal steps (sign
# in, list a key's devices, free one), in a wasm of its own that the default entries never load:
# only an app importing polar-license/devices does, on its first call. With the engine's
# --converge, --low-memory-unused and --strip-target-features (above): -620 B gzipped
# (123,701 -> 123,078 B of its wasm, measured 2026-11-28).
wasm_module polar-license-devices-wasm polar_license_devices \
    --converge --low-memory-unused --strip-target-features

# The seat module (issue #67 item 5, `polar-license/seat`): the core's held seat (SeatHold: the
# acquisition, the heartbeat and its interval, the release, a lost seat), in a wasm of its own
# that the default entries never load: only an app importing polar-license/seat does.
wasm_module polar-license-seat-wasm polar_license_seat

# The usage module (issue #68 item 3, `polar-license/usage`): the core's usage report
# (RecordUsage: its idempotency id, its sends again of the same id, the relay's typed answers),
# in a wasm of its own that only an app importing polar-license/usage loads.
wasm_module polar-license-usage-wasm polar_license_usage

# Pack time only (never shipped): the core's sentences for why a key stopped (the crate
# polar-license-stopped-wasm, bindings/stopped-wasm), read by scripts/npm/stopped.mjs below to
# write them into polar_license_stopped.js: the engine's wasm above carries none of them.
wasm_module polar-license-stopped-wasm polar_license_stopped_core
rm -rf "$OUT/stopped"
mkdir -p "$OUT/stopped"
mv "$PKG/polar_license_stopped_core.js" "$PKG/polar_license_stopped_core_bg.wasm" "$OUT/stopped/"

echo "==> package template"
for f in pkg-template/*; do
    cp "$f" "$PKG/"
done
sed -i "s/\"version\": \"0.0.0-template\"/\"version\": \"$version\"/" "$PKG/package.json"
# The version in the User-Agent that drive.js (the package's one loop, its fetch) sends where the
# runtime allows one (issue #78).
sed -i "s/^const PACKAGE_VERSION = '0.0.0-template';/const PACKAGE_VERSION = '$version';/" \
    "$PKG/drive.js"
chmod +x "$PKG/emulator-cli.js"
cp LICENSE-APACHE LICENSE-MIT "$PKG/"
# The reason table, once: the core's codes and kinds (the engine's reasonTable) written into
# license.js and commonjs.cjs, and license.js's LicenseError fields into commonjs.cjs.
node scripts/npm/reasons.mjs "$PKG"
# Why a key stopped: the core's sentences written into polar_license_stopped.js from the
# pack-time module (license.js imports it only for a denial that carries why).
node scripts/npm/stopped.mjs "$PKG" "$OUT/stopped" "$version"
# The gate's words where an answer carries none (an app's own client, an error from outside the
# library): the core's, from the same pack-time module, written into ui.js.
node scripts/npm/gate-words.mjs "$PKG" "$OUT/stopped"

echo "==> default entries bundled: one module each (esbuild, not minified)"
# Issue #38: every module an entry imports is a step of the module loader before the first
# answer (node: about 0.35 ms a module; Chromium: license.js and the glue fetched a level below
# the entry). browser.js and node.js are one module each, with license.js, the wasm-bindgen glue
# and (node) files.js inside. Left out: node's built-ins, signed mode's add-on glue
# (polar_license_ed25519.js), a module of its own that only a client with relay keys imports,
# and the local trial's (polar_license_trial.js), imported only by a client with `trial`.
# The inline entries, slow to start anyway (the wasm decoded first), still import the modules,
# shipped for them: bundled too, each would carry its own copy of the base64 wasm (+94 KB of
# tarball). The modules unbundled are also kept in target/npm/parts, for tests and benchmarks
# that drive the engine's glue directly (never packed).
ESBUILD="$PACK_MODULES/.bin/esbuild"
PARTS="$OUT/parts"
rm -rf "$PARTS"
mkdir -p "$PARTS"
for f in browser.js node.js inline.js inline-node.js license.js drive.js files.js polar_license.js polar_license_inline.js polar_license_stopped.js; do
    cp "$PKG/$f" "$PARTS/"
done
cp "$PKG/polar_license_bg.wasm" "$PKG/package.json" "$PARTS/"
for entry in browser node; do
    # From inside parts/: each module's marker comment in the bundle is its bare file name.
    (cd "$PARTS" && "$ESBUILD" "$entry.js" --bundle --format=esm --platform=neutral --log-level=warning \
        --external:'node:*' --external:./polar_license_ed25519.js --external:./polar_license_trial.js --external:./polar_license_stopped.js --legal-comments=none \
        --banner:js="// polar-license $version: $entry.js with the modules it imports, bundled by scripts/build-npm.sh (sources: pkg-template/, the glue: wasm-bindgen)." \
        --outfile="$PKG/$entry.js" --allow-overwrite)
done

# license.js as the inline entries import it: one module with drive.js inside (the package's one
# loop, bundled as into the default entries and the add-ons), so that drive.js is not shipped
# on its own (a module more for the inline entries to load, and 5 KB more of tarball).
(cd "$PARTS" && "$ESBUILD" license.js --bundle --format=esm --platform=neutral --log-level=warning \
    --external:'node:*' --external:./polar_license.js --legal-comments=none \
    --banner:js="// polar-license $version: license.js with drive.js, bundled by scripts/build-npm.sh (sources: pkg-template/)." \
    --outfile="$PKG/license.js" --allow-overwrite)

echo "==> polar-license/devices, /seat and /usage bundled: each one module with drive.js"
# The three modules are driven by the package's one loop (pkg-template/drive.js, one source, also
# license.js's); an app imports any of them, so each ships with it inside: as a module of its own
# the loader and sender cost each about 700 B gzipped (a second request, a second gzip stream).
# drive.js itself is not shipped. Left out: the module's glue, loaded beside it, and
# polar-license's LicenseError.
for module in devices seat usage; do
    cp "$PKG/$module.js" "$PARTS/"
    (cd "$PARTS" && "$ESBUILD" "$module.js" --bundle --format=esm --platform=neutral --log-level=warning \
        --external:'node:*' --external:polar-license --external:"./polar_license_$module.js" --legal-comments=none \
        --banner:js="// polar-license $version: $module.js with drive.js, bundled by scripts/build-npm.sh (sources: pkg-template/, the glue: wasm-bindgen)." \
        --outfile="$PKG/$module.js" --allow-overwrite)
done
rm "$PKG/drive.js"

echo "==> npm pack"
rm -f "$OUT"/polar-license-*.tgz
(cd "$PKG" && npm pack --pack-destination "$OUT" --silent >/dev/null)
tarball="$(ls "$OUT"/polar-license-*.tgz)"
ls -l "$PKG"
# What this pack did not use (an older build's) goes.
find "$MADE" -type f ! -newer "$PACK_STARTED" ! -name .started -delete
echo "build-npm: $tarball ($(wc -c <"$tarball") bytes)"
