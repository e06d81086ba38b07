//! The npm package's relay (`polar-license/relay`; `wasm32-unknown-unknown` only: natively
//! this crate is empty, the native relay being crates/relay itself).
//!
//! `RelayCore` is the relay's Workers host (`polar_license_relay::host::workers::Workers`:
//! the relay's machines, a request's loads, the store's opening, saves and alarm, in their
//! order, natively tested in crates/relay) for a host whose call to Polar is an async `fetch`
//! and whose signing key is a non-extractable WebCrypto key. This crate reads the options and
//! moves values between JS and the driver, nothing else: no loop, no order and no default of
//! its own. Its doors, each a step the host (pkg-template/relay-handler.js) does and answers:
//!
//! 1. a request: `start(head)`, then `want(id, given, …)` with what the last step got;
//! 2. the background: `poll(id, given, …)` with what the last job got;
//! 3. the store's opening at start: `open(read, …)`;
//! 4. the store's saves: `save(outcome)`;
//!
//! and beside them `signingKey` (the key file read by the core) and `failed` (the relay's
//! answer when its host failed around it).

#![cfg(target_arch = "wasm32")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;

use js_sys::{Array, Object, Reflect, Uint8Array};
use polar_license::portal::Method;
use polar_license::{
    AccessToken, HttpRequest, HttpResponse, Server, TransportError, TransportErrorKind,
};
use polar_license_relay::host::workers::{
    Config, Got, Job, JobGot, Kept, Listing, Opened, Outcome, Saved, Step, Storage, StorageCall,
    StorageRead, Time, Workers, LONGEST_TIMER_MS,
};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{
    host, CheckoutOptions, Host, Rate, RelayConfig, RelayRequest, RelayResponse, SeatOptions,
    Signer,
};
use serde_json::Value;
use wasm_bindgen::prelude::*;

/// The relay's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The relay core's log lines on the host's console (issue #63: one log channel): an error
/// through `console.error`, a warning through `console.warn`, each the text the native server
/// writes (`polar_license_relay::log_text`: keys redacted, control characters escaped), after
/// `polar-license ` as the handler's own lines. Installed by the first [`RelayCore`].
///
/// Warnings and errors only (the seller's problems: a token Polar refuses, the breaker, the
/// store): the info lines, one per answer, are `relay serve`'s access log, and a Worker's
/// platform logs each request itself. `log`'s `release_max_level_warn` (Cargo.toml) leaves
/// them out of the wasm: measured, +5.1 KB gzipped with warnings and errors, +8.4 KB with the
/// info lines too.
struct Console;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(text: &str);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(text: &str);
}

impl log::Log for Console {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(text) = polar_license_relay::log_text(record) else {
            return;
        };
        let text = format!("polar-license {text}");
        match record.level() {
            log::Level::Error => console_error(&text),
            _ => console_warn(&text),
        }
    }

    fn flush(&self) {}
}

static CONSOLE: Console = Console;

/// The relay on the Workers host, configured once (see the crate docs).
#[wasm_bindgen]
pub struct RelayCore {
    host: RefCell<Workers>,
}

/// The request as the core reads it (`{method, path, headers, clientIp}` and its body).
fn request_of(request: &JsValue, body: &[u8]) -> RelayRequest {
    let string = |name: &str| get(request, name).as_string().unwrap_or_default();
    RelayRequest {
        method: string("method"),
        path: string("path"),
        headers: headers_of(&get(request, "headers")),
        body: body.to_vec(),
        client_ip: peer_of(&get(request, "peers")),
    }
}

/// The socket peer from the facts the host gathered (`peers`: see `start`), as the core
/// picks it (`host::socket_peer`).
fn peer_of(facts: &JsValue) -> String {
    let facts: Vec<Option<String>> = facts
        .dyn_ref::<Array>()
        .map(|a| a.iter().map(|v| v.as_string()).collect())
        .unwrap_or_default();
    host::socket_peer(facts.iter().map(Option::as_deref)).to_string()
}

fn get(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn set(obj: &Object, name: &str, value: &JsValue) {
    // Setting a property on a plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(name), value);
}

fn bad(field: &str, what: &str) -> JsError {
    JsError::new(&format!("{field}: {what}"))
}

/// An optional string member.
fn text(config: &JsValue, name: &str) -> Result<Option<String>, JsError> {
    let v = get(config, name);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| bad(name, "must be a string"))
}

/// An optional whole number member.
fn whole(config: &JsValue, name: &str, max: f64) -> Result<Option<f64>, JsError> {
    let v = get(config, name);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=max).contains(&n) => Ok(Some(n)),
        _ => Err(bad(
            name,
            &format!("must be a whole number from 0 to {max}"),
        )),
    }
}

fn headers_of(value: &JsValue) -> Vec<(String, String)> {
    let Some(list) = value.dyn_ref::<Array>() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|pair| {
            let pair = pair.dyn_into::<Array>().ok()?;
            Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
        })
        .collect()
}

fn headers_js<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Array {
    headers
        .map(|(k, v)| {
            let pair = Array::new();
            pair.push(&JsValue::from_str(&k.to_ascii_lowercase()));
            pair.push(&JsValue::from_str(v));
            JsValue::from(pair)
        })
        .collect()
}

fn response_js(r: &RelayResponse) -> JsValue {
    let out = Object::new();
    set(&out, "status", &JsValue::from(r.status));
    set(
        &out,
        "headers",
        &headers_js(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into(),
    );
    // The Fetch standard's null-body statuses (a `Response` refuses a body with them), and
    // an empty body, as `null`: the host passes the object to `new Response(body, init)`.
    let body = if r.body.is_empty() || matches!(r.status, 101 | 204 | 205 | 304) {
        JsValue::NULL
    } else {
        Uint8Array::from(r.body.as_slice()).into()
    };
    set(&out, "body", &body);
    out.into()
}

/// The metrics route: `metricsPath` with `metricsToken`, as the core checks them
/// (`host::metrics_route`), or neither (off).
fn metrics_route(config: &JsValue) -> Result<Option<(String, String)>, JsError> {
    let Some(path) = text(config, "metricsPath")? else {
        return Ok(None);
    };
    let token = text(config, "metricsToken")?;
    host::metrics_route(&path, token.as_deref())
        .map(Some)
        .map_err(|e| JsError::new(&e.text()))
}

/// `checkout: {products, successOrigins}` (issue #80, as `relay serve --checkout-product` and
/// `--checkout-origin`): the products an app may buy through the relay's checkout route (none:
/// the route is off), the origins a success URL may be on; checked by the core
/// (`Relay::with_checkouts`).
fn checkout_options(config: &JsValue) -> Result<CheckoutOptions, JsError> {
    let checkout = get(config, "checkout");
    if checkout.is_undefined() || checkout.is_null() {
        return Ok(CheckoutOptions::default());
    }
    if !checkout.is_object() {
        return Err(bad(
            "checkout",
            "must be an object: {products, successOrigins}",
        ));
    }
    Ok(CheckoutOptions {
        products: strings(&checkout, "products")?.unwrap_or_default(),
        success_origins: strings(&checkout, "successOrigins")?.unwrap_or_default(),
    })
}

/// An optional array of strings.
fn strings(config: &JsValue, name: &str) -> Result<Option<Vec<String>>, JsError> {
    let v = get(config, name);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let list = v
        .dyn_ref::<Array>()
        .ok_or_else(|| bad(name, "must be an array of strings"))?;
    list.iter()
        .map(|item| {
            item.as_string()
                .ok_or_else(|| bad(name, "must be an array of strings"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A `true` or `false` option, `false` when left out: `signEntitlements` (`relay serve
/// --sign-entitlements`, issue #68: a customer's Feature Flag values and meter balances read
/// from Polar in the background and signed into its keys' leases for clients that ask),
/// `recordUsage` (`--record-usage`: `POST /v1/usage/record` kept and ingested to Polar's
/// meters), `refuseAtZeroCredits` (`--refuse-at-zero-credits`: the seller's rule, the core's).
fn flag(config: &JsValue, name: &str) -> Result<bool, JsError> {
    let on = get(config, name);
    if on.is_undefined() || on.is_null() {
        return Ok(false);
    }
    on.as_bool()
        .ok_or_else(|| bad(name, "must be true or false"))
}

/// The roster (`relay serve`'s --roster and --first-seen-share): `store.roster` (a boolean)
/// and `store.firstSeenShare` (a percent, 0 to 100).
fn roster_options(store: &JsValue, options: &mut StoreOptions) -> Result<(), JsError> {
    let on = get(store, "roster");
    if !on.is_undefined() && !on.is_null() {
        options.roster = on
            .as_bool()
            .ok_or_else(|| bad("store.roster", "must be true or false"))?;
    }
    if let Some(share) = whole(store, "firstSeenShare", f64::from(u32::MAX))? {
        options.first_seen_share = share as u32;
    }
    Ok(())
}

/// `seats.testOnlySeconds`: a seat's life under the 30 s a seller may set, for test suites
/// only ([`Relay::with_test_only_seat_seconds`]).
fn test_only_seat_seconds(config: &JsValue) -> Result<Option<u32>, JsError> {
    let v = get(config, "seats");
    if !v.is_object() {
        return Ok(None);
    }
    whole(&v, "testOnlySeconds", 3_600.0)
        .map(|s| s.map(|s| s as u32))
        .map_err(|_| bad("seats.testOnlySeconds", "must be 1 to 3600 seconds"))
}

/// `store.testOnlyBudgetSeconds`: Polar's budget window under its minute, for test suites and
/// benchmarks facing an emulator whose token window is scaled only
/// ([`Relay::with_test_only_budget_seconds`]).
fn test_only_budget_seconds(config: &JsValue) -> Result<Option<u32>, JsError> {
    let v = get(config, "store");
    if !v.is_object() {
        return Ok(None);
    }
    whole(&v, "testOnlyBudgetSeconds", 3_600.0)
        .map(|s| s.map(|s| s as u32))
        .map_err(|_| bad("store.testOnlyBudgetSeconds", "must be 1 to 3600 seconds"))
}

/// The seat options (`seats`: `enabled`, `seconds`, `ciCap`, `churn`, `churnSeconds`, `activationChurn`,
/// `activationChurnSeconds`, `borrowDays`, `perBenefit` as `{benefitId: n}`), as `relay
/// serve`'s `--no-seats`, `--seat-seconds`, `--seat-ci-cap`, `--seat-churn`, `--activation-churn`,
/// `--seat-borrow-days` and `--seats`; the core's defaults for what is left out, its check for
/// the values.
fn seat_options(config: &JsValue) -> Result<SeatOptions, JsError> {
    let mut seats = SeatOptions::default();
    let v = get(config, "seats");
    if v.is_undefined() || v.is_null() {
        return Ok(seats);
    }
    if !v.is_object() {
        return Err(bad("seats", "must be an object"));
    }
    let enabled = get(&v, "enabled");
    if !enabled.is_undefined() && !enabled.is_null() {
        seats.enabled = enabled
            .as_bool()
            .ok_or_else(|| bad("seats.enabled", "must be true or false"))?;
    }
    let field = |name: &str| format!("seats.{name}");
    let n = |name: &str| {
        whole(&v, name, f64::from(u32::MAX))
            .map_err(|_| bad(&field(name), "must be a whole number"))
    };
    if let Some(s) = n("seconds")? {
        seats.seconds = s as u32;
    }
    if let Some(c) = n("ciCap")? {
        seats.ci_cap = Some(c as u32);
    }
    if let Some(c) = n("churn")? {
        seats.churn = c as u32;
    }
    if let Some(s) = n("churnSeconds")? {
        seats.churn_seconds = s as u32;
    }
    if let Some(c) = n("activationChurn")? {
        seats.activation_churn = c as u32;
    }
    if let Some(s) = n("activationChurnSeconds")? {
        seats.activation_churn_seconds = s as u32;
    }
    if let Some(d) = n("borrowDays")? {
        seats.borrow_days = d as u32;
    }
    let per = get(&v, "perBenefit");
    if !per.is_undefined() && !per.is_null() {
        if !per.is_object() || Array::is_array(&per) {
            return Err(bad(
                "seats.perBenefit",
                "must be an object of benefit id to seats",
            ));
        }
        for entry in Object::entries(&Object::from(per.clone())).iter() {
            let pair = Array::from(&entry);
            let benefit = pair.get(0).as_string().unwrap_or_default();
            let size = pair
                .get(1)
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n));
            let Some(size) = size else {
                return Err(bad(
                    "seats.perBenefit",
                    "each benefit's seats must be a whole number",
                ));
            };
            seats.per_benefit.push((benefit, size as u32));
        }
    }
    match seats.problem() {
        Some(("seat_seconds", why)) => Err(bad("seats.seconds", why)),
        Some(("activation_churn", why)) => Err(bad("seats.activationChurn", why)),
        Some(("seat_borrow_days", why)) => Err(bad("seats.borrowDays", why)),
        Some((_, why)) => Err(bad("seats.churn", why)),
        None => Ok(seats),
    }
}

/// `patience` (milliseconds) on a step, when its check has a stored answer to give meanwhile.
fn patient(out: &Object, patience: Option<u64>) {
    if let Some(ms) = patience {
        set(out, "patience", &JsValue::from(ms as f64));
    }
}

/// `{response}` (and `leased`) as the JS side reads it.
fn wrapped(name: &str, value: &JsValue) -> Object {
    let out = Object::new();
    set(&out, name, value);
    out
}

/// The host's clock as the driver reads it (`Date.now()`, `performance.now()`).
fn time(unix_ms: f64, monotonic_ms: f64) -> Time {
    let whole = |x: f64| if x.is_finite() { x.max(0.0) as u64 } else { 0 };
    Time {
        unix_ms: whole(unix_ms),
        monotonic_ms: whole(monotonic_ms),
    }
}

/// JSON as a JS value (the storage's keys and values: plain data).
fn json_js(value: &Value) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(&value.to_string())
        .map_err(|_| JsError::new("the core's JSON did not parse"))
}

/// JSON text of the host's as a value (`null` when it does not parse: read as nothing).
fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A listing as the host makes it: `{prefix, after?, limit?}`.
fn listing_js(list: &Listing) -> JsValue {
    let out = wrapped("prefix", &JsValue::from_str(&list.prefix));
    if let Some(after) = &list.after {
        set(&out, "after", &JsValue::from_str(after));
    }
    if let Some(limit) = list.limit {
        set(&out, "limit", &JsValue::from(limit as f64));
    }
    out.into()
}

/// A storage read as the host makes it: `{gets: [keys][], lists: [{prefix, after?, limit?}]}`.
fn reads_js(read: &StorageRead) -> JsValue {
    let gets: Array = read
        .gets
        .iter()
        .map(|call| -> JsValue {
            call.iter()
                .map(|k| JsValue::from_str(k))
                .collect::<Array>()
                .into()
        })
        .collect();
    let out = wrapped("gets", &gets.into());
    let lists: Array = read.lists.iter().map(listing_js).collect();
    set(&out, "lists", &lists.into());
    out.into()
}

/// One storage call as the host makes it: `{put: [[key, value]]}`, `{delete: [key]}` or
/// `{write: [[key, value | null]]}` (null: delete).
fn call_js(call: &StorageCall) -> Result<JsValue, JsError> {
    let (name, json) = match call {
        StorageCall::Put(pairs) => (
            "put",
            Value::Array(
                pairs
                    .iter()
                    .map(|(k, v)| Value::Array(vec![k.clone().into(), v.clone()]))
                    .collect(),
            ),
        ),
        StorageCall::Delete(keys) => (
            "delete",
            Value::Array(keys.iter().cloned().map(Value::from).collect()),
        ),
        StorageCall::Write(writes) => (
            "write",
            Value::Array(
                writes
                    .iter()
                    .map(|(k, v)| {
                        Value::Array(vec![k.clone().into(), v.clone().unwrap_or(Value::Null)])
                    })
                    .collect(),
            ),
        ),
    };
    Ok(wrapped(name, &json_js(&json)?).into())
}

/// A call of Polar's as the handler's `fetch` takes it (`{method, url, headers, body?}`), with
/// its timeout and the most bytes of its answer to read (`timeoutMs`, `bytes`).
fn send_js(request: &HttpRequest, method: Method, timeout_ms: u64, bytes: usize) -> Object {
    let out = wrapped("method", &JsValue::from_str(method.as_str()));
    set(&out, "url", &JsValue::from_str(&request.url));
    let headers = request.headers.iter().map(|(k, v)| (*k, v.as_str()));
    set(&out, "headers", &headers_js(headers).into());
    // A `GET` (a device listing's read, issue #64) has no body.
    if method != Method::Get {
        set(
            &out,
            "body",
            &Uint8Array::from(request.body.as_slice()).into(),
        );
    }
    set(&out, "timeoutMs", &JsValue::from(timeout_ms as f64));
    set(&out, "bytes", &JsValue::from(bytes as f64));
    out
}

/// What the host got for a request's step (see [`RelayCore::want`]).
fn got_of(given: &JsValue) -> Option<Got> {
    if given.is_undefined() || given.is_null() {
        return None;
    }
    let has = |name: &str| !get(given, name).is_undefined();
    let bytes = |name: &str| {
        get(given, name)
            .dyn_into::<Uint8Array>()
            .map(|b| b.to_vec())
            .unwrap_or_default()
    };
    Some(if has("body") {
        Got::Body(bytes("body"))
    } else if has("bodyBroken") {
        Got::BodyBroken
    } else if has("loaded") {
        Got::Loaded(get(given, "loaded").as_string().map(|t| json_of(&t)))
    } else if has("landed") {
        Got::Landed
    } else if has("patience") {
        Got::Patience
    } else if has("upstream") {
        Got::Upstream(upstream_of(&get(given, "upstream")))
    } else if has("signature") {
        // What WebCrypto threw instead (its name): the answer goes without a lease.
        match get(given, "signature").as_string() {
            Some(name) => Got::Signature(Err(name)),
            None => Got::Signature(Ok(bytes("signature"))),
        }
    } else if has("persisted") {
        Got::Persisted(get(given, "persisted").is_truthy())
    } else {
        return None;
    })
}

/// What the host got for a background job (see [`RelayCore::poll`]).
fn job_got_of(given: &JsValue) -> Option<JobGot> {
    if given.is_undefined() || given.is_null() {
        return None;
    }
    if Array::is_array(given) {
        let keys = Array::from(given)
            .iter()
            .filter_map(|r| r.as_string())
            .collect();
        return Some(JobGot::Rows(Ok(keys)));
    }
    let field = |name: &str| get(given, name);
    if !field("alarm").is_undefined() {
        let whole = |x: f64| if x.is_finite() { x.max(0.0) as u64 } else { 0 };
        return Some(JobGot::Alarm(field("alarm").as_f64().map(whole)));
    }
    if !field("loaded").is_undefined() {
        return Some(JobGot::Loaded(
            field("loaded").as_string().map(|t| json_of(&t)),
        ));
    }
    let error = field("error");
    if !error.is_undefined() && !error.is_null() {
        let why = error
            .as_string()
            .unwrap_or_else(|| "the host's storage failed".into());
        return Some(JobGot::Rows(Err(why)));
    }
    Some(JobGot::Polar(upstream_of(given)))
}

/// An answer to the client (`{respond}`), with `done` when the exchange has ended.
fn respond_js(r: &RelayResponse, done: bool) -> JsValue {
    let out = wrapped("respond", &response_js(r));
    if done {
        set(&out, "done", &JsValue::TRUE);
    }
    out.into()
}

/// How the host's fetch failed (`{thrown: name}`, the name of what it threw), if it did:
/// `AbortSignal.timeout`'s `TimeoutError` is the call's timeout, anything else no answer (the
/// network, DNS, TLS, a refused connection).
fn thrown_of(value: &JsValue) -> Option<TransportErrorKind> {
    let name = get(value, "thrown");
    (!name.is_undefined()).then(|| match name.as_string().as_deref() {
        Some("TimeoutError") => TransportErrorKind::Timeout,
        _ => TransportErrorKind::Connect,
    })
}

/// Polar's answer as the host gives it (`{status, headers, body}`, or `{thrown}` when it could
/// not be reached).
fn upstream_of(upstream: &JsValue) -> Result<HttpResponse, TransportError> {
    if let Some(kind) = thrown_of(upstream) {
        return Err(TransportError::new(kind, "the host's fetch failed"));
    }
    let status = get(upstream, "status").as_f64().unwrap_or(0.0);
    let body = get(upstream, "body")
        .dyn_into::<Uint8Array>()
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut resp = HttpResponse::new(status.clamp(0.0, 999.0) as u16, body);
    resp.headers = headers_of(&get(upstream, "headers"))
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    Ok(resp)
}

#[wasm_bindgen]
impl RelayCore {
    /// A relay from its options (`baseUrl`, or `server`: `'production'` or `'sandbox'`;
    /// `accessToken`, `kid`, `publicKey`, `leaseDays`, `organizationId`, `perIp`, `perKey`,
    /// `clientIpHeader`, `maxBodyBytes`, `corsOrigins`, `breakerFailures`, `breakerOpenFor`,
    /// `webhookSilence`, `retireUnseenDays`, `metricsPath` with `metricsToken`, `store`, with `store.roster` and
    /// `store.firstSeenShare`, `store.reconcileEvery`; `seats`: `seconds`, `ciCap`, `churn`,
    /// `churnSeconds`, `perBenefit`, as `relay serve`'s seat flags; `signEntitlements`,
    /// `recordUsage`, `refuseAtZeroCredits`; `checkout`: `products`, `successOrigins`, as
    /// `relay serve`'s checkout flags), and the handler's facts:
    /// `storage` (its calls checked; `storage.paged`: read per key), `durableObject` (`true`
    /// inside the Durable Object, `false` a Worker without its binding), `userAgent`. Throws an `Error` naming the
    /// bad option; never one holding the token.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<RelayCore, JsError> {
        if log::set_logger(&CONSOLE).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
        if !config.is_object() {
            return Err(bad("options", "must be an object"));
        }
        let home = host::StoreHome::of_fact(get(&config, "durableObject").as_bool());
        let token = text(&config, "accessToken")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("accessToken", "is required (your Polar organization token)"))?;
        let kid = text(&config, "kid")?.ok_or_else(|| bad("kid", "is required"))?;
        let public_key =
            text(&config, "publicKey")?.ok_or_else(|| bad("publicKey", "is required"))?;
        let server = match (
            text(&config, "baseUrl")?,
            text(&config, "server")?.as_deref(),
        ) {
            (Some(url), _) => Server::Custom(url),
            (None, None | Some("production")) => Server::Production,
            (None, Some("sandbox")) => Server::Sandbox,
            (None, Some(_)) => return Err(bad("server", "must be 'production' or 'sandbox'")),
        };
        // As natively (`--server sandbox`): the sandbox's token budget is 100 calls a minute.
        let sandbox = matches!(server, Server::Sandbox);
        let mut relay_config = RelayConfig::with_signer(
            server,
            AccessToken::new(token),
            Signer::External {
                kid: kid.clone(),
                public_key,
            },
        );
        // The range is the core's (`Relay::with_entropy`: 1 to MAX_LEASE_DAYS), as natively.
        if let Some(days) = whole(&config, "leaseDays", f64::from(u32::MAX))? {
            relay_config.lease_days = days as u32;
        }
        relay_config.organization_id = text(&config, "organizationId")?;
        relay_config.client_ip_header = text(&config, "clientIpHeader")?;
        if let Some(rate) = text(&config, "perIp")? {
            relay_config.limits.per_ip = Rate::parse(&rate).map_err(|e| bad("perIp", &e))?;
        }
        if let Some(rate) = text(&config, "perKey")? {
            relay_config.limits.per_key = Rate::parse(&rate).map_err(|e| bad("perKey", &e))?;
        }
        // The core's range (`host::max_body_bytes`: 0 to 16 MiB), as `relay serve`'s.
        if let Some(max) = whole(&config, "maxBodyBytes", 1e15)? {
            relay_config.limits.max_body_bytes =
                host::max_body_bytes(max as u64).map_err(|e| JsError::new(&e.text()))?;
        }
        relay_config.cors_origins = strings(&config, "corsOrigins")?;
        // Where it runs (`host`: `'workers'`, else a fetch host with a socket peer): the core
        // says how hosts differ (`polar_license_relay::Host`).
        relay_config.host = Host::of_user_agent(text(&config, "userAgent")?.as_deref());
        // `relay serve --timeout`'s (any positive time), in milliseconds, else the core's; at
        // most a timer's longest wait (2^31 - 1 ms, about 24.8 days).
        let timeout = get(&config, "timeoutMs");
        let timeout_ms = match timeout.as_f64() {
            _ if timeout.is_undefined() || timeout.is_null() => host::CALL_TIMEOUT_MS,
            Some(ms) if ms.is_finite() && ms > 0.0 => {
                (ms.ceil().min(LONGEST_TIMER_MS as f64)) as u64
            }
            _ => {
                return Err(bad(
                    "timeoutMs",
                    "must be a positive number of milliseconds",
                ))
            }
        };
        // As `relay serve`'s --webhook-silence: seconds without a webhook before the warning
        // (0: never).
        if let Some(secs) = whole(&config, "webhookSilence", 1e9)? {
            relay_config.webhook_silence = secs as u64;
        }
        // As `relay serve`'s --retire-unseen-days: activations unseen this many days retired
        // (0: never; the core's range, `Relay::with_entropy`: at most 3650).
        if let Some(days) = whole(
            &config,
            "retireUnseenDays",
            f64::from(polar_license_relay::last_seen::MAX_RETIRE_UNSEEN_DAYS),
        )? {
            relay_config.retire_unseen_days = days as u32;
        }
        let metrics = metrics_route(&config)?;
        // The breaker in front of Polar, as `relay serve`'s --breaker-failures (0 turns it off)
        // and --breaker-open-for (the core's range: `host::breaker_open_for`).
        if let Some(n) = whole(&config, "breakerFailures", f64::from(u32::MAX))? {
            relay_config.breaker.failures = n as u32;
        }
        if let Some(secs) = whole(&config, "breakerOpenFor", f64::from(u32::MAX))? {
            relay_config.breaker.open_for_ms =
                host::breaker_open_for(secs as u64).map_err(|e| JsError::new(&e.text()))?;
        }
        // The storage's calls (`host::storage_calls`) and whether a store is kept
        // (`host::StoreHome`: given, in the Durable Object, or a Worker with no binding), the
        // core's rules from the handler's facts.
        let storage = get(&config, "storage");
        // A storage read per key (`durableStorage`'s `paged: true`), else read whole.
        let paged = get(&storage, "paged").as_bool() == Some(true);
        let has = |call: &str| get(&storage, call).is_function();
        let storage_given = !storage.is_undefined() && !storage.is_null();
        let storage_facts = match storage_given {
            true => Some(Storage::of_calls(paged, has).map_err(|e| JsError::new(&e.text()))?),
            false => None,
        };
        let given = get(&config, "store");
        let store = if !home.keeps_store(given.is_object()) {
            JsValue::UNDEFINED
        } else if given.is_object() {
            given
        } else {
            Object::new().into()
        };
        for name in ["signEntitlements", "recordUsage"] {
            if !store.is_object() && flag(&config, name)? {
                return Err(bad(name, "needs a store (its values are the store's)"));
            }
        }
        let kept = if store.is_object() {
            let mut options = StoreOptions::default();
            let secs = |name: &str| whole(&store, name, 1e9);
            if let Some(v) = secs("freshFor")? {
                options.fresh_for = v as u64;
            }
            if let Some(v) = secs("staleFor")? {
                options.stale_for = v as u64;
            }
            if let Some(v) = secs("denialFor")? {
                options.denial_for = v as u64;
            }
            if let Some(v) = secs("markedStaleFor")? {
                options.marked_stale_for = v as u64;
            }
            // `relay serve --reconcile-every` (0: off; default 600).
            if let Some(v) = secs("reconcileEvery")? {
                options.reconcile_every = v as u64;
            }
            // The budget's defaults are the core's (the sandbox's 100, a quarter kept).
            let budget = whole(&store, "budget", 1e9)?.map(|v| v as u32);
            let reserve = whole(&store, "budgetReserve", 1e9)?.map(|v| v as u32);
            options = options.with_budget(sandbox, budget, reserve);
            // Checked by the core (`StoreOptions::problem`, in `Relay::with_entropy`), as natively.
            if let Some(v) = whole(&store, "maxEntries", 1e9)? {
                options.max_entries = v as usize;
            }
            // `relay serve --store-max-bytes` (default 64 MiB).
            if let Some(v) = whole(&store, "maxBytes", 1e15)? {
                options.max_bytes = v as u64;
            }
            roster_options(&store, &mut options)?;
            options.entitlements = flag(&config, "signEntitlements")?;
            options.usage = flag(&config, "recordUsage")?;
            options.refuse_at_zero_credits = flag(&config, "refuseAtZeroCredits")?;
            let webhook_secret = text(&store, "webhookSecret")?;
            // Read per key: as many entries (and roster digests) cached (else the core's).
            let cached = match paged {
                true => whole(&store, "cacheEntries", 1e9)?.map(|v| v as usize),
                false => None,
            };
            Some(Kept {
                options,
                webhook_secret,
                cached,
            })
        } else {
            None
        };
        let workers = Workers::new(Config {
            relay: relay_config,
            store: kept,
            storage: storage_facts,
            seats: seat_options(&config)?,
            test_only_seat_seconds: test_only_seat_seconds(&config)?,
            test_only_budget_seconds: test_only_budget_seconds(&config)?,
            timeout_ms,
            metrics,
            checkouts: checkout_options(&config)?,
        })
        .map_err(|e| JsError::new(&e.text()))?;
        Ok(RelayCore {
            host: RefCell::new(workers),
        })
    }

    /// A request's exchange, from its head (`{method, path, headers: [name, value][],
    /// peers}`): its id, for [`RelayCore::want`].
    pub fn start(&self, request: JsValue) -> u32 {
        self.host.borrow_mut().start(request_of(&request, &[]))
    }

    /// What the request `id` needs next, given what came of the last step (`given`: absent
    /// the first time and after a step that asks nothing back; `entropy`: 16 random bytes).
    /// One of `{body: max}` (read at most `max` bytes of the body: `{body: Uint8Array}`, or
    /// `{bodyBroken: true}` when its stream broke off), `{load: {gets, lists}}` (read them:
    /// `{loaded}`, JSON text `{values: [key, value | null][], lists: ([key, value][] |
    /// null)[]}`, or `{loaded: null}`: nothing could be read), `{flight, patience?}` (wait for
    /// that flight: `{landed: true}`, or `{patience: true}` when `patience` ms passed first),
    /// `{send: {method, url, headers, body?, timeoutMs, bytes}, leads?, patience?}` (ask
    /// Polar, leading the flight `leads` if named: `{upstream: {status, headers, body} |
    /// {thrown: name}}`, or `{patience: true}` with the call going on), `{call: true}` (that
    /// call's answer: `{upstream}`), `{sign: bytes}` (`{signature: Uint8Array | name}`),
    /// `{persist: true}` (save: `{persisted: boolean}`), `{landed: flight}` (wake the
    /// requests waiting on it), `{respond: {status, headers, body}, done?}` (send the answer;
    /// `body` null for none) or `{done: true}`.
    pub fn want(
        &self,
        id: u32,
        given: JsValue,
        now_ms: f64,
        monotonic_ms: f64,
        entropy: Option<Vec<u8>>,
    ) -> Result<JsValue, JsError> {
        let entropy = entropy.and_then(|e| <[u8; 16]>::try_from(e.as_slice()).ok());
        let step =
            self.host
                .borrow_mut()
                .want(id, got_of(&given), time(now_ms, monotonic_ms), entropy);
        Ok(match step {
            Step::Body { max } => wrapped("body", &JsValue::from(max as f64)).into(),
            Step::Load(read) => wrapped("load", &reads_js(&read)).into(),
            Step::Flight {
                flight,
                patience_ms,
            } => {
                let out = wrapped("flight", &JsValue::from_str(&flight));
                patient(&out, patience_ms);
                out.into()
            }
            Step::Send {
                request,
                method,
                leads,
                patience_ms,
                timeout_ms,
                max_bytes,
            } => {
                let send = send_js(&request, method, timeout_ms, max_bytes);
                let out = wrapped("send", &send.into());
                // `leads`, not `flight`: `{flight}` is the step that waits for one.
                if let Some(flight) = leads {
                    set(&out, "leads", &JsValue::from_str(&flight));
                }
                patient(&out, patience_ms);
                out.into()
            }
            Step::Call => wrapped("call", &JsValue::TRUE).into(),
            Step::Sign(bytes) => wrapped("sign", &Uint8Array::from(bytes.as_slice()).into()).into(),
            Step::Persist => wrapped("persist", &JsValue::TRUE).into(),
            Step::Landed(flight) => wrapped("landed", &JsValue::from_str(&flight)).into(),
            Step::Respond(r) => respond_js(&r, false),
            Step::Last(r) => respond_js(&r, true),
            Step::Done => wrapped("done", &JsValue::TRUE).into(),
        })
    }

    /// The relay's next own job between requests, given what came of the last (`id` and
    /// `given`: absent the first time and after `{save}`). One of `{id, send: {method, url,
    /// headers, body?, timeoutMs, bytes}}` (ask Polar; the headers hold the token: never log
    /// them; give `{status, headers, body}` or `{thrown: name}`), `{id, load: {gets, lists}}`
    /// (give `{loaded}` as `want`'s), `{id, list: {prefix, after?, limit?}}` (give the keys,
    /// in order, or `{error: message}`), `{save: true}` (save the store now, then poll),
    /// `{readAlarm: true}` (give `{alarm: at | null}`), `{setAlarm: at}`, `{wake: ms}` (the
    /// storage's own), `{timer: ms}` (the run ends with each of these three) or `null`
    /// (nothing more this run). A grant webhook's refetch may come sooner than a wait: poll
    /// again after each request.
    pub fn poll(
        &self,
        id: Option<u32>,
        given: JsValue,
        now_ms: f64,
        monotonic_ms: f64,
    ) -> Result<JsValue, JsError> {
        let got = job_got_of(&given).map(|got| (id.unwrap_or(0), got));
        let job = self.host.borrow_mut().poll(got, time(now_ms, monotonic_ms));
        let with_id = |out: Object, id: u32| {
            set(&out, "id", &JsValue::from(id));
            out.into()
        };
        Ok(match job {
            Job::Send {
                id,
                request,
                timeout_ms,
                max_bytes,
            } => {
                let method = if request.body().is_some() {
                    "POST"
                } else {
                    "GET"
                };
                let send = wrapped("method", &JsValue::from_str(method));
                set(&send, "url", &JsValue::from_str(request.url()));
                let headers = request.headers().iter().map(|(k, v)| (*k, v.as_str()));
                set(&send, "headers", &headers_js(headers).into());
                if let Some(body) = request.body() {
                    set(&send, "body", &Uint8Array::from(body).into());
                }
                set(&send, "timeoutMs", &JsValue::from(timeout_ms as f64));
                set(&send, "bytes", &JsValue::from(max_bytes as f64));
                with_id(wrapped("send", &send.into()), id)
            }
            Job::Load { id, read } => with_id(wrapped("load", &reads_js(&read)), id),
            Job::List { id, list } => with_id(wrapped("list", &listing_js(&list)), id),
            Job::Save => wrapped("save", &JsValue::TRUE).into(),
            Job::ReadAlarm => wrapped("readAlarm", &JsValue::TRUE).into(),
            Job::SetAlarm(at) => wrapped("setAlarm", &JsValue::from(at as f64)).into(),
            Job::Wake(ms) => wrapped("wake", &JsValue::from(ms as f64)).into(),
            Job::Timer(ms) => wrapped("timer", &JsValue::from(ms as f64)).into(),
            Job::Done => JsValue::NULL,
        })
    }

    /// The store's opening at start, one step at a time: `open()` first, then `open(read)`
    /// with what each step read (JSON text). Each step is `{calls?: [call], reads: {gets,
    /// lists}}` (make the calls, each a `{put}` or `{write}` as `save`'s, then read, as
    /// `want`'s `load`), `{whole: true}` (the storage's `load()`, as JSON text) or `{done:
    /// true}` (at once with no store kept, or no storage).
    pub fn open(
        &self,
        read: Option<String>,
        now_ms: f64,
        monotonic_ms: f64,
    ) -> Result<JsValue, JsError> {
        let read = read.map(|t| json_of(&t));
        let opened = self
            .host
            .borrow_mut()
            .open(read, time(now_ms, monotonic_ms));
        Ok(match opened {
            Opened::Read { calls, read } => {
                let out = wrapped("reads", &reads_js(&read));
                if !calls.is_empty() {
                    let list = Array::new();
                    for call in &calls {
                        list.push(&call_js(call)?);
                    }
                    set(&out, "calls", &list.into());
                }
                out.into()
            }
            Opened::LoadWhole => wrapped("whole", &JsValue::TRUE).into(),
            Opened::Done => wrapped("done", &JsValue::TRUE).into(),
        })
    }

    /// The store's save, one storage call at a time: `save()` begins one (every change so
    /// far, a failed save's first), then `save(outcome)` with how each call went (`{}` done,
    /// `{refused: '[[key, why]]'}` the storage's own refusals for good, JSON text, `{error:
    /// name, why}` its error as caught). Each step is `{put: [[key, value]]}`, `{delete:
    /// [key]}`, `{write: [[key, value | null]]}` (at most 128 keys: one call), `{save: items}`
    /// (a store saved whole: `storage.save(items)`), `{failed: why}` (its changes are kept for
    /// the next) or `null` (saved, or nothing to save).
    pub fn save(&self, outcome: JsValue) -> Result<JsValue, JsError> {
        let outcome = (!outcome.is_undefined() && !outcome.is_null()).then(|| {
            let error = get(&outcome, "error");
            if !error.is_undefined() {
                return Outcome::Error {
                    name: error.as_string().unwrap_or_default(),
                    message: get(&outcome, "why")
                        .as_string()
                        .unwrap_or_else(|| "error".into()),
                };
            }
            match get(&outcome, "refused").as_string() {
                Some(text) => Outcome::Refused(json_of(&text)),
                None => Outcome::Done,
            }
        });
        Ok(match self.host.borrow_mut().save(outcome) {
            Saved::Call(call) => call_js(&call)?,
            Saved::Whole(items) => wrapped("save", &json_js(&items)?).into(),
            Saved::Failed(why) => wrapped("failed", &JsValue::from_str(&why)).into(),
            Saved::Done => JsValue::NULL,
        })
    }

    /// The relay's answer when the host failed around the core (`options`: `createRelay`'s;
    /// `origin`: the request's `Origin`, if any): the core's failure answer (a 500, the
    /// relay's, with the CORS grant every answer carries, narrowed to `options.corsOrigins`
    /// when they read), as `{status, headers, body}`. For a relay whose options did not start
    /// too: its CORS rule is still the core's.
    pub fn failed(options: JsValue, origin: JsValue) -> JsValue {
        let origins = strings(&options, "corsOrigins").ok().flatten();
        let req = RelayRequest {
            headers: origin
                .as_string()
                .map(|o| vec![("origin".into(), o)])
                .unwrap_or_default(),
            ..RelayRequest::default()
        };
        let r = host::failure(
            500,
            "the relay is not configured correctly",
            origins.as_deref(),
            &req,
        );
        response_js(&r)
    }

    /// A signing key file's text (`KID=k4.secret.…`) read by the core's reader
    /// (`polar_license::lease::read_key_file`): `{kid, raw}`, the Ed25519 seed then the public
    /// half (64 bytes), for the host's WebCrypto to import (it checks the halves match).
    /// Throws `signingKey: …`, never with the secret.
    #[wasm_bindgen(js_name = signingKey)]
    pub fn signing_key(text: JsValue) -> Result<JsValue, JsError> {
        let Some(text) = text.as_string() else {
            return Err(bad(
                "signingKey",
                "is required: the KID=k4.secret.… text of `polar-license relay keygen`, or importSigningKey()'s result",
            ));
        };
        let (kid, raw) = polar_license::lease::read_key_file(&text).map_err(|_| {
            bad(
                "signingKey",
                "expected the one line KID=k4.secret.… that `polar-license relay keygen` writes",
            )
        })?;
        let out = wrapped("kid", &JsValue::from_str(&kid));
        set(&out, "raw", &Uint8Array::from(&raw[..]).into());
        Ok(out.into())
    }
}
