//! The reconcile's state: the keys of the stored grants by when each was last checked, the
//! backoff, and the counts the metrics read. Apart from the calls (the parent module), so the
//! store's running state holds it without importing what drives it.

use crate::locked::locked;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// What a reconcile found, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Granted: nothing changed.
    Granted,
    /// Revoked or disabled: the key's grants marked revoked.
    Inactive,
    /// Past its `expires_at`: marked stale.
    Expired,
    /// Rotated (another string now): the old string's grants marked stale.
    Rotated,
    /// Polar's 404: marked stale.
    Gone,
    /// Polar's 429.
    RateLimited,
    /// No answer, an error status, or an answer that does not read.
    Failed,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Inactive => "inactive",
            Outcome::Expired => "expired",
            Outcome::Rotated => "rotated",
            Outcome::Gone => "gone",
            Outcome::RateLimited => "rate_limited",
            Outcome::Failed => "failed",
        }
    }
}

/// A metrics family: its name (after `polar_license_relay_`), type, help and samples
/// (labels, value).
pub(crate) type Family = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(String, String)>,
);

/// The keys of the stored grants, by when each was last checked.
#[derive(Debug)]
pub(crate) struct Reconcile {
    inner: Mutex<Queue>,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub(crate) on: bool,
    /// Whether the store's keys were read in (the worker's first turn).
    pub(crate) loaded: bool,
    /// With a store read per key (Workers): the last index row of the stored keys' listing
    /// handed in, and whether the listing is done ([`crate::reads::reconcile_list`]).
    pub(crate) listed_after: Option<String>,
    pub(crate) listed_all: bool,
    /// License key id (a UUID) → when it was last checked (unix seconds).
    pub(crate) checked: HashMap<u128, i64>,
    /// The same, oldest first.
    pub(crate) order: BTreeSet<(i64, u128)>,
    /// No call before this monotonic ms (a failure's backoff, Polar's 429).
    pub(crate) not_before: u64,
    /// Calls by outcome, and entries narrowed (the metrics).
    pub(crate) calls: BTreeMap<Outcome, u64>,
    pub(crate) narrowed: u64,
    /// Keys whose seats asked for their activations to be read (issues #67, #76), by when
    /// they last asked (unix seconds): each read at once, at most once per freshness window.
    pub(crate) seats_asked: HashMap<u128, i64>,
}

impl Queue {
    pub(crate) fn set(&mut self, id: u128, at: i64) {
        if let Some(old) = self.checked.insert(id, at) {
            self.order.remove(&(old, id));
        }
        self.order.insert((at, id));
    }

    /// A key of a stored grant learned at `at` (read at start, or listed): due one interval
    /// after, unless the queue holds it already (its own last check stays).
    pub(crate) fn learn(&mut self, id: u128, at: i64) {
        if !self.checked.contains_key(&id) {
            self.set(id, at);
        }
    }

    /// The key to check at `now` (`(last checked, id)`), once `every` seconds have passed
    /// since its last check and no backoff holds; else `Err(ms to wait)` (no key: one
    /// interval, the next comes with a grant Polar answers, a request's).
    pub(crate) fn due(&self, now_unix: i64, now_ms: u64, every: u64) -> Result<(i64, u128), u64> {
        if now_ms < self.not_before {
            return Err(self.not_before - now_ms);
        }
        let Some(&(at, id)) = self.order.first() else {
            return Err(every.saturating_mul(1000));
        };
        let due = at.saturating_add(i64::try_from(every).unwrap_or(i64::MAX));
        if now_unix < due {
            let secs = u64::try_from(due - now_unix).unwrap_or(1);
            return Err(secs.saturating_mul(1000));
        }
        Ok((at, id))
    }

    pub(crate) fn drop_key(&mut self, id: u128) {
        if let Some(old) = self.checked.remove(&id) {
            self.order.remove(&(old, id));
        }
    }
}

pub(crate) fn uuid_of(text: &str) -> Option<u128> {
    uuid::Uuid::parse_str(text).ok().map(|u| u.as_u128())
}

/// One reconcile read under way ([`crate::reads::reconcile_read`]): a `GET` of
/// its `url` with its `headers`, its answer given back to
/// [`crate::reads::reconcile_answered`]. It holds the key's id, when its read began, its last
/// check before.
pub struct Check {
    pub(crate) url: String,
    /// They hold the seller's token: never logged.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) id: u128,
    pub(crate) started: i64,
    /// When the read began on the monotonic clock: its grant lifts only the revocations
    /// applied before ([`crate::stored::Stored::lift_revoked`]).
    pub(crate) started_ms: u64,
    pub(crate) before: i64,
}

impl Check {
    /// With a store read per key: what its answer narrows (the key's index row and its
    /// entries), for the host to load before [`crate::reads::reconcile_answered`].
    pub fn wants(&self) -> crate::store::Wants {
        super::key_wants(self.id)
    }
}

// The URL and when the read began: the request's headers hold the seller's token.
debug_some!(Check, c => { "url": c.url, "started": c.started });

/// The most keys [`Reconcile::count_seats`] remembers having asked within the freshness
/// window (a bound on its memory; past it a new pool's activations are read in their turn).
const SEATS_READ_CAP: usize = 100_000;

impl Reconcile {
    pub(crate) fn new(on: bool) -> Reconcile {
        Reconcile {
            inner: Mutex::new(Queue {
                on,
                ..Queue::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        locked(&self.inner)
    }

    /// Polar answered about the key `license_key_id` at `at` (a grant kept): checked then.
    pub(crate) fn saw(&self, license_key_id: &str, at: i64) {
        let mut q = self.lock();
        if let (true, Some(id)) = (q.on, uuid_of(license_key_id)) {
            q.set(id, at);
        }
    }

    /// A seat pool of the key `license_key_id` wants its ordinary activations counted at
    /// `now` (issues #67, #76: an acquisition, a heartbeat): the key is read by id first, ahead
    /// of the other keys, unless it asked within the last `every` seconds (the store's
    /// freshness window): so activations made at Polar directly are learned within about
    /// that window while the seats are heartbeated, with at most one call per key per window
    /// (the reconcile's, from the budget's idle room only). Its count is the pool's and
    /// outlives a restart.
    pub(crate) fn count_seats(&self, license_key_id: &str, now: i64, every: u64) {
        let every = i64::try_from(every).unwrap_or(i64::MAX);
        let mut q = self.lock();
        let (true, Some(id)) = (q.on, uuid_of(license_key_id)) else {
            return;
        };
        let recent = |at: i64| at > now.saturating_sub(every);
        if q.seats_asked.get(&id).copied().is_some_and(recent) {
            return;
        }
        if q.seats_asked.len() >= SEATS_READ_CAP && !q.seats_asked.contains_key(&id) {
            q.seats_asked.retain(|_, at| recent(*at));
            if q.seats_asked.len() >= SEATS_READ_CAP {
                return;
            }
        }
        q.seats_asked.insert(id, now);
        q.set(id, i64::MIN / 2);
    }

    /// How many keys it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().checked.len()
    }

    /// What `/healthz` says of it: `null` when off (or turned off by a token that cannot
    /// read keys), else the interval and how many keys it keeps checking.
    pub(crate) fn reading(&self, every: u64) -> serde_json::Value {
        let q = self.lock();
        if !q.on {
            return serde_json::Value::Null;
        }
        serde_json::json!({"every_seconds": every, "keys": q.checked.len()})
    }

    /// The metrics' families: (name, type, help, samples).
    pub(crate) fn families(&self) -> Vec<Family> {
        let q = self.lock();
        if !q.on {
            return Vec::new();
        }
        let all = [
            Outcome::Granted,
            Outcome::Inactive,
            Outcome::Expired,
            Outcome::Rotated,
            Outcome::Gone,
            Outcome::RateLimited,
            Outcome::Failed,
        ];
        let calls = all
            .iter()
            .map(|o| {
                (
                    format!("{{outcome=\"{}\"}}", o.label()),
                    q.calls.get(o).copied().unwrap_or(0).to_string(),
                )
            })
            .collect();
        vec![
            (
                "reconcile_calls_total",
                "counter",
                "Keys of stored grants asked of Polar again by id, by what Polar said (granted, inactive: revoked or disabled, expired, rotated, gone, rate_limited, failed).",
                calls,
            ),
            (
                "reconcile_narrowed_total",
                "counter",
                "Stored entries the reconcile narrowed (marked revoked or stale).",
                vec![(String::new(), q.narrowed.to_string())],
            ),
            (
                "reconcile_keys",
                "gauge",
                "Keys of stored grants the reconcile keeps checking.",
                vec![(String::new(), q.checked.len().to_string())],
            ),
        ]
    }
}
