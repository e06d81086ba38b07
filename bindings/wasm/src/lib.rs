//! The npm package's WebAssembly engine (`wasm32-unknown-unknown` only; natively this crate is
//! empty).
//!
//! `engine::Engine` is the sans-IO core of `polar-license` behind one synchronous export,
//! `call(step, args)`: the package's `license.js` (in `pkg-template/`) does the IO (fetch,
//! storage, the clock, random bytes, locks) and asks the engine between the steps: it drives
//! the same machines (`polar_license::flow`'s `Check` and `Update`, kept in `machines`) that
//! the native `Licensing` and the Rust `AsyncLicensing` drive.
//! Every decision is the core's (Polar's answers read by `polar_license::answers`, the same
//! classification as the native faces'), but for the ledger's compare-and-set before a write,
//! which license.js still holds (issue #63); this crate reads the options the host passes
//! (`bindings`) and writes JSON answers (`engine`); every `CheckOutcome` it answers with is
//! the core's (a validate's is its machine's, `Validated::outcome`).
//!
//! It owns the package's global allocator (talc, smaller than the default), so no Rust app
//! that depends on `polar-license` for wasm32 gets it. `scripts/build-npm.sh` builds it with
//! wasm-bindgen and wasm-opt into `target/npm/pkg/`.

#![cfg(target_arch = "wasm32")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bindings;
pub mod engine;
pub mod machines;
mod runs;
pub mod verify;

// The engine's wasm-bindgen tests (node and headless Chromium), as unit tests: the crate is a
// cdylib only (an rlib among its types would turn off LTO: 60.7 KB of wasm gzipped instead
// of 52.2).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is the report
mod tests;

/// The package's allocator (single-threaded wasm: no atomics).
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
