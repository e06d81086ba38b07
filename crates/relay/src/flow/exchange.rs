//! One request through the relay, as a machine: the host asks [`Exchange::want`] what to do
//! next and hands back what it got with [`Exchange::give`]. The order of the request path is
//! held here, each decision asked of the relay's part that owns it through [`Core`]: the
//! operator's routes (`/healthz`, the metrics), a webhook refused on its head before its body
//! is read, the body's cap, the per-IP limit before any storage read, what the request touches
//! in a host-kept store, the core's routing (Polar's input checks, the per-key limit, CORS, the
//! breaker, the first-seen share, the store), the waits for another check's call of the same
//! entry (at most [`crate::FLIGHT_WAITS`]), stale-while-revalidate (a stored answer once the
//! check's patience passed, the call going on), the lease's signature, the store's changes
//! saved before the answer (a webhook refused when they are not), and the answer counted. The
//! host moves bytes and time; how hosts truly differ is [`crate::Host`]'s to say (host.rs), and
//! whether a store is loaded by its host is the store's ([`crate::store::Backend::host_loads`]).

use polar_license::portal::Method;
use polar_license::{HttpRequest, HttpResponse, TransportError, TransportErrorKind};

use super::{Core, FirstRead, Moment};
use crate::clock::Now;
use crate::pending::{Pending, Routed};
use crate::route::target::Target;
use crate::route::Route;
use crate::store::Wants;
use crate::types::{Finished, RelayRequest, RelayResponse, STALE_AFTER_MS, WEBHOOK_MAX_BODY_BYTES};

/// Answers of another need than the one asked that end an exchange ([`Exchange::give`]).
const MISMATCHES: u32 = 8;

/// How a host runs its exchanges (fixed for the relay's life).
#[derive(Clone, Default)]
pub struct ExchangeOptions {
    /// The metrics route and the bearer token it asks for (`None`: no such route here).
    pub metrics: Option<(String, String)>,
    /// How long a check with a stored answer waits for Polar before it is given that answer
    /// ([`STALE_AFTER_MS`] by default, when 0).
    pub stale_after_ms: u64,
}

impl std::fmt::Debug for ExchangeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeOptions")
            .field("metrics", &self.metrics.as_ref().map(|(route, _)| route))
            .field("stale_after_ms", &self.stale_after_ms)
            .finish()
    }
}

/// What the host loads from its storage before the core reads it (a host-kept store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// The store's entries and index rows the request touches.
    pub store: Option<Wants>,
    /// The roster's digest (hex) of the request's key, when the roster has not read it.
    pub roster: Option<String>,
}

/// What the exchange needs of its host next.
#[derive(Debug, Clone)]
pub enum Need {
    /// Read the request's body, at most `max` bytes (one more than the relay takes, so a
    /// body over it is answered 413, never read whole): give [`Given::Body`].
    Body {
        /// The most bytes to read.
        max: usize,
    },
    /// Load what the request touches from the host's storage: give [`Given::Loaded`].
    Load(Load),
    /// Another check of the same entry is asking Polar (its [`Need::Send`] named `flight`):
    /// give [`Given::Landed`] once it landed ([`Need::Landed`]), or [`Given::Patience`] when
    /// `patience_ms` (if any) passed first.
    Flight {
        /// The flight waited for.
        flight: String,
        /// How long to wait before [`Given::Patience`] (`None`: until it lands).
        patience_ms: Option<u64>,
    },
    /// Only on a host whose calls hold a thread ([`crate::types::Host::call_slots`]): wait for a slot to call Polar on, then give
    /// [`Given::Slot`] (and hold the slot until the exchange has taken the answer of the
    /// [`Need::Send`] that follows: until it asks for anything else; a need other than that
    /// `Send` next: the slot is not used, free it). When
    /// `patience_ms` (if any) passes first, give [`Given::Patience`] and keep waiting: the
    /// same need comes again.
    Slot {
        /// How long to wait before [`Given::Patience`] (`None`: until a slot is free).
        patience_ms: Option<u64>,
    },
    /// Send this request to Polar (it holds the token and the key: never log it) and give
    /// its answer ([`Given::Upstream`]); when `patience_ms` passes first, give
    /// [`Given::Patience`] and keep the call going ([`Need::Call`] asks for its answer).
    Send {
        /// The call.
        request: HttpRequest,
        /// Its method: `POST` with the request's body (the license routes), or `GET` with its
        /// URL and headers and no body (a device listing's read of the key's record).
        method: Method,
        /// The flight this call leads: other checks wait on it until [`Need::Landed`].
        flight: Option<String>,
        /// How long to wait for it before [`Given::Patience`] (`None`: until it answers).
        patience_ms: Option<u64>,
    },
    /// The answer of the call [`Need::Send`] started: give [`Given::Upstream`].
    Call,
    /// Sign these bytes with Ed25519 (the lease's pre-authentication encoding): give
    /// [`Given::Signature`] (empty when the host could not sign).
    Sign(Vec<u8>),
    /// Save the store's changes: give [`Given::Persisted`].
    Persist,
    /// The flight this exchange led has landed: wake the checks waiting on it. Nothing to give.
    Landed(String),
    /// A warning to log. Nothing to give.
    Warn(String),
    /// An error to log. Nothing to give.
    Error(String),
    /// Send this answer to the client; then ask again (a call may still go on). Nothing to give.
    Respond(RelayResponse),
    /// Nothing more.
    Done,
}

impl Need {
    /// Writes a [`Need::Warn`] or a [`Need::Error`] to the log (the native hosts' one way of
    /// meeting them); any other need is left alone.
    // The native server's (and the unit tests' blocking host's).
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn log(&self) {
        match self {
            Need::Warn(text) => log::warn!("relay: {text}"),
            Need::Error(text) => log::error!("relay: {text}"),
            _ => {}
        }
    }
}

/// What the host got for a [`Need`].
#[derive(Debug)]
pub enum Given {
    /// The body read ([`Need::Body`]).
    Body(Vec<u8>),
    /// What [`Need::Load`] named is loaded (as far as it could be read).
    Loaded,
    /// The flight waited for landed.
    Landed,
    /// A slot to call Polar on is the host's ([`Need::Slot`]).
    Slot,
    /// The wait's or the call's patience passed first.
    Patience,
    /// Polar's answer, or why there is none.
    Upstream(Result<HttpResponse, TransportError>),
    /// The signature of [`Need::Sign`]'s bytes (empty: none could be made).
    Signature(Vec<u8>),
    /// Whether the store's changes were saved.
    Persisted(bool),
}

/// What follows a load.
enum After {
    Begin,
    /// A wait's patience passed: its stored answer, else begin again.
    StaleWait(Box<Pending>),
    /// A call's patience passed: its stored answer while the call goes on.
    StaleCall(Box<Pending>, Option<String>),
    /// A slot's patience passed: its stored answer while the call waits for its slot.
    StaleSlot(Box<Pending>, Option<String>),
    /// The call's answer kept.
    Finish(Finish),
}

/// A call's end: its answer (or why there is none) to keep.
struct Finish {
    pending: Box<Pending>,
    flight: Option<String>,
    upstream: Result<HttpResponse, TransportError>,
    /// The client was answered already (stale-while-revalidate).
    tail: bool,
    /// Whether the call was made (not: the breaker opened while it waited for its slot).
    made: bool,
}

impl Finish {
    /// A call made, with its answer (`tail`: the client was answered already).
    fn made(
        pending: Box<Pending>,
        flight: Option<String>,
        upstream: Result<HttpResponse, TransportError>,
        tail: bool,
    ) -> Finish {
        Finish {
            pending,
            flight,
            upstream,
            tail,
            made: true,
        }
    }
}

/// What goes on after a stale answer: the call under way, or still waiting for its slot.
enum Tail {
    Call(Box<Pending>, Option<String>),
    Slot(Box<Pending>, Option<String>),
}

enum State {
    Head,
    Body,
    Admit,
    Fill(After),
    Loading(After),
    Begin,
    Waiting(Option<Box<Pending>>),
    /// Waiting for a slot to call on (`deadline`: the monotonic ms at which the check's
    /// patience passes; `tail`: the client was answered already).
    Slotting {
        pending: Box<Pending>,
        flight: Option<String>,
        deadline: Option<u64>,
        tail: bool,
    },
    Asking(Box<Pending>, Option<String>),
    Calling(Box<Pending>, Option<String>, bool),
    /// A grant's lease waits for its customer's values (issue #80): waiting for a slot to
    /// read a page on (a host whose calls hold a thread), then for the page.
    FirstSlot(Box<(Finish, FirstRead)>),
    FirstPage(Box<(Finish, FirstRead)>),
    Signing(Finished),
    Answered(RelayResponse),
    Persisting(RelayResponse),
    Tail,
    TailPersisting,
    Done,
}

/// One request through the relay (see the module docs). Made by [`Exchange::new`] from the
/// request's head (its body is asked for when needed), driven by the host's one loop:
///
/// ```text
/// loop { match exchange.want(&relay, now, entropy) { need => exchange.give(got) } }
/// ```
pub struct Exchange {
    req: RelayRequest,
    /// Where the request's path points, read from its head ([`Target::of`]).
    target: Target,
    /// The request read once, after its body ([`Route::parse`]); `None` until then.
    route: Option<Route>,
    options: ExchangeOptions,
    state: State,
    /// What the host gave for the last need, not taken yet.
    given: Option<Given>,
    /// Needs with nothing to give, sent before the next.
    queue: std::collections::VecDeque<Need>,
    /// The need waiting for its answer (asked again until given).
    outstanding: Option<Need>,
    /// How many times this check waited for another's call.
    waited: u32,
    /// Counted in flight (the operator's routes and head refusals are not).
    in_flight: bool,
    /// Counted as the relay's answer (the operator's routes are not).
    counted: bool,
    /// The call that goes on after a stale answer, its answer kept in the store.
    tail: Option<Tail>,
    /// Answers the host gave that were not for the need asked (a host's fault).
    mismatched: u32,
    /// Whether the answer was asked for the call it leads to ([`Core`]'s `follow`).
    followed: bool,
}

debug_some!(Exchange, e => { "request": e.req, "waited": e.waited });

impl Exchange {
    /// An exchange for a request's head (`req.body` is ignored: [`Need::Body`] asks for it).
    pub fn new(mut req: RelayRequest, options: ExchangeOptions) -> Exchange {
        req.body.clear();
        Exchange {
            target: Target::of(&req.path),
            route: None,
            req,
            options,
            state: State::Head,
            given: None,
            queue: std::collections::VecDeque::new(),
            outstanding: None,
            waited: 0,
            in_flight: false,
            counted: true,
            tail: None,
            mismatched: 0,
            followed: false,
        }
    }

    /// The request as the core reads it (its body once read).
    pub fn request(&self) -> &RelayRequest {
        &self.req
    }

    /// Hands back what the host got for the last [`Need`].
    pub fn give(&mut self, given: Given) {
        self.given = Some(given);
    }

    /// What the host does next. `now`: the time now; `entropy`: 16 random bytes (a lease's
    /// id, when one is made in this step; `None`: no lease can be made).
    pub fn want<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> Need {
        loop {
            if let Some(need) = self.queue.pop_front() {
                return need;
            }
            if let Some(need) = &self.outstanding {
                if self.given.is_none() {
                    return need.clone();
                }
            }
            let asked = self.outstanding.take();
            let given = self.given.take();
            let state = std::mem::replace(&mut self.state, State::Done);
            self.state = self.step(relay, Moment { now, entropy }, state, given, asked);
            if matches!(self.state, State::Done)
                && self.queue.is_empty()
                && self.outstanding.is_none()
            {
                return Need::Done;
            }
        }
    }

    /// Asks `need` of the host, staying in `state` until it answers.
    fn ask(&mut self, need: Need, state: State) -> State {
        self.outstanding = Some(need);
        state
    }

    fn step<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        at: Moment,
        state: State,
        given: Option<Given>,
        asked: Option<Need>,
    ) -> State {
        let now = at.now;
        match (state, given) {
            (State::Head, _) => {
                if let Some(r) = operator(relay, &self.req, self.options.metrics.as_ref(), now) {
                    self.counted = false;
                    return State::Persisting(r).persist(self);
                }
                if let Some(mut r) = relay.refuse_unread(&self.req, self.target, now) {
                    relay.cors(&self.req, &mut r);
                    return State::Persisting(r).persist(self);
                }
                if self.req.method == "GET" || self.req.method == "HEAD" {
                    return self.started(relay);
                }
                let mut max = relay.max_body_bytes();
                if self.target == Target::Webhook {
                    max = max.max(WEBHOOK_MAX_BODY_BYTES);
                }
                self.ask(
                    Need::Body {
                        max: max.saturating_add(1),
                    },
                    State::Body,
                )
            }
            (State::Body, Some(Given::Body(body))) => {
                self.req.body = body;
                self.started(relay)
            }
            (State::Admit, _) => {
                let (req, route) = self.read(relay);
                match relay.admit(req, route, now) {
                    Some(mut r) => {
                        relay.cors(&self.req, &mut r);
                        State::Answered(r)
                    }
                    None => State::Fill(After::Begin),
                }
            }
            (State::Fill(after), _) => {
                // Loaded by the host only when the store is its to read per key (no host flag:
                // the store says, `Backend::host_loads`).
                if !relay.host_loads() {
                    return self.loaded(relay, at, after);
                }
                let (req, route) = self.read(relay);
                let load = Load {
                    store: relay.store_wants(req, route, now.unix_seconds),
                    roster: relay.roster_wants(route),
                };
                if load.store.is_none() && load.roster.is_none() {
                    return self.loaded(relay, at, after);
                }
                self.ask(Need::Load(load), State::Loading(after))
            }
            (State::Loading(after), Some(Given::Loaded)) => self.loaded(relay, at, after),
            (State::Begin, _) => {
                let waited = self.waited;
                let (req, route) = self.read(relay);
                let routed = relay.begin_admitted(req, route, at, waited);
                self.begun(relay, at, routed)
            }
            (State::Waiting(check), Some(Given::Patience)) => match check {
                Some(check) => State::Fill(After::StaleWait(check)),
                None => self.again(),
            },
            (State::Waiting(..), Some(Given::Landed)) => self.again(),
            (
                State::Slotting {
                    pending,
                    flight,
                    deadline,
                    tail,
                },
                Some(Given::Slot),
            ) => self.slotted(relay, now, pending, flight, deadline, tail),
            (
                State::Slotting {
                    pending,
                    flight,
                    tail: false,
                    ..
                },
                Some(Given::Patience),
            ) => State::Fill(After::StaleSlot(pending, flight)),
            (State::Asking(pending, flight), Some(Given::Upstream(upstream))) => {
                self.answered(relay, now, Finish::made(pending, flight, upstream, false))
            }
            (State::Asking(pending, flight), Some(Given::Patience)) => {
                State::Fill(After::StaleCall(pending, flight))
            }
            (State::Calling(pending, flight, tail), Some(Given::Upstream(upstream))) => {
                self.answered(relay, now, Finish::made(pending, flight, upstream, tail))
            }
            (State::FirstSlot(held), Some(Given::Slot)) => {
                let need = first_page(&held.1);
                self.ask(need, State::FirstPage(held))
            }
            (State::FirstPage(held), Some(Given::Upstream(answer))) => {
                let (finish, read) = *held;
                match relay.first_answered(read, answer, now) {
                    Some(read) => self.first_read(relay, finish, read),
                    None => State::Fill(After::Finish(finish)),
                }
            }
            (State::Signing(finished), Some(Given::Signature(signature))) => {
                let (mut r, leased) = relay.assemble(finished, &signature);
                relay.cors(&self.req, &mut r);
                if !leased {
                    self.queue.push_back(Need::Error(
                        "the lease did not verify with the signing key's public key: answered without one"
                            .into(),
                    ));
                }
                State::Answered(r)
            }
            (State::Answered(r), _) if !self.followed => {
                // A call this answer leads to (a device listing's read after its key's
                // verdict), asked once: its own answer is the request's.
                self.followed = true;
                let follows = {
                    let (req, route) = self.read(relay);
                    relay.follows(req, route, &r, at)
                };
                match follows {
                    // A host whose calls hold a thread waits for a slot first, as for any call.
                    Some(Ok(read)) if relay.host().call_slots() => self.ask(
                        Need::Slot { patience_ms: None },
                        State::Slotting {
                            pending: read,
                            flight: None,
                            deadline: None,
                            tail: false,
                        },
                    ),
                    Some(Ok(read)) => {
                        let need = Need::Send {
                            request: read.request().clone(),
                            method: read.method(),
                            flight: None,
                            patience_ms: None,
                        };
                        self.ask(need, State::Asking(read, None))
                    }
                    // The answer that replaces it (a usage report's): its acknowledgement
                    // signed by the host first when its key is held there (issue #76).
                    Some(Err(finished)) => self.signed(relay, finished),
                    None => State::Answered(r),
                }
            }
            (State::Answered(r), _) => {
                if self.in_flight {
                    relay.count_in_flight(-1);
                    self.in_flight = false;
                }
                State::Persisting(r).persist(self)
            }
            (State::Persisting(mut r), Some(Given::Persisted(saved))) => {
                if !saved && self.target == Target::Webhook {
                    // Never a 2xx before the webhook's change is saved: Polar delivers it
                    // again, and that delivery's answer waits for the save tried again.
                    r = failure(relay, &self.req, "the store failed");
                }
                if self.counted {
                    relay.count_answer(&self.req, &r, now);
                }
                self.queue.push_back(Need::Respond(r));
                State::Tail
            }
            (State::Tail, _) => match self.tail.take() {
                Some(Tail::Call(pending, flight)) => {
                    self.ask(Need::Call, State::Calling(pending, flight, true))
                }
                Some(Tail::Slot(pending, flight)) => self.ask(
                    Need::Slot { patience_ms: None },
                    State::Slotting {
                        pending,
                        flight,
                        deadline: None,
                        tail: true,
                    },
                ),
                None => State::Done,
            },
            (State::TailPersisting, _) => State::Done,
            // A need is asked again until its answer comes (an answer of another need is
            // dropped); a state that asked nothing ends. A host that keeps answering something
            // else would be asked for ever (a busy loop holding its thread or Durable Object):
            // past MISMATCHES such answers the exchange ends, with a 500 when unanswered.
            (state, given) => {
                if given.is_some() {
                    self.mismatched += 1;
                    if self.mismatched >= MISMATCHES {
                        return self.host_fault(relay, state, asked);
                    }
                }
                match asked {
                    Some(need) => {
                        self.outstanding = Some(need);
                        state
                    }
                    None => State::Done,
                }
            }
        }
    }

    /// What the begin of a request routed to: its answer, its call, or its wait.
    fn begun<C: Core + ?Sized>(&mut self, relay: &C, at: Moment, routed: Routed) -> State {
        let now = at.now;
        match routed {
            Routed::Stored(finished) if finished.unsigned.is_some() => self.signed(relay, finished),
            Routed::Answer(mut r) => {
                relay.cors(&self.req, &mut r);
                State::Answered(r)
            }
            Routed::Stored(finished) => {
                let mut r = finished.into_response();
                relay.cors(&self.req, &mut r);
                State::Answered(r)
            }
            Routed::Ask(pending) if relay.host().call_slots() => {
                let patience_ms = self.patience(&pending);
                let flight = pending.flight();
                self.ask(
                    Need::Slot { patience_ms },
                    State::Slotting {
                        pending,
                        flight,
                        deadline: patience_ms.map(|ms| now.monotonic_ms.saturating_add(ms)),
                        tail: false,
                    },
                )
            }
            Routed::Ask(pending) => {
                let need = Need::Send {
                    request: pending.request().clone(),
                    method: pending.method(),
                    flight: pending.flight(),
                    patience_ms: self.patience(&pending),
                };
                let flight = pending.flight();
                self.ask(need, State::Asking(pending, flight))
            }
            Routed::Wait(id, pending) => {
                let patience_ms = self.patience(&pending);
                let check = patience_ms.map(|_| pending);
                let need = Need::Flight {
                    flight: crate::ids::hex_id(&id),
                    patience_ms,
                };
                self.ask(need, State::Waiting(check))
            }
        }
    }

    /// Ends an exchange whose host keeps answering a need with something else: a 500 when
    /// the client has no answer yet (logged), nothing more either way.
    fn host_fault<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        state: State,
        asked: Option<Need>,
    ) -> State {
        let what = match &asked {
            Some(Need::Body { .. }) => "the body",
            Some(Need::Load(_)) => "a load",
            Some(Need::Flight { .. }) => "a flight's landing",
            Some(Need::Send { .. } | Need::Call) => "Polar's answer",
            Some(Need::Slot { .. }) => "a slot",
            Some(Need::Sign(_)) => "a signature",
            Some(Need::Persist) => "a save",
            _ => "an answer",
        };
        self.queue.push_back(Need::Error(format!(
            "the host answered the request's need for {what} with something else {MISMATCHES} times: the request ends"
        )));
        self.tail = None;
        if matches!(state, State::Tail | State::TailPersisting | State::Done) {
            return State::Done;
        }
        if self.in_flight {
            relay.count_in_flight(-1);
            self.in_flight = false;
        }
        let r = failure(relay, &self.req, "the relay's host failed");
        self.queue.push_back(Need::Respond(r));
        State::Done
    }

    /// The request read: read into its route (once), counted in flight until answered, then
    /// the per-IP limit.
    fn started<C: Core + ?Sized>(&mut self, relay: &C) -> State {
        self.route = Some(relay.route(&self.req));
        relay.count_in_flight(1);
        self.in_flight = true;
        State::Admit
    }

    /// The request's route: read once when its body was (a step before that has none: read
    /// then, the same way, and kept).
    fn read<C: Core + ?Sized>(&mut self, relay: &C) -> (&RelayRequest, &Route) {
        let route = self.route.get_or_insert_with(|| relay.route(&self.req));
        (&self.req, route)
    }

    /// Begins again after a wait.
    fn again(&mut self) -> State {
        self.waited = self.waited.saturating_add(1);
        State::Fill(After::Begin)
    }

    /// How long a check waits for Polar before its stored answer is given: never for a device
    /// listing (issue #64), whose verdict only proves the key and whose read follows it (a
    /// stale answer with its call going on would leave two calls under way).
    fn patience(&self, pending: &Pending) -> Option<u64> {
        if !pending.route.part().may_be_stale() {
            return None;
        }
        pending.patience_ms(self.stale_after())
    }

    fn stale_after(&self) -> u64 {
        match self.options.stale_after_ms {
            0 => STALE_AFTER_MS,
            ms => ms,
        }
    }

    /// A slot to call on is the host's: the call goes, unless the breaker opened while it
    /// waited (a call routed before then is not made: its check gets what an unreachable
    /// Polar gives, the stored answer or 502, and its budget goes back).
    fn slotted<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        now: Now,
        pending: Box<Pending>,
        flight: Option<String>,
        deadline: Option<u64>,
        tail: bool,
    ) -> State {
        if !relay.still_allows(&pending) {
            return State::Fill(After::Finish(Finish {
                pending,
                flight,
                upstream: Err(TransportError::new(
                    TransportErrorKind::Connect,
                    "the breaker opened: Polar not asked",
                )),
                tail,
                made: false,
            }));
        }
        let need = Need::Send {
            request: pending.request().clone(),
            method: pending.method(),
            flight: flight.clone(),
            // What is left of the check's patience (none left: at once).
            patience_ms: deadline.map(|at| at.saturating_sub(now.monotonic_ms)),
        };
        if tail {
            self.ask(need, State::Calling(pending, flight, true))
        } else {
            self.ask(need, State::Asking(pending, flight))
        }
    }

    /// Polar's answer to the call: kept, unless a grant's lease waits for its customer's
    /// values first ([`super::Asks::first_read`], issue #80; never once the client was answered).
    fn answered<C: Core + ?Sized>(&mut self, relay: &C, now: Now, finish: Finish) -> State {
        if !finish.tail {
            if let Some(read) = relay.first_read(&finish.pending, &finish.upstream, now) {
                return self.first_read(relay, finish, read);
            }
        }
        State::Fill(After::Finish(finish))
    }

    /// A page of a grant's first read asked for (a slot to call on first, where calls hold a
    /// thread).
    fn first_read<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        finish: Finish,
        read: FirstRead,
    ) -> State {
        let held = Box::new((finish, read));
        if relay.host().call_slots() {
            return self.ask(Need::Slot { patience_ms: None }, State::FirstSlot(held));
        }
        let need = first_page(&held.1);
        self.ask(need, State::FirstPage(held))
    }

    /// An answer whose lease may wait for its signature.
    fn signed<C: Core + ?Sized>(&mut self, relay: &C, finished: Finished) -> State {
        match finished.pre_auth().map(<[u8]>::to_vec) {
            Some(bytes) => self.ask(Need::Sign(bytes), State::Signing(finished)),
            None => {
                let mut r = finished.into_response();
                relay.cors(&self.req, &mut r);
                State::Answered(r)
            }
        }
    }

    fn loaded<C: Core + ?Sized>(&mut self, relay: &C, at: Moment, after: After) -> State {
        match after {
            After::Begin => State::Begin,
            After::StaleWait(check) => match relay.stale_answer(&check, at) {
                Some(finished) => self.signed(relay, finished),
                None => self.again(),
            },
            After::StaleCall(pending, flight) => match relay.stale_answer(&pending, at) {
                Some(finished) => {
                    self.tail = Some(Tail::Call(pending, flight));
                    self.signed(relay, finished)
                }
                None => self.ask(Need::Call, State::Calling(pending, flight, false)),
            },
            After::StaleSlot(pending, flight) => match relay.stale_answer(&pending, at) {
                Some(finished) => {
                    self.tail = Some(Tail::Slot(pending, flight));
                    self.signed(relay, finished)
                }
                // Nothing stored to give: the check waits for its slot and its call.
                None => self.ask(
                    Need::Slot { patience_ms: None },
                    State::Slotting {
                        pending,
                        flight,
                        deadline: None,
                        tail: false,
                    },
                ),
            },
            After::Finish(Finish {
                pending,
                flight,
                upstream,
                tail,
                made,
            }) => {
                // The relay's own transport counts its calls (the native host); a host's
                // fetch counts nothing ([`crate::Host`]).
                let counted = relay.host().counts_calls();
                if made && !counted {
                    relay.count_call(&upstream);
                }
                // A call Polar never saw (not made, or its connection refused: Polar's port
                // closed, or the host dropped it before it went) spent none of the token's
                // budget: its place goes back. The breaker's probes of a Polar that is gone
                // otherwise fill the window that the refreshes need once it is back. Only the
                // relay's own transport tells a refused connection apart (a host's fetch, as
                // a Worker's, fails the same way when Polar closed the connection after
                // reading the call: that call keeps its place).
                let refused =
                    counted && matches!(&upstream, Err(e) if e.kind == TransportErrorKind::Connect);
                if !made || refused {
                    relay.give_back(at.now);
                }
                // The client answered already (a tail): Polar's answer is only kept.
                let finished = match tail {
                    true => {
                        relay.keep_made(&pending, upstream, at, made);
                        None
                    }
                    false => Some(relay.finish_made(&pending, upstream, at, made)),
                };
                if let Some(flight) = flight {
                    self.queue.push_back(Need::Landed(flight));
                }
                match finished {
                    Some(finished) => self.signed(relay, finished),
                    None => {
                        self.outstanding = Some(Need::Persist);
                        State::TailPersisting
                    }
                }
            }
        }
    }
}

/// The `GET` of a first read's page.
fn first_page(read: &FirstRead) -> Need {
    Need::Send {
        request: read.request.clone(),
        method: Method::Get,
        flight: None,
        patience_ms: None,
    }
}

impl State {
    /// Saves the store's changes before the answer.
    fn persist(self, exchange: &mut Exchange) -> State {
        exchange.outstanding = Some(Need::Persist);
        self
    }
}

/// The operator's routes, answered before anything else and never counted as the relay's
/// answers: `GET /healthz` ([`Asks::health`](super::Asks::health)) and, when configured, the
/// metrics route with its bearer token ([`Asks::metrics`](super::Asks::metrics), Prometheus'
/// text format; 401 without the token).
fn operator<C: Core + ?Sized>(
    relay: &C,
    req: &RelayRequest,
    metrics: Option<&(String, String)>,
    now: Now,
) -> Option<RelayResponse> {
    if req.method != "GET" && req.method != "HEAD" {
        return None;
    }
    if Target::of(&req.path) == Target::Health {
        return Some(relay.health(now));
    }
    let (route, token) = metrics?;
    if req.path != *route {
        return None;
    }
    Some(metrics_answer(relay, req, Some(token), now))
}

/// The metrics route's answer, the same on every host (the Workers host's `metricsPath`, the
/// native server's listener of its own): with a bearer `token`, 401 (`www-authenticate:
/// Bearer`) unless the request's `authorization` is `Bearer <token>` (compared in constant
/// time); else Prometheus' text format, `cache-control: no-store`. A method other than `GET`
/// or `HEAD` is 405 (the native listener asked every method here: `DELETE /metrics` was
/// answered the metrics, issue #62 item 5's table).
pub(crate) fn metrics_answer<C: Core + ?Sized>(
    relay: &C,
    req: &RelayRequest,
    token: Option<&str>,
    now: Now,
) -> RelayResponse {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = RelayResponse::detail(405, "Method Not Allowed");
        r.set("allow", "GET, HEAD");
        return r;
    }
    let refused = token.is_some_and(|token| {
        let expected = format!("Bearer {token}");
        !req.header("authorization")
            .is_some_and(|given| same(given.as_bytes(), expected.as_bytes()))
    });
    if refused {
        return RelayResponse {
            status: 401,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("www-authenticate".into(), "Bearer".into()),
            ],
            body: br#"{"detail":"the metrics need their bearer token"}"#.to_vec(),
        };
    }
    RelayResponse {
        status: 200,
        headers: vec![
            (
                "content-type".into(),
                "text/plain; version=0.0.4; charset=utf-8".into(),
            ),
            ("cache-control".into(), "no-store".into()),
        ],
        body: relay.metrics(now).into_bytes(),
    }
}

/// The relay's own 500 (`detail`), with the CORS grant of every answer, narrowed as the
/// relay's CORS origins say ([`crate::types::failure`]).
fn failure<C: Core + ?Sized>(relay: &C, req: &RelayRequest, detail: &str) -> RelayResponse {
    let mut r = crate::types::failure(500, detail, None, req);
    relay.cors(req, &mut r);
    r
}

/// Whether `a` and `b` are the same bytes, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Sends a call the request machine asks for ([`crate::flow::Need::Send`]) through a
/// native host's transport: a `POST` as the license routes take it, a `GET` (a device
/// listing's read of the key's record, issue #64) with the call's URL and headers and no body.
/// Only `relay serve`'s server and the tests drive a native exchange.
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "server")))]
pub(crate) fn send(
    transport: &dyn polar_license::Transport,
    request: &polar_license::HttpRequest,
    method: polar_license::portal::Method,
) -> Result<polar_license::HttpResponse, polar_license::TransportError> {
    match method {
        polar_license::portal::Method::Post => transport.send(request),
        polar_license::portal::Method::Get => {
            transport.send_portal(&polar_license::portal::PortalRequest {
                method,
                url: request.url.clone(),
                headers: request.headers.clone(),
                body: Vec::new(),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
