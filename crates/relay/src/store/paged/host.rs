//! A host's key-value storage under a [`PagedBackend`], as the Workers relay keeps it
//! (`relay-handler.js`): the journal saved key by key, what a request touches read before the
//! core answers it, and the reads counted. The paged store's unit tests and the relay's suites
//! (`tests/rig`, by path) share it; its parent names `JournalItem`, `PagedBackend` and `Wants`.

use std::collections::BTreeMap;

use super::{JournalItem, PagedBackend, Wants};

/// The storage's keys and values, and the keys read since `reads` was last set.
#[derive(Default)]
pub struct Host {
    /// `e:{id}` an entry, `i:{tag}|{id}` an index link, `w:{id}` a webhook id, `n:entries`
    /// the count.
    pub kv: BTreeMap<String, serde_json::Value>,
    /// The keys read by [`Host::fill`].
    pub reads: usize,
}

impl Host {
    /// Saves what `b` journaled, and trims it.
    pub fn save(&mut self, b: &PagedBackend) {
        for item in b.take() {
            let (key, value) = match item {
                JournalItem::Put { id, entry } => {
                    (format!("e:{id}"), serde_json::to_value(entry).ok())
                }
                JournalItem::Delete { id } => (format!("e:{id}"), None),
                JournalItem::Link { tag, id } => (format!("i:{tag}|{id}"), Some(1.into())),
                JournalItem::Unlink { tag, id } => (format!("i:{tag}|{id}"), None),
                JournalItem::Count { n } => ("n:entries".into(), Some(n.into())),
                JournalItem::Bytes { n } => ("n:bytes".into(), Some(n.into())),
                JournalItem::Held { n } => ("n:held".into(), Some(n.into())),
                JournalItem::Webhook { id, at } => (format!("w:{id}"), Some(at.into())),
                JournalItem::Forget { id } => (format!("w:{id}"), None),
                JournalItem::Budget { .. } => continue,
            };
            match value {
                Some(v) => self.kv.insert(key, v),
                None => self.kv.remove(&key),
            };
        }
        b.trim();
    }

    /// What a restarted host reads at start: the count and the bytes (no webhooks or budget
    /// here).
    pub fn start(&self, max_cached: usize) -> PagedBackend {
        self.start_capped(1_000_000, max_cached)
    }

    /// [`Host::start`] with a store of at most `max_entries`.
    pub fn start_capped(&self, max_entries: usize, max_cached: usize) -> PagedBackend {
        let b = PagedBackend::new(max_entries, max_cached);
        let n = self
            .kv
            .get("n:entries")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let bytes = self.kv.get("n:bytes").and_then(|v| v.as_u64());
        let held = self.kv.get("n:held").and_then(|v| v.as_u64());
        let mut items = vec![JournalItem::Count { n }];
        items.extend(bytes.map(|n| JournalItem::Bytes { n }));
        items.extend(held.map(|n| JournalItem::Held { n }));
        b.restore(items);
        b
    }

    /// Loads what `wants` touches, as the handler's `fill`.
    pub fn fill(&mut self, b: &PagedBackend, wants: &Wants) {
        for _ in 0..8 {
            let m = b.missing(wants);
            if m.is_empty() {
                return;
            }
            let entries = m
                .entries
                .iter()
                .map(|id| {
                    self.reads += 1;
                    let e = self.kv.get(&format!("e:{id}"));
                    (
                        id.clone(),
                        e.and_then(|v| serde_json::from_value(v.clone()).ok()),
                    )
                })
                .collect();
            let rows = m
                .tags
                .iter()
                .map(|tag| {
                    let prefix = format!("i:{tag}|");
                    let ids: Vec<String> = self
                        .kv
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
                        .collect();
                    self.reads += ids.len();
                    (tag.clone(), ids)
                })
                .collect();
            b.load(entries, rows);
            if m.oldest > 0 {
                // The time row's first keys, with their values (the storage's key order).
                let listed = self
                    .kv
                    .keys()
                    .filter_map(|k| Some(k.strip_prefix("i:t:")?.to_string()))
                    .take(m.oldest)
                    .collect::<Vec<_>>();
                self.reads += listed.len();
                b.load_oldest(listed);
            }
        }
        panic!("still missing after 8 rounds: {:?}", b.missing(wants));
    }
}
