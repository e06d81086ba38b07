//! Perpetual fallback (issue #54 item 3): the one rule every face applies when the app states
//! its build's release date.
//!
//! A key that ended because its paid time ran out keeps licensing the builds released on or
//! before the date it was paid through; the app learns that the answer is such a fallback
//! ([`Perpetual::fallback`]) and the date ([`Perpetual::paid_through`]), so it can offer the
//! upgrade. What counts as "paid time ran out":
//!
//! * Polar's own `expired` denial ("License key has expired."), the paid-through date being the
//!   `expires_at` of the last good answer this machine's record holds, or the time of the
//!   denial when that is earlier (the seller moved the expiry earlier since); Polar's denial
//!   carries no license: with no good answer remembered there is no date, and no fallback;
//! * a cached good answer whose `expires_at` has passed while Polar cannot be asked (offline,
//!   rate limited, a server error, an answer that is not Polar's), within the grace rules of
//!   [`crate::grace`] (same binding, no clock set back or held, signed mode's lease, and the
//!   grace period counted from the last online answer);
//! * (API version 2027-01) a subscription the customer cancelled (`cancel_at_period_end`, or
//!   status `canceled`) whose `ends_at` (else `current_period_end`) has passed: Polar revokes
//!   the key at that end, so an `inactive` denial received **at or after** it is the period
//!   running out. An `inactive` denial before that end (a refund, a chargeback, a seller who
//!   revoked or disabled the key) never falls back, nor does any other denial.
//!
//! In signed mode ([`crate::lease`]) the record's license is believed only with a lease that
//! verifies, and the paid-through date never reaches past the lease's end: a record re-sealed
//! by whoever holds the install secret cannot stretch it.
//!
//! With no release date stated, nothing here runs: every answer is exactly as without it.
//! The rule is pure (the caller passes `now`).

pub use crate::release::{Perpetual, ReleaseDate};

use crate::grace::{
    CheckOutcome, CheckReport, GracePolicy, LeaseGate, LicenseData, Query, Record, Source,
};
use crate::key::Key;
use crate::reason::Reason;
use std::time::Duration;

/// The end of the time `license` was paid for: its `expires_at`, or its subscription's end
/// after a cancellation, whichever comes first; `None` when neither is known.
pub fn paid_through<L: LicenseData>(license: &L) -> Option<i64> {
    match (license.expires_at(), license.cancelled_until()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The paid-through date that a denial with `reason`, received at `at`, ends: Polar's
/// `expired`, or `inactive` at or after a cancelled subscription's end. `None` for any other
/// denial (a revoked or disabled key, a refund, a mismatch).
fn ended_by<L: LicenseData>(license: &L, reason: Reason, at: i64) -> Option<i64> {
    match reason {
        // Polar says it has expired by now: a seller who moved `expires_at` earlier since the
        // last good answer here ended it sooner than that answer said.
        Reason::Expired => paid_through(license).map(|pt| pt.min(at)),
        Reason::Inactive => license
            .cancelled_until()
            .filter(|&end| end <= at)
            .map(|end| license.expires_at().map_or(end, |e| e.min(end))),
        _ => None,
    }
}

/// Applies the rule to a check's `report` for a build released on `released`: `record` is the
/// key's record as the check read it (its slot's, bound to the key), `query` what the check asked Polar (`None` when it did
/// not ask: then the cache never falls back here), `key` the key checked, at `now`.
pub fn apply<L: LicenseData>(
    report: &mut CheckReport<L>,
    record: Option<&Record<L>>,
    query: Option<&Query>,
    key: &Key,
    released: ReleaseDate,
    now: i64,
    policy: &GracePolicy,
) {
    let mut perpetual = Perpetual {
        released,
        paid_through: None,
        fallback: false,
    };
    // Signed mode: the record's license is believed only with a lease that verifies, and only
    // as far as it reaches (the relay never signs past the license's expiry; a record re-sealed
    // by whoever holds the install secret could say any `expires_at`).
    let (record, cap) = match record.map(|r| &r.lease_gate) {
        Some(LeaseGate::Signed(Some(w))) => (record, Some(w.expires_at)),
        Some(LeaseGate::Signed(None)) => (None, None),
        _ => (record, None),
    };
    let capped = |pt: i64| cap.map_or(pt, |c| pt.min(c));
    // (The record is the key's own: a check opens only its key's slot, bound to it.)
    let good = record.and_then(|r| r.good.as_ref());
    match &report.outcome {
        CheckOutcome::Licensed { license, .. } => {
            perpetual.paid_through = paid_through(license.as_ref());
        }
        CheckOutcome::Denied(denial) => {
            if let Some(good) = good {
                perpetual.paid_through = ended_by(&good.license, denial.reason, now).map(capped);
                if perpetual.paid_through.is_some_and(|pt| released.within(pt)) {
                    perpetual.fallback = true;
                    report.outcome = CheckOutcome::Licensed {
                        source: Source::Online,
                        license: Box::new(good.license.with_key(key.expose())),
                        grace_remaining: None,
                        verified_at: now,
                    };
                }
            }
        }
        CheckOutcome::Unverified(e) => {
            let cannot_ask = matches!(
                e.reason(),
                Reason::Offline | Reason::RateLimited | Reason::ServerError | Reason::ProtocolError
            );
            if let (true, Some(record), Some(query)) = (cannot_ask, record, query) {
                if let Some((license, pt, left, verified_at)) =
                    from_cache(record, query, now, policy)
                {
                    let pt = capped(pt);
                    perpetual.paid_through = Some(pt);
                    if released.within(pt) {
                        perpetual.fallback = true;
                        report.fallback = Some(e.clone());
                        report.outcome = CheckOutcome::Licensed {
                            source: Source::Cache,
                            license: Box::new(license.with_key(key.expose())),
                            grace_remaining: Some(left),
                            verified_at,
                        };
                    }
                }
            }
        }
    }
    report.perpetual = Some(perpetual);
}

/// The cache's side of the rule while Polar cannot be asked: the record's key ended (Polar's
/// `expired` or `inactive` as [`ended_by`] reads it, remembered; or the good answer's
/// paid-through date passed on this clock), and the grace rules still hold: the same
/// binding, no clock set back or held, signed mode's lease, and the grace period counted from
/// the last online answer (the denial, or the good answer). The license remembered, the
/// paid-through date, the grace left and the time of that online answer.
fn from_cache<'a, L: LicenseData>(
    record: &'a Record<L>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
) -> Option<(&'a L, i64, Duration, i64)> {
    let good = record.good.as_ref()?;
    if !Record::binds(good, query)
        || record.rollback(now, policy).is_some()
        || record.is_stalled(now)
    {
        return None;
    }
    let (pt, since) = match &record.denied {
        Some(denial) => (
            ended_by(&good.license, denial.reason, denial.at)?,
            denial.at,
        ),
        None => (
            paid_through(&good.license).filter(|&pt| pt <= now)?,
            good.verified_at,
        ),
    };
    let seen = record.seen(now);
    let left = record.grace_left(since, seen, policy)?;
    Some((&good.license, pt, left, since))
}

/// What a check's report says of the release dates the key covers (here, beside the rule that
/// fills [`CheckReport::perpetual`]: the report's module knows nothing of this one).
impl<L> CheckReport<L> {
    /// The end of the time the key was paid for (unix seconds), as far as this answer tells:
    /// a licensed answer's license ([`paid_through`]), or the date a
    /// perpetual fallback read from the key's record. `None` when no end is known.
    pub fn paid_through(&self) -> Option<i64>
    where
        L: LicenseData,
    {
        match (&self.outcome, &self.perpetual) {
            (_, Some(p)) if p.fallback || p.paid_through.is_some() => p.paid_through,
            (CheckOutcome::Licensed { license, .. }, _) => paid_through(license.as_ref()),
            _ => None,
        }
    }

    /// Whether a release dated `release` is covered by what this answer says was paid for (an
    /// update's question): a licensed answer covers every release when no end is known, else
    /// those on or before [`CheckReport::paid_through`]; an answer that does not license
    /// covers only what an expiry it read leaves covered (a build newer than the paid time:
    /// older releases), and nothing otherwise.
    pub fn covers(&self, release: ReleaseDate) -> bool
    where
        L: LicenseData,
    {
        match self.paid_through() {
            Some(pt) => release.within(pt),
            None => self.outcome.is_licensed(),
        }
    }
}
