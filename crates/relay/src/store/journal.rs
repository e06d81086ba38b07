//! Entries in memory, every change journaled for a host that persists them: [`JournalBackend`].

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::entry::{hex_id, id_of_hex};
use super::{Backend, BudgetState, Entry, EntryId, MemoryBackend, StoreError};

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
    /// A webhook id forgotten (older than [`WEBHOOK_MEMORY_SECONDS`](super::WEBHOOK_MEMORY_SECONDS)).
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
    ///
    /// [`PagedBackend`]: super::PagedBackend
    Link {
        /// The row's tag (`k:`, `l:` or `c:`).
        tag: String,
        /// The entry's id, hex.
        id: String,
    },
    /// An entry's link removed ([`PagedBackend`] only).
    ///
    /// [`PagedBackend`]: super::PagedBackend
    Unlink {
        /// The row's tag.
        tag: String,
        /// The entry's id, hex.
        id: String,
    },
    /// The count of entries stored ([`PagedBackend`] only: key `n:entries`; each replaces the
    /// last).
    ///
    /// [`PagedBackend`]: super::PagedBackend
    Count {
        /// Entries stored.
        n: u64,
    },
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

    /// Journals what one step changed, as it was applied (called under the entries' lock, so
    /// that the host persists the steps in the order they were made): the entries written,
    /// those evicted, the webhook ids forgotten, and the webhook id done.
    fn record(
        &self,
        written: &[(EntryId, Entry)],
        removed: &[EntryId],
        forgotten: Vec<String>,
        webhook: Option<(&str, i64)>,
    ) {
        let mut j = self.journal();
        j.extend(written.iter().map(|(id, entry)| JournalItem::Put {
            id: hex_id(id),
            entry: entry.clone(),
        }));
        j.extend(
            removed
                .iter()
                .map(|id| JournalItem::Delete { id: hex_id(id) }),
        );
        j.extend(forgotten.into_iter().map(|id| JournalItem::Forget { id }));
        if let Some((webhook_id, at)) = webhook {
            j.push(JournalItem::Webhook {
                id: webhook_id.to_string(),
                at,
            });
        }
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

    /// Journaled under the entries' lock: the host persists the changes in the order they
    /// were made (a grant kept and a revocation racing are saved as they were applied).
    fn update(
        &self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        let mut m = self.memory.lock();
        let (written, removed) = m.update(id, f, self.memory.max_entries);
        let put: Vec<(EntryId, Entry)> = written.iter().map(|e| (*id, e.clone())).collect();
        self.record(&put, &removed, Vec::new(), None);
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
        self.record(&written, &[], forgotten, webhook);
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
        let Some(forgotten) = m.apply_webhook(webhook_id, at, updates) else {
            return Ok(false);
        };
        self.record(updates, &[], forgotten, Some((webhook_id, at)));
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
