//! `polar-license check --feature` through the real binary against the emulator: granted by
//! one of several benefits, not by another, unknown feature, denied license, a cached verdict
//! within grace, metered with uses left and with none, and an invalid map.

use polar_license_emulator::Fault;
use polar_license_testkit::features::{self, map_json as map, ORG, PRO};
use polar_license_testkit::{clean_command, Launch, World};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// This suite's world: the testkit's, with the features seed.
fn world(name: &str) -> World {
    World::with_seed(&format!("cli-features-{name}"), features::seed())
}

/// This suite's command on the testkit's world.
trait Here {
    fn feature(&self, key: &str, feature: &str, entitlements: &str, offset: i64) -> (i32, Value);
}

impl Here for World {
    /// `check --feature` with `--json`: (exit code, the JSON object).
    fn feature(&self, key: &str, feature: &str, entitlements: &str, offset: i64) -> (i32, Value) {
        let out = clean_command(BIN)
            .env("POLAR_LICENSE_CLOCK_OFFSET", offset.to_string())
            .args([
                "--json",
                "--base-url",
                &self.polar.url(),
                "--org",
                ORG,
                "--cache-dir",
            ])
            .arg(&self.dir)
            .args(["--no-machine-binding", "--entitlements", entitlements])
            .args(["check", "--key", key, "--feature", feature])
            .launch();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code().unwrap(), v)
    }
}

#[test]
fn tiers_unknown_features_and_denied_licenses() {
    let w = world("tiers");
    let (code, v) = w.feature("TEAM-KEY-0000-0000-0001", "pro_export", &map(), 0);
    assert_eq!((code, &v["feature"]["granted"]), (0, &json!(true)), "{v}");
    let (code, v) = w.feature("PRO-KEY-0000-0000-0001", "team_sync", &map(), 0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["feature"]["why"], "not_granted_by_benefit");
    assert_eq!(v["outcome"], "licensed", "the license itself is fine");
    let (code, v) = w.feature("PRO-KEY-0000-0000-0001", "time_travel", &map(), 0);
    assert_eq!((code, &v["feature"]["why"]), (1, &json!("unknown_feature")));
    let (code, v) = w.feature("REVOKED-KEY-0000-0001", "pro_export", &map(), 0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["feature"]["why"], "license_not_valid");
    assert_eq!(v["reason"], "inactive");
}

#[test]
fn cached_verdict_within_grace_and_past_it() {
    let w = world("grace");
    assert_eq!(
        w.feature("PRO-KEY-0000-0000-0001", "pro_export", &map(), 0)
            .0,
        0
    );
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let (code, v) = w.feature("PRO-KEY-0000-0000-0001", "pro_export", &map(), 3 * 86_400);
    assert_eq!((code, &v["source"]), (0, &json!("cache")), "{v}");
    let (code, v) = w.feature("PRO-KEY-0000-0000-0001", "pro_export", &map(), 8 * 86_400);
    assert_eq!((code, &v["reason"]), (3, &json!("grace_expired")), "{v}");
    assert_eq!(v["feature"]["granted"], false);
}

#[test]
fn metered_features() {
    let w = world("metered");
    let (code, v) = w.feature("METERED-KEY-0000-0001", "api_calls", &map(), 0);
    assert_eq!(
        (code, &v["feature"]["remaining_usage"]),
        (0, &json!(3)),
        "{v}"
    );
    let (code, v) = w.feature("SPENT-KEY-0000-0001", "api_calls", &map(), 0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["feature"]["why"], "usage_exhausted");
    assert_eq!(v["feature"]["remaining_usage"], 0);
}

#[test]
fn an_invalid_map_is_rejected_naming_the_entry() {
    let w = world("invalid");
    let bad = json!({"pro_export": [PRO], "broken": ["not-a-uuid"]}).to_string();
    let (code, v) = w.feature("PRO-KEY-0000-0000-0001", "pro_export", &bad, 0);
    assert_eq!((code, &v["reason"]), (2, &json!("invalid_input")), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("entitlements.broken:"),
        "{v}"
    );
    assert_eq!(w.polar.request_count(), 0);
}
