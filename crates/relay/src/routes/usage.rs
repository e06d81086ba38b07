//! The usage report's part (issue #68 item 3, issue #76; [`crate::usage`] holds the reports'
//! keeping and ingest): the key proves itself as at Polar (its verdict, a validate), then a
//! grant keeps the report and answers its acknowledgement in the verdict's place.

use polar_license::lease::{is_nonce, NONCE_HEADER};
use polar_license::proto::Operation;

use super::{Begin, Door, Follow, Followed, Part, Refused, Route, Usage};
use crate::clock::Now;
use crate::pending::Routed;
use crate::relay::Relay;
use crate::store::Wants;
use crate::types::{add_cors, private, Finished, RelayRequest, RelayResponse};

impl Usage {
    /// The route's checks in the relay's order (taken only with a store that takes usage):
    /// the method (405), the body's size (413), the body (422 `InvalidUsageRequest`), the
    /// seller's event names (422), the key's validate (Polar's rules, the organization).
    pub(super) fn parse(req: &RelayRequest, door: &Door<'_>) -> Result<Usage, Refused> {
        let refused = super::refusal("usage");
        let read = |body: &[u8]| crate::usage::read_ask(body).map_err(private);
        let ask = super::posted(req, door.max_body, &refused, read)?;
        let events = door.usage.flatten();
        if let Some(r) = crate::usage::refuses_event(&ask, events) {
            return Err(refused(private(r)));
        }
        let verdict =
            super::verdict_of(req, &ask.key, &ask.organization_id, door).map_err(refused)?;
        Ok(Usage { ask, verdict })
    }
}

impl Part for Usage {
    /// Its key's verdict, read as a validate's, and its key's buffer with it (the same
    /// storage call).
    fn wants(&self, relay: &Relay, req: &RelayRequest, _now_unix: i64) -> Option<Wants> {
        let s = relay.store.as_ref()?;
        let mut wants = super::license::verdict_wants(Operation::Validate, &self.verdict, req);
        if s.usage.on() {
            wants.entries.push(crate::usage::buffer_of_ask(&self.ask));
        }
        Some(wants)
    }

    /// A report is more than its verdict: it is kept and ingested, a call of Polar's later
    /// whether or not the verdict was stored. So it takes the per-key limit here, once (on its
    /// first pass, `waited` 0: not again after a wait for another call of the same key),
    /// before the store is asked.
    fn begin(&self, b: &Begin<'_>) -> Routed {
        let route = Route::Usage(self.clone());
        let pending = match b.pending(Operation::Validate, &self.verdict, route) {
            Ok(pending) => pending,
            Err(answer) => return Routed::Answer(answer),
        };
        if b.waited == 0 {
            if let Some(r) = b.relay.per_key_limit(&pending, b.at.now) {
                return Routed::Answer(private(r));
            }
        }
        b.route(pending, false)
    }

    /// The report's answer once its key's verdict is in, in the verdict's place: a grant
    /// keeps the report ([`crate::usage::Usage::record`]), its acknowledgement signed here or
    /// to be signed by the host ([`crate::usage::sign_ack`]); any other answer passes on
    /// without a lease or a signed denial, and nothing is kept.
    fn follow(&self, f: &Follow<'_>) -> Option<Followed> {
        let mut recorded = recorded(f.relay, &self.ask, f.req, f.answer, f.at.now);
        add_cors(&mut recorded.response);
        Some(Err(recorded))
    }
}

fn recorded(
    relay: &Relay,
    ask: &crate::route::usage::UsageAsk,
    req: &RelayRequest,
    answer: &RelayResponse,
    now: Now,
) -> Finished {
    let plain = |response| Finished {
        response,
        unsigned: None,
    };
    if answer.status != 200 {
        return plain(crate::devices::refusal(answer.clone()));
    }
    let Some(s) = relay.store.as_ref() else {
        return plain(RelayResponse::detail(404, "Not Found"));
    };
    let Some(customer) = answer.uuid_at("customer_id") else {
        log::warn!(
            "relay: usage {} 502 (the key's verdict names no customer)",
            crate::logged::key(&ask.key)
        );
        return plain(RelayResponse::unreached("Polar's answer did not read"));
    };
    #[cfg(feature = "entitlements")]
    let known = s
        .entitled
        .event_balance(&customer, &ask.meter, now, &s.options);
    #[cfg(not(feature = "entitlements"))]
    let known = None;
    match s.usage.record(&*s.backend, ask, &customer, known, now) {
        (r, Some(ack)) => {
            let nonce = req.header(NONCE_HEADER).filter(|n| is_nonce(n));
            crate::usage::sign_ack(r, ask, ack, &relay.leases.signer, nonce, now)
        }
        (r, None) => plain(r),
    }
}
