//! The verdict store (issue #37): Polar's answers kept by organization, SHA-256 of the key and
//! request shape, so that a relay answers most checks without spending the organization
//! token's budget (500 calls a minute for all of a seller's customers), answers through
//! Polar's outages, and learns of revocations from Polar's webhooks.
//!
//! The decisions are here, sans-IO: what an entry may answer and for how long
//! ([`StoreOptions`]), the token budget ([`Budget`]), what a webhook may do (only narrow: a
//! revocation marks a key's entries denied, any other change marks them stale so the next
//! check asks Polar; nothing a webhook says can grant). Where entries live is a [`Backend`]:
//! [`MemoryBackend`], or natively [`RedbBackend`] (feature `durable`), a crash-safe file.

mod budget;
#[cfg(all(feature = "durable", not(target_arch = "wasm32")))]
mod durable;
mod entry;
mod journal;
pub(crate) mod layout;
mod memory;
mod paged;
pub(crate) mod saves;
#[cfg(test)]
mod tests;
mod webhook;

pub use budget::{Budget, BudgetState, Use};
#[cfg(all(feature = "durable", not(target_arch = "wasm32")))]
pub use durable::RedbBackend;
pub(crate) use entry::key_digest;
pub(crate) use entry::{
    checked_conditions, checked_entry_id, evictable, eviction_rank, held, passes_held_share,
    SEAT_POOL_STATUS,
};
pub use entry::{
    entry_size, key_tag, stored_bytes, Entry, EntryId, EntryKind, Mark, ENTRY_OVERHEAD,
    MARKED_STALE_SECONDS, MAX_ENTRIES_PER_KEY, MAX_ENTRY_BYTES,
};
pub use journal::{JournalBackend, JournalItem};
#[cfg(test)]
pub(crate) use memory::Keeper;
pub use memory::MemoryBackend;
pub(crate) use paged::DEFAULT_CACHED;
pub use paged::{Missing, PagedBackend, Wants};
#[cfg(test)]
pub(crate) use webhook::HMACS;
pub use webhook::{
    narrowed, narrowing, rotation, verify_webhook, webhook_secret_usable, Narrowing,
    WebhookRefusal, WEBHOOK_MAX_SIGNATURES, WEBHOOK_MAX_SIGNATURE_HEADER, WEBHOOK_TOLERANCE,
};
pub(crate) use webhook::{
    refuses_without_call, webhook_headers, webhook_signatures_within_limits, RECHECK_MARKED_AT,
};

use budget::MINUTE_MS;

/// How the store answers. Start from [`StoreOptions::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// A grant younger than this answers a validate with no call to Polar (default 300 s).
    pub fresh_for: u64,
    /// When Polar cannot be asked (the budget, a 429, a 5xx, unreachable), a grant younger
    /// than this still answers, marked `stale` (default 86,400 s).
    pub stale_for: u64,
    /// A denial younger than this answers with no call (default 60 s): a flood of unknown or
    /// revoked keys spends no budget.
    pub denial_for: u64,
    /// The organization token's calls per minute (default 500, Polar's production budget;
    /// 100 in the sandbox). The relay never makes more in any 60 s.
    pub budget: u32,
    /// Of the budget, the calls kept for activate, deactivate and usage increments (always
    /// forwarded, never answered from the store): validates that need Polar may use the rest
    /// (default a quarter: `cargo run --release -p polar-license-relay --example store_bench`
    /// answered 243 of 459 new customers' activations with a tenth, 407 of 461 with a quarter,
    /// the rest refused in Polar's outage, with 99.95% of known keys' checks answered both ways).
    pub reserve: u32,
    /// Entries kept at most (default 1,000,000); past it the oldest answers go first.
    pub max_entries: usize,
    /// The store's bytes at most (default [`DEFAULT_MAX_BYTES`], 64 MiB: safe in a small
    /// VM's memory and a Durable Object's storage), each entry counted as
    /// [`stored_bytes`]; at least [`MAX_ENTRY_BYTES`] plus its overhead is kept whatever is
    /// set. Past it what is cheapest to lose goes first: denials (refused and unknown keys'
    /// answers) before grants, the oldest first; never a revocation a webhook marked (a
    /// webhook only narrows: evicted, a revoked key would be licensed again while Polar cannot
    /// be asked). When only revocations are left to evict, a new answer is passed on and not
    /// stored, with a warning.
    pub max_bytes: u64,
    /// The budget's window in ms (default 60,000: Polar's minute; shorter only for tests and
    /// benchmarks that scale time against an emulator's `--token-window`).
    pub budget_window_ms: u64,
    /// Know the organization's keys (default **on**): the SHA-256 of every key, paged in from
    /// Polar's `GET /v1/license-keys/` at start with spare budget (the token needs
    /// `license_keys:read`) and kept current from the grant webhooks, each key refetched by
    /// id. A key neither in it nor granted in the store is first-seen: see
    /// [`StoreOptions::first_seen_share`]. A token that cannot list the keys (Polar's 401 or
    /// 403) logs one warning, `/healthz` and the metric `roster_unreadable` say so, and the
    /// protection stays: only keys Polar granted through the relay are known, every other key
    /// gets the first-seen share. `false` turns it off: every key counts as known and may
    /// spend the whole budget and its reserve (random keys from a few addresses then take
    /// every call Polar allows: the relay's attack benchmark, "the relay's defaults" rows).
    pub roster: bool,
    /// With [`StoreOptions::roster`]: the percent of the budget first-seen keys may spend
    /// (default 10), divided fairly between the clients asking (per address, per /64 for
    /// IPv6), never from the reserve; past it they are answered 429 with `Retry-After`.
    pub first_seen_share: u32,
    /// An entry marked stale (a webhook's change, a deactivation or an increment through the
    /// relay) answers while Polar cannot be asked for at most this long after its mark
    /// (default [`MARKED_STALE_SECONDS`], an hour), instead of [`StoreOptions::stale_for`]:
    /// what changed is Polar's to say.
    pub marked_stale_for: u64,
    /// With the native server: every stored grant's key is asked of Polar again by id
    /// (`GET /v1/license-keys/{id}`) once its last check is this old, with idle budget only,
    /// and its entries narrowed when Polar says the key is revoked, disabled, expired, rotated
    /// or gone (default 600 s; 0 turns it off): see `crate::reconcile`.
    pub reconcile_every: u64,
    /// Sign what Polar knows of each key's customer into its leases (issue #68, default
    /// **off**; docs/entitlements.md): the key's Feature Flag values and its customer's meter
    /// balances, read with the organization token (it then needs `benefits:read` and
    /// `customer_meters:read`) by the background reads from the budget's shared part, cached
    /// per customer for `fresh_for` (then read again; signed for at most `stale_for`), kept
    /// fresh by `benefit.updated`, `benefit_grant.*` and `customer.state_changed`. Signed only
    /// for a client that asks ([`polar_license::lease::ENTITLEMENTS_MARK`]). Only with the
    /// crate's `entitlements` feature (on by default; the npm relay's wasm is built without
    /// it): without it the option does nothing.
    pub entitlements: bool,
    /// Take usage reports (issue #68 item 3, default **off**; the relay's `usage` module,
    /// docs/entitlements.md): `POST /v1/usage/record` keeps each report of a key Polar grants
    /// in the store and the background reads ingest them to Polar in batches
    /// (`POST /v1/events/ingest`: the token then needs `events:write`) from the budget's
    /// shared part. With [`StoreOptions::entitlements`] the answer carries the meter's
    /// balance as the relay knows it. Only with the crate's `entitlements` feature.
    pub usage: bool,
    /// With [`StoreOptions::usage`] and [`StoreOptions::entitlements`]: refuse a report whose
    /// meter's known balance is at or below zero (402, reason `credits_exhausted`; default
    /// **off**: Polar itself never refuses usage).
    pub refuse_at_zero_credits: bool,
    /// With [`StoreOptions::usage`]: the event names (meters) a usage report may name, the
    /// seller's list (`None`, the default: any well-formed name, 1 to 128 bytes of printable
    /// text). A report naming another is refused before anything is asked or kept (422
    /// `InvalidUsageRequest`, issue #76): an event no meter counts is never billed, so a
    /// client could otherwise spend the budget's calls on usage nobody pays for. At most
    /// 64 names.
    pub usage_events: Option<Vec<String>>,
}

/// The longest a write of [`Backend::update_lazily`] stays off the disk: a lazy write made
/// this long after the last durable commit is made durable itself (so a crash loses at most
/// the writes of the last second before it).
pub const LAZY_COMMIT_MS: u64 = 1_000;

/// The default of [`StoreOptions::max_bytes`]: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Polar's production budget for an organization token: 500 calls a minute.
pub const POLAR_BUDGET: u32 = 500;
/// Polar's sandbox budget: 100 calls a minute.
pub const SANDBOX_BUDGET: u32 = 100;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            fresh_for: 300,
            stale_for: 86_400,
            denial_for: 60,
            budget: POLAR_BUDGET,
            reserve: POLAR_BUDGET / 4,
            max_entries: 1_000_000,
            max_bytes: DEFAULT_MAX_BYTES,
            budget_window_ms: MINUTE_MS,
            roster: true,
            first_seen_share: 10,
            marked_stale_for: MARKED_STALE_SECONDS,
            reconcile_every: 600,
            entitlements: false,
            usage: false,
            refuse_at_zero_credits: false,
            usage_events: None,
        }
    }
}
/// A store that failed: the relay passes Polar's answers through as without a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// What [`Backend::narrow`] narrows: every entry indexed under `tags`, each once, unless the
/// webhook delivery `webhook` (its id, unix seconds) was seen; without one, a narrowing of the
/// relay's own.
#[derive(Clone, Copy, Debug)]
pub struct Narrow<'a> {
    /// The webhook delivery's id and when it came (unix seconds), to be remembered.
    pub webhook: Option<(&'a str, i64)>,
    /// The index rows whose entries are narrowed.
    pub tags: &'a [String],
}

impl<'a> Narrow<'a> {
    /// A narrowing of the relay's own (a deactivation, an increment it passed on).
    pub fn own(tags: &'a [String]) -> Self {
        Narrow {
            webhook: None,
            tags,
        }
    }

    /// A webhook delivery's: `id`, come at `at` (unix seconds).
    pub fn delivery(id: &'a str, at: i64, tags: &'a [String]) -> Self {
        Narrow {
            webhook: Some((id, at)),
            tags,
        }
    }
}

/// How [`Backend::update`] changes one entry: given it as stored (`None`: there is none), the
/// entry to write (`None`: unchanged).
pub type Updater<'a> = &'a mut dyn FnMut(Option<&Entry>) -> Option<Entry>;

/// The entries a webhook delivery writes ([`Backend::apply_webhook`]).
pub type Writes<'a> = &'a [(EntryId, Entry)];

/// How [`Backend::narrow`] narrows one entry: the entry to write (`None`: unchanged).
pub type Narrower<'a> = &'a mut dyn FnMut(&Entry) -> Option<Entry>;

/// Where entries and webhook ids live.
///
/// A backend implements [`Backend::put`] or [`Backend::update`], or both: each is given in
/// terms of the other (one implementing neither recurses without end). Every backend of this
/// crate implements `update` (one step) and takes `put` as given.
pub trait Backend: Send + Sync {
    /// Whether the host reads this store per key into it before the core reads it (a paged
    /// store's host: [`PagedBackend`]); every other backend reads its own storage.
    fn host_loads(&self) -> bool {
        false
    }
    /// An entry.
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError>;
    /// Stores an entry (indexed by its license key id and customer id), evicting the oldest
    /// past the cap; durable when this returns.
    ///
    /// The default is an [`Backend::update`] that writes `entry` whatever is stored.
    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        self.update(id, &mut |_| Some(entry.clone())).map(|_| ())
    }
    /// The entries of a license key id (`l:…`) or a customer id (`c:…`).
    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError>;
    /// In one step: unless `webhook_id` was seen, writes `updates` and remembers the id;
    /// `false` when it was seen (nothing written).
    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError>;
    /// Reads the entry `id` and writes what `f` makes of it in one step: nothing else writes
    /// the store between that read and that write (a webhook acknowledged meanwhile is either
    /// in what `f` reads, or applied after its write). `f` gets the entry as stored now and
    /// returns the entry to write (`None`: nothing written); what was written is returned.
    ///
    /// The default reads and writes in two steps, with [`Backend::put`] (a backend of its own
    /// that cannot do better may lose a webhook's mark to a racing answer): every backend of
    /// this crate overrides it.
    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        let current = self.get(id)?;
        match f(current.as_ref()) {
            Some(entry) => {
                self.put(id, &entry)?;
                Ok(Some(entry))
            }
            None => Ok(None),
        }
    }
    /// As [`Backend::update`], but the write may be kept from the disk for up to
    /// [`LAZY_COMMIT_MS`] (it then rides on the next durable commit, or is made durable
    /// itself): a crash (`kill -9`, a power cut) may lose it, a clean stop does not. Only for a
    /// write whose loss leaves the store safe: a seat's heartbeat (lost, its seat is held to
    /// its previous heartbeat's end, never longer; no seat is granted by one). Seen by every
    /// reader at once, as any write is. The default is [`Backend::update`].
    fn update_lazily(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.update(id, f)
    }
    /// In one step: unless the webhook id of `webhook` (id, unix seconds) was seen, every
    /// entry indexed under `tags` read as stored now and narrowed by `f` (`None`: unchanged),
    /// and the id remembered. `None` when the id was seen (nothing written), else how many
    /// entries changed. Without `webhook`, a narrowing of the relay's own (a deactivation, an
    /// increment it passed on).
    ///
    /// The default reads, then writes through [`Backend::apply_webhook`] (two steps, see
    /// [`Backend::update`]): every backend of this crate overrides it.
    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        let Narrow { webhook, tags } = what;
        let mut updates: Vec<(EntryId, Entry)> = Vec::new();
        for tag in tags {
            for id in self.index(tag)? {
                if updates.iter().any(|(i, _)| *i == id) {
                    continue;
                }
                if let Some(e) = self.get(&id)?.as_ref().and_then(&mut *f) {
                    updates.push((id, e));
                }
            }
        }
        let n = updates.len();
        match webhook {
            Some((webhook_id, at)) => {
                Ok(self.apply_webhook(webhook_id, at, &updates)?.then_some(n))
            }
            None => {
                for (id, e) in &updates {
                    self.put(id, e)?;
                }
                Ok(Some(n))
            }
        }
    }
    /// Entries held.
    fn len(&self) -> Result<usize, StoreError>;
    /// Sets the store's byte cap ([`StoreOptions::max_bytes`]; [`Relay::new`](crate::Relay::new)
    /// gives it the option's value): nothing by default (a backend of its own keeps no count).
    /// Every backend of this crate counts its entries' bytes and evicts past it.
    fn cap_bytes(&self, _max_bytes: u64) {}
    /// The bytes its entries are counted for ([`stored_bytes`] each), when it counts them.
    fn stored_bytes(&self) -> Option<u64> {
        None
    }
    /// Whether it holds nothing.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    /// The token budget's state after a call or a 429 (the newest given wins): a store that
    /// persists writes it with its next write ([`Backend::put`], [`Backend::apply_webhook`],
    /// [`Backend::flush_budget`]). Nothing by default (a store in memory forgets it at exit
    /// as it forgets its entries).
    fn stage_budget(&self, _state: BudgetState) {}
    /// Writes the budget's state given since the last write, when no write carried it.
    fn flush_budget(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The budget's state as last written (read once, at the relay's first use of its budget).
    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        Ok(None)
    }
    /// The bytes the store takes on disk, when it has a file (the operator's metrics);
    /// `None` by default.
    fn bytes(&self) -> Option<u64> {
        None
    }
    /// The index tags that start with `prefix` (`l:`: the license key ids of the entries
    /// held), read once at start by the reconcile; none by default.
    fn tags_with_prefix(&self, _prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// When the newest webhook id remembered was received (unix seconds): the relay's last
    /// webhook before a restart; `None` by default.
    fn last_webhook_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
}

/// The byte cap in force for `max_bytes` set ([`StoreOptions::max_bytes`]): at least one
/// entry of the largest size stored, with its overhead.
pub(crate) fn byte_cap(max_bytes: u64) -> usize {
    usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .max(MAX_ENTRY_BYTES + ENTRY_OVERHEAD)
}

/// Webhook ids are remembered this long (Polar retries for about 16 hours).
pub const WEBHOOK_MEMORY_SECONDS: i64 = 3 * 86_400;

impl StoreOptions {
    /// What is wrong with these options, if anything: the field at fault (`fresh_for`,
    /// `budget`) and why. [`Relay::new`](crate::Relay::new) refuses them; every host (`relay serve`'s flags, the
    /// npm relay's `store` options) checks them with this, so both refuse the same values.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.fresh_for == 0 || self.stale_for < self.fresh_for {
            return Some((
                "fresh_for",
                "must be at least 1 second, and stale_for at least fresh_for",
            ));
        }
        if self.refuse_at_zero_credits && !(self.usage && self.entitlements) {
            return Some((
                "refuse_at_zero_credits",
                "needs usage and entitlements on (the balance is read with them)",
            ));
        }
        if let Some(events) = &self.usage_events {
            let bad = events.is_empty()
                || events.len() > crate::metered::MAX_EVENTS
                || events.iter().any(|e| !crate::metered::is_event_name(e));
            if bad || !self.usage {
                return Some((
                    "usage_events",
                    "needs usage on, and 1 to 64 event names of 1 to 128 bytes of printable text",
                ));
            }
        }
        if self.budget == 0 || self.reserve >= self.budget {
            return Some((
                "budget",
                "must be at least 1 call a minute, and the reserve below it",
            ));
        }
        if self.first_seen_share > 100 {
            return Some(("first_seen_share", "must be a percent, 0 to 100"));
        }
        None
    }

    /// The token budget as a host was given it, with the defaults written once for every host
    /// (`relay serve`'s `--budget` and `--budget-reserve`, the npm relay's `store.budget` and
    /// `store.budgetReserve`): `budget` calls a minute (`None`: Polar's [`POLAR_BUDGET`], or
    /// [`SANDBOX_BUDGET`] against the sandbox) and `reserve` of them kept for activations
    /// (`None`: a quarter of the budget). [`StoreOptions::problem`] then checks them.
    pub fn with_budget(
        mut self,
        sandbox: bool,
        budget: Option<u32>,
        reserve: Option<u32>,
    ) -> StoreOptions {
        let default = if sandbox {
            SANDBOX_BUDGET
        } else {
            POLAR_BUDGET
        };
        self.budget = budget.unwrap_or(default);
        self.reserve = reserve.unwrap_or(self.budget / 4);
        self
    }
}
