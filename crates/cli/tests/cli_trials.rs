//! Trials through the `polar-license` binary (`check --trial DAYS`, `--trial-benefit ID`),
//! against the emulator over loopback: with no key the first check starts a local trial
//! (outcome `trial`, exit 0, `trial.days_left`), it counts down, a clock set back during it is
//! `clock_rollback` (exit 3), it ends (`invalid_input` field `key`, exit 2, `trial.state`
//! ended), an edited record is refused; a key of a named trial benefit is licensed with
//! `trial` and its end; a revoked one is not a trial. Time moves with the hidden
//! `POLAR_LICENSE_CLOCK_OFFSET` hook.

use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::{rfc3339, Launch, World};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const DAY: i64 = 86_400;

/// `polar-license --json ARGS…` at clock offset `offset`: the exit code and the answer.
fn run(w: &World, offset: i64, args: &[&str]) -> (i32, Value) {
    w.cli_json(BIN, offset, args)
}

/// [`run`], which must exit `code` with the reason `reason`: the answer.
#[track_caller]
fn run_exits(w: &World, offset: i64, args: &[&str], code: i32, reason: &str) -> Value {
    let (got, v) = run(w, offset, args);
    assert_eq!((got, v["reason"].as_str()), (code, Some(reason)), "{v}");
    v
}

#[test]
fn check_trial_starts_counts_down_refuses_a_clock_set_back_and_ends() {
    let w = World::new("cli-trial");
    let trial = ["check", "--trial", "14"];

    let (code, v) = run(&w, 0, &trial);
    assert_eq!((code, v["outcome"].as_str()), (0, Some("trial")), "{v}");
    assert_eq!(v["trial"]["state"], "active", "{v}");
    assert_eq!(v["trial"]["local"], true, "{v}");
    assert_eq!(v["trial"]["days_left"], 14, "{v}");
    let ends = v["trial"]["ends_at"].as_str().expect("ends_at").to_string();

    let (code, v) = run(&w, 3 * DAY + 60, &trial);
    assert_eq!(
        (code, v["trial"]["days_left"].as_i64()),
        (0, Some(11)),
        "{v}"
    );
    assert_eq!(v["trial"]["ends_at"].as_str(), Some(ends.as_str()), "{v}");

    // The clock set back two days: refused, clock_rollback, exit 3.
    let v = run_exits(&w, DAY, &trial, 3, "clock_rollback");
    assert_eq!(v["trial"]["state"], "refused", "{v}");

    // After 14 days: ended, the answer of a check with no key (exit 2).
    let v = run_exits(&w, 14 * DAY + 60, &trial, 2, "invalid_input");
    assert_eq!(v["field"].as_str(), Some("key"), "{v}");
    assert_eq!(v["trial"]["state"], "ended", "{v}");
    assert_eq!(v["trial"]["days_left"], 0, "{v}");

    // The record edited (its start moved on): refused, not restarted.
    let file = std::fs::read_dir(&w.dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().contains("trial-") && p.extension().is_some_and(|e| e == "cache")
        })
        .expect("the trial record");
    let text = std::fs::read_to_string(&file).expect("read");
    let start: i64 = text
        .lines()
        .nth(1)
        .expect("start")
        .parse()
        .expect("a number");
    std::fs::write(
        &file,
        text.replacen(&start.to_string(), &(start + 14 * DAY).to_string(), 1),
    )
    .expect("write");
    let (code, v) = run(&w, 14 * DAY + 120, &trial);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["trial"]["state"], "refused", "{v}");

    // A bad number of days: invalid_input, field trial, no request.
    let (code, v) = run(&w, 0, &["check", "--trial", "0"]);
    assert_eq!((code, v["field"].as_str()), (2, Some("trial")), "{v}");
    assert_eq!(w.requests(), 0);
}

#[test]
fn check_with_a_trial_benefit_reports_the_key_as_a_trial_and_a_revoked_key_as_none() {
    let (w, expires) = World::with_key_expiring("cli-trial-key", 10 * DAY);
    let (code, a) = run(&w, 0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
    assert_eq!(code, 0, "{a}");
    let benefit = a["license"]["benefit_id"]
        .as_str()
        .expect("benefit")
        .to_string();

    // No trial stated: no field.
    let (code, v) = run(&w, 0, &["check", "--key", DEMO_KEY]);
    assert_eq!(code, 0, "{v}");
    assert!(v.get("trial").is_none(), "{v}");
    // Another benefit named: licensed, not a trial.
    let other = "7f3c1e2a-9b4d-4c8e-a1f2-3d4e5f6a7b8c";
    let (code, v) = run(
        &w,
        0,
        &["check", "--key", DEMO_KEY, "--trial-benefit", other],
    );
    assert_eq!((code, v["outcome"].as_str()), (0, Some("licensed")), "{v}");
    assert_eq!(v["trial"], Value::Null, "{v}");
    // Its own benefit named: licensed, a trial ending at the key's expiry.
    let args = ["check", "--key", DEMO_KEY, "--trial-benefit", &benefit];
    let (code, v) = run(&w, 0, &args);
    assert_eq!((code, v["outcome"].as_str()), (0, Some("licensed")), "{v}");
    assert_eq!(v["trial"]["local"], false, "{v}");
    assert_eq!(v["trial"]["state"], "active", "{v}");
    assert_eq!(v["trial"]["days_left"], 10, "{v}");
    assert_eq!(
        v["trial"]["ends_at"].as_str(),
        Some(rfc3339(expires).as_str())
    );

    // Revoked: denied (exit 1), no trial.
    w.revoke();
    let v = run_exits(&w, 2 * 3600, &args, 1, "inactive");
    assert_eq!(v["trial"], Value::Null, "{v}");
}

/// `check --trial N --feature X` with no key answers as `check --trial` does (the same trial,
/// started or counted down), with the feature rule applied to that answer as the Rust face's
/// `has_feature` applies it: a local trial is no license, so no feature is granted by it
/// (`license_not_valid`), and the exit is 1 while the trial runs (never 0: a script's
/// `check --feature X && …` does not unlock X), the trial's own exit once it ended (2) or the
/// clock was set back (3). `--feature` still needs `--entitlements`, before any trial starts.
#[test]
fn check_trial_with_a_feature_and_no_key_answers_the_trial_and_grants_no_feature() {
    use polar_license_testkit::features::map_json;
    let w = World::new("cli-trial-feature");
    let map = map_json();
    let with_feature = [
        "--entitlements",
        &map,
        "check",
        "--trial",
        "14",
        "--feature",
        "pro_export",
    ];
    let trial_files = |w: &World| {
        std::fs::read_dir(&w.dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("trial-"))
                    .count()
            })
            .unwrap_or(0)
    };

    // No map: invalid input (exit 2), and no trial started.
    let v = run_exits(
        &w,
        0,
        &["check", "--trial", "14", "--feature", "pro_export"],
        2,
        "invalid_input",
    );
    assert_eq!(v["field"].as_str(), Some("entitlements"), "{v}");
    assert_eq!(trial_files(&w), 0, "no trial started");

    // The first check starts the trial: `trial`, its days, the feature not granted, exit 1.
    let (code, v) = run(&w, 0, &with_feature);
    assert_eq!((code, v["outcome"].as_str()), (1, Some("trial")), "{v}");
    assert_eq!(v["trial"]["state"], "active", "{v}");
    assert_eq!(v["trial"]["local"], true, "{v}");
    assert_eq!(v["trial"]["days_left"], 14, "{v}");
    assert_eq!(v["feature"]["name"], "pro_export", "{v}");
    assert_eq!(v["feature"]["granted"], false, "{v}");
    assert_eq!(v["feature"]["why"], "license_not_valid", "{v}");
    let ends = v["trial"]["ends_at"].as_str().expect("ends_at").to_string();

    // The same trial as `check --trial` without the feature: counted from the same start.
    let (code, v) = run(&w, 3 * DAY + 60, &["check", "--trial", "14"]);
    assert_eq!(
        (code, v["trial"]["days_left"].as_i64()),
        (0, Some(11)),
        "{v}"
    );
    assert_eq!(v["trial"]["ends_at"].as_str(), Some(ends.as_str()), "{v}");
    let (code, v) = run(&w, 4 * DAY + 60, &with_feature);
    assert_eq!(
        (code, v["trial"]["days_left"].as_i64()),
        (1, Some(10)),
        "{v}"
    );

    // In words: the feature's line first, then the trial's.
    let out = w
        .cli(BIN, &w.dir, 4 * DAY + 120)
        .args(with_feature)
        .launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("feature pro_export: not granted (license_not_valid)"),
        "{text}"
    );
    assert!(text.contains("trial: 10 day(s) left"), "{text}");

    // The clock set back: clock_rollback keeps its exit (3).
    let v = run_exits(&w, DAY, &with_feature, 3, "clock_rollback");
    assert_eq!(v["feature"]["granted"], false, "{v}");

    // Ended: the no-key answer (exit 2), the trial ended, the feature not granted.
    let v = run_exits(&w, 14 * DAY + 60, &with_feature, 2, "invalid_input");
    assert_eq!(v["field"].as_str(), Some("key"), "{v}");
    assert_eq!(v["trial"]["state"], "ended", "{v}");
    assert_eq!(v["feature"]["why"], "license_not_valid", "{v}");
}
