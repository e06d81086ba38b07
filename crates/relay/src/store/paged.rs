//! Entries read per key from a host's key-value storage (a Durable Object's, in the npm
//! package's relay): the store lives in the host's storage, and this backend holds a bounded
//! cache of it. Before the core answers a request, the host loads what that request touches
//! ([`PagedBackend::missing`] names it: the request's entry, its key's index row, and for a
//! webhook the rows of the key id or customer it names with their entries), so start-up reads
//! no entry and its time does not grow with the store.
//!
//! The host's storage holds, besides the journal's `e:<id>`, `w:<webhook id>` and `b:budget`
//! keys, one key per index link (`i:<tag>|<id>`, [`JournalItem::Link`]) and the count of
//! entries (`n:entries`, [`JournalItem::Count`]). Entries not touched recently leave the cache
//! ([`PagedBackend::trim`]), never the storage. Each entry also has a link in the time row
//! (`i:t:<when Polar answered, zero-padded>|<id>`), so a full store lists its
//! [`OLDEST_BATCH`] oldest entries (the storage's key order), reads the next to go, and
//! evicts it from the storage with its links: as the native backends evict their oldest.
//!
//! The byte cap ([`StoreOptions::max_bytes`](super::StoreOptions::max_bytes)): the bytes the
//! entries are counted for are kept in the storage (`n:bytes`, [`JournalItem::Bytes`]); near
//! the cap the time row's oldest are read as for a full store, and past it the cache's cheapest
//! to lose go ([`eviction_rank`]: denials before grants, the oldest first). A revocation is
//! never evicted: it has no link in the time row (one an older relay linked is unlinked when
//! listed), so the oldest listed are all the cap may take.

use super::entry::tags;
use super::{
    evictable, eviction_rank, held, passes_held_share, stored_bytes, Backend, BudgetState, Entry,
    EntryId, JournalItem, Narrow, Narrower, StoreError, Updater, Writes, DEFAULT_MAX_BYTES,
    ENTRY_OVERHEAD, MAX_ENTRIES_PER_KEY, MAX_ENTRY_BYTES,
};
use crate::ids::{hex_id, id_of_hex};
use crate::locked::locked;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Entries (and index rows) held in memory by default: about 10,000 answers of ~1 KiB.
pub const DEFAULT_CACHED: usize = 10_000;

/// How many of the storage's oldest entries a full store lists at a time
/// ([`Missing::oldest`]): its next evictions.
pub(crate) const OLDEST_BATCH: usize = 16;

/// The time row's prefix (an entry's link under it: [`time_tag`]).
const TIME_ROW: &str = "t:";

/// An entry's tag in the time row: when Polar answered, zero-padded, so the storage's key
/// order is the time order.
fn time_tag(entry: &Entry) -> String {
    format!("{TIME_ROW}{:012}", entry.answered_at.max(0))
}

/// What a request touches in the store: entries by id, and index rows by tag (`k:`, `l:`,
/// `c:`). `all`: every entry of those rows too (a webhook's narrowing, the relay's own
/// narrowing after a deactivation or an increment); else only when a key's row is full (its
/// oldest entry may be removed by the next write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    /// The entries read.
    pub entries: Vec<EntryId>,
    /// The index rows read.
    pub tags: Vec<String>,
    /// Whether every entry of those rows is read.
    pub all: bool,
    /// Entries read with the entries the rows name, once the rows are read (one storage
    /// call for both); when the rows name none, in a call of their own (none when cached). A
    /// deactivation's seat pool, read beside its key's entries.
    pub later: Vec<EntryId>,
}

/// What the host loads before the core answers: entries (hex ids) and index rows (tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// Entries to read (`e:<hex>`); one the storage does not hold is loaded as absent.
    pub entries: Vec<String>,
    /// Index rows to read (every `i:<tag>|<hex>` key).
    pub tags: Vec<String>,
    /// With the store full: how many of the time row's first keys to list (`i:t:` in key
    /// order, with their values: the oldest entries and their tags), else 0.
    pub oldest: usize,
}

impl Missing {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.tags.is_empty() && self.oldest == 0
    }
}

/// A store in the host's storage with a bounded cache in memory (see the module docs).
#[derive(Debug)]
pub struct PagedBackend {
    inner: Mutex<Paged>,
    max_entries: usize,
    max_cached: usize,
    /// The byte cap ([`Backend::cap_bytes`]).
    max_bytes: AtomicU64,
}

/// An entry as read from the storage (`None`: the storage does not hold it).
#[derive(Debug)]
struct Slot {
    entry: Option<Entry>,
    touched: u64,
}

/// An index row as read from the storage (complete: every link of its tag).
#[derive(Debug)]
struct Row {
    ids: Vec<EntryId>,
    touched: u64,
}

#[derive(Debug, Default)]
struct Paged {
    entries: HashMap<EntryId, Slot>,
    rows: HashMap<String, Row>,
    webhooks: HashMap<String, i64>,
    /// Entries in the storage.
    count: usize,
    /// The bytes they are counted for ([`stored_bytes`] each).
    bytes: usize,
    /// Of those, seat pools' and usage buffers' ([`held`]; kept in the storage as `n:held`),
    /// within [`crate::store::entry::held_share`].
    held: usize,
    journal: Vec<JournalItem>,
    budget: Option<BudgetState>,
    tick: u64,
    /// The storage's oldest entries as listed (when Polar answered, id), oldest first: the
    /// next evictions of a full store. `None`: to list (once one of them went).
    oldest: Option<Vec<(i64, EntryId)>>,
}

impl Paged {
    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn entry(&mut self, id: &EntryId) -> Option<&Entry> {
        let tick = self.touch();
        let slot = self.entries.get_mut(id)?;
        slot.touched = tick;
        slot.entry.as_ref()
    }

    /// Writes an entry, its index links and the count; journaled.
    fn write(&mut self, id: &EntryId, entry: Entry) {
        let prior = self.entries.get(id).and_then(|s| s.entry.as_ref());
        let old = prior.map(tags);
        let old_time = prior.map(|p| (time_tag(p), evictable(p)));
        let old_size = prior.map_or(0, stored_bytes);
        let prior_held = prior.is_some_and(held);
        let new = tags(&entry);
        // Its link in the time row moves with the time; a revocation gets none (the byte cap
        // never evicts it), and a link it had as a grant stays until the eviction lists it and
        // unlinks it: a webhook's revocation costs no storage call more (a Durable Object's
        // round trips per request, tests/js/relay-store.test.mjs).
        let new_time = evictable(&entry).then(|| time_tag(&entry));
        let unchanged = new_time.is_none()
            || matches!((&old_time, &new_time), (Some((t, true)), Some(n)) if t == n);
        if !unchanged {
            if let Some((t, _)) = old_time {
                self.link(&t, id, false);
            }
            if let Some(t) = &new_time {
                self.link(t, id, true);
            }
        }
        self.bytes = self
            .bytes
            .saturating_sub(old_size)
            .saturating_add(stored_bytes(&entry));
        self.journal.push(JournalItem::Bytes {
            n: self.bytes as u64,
        });
        let old_held = if prior_held { old_size } else { 0 };
        let new_held = if held(&entry) {
            stored_bytes(&entry)
        } else {
            0
        };
        if old_held != new_held {
            self.held = self.held.saturating_sub(old_held).saturating_add(new_held);
            self.journal.push(JournalItem::Held {
                n: self.held as u64,
            });
        }
        self.unlist(id);
        for tag in new
            .iter()
            .filter(|t| !old.as_ref().is_some_and(|o| o.contains(t)))
        {
            self.link(tag, id, true);
        }
        for tag in old.iter().flatten().filter(|t| !new.contains(t)) {
            self.link(tag, id, false);
        }
        if old.is_none() {
            self.count += 1;
            self.journal.push(JournalItem::Count {
                n: self.count as u64,
            });
        }
        self.journal.push(JournalItem::Put {
            id: hex_id(id),
            entry: entry.clone(),
        });
        let touched = self.touch();
        self.entries.insert(
            *id,
            Slot {
                entry: Some(entry),
                touched,
            },
        );
    }

    fn link(&mut self, tag: &str, id: &EntryId, on: bool) {
        if let Some(row) = self.rows.get_mut(tag) {
            row.ids.retain(|x| x != id);
            if on {
                row.ids.push(*id);
            }
        }
        let (tag, id) = (tag.to_string(), hex_id(id));
        self.journal.push(if on {
            JournalItem::Link { tag, id }
        } else {
            JournalItem::Unlink { tag, id }
        });
    }

    /// Removes an entry with its links; whether it was there.
    fn remove(&mut self, id: &EntryId) -> bool {
        let Some(entry) = self.entries.get_mut(id).and_then(|s| s.entry.take()) else {
            return false;
        };
        for tag in tags(&entry) {
            self.link(&tag, id, false);
        }
        self.link(&time_tag(&entry), id, false);
        self.unlist(id);
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(stored_bytes(&entry));
        self.journal.push(JournalItem::Bytes {
            n: self.bytes as u64,
        });
        if held(&entry) {
            self.held = self.held.saturating_sub(stored_bytes(&entry));
            self.journal.push(JournalItem::Held {
                n: self.held as u64,
            });
        }
        self.journal.push(JournalItem::Delete { id: hex_id(id) });
        self.journal.push(JournalItem::Count {
            n: self.count as u64,
        });
        true
    }

    /// `id` no longer among the listed oldest (written anew, or gone).
    fn unlist(&mut self, id: &EntryId) {
        if let Some(oldest) = &mut self.oldest {
            oldest.retain(|(_, k)| k != id);
        }
    }

    /// The oldest of `candidates` (entries held in the cache), `n` of them, removed.
    fn remove_oldest(&mut self, candidates: Vec<EntryId>, n: usize) {
        let mut ages: Vec<(i64, EntryId)> = candidates
            .into_iter()
            .filter_map(|k| {
                let e = self.entries.get(&k)?.entry.as_ref()?;
                Some((e.answered_at, k))
            })
            .collect();
        ages.sort_unstable();
        for (_, k) in ages.into_iter().take(n) {
            self.remove(&k);
        }
    }

    /// Past the store's cap, its oldest go, from the storage too: the oldest of the cache,
    /// which holds the storage's oldest ([`PagedBackend::missing`] has them read).
    fn evict(&mut self, keep: &EntryId, n: usize) {
        let others = self
            .entries
            .iter()
            .filter(|(k, s)| *k != keep && s.entry.is_some())
            .map(|(k, _)| *k)
            .collect();
        self.remove_oldest(others, n);
        // Listed to its end: listed again when next needed.
        if self.oldest.as_ref().is_some_and(Vec::is_empty) {
            self.oldest = None;
        }
    }

    /// Frees room for `more` bytes under `max_bytes`: the cache's cheapest to lose first
    /// ([`eviction_rank`]: the storage's oldest are among them, [`PagedBackend::missing`]
    /// has them read near the cap), never a revocation nor `keep`.
    fn make_room(&mut self, keep: Option<&EntryId>, more: usize, max_bytes: usize) {
        if self.bytes.saturating_add(more) <= max_bytes {
            return;
        }
        let mut ranked: Vec<((bool, i64), EntryId)> = self
            .entries
            .iter()
            .filter(|(k, _)| Some(*k) != keep)
            .filter_map(|(k, s)| {
                let e = s.entry.as_ref().filter(|e| evictable(e))?;
                Some((eviction_rank(e), *k))
            })
            .collect();
        ranked.sort_unstable();
        for (_, k) in ranked {
            if self.bytes.saturating_add(more) <= max_bytes {
                break;
            }
            self.remove(&k);
        }
        if self.oldest.as_ref().is_some_and(Vec::is_empty) {
            self.oldest = None;
        }
    }

    /// Past [`MAX_ENTRIES_PER_KEY`] entries of `entry`'s key (its row loaded), its oldest
    /// others go; past the store's cap, the storage's oldest go ([`Paged::evict`]).
    fn cap(&mut self, id: &EntryId, entry: &Entry, max_entries: usize) {
        if let Some(row) = entry.key_tag.as_ref().and_then(|t| self.rows.get(t)) {
            if row.ids.len() > MAX_ENTRIES_PER_KEY {
                let over = row.ids.len() - MAX_ENTRIES_PER_KEY;
                let others = row.ids.iter().filter(|k| *k != id).copied().collect();
                self.remove_oldest(others, over);
            }
        }
        if self.count > max_entries {
            self.evict(id, self.count - max_entries);
        }
    }

    fn prune_webhooks(&mut self, at: i64) {
        for id in super::memory::forget_webhooks(&mut self.webhooks, at) {
            self.journal.push(JournalItem::Forget { id });
        }
    }

    fn remember(&mut self, webhook_id: &str, at: i64) {
        self.prune_webhooks(at);
        self.webhooks.insert(webhook_id.to_string(), at);
        self.journal.push(JournalItem::Webhook {
            id: webhook_id.to_string(),
            at,
        });
    }
}

impl PagedBackend {
    /// An empty store of at most `max_entries`, holding at most `max_cached` entries and index
    /// rows in memory.
    pub fn new(max_entries: usize, max_cached: usize) -> PagedBackend {
        PagedBackend {
            inner: Mutex::default(),
            max_entries: max_entries.max(1),
            max_cached: max_cached.max(1),
            max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
        }
    }

    fn max_bytes(&self) -> usize {
        super::byte_cap(self.max_bytes.load(Ordering::Relaxed))
    }

    /// The changes since the last call, in order (the host persists them before it answers).
    pub fn take(&self) -> Vec<JournalItem> {
        std::mem::take(&mut locked(&self.inner).journal)
    }

    /// Loads the store's small global state, read at start: webhook ids (`Webhook`), the
    /// budget (`Budget`) and the count of entries (`Count`); other items are ignored.
    pub fn restore(&self, items: Vec<JournalItem>) {
        let mut p = locked(&self.inner);
        for item in items {
            match item {
                JournalItem::Webhook { id, at } => {
                    p.webhooks.insert(id, at);
                }
                JournalItem::Budget { state } => p.budget = Some(state),
                JournalItem::Count { n } => p.count = usize::try_from(n).unwrap_or(usize::MAX),
                JournalItem::Bytes { n } => p.bytes = usize::try_from(n).unwrap_or(usize::MAX),
                JournalItem::Held { n } => p.held = usize::try_from(n).unwrap_or(usize::MAX),
                _ => {}
            }
        }
    }

    /// What of `wants` the cache does not hold (the host reads it, then [`PagedBackend::load`]s
    /// it; a row read names entries, so the host asks again until nothing is missing).
    pub fn missing(&self, wants: &Wants) -> Missing {
        let mut p = locked(&self.inner);
        let tick = p.touch();
        let mut out = Missing::default();
        let mut ids: Vec<EntryId> = wants.entries.clone();
        for tag in &wants.tags {
            match p.rows.get_mut(tag) {
                Some(row) => {
                    row.touched = tick;
                    if wants.all || row.ids.len() >= MAX_ENTRIES_PER_KEY {
                        ids.extend(row.ids.iter().copied());
                    }
                }
                None => out.tags.push(tag.clone()),
            }
        }
        // Read once the rows are, with their entries (one call for both); when the rows name
        // none, in a call of their own (a deactivation of a key with no answer stored still
        // reads its seat pool, where its churn is counted: issue #67), none when cached.
        if out.tags.is_empty() {
            ids.extend(wants.later.iter().copied());
        }
        for id in ids {
            match p.entries.get_mut(&id) {
                Some(slot) => slot.touched = tick,
                None => {
                    let hex = hex_id(&id);
                    if !out.entries.contains(&hex) {
                        out.entries.push(hex);
                    }
                }
            }
        }
        // A full store lists its oldest (its next evictions) until they are used up, and
        // reads those the next write evicts; near its byte cap (one entry of the largest size
        // from it), all of them listed.
        let near_cap = p.bytes + MAX_ENTRY_BYTES + ENTRY_OVERHEAD > self.max_bytes();
        if p.count >= self.max_entries || near_cap {
            let over = if near_cap {
                OLDEST_BATCH
            } else {
                (p.count + 1 - self.max_entries).min(OLDEST_BATCH)
            };
            match p.oldest.take() {
                None => out.oldest = OLDEST_BATCH,
                Some(listed) => {
                    let mut kept = Vec::with_capacity(listed.len());
                    for (at, id) in listed {
                        match p.entries.get(&id).map(|s| s.entry.as_ref()) {
                            // Absent from the storage: its time link was left behind.
                            Some(None) => p.link(&format!("{TIME_ROW}{at:012}"), &id, false),
                            // A revocation's link (kept from its grant, or an older relay's):
                            // never evicted, unlinked (before the time check: a revocation's
                            // time may have moved since the link was made).
                            Some(Some(e)) if !evictable(e) => {
                                p.link(&format!("{TIME_ROW}{at:012}"), &id, false)
                            }
                            // Written since: no longer among the oldest.
                            Some(Some(e)) if e.answered_at != at => {}
                            Some(Some(_)) => kept.push((at, id)),
                            None => {
                                if kept.len() < over {
                                    out.entries.push(hex_id(&id));
                                }
                                kept.push((at, id));
                            }
                        }
                    }
                    p.oldest = Some(kept);
                }
            }
        }
        out
    }

    /// Loads the time row's first keys as the host listed them, in the storage's key order
    /// (oldest first): each `<when Polar answered>|<hex id>` (the key after `i:t:`), the next
    /// evictions of a full store. One that does not read is left out.
    pub fn load_oldest(&self, listed: Vec<String>) {
        let oldest = listed
            .iter()
            .filter_map(|key| {
                let (at, hex) = key.split_once('|')?;
                Some((at.parse::<i64>().ok()?, id_of_hex(hex)?))
            })
            .collect();
        locked(&self.inner).oldest = Some(oldest);
    }

    /// Loads what the host read: entries (hex id, `None` when the storage holds none) and
    /// index rows (tag, hex ids). What the cache holds already is kept (it is as new as the
    /// storage, or newer); an id that does not read is skipped.
    pub fn load(&self, entries: Vec<(String, Option<Entry>)>, rows: Vec<(String, Vec<String>)>) {
        let mut p = locked(&self.inner);
        let touched = p.touch();
        for (hex, entry) in entries {
            if let Some(id) = id_of_hex(&hex) {
                p.entries.entry(id).or_insert(Slot { entry, touched });
            }
        }
        for (tag, ids) in rows {
            let ids = ids.iter().filter_map(|h| id_of_hex(h)).collect();
            p.rows.entry(tag).or_insert(Row { ids, touched });
        }
    }

    /// Drops the entries and rows touched least recently once the cache holds more than its
    /// bound (down to seven eighths of it: one sort per eighth). The storage keeps them; the
    /// host calls this once the journal is taken (a change not yet saved is the host's to
    /// read back).
    pub fn trim(&self) {
        let mut p = locked(&self.inner);
        let held = p.entries.len() + p.rows.len();
        if held <= self.max_cached {
            return;
        }
        let keep = self.max_cached - self.max_cached / 8;
        let mut ages: Vec<u64> = p
            .entries
            .values()
            .map(|s| s.touched)
            .chain(p.rows.values().map(|r| r.touched))
            .collect();
        ages.sort_unstable();
        let cut = ages[held - keep - 1];
        p.entries.retain(|_, s| s.touched > cut);
        p.rows.retain(|_, r| r.touched > cut);
    }

    /// Entries and index rows held in memory.
    pub fn cached(&self) -> usize {
        let p = locked(&self.inner);
        p.entries.len() + p.rows.len()
    }
}

/// An entry the host did not load (its read failed, or the cache let it go): never read as
/// absent, which could write over a revocation the storage holds.
fn not_loaded() -> StoreError {
    StoreError("the stored entry was not read from the host's storage".into())
}

impl Backend for PagedBackend {
    fn host_loads(&self) -> bool {
        true
    }

    /// An entry not loaded ([`PagedBackend::load`]) is an error, not `None`: only the
    /// storage knows whether it holds one.
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        let mut p = locked(&self.inner);
        if !p.entries.contains_key(id) {
            return Err(not_loaded());
        }
        Ok(p.entry(id).cloned())
    }

    /// Refused for an entry not loaded: what it would write over is not known.
    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        let mut p = locked(&self.inner);
        if !p.entries.contains_key(id) {
            return Err(not_loaded());
        }
        let Some(entry) = f(p.entry(id)) else {
            return Ok(None);
        };
        if entry.removes() {
            p.remove(id);
            return Ok(None);
        }
        let max_bytes = self.max_bytes();
        let size = stored_bytes(&entry);
        let current = p.entry(id).cloned();
        let was = current.as_ref().map(|e| (e, stored_bytes(e)));
        if passes_held_share(&entry, size, was, p.held, max_bytes) {
            log::warn!(
                "relay: seat pools and usage buffers hold their share of the store's byte cap \
                 ({} of {max_bytes} bytes): a new or grown one is not stored",
                p.held
            );
            return Ok(None);
        }
        // Past the byte cap the cache's cheapest to lose go; an answer that finds no room
        // (revocations only left) is not written, unless a revocation itself.
        let old = p.entry(id).map_or(0, stored_bytes);
        p.make_room(Some(id), size.saturating_sub(old), max_bytes);
        if evictable(&entry) && p.bytes.saturating_sub(old).saturating_add(size) > max_bytes {
            log::warn!(
                "relay: the store is at its byte cap ({max_bytes} bytes) with revocations only \
                 left to evict: an answer is passed on and not stored"
            );
            if p.entry(id).is_some_and(evictable) {
                p.remove(id);
            }
            return Ok(None);
        }
        p.write(id, entry.clone());
        p.cap(id, &entry, self.max_entries);
        Ok(Some(entry))
    }

    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        let Narrow { webhook, tags } = what;
        let mut p = locked(&self.inner);
        if let Some((webhook_id, _)) = webhook {
            if p.webhooks.contains_key(webhook_id) {
                return Ok(None);
            }
        }
        let mut seen: Vec<EntryId> = Vec::new();
        let mut written = 0;
        for tag in tags {
            let Some(row) = p.rows.get(tag) else {
                // The host loads every row a request touches before the core answers.
                return Err(StoreError(format!("the index row {tag} was not loaded")));
            };
            for id in row.ids.clone() {
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let Some(slot) = p.entries.get(&id) else {
                    return Err(StoreError("an entry of an index row was not loaded".into()));
                };
                if let Some(e) = slot.entry.as_ref().and_then(&mut *f) {
                    p.write(&id, e);
                    written += 1;
                }
            }
        }
        if let Some((webhook_id, at)) = webhook {
            p.remember(webhook_id, at);
        }
        // A mark changes an entry's bytes a little: past the cap, others go.
        let max_bytes = self.max_bytes();
        p.make_room(None, 0, max_bytes);
        Ok(Some(written))
    }

    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        Ok(locked(&self.inner)
            .rows
            .get(tag)
            .map(|r| r.ids.clone())
            .unwrap_or_default())
    }

    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError> {
        let mut p = locked(&self.inner);
        if p.webhooks.contains_key(hook) {
            return Ok(false);
        }
        for (id, entry) in updates {
            p.write(id, entry.clone());
        }
        p.remember(hook, at);
        Ok(true)
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(locked(&self.inner).count)
    }

    fn cap_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    fn stored_bytes(&self) -> Option<u64> {
        Some(locked(&self.inner).bytes as u64)
    }

    fn stage_budget(&self, state: BudgetState) {
        let mut p = locked(&self.inner);
        p.journal
            .retain(|item| !matches!(item, JournalItem::Budget { .. }));
        p.journal.push(JournalItem::Budget { state });
    }

    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(locked(&self.inner).budget.take())
    }

    /// The webhook ids are read at start, so the newest one's time is known (a restart's
    /// last webhook, as the other backends say).
    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(locked(&self.inner).webhooks.values().copied().max())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod host;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::{narrowed, stored_bytes, Mark, Narrowing};
    use super::host::Host;
    use super::*;

    fn id(n: usize) -> EntryId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(n as u64).to_be_bytes());
        id
    }

    fn entry(key: usize, at: i64) -> Entry {
        Entry {
            customer_id: Some(format!("cu-{}", key % 10)),
            ..Entry::test_grant(
                format!("lk-{key}"),
                at,
                Mark::None,
                Some(format!("k:{key}")),
            )
        }
    }

    /// An entry wanted `later` is read with the entries of the rows read first (one call
    /// of the host's for both), and, when the rows name none, alone once they are read.
    #[test]
    fn an_entry_wanted_later_is_read_with_the_rows_entries() {
        let b = PagedBackend::new(100, 1_000);
        let wants = Wants {
            tags: vec!["k:1".into()],
            all: true,
            later: vec![id(7)],
            ..Wants::default()
        };
        let first = b.missing(&wants);
        assert_eq!(
            (first.tags.clone(), first.entries.clone()),
            (vec!["k:1".to_string()], Vec::new())
        );
        b.load(Vec::new(), vec![("k:1".into(), vec![hex_id(&id(3))])]);
        let next = b.missing(&wants);
        assert!(next.tags.is_empty());
        assert_eq!(next.entries, vec![hex_id(&id(3)), hex_id(&id(7))]);
        // A row that names nothing: the later entry alone, then nothing once it is cached.
        let empty = Wants {
            tags: vec!["k:2".into()],
            later: vec![id(8)],
            ..wants
        };
        b.load(Vec::new(), vec![("k:2".into(), Vec::new())]);
        let alone = b.missing(&empty);
        assert!(alone.tags.is_empty());
        assert_eq!(alone.entries, vec![hex_id(&id(8))]);
        b.load(vec![(hex_id(&id(8)), None)], Vec::new());
        assert_eq!(b.missing(&empty), Missing::default());
    }

    /// What a validate of entry `n` of `key` reads: the entry and its key's row.
    fn validate_wants(n: usize, key: usize) -> Wants {
        Wants {
            entries: vec![id(n)],
            tags: vec![format!("k:{key}")],
            all: false,
            ..Wants::default()
        }
    }

    /// Writes entry `n` of `key` as a validate's answer is kept: its entry and its key's row
    /// loaded first.
    fn keep(host: &mut Host, b: &PagedBackend, n: usize, key: usize, at: i64) {
        host.fill(b, &validate_wants(n, key));
        b.put(&id(n), &entry(key, at)).unwrap();
        host.save(b);
    }

    #[test]
    fn a_revocation_narrows_what_only_the_storage_holds_and_start_up_reads_no_entry() {
        let mut host = Host::default();
        let b = PagedBackend::new(1_000_000, 16);
        for n in 0..500 {
            keep(&mut host, &b, n, n, 1_000 + n as i64);
        }
        assert!(b.cached() <= 16, "the cache holds {}", b.cached());
        assert_eq!(b.len().unwrap(), 500);
        // A restart: nothing read but the count.
        let b = host.start(16);
        assert_eq!(b.cached(), 0);
        assert_eq!(b.len().unwrap(), 500);
        // A revocation of key 7 (its entry long out of memory), and of customer 3's keys.
        for (webhook, tag, mark) in [
            ("evt-1", "l:lk-7", Mark::Revoked),
            ("evt-2", "c:cu-3", Mark::Stale),
        ] {
            let n = Narrowing {
                tags: vec![tag.into()],
                mark,
                at: 5_000,
            };
            let wants = Wants {
                entries: Vec::new(),
                tags: n.tags.clone(),
                all: true,
                ..Wants::default()
            };
            host.reads = 0;
            host.fill(&b, &wants);
            assert!(host.reads <= 2 * 50 + 1, "{} reads for {tag}", host.reads);
            let changed = b
                .narrow(Narrow::delivery(webhook, 5_000, &n.tags), &mut |e| {
                    narrowed(e, &n)
                })
                .unwrap();
            assert_eq!(changed, Some(if tag.starts_with("l:") { 1 } else { 50 }));
            host.save(&b);
        }
        let stored = |n: usize| -> Entry {
            serde_json::from_value(host.kv[&format!("e:{}", hex_id(&id(n)))].clone()).unwrap()
        };
        assert_eq!(stored(7).mark, Mark::Revoked);
        assert_eq!(stored(13).mark, Mark::Stale);
        assert_eq!(stored(14).mark, Mark::None);
        // Another restart reads the revocation back per key.
        let b = host.start(16);
        host.fill(&b, &validate_wants(7, 7));
        assert_eq!(b.get(&id(7)).unwrap().unwrap().mark, Mark::Revoked);
    }

    /// An entry the host did not load (its read failed) is neither read as absent nor
    /// written: a revocation only the storage holds stays as it is.
    #[test]
    fn an_entry_not_loaded_is_neither_absent_nor_written_over() {
        let mut host = Host::default();
        let b = PagedBackend::new(1_000_000, 16);
        let mut revoked = entry(1, 1_000);
        revoked.mark = Mark::Revoked;
        host.fill(&b, &validate_wants(1, 1));
        b.put(&id(1), &revoked).unwrap();
        host.save(&b);
        let b = host.start(16);
        assert!(b.get(&id(1)).is_err());
        assert!(b.update(&id(1), &mut |_| Some(entry(1, 2_000))).is_err());
        assert!(b.put(&id(1), &entry(1, 2_000)).is_err());
        host.save(&b);
        let stored: Entry =
            serde_json::from_value(host.kv[&format!("e:{}", hex_id(&id(1)))].clone()).unwrap();
        assert_eq!(stored.mark, Mark::Revoked);
        assert_eq!(b.len().unwrap(), 1);
        // Loaded as absent (the storage said so): absent, and written.
        assert_eq!(b.get(&id(9)).ok(), None);
        host.fill(
            &b,
            &Wants {
                entries: vec![id(9)],
                tags: Vec::new(),
                all: false,
                ..Wants::default()
            },
        );
        assert_eq!(b.get(&id(9)).unwrap(), None);
        b.put(&id(9), &entry(9, 3_000)).unwrap();
        assert_eq!(b.len().unwrap(), 2);
    }

    #[test]
    fn a_row_not_loaded_refuses_the_webhook_rather_than_miss_an_entry() {
        let mut host = Host::default();
        let b = PagedBackend::new(1_000_000, 16);
        keep(&mut host, &b, 1, 1, 1_000);
        let b = host.start(16);
        let tags = vec!["l:lk-1".to_string()];
        assert!(b
            .narrow(Narrow::delivery("evt", 1, &tags), &mut |_| None)
            .is_err());
    }

    #[test]
    fn a_keys_entries_are_capped_in_the_storage_and_the_store_at_its_maximum() {
        let mut host = Host::default();
        let b = PagedBackend::new(100, 16);
        for n in 0..MAX_ENTRIES_PER_KEY + 6 {
            keep(&mut host, &b, n, 1, n as i64);
        }
        let links = host.kv.keys().filter(|k| k.starts_with("i:k:1|")).count();
        assert_eq!(links, MAX_ENTRIES_PER_KEY);
        assert_eq!(b.len().unwrap(), MAX_ENTRIES_PER_KEY);
        // The oldest went, with all their links.
        assert!(!host.kv.contains_key(&format!("e:{}", hex_id(&id(0)))));
        assert!(!host
            .kv
            .contains_key(&format!("i:l:lk-1|{}", hex_id(&id(0)))));
        for n in 1_000..1_100 {
            keep(&mut host, &b, n, n, 10_000 + n as i64);
        }
        let entries = host.kv.keys().filter(|k| k.starts_with("e:")).count();
        assert!(
            entries <= 100,
            "{entries} entries stored past the maximum of 100"
        );
        assert_eq!(host.kv["n:entries"], serde_json::json!(entries));
    }

    /// The byte cap in the host's storage (issue #62): a flood of denials of distinct keys,
    /// with restarts (nothing cached, the count of bytes read back from `n:bytes`), keeps the
    /// storage's entries under the cap, its count exact; a revocation is never evicted, and one
    /// an older relay linked in the time row is unlinked when listed, never taken.
    #[test]
    fn past_its_byte_cap_the_storage_keeps_its_revocations_and_stays_under_it() {
        let cap: usize = 256 * 1024;
        let mut host = Host::default();
        let mut b = PagedBackend::new(1_000_000, 16);
        b.cap_bytes(cap as u64);
        let mut revoked = entry(0, 1);
        revoked.mark = Mark::Revoked;
        host.fill(&b, &validate_wants(0, 0));
        b.put(&id(0), &revoked).unwrap();
        host.save(&b);
        assert!(
            !host.kv.keys().any(|k| k.starts_with("i:t:")),
            "a revocation has no link in the time row"
        );
        // As an older relay left it: linked in the time row, the oldest of all.
        host.kv.insert(
            format!("i:t:{:012}|{}", 1, hex_id(&id(0))),
            serde_json::json!(1),
        );
        let stored = |host: &Host| -> (usize, usize) {
            let entries: Vec<Entry> = host
                .kv
                .iter()
                .filter(|(k, _)| k.starts_with("e:"))
                .map(|(_, v)| serde_json::from_value(v.clone()).unwrap())
                .collect();
            (entries.len(), entries.iter().map(stored_bytes).sum())
        };
        for n in 1..=400 {
            if n % 50 == 0 {
                b = host.start(16);
                b.cap_bytes(cap as u64);
            }
            let mut denial = entry(n, 1_000 + n as i64);
            denial.grant = false;
            denial.status = 404;
            denial.body = format!("{{\"detail\":\"{}\"}}", "x".repeat(2_000));
            host.fill(&b, &validate_wants(n, n));
            b.put(&id(n), &denial).unwrap();
            host.save(&b);
            if n % 10 != 0 {
                continue;
            }
            let (count, bytes) = stored(&host);
            assert!(
                bytes <= cap,
                "{n}: {bytes} bytes stored past the cap of {cap}"
            );
            assert_eq!(host.kv["n:bytes"], serde_json::json!(bytes), "{n}");
            assert_eq!(host.kv["n:entries"], serde_json::json!(count), "{n}");
        }
        let (count, _) = stored(&host);
        assert!(count < 200, "{count} entries: the cap evicted");
        let kept: Entry =
            serde_json::from_value(host.kv[&format!("e:{}", hex_id(&id(0)))].clone()).unwrap();
        assert_eq!(kept, revoked, "the revocation stays");
        assert!(
            !host
                .kv
                .contains_key(&format!("i:t:{:012}|{}", 1, hex_id(&id(0)))),
            "its old time link unlinked"
        );
        assert!(host.kv.contains_key(&format!("e:{}", hex_id(&id(400)))));
    }

    /// A full store evicts its oldest from the storage, with every link, reading no entry
    /// for it: also after a restart (nothing cached) and with a cache of one. The newest
    /// entries stay, and the storage holds no more than the cap.
    #[test]
    fn past_its_cap_the_storage_loses_its_oldest_with_their_links_after_a_restart_too() {
        let mut host = Host::default();
        let mut b = PagedBackend::new(20, 1);
        for n in 0..120 {
            if n % 7 == 0 {
                b = host.start_capped(20, 1);
            }
            host.reads = 0;
            keep(&mut host, &b, n, n, 1_000 + n as i64);
            // Its entry, its key's row, and at most a batch of the time row.
            assert!(host.reads <= 2 + OLDEST_BATCH, "{} reads", host.reads);
        }
        let stored: Vec<usize> = (0..120)
            .filter(|n| host.kv.contains_key(&format!("e:{}", hex_id(&id(*n)))))
            .collect();
        assert_eq!(stored, (100..120).collect::<Vec<_>>(), "the newest 20 kept");
        assert_eq!(host.kv["n:entries"], serde_json::json!(20));
        // No link of an entry gone: every `i:` key names a stored entry.
        let orphans: Vec<&String> = host
            .kv
            .keys()
            .filter(|k| k.starts_with("i:"))
            .filter(|k| {
                let id = k.rsplit('|').next().unwrap_or_default();
                !host.kv.contains_key(&format!("e:{id}"))
            })
            .collect();
        assert_eq!(orphans, Vec::<&String>::new());
        // Four links each (key, license key id, customer, time).
        assert_eq!(
            host.kv.keys().filter(|k| k.starts_with("i:")).count(),
            4 * 20
        );
    }
}
