//! The offline grace state machine: pure, no IO, no clock (`now` is always an argument).
//!
//! A `check` runs in two steps around one optional validate request:
//!
//! 1. [`plan`] looks at the cached [`Record`] (if any) and says [`Plan::Ask`] (send a validate),
//!    [`Plan::Cached`] (licensed from the cache, send nothing) or [`Plan::Refuse`] (not
//!    licensed, send nothing: a 429 block is still running and no cache can grant).
//! 2. After a request, [`settle`] folds the online result into the record and gives the
//!    answer: a [`StoreAction`] for the store and a [`CheckOutcome`] for the app.
//!
//! ```text
//!              ┌────────────── online accepted: write a fresh record ─────────────┐
//!              ▼                                                                   │
//!   ┌────── fresh ──────┐  age ≥ revalidate_after  ┌──── stale ────┐  unverified   │
//!   │ Cached, no request├─────────────────────────►│  Ask (request)├──────────────►│ grace left?
//!   └───────────────────┘                          └───┬───────┬───┘   yes: Licensed (cache)
//!                                                      │       │       no:  grace_expired
//!                                online denied ────────┘       └── 429: blocked until T,
//!                       tombstone: never grants again               no request before T
//!                       until an online success clears it
//! ```
//!
//! The rules, for the `now` the caller passes (unix seconds of the local clock):
//!
//! * **Fresh.** A good record younger than [`GracePolicy::revalidate_after`] answers with no
//!   request (unless the call increments usage, which always asks). Ages are measured at
//!   `seen = max(now, latest_seen)`: setting the clock back inside the tolerance regains no
//!   fresh time.
//! * **Answers that are not Polar's verdict fall back.** `offline`, `rate_limited`,
//!   `server_error` and `protocol_error` (a captive portal, a proxy's page, garbage, an answer
//!   contradicting the request) answer from a good record while
//!   `seen - verified_at <= grace_period`, with the exact `grace_remaining`; past it they are
//!   `grace_expired`; with no usable record they stay what they were. `invalid_input` never
//!   falls back.
//! * **A held clock.** Every cached answer is recorded ([`Record::note_answer`]): it moves
//!   `latest_seen` to `now`, or, when the clock has not moved forward since the last answer,
//!   counts it in `stalled`. After [`MAX_STALLED`] answers at a clock that does not move,
//!   the cache answers no more (`plan` asks Polar; an unreachable Polar is `clock_rollback`)
//!   until the clock moves forward or Polar answers.
//! * **A denial removes the cache's power to grant.** The record keeps a `denied` tombstone
//!   (so `status` can say why) until a later online success replaces the record. While it
//!   is there, an unreachable server gives the unverified error as it is, never a grant.
//! * **429.** `blocked_until = now + retry-after` (60 s when unreadable, at most 1 hour);
//!   [`plan`] sends nothing before then: it answers from the grace window if it can, else
//!   refuses with `rate_limited`.
//! * **Clock rollback.** `latest_seen` is the latest `now` the record has seen. When
//!   `now < latest_seen - clock_tolerance` the cache never grants (`clock_rollback`), so
//!   setting the clock back into the grace window gains nothing. A rolled-back clock still
//!   *asks* the server: an online answer is authoritative, and an online success is the
//!   only way to re-anchor the record (otherwise a clock that was once set far ahead would
//!   lock the user out until that date even with a working network). An online success whose
//!   response `Date` shows the local clock ahead by more than the tolerance is anchored at
//!   the server's time, so the clock coming back later is no rollback.
//! * **Binding.** A record is used only for the same organization, key, activation id,
//!   benefit id, customer id and conditions as the current call; anything else asks.
//! * **Expiry.** A cached license whose `expires_at` has passed never grants from the cache.
//!
//! The full license key is never stored: the record's copy of the license carries the
//! `display_key` in place of `key`, and the caller's key is put back when answering.
//!
//! ## Wiring (a sketch of what `check` does)
//!
//! The faces run this through the machines of `polar_license::flow` and the core's private
//! steps they fold with (`src/slot.rs`, `src/held.rs`, `src/flow/phases.rs`), which add
//! what this sketch leaves out: the ledger beside each record (an older record put back is not
//! trusted), the server's origin in the seal, no lock held while Polar is asked, and the record
//! read again before the answer is folded in.
//!
//! ```
//! use polar_license::cache::{self, MacKey};
//! use polar_license::grace::{self, GracePolicy, Plan, Query, StoreAction};
//! use polar_license::store::{MemoryStore, Store};
//! use polar_license::{Error, Reason};
//!
//! let (org, key) = ("d2fcbff8-108b-411e-bf2b-6383e0a8802d", "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
//! let store = MemoryStore::new()?; // FileStore::open_default()? in an app
//! let policy = GracePolicy::default();
//! let query = Query::new(org, key);
//! let now = 1_790_000_000; // the caller reads the clock, never the core
//! let slot = cache::slot_name("https://api.polar.sh", org, key);
//! let mac = MacKey::derive(key, org, &store.install_secret()?, None);
//!
//! let _lock = store.lock(&slot)?; // no other process checks this key meanwhile
//! let record = store.load(&slot)?.and_then(|bytes| cache::decode(&bytes, &mac).ok());
//! let outcome = match grace::plan(record.as_ref(), &query, now, &policy) {
//!     Plan::Ask => {
//!         // `client.validate(&request)` in real life; here the server is unreachable.
//!         let online = Err(Error::Offline { timeout: true, detail: "timed out".into() });
//!         let (action, outcome) = grace::settle(record, &query, now, &policy, online, None);
//!         if let StoreAction::Write(record) = action {
//!             store.save(&slot, &cache::encode(&record, &mac))?;
//!         }
//!         outcome
//!     }
//!     Plan::Cached(outcome) => {
//!         // Every cached answer is recorded before it is given (a held clock is counted).
//!         if let Some(mut record) = record {
//!             record.note_answer(now);
//!             store.save(&slot, &cache::encode(&record, &mac))?;
//!         }
//!         outcome
//!     }
//!     Plan::Refuse(outcome) => outcome,
//! };
//! assert_eq!(outcome.reason(), Some(Reason::Offline)); // no cache yet: offline as it is
//! # Ok::<(), Error>(())
//! ```

use crate::error::Verdict;
use crate::error::{Denial, Error};
use crate::json::{JsonIn, JsonOut};
use crate::key::Key;
use crate::metadata::Metadata;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{Stamp, ValidateRequest};
use crate::reason::Reason;
use std::time::Duration;

/// The block assumed after a 429 whose `retry-after` was unreadable, in seconds.
pub const DEFAULT_RETRY_AFTER: u64 = 60;

/// A license as the core's decisions read it (the grace rules, the cache record, feature
/// gating), whatever holds it: natively the typed model ([`ValidatedLicenseKey`], read and
/// written by serde); in the npm package the host's parsed JSON, checked against the same
/// model ([`crate::schema`]), so the package's WebAssembly carries no serde code. Every rule
/// is written once, over this trait.
pub trait LicenseData: Clone + std::fmt::Debug + PartialEq {
    /// The parsed JSON a record's license is read from.
    type Json: JsonIn;
    /// Parses JSON text (`None` when it is not JSON).
    fn parse(text: &str) -> Option<Self::Json>;
    /// Reads the license a record keeps (a `ValidatedLicenseKey`'s JSON): `None` when it is
    /// not one.
    fn read(v: &Self::Json) -> Option<Self>;
    /// Writes it as a record keeps it (a `ValidatedLicenseKey`'s JSON, as serde writes it).
    fn write(&self, out: &mut JsonOut);
    /// `expires_at`, in unix seconds.
    fn expires_at(&self) -> Option<i64>;
    /// Polar's `display_key` (`****-6ED415`).
    fn display_key(&self) -> &str;
    /// The license key's record id (rotation keeps it: [`crate::flow::follow`]).
    fn key_id(&self) -> String;
    /// The license-key benefit (the tier).
    fn benefit_id(&self) -> &str;
    /// Usages left before `limit_usage` (`None` when unlimited).
    fn remaining_usage(&self) -> Option<i64>;
    /// The same license with `key` as its key (a record keeps the display key; an answer
    /// carries the caller's).
    fn with_key(&self, key: &str) -> Self;
    /// API version 2027-01: the end (unix seconds) of the subscription the key was granted
    /// through, when the customer cancelled it (`cancel_at_period_end`, or status
    /// `canceled`): its `ends_at`, else its `current_period_end`. `None` otherwise, and for a
    /// representation that does not read it (perpetual fallback: [`crate::perpetual`]).
    fn cancelled_until(&self) -> Option<i64> {
        None
    }
    /// API version 2027-01: the subscription the key was granted through is `trialing`
    /// (trials: [`crate::trial`]). `false` for a representation that does not read it.
    fn trialing(&self) -> bool {
        false
    }
    /// API version 2027-01: the subscription's `current_period_end` (unix seconds), when the
    /// key was granted through one (a trial's end: [`crate::trial`]).
    fn period_end(&self) -> Option<i64> {
        None
    }
}

/// An accepted activation as the core's decisions read it: its id and label, and the license
/// it belongs to, with it.
pub trait ActivationData {
    /// The license type.
    type License: LicenseData;
    /// The activation id.
    fn activation_id(&self) -> &str;
    /// The label it was made with.
    fn label(&self) -> &str;
    /// The license, with this activation (as a validate of it answers).
    fn validated(&self) -> Self::License;
}

impl LicenseData for ValidatedLicenseKey {
    type Json = serde_json::Value;

    fn parse(text: &str) -> Option<serde_json::Value> {
        serde_json::from_str(text).ok()
    }

    fn read(v: &serde_json::Value) -> Option<Self> {
        serde::Deserialize::deserialize(v).ok()
    }

    fn write(&self, out: &mut JsonOut) {
        // Plain data (strings, numbers, maps with string keys) always serializes; `null` would
        // only make the record unreadable (no cache), never wrong.
        match serde_json::to_string(self) {
            Ok(text) => out.raw(&text),
            Err(_) => out.null(),
        };
    }

    fn expires_at(&self) -> Option<i64> {
        self.license_key.expires_at.map(|t| t.unix_timestamp())
    }

    fn display_key(&self) -> &str {
        &self.license_key.display_key
    }

    fn key_id(&self) -> String {
        self.license_key.id.clone()
    }

    fn benefit_id(&self) -> &str {
        &self.license_key.benefit_id
    }

    fn remaining_usage(&self) -> Option<i64> {
        self.license_key.remaining_usage()
    }

    fn with_key(&self, key: &str) -> Self {
        let mut copy = self.clone();
        copy.license_key.key = Key::new(key);
        copy
    }

    fn cancelled_until(&self) -> Option<i64> {
        let sub = self.license_key.subscription.as_ref()?;
        if !(sub.cancel_at_period_end || sub.status == "canceled") {
            return None;
        }
        sub.ends_at
            .or(sub.current_period_end)
            .map(|t| t.unix_timestamp())
    }

    fn trialing(&self) -> bool {
        self.license_key
            .subscription
            .as_ref()
            .is_some_and(|sub| sub.status == "trialing")
    }

    fn period_end(&self) -> Option<i64> {
        let sub = self.license_key.subscription.as_ref()?;
        sub.current_period_end.map(|t| t.unix_timestamp())
    }
}

impl ActivationData for LicenseKeyActivationRead {
    type License = ValidatedLicenseKey;

    fn activation_id(&self) -> &str {
        &self.activation.id
    }

    fn label(&self) -> &str {
        &self.activation.label
    }

    fn validated(&self) -> ValidatedLicenseKey {
        ValidatedLicenseKey {
            license_key: self.license_key.clone(),
            activation: Some(self.activation.clone()),
        }
    }
}

/// When to ask the server and how long a cached verdict stays good (docs/interfaces.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracePolicy {
    /// A good verdict younger than this answers `check` with no request. Default 1 hour.
    pub revalidate_after: Duration,
    /// How long after the last good online verdict an unreachable server still licenses.
    /// Default 7 days.
    pub grace_period: Duration,
    /// How far the clock may move back before `clock_rollback`. Default 10 minutes.
    pub clock_tolerance: Duration,
}

impl Default for GracePolicy {
    fn default() -> Self {
        GracePolicy {
            revalidate_after: Duration::from_secs(60 * 60),
            grace_period: Duration::from_secs(7 * 24 * 60 * 60),
            clock_tolerance: Duration::from_secs(10 * 60),
        }
    }
}

impl GracePolicy {
    /// Checks the policy: a non-zero `grace_period`, and neither `revalidate_after` nor
    /// `clock_tolerance` longer than it.
    pub fn validate(&self) -> Result<(), Error> {
        if self.grace_period.is_zero() {
            return Err(Error::invalid("grace_period", "must be longer than zero"));
        }
        if self.revalidate_after > self.grace_period {
            return Err(Error::invalid(
                "revalidate_after",
                "must not be longer than grace_period",
            ));
        }
        if self.clock_tolerance > self.grace_period {
            return Err(Error::invalid(
                "clock_tolerance",
                "must not be longer than grace_period",
            ));
        }
        Ok(())
    }

    /// When the grace of a licensed answer ends (unix seconds of the local clock): its good
    /// verdict's time plus the grace period. Past it, an unreachable Polar no longer licenses
    /// (`grace_expired`); an online answer before then moves it. `None` when not licensed.
    pub fn grace_ends_at(&self, outcome: &CheckOutcome) -> Option<i64> {
        match outcome {
            CheckOutcome::Licensed { verified_at, .. } => Some(self.grace_end(*verified_at)),
            _ => None,
        }
    }

    /// [`GracePolicy::grace_ends_at`] in signed mode, given the lease the key's record holds
    /// after the answer ([`GracePolicy::grace_end_leased`]).
    pub fn grace_ends_at_leased(
        &self,
        outcome: &CheckOutcome,
        lease: Option<&LeaseWindow>,
    ) -> Option<i64> {
        match outcome {
            CheckOutcome::Licensed { verified_at, .. } => {
                Some(self.grace_end_leased(*verified_at, lease))
            }
            _ => None,
        }
    }

    /// [`GracePolicy::grace_end`] in signed mode: never past the end of the lease the record
    /// holds, since the cache stops licensing then (with no lease, the grace end itself).
    pub fn grace_end_leased(&self, verified_at: i64, lease: Option<&LeaseWindow>) -> i64 {
        let end = self.grace_end(verified_at);
        lease.map_or(end, |w| w.cap(end))
    }

    /// The end of the grace of a good verdict obtained at `verified_at` (unix seconds).
    pub fn grace_end(&self, verified_at: i64) -> i64 {
        verified_at.saturating_add(self.grace_secs())
    }

    fn revalidate_secs(&self) -> i64 {
        secs(self.revalidate_after)
    }

    fn grace_secs(&self) -> i64 {
        secs(self.grace_period)
    }

    pub(crate) fn tolerance_secs(&self) -> i64 {
        secs(self.clock_tolerance)
    }
}

/// How many answers the cache gives at a clock that has not moved forward since the last
/// one, before it asks Polar (see the module docs). A burst of launches within one second
/// stays well under it.
pub const MAX_STALLED: u32 = 32;

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// What a check is about: the organization, the key and everything in the validate request
/// that changes the server's answer. A record is only used for an identical query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The seller organization.
    pub organization_id: String,
    /// The license key.
    pub key: Key,
    /// The activation validated, if any.
    pub activation_id: Option<String>,
    /// The benefit required, if any.
    pub benefit_id: Option<String>,
    /// The customer required, if any.
    pub customer_id: Option<String>,
    /// The conditions sent.
    pub conditions: Metadata,
    /// The usage increment sent; a query that increments never gets a cached answer without
    /// asking first.
    pub increment_usage: i64,
}

impl Query {
    /// A query for `key` with nothing else set.
    pub fn new(organization_id: impl Into<String>, key: impl Into<Key>) -> Query {
        Query {
            organization_id: organization_id.into(),
            key: key.into(),
            activation_id: None,
            benefit_id: None,
            customer_id: None,
            conditions: Metadata::new(),
            increment_usage: 0,
        }
    }

    /// The query a validate request makes. Fails with `invalid_input` (field `key`) when the
    /// request has no key.
    pub fn from_request(organization_id: &str, req: &ValidateRequest) -> Result<Query, Error> {
        let key = req
            .key
            .clone()
            .ok_or_else(|| Error::invalid("key", "must not be empty"))?;
        Ok(Query {
            organization_id: organization_id.to_string(),
            key,
            activation_id: req.activation_id.clone(),
            benefit_id: req.benefit_id.clone(),
            customer_id: req.customer_id.clone(),
            conditions: req.conditions.clone(),
            increment_usage: req.increment_usage.unwrap_or(0),
        })
    }

    /// Sets the activation id.
    pub fn activation_id(mut self, id: impl Into<String>) -> Self {
        self.activation_id = Some(id.into());
        self
    }

    crate::metadata::metadata_adder!(
        /// Adds a condition.
        condition => conditions
    );
}

/// The cached state of one organization and key. Serialized as JSON inside the MACed cache
/// format of [`crate::cache`]; times are unix seconds of the local clock unless noted.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct Record<L = ValidatedLicenseKey> {
    /// The server the record's answers came from (`https://api.polar.sh`, a sandbox, an
    /// emulator): a record answers only a client configured for the same server.
    #[cfg_attr(test, serde(default))]
    pub origin: String,
    /// The seller organization.
    pub organization_id: String,
    /// The key's redacted form (`****-6ED415`); the full key is never stored.
    pub display_key: String,
    /// The last good online verdict, if there was one.
    pub good: Option<GoodVerdict<L>>,
    /// The latest `now` this record has seen (for clock-rollback detection).
    pub latest_seen: i64,
    /// Cached answers given since the clock last moved past `latest_seen` (a held clock).
    #[cfg_attr(test, serde(default))]
    pub stalled: u32,
    /// This record's sequence number in its slot (see [`crate::cache::encode_ledger`]).
    #[cfg_attr(test, serde(default))]
    pub seq: u64,
    /// Set by an online denial: while present the record never grants.
    pub denied: Option<DenialMark>,
    /// Set by a 429: no request is sent before this time.
    pub blocked_until: Option<i64>,
    /// The activation made on this machine, remembered so later checks validate it with the
    /// same conditions (kept across verdicts; cleared by a deactivate).
    #[cfg_attr(test, serde(default))]
    pub activation: Option<StoredActivation>,
    /// What the good verdict's lease allows, as the face found it on reading the record (never
    /// stored: a record's own bytes can be re-sealed by whoever holds the install secret).
    #[cfg_attr(test, serde(skip))]
    pub lease_gate: LeaseGate,
}

/// Whether, and until when, a record's good verdict may license from the cache, as its lease
/// says ([`crate::lease`]). Set by the face after reading the record
/// (`gate_lease`), never stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeaseGate {
    /// No relay keys configured: the grace rules alone decide (the default).
    #[default]
    Unsigned,
    /// Signed mode: the cache licenses only within the lease's window; `None` when there is no
    /// lease that verifies (then the cache never licenses).
    Signed(Option<LeaseWindow>),
}

/// The window of a lease that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWindow {
    /// The key that signed it.
    pub kid: String,
    /// Not valid before (unix seconds, the relay's clock).
    pub not_before: i64,
    /// Not valid from this time on (unix seconds).
    pub expires_at: i64,
    /// What the lease signed that a verdict may widen on (the paid-through date): only the
    /// lease verifier makes these ([`crate::lease::SignedFacts`]).
    pub facts: crate::lease::SignedFacts,
}

impl LeaseWindow {
    /// A grace end (unix seconds) as this lease allows it: never past the lease's end, since
    /// the cache stops licensing then.
    pub fn cap(&self, grace_end: i64) -> i64 {
        grace_end.min(self.expires_at)
    }
}

impl LeaseGate {
    /// The latest time the cache may license until at `seen` (`Ok(None)`: no limit, unsigned
    /// mode), or `Err(())` when it may not license at all (no lease, or one dated ahead of the
    /// clock by more than `tolerance` seconds).
    fn limit(&self, seen: i64, tolerance: i64) -> Result<Option<i64>, ()> {
        match self {
            LeaseGate::Unsigned => Ok(None),
            LeaseGate::Signed(None) => Err(()),
            LeaseGate::Signed(Some(w)) if w.not_before > seen.saturating_add(tolerance) => Err(()),
            LeaseGate::Signed(Some(w)) => Ok(Some(w.expires_at)),
        }
    }

    /// The window of a lease that verified, if any.
    pub fn window(&self) -> Option<&LeaseWindow> {
        match self {
            LeaseGate::Signed(Some(w)) => Some(w),
            _ => None,
        }
    }
}

/// An activation remembered by the cache: what later checks send with the key.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct StoredActivation {
    /// The activation id Polar returned.
    pub id: String,
    /// The label it was made with.
    pub label: String,
    /// The conditions it was made with (sent again on every validate).
    pub conditions: Metadata,
    /// When it was made (local clock).
    pub created_at: i64,
}

/// The last good online verdict and what it was asked with.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct GoodVerdict<L = ValidatedLicenseKey> {
    /// The license as Polar returned it, with `key` replaced by the `display_key`.
    pub license: L,
    /// The activation id sent.
    pub activation_id: Option<String>,
    /// The benefit id sent.
    pub benefit_id: Option<String>,
    /// The customer id sent.
    pub customer_id: Option<String>,
    /// The conditions sent.
    pub conditions: Metadata,
    /// When it was obtained (local clock).
    pub verified_at: i64,
    /// The server's `Date` header, when present (informational: it is never used to move
    /// `latest_seen`, so a local clock that is merely skewed does not look rolled back).
    pub server_date: Option<i64>,
    /// The relay's signed lease that came with this verdict ([`crate::lease`]), as received.
    /// Only a client in signed mode reads it; it is stored whenever there is one.
    #[cfg_attr(test, serde(default, skip_serializing_if = "Option::is_none"))]
    pub lease: Option<String>,
}

/// An online denial remembered by the record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct DenialMark {
    /// The denial's reason code.
    #[cfg_attr(test, serde(with = "reason_code"))]
    pub reason: Reason,
    /// Polar's `detail` text.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// For `usage_exhausted`: the usages left.
    pub remaining_usages: Option<i64>,
    /// When it was received (local clock).
    pub at: i64,
    /// Signed mode: the relay's signed denial that came with it ([`crate::lease::DENIAL_HEADER`]),
    /// as received, when it verified for its request (its nonce). Stored whenever there is one.
    #[cfg_attr(test, serde(default, skip_serializing_if = "Option::is_none"))]
    pub signed: Option<String>,
    /// Signed mode: [`DenialMark::signed`] as verified by the face on reading the record (never
    /// stored: a record's own bytes can be re-sealed by whoever holds the install secret).
    #[cfg_attr(test, serde(skip))]
    pub verified: Option<crate::lease::SignedDenial>,
}

impl DenialMark {
    /// The denial as it was received (`previously_valid` is the record's to say: see
    /// [`Record::denial`]).
    pub fn to_denial(&self) -> Denial {
        Denial {
            previously_valid: false,
            activation_gone: false,
            stopped: None,
            reason: self.reason,
            detail: self.detail.clone(),
            status: self.status,
            remaining_usages: self.remaining_usages,
        }
    }
}

#[cfg(test)]
mod reason_code {
    use crate::reason::Reason;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(reason: &Reason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(reason.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let code = String::deserialize(d)?;
        Reason::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reason code {code:?}")))
    }
}

impl<L: LicenseData> Record<L> {
    /// An empty record for `query` (no verdict yet).
    fn empty(query: &Query, now: i64) -> Record<L> {
        Record::new(&query.organization_id, &query.key, now)
    }

    /// An empty record of `organization_id` and `key` at `now`.
    pub fn new(organization_id: &str, key: &Key, now: i64) -> Record<L> {
        Record {
            origin: String::new(),
            organization_id: organization_id.to_string(),
            display_key: key.redacted(),
            good: None,
            latest_seen: now,
            stalled: 0,
            seq: 0,
            denied: None,
            blocked_until: None,
            activation: None,
            lease_gate: LeaseGate::Unsigned,
        }
    }

    /// An empty record that remembers `activation` (after an activate).
    pub fn with_activation(
        organization_id: &str,
        key: &Key,
        activation: StoredActivation,
        now: i64,
    ) -> Record<L> {
        Record {
            activation: Some(activation),
            ..Record::new(organization_id, key, now)
        }
    }

    /// The tombstone's denial, if any, saying whether the key was valid here before.
    pub fn denial(&self) -> Option<Denial> {
        let mut denial = self.denied.as_ref()?.to_denial();
        denial.previously_valid = was_valid(Some(self));
        Some(denial)
    }

    /// `true` when this record belongs to `organization_id` and `key`.
    pub fn is_for(&self, organization_id: &str, key: &Key) -> bool {
        self.organization_id == organization_id && self.display_key == key.redacted()
    }

    /// `true` when this record belongs to `query`'s organization and key.
    fn belongs_to(&self, query: &Query) -> bool {
        self.organization_id == query.organization_id && self.display_key == query.key.redacted()
    }

    /// How far the clock moved back past the tolerance, in seconds, if it did.
    pub fn rollback(&self, now: i64, policy: &GracePolicy) -> Option<u64> {
        let floor = self.latest_seen.saturating_sub(policy.tolerance_secs());
        (now < floor).then(|| unsigned(self.latest_seen.saturating_sub(now)))
    }

    /// The good verdict usable for `query` at `now`, ignoring its age: present, same binding,
    /// no denial, not expired.
    fn usable(&self, query: &Query, now: i64, policy: &GracePolicy) -> Option<&GoodVerdict<L>> {
        if self.denied.is_some() || !self.belongs_to(query) {
            return None;
        }
        if self
            .lease_gate
            .limit(self.seen(now), policy.tolerance_secs())
            .is_err()
        {
            return None;
        }
        let good = self.good.as_ref()?;
        let same = Record::binds(good, query);
        let expired = good.license.expires_at().is_some_and(|at| at <= now);
        (same && !expired).then_some(good)
    }

    /// The grace left at `now` for a cache answer: `None` when this record cannot grant
    /// (no good verdict, denied, expired, rolled-back or held clock, or grace over). Ignores
    /// binding, for `status`.
    pub fn grace_remaining(&self, now: i64, policy: &GracePolicy) -> Option<Duration> {
        if self.denied.is_some() || self.rollback(now, policy).is_some() || self.is_stalled(now) {
            return None;
        }
        let good = self.good.as_ref()?;
        if good.license.expires_at().is_some_and(|at| at <= now) {
            return None;
        }
        let seen = self.seen(now);
        let limit = self.lease_gate.limit(seen, policy.tolerance_secs()).ok()?;
        remaining(good.verified_at, seen, limit, policy)
    }

    /// The time ages are measured at: `now`, or the latest time seen when the clock is behind
    /// it (within the tolerance).
    pub fn seen(&self, now: i64) -> i64 {
        now.max(self.latest_seen)
    }

    /// `true` when the cache gave [`MAX_STALLED`] answers at a clock that did not move, and
    /// it still has not moved at `now`.
    pub fn is_stalled(&self, now: i64) -> bool {
        self.stalled >= MAX_STALLED && now <= self.latest_seen
    }

    /// Moves `latest_seen` to `now` when the clock moved forward (which ends a stall).
    pub fn touch(&mut self, now: i64) {
        if now > self.latest_seen {
            self.latest_seen = now;
            self.stalled = 0;
        }
    }

    /// Records an answer given from this record at `now`: the clock moved forward, or one
    /// more answer at a clock that did not.
    pub fn note_answer(&mut self, now: i64) {
        if now > self.latest_seen {
            self.touch(now);
        } else {
            self.stalled = self.stalled.saturating_add(1);
        }
    }

    /// The grace left at `seen` (the record's [`Record::seen`]) for an answer from the cache
    /// that stands on the online answer received at `since` (perpetual fallback: the good
    /// verdict, or the expiry Polar confirmed), in signed mode never past the lease's end.
    pub(crate) fn grace_left(
        &self,
        since: i64,
        seen: i64,
        policy: &GracePolicy,
    ) -> Option<Duration> {
        let limit = self.lease_gate.limit(seen, policy.tolerance_secs()).ok()?;
        remaining(since, seen, limit, policy)
    }

    /// [`Record::grace_left`] for an answer that stands on a signed denial received at
    /// `since` (signed mode's perpetual fallback): never past `until`, the denial's signed
    /// end, instead of the lease's.
    pub(crate) fn grace_left_until(
        &self,
        since: i64,
        seen: i64,
        until: i64,
        policy: &GracePolicy,
    ) -> Option<Duration> {
        remaining(since, seen, Some(until), policy)
    }

    /// The binding a good verdict must have to answer `query`.
    pub(crate) fn binds(good: &GoodVerdict<L>, query: &Query) -> bool {
        good.activation_id == query.activation_id
            && good.benefit_id == query.benefit_id
            && good.customer_id == query.customer_id
            && good.conditions == query.conditions
    }
}

/// Whether this install had a good verdict for the record's key (a denial's
/// [`Denial::previously_valid`]: a rotated or refunded key reads differently from a typo). A
/// tombstone keeps the last good verdict, so a key stays "valid here before" after it.
pub fn was_valid<L>(record: Option<&Record<L>>) -> bool {
    record.is_some_and(|r| r.good.is_some())
}

/// Seconds of grace left at `now`, `None` when the grace is over. Capped at the grace period
/// (a clock slightly behind `verified_at`, within the tolerance, gains nothing).
/// In signed mode the lease's expiry (`lease_until`) ends it too: at that time nothing is left.
fn remaining(
    verified_at: i64,
    now: i64,
    lease_until: Option<i64>,
    policy: &GracePolicy,
) -> Option<Duration> {
    let grace = policy.grace_secs();
    let age = now.saturating_sub(verified_at);
    if age > grace {
        return None;
    }
    let mut left = grace.saturating_sub(age).min(grace);
    if let Some(until) = lease_until {
        if now >= until {
            return None;
        }
        left = left.min(until.saturating_sub(now));
    }
    Some(Duration::from_secs(unsigned(left)))
}

/// Where a licensed answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The server answered just now.
    Online,
    /// The offline cache answered (fresh, or the server was unreachable within the grace).
    Cache,
}

impl Source {
    /// `online` or `cache`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Online => "online",
            Source::Cache => "cache",
        }
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum CheckOutcome<L = ValidatedLicenseKey> {
    /// The license is good.
    Licensed {
        /// Online, or from the cache.
        source: Source,
        /// The license (with the caller's full key).
        license: Box<L>,
        /// For a cache answer: how long the grace still lasts. `None` for an online answer.
        grace_remaining: Option<Duration>,
        /// When the verdict was obtained online (unix seconds, local clock).
        verified_at: i64,
    },
    /// The server said no.
    Denied(Denial),
    /// No trustworthy answer and none from the cache: an unverified reason (`offline`,
    /// `rate_limited`, `server_error`, `grace_expired`, `clock_rollback`) or an error-class
    /// one (`protocol_error` with no usable cache, `invalid_input`, `cache_error`).
    Unverified(Error),
}

impl<L> CheckOutcome<L> {
    /// An online answer as a check's outcome, built here only: a grant is licensed by Polar
    /// (`Source::Online`, no grace counted) and verified at `now`, the clock reading the machine
    /// that asked was given; a denial denies; an error leaves it unverified. Faces take it from
    /// the machines ([`crate::flow::update::Validated::outcome`]), never build it.
    pub(crate) fn online(answer: Result<Verdict<L>, Error>, now: i64) -> CheckOutcome<L> {
        match answer {
            Ok(Verdict::Accepted(license)) => CheckOutcome::Licensed {
                source: Source::Online,
                license: Box::new(license),
                grace_remaining: None,
                verified_at: now,
            },
            Ok(Verdict::Denied(denial)) => CheckOutcome::Denied(denial),
            Err(e) => CheckOutcome::Unverified(e),
        }
    }

    /// A question a face refused before asking anything (`e`: why, e.g. an `invalid_input`
    /// naming a field the operation does not use) as a check's outcome, built here only: it
    /// does not license and is unverified, with `e` as its reason. Faces call this instead
    /// of building the outcome themselves.
    pub fn refused(e: Error) -> CheckOutcome<L> {
        CheckOutcome::Unverified(e)
    }

    /// `true` when licensed.
    pub fn is_licensed(&self) -> bool {
        matches!(self, CheckOutcome::Licensed { .. })
    }

    /// The reason, when not licensed.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            CheckOutcome::Licensed { .. } => None,
            CheckOutcome::Denied(d) => Some(d.reason),
            CheckOutcome::Unverified(e) => Some(e.reason()),
        }
    }

    /// For an answer that does not license: a short sentence to show the person using the app
    /// ([`Denial::user_message`], [`Error::user_message`]); `None` when licensed.
    pub fn user_message(&self) -> Option<String> {
        self.message().map(|m| m.text())
    }

    /// For an answer that does not license: its one sentence and one next step
    /// ([`Denial::message`], [`Error::message`]), the rendering every face shows (whole, as
    /// [`CheckOutcome::user_message`], or the two apart); `None` when licensed.
    pub fn message(&self) -> Option<crate::Message> {
        match self {
            CheckOutcome::Licensed { .. } => None,
            CheckOutcome::Denied(d) => Some(d.message()),
            CheckOutcome::Unverified(e) => Some(e.message()),
        }
    }

    /// For an answer that does not license: the one next step of its
    /// [`CheckOutcome::message`].
    pub fn next_step(&self) -> Option<String> {
        self.message().map(|m| m.next_step().to_string())
    }

    /// The `outcome` word of docs/interfaces.md §2: `licensed`, `denied`, `unverified` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckOutcome::Licensed { .. } => "licensed",
            CheckOutcome::Denied(_) => "denied",
            CheckOutcome::Unverified(e) => e.reason().class().as_str(),
        }
    }

    // The fields every face shows of an answer (the Tauri plugin's `LicenseState`, the
    // command line's and the C result's), read here once instead of by a match in each face.

    /// Where a licensed answer came from; `None` when not licensed.
    pub fn source(&self) -> Option<Source> {
        match self {
            CheckOutcome::Licensed { source, .. } => Some(*source),
            _ => None,
        }
    }

    /// The license, when licensed.
    pub fn license(&self) -> Option<&L> {
        match self {
            CheckOutcome::Licensed { license, .. } => Some(license),
            _ => None,
        }
    }

    /// When the licensed verdict was obtained online (unix seconds); `None` when not licensed.
    pub fn verified_at(&self) -> Option<i64> {
        match self {
            CheckOutcome::Licensed { verified_at, .. } => Some(*verified_at),
            _ => None,
        }
    }

    /// For a licensed answer from the cache: how long the grace still lasts.
    pub fn grace_remaining(&self) -> Option<Duration> {
        match self {
            CheckOutcome::Licensed {
                grace_remaining, ..
            } => *grace_remaining,
            _ => None,
        }
    }

    /// For an answer that does not license: Polar's `detail` for a denial, else ours (for logs
    /// and support, not for the user).
    pub fn detail(&self) -> Option<String> {
        match self {
            CheckOutcome::Licensed { .. } => None,
            CheckOutcome::Denied(d) => Some(d.detail.clone()),
            CheckOutcome::Unverified(e) => Some(e.detail()),
        }
    }

    /// For a denial of a key that was valid here before: what probably happened
    /// ([`Denial::hint`]).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CheckOutcome::Denied(d) => d.hint(),
            _ => None,
        }
    }

    /// For `invalid_input`: the field at fault ([`Error::field`]).
    pub fn field(&self) -> Option<&str> {
        match self {
            CheckOutcome::Unverified(e) => e.field(),
            _ => None,
        }
    }

    /// `true` when the app should ask the user for a key: none is remembered, or the one given
    /// is not a key (`invalid_input` on the field `key`).
    pub fn needs_key(&self) -> bool {
        self.field() == Some("key")
    }
}

/// What a licensed answer says about one entitlement (issue #68, docs/entitlements.md):
/// [`CheckReport::entitlement_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntitlementState {
    /// The relay signed the key's values and this one is among them.
    Granted,
    /// The relay signed the key's values and this one is not among them: Polar grants the
    /// key no such value.
    Absent,
    /// The answer stands on a signed lease that carries no values: a relay started without
    /// `--sign-entitlements`, or one that had not read them yet (check again).
    Unknown,
    /// The answer stands on no signed lease: values need the seller's relay and its public
    /// key (signed mode).
    Unsigned,
    /// The answer does not license: its own reason says why.
    NotLicensed,
}

impl EntitlementState {
    /// The state's code: `granted`, `absent`, `unknown`, `unsigned`, `not_licensed`.
    pub fn code(self) -> &'static str {
        match self {
            EntitlementState::Granted => "granted",
            EntitlementState::Absent => "absent",
            EntitlementState::Unknown => "unknown",
            EntitlementState::Unsigned => "unsigned",
            EntitlementState::NotLicensed => "not_licensed",
        }
    }

    /// What to tell the person using the app about a feature in this state: one sentence and
    /// one next step. `None` when it is granted, and when the answer does not license (its
    /// reason's message says why).
    pub fn message(self) -> Option<crate::Message> {
        use crate::Message;
        match self {
            EntitlementState::Granted | EntitlementState::NotLicensed => None,
            EntitlementState::Absent => Some(Message::fixed(
                "This license does not include this feature.",
                "Upgrade the license to use it.",
            )),
            EntitlementState::Unknown => Some(Message::fixed(
                "The features of this license are not known yet.",
                "Check the license again in a few minutes.",
            )),
            EntitlementState::Unsigned => Some(Message::fixed(
                "This app cannot read the features of a license.",
                "Tell the seller.",
            )),
        }
    }
}

/// A check's answer, with what happened around it: why a cached answer came from the cache
/// although Polar was asked (`fallback`), and whether the cache could not be updated
/// (`cache_error`: the answer stands, but the record was not refreshed, so a later check may
/// not see it).
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct CheckReport<L = ValidatedLicenseKey> {
    /// The answer.
    pub outcome: CheckOutcome<L>,
    /// For a licensed answer from the cache after Polar was asked: what happened online
    /// (`offline`, `rate_limited`, `server_error` or `protocol_error`, docs/interfaces.md §4).
    pub fallback: Option<Error>,
    /// The cache could not be written (or read): a `cache_error`.
    pub cache_error: Option<Error>,
    /// For an answer Polar gave through a relay (the verdict, online): where the relay took
    /// it from (`polar-license-source`: asked just now, its store, or a stale grant replayed
    /// while Polar could not be asked). `None` without a relay, and for the cache's answers.
    pub relayed: Option<crate::proto::Relayed>,
    /// Signed mode: the window of the lease the key's record holds as the check left it (the
    /// one a licensed answer from the cache stands on), when it verifies; `None` in unsigned
    /// mode, and when the slot could not be used. (An addition: shells read it here instead
    /// of reading the cache again after the check.)
    pub lease: Option<LeaseWindow>,
    /// The activation the key's record remembers as the check left it (also one only an
    /// untrusted record names: the next check validates it); `None` when the slot could not
    /// be used. (An addition.)
    pub activation_id: Option<String>,
    /// Perpetual fallback ([`crate::perpetual`]): when the app stated its build's release
    /// date, the date the key was paid through and whether this answer licenses only because
    /// the build is older than it. `None` when no release date was stated. (An addition.)
    pub perpetual: Option<crate::release::Perpetual>,
    /// Trials ([`crate::trial`]): the app's local trial (with no key), or a key from a trial
    /// product (a benefit the app names as a trial's, or a `trialing` subscription), with its
    /// end and days left. `None` when the app stated no trial, and for a key that is not one.
    /// (An addition; boxed: a report moves whole, and a check that states no trial pays for
    /// one pointer only.)
    pub trial: Option<Box<crate::release::Trial>>,
}

impl<L> CheckReport<L> {
    /// A report of `outcome` alone.
    pub fn of(outcome: CheckOutcome<L>) -> CheckReport<L> {
        CheckReport {
            outcome,
            fallback: None,
            cache_error: None,
            relayed: None,
            lease: None,
            activation_id: None,
            perpetual: None,
            trial: None,
        }
    }

    /// What a licensed answer tells the person using the app, in the core's words (issue #80,
    /// [`crate::message::licensed`]): that the device is licensed, or that it stays licensed for
    /// the grace left while Polar cannot be reached. `None` when the answer does not license
    /// (its denial's or error's `user_message` says why).
    pub fn licensed_message(&self) -> Option<String> {
        self.outcome.is_licensed().then(|| self.user_message())
    }

    /// What this answer tells the person using the app, in the core's words, the same on every
    /// face (issue #80): for an answer that does not license, its one sentence and one next step
    /// ([`CheckOutcome::user_message`]); for a licensed one, [`CheckReport::licensed_message`]'s
    /// words. A face shows it; whether the app runs is [`CheckOutcome::is_licensed`]'s to say.
    pub fn user_message(&self) -> String {
        match &self.outcome {
            CheckOutcome::Licensed {
                source,
                grace_remaining,
                ..
            } => crate::message::licensed(
                *grace_remaining,
                *source == Source::Cache && self.fallback.is_some(),
            ),
            CheckOutcome::Denied(d) => d.user_message(),
            CheckOutcome::Unverified(e) => e.user_message(),
        }
    }

    /// `true` when the cache holds what this check learned (or there was nothing to learn).
    pub fn cache_refreshed(&self) -> bool {
        self.cache_error.is_none()
    }

    /// The value of the entitlement `name` (issue #68, docs/entitlements.md): a Feature Flag
    /// value Polar grants the key, as the relay signed it into the lease this licensed answer
    /// stands on, read offline. `None` when the key is granted no such value, when the answer
    /// does not license, and whenever no lease carries values: in unsigned mode (values need
    /// the seller's relay: Polar's answers to a client carry none), or when the relay does not
    /// sign them ([`CheckReport::entitlements`] tells the two apart).
    pub fn entitlement(&self, name: &str) -> Option<crate::lease::EntitlementValue> {
        self.entitlements()?.value(name).cloned()
    }

    /// What this answer says about the entitlement `name`, as one of five states every face
    /// shows the same way (docs/entitlements.md), with the value when granted.
    pub fn entitlement_state(
        &self,
        name: &str,
    ) -> (EntitlementState, Option<&crate::lease::EntitlementValue>) {
        if !self.outcome.is_licensed() {
            return (EntitlementState::NotLicensed, None);
        }
        match self.entitlements() {
            Some(claims) => match claims.value(name) {
                Some(value) => (EntitlementState::Granted, Some(value)),
                None => (EntitlementState::Absent, None),
            },
            None if self.lease.is_none() => (EntitlementState::Unsigned, None),
            None => (EntitlementState::Unknown, None),
        }
    }

    /// Every value and meter balance the relay signed into the lease of this licensed answer;
    /// `None` when it signed none (unsigned mode, a relay without entitlements on or that had
    /// not read them yet) or the answer does not license. `Some` with no values: Polar grants
    /// the key none.
    pub fn entitlements(&self) -> Option<&crate::lease::EntitlementClaims> {
        match &self.outcome {
            CheckOutcome::Licensed { .. } => self.lease.as_ref()?.facts.entitlements(),
            _ => None,
        }
    }

    /// When the grace of a licensed answer ends under `policy` (unix seconds of the local
    /// clock), never past the end of the lease the report carries (signed mode: the cache
    /// stops licensing then). `None` when not licensed. What every face reports as the
    /// check's grace end, from the report alone (no read of the cache after the check).
    pub fn grace_ends_at(&self, policy: &GracePolicy) -> Option<i64> {
        match &self.outcome {
            CheckOutcome::Licensed { verified_at, .. } => {
                Some(policy.grace_end_leased(*verified_at, self.lease.as_ref()))
            }
            _ => None,
        }
    }
}

/// What to do before (or instead of) a request.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Plan<L = ValidatedLicenseKey> {
    /// Send a validate, then call [`settle`].
    Ask,
    /// Licensed from the cache; send nothing.
    Cached(CheckOutcome<L>),
    /// Not licensed, and nothing may be sent (a 429 block is running).
    Refuse(CheckOutcome<L>),
}

/// What the store should do after [`settle`].
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum StoreAction<L = ValidatedLicenseKey> {
    /// Leave the stored record as it is.
    Keep,
    /// Replace the stored record with this one.
    Write(Box<Record<L>>),
}

fn licensed_from_cache<L: LicenseData>(
    record: &Record<L>,
    good: &GoodVerdict<L>,
    query: &Query,
    seen: i64,
    p: &GracePolicy,
) -> Option<CheckOutcome<L>> {
    let limit = record.lease_gate.limit(seen, p.tolerance_secs()).ok()?;
    let left = remaining(good.verified_at, seen, limit, p)?;
    Some(CheckOutcome::Licensed {
        source: Source::Cache,
        license: Box::new(good.license.with_key(query.key.expose())),
        grace_remaining: Some(left),
        verified_at: good.verified_at,
    })
}

/// What an error that falls back ([`Error::falls_back`]) becomes given the record: a cache
/// grant within the grace, `clock_rollback` (a clock moved back, or held), `grace_expired`,
/// or the error itself when no record can grant.
pub fn fall_back<L: LicenseData>(
    record: Option<&Record<L>>,
    query: &Query,
    now: i64,
    p: &GracePolicy,
    err: Error,
) -> CheckOutcome<L> {
    let Some((record, good)) = record.and_then(|r| r.usable(query, now, p).map(|g| (r, g))) else {
        return CheckOutcome::Unverified(err);
    };
    if let Some(by_seconds) = record.rollback(now, p) {
        return CheckOutcome::Unverified(Error::ClockRollback { by_seconds });
    }
    if record.is_stalled(now) {
        return CheckOutcome::Unverified(Error::ClockStalled {
            answers: record.stalled,
        });
    }
    let seen = record.seen(now);
    licensed_from_cache(record, good, query, seen, p).unwrap_or_else(|| {
        // In signed mode the lease's end can come first: say so.
        let lease_ended = record
            .lease_gate
            .window()
            .filter(|w| seen >= w.expires_at)
            .map(|w| {
                let ago =
                    crate::decimal::duration_words(unsigned(seen.saturating_sub(w.expires_at)));
                [
                    crate::error::LEASE_ENDED,
                    &ago,
                    " ago (signed mode): without a current lease the cache licenses nothing, \
                     whatever the record says of its age; ",
                ]
                .concat()
            });
        CheckOutcome::Unverified(Error::GraceExpired {
            verified_seconds_ago: unsigned(seen.saturating_sub(good.verified_at)),
            cause: [lease_ended.unwrap_or_default(), err.text()].concat(),
        })
    })
}

/// Step 1 of a check: decides from the cached record alone whether to send a validate.
///
/// `record` is what the store holds for this organization and key, already decoded (a
/// missing, tampered or unknown-version record is `None`). A [`Plan::Cached`] answer is
/// given from the record: record it with [`Record::note_answer`] before answering (a held
/// clock must not repeat it without end).
pub fn plan<L: LicenseData>(
    record: Option<&Record<L>>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
) -> Plan<L> {
    let Some(r) = record.filter(|r| r.belongs_to(query)) else {
        return Plan::Ask;
    };
    if r.rollback(now, policy).is_some() {
        // The block and the fresh window are measured on a clock we no longer trust;
        // only the server can answer.
        return Plan::Ask;
    }
    if let Some(until) = r.blocked_until.filter(|&until| now < until) {
        let err = Error::RateLimited {
            retry_after: Some(unsigned(until.saturating_sub(now))),
        };
        return match fall_back(Some(r), query, now, policy, err) {
            licensed @ CheckOutcome::Licensed { .. } => Plan::Cached(licensed),
            other => Plan::Refuse(other),
        };
    }
    if query.increment_usage != 0 || r.is_stalled(now) {
        return Plan::Ask;
    }
    let seen = r.seen(now);
    match r.usable(query, now, policy) {
        Some(good) if seen.saturating_sub(good.verified_at) < policy.revalidate_secs() => {
            licensed_from_cache(r, good, query, seen, policy).map_or(Plan::Ask, Plan::Cached)
        }
        _ => Plan::Ask,
    }
}

/// The time an online verdict is anchored at: `now`, or the response's `Date` when the local
/// clock is ahead of it by more than the tolerance (a clock that jumped forward once must not
/// read as a rollback when it comes back). A clock behind the server keeps its own time: the
/// record's intervals are measured on it consistently.
fn anchor(now: i64, server_date: Option<i64>, policy: &GracePolicy) -> i64 {
    match server_date {
        Some(date) if now > date.saturating_add(policy.tolerance_secs()) => date,
        _ => now,
    }
}

/// The record after a good online verdict on `query`: a fresh good verdict (the activation
/// made on this machine stays remembered; a denial and a block are cleared), dated from when
/// Polar gave it: the response's `Age` earlier than it arrived (a relay's replay of a stored
/// answer; 0 from Polar), so a replay never restarts the grace.
fn verified<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
    license: &L,
    stamp: Stamp,
) -> Record<L> {
    let at = anchor(now, stamp.date, policy);
    let given = at.saturating_sub(stamp.age.max(0));
    let stored = license.with_key(license.display_key());
    // Signed mode: the record's clock never moves back (a replayed or held answer cannot
    // erase a rollback), and a denial recorded after this answer was asked for stays.
    let signed = record
        .as_ref()
        .is_some_and(|r| r.lease_gate != LeaseGate::Unsigned);
    let floor = record
        .as_ref()
        .filter(|_| signed)
        .map_or(at, |r| r.latest_seen.max(at));
    let later_denial = record
        .as_ref()
        .and_then(|r| r.denied.clone())
        .filter(|d| d.at > now);
    Record {
        good: Some(GoodVerdict {
            license: stored,
            activation_id: query.activation_id.clone(),
            benefit_id: query.benefit_id.clone(),
            customer_id: query.customer_id.clone(),
            conditions: query.conditions.clone(),
            verified_at: given,
            server_date: stamp.date,
            lease: None,
        }),
        // An online success re-anchors the clock: latest_seen moves with verified_at (to the
        // answer's arrival, `Age` later), so a clock set ahead earlier cannot stretch the grace.
        latest_seen: floor,
        denied: later_denial,
        activation: record.and_then(|r| r.activation),
        ..Record::empty(query, at)
    }
}

/// The record after an online denial: a tombstone (the record never grants until Polar says
/// yes again).
fn tombstoned<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    now: i64,
    denial: &Denial,
) -> Record<L> {
    let mut r = record.unwrap_or_else(|| Record::empty(query, now));
    r.touch(now);
    r.blocked_until = None;
    r.denied = Some(DenialMark {
        reason: denial.reason,
        detail: denial.detail.clone(),
        status: denial.status,
        remaining_usages: denial.remaining_usages,
        at: now,
        signed: None,
        verified: None,
    });
    r
}

/// The record after a 429: nothing is sent before `retry-after` (60 s when unreadable).
fn blocked<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    now: i64,
    retry_after: Option<u64>,
) -> Record<L> {
    let mut r = record.unwrap_or_else(|| Record::empty(query, now));
    r.touch(now);
    let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
    r.blocked_until = Some(now.saturating_add(secs(Duration::from_secs(wait))));
    r
}

/// Step 2 of a check: folds the online result of the validate sent after [`Plan::Ask`] into
/// the record and gives the answer.
///
/// `stamp` is when the answer was given: the response's `Date` header in unix seconds, when
/// there was one (see [`http_date`]), and its `Age` ([`Stamp`]; `None` or `Some(date)` for a
/// `Date` alone). `record` is what the store holds now (it may have changed since [`plan`]:
/// another process's answer is folded in, not overwritten).
///
/// A grant with an `Age` (a relay's replay of Polar's earlier answer) is dated that much
/// earlier: the grace runs from when Polar gave it, and one older than the grace period is
/// `grace_expired`, as the cache would answer had it been received then, and changes nothing
/// stored.
pub fn settle<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
    online: Result<Verdict<L>, Error>,
    stamp: impl Into<Stamp>,
) -> (StoreAction<L>, CheckOutcome<L>) {
    let seen = record
        .as_ref()
        .and_then(|r| r.denied.as_ref())
        .map(|d| d.at);
    settle_begun(record, query, now, policy, online, stamp, seen)
}

/// [`settle`] for a check that began at `now` and then saw the record's denial dated `seen`
/// (`None`: no denial). A grant never lifts a denial received after the check began (another
/// process's, while this check's answer was on its way): one dated after `now`, or any other
/// than the one the check saw. The answer is then that denial, and the record stays.
pub fn settle_begun<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
    online: Result<Verdict<L>, Error>,
    stamp: impl Into<Stamp>,
    seen: Option<i64>,
) -> (StoreAction<L>, CheckOutcome<L>) {
    let stamp = stamp.into();
    let record = record.filter(|r| r.belongs_to(query));
    let later_denial = record
        .as_ref()
        .filter(|r| {
            r.denied
                .as_ref()
                .is_some_and(|d| d.at > now || seen != Some(d.at))
        })
        .and_then(Record::denial);
    match online {
        Ok(Verdict::Accepted(_)) if later_denial.is_some() => {
            let outcome = later_denial
                .map_or(CheckOutcome::Unverified(Error::NotYetVerified), |d| {
                    CheckOutcome::Denied(d)
                });
            (StoreAction::Keep, outcome)
        }
        Ok(Verdict::Accepted(license)) => {
            let fresh = verified(record, query, now, policy, &license, stamp);
            let given = fresh
                .good
                .as_ref()
                .map_or(fresh.latest_seen, |g| g.verified_at);
            // How old the answer was when it arrived (its `Age`), not how far behind the
            // record's clock it is: in signed mode that clock never moves back, and a fresh
            // grant after a clock set back still licenses online.
            let old = stamp.age.max(0);
            if old > policy.grace_secs() {
                return (StoreAction::Keep, too_old(old, stamp.age));
            }
            let outcome = CheckOutcome::Licensed {
                source: Source::Online,
                license: Box::new(license),
                grace_remaining: None,
                verified_at: given,
            };
            (StoreAction::Write(Box::new(fresh)), outcome)
        }
        Ok(Verdict::Denied(mut denial)) => {
            denial.previously_valid = was_valid(record.as_ref());
            let r = tombstoned(record, query, now, &denial);
            (
                StoreAction::Write(Box::new(r)),
                CheckOutcome::Denied(denial),
            )
        }
        Err(err) if err.falls_back() => {
            let outcome = match fall_back(record.as_ref(), query, now, policy, err.clone()) {
                // A replay is answered by the cache only when the cache licenses on its own
                // (a relay's instance behind the one that signed the stored lease, say); else
                // the refusal names the replay, not what the record says.
                outcome if matches!(err, Error::Replayed { .. }) && !outcome.is_licensed() => {
                    CheckOutcome::Unverified(err.clone())
                }
                outcome => outcome,
            };
            let action = match (record, &err) {
                (record, Error::RateLimited { retry_after }) => {
                    let mut r = blocked(record, query, now, *retry_after);
                    if outcome.is_licensed() {
                        r.note_answer(now);
                    }
                    StoreAction::Write(Box::new(r))
                }
                (Some(mut r), _) if outcome.is_licensed() || now > r.latest_seen => {
                    if outcome.is_licensed() {
                        r.note_answer(now);
                    } else {
                        r.touch(now);
                    }
                    StoreAction::Write(Box::new(r))
                }
                _ => StoreAction::Keep,
            };
            (action, outcome)
        }
        Err(err) => (StoreAction::Keep, CheckOutcome::Unverified(err)),
    }
}

/// The answer to a grant older than the grace (its `Age` says so): `grace_expired`, as the
/// cache would answer had it been received when Polar gave it. Rare: kept out of line.
#[cold]
#[inline(never)]
fn too_old<L>(old: i64, age: i64) -> CheckOutcome<L> {
    let age = crate::decimal::digits(unsigned(age));
    CheckOutcome::Unverified(Error::GraceExpired {
        verified_seconds_ago: unsigned(old),
        cause: ["the answer is Polar's of ", &age, " s ago (its Age header)"].concat(),
    })
}

/// Whether a denial speaks about the key itself (whatever was asked with it), or only about
/// what a particular request asked (a condition, a benefit, a usage increment, a slot).
fn key_level<L>(denial: &Denial, query: &Query, record: Option<&Record<L>>) -> bool {
    match denial.reason {
        Reason::Inactive | Reason::Expired => true,
        // "Not found" names an unknown activation too: it is about the key only when no
        // activation was asked, or the one this machine remembers.
        Reason::NotFound => match &query.activation_id {
            None => true,
            Some(id) => record
                .and_then(|r| r.activation.as_ref())
                .is_some_and(|a| a.id.eq_ignore_ascii_case(id)),
        },
        _ => false,
    }
}

/// One truth per key (docs/interfaces.md §4): the record after an online `validate` answer to
/// `query` that was not a grace-aware check (a face's plain validate), or `None` to leave it.
///
/// A good answer refreshes the record when it was asked with the binding a check would use
/// (`check_query`); any other good answer only lifts a denial that spoke about the key. A
/// denial about the key (`inactive`, `expired`, `not_found`) is a tombstone whatever was
/// asked; a denial of what this request asked is one only when it is the check's own
/// question. A 429 blocks checks too.
pub fn observe_validate<L: LicenseData>(
    record: Option<Record<L>>,
    query: &Query,
    check_query: Option<&Query>,
    now: i64,
    policy: &GracePolicy,
    online: &Result<(Verdict<L>, Stamp), Error>,
) -> Option<Record<L>> {
    let record = record.filter(|r| r.belongs_to(query));
    let same_question = check_query.is_some_and(|c| {
        c.activation_id == query.activation_id
            && c.benefit_id == query.benefit_id
            && c.customer_id == query.customer_id
            && c.conditions == query.conditions
    });
    match online {
        Ok((Verdict::Accepted(license), date)) if same_question => {
            Some(verified(record, query, now, policy, license, *date))
        }
        Ok((Verdict::Accepted(_), _)) => {
            let mut r = record?;
            // (Never a denial received after this validate was asked: issue #53.) A "not
            // found" of the activation this record remembers is about that activation: a grant
            // that did not ask it (a plain validate of the key) says nothing of it, and lifting
            // it would let the deleted activation's old grant license again.
            let remembered = r.activation.as_ref().map(|a| a.id.as_str());
            let granted = r.good.as_ref().and_then(|g| g.activation_id.as_deref());
            let asked_ours = [remembered, granted].into_iter().flatten().all(|ours| {
                query
                    .activation_id
                    .as_deref()
                    .is_some_and(|id| ours.eq_ignore_ascii_case(id))
            });
            let lifted = r.denied.as_ref().is_some_and(|d| {
                d.at <= now
                    && match d.reason {
                        Reason::Inactive | Reason::Expired => true,
                        Reason::NotFound => asked_ours,
                        _ => false,
                    }
            });
            if lifted {
                r.denied = None;
            }
            r.touch(now);
            Some(r)
        }
        Ok((Verdict::Denied(denial), _)) => {
            if same_question || key_level(denial, query, record.as_ref()) {
                Some(tombstoned(record, query, now, denial))
            } else {
                let mut r = record?;
                r.touch(now);
                Some(r)
            }
        }
        Err(Error::RateLimited { retry_after }) => Some(blocked(record, query, now, *retry_after)),
        Err(_) => None,
    }
}

/// One truth per key: the record after an online `activate` answer (`Ok` only; an error
/// changes nothing but a 429 block). A good activation is a verdict (docs/interfaces.md §4): it
/// remembers the activation and starts the grace like a good validate of it, bound to
/// `query` (the new activation id and the conditions it was made with). A denial about the
/// key is a tombstone; `activation_limit` and `activations_not_supported` say nothing about
/// the key's validity and leave the verdict as it was.
pub fn observe_activate<A: ActivationData>(
    record: Option<Record<A::License>>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
    online: &Result<(Verdict<A>, Stamp), Error>,
    remember: Option<StoredActivation>,
) -> Option<Record<A::License>> {
    let record = record.filter(|r| r.belongs_to(query));
    match online {
        Ok((Verdict::Accepted(read), date)) => {
            let license = read.validated();
            let mut r = verified(record, query, now, policy, &license, *date);
            r.activation = remember;
            Some(r)
        }
        Ok((Verdict::Denied(denial), _)) if key_level(denial, query, record.as_ref()) => {
            Some(tombstoned(record, query, now, denial))
        }
        Ok((Verdict::Denied(_), _)) => {
            let mut r = record?;
            r.touch(now);
            Some(r)
        }
        Err(Error::RateLimited { retry_after }) => Some(blocked(record, query, now, *retry_after)),
        Err(_) => None,
    }
}

// Where `http_date` was: `polar_license::grace::http_date` keeps working.
pub use crate::proto::http_date;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #63 item 5: a question a face refused is built by the core, unverified with
    /// the face's reason (the C face's validate of a label, for one).
    #[test]
    fn a_refused_question_is_unverified_with_its_reason() {
        let refused: CheckOutcome = CheckOutcome::refused(Error::invalid("label", "unused"));
        assert!(!refused.is_licensed());
        assert_eq!(refused.reason(), Some(Reason::InvalidInput));
        assert_eq!(refused.kind(), "error");
        assert_eq!(refused.source(), None);
        assert_eq!(
            refused,
            CheckOutcome::Unverified(Error::invalid("label", "unused"))
        );
    }

    #[test]
    fn default_policy_is_the_contract() {
        let p = GracePolicy::default();
        assert_eq!(p.revalidate_after.as_secs(), 3600);
        assert_eq!(p.grace_period.as_secs(), 604_800);
        assert_eq!(p.clock_tolerance.as_secs(), 600);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn bad_policies_are_invalid_input() {
        let zero = GracePolicy {
            grace_period: Duration::ZERO,
            ..GracePolicy::default()
        };
        assert_eq!(
            zero.validate().map_err(|e| e.reason()),
            Err(Reason::InvalidInput)
        );
        let tol = GracePolicy {
            clock_tolerance: Duration::from_secs(8 * 86_400),
            ..GracePolicy::default()
        };
        assert!(tol.validate().is_err());
        let reval = GracePolicy {
            revalidate_after: Duration::from_secs(8 * 86_400),
            ..GracePolicy::default()
        };
        assert!(reval.validate().is_err());
    }

    #[test]
    fn a_reports_grace_end_is_never_past_the_lease_it_carries() {
        let policy = GracePolicy::default();
        let licensed = CheckReport::<()>::of(CheckOutcome::Licensed {
            source: Source::Cache,
            license: Box::new(()),
            grace_remaining: None,
            verified_at: 1_000,
        });
        let end = 1_000 + 604_800;
        assert_eq!(licensed.grace_ends_at(&policy), Some(end));
        let lease = |expires_at| LeaseWindow {
            kid: "k1".to_string(),
            not_before: 0,
            expires_at,
            facts: crate::lease::SignedFacts::for_tests(None, None, 0),
        };
        let short = CheckReport {
            lease: Some(lease(5_000)),
            ..licensed.clone()
        };
        assert_eq!(short.grace_ends_at(&policy), Some(5_000));
        let long = CheckReport {
            lease: Some(lease(end + 1)),
            ..licensed
        };
        assert_eq!(long.grace_ends_at(&policy), Some(end));
        let offline = CheckReport::<()> {
            lease: Some(lease(5_000)),
            ..CheckReport::of(CheckOutcome::Unverified(Error::Offline {
                timeout: false,
                detail: String::new(),
            }))
        };
        assert_eq!(offline.grace_ends_at(&policy), None);
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("yesterday"), None);
    }
}
