//! Usage reports in signed mode through the C ABI (issue #76) under `cargo test`: a client with
//! relay keys believes a usage answer only from the relay's signed acknowledgement, so a fake
//! relay (the testkit's forger answering `recorded` with a million credits and no token) is
//! `PROTOCOL_ERROR`, its balance never given; the same client without relay keys takes it. The
//! C suite (bindings/c/tests/test_usage.c) runs the honest reports against a real relay process.
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, client_of, demo_config};
use crate::*;
use polar_license::lease::SigningKey;
use polar_license_testkit::usage_forger::{usage_forger, Answer};
use polar_license_testkit::ScratchDir;
use std::ptr;

#[test]
fn a_fake_relays_usage_answer_is_a_protocol_error_with_relay_keys() {
    let dir = ScratchDir::new("c-usage-signed");
    let fake = usage_forger(
        None,
        Box::new(|a: Answer, _| Answer {
            body: br#"{"recorded":true,"duplicate":false,"balance":1000000}"#.to_vec(),
            ..a
        }),
    );
    let pair = SigningKey::generate(Some("relay-a")).unwrap().public_pair();
    // What the report comes to: its error, its reason, its balance (if one was given).
    let report = |keys: bool, sub: &str| {
        let config = demo_config(&fake.url, &dir.path().join(sub));
        if keys {
            assert_eq!(
                polar_license_config_add_relay_key(config, c(&pair).as_ptr()),
                polar_license_status::Ok
            );
        }
        let client = client_of(config);
        let mut result = ptr::null_mut();
        assert_eq!(
            polar_license_client_record_usage(
                client.0,
                c("USE-1B2C3D4E-5F6A").as_ptr(),
                c("tokens_used").as_ptr(),
                1.0,
                ptr::null(),
                &mut result,
            ),
            polar_license_status::Ok
        );
        let mut balance = f64::NAN;
        let known = polar_license_usage_result_balance(result, &mut balance);
        let got = (
            polar_license_usage_result_error(result),
            polar_license_usage_result_reason(result),
            known.then_some(balance),
        );
        polar_license_usage_result_free(result);
        got
    };
    assert_eq!(
        report(true, "signed"),
        (
            polar_license_usage_error::Offline,
            polar_license_reason::ProtocolError,
            None
        ),
        "signed mode believes no answer without the relay's acknowledgement"
    );
    assert_eq!(
        report(false, "unsigned"),
        (
            polar_license_usage_error::None,
            polar_license_reason::None,
            Some(1_000_000.0)
        ),
        "unsigned mode takes the relay's word"
    );
}
