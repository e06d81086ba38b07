//! The plugin's commands through Tauri's IPC on the mock runtime (no window, no webview):
//! `plugin:polar-license|<command>` invoked as the guest package invokes it, against the
//! emulator over loopback, with a file cache in a scratch directory and a fake clock, and the
//! window's capability resolved by Tauri's ACL from the permission files the crate ships. The
//! scenarios of the command line's suites (activate, a cached check, offline grace, a
//! revocation, a login page), the background check and its event, feature gating, errors
//! crossing as typed data, and a capability that grants only some commands.
//!
//! Every invocation and its answer is also written to
//! `<target>/tmp/polar-license-tauri/answers-<scenario>.json`, and every reason code to
//! `reasons.json` there: the guest package's tests (crates/tauri/guest-js/test/) replay these
//! real answers through Tauri's IPC mocks and check them against its TypeScript types.

use polar_license::lease::SigningKey;
use polar_license::{AccessToken, MachineBinding, Reason, Server, UreqTransport};
use polar_license::{ActivateRequest, Licensing, Verdict};
use polar_license_emulator::{
    Fault, DEMO_BENEFIT_ID, DEMO_KEY, DEMO_KEY_DISABLED, DEMO_KEY_EXPIRED, DEMO_KEY_NO_ACTIVATIONS,
    DEMO_KEY_REVOKED, DEMO_KEY_USAGE,
};
use polar_license_relay::store::{MemoryBackend, StoreOptions};
use polar_license_relay::{serve, CheckoutOptions, Relay, RelayConfig, Running, StoreConfig};
use polar_license_tauri::{
    Activated, Bought, Deactivated, DeviceError, DeviceList, Entitlements, FeatureState, Followed,
    LicenseError, LicenseState, Options, PerpetualState, PolarLicenseExt, RecoverableKey,
    ReleaseDate, RememberedKey, SeatError, SeatInfo, SeatReleased, StatusState, TrialDays,
    TrialInfo, Validated, CHECKED_EVENT, COMMANDS,
};
use polar_license_testkit::{take_requests, unix_now, ScratchDir, Tape, World};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, Listener, WebviewWindow};

use crate::common;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// A benefit no demo key has.
const TEAM_BENEFIT: &str = "9b3f1c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e";

/// The testkit's world (the emulator, the clock, the cache directory) with what only this
/// suite has: the app on Tauri's mock runtime, its window, the relay (crates/relay, in
/// process) in signed mode, and the answers recorded for the guest package's tests.
struct Plugin {
    world: World,
    _relay: Option<Running>,
    /// The user's recording proxy between the app and the relay, in a [`Plugin::taped`] app.
    tape: Option<Tape>,
    app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    /// This scenario's invocations and answers, for the guest package's tests.
    answers: common::Answers,
}

/// Signed mode's set-up: the relay's leases, whether it keeps a verdict store, and whether the
/// app talks to it through the user's recording proxy.
#[derive(Clone, Copy)]
struct Signed {
    lease_days: u32,
    store: bool,
    tape: bool,
    /// Whether the app holds the relay's public keys (signed mode); without them the app
    /// talks to the relay unsigned.
    keys: bool,
}

impl std::ops::Deref for Plugin {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Plugin {
    fn new(name: &str) -> Plugin {
        Plugin::allowing(name, &["polar-license:default"])
    }

    /// The app with a capability granting `permissions` to its main window.
    fn allowing(name: &str, permissions: &[&str]) -> Plugin {
        Plugin::build(name, permissions, None, |o| o)
    }

    /// The app with `options` set on the plugin's `Options` too.
    fn with(name: &str, options: impl FnOnce(Options) -> Options) -> Plugin {
        Plugin::build(name, &["polar-license:default"], None, options)
    }

    /// A build released on `date` (perpetual fallback, `Options::released`).
    fn released(name: &str, date: ReleaseDate) -> Plugin {
        Plugin::with(name, move |o| o.released(date))
    }

    /// Signed mode: the app talks to the seller's relay (crates/relay, on loopback in front of
    /// the emulator, leases of `lease_days`, a verdict store in memory) and holds its public
    /// key.
    fn signed(name: &str, lease_days: u32) -> Plugin {
        let signed = Signed {
            lease_days,
            store: true,
            tape: false,
            keys: true,
        };
        Plugin::build(name, &["polar-license:default"], Some(signed), |o| o)
    }

    /// Signed mode as issue #53 tried it: the relay (no verdict store: each check is Polar's
    /// answer) behind the user's own recording proxy ([`Tape`]), 3-day leases.
    fn taped(name: &str) -> Plugin {
        let signed = Signed {
            lease_days: 3,
            store: false,
            tape: true,
            keys: true,
        };
        Plugin::build(name, &["polar-license:default"], Some(signed), |o| o)
    }

    fn build(
        name: &str,
        permissions: &[&str],
        signed: Option<Signed>,
        app_options: impl FnOnce(Options) -> Options,
    ) -> Plugin {
        let world = World::new(&format!("tauri-{name}"));
        let polar = &world.polar;
        let relay = signed.map(|signed| {
            let key = SigningKey::generate(Some("tauri-relay")).expect("a key");
            let keys = key.relay_keys();
            let mut config = RelayConfig::new(
                Server::Custom(polar.url()),
                AccessToken::new(polar_license_emulator::DEMO_TOKEN),
                key,
            );
            config.lease_days = signed.lease_days;
            config.store = signed.store.then(|| StoreConfig {
                backend: Arc::new(MemoryBackend::new(1024)),
                options: StoreOptions::default(),
                webhook_secret: None,
            });
            let transport =
                UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1024 * 1024);
            // It makes the app's checkouts of the demo product too (`openRelayCheckout`).
            let relay = Relay::new(config, Box::new(transport))
                .expect("the relay")
                .with_checkouts(CheckoutOptions {
                    products: vec![polar_license_emulator::DEMO_PRODUCT_ID.into()],
                    success_origins: Vec::new(),
                })
                .expect("the checkout options");
            let running = serve(Arc::new(relay), "127.0.0.1:0").expect("the relay listens");
            (running, keys)
        });
        let tape = match (&relay, signed) {
            (Some((running, _)), Some(Signed { tape: true, .. })) => {
                Some(Tape::start(&running.url()))
            }
            _ => None,
        };
        let base_url = match (&tape, &relay) {
            (Some(tape), _) => tape.url.clone(),
            (None, Some((running, _))) => running.url(),
            (None, None) => polar.url(),
        };
        let relay_keys = relay
            .as_ref()
            .filter(|_| signed.is_some_and(|s| s.keys))
            .map(|(_, keys)| keys.clone());
        let reader = world.clock.reader();
        let polar_url = polar.url();
        let entitlements = Entitlements::new()
            .grant("export", [DEMO_BENEFIT_ID])
            .and_then(|e| e.grant("team", [TEAM_BENEFIT]))
            .expect("entitlements");
        let options = Options::default()
            .base_url(base_url)
            .cache_dir(world.dir.path())
            .entitlements(entitlements);
        let options = app_options(options).configure(move |builder| {
            let builder = builder
                .machine_binding(MachineBinding::Id("machine-A".into()))
                .timeout(Duration::from_secs(2))
                .clock(reader);
            // Signed mode as an app sets it up: the relay for the license, Polar (here the
            // emulator) for the customer portal and checkouts, which the relay does not serve.
            match relay_keys {
                Some(keys) => builder.relay_keys(keys).portal_base_url(polar_url),
                None => builder,
            }
        });
        // The capability resolved through Tauri's ACL from the permission files this crate
        // ships, as an app's build resolves it.
        let (app, webview) = common::app_with_window(polar.organization_id(), options, permissions);
        Plugin {
            world,
            _relay: relay.map(|(running, _)| running),
            tape,
            app,
            webview,
            answers: common::Answers::new(name),
        }
    }

    /// Invokes `plugin:polar-license|<command>` with these arguments, as `invoke()` in the
    /// webview does; the raw JSON answer (`Err`: the rejection).
    fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        let answer = self.answers.invoke(
            &self.webview,
            command,
            args,
            &[
                DEMO_KEY,
                DEMO_KEY_REVOKED,
                DEMO_KEY_NO_ACTIVATIONS,
                DEMO_KEY_DISABLED,
                DEMO_KEY_EXPIRED,
                DEMO_KEY_USAGE,
                "DEMO-NOT-A-KEY",
            ],
        );
        let text = format!("{answer:?}");
        assert!(
            !text.contains("polar_cst_") && !text.contains("polar_mst_"),
            "{command} answered the session: {text}"
        );
        answer
    }

    /// Sets the app's clock to the real one: the relay signs leases (and keeps its store) with
    /// the real clock.
    fn at_real_time(&self) {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.clock.set(real);
    }

    /// An answer that must resolve, as its type.
    fn ok<T: DeserializeOwned>(&self, command: &str, args: Value) -> T {
        match self.invoke(command, args) {
            Ok(value) => serde_json::from_value(value).expect("the declared answer type"),
            Err(e) => panic!("{command} rejected: {e}"),
        }
    }

    /// An answer that must reject, as the typed error.
    fn err(&self, command: &str, args: Value) -> LicenseError {
        match self.invoke(command, args) {
            Ok(value) => panic!("{command} resolved: {value}"),
            Err(e) => serde_json::from_value(e).expect("a LicenseError, not a bare string"),
        }
    }

    /// An answer that must reject with a customer-portal failure.
    fn device_err(&self, command: &str, args: Value) -> DeviceError {
        match self.invoke(command, args) {
            Ok(value) => panic!("{command} resolved: {value}"),
            Err(e) => serde_json::from_value(e).expect("a DeviceError, not a bare string"),
        }
    }

    /// Asks for a sign-in code for the demo customer and signs in with the one the emulator
    /// would have emailed (`/__emulator/customer-session/codes`).
    fn sign_in(&self) {
        let _: () = self.ok(
            "request_sign_in_code",
            json!({ "email": "jane.doe@gmail.com" }),
        );
        let _: () = self.ok("sign_in", json!({ "code": self.last_code() }));
    }

    /// The last sign-in code the emulator would have emailed (`/__emulator/customer-session/codes`).
    fn last_code(&self) -> String {
        self.polar
            .customer_session_codes()
            .last()
            .and_then(|c| c["code"].as_str().map(str::to_string))
            .expect("a code")
    }

    fn check(&self) -> LicenseState {
        self.ok("check", json!({}))
    }

    fn activate(&self) -> Activated {
        self.ok(
            "activate",
            json!({ "key": DEMO_KEY, "label": "Jane's laptop" }),
        )
    }
}

#[test]
fn every_reason_code_and_command_for_the_guest_package() {
    let reasons: Vec<Value> = Reason::ALL
        .iter()
        .map(|r| json!({ "code": r.code(), "class": r.class().as_str() }))
        .collect();
    // Every code once: the guest package's unions (types.test.mjs) are checked against this
    // list, so a code added to the core and forgotten in index.d.ts fails there, by name.
    let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), reasons.len(), "a reason code appears twice");
    common::write_fixture("reasons.json", &Value::Array(reasons));
    common::write_fixture("commands.json", &json!(COMMANDS));
}

#[test]
fn first_run_asks_for_a_key_then_activation_licenses_and_remembers_it() {
    let w = Plugin::new("first-run");
    let first = w.check();
    assert!(!first.licensed);
    assert_eq!(first.code.as_deref(), Some("invalid_input"));
    assert_eq!(first.class.as_deref(), Some("error"));
    assert_eq!(first.field.as_deref(), Some("key"));
    assert!(first.needs_key, "{first:?}");
    assert_eq!(
        first.user_message.as_deref(),
        Some("This app is not licensed yet: enter your license key.")
    );
    assert_eq!(take_requests(&w.polar), 0, "no key, no request");
    let none: RememberedKey = w.ok("remembered_key", json!({}));
    assert_eq!(
        none,
        RememberedKey {
            remembered: false,
            display_key: None
        }
    );

    let activated = w.activate();
    assert_eq!(activated.label, "Jane's laptop");
    assert_eq!(activated.license.display_key, "****-4C5B6A");
    assert_eq!(activated.license.status, "granted");
    assert_eq!(activated.license.benefit_id, DEMO_BENEFIT_ID);
    assert_eq!(
        activated.license.activation_id.as_deref(),
        Some(activated.activation_id.as_str())
    );
    let remembered: RememberedKey = w.ok("remembered_key", json!({}));
    assert_eq!(remembered.display_key.as_deref(), Some("****-4C5B6A"));
    // The app's Rust side holds the same Licensing (and its remembered key).
    let licensing = w.app.polar_license().expect("the plugin's state");
    let key = licensing.remembered_key().expect("the store reads");
    assert_eq!(key.map(|k| k.redacted()).as_deref(), Some("****-4C5B6A"));

    // The next launch: no key needed, answered by the cache (an activation is a verdict).
    take_requests(&w.polar);
    let state = w.check();
    assert!(state.licensed, "{state:?}");
    assert_eq!(state.outcome, "licensed");
    assert_eq!(state.source.as_deref(), Some("cache"));
    assert_eq!(take_requests(&w.polar), 0, "a fresh cache asks nobody");
    // A licensed answer's words are the core's (issue #80): nothing went wrong here.
    assert_eq!(
        (state.code, state.user_message.as_deref(), state.needs_key),
        (None, Some(polar_license::message::LICENSED), false)
    );
    let verified = state.verified_at.expect("verified_at");
    assert_eq!(state.grace_ends_at, Some(verified + 7 * DAY));
    assert_eq!(state.grace_remaining, Some((7 * DAY) as u64));
    assert_eq!(
        state.license.and_then(|l| l.activation_id),
        Some(activated.activation_id)
    );
}

#[test]
fn a_check_past_the_revalidation_interval_asks_polar_and_answers_online() {
    let w = Plugin::new("online");
    w.activate();
    w.clock.advance(2 * HOUR);
    take_requests(&w.polar);
    let state: LicenseState = w.ok("check", json!({ "key": DEMO_KEY }));
    assert!(state.licensed);
    assert_eq!(state.source.as_deref(), Some("online"));
    assert_eq!(state.grace_remaining, None);
    assert_eq!(take_requests(&w.polar), 1);
    let status: StatusState = w.ok("status", json!({}));
    assert_eq!(status.standing, "licensed");
    assert_eq!(status.stored, "present");
    assert_eq!(status.display_key.as_deref(), Some("****-4C5B6A"));
    assert_eq!(status.verified_at, state.verified_at);
}

#[test]
fn offline_the_cache_licenses_within_the_grace_then_not() {
    let w = Plugin::new("offline");
    w.activate();
    let verified = w.check().verified_at.expect("verified");
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(3 * DAY);
    let state = w.check();
    assert!(state.licensed, "{state:?}");
    assert_eq!(state.source.as_deref(), Some("cache"));
    assert_eq!(state.fallback.as_deref(), Some("offline"));
    assert_eq!(state.grace_ends_at, Some(verified + 7 * DAY));
    assert_eq!(state.grace_remaining, Some((4 * DAY) as u64));
    // How long it stays licensed, in the core's words (issue #80).
    assert_eq!(
        state.user_message,
        Some(polar_license::message::licensed_offline((4 * DAY) as u64).text()),
        "{state:?}"
    );
    assert!(state.features["export"].granted, "{:?}", state.features);

    w.clock.advance(5 * DAY);
    let lapsed = w.check();
    assert!(!lapsed.licensed);
    assert_eq!(lapsed.code.as_deref(), Some("grace_expired"));
    assert_eq!(lapsed.class.as_deref(), Some("unverified"));
    assert_eq!(lapsed.outcome, "unverified");
    assert!(lapsed
        .user_message
        .as_deref()
        .is_some_and(|m| m.contains("connect to the internet")));
    assert!(!lapsed.features["export"].granted);
    assert_eq!(lapsed.features["export"].why, "license_not_valid");
    assert_eq!(
        lapsed.features["export"].license_reason.as_deref(),
        Some("grace_expired")
    );
}

#[test]
fn a_revoked_key_is_denied_with_a_hint_and_never_rides_the_grace() {
    let w = Plugin::new("revoked");
    w.activate();
    w.revoke();
    w.clock.advance(2 * HOUR);
    let denied = w.check();
    assert!(!denied.licensed);
    assert_eq!(denied.outcome, "denied");
    assert_eq!(denied.code.as_deref(), Some("inactive"));
    assert_eq!(denied.class.as_deref(), Some("denied"));
    assert!(denied.hint.is_some(), "a key valid here before: {denied:?}");
    // The hint is the core's sentence; the message says it with its next step.
    let hint = denied.hint.clone().unwrap_or_default();
    let message = denied.user_message.clone().unwrap_or_default();
    assert!(
        message.starts_with(hint.trim_end_matches('.')),
        "{denied:?}"
    );
    assert!(message.ends_with(&denied.next_step.clone().unwrap_or_default()[1..]));
    assert_eq!(denied.grace_ends_at, None);

    // Offline within the old grace window: still not licensed.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(HOUR);
    let after = w.check();
    assert!(!after.licensed);
    assert_eq!(after.code.as_deref(), Some("offline"));
    let status: StatusState = w.ok("status", json!({}));
    assert_eq!(status.standing, "denied");
    assert_eq!(status.denied.as_deref(), Some("inactive"));
}

#[test]
fn a_login_page_is_not_polar_the_cache_answers_and_validate_says_why() {
    let w = Plugin::new("login-page");
    w.activate();
    w.clock.advance(2 * HOUR);
    w.polar.set_fault(Some(Fault::Respond {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<html><body><form>Hotel WiFi login</form></body></html>".into(),
    }));
    let state = w.check();
    assert!(state.licensed, "{state:?}");
    assert_eq!(state.source.as_deref(), Some("cache"));
    assert_eq!(state.fallback.as_deref(), Some("protocol_error"));

    let error = w.err("validate", json!({}));
    assert_eq!(error.code, "protocol_error");
    assert_eq!(error.class, "error");
    assert_eq!(error.status, Some(200));
    assert!(error.user_message.contains("login page"), "{error:?}");
}

#[test]
fn the_background_check_answers_at_once_and_its_event_brings_polars_answer() {
    let w = Plugin::new("background");
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    w.app.listen_any(CHECKED_EVENT, move |event| {
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(event.payload().to_string());
    });
    let fresh = |rx: &mpsc::Receiver<String>| -> LicenseState {
        let payload = rx.recv_timeout(Duration::from_secs(20)).expect("the event");
        let value: Value = serde_json::from_str(&payload).expect("JSON");
        w.answers
            .record(json!({ "event": CHECKED_EVENT, "payload": value }));
        serde_json::from_value(value).expect("a LicenseState")
    };

    // A key and no cache: nothing to answer yet, Polar is asked.
    let now: LicenseState = w.ok("check_in_background", json!({ "key": DEMO_KEY }));
    assert!(!now.licensed);
    assert!(now.pending);
    assert_eq!(now.code.as_deref(), Some("not_yet_verified"));
    assert_eq!(now.class.as_deref(), Some("unverified"));
    let later = fresh(&rx);
    assert!(later.licensed, "{later:?}");
    assert!(!later.pending);
    assert_eq!(later.source.as_deref(), Some("online"));

    // Activated, and the cache stale: licensed at once from the cache, and Polar asked.
    w.activate();
    w.clock.advance(2 * HOUR);
    let now: LicenseState = w.ok("check_in_background", json!({}));
    assert!(now.licensed && now.pending, "{now:?}");
    assert_eq!(now.source.as_deref(), Some("cache"));
    let later = fresh(&rx);
    assert!(later.licensed);
    assert_eq!(later.source.as_deref(), Some("online"));

    // Fresh: the cache answers, nothing pending, no event.
    let now: LicenseState = w.ok("check_in_background", json!({}));
    assert!(now.licensed && !now.pending, "{now:?}");
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());

    // No key at all: the first-run answer, nothing pending.
    let _: () = w.ok("forget_key", json!({}));
    let now: LicenseState = w.ok("check_in_background", json!({}));
    assert!(now.needs_key && !now.pending, "{now:?}");
}

#[test]
fn features_follow_the_entitlement_map_and_the_license() {
    let w = Plugin::new("features");
    let none: FeatureState = w.ok("has_feature", json!({ "feature": "export" }));
    assert!(!none.granted);
    assert_eq!(none.why, "license_not_valid");
    assert_eq!(none.license_reason.as_deref(), Some("invalid_input"));

    w.activate();
    let export: FeatureState = w.ok("has_feature", json!({ "feature": "export" }));
    assert!(export.granted, "{export:?}");
    assert_eq!(export.why, "granted");
    assert_eq!(export.source.as_deref(), Some("cache"));
    let team: FeatureState = w.ok("has_feature", json!({ "feature": "team" }));
    assert!(!team.granted);
    assert_eq!(team.why, "not_granted_by_benefit");
    let unknown: FeatureState = w.ok("has_feature", json!({ "feature": "teleport" }));
    assert_eq!(unknown.why, "unknown_feature");

    let state = w.check();
    let names: Vec<&str> = state.features.keys().map(String::as_str).collect();
    assert_eq!(names, ["export", "team"]);
    assert!(state.features["export"].granted && !state.features["team"].granted);
}

#[test]
fn refusals_and_errors_cross_as_typed_data_never_as_strings() {
    let w = Plugin::new("errors");
    let typo = w.err("activate", json!({ "key": "DEMO-NOT-A-KEY" }));
    assert_eq!(typo.code, "not_found");
    assert_eq!(typo.class, "denied");
    assert_eq!(typo.status, Some(404));
    assert_eq!(
        typo.user_message,
        "This license key was not found: check it for typos."
    );
    assert!(!typo.detail.is_empty());

    let revoked = w.err("activate", json!({ "key": DEMO_KEY_REVOKED }));
    assert_eq!(
        (revoked.code.as_str(), revoked.class.as_str()),
        ("inactive", "denied")
    );

    let empty = w.err("activate", json!({ "key": "" }));
    assert_eq!(empty.code, "invalid_input");
    assert_eq!(empty.field.as_deref(), Some("key"));

    let nothing = w.err("deactivate", json!({}));
    assert_eq!(nothing.code, "invalid_input");
    assert_eq!(nothing.field.as_deref(), Some("key"));

    w.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(30),
    }));
    let limited = w.err("validate", json!({ "key": DEMO_KEY }));
    assert_eq!(limited.code, "rate_limited");
    assert_eq!(limited.class, "unverified");
    assert_eq!(limited.retry_after, Some(30));
    assert_eq!(limited.status, Some(429));
    w.polar.set_fault(None);

    // A missing argument is Tauri's own refusal (before the plugin): still not a license error.
    assert!(w.invoke("activate", json!({})).is_err());
}

#[test]
fn deactivation_frees_the_slot_and_forgets_the_key() {
    let w = Plugin::new("deactivate");
    let activated = w.activate();
    let validated: Validated = w.ok(
        "validate",
        json!({ "activationId": activated.activation_id }),
    );
    assert_eq!(
        validated.license.activation_id.as_deref(),
        Some(activated.activation_id.as_str())
    );
    let said: Deactivated = w.ok("deactivate", json!({}));
    // The core's words for a freed seat, as every face gives them (issue #80).
    let words = polar_license::message::DEACTIVATED;
    assert_eq!(said.user_message, words.text());
    assert_eq!(said.next_step, words.next_step());
    assert!(w.polar.activations(DEMO_KEY).is_empty(), "the slot is free");
    let remembered: RememberedKey = w.ok("remembered_key", json!({}));
    assert!(!remembered.remembered);
    assert!(w.check().needs_key);
    // Deactivating again: the activation is gone.
    let again = w.err(
        "deactivate",
        json!({ "key": DEMO_KEY, "activationId": activated.activation_id }),
    );
    assert_eq!(again.code, "not_found");
}

#[test]
fn an_organization_id_the_library_refuses_fails_the_apps_start_with_its_error() {
    let dir = ScratchDir::new("tauri-bad-org");
    let built = mock_builder()
        .plugin(polar_license_tauri::init(
            "not-a-uuid",
            Options::default().cache_dir(dir.path()),
        ))
        .build(mock_context(noop_assets()));
    let error = match built {
        Ok(_) => panic!("the app must not start"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("organization_id"), "{error}");
}

#[test]
fn a_capability_grants_only_the_commands_it_names() {
    let w = Plugin::allowing(
        "read-only",
        &["polar-license:allow-check", "polar-license:allow-status"],
    );
    let state = w.check();
    assert!(state.needs_key, "{state:?}");
    // Not granted: Tauri refuses before the plugin runs, with its own message (a plain error
    // in the guest package, not a LicenseError), and Polar is never asked.
    let refused = w.invoke("activate", json!({ "key": DEMO_KEY }));
    let message = refused.expect_err("activate is not granted");
    assert!(
        message.as_str().is_some_and(|m| m.contains("activate")),
        "{message}"
    );
    assert_eq!(take_requests(&w.polar), 0);
    assert!(w.polar.activations(DEMO_KEY).is_empty());
}

#[test]
fn signed_mode_answers_carry_the_lease_and_the_grace_ends_with_it() {
    let w = Plugin::signed("signed", 1);
    w.at_real_time();
    let activated = w.activate();
    let lease = activated.lease.expect("activate stores the relay's lease");
    assert_eq!(lease.kid, "tauri-relay");
    let now = w.clock.now();
    assert!((lease.expires_at - (now + DAY)).abs() < 120, "{lease:?}");

    let online = w.check();
    assert!(online.licensed, "{online:?}");
    assert_eq!(online.lease.as_ref(), Some(&lease));
    // The grace (14 days by default) ends with the one-day lease.
    assert_eq!(online.grace_ends_at, Some(lease.expires_at), "{online:?}");

    let status: StatusState = w.ok("status", json!({}));
    assert_eq!(status.lease.as_ref(), Some(&lease));
    assert_eq!(status.grace_ends_at, Some(lease.expires_at), "{status:?}");

    let validated: Validated = w.ok("validate", json!({}));
    assert_eq!(
        validated.lease.as_ref().map(|l| l.kid.as_str()),
        Some("tauri-relay")
    );

    // Offline past the lease, inside the grace: no longer licensed (`grace_expired`).
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(DAY + HOUR);
    let lapsed = w.check();
    assert!(!lapsed.licensed, "{lapsed:?}");
    assert_eq!(lapsed.code.as_deref(), Some("grace_expired"), "{lapsed:?}");

    // Without relay keys, nothing is leased.
    let plain = Plugin::new("unsigned-lease");
    assert_eq!(plain.activate().lease, None);
    assert_eq!(plain.check().lease, None);
}

/// Contract §5a: an online answer through the relay says where the relay took Polar's verdict
/// from (`polar`, then `store` within its `fresh_for`); the cache's answers and a check with no
/// relay say nothing.
#[test]
fn a_check_through_the_relay_says_where_the_relay_took_the_verdict() {
    let w = Plugin::signed("relay-source", 1);
    w.at_real_time();
    w.activate();
    let cached = w.check();
    assert_eq!(cached.source.as_deref(), Some("cache"), "{cached:?}");
    assert_eq!(cached.relay_source, None, "{cached:?}");

    // Past the recheck interval: asked online, and the relay asked Polar...
    w.clock.advance(2 * HOUR);
    let asked = w.check();
    assert_eq!(asked.source.as_deref(), Some("online"), "{asked:?}");
    assert_eq!(asked.relay_source.as_deref(), Some("polar"), "{asked:?}");
    // ...then answered from its store (its own clock has not moved past `fresh_for`).
    w.clock.advance(2 * HOUR);
    let stored = w.check();
    assert_eq!(stored.source.as_deref(), Some("online"), "{stored:?}");
    assert_eq!(stored.relay_source.as_deref(), Some("store"), "{stored:?}");

    // No relay: online, and no relay source.
    let direct = Plugin::new("relay-source-direct");
    direct.activate();
    direct.clock.advance(2 * HOUR);
    let online = direct.check();
    assert_eq!(online.source.as_deref(), Some("online"), "{online:?}");
    assert_eq!(online.relay_source, None, "{online:?}");
}

/// Perpetual fallback (issue #54 item 3) on the Tauri face: a build released before the key's
/// paid time ran out stays licensed, marked `fallback` with the paid-through date; a build
/// released after it is expired; a revoked key never falls back; an app that states no release
/// date gets `perpetual: null`.
#[test]
fn an_expired_key_keeps_licensing_an_older_build_and_a_revoked_one_never() {
    let start = unix_now();
    let expires = start + 30 * DAY;
    let old = Plugin::released("perpetual-old", ReleaseDate::from_unix(start - 10 * DAY));
    let new = Plugin::released("perpetual-new", ReleaseDate::from_unix(expires + DAY));
    for app in [&old, &new] {
        app.at_real_time();
        app.expire_at(expires);
        app.activate();
    }
    let before = old.check();
    assert!(before.licensed, "{before:?}");
    assert_eq!(
        before.perpetual,
        Some(PerpetualState {
            released: ReleaseDate::from_unix(start - 10 * DAY).to_string(),
            paid_through: Some(expires),
            fallback: false,
        })
    );
    let plain = Plugin::new("perpetual-unstated");
    plain.activate();
    assert_eq!(plain.check().perpetual, None);

    // 31 days on, Polar says the key has expired: the older build is licensed as a fallback,
    // its features with it; the newer build is expired.
    for app in [&old, &new] {
        app.polar.set_clock_offset(31 * DAY);
        app.clock.set(start + 31 * DAY);
    }
    let fell_back = old.check();
    assert!(fell_back.licensed, "{fell_back:?}");
    assert_eq!(fell_back.source.as_deref(), Some("online"));
    assert!(fell_back.features["export"].granted, "{fell_back:?}");
    let p = fell_back.perpetual.expect("perpetual");
    assert!(p.fallback, "{p:?}");
    assert_eq!(p.paid_through, Some(expires));
    let expired = new.check();
    assert!(!expired.licensed, "{expired:?}");
    assert_eq!(expired.code.as_deref(), Some("expired"));
    assert_eq!(expired.perpetual.map(|p| p.fallback), Some(false));

    // A refund: revoked never falls back.
    old.revoke();
    let revoked = old.check();
    assert!(!revoked.licensed, "{revoked:?}");
    assert_eq!(revoked.code.as_deref(), Some("inactive"));
    assert_eq!(revoked.perpetual.map(|p| p.fallback), Some(false));
}

/// Issue #62 item 2 on the Tauri face: signed mode trusts only signed facts. The key is paid
/// through 30 days from now and refunded (revoked); between the app and the seller's relay sits
/// the attacker's proxy ([`Tape`]), which answers every validate with an unsigned
/// `404 "License key has expired."`. A build released today is not licensed by it in signed
/// mode: online, offline (Polar unreachable behind the relay), nor 40 days later. The same
/// app holding no relay keys falls back on the forgery (nothing is signed there: the limit
/// docs/threat-model.md states), which shows the proxy's forgery reaches the app.
#[test]
fn a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode() {
    let start = unix_now();
    let released = ReleaseDate::from_unix(start);
    let build = |name: &str, keys: bool| {
        let signed = Signed {
            lease_days: 3,
            store: false,
            tape: true,
            keys,
        };
        Plugin::build(name, &["polar-license:default"], Some(signed), move |o| {
            o.released(released)
        })
    };
    let signed = build("signed-facts-expiry", true);
    let unsigned = build("signed-facts-expiry-unsigned", false);
    for app in [&signed, &unsigned] {
        app.at_real_time();
        app.expire_at(start + 30 * DAY);
        app.activate();
        app.clock.advance(HOUR);
        let online = app.check();
        assert!(online.licensed, "{online:?}");
        app.revoke();
        app.tape.as_ref().expect("the proxy").forging_expiry(true);
        app.clock.advance(HOUR);
    }
    let forged = signed.check();
    assert!(!forged.licensed, "{forged:?}");
    assert_eq!(forged.code.as_deref(), Some("expired"), "{forged:?}");
    assert_eq!(forged.perpetual.map(|p| p.fallback), Some(false));
    let believed = unsigned.check();
    assert!(
        believed.licensed,
        "unsigned mode believes the forgery: {believed:?}"
    );
    assert_eq!(believed.perpetual.map(|p| p.fallback), Some(true));

    // Offline: the relay cannot reach Polar; then 40 days later, the fake relay and offline.
    let tape = signed.tape.as_ref().expect("the proxy");
    tape.forging_expiry(false);
    signed.polar.set_fault(Some(Fault::CloseImmediately));
    signed.clock.advance(HOUR);
    let offline = signed.check();
    assert!(!offline.licensed, "{offline:?}");
    signed.polar.set_fault(None);
    tape.forging_expiry(true);
    signed.clock.advance(40 * DAY);
    let later = signed.check();
    assert!(!later.licensed, "{later:?}");
    tape.forging_expiry(false);
    signed.polar.set_fault(Some(Fault::CloseImmediately));
    signed.clock.advance(60);
    let later_offline = signed.check();
    assert!(!later_offline.licensed, "{later_offline:?}");
}

/// Issue #62 item 2: one unsigned cancelled `subscription` added by the proxy to the relay's
/// genuine grant, then Polar's own "no longer active" (revoked): in signed mode no fallback on
/// it, online or offline (the signed `sub_end` claim is the only subscription fact believed).
#[test]
fn an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual() {
    let start = unix_now();
    // A build released three days ago: before the injected subscription's end (yesterday).
    let released = ReleaseDate::from_unix(start - 3 * DAY);
    let signed = Signed {
        lease_days: 3,
        store: false,
        tape: true,
        keys: true,
    };
    let app = Plugin::build(
        "signed-facts-subscription",
        &["polar-license:default"],
        Some(signed),
        move |o| o.released(released),
    );
    app.at_real_time();
    app.activate();
    let tape = app.tape.as_ref().expect("the proxy");
    tape.injecting_subscription(true);
    tape.passed();
    app.clock.advance(2 * HOUR);
    let injected = app.check();
    assert!(injected.licensed, "{injected:?}");
    assert_eq!(injected.source.as_deref(), Some("online"), "{injected:?}");
    assert!(
        tape.passed() >= 1,
        "the injected grant came through the proxy"
    );
    tape.injecting_subscription(false);
    app.revoke();
    app.clock.advance(2 * HOUR);
    let revoked = app.check();
    assert!(!revoked.licensed, "{revoked:?}");
    assert_eq!(revoked.code.as_deref(), Some("inactive"), "{revoked:?}");
    assert_eq!(revoked.perpetual.map(|p| p.fallback), Some(false));
    app.polar.set_fault(Some(Fault::CloseImmediately));
    app.clock.advance(HOUR);
    let offline = app.check();
    assert!(!offline.licensed, "{offline:?}");
    app.polar.set_fault(None);
}

/// Trials (issue #54 item 4) on the Tauri face: with no key remembered, the local trial starts
/// at the first check and counts down (the answer still asks for a key), a clock set back is
/// `clock_rollback`, and it ends after its days; a key from a named trial benefit is licensed
/// as a trial; an app that states no trial gets `trial: null`.
#[test]
fn the_local_trial_counts_down_refuses_a_clock_set_back_and_ends() {
    let days = TrialDays::new(14).expect("14 days");
    let w = Plugin::with("trial-local", move |o| o.trial(days));
    let start = w.clock.now();
    let first = w.check();
    assert!(!first.licensed, "{first:?}");
    assert!(first.needs_key, "{first:?}");
    assert_eq!(
        first.trial,
        Some(TrialInfo {
            local: true,
            state: "active".into(),
            started_at: Some(start),
            ends_at: Some(start + 14 * DAY),
            days_left: 14,
        })
    );
    w.clock.advance(3 * DAY);
    let later: LicenseState = w.ok("check_in_background", json!({}));
    assert_eq!(
        later.trial.as_ref().map(|t| t.days_left),
        Some(11),
        "{later:?}"
    );

    // The clock set back by two days: refused as a rollback, no day regained.
    w.clock.set(start + DAY);
    let back = w.check();
    assert_eq!(back.code.as_deref(), Some("clock_rollback"), "{back:?}");
    assert_eq!(back.trial.map(|t| t.state), Some("refused".to_string()));

    // Past its days (the clock forward again): ended.
    w.clock.set(start + 15 * DAY);
    let ended = w.check();
    let t = ended.trial.expect("the trial's answer");
    assert_eq!((t.state.as_str(), t.days_left), ("ended", 0), "{t:?}");

    // No trial stated: nothing of it.
    let plain = Plugin::new("trial-unstated");
    assert_eq!(plain.check().trial, None);
}

#[test]
fn a_key_of_a_named_trial_benefit_is_licensed_as_a_trial() {
    let w = Plugin::with("trial-benefit", |o| o.trial_benefit(DEMO_BENEFIT_ID));
    w.at_real_time();
    w.activate();
    let state = w.check();
    assert!(state.licensed, "{state:?}");
    let t = state.trial.expect("a trial");
    assert!(!t.local && t.state == "active", "{t:?}");
}

/// Issue #53 on the Tauri face: the user's own proxy records the relay's genuine 200 (its
/// signed lease with it); after Polar's denial, the replayed 200 is refused as `replayed`, the
/// denial kept (offline afterwards, the cache does not license); the same after a clock set
/// back, `clock_rollback` kept; a fresh grant through the relay, its nonce signed, licenses.
#[test]
fn a_replayed_relay_grant_undoes_neither_a_revocation_nor_a_clock_set_back() {
    let w = Plugin::taped("replay");
    let tape = w.tape.as_ref().expect("the proxy");
    w.at_real_time();
    w.activate();
    w.clock.advance(2 * HOUR);
    let online = w.check();
    assert_eq!(online.source.as_deref(), Some("online"), "{online:?}");
    assert!(online.licensed && tape.captured(), "{online:?}");

    // The clock 30 days ahead, then set back 28, offline: a rollback.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(30 * DAY);
    assert!(!w.check().licensed);
    w.clock.advance(-28 * DAY);
    let back = w.check();
    assert_eq!(back.code.as_deref(), Some("clock_rollback"), "{back:?}");
    w.polar.set_fault(None);
    tape.passed();
    tape.replaying(true);
    let replayed = w.check();
    assert!(!replayed.licensed, "{replayed:?}");
    assert_eq!(replayed.code.as_deref(), Some("replayed"), "{replayed:?}");
    assert_eq!(tape.passed(), 0, "the proxy answered alone");
    tape.replaying(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let kept = w.check();
    assert_eq!(kept.code.as_deref(), Some("clock_rollback"), "{kept:?}");
    w.polar.set_fault(None);

    // A fresh grant, its nonce signed by the relay: licensed online.
    w.at_real_time();
    w.clock.advance(4 * HOUR);
    let fresh = w.check();
    assert!(fresh.licensed, "{fresh:?}");
    assert_eq!(fresh.source.as_deref(), Some("online"), "{fresh:?}");

    // Revoked: denied online; the replay is refused and the denial kept.
    w.revoke();
    w.clock.advance(2 * HOUR);
    let denied = w.check();
    assert_eq!(denied.code.as_deref(), Some("inactive"), "{denied:?}");
    tape.replaying(true);
    w.clock.advance(2 * HOUR);
    let replayed = w.check();
    assert!(!replayed.licensed, "{replayed:?}");
    assert_eq!(replayed.code.as_deref(), Some("replayed"), "{replayed:?}");
    tape.replaying(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(HOUR);
    let offline = w.check();
    assert!(!offline.licensed, "{offline:?}");
    let status: StatusState = w.ok("status", json!({}));
    assert_eq!(status.denied.as_deref(), Some("inactive"), "{status:?}");
}

/// Activates `key` on another machine (its own install, straight through Polar's API): one of
/// the key's slots taken elsewhere.
fn activate_elsewhere(w: &Plugin, key: &str, label: &str) -> String {
    let other = ScratchDir::new(&format!("tauri-elsewhere-{label}"));
    let licensing = Licensing::builder(w.polar.organization_id())
        .base_url(w.polar.url())
        .cache_dir(other.path())
        .build()
        .expect("licensing");
    match licensing
        .client()
        .activate(&ActivateRequest::new(key, label))
    {
        Ok(Verdict::Accepted(a)) => a.activation.id,
        other => panic!("activate elsewhere: {other:?}"),
    }
}

#[test]
fn at_the_limit_the_user_signs_in_frees_another_device_and_activates_here() {
    let w = Plugin::new("devices");
    let old = activate_elsewhere(&w, DEMO_KEY, "Old laptop");
    activate_elsewhere(&w, DEMO_KEY, "Desk");
    activate_elsewhere(&w, DEMO_KEY, "Studio");
    let refused = w.err(
        "activate",
        json!({ "key": DEMO_KEY, "label": "Jane's laptop" }),
    );
    assert_eq!(refused.code, "activation_limit");

    // Not signed in: typed, and Polar is not asked.
    take_requests(&w.polar);
    let not = w.device_err("list_devices", json!({ "key": DEMO_KEY }));
    assert_eq!(
        (
            not.portal_error.as_str(),
            not.code.as_deref(),
            not.field.as_deref()
        ),
        ("not_signed_in", Some("invalid_input"), Some("session"))
    );
    assert_eq!(take_requests(&w.polar), 0);

    // A wrong code is Polar's refusal, typed; the right one signs in.
    let _: () = w.ok(
        "request_sign_in_code",
        json!({ "email": "jane.doe@gmail.com" }),
    );
    let wrong = w.device_err("sign_in", json!({ "code": "ZZZZZZ" }));
    assert_eq!(wrong.portal_error, "code_invalid_or_expired");
    assert_eq!((wrong.class.as_str(), wrong.code), ("denied", None));
    w.sign_in();

    let listed: DeviceList = w.ok("list_devices", json!({ "key": DEMO_KEY }));
    assert_eq!(listed.display_key, "****-4C5B6A");
    assert_eq!(listed.limit_activations, Some(3));
    let labels: Vec<&str> = listed.devices.iter().map(|d| d.label.as_str()).collect();
    assert_eq!(labels, ["Old laptop", "Desk", "Studio"]);
    assert!(listed.devices.iter().all(|d| !d.this_machine));
    assert_eq!(listed.devices[0].id, old);

    // Free the dead laptop (the public deactivate), then activate here.
    let _: () = w.ok(
        "free_device",
        json!({ "key": DEMO_KEY, "activationId": old }),
    );
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 2);
    let here = w.activate();
    let listed: DeviceList = w.ok("list_devices", json!({}));
    assert_eq!(listed.devices.len(), 3);
    let mine: Vec<&str> = listed
        .devices
        .iter()
        .filter(|d| d.this_machine)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(mine, [here.activation_id.as_str()]);
    assert!(listed.devices.iter().all(|d| d.id != old));
    assert!(w.check().licensed);

    // Freeing it again: Polar's 404, typed as `deactivate`'s.
    let again = w.err(
        "free_device",
        json!({ "key": DEMO_KEY, "activationId": old }),
    );
    assert_eq!(again.code, "not_found");

    // Signed out: the session is gone from memory.
    let _: () = w.ok("sign_out", json!({}));
    let out = w.device_err("list_devices", json!({}));
    assert_eq!(out.portal_error, "not_signed_in");
}

#[test]
fn a_lost_key_is_recovered_by_its_id_and_the_whole_key_never_reaches_the_webview() {
    let w = Plugin::new("recover");
    let not = w.device_err("recoverable_keys", json!({}));
    assert_eq!(not.portal_error, "not_signed_in");
    w.sign_in();
    let keys: Vec<RecoverableKey> = w.ok("recoverable_keys", json!({}));
    let demo = w.polar.key(DEMO_KEY).expect("the demo key");
    let demo_id = demo["id"].as_str().expect("its id");
    let offered = keys
        .iter()
        .find(|k| k.id == demo_id)
        .expect("the demo key is offered");
    assert_eq!(offered.display_key, "****-4C5B6A");
    assert_eq!(offered.limit_activations, Some(3));
    // Granted and unexpired only: the revoked, disabled and expired demo keys are not offered.
    for gone in [DEMO_KEY_REVOKED, DEMO_KEY_DISABLED, DEMO_KEY_EXPIRED] {
        let id = w.polar.key(gone).expect("a demo key")["id"].clone();
        assert!(keys.iter().all(|k| json!(k.id) != id), "{gone} offered");
    }

    // An id not offered: typed, nothing activated.
    let unknown = w.invoke(
        "recover_key",
        json!({ "id": "00000000-0000-0000-0000-000000000000", "label": "New laptop" }),
    );
    let unknown: DeviceError =
        serde_json::from_value(unknown.expect_err("not offered")).expect("a DeviceError");
    assert_eq!(unknown.portal_error, "key_not_found");
    assert!(w.polar.activations(DEMO_KEY).is_empty());

    let recovered: Activated = w.ok(
        "recover_key",
        json!({ "id": demo_id, "label": "New laptop" }),
    );
    assert_eq!(recovered.label, "New laptop");
    assert_eq!(recovered.license.display_key, "****-4C5B6A");
    let live = w.polar.activations(DEMO_KEY);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], json!(recovered.activation_id));
    let remembered: RememberedKey = w.ok("remembered_key", json!({}));
    assert_eq!(remembered.display_key.as_deref(), Some("****-4C5B6A"));
    let state = w.check();
    assert!(state.licensed, "{state:?}");
}

/// Issue #64 item 4: the remembered key rotated at Polar (its old string `not_found`) is
/// followed through the session to its new string with this machine's activation (no slot
/// taken), the new key remembered in the old one's place and never sent whole to the webview;
/// no session and a key not rotated are typed.
#[test]
fn a_rotated_key_is_followed_keeping_this_machines_activation() {
    let w = Plugin::new("follow-rotation");
    let here = w.activate();
    // Not signed in: typed, Polar not asked.
    take_requests(&w.polar);
    let not = w.device_err("follow_rotation", json!({}));
    assert_eq!(not.portal_error, "not_signed_in");
    assert_eq!(take_requests(&w.polar), 0);
    w.sign_in();
    // Not rotated: the customer's key still has this string.
    let same = w.device_err("follow_rotation", json!({}));
    assert_eq!(same.portal_error, "key_not_found");

    let new = w.polar.rotate_key(DEMO_KEY).expect("rotated");
    let stale = w.err("validate", json!({ "activationId": here.activation_id }));
    assert_eq!(stale.code, "not_found");
    let followed = w.invoke("follow_rotation", json!({})).expect("followed");
    // The whole new key never reaches the webview.
    assert!(!followed.to_string().contains(&new), "{followed}");
    let followed: Followed = serde_json::from_value(followed).expect("a Followed");
    assert_eq!(
        followed.activation_id.as_deref(),
        Some(here.activation_id.as_str())
    );
    assert!(followed.remembered);
    let shown = format!("****-{}", &new[new.len() - 6..]);
    assert_eq!(followed.license.display_key, shown);
    let remembered: RememberedKey = w.ok("remembered_key", json!({}));
    assert_eq!(remembered.display_key.as_deref(), Some(shown.as_str()));
    // The same activation, still the key's only one; the remembered (new) key licensed.
    let live = w.polar.activations(&new);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], json!(here.activation_id));
    assert!(w.check().licensed);
    // The old string: nothing cached of it any more, typed.
    let gone = w.device_err("follow_rotation", json!({ "key": DEMO_KEY }));
    assert_eq!(gone.portal_error, "invalid_input");
}

#[test]
fn a_session_polar_no_longer_knows_is_typed_and_forgotten() {
    let w = Plugin::new("session-expired");
    w.activate();
    w.sign_in();
    let _: DeviceList = w.ok("list_devices", json!({}));
    // An hour and a second later by Polar's clock: the session is over.
    w.polar.set_clock_offset(HOUR + 1);
    let expired = w.device_err("list_devices", json!({}));
    assert_eq!(expired.portal_error, "session_expired");
    assert_eq!((expired.class.as_str(), expired.code), ("denied", None));
    // Forgotten: the next step asks nobody and says to sign in.
    take_requests(&w.polar);
    let next = w.device_err("recoverable_keys", json!({}));
    assert_eq!(next.portal_error, "not_signed_in");
    assert_eq!(take_requests(&w.polar), 0);
}

/// Issue #67's walk through the plugin's seat commands, against the relay in process (its
/// store in memory): a one-seat key held by this app, a second machine's acquisition is
/// `seats_full` with the count and the soonest free time, a heartbeat moves the seat's life
/// on, the release frees it and the second machine gets it; a released seat is unknown to
/// every later command, a revoked key is Polar's denial, bad input is typed. No whole key in
/// any answer; no Polar activation made.
#[test]
fn a_seat_is_held_heartbeated_and_released_and_a_full_pool_is_typed() {
    let w = Plugin::signed("seats", 3);
    w.at_real_time();
    let key = "SEAT-ONE-TAURI-7F3A";
    let mut seed = polar_license_emulator::SeedKey::new(key);
    seed.limit_activations = Some(1);
    w.polar.add_key(seed).expect("the key");
    let answered = |command: &str, args: Value| {
        let answer = w.invoke(command, args);
        assert!(
            !format!("{answer:?}").contains(key),
            "{command} answered the whole key"
        );
        answer
    };
    let held: SeatInfo = serde_json::from_value(
        answered(
            "seat_acquire",
            json!({ "key": key, "machine": "machine-A" }),
        )
        .expect("a seat"),
    )
    .expect("a SeatInfo");
    assert_eq!((held.in_use, held.size, held.ci), (1, 1, false));
    assert_eq!(
        held.heartbeat_every,
        u64::from(polar_license_relay::SEAT_SECONDS / 3)
    );
    let now = unix_now();
    assert!(
        held.expires_at > now && held.expires_at <= now + 305,
        "{held:?}"
    );

    let full: SeatError = serde_json::from_value(
        answered(
            "seat_acquire",
            json!({ "key": key, "machine": "machine-B" }),
        )
        .expect_err("seats_full"),
    )
    .expect("a SeatError");
    assert_eq!(
        (full.error.code.as_str(), full.in_use, full.size),
        ("seats_full", Some(1), Some(1))
    );
    let frees_at = full.frees_at.expect("frees_at");
    assert!((frees_at - held.expires_at).abs() <= 1, "{full:?}");
    assert!(full.error.retry_after.is_some_and(|s| s >= 1), "{full:?}");
    assert!(full.error.user_message.contains("1 of 1"), "{full:?}");
    // The words are the core's (SeatAnswer::message), not the plugin's own: the same answer
    // said by the core gives the same sentence and step.
    let said = polar_license::seat::SeatAnswer::Full(polar_license::seat::SeatsFull {
        in_use: 1,
        size: 1,
        frees_at: full.frees_at,
        retry_after: full.error.retry_after,
    })
    .message()
    .expect("seats_full has words");
    assert_eq!(full.error.user_message, said.text(), "{full:?}");
    assert_eq!(full.error.next_step.as_deref(), Some(said.next_step()));
    assert!(!full.gone, "{full:?}");

    std::thread::sleep(Duration::from_millis(1100));
    let beat: SeatInfo = serde_json::from_value(
        answered("seat_heartbeat", json!({ "seat": held.id })).expect("held"),
    )
    .expect("a SeatInfo");
    assert_eq!(beat.id, held.id);
    assert!(beat.expires_at > held.expires_at, "{beat:?} after {held:?}");

    let released: SeatReleased = serde_json::from_value(
        answered("seat_release", json!({ "seat": held.id })).expect("released"),
    )
    .expect("a SeatReleased");
    assert!(released.released);
    for command in ["seat_heartbeat", "seat_release"] {
        let gone: SeatError = serde_json::from_value(
            answered(command, json!({ "seat": held.id })).expect_err(command),
        )
        .expect("a SeatError");
        assert_eq!(
            (gone.error.code.as_str(), gone.error.field.as_deref()),
            ("invalid_input", Some("seat")),
            "{command}"
        );
        assert!(gone.gone, "{command}: {gone:?}");
    }
    let second: SeatInfo = serde_json::from_value(
        answered(
            "seat_acquire",
            json!({ "key": key, "machine": "machine-B", "ci": true }),
        )
        .expect("the freed seat"),
    )
    .expect("a SeatInfo");
    assert!(second.ci);
    let _: SeatReleased = serde_json::from_value(
        answered("seat_release", json!({ "seat": second.id })).expect("released"),
    )
    .expect("a SeatReleased");
    assert!(
        w.polar.activations(key).is_empty(),
        "a seat made an activation"
    );

    let revoked: SeatError = serde_json::from_value(
        answered(
            "seat_acquire",
            json!({ "key": DEMO_KEY_REVOKED, "machine": "m" }),
        )
        .expect_err("revoked"),
    )
    .expect("a SeatError");
    assert_eq!(revoked.error.code, "inactive", "{revoked:?}");
    let bad: SeatError = serde_json::from_value(
        answered("seat_acquire", json!({ "key": key, "machine": "" })).expect_err("no machine"),
    )
    .expect("a SeatError");
    assert_eq!(
        (bad.error.code.as_str(), bad.error.field.as_deref()),
        ("invalid_input", Some("machine"))
    );
}

/// Issue #64: with no session, the app lists the key's devices through the seller's relay
/// (the key proves it is the customer's; no email code), this machine marked; a key Polar does
/// not know is `key_not_found`.
#[test]
fn without_a_session_the_sellers_relay_lists_the_devices() {
    let w = Plugin::new("devices-relay");
    let key = SigningKey::generate(Some("tauri-devices")).expect("a key");
    let config = RelayConfig::new(
        Server::Custom(w.polar.url()),
        AccessToken::new(polar_license_emulator::DEMO_TOKEN),
        key,
    );
    let transport = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = Relay::new(config, Box::new(transport)).expect("the relay");
    let running = serve(Arc::new(relay), "127.0.0.1:0").expect("the relay listens");
    let old = activate_elsewhere(&w, DEMO_KEY, "Old laptop");
    let here = w.activate();

    let listed: DeviceList = w.ok(
        "list_devices",
        json!({ "key": DEMO_KEY, "relay": running.url() }),
    );
    let rows: Vec<(&str, bool)> = listed
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.this_machine))
        .collect();
    assert_eq!(
        rows,
        [(old.as_str(), false), (here.activation_id.as_str(), true)]
    );
    assert_eq!(listed.limit_activations, Some(3));
    // No customer session was asked for, none kept.
    assert!(w.polar.customer_session_codes().is_empty());
    let unknown = w.device_err(
        "list_devices",
        json!({ "key": "NOT-A-REAL-KEY-1", "relay": running.url() }),
    );
    assert_eq!(unknown.portal_error, "key_not_found");
    // Without a relay nor a session: sign in first, as before.
    let not = w.device_err("list_devices", json!({ "key": DEMO_KEY }));
    assert_eq!(not.portal_error, "not_signed_in");
}

/// An activate without a label from the app is labelled with the core's device label (host
/// name and OS, issue #64 item 6), not the app's name every machine shares.
#[test]
fn activate_without_a_label_uses_the_machines_host_name_and_os() {
    let w = Plugin::new("default-label");
    let activated: Activated = w.ok("activate", json!({ "key": DEMO_KEY }));
    let expected = polar_license::device_label::default_device_label();
    assert_eq!(activated.label, expected);
    assert!(
        expected.contains(polar_license::device_label::os_name()),
        "{expected}"
    );
    assert!(!activated.label.contains(DEMO_KEY), "{}", activated.label);
}

/// Self-healing activations (issue #80): the app reinstalled on the machine that holds one of
/// the key's activations already (an earlier install, its own cache gone with it) at the limit,
/// signed in, ends licensed with that activation, found by the fingerprint its meta records,
/// and takes none; its own row is marked in the list.
#[test]
fn a_reinstall_at_the_limit_reclaims_this_machines_activation() {
    let w = Plugin::new("self-heal");
    // The earlier install on this machine (the plugin's machine-A), with its own cache.
    let earlier = ScratchDir::new("tauri-self-heal-earlier");
    let mine = match Licensing::builder(w.polar.organization_id())
        .base_url(w.polar.url())
        .cache_dir(earlier.path())
        .machine_binding(MachineBinding::Id("machine-A".into()))
        .build()
        .expect("licensing")
        .activate(&ActivateRequest::new(DEMO_KEY, "Jane's laptop"))
    {
        Ok(Verdict::Accepted(a)) => a.activation.id,
        other => panic!("the earlier install's activate: {other:?}"),
    };
    activate_elsewhere(&w, DEMO_KEY, "Desk");
    activate_elsewhere(&w, DEMO_KEY, "Studio");
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 3);

    w.sign_in();
    let here = w.activate();
    assert_eq!(here.activation_id, mine);
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 3, "no new activation");
    assert!(w.check().licensed);
    let listed: DeviceList = w.ok("list_devices", json!({ "key": DEMO_KEY }));
    let marked: Vec<&str> = listed
        .devices
        .iter()
        .filter(|d| d.this_machine)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(marked, [mine.as_str()]);
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(
        listed.devices[0].platform.as_deref(),
        Some(platform.as_str())
    );
    assert_eq!(listed.devices[0].last_seen, None);
}

/// The buyer pays the checkout at `checkout` (its URL) with `email`, as Polar's hosted page
/// does: the customer session Polar's answer carries, if any.
fn pay(w: &Plugin, checkout: &str, email: &str) -> Option<String> {
    let secret = checkout
        .rsplit("/checkout/")
        .next()
        .expect("a checkout url");
    let body = format!(r#"{{"customer_email":"{email}"}}"#);
    let text = format!(
        "POST /v1/checkouts/client/{secret}/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = polar_license_testkit::http::raw_exchange(w.polar.port(), &text);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["customer_session_token"]
        .as_str()
        .map(str::to_string)
}

/// Buying in the app (issue #80): `buy` follows a checkout of the demo seed's link to the key
/// bought and activates it here, no key typed: with the session Polar adds to the success URL,
/// and without one (a buyer Polar matched by email: the code sent to the checkout's address,
/// then `buy_signed_in` through the session it opens). The buyer pays as Polar's hosted page
/// would (the test confirms the checkout); no answer carries the whole key or the session.
#[test]
fn a_purchase_unlocks_with_no_key_typed_with_and_without_a_session() {
    let w = Plugin::new("buy");
    w.at_real_time();
    let pay = |checkout: &str, email: &str| pay(&w, checkout, email);
    let link = polar_license_emulator::DEMO_CHECKOUT_LINK;

    // With the success URL's session: activated and remembered.
    let checkout: String = w.ok("open_checkout_link", json!({ "link": link }));
    let token = pay(&checkout, "new.buyer@example.com").expect("a new buyer's session");
    let success = format!("https://app.example/thanks?customer_session_token={token}");
    let bought: Bought = w.ok(
        "buy",
        json!({ "checkout": checkout, "successUrl": success, "label": "Tauri app" }),
    );
    assert!(bought.sign_in.is_none(), "{bought:?}");
    assert!(bought
        .display_key
        .as_deref()
        .is_some_and(|k| k.starts_with("****-")));
    assert_eq!(
        bought.activated.as_ref().map(|a| a.label.as_str()),
        Some("Tauri app")
    );
    assert!(w.check().licensed, "the key bought is remembered");
    assert!(w.polar.customer_session_codes().is_empty(), "no code sent");

    // Without one: the code sent to the checkout's address, then the rest once signed in.
    let checkout: String = w.ok("open_checkout_link", json!({ "link": link }));
    assert_eq!(
        pay(&checkout, "jane.doe@gmail.com"),
        None,
        "matched by email"
    );
    let first: Bought = w.ok("buy", json!({ "checkout": checkout }));
    let receipt = first.sign_in.expect("a sign-in");
    assert_eq!(receipt.email.as_deref(), Some("jane.doe@gmail.com"));
    assert!(receipt
        .user_message
        .contains("emailing a sign-in code to jane.doe@gmail.com"));
    // The code sent to the checkout's address.
    let _: () = w.ok("sign_in", json!({ "code": w.last_code() }));
    let bought: Bought = w.ok("buy_signed_in", json!({ "receipt": receipt }));
    assert!(bought.activated.is_some(), "{bought:?}");

    // A checkout that does not exist: the purchase's own failure, typed, in the core's words.
    let missing = w
        .invoke(
            "buy",
            json!({ "checkout": "polar_c_doesNotExist0123456789abcdefghijklmn" }),
        )
        .expect_err("no such checkout");
    assert_eq!(missing["purchaseError"], "checkout_not_found", "{missing}");
    assert!(missing["nextStep"].as_str().is_some_and(|s| !s.is_empty()));
}

/// Buying through the seller's relay (issue #80): `open_relay_checkout` asks the relay the
/// plugin's licensing knows (signed mode's base URL: `Licensing::open_relay_checkout`) for a
/// checkout of the product the webview names, with its metadata and e-mail; paid, `buy`
/// activates the key bought. A bad ask is refused before anything is sent, an app that knows no
/// relay refuses, and the relay refuses what it does not sell.
#[test]
fn a_checkout_the_sellers_relay_makes_unlocks_with_no_key_typed() {
    let w = Plugin::signed("relay-buy", 7);
    w.at_real_time();
    let product = polar_license_emulator::DEMO_PRODUCT_ID;
    let checkout: String = w.ok(
        "open_relay_checkout",
        json!({
            "productId": product,
            "metadata": {"app_version": "1.4.2", "seats": 3, "beta": true},
            "email": "relay.buyer@example.com",
        }),
    );
    let secret = checkout
        .rsplit("/checkout/")
        .next()
        .expect("a checkout url")
        .to_string();
    let read = polar_license_testkit::http::raw_exchange(
        w.polar.port(),
        &format!(
            "GET /v1/checkouts/client/{secret} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["product_id"], product);
    assert_eq!(read.json()["customer_email"], "relay.buyer@example.com");
    let token = pay(&w, &checkout, "relay.buyer@example.com").expect("a new buyer's session");
    let success = format!("https://app.example/thanks?customer_session_token={token}");
    let bought: Bought = w.ok(
        "buy",
        json!({ "checkout": checkout, "successUrl": success, "label": "Tauri app" }),
    );
    assert!(bought.activated.is_some(), "{bought:?}");

    // Refused before anything is sent: a product id that is no UUID, metadata Polar refuses.
    let bad = w
        .invoke("open_relay_checkout", json!({ "productId": "pro-plan" }))
        .expect_err("no UUID");
    assert_eq!(bad["portalError"], "invalid_input", "{bad}");
    assert_eq!(bad["field"], "product_id", "{bad}");
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let bad = w
        .invoke(
            "open_relay_checkout",
            json!({ "productId": product, "metadata": many }),
        )
        .expect_err("51 keys");
    assert_eq!(bad["field"], "metadata", "{bad}");
    // Refused by the relay: a product it does not sell; a success URL on no allowed origin.
    for ask in [
        json!({ "productId": "0b9c5a61-3f2e-4d7a-8c1b-5e6f7a8b9c0d" }),
        json!({ "productId": product, "successUrl": "https://evil.example/thanks" }),
    ] {
        let refused = w
            .invoke("open_relay_checkout", ask.clone())
            .expect_err("the relay refuses");
        assert_ne!(refused["portalError"], "invalid_input", "{ask}: {refused}");
        assert!(
            refused["userMessage"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{refused}"
        );
    }

    // An app that named no relay: refused, nothing sent.
    let plain = Plugin::new("relay-buy-none");
    let none = plain
        .invoke("open_relay_checkout", json!({ "productId": product }))
        .expect_err("no relay named");
    assert_eq!(none["portalError"], "invalid_input", "{none}");
    assert_eq!(none["field"], "relay_url", "{none}");
}

/// Issue #80: a customer-portal failure's words are the core's (`PortalError::user_message`,
/// one sentence and one next step), never this face's own.
#[test]
fn a_portal_failures_words_are_the_cores() {
    use polar_license::portal::PortalError as P;
    for e in [
        P::CodeInvalidOrExpired,
        P::SessionExpired,
        P::NotSignedIn,
        P::CustomerSelectionRequired(Vec::new()),
        P::RateLimited(Some(9)),
        P::RateLimited(None),
        P::NotFound,
        P::DeviceManagementOff,
    ] {
        let said = DeviceError::of(&e);
        assert_eq!(said.user_message, e.user_message(), "{e:?}");
        assert_eq!(said.portal_error, e.code(), "{e:?}");
    }
}
