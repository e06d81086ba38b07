//! Feature gating on the WebAssembly face, in node and in headless Chromium
//! (`scripts/test-wasm.sh`), against the emulator: `AsyncLicensing::has_feature` for the
//! issue's cases one by one (the native `tests/features.rs`, over `fetch`), then the `Core`
//! export the npm package wraps: its `features` option, the answers a verdict carries and
//! `hasFeature(key, name)`.
//!
//! The benefits are those of `tests/features.rs`; keys are added to the emulators at run time
//! (`POST /__emulator/keys`), fresh for every run. The URLs are baked in at compile time:
//! `POLAR_WASM_EMULATOR_URL` and `POLAR_WASM_FAULT_URL` (an emulator whose faults the tests set).
#![cfg(target_arch = "wasm32")]

use gloo_net::http::Request;
use js_sys::{Object, Reflect};
use polar_license::features::{Entitlements, FeatureAccess, FeatureWhy};
use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::wasm::bindings::Core;
use polar_license::wasm::AsyncLicensing;
use polar_license::Reason;
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const PRO: &str = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const TEAM: &str = "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e";
const BASIC: &str = "2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f";
const DAY: i64 = 86_400;

fn url(name: &str, value: Option<&'static str>) -> &'static str {
    match value {
        Some(v) => v,
        None => panic!("{name} was not set at compile time: run scripts/test-wasm.sh"),
    }
}

fn emulator() -> &'static str {
    url(
        "POLAR_WASM_EMULATOR_URL",
        option_env!("POLAR_WASM_EMULATOR_URL"),
    )
}

fn faulty() -> &'static str {
    url("POLAR_WASM_FAULT_URL", option_env!("POLAR_WASM_FAULT_URL"))
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", (js_sys::Math::random() * 16.0) as u8 & 15))
        .collect()
}

/// Adds a fresh key to an emulator: `fields` are SeedKey fields (`benefit_id`, `usage`, …).
async fn new_key(base: &str, fields: Value) -> String {
    let key = format!("FEAT-{}", random_hex(24).to_uppercase());
    let mut body = json!({ "key": key });
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    let resp = Request::post(&format!("{base}/__emulator/keys"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    key
}

async fn set_fault(fault: Value) {
    let resp = Request::post(&format!("{}/__emulator/fault", faulty()))
        .header("content-type", "application/json")
        .body(fault.to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
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

    assert!(
        matches!(
            cached,
            CheckOutcome::Licensed {
                source: Source::Cache,
                ..
            }
        ),
        "{cached:?}"
    );
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

#[wasm_bindgen_test]
async fn metered_features_carry_the_remaining_count() {
    let l = licensing(emulator());
    let left = l
        .check(
            new_key(
                emulator(),
                json!({ "benefit_id": PRO, "limit_usage": 10, "usage": 7 }),
            )
            .await,
        )
        .await;
    let a = l.has_feature(&left, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, Some(3)));

    let spent = l
        .check(
            new_key(
                emulator(),
                json!({ "benefit_id": PRO, "limit_usage": 10, "usage": 10 }),
            )
            .await,
        )
        .await;
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

// ---- The `Core` export ----------------------------------------------------------------------

/// The values `LicenseClient` passes as they are: memory storage and `features` (from JSON).
fn host(features: &Value) -> JsValue {
    let h = Object::new();
    Reflect::set(&h, &"storage".into(), &"memory".into()).unwrap();
    let features = js_sys::JSON::parse(&features.to_string()).unwrap();
    Reflect::set(&h, &"features".into(), &features).unwrap();
    h.into()
}

fn prop(v: &JsValue, name: &str) -> JsValue {
    Reflect::get(v, &name.into()).unwrap()
}

fn core(features: Value) -> Result<Core, JsValue> {
    let options = json!({ "organizationId": ORG, "baseUrl": emulator() });
    Core::new(&options.to_string(), host(&features))
}

fn features() -> Value {
    json!({
        "pro_export": [PRO, TEAM],
        "team_sync": [TEAM],
        "api_calls": { "benefits": [PRO], "metered": true }
    })
}

async fn resolved(promise: js_sys::Promise) -> Value {
    let v = JsFuture::from(promise).await.unwrap();
    serde_json::from_str(&v.as_string().unwrap()).unwrap()
}

#[wasm_bindgen_test]
fn an_invalid_map_is_rejected_naming_the_entry() {
    let cases = [
        (
            json!({ "pro": ["not-a-uuid"] }),
            "entitlements.pro",
            "benefit id `not-a-uuid` is not a UUID v4",
        ),
        (
            json!({ "ok": [PRO], "v7": ["0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"] }),
            "entitlements.v7",
            "benefit id `0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c` is not a UUID v4",
        ),
        (
            json!({ "pro": [] }),
            "entitlements.pro",
            "needs at least one benefit id",
        ),
        (
            json!({ "": [PRO] }),
            "entitlements.",
            "feature names must have 1-64 characters",
        ),
        (
            json!({ " pro": [PRO] }),
            "entitlements. pro",
            "must not start or end with spaces",
        ),
        (
            json!({ "pro": [1] }),
            "entitlements.pro",
            "benefit ids must be strings",
        ),
        (
            json!({ "pro": PRO }),
            "entitlements.pro",
            "expected a list of benefit ids",
        ),
        (
            json!({ "pro": { "benefit": [PRO] } }),
            "entitlements.pro",
            "unknown key `benefit` (expected benefits, metered)",
        ),
        (
            json!({ "pro": { "metered": true } }),
            "entitlements.pro",
            "expected a list of benefit ids",
        ),
        (
            json!({ "pro": { "benefits": [PRO], "meterd": true } }),
            "entitlements.pro",
            "unknown key `meterd`",
        ),
        (
            json!({ "pro": { "benefits": [PRO], "metered": "yes" } }),
            "entitlements.pro",
            "metered must be true or false",
        ),
        (json!([["pro", [PRO]]]), "entitlements", "must be an object"),
        (json!("pro"), "entitlements", "must be an object"),
    ];
    for (features, field, detail) in cases {
        let Err(e) = core(features.clone()) else {
            panic!("{features} was accepted")
        };
        assert_eq!(prop(&e, "code"), "invalid_input", "{features}");
        assert_eq!(prop(&e, "kind"), "error");
        assert_eq!(prop(&e, "field"), field, "{features}");
        let text = prop(&e, "detail").as_string().unwrap();
        assert!(text.starts_with(&format!("{field}: ")), "{text}");
        assert!(text.contains(detail), "{features}: {text}");
    }
    // Benefit ids in any case; no map, or null, is an empty map.
    assert!(core(json!({ "pro": [PRO.to_uppercase()] })).is_ok());
    assert!(core(Value::Null).is_ok());
    assert!(core(json!({})).is_ok());
}

#[wasm_bindgen_test]
async fn a_licensed_result_carries_every_answer() {
    let c = core(features()).unwrap();
    let key = new_key(
        emulator(),
        json!({ "benefit_id": PRO, "limit_usage": 10, "usage": 7 }),
    )
    .await;
    let checked = resolved(c.check(key.clone())).await;
    let f = &checked["features"];
    assert_eq!(
        f["listed"]["pro_export"],
        json!({ "feature": "pro_export", "granted": true, "why": "granted", "licenseReason": null, "remainingUsage": null, "source": "online" })
    );
    assert_eq!(f["listed"]["api_calls"]["remainingUsage"], 3);
    assert_eq!(f["listed"]["team_sync"]["why"], "not_granted_by_benefit");
    assert_eq!(f["listed"].as_object().unwrap().len(), 3);
    assert_eq!(
        f["unlisted"],
        json!({ "feature": "", "granted": false, "why": "unknown_feature", "licenseReason": null, "remainingUsage": null, "source": "online" })
    );
    // Fresh: answered from the cache, the same answers.
    let again = resolved(c.check(key.clone())).await;
    assert_eq!(again["source"], "cache");
    assert_eq!(again["features"]["listed"]["api_calls"]["granted"], true);
    assert_eq!(again["features"]["listed"]["api_calls"]["source"], "cache");

    let validated = resolved(c.validate(key, String::new())).await;
    assert_eq!(
        validated["features"]["listed"]["pro_export"]["source"],
        "online"
    );
    assert_eq!(
        validated["features"]["listed"]["api_calls"]["remainingUsage"],
        3
    );
}

#[wasm_bindgen_test]
async fn has_feature_answers_any_verdict_and_rejects_only_errors() {
    let c = core(features()).unwrap();
    let team = new_key(emulator(), json!({ "benefit_id": TEAM })).await;
    let a = resolved(c.has_feature(team.clone(), "team_sync".into())).await;
    assert_eq!(
        a,
        json!({ "feature": "team_sync", "granted": true, "why": "granted", "licenseReason": null, "remainingUsage": null, "source": "online" })
    );
    let a = resolved(c.has_feature(team.clone(), "time_travel".into())).await;
    assert_eq!(
        (&a["feature"], &a["why"]),
        (&json!("time_travel"), &json!("unknown_feature"))
    );

    // A denied license resolves, not granted, with the license's reason.
    let revoked = new_key(
        emulator(),
        json!({ "benefit_id": TEAM, "status": "revoked" }),
    )
    .await;
    let a = resolved(c.has_feature(revoked, "team_sync".into())).await;
    assert_eq!(
        a,
        json!({ "feature": "team_sync", "granted": false, "why": "license_not_valid", "licenseReason": "inactive", "remainingUsage": null, "source": null })
    );
    // So does an unverified one (Polar unreachable, nothing cached).
    let options = json!({ "organizationId": ORG, "baseUrl": "http://127.0.0.1:9", "timeout": 2 });
    let offline = Core::new(&options.to_string(), host(&features())).unwrap();
    let a = resolved(offline.has_feature(team, "team_sync".into())).await;
    assert_eq!(
        (&a["granted"], &a["licenseReason"]),
        (&json!(false), &json!("offline"))
    );

    // An error-class reason rejects: no verdict answers a bad key.
    let e = JsFuture::from(c.has_feature(String::new(), "team_sync".into()))
        .await
        .unwrap_err();
    assert_eq!(prop(&e, "code"), "invalid_input");
    assert_eq!(prop(&e, "field"), "key");
}
