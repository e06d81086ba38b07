//! The relay's machines, sans IO (issue #52): what a host does next is asked of them and what
//! it got is given back, as the client's own machines in the root crate's `src/flow/` are
//! driven: they hold the order of the steps and ask the relay's parts for each decision
//! ([`Core`]). No IO, thread, sleep or lock is held inside: each host runs one drive loop.
//! They are the relay's one way to serve: the steps they ask of the relay (its routing, the
//! stored and the stale answers, the finish of a call, a lease's assembly) are the crate's own,
//! and no host calls them. (Rules some hosts still hold are listed in docs/architecture.md in
//! the repository.)
//!
//! * [`Exchange`]: one request's path ([`Exchange::want`], [`Exchange::give`]).
//! * [`background`]: the relay's own reads between requests (the roster's paging, grant
//!   refetches, the reconcile), `poll` and `answered`.
//! * [`Core`]: what the machines ask of the relay's parts. They never name the relay: the
//!   relay implements it and drives them, so the machines sit below it.
//!
//! A host's whole loop for one request (here every call to Polar answered 404 by a stand-in;
//! a real host sends [`Need::Send`]'s request, waits for flights, signs with an external key,
//! saves a store it keeps; `server.rs` is this crate's host, the npm relay's JS another):
//!
//! ```
//! use polar_license::lease::SigningKey;
//! use polar_license::{AccessToken, HttpRequest, HttpResponse, Server};
//! use polar_license::{TransportError, TransportErrorKind};
//! use polar_license_relay::flow::{Exchange, ExchangeOptions, Given, Need};
//! use polar_license_relay::{Now, Relay, RelayConfig, RelayRequest};
//!
//! let polar = |_: &HttpRequest| Ok(HttpResponse::new(404, r#"{"detail":"Not found"}"#));
//! let config = RelayConfig::new(
//!     Server::Custom("http://127.0.0.1:9".into()),
//!     AccessToken::new("polar_oat_example"),
//!     SigningKey::generate(Some("k1"))?,
//! );
//! let relay = Relay::with_entropy(config, Box::new(polar), Box::new(|| Some([7; 16])))?;
//! let head = RelayRequest {
//!     method: "POST".into(),
//!     path: "/v1/customer-portal/license-keys/validate".into(),
//!     headers: vec![("content-type".into(), "application/json".into())],
//!     body: Vec::new(), // asked for by Need::Body
//!     client_ip: "192.0.2.1".into(),
//! };
//! let body = br#"{"key":"K-1","organization_id":"d2fcbff8-108b-411e-bf2b-6383e0a8802d"}"#;
//! let now = Now { unix_seconds: 1_790_000_000, monotonic_ms: 0 };
//! let mut exchange = Exchange::new(head, ExchangeOptions::default());
//! let mut answer = None;
//! loop {
//!     let given = match exchange.want(&relay, now, Some([7; 16])) {
//!         Need::Body { max } => Given::Body(body[..body.len().min(max)].to_vec()),
//!         Need::Load(_) => Given::Loaded, // the store is the relay's own: nothing to load
//!         Need::Flight { .. } => Given::Landed, // a real host waits for the flight first
//!         Need::Slot { .. } => Given::Slot, // asked only where a call holds a thread (Host::call_slots)
//!         Need::Send { request, .. } => Given::Upstream(polar(&request)),
//!         // Asked only after a Given::Patience (a call going on past a stale answer).
//!         Need::Call => Given::Upstream(Err(TransportError::new(TransportErrorKind::Other, "none"))),
//!         Need::Sign(_) => Given::Signature(Vec::new()), // only with Signer::External
//!         Need::Persist => Given::Persisted(true), // the store saves itself
//!         Need::Landed(_) | Need::Warn(_) | Need::Error(_) => continue,
//!         Need::Respond(r) => {
//!             answer = Some(r);
//!             continue;
//!         }
//!         Need::Done => break,
//!     };
//!     exchange.give(given);
//! }
//! assert_eq!(answer.map(|r| r.status), Some(404)); // Polar's answer, passed on
//! # Ok::<(), polar_license::Error>(())
//! ```

mod asks;

// How many rounds of loads a job waits for: the store's loads count them, and the background
// machine's reads too (public, as the hosts outside this crate read it here).
pub use crate::store::saves::loads::MAX_LOAD_ROUNDS;

pub mod background;
mod exchange;

pub use asks::Core;
pub(crate) use asks::{Asks, FirstRead, Moment, Upstream};
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub(crate) use exchange::metrics_answer;
#[cfg(all(not(target_arch = "wasm32"), any(test, feature = "server")))]
pub(crate) use exchange::send;
pub use exchange::{Exchange, ExchangeOptions, Given, Load, Need};
