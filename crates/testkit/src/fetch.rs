//! The Rust-on-wasm suites' emulators over `fetch` (tests/wasm_*.rs, in node and in headless
//! Chromium): the URLs `scripts/test-wasm.sh` bakes in at compile time, fresh keys (so node
//! and browser runs never share state), a key's update, a fault, the clock, the request
//! count, and a sleep on the host's timer.
//! wasm32 only; the native suites have the emulator in process ([`crate::World`]).

use gloo_net::http::Request;
use polar_license::proto::{HttpRequest, HttpResponse};
use polar_license::transport::TransportError;
use polar_license::wasm::{AsyncTransport, FetchTransport, LocalFuture};
use serde_json::{json, Value};
use std::time::Duration;

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

/// The emulator the seller table's rows share (`POLAR_WASM_SELLER_URL`): its clock and its
/// faults are the runner's alone (tests/wasm_seller_table.rs).
pub fn seller() -> &'static str {
    baked(
        "POLAR_WASM_SELLER_URL",
        option_env!("POLAR_WASM_SELLER_URL"),
    )
}

/// The seller's relay in front of [`seller`] (`POLAR_WASM_SELLER_RELAY_URL`: `relay serve`,
/// started by scripts/test-wasm.sh): a `devices_relay` row lists through it.
pub fn seller_relay() -> &'static str {
    baked(
        "POLAR_WASM_SELLER_RELAY_URL",
        option_env!("POLAR_WASM_SELLER_RELAY_URL"),
    )
}

/// The emulator with a usage meter and its credit benefit (`POLAR_WASM_USAGE_URL`: seeded by
/// scripts/test-wasm.sh; tests/wasm_usage.rs adds its keys).
pub fn usage_polar() -> &'static str {
    baked("POLAR_WASM_USAGE_URL", option_env!("POLAR_WASM_USAGE_URL"))
}

/// The seller's relay recording usage in front of [`usage_polar`]
/// (`POLAR_WASM_USAGE_RELAY_URL`: `relay serve --record-usage`).
pub fn usage_relay() -> &'static str {
    baked(
        "POLAR_WASM_USAGE_RELAY_URL",
        option_env!("POLAR_WASM_USAGE_RELAY_URL"),
    )
}

/// The public key of [`usage_relay`], which signs leases and the values it reads into them
/// (`relay serve --sign-entitlements`): the relay keys of a client in signed mode
/// (`POLAR_WASM_USAGE_RELAY_PAIR`, as `relay keygen` prints it).
pub fn usage_relay_pair() -> &'static str {
    baked(
        "POLAR_WASM_USAGE_RELAY_PAIR",
        option_env!("POLAR_WASM_USAGE_RELAY_PAIR"),
    )
}

/// Moves the clock of the emulator at `base` to `offset` seconds from the wall clock
/// (`POST /__emulator/clock`).
pub async fn set_clock(base: &str, offset: i64) {
    control(base, "clock", json!({ "offset_seconds": offset }), 204).await;
}

/// Turns Polar's per-address rate limits on or off at the emulator at `base`, every window and
/// block forgotten (`POST /__emulator/rate-limit`).
pub async fn set_rate_limit(base: &str, enabled: bool) {
    control(base, "rate-limit", json!({ "enabled": enabled }), 204).await;
}

/// Sets the fault of the emulator at `base` (`null` clears it).
pub async fn set_fault_at(base: &str, fault: Value) {
    control(base, "fault", fault, 204).await;
}

/// `fetch` with `Polar-Version: <api>` on every request, so one running emulator answers in
/// the API version a test names (its default is 2026-10): the library sends no such header,
/// this is the test's Polar.
#[derive(Debug, Clone)]
pub struct Versioned {
    inner: FetchTransport,
    api: String,
}

impl Versioned {
    /// `fetch` (10 s timeout, 1 MiB cap) in API version `api` (`2027-01`, …).
    pub fn new(api: &str) -> Versioned {
        Versioned {
            inner: FetchTransport::new(Duration::from_secs(10), 1 << 20),
            api: api.to_string(),
        }
    }
}

impl AsyncTransport for Versioned {
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        let mut request = request.clone();
        request.headers.push(("polar-version", self.api.clone()));
        Box::pin(async move { self.inner.send(&request).await })
    }

    /// The customer portal's requests (a devices row's sign-in and listing) as `fetch` sends
    /// them: no `Polar-Version` (the portal's answers have one shape).
    fn send_portal<'a>(
        &'a self,
        request: &'a polar_license::portal::PortalRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        self.inner.send_portal(request)
    }
}

/// Another machine activates `key` at the emulator at `base` (Polar's public activate) as
/// `label`: set-up for a devices row, not the face's call.
pub async fn elsewhere(base: &str, key: &str, label: &str) {
    send(
        Request::post(&format!("{base}/v1/customer-portal/license-keys/activate")),
        json!({ "key": key, "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10", "label": label }),
        200,
    )
    .await;
}

/// The emulator at `base`'s "emailed" codes (`GET /__emulator/customer-session/codes`).
pub async fn emailed_codes(base: &str) -> Vec<Value> {
    let resp = Request::get(&format!("{base}/__emulator/customer-session/codes"))
        .send()
        .await
        .expect("the codes route");
    let body: Value = serde_json::from_str(&resp.text().await.expect("text")).expect("json");
    body["codes"].as_array().cloned().unwrap_or_default()
}

/// `n` random hex digits.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", (js_sys::Math::random() * 16.0) as u8 & 15))
        .collect()
}

/// A random UUID v4 (a new customer's or benefit's id, so that node and browser runs never
/// share one).
pub fn random_uuid4() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Adds a fresh key `<prefix>-<24 random hex digits>` to the emulator at `base`: `fields` are
/// the emulator's SeedKey fields (`benefit_id`, `usage`, `limit_activations`, …).
pub async fn new_key(base: &str, prefix: &str, fields: Value) -> String {
    let key = format!("{prefix}-{}", random_hex(24).to_uppercase());
    let mut body = json!({ "key": key });
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    control(base, "keys", body, 201).await;
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

/// Rotates `key` at the emulator at `base` (`POST /__emulator/keys/{key}/rotate`: what Polar's
/// rotate does, the record id, limits and activations kept, the old string `404` at once).
pub async fn rotate_key(base: &str, key: &str) {
    control(base, &format!("keys/{key}/rotate"), json!({}), 200).await;
}

/// Sets the fault of the emulator at [`faulty`] (`null` clears it).
pub async fn set_fault(fault: Value) {
    set_fault_at(faulty(), fault).await;
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

/// POSTs `body` to the control route `/__emulator/<route>` of the emulator at `base`, which
/// must answer `status`.
async fn control(base: &str, route: &str, body: Value, status: u16) {
    send(
        Request::post(&format!("{base}/__emulator/{route}")),
        body,
        status,
    )
    .await;
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

/// Resolves after `ms` milliseconds (the host's `setTimeout`: node's and a browser's).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set: js_sys::Function = js_sys::Reflect::get(&global, &"setTimeout".into())
            .expect("setTimeout")
            .into();
        set.call2(&global, &resolve, &ms.into()).expect("armed");
    });
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .expect("slept");
}
