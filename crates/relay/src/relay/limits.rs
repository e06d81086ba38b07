//! The relay's per-IP and per-key limits (limit.rs's buckets), and the key's churn and seats
//! held within what was sold (issue #67), taken before a call to Polar.

use polar_license::lease::key_hash;
use polar_license::proto::Operation;
use polar_license::Key;
use std::sync::Mutex;

use super::Relay;
use crate::clock::Now;
use crate::ids::OrgId;
use crate::limit::Buckets;
use crate::locked::locked;
use crate::pending::Pending;
use crate::types::{RelayRequest, RelayResponse};

impl Relay {
    /// The per-key bucket (it protects Polar: answers from the store skip it).
    pub(crate) fn per_key_limit(&self, pending: &Pending, now: Now) -> Option<RelayResponse> {
        let key_id = bucket_of(&OrgId::checked(&pending.checked), &pending.key);
        if matches!(pending.op, Operation::Activate | Operation::Deactivate) {
            let churn = self.seats.activation_churn();
            // The stored record (it outlives a restart, a Durable Object out of memory), and
            // the relay's memory (a host-loaded store may not have read the pool): the later
            // wait of the two.
            let stored = self.store.as_ref().and_then(|s| {
                crate::seats::activation_churned(
                    s.backend.as_ref(),
                    &s.seats_live,
                    &OrgId::checked(&pending.checked),
                    &pending.key,
                    churn,
                    now.unix_seconds,
                )
            });
            let remembered = self.churned.check(&key_id, churn, now.unix_seconds).err();
            if let Some(next) = stored.max(remembered) {
                log::info!(
                    "relay: {} {} 429 (churn: {} activations and deactivations in {} s)",
                    pending.op.as_str(),
                    crate::logged::key(&pending.key),
                    churn.count,
                    churn.window
                );
                return Some(crate::seats::churned(
                    "ActivationChurn",
                    "too many activations and deactivations of this key: wait for retry-after",
                    next.saturating_sub(now.unix_seconds),
                ));
            }
        }
        if pending.op == Operation::Activate {
            // Seats held plus the key's activations within what was sold (issue #67).
            if let Some(s) = &self.store {
                if let Some(r) = crate::seats::refuses_activation(
                    s.backend.as_ref(),
                    &s.seats_live,
                    &OrgId::checked(&pending.checked),
                    &pending.key,
                    now.unix_seconds,
                ) {
                    return Some(r);
                }
            }
        }
        let secs = take(&self.per_key, &key_id, now)?;
        log::info!(
            "relay: {} {} 429 (key over its rate)",
            pending.op.as_str(),
            crate::logged::key(&pending.key)
        );
        Some(RelayResponse::rate_limited(secs))
    }

    /// The per-IP bucket: 429 when `req`'s client is over its rate, else its token taken.
    /// `what`: the operation, or `preflight` (a CORS preflight takes a token as any request
    /// does, so that preflights alone cannot hold the relay's connections for free).
    pub(super) fn per_ip_limit(
        &self,
        req: &RelayRequest,
        what: &str,
        now: Now,
    ) -> Option<RelayResponse> {
        let client = crate::roster::client_group(&self.client_of(req));
        let secs = take(&self.per_ip, &client, now)?;
        log::info!(
            "relay: {} 429 (client {} over its rate)",
            what,
            crate::logged::escaped(&client)
        );
        Some(RelayResponse::rate_limited(secs))
    }
}

/// A key's id in the per-key buckets and the churn count: its organization and its SHA-256.
pub(crate) fn bucket_of(organization_id: &OrgId, key: &Key) -> String {
    [organization_id.as_str(), ":", &key_hash(key)].concat()
}

pub(crate) fn take(buckets: &Mutex<Buckets>, id: &str, now: Now) -> Option<u64> {
    // A poisoned lock (a panic elsewhere) still holds usable counts.
    let mut guard = locked(buckets);
    guard.take(id, now.monotonic_ms)
}
