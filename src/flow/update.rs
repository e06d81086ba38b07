//! The machines of the calls that change what Polar knows, or ask it once: `validate`,
//! `activate` and `deactivate`, each followed by the key's record learning the answer (one
//! truth per key, contract §4). One machine, [`Update`], in three orders of steps:
//!
//! - **validate**: send the request; signed mode holds a grant to its lease; then, under the
//!   slot's lock, the slot read anew and the answer folded into its record
//!   (`session::validated`), a denial that cannot be stored removing the record. The answer
//!   stands whatever the cache does; an input refused before sending is the answer alone.
//! - **activate**: the slot must be usable before a slot on Polar is taken; then the same as
//!   validate (`session::activated`: a good activation is a verdict and starts the grace),
//!   with the lease for the activation just made.
//! - **deactivate**: under the slot's lock for the whole call (the activation it names is the
//!   record's), the target chosen (`session::deactivation_target`), the request sent, the
//!   record told (`session::deactivated`), and whether it ends the remembered key. When
//!   the slot cannot be had, an id given is deactivated online only ([`Update::deactivation`]).
//!
//! Each binds its request to this machine and checks its input from the context before any
//! slot is opened ([`Update::validate`], [`Update::activation`], [`Update::deactivation`]),
//! and its answer carries the slot as it leaves it (signed mode: the lease's window), so no
//! shell reads the cache again after a call.
//!
//! A shell drives it with the same loop as a check ([`super::check`]): [`Update::want`],
//! [`Update::give`], then the answer ([`Update::validated`], [`Update::activated`],
//! [`Update::deactivated`]).

use super::check::Validated as License;
use super::ctx::{open_slot, Ctx};
use super::step::{Given, Left, Machine, Stored, Want};
use crate::error::{Error, Verdict};
use crate::grace::{LeaseWindow, Record};
use crate::key::Key;
use crate::lease::LEASE_HEADER;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{
    parse_deactivate, ActivateRequest, DeactivateRequest, Expect, HttpRequest, HttpResponse, Stamp,
    ValidateRequest,
};
use crate::shared::{self as session, Granted, HeldLease, Keep, Opened, Slot};
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
    Send,
    Lock,
    Read,
    Write(VecDeque<(String, Vec<u8>)>, bool),
    Forget,
    Unlock,
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
}

impl<A: crate::grace::ActivationData> Activated<A> {
    /// When Polar activated but the cache could not remember it: the `cache_error` an
    /// activate answers, naming the new activation id so nothing is lost (`None` otherwise).
    pub fn unremembered(&self) -> Option<Error> {
        match (&self.online, &self.cache_error) {
            (Ok(Verdict::Accepted(read)), Some(e)) => Some(session::unremembered(read, e)),
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
    /// A validate of `req`, bound to this machine (`session::bound_validate` with the
    /// context's fingerprint: a request the shell bound already is the same), at the clock
    /// reading `now`. A request refused as input opens no slot.
    pub fn validate(
        ctx: &Ctx<'_, L>,
        req: ValidateRequest,
        slot: impl FnOnce(&Key) -> Result<Arc<Slot>, Error>,
        now: i64,
    ) -> Update<L> {
        let req = session::bound_validate(&req, ctx.machine);
        let key = req.key.clone().unwrap_or_else(|| Key::from(String::new()));
        let mut update = Update::new(key, now, Op::Validate { req, online: None });
        match &update.op {
            Op::Validate { req, .. } if req.key.is_none() => {
                update.fail(Error::invalid("key", "is required"));
            }
            Op::Validate { req, .. } => match ctx.api.validate_request(req) {
                Ok(http) => {
                    update.slot = slot(&update.key);
                    update.bind(ctx, http);
                }
                Err(e) => update.fail(e),
            },
            _ => {}
        }
        update
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
        let req = match session::bound_activation(&req, ctx.machine) {
            Ok((req, _)) => req,
            Err(_) => req,
        };
        let request = ctx.api.activate_request(&req);
        let mut update = Update::new(key, now, Op::Activate { req, online: None });
        match (request, slot) {
            (Ok(http), Ok(slot)) => {
                update.slot = Ok(slot);
                update.bind(ctx, http);
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
        let checked = session::bound_activation(req, ctx.machine)
            .and_then(|(req, key)| ctx.api.activate_request(&req).map(|_| (req, key)));
        match checked {
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
            verifying: None,
            nonce: None,
            left: Left::default(),
            before: Left::default(),
            unusable: None,
        }
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
            (Phase::Send, _) => match &self.request {
                Some(request) => Want::Send(request),
                None => Want::Done,
            },
            (Phase::Lock, Some(slot)) => Want::Lock(&slot.name),
            (Phase::Read, Some(slot)) => Want::Read(slot),
            (Phase::Write(writes, _), _) => match writes.front() {
                Some((name, bytes)) => Want::Write {
                    name,
                    bytes,
                    keep: Keep::Durable,
                },
                None => Want::Done,
            },
            (Phase::Forget, Some(slot)) => Want::Remove(&slot.name),
            (Phase::Unlock, _) => Want::Unlock,
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
        let again = match self.phase {
            Phase::Send if deferred => Some((Phase::Send, given.clone())),
            Phase::Read if deferred => Some((Phase::Read, given.clone())),
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
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match (phase, given) {
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
                writes.pop_front();
                if writes.is_empty() {
                    Phase::Unlock
                } else {
                    Phase::Write(writes, forget)
                }
            }
            (Phase::Write(_, forget), Given::Written(Err(e))) => {
                self.unlearned(e);
                self.left = std::mem::take(&mut self.before);
                if forget {
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
            (Phase::Unlock, Given::Unlocked) => Phase::Done,
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
        let signing = session::Signing {
            keys: ctx.relay_keys,
            policy: ctx.policy,
            ed25519: ctx.ed25519,
        };
        let now = self.now;
        let token = |r: &HttpResponse| r.single(LEASE_HEADER).map(str::to_string);
        match &mut self.op {
            Op::Validate { req, online } => {
                let expect = Expect::validate(org, req, now);
                let read = response.and_then(|r| {
                    let verdict = L::validate_answer(&r, expect.as_ref())?;
                    Ok(((verdict, r.stamp()), token(&r)))
                });
                let granted = Granted {
                    organization_id: org,
                    key: &self.key,
                    activation_id: req.activation_id.as_deref(),
                    conditions: &req.conditions,
                    nonce: self.nonce.as_deref(),
                };
                let (answer, lease) = session::held(signing, read, &granted, now);
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
                let read = response.and_then(|r| {
                    let verdict = L::activate_answer(&r, expect.as_ref())?;
                    Ok(((verdict, r.stamp()), token(&r)))
                });
                let nonce = self.nonce.as_deref();
                let (answer, lease) =
                    session::held_activation(signing, read, org, req, &self.key, nonce, now);
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
                let answer = response.and_then(|r| parse_deactivate(&r));
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
                let record = match &answer {
                    Ok(verdict) => {
                        *ends_remembered = session::ends_remembered_key(&opened, id, verdict);
                        session::deactivated(&opened, org, &self.key, now, id, verdict)
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
        let opened = open_slot(ctx, &slot, &self.key, &stored);
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
                session::validated(&opened, org, req, ctx.machine, now, ctx.policy, online)
            }
            Op::Activate {
                req,
                online: Some(online),
            } => {
                self.lease = fresh(current, online, self.lease.take(), ctx.policy);
                session::activated(&opened, org, req, &self.key, now, ctx.policy, online)
            }
            Op::Deactivate {
                given, id, online, ..
            } => {
                // Set anew each time (a slot taken again once its lease is verified).
                *online = None;
                return match session::deactivation_target(given.as_deref(), &opened) {
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
        let Some(record) = record.map(|r| session::with_lease(r, self.lease.clone())) else {
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
        let writes = session::seal(opened, record, slot).into_iter().collect();
        Phase::Write(writes, forget)
    }

    /// What a validate came to ([`Update::validate`]).
    pub fn validated(self) -> Validated<L> {
        match self.op {
            Op::Validate { online, .. } => Validated {
                online: online.map_or_else(|| Err(undriven()), |a| a.map(|(v, _)| v)),
                cache_error: self.cache_error,
                lease: self.left.lease,
            },
            _ => Validated {
                online: Err(undriven()),
                cache_error: None,
                lease: None,
            },
        }
    }

    /// What an activate came to ([`Update::activate`]).
    pub fn activated(self) -> Activated<L::Activation> {
        match self.op {
            Op::Activate { online, .. } => Activated {
                online: online.map_or_else(|| Err(undriven()), |a| a.map(|(v, _)| v)),
                cache_error: self.cache_error,
                lease: self.left.lease,
            },
            _ => Activated {
                online: Err(undriven()),
                cache_error: None,
                lease: None,
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

/// `session::fresh_grant` in place: the answer refused as a replay or dated from its lease;
/// the lease kept (the fold may run again once a lease is verified: the same again).
fn fresh<T, L: License>(
    record: Option<&Record<L>>,
    online: &mut Answer<T>,
    lease: Option<HeldLease>,
    policy: &crate::grace::GracePolicy,
) -> Option<HeldLease> {
    let answer = std::mem::replace(online, Err(undriven()));
    let (answer, lease) = session::fresh_grant(record, answer, lease, policy);
    *online = answer;
    lease
}

impl<L: License> Machine<L> for Update<L> {
    fn want(&self) -> Want<'_> {
        Update::want(self)
    }
    fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        Update::give(self, ctx, given);
    }
    fn key(&self) -> &Key {
        Update::key(self)
    }
    fn heard(&self) -> Option<super::Heard<'_>> {
        self.heard()
    }
}
