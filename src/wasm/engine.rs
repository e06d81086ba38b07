//! The npm package's engine: the sans-IO core behind synchronous exports.
//!
//! The package's `license.js` does the IO (fetch with an `AbortController` timeout, the
//! storage adapters, the clock, `crypto.getRandomValues`, the per-slot locks and the awaits)
//! and calls [`Engine`] between the steps, exactly where [`AsyncLicensing`] awaits: every
//! decision (the checks on input, the request, the classification of the answer, the grace
//! plan and settlement, the cache record, its MAC and the feature answers) is this crate's,
//! the same code the native and `AsyncLicensing` faces run (`crate::session`). The JS layer
//! only moves bytes.
//!
//! No async code, no `fetch` bindings and no JS objects built here, which keeps the wasm small:
//! arguments are strings and numbers, and every answer is JSON text that `license.js` parses:
//!
//! * an answer: `{"ok": value}` or `{"error": {"code", "detail", …extras}}` (a denial is an
//!   error with its `status`);
//! * a step that needs the network: `{"ask": {"url", "headers": [[name, value]…], "body"}}`.
//!
//! Licenses and activations come out in Polar's snake_case field names; `license.js` renames
//! them to camelCase (except inside `metadata`, `meta` and `conditions`).
//!
//! [`AsyncLicensing`]: crate::wasm::AsyncLicensing

use crate::cache::{self, MacKey};
use crate::error::{Denial, Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::fingerprint_from;
use crate::grace::{CheckOutcome, GracePolicy, Source};
use crate::key::Key;
use crate::proto::{
    parse_activate, parse_deactivate, parse_validate, ActivateRequest, Api, DeactivateRequest,
    HttpRequest, HttpResponse, Server, ValidateRequest,
};
use crate::reason::{Reason, ReasonClass};
use crate::session::{self, CacheState, Prepared, Write};
use crate::transport::{TransportError, TransportErrorKind};
use crate::wasm::bindings::{
    entitlements, parse, policy, ActivateOptions, ClientOptions, DeactivateOptions, ValidateOptions,
};
use crate::wasm::{unhex, STORAGE_PREFIX};
use serde::Serialize;
use std::time::Duration;
use wasm_bindgen::prelude::*;

// ---- JSON text out ---------------------------------------------------------------------------

/// A JSON text being written (no `serde_json::Value` on this path).
struct Json(String);

impl Json {
    fn new() -> Json {
        Json(String::with_capacity(256))
    }

    fn raw(&mut self, text: &str) -> &mut Json {
        self.0.push_str(text);
        self
    }

    fn str(&mut self, text: &str) -> &mut Json {
        self.0.push('"');
        for c in text.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let n = u32::from(c) as usize;
                    self.0.push_str("\\u00");
                    self.0.push(char::from(HEX[n >> 4]));
                    self.0.push(char::from(HEX[n & 15]));
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    fn int(&mut self, n: i64) -> &mut Json {
        if n < 0 {
            self.0.push('-');
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut m = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.0.push(char::from(d));
        }
        self
    }

    /// `,"name":` (or `"name":` right after an opening brace).
    fn key(&mut self, name: &str) -> &mut Json {
        if !self.0.ends_with('{') {
            self.0.push(',');
        }
        self.str(name).raw(":")
    }

    fn opt_str(&mut self, value: Option<&str>) -> &mut Json {
        match value {
            Some(s) => self.str(s),
            None => self.raw("null"),
        }
    }

    fn opt_int(&mut self, value: Option<i64>) -> &mut Json {
        match value {
            Some(n) => self.int(n),
            None => self.raw("null"),
        }
    }

    /// A serde-serialized value (a license, an activation).
    fn value(&mut self, value: &impl Serialize) -> &mut Json {
        match serde_json::to_string(value) {
            Ok(text) => self.raw(&text),
            // Plain data (strings, numbers, string-keyed maps) always serializes.
            Err(_) => self.raw("null"),
        }
    }

    fn done(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

fn secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `{"error":{…}}` for an [`Error`]: `code`, `detail` and the extras of its variant.
fn error_json(err: &Error) -> String {
    let mut j = Json::new();
    j.raw("{\"error\":{");
    j.key("code").str(err.reason().code());
    j.key("detail").str(&err.detail());
    match err {
        Error::InvalidInput { field, .. } => {
            j.key("field").str(field);
        }
        Error::Offline { timeout, .. } => {
            j.key("timeout")
                .raw(if *timeout { "true" } else { "false" });
        }
        Error::RateLimited {
            retry_after: Some(s),
        } => {
            j.key("retryAfter")
                .int(i64::try_from(*s).unwrap_or(i64::MAX));
        }
        Error::ServerError { status, .. }
        | Error::Protocol {
            status: Some(status),
            ..
        } => {
            j.key("status").int(i64::from(*status));
        }
        _ => {}
    }
    j.raw("}}").done()
}

/// `{"error":{…}}` for a [`Denial`]: `code`, `detail`, `status` and `remainingUsages`.
fn denial_json(denial: &Denial) -> String {
    let mut j = Json::new();
    j.raw("{\"error\":{");
    j.key("code").str(denial.reason.code());
    j.key("detail").str(&denial.detail);
    j.key("status").int(i64::from(denial.status));
    if let Some(n) = denial.remaining_usages {
        j.key("remainingUsages").int(n);
    }
    j.raw("}}").done()
}

/// `{"ask":{"url","headers","body"}}`: the request `license.js` sends with `fetch`.
fn ask_json(http: &HttpRequest, extra: Option<(&str, &str)>) -> String {
    let mut j = Json::new();
    j.raw("{\"ask\":{");
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
    if let Some((name, value)) = extra {
        j.key(name).str(value);
    }
    j.raw("}").done()
}

fn access_json(j: &mut Json, a: &FeatureAccess) {
    j.raw("{");
    j.key("feature").str(&a.feature);
    j.key("granted")
        .raw(if a.granted { "true" } else { "false" });
    j.key("why").str(a.why.code());
    j.key("licenseReason")
        .opt_str(a.license_reason.map(Reason::code));
    j.key("remainingUsage").opt_int(a.remaining_usage);
    j.key("source").opt_str(a.source.map(Source::as_str));
    j.raw("}");
}

/// The transport's result as `license.js` hands it over: `fail` 0 with the response, or
/// 1 (could not connect), 2 (timed out) or 3 (bad body: truncated or too large) with `detail`.
///
/// The `Date` header comes as unix seconds (`Date.parse` in JS, which saves the wasm an HTTP
/// date parser): it is informational only, stored in the record as `server_date` and never
/// used by a decision (see [`crate::grace::GoodVerdict::server_date`]).
fn reply(
    status: u16,
    body: Vec<u8>,
    retry_after: Option<String>,
    fail: u8,
    detail: String,
) -> Result<HttpResponse, Error> {
    let kind = match fail {
        0 => {
            let mut headers = Vec::new();
            if let Some(retry) = retry_after {
                headers.push(("retry-after".to_string(), retry));
            }
            return Ok(HttpResponse {
                status,
                headers,
                body,
            });
        }
        2 => TransportErrorKind::Timeout,
        3 => TransportErrorKind::TooLarge,
        _ => TransportErrorKind::Connect,
    };
    Err(Error::from(TransportError::new(kind, detail)))
}

/// Whether a stored install secret is usable (64 hex digits); a malformed one is replaced,
/// which only invalidates the cache (as on native).
#[wasm_bindgen(js_name = secretOk)]
pub fn secret_ok(text: &str) -> bool {
    unhex(text).is_some()
}

/// The engine under the npm package's `LicenseClient`: one organization's checked options,
/// grace policy and feature map. Every method is synchronous and returns JSON text.
#[wasm_bindgen]
pub struct Engine {
    api: Api,
    policy: GracePolicy,
    timeout: Duration,
    entitlements: Entitlements,
    machine: Option<String>,
    app_secret: Option<Vec<u8>>,
    require_activation: bool,
}

fn build(options: &str, features: &JsValue) -> Result<Engine, Error> {
    // from_slice, as everywhere on this path: one copy of serde_json's parser in the wasm.
    let o: ClientOptions = serde_json::from_slice(options.as_bytes())
        .map_err(|e| Error::invalid("options", e.to_string()))?;
    let policy = policy(o.grace_policy)?;
    let server = match (o.base_url, o.server) {
        (Some(url), _) => Server::Custom(url),
        (None, Some(server)) => Server::parse(&server),
        (None, None) => Server::Production,
    };
    let timeout = match o.timeout {
        None => crate::wasm::DEFAULT_TIMEOUT,
        Some(t) => Duration::try_from_secs_f64(t)
            .map_err(|_| Error::invalid("timeout", "must be a finite number of seconds > 0"))?,
    };
    let entitlements = entitlements(features)?;
    if timeout.is_zero() {
        return Err(Error::invalid("timeout", "must be greater than zero"));
    }
    // No User-Agent: browsers forbid setting it.
    let api = Api::new(&o.organization_id, &server)?;
    policy.validate()?;
    let machine = o
        .machine_id
        .map(|id| fingerprint_from(&id, api.organization_id()));
    Ok(Engine {
        api,
        policy,
        timeout,
        entitlements,
        machine,
        app_secret: o.app_secret.map(String::into_bytes),
        require_activation: o.require_activation,
    })
}

impl Engine {
    fn org(&self) -> &str {
        self.api.organization_id()
    }

    fn mac(&self, key: &Key, secret: &str) -> MacKey {
        session::mac_key(
            key,
            self.org(),
            &unhex(secret).unwrap_or_default(),
            self.machine.as_deref(),
            self.app_secret.as_deref(),
        )
    }

    fn record(&self, key: &Key, secret: &str, stored: Option<&str>) -> Option<crate::Record> {
        session::trusted(
            stored.map(str::as_bytes),
            &self.mac(key, secret),
            self.org(),
            key,
        )
    }

    fn seal(&self, key: &Key, secret: &str, record: &crate::Record) -> String {
        let bytes = cache::encode(record, &self.mac(key, secret));
        // The cache format is UTF-8 text (a header, compact JSON and hex), so this is lossless.
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `{"listed":{name: answer…},"unlisted": answer}` for a licensed verdict.
    fn features_json(&self, j: &mut Json, verdict: &CheckOutcome) {
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

    /// The answer to a check: the licensed result, or the denial or error it is; with
    /// `feature`, the feature's answer whatever the verdict (only error-class reasons fail).
    fn outcome_json(&self, outcome: CheckOutcome, feature: Option<&str>) -> String {
        if let Some(feature) = feature {
            if let CheckOutcome::Unverified(e) = &outcome {
                if e.reason().class() == ReasonClass::Error {
                    return error_json(e);
                }
            }
            let mut j = Json::new();
            j.raw("{\"ok\":");
            access_json(&mut j, &self.entitlements.check(feature, &outcome));
            return j.raw("}").done();
        }
        let mut j = Json::new();
        match &outcome {
            CheckOutcome::Licensed {
                source,
                license,
                grace_remaining,
                verified_at,
            } => {
                j.raw("{\"ok\":{");
                j.key("license").value(&license.license_key);
                j.key("activation").value(&license.activation);
                j.key("source").str(source.as_str());
                j.key("graceRemaining").opt_int(secs(*grace_remaining));
                j.key("verifiedAt").int(*verified_at);
                j.key("features");
                self.features_json(&mut j, &outcome);
                j.raw("}}").done()
            }
            CheckOutcome::Denied(denial) => denial_json(denial),
            CheckOutcome::Unverified(err) => error_json(err),
        }
    }
}

#[wasm_bindgen]
impl Engine {
    /// `options`: the JSON of `LicenseClient`'s options without `storage`, `clock` and
    /// `features` (the map comes as the JS object). Throws the error JSON text for a bad
    /// option (`invalid_input`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, features: JsValue) -> Result<Engine, JsValue> {
        build(options, &features).map_err(|e| JsValue::from_str(&error_json(&e)))
    }

    /// The whole-request timeout in milliseconds.
    #[wasm_bindgen(getter)]
    pub fn timeout(&self) -> f64 {
        self.timeout.as_secs_f64() * 1000.0
    }

    /// The storage name of `key`'s record: `polar-license.v1-<32 hex>`.
    pub fn slot(&self, key: &str) -> String {
        let mut name = String::from(STORAGE_PREFIX);
        name.push_str(&cache::slot_name(self.org(), key));
        name
    }

    /// Step 1 of a grace-aware check of `key`, with the install secret and the stored record
    /// (if any) read at `now` (unix seconds). With `cache_error` (the storage failed) the check
    /// is online only. Answers `{"ask": request}`, or the answer itself (see
    /// [`Engine::check_end`] for `feature`).
    #[wasm_bindgen(js_name = checkBegin)]
    pub fn check_begin(
        &self,
        key: String,
        secret: &str,
        stored: Option<String>,
        now: f64,
        cache_error: Option<String>,
        feature: Option<String>,
    ) -> String {
        let key = Key::new(key);
        let record = match cache_error {
            Some(_) => None,
            None => self.record(&key, secret, stored.as_deref()),
        };
        let req = match session::plain_check_request(
            &key,
            record.as_ref(),
            self.machine.as_deref(),
            self.require_activation,
        ) {
            Ok(req) => req,
            Err(e) => {
                // As on native: without the cache the remembered activation is unknown, so the
                // storage failure is the answer; with it, nothing remembered is `activation_id`.
                let e = match cache_error {
                    Some(detail) => Error::Cache { detail },
                    None => e,
                };
                return self.outcome_json(CheckOutcome::Unverified(e), feature.as_deref());
            }
        };
        let prepared = match cache_error {
            // Without the cache: the request is checked and sent, nothing else.
            Some(_) => match self.api.validate_request(&req) {
                Ok(http) => return ask_json(&http, None),
                Err(e) => Prepared::Done(CheckOutcome::Unverified(e)),
            },
            None => session::prepare(&self.api, record.as_ref(), &req, now as i64, &self.policy),
        };
        match prepared {
            Prepared::Done(outcome) => self.outcome_json(outcome, feature.as_deref()),
            Prepared::Ask { http, .. } => ask_json(&http, None),
        }
    }

    /// Step 2 of a check, after the request of [`Engine::check_begin`] (called with the same
    /// arguments) was answered (`status`, `body`, `date`, `retry_after`) or failed (`fail`,
    /// `detail`). Answers `{"answer": answer, "write": record text or null, "strict": bool}`:
    /// `license.js` stores `write` and, when that fails and `strict` is set, removes the
    /// stored record (a denial that cannot be written must not leave an old grant behind).
    ///
    /// The answer is `{"ok": result}` for a licensed verdict, else the denial or error; with
    /// `feature`, `{"ok": the feature's answer}` for every verdict but an error-class one.
    #[wasm_bindgen(js_name = checkEnd)]
    #[allow(clippy::too_many_arguments)]
    pub fn check_end(
        &self,
        key: String,
        secret: &str,
        stored: Option<String>,
        now: f64,
        cache_error: Option<String>,
        feature: Option<String>,
        status: u16,
        body: Vec<u8>,
        date: Option<f64>,
        retry_after: Option<String>,
        fail: u8,
        detail: String,
    ) -> String {
        let key = Key::new(key);
        let now = now as i64;
        let response = reply(status, body, retry_after, fail, detail);
        let (write, outcome) = match cache_error {
            Some(cache_error) => {
                let online = response.and_then(|r| parse_validate(&r));
                let cache_error = Error::Cache {
                    detail: cache_error,
                };
                let outcome = session::online_only(online, &cache_error, now);
                (Write::Nothing, outcome)
            }
            None => {
                let record = self.record(&key, secret, stored.as_deref());
                let req =
                    session::remembered_request(&key, record.as_ref(), self.machine.as_deref());
                let query = match crate::grace::Query::from_request(self.org(), &req) {
                    Ok(q) => q,
                    Err(e) => return error_json(&e),
                };
                let date = date.filter(|d| d.is_finite()).map(|d| d as i64);
                let online = response.and_then(|r| Ok((parse_validate(&r)?, date)));
                session::conclude(record, &query, now, &self.policy, online)
            }
        };
        let mut j = Json::new();
        j.raw("{\"answer\":")
            .raw(&self.outcome_json(outcome, feature.as_deref()));
        match write {
            Write::Nothing => j.key("write").raw("null"),
            Write::Save {
                record,
                must_not_grant,
            } => j
                .key("write")
                .str(&self.seal(&key, secret, &record))
                .key("strict")
                .raw(if must_not_grant { "true" } else { "false" }),
        };
        j.raw("}").done()
    }

    /// One online validation, no cache: `{"ask": request}` or the `invalid_input` error.
    #[wasm_bindgen(js_name = validateBegin)]
    pub fn validate_begin(&self, key: String, options: &str) -> String {
        let o: ValidateOptions = match parse("options", options) {
            Ok(o) => o,
            Err(e) => return error_json(&e),
        };
        let req = ValidateRequest {
            key: Some(key.into()),
            activation_id: o.activation_id,
            benefit_id: o.benefit_id,
            customer_id: o.customer_id,
            increment_usage: o.increment_usage,
            conditions: o.conditions,
        };
        match self.api.validate_request(&req) {
            Ok(http) => ask_json(&http, None),
            Err(e) => error_json(&e),
        }
    }

    /// The answer to [`Engine::validate_begin`]'s request: `{"ok": {license, activation,
    /// features}}` (the feature answers of an online verdict), or the denial or error.
    #[wasm_bindgen(js_name = validateEnd)]
    #[allow(clippy::too_many_arguments)]
    pub fn validate_end(
        &self,
        now: f64,
        status: u16,
        body: Vec<u8>,
        _date: Option<f64>,
        retry_after: Option<String>,
        fail: u8,
        detail: String,
    ) -> String {
        let verdict =
            reply(status, body, retry_after, fail, detail).and_then(|r| parse_validate(&r));
        let license = match verdict {
            Ok(Verdict::Accepted(v)) => v,
            Ok(Verdict::Denied(d)) => return denial_json(&d),
            Err(e) => return error_json(&e),
        };
        let verdict = CheckOutcome::Licensed {
            source: Source::Online,
            license: Box::new(license),
            grace_remaining: None,
            verified_at: now as i64,
        };
        let mut j = Json::new();
        j.raw("{\"ok\":{");
        if let CheckOutcome::Licensed { license, .. } = &verdict {
            j.key("license").value(&license.license_key);
            j.key("activation").value(&license.activation);
        }
        j.key("features");
        self.features_json(&mut j, &verdict);
        j.raw("}}").done()
    }

    fn activate_request(
        &self,
        key: String,
        options: &str,
    ) -> Result<(ActivateRequest, Key), Error> {
        let o: ActivateOptions = parse("options", options)?;
        let mut req = ActivateRequest::new(key, o.label);
        req.conditions = o.conditions;
        req.meta = o.meta;
        session::bound_activation(&req, self.machine.as_deref())
    }

    /// An activation: `{"ask": request}` (with the machine fingerprint in the conditions,
    /// when bound) or the `invalid_input` error.
    #[wasm_bindgen(js_name = activateBegin)]
    pub fn activate_begin(&self, key: String, options: &str) -> String {
        match self
            .activate_request(key, options)
            .and_then(|(req, _)| self.api.activate_request(&req))
        {
            Ok(http) => ask_json(&http, None),
            Err(e) => error_json(&e),
        }
    }

    /// The answer to [`Engine::activate_begin`]'s request: `{"ok": {activation, license}}`,
    /// or the denial or error. On `ok`, `license.js` remembers the activation with
    /// [`Engine::remember`].
    #[wasm_bindgen(js_name = activateEnd)]
    pub fn activate_end(
        &self,
        status: u16,
        body: Vec<u8>,
        _date: Option<f64>,
        retry_after: Option<String>,
        fail: u8,
        detail: String,
    ) -> String {
        match reply(status, body, retry_after, fail, detail).and_then(|r| parse_activate(&r)) {
            Ok(Verdict::Accepted(read)) => {
                let mut j = Json::new();
                j.raw("{\"ok\":{");
                j.key("activation").value(&read.activation);
                j.key("license").value(&read.license_key);
                j.raw("}}").done()
            }
            Ok(Verdict::Denied(d)) => denial_json(&d),
            Err(e) => error_json(&e),
        }
    }

    /// The record text after activation `id` (labelled `label`) was made with `options`:
    /// the stored record (if any, and trusted) with the activation remembered.
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &self,
        key: String,
        options: &str,
        secret: &str,
        stored: Option<String>,
        id: String,
        label: String,
        now: f64,
    ) -> String {
        let (req, key) = match self.activate_request(key, options) {
            Ok(bound) => bound,
            Err(e) => return error_json(&e),
        };
        let now = now as i64;
        let activation = crate::grace::StoredActivation {
            id,
            label,
            conditions: req.conditions,
            created_at: now,
        };
        let record = self.record(&key, secret, stored.as_deref());
        let record = session::remember(record, self.org(), &key, activation, now);
        let mut j = Json::new();
        j.raw("{\"ok\":").str(&self.seal(&key, secret, &record));
        j.raw("}").done()
    }

    /// A deactivation of `options.activationId`, else of the remembered activation:
    /// `{"ask": request, "id": activation id}` or the `invalid_input` error.
    #[wasm_bindgen(js_name = deactivateBegin)]
    pub fn deactivate_begin(
        &self,
        key: String,
        options: &str,
        secret: &str,
        stored: Option<String>,
    ) -> String {
        let o: DeactivateOptions = match parse("options", options) {
            Ok(o) => o,
            Err(e) => return error_json(&e),
        };
        let key = Key::new(key);
        let record = self.record(&key, secret, stored.as_deref());
        let id = match session::deactivation_target(o.activation_id.as_deref(), record.as_ref()) {
            Ok(id) => id,
            Err(e) => return error_json(&e),
        };
        match self
            .api
            .deactivate_request(&DeactivateRequest::new(key, id.as_str()))
        {
            Ok(http) => ask_json(&http, Some(("id", &id))),
            Err(e) => error_json(&e),
        }
    }

    /// The answer to [`Engine::deactivate_begin`]'s request for activation `id`:
    /// `{"answer": {"ok": {"activationId"}} or the denial or error, "write": record text or
    /// null}` (the activation is forgotten once it is gone on the server).
    #[wasm_bindgen(js_name = deactivateEnd)]
    #[allow(clippy::too_many_arguments)]
    pub fn deactivate_end(
        &self,
        key: String,
        secret: &str,
        stored: Option<String>,
        id: String,
        status: u16,
        body: Vec<u8>,
        _date: Option<f64>,
        retry_after: Option<String>,
        fail: u8,
        detail: String,
    ) -> String {
        let verdict = match reply(status, body, retry_after, fail, detail)
            .and_then(|r| parse_deactivate(&r))
        {
            Ok(verdict) => verdict,
            Err(e) => return error_json(&e),
        };
        let key = Key::new(key);
        let record = self.record(&key, secret, stored.as_deref());
        let write = session::forget_activation(record, &id, &verdict);
        let mut j = Json::new();
        j.raw("{\"answer\":");
        match &verdict {
            Verdict::Accepted(()) => {
                j.raw("{\"ok\":{\"activationId\":").str(&id).raw("}}");
            }
            Verdict::Denied(d) => {
                j.raw(&denial_json(d));
            }
        }
        j.key("write");
        match write {
            Some(record) => j.str(&self.seal(&key, secret, &record)),
            None => j.raw("null"),
        };
        j.raw("}").done()
    }

    /// What the stored record says about `key` at `now`: `{"ok": status}`.
    pub fn status(&self, key: String, secret: &str, stored: Option<String>, now: f64) -> String {
        let key = Key::new(key);
        let status = session::status(
            stored.as_deref().map(str::as_bytes),
            &self.mac(&key, secret),
            self.org(),
            &key,
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
        j.key("untrusted").opt_str(untrusted);
        j.key("now").int(status.now);
        j.key("graceRemaining")
            .opt_int(secs(status.grace_remaining));
        j.key("clockRollback").opt_int(
            status
                .clock_rollback
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        );
        j.key("verifiedAt").opt_int(good.map(|g| g.verified_at));
        j.key("license");
        match good {
            Some(g) => j.value(&g.license.license_key),
            None => j.raw("null"),
        };
        j.key("activation");
        match record.and_then(|r| r.activation.as_ref()) {
            Some(a) => j.value(a),
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
