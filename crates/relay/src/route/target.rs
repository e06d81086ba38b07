//! Where a request's path points ([`Target`]), read from its head alone: a leaf of its own, so
//! that the steps before a body is read (the exchange's head, the native server's threads,
//! the operator's counters) read it without depending on the routes' parts.

use polar_license::proto::Operation;

use crate::route::seat::SeatOp;
use crate::types::SEATS_PREFIX;
use crate::types::{DEVICES_ROUTE, HEALTH_ROUTE, ROUTE_PREFIX, USAGE_ROUTE, WEBHOOK_ROUTE};

/// Where a request's path points, read from its head alone (before its body is read: the
/// operator's routes, a webhook's unread refusal, the body's cap, the native server's threads
/// choose by it). The one place a path is split from its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// One of Polar's three license operations (`validate`, `activate`, `deactivate`).
    License(Operation),
    /// A seat route (issue #67).
    Seat(SeatOp),
    /// The device listing (issue #64).
    Devices,
    /// A usage report (issue #68 item 3).
    Usage,
    /// An install's analytics ping (issue #80).
    Analytics,
    /// A checkout made with the seller's token (issue #80).
    Checkout,
    /// Polar's webhook deliveries.
    Webhook,
    /// `/healthz`, exactly (no query: `/healthz?x` is no health check).
    Health,
    /// Any other path.
    Unknown,
}

impl Target {
    /// The route `path` names (its query ignored, but for `/healthz`).
    pub(crate) fn of(path: &str) -> Target {
        if path == HEALTH_ROUTE {
            return Target::Health;
        }
        let path = path.split('?').next().unwrap_or_default();
        if let Some(op) = path.strip_prefix(ROUTE_PREFIX) {
            return match op {
                "validate" => Target::License(Operation::Validate),
                "activate" => Target::License(Operation::Activate),
                "deactivate" => Target::License(Operation::Deactivate),
                _ => Target::Unknown,
            };
        }
        if let Some(op) = path.strip_prefix(SEATS_PREFIX) {
            return match op {
                "acquire" => Target::Seat(SeatOp::Acquire),
                "heartbeat" => Target::Seat(SeatOp::Heartbeat),
                "release" => Target::Seat(SeatOp::Release),
                _ => Target::Unknown,
            };
        }
        match path {
            DEVICES_ROUTE => Target::Devices,
            USAGE_ROUTE => Target::Usage,
            crate::types::ANALYTICS_ROUTE => Target::Analytics,
            crate::types::CHECKOUT_ROUTE => Target::Checkout,
            WEBHOOK_ROUTE => Target::Webhook,
            _ => Target::Unknown,
        }
    }

    /// The operator's counters' name for the route (`relay_answers_total`'s `route`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Target::License(op) => op.as_str(),
            Target::Seat(_) => "seats",
            Target::Devices => "devices",
            Target::Usage => "usage",
            Target::Analytics => "analytics",
            Target::Checkout => "checkout",
            Target::Webhook => "webhook",
            Target::Health | Target::Unknown => "other",
        }
    }
}
