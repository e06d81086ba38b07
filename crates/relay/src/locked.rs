//! The relay's one way to take a lock: a lock a panic elsewhere poisoned is taken all the
//! same, its counts, maps and queues read as they stand (refusing every request after one
//! panic would turn one fault into an outage).

use std::sync::{Mutex, MutexGuard};

/// `m` locked, poisoned or not.
pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
