//! The Workers host's order (issue #77): the npm package's relay (`polar-license/relay`,
//! bindings/relay-wasm driven by pkg-template/relay-handler.js on Cloudflare Workers, node,
//! Deno or Bun) as one sans-IO driver, [`Workers`], compiled and tested natively.
//!
//! A host whose calls are async (`fetch`, a Durable Object's storage, its alarm) cannot be
//! handed a blocking transport, so the relay's machines are driven step by step. Which
//! machine is asked, in what order, and what each step's answer does to the others is this
//! file's: a request's [`Exchange`] and the rounds of loads of a store read per key, the
//! background's machine and the loads, listings and saves between its jobs, the store's
//! opening (a storage of an older layout migrated first) or whole restore, its saves (what is
//! staged when, the calls of at most [`KEYS_PER_CALL`] keys, a call refused as a whole written
//! key by key, what is dropped for good, read-your-writes), and the storage's alarm. The host
//! does what each step names and hands back what came of it, through four doors:
//!
//! 1. a request: [`Workers::start`], then [`Workers::want`] with what the last [`Step`] got,
//!    until [`Step::Done`] (or [`Step::Last`]);
//! 2. the background: [`Workers::poll`] with what the last [`Job`] got, until a job that
//!    ends the run (a wait, the alarm set, [`Job::Done`]);
//! 3. the store's opening at start: [`Workers::open`] until [`Opened::Done`];
//! 4. the store's saves, one at a time in order: [`Workers::save`] until [`Saved::Done`] or
//!    [`Saved::Failed`].
//!
//! The log has one channel, the `log` crate (a host installs the logger: the Workers binding
//! writes to the console): a request's warnings and errors ([`crate::flow::Need::Warn`],
//! `Need::Error`) are written here, as the native server writes them, never handed to the
//! host.

use std::sync::Arc;

use polar_license::portal::Method;
use polar_license::{Error, HttpRequest, HttpResponse, TransportError, TransportErrorKind};
use serde_json::Value;

use super::{Alarm, Ring, Start, Wake};
use crate::clock::Now;
use crate::flow::background::{Background, Given as BackgroundGiven, Poll, Request};
use crate::flow::{Exchange, ExchangeOptions, Given, Need};
use crate::relay::Relay;
use crate::roster::ReadAnswer;
use crate::seats::SeatOptions;
use crate::store::layout::{self, Open, Opening, Read, Reads, Refusals};
use crate::store::saves::loads::Loads;
use crate::store::saves::writing::{self, Call, Next, StorageError, Writing};
use crate::store::saves::{self, Reading, Saves};
use crate::store::{
    Backend, JournalBackend, JournalItem, PagedBackend, StoreOptions, DEFAULT_CACHED,
};
use crate::types::{RelayConfig, RelayRequest, RelayResponse, StoreConfig, STALE_AFTER_MS};

/// The most keys one call of the storage reads or writes (a Durable Object's limit).
pub const KEYS_PER_CALL: usize = writing::KEYS_PER_CALL;

/// A timer's longest wait (2^31 - 1 ms, about 24.8 days: `setTimeout` fires at once past it):
/// the longest call timeout and the longest wait the background is given.
pub const LONGEST_TIMER_MS: u64 = 2_147_483_647;

/// The host's clock, read at each step: wall-clock milliseconds since the epoch (the leases,
/// the alarm) and a monotonic reading in milliseconds (the rate limits, the waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Milliseconds since the epoch.
    pub unix_ms: u64,
    /// A monotonic reading, in milliseconds.
    pub monotonic_ms: u64,
}

impl Time {
    /// The core's [`Now`].
    fn now(self) -> Now {
        Now {
            unix_seconds: i64::try_from(self.unix_ms / 1000).unwrap_or(i64::MAX),
            monotonic_ms: self.monotonic_ms,
        }
    }
}

/// What the host's storage is: read per key (a Durable Object's `get`, `list`, `put`,
/// `delete`), or read and saved whole; how it writes and how it wakes the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    /// Read per key (`paged`), else whole (`load`, `save`).
    pub paged: bool,
    /// A paged storage's writes are its own `write` of `[key, value | null]` (it has no
    /// `put`): [`StorageCall::Write`].
    pub writes: bool,
    /// How the background is woken at a wait.
    pub wake: Wake,
}

impl Storage {
    /// From the calls the storage has (`has`), checked by the core's rule
    /// ([`super::storage_calls`]: the calls wanted are named when one is missing).
    pub fn of_calls(paged: bool, has: impl Fn(&str) -> bool) -> Result<Storage, Error> {
        super::storage_calls(paged, &has)?;
        Ok(Storage {
            paged,
            writes: !has("put"),
            wake: Wake::of_calls(&has),
        })
    }
}

/// The verdict store the relay keeps (the host decides whether, by [`super::StoreHome`]).
#[derive(Clone)]
pub struct Kept {
    /// Its options.
    pub options: StoreOptions,
    /// The webhook's secret (its route is off without one).
    pub webhook_secret: Option<String>,
    /// With a storage read per key: the entries (and roster digests) cached at most (`None`:
    /// the core's default).
    pub cached: Option<usize>,
}

// The webhook's secret left out.
debug_some!(Kept, k => { "options": k.options, "cached": k.cached });

/// A relay on the Workers host: the options as read from the host.
pub struct Config {
    /// The relay's configuration; its `store` is set from [`Config::store`].
    pub relay: RelayConfig,
    /// The store kept, if any.
    pub store: Option<Kept>,
    /// The host's storage, if any: with none a kept store lives in memory only.
    pub storage: Option<Storage>,
    /// The seats' options.
    pub seats: SeatOptions,
    /// A seat's life under the 30 s a seller may set (test suites only).
    pub test_only_seat_seconds: Option<u32>,
    /// Polar's budget window under its minute (test suites only).
    pub test_only_budget_seconds: Option<u32>,
    /// The calls' timeout, in milliseconds (at most [`LONGEST_TIMER_MS`]).
    pub timeout_ms: u64,
    /// The metrics route and its token, if on.
    pub metrics: Option<(String, String)>,
    /// The checkouts' options (issue #80; no product: the route is off).
    pub checkouts: crate::checkouts::CheckoutOptions,
}

/// What the host reads of its storage: the values of the keys of each of `gets` (one call
/// each, at most [`KEYS_PER_CALL`] keys) and the keys of each of `lists`. What was read is
/// handed back as JSON: `{values: [key, value | null][], lists: ([key, value][] | null)[]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRead {
    /// The keys to read, a call each.
    pub gets: Vec<Vec<String>>,
    /// The listings.
    pub lists: Vec<Listing>,
}

/// A listing of the storage's keys under `prefix` in key order, those after `after` (absent:
/// from the first), at most `limit` (absent: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The keys' prefix.
    pub prefix: String,
    /// The key the listing starts after.
    pub after: Option<String>,
    /// At most this many keys.
    pub limit: Option<usize>,
}

impl Listing {
    fn of(list: layout::List) -> Listing {
        Listing {
            prefix: list.prefix,
            after: list.after,
            limit: list.limit,
        }
    }
}

impl StorageRead {
    fn of(reads: &Reads) -> StorageRead {
        StorageRead {
            gets: reads
                .keys
                .chunks(KEYS_PER_CALL)
                .map(<[String]>::to_vec)
                .collect(),
            lists: reads.lists.iter().cloned().map(Listing::of).collect(),
        }
    }
}

/// One call of the host's storage, at most [`KEYS_PER_CALL`] keys.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageCall {
    /// Store these values.
    Put(Vec<(String, Value)>),
    /// Delete these keys.
    Delete(Vec<String>),
    /// A storage's own write (it has no `put`): a value, or `None` to delete.
    Write(Vec<(String, Option<Value>)>),
}

/// What a request's exchange needs of the host next ([`Workers::want`]).
#[derive(Debug)]
pub enum Step {
    /// Read at most `max` bytes of the request's body: [`Got::Body`] (or [`Got::BodyBroken`]).
    Body {
        /// The most bytes to read.
        max: usize,
    },
    /// Read these of the storage: [`Got::Loaded`].
    Load(StorageRead),
    /// Wait for this flight to land ([`Got::Landed`]), at most `patience_ms`
    /// ([`Got::Patience`]).
    Flight {
        /// The flight another request leads.
        flight: String,
        /// How long to wait before [`Got::Patience`] (`None`: until it lands).
        patience_ms: Option<u64>,
    },
    /// Send this to Polar (it holds the token: never log it) and give its answer
    /// ([`Got::Upstream`]); when `patience_ms` passes first, [`Got::Patience`] and keep the
    /// call going ([`Step::Call`] asks for its answer).
    Send {
        /// The call.
        request: HttpRequest,
        /// `POST` with the body, or `GET` with no body.
        method: Method,
        /// The flight this call leads (others wait on it until [`Step::Landed`]).
        leads: Option<String>,
        /// How long to wait before [`Got::Patience`].
        patience_ms: Option<u64>,
        /// The call's timeout.
        timeout_ms: u64,
        /// The most bytes of the answer to read.
        max_bytes: usize,
    },
    /// The answer of the call [`Step::Send`] started: [`Got::Upstream`].
    Call,
    /// Sign these bytes with Ed25519: [`Got::Signature`].
    Sign(Vec<u8>),
    /// The store's changes are staged: save them ([`Workers::save`]), then
    /// [`Got::Persisted`].
    Persist,
    /// The flight this request led has landed: wake the requests waiting on it.
    Landed(String),
    /// Send this answer to the client, then ask again (a call may go on).
    Respond(RelayResponse),
    /// Send this answer to the client: the exchange has ended (a request lost, a body broken).
    Last(RelayResponse),
    /// Nothing more.
    Done,
}

/// What came of a request's last [`Step`].
#[derive(Debug)]
pub enum Got {
    /// The body, as read.
    Body(Vec<u8>),
    /// The body's stream broke off (a framing the runtime refuses, a reset).
    BodyBroken,
    /// What a load read (JSON, see [`StorageRead`]), or `None`: it could not be read.
    Loaded(Option<Value>),
    /// The flight waited for landed.
    Landed,
    /// The patience ran out first.
    Patience,
    /// Polar's answer, or why there was none.
    Upstream(Result<HttpResponse, TransportError>),
    /// The signature, or the name of what the signer threw.
    Signature(Result<Vec<u8>, String>),
    /// Whether the save holding the changes succeeded.
    Persisted(bool),
}

/// The background's next job ([`Workers::poll`]).
#[derive(Debug)]
pub enum Job {
    /// A call of Polar's (a `GET`, or a `POST` with a body): [`JobGot::Polar`].
    Send {
        /// The job's id.
        id: u32,
        /// The call (its headers hold the token: never log them).
        request: Request,
        /// The call's timeout.
        timeout_ms: u64,
        /// The most bytes of the answer to read.
        max_bytes: usize,
    },
    /// Read these of the storage: [`JobGot::Loaded`].
    Load {
        /// The job's id.
        id: u32,
        /// What to read.
        read: StorageRead,
    },
    /// List the storage's keys: [`JobGot::Rows`].
    List {
        /// The job's id.
        id: u32,
        /// Which keys.
        list: Listing,
    },
    /// Save the store now ([`Workers::save`]), then poll again with nothing.
    Save,
    /// Read the storage's alarm: [`JobGot::Alarm`].
    ReadAlarm,
    /// Set the storage's alarm at this time (ms since the epoch); the run ends.
    SetAlarm(u64),
    /// Wake the background in this many ms by the storage's own `wake`; the run ends.
    Wake(u64),
    /// Wake the background in this many ms by a timer; the run ends.
    Timer(u64),
    /// Nothing more this run (an alarm rings soon enough, or there will be no work).
    Done,
}

/// What came of a background [`Job`].
#[derive(Debug)]
pub enum JobGot {
    /// Polar's answer, or why there was none.
    Polar(Result<HttpResponse, TransportError>),
    /// A listing's keys in order, or why they could not be listed.
    Rows(Result<Vec<String>, String>),
    /// What a load read (JSON, see [`StorageRead`]), or `None`: it could not be read.
    Loaded(Option<Value>),
    /// The alarm the storage holds (ms since the epoch), if any.
    Alarm(Option<u64>),
}

/// A step of the store's opening ([`Workers::open`]).
#[derive(Debug, PartialEq)]
pub enum Opened {
    /// Make these calls in order, then read this, and give what was read (JSON, see
    /// [`StorageRead`]).
    Read {
        /// The calls first (a migration's writes).
        calls: Vec<StorageCall>,
        /// What to read.
        read: StorageRead,
    },
    /// Load the storage whole and give what it held (JSON: an array of journal items;
    /// `null`: nothing).
    LoadWhole,
    /// Open.
    Done,
}

/// A step of a save ([`Workers::save`]).
#[derive(Debug, PartialEq)]
pub enum Saved {
    /// Make this call, then give how it went.
    Call(StorageCall),
    /// Save these journal items (a store saved whole), then give how it went.
    Whole(Value),
    /// The save failed: its changes are kept for the next.
    Failed(String),
    /// Saved, or nothing to save.
    Done,
}

/// How a save's call went.
#[derive(Debug)]
pub enum Outcome {
    /// Done.
    Done,
    /// Done, with the storage's own refusals for good (`[[key, why]]`): logged, dropped.
    Refused(Value),
    /// The storage's error, as caught.
    Error {
        /// Its name (`RangeError`, `TypeError`, …).
        name: String,
        /// Its message.
        message: String,
    },
}

/// Where the store's entries are: all in memory (restored whole at start), or in the host's
/// storage, read per key into a bounded cache.
enum Store {
    Whole(Arc<JournalBackend>),
    Paged(Arc<PagedBackend>),
}

/// A save under way.
enum Saving {
    Paged(Box<Writing>),
    Whole,
}

/// A request under way, with the rounds of loads of its current need and what the last asked
/// to read, from when.
struct Driven {
    exchange: Exchange,
    loads: Loads,
    reads: Option<(Reads, Reading)>,
}

/// A bounded table of waiting entries by id; the oldest is dropped when full
/// ([`super::MAX_EXCHANGES`]).
struct Table<T> {
    next: u32,
    entries: Vec<(u32, T)>,
}

impl<T> Table<T> {
    fn new() -> Self {
        Table {
            next: 1,
            entries: Vec::new(),
        }
    }

    fn put(&mut self, value: T) -> u32 {
        if self.entries.len() >= super::MAX_EXCHANGES {
            self.entries.remove(0);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.entries.push((id, value));
        id
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v)
    }

    fn take(&mut self, id: u32) -> Option<T> {
        let at = self.entries.iter().position(|(k, _)| *k == id)?;
        Some(self.entries.remove(at).1)
    }
}

/// The relay on the Workers host (see the module docs).
pub struct Workers {
    relay: Relay,
    store: Option<Store>,
    exchanges: Table<Driven>,
    exchange_options: ExchangeOptions,
    background: Background,
    /// The background's load under way: its job, what it reads, from when.
    background_reads: Option<(u32, Reads, Reading)>,
    /// The background's wait (when it is due, ms since the epoch) while the alarm is read.
    ringing: Option<u64>,
    saves: Saves,
    opening: Opening,
    refusals: Refusals,
    saving: Option<Saving>,
    alarm: Alarm,
    timeout_ms: u64,
    start: Option<Start>,
    storage: Option<Storage>,
}

impl Workers {
    /// The relay from the host's options; the error names the bad option (never the token).
    pub fn new(config: Config) -> Result<Workers, Error> {
        let Config {
            relay: mut relay_config,
            store,
            storage,
            seats,
            test_only_seat_seconds,
            test_only_budget_seconds,
            timeout_ms,
            metrics,
            checkouts,
        } = config;
        let paged_storage = storage.is_some_and(|s| s.paged);
        let mut cached = None;
        let kept = store.map(|kept| {
            let (kept_store, backend): (Store, Arc<dyn Backend>) = if paged_storage {
                let size = kept.cached.unwrap_or(DEFAULT_CACHED);
                cached = Some(size);
                let paged = Arc::new(PagedBackend::new(kept.options.max_entries, size));
                (Store::Paged(paged.clone()), paged)
            } else {
                let whole = Arc::new(JournalBackend::new(kept.options.max_entries));
                (Store::Whole(whole.clone()), whole)
            };
            relay_config.store = Some(StoreConfig {
                backend,
                options: kept.options,
                webhook_secret: kept.webhook_secret,
            });
            kept_store
        });
        // The core never calls a transport here: the host's fetch is the call, a step of the
        // exchange. The lease id's randomness comes with each step.
        let unused = |_: &HttpRequest| {
            Err(TransportError::new(
                TransportErrorKind::Other,
                "the Workers host calls Polar with its own fetch",
            ))
        };
        let relay = Relay::with_entropy(relay_config, Box::new(unused), Box::new(|| None))
            .and_then(|r| r.with_seats(seats))
            .and_then(|r| r.with_checkouts(checkouts))
            .and_then(|r| match test_only_seat_seconds {
                Some(s) => r.with_test_only_seat_seconds(s),
                None => Ok(r),
            })
            .and_then(|r| match test_only_budget_seconds {
                Some(s) => r.with_test_only_budget_seconds(s),
                None => Ok(r),
            })?;
        // With a paged store the roster is kept in the host's storage too.
        if let Some(cached) = cached {
            relay.keep_roster_in_host(cached);
        }
        let paged = match &kept {
            Some(Store::Paged(paged)) => Some(Arc::clone(paged)),
            _ => None,
        };
        let start = Start::of(kept.is_some(), paged.is_some(), storage.is_some());
        Ok(Workers {
            saves: if paged.is_some() {
                Saves::paged()
            } else {
                Saves::whole()
            },
            background: Background::new(paged),
            relay,
            store: kept,
            exchanges: Table::new(),
            exchange_options: ExchangeOptions {
                metrics,
                stale_after_ms: STALE_AFTER_MS,
            },
            background_reads: None,
            ringing: None,
            opening: Opening::default(),
            refusals: Refusals::default(),
            saving: None,
            alarm: Alarm::default(),
            timeout_ms: timeout_ms.clamp(1, LONGEST_TIMER_MS),
            start,
            storage,
        })
    }

    /// The relay this drives (its operator's routes, its failure answers).
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// A request's exchange, from its head (the body is a [`Step::Body`]): its id, for
    /// [`Workers::want`]. Past [`super::MAX_EXCHANGES`] under way the oldest is dropped (its
    /// next step is a 502).
    pub fn start(&mut self, head: RelayRequest) -> u32 {
        let exchange = Exchange::new(head, self.exchange_options.clone());
        self.exchanges.put(Driven {
            exchange,
            loads: Loads::default(),
            reads: None,
        })
    }

    /// What the request `id` needs next, given what came of its last step (`None` the
    /// first time, and after a step that asks for nothing back); `entropy`: 16 random bytes
    /// (a lease's id). An id not held (ended, or dropped from a full table) is the relay's
    /// 502, [`Step::Last`].
    pub fn want(
        &mut self,
        id: u32,
        got: Option<Got>,
        time: Time,
        entropy: Option<[u8; 16]>,
    ) -> Step {
        let Some(driven) = self.exchanges.get_mut(id) else {
            return Step::Last(self.lost());
        };
        if let Some(got) = got {
            let given = match got {
                Got::Body(body) => Some(Given::Body(body)),
                // A body broken off: the relay's 400 (as the native server answers one), the
                // exchange ended (nothing was asked or stored for it: the body comes first).
                Got::BodyBroken => {
                    let answer = self.relay.failure(
                        driven.exchange.request(),
                        400,
                        "the request's body could not be read",
                    );
                    self.exchanges.take(id);
                    return Step::Last(answer);
                }
                Got::Loaded(read) => match (read, driven.reads.take()) {
                    // Asked again below, until nothing is missing.
                    (Some(read), Some((reads, since))) => {
                        load_read(&self.relay, &self.store, &self.saves, &reads, since, &read);
                        None
                    }
                    // Not read: the exchange goes on with what the cache holds (a webhook
                    // whose rows are missing is refused, and Polar delivers it again).
                    _ => {
                        driven.loads.unread();
                        Some(Given::Loaded)
                    }
                },
                Got::Landed => Some(Given::Landed),
                Got::Patience => Some(Given::Patience),
                Got::Upstream(answer) => Some(Given::Upstream(answer)),
                Got::Signature(Ok(signature)) => Some(Given::Signature(signature)),
                Got::Signature(Err(name)) => {
                    log::error!(
                        "relay: the host could not sign the lease ({name}): answering without one"
                    );
                    Some(Given::Signature(Vec::new()))
                }
                Got::Persisted(saved) => Some(Given::Persisted(saved)),
            };
            if let Some(given) = given {
                driven.exchange.give(given);
            }
        }
        let now = time.now();
        loop {
            let need = driven.exchange.want(&self.relay, now, entropy);
            return match need {
                Need::Body { max } => Step::Body { max },
                Need::Load(load) => {
                    // What the storage holds and the cache does not, round by round; else on.
                    let Some(Store::Paged(paged)) = &self.store else {
                        driven.exchange.give(Given::Loaded);
                        continue;
                    };
                    let roster = load
                        .roster
                        .as_ref()
                        .and_then(|_| self.relay.roster_wants(driven.exchange.request()));
                    match driven.loads.next(paged, load.store.as_ref(), roster) {
                        Some(reads) => {
                            let (asked, since) = (self.saves.unread(&reads), self.saves.reading());
                            driven.reads = Some((reads, since));
                            Step::Load(StorageRead::of(&asked))
                        }
                        None => {
                            driven.exchange.give(Given::Loaded);
                            continue;
                        }
                    }
                }
                Need::Flight {
                    flight,
                    patience_ms,
                } => Step::Flight {
                    flight,
                    patience_ms,
                },
                Need::Send {
                    request,
                    method,
                    flight,
                    patience_ms,
                } => Step::Send {
                    request,
                    method,
                    leads: flight,
                    patience_ms,
                    timeout_ms: self.timeout_ms,
                    max_bytes: super::MAX_UPSTREAM_BYTES,
                },
                Need::Call => Step::Call,
                // Never asked on this host (`Host::call_slots`): a fetch waits for no slot.
                Need::Slot { .. } => {
                    driven.exchange.give(Given::Slot);
                    continue;
                }
                Need::Sign(bytes) => Step::Sign(bytes),
                // Staged now: saved by the host's next save, the answer waiting for it.
                Need::Persist => {
                    stage(&self.relay, &self.store, &self.background, &mut self.saves);
                    Step::Persist
                }
                Need::Landed(flight) => Step::Landed(flight),
                // The one log channel: written here, as the native server writes them.
                log @ (Need::Warn(_) | Need::Error(_)) => {
                    log.log();
                    continue;
                }
                Need::Respond(r) => Step::Respond(r),
                Need::Done => {
                    self.exchanges.take(id);
                    Step::Done
                }
            };
        }
    }

    /// The background's next job, given what came of the last (`None` the first time, and
    /// after [`Job::Save`]; the id is the job's, any for [`JobGot::Alarm`]).
    pub fn poll(&mut self, got: Option<(u32, JobGot)>, time: Time) -> Job {
        match got {
            Some((_, JobGot::Alarm(stored))) => {
                if let Some(at) = self.ringing.take() {
                    return self.ring(time.unix_ms, at, Some(stored));
                }
            }
            Some((id, got)) => {
                let saves_now = self.answered(id, got, time);
                if saves_now {
                    // After a read of Polar's, never between a load and the job that uses it.
                    stage(&self.relay, &self.store, &self.background, &mut self.saves);
                    return Job::Save;
                }
            }
            None => {}
        }
        match self.background.poll(&self.relay, time.now()) {
            Poll::Send(request) => Job::Send {
                id: request.id(),
                request,
                timeout_ms: self.timeout_ms,
                max_bytes: super::MAX_READ_BYTES,
            },
            Poll::Load { id, missing } => {
                let reads = layout::load_reads(&missing, &[]);
                let (asked, since) = (self.saves.unread(&reads), self.saves.reading());
                self.background_reads = Some((id, reads, since));
                Job::Load {
                    id,
                    read: StorageRead::of(&asked),
                }
            }
            Poll::List { id, page } => Job::List {
                id,
                list: Listing::of(layout::rows_list(
                    page.prefix,
                    page.after.as_deref(),
                    page.limit,
                )),
            },
            Poll::Wait(ms) => {
                let ms = ms.min(LONGEST_TIMER_MS);
                match self.storage.map_or(Wake::Timer, |s| s.wake) {
                    Wake::Alarm => self.ring(time.unix_ms, time.unix_ms.saturating_add(ms), None),
                    Wake::Own => Job::Wake(ms),
                    Wake::Timer => Job::Timer(ms),
                }
            }
            Poll::Done => Job::Done,
        }
    }

    /// The store's opening at start, one step at a time (`None` first, then what each step
    /// read): a storage read per key is read key by key (its global state; an older layout
    /// migrated first), one read whole is loaded whole; with no store kept, or no storage to
    /// read it from, [`Opened::Done`] at once.
    pub fn open(&mut self, got: Option<Value>, time: Time) -> Opened {
        match (self.start, got) {
            (None, _) => Opened::Done,
            (Some(Start::Restore), None) => Opened::LoadWhole,
            (Some(Start::Restore), Some(items)) => {
                self.restore(items_of(items));
                Opened::Done
            }
            (Some(Start::Open), None) => Opened::Read {
                calls: Vec::new(),
                read: StorageRead::of(&self.opening.first()),
            },
            (Some(Start::Open), Some(read)) => {
                match self.opening.step(&Read::of_json(&read)) {
                    Open::Next { puts, reads } => Opened::Read {
                        calls: puts
                            .chunks(KEYS_PER_CALL)
                            .map(|call| self.call(Call::Put(call.to_vec())))
                            .collect(),
                        read: StorageRead::of(&reads),
                    },
                    Open::Done(started) => {
                        // The roster's next page: not paged in again when it was current.
                        if let Some(page) = started.roster_page {
                            self.relay.roster_restore(page, time.now());
                        }
                        self.restore(started.items);
                        Opened::Done
                    }
                }
            }
        }
    }

    /// The store's save, one storage call at a time: `None` begins one (every change so far,
    /// a failed save's first), then how each call went. The calls, a put refused as a whole
    /// written key by key, and which values are dropped for good (logged) are the core's.
    pub fn save(&mut self, outcome: Option<Outcome>) -> Saved {
        let end = match outcome {
            None => {
                self.saving = None;
                stage(&self.relay, &self.store, &self.background, &mut self.saves);
                let Some(batch) = self.saves.batch() else {
                    return Saved::Done;
                };
                if !matches!(self.store, Some(Store::Paged(_))) {
                    self.saving = Some(Saving::Whole);
                    return Saved::Whole(batch);
                }
                let writes = layout::writes_of(&batch);
                self.saving = Some(Saving::Paged(Box::new(Writing::new(writes))));
                None
            }
            Some(outcome) => {
                let result = match outcome {
                    Outcome::Done => Ok(()),
                    // The storage's own refusals for good: logged, dropped.
                    Outcome::Refused(refused) => {
                        for (key, why) in layout::writes_of(&refused) {
                            writing::dropped(
                                &key,
                                why.as_ref().and_then(Value::as_str).unwrap_or(""),
                            );
                        }
                        Ok(())
                    }
                    Outcome::Error { name, message } => Err(StorageError { name, message }),
                };
                match self.saving.as_mut() {
                    Some(Saving::Paged(w)) => {
                        w.ended(result);
                        None
                    }
                    Some(Saving::Whole) => Some(result.map_err(|e| e.message)),
                    None => return Saved::Done,
                }
            }
        };
        let end = match (end, self.saving.as_mut()) {
            (Some(end), _) => end,
            (None, Some(Saving::Paged(w))) => match w.next(&mut self.refusals) {
                Next::Call(call) => return Saved::Call(self.call(call)),
                Next::Saved(dropped) => {
                    for (key, why) in dropped {
                        writing::dropped(&key, &why);
                    }
                    Ok(())
                }
                Next::Failed(why) => Err(why),
            },
            (None, _) => return Saved::Done,
        };
        self.saving = None;
        match end {
            Ok(()) => {
                self.saves.ended(true);
                Saved::Done
            }
            Err(why) => {
                saves::save_failed(&why);
                self.saves.ended(false);
                Saved::Failed(why)
            }
        }
    }

    /// The answer to a request this relay no longer holds: a 502, the relay's own failure
    /// answer (its CORS grant narrowed by the relay's options: the request is gone).
    fn lost(&self) -> RelayResponse {
        self.relay
            .failure(&RelayRequest::default(), 502, "the relay lost this request")
    }

    /// What the store held at start, kept; the webhooks' silence counts from the last
    /// webhook it kept, not the start.
    fn restore(&self, items: Vec<JournalItem>) {
        match &self.store {
            Some(Store::Whole(j)) => j.restore(items),
            Some(Store::Paged(p)) => p.restore(items),
            None => return,
        }
        self.relay.reload_last_webhook();
    }

    /// A background job's answer applied; whether the store is saved now.
    fn answered(&mut self, id: u32, got: JobGot, time: Time) -> bool {
        let reads = self.background_reads.take();
        let given = match got {
            JobGot::Loaded(read) => {
                let done = match (read, reads.filter(|(job, _, _)| *job == id)) {
                    (Some(read), Some((_, reads, since))) => {
                        load_read(&self.relay, &self.store, &self.saves, &reads, since, &read);
                        true
                    }
                    _ => false,
                };
                BackgroundGiven::Loaded(done)
            }
            JobGot::Rows(Ok(keys)) => BackgroundGiven::Rows(Ok(layout::rows_of(keys))),
            // A listing's failure, read as the failure of whichever job it answers.
            JobGot::Rows(Err(why)) => BackgroundGiven::Polar(Err(why)),
            JobGot::Polar(answer) => BackgroundGiven::Polar(read_answer(answer)),
            JobGot::Alarm(_) => return false,
        };
        if let Some(warning) = self.background.answered(&self.relay, id, given, time.now()) {
            log::warn!("relay: {warning}");
        }
        self.background.saves_now()
    }

    /// The storage's alarm for work due at `at` (ms since the epoch), as [`Alarm`] rules:
    /// set, read first, or kept (one rings soon enough).
    fn ring(&mut self, now: u64, at: u64, stored: Option<Option<u64>>) -> Job {
        match self.alarm.wake(now, at, stored) {
            Ring::Keep => Job::Done,
            Ring::Read => {
                self.ringing = Some(at);
                Job::ReadAlarm
            }
            Ring::Set(at) => Job::SetAlarm(at),
        }
    }

    /// A save's call as this storage makes it.
    fn call(&self, call: Call) -> StorageCall {
        let writes = self.storage.is_some_and(|s| s.writes);
        match (call, writes) {
            (Call::Put(pairs), false) => StorageCall::Put(pairs),
            (Call::Put(pairs), true) => {
                StorageCall::Write(pairs.into_iter().map(|(k, v)| (k, Some(v))).collect())
            }
            (Call::Delete(keys), false) => StorageCall::Delete(keys),
            (Call::Delete(keys), true) => {
                StorageCall::Write(keys.into_iter().map(|k| (k, None)).collect())
            }
        }
    }
}

/// Stages the store's changes since the last call for the next save: from now on every read
/// sees them (a paged store), until they are saved. The cache lets go of what was touched
/// least recently past its bound, unless a background load waits for its use.
fn stage(relay: &Relay, store: &Option<Store>, background: &Background, saves: &mut Saves) {
    match store {
        Some(Store::Paged(paged)) => {
            let roster = relay.roster_changes();
            saves.stage_writes(saves::take_writes(paged, &roster, background.holds_loads()));
        }
        Some(Store::Whole(whole)) => saves.stage_items(whole.take()),
        None => {}
    }
}

/// What the storage read for `reads` loaded into a paged store, under the changes not saved
/// yet (read your writes), a key or listing whose save ended meanwhile left out (read again).
fn load_read(
    relay: &Relay,
    store: &Option<Store>,
    saves: &Saves,
    reads: &Reads,
    since: Reading,
    read: &Value,
) {
    let Some(Store::Paged(paged)) = store else {
        return;
    };
    let read = saves.read(since, reads, &Read::of_json(read));
    let loaded = layout::loaded(reads, &read);
    for (digest, known) in loaded.roster {
        relay.roster_load(&digest, known);
    }
    paged.load(loaded.entries, loaded.rows);
    if let Some(oldest) = loaded.oldest {
        paged.load_oldest(oldest);
    }
}

/// Journal items of JSON (an array; anything else is none), those that do not read skipped
/// (never read as a grant).
fn items_of(json: Value) -> Vec<JournalItem> {
    match json {
        Value::Array(values) => values
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// A background read's answer as the core takes it: a timeout or no answer named, else the
/// status, `retry-after` and body.
fn read_answer(answer: Result<HttpResponse, TransportError>) -> ReadAnswer {
    match answer {
        Err(e) if e.kind == TransportErrorKind::Timeout => Err("timed out".into()),
        Err(_) => Err("unreachable".into()),
        Ok(answer) => {
            let retry_after = answer
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok());
            Ok((answer.status, retry_after, answer.body))
        }
    }
}

#[cfg(test)]
mod tests;
