//! The client's timed machines (issue #77): devices ([`crate::portal::ListDevices`]), usage
//! ([`crate::usage::RecordUsage`]), a seat request ([`crate::seat_beat::SeatCall`]) and a
//! seat's hold ([`crate::seat_beat::SeatBeat`]) speak the same [`Want`] and [`Given`] as a
//! check or an update, with two steps more: [`Want::Wait`] (the schedule: a heartbeat's
//! interval, a `429`'s `Retry-After`, a backoff) and [`Want::Clock`] (the time, for a lease's
//! end). So every shell drives them with the loop it drives a check with, and no face keeps a
//! schedule or a retry of its own: a `429` is waited out here ([`Patience`]), the same on
//! every face.
//!
//! They need none of a client's context (its store, its policy, its memos): they are
//! [`Standalone`], and every one of them is a [`Machine`] for any context as well.

use super::ctx::Ctx;
use super::step::{Given, Heard, Machine, Want};
use crate::key::Key;
use core::time::Duration;

/// A machine of the client that needs no client context: what it wants, what happened, the
/// key it is about. Every one is a [`Machine`] too (its context unread).
pub trait Standalone {
    /// What the machine wants next.
    fn want(&self) -> Want<'_>;
    /// What happened, in answer to the last [`Want`].
    fn give(&mut self, given: Given);
    /// The key it is about (for the shell's log lines: redacted there).
    fn key(&self) -> &Key;
}

impl<M: Standalone, L> Machine<L> for M {
    fn want(&self) -> Want<'_> {
        Standalone::want(self)
    }
    fn give(&mut self, _ctx: &Ctx<'_, L>, given: Given) {
        Standalone::give(self, given);
    }
    fn key(&self) -> &Key {
        Standalone::key(self)
    }
    fn heard(&self) -> Option<Heard<'_>> {
        None
    }
}

/// What a timed machine that sends portal requests wants: its wait first (a `429`'s, a poll's),
/// then its request out, else nothing (done).
pub fn portal_want<'m>(
    waiting: Option<Duration>,
    sending: Option<&'m crate::portal::PortalRequest>,
) -> Want<'m> {
    match (waiting, sending) {
        (Some(wait), _) => Want::Wait(wait),
        (None, Some(request)) => Want::Portal(request),
        (None, None) => Want::Done,
    }
}

/// The most a timed machine waits in all for `429`s before it answers the last one as it
/// came (`rate_limited`, with its wait): a per-address limit's wait is seconds, a churn
/// limit's or a backlog's can be a minute or an hour, which is the app's (or a backlog's) to
/// wait, not one call's.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

/// What a `429` without a `Retry-After` waits.
pub const RETRY_DEFAULT: Duration = Duration::from_secs(1);

/// A timed machine's waits for `429`s: each one's `Retry-After` (1 s when it names none)
/// waited while they come to at most [`RETRY_BUDGET`] in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Patience {
    waited: Duration,
}

impl Patience {
    /// The wait before asking again after a `429` that asked for `retry_after` seconds, or
    /// `None` when it would take the waits past [`RETRY_BUDGET`] (answer the `429` then).
    pub fn wait_for(&mut self, retry_after: Option<u64>) -> Option<Duration> {
        let wait = retry_after
            .map_or(RETRY_DEFAULT, Duration::from_secs)
            .max(RETRY_DEFAULT);
        let total = self.waited.checked_add(wait)?;
        if total > RETRY_BUDGET {
            return None;
        }
        self.waited = total;
        Some(wait)
    }

    /// The waits so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_waits_each_retry_after_within_the_budget() {
        let mut p = Patience::default();
        assert_eq!(p.wait_for(Some(10)), Some(Duration::from_secs(10)));
        assert_eq!(p.wait_for(None), Some(RETRY_DEFAULT));
        assert_eq!(
            p.wait_for(Some(0)),
            Some(RETRY_DEFAULT),
            "never a busy loop"
        );
        // 12 s waited: 19 more fit, 20 do not.
        assert_eq!(p.wait_for(Some(19)), None);
        assert_eq!(p.waited(), Duration::from_secs(12));
        assert_eq!(p.wait_for(Some(18)), Some(Duration::from_secs(18)));
        assert_eq!(p.wait_for(Some(1)), None);
        assert_eq!(Patience::default().wait_for(Some(3_600)), None);
    }
}
