//! The flows the machines of [`crate::flow`] fold with, private to the core (issue #53): every
//! decision between a slot's bytes and Polar's answer, written once. Pure: no IO, no clock.
//!
//! No shell calls these: a shell (the native blocking `Licensing` that the C ABI, the command
//! line and the Tauri plugin use, the wasm `AsyncLicensing`, the npm package's engine) drives a
//! machine ([`crate::flow::check::Check`], [`crate::flow::update::Update`]) and does the IO it
//! wants, and reads a slot as [`crate::flow`] opens it (`open_slot`, `status_of`; the npm
//! engine's `status` takes this module's `status` through `flow`'s re-export). The machines
//! also check the input and bind the request before any slot is wanted, and keep or forget the
//! remembered key as their last step. The machine calls this module:
//!
//! - opening a slot's bytes (`open`, `open_with_clock`; signed mode's `gate_lease`) and sealing
//!   a record into it (`seal`, `cached_writes`);
//! - a check's phases, so that no lock is held while Polar is asked: under the slot's lock
//!   `begin` answers from the cache, refuses, or asks; without it `while_asked` answers from the
//!   cache when another check of the key is asking; under the lock again, with the slot read
//!   anew, `finish` folds the answer into the record as it is now;
//! - what an update's answer makes of the record (`validated`, `activated`, `deactivated`)
//!   and how its request is bound to this machine (`bound_validate`, `bound_activation`);
//! - signed mode's hold on an online grant (`held`, `held_activation`, `fresh_grant`, the
//!   lease kept with `with_lease`);
//! - what `status` reports of an opened slot (`status`).
//!
//! The public way in (`polar_license::session`) is deprecated; the slot's types are re-exported
//! by [`crate::flow`], and the repository's tests and forgers take what they need from the
//! hidden `polar_license::testing`.

use crate::cache::{self, MacKey, Untrusted};
use crate::error::{Error, Verdict};
use crate::fingerprint::MACHINE_CONDITION;
use crate::grace::{
    self, ActivationData, CheckOutcome, GracePolicy, LicenseData, Plan, Query, Record, Source,
    StoreAction, StoredActivation,
};
use crate::grace::{GoodVerdict, LeaseGate, LeaseWindow};
use crate::key::Key;
use crate::lease::{self, LeaseExpect, RelayKeys};
use crate::metadata::{MetaValue, Metadata};
use crate::model::ValidatedLicenseKey;
use crate::proto::{ActivateRequest, Api, Expect, HttpRequest, Stamp, ValidateRequest};
use crate::reason::Reason;
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

/// One key's entries in a store, and the key that seals them.
#[derive(Clone, PartialEq, Eq)]
pub struct Slot {
    /// The record's slot.
    pub name: String,
    /// The ledger's slot (the highest sequence number written).
    pub ledger: String,
    /// The slot whose lock is held while a check asks Polar.
    pub ask: String,
    /// The record's clock note ([`cache::ClockNote`]: what cached answers close to the
    /// record's clock added to it).
    pub clock: String,
    /// The seal.
    pub mac: MacKey,
    /// The server's origin the record is bound to.
    pub origin: String,
}

impl Slot {
    /// The slot of `key` for a server and organization. The record is bound to the server's
    /// origin (scheme, host and port of `base_url`: another server never shares a record,
    /// while a base URL whose path is wrong still finds the good record and answers from it
    /// when Polar's routes are not there). The seal comes from the key, the organization, the
    /// origin, the install secret, the machine's identity (`seal`) and the app's secret, each
    /// framed with its length so no two inputs collide.
    pub fn new(
        base_url: &str,
        organization_id: &str,
        key: &Key,
        install_secret: &[u8],
        seal: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> Slot {
        let origin = crate::proto::origin(base_url);
        let mut extra = Vec::new();
        for part in [Some(origin.as_bytes()), seal.map(str::as_bytes), app_secret] {
            let part = part.unwrap_or_default();
            extra.extend_from_slice(&(part.len() as u64).to_be_bytes());
            extra.extend_from_slice(part);
        }
        let name = cache::slot_name(&origin, organization_id, key.expose());
        Slot {
            ledger: cache::ledger_name(&name),
            ask: [name.as_str(), "-ask"].concat(),
            clock: cache::clock_name(&name),
            mac: MacKey::derive(key.expose(), organization_id, install_secret, Some(&extra)),
            origin: origin.to_string(),
            name,
        }
    }
}

/// A key's stored state, opened: the trusted record (if any) and what the next write needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened<L = ValidatedLicenseKey> {
    /// The trusted record, bound to this origin, organization and key, not older than its
    /// ledger.
    pub record: Option<Record<L>>,
    /// Why the stored record (present) is not used.
    pub untrusted: Option<Untrusted>,
    /// The activation the next check validates (see [`CacheStatus::activation`]).
    pub remembered: Option<StoredActivation>,
    /// The highest sequence number known for the slot.
    seq: u64,
    /// A trusted ledger exists (else a write puts the ledger first).
    ledger: bool,
    /// The face keeps clock notes ([`open_with_clock`]).
    notes: bool,
    /// A clock note of the trusted record was read: the next cached answer may be a note.
    noted: bool,
    /// The trusted record's `latest_seen` as stored in the record itself, before its clock
    /// note added to it: what a note-only answer is measured from.
    durable_seen: i64,
}

impl<L> Default for Opened<L> {
    fn default() -> Self {
        Opened {
            record: None,
            untrusted: None,
            remembered: None,
            seq: 0,
            ledger: false,
            notes: false,
            noted: false,
            durable_seen: 0,
        }
    }
}

/// Opens a key's stored record and ledger.
pub fn open<L: LicenseData>(
    record: Option<&[u8]>,
    ledger: Option<&[u8]>,
    slot: &Slot,
    organization_id: &str,
    key: &Key,
) -> Opened<L> {
    let ledger_seq = ledger.and_then(|b| cache::decode_ledger(b, &slot.mac).ok());
    let mut opened = Opened {
        seq: ledger_seq.unwrap_or(0),
        ledger: ledger_seq.is_some(),
        ..Opened::default()
    };
    let Some(bytes) = record else {
        return opened;
    };
    match cache::decode_as::<L>(bytes, &slot.mac) {
        Ok(r) if !(r.is_for(organization_id, key) && r.origin == slot.origin) => {
            opened.untrusted = Some(Untrusted::BadMac);
        }
        Ok(r) if ledger_seq.is_some_and(|seq| r.seq >= seq) => {
            opened.seq = opened.seq.max(r.seq);
            opened.remembered = r.activation.clone();
            opened.record = Some(r);
        }
        Ok(r) => {
            opened.seq = opened.seq.max(r.seq);
            opened.untrusted = Some(Untrusted::Replayed);
        }
        Err(why) => opened.untrusted = Some(why),
    }
    if opened.record.is_none() {
        opened.remembered = cache::peek_activation_as::<L>(bytes);
    }
    opened
}

/// [`open`], for a face that keeps clock notes: `clock` is what the store holds in the slot's
/// [`Slot::clock`]. A note sealed for the trusted record (same key, same sequence number) adds
/// to it: its later `latest_seen`, its count of answers at a clock that did not move. It can
/// only make the record stricter (a later clock, more counted answers); a missing, torn or
/// foreign note changes nothing, and the next cached answer is then written durably.
pub fn open_with_clock<L: LicenseData>(
    record: Option<&[u8]>,
    ledger: Option<&[u8]>,
    clock: Option<&[u8]>,
    slot: &Slot,
    organization_id: &str,
    key: &Key,
) -> Opened<L> {
    let mut opened = open(record, ledger, slot, organization_id, key);
    opened.notes = true;
    let Some(r) = opened.record.as_mut() else {
        return opened;
    };
    opened.durable_seen = r.latest_seen;
    let note = clock.and_then(|bytes| cache::decode_clock(bytes, &slot.mac).ok());
    if let Some(note) = note.filter(|n| n.seq == r.seq && n.latest_seen >= r.latest_seen) {
        if note.latest_seen > r.latest_seen {
            r.latest_seen = note.latest_seen;
            r.stalled = note.stalled;
        } else {
            r.stalled = r.stalled.max(note.stalled);
        }
        opened.noted = true;
    }
    opened
}

/// How a write must be kept by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Atomic and durable: `Store::save`.
    Durable,
    /// Atomic; a power cut may bring back the slot's previous bytes: `Store::save_revertible`
    /// ([`cached_ledger_may_revert`]).
    Revertible,
    /// Neither atomic nor durable: `Store::save_volatile`. Only clock notes, which a crash may
    /// lose or tear (then they are no note, and the next cached answer is written durably).
    Volatile,
}

/// How far (seconds) a cached answer's clock may be past its record's own `latest_seen` and
/// still be written as a clock note only: a tenth of the clock tolerance (a minute by
/// default; none when the tolerance is zero). A note lost in a crash can therefore set the
/// record's clock back by less than this, never more.
pub fn note_span(policy: &GracePolicy) -> i64 {
    policy.tolerance_secs() / 10
}

/// The writes that record a cached answer, in order: `write` is the record a
/// [`Begin::Cached`] carries and `clock_only` what it said.
///
/// With `clock_only` (a face that keeps clock notes, whose note of this record was read, and
/// an answer within [`note_span`] of the record's own clock that does not stop a held clock):
/// the clock note alone, kept [`Keep::Volatile`]: no fsync, no rename. Otherwise the record
/// and its ledger as [`seal`] orders them (the ledger [`Keep::Revertible`] when
/// [`cached_ledger_may_revert`]), then, for a face that keeps notes, a note of the record just
/// written, so that the next answer can be a note.
pub fn cached_writes<L: LicenseData>(
    opened: &Opened<L>,
    write: Record<L>,
    clock_only: bool,
    slot: &Slot,
) -> Vec<(String, Vec<u8>, Keep)> {
    let note = |seq: u64, r: &Record<L>| {
        let note = cache::ClockNote {
            seq,
            latest_seen: r.latest_seen,
            stalled: r.stalled,
        };
        (
            slot.clock.clone(),
            cache::encode_clock(&note, &slot.mac),
            Keep::Volatile,
        )
    };
    if clock_only && opened.notes {
        if let Some(seq) = opened.record.as_ref().map(|r| r.seq) {
            return vec![note(seq, &write)];
        }
    }
    let clock = opened
        .notes
        .then(|| note(opened.seq.saturating_add(1), &write));
    let revertible = cached_ledger_may_revert(opened);
    let mut writes: Vec<_> = seal(opened, write, slot)
        .into_iter()
        .map(|(name, bytes)| {
            let keep = if revertible && name == slot.ledger {
                Keep::Revertible
            } else {
                Keep::Durable
            };
            (name, bytes, keep)
        })
        .collect();
    writes.extend(clock);
    writes
}

/// The writes that store `record` in the slot, in order: the record and then its ledger, or
/// the ledger first when there is none yet (so a crash between the two never leaves a record
/// without a ledger, nor a ledger behind an older record that was trusted).
pub fn seal<L: LicenseData>(
    opened: &Opened<L>,
    mut record: Record<L>,
    slot: &Slot,
) -> Vec<(String, Vec<u8>)> {
    record.origin.clone_from(&slot.origin);
    record.seq = opened.seq.saturating_add(1);
    let ledger = (
        slot.ledger.clone(),
        cache::encode_ledger(record.seq, &slot.mac),
    );
    let record = (slot.name.clone(), cache::encode_as(&record, &slot.mac));
    if opened.ledger {
        vec![record, ledger]
    } else {
        vec![ledger, record]
    }
}

/// Whether a cached answer's write (a [`Begin::Cached`] record sealed by [`seal`]) may store
/// its ledger, the last write, so that a power cut can bring the ledger's previous version
/// back: when the slot already has a trusted ledger, which [`seal`] then writes after the
/// record. The record itself is stored durably first, so the ledger coming back is the one
/// just below it, which still trusts it ([`open`] takes a record at or above its ledger), and
/// the record put back in its place is the same verdict one answer earlier: at most one
/// counted answer is lost, which a power cut before the write would have lost too. Verdicts
/// (online answers, denials, activations) keep both writes durable: a ledger that came back
/// below a denial would trust the grant before it.
pub fn cached_ledger_may_revert<L>(opened: &Opened<L>) -> bool {
    opened.ledger
}

/// Signed mode (`keys` not empty): what the opened record's lease allows, set on the record
/// ([`LeaseGate`]). A lease that does not verify for the record's own verdict (organization,
/// key, activation, benefit, the machine the activation is bound to) is no lease: the record
/// keeps its history but never licenses from the cache. Unsigned mode changes nothing.
///
/// `memo` keeps the last verification (the lease and everything it was checked against): a
/// cached answer rewrites the record but not its lease, and an Ed25519 verification costs
/// more than the rest of a cached check. `ed25519` checks the signature ([`lease::Ed25519`]);
/// an answer it does not have yet ([`lease::Checked::Pending`]) is no lease, and not kept.
pub fn gate_lease<L: LicenseData>(
    opened: &mut Opened<L>,
    keys: &RelayKeys,
    organization_id: &str,
    key: &Key,
    memo: &LeaseMemo,
    ed25519: &dyn lease::Ed25519,
) {
    if keys.is_empty() {
        return;
    }
    if let Some(record) = opened.record.as_mut() {
        let window = record
            .good
            .as_ref()
            .and_then(|good| lease_window(good, keys, organization_id, key, memo, ed25519));
        record.lease_gate = LeaseGate::Signed(window);
        // The stored denial's signature (issue #62): believed only as verified here, for the
        // record's own verdict's binding; the clock and nonce were held online.
        let verified = match (record.good.as_ref(), record.denied.as_ref()) {
            (Some(good), Some(mark)) => mark.signed.as_deref().and_then(|token| {
                let expect = lease::DenialExpect {
                    organization_id,
                    key,
                    activation_id: good.activation_id.as_deref(),
                    machine: machine_of(&good.conditions),
                };
                lease::verify_denial_with(token, keys, &expect, ed25519).ok()
            }),
            _ => None,
        };
        if let Some(mark) = record.denied.as_mut() {
            mark.verified = verified.filter(|s| s.reason() == mark.reason);
        }
    }
}

/// The last lease verified by one client, with what it was checked against (see
/// [`gate_lease`]). The relay keys are a client's own, fixed when it is built.
#[derive(Debug, Default)]
pub struct LeaseMemo(std::sync::Mutex<Option<(String, Option<LeaseWindow>)>>);

impl LeaseMemo {
    /// The window kept for `id`, else `verify`'s (kept unless the verification is pending).
    fn get_or(
        &self,
        id: String,
        verify: impl FnOnce() -> Result<LeaseWindow, lease::NoLease>,
    ) -> Option<LeaseWindow> {
        let mut memo = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, window)) = memo.as_ref() {
            if *known == id {
                return window.clone();
            }
        }
        let window = match verify() {
            Ok(window) => Some(window),
            Err(lease::NoLease::Pending) => return None,
            Err(_) => None,
        };
        *memo = Some((id, window.clone()));
        window
    }
}

/// The machine a verdict was asked for: the `machine_fingerprint` condition it was sent with
/// (what the relay binds the lease to), if any.
fn machine_of(conditions: &Metadata) -> Option<&str> {
    match conditions.get(MACHINE_CONDITION) {
        Some(MetaValue::Str(fp)) => Some(fp),
        _ => None,
    }
}

fn lease_window<L: LicenseData>(
    good: &GoodVerdict<L>,
    keys: &RelayKeys,
    organization_id: &str,
    key: &Key,
    memo: &LeaseMemo,
    ed25519: &dyn lease::Ed25519,
) -> Option<LeaseWindow> {
    let token = good.lease.as_deref()?;
    let benefit_id = good.license.benefit_id();
    let machine = machine_of(&good.conditions);
    let activation_id = good.activation_id.as_deref();
    // Everything the verification depends on, each part length-prefixed.
    let mut id = String::new();
    for part in [
        token,
        organization_id,
        key.expose(),
        activation_id.unwrap_or("\u{0}none"),
        benefit_id,
        machine.unwrap_or("\u{0}none"),
    ] {
        crate::decimal::push_digits(&mut id, part.len() as u64);
        id.push(':');
        id.push_str(part);
    }
    memo.get_or(id, || {
        let expect = LeaseExpect {
            organization_id,
            key,
            activation_id,
            benefit_id: Some(benefit_id),
            machine,
        };
        let lease = lease::verify_signed_with(token, keys, &expect, ed25519)?;
        Ok(LeaseWindow {
            not_before: lease.claims.not_before.max(lease.claims.issued_at),
            expires_at: lease.claims.expires_at,
            facts: lease.facts().clone(),
            kid: lease.kid,
        })
    })
}

/// What an online grant needs in signed mode: the request it answered.
#[derive(Debug, Clone, Copy)]
pub struct Granted<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The key.
    pub key: &'a Key,
    /// The activation the grant is about (the one validated, or the one just made).
    pub activation_id: Option<&'a str>,
    /// The conditions sent (the machine the lease must be bound to is among them).
    pub conditions: &'a Metadata,
    /// The nonce the request carried ([`lease::NONCE_HEADER`]), when it carried one: the
    /// lease must carry the same (contract §5, freshness).
    pub nonce: Option<&'a str>,
}

/// A lease that verified for an online grant, with the question it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldLease {
    token: String,
    activation_id: Option<String>,
    conditions: Metadata,
    issued_at: i64,
    window: LeaseWindow,
}

impl HeldLease {
    /// Its window, as the record that stores it is gated by ([`gate_lease`]).
    pub fn window(&self) -> &LeaseWindow {
        &self.window
    }

    /// When the relay issued it (its `iat`, the relay's clock: for a stored answer, when
    /// Polar gave it).
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
}

/// Signed mode: why an online grant held to `lease` is a replay given the record as it is
/// now, if it is one (contract §5, freshness): its lease was issued before the stored lease
/// (both the relay's clock), or before the stored denial by more than the clock tolerance
/// (the denial is dated by this machine's clock).
#[inline(never)]
pub fn replayed<L>(
    record: Option<&Record<L>>,
    lease: &HeldLease,
    policy: &GracePolicy,
) -> Option<Error> {
    let record = record?;
    let iat = lease.issued_at;
    if let Some(stored) = record.lease_gate.window() {
        if iat < stored.not_before {
            return Some(older(stored.not_before, iat, "the lease the cache holds"));
        }
    }
    let denied = record.denied.as_ref()?;
    (iat.saturating_add(policy.tolerance_secs()) < denied.at)
        .then(|| older(denied.at, iat, "the denial the cache holds"))
}

/// [`replayed`]'s refusal: a lease issued `at - iat` seconds before what the cache holds.
#[cold]
fn older(at: i64, iat: i64, what: &str) -> Error {
    Error::Replayed {
        detail: [
            "signed mode: the grant's lease was issued ",
            &crate::decimal::digits(at.abs_diff(iat)),
            " s before ",
            what,
            ": an old answer replayed, refused",
        ]
        .concat(),
    }
}

/// Signed mode: an online grant counts only with a lease from the relay that verifies for it
/// at `now` (its signature checked by `ed25519`). Gives the lease to store with the verdict
/// (`Ok(None)` in unsigned mode, where the lease, if any, is not read); a grant without one is
/// `protocol_error` (not a verdict: the cache's own lease may still answer).
pub fn hold_lease<L: LicenseData>(
    keys: &RelayKeys,
    granted: &Granted<'_>,
    license: &L,
    token: Option<&str>,
    now: i64,
    policy: &GracePolicy,
    ed25519: &dyn lease::Ed25519,
) -> Result<Option<HeldLease>, Error> {
    if keys.is_empty() {
        return Ok(None);
    }
    let expect = LeaseExpect {
        organization_id: granted.organization_id,
        key: granted.key,
        activation_id: granted.activation_id,
        benefit_id: Some(license.benefit_id()),
        machine: machine_of(granted.conditions),
    };
    let tolerance = i64::try_from(policy.clock_tolerance.as_secs()).unwrap_or(i64::MAX);
    let why = match token {
        None => lease::NoLease::Missing,
        Some(token) => match lease::verify_with(token, keys, &expect, now, tolerance, ed25519) {
            Ok(lease) => {
                fresh(granted.nonce, lease.claims.nonce.as_deref())?;
                let window = LeaseWindow {
                    not_before: lease.claims.not_before.max(lease.claims.issued_at),
                    expires_at: lease.claims.expires_at,
                    facts: lease.facts().clone(),
                    kid: lease.kid.clone(),
                };
                return Ok(Some(HeldLease {
                    token: token.to_string(),
                    activation_id: granted.activation_id.map(str::to_string),
                    conditions: granted.conditions.clone(),
                    issued_at: lease.claims.issued_at,
                    window,
                }));
            }
            Err(why) => why,
        },
    };
    if why == lease::NoLease::UnknownKid {
        return Err(Error::Protocol {
            status: Some(200),
            detail: [
                crate::error::RELAY_KEY_MISMATCH,
                ": the app's relay key does not match the relay's signing key; give the app \
                 the public key the relay prints (`polar-license relay keygen`)",
            ]
            .concat(),
        });
    }
    Err(Error::Protocol {
        status: Some(200),
        detail: [
            "signed mode: the grant came without a lease that verifies (",
            why.as_str(),
            "); is the base URL the seller's relay, and are its keys among the relay keys?",
        ]
        .concat(),
    })
}

/// Signed mode: the relay's signed denial of an online denial ([`lease::DENIAL_HEADER`]), held
/// to its request (issue #62): it verifies for the key, organization, activation and machine
/// asked about, carries this request's nonce, names the reason the core read from Polar's
/// answer, and is not dated ahead of the clock. `None` otherwise (and in unsigned mode, and
/// for a request sent without a nonce): such a denial still denies, and widens nothing.
pub fn held_denial<L>(
    keys: &RelayKeys,
    online: &Result<(Verdict<L>, Stamp), Error>,
    token: Option<&str>,
    granted: &Granted<'_>,
    now: i64,
    policy: &GracePolicy,
    ed25519: &dyn lease::Ed25519,
) -> Option<(String, lease::SignedDenial)> {
    let Ok((Verdict::Denied(denial), _)) = online else {
        return None;
    };
    if keys.is_empty() {
        return None;
    }
    let (token, nonce) = (token?, granted.nonce?);
    let expect = lease::DenialExpect {
        organization_id: granted.organization_id,
        key: granted.key,
        activation_id: granted.activation_id,
        machine: machine_of(granted.conditions),
    };
    let signed = lease::verify_denial_with(token, keys, &expect, ed25519).ok()?;
    let ahead = now.saturating_add(policy.tolerance_secs());
    (signed.nonce() == nonce && signed.reason() == denial.reason && signed.at() <= ahead)
        .then(|| (token.to_string(), signed))
}

/// Signed mode: the record a check writes, its denial carrying the relay's signed denial of
/// this request (`denial`, from [`held_denial`]) when the denial written is the one it signs
/// (`denied`: the reason of the check's own denial). Anything else is written as it is.
pub fn with_denial<L>(
    mut record: Record<L>,
    denied: Option<Reason>,
    denial: Option<&(String, lease::SignedDenial)>,
) -> Record<L> {
    if let (Some(mark), Some(reason), Some((token, signed))) =
        (record.denied.as_mut(), denied, denial)
    {
        if mark.reason == reason && signed.reason() == reason {
            mark.signed = Some(token.clone());
            mark.verified = Some(signed.clone());
        }
    }
    record
}

/// A lease's `nonce` claim held to the nonce its request carried (contract §5, freshness): the
/// same, or the grant is another request's answer replayed (`replayed`); none at all is a
/// relay older than the claim, refused in signed mode (`protocol_error`, naming the update).
/// A request sent without a nonce (a face with no randomness for one) asks for none.
fn fresh(sent: Option<&str>, signed: Option<&str>) -> Result<(), Error> {
    match (sent, signed) {
        (None, _) => Ok(()),
        (Some(sent), Some(signed)) if sent == signed => Ok(()),
        (Some(_), Some(_)) => Err(Error::Replayed {
            detail: "signed mode: the grant's lease answers another request (its nonce is not \
                     this request's): an old answer replayed, refused"
                .to_string(),
        }),
        (Some(_), None) => Err(Error::Protocol {
            status: Some(200),
            detail: "signed mode: the relay signed no nonce into the lease (a relay older than \
                     the freshness claim, contract §5): update the relay; its grants are \
                     refused until then"
                .to_string(),
        }),
    }
}

/// Signed mode, under the slot's lock with the record read anew: an online grant held to its
/// lease is refused as a replay when the lease is older than what the record knows
/// ([`replayed`]: the answer becomes `replayed`, the lease is dropped, and the record keeps
/// its denial and its clock); else it is dated from the lease's issue time (its `Date` is
/// the relay's signed `iat`, with the `Age` it came with), never the unsigned `Date`.
/// Unsigned mode (no lease held) changes nothing.
pub fn fresh_grant<T, L: LicenseData>(
    record: Option<&Record<L>>,
    online: Result<(Verdict<T>, Stamp), Error>,
    lease: Option<HeldLease>,
    policy: &GracePolicy,
) -> Held<T> {
    match (online, lease) {
        (Ok((Verdict::Accepted(v), stamp)), Some(lease)) => {
            if let Some(e) = replayed(record, &lease, policy) {
                return (Err(e), None);
            }
            let stamp = Stamp {
                date: Some(lease.issued_at.saturating_add(stamp.age.max(0))),
                age: stamp.age,
            };
            (Ok((Verdict::Accepted(v), stamp)), Some(lease))
        }
        (online, lease) => (online, lease),
    }
}

/// [`hold_lease`] for an activation Polar just made: the same answer, except that a grant
/// without a lease that verifies names the activation. It took one of the license's slots on
/// Polar, and the client remembers nothing of it (an unsigned grant is no verdict in signed
/// mode), so the error is the only place its id survives: deactivate it to free the slot.
pub fn hold_activation_lease<L: LicenseData>(
    keys: &RelayKeys,
    granted: &Granted<'_>,
    license: &L,
    token: Option<&str>,
    now: i64,
    policy: &GracePolicy,
    ed25519: &dyn lease::Ed25519,
) -> Result<Option<HeldLease>, Error> {
    hold_lease(keys, granted, license, token, now, policy, ed25519).map_err(|e| {
        match (e, granted.activation_id) {
            (Error::Protocol { status, detail }, Some(id)) => Error::Protocol {
                status,
                detail: [
                    &detail,
                    "; Polar activated this key as ",
                    id,
                    ", which takes one of its activation slots: free it by deactivating ",
                    id,
                ]
                .concat(),
            },
            (e, _) => e,
        }
    })
}

/// An online answer, its stamp, and the relay's lease header when there was one.
pub type Leased<T> = ((Verdict<T>, Stamp), Option<String>);

/// An online answer without its lease header, and the lease held for it.
pub type Held<T> = (Result<(Verdict<T>, Stamp), Error>, Option<HeldLease>);

/// What signed mode holds an online answer with: the client's relay keys (empty: unsigned),
/// its policy (the clock tolerance) and its Ed25519 verification.
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    /// The relay keys.
    pub keys: &'a RelayKeys,
    /// The grace policy.
    pub policy: &'a GracePolicy,
    /// The signature check.
    pub ed25519: &'a dyn lease::Ed25519,
}

/// Signed mode: an online grant stands only with a lease that verifies for it (else it is
/// `protocol_error`, see [`hold_lease`]); the lease to store with it. Every shell's validate.
pub fn held<L: LicenseData>(
    signing: Signing<'_>,
    online: Result<Leased<L>, Error>,
    granted: &Granted<'_>,
    now: i64,
) -> Held<L> {
    let Signing {
        keys,
        policy,
        ed25519,
    } = signing;
    match online {
        Ok(((Verdict::Accepted(license), stamp), token)) => {
            match hold_lease(
                keys,
                granted,
                &license,
                token.as_deref(),
                now,
                policy,
                ed25519,
            ) {
                Ok(lease) => (Ok((Verdict::Accepted(license), stamp)), lease),
                Err(e) => (Err(e), None),
            }
        }
        Ok((answer, _)) => (Ok(answer), None),
        Err(e) => (Err(e), None),
    }
}

/// [`held`] for an activation: the lease is for the activation just made
/// ([`hold_activation_lease`]). Every shell's activate.
pub fn held_activation<A: ActivationData>(
    signing: Signing<'_>,
    online: Result<Leased<A>, Error>,
    organization_id: &str,
    req: &ActivateRequest,
    key: &Key,
    nonce: Option<&str>,
    now: i64,
) -> Held<A> {
    let Signing {
        keys,
        policy,
        ed25519,
    } = signing;
    match online {
        Ok(((Verdict::Accepted(read), stamp), token)) => {
            let granted = Granted {
                organization_id,
                key,
                activation_id: Some(read.activation_id()),
                conditions: &req.conditions,
                nonce,
            };
            let lease = hold_activation_lease(
                keys,
                &granted,
                &read.validated(),
                token.as_deref(),
                now,
                policy,
                ed25519,
            );
            match lease {
                Ok(lease) => (Ok((Verdict::Accepted(read), stamp)), lease),
                Err(e) => (Err(e), None),
            }
        }
        Ok((answer, _)) => (Ok(answer), None),
        Err(e) => (Err(e), None),
    }
}

/// Puts an online grant's lease into the record written after it, when the record's good
/// verdict is that grant's (a validate of another question leaves the record's verdict, and
/// its lease, as they were), and gates the record with it as [`gate_lease`] would once it is
/// read again: the record's `lease_gate` is the slot's lease as the call leaves it.
pub fn with_lease<L>(mut record: Record<L>, lease: Option<HeldLease>) -> Record<L> {
    if let (Some(good), Some(lease)) = (record.good.as_mut(), lease) {
        if good.activation_id == lease.activation_id && good.conditions == lease.conditions {
            good.lease = Some(lease.token);
            record.lease_gate = LeaseGate::Signed(Some(lease.window));
        }
    }
    record
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

/// The validate request a plain `check` sends: the remembered activation with its conditions,
/// the machine fingerprint replaced by this machine's current one (so an activation carried to
/// another machine fails with `conditions_mismatch`).
pub fn remembered_request(
    key: &Key,
    remembered: Option<&StoredActivation>,
    machine: Option<&str>,
) -> ValidateRequest {
    let mut req = ValidateRequest::new(key.clone());
    if let Some(a) = remembered {
        req.activation_id = Some(a.id.clone());
        // The stored conditions, the fingerprint this machine's; when binding was turned off
        // since, without it (the server will answer conditions_mismatch). Built by inserting
        // only (no map removal: the npm package's wasm carries no B-tree removal code).
        for (name, value) in &a.conditions {
            let value = match (name.as_str(), machine) {
                (MACHINE_CONDITION, Some(fp)) => MetaValue::from(fp),
                (MACHINE_CONDITION, None) => continue,
                _ => value.clone(),
            };
            req.conditions.insert(name.clone(), value);
        }
    }
    req
}

/// The request of a check: the explicit one, or a plain check's ([`remembered_request`]);
/// when the client requires an activation and none is remembered, the `invalid_input` error
/// naming `activation_id`. One rule for `check` and `check_in_background`.
pub fn check_request<L>(
    key: &Key,
    explicit: Option<&ValidateRequest>,
    opened: &Opened<L>,
    machine: Option<&str>,
    require_activation: bool,
) -> Result<ValidateRequest, Error> {
    if let Some(req) = explicit {
        return Ok(req.clone());
    }
    let req = remembered_request(key, opened.remembered.as_ref(), machine);
    if require_activation && req.activation_id.is_none() {
        return Err(Error::invalid(
            "activation_id",
            "no activation remembered on this machine: activate first",
        ));
    }
    Ok(req)
}

/// A validate request with this machine's fingerprint among its conditions when it names an
/// activation and activations are machine-bound (a condition the app set itself is kept):
/// every command of one install sends the same conditions as `activate` stored.
pub fn bound_validate(req: &ValidateRequest, machine: Option<&str>) -> ValidateRequest {
    let mut req = req.clone();
    if let (Some(fp), Some(_)) = (machine, &req.activation_id) {
        req.conditions
            .entry(MACHINE_CONDITION.to_string())
            .or_insert_with(|| MetaValue::from(fp));
    }
    req
}

/// The activate request with the machine fingerprint added to its conditions (when bound),
/// and its key.
pub fn bound_activation(
    req: &ActivateRequest,
    machine: Option<&str>,
) -> Result<(ActivateRequest, Key), Error> {
    let mut req = req.clone();
    if let Some(fp) = machine {
        req.conditions
            .entry(MACHINE_CONDITION.to_string())
            .or_insert_with(|| MetaValue::from(fp));
    }
    let key = req
        .key
        .clone()
        .ok_or_else(|| Error::invalid("key", "is required"))?;
    Ok((req, key))
}

/// The error when Polar activated but the cache could not remember it: it names the new
/// activation id, so nothing is lost.
pub fn unremembered<A: ActivationData>(read: &A, e: &Error) -> Error {
    Error::Cache {
        detail: [
            "activated as ",
            read.activation_id(),
            ", but the cache could not remember it: ",
            &e.text(),
        ]
        .concat(),
    }
}

/// Says on a denial whether this install had a good verdict for the key before
/// ([`crate::error::Denial::previously_valid`]).
fn mark_known<L, T>(opened: &Opened<L>, online: &mut Result<(Verdict<T>, Stamp), Error>) {
    if let Ok((Verdict::Denied(denial), _)) = online {
        denial.previously_valid = grace::was_valid(opened.record.as_ref());
    }
}

/// Says on a deactivate's denial whether this install had a good verdict for the key before
/// and, for a `not_found`, that the activation is what is gone: Polar answers the same bare
/// 404 for an unknown key and an unknown activation, and a key this install knows is good is
/// not the unknown one ([`crate::error::Denial::activation_gone`]).
pub fn deactivation_denied<L>(opened: &Opened<L>, answer: &mut Result<Verdict<()>, Error>) {
    if let Ok(Verdict::Denied(denial)) = answer {
        denial.previously_valid = grace::was_valid(opened.record.as_ref());
        denial.activation_gone = denial.previously_valid && denial.reason == Reason::NotFound;
    }
}

/// The record to write after an online activate answer, if any (one truth per key: a good
/// activation is a verdict and starts the grace; a denial about the key is a tombstone). A
/// denial is marked with whether the key was valid here before.
pub fn activated<A: ActivationData>(
    opened: &Opened<A::License>,
    organization_id: &str,
    req: &ActivateRequest,
    key: &Key,
    now: i64,
    policy: &GracePolicy,
    online: &mut Result<(Verdict<A>, Stamp), Error>,
) -> Option<Record<A::License>> {
    mark_known(opened, online);
    let mut query = Query::new(organization_id, key.clone());
    let remember = match online {
        Ok((Verdict::Accepted(read), _)) => {
            query.activation_id = Some(read.activation_id().to_string());
            query.conditions = req.conditions.clone();
            Some(StoredActivation {
                id: read.activation_id().to_string(),
                label: read.label().to_string(),
                conditions: req.conditions.clone(),
                created_at: now,
            })
        }
        _ => None,
    };
    grace::observe_activate(opened.record.clone(), &query, now, policy, online, remember)
}

/// The record to write after an online validate answer that was no check (a face's plain
/// `validate`), if any: see [`grace::observe_validate`]. A denial is marked with whether the
/// key was valid here before.
pub fn validated<L: LicenseData>(
    opened: &Opened<L>,
    organization_id: &str,
    req: &ValidateRequest,
    machine: Option<&str>,
    now: i64,
    policy: &GracePolicy,
    online: &mut Result<(Verdict<L>, Stamp), Error>,
) -> Option<Record<L>> {
    mark_known(opened, online);
    let query = Query::from_request(organization_id, req).ok()?;
    let key = req.key.as_ref()?;
    let plain = remembered_request(key, opened.remembered.as_ref(), machine);
    let check = Query::from_request(organization_id, &plain).ok();
    let record = grace::observe_validate(
        opened.record.clone(),
        &query,
        check.as_ref(),
        now,
        policy,
        online,
    );
    record.map(|r| keep_remembered(r, opened, &query))
}

/// The activation a deactivate frees: the one given, else the remembered one.
pub fn deactivation_target<L>(given: Option<&str>, opened: &Opened<L>) -> Result<String, Error> {
    match (given, opened.remembered.as_ref()) {
        (Some(id), _) => Ok(id.to_string()),
        (None, Some(a)) => Ok(a.id.clone()),
        (None, None) => Err(Error::invalid(
            "activation_id",
            "none given and no activation remembered for this key",
        )),
    }
}

/// Whether a deactivate's answer says the activation is gone on the server (freed now, or
/// not found: freed already).
fn gone(verdict: &Verdict<()>) -> bool {
    match verdict {
        Verdict::Accepted(()) => true,
        Verdict::Denied(d) => d.reason == Reason::NotFound,
    }
}

/// The trusted record with activation `id` (and a verdict bound to it) forgotten.
fn forget_activation<L: LicenseData>(opened: &Opened<L>, id: &str) -> Option<Record<L>> {
    let mut record = opened.record.clone()?;
    let same = |other: &str| other.eq_ignore_ascii_case(id);
    if record.activation.as_ref().is_some_and(|a| same(&a.id)) {
        record.activation = None;
    }
    if record
        .good
        .as_ref()
        .is_some_and(|g| g.activation_id.as_deref().is_some_and(same))
    {
        record.good = None;
    }
    Some(record)
}

/// The record to write after a deactivate of `id` answered `verdict`, if any: once the
/// activation is gone on the server, it (and a verdict bound to it) is forgotten; when only an
/// untrusted record named it, a new empty record takes that one's place (so no later check
/// validates an activation that is gone).
pub fn deactivated<L: LicenseData>(
    opened: &Opened<L>,
    organization_id: &str,
    key: &Key,
    now: i64,
    id: &str,
    verdict: &Verdict<()>,
) -> Option<Record<L>> {
    if !gone(verdict) {
        return None;
    }
    let named = opened
        .remembered
        .as_ref()
        .is_some_and(|a| a.id.eq_ignore_ascii_case(id));
    match &opened.record {
        Some(_) => forget_activation(opened, id),
        None if named => Some(Record::new(organization_id, key, now)),
        None => None,
    }
}

/// Whether a deactivation of `id` that Polar answered with `verdict` ends the remembered key
/// (with remembering on): only when it freed the activation the cache remembers. Freeing
/// another one (the activation a later activate replaced, still taking a slot) leaves the
/// key remembered, and the current activation checked at the next launch.
pub fn ends_remembered_key<L>(opened: &Opened<L>, id: &str, verdict: &Verdict<()>) -> bool {
    matches!(verdict, Verdict::Accepted(()))
        && opened
            .remembered
            .as_ref()
            .is_some_and(|a| a.id.eq_ignore_ascii_case(id))
}

/// A check that sends a request: what it asks, and when.
#[derive(Debug, Clone)]
pub struct Asking {
    /// What the check is about.
    pub query: Query,
    /// The validate request to send.
    pub http: HttpRequest,
    /// The request, to hold Polar's 200 to it.
    request: ValidateRequest,
    /// The clock when the check began.
    pub now: i64,
    /// When the denial the record held as the check began was received (`None`: none). A
    /// denial other than this one was received during the check, and its grant does not
    /// lift it ([`grace::settle_begun`]).
    seen_denial: Option<i64>,
}

impl Asking {
    /// What Polar's 200 must match.
    pub fn expect<'a>(&'a self, organization_id: &'a str) -> Option<Expect<'a>> {
        Expect::validate(organization_id, &self.request, self.now)
    }
}

/// Phase 1 of a check, once the slot is opened (under its lock).
pub enum Begin<L = ValidatedLicenseKey> {
    /// Answered without a request and without writing: bad input, or a running 429 block
    /// that the cache cannot answer.
    Done(CheckOutcome<L>),
    /// Licensed from the cache. Store `write` (the answer recorded) before answering; when
    /// that fails, the answer cannot be counted, so ask Polar instead ([`asking`], built only
    /// then: a cached answer never encodes a request), unless a 429 block forbids any
    /// request (`may_ask` is false).
    Cached {
        /// The answer.
        outcome: CheckOutcome<L>,
        /// The record with the answer noted.
        write: Box<Record<L>>,
        /// Whether Polar may be asked when the write fails.
        may_ask: bool,
        /// The answer may be recorded as a clock note alone ([`cached_writes`]).
        clock_only: bool,
    },
    /// Send the request.
    Ask(Box<Asking>),
}

/// Checks the request and asks the grace policy whether to send it.
pub fn begin<L: LicenseData>(
    api: &Api,
    opened: &Opened<L>,
    req: &ValidateRequest,
    now: i64,
    policy: &GracePolicy,
) -> Begin<L> {
    // Bad input is refused before the cache is consulted; the body is encoded only when
    // the plan sends it (a warm check answered from the cache never needs it).
    if let Err(e) = api.check_validate_request(req) {
        return Begin::Done(CheckOutcome::Unverified(e));
    }
    let query = match Query::from_request(api.organization_id(), req) {
        Ok(q) => q,
        Err(e) => return Begin::Done(CheckOutcome::Unverified(e)),
    };
    let record = opened.record.as_ref();
    match grace::plan(record, &query, now, policy) {
        Plan::Refuse(outcome) => Begin::Done(outcome),
        Plan::Cached(outcome) => {
            let Some(mut write) = record.cloned() else {
                return Begin::Done(outcome);
            };
            write.note_answer(now);
            let blocked = write.blocked_until.is_some_and(|until| now < until);
            // Only the clock moved, by less than a tenth of the tolerance past what the record
            // itself says, and no held clock is stopped: a note is enough (see `cached_writes`).
            let clock_only = opened.notes
                && opened.noted
                && write.latest_seen.saturating_sub(opened.durable_seen) < note_span(policy)
                && write.stalled < grace::MAX_STALLED;
            Begin::Cached {
                outcome,
                write: Box::new(write),
                may_ask: !blocked,
                clock_only,
            }
        }
        Plan::Ask => match asking_for(api, req, query, now) {
            Ok(mut asking) => {
                asking.seen_denial = record.and_then(|r| r.denied.as_ref()).map(|d| d.at);
                Begin::Ask(asking)
            }
            Err(outcome) => Begin::Done(outcome),
        },
    }
}

/// The request of a check of `req` that began at `now` (what [`begin`] checked): for a
/// [`Begin::Cached`] whose write failed, when `may_ask`. `None` when it cannot be made (the
/// cached answer is then given, the cache not refreshed).
pub fn asking(api: &Api, req: &ValidateRequest, now: i64) -> Option<Box<Asking>> {
    let query = Query::from_request(api.organization_id(), req).ok()?;
    asking_for::<()>(api, req, query, now).ok()
}

fn asking_for<L>(
    api: &Api,
    req: &ValidateRequest,
    query: Query,
    now: i64,
) -> Result<Box<Asking>, CheckOutcome<L>> {
    match api.validate_request(req) {
        Ok(http) => Ok(Box::new(Asking {
            query,
            http,
            request: req.clone(),
            now,
            seen_denial: None,
        })),
        Err(e) => Err(CheckOutcome::Unverified(e)),
    }
}

/// Phase 2, when another check of the key is asking Polar right now: the cache's answer
/// within the grace, at once, with the record that notes it (`None` when the cache cannot
/// license: then ask as well, rather than wait a whole timeout in turn).
pub fn while_asked<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
) -> Option<(CheckOutcome<L>, Record<L>)> {
    let busy = Error::Offline {
        timeout: false,
        detail: "another check of this key is asking Polar right now".to_string(),
    };
    let record = opened.record.as_ref();
    let outcome = grace::fall_back(record, &asking.query, asking.now, policy, busy);
    let mut write = record?.clone();
    if !outcome.is_licensed() {
        return None;
    }
    write.note_answer(asking.now);
    Some((outcome, write))
}

/// The best answer before a background revalidation ends: the cache's within the grace, the
/// tombstone's denial, else "not verified yet" (reason `not_yet_verified`). Every face.
pub fn pending<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
) -> CheckOutcome<L> {
    if let Some(denial) = opened.record.as_ref().and_then(Record::denial) {
        return CheckOutcome::Denied(denial);
    }
    let pending = Error::NotYetVerified;
    grace::fall_back(
        opened.record.as_ref(),
        &asking.query,
        asking.now,
        policy,
        pending,
    )
}

/// The end of a check: the answer, why it came from the cache, and what to store.
#[derive(Debug, Clone)]
pub struct Finished<L = ValidatedLicenseKey> {
    /// The answer.
    pub outcome: CheckOutcome<L>,
    /// For a cached answer after Polar could not be asked: what happened online.
    pub fallback: Option<Error>,
    /// The record to store, if any. When it carries a denial and cannot be stored, remove
    /// the stored record: a tombstone that cannot be written must not leave an old grant.
    pub write: Option<Record<L>>,
}

/// Phase 3 of a check: folds the online answer into the record as it is now (`opened`, read
/// again under the lock: another check's answer is folded in, never overwritten).
pub fn finish<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
    online: Result<(Verdict<L>, Stamp), Error>,
) -> Finished<L> {
    let (online, stamp) = match online {
        Ok((verdict, stamp)) => (Ok(verdict), stamp),
        Err(e) => (Err(e), Stamp::default()),
    };
    let cause = online.as_ref().err().filter(|e| e.falls_back()).cloned();
    let (action, outcome) = grace::settle_begun(
        opened.record.clone(),
        &asking.query,
        asking.now,
        policy,
        online,
        stamp,
        asking.seen_denial,
    );
    let fallback = match &outcome {
        CheckOutcome::Licensed {
            source: Source::Cache,
            ..
        } => cause,
        _ => None,
    };
    let write = match action {
        StoreAction::Keep => None,
        StoreAction::Write(record) => Some(keep_remembered(*record, opened, &asking.query)),
    };
    Finished {
        outcome,
        fallback,
        write,
    }
}

/// A record written after an answer about the remembered activation keeps remembering it,
/// also when it was recovered from an untrusted record.
fn keep_remembered<L>(mut record: Record<L>, opened: &Opened<L>, query: &Query) -> Record<L> {
    if record.activation.is_none() {
        record.activation = opened.remembered.clone().filter(|a| {
            query
                .activation_id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(&a.id))
        });
    }
    record
}

/// The answer of a check that could not use the cache at all, from an online answer.
pub fn online_only<L>(
    online: Result<Verdict<L>, Error>,
    cache_error: &Error,
    now: i64,
) -> CheckOutcome<L> {
    match online {
        Ok(Verdict::Accepted(license)) => CheckOutcome::Licensed {
            source: Source::Online,
            license: Box::new(license),
            grace_remaining: None,
            verified_at: now,
        },
        Ok(Verdict::Denied(denial)) => CheckOutcome::Denied(denial),
        Err(e) if e.falls_back() => CheckOutcome::Unverified(Error::Cache {
            detail: [
                cache_error.text(),
                "; and Polar could not be asked: ".to_string(),
                e.text(),
            ]
            .concat(),
        }),
        Err(e) => CheckOutcome::Unverified(e),
    }
}
