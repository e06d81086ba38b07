//! The C enums: call status, reason, outcome, source, server, cache state and feature why.
//!
//! Every enum is `#[repr(u32)]` with explicit numbers; a number, once published, is never
//! reused for something else. Functions that take one of these from C take a plain `u32` and
//! check it, since C may pass any number.

use polar_license::features::FeatureWhy;
use polar_license::reason::Reason;
use std::ffi::c_char;

/// Whether an API call itself could be carried out. A license answer (even "denied" or
/// "offline") is `POLAR_LICENSE_STATUS_OK` with a result object that says so.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_status {
    /// The call succeeded; its out-pointer was written.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was refused (an unknown enum number, a bad configuration value); the
    /// handle's last error says which and why.
    InvalidInput = 3,
    /// A bug: Rust code panicked, and the panic was stopped at the C boundary.
    Panic = 4,
    /// The offline cache could not be opened (for example no platform data directory).
    CacheError = 5,
}

/// Why an answer is not plain success: the numbers of docs/interfaces.md §1 and of Rust's
/// `polar_license::Reason`, with `0` for "no reason".
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_reason {
    /// No reason: the answer is a success.
    None = 0,
    /// `not_found`: unknown key, wrong organization, unknown or deactivated activation.
    NotFound = 1,
    /// `inactive`: the key is revoked or disabled.
    Inactive = 2,
    /// `expired`: the key's expiry has passed.
    Expired = 3,
    /// `conditions_mismatch`: the activation's conditions differ from the ones sent.
    ConditionsMismatch = 4,
    /// `benefit_mismatch`: the key belongs to another benefit.
    BenefitMismatch = 5,
    /// `customer_mismatch`: the key belongs to another customer.
    CustomerMismatch = 6,
    /// `usage_exhausted`: the usage increment exceeds the usages left.
    UsageExhausted = 7,
    /// `activation_limit`: every activation slot is taken.
    ActivationLimit = 8,
    /// `activations_not_supported`: the key has no activation slots (validate it instead).
    ActivationsNotSupported = 9,
    /// `offline`: the server could not be reached.
    Offline = 10,
    /// `rate_limited`: HTTP 429.
    RateLimited = 11,
    /// `server_error`: HTTP 5xx.
    ServerError = 12,
    /// `grace_expired`: offline and the last good verdict is older than the grace period.
    GraceExpired = 13,
    /// `clock_rollback`: the clock moved back past the tolerance.
    ClockRollback = 14,
    /// `protocol_error`: a malformed, truncated or unexpected answer.
    ProtocolError = 15,
    /// `invalid_input`: rejected locally before any request.
    InvalidInput = 16,
    /// `cache_error`: the offline cache cannot be read or written.
    CacheError = 17,
    /// `load_error`: JS only (the npm package's WebAssembly could not be loaded); never
    /// returned by this library, listed so the numbers stay one table.
    LoadError = 18,
    /// `not_yet_verified`: `polar_license_client_check_in_background`'s immediate answer when
    /// the cache has nothing usable; the fresh answer follows through the callback.
    NotYetVerified = 19,
    /// `replayed`: signed mode refused a grant that is not this request's answer (another
    /// request's nonce) or is older than the stored lease or denial; the record is kept.
    Replayed = 20,
    /// `seats_full`: every seat of the key is in use (the relay's floating and CI seats).
    SeatsFull = 21,
    /// `credits_exhausted`: the seller's relay refuses usage at zero credits.
    CreditsExhausted = 22,
    /// `seat_lost`: a seat's signed lease ended (and the grace after it) with no renewal from
    /// the relay (out of reach): the seat is no longer held; stop what it licensed.
    SeatLost = 23,
}

impl From<Reason> for polar_license_reason {
    fn from(r: Reason) -> Self {
        use polar_license_reason as C;
        match r {
            Reason::NotFound => C::NotFound,
            Reason::Inactive => C::Inactive,
            Reason::Expired => C::Expired,
            Reason::ConditionsMismatch => C::ConditionsMismatch,
            Reason::BenefitMismatch => C::BenefitMismatch,
            Reason::CustomerMismatch => C::CustomerMismatch,
            Reason::UsageExhausted => C::UsageExhausted,
            Reason::ActivationLimit => C::ActivationLimit,
            Reason::ActivationsNotSupported => C::ActivationsNotSupported,
            Reason::Offline => C::Offline,
            Reason::RateLimited => C::RateLimited,
            Reason::ServerError => C::ServerError,
            Reason::GraceExpired => C::GraceExpired,
            Reason::ClockRollback => C::ClockRollback,
            Reason::ProtocolError => C::ProtocolError,
            Reason::InvalidInput => C::InvalidInput,
            Reason::CacheError => C::CacheError,
            Reason::LoadError => C::LoadError,
            Reason::NotYetVerified => C::NotYetVerified,
            Reason::Replayed => C::Replayed,
            Reason::SeatsFull => C::SeatsFull,
            Reason::CreditsExhausted => C::CreditsExhausted,
            Reason::SeatLost => C::SeatLost,
        }
    }
}

/// What an answer amounts to (the command line's `outcome`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_outcome {
    /// The license is good (validate, check).
    Licensed = 1,
    /// The server said no; the reason says why.
    Denied = 2,
    /// No trustworthy answer (offline, rate limited, server error, grace expired, clock
    /// rollback). Not a denial: the app may ask again later.
    Unverified = 3,
    /// An error retrying will not fix (protocol error, invalid input, cache error).
    Error = 4,
    /// Activate, deactivate or status succeeded.
    Done = 5,
}

impl polar_license_outcome {
    /// The outcome for a reason that is not success.
    pub(crate) fn of(reason: Reason) -> Self {
        match reason.class() {
            polar_license::ReasonClass::Denied => polar_license_outcome::Denied,
            polar_license::ReasonClass::Unverified => polar_license_outcome::Unverified,
            polar_license::ReasonClass::Error => polar_license_outcome::Error,
        }
    }
}

/// Where an answer came from.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_source {
    /// Not applicable (no verdict was given: an error, or activate/deactivate/status).
    None = 0,
    /// The server answered just now.
    Online = 1,
    /// The offline cache answered (fresh, or within the grace period while offline).
    Cache = 2,
}

/// Where a relay took Polar's verdict from (its `polar-license-source` header), for a check
/// answered online through the seller's relay.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_relay_source {
    /// No relay said (no relay, a cached answer, or not a check).
    None = 0,
    /// The relay asked Polar just now.
    Polar = 1,
    /// The relay replayed Polar's answer from its store (within its `--fresh-for`).
    Store = 2,
    /// The relay replayed a stored grant while Polar could not be asked (within its
    /// `--stale-for`).
    Stale = 3,
}

/// Why a key stopped (`polar_license_result_stopped`, issue #68): the relay's detail of a
/// denial, from Polar's lifecycle webhooks. An addition beside the reason, which stays what
/// Polar's answer gives; in signed mode only the relay's signed detail is read.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_stopped {
    /// No detail: not a denial, no relay, or none it could tell.
    None = 0,
    /// The subscription is paused (`polar_license_result_stopped_until`: when it resumes).
    Paused = 1,
    /// The subscription was canceled and has ended.
    Canceled = 2,
    /// The team's admin removed this member's seat.
    SeatRevoked = 3,
    /// The order was refunded and its benefits revoked.
    Refunded = 4,
    /// This key string was replaced by a new one (the customer portal shows it).
    Rotated = 5,
    /// A payment failed and the grace period ended.
    PastDue = 6,
}

/// The kind of an entitlement's value (`polar_license_result_entitlement`, issue #68,
/// docs/entitlements.md): a Feature Flag value the seller's relay signed into the lease of a
/// licensed answer, typed as Polar's metadata values, or why there is none.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_entitlement {
    /// No values are known: unsigned mode (values need the seller's relay), a relay without
    /// `--sign-entitlements` or that had not read them yet, an answer that does not license,
    /// or a NULL argument.
    Unknown = 0,
    /// Values are known and Polar grants the key no value of this name.
    Absent = 1,
    /// A string (`polar_license_result_entitlement_string`).
    String = 2,
    /// An integer (`polar_license_result_entitlement_int`).
    Int = 3,
    /// A float (`polar_license_result_entitlement_float`).
    Float = 4,
    /// A boolean (`polar_license_result_entitlement_bool`).
    Bool = 5,
}

impl From<Option<polar_license::stopped::StopKind>> for polar_license_stopped {
    fn from(k: Option<polar_license::stopped::StopKind>) -> Self {
        use polar_license::stopped::StopKind as K;
        match k {
            None => polar_license_stopped::None,
            Some(K::Paused) => polar_license_stopped::Paused,
            Some(K::Canceled) => polar_license_stopped::Canceled,
            Some(K::SeatRevoked) => polar_license_stopped::SeatRevoked,
            Some(K::Refunded) => polar_license_stopped::Refunded,
            Some(K::Rotated) => polar_license_stopped::Rotated,
            Some(K::PastDue) => polar_license_stopped::PastDue,
        }
    }
}

/// Trials (`polar_license_result_trial`): where the trial a check tells of stands.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_trial {
    /// No trial: none set, a key that is not a trial's, or not a check.
    None = 0,
    /// The trial runs: the app may be used until `polar_license_result_trial_ends_at`.
    Active = 1,
    /// Its time is over: ask for a key.
    Ended = 2,
    /// The local trial's record was edited or copied from another install or machine, or the
    /// clock was set back during it (`POLAR_LICENSE_REASON_CLOCK_ROLLBACK`): no trial runs.
    Refused = 3,
}

/// Which Polar to talk to.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_server {
    /// `https://api.polar.sh` (the default).
    Production = 1,
    /// `https://sandbox-api.polar.sh` (separate data).
    Sandbox = 2,
}

/// Which certificates Polar's TLS certificate is checked against
/// (`polar_license_config_set_tls_roots`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_tls_roots {
    /// The operating system's trust store (the default): a company's TLS-inspecting proxy
    /// whose CA the company installed works.
    System = 1,
    /// Only the roots compiled into the library: a CA installed on the machine is not
    /// trusted (behind a TLS-inspecting proxy Polar is then unreachable).
    Bundled = 2,
}

/// What the offline cache holds for a key (`polar_license_client_status`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_cache_state {
    /// Not a status result.
    None = 0,
    /// Nothing is stored for the key.
    Empty = 1,
    /// Something is stored but cannot be trusted (edited, copied from another machine or
    /// install, another format version): it is treated as no cache.
    Untrusted = 2,
    /// A trusted record is stored.
    Present = 3,
}

/// Why a feature is, or is not, granted (`polar_license_feature_access_why`). Only
/// `POLAR_LICENSE_FEATURE_WHY_GRANTED` goes with a granted feature.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_feature_why {
    /// No answer (a NULL access).
    None = 0,
    /// `granted`: the key's benefit grants the feature (and, if it is metered, usages are
    /// left).
    Granted = 1,
    /// `license_not_valid`: the verdict does not license (denied, unverified, error); the
    /// access's license reason says why.
    LicenseNotValid = 2,
    /// `not_granted_by_benefit`: the key's benefit is not one that grants the feature.
    NotGrantedByBenefit = 3,
    /// `unknown_feature`: the feature is not in the client's entitlement map.
    UnknownFeature = 4,
    /// `usage_exhausted`: a metered feature, and the key has no usages left.
    UsageExhausted = 5,
}

impl From<FeatureWhy> for polar_license_feature_why {
    fn from(why: FeatureWhy) -> Self {
        use polar_license_feature_why as C;
        match why {
            FeatureWhy::Granted => C::Granted,
            FeatureWhy::LicenseNotValid => C::LicenseNotValid,
            FeatureWhy::NotGrantedByBenefit => C::NotGrantedByBenefit,
            FeatureWhy::UnknownFeature => C::UnknownFeature,
            FeatureWhy::UsageExhausted => C::UsageExhausted,
        }
    }
}

/// The stable snake_case code of a feature why (`"granted"`, `"license_not_valid"`,
/// `"not_granted_by_benefit"`, `"unknown_feature"`, `"usage_exhausted"`: the codes of the Rust
/// API, the command line and JS), or `""` for `POLAR_LICENSE_FEATURE_WHY_NONE` and unknown
/// numbers. A static string: never free it.
#[no_mangle]
pub extern "C" fn polar_license_feature_why_code(why: u32) -> *const c_char {
    ffi_boundary! {
        use polar_license_feature_why as W;
        let code = match why {
            n if n == W::Granted as u32 => c"granted",
            n if n == W::LicenseNotValid as u32 => c"license_not_valid",
            n if n == W::NotGrantedByBenefit as u32 => c"not_granted_by_benefit",
            n if n == W::UnknownFeature as u32 => c"unknown_feature",
            n if n == W::UsageExhausted as u32 => c"usage_exhausted",
            _ => c"",
        };
        code.as_ptr()
    }
}

/// The stable snake_case code of a reason (`"not_found"`, …), or `""` for
/// `POLAR_LICENSE_REASON_NONE` and unknown numbers. A static string: never free it.
#[no_mangle]
pub extern "C" fn polar_license_reason_code(reason: u32) -> *const c_char {
    ffi_boundary! { reason_said(reason, 2) }
}

/// The core's one sentence for a reason (`Reason::user_message`), or `""` for `POLAR_LICENSE_REASON_NONE` and unknown numbers: an app's own table
/// of reasons reads its words here rather than keeping a copy. A static string: never free it.
#[no_mangle]
pub extern "C" fn polar_license_reason_user_message(reason: u32) -> *const c_char {
    ffi_boundary! { reason_said(reason, 0) }
}

/// The core's one next step for a reason (`Reason::next_step`), or `""` for `POLAR_LICENSE_REASON_NONE` and unknown numbers. A static string:
/// never free it.
#[no_mangle]
pub extern "C" fn polar_license_reason_next_step(reason: u32) -> *const c_char {
    ffi_boundary! { reason_said(reason, 1) }
}

/// The core's words for reason number `reason` as C strings, made once from the core's table
/// (no copy of it here): `which` 0 the sentence, 1 the next step, 2 the code.
fn reason_said(reason: u32, which: usize) -> *const c_char {
    use std::ffi::CString;
    use std::sync::OnceLock;
    static SAID: OnceLock<Vec<[CString; 3]>> = OnceLock::new();
    let said = SAID.get_or_init(|| {
        Reason::ALL
            .iter()
            .map(|r| {
                [
                    crate::strings::to_cstring(r.user_message()),
                    crate::strings::to_cstring(r.next_step()),
                    crate::strings::to_cstring(r.code()),
                ]
            })
            .collect()
    });
    let at = Reason::ALL.iter().position(|r| r.number() == reason);
    match at
        .and_then(|i| said.get(i))
        .and_then(|pair| pair.get(which))
    {
        Some(text) => text.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// The word for an outcome: `"licensed"`, `"denied"`, `"unverified"`, `"error"` or `"done"`
/// (`""` for an unknown number). A static string: never free it.
#[no_mangle]
pub extern "C" fn polar_license_outcome_name(outcome: u32) -> *const c_char {
    ffi_boundary! {
        use polar_license_outcome as O;
        let name = match outcome {
            n if n == O::Licensed as u32 => c"licensed",
            n if n == O::Denied as u32 => c"denied",
            n if n == O::Unverified as u32 => c"unverified",
            n if n == O::Error as u32 => c"error",
            n if n == O::Done as u32 => c"done",
            _ => c"",
        };
        name.as_ptr()
    }
}

/// A short English description of a call status (`"ok"`, `"a required pointer argument was
/// NULL"`, …). A static string: never free it.
#[no_mangle]
pub extern "C" fn polar_license_status_message(status: u32) -> *const c_char {
    ffi_boundary! {
        use polar_license_status as S;
        let text = match status {
            n if n == S::Ok as u32 => c"ok",
            n if n == S::NullArgument as u32 => c"a required pointer argument was NULL",
            n if n == S::InvalidUtf8 as u32 => c"a string argument was not valid UTF-8",
            n if n == S::InvalidInput as u32 => c"an argument was refused",
            n if n == S::Panic as u32 => c"internal error: a Rust panic was caught",
            n if n == S::CacheError as u32 => c"the offline cache could not be opened",
            _ => c"unknown status",
        };
        text.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// The C enum and Rust's `Reason` agree on every number and code (docs/interfaces.md §1).
    #[test]
    fn c_reasons_match_the_rust_table() {
        assert_eq!(polar_license_reason::None as u32, 0);
        for r in Reason::ALL {
            let c = polar_license_reason::from(r);
            assert_eq!(c as u32, r.number(), "{r}");
            // SAFETY: the function returns a static NUL-terminated string.
            let code = unsafe { CStr::from_ptr(polar_license_reason_code(r.number())) };
            assert_eq!(code.to_str().ok(), Some(r.code()));
            // The C name is POLAR_LICENSE_REASON_ + the code in capitals.
            assert_eq!(
                format!("{c:?}").to_ascii_lowercase(),
                r.code().replace('_', ""),
            );
        }
        // The words are the core's, each reason's (a copy kept here would fail this).
        for r in Reason::ALL {
            // SAFETY: the functions return static NUL-terminated strings.
            let (said, step) = unsafe {
                (
                    CStr::from_ptr(polar_license_reason_user_message(r.number())),
                    CStr::from_ptr(polar_license_reason_next_step(r.number())),
                )
            };
            assert_eq!(said.to_str().ok(), Some(r.user_message()), "{r}");
            assert_eq!(step.to_str().ok(), Some(r.next_step()), "{r}");
        }
        // SAFETY: as above.
        let unsaid = unsafe { CStr::from_ptr(polar_license_reason_user_message(0)) };
        assert_eq!(unsaid.to_bytes(), b"");
        // SAFETY: as above.
        let none = unsafe { CStr::from_ptr(polar_license_reason_code(0)) };
        assert_eq!(none.to_bytes(), b"");
        // SAFETY: as above.
        let unknown =
            unsafe { CStr::from_ptr(polar_license_reason_code(Reason::ALL.len() as u32 + 1)) };
        assert_eq!(unknown.to_bytes(), b"");
    }

    /// The C feature whys carry the Rust codes.
    #[test]
    fn c_feature_whys_match_the_rust_codes() {
        for why in [
            FeatureWhy::Granted,
            FeatureWhy::LicenseNotValid,
            FeatureWhy::NotGrantedByBenefit,
            FeatureWhy::UnknownFeature,
            FeatureWhy::UsageExhausted,
        ] {
            let c = polar_license_feature_why::from(why);
            // SAFETY: the function returns a static NUL-terminated string.
            let code = unsafe { CStr::from_ptr(polar_license_feature_why_code(c as u32)) };
            assert_eq!(code.to_str().ok(), Some(why.code()));
            assert_eq!(
                format!("{c:?}").to_ascii_lowercase(),
                why.code().replace('_', ""),
            );
        }
        for n in [polar_license_feature_why::None as u32, 6, u32::MAX] {
            // SAFETY: as above.
            let code = unsafe { CStr::from_ptr(polar_license_feature_why_code(n)) };
            assert_eq!(code.to_bytes(), b"");
        }
    }
}
