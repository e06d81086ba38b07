//! The system clock, read here only: every decision of the core takes `now` as an argument,
//! and a [`Licensing`](super::Licensing) takes its clock as a function (tests pass a fake one).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A clock: unix seconds. Tests pass a fake one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in unix seconds (0 before 1970).
pub fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The system clock in unix milliseconds (0 before 1970): the seat hold's time
/// ([`crate::seat_hold::SeatHold`]).
pub fn system_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
