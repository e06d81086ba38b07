//! The seller's rows (issue #54, "Done when" 2nd bullet) through the Tauri plugin: perpetual
//! fallback and trials as one table (tests/vectors/seller-rows.json, read by every face), each
//! row an app on Tauri's mock runtime with the plugin's `Options` (`released`, `trial`,
//! `trial_benefit`) against its own emulator, the app's clock and Polar's moved together. Every
//! step goes through the plugin's commands as the webview invokes them
//! (`plugin:polar-license|activate`, `check` of the remembered key, or with none remembered
//! the local trial), and its cell is read from the `LicenseState` the app receives: what a
//! Tauri app sees, not the core's report. The rows are written to
//! target/seller-table/tauri.tsv for scripts/seller-table.sh; the test fails when a step of
//! any row answers otherwise than the table says.

use polar_license::lease::SigningKey;
use polar_license::{AccessToken, Server, UreqTransport};
use polar_license_emulator::{Emulator, DEMO_KEY, DEMO_TOKEN};
use polar_license_relay::{serve, Relay, RelayConfig, Running};
use polar_license_tauri::{
    Activated, DeviceError, DeviceList, Followed, LicenseState, Options, RecoverableKey,
};
use polar_license_testkit::seller_rows::{
    codes_cell, devices_cell, followed_cell, play_with_values, recovered_cell, shows_key, Found,
    Row, RowPolar, Step, TrialCell, Verdict, DEVICES_EMAIL,
};
use polar_license_testkit::values_rows::{
    balance_cell, credits_cell, play_values, recorded_cell, stopped_cell, Hello, ValuesFace,
};
use polar_license_testkit::{cli_bin, ScratchDir};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tauri::test::MockRuntime;
use tauri::{App, WebviewWindow};

use crate::common;

/// The app of one row: the plugin on the mock runtime and its main window.
struct TauriApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
}

impl TauriApp {
    /// Invokes `plugin:polar-license|<command>` as `invoke()` in the webview does: the answer
    /// as its type, or the rejection as JSON.
    fn invoke<T: DeserializeOwned>(&self, command: &str, args: Value) -> Result<T, Value> {
        let value = common::invoke(&self.webview, command, args)?;
        Ok(serde_json::from_value(value).expect("the declared answer type"))
    }
}

/// A `LicenseState` in the table's vocabulary, times from `start`.
fn verdict(row: &Row, state: &LicenseState, start: i64) -> Verdict {
    let local_trial_runs = state
        .trial
        .as_ref()
        .is_some_and(|t| t.local && t.state == "active");
    let (verdict, source) = if state.licensed {
        ("licensed".to_string(), state.source.clone())
    } else if local_trial_runs {
        ("trial".to_string(), None)
    } else {
        (state.code.clone().unwrap_or_else(|| "none".into()), None)
    };
    let perpetual = state
        .perpetual
        .as_ref()
        .map(|p| (p.fallback, p.paid_through.map(|t| t - start)));
    let trial = state.trial.as_ref().map(|t| TrialCell {
        local: t.local,
        state: t.state.clone(),
        days_left: u64::from(t.days_left),
        ends: t.ends_at.map(|e| e - start),
    });
    Verdict::stated(row, (verdict, source), perpetual, trial)
}

/// The seller's relay (the relay crate's server, as `relay serve` runs it) in front of `polar`,
/// reading with the emulator's demo token.
fn relay_in_front_of(polar: &Emulator) -> Running {
    let key = SigningKey::generate(Some("tauri-seller")).expect("a key");
    let config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(DEMO_TOKEN),
        key,
    );
    let transport = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(10), 1 << 20);
    let relay = Relay::new(config, Box::new(transport)).expect("the relay");
    serve(Arc::new(relay), "127.0.0.1:0").expect("the relay listens")
}

fn run_row(row: &Row) -> Found {
    let world = RowPolar::new(row);
    let start = world.start;
    let dir = ScratchDir::new(&format!("tauri-seller-{}", row.id));
    // The plugin's own setters (`Options::released`, `trial`, `trial_benefit`).
    let options = row.set_up_with(
        start,
        common::options(&world.polar, &dir, &world.clock),
        Options::released,
        Options::trial,
        |options, benefit| options.trial_benefit(benefit),
    );
    let (app, webview) = common::app_with_window(
        world.polar.organization_id(),
        options,
        &["polar-license:default"],
    );
    let app = TauriApp { _app: app, webview };
    // The seller's relay in front of the row's Polar, when a step lists through it.
    let relay = row.relay().then(|| relay_in_front_of(&world.polar));
    let mut found = Found::new(row);
    // The activation this machine took (a rotation keeps it).
    let mut mine: Option<String> = None;
    for (i, step) in row.steps.iter().enumerate() {
        // The clocks, Polar's revocation and its outage; the app's invocations below.
        world.play(step);
        match step {
            Step::Activate(_) => {
                let answer = app
                    .invoke::<Activated>("activate", json!({ "key": DEMO_KEY, "label": "laptop" }));
                if let Err(e) = answer {
                    found.failures.push(format!("step {i}: activate: {e}"));
                }
            }
            // The remembered key (activate remembered it); with none, the local trial.
            Step::Check(_, want) | Step::Trial(_, want) => {
                match app.invoke::<LicenseState>("check", json!({})) {
                    Ok(state) => found.compare(i, want.as_ref(), &verdict(row, &state, start)),
                    Err(e) => found
                        .failures
                        .push(format!("step {i}: check rejected: {e}")),
                }
            }
            Step::TryActivate(want) => {
                let got = match app.invoke::<Activated>(
                    "activate",
                    json!({ "key": DEMO_KEY, "label": "This laptop" }),
                ) {
                    Ok(a) => {
                        mine = Some(a.activation_id);
                        "activated".to_string()
                    }
                    Err(e) => e["code"].as_str().unwrap_or("none").to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::SignIn => {
                let asked =
                    app.invoke::<()>("request_sign_in_code", json!({ "email": DEVICES_EMAIL }));
                let signed = asked.and_then(|()| {
                    app.invoke::<()>("sign_in", json!({ "code": world.emailed_code() }))
                });
                if let Err(e) = signed {
                    found.failures.push(format!("step {i}: sign in: {e}"));
                }
            }
            // The key's devices through the plugin's session.
            Step::Devices(want) => {
                let listed = app.invoke::<DeviceList>("list_devices", json!({ "key": DEMO_KEY }));
                found.compare(i, want.as_ref(), &Verdict::word(devices_got(listed)));
            }
            // No session: the plugin lists through the relay the app names.
            Step::DevicesRelay(want) => {
                let listed = app.invoke::<DeviceList>(
                    "list_devices",
                    json!({ "key": DEMO_KEY, "relay": relay.as_ref().map(Running::url) }),
                );
                found.compare(i, want.as_ref(), &Verdict::word(devices_got(listed)));
            }
            // "I lost my key": the plugin's recoverable keys, the one shown as the row's key
            // recovered here by its id.
            Step::Recover(want) => {
                let got = match app.invoke::<Vec<RecoverableKey>>("recoverable_keys", json!({})) {
                    Ok(keys) => match keys.iter().find(|k| shows_key(&k.display_key, DEMO_KEY)) {
                        Some(lost) => recovered_cell(&match app.invoke::<Activated>(
                            "recover_key",
                            json!({ "id": lost.id, "label": "Recovered here" }),
                        ) {
                            Ok(_) => "activated".to_string(),
                            Err(e) => e["code"].as_str().unwrap_or("none").to_string(),
                        }),
                        None => "unlisted".to_string(),
                    },
                    Err(e) => serde_json::from_value::<DeviceError>(e.clone())
                        .map_or_else(|_| e.to_string(), |d| d.portal_error),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::FreeOther => {
                let other = app
                    .invoke::<DeviceList>("list_devices", json!({ "key": DEMO_KEY }))
                    .ok()
                    .and_then(|d| d.devices.into_iter().find(|d| !d.this_machine));
                let freed = other.map(|d| {
                    app.invoke::<()>(
                        "free_device",
                        json!({ "key": DEMO_KEY, "activationId": d.id }),
                    )
                });
                if !matches!(freed, Some(Ok(()))) {
                    found
                        .failures
                        .push(format!("step {i}: free another: {freed:?}"));
                }
            }
            // `request_sign_in_code` until Polar refuses: the plugin's DeviceError, as the
            // webview receives it (its `portal_error` and `retry_after`).
            Step::RequestCodes(times, want) => {
                let mut sent = 0;
                let mut refused = None;
                for _ in 0..*times {
                    match app
                        .invoke::<()>("request_sign_in_code", json!({ "email": DEVICES_EMAIL }))
                    {
                        Ok(()) => sent += 1,
                        Err(e) => {
                            refused = Some(
                                serde_json::from_value::<DeviceError>(e.clone()).map_or_else(
                                    |_| (e.to_string(), None),
                                    |d| (d.portal_error, d.retry_after),
                                ),
                            );
                            break;
                        }
                    }
                }
                let got = codes_cell(
                    sent,
                    refused.as_ref().map(|(code, wait)| (code.as_str(), *wait)),
                );
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            // The remembered (rotated) key followed through the plugin's session; then the
            // remembered key, the new one now, checked as the app would.
            Step::FollowRotation(want) => {
                let got = match app.invoke::<Followed>("follow_rotation", json!({})) {
                    Ok(followed) => {
                        let state = app.invoke::<LicenseState>("check", json!({}));
                        let kept = mine.is_some() && followed.activation_id == mine;
                        match state {
                            Ok(s) if s.licensed => followed_cell("licensed", kept),
                            Ok(s) => followed_cell(s.code.as_deref().unwrap_or("none"), kept),
                            Err(e) => e.to_string(),
                        }
                    }
                    Err(e) => match serde_json::from_value::<DeviceError>(e.clone()) {
                        Ok(d) => d.portal_error,
                        Err(_) => followed_cell(e["code"].as_str().unwrap_or("none"), false),
                    },
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::Revoke(_)
            | Step::Offline
            | Step::Elsewhere(_)
            | Step::PolarClock(_)
            | Step::Rotate => {}
        }
    }
    found
}

/// A `list_devices` invocation's cell: [`devices_cell`], or the plugin's `DeviceError` as the
/// webview receives it.
fn devices_got(listed: Result<DeviceList, Value>) -> String {
    match listed {
        Ok(d) => devices_cell(d.devices.len(), d.devices.iter().any(|d| d.this_machine)),
        Err(e) => serde_json::from_value::<DeviceError>(e.clone())
            .map_or_else(|_| e.to_string(), |d| d.portal_error),
    }
}

/// The values rows' face (issue #68): an app on the mock runtime a relay, the plugin's
/// `Options` at the relay in signed mode (its key, every check asking it); its `entitlement`,
/// `record_usage` and `check` commands as the webview invokes them, the typed detail read from
/// the `LicenseState`.
struct TauriFace {
    org: String,
    keys: polar_license::lease::RelayKeys,
    dir: ScratchDir,
    apps: std::cell::RefCell<std::collections::BTreeMap<String, std::rc::Rc<TauriApp>>>,
}

impl TauriFace {
    fn new(world: &Hello) -> TauriFace {
        TauriFace {
            org: world.org.clone(),
            keys: polar_license::lease::RelayKeys::parse(&world.pair).expect("the relay's key"),
            dir: ScratchDir::new(&format!("tauri-seller-values-{}", world.host)),
            apps: Default::default(),
        }
    }

    fn app(&self, relay: &str) -> std::rc::Rc<TauriApp> {
        let mut apps = self.apps.borrow_mut();
        let n = apps.len();
        apps.entry(relay.to_string())
            .or_insert_with(|| {
                let keys = self.keys.clone();
                let options = Options::default()
                    .base_url(relay)
                    .cache_dir(self.dir.path().join(format!("app-{n}")))
                    .configure(move |builder| {
                        builder
                            .machine_binding(polar_license::MachineBinding::Id("machine-A".into()))
                            .timeout(Duration::from_secs(10))
                            .relay_keys(keys)
                            .policy(polar_license::GracePolicy {
                                revalidate_after: Duration::ZERO,
                                ..polar_license::GracePolicy::default()
                            })
                    });
                let (app, webview) =
                    common::app_with_window(self.org.clone(), options, &["polar-license:default"]);
                std::rc::Rc::new(TauriApp { _app: app, webview })
            })
            .clone()
    }
}

impl ValuesFace for TauriFace {
    async fn value(&self, relay: &str, key: &str, name: &str) -> String {
        match self
            .app(relay)
            .invoke::<Value>("entitlement", json!({ "name": name, "key": key }))
        {
            Ok(v) => match &v["value"] {
                Value::Null => "absent".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            Err(e) => e["code"].as_str().unwrap_or("none").to_string(),
        }
    }

    async fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String {
        let args = json!({ "meter": meter, "units": units, "id": id, "key": key, "relay": relay });
        match self.app(relay).invoke::<Value>("record_usage", args) {
            Ok(v) => recorded_cell(v["duplicate"] == true, balance_cell(v["balance"].as_f64())),
            Err(e) if e["code"] == "credits_exhausted" => {
                credits_cell(balance_cell(e["balance"].as_f64()))
            }
            Err(e) => e["code"].as_str().unwrap_or("none").to_string(),
        }
    }

    async fn relay_check(&self, relay: &str, key: &str) -> String {
        match self
            .app(relay)
            .invoke::<LicenseState>("check", json!({ "key": key }))
        {
            Ok(state) if state.licensed => "licensed".to_string(),
            Ok(state) => {
                let code = state.code.clone().unwrap_or_else(|| "none".into());
                match state.stopped {
                    Some(s) => stopped_cell(&code, s.kind, s.until),
                    None => code,
                }
            }
            Err(e) => e["code"].as_str().unwrap_or("none").to_string(),
        }
    }
}

#[test]
fn seller_table() {
    play_with_values("tauri", run_row, || play_values(&cli_bin(), TauriFace::new));
}
