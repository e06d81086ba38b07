//! The npm package's engine: the sans-IO core behind synchronous exports.
//!
//! The package's `license.js` does the IO (fetch with an `AbortController` timeout, the
//! storage adapters, the clock, `crypto.getRandomValues`, the per-slot locks, the set of keys
//! being asked and the awaits) for the core's machines ([`crate::machines`]: the check,
//! validate, activate and deactivate, the same machines [`AsyncLicensing`] and the native
//! `Licensing` drive): every decision (the checks on input, the request, the classification
//! of the answer, the grace plan and settlement, the cache record, its seal and ledger, the
//! feature answers) is the core's, the same code the native and `AsyncLicensing` faces run,
//! and so is the order of the steps. The JS layer only moves bytes, with one drive loop.
//!
//! No async code, no `fetch` bindings, no serde and no JS objects built here, which keeps the
//! wasm small (issue #17): every step goes through one export, [`Engine::call`] (its name and
//! its arguments, strings and numbers, in an array); Polar's answers and the records' bodies
//! are read by the core's strict JSON reader ([`polar_license::strict`], the same first reading
//! the native faces give every answer), licenses are checked and written by the core's table
//! of Polar's model ([`polar_license::schema`], through [`polar_license::answers`]), the options
//! are read from the JS objects, and every answer is JSON text that `license.js` parses:
//!
//! * an answer: `{"ok": value}` or `{"error": {"code", "detail", …extras}}` (a denial is an
//!   error with its `status`);
//! * a machine's want, and its answer when done: see [`crate::machines`];
//! * the other steps (the remembered key, `status`, the storage names) answer their value, or
//!   an answer;
//! * in signed mode, `status` may instead be `{"verify": [[id, key, message, signature]…]}`:
//!   lease signatures for the host to verify before the step runs again ([`crate::verify`]).
//!
//! Licenses and activations come out in Polar's snake_case field names; `license.js` renames
//! them to camelCase (except inside `metadata`, `meta` and `conditions`).
//!
//! [`AsyncLicensing`]: polar_license::wasm::AsyncLicensing

use crate::bindings::{
    activate_options, entitlements, policy, validate_options, ClientOptions, PolicyOptions,
};
use crate::verify::{Ask, HostEd25519};
use polar_license::answers::SchemaLicense;
use polar_license::cache::install_secret_from_hex as unhex;
use polar_license::error::{Denial, Error};
use polar_license::features::{Entitlements, FeatureAccess};
use polar_license::fingerprint::fingerprint_from;
use polar_license::flow::{self, LeaseMemo, Slot};
use polar_license::grace::{GracePolicy, LeaseWindow, Source};
use polar_license::json::{JsonIn, JsonOut as Json, Num};
use polar_license::key::Key;
use polar_license::lease::RelayKeys;
use polar_license::perpetual::ReleaseDate;
use polar_license::proto::{ActivateRequest, Api, HttpRequest, Server, ValidateRequest};
use polar_license::reason::{Reason, ReasonClass};
use polar_license::strict::{self, Value};
use polar_license::trial::Trial;
use polar_license::wasm::STORAGE_PREFIX;
use polar_license::{CacheState, Standing};
use std::cell::RefCell;
use std::time::Duration;

use wasm_bindgen::prelude::*;

/// The grace types over the license as the schema path reads it.
pub(crate) type CheckOutcome = polar_license::grace::CheckOutcome<SchemaLicense>;

fn secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `{"error":{…}}` for an [`Error`]: `code`, `detail` and the extras of its variant.
pub(crate) fn error_json(err: &Error) -> String {
    let mut j = Json::new();
    j.raw("{\"error\":{").error_members(err);
    match err {
        Error::Offline { timeout, .. } => {
            j.key("timeout").bool(*timeout);
        }
        Error::RateLimited {
            retry_after: Some(s),
        } => {
            j.key("retryAfter")
                .int(i64::try_from(*s).unwrap_or(i64::MAX));
        }
        _ => {}
    }
    if let Some(status) = err.status() {
        j.key("status").int(i64::from(status));
    }
    j.raw("}}").done()
}

/// A trial as JSON: `{local, state, startedAt, endsAt, daysLeft}`, or `null`.
pub(crate) fn trial_json(j: &mut Json, trial: Option<&Trial>) {
    let Some(t) = trial else {
        j.raw("null");
        return;
    };
    t.write_json(j);
}

/// `{"error":{…}}` for a [`Denial`]: `code`, `detail`, `status` and `remainingUsages`.
pub(crate) fn denial_json(denial: &Denial) -> String {
    let mut j = Json::new();
    // The reason's sentence: why the key stopped (`stopped` below) is said by license.js in the
    // core's words, from polar_license_stopped.js (written from the core at pack time by
    // scripts/npm/stopped.mjs), loaded only for a denial that carries it: this wasm, which every
    // check downloads, holds none of them.
    j.raw("{\"error\":{").denial_members(denial);
    if let Some(n) = denial.remaining_usages {
        j.key("remainingUsages").int(n);
    }
    if denial.previously_valid {
        j.key("previouslyValid").bool(true);
        if denial.activation_gone {
            j.key("activationGone").bool(true);
        }
        if let Some(hint) = denial.hint() {
            j.key("hint").str(hint);
        }
    }
    // Whether the customer portal is the next step's place (the core's, `Denial::offers_portal`:
    // no face keeps its own set of reasons, issue #80).
    if denial.offers_portal() {
        j.key("portal").bool(true);
    }
    // Why the key stopped (issue #68): `{kind, at, until, again}`, the dates unix seconds or
    // null; `again`: the key may license again as it is (`StopKind::comes_back`).
    if let Some(s) = denial.stopped {
        j.key("stopped").raw("{");
        j.key("kind").str(s.kind.code());
        j.key("again").bool(s.kind.comes_back());
        for (name, date) in [("at", s.at), ("until", s.until)] {
            match date {
                Some(n) => j.key(name).int(n),
                None => j.key(name).null(),
            };
        }
        j.raw("}");
    }
    j.raw("}}").done()
}

/// `{"url","headers","body"}`: a request `license.js` sends with `fetch`.
pub(crate) fn request_json(j: &mut Json, http: &HttpRequest) {
    j.raw("{");
    j.key("url").str(&http.url);
    j.key("headers").raw("[");
    for (i, (name, value)) in http.headers.iter().enumerate() {
        if i > 0 {
            j.raw(",");
        }
        j.raw("[").str(name).raw(",").str(value).raw("]");
    }
    j.raw("]");
    // The body is JSON that serde_json wrote: UTF-8.
    j.key("body")
        .str(std::str::from_utf8(&http.body).unwrap_or_default());
    j.raw("}");
}

fn access_json(j: &mut Json, a: &FeatureAccess) {
    j.raw("{");
    j.key("feature").str(&a.feature);
    j.key("granted").bool(a.granted);
    j.key("why").str(a.why.code());
    j.key("licenseReason")
        .opt_str(a.license_reason.map(Reason::code));
    j.key("remainingUsage").opt_int(a.remaining_usage);
    j.key("source").opt_str(a.source.map(Source::as_str));
    j.raw("}");
}

/// Whether a stored install secret is usable (64 hex digits); a malformed one is replaced,
/// which only invalidates the cache (as on native).
pub fn secret_ok(text: &str) -> bool {
    unhex(text).is_some()
}

/// The engine under the npm package's `LicenseClient`: one organization's checked options,
/// grace policy and feature map. Every method is synchronous and returns JSON text.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) api: Api,
    pub(crate) policy: GracePolicy,
    timeout: Duration,
    entitlements: Entitlements,
    pub(crate) machine: Option<String>,
    /// The identity the cache is sealed with: `machine`, else the OS machine id's fingerprint
    /// when the host gave one (the node file store), as natively.
    seal: Option<String>,
    app_secret: Option<Vec<u8>>,
    pub(crate) require_activation: bool,
    /// Signed mode (issue #25) when not empty: the cache licenses only within a lease from
    /// these relay keys, and an online grant counts only with one.
    pub(crate) relay_keys: RelayKeys,
    /// Perpetual fallback (issue #54 item 3): the build's release date the app stated
    /// (`released`), if any.
    pub(crate) released: Option<ReleaseDate>,
    /// Trials (issue #54 item 4): the benefit ids of the app's trial products
    /// (`trialBenefit`), when stated (a key's trial is then reported, `null` when it is none).
    pub(crate) trial_benefits: Option<Vec<String>>,
    /// The last lease verified (the core's lease gate): one Ed25519 verification per lease,
    /// not per cached check, as natively.
    pub(crate) lease_memo: LeaseMemo,
    /// Lease signatures, verified by the host ([`crate::verify`]).
    pub(crate) ed25519: HostEd25519,
    /// The last slot a check opened and the last cached answer it recorded, as natively.
    pub(crate) memo: polar_license::flow::Memo<SchemaLicense>,
    /// The machines being driven ([`crate::machines`]).
    pub(crate) runs: RefCell<crate::runs::Runs>,
    /// What the last [`Engine::check`] was handed (its slot and the slot's bytes).
    pub(crate) kept: RefCell<Option<crate::runs::Kept>>,
    /// Where an activate at the limit lists the key's activations (issue #80, self-healing
    /// activations): the `relay` option, else signed mode's base URL (the relay); `None`:
    /// nowhere, and the limit stands.
    pub(crate) relay: Option<polar_license::portal::Portal>,
}

fn build(o: ClientOptions, features: &Value) -> Result<Engine, Error> {
    let policy = policy(o.grace_policy);
    // Perpetual fallback (issue #54 item 3): the day's unix seconds (license.js reads the
    // app's 'YYYY-MM-DD').
    let released = o.released.map(|secs| ReleaseDate::from_unix(secs as i64));
    // Trials (issue #54 item 4): license.js has checked the list of benefit ids.
    let trial_benefits = o.trial_benefits;
    let server = match (o.base_url, o.server) {
        (Some(url), _) => Server::Custom(url),
        (None, Some(server)) => Server::parse(&server),
        (None, None) => Server::Production,
    };
    // license.js has checked it (a finite number of seconds > 0, at most 600); one shorter than
    // a microsecond is zero here, refused below.
    let timeout = o
        .timeout
        .and_then(crate::bindings::duration)
        .unwrap_or(polar_license::wasm::DEFAULT_TIMEOUT);
    // No feature map and no relay keys (the common case) run neither reader: each is a
    // function of its own that V8 compiles on its first call only (issue #38).
    let entitlements = if JsonIn::is_null(features) {
        Entitlements::new()
    } else {
        entitlements(features)?
    };
    let relay_keys = match o.relay_keys.as_deref() {
        Some(list) => RelayKeys::parse(list)?,
        None => RelayKeys::new(),
    };
    if timeout.is_zero() {
        return Err(Error::invalid("timeout", "must be greater than zero"));
    }
    // No User-Agent: browsers forbid setting it.
    let mut api = Api::new(&o.organization_id, &server)?;
    if let Some(url) = o.portal_url {
        api = api.with_portal(&Server::Custom(url))?;
    }
    policy.validate()?;
    let machine = o
        .machine_id
        .map(|id| fingerprint_from(&id, api.organization_id()));
    // The relay's URL checked as the native builder checks it (`https://`, or loopback).
    let relay = polar_license::portal::known_relay(
        o.relay.as_deref(),
        !relay_keys.is_empty(),
        api.base_url(),
    )
    .map(|url| polar_license::portal::Portal::for_relay(&api, url))
    .transpose()?;
    let seal = machine.clone().or_else(|| {
        o.seal_machine_id
            .map(|id| fingerprint_from(&id, api.organization_id()))
    });
    Ok(Engine {
        api,
        policy,
        timeout,
        entitlements,
        machine,
        seal,
        app_secret: o.app_secret.map(String::into_bytes),
        require_activation: o.require_activation,
        relay_keys,
        released,
        trial_benefits,
        lease_memo: LeaseMemo::default(),
        ed25519: HostEd25519::default(),
        memo: polar_license::flow::Memo::default(),
        runs: RefCell::default(),
        kept: RefCell::default(),
        relay,
    })
}

/// `"lease":{"kid","expiresAt"}` (unix seconds, as the package's other times) or `null`: the
/// stored lease that verifies with the relay keys (always `null` in unsigned mode).
pub(crate) fn lease_json(j: &mut Json, lease: Option<&LeaseWindow>) {
    j.key("lease");
    match lease {
        Some(w) => {
            j.raw("{");
            j.key("kid").str(&w.kid);
            j.key("expiresAt").int(w.expires_at);
            j.raw("}");
        }
        None => {
            j.raw("null");
        }
    }
}

impl Engine {
    fn org(&self) -> &str {
        self.api.organization_id()
    }

    /// The slot of `key` sealed with the install secret (hex), as on native.
    pub(crate) fn sealed(&self, key: &Key, secret: &str) -> Slot {
        Slot::new(
            self.api.base_url(),
            self.org(),
            key,
            &unhex(secret).unwrap_or_default(),
            self.seal.as_deref(),
            self.app_secret.as_deref(),
        )
    }

    /// The remembered key's seal with the install secret (hex), as on native.
    fn key_seal(&self, secret: &str) -> polar_license::keyseal::KeySeal {
        polar_license::keyseal::KeySeal::new(
            self.api.base_url(),
            self.org(),
            &unhex(secret).unwrap_or_default(),
            self.seal.as_deref(),
            self.app_secret.as_deref(),
        )
    }

    /// `{"listed":{name: answer…},"unlisted": answer}` for a licensed verdict.
    pub(crate) fn features_json(&self, j: &mut Json, verdict: &CheckOutcome) {
        j.raw("{\"listed\":{");
        for (i, name) in self.entitlements.features().enumerate() {
            if i > 0 {
                j.raw(",");
            }
            j.str(name).raw(":");
            access_json(j, &self.entitlements.check(name, verdict));
        }
        j.raw("}");
        j.key("unlisted");
        access_json(j, &self.entitlements.check("", verdict));
        j.raw("}");
    }

    /// The answer to a check: the licensed result (with `reason`, the code of what happened
    /// online when the cache answered after Polar was asked; `lease`, the stored lease that
    /// verifies, `null` for none, and its grace end capped by it), or the denial or error it
    /// is; with `feature`, the feature's answer whatever the verdict (only error-class reasons
    /// fail).
    pub(crate) fn outcome_json_leased(
        &self,
        outcome: &CheckOutcome,
        feature: Option<&str>,
        fallback: Option<&Error>,
        lease: Option<&LeaseWindow>,
    ) -> String {
        if let Some(feature) = feature {
            if let CheckOutcome::Unverified(e) = outcome {
                if e.reason().class() == ReasonClass::Error {
                    return error_json(e);
                }
            }
            let mut j = Json::new();
            j.raw("{\"ok\":");
            access_json(&mut j, &self.entitlements.check(feature, outcome));
            return j.raw("}").done();
        }
        let mut j = Json::new();
        match outcome {
            CheckOutcome::Licensed {
                source,
                license,
                grace_remaining,
                verified_at,
            } => {
                j.raw("{\"ok\":{");
                j.key("license");
                license.write_license(&mut j);
                j.key("activation");
                license.write_activation(&mut j);
                j.key("source").str(source.as_str());
                j.key("graceRemaining").opt_int(secs(*grace_remaining));
                j.key("verifiedAt").int(*verified_at);
                j.key("graceEndsAt")
                    .int(self.policy.grace_end_leased(*verified_at, lease));
                lease_json(&mut j, lease);
                // Issue #68: the values the relay signed into this answer's lease, read
                // offline (`null`: not known, as `CheckReport::entitlements`'s `None`).
                j.key("entitlements");
                // The claim's values as the core checked and wrote them (JSON text, parsed
                // with the rest of this answer by the host's JSON.parse).
                match lease.and_then(|w| w.facts.entitlement_values_json()) {
                    Some(text) => j.raw(text),
                    None => j.null(),
                };
                j.key("reason").opt_str(fallback.map(|e| e.reason().code()));
                // What to tell the person, the core's words (issue #80): licensed, or licensed
                // from the cache for the grace left because Polar could not be reached.
                j.key("userMessage");
                j.str(&polar_license::message::licensed(
                    *grace_remaining,
                    *source == Source::Cache && fallback.is_some(),
                ));
                j.key("features");
                self.features_json(&mut j, outcome);
                j.raw("}}").done()
            }
            CheckOutcome::Denied(denial) => denial_json(denial),
            CheckOutcome::Unverified(err) => error_json(err),
        }
    }

    pub(crate) fn validate_request(&self, key: String, options: &str) -> ValidateRequest {
        let o = validate_options(options);
        ValidateRequest {
            key: Some(key.into()),
            activation_id: o.activation_id,
            benefit_id: o.benefit_id,
            customer_id: o.customer_id,
            increment_usage: o.increment_usage,
            conditions: o.conditions,
        }
        // Bound to this machine by the validate machine (`Update::validate`).
    }

    pub(crate) fn activate_request(&self, key: String, options: &str) -> ActivateRequest {
        let o = activate_options(options);
        let mut req = ActivateRequest::new(key, o.label);
        req.conditions = o.conditions;
        req.meta = o.meta;
        // Bound to this machine and checked by the activate machine
        // (`Update::activation`).
        req
    }
}

#[wasm_bindgen]
impl Engine {
    /// `LicenseClient`'s options as JSON text (`organizationId`, `server`, `baseUrl`, `portalUrl`, `relay`,
    /// `timeout`, `gracePolicy`, `appSecret`, `machineId`, `requireActivation`, `relayKeys`
    /// (comma-separated `KID=k4.public.…`: signed mode), in seconds
    /// where they are durations; `sealMachineId`: this machine's OS id, from the node entries),
    /// and `features` (the map, as JSON text, `null` for none), both `JSON.stringify` of the JS
    /// values and read by the core's strict reader. Throws the error JSON text for a bad option
    /// (`invalid_input`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, features: &str) -> Result<Engine, JsValue> {
        let bad = |what: &str| {
            let e = Error::invalid("options", [what, " must be a JSON object"].concat());
            JsValue::from_str(&error_json(&e))
        };
        let options = strict::parse(options.as_bytes()).map_err(|_| bad("options"))?;
        let features = strict::parse(features.as_bytes()).map_err(|_| bad("features"))?;
        let text = |name: &str| option_text(&options, name);
        let policy = options.member("gracePolicy").unwrap_or(Value::Null);
        let options = ClientOptions {
            organization_id: text("organizationId").unwrap_or_default(),
            server: text("server"),
            base_url: text("baseUrl"),
            timeout: number(&options, "timeout"),
            grace_policy: PolicyOptions {
                revalidate_after: number(&policy, "revalidateAfter"),
                grace_period: number(&policy, "gracePeriod"),
                clock_tolerance: number(&policy, "clockTolerance"),
            },
            app_secret: text("appSecret"),
            machine_id: text("machineId"),
            require_activation: options
                .member("requireActivation")
                .and_then(|v| v.boolean())
                .unwrap_or(false),
            seal_machine_id: text("sealMachineId"),
            relay_keys: text("relayKeys"),
            released: number(&options, "released"),
            trial_benefits: options.member("trialBenefit").map(|list| {
                list.items()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(JsonIn::string)
                    .collect()
            }),
            relay: text("relay"),
            portal_url: text("portalUrl"),
        };
        build(options, &features).map_err(|e| JsValue::from_str(&error_json(&e)))
    }

    /// The whole-request timeout in milliseconds.
    #[wasm_bindgen(getter)]
    pub fn timeout(&self) -> f64 {
        self.timeout.as_secs_f64() * 1000.0
    }

    /// Every step of `license.js`, by name, with its arguments in an array (one export, so
    /// the glue on both sides of the boundary is one function, not one per step):
    /// `call('status', [key, secret, record, ledger, now])`. The names and the arguments are the
    /// methods' below (in camelCase); each answers JSON text (`names` and `keySlot` storage
    /// names, `openKey` the key or `undefined`, `secretOk` `""` for a usable install
    /// secret or `undefined`, `reasonTable` the reason table). An unknown name answers
    /// `undefined`. The check, validate, activate and deactivate are the core's machines,
    /// driven with `start`, `want` and `give` ([`crate::machines`]).
    ///
    /// In signed mode any other step may answer `{"verify": [[id, public key, message,
    /// signature]…]}` (hex) instead: verify each Ed25519 signature, give the answers to
    /// `verified` (`[id, 1 or 0, id, 1 or 0, …]`) and call the same step again
    /// ([`crate::verify`]); the check wants it verified itself.
    pub fn call(&self, op: &str, args: js_sys::Array) -> Option<String> {
        let out = self.step(op, args);
        if matches!(op, "start" | "want" | "give") {
            // The core's machines ask for signatures themselves (`want`: `verify`).
            return out;
        }
        let asked = self.ed25519.take_asked();
        if asked.is_empty() {
            return out;
        }
        Some(verify_json(&asked))
    }

    /// [`Engine::call`]'s steps.
    fn step(&self, op: &str, args: js_sys::Array) -> Option<String> {
        let a = Args(args);
        Some(match op {
            "names" => self.names(&a.s(0)),
            "keySlot" => self.key_slot(),
            // A check of the remembered key when none is: the core's error, as natively.
            "noRememberedKey" => error_json(&Error::no_remembered_key()),
            "start" => match a.s(0) {
                // A check with the slot's texts as the host has just read them.
                op if op == "check" => self.check(a.s(1), &a.s(2), a.o(3), a.o(4), a.o(5)),
                op => self.start(&op, a.s(1), &a.s(2), &a.s(3)),
            },
            "want" => self.want(&a.s(0)),
            "give" => self.give(&a.s(0), &a.s(1), a.bytes(2)),
            "sealKey" => self.seal_key(a.s(0), &a.s(1)),
            "openKey" => return self.open_key(&a.s(0), &a.s(1)),
            "status" => self.status(a.s(0), &a.s(1), a.o(2), a.o(3), a.n(4)),
            "secretOk" => return secret_ok(&a.s(0)).then(String::new),
            "reasonTable" => crate::bindings::reason_table(),
            "verified" => self.verified(&a),
            _ => return None,
        })
    }
}

impl Engine {
    /// `verified`: the host's answers, `[id, 1 or 0, …]`, kept for the step run again.
    #[inline(never)] // signed mode only: compiled by V8 only then (issue #38)
    fn verified(&self, a: &Args) -> String {
        for i in (0..a.0.length()).step_by(2) {
            self.ed25519.answer(&a.s(i), a.n(i + 1) == 1.0);
        }
        String::new()
    }
}

/// `{"verify":[[id, public key, message, signature]…]}`, in hex: what the host is asked.
#[inline(never)] // signed mode only: compiled by V8 only then (issue #38)
pub(crate) fn verify_json(asked: &[Ask]) -> String {
    use polar_license::cache::hex;
    let mut j = Json::new();
    j.raw("{\"verify\":[");
    for (i, ask) in asked.iter().enumerate() {
        if i > 0 {
            j.raw(",");
        }
        j.raw("[").str(&hex(&ask.id)).raw(",");
        j.str(&hex(&ask.public_key)).raw(",");
        j.str(&hex(&ask.message)).raw(",");
        j.str(&hex(&ask.signature)).raw("]");
    }
    j.raw("]}").done()
}

/// The string member `name` of an options object. A function, not a closure inlined at each
/// of the options it reads (about 0.1 KB gzipped of the engine's wasm).
#[inline(never)]
fn option_text(o: &Value, name: &str) -> Option<String> {
    o.member(name).and_then(|v| v.string())
}

/// The number member `name` of an options object (a function, as [`option_text`]).
#[inline(never)]
fn number(o: &Value, name: &str) -> Option<f64> {
    o.member(name).and_then(|v| match v.number()? {
        Num::Int(n) => Some(n as f64),
        Num::Float(x) => Some(x),
    })
}

/// The arguments of [`Engine::call`].
struct Args(js_sys::Array);

impl Args {
    /// A string (`""` when it is none).
    fn s(&self, i: u32) -> String {
        self.0.get(i).as_string().unwrap_or_default()
    }

    /// A string, or `None` (`undefined`, `null`).
    fn o(&self, i: u32) -> Option<String> {
        self.0.get(i).as_string()
    }

    /// A number (`NaN` when it is none).
    fn n(&self, i: u32) -> f64 {
        self.0.get(i).as_f64().unwrap_or(f64::NAN)
    }

    /// Bytes (a `Uint8Array`).
    fn bytes(&self, i: u32) -> Vec<u8> {
        js_sys::Uint8Array::new(&self.0.get(i)).to_vec()
    }
}

impl Engine {
    /// The storage name of `key`'s record, `polar-license.v2-<32 hex>` (bound to the server's
    /// origin, the organization and the key); its lock's name too.
    pub fn slot(&self, key: &str) -> String {
        let name = polar_license::cache::slot_name(
            &polar_license::proto::origin(self.api.base_url()),
            self.org(),
            key,
        );
        [STORAGE_PREFIX, &name].concat()
    }

    /// The storage name of `key`'s clock note: the record's, and `-clock`.
    pub fn clock(&self, key: &str) -> String {
        polar_license::cache::clock_name(&self.slot(key))
    }

    /// The storage name of `key`'s ledger: the record's, and `-seq`.
    pub fn ledger(&self, key: &str) -> String {
        polar_license::cache::ledger_name(&self.slot(key))
    }

    /// `names`: the storage names of `key`'s record, ledger and clock note ([`Engine::slot`],
    /// [`Engine::ledger`], [`Engine::clock`]), in that order, a space between them (a name
    /// has none): one call and one SHA-256 of the key for the three, where a call each
    /// hashed it three times.
    // Every step below is a function of its own (`inline(never)`, and build-npm.sh keeps
    // wasm-opt from inlining a function with one caller back): V8 compiles a wasm function on
    // its first call, so a cached check compiles only the steps it runs, not every step's
    // body in one dispatch (the first check: 7.9 -> 6.7 ms in node, issue #38).
    #[inline(never)]
    pub fn names(&self, key: &str) -> String {
        let slot = self.slot(key);
        let (ledger, clock) = (
            polar_license::cache::ledger_name(&slot),
            polar_license::cache::clock_name(&slot),
        );
        [slot.as_str(), " ", &ledger, " ", &clock].concat()
    }

    /// The storage name of the remembered key, `polar-license.key-<32 hex>` (bound to the
    /// server's origin and the organization, as natively).
    #[inline(never)]
    pub fn key_slot(&self) -> String {
        [STORAGE_PREFIX, &self.key_seal("").slot].concat()
    }

    /// `key` sealed to be remembered (`polar_license::keyseal`, the native format, with the install
    /// `secret`): `{"ok": [storage name, text]}`, or the error for a key every request would
    /// refuse.
    #[inline(never)]
    pub fn seal_key(&self, key: String, secret: &str) -> String {
        let seal = self.key_seal(secret);
        match seal.seal(&Key::new(key)) {
            Ok(bytes) => {
                let mut j = Json::new();
                j.raw("{\"ok\":[")
                    .str(&[STORAGE_PREFIX, &seal.slot].concat());
                // The sealed key is UTF-8 text (a header and hex): lossless.
                j.raw(",")
                    .str(std::str::from_utf8(&bytes).unwrap_or_default());
                j.raw("]}").done()
            }
            Err(e) => error_json(&e),
        }
    }

    /// The key the stored `text` holds, if this install, machine and app sealed it unedited.
    #[inline(never)]
    pub fn open_key(&self, text: &str, secret: &str) -> Option<String> {
        self.key_seal(secret)
            .open(text.as_bytes())
            .ok()
            .map(|k| k.expose().to_string())
    }

    /// What the stored `record` and `ledger` say about `key` at `now`: `{"ok": status}`.
    #[inline(never)]
    pub fn status(
        &self,
        key: String,
        secret: &str,
        record: Option<String>,
        ledger: Option<String>,
        now: f64,
    ) -> String {
        let key = Key::new(key);
        let slot = self.sealed(&key, secret);
        let stored = polar_license::flow::Stored {
            record: record.map(String::into_bytes),
            ledger: ledger.map(String::into_bytes),
            clock: None,
        };
        // Opened as every machine opens a slot (signed mode's gate on its lease included).
        let opened = polar_license::flow::open_slot(&self.ctx(), &slot, &key, &stored);
        let status = flow::status(
            (*opened).clone(),
            stored.record.is_some(),
            now as i64,
            &self.policy,
        );
        let (state, untrusted, record) = match &status.state {
            CacheState::Empty => ("empty", None, None),
            CacheState::Untrusted(why) => ("untrusted", Some(why.as_str()), None),
            CacheState::Present(r) => ("present", None, Some(r)),
        };
        let good = record.and_then(|r| r.good.as_ref());
        let mut j = Json::new();
        j.raw("{\"ok\":{");
        j.key("state").str(state);
        lease_json(&mut j, record.and_then(|r| r.lease_gate.window()));
        j.key("untrusted").opt_str(untrusted);
        j.key("now").int(status.now);
        j.key("graceRemaining")
            .opt_int(secs(status.grace_remaining));
        j.key("clockRollback").opt_int(
            status
                .clock_rollback
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        );
        j.key("standing").str(status.standing.as_str());
        // Whether the records and the remembered key are bound to a machine (its OS id in the
        // node entries, or `machineId`): a browser has none to bind to.
        j.key("sealedToMachine").bool(self.seal.is_some());
        j.key("verifiedAt").opt_int(good.map(|g| g.verified_at));
        // Since a denial, the last good license is history, not the key's status.
        j.key("license");
        match good.filter(|_| status.standing != Standing::Denied) {
            Some(g) => {
                g.license.write_license(&mut j);
                &mut j
            }
            None => j.raw("null"),
        };
        j.key("activation");
        match &status.activation {
            Some(a) => {
                polar_license::cache::write_activation(&mut j, a);
                &mut j
            }
            None => j.raw("null"),
        };
        j.key("denied");
        match record.and_then(|r| r.denied.as_ref()) {
            Some(d) => {
                j.raw("{");
                j.key("code").str(d.reason.code());
                j.key("detail").str(&d.detail);
                j.key("status").int(i64::from(d.status));
                j.key("at").int(d.at);
                j.raw("}")
            }
            None => j.raw("null"),
        };
        j.key("blockedUntil")
            .opt_int(record.and_then(|r| r.blocked_until));
        j.raw("}}").done()
    }
}
