//! Signed mode and air-gapped activation (issue #25) through the C ABI under `cargo test`: the
//! relay-key setters, and the air-gapped calls that need no relay. The C suite
//! (bindings/c/tests/test_signed.c) runs the rest against a real relay process.
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, client_of, demo_config, labelled_request, text};
use crate::*;
use polar_license::lease::SigningKey;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::ScratchDir;
use std::ptr;

fn client_new(config: *mut polar_license_config) -> (polar_license_status, String) {
    let mut client = ptr::null_mut();
    let status = polar_license_client_new(config, &mut client);
    assert_eq!(client.is_null(), status != polar_license_status::Ok);
    polar_license_client_free(client);
    (status, text(polar_license_config_last_error(config)))
}

#[test]
fn a_refused_relay_key_is_kept_so_the_client_is_refused_too() {
    let dir = ScratchDir::new("c-relay-keys");
    let good = SigningKey::generate(Some("relay-a")).unwrap().public_pair();
    let other = SigningKey::generate(Some("relay-b")).unwrap().public_pair();
    let config = demo_config("http://127.0.0.1:9", dir.path());

    assert_eq!(
        polar_license_config_add_relay_key(config, c(&good).as_ptr()),
        polar_license_status::Ok
    );
    assert_eq!(client_new(config).0, polar_license_status::Ok);
    // A bad pair: refused at once, and kept, so the client is refused (never unsigned).
    assert_eq!(
        polar_license_config_add_relay_key(config, c("relay-c=k4.public.nope").as_ptr()),
        polar_license_status::InvalidInput
    );
    assert!(text(polar_license_config_last_error(config)).contains("relay_keys"));
    let (status, error) = client_new(config);
    assert_eq!(status, polar_license_status::InvalidInput);
    assert!(error.contains("relay_keys"), "{error}");
    // A list replaces every pair (the refused one included); "" turns signed mode off.
    let list = format!("{good}, {other}");
    assert_eq!(
        polar_license_config_set_relay_keys(config, c(&list).as_ptr()),
        polar_license_status::Ok
    );
    assert_eq!(client_new(config).0, polar_license_status::Ok);
    assert_eq!(
        polar_license_config_set_relay_keys(config, c(&format!("{good},{good}")).as_ptr()),
        polar_license_status::InvalidInput
    );
    assert_eq!(client_new(config).0, polar_license_status::InvalidInput);
    assert_eq!(
        polar_license_config_set_relay_keys(config, c("").as_ptr()),
        polar_license_status::Ok
    );
    assert_eq!(client_new(config).0, polar_license_status::Ok);
    assert_eq!(
        polar_license_config_add_relay_key(config, ptr::null()),
        polar_license_status::NullArgument
    );
    polar_license_config_free(config);
}

#[test]
fn an_air_gapped_request_needs_a_relay_to_be_fetched() {
    let emu = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let dir = ScratchDir::new("c-airgap");
    let key = SigningKey::generate(Some("relay-a")).unwrap().public_pair();
    // The offline machine: nothing listens at its base URL.
    let offline_config = demo_config("http://127.0.0.1:9", &dir.path().join("offline"));
    assert_eq!(
        polar_license_config_add_relay_key(offline_config, c(&key).as_ptr()),
        polar_license_status::Ok
    );
    let offline = client_of(offline_config);
    let request = labelled_request(DEMO_KEY, "lab");
    let mut result = ptr::null_mut();
    assert_eq!(
        polar_license_client_lease_request(offline.0, request, &mut result),
        polar_license_status::Ok
    );
    assert_eq!(
        polar_license_result_outcome(result),
        polar_license_outcome::Done
    );
    let line = text(polar_license_result_line(result));
    assert!(
        line.starts_with(polar_license::airgap::REQUEST_PREFIX),
        "{line}"
    );
    assert_eq!(text(polar_license_result_lease_kid(result)), "");
    polar_license_result_free(result);
    polar_license_request_free(request);

    // Fetched from Polar itself (no relay): the grant has no lease, so there is no line.
    let online_config = demo_config(&emu.url(), &dir.path().join("online"));
    let online = client_of(online_config);
    let mut result = ptr::null_mut();
    assert_eq!(
        polar_license_client_lease_fetch(online.0, c(&line).as_ptr(), &mut result),
        polar_license_status::Ok
    );
    assert_eq!(
        polar_license_result_reason(result),
        polar_license_reason::ProtocolError
    );
    assert_eq!(text(polar_license_result_line(result)), "");
    polar_license_result_free(result);

    // Nothing to install: the offline machine is still not licensed, and holds no lease.
    let mut result = ptr::null_mut();
    assert_eq!(
        polar_license_client_status(offline.0, c(DEMO_KEY).as_ptr(), &mut result),
        polar_license_status::Ok
    );
    assert_eq!(polar_license_result_lease_expires_at(result), -1);
    polar_license_result_free(result);
}
