//! Why a key stopped (issue #68) on the command line: `polar-license emulator` and `polar-license
//! relay serve --store … --webhook-secret …` as real processes, Polar's webhooks delivered to
//! the relay, and `polar-license validate` through it printing the denial's detail (`--json`'s
//! `stopped`, the text's `stopped:` and `what to do:` lines), and `polar-license activate`
//! refused alike. The case is a rotation: the old string answers Polar's 404 "Not found",
//! which the relay explains as `rotated`.

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http;
use polar_license_testkit::{
    clean_command, emulator_served, relay_keygen, relay_serve, Launch, ScratchDir, Served,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let answer = http::bearer_call(method, url, DEMO_TOKEN, body);
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

/// `polar-license ARGS` through `relay`, `--json` or not: its exit code and stdout.
fn through(relay: &Served, cache: &str, json: bool, args: &[&str]) -> (i32, String) {
    let mut cmd = clean_command(BIN);
    cmd.args(["--base-url", &relay.url, "--org", DEMO_ORGANIZATION_ID])
        .args(["--cache-dir", cache]);
    if json {
        cmd.arg("--json");
    }
    let o = cmd.args(args).launch();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

/// `polar-license validate` of `key` through `relay`: its exit code and stdout.
fn validate(relay: &Served, cache: &str, key: &str, json: bool) -> (i32, String) {
    through(relay, cache, json, &["validate", "--key", key])
}

/// `polar-license activate` of `key` through `relay`: its exit code and stdout.
fn activate(relay: &Served, cache: &str, key: &str, json: bool) -> (i32, String) {
    through(
        relay,
        cache,
        json,
        &["activate", "--key", key, "--label", "lifecycle box"],
    )
}

#[test]
fn validate_prints_why_the_key_stopped() {
    let dir = ScratchDir::new("cli-lifecycle");
    let (key, _) = relay_keygen(BIN, &dir, "relay.key");
    let key = key.as_str();
    let store = dir.path().join("verdicts.redb");
    let cache = dir.path().join("cache");
    let cache = cache.to_str().expect("UTF-8");
    let polar = emulator_served(BIN);
    let (secret, id) = http::webhook_endpoint(
        &polar.url,
        DEMO_TOKEN,
        &["benefit_grant.updated", "benefit_grant.revoked"],
    );
    let relay = Served::start_with_banner(
        relay_serve(BIN, &polar.url, key)
            .args(["--port", "0", "--store", store.to_str().expect("UTF-8")])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
            .env("POLAR_WEBHOOK_SECRET", &secret),
        "serving until killed",
    )
    .0;
    http::point_endpoint(&polar.url, DEMO_TOKEN, &id, &relay.url);

    // Licensed through the relay (which learns the string's key id), then rotated.
    let (code, out) = validate(&relay, cache, DEMO_KEY, true);
    assert_eq!(code, 0, "{out}");
    let (status, rotated) = call(
        "POST",
        &format!("{}/__emulator/keys/{DEMO_KEY}/rotate", polar.url),
        None,
    );
    assert_eq!(status, 200, "{rotated}");

    // The webhook arrives within moments: the old string is denied with its detail.
    let deadline = Instant::now() + Duration::from_secs(15);
    let v = loop {
        let (code, out) = validate(&relay, cache, DEMO_KEY, true);
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        if v["stopped"].is_object() || Instant::now() > deadline {
            assert_eq!(code, 1, "{out}");
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["outcome"], "denied", "{v}");
    assert_eq!(v["reason"], "not_found", "the reason stays Polar's: {v}");
    assert_eq!(v["stopped"]["kind"], "rotated", "{v}");
    assert!(v["stopped"]["at"].is_string(), "{v}");
    assert_eq!(v["stopped"]["until"], Value::Null, "{v}");
    // The text output says it, with the next step.
    let (code, out) = validate(&relay, cache, DEMO_KEY, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  stopped: rotated (since 20"), "{out}");
    // The words are the core's for the detail, as every face says them (its user_message,
    // tests/vectors/stopped-messages.json).
    let said = v["user_message"].as_str().expect("user_message");
    assert!(
        said.starts_with("This key was replaced by a new one"),
        "{v}"
    );
    // The text says the core's sentence and its next step apart (`next_step` in JSON).
    let step = v["next_step"].as_str().expect("next_step");
    assert!(said.ends_with(&step[1..]), "{v}");
    assert!(out.contains(&format!("  what to do: {step}\n")), "{out}");
    assert!(
        out.contains("  This key was replaced by a new one.\n"),
        "{out}"
    );
    // A refused activation of the old string carries it too (issue #68): JSON and text.
    let (code, out) = activate(&relay, cache, DEMO_KEY, true);
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        (&v["command"], &v["outcome"]),
        (&json!("activate"), &json!("denied")),
        "{v}"
    );
    assert_eq!(v["reason"], "not_found", "the reason stays Polar's: {v}");
    assert_eq!(v["stopped"]["kind"], "rotated", "{v}");
    assert!(v["stopped"]["at"].is_string(), "{v}");
    let (code, out) = activate(&relay, cache, DEMO_KEY, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  stopped: rotated (since 20"), "{out}");
    // The new string licenses, and a denial without a detail says `stopped: null`.
    let new = rotated["key"].as_str().expect("the new key");
    assert_eq!(validate(&relay, cache, new, true).0, 0);
    let (code, out) = validate(&relay, cache, "NOT-A-KEY-OF-ANYONE", true);
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!((code, &v["stopped"]), (1, &Value::Null), "{v}");
}
