//! A seat held (issue #67 item 5, "every face"; issue #76 finding 2, "a seat is the relay's
//! word"): the steps every face takes with one of a key's seats, written once, as a sans-IO
//! machine with time. [`SeatHold::acquire`] reads an acquisition's answer into a hold; then
//! [`SeatHold::poll`] says what the face does next at `now` (send this heartbeat, wait this
//! long, or the hold has ended and why), [`SeatHold::heartbeat_answered`] takes what the
//! heartbeat got, and [`SeatHold::release_ask`] gives the seat back. A shell (native, CLI, C,
//! npm, Tauri) only sends the requests ([`crate::seat::seat_request`],
//! [`crate::seat::read_seat_answer`]) and sleeps as long as it is told; it holds no rule and
//! no schedule of its own.
//!
//! A seat is held only while the relay says so, in words this machine can check: every
//! answer that holds a seat carries a seat lease the relay signed ([`Seat::verify`]: its
//! signature by one of the seller's relay keys, the organization, the key, this machine's
//! binding, the seat's id and kind, its end). An answer whose lease is missing or does not
//! verify holds nothing (`protocol_error`): a 200 forged by anything between this machine and
//! the relay, or by no relay at all, is no seat. So a face without the relay's keys cannot
//! hold a floating seat ([`HoldTerms::new`] refuses, `invalid_input`, field `relay_keys`).
//!
//! The relay frees a seat not heard from within its life and may give it to another machine
//! at once; so the hold ends on this machine at the lease's end when no renewal the relay
//! signed arrived by then ([`HoldState::Lost`], the app learns [`Error::SeatLost`], reason
//! `seat_lost`), or at the end of a grace the seller gives after it ([`HoldTerms::with_grace`],
//! none by default). The heartbeat is due at a third of the seat's life; a heartbeat that
//! failed or went unanswered is asked again after 1 s, 2 s, 4 s, … (never longer apart than
//! a third of the life, and after a `429` not before its `retry-after`) while the lease still
//! runs; nothing is sent at or after the hold's end.
//!
//! Time is the caller's: every call that depends on it takes `now`, unix milliseconds, as the
//! rest of the core does (no clock here).

use core::time::Duration;

use crate::error::Error;
use crate::key::Key;
use crate::lease::{Builtin, Ed25519, NoLease, RelayKeys, SeatClaims};
use crate::seat::{Seat, SeatAnswer, SeatAsk, SeatOp};

/// How long after a failed heartbeat the first retry goes, in ms (then twice as long each
/// time, at most a third of the seat's life apart).
const FIRST_RETRY_MS: u64 = 1_000;

/// The shortest heartbeat interval a face may ask for ([`HoldTerms::with_heartbeat`]), in ms.
const MIN_BEAT_MS: u64 = 100;

/// The default heartbeat interval's floor, in ms (as [`Seat::heartbeat_every`]'s).
const DEFAULT_MIN_BEAT_MS: u64 = 1_000;

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// The seat is held: the relay's signed lease runs (or its grace does).
    Held,
    /// The relay no longer holds it (not heard from within its life, or Polar denied the key
    /// at a heartbeat): acquire again.
    Gone,
    /// Released: nothing more to send.
    Released,
    /// The lease ended (and the grace after it) with no renewal the relay signed: the relay
    /// may have given the seat to another machine. Stop what it licensed ([`Error::SeatLost`],
    /// reason `seat_lost`); acquire again.
    Lost,
}

impl HoldState {
    /// `held`, `gone`, `released` or `lost`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Gone => "gone",
            HoldState::Released => "released",
            HoldState::Lost => "lost",
        }
    }
}

/// What a hold is checked against, and the seller's or app's settings for it: the relay's
/// keys, the organization, the grace after a lease's end, the heartbeat interval.
#[derive(Debug, Clone)]
pub struct HoldTerms {
    keys: RelayKeys,
    /// The organization as configured (a seat request sends it so).
    organization_id: String,
    /// Its canonical form (lowercase, hyphenated).
    canonical_org: String,
    grace: Duration,
    every: Option<Duration>,
}

impl HoldTerms {
    /// The terms of a hold for `organization_id` whose seat leases must verify with `keys`
    /// (the seller's relay keys, as signed mode's). No keys: `invalid_input` (field
    /// `relay_keys`): without them any answer, a forged one too, would be a seat.
    pub fn new(keys: RelayKeys, organization_id: &str) -> Result<HoldTerms, Error> {
        if keys.is_empty() {
            return Err(Error::invalid(
                "relay_keys",
                "a floating seat is held only with the seller's relay keys, to verify the \
                 relay's seat lease: without them any answer, a forged one too, would be a seat",
            ));
        }
        let canonical_org = crate::metadata::check_uuid_v4("organization_id", organization_id)?;
        Ok(HoldTerms {
            keys,
            organization_id: organization_id.to_string(),
            canonical_org,
            grace: Duration::ZERO,
            every: None,
        })
    }

    /// How long after its lease's end a hold stays [`HoldState::Held`] while heartbeats are
    /// still tried (the seller's or the app's choice; default none: the hold ends with the
    /// lease). The relay itself frees the seat at the lease's end: a grace lets this machine
    /// go on while another may already hold the seat, so keep it short.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> HoldTerms {
        self.grace = grace;
        self
    }

    /// Heartbeats `every` apart instead of a third of the seat's life (never longer apart
    /// than that third, nor shorter than 100 ms).
    #[must_use]
    pub fn with_heartbeat(mut self, every: Duration) -> HoldTerms {
        self.every = Some(every);
        self
    }

    /// The grace after a lease's end.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The organization, as configured.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// `seat`'s lease verified for `key` on `machine`, a seat of kind `ci`, at `now_ms`: its
    /// claims, or why it holds nothing (`protocol_error`). Its signature is checked by
    /// `ed25519`.
    fn verify(
        &self,
        seat: &Seat,
        key: &Key,
        machine: &str,
        ci: bool,
        now_ms: u64,
        ed25519: &dyn Ed25519,
    ) -> Result<SeatClaims, Error> {
        let now = i64::try_from(now_ms / 1_000).unwrap_or(i64::MAX);
        let check = |org: &str| seat.verify_with(&self.keys, org, key, machine, now, ed25519);
        let mut verified = check(&self.canonical_org);
        if verified == Err(NoLease::Mismatch) && self.organization_id != self.canonical_org {
            verified = check(&self.organization_id);
        }
        let claims = verified.map_err(|why| {
            no_seat(&["the seat's lease is no lease (", why.as_str(), ")"].concat())
        })?;
        if (claims.kind == "ci") != ci {
            return Err(no_seat(
                "the seat's lease is no lease (mismatch): another kind of seat",
            ));
        }
        Ok(claims)
    }
}

/// An answer that holds no seat: `protocol_error`.
fn no_seat(detail: &str) -> Error {
    Error::Protocol {
        status: Some(200),
        detail: detail.to_string(),
    }
}

/// What a face does next for a hold ([`SeatHold::poll`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldPoll {
    /// Send this heartbeat now and hand what it got to [`SeatHold::heartbeat_answered`].
    Send(SeatAsk),
    /// Nothing before this long from now (poll again then, or sooner).
    Wait(Duration),
    /// The hold has ended: [`HoldState::Lost`] ([`SeatHold::lost`] says why),
    /// [`HoldState::Gone`] or [`HoldState::Released`]. Nothing more is sent but a release.
    Ended(HoldState),
}

/// One seat held by this machine, and what to send for it next.
#[derive(Debug, Clone)]
pub struct SeatHold {
    terms: HoldTerms,
    key: Key,
    machine: String,
    seat: Seat,
    state: HoldState,
    /// The lease's end as this machine's clock counts it, unix ms: the signed `exp`, or
    /// sooner when this clock is behind the relay's (its life counted from its answer).
    lease_end_ms: u64,
    /// The seat's life as the lease signs it, in ms.
    life_ms: u64,
    /// When the next heartbeat is due, unix ms.
    next_ms: u64,
    /// Heartbeats failed in a row.
    failures: u32,
    /// No heartbeat before this, unix ms: a `429`'s `retry-after` (even one asked for now).
    not_before_ms: u64,
    /// A heartbeat handed out and not answered yet.
    out: bool,
    /// Why the last heartbeat failed (the cause of a [`HoldState::Lost`]).
    last_failure: Option<String>,
}

impl SeatHold {
    /// The request for a new seat of `key` on `machine` (a CI seat when `ci`).
    pub fn acquire_ask(key: Key, machine: String, ci: bool) -> SeatAsk {
        SeatAsk {
            op: SeatOp::Acquire,
            key,
            machine,
            ci,
            seat: None,
        }
    }

    /// The answer to `ask` (an acquisition) read into a hold at `now` (unix ms): `Ok(Ok)` when
    /// the seat is held, its lease verified under `terms`; `Ok(Err)` with the answer itself
    /// when the relay gave none (`Full`, `Denied`), for the face to tell. `Err`: a seat whose
    /// lease is missing or does not verify (`protocol_error`: no seat; give it back with
    /// [`SeatHold::release_unheld`]), or an answer that is no acquisition's.
    pub fn acquire(
        terms: &HoldTerms,
        ask: &SeatAsk,
        answer: &SeatAnswer,
        now: u64,
    ) -> Result<Result<SeatHold, SeatAnswer>, Error> {
        SeatHold::acquire_with(terms, ask, answer, now, &Builtin)
    }

    /// [`SeatHold::acquire`] with the lease's signature checked by `ed25519` (the npm seat
    /// module's host verifier, issue #38; everything else about the lease is checked here).
    pub fn acquire_with(
        terms: &HoldTerms,
        ask: &SeatAsk,
        answer: &SeatAnswer,
        now: u64,
        ed25519: &dyn Ed25519,
    ) -> Result<Result<SeatHold, SeatAnswer>, Error> {
        if ask.op != SeatOp::Acquire {
            return Err(Error::invalid("seat", "a hold starts from an acquisition"));
        }
        match answer {
            SeatAnswer::Held(seat) => {
                let claims = terms.verify(seat, &ask.key, &ask.machine, ask.ci, now, ed25519)?;
                let mut hold = SeatHold {
                    terms: terms.clone(),
                    key: ask.key.clone(),
                    machine: ask.machine.clone(),
                    seat: seat.clone(),
                    state: HoldState::Held,
                    lease_end_ms: 0,
                    life_ms: 0,
                    next_ms: 0,
                    failures: 0,
                    not_before_ms: 0,
                    out: false,
                    last_failure: None,
                };
                hold.renewed(seat.clone(), &claims, now);
                Ok(Ok(hold))
            }
            full @ (SeatAnswer::Full(_) | SeatAnswer::Denied(_)) => Ok(Err(full.clone())),
            SeatAnswer::Gone | SeatAnswer::Released(_) => Err(Error::Protocol {
                status: None,
                detail: "the relay answered an acquisition as a heartbeat or a release".into(),
            }),
        }
    }

    /// The release of a seat the relay gave to `ask` in `answer` whose lease did not verify
    /// ([`SeatHold::acquire`]'s `Err`): the seat is not held here, but a real relay counts
    /// it until its life ends; this gives it back. `None` when the answer named no seat.
    pub fn release_unheld(ask: &SeatAsk, answer: &SeatAnswer) -> Option<SeatAsk> {
        match answer {
            SeatAnswer::Held(seat) if ask.op == SeatOp::Acquire => Some(SeatAsk {
                op: SeatOp::Release,
                seat: Some(seat.id.clone()),
                ..ask.clone()
            }),
            _ => None,
        }
    }

    /// A verified lease taken: the seat's new end, the heartbeat's next time.
    fn renewed(&mut self, mut seat: Seat, claims: &SeatClaims, now: u64) {
        let ms = |s: i64| u64::try_from(s).unwrap_or(0).saturating_mul(1_000);
        let life = ms(claims.expires_at.saturating_sub(claims.issued_at));
        let end = ms(claims.expires_at).min(now.saturating_add(life));
        // The signed end is the seat's, whatever the body said.
        seat.expires_at = claims.expires_at;
        self.seat = seat;
        self.lease_end_ms = self.lease_end_ms.max(end);
        self.life_ms = life;
        self.failures = 0;
        self.not_before_ms = 0;
        self.last_failure = None;
        self.next_ms = now.saturating_add(self.every_ms());
    }

    /// The heartbeat interval in ms: a third of the life (at least 1 s), or the terms' own
    /// interval, never longer than that third.
    fn every_ms(&self) -> u64 {
        let third = (self.life_ms / 3).max(DEFAULT_MIN_BEAT_MS);
        match self.terms.every {
            Some(every) => u64::try_from(every.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(MIN_BEAT_MS, third.max(MIN_BEAT_MS)),
            None => third,
        }
    }

    /// When the hold ends unless renewed, unix ms: the lease's end and the grace after it.
    pub fn ends_at_ms(&self) -> u64 {
        let grace = u64::try_from(self.terms.grace.as_millis()).unwrap_or(u64::MAX);
        self.lease_end_ms.saturating_add(grace)
    }

    fn ask(&self, op: SeatOp) -> SeatAsk {
        SeatAsk {
            op,
            key: self.key.clone(),
            machine: self.machine.clone(),
            ci: self.seat.ci,
            seat: Some(self.seat.id.clone()),
        }
    }

    /// What the face does next at `now` (unix ms): send a heartbeat, wait, or nothing more
    /// (the hold ended; at or after its end with no renewal it is [`HoldState::Lost`] from
    /// here on). One heartbeat at a time: while one is out, the wait runs to the hold's end.
    pub fn poll(&mut self, now: u64) -> HoldPoll {
        let end = self.ends_at_ms();
        if self.state == HoldState::Held && now >= end {
            self.state = HoldState::Lost;
            self.out = false;
        }
        if self.state != HoldState::Held {
            return HoldPoll::Ended(self.state);
        }
        if self.out {
            return HoldPoll::Wait(Duration::from_millis(end - now));
        }
        if now >= self.next_ms {
            self.out = true;
            return HoldPoll::Send(self.ask(SeatOp::Heartbeat));
        }
        HoldPoll::Wait(Duration::from_millis(self.next_ms.min(end) - now))
    }

    /// For a face whose app calls for a heartbeat itself (the C ABI, the Tauri command): the
    /// heartbeat to send now even if it is not due yet, as [`SeatHold::poll`] but for the
    /// schedule (a `429`'s `retry-after` is still honoured: `Wait` until then; one heartbeat
    /// at a time; nothing once the hold has ended).
    pub fn heartbeat_now(&mut self, now: u64) -> HoldPoll {
        match self.poll(now) {
            HoldPoll::Wait(_) if !self.out && now >= self.not_before_ms => {
                self.out = true;
                HoldPoll::Send(self.ask(SeatOp::Heartbeat))
            }
            other => other,
        }
    }

    /// How long from `now` (unix ms) until the hold wants to run ([`SeatHold::poll`]),
    /// changing nothing: zero when a heartbeat is due (or one is out and the hold's end has
    /// come), `None` when the hold has ended (or is lost at `now`).
    pub fn next_wait(&self, now: u64) -> Option<Duration> {
        if self.state_at(now) != HoldState::Held {
            return None;
        }
        let at = if self.out {
            self.ends_at_ms()
        } else {
            self.next_ms.min(self.ends_at_ms())
        };
        Some(Duration::from_millis(at.saturating_sub(now)))
    }

    /// What the heartbeat [`SeatHold::poll`] handed out got at `now`: the relay's answer read,
    /// or why there was none. `Ok(Held)`: the seat's life extended (its new lease verified);
    /// `Ok(Gone)`: the relay freed it, or Polar denied the key; `Ok` of the state it already
    /// had when the hold had ended meanwhile (the answer changes nothing). `Err`: the
    /// heartbeat failed (no answer, a `429`, a lease that does not verify, an answer that is
    /// no heartbeat's): the hold stays as it was, and the heartbeat is asked again later
    /// while the lease runs.
    pub fn heartbeat_answered(
        &mut self,
        now: u64,
        answer: &Result<SeatAnswer, Error>,
    ) -> Result<HoldState, Error> {
        self.heartbeat_answered_with(now, answer, &Builtin)
    }

    /// [`SeatHold::heartbeat_answered`] with the new lease's signature checked by `ed25519`.
    /// A verifier that defers (answers [`crate::lease::Checked::Pending`]) makes the lease no
    /// lease for this call: a face whose verifier defers runs this on a clone of the hold,
    /// and on the hold itself once the host has answered.
    pub fn heartbeat_answered_with(
        &mut self,
        now: u64,
        answer: &Result<SeatAnswer, Error>,
        ed25519: &dyn Ed25519,
    ) -> Result<HoldState, Error> {
        self.out = false;
        if self.state != HoldState::Held {
            return Ok(self.state);
        }
        if now >= self.ends_at_ms() {
            // Too late: the relay may have given the seat away meanwhile.
            self.state = HoldState::Lost;
            return Ok(self.state);
        }
        let failure = match answer {
            Ok(SeatAnswer::Held(seat)) if seat.id == self.seat.id => {
                match self
                    .terms
                    .verify(seat, &self.key, &self.machine, self.seat.ci, now, ed25519)
                {
                    Ok(claims) => {
                        self.renewed(seat.clone(), &claims, now);
                        return Ok(HoldState::Held);
                    }
                    Err(e) => e,
                }
            }
            Ok(SeatAnswer::Gone | SeatAnswer::Denied(_)) => {
                self.state = HoldState::Gone;
                return Ok(self.state);
            }
            Ok(other) => Error::Protocol {
                status: None,
                detail: format!("the relay answered a heartbeat with {}", summary(other)),
            },
            Err(e) => e.clone(),
        };
        self.failed(&failure, now);
        Err(failure)
    }

    /// A failed heartbeat: the next one after the backoff (or the `retry-after`).
    fn failed(&mut self, e: &Error, now: u64) {
        self.failures = self.failures.saturating_add(1);
        let doubled = FIRST_RETRY_MS.saturating_mul(1u64 << (self.failures - 1).min(20));
        let mut wait = doubled.min(self.every_ms());
        if let Some(s) = e.retry_after() {
            wait = wait.max(s.saturating_mul(1_000));
            self.not_before_ms = now.saturating_add(s.saturating_mul(1_000));
        }
        self.next_ms = now.saturating_add(wait);
        self.last_failure = Some(e.text());
    }

    /// For a hold lost at `now` (unix ms; [`SeatHold::state_at`]): why, as every face tells
    /// it (reason `seat_lost`).
    pub fn lost(&self, now: u64) -> Option<Error> {
        (self.state_at(now) == HoldState::Lost).then(|| Error::SeatLost {
            ended_at: i64::try_from(self.ends_at_ms() / 1_000).unwrap_or(i64::MAX),
            cause: self
                .last_failure
                .clone()
                .unwrap_or_else(|| "no heartbeat was answered in time".to_string()),
        })
    }

    /// The release to send, or `None` when already released. A gone or lost seat is
    /// released too (the relay answers whether it still held it; nothing is lost).
    pub fn release_ask(&self) -> Option<SeatAsk> {
        (self.state != HoldState::Released).then(|| self.ask(SeatOp::Release))
    }

    /// The release was sent (whatever came of it: a seat the relay could not be told of
    /// frees by itself at its lease's end): the hold is released; nothing more is sent.
    pub fn released(&mut self) -> HoldState {
        self.state = HoldState::Released;
        self.out = false;
        self.state
    }

    /// How often to heartbeat: a third of the seat's life as its lease signs it (or the
    /// terms' interval).
    pub fn heartbeat_every(&self) -> Duration {
        Duration::from_millis(self.every_ms())
    }

    /// The seat as the relay last answered it, its `expires_at` the signed lease's.
    pub fn seat(&self) -> &Seat {
        &self.seat
    }

    /// Where the hold stands (as the last [`SeatHold::poll`] or answer left it: poll, or ask
    /// [`SeatHold::state_at`], to learn that a lease has ended).
    pub fn state(&self) -> HoldState {
        self.state
    }

    /// Where the hold stands at `now` (unix ms), changing nothing: [`HoldState::Lost`] from
    /// the hold's end on, even before a poll ends it (a face whose heartbeat thread is late
    /// never says `held` past the end).
    pub fn state_at(&self, now: u64) -> HoldState {
        match self.state {
            HoldState::Held if now >= self.ends_at_ms() => HoldState::Lost,
            state => state,
        }
    }

    /// The machine binding the seat was acquired with.
    pub fn machine(&self) -> &str {
        &self.machine
    }

    /// The key the seat is of.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The terms the hold was made with.
    pub fn terms(&self) -> &HoldTerms {
        &self.terms
    }
}

/// An answer, in a word, for an error's detail.
fn summary(answer: &SeatAnswer) -> &'static str {
    match answer {
        SeatAnswer::Held(_) => "another seat",
        SeatAnswer::Full(_) => "seats_full",
        SeatAnswer::Gone => "seat_gone",
        SeatAnswer::Released(_) => "a release's answer",
        SeatAnswer::Denied(_) => "a denial",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use crate::lease::{key_hash, SigningKey};

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
    const ID: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";
    const LIFE: i64 = 300;

    /// A seat's rig (the seat machines' tests share it: src/seat_beat.rs).
    pub(crate) struct Rig {
        signer: SigningKey,
        terms: HoldTerms,
        key: Key,
        /// Unix seconds.
        pub(crate) now: i64,
    }

    pub(crate) fn rig() -> Rig {
        let (signer, keys, key, now) = crate::lease::seat_rig();
        Rig {
            signer,
            terms: HoldTerms::new(keys, ORG).unwrap(),
            key,
            now,
        }
    }

    pub(crate) fn ms(s: i64) -> u64 {
        u64::try_from(s).unwrap() * 1_000
    }

    impl Rig {
        fn claims(&self, issued_at: i64) -> SeatClaims {
            SeatClaims {
                organization_id: ORG.into(),
                key_sha256: key_hash(&self.key),
                seat: ID.into(),
                kind: "floating".into(),
                issued_at,
                expires_at: issued_at + LIFE,
                size: 1,
                borrowed: false,
            }
        }

        /// The relay's answer at `at` (unix s): a seat with a lease signed by `signer` of
        /// `claims` for `machine`, or none.
        fn answer(&self, lease: Option<String>, at: i64) -> SeatAnswer {
            SeatAnswer::Held(Seat {
                id: ID.into(),
                ci: false,
                expires_at: at + LIFE,
                expires_in: 300,
                in_use: 1,
                size: 1,
                lease,
            })
        }

        fn signed(&self, claims: &SeatClaims, machine: &str) -> Option<String> {
            Some(self.signer.sign_seat(claims, machine).unwrap())
        }

        fn good(&self, at: i64) -> SeatAnswer {
            self.answer(self.signed(&self.claims(at), "m"), at)
        }

        fn ask(&self) -> SeatAsk {
            SeatHold::acquire_ask(self.key.clone(), "m".into(), false)
        }

        /// A seat of 300 s acquired at `now`.
        pub(crate) fn hold(&self) -> SeatHold {
            SeatHold::acquire(&self.terms, &self.ask(), &self.good(self.now), ms(self.now))
                .unwrap()
                .unwrap()
        }
    }

    fn offline() -> Result<SeatAnswer, Error> {
        Err(Error::Offline {
            timeout: false,
            detail: "connection refused".into(),
        })
    }

    /// A verifier that answers `answer` for every signature, and says whether it was asked
    /// (as the npm seat module's host verifier defers).
    struct Fixed {
        answer: crate::lease::Checked,
        asked: core::cell::Cell<bool>,
    }

    impl Ed25519 for Fixed {
        fn verify(&self, _: &[u8; 32], _: &[u8], _: &[u8; 64]) -> crate::lease::Checked {
            self.asked.set(true);
            self.answer
        }

        fn defers(&self) -> bool {
            self.answer == crate::lease::Checked::Pending
        }
    }

    fn fixed(answer: crate::lease::Checked) -> Fixed {
        Fixed {
            answer,
            asked: core::cell::Cell::new(false),
        }
    }

    /// The `_with` forms (the npm seat module's): the signature is the verifier's word, the
    /// claims still the core's. A verifier that has not answered yet (`Pending`) or says
    /// `Invalid` holds no seat; one that says `Valid` for a lease of other claims (another
    /// machine's binding is only in the signed bytes; another key's hash is a claim) holds
    /// none either. A heartbeat tried on a clone with a deferring verifier leaves the hold
    /// itself as it was.
    #[test]
    fn a_verifier_of_the_hosts_decides_the_signature_only() {
        use crate::lease::Checked;
        let r = rig();
        let at = ms(r.now);
        for answer in [Checked::Pending, Checked::Invalid] {
            let v = fixed(answer);
            let e = SeatHold::acquire_with(&r.terms, &r.ask(), &r.good(r.now), at, &v)
                .expect_err("no seat");
            assert_eq!(e.reason(), crate::Reason::ProtocolError, "{answer:?}");
            assert!(v.asked.get());
        }
        let v = fixed(Checked::Valid);
        assert!(
            SeatHold::acquire_with(&r.terms, &r.ask(), &r.good(r.now), at, &v)
                .unwrap()
                .is_ok()
        );
        let mut other = r.claims(r.now);
        other.key_sha256 = key_hash(&Key::new("ANOTHER-KEY"));
        let forged = r.answer(r.signed(&other, "m"), r.now);
        assert!(SeatHold::acquire_with(&r.terms, &r.ask(), &forged, at, &v).is_err());

        let hold = r.hold();
        let mut trial = hold.clone();
        let beat_at = at + 100_000;
        assert!(matches!(trial.poll(beat_at), HoldPoll::Send(_)));
        let renewed = Ok(r.good(r.now + 100));
        let pending = fixed(Checked::Pending);
        assert!(trial
            .heartbeat_answered_with(beat_at, &renewed, &pending)
            .is_err());
        assert_eq!(
            hold.ends_at_ms(),
            ms(r.now + LIFE),
            "the hold itself untouched"
        );
        let mut held = hold.clone();
        assert!(matches!(held.poll(beat_at), HoldPoll::Send(_)));
        assert_eq!(
            held.heartbeat_answered_with(beat_at, &renewed, &fixed(Checked::Valid))
                .unwrap(),
            HoldState::Held
        );
        assert_eq!(held.ends_at_ms(), ms(r.now + 100 + LIFE));
    }

    #[test]
    fn a_face_without_relay_keys_cannot_hold_a_seat() {
        let e = HoldTerms::new(RelayKeys::new(), ORG).unwrap_err();
        assert_eq!(e.reason(), crate::Reason::InvalidInput);
        assert_eq!(e.field(), Some("relay_keys"));
        let (_, keys, _, _) = crate::lease::seat_rig();
        assert_eq!(
            HoldTerms::new(keys, "not-an-org").unwrap_err().field(),
            Some("organization_id")
        );
    }

    /// A 200 that holds a seat only in its body is no seat: no lease, a lease by another
    /// relay's key, for another machine, key, organization, seat or kind, or expired.
    #[test]
    fn a_forged_200_holds_no_seat() {
        let r = rig();
        let now = ms(r.now);
        let other = SigningKey::generate(Some("k1")).unwrap();
        let mut forged = vec![
            ("no lease", r.answer(None, r.now)),
            (
                "another relay's key",
                r.answer(Some(other.sign_seat(&r.claims(r.now), "m").unwrap()), r.now),
            ),
            (
                "another machine",
                r.answer(r.signed(&r.claims(r.now), "m2"), r.now),
            ),
            (
                "expired",
                r.answer(r.signed(&r.claims(r.now - LIFE - 1), "m"), r.now),
            ),
        ];
        let mut other_key = r.claims(r.now);
        other_key.key_sha256 = key_hash(&Key::new("K-2"));
        forged.push(("another key", r.answer(r.signed(&other_key, "m"), r.now)));
        let mut other_org = r.claims(r.now);
        other_org.organization_id = "e2fcbff8-108b-411e-bf2b-6383e0a8802d".into();
        forged.push(("another org", r.answer(r.signed(&other_org, "m"), r.now)));
        let mut other_seat = r.claims(r.now);
        other_seat.seat = "7a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into();
        forged.push(("another seat", r.answer(r.signed(&other_seat, "m"), r.now)));
        let mut ci = r.claims(r.now);
        ci.kind = "ci".into();
        forged.push(("another kind", r.answer(r.signed(&ci, "m"), r.now)));
        for (why, answer) in forged {
            let e = SeatHold::acquire(&r.terms, &r.ask(), &answer, now).unwrap_err();
            assert_eq!(e.reason(), crate::Reason::ProtocolError, "{why}: {e}");
            assert!(e.to_string().contains("no lease"), "{why}: {e}");
            // The seat the answer named is given back.
            let back = SeatHold::release_unheld(&r.ask(), &answer).unwrap();
            assert_eq!((back.op, back.seat.as_deref()), (SeatOp::Release, Some(ID)));
        }
        // And at a heartbeat: a forged extension extends nothing.
        let mut hold = r.hold();
        let end = hold.ends_at_ms();
        let HoldPoll::Send(_) = hold.poll(now + ms(100)) else {
            panic!("a heartbeat due at a third of the life");
        };
        let later = r.now + 100;
        let e = hold
            .heartbeat_answered(now + ms(100), &Ok(r.answer(None, later)))
            .unwrap_err();
        assert_eq!(e.reason(), crate::Reason::ProtocolError);
        assert_eq!(hold.ends_at_ms(), end);
        assert_eq!(hold.state(), HoldState::Held);
        // The real one does.
        let HoldPoll::Send(_) = hold.poll(now + ms(101)) else {
            panic!("retried after a second");
        };
        assert_eq!(
            hold.heartbeat_answered(now + ms(101), &Ok(r.good(later))),
            Ok(HoldState::Held)
        );
        assert_eq!(hold.ends_at_ms(), ms(later + LIFE));
        assert_eq!(hold.seat().expires_at, later + LIFE);
    }

    /// The relay out of reach: held until the lease's end, lost at it; never a heartbeat
    /// sent at or past it; retries back off within it.
    #[test]
    fn a_relay_out_of_reach_ends_the_hold_at_the_leases_end() {
        let r = rig();
        let start = ms(r.now);
        let mut hold = r.hold();
        assert_eq!(hold.heartbeat_every(), Duration::from_secs(100));
        assert_eq!(hold.ends_at_ms(), start + ms(LIFE));
        assert_eq!(hold.poll(start), HoldPoll::Wait(Duration::from_secs(100)));
        let mut now = start + ms(100);
        let mut sent = Vec::new();
        loop {
            match hold.poll(now) {
                HoldPoll::Send(ask) => {
                    assert_eq!(ask.op, SeatOp::Heartbeat);
                    assert!(now < start + ms(LIFE), "a heartbeat at or past the end");
                    assert_eq!(hold.state(), HoldState::Held);
                    sent.push(now - start);
                    // While it is out, the wait runs to the end.
                    assert_eq!(
                        hold.poll(now),
                        HoldPoll::Wait(Duration::from_millis(start + ms(LIFE) - now))
                    );
                    assert!(hold.heartbeat_answered(now, &offline()).is_err());
                }
                HoldPoll::Wait(d) => {
                    assert!(now + u64::try_from(d.as_millis()).unwrap() <= start + ms(LIFE));
                    now += u64::try_from(d.as_millis()).unwrap();
                }
                HoldPoll::Ended(state) => {
                    assert_eq!(state, HoldState::Lost);
                    break;
                }
            }
        }
        assert_eq!(now, start + ms(LIFE), "lost at the lease's end, not after");
        // 100 s, then 1, 2, 4, … s after each failure, at most 100 s apart.
        let gaps: Vec<u64> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            &gaps[..7],
            &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000]
        );
        assert!(gaps.iter().all(|g| *g <= 100_000), "{gaps:?}");
        let e = hold.lost(now).unwrap();
        assert_eq!(e.reason(), crate::Reason::SeatLost);
        assert!(e.to_string().contains("connection refused"), "{e}");
        assert!(hold.poll(now + 1).eq(&HoldPoll::Ended(HoldState::Lost)));
        // A late answer brings nothing back.
        assert_eq!(
            hold.heartbeat_answered(now + 1, &Ok(r.good(r.now + LIFE))),
            Ok(HoldState::Lost)
        );
        // The seat is still given back (the relay may still count it).
        assert_eq!(hold.release_ask().unwrap().op, SeatOp::Release);
        assert_eq!(hold.released(), HoldState::Released);
        assert!(hold.release_ask().is_none());
    }

    #[test]
    fn an_answer_arriving_after_the_end_is_too_late_and_a_grace_extends_the_end() {
        let r = rig();
        let start = ms(r.now);
        let mut hold = r.hold();
        assert!(matches!(hold.poll(start + ms(100)), HoldPoll::Send(_)));
        // The heartbeat hung until past the end: lost, whatever it brings.
        assert_eq!(
            hold.heartbeat_answered(start + ms(LIFE), &Ok(r.good(r.now + 100))),
            Ok(HoldState::Lost)
        );
        // With a grace of 30 s: held at the end and through the grace, lost at its end.
        let graced = HoldTerms {
            grace: Duration::from_secs(30),
            ..r.terms.clone()
        };
        let mut hold = SeatHold::acquire(&graced, &r.ask(), &r.good(r.now), start)
            .unwrap()
            .unwrap();
        assert_eq!(hold.ends_at_ms(), start + ms(LIFE + 30));
        let mut now = start;
        let lost_at = loop {
            match hold.poll(now) {
                HoldPoll::Send(_) => {
                    let _ = hold.heartbeat_answered(now, &offline());
                }
                HoldPoll::Wait(d) => now += u64::try_from(d.as_millis()).unwrap(),
                HoldPoll::Ended(s) => break (s, now),
            }
        };
        assert_eq!(lost_at, (HoldState::Lost, start + ms(LIFE + 30)));
        assert_eq!(hold.lost(now).unwrap().reason(), crate::Reason::SeatLost);
        // A retry was tried within the grace.
        let mut hold = SeatHold::acquire(&graced, &r.ask(), &r.good(r.now), start)
            .unwrap()
            .unwrap();
        hold.next_ms = start + ms(LIFE + 10);
        assert_eq!(
            hold.poll(start + ms(LIFE)),
            HoldPoll::Wait(Duration::from_secs(10))
        );
        assert_eq!(hold.state(), HoldState::Held);
        assert!(matches!(
            hold.poll(start + ms(LIFE + 10)),
            HoldPoll::Send(_)
        ));
    }

    #[test]
    fn a_429s_retry_after_is_honoured_and_never_past_the_end() {
        let r = rig();
        let start = ms(r.now);
        let mut hold = r.hold();
        assert!(matches!(hold.poll(start + ms(100)), HoldPoll::Send(_)));
        let limited = Err(Error::RateLimited {
            retry_after: Some(30),
        });
        assert!(hold.heartbeat_answered(start + ms(100), &limited).is_err());
        assert_eq!(
            hold.poll(start + ms(100)),
            HoldPoll::Wait(Duration::from_secs(30))
        );
        assert!(matches!(hold.poll(start + ms(130)), HoldPoll::Send(_)));
        // A retry-after past the end: no heartbeat before the end, lost at it.
        let later = Err(Error::RateLimited {
            retry_after: Some(3_600),
        });
        assert!(hold.heartbeat_answered(start + ms(130), &later).is_err());
        assert_eq!(
            hold.poll(start + ms(130)),
            HoldPoll::Wait(Duration::from_secs(170))
        );
        assert_eq!(
            hold.poll(start + ms(LIFE)),
            HoldPoll::Ended(HoldState::Lost)
        );
    }

    #[test]
    fn a_heartbeat_asked_for_early_is_sent_but_not_before_a_429s_wait() {
        let r = rig();
        let start = ms(r.now);
        let mut hold = r.hold();
        assert_eq!(
            hold.next_wait(start + ms(40)),
            Some(Duration::from_secs(60))
        );
        let HoldPoll::Send(_) = hold.heartbeat_now(start + ms(40)) else {
            panic!("sent when asked");
        };
        // One at a time.
        assert!(matches!(
            hold.heartbeat_now(start + ms(40)),
            HoldPoll::Wait(_)
        ));
        let limited = Err(Error::RateLimited {
            retry_after: Some(20),
        });
        assert!(hold.heartbeat_answered(start + ms(41), &limited).is_err());
        assert_eq!(
            hold.heartbeat_now(start + ms(50)),
            HoldPoll::Wait(Duration::from_secs(11))
        );
        assert!(matches!(
            hold.heartbeat_now(start + ms(61)),
            HoldPoll::Send(_)
        ));
        assert_eq!(
            hold.heartbeat_answered(start + ms(61), &Ok(r.good(r.now + 61))),
            Ok(HoldState::Held)
        );
        assert_eq!(
            hold.next_wait(start + ms(61)),
            Some(Duration::from_secs(100))
        );
        assert_eq!(hold.next_wait(start + ms(61 + LIFE)), None);
        assert_eq!(hold.state_at(start + ms(61 + LIFE)), HoldState::Lost);
        assert_eq!(hold.state(), HoldState::Held, "state_at changes nothing");
        assert_eq!(
            hold.heartbeat_now(start + ms(61 + LIFE)),
            HoldPoll::Ended(HoldState::Lost)
        );
    }

    #[test]
    fn a_hold_heartbeats_until_gone_and_releases_once() {
        let r = rig();
        let start = ms(r.now);
        let mut hold = r.hold();
        let HoldPoll::Send(beat) = hold.poll(start + ms(100)) else {
            panic!("due");
        };
        assert_eq!(
            (beat.op, beat.seat.as_deref()),
            (SeatOp::Heartbeat, Some(ID))
        );
        // Another seat's answer is not this seat's life.
        let mut other = r.good(r.now + 100);
        if let SeatAnswer::Held(s) = &mut other {
            s.id = "7a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into();
        }
        assert!(hold
            .heartbeat_answered(start + ms(100), &Ok(other))
            .is_err());
        assert_eq!(hold.ends_at_ms(), start + ms(LIFE));
        assert!(matches!(hold.poll(start + ms(101)), HoldPoll::Send(_)));
        assert_eq!(
            hold.heartbeat_answered(start + ms(101), &Ok(SeatAnswer::Gone)),
            Ok(HoldState::Gone)
        );
        assert_eq!(hold.poll(start + ms(102)), HoldPoll::Ended(HoldState::Gone));
        assert!(hold.lost(start + ms(102)).is_none());
        assert_eq!(hold.release_ask().unwrap().op, SeatOp::Release);
        assert_eq!(hold.released(), HoldState::Released);
        assert!(hold.release_ask().is_none());
        assert_eq!(
            hold.poll(start + ms(103)),
            HoldPoll::Ended(HoldState::Released)
        );
    }

    #[test]
    fn an_acquisition_refused_is_handed_back_and_the_interval_follows_the_terms() {
        let r = rig();
        let full = SeatAnswer::Full(crate::seat::SeatsFull {
            in_use: 1,
            size: 1,
            frees_at: Some(1),
            retry_after: Some(2),
        });
        let start = ms(r.now);
        assert_eq!(
            SeatHold::acquire(&r.terms, &r.ask(), &full, start)
                .unwrap()
                .err(),
            Some(full.clone())
        );
        assert!(SeatHold::release_unheld(&r.ask(), &full).is_none());
        assert!(SeatHold::acquire(&r.terms, &r.ask(), &SeatAnswer::Gone, start).is_err());
        let quick = r.terms.clone().with_heartbeat(Duration::from_millis(400));
        let hold = SeatHold::acquire(&quick, &r.ask(), &r.good(r.now), start)
            .unwrap()
            .unwrap();
        assert_eq!(hold.heartbeat_every(), Duration::from_millis(400));
        // Never longer apart than a third of the life.
        let slow = r.terms.clone().with_heartbeat(Duration::from_secs(200));
        let hold = SeatHold::acquire(&slow, &r.ask(), &r.good(r.now), start)
            .unwrap()
            .unwrap();
        assert_eq!(hold.heartbeat_every(), Duration::from_secs(100));
    }
}
