//! The organization token's budget: [`Budget`] and its kept state, [`BudgetState`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The organization token's budget as the relay spends it: a sliding minute, so that no 60 s
/// (Polar's fixed windows included) holds more than the budget; a 429 of Polar's stops every
/// call until its `Retry-After` has passed. Its state ([`Budget::state`]) is what a store that
/// persists keeps, so that a relay started again ([`Budget::restore`]) does not spend inside
/// Polar's window what its last run already spent.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    reserve: u32,
    /// The calls of the last minute, oldest first: monotonic ms plus `window_ms` (so that a
    /// call restored from before this process's clock began is still a time).
    calls: VecDeque<u64>,
    /// Polar said 429: no call before this monotonic ms.
    blocked_until: u64,
    /// The window (Polar's minute).
    window_ms: u64,
}

/// What a call to Polar is for, in the order the budget serves them: each may bring the
/// calls of the window up to its own cap, so that what comes later never takes the room of
/// what comes first.
///
/// With a budget `B` and a reserve `R` (the shared part `S = B - R`):
///
/// | use | up to |
/// |---|---|
/// | [`Use::Refresh`]: a known customer's stored grant past `--fresh-for`, asked again | `B - ⌈R/2⌉` |
/// | [`Use::Reserved`]: a known key's activate, deactivate or increment; a new grant's key | `B` |
/// | [`Use::Shared`]: other validates, a grant refreshed ahead of its end, idle reads | `S` |
/// | [`Use::FirstSeen`]: a key neither in the roster nor granted in the store | `S - S/4` |
/// | [`Use::Usage`]: a usage batch's ingestion, and the read of meters it asks | `S/2` |
/// | [`Use::Checkout`]: a checkout made for an app (`POST /v1/checkouts/create`) | `S/2` |
///
/// A refresh may spend half the reserve, rounded down (a grant past its freshness is what
/// otherwise answers `stale`), never all of it: a store holding more grants than the budget refreshes
/// still leaves activations their half. First-seen keys never take the last quarter of the
/// shared part (besides their own share, [`super::StoreOptions::first_seen_share`]). Usage
/// ingestion (issue #76) comes last: it never brings the window past half the shared part, so a
/// flood of reports (each batch a call, each batch a read of the customer's meters) always
/// leaves a quarter of the shared part to first-seen keys and the rest to known ones; so does
/// a flood of checkouts, which no key is needed to send. Past the
/// shared part, a known key's reserved call is also held to its and its client's fair part of
/// the reserve (`crate::roster::Reserve`, issue #62).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A stored grant of a known key past its freshness, asked again.
    Refresh,
    /// An activate, a deactivate or a usage increment of a known key, or a new grant's key.
    Reserved,
    /// Any other call: validates, a grant refreshed early, the roster's and reconcile's reads.
    Shared,
    /// A first-seen key's call.
    FirstSeen,
    /// Background usage ingestion (`crate::usage`) and the read of a customer's meters an
    /// ingested batch asks (`crate::entitled`): the budget's last call in order.
    Usage,
    /// A checkout made for an app (`crate::routes::checkout`): anyone may ask for one, so,
    /// as usage, never past half the shared part.
    Checkout,
}

/// The budget's window.
pub(super) const MINUTE_MS: u64 = 60_000;

/// The longest `Retry-After` believed (and restored), in seconds.
const MAX_BLOCK_SECONDS: u64 = 3600;

/// A [`Budget`]'s state as a store keeps it: the calls of its last minute by how many whole
/// seconds before `at` they were made (at most one pair a second of the window, so at most 61
/// pairs for Polar's minute, whatever the budget), and how long Polar's 429 still blocks.
/// Stored as one short text, `"AT BLOCKED_MS AGO:CALLS AGO:CALLS …"` (unix seconds, ms, pairs
/// oldest first): `"1764000000 0 12:3 0:1"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct BudgetState {
    /// When the state was taken: wall-clock unix seconds (the relay's monotonic clock does
    /// not survive it).
    pub at: i64,
    /// `(seconds before at, calls)`, oldest first; seconds rounded down (a call counts as
    /// younger than it is: it holds its place in the window longer, never shorter).
    pub calls: Vec<(u64, u32)>,
    /// Polar's 429 blocks every call for this many ms after `at` (0: no block).
    pub blocked_ms: u64,
}

impl From<BudgetState> for String {
    fn from(state: BudgetState) -> String {
        let mut text = format!("{} {}", state.at, state.blocked_ms);
        for (ago, n) in &state.calls {
            text.push_str(&format!(" {ago}:{n}"));
        }
        text
    }
}

impl TryFrom<String> for BudgetState {
    type Error = StoreError;

    fn try_from(text: String) -> Result<BudgetState, StoreError> {
        let bad = || {
            StoreError(format!(
                "the token budget's state {text:?} does not read back"
            ))
        };
        let mut words = text.split(' ');
        let at = words.next().and_then(|w| w.parse().ok());
        let blocked_ms = words.next().and_then(|w| w.parse().ok());
        let calls = words
            .map(|w| {
                let (ago, n) = w.split_once(':')?;
                Some((ago.parse().ok()?, n.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>();
        let (Some(at), Some(blocked_ms), Some(calls)) = (at, blocked_ms, calls) else {
            return Err(bad());
        };
        Ok(BudgetState {
            at,
            calls,
            blocked_ms,
        })
    }
}

impl Budget {
    /// `limit` calls a minute, `reserve` of them kept for calls that cannot be answered from
    /// the store (the unit tests' budget; the relay's is [`Budget::with_window`]).
    #[cfg(test)]
    pub(crate) fn new(limit: u32, reserve: u32) -> Budget {
        Budget::with_window(limit, reserve, MINUTE_MS)
    }

    /// `limit` calls per `window_ms`, `reserve` of them kept for calls that cannot be answered
    /// from the store.
    pub(crate) fn with_window(limit: u32, reserve: u32, window_ms: u64) -> Budget {
        Budget {
            limit,
            reserve: reserve.min(limit),
            calls: VecDeque::new(),
            blocked_until: 0,
            window_ms: window_ms.max(1),
        }
    }

    /// `now_ms` as the calls' times count it.
    fn shifted(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.window_ms)
    }

    fn trim(&mut self, now_ms: u64) {
        let now = self.shifted(now_ms);
        while self
            .calls
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= self.window_ms)
        {
            self.calls.pop_front();
        }
    }

    /// How many calls of the window `what` may bring the budget to ([`Use`]).
    fn cap(&self, what: Use) -> u32 {
        let shared = self.limit - self.reserve;
        match what {
            Use::Reserved => self.limit,
            Use::Refresh => self.limit - self.reserve.div_ceil(2),
            Use::Shared => shared,
            Use::FirstSeen => shared - shared / 4,
            Use::Usage | Use::Checkout => shared / 2,
        }
    }

    /// Whether a call for `what` would be taken now (nothing taken).
    pub(crate) fn has_room(&mut self, now_ms: u64, what: Use) -> bool {
        self.trim(now_ms);
        now_ms >= self.blocked_until && (self.calls.len() as u64) < u64::from(self.cap(what))
    }

    /// Takes one call for `what` (its place in the budget's order: [`Use`]): `Err(seconds
    /// until one is free)` when there is none.
    pub fn take(&mut self, now_ms: u64, what: Use) -> Result<(), u64> {
        self.trim(now_ms);
        if now_ms < self.blocked_until {
            return Err((self.blocked_until - now_ms).div_ceil(1000).max(1));
        }
        let cap = self.cap(what);
        let now = self.shifted(now_ms);
        if (self.calls.len() as u64) < u64::from(cap) {
            self.calls.push_back(now);
            return Ok(());
        }
        let used = self.calls.len() + 1 - cap as usize;
        let frees_at = self
            .calls
            .get(used.saturating_sub(1))
            .map_or(now, |t| t + self.window_ms);
        Err(frees_at.saturating_sub(now).div_ceil(1000).max(1))
    }

    /// A call taken that never reached Polar (not made, or its connection refused) gives its
    /// place back: the oldest call of the window goes, so the window never counts fewer calls
    /// than Polar saw (the one given back is at least as recent as any it stands for).
    pub fn give_back(&mut self, now_ms: u64) {
        self.trim(now_ms);
        self.calls.pop_front();
    }

    /// The share of the (non-reserved) budget free now, 0 to 1.
    pub fn room(&mut self, now_ms: u64) -> f64 {
        self.trim(now_ms);
        if now_ms < self.blocked_until {
            return 0.0;
        }
        let cap = f64::from(self.limit - self.reserve).max(1.0);
        ((cap - self.calls.len() as f64) / cap).max(0.0)
    }

    /// Polar answered 429 with this `Retry-After` (seconds; at most an hour is believed).
    pub fn learn(&mut self, now_ms: u64, retry_after: Option<u64>) {
        let secs = retry_after.unwrap_or(60).min(MAX_BLOCK_SECONDS);
        self.blocked_until = self.blocked_until.max(now_ms + secs * 1000);
    }

    /// Calls made in the last minute.
    pub fn used(&mut self, now_ms: u64) -> usize {
        self.trim(now_ms);
        self.calls.len()
    }

    /// The state to keep, at `now_unix` (wall clock) and `now_ms` (the monotonic clock of
    /// [`Budget::take`]).
    pub fn state(&mut self, now_unix: i64, now_ms: u64) -> BudgetState {
        self.trim(now_ms);
        let now = self.shifted(now_ms);
        let mut calls: Vec<(u64, u32)> = Vec::new();
        for t in &self.calls {
            let ago = now.saturating_sub(*t) / 1000;
            match calls.last_mut() {
                Some((last, n)) if *last == ago => *n = n.saturating_add(1),
                _ => calls.push((ago, 1)),
            }
        }
        BudgetState {
            at: now_unix,
            calls,
            blocked_ms: self.blocked_until.saturating_sub(now_ms),
        }
    }

    /// Takes back a kept state at `now_unix` and `now_ms` (a new process's clocks), in place
    /// of the calls and block this budget holds (meant for a budget just made): its calls
    /// still in the window and its block still running count as if made here. The time since
    /// `state.at` is counted short by up to a second (both clocks read in whole seconds), so a
    /// call is never forgotten early; a wall clock set back counts no time at all. At most
    /// `limit` calls and an hour's block are taken (a damaged state spends no more than that).
    pub fn restore(&mut self, state: &BudgetState, now_unix: i64, now_ms: u64) {
        let secs = now_unix.saturating_sub(state.at).saturating_sub(1).max(0);
        let elapsed = u64::try_from(secs).unwrap_or(0).saturating_mul(1000);
        let now = self.shifted(now_ms);
        self.calls.clear();
        let mut room = self.limit;
        for (ago, n) in &state.calls {
            let age = ago.saturating_mul(1000).saturating_add(elapsed);
            if age < self.window_ms {
                let n = (*n).min(room);
                self.calls
                    .extend(std::iter::repeat_n(now - age, n as usize));
                room -= n;
            }
        }
        let blocked = state
            .blocked_ms
            .min(MAX_BLOCK_SECONDS * 1000)
            .saturating_sub(elapsed);
        self.blocked_until = now_ms.saturating_add(blocked);
    }
}
