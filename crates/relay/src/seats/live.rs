//! The pools as the relay holds them in its memory, in front of the store (issue #76, "seats
//! at scale"): a heartbeat changes its seat's end here and nowhere else, and the store gets a
//! snapshot of the pool at most once every [`SNAPSHOT_SECONDS`].
//!
//! Why: a pool is one value of the store (its rules read it whole), about 70 KB at 512 seats.
//! Written on every heartbeat, a key of 500 seats heartbeated every 100 s rewrote 70 KB five
//! times a second, parsed and serialised it under the store's lock each time, and on the
//! durable store waited on its commits: at 1,000 seats a heartbeat's p99 was 15 ms in memory
//! and 23 ms on redb. A heartbeat grants nothing (it extends a seat its machine already
//! holds), so its change need not be durable before its answer: held here, its end reaches the
//! store with the pool's next snapshot. Everything else that changes a pool (an acquisition,
//! a release, a seat culled or shed, the key's activations counted) is written before its
//! answer leaves, as before, so no seat is given that the store does not hold.
//!
//! A crash (`kill -9`, a power cut) loses at most the last [`SNAPSHOT_SECONDS`] of
//! heartbeats: their seats are held to their previous heartbeat's end as the store has it,
//! never longer, and a restarted relay re-learns a live seat from its next heartbeat (it is
//! in the stored pool, its end not passed: a client heartbeats every third of a seat's life,
//! which is at least 30 s). A clean stop writes every pool first ([`Live::flush`]).
//!
//! Only for a store the relay reads itself (memory, redb): a store the host loads per request
//! (Workers, [`crate::store::PagedBackend`]) is read and written at every step, as before,
//! since the host may drop the relay's memory between two requests.
//!
//! The relay is the one writer of its pools (a redb file is locked by one process), and every
//! step on a pool goes through here, so what is held here is the pool: read from the store at
//! its first step, kept while used. Bounded: at most [`MAX_POOLS`] pools (past it those with
//! nothing unwritten go first; a pool that finds no room is stepped on the store directly, as
//! before), each within the store's share for pools and usage (a quarter of its byte cap).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::pool::Pool;
use crate::locked::locked;
use crate::store::{Backend, Entry, EntryId, StoreError};

/// The longest a heartbeat's end stays in the relay's memory only: a heartbeat this long
/// after the pool's last write writes it (lazily: [`Backend::update_lazily`]).
pub const SNAPSHOT_SECONDS: i64 = 5;

/// The most pools held in memory.
const MAX_POOLS: usize = 4_096;

/// What a step did to the pool it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing to write.
    Nothing,
    /// Only seats' ends moved (a heartbeat): held in memory, written with the next snapshot.
    Ends,
    /// The pool as it is now, written before the step's answer.
    Write,
    /// The pool deleted from the store (it holds nothing worth keeping).
    Remove,
}

/// What a step left in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stepped {
    /// Written, or nothing to write.
    Done,
    /// The store refused the pool (its share of the byte cap is spent): nothing changed.
    Refused,
}

/// One pool in memory.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<State>,
    /// Counts the writes of the pool before its answer: a snapshot made before one of them
    /// and landing after it writes nothing (it would put back an older pool).
    version: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Out of the map: a step that locked it looks again.
    retired: bool,
    /// The pool, and whether the store holds it (`None`: not read from the store yet).
    pool: Option<(Pool, bool)>,
    /// When this relay last wrote it (unix seconds; `None`: not since it was read, so its
    /// next change is written, in this relay's format).
    written_at: Option<i64>,
    /// Ends not yet in the store.
    dirty: bool,
}

/// The pools in memory.
#[derive(Debug, Default)]
pub(crate) struct Live {
    slots: Mutex<HashMap<EntryId, Arc<Slot>>>,
}

fn entry_of(pool: &Pool, now: i64) -> Option<Entry> {
    super::entry_of(pool, now)
}

impl Live {
    /// The slot of `id`, made when there is room (`None`: none, step on the store).
    fn slot(&self, id: &EntryId) -> Option<Arc<Slot>> {
        let mut slots = locked(&self.slots);
        if let Some(s) = slots.get(id) {
            return Some(Arc::clone(s));
        }
        if slots.len() >= MAX_POOLS {
            // Those with nothing unwritten and no step under way go.
            slots.retain(|_, s| match s.state.try_lock() {
                Ok(mut st) if !st.dirty => {
                    st.retired = true;
                    false
                }
                _ => true,
            });
            if slots.len() >= MAX_POOLS {
                return None;
            }
        }
        let s = Arc::new(Slot::default());
        slots.insert(*id, Arc::clone(&s));
        Some(s)
    }

    /// Runs `f` on the pool `id` as the relay holds it (read from the store at its first step;
    /// `f` gets the pool, empty when the store holds none, and whether the store holds it) and
    /// writes what `f` says (a pool's write `lazily` when its loss in a crash is safe, a
    /// heartbeat's: [`Backend::update_lazily`]). `None`: no room here, the caller steps on the store itself.
    pub(crate) fn step(
        &self,
        store: &dyn Backend,
        id: &EntryId,
        now: i64,
        lazily: bool,
        f: &mut dyn FnMut(&mut Pool, bool) -> Change,
    ) -> Option<Result<Stepped, StoreError>> {
        loop {
            let slot = self.slot(id)?;
            let st = locked(&slot.state);
            if st.retired {
                continue;
            }
            return Some(Self::step_in(store, id, now, lazily, f, &slot, st));
        }
    }

    fn step_in(
        store: &dyn Backend,
        id: &EntryId,
        now: i64,
        lazily: bool,
        f: &mut dyn FnMut(&mut Pool, bool) -> Change,
        slot: &Slot,
        mut st: std::sync::MutexGuard<'_, State>,
    ) -> Result<Stepped, StoreError> {
        if st.pool.is_none() {
            let stored = store.get(id)?;
            st.pool = Some((super::pool_of(stored.as_ref()), stored.is_some()));
            st.written_at = None;
        }
        let change = match st.pool.as_mut() {
            Some((pool, stored)) => f(pool, *stored),
            None => return Ok(Stepped::Done),
        };
        let due = st
            .written_at
            .is_none_or(|at| now.saturating_sub(at) >= SNAPSHOT_SECONDS);
        match change {
            Change::Nothing => Ok(Stepped::Done),
            Change::Ends if !due => {
                st.dirty = true;
                Ok(Stepped::Done)
            }
            Change::Ends => {
                // The snapshot, written with the pool's lock released: the other heartbeats
                // of the pool are not kept waiting on the store's commit.
                let Some(entry) = st.pool.as_ref().and_then(|(p, _)| entry_of(p, now)) else {
                    return Ok(Stepped::Done);
                };
                let (before, was_dirty) = (st.written_at, st.dirty);
                st.written_at = Some(now);
                st.dirty = false;
                let version = slot.version.load(Ordering::SeqCst);
                drop(st);
                let written = store.update_lazily(id, &mut |_| {
                    (slot.version.load(Ordering::SeqCst) == version).then(|| entry.clone())
                });
                if !matches!(written, Ok(Some(_))) {
                    let mut st = locked(&slot.state);
                    if st.written_at == Some(now) {
                        st.written_at = before;
                    }
                    st.dirty |= was_dirty || written.is_err();
                }
                // A snapshot that did not land loses nothing: the ends are still here.
                Ok(Stepped::Done)
            }
            Change::Write | Change::Remove => {
                let entry = match change {
                    Change::Remove => Some(Entry::removal()),
                    _ => st.pool.as_ref().and_then(|(p, _)| entry_of(p, now)),
                };
                let Some(entry) = entry else {
                    st.pool = None;
                    return Ok(Stepped::Refused);
                };
                slot.version.fetch_add(1, Ordering::SeqCst);
                let removes = change == Change::Remove;
                let mut write = |_: Option<&Entry>| Some(entry.clone());
                let written = if lazily {
                    store.update_lazily(id, &mut write)
                } else {
                    store.update(id, &mut write)
                };
                // A removal writes no entry (`Ok(None)`): only a pool the store refused is.
                match written.map(|w| w.is_some() || removes) {
                    Ok(true) => {
                        if removes {
                            // Deleted: what is left is no pool.
                            st.pool = Some((Pool::default(), false));
                        } else if let Some((_, stored)) = st.pool.as_mut() {
                            *stored = true;
                        }
                        st.written_at = Some(now);
                        st.dirty = false;
                        Ok(Stepped::Done)
                    }
                    Ok(false) => {
                        // Refused: what the store holds is the pool (read again at the next step).
                        st.pool = None;
                        Ok(Stepped::Refused)
                    }
                    Err(e) => {
                        st.pool = None;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The pool `id` as the relay holds it (a copy), or as stored when it holds none here.
    pub(crate) fn read(
        &self,
        store: &dyn Backend,
        id: &EntryId,
    ) -> Result<Option<Pool>, StoreError> {
        let slot = locked(&self.slots).get(id).cloned();
        if let Some(slot) = slot {
            let st = locked(&slot.state);
            if !st.retired {
                if let Some((pool, stored)) = &st.pool {
                    return Ok(stored.then(|| pool.clone()));
                }
            }
        }
        Ok(store.get(id)?.map(|e| super::pool_of(Some(&e))))
    }

    /// Writes every pool holding ends not yet in the store (a clean stop): returns how many.
    pub(crate) fn flush(&self, store: &dyn Backend, now: i64) -> usize {
        let slots: Vec<(EntryId, Arc<Slot>)> = locked(&self.slots)
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect();
        let mut n = 0;
        for (id, slot) in slots {
            let mut st = locked(&slot.state);
            if st.retired || !st.dirty {
                continue;
            }
            let Some(entry) = st.pool.as_ref().and_then(|(p, _)| entry_of(p, now)) else {
                continue;
            };
            slot.version.fetch_add(1, Ordering::SeqCst);
            match store.update(&id, &mut |_| Some(entry.clone())) {
                Ok(Some(_)) => {
                    st.dirty = false;
                    st.written_at = Some(now);
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => log::warn!("relay: a seat pool was not written at the stop: {e}"),
            }
        }
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;

    fn id(i: usize) -> EntryId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        id
    }

    fn seat(pool: &mut Pool, until: i64) {
        pool.seats.push(super::super::pool::Held {
            id: "s".into(),
            machine: "m".into(),
            ci: false,
            until,
            borrowed: false,
        });
    }

    /// At most [`MAX_POOLS`] pools in memory: past it those with nothing unwritten go (their
    /// next step reads the store again), and when every pool held has unwritten ends a new
    /// one is not held here (`None`: the caller steps on the store), never one more.
    #[test]
    fn the_pools_in_memory_are_bounded_and_unwritten_ends_are_never_dropped() {
        let store = MemoryBackend::new(usize::MAX);
        let live = Live::default();
        let write = |live: &Live, i: usize, now: i64, change: Change| {
            live.step(&store, &id(i), now, false, &mut |pool, _| {
                if pool.seats.is_empty() {
                    seat(pool, 1_000);
                } else {
                    pool.seats[0].until += 1;
                }
                change
            })
        };
        for i in 0..MAX_POOLS {
            assert_eq!(
                write(&live, i, 0, Change::Write).unwrap().unwrap(),
                Stepped::Done
            );
        }
        // Every pool heartbeated in memory since its write: none may go.
        for i in 0..MAX_POOLS {
            assert_eq!(
                write(&live, i, 1, Change::Ends).unwrap().unwrap(),
                Stepped::Done
            );
        }
        assert!(write(&live, MAX_POOLS, 1, Change::Write).is_none());
        assert_eq!(locked(&live.slots).len(), MAX_POOLS);
        // Written at a clean stop: they may go now, and the new pool is held.
        assert_eq!(live.flush(&store, 2), MAX_POOLS);
        assert!(write(&live, MAX_POOLS, 2, Change::Write).is_some());
        assert!(locked(&live.slots).len() <= MAX_POOLS);
        // What memory held was written: the store has each pool's last end.
        let stored = super::super::pool_of(store.get(&id(7)).unwrap().as_ref());
        assert_eq!(stored.seats[0].until, 1_001);
    }
}
