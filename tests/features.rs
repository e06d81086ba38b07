//! Feature gating through `Licensing` against the emulator: the issue's cases one by one.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::features::{Entitlements, FeatureWhy};
use polar_license::grace::Source;
use polar_license::{Licensing, MachineBinding, Reason};
use polar_license_emulator::{Emulator, Fault, Options, Seed};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const PRO: &str = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const TEAM: &str = "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e";
const BASIC: &str = "2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f";
const PRO_KEY: &str = "PRO-KEY-0000-0000-0001";
const TEAM_KEY: &str = "TEAM-KEY-0000-0000-0001";
const BASIC_KEY: &str = "BASIC-KEY-0000-0000-0001";
const METERED_KEY: &str = "METERED-KEY-0000-0001";
const SPENT_KEY: &str = "SPENT-KEY-0000-0001";
const REVOKED_KEY: &str = "REVOKED-KEY-0000-0001";

fn seed() -> Seed {
    Seed::from_json(
        &json!({
            "organization_id": ORG,
            "license_keys": [
                {"key": PRO_KEY, "benefit_id": PRO},
                {"key": TEAM_KEY, "benefit_id": TEAM},
                {"key": BASIC_KEY, "benefit_id": BASIC},
                {"key": METERED_KEY, "benefit_id": PRO, "limit_usage": 10, "usage": 7},
                {"key": SPENT_KEY, "benefit_id": PRO, "limit_usage": 10, "usage": 10},
                {"key": REVOKED_KEY, "benefit_id": PRO, "status": "revoked"}
            ]
        })
        .to_string(),
    )
    .unwrap()
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

struct World {
    polar: Emulator,
    licensing: Licensing,
    clock: Arc<AtomicI64>,
    dir: std::path::PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn world(name: &str) -> World {
    let polar = Emulator::start(seed(), Options::default()).unwrap();
    let clock = Arc::new(AtomicI64::new(1_790_000_000));
    let dir = std::env::temp_dir().join(format!("polar-features-{name}-{}", std::process::id()));
    let c = Arc::clone(&clock);
    let licensing = Licensing::builder(ORG)
        .base_url(polar.url())
        .cache_dir(&dir)
        .machine_binding(MachineBinding::Off)
        .entitlements(map())
        .clock(move || c.load(Ordering::SeqCst))
        .build()
        .unwrap();
    World {
        polar,
        licensing,
        clock,
        dir,
    }
}

#[test]
fn granted_by_one_of_several_benefits_and_not_by_another() {
    let w = world("tiers");
    let l = &w.licensing;
    let pro = l.check(PRO_KEY);
    let team = l.check(TEAM_KEY);
    let basic = l.check(BASIC_KEY);
    assert!(l.has_feature(&pro, "pro_export").granted);
    assert!(l.has_feature(&team, "pro_export").granted);
    assert!(l.has_feature(&team, "team_sync").granted);
    let no = l.has_feature(&pro, "team_sync");
    assert_eq!(
        (no.granted, no.why),
        (false, FeatureWhy::NotGrantedByBenefit)
    );
    let no = l.has_feature(&basic, "pro_export");
    assert_eq!(
        (no.granted, no.why),
        (false, FeatureWhy::NotGrantedByBenefit)
    );
    let unknown = l.has_feature(&pro, "time_travel");
    assert_eq!(
        (unknown.granted, unknown.why),
        (false, FeatureWhy::UnknownFeature)
    );
}

#[test]
fn a_denied_license_grants_nothing() {
    let w = world("denied");
    let revoked = w.licensing.check(REVOKED_KEY);
    let access = w.licensing.has_feature(&revoked, "pro_export");
    assert!(!access.granted);
    assert_eq!(access.why, FeatureWhy::LicenseNotValid);
    assert_eq!(access.license_reason, Some(Reason::Inactive));
}

#[test]
fn a_cached_verdict_within_grace_answers_like_an_online_one() {
    let w = world("grace");
    let online = w.licensing.check(PRO_KEY);
    let a = w.licensing.has_feature(&online, "pro_export");
    assert_eq!((a.granted, a.source), (true, Some(Source::Online)));

    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.fetch_add(3 * 24 * 3600, Ordering::SeqCst);
    let cached = w.licensing.check(PRO_KEY);
    let a = w.licensing.has_feature(&cached, "pro_export");
    assert_eq!((a.granted, a.source), (true, Some(Source::Cache)));
    let a = w.licensing.has_feature(&cached, "team_sync");
    assert!(!a.granted);

    // Past the grace the verdict does not license, so nothing is granted.
    w.clock.fetch_add(5 * 24 * 3600, Ordering::SeqCst);
    let expired = w.licensing.check(PRO_KEY);
    let a = w.licensing.has_feature(&expired, "pro_export");
    assert_eq!(
        (a.granted, a.license_reason),
        (false, Some(Reason::GraceExpired))
    );
}

#[test]
fn metered_features_carry_the_remaining_count() {
    let w = world("metered");
    let v = w.licensing.check(METERED_KEY);
    let a = w.licensing.has_feature(&v, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, Some(3)));
    // Not metered: no count, granted whatever the usage.
    let spent = w.licensing.check(SPENT_KEY);
    let a = w.licensing.has_feature(&spent, "pro_export");
    assert_eq!((a.granted, a.remaining_usage), (true, None));
    let a = w.licensing.has_feature(&spent, "api_calls");
    assert_eq!(
        (a.granted, a.why, a.remaining_usage),
        (false, FeatureWhy::UsageExhausted, Some(0))
    );
    // Unlimited keys are granted metered features with no count.
    let pro = w.licensing.check(PRO_KEY);
    let a = w.licensing.has_feature(&pro, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, None));
}

#[test]
fn an_invalid_map_is_rejected_naming_the_entry() {
    let field = |r: Result<Entitlements, polar_license::Error>| match r {
        Err(polar_license::Error::InvalidInput { field, message }) => format!("{field}: {message}"),
        other => panic!("expected invalid input, got {other:?}"),
    };
    assert_eq!(
        field(Entitlements::new().grant("pro", ["not-a-uuid"])),
        "entitlements.pro: benefit id `not-a-uuid` is not a UUID v4"
    );
    assert_eq!(
        field(Entitlements::new().grant("pro", ["0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"])),
        "entitlements.pro: benefit id `0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c` is not a UUID v4"
    );
    assert!(field(Entitlements::new().grant("", [PRO])).starts_with("entitlements.: "));
    assert!(field(Entitlements::new().grant("pro", Vec::<String>::new())).contains("at least one"));
    assert!(field(Entitlements::new().grant(" pro", [PRO])).contains("spaces"));
    assert!(field(Entitlements::from_json(r#"{"pro": [1]}"#)).starts_with("entitlements:"));
    assert!(field(Entitlements::from_json(&format!(
        r#"{{"ok": ["{PRO}"], "bad": ["x"]}}"#
    )))
    .starts_with("entitlements.bad:"));
    // Benefit ids are compared case-insensitively (canonical form).
    let map = Entitlements::new()
        .grant("pro", [PRO.to_uppercase()])
        .unwrap();
    assert_eq!(map.features().collect::<Vec<_>>(), ["pro"]);
}
