//! What one client remembers between checks so that a warm check repeats none of the costly
//! pure steps: the last slot opened and the last cached answer recorded. Every entry is exact,
//! never a guess: an opened record is reused only for byte-for-byte the same stored record,
//! ledger and clock note under the same slot (opening is a pure function of those and of what
//! the client fixed when it was built). The store is still read on every check, so a record
//! another process or tab replaced, removed or tampered with is seen at once.

use crate::model::ValidatedLicenseKey;
use crate::slot::{Opened, Slot};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The stored bytes of one key: its record, its ledger and its clock note.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// The sealed record.
    pub record: Option<Vec<u8>>,
    /// The ledger: the highest sequence number written.
    pub ledger: Option<Vec<u8>>,
    /// The clock note (a note that cannot be read is given as none: the next cached answer is
    /// then written durably).
    pub clock: Option<Vec<u8>>,
}

/// A slot's name, the bytes it held and what they opened to.
type OpenedMemo<L> = (String, Stored, Arc<Opened<L>>);

/// The last cached answer recorded: a check of the same slot, at the same clock second, on the
/// very record it wrote, within a second of it by the shell's monotonic clock, is the same
/// answer again and is not recorded twice (a tight loop of checks stays a memory read). A held
/// clock still counts: a later process, or the same one a second later, records it.
struct Answered {
    slot: String,
    now: i64,
    at_ms: u64,
    record: Option<Vec<u8>>,
    clock: Option<Vec<u8>>,
}

/// One client's memo (shared by its clones), over the license representation `L` its records
/// hold.
pub struct Memo<L = ValidatedLicenseKey> {
    opened: Mutex<Option<OpenedMemo<L>>>,
    answered: Mutex<Option<Answered>>,
}

impl<L> Default for Memo<L> {
    fn default() -> Self {
        Memo {
            opened: Mutex::default(),
            answered: Mutex::default(),
        }
    }
}

impl<L> std::fmt::Debug for Memo<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<L> Memo<L> {
    pub(crate) fn opened(&self, slot: &Slot, stored: &Stored) -> Option<Arc<Opened<L>>> {
        let memo = lock(&self.opened);
        let (name, bytes, opened) = memo.as_ref()?;
        (name == &slot.name && bytes == stored).then(|| Arc::clone(opened))
    }

    pub(crate) fn remember_opened(&self, slot: &Slot, stored: Stored, opened: &Arc<Opened<L>>) {
        *lock(&self.opened) = Some((slot.name.clone(), stored, Arc::clone(opened)));
    }

    /// Whether a check of `slot` at the clock reading `now` and the monotonic reading `at_ms`,
    /// on the bytes `stored`, is the last cached answer recorded again (not recorded twice).
    pub fn answered_again(&self, slot: &Slot, now: i64, at_ms: u64, stored: &Stored) -> bool {
        lock(&self.answered).as_ref().is_some_and(|a| {
            a.slot == slot.name
                && a.now == now
                && at_ms.checked_sub(a.at_ms).is_some_and(|ms| ms < 1000)
                && stored.record == a.record
                && stored.clock == a.clock
        })
    }

    /// `written`: the slot's record and clock note as the answer left them.
    pub(crate) fn remember_answer(&self, slot: &Slot, now: i64, at_ms: u64, written: Stored) {
        *lock(&self.answered) = Some(Answered {
            slot: slot.name.clone(),
            now,
            at_ms,
            record: written.record,
            clock: written.clock,
        });
    }
}
