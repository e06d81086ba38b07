//! The reserve's fair shares (issue #62): activations, deactivations and increments of known
//! keys may take the token's budget past its shared part into the reserve; there each key and
//! each client (an address, an IPv6 /64) holds at most its fair part of the reserve's calls of
//! the window, so that no few keys or addresses spend it. Calls made while the shared part
//! still has room are not counted here: the reserve is what is kept for when it has none.

use std::collections::{HashMap, VecDeque};

/// One call of the reserve: when (monotonic ms), the key's digest, the client.
type Call = (u64, [u8; 32], String);

/// Who holds its whole fair part of the reserve ([`Reserve::allows`]): what a refusal logs,
/// so that a seller reading the logs is not told the budget is spent when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The key asked for holds its part.
    Key,
    /// The client asking holds its part.
    Client,
}

impl Holder {
    /// What the log says of it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Holder::Key => "the key",
            Holder::Client => "the client",
        }
    }
}

/// The reserve's calls of the window, by key (its digest) and by client.
#[derive(Debug)]
pub(crate) struct Reserve {
    cap: u32,
    window_ms: u64,
    /// (monotonic ms, key digest, client), oldest first.
    calls: VecDeque<Call>,
    per_key: HashMap<[u8; 32], u32>,
    per_client: HashMap<String, u32>,
}

/// One holder's fair part of a reserve of `cap` calls held by `holders` (itself included):
/// the reserve divided by one more than them, so that while each holds its part there is
/// always room left for a key (and a client) that holds none; at least one call.
fn fair(cap: u32, holders: usize) -> u32 {
    let parts = u32::try_from(holders.saturating_add(1)).unwrap_or(u32::MAX);
    (cap / parts.max(1)).max(1)
}

impl Reserve {
    /// A reserve of `cap` calls per `window_ms`.
    pub(crate) fn new(cap: u32, window_ms: u64) -> Reserve {
        Reserve {
            cap,
            window_ms: window_ms.max(1),
            calls: VecDeque::new(),
            per_key: HashMap::new(),
            per_client: HashMap::new(),
        }
    }

    fn trim(&mut self, now_ms: u64) {
        while let Some((at, key, client)) = self.calls.front() {
            if now_ms.saturating_sub(*at) < self.window_ms {
                break;
            }
            if let Some(n) = self.per_key.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_key.remove(key);
                }
            }
            if let Some(n) = self.per_client.get_mut(client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_client.remove(client);
                }
            }
            self.calls.pop_front();
        }
    }

    /// Whether `key` asked by `client` may take one call of the reserve at `now_ms`: each
    /// key, and each client, at most its fair part ([`fair`]: the reserve divided by one more
    /// than the keys, or the clients, holding calls of it in the window, itself included).
    /// `Err((seconds, who))` until its own oldest call of the reserve leaves the window (`who`:
    /// the key or the client over its part). Nothing is taken: [`Reserve::record`] counts the
    /// call once the budget took it.
    pub(crate) fn allows(
        &mut self,
        key: &[u8; 32],
        client: &str,
        now_ms: u64,
    ) -> Result<(), (u64, Holder)> {
        self.trim(now_ms);
        let wait = |pick: &dyn Fn(&Call) -> bool| {
            let oldest = self.calls.iter().find(|c| pick(c)).map(|(at, ..)| *at);
            oldest.map_or(1, |at| {
                at.saturating_add(self.window_ms)
                    .saturating_sub(now_ms)
                    .div_ceil(1000)
                    .max(1)
            })
        };
        let mine = self.per_key.get(key).copied().unwrap_or(0);
        let keys = self.per_key.len() + usize::from(mine == 0);
        if mine >= fair(self.cap, keys) {
            return Err((wait(&|(_, k, _)| k == key), Holder::Key));
        }
        let ours = self.per_client.get(client).copied().unwrap_or(0);
        let clients = self.per_client.len() + usize::from(ours == 0);
        if ours >= fair(self.cap, clients) {
            return Err((wait(&|(_, _, c)| c == client), Holder::Client));
        }
        Ok(())
    }

    /// A call of the reserve taken for `key` and `client` at `now_ms`.
    pub(crate) fn record(&mut self, key: [u8; 32], client: &str, now_ms: u64) {
        self.trim(now_ms);
        *self.per_key.entry(key).or_insert(0) += 1;
        *self.per_client.entry(client.to_string()).or_insert(0) += 1;
        self.calls.push_back((now_ms, key, client.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(r: &mut Reserve, key: u8, client: &str, now_ms: u64) -> Result<(), u64> {
        r.allows(&[key; 32], client, now_ms)
            .map_err(|(secs, _)| secs)?;
        r.record([key; 32], client, now_ms);
        Ok(())
    }

    #[test]
    fn each_key_and_each_client_holds_at_most_its_part_and_room_is_left_for_a_newcomer() {
        // A reserve of 12 calls a minute.
        let mut r = Reserve::new(12, 60_000);
        // One key alone: half of it (room is left for one more).
        let a = (0..20).filter(|_| take(&mut r, 1, "a", 0).is_ok()).count();
        assert_eq!(a, 6);
        // Another key from another client: a third (12 / 3), the first over its part now.
        let b = (0..20)
            .filter(|_| take(&mut r, 2, "b", 1_000).is_ok())
            .count();
        assert_eq!(b, 4);
        assert_eq!(
            take(&mut r, 1, "a", 1_000),
            Err(59),
            "its oldest call leaves at 60 s"
        );
        // Many keys from one client: the client's part, whatever the keys.
        let c = (10..40u8)
            .filter(|k| take(&mut r, *k, "c", 2_000).is_ok())
            .count();
        assert_eq!(c, 3, "12 / (3 clients + 1)");
        // Many clients with one key: the key's part, whatever the clients.
        let d = (0..30)
            .filter(|n| take(&mut r, 50, &format!("d{n}"), 3_000).is_ok())
            .count();
        assert_eq!(d, 1, "12 / (6 keys + 1), at least one");
        // Past the window the calls leave: the first key's part is back.
        assert_eq!(take(&mut r, 1, "a", 60_000), Ok(()));
    }

    #[test]
    fn a_tiny_reserve_still_gives_each_one_call() {
        let mut r = Reserve::new(1, 60_000);
        assert_eq!(take(&mut r, 1, "a", 0), Ok(()));
        assert_eq!(take(&mut r, 1, "a", 0), Err(60));
        assert_eq!(take(&mut r, 2, "b", 0), Ok(()));
    }

    /// A refusal names who is over its part (the log tells it, not "the budget is spent").
    #[test]
    fn a_refusal_names_the_key_or_the_client_over_its_part() {
        let mut r = Reserve::new(4, 60_000);
        for _ in 0..2 {
            assert_eq!(take(&mut r, 1, "a", 0), Ok(()));
        }
        assert_eq!(r.allows(&[1; 32], "z", 0), Err((60, Holder::Key)));
        assert_eq!(r.allows(&[9; 32], "a", 0), Err((60, Holder::Client)));
        assert_eq!(r.allows(&[9; 32], "z", 0), Ok(()));
    }
}
