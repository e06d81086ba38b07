//! The C ABI under `cargo test`: the calls a C program makes, against the in-process
//! emulator, and the committed header held to the Rust side.
#![allow(unsafe_code)] // calling the extern "C" functions

mod calls;
mod entitlements;
mod features;
mod header;
mod messages;
mod signed;
mod stopped;
mod usage;

use crate::*;
use polar_license_emulator::DEMO_ORGANIZATION_ID;
use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr;

/// `s` as a C string.
fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Reads a string an accessor returned.
fn text(p: *const c_char) -> String {
    assert!(!p.is_null(), "string accessors never return NULL");
    // SAFETY: accessors return NUL-terminated strings valid while their owner lives.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A config for the demo organization at `url`, caching in `dir` (each setter checked); the
/// caller frees it.
fn demo_config(url: &str, dir: &Path) -> *mut polar_license_config {
    let mut config = ptr::null_mut();
    assert_eq!(
        polar_license_config_new(&mut config),
        polar_license_status::Ok
    );
    for status in [
        polar_license_config_set_organization(config, c(DEMO_ORGANIZATION_ID).as_ptr()),
        polar_license_config_set_base_url(config, c(url).as_ptr()),
        polar_license_config_set_cache_dir(config, c(&dir.to_string_lossy()).as_ptr()),
    ] {
        assert_eq!(status, polar_license_status::Ok);
    }
    config
}

/// The client `config` builds (checked OK, with the config's last error on failure); frees
/// `config`.
fn client_of(config: *mut polar_license_config) -> Client {
    let mut client = ptr::null_mut();
    assert_eq!(
        polar_license_client_new(config, &mut client),
        polar_license_status::Ok,
        "{}",
        text(polar_license_config_last_error(config))
    );
    polar_license_config_free(config);
    Client(client)
}

/// A request for `key` with this label (the caller frees it).
fn labelled_request(key: &str, label: &str) -> *mut polar_license_request {
    let mut request = ptr::null_mut();
    assert_eq!(
        polar_license_request_new(c(key).as_ptr(), &mut request),
        polar_license_status::Ok
    );
    assert_eq!(
        polar_license_request_set_label(request, c(label).as_ptr()),
        polar_license_status::Ok
    );
    request
}

/// A client, freed when dropped.
struct Client(*mut polar_license_client);

// SAFETY: polar_license_client is documented (and checked at compile time) to be thread-safe.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

impl Drop for Client {
    fn drop(&mut self) {
        polar_license_client_free(self.0);
    }
}
