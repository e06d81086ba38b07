//! `polar_license_result`: the answer of one call, read through accessors.

use super::enums::{
    polar_license_cache_state, polar_license_entitlement, polar_license_outcome,
    polar_license_reason, polar_license_relay_source, polar_license_source, polar_license_stopped,
    polar_license_trial,
};
use super::out;
use super::panic::{read, Boundary};
use super::strings::to_cstring;
use polar_license::error::{Denial, Error, Verdict};
use polar_license::flow::update::Activated;
use polar_license::grace::{CheckOutcome, CheckReport, GracePolicy, LeaseWindow};
use polar_license::lease::EntitlementValue;
use polar_license::model::{LicenseKeyActivation, LicenseKeyRead};
use polar_license::proto::Relayed;
use polar_license::reason::Reason;
use polar_license::{CacheState, CacheStatus, Standing};
use std::ffi::{c_char, CString};
use std::time::Duration;

/// The answer of one call (opaque). Made by the `polar_license_client_*` calls, read with the
/// `polar_license_result_*` accessors (from any thread), freed by `polar_license_result_free`.
/// Every string an accessor returns belongs to the result and stays valid until it is freed.
#[derive(Debug)]
pub struct polar_license_result {
    outcome: polar_license_outcome,
    reason: polar_license_reason,
    detail: CString,
    field: CString,
    activation_id: CString,
    license_json: CString,
    expires_at: i64,
    usage: i64,
    limit_usage: i64,
    limit_activations: i64,
    validations: i64,
    remaining_usages: Option<i64>,
    grace_remaining: i64,
    verified_at: i64,
    source: polar_license_source,
    /// Through a relay: where it took the verdict from.
    relay_source: polar_license_relay_source,
    http_status: u32,
    retry_after: i64,
    cache_state: polar_license_cache_state,
    /// Why the cache could not be written (empty: it was, or there was nothing to write).
    cache_error: CString,
    /// The member, subscription and order of the license (API version 2027-01 and later).
    grant: Grant,
    /// A denial of a key this install had a good verdict for (a rotated or refunded key).
    previously_valid: bool,
    /// With `previously_valid`: a sentence for the user.
    hint: CString,
    /// Why the key stopped (issue #68), and its dates (unix seconds, -1 unknown).
    stopped: polar_license_stopped,
    stopped_at: i64,
    stopped_until: i64,
    /// For an answer that does not license: a sentence to show the user.
    user_message: CString,
    /// Its next step alone (the core's `Message::next_step`).
    next_step: CString,
    /// For a licensed check: when its grace ends (unix seconds), else -1.
    grace_ends_at: i64,
    /// The verdict itself, for `polar_license_client_has_feature`: set on the results of
    /// validate, check and check_request (whatever their outcome), `None` on the others.
    verdict: Option<CheckOutcome>,
    /// Signed mode: the `kid` of the key's stored lease that verifies (empty: none).
    lease_kid: CString,
    /// Signed mode: when that lease ends (unix seconds), else -1.
    lease_expires_at: i64,
    /// Air-gapped activation: the request or response line to carry across (empty: none).
    line: CString,
    /// Perpetual fallback: the licensed answer stands only because the build is not newer
    /// than the time the key was paid for.
    fallback: bool,
    /// The end of the time the key was paid for (unix seconds), or -1 when unknown.
    paid_through: i64,
    /// Trials: the trial this check tells of (`None`: none).
    trial: Option<polar_license::trial::Trial>,
    /// The entitlement values the relay signed into the lease of a licensed check (issue #68),
    /// each with its C string (`""` for a value that is not a string); `None`: not known.
    entitlements: Option<std::collections::BTreeMap<String, (EntitlementValue, CString)>>,
}

/// What 2027-01's license answers add (`member`, `subscription`, `order`), for the accessors:
/// `""` and -1 when absent.
#[derive(Debug)]
struct Grant {
    member_id: CString,
    member_email: CString,
    subscription_id: CString,
    subscription_status: CString,
    period_end: i64,
    cancel_at_period_end: i64,
    ends_at: i64,
    order_id: CString,
    order_status: CString,
    order_paid: i64,
}

impl Grant {
    fn none() -> Grant {
        Grant {
            member_id: CString::default(),
            member_email: CString::default(),
            subscription_id: CString::default(),
            subscription_status: CString::default(),
            period_end: -1,
            cancel_at_period_end: -1,
            ends_at: -1,
            order_id: CString::default(),
            order_status: CString::default(),
            order_paid: -1,
        }
    }

    fn of(l: &LicenseKeyRead) -> Grant {
        let text = |v: Option<&str>| to_cstring(v.unwrap_or_default());
        let unix = |t: Option<time::OffsetDateTime>| t.map_or(-1, |t| t.unix_timestamp());
        let sub = l.subscription.as_ref();
        let order = l.order.as_ref();
        let member = l.member.as_ref();
        Grant {
            member_id: text(l.member_id.as_deref().or(member.map(|m| m.id.as_str()))),
            member_email: text(member.and_then(|m| m.email.as_deref())),
            subscription_id: text(l.subscription_id.as_deref().or(sub.map(|s| s.id.as_str()))),
            subscription_status: text(sub.map(|s| s.status.as_str())),
            period_end: unix(sub.and_then(|s| s.current_period_end)),
            cancel_at_period_end: sub.map_or(-1, |s| i64::from(s.cancel_at_period_end)),
            ends_at: unix(sub.and_then(|s| s.ends_at)),
            order_id: text(l.order_id.as_deref().or(order.map(|o| o.id.as_str()))),
            order_status: text(order.map(|o| o.status.as_str())),
            order_paid: order.map_or(-1, |o| i64::from(o.paid)),
        }
    }
}

impl polar_license_result {
    fn new(outcome: polar_license_outcome) -> Self {
        polar_license_result {
            outcome,
            reason: polar_license_reason::None,
            detail: CString::default(),
            field: CString::default(),
            activation_id: CString::default(),
            license_json: CString::default(),
            expires_at: -1,
            usage: -1,
            limit_usage: -1,
            limit_activations: -1,
            validations: -1,
            remaining_usages: None,
            grace_remaining: -1,
            verified_at: -1,
            source: polar_license_source::None,
            relay_source: polar_license_relay_source::None,
            http_status: 0,
            retry_after: -1,
            cache_state: polar_license_cache_state::None,
            cache_error: CString::default(),
            grant: Grant::none(),
            previously_valid: false,
            hint: CString::default(),
            stopped: polar_license_stopped::None,
            stopped_at: -1,
            stopped_until: -1,
            user_message: CString::default(),
            next_step: CString::default(),
            grace_ends_at: -1,
            verdict: None,
            lease_kid: CString::default(),
            lease_expires_at: -1,
            line: CString::default(),
            fallback: false,
            paid_through: -1,
            trial: None,
            entitlements: None,
        }
    }

    /// A done result carrying a line to carry across (air-gapped activation).
    pub(crate) fn line(line: &str) -> Self {
        let mut r = polar_license_result::new(polar_license_outcome::Done);
        r.line = to_cstring(line);
        r
    }

    /// Overrides where the answer came from.
    pub(crate) fn set_source(&mut self, source: polar_license_source) {
        self.source = source;
    }

    /// Records the key's stored lease (signed mode), or none. In signed mode the cache licenses
    /// only until the lease ends, so a licensed answer's grace ends then at the latest.
    pub(crate) fn set_lease(&mut self, window: Option<&LeaseWindow>) {
        match window {
            Some(w) => {
                self.lease_kid = to_cstring(&w.kid);
                self.lease_expires_at = w.expires_at;
                if self.grace_ends_at >= 0 {
                    self.grace_ends_at = w.cap(self.grace_ends_at);
                }
            }
            None => {
                self.lease_kid = CString::default();
                self.lease_expires_at = -1;
            }
        }
    }

    /// A success: `outcome` (licensed or done) with this HTTP status and source.
    pub(crate) fn success(
        outcome: polar_license_outcome,
        http_status: u32,
        source: polar_license_source,
    ) -> Self {
        let mut r = polar_license_result::new(outcome);
        r.http_status = http_status;
        r.source = source;
        r
    }

    /// An activate's answer (the activate machine's, or a recovered key's): done with the
    /// license and the activation, or `cache_error` with both when the key could not be
    /// remembered (so nothing is lost); Polar's denial; the error; and the key's lease.
    pub(crate) fn activated(activated: Activated) -> Self {
        let unremembered = activated.unremembered();
        let mut r = match activated.online {
            Ok(Verdict::Accepted(read)) => {
                let mut r = match unremembered {
                    Some(e) => polar_license_result::error(&e),
                    None => polar_license_result::success(
                        polar_license_outcome::Done,
                        200,
                        polar_license_source::None,
                    ),
                };
                r.set_license(&read.license_key);
                r.set_activation(Some(&read.activation));
                r
            }
            Ok(Verdict::Denied(d)) => polar_license_result::denied(&d),
            Err(e) => polar_license_result::error(&e),
        };
        r.set_lease(activated.lease.as_ref());
        r
    }

    /// A deactivation's answer: done (204) or Polar's denial or the error, about
    /// `activation_id` when the answer names none.
    pub(crate) fn deactivated(
        answer: Result<Verdict<()>, Error>,
        activation_id: Option<&str>,
    ) -> Self {
        let mut r = match answer {
            Ok(Verdict::Accepted(())) => {
                let mut r = polar_license_result::success(
                    polar_license_outcome::Done,
                    204,
                    polar_license_source::None,
                );
                r.said(polar_license::message::DEACTIVATED);
                r
            }
            Ok(Verdict::Denied(d)) => polar_license_result::denied(&d),
            Err(e) => polar_license_result::error(&e),
        };
        r.default_activation_id(activation_id);
        r
    }

    /// The server said no.
    pub(crate) fn denied(d: &Denial) -> Self {
        let mut r = polar_license_result::new(polar_license_outcome::Denied);
        r.set_reason(d.reason);
        r.detail = to_cstring(&d.detail);
        r.http_status = u32::from(d.status);
        r.remaining_usages = d.remaining_usages;
        r.source = polar_license_source::Online;
        r.set_known(d);
        r.said(d.message());
        r
    }

    /// The core's words for an answer: its sentence and next step (`Message`), passed on as
    /// they are.
    fn said(&mut self, said: polar_license::Message) {
        self.user_message = to_cstring(&said.text());
        self.next_step = to_cstring(said.next_step());
    }

    /// Whether the denied key was valid on this install before, and the hint that goes with it.
    fn set_known(&mut self, d: &Denial) {
        self.previously_valid = d.previously_valid;
        self.hint = to_cstring(d.hint().unwrap_or_default());
        self.stopped = d.stopped.map(|s| s.kind).into();
        self.stopped_at = d.stopped.and_then(|s| s.at).unwrap_or(-1);
        self.stopped_until = d.stopped.and_then(|s| s.until).unwrap_or(-1);
    }

    /// No trustworthy answer.
    pub(crate) fn error(e: &Error) -> Self {
        let reason = e.reason();
        let mut r = polar_license_result::new(polar_license_outcome::of(reason));
        r.set_reason(reason);
        r.detail = to_cstring(&e.detail());
        r.said(e.message());
        r.http_status = e.status().map_or(0, u32::from);
        match e {
            Error::InvalidInput { field, .. } => r.field = to_cstring(field),
            Error::RateLimited { retry_after } => r.retry_after = retry_after.map_or(-1, secs),
            _ => {}
        }
        r
    }

    /// The answer of a grace-aware check (a verdict features can be asked about), with why a
    /// licensed answer came from the cache although Polar was asked (its reason and detail)
    /// and why the cache could not be written.
    pub(crate) fn check(report: &CheckReport, policy: &GracePolicy) -> Self {
        let mut r = polar_license_result::check_answer(&report.outcome);
        // A licensed answer's words: offline ones when it fell back to the cache.
        if let Some(said) = report.licensed_message() {
            r.user_message = to_cstring(&said);
        }
        // Never past the end of the lease the report carries (signed mode).
        r.grace_ends_at = report.grace_ends_at(policy).unwrap_or(-1);
        if let Some(why) = &report.fallback {
            r.set_reason(why.reason());
            r.detail = to_cstring(&why.detail());
            if let Error::RateLimited { retry_after } = why {
                r.retry_after = retry_after.map_or(-1, secs);
            }
        }
        r.set_cache_error(report.cache_error.as_ref());
        r.relay_source = match report.relayed {
            None => polar_license_relay_source::None,
            Some(Relayed::Polar) => polar_license_relay_source::Polar,
            Some(Relayed::Store) => polar_license_relay_source::Store,
            Some(Relayed::Stale) => polar_license_relay_source::Stale,
        };
        r.verdict = Some(report.outcome.clone());
        r.fallback = report.perpetual.is_some_and(|p| p.fallback);
        r.paid_through = report.paid_through().unwrap_or(-1);
        r.trial = report.trial.as_deref().copied();
        // The core's reading: values only for a licensed answer whose lease signed them.
        r.entitlements = report.entitlements().map(|claims| {
            claims
                .values
                .iter()
                .map(|(name, value)| {
                    let text = match value {
                        EntitlementValue::Str(s) => to_cstring(s),
                        _ => CString::default(),
                    };
                    (name.clone(), (value.clone(), text))
                })
                .collect()
        });
        r
    }

    /// Records why the cache could not be written after this answer (nothing for `None`).
    pub(crate) fn set_cache_error(&mut self, e: Option<&Error>) {
        if let Some(e) = e {
            self.cache_error = to_cstring(&e.detail());
        }
    }

    /// A check or validate refused before any request (bad input): a verdict that does not
    /// license.
    pub(crate) fn refused(e: &Error) -> Self {
        let mut r = polar_license_result::error(e);
        r.verdict = Some(CheckOutcome::refused(e.clone()));
        r
    }

    /// Keeps `verdict` for `polar_license_client_has_feature`.
    pub(crate) fn set_verdict(&mut self, verdict: CheckOutcome) {
        self.verdict = Some(verdict);
    }

    /// The result of an outcome the core built (a validate's, [`polar_license::flow::update::Validated::outcome`]),
    /// read as a check's is, and kept for `polar_license_client_has_feature`.
    pub(crate) fn of_outcome(outcome: CheckOutcome) -> Self {
        let mut r = polar_license_result::check_answer(&outcome);
        r.set_verdict(outcome);
        r
    }

    /// The verdict, when this is the result of validate, check or check_request.
    pub(crate) fn verdict(&self) -> Option<&CheckOutcome> {
        self.verdict.as_ref()
    }

    fn check_answer(outcome: &CheckOutcome) -> Self {
        match outcome {
            CheckOutcome::Licensed {
                source,
                license,
                grace_remaining,
                verified_at,
            } => {
                let (source, http) = match source {
                    polar_license::Source::Online => (polar_license_source::Online, 200),
                    polar_license::Source::Cache => (polar_license_source::Cache, 0),
                };
                let mut r =
                    polar_license_result::success(polar_license_outcome::Licensed, http, source);
                r.set_license(&license.license_key);
                r.set_activation(license.activation.as_ref());
                r.grace_remaining = grace_remaining.map_or(-1, duration_secs);
                r.verified_at = *verified_at;
                r.user_message = to_cstring(polar_license::message::LICENSED);
                r
            }
            CheckOutcome::Denied(d) => polar_license_result::denied(d),
            CheckOutcome::Unverified(e) => polar_license_result::error(e),
        }
    }

    /// What the cache holds (`status`).
    pub(crate) fn status(status: &CacheStatus) -> Self {
        let mut r = polar_license_result::new(polar_license_outcome::Done);
        r.grace_remaining = status.grace_remaining.map_or(-1, duration_secs);
        match &status.state {
            CacheState::Empty => r.cache_state = polar_license_cache_state::Empty,
            CacheState::Untrusted(why) => {
                r.cache_state = polar_license_cache_state::Untrusted;
                r.detail = to_cstring(&format!(
                    "the cache record cannot be trusted: {}: {why}",
                    why.as_str()
                ));
                // An activation id is no secret: the next check validates it online.
                if let Some(a) = &status.activation {
                    r.activation_id = to_cstring(&a.id);
                }
            }
            CacheState::Present(record) => {
                r.cache_state = polar_license_cache_state::Present;
                r.set_lease(record.lease_gate.window());
                if let Some(a) = &record.activation {
                    r.activation_id = to_cstring(&a.id);
                }
                if let Some(good) = &record.good {
                    // Since a denial, the last good license is history, not the key's status:
                    // only when it was verified is kept.
                    if status.standing != Standing::Denied {
                        r.set_license(&good.license.license_key);
                    }
                    r.verified_at = good.verified_at;
                }
                if let Some(denied) = record.denial() {
                    r.set_reason(denied.reason);
                    r.detail = to_cstring(&denied.detail);
                    r.remaining_usages = denied.remaining_usages;
                    r.set_known(&denied);
                } else if let Some(by) = status.clock_rollback {
                    r.set_reason(Reason::ClockRollback);
                    r.detail = to_cstring(&Error::ClockRollback { by_seconds: by }.detail());
                }
            }
        }
        r
    }

    fn set_reason(&mut self, reason: Reason) {
        self.reason = reason.into();
    }

    /// Copies the license's numbers and its JSON.
    pub(crate) fn set_license(&mut self, l: &LicenseKeyRead) {
        self.expires_at = l.expires_at.map_or(-1, |t| t.unix_timestamp());
        self.usage = l.usage;
        self.limit_usage = l.limit_usage.unwrap_or(-1);
        self.limit_activations = l.limit_activations.unwrap_or(-1);
        self.validations = l.validations;
        self.remaining_usages = l.remaining_usage();
        self.grant = Grant::of(l);
        self.license_json = to_cstring(&serde_json::to_string(l).unwrap_or_default());
    }

    /// Sets the activation id from an activation Polar returned, if any.
    pub(crate) fn set_activation(&mut self, a: Option<&LicenseKeyActivation>) {
        if let Some(a) = a {
            self.activation_id = to_cstring(&a.id);
        }
    }

    /// `true` when an activation id is known.
    pub(crate) fn has_activation_id(&self) -> bool {
        !self.activation_id.is_empty()
    }

    /// Sets the activation id when none is known yet.
    pub(crate) fn default_activation_id(&mut self, id: Option<&str>) {
        if let (true, Some(id)) = (self.activation_id.is_empty(), id) {
            self.activation_id = to_cstring(id);
        }
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

fn duration_secs(d: Duration) -> i64 {
    secs(d.as_secs())
}

/// Frees a result. NULL is a no-op. Strings read from it are invalid afterwards.
#[no_mangle]
pub extern "C" fn polar_license_result_free(result: *mut polar_license_result) {
    ffi_boundary! { out::free(result) }
}

/// What the answer amounts to: licensed, denied, unverified, error or done
/// (`POLAR_LICENSE_OUTCOME_ERROR` for NULL).
#[no_mangle]
pub extern "C" fn polar_license_result_outcome(
    result: *const polar_license_result,
) -> polar_license_outcome {
    ffi_boundary! { read(result, |r| r.outcome) }
}

/// `true` when the outcome is `POLAR_LICENSE_OUTCOME_LICENSED` (`false` for NULL). The one
/// test an app needs before unlocking a feature.
#[no_mangle]
pub extern "C" fn polar_license_result_is_licensed(result: *const polar_license_result) -> bool {
    ffi_boundary! { read(result, |r| r.outcome == polar_license_outcome::Licensed) }
}

/// Why the answer is not plain success, or `POLAR_LICENSE_REASON_NONE`.
///
/// For a licensed answer from the cache after Polar was asked (`POLAR_LICENSE_SOURCE_CACHE`,
/// the fallback of docs/interfaces.md §4, which reports the reason that happened with `source`
/// `cache`): what happened online, `POLAR_LICENSE_REASON_OFFLINE`, `_RATE_LIMITED`, `_SERVER_ERROR`
/// or `_PROTOCOL_ERROR` (an answer that is not Polar's: a login page, a proxy's page, garbage, a
/// 200 that does not license the key asked), with its detail in `polar_license_result_detail`.
/// `POLAR_LICENSE_REASON_NONE` for a fresh answer from the cache (nothing was asked) and for an
/// online one. For a status result: the denial the cache remembers, or `CLOCK_ROLLBACK`, else NONE.
/// Test `polar_license_result_is_licensed` first: a reason never means "not licensed" by itself.
#[no_mangle]
pub extern "C" fn polar_license_result_reason(
    result: *const polar_license_result,
) -> polar_license_reason {
    ffi_boundary! { read(result, |r| r.reason) }
}

/// Where the answer came from: online, the offline cache, or none (errors, activate,
/// deactivate, status).
#[no_mangle]
pub extern "C" fn polar_license_result_source(
    result: *const polar_license_result,
) -> polar_license_source {
    ffi_boundary! { read(result, |r| r.source) }
}

/// For a check answered online through the seller's relay: where the relay took Polar's verdict
/// from (`POLAR_LICENSE_RELAY_SOURCE_POLAR`: asked just now, `_STORE`: its store, `_STALE`: a
/// stored grant while Polar could not be asked); `POLAR_LICENSE_RELAY_SOURCE_NONE` without a
/// relay, for a cached answer, and for the other results.
#[no_mangle]
pub extern "C" fn polar_license_result_relay_source(
    result: *const polar_license_result,
) -> polar_license_relay_source {
    ffi_boundary! { read(result, |r| r.relay_source) }
}

/// What the cache holds, for a `polar_license_client_status` result
/// (`POLAR_LICENSE_CACHE_STATE_NONE` for other results).
#[no_mangle]
pub extern "C" fn polar_license_result_cache_state(
    result: *const polar_license_result,
) -> polar_license_cache_state {
    ffi_boundary! { read(result, |r| r.cache_state) }
}

/// The HTTP status of the answer (200, 204, 403, 404, 429, 500, …), or 0 when no HTTP
/// answer was had (offline, a cache answer, a local error).
#[no_mangle]
pub extern "C" fn polar_license_result_http_status(result: *const polar_license_result) -> u32 {
    ffi_boundary! { read(result, |r| r.http_status) }
}

/// The key's expiry in unix seconds, or -1 when it never expires or no license is known.
#[no_mangle]
pub extern "C" fn polar_license_result_expires_at(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.expires_at) }
}

/// The key's usage counter, or -1 when no license is known.
#[no_mangle]
pub extern "C" fn polar_license_result_usage(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.usage) }
}

/// The key's usage limit, or -1 when unlimited or no license is known.
#[no_mangle]
pub extern "C" fn polar_license_result_limit_usage(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.limit_usage) }
}

/// The key's activation limit, or -1 when activations are not supported or no license
/// is known.
#[no_mangle]
pub extern "C" fn polar_license_result_limit_activations(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.limit_activations) }
}

/// How many times the key was validated, or -1 when no license is known.
#[no_mangle]
pub extern "C" fn polar_license_result_validations(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.validations) }
}

/// For an answer from the cache (and a status result): how many seconds the grace period
/// still lasts, or -1.
#[no_mangle]
pub extern "C" fn polar_license_result_grace_remaining_seconds(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.grace_remaining) }
}

/// When the license was last verified online (unix seconds, local clock), or -1.
#[no_mangle]
pub extern "C" fn polar_license_result_verified_at(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.verified_at) }
}

/// For `rate_limited` (also a licensed answer from the cache whose reason is `RATE_LIMITED`):
/// the server's `retry-after` in seconds, at most 3600 (a longer one is read as an hour), or
/// -1 when not given.
#[no_mangle]
pub extern "C" fn polar_license_result_retry_after_seconds(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.retry_after) }
}

/// For `usage_exhausted`, the usages left (may be 0 or negative when the merchant lowered the
/// limit); for a license with a usage limit, `limit_usage - usage`. Writes it to
/// `*out_remaining` and returns `true`, or returns `false` (and writes nothing) when unknown.
#[no_mangle]
pub extern "C" fn polar_license_result_remaining_usages(
    result: *const polar_license_result,
    out_remaining: *mut i64,
) -> bool {
    ffi_boundary! {
        let r = try_ref!(result);
        check_out!(out_remaining);
        out::write_some(out_remaining, r.remaining_usages)
    }
}

/// The server's `detail` text, or ours (UTF-8): for a licensed answer from the cache after
/// Polar was asked, the detail of what happened online (see `polar_license_result_reason`).
///
/// Never NULL (`""` when absent or for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_detail(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.detail.as_ptr()) }
}

/// For `invalid_input`: the field at fault (`key`, `activation_id`, `conditions`, …).
///
/// Never NULL (`""` when absent or for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_field(result: *const polar_license_result) -> *const c_char {
    ffi_boundary! { read(result, |r| r.field.as_ptr()) }
}

/// The activation id: the new one after activate, the one validated, deactivated or
/// remembered by the cache.
///
/// Never NULL (`""` when absent or for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_activation_id(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.activation_id.as_ptr()) }
}

/// `false` when the offline cache could not be written after this answer (a full disk, a
/// read-only directory, a record path that is not a file, this machine's id unreadable): the
/// answer stands, but the cache did not learn it, so the cache was not refreshed (a later
/// check may ask Polar again, or answer from an older record);
/// `polar_license_result_cache_error` says why. `true` otherwise, also when there was nothing
/// to write; `false` for NULL. Set by check, check_request and validate.
#[no_mangle]
pub extern "C" fn polar_license_result_cache_refreshed(
    result: *const polar_license_result,
) -> bool {
    ffi_boundary! { read(result, |r| r.cache_error.is_empty()) }
}

/// Why the offline cache could not be written after this answer, or `""`.
///
/// Never NULL (`""` for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_cache_error(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.cache_error.as_ptr()) }
}

/// The license-key object as Polar returned it, as JSON (for fields without an accessor:
/// `status`, `customer_id`, `benefit_id`, …). From the cache, `key` is the redacted
/// display key.
///
/// Never NULL (`""` when absent or for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_license_json(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.license_json.as_ptr()) }
}

/// For a denial: `true` when this install had a good verdict for the key before (its cached
/// record holds one). A key the seller or the customer rotated answers `not_found` exactly
/// like an unknown key, and a refunded one `inactive`: this tells them apart from a typo, and
/// `polar_license_result_hint` says it in a sentence. `false` otherwise and for NULL. Set by
/// check, check_request, validate, activate and status.
#[no_mangle]
pub extern "C" fn polar_license_result_previously_valid(
    result: *const polar_license_result,
) -> bool {
    ffi_boundary! { read(result, |r| r.previously_valid) }
}

/// For a denial: why the key stopped, when the seller's relay told (issue #68): paused,
/// canceled, seat revoked, refunded, rotated, past due; `POLAR_LICENSE_STOPPED_NONE` otherwise
/// and for NULL. An addition beside `polar_license_result_reason`, which stays what Polar's
/// answer gives; the denial stays re-checkable (a resumed subscription licenses again at the
/// next check). In signed mode only the relay's signed detail is read. Set by check,
/// check_request and validate.
#[no_mangle]
pub extern "C" fn polar_license_result_stopped(
    result: *const polar_license_result,
) -> polar_license_stopped {
    ffi_boundary! { read(result, |r| r.stopped) }
}

/// With `polar_license_result_stopped`: when it happened (paused, ended, removed, refunded,
/// rotated, went past due; unix seconds), or -1 when unknown, no detail or NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_stopped_at(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.stopped_at) }
}

/// With `POLAR_LICENSE_STOPPED_PAUSED`: when the subscription resumes (unix seconds), or -1
/// when unknown, another detail or NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_stopped_until(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.stopped_until) }
}

/// With `polar_license_result_previously_valid`: a sentence to show the user (what probably
/// happened, where to look), or `""`. Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_hint(result: *const polar_license_result) -> *const c_char {
    ffi_boundary! { read(result, |r| r.hint.as_ptr()) }
}

/// The seat holder's id (`member_id`, Polar API version 2027-01 and later), or `""`. Never
/// NULL; owned by the result. Every `member`/`subscription`/`order` accessor reads the license
/// of a licensed answer (or of `status`'s record); the whole object is in
/// `polar_license_result_license_json`.
#[no_mangle]
pub extern "C" fn polar_license_result_member_id(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.member_id.as_ptr()) }
}

/// The seat holder's e-mail (2027-01 and later), or `""`. Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_member_email(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.member_email.as_ptr()) }
}

/// The id of the subscription the key was granted through (2027-01 and later), or `""`.
/// Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_subscription_id(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.subscription_id.as_ptr()) }
}

/// The subscription's status as Polar sent it (`active`, `trialing`, `past_due`,
/// `canceled`, …; 2027-01 and later), or `""`. Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_subscription_status(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.subscription_status.as_ptr()) }
}

/// The end of the subscription's current billing period in unix seconds, or -1 when unknown.
#[no_mangle]
pub extern "C" fn polar_license_result_subscription_period_end(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.grant.period_end) }
}

/// 1 when the subscription ends at its period end (the customer cancelled), 0 when it renews,
/// -1 when no subscription is known (and for NULL).
#[no_mangle]
pub extern "C" fn polar_license_result_subscription_cancel_at_period_end(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.grant.cancel_at_period_end) }
}

/// When the subscription ends (or ended) in unix seconds, or -1 when unknown or renewing.
#[no_mangle]
pub extern "C" fn polar_license_result_subscription_ends_at(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.grant.ends_at) }
}

/// The id of the order the key was granted through (2027-01 and later), or `""`. Never NULL;
/// owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_order_id(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.order_id.as_ptr()) }
}

/// The order's status as Polar sent it (`paid`, `refunded`, …), or `""`. Never NULL; owned
/// by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_order_status(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.grant.order_status.as_ptr()) }
}

/// 1 when the order is paid, 0 when not, -1 when no order is known (and for NULL).
#[no_mangle]
pub extern "C" fn polar_license_result_order_paid(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.grant.order_paid) }
}

/// For an answer that does not license (a denial, an error, "not verified yet"): a short
/// sentence to show the person using the app (what happened and what they can do; the reason
/// and `polar_license_result_detail` are for logs). For a licensed answer (an addition, issue
/// #80), the core's words for it: "This device is licensed.", or, from the cache because Polar
/// could not be reached, how long the device stays licensed and what keeps it so; for a done
/// deactivation, that the seat is free. Else `""`. Tell an answer by its outcome, not by
/// whether this is empty. Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_user_message(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.user_message.as_ptr()) }
}

/// For an answer that does not license (and a done deactivation): the one next step of
/// `polar_license_result_user_message` alone, the core's
/// words as every face shows them, for an app that shows the sentence and the step apart; `""`
/// otherwise. Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_next_step(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.next_step.as_ptr()) }
}

/// For a licensed answer of check, check_request or check_in_background: when its grace ends,
/// in unix seconds (the good verdict's time plus the grace period, and in signed mode never
/// past the stored lease's end, `polar_license_result_lease_expires_at`: past it, an
/// unreachable Polar no longer licenses; an online answer before then moves it). -1 otherwise
/// and for NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_grace_ends_at(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.grace_ends_at) }
}

/// Signed mode: the `kid` of the relay key that signed the key's stored lease, when that lease
/// verifies with the client's relay keys (`polar_license_config_add_relay_key`), or `""`: no
/// lease that verifies, a client not in signed mode, a NULL result. Set on the results of
/// activate, validate, check (every variant), status and lease install, from the key's record
/// as it is after the call, whatever the outcome (the command line's `lease` field).
///
/// Never NULL; owned by the result, valid until `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_lease_kid(
    result: *const polar_license_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.lease_kid.as_ptr()) }
}

/// Signed mode: when the key's stored lease ends, in unix seconds (the cache licenses until
/// then at most, whatever the grace period says), or -1 when `polar_license_result_lease_kid`
/// is `""`. Set on the same results.
#[no_mangle]
pub extern "C" fn polar_license_result_lease_expires_at(
    result: *const polar_license_result,
) -> i64 {
    ffi_boundary! { read(result, |r| r.lease_expires_at) }
}

/// Air-gapped activation: the line `polar_license_client_lease_request` made (to carry to an
/// online machine) or `polar_license_client_lease_fetch` brought back (to carry to the machine
/// that asked), when the outcome is `POLAR_LICENSE_OUTCOME_DONE`; `""` otherwise. One line of
/// printable ASCII without a newline. A request line holds the license key: treat it as the
/// key itself.
///
/// Never NULL (`""` for a NULL result); owned by the result, valid until
/// `polar_license_result_free`.
#[no_mangle]
pub extern "C" fn polar_license_result_line(result: *const polar_license_result) -> *const c_char {
    ffi_boundary! { read(result, |r| r.line.as_ptr()) }
}

/// Perpetual fallback (`polar_license_config_set_released`): true when this licensed check
/// stands only because the build was released on or before the date the key was paid through
/// (`polar_license_result_paid_through`): the key itself has expired, or its cancelled
/// subscription ended; offer the upgrade. False otherwise, and for NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_fallback(result: *const polar_license_result) -> bool {
    ffi_boundary! { read(result, |r| r.fallback) }
}

/// The end of the time the key was paid for, in unix seconds, as a check's result tells it:
/// a licensed answer's `expires_at` or cancelled subscription's end (whichever comes first),
/// or the date a perpetual fallback read from the key's record (also on an `expired` result
/// with a release date set). -1 when no end is known, and for NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_paid_through(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.paid_through) }
}

/// Whether a release dated `release_unix` (unix seconds, any time of its UTC day) is covered by
/// what this check's result says was paid for (an update's question): with a paid-through date,
/// a release on or before its day; without one, every release when the result licenses, none
/// otherwise. False for NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_covers(
    result: *const polar_license_result,
    release_unix: i64,
) -> bool {
    ffi_boundary! {
        read(result, |r| {
            let release = polar_license::perpetual::ReleaseDate::from_unix(release_unix);
            if r.paid_through >= 0 {
                release.within(r.paid_through)
            } else {
                r.outcome == polar_license_outcome::Licensed
            }
        })
    }
}

/// Trials: what this check's result tells of a trial. `POLAR_LICENSE_TRIAL_NONE` when the app
/// set no trial, for a key that is not a trial's, for results of other calls, and for NULL.
#[no_mangle]
pub extern "C" fn polar_license_result_trial(
    result: *const polar_license_result,
) -> polar_license_trial {
    ffi_boundary! {
        read(result, |r| match r.trial.map(|t| t.state) {
            None => polar_license_trial::None,
            Some(polar_license::trial::TrialState::Active) => polar_license_trial::Active,
            Some(polar_license::trial::TrialState::Ended) => polar_license_trial::Ended,
            Some(polar_license::trial::TrialState::Refused) => polar_license_trial::Refused,
        })
    }
}

/// Trials: true when the trial is the app's local one (no key), false for a key from a trial
/// product (the result then licenses with the key's license) and when there is no trial.
#[no_mangle]
pub extern "C" fn polar_license_result_trial_local(result: *const polar_license_result) -> bool {
    ffi_boundary! { read(result, |r| r.trial.is_some_and(|t| t.local)) }
}

/// Trials: the whole days the trial has left, counted up (a trial ending in 2 hours has 1);
/// 0 once it ended, when refused and when there is no trial.
#[no_mangle]
pub extern "C" fn polar_license_result_trial_days_left(result: *const polar_license_result) -> u32 {
    ffi_boundary! { read(result, |r| r.trial.map_or(0, |t| t.days_left)) }
}

/// Trials: when the trial ends (or ended), in unix seconds: the local trial's start plus its
/// days, or a trial key's subscription period end or expiry, whichever comes first. -1 when
/// not known (a refused record) and when there is no trial.
#[no_mangle]
pub extern "C" fn polar_license_result_trial_ends_at(result: *const polar_license_result) -> i64 {
    ffi_boundary! { read(result, |r| r.trial.and_then(|t| t.ends_at).unwrap_or(-1)) }
}

/// An entitlement of the result by name, for the `polar_license_result_entitlement*`
/// accessors: `None` when no values are known, `Some(None)` when the name is not granted.
type Entry<'a> = Option<Option<&'a (EntitlementValue, CString)>>;

fn entitlement_of<T: Boundary>(
    result: *const polar_license_result,
    name: *const c_char,
    f: impl FnOnce(Entry<'_>) -> T,
) -> T {
    let r = try_ref!(result);
    let name = try_str!(name);
    f(r.entitlements.as_ref().map(|values| values.get(name)))
}

/// The entitlement `name` of a licensed check (issue #68, docs/entitlements.md): a Feature
/// Flag value the seller's relay signed into the lease, read offline. Its kind says which
/// accessor reads it (`POLAR_LICENSE_ENTITLEMENT_STRING`, `_INT`, `_FLOAT`, `_BOOL`);
/// `POLAR_LICENSE_ENTITLEMENT_ABSENT` when Polar grants the key no value of that name;
/// `POLAR_LICENSE_ENTITLEMENT_UNKNOWN` when no values are known: unsigned mode (values need
/// the seller's relay, `relay serve --sign-entitlements`), a relay that did not sign them yet,
/// an answer that does not license, a result of another call than check, or a NULL or
/// non-UTF-8 argument. Set by check and check_request.
#[no_mangle]
pub extern "C" fn polar_license_result_entitlement(
    result: *const polar_license_result,
    name: *const c_char,
) -> polar_license_entitlement {
    ffi_boundary! {
        entitlement_of(result, name, |entry| match entry {
            None => polar_license_entitlement::Unknown,
            Some(None) => polar_license_entitlement::Absent,
            Some(Some((EntitlementValue::Str(_), _))) => polar_license_entitlement::String,
            Some(Some((EntitlementValue::Int(_), _))) => polar_license_entitlement::Int,
            Some(Some((EntitlementValue::Float(_), _))) => polar_license_entitlement::Float,
            Some(Some((EntitlementValue::Bool(_), _))) => polar_license_entitlement::Bool,
        })
    }
}

/// The entitlement `name` when it is a string (`POLAR_LICENSE_ENTITLEMENT_STRING`), else `""`
/// (the kind tells an empty answer apart). Never NULL; owned by the result.
#[no_mangle]
pub extern "C" fn polar_license_result_entitlement_string(
    result: *const polar_license_result,
    name: *const c_char,
) -> *const c_char {
    ffi_boundary! {
        entitlement_of(result, name, |entry| match entry {
            Some(Some((EntitlementValue::Str(_), text))) => text.as_ptr(),
            _ => c"".as_ptr(),
        })
    }
}

/// Writes the entitlement `name` to `*out` and returns true when it is an integer
/// (`POLAR_LICENSE_ENTITLEMENT_INT`); else false, `*out` untouched (also for a NULL argument).
#[no_mangle]
pub extern "C" fn polar_license_result_entitlement_int(
    result: *const polar_license_result,
    name: *const c_char,
    out: *mut i64,
) -> bool {
    ffi_boundary! {
        entitlement_of(result, name, |entry| match entry {
            Some(Some((EntitlementValue::Int(v), _))) => write_out(out, *v),
            _ => false,
        })
    }
}

/// Writes the entitlement `name` to `*out` and returns true when it is a float
/// (`POLAR_LICENSE_ENTITLEMENT_FLOAT`; an integer is not: read it with
/// `polar_license_result_entitlement_int`); else false, `*out` untouched.
#[no_mangle]
pub extern "C" fn polar_license_result_entitlement_float(
    result: *const polar_license_result,
    name: *const c_char,
    out: *mut f64,
) -> bool {
    ffi_boundary! {
        entitlement_of(result, name, |entry| match entry {
            Some(Some((EntitlementValue::Float(v), _))) => write_out(out, *v),
            _ => false,
        })
    }
}

/// Writes the entitlement `name` to `*out` and returns true when it is a boolean
/// (`POLAR_LICENSE_ENTITLEMENT_BOOL`); else false, `*out` untouched.
#[no_mangle]
pub extern "C" fn polar_license_result_entitlement_bool(
    result: *const polar_license_result,
    name: *const c_char,
    out: *mut bool,
) -> bool {
    ffi_boundary! {
        entitlement_of(result, name, |entry| match entry {
            Some(Some((EntitlementValue::Bool(v), _))) => write_out(out, *v),
            _ => false,
        })
    }
}

/// `*out = value` and true; false (nothing written) when `out` is NULL.
fn write_out<T>(out: *mut T, value: T) -> bool {
    let out = try_mut!(out);
    *out = value;
    true
}
