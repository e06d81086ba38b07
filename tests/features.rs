//! Feature gating through `Licensing` against the emulator: the issue's cases one by one.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::features::{Entitlements, FeatureWhy};
use polar_license::grace::Source;
use polar_license::{Licensing, MachineBinding, Reason};
use polar_license_emulator::Fault;
use polar_license_testkit::features::{
    self, map_json, BASIC_KEY, METERED_KEY, PRO, PRO_KEY, REVOKED_KEY, SPENT_KEY, TEAM_KEY,
};
use polar_license_testkit::World;

fn map() -> Entitlements {
    Entitlements::from_json(&map_json()).unwrap()
}

/// The features world and its client: no machine binding, the map's entitlements.
fn world(name: &str) -> (World, Licensing) {
    let w = World::with_seed(&format!("features-{name}"), features::seed());
    let licensing = w
        .licensing_builder(MachineBinding::Off)
        .entitlements(map())
        .build()
        .unwrap();
    (w, licensing)
}

#[test]
fn granted_by_one_of_several_benefits_and_not_by_another() {
    let (_w, licensing) = world("tiers");
    let l = &licensing;
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
    let (_w, licensing) = world("denied");
    let revoked = licensing.check(REVOKED_KEY);
    let access = licensing.has_feature(&revoked, "pro_export");
    assert!(!access.granted);
    assert_eq!(access.why, FeatureWhy::LicenseNotValid);
    assert_eq!(access.license_reason, Some(Reason::Inactive));
}

#[test]
fn a_cached_verdict_within_grace_answers_like_an_online_one() {
    let (w, licensing) = world("grace");
    let online = licensing.check(PRO_KEY);
    let a = licensing.has_feature(&online, "pro_export");
    assert_eq!((a.granted, a.source), (true, Some(Source::Online)));

    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(3 * 24 * 3600);
    let cached = licensing.check(PRO_KEY);
    let a = licensing.has_feature(&cached, "pro_export");
    assert_eq!((a.granted, a.source), (true, Some(Source::Cache)));
    let a = licensing.has_feature(&cached, "team_sync");
    assert!(!a.granted);

    // Past the grace the verdict does not license, so nothing is granted.
    w.clock.advance(5 * 24 * 3600);
    let expired = licensing.check(PRO_KEY);
    let a = licensing.has_feature(&expired, "pro_export");
    assert_eq!(
        (a.granted, a.license_reason),
        (false, Some(Reason::GraceExpired))
    );
}

#[test]
fn metered_features_carry_the_remaining_count() {
    let (_w, licensing) = world("metered");
    let v = licensing.check(METERED_KEY);
    let a = licensing.has_feature(&v, "api_calls");
    assert_eq!((a.granted, a.remaining_usage), (true, Some(3)));
    // Not metered: no count, granted whatever the usage.
    let spent = licensing.check(SPENT_KEY);
    let a = licensing.has_feature(&spent, "pro_export");
    assert_eq!((a.granted, a.remaining_usage), (true, None));
    let a = licensing.has_feature(&spent, "api_calls");
    assert_eq!(
        (a.granted, a.why, a.remaining_usage),
        (false, FeatureWhy::UsageExhausted, Some(0))
    );
    // Unlimited keys are granted metered features with no count.
    let pro = licensing.check(PRO_KEY);
    let a = licensing.has_feature(&pro, "api_calls");
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
