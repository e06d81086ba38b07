//! Polar's public license-key rate limit (`docs/polar-api.md` §8):
//! asgi-ratelimit's fixed window of 3 requests per second per identity,
//! shared by the three public routes, then a block (60 s in production).

use std::collections::HashMap;
use std::time::Duration;

/// The path prefix regex `^/v1/customer-portal/license-keys/(validate|activate|deactivate)`.
pub(crate) fn in_public_zone(path: &str) -> bool {
    ["validate", "activate", "deactivate"].iter().any(|op| {
        path.strip_prefix("/v1/customer-portal/license-keys/")
            .is_some_and(|rest| rest.starts_with(op))
    })
}

const WINDOW: Duration = Duration::from_secs(1);
const LIMIT: u32 = 3;

/// The limiter's clock is a monotonic reading: the time since any fixed origin (the host's
/// `Instant` natively, `performance.now()` in JS), never the wall clock.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: FixedWindows,
    /// identity -> block end
    blocks: HashMap<String, Duration>,
    /// The email-code zone's windows: a minute's and an hour's.
    login: [FixedWindows; 2],
}

/// Whole seconds as Redis' `TTL` reports them (rounded), at least 1.
fn ttl_secs(d: Duration) -> u64 {
    ((d.as_millis() + 500) / 1000).max(1) as u64
}

/// Fixed windows of calls per identity, as asgi-ratelimit and Redis count them: a window
/// starts at an identity's first call and lasts its length; the calls in it are counted.
#[derive(Debug, Default)]
struct FixedWindows {
    /// identity -> (window end, calls made in it)
    windows: HashMap<String, (Duration, u32)>,
}

impl FixedWindows {
    /// Whether `identity`'s current window has had `limit` calls already.
    fn is_full(&mut self, identity: &str, limit: u32, now: Duration) -> bool {
        self.windows.retain(|_, (end, _)| *end > now);
        self.windows
            .get(identity)
            .is_some_and(|(_, calls)| *calls >= limit)
    }

    /// Counts one call of `identity` when its window (of `window`, from its first call) has
    /// had fewer than `limit`; else `Some(the window's end)`, the call not counted.
    fn take(
        &mut self,
        identity: &str,
        limit: u32,
        window: Duration,
        now: Duration,
    ) -> Option<Duration> {
        self.windows.retain(|_, (end, _)| *end > now);
        let entry = self
            .windows
            .entry(identity.to_string())
            .or_insert((now.saturating_add(window), 0));
        if entry.1 >= limit {
            return Some(entry.0);
        }
        entry.1 += 1;
        None
    }
}

impl RateLimiter {
    /// Checks one request. `zone`: whether the path is in the public
    /// license-key zone (only those calls consume the window). Returns the
    /// `retry-after` seconds when the request must be refused with a 429.
    pub(crate) fn check(
        &mut self,
        identity: &str,
        zone: bool,
        block: Duration,
        now: Duration,
    ) -> Option<u64> {
        self.blocks.retain(|_, end| *end > now);
        if let Some(end) = self.blocks.get(identity) {
            return Some(ttl_secs(end.saturating_sub(now)));
        }
        if !zone {
            return None;
        }
        self.windows.take(identity, LIMIT, WINDOW, now)?;
        self.blocks
            .insert(identity.to_string(), now.saturating_add(block));
        let secs = block.as_secs() + u64::from(block.subsec_nanos() > 0);
        Some(secs.max(1))
    }
}

/// The path prefix regex `^/v1/customer-portal/customer-session/(request|authenticate)`: the
/// zone `customer-session-login` (polar-api.md §16.1), one counter for both routes.
pub(crate) fn in_login_zone(path: &str) -> bool {
    ["request", "authenticate"].iter().any(|op| {
        path.strip_prefix("/v1/customer-portal/customer-session/")
            .is_some_and(|rest| rest.starts_with(op))
    })
}

/// The email-code zone's rule: 6 a minute and 12 an hour per identity, then 900 s blocked.
const LOGIN_RULES: [(u32, Duration); 2] = [
    (6, Duration::from_secs(60)),
    (12, Duration::from_secs(3600)),
];
/// The email-code zone's block.
pub(crate) const LOGIN_BLOCK: Duration = Duration::from_secs(900);

impl RateLimiter {
    /// Checks one call in the email-code zone: the identity's block first (shared with the
    /// public zone, as asgi-ratelimit keys blocks by identity), then both windows; a call past
    /// either is refused and blocks the identity for [`LOGIN_BLOCK`] (`retry-after: 900`).
    pub(crate) fn check_login(&mut self, identity: &str, now: Duration) -> Option<u64> {
        self.blocks.retain(|_, end| *end > now);
        if let Some(end) = self.blocks.get(identity) {
            return Some(ttl_secs(end.saturating_sub(now)));
        }
        let full = LOGIN_RULES
            .iter()
            .enumerate()
            .any(|(i, (limit, _))| self.login[i].is_full(identity, *limit, now));
        if full {
            self.blocks
                .insert(identity.to_string(), now.saturating_add(LOGIN_BLOCK));
            return Some(LOGIN_BLOCK.as_secs());
        }
        for (i, (limit, window)) in LOGIN_RULES.iter().enumerate() {
            let _ = self.login[i].take(identity, *limit, *window, now);
        }
        None
    }
}

/// The organization token's budget (`docs/polar-api.md` §8, §14): the zone `api` for the
/// identity `organization:<id>`, a fixed window with no block. Every token of one organization
/// shares one counter.
#[derive(Debug, Default)]
pub(crate) struct TokenBudget {
    windows: FixedWindows,
}

impl TokenBudget {
    /// Counts one call of `organization`'s tokens; `Some(retry-after seconds)` when it is past
    /// `limit` calls in the window (the window's remaining time, as Redis' `TTL` reports it).
    pub(crate) fn check(
        &mut self,
        organization: &str,
        limit: u32,
        window: Duration,
        now: Duration,
    ) -> Option<u64> {
        let end = self.windows.take(organization, limit, window, now)?;
        Some(ttl_secs(end.saturating_sub(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_budget_is_a_fixed_window_without_block() {
        let mut budget = TokenBudget::default();
        let t = Duration::from_secs(1_000);
        let window = Duration::from_secs(60);
        for _ in 0..500 {
            assert_eq!(budget.check("org-a", 500, window, t), None);
        }
        assert_eq!(budget.check("org-a", 500, window, t), Some(60));
        // Another organization has its own budget.
        assert_eq!(budget.check("org-b", 500, window, t), None);
        // The refusals do not extend the window: 20.4 s in, 40 s remain (rounded).
        assert_eq!(
            budget.check("org-a", 500, window, t + Duration::from_millis(19_600)),
            Some(40)
        );
        // The next window passes.
        assert_eq!(budget.check("org-a", 500, window, t + window), None);
    }

    #[test]
    fn login_zone_is_6_a_minute_12_an_hour_then_900_s() {
        let mut rl = RateLimiter::default();
        let t = Duration::from_secs(1_000);
        for _ in 0..6 {
            assert_eq!(rl.check_login("ip", t), None);
        }
        assert_eq!(rl.check_login("ip", t), Some(900));
        // Blocked everywhere (the public zone too), the block counted down.
        assert_eq!(
            rl.check(
                "ip",
                true,
                Duration::from_secs(60),
                t + Duration::from_secs(100)
            ),
            Some(800)
        );
        assert_eq!(rl.check_login("other", t), None);
        // After the block, the minute is new but the hour has 6 left.
        let t = t + LOGIN_BLOCK;
        for _ in 0..6 {
            assert_eq!(rl.check_login("ip", t), None);
        }
        let t = t + Duration::from_secs(61);
        assert_eq!(rl.check_login("ip", t), Some(900));
        // An hour after the first call both windows are new.
        let t = t + LOGIN_BLOCK + Duration::from_secs(3600);
        assert_eq!(rl.check_login("ip", t), None);
        assert!(in_login_zone(
            "/v1/customer-portal/customer-session/request"
        ));
        assert!(in_login_zone(
            "/v1/customer-portal/customer-session/authenticate"
        ));
        assert!(!in_login_zone(
            "/v1/customer-portal/customer-session/introspect"
        ));
    }

    #[test]
    fn fourth_call_blocks() {
        let mut rl = RateLimiter::default();
        let t = Duration::from_secs(1_000);
        let block = Duration::from_secs(60);
        assert_eq!(rl.check("ip", true, block, t), None);
        assert_eq!(rl.check("ip", true, block, t), None);
        assert_eq!(rl.check("other", true, block, t), None);
        assert_eq!(rl.check("ip", true, block, t), None);
        assert_eq!(rl.check("ip", true, block, t), Some(60));
        assert_eq!(
            rl.check("ip", true, block, t + Duration::from_millis(30_400)),
            Some(30)
        );
        assert_eq!(
            rl.check("ip", false, block, t + Duration::from_secs(1)),
            Some(59)
        );
        assert_eq!(
            rl.check("ip", true, block, t + Duration::from_secs(61)),
            None
        );
        assert!(in_public_zone("/v1/customer-portal/license-keys/validate"));
        assert!(!in_public_zone("/v1/license-keys/validate"));
    }
}
