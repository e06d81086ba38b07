//! The C ABI of polar-license: a static and a shared library (`libpolar_license_c.a`,
//! `libpolar_license_c.so`; installed as `libpolar_license` by `install.sh`) and the header
//! `include/polar_license.h`, generated from this crate by the pinned cbindgen
//! (`cbindgen.toml`). Its tests are C programs (`tests/*.c`, run by `scripts/test-c.sh`) and
//! Rust ones that call the same functions (`src/tests/`, unit tests: see below).
//!
//! Every `extern "C"` function here follows the same rules (the model is rustls-ffi):
//!
//! * its body runs inside `ffi_boundary!` (`src/panic.rs`), so a Rust panic never unwinds
//!   into C: the function returns [`polar_license_status::Panic`] (or its type's neutral value)
//!   instead;
//! * pointers are checked for NULL first ([`polar_license_status::NullArgument`]), and strings
//!   are checked as UTF-8 ([`polar_license_status::InvalidUtf8`]), never assumed;
//! * outputs go through out-pointers that are written only when the call succeeds;
//! * every `_new` pairs with a `_free`, and `_free(NULL)` does nothing.
//!
//! Types are named in Rust exactly as C sees them (`polar_license_client`, …), and functions
//! are `polar_license_<type>_<verb>`. Ownership, NULL, thread and error rules are written once,
//! in `bindings/c/README.md`.
//!
//! The reason enum [`polar_license_reason`] has the numbers of [`polar_license::Reason`] (0 is
//! "none"); a unit test compares the two for every reason.

// The C ABI needs raw pointers; every unsafe block below carries a SAFETY comment (the
// workspace's clippy lint `undocumented_unsafe_blocks` checks it).
#![allow(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The types are named exactly as C sees them (snake_case, `polar_license_` prefix).
#![allow(non_camel_case_types)]
// These are C entry points: C has no `unsafe`, so each pointer's contract is documented in the
// header, and NULL is checked at entry, instead of marking the functions `unsafe`.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[macro_use]
mod panic;
mod client;
mod config;
mod devices;
mod enums;
mod feature;
mod out;
mod request;
mod result;
mod seats;
mod strings;
mod usage;

pub use client::*;
pub use config::*;
pub use devices::*;
pub use enums::*;
pub use feature::*;
pub use request::*;
pub use result::*;
pub use seats::*;
pub use usage::*;

use std::ffi::c_char;

// The header also defines `POLAR_LICENSE_VERSION` ("X.Y.Z", in cbindgen.toml); the test
// src/tests/header.rs checks it and these three against Cargo.toml.

/// The major version of this library (the `X` of `X.Y.Z`).
pub const POLAR_LICENSE_VERSION_MAJOR: u32 = 0;
/// The minor version of this library (the `Y` of `X.Y.Z`).
pub const POLAR_LICENSE_VERSION_MINOR: u32 = 1;
/// The patch version of this library (the `Z` of `X.Y.Z`).
pub const POLAR_LICENSE_VERSION_PATCH: u32 = 0;

/// The version of the library linked in, e.g. `"0.1.0"`: a static NUL-terminated string (never
/// freed). Compare it with the `POLAR_LICENSE_VERSION` macro of the header you compiled with.
#[no_mangle]
pub extern "C" fn polar_license_version() -> *const c_char {
    ffi_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    }
}

// The C ABI called from Rust (the same calls the C programs in tests/*.c make), as unit
// tests: the crate is a staticlib and a cdylib only (an rlib among its types would turn off
// LTO for all three, 42 MB of archive instead of 14 and a C program 30 % larger), so nothing
// outside it can link it as Rust.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is the report
mod tests;

#[cfg(test)]
mod version {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_constants_follow_cargo_toml() {
        assert_eq!(
            POLAR_LICENSE_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            POLAR_LICENSE_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            POLAR_LICENSE_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        // SAFETY: polar_license_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(polar_license_version()) };
        assert_eq!(v.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
    }
}
