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
use polar_license::MachineBinding;
use polar_license_emulator::{
    Emulator, Options as EmulatorOptions, Seed, SeedKey, SeedToken, DEMO_TOKEN,
};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::Running;
use polar_license_tauri::{Options, UsageError, UsageRecorded};
use polar_license_testkit::ids::{CREDIT, CUSTOMER, LICENSE, SUBSCRIPTION};
use polar_license_testkit::{
    consumed_units, meter, meter_credit, poll, subscribed_key, ScratchDir,
};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tauri::test::MockRuntime;
use tauri::{App, WebviewWindow};

use crate::common;

const TOKENS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const KEY: &str = "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
/// The event the meter counts (a sum of `units`).
const METER: &str = "tokens_used";

/// Ten credited units of a meter summing `units`, on one customer's key.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.meters.push(meter(
        TOKENS,
        "Tokens",
        METER,
        Some(json!({"func": "sum", "property": "units"})),
    ));
    seed.benefits.push(meter_credit(CREDIT, TOKENS, 10));
    seed.license_keys.push(SeedKey {
        // Activated through the plugin (then remembered).
        limit_activations: Some(3),
        ..subscribed_key(KEY, LICENSE, CUSTOMER, SUBSCRIPTION, &[CREDIT])
    });
    seed
}

/// The app on the mock runtime whose base URL is `base_url`, its cache in `dir`, and the
/// answers recorded for the guest package as `answers-<name>.json`.
struct UsageApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    answers: common::Answers,
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
            answers: common::Answers::new(name),
        }
    }

    /// Invokes `command` as the webview does; the answer is recorded, and never carries the
    /// whole key.
    fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        self.answers.invoke(&self.webview, command, args, &[KEY])
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
    let mut store = StoreOptions::default();
    store.entitlements = metered;
    store.usage = true;
    store.refuse_at_zero_credits = metered;
    store.reconcile_every = 0;
    store.roster = false;
    common::seller_relay_as(polar.url(), token, signer, store, None)
}

/// Waits (10 s at most) until Polar's meter shows `want` consumed by the customer.
fn until_consumed(polar: &Emulator, want: f64) {
    poll(
        &format!("Polar's meter showing {want} consumed"),
        Duration::from_secs(10),
        Duration::from_millis(25),
        || consumed_units(polar.port(), CUSTOMER, TOKENS),
        |got| (got - want).abs() < 1e-9,
    );
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
    // The core's words for it (UsageAnswer::message), not the plugin's own.
    let said = polar_license::Reason::CreditsExhausted.message();
    assert_eq!(refused.error.user_message, said.text(), "{refused:?}");
    assert_eq!(refused.error.next_step.as_deref(), Some(said.next_step()));
    assert_eq!(refused.balance, Some(10.0 - used));
    assert_eq!(refused.id, "tauri-report-9");
    // Polar's meter: every recorded report once, the refused one not at all.
    until_consumed(&polar, used);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(consumed_units(polar.port(), CUSTOMER, TOKENS), used);

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
