//! The command line's entitlements (issue #68 item 2, docs/entitlements.md) as real processes:
//! `polar-license emulator` seeded with a Feature Flag benefit, `polar-license relay serve
//! --store memory --sign-entitlements` in front of it, and `check --json`, `validate --json`
//! and `entitlement NAME` pointed at the relay in signed mode; then the same commands in
//! unsigned mode, straight at the emulator, where no value is known.

use polar_license_emulator::{Seed, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::lease_proxy::{proxy, ALTER, DOWN};
use polar_license_testkit::{clean_command, feature_flag, Launch, ScratchDir};
use serde_json::{json, Value};
use std::process::Output;
use std::time::{Duration, Instant};

mod common;
use common::{customers_subscribed_key, emulator_on, relay_with_store, BIN};

const PRO: &str = "0f6c1f5e-8b2a-4c3d-9e4f-5a6b7c8d9e0f";
/// Granted the PRO flag.
const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
/// Another purchase of the same customer, with no flag.
const BARE: &str = "TIER-9F8E7D6C-5B4A-4392-8180-7F6E5D4C3B2A";

/// The demo seed with a Feature Flag benefit granted to KEY's purchase, and BARE's purchase
/// with none, written to a seed file in `dir`.
fn seed_file(dir: &ScratchDir) -> String {
    let mut seed = Seed::demo();
    seed.benefits.push(feature_flag(
        PRO,
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true}),
    ));
    seed.license_keys.push(customers_subscribed_key(
        KEY,
        "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b",
        &[PRO],
    ));
    seed.license_keys.push(customers_subscribed_key(
        BARE,
        "8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f1a",
        &[],
    ));
    common::seed_file(dir, "seed.json", &seed)
}

/// The client command at `url` with its cache in `dir` (every check asks online), signed
/// mode when `pair` is given.
fn client(url: &str, dir: &ScratchDir, pair: Option<&str>, args: &[&str]) -> Output {
    let cache = dir.path().join("cache");
    let mut cmd = clean_command(BIN);
    cmd.args(["--base-url", url, "--org", DEMO_ORGANIZATION_ID])
        .args(["--cache-dir", cache.to_str().expect("UTF-8")])
        .args(["--no-machine-binding", "--revalidate-after", "0"]);
    if let Some(pair) = pair {
        cmd.args(["--relay-key", pair]);
    }
    cmd.args(args).launch()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("one JSON object ({e}): {o:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn signed_values_reach_check_validate_and_the_entitlement_command() {
    let dir = ScratchDir::new("cli-entitlements");
    let polar = emulator_on(&seed_file(&dir));
    let (relay, pair) = relay_with_store(&dir, &polar, DEMO_TOKEN, &["--sign-entitlements"]);
    let signed = |args: &[&str]| client(&relay.url, &dir, Some(&pair), args);

    // The first answer carries the values (issue #80: the relay reads a customer it holds
    // nothing of before it makes the lease), typed as Polar's metadata.
    let want = json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true});
    let o = signed(&["--json", "check", "--key", KEY]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json_of(&o);
    assert_eq!(v["outcome"], "licensed", "{v}");
    assert_eq!(v["entitlements"], want, "the first check's values: {v}");

    // `validate --json`: the same values, from the lease of its own answer.
    let o = signed(&["--json", "validate", "--key", KEY]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(json_of(&o)["entitlements"], want);

    // `entitlement NAME`: the value alone on stdout, exit 0, each type as Polar has it.
    for (name, printed) in [
        ("max_upload_size", "10"),
        ("role", "editor"),
        ("ratio", "1.5"),
        ("beta", "true"),
    ] {
        let o = signed(&["entitlement", name, "--key", KEY]);
        assert_eq!(o.status.code(), Some(0), "{name}: {o:?}");
        assert_eq!(text(&o.stdout), format!("{printed}\n"), "{name}");
    }
    let o = signed(&["--json", "entitlement", "role", "--key", KEY]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json_of(&o);
    assert_eq!(
        v["entitlement"],
        json!({"name": "role", "value": "editor", "state": "granted"})
    );
    assert_eq!(
        (&v["command"], &v["outcome"]),
        (&json!("entitlement"), &json!("licensed"))
    );

    // A name the flag does not set: exit 4, a clear line on stderr, nothing on stdout.
    let o = signed(&["entitlement", "seats", "--key", KEY]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    // The core's words for the state (issue #80), not the command line's own.
    let absent = polar_license::EntitlementState::Absent
        .message()
        .map(|m| m.text())
        .unwrap_or_default();
    assert!(
        text(&o.stderr).starts_with(&format!("entitlement seats: {absent}")),
        "{o:?}"
    );
    let o = signed(&["--json", "entitlement", "seats", "--key", KEY]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert_eq!(
        json_of(&o)["entitlement"],
        json!({"name": "seats", "value": null, "state": "absent"})
    );

    // Another purchase of the customer, with no flag: the relay signs "none" (an empty
    // object, not null), and any name is absent.
    let start = Instant::now();
    loop {
        let v = json_of(&signed(&["--json", "check", "--key", BARE]));
        assert_eq!(v["outcome"], "licensed", "{v}");
        if !v["entitlements"].is_null() {
            assert_eq!(v["entitlements"], json!({}), "{v}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = signed(&["entitlement", "max_upload_size", "--key", BARE]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");

    // Unsigned mode, straight at the emulator: the key licenses, and no value is known.
    let unsigned_dir = ScratchDir::new("cli-entitlements-unsigned");
    let unsigned = |args: &[&str]| client(&polar.url, &unsigned_dir, None, args);
    let o = unsigned(&["--json", "check", "--key", KEY]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json_of(&o);
    assert_eq!(
        (&v["outcome"], &v["entitlements"]),
        (&json!("licensed"), &Value::Null)
    );
    let o = unsigned(&["--json", "validate", "--key", KEY]);
    assert_eq!(json_of(&o)["entitlements"], Value::Null, "{o:?}");
    let o = unsigned(&["entitlement", "role", "--key", KEY]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    let err = text(&o.stderr);
    // The core's words for the state, not the command line's own (issue #80).
    let said = polar_license::EntitlementState::Unsigned
        .message()
        .map(|m| m.text())
        .unwrap_or_default();
    assert!(
        !said.is_empty() && err.starts_with(&format!("entitlement role: {said}")),
        "{err}"
    );
    let o = unsigned(&["--json", "entitlement", "role", "--key", KEY]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert_eq!(json_of(&o)["entitlement"]["state"], "unknown");

    // A denied key: the check's own answer and exit, never a value.
    let o = signed(&[
        "--json",
        "entitlement",
        "role",
        "--key",
        "TIER-NOT-A-KEY-AT-ALL",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json_of(&o);
    assert_eq!(v["outcome"], "denied", "{v}");
    assert_eq!(
        v["entitlement"],
        json!({"name": "role", "value": null, "state": "not_licensed"})
    );
    assert_eq!(v["entitlements"], Value::Null);
}

// ---- Issue #68: the signed lease verifies offline; a lease whose values were altered is refused

#[test]
fn the_signed_lease_verifies_offline_and_a_lease_with_altered_values_is_refused() {
    let dir = ScratchDir::new("cli-entitlements-offline");
    let polar = emulator_on(&seed_file(&dir));
    let (relay, pair) = relay_with_store(&dir, &polar, DEMO_TOKEN, &["--sign-entitlements"]);
    let proxy = proxy(
        &relay.url,
        b"\"max_upload_size\":10",
        b"\"max_upload_size\":90",
    );
    let want = json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true});
    let cached = ScratchDir::new("cli-entitlements-cached");
    let check = |dir: &ScratchDir| {
        let o = client(
            &proxy.url,
            dir,
            Some(&pair),
            &["--json", "check", "--key", KEY],
        );
        (json_of(&o), o)
    };

    // Through the proxy passing answers as they came: licensed online with the first lease's
    // values (issue #80).
    let (v, o) = check(&cached);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        (&v["source"], &v["entitlements"]),
        (&json!("online"), &want),
        "{v}"
    );

    // Offline: the relay unreachable, the lease kept in the cache verifies with the relay's
    // public key alone, and its values are read.
    proxy.set(DOWN);
    let (v, o) = check(&cached);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        (&v["outcome"], &v["source"]),
        (&json!("licensed"), &json!("cache")),
        "{v}"
    );
    assert_eq!(v["entitlements"], want, "{v}");
    let o = client(
        &proxy.url,
        &cached,
        Some(&pair),
        &["entitlement", "max_upload_size", "--key", KEY],
    );
    assert_eq!(
        (o.status.code(), text(&o.stdout)),
        (Some(0), "10\n".to_string()),
        "{o:?}"
    );

    // Altered on the way (`10` made `90` inside the signed payload): not the relay's lease.
    proxy.set(ALTER);
    // An app with nothing cached: refused, no value read.
    let fresh = ScratchDir::new("cli-entitlements-altered");
    for _ in 0..2 {
        let (v, o) = check(&fresh);
        assert_ne!(
            o.status.code(),
            Some(0),
            "a lease that does not verify licensed: {o:?}"
        );
        assert_ne!(v["outcome"], "licensed", "{v}");
        assert_eq!(v["reason"], "protocol_error", "{v}");
        assert_eq!(v["entitlements"], Value::Null, "{v}");
    }
    let o = client(
        &proxy.url,
        &fresh,
        Some(&pair),
        &["--json", "entitlement", "max_upload_size", "--key", KEY],
    );
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let v = json_of(&o);
    assert_eq!(
        v["entitlement"]["value"],
        Value::Null,
        "the altered value was read: {v}"
    );
    // The app holding the earlier lease: the altered answer is not Polar's; it licenses from
    // its cache with the values of the lease it verified then, never the altered ones.
    let (v, o) = check(&cached);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(v["source"], "cache", "{v}");
    assert_eq!(v["entitlements"], want, "{v}");
    assert!(proxy.edited() >= 3, "the proxy altered the leases");
}
