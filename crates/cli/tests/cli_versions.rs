//! Issue #16 through the real `polar-license` binary: the emulator command serving Polar's
//! three API versions (and one rotated out), the 2027-01 fields in `--json` and in the human
//! text, and a rotated key that was valid here read as such by `validate`, `check` and `status`.

use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_testkit::{cli_against, Launch, ScratchDir, Served};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// The binary with none of the host's settings (nor `XDG_DATA_HOME`), against `url`, caching
/// in `dir`.
fn cli(url: &str, dir: &Path) -> Command {
    let mut cmd = cli_against(BIN, url, DEMO_ORGANIZATION_ID, dir);
    cmd.env_remove("XDG_DATA_HOME");
    cmd
}

fn json(out: &Output) -> (i32, Value) {
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text:?} {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// `polar-license emulator` as a process, killed when dropped.
fn serve(args: &[&str]) -> Served {
    Served::start(
        Command::new(BIN)
            .args(["emulator", "--port", "0"])
            .args(args),
    )
}

const SEED: &str = r#"{
  "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
  "license_keys": [
    {
      "key": "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A",
      "limit_activations": 3,
      "member": {"email": "seat@acme.io", "external_id": "seat-7"},
      "subscription": {"status": "active", "current_period_end": "2027-02-01T00:00:00Z",
                       "cancel_at_period_end": true},
      "order": {"status": "paid"}
    }
  ]
}"#;

#[test]
fn the_emulator_command_serves_2027_01_and_the_cli_shows_its_fields() {
    let dir = ScratchDir::new("cli-versions-2027");
    let seed = dir.join("seed.json");
    std::fs::write(&seed, SEED).expect("seed");
    let seed = seed.to_string_lossy().to_string();
    let served = serve(&["--seed", &seed, "--api-version", "2027-01"]);
    let cache = ScratchDir::new("cli-versions-cache");

    let out = cli(&served.url, &cache)
        .args(["--json", "validate", "--key", DEMO_KEY])
        .launch();
    let (code, v) = json(&out);
    assert_eq!(code, 0, "{v}");
    let license = &v["license"];
    assert_eq!(license["member"]["email"], "seat@acme.io");
    assert_eq!(license["member"]["external_id"], "seat-7");
    assert_eq!(license["member_id"], license["member"]["id"]);
    assert_eq!(license["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        license["subscription"]["current_period_end"],
        "2027-02-01T00:00:00Z"
    );
    assert_eq!(license["order"]["paid"], true);

    // check answers from the record validate wrote: the fields came through the cache.
    let out = cli(&served.url, &cache)
        .args(["--json", "check", "--key", DEMO_KEY])
        .launch();
    let (code, v) = json(&out);
    assert_eq!((code, v["source"].as_str()), (0, Some("cache")), "{v}");
    assert_eq!(v["license"]["subscription"]["status"], "active");
    // The grace end as a timestamp: a week after the verdict (issue #15).
    let at = |field: &str| {
        time::OffsetDateTime::parse(
            v[field].as_str().unwrap_or_default(),
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .unwrap_or_else(|e| panic!("{field}: {e}: {v}"))
    };
    assert_eq!(at("grace_ends_at") - at("verified_at"), 7 * 24 * 3600);

    let out = cli(&served.url, &cache)
        .args(["validate", "--key", DEMO_KEY])
        .launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seat@acme.io"), "{text}");
    assert!(
        text.contains("subscription") && text.contains("ends 2027-02-01"),
        "{text}"
    );
}

#[test]
fn the_emulator_command_rotates_a_version_out() {
    let served = serve(&[
        "--api-versions",
        "2026-10,2027-01",
        "--api-version",
        "2026-10",
    ]);
    // A client pinned to the removed 2026-04 gets the bare 404 (raw request, as curl would).
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let url = format!("{}/v1/customer-portal/license-keys/validate", served.url);
    let pinned = ureq::post(&url)
        .header("Polar-Version", "2026-04")
        .header("content-type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body.as_bytes())
        .expect("answered");
    assert_eq!(pinned.status().as_u16(), 404);
    let text = pinned.into_body().read_to_string().expect("body");
    assert_eq!(text, r#"{"detail":"Not Found"}"#);
    // Our client sends no version: it follows the current one and keeps working.
    let cache = ScratchDir::new("cli-versions-cache");
    let out = cli(&served.url, &cache)
        .args(["--json", "validate", "--key", DEMO_KEY])
        .launch();
    assert_eq!(json(&out).0, 0);

    // A default that is not served is a usage error naming the option.
    let out = Command::new(BIN)
        .args([
            "--json",
            "emulator",
            "--port",
            "0",
            "--api-versions",
            "2026-10",
            "--api-version",
            "2027-01",
        ])
        .launch();
    let (code, v) = json(&out);
    assert_eq!(code, 2, "{v}");
    assert!(v.to_string().contains("api-version"), "{v}");
}

#[test]
fn a_rotated_key_that_was_valid_here_says_so_in_validate_check_and_status() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let cache = ScratchDir::new("cli-versions-rotated");
    let run = |args: &[&str]| {
        let out = cli(&polar.url(), &cache).arg("--json").args(args).launch();
        json(&out)
    };
    let (code, v) = run(&["check", "--key", DEMO_KEY]);
    assert_eq!(code, 0, "{v}");
    polar.rotate_key(DEMO_KEY).expect("rotated");

    let (code, v) = run(&["validate", "--key", DEMO_KEY]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("not_found")), "{v}");
    assert_eq!(v["detail"], "Not found");
    assert_eq!(v["previously_valid"], true);
    let hint = v["hint"].as_str().expect("hint");
    let step = v["next_step"].as_str().expect("next_step");
    assert!(
        hint.contains("replaced") && step.contains("customer portal"),
        "{hint} {step}"
    );
    let message = v["user_message"].as_str().expect("user_message");
    assert!(
        message.starts_with("This key was valid here before"),
        "{message}"
    );

    let (code, v) = run(&["check", "--key", DEMO_KEY]);
    assert_eq!(
        (code, v["previously_valid"].as_bool()),
        (1, Some(true)),
        "{v}"
    );
    let (_, v) = run(&["status", "--key", DEMO_KEY]);
    assert_eq!(v["cache"]["denied"]["previously_valid"], true, "{v}");

    let out = cli(&polar.url(), &cache)
        .args(["check", "--key", DEMO_KEY])
        .launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid here before"), "{text}");

    // A typo was never valid here: a plain not_found.
    let (code, v) = run(&["check", "--key", "DEMO-TYPO-4F0C2A9E"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("not_found")), "{v}");
    assert_eq!(v["previously_valid"], false);
    assert_eq!(v["hint"], Value::Null);
}

/// `method path` on the emulator command at `url` with `body`: status and JSON body.
fn control(url: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.unwrap_or_default().to_string())
        .expect("a request");
    let answer = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
    .run(request)
    .expect("answered");
    let status = answer.status().as_u16();
    let text = answer.into_body().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Issue #78: Polar's January release in the middle of a run of the command line, through
/// the emulator command's control route: `validate` and `check` give the same verdicts and
/// exit codes before and after, and every request named the client and pinned no version.
#[test]
fn the_command_line_keeps_its_verdicts_through_the_rotation_day() {
    let served = serve(&[]);
    let cache = ScratchDir::new("cli-rotation-day");
    let verdicts = || {
        [
            ("validate", polar_license_emulator::DEMO_KEY),
            ("validate", polar_license_emulator::DEMO_KEY_REVOKED),
            ("check", polar_license_emulator::DEMO_KEY),
        ]
        .map(|(command, key)| {
            let out = cli(&served.url, &cache)
                .args(["--json", command, "--key", key])
                .launch();
            let (code, v) = json(&out);
            (code, v["status"].clone(), v["reason"].clone())
        })
    };
    let before = verdicts();
    assert_eq!(before[0].0, 0, "{before:?}");
    assert_ne!(before[1].0, 0, "{before:?}");
    let (status, now) = control(
        &served.url,
        "POST",
        "/__emulator/api-versions",
        Some(r#"{"served":["2026-10","2027-01"],"current":"2027-01"}"#),
    );
    assert_eq!((status, &now["current"]), (200, &Value::from("2027-01")));
    assert_eq!(verdicts(), before, "no verdict changed");

    let (status, seen) = control(&served.url, "GET", "/__emulator/requests/seen", None);
    assert_eq!(status, 200);
    let seen = seen.as_array().expect("a list");
    assert!(seen.len() >= 4, "{seen:?}");
    for r in seen {
        assert_eq!(r["user_agent"], polar_license::proto::USER_AGENT, "{r}");
        assert_eq!(r["polar_version"], Value::Null, "{r}");
    }
}
