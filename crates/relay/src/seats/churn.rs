//! The churn limit on a key's ordinary activations and deactivations (issue #67, item 4): at
//! most so many of them per key in any window. Each one Polar made (an activation's `200`, a
//! deactivation's `204`) is counted; past the limit the relay answers `429` with `reason:
//! "rate_limited"` and `retry-after`, the wait until the oldest of them leaves the window, and
//! Polar is not asked: the seat acquisitions' churn denial ([`super::settle`]), the same shape.
//! Only what Polar made is counted, so guessed keys (which Polar refuses) add nothing here.
//!
//! This is the relay's memory of it (as the per-key rate is: a restart starts it again). With a
//! store, each key's record is also stored in its seat pool (`super::count_activation`,
//! `super::activation_churned`), which outlives a restart and, on Workers, a Durable Object
//! leaving memory; the relay refuses on the later wait of the two.

use std::collections::HashMap;
use std::sync::Mutex;

use super::pool::Churn;
use crate::locked::locked;

/// The most keys it remembers at once (a bound on its memory: past it, the keys whose window
/// has emptied are forgotten; a key past that, none being forgotten, is not counted).
const MAX_KEYS: usize = 100_000;

/// The activations and deactivations Polar made, by key.
#[derive(Debug, Default)]
pub(crate) struct Churned {
    by_key: Mutex<HashMap<String, Vec<i64>>>,
}

impl Churned {
    /// Whether one more for `key` at `now` (unix seconds) is within `churn`: `Ok`, or
    /// `Err(at)`, the next is possible at `at`.
    pub(crate) fn check(&self, key: &str, churn: Churn, now: i64) -> Result<(), i64> {
        if churn.count == 0 {
            return Ok(());
        }
        let mut by_key = locked(&self.by_key);
        let Some(times) = by_key.get_mut(key) else {
            return Ok(());
        };
        churn.check(times, now)?;
        if times.is_empty() {
            by_key.remove(key);
        }
        Ok(())
    }

    /// One that Polar made for `key` at `now`, counted.
    pub(crate) fn count(&self, key: &str, churn: Churn, now: i64) {
        if churn.count == 0 {
            return;
        }
        let mut by_key = locked(&self.by_key);
        let since = now.saturating_sub(churn.window);
        if !by_key.contains_key(key) && by_key.len() >= MAX_KEYS {
            by_key.retain(|_, times| times.last().is_some_and(|&t| t > since));
            if by_key.len() >= MAX_KEYS {
                log::warn!(
                    "relay: {MAX_KEYS} keys activated or deactivated within the churn window: a \
                     key past them is not counted"
                );
                return;
            }
        }
        churn.count(by_key.entry(key.to_string()).or_default(), now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_meets_the_limit_and_waits_for_its_oldest_to_leave() {
        let c = Churned::default();
        let churn = Churn {
            count: 3,
            window: 3_600,
        };
        for at in [0, 10, 20] {
            assert_eq!(c.check("k", churn, at), Ok(()));
            c.count("k", churn, at);
        }
        assert_eq!(c.check("k", churn, 30), Err(3_600));
        // Another key has its own count.
        assert_eq!(c.check("other", churn, 30), Ok(()));
        assert_eq!(c.check("k", churn, 3_600), Ok(()));
        c.count("k", churn, 3_600);
        assert_eq!(c.check("k", churn, 3_601), Err(3_610));
        // Off: nothing counted, nothing refused.
        let off = Churn {
            count: 0,
            window: 3_600,
        };
        c.count("k", off, 3_601);
        assert_eq!(c.check("k", off, 3_601), Ok(()));
        assert!(locked(&c.by_key).get("k").is_some_and(|t| t.len() == 3));
    }
}
