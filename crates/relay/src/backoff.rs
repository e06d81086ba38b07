//! The wait after failures in a row of the relay's work between requests that calls Polar (the
//! values reads, [`crate::entitled`]; usage ingestion, [`crate::usage`]): one rule for both,
//! on both hosts. Each has its base wait, doubled for each failure in a row, at most
//! [`MAX_MS`]; a success starts it over. On Workers each wait ends in an alarm of the Durable
//! Object (an invocation billed): a Polar failing for an hour costs a few dozen calls, not one
//! every base wait.

/// The longest wait after failures in a row: 5 minutes (the store's default `fresh_for`).
pub(crate) const MAX_MS: u64 = 300_000;

/// Failures in a row of one kind of call (none since its last success).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// One more failure in a row: the wait after it, `base_ms` doubled for each failure in a
    /// row before it, at most [`MAX_MS`] (a `base_ms` past it is kept as it is).
    pub(crate) fn failed(&mut self, base_ms: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        wait_ms(base_ms, self.failures)
    }

    /// A success: the next failure waits `base_ms` again.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// The wait after `failures` failures in a row (1 or more): `base_ms`, twice it, four times…
/// at most [`MAX_MS`] (or `base_ms`, when longer).
fn wait_ms(base_ms: u64, failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    base_ms
        .saturating_mul(1_u64 << doublings)
        .min(MAX_MS.max(base_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_for_each_failure_in_a_row_up_to_five_minutes_and_starts_over() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..10).map(|_| b.failed(5_000)).collect();
        assert_eq!(
            waits,
            [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000, 300_000]
        );
        b.succeeded();
        assert_eq!(b.failed(1_000), 1_000);
        assert_eq!(b.failed(1_000), 2_000);
        // Never overflows, however long the failures last.
        let mut long = Backoff {
            failures: u32::MAX - 1,
        };
        assert_eq!(long.failed(1_000), MAX_MS);
        assert_eq!(long.failed(1_000), MAX_MS);
    }
}
