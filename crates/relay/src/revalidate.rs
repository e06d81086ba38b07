//! Stale-while-revalidate on every host (issue #45, item 3): how long a check asking Polar
//! waits for the answer before it is given its stored one ([`Pending::patience_ms`]), and that
//! stored answer ([`Stored::stale_answer`]) while the call goes on, its answer kept in the store
//! when it comes. The exchange (`crate::flow::Exchange`) decides it on every host; the native
//! server and the npm relay's host (a Durable Object) wait with timers and keep the call
//! running past the answer.

use crate::clock::Now;
use crate::leases::Leases;
use crate::pending::Pending;
use crate::store::{Entry, EntryId};
use crate::stored::Stored;
use crate::types::Finished;
use crate::verdicts::Reply;

impl Pending {
    /// How long this check waits for Polar's answer (its own call, or another check's of the
    /// same entry: [`crate::pending::Routed::Wait`]) before it is given its stored answer while the call
    /// goes on: `Some(0)` for a grant refreshed ahead of the end of its freshness (`store` at
    /// once), `Some(stale_after_ms)` with a stored answer that may stand in for Polar's
    /// (`stale`, [`crate::STALE_AFTER_MS`] by default), `None`: it waits for Polar.
    pub(crate) fn patience_ms(&self, stale_after_ms: u64) -> Option<u64> {
        if !self
            .stored
            .as_ref()
            .is_some_and(|(_, prior)| prior.is_some())
        {
            return None;
        }
        Some(if self.early { 0 } else { stale_after_ms })
    }

    /// How its stored answer stands in for Polar's: as fresh (`store`) for a grant refreshed
    /// early, else `stale`.
    pub(crate) fn standing_in(&self) -> Reply {
        if self.early {
            Reply::Held
        } else {
            Reply::Stale
        }
    }
}

impl Stored {
    /// The entry `id` as it is now (a read that fails is logged with `then`, and reads as none).
    pub(crate) fn current(&self, id: &EntryId, then: &str) -> Option<Entry> {
        self.backend.get(id).unwrap_or_else(|e| {
            log::error!("relay: {e}: {then}");
            None
        })
    }
}

impl Stored {
    /// The stored answer for a check whose call is slow (or under way for another check), once
    /// its [`Pending::patience_ms`] has passed: the entry as it is now (a revocation
    /// acknowledged meanwhile refuses), answered as when Polar cannot be asked (`stale`, with
    /// `Age`), or as fresh (`store`) for a grant refreshed early. `None` when there is none to
    /// give. The call goes on: the request machine keeps its answer. With an external signer the
    /// lease waits for its signature ([`Finished::pre_auth`]); `entropy`: its id's 16 bytes.
    pub(crate) fn stale_answer(
        &self,
        leases: &Leases,
        pending: &Pending,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> Option<Finished> {
        let (id, _) = pending.stored.as_ref()?;
        let current = self.current(id, "waiting for Polar");
        let reply = pending.standing_in();
        let f = self.stored_answer(leases, pending, current.as_ref(), now, reply, entropy)?;
        if reply == Reply::Stale {
            log::info!(
                "relay: validate {}: Polar's answer not in yet; the stored answer given",
                crate::logged::key(&pending.key)
            );
        }
        Some(f)
    }
}
