//! The relay's verdict store as it runs: its state ([`Stored`]: the backend, the token's
//! budget, the calls to Polar under way, the roster), the calls other checks wait for
//! ([`Flight`]), and what the store reads of Polar's answer ([`Seen`]). What a check does with
//! them is [`crate::verdicts`]'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use polar_license::proto::{error_body, HttpResponse};
use polar_license::TransportError;

use crate::clock::Now;
use crate::locked::locked;
use crate::store::{Backend, Budget, EntryId, StoreOptions, Use};
use crate::types::{Answered, Holder};

/// A relay's store, as it runs.
pub(crate) struct Stored {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) options: StoreOptions,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) budget: Mutex<Budget>,
    /// Whether the budget's state kept by the store was read back (at its first use: the
    /// core reads no clock, and that state's times need one).
    pub(crate) budget_restored: AtomicBool,
    /// Calls the budget refused (the operator's metrics).
    pub(crate) refused: AtomicU64,
    /// The calls to Polar under way per entry: a check of the same entry waits for it.
    pub(crate) flights: Mutex<HashMap<EntryId, Arc<Flight>>>,
    /// The organization's keys ([`crate::roster`]), and the first-seen keys' share.
    pub(crate) roster: crate::roster::Roster,
    pub(crate) first_seen: Mutex<crate::roster::FirstSeen>,
    /// The reserve's calls by key and by client: each holds at most its fair part
    /// ([`Stored::take_reserved`]).
    pub(crate) reserve: Mutex<crate::roster::Reserve>,
    /// The keys of the stored grants, asked again by id with idle budget ([`crate::reconcile`]).
    pub(crate) reconcile: crate::reconcile::queue::Reconcile,
    /// Seats in use per pool, as the operator sees them ([`crate::seats::Seen`], issue #67).
    pub(crate) seats_seen: crate::seats::Seen,
    /// The seat pools as the relay holds them, in front of the store: heartbeats' ends kept
    /// here between snapshots ([`crate::seats::Live`], issue #76).
    pub(crate) seats_live: crate::seats::Live,
    /// When (monotonic ms) this relay last marked each license key's entries revoked, and
    /// when the map was last emptied (it is bounded): a read of Polar by id that began
    /// before either lifts no revocation ([`Stored::lift_revoked`]).
    pub(crate) revoked: Mutex<Revocations>,
    /// Polar's webhook deliveries: failures by address, outcomes between looks.
    pub(crate) deliveries: crate::deliveries::Deliveries,
    /// Why keys stopped, as Polar's lifecycle webhooks told (issue #68, [`crate::lifecycle`]).
    pub(crate) lifecycle: crate::lifecycle::Lifecycle,
    /// What Polar knows of the customers, signed into their keys' leases (`crate::entitled`).
    #[cfg(feature = "entitlements")]
    pub(crate) entitled: crate::entitled::Entitled,
    /// Usage reports kept and ingested (`crate::usage`).
    pub(crate) usage: crate::usage::Usage,
}

/// See [`Stored::revoked`].
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    by_key: HashMap<String, u64>,
    emptied_ms: Option<u64>,
}

/// License key ids whose last revocation [`Revocations`] remembers, at most.
const REVOCATIONS_KEPT: usize = 100_000;

/// One call to Polar that other checks of the same entry wait for.
pub(crate) struct Flight {
    done: Mutex<bool>,
    ended: Condvar,
    started_ms: u64,
}

/// How long a check waits for another's call to Polar before it asks on its own.
const FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Stored {
    /// The seats' pools in this store, under `options` ([`crate::seats::Pools`]).
    pub(crate) fn pools<'a>(
        &'a self,
        options: &'a crate::seats::SeatOptions,
    ) -> crate::seats::Pools<'a> {
        crate::seats::Pools {
            store: self.backend.as_ref(),
            seen: &self.seats_seen,
            live: &self.seats_live,
            options,
        }
    }

    /// The entries of `license_key_id` are being marked revoked now (noted before they are
    /// written): a read by id under way does not lift that.
    pub(crate) fn note_revoked(&self, license_key_id: &str, now: Now) {
        let mut r = locked(&self.revoked);
        if r.by_key.len() >= REVOCATIONS_KEPT && !r.by_key.contains_key(license_key_id) {
            r.by_key.clear();
            r.emptied_ms = Some(now.monotonic_ms);
        }
        r.by_key
            .insert(license_key_id.to_string(), now.monotonic_ms);
    }

    /// Polar's read of `license_key_id` by id (`GET /v1/license-keys/{id}`, the organization
    /// token: Polar's own word, never a webhook's), begun at `started`, says it is granted
    /// (polar-license-api.md §15: a revoked key granted again keeps its string): its stored
    /// revocations applied before the read began end. They become stale, not grants: the
    /// next check asks Polar, whose answer decides (while Polar cannot be asked they answer
    /// for at most `marked_stale_for`). A revocation applied since the read began stays. How
    /// many entries changed; `None` when the store failed.
    pub(crate) fn lift_revoked(
        &self,
        license_key_id: &str,
        started: Now,
        now: Now,
    ) -> Option<usize> {
        {
            let r = locked(&self.revoked);
            let after = |ms: Option<u64>| ms.is_some_and(|ms| ms >= started.monotonic_ms);
            if after(r.by_key.get(license_key_id).copied()) || after(r.emptied_ms) {
                return Some(0);
            }
        }
        let tag = format!("l:{license_key_id}");
        let lifted = self.backend.narrow(
            crate::store::Narrow::own(&[tag]),
            &mut |e: &crate::store::Entry| {
                (e.mark == crate::store::Mark::Revoked && e.marked_at <= started.unix_seconds).then(
                    || crate::store::Entry {
                        mark: crate::store::Mark::Stale,
                        marked_at: now.unix_seconds,
                        ..e.clone()
                    },
                )
            },
        );
        match lifted {
            Ok(n) => {
                let n = n.unwrap_or(0);
                if n > 0 {
                    log::info!(
                        "relay: Polar says a revoked key is granted again: its {n} stored \
                         revocations end (the next check asks Polar)"
                    );
                }
                Some(n)
            }
            Err(e) => {
                log::error!("relay: {e}: a revoked key granted again stays refused for now");
                None
            }
        }
    }

    /// The token's budget, with what the store kept of it (the calls of a last run's minute,
    /// Polar's 429) taken back at its first use.
    pub(crate) fn budget(&self, now: Now) -> std::sync::MutexGuard<'_, Budget> {
        let mut budget = locked(&self.budget);
        if !self.budget_restored.swap(true, Ordering::Relaxed) {
            match self.backend.load_budget() {
                Ok(Some(state)) => {
                    budget.restore(&state, now.unix_seconds, now.monotonic_ms);
                    log::info!(
                        "relay: {} calls to Polar of the last minute restored from the store",
                        budget.used(now.monotonic_ms)
                    );
                }
                Ok(None) => {}
                Err(e) => log::error!("relay: {e}: the token budget starts empty"),
            }
        }
        budget
    }

    /// Takes one call of the budget for `what` (see [`Budget::take`]); the budget's state
    /// is staged for the store's next write (under the budget's lock: the newest state wins).
    pub(crate) fn take(&self, now: Now, what: Use) -> Result<(), u64> {
        let mut budget = self.budget(now);
        budget.take(now.monotonic_ms, what).inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::Relaxed);
        })?;
        self.backend
            .stage_budget(budget.state(now.unix_seconds, now.monotonic_ms));
        Ok(())
    }

    /// One call of the budget for a known key's activation, deactivation or increment
    /// ([`Use::Reserved`]) asked by `client`: while the shared part has room, as any call;
    /// past it, from the reserve, and only while the key and the client each hold less than
    /// their fair part of it ([`crate::roster::Reserve`], issue #62: four keys Polar refused,
    /// from four addresses, spent the whole budget). `Err((seconds, who))`: `who` the key or
    /// the client over its fair part of the reserve, `None` when the budget itself is spent.
    pub(crate) fn take_reserved(
        &self,
        now: Now,
        key: &polar_license::Key,
        client: &str,
    ) -> Result<(), (u64, Option<crate::roster::Holder>)> {
        let mut budget = self.budget(now);
        let shared = self
            .options
            .budget
            .saturating_sub(self.options.reserve.min(self.options.budget));
        let in_reserve = budget.used(now.monotonic_ms) >= shared as usize;
        let mut reserve = locked(&self.reserve);
        let d = crate::roster::digest(key);
        let taken = if in_reserve {
            reserve
                .allows(&d, client, now.monotonic_ms)
                .map_err(|(secs, who)| (secs, Some(who)))
        } else {
            Ok(())
        }
        .and_then(|()| {
            budget
                .take(now.monotonic_ms, Use::Reserved)
                .map_err(|secs| (secs, None))
        });
        if let Err(refused) = taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refused);
        }
        if in_reserve {
            reserve.record(d, client, now.monotonic_ms);
        }
        drop(reserve);
        self.backend
            .stage_budget(budget.state(now.unix_seconds, now.monotonic_ms));
        Ok(())
    }

    /// A call [`Stored::take`] counted that Polar never saw (see [`Budget::give_back`]).
    pub(crate) fn give_back(&self, now: Now) {
        let mut budget = self.budget(now);
        budget.give_back(now.monotonic_ms);
        self.backend
            .stage_budget(budget.state(now.unix_seconds, now.monotonic_ms));
    }

    /// Leads the call for `id` (`Ok`), or the flight under way to wait for (`Err`). A flight
    /// older than [`FLIGHT_WAIT`] is taken over (its host never finished it).
    pub(crate) fn lead(&self, id: EntryId, now_ms: u64) -> Result<(), Arc<Flight>> {
        let mut flights = locked(&self.flights);
        if let Some(f) = flights.get(&id) {
            let age = now_ms.saturating_sub(f.started_ms);
            if u128::from(age) < FLIGHT_WAIT.as_millis() {
                return Err(Arc::clone(f));
            }
        }
        flights.insert(
            id,
            Arc::new(Flight {
                done: Mutex::new(false),
                ended: Condvar::new(),
                started_ms: now_ms,
            }),
        );
        Ok(())
    }

    /// Ends the flight of `id`: its waiters route again (and find the entry).
    pub(crate) fn land(&self, id: &EntryId) {
        let flight = locked(&self.flights).remove(id);
        if let Some(f) = flight {
            *locked(&f.done) = true;
            f.ended.notify_all();
        }
    }
}

impl Flight {
    /// Whether the flight has landed (a host that waits without blocking polls it).
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn landed(&self) -> bool {
        *locked(&self.done)
    }

    /// Waits until the flight lands, at most [`FLIGHT_WAIT`] (the crate's tests' blocking
    /// host: every other host waits without blocking, on [`Flight::landed`]).
    #[cfg(test)]
    pub(crate) fn wait(&self) {
        let done = locked(&self.done);
        let _ = self
            .ended
            .wait_timeout_while(done, FLIGHT_WAIT, |done| !*done);
    }
}

/// What the store needs of Polar's answer: its status, `retry-after` and whether it is a
/// denial, read before the answer is passed on ([`Seen::of`]), and, for a grant, the license
/// key's and customer's ids (what webhooks name) as the grant's reading found them
/// ([`Seen::held_by`]: the body is not read again for them); nothing when Polar was not
/// reached.
pub(crate) struct Seen(pub(crate) Option<Answered>);

impl Seen {
    /// Polar's status and `retry-after`, and for a 404 whether it is Polar's denial (its error
    /// envelope, as the core reads it).
    pub(crate) fn of(upstream: &Result<HttpResponse, TransportError>) -> Seen {
        Seen(upstream.as_ref().ok().map(|u| {
            let retry = u
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok());
            let denial = u.status == 404
                && error_body(u).and_then(|b| b.error).as_deref() == Some("ResourceNotFound");
            Answered {
                status: u.status,
                retry_after: retry,
                denial,
                license_key_id: None,
                customer_id: None,
            }
        }))
    }

    /// With the ids a grant names (`None`: not a grant, nothing named).
    pub(crate) fn held_by(mut self, holder: Option<Holder>) -> Seen {
        if let (Some(a), Some(h)) = (self.0.as_mut(), holder) {
            a.license_key_id = Some(h.license_key_id);
            a.customer_id = Some(h.customer_id);
        }
        self
    }
}

impl Stored {
    /// One call of the first-seen share for `client` (see [`crate::roster::FirstSeen::take`]).
    pub(crate) fn first_seen_take(&self, client: &str, now: Now) -> Result<(), u64> {
        locked(&self.first_seen).take(client, now.monotonic_ms)
    }
}

impl Stored {
    /// Polar answered a read of the relay's own 429: the budget learns it (every call waits
    /// for its `Retry-After`, at most an hour believed) and stages its state for the store.
    /// How many ms the read's worker waits.
    pub(crate) fn learn_429(&self, now: Now, retry_after: Option<u64>) -> u64 {
        let mut budget = self.budget(now);
        budget.learn(now.monotonic_ms, retry_after);
        self.backend
            .stage_budget(budget.state(now.unix_seconds, now.monotonic_ms));
        retry_after.unwrap_or(60).min(3600) * 1000
    }

    /// Polar's `answer` to a call of a route's own (a checkout, a device listing's read): a
    /// 429 is learnt as [`Stored::learn_429`] learns a read's, so the token's other calls wait
    /// for it instead of meeting it too.
    pub(crate) fn learn_answer(&self, now: Now, answer: &Result<HttpResponse, TransportError>) {
        if let Ok(a) = answer {
            if a.status == 429 {
                self.learn_429(now, retry_after(a));
            }
        }
    }
}

/// The seconds a 429's `Retry-After` asks (`None`: none, or not a number of seconds).
pub(crate) fn retry_after(a: &HttpResponse) -> Option<u64> {
    a.header("retry-after").and_then(|s| s.trim().parse().ok())
}
