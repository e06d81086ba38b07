//! The relay's machines, sans IO (issue #52): what a host does next is asked of them
//! ([`Exchange::want`]) and what it got is given back ([`Exchange::give`]), as the client's
//! own machines in the root crate's `src/flow/` are driven. No IO, thread, sleep or lock is
//! held inside: each host (the npm relay's `relay-handler.js` first) runs one drive loop.

mod exchange;

pub use exchange::{Exchange, ExchangeOptions, Given, Load, Need};
