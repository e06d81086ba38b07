//! The check machine: the grace-aware verdict for a key, as one order of steps every shell
//! drives. A check runs in phases, so that no lock is held while Polar is asked (a hung server
//! must not queue the other checks behind it):
//!
//! 1. under the slot's lock: read and open the slot (signed mode gates the record's lease
//!    here), then answer from the cache (recorded first: a clock note alone when that is
//!    enough), refuse, or decide to ask;
//! 2. without it: mark that this check asks Polar; when another check of the key holds the
//!    mark, answer from the cache at once when it can license; otherwise send the request and
//!    read the answer (signed mode: a grant stands only with a lease that verifies);
//! 3. under the lock again, with the slot read anew: fold the answer into the record as it is
//!    now, and store it (a denial that cannot be stored removes the record).
//!
//! When the slot cannot be used at all (its secret, its lock or its bytes cannot be read), one
//! online validate answers, never the cache.
//!
//! A shell drives it with one loop:
//!
//! ```ignore
//! let mut check = Check::new(&ctx, key, explicit, slot, now, monotonic_ms);
//! loop {
//!     let given = match check.want() {
//!         Want::Lock(name) => Given::Locked(/* take the lock */),
//!         Want::Unlock => Given::Unlocked,
//!         Want::Mark(name) => Given::Marked(/* try the mark */),
//!         Want::Read(slot) => Given::Read(/* record, ledger, clock note */),
//!         Want::Write { name, bytes, keep, compare } => Given::Written(/* store it, the compare first */),
//!         Want::Remove(name) => Given::Removed,
//!         Want::Send(request) => Given::Response(/* the transport's answer */),
//!         Want::Done => break check.report(),
//!     };
//!     check.give(&ctx, given);
//! }
//! ```

use super::ctx::open_slot;
pub use super::ctx::Ctx;
use super::phases::{self, Asking, Begin};
pub use super::step::{Given, Want};
use super::step::{Ledger, Left, Machine, Stored};
use crate::answers::{self, SchemaActivation, SchemaLicense};
use crate::error::{Error, Verdict};
use crate::grace::{
    ActivationData, CheckOutcome, CheckReport, GracePolicy, LeaseWindow, LicenseData, Source,
};
use crate::held::{self, Granted, HeldLease};
use crate::key::Key;
use crate::lease::LEASE_HEADER;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::perpetual::{self, ReleaseDate};
use crate::proto::{
    parse_activate, parse_activate_for, parse_validate, parse_validate_for, Expect, HttpRequest,
    HttpResponse, Relayed, Stamp, ValidateRequest,
};
use crate::slot::{cached_writes, seal, Keep, Opened, Slot};
use std::collections::VecDeque;
use std::sync::Arc;

type Online<L> = Result<(Verdict<L>, Stamp), Error>;

/// A license as a check reads it from Polar's validate answer: the Rust clients' typed model
/// ([`ValidatedLicenseKey`]) or the npm engine's schema reading ([`SchemaLicense`]).
pub trait Validated: LicenseData {
    /// An activate's answer over this license: the typed model's, or the schema's.
    type Activation: ActivationData<License = Self> + Clone + std::fmt::Debug;
    /// The answer classified, a 200 held to `expect` when there is one.
    fn validate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<Self>, Error>;
    /// An activate's answer classified, a 200 held to `expect` when there is one.
    fn activate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<Self::Activation>, Error>;
    /// Whether a shell over this representation may remember a key (an update's last step,
    /// [`super::update::Update::remembering`]): the typed model's shells do; the npm engine's
    /// schema reading never does (a browser has no install secret to seal a key with), so the
    /// remembered key's step is compiled out of it (the npm default entry's size budget).
    const REMEMBERS_KEYS: bool = true;
}

impl Validated for ValidatedLicenseKey {
    type Activation = LicenseKeyActivationRead;
    fn validate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<Self>, Error> {
        match expect {
            Some(expect) => parse_validate_for(response, expect),
            None => parse_validate(response),
        }
    }
    fn activate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        match expect {
            Some(expect) => parse_activate_for(response, expect),
            None => parse_activate(response),
        }
    }
}

impl Validated for SchemaLicense {
    const REMEMBERS_KEYS: bool = false;
    type Activation = SchemaActivation;
    fn validate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<Self>, Error> {
        match expect {
            Some(expect) => answers::validate_answer(response, expect),
            None => Err(Error::invalid("key", "is required")),
        }
    }
    fn activate_answer(
        response: &HttpResponse,
        expect: Option<&Expect<'_>>,
    ) -> Result<Verdict<SchemaActivation>, Error> {
        match expect {
            Some(expect) => answers::activate_answer(response, expect),
            None => Err(Error::invalid("key", "is required")),
        }
    }
}

/// Where the check goes once the slot's lock is released.
#[derive(Debug, Clone)]
enum Next {
    Done,
    Mark,
    Send,
    Unusable(Error),
}

/// What a run of writes is for.
#[derive(Debug, Clone)]
enum Purpose<L> {
    /// A cached answer (phase 1): given once all are stored; on a failure, Polar is asked
    /// with `ask` (when a 429 block does not forbid it: its request is encoded only then, a
    /// cached answer never encodes one) or the answer given with the error.
    Cached {
        outcome: CheckOutcome<L>,
        ask: Option<Box<ValidateRequest>>,
        clock_only: bool,
        written: Stored,
    },
    /// The cache's answer while another check asks (phase 2): on a failure, ask as well.
    WhileAsked(CheckOutcome<L>),
    /// The online answer folded in (phase 3): on a failure, a denial removes the record
    /// (else the slot is left as it was: `before`).
    Finished { denied: bool, before: Left },
}

#[derive(Debug, Clone)]
enum State<L> {
    /// Phase 1 read without the lock ([`Check::unlocked_read`]).
    Peek,
    Lock,
    Read,
    Write(VecDeque<(String, Vec<u8>, Keep)>, Purpose<L>),
    Unlock(Next),
    Mark,
    WhileLock,
    WhileRead,
    Send,
    FinishLock,
    FinishRead,
    Forget,
    Unusable(Box<HttpRequest>, ValidateRequest),
    /// The state a [`Given`] was for, and that given, kept until the verifier answered what
    /// it asked ([`Want::Verify`]).
    Verify(Box<State<L>>, Box<Given>),
    Done,
}

/// One check of one key, over the license representation `L` (the Rust clients' typed model
/// by default; the npm engine's schema reading).
#[derive(Clone)]
pub struct Check<L = ValidatedLicenseKey> {
    key: Key,
    explicit: Option<ValidateRequest>,
    slot: Option<Arc<Slot>>,
    now: i64,
    at_ms: u64,
    opened: Option<Arc<Opened<L>>>,
    asking: Option<Box<Asking>>,
    /// Boxed: Polar's answer is large, and the machine moves at every step.
    online: Option<Box<Online<L>>>,
    /// Where the relay, if any, took Polar's answer from.
    relayed: Option<Relayed>,
    lease: Option<HeldLease>,
    cache_error: Option<Error>,
    report: Option<CheckReport<L>>,
    state: State<L>,
    /// The slot's lock is held.
    locked: bool,
    /// The shell answered a want with another kind of answer already (its release of the
    /// lock is then asked for once more, never again).
    misanswered: bool,
    /// Phase 1's read without the lock, when its answer writes a record: the lock is taken to
    /// write it (the slot read anew); when the lock is not had, this plan's write failed.
    peeked: Option<Stored>,
    /// Signed mode: the nonce the request carries ([`Ctx::nonce`]); its grant's lease must
    /// carry the same.
    nonce: Option<String>,
    /// Signed mode: the relay's signed denial of this request, as received and verified
    /// (its nonce this request's): the one denial the perpetual fallback may stand on.
    denial: Option<(String, crate::lease::SignedDenial)>,
    /// The slot as the check leaves it so far (its report's lease and activation).
    left: Left,
    /// Perpetual fallback: the build's release date the app stated, the grace policy the
    /// rule's cache side is held to, and the rule ([`crate::perpetual`]), boxed: a check
    /// moves at every step.
    released: Option<Box<Released<L>>>,
    /// The slot's ledger as last read or written: the compares of the check's writes.
    ledger: Ledger,
}

/// Perpetual fallback's rule ([`crate::perpetual::apply`]) as [`Check::released`] names it:
/// through a pointer, so that a shell that never states a release date (the npm engine
/// without the option) links none of it.
type Rule<L> = fn(
    &mut CheckReport<L>,
    Option<&crate::grace::Record<L>>,
    Option<&crate::grace::Query>,
    &Key,
    ReleaseDate,
    i64,
    &GracePolicy,
    perpetual::Trust<'_>,
);

/// What [`Check::released`] keeps.
#[derive(Clone)]
struct Released<L> {
    date: ReleaseDate,
    policy: GracePolicy,
    rule: Rule<L>,
    /// Signed mode (the client holds relay keys): the rule stands on signed facts only.
    signed: bool,
}

impl<L> std::fmt::Debug for Check<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("key", &self.key)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl<L> State<L> {
    fn name(&self) -> &'static str {
        match self {
            State::Peek => "read before the lock",
            State::Lock => "lock",
            State::Read => "read",
            State::Write(..) => "write",
            State::Unlock(_) => "unlock",
            State::Mark => "mark",
            State::WhileLock => "lock while asked",
            State::WhileRead => "read while asked",
            State::Send => "send",
            State::FinishLock => "lock to finish",
            State::FinishRead => "read to finish",
            State::Forget => "remove",
            State::Unusable(..) => "send without the cache",
            State::Verify(..) => "verify",
            State::Done => "done",
        }
    }
}

impl<L: Validated> Check<L> {
    /// A check of `key` (with `explicit`, the validate request as given; else the remembered
    /// activation's), in `slot` (or why the slot cannot be had), at the clock reading `now`
    /// (unix seconds) and the shell's monotonic reading `at_ms` (milliseconds).
    pub fn new(
        ctx: &Ctx<'_, L>,
        key: Key,
        explicit: Option<ValidateRequest>,
        slot: Result<Arc<Slot>, Error>,
        now: i64,
        at_ms: u64,
    ) -> Check<L> {
        let mut check = Check::blank(key, explicit, now, at_ms);
        match slot {
            Ok(slot) => check.slot = Some(slot),
            Err(e) => check.unusable(ctx, e),
        }
        check
    }

    /// A check of `key` in no slot yet, about to lock it.
    fn blank(key: Key, explicit: Option<ValidateRequest>, now: i64, at_ms: u64) -> Check<L> {
        Check {
            key,
            explicit,
            slot: None,
            now,
            at_ms,
            opened: None,
            asking: None,
            online: None,
            relayed: None,
            lease: None,
            cache_error: None,
            report: None,
            state: State::Lock,
            locked: false,
            misanswered: false,
            peeked: None,
            nonce: None,
            denial: None,
            left: Left::default(),
            released: None,
            ledger: Ledger::default(),
        }
    }

    /// [`Check::new`] as every shell makes it, at the clock readings `(now, at_ms)`: the
    /// request checked as input first (the explicit one, else the key alone: empty, too long,
    /// a NUL, past Polar's limits), and only then the key's slot had (`slot`). A check refused as input is `unverified`
    /// (`invalid_input`) at once: it wants no slot, reads and writes nothing, sends nothing.
    pub fn of_input(
        ctx: &Ctx<'_, L>,
        key: Key,
        explicit: Option<ValidateRequest>,
        (now, at_ms): (i64, u64),
        slot: impl FnOnce(&Key) -> Result<Arc<Slot>, Error>,
    ) -> Check<L> {
        match Check::refused(ctx, &key, explicit.as_ref()) {
            None => {
                let slot = slot(&key);
                Check::new(ctx, key, explicit, slot, now, at_ms)
            }
            Some(e) => {
                let mut check = Check::blank(key, explicit, now, at_ms);
                check.report = Some(CheckReport::of(CheckOutcome::Unverified(e)));
                check.state = State::Done;
                check
            }
        }
    }

    /// Why [`Check::of_input`] refuses a check of `key` (with `explicit`, the request as
    /// given) as input, if it does: then it wants no slot (a shell whose slot is had
    /// asynchronously asks this first).
    pub fn refused(
        ctx: &Ctx<'_, L>,
        key: &Key,
        explicit: Option<&ValidateRequest>,
    ) -> Option<Error> {
        match explicit {
            Some(req) => ctx.api.validate_request(req).err(),
            None => ctx
                .api
                .validate_request(&ValidateRequest::new(key.clone()))
                .err(),
        }
    }

    /// This check reads the slot first without its lock (the browser shell, whose lock is
    /// shared by every tab and waited for at most a few seconds: verifying a cached record
    /// never waits for another tab). The lock is taken only to write a record (the slot read
    /// anew under it); when it is not had, that write failed (Polar is asked, or the cache's
    /// answer given, not refreshed). A clock note alone is written without it (one sealed for
    /// an older record is no note), and so the answers that write nothing.
    pub fn unlocked_read(mut self) -> Check<L> {
        if matches!(self.state, State::Lock) {
            self.state = State::Peek;
        }
        self
    }

    /// This check is for a build released on `released` (perpetual fallback,
    /// [`crate::perpetual`]): an answer that a key's paid time ran out licenses this build
    /// when it is not newer than that time, and the report says so
    /// ([`CheckReport::perpetual`]). Without it, the answers are exactly as before.
    pub fn released(mut self, ctx: &Ctx<'_, L>, released: Option<ReleaseDate>) -> Check<L> {
        self.released = released.map(|date| {
            Box::new(Released {
                date,
                policy: *ctx.policy,
                rule: perpetual::apply::<L>,
                signed: !ctx.relay_keys.is_empty(),
            })
        });
        self
    }

    /// The key checked.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// What the check wants next.
    pub fn want(&self) -> Want<'_> {
        let slot = self.slot.as_deref();
        match (&self.state, slot) {
            (State::Verify(..), _) => Want::Verify,
            (State::Peek, Some(slot)) => Want::Read(slot),
            (State::Lock | State::WhileLock | State::FinishLock, Some(slot)) => {
                Want::Lock(&slot.name)
            }
            (State::Read | State::WhileRead | State::FinishRead, Some(slot)) => Want::Read(slot),
            (State::Write(writes, _), slot) => match writes.front() {
                Some((name, bytes, keep)) => Want::Write {
                    name,
                    bytes,
                    keep: *keep,
                    compare: self.ledger.compare(slot, name),
                },
                None => Want::Done,
            },
            (State::Unlock(_), _) => Want::Unlock,
            (State::Mark, Some(slot)) => Want::Mark(&slot.ask),
            (State::Send, _) => match &self.asking {
                Some(asking) => Want::Send(&asking.http),
                None => Want::Done,
            },
            (State::Forget, Some(slot)) => Want::Remove(&slot.name),
            (State::Unusable(http, _), _) => Want::Send(http),
            _ => Want::Done,
        }
    }

    /// Asking Polar is the next step (phase 1 is over and the slot's lock released): what
    /// [`Check::pending`] answers before a background check goes on.
    pub fn asks_next(&self) -> bool {
        matches!(self.state, State::Mark)
    }

    /// The best answer before the online step ends: the cache's within the grace, the
    /// record's denial, else "not verified yet" (`None` when the check is not about to ask).
    pub fn pending(&self, ctx: &Ctx<'_, L>) -> Option<CheckOutcome<L>> {
        let asking = self.asking.as_deref()?;
        let opened = self.opened.as_deref()?;
        self.asks_next()
            .then(|| phases::pending(opened, asking, ctx.policy))
    }

    /// The answer, once the check has one (the report's outcome: [`Check::report`]).
    pub fn report_outcome(&self) -> Option<&CheckOutcome<L>> {
        self.report.as_ref().map(|r| &r.outcome)
    }

    /// Why the cache has not learned what this check found so far (a write that failed, the
    /// storage that could not be used), if it has not.
    pub fn cache_error(&self) -> Option<&Error> {
        self.cache_error.as_ref()
    }

    /// Polar's answer as the check read it, once it came (before the slot is read again).
    pub fn online(&self) -> Option<Result<&Verdict<L>, &Error>> {
        self.online
            .as_ref()
            .map(|online| (**online).as_ref().map(|(verdict, _)| verdict))
    }

    /// Signed mode: the window of the lease the key's record holds as the check has left it
    /// so far (what [`CheckReport::lease`] says once it is done).
    pub fn lease(&self) -> Option<&LeaseWindow> {
        self.left.lease.as_ref()
    }

    /// The activation the key's record remembers as the check has left it so far (what
    /// [`CheckReport::activation_id`] says once it is done).
    pub fn activation_id(&self) -> Option<&str> {
        self.left.activation_id.as_deref()
    }

    /// The check's answer (`unverified` if it was asked before [`Want::Done`]), with the
    /// slot's lease and activation as the check left it.
    pub fn report(self) -> CheckReport<L> {
        let Left {
            lease,
            activation_id,
        } = self.left;
        let report = self.report.unwrap_or_else(|| {
            CheckReport::of(CheckOutcome::Unverified(Error::Cache {
                detail: "the check was not driven to its end".to_string(),
            }))
        });
        let mut report = CheckReport {
            lease,
            activation_id,
            ..report
        };
        if let Some(r) = self.released {
            let trust = if r.signed {
                perpetual::Trust::Signed(self.denial.as_ref().map(|(_, d)| d))
            } else {
                perpetual::Trust::Unsigned
            };
            (r.rule)(
                &mut report,
                self.opened.as_deref().and_then(|o| o.record.as_ref()),
                self.asking.as_deref().map(|a| &a.query),
                &self.key,
                r.date,
                self.now,
                &r.policy,
                trust,
            );
        }
        report
    }

    /// Gives the check what happened in answer to its last [`Want`].
    ///
    /// With a verifier that answers later ([`crate::lease::Ed25519::defers`], signed mode): a
    /// given that met a signature the verifier has no answer for yet is not taken; the check
    /// keeps it and wants [`Want::Verify`], then takes it anew once [`Given::Verified`].
    pub fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        // The clock read after the slot's bytes: a record another writer stored before this
        // read was stamped at most now (the same clock), never "ahead" of this check.
        // The same for a request's clock: a slot read again under the lock after the request
        // (or while another check asks) is judged at that reading, not at the one the request
        // was made with (another writer's answer stored meanwhile is no clock moved back).
        if let (Given::Read(Ok(_)), Some(clock)) = (&given, ctx.clock) {
            self.now = self.now.max(clock());
            if let Some(asking) = self.asking.as_deref_mut() {
                asking.now = asking.now.max(self.now);
            }
        }
        if matches!(self.state, State::Verify(..)) && matches!(given, Given::Verified) {
            if let State::Verify(state, given) = std::mem::replace(&mut self.state, State::Done) {
                self.state = *state;
                return self.give(ctx, *given);
            }
        }
        let deferred = ctx.ed25519.defers() && !ctx.relay_keys.is_empty();
        if deferred && self.meets_pending(ctx, &given) {
            let state = std::mem::replace(&mut self.state, State::Done);
            self.state = State::Verify(Box::new(state), Box::new(given));
            return;
        }
        self.take(ctx, given);
    }

    /// Whether taking `given` would meet a lease signature the verifier has no answer for yet
    /// (asked now, for [`Want::Verify`]). A step verifies only where it opens a slot or holds
    /// an online grant to its lease: those are done here as the step does them, changing
    /// nothing in the check (a copy of the whole check kept instead cost 1.8 KB of the npm
    /// package gzipped). Opening and holding are pure functions of their inputs and the
    /// verifier's answers, so the step taken next, or again once answered, finds the same.
    fn meets_pending(&self, ctx: &Ctx<'_, L>, given: &Given) -> bool {
        match (&self.state, given) {
            (
                State::Peek | State::Read | State::WhileRead | State::FinishRead,
                Given::Read(Ok(stored)),
            ) => {
                self.open(ctx, stored);
            }
            // Phase 1 without the lock it wanted: the slot as peeked is opened again.
            (State::Lock, Given::Locked(Err(_))) => {
                if let Some(stored) = &self.peeked {
                    self.open(ctx, stored);
                }
            }
            // (An error for a response holds no lease.)
            (state @ (State::Send | State::Unusable(..)), Given::Response(Ok(response))) => {
                self.heard(ctx, state, Ok(response.clone()));
            }
            _ => {}
        }
        ctx.ed25519.pending()
    }

    /// [`Check::give`]'s step.
    fn take(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        let given = self.ledger.take(given);
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match (state, given) {
            (State::Peek, Given::Read(Ok(stored))) => self.peek(ctx, stored),
            (State::Peek, Given::Read(Err(e))) => return self.unusable(ctx, e),
            (State::Lock, Given::Locked(Ok(()))) => {
                self.locked = true;
                State::Read
            }
            (State::Lock, Given::Locked(Err(e))) => match self.peeked.take() {
                Some(stored) => self.unheld(ctx, stored, e),
                None => return self.unusable(ctx, e),
            },
            (State::Read, Given::Read(Ok(stored))) => self.begin(ctx, stored),
            (State::Read, Given::Read(Err(e))) => State::Unlock(Next::Unusable(e)),
            (State::Write(writes, purpose), Given::Written(result)) => {
                self.written(ctx, writes, purpose, result)
            }
            (State::Unlock(next), Given::Unlocked) => {
                self.locked = false;
                self.release(ctx, next)
            }
            (State::Mark, Given::Marked(true)) => State::Send,
            (State::Mark, Given::Marked(false)) => State::WhileLock,
            (State::WhileLock, Given::Locked(Ok(()))) => {
                self.locked = true;
                State::WhileRead
            }
            (State::WhileLock, Given::Locked(Err(_))) => State::Send,
            (State::WhileRead, Given::Read(Ok(stored))) => self.while_asked(ctx, stored),
            (State::WhileRead, Given::Read(Err(_))) => State::Unlock(Next::Send),
            (State::Send, Given::Response(response)) => {
                match self.heard(ctx, &State::Send, response) {
                    Some((online, lease, relayed, denial)) => {
                        self.relayed = relayed;
                        self.online = Some(Box::new(online));
                        self.lease = lease;
                        self.denial = denial;
                        State::FinishLock
                    }
                    None => State::Done,
                }
            }
            (State::FinishLock, Given::Locked(Ok(()))) => {
                self.locked = true;
                State::FinishRead
            }
            (State::FinishLock, Given::Locked(Err(e))) => {
                self.finish_unlearned(ctx, e);
                State::Done
            }
            (State::FinishRead, Given::Read(Ok(stored))) => self.finish(ctx, stored),
            (State::FinishRead, Given::Read(Err(e))) => {
                self.finish_unlearned(ctx, e);
                State::Unlock(Next::Done)
            }
            (State::Forget, Given::Removed) => {
                self.left = Left::default();
                State::Unlock(Next::Done)
            }
            (state @ State::Unusable(..), Given::Response(response)) => {
                self.answered_unusable(ctx, &state, response);
                State::Done
            }
            // A shell that answers another question than the one asked: the check ends
            // unverified rather than guess (a bug in the shell, never a grant).
            (state, given) => {
                self.report = Some(CheckReport::of(CheckOutcome::Unverified(Error::Cache {
                    detail: [
                        "the check's shell answered ",
                        given.name(),
                        " in ",
                        state.name(),
                    ]
                    .concat(),
                })));
                // A lock held (a step under it, or the release it answered otherwise) is
                // asked to be released again, once: one wrong answer leaves no lock held, and
                // a shell that answers wrong again cannot keep the check asking.
                let again = self.locked && !self.misanswered;
                self.misanswered = true;
                if again {
                    State::Unlock(Next::Done)
                } else {
                    State::Done
                }
            }
        };
        // No lock held (a check that read without it): nothing to release.
        if !self.locked {
            let state = std::mem::replace(&mut self.state, State::Done);
            self.state = match state {
                State::Unlock(next) => self.release(ctx, next),
                state => state,
            };
        }
    }

    /// Where the check goes once the lock is released (or when none was held).
    fn release(&mut self, ctx: &Ctx<'_, L>, next: Next) -> State<L> {
        match next {
            Next::Done => State::Done,
            Next::Mark => State::Mark,
            Next::Send => State::Send,
            Next::Unusable(e) => {
                self.unusable(ctx, e);
                std::mem::replace(&mut self.state, State::Done)
            }
        }
    }

    fn slot(&self) -> Option<&Slot> {
        self.slot.as_deref()
    }

    /// The slot opened from `stored` (the memo's when the bytes are the same).
    fn open(&self, ctx: &Ctx<'_, L>, stored: &Stored) -> Option<Arc<Opened<L>>> {
        Some(open_slot(ctx, self.slot()?, &self.key, stored))
    }

    /// Phase 1, the slot read under its lock.
    fn begin(&mut self, ctx: &Ctx<'_, L>, stored: Stored) -> State<L> {
        match self.plan(ctx, &stored) {
            Ok((opened, begin, req)) => self.act(ctx, stored, &opened, begin, req),
            Err(state) => *state,
        }
    }

    /// Phase 1 read without the lock ([`Check::unlocked_read`]): an answer that writes a
    /// record takes the lock first; any other goes on at once.
    fn peek(&mut self, ctx: &Ctx<'_, L>, stored: Stored) -> State<L> {
        let (opened, begin, req) = match self.plan(ctx, &stored) {
            Ok(plan) => plan,
            Err(state) => return *state,
        };
        let again = |slot| ctx.memo.answered_again(slot, self.now, self.at_ms, &stored);
        let record = matches!(
            begin,
            Begin::Cached {
                clock_only: false,
                ..
            }
        );
        if record && !self.slot().is_some_and(again) {
            self.peeked = Some(stored);
            return State::Lock;
        }
        self.act(ctx, stored, &opened, begin, req)
    }

    /// Phase 1 when the lock to write the cached answer's record was not had: that write
    /// failed.
    fn unheld(&mut self, ctx: &Ctx<'_, L>, stored: Stored, e: Error) -> State<L> {
        match self.begin(ctx, stored) {
            State::Write(writes, purpose) => self.written(ctx, writes, purpose, Err(e)),
            state => state,
        }
    }

    /// Phase 1's plan from the slot read: the slot opened, what the cache answers, and the
    /// request.
    #[allow(clippy::type_complexity)]
    fn plan(
        &mut self,
        ctx: &Ctx<'_, L>,
        stored: &Stored,
    ) -> Result<(Arc<Opened<L>>, Begin<L>, ValidateRequest), Box<State<L>>> {
        let Some(opened) = self.open(ctx, stored) else {
            return Err(Box::new(State::Unlock(Next::Done)));
        };
        self.left = Left::of(&opened);
        self.opened = Some(Arc::clone(&opened));
        let req = match phases::check_request(
            &self.key,
            self.explicit.as_ref(),
            &opened,
            ctx.machine,
            ctx.require_activation,
        ) {
            Ok(req) => req,
            Err(e) => return Err(Box::new(self.answer(CheckOutcome::Unverified(e)))),
        };
        let begin = phases::begin(ctx.api, &opened, &req, self.now, ctx.policy);
        Ok((opened, begin, req))
    }

    /// Phase 1's plan carried out.
    fn act(
        &mut self,
        ctx: &Ctx<'_, L>,
        stored: Stored,
        opened: &Opened<L>,
        begin: Begin<L>,
        req: ValidateRequest,
    ) -> State<L> {
        match begin {
            Begin::Done(outcome) => self.answer(outcome),
            Begin::Cached {
                outcome,
                write,
                may_ask,
                clock_only,
            } => {
                let Some(slot) = self.slot() else {
                    return self.answer(outcome);
                };
                if ctx.memo.answered_again(slot, self.now, self.at_ms, &stored) {
                    return self.answer(outcome);
                }
                let writes = cached_writes(opened, *write, clock_only, slot);
                State::Write(
                    writes.into(),
                    Purpose::Cached {
                        outcome,
                        ask: may_ask.then(|| Box::new(req)),
                        clock_only,
                        written: stored,
                    },
                )
            }
            Begin::Ask(mut asking) => {
                self.bind(ctx, &mut asking.http);
                self.asking = Some(asking);
                State::Unlock(Next::Mark)
            }
        }
    }

    /// Signed mode: a fresh nonce for the request about to be sent, kept to hold its grant's
    /// lease to (contract §5, freshness).
    fn bind(&mut self, ctx: &Ctx<'_, L>, http: &mut HttpRequest) {
        self.nonce = ctx.nonce();
        super::ctx::with_nonce(http, self.nonce.as_deref());
    }

    fn answer(&mut self, outcome: CheckOutcome<L>) -> State<L> {
        self.report = Some(CheckReport::of(outcome));
        State::Unlock(Next::Done)
    }

    /// One write stored (or not).
    fn written(
        &mut self,
        ctx: &Ctx<'_, L>,
        mut writes: VecDeque<(String, Vec<u8>, Keep)>,
        purpose: Purpose<L>,
        result: Result<(), Error>,
    ) -> State<L> {
        let Some((name, bytes, keep)) = writes.pop_front() else {
            return State::Unlock(Next::Done);
        };
        if result.is_ok() {
            self.ledger.wrote(self.slot.as_deref(), &name, &bytes);
        }
        match (purpose, result) {
            (
                Purpose::Cached {
                    outcome,
                    ask,
                    clock_only,
                    mut written,
                },
                result,
            ) => {
                match result {
                    Ok(()) => {
                        if let Some(slot) = self.slot() {
                            if name == slot.name {
                                written.record = Some(bytes);
                            } else if name == slot.clock {
                                written.clock = Some(bytes);
                            }
                        }
                    }
                    // A note after the record that could not be written only means the next
                    // answer is written durably; a note that is the answer's only write is
                    // the answer's record.
                    Err(_) if keep == Keep::Volatile && !clock_only => {}
                    // An answer that cannot be counted is not given as fresh: Polar is asked,
                    // and the cache still answers within the grace if it cannot be.
                    Err(e) => {
                        self.asking = ask.and_then(|req| phases::asking(ctx.api, &req, self.now));
                        if let Some(mut asking) = self.asking.take() {
                            self.bind(ctx, &mut asking.http);
                            self.asking = Some(asking);
                        }
                        if self.asking.is_some() {
                            self.cache_error = Some(e);
                            return State::Unlock(Next::Mark);
                        }
                        self.report = Some(CheckReport {
                            cache_error: Some(e),
                            ..CheckReport::of(outcome)
                        });
                        return State::Unlock(Next::Done);
                    }
                }
                if !writes.is_empty() {
                    return State::Write(
                        writes,
                        Purpose::Cached {
                            outcome,
                            ask,
                            clock_only,
                            written,
                        },
                    );
                }
                if let Some(slot) = self.slot.as_deref() {
                    ctx.memo
                        .remember_answer(slot, self.now, self.at_ms, written);
                }
                self.answer(outcome)
            }
            (Purpose::WhileAsked(outcome), Ok(())) => {
                if writes.is_empty() {
                    self.answer(outcome)
                } else {
                    State::Write(writes, Purpose::WhileAsked(outcome))
                }
            }
            // An answer that cannot be counted is not given: ask as well.
            (Purpose::WhileAsked(_), Err(_)) => State::Unlock(Next::Send),
            (Purpose::Finished { denied, before }, Ok(())) => {
                if writes.is_empty() {
                    State::Unlock(Next::Done)
                } else {
                    State::Write(writes, Purpose::Finished { denied, before })
                }
            }
            (Purpose::Finished { denied, before }, Err(e)) => {
                if let Some(report) = self.report.as_mut() {
                    report.cache_error = Some(e);
                }
                self.left = before;
                // A tombstone that cannot be written must not leave an old grant (a record
                // another writer stored meanwhile stays).
                if denied && !self.ledger.late() {
                    State::Forget
                } else {
                    State::Unlock(Next::Done)
                }
            }
        }
    }

    /// Phase 2 when another check of the key holds the mark: the slot read under its lock.
    fn while_asked(&mut self, ctx: &Ctx<'_, L>, stored: Stored) -> State<L> {
        let Some(opened) = self.open(ctx, &stored) else {
            return State::Unlock(Next::Send);
        };
        self.left = Left::of(&opened);
        let (Some(asking), Some(slot)) = (self.asking.as_deref(), self.slot()) else {
            return State::Unlock(Next::Send);
        };
        match phases::while_asked(&opened, asking, ctx.policy) {
            Some((outcome, record)) => {
                let writes = seal(&opened, record, slot)
                    .into_iter()
                    .map(|(name, bytes)| (name, bytes, Keep::Durable))
                    .collect();
                State::Write(writes, Purpose::WhileAsked(outcome))
            }
            None => State::Unlock(Next::Send),
        }
    }

    /// Polar's response to the request of `state` (`Send`: phase 2's; `Unusable`: the one
    /// sent without the cache) read and held to its lease (signed mode: a grant stands only
    /// with its lease), with where the relay says the answer came from.
    #[allow(clippy::type_complexity)]
    fn heard(
        &self,
        ctx: &Ctx<'_, L>,
        state: &State<L>,
        response: Result<HttpResponse, Error>,
    ) -> Option<(
        Online<L>,
        Option<HeldLease>,
        Option<Relayed>,
        Option<(String, crate::lease::SignedDenial)>,
    )> {
        let org = ctx.api.organization_id();
        let (expect, granted, now) = match state {
            State::Send => {
                let asking = self.asking.as_deref()?;
                let granted = Granted {
                    organization_id: org,
                    key: &asking.query.key,
                    activation_id: asking.query.activation_id.as_deref(),
                    conditions: &asking.query.conditions,
                    nonce: self.nonce.as_deref(),
                };
                (asking.expect(org), granted, asking.now)
            }
            State::Unusable(_, req) => {
                let granted = Granted::validate(org, &self.key, req, self.nonce.as_deref());
                (Expect::validate(org, req, self.now), granted, self.now)
            }
            _ => return None,
        };
        let stopped = response
            .as_ref()
            .ok()
            .and_then(|r| r.single(crate::stopped::STOPPED_HEADER))
            .map(str::to_string);
        let (online, token, relayed, denial) = read(response, expect.as_ref());
        let denial = held::held_denial(ctx.signing(), &online, denial.as_deref(), &granted, now);
        let online = held::with_stopped(online, stopped.as_deref(), ctx.relay_keys, &denial);
        let (online, lease) = hold(ctx, online, token, &granted, now);
        Some((online, lease, relayed, denial))
    }

    /// Phase 3: the answer folded into the slot as it is now.
    fn finish(&mut self, ctx: &Ctx<'_, L>, stored: Stored) -> State<L> {
        let (Some(current), Some(asking), Some(online)) = (
            self.open(ctx, &stored),
            self.asking.as_deref(),
            self.online.take().map(|online| *online),
        ) else {
            return State::Unlock(Next::Done);
        };
        let (online, lease) = held::fresh_grant(
            current.record.as_ref(),
            online,
            self.lease.take(),
            ctx.policy,
        );
        let relayed = relayed_verdict(self.relayed, &online);
        let f = phases::finish(&current, asking, ctx.policy, online);
        let denied = match &f.outcome {
            CheckOutcome::Denied(d) => Some(d.reason),
            _ => None,
        };
        self.report = Some(CheckReport {
            relayed: relayed.filter(|_| !from_cache(&f.outcome)),
            outcome: f.outcome,
            fallback: f.fallback,
            cache_error: self.cache_error.take(),
            lease: None,
            activation_id: None,
            perpetual: None,
            trial: None,
        });
        self.left = Left::of(&current);
        self.opened = Some(Arc::clone(&current));
        let Some(record) = f.write else {
            return State::Unlock(Next::Done);
        };
        let record = held::with_lease(record, lease);
        let record = held::with_denial(record, denied, self.denial.as_ref());
        let before = std::mem::replace(&mut self.left, Left::written(&record));
        let denied = record.denied.is_some();
        let Some(slot) = self.slot() else {
            return State::Unlock(Next::Done);
        };
        let writes = seal(&current, record, slot)
            .into_iter()
            .map(|(name, bytes)| (name, bytes, Keep::Durable))
            .collect();
        State::Write(writes, Purpose::Finished { denied, before })
    }

    /// Phase 3 when the slot cannot be read again: the answer stands; the cache could not
    /// learn it.
    fn finish_unlearned(&mut self, ctx: &Ctx<'_, L>, e: Error) {
        let (Some(opened), Some(asking), Some(online)) = (
            self.opened.as_deref(),
            self.asking.as_deref(),
            self.online.take().map(|online| *online),
        ) else {
            return;
        };
        let (online, _) = held::fresh_grant(
            opened.record.as_ref(),
            online,
            self.lease.take(),
            ctx.policy,
        );
        let relayed = relayed_verdict(self.relayed, &online);
        let f = phases::finish(opened, asking, ctx.policy, online);
        self.report = Some(CheckReport {
            relayed: relayed.filter(|_| !from_cache(&f.outcome)),
            outcome: f.outcome,
            fallback: f.fallback,
            cache_error: Some(e),
            lease: None,
            activation_id: None,
            perpetual: None,
            trial: None,
        });
    }

    /// The slot cannot be used at all (its secret, lock or bytes): this machine's identity
    /// that cannot be read refuses (a bare-key check would skip the binding), and so does a
    /// plain check that needs a remembered activation; else one online validate.
    fn unusable(&mut self, ctx: &Ctx<'_, L>, cache_error: Error) {
        let unbound = self.explicit.is_none() && ctx.require_activation;
        if unbound || !ctx.bound {
            self.report = Some(CheckReport::of(CheckOutcome::Unverified(cache_error)));
            self.state = State::Done;
            return;
        }
        let req = self
            .explicit
            .clone()
            .unwrap_or_else(|| ValidateRequest::new(self.key.clone()));
        match ctx.api.validate_request(&req) {
            Ok(mut http) => {
                self.bind(ctx, &mut http);
                self.cache_error = Some(cache_error);
                self.state = State::Unusable(Box::new(http), req);
            }
            Err(e) => {
                self.report = Some(CheckReport {
                    outcome: phases::online_only(Err(e), &cache_error, self.now),
                    fallback: None,
                    cache_error: Some(cache_error),
                    relayed: None,
                    lease: None,
                    activation_id: None,
                    perpetual: None,
                    trial: None,
                });
                self.state = State::Done;
            }
        }
    }

    fn answered_unusable(
        &mut self,
        ctx: &Ctx<'_, L>,
        state: &State<L>,
        response: Result<HttpResponse, Error>,
    ) {
        let Some((online, _, relayed, _)) = self.heard(ctx, state, response) else {
            return;
        };
        let relayed = relayed_verdict(relayed, &online);
        // Kept for the shell's log line ([`Check::online`]): this path is rare.
        self.online = Some(Box::new(online.clone()));
        let cache_error = self.cache_error.take().unwrap_or_else(|| Error::Cache {
            detail: "the cache could not be used".to_string(),
        });
        self.report = Some(CheckReport {
            outcome: phases::online_only(online.map(|(v, _)| v), &cache_error, self.now),
            fallback: None,
            cache_error: Some(cache_error),
            relayed,
            lease: None,
            activation_id: None,
            perpetual: None,
            trial: None,
        });
    }
}

/// A validate response read: the verdict held to `expect`, its stamp, the relay's lease header
/// (its single value) when there was one, and where the relay says the answer came from.
#[allow(clippy::type_complexity)]
fn read<L: Validated>(
    response: Result<HttpResponse, Error>,
    expect: Option<&Expect<'_>>,
) -> (Online<L>, Option<String>, Option<Relayed>, Option<String>) {
    match response {
        Err(e) => (Err(e), None, None, None),
        Ok(response) => {
            let stamp = response.stamp();
            match L::validate_answer(&response, expect) {
                Ok(verdict) => (
                    Ok((verdict, stamp)),
                    response.single(LEASE_HEADER).map(str::to_string),
                    response.relayed(),
                    response
                        .single(crate::lease::DENIAL_HEADER)
                        .map(str::to_string),
                ),
                Err(e) => (Err(e), None, None, None),
            }
        }
    }
}

/// The relay's word on an answer, kept only when the answer is a verdict (signed mode may
/// have refused the grant since).
fn relayed_verdict<L>(relayed: Option<Relayed>, online: &Online<L>) -> Option<Relayed> {
    relayed.filter(|_| online.is_ok())
}

fn from_cache<L>(outcome: &CheckOutcome<L>) -> bool {
    matches!(
        outcome,
        CheckOutcome::Licensed {
            source: Source::Cache,
            ..
        }
    )
}

/// Signed mode: an online grant stands only with a lease that verifies for it
/// (`held::held`); the lease to store with it.
fn hold<L: LicenseData>(
    ctx: &Ctx<'_, L>,
    online: Online<L>,
    token: Option<String>,
    granted: &Granted<'_>,
    now: i64,
) -> (Online<L>, Option<HeldLease>) {
    let online = online.map(|answer| (answer, token));
    held::held(ctx.signing(), online, granted, now)
}

impl<L: Validated> Machine<L> for Check<L> {
    super::step::by_own_methods!(Check);
    fn heard(&self) -> Option<super::Heard<'_>> {
        self.online()
            .map(|answer| super::step::heard("validate", answer))
    }
}
