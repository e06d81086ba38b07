//! One key's entries in a store ([`Slot`]), opened ([`Opened`]: the trusted record and what
//! the next write needs) and sealed again ([`seal`], [`cached_writes`], how a write is kept:
//! [`Keep`]). Pure: no IO, no clock. The machines of [`crate::flow`] open and write slots
//! through these; the sealed format itself is [`crate::cache`]'s.

use crate::cache::{self, MacKey, Untrusted};
use crate::grace::{self, GracePolicy, LicenseData, Query, Record, StoredActivation};
use crate::key::Key;
use crate::model::ValidatedLicenseKey;

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
        let name = cache::slot_name(&origin, organization_id, key.expose());
        Slot {
            ledger: cache::ledger_name(&name),
            ask: [name.as_str(), "-ask"].concat(),
            clock: cache::clock_name(&name),
            mac: MacKey::for_slot(
                key.expose(),
                organization_id,
                install_secret,
                &origin,
                seal,
                app_secret,
            ),
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
    /// The activation the next check validates (see [`CacheStatus::activation`](crate::CacheStatus::activation)).
    pub remembered: Option<StoredActivation>,
    /// The stored record, not trusted, held an activation that cannot be read (its own seal
    /// fails), or cannot be told not to have held one: "activate first" would take a second
    /// slot (`cache_error` from the check's first phase, `check_request`). A record that plainly
    /// held none (a bare key's verdict, read under another machine's seal) is not this.
    pub(crate) activation_lost: bool,
    /// The highest sequence number known for the slot.
    seq: u64,
    /// A trusted ledger exists (else a write puts the ledger first).
    ledger: bool,
    /// The face keeps clock notes ([`Opened::with_clock`]).
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
            activation_lost: false,
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
    // Read through its seals only: the record with the record's, the activation with its own.
    let sealed = cache::Sealed::new(bytes);
    match sealed.open_as::<L>(&slot.mac) {
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
        opened.remembered = sealed.activation_as::<L>(&slot.mac);
        opened.activation_lost = opened.untrusted.is_some()
            && opened.remembered.is_none()
            && !sealed.held_no_activation();
    }
    opened
}

impl<L> Opened<L> {
    /// [`open`]ed, for a face that keeps clock notes: `clock` is what the store holds in the
    /// slot's [`Slot::clock`]. A note sealed for the trusted record (same key, same sequence
    /// number) adds to it: its later `latest_seen`, its count of answers at a clock that did
    /// not move. It can only make the record stricter (a later clock, more counted answers); a
    /// missing, torn or foreign note changes nothing, and the next cached answer is then
    /// written durably.
    pub(crate) fn with_clock(mut self, clock: Option<&[u8]>, slot: &Slot) -> Opened<L> {
        self.notes = true;
        let Some(r) = self.record.as_mut() else {
            return self;
        };
        self.durable_seen = r.latest_seen;
        let note = clock.and_then(|bytes| cache::decode_clock(bytes, &slot.mac).ok());
        if let Some(note) = note.filter(|n| n.seq == r.seq && n.latest_seen >= r.latest_seen) {
            if note.latest_seen > r.latest_seen {
                r.latest_seen = note.latest_seen;
                r.stalled = note.stalled;
            } else {
                r.stalled = r.stalled.max(note.stalled);
            }
            self.noted = true;
        }
        self
    }
}

/// How a write must be kept by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Atomic and durable: `Store::save`.
    Durable,
    /// Atomic; a power cut may bring back the slot's previous bytes: `Store::save_revertible`
    /// (a cached answer's ledger, when the slot already has a trusted one).
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

/// Whether a cached answer that rewrites the slot's record as `write` may be written as a clock
/// note only (see [`cached_writes`]): a face that keeps clock notes, whose note of this record
/// was read, with only the clock moved by less than [`note_span`] past what the record itself
/// says, and no held clock stopped.
pub(crate) fn noted_enough<L>(opened: &Opened<L>, write: &Record<L>, policy: &GracePolicy) -> bool {
    opened.notes
        && opened.noted
        && write.latest_seen.saturating_sub(opened.durable_seen) < note_span(policy)
        && write.stalled < grace::MAX_STALLED
}

/// The writes that record a cached answer, in order: `write` is the record a
/// `Begin::Cached` (the check's first phase) carries and `clock_only` what it said.
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

/// Whether a cached answer's write (the record of the check's first phase's `Begin::Cached`, sealed
/// by [`seal`]) may store its ledger, the last write, so that a power cut can bring the ledger's
/// previous version back: when the slot already has a trusted ledger, which [`seal`] then writes
/// after the record. The record itself is stored durably first, so the ledger coming back is the
/// one just below it, which still trusts it ([`open`] takes a record at or above its ledger), and
/// the record put back in its place is the same verdict one answer earlier: at most one counted
/// answer is lost, which a power cut before the write would have lost too. Verdicts (online
/// answers, denials, activations) keep both writes durable: a ledger that came back below a denial
/// would trust the grant before it.
pub fn cached_ledger_may_revert<L>(opened: &Opened<L>) -> bool {
    opened.ledger
}

/// A record written after an answer about the remembered activation keeps remembering it,
/// also when it was recovered from an untrusted record.
pub(crate) fn keep_remembered<L>(
    mut record: Record<L>,
    opened: &Opened<L>,
    query: &Query,
) -> Record<L> {
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
