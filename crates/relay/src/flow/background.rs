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
mod tests {
    use super::*;
    use crate::reconcile::tests::{at, lk};
    use crate::relay::Relay;
    use crate::roster::tests::{relay_on, relay_with};
    use crate::store::{Backend, Entry, Mark, StoreOptions};

    /// The reconcile's clock (2027-01), unix seconds.
    const NOW: i64 = 1_800_000_000;

    /// Polar's grant of license key `n`, answered at `answered_at`, marked `mark`.
    fn grant(n: u8, answered_at: i64, mark: Mark) -> Entry {
        Entry::test_grant(lk(n), answered_at, mark, None)
    }

    /// A relay over a store read per key (Workers) caching 2 entries and rows, with a budget of
    /// 100 calls, none kept, its reconcile asking each key once a minute (no roster), and its
    /// background machine.
    fn paged_relay() -> (Arc<PagedBackend>, Relay, Background) {
        let (paged, r) = crate::reconcile::tests::paged_relay(2, false);
        let m = Background::new(Some(paged.clone()));
        (paged, r, m)
    }

    fn polar(status: &str) -> Given {
        let body = serde_json::json!({"key": "K-1", "status": status});
        Given::Polar(Ok((200, None, body.to_string().into_bytes())))
    }

    /// The `GET` a poll must ask for.
    fn send(poll: Poll) -> Request {
        match poll {
            Poll::Send(read) => read,
            other => panic!("a read, not {other:?}"),
        }
    }

    /// A host runs at most `JOBS_PER_RUN` jobs in a row: the machine then says `Wait(0)` (the
    /// host yields: a Durable Object answers requests between slices) and goes on after it.
    #[test]
    fn a_run_is_sliced_after_its_jobs_in_a_row() {
        let (_, r, mut m) = paged_relay();
        m.ran = JOBS_PER_RUN - 1;
        let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
            panic!("the listing first")
        };
        let row = format!("l:{}|{}", lk(1), "01".repeat(32));
        m.answered(&r, id, Given::Rows(Ok(vec![row])), at(NOW, 1));
        assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(0)));
        // The job due comes at the next poll, the count from 0 again.
        assert!(matches!(m.poll(&r, at(NOW + 60, 3)), Poll::Load { .. }));
        assert_eq!(m.ran, 1);
    }

    /// A store read per key (Workers), caching `cached` entries and rows, its reconcile asking
    /// each key once a minute (no roster): the stored keys are listed first, the due key's
    /// rows loaded before its read, and an answer whose rows the cache let go meanwhile is
    /// held until they are loaded again: a revocation Polar gave is never lost to the cache.
    #[test]
    fn a_paged_store_lists_then_loads_before_a_read_and_before_its_answer() {
        let (paged, r, mut m) = paged_relay();
        // The listing first: one short page, the last.
        let hex = "01".repeat(32);
        let row = format!("l:{}", lk(1));
        let Poll::List { id, page } = m.poll(&r, at(NOW, 0)) else {
            panic!("the listing first")
        };
        assert_eq!((page.prefix, page.after), ("l:", None));
        m.answered(
            &r,
            id,
            Given::Rows(Ok(vec![format!("{row}|{hex}")])),
            at(NOW, 1),
        );
        // Nothing due before a minute on; then the key's rows are loaded before its read.
        assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(_)));
        let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 3)) else {
            panic!("the due key's rows loaded first")
        };
        assert_eq!(missing.tags, vec![row.clone()]);
        paged.load(Vec::new(), vec![(row.clone(), vec![hex.clone()])]);
        m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 4));
        let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 5)) else {
            panic!("then its entry")
        };
        assert_eq!(missing.entries, vec![hex.clone()]);
        let entry = || vec![(hex.clone(), Some(grant(1, 100, Mark::None)))];
        paged.load(entry(), Vec::new());
        m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 6));
        let read = send(m.poll(&r, at(NOW + 60, 7)));
        assert!(read.url().ends_with(&lk(1)), "{}", read.url());
        assert!(!format!("{read:?}").contains("Bearer"), "{read:?}");
        // The cache lets the row go while Polar is asked: the answer waits for it.
        paged.load(Vec::new(), vec![("l:other".into(), Vec::new())]);
        paged.trim();
        m.answered(&r, read.id(), polar("revoked"), at(NOW + 60, 8));
        let mark = || paged.get(&[1; 32]).expect("get").map(|e| e.mark);
        let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 9)) else {
            panic!("the answer's rows loaded before it is applied")
        };
        assert_eq!(missing.tags, vec![row.clone()]);
        paged.load(entry(), vec![(row, vec![hex.clone()])]);
        m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 10));
        assert_eq!(mark(), Some(Mark::Revoked), "applied once loaded");
    }

    /// Issue #63 (the store's protocol in Rust): the host saves after a read of Polar's, never
    /// between a load and the job that uses it, and a save then (the run's end) leaves the
    /// cache as the load left it: a cache of two never lets go of the row just loaded for the
    /// reconcile's next job, which asks for the entry next, not the row again.
    #[test]
    fn no_save_trims_what_a_load_read_before_its_use() {
        let (paged, r, mut m) = paged_relay();
        let hex = "01".repeat(32);
        let row = format!("l:{}", lk(1));
        let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
            panic!("the listing first")
        };
        m.answered(
            &r,
            id,
            Given::Rows(Ok(vec![format!("{row}|{hex}")])),
            at(NOW, 1),
        );
        assert!(!m.saves_now(), "no save after a listing");
        assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(_)));
        let Poll::Load { id, .. } = m.poll(&r, at(NOW + 60, 3)) else {
            panic!("the due key's rows loaded first")
        };
        paged.load(Vec::new(), vec![(row.clone(), vec![hex.clone()])]);
        m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 4));
        assert!(m.holds_loads() && !m.saves_now(), "no save after a load");
        // Another request's load meanwhile: the cache is past its bound of two.
        paged.load(
            Vec::new(),
            vec![("l:a".into(), Vec::new()), ("l:b".into(), Vec::new())],
        );
        let writes = crate::store::saves::take_writes(&paged, &[], m.holds_loads());
        assert!(writes.is_empty(), "{writes:?}");
        let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 5)) else {
            panic!("then its entry")
        };
        assert!(missing.tags.is_empty(), "the row was kept: {missing:?}");
        assert_eq!(missing.entries, vec![hex.clone()]);
        // Used: the next save may trim again.
        assert!(!m.holds_loads());
        paged.load(
            vec![(hex.clone(), Some(grant(1, 100, Mark::None)))],
            Vec::new(),
        );
        m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 6));
        let read = send(m.poll(&r, at(NOW + 60, 7)));
        m.answered(&r, read.id(), polar("granted"), at(NOW + 60, 8));
        assert!(
            m.saves_now(),
            "saved after Polar's answer (the budget's call spent)"
        );
    }

    /// A load that fails: the reconcile's read waits a second (no read of a key whose entries
    /// would read as gone), an answer is applied as it is (narrowing nothing; the key is asked
    /// again), and a listing that fails is tried again a second later.
    #[test]
    fn a_failed_load_or_listing_waits_a_second() {
        let (_paged, r, mut m) = paged_relay();
        let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
            panic!("the listing first")
        };
        m.answered(&r, id, Given::Rows(Err("refused".into())), at(NOW, 1));
        assert!(
            matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(999)),
            "no page within a second"
        );
        let Poll::List { id, .. } = m.poll(&r, at(NOW, 1_001)) else {
            panic!("the page again")
        };
        let rows = vec![format!("l:{}|{}", lk(1), "01".repeat(32))];
        m.answered(&r, id, Given::Rows(Ok(rows)), at(NOW, 1_002));
        let Poll::Load { id, .. } = m.poll(&r, at(NOW + 60, 1_003)) else {
            panic!("the due key's rows")
        };
        m.answered(&r, id, Given::Loaded(false), at(NOW + 60, 1_004));
        assert!(
            matches!(m.poll(&r, at(NOW + 60, 1_005)), Poll::Wait(999)),
            "no read within a second of the failed load"
        );
        assert!(matches!(m.poll(&r, at(NOW + 60, 2_004)), Poll::Load { .. }));
    }

    /// The roster and the reconcile take turns: a run of grant webhooks' refetches never holds
    /// a due reconcile back, nor the other way; with neither on the machine is done.
    #[test]
    fn the_roster_and_the_reconcile_take_turns_and_none_is_done() {
        let r = relay_with(StoreOptions {
            budget: 1_000,
            reserve: 100,
            reconcile_every: 60,
            roster: true,
            ..StoreOptions::default()
        });
        let s = r.store.as_ref().expect("a store");
        let mut m = Background::new(None);
        let page = send(m.poll(&r, at(NOW, 0)));
        assert!(page.url().contains("page=1"), "{}", page.url());
        let body = serde_json::json!({"items": [{"key": "K-1"}], "pagination": {"max_page": 1}});
        m.answered(
            &r,
            page.id(),
            Given::Polar(Ok((200, None, body.to_string().into_bytes()))),
            at(NOW, 1),
        );
        s.backend
            .put(&[1; 32], &grant(1, 100, Mark::None))
            .expect("put");
        s.reconcile.saw(&lk(1), 100);
        for n in 10..14u8 {
            let event = serde_json::json!({"type": "benefit_grant.created",
                "data": {"properties": {"license_key_id": lk(n)}}});
            crate::roster::on_event(&s.roster, &event, 2);
        }
        let urls: Vec<String> = (0..3)
            .map(|i| send(m.poll(&r, at(NOW, 3 + i))).url().to_string())
            .collect();
        assert!(urls[0].ends_with(&lk(1)), "the reconcile's turn: {urls:?}");
        assert!(urls[1].ends_with(&lk(10)), "then the roster's: {urls:?}");
        assert!(urls[2].ends_with(&lk(11)), "{urls:?}");
        // Neither on: done (the native loop ends).
        let off = relay_with(StoreOptions {
            reconcile_every: 0,
            roster: false,
            ..StoreOptions::default()
        });
        assert!(matches!(
            Background::new(None).poll(&off, at(NOW, 0)),
            Poll::Done
        ));
    }

    /// Issue #68: with values signed (`entitlements`) and a store read per key (Workers), no
    /// customer's values due asks for no wake-up (a Durable Object's alarm is an invocation);
    /// a customer wanted is read at the next poll, its pages one after the other, and once
    /// read the machine is done again. Natively it waits 200 ms instead (no request wakes the
    /// native loop once it has ended).
    #[cfg(feature = "entitlements")]
    #[test]
    fn values_with_nothing_due_ask_no_wake_up_on_a_paged_store() {
        let (r, mut m) = values_relay();
        let s = r.store.as_ref().expect("a store");
        assert!(matches!(m.poll(&r, at(NOW, 0)), Poll::Done));
        // A usage batch ingested (or a lease's ask) wants the customer: read at once.
        s.entitled.ingested(CUSTOMER);
        let grants = send(m.poll(&r, at(NOW, 1)));
        assert!(
            grants.url().contains("/v1/benefit-grants/"),
            "{}",
            grants.url()
        );
        m.answered(&r, grants.id(), empty_page(), at(NOW, 2));
        let meters = send(m.poll(&r, at(NOW, 3)));
        assert!(
            meters.url().contains("/v1/customer-meters/"),
            "{}",
            meters.url()
        );
        m.answered(&r, meters.id(), empty_page(), at(NOW, 4));
        assert!(matches!(m.poll(&r, at(NOW, 5)), Poll::Done));
        // Natively: the loop polls on (200 ms), as before.
        let native = relay_with(values_options());
        assert!(matches!(
            Background::new(None).poll(&native, at(NOW, 0)),
            Poll::Wait(200)
        ));
    }

    /// The customer whose values the back-off tests read.
    #[cfg(feature = "entitlements")]
    const CUSTOMER: &str = "7d3c1e2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f";

    /// A store with values on (no reconcile, no roster).
    #[cfg(feature = "entitlements")]
    fn values_options() -> StoreOptions {
        StoreOptions {
            entitlements: true,
            reconcile_every: 0,
            roster: false,
            ..StoreOptions::default()
        }
    }

    /// A relay over a store read per key (Workers) of [`values_options`], and its background
    /// machine.
    #[cfg(feature = "entitlements")]
    fn values_relay() -> (Relay, Background) {
        let paged = Arc::new(PagedBackend::new(100, 2));
        let r = relay_on(paged.clone(), values_options());
        (r, Background::new(Some(paged)))
    }

    /// [`values_relay`] with [`CUSTOMER`]'s values due.
    #[cfg(feature = "entitlements")]
    fn values_due() -> (Relay, Background) {
        let (r, m) = values_relay();
        let s = r.store.as_ref().expect("a store");
        s.entitled.ingested(CUSTOMER);
        (r, m)
    }

    /// The clock `ms` milliseconds after [`NOW`].
    #[cfg(feature = "entitlements")]
    fn clock(ms: u64) -> Now {
        at(NOW + (ms / 1_000) as i64, ms)
    }

    /// A values page Polar answered: no items, the last page.
    #[cfg(feature = "entitlements")]
    fn empty_page() -> Given {
        let body = serde_json::json!({"items": [], "pagination": {"max_page": 1}});
        Given::Polar(Ok((200, None, body.to_string().into_bytes())))
    }

    /// On Workers each wait is the Durable Object's alarm: while Polar's values reads fail
    /// (grants read refused by the network), the machine waits longer after each failure in a
    /// row (5 s doubled, at most 5 min: the core's rule, the native loop's too), so an hour of
    /// failures rings the alarm about 18 times, not 720; Polar back, the read goes through and
    /// the machine is done.
    #[cfg(feature = "entitlements")]
    #[test]
    fn failing_values_reads_back_off_and_ring_the_alarm_less_and_less() {
        let (r, mut m) = values_due();
        let s = r.store.as_ref().expect("a store");
        // An hour of Polar failing: each alarm rings at its wait's end (as a Durable Object's).
        let (mut t, mut reads, mut rings, mut waits) = (0_u64, 0, 0, Vec::new());
        while t < 3_600_000 {
            match m.poll(&r, clock(t)) {
                Poll::Send(read) => {
                    assert!(read.url().contains("/v1/benefit-grants/"), "{}", read.url());
                    reads += 1;
                    let failed = Given::Polar(Err("connection refused".into()));
                    m.answered(&r, read.id(), failed, clock(t));
                }
                Poll::Wait(ms) => {
                    assert!(ms > 0, "a wait at {t} ms");
                    rings += 1;
                    waits.push(ms);
                    t += ms;
                }
                other => panic!("at {t} ms: {other:?}"),
            }
        }
        assert_eq!(
            &waits[..7],
            &[5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000]
        );
        assert!(waits.iter().all(|&w| w <= 300_000), "{waits:?}");
        assert!((15..=20).contains(&reads), "{reads} reads in an hour");
        assert!(rings <= reads + 1, "{rings} rings for {reads} reads");
        // Polar back: the read goes through (its two pages), then nothing is due.
        for _ in 0..2 {
            let read = send(m.poll(&r, clock(t)));
            m.answered(&r, read.id(), empty_page(), clock(t));
        }
        assert!(matches!(m.poll(&r, clock(t)), Poll::Done));
        // A failure after a success waits 5 s again (the backoff starts over).
        s.entitled.ingested(CUSTOMER);
        let read = send(m.poll(&r, clock(t)));
        m.answered(&r, read.id(), Given::Polar(Err("reset".into())), clock(t));
        assert!(matches!(m.poll(&r, clock(t)), Poll::Wait(5_000)));
    }

    /// A values read whose first pages Polar answers and whose later one fails each time (the
    /// grants read, the meters refused: what a workerd test met, its alarm ringing every 5 s)
    /// is a failure in a row each time: a page answered does not start the backoff over, only
    /// a read done whole does.
    #[cfg(feature = "entitlements")]
    #[test]
    fn values_reads_failing_at_a_later_page_back_off_too() {
        let (r, mut m) = values_due();
        let (mut t, mut waits) = (0_u64, Vec::new());
        while waits.len() < 5 {
            match m.poll(&r, clock(t)) {
                Poll::Send(read) if read.url().contains("/v1/benefit-grants/") => {
                    m.answered(&r, read.id(), empty_page(), clock(t));
                }
                Poll::Send(read) => {
                    assert!(
                        read.url().contains("/v1/customer-meters/"),
                        "{}",
                        read.url()
                    );
                    let failed = Given::Polar(Ok((404, None, b"{}".to_vec())));
                    m.answered(&r, read.id(), failed, clock(t));
                }
                Poll::Wait(ms) => {
                    waits.push(ms);
                    t += ms;
                }
                other => panic!("at {t} ms: {other:?}"),
            }
        }
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000]);
    }
}
