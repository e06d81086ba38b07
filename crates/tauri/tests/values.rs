//! What Polar knows of the key beyond "good or not" (issue #68) through the plugin's commands,
//! on Tauri's mock runtime: the emulator seeded with a Feature Flag benefit and lifecycle keys,
//! the seller's relay (crates/relay, in process over loopback) in front of it with entitlements
//! signed into its leases and Polar's webhooks delivered to it.
//!
//! - `check`'s `entitlements` and the `entitlement` command: a granted value read (typed as
//!   Polar's metadata), a name not granted `absent`, unsigned mode `unsigned` (values need the
//!   relay), and a lease whose values a proxy altered refused (no altered value ever read);
//! - `stopped` on the state of a denied check and on the rejection of `validate`, from the
//!   emulator's lifecycle control routes (a pause with its resume date, a rotation).
//!
//! Every answer is recorded for the guest package's tests (`answers-values-*.json`).

use polar_license::lease::SigningKey;
use polar_license::{GracePolicy, MachineBinding};
use polar_license_emulator::{
    Emulator, Options as EmulatorOptions, Seed, WebhookOptions, DEMO_TOKEN,
};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::Running;
use polar_license_tauri::{EntitlementState, LicenseError, LicenseState, Options};
use polar_license_testkit::http::json_request;
use polar_license_testkit::ids::{CUSTOMER, LICENSE, PRO};
use polar_license_testkit::{
    customers_key, feature_flag, lease_proxy, poll, subscribed_key, ScratchDir,
};
use serde_json::{json, Value};
use std::time::Duration;
use tauri::test::MockRuntime;
use tauri::{App, WebviewWindow};

use crate::common;

/// Granted the PRO flag.
const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
/// Paused at period end, then the period ends.
const PAUSED: &str = "LIFE-PAUSE-1B2C3D";
/// Rotated: the old string stops.
const ROTATED: &str = "LIFE-ROTATE-7B8C9D";
const RESUMES_AT: i64 = 1_938_211_200; // 2031-06-03T00:00:00Z
const EVENTS: [&str; 12] = [
    "subscription.updated",
    "subscription.canceled",
    "subscription.revoked",
    "subscription.paused",
    "subscription.resumed",
    "benefit.updated",
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "benefit_grant.cycled",
    "customer.state_changed",
    "order.refunded",
];

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.benefits.push(feature_flag(
        PRO,
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true}),
    ));
    let subscribed = |key: &str, n: u8, benefits: &[&str]| {
        let subscription = format!("9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a{n:02x}");
        subscribed_key(key, LICENSE, CUSTOMER, &subscription, benefits)
    };
    seed.license_keys.push(subscribed(KEY, 1, &[PRO]));
    seed.license_keys.push(subscribed(PAUSED, 2, &[]));
    seed.license_keys
        .push(customers_key(ROTATED, LICENSE, CUSTOMER));
    seed
}

/// The emulator (webhooks sent at once) and the relay in front of it: a memory store,
/// entitlements signed, no per-client limits, Polar's webhooks delivered to it; the relay's
/// public key pair.
struct Seller {
    polar: Emulator,
    relay: Running,
    keys: polar_license::lease::RelayKeys,
}

fn seller() -> Seller {
    let options = EmulatorOptions {
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..EmulatorOptions::default()
    };
    let polar = Emulator::start(seed(), options).expect("the emulator");
    let created = json_request(
        polar.port(),
        "POST",
        "/v1/webhooks/endpoints",
        Some(
            &json!({"url": "http://127.0.0.1:9/later", "format": "raw", "events": EVENTS})
                .to_string(),
        ),
        Some(DEMO_TOKEN),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let endpoint: Value = created.json();
    let signer = SigningKey::generate(Some("tauri-values")).expect("a key");
    let keys = signer.relay_keys();
    let mut store = StoreOptions::default();
    store.entitlements = true;
    store.reconcile_every = 0;
    store.roster = false;
    let secret = endpoint["secret"].as_str().map(str::to_string);
    let relay = common::seller_relay(polar.url(), signer, store, secret);
    let id = endpoint["id"].as_str().expect("an id");
    let pointed = json_request(
        polar.port(),
        "PATCH",
        &format!("/v1/webhooks/endpoints/{id}"),
        Some(&json!({"url": format!("{}/v1/webhooks/polar", relay.url())}).to_string()),
        Some(DEMO_TOKEN),
    );
    assert_eq!(pointed.status, 200, "{}", pointed.text());
    Seller { polar, relay, keys }
}

/// The app on the mock runtime, talking to `url`, in signed mode when `keys` is given, every
/// check asking online; its answers recorded as `answers-values-<name>.json`.
struct App2 {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    _dir: ScratchDir,
    name: String,
    answers: common::Answers,
}

impl App2 {
    fn new(name: &str, url: &str, keys: Option<&polar_license::lease::RelayKeys>) -> App2 {
        let dir = ScratchDir::new(&format!("tauri-values-{name}"));
        let keys = keys.cloned();
        let options = Options::default()
            .base_url(url)
            .cache_dir(dir.path())
            .configure(move |b| {
                let b = b
                    .machine_binding(MachineBinding::Off)
                    .timeout(Duration::from_secs(5))
                    .policy(GracePolicy {
                        revalidate_after: Duration::ZERO,
                        ..GracePolicy::default()
                    });
                match keys {
                    Some(keys) => b.relay_keys(keys),
                    None => b,
                }
            });
        let (app, webview) = common::app_with_window(
            polar_license_emulator::DEMO_ORGANIZATION_ID,
            options,
            &["polar-license:default"],
        );
        App2 {
            _app: app,
            webview,
            _dir: dir,
            name: name.to_string(),
            answers: common::Answers::new(&format!("values-{name}")),
        }
    }

    fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        self.answers
            .invoke(&self.webview, command, args, &[KEY, PAUSED, ROTATED])
    }

    fn check(&self, key: &str) -> LicenseState {
        let value = self
            .invoke("check", json!({ "key": key }))
            .expect("check resolves");
        serde_json::from_value(value).expect("a LicenseState")
    }

    fn entitlement(&self, key: &str, name: &str) -> EntitlementState {
        let value = self
            .invoke("entitlement", json!({ "key": key, "name": name }))
            .expect("entitlement resolves");
        serde_json::from_value(value).expect("an EntitlementState")
    }

    fn validate_err(&self, key: &str) -> LicenseError {
        match self.invoke("validate", json!({ "key": key })) {
            Ok(v) => panic!("validate resolved: {v}"),
            Err(e) => serde_json::from_value(e).expect("a LicenseError"),
        }
    }
}

/// Checks `key` until its state has `entitlements` (each check licensed), within 10 s.
fn until_values(app: &App2, key: &str) -> LicenseState {
    let checked = || {
        let state = app.check(key);
        assert!(state.licensed, "{state:?}");
        state
    };
    poll(
        "a state with values",
        Duration::from_secs(10),
        Duration::from_millis(50),
        checked,
        |state| state.entitlements.is_some(),
    )
}

#[test]
fn signed_values_are_read_typed_absent_names_are_absent_and_unsigned_mode_needs_the_relay() {
    let seller = seller();
    let app = App2::new("signed", &seller.relay.url(), Some(&seller.keys));
    let state = until_values(&app, KEY);
    assert_eq!(
        state.entitlements,
        Some(
            [
                ("beta".to_string(), json!(true)),
                ("max_upload_size".to_string(), json!(10)),
                ("ratio".to_string(), json!(1.5)),
                ("role".to_string(), json!("editor")),
            ]
            .into_iter()
            .collect()
        )
    );
    assert_eq!(state.stopped, None);
    // The command: each type as Polar holds it, crossing the IPC as JSON.
    for (name, want) in [
        ("max_upload_size", json!(10)),
        ("role", json!("editor")),
        ("ratio", json!(1.5)),
        ("beta", json!(true)),
    ] {
        let got = app.entitlement(KEY, name);
        assert_eq!(
            (got.state.as_str(), got.value.as_ref()),
            ("granted", Some(&want)),
            "{name}"
        );
    }
    let raw = app
        .invoke(
            "entitlement",
            json!({"key": KEY, "name": "max_upload_size"}),
        )
        .expect("resolves");
    assert!(raw["value"].is_i64(), "an integer stays an integer: {raw}");
    // A name the flag does not set: absent, no value.
    let seats = app.entitlement(KEY, "seats");
    // The core's words for the state (issue #80), as every face's.
    let absent = polar_license::EntitlementState::Absent.message();
    assert_eq!(seats.user_message, absent.as_ref().map(|m| m.text()));
    assert_eq!(
        seats.next_step.as_deref(),
        absent.as_ref().map(|m| m.next_step())
    );
    assert_eq!((seats.state.as_str(), seats.value), ("absent", None));
    // A key that does not license: its state says so, no value.
    let unknown = app.entitlement(KEY.replace("TIER", "NONE").as_str(), "role");
    assert_eq!(
        (unknown.state.as_str(), unknown.value),
        ("not_licensed", None)
    );

    // Unsigned mode, straight at the emulator: licensed, and no value known: `unsigned`.
    let plain = App2::new("unsigned", &seller.polar.url(), None);
    let state = plain.check(KEY);
    assert!(state.licensed, "{state:?}");
    assert_eq!(state.entitlements, None);
    let role = plain.entitlement(KEY, "role");
    assert_eq!((role.state.as_str(), role.value), ("unsigned", None));
    // The relay's client without its public key: unsigned too (nothing it reads is signed).
    let keyless = App2::new("keyless", &seller.relay.url(), None);
    let role = keyless.entitlement(KEY, "role");
    assert_eq!((role.state.as_str(), role.value), ("unsigned", None));
}

#[test]
fn a_lease_whose_values_were_altered_is_refused_and_no_altered_value_is_read() {
    let seller = seller();
    // The relay reads the customer's values first (through an honest app).
    let honest = App2::new("honest", &seller.relay.url(), Some(&seller.keys));
    let _ = until_values(&honest, KEY);
    let proxy = lease_proxy::proxy(
        &seller.relay.url(),
        b"\"max_upload_size\":10",
        b"\"max_upload_size\":90",
    );
    let cached = App2::new("altered-cached", &proxy.url, Some(&seller.keys));
    // Passed on as it came, the proxy's answers license with the relay's values.
    let state = cached.check(KEY);
    assert!(state.licensed, "{state:?}");
    assert_eq!(
        cached.entitlement(KEY, "max_upload_size").value,
        Some(json!(10))
    );
    proxy.set(lease_proxy::ALTER);
    // Altered: not Polar's answer (`protocol_error`); the app holding an earlier grant
    // licenses from its cache, with the values of the lease it verified then.
    let state = cached.check(KEY);
    assert_eq!(
        (state.source.as_deref(), state.fallback.as_deref()),
        (Some("cache"), Some("protocol_error")),
        "{state:?}"
    );
    assert_eq!(
        state
            .entitlements
            .as_ref()
            .and_then(|e| e.get("max_upload_size")),
        Some(&json!(10))
    );
    // An app with nothing cached: refused, no value read.
    let app = App2::new("altered", &proxy.url, Some(&seller.keys));
    for _ in 0..3 {
        let state = app.check(KEY);
        assert!(
            !state.licensed,
            "a lease that does not verify licensed: {state:?}"
        );
        assert_eq!(state.code.as_deref(), Some("protocol_error"), "{state:?}");
        assert_eq!(state.entitlements, None, "{state:?}");
        let got = app.entitlement(KEY, "max_upload_size");
        assert_ne!(got.value, Some(json!(90)), "the altered value was read");
        assert_eq!((got.state.as_str(), got.value), ("not_licensed", None));
    }
    assert!(proxy.edited() >= 4, "the proxy altered the leases");
}

/// Polar's lifecycle control route of the emulator for `key`.
fn lifecycle(polar: &Emulator, key: &str, body: Value) {
    let r = json_request(
        polar.port(),
        "POST",
        &format!("/__emulator/keys/{key}/subscription"),
        Some(&body.to_string()),
        Some(DEMO_TOKEN),
    );
    assert!(r.status < 300, "{key}: {} {}", r.status, r.text());
}

/// Checks `key` until it is denied with a detail (the webhooks arrive within moments).
fn until_stopped(app: &App2, key: &str) -> LicenseState {
    poll(
        "a denial with a detail",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || app.check(key),
        |state| state.stopped.is_some(),
    )
}

#[test]
fn a_denial_through_the_relay_says_why_the_key_stopped_with_its_dates() {
    let seller = seller();
    let apps = [
        App2::new("stop-unsigned", &seller.relay.url(), None),
        App2::new("stop-signed", &seller.relay.url(), Some(&seller.keys)),
    ];
    // Licensed first, through the relay (it learns each string's key id).
    for app in &apps {
        for key in [PAUSED, ROTATED] {
            let state = app.check(key);
            assert!(state.licensed, "{key}: {state:?}");
            assert_eq!(state.stopped, None);
        }
    }
    // Paused at period end with its resume date, then the period ends; rotated.
    lifecycle(
        &seller.polar,
        PAUSED,
        json!({"action": "pause_at_period_end", "resumes_at": "2031-06-03T00:00:00Z"}),
    );
    lifecycle(&seller.polar, PAUSED, json!({"action": "period_end"}));
    seller.polar.rotate_key(ROTATED).expect("rotated");
    for app in &apps {
        let state = until_stopped(app, PAUSED);
        assert!(!state.licensed);
        assert_eq!(state.class.as_deref(), Some("denied"), "{state:?}");
        let stopped = state.stopped.expect("why");
        assert_eq!(stopped.kind, "paused", "{}", app.name);
        assert_eq!(stopped.until, Some(RESUMES_AT));
        assert!(stopped.at.is_some(), "paused at");
        // `validate` rejects with the same detail.
        let e = app.validate_err(PAUSED);
        assert_eq!(e.code, state.code.expect("a code"));
        assert_eq!(e.stopped.as_ref().map(|s| s.kind.as_str()), Some("paused"));
        assert_eq!(e.stopped.and_then(|s| s.until), Some(RESUMES_AT));
        let rotated = until_stopped(app, ROTATED);
        assert_eq!(
            rotated.code.as_deref(),
            Some("not_found"),
            "the reason stays Polar's"
        );
        let rotated = rotated.stopped.expect("why");
        assert_eq!((rotated.kind.as_str(), rotated.until), ("rotated", None));
        assert!(rotated.at.is_some());
        // A denial the relay cannot explain: no detail.
        let state = app.check("NOT-A-KEY-OF-ANYONE");
        assert!(!state.licensed);
        assert_eq!(state.stopped, None);
    }
}
