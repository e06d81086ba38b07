//! A check under way ([`Pending`]): a request that passed every local check, waiting for
//! Polar's answer, with the route it was read as; and what the relay's routing decided for a
//! request ([`Routed`]). Apart from the plain types ([`crate::types`]) because it holds a
//! [`Route`]: the plain types stay a leaf below the routes, and the routes' data below this.

use polar_license::lease::LeaseClaims;
use polar_license::proto::{HttpRequest, Operation};
use polar_license::Key;
use polar_license_rules::CheckedBody;

use crate::breaker;
use crate::route::Route;
use crate::store::{Entry, EntryId};
use crate::types::{Call, Finished, RelayResponse};

/// A request that passed every local check, waiting for Polar's answer.
pub(crate) struct Pending {
    pub(crate) op: Operation,
    pub(crate) key: Key,
    pub(crate) checked: CheckedBody,
    pub(crate) call: Call,
    pub(crate) request: HttpRequest,
    /// With a store, a validate's entry: its id, what it held, and whether this call leads
    /// its single flight.
    pub(crate) stored: Option<(EntryId, Option<Entry>)>,
    pub(crate) flight: Option<EntryId>,
    /// What the breaker let through (`None` until it was asked).
    pub(crate) ticket: Option<breaker::Ticket>,
    /// The client it came from, as the per-IP limit counts it (an IPv6 address by its /64).
    pub(crate) client: String,
    /// A stored grant asked again ahead of the end of its freshness: until Polar answers (or
    /// when it cannot), the grant still answers as fresh (`store`).
    pub(crate) early: bool,
    /// The client's [`NONCE_HEADER`](polar_license::lease::NONCE_HEADER), when it sent one that is
    /// a nonce: signed into the lease's claims, whoever answers (Polar now, or the store).
    pub(crate) nonce: Option<String>,
    /// The route this call is for ([`crate::route::Route`]): its part says how the call's
    /// answer finishes (a seat's answer settled on its verdict, a device list made of a read).
    pub(crate) route: Box<Route>,
    /// The call that follows the route's verdict (a device listing's read of the key's record,
    /// issue #64: a `GET` of [`Pending::request`]'s URL), not the verdict itself.
    pub(crate) read: bool,
}

// The call (the seller's token, the key in clear) is never shown; `Key` redacts itself.
debug_some!(Pending, p => { "operation": p.op.as_str(), "key": p.key });

impl Pending {
    /// A grant's claims with the client's nonce, if it sent one (contract §5, freshness).
    pub(crate) fn claims(&self, mut claims: LeaseClaims) -> LeaseClaims {
        claims.nonce.clone_from(&self.nonce);
        // Signed facts (issue #62) only for a client that reads them: an older one refuses a
        // lease with a claim it does not know.
        if !self
            .nonce
            .as_deref()
            .is_some_and(polar_license::lease::asks_facts)
        {
            claims.subscription_ends_at = None;
        }
        claims
    }

    /// The call to Polar's token-authenticated route (it holds the seller's token and the
    /// license key: never log it).
    pub(crate) fn request(&self) -> &HttpRequest {
        &self.request
    }

    /// The call's method: `GET` for a device listing's read (no body), else `POST`.
    pub(crate) fn method(&self) -> polar_license::portal::Method {
        if self.read {
            polar_license::portal::Method::Get
        } else {
            polar_license::portal::Method::Post
        }
    }

    /// The flight this call leads: checks that got [`Routed::Wait`] with this name begin again
    /// once its answer is kept.
    pub(crate) fn flight(&self) -> Option<String> {
        self.flight.as_ref().map(crate::ids::hex_id)
    }
}

impl Pending {
    /// A call of Polar's that no license key asks (a checkout's creation, issue #80): `request`
    /// made by its route's part, from `client`, the breaker's `ticket` taken. Its operation,
    /// key, checked body and license call are empty and never read: its part finishes the
    /// call itself ([`crate::routes::Part::finish`]), it leads no flight, keeps no entry and is
    /// never answered stale ([`crate::routes::Part::may_be_stale`]).
    pub(crate) fn unkeyed(
        request: HttpRequest,
        client: String,
        ticket: breaker::Ticket,
        route: Route,
    ) -> Pending {
        Pending {
            op: Operation::Validate,
            key: Key::new(String::new()),
            checked: CheckedBody::default(),
            call: Call::Validate(polar_license::proto::ValidateRequest::new("")),
            request,
            stored: None,
            flight: None,
            ticket: Some(ticket),
            client,
            early: false,
            nonce: None,
            route: Box::new(route),
            read: false,
        }
    }
}

/// A `GET` of `url` with the headers of the call `like` (the seller's token, Polar's
/// version), without its body's type: a read that follows a verdict (a device listing's of
/// the key's record, a grant's first read of its customer's values).
pub(crate) fn get_like(like: &HttpRequest, url: String) -> HttpRequest {
    HttpRequest {
        operation: like.operation,
        url,
        headers: like
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
            .cloned()
            .collect(),
        body: Vec::new(),
    }
}

/// What the relay's routing decided for a request the machine let through
/// ([`crate::flow::Exchange`] asks it and turns it into a [`Need`](crate::flow::Need)).
pub(crate) enum Routed {
    /// The answer, with no call to Polar (a preflight, a 404, a 413, a 422, a 429).
    Answer(RelayResponse),
    /// From the store; its lease, if any, waits for an external signature
    /// ([`Finished::pre_auth`], then the relay's `assemble`): only with
    /// [`Signer::External`](crate::Signer::External).
    Stored(Finished),
    /// Ask Polar [`Pending::request`], then keep its answer (the machine's finish).
    Ask(Box<Pending>),
    /// Another check of the same entry is asking Polar: wait for it, then route again (the
    /// check, with its entry as read: when it has a stored answer ([`Pending::patience_ms`]),
    /// it waits at most that long, then is given its stored answer).
    Wait(EntryId, Box<Pending>),
}

/// A call the breaker stops: the 502 of an unreachable Polar (a client falls back to its
/// cache, as for any 5xx), with no call.
pub(crate) fn breaker_refused(pending: &Pending) -> RelayResponse {
    log::info!(
        "relay: {} {} 502 (the breaker is open: Polar not asked)",
        pending.op.as_str(),
        crate::logged::key(&pending.key)
    );
    RelayResponse::unreached("the relay could not reach Polar")
}
