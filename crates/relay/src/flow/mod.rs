//! The relay's machines, sans IO (issue #52): what a host does next is asked of them and what
//! it got is given back, as the client's own machines in the root crate's `src/flow/` are
//! driven: they hold the order of the steps and ask the relay's parts for each decision
//! ([`Core`]). No IO, thread, sleep or lock is held inside: each host runs one drive loop.
//! (Rules some hosts still hold, and the pre-machine API `Relay` still exports, are listed in
//! docs/architecture.md in the repository, until issue #63 removes them.)
//!
//! * [`Exchange`]: one request's path ([`Exchange::want`], [`Exchange::give`]).
//! * [`background`]: the relay's own reads between requests (the roster's paging, grant
//!   refetches, the reconcile), `poll` and `answered`.
//! * [`Core`]: what the machines ask of the relay's parts. They never name the relay: the
//!   relay implements it and drives them, so the machines sit below it.

mod asks;
pub mod background;
mod exchange;

pub use asks::Core;
pub(crate) use asks::{Asks, Moment, Upstream};
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub(crate) use exchange::metrics_answer;
pub use exchange::{Exchange, ExchangeOptions, Given, Load, Need};
