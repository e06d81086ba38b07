//! The organization token's budget of `polar-license emulator` as a real process
//! (docs/interfaces.md §2 and §3, polar-api.md §8 and §14): `--token-budget N` (0: off),
//! `--token-window SECONDS`, `--sandbox`, and the seed file's `token_budget` and
//! `token_window_seconds`, each through the binary's banner and its answers.

use std::time::{Duration, Instant};

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http::{self, HttpAnswer};
use polar_license_testkit::{clean_command, expect_json_field, Launch, ScratchDir, Served};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const OTHER_ORG: &str = "7c1d9e2a-4b3f-4a5e-9d8c-1b2a3c4d5e6f";
const OTHER_TOKEN: &str = "polar_oat_other_org_0123456789abcdef01";
const OTHER_KEY: &str = "OTHER-11111111-2222-4333-8444-555555555555";

/// A seed of two organizations, each with a key and a token; `extra` adds top-level fields.
fn seed_file(dir: &ScratchDir, extra: Value) -> String {
    let mut seed = json!({
        "organization_id": DEMO_ORGANIZATION_ID,
        "license_keys": [
            {"key": DEMO_KEY},
            {"key": OTHER_KEY, "organization_id": OTHER_ORG}
        ],
        "access_tokens": [
            {"token": DEMO_TOKEN},
            {"token": OTHER_TOKEN, "organization_id": OTHER_ORG}
        ]
    });
    if let (Some(seed), Some(extra)) = (seed.as_object_mut(), extra.as_object()) {
        seed.extend(extra.clone());
    }
    let path = dir.join("seed.json");
    std::fs::write(&path, seed.to_string()).expect("seed written");
    path.to_string_lossy().into_owned()
}

/// `polar-license emulator --port 0 ARGS…`, and its banner's line about the token budget.
fn emulator(args: &[&str]) -> (Served, String) {
    let mut cmd = clean_command(BIN);
    cmd.args(["emulator", "--port", "0"]).args(args);
    let (served, banner) = Served::start_with_banner(&mut cmd, "serving");
    let line = banner
        .iter()
        .find(|l| l.starts_with("token budget"))
        .unwrap_or_else(|| panic!("no token budget line: {banner:?}"))
        .clone();
    (served, line)
}

fn agent() -> ureq::Agent {
    http::agent(Duration::from_secs(10))
}

/// An answer, with when its request was sent and when it was read.
struct Answer {
    http: HttpAnswer,
    sent: Instant,
    answered: Instant,
}

impl std::ops::Deref for Answer {
    type Target = HttpAnswer;

    fn deref(&self) -> &HttpAnswer {
        &self.http
    }
}

impl Answer {
    fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no retry-after seconds: {:?}", self.headers))
    }
}

/// A validate on the token twin with `token`, for `org`'s `key`.
fn validate(agent: &ureq::Agent, url: &str, token: &str, org: &str, key: &str) -> Answer {
    let sent = Instant::now();
    let response = agent
        .post(&format!("{url}/v1/license-keys/validate"))
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(json!({"key": key, "organization_id": org}).to_string())
        .expect("an answer");
    Answer {
        http: HttpAnswer::read(response),
        sent,
        answered: Instant::now(),
    }
}

fn demo(agent: &ureq::Agent, url: &str) -> Answer {
    validate(agent, url, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY)
}

fn other(agent: &ureq::Agent, url: &str) -> Answer {
    validate(agent, url, OTHER_TOKEN, OTHER_ORG, OTHER_KEY)
}

/// Whole seconds as the emulator (and Redis' `TTL`) reports a remaining time: rounded, at
/// least 1.
fn ttl(d: Duration) -> u64 {
    ((d.as_millis() + 500) / 1000).max(1) as u64
}

/// `n` calls of the demo organization, each answered 200.
fn spend(agent: &ureq::Agent, url: &str, n: usize) {
    for i in 0..n {
        let r = demo(agent, url);
        assert_eq!(r.status, 200, "call {} of {n}: {}", i + 1, r.text());
    }
}

/// `polar-license emulator ARGS…`, whose banner says a budget of `budget` calls per `window`
/// seconds, with the budget spent: the next call is Polar's 429, its `retry-after` within the
/// window. The emulator and that 429.
fn spent(args: &[&str], budget: usize, window: u64) -> (Served, Answer) {
    let (polar, line) = emulator(args);
    assert_eq!(
        line,
        format!("token budget: {budget} calls per {window}s per organization (429 past it)")
    );
    let agent = agent();
    spend(&agent, &polar.url, budget);
    let r = demo(&agent, &polar.url);
    assert_eq!(r.status, 429);
    assert!(
        (window - 1..=window).contains(&r.retry_after()),
        "{}",
        r.retry_after()
    );
    (polar, r)
}

#[test]
fn the_call_past_the_budget_is_polars_429_until_the_window_ends_and_only_for_its_organization() {
    const BUDGET: usize = 50;
    const WINDOW: Duration = Duration::from_secs(5);
    let dir = ScratchDir::new("cli-token-budget");
    let seed = seed_file(&dir, json!({}));
    let (polar, line) = emulator(&[
        "--seed",
        &seed,
        "--token-budget",
        "50",
        "--token-window",
        "5",
    ]);
    assert_eq!(
        line,
        "token budget: 50 calls per 5s per organization (429 past it)"
    );
    let agent = agent();
    // The window opens at the first call the emulator answers: between these two instants.
    let first = demo(&agent, &polar.url);
    assert_eq!(first.status, 200, "{}", first.text());
    spend(&agent, &polar.url, BUDGET - 1);
    // Two seconds into the window, so that what remains (about 3 s) is not the whole window.
    let later = first.answered + Duration::from_secs(2);
    std::thread::sleep(later.saturating_duration_since(Instant::now()));
    let refused = demo(&agent, &polar.url);
    assert!(
        refused.answered - first.sent < WINDOW,
        "{BUDGET} calls took longer than the window: nothing to conclude"
    );
    // Polar's 429 of the zone `api` (polar-api.md §8): an empty body, `retry-after`, no
    // rate-limit headers, none of a JSON answer's.
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.text(), "");
    let mut names: Vec<String> = refused
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["content-length", "date", "polar-version", "retry-after"],
        "{:?}",
        refused.headers
    );
    assert_eq!(refused.header("content-length"), Some("0"));
    // `retry-after` is the window's remaining time, rounded: between what remains counted from
    // the first call's answer to the 429's request, and from the first call's request to the
    // 429's answer.
    let retry = refused.retry_after();
    let least = ttl(WINDOW.saturating_sub(refused.answered - first.sent));
    let most = ttl(WINDOW.saturating_sub(refused.sent - first.answered));
    assert!(
        (least..=most).contains(&retry),
        "retry-after {retry}, the window's remaining seconds are {least} to {most}"
    );
    // The other organization passes in the same window; the first is still refused.
    let passed = other(&agent, &polar.url);
    assert_eq!(passed.status, 200, "{}", passed.text());
    let again = demo(&agent, &polar.url);
    assert_eq!(again.status, 429);
    assert!(
        again.answered - first.sent < WINDOW,
        "still the same window"
    );
    // After the window (the emulator's own retry-after, plus half a second of rounding and a
    // margin), the organization passes again.
    let end = refused.answered + Duration::from_secs(retry) + Duration::from_millis(700);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let next = demo(&agent, &polar.url);
    assert_eq!(next.status, 200, "the next window: {}", next.text());
}

#[test]
fn token_budget_0_turns_the_budget_off() {
    let (polar, line) = emulator(&["--token-budget", "0"]);
    assert_eq!(line, "token budget off");
    // Past Polar's 500 a minute.
    spend(&agent(), &polar.url, 501);
}

#[test]
fn sandbox_has_polars_100_and_the_flag_wins_over_it() {
    let (polar, r) = spent(&["--sandbox"], 100, 60);
    assert_eq!(r.header("x-polar-sandbox"), None, "a bare 429");
    drop(polar);
    spent(&["--sandbox", "--token-budget", "3"], 3, 60);
}

#[test]
fn the_seed_files_budget_and_window_and_the_flags_over_them() {
    let dir = ScratchDir::new("cli-token-budget-seed");
    let seed = seed_file(&dir, json!({"token_budget": 4, "token_window_seconds": 2}));
    let (polar, r) = spent(&["--seed", &seed], 4, 2);
    let agent = agent();
    // The seed's window, not Polar's minute: the next one passes.
    let end = r.answered + Duration::from_secs(r.retry_after()) + Duration::from_millis(700);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    assert_eq!(demo(&agent, &polar.url).status, 200);
    drop(polar);

    // The flags win over the seed, each on its own.
    drop(spent(&["--seed", &seed, "--token-budget", "2"], 2, 2));
    let (_polar, line) = emulator(&["--seed", &seed, "--token-window", "7"]);
    assert_eq!(
        line,
        "token budget: 4 calls per 7s per organization (429 past it)"
    );
    // A budget of 0 in the seed is off.
    let off = seed_file(&dir, json!({"token_budget": 0}));
    let (polar, line) = emulator(&["--seed", &off]);
    assert_eq!(line, "token budget off");
    spend(&agent, &polar.url, 501);
}

#[test]
fn a_window_of_0_is_a_usage_error() {
    let o = clean_command(BIN)
        .args(["--json", "emulator", "--port", "0", "--token-window", "0"])
        .launch();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let dir = ScratchDir::new("cli-token-window-0");
    let seed = seed_file(&dir, json!({"token_window_seconds": 0}));
    let o = clean_command(BIN)
        .args(["--json", "emulator", "--port", "0", "--seed", &seed])
        .launch();
    expect_json_field(&o, 2, "field", "seed");
}
