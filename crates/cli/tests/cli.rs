//! The `polar-license` binary against the embedded emulator on loopback: exit codes, the
//! `--json` object, and every row of docs/polar-api.md §6.4 reachable from the command line.

use polar_license_emulator::{Emulator, Fault, Options, Seed};
use polar_license_testkit::refused::{self, DISABLED, EXPIRED, NO_ACTIVATIONS, REVOKED};
use polar_license_testkit::{clean_command, expect_answer_keys, Launch, ScratchDir, Served};
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const OTHER_ORG: &str = "5e4f3a2b-1c0d-4e9f-8a7b-6c5d4e3f2a1b";
const V7_ORG: &str = "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c";
const BENEFIT: &str = "45f87221-45ae-4f65-8dbd-073318bc6372";
const OTHER_BENEFIT: &str = "9b1d7c2e-3f4a-4b5c-8d6e-7f8091a2b3c4";
const CUSTOMER: &str = "854fa59b-860f-4262-a6ac-ae0388a7f579";
const OTHER_CUSTOMER: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const UNKNOWN_ACTIVATION: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const KEY_SHOWN: &str = "****-6ED415";
const TOKEN: &str = "polar_oat_test_token_0123456789";

const NOT_FOUND: &str = "Not found";
const INACTIVE: &str = "License key is no longer active.";
const INACTIVE_ACTIVATE: &str =
    "License key is no longer active. This license key can not be activated.";
const EXPIRED_DETAIL: &str = "License key has expired.";
const MISMATCH: &str = "License key does not match required conditions";
const NO_SUPPORT: &str = "This license key does not support activations. Use the /validate endpoint instead to check license validity.";
const LIMIT: &str = "License key activation limit already reached";

thread_local! {
    /// Each test runs on its own thread, so each gets its own offline cache (`activate`
    /// remembers activations there): never the user's data dir, never another test's records.
    static CACHE_DIR: ScratchDir = ScratchDir::new("cli");
}

fn seed() -> Seed {
    let mut keys = vec![
        json!({"key": KEY, "limit_activations": 2, "limit_usage": 100, "usage": 99,
               "benefit_id": BENEFIT, "customer_id": CUSTOMER}),
    ];
    keys.extend(refused::seed_rows());
    Seed::from_json(
        &json!({
            "organization_id": ORG,
            "license_keys": keys,
            "access_tokens": [{"token": TOKEN}]
        })
        .to_string(),
    )
    .expect("seed parses")
}

fn up() -> Emulator {
    up_with(Options::default())
}

fn up_with(options: Options) -> Emulator {
    Emulator::start(seed(), options).expect("emulator starts")
}

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout parsed whole: exactly one JSON object and nothing else.
    fn json(&self) -> Value {
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {:?}", self.stdout));
        assert!(v.is_object(), "not an object: {v}");
        assert_eq!(
            self.stdout.trim_end().lines().count(),
            1,
            "{:?}",
            self.stdout
        );
        v
    }
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = clean_command(BIN);
    CACHE_DIR.with(|dir| cmd.env("POLAR_LICENSE_CACHE_DIR", dir.path()));
    cmd.args(args).envs(env.iter().copied());
    let out = cmd.launch();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// `polar-license --base-url URL --org ORG --timeout 5 --json ARGS…`, the JSON object parsed.
fn call(polar: &Emulator, args: &[&str]) -> (i32, Value) {
    call_org(polar, ORG, args)
}

fn call_org(polar: &Emulator, org: &str, args: &[&str]) -> (i32, Value) {
    let url = polar.url();
    let mut all = vec![
        "--base-url",
        url.as_str(),
        "--org",
        org,
        "--timeout",
        "5",
        "--json",
    ];
    all.extend_from_slice(args);
    let r = run(&all);
    let v = r.json();
    (r.code, v)
}

#[track_caller]
fn expect(
    got: &(i32, Value),
    code: i32,
    outcome: &str,
    reason: Option<&str>,
    detail: Option<&str>,
) {
    let (c, v) = got;
    assert_eq!(
        (
            *c,
            v["outcome"].as_str(),
            v["reason"].as_str(),
            v["detail"].as_str()
        ),
        (code, Some(outcome), reason, detail),
        "{v}"
    );
    expect_answer_keys(v);
    assert!(v["grace_remaining_seconds"].is_null(), "{v}");
}

#[track_caller]
fn denied(got: &(i32, Value), reason: &str, detail: &str) {
    expect(got, 1, "denied", Some(reason), Some(detail));
}

#[track_caller]
fn invalid(got: &(i32, Value), field: &str, detail: &str) {
    expect(got, 2, "error", Some("invalid_input"), Some(detail));
    assert_eq!(got.1["field"], field, "{}", got.1);
}

/// The activation id of a successful `activate`.
fn activate(polar: &Emulator, key: &str, machine: &str) -> String {
    let cond = format!("machine={machine}");
    let got = call(
        polar,
        &[
            "activate",
            "--key",
            key,
            "--label",
            machine,
            "--condition",
            &cond,
        ],
    );
    assert_eq!(
        (got.0, got.1["outcome"].as_str()),
        (0, Some("done")),
        "{}",
        got.1
    );
    got.1["activation_id"]
        .as_str()
        .expect("activation id")
        .to_string()
}

#[test]
fn validate_licensed_prints_the_license_object() {
    let polar = up();
    let got = call(&polar, &["validate", "--key", KEY]);
    let v = &got.1;
    assert_eq!(got.0, 0, "{v}");
    assert_eq!(v["outcome"], "licensed");
    assert!(v["reason"].is_null() && v["detail"].is_null(), "{v}");
    assert_eq!(v["source"], "online");
    assert!(v["activation_id"].is_null(), "{v}");
    assert_eq!(v["license"]["key"], KEY);
    assert_eq!(v["license"]["display_key"], KEY_SHOWN);
    assert_eq!(v["license"]["status"], "granted");
    assert_eq!(v["license"]["organization_id"], ORG);
    assert_eq!(v["license"]["benefit_id"], BENEFIT);
    assert_eq!(v["license"]["limit_activations"], 2);
    assert_eq!(v["license"]["validations"], 1);
    assert_eq!(v["status"], 200);
    assert_eq!(v["remaining_usages"], 1);
}

#[test]
fn unknown_key_and_wrong_org_are_not_found() {
    let polar = up();
    denied(
        &call(&polar, &["validate", "--key", "NOPE-0000-0000-0000"]),
        "not_found",
        NOT_FOUND,
    );
    denied(
        &call_org(&polar, OTHER_ORG, &["validate", "--key", KEY]),
        "not_found",
        NOT_FOUND,
    );
    denied(
        &call_org(
            &polar,
            OTHER_ORG,
            &["activate", "--key", KEY, "--label", "a"],
        ),
        "not_found",
        NOT_FOUND,
    );
    denied(
        &call_org(
            &polar,
            OTHER_ORG,
            &[
                "deactivate",
                "--key",
                KEY,
                "--activation-id",
                UNKNOWN_ACTIVATION,
            ],
        ),
        "not_found",
        NOT_FOUND,
    );
}

#[test]
fn revoked_disabled_and_expired_keys() {
    let polar = up();
    for key in [REVOKED, DISABLED] {
        denied(
            &call(&polar, &["validate", "--key", key]),
            "inactive",
            INACTIVE,
        );
        let got = call(&polar, &["activate", "--key", key, "--label", "a"]);
        denied(&got, "inactive", INACTIVE_ACTIVATE);
        assert_eq!(got.1["status"], 403);
    }
    let got = call(&polar, &["validate", "--key", EXPIRED]);
    denied(&got, "expired", EXPIRED_DETAIL);
    assert_eq!(got.1["status"], 404);
    let got = call(&polar, &["activate", "--key", EXPIRED, "--label", "a"]);
    denied(&got, "expired", EXPIRED_DETAIL);
    assert_eq!(got.1["status"], 403);
}

#[test]
fn activation_lifecycle() {
    let polar = up();
    let got = call(
        &polar,
        &[
            // Bound to this machine (machine_fingerprint is added): `validate` below sends this
            // machine's fingerprint too, so the same --condition values are licensed.
            "activate",
            "--key",
            KEY,
            "--label",
            "machine A",
            "--condition",
            "machine=A",
            "--condition",
            "major=2",
            "--meta",
            "os=linux",
            "--meta",
            "cores=8",
        ],
    );
    expect(&got, 0, "done", None, None);
    let v = &got.1;
    let id = v["activation_id"]
        .as_str()
        .expect("activation id")
        .to_string();
    assert_eq!(v["activation"]["id"], id.as_str());
    assert_eq!(v["activation"]["label"], "machine A");
    // The app's own meta, beside the two keys every bound activation records (issue #80: the
    // per-organization machine hash a reinstall finds itself by, and the platform).
    let meta = &v["activation"]["meta"];
    assert_eq!(
        (&meta["os"], &meta["cores"]),
        (&json!("linux"), &json!(8)),
        "{v}"
    );
    assert!(
        meta["machine"]
            .as_str()
            .is_some_and(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit())),
        "{v}"
    );
    assert!(
        meta["platform"].as_str().is_some_and(|p| p.contains('/')),
        "{v}"
    );
    assert_eq!(meta.as_object().map(|m| m.len()), Some(4), "{v}");
    assert_eq!(v["license"]["key"], KEY);
    assert!(v["source"].is_null(), "{v}");

    // Same conditions (typed: major=2 is an integer): licensed, with the activation.
    let validate_on = |conditions: &[&str]| {
        let mut args = vec!["validate", "--key", KEY, "--activation-id", &id];
        for condition in conditions {
            args.extend(["--condition", condition]);
        }
        call(&polar, &args)
    };
    let ok = validate_on(&["machine=A", "major=2"]);
    assert_eq!(
        (ok.0, ok.1["outcome"].as_str()),
        (0, Some("licensed")),
        "{}",
        ok.1
    );
    assert_eq!(ok.1["activation_id"], id.as_str());
    assert_eq!(ok.1["activation"]["label"], "machine A");

    // Another machine, and "2" as a string is not 2: conditions_mismatch.
    let other = validate_on(&["machine=B", "major=2"]);
    denied(&other, "conditions_mismatch", MISMATCH);
    assert_eq!(other.1["activation_id"], id.as_str());
    denied(
        &validate_on(&["machine=A"]),
        "conditions_mismatch",
        MISMATCH,
    );

    // Unknown activation.
    denied(
        &call(
            &polar,
            &[
                "validate",
                "--key",
                KEY,
                "--activation-id",
                UNKNOWN_ACTIVATION,
            ],
        ),
        "not_found",
        NOT_FOUND,
    );
    denied(
        &call(
            &polar,
            &[
                "deactivate",
                "--key",
                KEY,
                "--activation-id",
                UNKNOWN_ACTIVATION,
            ],
        ),
        "not_found",
        NOT_FOUND,
    );

    // Deactivate, then the activation is gone; a second deactivate is not_found.
    let done = call(
        &polar,
        &["deactivate", "--key", KEY, "--activation-id", &id],
    );
    assert_eq!(
        (done.0, done.1["outcome"].as_str()),
        (0, Some("done")),
        "{}",
        done.1
    );
    assert!(
        done.1["reason"].is_null() && done.1["license"].is_null(),
        "{}",
        done.1
    );
    assert_eq!(done.1["activation_id"], id.as_str());
    assert_eq!(done.1["status"], 204);
    // The seat is free, in the core's words (issue #80).
    assert_eq!(
        (
            done.1["user_message"].as_str(),
            done.1["next_step"].as_str()
        ),
        (
            Some(polar_license::message::DEACTIVATED.text().as_str()),
            Some(polar_license::message::DEACTIVATED.next_step())
        ),
        "{}",
        done.1
    );
    denied(
        &validate_on(&["machine=A", "major=2"]),
        "not_found",
        NOT_FOUND,
    );
    denied(
        &call(
            &polar,
            &["deactivate", "--key", KEY, "--activation-id", &id],
        ),
        "not_found",
        NOT_FOUND,
    );
}

#[test]
fn activation_limit_and_keys_without_activations() {
    let polar = up();
    activate(&polar, KEY, "A");
    activate(&polar, KEY, "B");
    let got = call(&polar, &["activate", "--key", KEY, "--label", "C"]);
    denied(&got, "activation_limit", LIMIT);
    assert_eq!(got.1["status"], 403);
    denied(
        &call(
            &polar,
            &["activate", "--key", NO_ACTIVATIONS, "--label", "A"],
        ),
        "activations_not_supported",
        NO_SUPPORT,
    );
}

#[test]
fn benefit_customer_and_usage() {
    let polar = up();
    let ok = call(
        &polar,
        &[
            "validate",
            "--key",
            KEY,
            "--benefit-id",
            BENEFIT,
            "--customer-id",
            CUSTOMER,
        ],
    );
    assert_eq!(ok.0, 0, "{}", ok.1);
    denied(
        &call(
            &polar,
            &["validate", "--key", KEY, "--benefit-id", OTHER_BENEFIT],
        ),
        "benefit_mismatch",
        "License key does not match given benefit.",
    );
    denied(
        &call(
            &polar,
            &["validate", "--key", KEY, "--customer-id", OTHER_CUSTOMER],
        ),
        "customer_mismatch",
        "License key does not match given user.",
    );

    // usage 99 of 100: 5 more is refused with the count left; 1 more is fine; then 0 left.
    let got = call(
        &polar,
        &["validate", "--key", KEY, "--increment-usage", "5"],
    );
    denied(
        &got,
        "usage_exhausted",
        "License key only has 1 more usages.",
    );
    assert_eq!(got.1["remaining_usages"], 1);
    assert_eq!(got.1["status"], 400);
    let got = call(
        &polar,
        &["validate", "--key", KEY, "--increment-usage", "1"],
    );
    assert_eq!(got.0, 0, "{}", got.1);
    assert_eq!(got.1["license"]["usage"], 100);
    let got = call(
        &polar,
        &["validate", "--key", KEY, "--increment-usage", "1"],
    );
    denied(
        &got,
        "usage_exhausted",
        "License key only has 0 more usages.",
    );
    assert_eq!(got.1["remaining_usages"], 0);
}

#[test]
fn bad_input_is_caught_locally_with_no_request() {
    let polar = up();
    let url = polar.url();
    // Missing --org.
    let r = run(&["--base-url", &url, "--json", "validate", "--key", KEY]);
    invalid(
        &(r.code, r.json()),
        "organization_id",
        "organization_id: is required: pass --org or set POLAR_ORGANIZATION_ID",
    );
    invalid(
        &call_org(&polar, "not-a-uuid", &["validate", "--key", KEY]),
        "organization_id",
        "organization_id: must be a UUID (version 4)",
    );
    invalid(
        &call_org(&polar, V7_ORG, &["activate", "--key", KEY, "--label", "a"]),
        "organization_id",
        "organization_id: must be a version 4 UUID, found version 7",
    );
    let long = format!("{}=1", "k".repeat(41));
    let long = long.as_str();
    let long_key = "conditions: keys must have 1-40 characters, found 41";
    let activate_a = |more: &[&'static str]| {
        let mut args = vec!["activate", "--key", KEY, "--label", "a"];
        args.extend_from_slice(more);
        args
    };
    for (args, field, detail) in [
        (
            vec!["validate", "--key", KEY, "--increment-usage", "-1"],
            "increment_usage",
            "increment_usage: must be >= 0",
        ),
        (
            vec!["validate", "--key", KEY, "--condition", long],
            "conditions",
            long_key,
        ),
        (
            [activate_a(&["--condition"]), vec![long]].concat(),
            "conditions",
            long_key,
        ),
        (
            activate_a(&["--condition", "k="]),
            "conditions.k",
            "conditions.k: string values must have 1-500 characters, found 0",
        ),
        (
            activate_a(&["--meta", "k="]),
            "meta.k",
            "meta.k: string values must have 1-500 characters, found 0",
        ),
        (
            vec!["validate", "--key", KEY, "--activation-id", "nope"],
            "activation_id",
            "activation_id: must be a UUID (version 4)",
        ),
        (
            vec!["validate", "--key", ""],
            "key",
            "key: must not be empty",
        ),
        (
            vec!["deactivate", "--key", KEY],
            "activation_id",
            "activation_id: none given and no activation remembered for this key",
        ),
    ] {
        invalid(&call(&polar, &args), field, detail);
    }
    // A missing `=` is a usage error.
    let (code, v) = call(
        &polar,
        &["validate", "--key", KEY, "--condition", "machine"],
    );
    assert_eq!(
        (code, v["reason"].as_str()),
        (2, Some("invalid_input")),
        "{v}"
    );
    assert_eq!(v["field"], "condition");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expected K=V")),
        "{v}"
    );
    // An http:// URL that is not loopback.
    let r = run(&[
        "--base-url",
        "http://example.com",
        "--org",
        ORG,
        "--json",
        "validate",
        "--key",
        KEY,
    ]);
    invalid(
        &(r.code, r.json()),
        "base_url",
        "base_url: plain http:// is only allowed for loopback hosts; use https://",
    );

    assert_eq!(polar.request_count(), 0);
}

#[test]
fn junk_access_token_is_a_protocol_error() {
    let polar = up();
    let got = call(&polar, &["--access-token", "xyz", "validate", "--key", KEY]);
    let v = &got.1;
    assert_eq!(
        (got.0, v["outcome"].as_str(), v["reason"].as_str()),
        (3, Some("error"), Some("protocol_error")),
        "{v}"
    );
    assert_eq!(v["status"], 401);
    assert!(
        v["detail"].as_str().is_some_and(|d| d.contains("401")),
        "{v}"
    );
    // The same from the environment.
    let url = polar.url();
    let r = run_env(
        &["--json", "activate", "--label", "a"],
        &[
            ("POLAR_API_URL", url.as_str()),
            ("POLAR_ORGANIZATION_ID", ORG),
            ("POLAR_LICENSE_KEY", KEY),
            ("POLAR_ACCESS_TOKEN", "xyz"),
        ],
    );
    let v = r.json();
    assert_eq!(
        (r.code, v["reason"].as_str(), v["status"].as_i64()),
        (3, Some("protocol_error"), Some(401)),
        "{v}"
    );
}

#[test]
fn a_good_access_token_uses_the_authenticated_twins() {
    let polar = up();
    let got = call(&polar, &["--access-token", TOKEN, "validate", "--key", KEY]);
    assert_eq!(
        (got.0, got.1["outcome"].as_str()),
        (0, Some("licensed")),
        "{}",
        got.1
    );
    let id = {
        let got = call(
            &polar,
            &[
                "--access-token",
                TOKEN,
                "activate",
                "--key",
                KEY,
                "--label",
                "ci",
            ],
        );
        assert_eq!(got.0, 0, "{}", got.1);
        got.1["activation_id"].as_str().expect("id").to_string()
    };
    let got = call(
        &polar,
        &[
            "--access-token",
            TOKEN,
            "deactivate",
            "--key",
            KEY,
            "--activation-id",
            &id,
        ],
    );
    assert_eq!(
        (got.0, got.1["outcome"].as_str()),
        (0, Some("done")),
        "{}",
        got.1
    );
    denied(
        &call(
            &polar,
            &["--access-token", TOKEN, "validate", "--key", REVOKED],
        ),
        "inactive",
        INACTIVE,
    );
}

#[test]
fn rate_limit_is_unverified_with_retry_after() {
    let polar = up_with(Options {
        rate_limit: true,
        rate_limit_block: Duration::from_secs(2),
        ..Options::default()
    });
    // Eight processes at once, so that more than 3 land within a second however slowly a
    // process starts (under wine on a loaded machine, one after another never passed 3/s).
    let answers: Vec<(i32, Value)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|_| s.spawn(|| call(&polar, &["validate", "--key", KEY])))
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().expect("a call"))
            .collect()
    });
    let (passed, refused): (Vec<_>, Vec<_>) = answers.iter().partition(|(code, _)| *code == 0);
    assert!(passed.len() >= 3, "3 a second answered first: {answers:?}");
    assert!(!refused.is_empty(), "never rate limited: {answers:?}");
    for r in &refused {
        assert_eq!(r.1["status"], 429, "{answers:?}");
        assert!(
            matches!(r.1["retry_after"].as_u64(), Some(1 | 2)),
            "{answers:?}"
        );
    }
    // The first refused (the block's whole length ahead of it) says the wait as Polar did.
    let first_refusal = refused
        .iter()
        .max_by_key(|(_, v)| v["retry_after"].as_u64())
        .unwrap_or_else(|| panic!("{answers:?}"));
    expect(
        first_refusal,
        3,
        "unverified",
        Some("rate_limited"),
        Some("retry after 2 s"),
    );
}

#[test]
fn faults_map_to_exit_codes() {
    let polar = up();
    let validate = |polar: &Emulator| call(polar, &["validate", "--key", KEY]);
    let check = |fault: Fault, code: i32, outcome: &str, reason: &str| -> Value {
        polar.set_fault(Some(fault.clone()));
        let (c, v) = validate(&polar);
        assert_eq!(
            (c, v["outcome"].as_str(), v["reason"].as_str()),
            (code, Some(outcome), Some(reason)),
            "{fault:?}: {v}"
        );
        v
    };
    for status in [500, 502, 503] {
        let v = check(
            Fault::Status {
                status,
                body: "Internal Server Error".into(),
            },
            3,
            "unverified",
            "server_error",
        );
        assert_eq!(v["status"], status);
        assert_eq!(
            v["detail"],
            format!("status {status}: Internal Server Error")
        );
    }
    let v = check(
        Fault::Status {
            status: 411,
            body: r#"{"error":"LengthRequired","detail":"A Content-Length header is required."}"#
                .into(),
        },
        3,
        "error",
        "protocol_error",
    );
    assert_eq!(v["status"], 411);
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("A Content-Length header is required.")),
        "{v}"
    );
    let v = check(
        Fault::Status {
            status: 413,
            body: r#"{"error":"RequestBodyTooLarge","detail":"Request body exceeded the maximum allowed size of 10485760 bytes."}"#.into(),
        },
        3,
        "error",
        "protocol_error",
    );
    assert_eq!(v["status"], 413);
    let v = check(
        Fault::RateLimited {
            retry_after: Some(60),
        },
        3,
        "unverified",
        "rate_limited",
    );
    assert_eq!(v["retry_after"], 60);
    let v = check(
        Fault::RateLimited { retry_after: None },
        3,
        "unverified",
        "rate_limited",
    );
    assert!(v["retry_after"].is_null(), "{v}");
    check(Fault::Malformed, 3, "error", "protocol_error");
    check(Fault::Truncated, 3, "error", "protocol_error");
    check(
        Fault::Huge {
            bytes: 50 * 1024 * 1024,
        },
        3,
        "error",
        "protocol_error",
    );
    check(Fault::CloseImmediately, 3, "unverified", "offline");

    // A bad Polar-Version answer (or a wrong base path) is a bare 404 without Polar's error
    // envelope: no verdict on the key, protocol_error (exit 3), never a denial.
    polar.set_fault(Some(Fault::Status {
        status: 404,
        body: r#"{"detail":"Not Found"}"#.into(),
    }));
    let got = validate(&polar);
    assert_eq!(
        (got.0, got.1["outcome"].as_str(), got.1["reason"].as_str()),
        (3, Some("error"), Some("protocol_error")),
        "{}",
        got.1
    );

    // A server that never answers: offline after --timeout.
    polar.set_fault(Some(Fault::Hang));
    let url = polar.url();
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        ORG,
        "--timeout",
        "0.5",
        "--json",
        "validate",
        "--key",
        KEY,
    ]);
    let v = r.json();
    assert_eq!(
        (r.code, v["outcome"].as_str(), v["reason"].as_str()),
        (3, Some("unverified"), Some("offline")),
        "{v}"
    );
    assert_eq!(v["timeout"], true);

    polar.set_fault(None);
    assert_eq!(validate(&polar).0, 0);

    // Down: connection refused.
    polar.stop();
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        ORG,
        "--json",
        "validate",
        "--key",
        KEY,
    ]);
    let v = r.json();
    assert_eq!(
        (r.code, v["outcome"].as_str(), v["reason"].as_str()),
        (3, Some("unverified"), Some("offline")),
        "{v}"
    );
    assert_eq!(v["source"], "online");
}

#[test]
fn environment_variables_replace_flags() {
    let polar = up();
    let url = polar.url();
    let env = [
        ("POLAR_API_URL", url.as_str()),
        ("POLAR_ORGANIZATION_ID", ORG),
        ("POLAR_TIMEOUT", "2.5"),
        ("POLAR_LICENSE_KEY", KEY),
        ("POLAR_SERVER", "sandbox"), // --base-url wins over --server
        ("POLAR_LICENSE_CACHE_DIR", "/nonexistent/cache"),
    ];
    let r = run_env(&["validate", "--json"], &env);
    let v = r.json();
    assert_eq!(
        (r.code, v["outcome"].as_str()),
        (0, Some("licensed")),
        "{v}"
    );
    // A flag beats its variable.
    let r = run_env(&["validate", "--json", "--org", OTHER_ORG], &env);
    let v = r.json();
    assert_eq!(
        (r.code, v["reason"].as_str()),
        (1, Some("not_found")),
        "{v}"
    );
    // A bad variable is a usage error.
    let r = run_env(&["validate", "--json"], &[("POLAR_TIMEOUT", "soon")]);
    let v = r.json();
    assert_eq!(
        (r.code, v["reason"].as_str(), v["field"].as_str()),
        (2, Some("invalid_input"), Some("timeout")),
        "{v}"
    );
}

#[test]
fn json_mode_prints_one_object_even_for_usage_errors() {
    for args in [
        vec!["--json"],
        vec!["--json", "frobnicate"],
        vec!["validate", "--json"],
        vec!["validate", "--json", "--key", KEY, "--bogus"],
        vec!["--json", "validate", "--key", KEY, "--timeout", "0"],
        vec![
            "--json",
            "validate",
            "--key",
            KEY,
            "--increment-usage",
            "lots",
        ],
        vec!["--json", "validate", "--key", KEY, "--server", "staging"],
        vec!["--json", "emulator", "--port", "99999"],
    ] {
        let r = run(&args);
        let v = r.json();
        assert_eq!(
            (r.code, v["outcome"].as_str(), v["reason"].as_str()),
            (2, Some("error"), Some("invalid_input")),
            "{args:?}: {v}"
        );
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    }
    // Without --json a usage error is clap's text on stderr, exit 2.
    let r = run(&["validate"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.is_empty() && r.stderr.contains("--key"),
        "{}",
        r.stderr
    );
    // Help is not an error.
    assert_eq!(run(&["--help"]).code, 0);
    assert_eq!(run(&["validate", "--help"]).code, 0);
}

/// Every command's `--key` (the three spellings of `args.rs`'s `key_arg!`: required, else
/// remembered, else asked) names `POLAR_LICENSE_KEY` in `--help` and never shows its value.
#[test]
fn help_names_the_key_variable_and_never_shows_its_value() {
    for command in ["validate", "remember", "check", "status", "activate"] {
        let r = run_env(&[command, "--help"], &[("POLAR_LICENSE_KEY", KEY)]);
        assert_eq!(r.code, 0, "{command}: {}", r.stderr);
        assert!(
            r.stdout.contains("--key <KEY>") && r.stdout.contains("[env: POLAR_LICENSE_KEY]"),
            "{command}: {}",
            r.stdout
        );
        assert!(
            !r.stdout.contains(KEY),
            "{command} shows the key: {}",
            r.stdout
        );
    }
}

#[test]
fn human_output_is_short_and_never_shows_the_key() {
    let polar = up();
    let url = polar.url();
    let base = ["--base-url", url.as_str(), "--org", ORG];
    let human = |args: &[&str]| {
        let mut all = base.to_vec();
        all.extend_from_slice(args);
        let r = run(&all);
        assert!(
            !r.stdout.contains(KEY) && !r.stderr.contains(KEY),
            "{}{}",
            r.stdout,
            r.stderr
        );
        r
    };
    let r = human(&[
        "activate",
        "--key",
        KEY,
        "--label",
        "machine A",
        "--condition",
        "machine=A",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().next(),
        Some(format!("activated {KEY_SHOWN}").as_str())
    );
    let id = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("activation"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("activation line")
        .to_string();
    assert!(r.stdout.contains("limit 2"), "{}", r.stdout);

    let r = human(&[
        "validate",
        "--key",
        KEY,
        "--activation-id",
        &id,
        "--condition",
        "machine=A",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().next(),
        Some(format!("licensed {KEY_SHOWN}").as_str())
    );
    for fact in [
        "status",
        "usage",
        "activations",
        "validations",
        "expires",
        "machine A",
    ] {
        assert!(r.stdout.contains(fact), "{fact}: {}", r.stdout);
    }
    assert!(r.stdout.lines().count() <= 10, "{}", r.stdout);

    let r = human(&[
        "validate",
        "--key",
        KEY,
        "--activation-id",
        &id,
        "--condition",
        "machine=B",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout.lines().next(),
        Some("denied: conditions_mismatch — License key does not match required conditions")
    );

    // Errors go to stderr, nothing on stdout.
    let r = human(&["validate", "--key", KEY, "--increment-usage", "-1"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(
        r.stderr.trim(),
        "error: invalid_input — increment_usage: must be >= 0"
    );
    polar.stop();
    let r = human(&["validate", "--key", KEY]);
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.is_empty() && r.stderr.starts_with("unverified: offline — "),
        "{}",
        r.stderr
    );
}

#[test]
fn demo_walks_through_and_exits_zero() {
    let r = run(&["demo"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.lines().count() <= 65, "{}", r.stdout);
    for text in [
        "conditions_mismatch",
        "not_found",
        "inactive",
        "invalid_input",
        "requests that reached the emulator: 0",
        "licensed ****-4C5B6A (online)",
        "(from cache, grace ",
        "(from cache after protocol_error, grace ",
        "(from cache after offline, grace ",
        "grace_expired",
        "(from cache after server_error, grace ",
        "the relay's lease ended 14 days ago",
        "refused as forged",
        "last verified 8 days ago",
        "all 17 steps gave the expected answer",
    ] {
        assert!(r.stdout.contains(text), "{text}: {}", r.stdout);
    }
    // Times for people (issue #65): no duration in bare seconds, no epoch seconds, and the
    // forged record's refusal does not also say it was "verified 0 s ago, past the grace".
    for line in r.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            let bare_seconds = pair[0].chars().all(|c| c.is_ascii_digit()) && pair[1] == "s";
            assert!(!bare_seconds, "a duration in seconds: {line}");
        }
        let epoch = words.iter().any(|w| {
            let digits = w.trim_matches(|c: char| !c.is_ascii_digit());
            digits.len() == 10 && digits.chars().all(|c| c.is_ascii_digit())
        });
        assert!(!epoch, "an epoch time: {line}");
        assert!(!line.contains("past the grace period; the relay"), "{line}");
    }
    let r = run(&["demo", "--json"]);
    assert_eq!(r.code, 0);
    let v = r.json();
    assert_eq!(v["outcome"], "done");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 17);
    assert!(steps.iter().all(|s| s["ok"] == true), "{v}");
}

fn spawn_emulator(args: &[&str]) -> (Served, String, Vec<String>) {
    // The rest of the banner, up to the "serving" line.
    let (child, rest) =
        Served::start_with_banner(clean_command(BIN).arg("emulator").args(args), "serving");
    let url = child.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let port: u16 = url["http://127.0.0.1:".len()..].parse().expect("a port");
    assert_ne!(port, 0);
    (child, url, rest)
}

#[test]
fn emulator_command_listens_and_answers() {
    let (_child, url, banner) = spawn_emulator(&["--port", "0"]);
    let demo_org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    let demo_key = "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A";
    assert!(banner.iter().any(|l| l.contains(demo_org)), "{banner:?}");
    assert!(banner.iter().any(|l| l.contains(demo_key)), "{banner:?}");
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        demo_org,
        "--json",
        "validate",
        "--key",
        demo_key,
    ]);
    let v = r.json();
    assert_eq!(
        (r.code, v["outcome"].as_str()),
        (0, Some("licensed")),
        "{v}"
    );
    // Each key's line names its benefit (what --entitlements maps features to; issue #27).
    let benefit = v["license"]["benefit_id"].as_str().expect("a benefit id");
    let line = banner
        .iter()
        .find(|l| l.contains(demo_key))
        .expect("the key's line");
    assert!(line.contains(&format!("benefit {benefit}")), "{line}");
}

#[test]
fn emulator_command_takes_a_seed_file() {
    let dir = ScratchDir::new("cli-seed");
    let path = dir.join("seed.json");
    std::fs::write(
        &path,
        json!({"organization_id": ORG, "license_keys": [{"key": KEY, "limit_activations": 1}]})
            .to_string(),
    )
    .expect("seed written");
    let path_text = path.to_string_lossy().into_owned();
    let (_child, url, banner) = spawn_emulator(&["--port", "0", "--seed", &path_text]);
    let line = banner
        .iter()
        .find(|l| l.contains(KEY))
        .expect("the key's line");
    // The seed names no benefit: the one generated at the start is printed.
    let benefit = line
        .split("benefit ")
        .nth(1)
        .and_then(|rest| rest.split([',', ')']).next())
        .expect("a benefit id");
    assert!(uuid_v4_shape(benefit), "{line}");
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        ORG,
        "--json",
        "activate",
        "--key",
        KEY,
        "--label",
        "a",
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        ORG,
        "--json",
        "activate",
        "--key",
        KEY,
        "--label",
        "b",
    ]);
    assert_eq!(
        (r.code, r.json()["reason"].as_str()),
        (1, Some("activation_limit"))
    );

    // A bad seed file is a usage error.
    std::fs::write(&path, "{not json").expect("seed written");
    let r = run(&["--json", "emulator", "--port", "0", "--seed", &path_text]);
    let v = r.json();
    assert_eq!(
        (r.code, v["reason"].as_str(), v["field"].as_str()),
        (2, Some("invalid_input"), Some("seed")),
        "{v}"
    );
}

/// Issue #65: `emulator --state FILE` keeps an activation across a restart; without it the
/// banner says a restart forgets; a garbage state file is a usage error naming it.
#[test]
fn emulator_state_file_keeps_activations_across_a_restart() {
    let dir = ScratchDir::new("cli-emulator-state");
    let state = dir.join("polar-state.json");
    let state_text = state.to_str().unwrap().to_string();
    let demo_org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    let demo_key = "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A";
    let (_plain, _, banner) = spawn_emulator(&["--port", "0"]);
    assert!(
        banner
            .iter()
            .any(|l| l.contains("a restart forgets every activation")),
        "{banner:?}"
    );
    let id = {
        let (_child, url, banner) = spawn_emulator(&["--port", "0", "--state", &state_text]);
        assert!(
            banner
                .iter()
                .any(|l| l.contains("activations survive a restart")),
            "{banner:?}"
        );
        let r = run(&[
            "--base-url",
            &url,
            "--org",
            demo_org,
            "--json",
            "activate",
            "--key",
            demo_key,
            "--label",
            "box",
        ]);
        assert_eq!(r.code, 0, "{}", r.json());
        r.json()["activation_id"].as_str().unwrap().to_string()
    };
    let (_child, url, _) = spawn_emulator(&["--port", "0", "--state", &state_text]);
    let r = run(&[
        "--base-url",
        &url,
        "--org",
        demo_org,
        "--json",
        "validate",
        "--key",
        demo_key,
        "--activation-id",
        &id,
    ]);
    assert_eq!(
        (r.code, r.json()["outcome"].as_str()),
        (0, Some("licensed")),
        "{}",
        r.json()
    );

    std::fs::write(&state, "{\"format\": torn").unwrap();
    let r = run(&["--json", "emulator", "--port", "0", "--state", &state_text]);
    let v = r.json();
    assert_eq!((r.code, v["field"].as_str()), (2, Some("state")), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("polar-state.json")),
        "{v}"
    );
}

/// 8-4-4-4-12 lowercase hex with the version nibble 4.
fn uuid_v4_shape(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && parts[2].starts_with('4')
}
