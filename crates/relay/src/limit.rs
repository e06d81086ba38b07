//! Token buckets keyed by client IP and by license key: the relay's own rate limit, checked
//! before it spends a call of the seller's token.

use std::collections::HashMap;

/// One bucket's rule: `per_second` tokens come back each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained (0 turns the limit off).
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `per_second` a second, bursts of `burst`.
    pub const fn new(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    /// `RATE/BURST`, or `RATE` alone (bursts of twice the rate): the form of the command
    /// line's `--per-ip` / `--per-key` and the npm relay's `perIp` / `perKey`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{text}` is not RATE or RATE/BURST (whole numbers)"))
        };
        match text.split_once('/') {
            Some((rate, burst)) => Ok(Rate::new(number(rate)?, number(burst)?)),
            None => number(text).map(|rate| Rate::new(rate, rate.saturating_mul(2))),
        }
    }
}

/// Above this many buckets the full ones (idle long enough to have refilled) are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a token.
    milli: u64,
    at_ms: u64,
}

/// Buckets of one [`Rate`], by identity.
#[derive(Debug)]
pub(crate) struct Buckets {
    rate: Rate,
    map: HashMap<String, Bucket>,
}

impl Buckets {
    pub(crate) fn new(rate: Rate) -> Buckets {
        Buckets {
            rate,
            map: HashMap::new(),
        }
    }

    /// Takes a token for `id` at `now_ms` (a monotonic reading): `None` when allowed, else the
    /// whole seconds until one is back (at least 1).
    pub(crate) fn take(&mut self, id: &str, now_ms: u64) -> Option<u64> {
        let Rate { per_second, burst } = self.rate;
        if per_second == 0 || burst == 0 {
            return None;
        }
        let full = u64::from(burst) * 1000;
        let rate = u64::from(per_second);
        if self.map.len() >= PRUNE_AT && !self.map.contains_key(id) {
            self.map.retain(|_, b| {
                let refilled = now_ms.saturating_sub(b.at_ms).saturating_mul(rate);
                b.milli.saturating_add(refilled) < full
            });
        }
        let bucket = self.map.entry(id.to_string()).or_insert(Bucket {
            milli: full,
            at_ms: now_ms,
        });
        // Milli-tokens come back at `rate` per millisecond.
        let refilled = now_ms.saturating_sub(bucket.at_ms).saturating_mul(rate);
        bucket.milli = bucket.milli.saturating_add(refilled).min(full);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.milli >= 1000 {
            bucket.milli -= 1000;
            return None;
        }
        let missing_ms = (1000 - bucket.milli).div_ceil(rate);
        Some(missing_ms.div_ceil(1000).max(1))
    }

    /// Whether `id` has a token at `now_ms`, none taken: `None` when it has (or has no bucket
    /// yet), else the whole seconds until one is back (at least 1), as [`Buckets::take`]
    /// would answer.
    pub(crate) fn wait(&self, id: &str, now_ms: u64) -> Option<u64> {
        let Rate { per_second, burst } = self.rate;
        if per_second == 0 || burst == 0 {
            return None;
        }
        let bucket = self.map.get(id)?;
        let rate = u64::from(per_second);
        let refilled = now_ms.saturating_sub(bucket.at_ms).saturating_mul(rate);
        let milli = bucket
            .milli
            .saturating_add(refilled)
            .min(u64::from(burst) * 1000);
        if milli >= 1000 {
            return None;
        }
        Some((1000 - milli).div_ceil(rate).div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut b = Buckets::new(Rate::new(2, 3));
        let taken: Vec<_> = (0..4).map(|_| b.take("ip", 1_000)).collect();
        assert_eq!(taken, vec![None, None, None, Some(1)]);
        // Half a second later one token is back (2 per second), not two.
        assert_eq!(b.take("ip", 1_500), None);
        assert_eq!(b.take("ip", 1_500), Some(1));
        // Another identity has its own bucket.
        assert_eq!(b.take("other", 1_500), None);
        // Off: never limited.
        let mut off = Buckets::new(Rate::new(0, 0));
        assert!((0..100).all(|_| off.take("ip", 0).is_none()));
    }

    #[test]
    fn a_wait_takes_nothing_and_says_what_take_would() {
        let mut b = Buckets::new(Rate::new(1, 2));
        assert_eq!(b.wait("k", 0), None, "no bucket yet: a token");
        assert_eq!(b.take("k", 0), None);
        assert_eq!(b.wait("k", 0), None);
        assert_eq!(b.wait("k", 0), None, "a wait took nothing");
        assert_eq!(b.take("k", 0), None);
        assert_eq!(b.wait("k", 0), Some(1));
        assert_eq!(b.take("k", 0), Some(1));
        assert_eq!(b.wait("k", 1_000), None, "one back a second later");
        let off = Buckets::new(Rate::new(0, 0));
        assert_eq!(off.wait("k", 0), None);
    }

    #[test]
    fn slow_rates_say_how_many_seconds() {
        let mut b = Buckets::new(Rate::new(1, 1));
        assert_eq!(b.take("k", 0), None);
        assert_eq!(b.take("k", 0), Some(1));
        let mut slow = Buckets::new(Rate::new(1, 1));
        assert_eq!(slow.take("k", 10), None);
        assert_eq!(slow.take("k", 400), Some(1));
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let mut b = Buckets::new(Rate::new(1, 1));
        for i in 0..PRUNE_AT {
            assert_eq!(b.take(&i.to_string(), 0), None);
        }
        assert_eq!(b.map.len(), PRUNE_AT);
        // Ten seconds on, every bucket is full again: all dropped but the new one.
        assert_eq!(b.take("new", 10_000), None);
        assert_eq!(b.map.len(), 1);
    }
}
