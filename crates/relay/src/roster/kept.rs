//! The roster kept in a host's storage read per key (the npm relay's Durable Object): the
//! host saves one storage key per digest (`r:<hex>`) and the next page to read (`r:phase`)
//! from [`crate::Relay::roster_changes`], restores only that page at start
//! ([`crate::Relay::roster_restore`]), and reads a request's digest before it is answered
//! ([`crate::Relay::roster_wants`], [`crate::Relay::roster_load`]). A restarted object neither pages the
//! organization in again nor reads every key: start-up does not grow with the roster. In
//! memory, a bounded cache of digests read (present and absent).

use std::collections::HashSet;

use polar_license::Key;

use super::{digest, Phase, Roster};
use crate::ids::{hex_id as hex, id_of_hex as unhex};
use crate::store::layout::RosterChange;

/// The host-kept roster's state: digests the storage does not hold, the changes to save.
#[derive(Debug)]
pub(super) struct Kept {
    /// Digests read and found absent (bounded by `cap`, as the present ones are).
    absent: HashSet<[u8; 32]>,
    pub(super) cap: usize,
    changes: Vec<RosterChange>,
}

/// Inserts `d` into a cache bounded by `cap` (emptied when full: what is dropped is read again).
fn cache(set: &mut HashSet<[u8; 32]>, cap: usize, d: [u8; 32]) -> bool {
    if set.len() >= cap.max(1) && !set.contains(&d) {
        set.clear();
    }
    set.insert(d)
}

impl Kept {
    pub(super) fn new(cap: usize) -> Kept {
        Kept {
            absent: HashSet::new(),
            cap: cap.max(1),
            changes: Vec::new(),
        }
    }

    /// `d` is the organization's: cached, and saved unless it was cached already.
    pub(super) fn learn(&mut self, hashes: &mut HashSet<[u8; 32]>, d: [u8; 32]) {
        self.absent.remove(&d);
        if cache(hashes, self.cap, d) {
            self.changes.push(RosterChange::Key(hex(&d), true));
        }
    }

    /// `d` is no longer the organization's: deleted.
    pub(super) fn forget(&mut self, hashes: &mut HashSet<[u8; 32]>, d: [u8; 32]) {
        hashes.remove(&d);
        cache(&mut self.absent, self.cap, d);
        self.changes.push(RosterChange::Key(hex(&d), false));
    }

    /// The phase moved: its next page saved.
    pub(super) fn phase(&mut self, phase: Phase) {
        match phase {
            Phase::Loading { page } => self.changes.push(RosterChange::Page(page)),
            Phase::Current { .. } => self.changes.push(RosterChange::Page(0)),
            Phase::Off | Phase::Unreadable => {}
        }
    }

    /// The changes since the last call.
    pub(super) fn take(&mut self) -> Vec<RosterChange> {
        std::mem::take(&mut self.changes)
    }

    /// Whether `d` must be read before a request of its key is answered.
    fn unread(&self, hashes: &HashSet<[u8; 32]>, d: &[u8; 32]) -> bool {
        !hashes.contains(d) && !self.absent.contains(d)
    }
}

impl Roster {
    /// The digest (hex, the storage key `r:<hex>`) of the license key (`key`, a request's as
    /// its route read it) that the host must read before the request is answered, when the
    /// roster is kept in the host and has not read it yet; else `None`.
    pub(crate) fn wants(&self, key: &str) -> Option<String> {
        let d = digest(&Key::new(key));
        let inner = self.lock();
        let kept = inner.kept.as_ref()?;
        (inner.phase != Phase::Off && kept.unread(&inner.hashes, &d)).then(|| hex(&d))
    }

    /// What the host read of a digest [`Roster::wants`] named: the organization's
    /// (`true`: the storage holds `r:<hex>`) or not.
    pub(crate) fn load(&self, hex_digest: &str, known: bool) {
        let Some(d) = unhex(hex_digest) else {
            return;
        };
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(kept) = inner.kept.as_mut() {
            if known {
                cache(&mut inner.hashes, kept.cap, d);
            } else {
                cache(&mut kept.absent, kept.cap, d);
            }
        }
    }
}
