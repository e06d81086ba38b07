//! The seller's keys (the roster) and the first-seen share: with [`StoreOptions::roster`] on,
//! the relay keeps the SHA-256 of every license key of the organization, paged in from Polar's
//! `GET /v1/license-keys/` at start (in the background, with spare budget) and kept current
//! from the grant webhooks (each key refetched by id, `GET /v1/license-keys/{id}`). A key
//! neither in the roster nor granted in the store is *first-seen*: its calls to Polar come
//! from a small share of the budget ([`StoreOptions::first_seen_share`]), divided fairly
//! between the clients asking (per address, per /64 for IPv6), and never from the reserve
//! that activations, deactivations and increments of known keys keep. Past its share a
//! first-seen key is answered 429 with `Retry-After`: never a denial Polar did not give.
//!
//! Known means granted (issue #62): a page's keys that Polar lists as revoked, disabled or
//! expired are not known (a relist takes them out), and a known key Polar refuses
//! [`REFUSALS_TO_FORGET`] times in a row leaves the known set until Polar grants it again (a
//! grant webhook's refetch, a reconcile's read by id, a 200 to one of its calls). The reserve
//! itself is shared per key and per client ([`Reserve`]).
//!
//! [`StoreOptions::roster`]: crate::store::StoreOptions::roster
//! [`StoreOptions::first_seen_share`]: crate::store::StoreOptions::first_seen_share

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use polar_license::Key;
use sha2::{Digest, Sha256};

use crate::clock::Now;
use crate::locked::locked;

mod kept;
mod reserve;
use crate::store::layout::RosterChange;
pub(crate) use reserve::{Holder, Reserve};

/// Keys per page of `GET /v1/license-keys/` (Polar's most).
pub(crate) const PAGE_LIMIT: u32 = 100;

/// Tries of one refetch by id before it is dropped (the next grant event of the key, or the
/// next start, brings it back).
const REFETCH_TRIES: u32 = 5;

/// Refusals of Polar's in a row (403, 404 to a call of the key's) after which a key leaves the
/// roster's known set ([`Roster::answered`]).
pub(crate) const REFUSALS_TO_FORGET: u32 = 3;

/// Keys whose refusals in a row are counted, at most (the count is emptied when full: a key
/// dropped from it counts again from none).
const REFUSALS_KEPT: usize = 10_000;

/// How long to wait after a failed read of Polar's (not a 429: that says its own time).
pub(crate) const BACKOFF_MS: u64 = 5_000;

/// A current roster is paged in again after this long (with spare budget, the keys it holds
/// kept meanwhile): a grant whose webhook never came is known within it.
pub(crate) const RELIST_MS: u64 = 3_600_000;

/// A key's SHA-256 (32 bytes, not hex: a million keys are about 50 MB).
pub(crate) fn digest(key: &Key) -> [u8; 32] {
    Sha256::digest(key.expose().as_bytes()).into()
}

/// The roster's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No roster, turned off by the seller ([`StoreOptions::roster`] `false`): every key
    /// counts as known (the relay as before it had one).
    ///
    /// [`StoreOptions::roster`]: crate::store::StoreOptions::roster
    Off,
    /// On, but the token cannot list the organization's keys (Polar answered 401 or 403: it
    /// lacks `license_keys:read`): nothing is read of Polar, and the keys known are those
    /// Polar granted through this relay since its start. Every other key is first-seen and
    /// gets only its share, fairly per client, as with a roster still loading: the token's
    /// missing scope never turns the protection off.
    Unreadable,
    /// Pages still to read: this one next.
    Loading { page: u32 },
    /// Every page read (the last at this monotonic ms); kept current from the webhooks, and
    /// paged in again after [`RELIST_MS`].
    Current { since_ms: u64 },
}

/// The SHA-256 (hex) of every key of the organization the relay knows of.
#[derive(Debug)]
pub(crate) struct Roster {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    phase: Phase,
    /// Every key's digest; kept in the host (`kept`), a bounded cache of those read.
    hashes: HashSet<[u8; 32]>,
    /// With the roster kept in the host's storage (kept.rs): what it does not hold, and the
    /// changes to save.
    kept: Option<kept::Kept>,
    /// License key ids to refetch (from grant webhooks), with the tries left and when the
    /// webhook came (monotonic ms).
    refetch: VecDeque<(String, u32, u64)>,
    /// No read before this monotonic ms (a failure's backoff, Polar's 429).
    not_before: u64,
    /// The unreadable roster's warning, until a host without a log takes it
    /// ([`roster_warning`](crate::reads::roster_warning)).
    pub(crate) warning: Option<String>,
    /// License key ids a grant event other than a revocation named (a re-grant, an update):
    /// their refetch's "granted" may end a stored revocation. A revocation's own refetch never
    /// does (a read that lags behind the revocation must not undo it).
    lifts: HashSet<String>,
    /// Known keys' refusals in a row ([`Roster::answered`]).
    refusals: HashMap<[u8; 32], u32>,
    /// When (monotonic ms) Polar last granted each key ([`Roster::learn`]), and when the map
    /// was last emptied (it is bounded): a read of Polar's begun before either takes no key
    /// out ([`Roster::forget_read`]).
    learned: HashMap<[u8; 32], u64>,
    learned_emptied_ms: Option<u64>,
}

/// Keys whose last grant [`Inner::learned`] remembers, at most.
const LEARNED_KEPT: usize = 100_000;

impl Inner {
    /// `d` is the organization's (saved too when kept in the host).
    fn add(&mut self, d: [u8; 32]) {
        match self.kept.as_mut() {
            Some(kept) => kept.learn(&mut self.hashes, d),
            None => {
                self.hashes.insert(d);
            }
        }
    }

    /// `d` is no longer the organization's (deleted too when kept in the host).
    fn remove(&mut self, d: [u8; 32]) {
        match self.kept.as_mut() {
            Some(kept) => kept.forget(&mut self.hashes, d),
            None => {
                self.hashes.remove(&d);
            }
        }
    }
}

/// What the roster's worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// The roster is off: the worker ends.
    Stop,
    /// Nothing to read before this many ms.
    Wait(u64),
    /// Read this page of the list.
    Page(u32),
    /// Read this key by id (its tries left, and when its webhook came: monotonic ms).
    Refetch(String, u32, u64),
}

impl Roster {
    pub(crate) fn new(on: bool) -> Roster {
        Roster {
            inner: Mutex::new(Inner {
                phase: if on {
                    Phase::Loading { page: 1 }
                } else {
                    Phase::Off
                },
                hashes: HashSet::new(),
                kept: None,
                refetch: VecDeque::new(),
                not_before: 0,
                warning: None,
                lifts: HashSet::new(),
                refusals: HashMap::new(),
                learned: HashMap::new(),
                learned_emptied_ms: None,
            }),
        }
    }

    /// From now on kept in the host's storage, at most `cached` digests in memory (kept.rs).
    pub(crate) fn keep_in_host(&self, cached: usize) {
        let mut inner = self.lock();
        if inner.phase != Phase::Off {
            inner.hashes.clear();
            inner.kept = Some(kept::Kept::new(cached));
        }
    }

    /// The changes for the host to save (kept in the host only).
    pub(crate) fn take_changes(&self) -> Vec<RosterChange> {
        self.lock()
            .kept
            .as_mut()
            .map(|k| k.take())
            .unwrap_or_default()
    }

    /// At start, the next page the host saved (`0`: current since `now_ms`).
    pub(crate) fn restore(&self, page: u32, now_ms: u64) {
        let mut inner = self.lock();
        if inner.phase != Phase::Off {
            inner.phase = if page == 0 {
                Phase::Current { since_ms: now_ms }
            } else {
                Phase::Loading { page }
            };
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        locked(&self.inner)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().hashes.len()
    }

    /// What `/healthz` says of it: `null` when off, else its state (`loading` until every
    /// page is read, then `current`) and how many keys it holds.
    pub(crate) fn reading(&self) -> serde_json::Value {
        let inner = self.lock();
        let state = match inner.phase {
            Phase::Off => return serde_json::Value::Null,
            Phase::Unreadable => {
                return serde_json::json!({
                    "state": "unreadable",
                    "keys": inner.hashes.len(),
                    "why": UNREADABLE,
                })
            }
            Phase::Loading { .. } => "loading",
            Phase::Current { .. } => "current",
        };
        serde_json::json!({"state": state, "keys": inner.hashes.len()})
    }

    /// Whether `key` is first-seen: the roster is on and does not hold it.
    pub(crate) fn first_seen(&self, key: &Key) -> bool {
        let inner = self.lock();
        inner.phase != Phase::Off && !inner.hashes.contains(&digest(key))
    }

    /// Polar granted `key` (its answer came at `now_ms`): it is the organization's, and a read
    /// of Polar's begun before now takes it out no more ([`Roster::forget_read`]).
    pub(crate) fn learn(&self, key: &Key, now_ms: u64) {
        let mut inner = self.lock();
        if inner.phase != Phase::Off {
            let d = digest(key);
            inner.refusals.remove(&d);
            inner.add(d);
            if inner.learned.len() >= LEARNED_KEPT && !inner.learned.contains_key(&d) {
                inner.learned.clear();
                inner.learned_emptied_ms = Some(now_ms);
            }
            inner.learned.insert(d, now_ms);
        }
    }

    /// A read of Polar's begun at `started_ms` (a page of the list, a refetch or a reconcile's
    /// read by id) says `key` is revoked, disabled or expired: it leaves the known set
    /// (as `Roster::forget` does), unless Polar granted it since that read began (a re-grant while
    /// an hourly relist ran: the relist's page is older than the grant). Whether it left.
    pub(crate) fn forget_read(&self, key: &Key, started_ms: u64) -> bool {
        let mut inner = self.lock();
        if inner.phase == Phase::Off {
            return false;
        }
        let d = digest(key);
        let since = |ms: Option<u64>| ms.is_some_and(|ms| ms >= started_ms);
        if since(inner.learned.get(&d).copied()) || since(inner.learned_emptied_ms) {
            return false;
        }
        inner.remove(d);
        true
    }

    /// Polar says `key` is revoked, disabled or expired: no longer the organization's key
    /// that counts as known (a grant of it later, Polar's 200, makes it known again).
    #[cfg(test)]
    pub(crate) fn forget(&self, key: &Key) {
        let mut inner = self.lock();
        if inner.phase != Phase::Off {
            inner.remove(digest(key));
        }
    }

    /// Polar answered a call of `key`'s (through the relay) with `status`: a 2xx ends the key's
    /// run of refusals; a refusal (403: an activation Polar does not permit, the key revoked,
    /// disabled or expired, at its limit; 404: a validate's denial, a deactivation's unknown
    /// activation) of a key the roster knows counts, and the [`REFUSALS_TO_FORGET`]th in a row
    /// takes the key out of the known set (issue #62): its activations, deactivations and
    /// increments then get only the first-seen share, fairly per client, never the reserve,
    /// until Polar grants it again (a grant webhook's refetch, a reconcile's read by id, or a
    /// 200 of Polar's to one of its calls). Whether the key left the roster now.
    pub(crate) fn answered(&self, key: &Key, status: u16) -> bool {
        let mut inner = self.lock();
        if inner.phase == Phase::Off {
            return false;
        }
        let d = digest(key);
        if (200..300).contains(&status) {
            inner.refusals.remove(&d);
            return false;
        }
        if !matches!(status, 403 | 404) || !inner.hashes.contains(&d) {
            return false;
        }
        if inner.refusals.len() >= REFUSALS_KEPT && !inner.refusals.contains_key(&d) {
            inner.refusals.clear();
        }
        let n = inner.refusals.entry(d).or_insert(0);
        *n += 1;
        if *n < REFUSALS_TO_FORGET {
            return false;
        }
        inner.refusals.remove(&d);
        inner.remove(d);
        true
    }

    /// A grant webhook named this license key id at `now_ms`: refetched by the worker.
    pub(crate) fn refetch(&self, license_key_id: &str, now_ms: u64) {
        let mut inner = self.lock();
        if matches!(inner.phase, Phase::Off | Phase::Unreadable)
            || inner.refetch.len() >= 10_000
            || inner.refetch.iter().any(|(id, ..)| id == license_key_id)
        {
            return;
        }
        inner
            .refetch
            .push_back((license_key_id.to_string(), REFETCH_TRIES, now_ms));
    }

    /// A grant event other than a revocation named this license key id: its refetch may end a
    /// stored revocation.
    pub(crate) fn may_lift(&self, license_key_id: &str) {
        let mut inner = self.lock();
        if inner.lifts.len() >= 10_000 {
            inner.lifts.clear();
        }
        inner.lifts.insert(license_key_id.to_string());
    }

    /// Whether this refetch may end a stored revocation (taken once).
    pub(crate) fn take_lift(&self, license_key_id: &str) -> bool {
        self.lock().lifts.remove(license_key_id)
    }

    /// Whether a refetch of this license key id may end a stored revocation (not taken).
    pub(crate) fn may_lift_now(&self, license_key_id: &str) -> bool {
        self.lock().lifts.contains(license_key_id)
    }

    /// The next read, at `now_ms` (a refetch first: it is a customer who just bought; one
    /// whose webhook came at `recent_since` or later before a backlog's).
    pub(crate) fn next(&self, now_ms: u64, recent_since: u64) -> Job {
        let mut inner = self.lock();
        if matches!(inner.phase, Phase::Off | Phase::Unreadable) {
            return Job::Stop;
        }
        if now_ms < inner.not_before {
            return Job::Wait(inner.not_before - now_ms);
        }
        let recent = inner
            .refetch
            .iter()
            .position(|(.., since)| *since >= recent_since);
        if let Some((id, tries, since)) = inner.refetch.remove(recent.unwrap_or(0)) {
            return Job::Refetch(id, tries, since);
        }
        match inner.phase {
            Phase::Loading { page } => Job::Page(page),
            Phase::Current { since_ms } if now_ms.saturating_sub(since_ms) >= RELIST_MS => {
                inner.phase = Phase::Loading { page: 1 };
                Job::Page(1)
            }
            // Idle until the relist (a grant webhook's refetch comes sooner: the host asks
            // again after each request; the native server's loop every 200 ms at most).
            Phase::Current { since_ms } => {
                Job::Wait(RELIST_MS.saturating_sub(now_ms.saturating_sub(since_ms)))
            }
            Phase::Off | Phase::Unreadable => Job::Stop,
        }
    }

    /// Nothing before `ms` from now (`now_ms`).
    pub(crate) fn hold(&self, now_ms: u64, ms: u64) {
        let mut inner = self.lock();
        inner.not_before = inner.not_before.max(now_ms.saturating_add(ms));
    }

    /// A refetch to try again later (the budget, a failure), while tries are left.
    pub(crate) fn again(&self, id: String, tries: u32, since: u64) {
        if tries > 1 {
            self.lock().refetch.push_back((id, tries - 1, since));
        }
    }

    /// A page read: its keys kept; the last page (or an empty one) makes the roster current.
    pub(crate) fn page_read(&self, page: u32, keys: &[String], max_page: u64, now_ms: u64) {
        let mut inner = self.lock();
        for k in keys {
            inner.add(digest(&Key::new(k.clone())));
        }
        if inner.phase == (Phase::Loading { page }) {
            inner.phase = if keys.is_empty() || u64::from(page) >= max_page {
                Phase::Current { since_ms: now_ms }
            } else {
                Phase::Loading { page: page + 1 }
            };
            let phase = inner.phase;
            if let Some(kept) = inner.kept.as_mut() {
                kept.phase(phase);
            }
        }
    }

    /// The token cannot read the keys (401, 403): nothing more is read of Polar, but the
    /// protection stays ([`Phase::Unreadable`]): keys Polar grants through the relay are
    /// learned, every other key is first-seen. Kept in the host, the next start pages in again
    /// (and learns the same, or that the token can read them now). `true` the first time (the
    /// caller's one warning).
    pub(crate) fn unreadable(&self) -> bool {
        let mut inner = self.lock();
        if matches!(inner.phase, Phase::Off | Phase::Unreadable) {
            return false;
        }
        inner.phase = Phase::Unreadable;
        inner.refetch.clear();
        if let Some(kept) = inner.kept.as_mut() {
            kept.phase(Phase::Loading { page: 1 });
        }
        true
    }

    /// Whether the token was found unable to list the keys.
    pub(crate) fn is_unreadable(&self) -> bool {
        self.lock().phase == Phase::Unreadable
    }
}

/// Why a roster is unreadable, as `/healthz` and the log say it.
pub(crate) const UNREADABLE: &str = "the organization token cannot list its license keys (Polar \
     answered 401 or 403: it needs the scope license_keys:read); keys Polar has not granted \
     through this relay get only the first-seen share, fairly per client";

/// The first-seen share's calls of the window, by client.
#[derive(Debug)]
pub(crate) struct FirstSeen {
    cap: u32,
    window_ms: u64,
    /// (monotonic ms, client), oldest first.
    calls: VecDeque<(u64, String)>,
    per_client: HashMap<String, u32>,
}

impl FirstSeen {
    /// `share` percent of `budget` calls per `window_ms` (at least one call when the share is
    /// above 0).
    pub(crate) fn new(budget: u32, share: u32, window_ms: u64) -> FirstSeen {
        let cap = if share == 0 {
            0
        } else {
            (u64::from(budget) * u64::from(share.min(100)))
                .div_ceil(100)
                .max(1)
        };
        FirstSeen {
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            window_ms: window_ms.max(1),
            calls: VecDeque::new(),
            per_client: HashMap::new(),
        }
    }

    fn trim(&mut self, now_ms: u64) {
        while let Some((at, client)) = self.calls.front() {
            if now_ms.saturating_sub(*at) < self.window_ms {
                break;
            }
            if let Some(n) = self.per_client.get_mut(client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_client.remove(client);
                }
            }
            self.calls.pop_front();
        }
    }

    /// One call of the share for `client` at `now_ms`: `Err(seconds)` until one is its. A
    /// client may hold its fair part of the share (the share divided by the clients that
    /// used it in the window, itself included; at least one call).
    pub(crate) fn take(&mut self, client: &str, now_ms: u64) -> Result<(), u64> {
        self.trim(now_ms);
        let secs = |at: u64, window: u64| {
            (at.saturating_add(window).saturating_sub(now_ms))
                .div_ceil(1000)
                .max(1)
        };
        if self.cap == 0 {
            return Err(self.window_ms.div_ceil(1000).max(1));
        }
        let mine = self.per_client.get(client).copied().unwrap_or(0);
        let clients = self.per_client.len() + usize::from(mine == 0);
        let fair = (self.cap as usize / clients.max(1)).max(1);
        if (self.calls.len() as u64) < u64::from(self.cap) && (mine as usize) < fair {
            self.calls.push_back((now_ms, client.to_string()));
            *self.per_client.entry(client.to_string()).or_insert(0) += 1;
            return Ok(());
        }
        // Its own oldest call leaves first when it holds its part; else the window's oldest.
        let oldest = if (mine as usize) >= fair {
            self.calls.iter().find(|(_, c)| c == client)
        } else {
            self.calls.front()
        };
        Err(oldest.map_or(1, |(at, _)| secs(*at, self.window_ms)))
    }
}

/// The client a first-seen share and the per-IP limit count for: the address, an IPv6
/// address by its /64 (one host picks any address of its /64), an IPv4-mapped one as IPv4;
/// anything else (a proxy header's odd value) as it is.
pub(crate) fn client_group(client: &str) -> String {
    match client.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => client.to_string(),
    }
}

/// One read of Polar's for the roster ([`roster_read`](crate::reads::roster_read)): a `GET` of its
/// `url` with its `headers`, its answer given back to
/// [`roster_answered`](crate::reads::roster_answered).
pub struct Read {
    pub(crate) url: String,
    /// They hold the seller's token: never logged.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) job: Job,
    /// When the read began: a refetch's grant lifts only the revocations applied before.
    pub(crate) started: Now,
}

impl std::fmt::Debug for Read {
    /// The URL and the job; the headers by name only (the token is one of them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Read")
            .field("url", &self.url)
            .field("header_names", &names)
            .field("job", &self.job)
            .finish()
    }
}

/// What a read got: Polar's status, its `retry-after` and body, or why there was no answer.
pub type ReadAnswer = Result<(u16, Option<u64>, Vec<u8>), String>;

/// Whether a license key as Polar reads it (`GET /v1/license-keys/{id}`) is granted now: its
/// `status` is `granted` and its `expires_at`, if any, after `now` (unix seconds).
pub(crate) fn usable(key: &serde_json::Value, now: i64) -> bool {
    let expired = key
        .get("expires_at")
        .and_then(|v| v.as_str())
        .and_then(crate::clock::unix_of)
        .is_some_and(|t| t <= now);
    key.get("status").and_then(|v| v.as_str()) == Some("granted") && !expired
}

/// A grant event (`benefit_grant.created`, `.updated`, `.cycled`, `.revoked`) names a license
/// key: it is refetched by id for the roster (a new customer's key, a rotated key's new
/// string; a revoked key, forgotten when Polar says it is no longer granted).
pub(crate) fn on_event(roster: &Roster, event: &serde_json::Value, now_ms: u64) {
    let kind = event.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !matches!(
        kind,
        "benefit_grant.created"
            | "benefit_grant.updated"
            | "benefit_grant.cycled"
            | "benefit_grant.revoked"
    ) {
        return;
    }
    if let Some(id) = event
        .pointer("/data/properties/license_key_id")
        .and_then(|i| i.as_str())
    {
        if kind != "benefit_grant.revoked" {
            roster.may_lift(id);
        }
        roster.refetch(id, now_ms);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
pub(crate) mod tests;
