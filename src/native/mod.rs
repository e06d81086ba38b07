//! The native shell (every target but `wasm32`): the IO around the sans-IO core, file for file
//! the twin of `crate::wasm`'s.
//!
//! | file | what |
//! |---|---|
//! | `transport.rs` | [`UreqTransport`]: ureq over rustls, the OS trust store or bundled roots, proxies |
//! | `client.rs` | [`BlockingClient`]: validate, activate, deactivate, one call each, no cache |
//! | `licensing.rs` | [`Licensing`]: the grace-aware `check`, activations, the remembered key, `status` |
//! | `store.rs` | [`FileStore`] and [`MemoryStore`]: where records live, atomic writes, locks |
//! | `buy.rs` | buying in the app: [`Licensing::buy`] drives the core's purchase machine, then activates |
//! | `blocking.rs` | [`Blocking`]: the async calls, a blocking call on a thread of its own |
//! | `events.rs` | what the native faces tell the `log` facade |
//! | `clock.rs` | [`system_clock`]: the one place the clock is read |
//!
//! The clock is read in `clock.rs` only; every decision takes it as an argument.

mod blocking;
mod buy;
mod client;
mod clock;
mod drive;
mod events;
pub mod licensing;
mod seat_guard;
pub mod store;
mod transport;

pub use blocking::Blocking;
pub use buy::Purchased;
pub use client::{BlockingClient, ClientBuilder};
pub use clock::{system_clock, system_clock_ms, Clock};
pub use licensing::{Licensing, LicensingBuilder, MachineBinding};
pub use seat_guard::{Beating, SeatGuard};
pub use store::{FileStore, MemoryStore, SlotLock, Store};
pub use transport::{
    ProxySetting, TlsRoots, UreqTransport, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
};
