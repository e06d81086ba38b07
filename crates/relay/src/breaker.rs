//! A breaker in front of Polar (issue #45): after [`BreakerOptions::failures`] calls in a row
//! that failed (unreachable, timed out, a 502, 503 or 504), the relay stops calling for
//! a while; stored answers within their stale window are given at once and a request with
//! none gets the 502 of an unreachable Polar (a client falls back to its cache, as for any
//! 5xx), with no call. Then one call is let through (half-open): Polar's answer closes the
//! breaker, a failure opens it again. The first probe comes soon after the failures (an eighth
//! of [`BreakerOptions::open_for_ms`]), each failed probe doubles the wait, up to
//! [`BreakerOptions::open_for_ms`]: a short outage is over for the relay soon after it is over
//! for Polar, a long one costs a probe per `open_for_ms`. A refused connection (Polar's port
//! closed or unreachable) costs Polar nothing, unlike a call that timed out or got a 502-504: while
//! the failures are refused connections, the probes keep the first, shortest wait, so the
//! relay finds Polar back within an eighth of `open_for_ms`.
//!
//! Sans-IO as the rest of the core: the time is the caller's [`Now`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use polar_license::proto::HttpResponse;
use polar_license::{TransportError, TransportErrorKind};

use crate::clock::Now;
use crate::locked::locked;

/// Whether an answer of Polar's says Polar is failing (counted toward opening the breaker):
/// only a 502, 503 or 504, what a gateway in front of Polar's API answers when the API is down,
/// overloaded or late. Any other status is Polar's API answering, a 500 included: Polar answers
/// 500 to one key's request it cannot serve (a usage increment past 32 bits), and one customer
/// repeating that must not stop every other customer's calls.
pub(crate) fn polar_failing(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// When the breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Calls to Polar in a row that failed (unreachable, timed out, a 502, 503 or 504: a 500
    /// is Polar answering one request it could not serve) before calls stop
    /// (default 5; 0 turns the breaker off). A 429 is not a failure: the budget keeps its
    /// `Retry-After`.
    pub failures: u32,
    /// The longest calls stop once it opens, in ms (default 30,000): the first probe comes
    /// after an eighth of it, each failed probe doubles the wait up to this; a probe whose
    /// connection was refused keeps the eighth.
    pub open_for_ms: u64,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            failures: 5,
            open_for_ms: 30_000,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go on; the failures in a row so far.
    Closed(u32),
    /// No call until this monotonic ms.
    Open(u64),
    /// One call (the probe) let through at this monotonic ms; no other until it ends.
    HalfOpen(u64),
}

/// The breaker's state as the operator reads it (`Relay::health`, the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    /// `closed`, `open` or `half_open`.
    pub(crate) state: &'static str,
    /// Failures in a row while closed.
    pub(crate) failures: u32,
    /// Times it opened since the start.
    pub(crate) opened: u64,
}

/// What [`Breaker::allow`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// A call while closed.
    Call,
    /// The one call of a half-open breaker: its outcome closes or opens it.
    Probe,
}

pub(crate) struct Breaker {
    options: BreakerOptions,
    /// The state, the times it opened, and how many times in a row it opened (closing
    /// starts the count again).
    state: Mutex<(State, u64, u32)>,
    /// When it last closed after being open (monotonic ms; 0: never opened).
    closed_at: AtomicU64,
}

/// The first wait of an open breaker: this part of [`BreakerOptions::open_for_ms`].
const FIRST_WAIT_PART: u64 = 8;

impl Breaker {
    pub(crate) fn new(options: BreakerOptions) -> Breaker {
        Breaker {
            options,
            state: Mutex::new((State::Closed(0), 0, 0)),
            closed_at: AtomicU64::new(0),
        }
    }

    /// Whether a call to Polar may be made now: `None` while open (or while the half-open
    /// probe is under way). An open breaker past its time lets one call through.
    pub(crate) fn allow(&self, now: Now) -> Option<Ticket> {
        if self.options.failures == 0 {
            return Some(Ticket::Call);
        }
        let ms = now.monotonic_ms;
        let mut guard = locked(&self.state);
        match guard.0 {
            State::Closed(_) => Some(Ticket::Call),
            State::Open(until) if ms < until => None,
            // A probe that never reported (its host gave up) is replaced after as long.
            State::HalfOpen(since) if ms.saturating_sub(since) < self.options.open_for_ms => None,
            State::Open(_) | State::HalfOpen(_) => {
                guard.0 = State::HalfOpen(ms);
                log::info!("relay: the breaker lets one call to Polar through (half-open)");
                Some(Ticket::Probe)
            }
        }
    }

    /// Whether calls are stopped now (open and not yet due a probe, or a probe under way),
    /// without letting a probe through.
    pub(crate) fn is_open(&self, now: Now) -> bool {
        if self.options.failures == 0 {
            return false;
        }
        let ms = now.monotonic_ms;
        match locked(&self.state).0 {
            State::Closed(_) => false,
            State::Open(until) => ms < until,
            State::HalfOpen(since) => ms.saturating_sub(since) < self.options.open_for_ms,
        }
    }

    /// Whether a call routed earlier with `ticket` may still go (the exchange asks again when
    /// the call gets its slot, `crate::flow::Need::Slot`: calls queued before the breaker
    /// opened are not made).
    pub(crate) fn still_allows(&self, ticket: Option<Ticket>) -> bool {
        match ticket {
            None | Some(Ticket::Probe) => true,
            Some(Ticket::Call) => {
                self.options.failures == 0 || matches!(locked(&self.state).0, State::Closed(_))
            }
        }
    }

    /// A probe that was not made after all (the budget refused it): the next check may probe.
    pub(crate) fn abandon(&self, ticket: Option<Ticket>, now: Now) {
        if ticket == Some(Ticket::Probe) {
            let mut guard = locked(&self.state);
            if matches!(guard.0, State::HalfOpen(_)) {
                guard.0 = State::Open(now.monotonic_ms);
            }
        }
    }

    /// The outcome of a call to Polar. Any answer but a 502, 503 or 504 closes it (Polar
    /// answers, a 500 included: see [`polar_failing`]); a failure counts toward opening it, or
    /// opens a half-open one again.
    pub(crate) fn record(
        &self,
        outcome: &Result<HttpResponse, TransportError>,
        ticket: Option<Ticket>,
        now: Now,
    ) {
        if self.options.failures == 0 {
            return;
        }
        let failed = match outcome {
            Err(_) => true,
            Ok(r) => polar_failing(r.status),
        };
        // A refused connection cost Polar nothing: the next probe keeps the shortest wait.
        let refused = matches!(outcome, Err(e) if e.kind == TransportErrorKind::Connect);
        let mut guard = locked(&self.state);
        let (state, opened, streak) = &mut *guard;
        if !failed {
            if !matches!(state, State::Closed(_)) {
                log::info!("relay: the breaker closes: Polar answers again");
                self.closed_at.store(now.monotonic_ms, Ordering::Relaxed);
            }
            *state = State::Closed(0);
            *streak = 0;
            return;
        }
        // Each opening in a row waits twice as long as the last, from an eighth of the
        // longest wait up to it; one on a refused connection waits the eighth and does not
        // count toward the doubling.
        let max = self.options.open_for_ms;
        let first = (max / FIRST_WAIT_PART).max(1);
        let open = |streak: &mut u32| {
            if refused {
                return first.min(max);
            }
            let ms = first.saturating_mul(1u64 << (*streak).min(16)).min(max);
            *streak = streak.saturating_add(1);
            ms
        };
        match *state {
            State::Closed(n) => {
                let n = n.saturating_add(1);
                if n >= self.options.failures {
                    let ms = open(streak);
                    *state = State::Open(now.monotonic_ms.saturating_add(ms));
                    *opened = opened.saturating_add(1);
                    log::warn!(
                        "relay: the breaker opens: {n} calls to Polar in a row failed; no call \
                         for {ms} ms, stored answers given as stale"
                    );
                } else {
                    *state = State::Closed(n);
                }
            }
            State::HalfOpen(_) if ticket == Some(Ticket::Probe) => {
                let ms = open(streak);
                *state = State::Open(now.monotonic_ms.saturating_add(ms));
                *opened = opened.saturating_add(1);
                log::warn!(
                    "relay: the breaker opens again: the probe call to Polar failed; no call \
                     for {ms} ms"
                );
            }
            // A call made before it opened, ending late: nothing new.
            State::Open(_) | State::HalfOpen(_) => {}
        }
    }

    /// When the breaker last closed after being open (monotonic ms; 0 if it never opened):
    /// what came in before it was answered while calls were stopped.
    pub(crate) fn closed_at(&self) -> u64 {
        self.closed_at.load(Ordering::Relaxed)
    }

    pub(crate) fn reading(&self) -> Reading {
        let (state, opened, _) = *locked(&self.state);
        let (state, failures) = match state {
            State::Closed(n) => ("closed", n),
            State::Open(_) => ("open", 0),
            State::HalfOpen(_) => ("half_open", 0),
        };
        Reading {
            state,
            failures,
            opened,
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::clock::at;

    fn timeout() -> Result<HttpResponse, TransportError> {
        Err(TransportError::new(TransportErrorKind::Timeout, "slow"))
    }

    #[test]
    fn it_opens_after_failures_in_a_row_and_closes_after_a_good_probe() {
        let b = Breaker::new(BreakerOptions {
            failures: 3,
            open_for_ms: 1_000,
        });
        for ms in [0, 1] {
            assert_eq!(b.allow(at(ms)), Some(Ticket::Call));
            b.record(&timeout(), Some(Ticket::Call), at(ms));
        }
        // An answer in between starts the count again.
        b.record(&Ok(HttpResponse::new(404, "")), Some(Ticket::Call), at(2));
        for ms in [3, 4] {
            b.record(&timeout(), Some(Ticket::Call), at(ms));
        }
        assert_eq!(b.reading().state, "closed");
        b.record(&Ok(HttpResponse::new(503, "")), Some(Ticket::Call), at(5));
        assert_eq!(b.reading().state, "open");
        assert!(!b.still_allows(Some(Ticket::Call)));
        // The first wait: an eighth of the longest.
        assert_eq!(b.allow(at(129)), None);
        // Past its time: one probe, no other call meanwhile.
        assert_eq!(b.allow(at(130)), Some(Ticket::Probe));
        assert_eq!(b.allow(at(131)), None);
        // The probe fails: open again, twice as long.
        b.record(&timeout(), Some(Ticket::Probe), at(200));
        assert_eq!(b.allow(at(449)), None);
        assert_eq!(b.allow(at(450)), Some(Ticket::Probe));
        // Failing probes double the wait up to the longest: 500, then 1,000, 1,000.
        let mut t = 450;
        for wait in [500, 1_000, 1_000] {
            b.record(&timeout(), Some(Ticket::Probe), at(t));
            assert_eq!(b.allow(at(t + wait - 1)), None, "{wait}");
            t += wait;
            assert_eq!(b.allow(at(t)), Some(Ticket::Probe), "{wait}");
        }
        b.record(&Ok(HttpResponse::new(200, "")), Some(Ticket::Probe), at(t));
        assert_eq!(b.reading().state, "closed");
        assert_eq!(b.reading().opened, 5);
        assert_eq!(b.allow(at(t + 1)), Some(Ticket::Call));
        // Closed, the count starts again: the next opening waits an eighth again.
        for ms in 0..3 {
            b.record(&timeout(), Some(Ticket::Call), at(t + 2 + ms));
        }
        assert_eq!(b.allow(at(t + 4 + 124)), None);
        assert_eq!(b.allow(at(t + 4 + 125)), Some(Ticket::Probe));
    }

    #[test]
    fn a_probe_not_made_lets_the_next_check_probe() {
        let b = Breaker::new(BreakerOptions {
            failures: 1,
            open_for_ms: 1_000,
        });
        b.record(&timeout(), Some(Ticket::Call), at(0));
        let probe = b.allow(at(1_000));
        assert_eq!(probe, Some(Ticket::Probe));
        b.abandon(probe, at(1_000));
        assert_eq!(b.allow(at(1_001)), Some(Ticket::Probe));
    }

    #[test]
    fn zero_failures_turns_it_off() {
        let b = Breaker::new(BreakerOptions {
            failures: 0,
            open_for_ms: 1_000,
        });
        for ms in 0..10 {
            b.record(&timeout(), Some(Ticket::Call), at(ms));
        }
        assert_eq!(b.allow(at(10)), Some(Ticket::Call));
    }
}
