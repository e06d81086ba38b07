//! Floating and CI seats (issue #67): a key's seats shared by the machines that run now.
//!
//! Three routes under [`crate::types::SEATS_PREFIX`], each a `POST` of JSON through the relay's one door
//! (the request machine, its per-IP limit, its store):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `acquire` | `key`, `organization_id`, `machine`, `kind` (`floating`, the default, or `ci`) | 200 with a signed seat lease ([`SEAT_HEADER`]); 409 `seats_full` with the seats in use and when the soonest frees |
//! | `heartbeat` | the same and `seat` | 200, the seat's life extended and a new seat lease; 404 `seat_gone` when it was culled (acquire again) |
//! | `release` | `key`, `organization_id`, `machine`, `seat` | 200 `{"released":…}` |
//!
//! An acquisition and a heartbeat stand on Polar's verdict of the key, as a validate through
//! the relay does: the store's answer while it is fresh (Polar is asked at most once per key
//! per freshness window, whatever the heartbeats), Polar's otherwise; a denial is passed on as
//! Polar gave it, and no seat is given. The pool's size is the seller's number for the key's
//! benefit ([`SeatOptions::per_benefit`]), else the key's `limit_activations`; CI seats have
//! a cap of their own within it ([`SeatOptions::ci_cap`]). The pool is one value of the
//! store, changed in one step ([`crate::store::Backend::update`]): no double grant, no lost
//! release, and it outlives a restart as the store does. Its rules are [`pool`]'s.

mod churn;
mod live;
mod pool;
mod seen;

pub(crate) use churn::Churned;
pub(crate) use live::Live;
pub use live::SNAPSHOT_SECONDS;
pub(crate) use seen::Seen;

use polar_license::lease::{
    key_hash, prepare_seat, SeatClaims, LEASE_HEADER, SEAT_HEADER, SEAT_KINDS,
};
use polar_license::Key;
use sha2::{Digest, Sha256};

use crate::clock::{rfc3339, Now};
use crate::ids::OrgId;
use crate::route::seat::{SeatAsk, SeatOp};
use crate::store::{Backend, Entry, EntryId};
use crate::types::{add_cors, object, string, Finished, RelayResponse, SignWith};
pub use pool::MAX_SEATS;
pub(crate) use pool::{Churn, Outcome, Pool, Sizes};

/// The default life of a seat not heard from: 5 minutes.
pub const SEAT_SECONDS: u32 = 300;

/// The longest machine binding a seat request may name, in bytes.
const MAX_MACHINE_BYTES: usize = 256;

/// The seller's seat settings ([`crate::Relay::with_seats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatOptions {
    /// Whether the seat routes are served (default: on). Off (`relay serve --no-seats`, the npm
    /// relay's `seats.enabled: false`): every seat route answers 404 and writes nothing; the
    /// churn limit on ordinary activations (`activation_churn`) still holds.
    pub enabled: bool,
    /// A seat's life without a heartbeat, in seconds (30 to 3,600; [`SEAT_SECONDS`] by
    /// default). A client heartbeats well within it (a third of it, by default).
    pub seconds: u32,
    /// Pool sizes by benefit id (a key of another benefit: its `limit_activations`).
    pub per_benefit: Vec<(String, u32)>,
    /// CI seats per key at once, within the pool (`None`: the pool's size only).
    pub ci_cap: Option<u32>,
    /// Churn: at most this many acquisitions per key in any window of `churn_seconds` (0: no
    /// limit; at most 1,000). Default: [`SEAT_CHURN`] an hour.
    pub churn: u32,
    /// The churn limit's window, in seconds (60 to 86,400; default 3,600).
    pub churn_seconds: u32,
    /// Churn of the key's ordinary activations and deactivations: at most this many of them
    /// together per key in any window of `activation_churn_seconds`, let through to Polar (0:
    /// no limit; at most 1,000). Default: [`ACTIVATION_CHURN`] an hour.
    pub activation_churn: u32,
    /// That limit's window, in seconds (60 to 86,400; default 3,600).
    pub activation_churn_seconds: u32,
    /// Borrowing (offline use): the most days a floating seat may be borrowed for (`0`, the
    /// default: no borrowing; at most [`MAX_BORROW_DAYS`]). A borrowed seat is its machine's
    /// until its end with no heartbeat, licensed offline by its signed seat lease (a
    /// `borrowed` claim), and counts in the pool until its end passes, whatever a release
    /// says: the lease cannot be called back, so a release frees nothing early (its answer
    /// says `released: false` and `counted_until`).
    pub borrow_days: u32,
}

/// The default churn limit on a key's activations and deactivations together, per hour: a
/// person moving a licence between machines stays well under it; a CI job that activates and
/// deactivates per run, or a deactivate-activate loop minting fresh leases, meets it.
pub const ACTIVATION_CHURN: u32 = 30;

/// The longest borrowing a seller may allow, in days.
pub const MAX_BORROW_DAYS: u32 = 90;

/// The default churn limit: acquisitions per key per hour (a CI key of a few seats running a
/// job every minute stays under it; an acquire-release loop meets it).
pub const SEAT_CHURN: u32 = 120;

impl Default for SeatOptions {
    fn default() -> SeatOptions {
        SeatOptions {
            enabled: true,
            seconds: SEAT_SECONDS,
            per_benefit: Vec::new(),
            ci_cap: None,
            churn: SEAT_CHURN,
            churn_seconds: 3_600,
            activation_churn: ACTIVATION_CHURN,
            activation_churn_seconds: 3_600,
            borrow_days: 0,
        }
    }
}

impl SeatOptions {
    /// What is wrong with these options, if anything: the field at fault and why.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if !(30..=3_600).contains(&self.seconds) {
            return Some(("seat_seconds", "must be 30 to 3600 seconds"));
        }
        if self.churn > pool::MAX_CHURN || !(60..=86_400).contains(&self.churn_seconds) {
            return Some((
                "seat_churn",
                "must be at most 1000 acquisitions, in a window of 60 to 86400 seconds",
            ));
        }
        if self.activation_churn > pool::MAX_CHURN
            || !(60..=86_400).contains(&self.activation_churn_seconds)
        {
            return Some((
                "activation_churn",
                "must be at most 1000 activations and deactivations, in a window of 60 to 86400 seconds",
            ));
        }
        if self.borrow_days > MAX_BORROW_DAYS {
            return Some(("seat_borrow_days", "must be at most 90 days"));
        }
        if self.per_benefit.iter().any(|(_, n)| *n > MAX_SEATS) {
            return Some((
                "seats",
                "a benefit's seats must be at most 512 per key (a key's pool is one stored value)",
            ));
        }
        None
    }

    /// The windows of the two churn limits, in seconds (acquisitions, activations): a stamp
    /// older than its window no longer counts, and keeps no pool.
    pub(crate) fn windows(&self) -> (i64, i64) {
        (
            i64::from(self.churn_seconds),
            i64::from(self.activation_churn_seconds),
        )
    }

    /// The churn limit on activations and deactivations.
    pub(crate) fn activation_churn(&self) -> Churn {
        Churn {
            count: self.activation_churn,
            window: i64::from(self.activation_churn_seconds),
        }
    }

    /// Why a borrowing `ask` is refused under these options, if it is (before Polar is asked).
    pub(crate) fn refuses_borrowing(&self, ask: &SeatAsk) -> Option<RelayResponse> {
        let days = ask.borrow_days?;
        let refuse = |detail: String| RelayResponse::error(422, "InvalidSeatRequest", &detail);
        if self.borrow_days == 0 {
            return Some(refuse("this relay lends no seats for offline use".into()));
        }
        if ask.ci {
            return Some(refuse("a CI seat is not borrowed".into()));
        }
        if days == 0 || days > self.borrow_days {
            return Some(refuse(format!(
                "borrow_days must be 1 to {}",
                self.borrow_days
            )));
        }
        None
    }

    /// The pool's sizes for a grant whose Polar body is `body`: the seller's number for its
    /// benefit, else its `limit_activations` (none: no seat).
    fn sizes(&self, body: &[u8]) -> Sizes {
        let v = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
        let benefit = v.get("benefit_id").and_then(|b| b.as_str());
        let seller = self
            .per_benefit
            .iter()
            .find(|(b, _)| Some(b.as_str()) == benefit)
            .map(|(_, n)| *n);
        let limit = v
            .get("limit_activations")
            .and_then(serde_json::Value::as_i64)
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
        Sizes {
            size: seller.or(limit).unwrap_or(0),
            ci_cap: self.ci_cap,
            churn: Churn {
                count: self.churn,
                window: i64::from(self.churn_seconds),
            },
            less_activations: seller.is_none(),
        }
    }
}

impl SeatAsk {
    /// The key's pool in the store.
    pub(crate) fn pool_id(&self) -> EntryId {
        pool_id(&self.organization_id, &key_hash(&self.key))
    }

    /// The machine as the pool keeps it (a digest).
    fn machine_digest(&self) -> String {
        crate::ids::hex_id(&Sha256::digest(self.machine.as_bytes()).into())
    }
}

/// The store's id of a key's pool: a digest of its own domain, no verdict's id, made from
/// the organization's canonical form only (one pool per key and organization, whatever the
/// spelling a request sent).
pub(crate) fn pool_id(organization_id: &OrgId, key_sha256: &str) -> EntryId {
    crate::store::key_digest("seats", organization_id.as_str(), key_sha256)
}

/// A seat request's body read (`422` with what is wrong).
pub(crate) fn read_ask(op: SeatOp, body: &[u8]) -> Result<SeatAsk, RelayResponse> {
    let refuse = |detail: &str| RelayResponse::error(422, "InvalidSeatRequest", detail);
    const FIELDS: [&str; 4] = ["machine", "seat", "kind", "borrow_days"];
    let (obj, key, organization_id) = crate::types::ask_object(body, &FIELDS, refuse)?;
    let text = |name: &str| obj.get(name).and_then(|v| v.as_str());
    let machine = text("machine").ok_or_else(|| refuse("machine is missing"))?;
    if machine.is_empty()
        || machine.len() > MAX_MACHINE_BYTES
        || machine.chars().any(char::is_control)
    {
        return Err(refuse("machine must be 1 to 256 bytes of printable text"));
    }
    let kind = match obj.get("kind") {
        None => "floating",
        Some(k) => k
            .as_str()
            .filter(|k| SEAT_KINDS.contains(k))
            .ok_or_else(|| refuse("kind must be floating or ci"))?,
    };
    let seat = match (op, text("seat")) {
        (SeatOp::Acquire, None) => None,
        (SeatOp::Acquire, Some(_)) => return Err(refuse("an acquisition names no seat")),
        (_, Some(seat)) => Some(
            crate::ids::canonical_uuid(seat)
                .ok_or_else(|| refuse("seat must be the seat's id (a UUID)"))?,
        ),
        (_, None) => return Err(refuse("seat must be the seat's id (a UUID)")),
    };
    let borrow_days = match (op, obj.get("borrow_days")) {
        (_, None) => None,
        (SeatOp::Acquire, Some(d)) => Some(
            d.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| (1..=MAX_BORROW_DAYS).contains(d))
                .ok_or_else(|| refuse("borrow_days must be a number of days, 1 to 90"))?,
        ),
        (_, Some(_)) => return Err(refuse("only an acquisition borrows")),
    };
    Ok(SeatAsk {
        op,
        key,
        organization_id,
        machine: machine.to_string(),
        seat,
        ci: kind == "ci",
        borrow_days,
    })
}

/// The pool as stored (none, or unreadable: empty).
fn pool_of(entry: Option<&Entry>) -> Pool {
    entry
        .and_then(|e| serde_json::from_str(&e.body).ok())
        .unwrap_or_default()
}

/// The store's value holding `pool` (no index tag: no webhook, listing or reconcile sees it):
/// a seat pool, never evicted by the store's byte cap (`store::evictable`), or, holding no
/// seat and no counted activation, its churn record alone (`EntryKind::SeatChurn`).
fn entry_of(pool: &Pool, now: i64) -> Option<Entry> {
    let kind = match pool.seats.is_empty() && pool.activations == 0 {
        true => crate::store::EntryKind::SeatChurn,
        false => crate::store::EntryKind::SeatPool,
    };
    Some(Entry {
        answered_at: now,
        status: crate::store::SEAT_POOL_STATUS,
        body: serde_json::to_string(pool).ok()?,
        kind: Some(kind),
        ..Entry::default()
    })
}

/// Whether `pool` holds anything worth its place in the store at `now`: a seat (held or
/// lent, culled or not), the key's ordinary activations as counted, or a churn stamp still
/// inside its window (`windows`: the acquisitions' and the activations' windows, seconds). A
/// pool holding none of these is deleted (issue #76 finding 1): the churn limits are not reset
/// by that, since a stamp inside its window keeps its pool.
fn worth_keeping(pool: &Pool, now: i64, windows: (i64, i64)) -> bool {
    let live = |stamps: &[i64], window: i64| stamps.iter().any(|t| *t > now - window);
    !pool.seats.is_empty()
        || pool.activations > 0
        || live(&pool.taken, windows.0)
        || live(&pool.churned, windows.1)
}

/// Why a pool step wrote nothing it meant to: the store refused a new or grown pool (the
/// seats' share of its byte cap is spent), or the store failed.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The seats' and usage's share of the store is spent (a quarter of the store's byte cap).
    NoRoom,
    /// The store failed.
    Store(crate::store::StoreError),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::NoRoom => f.write_str("the seats' share of the store is spent"),
            StepError::Store(e) => e.fmt(f),
        }
    }
}

/// Where the seats' pools are kept and by which options: the store, the operator's count of
/// the seats (`seen`), the pools held in memory for a host that loads none (`live`).
#[derive(Clone, Copy)]
pub(crate) struct Pools<'a> {
    pub(crate) store: &'a dyn Backend,
    pub(crate) seen: &'a Seen,
    pub(crate) live: &'a Live,
    pub(crate) options: &'a SeatOptions,
}

/// One step on the pool `id`, read and written in one step of the store; the operator's count
/// (`seen`) told what it left. What it writes (issue #76 finding 1): nothing when the pool is
/// unchanged, nothing when there was no pool and the step gave no seat (a refused acquisition,
/// a heartbeat or a release of a pool that is not there: only a granted acquisition makes a
/// pool), a deletion when the pool is left holding nothing worth keeping ([`worth_keeping`]),
/// else the pool. A new or grown pool the store refuses (the seats' share of its byte cap) is
/// [`StepError::NoRoom`]: no seat is given that is not stored. `lazily`: a write that may
/// wait for the store's next durable commit ([`Backend::update_lazily`]).
fn step(
    pools: &Pools<'_>,
    id: &EntryId,
    now: i64,
    lazily: bool,
    f: &mut dyn FnMut(&mut Pool) -> Outcome,
) -> Result<Outcome, StepError> {
    let Pools {
        store, seen, live, ..
    } = *pools;
    let windows = pools.options.windows();
    if !store.host_loads() {
        let mut outcome = Outcome::Gone;
        let mut ends = Vec::new();
        let stepped = live.step(store, id, now, lazily, &mut |pool, stored| {
            // A heartbeat (`lazily`) adds no seat: its pool is not copied, what it changed is
            // read from the seats' count and the limit (a seat culled or shed is written).
            let before = (!lazily).then(|| pool.clone());
            let shape = (pool.seats.len(), pool.limit);
            outcome = f(pool);
            ends = pool
                .seats
                .iter()
                .map(|s| if s.borrowed { -s.until } else { s.until })
                .collect();
            if !stored {
                if matches!(outcome, Outcome::Held { .. }) {
                    return live::Change::Write;
                }
                // Only a granted acquisition makes a pool: what this step did is dropped.
                *pool = Pool::default();
                ends.clear();
                return live::Change::Nothing;
            }
            if !worth_keeping(pool, now, windows) {
                return live::Change::Remove;
            }
            match before {
                Some(before) if *pool == before => live::Change::Nothing,
                Some(_) => live::Change::Write,
                None if (pool.seats.len(), pool.limit) != shape => live::Change::Write,
                None if matches!(outcome, Outcome::Held { .. }) => live::Change::Ends,
                None => live::Change::Nothing,
            }
        });
        if let Some(stepped) = stepped {
            return match stepped.map_err(StepError::Store)? {
                live::Stepped::Refused => Err(StepError::NoRoom),
                live::Stepped::Done => {
                    seen.saw(id, ends, now);
                    Ok(outcome)
                }
            };
        }
    }
    let mut outcome = Outcome::Gone;
    let mut ends = Vec::new();
    let mut writes = false;
    let mut write = |current: Option<&Entry>| {
        writes = false;
        let before = pool_of(current);
        let mut pool = before.clone();
        outcome = f(&mut pool);
        ends = pool
            .seats
            .iter()
            .map(|s| if s.borrowed { -s.until } else { s.until })
            .collect();
        if current.is_none() {
            if !matches!(outcome, Outcome::Held { .. }) {
                return None;
            }
        } else if !worth_keeping(&pool, now, windows) {
            return Some(Entry::removal());
        } else if pool == before {
            return None;
        }
        writes = true;
        entry_of(&pool, now)
    };
    let written = if lazily {
        store.update_lazily(id, &mut write)
    } else {
        store.update(id, &mut write)
    }
    .map_err(StepError::Store)?;
    if writes && written.is_none() {
        return Err(StepError::NoRoom);
    }
    seen.saw(id, ends, now);
    Ok(outcome)
}

/// A seat's id from 16 random bytes (a UUID v4).
fn seat_id(entropy: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(entropy)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// An acquisition's or a heartbeat's answer once the key's verdict is in (`verdict`: the
/// relay's answer to the key's validate, Polar's now or the store's): a denial or a failure
/// passed on as it is; on a grant, the pool's step and its answer, with a seat lease signed
/// here or to be signed elsewhere.
pub(crate) fn settle(
    pools: &Pools<'_>,
    signer: &SignWith,
    ask: &SeatAsk,
    verdict: Finished,
    now: Now,
    entropy: Option<[u8; 16]>,
) -> Finished {
    let leased = verdict
        .unsigned
        .as_ref()
        .is_some_and(|(u, _)| u.header() == LEASE_HEADER)
        || verdict.response.header(LEASE_HEADER).is_some();
    if verdict.response.status != 200 || !leased {
        return verdict;
    }
    let options = pools.options;
    let sizes = options.sizes(&verdict.response.body);
    let machine = ask.machine_digest();
    let life = i64::from(options.seconds);
    let at = now.unix_seconds;
    // A borrowing: days, no heartbeat (checked against the options before Polar was asked).
    let lent = ask
        .borrow_days
        .filter(|_| options.refuses_borrowing(ask).is_none())
        .map(|days| i64::from(days) * 86_400);
    let stepped = match (ask.op, &ask.seat) {
        (SeatOp::Acquire, _) => {
            let Some(id) = entropy.map(seat_id) else {
                return plain(RelayResponse::unreached(
                    "the relay has no randomness for a seat",
                ));
            };
            step(pools, &ask.pool_id(), at, false, &mut |pool| match lent {
                Some(days) => pool.borrow(sizes, &machine, &id, at, days),
                None => pool.acquire(sizes, &machine, ask.ci, &id, at, life),
            })
        }
        // A heartbeat's write may wait for the store's next durable commit (a second at most,
        // `Backend::update_lazily`): lost in a crash, its seat is held to its previous
        // heartbeat's end, never longer, and nothing is granted by it.
        (SeatOp::Heartbeat, Some(id)) => step(pools, &ask.pool_id(), at, true, &mut |pool| {
            pool.heartbeat(sizes, id, &machine, at, life)
        }),
        _ => return plain(RelayResponse::detail(404, "Not Found")),
    };
    let outcome = match stepped {
        Ok(outcome) => outcome,
        Err(StepError::NoRoom) => {
            log::warn!(
                "relay: seat {} {} 503 (the seats' share of the store is spent: no new pool)",
                ask.op.as_str(),
                crate::logged::key(&ask.key)
            );
            return plain(no_room());
        }
        Err(StepError::Store(e)) => {
            log::error!(
                "relay: seat {} {}: the store failed: {e}",
                ask.op.as_str(),
                crate::logged::key(&ask.key)
            );
            return plain(RelayResponse::detail(503, "the relay's store failed"));
        }
    };
    match outcome {
        Outcome::Held { seat, in_use, size } => held(signer, ask, &seat, in_use, size, at),
        Outcome::Full {
            in_use,
            size,
            frees_at,
        } => {
            log::info!(
                "relay: seat {} {} 409 (seats_full: {in_use} of {size})",
                ask.op.as_str(),
                crate::logged::key(&ask.key)
            );
            plain(full(in_use, size, frees_at, at))
        }
        Outcome::Churned { at: next } => {
            log::info!(
                "relay: seat {} {} 429 (churn: {} acquisitions in {} s)",
                ask.op.as_str(),
                crate::logged::key(&ask.key),
                options.churn,
                options.churn_seconds
            );
            plain(churned(
                "SeatChurn",
                "too many seat acquisitions of this key: wait for retry-after",
                next.saturating_sub(at),
            ))
        }
        Outcome::Gone | Outcome::Released(_) | Outcome::Lent { .. } => plain(gone()),
    }
}

/// A release: no verdict asked (freeing a seat grants nothing).
pub(crate) fn release(pools: &Pools<'_>, ask: &SeatAsk, now: Now) -> RelayResponse {
    let Some(id) = &ask.seat else {
        return RelayResponse::detail(404, "Not Found");
    };
    let machine = ask.machine_digest();
    let at = now.unix_seconds;
    match step(pools, &ask.pool_id(), at, false, &mut |pool| {
        pool.release(id, &machine, at)
    }) {
        Ok(Outcome::Released(released)) => {
            log::info!(
                "relay: seat release {} 200 (seat {id}{})",
                crate::logged::key(&ask.key),
                if released { " freed" } else { " not held" }
            );
            RelayResponse::json(200, object(&[("released", released.to_string())]))
        }
        Ok(Outcome::Lent { until }) => {
            log::info!(
                "relay: seat release {} 200 (seat {id} borrowed: counted until {})",
                crate::logged::key(&ask.key),
                crate::logged::instant(until)
            );
            RelayResponse::json(
                200,
                object(&[
                    ("released", "false".to_string()),
                    ("borrowed", "true".to_string()),
                    ("counted_until", string(&rfc3339(until))),
                    (
                        "detail",
                        string(
                            "a borrowed seat stays counted until its end: its lease licenses \
                             offline until then",
                        ),
                    ),
                ]),
            )
        }
        Ok(_) => gone(),
        Err(StepError::NoRoom) => no_room(),
        Err(StepError::Store(e)) => {
            log::error!(
                "relay: seat release {}: the store failed: {e}",
                crate::logged::key(&ask.key)
            );
            RelayResponse::detail(503, "the relay's store failed")
        }
    }
}

/// The key's ordinary activations as Polar answered them through the relay: an activation
/// (`+1`) or a deactivation (`-1`) of the key `key` of `organization_id` moves its pool's
/// count, when the key has a pool, and is stamped in the pool's churn record (`churn`,
/// issue #67 item 4: stored, so that a restarted relay still meets the limit). A key with
/// no pool gets one for that record when the limit is on (its activations then unknown, 0,
/// as a pool a first seat makes: read by id by [`crate::reconcile`]); with the limit off none
/// is made. Only what Polar made is counted, so only a key Polar activated or deactivated
/// (one the seller sold) ever gets a pool this way, each record at most `churn`'s count of
/// stamps ([`pool::MAX_CHURN`] at most), those past the window dropped at every write. Such
/// a pool holds no seat: it is stored as the churn record alone (`EntryKind::SeatChurn`),
/// which the byte cap evicts as it does a denial, so that keys activated once over the years
/// never fill the seats' share of the store. With a store
/// the host reads per key (a Durable Object's), the pool was loaded with the request
/// ([`crate::routes::Part::wants`]: an activation's one read, a deactivation's with its key's
/// entries, or alone when it has none).
pub(crate) fn count_activation(
    store: &dyn Backend,
    live: &Live,
    organization_id: &OrgId,
    key: &Key,
    delta: i32,
    churn: Churn,
    now: i64,
) {
    let id = pool_id(organization_id, &key_hash(key));
    if store.host_loads() && store.get(&id).is_err() {
        log::debug!(
            "relay: the activations of {} are not counted in its seats (its pool was not read)",
            crate::logged::key(key)
        );
        return;
    }
    if !store.host_loads() {
        let stepped = live.step(store, &id, now, false, &mut |pool, stored| {
            if !stored && churn.count == 0 {
                return live::Change::Nothing;
            }
            if stored {
                pool.activations = pool.activations.saturating_add_signed(delta);
            }
            pool.count_churn(churn, now);
            // The acquisitions' window is not known here: the longest a seller may set.
            if stored && !worth_keeping(pool, now, (86_400, churn.window)) {
                return live::Change::Remove;
            }
            live::Change::Write
        });
        match stepped {
            Some(Ok(live::Stepped::Done)) => return,
            Some(Ok(live::Stepped::Refused)) => {
                log::warn!(
                    "relay: the activations of {} are not counted in its seats (the seats' share \
                     of the store is spent): the relay's memory still counts its churn",
                    crate::logged::key(key)
                );
                return;
            }
            Some(Err(e)) => {
                log::warn!(
                    "relay: the activations of {} are not counted in its seats ({e}): the \
                     reconcile's next read of the key counts them",
                    crate::logged::key(key)
                );
                return;
            }
            None => {}
        }
    }
    let mut writes = false;
    let changed = store.update(&id, &mut |current| {
        writes = false;
        if current.is_none() && churn.count == 0 {
            return None;
        }
        let mut pool = pool_of(current);
        if current.is_some() {
            pool.activations = pool.activations.saturating_add_signed(delta);
        }
        pool.count_churn(churn, now);
        // The acquisitions' window is not known here: the longest a seller may set.
        if current.is_some() && !worth_keeping(&pool, now, (86_400, churn.window)) {
            return Some(Entry::removal());
        }
        writes = true;
        entry_of(&pool, now)
    });
    if writes && matches!(changed, Ok(None)) {
        log::warn!(
            "relay: the activations of {} are not counted in its seats (the seats' share of \
             the store is spent): the relay's memory still counts its churn",
            crate::logged::key(key)
        );
    }
    if let Err(e) = changed {
        log::warn!(
            "relay: the activations of {} are not counted in its seats ({e}): the reconcile's \
             next read of the key counts them",
            crate::logged::key(key)
        );
    }
}

/// When the next ordinary activation or deactivation of `key` (of `organization_id`) is
/// possible (`Some(unix seconds)`) if one now would pass its stored churn record's limit
/// ([`count_activation`]); `None`: within it, the limit off, no pool, or its pool not read
/// (a host-loaded store that did not load it, or a store that failed: the relay's memory of
/// the churn still counts, [`crate::seats::Churned`]).
pub(crate) fn activation_churned(
    store: &dyn Backend,
    live: &Live,
    organization_id: &OrgId,
    key: &Key,
    churn: Churn,
    now: i64,
) -> Option<i64> {
    if churn.count == 0 {
        return None;
    }
    let pool = stored_pool(store, live, organization_id, key, |e| {
        log::debug!(
            "relay: the churn of {} is not read from its pool ({e})",
            crate::logged::key(key)
        );
    })?;
    pool.activation_churn(churn, now).err()
}

/// `key`'s default pool (of `organization_id`) as stored: `None` where it has none, or where
/// the store failed (said by `failed`).
fn stored_pool(
    store: &dyn Backend,
    live: &Live,
    organization_id: &OrgId,
    key: &Key,
    failed: impl FnOnce(&crate::store::StoreError),
) -> Option<Pool> {
    let id = pool_id(organization_id, &key_hash(key));
    let read = if store.host_loads() {
        store.get(&id).map(|entry| entry.map(|e| pool_of(Some(&e))))
    } else {
        // The seats' ends as the relay holds them, heartbeats' included.
        live.read(store, &id)
    };
    match read {
        Ok(pool) => pool,
        Err(e) => {
            failed(&e);
            None
        }
    }
}

/// The key's ordinary activations as Polar read them by id (`count`, the reconcile's
/// `GET /v1/license-keys/{id}`): its pool's count set, when it has a pool (none is made; not
/// with a store the host reads per key, whose reconcile loads the key's answers only).
pub(crate) fn set_activations(
    store: &dyn Backend,
    live: &Live,
    organization_id: &OrgId,
    key: &Key,
    count: u32,
    now: i64,
) {
    if store.host_loads() {
        return;
    }
    let id = pool_id(organization_id, &key_hash(key));
    let stepped = live.step(store, &id, now, false, &mut |pool, stored| {
        if !stored || pool.activations == count {
            return live::Change::Nothing;
        }
        pool.activations = count;
        live::Change::Write
    });
    if let Some(stepped) = stepped {
        if let Err(e) = stepped {
            log::debug!(
                "relay: the activations of {} read by id are not counted in its seats ({e})",
                crate::logged::key(key)
            );
        }
        return;
    }
    let changed = store.update(&id, &mut |current| {
        let mut pool = pool_of(Some(current?));
        if pool.activations == count {
            return None;
        }
        pool.activations = count;
        entry_of(&pool, now)
    });
    if let Err(e) = changed {
        log::debug!(
            "relay: the activations of {} read by id are not counted in its seats ({e})",
            crate::logged::key(key)
        );
    }
}

/// Why an ordinary activation of `key` (of `organization_id`) through the relay is refused
/// at `now`, before Polar is asked: seats held in the key's default pool plus its ordinary
/// activations already reach its `limit_activations` (what the seller sold; issue #67).
/// Polar's own answer to an activation past the limit (`403 NotPermitted`, "License key
/// activation limit already reached"), so that every client reads it as it reads Polar's
/// (`activation_limit`: deactivate a device, or here, wait for a seat to be released), with
/// the seats' figures beside it (`seats_in_use`, `activations`, `limit_activations`, `reason`
/// `activation_limit`). `None`: no pool, no seat held, a seller's number for the benefit, or
/// a pool the store could not read (Polar's count still decides).
pub(crate) fn refuses_activation(
    store: &dyn Backend,
    live: &Live,
    organization_id: &OrgId,
    key: &Key,
    now: i64,
) -> Option<RelayResponse> {
    let mut pool = stored_pool(store, live, organization_id, key, |e| {
        log::warn!(
            "relay: activate {}: its seats are not read ({e}): Polar's count decides",
            crate::logged::key(key)
        );
    })?;
    let (in_use, activations, limit) = pool.room_to_activate(now).err()?;
    log::info!(
        "relay: activate {} 403 (activation limit: {in_use} seats held and {activations}          activations of {limit})",
        crate::logged::key(key)
    );
    Some(RelayResponse::json(
        403,
        object(&[
            ("error", string("NotPermitted")),
            (
                "detail",
                string("License key activation limit already reached"),
            ),
            ("reason", string("activation_limit")),
            ("seats_in_use", in_use.to_string()),
            ("activations", activations.to_string()),
            ("limit_activations", limit.to_string()),
        ]),
    ))
}

fn plain(mut response: RelayResponse) -> Finished {
    add_cors(&mut response);
    Finished {
        response,
        unsigned: None,
    }
}

/// `409 seats_full`: how many are in use of how many, and when the soonest frees (with
/// `retry-after`).
fn full(in_use: u32, size: u32, frees_at: Option<i64>, now: i64) -> RelayResponse {
    let mut members = vec![
        ("error", string("SeatsFull")),
        ("detail", string("every seat of this key is in use")),
        ("reason", string("seats_full")),
        ("in_use", in_use.to_string()),
        ("size", size.to_string()),
    ];
    if let Some(at) = frees_at {
        members.push(("frees_at", string(&rfc3339(at))));
    }
    if size >= MAX_SEATS {
        // The key may have been sold more: this relay holds at most this many per key.
        members.push(("max_seats", MAX_SEATS.to_string()));
    }
    let mut r = RelayResponse::json(409, object(&members));
    if let Some(at) = frees_at {
        r.set("retry-after", &at.saturating_sub(now).max(1).to_string());
    }
    r
}

/// A churn limit's `429` (`rate_limited`, `retry-after` the `wait` in seconds): `error` and
/// `detail` say which.
pub(crate) fn churned(error: &str, detail: &str, wait: i64) -> RelayResponse {
    let mut r = RelayResponse::rate_limited(u64::try_from(wait.max(1)).unwrap_or(1));
    r.set("content-type", "application/json");
    r.body = object(&[
        ("error", string(error)),
        ("detail", string(detail)),
        ("reason", string("rate_limited")),
    ])
    .into_bytes();
    r
}

/// `503 SeatsUnavailable`: the store holds no room for another pool (the seats' and usage's
/// share of its byte cap is spent; pools held now go on working), with `retry-after`.
fn no_room() -> RelayResponse {
    let mut r = RelayResponse::json(
        503,
        object(&[
            ("error", string("SeatsUnavailable")),
            (
                "detail",
                string("the relay's store has no room for another seat pool: try again later"),
            ),
        ]),
    );
    r.set("retry-after", "60");
    r
}

/// `404 seat_gone`: the seat is not held (culled, released, or another machine's).
fn gone() -> RelayResponse {
    RelayResponse::json(
        404,
        object(&[
            ("error", string("SeatGone")),
            ("detail", string("no such seat is held: acquire one again")),
            ("reason", string("seat_gone")),
        ]),
    )
}

/// A seat held: its answer, and its lease signed here or to be signed elsewhere.
fn held(
    signer: &SignWith,
    ask: &SeatAsk,
    seat: &pool::Held,
    in_use: u32,
    size: u32,
    now: i64,
) -> Finished {
    let claims = SeatClaims {
        organization_id: ask.organization_id.as_str().to_string(),
        key_sha256: key_hash(&ask.key),
        seat: seat.id.clone(),
        kind: if seat.ci { "ci" } else { "floating" }.to_string(),
        issued_at: now,
        expires_at: seat.until,
        size,
        borrowed: seat.borrowed,
    };
    let mut members = vec![
        ("seat", string(&seat.id)),
        ("kind", string(&claims.kind)),
        ("expires_at", string(&rfc3339(seat.until))),
        ("expires_in", seat.until.saturating_sub(now).to_string()),
        ("in_use", in_use.to_string()),
        ("size", claims.size.to_string()),
    ];
    if seat.borrowed {
        members.push(("borrowed", "true".to_string()));
    }
    let mut response = RelayResponse::json(200, object(&members));
    response.set("cache-control", "no-store");
    add_cors(&mut response);
    log::info!(
        "relay: seat {} {} 200 (seat {} until {})",
        ask.op.as_str(),
        crate::logged::key(&ask.key),
        seat.id,
        crate::logged::instant(seat.until)
    );
    let signed = match signer {
        SignWith::Key(key) => key.sign_seat(&claims, &ask.machine).map(|token| {
            response.set(SEAT_HEADER, &token);
            None
        }),
        SignWith::External { kid, .. } => prepare_seat(&claims, kid, &ask.machine)
            .map(|unsigned| Some((unsigned, Some(ask.machine.clone())))),
    };
    match signed {
        Ok(unsigned) => Finished { response, unsigned },
        Err(e) => {
            log::error!("relay: seat {} without a lease: {}", seat.id, e.text());
            Finished {
                response,
                unsigned: None,
            }
        }
    }
}
