//! The seller's rows (issue #54, "Done when" 2nd bullet) through the `polar-license` binary:
//! the same table as every face (tests/vectors/seller-rows.json), each row against its own
//! emulator, `check --released YYYY-MM-DD`, `--trial DAYS`, `--trial-benefit ID` with `--json`,
//! time moved with the hidden `POLAR_LICENSE_CLOCK_OFFSET` hook and the emulator's clock with
//! it; each check's exit code must be the one docs/interfaces.md gives its verdict. The rows are written to target/seller-table/cli.tsv for scripts/seller-table.sh; the
//! test fails when a step of any row answers otherwise than the table says.

use polar_license::schema::rfc3339 as parse_time;
use polar_license_emulator::{Emulator, Fault, DEMO_KEY};
use polar_license_testkit::seller_rows::{
    codes_cell, devices_cell, elsewhere, emailed_code, followed_cell, play_with_values,
    recovered_cell, revoke, seconds, shows_key, Found, Row, Step, TrialCell, Verdict,
    DEVICES_EMAIL, TRIAL_BENEFIT,
};
use polar_license_testkit::values_rows::{
    balance_cell, credits_cell, play_values, recorded_cell, stopped_cell, Hello, ValuesFace,
};
use polar_license_testkit::{
    clean_command, cli_against, expect_answer_keys, json_answer, relay_in_front_of, rfc3339,
    unix_now, Launch, ScratchDir,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// `polar-license --json ARGS…` at `offset` seconds from now (Polar's clock moved with it).
fn run(polar: &Emulator, dir: &ScratchDir, offset: i64, args: &[String]) -> (i32, Value) {
    run_at(polar, dir, offset, offset, args)
}

/// [`run`] with Polar's clock at `polar_offset` (a `polar_clock` step moved it alone).
fn run_at(
    polar: &Emulator,
    dir: &ScratchDir,
    offset: i64,
    polar_offset: i64,
    args: &[String],
) -> (i32, Value) {
    polar.set_clock_offset(polar_offset);
    let mut cmd = cli_against(BIN, &polar.url(), &polar.organization_id(), dir.path());
    cmd.env("POLAR_LICENSE_CLOCK_OFFSET", offset.to_string())
        .arg("--json")
        .args(args);
    let (code, v) = json_answer(&cmd.launch());
    expect_answer_keys(&v);
    (code, v)
}

/// A `--json` answer in the table's vocabulary, times from `start`.
fn verdict(v: &Value, start: i64) -> Verdict {
    let time = |t: &Value| t.as_str().and_then(parse_time).map(|t| t - start);
    let (verdict, source) = match v["outcome"].as_str() {
        Some("licensed") => (
            "licensed".to_string(),
            v["source"].as_str().map(str::to_string),
        ),
        Some("trial") => ("trial".to_string(), None),
        _ => (v["reason"].as_str().unwrap_or("none").to_string(), None),
    };
    let fallback = v
        .get("fallback")
        .map(|f| (f.as_bool().unwrap_or_default(), time(&v["paid_through"])));
    let trial = v.get("trial").map(|t| {
        (!t.is_null()).then(|| TrialCell {
            local: t["local"].as_bool().unwrap_or_default(),
            state: t["state"].as_str().unwrap_or_default().to_string(),
            days_left: t["days_left"].as_u64().unwrap_or(u64::MAX),
            ends: time(&t["ends_at"]),
        })
    });
    Verdict {
        verdict,
        source,
        fallback,
        trial,
    }
}

/// The exit code docs/interfaces.md gives a verdict: 0 licensed (or a local trial running), 2
/// invalid input, 3 unverified or error, 1 denied.
fn exit_for(verdict: &str) -> i32 {
    match verdict {
        "licensed" | "trial" => 0,
        "invalid_input" => 2,
        "offline" | "rate_limited" | "server_error" | "protocol_error" | "grace_expired"
        | "clock_rollback" | "cache_error" => 3,
        _ => 1,
    }
}

/// Compares a check's answer (and its exit code) with the step's expectation.
fn compare(
    found: &mut Found,
    step: usize,
    want: Option<&Verdict>,
    code: i32,
    v: &Value,
    start: i64,
) {
    let got = verdict(v, start);
    if want.is_some() && code != exit_for(&got.verdict) {
        found.failures.push(format!(
            "step {step}: exit {code} for `{}` (docs/interfaces.md: {})",
            got.verdict,
            exit_for(&got.verdict)
        ));
    }
    found.compare(step, want, &got);
}

/// What a check adds for the row's app: its release date, its trial, its trial benefit.
fn app_args(row: &Row, start: i64) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(at) = row.released(start) {
        args.extend(["--released".to_string(), rfc3339(at)[..10].to_string()]);
    }
    if let Some(days) = row.trial_days {
        args.extend(["--trial".to_string(), days.to_string()]);
    }
    if row.trial_benefit {
        args.extend(["--trial-benefit".to_string(), TRIAL_BENEFIT.to_string()]);
    }
    args
}

fn run_row(row: &Row) -> Found {
    // Whole seconds: the JSON's RFC 3339 times have none smaller.
    let start = unix_now();
    let polar = row.emulator(start);
    let dir = ScratchDir::new(&format!("cli-seller-{}", row.id));
    let app = app_args(row, start);
    let key = |cmd: &str| -> Vec<String> {
        [cmd, "--key", DEMO_KEY]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // The seller's relay (`relay serve`) in front of the row's Polar, when a step lists
    // through it.
    let relays = ScratchDir::new(&format!("cli-seller-{}-relay", row.id));
    let relay = row
        .relay()
        .then(|| relay_in_front_of(BIN, &polar.url(), &relays));
    let mut found = Found::new(row);
    // Where a `polar_clock` step moved Polar's clock alone (the devices steps keep it there).
    let mut ahead = 0;
    // The activation this machine took (a rotation keeps it).
    let mut mine: Option<String> = None;
    for (i, step) in row.steps.iter().enumerate() {
        match step {
            Step::PolarClock(day) => ahead = seconds(*day),
            Step::Activate(day) => {
                let mut args = key("activate");
                args.extend(["--label".to_string(), "laptop".to_string()]);
                let (code, v) = run(&polar, &dir, seconds(*day), &args);
                if code != 0 {
                    found.failures.push(format!("step {i}: activate: {v}"));
                }
            }
            Step::Check(day, want) => {
                let mut args = key("check");
                args.extend(app.iter().cloned());
                let (code, v) = run(&polar, &dir, seconds(*day), &args);
                compare(&mut found, i, want.as_ref(), code, &v, start);
            }
            Step::Trial(day, want) => {
                let mut args = vec!["check".to_string()];
                args.extend(app.iter().cloned());
                let (code, v) = run(&polar, &dir, seconds(*day), &args);
                compare(&mut found, i, want.as_ref(), code, &v, start);
            }
            Step::Revoke(day) => {
                polar.set_clock_offset(seconds(*day));
                revoke(&polar);
            }
            Step::Offline => polar.set_fault(Some(Fault::CloseImmediately)),
            Step::Elsewhere(label) => {
                elsewhere(&polar, DEMO_KEY, label);
            }
            Step::TryActivate(want) => {
                let mut args = key("activate");
                args.extend(["--label".to_string(), "This laptop".to_string()]);
                let (code, v) = run(&polar, &dir, 0, &args);
                let got = match (code, v["outcome"].as_str()) {
                    (0, Some("done")) => {
                        mine = v["activation_id"].as_str().map(str::to_string);
                        "activated".to_string()
                    }
                    _ => v["reason"].as_str().unwrap_or("none").to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::SignIn => {
                let email = ["sign-in", "--email", DEVICES_EMAIL].map(String::from);
                let (code, v) = run(&polar, &dir, 0, &email);
                let typed = emailed_code(&polar.customer_session_codes());
                let (code2, v2) = run(
                    &polar,
                    &dir,
                    0,
                    &["sign-in", "--code", &typed].map(String::from),
                );
                if code != 0 || code2 != 0 || v2["signed_in"] != true {
                    found.failures.push(format!("step {i}: sign in: {v} {v2}"));
                }
            }
            // `sign-in --email` until Polar refuses: the refusal's `portal_error` and
            // `retry_after` (JSON).
            Step::RequestCodes(times, want) => {
                let email = ["sign-in", "--email", DEVICES_EMAIL].map(String::from);
                let mut sent = 0;
                let mut refused = None;
                for _ in 0..*times {
                    let (code, v) = run(&polar, &dir, 0, &email);
                    if code == 0 {
                        sent += 1;
                    } else {
                        refused = Some(v);
                        break;
                    }
                }
                let got = codes_cell(
                    sent,
                    refused.as_ref().map(|v| {
                        (
                            v["portal_error"].as_str().unwrap_or("none"),
                            v["retry_after"].as_u64(),
                        )
                    }),
                );
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::Devices(want) => {
                let (_, v) = run_at(&polar, &dir, 0, ahead, &key("devices"));
                found.compare(i, want.as_ref(), &Verdict::word(devices_of(&v)));
            }
            // `devices --relay URL`: no session, the relay lists them.
            Step::DevicesRelay(want) => {
                let mut args = key("devices");
                if let Some(relay) = &relay {
                    args.extend(["--relay".to_string(), relay.url.clone()]);
                }
                let (_, v) = run(&polar, &dir, 0, &args);
                found.compare(i, want.as_ref(), &Verdict::word(devices_of(&v)));
            }
            // `recover --json` lists the customer's keys; `recover ID` activates the one shown
            // as the row's key here.
            Step::Recover(want) => {
                let (_, listed) = run(&polar, &dir, 0, &["recover".to_string()]);
                let lost = listed["keys"].as_array().and_then(|keys| {
                    keys.iter()
                        .find(|k| shows_key(k["display_key"].as_str().unwrap_or(""), DEMO_KEY))
                        .and_then(|k| k["id"].as_str())
                        .map(str::to_string)
                });
                let got = match (listed["outcome"].as_str(), lost) {
                    (Some("done"), Some(id)) => {
                        let args = ["recover", &id, "--label", "Recovered here"].map(String::from);
                        let (code, v) = run(&polar, &dir, 0, &args);
                        recovered_cell(match (code, v["outcome"].as_str()) {
                            (0, Some("done")) => "activated",
                            _ => v["reason"].as_str().unwrap_or("none"),
                        })
                    }
                    (Some("done"), None) => "unlisted".to_string(),
                    _ => devices_of(&listed),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            // The customer rotates the key at Polar (the emulator's rotate).
            Step::Rotate => {
                if polar.rotate_key(DEMO_KEY).is_none() {
                    found.failures.push(format!("step {i}: rotate"));
                }
            }
            // `follow-rotation --key OLD`: licensed with the activation this machine took.
            Step::FollowRotation(want) => {
                let (code, v) = run(&polar, &dir, 0, &key("follow-rotation"));
                let kept = mine.is_some() && v["activation_id"].as_str() == mine.as_deref();
                let got = match (code, v["outcome"].as_str()) {
                    (0, Some("licensed")) => followed_cell("licensed", kept),
                    (_, Some("denied")) => {
                        followed_cell(v["reason"].as_str().unwrap_or("none"), false)
                    }
                    _ => devices_of(&v),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::FreeOther => {
                let (_, v) = run(&polar, &dir, 0, &key("devices"));
                let other = v["devices"].as_array().and_then(|d| {
                    d.iter()
                        .find(|d| d["this_machine"] == false)
                        .and_then(|d| d["id"].as_str())
                        .map(str::to_string)
                });
                let Some(id) = other else {
                    found
                        .failures
                        .push(format!("step {i}: no other device: {v}"));
                    continue;
                };
                let mut args = vec!["free".to_string(), id];
                args.extend(key("").into_iter().skip(1));
                let (code, v) = run(&polar, &dir, 0, &args);
                if code != 0 {
                    found.failures.push(format!("step {i}: free: {v}"));
                }
            }
        }
    }
    found
}

/// `devices --json`'s answer as a cell: the devices listed and whether one is this machine's,
/// or the failure's `portal_error` (else its reason).
fn devices_of(v: &Value) -> String {
    match v["devices"].as_array() {
        Some(d) if v["outcome"] == "done" => {
            devices_cell(d.len(), d.iter().any(|d| d["this_machine"] == true))
        }
        _ => v["portal_error"]
            .as_str()
            .or(v["reason"].as_str())
            .unwrap_or("none")
            .to_string(),
    }
}

/// The values rows' face (issue #68): the binary in signed mode at the relay (`--relay-key`,
/// every check asking it: `--revalidate-after 0`), a cache a relay: `entitlement NAME`,
/// `usage METER UNITS --id ID`, and `check`'s `stopped`.
struct CliFace {
    org: String,
    pair: String,
    dir: ScratchDir,
}

impl CliFace {
    fn new(world: &Hello) -> CliFace {
        CliFace {
            org: world.org.clone(),
            pair: world.pair.clone(),
            dir: ScratchDir::new(&format!("cli-seller-values-{}", world.host)),
        }
    }

    fn run(&self, relay: &str, args: &[&str]) -> (i32, Value) {
        // A cache a relay (its port names it).
        let port = relay.rsplit(':').next().unwrap_or_default();
        let cache = self.dir.path().join(format!("cache-{port}"));
        let mut cmd = clean_command(BIN);
        cmd.args(["--base-url", relay, "--org", &self.org])
            .args(["--cache-dir", cache.to_str().expect("UTF-8")])
            .args(["--no-machine-binding", "--revalidate-after", "0"])
            .args(["--relay-key", &self.pair, "--json"])
            .args(args);
        json_answer(&cmd.launch())
    }
}

impl ValuesFace for CliFace {
    async fn value(&self, relay: &str, key: &str, name: &str) -> String {
        let (code, v) = self.run(relay, &["entitlement", name, "--key", key]);
        match (code, &v["entitlement"]["value"]) {
            (0, Value::String(s)) => s.clone(),
            (0, value) => value.to_string(),
            (4, _) => "absent".to_string(),
            _ => v["reason"].as_str().unwrap_or("none").to_string(),
        }
    }

    async fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String {
        let units = units.to_string();
        let (_, v) = self.run(
            relay,
            &[
                "usage", meter, &units, "--key", key, "--relay", relay, "--id", id,
            ],
        );
        match (v["outcome"].as_str(), v["reason"].as_str()) {
            (Some("done"), _) => {
                recorded_cell(v["duplicate"] == true, balance_cell(v["balance"].as_f64()))
            }
            (_, Some("credits_exhausted")) => credits_cell(balance_cell(v["balance"].as_f64())),
            (_, reason) => reason.unwrap_or("none").to_string(),
        }
    }

    async fn relay_check(&self, relay: &str, key: &str) -> String {
        let (_, v) = self.run(relay, &["check", "--key", key]);
        if v["outcome"] == "licensed" {
            return "licensed".to_string();
        }
        let reason = v["reason"].as_str().unwrap_or("none");
        match v["stopped"]["kind"].as_str() {
            Some(kind) => {
                let until = v["stopped"]["until"].as_str().and_then(parse_time);
                stopped_cell(reason, kind, until)
            }
            None => reason.to_string(),
        }
    }
}

#[test]
fn cli_seller_table() {
    play_with_values("cli", run_row, || play_values(BIN, CliFace::new));
}
