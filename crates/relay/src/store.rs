//! The verdict store (issue #37): Polar's answers kept by organization, SHA-256 of the key and
//! request shape, so that a relay answers most checks without spending the organization
//! token's budget (500 calls a minute for all of a seller's customers), answers through
//! Polar's outages, and learns of revocations from Polar's webhooks.
//!
//! The decisions are here, sans-IO: what an entry may answer and for how long
//! ([`StoreOptions`]), the token budget ([`Budget`]), what a webhook may do (only narrow: a
//! revocation marks a key's entries denied, any other change marks them stale so the next
//! check asks Polar; nothing a webhook says can grant). Where entries live is a [`Backend`]:
//! [`MemoryBackend`], or natively [`RedbBackend`] (feature `durable`), a crash-safe file.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An entry's id: SHA-256 of the organization, the key's SHA-256 and the request's shape.
pub type EntryId = [u8; 32];

/// How the store answers. Start from [`StoreOptions::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// A grant younger than this answers a validate with no call to Polar (default 300 s).
    pub fresh_for: u64,
    /// When Polar cannot be asked (the budget, a 429, a 5xx, unreachable), a grant younger
    /// than this still answers, marked `stale` (default 86,400 s).
    pub stale_for: u64,
    /// A denial younger than this answers with no call (default 60 s): a flood of unknown or
    /// revoked keys spends no budget.
    pub denial_for: u64,
    /// The organization token's calls per minute (default 500, Polar's production budget;
    /// 100 in the sandbox). The relay never makes more in any 60 s.
    pub budget: u32,
    /// Of the budget, the calls kept for activate, deactivate and usage increments (always
    /// forwarded, never answered from the store): validates that need Polar may use the rest
    /// (default a quarter: `cargo run --release -p polar-license-relay --example store_bench`
    /// answered 243 of 459 new customers' activations with a tenth, 407 of 461 with a quarter,
    /// the rest refused in Polar's outage, with 99.95% of known keys' checks answered both ways).
    pub reserve: u32,
    /// Entries kept at most (default 1,000,000); past it the oldest answers go first.
    pub max_entries: usize,
    /// The budget's window in ms (default 60,000: Polar's minute; shorter only for tests and
    /// benchmarks that scale time against an emulator's `--token-window`).
    pub budget_window_ms: u64,
    /// Know the organization's keys (default off): the SHA-256 of every key, paged in from
    /// Polar's `GET /v1/license-keys/` at start with spare budget (the token needs
    /// `license_keys:read`; without it the relay runs as with this off) and kept current from
    /// the grant webhooks, each key refetched by id. A key neither in it nor granted in the
    /// store is first-seen: see [`StoreOptions::first_seen_share`].
    pub roster: bool,
    /// With [`StoreOptions::roster`]: the percent of the budget first-seen keys may spend
    /// (default 10), divided fairly between the clients asking (per address, per /64 for
    /// IPv6), never from the reserve; past it they are answered 429 with `Retry-After`.
    pub first_seen_share: u32,
    /// An entry marked stale (a webhook's change, a deactivation or an increment through the
    /// relay) answers while Polar cannot be asked for at most this long after its mark
    /// (default [`MARKED_STALE_SECONDS`], an hour), instead of [`StoreOptions::stale_for`]:
    /// what changed is Polar's to say.
    pub marked_stale_for: u64,
    /// With the native server: every stored grant's key is asked of Polar again by id
    /// (`GET /v1/license-keys/{id}`) once its last check is this old, with idle budget only,
    /// and its entries narrowed when Polar says the key is revoked, disabled, expired, rotated
    /// or gone (default 600 s; 0 turns it off): see `crate::reconcile`.
    pub reconcile_every: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            fresh_for: 300,
            stale_for: 86_400,
            denial_for: 60,
            budget: 500,
            reserve: 125,
            max_entries: 1_000_000,
            budget_window_ms: MINUTE_MS,
            roster: false,
            first_seen_share: 10,
            marked_stale_for: 3_600,
            reconcile_every: 600,
        }
    }
}

/// What a webhook did to an entry: a webhook only narrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    /// Polar's answer, untouched.
    None,
    /// A change Polar told of: ask Polar at the next check.
    Stale,
    /// The key was revoked: a denial, at once, until Polar says otherwise.
    Revoked,
}

/// One stored answer of Polar's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The license key's id in Polar (its `id`): what webhooks name.
    pub license_key_id: Option<String>,
    /// The customer's id (purchase webhooks name the customer).
    pub customer_id: Option<String>,
    /// When Polar answered (unix seconds): a lease's time of verification.
    pub answered_at: i64,
    /// Polar's status and body, and the headers passed back.
    pub status: u16,
    /// Polar's body (UTF-8 JSON) without the license key and without emails (the key's value
    /// `""`, the emails `null`): the client's key goes back in at [`Entry::key_at`] when the
    /// answer is replayed.
    pub body: String,
    /// `content-type`, `polar-version`, `cache-control`, `x-polar-sandbox`.
    pub headers: Vec<(String, String)>,
    /// Whether the core read the answer as a grant of the request.
    pub grant: bool,
    /// What webhooks said since.
    pub mark: Mark,
    /// The newest customer-level event applied (a purchase event, or a license-key grant
    /// event naming no key: its `modified_at` or `timestamp`, unix seconds): an older one,
    /// delivered late, changes nothing. It never hides an event about the key (stored as
    /// `last_event_at`, which an older relay advanced for every event).
    #[serde(rename = "last_event_at")]
    pub customer_event_at: i64,
    /// The newest event applied that names this entry's key (a grant of it created, updated,
    /// cycled or revoked): only such an event, newer, makes a late revocation of the key a
    /// re-check instead of a denial (0 in an older relay's entries: every revocation denies).
    #[serde(default)]
    pub key_event_at: i64,
    /// When the relay applied the mark (its clock): a call to Polar that began before it does
    /// not lift it, and a revocation refuses without a call for `denial_for` from then.
    #[serde(default)]
    pub marked_at: i64,
    /// Where, in `body`, the requesting client's key goes back (a byte offset): a grant
    /// stored without one (an older store's, holding the key) is never replayed.
    #[serde(default)]
    pub key_at: Option<usize>,
    /// The index tag of its key ([`key_tag`]: a digest of the organization and the key's
    /// SHA-256, never the key): what the relay's own deactivations and increments narrow, and
    /// what [`MAX_ENTRIES_PER_KEY`] counts (`None` in an older relay's entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_tag: Option<String>,
}

/// Entries kept per license key at most (64: every API version, activation, benefit and
/// customer a key is checked with, well past Polar's activation limits); past it the key's
/// oldest answer goes first. One key checked with endless activation ids (each a denial of
/// Polar's) cannot grow the store.
pub const MAX_ENTRIES_PER_KEY: usize = 64;

/// The default of [`StoreOptions::marked_stale_for`]: an entry marked stale (a webhook's
/// change, or a deactivation or increment through the relay) answers while Polar cannot be
/// asked for at most this long after its mark (one hour), instead of the whole `stale_for`.
pub const MARKED_STALE_SECONDS: i64 = 3_600;

/// The index tag of a key's entries: `k:` and the SHA-256 (hex) of the organization and the
/// key's SHA-256.
pub fn key_tag(organization_id: &str, key_sha256: &str) -> String {
    let mut h = Sha256::new();
    for part in ["key", organization_id, key_sha256] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest: [u8; 32] = h.finalize().into();
    format!("k:{}", hex_id(&digest))
}

/// A store that failed: the relay passes Polar's answers through as without a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where entries and webhook ids live.
pub trait Backend: Send + Sync {
    /// An entry.
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError>;
    /// Stores an entry (indexed by its license key id and customer id), evicting the oldest
    /// past the cap; durable when this returns.
    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError>;
    /// The entries of a license key id (`l:…`) or a customer id (`c:…`).
    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError>;
    /// In one step: unless `webhook_id` was seen, writes `updates` and remembers the id;
    /// `false` when it was seen (nothing written).
    fn apply_webhook(
        &self,
        webhook_id: &str,
        at: i64,
        updates: &[(EntryId, Entry)],
    ) -> Result<bool, StoreError>;
    /// Reads the entry `id` and writes what `f` makes of it in one step: nothing else writes
    /// the store between that read and that write (a webhook acknowledged meanwhile is either
    /// in what `f` reads, or applied after its write). `f` gets the entry as stored now and
    /// returns the entry to write (`None`: nothing written); what was written is returned.
    ///
    /// The default reads and writes in two steps (a backend of its own that cannot do better
    /// may lose a webhook's mark to a racing answer): every backend of this crate overrides it.
    fn update(
        &self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        let current = self.get(id)?;
        match f(current.as_ref()) {
            Some(entry) => {
                self.put(id, &entry)?;
                Ok(Some(entry))
            }
            None => Ok(None),
        }
    }
    /// In one step: unless the webhook id of `webhook` (id, unix seconds) was seen, every
    /// entry indexed under `tags` read as stored now and narrowed by `f` (`None`: unchanged),
    /// and the id remembered. `None` when the id was seen (nothing written), else how many
    /// entries changed. Without `webhook`, a narrowing of the relay's own (a deactivation, an
    /// increment it passed on).
    ///
    /// The default reads, then writes through [`Backend::apply_webhook`] (two steps, see
    /// [`Backend::update`]): every backend of this crate overrides it.
    fn narrow(
        &self,
        webhook: Option<(&str, i64)>,
        tags: &[String],
        f: &mut dyn FnMut(&Entry) -> Option<Entry>,
    ) -> Result<Option<usize>, StoreError> {
        let mut updates: Vec<(EntryId, Entry)> = Vec::new();
        for tag in tags {
            for id in self.index(tag)? {
                if updates.iter().any(|(i, _)| *i == id) {
                    continue;
                }
                if let Some(e) = self.get(&id)?.as_ref().and_then(&mut *f) {
                    updates.push((id, e));
                }
            }
        }
        let n = updates.len();
        match webhook {
            Some((webhook_id, at)) => {
                Ok(self.apply_webhook(webhook_id, at, &updates)?.then_some(n))
            }
            None => {
                for (id, e) in &updates {
                    self.put(id, e)?;
                }
                Ok(Some(n))
            }
        }
    }
    /// Entries held.
    fn len(&self) -> Result<usize, StoreError>;
    /// Whether it holds nothing.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    /// The token budget's state after a call or a 429 (the newest given wins): a store that
    /// persists writes it with its next write ([`Backend::put`], [`Backend::apply_webhook`],
    /// [`Backend::flush_budget`]). Nothing by default (a store in memory forgets it at exit
    /// as it forgets its entries).
    fn stage_budget(&self, _state: BudgetState) {}
    /// Writes the budget's state given since the last write, when no write carried it.
    fn flush_budget(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The budget's state as last written (read once, at the relay's first use of its budget).
    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(None)
    }
    /// The bytes the store takes on disk, when it has a file (the operator's metrics);
    /// `None` by default.
    fn bytes(&self) -> Option<u64> {
        None
    }
    /// The index tags that start with `prefix` (`l:`: the license key ids of the entries
    /// held), read once at start by the reconcile; none by default.
    fn tags_with_prefix(&self, _prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// When the newest webhook id remembered was received (unix seconds): the relay's last
    /// webhook before a restart; `None` by default.
    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
}

/// Webhook ids are remembered this long (Polar retries for about 16 hours).
pub const WEBHOOK_MEMORY_SECONDS: i64 = 3 * 86_400;

fn tags(entry: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &entry.license_key_id {
        out.push(format!("l:{l}"));
    }
    if let Some(c) = &entry.customer_id {
        out.push(format!("c:{c}"));
    }
    if let Some(k) = &entry.key_tag {
        out.push(k.clone());
    }
    out
}

/// Entries in memory (lost at exit): `--store memory`, tests, hosts without a disk.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    inner: Mutex<Memory>,
    max_entries: usize,
}

/// What a narrowing wrote (the entries) and the webhook ids it forgot.
type Narrowed = (Vec<(EntryId, Entry)>, Vec<String>);

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<EntryId, Entry>,
    index: HashMap<String, Vec<EntryId>>,
    webhooks: HashMap<String, i64>,
}

impl MemoryBackend {
    /// An empty store of at most `max_entries`.
    pub fn new(max_entries: usize) -> MemoryBackend {
        MemoryBackend {
            inner: Mutex::default(),
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Memory {
    fn insert(&mut self, id: &EntryId, entry: &Entry) {
        for tag in tags(entry) {
            let ids = self.index.entry(tag).or_default();
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        self.entries.insert(*id, entry.clone());
    }

    /// [`Backend::update`] under the lock: what was written, and the ids evicted.
    fn update(
        &mut self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
        max: usize,
    ) -> (Option<Entry>, Vec<EntryId>) {
        let Some(entry) = f(self.entries.get(id)) else {
            return (None, Vec::new());
        };
        self.insert(id, &entry);
        let mut removed = self.cap_key(id, &entry);
        removed.extend(self.evict(max));
        (Some(entry), removed)
    }

    /// Past [`MAX_ENTRIES_PER_KEY`] entries of `entry`'s key, its oldest others go; returns
    /// the ids removed.
    fn cap_key(&mut self, id: &EntryId, entry: &Entry) -> Vec<EntryId> {
        let Some(tag) = &entry.key_tag else {
            return Vec::new();
        };
        let ids = self.index.get(tag).cloned().unwrap_or_default();
        if ids.len() <= MAX_ENTRIES_PER_KEY {
            return Vec::new();
        }
        let mut ages: Vec<(i64, EntryId)> = ids
            .iter()
            .filter(|k| *k != id)
            .filter_map(|k| self.entries.get(k).map(|e| (e.answered_at, *k)))
            .collect();
        ages.sort_unstable();
        let over = ids.len() - MAX_ENTRIES_PER_KEY;
        let mut removed = Vec::new();
        for (_, k) in ages.into_iter().take(over) {
            if self.remove(&k) {
                removed.push(k);
            }
        }
        removed
    }

    /// Removes an entry with its index rows; whether it was there.
    fn remove(&mut self, id: &EntryId) -> bool {
        let Some(e) = self.entries.remove(id) else {
            return false;
        };
        for tag in tags(&e) {
            if let Some(ids) = self.index.get_mut(&tag) {
                ids.retain(|x| x != id);
                if ids.is_empty() {
                    self.index.remove(&tag);
                }
            }
        }
        true
    }

    /// [`Backend::narrow`] under the lock: `None` for a webhook id seen, else the entries
    /// written and the webhook ids forgotten.
    fn narrow(
        &mut self,
        webhook: Option<(&str, i64)>,
        tags: &[String],
        f: &mut dyn FnMut(&Entry) -> Option<Entry>,
    ) -> Option<Narrowed> {
        if let Some((webhook_id, _)) = webhook {
            if self.webhooks.contains_key(webhook_id) {
                return None;
            }
        }
        let mut written: Vec<(EntryId, Entry)> = Vec::new();
        let mut seen: Vec<EntryId> = Vec::new();
        for tag in tags {
            let ids = self.index.get(tag).cloned().unwrap_or_default();
            for id in ids {
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                if let Some(e) = self.entries.get(&id).and_then(&mut *f) {
                    self.entries.insert(id, e.clone());
                    written.push((id, e));
                }
            }
        }
        let mut forgotten = Vec::new();
        if let Some((webhook_id, at)) = webhook {
            forgotten = self.prune_webhooks(at);
            self.webhooks.insert(webhook_id.to_string(), at);
        }
        Some((written, forgotten))
    }

    /// Evicts the oldest past `max`; returns the ids removed.
    fn evict(&mut self, max: usize) -> Vec<EntryId> {
        let mut removed = Vec::new();
        if self.entries.len() <= max {
            return removed;
        }
        // The oldest sixteenth (at least one) in one pass.
        let mut ages: Vec<(i64, EntryId)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.answered_at, *id))
            .collect();
        ages.sort_unstable();
        let drop = (self.entries.len() - max)
            .max(self.entries.len() / 16)
            .max(1);
        for (_, id) in ages.into_iter().take(drop) {
            if self.remove(&id) {
                removed.push(id);
            }
        }
        removed
    }

    /// Forgets webhook ids older than [`WEBHOOK_MEMORY_SECONDS`] before `at`; returns them.
    fn prune_webhooks(&mut self, at: i64) -> Vec<String> {
        let old: Vec<String> = self
            .webhooks
            .iter()
            .filter(|(_, seen)| **seen <= at - WEBHOOK_MEMORY_SECONDS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            self.webhooks.remove(id);
        }
        old
    }
}

impl Backend for MemoryBackend {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().entries.get(id).cloned())
    }

    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        self.update(id, &mut |_| Some(entry.clone())).map(|_| ())
    }

    fn update(
        &self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().update(id, f, self.max_entries).0)
    }

    fn narrow(
        &self,
        webhook: Option<(&str, i64)>,
        tags: &[String],
        f: &mut dyn FnMut(&Entry) -> Option<Entry>,
    ) -> Result<Option<usize>, StoreError> {
        Ok(self
            .lock()
            .narrow(webhook, tags, f)
            .map(|(written, _)| written.len()))
    }

    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        Ok(self.lock().index.get(tag).cloned().unwrap_or_default())
    }

    fn apply_webhook(
        &self,
        webhook_id: &str,
        at: i64,
        updates: &[(EntryId, Entry)],
    ) -> Result<bool, StoreError> {
        let mut m = self.lock();
        if m.webhooks.contains_key(webhook_id) {
            return Ok(false);
        }
        for (id, entry) in updates {
            m.insert(id, entry);
        }
        m.webhooks
            .retain(|_, seen| *seen > at - WEBHOOK_MEMORY_SECONDS);
        m.webhooks.insert(webhook_id.to_string(), at);
        Ok(true)
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.lock().entries.len())
    }

    fn tags_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let m = self.lock();
        Ok(m.index
            .keys()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.lock().webhooks.values().copied().max())
    }
}

/// One change of a [`JournalBackend`], for its host to persist (keys: `e:<id in hex>` for an
/// entry, `w:<webhook id>` for a webhook id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalItem {
    /// An entry written.
    Put {
        /// The entry's id, hex.
        id: String,
        /// The entry.
        entry: Entry,
    },
    /// An entry evicted.
    Delete {
        /// The entry's id, hex.
        id: String,
    },
    /// A webhook id done, at this time.
    Webhook {
        /// The `webhook-id`.
        id: String,
        /// When (unix seconds).
        at: i64,
    },
    /// A webhook id forgotten (older than [`WEBHOOK_MEMORY_SECONDS`]).
    Forget {
        /// The `webhook-id`.
        id: String,
    },
    /// The token budget's state (one key, `b:budget`: each replaces the last).
    Budget {
        /// The budget's calls of its last minute and Polar's 429, as of `state.at`.
        state: BudgetState,
    },
    /// An entry linked to an index row ([`PagedBackend`] only: key `i:<tag>|<id>`).
    Link {
        /// The row's tag (`k:`, `l:` or `c:`).
        tag: String,
        /// The entry's id, hex.
        id: String,
    },
    /// An entry's link removed ([`PagedBackend`] only).
    Unlink {
        /// The row's tag.
        tag: String,
        /// The entry's id, hex.
        id: String,
    },
    /// The count of entries stored ([`PagedBackend`] only: key `n:entries`; each replaces the
    /// last).
    Count {
        /// Entries stored.
        n: u64,
    },
}

fn hex_id(id: &EntryId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn id_of_hex(text: &str) -> Option<EntryId> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Entries in memory whose every change is also journaled, for a host that persists them
/// itself (a Durable Object's storage in the npm package's relay): [`JournalBackend::take`]
/// hands over the changes since the last call, [`JournalBackend::restore`] loads what was
/// persisted. The host writes the journal before it sends the answer.
#[derive(Debug, Default)]
pub struct JournalBackend {
    memory: MemoryBackend,
    journal: Mutex<Vec<JournalItem>>,
    /// The budget's state restored.
    budget: Mutex<Option<BudgetState>>,
}

impl JournalBackend {
    /// An empty store of at most `max_entries`.
    pub fn new(max_entries: usize) -> JournalBackend {
        JournalBackend {
            memory: MemoryBackend::new(max_entries),
            journal: Mutex::default(),
            budget: Mutex::default(),
        }
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Vec<JournalItem>> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes since the last call, in order.
    pub fn take(&self) -> Vec<JournalItem> {
        std::mem::take(&mut *self.journal())
    }

    /// Loads persisted items (`Put`, `Webhook` and `Budget`; the others are ignored). An item
    /// that does not read back is skipped, never read as a grant.
    pub fn restore(&self, items: Vec<JournalItem>) {
        let mut m = self.memory.lock();
        for item in items {
            match item {
                JournalItem::Put { id, entry } => {
                    if let Some(id) = id_of_hex(&id) {
                        m.insert(&id, &entry);
                    }
                }
                JournalItem::Webhook { id, at } => {
                    m.webhooks.insert(id, at);
                }
                JournalItem::Budget { state } => {
                    *self.budget.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
                }
                _ => {}
            }
        }
    }
}

impl Backend for JournalBackend {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.memory.get(id)
    }

    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        self.update(id, &mut |_| Some(entry.clone())).map(|_| ())
    }

    /// Journaled under the entries' lock: the host persists the changes in the order they
    /// were made (a grant kept and a revocation racing are saved as they were applied).
    fn update(
        &self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        let mut m = self.memory.lock();
        let (written, removed) = m.update(id, f, self.memory.max_entries);
        let mut j = self.journal();
        if let Some(entry) = &written {
            j.push(JournalItem::Put {
                id: hex_id(id),
                entry: entry.clone(),
            });
        }
        j.extend(
            removed
                .iter()
                .map(|id| JournalItem::Delete { id: hex_id(id) }),
        );
        Ok(written)
    }

    fn narrow(
        &self,
        webhook: Option<(&str, i64)>,
        tags: &[String],
        f: &mut dyn FnMut(&Entry) -> Option<Entry>,
    ) -> Result<Option<usize>, StoreError> {
        let mut m = self.memory.lock();
        let Some((written, forgotten)) = m.narrow(webhook, tags, f) else {
            return Ok(None);
        };
        let mut j = self.journal();
        for (id, entry) in &written {
            j.push(JournalItem::Put {
                id: hex_id(id),
                entry: entry.clone(),
            });
        }
        j.extend(forgotten.into_iter().map(|id| JournalItem::Forget { id }));
        if let Some((webhook_id, at)) = webhook {
            j.push(JournalItem::Webhook {
                id: webhook_id.to_string(),
                at,
            });
        }
        Ok(Some(written.len()))
    }

    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.memory.index(tag)
    }

    fn apply_webhook(
        &self,
        webhook_id: &str,
        at: i64,
        updates: &[(EntryId, Entry)],
    ) -> Result<bool, StoreError> {
        let mut m = self.memory.lock();
        if m.webhooks.contains_key(webhook_id) {
            return Ok(false);
        }
        for (id, entry) in updates {
            m.insert(id, entry);
        }
        let forgotten = m.prune_webhooks(at);
        m.webhooks.insert(webhook_id.to_string(), at);
        let mut j = self.journal();
        for (id, entry) in updates {
            j.push(JournalItem::Put {
                id: hex_id(id),
                entry: entry.clone(),
            });
        }
        j.extend(forgotten.into_iter().map(|id| JournalItem::Forget { id }));
        j.push(JournalItem::Webhook {
            id: webhook_id.to_string(),
            at,
        });
        Ok(true)
    }

    fn len(&self) -> Result<usize, StoreError> {
        self.memory.len()
    }

    fn tags_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.memory.tags_with_prefix(prefix)
    }

    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        self.memory.last_webhook_at()
    }

    /// Journaled (the host saves it with the request's other changes); one budget item at
    /// most waits in the journal.
    fn stage_budget(&self, state: BudgetState) {
        let mut j = self.journal();
        j.retain(|item| !matches!(item, JournalItem::Budget { .. }));
        j.push(JournalItem::Budget { state });
    }

    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(self.budget.lock().unwrap_or_else(|e| e.into_inner()).take())
    }
}

/// The id of a validate's entry: the organization, the key's SHA-256 and every field that
/// shapes Polar's answer (the API version asked, `None` when the client sent none; activation,
/// benefit, customer, conditions as sent, in order).
pub fn entry_id(
    organization_id: &str,
    key_sha256: &str,
    polar_version: Option<&str>,
    activation_id: Option<&str>,
    benefit_id: Option<&str>,
    customer_id: Option<&str>,
    conditions: &[(String, serde_json::Value)],
) -> EntryId {
    let mut h = Sha256::new();
    for part in [
        organization_id,
        key_sha256,
        polar_version.unwrap_or(""),
        activation_id.unwrap_or(""),
        benefit_id.unwrap_or(""),
        customer_id.unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    for (k, v) in conditions {
        h.update(k.as_bytes());
        h.update([0u8]);
        h.update(v.to_string().as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

// ---- The token's budget ------------------------------------------------------------------

/// The organization token's budget as the relay spends it: a sliding minute, so that no 60 s
/// (Polar's fixed windows included) holds more than the budget; a 429 of Polar's stops every
/// call until its `Retry-After` has passed. Its state ([`Budget::state`]) is what a store that
/// persists keeps, so that a relay started again ([`Budget::restore`]) does not spend inside
/// Polar's window what its last run already spent.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    reserve: u32,
    /// The calls of the last minute, oldest first: monotonic ms plus `window_ms` (so that a
    /// call restored from before this process's clock began is still a time).
    calls: VecDeque<u64>,
    /// Polar said 429: no call before this monotonic ms.
    blocked_until: u64,
    /// The window (Polar's minute).
    window_ms: u64,
}

/// The budget's window.
const MINUTE_MS: u64 = 60_000;

/// The longest `Retry-After` believed (and restored), in seconds.
const MAX_BLOCK_SECONDS: u64 = 3600;

/// A [`Budget`]'s state as a store keeps it: the calls of its last minute by how many whole
/// seconds before `at` they were made (at most one pair a second of the window, so at most 61
/// pairs for Polar's minute, whatever the budget), and how long Polar's 429 still blocks.
/// Stored as one short text, `"AT BLOCKED_MS AGO:CALLS AGO:CALLS …"` (unix seconds, ms, pairs
/// oldest first): `"1764000000 0 12:3 0:1"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BudgetState {
    /// When the state was taken: wall-clock unix seconds (the relay's monotonic clock does
    /// not survive it).
    pub at: i64,
    /// `(seconds before at, calls)`, oldest first; seconds rounded down (a call counts as
    /// younger than it is: it holds its place in the window longer, never shorter).
    pub calls: Vec<(u64, u32)>,
    /// Polar's 429 blocks every call for this many ms after `at` (0: no block).
    pub blocked_ms: u64,
}

impl From<BudgetState> for String {
    fn from(state: BudgetState) -> String {
        let mut text = format!("{} {}", state.at, state.blocked_ms);
        for (ago, n) in &state.calls {
            text.push_str(&format!(" {ago}:{n}"));
        }
        text
    }
}

impl TryFrom<String> for BudgetState {
    type Error = StoreError;

    fn try_from(text: String) -> Result<BudgetState, StoreError> {
        let bad = || {
            StoreError(format!(
                "the token budget's state {text:?} does not read back"
            ))
        };
        let mut words = text.split(' ');
        let at = words.next().and_then(|w| w.parse().ok());
        let blocked_ms = words.next().and_then(|w| w.parse().ok());
        let calls = words
            .map(|w| {
                let (ago, n) = w.split_once(':')?;
                Some((ago.parse().ok()?, n.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>();
        let (Some(at), Some(blocked_ms), Some(calls)) = (at, blocked_ms, calls) else {
            return Err(bad());
        };
        Ok(BudgetState {
            at,
            calls,
            blocked_ms,
        })
    }
}

impl Budget {
    /// `limit` calls a minute, `reserve` of them kept for calls that cannot be answered from
    /// the store.
    pub fn new(limit: u32, reserve: u32) -> Budget {
        Budget::with_window(limit, reserve, MINUTE_MS)
    }

    /// [`Budget::new`] over another window than a minute.
    pub fn with_window(limit: u32, reserve: u32, window_ms: u64) -> Budget {
        Budget {
            limit,
            reserve: reserve.min(limit),
            calls: VecDeque::new(),
            blocked_until: 0,
            window_ms: window_ms.max(1),
        }
    }

    /// `now_ms` as the calls' times count it.
    fn shifted(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.window_ms)
    }

    fn trim(&mut self, now_ms: u64) {
        let now = self.shifted(now_ms);
        while self
            .calls
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= self.window_ms)
        {
            self.calls.pop_front();
        }
    }

    /// Takes one call: `Err(seconds until one is free)` when there is none. `reserved`: an
    /// activate, a deactivate or an increment (may use the reserve).
    pub fn take(&mut self, now_ms: u64, reserved: bool) -> Result<(), u64> {
        self.trim(now_ms);
        if now_ms < self.blocked_until {
            return Err((self.blocked_until - now_ms).div_ceil(1000).max(1));
        }
        let cap = if reserved {
            self.limit
        } else {
            self.limit - self.reserve
        };
        let now = self.shifted(now_ms);
        if (self.calls.len() as u64) < u64::from(cap) {
            self.calls.push_back(now);
            return Ok(());
        }
        let used = self.calls.len() + 1 - cap as usize;
        let frees_at = self
            .calls
            .get(used.saturating_sub(1))
            .map_or(now, |t| t + self.window_ms);
        Err(frees_at.saturating_sub(now).div_ceil(1000).max(1))
    }

    /// The share of the (non-reserved) budget free now, 0 to 1.
    pub fn room(&mut self, now_ms: u64) -> f64 {
        self.trim(now_ms);
        if now_ms < self.blocked_until {
            return 0.0;
        }
        let cap = f64::from(self.limit - self.reserve).max(1.0);
        ((cap - self.calls.len() as f64) / cap).max(0.0)
    }

    /// Polar answered 429 with this `Retry-After` (seconds; at most an hour is believed).
    pub fn learn(&mut self, now_ms: u64, retry_after: Option<u64>) {
        let secs = retry_after.unwrap_or(60).min(MAX_BLOCK_SECONDS);
        self.blocked_until = self.blocked_until.max(now_ms + secs * 1000);
    }

    /// Calls made in the last minute.
    pub fn used(&mut self, now_ms: u64) -> usize {
        self.trim(now_ms);
        self.calls.len()
    }

    /// The state to keep, at `now_unix` (wall clock) and `now_ms` (the monotonic clock of
    /// [`Budget::take`]).
    pub fn state(&mut self, now_unix: i64, now_ms: u64) -> BudgetState {
        self.trim(now_ms);
        let now = self.shifted(now_ms);
        let mut calls: Vec<(u64, u32)> = Vec::new();
        for t in &self.calls {
            let ago = now.saturating_sub(*t) / 1000;
            match calls.last_mut() {
                Some((last, n)) if *last == ago => *n = n.saturating_add(1),
                _ => calls.push((ago, 1)),
            }
        }
        BudgetState {
            at: now_unix,
            calls,
            blocked_ms: self.blocked_until.saturating_sub(now_ms),
        }
    }

    /// Takes back a kept state at `now_unix` and `now_ms` (a new process's clocks), in place
    /// of the calls and block this budget holds (meant for a budget just made): its calls
    /// still in the window and its block still running count as if made here. The time since
    /// `state.at` is counted short by up to a second (both clocks read in whole seconds), so a
    /// call is never forgotten early; a wall clock set back counts no time at all. At most
    /// `limit` calls and an hour's block are taken (a damaged state spends no more than that).
    pub fn restore(&mut self, state: &BudgetState, now_unix: i64, now_ms: u64) {
        let secs = now_unix.saturating_sub(state.at).saturating_sub(1).max(0);
        let elapsed = u64::try_from(secs).unwrap_or(0).saturating_mul(1000);
        let now = self.shifted(now_ms);
        self.calls.clear();
        let mut room = self.limit;
        for (ago, n) in &state.calls {
            let age = ago.saturating_mul(1000).saturating_add(elapsed);
            if age < self.window_ms {
                let n = (*n).min(room);
                self.calls
                    .extend(std::iter::repeat_n(now - age, n as usize));
                room -= n;
            }
        }
        let blocked = state
            .blocked_ms
            .min(MAX_BLOCK_SECONDS * 1000)
            .saturating_sub(elapsed);
        self.blocked_until = now_ms.saturating_add(blocked);
    }
}

// ---- Webhooks ---------------------------------------------------------------------------

/// How far a webhook's timestamp may be from the relay's clock (Standard Webhooks: 300 s).
pub const WEBHOOK_TOLERANCE: i64 = 300;

/// Why a webhook was refused (a 4xx; nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRefusal {
    /// A header is missing or malformed.
    Headers,
    /// The timestamp is more than 300 s from the relay's clock.
    Timestamp,
    /// No signature verifies with the secret.
    Signature,
}

/// Whether a webhook secret is one a signature can be checked with: an empty one, or `whsec_`
/// with nothing after it, is a key everyone knows (anyone could sign with it).
pub fn webhook_secret_usable(secret: &str) -> bool {
    let secret = secret.trim();
    !secret.is_empty() && !secret.strip_prefix("whsec_").is_some_and(str::is_empty)
}

/// Verifies a delivery per Standard Webhooks before anything reads its body: a `v1,` signature
/// of `{id}.{timestamp}.{body}` under the secret in either form Polar's SDK accepts (the base64
/// after `whsec_`, or the secret's UTF-8 bytes), compared in constant time, and a timestamp
/// within 300 s of `now`.
pub fn verify_webhook(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookRefusal> {
    use ct_codecs::Decoder;
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(WebhookRefusal::Headers);
    };
    if !webhook_secret_usable(secret) {
        return Err(WebhookRefusal::Signature);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookRefusal::Headers)?;
    if now.abs_diff(ts) > WEBHOOK_TOLERANCE.unsigned_abs() {
        return Err(WebhookRefusal::Timestamp);
    }
    let mut keys: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let mut buf = vec![0u8; encoded.len()];
    if let Ok(decoded) = ct_codecs::Base64::decode(&mut buf, encoded, None) {
        if !decoded.is_empty() && decoded != secret.as_bytes() {
            keys.push(decoded.to_vec());
        }
    }
    for sig in signatures.split(' ') {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let mut raw = vec![0u8; b64.len()];
        let Ok(tag) = ct_codecs::Base64::decode(&mut raw, b64, None) else {
            continue;
        };
        for key in &keys {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.trim().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(WebhookRefusal::Signature)
}

/// What an event asks of the store: the entries it names, and how to narrow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// `l:<license key id>` and `c:<customer id>` tags.
    pub tags: Vec<String>,
    /// [`Mark::Revoked`] or [`Mark::Stale`].
    pub mark: Mark,
    /// When the change happened (unix seconds).
    pub at: i64,
}

/// Reads an event (after its signature verified): `None` for a type that changes nothing a
/// check answers (answered 2xx, nothing done).
pub fn narrowing(event: &serde_json::Value) -> Option<Narrowing> {
    let kind = event.get("type")?.as_str()?;
    let data = event.get("data")?;
    let at = ["modified_at", "revoked_at", "created_at"]
        .iter()
        .find_map(|f| data.get(*f).and_then(|v| v.as_str()).and_then(unix_of))
        .or_else(|| {
            event
                .get("timestamp")
                .and_then(|v| v.as_str())
                .and_then(unix_of)
        })
        .unwrap_or(0);
    let mut tags = Vec::new();
    let license = |v: Option<&serde_json::Value>| {
        v.and_then(|p| p.get("license_key_id"))
            .and_then(|l| l.as_str())
            .map(|l| format!("l:{l}"))
    };
    let mark = match kind {
        "benefit_grant.revoked" => Mark::Revoked,
        "benefit_grant.created" | "benefit_grant.updated" | "benefit_grant.cycled" => Mark::Stale,
        "subscription.canceled"
        | "subscription.revoked"
        | "subscription.active"
        | "subscription.past_due"
        | "subscription.updated"
        | "order.refunded"
        | "customer_seat.assigned"
        | "customer_seat.claimed"
        | "customer_seat.revoked" => Mark::Stale,
        _ => return None,
    };
    let customer = data
        .get("customer_id")
        .and_then(|c| c.as_str())
        .map(|c| format!("c:{c}"));
    if !kind.starts_with("benefit_grant.") {
        // A purchase event: every entry of the customer, asked again (never denied: what it
        // did to the customer's license keys is Polar's to say).
        return customer.map(|c| Narrowing {
            tags: vec![c],
            mark: Mark::Stale,
            at,
        });
    }
    // A grant of another benefit (Discord, a repository, downloads…) says nothing of keys.
    let benefit_type = data
        .get("benefit")
        .and_then(|b| b.get("type"))
        .and_then(|t| t.as_str());
    if benefit_type.is_some_and(|t| t != "license_keys") {
        return None;
    }
    // Only a license-key grant names a key, and only what it names is narrowed as it says.
    tags.extend(license(data.get("properties")));
    tags.extend(license(data.get("previous_properties")));
    if tags.is_empty() {
        // A license-key grant without its key's id (or of a benefit not named): the
        // customer's entries are asked again, never denied.
        return customer.map(|c| Narrowing {
            tags: vec![c],
            mark: Mark::Stale,
            at,
        });
    }
    Some(Narrowing { tags, mark, at })
}

fn unix_of(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Applies a narrowing to an entry: `None` when it changes nothing. A webhook never clears a
/// mark and never makes a denial a grant.
///
/// Polar delivers at least once and in any order (all the more to a relay that was down), so
/// an event is read against the newest applied about the same thing: an event naming the
/// entry's key against [`Entry::key_event_at`], any other (the customer's) against
/// [`Entry::customer_event_at`]. An older one changes nothing, except a revocation: older than
/// a newer event about its own key (a re-grant, an update), it still makes the entry stale (the
/// next check asks Polar), and no newer event about anything else (another key, the customer's
/// purchase) keeps it from denying.
pub fn narrowed(entry: &Entry, n: &Narrowing) -> Option<Entry> {
    let mut e = entry.clone();
    let names_key = entry
        .license_key_id
        .as_deref()
        .is_some_and(|l| n.tags.iter().any(|t| t.strip_prefix("l:") == Some(l)));
    let newest = if names_key {
        &mut e.key_event_at
    } else {
        &mut e.customer_event_at
    };
    let mark = if n.at >= *newest {
        *newest = n.at;
        n.mark
    } else if n.mark == Mark::Revoked {
        Mark::Stale
    } else {
        return None;
    };
    e.mark = match (entry.mark, mark) {
        (Mark::Revoked, _) | (_, Mark::Revoked) => Mark::Revoked,
        _ => Mark::Stale,
    };
    (e != *entry).then_some(e)
}

mod paged;
pub use paged::{Missing, PagedBackend, Wants, DEFAULT_CACHED};

#[cfg(all(feature = "durable", not(target_arch = "wasm32")))]
pub use durable::RedbBackend;

#[cfg(all(feature = "durable", not(target_arch = "wasm32")))]
mod durable {
    //! The crash-safe file: redb (a pure-Rust embedded store with copy-on-write B-trees and
    //! checksummed commits: a commit is durable when it returns, a `kill -9` or a power cut
    //! leaves the last committed state).

    use super::{
        tags, Backend, BudgetState, Entry, EntryId, StoreError, MAX_ENTRIES_PER_KEY,
        WEBHOOK_MEMORY_SECONDS,
    };
    use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
    use std::panic::AssertUnwindSafe;
    use std::path::Path;

    const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
    const INDEX: TableDefinition<&str, &[u8]> = TableDefinition::new("index");
    const WEBHOOKS: TableDefinition<&str, i64> = TableDefinition::new("webhooks");
    const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
    /// The file's format, refused when it is neither this nor [`FORMAT_1`].
    const FORMAT: &str = "polar-license-relay-store/2";
    /// The first format, whose entries held Polar's answer as it came (the whole license key
    /// and the customer's email): opened, its entries are dropped (asked again), its webhook
    /// ids kept.
    const FORMAT_1: &str = "polar-license-relay-store/1";
    /// The meta row of the file's format.
    const FORMAT_ROW: &str = "format";
    /// The meta row of a file refused as damaged (why), refused at every open after.
    const DAMAGED: &str = "damaged";
    /// The meta row counting the store's commits, compared across redb's check at open.
    const COMMITS: &str = "commits";
    /// The meta row of the token budget's state (JSON, a few hundred bytes at most).
    const BUDGET: &str = "budget";

    /// Entries in a file: every `put` and webhook is one committed transaction. The token
    /// budget's state rides on those commits; a call whose answer writes nothing (an
    /// activation, a 429, a 5xx) is one commit of that row alone ([`Backend::flush_budget`]):
    /// the budget bounds those commits as it bounds the calls.
    pub struct RedbBackend {
        db: Database,
        max_entries: usize,
        /// The budget's state not yet written.
        staged: std::sync::Mutex<Option<BudgetState>>,
        /// The file (its size: [`Backend::bytes`]).
        path: std::path::PathBuf,
    }

    impl std::fmt::Debug for RedbBackend {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedbBackend")
                .field("max_entries", &self.max_entries)
                .finish_non_exhaustive()
        }
    }

    fn err(what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError(format!("the verdict store: {what}: {e}"))
    }

    impl RedbBackend {
        /// Opens (or creates) the store at `path`. Every page of the file is checked against
        /// its checksum first: a damaged file (truncated, a bit flipped), or one that is not a
        /// verdict store, is refused with an error that says so, and stays refused (it is
        /// never read, nor repaired into an older state that would have forgotten a
        /// revocation already acknowledged). A file closed cleanly, or left by a `kill -9`,
        /// opens as it was last committed.
        pub fn open(path: &Path, max_entries: usize) -> Result<RedbBackend, StoreError> {
            let damaged = |e: &dyn std::fmt::Display| {
                StoreError(format!(
                    "the verdict store at {} is damaged ({e}): it is not read; move it away to \
                     start with an empty one",
                    path.display()
                ))
            };
            // redb asserts some of what it reads of a file's header (a truncated file stops
            // it with a panic): that is damage too, said as such.
            let unwound = "its header does not describe the file (truncated?)";
            let unreadable = "a page does not read as redb wrote it";
            let opened = std::panic::catch_unwind(AssertUnwindSafe(|| Database::create(path)));
            let mut db = match opened {
                Ok(Ok(db)) => db,
                Ok(Err(e)) => {
                    return Err(StoreError(format!(
                        "the verdict store at {} cannot be opened ({e}): it is not read; if it \
                         is damaged, move it away to start with an empty one",
                        path.display()
                    )))
                }
                Err(_) => return Err(damaged(&unwound)),
            };
            // redb reads some of what no checksum guards before its check (a tree's length,
            // a root that says it is empty) and panics on a page that does not read: until the
            // file is checked and prepared, every use of it is guarded, a panic refusing it.
            //
            // A file refused before stays refused (the check below may have rewritten it).
            // What the file says of itself is read before redb's check (which may rewrite it).
            let before = unwinding(|| -> Result<_, redb::Error> {
                Ok((read_meta(&db, DAMAGED)?, stamp(&db)?))
            });
            let before = match before {
                Some(Ok((None, before))) => before,
                Some(Ok((Some(why), _))) => return Err(refuse(db, damaged(&why))),
                Some(Err(e)) => return Err(refuse(db, damaged(&e))),
                None => return Err(refuse(db, damaged(&unreadable))),
            };
            match unwinding(|| db.check_integrity()) {
                Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    // Every page matched its checksum (under a two-phase commit, which every
                    // commit here is, a mismatch is an error) and redb rebuilt its own map of
                    // free pages. redb 3.1 does after most clean closes: the map it saves at a
                    // close predates its trim of the file's free tail. That changes no entry.
                    // A repair that went back to an older commit, or a header damaged to say
                    // the file holds nothing, would: the store's stamp (its format and count
                    // of commits) says which.
                    let after = match unwinding(|| stamp(&db)) {
                        Some(Ok(after)) => after,
                        Some(Err(e)) => return Err(refuse(db, damaged(&e))),
                        None => return Err(refuse(db, damaged(&unreadable))),
                    };
                    if before.format.is_none() || after != before {
                        let why = "redb's repair changed what the file holds";
                        let _ = unwinding(|| write_meta(&db, DAMAGED, why));
                        return Err(refuse(db, damaged(&why)));
                    }
                    log::debug!(
                        "relay: redb rebuilt the map of free pages of {} (no entry changed)",
                        path.display()
                    );
                }
                Some(Err(e)) => return Err(refuse(db, damaged(&e))),
                None => return Err(refuse(db, damaged(&unwound))),
            }
            match unwinding(|| prepare(&db, path)) {
                Some(Ok(())) => Ok(RedbBackend {
                    db,
                    max_entries: max_entries.max(1),
                    staged: std::sync::Mutex::default(),
                    path: path.to_path_buf(),
                }),
                Some(Err(e)) => Err(refuse(db, e)),
                None => Err(refuse(db, damaged(&unreadable))),
            }
        }

        /// A write transaction (see [`begin`]), counted in the meta table, carrying the
        /// budget's state staged (given back by [`RedbBackend::commit`] if it is not
        /// committed).
        fn write(&self) -> Result<(redb::WriteTransaction, Option<BudgetState>), StoreError> {
            let w = begin(&self.db).map_err(|e| err("write", e))?;
            let staged = self.staged().take();
            let written = (|| {
                let mut meta = w.open_table(META).map_err(|e| err("write", e))?;
                count_commit(&mut meta).map_err(|e| err("write", e))?;
                if let Some(state) = &staged {
                    let text = String::from(state.clone());
                    meta.insert(BUDGET, text.as_str())
                        .map_err(|e| err("write", e))?;
                }
                Ok(())
            })();
            match written {
                Ok(()) => Ok((w, staged)),
                Err(e) => {
                    self.unstage(staged);
                    Err(e)
                }
            }
        }

        /// Commits `w`; the budget's state it carried is staged again if the commit fails.
        fn commit(
            &self,
            w: redb::WriteTransaction,
            carried: Option<BudgetState>,
        ) -> Result<(), StoreError> {
            w.commit().map_err(|e| {
                self.unstage(carried);
                err("commit", e)
            })
        }

        fn staged(&self) -> std::sync::MutexGuard<'_, Option<BudgetState>> {
            self.staged.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// A state not written goes back, unless a newer one was staged since.
        fn unstage(&self, state: Option<BudgetState>) {
            let mut staged = self.staged();
            if staged.is_none() {
                *staged = state;
            }
        }
    }

    /// The file's format written (or a first-format file's entries dropped) and its tables
    /// made, in one commit.
    fn prepare(db: &Database, path: &Path) -> Result<(), StoreError> {
        let w = begin(db).map_err(|e| err("open", e))?;
        {
            let mut meta = w.open_table(META).map_err(|e| err("open", e))?;
            count_commit(&mut meta).map_err(|e| err("open", e))?;
            let format = meta
                .get(FORMAT_ROW)
                .map_err(|e| err("open", e))?
                .map(|v| v.value().to_string());
            match format.as_deref() {
                None => {
                    meta.insert(FORMAT_ROW, FORMAT)
                        .map_err(|e| err("open", e))?;
                }
                Some(FORMAT) => {}
                Some(FORMAT_1) => {
                    // Its answers held whole keys: dropped, and asked again.
                    w.delete_table(ENTRIES).map_err(|e| err("open", e))?;
                    w.delete_table(INDEX).map_err(|e| err("open", e))?;
                    meta.insert(FORMAT_ROW, FORMAT)
                        .map_err(|e| err("open", e))?;
                    log::warn!(
                        "relay: the verdict store at {} was written by an older relay (its \
                         answers held license keys): its entries are dropped",
                        path.display()
                    );
                }
                Some(f) => {
                    return Err(StoreError(format!(
                        "{} is not a verdict store of this relay (format {f})",
                        path.display()
                    )))
                }
            }
            w.open_table(ENTRIES).map_err(|e| err("open", e))?;
            w.open_table(INDEX).map_err(|e| err("open", e))?;
            w.open_table(WEBHOOKS).map_err(|e| err("open", e))?;
        }
        w.commit().map_err(|e| err("open", e))
    }

    /// `f`, or `None` when it panicked (redb asserts on some pages that do not read).
    fn unwinding<T>(f: impl FnOnce() -> T) -> Option<T> {
        std::panic::catch_unwind(AssertUnwindSafe(f)).ok()
    }

    /// What a file says of itself, compared across redb's check at open.
    #[derive(PartialEq, Eq)]
    struct Stamp {
        /// Its format (`None`: a file that holds nothing of a store).
        format: Option<String>,
        /// The count of the store's commits (`None` in a file written before it was kept).
        commits: Option<String>,
    }

    fn stamp(db: &Database) -> Result<Stamp, redb::Error> {
        Ok(Stamp {
            format: read_meta(db, FORMAT_ROW)?,
            commits: read_meta(db, COMMITS)?,
        })
    }

    /// The error of a file refused after it was opened: redb's own drop of a file it could not
    /// check or repair asserts too, so the drop's panic is caught.
    fn refuse(db: Database, e: StoreError) -> StoreError {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(db)));
        e
    }

    /// A write transaction committed in two phases: a later commit whose pages do not match
    /// their checksums is then damage, never a torn write to roll back silently.
    fn begin(db: &Database) -> Result<redb::WriteTransaction, redb::Error> {
        let mut w = db.begin_write()?;
        w.set_two_phase_commit(true);
        Ok(w)
    }

    /// Counts one more commit of the store's own (none of redb's): a repair that keeps the
    /// count kept every entry.
    fn count_commit(meta: &mut redb::Table<&str, &str>) -> Result<(), redb::Error> {
        let n = meta
            .get(COMMITS)?
            .and_then(|v| v.value().parse::<u64>().ok())
            .unwrap_or(0);
        meta.insert(COMMITS, n.wrapping_add(1).to_string().as_str())?;
        Ok(())
    }

    fn read_meta(db: &Database, name: &str) -> Result<Option<String>, redb::Error> {
        let r = db.begin_read()?;
        let meta = match r.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let value = meta.get(name)?.map(|v| v.value().to_string());
        Ok(value)
    }

    fn write_meta(db: &Database, name: &str, value: &str) -> Result<(), redb::Error> {
        let w = begin(db)?;
        {
            let mut meta = w.open_table(META)?;
            meta.insert(name, value)?;
        }
        w.commit()?;
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Entry, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| err("an entry does not read back", e))
    }

    fn write_entry(
        entries: &mut redb::Table<&[u8], &[u8]>,
        index: &mut redb::Table<&str, &[u8]>,
        id: &EntryId,
        entry: &Entry,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| err("write", e))?;
        entries
            .insert(&id[..], &bytes[..])
            .map_err(|e| err("write", e))?;
        for tag in tags(entry) {
            let mut ids = index
                .get(tag.as_str())
                .map_err(|e| err("write", e))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            if !ids.chunks(32).any(|c| c == &id[..]) {
                ids.extend_from_slice(&id[..]);
                index
                    .insert(tag.as_str(), &ids[..])
                    .map_err(|e| err("write", e))?;
            }
        }
        Ok(())
    }

    /// Past `max` entries, the oldest sixteenth (at least what is over) in one pass, each
    /// with its index rows (else the file would grow without bound).
    fn evict(
        entries: &mut redb::Table<&[u8], &[u8]>,
        index: &mut redb::Table<&str, &[u8]>,
        max: usize,
    ) -> Result<(), StoreError> {
        let len = entries.len().map_err(|e| err("write", e))? as usize;
        if len <= max {
            return Ok(());
        }
        let mut ages: Vec<(i64, Vec<u8>, Vec<String>)> = Vec::with_capacity(len);
        for item in entries.iter().map_err(|e| err("evict", e))? {
            let (k, v) = item.map_err(|e| err("evict", e))?;
            let old = decode(v.value())?;
            ages.push((old.answered_at, k.value().to_vec(), tags(&old)));
        }
        ages.sort_unstable();
        let drop = (len - max).max(len / 16).max(1);
        for (_, k, tags) in ages.into_iter().take(drop) {
            entries.remove(&k[..]).map_err(|e| err("evict", e))?;
            for tag in tags {
                unindex(index, &tag, &k)?;
            }
        }
        Ok(())
    }

    /// Past [`MAX_ENTRIES_PER_KEY`] entries of `entry`'s key, its oldest others go (each
    /// with its index rows): only the key's entries are read.
    fn cap_key(
        entries: &mut redb::Table<&[u8], &[u8]>,
        index: &mut redb::Table<&str, &[u8]>,
        id: &EntryId,
        entry: &Entry,
    ) -> Result<(), StoreError> {
        let Some(tag) = &entry.key_tag else {
            return Ok(());
        };
        let ids = index
            .get(tag.as_str())
            .map_err(|e| err("read", e))?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        let count = ids.len() / 32;
        if count <= MAX_ENTRIES_PER_KEY {
            return Ok(());
        }
        let mut ages: Vec<(i64, Vec<u8>, Vec<String>)> = Vec::with_capacity(count);
        for k in ids.chunks_exact(32).filter(|k| *k != &id[..]) {
            if let Some(v) = entries.get(k).map_err(|e| err("read", e))? {
                let old = decode(v.value())?;
                ages.push((old.answered_at, k.to_vec(), tags(&old)));
            }
        }
        ages.sort_unstable();
        for (_, k, tags) in ages.into_iter().take(count - MAX_ENTRIES_PER_KEY) {
            entries.remove(&k[..]).map_err(|e| err("evict", e))?;
            for tag in tags {
                unindex(index, &tag, &k)?;
            }
        }
        Ok(())
    }

    /// Takes the id `k` out of the index row `tag` (the row goes when it names nothing).
    fn unindex(
        index: &mut redb::Table<&str, &[u8]>,
        tag: &str,
        k: &[u8],
    ) -> Result<(), StoreError> {
        let ids = index
            .get(tag)
            .map_err(|e| err("evict", e))?
            .map(|v| v.value().to_vec());
        let Some(ids) = ids else {
            return Ok(());
        };
        let kept: Vec<u8> = ids
            .chunks(32)
            .filter(|c| *c != k)
            .flatten()
            .copied()
            .collect();
        if kept.is_empty() {
            index.remove(tag).map_err(|e| err("evict", e))?;
        } else if kept.len() != ids.len() {
            index.insert(tag, &kept[..]).map_err(|e| err("evict", e))?;
        }
        Ok(())
    }

    impl Backend for RedbBackend {
        fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
            let r = self.db.begin_read().map_err(|e| err("read", e))?;
            let t = r.open_table(ENTRIES).map_err(|e| err("read", e))?;
            match t.get(&id[..]).map_err(|e| err("read", e))? {
                Some(v) => decode(v.value()).map(Some),
                None => Ok(None),
            }
        }

        fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
            self.update(id, &mut |_| Some(entry.clone())).map(|_| ())
        }

        /// One write transaction: the entry read in it (redb has one writer at a time, so
        /// nothing commits between the read and the write), written, the oldest evicted.
        fn update(
            &self,
            id: &EntryId,
            f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
        ) -> Result<Option<Entry>, StoreError> {
            let (w, carried) = self.write()?;
            let written = (|| {
                let mut entries = w.open_table(ENTRIES).map_err(|e| err("write", e))?;
                let mut index = w.open_table(INDEX).map_err(|e| err("write", e))?;
                let current = match entries.get(&id[..]).map_err(|e| err("read", e))? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                let Some(entry) = f(current.as_ref()) else {
                    return Ok(None);
                };
                write_entry(&mut entries, &mut index, id, &entry)?;
                cap_key(&mut entries, &mut index, id, &entry)?;
                evict(&mut entries, &mut index, self.max_entries)?;
                Ok(Some(entry))
            })();
            match written {
                Ok(Some(entry)) => self.commit(w, carried).map(|()| Some(entry)),
                // Nothing to write: the budget's state waits for the next commit.
                other => {
                    self.unstage(carried);
                    other
                }
            }
        }

        /// One write transaction: the webhook id looked up, each entry named read, narrowed
        /// and written, the id remembered.
        fn narrow(
            &self,
            webhook: Option<(&str, i64)>,
            tags: &[String],
            f: &mut dyn FnMut(&Entry) -> Option<Entry>,
        ) -> Result<Option<usize>, StoreError> {
            let (w, carried) = self.write()?;
            let written = (|| {
                let mut hooks = w.open_table(WEBHOOKS).map_err(|e| err("write", e))?;
                if let Some((webhook_id, _)) = webhook {
                    if hooks.get(webhook_id).map_err(|e| err("read", e))?.is_some() {
                        return Ok(None);
                    }
                }
                let mut entries = w.open_table(ENTRIES).map_err(|e| err("write", e))?;
                let mut index = w.open_table(INDEX).map_err(|e| err("write", e))?;
                let mut seen: Vec<Vec<u8>> = Vec::new();
                let mut n = 0;
                for tag in tags {
                    let ids = index
                        .get(tag.as_str())
                        .map_err(|e| err("read", e))?
                        .map(|v| v.value().to_vec())
                        .unwrap_or_default();
                    for k in ids.chunks_exact(32) {
                        if seen.iter().any(|s| s == k) {
                            continue;
                        }
                        seen.push(k.to_vec());
                        let Ok(id) = <EntryId>::try_from(k) else {
                            continue;
                        };
                        let current = match entries.get(&id[..]).map_err(|e| err("read", e))? {
                            Some(v) => decode(v.value())?,
                            None => continue,
                        };
                        if let Some(e) = f(&current) {
                            write_entry(&mut entries, &mut index, &id, &e)?;
                            n += 1;
                        }
                    }
                }
                if let Some((webhook_id, at)) = webhook {
                    hooks
                        .retain(|_, seen| seen > at - WEBHOOK_MEMORY_SECONDS)
                        .map_err(|e| err("write", e))?;
                    hooks.insert(webhook_id, at).map_err(|e| err("write", e))?;
                }
                Ok(Some(n))
            })();
            match written {
                Ok(Some(n)) if n > 0 || webhook.is_some() => {
                    self.commit(w, carried).map(|()| Some(n))
                }
                // A repeat, or nothing changed: nothing written (the transaction dropped).
                other => {
                    self.unstage(carried);
                    other
                }
            }
        }

        fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
            let r = self.db.begin_read().map_err(|e| err("read", e))?;
            let t = r.open_table(INDEX).map_err(|e| err("read", e))?;
            let bytes = t
                .get(tag)
                .map_err(|e| err("read", e))?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            Ok(bytes
                .chunks_exact(32)
                .filter_map(|c| <[u8; 32]>::try_from(c).ok())
                .collect())
        }

        fn apply_webhook(
            &self,
            webhook_id: &str,
            at: i64,
            updates: &[(EntryId, Entry)],
        ) -> Result<bool, StoreError> {
            let (w, carried) = self.write()?;
            let written = (|| {
                let mut hooks = w.open_table(WEBHOOKS).map_err(|e| err("write", e))?;
                if hooks.get(webhook_id).map_err(|e| err("read", e))?.is_some() {
                    return Ok(false);
                }
                let mut entries = w.open_table(ENTRIES).map_err(|e| err("write", e))?;
                let mut index = w.open_table(INDEX).map_err(|e| err("write", e))?;
                for (id, entry) in updates {
                    write_entry(&mut entries, &mut index, id, entry)?;
                }
                hooks
                    .retain(|_, seen| seen > at - WEBHOOK_MEMORY_SECONDS)
                    .map_err(|e| err("write", e))?;
                hooks.insert(webhook_id, at).map_err(|e| err("write", e))?;
                Ok(true)
            })();
            match written {
                Ok(true) => self.commit(w, carried).map(|()| true),
                // A repeat: nothing written (the transaction dropped).
                other => {
                    self.unstage(carried);
                    other
                }
            }
        }

        fn len(&self) -> Result<usize, StoreError> {
            let r = self.db.begin_read().map_err(|e| err("read", e))?;
            let t = r.open_table(ENTRIES).map_err(|e| err("read", e))?;
            Ok(t.len().map_err(|e| err("read", e))? as usize)
        }

        fn bytes(&self) -> Option<u64> {
            std::fs::metadata(&self.path).ok().map(|m| m.len())
        }

        fn tags_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            let r = self.db.begin_read().map_err(|e| err("read", e))?;
            let t = r.open_table(INDEX).map_err(|e| err("read", e))?;
            let mut tags = Vec::new();
            for row in t.range(prefix..).map_err(|e| err("read", e))? {
                let (tag, _) = row.map_err(|e| err("read", e))?;
                if !tag.value().starts_with(prefix) {
                    break;
                }
                tags.push(tag.value().to_string());
            }
            Ok(tags)
        }

        fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
            let r = self.db.begin_read().map_err(|e| err("read", e))?;
            let t = r.open_table(WEBHOOKS).map_err(|e| err("read", e))?;
            let mut last = None;
            for row in t.iter().map_err(|e| err("read", e))? {
                let (_, at) = row.map_err(|e| err("read", e))?;
                last = last.max(Some(at.value()));
            }
            Ok(last)
        }

        fn stage_budget(&self, state: BudgetState) {
            *self.staged() = Some(state);
        }

        fn flush_budget(&self) -> Result<(), StoreError> {
            if self.staged().is_none() {
                return Ok(());
            }
            let (w, carried) = self.write()?;
            if carried.is_none() {
                // Another write carried it meanwhile: nothing to commit.
                return Ok(());
            }
            self.commit(w, carried)
        }

        fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
            let Some(text) = read_meta(&self.db, BUDGET).map_err(|e| err("read", e))? else {
                return Ok(None);
            };
            match BudgetState::try_from(text) {
                Ok(state) => Ok(Some(state)),
                Err(e) => {
                    log::warn!("relay: {e}: the token budget starts empty");
                    Ok(None)
                }
            }
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    mod tests {
        use super::*;
        use crate::store::Mark;

        fn entry(i: usize) -> Entry {
            Entry {
                license_key_id: Some(format!("L{i}")),
                customer_id: Some(format!("C{i}")),
                answered_at: i as i64,
                status: 200,
                body: "{}".into(),
                headers: vec![],
                grant: true,
                mark: Mark::None,
                customer_event_at: 0,
                key_event_at: 0,
                marked_at: 0,
                key_at: None,
                key_tag: None,
            }
        }

        #[test]
        fn a_keys_entries_are_capped_in_the_file() {
            let dir = polar_license_testkit::ScratchDir::new("redb-per-key");
            let b = RedbBackend::open(&dir.path().join("cap.redb"), 1_000).expect("opened");
            crate::store::tests::caps_entries_per_key(&b);
        }

        fn index_rows(b: &RedbBackend) -> u64 {
            let r = b.db.begin_read().expect("read");
            r.open_table(INDEX).expect("index").len().expect("len")
        }

        /// A file of the first format (its answers held whole keys): its entries are dropped
        /// at open, its webhook ids kept, and it is written as the current format.
        #[test]
        fn a_first_format_file_loses_its_entries_and_keeps_its_webhook_ids() {
            let dir = polar_license_testkit::ScratchDir::new("redb-format-1");
            let path = dir.path().join("old.redb");
            {
                let db = Database::create(&path).expect("create");
                let w = db.begin_write().expect("write");
                {
                    let mut meta = w.open_table(META).expect("meta");
                    meta.insert("format", FORMAT_1).expect("format");
                    let mut entries = w.open_table(ENTRIES).expect("entries");
                    let mut old = entry(1);
                    old.body = r#"{"key":"OLD-WHOLE-KEY"}"#.into();
                    let bytes = serde_json::to_vec(&old).expect("json");
                    entries.insert(&[1u8; 32][..], &bytes[..]).expect("entry");
                    let mut index = w.open_table(INDEX).expect("index");
                    index.insert("l:L1", &[1u8; 32][..]).expect("row");
                    let mut hooks = w.open_table(WEBHOOKS).expect("hooks");
                    hooks.insert("evt-old", 5).expect("hook");
                }
                w.commit().expect("commit");
            }
            let b = RedbBackend::open(&path, 8).expect("opened");
            assert_eq!(b.len().expect("len"), 0);
            assert!(b.index("l:L1").expect("index").is_empty());
            assert!(!b.apply_webhook("evt-old", 6, &[]).expect("seen"), "kept");
            drop(b);
            let db = Database::create(&path).expect("reopen");
            assert_eq!(
                read_meta(&db, FORMAT_ROW).expect("meta").as_deref(),
                Some(FORMAT)
            );
        }

        /// What each event was about survives a restart: the customer's newer event does not
        /// hide the key's older revocation after the file is reopened, the key's newer
        /// re-grant still makes it only a re-check.
        #[test]
        fn what_events_were_about_survives_a_restart() {
            use crate::store::{narrowed, Narrowing};
            let dir = polar_license_testkit::ScratchDir::new("redb-order");
            let path = dir.path().join("order.redb");
            let event = |tag: &str, mark: Mark, at: i64| Narrowing {
                tags: vec![tag.to_string()],
                mark,
                at,
            };
            let (t1, t2) = (1_000, 2_000);
            {
                let b = RedbBackend::open(&path, 8).expect("open");
                let purchase = narrowed(&entry(1), &event("c:C1", Mark::Stale, t2)).expect("1");
                let regrant = narrowed(&entry(2), &event("l:L2", Mark::Stale, t2)).expect("2");
                // Polar answered since: the marks gone, the events' times kept.
                let answered = |e: Entry| Entry {
                    mark: Mark::None,
                    ..e
                };
                let updates = [
                    ([1u8; 32], answered(purchase)),
                    ([2u8; 32], answered(regrant)),
                ];
                assert!(b.apply_webhook("evt", t2, &updates).expect("applied"));
            }
            let b = RedbBackend::open(&path, 8).expect("reopened");
            let get = |i: u8| b.get(&[i; 32]).expect("read").expect("kept");
            let revoked = narrowed(&get(1), &event("l:L1", Mark::Revoked, t1));
            assert_eq!(revoked.map(|e| e.mark), Some(Mark::Revoked));
            let rechecked = narrowed(&get(2), &event("l:L2", Mark::Revoked, t1));
            assert_eq!(rechecked.map(|e| e.mark), Some(Mark::Stale));
        }

        /// A file closed cleanly (the store dropped) after two writes reopens, and answers
        /// what it held.
        #[test]
        fn a_cleanly_closed_file_reopens_after_two_writes() {
            let dir = polar_license_testkit::ScratchDir::new("redb-clean-two");
            let path = dir.path().join("clean.redb");
            {
                let b = RedbBackend::open(&path, 8).expect("open");
                b.put(&[1u8; 32], &entry(1)).expect("put 1");
                b.put(&[2u8; 32], &entry(2)).expect("put 2");
            }
            for attempt in 0..3 {
                let b = RedbBackend::open(&path, 8)
                    .unwrap_or_else(|e| panic!("reopened ({attempt}): {e}"));
                assert_eq!(b.get(&[1u8; 32]).expect("read"), Some(entry(1)));
                assert_eq!(b.get(&[2u8; 32]).expect("read"), Some(entry(2)));
                assert_eq!(b.index("l:L2").expect("index"), vec![[2u8; 32]]);
            }
        }

        /// The same through many puts, evictions and webhook ids, closed cleanly and reopened
        /// again and again: every reopen answers what the last close held.
        #[test]
        fn a_cleanly_closed_file_reopens_after_evictions_and_webhooks() {
            let dir = polar_license_testkit::ScratchDir::new("redb-clean-many");
            let path = dir.path().join("clean.redb");
            let id = |i: usize| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                id
            };
            let mut next = 0;
            // As many puts per run as a relay might make (redb's trim at a close depends on
            // where the free pages fall).
            for (round, puts) in [40, 1, 3, 100, 5, 2, 8, 9].into_iter().enumerate() {
                let b = RedbBackend::open(&path, 8)
                    .unwrap_or_else(|e| panic!("reopened (round {round}): {e}"));
                if round > 0 {
                    // What the last round left: its newest entries, its webhook ids.
                    let last = next - 1;
                    let marked = b.get(&id(last)).expect("read").expect("kept");
                    assert_eq!(
                        (marked.answered_at, marked.mark),
                        (last as i64, Mark::Stale)
                    );
                    assert_eq!(b.index(&format!("l:L{last}")).expect("index"), [id(last)]);
                    assert!(b.len().expect("len") <= 8);
                    let seen = format!("evt-{}", round - 1);
                    assert!(!b.apply_webhook(&seen, 10, &[]).expect("seen"), "{seen}");
                }
                for _ in 0..puts {
                    b.put(&id(next), &entry(next)).expect("put");
                    next += 1;
                }
                let marked = Entry {
                    mark: Mark::Stale,
                    ..entry(next - 1)
                };
                let hook = format!("evt-{round}");
                assert!(b
                    .apply_webhook(&hook, 10, &[(id(next - 1), marked.clone())])
                    .expect("applied"));
                assert_eq!(b.get(&id(next - 1)).expect("read"), Some(marked));
            }
        }

        /// A cleanly closed file whose header was damaged where redb compares no checksum
        /// before its check (its header is rewritten at every open): the commit slot's "the
        /// tables' root is set" flag cleared (the file would read as an empty store), or the
        /// length of its system tree changed (redb panics on it). Refused as damaged, at
        /// every open, without a panic.
        #[test]
        fn a_damaged_header_is_refused_never_read_as_empty() {
            let dir = polar_license_testkit::ScratchDir::new("redb-header");
            let path = dir.path().join("clean.redb");
            {
                let b = RedbBackend::open(&path, 8).expect("open");
                for i in 0..5u8 {
                    b.put(&[i; 32], &entry(i.into())).expect("put");
                }
            }
            drop(RedbBackend::open(&path, 8).expect("reopened"));
            let bytes = std::fs::read(&path).expect("the file");
            // redb 3's header: the god byte's bit 0 names the primary of the two commit slots
            // (128 bytes each from byte 64); in a slot, byte 1 says the tables' root is set,
            // bytes 40..72 are the system tree's root (page, checksum, length).
            let slot = 64 + 128 * usize::from(bytes[9] & 1);
            let mut emptied = bytes.clone();
            emptied[slot + 1] = 0;
            let mut lengthened = bytes.clone();
            lengthened[slot + 64] ^= 0x80;
            for (name, damaged) in [("emptied", emptied), ("lengthened", lengthened)] {
                let path = dir.path().join(format!("{name}.redb"));
                std::fs::write(&path, damaged).expect("write");
                for attempt in 0..2 {
                    let e = std::panic::catch_unwind(|| RedbBackend::open(&path, 8))
                        .unwrap_or_else(|_| panic!("{name} {attempt}: open panicked"))
                        .expect_err(name);
                    assert!(e.to_string().contains("damaged"), "{name} {attempt}: {e}");
                }
            }
        }

        /// The budget's state rides on a put's commit (and a webhook's), is written alone by
        /// a flush when no write carried it, survives a repeated webhook id (nothing written),
        /// and is read back after the file is reopened.
        #[test]
        fn the_budgets_state_rides_on_commits_and_survives_a_reopen() {
            let dir = polar_license_testkit::ScratchDir::new("redb-budget");
            let path = dir.path().join("budget.redb");
            let state = |n: u32| BudgetState {
                at: 100,
                calls: vec![(0, n)],
                blocked_ms: 5,
            };
            let commits = |b: &RedbBackend| read_meta(&b.db, COMMITS).expect("meta");
            {
                let b = RedbBackend::open(&path, 8).expect("open");
                assert_eq!(b.load_budget().expect("load"), None);
                b.stage_budget(state(1));
                b.put(&[1u8; 32], &entry(1)).expect("put");
                assert_eq!(b.load_budget().expect("load"), Some(state(1)));
                let before = commits(&b);
                b.flush_budget().expect("nothing to flush");
                assert_eq!(commits(&b), before, "no commit when a put carried it");
                assert!(b.apply_webhook("evt", 10, &[]).expect("applied"));
                b.stage_budget(state(2));
                assert!(!b.apply_webhook("evt", 10, &[]).expect("a repeat"));
                assert_eq!(b.load_budget().expect("load"), Some(state(1)));
                b.flush_budget().expect("flush");
                assert_eq!(b.load_budget().expect("load"), Some(state(2)));
                b.stage_budget(state(3));
                assert!(b.apply_webhook("evt-2", 10, &[]).expect("applied"));
                b.stage_budget(state(4));
                b.flush_budget().expect("flush");
            }
            let b = RedbBackend::open(&path, 8).expect("reopened");
            assert_eq!(b.load_budget().expect("load"), Some(state(4)));
            assert_eq!(b.get(&[1u8; 32]).expect("read"), Some(entry(1)));
        }

        /// Eviction takes an entry's index rows with it: many keys through a small store
        /// leave as many rows as entries, and a file that stops growing.
        #[test]
        fn eviction_removes_index_rows_and_the_file_stays_bounded() {
            let dir = polar_license_testkit::ScratchDir::new("redb-bound");
            let path = dir.path().join("bound.redb");
            let b = RedbBackend::open(&path, 8).expect("open");
            let mut id = [0u8; 32];
            let mut put = |i: usize| {
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                b.put(&id, &entry(i)).expect("put");
            };
            for i in 0..200 {
                put(i);
            }
            let size = std::fs::metadata(&path).expect("size").len();
            for i in 200..1_200 {
                put(i);
            }
            assert!(b.len().expect("len") <= 8);
            assert!(
                b.index("l:L0").expect("index").is_empty(),
                "an evicted key's row"
            );
            assert!(
                b.index("c:C10").expect("index").is_empty(),
                "an evicted customer's row"
            );
            assert_eq!(b.index("l:L1199").expect("index").len(), 1);
            let rows = index_rows(&b);
            assert!(rows <= 2 * 8, "{rows} index rows for at most 8 entries");
            let grown = std::fs::metadata(&path).expect("size").len();
            assert!(
                grown <= size + size / 2,
                "the file grew from {size} to {grown} bytes"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_never_spends_more_than_its_minute_and_keeps_the_reserve() {
        let mut b = Budget::new(10, 2);
        for i in 0..8 {
            assert_eq!(b.take(i, false), Ok(()));
        }
        // Validates are out: the reserve is for activations.
        assert!(b.take(100, false).is_err());
        assert_eq!(b.take(100, true), Ok(()));
        assert_eq!(b.take(100, true), Ok(()));
        assert_eq!(b.take(100, true), Err(60));
        // Reserved calls count against the whole budget: a minute after the first validates,
        // only the two reserved calls remain in the window, and validates pass again.
        assert_eq!(b.take(60_000, false), Err(1));
        assert_eq!(b.take(60_050, false), Ok(()));
        // Polar's 429 stops everything for its Retry-After.
        b.learn(61_000, Some(30));
        assert!(b.take(200_000, true).is_ok());
        let mut c = Budget::new(10, 2);
        c.learn(0, Some(30));
        assert_eq!(c.take(1_000, true), Err(29));
        assert_eq!(c.take(30_000, true), Ok(()));
    }

    /// Spend `n` calls (validates) from monotonic ms `from`, one a ms.
    fn spent(limit: u32, reserve: u32, n: u64, from: u64) -> Budget {
        let mut b = Budget::new(limit, reserve);
        for i in 0..n {
            assert_eq!(b.take(from + i, false), Ok(()));
        }
        b
    }

    /// Validates taken until one is refused.
    fn validates_left(b: &mut Budget, now_ms: u64) -> u32 {
        let mut n = 0;
        while b.take(now_ms, false).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn a_restored_budget_has_the_room_its_last_run_left() {
        // 6 calls at wall second 1000 (monotonic 50_000 in that run); the state kept then.
        let mut old = spent(10, 2, 6, 50_000);
        let state = old.state(1_000, 50_010);
        assert_eq!(state.calls, vec![(0, 6)]);
        assert_eq!(state.blocked_ms, 0);
        let json = serde_json::to_string(&state).expect("json");
        assert_eq!(json, r#""1000 0 0:6""#);
        let state: BudgetState = serde_json::from_str(&json).expect("back");
        // A new process 10 s later: its monotonic clock at 0. The validates' share (8) less 6.
        let mut new = Budget::new(10, 2);
        new.restore(&state, 1_010, 0);
        assert_eq!(new.used(0), 6);
        assert_eq!(validates_left(&mut new, 0), 2);
        // Until the minute of those calls has passed (counted short by a second at most).
        let mut new = Budget::new(10, 2);
        new.restore(&state, 1_010, 0);
        assert_eq!(new.used(49_000), 6, "still within the minute of the calls");
        assert_eq!(new.used(51_000), 0, "the minute passed");
        // Restored after the window: nothing.
        let mut late = Budget::new(10, 2);
        late.restore(&state, 1_062, 0);
        assert_eq!(validates_left(&mut late, 0), 8);
        // A wall clock set back counts no time: the calls as just made.
        let mut back = Budget::new(10, 2);
        back.restore(&state, 900, 7);
        assert_eq!(back.used(59_000), 6);
        assert_eq!(back.used(60_007), 0);
    }

    #[test]
    fn polars_429_is_restored_until_its_retry_after() {
        let mut b = Budget::new(10, 2);
        b.learn(5_000, Some(30));
        let state = b.state(2_000, 5_000);
        assert_eq!(state.blocked_ms, 30_000);
        let mut new = Budget::new(10, 2);
        new.restore(&state, 2_010, 0);
        // 10 s later by the wall clock (counted as 9): 21 s of the block remain.
        assert_eq!(new.take(0, true), Err(21));
        assert_eq!(new.take(20_999, true), Err(1));
        assert_eq!(new.take(21_000, true), Ok(()));
        // Past it, nothing blocks.
        let mut later = Budget::new(10, 2);
        later.restore(&state, 2_031, 0);
        assert_eq!(later.take(0, true), Ok(()));
    }

    #[test]
    fn a_budgets_state_is_bounded_and_a_damaged_one_spends_no_more_than_the_budget() {
        // A call every 100 ms for a minute, of a budget of 1,000: at most one pair a second.
        let mut b = Budget::new(1_000, 0);
        for i in 0..600 {
            assert_eq!(b.take(i * 100, true), Ok(()));
        }
        let state = b.state(0, 59_999);
        assert_eq!(state.calls.len(), 60);
        assert_eq!(state.calls.iter().map(|(_, n)| n).sum::<u32>(), 600);
        assert!(serde_json::to_string(&state).expect("json").len() < 500);
        for bad in [
            "", "1", "1 x", "1 0 3", "1 0 3:", "1 0 :3", "1 0 3:-1", "1  0",
        ] {
            assert!(BudgetState::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        // A state claiming more calls than the budget and a block of days: the budget and an
        // hour at most.
        let damaged = BudgetState {
            at: 0,
            calls: vec![(3, u32::MAX), (1, u32::MAX)],
            blocked_ms: 86_400_000,
        };
        let mut b = Budget::new(10, 2);
        b.restore(&damaged, 0, 0);
        assert_eq!(b.used(0), 10);
        assert_eq!(b.take(0, true), Err(3_600));
    }

    #[test]
    fn a_webhook_only_narrows_and_an_older_one_changes_nothing() {
        let entry = Entry {
            license_key_id: Some("L".into()),
            customer_id: None,
            answered_at: 100,
            status: 200,
            body: "{}".into(),
            headers: vec![],
            grant: true,
            mark: Mark::None,
            customer_event_at: 0,
            key_event_at: 0,
            marked_at: 0,
            key_at: None,
            key_tag: None,
        };
        let revoke = Narrowing {
            tags: vec!["l:L".into()],
            mark: Mark::Revoked,
            at: 50,
        };
        let revoked = narrowed(&entry, &revoke).expect("narrowed");
        assert_eq!(revoked.mark, Mark::Revoked);
        assert!(revoked.grant, "the stored answer is kept; the mark denies");
        // A later re-grant cannot lift a revocation: only Polar's own answer replaces it.
        let regrant = Narrowing {
            tags: vec!["l:L".into()],
            mark: Mark::Stale,
            at: 60,
        };
        assert_eq!(
            narrowed(&revoked, &regrant).map(|e| e.mark),
            Some(Mark::Revoked)
        );
        // An event older than the newest applied changes nothing.
        let old = Narrowing { at: 10, ..regrant };
        assert_eq!(narrowed(&revoked, &old), None);
    }

    /// A key's entry, untouched by webhooks.
    fn key_entry() -> Entry {
        Entry {
            license_key_id: Some("L".into()),
            customer_id: Some("C".into()),
            answered_at: 100,
            status: 200,
            body: "{}".into(),
            headers: vec![],
            grant: true,
            mark: Mark::None,
            customer_event_at: 0,
            key_event_at: 0,
            marked_at: 0,
            key_at: None,
            key_tag: None,
        }
    }

    /// Polar's event of `kind` at `at` (unix seconds): about the key `L` when `key` is true,
    /// else about the customer `C` (a purchase event, or a license-key grant without a key id).
    fn about(kind: &str, key: bool, at: i64) -> Narrowing {
        let when = time::OffsetDateTime::from_unix_timestamp(at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .expect("a time");
        let properties = if key {
            serde_json::json!({"license_key_id": "L"})
        } else {
            serde_json::json!({})
        };
        narrowing(&serde_json::json!({"type": kind, "timestamp": when,
            "data": {"modified_at": when, "customer_id": "C",
                     "benefit": {"type": "license_keys"}, "properties": properties}}))
        .expect("a narrowing")
    }

    /// Applies events in the order delivered (an event that changes nothing leaves it).
    fn delivered(entry: &Entry, events: &[Narrowing]) -> Entry {
        events
            .iter()
            .fold(entry.clone(), |e, n| narrowed(&e, n).unwrap_or(e))
    }

    /// Polar's answer stored since: its mark gone, what webhooks were applied kept (as the
    /// relay stores an answer).
    fn answered(entry: &Entry) -> Entry {
        Entry {
            mark: Mark::None,
            marked_at: 0,
            ..entry.clone()
        }
    }

    #[test]
    fn a_revocation_is_ignored_only_for_a_newer_event_about_its_own_key() {
        let entry = key_entry();
        let (t1, t2) = (1_000, 2_000);
        // A customer-level event at t2 delivered first: the key's revocation at t1 denies,
        // whether or not Polar answered in between.
        for customer in [
            about("subscription.canceled", false, t2),
            about("order.refunded", false, t2),
            about("benefit_grant.updated", false, t2),
        ] {
            let after = delivered(&entry, &[customer]);
            for e in [after.clone(), answered(&after)] {
                let revoked = delivered(&e, &[about("benefit_grant.revoked", true, t1)]);
                assert_eq!(revoked.mark, Mark::Revoked, "{e:?}");
            }
        }
        // The same key re-granted at t2: its revocation at t1 is not a denial, only a re-check
        // (also once Polar answered after the re-grant).
        let regranted = delivered(&entry, &[about("benefit_grant.updated", true, t2)]);
        for e in [regranted.clone(), answered(&regranted)] {
            let late = delivered(&e, &[about("benefit_grant.revoked", true, t1)]);
            assert_eq!(late.mark, Mark::Stale, "{e:?}");
        }
        // Revoked at t2: no older event, about the key or the customer, undoes it.
        let revoked = delivered(&entry, &[about("benefit_grant.revoked", true, t2)]);
        for older in [
            about("benefit_grant.created", true, t1),
            about("benefit_grant.updated", true, t1),
            about("benefit_grant.cycled", true, t1),
            about("subscription.active", false, t1),
            about("benefit_grant.created", false, t1),
        ] {
            assert_eq!(delivered(&revoked, &[older]).mark, Mark::Revoked);
        }
        // An older event of the same kind as the newest applied changes nothing (as before):
        // an older update after a newer one, an older purchase event after a newer one.
        for (newer, older) in [
            (
                about("benefit_grant.updated", true, t2),
                about("benefit_grant.updated", true, t1),
            ),
            (
                about("subscription.updated", false, t2),
                about("subscription.updated", false, t1),
            ),
        ] {
            let e = answered(&delivered(&entry, &[newer]));
            assert_eq!(narrowed(&e, &older), None);
        }
    }

    /// An entry an older relay stored (one `last_event_at` for every event) reads back with
    /// that time as the customer's: no revocation of the key is hidden by it.
    #[test]
    fn an_older_relays_entry_hides_no_revocation() {
        let mut old = serde_json::to_value(key_entry()).expect("json");
        let fields = old.as_object_mut().expect("an object");
        fields.remove("key_event_at");
        fields.insert("last_event_at".into(), 2_000.into());
        let e: Entry = serde_json::from_value(old).expect("read back");
        assert_eq!((e.customer_event_at, e.key_event_at), (2_000, 0));
        let late = delivered(&e, &[about("benefit_grant.revoked", true, 1_000)]);
        assert_eq!(late.mark, Mark::Revoked);
    }

    /// One key's entries past [`MAX_ENTRIES_PER_KEY`]: its oldest go (with their index
    /// rows), its newest stay, other keys' entries stay.
    pub(crate) fn caps_entries_per_key(b: &dyn Backend) {
        let tag = key_tag("org", "sha");
        let entry = |i: usize, tag: &str| Entry {
            answered_at: 1_000 + i as i64,
            key_tag: Some(tag.to_string()),
            ..key_entry()
        };
        let id = |i: usize, salt: u8| {
            let mut id = [salt; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            id
        };
        let other = key_tag("org", "another");
        b.put(&id(0, 2), &entry(0, &other)).expect("put");
        let n = MAX_ENTRIES_PER_KEY + 10;
        for i in 0..n {
            b.put(&id(i, 1), &entry(i, &tag)).expect("put");
        }
        let kept = b.index(&tag).expect("index");
        assert_eq!(kept.len(), MAX_ENTRIES_PER_KEY);
        for i in 0..10 {
            assert_eq!(b.get(&id(i, 1)).expect("get"), None, "{i}: the oldest go");
            assert!(!kept.contains(&id(i, 1)));
        }
        for i in 10..n {
            assert!(
                b.get(&id(i, 1)).expect("get").is_some(),
                "{i}: the newest stay"
            );
        }
        assert_eq!(b.len().expect("len"), MAX_ENTRIES_PER_KEY + 1);
        assert!(
            b.get(&id(0, 2)).expect("get").is_some(),
            "another key's stays"
        );
        // The license key's own index row lost the evicted ids too.
        assert_eq!(
            b.index("l:L").expect("index").len(),
            MAX_ENTRIES_PER_KEY + 1
        );
    }

    #[test]
    fn a_keys_entries_are_capped_in_memory_and_in_the_journal() {
        caps_entries_per_key(&MemoryBackend::new(1_000));
        let journal = JournalBackend::new(1_000);
        caps_entries_per_key(&journal);
        let deleted = journal
            .take()
            .iter()
            .filter(|i| matches!(i, JournalItem::Delete { .. }))
            .count();
        assert_eq!(deleted, 10, "each eviction journaled");
    }

    #[test]
    fn a_journal_restores_what_it_recorded() {
        let a = JournalBackend::new(10);
        let entry = Entry {
            license_key_id: Some("L".into()),
            customer_id: Some("C".into()),
            answered_at: 5,
            status: 200,
            body: "{}".into(),
            headers: vec![],
            grant: true,
            mark: Mark::None,
            customer_event_at: 0,
            key_event_at: 0,
            marked_at: 0,
            key_at: None,
            key_tag: None,
        };
        a.put(&[7; 32], &entry).expect("put");
        assert!(a.apply_webhook("evt", 9, &[]).expect("webhook"));
        let journal = a.take();
        assert_eq!(journal.len(), 2);
        assert!(a.take().is_empty(), "handed over once");
        let text = serde_json::to_string(&journal).expect("json");
        let b = JournalBackend::new(10);
        b.restore(serde_json::from_str(&text).expect("back"));
        assert_eq!(b.get(&[7; 32]).expect("get"), Some(entry));
        assert_eq!(b.index("l:L").expect("index"), vec![[7; 32]]);
        assert!(
            !b.apply_webhook("evt", 10, &[]).expect("seen"),
            "the id was restored"
        );
    }

    #[test]
    fn a_journal_keeps_the_newest_budget_state_and_restores_it() {
        let a = JournalBackend::new(10);
        let state = |n: u32| BudgetState {
            at: 100,
            calls: vec![(0, n)],
            blocked_ms: 0,
        };
        a.stage_budget(state(1));
        a.stage_budget(state(2));
        assert!(a.apply_webhook("evt", 9, &[]).expect("webhook"));
        a.stage_budget(state(3));
        let journal = a.take();
        let budgets: Vec<_> = journal
            .iter()
            .filter(|i| matches!(i, JournalItem::Budget { .. }))
            .collect();
        assert_eq!(budgets, [&JournalItem::Budget { state: state(3) }]);
        let text = serde_json::to_string(&journal).expect("json");
        assert!(
            text.contains(r#"{"op":"budget","state":"100 0 0:3"}"#),
            "{text}"
        );
        let b = JournalBackend::new(10);
        assert_eq!(b.load_budget().expect("load"), None);
        b.restore(serde_json::from_str(&text).expect("back"));
        assert_eq!(b.load_budget().expect("load"), Some(state(3)));
        // A store in memory keeps nothing of it.
        let m = MemoryBackend::new(10);
        m.stage_budget(state(4));
        m.flush_budget().expect("flush");
        assert_eq!(m.load_budget().expect("load"), None);
    }

    #[test]
    fn standard_webhooks_vector_and_both_secret_forms() {
        // The Standard Webhooks specification's example.
        let body = br#"{"test": 2432232314}"#;
        let ok = verify_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            Some("1614265330"),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            body,
            1_614_265_330,
        );
        assert_eq!(ok, Ok(()));
        let later = verify_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            Some("1614265330"),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            body,
            1_614_265_330 + 301,
        );
        assert_eq!(later, Err(WebhookRefusal::Timestamp));
        let tampered = verify_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            Some("1614265330"),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            br#"{"test": 2432232315}"#,
            1_614_265_330,
        );
        assert_eq!(tampered, Err(WebhookRefusal::Signature));
    }

    #[test]
    fn a_timestamp_far_from_now_is_refused_without_overflowing() {
        let body = br#"{"test": 2432232314}"#;
        let sig = Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        for (ts, now) in [
            ("-9223372036854775808", 1_614_265_330),
            ("9223372036854775807", -1_614_265_330),
            ("9223372036854775807", i64::MIN),
            ("1614265330", 1_614_265_330 - 301),
        ] {
            assert_eq!(
                verify_webhook(secret, id, Some(ts), sig, body, now),
                Err(WebhookRefusal::Timestamp),
                "{ts} at {now}"
            );
        }
        assert_eq!(
            verify_webhook(
                secret,
                id,
                Some("1614265330"),
                sig,
                body,
                1_614_265_330 - 300
            ),
            Ok(())
        );
    }

    #[test]
    fn only_a_license_key_grant_names_keys_and_only_its_revocation_denies() {
        let event = |kind: &str, data: serde_json::Value| serde_json::json!({"type": kind, "timestamp": "2026-11-25T10:00:00Z", "data": data});
        // A license key's grant revoked: its key's entries, denied.
        let n = narrowing(&event(
            "benefit_grant.revoked",
            serde_json::json!({"customer_id": "C", "benefit": {"type": "license_keys"},
                               "properties": {"license_key_id": "L"}}),
        ))
        .expect("a narrowing");
        assert_eq!((n.tags, n.mark), (vec!["l:L".to_string()], Mark::Revoked));
        // Another benefit's grant revoked (no license key in it): nothing.
        for benefit in ["discord", "github_repository", "downloadables", "custom"] {
            let n = narrowing(&event(
                "benefit_grant.revoked",
                serde_json::json!({"customer_id": "C", "benefit": {"type": benefit},
                                   "properties": {}}),
            ));
            assert_eq!(n, None, "{benefit}");
        }
        // A license-key grant without its key's id, or a purchase event: the customer's
        // entries, asked again (never denied).
        for (kind, data) in [
            (
                "benefit_grant.revoked",
                serde_json::json!({"customer_id": "C", "benefit": {"type": "license_keys"},
                                   "properties": {}}),
            ),
            (
                "benefit_grant.revoked",
                serde_json::json!({"customer_id": "C", "properties": {}}),
            ),
            (
                "subscription.revoked",
                serde_json::json!({"customer_id": "C"}),
            ),
        ] {
            let n = narrowing(&event(kind, data)).expect("a narrowing");
            assert_eq!(
                (n.tags, n.mark),
                (vec!["c:C".to_string()], Mark::Stale),
                "{kind}"
            );
        }
    }
}
