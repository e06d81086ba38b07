//! Entries in memory: [`MemoryBackend`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::entry::tags;
use super::{
    evictable, eviction_rank, held, passes_held_share, stored_bytes, Backend, BudgetState, Entry,
    EntryId, Narrow, Narrower, StoreError, Updater, Writes, DEFAULT_MAX_BYTES, MAX_ENTRIES_PER_KEY,
    WEBHOOK_MEMORY_SECONDS,
};
use crate::locked::locked;

/// Entries in memory (lost at exit): `--store memory`, tests, hosts without a disk.
#[derive(Debug)]
pub struct MemoryBackend {
    inner: Mutex<Memory>,
    pub(super) max_entries: usize,
    /// The byte cap ([`Backend::cap_bytes`]).
    max_bytes: AtomicU64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new(usize::MAX)
    }
}

/// What a narrowing wrote (the entries) and the webhook ids it forgot.
type Narrowed = (Vec<(EntryId, Entry)>, Vec<String>);

#[derive(Debug, Default)]
pub(super) struct Memory {
    entries: HashMap<EntryId, Entry>,
    index: HashMap<String, Vec<EntryId>>,
    pub(super) webhooks: HashMap<String, i64>,
    /// Each entry's [`stored_bytes`], their sum, and the sum of those the byte cap may not
    /// evict (revocations).
    sizes: HashMap<EntryId, usize>,
    bytes: usize,
    pinned: usize,
    /// The bytes of seat pools and usage buffers ([`held`]), within
    /// [`held_share`](crate::store::entry::held_share).
    held: usize,
}

impl MemoryBackend {
    /// An empty store of at most `max_entries`.
    pub fn new(max_entries: usize) -> MemoryBackend {
        MemoryBackend {
            inner: Mutex::default(),
            max_entries: max_entries.max(1),
            max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
        }
    }

    /// The byte cap in force ([`super::byte_cap`] of what was set).
    pub(super) fn max_bytes(&self) -> usize {
        super::byte_cap(self.max_bytes.load(Ordering::Relaxed))
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        locked(&self.inner)
    }
}

impl Memory {
    pub(super) fn insert(&mut self, id: &EntryId, entry: &Entry) {
        for tag in tags(entry) {
            let ids = self.index.entry(tag).or_default();
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        self.unsize(id);
        let size = stored_bytes(entry);
        self.sizes.insert(*id, size);
        self.bytes = self.bytes.saturating_add(size);
        if !evictable(entry) {
            self.pinned = self.pinned.saturating_add(size);
        }
        if held(entry) {
            self.held = self.held.saturating_add(size);
        }
        self.entries.insert(*id, entry.clone());
    }

    /// Takes the entry `id`'s bytes out of the counts (before it is written anew or removed).
    fn unsize(&mut self, id: &EntryId) {
        if let Some(size) = self.sizes.remove(id) {
            self.bytes = self.bytes.saturating_sub(size);
            if self.entries.get(id).is_some_and(|e| !evictable(e)) {
                self.pinned = self.pinned.saturating_sub(size);
            }
            if self.entries.get(id).is_some_and(held) {
                self.held = self.held.saturating_sub(size);
            }
        }
    }

    /// The bytes its entries are counted for.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// [`Backend::update`] under the lock: what was written, and the ids evicted. Past the
    /// byte cap `max_bytes` the cheapest to lose go first ([`Memory::make_room`]); an entry
    /// that finds no room (only revocations left to evict) is not written, unless it is a
    /// revocation itself.
    pub(super) fn update(
        &mut self,
        id: &EntryId,
        f: Updater<'_>,
        max: usize,
        max_bytes: usize,
    ) -> (Option<Entry>, Vec<EntryId>) {
        let Some(entry) = f(self.entries.get(id)) else {
            return (None, Vec::new());
        };
        if entry.removes() {
            let removed = if self.remove(id) {
                vec![*id]
            } else {
                Vec::new()
            };
            return (None, removed);
        }
        let size = stored_bytes(&entry);
        let old = self.sizes.get(id).copied().unwrap_or(0);
        let current = self.entries.get(id).map(|e| (e, old));
        if passes_held_share(&entry, size, current, self.held, max_bytes) {
            log::warn!(
                "relay: seat pools and usage buffers hold their share of the store's byte cap \
                 ({} of {max_bytes} bytes): a new or grown one is not stored",
                self.held
            );
            return (None, Vec::new());
        }
        let mut removed = Vec::new();
        if self.bytes.saturating_sub(old).saturating_add(size) > max_bytes {
            removed = self.make_room(Some(id), size.saturating_sub(old), max_bytes);
            if evictable(&entry) && self.bytes.saturating_sub(old).saturating_add(size) > max_bytes
            {
                log::warn!(
                    "relay: the store is at its byte cap ({max_bytes} bytes) with revocations \
                     only left to evict: an answer is passed on and not stored"
                );
                // The answer it would have replaced is not given in its place either
                // (unless a revocation: that only refuses).
                if self.entries.get(id).is_some_and(evictable) && self.remove(id) {
                    removed.push(*id);
                }
                return (None, removed);
            }
        }
        self.insert(id, &entry);
        removed.extend(self.cap_key(id, &entry));
        removed.extend(self.evict(max));
        (Some(entry), removed)
    }

    /// Frees room for `more` bytes under `max_bytes` (down to fifteen sixteenths of it when
    /// it evicts: one sort per sixteenth): denials before grants, the oldest first
    /// ([`eviction_rank`]), never a revocation nor `keep`. Returns the ids removed.
    pub(super) fn make_room(
        &mut self,
        keep: Option<&EntryId>,
        more: usize,
        max_bytes: usize,
    ) -> Vec<EntryId> {
        let mut removed = Vec::new();
        if self.bytes.saturating_add(more) <= max_bytes {
            return removed;
        }
        let target = (max_bytes - max_bytes / 16).saturating_sub(more);
        // Nothing evictable left (revocations only): no sort for nothing.
        let kept = keep.and_then(|k| self.sizes.get(k)).copied().unwrap_or(0);
        if self.pinned.saturating_add(kept) >= self.bytes {
            return removed;
        }
        let mut ranked: Vec<((bool, i64), EntryId)> = self
            .entries
            .iter()
            .filter(|(k, e)| Some(*k) != keep && evictable(e))
            .map(|(k, e)| (eviction_rank(e), *k))
            .collect();
        ranked.sort_unstable();
        for (_, k) in ranked {
            if self.bytes <= target {
                break;
            }
            if self.remove(&k) {
                removed.push(k);
            }
        }
        removed
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
        self.unsize(id);
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
    pub(super) fn narrow(&mut self, what: Narrow<'_>, f: Narrower<'_>) -> Option<Narrowed> {
        let Narrow { webhook, tags } = what;
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
                    self.insert(&id, &e);
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

    /// [`Backend::apply_webhook`] under the lock: `None` for a webhook id seen (nothing
    /// written), else the webhook ids forgotten.
    pub(super) fn apply_webhook(
        &mut self,
        hook: &str,
        at: i64,
        updates: Writes<'_>,
    ) -> Option<Vec<String>> {
        if self.webhooks.contains_key(hook) {
            return None;
        }
        for (id, entry) in updates {
            self.insert(id, entry);
        }
        let forgotten = self.prune_webhooks(at);
        self.webhooks.insert(hook.to_string(), at);
        Some(forgotten)
    }

    /// Evicts the oldest past `max`; returns the ids removed. As the byte cap, it never
    /// evicts a revocation nor a key's seat pool ([`evictable`]): the count may pass `max`
    /// by those alone (each bounded of its own: one pool per key Polar granted, revocations
    /// by the keys a webhook revoked).
    fn evict(&mut self, max: usize) -> Vec<EntryId> {
        let mut removed = Vec::new();
        if self.entries.len() <= max {
            return removed;
        }
        // The oldest sixteenth (at least one) in one pass.
        let mut ages: Vec<(i64, EntryId)> = self
            .entries
            .iter()
            .filter(|(_, e)| evictable(e))
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
    pub(super) fn prune_webhooks(&mut self, at: i64) -> Vec<String> {
        forget_webhooks(&mut self.webhooks, at)
    }
}

/// Forgets the webhook ids of `webhooks` older than [`WEBHOOK_MEMORY_SECONDS`] before `at`;
/// returns them (the memory and paged backends' rule).
pub(super) fn forget_webhooks(webhooks: &mut HashMap<String, i64>, at: i64) -> Vec<String> {
    let old: Vec<String> = webhooks
        .iter()
        .filter(|(_, seen)| **seen <= at - WEBHOOK_MEMORY_SECONDS)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &old {
        webhooks.remove(id);
    }
    old
}

/// What a store in memory does besides keeping its entries: [`MemoryBackend`] nothing,
/// [`JournalBackend`](super::JournalBackend) journals each change for its host. Both are
/// [`Backend`]s through one implementation, each step taken under the entries' lock.
pub trait Keeper: Send + Sync {
    /// The entries.
    fn memory(&self) -> &MemoryBackend;
    /// What one step changed, told under the entries' lock (so that the steps are recorded in
    /// the order they were made); nothing by default.
    fn record(&self, _changes: Changes<'_>) {}
    /// The entry `id` read, by a [`Backend::get`] or an update's read; nothing by default.
    fn read(&self, _id: &EntryId) {}
    /// The budget's state given ([`Backend::stage_budget`]); nothing by default.
    fn keep_budget(&self, _state: BudgetState) {}
    /// The budget's state restored ([`Backend::load_budget`]); none by default.
    fn restored_budget(&self) -> Option<BudgetState> {
        None
    }
}

/// What one step of a store in memory changed.
#[derive(Debug)]
pub struct Changes<'a> {
    /// The entries written.
    pub written: &'a [(EntryId, Entry)],
    /// The entries evicted.
    pub removed: &'a [EntryId],
    /// The webhook ids forgotten.
    pub forgotten: Vec<String>,
    /// The webhook id done, and when (unix seconds).
    pub webhook: Option<(&'a str, i64)>,
}

impl Keeper for MemoryBackend {
    fn memory(&self) -> &MemoryBackend {
        self
    }
}

impl<K: Keeper> Backend for K {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.read(id);
        Ok(self.memory().lock().entries.get(id).cloned())
    }

    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.read(id);
        let store = self.memory();
        let mut m = store.lock();
        let (written, removed) = m.update(id, f, store.max_entries, store.max_bytes());
        let put: Vec<(EntryId, Entry)> = written.iter().map(|e| (*id, e.clone())).collect();
        self.record(Changes {
            written: &put,
            removed: &removed,
            forgotten: Vec::new(),
            webhook: None,
        });
        Ok(written)
    }

    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        let store = self.memory();
        let mut m = store.lock();
        let Some((written, forgotten)) = m.narrow(what, f) else {
            return Ok(None);
        };
        // A mark changes an entry's bytes a little: past the cap, others go.
        let removed = m.make_room(None, 0, store.max_bytes());
        self.record(Changes {
            written: &written,
            removed: &removed,
            forgotten,
            webhook: what.webhook,
        });
        Ok(Some(written.len()))
    }

    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        Ok(self
            .memory()
            .lock()
            .index
            .get(tag)
            .cloned()
            .unwrap_or_default())
    }

    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError> {
        let store = self.memory();
        let mut m = store.lock();
        let Some(forgotten) = m.apply_webhook(hook, at, updates) else {
            return Ok(false);
        };
        let removed = m.make_room(None, 0, store.max_bytes());
        self.record(Changes {
            written: updates,
            removed: &removed,
            forgotten,
            webhook: Some((hook, at)),
        });
        Ok(true)
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.memory().lock().entries.len())
    }

    fn cap_bytes(&self, max_bytes: u64) {
        self.memory().max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    fn stored_bytes(&self) -> Option<u64> {
        Some(self.memory().lock().bytes() as u64)
    }

    fn tags_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let m = self.memory().lock();
        Ok(m.index
            .keys()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.memory().lock().webhooks.values().copied().max())
    }

    fn stage_budget(&self, state: BudgetState) {
        self.keep_budget(state);
    }

    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(self.restored_budget())
    }
}
