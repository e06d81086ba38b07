//! A promise face over [`AsyncLicensing`] ([`Core`]) and the `reasonTable` export.
//!
//! The npm package does not use [`Core`] (its `license.js` drives the synchronous
//! [`Engine`](crate::wasm::engine::Engine) and does the IO in JS, which keeps the wasm small);
//! it is the same JS-facing contract for Rust code that embeds this crate in its own
//! wasm-bindgen module. Options go in as JSON text and results come back as JSON text with
//! camelCase fields. Failures reject with a JS `Error` named `LicenseError` whose `code` is a stable
//! reason code (contract §1), `kind` its class (`denied`, `unverified` or `error`) and
//! `detail` the server's text or ours; the wrapper re-throws it as its `LicenseError` class.
//!
//! Every promise resolves only on success: a denial rejects too (with `kind: "denied"`), so a
//! fulfilled `check()` always means licensed. Nothing here panics.
//!
//! Feature gating: the `features` option (in `host`, as the JS object) is the entitlement map
//! ([`Entitlements`], checked when the `Core` is built: a bad entry throws `invalid_input` with
//! field `entitlements.<name>`). A licensed `check` or `validate` result carries `features`:
//! `{ listed: { <name>: answer }, unlisted: answer }`, [`AsyncLicensing::has_feature`]'s answer
//! for every feature of the map and for any name not in it, which the wrapper turns into the
//! result's `hasFeature(name)`; so every answer is the Rust one. [`Core::has_feature`] checks
//! and answers in one call.

use crate::error::{Denial, Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::grace::{CheckOutcome, GracePolicy, Source};
use crate::metadata::Metadata;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{ActivateRequest, Server, ValidateRequest};
use crate::reason::{Reason, ReasonClass};
use crate::session::{CacheState, CacheStatus};
use crate::wasm::licensing::AsyncLicensing;
use crate::wasm::store::{JsStore, WebStorage};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

/// The grace policy in seconds, as JS passes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub(crate) struct PolicyOptions {
    revalidate_after: Option<f64>,
    grace_period: Option<f64>,
    clock_tolerance: Option<f64>,
}

/// `new LicenseClient(options)`, minus `storage`, `clock`, `crypto` and `features` (passed as
/// JS values).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub(crate) struct ClientOptions {
    pub(crate) organization_id: String,
    #[serde(default)]
    pub(crate) server: Option<String>,
    #[serde(default)]
    pub(crate) base_url: Option<String>,
    #[serde(default)]
    pub(crate) timeout: Option<f64>,
    #[serde(default)]
    pub(crate) grace_policy: Option<PolicyOptions>,
    #[serde(default)]
    pub(crate) app_secret: Option<String>,
    #[serde(default)]
    pub(crate) machine_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub(crate) struct ValidateOptions {
    pub(crate) activation_id: Option<String>,
    pub(crate) benefit_id: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) increment_usage: Option<i64>,
    #[serde(default)]
    pub(crate) conditions: Metadata,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub(crate) struct ActivateOptions {
    #[serde(default)]
    pub(crate) label: String,
    #[serde(default)]
    pub(crate) conditions: Metadata,
    #[serde(default)]
    pub(crate) meta: Metadata,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, remote = "Self")]
pub(crate) struct DeactivateOptions {
    pub(crate) activation_id: Option<String>,
}

/// Options are JSON objects: read through derive's map path only (its array form, which
/// `JSON.stringify` of an options object never gives, is not compiled into the wasm).
macro_rules! object_only {
    ($($t:ident),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($t)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V)
            }
        }
    )*};
}
object_only!(
    PolicyOptions,
    ClientOptions,
    ValidateOptions,
    ActivateOptions,
    DeactivateOptions
);

pub(crate) fn parse<'a, T: Deserialize<'a> + Default>(
    field: &str,
    json: &'a str,
) -> Result<T, Error> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    // from_slice, as for Polar's answers and the cache: one copy of serde_json's parser.
    serde_json::from_slice(json.as_bytes()).map_err(|e| Error::invalid(field, e.to_string()))
}

fn seconds(field: &str, value: Option<f64>, default: Duration) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s)
            .map_err(|_| Error::invalid(field, "must be a finite number of seconds >= 0")),
    }
}

pub(crate) fn policy(options: Option<PolicyOptions>) -> Result<GracePolicy, Error> {
    let o = options.unwrap_or_default();
    let d = GracePolicy::default();
    Ok(GracePolicy {
        revalidate_after: seconds(
            "gracePolicy.revalidateAfter",
            o.revalidate_after,
            d.revalidate_after,
        )?,
        grace_period: seconds("gracePolicy.gracePeriod", o.grace_period, d.grace_period)?,
        clock_tolerance: seconds(
            "gracePolicy.clockTolerance",
            o.clock_tolerance,
            d.clock_tolerance,
        )?,
    })
}

/// The `features` option, read from the JS object itself (no JSON round trip):
/// `{ <name>: [<benefit id>, ...] }` or `{ <name>: { benefits: [...], metered: true } }`.
/// Stricter than [`Entitlements::from_json`] about the shape (no unknown keys, so a misspelt
/// `metered` is not silently dropped), and every error names its entry (field
/// `entitlements.<name>`).
pub(crate) fn entitlements(features: &JsValue) -> Result<Entitlements, Error> {
    if features.is_undefined() || features.is_null() {
        return Ok(Entitlements::new());
    }
    if !features.is_object() || js_sys::Array::is_array(features) {
        return Err(Error::invalid(
            "entitlements",
            "features must be an object: { feature: [benefit ids] }",
        ));
    }
    let mut map = Entitlements::new();
    for name in js_sys::Object::keys(features.unchecked_ref::<js_sys::Object>()).iter() {
        let name = name.as_string().unwrap_or_default();
        let entry = get(features, &name);
        let field = format!("entitlements.{name}");
        let (ids, metered) = if js_sys::Array::is_array(&entry) {
            (entry, false)
        } else if entry.is_object() {
            for key in js_sys::Object::keys(entry.unchecked_ref::<js_sys::Object>()).iter() {
                let key = key.as_string().unwrap_or_default();
                if key != "benefits" && key != "metered" {
                    return Err(Error::invalid(
                        field,
                        format!("unknown key `{key}` (expected benefits, metered)"),
                    ));
                }
            }
            let metered = get(&entry, "metered");
            let metered = match metered.as_bool() {
                Some(b) => b,
                None if metered.is_undefined() => false,
                None => return Err(Error::invalid(field, "metered must be true or false")),
            };
            (get(&entry, "benefits"), metered)
        } else {
            (JsValue::UNDEFINED, false)
        };
        if !js_sys::Array::is_array(&ids) {
            return Err(Error::invalid(
                field,
                "expected a list of benefit ids or { benefits: [...], metered: true }",
            ));
        }
        let ids = js_sys::Array::from(&ids)
            .iter()
            .map(|id| id.as_string())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::invalid(field.clone(), "benefit ids must be strings"))?;
        map = if metered {
            map.grant_metered(&name, ids)?
        } else {
            map.grant(&name, ids)?
        };
    }
    Ok(map)
}

fn get(target: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(target, &JsValue::from_str(name)).unwrap_or_default()
}

fn set(target: &JsValue, name: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(name), &value.into());
}

/// A JS `Error` named `LicenseError` with `code`, `kind` and `detail`.
fn license_error(reason: Reason, detail: &str) -> js_sys::Error {
    let e = js_sys::Error::new(&format!("{}: {detail}", reason.code()));
    e.set_name("LicenseError");
    set(&e, "code", reason.code());
    set(&e, "kind", reason.class().as_str());
    set(&e, "detail", detail);
    e
}

/// The rejection value of an [`Error`].
pub fn error_to_js(err: &Error) -> JsValue {
    let e = license_error(err.reason(), &err.detail());
    match err {
        Error::InvalidInput { field, .. } => set(&e, "field", field.as_str()),
        Error::Offline { timeout, .. } => set(&e, "timeout", *timeout),
        Error::RateLimited {
            retry_after: Some(s),
        } => set(&e, "retryAfter", *s as f64),
        Error::ServerError { status, .. }
        | Error::Protocol {
            status: Some(status),
            ..
        } => set(&e, "status", *status),
        _ => {}
    }
    e.into()
}

/// The rejection value of a [`Denial`].
pub fn denial_to_js(denial: &Denial) -> JsValue {
    let e = license_error(denial.reason, &denial.detail);
    set(&e, "status", denial.status);
    if let Some(n) = denial.remaining_usages {
        set(&e, "remainingUsages", n as f64);
    }
    e.into()
}

fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames object keys to camelCase, recursively, except inside the app's own maps
/// (`metadata`, `meta`, `conditions`), whose keys are data.
pub fn camel_case(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let data = matches!(k.as_str(), "metadata" | "meta" | "conditions");
                    (snake_to_camel(&k), if data { v } else { camel_case(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_case).collect()),
        other => other,
    }
}

fn to_json(value: &impl serde::Serialize) -> Value {
    camel_case(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// `{ license, activation }` of a validated key (the key's fields without `activation`).
fn validated_json(v: &ValidatedLicenseKey) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("license".into(), to_json(&v.license_key));
    out.insert("activation".into(), to_json(&v.activation));
    out
}

fn activated_json(a: &LicenseKeyActivationRead) -> Value {
    json!({ "activation": to_json(&a.activation), "license": to_json(&a.license_key) })
}

/// `{ feature, granted, why, licenseReason, remainingUsage, source }`.
fn access_json(a: &FeatureAccess) -> Value {
    json!({
        "feature": a.feature,
        "granted": a.granted,
        "why": a.why.code(),
        "licenseReason": a.license_reason.map(Reason::code),
        "remainingUsage": a.remaining_usage,
        "source": a.source.map(Source::as_str),
    })
}

/// `{ listed: { <name>: answer }, unlisted: answer }`: the verdict's answer for every feature of
/// the map, and for any other name (asked as `""`, which no map has: names are never empty;
/// the wrapper puts the name asked for into `feature`).
fn features_json(inner: &AsyncLicensing, verdict: &CheckOutcome) -> Value {
    let mut listed = Map::new();
    for name in inner.entitlements().features() {
        listed.insert(name.into(), access_json(&inner.has_feature(verdict, name)));
    }
    json!({ "listed": listed, "unlisted": access_json(&inner.has_feature(verdict, "")) })
}

fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs()))
}

/// The resolution value of a licensed check (with its feature answers), or the rejection
/// value of anything else.
fn outcome_to_js(inner: &AsyncLicensing, outcome: CheckOutcome) -> Result<JsValue, JsValue> {
    let features = outcome
        .is_licensed()
        .then(|| features_json(inner, &outcome));
    match outcome {
        CheckOutcome::Licensed {
            source,
            license,
            grace_remaining,
            verified_at,
        } => {
            let mut out = validated_json(&license);
            out.insert("source".into(), json!(source.as_str()));
            out.insert("graceRemaining".into(), secs(grace_remaining));
            out.insert("verifiedAt".into(), json!(verified_at));
            out.insert("features".into(), features.unwrap_or_default());
            Ok(JsValue::from_str(&Value::Object(out).to_string()))
        }
        CheckOutcome::Denied(denial) => Err(denial_to_js(&denial)),
        CheckOutcome::Unverified(err) => Err(error_to_js(&err)),
    }
}

fn status_json(status: &CacheStatus) -> Value {
    let (state, untrusted, record) = match &status.state {
        CacheState::Empty => ("empty", None, None),
        CacheState::Untrusted(why) => ("untrusted", Some(why.as_str()), None),
        CacheState::Present(r) => ("present", None, Some(r)),
    };
    let good = record.and_then(|r| r.good.as_ref());
    json!({
        "state": state,
        "untrusted": untrusted,
        "now": status.now,
        "graceRemaining": secs(status.grace_remaining),
        "clockRollback": status.clock_rollback,
        "verifiedAt": good.map(|g| g.verified_at),
        "license": good.map(|g| to_json(&g.license.license_key)),
        "activation": record.and_then(|r| r.activation.as_ref()).map(to_json),
        "denied": record.and_then(|r| r.denied.as_ref()).map(|d| json!({
            "code": d.reason.code(),
            "detail": d.detail,
            "status": d.status,
            "at": d.at,
        })),
        "blockedUntil": record.and_then(|r| r.blocked_until),
    })
}

fn text(value: Value) -> JsValue {
    JsValue::from_str(&value.to_string())
}

/// A promise face over [`AsyncLicensing`] for Rust code that hands promises to JS: one
/// organization, one storage. (The npm package does not use it: its `LicenseClient` runs the
/// synchronous [`Engine`](crate::wasm::engine::Engine) and does the IO in JS.)
pub struct Core {
    inner: Rc<AsyncLicensing>,
}

fn build(options: &str, host: &JsValue) -> Result<AsyncLicensing, Error> {
    let o: ClientOptions =
        serde_json::from_str(options).map_err(|e| Error::invalid("options", e.to_string()))?;
    let mut b = AsyncLicensing::builder(o.organization_id).policy(policy(o.grace_policy)?);
    if let Some(url) = o.base_url {
        b = b.base_url(url);
    } else if let Some(server) = o.server {
        b = b.server(Server::parse(&server));
    }
    if let Some(t) = o.timeout {
        let t = Duration::try_from_secs_f64(t)
            .map_err(|_| Error::invalid("timeout", "must be a finite number of seconds > 0"))?;
        b = b.timeout(t);
    }
    if let Some(secret) = o.app_secret {
        b = b.app_secret(secret.into_bytes());
    }
    if let Some(id) = o.machine_id {
        b = b.machine_id(id);
    }
    let storage = get(host, "storage");
    if storage.as_string().as_deref() == Some("memory") {
        b = b.memory_store();
    } else if storage.as_string().as_deref() == Some("localStorage") {
        let web = WebStorage::local()
            .ok_or_else(|| Error::invalid("storage", "this host has no usable localStorage"))?;
        b = b.store(web);
    } else if storage.is_object() {
        b = match WebStorage::new(storage.clone()) {
            Some(web) => b.store(web),
            None => b.store(JsStore::new(storage)?),
        };
    } else if !storage.is_undefined() && !storage.is_null() {
        return Err(Error::invalid(
            "storage",
            "must be \"localStorage\", \"memory\" or an object with get, set and remove",
        ));
    }
    if let Ok(clock) = get(host, "clock").dyn_into::<js_sys::Function>() {
        b = b.clock(move || {
            let ms = clock
                .call0(&JsValue::NULL)
                .ok()
                .and_then(|v| v.as_f64())
                .filter(|ms| ms.is_finite())
                .unwrap_or_else(js_sys::Date::now);
            (ms / 1000.0).floor() as i64
        });
    }
    let crypto = get(host, "crypto");
    if crypto.is_object() {
        b = b.crypto(crypto);
    }
    b.entitlements(entitlements(&get(host, "features"))?)
        .build()
}

impl Core {
    /// `options`: the JSON of `LicenseClient`'s options without `storage`, `clock`, `crypto`
    /// and `features`, which come in `host` as JS values. Throws a `LicenseError`
    /// (`invalid_input`) for a bad option.
    pub fn new(options: &str, host: JsValue) -> Result<Core, JsValue> {
        build(options, &host)
            .map(|inner| Core {
                inner: Rc::new(inner),
            })
            .map_err(|e| error_to_js(&e))
    }

    /// Validates online (no cache). Resolves to the JSON of `{ license, activation, features }`
    /// (the feature answers of an online verdict).
    pub fn validate(&self, key: String, options: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let o: ValidateOptions = parse("options", &options).map_err(|e| error_to_js(&e))?;
            let req = ValidateRequest {
                key: Some(key.into()),
                activation_id: o.activation_id,
                benefit_id: o.benefit_id,
                customer_id: o.customer_id,
                increment_usage: o.increment_usage,
                conditions: o.conditions,
            };
            match inner.client().validate(&req).await {
                Ok(Verdict::Accepted(v)) => {
                    let mut out = validated_json(&v);
                    let verdict = CheckOutcome::Licensed {
                        source: Source::Online,
                        license: Box::new(v),
                        grace_remaining: None,
                        verified_at: crate::wasm::date_now(),
                    };
                    out.insert("features".into(), features_json(&inner, &verdict));
                    Ok(text(Value::Object(out)))
                }
                Ok(Verdict::Denied(d)) => Err(denial_to_js(&d)),
                Err(e) => Err(error_to_js(&e)),
            }
        })
    }

    /// Activates and remembers the activation. Resolves to `{ activation, license }`.
    pub fn activate(&self, key: String, options: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let o: ActivateOptions = parse("options", &options).map_err(|e| error_to_js(&e))?;
            let mut req = ActivateRequest::new(key, o.label);
            req.conditions = o.conditions;
            req.meta = o.meta;
            match inner.activate(&req).await {
                Ok(Verdict::Accepted(a)) => Ok(text(activated_json(&a))),
                Ok(Verdict::Denied(d)) => Err(denial_to_js(&d)),
                Err(e) => Err(error_to_js(&e)),
            }
        })
    }

    /// Deactivates (default: the remembered activation) and forgets it. Resolves to
    /// `{ activationId }`.
    pub fn deactivate(&self, key: String, options: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let o: DeactivateOptions = parse("options", &options).map_err(|e| error_to_js(&e))?;
            let id = match o.activation_id {
                Some(id) => Some(id),
                None => inner
                    .status(key.as_str())
                    .await
                    .ok()
                    .and_then(|s| match s.state {
                        CacheState::Present(r) => r.activation.map(|a| a.id),
                        _ => None,
                    }),
            };
            match inner.deactivate(key, id.as_deref()).await {
                Ok(Verdict::Accepted(())) => Ok(text(json!({ "activationId": id }))),
                Ok(Verdict::Denied(d)) => Err(denial_to_js(&d)),
                Err(e) => Err(error_to_js(&e)),
            }
        })
    }

    /// The grace-aware check. Resolves to `{ license, activation, source, graceRemaining,
    /// verifiedAt, features }` only when licensed.
    pub fn check(&self, key: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let outcome = inner.check(key).await;
            outcome_to_js(&inner, outcome)
        })
    }

    /// Checks `key` and answers for `feature`: resolves to `{ feature, granted, why,
    /// licenseReason, remainingUsage, source }` whatever the verdict (a denied or unverified
    /// license is `granted: false`, `why: "license_not_valid"` with its reason code), and
    /// rejects only for an error-class reason (`invalid_input`, `protocol_error`,
    /// `cache_error`): a wrong key, map or answer, which no verdict answers.
    pub fn has_feature(&self, key: String, feature: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            let verdict = inner.check(key).await;
            if let CheckOutcome::Unverified(e) = &verdict {
                if e.reason().class() == ReasonClass::Error {
                    return Err(error_to_js(e));
                }
            }
            Ok(text(access_json(&inner.has_feature(&verdict, &feature))))
        })
    }

    /// What the cache holds for `key`, with no request.
    pub fn status(&self, key: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            match inner.status(key).await {
                Ok(status) => Ok(text(status_json(&status))),
                Err(e) => Err(error_to_js(&e)),
            }
        })
    }

    /// Forgets everything cached for `key` (the server is not told).
    pub fn forget(&self, key: String) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            match inner.forget(key).await {
                Ok(()) => Ok(JsValue::UNDEFINED),
                Err(e) => Err(error_to_js(&e)),
            }
        })
    }
}

/// The reason table (contract §1) as JSON: `[{ "code", "kind", "number" }, …]`, so the JS
/// package's `REASONS` can be tested against the Rust enum.
#[wasm_bindgen(js_name = reasonTable)]
pub fn reason_table() -> String {
    let mut out = String::from("[");
    for (i, r) in Reason::ALL.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Codes and kinds are plain snake_case ASCII: no escaping needed.
        out.push_str("{\"code\":\"");
        out.push_str(r.code());
        out.push_str("\",\"kind\":\"");
        out.push_str(r.class().as_str());
        out.push_str("\",\"number\":");
        let n = r.number();
        if n >= 10 {
            out.push(char::from(b'0' + (n / 10) as u8));
        }
        out.push(char::from(b'0' + (n % 10) as u8));
        out.push('}');
    }
    out.push(']');
    out
}
