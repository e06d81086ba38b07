//! Entries in memory, every change journaled for a host that persists them: [`JournalBackend`].

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::memory::{Changes, Keeper};
use super::{BudgetState, Entry, MemoryBackend};
use crate::ids::{hex_id, id_of_hex};
use crate::locked::locked;

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
    /// The bytes the entries stored are counted for ([`PagedBackend`] only: key `n:bytes`;
    /// each replaces the last; see [`stored_bytes`](super::stored_bytes)).
    ///
    /// [`PagedBackend`]: super::PagedBackend
    Bytes {
        /// Bytes counted.
        n: u64,
    },
    /// Of those bytes, the seat pools' and usage buffers' (issue #76; [`PagedBackend`] only:
    /// key `n:held`; each replaces the last; a storage written before it counts from 0).
    ///
    /// [`PagedBackend`]: super::PagedBackend
    Held {
        /// Bytes counted.
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
        locked(&self.journal)
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
                    *locked(&self.budget) = Some(state);
                }
                _ => {}
            }
        }
    }
}

/// Every change journaled, under the entries' lock: the host persists the changes in the order
/// they were made (a grant kept and a revocation racing are saved as they were applied).
impl Keeper for JournalBackend {
    fn memory(&self) -> &MemoryBackend {
        &self.memory
    }

    /// The entries written, those evicted, the webhook ids forgotten, and the webhook id done.
    fn record(&self, changes: Changes<'_>) {
        let mut j = self.journal();
        j.extend(changes.written.iter().map(|(id, entry)| JournalItem::Put {
            id: hex_id(id),
            entry: entry.clone(),
        }));
        j.extend(
            changes
                .removed
                .iter()
                .map(|id| JournalItem::Delete { id: hex_id(id) }),
        );
        j.extend(
            changes
                .forgotten
                .into_iter()
                .map(|id| JournalItem::Forget { id }),
        );
        if let Some((webhook_id, at)) = changes.webhook {
            j.push(JournalItem::Webhook {
                id: webhook_id.to_string(),
                at,
            });
        }
    }

    /// Journaled (the host saves it with the request's other changes); one budget item at
    /// most waits in the journal.
    fn keep_budget(&self, state: BudgetState) {
        let mut j = self.journal();
        j.retain(|item| !matches!(item, JournalItem::Budget { .. }));
        j.push(JournalItem::Budget { state });
    }

    fn restored_budget(&self) -> Option<BudgetState> {
        locked(&self.budget).take()
    }
}
