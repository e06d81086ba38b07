//! Perpetual fallback through the `polar-license` binary (`check --released YYYY-MM-DD`),
//! against the emulator over loopback: an expired key licenses a build released before its
//! expiry, with `fallback: true` and `paid_through` in `--json`, exit 0; a newer build is
//! `expired` (exit 1) as without the flag; a revoked key never falls back; a date that is no
//! date is `invalid_input` (field `released`, exit 2). Time moves with the hidden
//! `POLAR_LICENSE_CLOCK_OFFSET` hook, the emulator's clock with it.

use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::{rfc3339, unix_now, World};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const DAY: i64 = 86_400;

fn day(at: i64) -> String {
    rfc3339(at)[..10].to_string()
}

/// `polar-license --json ARGS…` at clock offset `offset`: the exit code and the answer.
fn run(w: &World, offset: i64, args: &[&str]) -> (i32, Value) {
    w.cli_json(BIN, offset, args)
}

fn check(w: &World, offset: i64, released: Option<&str>) -> (i32, Value) {
    let mut args = vec!["check", "--key", DEMO_KEY];
    if let Some(date) = released {
        args.extend_from_slice(&["--released", date]);
    }
    run(w, offset, &args)
}

#[test]
fn check_released_licenses_older_builds_of_an_expired_key() {
    let (w, expires) = World::with_key_expiring("cli-perpetual", 30 * DAY);
    let (code, a) = run(&w, 0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
    assert_eq!(code, 0, "{a}");
    let old = day(unix_now() - 10 * DAY);
    let new = day(expires + DAY);

    // Before the expiry: licensed, with the paid-through date; no flag, no new field.
    let (code, v) = check(&w, 0, Some(&old));
    assert_eq!((code, v["outcome"].as_str()), (0, Some("licensed")), "{v}");
    assert_eq!(v["fallback"], false, "{v}");
    assert_eq!(v["paid_through"].as_str(), Some(rfc3339(expires).as_str()));
    assert_eq!(v["released"].as_str(), Some(old.as_str()));
    let (code, v) = check(&w, 0, None);
    assert_eq!(code, 0, "{v}");
    assert!(
        v.get("fallback").is_none() && v.get("paid_through").is_none(),
        "{v}"
    );

    // Past the expiry: the older build is licensed as a fallback (exit 0).
    let later = 31 * DAY;
    let (code, v) = check(&w, later, Some(&old));
    assert_eq!((code, v["outcome"].as_str()), (0, Some("licensed")), "{v}");
    assert_eq!(v["fallback"], true, "{v}");
    assert_eq!(v["source"].as_str(), Some("online"), "{v}");
    assert_eq!(v["paid_through"].as_str(), Some(rfc3339(expires).as_str()));
    assert_eq!(v["license"]["display_key"].as_str(), Some("****-4C5B6A"));

    // A newer build, or no release date: expired, exit 1, as without the flag.
    let (code, v) = check(&w, later, Some(&new));
    assert_eq!((code, v["reason"].as_str()), (1, Some("expired")), "{v}");
    assert_eq!(v["fallback"], false, "{v}");
    let (code, v) = check(&w, later, None);
    assert_eq!((code, v["reason"].as_str()), (1, Some("expired")), "{v}");
    assert!(v.get("fallback").is_none(), "{v}");

    // Revoked (a refund): never a fallback.
    w.revoke();
    let (code, v) = check(&w, later + DAY, Some(&old));
    assert_eq!((code, v["reason"].as_str()), (1, Some("inactive")), "{v}");
    assert_eq!(v["fallback"], false, "{v}");
}

#[test]
fn check_released_refuses_what_is_no_date() {
    let w = World::new("cli-perpetual-bad");
    let (code, v) = check(&w, 0, Some("2026-02-30"));
    assert_eq!(
        (code, v["reason"].as_str()),
        (2, Some("invalid_input")),
        "{v}"
    );
    assert_eq!(v["field"].as_str(), Some("released"), "{v}");
    assert_eq!(w.requests(), 0);
}
