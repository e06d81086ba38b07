//! The core as the native server drives it (issue #45): routing (store hits, webhooks, every
//! local answer) apart from the calls to Polar, so that each runs on slots of its own, and a
//! check whose call is slow can be answered from the store while the call goes on
//! (stale-while-revalidate: its answer updates the store when it comes).

use std::sync::Arc;

use polar_license::{TransportError, TransportErrorKind};

use crate::stored::Flight;
use crate::{add_cors, Now, Pending, Relay, RelayRequest, RelayResponse, Routed};

/// What routing decided, for the native server.
pub(crate) enum Served {
    /// The answer, with no call (CORS to narrow and count: [`Relay::served_answer`]).
    Answer(RelayResponse),
    /// Ask Polar ([`Relay::serve_call`], on a slot for calls), shared with the check that may
    /// be answered from the store meanwhile ([`Relay::serve_stale`]).
    Ask(Arc<Pending>),
    /// Another check of the same entry is asking Polar: wait for it to land, then
    /// [`Relay::serve_reroute`] (or, a stored answer kept, [`Relay::serve_stale`] after a
    /// while).
    Wait(Arc<Flight>, Box<Pending>),
}

impl Relay {
    /// Routes a request without calling Polar (the server's own slots).
    pub(crate) fn serve_route(&self, req: &RelayRequest, now: Now, may_wait: bool) -> Served {
        self.ops.seen(now);
        self.served(self.routed(req, now, may_wait, &*self.entropy, false))
    }

    /// Routes again a check that waited for another's call (its input checks and per-IP
    /// limit done already).
    pub(crate) fn serve_reroute(&self, pending: Box<Pending>, now: Now, may_wait: bool) -> Served {
        match &self.store {
            Some(s) => {
                self.served(self.routed_with_store(s, *pending, now, may_wait, &*self.entropy))
            }
            None => Served::Ask(Arc::from(pending)),
        }
    }

    fn served(&self, routed: Routed) -> Served {
        match routed {
            Routed::Answer(mut r) => {
                add_cors(&mut r);
                Served::Answer(r)
            }
            Routed::Stored(f) => Served::Answer(f.into_response()),
            Routed::Ask(pending) => Served::Ask(Arc::from(pending)),
            Routed::Wait(_, flight, pending) => Served::Wait(flight, pending),
        }
    }

    /// The call to Polar (on a slot for calls), its answer kept; `clock` read when it ends.
    /// A call routed before the breaker opened is not made (its check gets what an
    /// unreachable Polar gives: the stored answer, or 502).
    pub(crate) fn serve_call(&self, pending: &Pending, clock: impl Fn() -> Now) -> RelayResponse {
        let made = self.breaker.still_allows(pending.ticket);
        let upstream = if made {
            self.transport.send(pending.request())
        } else {
            Err(TransportError::new(
                TransportErrorKind::Connect,
                "the breaker opened: Polar not asked",
            ))
        };
        let now = clock();
        // A call Polar never saw (not made, or its connection refused: Polar's port closed)
        // spent none of the token's budget: its place goes back (with a store, every call
        // routed here took one). The breaker's probes of a Polar that is gone otherwise
        // fill the window that the refreshes need once it is back.
        let unseen = !made || matches!(&upstream, Err(e) if e.kind == TransportErrorKind::Connect);
        if let (true, Some(s)) = (unseen, &self.store) {
            s.give_back(now);
        }
        self.finish_made(pending, upstream, now, (self.entropy)(), made)
            .into_response()
    }

    /// The stored answer for a check whose call is slow (or under way for another check)
    /// ([`Relay::stale_answer`], its lease signed here). `None` when there is none to give.
    pub(crate) fn serve_stale(&self, pending: &Pending, now: Now) -> Option<RelayResponse> {
        let f = self.stale_answer(pending, now, (self.entropy)())?;
        // A lease to sign elsewhere never comes here (the native server signs its own).
        f.unsigned.is_none().then_some(f.response)
    }

    /// A final answer of the server: its CORS grant narrowed, counted.
    pub(crate) fn served_answer(
        &self,
        req: &RelayRequest,
        mut r: RelayResponse,
        now: Now,
    ) -> RelayResponse {
        self.cors(req, &mut r);
        self.ops.answered(req, &r, now);
        r
    }
}
