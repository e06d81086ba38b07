//! The seat routes' part (issue #67, [`crate::seats`] holds the pools' rules): a release
//! answered at once; an acquisition or a heartbeat on its key's verdict (a validate routed as
//! any other), that verdict then made the seat's answer ([`crate::seats::settle`]), within the
//! key's refusals of a full pool.

use polar_license::proto::Operation;

use super::{Begin, Door, Part, Refused, Route, Seat};
use crate::clock::Now;
use crate::flow::Moment;
use crate::locked::locked;
use crate::pending::Routed;
use crate::relay::{bucket_of, take, Relay};
use crate::route::seat::{SeatAsk, SeatOp};
use crate::store::Wants;
use crate::types::{add_cors, Finished, RelayRequest, RelayResponse};

impl Seat {
    /// The route's checks in the relay's order: seats served (404), the method (405), the
    /// body's size (413), the body (422 `InvalidSeatRequest`), the organization (404), the
    /// seller's borrowing.
    pub(super) fn parse(op: SeatOp, req: &RelayRequest, door: &Door<'_>) -> Result<Seat, Refused> {
        let refused = super::refusal("seat");
        let Some(options) = door.seats else {
            return Err(refused(RelayResponse::detail(404, "Not Found")));
        };
        let read = |body: &[u8]| crate::seats::read_ask(op, body);
        let ask = super::posted(req, door.max_body, &refused, read)?;
        // Another organization than the one this relay serves: refused before any state is
        // read or written, whatever the route (the ids compared in their canonical form).
        if !door.serves(&ask.organization_id) {
            log::info!(
                "relay: seat {} {} 404 (another organization)",
                op.as_str(),
                crate::logged::key(&ask.key)
            );
            return Err(refused(super::another_organization()));
        }
        if let Some(r) = options.refuses_borrowing(&ask) {
            return Err(refused(r));
        }
        let verdict = match op {
            SeatOp::Release => None,
            SeatOp::Acquire | SeatOp::Heartbeat => Some(
                super::verdict_of(req, &ask.key, &ask.organization_id, door).map_err(refused)?,
            ),
        };
        Ok(Seat { ask, verdict })
    }
}

impl Part for Seat {
    /// Its key's verdict (an acquisition, a heartbeat) and its pool.
    fn wants(&self, _relay: &Relay, req: &RelayRequest, _now_unix: i64) -> Option<Wants> {
        let pool = self.ask.pool_id();
        let Some(checked) = &self.verdict else {
            return Some(Wants {
                entries: vec![pool],
                tags: Vec::new(),
                all: false,
                later: Vec::new(),
            });
        };
        let key = polar_license::lease::key_hash(&self.ask.key);
        let verdict = crate::store::checked_entry_id(
            checked,
            &key,
            crate::types::passed_version(req.header("polar-version")),
        );
        Some(Wants {
            entries: vec![verdict, pool],
            tags: vec![crate::store::key_tag(&checked.organization_id, &key)],
            all: false,
            later: Vec::new(),
        })
    }

    fn begin(&self, b: &Begin<'_>) -> Routed {
        let (relay, now) = (b.relay, b.at.now);
        let Some(s) = relay.store.as_ref() else {
            return Routed::Answer(RelayResponse::detail(404, "Not Found"));
        };
        let Some(checked) = &self.verdict else {
            return Routed::Answer(crate::seats::release(
                &s.pools(&relay.seats),
                &self.ask,
                now,
            ));
        };
        match b.routed(Operation::Validate, checked, Route::Seat(self.clone())) {
            Routed::Stored(f) => Routed::Stored(seated(relay, &self.ask, f, now, b.at.entropy)),
            other => other,
        }
    }

    fn settle(&self, relay: &Relay, verdict: Finished, at: Moment) -> Finished {
        seated(relay, &self.ask, verdict, at.now, at.entropy)
    }
}

/// A seat's answer on its key's verdict ([`crate::seats::settle`]).
fn seated(
    relay: &Relay,
    ask: &SeatAsk,
    verdict: Finished,
    now: Now,
    entropy: Option<[u8; 16]>,
) -> Finished {
    let Some(s) = &relay.store else {
        return verdict;
    };
    if verdict.response.status == 200 && !s.backend.host_loads() {
        // The key's ordinary activations read by id, ahead of the other keys, at most once
        // per freshness window, by an acquisition and by a heartbeat alike (its pool's
        // size counts them, and a heartbeat sheds the seats past it; not with a store
        // read per key, whose reconcile does not load the pool).
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&verdict.response.body)
            .ok()
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(|v| v.as_str())
        {
            s.reconcile
                .count_seats(id, now.unix_seconds, s.options.fresh_for);
        }
    }
    // Refusals of a full pool count against the key's per-key limit (issue #62): a flood
    // of acquisitions on a full key meets `429` with the wait, its pool not read again
    // while the key's bucket is empty (its verdict comes from the store, which skips the
    // per-key limit, so nothing else counts it).
    let key_id = bucket_of(&ask.organization_id, &ask.key);
    let acquiring = ask.op == SeatOp::Acquire && verdict.response.status == 200;
    if acquiring {
        let waiting = {
            let guard = locked(&relay.per_key);
            guard.wait(&key_id, now.monotonic_ms)
        };
        if let Some(secs) = waiting {
            return seats_flooded(ask, secs);
        }
    }
    let settled = crate::seats::settle(
        &s.pools(&relay.seats),
        &relay.leases.signer,
        ask,
        verdict,
        now,
        entropy,
    );
    if acquiring && settled.response.status == 409 {
        if let Some(secs) = take(&relay.per_key, &key_id, now) {
            return seats_flooded(ask, secs);
        }
    }
    settled
}

/// A seat acquisition refused for its key's refusals of a full pool: `429`, `rate_limited`,
/// with the wait (the seat churn's shape, [`crate::seats::churned`]).
fn seats_flooded(ask: &SeatAsk, secs: u64) -> Finished {
    log::info!(
        "relay: seat acquire {} 429 (refused acquisitions of a full pool over the key's rate)",
        crate::logged::key(&ask.key)
    );
    let mut response = crate::seats::churned(
        "SeatsFlooded",
        "too many refused seat acquisitions of this key: wait for retry-after",
        i64::try_from(secs).unwrap_or(i64::MAX),
    );
    add_cors(&mut response);
    Finished {
        response,
        unsigned: None,
    }
}
