//! Signed mode's add-on for the npm package (issue #38): one function, Ed25519 verification,
//! for hosts whose WebCrypto has no Ed25519 (`wasm32-unknown-unknown` only; natively this crate
//! is empty).
//!
//! The package's engine verifies no signature itself: in signed mode it asks the host whether
//! a lease's signature verifies (`bindings/wasm/src/verify.rs`), and `license.js` answers with
//! `crypto.subtle.verify` where the host has Ed25519, else with this module, loaded on the
//! first lease. Apps without a relay key never load it. It is the core's own verification
//! (`polar_license::lease::Builtin`, as the native library, the CLI and the C library run it).

#![cfg(target_arch = "wasm32")]

use polar_license::lease::{Builtin, Checked, Ed25519};
use wasm_bindgen::prelude::*;

/// Whether `signature` (64 bytes) is `public_key`'s (32 bytes) Ed25519 signature of `message`;
/// `false` for a key or signature of another length.
#[wasm_bindgen]
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(key), Ok(signature)) = (
        <&[u8; 32]>::try_from(public_key),
        <&[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    Builtin.verify(key, message, signature) == Checked::Valid
}

/// The module's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
