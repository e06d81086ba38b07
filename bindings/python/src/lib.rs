//! `polar_license._native`: the Python package's native module.
//!
//! The native core as it is, behind PyO3: the blocking [`Licensing`] (its file store, so a
//! Python tool and the `polar-license` command line share one cache, record for record) and
//! the local emulator. No rule lives here: every answer is the core's, turned into plain data
//! (a JSON text the pure-Python layer, `python/polar_license`, reads into typed objects and
//! exceptions). Every call that may touch the network or the disk runs with the GIL released
//! (`Python::detach`), so other Python threads run while one waits for Polar.
//!
//! Keys: a check's answer carries Polar's `display_key` (`****-4C5B6A`) only, never the whole
//! key; the core's errors never contain a key.

use polar_license::features::{Entitlements, FeatureAccess};
use polar_license::flow::update::Activated;
use polar_license::grace::LeaseWindow;
use polar_license::lease::RelayKeys;
use polar_license::licensing::system_clock;
use polar_license::model::LicenseKeyRead;
use polar_license::perpetual::ReleaseDate;
use polar_license::portal::{PortalError, SessionToken};
use polar_license::trial::TrialDays;
use polar_license::{
    ActivateRequest, CacheState, CheckOutcome, CheckReport, Denial, Error, GracePolicy, Key,
    Licensing, MachineBinding, MetaValue, Reason, Server, ValidateRequest, Verdict,
};
use polar_license_emulator::{Emulator, Fault, KeyUpdate, Options, Seed};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use pyo3::IntoPyObjectExt;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

mod buy;
mod seats;

/// `{"ok": value}`: what every call that can fail answers when it did not.
fn ok(value: Value) -> Value {
    json!({ "ok": value })
}

/// `{"error": …}` for one of the library's errors (the Python layer raises it).
fn err(e: &Error) -> Value {
    json!({ "error": error_json(e) })
}

/// `{"ok": null}` for a step that returns nothing, else its `{"error": …}`.
fn done(step: Result<(), Error>) -> Value {
    step.map_or_else(|e| err(&e), |()| ok(Value::Null))
}

/// `{"error": …}` for one of Polar's denials.
fn denied(d: &Denial) -> Value {
    json!({ "error": denial_json(d) })
}

/// A JSON value as the Python value `json.loads` would give (`dict`, `list`, `str`, `int`,
/// `float`, `bool`, `None`), built here so that the Python layer imports no `json` (whose
/// `re` is a large part of a cold import).
fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_bound_py_any(py),
            (None, Some(u)) => u.into_bound_py_any(py),
            (None, None) => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py),
        },
        Value::String(s) => Ok(PyString::new(py, s).into_any()),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (name, item) in map {
                dict.set_item(name, to_py(py, item)?)?;
            }
            Ok(dict.into_any())
        }
    }
}

fn error_json(e: &Error) -> Value {
    let reason = e.reason();
    json!({
        "code": reason.code(),
        "class": reason.class().as_str(),
        "user_message": e.user_message(),
        "next_step": e.message().next_step(),
        "detail": e.detail(),
        "field": e.field(),
        "status": e.status(),
        "retry_after": e.retry_after(),
        "hint": Value::Null,
        "previously_valid": false,
        "remaining_usages": Value::Null,
        "stopped": Value::Null,
    })
}

fn denial_json(d: &Denial) -> Value {
    json!({
        "code": d.reason.code(),
        "class": d.reason.class().as_str(),
        "user_message": d.user_message(),
        "next_step": d.message().next_step(),
        "detail": d.detail,
        "field": Value::Null,
        "status": d.status,
        "retry_after": Value::Null,
        "hint": d.hint(),
        "previously_valid": d.previously_valid,
        "remaining_usages": d.remaining_usages,
        "stopped": d.stopped.as_ref().map(stopped_json),
    })
}

/// Why a key stopped (issue #68, a denial's detail from the seller's relay): its kind and
/// dates (unix seconds).
fn stopped_json(s: &polar_license::stopped::Stopped) -> Value {
    json!({ "kind": s.kind.code(), "at": s.at, "until": s.until })
}

/// The values a relay signed into a lease, by name (typed as Polar's metadata).
fn entitlements_json(claims: &polar_license::lease::EntitlementClaims) -> Value {
    claims
        .values
        .iter()
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

fn lease_json(w: &LeaseWindow) -> Value {
    json!({ "kid": w.kid, "not_before": w.not_before, "expires_at": w.expires_at })
}

/// What a Python caller may see of a license: never the whole key.
fn license_json(l: &LicenseKeyRead, activation_id: Option<&str>) -> Value {
    json!({
        "id": l.id,
        "display_key": l.display_key,
        "status": l.status.as_str(),
        "benefit_id": l.benefit_id,
        "customer_id": l.customer_id,
        "customer_email": l.customer.email,
        "expires_at": l.expires_at.map(|t| t.unix_timestamp()),
        "usage": l.usage,
        "limit_usage": l.limit_usage,
        "limit_activations": l.limit_activations,
        "validations": l.validations,
        "activation_id": activation_id,
        "member": l.member.as_ref().map(|m| json!({
            "id": m.id, "email": m.email, "external_id": m.external_id,
        })),
        "subscription": l.subscription.as_ref().map(|s| json!({
            "id": s.id,
            "status": s.status,
            "current_period_start": s.current_period_start.map(|t| t.unix_timestamp()),
            "current_period_end": s.current_period_end.map(|t| t.unix_timestamp()),
            "cancel_at_period_end": s.cancel_at_period_end,
            "ends_at": s.ends_at.map(|t| t.unix_timestamp()),
        })),
        "order": l.order.as_ref().map(|o| json!({
            "id": o.id,
            "created_at": o.created_at.map(|t| t.unix_timestamp()),
            "status": o.status,
            "paid": o.paid,
        })),
    })
}

fn feature_json(a: &FeatureAccess) -> Value {
    json!({
        "feature": a.feature,
        "granted": a.granted,
        "why": a.why.code(),
        "license_reason": a.license_reason.map(|r| r.code()),
        "remaining_usage": a.remaining_usage,
        "source": a.source.map(|s| s.as_str()),
    })
}

/// A check's report, every field a face shows (the Tauri plugin's `LicenseState`, the
/// command line's `--json`), read from the report alone.
fn report_json(licensing: &Licensing, report: &CheckReport) -> Value {
    let outcome = &report.outcome;
    let features: serde_json::Map<String, Value> = licensing
        .entitlements()
        .features()
        .map(|name| {
            let access = licensing.has_feature(outcome, name);
            (name.to_string(), feature_json(&access))
        })
        .collect();
    let error = match outcome {
        CheckOutcome::Licensed { .. } => Value::Null,
        CheckOutcome::Denied(d) => denial_json(d),
        CheckOutcome::Unverified(e) => error_json(e),
    };
    json!({
        "licensed": outcome.is_licensed(),
        "outcome": outcome.kind(),
        "source": outcome.source().map(|s| s.as_str()),
        "error": error,
        "needs_key": outcome.needs_key(),
        "verified_at": outcome.verified_at(),
        "grace_remaining": outcome.grace_remaining().map(|d| d.as_secs_f64()),
        "grace_ends_at": report.grace_ends_at(licensing.policy()),
        "fallback": report.fallback.as_ref().map(|e| e.reason().code()),
        "cache_error": report.cache_error.as_ref().map(error_json),
        "relay_source": report.relayed.map(|r| r.as_str()),
        "lease": report.lease.as_ref().map(lease_json),
        "activation_id": report.activation_id,
        "license": outcome.license().map(|l| {
            license_json(&l.license_key, l.activation.as_ref().map(|a| a.id.as_str()))
        }),
        "perpetual": report.perpetual.as_ref().map(|p| json!({
            "released": p.released.to_string(),
            "paid_through": p.paid_through,
            "fallback": p.fallback,
        })),
        "trial": report.trial.as_deref().map(|t| json!({
            "local": t.local,
            "state": t.state.as_str(),
            "started_at": t.started_at,
            "ends_at": t.ends_at,
            "days_left": t.days_left,
        })),
        "features": features,
        "entitlements": report.entitlements().map(entitlements_json),
        // The core's words for a licensed answer (issue #80): `CheckReport::licensed_message`.
        "licensed_message": report.licensed_message(),
        // What the report tells the person, failure or licensed: `CheckReport::user_message`,
        // the core's one choice between the two (no face makes it again).
        "user_message": report.user_message(),
    })
}

/// A Python value as a condition or metadata value (`bool`, `int`, `float` or `str`).
fn meta_value(value: &Bound<'_, PyAny>) -> PyResult<MetaValue> {
    // bool first: a Python bool is an int too.
    if value.is_instance_of::<PyBool>() {
        Ok(MetaValue::Bool(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        let i: i64 = value.extract().map_err(|_| {
            PyValueError::new_err("a condition or meta integer must fit in 64 bits")
        })?;
        Ok(MetaValue::Int(i))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(MetaValue::Float(value.extract()?))
    } else if value.is_instance_of::<PyString>() {
        Ok(MetaValue::Str(value.extract()?))
    } else {
        Err(PyTypeError::new_err(
            "condition and meta values are bool, int, float or str",
        ))
    }
}

/// A Python dict as `(name, value)` pairs, in its order.
fn pairs(dict: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, MetaValue)>> {
    let mut out = Vec::new();
    if let Some(dict) = dict {
        for (name, value) in dict.iter() {
            let name: String = name
                .extract()
                .map_err(|_| PyTypeError::new_err("condition and meta names are str"))?;
            out.push((name, meta_value(&value)?));
        }
    }
    Ok(out)
}

/// How long Polar's customer session lasts (docs/polar-api.md §16.1): one hour, no refresh.
const SESSION_SECONDS: i64 = 3600;

/// A portal step's failure: `{"error": …}` for the failures that are no portal answer (bad
/// input, no answer, not Polar's: the error classes of every call), else `{"portal_error":
/// …}` with contract §2's name (the CLI's `portal_error`) and the reason code the contract
/// gives it, if any.
fn portal_err(e: &PortalError) -> Value {
    if let PortalError::Invalid(inner)
    | PortalError::Protocol(inner)
    | PortalError::Offline(inner) = e
    {
        // The error's class and fields, in the portal's words (a sign-in's email or code is
        // the person's to retype: `PortalError::message`, not the app's settings).
        let mut out = err(inner);
        let said = e.message();
        out["error"]["user_message"] = json!(said.text());
        out["error"]["next_step"] = json!(said.next_step());
        return out;
    }
    // The name and the reason are the core's (every face gives the same).
    let (kind, reason) = (e.code(), e.reason());
    let mut out = json!({
        "portal_error": kind,
        "code": reason.map(Reason::code),
        "detail": e.to_string(),
    });
    match e {
        PortalError::RateLimited(wait) => out["retry_after"] = json!(wait),
        PortalError::NotSignedIn => out["field"] = json!("session"),
        PortalError::CustomerSelectionRequired(customers) => {
            out["field"] = json!("customer_id");
            out["customers"] = customers
                .iter()
                .map(|(id, name)| json!({ "id": id, "name": name }))
                .collect();
        }
        PortalError::Refused { status, error, .. } => {
            out["status"] = json!(status);
            out["error"] = json!(error);
        }
        _ => {}
    }
    json!({ "portal_error": out })
}

/// `key`, or the remembered key (`invalid_input`, field `key`, when there is none).
fn key_or_remembered(licensing: &Licensing, key: Option<String>) -> Result<Key, Error> {
    if let Some(key) = key {
        return Ok(Key::new(key));
    }
    licensing.remembered_key()?.ok_or_else(|| {
        Error::invalid(
            "key",
            "is required: no key is remembered here (remember_keys=True, or remember_key)",
        )
    })
}

/// The remembered session ([`PortalError::NotSignedIn`] when none: no request).
fn remembered_session(licensing: &Licensing) -> Result<SessionToken, PortalError> {
    licensing
        .remembered_session()
        .map_err(PortalError::Offline)?
        .ok_or(PortalError::NotSignedIn)
}

/// A portal step's answer with `session`, which is forgotten when Polar no longer knows it
/// (nothing is kept that cannot be used; the next step asks to sign in, with no request),
/// unless a sign-in replaced it meanwhile.
fn forgetting_expired<T>(
    licensing: &Licensing,
    session: Option<&SessionToken>,
    answer: Result<T, PortalError>,
) -> Result<T, PortalError> {
    if let (Err(PortalError::SessionExpired), Some(used)) = (&answer, session) {
        let _ = licensing.forget_session_if(used);
    }
    answer
}

/// A key's devices as the Python layer reads them (`KeyDevices`), this machine's marked.
fn devices_json(key: &Key, read: &polar_license::portal::KeyDevices) -> Value {
    json!({
        "key_id": read.key_id,
        "display_key": key.redacted(),
        "limit_activations": read.limit_activations,
        "devices": read.devices.iter().map(|d| json!({
            "id": d.id,
            "label": d.label,
            "activated_at": d.activated_at.unix_timestamp(),
            "this_machine": d.this_machine,
            "platform": d.platform,
            "last_seen": d.last_seen.map(|t| t.unix_timestamp()),
        })).collect::<Vec<_>>(),
    })
}

/// The key's devices through the remembered session, this machine's marked: the core's order
/// of steps ([`Licensing::list_devices`], the sans-IO `ListDevices` every face drives).
fn list_devices(licensing: &Licensing, key: &Key) -> Result<Value, PortalError> {
    let session = remembered_session(licensing)?;
    let read = forgetting_expired(
        licensing,
        Some(&session),
        licensing.list_devices(&session, key.clone()),
    )?;
    Ok(devices_json(key, &read))
}

/// The key's devices by the way the app has ([`Licensing::list_devices_any`], issue #64): the
/// remembered session when there is one, else the seller's relay at `relay` (the key proves
/// it is the customer's: no sign-in), else [`PortalError::NotSignedIn`].
fn list_devices_any(
    licensing: &Licensing,
    key: &Key,
    relay: Option<&str>,
) -> Result<Value, PortalError> {
    let session = licensing
        .remembered_session()
        .map_err(PortalError::Offline)?;
    let read = forgetting_expired(
        licensing,
        session.as_ref(),
        licensing.list_devices_any(session.as_ref(), relay, key.clone()),
    )?;
    Ok(devices_json(key, &read))
}

/// A usage report's answer as the Python layer reads it (issue #68 item 3): `{"ok": {"id",
/// "duplicate", "balance"}}` when the relay recorded it, else `{"error": …}` with the report's
/// `id` (to send it again with the same id) and, for `credits_exhausted`, the `balance`; a
/// backlog carries the core's code as `usage_code` (`usage_backlog`; the Python layer raises
/// it as `UsageBacklog`, whose `code` stays `rate_limited` as shipped, with `retry_after`). Conversion only: which answer is which is the core's
/// ([`polar_license::usage::RecordUsage`]).
fn usage_json(id: &str, answer: &Result<polar_license::usage::UsageAnswer, Error>) -> Value {
    use polar_license::usage::UsageAnswer;
    let mut out = match answer {
        Ok(UsageAnswer::Recorded {
            duplicate, balance, ..
        }) => {
            return ok(json!({ "id": id, "duplicate": duplicate, "balance": balance }));
        }
        Ok(UsageAnswer::CreditsExhausted { balance }) => {
            let detail =
                format!("no credits left (balance {balance}): the report was not recorded");
            // The core's sentence for the reason (a denial of the seller's rule, not Polar's).
            let as_denial = Denial {
                reason: Reason::CreditsExhausted,
                detail: detail.clone(),
                status: 0,
                remaining_usages: None,
                previously_valid: false,
                activation_gone: false,
                stopped: None,
            };
            let mut e = denial_json(&as_denial);
            e["status"] = Value::Null;
            e["balance"] = json!(balance);
            said(&mut e, answer)
        }
        Ok(UsageAnswer::Backlog { retry_after }) => {
            let mut e = error_json(&Error::RateLimited {
                retry_after: *retry_after,
            });
            // The core's code (`usage_backlog`): the Python layer reads it as `usage_code`
            // (the exception's `code` stays `rate_limited`, as shipped: an alias).
            e["usage_code"] = json!(polar_license::usage::BACKLOG_CODE);
            e["usage_backlog"] = json!(true);
            e["detail"] =
                json!("too many reports wait at the relay: send it again later with the same id");
            said(&mut e, answer)
        }
        Ok(UsageAnswer::Denied(d)) => denial_json(d),
        Err(e) => error_json(e),
    };
    out["id"] = json!(id);
    json!({ "error": out })
}

/// A usage answer's words: the core's one sentence and next step for it
/// ([`polar_license::usage::UsageAnswer::message`]), none of this face's.
fn said(e: &mut Value, answer: &Result<polar_license::usage::UsageAnswer, Error>) -> Value {
    if let Some(said) = answer.as_ref().ok().and_then(|a| a.message()) {
        e["user_message"] = json!(said.text());
        e["next_step"] = json!(said.next_step());
    }
    e.take()
}

/// Key recovery through the remembered session: the customer's keys this machine can
/// activate ([`Licensing::recoverable_keys`]: granted, unexpired, newest first), each by its
/// record id and redacted form only (the whole key never leaves the library).
fn recoverable_keys(licensing: &Licensing) -> Result<Value, PortalError> {
    let session = remembered_session(licensing)?;
    let keys = forgetting_expired(
        licensing,
        Some(&session),
        licensing.recoverable_keys(&session),
    )?;
    Ok(keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "display_key": k.key.redacted(),
                "expires_at": k.expires_at.map(|t| t.unix_timestamp()),
                "limit_activations": k.limit_activations,
            })
        })
        .collect())
}

/// An activate's answer as `activate` gives it (the activation, or the denial or error).
fn activated_json(answer: Activated) -> Value {
    let lease = answer.lease.as_ref().map(lease_json);
    match (answer.online, answer.cache_error) {
        (Ok(Verdict::Accepted(read)), cache_error) => ok(json!({
            "id": read.activation.id,
            "label": read.activation.label,
            "license": license_json(&read.license_key, Some(&read.activation.id)),
            "lease": lease,
            "cache_error": cache_error.as_ref().map(error_json),
        })),
        (Ok(Verdict::Denied(d)), _) => denied(&d),
        (Err(e), _) => err(&e),
    }
}

fn seconds(field: &str, secs: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::invalid(field, "must be a finite, non-negative number of seconds"))
}

/// The check's report kept whole for [`NativeLicensing::feature`] and
/// [`NativeLicensing::entitlement_state`]: the core answers a feature and an entitlement's
/// state from it (no Python code decides what a verdict grants or says).
#[pyclass(frozen, module = "polar_license._native")]
struct NativeOutcome {
    report: CheckReport,
}

/// The core's grace-aware `Licensing` (the Python class `polar_license.Licensing` wraps it).
#[pyclass(frozen, module = "polar_license._native")]
struct NativeLicensing {
    inner: Licensing,
}

#[pymethods]
impl NativeLicensing {
    /// Builds the core's `Licensing`; `(None, {"error": …})` when an option is refused.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (organization_id, app_id, base_url, server, cache_dir, grace_period,
        revalidate_after, clock_tolerance, timeout, connect_timeout, relay_keys, released,
        trial, trial_benefits, app_secret, require_activation, machine_binding, bind_machine,
        remember_keys, entitlements, clock_offset=0, portal_url=None, relay_url=None))]
    fn build(
        py: Python<'_>,
        organization_id: String,
        app_id: Option<String>,
        base_url: Option<String>,
        server: Option<String>,
        cache_dir: Option<String>,
        grace_period: Option<f64>,
        revalidate_after: Option<f64>,
        clock_tolerance: Option<f64>,
        timeout: Option<f64>,
        connect_timeout: Option<f64>,
        relay_keys: Option<String>,
        released: Option<String>,
        trial: Option<u32>,
        trial_benefits: Vec<String>,
        app_secret: Option<Vec<u8>>,
        require_activation: bool,
        machine_binding: Option<String>,
        bind_machine: bool,
        remember_keys: bool,
        entitlements: Option<String>,
        clock_offset: i64,
        portal_url: Option<String>,
        relay_url: Option<String>,
    ) -> PyResult<(Option<NativeLicensing>, Option<Py<PyAny>>)> {
        // Reads the machine id and may create the cache directory: no GIL meanwhile.
        let built = py.detach(move || -> Result<Licensing, Error> {
            let mut b = Licensing::builder(organization_id);
            if let Some(server) = server {
                b = b.server(match server.as_str() {
                    "production" => Server::Production,
                    "sandbox" => Server::Sandbox,
                    _ => return Err(Error::invalid("server", "is production or sandbox")),
                });
            }
            if let Some(url) = base_url {
                b = b.base_url(url);
            }
            if let Some(url) = portal_url {
                b = b.portal_base_url(url);
            }
            // The seller's relay (issue #80: the heal at the activation limit, the devices and
            // usage a relay answers), checked by the core's build.
            if let Some(url) = relay_url {
                b = b.relay_url(url);
            }
            if let Some(app_id) = app_id {
                b = b.app_id(app_id);
            }
            if let Some(dir) = cache_dir {
                if dir.is_empty() {
                    return Err(Error::invalid("cache_dir", "must not be empty"));
                }
                b = b.cache_dir(dir);
            }
            let mut policy = GracePolicy::default();
            if let Some(s) = grace_period {
                policy.grace_period = seconds("grace_period", s)?;
            }
            if let Some(s) = revalidate_after {
                policy.revalidate_after = seconds("revalidate_after", s)?;
            }
            if let Some(s) = clock_tolerance {
                policy.clock_tolerance = seconds("clock_tolerance", s)?;
            }
            b = b.policy(policy);
            if let Some(s) = timeout {
                b = b.timeout(seconds("timeout", s)?);
            }
            if let Some(s) = connect_timeout {
                b = b.connect_timeout(seconds("connect_timeout", s)?);
            }
            if let Some(keys) = relay_keys {
                b = b.relay_keys(RelayKeys::parse(&keys)?);
            }
            if let Some(date) = released {
                b = b.released(ReleaseDate::parse(&date)?);
            }
            if let Some(days) = trial {
                b = b.trial(TrialDays::new(days)?);
            }
            for benefit in trial_benefits {
                b = b.trial_benefit(benefit);
            }
            if let Some(secret) = app_secret {
                b = b.app_secret(secret);
            }
            b = b.require_activation(require_activation);
            b = b.machine_binding(match (machine_binding, bind_machine) {
                (Some(id), _) => MachineBinding::Id(id),
                (None, true) => MachineBinding::Os,
                (None, false) => MachineBinding::Off,
            });
            b = b.remember_keys(remember_keys);
            if let Some(map) = entitlements {
                b = b.entitlements(Entitlements::from_json(&map)?);
            }
            // For tests only (the seller table's runner): every cache decision's clock, moved.
            if clock_offset != 0 {
                b = b.clock(move || system_clock().saturating_add(clock_offset));
            }
            b.build()
        });
        Ok(match built {
            Ok(inner) => (Some(NativeLicensing { inner }), None),
            Err(e) => (None, Some(to_py(py, &err(&e))?.unbind())),
        })
    }

    /// A check of `key` (`None`: the remembered key, else the local trial when one is
    /// stated): the report (a dict) and the outcome, for `feature`.
    #[pyo3(signature = (key=None))]
    fn check(&self, py: Python<'_>, key: Option<String>) -> PyResult<(Py<PyAny>, NativeOutcome)> {
        let report = py.detach(|| match key {
            Some(key) => self.inner.check_report(key),
            None => self.inner.check_remembered_report(),
        });
        let answer = to_py(py, &report_json(&self.inner, &report))?.unbind();
        Ok((answer, NativeOutcome { report }))
    }

    /// May this copy use `feature`, given a check's outcome? The core's answer, as a dict.
    fn feature<'py>(
        &self,
        py: Python<'py>,
        outcome: &NativeOutcome,
        feature: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_py(
            py,
            &feature_json(&self.inner.has_feature(&outcome.report.outcome, feature)),
        )
    }

    /// What a check's answer says of the entitlement `name` (the core's
    /// `CheckReport::entitlement_state`): its state's code, the value when granted, and for
    /// `absent`, `unknown` and `unsigned` the core's one sentence and next step
    /// (`EntitlementState::message`, what the command line and Tauri say), as a dict.
    fn entitlement_state<'py>(
        &self,
        py: Python<'py>,
        outcome: &NativeOutcome,
        name: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (state, value) = outcome.report.entitlement_state(name);
        let said = state.message();
        to_py(
            py,
            &json!({
                "name": name,
                "state": state.code(),
                "value": value,
                "user_message": said.as_ref().map(|m| m.text()),
                "next_step": said.as_ref().map(|m| m.next_step()),
            }),
        )
    }

    /// The entitlement value `name` as the last check's licensed answer read it from its
    /// verified lease (the core's `Licensing::entitlement`): `None` when not granted or not
    /// known.
    fn entitlement<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.entitlement(name) {
            Some(value) => to_py(py, &json!(value)),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Activates `key` on this machine and remembers the activation. No label: the core's
    /// default for this machine (host name and OS).
    #[pyo3(signature = (key, label=None, conditions=None, meta=None))]
    fn activate<'py>(
        &self,
        py: Python<'py>,
        key: String,
        label: Option<String>,
        conditions: Option<&Bound<'_, PyDict>>,
        meta: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut req = match label {
            Some(label) => ActivateRequest::new(key, label),
            None => ActivateRequest::for_this_machine(key),
        };
        for (name, value) in pairs(conditions)? {
            req = req.condition(name, value);
        }
        for (name, value) in pairs(meta)? {
            req = req.meta(name, value);
        }
        let value = activated_json(py.detach(|| self.inner.activate_update(&req)));
        to_py(py, &value)
    }

    /// Validates online once (no answer from the cache); the answer updates the key's record.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (key, activation_id=None, conditions=None, benefit_id=None,
        customer_id=None, increment_usage=None))]
    fn validate<'py>(
        &self,
        py: Python<'py>,
        key: String,
        activation_id: Option<String>,
        conditions: Option<&Bound<'_, PyDict>>,
        benefit_id: Option<String>,
        customer_id: Option<String>,
        increment_usage: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut req = ValidateRequest::new(key);
        if let Some(id) = activation_id {
            req = req.activation_id(id);
        }
        for (name, value) in pairs(conditions)? {
            req = req.condition(name, value);
        }
        if let Some(id) = benefit_id {
            req = req.benefit_id(id);
        }
        if let Some(id) = customer_id {
            req = req.customer_id(id);
        }
        if let Some(n) = increment_usage {
            req = req.increment_usage(n);
        }
        let answer = py.detach(|| self.inner.validate_update(&req));
        let lease = answer.lease.as_ref().map(lease_json);
        let value = match answer.online {
            Ok(Verdict::Accepted(v)) => ok(json!({
                "license": license_json(&v.license_key, v.activation.as_ref().map(|a| a.id.as_str())),
                "lease": lease,
                "cache_error": answer.cache_error.as_ref().map(error_json),
            })),
            Ok(Verdict::Denied(d)) => denied(&d),
            Err(e) => err(&e),
        };
        to_py(py, &value)
    }

    /// Deactivates `activation_id`, or the remembered activation, and forgets it.
    #[pyo3(signature = (key, activation_id=None))]
    fn deactivate<'py>(
        &self,
        py: Python<'py>,
        key: String,
        activation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let answer = py.detach(|| self.inner.deactivate(key, activation_id.as_deref()));
        let value = match answer {
            // The core's words for a freed seat (issue #80), as every face gives them.
            Ok(Verdict::Accepted(())) => ok(json!({
                "user_message": polar_license::message::DEACTIVATED.text(),
                "next_step": polar_license::message::DEACTIVATED.next_step(),
            })),
            Ok(Verdict::Denied(d)) => denied(&d),
            Err(e) => err(&e),
        };
        to_py(py, &value)
    }

    /// What the cache holds for `key`, with no request.
    fn status<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let status = match py.detach(|| self.inner.status(key)) {
            Ok(status) => status,
            Err(e) => return to_py(py, &err(&e)),
        };
        let policy = self.inner.policy();
        let mut out = json!({
            "standing": status.standing.as_str(),
            "stored": "empty",
            "activation_id": status.activation.as_ref().map(|a| a.id.clone()),
            "verified_at": Value::Null,
            "grace_ends_at": Value::Null,
            "grace_remaining": status.grace_remaining.map(|d| d.as_secs_f64()),
            "lease": Value::Null,
            "denied": Value::Null,
            "display_key": Value::Null,
        });
        match &status.state {
            CacheState::Empty => {}
            CacheState::Untrusted(_) => out["stored"] = json!("untrusted"),
            CacheState::Present(record) => {
                out["stored"] = json!("present");
                out["display_key"] = json!(record.display_key);
                out["denied"] = json!(record.denied.as_ref().map(|d| d.reason.code()));
                let lease = record.lease_gate.window();
                out["lease"] = json!(lease.map(lease_json));
                if let Some(good) = &record.good {
                    out["verified_at"] = json!(good.verified_at);
                    out["grace_ends_at"] = json!(policy.grace_end_leased(good.verified_at, lease));
                }
            }
        }
        to_py(py, &ok(out))
    }

    /// Remembers `key` (sealed beside the records) for `check()` with no key.
    fn remember_key<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &done(py.detach(|| self.inner.remember_key(key))))
    }

    /// The remembered key's display form (`****-4C5B6A`), or `null`.
    fn remembered_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = match py.detach(|| self.inner.remembered_key()) {
            Ok(key) => ok(json!(key.map(|k| k.redacted()))),
            Err(e) => err(&e),
        };
        to_py(py, &value)
    }

    /// Forgets the remembered key.
    fn forget_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &done(py.detach(|| self.inner.forget_key())))
    }

    /// Forgets everything cached for `key` (Polar is not told).
    fn forget<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &done(py.detach(|| self.inner.forget(key))))
    }

    /// Asks Polar to email a sign-in code to `email` (`customer_id`: one of several
    /// customers with that email).
    #[pyo3(signature = (email, customer_id=None))]
    fn request_sign_in_code<'py>(
        &self,
        py: Python<'py>,
        email: String,
        customer_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let asked = py.detach(|| {
            self.inner
                .client()
                .request_sign_in_code_for(&email, customer_id.as_deref())
        });
        let value = match asked {
            Ok(()) => ok(Value::Null),
            Err(e) => portal_err(&e),
        };
        to_py(py, &value)
    }

    /// Signs in with the emailed code and seals the session beside the cache for its hour
    /// (as the command line's `sign-in`): when it ends, in unix seconds.
    fn sign_in<'py>(&self, py: Python<'py>, code: String) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            // The hour runs from Polar's answer: counted from before the request, it ends no
            // later.
            let expires_at = self.inner.now().saturating_add(SESSION_SECONDS);
            let token = match self.inner.client().sign_in(&code) {
                Ok(token) => token,
                Err(e) => return portal_err(&e),
            };
            match self.inner.remember_session(&token, expires_at) {
                Ok(()) => ok(json!(expires_at)),
                Err(e) => err(&e),
            }
        });
        to_py(py, &value)
    }

    /// Forgets the remembered session.
    fn sign_out<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &done(py.detach(|| self.inner.forget_session())))
    }

    /// The devices of `key` (`None`: the remembered key) through the remembered session.
    #[pyo3(signature = (key=None))]
    fn devices<'py>(&self, py: Python<'py>, key: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| match key_or_remembered(&self.inner, key) {
            Ok(key) => match list_devices(&self.inner, &key) {
                Ok(listed) => ok(listed),
                Err(e) => portal_err(&e),
            },
            Err(e) => err(&e),
        });
        to_py(py, &value)
    }

    /// The devices of `key` (`None`: the remembered key): through the remembered session when
    /// there is one, else through the seller's relay at `relay` (the core picks).
    #[pyo3(signature = (key=None, relay=None))]
    fn list_devices<'py>(
        &self,
        py: Python<'py>,
        key: Option<String>,
        relay: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| match key_or_remembered(&self.inner, key) {
            Ok(key) => match list_devices_any(&self.inner, &key, relay.as_deref()) {
                Ok(listed) => ok(listed),
                Err(e) => portal_err(&e),
            },
            Err(e) => err(&e),
        });
        to_py(py, &value)
    }

    /// Reports `units` of `meter` used with `key` (`None`: the remembered key) to the seller's
    /// relay at `relay` (`relay serve --record-usage`; `None`: the relay the licensing knows,
    /// `relay_url`, else its base URL) with the idempotency id `id` (`None`: a new one): the
    /// core's [`Licensing::record_usage`] (its checks, its sends of the same id).
    #[pyo3(signature = (meter, units, relay=None, key=None, id=None))]
    fn record_usage<'py>(
        &self,
        py: Python<'py>,
        meter: String,
        units: f64,
        relay: Option<String>,
        key: Option<String>,
        id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| match key_or_remembered(&self.inner, key) {
            Ok(key) => {
                let (id, answer) =
                    self.inner
                        .record_usage(relay.as_deref(), &key, &meter, units, id.as_deref());
                usage_json(&id, &answer)
            }
            Err(e) => err(&e),
        });
        to_py(py, &value)
    }

    /// Frees the activation `activation_id` of `key` (`None`: the remembered key) with the
    /// public deactivate (no session needed): `{"this_machine": …}`, true when it was the
    /// activation this cache remembers (then forgotten).
    #[pyo3(signature = (activation_id, key=None))]
    fn free_device<'py>(
        &self,
        py: Python<'py>,
        activation_id: String,
        key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            let key = match key_or_remembered(&self.inner, key) {
                Ok(key) => key,
                Err(e) => return err(&e),
            };
            let here = self
                .inner
                .status(key.clone())
                .ok()
                .and_then(|s| s.activation.map(|a| a.id));
            match self
                .inner
                .deactivate_update(key, Some(activation_id.as_str()))
                .answer
            {
                Ok(Verdict::Accepted(())) => ok(json!({
                    "this_machine": here.as_deref() == Some(activation_id.as_str()),
                })),
                Ok(Verdict::Denied(d)) => denied(&d),
                Err(e) => err(&e),
            }
        });
        to_py(py, &value)
    }

    /// Key recovery: the signed-in customer's keys this machine can activate (granted,
    /// unexpired, newest first), each `{"id", "display_key", "expires_at", "limit_activations"}`.
    fn recoverable_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| match recoverable_keys(&self.inner) {
            Ok(keys) => ok(keys),
            Err(e) => portal_err(&e),
        });
        to_py(py, &value)
    }

    /// Activates here the recoverable key `key_id` with `label`, as `activate` does (the
    /// whole key goes from Polar's answer into the activation, never to Python).
    fn recover_key<'py>(
        &self,
        py: Python<'py>,
        key_id: String,
        label: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            let recovered = remembered_session(&self.inner).and_then(|session| {
                forgetting_expired(
                    &self.inner,
                    Some(&session),
                    self.inner.recover_key(&session, &key_id, &label),
                )
            });
            match recovered {
                Ok(answer) => activated_json(answer),
                Err(e) => portal_err(&e),
            }
        });
        to_py(py, &value)
    }

    /// Opens a checkout from a checkout link (its URL or `polar_cl_…` secret), `email`
    /// prefilled: the new checkout's URL (buying in the app, issue #80).
    #[pyo3(signature = (link, email=None))]
    fn open_checkout_link<'py>(
        &self,
        py: Python<'py>,
        link: String,
        email: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| buy::open_link(&self.inner, &link, email.as_deref()));
        to_py(py, &value)
    }

    /// Asks the seller's relay at `relay_url` to make a checkout of `product_id` with the
    /// app's `metadata`, `email` prefilled and `success_url`: the new checkout's URL.
    #[pyo3(signature = (relay_url, product_id, metadata=None, email=None, success_url=None))]
    fn open_relay_checkout<'py>(
        &self,
        py: Python<'py>,
        relay_url: String,
        product_id: String,
        metadata: Option<&Bound<'_, PyDict>>,
        email: Option<String>,
        success_url: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut ask = polar_license::purchase::CheckoutAsk::new(product_id);
        ask.metadata = pairs(metadata)?.into_iter().collect();
        ask.customer_email = email;
        ask.success_url = success_url;
        let value = py.detach(|| buy::open_relay(&self.inner, &relay_url, &ask));
        to_py(py, &value)
    }

    /// Follows the checkout `checkout` until paid and activates the key bought with `label`
    /// (the core's purchase machine): the session from `success_url`, else a sign-in.
    #[pyo3(signature = (checkout, label, success_url=None))]
    fn buy<'py>(
        &self,
        py: Python<'py>,
        checkout: String,
        label: String,
        success_url: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| buy::buy(&self.inner, &checkout, success_url.as_deref(), &label));
        to_py(py, &value)
    }

    /// The rest of a purchase that ended with a sign-in, through the remembered session.
    #[pyo3(signature = (checkout_id, email, created_at, benefit_ids, label))]
    fn buy_signed_in<'py>(
        &self,
        py: Python<'py>,
        checkout_id: String,
        email: Option<String>,
        created_at: Option<i64>,
        benefit_ids: Vec<String>,
        label: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            buy::buy_signed_in(
                &self.inner,
                (checkout_id, email, created_at, benefit_ids),
                &label,
            )
        });
        to_py(py, &value)
    }

    /// Follows the rotated `old_key` through the remembered session with the activation this
    /// cache holds (no slot taken): `{"key", "display_key", "license"}`, the new key and
    /// Polar's validation of it.
    fn follow_rotation<'py>(
        &self,
        py: Python<'py>,
        old_key: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            let followed = remembered_session(&self.inner).and_then(|session| {
                forgetting_expired(
                    &self.inner,
                    Some(&session),
                    self.inner.follow_rotation(&session, old_key),
                )
            });
            match followed {
                Ok((new, Verdict::Accepted(v))) => ok(json!({
                    "key": new.expose(),
                    "display_key": new.redacted(),
                    "license": license_json(
                        &v.license_key,
                        v.activation.as_ref().map(|a| a.id.as_str()),
                    ),
                })),
                Ok((_, Verdict::Denied(d))) => denied(&d),
                Err(e) => portal_err(&e),
            }
        });
        to_py(py, &value)
    }

    /// Acquires one of `key`'s seats (`None`: the remembered key) for `machine` (`None`: this
    /// machine's fingerprint; a CI seat when `ci`) from the seller's relay at the base URL, held
    /// by the core's hold with the relay keys and `grace` seconds past a lease's end:
    /// `(seat, {"ok": seat})`, or `(None, {"error": …})` (no keys: `invalid_input` naming
    /// `relay_keys`, nothing sent). `background`: heartbeats on a thread of its own.
    #[pyo3(signature = (key=None, machine=None, ci=false, grace=0.0, background=true))]
    fn acquire_seat<'py>(
        &self,
        py: Python<'py>,
        key: Option<String>,
        machine: Option<String>,
        ci: bool,
        grace: f64,
        background: bool,
    ) -> PyResult<(Option<seats::NativeSeat>, Bound<'py, PyAny>)> {
        seats::acquire_seat(py, &self.inner, key, machine, ci, grace, background)
    }

    /// This machine's fingerprint for the organization, when activations are bound.
    fn machine_fingerprint(&self) -> Option<String> {
        self.inner.machine_fingerprint().map(str::to_string)
    }

    /// The base URL requests go to.
    fn base_url(&self) -> String {
        self.inner.client().api().base_url().to_string()
    }

    /// The organization.
    fn organization_id(&self) -> String {
        self.inner.client().api().organization_id().to_string()
    }
}

/// The local Polar emulator on its own threads (loopback, a free port).
#[pyclass(frozen, module = "polar_license._native")]
struct NativeEmulator {
    running: Mutex<Option<Emulator>>,
    url: String,
    organization_id: String,
}

impl NativeEmulator {
    fn with<T>(&self, f: impl FnOnce(&Emulator) -> T) -> PyResult<T> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match running.as_ref() {
            Some(emulator) => Ok(f(emulator)),
            None => Err(PyRuntimeError::new_err("the emulator was stopped")),
        }
    }
}

#[pymethods]
impl NativeEmulator {
    /// Starts the emulator with a seed (the seed file's JSON; `None`: the demo seed) on
    /// 127.0.0.1 and `port` (0: a free one), answering requests that send no `Polar-Version`
    /// as `api_version` (`None`: Polar's current one), with Polar's rate limits when
    /// `rate_limit`.
    #[new]
    #[pyo3(signature = (seed_json=None, port=0, api_version=None, rate_limit=false))]
    fn new(
        py: Python<'_>,
        seed_json: Option<String>,
        port: u16,
        api_version: Option<String>,
        rate_limit: bool,
    ) -> PyResult<Self> {
        let seed = match seed_json {
            Some(text) => Seed::from_json(&text)
                .map_err(|e| PyValueError::new_err(format!("invalid emulator seed: {e}")))?,
            None => Seed::demo(),
        };
        let emulator = py
            .detach(|| {
                let defaults = Options::default();
                let options = Options {
                    port,
                    rate_limit,
                    api_version: api_version.unwrap_or_else(|| defaults.api_version.clone()),
                    ..defaults
                };
                Emulator::start(seed, options)
            })
            .map_err(|e| PyRuntimeError::new_err(format!("could not start the emulator: {e}")))?;
        Ok(NativeEmulator {
            url: emulator.url(),
            organization_id: emulator.organization_id(),
            running: Mutex::new(Some(emulator)),
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// The seeded organization's id.
    #[getter]
    fn organization_id(&self) -> String {
        self.organization_id.clone()
    }

    /// Injects a fault on the license routes (the admin route's JSON), or clears it (`None`).
    #[pyo3(signature = (fault_json=None))]
    fn set_fault(&self, fault_json: Option<String>) -> PyResult<()> {
        let fault = match fault_json {
            Some(text) => Some(
                serde_json::from_str::<Fault>(&text)
                    .map_err(|e| PyValueError::new_err(format!("invalid fault: {e}")))?,
            ),
            None => None,
        };
        self.with(|e| e.set_fault(fault))
    }

    /// A merchant-side change to a key (the admin route's JSON); `False` for an unknown key.
    fn update_key(&self, key: &str, update_json: &str) -> PyResult<bool> {
        let update: KeyUpdate = serde_json::from_str(update_json)
            .map_err(|e| PyValueError::new_err(format!("invalid key update: {e}")))?;
        self.with(|e| e.update_key(key, update))
    }

    /// License-route requests answered so far.
    fn request_count(&self) -> PyResult<u64> {
        self.with(Emulator::request_count)
    }

    /// The key's activations, as JSON.
    fn activations(&self, key: &str) -> PyResult<String> {
        self.with(|e| Value::Array(e.activations(key)).to_string())
    }

    /// The customer-session email codes not yet used or expired, oldest first, as JSON
    /// (`GET /__emulator/customer-session/codes` answers the same).
    fn customer_session_codes(&self) -> PyResult<String> {
        self.with(|e| Value::Array(e.customer_session_codes()).to_string())
    }

    /// Rotates a key as Polar's `POST /v1/license-keys/{id}/rotate` does (the record's id,
    /// limits and activations kept; the old string answers 404 from now on): its new string,
    /// `None` when no such key.
    fn rotate_key(&self, key: &str) -> PyResult<Option<String>> {
        self.with(|e| e.rotate_key(key))
    }

    /// Moves the emulator's clock `seconds` from the real one (`POST /__emulator/clock`).
    fn set_clock_offset(&self, seconds: i64) -> PyResult<()> {
        self.with(|e| e.set_clock_offset(seconds))
    }

    /// Stops it (closing its connections); idempotent.
    fn stop(&self, py: Python<'_>) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(emulator) = running {
            py.detach(move || emulator.stop());
        }
    }

    /// `True` until stopped.
    #[getter]
    fn running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use polar_license_emulator as emu;
    m.add_class::<NativeLicensing>()?;
    m.add_class::<NativeOutcome>()?;
    m.add_class::<NativeEmulator>()?;
    m.add_class::<seats::NativeSeat>()?;
    m.add("CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    // The reason table's words (issue #77): each code's one sentence and next step, the core's,
    // which `Reason.user_message` and `Reason.next_step` read.
    m.add(
        "REASON_MESSAGES",
        polar_license::Reason::ALL
            .iter()
            .map(|r| (r.code(), r.user_message(), r.next_step()))
            .collect::<Vec<_>>(),
    )?;
    m.add(
        "REASONS",
        polar_license::Reason::ALL
            .iter()
            .map(|r| (r.code(), r.class().as_str()))
            .collect::<Vec<_>>(),
    )?;
    m.add("DEMO_ORGANIZATION_ID", emu::DEMO_ORGANIZATION_ID)?;
    m.add("DEMO_BENEFIT_ID", emu::DEMO_BENEFIT_ID)?;
    m.add("DEMO_CUSTOMER_ID", emu::DEMO_CUSTOMER_ID)?;
    m.add("DEMO_KEY", emu::DEMO_KEY)?;
    m.add("DEMO_KEY_REVOKED", emu::DEMO_KEY_REVOKED)?;
    m.add("DEMO_KEY_DISABLED", emu::DEMO_KEY_DISABLED)?;
    m.add("DEMO_KEY_EXPIRED", emu::DEMO_KEY_EXPIRED)?;
    m.add("DEMO_KEY_USAGE", emu::DEMO_KEY_USAGE)?;
    m.add("DEMO_KEY_NO_ACTIVATIONS", emu::DEMO_KEY_NO_ACTIVATIONS)?;
    Ok(())
}
