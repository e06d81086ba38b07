//! The relay's background reads as one machine (issue #52, item 1): the roster's paging of
//! Polar's key list and its grant refetches (crate::roster), the reconcile's re-reads by id
//! (crate::reconcile), and with a store read per key (Workers) the stored keys' listing and the
//! loads each read needs first; and, at each poll, the webhooks' silence (the warning when
//! Polar's webhooks stopped arriving, crate::ops). [`Background::poll`] says what the host does next (send this
//! `GET` to Polar, load these rows, list this page, or nothing before a timeout);
//! [`Background::answered`] takes what it got. No IO, thread, sleep or HTTP agent here: the
//! native server drives it with one thread, the Workers handler with one loop over two exports
//! (`poll`, `answered`).
//!
//! The machine holds the order of the reads (the roster and the reconcile take turns, so
//! neither waits behind a run of the other's; a parked answer is applied before anything new),
//! which reads wait on a load and for how long, and the reads under way by id. What each read
//! is and when it may spend a call of the budget stay the roster's and the reconcile's own
//! decisions.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Core;
use crate::clock::Now;
use crate::reads::{
    reconcile_answered, reconcile_list, reconcile_listed, reconcile_read, reconcile_wants,
    refetch_wants, roster_answered, roster_read, roster_warning, Reads,
};
use crate::reconcile::{Check, ListPage};
use crate::roster::{Read, ReadAnswer};
use crate::store::{Missing, PagedBackend, Wants};

use super::MAX_LOAD_ROUNDS;

/// Background jobs ([`Background`]) handed out in a row before the
/// machine says `Wait(0)` (64): a Durable Object answers no request while a run holds it, so a
/// long backlog (a roster's pages) is run in slices, the next at once.
pub const JOBS_PER_RUN: u32 = 64;

/// How long the reconcile waits after its due key's entries could not be loaded.
const LOAD_AGAIN_MS: u64 = 1_000;

/// How long the stored keys' listing waits after a page could not be listed.
const LIST_AGAIN_MS: u64 = 1_000;

/// Jobs handed out and not answered, at most (the oldest is dropped: a host that lost its
/// answer never grows the machine). A host drives one at a time.
const MAX_OUT: usize = 64;

/// Reads that come back "again at once" (a refetch of no UUID, a key whose grants are gone)
/// within one poll, at most, before the host is told to poll again at once.
const MAX_SPINS: usize = 64;

/// What the host does next ([`Background::poll`]).
#[derive(Debug)]
pub enum Poll {
    /// `GET` this of Polar now and hand its answer to [`Background::answered`]
    /// ([`Given::Polar`]).
    Send(Request),
    /// With a store read per key: read these of the host's storage into the store's cache
    /// (as a request's loads), then hand [`Given::Loaded`] to [`Background::answered`].
    Load {
        /// The job's id.
        id: u32,
        /// What to read.
        missing: Missing,
    },
    /// With a store read per key: list this page of index rows for the reconcile and hand
    /// them to [`Background::answered`] ([`Given::Rows`]).
    List {
        /// The job's id.
        id: u32,
        /// Which rows.
        page: ListPage,
    },
    /// Nothing to do before this many ms from now (a grant webhook's refetch may come sooner:
    /// poll again after each request).
    Wait(u64),
    /// No background work at all, now or later (no store, or the roster and the reconcile
    /// both off, and no webhooks' silence to watch): the host's loop ends.
    Done,
}

/// One call of Polar's: a `GET` of [`Request::url`] with [`Request::headers`], or, when it
/// has a [`Request::body`], a `POST` of it (JSON: the usage ingestion's batches).
pub struct Request {
    id: u32,
    url: String,
    /// They hold the seller's token: never logged.
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// The job's id, for [`Background::answered`].
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The URL to `GET`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request's headers: they hold the seller's token (never log them).
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The body to `POST` (JSON, its `content-type` among the headers); `None`: a `GET`.
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

impl std::fmt::Debug for Request {
    /// The id and URL; the headers by name only (the token is one of them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("header_names", &names)
            .finish()
    }
}

/// What the host got for a job.
#[derive(Debug)]
pub enum Given {
    /// Polar's answer to a [`Poll::Send`] (status, `retry-after`, body), or why there was none.
    Polar(ReadAnswer),
    /// The rows of a [`Poll::List`] page (`<tag>|<entry id>`, in the storage's order), or why
    /// they could not be listed.
    Rows(Result<Vec<String>, String>),
    /// Whether a [`Poll::Load`]'s reads all succeeded.
    Loaded(bool),
}

/// A job handed out.
enum Job {
    Roster(Read),
    Reconcile(Check),
    /// A page of the stored keys' listing.
    List,
    /// A load before the reconcile's next read.
    LoadForCheck,
    /// A load for the parked answer of this job id.
    LoadForAnswer(u32),
    /// A page of a customer's grants or meters (crate::entitled).
    #[cfg_attr(not(feature = "entitlements"), allow(dead_code))]
    Entitled,
    /// A batch of usage reports ingested (crate::usage).
    Usage,
    /// A load of the next usage batch's buffer.
    LoadForUsage,
    /// A page of the listing of a last run's usage buffers.
    UsageList,
    /// A batch of install analytics events ingested (crate::analytics).
    Analytics,
    /// A call of an unseen activation's retirement (crate::last_seen).
    Retire,
    /// A read of the seller's set-up check (crate::doctor).
    Setup(crate::doctor::Probe),
}

/// An answer whose entries are not all in the cache yet: applied once loaded (or after
/// [`MAX_LOAD_ROUNDS`], or a failed load: then it narrows nothing and is asked again later).
struct Parked {
    id: u32,
    read: Job,
    answer: ReadAnswer,
    rounds: u32,
    failed: bool,
}

/// The background machine (see the module docs). One per relay, owned by its host.
pub struct Background {
    /// With a store read per key (Workers): the cache each read's rows are loaded into.
    paged: Option<Arc<PagedBackend>>,
    next_id: u32,
    out: VecDeque<(u32, Job)>,
    parked: VecDeque<Parked>,
    /// Whose read goes first at the next poll.
    roster_first: bool,
    /// Load rounds before the reconcile's next read so far.
    check_rounds: u32,
    /// No reconcile read before this monotonic ms (its key could not be loaded).
    reconcile_after: u64,
    /// No listing before this monotonic ms (a page could not be listed).
    list_after: u64,
    /// A load was answered and the next poll, which uses it, has not come yet.
    loads_held: bool,
    /// The last job answered was a read of Polar's.
    polar_answered: bool,
    /// Jobs handed out since the last wait (see [`Background::poll`]).
    ran: u32,
}

debug_some!(Background, b => {
    "paged": b.paged.is_some(),
    "out": b.out.len(),
    "parked": b.parked.len(),
});

/// One reader's say at a poll.
enum Say {
    Job(Poll),
    Wait(u64),
    /// Again at once.
    Spin,
    Off,
}

impl Background {
    /// The machine of a relay whose store is in memory or a file (natively): `paged` `None`;
    /// with a store read per key, its cache.
    pub fn new(paged: Option<Arc<PagedBackend>>) -> Background {
        Background {
            paged,
            next_id: 1,
            out: VecDeque::new(),
            parked: VecDeque::new(),
            roster_first: true,
            check_rounds: 0,
            reconcile_after: 0,
            list_after: 0,
            loads_held: false,
            polar_answered: false,
            ran: 0,
        }
    }

    /// Whether a load was read for a job that has not used it yet (the next [`Background::poll`]
    /// does): the store's cache is not trimmed meanwhile (`store::saves::take_writes`),
    /// or a save between the load and its use could let go of what it read.
    pub fn holds_loads(&self) -> bool {
        self.loads_held
    }

    /// Whether the host saves the store's changes now, before its next poll: after a read of
    /// Polar's (the budget's call spent, what the answer narrowed), never after a load or a
    /// listing (a save trims the cache, which could let go of what the next job needs loaded;
    /// an answer applied once its loads are in is saved with the next read's, or when the
    /// host's run ends).
    pub fn saves_now(&self) -> bool {
        self.polar_answered && !self.loads_held
    }

    /// What the host does next at `now`: after [`JOBS_PER_RUN`] jobs in a row, a
    /// `Wait(0)` (a Durable Object answers no request while a run holds it, so a long backlog,
    /// a roster's pages, is run in slices: the host sets its alarm for now and goes on there).
    ///
    /// Each poll first asks whether Polar's webhooks went silent (with webhooks on: none for
    /// [`crate::RelayConfig::webhook_silence`] seconds) and logs the warning when one is due,
    /// once per period; the wait it asks for is never past the next time that question is
    /// worth asking, so an idle relay warns on every host (natively the background's thread,
    /// on Workers the Durable Object's alarm), with no request.
    pub fn poll<C: Core + ?Sized>(&mut self, relay: &C, now: Now) -> Poll {
        let (warning, watch) = relay.watch_webhooks(now);
        if let Some(warning) = warning {
            log::warn!("relay: {warning}");
        }
        if self.ran >= JOBS_PER_RUN {
            self.ran = 0;
            return Poll::Wait(0);
        }
        let poll = match (self.next_job(relay, now), watch) {
            (Poll::Wait(ms), Some(watch)) => Poll::Wait(ms.min(watch)),
            (Poll::Done, Some(watch)) => Poll::Wait(watch),
            (poll, _) => poll,
        };
        match poll {
            Poll::Wait(_) | Poll::Done => self.ran = 0,
            Poll::Send(_) | Poll::Load { .. } | Poll::List { .. } => self.ran += 1,
        }
        poll
    }

    fn next_job<C: Core + ?Sized>(&mut self, relay: &C, now: Now) -> Poll {
        self.loads_held = false;
        let parts = relay.reads();
        let relay = &parts;
        if let Some(poll) = self.parked_next(relay, now) {
            return poll;
        }
        let mut wait: Option<u64> = None;
        let mut wait_for = |ms: u64| wait = Some(wait.map_or(ms, |w| w.min(ms)));
        // The seller's set-up check (crate::doctor), when on: at the start and every period,
        // one call at a time from the budget's shared part.
        if let Some(watch) = relay.setup_watch {
            let take = || {
                relay
                    .store
                    .map_or(Ok(()), |s| s.take(now, crate::store::Use::Shared))
            };
            match watch.next_call(now, relay.breaker.is_open(now), take) {
                Ok(call) => {
                    let id = self.put(Job::Setup(call.probe));
                    return Poll::Send(Request {
                        id,
                        url: call.url,
                        headers: call.headers,
                        body: call.body,
                    });
                }
                Err(ms) => wait_for(ms),
            }
        }
        let mut listing = false;
        if self.paged.is_some() && !self.out.iter().any(|(_, j)| matches!(j, Job::List)) {
            if now.monotonic_ms < self.list_after {
                listing = true;
                wait_for(self.list_after - now.monotonic_ms);
            } else if let Some(page) = reconcile_list(relay) {
                let id = self.put(Job::List);
                return Poll::List { id, page };
            }
        }
        // The usage reports waiting (crate::usage): each batch's call from the budget's usage
        // part (at most half the shared part, issue #76: a flood never starves a first-seen
        // key's validate).
        if let Some(s) = relay.store.filter(|s| s.usage.on()) {
            // With a store read per key, a last run's buffers listed first, and each batch's
            // buffer loaded before it is read.
            let listing = !self.out.iter().any(|(_, j)| matches!(j, Job::UsageList));
            if let Some(page) = self
                .paged
                .as_ref()
                .filter(|_| listing)
                .and_then(|_| s.usage.list_page(&*s.backend, now))
            {
                let id = self.put(Job::UsageList);
                return Poll::List { id, page };
            }
            let buffer = self.paged.as_ref().zip(s.usage.next_buffer(now));
            if let Some((paged, id)) = buffer {
                let missing = paged.missing(&crate::store::Wants {
                    entries: vec![id],
                    ..Default::default()
                });
                if !missing.is_empty() {
                    let id = self.put(Job::LoadForUsage);
                    return Poll::Load { id, missing };
                }
            }
            match s.usage.next_batch(
                &*s.backend,
                relay.base_url,
                || relay.breaker.is_open(now),
                || s.take(now, crate::store::Use::Usage),
                now,
            ) {
                Ok((url, body)) => {
                    let mut headers = crate::reads::read_headers(relay);
                    headers.push(("content-type", "application/json".to_string()));
                    let id = self.put(Job::Usage);
                    return Poll::Send(Request {
                        id,
                        url,
                        headers,
                        body: Some(body),
                    });
                }
                // Nothing waiting, with a store read per key (Workers): no poll meanwhile (a
                // Durable Object's alarm would cost storage calls); each request wakes it.
                Err(Some(_)) if self.paged.is_some() && s.usage.idle() => {}
                Err(Some(ms)) => wait_for(ms),
                Err(None) => {}
            }
        }
        // The install analytics' events waiting (crate::analytics), in batches from the
        // budget's usage part (a store's; without one, the breaker alone).
        let batch = relay.analytics.next_batch(
            relay.base_url,
            || relay.breaker.is_open(now),
            || {
                relay
                    .store
                    .map_or(Ok(()), |s| s.take(now, crate::store::Use::Usage))
            },
            now,
        );
        match batch {
            Ok((url, body)) => {
                let mut headers = crate::reads::read_headers(relay);
                headers.push(("content-type", "application/json".to_string()));
                let id = self.put(Job::Analytics);
                return Poll::Send(Request {
                    id,
                    url,
                    headers,
                    body: Some(body),
                });
            }
            // A store read per key (Workers): no alarm for it; each ping's request wakes it.
            Err(Some(_)) if self.paged.is_some() => {}
            Err(Some(ms)) => wait_for(ms),
            Err(None) => {}
        }
        // Activations unseen for the seller's days, retired (crate::last_seen): a few a
        // minute, each call from the budget's shared part, while it has half its room (the
        // customers' checks first), and through the breaker.
        let retire = relay.last_seen.next_call(
            relay.base_url,
            || relay.breaker.is_open(now),
            || match relay.store {
                Some(s) if s.budget(now).room(now.monotonic_ms) <= 0.5 => Err(1),
                Some(s) => s.take(now, crate::store::Use::Shared),
                None => Ok(()),
            },
            now,
        );
        match retire {
            Ok((url, body)) => {
                let mut headers = crate::reads::read_headers(relay);
                if body.is_some() {
                    headers.push(("content-type", "application/json".to_string()));
                }
                let id = self.put(Job::Retire);
                return Poll::Send(Request {
                    id,
                    url,
                    headers,
                    body,
                });
            }
            Err(Some(ms)) => wait_for(ms),
            Err(None) => {}
        }
        // The customers' values a grant's lease asked for (crate::entitled): first, as the
        // customers' checks are; each read's call from the budget's shared part (a read only
        // an ingested usage batch asked: its usage part).
        #[cfg(feature = "entitlements")]
        {
            let entitled = match relay.store.map(|s| {
                s.entitled.next_read(
                    relay.base_url,
                    || relay.breaker.is_open(now),
                    |for_usage| {
                        let what = if for_usage {
                            crate::store::Use::Usage
                        } else {
                            crate::store::Use::Shared
                        };
                        s.take(now, what)
                    },
                    s.usage.ingestions(),
                    now,
                )
            }) {
                Some(Ok(url)) => {
                    return self.send_entitled(url, crate::reads::read_headers(relay));
                }
                // Nothing due, with a store read per key (Workers): no poll meanwhile (each
                // alarm of a Durable Object is an invocation); each request wakes it.
                Some(Err(Some(_)))
                    if self.paged.is_some() && relay.store.is_some_and(|s| s.entitled.idle()) =>
                {
                    None
                }
                Some(Err(Some(ms))) => Some(ms),
                _ => None,
            };
            if let Some(ms) = entitled {
                wait_for(ms);
            }
        }
        let mut on = false;
        for spin in 0..MAX_SPINS {
            let mut again = false;
            on = listing;
            let order = if self.roster_first {
                [true, false]
            } else {
                [false, true]
            };
            for roster in order {
                let say = if roster {
                    self.roster(relay, now)
                } else {
                    self.reconcile(relay, now)
                };
                match say {
                    Say::Job(poll) => {
                        // The other reader goes first next time.
                        self.roster_first = !roster;
                        return poll;
                    }
                    Say::Wait(ms) => {
                        on = true;
                        wait_for(ms);
                    }
                    Say::Spin => {
                        on = true;
                        again = true;
                    }
                    Say::Off => {}
                }
            }
            if !again {
                break;
            }
            if spin + 1 == MAX_SPINS {
                return Poll::Wait(0);
            }
        }
        match wait {
            Some(ms) => Poll::Wait(ms),
            None if on || !self.out.is_empty() => Poll::Wait(0),
            None => Poll::Done,
        }
    }

    /// What the host got for the job `id` at `now`, applied (an unknown id is ignored).
    /// Returns the warning to log once when the token cannot list the organization's keys
    /// (for a host whose log the core does not reach).
    pub fn answered<C: Core + ?Sized>(
        &mut self,
        relay: &C,
        id: u32,
        given: Given,
        now: Now,
    ) -> Option<String> {
        let parts = relay.reads();
        let relay = &parts;
        let Some(at) = self.out.iter().position(|(i, _)| *i == id) else {
            return roster_warning(relay);
        };
        let Some((_, job)) = self.out.remove(at) else {
            return roster_warning(relay);
        };
        self.polar_answered = matches!(
            job,
            Job::Roster(_)
                | Job::Reconcile(_)
                | Job::Entitled
                | Job::Usage
                | Job::Analytics
                | Job::Retire
                | Job::Setup(_)
        );
        match job {
            Job::Setup(probe) => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                if let Some(watch) = relay.setup_watch {
                    watch.answered(probe, answer, now);
                }
            }
            Job::Usage => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                if let Some(s) = relay.store {
                    if let Some(_customer) = s.usage.answered(&*s.backend, answer, now) {
                        #[cfg(feature = "entitlements")]
                        s.entitled.ingested(&_customer);
                    }
                }
            }
            Job::Analytics => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                relay.analytics.answered(&answer, now);
            }
            Job::Retire => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                relay.last_seen.answered(&answer, now);
            }
            Job::Entitled => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                #[cfg(feature = "entitlements")]
                if let Some(s) = relay.store {
                    s.entitled.answered(answer, now);
                }
                #[cfg(not(feature = "entitlements"))]
                let _ = answer;
            }
            Job::Roster(_) | Job::Reconcile(_) => {
                let answer = match given {
                    Given::Polar(answer) => answer,
                    other => Err(format!("the host gave no answer of Polar's ({other:?})")),
                };
                if self.missing_for(relay, &job).is_some() {
                    self.parked.push_back(Parked {
                        id,
                        read: job,
                        answer,
                        rounds: 0,
                        failed: false,
                    });
                } else {
                    apply(relay, job, answer, now);
                }
            }
            Job::List => match given {
                Given::Rows(Ok(rows)) => reconcile_listed(relay, &rows, now),
                other => {
                    log::error!(
                        "relay: the stored keys could not be listed for the reconcile \
                         ({other:?}): again in a second"
                    );
                    self.list_after = now.monotonic_ms.saturating_add(LIST_AGAIN_MS);
                }
            },
            Job::UsageList => {
                if let Some(s) = relay.store {
                    let rows = match &given {
                        Given::Rows(Ok(rows)) => Ok(rows.as_slice()),
                        other => {
                            log::error!(
                                "relay: the usage buffers could not be listed ({other:?}): again \
                                 in a second"
                            );
                            Err(())
                        }
                    };
                    s.usage.listed(rows, now);
                }
            }
            Job::LoadForUsage => {
                self.loads_held = matches!(given, Given::Loaded(true));
                if let Some(s) = relay.store.filter(|_| !self.loads_held) {
                    s.usage.load_failed(now);
                }
            }
            Job::LoadForCheck => {
                self.loads_held = matches!(given, Given::Loaded(true));
                if !matches!(given, Given::Loaded(true)) {
                    self.check_rounds = 0;
                    self.reconcile_after = now.monotonic_ms.saturating_add(LOAD_AGAIN_MS);
                }
            }
            Job::LoadForAnswer(parked) => {
                let ok = matches!(given, Given::Loaded(true));
                if let Some(p) = self.parked.iter_mut().find(|p| p.id == parked) {
                    p.failed |= !ok;
                }
                // Applied now when all is loaded (or cannot be): its changes go with this
                // answer's save.
                self.apply_parked(relay, now, false);
                // Still parked: what was loaded is for the next poll's rounds.
                self.loads_held = ok && self.parked.iter().any(|p| p.id == parked);
            }
        }
        roster_warning(relay)
    }

    /// A parked answer's next load, or `None` once every parked answer that could be was
    /// applied.
    fn parked_next(&mut self, relay: &Reads<'_>, now: Now) -> Option<Poll> {
        self.apply_parked(relay, now, true);
        let p = self.parked.front_mut()?;
        p.rounds += 1;
        let parked = p.id;
        let missing = self.paged.as_ref().and_then(|paged| {
            let p = self.parked.front()?;
            wants_of(relay, &p.read).map(|w| paged.missing(&w))
        })?;
        let id = self.put(Job::LoadForAnswer(parked));
        Some(Poll::Load { id, missing })
    }

    /// Applies the parked answers at the front whose loads are done, failed, or (with
    /// `rounds`) took [`MAX_LOAD_ROUNDS`].
    fn apply_parked(&mut self, relay: &Reads<'_>, now: Now, rounds: bool) {
        while let Some(p) = self.parked.front() {
            let done = p.failed
                || (rounds && p.rounds >= MAX_LOAD_ROUNDS)
                || self.missing_for(relay, &p.read).is_none();
            if !done {
                return;
            }
            if let Some(p) = self.parked.pop_front() {
                apply(relay, p.read, p.answer, now);
            }
        }
    }

    /// What the answer of `job` touches that the cache does not hold (`None`: nothing, or no
    /// store read per key).
    fn missing_for(&self, relay: &Reads<'_>, job: &Job) -> Option<Missing> {
        let paged = self.paged.as_ref()?;
        let missing = paged.missing(&wants_of(relay, job)?);
        (!missing.is_empty()).then_some(missing)
    }

    #[cfg(feature = "entitlements")]
    fn send_entitled(&mut self, url: String, headers: Vec<(&'static str, String)>) -> Poll {
        let id = self.put(Job::Entitled);
        Poll::Send(Request {
            id,
            url,
            headers,
            body: None,
        })
    }

    fn put(&mut self, job: Job) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        if self.out.len() >= MAX_OUT {
            self.out.pop_front();
        }
        self.out.push_back((id, job));
        id
    }

    fn send(&mut self, job: Job, url: String, headers: Vec<(&'static str, String)>) -> Say {
        let id = self.put(job);
        Say::Job(Poll::Send(Request {
            id,
            url,
            headers,
            body: None,
        }))
    }

    /// The roster's say: its next read, or how long until one.
    fn roster(&mut self, relay: &Reads<'_>, now: Now) -> Say {
        match roster_read(relay, now) {
            Ok(read) => {
                let (url, headers) = (read.url.clone(), read.headers.clone());
                self.send(Job::Roster(read), url, headers)
            }
            Err(Some(0)) => Say::Spin,
            Err(Some(ms)) => Say::Wait(ms),
            Err(None) => Say::Off,
        }
    }

    /// The reconcile's say: its due key's rows to load first (a store read per key), its next
    /// read, or how long until one.
    fn reconcile(&mut self, relay: &Reads<'_>, now: Now) -> Say {
        if now.monotonic_ms < self.reconcile_after {
            return Say::Wait(self.reconcile_after - now.monotonic_ms);
        }
        if let Some(paged) = &self.paged {
            // A key's entries not loaded would read as gone (its key dropped): loaded first.
            let missing = reconcile_wants(relay, now)
                .map(|w| paged.missing(&w))
                .filter(|m| !m.is_empty());
            if let Some(missing) = missing {
                if self.check_rounds < MAX_LOAD_ROUNDS {
                    self.check_rounds += 1;
                    let id = self.put(Job::LoadForCheck);
                    return Say::Job(Poll::Load { id, missing });
                }
                self.check_rounds = 0;
                self.reconcile_after = now.monotonic_ms.saturating_add(LOAD_AGAIN_MS);
                return Say::Wait(LOAD_AGAIN_MS);
            }
        }
        match reconcile_read(relay, now) {
            Ok(check) => {
                self.check_rounds = 0;
                let (url, headers) = (check.url.clone(), check.headers.clone());
                self.send(Job::Reconcile(check), url, headers)
            }
            Err(Some(0)) => Say::Spin,
            Err(Some(ms)) => Say::Wait(ms),
            Err(None) => Say::Off,
        }
    }
}

/// What the answer of a read touches in the store (a re-grant's refetch, a reconcile).
fn wants_of(relay: &Reads<'_>, job: &Job) -> Option<Wants> {
    match job {
        Job::Roster(read) => refetch_wants(relay, read),
        Job::Reconcile(check) => Some(check.wants()),
        _ => None,
    }
}

/// A read's answer handed to its component.
fn apply(relay: &Reads<'_>, job: Job, answer: ReadAnswer, now: Now) {
    match job {
        Job::Roster(read) => roster_answered(relay, read, answer, now),
        Job::Reconcile(check) => reconcile_answered(relay, check, answer, now),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
mod tests;
