//! The relay's cache of what Polar knows of its customers (issue #68 item 2,
//! docs/entitlements.md): per customer, the Feature Flag grants and meter balances read from
//! Polar with the organization token, signed into the leases of its keys' grants.
//!
//! * **Read** by the background machine ([`crate::flow::background`]) as Polar's
//!   `GET /v1/benefit-grants/?customer_id=…&is_granted=true` and
//!   `GET /v1/customer-meters/?customer_id=…` pages, each call taken from the token's budget's
//!   shared part, one customer at a time, only for customers whose keys a client in signed mode
//!   checks: a grant's lease asks for its customer ([`Entitled::sign_in`]) when the cache has no
//!   values for it, a webhook made them stale, or they are older than the store's `fresh_for`.
//! * **Read first**, for a grant's lease of a customer the cache holds nothing of, when the
//!   client asks for the values ([`Entitled::first_read`], issue #80): the exchange reads the
//!   same pages between Polar's answer and the lease, so a new customer's first activation
//!   carries its values; a read that cannot be made is left to the background.
//! * **Signed** ([`Entitled::sign_in`]) into a grant's lease when the client asks
//!   ([`polar_license::lease::ENTITLEMENTS_MARK`]) and the cache holds the customer's values,
//!   unmarked and younger than the store's `stale_for`; otherwise the lease goes without the
//!   claim (the client reads "not known", never "not granted").
//! * **Kept fresh** by the webhooks ([`Entitled::on_event`]): `benefit.updated` marks every
//!   customer holding that benefit stale, `benefit_grant.*` and `customer.state_changed` their
//!   customer. A webhook only marks: values come from Polar's reads alone, never from a
//!   webhook's body, so a webhook cannot grant.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use polar_license::lease::{asks_entitlements, EntitlementClaims, EntitlementValue, LeaseClaims};
use serde_json::Value as Json;

use crate::clock::Now;
use crate::entitlements::{key_entitlements, meter_balances, page_items, Entitlement};
use crate::locked::locked;
use crate::roster::ReadAnswer;
use crate::store::StoreOptions;
use crate::types::Holder;

/// Customers whose values are kept at most (past it the oldest read goes).
pub(crate) const CUSTOMERS_KEPT: usize = 10_000;

/// Customers waiting for a read at most (past it a new one waits for its next check).
const WANTED_KEPT: usize = 1_024;

/// Items asked per page.
pub(crate) const PAGE_LIMIT: u32 = 100;

/// Pages read per list at most: a customer with more grants or meters than
/// `PAGE_LIMIT × MAX_PAGES` gets no values signed (a partial list could leave a granted value
/// out, which a client would read as "not granted").
pub(crate) const MAX_PAGES: u32 = 10;

/// Calls a first read makes on a request's path at most ([`Entitled::first_read`]): the first
/// page of the grants and the first of the meters. A customer with more pages is left to the
/// background, so one request costs its own call and these two, never a customer's every page.
const FIRST_READ_CALLS: u32 = 2;

/// How long the reads wait after one failed (Polar's 5xx, the network), doubled for each
/// failure in a row up to 5 minutes ([`crate::backoff`], usage ingestion's rule too): on
/// Workers each read past a wait is an alarm of the Durable Object (an invocation), so a Polar
/// failing for an hour costs 17 reads, not 720.
const BACKOFF_MS: u64 = 5_000;

/// The claim's JSON at most: with it a lease stays within
/// [`polar_license::lease::MAX_LEASE_BYTES`] (a lease without it is about 1,100 bytes as a
/// token, and the token is base64url of the claims). Values past it are not signed (a
/// warning says so): the lease goes without the claim.
pub const MAX_ENTITLEMENT_BYTES: usize = 2_048;

/// A customer's values as last read.
struct Known {
    /// The grants, compacted to what the join reads.
    grants: Vec<Json>,
    balances: BTreeMap<String, f64>,
    /// The balances by the event name each meter counts, with what a usage report counts on
    /// it (the relay's usage route, `crate::usage`).
    events: BTreeMap<String, (f64, crate::usage::Counts)>,
    /// The usage batches the relay had ingested when the meters' first page was asked
    /// ([`crate::usage::Usage::ingestions`]): Polar's balances count them, not those after.
    meters_after: u64,
    /// When they were read (monotonic ms).
    read_ms: u64,
    /// A webhook said they changed since.
    stale: bool,
    /// A usage batch of the customer's was ingested since (issue #76): a lease goes without
    /// its balances until they are read again (by a read of the budget's usage part), while
    /// the usage route counts on from them (`crate::usage`: the units ingested since are
    /// subtracted), so a flood of reports asks no read of the shared part.
    ingested: bool,
}

/// Which list a read is on, and its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Grants(u32),
    Meters(u32),
}

/// The customer being read.
struct Reading {
    customer: String,
    phase: Phase,
    grants: Vec<Json>,
    meters: Vec<Json>,
    /// The usage batches ingested when the meters' first page was asked.
    meters_after: Option<u64>,
    /// A webhook marked the customer while it was read: kept stale, read again.
    dirty: bool,
    /// Only an ingested usage batch asked for it: its calls from the budget's usage part.
    for_usage: bool,
    /// A usage batch of the customer's was ingested while it was read.
    ingested: bool,
}

impl Reading {
    /// A read of `customer` from its grants' first page.
    fn of(customer: String) -> Reading {
        Reading {
            customer,
            phase: Phase::Grants(1),
            grants: Vec::new(),
            meters: Vec::new(),
            meters_after: None,
            dirty: false,
            for_usage: false,
            ingested: false,
        }
    }
}

#[derive(Default)]
struct State {
    known: HashMap<String, Known>,
    wanted: VecDeque<String>,
    /// Those of `wanted` only an ingested usage batch asked for (issue #76).
    wanted_for_usage: std::collections::HashSet<String>,
    /// No read for usage before this (monotonic ms): the usage part had no room.
    usage_after_ms: u64,
    reading: Option<Reading>,
    /// No read before this (monotonic ms).
    after_ms: u64,
    /// The token cannot read them (Polar's 401 or 403): no more reads.
    refused: bool,
    /// Reads failed in a row (none since the last read done whole: a page answered is not
    /// one, its read may fail at a later page).
    failures: crate::backoff::Backoff,
}

/// The cache (see the module docs). On only with [`StoreOptions::entitlements`].
pub(crate) struct Entitled {
    on: bool,
    state: Mutex<State>,
}

/// How long the background machine waits with nothing to read (a grant's lease may want a
/// customer sooner: the native host polls again within 200 ms).
const IDLE_MS: u64 = 200;

impl Entitled {
    pub(crate) fn new(on: bool) -> Entitled {
        Entitled {
            on,
            state: Mutex::new(State::default()),
        }
    }

    /// Signs the key's values and its customer's balances into `claims` when the client asked
    /// (`nonce`) and the cache holds them fresh enough; asks for a read of the customer when it
    /// holds none, a webhook made them stale, or they are past `fresh_for`.
    pub(crate) fn sign_in(
        &self,
        claims: &mut LeaseClaims,
        holder: &Holder,
        nonce: Option<&str>,
        now: Now,
        options: &StoreOptions,
    ) {
        if !self.on || !nonce.is_some_and(asks_entitlements) {
            return;
        }
        let customer = holder.customer_id.as_str();
        let mut state = locked(&self.state);
        if state.refused {
            return;
        }
        let (signed, want) = match state.known.get(customer) {
            None => (None, true),
            Some(k) => {
                let age_ms = now.monotonic_ms.saturating_sub(k.read_ms);
                let usable =
                    !k.stale && !k.ingested && age_ms < options.stale_for.saturating_mul(1000);
                let fresh = usable && age_ms < options.fresh_for.saturating_mul(1000);
                let signed = usable.then(|| joined(k, &holder.license_key_id));
                (signed, !fresh)
            }
        };
        if want {
            want_read(&mut state, customer);
        }
        drop(state);
        claims.entitlements = signed.filter(|e| {
            let bytes =
                serde_json::to_vec(&(&e.values, &e.balances)).map_or(usize::MAX, |b| b.len());
            if bytes > MAX_ENTITLEMENT_BYTES {
                log::warn!(
                    "relay: a key's entitlements take {bytes} bytes, past the lease's \
                     {MAX_ENTITLEMENT_BYTES}: its lease goes without them"
                );
                return false;
            }
            true
        });
    }

    /// A webhook's event: marks the customers whose values it may change stale (never a
    /// value of its own: the next read is Polar's).
    pub(crate) fn on_event(&self, event: &Json) {
        if !self.on {
            return;
        }
        let kind = event.get("type").and_then(Json::as_str).unwrap_or_default();
        let data = event.get("data");
        let text = |name: &str| data.and_then(|d| d.get(name)).and_then(Json::as_str);
        let mut state = locked(&self.state);
        match kind {
            "benefit.updated" => {
                let Some(benefit) = text("id") else { return };
                let holds = |grants: &[Json]| {
                    grants
                        .iter()
                        .any(|g| g.get("benefit_id").and_then(Json::as_str) == Some(benefit))
                };
                for k in state.known.values_mut() {
                    if holds(&k.grants) {
                        k.stale = true;
                    }
                }
                // A read under way may have read the benefit before its change.
                if let Some(r) = state.reading.as_mut() {
                    r.dirty = true;
                }
            }
            k if k.starts_with("benefit_grant.") => {
                if let Some(customer) = text("customer_id") {
                    mark(&mut state, customer);
                }
            }
            "customer.state_changed" => {
                if let Some(customer) = text("id") {
                    mark(&mut state, customer);
                }
            }
            _ => {}
        }
    }

    /// The next read's URL on Polar at `base_url` at `now`, its call taken from the budget
    /// with `take` (the seconds to wait when refused; its argument: whether only usage asked
    /// for the read, so its call is the budget's usage part's) once `breaker_open` says Polar
    /// may be asked; `Err(Some(ms))` to wait, `Err(None)` when off. The caller adds the read's
    /// headers (the seller's token).
    pub(crate) fn next_read(
        &self,
        base_url: &str,
        breaker_open: impl FnOnce() -> bool,
        take: impl FnOnce(bool) -> Result<(), u64>,
        ingestions: u64,
        now: Now,
    ) -> Result<String, Option<u64>> {
        if !self.on {
            return Err(None);
        }
        let mut state = locked(&self.state);
        if state.refused {
            return Err(None);
        }
        if now.monotonic_ms < state.after_ms {
            return Err(Some(state.after_ms - now.monotonic_ms));
        }
        if state.reading.is_none() {
            // A read only usage asked for waits while the usage part has no room; the others
            // go meanwhile.
            let usage_ok = now.monotonic_ms >= state.usage_after_ms;
            let at = state
                .wanted
                .iter()
                .position(|c| usage_ok || !state.wanted_for_usage.contains(c));
            let Some(customer) = at.and_then(|i| state.wanted.remove(i)) else {
                let wait = if state.wanted.is_empty() {
                    IDLE_MS
                } else {
                    state.usage_after_ms - now.monotonic_ms
                };
                return Err(Some(wait));
            };
            let mut reading = Reading::of(customer);
            reading.for_usage = state.wanted_for_usage.remove(&reading.customer);
            state.reading = Some(reading);
        }
        if breaker_open() {
            return Err(Some(1_000));
        }
        let for_usage = state.reading.as_ref().is_some_and(|r| r.for_usage);
        if let Err(secs) = take(for_usage) {
            let ms = secs.saturating_mul(1000);
            let unread = state
                .reading
                .as_ref()
                .is_some_and(|r| r.phase == Phase::Grants(1));
            if for_usage && unread {
                // Back to the front of the queue; the others' reads are not held by it.
                if let Some(r) = state.reading.take() {
                    state.wanted_for_usage.insert(r.customer.clone());
                    state.wanted.push_front(r.customer);
                }
                state.usage_after_ms = now.monotonic_ms.saturating_add(ms);
                let others = state
                    .wanted
                    .iter()
                    .any(|c| !state.wanted_for_usage.contains(c));
                return Err(Some(if others { 0 } else { ms }));
            }
            state.after_ms = now.monotonic_ms.saturating_add(ms);
            return Err(Some(ms));
        }
        let r = state.reading.as_mut().ok_or(Some(0))?;
        if matches!(r.phase, Phase::Meters(_)) && r.meters_after.is_none() {
            r.meters_after = Some(ingestions);
        }
        Ok(page_url(base_url, r))
    }

    /// Whether no customer's values are due: none wanted, none being read (a host whose
    /// requests wake the background machine need not poll meanwhile: a request or webhook
    /// that makes values due asks for them, [`Entitled::sign_in`], and wakes it).
    pub(crate) fn idle(&self) -> bool {
        let state = locked(&self.state);
        state.reading.is_none() && state.wanted.is_empty()
    }

    /// Polar's answer to the read [`Entitled::next_read`] gave.
    pub(crate) fn answered(&self, answer: ReadAnswer, now: Now) {
        let mut state = locked(&self.state);
        let Some(r) = state.reading.take() else {
            return;
        };
        state.reading = paged(&mut state, r, answer, now);
    }

    /// A grant's own read of its customer's values, before its lease is made (issue #80: a
    /// new customer's first activation read "not known" until the background had read them
    /// and the client checked again, up to an hour later). Only for a client that asks for
    /// the values (`nonce`) of a customer this relay holds none of, while Polar is asked at
    /// all (not refused, no backoff, `breaker_open` false) and the token's budget gives the
    /// call (`take`): the first page's URL on Polar at `base_url`, then
    /// [`Entitled::first_answered`] with each answer. The values come from Polar's reads
    /// alone, as the background's; a read that fails leaves the lease without them (the
    /// background reads them later, as before).
    pub(crate) fn first_read(
        &self,
        customer: &str,
        nonce: Option<&str>,
        base_url: &str,
        breaker_open: impl FnOnce() -> bool,
        take: impl FnOnce() -> Result<(), u64>,
        now: Now,
    ) -> Option<FirstPages> {
        if !self.on || !nonce.is_some_and(asks_entitlements) {
            return None;
        }
        polar_license::metadata::check_uuid_v4("customer_id", customer).ok()?;
        let state = locked(&self.state);
        let busy = state.refused
            || now.monotonic_ms < state.after_ms
            || state.known.contains_key(customer)
            || state
                .reading
                .as_ref()
                .is_some_and(|r| r.customer == customer);
        if busy || breaker_open() || take().is_err() {
            return None;
        }
        let reading = Reading::of(customer.to_string());
        let url = page_url(base_url, &reading);
        Some(FirstPages {
            reading,
            url,
            calls: 1,
        })
    }

    /// Polar's answer to a page of a first read: the read with its next page's URL, once the
    /// token's budget gives that call (`take`); `None` when it is done (the values kept, for
    /// the lease to sign), failed or the budget is spent (the background reads them later).
    /// `ingestions`: the usage batches the relay has ingested (the meters' first page notes
    /// them, as the background's reads do).
    pub(crate) fn first_answered(
        &self,
        read: FirstPages,
        answer: ReadAnswer,
        base_url: &str,
        take: impl FnOnce() -> Result<(), u64>,
        ingestions: u64,
        now: Now,
    ) -> Option<FirstPages> {
        let mut state = locked(&self.state);
        let customer = read.reading.customer.clone();
        let calls = read.calls;
        let Some(mut reading) = paged(&mut state, read.reading, answer, now) else {
            // Done: the background need not read it again now.
            if state.known.contains_key(&customer) {
                state.wanted.retain(|c| *c != customer);
            }
            return None;
        };
        // More pages than a request's share, or no budget for the next: the background's.
        if calls >= FIRST_READ_CALLS || take().is_err() {
            want_read(&mut state, &customer);
            return None;
        }
        if matches!(reading.phase, Phase::Meters(_)) && reading.meters_after.is_none() {
            reading.meters_after = Some(ingestions);
        }
        let url = page_url(base_url, &reading);
        Some(FirstPages {
            reading,
            url,
            calls: calls + 1,
        })
    }
}

/// A grant's first read of its customer's values under way ([`Entitled::first_read`]): the
/// page to ask for next.
pub(crate) struct FirstPages {
    reading: Reading,
    url: String,
    /// The calls this read made so far (at most [`FIRST_READ_CALLS`]).
    calls: u32,
}

impl FirstPages {
    /// The URL of the page to ask for next (a `GET` with the seller's token).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// The URL of the read `r`'s next page on Polar at `base_url`.
fn page_url(base_url: &str, r: &Reading) -> String {
    match r.phase {
        Phase::Grants(page) => format!(
            "{}/v1/benefit-grants/?customer_id={}&is_granted=true&limit={PAGE_LIMIT}&page={page}",
            base_url, r.customer
        ),
        Phase::Meters(page) => format!(
            "{}/v1/customer-meters/?customer_id={}&limit={PAGE_LIMIT}&page={page}",
            base_url, r.customer
        ),
    }
}

/// Polar's answer to a page of the read `r` taken into `state`: the read with its next page
/// (`Some`), or `None` once it is done (its values kept), failed (read again later, after the
/// backoff) or refused. The background's reads and a grant's first read
/// ([`Entitled::first_read`]) page alike.
fn paged(state: &mut State, mut r: Reading, answer: ReadAnswer, now: Now) -> Option<Reading> {
    let page = match answer {
        Ok((200, _, body)) => serde_json::from_slice::<Json>(&body).ok(),
        Ok((401 | 403, _, _)) => {
            log::warn!(
                "relay: Polar refused the token's read of benefit grants or customer \
                     meters (it needs benefits:read and customer_meters:read): leases go \
                     without entitlements"
            );
            state.refused = true;
            return None;
        }
        Ok((status, retry_after, _)) => {
            log::warn!("relay: an entitlements read answered {status}: again later");
            again(state, r, now, retry_after);
            return None;
        }
        Err(e) => {
            log::warn!("relay: an entitlements read failed ({e}): again later");
            again(state, r, now, None);
            return None;
        }
    };
    let Some((items, max_page)) = page.as_ref().and_then(|p| {
        let items = page_items(p).ok()?.to_vec();
        let max_page = p
            .get("pagination")
            .and_then(|g| g.get("max_page"))
            .and_then(Json::as_u64)
            .unwrap_or(1);
        Some((items, max_page))
    }) else {
        log::warn!("relay: an entitlements read's answer is not Polar's list: again later");
        again(state, r, now, None);
        return None;
    };
    // The failures in a row start over once a whole read is done, never at a page: a read
    // whose grants Polar answers and whose meters fail each time is a failure each time.
    if max_page > u64::from(MAX_PAGES) {
        state.failures.succeeded();
        log::warn!(
            "relay: a customer has more than {} grants or meters: its leases go without \
                 entitlements",
            PAGE_LIMIT * MAX_PAGES
        );
        state.known.remove(&r.customer);
        return None;
    }
    let next = |page: u32| u64::from(page) < max_page;
    r.phase = match r.phase {
        Phase::Grants(page) => {
            r.grants.extend(items.iter().map(compact));
            if next(page) {
                Phase::Grants(page + 1)
            } else {
                Phase::Meters(1)
            }
        }
        Phase::Meters(page) => {
            r.meters.extend(items);
            if next(page) {
                Phase::Meters(page + 1)
            } else {
                let balances = meter_balances(&r.meters, &r.customer);
                let events = event_balances(&r.meters, &r.customer);
                // Never asked (no page sent): every batch kept counts as after it.
                let meters_after = r.meters_after.unwrap_or(0);
                let (customer, dirty, ingested) = (r.customer, r.dirty, r.ingested);
                state.failures.succeeded();
                if state.known.len() >= CUSTOMERS_KEPT && !state.known.contains_key(&customer) {
                    let oldest = state
                        .known
                        .iter()
                        .min_by_key(|(_, k)| k.read_ms)
                        .map(|(c, _)| c.clone());
                    if let Some(oldest) = oldest {
                        state.known.remove(&oldest);
                    }
                }
                state.known.insert(
                    customer.clone(),
                    Known {
                        grants: r.grants,
                        balances,
                        events,
                        meters_after,
                        read_ms: now.monotonic_ms,
                        stale: dirty,
                        ingested,
                    },
                );
                if dirty {
                    want_read(state, &customer);
                } else if ingested {
                    want_read_for_usage(state, &customer);
                }
                return None;
            }
        }
    };
    Some(r)
}

impl Entitled {
    /// The balance of the meter counting `event` for `customer` as last read (within the
    /// store's `stale_for`), for the usage route; asks for a read when none is held or it is
    /// past `fresh_for` or marked.
    pub(crate) fn event_balance(
        &self,
        customer: &str,
        event: &str,
        now: Now,
        options: &StoreOptions,
    ) -> Option<crate::usage::KnownBalance> {
        if !self.on {
            return None;
        }
        let mut state = locked(&self.state);
        if state.refused {
            return None;
        }
        let (known, want) = match state.known.get(customer) {
            None => (None, true),
            Some(k) => {
                let age_ms = now.monotonic_ms.saturating_sub(k.read_ms);
                let usable = age_ms < options.stale_for.saturating_mul(1000);
                let fresh = !k.stale && age_ms < options.fresh_for.saturating_mul(1000);
                let known = usable
                    .then(|| {
                        k.events
                            .get(event)
                            .map(|(balance, counts)| crate::usage::KnownBalance {
                                balance: *balance,
                                read_after: k.meters_after,
                                counts: *counts,
                            })
                    })
                    .flatten();
                (known, !fresh)
            }
        };
        if want {
            want_read(&mut state, customer);
        }
        known
    }

    /// A batch of `customer`'s usage was ingested: its balances changed. Its leases go
    /// without them until they are read again, by a read of the budget's usage part (issue
    /// #76: never the shared part's, so a flood of reports cannot take the calls of other
    /// customers' checks); the usage route counts on from the last read meanwhile.
    pub(crate) fn ingested(&self, customer: &str) {
        if !self.on {
            return;
        }
        let mut state = locked(&self.state);
        if let Some(k) = state.known.get_mut(customer) {
            k.ingested = true;
        }
        if let Some(r) = state.reading.as_mut().filter(|r| r.customer == customer) {
            r.ingested = true;
            return;
        }
        want_read_for_usage(&mut state, customer);
    }
}

/// A customer's meter balances by the event name each meter counts (its filter's clause
/// `name` `eq` …, as Polar's org-side `meter` carries it), with what a usage report counts on
/// it: a `sum` of `units` its units, a `count` one.
fn event_balances(
    meters: &[Json],
    customer_id: &str,
) -> BTreeMap<String, (f64, crate::usage::Counts)> {
    use crate::usage::Counts;
    let mut out = BTreeMap::new();
    for m in meters {
        if m.get("customer_id").and_then(Json::as_str) != Some(customer_id) {
            continue;
        }
        let (Some(meter), Some(balance)) =
            (m.get("meter"), m.get("balance").and_then(Json::as_f64))
        else {
            continue;
        };
        let agg = meter.get("aggregation");
        let func = agg.and_then(|a| a.get("func")).and_then(Json::as_str);
        let property = agg
            .and_then(|a| a.get("property"))
            .and_then(Json::as_str)
            .map(|p| p.strip_prefix("metadata.").unwrap_or(p));
        let counts = match (func, property) {
            (Some("count"), _) => Counts::One,
            (Some("sum"), Some("units")) => Counts::Units,
            _ => Counts::Unknown,
        };
        let clauses = meter
            .get("filter")
            .and_then(|f| f.get("clauses"))
            .and_then(Json::as_array);
        for c in clauses.into_iter().flatten() {
            let is_name = c.get("property").and_then(Json::as_str) == Some("name")
                && c.get("operator").and_then(Json::as_str) == Some("eq");
            if let (true, Some(event)) = (is_name, c.get("value").and_then(Json::as_str)) {
                out.entry(event.to_string()).or_insert((balance, counts));
            }
        }
    }
    out
}

/// A read that failed: the customer is read again from the start after Polar's
/// `retry_after` (seconds), else after the backoff of the failures in a row.
fn again(state: &mut State, r: Reading, now: Now, retry_after: Option<u64>) {
    let backoff = state.failures.failed(BACKOFF_MS);
    let wait = retry_after.map_or(backoff, |s| s.saturating_mul(1000));
    state.after_ms = now.monotonic_ms.saturating_add(wait);
    if !state.wanted.contains(&r.customer) {
        if r.for_usage {
            state.wanted_for_usage.insert(r.customer.clone());
        }
        state.wanted.push_front(r.customer);
    }
}

/// Asks for a read of `customer` (once; a customer id that is not a UUID is never read).
fn want_read(state: &mut State, customer: &str) {
    if !readable(customer) {
        return;
    }
    // Wanted by a lease or a report now: its read is the shared part's.
    state.wanted_for_usage.remove(customer);
    if !wanted(state, customer) {
        state.wanted.push_back(customer.to_string());
    }
}

/// Whether `customer` may be read at all: a UUID (a customer id that is not one is never read).
fn readable(customer: &str) -> bool {
    polar_license::metadata::check_uuid_v4("customer_id", customer).is_ok()
}

/// Whether a read of `customer` is under way or asked already, or no more reads are kept
/// (at most [`WANTED_KEPT`]).
fn wanted(state: &State, customer: &str) -> bool {
    let reading = state
        .reading
        .as_ref()
        .is_some_and(|r| r.customer == customer);
    reading || state.wanted.iter().any(|c| c == customer) || state.wanted.len() >= WANTED_KEPT
}

/// A read of `customer` asked only by an ingested usage batch (issue #76): its calls are the
/// budget's usage part's, unless a lease or a report wants it too ([`want_read`]).
fn want_read_for_usage(state: &mut State, customer: &str) {
    if !readable(customer) || wanted(state, customer) {
        return;
    }
    state.wanted_for_usage.insert(customer.to_string());
    state.wanted.push_back(customer.to_string());
}

/// A webhook's mark on `customer`'s values.
fn mark(state: &mut State, customer: &str) {
    if let Some(k) = state.known.get_mut(customer) {
        k.stale = true;
    }
    if let Some(r) = state.reading.as_mut().filter(|r| r.customer == customer) {
        r.dirty = true;
    }
}

/// What the join reads of a grant ([`key_entitlements`]), and its benefit's id.
fn compact(g: &Json) -> Json {
    let pick = |j: &Json, names: &[&str]| {
        let mut o = serde_json::Map::new();
        for name in names {
            if let Some(v) = j.get(*name) {
                o.insert((*name).to_string(), v.clone());
            }
        }
        Json::Object(o)
    };
    let mut out = pick(
        g,
        &[
            "is_granted",
            "subscription_id",
            "order_id",
            "member_id",
            "benefit_id",
        ],
    );
    if let (Json::Object(o), Some(p)) = (&mut out, g.get("properties")) {
        o.insert("properties".into(), pick(p, &["license_key_id"]));
    }
    if let (Json::Object(o), Some(b)) = (&mut out, g.get("benefit")) {
        o.insert("benefit".into(), pick(b, &["type", "metadata"]));
    }
    out
}

/// The key's values and its customer's balances, as signed.
fn joined(k: &Known, license_key_id: &str) -> EntitlementClaims {
    let values = key_entitlements(&k.grants, license_key_id)
        .into_iter()
        .map(|(name, v)| {
            let v = match v {
                Entitlement::Str(s) => EntitlementValue::Str(s),
                Entitlement::Int(i) => EntitlementValue::Int(i),
                Entitlement::Float(f) => EntitlementValue::Float(f),
                Entitlement::Bool(b) => EntitlementValue::Bool(b),
            };
            (name, v)
        })
        .collect();
    EntitlementClaims {
        values,
        balances: k.balances.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use serde_json::json;

    const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
    const KEY_ID: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
    const FLAG: &str = "0f6c1f5e-8b2a-4c3d-9e4f-5a6b7c8d9e0f";
    const NONCE: &str = "00112233445566778899aabbccddeeff-ent-stop-facts";

    fn at(ms: u64) -> Now {
        Now {
            unix_seconds: 1_800_000_000 + i64::try_from(ms / 1000).unwrap_or(0),
            monotonic_ms: ms,
        }
    }

    fn holder() -> Holder {
        Holder {
            license_key_id: KEY_ID.into(),
            customer_id: CUSTOMER.into(),
        }
    }

    fn claims() -> LeaseClaims {
        LeaseClaims {
            organization_id: "o".into(),
            key_sha256: "k".into(),
            activation_id: None,
            status: "granted".into(),
            license_expires_at: None,
            subscription_ends_at: None,
            benefit_id: "b".into(),
            usage: 0,
            limit_usage: None,
            limit_activations: None,
            issued_at: 0,
            not_before: 0,
            expires_at: 1,
            id: "i".into(),
            nonce: Some(NONCE.into()),
            entitlements: None,
        }
    }

    /// What a lease for the key gets signed at `now` (and the customer then wanted or not).
    fn signed(e: &Entitled, now: Now) -> Option<EntitlementClaims> {
        let mut c = claims();
        e.sign_in(
            &mut c,
            &holder(),
            Some(NONCE),
            now,
            &StoreOptions::default(),
        );
        c.entitlements
    }

    /// The read the host would be asked for next (without the budget: the machine's part).
    fn start_read(e: &Entitled) {
        let mut s = locked(&e.state);
        let customer = s.wanted.pop_front().expect("the customer wanted");
        s.reading = Some(Reading::of(customer));
    }

    fn page(items: serde_json::Value) -> ReadAnswer {
        let body = json!({"items": items, "pagination": {"total_count": 1, "max_page": 1}});
        Ok((200, None, body.to_string().into_bytes()))
    }

    fn grants(size: i64) -> ReadAnswer {
        page(json!([
            {"is_granted": true, "subscription_id": "s", "benefit_id": "lk",
             "properties": {"license_key_id": KEY_ID}, "benefit": {"type": "license_keys"}},
            {"is_granted": true, "subscription_id": "s", "benefit_id": FLAG,
             "properties": {}, "benefit": {"type": "feature_flag", "metadata": {"size": size}}},
        ]))
    }

    fn meters() -> ReadAnswer {
        page(json!([{"customer_id": CUSTOMER, "balance": 7.5, "meter": {"name": "calls"}}]))
    }

    /// A webhook that comes while the customer is being read: the read's values are kept
    /// stale (never signed) and the customer read again; only a clean read's are signed. A
    /// webhook's body never sets a value.
    #[test]
    fn a_webhook_during_a_read_keeps_that_read_unsigned() {
        let e = Entitled::new(true);
        assert_eq!(signed(&e, at(0)), None, "nothing read yet");
        start_read(&e);
        e.answered(grants(10), at(1));
        e.on_event(&json!({"type": "benefit_grant.updated", "data": {"customer_id": CUSTOMER}}));
        e.answered(meters(), at(2));
        assert_eq!(signed(&e, at(3)), None, "read across a webhook: stale");
        assert_eq!(
            locked(&e.state).wanted.front().map(String::as_str),
            Some(CUSTOMER)
        );
        // A webhook's body with values of its own: still nothing signed.
        e.on_event(&json!({"type": "benefit.updated",
            "data": {"id": FLAG, "type": "feature_flag", "metadata": {"size": 999}}}));
        assert_eq!(signed(&e, at(4)), None);
        start_read(&e);
        e.answered(grants(20), at(5));
        e.answered(meters(), at(6));
        let got = signed(&e, at(7)).expect("a clean read is signed");
        assert_eq!(got.value("size"), Some(&EntitlementValue::Int(20)));
        assert_eq!(got.balance("calls"), Some(7.5));
        // `benefit.updated` of the flag the customer holds: stale again.
        e.on_event(&json!({"type": "benefit.updated", "data": {"id": FLAG}}));
        assert_eq!(signed(&e, at(8)), None);
        // Another benefit's update leaves a fresh read alone.
        start_read(&e);
        e.answered(grants(30), at(9));
        e.answered(meters(), at(10));
        e.on_event(&json!({"type": "benefit.updated", "data": {"id": "another"}}));
        let got = signed(&e, at(11)).expect("signed");
        assert_eq!(got.value("size"), Some(&EntitlementValue::Int(30)));
        // A client that does not ask gets no claim.
        let facts = "00112233445566778899aabbccddeeff-facts";
        let mut c = claims();
        c.nonce = Some(facts.into());
        e.sign_in(
            &mut c,
            &holder(),
            Some(facts),
            at(12),
            &StoreOptions::default(),
        );
        assert_eq!(c.entitlements, None);
        // Past `stale_for` (a day): not signed, read again.
        assert_eq!(signed(&e, at(10 + 86_400_000)), None);
    }

    /// A grant's first read (issue #80): only for a client that asks, of a customer held
    /// nowhere, while Polar may be asked and the budget gives each page's call; its pages kept
    /// as the background's, so the lease made after it is signed with them; one that fails
    /// leaves the customer to the background.
    #[test]
    fn a_first_read_reads_a_new_customer_before_its_lease() {
        let base = "http://polar.test";
        let ok = || Ok(());
        let first = |e: &Entitled, nonce: Option<&str>, open: bool, take: Result<(), u64>| {
            e.first_read(CUSTOMER, nonce, base, || open, || take, at(0))
        };
        let e = Entitled::new(true);
        assert!(
            first(&e, Some("00ff-stop-facts"), false, Ok(())).is_none(),
            "not asked"
        );
        assert!(first(&e, None, false, Ok(())).is_none(), "not asked");
        assert!(
            first(&e, Some(NONCE), true, Ok(())).is_none(),
            "the breaker is open"
        );
        assert!(first(&e, Some(NONCE), false, Err(3)).is_none(), "no budget");
        assert!(
            e.first_read("not-a-uuid", Some(NONCE), base, || false, ok, at(0))
                .is_none(),
            "never a customer id that is not one"
        );
        assert!(
            Entitled::new(false)
                .first_read(CUSTOMER, Some(NONCE), base, || false, ok, at(0))
                .is_none(),
            "off"
        );
        // The pages, grants then meters, each a call of its own.
        let read = first(&e, Some(NONCE), false, Ok(())).expect("a first read");
        assert!(read
            .url()
            .starts_with(&format!("{base}/v1/benefit-grants/?customer_id={CUSTOMER}")));
        let read = e
            .first_answered(read, grants(10), base, ok, 4, at(1))
            .expect("the meters next");
        assert!(read.url().starts_with(&format!(
            "{base}/v1/customer-meters/?customer_id={CUSTOMER}"
        )));
        assert!(
            e.first_answered(read, meters(), base, ok, 4, at(2))
                .is_none(),
            "done"
        );
        let got = signed(&e, at(3)).expect("the lease after it is signed with them");
        assert_eq!(got.value("size"), Some(&EntitlementValue::Int(10)));
        assert_eq!(got.balance("calls"), Some(7.5));
        assert!(
            locked(&e.state).wanted.is_empty(),
            "nothing left to the background"
        );
        // Held now: no first read again.
        assert!(
            first(&e, Some(NONCE), false, Ok(())).is_none(),
            "held already"
        );

        // A read whose next page the budget refuses, or whose page fails, is the
        // background's: the lease goes without them, the customer is wanted.
        for failing in [true, false] {
            let e = Entitled::new(true);
            let read = first(&e, Some(NONCE), false, Ok(())).expect("a first read");
            let next = if failing {
                e.first_answered(read, Err("reset".into()), base, ok, 0, at(1))
            } else {
                e.first_answered(read, grants(10), base, || Err(5), 0, at(1))
            };
            assert!(next.is_none());
            assert_eq!(signed(&e, at(2)), None);
            assert_eq!(
                locked(&e.state).wanted.front().map(String::as_str),
                Some(CUSTOMER),
                "failing: {failing}"
            );
        }

        // A customer of two pages of grants: the request asks the first page only, the rest
        // is the background's (one request is never a customer's every page).
        let e = Entitled::new(true);
        let read = first(&e, Some(NONCE), false, Ok(())).expect("a first read");
        let two_pages = Ok((
            200,
            None,
            json!({"items": [], "pagination": {"total_count": 150, "max_page": 2}})
                .to_string()
                .into_bytes(),
        ));
        let read = e
            .first_answered(read, two_pages, base, ok, 0, at(1))
            .expect("the grants' second page next");
        assert!(read.url().contains("benefit-grants"));
        assert!(
            e.first_answered(read, grants(10), base, ok, 0, at(2))
                .is_none(),
            "two calls on the request's path at most"
        );
        assert_eq!(signed(&e, at(3)), None, "no partial values signed");
        assert_eq!(
            locked(&e.state).wanted.front().map(String::as_str),
            Some(CUSTOMER)
        );
    }

    /// A token Polar refuses turns the reads off; a failed read is tried again.
    #[test]
    fn a_refused_token_turns_the_reads_off_and_a_failure_retries() {
        let e = Entitled::new(true);
        signed(&e, at(0));
        start_read(&e);
        e.answered(Err("reset".into()), at(1));
        assert_eq!(
            locked(&e.state).wanted.front().map(String::as_str),
            Some(CUSTOMER)
        );
        assert!(locked(&e.state).after_ms > 1);
        start_read(&e);
        e.answered(Ok((403, None, Vec::new())), at(2));
        assert!(locked(&e.state).refused);
        assert_eq!(signed(&e, at(3)), None);
        assert!(locked(&e.state).wanted.is_empty(), "no more reads asked");
    }
}
