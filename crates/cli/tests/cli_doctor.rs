//! `polar-license doctor` as a real process (issue #78, docs/interfaces.md §2) against
//! `polar-license emulator --seed FILE` as another: one finding a line with its fix, the exit
//! codes (0 clean, 1 findings, 2 bad input, 3 Polar not read), `--json`, and the token never
//! printed.

use polar_license_testkit::{clean_command, ScratchDir, Served};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const PRODUCTION_ORG: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
const TOKEN: &str = "polar_oat_cli_doctor_0123456789abcdef";

/// The emulator process of a seed whose benefit has `admin` device management, `--sandbox`
/// when `sandbox`.
fn emulator(dir: &ScratchDir, admin: bool, sandbox: bool) -> Served {
    let seed = json!({
        "organization_id": ORG,
        "benefits": [{"id": BENEFIT, "limit_activations": 3, "enable_customer_admin": admin}],
        "license_keys": [{"key": "CLIDOC-11111111-2222-4333-8444-555555555555",
                          "benefit_id": BENEFIT, "limit_activations": 3}],
        "access_tokens": [{"token": TOKEN}]
    });
    let path = dir.join("seed.json");
    std::fs::write(&path, seed.to_string()).expect("seed written");
    let mut cmd = clean_command(BIN);
    cmd.args(["emulator", "--port", "0", "--seed"]).arg(&path);
    if sandbox {
        cmd.arg("--sandbox");
    }
    Served::start(&mut cmd)
}

fn doctor(url: &str, args: &[&str]) -> std::process::Output {
    clean_command(BIN)
        .args(["--base-url", url, "--access-token", TOKEN])
        .args(args)
        .arg("doctor")
        .output()
        .expect("doctor ran")
}

fn text(out: &std::process::Output) -> (i32, String) {
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), all)
}

#[test]
fn a_clean_setup_exits_0_and_a_finding_exits_1_with_its_fix() {
    let dir = ScratchDir::new("cli-doctor");
    let clean = emulator(&dir, true, false);
    let (code, out) = text(&doctor(&clean.url, &["--org", ORG]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no mistakes found"), "{out}");

    let dir = ScratchDir::new("cli-doctor-admin");
    let polar = emulator(&dir, false, false);
    let (code, out) = text(&doctor(&polar.url, &["--org", ORG]));
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("customer_admin_off: "), "{out}");
    assert!(lines[1].starts_with("  fix: turn on"), "{out}");
    assert_eq!(lines.last().copied(), Some("1 finding to fix"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");

    let out = doctor(&polar.url, &["--org", ORG, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["command"], "doctor");
    assert_eq!(v["outcome"], "denied");
    assert_eq!(v["findings"][0]["code"], "customer_admin_off");
    assert_eq!(v["findings"][0]["benefit_id"], BENEFIT);
    assert!(v["findings"][0]["fix"]
        .as_str()
        .is_some_and(|f| !f.is_empty()));
}

#[test]
fn a_production_org_id_against_the_sandbox_is_a_mix_up() {
    let dir = ScratchDir::new("cli-doctor-sandbox");
    let polar = emulator(&dir, true, true);
    let out = doctor(&polar.url, &["--org", PRODUCTION_ORG, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["environment"], "sandbox");
    assert_eq!(v["findings"][0]["code"], "organization_not_found");
    assert!(
        v["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a production id or token in a sandbox build")),
        "{v}"
    );
}

#[test]
fn no_token_is_bad_input_and_polar_out_of_reach_exits_3() {
    let out = clean_command(BIN)
        .args(["--base-url", "http://127.0.0.1:9", "doctor", "--json"])
        .output()
        .expect("doctor ran");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(2), "{v}");
    assert_eq!(v["field"], "access_token");

    let out = doctor("http://127.0.0.1:9", &["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["outcome"], "unverified");
    assert_eq!(v["findings"], json!([]));
}
