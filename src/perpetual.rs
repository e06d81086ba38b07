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

use crate::grace::{CheckOutcome, CheckReport, GracePolicy, LicenseData, Query, Record, Source};
use crate::key::Key;
use crate::lease::{SignedDenial, SignedFacts};
use crate::reason::Reason;
use std::time::Duration;

/// What the rule may stand on when it widens a verdict (issue #62).
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// No relay keys: the server's answers as they came (nothing is signed).
    Unsigned,
    /// Signed mode: only what the relay signed. The dates come from the record's verified
    /// lease ([`SignedFacts`]), and a denial widens only with the relay's signed denial for
    /// this check's request (`Some`; [`SignedDenial`]). Both types are made only by the lease
    /// verifier ([`crate::lease`]), so no unsigned field can reach the signed rule.
    Signed(Option<&'a SignedDenial>),
}

/// Why a signed-mode check fell back on nothing where an unsigned one would have looked: the
/// denial came without the relay's signature for this request.
const UNSIGNED_DENIAL: &str = "signed mode: the denial came without the relay's signed denial \
     for this request (a relay older than signed denials, or not the seller's relay): no \
     fallback on it; update the relay";

/// Why a signed-mode check fell back on nothing: no lease that verifies in the record, so no
/// signed paid-through date.
const NO_SIGNED_FACTS: &str = "signed mode: the cache holds no lease that verifies, so no \
     signed paid-through date: no fallback";

/// The two facts the rule reads: the license's expiry and a cancelled subscription's end.
/// Unsigned mode reads them from the license as the server sent it ([`Sent`]); signed mode
/// only from [`SignedFacts`].
trait Ends {
    fn expires_at(&self) -> Option<i64>;
    fn cancelled_until(&self) -> Option<i64>;
}

/// A license's facts as the server sent them (unsigned mode only).
struct Sent<'a, L>(&'a L);

impl<L: LicenseData> Ends for Sent<'_, L> {
    fn expires_at(&self) -> Option<i64> {
        self.0.expires_at()
    }
    fn cancelled_until(&self) -> Option<i64> {
        self.0.cancelled_until()
    }
}

impl Ends for SignedFacts {
    fn expires_at(&self) -> Option<i64> {
        self.license_expires_at()
    }
    fn cancelled_until(&self) -> Option<i64> {
        SignedFacts::cancelled_until(self)
    }
}

/// The end of the time `license` was paid for: its `expires_at`, or its subscription's end
/// after a cancellation, whichever comes first; `None` when neither is known.
pub fn paid_through<L: LicenseData>(license: &L) -> Option<i64> {
    ends(&Sent(license))
}

fn ends<E: Ends>(facts: &E) -> Option<i64> {
    match (facts.expires_at(), facts.cancelled_until()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The paid-through date that a denial with `reason`, received at `at`, ends: Polar's
/// `expired`, or `inactive` at or after a cancelled subscription's end. `None` for any other
/// denial (a revoked or disabled key, a refund, a mismatch).
fn ended_by<E: Ends>(facts: &E, reason: Reason, at: i64) -> Option<i64> {
    match reason {
        // Polar says it has expired by now: a seller who moved `expires_at` earlier since the
        // last good answer here ended it sooner than that answer said.
        Reason::Expired => ends(facts).map(|pt| pt.min(at)),
        Reason::Inactive => facts
            .cancelled_until()
            .filter(|&end| end <= at)
            .map(|end| facts.expires_at().map_or(end, |e| e.min(end))),
        _ => None,
    }
}

/// Applies the rule to a check's `report` for a build released on `released`: `record` is the
/// key's record as the check read it (its slot's, bound to the key), `query` what the check
/// asked Polar (`None` when it did not ask: then the cache never falls back here), `key` the
/// key checked, at `now`; `trust` says what it may stand on (signed mode: only signed facts).
#[allow(clippy::too_many_arguments)]
pub fn apply<L: LicenseData>(
    report: &mut CheckReport<L>,
    record: Option<&Record<L>>,
    query: Option<&Query>,
    key: &Key,
    released: ReleaseDate,
    now: i64,
    policy: &GracePolicy,
    trust: Trust<'_>,
) {
    let checked = Checked {
        record,
        query,
        key,
        released,
        now,
        policy,
    };
    let perpetual = match trust {
        Trust::Unsigned => checked.unsigned(report),
        Trust::Signed(denial) => checked.signed(report, denial),
    };
    report.perpetual = Some(perpetual);
}

/// What [`apply`] is given besides the report: the key's record, the check's question, the
/// key, the release date, the clock and the grace policy.
struct Checked<'a, L> {
    record: Option<&'a Record<L>>,
    query: Option<&'a Query>,
    key: &'a Key,
    released: ReleaseDate,
    now: i64,
    policy: &'a GracePolicy,
}

impl<L: LicenseData> Checked<'_, L> {
    /// The rule without relay keys: the server's answers as they came.
    fn unsigned(&self, report: &mut CheckReport<L>) -> Perpetual {
        let mut perpetual = Perpetual::none(self.released);
        // (The record is the key's own: a check opens only its key's slot, bound to it.)
        let good = self.record.and_then(|r| r.good.as_ref());
        match &report.outcome {
            CheckOutcome::Licensed { license, .. } => {
                perpetual.paid_through = paid_through(license.as_ref());
            }
            CheckOutcome::Denied(denial) => {
                if let Some(good) = good {
                    let pt = ended_by(&Sent(&good.license), denial.reason, self.now);
                    self.fall_back_online(report, &mut perpetual, pt, &good.license);
                }
            }
            CheckOutcome::Unverified(e) => {
                let e = e.clone();
                if let Some((record, query)) = self.cache_to_ask(&e) {
                    if let Some(found) = from_cache(record, query, self.now, self.policy) {
                        self.fall_back_on_cache(report, &mut perpetual, found, e);
                    }
                }
            }
        }
        perpetual
    }

    /// The rule in signed mode: every date from the record's verified lease ([`SignedFacts`]),
    /// a denial only with the relay's [`SignedDenial`] (for this request online; stored with
    /// the record, verified on reading, offline), nothing from the license as the server sent
    /// it.
    fn signed(&self, report: &mut CheckReport<L>, denial: Option<&SignedDenial>) -> Perpetual {
        let mut perpetual = Perpetual::none(self.released);
        // The record's lease, verified on reading (signature, organization, key, activation,
        // benefit, machine): its facts were signed as of its issue, whatever the time now.
        let facts = self
            .record
            .and_then(|r| r.lease_gate.window())
            .map(|w| &w.facts);
        let good = self.record.and_then(|r| r.good.as_ref());
        match &report.outcome {
            CheckOutcome::Licensed { .. } => {
                perpetual.paid_through = report.lease.as_ref().and_then(|w| ends(&w.facts));
            }
            CheckOutcome::Denied(d) => {
                if !matches!(d.reason, Reason::Expired | Reason::Inactive) {
                    return perpetual;
                }
                match (denial.filter(|s| s.reason() == d.reason), facts, good) {
                    (Some(signed), Some(facts), Some(good)) => {
                        let pt = ended_by(facts, signed.reason(), signed.at());
                        self.fall_back_online(report, &mut perpetual, pt, &good.license);
                    }
                    (None, _, Some(_)) => perpetual.refused = Some(UNSIGNED_DENIAL),
                    (Some(_), None, Some(_)) => perpetual.refused = Some(NO_SIGNED_FACTS),
                    _ => {}
                }
            }
            CheckOutcome::Unverified(e) => {
                let e = e.clone();
                if let Some((record, query)) = self.cache_to_ask(&e) {
                    match from_cache_signed(record, query, self.now, self.policy) {
                        Ok(found) => self.fall_back_on_cache(report, &mut perpetual, found, e),
                        Err(why) => perpetual.refused = why,
                    }
                }
            }
        }
        perpetual
    }

    /// An online denial that ended the key paid through `pt`: the remembered `license`
    /// licenses again when the release is within it.
    fn fall_back_online(
        &self,
        report: &mut CheckReport<L>,
        perpetual: &mut Perpetual,
        pt: Option<i64>,
        license: &L,
    ) {
        perpetual.paid_through = pt;
        if pt.is_some_and(|pt| self.released.within(pt)) {
            perpetual.fallback = true;
            report.outcome = fallen_back(license, self.key, self.now);
        }
    }

    /// The record and the question, when Polar could not be asked (`e`): then the cache may
    /// fall back on the record.
    fn cache_to_ask(&self, e: &crate::error::Error) -> Option<(&Record<L>, &Query)> {
        if !cannot_ask(e) {
            return None;
        }
        Some((self.record?, self.query?))
    }

    /// What the cache found (`Found`) licenses again, the error `e` kept as the report's
    /// fallback, when the release is within its paid-through date.
    fn fall_back_on_cache(
        &self,
        report: &mut CheckReport<L>,
        perpetual: &mut Perpetual,
        (license, pt, left, verified_at): Found<'_, L>,
        e: crate::error::Error,
    ) {
        perpetual.paid_through = Some(pt);
        if self.released.within(pt) {
            perpetual.fallback = true;
            report.fallback = Some(e);
            report.outcome = CheckOutcome::Licensed {
                source: Source::Cache,
                license: Box::new(license.with_key(self.key.expose())),
                grace_remaining: Some(left),
                verified_at,
            };
        }
    }
}

fn cannot_ask(e: &crate::error::Error) -> bool {
    matches!(
        e.reason(),
        Reason::Offline | Reason::RateLimited | Reason::ServerError | Reason::ProtocolError
    )
}

/// An online denial turned into a fallback's licensed answer.
fn fallen_back<L: LicenseData>(license: &L, key: &Key, now: i64) -> CheckOutcome<L> {
    CheckOutcome::Licensed {
        source: Source::Online,
        license: Box::new(license.with_key(key.expose())),
        grace_remaining: None,
        verified_at: now,
    }
}

/// What the cache falls back on: the license remembered, the paid-through date, the grace
/// left and the time of the online answer it stands on.
type Found<'a, L> = (&'a L, i64, Duration, i64);

/// The cache's side of the rule while Polar cannot be asked (unsigned mode): the record's key
/// ended (Polar's `expired` or `inactive` as [`ended_by`] reads it, remembered; or the good
/// answer's paid-through date passed on this clock), and the grace rules still hold: the
/// same binding, no clock set back or held, and the grace period counted from the last
/// online answer (the denial, or the good answer).
fn from_cache<'a, L: LicenseData>(
    record: &'a Record<L>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
) -> Option<Found<'a, L>> {
    let good = record.good.as_ref()?;
    if !Record::binds(good, query)
        || record.rollback(now, policy).is_some()
        || record.is_stalled(now)
    {
        return None;
    }
    let sent = Sent(&good.license);
    let (pt, since) = match &record.denied {
        Some(denial) => (ended_by(&sent, denial.reason, denial.at)?, denial.at),
        None => (ends(&sent).filter(|&pt| pt <= now)?, good.verified_at),
    };
    let seen = record.seen(now);
    let left = record.grace_left(since, seen, policy)?;
    Some((&good.license, pt, left, since))
}

/// [`from_cache`] in signed mode: the dates from the record's verified lease; a remembered
/// denial only with its signed denial (verified on reading the record), the grace counted
/// from it and never past its signed end; with no denial, within the lease's window. `Err`
/// with why, when the refusal is for want of a signature.
fn from_cache_signed<'a, L: LicenseData>(
    record: &'a Record<L>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
) -> Result<Found<'a, L>, Option<&'static str>> {
    let good = record.good.as_ref().ok_or(None)?;
    if !Record::binds(good, query)
        || record.rollback(now, policy).is_some()
        || record.is_stalled(now)
    {
        return Err(None);
    }
    let facts = &record
        .lease_gate
        .window()
        .ok_or(Some(NO_SIGNED_FACTS))?
        .facts;
    let seen = record.seen(now);
    match &record.denied {
        Some(mark) if matches!(mark.reason, Reason::Expired | Reason::Inactive) => {
            let signed = mark
                .verified
                .as_ref()
                .filter(|s| s.reason() == mark.reason)
                .ok_or(Some(UNSIGNED_DENIAL))?;
            let pt = ended_by(facts, signed.reason(), signed.at()).ok_or(None)?;
            let left = record
                .grace_left_until(mark.at, seen, signed.until(), policy)
                .ok_or(None)?;
            Ok((&good.license, pt, left, mark.at))
        }
        Some(_) => Err(None),
        None => {
            let pt = ends(facts).filter(|&pt| pt <= now).ok_or(None)?;
            let left = record
                .grace_left(good.verified_at, seen, policy)
                .ok_or(None)?;
            Ok((&good.license, pt, left, good.verified_at))
        }
    }
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
        match (&self.outcome, &self.perpetual, &self.lease) {
            // The rule ran: its date (in signed mode, only a signed one).
            (_, Some(p), _) => p.paid_through,
            // Signed mode: the lease's signed facts, never the license as it came.
            (CheckOutcome::Licensed { .. }, None, Some(lease)) => ends(&lease.facts),
            (CheckOutcome::Licensed { license, .. }, None, None) => paid_through(license.as_ref()),
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
