//! The relay's routes, typed (issue #77): a request is read ONCE, after its body is read, into
//! a [`Route`], and this is the only place that splits a path from its query, checks a route's
//! body or canonicalises an id in it (an organization's, a seat's). Everything after it (the
//! per-IP limit's label, what a host-kept store loads, how the request begins and finishes,
//! the call that follows its answer) reads the route, never the path or the body again.
//!
//! Each route is one part behind one crate-private trait ([`Part`]): what it wants from the
//! store, how it begins, how a verdict becomes its answer, and what follows that answer. A
//! relay feature is one file here plus one arm of [`Route`]:
//!
//! | part | routes | file |
//! |---|---|---|
//! | license operations | `validate`, `activate`, `deactivate` under [`crate::types::ROUTE_PREFIX`] | `license.rs` |
//! | seats | `acquire`, `heartbeat`, `release` under [`crate::types::SEATS_PREFIX`] | `seat.rs` |
//! | devices | [`crate::types::DEVICES_ROUTE`] | `devices.rs` |
//! | usage | [`crate::types::USAGE_ROUTE`] | `usage.rs` |
//! | install analytics | [`crate::analytics::ANALYTICS_ROUTE`] | `install.rs` |
//! | checkouts | [`crate::types::CHECKOUT_ROUTE`] | `checkout.rs` |
//! | webhooks | [`crate::types::WEBHOOK_ROUTE`] | `webhook.rs` |
//! | refused at the door | any request answered by its route alone | here ([`Refused`]) |
//!
//! (The operator's routes, `/healthz` and the metrics, are answered from the request's head
//! before any body is read: [`Target::Health`], and the exchange's `operator`.)

pub(crate) mod checkout;
mod devices;
mod install;
mod license;
mod seat;
mod usage;
mod webhook;

use polar_license::proto::Operation;
use polar_license_rules::{check_body, CheckedBody};

use crate::clock::Now;
use crate::flow::Moment;
use crate::ids::OrgId;
use crate::pending::{Pending, Routed};
use crate::relay::Relay;
use crate::route::target::Target;
use crate::route::{Checkout, Devices, Install, License, Refused, Route, Seat, Usage, Webhook};
use crate::seats::SeatOptions;
use crate::store::Wants;
use crate::types::{add_cors, preflight, private, Finished, RelayRequest, RelayResponse};

/// What the relay serves, as a route's parse needs it (its routes on or off, its body cap, its
/// organization, the seller's seat and usage settings): made by [`Relay::door`].
pub(crate) struct Door<'a> {
    /// The seat routes are served (a store, and seats on).
    pub(crate) seats: Option<&'a SeatOptions>,
    /// Usage reports are taken (a store with usage on), with the seller's event names if any.
    pub(crate) usage: Option<Option<&'a [String]>>,
    /// Webhooks are taken (a store and a webhook secret).
    pub(crate) webhook: bool,
    /// The most bytes of a body the relay takes.
    pub(crate) max_body: usize,
    /// The organization this relay serves, canonical (`None`: any).
    pub(crate) organization: Option<&'a str>,
    /// Checkouts are made (the seller allows products).
    pub(crate) checkouts: Option<&'a crate::checkouts::CheckoutOptions>,
}

impl Door<'_> {
    /// Whether this relay serves `organization_id` (compared in canonical form).
    pub(crate) fn serves(&self, organization_id: &OrgId) -> bool {
        self.organization
            .is_none_or(|org| org == organization_id.as_str())
    }
}

impl Relay {
    /// What this relay serves, as a route's parse reads it ([`Route::parse`]).
    pub(crate) fn door(&self) -> Door<'_> {
        let store = self.store.as_ref();
        Door {
            seats: store.filter(|_| self.seats.enabled).map(|_| &self.seats),
            usage: store
                .filter(|s| s.usage.on())
                .map(|s| s.options.usage_events.as_deref()),
            webhook: store.is_some_and(|s| s.webhook_secret.is_some()),
            max_body: self.limits.max_body_bytes,
            organization: self.organization_id.as_deref(),
            checkouts: Some(&self.checkouts).filter(|c| !c.products.is_empty()),
        }
    }

    /// `req` read into its route ([`Route::parse`]: the one place a request is read).
    pub(crate) fn route_of(&self, req: &RelayRequest) -> Route {
        Route::parse(req, &self.door())
    }

    /// Every check of a request [`crate::flow::Asks::admit`] let through, its route's
    /// ([`Part::begin`]), after `waited` waits for another check's call of the same entry (after
    /// [`FLIGHT_WAITS`](crate::types::FLIGHT_WAITS) it no longer waits and asks Polar itself, so no
    /// host answers a 502 of its own): the answer, or the call to make.
    pub(crate) fn begin_admitted(
        &self,
        req: &RelayRequest,
        route: &Route,
        now: Now,
        entropy: Option<[u8; 16]>,
        waited: u32,
    ) -> Routed {
        let at = Moment { now, entropy };
        let b = Begin {
            relay: self,
            req,
            at,
            waited,
        };
        match route.part().begin(&b) {
            Routed::Answer(mut r) => {
                add_cors(&mut r);
                Routed::Answer(r)
            }
            routed => routed,
        }
    }
}

impl Route {
    /// Reads `req` (its head and its body) once: the route it asks, with its body checked and
    /// its ids canonical, or the answer that ends it there (the same answers, in the same
    /// order, as the relay gave before routes were typed). Nothing of the store is read.
    pub(crate) fn parse(req: &RelayRequest, door: &Door<'_>) -> Route {
        let asks_preflight = is_preflight(req);
        let refused = |answer: RelayResponse, what: &'static str| {
            Route::Refused(Refused {
                answer,
                what: Some(what),
            })
        };
        let parsed = match Target::of(&req.path) {
            Target::Seat(op) if !asks_preflight => Seat::parse(op, req, door).map(Route::Seat),
            Target::Webhook if door.webhook => {
                return Route::Webhook(Webhook {
                    preflight: asks_preflight,
                })
            }
            Target::Devices if !asks_preflight => Devices::parse(req, door).map(Route::Devices),
            Target::Usage if !asks_preflight && door.usage.is_some() => {
                Usage::parse(req, door).map(Route::Usage)
            }
            Target::Analytics if !asks_preflight => Install::parse(req, door).map(Route::Install),
            Target::Checkout if !asks_preflight && door.checkouts.is_some() => {
                Checkout::parse(req, door).map(Route::Checkout)
            }
            _ if asks_preflight => return refused(preflight(), "preflight"),
            Target::License(op) => License::parse(op, req, door).map(Route::License),
            _ => {
                return Route::Refused(Refused {
                    answer: RelayResponse::detail(404, "Not Found"),
                    what: None,
                })
            }
        };
        parsed.unwrap_or_else(Route::Refused)
    }

    /// The route's name in the per-IP limit's log and counters (`None`: not limited there).
    pub(crate) fn what(&self) -> Option<&'static str> {
        match self {
            Route::License(l) => Some(l.op.as_str()),
            Route::Seat(_) => Some("seat"),
            Route::Devices(_) => Some("devices"),
            Route::Usage(_) => Some("usage"),
            Route::Install(_) => Some("analytics"),
            Route::Checkout(_) => Some("checkout"),
            Route::Webhook(w) => w.preflight.then_some("preflight"),
            Route::Refused(r) => r.what,
        }
    }

    /// The route's part.
    pub(crate) fn part(&self) -> &dyn Part {
        match self {
            Route::License(p) => p,
            Route::Seat(p) => p,
            Route::Devices(p) => p,
            Route::Usage(p) => p,
            Route::Install(p) => p,
            Route::Checkout(p) => p,
            Route::Webhook(p) => p,
            Route::Refused(p) => p,
        }
    }

    /// What follows the request's `answer`: its part's [`Part::follow`].
    pub(crate) fn follows(
        &self,
        relay: &Relay,
        req: &RelayRequest,
        answer: &RelayResponse,
        at: Moment,
    ) -> Option<Followed> {
        self.part().follow(&Follow {
            relay,
            req,
            answer,
            at,
        })
    }

    /// The license key whose verdict the route asks (a license operation's, a device
    /// listing's, a usage report's: what the roster reads for it; a seat's is not read there).
    pub(crate) fn roster_key(&self) -> Option<&str> {
        match self {
            Route::License(l) => Some(&l.checked.key),
            Route::Devices(d) => Some(&d.verdict.key),
            Route::Usage(u) => Some(&u.verdict.key),
            Route::Seat(_)
            | Route::Install(_)
            | Route::Checkout(_)
            | Route::Webhook(_)
            | Route::Refused(_) => None,
        }
    }
}

/// One route's part of the relay: what it wants from a host-kept store, how it begins, how a
/// verdict becomes its answer, and what follows that answer.
pub(crate) trait Part {
    /// What the request reads or narrows in a host-kept store (`None`, by default: nothing).
    fn wants(&self, _relay: &Relay, _req: &RelayRequest, _now_unix: i64) -> Option<Wants> {
        None
    }

    /// Every check after the per-IP limit: the answer, the call, or the wait.
    fn begin(&self, b: &Begin<'_>) -> Routed;

    /// A verdict of the route's call (Polar's, the store's, a stale one) made the route's
    /// answer. The verdict as it is by default.
    fn settle(&self, _relay: &Relay, verdict: Finished, _at: Moment) -> Finished {
        verdict
    }

    /// Polar's answer to the route's call (or why there is none) made its answer: the
    /// verdict kept and leased ([`Relay::verdict_of`]), then settled.
    fn finish(
        &self,
        relay: &Relay,
        pending: &Pending,
        upstream: crate::flow::Upstream,
        at: Moment,
    ) -> Finished {
        self.settle(relay, relay.verdict_of(pending, upstream, at), at)
    }

    /// Polar's answer to a call that goes on after its client was answered from the store
    /// (stale-while-revalidate): only what Polar's answer does to the relay's state, the
    /// verdict kept and leased by default. Nothing the route's answer makes is made again (a
    /// seat taken here would be held by no machine: its answer is thrown away).
    fn keep(&self, relay: &Relay, pending: &Pending, upstream: crate::flow::Upstream, at: Moment) {
        relay.verdict_of(pending, upstream, at);
    }

    /// What follows the request's answer: the call it leads to (`Ok`, a device listing's
    /// read), or the answer that replaces it (`Err`, a usage report's); `None`: it stands.
    fn follow(&self, _: &Follow<'_>) -> Option<Followed> {
        None
    }

    /// How long the route's check waits for Polar before its stored answer is given
    /// (`false`: never; a device listing, whose read follows its verdict).
    fn may_be_stale(&self) -> bool {
        true
    }
}

impl Part for Refused {
    fn begin(&self, _: &Begin<'_>) -> Routed {
        Routed::Answer(self.answer.clone())
    }
}

/// What follows a request's answer ([`Part::follow`]): the call it leads to (`Ok`), or the
/// answer that replaces it (`Err`).
pub(crate) type Followed = Result<Box<Pending>, Finished>;

/// A request's answer at its route's [`Part::follow`]: the relay, the request, the answer and
/// the time.
pub(crate) struct Follow<'a> {
    pub(crate) relay: &'a Relay,
    pub(crate) req: &'a RelayRequest,
    pub(crate) answer: &'a RelayResponse,
    pub(crate) at: Moment,
}

/// A request at its route's [`Part::begin`]: the relay, the request, the time (and a lease's
/// id), and the waits for another check's call of the same entry so far.
pub(crate) struct Begin<'a> {
    pub(crate) relay: &'a Relay,
    pub(crate) req: &'a RelayRequest,
    pub(crate) at: Moment,
    pub(crate) waited: u32,
}

impl Begin<'_> {
    /// The call `op` of `checked` for `route`, made on the request's head, or its refusal.
    fn pending(
        &self,
        op: Operation,
        checked: &CheckedBody,
        route: Route,
    ) -> Result<Pending, RelayResponse> {
        self.relay.pending(op, checked, self.req, route)
    }

    /// `pending` through the store, the per-key limit (taken here when `per_key`) and the
    /// breaker ([`Relay::route_pending`]).
    fn route(&self, pending: Pending, per_key: bool) -> Routed {
        self.relay
            .route_pending(pending, self.at, self.waited, per_key)
    }

    /// The call `op` of `checked` for `route`, through the store, the per-key limit and the
    /// breaker: a proving validate's and a license operation's begin.
    fn routed(&self, op: Operation, checked: &CheckedBody, route: Route) -> Routed {
        match self.pending(op, checked, route) {
            Ok(pending) => self.route(pending, true),
            Err(answer) => Routed::Answer(answer),
        }
    }
}

/// The refusal of the route `what` (its name for the per-IP limit) with an answer.
fn refusal(what: &'static str) -> impl Fn(RelayResponse) -> Refused {
    move |answer| Refused {
        answer,
        what: Some(what),
    }
}

/// A body route's ask: the request a `POST` (405) of at most `max` bytes (413), its body read
/// by `read`; each refusal the route's (`refused`).
fn posted<A>(
    req: &RelayRequest,
    max: usize,
    refused: &impl Fn(RelayResponse) -> Refused,
    read: impl FnOnce(&[u8]) -> Result<A, RelayResponse>,
) -> Result<A, Refused> {
    if let Some(r) = refuses_post(req, max) {
        return Err(refused(r));
    }
    read(&req.body).map_err(refused)
}

/// Whether `req` is a CORS preflight (any `OPTIONS`: the relay answers each one alike).
pub(crate) fn is_preflight(req: &RelayRequest) -> bool {
    req.method.eq_ignore_ascii_case("OPTIONS")
}

/// A relay route's refusal of `req` that is not a `POST` (405) or whose body is over `max`
/// (413).
fn refuses_post(req: &RelayRequest, max: usize) -> Option<RelayResponse> {
    if req.method != "POST" {
        return Some(not_post());
    }
    (req.body.len() > max).then(|| {
        RelayResponse::error(
            413,
            "RequestBodyTooLarge",
            "Request body exceeded the maximum allowed size.",
        )
    })
}

fn not_post() -> RelayResponse {
    let mut r = RelayResponse::detail(405, "Method Not Allowed");
    r.set("allow", "POST, OPTIONS");
    r
}

/// `body` (of content type `content_type`) checked by Polar's rules as `op`'s, and of an
/// organization this relay serves: the checked body (its ids canonical), or the refusal
/// (Polar's own 422, the route's 404, or another organization's private 404).
fn checked(
    op: Operation,
    content_type: Option<&str>,
    body: &[u8],
    door: &Door<'_>,
) -> Result<CheckedBody, RelayResponse> {
    let checked = match check_body(op.as_str(), content_type, body) {
        Some(Ok(checked)) => checked,
        Some(Err(refusal)) => {
            log::info!(
                "relay: {} {} (Polar's input checks)",
                op.as_str(),
                refusal.status
            );
            let mut r = RelayResponse::json(refusal.status, refusal.body);
            r.set("content-type", refusal.content_type);
            return Err(private(r));
        }
        None => return Err(RelayResponse::detail(404, "Not Found")),
    };
    if !door.serves(&OrgId::checked(&checked)) {
        log::info!(
            "relay: {} {} 404 (another organization)",
            op.as_str(),
            crate::logged::key(&polar_license::Key::new(checked.key.clone()))
        );
        return Err(another_organization());
    }
    Ok(checked)
}

/// The private 404 of a request for an organization this relay does not serve.
fn another_organization() -> RelayResponse {
    private(RelayResponse::error(404, "ResourceNotFound", "Not found"))
}

/// The validate that proves a route's key (a seat's, a device listing's, a usage report's):
/// its body as Polar's rules check it, of an organization this relay serves.
fn verdict_of(
    req: &RelayRequest,
    key: &polar_license::Key,
    organization_id: &OrgId,
    door: &Door<'_>,
) -> Result<CheckedBody, RelayResponse> {
    let validate = req.validate_of(key, organization_id);
    checked(
        Operation::Validate,
        validate.header("content-type"),
        &validate.body,
        door,
    )
}

#[cfg(test)]
mod tests;
