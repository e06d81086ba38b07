//! The wasm32 shell (`wasm32-unknown-unknown` only): an async grace-aware client over
//! `fetch`, for Rust code running in a JS host (a browser, node, Deno, Workers). The same
//! sans-IO core as the native shell, file for file its twin:
//!
//! | native (`src/native/`) | wasm (`src/wasm/`) | what |
//! |---|---|---|
//! | `UreqTransport` (`transport.rs`) | [`AsyncTransport`], [`FetchTransport`] (`transport.rs`) | sends one request |
//! | `BlockingClient` (`client.rs`) | [`AsyncClient`] (`client.rs`) | validate, activate, deactivate; the customer portal (sign in, the customer's keys, a key's devices) |
//! | `Licensing` (`licensing.rs`) | [`AsyncLicensing`] (`licensing.rs`) | grace-aware `check`, remembered activations, `status`, `has_feature`, the local trial (`check_trial_report`), `list_devices` |
//! | `Store` (`store.rs`) | [`AsyncStore`] (`store.rs`) | `localStorage`, memory, or the app's `{ get, set, remove }` |
//! | `system_clock` (`clock.rs`) | [`date_now`] (`js.rs`) | the clock, read in one place |
//!
//! The clock is `Date.now()` (never `SystemTime::now()`, which panics on this target), the
//! timeout is an `AbortController` armed with `setTimeout`, and randomness for the per-install
//! secret comes from `crypto.getRandomValues`. Nothing here panics: every JS failure becomes an
//! [`Error`](crate::error::Error) with a stable [`Reason`](crate::reason::Reason).
//!
//! The record written to storage is byte for byte the native one ([`crate::cache::encode`],
//! sealed over the same inputs, the server's origin among them), stored as text under
//! `polar-license.<slot>`, with its ledger ([`crate::cache::encode_ledger`]) under
//! `polar-license.<slot>-seq`; the per-install secret lives beside them under
//! `polar-license.install-secret` (64 hex digits). It drives the same `crate::flow` machines
//! as the native `Licensing`: no lock is held while Polar is asked, and a check of a key being
//! asked answers from the cache at once when it can. Where the host has Web Locks
//! (`navigator.locks`) a slot's lock is the origin's Web Lock that the npm package's license.js
//! takes too, shared by every tab, window and worker; elsewhere it is this instance's. Either
//! way a record or ledger is not written when the slot's ledger changed since the machine read
//! it (another writer's), as license.js orders its writes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), polar_license::Error> {
//! use polar_license::wasm::AsyncLicensing;
//!
//! let licensing = AsyncLicensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
//!     .memory_store()
//!     .build()?;
//! let outcome = licensing.check("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415").await;
//! if outcome.is_licensed() { /* unlock */ }
//! # Ok(()) }
//! ```
//!
//! The npm package is another face over the same core: its engine is the crate
//! `polar-license-wasm` (`bindings/wasm/`), and its JavaScript API is documented in
//! `pkg-template/README.md`.

mod client;
mod js;
mod licensing;
mod store;
mod transport;

pub use crate::flow::{CacheState, CacheStatus};
pub use client::{AsyncClient, AsyncClientBuilder, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use js::{date_now, LocalFuture};
pub use licensing::{AsyncLicensing, AsyncLicensingBuilder, Clock, SECRET_NAME, STORAGE_PREFIX};
pub use store::{AsyncStore, JsStore, MemoryStore, WebStorage};
pub use transport::{AsyncTransport, FetchTransport};
