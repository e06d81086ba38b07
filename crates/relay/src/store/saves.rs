//! The host's saves of the store (issue #63, item 2: the store's protocol in Rust): the
//! changes a host hands its storage, in order, and what its reads see meanwhile. The host only
//! writes the batch it is handed ([`Saves::batch`]), says how that went ([`Saves::ended`]),
//! and reads what it is told to ([`Saves::unread`]); the rules are here:
//!
//! - **Read your writes.** With a store read per key (a Durable Object's storage), a change
//!   handed to a save is seen by every read from then on, over the storage's own value, until
//!   its save ended: a request that writes a key and reads it again (or another request
//!   meanwhile) never loads what the storage held before. Each change carries a sequence
//!   number; a save that ends lets go of the changes it wrote, unless a later change of the
//!   same key came since (that one is still unsaved, and still seen).
//! - **A read that crossed a save is read again.** A read that began before a save of one of
//!   its keys ended may hold the older value (and a listing the older keys): those are left out
//!   of what the store loads (read again in the next round), never loaded as absent over what
//!   was just saved.
//! - **A failed save is kept for the next**, the last change of each key only
//!   ([`super::layout::latest`]), so a storage that keeps failing holds no more than the store.
//! - **Never trim between a load and its use** ([`take_writes`]): saving lets the bounded cache
//!   go of what was touched least recently, which must not be what a load just read for the
//!   job that needs it next.

pub(crate) mod loads;
pub(crate) mod writing;

use serde_json::Value;

use super::layout::RosterChange;
use super::layout::{self, Read, Reads, Write};
use super::{JournalItem, PagedBackend};

/// Keys whose saves ended remembered for the reads under way (a read that began before the
/// oldest forgotten is read again whole).
const ENDED_KEPT: usize = 1024;

/// A change handed to a save, with its sequence number.
#[derive(Debug, Clone)]
struct Held {
    /// The storage key it changes (for journal items, the key [`layout::write_of`] names).
    key: String,
    /// As the host writes it: a value (`null`: the key deleted), or a journal item.
    change: Value,
    seq: u64,
}

/// Where a read began ([`Saves::reading`]): the saves that ended after it are the ones its
/// values may predate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading(u64);

/// The host's saves of the store (see the module docs).
#[derive(Debug)]
pub(crate) struct Saves {
    /// Keys read per key (a paged store): changes are seen by reads until saved.
    paged: bool,
    seq: u64,
    /// Changes not handed to the storage yet, in order.
    unsaved: Vec<Held>,
    /// The batch handed to the storage, its outcome not given yet.
    handed: Vec<Held>,
    /// Changes handed and not saved yet, one per key: the last value and its sequence number
    /// (a list: as many as the changes waiting, a few between saves).
    overlay: Vec<(String, Option<Value>, u64)>,
    /// The keys saved, each with the number of the save that wrote it last: the last
    /// [`ENDED_KEPT`] keys.
    saved: Vec<(String, u64)>,
    /// The newest save of a key no longer remembered.
    forgot: u64,
    /// Saves that ended so far.
    epoch: u64,
}

impl Saves {
    /// Saves of a store read per key (writes `[key, value | null]`, seen by reads until saved).
    pub(crate) fn paged() -> Saves {
        Saves::new(true)
    }

    /// Saves of a store saved and read whole (journal items; nothing is read meanwhile).
    pub(crate) fn whole() -> Saves {
        Saves::new(false)
    }

    fn new(paged: bool) -> Saves {
        Saves {
            paged,
            seq: 0,
            unsaved: Vec::new(),
            handed: Vec::new(),
            overlay: Vec::new(),
            saved: Vec::new(),
            forgot: 0,
            epoch: 0,
        }
    }

    /// Changes to save (a paged store's writes): seen by every read from now on.
    pub(crate) fn stage_writes(&mut self, writes: Vec<Write>) {
        for (key, value) in writes {
            self.seq += 1;
            if self.paged {
                self.overlay.retain(|(k, _, _)| *k != key);
                self.overlay.push((key.clone(), value.clone(), self.seq));
            }
            self.hold(key, value.unwrap_or(Value::Null));
        }
    }

    /// A change queued, the last of its key (an earlier one not handed yet is let go of: a
    /// storage that keeps failing holds no more than the store).
    fn hold(&mut self, key: String, change: Value) {
        self.unsaved.retain(|h| h.key != key);
        self.unsaved.push(Held {
            key,
            change,
            seq: self.seq,
        });
    }

    /// Changes to save (a whole store's journal items); one that does not serialize is left
    /// out (it could not be read back either).
    pub(crate) fn stage_items(&mut self, items: Vec<JournalItem>) {
        for item in items {
            let key = layout::write_of(&item).0;
            let Ok(change) = serde_json::to_value(&item) else {
                continue;
            };
            self.seq += 1;
            self.hold(key, change);
        }
    }

    /// The next batch for the storage, JSON (a paged store's `[[key, value | null]]`, else
    /// journal items), every change staged so far in order; `None` when there is nothing to
    /// save. Its outcome goes to [`Saves::ended`] before the next batch is asked for (a batch
    /// whose outcome never came is counted as failed, kept with the next).
    pub(crate) fn batch(&mut self) -> Option<Value> {
        if !self.handed.is_empty() {
            self.ended(false);
        }
        if self.unsaved.is_empty() {
            return None;
        }
        self.handed = std::mem::take(&mut self.unsaved);
        let paged = self.paged;
        Some(Value::Array(
            self.handed
                .iter()
                .map(|h| {
                    if paged {
                        Value::Array(vec![Value::String(h.key.clone()), h.change.clone()])
                    } else {
                        h.change.clone()
                    }
                })
                .collect(),
        ))
    }

    /// How the batch of [`Saves::batch`] went: `saved`, its changes are the storage's (each
    /// let go of unless a later change of its key came since); else kept for the next batch,
    /// the last change of each key only, before the changes staged meanwhile.
    pub(crate) fn ended(&mut self, saved: bool) {
        let batch = std::mem::take(&mut self.handed);
        if saved {
            self.overlay
                .retain(|(k, _, seq)| !batch.iter().any(|h| h.key == *k && h.seq == *seq));
            self.epoch += 1;
            for h in batch {
                self.saved.retain(|(k, _)| *k != h.key);
                self.saved.push((h.key, self.epoch));
            }
            while self.saved.len() > ENDED_KEPT {
                let (_, n) = self.saved.remove(0);
                self.forgot = self.forgot.max(n);
            }
        } else {
            let mut kept = batch;
            kept.retain(|h| !self.unsaved.iter().any(|u| u.key == h.key));
            kept.append(&mut self.unsaved);
            self.unsaved = kept;
        }
    }

    /// Whether changes are waiting for a save (staged, or handed and not ended).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> bool {
        !self.unsaved.is_empty() || !self.handed.is_empty()
    }

    /// A read begins now.
    pub(crate) fn reading(&self) -> Reading {
        Reading(self.epoch)
    }

    /// What of `reads` the storage is asked for: the keys whose changes are not waiting for a
    /// save (those are the reads' already), and every listing.
    pub(crate) fn unread(&self, reads: &Reads) -> Reads {
        Reads {
            keys: reads
                .keys
                .iter()
                .filter(|k| self.shown(k).is_none())
                .cloned()
                .collect(),
            lists: reads.lists.clone(),
        }
    }

    /// The change of `key` waiting for a save, if any.
    fn shown(&self, key: &str) -> Option<&Option<Value>> {
        self.overlay
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v)
    }

    /// Whether a save that ended after `since` wrote a key `hit` matches (every key, when
    /// those saves are no longer all remembered).
    fn crossed(&self, since: Reading, hit: impl Fn(&str) -> bool) -> bool {
        since.0 < self.forgot
            || self
                .saved
                .iter()
                .any(|(k, n)| *n > since.0 && hit(k.as_str()))
    }

    /// What a read that began at `since` gives the store for `reads`, from what the storage
    /// gave (`got`, for [`Saves::unread`]'s reads): each key's change waiting for a save over
    /// the storage's value; a key or a listing whose save ended while it was read is left out
    /// (read again); a listing with the changes waiting applied (a bounded one leaves them
    /// out: they would not be in their place).
    pub(crate) fn read(&self, since: Reading, reads: &Reads, got: &Read) -> Read {
        let mut values = Vec::new();
        for key in &reads.keys {
            if let Some(value) = self.shown(key) {
                values.push((key.clone(), value.clone()));
            } else if !self.crossed(since, |k| k == key) {
                if let Some((_, value)) = got.values.iter().find(|(k, _)| k == key) {
                    values.push((key.clone(), value.clone()));
                }
            }
        }
        let lists = reads
            .lists
            .iter()
            .enumerate()
            .map(|(i, list)| {
                let page = got.lists.get(i)?.as_ref()?;
                let prefix = list.prefix.as_str();
                if self.crossed(since, |k| k.starts_with(prefix)) {
                    return None;
                }
                let mut page = page.clone();
                for (key, value, _) in &self.overlay {
                    if !key.starts_with(prefix) {
                        continue;
                    }
                    page.retain(|(k, _)| k != key);
                    let in_place = list.after.as_ref().is_none_or(|a| key > a);
                    if let (Some(value), None, true) = (value, list.limit, in_place) {
                        // In key order, as the storage lists.
                        let at = page.iter().position(|(k, _)| k > key).unwrap_or(page.len());
                        page.insert(at, (key.clone(), value.clone()));
                    }
                }
                Some(page)
            })
            .collect();
        Read { values, lists }
    }
}

/// Logs a save that failed (`why`: the storage's error): its changes are kept for the next
/// save; a webhook waiting on it is refused (Polar delivers it again), a check's answer
/// passed on.
pub(crate) fn save_failed(why: &str) {
    log::error!("relay: the store could not be saved ({why}): its changes are saved with the next");
}

/// A paged store's changes since the last save, as writes (the last change of each key, in
/// order, the roster's among them), for [`Saves::stage_writes`]. The cache then lets go of what
/// was touched least recently, past its bound, unless `loads_held`: a load was just read for
/// a job that has not used it yet ([`crate::flow::background::Background::holds_loads`]), and
/// trimming now could drop what it read (a cache of one entry would never hold a key's row and
/// its entry at once).
pub(crate) fn take_writes(
    paged: &PagedBackend,
    roster: &[RosterChange],
    loads_held: bool,
) -> Vec<Write> {
    let items = paged.take();
    let writes = items
        .iter()
        .map(layout::write_of)
        .chain(roster.iter().map(layout::roster_write));
    let writes = layout::latest(writes);
    if !loads_held {
        paged.trim();
    }
    writes
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::layout::List;
    use serde_json::json;

    fn w(key: &str, value: Option<Value>) -> Write {
        (key.to_string(), value)
    }

    fn reads(keys: &[&str], lists: &[(&str, Option<usize>)]) -> Reads {
        Reads {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            lists: lists
                .iter()
                .map(|(p, limit)| List {
                    prefix: p.to_string(),
                    after: None,
                    limit: *limit,
                })
                .collect(),
        }
    }

    /// The storage the host reads: a map (what `batch` wrote, once `ended(true)`).
    fn storage_read(stored: &[(&str, Value)], asked: &Reads) -> Read {
        Read {
            values: asked
                .keys
                .iter()
                .map(|k| {
                    let v = stored.iter().find(|(s, _)| s == k).map(|(_, v)| v.clone());
                    (k.clone(), v)
                })
                .collect(),
            lists: asked
                .lists
                .iter()
                .map(|l| {
                    Some(
                        stored
                            .iter()
                            .filter(|(k, _)| k.starts_with(&l.prefix))
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_write_then_a_read_sees_the_write() {
        let mut saves = Saves::paged();
        // The storage still holds the old value and an index link the change deletes.
        let stored = [("e:1", json!("old")), ("i:k|1", json!(1))];
        saves.stage_writes(vec![
            w("e:1", Some(json!("new"))),
            w("i:k|1", None),
            w("i:k|2", Some(json!(1))),
            w("i:k|0", Some(json!(1))),
        ]);
        let want = reads(&["e:1", "e:9"], &[("i:k|", None)]);
        let since = saves.reading();
        let asked = saves.unread(&want);
        // The key waiting for its save is not asked of the storage.
        assert_eq!(asked.keys, vec!["e:9".to_string()]);
        let read = saves.read(since, &want, &storage_read(&stored, &asked));
        assert_eq!(
            read.values,
            vec![("e:1".into(), Some(json!("new"))), ("e:9".into(), None)]
        );
        // In key order, as the storage lists: the link deleted gone, those added in place.
        assert_eq!(
            read.lists,
            vec![Some(vec![
                ("i:k|0".into(), json!(1)),
                ("i:k|2".into(), json!(1))
            ])]
        );
        // Still seen while the save is under way, and while it failed and waits again.
        let batch = saves.batch().unwrap();
        assert_eq!(batch[0], json!(["e:1", "new"]));
        assert_eq!(batch[1], json!(["i:k|1", null]));
        let read = saves.read(saves.reading(), &want, &storage_read(&stored, &asked));
        assert_eq!(read.values[0], ("e:1".into(), Some(json!("new"))));
        saves.ended(false);
        let read = saves.read(saves.reading(), &want, &storage_read(&stored, &asked));
        assert_eq!(read.values[0], ("e:1".into(), Some(json!("new"))));
        // Saved: the storage's value is read again, and it is the new one.
        let batch = saves.batch().unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 4);
        saves.ended(true);
        assert!(!saves.pending());
        let stored = [
            ("e:1", json!("new")),
            ("i:k|0", json!(1)),
            ("i:k|2", json!(1)),
        ];
        let since = saves.reading();
        let asked = saves.unread(&want);
        assert_eq!(asked.keys.len(), 2);
        let read = saves.read(since, &want, &storage_read(&stored, &asked));
        assert_eq!(read.values[0], ("e:1".into(), Some(json!("new"))));
    }

    #[test]
    fn a_read_that_crossed_a_save_is_read_again() {
        let mut saves = Saves::paged();
        saves.stage_writes(vec![
            w("e:1", Some(json!("new"))),
            w("i:k|1", Some(json!(1))),
        ]);
        saves.batch().unwrap();
        // A read begins while the save is under way; the keys were not asked (seen as
        // changes) but the save ends before the read does.
        let want = reads(&["e:1", "e:2"], &[("i:k|", None), ("i:j|", None)]);
        let since = saves.reading();
        let asked = saves.unread(&want);
        assert_eq!(asked.keys, vec!["e:2".to_string()]);
        let before = storage_read(&[("e:2", json!("two"))], &asked);
        saves.ended(true);
        let read = saves.read(since, &want, &before);
        // e:1 is neither the (unasked) storage's nor absent: left out, read again.
        assert_eq!(read.values, vec![("e:2".into(), Some(json!("two")))]);
        // The listing the save touched is read again; the other is as read.
        assert_eq!(read.lists, vec![None, Some(vec![])]);
        // A read begun after the save reads the storage as it is.
        let since = saves.reading();
        let after = storage_read(
            &[("e:1", json!("new")), ("i:k|1", json!(1))],
            &saves.unread(&want),
        );
        let read = saves.read(since, &want, &after);
        assert_eq!(read.values[0], ("e:1".into(), Some(json!("new"))));
        assert_eq!(read.lists[0], Some(vec![("i:k|1".into(), json!(1))]));
    }

    #[test]
    fn a_later_change_outlives_the_save_of_an_earlier_one() {
        let mut saves = Saves::paged();
        saves.stage_writes(vec![w("e:1", Some(json!("first")))]);
        saves.batch().unwrap();
        // Changed again while the first is being saved.
        saves.stage_writes(vec![w("e:1", Some(json!("second")))]);
        saves.ended(true);
        let want = reads(&["e:1"], &[]);
        let read = saves.read(saves.reading(), &want, &Read::default());
        assert_eq!(read.values, vec![("e:1".into(), Some(json!("second")))]);
        assert_eq!(saves.batch().unwrap(), json!([["e:1", "second"]]));
    }

    #[test]
    fn a_failed_save_keeps_the_last_change_of_each_key_in_order() {
        let mut saves = Saves::paged();
        saves.stage_writes(vec![w("a", Some(json!(1))), w("b", Some(json!(1)))]);
        saves.batch().unwrap();
        saves.stage_writes(vec![w("a", Some(json!(2))), w("c", None)]);
        saves.ended(false);
        assert_eq!(
            saves.batch().unwrap(),
            json!([["b", 1], ["a", 2], ["c", null]])
        );
        // A batch whose outcome never came is kept with the next, as a failed one.
        saves.stage_writes(vec![w("d", Some(json!(1)))]);
        assert_eq!(
            saves.batch().unwrap(),
            json!([["b", 1], ["a", 2], ["c", null], ["d", 1]])
        );
        saves.ended(true);
        assert_eq!(saves.batch(), None);
    }

    #[test]
    fn a_bounded_listing_leaves_unsaved_changes_out() {
        let mut saves = Saves::paged();
        saves.stage_writes(vec![w("i:t:000000000005|x", Some(json!(1)))]);
        let want = reads(&[], &[("i:t:", Some(2))]);
        let stored = [
            ("i:t:000000000001|a", json!(1)),
            ("i:t:000000000002|b", json!(1)),
        ];
        let read = saves.read(saves.reading(), &want, &storage_read(&stored, &want));
        assert_eq!(read.lists[0].as_ref().unwrap().len(), 2);
    }

    #[test]
    fn a_read_older_than_every_remembered_save_is_read_again() {
        let mut saves = Saves::paged();
        let since = saves.reading();
        for n in 0..=ENDED_KEPT {
            saves.stage_writes(vec![w(&format!("e:{n}"), Some(json!(n)))]);
            saves.batch().unwrap();
            saves.ended(true);
        }
        let want = reads(&["e:other"], &[("i:", None)]);
        let read = saves.read(since, &want, &storage_read(&[], &want));
        assert_eq!(
            read,
            Read {
                values: vec![],
                lists: vec![None]
            }
        );
    }

    #[test]
    fn a_whole_store_saves_journal_items() {
        let mut saves = Saves::whole();
        saves.stage_items(vec![
            JournalItem::Webhook {
                id: "w1".into(),
                at: 5,
            },
            JournalItem::Forget { id: "w1".into() },
        ]);
        saves.batch().unwrap();
        saves.ended(false);
        assert_eq!(
            saves.batch().unwrap(),
            json!([{"op": "forget", "id": "w1"}])
        );
    }
}
