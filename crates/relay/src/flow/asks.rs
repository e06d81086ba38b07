//! What the machines ask of the relay they run in (issue #52): the machines are written
//! against [`Core`], never against the relay itself. The dependency is inverted (as
//! quinn-proto's machines define what they need and their owner provides it): the relay's file
//! implements [`Asks`] and drives the machines (its blocking `handle` is one of their hosts),
//! so the machines sit below the relay and nothing here imports it. A host outside the crate
//! passes its relay where a machine asks for a [`Core`] and calls nothing of it.

use polar_license::{HttpResponse, TransportError};

use crate::clock::Now;
use crate::pending::{Pending, Routed};
use crate::reads::Reads;
use crate::route::target::Target;
use crate::route::Route;
use crate::store::Wants;
use crate::types::{Finished, RelayRequest, RelayResponse};

/// A grant's read of its customer's values before its lease ([`Asks::first_read`]): the
/// request of the page to ask for next (a `GET` with the seller's token: never log it).
#[cfg_attr(not(feature = "entitlements"), allow(dead_code))]
pub(crate) struct FirstRead {
    pub(crate) request: polar_license::HttpRequest,
    #[cfg(feature = "entitlements")]
    pub(crate) pages: crate::entitled::FirstPages,
}

/// Polar's answer to a call, or why there is none.
pub type Upstream = Result<HttpResponse, TransportError>;

/// When a machine takes a step: the time now, and 16 random bytes for the id of a lease made
/// in it (`None`: no lease can be made).
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// The time now.
    pub now: Now,
    /// A lease's id.
    pub entropy: Option<[u8; 16]>,
}

/// The relay as the machines ([`Exchange`](super::Exchange),
/// [`Background`](super::background::Background)) see it: a host passes its relay where a
/// machine asks for one. Sealed: what a machine asks of it is this crate's own.
pub trait Core: Asks {}

impl<C: Asks + ?Sized> Core for C {}

/// The exact set of things the machines ask of the relay's parts, each answered by the part
/// that owns it (the gate, the verdict store, the leases, the breaker, the operator's counters,
/// the roster). Public in name only (the module is private): it seals [`Core`], and its
/// methods speak of the crate's own steps ([`Routed`], [`Pending`], [`Finished`]), which no host
/// names: nothing outside the crate can call them.
#[allow(private_interfaces)]
pub trait Asks {
    // The operator's routes and counters (the relay's `ops`).

    /// `GET /healthz`'s answer.
    fn health(&self, now: Now) -> RelayResponse;
    /// The metrics route's text (Prometheus' format).
    fn metrics(&self, now: Now) -> String;
    /// A request read (`+1`) or answered (`-1`), for the in-flight gauge.
    fn count_in_flight(&self, delta: i64);
    /// Counts the answer given to `req`.
    fn count_answer(&self, req: &RelayRequest, r: &RelayResponse, now: Now);
    /// Counts a call to Polar that the host made, and how it ended.
    fn count_call(&self, outcome: &Upstream);
    /// The webhooks' silence: the warning when one is due now, and in how many ms to ask
    /// again (`None`: never, webhooks off or no limit).
    fn watch_webhooks(&self, now: Now) -> (Option<String>, Option<u64>);

    // The gate: what a request's head, its size and its client decide.

    /// The answer a webhook's head decides alone, before its body is read (`target`: where
    /// its path points).
    fn refuse_unread(&self, req: &RelayRequest, target: Target, now: Now) -> Option<RelayResponse>;
    /// The most bytes of a request's body the relay takes.
    fn max_body_bytes(&self) -> usize;
    /// The request read once, after its body, into its route ([`Route::parse`]): every step
    /// after it reads the route, never the path or the body again.
    fn route(&self, req: &RelayRequest) -> Route;
    /// The per-IP limit: `Some` (429) when the client is over its rate.
    fn admit(&self, req: &RelayRequest, route: &Route, now: Now) -> Option<RelayResponse>;
    /// Narrows an answer's CORS grant to the configured origins.
    fn cors(&self, req: &RelayRequest, r: &mut RelayResponse);
    /// Where the relay runs: how its host differs ([`crate::Host`], the one place).
    fn host(&self) -> crate::types::Host;

    // What a host-kept store loads before the core reads it.

    /// Whether the store is one its host reads per key into the core's cache (a paged store:
    /// the npm relay over a Durable Object's storage), so a request's entries are loaded before
    /// the core reads them ([`crate::store::Backend::host_loads`]).
    fn host_loads(&self) -> bool;
    /// The store's entries and index rows `req` touches.
    fn store_wants(&self, req: &RelayRequest, route: &Route, now_unix: i64) -> Option<Wants>;
    /// The roster's digest of the route's key, when it has not read it.
    fn roster_wants(&self, route: &Route) -> Option<String>;

    // The request's path: routing, the breaker, the verdict store, the leases.

    /// Every check of an admitted request after `waited` waits: the answer, or the call.
    fn begin_admitted(&self, req: &RelayRequest, route: &Route, at: Moment, waited: u32) -> Routed;
    /// Whether the breaker still lets `pending`'s call go (it may have opened while the call
    /// waited for its slot).
    fn still_allows(&self, pending: &Pending) -> bool;
    /// The stored answer for a check whose patience passed, if there is one to give.
    fn stale_answer(&self, pending: &Pending, at: Moment) -> Option<Finished>;
    /// A call Polar never saw gives its place in the token's budget back.
    fn give_back(&self, now: Now);
    /// Polar's answer (or why there is none) kept and passed back, with a lease on a grant;
    /// `made`: whether the call was made (its outcome then tells the breaker).
    fn finish_made(
        &self,
        pending: &Pending,
        upstream: Upstream,
        at: Moment,
        made: bool,
    ) -> Finished;
    /// Polar's answer to a call whose client was answered already (a tail) only kept
    /// ([`crate::routes::Part::keep`]); `made` as for [`Asks::finish_made`].
    fn keep_made(&self, pending: &Pending, upstream: Upstream, at: Moment, made: bool);
    /// The answer with a lease signed elsewhere (`true` when the lease verified).
    fn assemble(&self, finished: Finished, signature: &[u8]) -> (RelayResponse, bool);
    /// What follows the answer, the route's part's to say ([`crate::routes::Part::follow`]):
    /// the call it leads to (a device listing's read of the key's record after the validate
    /// that proved the key, issue #64: `Ok`), or the answer that replaces it (`Err`: a usage
    /// report's, whose acknowledgement may wait for an external signature, issue #76);
    /// `None`: the answer stands.
    fn follows(
        &self,
        req: &RelayRequest,
        route: &Route,
        answer: &RelayResponse,
        at: Moment,
    ) -> Option<Result<Box<Pending>, Finished>>;

    /// Before a grant's lease is made: the read of its customer's values it waits for (issue
    /// #80, [`crate::entitled`]): the request of its first page when the client asks for the
    /// values and the relay holds none of that customer's; `None` otherwise.
    fn first_read(&self, _pending: &Pending, _upstream: &Upstream, _now: Now) -> Option<FirstRead> {
        None
    }
    /// Polar's answer to a page of a first read: the next page's request, or `None` once the
    /// read is over (its values kept for the lease, or left to the background).
    fn first_answered(&self, _read: FirstRead, _answer: Upstream, _now: Now) -> Option<FirstRead> {
        None
    }

    // The background reads.

    /// The parts a background read uses.
    fn reads(&self) -> Reads<'_>;
}
