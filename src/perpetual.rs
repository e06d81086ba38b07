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

use crate::error::Error;
use crate::grace::{
    CheckOutcome, CheckReport, GracePolicy, LeaseGate, LicenseData, Query, Record, Source,
};
use crate::key::Key;
use crate::reason::Reason;
use std::time::Duration;

/// A build's release date: a UTC calendar day, kept as the unix seconds of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseDate(i64);

impl ReleaseDate {
    /// The day `year-month-day` (UTC); `invalid_input` (field `released`) when it is no date.
    pub fn from_ymd(year: i64, month: i64, day: i64) -> Result<ReleaseDate, Error> {
        let valid = (1970..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= crate::rfc3339::days_in_month(year, month);
        if !valid {
            return Err(Error::invalid("released", "must be a date YYYY-MM-DD"));
        }
        Ok(ReleaseDate(
            crate::rfc3339::days_from_civil(year, month, day).saturating_mul(86_400),
        ))
    }

    /// Reads `YYYY-MM-DD` (a whole RFC 3339 time is read as its UTC day too).
    pub fn parse(text: &str) -> Result<ReleaseDate, Error> {
        let bad = || Error::invalid("released", "must be a date YYYY-MM-DD");
        if text.len() > 10 {
            let at = crate::rfc3339::DateTime::parse(text).ok_or_else(bad)?;
            return Ok(ReleaseDate::from_unix(at.unix_timestamp()));
        }
        let b = text.as_bytes();
        let number = |from: usize, n: usize| -> Result<i64, Error> {
            let part = b.get(from..from + n).ok_or_else(bad)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        ReleaseDate::from_ymd(number(0, 4)?, number(5, 2)?, number(8, 2)?)
    }

    /// The UTC day of the unix time `secs`.
    pub fn from_unix(secs: i64) -> ReleaseDate {
        ReleaseDate(secs.div_euclid(86_400).saturating_mul(86_400))
    }

    /// The start of the day, in unix seconds (UTC).
    pub fn unix(self) -> i64 {
        self.0
    }

    /// `true` when a key paid through `paid_through` (unix seconds) covers this release: the
    /// release's day is on or before that time's day.
    pub fn within(self, paid_through: i64) -> bool {
        self.0 <= paid_through
    }
}

impl std::fmt::Display for ReleaseDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        crate::rfc3339::DateTime::from_unix(self.0).write(&mut text);
        f.write_str(text.get(..10).unwrap_or(&text))
    }
}

/// What a check says about the release dates the key covers, when the app stated its build's
/// ([`CheckReport::perpetual`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perpetual {
    /// The build's release date the app stated.
    pub released: ReleaseDate,
    /// The end of the time the key was paid for (unix seconds): its `expires_at`, or a
    /// cancelled subscription's end, whichever comes first. `None` when no end is known (a key
    /// that does not expire; a renewing subscription; a denial that is not an expiry).
    pub paid_through: Option<i64>,
    /// `true` when the answer licenses only because this build was released on or before
    /// `paid_through`: the key itself has expired (offer the upgrade).
    pub fallback: bool,
}

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
