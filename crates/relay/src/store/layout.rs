//! The store's layout in a host's key-value storage (a Cloudflare Durable Object's): which key
//! holds what, how a change is written, how what the host read is loaded, and the migration of
//! a storage written before index links. The host only gets, lists, puts and deletes the keys
//! named here (pkg-template/relay-handler.js's `durableStorage`).
//!
//! The keys: `e:<entry id>` an entry ([`JournalItem::Put`]), `w:<webhook id>` a webhook id
//! done (its time), `b:budget` the token budget's state, `n:entries` the count of entries,
//! `n:bytes` the bytes they are counted for (a storage written before it counts from 0),
//! `n:held` those of seat pools and usage buffers (the same),
//! `i:<tag>|<entry id>` an index link (`1`; the time row's `i:t:<when Polar answered, 12
//! digits>|<entry id>`, oldest first in key order), `r:<SHA-256 of a key>` a key of the
//! roster (`1`) and `r:phase` the roster's next page (0: current), `v:layout` this layout's
//! version ([`LAYOUT`]).

use serde::Serialize;
use serde_json::Value;

use super::JournalItem;

/// This layout's version, under [`LAYOUT_KEY`]: entries read per key through index links, and
/// the time row (3). A storage without it is migrated once ([`links_of`]).
pub(crate) const LAYOUT: u64 = 3;
/// Where the layout's version is kept.
pub(crate) const LAYOUT_KEY: &str = "v:layout";
/// Entries listed a page at a time while a storage is migrated.
pub(crate) const MIGRATION_PAGE: usize = 512;

const ENTRY: &str = "e:";
const WEBHOOK: &str = "w:";
const LINK: &str = "i:";
const TIME_ROW: &str = "i:t:";
const BUDGET: &str = "b:budget";
const COUNT: &str = "n:entries";
const BYTES: &str = "n:bytes";
const HELD: &str = "n:held";
const ROSTER: &str = "r:";
const ROSTER_PAGE: &str = "r:phase";

/// A change as the host writes it: a key and its new value (`None`: the key is deleted).
pub(crate) type Write = (String, Option<Value>);

/// A change of the store as a write.
pub(crate) fn write_of(item: &JournalItem) -> Write {
    match item {
        // The entry as the whole item serializes it (one serializer of entries in the wasm).
        JournalItem::Put { id, .. } => (
            format!("{ENTRY}{id}"),
            serde_json::to_value(item)
                .ok()
                .and_then(|mut v| v.get_mut("entry").map(Value::take)),
        ),
        JournalItem::Delete { id } => (format!("{ENTRY}{id}"), None),
        JournalItem::Webhook { id, at } => (format!("{WEBHOOK}{id}"), Some(Value::from(*at))),
        JournalItem::Forget { id } => (format!("{WEBHOOK}{id}"), None),
        JournalItem::Budget { state } => (
            BUDGET.into(),
            Some(Value::from(String::from(state.clone()))),
        ),
        JournalItem::Link { tag, id } => (format!("{LINK}{tag}|{id}"), Some(Value::from(1))),
        JournalItem::Unlink { tag, id } => (format!("{LINK}{tag}|{id}"), None),
        JournalItem::Count { n } => (COUNT.into(), Some(Value::from(*n))),
        JournalItem::Bytes { n } => (BYTES.into(), Some(Value::from(*n))),
        JournalItem::Held { n } => (HELD.into(), Some(Value::from(*n))),
    }
}

/// A change the host saves: a key's digest (hex) now the organization's (`true`) or no longer
/// (`false`), or the next page to read (`0`: every page read, the roster current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// `r:<hex>`: saved when `true`, deleted when `false`.
    Key(String, bool),
    /// `r:phase`.
    Page(u32),
}

/// A change of the roster kept in the host's storage as a write.
pub(crate) fn roster_write(change: &RosterChange) -> Write {
    match change {
        RosterChange::Key(digest, known) => {
            (format!("{ROSTER}{digest}"), known.then(|| Value::from(1)))
        }
        RosterChange::Page(page) => (ROSTER_PAGE.into(), Some(Value::from(*page))),
    }
}

/// Writes with only the last of each key, in the order of those last changes: what a save
/// that failed keeps for the next (a storage that keeps failing holds no more than the store).
pub(crate) fn latest(writes: impl IntoIterator<Item = Write>) -> Vec<Write> {
    let mut out: Vec<Write> = Vec::new();
    for (key, value) in writes {
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    out
}

/// Journal items with only the last of each key (as [`latest`]): the tests' host that saves
/// items rather than keys (no host does since the saves moved into the core, `store::saves`).
#[cfg(test)]
pub(crate) fn latest_items(items: Vec<JournalItem>) -> Vec<JournalItem> {
    let mut out: Vec<(String, JournalItem)> = Vec::new();
    for item in items {
        let key = write_of(&item).0;
        out.retain(|(k, _)| *k != key);
        out.push((key, item));
    }
    out.into_iter().map(|(_, item)| item).collect()
}

/// A listing of the storage's keys under `prefix` in key order, those after `after` (absent:
/// from the first), at most `limit` (absent: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct List {
    /// The keys' prefix.
    pub(crate) prefix: String,
    /// The key the listing starts after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<String>,
    /// At most this many keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<usize>,
}

/// What the host reads: the values of `keys` and the keys of each of `lists`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Reads {
    /// Keys whose values are read.
    pub(crate) keys: Vec<String>,
    /// Listings of keys.
    pub(crate) lists: Vec<List>,
}

impl Reads {
    /// Whether nothing is read.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.lists.is_empty()
    }
}

/// What the host read: `values`, `[key, value]` for each key read (`null`: the storage holds
/// none; a key left out was not read, and is read again); `lists`, the `[key, value]` pairs of
/// each listing in the order asked (`null` for one that was not read).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Read {
    /// The values read.
    pub(crate) values: Vec<(String, Option<Value>)>,
    /// The keys listed, with their values.
    pub(crate) lists: Vec<Option<Vec<(String, Value)>>>,
}

/// `[key, value]` pairs of JSON (what is not of that shape is left out).
fn pairs(json: &Value) -> Vec<(String, Value)> {
    let pair = |p: &Value| {
        let p = p.as_array()?;
        Some((p.first()?.as_str()?.to_string(), p.get(1)?.clone()))
    };
    json.as_array()
        .map(|a| a.iter().filter_map(pair).collect())
        .unwrap_or_default()
}

/// Writes as JSON, `[[key, value | null]]` (what [`writes_of`] reads back).
#[cfg(test)]
pub(crate) fn writes_json(writes: Vec<Write>) -> Value {
    Value::Array(
        writes
            .into_iter()
            .map(|(k, v)| Value::Array(vec![Value::String(k), v.unwrap_or(Value::Null)]))
            .collect(),
    )
}

/// Writes of JSON (`[[key, value | null]]`, as a host hands back refusals).
pub(crate) fn writes_of(json: &Value) -> Vec<Write> {
    pairs(json)
        .into_iter()
        .map(|(k, v)| (k, (!v.is_null()).then_some(v)))
        .collect()
}

impl Read {
    /// What the host read, of JSON (`{values: [[key, value | null]], lists: [[[key, value]] |
    /// null]}`): what is not of that shape is left out (not read).
    pub(crate) fn of_json(json: &Value) -> Read {
        let lists = json["lists"]
            .as_array()
            .map(|a| a.iter().map(|l| (!l.is_null()).then(|| pairs(l))).collect());
        Read {
            values: writes_of(&json["values"]),
            lists: lists.unwrap_or_default(),
        }
    }

    fn value(&self, key: &str) -> Option<&Option<Value>> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Saves in a row that refuse one value alone, while others of its batch are written, before
/// the value is dropped as refused for good (an error that says it can never be stored drops
/// it at once).
pub(crate) const REFUSALS: u32 = 3;

/// A value whose write the storage refused, written alone after its batch's call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Its key.
    pub(crate) key: String,
    /// Whether the storage's error says it can never be stored (a Durable Object's
    /// `RangeError`: past its 128 KiB a value or 2 KiB a key; a value that cannot be cloned).
    pub(crate) unstorable: bool,
    /// The storage's error, as logged.
    pub(crate) why: String,
}

/// The refusal policy of a storage that may refuse one value of a batch (a Durable Object's
/// refuses the whole call for it): the batch written key by key tells a value refused for good,
/// dropped and logged once, never tried again with every later save (each would fail, and every
/// webhook answered meanwhile), from a storage that is down (nothing written: the save fails and
/// every key is tried again with the next).
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// Keys refused alone while others were written, how many saves in a row (a few at most:
    /// each is dropped by its third).
    strikes: Vec<(String, u32)>,
}

impl Refusals {
    /// A batch written key by key: `written` the keys stored, `refused` those not. The keys
    /// refused for good (`[key, why]`: dropped), or `None` when the save fails (none written, or
    /// a refused value is tried again with the next save).
    pub(crate) fn judge(
        &mut self,
        written: &[String],
        refused: Vec<Refused>,
    ) -> Option<Vec<(String, String)>> {
        self.strikes.retain(|(k, _)| !written.contains(k));
        if written.is_empty() {
            return None;
        }
        let all = refused.len();
        let mut for_good = Vec::new();
        for r in refused {
            let at = self.strikes.iter().position(|(k, _)| *k == r.key);
            let n = at.map_or(0, |i| self.strikes[i].1) + 1;
            if let Some(i) = at {
                self.strikes.swap_remove(i);
            }
            if r.unstorable || n >= REFUSALS {
                for_good.push((r.key, r.why));
            } else {
                self.strikes.push((r.key, n));
            }
        }
        (for_good.len() == all).then_some(for_good)
    }
}

/// What a start reads: the layout's version, the budget, the count, the roster's page, and
/// every webhook id (three days' worth). No entry: each request reads what it touches.
pub(crate) fn start_reads() -> Reads {
    Reads {
        keys: [LAYOUT_KEY, BUDGET, COUNT, ROSTER_PAGE, BYTES, HELD]
            .map(String::from)
            .to_vec(),
        lists: vec![List {
            prefix: WEBHOOK.into(),
            after: None,
            limit: None,
        }],
    }
}

/// A start's read ([`start_reads`]) as the store's global state.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Started {
    /// Whether the storage is of an older layout: migrate it ([`links_of`]), then start again.
    pub(crate) migrate: bool,
    /// The webhook ids, the budget and the count, as [`PagedBackend::restore`] takes them.
    ///
    /// [`PagedBackend::restore`]: super::PagedBackend::restore
    pub(crate) items: Vec<JournalItem>,
    /// The roster's next page (0: current), when saved.
    pub(crate) roster_page: Option<u32>,
}

/// Reads a start's read (keys with values of another shape are left out: never a grant).
pub(crate) fn started(read: &Read) -> Started {
    let webhooks = read.lists.first().cloned().flatten().unwrap_or_default();
    let value = |key: &str| read.value(key).cloned().flatten();
    let migrate = value(LAYOUT_KEY).and_then(|v| v.as_u64()) != Some(LAYOUT);
    let mut items: Vec<JournalItem> = webhooks
        .iter()
        .filter_map(|(key, at)| {
            Some(JournalItem::Webhook {
                id: key.strip_prefix(WEBHOOK)?.to_string(),
                at: at.as_i64()?,
            })
        })
        .collect();
    let budget = value(BUDGET).and_then(|v| v.as_str().map(String::from));
    if let Some(state) = budget.and_then(|v| super::BudgetState::try_from(v).ok()) {
        items.push(JournalItem::Budget { state });
    }
    if let Some(n) = value(COUNT).and_then(|v| v.as_u64()) {
        items.push(JournalItem::Count { n });
    }
    if let Some(n) = value(BYTES).and_then(|v| v.as_u64()) {
        items.push(JournalItem::Bytes { n });
    }
    if let Some(n) = value(HELD).and_then(|v| v.as_u64()) {
        items.push(JournalItem::Held { n });
    }
    let roster_page = value(ROSTER_PAGE)
        .and_then(|v| v.as_u64())
        .and_then(|p| u32::try_from(p).ok());
    Started {
        migrate,
        items,
        roster_page,
    }
}

/// The migration's next page of entries (`e:` keys with their values), after `after`.
pub(crate) fn migration_page(after: Option<String>) -> List {
    List {
        prefix: ENTRY.into(),
        after,
        limit: Some(MIGRATION_PAGE),
    }
}

/// A page of entries (`[e:<id>, entry]`, as listed) of a storage written before index links:
/// the links to write (each entry's index tags, and its place in the time row).
pub(crate) fn links_of(page: &[(String, Value)]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, entry) in page {
        let Some(id) = key.strip_prefix(ENTRY) else {
            continue;
        };
        let text = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let tags = [
            text("license_key_id").map(|l| format!("l:{l}")),
            text("customer_id").map(|c| format!("c:{c}")),
            text("key_tag").map(String::from),
        ];
        for tag in tags.into_iter().flatten() {
            out.push((format!("{LINK}{tag}|{id}"), Value::from(1)));
        }
        let at = entry
            .get("answered_at")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
            .map_or(0, |t| t.max(0.0).floor() as i64);
        out.push((format!("{TIME_ROW}{at:012}|{id}"), Value::from(1)));
    }
    out
}

/// The writes that end a migration of `count` entries: the count and the layout's version.
pub(crate) fn migrated(count: u64) -> Vec<(String, Value)> {
    vec![
        (COUNT.into(), Value::from(count)),
        (LAYOUT_KEY.into(), Value::from(LAYOUT)),
    ]
}

/// A step of a store's opening ([`Opening`]).
#[derive(Debug, PartialEq)]
pub(crate) enum Open {
    /// Write these (in order), then read these and give what was read to [`Opening::step`].
    Next {
        /// Keys and values to write first.
        puts: Vec<(String, Value)>,
        /// Then what to read.
        reads: Reads,
    },
    /// Opened: the global state read.
    Done(Started),
}

/// A store's opening: the start's reads, and a storage of an older layout migrated first, a
/// page of entries at a time (their index links, then the count and the layout's version).
#[derive(Debug, Default)]
pub(crate) struct Opening {
    /// While migrating: the start's read, the last entry's key listed, the entries counted.
    migrating: Option<(Started, Option<String>, u64)>,
    /// Migrated: the start's read, once the last writes are done.
    migrated: Option<Started>,
}

impl Opening {
    /// The first reads ([`start_reads`]).
    pub(crate) fn first(&mut self) -> Reads {
        *self = Opening::default();
        start_reads()
    }

    /// What was read for the last step: the next.
    pub(crate) fn step(&mut self, read: &Read) -> Open {
        if let Some(started) = self.migrated.take() {
            return Open::Done(started);
        }
        let Some((started, after, count)) = self.migrating.take() else {
            let started = started(read);
            if !started.migrate {
                return Open::Done(started);
            }
            self.migrating = Some((started, None, 0));
            return Open::Next {
                puts: Vec::new(),
                reads: page_reads(None),
            };
        };
        match read.lists.first().cloned().flatten() {
            // Not read: read again.
            None => {
                let reads = page_reads(after.clone());
                self.migrating = Some((started, after, count));
                Open::Next {
                    puts: Vec::new(),
                    reads,
                }
            }
            // Every entry linked: the count and the version written, the start's read kept
            // (its webhook ids, budget and roster page are the storage's), nothing read again.
            Some(page) if page.is_empty() => {
                let mut items = started.items;
                items.retain(|i| !matches!(i, JournalItem::Count { .. }));
                items.push(JournalItem::Count { n: count });
                self.migrated = Some(Started {
                    migrate: false,
                    items,
                    roster_page: started.roster_page,
                });
                Open::Next {
                    puts: migrated(count),
                    reads: Reads::default(),
                }
            }
            Some(page) => {
                let last = page.last().map(|(k, _)| k.clone());
                let puts = links_of(&page);
                self.migrating = Some((started, last.clone(), count + page.len() as u64));
                Open::Next {
                    puts,
                    reads: page_reads(last),
                }
            }
        }
    }
}

fn page_reads(after: Option<String>) -> Reads {
    Reads {
        keys: Vec::new(),
        lists: vec![migration_page(after)],
    }
}

/// What a paged store's load reads: the entries (`e:<id>`) and roster digests (`r:<digest>`)
/// named, each index row (every `i:<tag>|` key) and, with the store full, the time row's first
/// `oldest` keys.
pub(crate) fn load_reads(missing: &super::Missing, roster: &[String]) -> Reads {
    let mut keys: Vec<String> = missing
        .entries
        .iter()
        .map(|id| format!("{ENTRY}{id}"))
        .collect();
    keys.extend(roster.iter().map(|d| format!("{ROSTER}{d}")));
    let mut lists: Vec<List> = missing
        .tags
        .iter()
        .map(|tag| List {
            prefix: format!("{LINK}{tag}|"),
            after: None,
            limit: None,
        })
        .collect();
    if missing.oldest > 0 {
        lists.push(List {
            prefix: TIME_ROW.into(),
            after: None,
            limit: Some(missing.oldest),
        });
    }
    Reads { keys, lists }
}

/// What a load read, as the store takes it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Loaded {
    /// Entries read (hex id; `None`: the storage holds none).
    pub(crate) entries: Vec<(String, Option<super::Entry>)>,
    /// Index rows read (tag, hex ids).
    pub(crate) rows: Vec<(String, Vec<String>)>,
    /// Roster digests read (hex digest, whether the storage holds it).
    pub(crate) roster: Vec<(String, bool)>,
    /// The time row's first keys (each after `i:t:`), when listed.
    pub(crate) oldest: Option<Vec<String>>,
}

/// What the host read for `reads` ([`load_reads`]) as the store takes it: a key not read, a
/// listing not read and a value that does not read as an entry are left out (read again, or
/// never read as absent, which could write over what the storage holds).
pub(crate) fn loaded(reads: &Reads, read: &Read) -> Loaded {
    let mut out = Loaded::default();
    for (key, value) in &read.values {
        if !reads.keys.contains(key) {
            continue;
        }
        if let Some(id) = key.strip_prefix(ENTRY) {
            match value {
                None => out.entries.push((id.to_string(), None)),
                // Read as a journal item reads it (one reader of entries in the wasm).
                Some(v) => {
                    let item = serde_json::json!({"op": "put", "id": id, "entry": v});
                    if let Ok(JournalItem::Put { entry, .. }) = serde_json::from_value(item) {
                        out.entries.push((id.to_string(), Some(entry)));
                    }
                }
            }
        } else if let Some(digest) = key.strip_prefix(ROSTER) {
            out.roster.push((digest.to_string(), value.is_some()));
        }
    }
    for (list, keys) in reads.lists.iter().zip(&read.lists) {
        let Some(keys) = keys else { continue };
        let tails = keys
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(list.prefix.as_str()));
        if list.prefix == TIME_ROW {
            out.oldest = Some(tails.map(String::from).collect());
        } else if let Some(tag) = list
            .prefix
            .strip_prefix(LINK)
            .and_then(|t| t.strip_suffix('|'))
        {
            out.rows
                .push((tag.to_string(), tails.map(String::from).collect()));
        }
    }
    out
}

/// The reconcile's page of index rows (tags under `prefix`, after the row `after`) as a
/// listing of the storage's keys.
pub(crate) fn rows_list(prefix: &str, after: Option<&str>, limit: usize) -> List {
    List {
        prefix: format!("{LINK}{prefix}"),
        after: after.map(|a| format!("{LINK}{a}")),
        limit: Some(limit),
    }
}

/// The rows (`<tag>|<entry id>`) of a listing of [`rows_list`].
pub(crate) fn rows_of(keys: Vec<String>) -> Vec<String> {
    keys.into_iter()
        .filter_map(|k| k.strip_prefix(LINK).map(String::from))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::{BudgetState, Missing};

    fn grant() -> Value {
        serde_json::to_value(crate::store::tests::granted("lk-1", "cu-1", 1_790_000_123)).unwrap()
    }

    #[test]
    fn every_change_has_its_key() {
        let id = "ab".repeat(32);
        let entry: crate::store::Entry = serde_json::from_value(grant()).unwrap();
        let rows = [
            (
                JournalItem::Put {
                    id: id.clone(),
                    entry,
                },
                format!("e:{id}"),
                true,
            ),
            (
                JournalItem::Delete { id: id.clone() },
                format!("e:{id}"),
                false,
            ),
            (
                JournalItem::Webhook {
                    id: "evt".into(),
                    at: 5,
                },
                "w:evt".into(),
                true,
            ),
            (
                JournalItem::Forget { id: "evt".into() },
                "w:evt".into(),
                false,
            ),
            (
                JournalItem::Link {
                    tag: "l:x".into(),
                    id: id.clone(),
                },
                format!("i:l:x|{id}"),
                true,
            ),
            (
                JournalItem::Unlink {
                    tag: "l:x".into(),
                    id: id.clone(),
                },
                format!("i:l:x|{id}"),
                false,
            ),
            (JournalItem::Count { n: 7 }, "n:entries".into(), true),
        ];
        for (item, key, kept) in rows {
            let (k, v) = write_of(&item);
            assert_eq!((k, v.is_some()), (key, kept), "{item:?}");
        }
        let state = BudgetState {
            at: 9,
            calls: vec![(1, 2)],
            blocked_ms: 0,
        };
        assert_eq!(
            write_of(&JournalItem::Budget { state }),
            ("b:budget".into(), Some(Value::from("9 0 1:2")))
        );
        assert_eq!(
            roster_write(&RosterChange::Key("d".into(), true)),
            ("r:d".into(), Some(Value::from(1)))
        );
        assert_eq!(
            roster_write(&RosterChange::Key("d".into(), false)),
            ("r:d".into(), None)
        );
        assert_eq!(
            roster_write(&RosterChange::Page(3)),
            ("r:phase".into(), Some(Value::from(3)))
        );
    }

    #[test]
    fn a_kept_save_holds_the_last_change_of_each_key_in_order() {
        let w = |k: &str, v: Option<i64>| (k.to_string(), v.map(Value::from));
        let kept = latest([
            w("a", Some(1)),
            w("b", Some(2)),
            w("a", None),
            w("c", Some(3)),
            w("b", Some(4)),
        ]);
        assert_eq!(kept, [w("a", None), w("c", Some(3)), w("b", Some(4))]);
        let items = latest_items(vec![
            JournalItem::Count { n: 1 },
            JournalItem::Webhook {
                id: "x".into(),
                at: 1,
            },
            JournalItem::Count { n: 2 },
        ]);
        assert_eq!(
            items,
            [
                JournalItem::Webhook {
                    id: "x".into(),
                    at: 1
                },
                JournalItem::Count { n: 2 }
            ]
        );
    }

    #[test]
    fn a_start_reads_the_global_state_and_migrates_an_older_layout() {
        let reads = start_reads();
        assert_eq!(
            reads.keys,
            [
                "v:layout",
                "b:budget",
                "n:entries",
                "r:phase",
                "n:bytes",
                "n:held"
            ]
        );
        let old = Read {
            values: vec![("v:layout".into(), None)],
            lists: vec![],
        };
        assert!(started(&old).migrate);
        let read = Read {
            values: vec![
                ("v:layout".into(), Some(Value::from(3))),
                ("b:budget".into(), Some(Value::from("9 0 1:2"))),
                ("n:entries".into(), Some(Value::from(12))),
                ("r:phase".into(), Some(Value::from(2))),
            ],
            lists: vec![],
        };
        let read = Read {
            lists: vec![Some(vec![
                ("w:evt".into(), Value::from(5)),
                ("w:bad".into(), Value::from("x")),
            ])],
            ..read
        };
        let s = started(&read);
        assert!(!s.migrate);
        assert_eq!(s.roster_page, Some(2));
        assert_eq!(s.items.len(), 3, "{:?}", s.items);
        assert!(s.items.contains(&JournalItem::Webhook {
            id: "evt".into(),
            at: 5
        }));
        assert!(s.items.contains(&JournalItem::Count { n: 12 }));
    }

    #[test]
    fn a_migration_links_each_entry_as_a_write_would() {
        let id = "cd".repeat(32);
        let entry: crate::store::Entry = serde_json::from_value(grant()).unwrap();
        // What a write of the entry links today, in the layout's keys.
        let mut backend_links: Vec<String> = crate::store::entry::tags(&entry)
            .iter()
            .map(|t| format!("i:{t}|{id}"))
            .collect();
        backend_links.push(format!("i:t:{:012}|{id}", entry.answered_at));
        let links: Vec<String> = links_of(&[
            (format!("e:{id}"), grant()),
            ("w:not-an-entry".into(), grant()),
        ])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
        assert_eq!(links, backend_links);
        assert_eq!(
            migrated(4),
            [
                ("n:entries".into(), Value::from(4)),
                ("v:layout".into(), Value::from(3))
            ]
        );
        assert_eq!(
            migration_page(Some("e:x".into())).limit,
            Some(MIGRATION_PAGE)
        );
    }

    #[test]
    fn a_load_reads_what_is_missing_and_skips_what_was_not_read() {
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        let missing = Missing {
            entries: vec![a.clone(), b.clone()],
            tags: vec!["k:t".into()],
            oldest: 2,
        };
        let reads = load_reads(&missing, &["dd".into()]);
        assert_eq!(
            reads.keys,
            [format!("e:{a}"), format!("e:{b}"), "r:dd".into()]
        );
        assert_eq!(reads.lists[0].prefix, "i:k:t|");
        assert_eq!(
            (reads.lists[1].prefix.as_str(), reads.lists[1].limit),
            ("i:t:", Some(2))
        );
        // b was not read (a save ended meanwhile), nor the time row.
        let read = Read {
            values: vec![
                (format!("e:{a}"), Some(grant())),
                ("r:dd".into(), None),
                ("e:other".into(), None),
            ],
            lists: vec![Some(vec![(format!("i:k:t|{a}"), Value::from(1))]), None],
        };
        let got = loaded(&reads, &read);
        assert_eq!(got.entries.len(), 1);
        assert_eq!(got.entries[0].0, a);
        assert_eq!(got.rows, [("k:t".to_string(), vec![a.clone()])]);
        assert_eq!(got.roster, [("dd".to_string(), false)]);
        assert_eq!(got.oldest, None);
        // A value that is not an entry is not loaded (never as absent).
        let bad = Read {
            values: vec![(format!("e:{a}"), Some(Value::from(1)))],
            lists: vec![],
        };
        assert!(loaded(&reads, &bad).entries.is_empty());
    }

    #[test]
    fn an_older_storage_is_migrated_a_page_at_a_time_then_started() {
        let id = "ee".repeat(32);
        let mut open = Opening::default();
        assert_eq!(open.first(), start_reads());
        let Open::Next { puts, reads } = open.step(&Read::default()) else {
            panic!("no migration")
        };
        assert!(puts.is_empty());
        assert_eq!(reads.lists, [migration_page(None)]);
        let page = Read {
            values: vec![],
            lists: vec![Some(vec![(format!("e:{id}"), grant())])],
        };
        let Open::Next { puts, reads } = open.step(&page) else {
            panic!("stopped")
        };
        assert_eq!(puts, links_of(&page.lists[0].clone().unwrap()));
        assert_eq!(reads.lists[0].after, Some(format!("e:{id}")));
        let Open::Next { puts, reads } = open.step(&Read {
            values: vec![],
            lists: vec![Some(vec![])],
        }) else {
            panic!("stopped")
        };
        assert_eq!(puts, migrated(1));
        assert!(reads.is_empty(), "the start's read kept, not read again");
        let Open::Done(started) = open.step(&Read::default()) else {
            panic!("not opened")
        };
        assert!(!started.migrate);
        assert_eq!(started.items, [JournalItem::Count { n: 1 }]);
    }

    #[test]
    fn the_hosts_json_reads_back() {
        let w = |k: &str, v: Option<Value>| (k.to_string(), v);
        let writes = vec![
            w("e:a", Some(grant())),
            w("w:b", None),
            w("n:entries", Some(Value::from(2))),
        ];
        assert_eq!(writes_of(&writes_json(writes.clone())), writes);
        let json = serde_json::json!({
            "values": [["e:a", null], ["r:d", 1], "junk", [5, 1]],
            "lists": [[["i:l:x|a", 1]], null],
        });
        let read = Read::of_json(&json);
        assert_eq!(
            read.values,
            [w("e:a", None), w("r:d", Some(Value::from(1)))]
        );
        assert_eq!(
            read.lists,
            [Some(vec![("i:l:x|a".to_string(), Value::from(1))]), None]
        );
        assert_eq!(Read::of_json(&Value::Null), Read::default());
    }

    #[test]
    fn a_value_refused_alone_is_dropped_at_once_when_unstorable_else_after_three_saves() {
        let refused = |key: &str, unstorable| Refused {
            key: key.into(),
            unstorable,
            why: "no".into(),
        };
        let mut r = Refusals::default();
        let ok = ["w:a".to_string()];
        // Nothing written: the storage is down, every key tried again, no strike counted.
        assert_eq!(r.judge(&[], vec![refused("e:x", true)]), None);
        // Too large: dropped at once.
        assert_eq!(
            r.judge(&ok, vec![refused("e:big", true)]),
            Some(vec![("e:big".into(), "no".into())])
        );
        // Refused alone for another reason: tried again twice, dropped at the third save.
        assert_eq!(r.judge(&ok, vec![refused("e:y", false)]), None);
        assert_eq!(r.judge(&ok, vec![refused("e:y", false)]), None);
        assert_eq!(
            r.judge(&ok, vec![refused("e:y", false)]),
            Some(vec![("e:y".into(), "no".into())])
        );
        // Written in between: its strikes start again.
        assert_eq!(r.judge(&ok, vec![refused("e:z", false)]), None);
        assert_eq!(r.judge(&["e:z".into()], vec![]), Some(vec![]));
        assert_eq!(r.judge(&ok, vec![refused("e:z", false)]), None);
        assert_eq!(r.judge(&ok, vec![refused("e:z", false)]), None);
        assert!(r.judge(&ok, vec![refused("e:z", false)]).is_some());
    }

    #[test]
    fn the_reconciles_rows_are_index_keys() {
        let list = rows_list("l:", Some("l:x|ab"), 128);
        assert_eq!(
            (list.prefix.as_str(), list.after.as_deref()),
            ("i:l:", Some("i:l:x|ab"))
        );
        assert_eq!(rows_of(vec!["i:l:x|ab".into(), "junk".into()]), ["l:x|ab"]);
    }
}
