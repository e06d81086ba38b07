//! `polar-license usage METER UNITS --relay URL` (issue #68 item 3, docs/entitlements.md) as
//! real processes: `polar-license emulator` seeded with a meter credit benefit of 10 units,
//! `polar-license relay serve --store memory --record-usage --sign-entitlements
//! --refuse-at-zero-credits` in front of it; reports recorded with the balance after them,
//! then refused at zero with `credits_exhausted` (exit 1), a wrong key denied (exit 1), bad
//! units refused unsent (exit 2); a report the relay's backlog holds (a relay whose token
//! cannot write events: nothing ingested, a key's 100 waiting reports fill it) is the core's
//! `usage_backlog` through the Rust face (`BlockingClient::send_usage`) and the command line
//! (`code`, its `reason` staying `rate_limited` as shipped).

use polar_license_emulator::{Seed, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::{
    clean_command, expect_json_field, meter, meter_credit, Launch, ScratchDir, Served,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

mod common;
use common::{customers_subscribed_key, emulator_on, relay_with_store, BIN};

const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
const TOKENS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const KEY: &str = "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";

fn seed_file(dir: &ScratchDir) -> String {
    let mut seed = Seed::demo();
    seed.meters.push(meter(
        TOKENS,
        "Tokens",
        "tokens_used",
        Some(json!({"func": "sum", "property": "units"})),
    ));
    seed.benefits.push(meter_credit(CREDIT, TOKENS, 10));
    seed.license_keys.push(customers_subscribed_key(
        KEY,
        "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b",
        &[CREDIT],
    ));
    common::seed_file(dir, "seed.json", &seed)
}

/// `usage tokens_used UNITS --key KEY --relay RELAY` with its cache in `dir/cache`.
fn usage(relay: &str, dir: &ScratchDir, key: &str, units: &str) -> Output {
    usage_with(relay, &dir.path().join("cache"), key, units, &[])
}

/// The same with `options` added before the command and its cache in `cache`.
fn usage_with(relay: &str, cache: &Path, key: &str, units: &str, options: &[&str]) -> Output {
    clean_command(BIN)
        .args(["--org", DEMO_ORGANIZATION_ID, "--json"])
        .args(options)
        .args(["--cache-dir", cache.to_str().expect("UTF-8")])
        .args([
            "usage",
            "tokens_used",
            units,
            "--key",
            key,
            "--relay",
            relay,
        ])
        .launch()
}

/// The relay in front of `polar` that records usage, signs and refuses at zero credits: it
/// and its signing pair.
fn metered_relay(dir: &ScratchDir, polar: &Served) -> (Served, String) {
    let flags = [
        "--record-usage",
        "--sign-entitlements",
        "--refuse-at-zero-credits",
    ];
    relay_with_store(dir, polar, DEMO_TOKEN, &flags)
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("one JSON object ({e}): {o:?}"))
}

#[test]
fn usage_is_recorded_with_its_balance_then_refused_at_zero() {
    let dir = ScratchDir::new("cli-usage");
    let polar = emulator_on(&seed_file(&dir));
    let (relay, _pair) = metered_relay(&dir, &polar);
    // Reports of 1 until the relay has read the customer's meters (its answer then carries
    // the balance), then of 4 down to zero and past it.
    let start = Instant::now();
    let mut used = 0.0;
    loop {
        let o = usage(&relay.url, &dir, KEY, "1");
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        used += 1.0;
        let v = json_of(&o);
        assert_eq!(v["outcome"], "done", "{v}");
        if let Some(b) = v["balance"].as_f64() {
            assert_eq!(b, 10.0 - used, "{v}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no balance: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    while used < 10.0 {
        let o = usage(&relay.url, &dir, KEY, "4");
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        used += 4.0;
        assert_eq!(json_of(&o)["balance"].as_f64(), Some(10.0 - used), "{o:?}");
    }
    let v = expect_json_field(
        &usage(&relay.url, &dir, KEY, "1"),
        1,
        "reason",
        "credits_exhausted",
    );
    assert_eq!(v["outcome"], "denied", "{v}");
    // A key Polar does not know: its denial, nothing recorded.
    let o = usage(&relay.url, &dir, "USE-NOT-A-KEY-AT-ALL", "1");
    expect_json_field(&o, 1, "reason", "not_found");
    // Bad units: refused before anything is sent.
    let o = usage(&relay.url, &dir, KEY, "0");
    let v = expect_json_field(&o, 2, "reason", "invalid_input");
    assert_eq!(v["field"], "units", "{v}");
}

/// A token of the demo organization without `events:write`: its relay cannot ingest.
const NO_EVENTS_TOKEN: &str = "polar_oat_emulator_noevents_0123456789ab";
const HELD_KEY: &str = "USE-HELD-0F1A-4B2C-9D3E-4F5A6B7C8D9E";

#[test]
fn a_report_the_relays_backlog_holds_is_usage_backlog_on_the_rust_face_and_the_cli() {
    use polar_license::usage::{UsageAnswer, BACKLOG_CODE};
    let dir = ScratchDir::new("cli-usage-held");
    let mut seed = Seed::demo();
    seed.access_tokens.push(polar_license_emulator::SeedToken {
        token: NO_EVENTS_TOKEN.into(),
        organization_id: None,
        scopes: vec!["license_keys:read".into(), "license_keys:write".into()],
    });
    seed.license_keys.push(customers_subscribed_key(
        HELD_KEY,
        "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2c",
        &[],
    ));
    let polar = emulator_on(&common::seed_file(&dir, "held-seed.json", &seed));
    let (relay, _pair) = relay_with_store(&dir, &polar, NO_EVENTS_TOKEN, &["--record-usage"]);
    let client = polar_license::BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .base_url(&relay.url)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let key = polar_license::Key::new(HELD_KEY);
    // Nothing is ingested: a key's 100 waiting reports fill the relay's backlog.
    for _ in 0..100 {
        let answer = client
            .record_usage(&key, "tokens_used", 1.0)
            .expect("an answer");
        assert!(matches!(answer, UsageAnswer::Recorded { .. }), "{answer:?}");
    }
    let answer = client
        .record_usage(&key, "tokens_used", 1.0)
        .expect("an answer");
    assert_eq!(answer.code(), BACKLOG_CODE, "{answer:?}");
    assert_eq!(answer.code(), "usage_backlog");
    assert_eq!(answer.retry_after(), Some(60));
    // The command line: `code` the core's, `reason` as shipped.
    let o = usage(&relay.url, &dir, HELD_KEY, "1");
    let v = json_of(&o);
    assert_eq!(v["code"], "usage_backlog", "{v}");
    assert_eq!(v["reason"], "rate_limited", "{v}");
    assert_eq!(v["retry_after"], 60, "{v}");
}

/// `usage` with `--relay-key` (issue #76): the relay's signed acknowledgement is required.
fn usage_signed(relay: &str, dir: &ScratchDir, units: &str, pair: &str) -> Output {
    let cache = dir.path().join("cache-signed");
    usage_with(relay, &cache, KEY, units, &["--relay-key", pair])
}

/// The command line in signed mode (`--relay-key`, issue #76) against a relay that signs its
/// usage acknowledgements: recorded with the signed balance (`signed: true`); a proxy turning
/// the seller's refusal at zero into `recorded` with credits (the relay's token kept), the
/// same with the token stripped, and a fake relay answering `recorded` with a million (no
/// token) are each `protocol_error` (exit 3), their balance never shown. Without
/// `--relay-key` the fake answer is taken, and the command says it is unsigned.
#[test]
fn a_forged_usage_acknowledgement_is_a_protocol_error_with_relay_keys() {
    use polar_license_testkit::usage_forger::{usage_forger, Answer};
    let dir = ScratchDir::new("cli-usage-forged");
    let polar = emulator_on(&seed_file(&dir));
    let (relay, pair) = metered_relay(&dir, &polar);
    // Recorded, signed, until the balance is known; then past zero.
    let start = Instant::now();
    loop {
        let v = json_of(&usage_signed(&relay.url, &dir, "1", &pair));
        assert_eq!(
            (&v["outcome"], &v["signed"]),
            (&json!("done"), &json!(true)),
            "{v}"
        );
        if v["balance"].is_number() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no balance: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = json_of(&usage_signed(&relay.url, &dir, "20", &pair));
    assert_eq!(v["outcome"], "done", "{v}");
    let o = usage_signed(&relay.url, &dir, "1", &pair);
    expect_json_field(&o, 1, "reason", "credits_exhausted");
    // The refusal turned into `recorded` by a proxy: not believed.
    let free = usage_forger(
        Some(&relay.url),
        Box::new(|a: Answer, _| Answer {
            status: 200,
            body: br#"{"recorded":true,"duplicate":false,"balance":5}"#.to_vec(),
            ..a
        }),
    );
    let o = usage_signed(&free.url, &dir, "1", &pair);
    let v = expect_json_field(&o, 3, "reason", "protocol_error");
    assert!(v.get("balance").is_none(), "{v}");
    // The same with the relay's token stripped: no acknowledgement, not believed.
    let stripped = usage_forger(
        Some(&relay.url),
        Box::new(|a: Answer, _| {
            Answer {
                status: 200,
                body: br#"{"recorded":true,"duplicate":false,"balance":5}"#.to_vec(),
                ..a
            }
            .with_header(polar_license::lease::USAGE_HEADER, None)
        }),
    );
    let o = usage_signed(&stripped.url, &dir, "1", &pair);
    let v = expect_json_field(&o, 3, "reason", "protocol_error");
    assert!(v.get("balance").is_none(), "{v}");
    // A fake relay: not believed either.
    let fake = usage_forger(
        None,
        Box::new(|a: Answer, _| Answer {
            body: br#"{"recorded":true,"duplicate":false,"balance":1000000}"#.to_vec(),
            ..a
        }),
    );
    let o = usage_signed(&fake.url, &dir, "1", &pair);
    let v = expect_json_field(&o, 3, "reason", "protocol_error");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("1000000"),
        "{v}"
    );
    // Unsigned mode: taken as it came, and said to be unsigned.
    let o = usage(&fake.url, &dir, KEY, "1");
    let v = json_of(&o);
    assert_eq!(
        (&v["outcome"], &v["signed"]),
        (&json!("done"), &json!(false)),
        "{v}"
    );
}
