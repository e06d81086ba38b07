//! The WebAssembly face (`wasm32-unknown-unknown` only): the same sans-IO core, twice over.
//!
//! * For the npm package, [`engine::Engine`]: synchronous `#[wasm_bindgen]` exports between
//!   which the package's `license.js` does the IO (fetch, storage, clock, random bytes, locks).
//!   Every decision is the core's (`crate::session`); no async code or `fetch` bindings are
//!   compiled into the package's wasm, which keeps it small.
//! * For Rust code running in a JS host, an async grace-aware client over `fetch`, below.
//!
//! The layers mirror the native ones, file for file:
//!
//! | native | wasm | what |
//! |---|---|---|
//! | [`crate::Transport`], `UreqTransport` | [`AsyncTransport`], [`FetchTransport`] | sends one request |
//! | `BlockingClient` (`native.rs`) | [`AsyncClient`] (`client.rs`) | validate, activate, deactivate |
//! | `Licensing` (`licensing.rs`) | [`AsyncLicensing`] (`licensing.rs`) | grace-aware `check`, remembered activations, `status`, `has_feature` |
//! | `Store` (`store.rs`) | [`AsyncStore`] (`store.rs`) | `localStorage`, memory, or the app's `{ get, set, remove }` |
//!
//! The clock is `Date.now()` (never `SystemTime::now()`, which panics on this target), the
//! timeout is an `AbortController` armed with `setTimeout`, and randomness for the per-install
//! secret comes from `crypto.getRandomValues`. Nothing here panics: every JS failure becomes an
//! [`Error`](crate::Error) with a stable [`Reason`](crate::Reason).
//!
//! The record written to storage is byte for byte the native one ([`crate::cache::encode`],
//! sealed over the same inputs, the server's origin among them), stored as text under
//! `polar-license.<slot>`, with its ledger ([`crate::cache::encode_ledger`]) under
//! `polar-license.<slot>-seq`; the per-install secret lives beside them under
//! `polar-license.install-secret` (64 hex digits). Both faces drive the same
//! `crate::session` phases as the native `Licensing`: no lock is held while Polar is asked,
//! and a check of a key being asked answers from the cache at once when it can.
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
//! The JavaScript API (`LicenseClient`, `LicenseError`) is documented in the npm package's
//! README (`pkg-template/README.md`); [`engine`] is the layer under it, and [`bindings`] the
//! options it reads.

pub mod bindings;
mod client;
pub mod engine;
pub(crate) mod host;
mod licensing;
mod store;
mod transport;

pub use crate::session::{CacheState, CacheStatus};
pub use client::{AsyncClient, AsyncClientBuilder, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use licensing::{AsyncLicensing, AsyncLicensingBuilder, Clock, SECRET_NAME, STORAGE_PREFIX};
pub use store::{AsyncStore, JsStore, LocalFuture, MemoryStore, WebStorage};
pub use transport::{AsyncTransport, FetchTransport};

/// Bytes of the per-install secret (the native length too; stored as 64 hex digits).
pub(crate) const INSTALL_SECRET_LEN: usize = 32;

/// The install secret stored as hex, or `None` when it is not exactly 64 hex digits (either
/// case, as natively).
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != INSTALL_SECRET_LEN * 2 {
        return None;
    }
    crate::cache::unhex(text.to_ascii_lowercase().as_bytes())
}

/// The local clock in unix seconds, from `Date.now()`.
pub fn date_now() -> i64 {
    // Date.now() is milliseconds as an integral f64, far inside i64's range.
    (js_sys::Date::now() / 1000.0).floor() as i64
}
