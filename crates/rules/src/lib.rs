//! Polar's rules for the body of a license-key request: what Polar checks before it looks
//! anything up ([`check_body`]), and the answer it gives to a body it refuses ([`Refusal`]),
//! byte for byte. The emulator (`polar-license-emulator`) answers with them, and the relay
//! (`polar-license-relay`) refuses with them before it spends a call of the seller's token.

mod check;
#[doc(hidden)]
pub mod json;
#[doc(hidden)]
pub mod validate;

pub use check::{check_body, is_json_content_type, CheckedBody, Refusal};
