//! Reconcile (issue #45, item 5): a webhook can be missed (the relay down past Polar's
//! retries, an endpoint Polar disabled, a proxy that redirects), and a key revoked then would
//! keep its stored grant until the entry ages out (`--fresh-for`, and while Polar cannot be
//! asked `--stale-for`). So, with idle budget only, the relay asks Polar again about the keys
//! of its stored grants by id (`GET /v1/license-keys/{id}`, the organization token), the key
//! checked longest ago first, each once its last check (Polar's answer kept, or the last
//! reconcile) is [`StoreOptions::reconcile_every`] old, and narrows what Polar says changed:
//!
//! * `status` `revoked` or `disabled`: the key's stored grants are marked revoked (refused at
//!   once, without a call, as after a `benefit_grant.revoked` webhook; Polar's validate says
//!   "License key is no longer active." for both);
//! * expired (`expires_at` past), gone (404), or rotated (the key's string is another now):
//!   marked stale, so the next check asks Polar, which gives its own denial (expired, or "Not
//!   found"), and while Polar cannot be asked they answer for at most
//!   [`StoreOptions::marked_stale_for`];
//! * granted: nothing, but for a stored revocation applied before the read began: Polar's own
//!   read by id says the key is granted again (polar-license-api.md §15: a re-grant gives the
//!   same string back), so the revocation ends, and its entries become stale (the next check
//!   asks Polar). A reconcile never grants (contract §5a): nothing is made fresh by it. So a
//!   key whose revocation still refuses without a call (within `denial_for` of its mark) is
//!   asked about too, once an interval: a re-grant whose webhook was missed is heard within
//!   it.
//!
//! Only entries Polar answered before the reconcile's read began are narrowed (a newer answer
//! knows more), and the key's hash leaves the roster when Polar no longer grants it.
//!
//! The budget: a reconcile takes one call, never from the reserve, and only while more than
//! [`IDLE_ROOM`] of the budget's shared part is free, so it never takes what the clients'
//! checks are using: clients keep at least three quarters of the shared part and all of the
//! reserve at any moment (the roster's pages stop at a half, refreshing ahead at a half too).
//!
//! [`StoreOptions::reconcile_every`]: crate::store::StoreOptions::reconcile_every
//! [`StoreOptions::marked_stale_for`]: crate::store::StoreOptions::marked_stale_for

use crate::store::{self, Wants};

/// A reconcile takes a call only while more than this share of the budget's shared part
/// (the budget less its reserve) is free.
pub(crate) const IDLE_ROOM: f64 = 0.75;

/// How long to wait before looking again while the budget has no idle room or the breaker
/// is open. A key comes due at a known time (that long is waited); a new key comes with a
/// request (the host asks again after each: the native server's loop looks every 200 ms at most).
pub(crate) const POLL_MS: u64 = 1_000;

pub(crate) mod queue;

pub(crate) use queue::uuid_of;
pub use queue::Check;
pub(crate) use queue::{Outcome, Reconcile};

/// How many index rows one page of the stored keys' listing holds at most
/// ([`reconcile_list`](crate::reads::reconcile_list)): a storage read of bounded size (the Durable
/// Object's `list({limit})`), 128 like the handler's writes.
pub(crate) const LIST_PAGE: usize = 128;

/// The index rows whose tags name the stored grants' license key ids (`l:<id>`).
pub(crate) const KEY_ROWS: &str = "l:";

/// The next page of the stored keys' listing a host reads for the reconcile
/// ([`crate::flow::background::Poll::List`]): at most `limit` index rows (`<tag>|<entry id>`,
/// in the storage's order) whose tag starts with `prefix`, those after `after` (`None`: from
/// the first), handed back to [`crate::flow::background::Background::answered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The tags' prefix: `l:` (a license key id).
    pub prefix: &'static str,
    /// The last row of the page before (`<tag>|<entry id>`), `None` for the first page.
    pub after: Option<String>,
    /// At most this many rows (128).
    pub limit: usize,
}

/// With a store read per key, the most keys the listing puts in the reconcile's queue: as many
/// as the reconcile can check within `--stale-for` at its fastest (the budget's idle room,
/// [`IDLE_ROOM`]), 135,360 at the defaults (94 a minute for a day). Past them a round takes
/// longer than any stored grant is answered (at most `--stale-for` after Polar's answer, and
/// only while Polar cannot be asked); the queue's memory (about 100 bytes a key) stays
/// bounded in a Durable Object.
pub(crate) fn list_cap(o: &store::StoreOptions) -> usize {
    let shared = f64::from(o.budget.saturating_sub(o.reserve));
    let per_window = (shared * (1.0 - IDLE_ROOM)).ceil();
    let windows = o.stale_for as f64 * 1000.0 / o.budget_window_ms.max(1) as f64;
    ((per_window * windows) as usize).max(LIST_PAGE)
}

/// The index row of a key's stored grants, with every entry of it: what a reconcile of the
/// key reads and narrows.
pub(crate) fn key_wants(id: u128) -> Wants {
    Wants {
        entries: Vec::new(),
        tags: vec![format!("l:{}", uuid::Uuid::from_u128(id).hyphenated())],
        all: true,
        later: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
pub(crate) mod tests;
