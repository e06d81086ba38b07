//! Seats in use as the operator sees them (`/healthz`, `/metrics`, issue #67): each pool's
//! seats' ends as its last step left them, kept in the relay's memory (no store read per
//! look). After a restart a pool is seen again at its next step (a heartbeat, within a seat's
//! life). No key, no machine: a pool is known by its store id only, and only counts leave.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::locked::locked;
use crate::store::EntryId;

/// The most pools remembered (past it, those with no seat held are forgotten first; a pool
/// past that is not counted until there is room).
const MAX_POOLS: usize = 100_000;

/// Each pool's seats' ends (unix seconds).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pools: Mutex<HashMap<EntryId, Vec<i64>>>,
}

/// What [`Seen::reading`] says at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SeatsInUse {
    /// Seats held now, in all pools.
    pub(crate) in_use: u64,
    /// Pools with a seat held now.
    pub(crate) pools: u64,
    /// The most seats held now in one pool.
    pub(crate) most: u64,
    /// Of `in_use`, seats borrowed for offline use.
    pub(crate) borrowed: u64,
}

impl Seen {
    /// The pool `id` as a step left it: its seats' ends, borrowed ones negated (`-end`).
    pub(crate) fn saw(&self, id: &EntryId, ends: Vec<i64>, now: i64) {
        let mut pools = locked(&self.pools);
        if ends.is_empty() {
            pools.remove(id);
            return;
        }
        if !pools.contains_key(id) && pools.len() >= MAX_POOLS {
            pools.retain(|_, ends| ends.iter().any(|&e| e.abs() > now));
            if pools.len() >= MAX_POOLS {
                return;
            }
        }
        pools.insert(*id, ends);
    }

    /// Seats in use at `now`.
    pub(crate) fn reading(&self, now: i64) -> SeatsInUse {
        let pools = locked(&self.pools);
        let mut r = SeatsInUse::default();
        for ends in pools.values() {
            let held = ends.iter().filter(|&&e| e.abs() > now).count() as u64;
            r.borrowed += ends.iter().filter(|&&e| e < 0 && -e > now).count() as u64;
            if held > 0 {
                r.in_use += held;
                r.pools += 1;
                r.most = r.most.max(held);
            }
        }
        r
    }
}
