//! The crash-safe file: redb (a pure-Rust embedded store with copy-on-write B-trees and
//! checksummed commits: a commit is durable when it returns, a `kill -9` or a power cut
//! leaves the last committed state). A lazy write ([`Backend::update_lazily`], a seat's
//! heartbeat) is committed without its own fsync while the last durable commit is younger
//! than [`LAZY_COMMIT_MS`], and rides on the next durable one: one fsync a second for the
//! heartbeats of any number of seats, instead of one each.

use super::entry::tags;
use super::{
    evictable, eviction_rank, held, passes_held_share, stored_bytes, Backend, BudgetState, Entry,
    EntryId, Narrow, Narrower, StoreError, Updater, Writes, DEFAULT_MAX_BYTES, LAZY_COMMIT_MS,
    MAX_ENTRIES_PER_KEY, WEBHOOK_MEMORY_SECONDS,
};
use crate::locked::locked;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The byte cap ([`Backend::cap_bytes`]).
    max_bytes: AtomicU64,
    /// The entries' bytes as last committed (`None`: counted again, in the next write, from
    /// the file: at the first write, or after a write failed).
    counts: std::sync::Mutex<Option<Counts>>,
    /// When the store was opened, and the last durable commit since (ms after it): a lazy
    /// write within [`LAZY_COMMIT_MS`] of it is not made durable on its own.
    opened: std::time::Instant,
    durable_ms: AtomicU64,
}

/// The bytes the entries are counted for ([`stored_bytes`]), and those the byte cap may not
/// evict (revocations).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    bytes: usize,
    pinned: usize,
    /// Seat pools' and usage buffers' bytes ([`held`]), within [`crate::store::entry::held_share`].
    held: usize,
}

impl Counts {
    fn add(&mut self, e: &Entry) {
        let size = stored_bytes(e);
        self.bytes = self.bytes.saturating_add(size);
        if !evictable(e) {
            self.pinned = self.pinned.saturating_add(size);
        }
        if held(e) {
            self.held = self.held.saturating_add(size);
        }
    }

    fn sub(&mut self, e: &Entry) {
        let size = stored_bytes(e);
        self.bytes = self.bytes.saturating_sub(size);
        if !evictable(e) {
            self.pinned = self.pinned.saturating_sub(size);
        }
        if held(e) {
            self.held = self.held.saturating_sub(size);
        }
    }
}

debug_some!(RedbBackend, b => { "max_entries": b.max_entries });

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
        let before =
            unwinding(|| -> Result<_, redb::Error> { Ok((read_meta(&db, DAMAGED)?, stamp(&db)?)) });
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
                max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
                counts: std::sync::Mutex::default(),
                opened: std::time::Instant::now(),
                durable_ms: AtomicU64::new(0),
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
        self.commit_as(w, carried, false)
    }

    /// Commits `w`, `lazily` without an fsync of its own when the last durable commit is
    /// younger than [`LAZY_COMMIT_MS`] (redb's `Durability::None`: the next durable commit
    /// makes it durable with it; a crash before loses it), else durably.
    fn commit_as(
        &self,
        mut w: redb::WriteTransaction,
        carried: Option<BudgetState>,
        lazily: bool,
    ) -> Result<(), StoreError> {
        let now_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let recent =
            now_ms.saturating_sub(self.durable_ms.load(Ordering::Relaxed)) < LAZY_COMMIT_MS;
        // A transaction that cannot be made lazy (redb refuses with a persistent savepoint,
        // which this store never makes) stays durable.
        let lazy = lazily && recent && w.set_durability(redb::Durability::None).is_ok();
        w.commit().map_err(|e| {
            self.unstage(carried);
            err("commit", e)
        })?;
        if !lazy {
            self.durable_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
        Ok(())
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Option<BudgetState>> {
        locked(&self.staged)
    }

    /// A state not written goes back, unless a newer one was staged since.
    fn unstage(&self, state: Option<BudgetState>) {
        let mut staged = self.staged();
        if staged.is_none() {
            *staged = state;
        }
    }

    /// `body` given the entries' bytes as last committed (to update with what it commits):
    /// counted again from the file at the next write when it fails.
    fn counted<T>(
        &self,
        body: impl FnOnce(&mut Option<Counts>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut counts = locked(&self.counts);
        let done = body(&mut counts);
        if done.is_err() {
            *counts = None;
        }
        done
    }

    /// One write transaction: `body` run in it, committed when `wrote` says it wrote, else
    /// dropped (a repeat, nothing changed: the budget's state waits for the next commit).
    fn transact<T>(
        &self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        self.transact_as(false, body, wrote)
    }

    /// [`RedbBackend::transact`], its commit `lazily` ([`RedbBackend::commit_as`]).
    fn transact_as<T>(
        &self,
        lazily: bool,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        let (w, carried) = self.write()?;
        match body(&w) {
            Ok(done) if wrote(&done) => self.commit_as(w, carried, lazily).map(|()| done),
            other => {
                self.unstage(carried);
                other
            }
        }
    }
}

/// Whether a webhook id was done.
fn seen(hooks: &redb::Table<&str, i64>, webhook_id: &str) -> Result<bool, StoreError> {
    Ok(hooks.get(webhook_id).map_err(|e| err("read", e))?.is_some())
}

/// Remembers a webhook id done at `at`, forgetting those older than [`WEBHOOK_MEMORY_SECONDS`].
fn remember(
    hooks: &mut redb::Table<&str, i64>,
    webhook_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    hooks
        .retain(|_, seen| seen > at - WEBHOOK_MEMORY_SECONDS)
        .map_err(|e| err("write", e))?;
    hooks.insert(webhook_id, at).map_err(|e| err("write", e))?;
    Ok(())
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

/// The entries and the index rows, open in one write transaction, with their bytes.
struct Tables<'t> {
    entries: redb::Table<'t, &'static [u8], &'static [u8]>,
    index: redb::Table<'t, &'static str, &'static [u8]>,
    counts: Counts,
}

impl<'t> Tables<'t> {
    /// The tables, the entries' bytes as `counts` says (`None`: counted from the file).
    fn open(
        w: &'t redb::WriteTransaction,
        counts: Option<Counts>,
    ) -> Result<Tables<'t>, StoreError> {
        let entries = w.open_table(ENTRIES).map_err(|e| err("write", e))?;
        let counts = match counts {
            Some(c) => c,
            None => {
                let mut c = Counts::default();
                for item in entries.iter().map_err(|e| err("read", e))? {
                    let (_, v) = item.map_err(|e| err("read", e))?;
                    c.add(&decode(v.value())?);
                }
                c
            }
        };
        Ok(Tables {
            entries,
            index: w.open_table(INDEX).map_err(|e| err("write", e))?,
            counts,
        })
    }

    /// Frees room for `more` bytes under `max_bytes` (down to fifteen sixteenths of it when
    /// it evicts: one pass per sixteenth), each entry with its index rows: denials before
    /// grants, the oldest first, never a revocation nor `keep`.
    fn make_room(
        &mut self,
        keep: Option<&EntryId>,
        more: usize,
        max_bytes: usize,
    ) -> Result<(), StoreError> {
        if self.counts.bytes.saturating_add(more) <= max_bytes {
            return Ok(());
        }
        let kept = match keep {
            Some(id) => self.entry(id)?.map_or(0, |e| stored_bytes(&e)),
            None => 0,
        };
        if self.counts.pinned.saturating_add(kept) >= self.counts.bytes {
            return Ok(());
        }
        let target = (max_bytes - max_bytes / 16).saturating_sub(more);
        let mut ranked: Vec<((bool, i64), Vec<u8>)> = Vec::new();
        for item in self.entries.iter().map_err(|e| err("evict", e))? {
            let (k, v) = item.map_err(|e| err("evict", e))?;
            if keep.is_some_and(|id| k.value() == &id[..]) {
                continue;
            }
            let e = decode(v.value())?;
            if evictable(&e) {
                ranked.push((eviction_rank(&e), k.value().to_vec()));
            }
        }
        ranked.sort_unstable();
        for (_, k) in ranked {
            if self.counts.bytes <= target {
                break;
            }
            self.remove(&k)?;
        }
        Ok(())
    }

    /// Removes the entry `k` with its index rows.
    fn remove(&mut self, k: &[u8]) -> Result<(), StoreError> {
        let old = self.entries.remove(k).map_err(|e| err("evict", e))?;
        let Some(old) = old else {
            return Ok(());
        };
        let old = decode(old.value())?;
        self.counts.sub(&old);
        for tag in tags(&old) {
            unindex(&mut self.index, &tag, k)?;
        }
        Ok(())
    }

    /// The entry `id` as stored.
    fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        match self.entries.get(&id[..]).map_err(|e| err("read", e))? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// The ids of the index row `tag`, 32 bytes each (none when there is no row); a failure
    /// is told as `what` failed.
    fn row(&self, tag: &str, what: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .index
            .get(tag)
            .map_err(|e| err(what, e))?
            .map(|v| v.value().to_vec())
            .unwrap_or_default())
    }

    /// Writes `entry` and links it from the index rows of its tags.
    fn write(&mut self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| err("write", e))?;
        if let Some(old) = self.entry(id)? {
            self.counts.sub(&old);
        }
        self.counts.add(entry);
        self.entries
            .insert(&id[..], &bytes[..])
            .map_err(|e| err("write", e))?;
        for tag in tags(entry) {
            let mut ids = self.row(&tag, "write")?;
            if !ids.chunks(32).any(|c| c == &id[..]) {
                ids.extend_from_slice(&id[..]);
                self.index
                    .insert(tag.as_str(), &ids[..])
                    .map_err(|e| err("write", e))?;
            }
        }
        Ok(())
    }

    /// Removes the oldest `n` of `ages` (answered at, id, tags), each with its index rows.
    fn remove_oldest(
        &mut self,
        mut ages: Vec<(i64, Vec<u8>, Vec<String>)>,
        n: usize,
    ) -> Result<(), StoreError> {
        ages.sort_unstable();
        for (_, k, _) in ages.into_iter().take(n) {
            self.remove(&k)?;
        }
        Ok(())
    }

    /// Past `max` entries, the oldest sixteenth (at least what is over) in one pass, each
    /// with its index rows (else the file would grow without bound).
    fn evict(&mut self, max: usize) -> Result<(), StoreError> {
        let len = self.entries.len().map_err(|e| err("write", e))? as usize;
        if len <= max {
            return Ok(());
        }
        let mut ages: Vec<(i64, Vec<u8>, Vec<String>)> = Vec::with_capacity(len);
        for item in self.entries.iter().map_err(|e| err("evict", e))? {
            let (k, v) = item.map_err(|e| err("evict", e))?;
            let old = decode(v.value())?;
            ages.push((old.answered_at, k.value().to_vec(), tags(&old)));
        }
        self.remove_oldest(ages, (len - max).max(len / 16).max(1))
    }

    /// Past [`MAX_ENTRIES_PER_KEY`] entries of `entry`'s key, its oldest others go (each
    /// with its index rows): only the key's entries are read.
    fn cap_key(&mut self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        let Some(tag) = &entry.key_tag else {
            return Ok(());
        };
        let ids = self.row(tag, "read")?;
        let count = ids.len() / 32;
        if count <= MAX_ENTRIES_PER_KEY {
            return Ok(());
        }
        let mut ages: Vec<(i64, Vec<u8>, Vec<String>)> = Vec::with_capacity(count);
        for k in ids.chunks_exact(32).filter(|k| *k != &id[..]) {
            if let Some(v) = self.entries.get(k).map_err(|e| err("read", e))? {
                let old = decode(v.value())?;
                ages.push((old.answered_at, k.to_vec(), tags(&old)));
            }
        }
        self.remove_oldest(ages, count - MAX_ENTRIES_PER_KEY)
    }
}

/// Takes the id `k` out of the index row `tag` (the row goes when it names nothing).
fn unindex(index: &mut redb::Table<&str, &[u8]>, tag: &str, k: &[u8]) -> Result<(), StoreError> {
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

impl RedbBackend {
    /// [`Backend::update`], its commit `lazily` ([`RedbBackend::commit_as`]).
    fn update_as(
        &self,
        lazily: bool,
        id: &EntryId,
        f: Updater<'_>,
    ) -> Result<Option<Entry>, StoreError> {
        let max_bytes = super::byte_cap(self.max_bytes.load(Ordering::Relaxed));
        self.counted(|counts| {
            self.transact_as(
                lazily,
                |w| {
                    let mut t = Tables::open(w, *counts)?;
                    let current = t.entry(id)?;
                    let Some(entry) = f(current.as_ref()) else {
                        *counts = Some(t.counts);
                        return Ok((None, false));
                    };
                    if entry.removes() {
                        t.remove(&id[..])?;
                        *counts = Some(t.counts);
                        return Ok((None, current.is_some()));
                    }
                    let size = stored_bytes(&entry);
                    let old = current.as_ref().map_or(0, stored_bytes);
                    let was = current.as_ref().map(|e| (e, old));
                    if passes_held_share(&entry, size, was, t.counts.held, max_bytes) {
                        log::warn!(
                            "relay: seat pools and usage buffers hold their share of the \
                             store's byte cap ({} of {max_bytes} bytes): a new or grown one is \
                             not stored",
                            t.counts.held
                        );
                        *counts = Some(t.counts);
                        return Ok((None, false));
                    }
                    let after = |t: &Tables<'_>| t.counts.bytes.saturating_sub(old) + size;
                    if after(&t) > max_bytes {
                        let before = t.counts.bytes;
                        t.make_room(Some(id), size.saturating_sub(old), max_bytes)?;
                        if evictable(&entry) && after(&t) > max_bytes {
                            log::warn!(
                                "relay: the store is at its byte cap ({max_bytes} bytes) with \
                                 revocations only left to evict: an answer is passed on and \
                                 not stored"
                            );
                            // The answer it would have replaced is not given in its place.
                            if current.as_ref().is_some_and(evictable) {
                                t.remove(&id[..])?;
                            }
                            let changed = t.counts.bytes != before;
                            *counts = Some(t.counts);
                            return Ok((None, changed));
                        }
                    }
                    t.write(id, &entry)?;
                    t.cap_key(id, &entry)?;
                    t.evict(self.max_entries)?;
                    *counts = Some(t.counts);
                    Ok((Some(entry), true))
                },
                // Committed when written, or when entries were evicted for nothing stored.
                |(_, changed)| *changed,
            )
            .map(|(written, _)| written)
        })
    }
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

    /// One write transaction: the entry read in it (redb has one writer at a time, so
    /// nothing commits between the read and the write), written, the oldest evicted.
    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.update_as(false, id, f)
    }

    /// [`RedbBackend::update`], committed without an fsync of its own within
    /// [`LAZY_COMMIT_MS`] of the last durable commit.
    fn update_lazily(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.update_as(true, id, f)
    }

    /// One write transaction: the webhook id looked up, each entry named read, narrowed
    /// and written, the id remembered.
    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        let Narrow { webhook, tags } = what;
        let max_bytes = super::byte_cap(self.max_bytes.load(Ordering::Relaxed));
        self.counted(|counts| {
            self.transact(
                |w| {
                    let mut hooks = w.open_table(WEBHOOKS).map_err(|e| err("write", e))?;
                    if let Some((webhook_id, _)) = webhook {
                        if seen(&hooks, webhook_id)? {
                            return Ok(None);
                        }
                    }
                    let mut t = Tables::open(w, *counts)?;
                    let mut seen: Vec<Vec<u8>> = Vec::new();
                    let mut n = 0;
                    for tag in tags {
                        let ids = t.row(tag, "read")?;
                        for k in ids.chunks_exact(32) {
                            if seen.iter().any(|s| s == k) {
                                continue;
                            }
                            seen.push(k.to_vec());
                            let Ok(id) = <EntryId>::try_from(k) else {
                                continue;
                            };
                            let Some(current) = t.entry(&id)? else {
                                continue;
                            };
                            if let Some(e) = f(&current) {
                                t.write(&id, &e)?;
                                n += 1;
                            }
                        }
                    }
                    if let Some((webhook_id, at)) = webhook {
                        remember(&mut hooks, webhook_id, at)?;
                    }
                    // A mark changes an entry's bytes a little: past the cap, others go.
                    if n > 0 {
                        t.make_room(None, 0, max_bytes)?;
                    }
                    *counts = Some(t.counts);
                    Ok(Some(n))
                },
                |n| n.is_some_and(|n| n > 0 || webhook.is_some()),
            )
        })
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

    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError> {
        let max_bytes = super::byte_cap(self.max_bytes.load(Ordering::Relaxed));
        self.counted(|counts| {
            self.transact(
                |w| {
                    let mut hooks = w.open_table(WEBHOOKS).map_err(|e| err("write", e))?;
                    if seen(&hooks, hook)? {
                        return Ok(false);
                    }
                    let mut t = Tables::open(w, *counts)?;
                    for (id, entry) in updates {
                        t.write(id, entry)?;
                    }
                    remember(&mut hooks, hook, at)?;
                    t.make_room(None, 0, max_bytes)?;
                    *counts = Some(t.counts);
                    Ok(true)
                },
                |wrote| *wrote,
            )
        })
    }

    fn len(&self) -> Result<usize, StoreError> {
        let r = self.db.begin_read().map_err(|e| err("read", e))?;
        let t = r.open_table(ENTRIES).map_err(|e| err("read", e))?;
        Ok(t.len().map_err(|e| err("read", e))? as usize)
    }

    fn bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }

    fn cap_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Counted from the file at the first call (or the first write), then kept.
    fn stored_bytes(&self) -> Option<u64> {
        self.counted(|counts| {
            if counts.is_none() {
                let r = self.db.begin_read().map_err(|e| err("read", e))?;
                let t = r.open_table(ENTRIES).map_err(|e| err("read", e))?;
                let mut c = Counts::default();
                for item in t.iter().map_err(|e| err("read", e))? {
                    let (_, v) = item.map_err(|e| err("read", e))?;
                    c.add(&decode(v.value())?);
                }
                *counts = Some(c);
            }
            Ok(counts.map(|c| c.bytes as u64))
        })
        .ok()
        .flatten()
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
        crate::store::tests::granted(&format!("L{i}"), &format!("C{i}"), i as i64)
    }

    #[test]
    fn a_keys_entries_are_capped_in_the_file() {
        let dir = polar_license_testkit::ScratchDir::new("redb-per-key");
        let b = RedbBackend::open(&dir.path().join("cap.redb"), 1_000).expect("opened");
        crate::store::tests::caps_entries_per_key(&b);
    }

    #[test]
    fn the_byte_cap_holds_in_the_file_and_its_count_survives_a_reopen() {
        let dir = polar_license_testkit::ScratchDir::new("redb-bytes");
        let path = dir.path().join("bytes.redb");
        let b = RedbBackend::open(&path, 1_000_000).expect("opened");
        crate::store::tests::caps_bytes(&b);
        let bytes = b.stored_bytes();
        drop(b);
        let b = RedbBackend::open(&path, 1_000_000).expect("reopened");
        assert_eq!(b.stored_bytes(), bytes, "counted again from the file");
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
            let b =
                RedbBackend::open(&path, 8).unwrap_or_else(|e| panic!("reopened ({attempt}): {e}"));
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
