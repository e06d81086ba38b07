//! A seller-run relay in front of Polar's license-key API (issue #25): clients talk to it as
//! they would to Polar, it asks Polar with the seller's organization token, and every grant
//! comes back with a signed **lease** ([`polar_license::lease`]) that lets a client in signed
//! mode license offline.
//!
//! * **Polar's routes, Polar's answers.** `POST /v1/customer-portal/license-keys/{validate,
//!   activate,deactivate}` with Polar's bodies, so a client switches by base URL. The relay
//!   calls the token-authenticated twins (`/v1/license-keys/…`: the public routes allow 3
//!   requests per second per IP, which a relay serving every customer would hit) and passes
//!   Polar's status, body and `content-type`, `retry-after`, `date`, `polar-version`,
//!   `cache-control` back unchanged: denials, 429s and 5xx alike.
//! * **A lease on grants only.** A 200 of validate or activate gets a lease in the
//!   [`LEASE_HEADER`](polar_license::lease::LEASE_HEADER) header only when the core ([`polar_license::proto::parse_validate_for`],
//!   [`parse_activate_for`](polar_license::proto::parse_activate_for)) classifies it as a grant
//!   for the request asked (same key and organization, status `granted`, not expired at `now`).
//!   Anything else (a denial, a login page's 200, a 200 saying "revoked") passes through with
//!   none.
//! * **The seller's token is protected.** Bodies are capped ([`Limits::max_body_bytes`], 413);
//!   Polar's own input checks ([`polar_license_rules::check_body`]: the same 422 bytes
//!   Polar sends) and the core's stricter ones run before any call; a body naming another
//!   organization than the configured one is Polar's 404 "Not found" without a call; each
//!   client IP and each license key has a token bucket ([`Limits`]; 429 with `Retry-After`,
//!   no call). The token is never logged nor sent to a client; keys are logged redacted
//!   (`****-6ED415`).
//! * **Errors that are the seller's, not the customer's.** Polar unreachable: 502
//!   `{"detail": …}` (a client falls back to its cache, as for any 5xx). Polar refusing the
//!   seller's token (401, or a 403 that is not a license denial): an error log line and 502,
//!   never passed on, because a customer must not read the seller's credential problem as a
//!   denial of their license.
//! * **CORS** on every answer (`Access-Control-Allow-Origin: *`, the lease, `retry-after` and
//!   `date` exposed), preflights answered without a call.
//!
//! The core is sans-IO: a request as data, `now` as an argument, the upstream
//! [`Transport`](polar_license::Transport) injected. **The machines are the one way in.** The
//! order of a request's steps is a machine, [`flow::Exchange`] (the host asks
//! [`flow::Exchange::want`] what to do next and hands back what it got with
//! [`flow::Exchange::give`]), and the relay's own reads between requests another,
//! [`flow::background::Background`] (`poll`, `answered`): every host drives them with one loop
//! and moves bytes and time; [`Relay`] is what the machines ask (its configuration, its parts,
//! the operator's routes), never a second way to answer a request. The hosts: the native server ([`serve`], feature `server`) is hyper's HTTP/1.1
//! server (a limit on every wait on a client and on the connections open: [`ServeOptions`])
//! with [`polar_license::UreqTransport`]; the npm package's relay drives the same machines from
//! JS through [`host::workers::Workers`] (the order of a host whose calls are async: loads,
//! saves, the store's opening, the alarm; `bindings/relay-wasm` marshals,
//! `pkg-template/relay-handler.js` does the I/O). The map of the machines and
//! their hosts is docs/architecture.md in the repository.

#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// `Debug` for a type that shows some of its fields and leaves the rest out (`..`: a key,
/// the seller's token, or bulk nobody reads in a log): `debug_some!(Ty, t => { "name":
/// t.field, … })`, each value an expression of `t` (the value shown).
macro_rules! debug_some {
    ($ty:ident, $this:ident => { $($name:literal: $value:expr),+ $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $this = self;
                f.debug_struct(stringify!($ty))
                    $(.field($name, &$value))+
                    .finish_non_exhaustive()
            }
        }
    };
}

mod address;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod agent;
pub mod analytics;
mod backoff;
mod breaker;
mod checkouts;
mod clock;
mod deliveries;
// A key's devices through the relay (issue #64).
mod devices;
// The seller's Polar set-up checked (issue #78): `polar-license doctor` and `/healthz`'s `setup`.
pub mod doctor;
#[cfg(feature = "entitlements")]
mod entitled;
pub mod entitlements;
mod ids;
// What every host does alike, and where hosts differ (`Host`).
pub mod host;
// The relay's machines: a request's exchange and the background reads (`flow`, public for the
// hosts outside this crate: the Workers binding).
pub mod flow;
// When each activation was last seen, and the retirement of those unseen (issue #80).
pub mod last_seen;
mod leases;
mod lifecycle;
mod limit;
mod locked;
mod logged;
mod metered;
mod ops;
mod pending;
// The API version of each webhook delivery (issue #78).
pub mod payload_versions;
// The roster: its state and its reads' decisions (asked by `flow::background`).
mod roster;
// The reconcile: its queue and its reads' decisions (asked by `flow::background`).
mod reads;
mod reconcile;
mod relay;
mod revalidate;
// The relay's routes, typed: a request read once into its route, one part per route (issue #77).
mod routes;
// What a request asks, as its route read it once: the data the routes' parts serve (issue #77).
mod route;
mod scrub;
mod seats;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod server;
pub mod store;
mod stored;
mod types;
// Usage reported through the relay and ingested to Polar (issue #68 item 3).
mod usage;
mod verdicts;

pub use breaker::BreakerOptions;
pub use clock::Now;
pub use host::Host;
pub use limit::Rate;
pub use logged::log_text;
pub use reconcile::ListPage as ReconcileListPage;
pub use roster::ReadAnswer as RosterAnswer;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use server::{
    log_to_stderr_as, serve, serve_on, serve_with, LogFormat, Running, ServeOptions,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
};
pub use store::layout::RosterChange;
#[cfg(not(target_arch = "wasm32"))]
pub use types::os_entropy;
pub use types::{
    Entropy, Limits, Listener, RelayConfig, RelayRequest, RelayResponse, Route, Signer,
    StoreConfig, CHECKOUT_ROUTE, DEFAULT_LEASE_DAYS, DEFAULT_WEBHOOK_SILENCE, DEVICES_ROUTE,
    FLIGHT_WAITS, HEALTH_ROUTE, MAX_LEASE_DAYS, METRICS_ROUTE, RELAY_SOURCE, ROUTES, ROUTE_PREFIX,
    SEATS_PREFIX, SOURCE_HEADER, STALE_AFTER_MS, USER_AGENT, WEBHOOK_MAX_BODY_BYTES, WEBHOOK_ROUTE,
};

pub use checkouts::CheckoutOptions;
pub use relay::Relay;
pub use routes::checkout::MAX_CHECKOUT_BODY;
pub use seats::{
    SeatOptions, ACTIVATION_CHURN, MAX_BORROW_DAYS, MAX_SEATS, SEAT_CHURN, SEAT_SECONDS,
    SNAPSHOT_SECONDS,
};
pub use usage::{MAX_PENDING_PER_KEY, MAX_PENDING_TOTAL, USAGE_ROUTE};
