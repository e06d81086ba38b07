//! Feature gating on the WebAssembly face, in node and in headless Chromium
//! (`scripts/test-wasm.sh`), against the emulator: `AsyncLicensing::has_feature` for the
//! issue's cases one by one (the native `tests/features.rs`, over `fetch`). The npm package's
//! `features` option and `hasFeature` are tested through the package in
//! `tests/js/features.test.mjs`.
//!
//! The benefits are those of `tests/features.rs`; keys are added to the emulators at run time
//! (`POST /__emulator/keys`), fresh for every run. The URLs are baked in at compile time:
//! `POLAR_WASM_EMULATOR_URL` and `POLAR_WASM_FAULT_URL` (an emulator whose faults the tests set).
#![cfg(target_arch = "wasm32")]

use polar_license::features::{Entitlements, FeatureAccess, FeatureWhy};
use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::wasm::AsyncLicensing;
use polar_license::Reason;
use polar_license_testkit::fetch::{self, emulator, faulty, set_fault};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const PRO: &str = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const TEAM: &str = "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e";
const BASIC: &str = "2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f";
const DAY: i64 = 86_400;

/// Adds a fresh key to an emulator: `fields` are SeedKey fields (`benefit_id`, `usage`, …).
async fn new_key(base: &str, fields: Value) -> String {
    fetch::new_key(base, "FEAT", fields).await
}

fn map() -> Entitlements {
    Entitlements::from_json(
        &json!({
            "pro_export": [PRO, TEAM],
            "team_sync": [TEAM],
            "api_calls": {"benefits": [PRO], "metered": true}
        })
        .to_string(),
    )
    .unwrap()
}

fn licensing(base: &str) -> AsyncLicensing {
    AsyncLicensing::builder(ORG)
        .base_url(base)
        .timeout(Duration::from_secs(2))
        .memory_store()
        .entitlements(map())
        .build()
        .unwrap()
}

fn why(a: &FeatureAccess) -> (bool, FeatureWhy) {
    (a.granted, a.why)
}

// ---- AsyncLicensing::has_feature ------------------------------------------------------------

#[wasm_bindgen_test]
async fn granted_by_one_of_several_benefits_not_by_another_and_unknown() {
    let l = licensing(emulator());
    let pro = l
        .check(new_key(emulator(), json!({ "benefit_id": PRO })).await)
        .await;
    let team = l
        .check(new_key(emulator(), json!({ "benefit_id": TEAM })).await)
        .await;
    let basic = l
        .check(new_key(emulator(), json!({ "benefit_id": BASIC })).await)
        .await;

    let a = l.has_feature(&pro, "pro_export");
    assert_eq!(why(&a), (true, FeatureWhy::Granted));
    assert_eq!((a.source, a.remaining_usage), (Some(Source::Online), None));
    assert!(l.has_feature(&team, "pro_export").granted);
    assert!(l.has_feature(&team, "team_sync").granted);

    let no = (false, FeatureWhy::NotGrantedByBenefit);
    assert_eq!(why(&l.has_feature(&pro, "team_sync")), no);
    assert_eq!(why(&l.has_feature(&basic, "pro_export")), no);
    assert_eq!(why(&l.has_feature(&basic, "api_calls")), no);

    let unknown = l.has_feature(&pro, "time_travel");
    assert_eq!(why(&unknown), (false, FeatureWhy::UnknownFeature));
    assert_eq!(unknown.feature, "time_travel");
    assert_eq!(l.entitlements().features().count(), 3);
}

#[wasm_bindgen_test]
async fn a_denied_license_grants_nothing() {
    let l = licensing(emulator());
    let key = new_key(
        emulator(),
        json!({ "benefit_id": PRO, "status": "revoked" }),
    )
    .await;
    let revoked = l.check(key).await;
    for feature in ["pro_export", "api_calls", "time_travel"] {
        let a = l.has_feature(&revoked, feature);
        assert_eq!(why(&a), (false, FeatureWhy::LicenseNotValid), "{feature}");
        assert_eq!(a.license_reason, Some(Reason::Inactive));
        assert_eq!(a.source, None);
    }
    // No map at all: every feature is unknown, and still nothing is granted for a denial.
    let bare = AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .memory_store()
        .build()
        .unwrap();
    let a = bare.has_feature(&revoked, "pro_export");
    assert_eq!(why(&a), (false, FeatureWhy::LicenseNotValid));
}

#[wasm_bindgen_test]
async fn a_cached_verdict_within_grace_answers_like_an_online_one() {
    let key = new_key(
        faulty(),
        json!({ "benefit_id": PRO, "limit_usage": 10, "usage": 7 }),
    )
    .await;
    let now = Rc::new(Cell::new(polar_license::wasm::date_now()));
    let clock = Rc::clone(&now);
    let l = AsyncLicensing::builder(ORG)
        .base_url(faulty())
        .timeout(Duration::from_secs(2))
        .memory_store()
        .policy(GracePolicy::default())
        .entitlements(map())
        .clock(move || clock.get())
        .build()
        .unwrap();
    let online = l.check(key.as_str()).await;
    let a = l.has_feature(&online, "api_calls");
    assert_eq!(
        (a.granted, a.source, a.remaining_usage),
        (true, Some(Source::Online), Some(3))
    );

    // Polar unreachable (every connection closed at once), three days later: the cache answers.
    set_fault(json!({ "kind": "close_immediately" })).await;
    now.set(now.get() + 3 * DAY);
    let cached = l.check(key.as_str()).await;
    // Five more days: past the 7-day grace.
    now.set(now.get() + 5 * DAY);
    let expired = l.check(key.as_str()).await;
    set_fault(Value::Null).await;

    assert_eq!(cached.source(), Some(Source::Cache), "{cached:?}");
    for feature in ["pro_export", "api_calls", "team_sync", "time_travel"] {
        let (on, off) = (
            l.has_feature(&online, feature),
            l.has_feature(&cached, feature),
        );
        assert_eq!(
            (off.granted, off.why, off.remaining_usage),
            (on.granted, on.why, on.remaining_usage),
            "{feature}"
        );
    }
    let a = l.has_feature(&cached, "pro_export");
    assert_eq!((a.granted, a.source), (true, Some(Source::Cache)));

    let a = l.has_feature(&expired, "pro_export");
    assert_eq!(why(&a), (false, FeatureWhy::LicenseNotValid));
    assert_eq!(a.license_reason, Some(Reason::GraceExpired));
}

/// A check of a fresh key of PRO with 10 usages, `usage` of them used.
async fn metered(l: &AsyncLicensing, usage: i64) -> CheckOutcome {
    let fields = json!({ "benefit_id": PRO, "limit_usage": 10, "usage": usage });
    l.check(new_key(emulator(), fields).await).await
}

#[wasm_bindgen_test]
async fn metered_features_carry_the_remaining_count() {
    let l = licensing(emulator());
    let left = metered(&l, 7).await;
    let a = l.has_feature(&left, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, Some(3)));

    let spent = metered(&l, 10).await;
    let a = l.has_feature(&spent, "api_calls");
    assert_eq!(
        (a.granted, a.why, a.remaining_usage),
        (false, FeatureWhy::UsageExhausted, Some(0))
    );
    // Not metered: granted whatever the usage, with no count.
    let a = l.has_feature(&spent, "pro_export");
    assert_eq!((a.granted, a.remaining_usage), (true, None));
    // No usage limit: granted with no count.
    let unlimited = l
        .check(new_key(emulator(), json!({ "benefit_id": PRO })).await)
        .await;
    let a = l.has_feature(&unlimited, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, None));
}
