//! The npm package's relay (`polar-license/relay`; `wasm32-unknown-unknown` only: natively
//! this crate is empty, the native relay being crates/relay itself).
//!
//! `RelayCore` is the relay's sans-IO core (`polar_license_relay::Relay`, the one
//! `polar-license relay serve` runs) for a host whose call to Polar is an async `fetch` and
//! whose signing key is a non-extractable WebCrypto key. Its two machines are driven by the
//! host's loops (pkg-template/relay-handler.js):
//!
//! 1. a request's `flow::Exchange`: `start(head)`, then `want(id, …)` says what it needs next
//!    (its body, a load from the storage, a wait for another check's flight, a call to Polar,
//!    a signature, a save, the answer) and `give(id, got)` hands back what came of it;
//! 2. the background reads' `flow::background` machine: `poll(…)` (a `GET` of Polar, a load,
//!    a page of the stored keys, or how long to wait) and `pollAnswered(id, got)`;
//!
//! with the store's saves beside them: `stage` (the changes to save), `saveStep` (the
//! storage's next call of a save, and how the last went), and `openStore` or `restore` at
//! start; `signingKey` (the key file read by the core), `alarm` (when to set the storage's
//! alarm), `caps`. The decisions of a request, of the background reads and of the store's
//! protocol are the relay core's (issue #63): the key layout (`store::layout`), the saves'
//! order, the batch kept after a failed save, what a read sees of changes not saved yet
//! (`store::saves`), a save's calls and its refusals (`store::saves::writing`), a request's
//! rounds of loads (`store::saves::loads`), when the background saves
//! (`Background::saves_now`), the caps, timeouts, the socket peer, the runtime and the alarm
//! (`host`), and the budget's defaults (`StoreOptions::with_budget`). This crate reads the
//! options and moves values between JS and the core: no loop and no default of its own. The
//! host gets, lists, puts and deletes what `openStore`, `want`'s and `poll`'s `load` and
//! `saveStep` name.
//! Waiting requests are kept in bounded tables: a host that never finishes cannot grow them.

#![cfg(target_arch = "wasm32")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::sync::Arc;

use js_sys::{Array, Object, Reflect, Uint8Array};
use polar_license::portal::Method;
use polar_license::{
    AccessToken, HttpRequest, HttpResponse, Server, TransportError, TransportErrorKind,
};
use polar_license_relay::flow::background::{
    Background, Given as BackgroundGiven, Poll as BackgroundPoll,
};
use polar_license_relay::flow::{Exchange, ExchangeOptions, Given, Need};
use polar_license_relay::store::layout::{self, Open, Opening, Read, Reads, Refusals};
use polar_license_relay::store::saves::loads::Loads;
use polar_license_relay::store::saves::writing::{self, Call, Next, StorageError, Writing};
use polar_license_relay::store::saves::{self, Reading, Saves};
use polar_license_relay::store::{
    JournalBackend, JournalItem, PagedBackend, StoreOptions, DEFAULT_CACHED,
};
use polar_license_relay::{
    host, Host, Now, Rate, Relay, RelayConfig, RelayRequest, RelayResponse, SeatOptions, Signer,
    StoreConfig, STALE_AFTER_MS,
};
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

/// A timer's longest wait (2^31 - 1 ms, about 24.8 days: `setTimeout` fires at once past it):
/// the longest call timeout and the longest `wait` the background asks for.
const LONGEST_TIMER_MS: u64 = 2_147_483_647;

/// At most this many requests under way (the oldest is dropped past it: a 502): the core's.
const MAX_WAITING: usize = host::MAX_EXCHANGES;

/// The relay core, configured once (see the crate docs).
#[wasm_bindgen]
pub struct RelayCore {
    relay: Relay,
    /// The verdict store's journal, when there is a store: the host persists it.
    journal: Option<Kept>,
    /// The requests under way, each an exchange the host drives (`start`, `want`, `give`).
    exchanges: RefCell<Table<Driven>>,
    /// How they run: the metrics route.
    exchange_options: ExchangeOptions,
    /// The relay's own reads between requests (the roster's, the reconcile's, and with a
    /// paged store their loads and the stored keys' listing): one machine, driven by the host
    /// through `poll` and `pollAnswered`.
    background: RefCell<Background>,
    /// The background job under way and what its load reads, from when (a load's answer is
    /// read by them).
    background_reads: RefCell<Option<(u32, Reads, Reading)>>,
    /// The store's saves: the host's batches in order, a failed one kept for the next, and
    /// (a paged store) the changes every read sees until they are saved.
    saves: RefCell<Saves>,
    /// A paged store's opening (`openStore`).
    opening: RefCell<Opening>,
    /// The refusal policy of the host's storage (`saveStep`).
    refusals: RefCell<Refusals>,
    /// The save under way (`saveStep`): a paged store's calls, or a whole store's one save.
    saving: RefCell<Option<Saving>>,
    /// The storage's alarm (`alarm`).
    alarm: RefCell<host::Alarm>,
    /// The calls' timeout (`timeoutMs`, else the core's).
    timeout_ms: u64,
    /// How the host reads its storage at start (`caps`' `start`), if it does.
    start: Option<host::Start>,
    /// How the host wakes the background (`caps`' `wake`).
    wake: host::Wake,
    /// Whether the storage's calls are its own `write`s (it has no `put`).
    writes: bool,
}

/// A save under way.
enum Saving {
    Paged(Writing),
    Whole,
}

/// Where the store's entries are: all in memory (restored whole at start), or in the host's
/// storage, read per key into a bounded cache (`storage.paged`: a Durable Object's storage).
enum Kept {
    Whole(Arc<JournalBackend>),
    Paged(Arc<PagedBackend>),
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

/// A storage read as the host makes it: `{gets: [keys][], lists}`, each get at most
/// `writing::KEYS_PER_CALL` keys (a Durable Object's limit a call).
fn reads_js(reads: &Reads) -> Result<JsValue, JsError> {
    let gets = strings_json(
        reads
            .keys
            .chunks(writing::KEYS_PER_CALL)
            .map(|call| strings_json(call.iter().map(String::as_str))),
    );
    let lists = serde_json::to_string(&reads.lists).map_err(|e| JsError::new(&e.to_string()))?;
    json_js(Ok(format!("{{\"gets\":{gets},\"lists\":{lists}}}")))
}

/// A JSON array of strings (or of arrays), as text.
fn strings_json<T: Into<serde_json::Value>>(
    items: impl IntoIterator<Item = T>,
) -> serde_json::Value {
    serde_json::Value::Array(items.into_iter().map(Into::into).collect())
}

/// Journal items of JSON, those that do not read skipped (never read as a grant).
fn items_of(json: &str) -> Result<Vec<JournalItem>, JsError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(values
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// A bounded table of waiting entries by id; the oldest is dropped when full.
struct Table<T> {
    next: u32,
    entries: Vec<(u32, T)>,
}

impl<T> Table<T> {
    fn new() -> Self {
        Table {
            next: 1,
            entries: Vec::new(),
        }
    }

    fn put(&mut self, value: T) -> u32 {
        if self.entries.len() >= MAX_WAITING {
            self.entries.remove(0);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.entries.push((id, value));
        id
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v)
    }

    fn take(&mut self, id: u32) -> Option<T> {
        let at = self.entries.iter().position(|(k, _)| *k == id)?;
        Some(self.entries.remove(at).1)
    }
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

/// A call as the handler's `fetch` takes it: a `GET` (a device listing's read, issue #64)
/// has no body.
fn ask_js(request: &HttpRequest, method: Method) -> JsValue {
    let out = Object::new();
    set(&out, "method", &JsValue::from_str(method.as_str()));
    if method == Method::Get {
        set(&out, "url", &JsValue::from_str(&request.url));
        set(
            &out,
            "headers",
            &headers_js(request.headers.iter().map(|(k, v)| (*k, v.as_str()))).into(),
        );
        return out.into();
    }
    set(&out, "url", &JsValue::from_str(&request.url));
    set(
        &out,
        "headers",
        &headers_js(request.headers.iter().map(|(k, v)| (*k, v.as_str()))).into(),
    );
    set(
        &out,
        "body",
        &Uint8Array::from(request.body.as_slice()).into(),
    );
    out.into()
}

fn now(unix_ms: f64, monotonic_ms: f64) -> Now {
    let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    Now {
        unix_seconds: (finite(unix_ms) / 1000.0).floor() as i64,
        monotonic_ms: finite(monotonic_ms) as u64,
    }
}

/// The answer to a request this relay no longer holds (an unknown id, or one dropped from a
/// full table): a 502, as for Polar out of reach, the relay's own failure answer (its CORS
/// grant narrowed by the relay's options: the request, and so its origin, is gone).
fn lost(relay: &Relay) -> JsValue {
    response_js(&relay.failure(&RelayRequest::default(), 502, "the relay lost this request"))
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

/// What a background job got (`{status, headers, body}`, `{thrown}`: a read's fetch failed,
/// or `{error}`: a listing's message), as the core takes it: an answer is read as a call's
/// ([`upstream_of`]).
fn read_answer(upstream: &JsValue) -> polar_license_relay::RosterAnswer {
    if let Some(kind) = thrown_of(upstream) {
        return Err(match kind {
            TransportErrorKind::Timeout => "timed out".into(),
            _ => "unreachable".into(),
        });
    }
    let error = get(upstream, "error");
    if !error.is_undefined() && !error.is_null() {
        return Err(error
            .as_string()
            .unwrap_or_else(|| "the host's storage failed".into()));
    }
    let answer = upstream_of(upstream).map_err(|e| e.detail)?;
    let retry_after = answer
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok((answer.status, retry_after, answer.body))
}

/// `patience` (milliseconds) on a step, when its check has a stored answer to give meanwhile.
fn patient(out: &Object, patience: Option<u64>) {
    if let Some(ms) = patience {
        set(out, "patience", &JsValue::from(ms as f64));
    }
}

/// JSON as a JS value (the layout's reads and writes: plain data).
fn json_js(text: serde_json::Result<String>) -> Result<JsValue, JsError> {
    let text = text.map_err(|e| JsError::new(&e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("the core's JSON did not parse"))
}

/// What the host read (`{values, lists}`, JSON text: see [`RelayCore::want`]'s `load`).
fn read_of(text: &str) -> Result<Read, JsError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(Read::of_json(&json))
}

/// A call of Polar's own: `{url, headers}` to `GET` (the headers hold the token), or with
/// `method: 'POST'` and its `body` (a usage batch).
fn read_js(read: &polar_license_relay::flow::background::Request) -> Object {
    let out = wrapped("url", &JsValue::from_str(read.url()));
    let headers = read.headers().iter().map(|(k, v)| (*k, v.as_str()));
    set(&out, "headers", &headers_js(headers).into());
    if let Some(body) = read.body() {
        set(&out, "method", &JsValue::from_str("POST"));
        set(&out, "body", &Uint8Array::from(body).into());
    }
    out
}

/// A background job with its `id`, as `poll` gives it.
fn with_id(out: Object, id: u32) -> JsValue {
    set(&out, "id", &JsValue::from(id));
    out.into()
}

/// What the host got for a background job: keys (an array of strings) for a listing,
/// `{loaded: false | null}` for a load that could not be read, else Polar's answer (`{status, headers, body}` or `{thrown}`) or
/// `{error}`; the machine reads a failure as the failure of whichever job it answers.
fn given_of(value: &JsValue) -> BackgroundGiven {
    if Array::is_array(value) {
        let keys = Array::from(value)
            .iter()
            .filter_map(|r| r.as_string())
            .collect();
        return BackgroundGiven::Rows(Ok(layout::rows_of(keys)));
    }
    let loaded = get(value, "loaded");
    if !loaded.is_undefined() {
        return BackgroundGiven::Loaded(loaded.is_truthy());
    }
    BackgroundGiven::Polar(read_answer(value))
}

/// `{response}` (and `leased`) as the JS side reads it.
fn wrapped(name: &str, value: &JsValue) -> Object {
    let out = Object::new();
    set(&out, name, value);
    out
}

#[wasm_bindgen]
impl RelayCore {
    /// A relay from its options (`baseUrl`, or `server`: `'production'` or `'sandbox'`;
    /// `accessToken`, `kid`, `publicKey`, `leaseDays`, `organizationId`, `perIp`, `perKey`,
    /// `clientIpHeader`, `maxBodyBytes`, `corsOrigins`, `breakerFailures`, `breakerOpenFor`,
    /// `webhookSilence`, `metricsPath` with `metricsToken`, `store`, with `store.roster` and
    /// `store.firstSeenShare`, `store.reconcileEvery`; `seats`: `seconds`, `ciCap`, `churn`,
    /// `churnSeconds`, `perBenefit`, as `relay serve`'s seat flags; `signEntitlements`,
    /// `recordUsage`, `refuseAtZeroCredits`), and the handler's facts:
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
        if storage_given {
            host::storage_calls(paged, has).map_err(|e| JsError::new(&e.text()))?;
        }
        // How the background is woken: the core's choice from the storage's calls.
        let wake = host::Wake::of_calls(has);
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
        // With a paged store the roster is kept in the host's storage too, as many digests
        // cached as entries (`store.cacheEntries`).
        let mut roster_cached = None;
        let journal = if store.is_object() {
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
            let (kept, backend): (Kept, Arc<dyn polar_license_relay::store::Backend>) = if paged {
                let cached =
                    whole(&store, "cacheEntries", 1e9)?.map_or(DEFAULT_CACHED, |v| v as usize);
                roster_cached = Some(cached);
                let paged = Arc::new(PagedBackend::new(options.max_entries, cached));
                (Kept::Paged(paged.clone()), paged)
            } else {
                let whole = Arc::new(JournalBackend::new(options.max_entries));
                (Kept::Whole(whole.clone()), whole)
            };
            relay_config.store = Some(StoreConfig {
                backend,
                options,
                webhook_secret,
            });
            Some(kept)
        } else {
            None
        };
        // The core never calls a transport here: the host's fetch is the call, between begin
        // and finish. The lease id's randomness comes with each finish.
        let unused = |_: &HttpRequest| {
            Err(TransportError::new(
                TransportErrorKind::Other,
                "the npm relay calls Polar with the host's fetch",
            ))
        };
        let seats = seat_options(&config)?;
        let test_life = test_only_seat_seconds(&config)?;
        let test_window = test_only_budget_seconds(&config)?;
        let relay = Relay::with_entropy(relay_config, Box::new(unused), Box::new(|| None))
            .and_then(|r| r.with_seats(seats))
            .and_then(|r| match test_life {
                Some(s) => r.with_test_only_seat_seconds(s),
                None => Ok(r),
            })
            .and_then(|r| match test_window {
                Some(s) => r.with_test_only_budget_seconds(s),
                None => Ok(r),
            })
            .map_err(|e| JsError::new(&e.text()))?;
        if let Some(cached) = roster_cached {
            relay.keep_roster_in_host(cached);
        }
        let paged = match &journal {
            Some(Kept::Paged(paged)) => Some(Arc::clone(paged)),
            _ => None,
        };
        let paged_store = paged.is_some();
        // How a kept store is read at start: the core's choice.
        let start = host::Start::of(journal.is_some(), paged_store, storage_given);
        Ok(RelayCore {
            relay,
            journal,
            exchanges: RefCell::new(Table::new()),
            background: RefCell::new(Background::new(paged)),
            background_reads: RefCell::new(None),
            opening: RefCell::new(Opening::default()),
            refusals: RefCell::new(Refusals::default()),
            saving: RefCell::new(None),
            alarm: RefCell::new(Default::default()),
            timeout_ms,
            start,
            wake,
            writes: storage_given && !has("put"),
            saves: RefCell::new(if paged_store {
                Saves::paged()
            } else {
                Saves::whole()
            }),
            exchange_options: ExchangeOptions {
                metrics,
                stale_after_ms: STALE_AFTER_MS,
            },
        })
    }

    /// The relay's next own job between requests (the roster's reads of Polar, the
    /// reconcile's, and with a paged store their loads and the stored keys' listing; the core
    /// decides which and when, as natively): `{id, url, headers}` to `GET` of Polar now (the
    /// headers hold the token: never log them), its answer (`{status, headers, body}`, or
    /// `{thrown: name}`, as `give`'s `upstream`) given to `pollAnswered`; `{id, load}` to read what `load` names (`{keys,
    /// lists}`, as `want`'s `load`), then `pollAnswered(id, {loaded})` with what was read (as
    /// `give` takes it; `{loaded: null}`: it could not be); `{id, list: {prefix, after,
    /// limit}}` to list at most `limit` of the storage's keys under `prefix`, those after the
    /// key `after` (absent: from the first), then `pollAnswered(id, keys)` with the keys (in
    /// order) or `{error: message}`; `{wait: ms}` (at most a timer's longest wait) when there is nothing
    /// to do before then (a grant webhook's refetch may come sooner: poll again after each
    /// request); `null` when there will be nothing (no roster, no reconcile, no webhooks' silence
    /// to watch: with webhooks on, the wait is never past the time the silence's warning is due).
    pub fn poll(&self, now_ms: f64, monotonic_ms: f64) -> Result<JsValue, JsError> {
        let polled = self
            .background
            .borrow_mut()
            .poll(&self.relay, now(now_ms, monotonic_ms));
        Ok(match polled {
            BackgroundPoll::Send(read) => with_id(read_js(&read), read.id()),
            BackgroundPoll::Load { id, missing } => {
                let reads = layout::load_reads(&missing, &[]);
                let (asked, since) = self.reading(&reads);
                let out = wrapped("load", &reads_js(&asked)?);
                *self.background_reads.borrow_mut() = Some((id, reads, since));
                with_id(out, id)
            }
            BackgroundPoll::List { id, page } => {
                let list = layout::rows_list(page.prefix, page.after.as_deref(), page.limit);
                with_id(wrapped("list", &json_js(serde_json::to_string(&list))?), id)
            }
            // At most a timer's longest wait (a host without an alarm sets one): it then polls
            // again and is told to wait on.
            BackgroundPoll::Wait(ms) => {
                wrapped("wait", &JsValue::from(ms.min(LONGEST_TIMER_MS) as f64)).into()
            }
            BackgroundPoll::Done => JsValue::NULL,
        })
    }

    /// What the host got for the `poll` job `id` (see `poll`), applied by the core; the
    /// store's changes (the budget, what a reconcile narrowed) are then in the journal. An
    /// unknown `id` is ignored. Returns whether the host saves the store now (`stage`, then
    /// its saves): after a read of Polar's, never between a load and the job that uses it
    /// (`Background::saves_now`). A token that cannot list the organization's keys is
    /// warned of once, on the console.
    #[wasm_bindgen(js_name = pollAnswered)]
    pub fn poll_answered(&self, id: u32, given: JsValue, now_ms: f64, monotonic_ms: f64) -> bool {
        // A load's keys and listings (`{loaded: text}`, as `give` takes them) are loaded
        // here; `{loaded: null}`: they could not be read.
        let loaded = get(&given, "loaded");
        let reads = self.background_reads.borrow_mut().take();
        let given = if let Some(text) = loaded.as_string() {
            let done = match reads.filter(|(job, _, _)| *job == id) {
                Some((_, reads, since)) => self.load_read(&reads, since, &text).is_ok(),
                None => false,
            };
            BackgroundGiven::Loaded(done)
        } else {
            given_of(&given)
        };
        let mut background = self.background.borrow_mut();
        let warning = background.answered(&self.relay, id, given, now(now_ms, monotonic_ms));
        if let Some(warning) = warning {
            log::warn!("relay: {warning}");
        }
        background.saves_now()
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

    /// The caps and timeouts every host takes from the core (`polar_license_relay::host`):
    /// `{upstreamBytes, readBytes, timeoutMs, start, wake}` (`timeoutMs`: the option's, else
    /// the core's; `start`: how the host reads its storage at start, `'open'` (`openStore`),
    /// `'restore'` (`restore` with its `load`) or absent (no store kept, `host::StoreHome`'s
    /// rule, or no storage); `wake`: how it wakes the background at `poll`'s `wait`,
    /// `'alarm'` (the storage's, as `alarm` rules), `'wake'` (the storage's own) or
    /// `'timer'`).
    pub fn caps(&self) -> JsValue {
        let out = wrapped(
            "upstreamBytes",
            &JsValue::from(host::MAX_UPSTREAM_BYTES as f64),
        );
        set(
            &out,
            "readBytes",
            &JsValue::from(host::MAX_READ_BYTES as f64),
        );
        set(&out, "timeoutMs", &JsValue::from(self.timeout_ms as f64));
        if let Some(start) = self.start {
            set(&out, "start", &JsValue::from_str(start.as_str()));
        }
        set(&out, "wake", &JsValue::from_str(self.wake.as_str()));
        out.into()
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

    /// The storage's alarm for the background's next job in `ms` (`poll`'s `{wait}`), now
    /// `nowMs`: `{read: true}` (read the alarm set, then ask again with it as `stored`, null
    /// when none), `{set: at}` (set it at `at`) or null (one rings sooner). The rule is the
    /// core's (`host::Alarm`).
    pub fn alarm(&self, now_ms: f64, ms: f64, stored: JsValue) -> JsValue {
        use host::Ring;
        let whole = |x: f64| if x.is_finite() { x.max(0.0) as u64 } else { 0 };
        let now = whole(now_ms);
        let stored = (!stored.is_undefined()).then(|| stored.as_f64().map(whole));
        match self
            .alarm
            .borrow_mut()
            .wake(now, now.saturating_add(whole(ms)), stored)
        {
            Ring::Keep => JsValue::NULL,
            Ring::Read => wrapped("read", &JsValue::TRUE).into(),
            Ring::Set(at) => wrapped("set", &JsValue::from(at as f64)).into(),
        }
    }

    /// Stages the store's changes since the last call for the next save ([`RelayCore::save_step`]):
    /// from now on every read sees them (a paged store), until they are saved.
    pub fn stage(&self) {
        let mut saves = self.saves.borrow_mut();
        match &self.journal {
            Some(Kept::Paged(paged)) => {
                let roster = self.relay.roster_changes();
                // The cache lets go of what was touched least recently past its bound
                // (`store.cacheEntries`), unless a background load waits for its use.
                let held = self.background.borrow().holds_loads();
                saves.stage_writes(saves::take_writes(paged, &roster, held));
            }
            Some(Kept::Whole(whole)) => saves.stage_items(whole.take()),
            None => {}
        }
    }

    /// The store's save, one storage call at a time: `saveStep()` begins one (every change
    /// staged so far, a failed save's first), then `saveStep(outcome)` with how each call went
    /// (`{}` done, `{refused: '[[key, why]]'}` a storage's own refusals for good, JSON text,
    /// `{error: name, why}` the storage's error as caught). Each step is `{put: [[key, value]]}` (at most 128
    /// values: one call), `{delete: [key]}` (at most 128), `{write: [[key, value | null]]}`
    /// (either, for a storage whose own `write` stands for both), `{save: items}` (a store saved
    /// whole: journal items for `storage.save`), `{failed: why}` (the save failed: its changes
    /// are kept for the next) or `null` (saved, or nothing to save). The batches, a put refused
    /// as a whole written key by key, and which values are dropped for good are the core's
    /// (`store::saves::writing`, `store::layout::Refusals`); it logs what it drops.
    #[wasm_bindgen(js_name = saveStep)]
    pub fn save_step(&self, outcome: JsValue) -> Result<JsValue, JsError> {
        let mut saving = self.saving.borrow_mut();
        let mut saves = self.saves.borrow_mut();
        let end = if outcome.is_undefined() {
            *saving = None;
            let Some(batch) = saves.batch() else {
                return Ok(JsValue::NULL);
            };
            if !matches!(self.journal, Some(Kept::Paged(_))) {
                *saving = Some(Saving::Whole);
                return Ok(wrapped("save", &json_js(Ok(batch.to_string()))?).into());
            }
            *saving = Some(Saving::Paged(Writing::new(layout::writes_of(&batch))));
            None
        } else {
            // A storage's own refusals for good (`[[key, why]]`, JSON text): logged, dropped.
            if let Some(text) = get(&outcome, "refused").as_string() {
                let refused = serde_json::from_str(&text).unwrap_or_default();
                for (key, why) in layout::writes_of(&refused) {
                    writing::dropped(&key, why.as_ref().and_then(|w| w.as_str()).unwrap_or(""));
                }
            }
            let error = get(&outcome, "error");
            let result = match error.is_undefined() {
                true => Ok(()),
                false => Err(StorageError {
                    name: error.as_string().unwrap_or_default(),
                    message: get(&outcome, "why")
                        .as_string()
                        .unwrap_or_else(|| "error".into()),
                }),
            };
            match saving.as_mut() {
                Some(Saving::Paged(w)) => {
                    w.ended(result);
                    None
                }
                Some(Saving::Whole) => Some(result.map_err(|e| e.message)),
                None => return Ok(JsValue::NULL),
            }
        };
        let end = match (end, saving.as_mut()) {
            (Some(end), _) => end,
            (None, Some(Saving::Paged(w))) => match w.next(&mut self.refusals.borrow_mut()) {
                Next::Call(call) => return self.storage_call(call),
                Next::Saved(dropped) => {
                    for (key, why) in dropped {
                        writing::dropped(&key, &why);
                    }
                    Ok(())
                }
                Next::Failed(why) => Err(why),
            },
            (None, _) => return Ok(JsValue::NULL),
        };
        *saving = None;
        Ok(match end {
            Ok(()) => {
                saves.ended(true);
                JsValue::NULL
            }
            Err(why) => {
                saves::save_failed(&why);
                saves.ended(false);
                wrapped("failed", &JsValue::from_str(&why)).into()
            }
        })
    }

    /// A paged store's opening, one step at a time: `openStore()` first, then
    /// `openStore(read)` with what was read (`{values, lists}` as JSON text, as `give`'s
    /// `loaded`): each step is `{calls?: [call], reads: {keys, lists}}` (make the calls,
    /// each a `{put}` or `{write}` as `saveStep`'s, then read) until `{done: true}`. A storage of an older layout is migrated first. Throws
    /// without a paged store.
    #[wasm_bindgen(js_name = openStore)]
    pub fn open_store(
        &self,
        read: Option<String>,
        monotonic_ms: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let Some(Kept::Paged(paged)) = &self.journal else {
            return Err(JsError::new("openStore: the relay has no paged store"));
        };
        let mut opening = self.opening.borrow_mut();
        let Some(read) = read else {
            return Ok(wrapped("reads", &reads_js(&opening.first())?).into());
        };
        match opening.step(&read_of(&read)?) {
            Open::Next { puts, reads } => {
                let out = wrapped("reads", &reads_js(&reads)?);
                if !puts.is_empty() {
                    // The storage's calls, at most `KEYS_PER_CALL` values each.
                    let calls = Array::new();
                    for call in puts.chunks(writing::KEYS_PER_CALL) {
                        calls.push(&self.storage_call(Call::Put(call.to_vec()))?);
                    }
                    set(&out, "calls", &calls.into());
                }
                Ok(out.into())
            }
            Open::Done(started) => {
                // The roster's next page: not paged in again when it was current
                // (`monotonicMs`: the clock `begin` is given).
                if let Some(page) = started.roster_page {
                    self.relay
                        .roster_restore(page, now(0.0, monotonic_ms.unwrap_or(0.0)));
                }
                paged.restore(started.items);
                // The webhook silence counts from the last webhook the store kept.
                self.relay.reload_last_webhook();
                Ok(wrapped("done", &JsValue::TRUE).into())
            }
        }
    }

    /// Loads what the host persisted (JSON: `put`, `webhook` and `budget` items; a paged
    /// store opens with `openStore` instead); an item that does not read back is skipped.
    /// Returns how many items were read.
    pub fn restore(&self, items: &str) -> Result<u32, JsError> {
        let Some(kept) = &self.journal else {
            return Ok(0);
        };
        let read: Vec<JournalItem> = items_of(items)?;
        let n = read.len() as u32;
        match kept {
            Kept::Whole(j) => j.restore(read),
            Kept::Paged(p) => p.restore(read),
        }
        // The webhook silence counts from the last webhook the store kept, not the start.
        self.relay.reload_last_webhook();
        Ok(n)
    }

    /// A request's exchange (issue #52: the request path as one machine, `flow::Exchange`),
    /// from its head (`{method, path, headers: [name, value][], clientIp}`): its id, for
    /// [`RelayCore::want`] and [`RelayCore::give`].
    pub fn start(&self, request: JsValue) -> u32 {
        let req = request_of(&request, &[]);
        let exchange = Exchange::new(req, self.exchange_options.clone());
        self.exchanges.borrow_mut().put(Driven {
            exchange,
            loads: Loads::default(),
            reads: None,
        })
    }

    /// What the exchange `id` needs next (`entropy`: 16 random bytes), one of
    /// `{body: max}` (read at most `max` bytes of the request's body), `{load: {keys, lists:
    /// [{prefix, after?, limit?}]}}` (read the keys' values and list the keys under each
    /// prefix, in the core's key layout), `{flight, patience?}` (wait for
    /// that flight to land, at most `patience` ms), `{send: {method, url, headers, body},
    /// leads?, patience?}` (ask Polar; this exchange leads the flight `leads`, if named, which
    /// others wait on; `patience`: how long before `{patience: true}` is given instead, the
    /// call going on),
    /// `{call: true}` (the answer of the call `send` started), `{sign: bytes}` (an Ed25519
    /// signature), `{persist: true}` (the changes are staged: save, as `stage` then the saves), `{landed: flight}`
    /// (wake the requests waiting on it), `{warn}`, `{error}` (log them), `{respond: {status,
    /// headers, body}}` (`body` null for none: `new Response(body, respond)`) (the answer: send it and ask again) or `{done: true}`. Each need that
    /// asks something is asked again until [`RelayCore::give`] answers it.
    pub fn want(
        &self,
        id: u32,
        now_ms: f64,
        monotonic_ms: f64,
        entropy: Option<Vec<u8>>,
    ) -> Result<JsValue, JsError> {
        let entropy = entropy.and_then(|e| <[u8; 16]>::try_from(e.as_slice()).ok());
        let now = now(now_ms, monotonic_ms);
        let mut table = self.exchanges.borrow_mut();
        let Some(driven) = table.get_mut(id) else {
            let out = wrapped("respond", &lost(&self.relay));
            set(&out, "done", &JsValue::TRUE);
            return Ok(out.into());
        };
        loop {
            let need = driven.exchange.want(&self.relay, now, entropy);
            let out = match need {
                Need::Body { max } => wrapped("body", &JsValue::from(max as f64)),
                Need::Load(load) => {
                    // What the host's storage holds and the cache does not, round by round,
                    // as the core's `Loads` says; else go on.
                    let Some(Kept::Paged(paged)) = &self.journal else {
                        driven.exchange.give(Given::Loaded);
                        continue;
                    };
                    let roster = load
                        .roster
                        .as_ref()
                        .and_then(|_| self.relay.roster_wants(driven.exchange.request()));
                    match driven.loads.next(paged, load.store.as_ref(), roster) {
                        Some(reads) => {
                            let (asked, since) = self.reading(&reads);
                            let out = wrapped("load", &reads_js(&asked)?);
                            driven.reads = Some((reads, since));
                            out
                        }
                        None => {
                            driven.exchange.give(Given::Loaded);
                            continue;
                        }
                    }
                }
                Need::Flight {
                    flight,
                    patience_ms,
                } => {
                    let out = wrapped("flight", &JsValue::from_str(&flight));
                    patient(&out, patience_ms);
                    out
                }
                Need::Send {
                    request,
                    method,
                    flight,
                    patience_ms,
                } => {
                    let out = wrapped("send", &ask_js(&request, method));
                    // `leads`, not `flight`: `{flight}` is the need to wait for one (a host that
                    // read a call as a wait gave `landed` for ever and never sent it).
                    if let Some(flight) = flight {
                        set(&out, "leads", &JsValue::from_str(&flight));
                    }
                    patient(&out, patience_ms);
                    out
                }
                Need::Call => wrapped("call", &JsValue::TRUE),
                // Never asked here (`Host::call_slots`): a fetch waits for no slot.
                Need::Slot { .. } => {
                    driven.exchange.give(Given::Slot);
                    continue;
                }
                Need::Sign(bytes) => wrapped("sign", &Uint8Array::from(bytes.as_slice()).into()),
                // Staged now: saved by `saveStep`'s next save, the answer waiting for it.
                Need::Persist => {
                    self.stage();
                    wrapped("persist", &JsValue::TRUE)
                }
                Need::Landed(flight) => wrapped("landed", &JsValue::from_str(&flight)),
                Need::Warn(text) => wrapped("warn", &JsValue::from_str(&text)),
                Need::Error(text) => wrapped("error", &JsValue::from_str(&text)),
                Need::Respond(r) => wrapped("respond", &response_js(&r)),
                Need::Done => {
                    table.take(id);
                    wrapped("done", &JsValue::TRUE)
                }
            };
            return Ok(out.into());
        }
    }

    /// The answer to the exchange `id` whose body could not be read (its stream broke off: a
    /// chunked framing the runtime refuses, a connection reset): a 400, the relay's own failure
    /// answer with its CORS grant, as the native server answers a body broken off; the
    /// exchange ends (nothing was asked or stored for it: a body is the first thing read).
    #[wasm_bindgen(js_name = bodyFailed)]
    pub fn body_failed(&self, id: u32) -> JsValue {
        match self.exchanges.borrow_mut().take(id) {
            Some(driven) => response_js(&self.relay.failure(
                driven.exchange.request(),
                400,
                "the request's body could not be read",
            )),
            None => lost(&self.relay),
        }
    }

    /// What the host got for the exchange `id`'s last need: `{body: Uint8Array}`, `{loaded}`
    /// (what a `load` read, JSON text: `{values: [key, value | null][], lists: ([key,
    /// value][] | null)[]}`, null for a key's value the storage does not hold; a key or a
    /// listing left out, or null, was not read; `{loaded: null}`: nothing could be read), `{landed: true}`, `{patience: true}`, `{upstream: {status,
    /// headers, body} | {thrown: name}}` (the name of what the fetch threw),
    /// `{signature: Uint8Array | name}` (the name of what WebCrypto threw: logged, and the answer
    /// goes without a lease) or `{persisted: boolean}`. An unknown `id` is ignored.
    pub fn give(&self, id: u32, given: JsValue) -> Result<(), JsError> {
        let mut table = self.exchanges.borrow_mut();
        let Some(driven) = table.get_mut(id) else {
            return Ok(());
        };
        let bytes = |name: &str| {
            get(&given, name)
                .dyn_into::<Uint8Array>()
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        let has = |name: &str| {
            let v = get(&given, name);
            !v.is_undefined()
        };
        let answer = if has("body") {
            Given::Body(bytes("body"))
        } else if has("loaded") {
            let loaded = get(&given, "loaded").as_string();
            match (loaded, driven.reads.take()) {
                (Some(text), Some((reads, since))) => {
                    self.load_read(&reads, since, &text)?;
                    // Asked again by `want`, until nothing is missing.
                    return Ok(());
                }
                // Not read: the core goes on with what it holds (a webhook whose rows are
                // missing is refused, and Polar delivers it again).
                _ => {
                    driven.loads.unread();
                    Given::Loaded
                }
            }
        } else if has("landed") {
            Given::Landed
        } else if has("patience") {
            Given::Patience
        } else if has("upstream") {
            Given::Upstream(upstream_of(&get(&given, "upstream")))
        } else if has("signature") {
            // What WebCrypto threw instead (its name): the answer goes without a lease.
            if let Some(name) = get(&given, "signature").as_string() {
                log::error!(
                    "relay: WebCrypto could not sign the lease ({name}): answering without one"
                );
            }
            Given::Signature(bytes("signature"))
        } else if has("persisted") {
            Given::Persisted(get(&given, "persisted").is_truthy())
        } else {
            return Ok(());
        };
        driven.exchange.give(answer);
        Ok(())
    }
}

impl RelayCore {
    /// One storage call as the host makes it: `{put: [[key, value]]}`, `{delete: [key]}`, or,
    /// for a storage with its own `write` and no `put` (`host::storage_calls`), `{write:
    /// [[key, value | null]]}` (null: delete).
    fn storage_call(&self, call: Call) -> Result<JsValue, JsError> {
        let (name, json) = match (call, self.writes) {
            (Call::Put(pairs), writes) => (
                if writes { "write" } else { "put" },
                layout::writes_json(pairs.into_iter().map(|(k, v)| (k, Some(v))).collect()),
            ),
            (Call::Delete(keys), true) => (
                "write",
                layout::writes_json(keys.into_iter().map(|k| (k, None)).collect()),
            ),
            (Call::Delete(keys), false) => ("delete", strings_json(keys)),
        };
        Ok(wrapped(name, &json_js(Ok(json.to_string()))?).into())
    }

    /// With a paged store: loads what the host read for `reads` (`{values, lists}`, JSON
    /// text: see `want`'s `load`), read by the core's key layout; what does not read is
    /// skipped. Given by the host as `{loaded}` to `give` (a request's load) or to
    /// `pollAnswered` (a background job's).
    fn load_read(&self, reads: &Reads, since: Reading, text: &str) -> Result<(), JsError> {
        let Some(Kept::Paged(paged)) = &self.journal else {
            return Ok(());
        };
        // What the storage gave, under the changes not saved yet (read your writes), a key
        // or listing whose save ended meanwhile left out (read again).
        let read = self.saves.borrow().read(since, reads, &read_of(text)?);
        let loaded = layout::loaded(reads, &read);
        for (digest, known) in loaded.roster {
            self.relay.roster_load(&digest, known);
        }
        paged.load(loaded.entries, loaded.rows);
        if let Some(oldest) = loaded.oldest {
            paged.load_oldest(oldest);
        }
        Ok(())
    }

    /// What the storage is asked for `reads` (what the changes waiting for a save do not
    /// answer already), and from when.
    fn reading(&self, reads: &Reads) -> (Reads, Reading) {
        let saves = self.saves.borrow();
        (saves.unread(reads), saves.reading())
    }
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

/// An exchange under way, with the rounds of loads of its current need and what the last
/// asked to read.
struct Driven {
    exchange: Exchange,
    loads: Loads,
    reads: Option<(Reads, Reading)>,
}
