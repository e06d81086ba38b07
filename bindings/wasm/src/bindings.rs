//! What the npm package's [`Engine`](crate::engine::Engine) reads from JS, as JSON text read
//! by the core's strict reader (the one JSON reader of the engine): the options
//! (`LicenseClient`'s and each call's), the grace policy, the entitlement map
//! (checked when the engine is built: a bad entry is `invalid_input` with field
//! `entitlements.<name>`), and the `reasonTable` export the package's `REASONS` is tested
//! against.

use polar_license::error::Error;
use polar_license::features::Entitlements;
use polar_license::grace::GracePolicy;
use polar_license::json::{read_metadata, JsonIn};
use polar_license::metadata::Metadata;
use polar_license::reason::Reason;
use polar_license::strict::{self, Value};
use std::time::Duration;

/// The grace policy in seconds, as JS passes it.
#[derive(Debug, Default)]
pub(crate) struct PolicyOptions {
    pub(crate) revalidate_after: Option<f64>,
    pub(crate) grace_period: Option<f64>,
    pub(crate) clock_tolerance: Option<f64>,
}

/// `new LicenseClient(options)`, minus `storage`, `clock`, `crypto` and `features` (passed as
/// JS values), as [`Engine::new`](crate::engine::Engine::new) reads them from the JS
/// object (no serde on this path); `license.js` has checked their types and names and the
/// ranges of the durations, the release date and the trial benefits, the engine (the core)
/// checks the rest of their values (the URL, the organization id, the relay keys, the grace
/// policy as a whole, a timeout that rounds to zero).
#[derive(Debug)]
pub(crate) struct ClientOptions {
    pub(crate) organization_id: String,
    pub(crate) server: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) timeout: Option<f64>,
    pub(crate) grace_policy: PolicyOptions,
    pub(crate) app_secret: Option<String>,
    pub(crate) machine_id: Option<String>,
    pub(crate) require_activation: bool,
    /// Not a public option: the OS machine id the node file store passes, so a record in the
    /// native directory is sealed with this machine's identity as natively (where the seal
    /// always carries it, whatever the activation binding). `machineId`, when given, is the
    /// seal instead, as natively.
    pub(crate) seal_machine_id: Option<String>,
    /// `relayKeys` (issue #25, signed mode): `KID=k4.public.…` entries, comma-separated
    /// (`license.js` joins an array), read by the core's `RelayKeys::parse`.
    pub(crate) relay_keys: Option<String>,
    /// `released`: the build's release date, unix seconds (perpetual fallback).
    pub(crate) released: Option<f64>,
    /// `trialBenefit`: the benefit ids of the app's trial products.
    pub(crate) trial_benefits: Option<Vec<String>>,
    /// `relay`: the seller's relay's URL, where an activate at the limit lists the key's
    /// activations to adopt this machine's own (issue #80).
    pub(crate) relay: Option<String>,
    /// `portalUrl`: where the customer portal and checkouts are when the base URL is the
    /// relay (signed mode); checked here, used by `polar-license/devices`' follow.
    pub(crate) portal_url: Option<String>,
}

/// A `validate()` call's options.
#[derive(Debug, Default)]
pub(crate) struct ValidateOptions {
    pub(crate) activation_id: Option<String>,
    pub(crate) benefit_id: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) increment_usage: Option<i64>,
    pub(crate) conditions: Metadata,
}

/// An `activate()` call's options.
#[derive(Debug, Default)]
pub(crate) struct ActivateOptions {
    pub(crate) label: String,
    pub(crate) conditions: Metadata,
    pub(crate) meta: Metadata,
}

/// A `deactivate()` call's options.
#[derive(Debug, Default)]
pub(crate) struct DeactivateOptions {
    pub(crate) activation_id: Option<String>,
}

/// A call's options as `license.js` hands them over (JSON text, empty for none): the object, or
/// none. `license.js` has checked every name and type already (`options()`: unknown names are
/// refused with the known ones listed, each value's type with what it got), and it is the
/// engine's only caller, so the engine does not check them again (a second copy of those
/// checks and their messages cost the package's wasm bytes no app could reach): a member of
/// another type reads as absent. What the core checks of the values (UUIDs, the metadata's
/// limits, the usage increment) it still checks, in the machines.
fn options_object(text: &str) -> Value {
    strict::parse(text.as_bytes()).unwrap_or(Value::Null)
}

fn string(v: &Value, name: &str) -> Option<String> {
    v.member(name).and_then(|m| m.string())
}

fn metadata(v: &Value, name: &str) -> Metadata {
    v.member(name)
        .and_then(|m| read_metadata(&m))
        .unwrap_or_default()
}

/// `validate()`'s options.
pub(crate) fn validate_options(text: &str) -> ValidateOptions {
    let v = options_object(text);
    ValidateOptions {
        activation_id: string(&v, "activationId"),
        benefit_id: string(&v, "benefitId"),
        customer_id: string(&v, "customerId"),
        increment_usage: v.member("incrementUsage").and_then(|m| m.int()),
        conditions: metadata(&v, "conditions"),
    }
}

/// `activate()`'s options.
pub(crate) fn activate_options(text: &str) -> ActivateOptions {
    let v = options_object(text);
    ActivateOptions {
        label: string(&v, "label").unwrap_or_default(),
        conditions: metadata(&v, "conditions"),
        meta: metadata(&v, "meta"),
    }
}

/// `deactivate()`'s options.
pub(crate) fn deactivate_options(text: &str) -> DeactivateOptions {
    DeactivateOptions {
        activation_id: string(&options_object(text), "activationId"),
    }
}

/// A number of seconds as a `Duration`, to the microsecond: `None` unless finite, at least 0
/// and at most 10¹² (`license.js` allows far less: 366 days, a 600 s timeout).
pub(crate) fn duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && (0.0..=1e12).contains(&seconds))
        .then(|| Duration::from_micros((seconds * 1e6) as u64))
}

/// A duration of the policy: `license.js` has checked it (a finite number of seconds from 0 to
/// 366 days, refused with the unit named otherwise) before the engine is built, and is its only
/// caller, so the engine does not check it again (a second copy of those checks could not be
/// reached by an app: issue #54's size rule).
fn seconds(value: Option<f64>, default: Duration) -> Duration {
    value.and_then(duration).unwrap_or(default)
}

/// The grace policy as `license.js` hands it over; checked as a whole by the core
/// ([`GracePolicy::validate`], when the engine is built).
pub(crate) fn policy(o: PolicyOptions) -> GracePolicy {
    let d = GracePolicy::default();
    GracePolicy {
        revalidate_after: seconds(o.revalidate_after, d.revalidate_after),
        grace_period: seconds(o.grace_period, d.grace_period),
        clock_tolerance: seconds(o.clock_tolerance, d.clock_tolerance),
    }
}

/// The `features` option, as `license.js` hands it over (`JSON.stringify` of the JS object):
/// `{ <name>: [<benefit id>, ...] }` or `{ <name>: { benefits: [...], metered: true } }`.
/// Stricter than [`Entitlements::from_json`] about the shape (no unknown keys, so a misspelt
/// `metered` is not silently dropped), and every error names its entry (field
/// `entitlements.<name>`).
#[inline(never)] // called only for a feature map: compiled by V8 only then (issue #38)
pub(crate) fn entitlements(features: &Value) -> Result<Entitlements, Error> {
    if JsonIn::is_null(features) {
        return Ok(Entitlements::new());
    }
    let Some(entries) = features.members() else {
        return Err(Error::invalid(
            "entitlements",
            "features must be an object: { feature: [benefit ids] }",
        ));
    };
    let mut map = Entitlements::new();
    for (name, entry) in entries {
        let field = ["entitlements.", &name].concat();
        let (ids, metered) = match entry.members() {
            Some(keys) => {
                for (key, _) in keys {
                    if key != "benefits" && key != "metered" {
                        return Err(Error::invalid(
                            field,
                            ["unknown key `", &key, "` (expected benefits, metered)"].concat(),
                        ));
                    }
                }
                let metered = entry.optional("metered", JsonIn::boolean).ok_or_else(|| {
                    Error::invalid(field.clone(), "metered must be true or false")
                })?;
                (
                    entry.member("benefits").and_then(|b| b.items()),
                    metered == Some(true),
                )
            }
            None => (entry.items(), false),
        };
        let Some(ids) = ids else {
            return Err(Error::invalid(
                field,
                "expected a list of benefit ids or { benefits: [...], metered: true }",
            ));
        };
        let ids = ids
            .iter()
            .map(JsonIn::string)
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

/// The reason table (docs/interfaces.md §1) as JSON: `[{ "code", "kind", "number", "sentence",
/// "nextStep", "userMessage" }, …]` (`userMessage` the two as one line), so the JS package's `REASONS` can be tested against the
/// Rust enum and a JS face says each reason in the core's words.
#[inline(never)] // compiled by V8 only when asked for (issue #38)
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
        // The core's words for the reason (issue #77: a face's own table of reasons reads
        // them here): plain ASCII sentences with no quote or backslash (the core's table test).
        out.push_str(",\"sentence\":\"");
        out.push_str(r.user_message());
        out.push_str("\",\"nextStep\":\"");
        out.push_str(r.next_step());
        out.push_str("\",\"userMessage\":\"");
        out.push_str(&r.message().text());
        out.push_str("\"}");
    }
    out.push(']');
    out
}
