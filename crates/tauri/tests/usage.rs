//! `record_usage` (issue #68 item 3) through Tauri's IPC on the mock runtime, against the
//! seller's relay (crates/relay in process, usage on, the seller's rule refusing at zero
//! credits) in front of the emulator over loopback, seeded with a meter credit of 10 units:
//! a report recorded with its id; the same id again counted once (Polar's meter shows it once);
//! the key by default the remembered one; down to zero, then `credits_exhausted` with the
//! balance; a key Polar does not know its denial; and bad input refused in the plugin with
//! nothing sent (a listener counts the connections); a report the relay's backlog holds (its
//! token cannot write events: nothing ingested, a key's 100 waiting reports fill it) rejected
//! with the core's code, `usage_backlog`, and the relay's Retry-After.
//!
//! Every invocation and its answer is written to
//! `<target>/tmp/polar-license-tauri/answers-usage*.json` for the guest package's tests.

use polar_license::lease::SigningKey;
use polar_license::{AccessToken, MachineBinding, Server, UreqTransport};
use polar_license_emulator::{
    Emulator, Options as EmulatorOptions, Seed, SeedBenefit, SeedKey, SeedMeter, SeedSubscription,
    SeedToken, DEMO_TOKEN,
};
use polar_license_relay::store::{MemoryBackend, StoreOptions};
use polar_license_relay::{serve, Limits, Rate, Relay, RelayConfig, Running, StoreConfig};
use polar_license_tauri::{Options, UsageError, UsageRecorded};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::ScratchDir;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::test::MockRuntime;
use tauri::{App, WebviewWindow};

mod common;

const LICENSE: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
const TOKENS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
const KEY: &str = "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
/// The event the meter counts (a sum of `units`).
const METER: &str = "tokens_used";

/// Ten credited units of a meter summing `units`, on one customer's key.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.meters.push(SeedMeter {
        id: TOKENS.into(),
        name: "Tokens".into(),
        event_name: METER.into(),
        aggregation: Some(json!({"func": "sum", "property": "units"})),
    });
    seed.benefits.push(SeedBenefit {
        id: CREDIT.into(),
        kind: Some("meter_credit".into()),
        meter_id: Some(TOKENS.into()),
        units: Some(10),
        ..SeedBenefit::default()
    });
    seed.license_keys.push(SeedKey {
        benefit_id: Some(LICENSE.into()),
        customer_id: Some(CUSTOMER.into()),
        subscription: Some(SeedSubscription {
            id: Some("9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b".into()),
            ..SeedSubscription::default()
        }),
        benefits: vec![CREDIT.into()],
        // Activated through the plugin (then remembered).
        limit_activations: Some(3),
        ..SeedKey::new(KEY)
    });
    seed
}

/// The app on the mock runtime whose base URL is `base_url`, its cache in `dir`, and the
/// answers recorded for the guest package as `answers-<name>.json`.
struct UsageApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    name: String,
    recorded: Mutex<Vec<Value>>,
}

impl UsageApp {
    fn new(name: &str, organization_id: String, base_url: String, dir: &ScratchDir) -> UsageApp {
        let options = Options::default()
            .base_url(base_url)
            .cache_dir(dir.path())
            .configure(|builder| {
                builder
                    .machine_binding(MachineBinding::Id("machine-A".into()))
                    .timeout(Duration::from_secs(2))
            });
        let (app, webview) =
            common::app_with_window(organization_id, options, &["polar-license:default"]);
        UsageApp {
            _app: app,
            webview,
            name: name.to_string(),
            recorded: Mutex::new(Vec::new()),
        }
    }

    /// Invokes `command` as the webview does; the answer is recorded, and never carries the
    /// whole key.
    fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        let answer = common::invoke(&self.webview, command, args.clone());
        let text = format!("{answer:?}");
        assert!(
            !text.contains(KEY),
            "{command} answered the whole key: {text}"
        );
        let entry = match &answer {
            Ok(value) => json!({ "command": command, "args": args, "ok": value }),
            Err(value) => json!({ "command": command, "args": args, "err": value }),
        };
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        recorded.push(entry);
        common::write_fixture(
            &format!("answers-{}.json", self.name),
            &Value::Array(recorded.clone()),
        );
        answer
    }

    fn recorded(&self, args: Value) -> UsageRecorded {
        match self.invoke("record_usage", args) {
            Ok(v) => serde_json::from_value(v).expect("a UsageRecorded"),
            Err(e) => panic!("record_usage rejected: {e}"),
        }
    }

    fn refused(&self, args: Value) -> UsageError {
        match self.invoke("record_usage", args) {
            Ok(v) => panic!("record_usage resolved: {v}"),
            Err(e) => serde_json::from_value(e.clone())
                .unwrap_or_else(|_| panic!("not a UsageError: {e}")),
        }
    }
}

/// The relay in front of `polar` with usage on, entitlements (the balance) and the seller's
/// rule refusing at zero credits.
fn relay(polar: &Emulator) -> Running {
    relay_with(polar, DEMO_TOKEN, true)
}

/// The relay in front of `polar` with usage on, asking with `token`; `metered`: entitlements
/// and the seller's rule at zero credits on.
fn relay_with(polar: &Emulator, token: &str, metered: bool) -> Running {
    let signer = SigningKey::generate(Some("tauri-usage")).expect("a key");
    let mut config = RelayConfig::new(Server::Custom(polar.url()), AccessToken::new(token), signer);
    config.limits = Limits {
        per_ip: Rate::new(0, 0),
        per_key: Rate::new(0, 0),
        ..Limits::default()
    };
    let mut store = StoreOptions::default();
    store.entitlements = metered;
    store.usage = true;
    store.refuse_at_zero_credits = metered;
    store.reconcile_every = 0;
    store.roster = false;
    config.store = Some(StoreConfig {
        backend: Arc::new(MemoryBackend::new(1_000)),
        options: store,
        webhook_secret: None,
    });
    let upstream = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = Relay::new(config, Box::new(upstream)).expect("the relay");
    serve(Arc::new(relay), "127.0.0.1:0").expect("the relay listens")
}

/// The units Polar's meter shows consumed by the customer (the organization's read).
fn consumed(polar: &Emulator) -> f64 {
    let path = format!("/v1/customer-meters/?customer_id={CUSTOMER}");
    let r = raw_exchange(
        polar.port(),
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {DEMO_TOKEN}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["meter_id"] == TOKENS)
        .and_then(|m| m["consumed_units"].as_f64())
        .unwrap_or(0.0)
}

/// Waits (10 s at most) until Polar's meter shows `want` consumed.
fn until_consumed(polar: &Emulator, want: f64) {
    let start = Instant::now();
    loop {
        let got = consumed(polar);
        if (got - want).abs() < 1e-9 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Polar shows {got} consumed, not {want}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_report_counts_once_per_id_and_the_rule_refuses_at_zero_credits() {
    let polar = Emulator::start(seed(), EmulatorOptions::default()).expect("the emulator");
    let relay = relay(&polar);
    let dir = ScratchDir::new("tauri-usage");
    let app = UsageApp::new("usage", polar.organization_id(), relay.url(), &dir);

    // A report with the app's own id: recorded, not a duplicate, its id as given.
    let args = json!({"meter": METER, "units": 2, "id": "tauri-report-1", "key": KEY});
    let first = app.recorded(args.clone());
    assert_eq!(first.id, "tauri-report-1");
    assert!(!first.duplicate, "{first:?}");
    until_consumed(&polar, 2.0);
    // The same id again (the app's retry): a duplicate, counted once by Polar's meter.
    let again = app.recorded(args);
    assert_eq!(again.id, "tauri-report-1");
    assert!(again.duplicate, "{again:?}");

    // The key by default the remembered one (activated through the relay).
    app.invoke("activate", json!({"key": KEY}))
        .expect("the key activates");
    let mut used = 2.0;
    let mut balance = None;
    let start = Instant::now();
    while balance.is_none() {
        let r = app.recorded(json!({"meter": METER, "units": 1}));
        assert_eq!(r.id.len(), 36, "a UUID made by the core: {r:?}");
        assert!(!r.duplicate);
        used += 1.0;
        balance = r.balance;
        assert!(start.elapsed() < Duration::from_secs(10), "no balance");
        if balance.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Once the relay reads Polar's meter, its balance counts the first report once.
    assert_eq!(balance, Some(10.0 - used), "the duplicate counted?");
    until_consumed(&polar, used);

    // Down to zero (a report crossing zero is kept: the usage happened).
    while used < 10.0 {
        let r = app.recorded(json!({"meter": METER, "units": 3, "key": KEY}));
        used += 3.0;
        assert_eq!(r.balance, Some(10.0 - used), "{r:?}");
    }
    // At or below zero: the seller's rule refuses it, typed, with the balance and the id.
    let refused = app.refused(json!({"meter": METER, "units": 1, "id": "tauri-report-9"}));
    assert_eq!(refused.error.code, "credits_exhausted", "{refused:?}");
    assert_eq!(refused.error.class, "denied");
    assert_eq!(refused.error.status, Some(402));
    assert_eq!(refused.balance, Some(10.0 - used));
    assert_eq!(refused.id, "tauri-report-9");
    // Polar's meter: every recorded report once, the refused one not at all.
    until_consumed(&polar, used);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(consumed(&polar), used);

    // A key Polar does not know: its denial, through the relay.
    let denied = app.refused(json!({"meter": METER, "units": 1, "key": "USE-NOT-A-KEY-AT-ALL"}));
    assert_eq!(denied.error.code, "not_found", "{denied:?}");
    assert_eq!(denied.error.class, "denied");
    assert_eq!(denied.balance, None);
}

#[test]
fn bad_input_is_refused_in_the_plugin_with_nothing_sent() {
    // The relay: a listener that counts the connections made to it and closes each.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let dir = ScratchDir::new("tauri-usage-input");
    let app = UsageApp::new(
        "usage-input",
        polar_license_emulator::DEMO_ORGANIZATION_ID.to_string(),
        url.clone(),
        &dir,
    );
    let cases = [
        (json!({"meter": "", "units": 1, "key": KEY}), "meter"),
        (
            json!({"meter": "tab\there", "units": 1, "key": KEY}),
            "meter",
        ),
        (json!({"meter": METER, "units": 0, "key": KEY}), "units"),
        (json!({"meter": METER, "units": -1, "key": KEY}), "units"),
        (json!({"meter": METER, "units": 1e10, "key": KEY}), "units"),
        // NaN and the infinities, as JSON.stringify sends them.
        (json!({"meter": METER, "units": null, "key": KEY}), "units"),
        (
            json!({"meter": METER, "units": 1, "id": "a b", "key": KEY}),
            "id",
        ),
        (
            json!({"meter": METER, "units": 1, "id": "", "key": KEY}),
            "id",
        ),
        // No key given and none remembered.
        (json!({"meter": METER, "units": 1}), "key"),
    ];
    for (args, field) in cases {
        let e = app.refused(args.clone());
        assert_eq!(e.error.code, "invalid_input", "{args}: {e:?}");
        assert_eq!(e.error.class, "error");
        assert_eq!(e.error.field.as_deref(), Some(field), "{args}: {e:?}");
        assert_eq!(e.balance, None);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a bad report was sent"
    );
    // A good report is sent (the count can move): the listener closes it, sent again with the
    // same id, then the error with the id to send it again with.
    let e = app.refused(json!({"meter": METER, "units": 1, "key": KEY, "relay": url}));
    assert_ne!(e.error.code, "invalid_input", "{e:?}");
    assert_eq!(e.id.len(), 36, "{e:?}");
    assert!(connections.load(Ordering::SeqCst) >= 1);
}

/// A token of the seed's organization without `events:write`: its relay cannot ingest.
const NO_EVENTS_TOKEN: &str = "polar_oat_emulator_noevents_0123456789ab";

#[test]
fn a_report_the_relays_backlog_holds_is_usage_backlog() {
    let mut seed = seed();
    seed.access_tokens.push(SeedToken {
        token: NO_EVENTS_TOKEN.into(),
        organization_id: None,
        scopes: vec!["license_keys:read".into(), "license_keys:write".into()],
    });
    let polar = Emulator::start(seed, EmulatorOptions::default()).expect("the emulator");
    let relay = relay_with(&polar, NO_EVENTS_TOKEN, false);
    let dir = ScratchDir::new("tauri-usage-held");
    let app = UsageApp::new("usage-held", polar.organization_id(), relay.url(), &dir);
    // Nothing is ingested: a key's 100 waiting reports fill the relay's backlog.
    for _ in 0..100 {
        app.recorded(json!({"meter": METER, "units": 1, "key": KEY}));
    }
    let held = app.refused(json!({"meter": METER, "units": 1, "key": KEY, "id": "tauri-held-101"}));
    assert_eq!(
        held.error.code,
        polar_license::usage::BACKLOG_CODE,
        "{held:?}"
    );
    assert_eq!(held.error.code, "usage_backlog");
    assert_eq!(held.error.retry_after, Some(60), "{held:?}");
    assert_eq!(held.id, "tauri-held-101");
}
