//! The device listing's part (issue #64, [`crate::devices`] holds the listing's rules): the
//! key proves itself as at Polar (its verdict, a validate routed as any other), then its
//! record is read by id (a `GET` that follows the verdict's 200) and answered as the list.

use polar_license::proto::Operation;

use super::{Begin, Devices, Door, Follow, Followed, Part, Refused, Route};
use crate::flow::{Moment, Upstream};
use crate::pending::{breaker_refused, Pending, Routed};
use crate::relay::Relay;
use crate::store::Wants;
use crate::types::{add_cors, private, Finished, RelayRequest, RelayResponse};

impl Devices {
    /// The route's checks in the relay's order: the method (405), the body's size (413), the
    /// body (422 `InvalidDevicesRequest`), the key's validate (Polar's rules, the
    /// organization).
    pub(super) fn parse(req: &RelayRequest, door: &Door<'_>) -> Result<Devices, Refused> {
        let refused = super::refusal("devices");
        let read = |body: &[u8]| crate::devices::read_ask(body).map_err(private);
        let ask = super::posted(req, door.max_body, &refused, read)?;
        let verdict =
            super::verdict_of(req, &ask.key, &ask.organization_id, door).map_err(refused)?;
        Ok(Devices { ask, verdict })
    }
}

impl Part for Devices {
    /// Its key's verdict, read as a validate's, and when its activations were last seen
    /// (crate::last_seen, the store's copy: a restarted relay's rows).
    fn wants(&self, _relay: &Relay, req: &RelayRequest, _now_unix: i64) -> Option<Wants> {
        let mut wants = super::license::verdict_wants(Operation::Validate, &self.verdict, req);
        let digest =
            polar_license::lease::key_hash(&polar_license::Key::new(self.verdict.key.clone()));
        let seen = crate::last_seen::stored_id(&self.verdict.organization_id, &digest);
        if !wants.entries.contains(&seen) {
            wants.entries.push(seen);
        }
        Some(wants)
    }

    fn begin(&self, b: &Begin<'_>) -> Routed {
        b.routed(
            Operation::Validate,
            &self.verdict,
            Route::Devices(self.clone()),
        )
    }

    /// The verdict kept as a validate's; the read's answer is the list (each row with when the
    /// relay last saw it, when it did: crate::last_seen), kept nowhere, with no lease.
    fn finish(&self, relay: &Relay, pending: &Pending, upstream: Upstream, at: Moment) -> Finished {
        if !pending.read {
            return relay.verdict_of(pending, upstream, at);
        }
        // Polar's 429 to the read blocks the token's every call for as long as it says, as
        // a license call's does.
        if let Some(s) = &relay.store {
            s.learn_answer(at.now, &upstream);
        }
        let digest =
            polar_license::lease::key_hash(&polar_license::Key::new(self.verdict.key.clone()));
        let organization_id = crate::ids::OrgId::checked(&self.verdict);
        let kept = relay.store.as_ref().map(|s| crate::devices::Kept {
            store: s.backend.as_ref(),
            organization_id: organization_id.as_str(),
            key_sha256: &digest,
        });
        let mut response = crate::devices::answer(&self.ask, upstream, &relay.last_seen, kept);
        add_cors(&mut response);
        Finished {
            response,
            unsigned: None,
        }
    }

    /// The read that follows the verdict's answer: after a 200 (from Polar or the store),
    /// the `GET` of the key's record, within the per-key limit, the breaker and the token's
    /// budget (`Ok`); any other answer passes on without a lease or a signed denial, and so
    /// does a refusal of the read (`Err`).
    fn follow(&self, f: &Follow<'_>) -> Option<Followed> {
        let (relay, req, answer, now) = (f.relay, f.req, f.answer, f.at.now);
        let refused = |r: RelayResponse| {
            let mut response = crate::devices::refusal(r);
            add_cors(&mut response);
            Some(Err(Finished {
                response,
                unsigned: None,
            }))
        };
        if answer.status != 200 {
            return refused(answer.clone());
        }
        let Some(key_id) = answer.uuid_at("id") else {
            log::warn!(
                "relay: devices {} 502 (the key's verdict names no key id)",
                crate::logged::key(&self.ask.key)
            );
            return refused(RelayResponse::unreached("Polar's answer did not read"));
        };
        let route = Route::Devices(self.clone());
        let mut pending = match relay.pending(Operation::Validate, &self.verdict, req, route) {
            Ok(pending) => pending,
            Err(r) => return refused(r),
        };
        pending.request = crate::devices::read_request(relay.base_url(), &pending.request, &key_id);
        pending.nonce = None;
        pending.read = true;
        if let Some(r) = relay.per_key_limit(&pending, now) {
            return refused(r);
        }
        let Some(ticket) = relay.breaker.allow(now) else {
            return refused(breaker_refused(&pending));
        };
        if let Some(s) = &relay.store {
            if let Err(secs) = s.take(now, crate::store::Use::Shared) {
                relay.breaker.abandon(Some(ticket), now);
                log::info!(
                    "relay: devices {} 429 (the token's budget is spent)",
                    crate::logged::key(&pending.key)
                );
                return refused(RelayResponse::rate_limited(secs));
            }
        }
        pending.ticket = Some(ticket);
        Some(Ok(Box::new(pending)))
    }

    /// Never: its verdict only proves the key and its read follows it (a stale answer with
    /// its call going on would leave two calls under way).
    fn may_be_stale(&self) -> bool {
        false
    }
}
