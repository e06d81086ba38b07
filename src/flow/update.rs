//! The machines of the calls that change what Polar knows, or ask it once: `validate`,
//! `activate` and `deactivate`, each followed by the key's record learning the answer (one
//! truth per key, contract §4). One machine, [`Update`], in three orders of steps:
//!
//! - **validate**: send the request; signed mode holds a grant to its lease; then, under the
//!   slot's lock, the slot read anew and the answer folded into its record
//!   (`answer::validated`), a denial that cannot be stored removing the record. The answer
//!   stands whatever the cache does; an input refused before sending is the answer alone.
//! - **activate**: the slot must be usable before a slot on Polar is taken; then the same as
//!   validate (`answer::activated`: a good activation is a verdict and starts the grace),
//!   with the lease for the activation just made.
//! - **deactivate**: under the slot's lock for the whole call (the activation it names is the
//!   record's), the target chosen (`answer::deactivation_target`), the request sent, the
//!   record told (`answer::deactivated`), and whether it ends the remembered key. When
//!   the slot cannot be had, an id given is deactivated online only ([`Update::deactivation`]).
//!
//! Each binds its request to this machine and checks its input from the context before any
//! slot is opened ([`Update::validate`], [`Update::activation`], [`Update::deactivation`]; the
//! request alone: [`Update::activation_request`], [`Update::validation_request`]), and its
//! answer carries the slot as it leaves it (signed mode: the lease's window), so no shell
//! reads the cache again after a call. The remembered key is the update's last step, once the
//! slot's lock is released, under the lock of the remembered key's own entry: a good
//! activation the record learned writes its sealed key ([`Update::remembering`]), a good
//! deactivation that ends the remembered key's activation removes it when, read under that
//! lock, the entry still holds this key ([`Update::forgetting_sealed`]): a key another process
//! remembered while the deactivate waited on Polar stays remembered.
//!
//! A shell drives it with the same loop as a check ([`super::check`]): [`Update::want`],
//! [`Update::give`], then the answer ([`Update::validated`], [`Update::activated`],
//! [`Update::deactivated`]).

use super::answer;
use super::check::Validated as License;
use super::ctx::{open_slot, Ctx};
use super::keystep::{KeyStep, KeyTail};
use super::step::{Given, Ledger, Left, Machine, Stored, Want};
use crate::error::{Error, Verdict};
use crate::grace::{CheckOutcome, LeaseWindow, Record, StoredActivation};
use crate::held::{self, Granted, HeldLease};
use crate::key::Key;
use crate::lease::LEASE_HEADER;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{
    parse_deactivate_for, ActivateRequest, DeactivateRequest, Expect, HttpRequest, HttpResponse,
    Stamp, ValidateRequest,
};
use crate::slot::{seal, Keep, Opened, Slot};
use std::collections::VecDeque;
use std::sync::Arc;

type Answer<T> = Result<(Verdict<T>, Stamp), Error>;

/// What the update is about, and what it learned.
enum Op<L: License> {
    Validate {
        req: ValidateRequest,
        online: Option<Answer<L>>,
    },
    Activate {
        req: ActivateRequest,
        online: Option<Answer<L::Activation>>,
    },
    Deactivate {
        given: Option<String>,
        id: Option<String>,
        online: Option<Result<Verdict<()>, Error>>,
        ends_remembered: bool,
    },
}

enum Phase {
    /// An activate's read of the slot before it sends: a slot whose bytes cannot be read
    /// takes no slot on Polar (the answer is that error, nothing sent).
    Peek,
    Send,
    Lock,
    Read,
    Write(VecDeque<(String, Vec<u8>)>, bool),
    Forget,
    Unlock,
    /// The remembered key's step ([`super::keystep`]).
    Key,
    Done,
}

/// One validate, activate or deactivate of one key, over the license representation `L` (the
/// Rust clients' typed model by default; the npm engine's schema reading).
pub struct Update<L: License = ValidatedLicenseKey> {
    op: Op<L>,
    key: Key,
    slot: Result<Arc<Slot>, Error>,
    now: i64,
    request: Option<HttpRequest>,
    lease: Option<HeldLease>,
    /// A deactivate's slot as read under the lock it holds for the whole call.
    opened: Option<Arc<Opened<L>>>,
    /// The record could not learn the answer (or, for a deactivate, why it failed).
    cache_error: Option<Error>,
    phase: Phase,
    /// The shell answered a want with another kind of answer already (its release of the
    /// lock is then asked for once more, never again).
    misanswered: bool,
    /// The given that met a signature the verifier has yet to answer ([`Want::Verify`]): taken
    /// anew once it has.
    verifying: Option<Box<Given>>,
    /// Signed mode: the nonce the request carries ([`Ctx::nonce`]); its grant's lease must
    /// carry the same.
    nonce: Option<String>,
    /// The slot as the update leaves it so far (its answer's lease), and as it was before
    /// the write being made (left so when the write fails).
    left: Left,
    before: Left,
    /// A deactivate sent online only: why the slot could not be used (the record is not
    /// told).
    unusable: Option<Error>,
    /// The remembered key's step: an activate's write of its sealed key, or a deactivate's
    /// removal of it ([`Update::remembering`], [`Update::forgetting_sealed`]); or why the key
    /// could not be sealed. Boxed behind a trait: a shell that never remembers never links it.
    tail: Option<Result<Box<dyn KeyTail>, Error>>,
    /// An activate: the activation the record remembered when the new one was folded in (the
    /// one it replaces, which still takes a slot on Polar).
    replaced: Option<String>,
    /// A validate following a rotated key ([`Update::carrying`]): the activation the old
    /// string's record remembered, remembered by the new string's record when Polar grants
    /// it.
    carried: Option<StoredActivation>,
    /// The slot's ledger as last read or written: the compares of the update's writes.
    ledger: Ledger,
}

impl<L: License> std::fmt::Debug for Update<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What a validate came to: Polar's answer (or why there is none), and whether the key's
/// record could learn it.
#[derive(Debug)]
pub struct Validated<L = ValidatedLicenseKey> {
    /// The answer.
    pub online: Result<Verdict<L>, Error>,
    /// The cache could not learn it.
    pub cache_error: Option<Error>,
    /// Signed mode: the window of the lease the key's record holds once the answer is
    /// folded in, when it verifies (an addition: no shell reads the cache again for it).
    pub lease: Option<LeaseWindow>,
    /// The clock reading the validate was made at (the `now` its machine was given): when a
    /// grant was verified (an addition).
    pub verified_at: i64,
}

impl<L> Validated<L> {
    /// The answer as a check's outcome, built by the core ([`CheckOutcome`]: a grant licensed
    /// online, verified at [`Validated::verified_at`]), for a face that reports a validate as
    /// it reports a check. The cache's part (`cache_error`, `lease`) is the face's to take
    /// first.
    pub fn outcome(self) -> CheckOutcome<L> {
        CheckOutcome::online(self.online, self.verified_at)
    }

    /// The values the relay signed into the lease of an answer that licenses (issue #68), as
    /// [`CheckReport::entitlements`](crate::grace::CheckReport::entitlements) reads a check's:
    /// `None` when the answer does not license or the lease carries none.
    pub fn entitlements(&self) -> Option<&crate::lease::EntitlementClaims> {
        match self.online {
            Ok(Verdict::Accepted(_)) => self.lease.as_ref()?.facts.entitlements(),
            _ => None,
        }
    }
}

/// What an activate came to: Polar's answer (or why there is none), and whether the key's
/// record could remember it (when not, the error names the activation).
#[derive(Debug)]
pub struct Activated<A = LicenseKeyActivationRead> {
    /// The answer.
    pub online: Result<Verdict<A>, Error>,
    /// The cache could not remember it.
    pub cache_error: Option<Error>,
    /// Signed mode: the window of the lease the key's record holds once the answer is
    /// folded in, when it verifies (an addition: no shell reads the cache again for it).
    pub lease: Option<LeaseWindow>,
    /// A good activation the record learned: the activation the record remembered before it,
    /// when another (Polar does not de-duplicate: it still takes a slot until it is
    /// deactivated). An addition: no shell reads the cache before the machine for it.
    pub replaced_activation_id: Option<String>,
}

impl<A> Activated<A> {
    /// An activate that ended before it began with `e` as its answer (the input, or the
    /// machine's identity, refused): nothing sent, the cache untouched.
    pub fn failed(e: Error) -> Activated<A> {
        Activated::answered(Err(e))
    }

    /// An activate answered `online` without a cache step (an air-gapped line's denial).
    pub(crate) fn answered(online: Result<Verdict<A>, Error>) -> Activated<A> {
        Activated {
            online,
            cache_error: None,
            lease: None,
            replaced_activation_id: None,
        }
    }
}

impl<A: crate::grace::ActivationData> Activated<A> {
    /// When Polar activated but the cache could not remember it: the `cache_error` an
    /// activate answers, naming the new activation id so nothing is lost (`None` otherwise).
    pub fn unremembered(&self) -> Option<Error> {
        match (&self.online, &self.cache_error) {
            (Ok(Verdict::Accepted(read)), Some(e)) => Some(answer::unremembered(read, e)),
            _ => None,
        }
    }
}

/// What a deactivate came to.
#[derive(Debug)]
pub struct Deactivated {
    /// Polar's answer; an error also when the record could not be told (the slot is freed).
    pub answer: Result<Verdict<()>, Error>,
    /// It freed the activation the cache remembers: a remembered key ends with it.
    pub ends_remembered_key: bool,
    /// The activation it was about (the one given, else the remembered one), once known.
    pub activation_id: Option<String>,
    /// The slot could not be used, and the activation given was deactivated online only
    /// ([`Update::deactivation`]): the answer is Polar's, and the cache was not told (an
    /// addition).
    pub cache_error: Option<Error>,
}

impl<L: License> Update<L> {
    /// A validate of `req`, bound to this machine (`answer::bound_validate` with the
    /// context's fingerprint: a request the shell bound already is the same), at the clock
    /// reading `now`. A request refused as input opens no slot.
    pub fn validate(
        ctx: &Ctx<'_, L>,
        req: ValidateRequest,
        slot: impl FnOnce(&Key) -> Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        match Update::checked_validate(ctx, &req) {
            Ok((req, key, http)) => {
                let mut update = Update::new(key, now, Op::Validate { req, online: None });
                update.slot = slot(&update.key);
                update.bind(ctx, http);
                update
            }
            Err(e) => {
                let key = req.key.clone().unwrap_or_else(|| Key::from(String::new()));
                let mut update = Update::new(key, now, Op::Validate { req, online: None });
                update.fail(e);
                update
            }
        }
    }

    /// [`Update::validation_request`] with the HTTP request it makes.
    fn checked_validate(
        ctx: &Ctx<'_, L>,
        req: &ValidateRequest,
    ) -> Result<(ValidateRequest, Key, HttpRequest), Error> {
        let req = answer::bound_validate(req, ctx.machine);
        let key = req
            .key
            .clone()
            .ok_or_else(|| Error::invalid("key", "is required"))?;
        let http = ctx.api.validate_request(&req)?;
        Ok((req, key, http))
    }

    /// An activate of `req` with its key and slot as the shell had them, at `now` (see
    /// [`Update::activation`], which binds the request and opens the slot itself, in order).
    /// The request is bound to this machine here too (a request the shell bound already is
    /// the same).
    pub fn activate(
        ctx: &Ctx<'_, L>,
        req: ActivateRequest,
        key: Key,
        slot: Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        let req = match answer::bound_activation(&req, ctx.machine) {
            Ok((req, _)) => req,
            Err(_) => req,
        };
        let request = ctx.api.activate_request(&req);
        let mut update = Update::new(key, now, Op::Activate { req, online: None });
        match (request, slot) {
            (Ok(http), Ok(slot)) => {
                update.slot = Ok(slot);
                update.bind(ctx, http);
                // The slot read first: one that cannot be read sends nothing.
                update.phase = Phase::Peek;
            }
            (Err(e), _) | (_, Err(e)) => update.fail(e),
        }
        update
    }

    /// An activate of `req` as every shell makes it, at `now`: bound to this machine (the
    /// context's fingerprint among its conditions), its input checked (a key is required),
    /// then the key's slot had (`slot`): a request refused as input opens no slot, and when
    /// the slot cannot be had nothing is sent (no slot on Polar is taken for an activation
    /// no one remembers).
    pub fn activation(
        ctx: &Ctx<'_, L>,
        req: &ActivateRequest,
        slot: impl FnOnce(&Key) -> Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        match Update::activation_request(ctx, req) {
            Ok((req, key)) => {
                let slot = slot(&key);
                Update::activate(ctx, req, key, slot, now)
            }
            Err(e) => {
                let key = req.key.clone().unwrap_or_else(|| Key::from(String::new()));
                let op = Op::Activate {
                    req: req.clone(),
                    online: None,
                };
                let mut update = Update::new(key, now, op);
                update.fail(e);
                update
            }
        }
    }

    /// The request an activate of `req` sends, and its key: bound to this machine (the
    /// context's fingerprint among its conditions) and checked as input (a key is required,
    /// the conditions and metadata within Polar's limits). [`Update::activation`] starts from
    /// it; the air gap's request line carries it; a shell whose slot is had asynchronously
    /// asks it which key's slot the machine will want (an error: none, the input is refused).
    pub fn activation_request(
        ctx: &Ctx<'_, L>,
        req: &ActivateRequest,
    ) -> Result<(ActivateRequest, Key), Error> {
        let (req, key) = answer::bound_activation(req, ctx.machine)?;
        ctx.api.activate_request(&req)?;
        Ok((req, key))
    }

    /// The request a validate of `req` sends, and its key: bound to this machine (the
    /// context's fingerprint among its conditions when it names an activation) and checked as
    /// input, as [`Update::validate`] makes it before it asks for the key's slot (an error:
    /// refused as input, no slot is wanted).
    pub fn validation_request(
        ctx: &Ctx<'_, L>,
        req: &ValidateRequest,
    ) -> Result<(ValidateRequest, Key), Error> {
        Update::checked_validate(ctx, req).map(|(req, key, _)| (req, key))
    }

    /// A deactivate as every shell makes it, at `now`: of `activation_id`, or of the
    /// activation the record remembers. The key (and the id given) are checked as input
    /// first, with no slot opened; then the key's slot is had (`slot`). When it cannot be (or
    /// its bytes cannot be read), an explicit id is deactivated online only (it needs no cache: the answer is Polar's,
    /// and [`Deactivated::cache_error`] says the cache was not told); with none given, the
    /// slot's error is the answer.
    pub fn deactivation(
        ctx: &Ctx<'_, L>,
        key: Key,
        activation_id: Option<String>,
        slot: impl FnOnce(&Key) -> Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        let checked = match activation_id.as_deref() {
            Some(id) => ctx
                .api
                .deactivate_request(&DeactivateRequest::new(key.clone(), id))
                .map(Some),
            None => crate::metadata::check_key(key.expose()).map(|()| None),
        };
        let http = match checked {
            Ok(http) => http,
            Err(e) => return Update::deactivate(key, activation_id, Err(e), now),
        };
        match (slot(&key), http) {
            (Err(e), Some(http)) => {
                let op = Op::Deactivate {
                    id: activation_id.clone(),
                    given: activation_id,
                    online: None,
                    ends_remembered: false,
                };
                let mut update = Update::new(key, now, op);
                update.unusable = Some(e);
                update.request = Some(http);
                update.phase = Phase::Send;
                update
            }
            (slot, _) => Update::deactivate(key, activation_id, slot, now),
        }
    }

    /// A deactivate of `activation_id`, or of the activation the record remembers, in `slot`
    /// as the shell had it (see [`Update::deactivation`], which checks the input first and
    /// deactivates a given id online only when the slot cannot be had).
    pub fn deactivate(
        key: Key,
        activation_id: Option<String>,
        slot: Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        let op = Op::Deactivate {
            given: activation_id,
            id: None,
            online: None,
            ends_remembered: false,
        };
        let mut update = Update::new(key, now, op);
        match slot {
            Ok(slot) => {
                update.slot = Ok(slot);
                update.phase = Phase::Lock;
            }
            Err(e) => update.fail(e),
        }
        update
    }

    fn new(key: Key, now: i64, op: Op<L>) -> Update<L> {
        Update {
            op,
            key,
            slot: Err(Error::Cache {
                detail: "no slot".to_string(),
            }),
            now,
            request: None,
            lease: None,
            opened: None,
            cache_error: None,
            phase: Phase::Send,
            misanswered: false,
            ledger: Ledger::default(),
            verifying: None,
            nonce: None,
            left: Left::default(),
            before: Left::default(),
            unusable: None,
            tail: None,
            replaced: None,
            carried: None,
        }
    }

    /// A validate that follows a rotated key (issue #64 item 4; see
    /// [`crate::portal::follow_request`]): the new string's record, when it remembers no
    /// activation of its own, remembers `activation` (the old string's, which rotation keeps)
    /// once Polar grants the request that names it, so later checks of the new string
    /// validate the same activation. A request naming another activation remembers none.
    pub fn carrying(mut self, activation: StoredActivation) -> Update<L> {
        self.carried = Some(activation);
        self
    }

    /// A good activation also remembers its key, as the last step of the update: `entry` is
    /// the sealed key's name and bytes where the remembered key is kept (or why the key could
    /// not be sealed), written durably once the record has learned the activation and the
    /// slot's lock is released. Not when Polar denied, nor when the record could not learn
    /// it. A write that fails is the update's `cache_error` (the activation stands:
    /// [`Activated::unremembered`] names it).
    pub fn remembering(mut self, entry: Result<(String, Vec<u8>), Error>) -> Update<L> {
        self.tail =
            Some(entry.map(|(name, sealed)| {
                Box::new(KeyStep::remember(name, sealed)) as Box<dyn KeyTail>
            }));
        self
    }

    /// A deactivation that ends the remembered key ([`Deactivated::ends_remembered_key`])
    /// also forgets it, as the last step of the update: `entry` is the name of the remembered
    /// key's entry when that key is this update's (`None`: another key, or none, is
    /// remembered). Removed once the record is told and the slot's lock released, under the
    /// entry's lock, without comparing: the shell read whose key it holds before the request
    /// was sent, and a key remembered meanwhile is removed with it. Prefer
    /// [`Update::forgetting_sealed`], which compares when it removes. The slot is freed
    /// whatever the removal does.
    pub fn forgetting(mut self, entry: Option<String>) -> Update<L> {
        self.tail = entry.map(|name| Ok(Box::new(KeyStep::forget(name, None)) as Box<dyn KeyTail>));
        self
    }

    /// A deactivation that ends the remembered key ([`Deactivated::ends_remembered_key`])
    /// also forgets it, as the last step of the update, when it is this update's key:
    /// `entry` is the remembered key's entry and this key sealed as remembering it would
    /// store it (the seal is deterministic: [`crate::keyseal`]). Once the record is told and
    /// the slot's lock released, the entry is locked and read, and removed only when its
    /// bytes are these, so a key another process remembered while this deactivate waited on
    /// Polar stays remembered. `None`: nothing to forget (remembering is off, or the key
    /// cannot be sealed). The slot is freed whatever the removal does.
    pub fn forgetting_sealed(mut self, entry: Option<(String, Vec<u8>)>) -> Update<L> {
        self.tail = entry.map(|(name, sealed)| {
            Ok(Box::new(KeyStep::forget(name, Some(sealed))) as Box<dyn KeyTail>)
        });
        self
    }

    /// Signed mode: a fresh nonce for the request about to be sent, kept to hold its grant's
    /// lease to (contract §5, freshness).
    fn bind(&mut self, ctx: &Ctx<'_, L>, mut http: HttpRequest) {
        self.nonce = ctx.nonce();
        super::ctx::with_nonce(&mut http, self.nonce.as_deref());
        self.request = Some(http);
    }

    /// Ends at once with `e` as the answer.
    fn fail(&mut self, e: Error) {
        match &mut self.op {
            Op::Validate { online, .. } => *online = Some(Err(e)),
            Op::Activate { online, .. } => *online = Some(Err(e)),
            Op::Deactivate { online, .. } => *online = Some(Err(e)),
        }
        self.phase = Phase::Done;
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// What Polar answered, once it did ([`super::Machine::heard`]).
    pub fn heard(&self) -> Option<super::Heard<'_>> {
        match &self.op {
            Op::Validate { online, .. } => online
                .as_ref()
                .map(|a| super::step::heard("validate", a.as_ref().map(|(v, _)| v))),
            Op::Activate { online, .. } => online
                .as_ref()
                .map(|a| super::step::heard("activate", a.as_ref().map(|(v, _)| v))),
            Op::Deactivate { online, .. } => online
                .as_ref()
                .map(|a| super::step::heard("deactivate", a.as_ref())),
        }
    }

    /// What the update wants next.
    pub fn want(&self) -> Want<'_> {
        if self.verifying.is_some() {
            return Want::Verify;
        }
        let slot = self.slot.as_deref().ok();
        match (&self.phase, slot) {
            (Phase::Peek, Some(slot)) => Want::Read(slot),
            (Phase::Send, _) => match &self.request {
                Some(request) => Want::Send(request),
                None => Want::Done,
            },
            (Phase::Lock, Some(slot)) => Want::Lock(&slot.name),
            (Phase::Read, Some(slot)) => Want::Read(slot),
            (Phase::Write(writes, _), slot) => match writes.front() {
                Some((name, bytes)) => Want::Write {
                    name,
                    bytes,
                    keep: Keep::Durable,
                    compare: self.ledger.compare(slot, name),
                },
                None => Want::Done,
            },
            (Phase::Forget, Some(slot)) => Want::Remove(&slot.name),
            (Phase::Unlock, _) => Want::Unlock,
            (Phase::Key, _) if L::REMEMBERS_KEYS => match &self.tail {
                Some(Ok(tail)) => tail.want(),
                _ => Want::Done,
            },
            _ => Want::Done,
        }
    }

    /// Gives the update what happened in answer to its last [`Want`].
    ///
    /// With a verifier that answers later ([`crate::lease::Ed25519::defers`], signed mode): a
    /// given that met a signature the verifier has no answer for yet is not taken; the update
    /// keeps it and wants [`Want::Verify`], then takes it anew once [`Given::Verified`] (as a
    /// check does). Only two steps verify (Polar's answer held to its lease, and the slot
    /// opened under the lock), and each sets anew all it sets: taking the given again
    /// replaces what the first taking left.
    pub fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        if self.verifying.is_some() {
            // Until the verifier has answered, nothing else is taken.
            if matches!(given, Given::Verified) {
                if let Some(kept) = self.verifying.take() {
                    self.give(ctx, *kept);
                }
            }
            return;
        }
        let deferred = ctx.ed25519.defers() && !ctx.relay_keys.is_empty();
        // A copy of what a deferred signature may need again: Polar's response or the slot's
        // bytes (any other given there is no step's, and verifies nothing).
        let again = match (&self.phase, &given) {
            (Phase::Send, Given::Response(r)) if deferred => {
                Some((Phase::Send, Given::Response(r.clone())))
            }
            (Phase::Read, Given::Read(r)) if deferred => {
                Some((Phase::Read, Given::Read(r.clone())))
            }
            _ => None,
        };
        self.take(ctx, given);
        if let Some((phase, given)) = again {
            if ctx.ed25519.pending() {
                self.phase = phase;
                self.verifying = Some(Box::new(given));
            }
        }
    }

    /// [`Update::give`]'s step.
    fn take(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        let given = self.ledger.take(given);
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match (phase, given) {
            (Phase::Peek, Given::Read(Ok(_))) => Phase::Send,
            (Phase::Peek, Given::Read(Err(e))) => {
                self.fail(e);
                Phase::Done
            }
            (Phase::Send, Given::Response(response)) => self.answered(ctx, response),
            (Phase::Lock, Given::Locked(Ok(()))) => Phase::Read,
            (Phase::Lock, Given::Locked(Err(e))) => {
                self.unlearned(e);
                Phase::Done
            }
            (Phase::Read, Given::Read(Ok(stored))) => self.fold(ctx, stored),
            (Phase::Read, Given::Read(Err(e))) => {
                // A slot that cannot be read: an explicit id is deactivated online only (once
                // the lock is released), as when the slot cannot be had.
                match self.online_only(ctx) {
                    Some(http) => {
                        self.unusable = Some(e);
                        self.request = Some(http);
                        if let Op::Deactivate { given, id, .. } = &mut self.op {
                            id.clone_from(given);
                        }
                    }
                    None => self.unlearned(e),
                }
                Phase::Unlock
            }
            (Phase::Write(mut writes, forget), Given::Written(Ok(()))) => {
                if let Some((name, bytes)) = writes.pop_front() {
                    self.ledger.wrote(self.slot.as_deref().ok(), &name, &bytes);
                }
                if writes.is_empty() {
                    Phase::Unlock
                } else {
                    Phase::Write(writes, forget)
                }
            }
            (Phase::Write(_, forget), Given::Written(Err(e))) => {
                self.unlearned(e);
                self.left = std::mem::take(&mut self.before);
                // A record another writer stored meanwhile stays.
                if forget && !self.ledger.late() {
                    Phase::Forget
                } else {
                    Phase::Unlock
                }
            }
            (Phase::Forget, Given::Removed) => {
                self.left = Left::default();
                Phase::Unlock
            }
            (Phase::Unlock, Given::Unlocked) if self.unusable.is_some() => Phase::Send,
            (Phase::Unlock, Given::Unlocked) => self.last_step(),
            (Phase::Key, given) if L::REMEMBERS_KEYS => {
                let (error, phase) = match &mut self.tail {
                    Some(Ok(tail)) => {
                        let error = tail.take(given);
                        match tail.want() {
                            Want::Done => (error, Phase::Done),
                            _ => (error, Phase::Key),
                        }
                    }
                    _ => (None, Phase::Done),
                };
                if let Some(e) = error {
                    self.unlearned(e);
                }
                phase
            }
            (phase, given) => {
                self.unlearned(Error::Cache {
                    detail: ["the update's shell answered ", given.name()].concat(),
                });
                // Under the lock (or at its release, answered otherwise): asked to release it
                // again, once, so one wrong answer leaves no lock held and a shell that
                // answers wrong again cannot keep the update asking.
                let again = !std::mem::replace(&mut self.misanswered, true);
                match phase {
                    Phase::Read | Phase::Write(..) | Phase::Forget | Phase::Unlock if again => {
                        Phase::Unlock
                    }
                    _ => Phase::Done,
                }
            }
        };
    }

    /// Once the slot's lock is released: the remembered key's step, when there is one (a
    /// good activation the record learned remembers its key; a good deactivation of the
    /// remembered key's activation forgets it), else done.
    fn last_step(&mut self) -> Phase {
        if self.cache_error.is_some() || !L::REMEMBERS_KEYS {
            return Phase::Done;
        }
        match &self.op {
            Op::Activate {
                online: Some(Ok((Verdict::Accepted(_), _))),
                ..
            } => match self.tail.take() {
                Some(Err(e)) => {
                    self.unlearned(e);
                    Phase::Done
                }
                Some(Ok(tail)) if tail.remembers() => self.begin_tail(tail),
                _ => Phase::Done,
            },
            Op::Deactivate {
                online: Some(Ok(_)),
                ends_remembered: true,
                ..
            } => match self.tail.take() {
                Some(Ok(tail)) if !tail.remembers() => self.begin_tail(tail),
                _ => Phase::Done,
            },
            _ => Phase::Done,
        }
    }

    /// Starts the remembered key's step.
    fn begin_tail(&mut self, mut tail: Box<dyn KeyTail>) -> Phase {
        tail.begin(self.slot.as_deref().ok());
        self.tail = Some(Ok(tail));
        Phase::Key
    }

    /// A deactivate of an explicit id, not sent yet: its request, to send online only (the
    /// slot could not be read). `None` for anything else.
    fn online_only(&self, ctx: &Ctx<'_, L>) -> Option<HttpRequest> {
        match &self.op {
            Op::Deactivate {
                given: Some(id),
                online: None,
                ..
            } if self.request.is_none() => ctx
                .api
                .deactivate_request(&DeactivateRequest::new(self.key.clone(), id.as_str()))
                .ok(),
            _ => None,
        }
    }

    /// The record could not learn the answer.
    fn unlearned(&mut self, e: Error) {
        if self.cache_error.is_none() {
            self.cache_error = Some(e);
        }
    }

    /// Polar's response read.
    fn answered(&mut self, ctx: &Ctx<'_, L>, response: Result<HttpResponse, Error>) -> Phase {
        let org = ctx.api.organization_id();
        let signing = ctx.signing();
        let now = self.now;
        match &mut self.op {
            Op::Validate { req, online } => {
                let expect = Expect::validate(org, req, now);
                let granted = Granted::validate(org, &self.key, req, self.nonce.as_deref());
                let read = read_answer(signing, response, &granted, now, |r| {
                    L::validate_answer(r, expect.as_ref())
                });
                let (answer, lease) = held::held(signing, read, &granted, now);
                let refused = matches!(answer, Err(Error::InvalidInput { .. }));
                *online = Some(answer);
                self.lease = lease;
                if refused || self.slot.is_err() {
                    if let Err(e) = &self.slot {
                        self.cache_error = Some(e.clone());
                    }
                    return Phase::Done;
                }
                Phase::Lock
            }
            Op::Activate { req, online } => {
                let expect = Expect::activate(org, req, now);
                let nonce = self.nonce.as_deref();
                let granted = Granted {
                    organization_id: org,
                    key: &self.key,
                    activation_id: None,
                    conditions: &req.conditions,
                    nonce,
                };
                // A refused activation says why the key stopped as validate's denial does.
                let read = read_answer(signing, response, &granted, now, |r| {
                    L::activate_answer(r, expect.as_ref())
                });
                let (answer, lease) =
                    held::held_activation(signing, read, org, req, &self.key, nonce, now);
                *online = Some(answer);
                self.lease = lease;
                Phase::Lock
            }
            Op::Deactivate {
                id: Some(id),
                online,
                ends_remembered,
                ..
            } => {
                let answer = response.and_then(|r| parse_deactivate_for(&r, Some(&self.key)));
                if self.unusable.is_some() {
                    // Sent online only: no lock is held, no record is told.
                    *online = Some(answer);
                    return Phase::Done;
                }
                let slot = self.slot.as_ref().map(Arc::clone);
                let (Some(opened), Ok(slot)) = (self.opened.take(), slot) else {
                    *online = Some(answer);
                    return Phase::Unlock;
                };
                let mut answer = answer;
                answer::deactivation_denied(&opened, &mut answer);
                let record = match &answer {
                    Ok(verdict) => {
                        *ends_remembered = answer::ends_remembered_key(&opened, id, verdict);
                        answer::deactivated(&opened, org, &self.key, now, id, verdict)
                    }
                    Err(_) => None,
                };
                *online = Some(answer);
                match record {
                    Some(record) => self.writes(&opened, record, &slot),
                    None => Phase::Unlock,
                }
            }
            Op::Deactivate { .. } => Phase::Unlock,
        }
    }

    /// Under the lock, the slot read: the record to store (validate, activate), or the
    /// deactivation's target (deactivate).
    fn fold(&mut self, ctx: &Ctx<'_, L>, stored: Stored) -> Phase {
        let Ok(slot) = self.slot.as_ref().map(Arc::clone) else {
            return Phase::Unlock;
        };
        let mut opened = open_slot(ctx, &slot, &self.key, &stored);
        if opened.remembered.is_none() && self.carried.is_some() {
            // Only a validate carries one ([`Update::carrying`]); `answer::validated` keeps it
            // only for a request that names it.
            Arc::make_mut(&mut opened)
                .remembered
                .clone_from(&self.carried);
        }
        self.left = Left::of(&opened);
        let org = ctx.api.organization_id();
        let now = self.now;
        let current = opened.record.as_ref();
        let record = match &mut self.op {
            Op::Validate {
                req,
                online: Some(online),
            } => {
                self.lease = fresh(current, online, self.lease.take(), ctx.policy);
                answer::validated(&opened, org, req, ctx.machine, now, ctx.policy, online)
            }
            Op::Activate {
                req,
                online: Some(online),
            } => {
                self.lease = fresh(current, online, self.lease.take(), ctx.policy);
                self.replaced = match (&*online, &opened.remembered) {
                    (Ok((Verdict::Accepted(new), _)), Some(old))
                        if old.id != crate::grace::ActivationData::activation_id(new) =>
                    {
                        Some(old.id.clone())
                    }
                    _ => None,
                };
                answer::activated(&opened, org, req, &self.key, now, ctx.policy, online)
            }
            Op::Deactivate {
                given, id, online, ..
            } => {
                // Set anew each time (a slot taken again once its lease is verified).
                *online = None;
                return match answer::deactivation_target(given.as_deref(), &opened) {
                    Ok(target) => {
                        let req = DeactivateRequest::new(self.key.clone(), target.as_str());
                        *id = Some(target);
                        self.opened = Some(opened);
                        match ctx.api.deactivate_request(&req) {
                            Ok(http) => {
                                self.request = Some(http);
                                Phase::Send
                            }
                            Err(e) => {
                                *online = Some(Err(e));
                                Phase::Unlock
                            }
                        }
                    }
                    Err(e) => {
                        *online = Some(Err(e));
                        Phase::Unlock
                    }
                };
            }
            _ => None,
        };
        // The lease kept (the slot may be taken again once its lease is verified).
        let Some(record) = record.map(|r| held::with_lease(r, self.lease.clone())) else {
            return Phase::Unlock;
        };
        self.writes(&opened, record, &slot)
    }

    /// The writes that store `record`, in order; a denial that cannot be stored removes the
    /// record (a tombstone that cannot be written must not leave an old grant). The slot is
    /// left with it once they are done.
    fn writes(&mut self, opened: &Opened<L>, record: Record<L>, slot: &Slot) -> Phase {
        self.before = std::mem::replace(&mut self.left, Left::written(&record));
        let forget = record.denied.is_some();
        let writes = seal(opened, record, slot).into_iter().collect();
        Phase::Write(writes, forget)
    }

    /// What a validate came to ([`Update::validate`]).
    pub fn validated(self) -> Validated<L> {
        match self.op {
            Op::Validate { online, .. } => Validated {
                online: online.map_or_else(|| Err(undriven()), |a| a.map(|(v, _)| v)),
                cache_error: self.cache_error,
                lease: self.left.lease,
                verified_at: self.now,
            },
            _ => Validated {
                online: Err(undriven()),
                cache_error: None,
                lease: None,
                verified_at: self.now,
            },
        }
    }

    /// What an activate came to ([`Update::activate`]).
    pub fn activated(self) -> Activated<L::Activation> {
        match self.op {
            Op::Activate { online, .. } => Activated {
                online: online.map_or_else(|| Err(undriven()), |a| a.map(|(v, _)| v)),
                // Only what the record learned: an activation it could not write replaced
                // nothing.
                replaced_activation_id: self.replaced.filter(|_| self.cache_error.is_none()),
                cache_error: self.cache_error,
                lease: self.left.lease,
            },
            _ => Activated {
                online: Err(undriven()),
                cache_error: None,
                lease: None,
                replaced_activation_id: None,
            },
        }
    }

    /// What a deactivate came to ([`Update::deactivate`]): a record that could not be read or
    /// told is the answer's error (the lock and the record come before and after Polar).
    pub fn deactivated(self) -> Deactivated {
        let Op::Deactivate {
            online,
            ends_remembered,
            id,
            ..
        } = self.op
        else {
            return Deactivated {
                answer: Err(undriven()),
                ends_remembered_key: false,
                activation_id: None,
                cache_error: None,
            };
        };
        match (self.cache_error, online) {
            (Some(e), _) => Deactivated {
                answer: Err(e),
                ends_remembered_key: false,
                activation_id: id,
                cache_error: None,
            },
            (None, online) => Deactivated {
                answer: online.unwrap_or_else(|| Err(undriven())),
                ends_remembered_key: ends_remembered,
                activation_id: id,
                cache_error: self.unusable,
            },
        }
    }
}

fn undriven() -> Error {
    Error::Cache {
        detail: "the update was not driven to its end".to_string(),
    }
}

/// Polar's answer to an update's validate or activate, read by `verdict`, with why the key
/// stopped (issue #68): the relay's header and, in signed mode, its signed denial held to
/// `granted` (`held::stopped_of`); with the relay's lease header, for `held::held`.
fn read_answer<T>(
    signing: held::Signing<'_>,
    response: Result<HttpResponse, Error>,
    granted: &Granted<'_>,
    now: i64,
    verdict: impl FnOnce(&HttpResponse) -> Result<Verdict<T>, Error>,
) -> Result<held::Leased<T>, Error> {
    let r = response?;
    let online = (verdict(&r)?, r.stamp());
    let header = r.single(crate::stopped::STOPPED_HEADER);
    let token = r.single(crate::lease::DENIAL_HEADER);
    let online = held::stopped_of(signing, Ok(online), header, token, granted, now)?;
    Ok((online, r.single(LEASE_HEADER).map(str::to_string)))
}

/// `held::fresh_grant` in place: the answer refused as a replay or dated from its lease;
/// the lease kept (the fold may run again once a lease is verified: the same again).
fn fresh<T, L: License>(
    record: Option<&Record<L>>,
    online: &mut Answer<T>,
    lease: Option<HeldLease>,
    policy: &crate::grace::GracePolicy,
) -> Option<HeldLease> {
    let answer = std::mem::replace(online, Err(undriven()));
    let (answer, lease) = held::fresh_grant(record, answer, lease, policy);
    *online = answer;
    lease
}

impl<L: License> Machine<L> for Update<L> {
    super::step::by_own_methods!(Update);
    fn heard(&self) -> Option<super::Heard<'_>> {
        self.heard()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::fingerprint::MACHINE_CONDITION;
    use crate::flow::{LeaseMemo, Memo};
    use crate::grace::GracePolicy;
    use crate::lease::{Builtin, RelayKeys};
    use crate::metadata::MetaValue;
    use crate::proto::{Api, Server};

    const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

    /// The parts of a context, owned by the test.
    struct Parts {
        api: Api,
        policy: GracePolicy,
        keys: RelayKeys,
        lease_memo: LeaseMemo,
        memo: Memo,
    }

    fn parts() -> Parts {
        let server = Server::Custom("http://127.0.0.1:9".to_string());
        Parts {
            api: Api::new(ORG, &server).expect("a loopback server's routes"),
            policy: GracePolicy::default(),
            keys: RelayKeys::default(),
            lease_memo: LeaseMemo::default(),
            memo: Memo::default(),
        }
    }

    fn ctx<'a>(p: &'a Parts, machine: Option<&'a str>) -> Ctx<'a> {
        Ctx {
            api: &p.api,
            policy: &p.policy,
            relay_keys: &p.keys,
            lease_memo: &p.lease_memo,
            ed25519: &Builtin,
            memo: &p.memo,
            machine,
            bound: true,
            require_activation: false,
            random: None,
            clock: None,
        }
    }

    fn fingerprint(conditions: &crate::metadata::Metadata) -> Option<&MetaValue> {
        conditions.get(MACHINE_CONDITION)
    }

    /// The field an input refusal names (`None`: another error, or no refusal).
    fn refused_field<T>(answer: Result<T, Error>) -> Option<String> {
        match answer {
            Err(Error::InvalidInput { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn an_activation_request_is_bound_to_the_contexts_machine_and_checked() {
        let p = parts();
        let req = ActivateRequest::new("KEY-1", "laptop");
        let (bound, key) =
            Update::activation_request(&ctx(&p, Some("fp-1")), &req).expect("a good request");
        assert_eq!(key.expose(), "KEY-1");
        assert_eq!(
            fingerprint(&bound.conditions),
            Some(&MetaValue::from("fp-1"))
        );
        // Unbound: no fingerprint added.
        let (unbound, _) =
            Update::activation_request(&ctx(&p, None), &req).expect("a good request");
        assert_eq!(fingerprint(&unbound.conditions), None);
        // Refused as input: no key, and conditions past Polar's limits.
        let keyless = ActivateRequest {
            key: None,
            ..req.clone()
        };
        let mut crowded = req.clone();
        for i in 0..100 {
            crowded
                .conditions
                .insert(format!("c{i}"), MetaValue::from("v"));
        }
        let c = ctx(&p, Some("fp-1"));
        let refused =
            [&keyless, &crowded].map(|r| refused_field(Update::activation_request(&c, r)));
        assert_eq!(refused, [Some("key".into()), Some("conditions".into())]);
    }

    #[test]
    fn a_validation_request_is_bound_only_when_it_names_an_activation() {
        let p = parts();
        let id = "5b1e2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
        let plain = ValidateRequest::new("KEY-1");
        let (req, key) =
            Update::validation_request(&ctx(&p, Some("fp-1")), &plain).expect("a good request");
        assert_eq!(key.expose(), "KEY-1");
        assert_eq!(fingerprint(&req.conditions), None);
        let named = ValidateRequest::new("KEY-1").activation_id(id);
        let (req, _) =
            Update::validation_request(&ctx(&p, Some("fp-1")), &named).expect("a good request");
        assert_eq!(fingerprint(&req.conditions), Some(&MetaValue::from("fp-1")));
        let keyless = ValidateRequest::default();
        let bad_id = ValidateRequest::new("KEY-1").activation_id("not-a-uuid");
        let c = ctx(&p, None);
        let refused = [&keyless, &bad_id].map(|r| refused_field(Update::validation_request(&c, r)));
        assert_eq!(refused, [Some("key".into()), Some("activation_id".into())]);
    }

    #[test]
    fn an_update_refused_as_input_wants_no_slot_and_sends_nothing() {
        let p = parts();
        let c = ctx(&p, Some("fp-1"));
        let asked = std::cell::RefCell::new(Vec::new());
        let slot = |key: &Key| {
            asked.borrow_mut().push(key.expose().to_string());
            Err(Error::Cache {
                detail: "no slot here".to_string(),
            })
        };
        let keyless = ActivateRequest {
            key: None,
            ..ActivateRequest::new("KEY-1", "laptop")
        };
        let update = Update::activation(&c, &keyless, slot, 0);
        assert!(matches!(update.want(), Want::Done));
        let bad = ValidateRequest::new("KEY-1").activation_id("not-a-uuid");
        let update = Update::validate(&c, bad, slot, 0);
        assert!(matches!(update.want(), Want::Done));
        assert!(
            asked.borrow().is_empty(),
            "a slot wanted for refused input: {asked:?}"
        );
        // Accepted input wants its key's slot, bound, then sends.
        let good = ActivateRequest::new("KEY-1", "laptop");
        let update = Update::activation(&c, &good, slot, 0);
        assert_eq!(*asked.borrow(), ["KEY-1"]);
        // The slot could not be had: nothing is sent (no slot on Polar for it).
        assert!(matches!(update.want(), Want::Done));
        let update = Update::validate(&c, ValidateRequest::new("KEY-1"), slot, 0);
        assert_eq!(*asked.borrow(), ["KEY-1", "KEY-1"]);
        // A validate's answer stands whatever the cache does: it is sent.
        assert!(matches!(update.want(), Want::Send(_)));
    }
}
