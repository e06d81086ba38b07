//! Usage reported through the seller's relay (issue #68 item 3, docs/entitlements.md): a
//! client reports units of a meter, the relay keeps the report in its store and ingests the
//! buffered reports to Polar in batches (`POST /v1/events/ingest`), within the token's budget.
//!
//! `POST` [`USAGE_ROUTE`] with the key in the body (never in a URL):
//!
//! ```json
//! {"key": "…", "organization_id": "…", "activation_id": "…",
//!  "meter": "api_call", "units": 3, "id": "6b0c1f4e-…"}
//! ```
//!
//! (`activation_id` optional; `meter` the event name Polar's meter counts, 1 to 128 bytes;
//! `units` a number, more than 0 and at most [`MAX_UNITS`]; `id` the client's idempotency id,
//! 1 to 64 of `A-Z a-z 0-9 - _ .`: a report sent again with the same id counts once).
//!
//! * **The key proves it is the caller's** as a device listing's does: the relay first asks
//!   the key's verdict (a validate routed as any other: the per-key limit, the breaker, the
//!   store, the token's budget) and passes any answer but a 200 on as it is. The customer is
//!   the validate's `customer_id` (Polar's word, never the client's).
//! * **Kept before it is answered.** A granted report is added to its key's buffer, one value
//!   of the store changed in one step ([`crate::store::Backend::update`]: a durable store has
//!   it on disk when the client reads `recorded`), at most [`MAX_PENDING_PER_KEY`] reports
//!   waiting per key and [`MAX_PENDING_TOTAL`] in all (past either, 429 `UsageBacklog`: no
//!   request grows the store past its bound); a report whose id the buffer holds (waiting, or
//!   among the last [`DONE_KEPT`] ingested) is answered `duplicate` and not kept again.
//! * **Ingested in the background** ([`crate::flow::background`]): one batch per key (its
//!   waiting reports, at most [`MAX_PENDING_PER_KEY`]), one call of the budget's shared part,
//!   each event's `external_id` the key's namespace and the report's id (so Polar too counts a
//!   report once, whatever the relay remembers), `customer_id` from the verdict, `metadata`
//!   `{"units": units}`. Polar down (5xx, unreachable, 429): the batch stays, tried again
//!   after a backoff. Polar's 422 (one bad event rejects the batch, e.g. a customer deleted
//!   since): those reports are dropped with an error log (sent again they would be refused
//!   again). Polar's 401 or 403 (the token lacks `events:write`): ingestion stops, with an
//!   error log; the reports stay in the store.
//! * **The balance the relay knows** ([`crate::entitled`], with entitlements on): the meter's
//!   balance Polar last answered, less the units ingested since that read began and the units
//!   still waiting (a meter that sums `units` counts a report's units; a `count` meter counts
//!   each report once). `null` when the relay has not read the customer's meters yet (it asks
//!   for a read).
//! * **The seller's rule** ([`crate::store::StoreOptions::refuse_at_zero_credits`], off by
//!   default): a report whose meter's known balance is at or below zero is refused, 402 with
//!   the reason `credits_exhausted`, and not kept. Polar itself never refuses usage.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use polar_license::lease::key_hash;
use serde::{Deserialize, Serialize};

use crate::clock::Now;
use crate::locked::locked;
use crate::metered::is_event_name;
use crate::reconcile::ListPage;
use crate::store::{Backend, Entry, EntryId};
pub use crate::types::USAGE_ROUTE;
use crate::types::{Finished, RelayResponse};

use crate::route::usage::UsageAsk;

/// Reports waiting per key at most (past it: 429 `UsageBacklog` until a batch is ingested).
pub const MAX_PENDING_PER_KEY: usize = 100;

/// Reports waiting in all at most.
pub const MAX_PENDING_TOTAL: usize = 100_000;

/// Ingested report ids a key's buffer remembers (its newest), for duplicates answered
/// without Polar; older ones Polar's `external_id` still counts once.
pub const DONE_KEPT: usize = 256;

/// The most units one report may carry.
pub const MAX_UNITS: f64 = 1_000_000_000.0;

/// The fewest units one report may carry (issue #76): a millionth of a unit. Below it a report
/// counts for nothing a meter shows (Polar's balances are read as numbers a person reads), so
/// it would only spend the store, the budget's calls and Polar's events: `1e-300` units is
/// refused, 422, before anything is asked or kept.
pub const MIN_UNITS: f64 = 1e-6;

/// The longest id, in bytes.
const MAX_ID_BYTES: usize = 64;

/// The status a key's usage buffer is stored with (no answer of Polar's has it).
pub(crate) const USAGE_STATUS: u16 = 1;

/// The prefix of a usage buffer's index tag (one tag per buffer: found again at a restart).
const TAG_PREFIX: &str = "u:";

/// How long ingestion waits after a batch failed (Polar's 5xx, the network, the store), doubled
/// for each failure in a row up to 5 minutes ([`crate::backoff`]: the values reads' rule too;
/// on Workers each wait is an alarm of the Durable Object, an invocation billed).
const BACKOFF_MS: u64 = 1_000;

/// How long the background machine waits with nothing to ingest.
const IDLE_MS: u64 = 200;

/// A key's ingest round (issue #76): after a batch of a key's reports, its next batch waits
/// this long, so a flood of tiny reports on one key is one call every round (the reports of
/// the round in one batch), whatever its rate; other keys' batches go meanwhile.
pub const ROUND_MS: u64 = 2_000;

/// The body read (`422` in Polar's shape, `InvalidUsageRequest`, with what is wrong;
/// [`crate::types::ask_object`]).
pub(crate) fn read_ask(body: &[u8]) -> Result<UsageAsk, RelayResponse> {
    let refuse = |detail: &str| RelayResponse::error(422, "InvalidUsageRequest", detail);
    const FIELDS: [&str; 4] = ["activation_id", "meter", "units", "id"];
    let (obj, key, organization_id) = crate::types::ask_object(body, &FIELDS, refuse)?;
    crate::types::activation_id_of(&obj, refuse)?;
    let text = |name: &str| obj.get(name).and_then(|v| v.as_str());
    let meter = text("meter").ok_or_else(|| refuse("meter is missing"))?;
    if !is_event_name(meter) {
        return Err(refuse("meter must be 1 to 128 bytes of printable text"));
    }
    // Non-finite numbers never reach here as JSON (a huge exponent does not parse), but the
    // check says so for any reader; the floor refuses what no meter would show.
    let units = obj
        .get("units")
        .and_then(serde_json::Value::as_f64)
        .filter(|u| u.is_finite() && *u >= MIN_UNITS && *u <= MAX_UNITS)
        .ok_or_else(|| refuse("units must be a number from 0.000001 to 1000000000"))?;
    let id = text("id").ok_or_else(|| refuse("id is missing"))?;
    if id.is_empty()
        || id.len() > MAX_ID_BYTES
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(refuse(
            "id must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
        ));
    }
    Ok(UsageAsk {
        key,
        organization_id,
        meter: meter.to_string(),
        units,
        id: id.to_string(),
    })
}

/// The refusal of a report (`ask`) whose event name is not among the seller's `events`
/// (`None`: any name): 422 `InvalidUsageRequest`, before the key's verdict is asked or
/// anything kept (issue #76).
pub(crate) fn refuses_event(ask: &UsageAsk, events: Option<&[String]>) -> Option<RelayResponse> {
    let events = events?;
    if events.contains(&ask.meter) {
        return None;
    }
    log::info!(
        "relay: usage {} 422 (an event name not in --usage-events)",
        crate::logged::key(&ask.key)
    );
    Some(RelayResponse::error(
        422,
        "InvalidUsageRequest",
        "meter is not an event this seller meters (the relay's --usage-events)",
    ))
}

/// The store's id of the buffer a report is kept in: what a store read per key loads with
/// the report's validate (the usage route's `wants`, `routes/usage.rs`).
pub(crate) fn buffer_of_ask(ask: &UsageAsk) -> EntryId {
    buffer_id(&ask.organization_id, &key_hash(&ask.key))
}

/// One report waiting to be ingested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    id: String,
    meter: String,
    units: f64,
    /// When the relay took it (unix seconds): the event's `timestamp`.
    at: i64,
}

/// A key's buffer, one value of the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Buffer {
    /// The key's customer, as its last verdict named it.
    customer_id: String,
    /// The namespace of its events' `external_id`s (a digest of the organization and the
    /// key: never the key).
    space: String,
    pending: Vec<Report>,
    /// The newest ingested ids, oldest first.
    done: VecDeque<String>,
}

/// The store's id of a key's buffer: a digest of its own domain.
fn buffer_id(organization_id: &crate::ids::OrgId, key_sha256: &str) -> EntryId {
    crate::store::key_digest("usage", organization_id.as_str(), key_sha256)
}

fn buffer_of(entry: Option<&Entry>) -> Option<Buffer> {
    entry.and_then(|e| serde_json::from_str(&e.body).ok())
}

fn entry_of(id: &EntryId, buffer: &Buffer, now: i64) -> Option<Entry> {
    Some(Entry {
        answered_at: now,
        // Never evicted by the store's byte cap (`store::evictable`, by its kind); the status
        // (no answer of Polar's has it) keeps an older relay from replaying it.
        status: USAGE_STATUS,
        kind: Some(crate::store::EntryKind::UsageBuffer),
        body: serde_json::to_string(buffer).ok()?,
        // Its own tag: found again at a restart (`Usage::restore`), narrowed by no webhook.
        key_tag: Some(format!("{TAG_PREFIX}{}", crate::ids::hex_id(id))),
        ..Entry::default()
    })
}

/// What a report counts on its meter: a meter that sums `units` counts them, a `count` meter
/// one per report, any other aggregation nothing the relay can tell.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(feature = "entitlements"), allow(dead_code))]
pub(crate) enum Counts {
    Units,
    One,
    Unknown,
}

impl Counts {
    fn of(self, units: f64) -> f64 {
        match self {
            Counts::Units => units,
            Counts::One => 1.0,
            Counts::Unknown => 0.0,
        }
    }
}

/// A meter's balance as the relay last read it ([`crate::entitled`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownBalance {
    pub(crate) balance: f64,
    /// The batches ingested when the read of the meters was asked ([`Usage::ingestions`]):
    /// those are in it, later ones not (a count, not a time: a batch and a read in the same
    /// millisecond, or under a host's coarse clock, are still told apart).
    pub(crate) read_after: u64,
    pub(crate) counts: Counts,
}

/// A batch handed to the host, until Polar answers.
struct Batch {
    buffer: EntryId,
    customer: String,
    ids: Vec<String>,
    units: Vec<(String, f64)>,
}

#[derive(Default)]
struct State {
    /// Buffers with reports waiting, in the order they are ingested.
    queue: VecDeque<EntryId>,
    queued: HashSet<EntryId>,
    /// Reports waiting, in all.
    pending_total: usize,
    /// Units and reports waiting by customer and meter (what the known balance does not hold
    /// yet).
    pending_units: HashMap<String, BTreeMap<String, (f64, u32)>>,
    /// Units ingested by customer, with the batch's number ([`Usage::ingestions`] after it),
    /// newest last.
    ingested: HashMap<String, Vec<(u64, String, f64)>>,
    batch: Option<Batch>,
    after_ms: u64,
    /// Batches failed in a row (none since Polar last took one).
    failures: crate::backoff::Backoff,
    /// Listings failed in a row.
    list_failures: crate::backoff::Backoff,
    /// The token cannot ingest (Polar's 401 or 403): no more batches.
    refused: bool,
    /// The listing of a last run's buffers (a store read per key).
    listing: Listing,
    /// No listing before this monotonic ms (a page could not be listed).
    list_after_ms: u64,
    /// Buffers queued by the listing whose reports are not counted yet (until first read).
    listed: HashSet<EntryId>,
    /// A buffer's next batch not before this monotonic ms ([`ROUND_MS`] after its last),
    /// whether or not it is queued now; forgotten once passed.
    next_at: HashMap<EntryId, u64>,
}

impl State {
    /// The first queued buffer whose round has come at `now_ms`, or the ms until one has
    /// (`Err(None)`: none is queued).
    fn due(&self, now_ms: u64) -> Result<EntryId, Option<u64>> {
        let mut wait: Option<u64> = None;
        for id in &self.queue {
            match self.next_at.get(id) {
                Some(&at) if at > now_ms => {
                    let ms = at - now_ms;
                    wait = Some(wait.map_or(ms, |w| w.min(ms)));
                }
                _ => return Ok(*id),
            }
        }
        Err(wait)
    }

    /// `id` out of the queue (its reports all ingested, or none left).
    fn unqueue(&mut self, id: &EntryId) {
        if self.queue.front() == Some(id) {
            self.queue.pop_front();
        } else {
            self.queue.retain(|b| b != id);
        }
        // Its round stays: reports that come after it was emptied wait for it too.
        self.queued.remove(id);
    }
}

/// Where the listing of a last run's buffers is (a store read per key).
#[derive(Default)]
enum Listing {
    /// Not listed (a store that reads its own buffers at start).
    #[default]
    Off,
    /// The page after this row is next (`None`: the first).
    Due(Option<String>),
    Done,
}

/// Rows per page of the listing.
const LIST_PAGE: usize = 128;

/// The usage buffers' state (see the module docs). On only with
/// [`crate::store::StoreOptions::usage`].
pub(crate) struct Usage {
    on: bool,
    refuse_at_zero: bool,
    restored: AtomicBool,
    /// Batches Polar has ingested so far (this run).
    ingestions: AtomicU64,
    state: Mutex<State>,
}

/// What a report's answer says.
struct Recorded {
    duplicate: bool,
}

/// What the relay's answer to a report states, for its signed acknowledgement
/// ([`sign_ack`]): kept (`recorded`) or refused at zero credits, a duplicate, and the balance
/// it knew after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ack {
    pub(crate) recorded: bool,
    pub(crate) duplicate: bool,
    pub(crate) balance: Option<f64>,
}

impl Usage {
    pub(crate) fn new(on: bool, refuse_at_zero: bool) -> Usage {
        Usage {
            on,
            refuse_at_zero,
            restored: AtomicBool::new(false),
            ingestions: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// The batches Polar has ingested so far: a read of the meters asked now counts them
    /// ([`KnownBalance::read_after`]). Read only where entitlements are read.
    #[cfg(feature = "entitlements")]
    pub(crate) fn ingestions(&self) -> u64 {
        self.ingestions.load(Ordering::SeqCst)
    }

    pub(crate) fn on(&self) -> bool {
        // A constant `false` without the feature: every path behind it leaves the build.
        cfg!(feature = "usage") && self.on
    }

    /// Reads the buffers a last run left waiting (once, at the first use).
    fn restore(&self, store: &dyn Backend) {
        if !self.on || self.restored.swap(true, Ordering::SeqCst) {
            return;
        }
        if store.host_loads() {
            // Its buffers are listed from the host's storage by the background machine.
            locked(&self.state).listing = Listing::Due(None);
            return;
        }
        let tags = match store.tags_with_prefix(TAG_PREFIX) {
            Ok(tags) => tags,
            Err(e) => {
                log::error!("relay: {e}: the usage a last run buffered is not read back");
                return;
            }
        };
        let mut state = locked(&self.state);
        let mut found = 0usize;
        for tag in tags {
            let Some(id) = tag.strip_prefix(TAG_PREFIX).and_then(crate::ids::id_of_hex) else {
                continue;
            };
            let Ok(Some(buffer)) = store.get(&id).map(|e| buffer_of(e.as_ref())) else {
                continue;
            };
            if buffer.pending.is_empty() {
                continue;
            }
            found += buffer.pending.len();
            Self::count(&mut state, &buffer);
            if state.queued.insert(id) {
                state.queue.push_back(id);
            }
        }
        if found > 0 {
            log::info!("relay: {found} usage reports a last run buffered are ingested again");
        }
    }

    /// A buffer's waiting reports counted in the totals (read back from the store).
    fn count(state: &mut State, buffer: &Buffer) {
        state.pending_total += buffer.pending.len();
        let units = state
            .pending_units
            .entry(buffer.customer_id.clone())
            .or_default();
        for r in &buffer.pending {
            let w = units.entry(r.meter.clone()).or_default();
            w.0 += r.units;
            w.1 += 1;
        }
    }

    /// A buffer found by the listing counted, the first time the store is read for it.
    fn count_listed(state: &mut State, id: &EntryId, buffer: Option<&Buffer>) {
        if let Some(b) = buffer.filter(|_| state.listed.remove(id)) {
            Self::count(state, b);
        }
    }

    /// With a store read per key (a Durable Object's): the next page of the buffers a last
    /// run left (their index rows, `u:<buffer>|<entry>`), listed by the background machine
    /// (`None`: listed, or not yet due).
    pub(crate) fn list_page(&self, store: &dyn Backend, now: Now) -> Option<ListPage> {
        self.restore(store);
        let state = locked(&self.state);
        match &state.listing {
            Listing::Due(after) if now.monotonic_ms >= state.list_after_ms => Some(ListPage {
                prefix: TAG_PREFIX,
                after: after.clone(),
                limit: LIST_PAGE,
            }),
            _ => None,
        }
    }

    /// A page [`Usage::list_page`] named, listed (`Err`: it could not be: again after a
    /// backoff): each buffer queued, counted when first read (a page shorter than asked, or
    /// one that does not move on, ends the listing).
    pub(crate) fn listed(&self, rows: Result<&[String], ()>, now: Now) {
        let mut state = locked(&self.state);
        let Listing::Due(after) = &state.listing else {
            return;
        };
        let Ok(rows) = rows else {
            let wait = state.list_failures.failed(BACKOFF_MS);
            state.list_after_ms = now.monotonic_ms.saturating_add(wait);
            return;
        };
        let last = rows.last().cloned();
        let done = rows.len() < LIST_PAGE || last.is_none() || last == *after;
        state.list_failures.succeeded();
        for row in rows {
            let id = row
                .strip_prefix(TAG_PREFIX)
                .and_then(|r| r.split_once('|'))
                .and_then(|(_, entry)| crate::ids::id_of_hex(entry));
            if let Some(id) = id {
                if state.queued.insert(id) {
                    state.listed.insert(id);
                    state.queue.push_back(id);
                }
            }
        }
        state.listing = if done {
            Listing::Done
        } else {
            Listing::Due(last)
        };
    }

    /// The balance of `meter` the relay knows for `customer` after what it holds waiting
    /// (`known`: Polar's last read), `None` when it has not read it.
    fn balance_after(state: &State, customer: &str, meter: &str, known: KnownBalance) -> f64 {
        let (units, reports) = state
            .pending_units
            .get(customer)
            .and_then(|m| m.get(meter))
            .copied()
            .unwrap_or((0.0, 0));
        // Waiting reports, counted as the meter counts them.
        let waiting = match known.counts {
            Counts::Units => units,
            Counts::One => f64::from(reports),
            Counts::Unknown => 0.0,
        };
        let since: f64 = state
            .ingested
            .get(customer)
            .map(|list| {
                list.iter()
                    .filter(|(n, m, _)| *n > known.read_after && m == meter)
                    .map(|(_, _, u)| known.counts.of(*u))
                    .sum()
            })
            .unwrap_or(0.0);
        known.balance - since - waiting
    }

    /// A report of a key Polar granted (`customer`: the verdict's `customer_id`), kept in its
    /// key's buffer in one step of the store: the answer (200 recorded or duplicate, 402
    /// `credits_exhausted`, 429 `UsageBacklog`, 503 when the store failed), with what it
    /// states for a signed acknowledgement (the 200s and the 402).
    pub(crate) fn record(
        &self,
        store: &dyn Backend,
        ask: &UsageAsk,
        customer: &str,
        known: Option<KnownBalance>,
        now: Now,
    ) -> (RelayResponse, Option<Ack>) {
        self.restore(store);
        let key = key_hash(&ask.key);
        let id = buffer_id(&ask.organization_id, &key);
        let mut state = locked(&self.state);
        let before = known.map(|k| Self::balance_after(&state, customer, &ask.meter, k));
        let mut outcome: Option<Result<Recorded, RelayResponse>> = None;
        let total_full = state.pending_total >= MAX_PENDING_TOTAL;
        let refuse_at_zero = self.refuse_at_zero;
        let written = store.update(&id, &mut |current| {
            let mut buffer = buffer_of(current).unwrap_or_default();
            Self::count_listed(&mut state, &id, current.and(Some(&buffer)));
            let seen = buffer.pending.iter().any(|r| r.id == ask.id)
                || buffer.done.iter().any(|d| *d == ask.id);
            if seen {
                outcome = Some(Ok(Recorded { duplicate: true }));
                return None;
            }
            if refuse_at_zero && before.is_some_and(|b| b <= 0.0) {
                outcome = Some(Err(exhausted(&ask.meter, before.unwrap_or(0.0))));
                return None;
            }
            if buffer.pending.len() >= MAX_PENDING_PER_KEY || total_full {
                outcome = Some(Err(backlog()));
                return None;
            }
            buffer.customer_id = customer.to_string();
            buffer.space = space(&ask.organization_id, &key);
            buffer.pending.push(Report {
                id: ask.id.clone(),
                meter: ask.meter.clone(),
                units: ask.units,
                at: now.unix_seconds,
            });
            outcome = Some(Ok(Recorded { duplicate: false }));
            entry_of(&id, &buffer, now.unix_seconds)
        });
        // A new report the store did not write (its held state's share is spent: a new or
        // grown buffer is refused, issue #76) is not kept: the client sends it again.
        let unkept = matches!(written, Ok(None))
            && matches!(outcome, Some(Ok(Recorded { duplicate: false })));
        if unkept {
            log::warn!("relay: a usage report was not kept (503: the store's share is spent)");
            return (
                RelayResponse::error(
                    503,
                    "UsageNotKept",
                    "the relay could not keep the report: send it again with the same id",
                ),
                None,
            );
        }
        if let Err(e) = written {
            log::error!("relay: {e}: a usage report was not kept (503)");
            let r = RelayResponse::error(
                503,
                "UsageNotKept",
                "the relay could not keep the report: send it again with the same id",
            );
            return (r, None);
        }
        let recorded = match outcome {
            Some(Ok(r)) => r,
            Some(Err(r)) => {
                log::info!(
                    "relay: usage {} {} ({})",
                    crate::logged::key(&ask.key),
                    r.status,
                    if r.status == 402 {
                        "credits exhausted"
                    } else {
                        "backlog"
                    }
                );
                let ack = (r.status == 402).then_some(Ack {
                    recorded: false,
                    duplicate: false,
                    balance: before,
                });
                return (r, ack);
            }
            None => {
                let r = RelayResponse::error(503, "UsageNotKept", "the store did not answer");
                return (r, None);
            }
        };
        if !recorded.duplicate {
            state.pending_total += 1;
            let w = state
                .pending_units
                .entry(customer.to_string())
                .or_default()
                .entry(ask.meter.clone())
                .or_default();
            w.0 += ask.units;
            w.1 += 1;
            if state.queued.insert(id) {
                state.queue.push_back(id);
            }
        }
        let balance = known.map(|k| Self::balance_after(&state, customer, &ask.meter, k));
        drop(state);
        log::info!(
            "relay: usage {} 200 ({})",
            crate::logged::key(&ask.key),
            if recorded.duplicate {
                "a duplicate"
            } else {
                "recorded"
            }
        );
        let body = serde_json::json!({
            "id": ask.id,
            "meter": ask.meter,
            "units": ask.units,
            "recorded": true,
            "duplicate": recorded.duplicate,
            "balance": balance,
        });
        let ack = Ack {
            recorded: true,
            duplicate: recorded.duplicate,
            balance,
        };
        (
            crate::types::private(RelayResponse::json(200, body.to_string())),
            Some(ack),
        )
    }

    /// The buffer the next batch at `now` reads (`None`: no batch is due): a store read per
    /// key loads it first ([`crate::flow::background`]).
    pub(crate) fn next_buffer(&self, now: Now) -> Option<EntryId> {
        let state = locked(&self.state);
        let due = self.on() && !state.refused && state.batch.is_none();
        (due && now.monotonic_ms >= state.after_ms)
            .then(|| state.due(now.monotonic_ms).ok())
            .flatten()
    }

    /// Whether nothing waits: no report queued, no batch out, no listing due (a host whose
    /// requests wake the background machine need not poll meanwhile).
    pub(crate) fn idle(&self) -> bool {
        let state = locked(&self.state);
        state.queue.is_empty() && state.batch.is_none() && !matches!(state.listing, Listing::Due(_))
    }

    /// A load of the next batch's buffer failed: tried again after a backoff.
    pub(crate) fn load_failed(&self, now: Now) {
        let mut state = locked(&self.state);
        let wait = state.failures.failed(BACKOFF_MS);
        state.after_ms = now.monotonic_ms.saturating_add(wait);
    }

    /// The next batch's call (`POST {base_url}/v1/events/ingest` and its body) at `now`, its
    /// call taken from the budget with `take` once `breaker_open` says Polar may be asked;
    /// `Err(Some(ms))` to wait, `Err(None)` when off.
    pub(crate) fn next_batch(
        &self,
        store: &dyn Backend,
        base_url: &str,
        breaker_open: impl FnOnce() -> bool,
        take: impl FnOnce() -> Result<(), u64>,
        now: Now,
    ) -> Result<(String, Vec<u8>), Option<u64>> {
        if !self.on {
            return Err(None);
        }
        self.restore(store);
        let mut state = locked(&self.state);
        if state.refused {
            return Err(None);
        }
        if state.batch.is_some() {
            return Err(Some(IDLE_MS));
        }
        if now.monotonic_ms < state.after_ms {
            return Err(Some(state.after_ms - now.monotonic_ms));
        }
        let id = match state.due(now.monotonic_ms) {
            Ok(id) => id,
            Err(wait) => return Err(Some(wait.unwrap_or(IDLE_MS))),
        };
        let buffer = match store.get(&id) {
            Ok(e) => buffer_of(e.as_ref()),
            Err(e) => {
                log::error!("relay: {e}: a usage buffer could not be read: again later");
                let wait = state.failures.failed(BACKOFF_MS);
                state.after_ms = now.monotonic_ms.saturating_add(wait);
                return Err(Some(wait));
            }
        };
        Self::count_listed(&mut state, &id, buffer.as_ref());
        let Some(buffer) = buffer.filter(|b| !b.pending.is_empty()) else {
            state.unqueue(&id);
            return Err(Some(0));
        };
        if breaker_open() {
            return Err(Some(1_000));
        }
        if let Err(secs) = take() {
            state.after_ms = now.monotonic_ms.saturating_add(secs.saturating_mul(1000));
            return Err(Some(secs.saturating_mul(1000)));
        }
        let events: Vec<serde_json::Value> = buffer
            .pending
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.meter,
                    "customer_id": buffer.customer_id,
                    "external_id": format!("{}:{}", buffer.space, r.id),
                    "timestamp": crate::clock::rfc3339(r.at),
                    "metadata": {"units": r.units},
                })
            })
            .collect();
        let body = serde_json::json!({ "events": events })
            .to_string()
            .into_bytes();
        state.batch = Some(Batch {
            buffer: id,
            customer: buffer.customer_id.clone(),
            ids: buffer.pending.iter().map(|r| r.id.clone()).collect(),
            units: buffer
                .pending
                .iter()
                .map(|r| (r.meter.clone(), r.units))
                .collect(),
        });
        Ok((format!("{base_url}/v1/events/ingest"), body))
    }

    /// Polar's answer to the batch [`Usage::next_batch`] gave. `Some(customer)`: the batch was
    /// ingested, so that customer's balances changed (read them again).
    pub(crate) fn answered(
        &self,
        store: &dyn Backend,
        answer: crate::roster::ReadAnswer,
        now: Now,
    ) -> Option<String> {
        let mut state = locked(&self.state);
        let batch = state.batch.take()?;
        let ingested_now = match answer {
            Ok((200, _, body)) => {
                let counted = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        Some((v.get("inserted")?.as_u64()?, v.get("duplicates")?.as_u64()?))
                    });
                match counted {
                    Some((inserted, duplicates)) => log::info!(
                        "relay: usage ingested: {inserted} events inserted, {duplicates} \
                         already counted"
                    ),
                    None => log::warn!("relay: usage ingested (Polar's answer did not read)"),
                }
                true
            }
            Ok((401 | 403, _, _)) => {
                log::error!(
                    "relay: Polar refused the token's ingestion of usage events (it needs \
                     events:write): the reports stay in the store, not ingested"
                );
                state.refused = true;
                return None;
            }
            Ok((422, _, body)) => {
                log::error!(
                    "relay: Polar refused a batch of {} usage reports (422: {}): they are \
                     dropped",
                    batch.ids.len(),
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                );
                false
            }
            Ok((status, retry_after, _)) => {
                log::warn!("relay: a usage batch answered {status}: kept, again later");
                let backoff = state.failures.failed(BACKOFF_MS);
                let wait = retry_after.map_or(backoff, |s| s.saturating_mul(1000));
                state.after_ms = now.monotonic_ms.saturating_add(wait);
                return None;
            }
            Err(e) => {
                log::warn!("relay: a usage batch failed ({e}): kept, again later");
                let wait = state.failures.failed(BACKOFF_MS);
                state.after_ms = now.monotonic_ms.saturating_add(wait);
                return None;
            }
        };
        let ids = batch.ids.clone();
        let written = store.update(&batch.buffer, &mut |current| {
            let mut buffer = buffer_of(current)?;
            buffer.pending.retain(|r| !ids.contains(&r.id));
            if ingested_now {
                for id in &ids {
                    buffer.done.push_back(id.clone());
                }
                while buffer.done.len() > DONE_KEPT {
                    buffer.done.pop_front();
                }
            }
            entry_of(&batch.buffer, &buffer, now.unix_seconds)
        });
        let left = match written {
            Ok(Some(e)) => buffer_of(Some(&e)).map_or(0, |b| b.pending.len()),
            Ok(None) => 0,
            Err(e) => {
                // Polar has them; sent again, their external ids count once.
                log::error!("relay: {e}: an ingested usage batch stays in the store");
                let wait = state.failures.failed(BACKOFF_MS);
                state.after_ms = now.monotonic_ms.saturating_add(wait);
                return ingested_now.then_some(batch.customer);
            }
        };
        state.failures.succeeded();
        state.pending_total = state.pending_total.saturating_sub(batch.ids.len());
        if let Some(units) = state.pending_units.get_mut(&batch.customer) {
            for (meter, u) in &batch.units {
                if let Some(w) = units.get_mut(meter) {
                    w.0 -= u;
                    w.1 = w.1.saturating_sub(1);
                    if w.1 == 0 {
                        units.remove(meter);
                    }
                }
            }
            if units.is_empty() {
                state.pending_units.remove(&batch.customer);
            }
        }
        if ingested_now {
            let n = self.ingestions.fetch_add(1, Ordering::SeqCst) + 1;
            let list = state.ingested.entry(batch.customer.clone()).or_default();
            for (meter, u) in &batch.units {
                list.push((n, meter.clone(), *u));
            }
            // Bounded: what a read older than the oldest kept would need is gone with it.
            let over = list.len().saturating_sub(DONE_KEPT);
            list.drain(..over);
        }
        if left == 0 {
            state.unqueue(&batch.buffer);
        } else {
            // Its turn passes to the next key's, and its next batch waits for its round.
            state.queue.retain(|b| *b != batch.buffer);
            state.queue.push_back(batch.buffer);
        }
        // Rounds passed are forgotten (bounded by the keys ingested in one round).
        state.next_at.retain(|_, at| *at > now.monotonic_ms);
        let at = now.monotonic_ms.saturating_add(ROUND_MS);
        state.next_at.insert(batch.buffer, at);
        ingested_now.then_some(batch.customer)
    }
}

/// `r` (the answer to `ask`, stating `ack`) with its signed acknowledgement (issue #76,
/// [`polar_license::lease::USAGE_HEADER`]) when the client sent a nonce (`nonce`: a client
/// that holds relay keys sends one with every send, and believes the answer only with a token
/// naming it): signed here with the relay's key file, or, for a relay whose key is held
/// elsewhere (the npm relay's WebCrypto key on Workers), left to be signed there as its leases
/// are ([`Finished::pre_auth`], then the relay's `assemble`). The same claims and bytes either
/// way. A key that cannot sign leaves it out, with an error log: the client in signed mode
/// then reads the answer as a `protocol_error`, never as recorded.
pub(crate) fn sign_ack(
    mut response: RelayResponse,
    ask: &UsageAsk,
    ack: Ack,
    signer: &crate::types::SignWith,
    nonce: Option<&str>,
    now: Now,
) -> Finished {
    let Some(nonce) = nonce else {
        return Finished {
            response,
            unsigned: None,
        };
    };
    let key_sha256 = key_hash(&ask.key);
    // The token's id: a digest of the nonce (fresh and random: the client's) and the report.
    let jti = crate::store::key_digest("usage-ack", nonce, &ask.id);
    let claims = polar_license::lease::UsageClaims {
        organization_id: ask.organization_id.as_str().to_string(),
        key_sha256,
        report_id: ask.id.clone(),
        meter: ask.meter.clone(),
        units: ask.units,
        recorded: ack.recorded,
        duplicate: ack.duplicate,
        balance: ack.balance,
        issued_at: now.unix_seconds,
        id: crate::ids::hex_id(&jti)[..32].to_string(),
        nonce: nonce.to_string(),
    };
    let signed = match signer {
        crate::types::SignWith::Key(key) => key.sign_usage(&claims).map(|token| {
            response.set(polar_license::lease::USAGE_HEADER, &token);
            None
        }),
        // No machine: a usage acknowledgement's implicit assertion is empty.
        crate::types::SignWith::External { kid, .. } => {
            polar_license::lease::prepare_usage(&claims, kid).map(|u| Some((u, None)))
        }
    };
    match signed {
        Ok(unsigned) => Finished { response, unsigned },
        Err(e) => {
            log::error!(
                "relay: usage {} {} without a signed acknowledgement: {}",
                crate::logged::key(&ask.key),
                response.status,
                e.text()
            );
            Finished {
                response,
                unsigned: None,
            }
        }
    }
}

/// The namespace of a key's events' `external_id`s: 16 hex digits of a digest of the
/// organization and the key's SHA-256 (never the key).
fn space(organization_id: &crate::ids::OrgId, key_sha256: &str) -> String {
    let d = crate::store::key_digest("usage-events", organization_id.as_str(), key_sha256);
    crate::ids::hex_id(&d)[..16].to_string()
}

/// The seller's rule's refusal: 402, the reason `credits_exhausted`, the balance known.
fn exhausted(meter: &str, balance: f64) -> RelayResponse {
    let body = serde_json::json!({
        "error": "CreditsExhausted",
        "detail": "the credits of this meter are used up: the report was not recorded",
        "reason": "credits_exhausted",
        "meter": meter,
        "balance": balance,
    });
    crate::types::private(RelayResponse::json(402, body.to_string()))
}

/// Too many reports waiting (the key's, or the relay's in all): 429, try again later.
fn backlog() -> RelayResponse {
    let mut r = RelayResponse::error(
        429,
        "UsageBacklog",
        "too many usage reports wait to be ingested: send this one again later with the same id",
    );
    r.set("retry-after", "60");
    crate::types::private(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn the_body_is_read_strictly() {
        let ok =
            br#"{"key":"K-1","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"api_call","units":2.5,"id":"a-1"}"#;
        let ask = read_ask(ok).expect("read");
        assert_eq!(ask.units, 2.5);
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":1}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":0,"id":"x"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":-1,"id":"x"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":"1","id":"x"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":1e12,"id":"x"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"","units":1,"id":"x"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":1,"id":"a b"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":1,"id":"x","more":1}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"m","units":1,"id":"x","activation_id":"no"}"#,
        ] {
            let r = read_ask(bad).expect_err("refused");
            assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Polar failing (unreachable, 5xx), a batch is tried again after a wait that doubles for
    /// each failure in a row, 1 s to at most 5 min (the values reads' rule, crate::backoff: on
    /// Workers each wait is a Durable Object's alarm), not every second; Polar's Retry-After
    /// wins; once a batch goes through, the next failure waits 1 s again.
    #[test]
    fn failing_batches_back_off_doubling_and_start_over_after_one_goes_through() {
        let store = crate::store::MemoryBackend::new(100);
        let usage = Usage::new(true, false);
        let at = |ms: u64| Now {
            unix_seconds: 1_800_000_000 + (ms / 1_000) as i64,
            monotonic_ms: ms,
        };
        let report = |id: &str| {
            let body = format!(
                r#"{{"key":"K-1","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","meter":"api_call","units":1,"id":"{id}"}}"#
            );
            read_ask(body.as_bytes()).expect("read")
        };
        let customer = "7d3c1e2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f";
        let (r, _) = usage.record(&store, &report("a-1"), customer, None, at(0));
        assert_eq!(r.status, 200);
        let batch = |t: u64| usage.next_batch(&store, "http://polar", || false, || Ok(()), at(t));
        let (mut t, mut waits) = (0_u64, Vec::new());
        let fails: [crate::roster::ReadAnswer; 3] = [
            Err("connection refused".into()),
            Ok((503, None, Vec::new())),
            Ok((500, None, Vec::new())),
        ];
        while t < 3_600_000 {
            match batch(t) {
                Ok(_) => {
                    let failed = fails[waits.len() % 3].clone();
                    assert!(usage.answered(&store, failed, at(t)).is_none());
                }
                Err(Some(ms)) => {
                    assert!(ms > 0, "a wait at {t} ms");
                    waits.push(ms);
                    t += ms;
                }
                Err(None) => panic!("off at {t} ms"),
            }
        }
        assert_eq!(
            &waits[..10],
            &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]
        );
        assert!(waits.iter().all(|&w| w <= 300_000), "{waits:?}");
        assert!(
            (15..=25).contains(&waits.len()),
            "{} tries in an hour",
            waits.len()
        );
        // Polar's Retry-After is its wait.
        batch(t).expect("a batch");
        assert!(usage
            .answered(&store, Ok((429, Some(7), Vec::new())), at(t))
            .is_none());
        assert_eq!(batch(t), Err(Some(7_000)));
        t += 7_000;
        // Polar back: the batch goes through; a later one that fails waits 1 s again.
        batch(t).expect("a batch");
        let ok = br#"{"inserted":1,"duplicates":0}"#.to_vec();
        assert_eq!(
            usage
                .answered(&store, Ok((200, None, ok)), at(t))
                .as_deref(),
            Some(customer)
        );
        let (r, _) = usage.record(&store, &report("a-2"), customer, None, at(t));
        assert_eq!(r.status, 200);
        // The key's next batch waits for its round (issue #76).
        assert_eq!(batch(t), Err(Some(ROUND_MS)));
        t += ROUND_MS;
        batch(t).expect("a batch");
        assert!(usage.answered(&store, Err("reset".into()), at(t)).is_none());
        assert_eq!(batch(t), Err(Some(1_000)));
    }
}
