//! What a key's cache says of it with no request: the answer to `status` ([`CacheStatus`],
//! [`CacheState`], [`Standing`]), read from a slot as the machines open it.

use crate::cache::Untrusted;
use crate::grace::{GracePolicy, LicenseData, Record, StoredActivation};
use crate::model::ValidatedLicenseKey;
use crate::slot::Opened;
use std::time::Duration;

/// What the cache holds for a key, read without any request.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState<L = ValidatedLicenseKey> {
    /// Nothing stored.
    Empty,
    /// Something is stored but cannot be trusted (edited, copied from another install or
    /// machine, put back after a newer record, another format version); it is treated as no
    /// cache.
    Untrusted(Untrusted),
    /// A trusted record.
    Present(Box<Record<L>>),
}

/// What the cache says about a key: the answer to `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStatus<L = ValidatedLicenseKey> {
    /// What is stored.
    pub state: CacheState<L>,
    /// The clock reading used.
    pub now: i64,
    /// How long the cache could still license if Polar were unreachable now.
    pub grace_remaining: Option<Duration>,
    /// How far the clock moved back past the tolerance, if it did.
    pub clock_rollback: Option<u64>,
    /// The activation the next check validates: the trusted record's, or the one an untrusted
    /// record still names (an activation id is no secret: Polar checks it with the key and
    /// this machine's conditions, so it is recovered instead of taking a new slot).
    pub activation: Option<StoredActivation>,
    /// What the cache says of the key now, in one word, the same on every face.
    pub standing: Standing,
}

/// What a key's cache says of it now: what `check` would start from. A denial any command saw
/// is the standing from that moment, whatever good verdict came before it (which the status
/// still shows as history: when it was verified, and the grace it no longer gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standing {
    /// Nothing stored that can be trusted: `check` asks Polar.
    None,
    /// Polar's last answer about the key was a denial: no cached grant, `check` asks Polar.
    Denied,
    /// A check would license from the cache now (a fresh verdict, or one within the grace).
    Licensed,
    /// A good verdict is stored but can no longer license from the cache (the grace is over,
    /// the license expired, the clock moved back or stands still): `check` must ask Polar.
    Lapsed,
}

impl Standing {
    /// `none`, `denied`, `licensed` or `lapsed`: the code every face prints.
    pub const fn as_str(self) -> &'static str {
        match self {
            Standing::None => "none",
            Standing::Denied => "denied",
            Standing::Licensed => "licensed",
            Standing::Lapsed => "lapsed",
        }
    }
}

/// What `status` reports for an opened slot at `now`.
pub fn status<L: LicenseData>(
    opened: Opened<L>,
    stored: bool,
    now: i64,
    policy: &GracePolicy,
) -> CacheStatus<L> {
    let state = match (opened.record, opened.untrusted) {
        (Some(record), _) => CacheState::Present(Box::new(record)),
        (None, Some(why)) => CacheState::Untrusted(why),
        (None, None) if stored => CacheState::Untrusted(Untrusted::Malformed),
        (None, None) => CacheState::Empty,
    };
    let (grace_remaining, clock_rollback) = match &state {
        CacheState::Present(r) => (r.grace_remaining(now, policy), r.rollback(now, policy)),
        _ => (None, None),
    };
    let standing = match &state {
        CacheState::Present(r) if r.denied.is_some() => Standing::Denied,
        CacheState::Present(_) if grace_remaining.is_some() => Standing::Licensed,
        CacheState::Present(r) if r.good.is_some() => Standing::Lapsed,
        _ => Standing::None,
    };
    CacheStatus {
        state,
        now,
        grace_remaining,
        clock_rollback,
        activation: opened.remembered,
        standing,
    }
}
