#!/usr/bin/env bash
# The floor under the npm package's wasm size: two probe cdylibs built exactly like the package
# (release, opt-level z, LTO, talc, wasm-bindgen --target web, wasm-opt -Oz, gzip -9), each doing
# only a sliver of the client's job:
#
#   value: serde_json::Value parse of a validate answer, write it back, HMAC-SHA256 the bytes
#   typed: the same with the core's own typed model (src/model.rs and the modules it needs,
#          compiled from this tree): what the cache record and the protocol checks rely on
#
#   bash scripts/size-floor.sh     (needs scripts/setup-wasm.sh; ~2 min on 2 cores)
#
# Neither probe builds a request, decides a reason, runs the grace policy or parses options: the
# real client is everything here plus those. Manual tool, not part of the test command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORK="$ROOT/target/size-floor"
WASM_OPT="$ROOT/scripts/npm/node_modules/.bin/wasm-opt"
[[ -x "$WASM_OPT" ]] || { echo "size-floor: $WASM_OPT missing: run scripts/setup-wasm.sh" >&2; exit 1; }
bindgen="$(sed -n 's/^wasm-bindgen *= *"\(=[0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)"
dep() { grep -E "^$1 *=" Cargo.toml | head -n 1; }

# probe NAME: writes the crate (lib.rs from stdin) and prints "wasm_gz glue_gz".
probe() {
    local name="$1" dir="$WORK/$1"
    mkdir -p "$dir/src"
    cat >"$dir/src/lib.rs"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "probe_$name"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
$(dep serde)
$(dep serde_json)
$(dep time)
$(dep uuid)
$(dep hmac)
$(dep sha2)
wasm-bindgen = "$bindgen"
$(grep -E '^talc *=' Cargo.toml | head -n 1 | sed 's/, *optional = true//')

[profile.release]
opt-level = "z"
lto = true
codegen-units = 1
panic = "abort"

[workspace]
EOF
    # The versions this tree locks (cargo drops what the probe does not use).
    cp Cargo.lock "$dir/Cargo.lock"
    (cd "$dir" && cargo build --quiet --release --target wasm32-unknown-unknown)
    wasm-bindgen "$dir/target/wasm32-unknown-unknown/release/probe_$name.wasm" --out-dir "$dir/out" \
        --out-name probe --target web --no-typescript --omit-default-module-path
    "$WASM_OPT" -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-multivalue --enable-reference-types \
        "$dir/out/probe_bg.wasm" -o "$dir/out/opt.wasm"
    echo "$(gzip -9c "$dir/out/opt.wasm" | wc -c) $(gzip -9c "$dir/out/probe.js" | wc -c)"
}

COMMON='use hmac::{Hmac, Mac};
use wasm_bindgen::prelude::*;

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn mac(bytes: &[u8], key: &[u8]) -> u8 {
    match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(bytes);
            m.finalize().into_bytes()[0]
        }
        Err(_) => 0,
    }
}'

read -r value_wasm value_js < <(probe value <<EOF
$COMMON

#[wasm_bindgen]
pub fn probe(text: &str, key: &[u8]) -> String {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return e.to_string(),
    };
    let out = serde_json::to_string(&v).unwrap_or_default();
    let mut s = String::from(v.get("status").and_then(|s| s.as_str()).unwrap_or(""));
    s.push(char::from(mac(out.as_bytes(), key)));
    s
}
EOF
)

read -r typed_wasm typed_js < <(probe typed <<EOF
#![allow(dead_code)]
#[path = "$ROOT/src/reason.rs"]
mod reason;
#[path = "$ROOT/src/error.rs"]
mod error;
#[path = "$ROOT/src/key.rs"]
mod key;
#[path = "$ROOT/src/metadata.rs"]
mod metadata;
#[path = "$ROOT/src/model.rs"]
mod model;
$COMMON

#[wasm_bindgen]
pub fn probe(text: &str, key: &[u8]) -> String {
    let v: model::ValidatedLicenseKey = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return e.to_string(),
    };
    let out = serde_json::to_string(&v).unwrap_or_default();
    let mut s = String::from(v.license_key.status.as_str());
    s.push(char::from(mac(out.as_bytes(), key)));
    s
}
EOF
)

kb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
echo "| probe (wasm-opt -Oz, gzip -9) | wasm KB | glue KB | total KB |"
echo "|---|---:|---:|---:|"
echo "| value: serde_json::Value parse + write + HMAC-SHA256 | $(kb "$value_wasm") | $(kb "$value_js") | $(kb $((value_wasm + value_js))) |"
echo "| typed: the core's license model parse + write + HMAC-SHA256 | $(kb "$typed_wasm") | $(kb "$typed_js") | $(kb $((typed_wasm + typed_js))) |"
