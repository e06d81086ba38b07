#!/usr/bin/env bash
# The floor under the npm package's wasm size: probe cdylibs built exactly like the package
# (release, opt-level z, LTO, talc, the pinned nightly with std rebuilt and panics as traps
# (scripts/wasm-toolchain.sh), wasm-bindgen --target web, wasm-opt -Oz, gzip -9), each doing
# only a sliver of the client's job, one per candidate design of issue #17:
#
#   value:  serde_json::Value parse of a validate answer, write it back, HMAC-SHA256 the bytes
#   typed:  the same with the core's own typed model (src/model.rs and the modules it needs,
#           compiled from this tree): what the cache record and the protocol checks rely on
#   swb:    host JSON: JSON.parse in JS, the typed model read from the JS object through
#           serde-wasm-bindgen and written back to one (JSON.stringify in JS), HMAC-SHA256
#   fields: no serde in the wasm: the answer's fields handed across as strings and numbers,
#           timestamps as epoch numbers, one rule (status and expiry) decided, HMAC-SHA256
#   nomac:  `fields` without the HMAC (the MAC by WebCrypto's HMAC in JS instead)
#   time:   `fields` plus the `time` crate parsing and writing one RFC 3339 timestamp
#   fmt:    `fields` plus core::fmt (an error message built with format!, numbers written)
#
#   bash scripts/size-floor.sh           (needs scripts/setup-wasm.sh; ~3 min on 2 cores)
#
# No probe builds a request, decides a reason, runs the grace policy or parses options: the
# real client is everything here plus those. Manual tool, not part of the test command. The
# package now ships the `fields` design (host JSON, no serde in the wasm); where its bytes go is
# the "code by origin" table of scripts/size.sh. (The `--parts` mode, which stubbed the serde
# uses of the earlier design one at a time, went with them.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/wasm-toolchain.sh
source "$ROOT/scripts/wasm-toolchain.sh"
WORK="$ROOT/target/size-floor"
need_wasm_opt size-floor
bindgen="=$(wasm_bindgen_version)"
# The workspace's pinned versions ([workspace.dependencies] in Cargo.toml).
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
$(dep js-sys)
serde-wasm-bindgen = "0.6.5"
wasm-bindgen = "$bindgen"
$(grep -E '^talc *=' Cargo.toml | head -n 1 | sed 's/, *optional = true//')

# The package's build has feature npm (src/model.rs reads Polar's objects as maps only there).
[features]
default = ["npm"]
npm = []

[profile.release]
opt-level = "z"
lto = true
codegen-units = 1

[workspace]
EOF
    # The versions this tree locks (cargo drops what the probe does not use).
    cp Cargo.lock "$dir/Cargo.lock"
    # One target directory for every probe: the dependencies compile once.
    (cd "$dir" && CARGO_TARGET_DIR="$WORK/target" RUSTFLAGS="$WASM_RUSTFLAGS" \
        cargo "+$WASM_TOOLCHAIN" build "${WASM_BUILD_STD[@]}" --quiet --release --target wasm32-unknown-unknown)
    wasm-bindgen "$WORK/target/wasm32-unknown-unknown/release/probe_$name.wasm" --out-dir "$dir/out" \
        --out-name probe --target web --no-typescript --omit-default-module-path
    "$WASM_OPT" -Oz --strip-debug --strip-producers \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-multivalue --enable-reference-types \
        "$dir/out/probe_bg.wasm" -o "$dir/out/opt.wasm"
    echo "$(gzip -9c "$dir/out/opt.wasm" | wc -c) $(gzip -9c "$dir/out/probe.js" | wc -c)"
}

kb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
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

# json_probe TYPE STATUS: the probe function of the serde_json designs: the answer parsed as
# TYPE, written back, its STATUS (an expression over v) and the written bytes' MAC returned.
json_probe() {
    cat <<EOF
#[wasm_bindgen]
pub fn probe(text: &str, key: &[u8]) -> String {
    let v: $1 = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return e.to_string(),
    };
    let out = serde_json::to_string(&v).unwrap_or_default();
    let mut s = String::from($2);
    s.push(char::from(mac(out.as_bytes(), key)));
    s
}
EOF
}

read -r value_wasm value_js < <(probe value <<EOF
$COMMON

$(json_probe serde_json::Value 'v.get("status").and_then(|s| s.as_str()).unwrap_or("")')
EOF
)

# The package's map-only serde impls of the model (feature npm), from src/lib.rs.
MAP_ONLY="$(sed -n '/^macro_rules! map_only {/,/^}/p' src/lib.rs)"

# The core's model and the modules it needs, compiled from this tree (typed, swb).
MODEL="#![allow(dead_code)]
$MAP_ONLY
#[path = \"$ROOT/src/reason.rs\"]
mod reason;
#[path = \"$ROOT/src/error.rs\"]
mod error;
#[path = \"$ROOT/src/key.rs\"]
mod key;
#[path = \"$ROOT/src/decimal.rs\"]
mod decimal;
#[path = \"$ROOT/src/metadata.rs\"]
mod metadata;
#[path = \"$ROOT/src/model.rs\"]
mod model;"

read -r typed_wasm typed_js < <(probe typed <<EOF
$MODEL
$COMMON

$(json_probe model::ValidatedLicenseKey 'v.license_key.status.as_str()')
EOF
)

read -r swb_wasm swb_js < <(probe swb <<EOF
$MODEL
$COMMON

#[wasm_bindgen]
pub fn probe(answer: JsValue, record: &str, key: &[u8]) -> Result<JsValue, JsValue> {
    let v: model::ValidatedLicenseKey = serde_wasm_bindgen::from_value(answer)?;
    let out = serde_wasm_bindgen::to_value(&v)?;
    let _ = mac(record.as_bytes(), key);
    Ok(out)
}
EOF
)

# The fields probes: one rule over fields handed across (no JSON read or written in the wasm).
FIELDS='/// 0 granted, 1 denied (status), 2 expired.
fn decide(status: &str, expires_at: f64, now: f64) -> u32 {
    if status != "granted" {
        1
    } else if expires_at.is_finite() && expires_at <= now {
        2
    } else {
        0
    }
}'

read -r fields_wasm fields_js < <(probe fields <<EOF
$COMMON
$FIELDS

#[wasm_bindgen]
pub fn probe(status: &str, expires_at: f64, now: f64, record: &str, key: &[u8]) -> u32 {
    decide(status, expires_at, now) | (u32::from(mac(record.as_bytes(), key)) << 8)
}
EOF
)

read -r nomac_wasm nomac_js < <(probe nomac <<EOF
use wasm_bindgen::prelude::*;

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
$FIELDS

#[wasm_bindgen]
pub fn probe(status: &str, expires_at: f64, now: f64, record: &str) -> u32 {
    decide(status, expires_at, now) | ((record.len() as u32) << 8)
}
EOF
)

read -r time_wasm time_js < <(probe time <<EOF
$COMMON
$FIELDS

#[wasm_bindgen]
pub fn probe(status: &str, expires_at: &str, now: f64, record: &str, key: &[u8]) -> String {
    use time::format_description::well_known::Rfc3339;
    let at = match time::OffsetDateTime::parse(expires_at, &Rfc3339) {
        Ok(at) => at,
        Err(_) => return String::new(),
    };
    let mut out = at.format(&Rfc3339).unwrap_or_default();
    let d = decide(status, at.unix_timestamp() as f64, now);
    out.push(char::from(mac(record.as_bytes(), key).wrapping_add(d as u8)));
    out
}
EOF
)

read -r fmt_wasm fmt_js < <(probe fmt <<EOF
$COMMON
$FIELDS

#[wasm_bindgen]
pub fn probe(status: &str, expires_at: f64, now: f64, record: &str, key: &[u8]) -> String {
    let d = decide(status, expires_at, now);
    format!("{status:?} is not granted ({d}, {}): {}", expires_at as i64, mac(record.as_bytes(), key))
}
EOF
)

row() { echo "| $1 | $(kb "$2") | $(kb "$3") | $(kb $(($2 + $3))) |"; }
echo "| probe (wasm-opt -Oz, gzip -9) | wasm KB | glue KB | total KB |"
echo "|---|---:|---:|---:|"
row "value: serde_json::Value parse + write + HMAC-SHA256" "$value_wasm" "$value_js"
row "typed: the core's license model parse + write + HMAC-SHA256" "$typed_wasm" "$typed_js"
row "swb: host JSON (JSON.parse), the typed model through serde-wasm-bindgen + HMAC-SHA256" "$swb_wasm" "$swb_js"
row "fields: no serde, fields and epoch numbers across, one rule + HMAC-SHA256" "$fields_wasm" "$fields_js"
row "nomac: fields and one rule, no MAC in the wasm (WebCrypto's HMAC in JS instead)" "$nomac_wasm" "$nomac_js"
row "time: fields + the time crate (one RFC 3339 parse and format)" "$time_wasm" "$time_js"
row "fmt: fields + core::fmt (format! of a message and numbers)" "$fmt_wasm" "$fmt_js"
