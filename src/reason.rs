//! The one reason table (docs/interfaces.md §1), shared by Rust, C and JS.
//!
//! [`Reason`] is the source: the C enum is generated from it by cbindgen and the JS `code`
//! strings come from [`Reason::code`]. The numbers are stable and never reused.

use std::fmt;

/// What kind of answer a [`Reason`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonClass {
    /// The server answered and said no. Never falls back to the offline cache.
    Denied,
    /// No trustworthy answer could be had (network, rate limit, server fault, grace rules).
    /// Only these may fall back to the offline cache.
    Unverified,
    /// The request or the answer is wrong in a way retrying will not fix.
    Error,
}

impl ReasonClass {
    /// The stable snake_case name: `denied`, `unverified` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonClass::Denied => "denied",
            ReasonClass::Unverified => "unverified",
            ReasonClass::Error => "error",
        }
    }
}

/// Why an answer is not plain success. Stable codes from docs/interfaces.md §1.
///
/// The discriminants are the numbers the C ABI uses; `0` is reserved for "no reason".
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 404 "Not found": unknown key, wrong organization, rotated key, unknown or deactivated activation.
    NotFound = 1,
    /// The key's status is `revoked` or `disabled`.
    Inactive = 2,
    /// The key's `expires_at` has passed.
    Expired = 3,
    /// The activation's stored conditions differ from the ones sent.
    ConditionsMismatch = 4,
    /// The key belongs to another benefit than the one given.
    BenefitMismatch = 5,
    /// The key belongs to another customer than the one given.
    CustomerMismatch = 6,
    /// `increment_usage` exceeds the usages left (the count left is carried).
    UsageExhausted = 7,
    /// Every activation slot of the key is taken.
    ActivationLimit = 8,
    /// The key has no activation slots at all (validate it instead).
    ActivationsNotSupported = 9,
    /// The server could not be reached: refused, DNS, timeout, TLS, reset.
    Offline = 10,
    /// 429: Polar's rate limit (retry-after carried when readable).
    RateLimited = 11,
    /// 5xx from the server.
    ServerError = 12,
    /// Offline, and the last good verdict is older than the grace period.
    GraceExpired = 13,
    /// The clock moved back past the tolerance since the last verdict.
    ClockRollback = 14,
    /// Malformed, truncated or oversized body; unexpected status; 401; 411; 413.
    ProtocolError = 15,
    /// Rejected locally before any request (the field is carried).
    InvalidInput = 16,
    /// The offline cache cannot be read or written.
    CacheError = 17,
    /// JS only: the package's WebAssembly could not be loaded or compiled (the asset missing
    /// after bundling, a CSP, `file://`, runtime permissions). Never produced by Rust.
    LoadError = 18,
    /// A background check's immediate answer when the cache has nothing usable: Polar is
    /// being asked right now, and the fresh answer follows (`check_in_background`). An
    /// addition to docs/interfaces.md §1 (class unverified), never a denial.
    NotYetVerified = 19,
    /// Signed mode: an online grant that is not an answer to this request (its lease carries
    /// another request's nonce), or older than what the record knows (its lease issued before
    /// the stored lease or the stored denial): a replayed answer, refused; the record keeps
    /// what it knew, and answers only if it licenses on its own. An addition to
    /// docs/interfaces.md §1 (class unverified).
    Replayed = 20,
    /// Every seat of the key is in use (issue #67: the relay's floating and CI seats); the
    /// relay says how many are in use and when the soonest frees. An addition to
    /// docs/interfaces.md §1 (class denied: the relay said no, for now).
    SeatsFull = 21,
    /// The seller's relay refuses usage at zero credits (issue #68 item 3: its
    /// `--refuse-at-zero-credits` rule; the meter's balance is carried). An addition to
    /// docs/interfaces.md §1 (class denied: the relay said no; Polar itself never refuses
    /// usage).
    CreditsExhausted = 22,
    /// A seat held through the seller's relay ended on this machine (issue #76): no renewal
    /// the relay signed arrived before its lease ended (and the grace after it), so the relay
    /// may have given it to another machine; stop what it licensed, acquire again. An addition
    /// to docs/interfaces.md §1 (class unverified, as `grace_expired`: the relay could not be
    /// heard in time, it did not say no).
    SeatLost = 23,
}

impl Reason {
    /// Every reason, in number order.
    pub const ALL: [Reason; 23] = [
        Reason::NotFound,
        Reason::Inactive,
        Reason::Expired,
        Reason::ConditionsMismatch,
        Reason::BenefitMismatch,
        Reason::CustomerMismatch,
        Reason::UsageExhausted,
        Reason::ActivationLimit,
        Reason::ActivationsNotSupported,
        Reason::Offline,
        Reason::RateLimited,
        Reason::ServerError,
        Reason::GraceExpired,
        Reason::ClockRollback,
        Reason::ProtocolError,
        Reason::InvalidInput,
        Reason::CacheError,
        Reason::LoadError,
        Reason::NotYetVerified,
        Reason::Replayed,
        Reason::SeatsFull,
        Reason::CreditsExhausted,
        Reason::SeatLost,
    ];

    /// The stable snake_case code, e.g. `not_found`.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::NotFound => "not_found",
            Reason::Inactive => "inactive",
            Reason::Expired => "expired",
            Reason::ConditionsMismatch => "conditions_mismatch",
            Reason::BenefitMismatch => "benefit_mismatch",
            Reason::CustomerMismatch => "customer_mismatch",
            Reason::UsageExhausted => "usage_exhausted",
            Reason::ActivationLimit => "activation_limit",
            Reason::ActivationsNotSupported => "activations_not_supported",
            Reason::Offline => "offline",
            Reason::RateLimited => "rate_limited",
            Reason::ServerError => "server_error",
            Reason::GraceExpired => "grace_expired",
            Reason::ClockRollback => "clock_rollback",
            Reason::ProtocolError => "protocol_error",
            Reason::InvalidInput => "invalid_input",
            Reason::CacheError => "cache_error",
            Reason::LoadError => "load_error",
            Reason::NotYetVerified => "not_yet_verified",
            Reason::Replayed => "replayed",
            Reason::SeatsFull => "seats_full",
            Reason::CreditsExhausted => "credits_exhausted",
            Reason::SeatLost => "seat_lost",
        }
    }

    /// The class of the reason.
    pub const fn class(self) -> ReasonClass {
        match self {
            Reason::NotFound
            | Reason::Inactive
            | Reason::Expired
            | Reason::ConditionsMismatch
            | Reason::BenefitMismatch
            | Reason::CustomerMismatch
            | Reason::UsageExhausted
            | Reason::ActivationLimit
            | Reason::ActivationsNotSupported
            | Reason::SeatsFull
            | Reason::CreditsExhausted => ReasonClass::Denied,
            Reason::Offline
            | Reason::RateLimited
            | Reason::ServerError
            | Reason::GraceExpired
            | Reason::ClockRollback
            | Reason::NotYetVerified
            | Reason::Replayed
            | Reason::SeatLost => ReasonClass::Unverified,
            Reason::ProtocolError
            | Reason::InvalidInput
            | Reason::CacheError
            | Reason::LoadError => ReasonClass::Error,
        }
    }

    /// The number used by the C ABI.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// Looks a reason up by its code.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The command-line exit code for this reason (docs/interfaces.md §2): 1 denied, 2 invalid
    /// input, 3 unverified or error.
    pub const fn exit_code(self) -> i32 {
        match (self, self.class()) {
            (_, ReasonClass::Denied) => 1,
            (Reason::InvalidInput, _) => 2,
            _ => 3,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_in_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.number() as usize, i + 1, "{r}");
            assert_eq!(Reason::from_code(r.code()), Some(*r));
        }
        assert_eq!(Reason::from_code("nope"), None);
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Reason::NotFound.exit_code(), 1);
        assert_eq!(Reason::ActivationLimit.exit_code(), 1);
        assert_eq!(Reason::InvalidInput.exit_code(), 2);
        assert_eq!(Reason::Offline.exit_code(), 3);
        assert_eq!(Reason::ProtocolError.exit_code(), 3);
        assert_eq!(Reason::CacheError.exit_code(), 3);
    }
}
