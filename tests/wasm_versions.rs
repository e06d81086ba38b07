//! Polar's 2027-01 fields on the Rust-on-wasm face (issue #54, "Done when" 3rd bullet): a
//! check through `AsyncLicensing` against the running emulator (`POLAR_WASM_EMULATOR_URL`,
//! shared with other suites: each test seeds its own fresh key, moves no clock and sets no
//! fault) answering in API version 2027-01 (the testkit's `Versioned` transport sends
//! `Polar-Version`) carries the seat holder, the subscription and the order in the report's
//! license, as activate's answer does; in 2026-10 none of them. The key is seeded as a row of
//! the seller table's shape says (`Row::seed_key`), as the Tauri face's test seeds its Polar.
#![cfg(target_arch = "wasm32")]

use polar_license::grace::CheckOutcome;
use polar_license::model::LicenseKeyRead;
use polar_license::wasm::{date_now, AsyncLicensing};
use polar_license::{ActivateRequest, Verdict};
use polar_license_testkit::fetch::{emulator, new_key, Versioned};
use polar_license_testkit::seller_rows::{Row, DAY, MEMBER_ID};
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
/// Activates a fresh key of `Row::with_holder_and_order(api)` and checks it: activate's license and the check
/// report's, with when the row started (unix seconds).
async fn licenses(api: &str) -> (i64, Vec<(&'static str, LicenseKeyRead)>) {
    let row = Row::with_holder_and_order(api);
    let polar = emulator();
    let start = date_now();
    let key = new_key(polar, "VERSIONS", row.seed_key(start)).await;
    let app = AsyncLicensing::builder(ORG)
        .base_url(polar)
        .memory_store()
        .machine_id("machine-A")
        .build_with_transport(Versioned::new(row.api()))
        .expect("licensing builds");
    let activated = match app
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
    {
        Ok(Verdict::Accepted(read)) => read.license_key,
        other => panic!("{api}: activate: {other:?}"),
    };
    let report = app.check_report(key.as_str()).await;
    let CheckOutcome::Licensed { license, .. } = &report.outcome else {
        panic!("{api}: check: {:?}", report.outcome)
    };
    (
        start,
        vec![
            ("activate", activated),
            ("check", license.license_key.clone()),
        ],
    )
}

#[wasm_bindgen_test]
async fn on_2027_01_the_report_carries_member_subscription_and_order() {
    let (start, licenses) = licenses("2027-01").await;
    let period_end = start + 30 * DAY;
    for (what, l) in licenses {
        let member = l.member.as_ref().expect("member");
        assert_eq!(member.id, MEMBER_ID, "{what}");
        assert_eq!(member.email.as_deref(), Some("seat@acme.io"), "{what}");
        assert_eq!(member.external_id.as_deref(), Some("acme-42"), "{what}");
        assert_eq!(l.member_id.as_deref(), Some(MEMBER_ID), "{what}");
        let sub = l.subscription.as_ref().expect("subscription");
        assert_eq!(sub.status, "active", "{what}");
        assert!(sub.cancel_at_period_end, "{what}");
        assert_eq!(
            sub.current_period_end.map(|t| t.unix_timestamp()),
            Some(period_end),
            "{what}"
        );
        assert_eq!(sub.ends_at, sub.current_period_end, "{what}");
        let order = l.order.as_ref().expect("order");
        assert_eq!(
            (order.status.as_str(), order.paid),
            ("paid", true),
            "{what}"
        );
    }
}

#[wasm_bindgen_test]
async fn on_2026_10_the_report_has_no_member_subscription_or_order() {
    let (_, licenses) = licenses("2026-10").await;
    for (what, l) in licenses {
        assert!(l.member.is_none(), "{what}: {:?}", l.member);
        assert!(l.subscription.is_none(), "{what}: {:?}", l.subscription);
        assert!(l.order.is_none(), "{what}: {:?}", l.order);
    }
}
