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

use polar_license::MachineBinding;
use polar_license_emulator::{Fault, DEMO_KEY};
use polar_license_tauri::{Activated, LicenseState, Options, ReleaseDate, TrialDays};
use polar_license_testkit::seller_rows::{
    play, revoke, seconds, Found, Row, Step, TrialCell, Verdict, TRIAL_BENEFIT,
};
use polar_license_testkit::{unix_now, FakeClock, ScratchDir};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, MockRuntime};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow};

mod common;

/// The app of one row: the plugin on the mock runtime and its main window.
struct TauriApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
}

impl TauriApp {
    /// Invokes `plugin:polar-license|<command>` as `invoke()` in the webview does: the answer
    /// as its type, or the rejection as JSON.
    fn invoke<T: DeserializeOwned>(&self, command: &str, args: Value) -> Result<T, Value> {
        let request = InvokeRequest {
            cmd: format!("plugin:polar-license|{command}"),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        };
        let body = get_ipc_response(&self.webview, request)?;
        let value = body.deserialize::<Value>().expect("a JSON answer");
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

fn run_row(row: &Row) -> Found {
    let start = unix_now();
    let polar = row.emulator(start);
    let dir = ScratchDir::new(&format!("tauri-seller-{}", row.id));
    let clock = FakeClock::new(start);
    let reader = clock.reader();
    let mut options = Options::default()
        .base_url(polar.url())
        .cache_dir(dir.path());
    if let Some(at) = row.released(start) {
        options = options.released(ReleaseDate::from_unix(at));
    }
    if let Some(days) = row.trial_days {
        options = options.trial(TrialDays::new(days).expect("trial days"));
    }
    if row.trial_benefit {
        options = options.trial_benefit(TRIAL_BENEFIT);
    }
    let options = options.configure(move |builder| {
        builder
            .machine_binding(MachineBinding::Id("machine-A".into()))
            .timeout(Duration::from_secs(10))
            .clock(reader)
    });
    let (app, webview) =
        common::app_with_window(polar.organization_id(), options, &["polar-license:default"]);
    let app = TauriApp { _app: app, webview };
    let move_to = |day: f64| {
        polar.set_clock_offset(seconds(day));
        clock.set(start + seconds(day));
    };
    let mut found = Found::new(row);
    for (i, step) in row.steps.iter().enumerate() {
        match step {
            Step::Activate(day) => {
                move_to(*day);
                let answer = app
                    .invoke::<Activated>("activate", json!({ "key": DEMO_KEY, "label": "laptop" }));
                if let Err(e) = answer {
                    found.failures.push(format!("step {i}: activate: {e}"));
                }
            }
            // The remembered key (activate remembered it); with none, the local trial.
            Step::Check(day, want) | Step::Trial(day, want) => {
                move_to(*day);
                match app.invoke::<LicenseState>("check", json!({})) {
                    Ok(state) => found.compare(i, want.as_ref(), &verdict(row, &state, start)),
                    Err(e) => found
                        .failures
                        .push(format!("step {i}: check rejected: {e}")),
                }
            }
            Step::Revoke(day) => {
                move_to(*day);
                revoke(&polar);
            }
            Step::Offline => polar.set_fault(Some(Fault::CloseImmediately)),
        }
    }
    found
}

#[test]
fn seller_table() {
    play("tauri", run_row);
}
