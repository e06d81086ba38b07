//! The Rust-on-wasm suites' emulators over `fetch` (tests/wasm_*.rs, in node and in headless
//! Chromium): the URLs `scripts/test-wasm.sh` bakes in at compile time, fresh keys (so node
//! and browser runs never share state), a key's update, a fault, and the request count.
//! wasm32 only; the native suites have the emulator in process ([`crate::World`]).

use gloo_net::http::Request;
use serde_json::{json, Value};

fn baked(name: &str, value: Option<&'static str>) -> &'static str {
    match value {
        Some(v) => v,
        None => panic!("{name} was not set at compile time: run scripts/test-wasm.sh"),
    }
}

/// The running emulator (`POLAR_WASM_EMULATOR_URL`).
pub fn emulator() -> &'static str {
    baked(
        "POLAR_WASM_EMULATOR_URL",
        option_env!("POLAR_WASM_EMULATOR_URL"),
    )
}

/// A second emulator whose faults the tests set (`POLAR_WASM_FAULT_URL`).
pub fn faulty() -> &'static str {
    baked("POLAR_WASM_FAULT_URL", option_env!("POLAR_WASM_FAULT_URL"))
}

/// An emulator that was started and stopped: nothing listens there any more
/// (`POLAR_WASM_DEAD_URL`).
pub fn dead() -> &'static str {
    baked("POLAR_WASM_DEAD_URL", option_env!("POLAR_WASM_DEAD_URL"))
}

/// `n` random hex digits.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", (js_sys::Math::random() * 16.0) as u8 & 15))
        .collect()
}

/// Adds a fresh key `<prefix>-<24 random hex digits>` to the emulator at `base`: `fields` are
/// the emulator's SeedKey fields (`benefit_id`, `usage`, `limit_activations`, …).
pub async fn new_key(base: &str, prefix: &str, fields: Value) -> String {
    let key = format!("{prefix}-{}", random_hex(24).to_uppercase());
    let mut body = json!({ "key": key });
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    send(Request::post(&format!("{base}/__emulator/keys")), body, 201).await;
    key
}

/// Changes a key the emulator at `base` holds (`POST /__emulator/keys`'s fields).
pub async fn patch_key(base: &str, key: &str, update: Value) {
    send(
        Request::patch(&format!("{base}/__emulator/keys/{key}")),
        update,
        200,
    )
    .await;
}

/// Sets the fault of the emulator at [`faulty`] (`null` clears it).
pub async fn set_fault(fault: Value) {
    send(
        Request::post(&format!("{}/__emulator/fault", faulty())),
        fault,
        204,
    )
    .await;
}

/// How many requests the emulator at `base` has answered.
pub async fn requests(base: &str) -> u64 {
    let resp = Request::get(&format!("{base}/__emulator/requests"))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    body["count"].as_u64().unwrap()
}

/// Sends `body` as JSON and asserts the emulator answered `status`.
async fn send(request: gloo_net::http::RequestBuilder, body: Value, status: u16) {
    let resp = request
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), status, "{}", resp.text().await.unwrap());
}
