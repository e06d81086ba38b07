//! A key's seat pool, as rules over a value (no store, no clock: `now` is given): who holds
//! which seat until when, what an acquisition, a heartbeat and a release do to it, and when a
//! seat not heard from is culled. The relay keeps one pool per key in its store and changes it
//! in one step of the store ([`crate::store::Backend::update`]), so two acquisitions never
//! both take the last seat.

use serde::{Deserialize, Serialize};

/// The most seats one pool holds, whatever the key's limit or the seller's number says (a
/// pool is one stored value: 512 seats are about 70 KB of it, under the store's 120 KiB per
/// value, [`crate::store::MAX_ENTRY_BYTES`]). A seller's number past it is refused when the
/// relay starts ([`crate::SeatOptions::problem`]); a key whose `limit_activations` is past it
/// gets this many, and its `seats_full` says so (`max_seats`). docs/seats.md, "Limits".
pub const MAX_SEATS: u32 = 512;

/// A key's seats in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub(crate) seats: Vec<Held>,
    /// When seats were acquired within the churn window (unix seconds, oldest first; at most
    /// [`MAX_CHURN`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) taken: Vec<i64>,
    /// The key's ordinary (Polar) activations as the relay last knew them: set from Polar's
    /// read of the key by id (the reconcile's `GET /v1/license-keys/{id}`), moved by one with
    /// each activation and deactivation Polar answered through the relay. A default pool is
    /// the key's `limit_activations` less these.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) activations: u32,
    /// The key's `limit_activations` as its last acquisition or heartbeat read it, when the
    /// pool is a default one (its size that limit less [`Pool::activations`]): what an
    /// ordinary activation through the relay is checked against ([`Pool::room_to_activate`]).
    /// `None`: a seller's number for the benefit (the seats are the seller's own, beside the
    /// activations), or no seat asked yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<u32>,
    /// When Polar made the key's ordinary activations and deactivations through the relay
    /// within their churn window (unix seconds, oldest first; at most the limit's count, at
    /// most [`MAX_CHURN`]): stored, so that a relay restarted (a Durable Object out of memory)
    /// still meets the limit ([`Pool::activation_churn`], [`Pool::count_churn`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) churned: Vec<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The most acquisitions a churn limit counts per window (so a pool's record stays bounded).
pub(crate) const MAX_CHURN: u32 = 1_000;

/// At most `count` acquisitions per key in any `window` seconds (`count` 0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Churn {
    pub(crate) count: u32,
    pub(crate) window: i64,
}

impl Churn {
    /// Whether one more at `now` is within the limit, `times` (those counted, oldest first)
    /// trimmed to the window: `Ok`, or `Err(at)`, the next is possible at `at` (when the oldest
    /// leaves the window). Off (`count` 0): `times` cleared, always `Ok`.
    pub(crate) fn check(self, times: &mut Vec<i64>, now: i64) -> Result<(), i64> {
        if self.count == 0 {
            times.clear();
            return Ok(());
        }
        times.retain(|&t| t > now.saturating_sub(self.window));
        if times.len() >= self.count.min(MAX_CHURN) as usize {
            let oldest = times.first().copied().unwrap_or(now);
            return Err(oldest.saturating_add(self.window));
        }
        Ok(())
    }

    /// One at `now` counted in `times`: only those within the window kept, at most the
    /// limit's count (off: none).
    pub(crate) fn count(self, times: &mut Vec<i64>, now: i64) {
        if self.check(times, now).is_err() {
            // The oldest go: with this one, the limit's count.
            let over = times.len() + 1 - self.count.min(MAX_CHURN) as usize;
            times.drain(..over);
        }
        if self.count > 0 {
            times.push(now);
        }
    }
}

/// One seat held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// The seat's id (a UUID v4).
    pub(crate) id: String,
    /// SHA-256 (hex) of the holder's machine binding: a heartbeat or a release from another
    /// machine is not this seat's.
    pub(crate) machine: String,
    /// A CI seat (counted against the CI cap too).
    pub(crate) ci: bool,
    /// Free after this (unix seconds) unless heard from.
    pub(crate) until: i64,
    /// Borrowed for offline use: held until `until` with no heartbeat (one changes nothing),
    /// whatever a release says: its signed lease licenses offline until then, so the pool
    /// counts it until then too (a borrow given back early and borrowed again would otherwise
    /// let any number of machines hold offline licences on a one-seat key).
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) borrowed: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How many seats a pool gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Seats at once, of any kind.
    pub(crate) size: u32,
    /// CI seats at once (`None`: only `size` bounds them).
    pub(crate) ci_cap: Option<u32>,
    /// The acquisitions per window.
    pub(crate) churn: Churn,
    /// `size` is the key's `limit_activations`, less the key's ordinary activations
    /// ([`Pool::activations`]): seats in use and activations never exceed what was sold. A
    /// seller's number for the benefit is the seats' own (`false`).
    pub(crate) less_activations: bool,
}

impl Sizes {
    /// The key's `limit_activations` when the pool is a default one ([`Pool::limit`]).
    fn limit(self) -> Option<u32> {
        self.less_activations.then_some(self.size)
    }

    /// The seats `pool` gives at once, at most [`MAX_SEATS`].
    pub(crate) fn of(self, pool: &Pool) -> u32 {
        let size = if self.less_activations {
            self.size.saturating_sub(pool.activations)
        } else {
            self.size
        };
        size.min(MAX_SEATS)
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The seat is held until its `until`; `in_use` seats are held now, this one with them,
    /// of `size`.
    Held { seat: Held, in_use: u32, size: u32 },
    /// No seat free: `in_use` held of `size`, the soonest of them frees at `frees_at`
    /// (`None`: none will, the pool has no seat at all).
    Full {
        in_use: u32,
        size: u32,
        frees_at: Option<i64>,
    },
    /// No such seat on this machine (culled, released, or never given): acquire again.
    Gone,
    /// A release: whether the seat was held (and is now free).
    Released(bool),
    /// A release of a borrowed seat: nothing freed, it stays counted until `until` (its
    /// lease's end; the lease licenses offline until then whatever the relay is told).
    Lent { until: i64 },
    /// Too many acquisitions of this key within the churn window: the next is possible at
    /// `at` (unix seconds).
    Churned { at: i64 },
}

impl Pool {
    /// Drops every seat whose life ended by `now`.
    pub(crate) fn cull(&mut self, now: i64) {
        self.seats.retain(|s| s.until > now);
    }

    /// Sheds the newest seats past what `sizes` gives now (the key's size read again, its
    /// ordinary activations as last known taken from it, and the CI cap): a key sold for
    /// fewer since, or activated at Polar directly, loses the seats acquired last, whose next
    /// heartbeat is [`Outcome::Gone`] (`seat_gone`), as a culled seat's is. A borrowed seat
    /// is never shed (its lease licenses offline until its end whatever the pool says: it is
    /// counted, and the seats beside it go first).
    fn fit(&mut self, sizes: Sizes) {
        let size = sizes.of(self) as usize;
        let cap = sizes.ci_cap.map_or(size, |c| (c as usize).min(size));
        let mut over = self.seats.len().saturating_sub(size);
        let mut ci_over = self
            .seats
            .iter()
            .filter(|s| s.ci)
            .count()
            .saturating_sub(cap);
        let mut i = self.seats.len();
        while i > 0 && (over > 0 || ci_over > 0) {
            i -= 1;
            let seat = &self.seats[i];
            if seat.borrowed || !(over > 0 || (seat.ci && ci_over > 0)) {
                continue;
            }
            if seat.ci {
                ci_over = ci_over.saturating_sub(1);
            }
            over = over.saturating_sub(1);
            self.seats.remove(i);
        }
    }

    /// Seats held at `now` (culled first).
    pub(crate) fn in_use(&mut self, now: i64) -> u32 {
        self.cull(now);
        count(self.seats.len())
    }

    /// A new seat `id` for `machine`, held until `now + life`, when one is free under `sizes`.
    pub(crate) fn acquire(
        &mut self,
        sizes: Sizes,
        machine: &str,
        ci: bool,
        id: &str,
        now: i64,
        life: i64,
    ) -> Outcome {
        self.take(sizes, machine, ci, id, now, life, false)
    }

    /// A new floating seat `id` borrowed by `machine` for offline use until `now + life`
    /// (days): as an acquisition, with no heartbeat to keep it.
    pub(crate) fn borrow(
        &mut self,
        sizes: Sizes,
        machine: &str,
        id: &str,
        now: i64,
        life: i64,
    ) -> Outcome {
        self.take(sizes, machine, false, id, now, life, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        sizes: Sizes,
        machine: &str,
        ci: bool,
        id: &str,
        now: i64,
        life: i64,
        borrowed: bool,
    ) -> Outcome {
        self.cull(now);
        self.limit = sizes.limit();
        self.fit(sizes);
        let churn = sizes.churn;
        if let Err(at) = churn.check(&mut self.taken, now) {
            return Outcome::Churned { at };
        }
        let size = sizes.of(self);
        let in_use = count(self.seats.len());
        let soonest = |ci_only: bool| {
            self.seats
                .iter()
                .filter(|s| !ci_only || s.ci)
                .map(|s| s.until)
                .min()
        };
        if in_use >= size {
            return Outcome::Full {
                in_use,
                size,
                frees_at: soonest(false),
            };
        }
        if ci {
            let cap = sizes.ci_cap.unwrap_or(size).min(size);
            let ci_in_use = count(self.seats.iter().filter(|s| s.ci).count());
            if ci_in_use >= cap {
                return Outcome::Full {
                    in_use: ci_in_use,
                    size: cap,
                    frees_at: soonest(true),
                };
            }
        }
        let seat = Held {
            id: id.to_string(),
            machine: machine.to_string(),
            ci,
            until: now.saturating_add(life),
            borrowed,
        };
        self.seats.push(seat.clone());
        if churn.count > 0 {
            self.taken.push(now);
        }
        Outcome::Held {
            seat,
            in_use: in_use + 1,
            size,
        }
    }

    /// Seat `id` of `machine` heard from: held until `now + life`; [`Outcome::Gone`] when it
    /// is not held (its life ended first: culled, free for others; or shed, the pool read
    /// again against the key's size now: [`Pool::fit`]).
    pub(crate) fn heartbeat(
        &mut self,
        sizes: Sizes,
        id: &str,
        machine: &str,
        now: i64,
        life: i64,
    ) -> Outcome {
        self.cull(now);
        self.limit = sizes.limit();
        self.fit(sizes);
        let in_use = count(self.seats.len());
        let size = sizes.of(self);
        match self
            .seats
            .iter_mut()
            .find(|s| s.id == id && s.machine == machine)
        {
            Some(seat) => {
                // A borrowed seat keeps its end: a heartbeat neither shortens nor extends it.
                if !seat.borrowed {
                    seat.until = now.saturating_add(life);
                }
                Outcome::Held {
                    seat: seat.clone(),
                    in_use,
                    size,
                }
            }
            None => Outcome::Gone,
        }
    }

    /// Whether one more ordinary activation fits at `now` beside the seats held: `Err` with
    /// the seats held, the activations counted and the limit when seats in use plus the
    /// key's activations already reach its `limit_activations` (a default pool only; with no
    /// seat held, Polar's own count decides, as without seats).
    pub(crate) fn room_to_activate(&mut self, now: i64) -> Result<(), (u32, u32, u32)> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let in_use = self.in_use(now);
        if in_use == 0 || in_use.saturating_add(self.activations) < limit {
            return Ok(());
        }
        Err((in_use, self.activations, limit))
    }

    /// Whether one more ordinary activation or deactivation at `now` is within `churn`:
    /// `Ok`, or `Err(at)`, the next is possible at `at` (when the oldest counted leaves the
    /// window). Off (`count` 0): always `Ok`.
    pub(crate) fn activation_churn(&self, churn: Churn, now: i64) -> Result<(), i64> {
        churn.check(&mut self.churned.clone(), now)
    }

    /// One ordinary activation or deactivation Polar made at `now`, counted in `churn`'s
    /// window: the record keeps only those within it, at most the limit's count (off: none).
    pub(crate) fn count_churn(&mut self, churn: Churn, now: i64) {
        churn.count(&mut self.churned, now);
    }

    /// Seat `id` of `machine` given back: free at once, but for a borrowed seat, which stays
    /// counted until its end ([`Outcome::Lent`]).
    pub(crate) fn release(&mut self, id: &str, machine: &str, now: i64) -> Outcome {
        self.cull(now);
        if let Some(lent) = self
            .seats
            .iter()
            .find(|s| s.id == id && s.machine == machine && s.borrowed)
        {
            return Outcome::Lent { until: lent.until };
        }
        let before = self.seats.len();
        self.seats.retain(|s| !(s.id == id && s.machine == machine));
        Outcome::Released(self.seats.len() < before)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const LIFE: i64 = 300;

    fn sizes(size: u32, ci_cap: Option<u32>) -> Sizes {
        Sizes {
            size,
            ci_cap,
            churn: Churn {
                count: 0,
                window: 0,
            },
            less_activations: false,
        }
    }

    /// The stored activation churn: the limit met with the wait of the oldest in the window,
    /// the record pruned to the window and to the count at every write (bounded whatever the
    /// loop), it survives the pool's JSON (what the store keeps), and off it keeps nothing.
    #[test]
    fn the_stored_activation_churn_is_bounded_and_outlives_its_json() {
        let churn = Churn {
            count: 3,
            window: 600,
        };
        let mut pool = Pool::default();
        for at in [0, 10, 20] {
            assert_eq!(pool.activation_churn(churn, at), Ok(()));
            pool.count_churn(churn, at);
        }
        assert_eq!(pool.activation_churn(churn, 30), Err(600));
        let text = serde_json::to_string(&pool).unwrap();
        let read: Pool = serde_json::from_str(&text).unwrap();
        assert_eq!(read.activation_churn(churn, 30), Err(600));
        assert_eq!(read.activation_churn(churn, 600), Ok(()));
        // A long loop keeps at most the count, only those within the window.
        for at in 0..5_000 {
            pool.count_churn(churn, 1_000 + at);
        }
        assert_eq!(pool.churned, vec![5_997, 5_998, 5_999]);
        pool.count_churn(churn, 10_000);
        assert_eq!(pool.churned, vec![10_000]);
        let off = Churn {
            count: 0,
            window: 600,
        };
        pool.count_churn(off, 10_001);
        assert!(pool.churned.is_empty());
        assert_eq!(pool.activation_churn(off, 10_001), Ok(()));
        // An empty record is not written (a pool's JSON as before the record).
        assert!(!serde_json::to_string(&pool).unwrap().contains("churned"));
    }

    #[test]
    fn a_churn_loop_meets_its_limit_and_the_wait_is_the_oldests() {
        let mut pool = Pool::default();
        let s = Sizes {
            churn: Churn {
                count: 3,
                window: 3_600,
            },
            ..sizes(1, None)
        };
        // Acquire, release, again: the fourth within the hour is refused until the first
        // acquisition leaves the window.
        for (i, at) in [0, 10, 20].into_iter().enumerate() {
            let id = i.to_string();
            assert!(matches!(
                pool.acquire(s, "m", false, &id, at, LIFE),
                Outcome::Held { .. }
            ));
            assert_eq!(pool.release(&id, "m", at + 1), Outcome::Released(true));
        }
        assert_eq!(
            pool.acquire(s, "m", false, "x", 30, LIFE),
            Outcome::Churned { at: 3_600 }
        );
        assert!(matches!(
            pool.acquire(s, "m", false, "x", 3_601, LIFE),
            Outcome::Held { .. }
        ));
        assert!(pool.taken.len() <= 3);
    }

    #[test]
    fn a_borrowed_seat_is_held_to_its_end_unless_given_back() {
        let mut pool = Pool::default();
        let s = sizes(1, None);
        let week = 7 * 86_400;
        assert!(matches!(
            pool.borrow(s, "m1", "a", 0, week),
            Outcome::Held { seat, .. } if seat.borrowed && seat.until == week
        ));
        // No heartbeat keeps it, none changes its end; the pool is full until then.
        assert!(matches!(
            pool.heartbeat(s, "a", "m1", 10, LIFE),
            Outcome::Held { seat, .. } if seat.until == week
        ));
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", week - 1, LIFE),
            Outcome::Full { frees_at: Some(w), .. } if w == week
        ));
        // Its end passed: free by itself.
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", week, LIFE),
            Outcome::Held { .. }
        ));
    }

    /// Issue #76, finding 3: a borrowed seat's lease licenses offline until its end whatever
    /// the relay is told, so a release frees nothing early: borrowed and "given back" at once
    /// in a loop, a one-seat key lends one seat, not one a machine.
    #[test]
    fn a_released_borrow_still_counts_until_its_end() {
        let s = sizes(1, None);
        let week = 7 * 86_400;
        let mut pool = Pool::default();
        assert!(matches!(
            pool.borrow(s, "m1", "a", 0, week),
            Outcome::Held { .. }
        ));
        assert_eq!(pool.release("a", "m1", 5), Outcome::Lent { until: week });
        // Another machine's release of it is not its holder's: nothing to say.
        assert_eq!(pool.release("a", "m2", 5), Outcome::Released(false));
        for (i, m) in ["m2", "m3", "m4"].into_iter().enumerate() {
            let at = 6 + i64::try_from(i).unwrap();
            assert!(
                matches!(
                    pool.borrow(s, m, m, at, week),
                    Outcome::Full { in_use: 1, size: 1, frees_at: Some(w) } if w == week
                ),
                "{m}"
            );
            assert!(matches!(
                pool.acquire(s, m, false, m, at, LIFE),
                Outcome::Full { .. }
            ));
        }
        // Its end passed: free by itself, as if never given back.
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", week, LIFE),
            Outcome::Held { .. }
        ));
        // A seat that is not borrowed frees at once.
        assert_eq!(pool.release("b", "m2", week + 1), Outcome::Released(true));
    }

    fn limited(limit: u32, ci_cap: Option<u32>) -> Sizes {
        Sizes {
            less_activations: true,
            ..sizes(limit, ci_cap)
        }
    }

    /// Issue #76, finding 3: every heartbeat reads the pool again against the key's size now
    /// (its `limit_activations` less the activations known): the newest seats past it are shed
    /// (their heartbeat `Gone`), the oldest kept, a borrowed seat never shed.
    #[test]
    fn a_heartbeat_past_a_shrunk_key_sheds_the_newest_seats() {
        let mut pool = Pool::default();
        let two = limited(2, None);
        for (at, id) in [(0, "a"), (1, "b")] {
            assert!(matches!(
                pool.acquire(two, id, false, id, at, LIFE),
                Outcome::Held { .. }
            ));
        }
        // Two activations made at Polar directly, learned by id: nothing left for seats.
        pool.activations = 2;
        assert_eq!(pool.heartbeat(two, "a", "a", 10, LIFE), Outcome::Gone);
        assert!(pool.seats.is_empty());
        // One activation: the newest seat goes, the oldest stays.
        let mut pool = Pool::default();
        for (at, id) in [(0, "a"), (1, "b")] {
            assert!(matches!(
                pool.acquire(two, id, false, id, at, LIFE),
                Outcome::Held { .. }
            ));
        }
        pool.activations = 1;
        assert!(matches!(
            pool.heartbeat(two, "a", "a", 10, LIFE),
            Outcome::Held {
                in_use: 1,
                size: 1,
                ..
            }
        ));
        assert_eq!(pool.heartbeat(two, "b", "b", 11, LIFE), Outcome::Gone);
        // The key sold for fewer (its limit read again from the verdict): the same.
        let mut pool = Pool::default();
        let three = limited(3, None);
        for (at, id) in [(0, "a"), (1, "b"), (2, "c")] {
            assert!(matches!(
                pool.acquire(three, id, false, id, at, LIFE),
                Outcome::Held { .. }
            ));
        }
        let one = limited(1, None);
        assert_eq!(pool.heartbeat(one, "c", "c", 10, LIFE), Outcome::Gone);
        assert_eq!(pool.heartbeat(one, "b", "b", 10, LIFE), Outcome::Gone);
        assert!(matches!(
            pool.heartbeat(one, "a", "a", 10, LIFE),
            Outcome::Held { in_use: 1, .. }
        ));
        // A borrowed seat is counted and never shed: the seats beside it go first.
        let mut pool = Pool::default();
        assert!(matches!(
            pool.acquire(two, "a", false, "a", 0, LIFE),
            Outcome::Held { .. }
        ));
        assert!(matches!(
            pool.borrow(two, "b", "b", 1, 86_400),
            Outcome::Held { .. }
        ));
        pool.activations = 1;
        assert_eq!(pool.heartbeat(two, "a", "a", 10, LIFE), Outcome::Gone);
        assert_eq!(pool.seats.len(), 1);
        assert!(pool.seats[0].borrowed);
        // A CI cap lowered: the newest CI seats past it go, the others stay.
        let mut pool = Pool::default();
        let open = sizes(4, None);
        for (at, id, ci) in [
            (0, "a", true),
            (1, "b", false),
            (2, "c", true),
            (3, "d", true),
        ] {
            assert!(matches!(
                pool.acquire(open, id, ci, id, at, LIFE),
                Outcome::Held { .. }
            ));
        }
        let capped = sizes(4, Some(1));
        assert!(matches!(
            pool.heartbeat(capped, "b", "b", 10, LIFE),
            Outcome::Held { in_use: 2, .. }
        ));
        let left: Vec<&str> = pool.seats.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(left, ["a", "b"]);
    }

    #[test]
    fn acquire_to_full_then_a_release_frees_one() {
        let mut pool = Pool::default();
        let s = sizes(2, None);
        assert!(matches!(
            pool.acquire(s, "m1", false, "a", 0, LIFE),
            Outcome::Held { in_use: 1, .. }
        ));
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", 10, LIFE),
            Outcome::Held { in_use: 2, .. }
        ));
        assert_eq!(
            pool.acquire(s, "m3", false, "c", 20, LIFE),
            Outcome::Full {
                in_use: 2,
                size: 2,
                frees_at: Some(LIFE)
            }
        );
        // Another machine cannot release a seat it does not hold.
        assert_eq!(pool.release("a", "m3", 30), Outcome::Released(false));
        assert_eq!(pool.release("a", "m1", 30), Outcome::Released(true));
        assert!(matches!(
            pool.acquire(s, "m3", false, "c", 40, LIFE),
            Outcome::Held { in_use: 2, .. }
        ));
    }

    #[test]
    fn a_seat_not_heard_from_within_its_life_is_culled_and_free() {
        let mut pool = Pool::default();
        let s = sizes(1, None);
        assert!(matches!(
            pool.acquire(s, "m1", false, "a", 0, LIFE),
            Outcome::Held { .. }
        ));
        // Heard from at 200: held until 500.
        assert!(
            matches!(pool.heartbeat(s, "a", "m1", 200, LIFE), Outcome::Held { seat, .. } if seat.until == 200 + LIFE)
        );
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", 499, LIFE),
            Outcome::Full { .. }
        ));
        // Not heard from by 500: culled; the next acquisition gets it, the late heartbeat not.
        assert!(matches!(
            pool.acquire(s, "m2", false, "b", 500, LIFE),
            Outcome::Held { .. }
        ));
        assert_eq!(pool.heartbeat(s, "a", "m1", 501, LIFE), Outcome::Gone);
        // A heartbeat from another machine is not the seat's.
        assert_eq!(pool.heartbeat(s, "b", "m1", 501, LIFE), Outcome::Gone);
    }

    #[test]
    fn ci_seats_have_a_cap_of_their_own_within_the_pool() {
        let mut pool = Pool::default();
        let s = sizes(3, Some(1));
        assert!(matches!(
            pool.acquire(s, "job1", true, "a", 0, LIFE),
            Outcome::Held { .. }
        ));
        assert_eq!(
            pool.acquire(s, "job2", true, "b", 5, LIFE),
            Outcome::Full {
                in_use: 1,
                size: 1,
                frees_at: Some(LIFE)
            }
        );
        assert!(matches!(
            pool.acquire(s, "m1", false, "c", 5, LIFE),
            Outcome::Held { in_use: 2, .. }
        ));
        assert!(matches!(
            pool.acquire(s, "m2", false, "d", 5, LIFE),
            Outcome::Held { in_use: 3, .. }
        ));
        assert!(matches!(
            pool.acquire(s, "m3", false, "e", 5, LIFE),
            Outcome::Full {
                in_use: 3,
                size: 3,
                ..
            }
        ));
    }

    #[test]
    fn no_pool_is_larger_than_its_bound_and_an_empty_one_frees_never() {
        let mut pool = Pool::default();
        assert_eq!(
            pool.acquire(sizes(0, None), "m", false, "a", 0, LIFE),
            Outcome::Full {
                in_use: 0,
                size: 0,
                frees_at: None
            }
        );
        let s = sizes(u32::MAX, None);
        // As long as the relay writes them: a UUID and a SHA-256 in hex.
        let machine = "f".repeat(64);
        for i in 0..MAX_SEATS {
            let id = format!("{i:036}");
            assert!(matches!(
                pool.acquire(s, &machine, false, &id, 1_800_000_000, LIFE),
                Outcome::Held { .. }
            ));
        }
        assert!(matches!(
            pool.acquire(s, "m", false, "x", 0, LIFE),
            Outcome::Full {
                size: MAX_SEATS,
                ..
            }
        ));
        let bytes = serde_json::to_vec(&pool).unwrap().len();
        assert!(bytes < 120 * 1024, "{bytes} bytes");
    }
}
