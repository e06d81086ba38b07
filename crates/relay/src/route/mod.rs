//! A request as its route read it ([`Route`]): the data only (the route's checked body, its
//! asks with their ids canonical: a seat's, a device listing's, a usage report's, one file
//! each here), and where a path points ([`target::Target`]). Below every part that runs, so
//! that a call under way ([`crate::pending::Pending`]), the machines and the relay hold a route
//! without depending on the parts that serve it (`crate::routes`: the parse, and one file per
//! route with its [`crate::routes::Part`]).

use polar_license::proto::Operation;
use polar_license_rules::CheckedBody;

pub(crate) mod devices;
pub(crate) mod seat;
pub(crate) mod target;
pub(crate) mod usage;

use crate::types::RelayResponse;
use devices::DevicesAsk;
use seat::SeatAsk;
use usage::UsageAsk;

/// A request read once, after its body ([`Route::parse`]).
#[derive(Clone)]
pub(crate) enum Route {
    /// One of Polar's license operations, its body checked by Polar's rules.
    License(License),
    /// A seat's acquisition, heartbeat or release.
    Seat(Seat),
    /// A key's device listing.
    Devices(Devices),
    /// A usage report.
    Usage(Usage),
    /// An install's analytics ping.
    Install(Install),
    /// A checkout made with the seller's token.
    Checkout(Checkout),
    /// A webhook delivery (a store with a webhook secret).
    Webhook(Webhook),
    /// Answered by its route alone: an unknown path, a preflight, a refused method, size or
    /// body, another organization.
    Refused(Refused),
}

debug_some!(Route, r => { "route": r.name() });

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::License(l) => l.op.as_str(),
            Route::Seat(_) => "seat",
            Route::Devices(_) => "devices",
            Route::Usage(_) => "usage",
            Route::Install(_) => "analytics",
            Route::Checkout(_) => "checkout",
            Route::Webhook(_) => "webhook",
            Route::Refused(_) => "refused",
        }
    }
}

/// A request answered at the door: its answer, and what the per-IP limit names it (`None`:
/// the limit does not concern it).
#[derive(Clone, Debug)]
pub(crate) struct Refused {
    pub(crate) answer: RelayResponse,
    pub(crate) what: Option<&'static str>,
}

/// A license operation, its body checked by Polar's rules (its ids canonical) and of an
/// organization this relay serves.
#[derive(Clone)]
pub(crate) struct License {
    pub(crate) op: Operation,
    pub(crate) checked: CheckedBody,
}

/// A seat request, its body read (its ids canonical), of an organization this relay serves.
#[derive(Clone)]
pub(crate) struct Seat {
    pub(crate) ask: SeatAsk,
    /// The validate that proves its key (`None`: a release, which asks no verdict).
    pub(crate) verdict: Option<CheckedBody>,
}

/// A device listing, its body read (its ids canonical), with the validate that proves its key.
#[derive(Clone)]
pub(crate) struct Devices {
    pub(crate) ask: DevicesAsk,
    pub(crate) verdict: CheckedBody,
}

/// A usage report, its body read (its ids canonical, its event one the seller meters), with
/// the validate that proves its key.
#[derive(Clone)]
pub(crate) struct Usage {
    pub(crate) ask: UsageAsk,
    pub(crate) verdict: CheckedBody,
}

/// An install's analytics ping, its body read (issue #80), of an organization this relay
/// serves.
#[derive(Clone)]
pub(crate) struct Install {
    pub(crate) ping: crate::analytics::Ping,
}

/// A checkout to make (issue #80), its body read and checked (a product the seller allows,
/// the app's metadata within Polar's limits, a success URL on an origin the seller allows):
/// the body of Polar's `POST /v1/checkouts/`, written once at the parse.
#[derive(Clone)]
pub(crate) struct Checkout {
    pub(crate) polar_body: Vec<u8>,
}

/// A webhook delivery (any method: a method other than `POST` is the store's 405).
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    /// A CORS preflight (which the per-IP limit counts as one).
    pub(crate) preflight: bool,
}
