//! Polar's 2027-01 fields on the Tauri face (issue #54, "Done when" 3rd bullet): an app whose
//! Polar (the emulator, built by the seller table's `Row::emulator`) answers in API version
//! 2027-01 shows the seat holder (`member`), the subscription and the order in the `license` of
//! `activate`'s, `validate`'s and `check`'s answers, as the webview receives them; an app on
//! 2026-10 gets none of them (the fields are absent, not null). The invocations and answers
//! are recorded as `answers-versions-<api>.json` beside commands.rs's, so the guest package's
//! tests replay them and check them against its types.

use polar_license_emulator::{
    ApiVersionsChange, Emulator, Fault, Options as EmulatorOptions, Seed, DEMO_KEY,
    DEMO_KEY_REVOKED,
};
use polar_license_tauri::{Activated, LicenseState, Validated};
use polar_license_testkit::seller_rows::{Row, DAY, MEMBER_ID};
use polar_license_testkit::{unix_now, FakeClock, ScratchDir};
use serde_json::{json, Value};
use tauri::test::MockRuntime;
use tauri::{App, WebviewWindow};

use crate::common;

/// The app of one row: the plugin on the mock runtime and its main window, and what it was
/// asked and answered.
struct TauriApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    recorded: Vec<Value>,
}

impl TauriApp {
    /// Invokes `plugin:polar-license|<command>` as `invoke()` in the webview does; the raw
    /// JSON answer, which must resolve.
    fn invoke(&mut self, command: &str, args: Value) -> Value {
        let answer = match common::invoke(&self.webview, command, args.clone()) {
            Ok(answer) => answer,
            Err(e) => panic!("{command} rejected: {e}"),
        };
        assert!(
            !answer.to_string().contains(DEMO_KEY),
            "{command} answered the whole key: {answer}"
        );
        self.recorded
            .push(json!({ "command": command, "args": args, "ok": answer }));
        answer
    }
}

/// Activates, validates and checks the demo key in an app whose Polar answers in `api`; each
/// answer's `license` as JSON, with when the row started. The answers are recorded for the
/// guest package.
fn licenses(api: &str) -> (i64, Vec<(&'static str, Value)>) {
    let start = unix_now();
    let row = Row::with_holder_and_order(api);
    let polar = row.emulator(start);
    let dir = ScratchDir::new(&format!("tauri-versions-{api}"));
    let clock = FakeClock::new(start);
    let options = common::options(&polar, &dir, &clock);
    let (app, webview) =
        common::app_with_window(polar.organization_id(), options, &["polar-license:default"]);
    let mut app = TauriApp {
        _app: app,
        webview,
        recorded: Vec::new(),
    };
    let activated = app.invoke("activate", json!({ "key": DEMO_KEY, "label": "laptop" }));
    let validated = app.invoke("validate", json!({ "key": DEMO_KEY }));
    let checked = app.invoke("check", json!({}));
    // Each answer is also its declared Rust type.
    let _: Activated = serde_json::from_value(activated.clone()).expect("Activated");
    let _: Validated = serde_json::from_value(validated.clone()).expect("Validated");
    let state: LicenseState = serde_json::from_value(checked.clone()).expect("LicenseState");
    assert!(state.licensed, "{api}: {checked}");
    common::write_fixture(
        &format!("answers-versions-{api}.json"),
        &Value::Array(app.recorded),
    );
    let answers = vec![
        ("activate", activated["license"].clone()),
        ("validate", validated["license"].clone()),
        ("check", checked["license"].clone()),
    ];
    (start, answers)
}

#[test]
fn on_2027_01_the_license_shows_the_seat_holder_the_subscription_and_the_order() {
    let (start, answers) = licenses("2027-01");
    let period_end = start + 30 * DAY;
    for (command, license) in answers {
        assert_eq!(
            license["member"],
            json!({ "id": MEMBER_ID, "email": "seat@acme.io", "externalId": "acme-42" }),
            "{command}: {license}"
        );
        let sub = &license["subscription"];
        assert!(
            sub["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{command}: {sub}"
        );
        assert_eq!(sub["status"], "active", "{command}: {sub}");
        assert_eq!(sub["cancelAtPeriodEnd"], true, "{command}: {sub}");
        assert_eq!(sub["currentPeriodEnd"], period_end, "{command}: {sub}");
        assert_eq!(sub["endsAt"], period_end, "{command}: {sub}");
        assert!(sub["currentPeriodStart"].is_i64(), "{command}: {sub}");
        let order = &license["order"];
        assert_eq!(order["paid"], true, "{command}: {order}");
        assert_eq!(order["status"], "paid", "{command}: {order}");
        assert!(
            order["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{command}: {order}"
        );
        assert!(order["createdAt"].is_i64(), "{command}: {order}");
        // Unix seconds like `expiresAt`, never Polar's strings.
        assert!(license["displayKey"].as_str().is_some(), "{license}");
    }
}

#[test]
fn on_2026_10_the_license_has_no_member_subscription_or_order() {
    let (_, answers) = licenses("2026-10");
    for (command, license) in answers {
        assert!(license.is_object(), "{command}: {license}");
        let fields = license.as_object().expect("an object");
        for absent in ["member", "subscription", "order"] {
            assert!(
                !fields.contains_key(absent),
                "{command}: {absent} in {license}"
            );
        }
    }
}

/// The webview's reading of the demo keys: validate's key status, check's standing and source,
/// and the revoked key's rejection code.
fn rotation_verdicts(webview: &WebviewWindow<MockRuntime>) -> (Value, bool, String, Value) {
    let validated = common::invoke(webview, "validate", json!({ "key": DEMO_KEY }))
        .unwrap_or_else(|e| panic!("validate rejected: {e}"));
    let checked: LicenseState = common::invoke(webview, "check", json!({}))
        .map(|v| serde_json::from_value(v).expect("LicenseState"))
        .unwrap_or_else(|e| panic!("check rejected: {e}"));
    let refused = match common::invoke(webview, "validate", json!({ "key": DEMO_KEY_REVOKED })) {
        Ok(v) => panic!("the revoked key validated: {v}"),
        Err(e) => e,
    };
    (
        validated["license"]["status"].clone(),
        checked.licensed,
        checked.outcome,
        refused["code"].clone(),
    )
}

/// Issue #78: Polar's January 2027 rotation (`2026-04` removed, `2027-01` made current)
/// between two invocations, through the emulator's run-time switch: the webview reads the
/// same verdicts before and after, a build pinned to the removed version would hear a bare 404
/// that the plugin never reads as "not found", and every request the plugin sent named the
/// library and pinned no version.
#[test]
fn the_rotation_day_changes_no_verdict_in_the_webview() {
    let start = unix_now();
    let polar = Emulator::start(Seed::demo(), EmulatorOptions::default()).expect("emulator");
    let dir = ScratchDir::new("tauri-rotation-day");
    let clock = FakeClock::new(start);
    let options = common::options(&polar, &dir, &clock);
    let (_app, webview) =
        common::app_with_window(polar.organization_id(), options, &["polar-license:default"]);
    common::invoke(
        &webview,
        "activate",
        json!({ "key": DEMO_KEY, "label": "laptop" }),
    )
    .unwrap_or_else(|e| panic!("activate rejected: {e}"));

    let before = rotation_verdicts(&webview);
    assert_eq!(before.0, json!("granted"), "{before:?}");
    assert!(before.1, "{before:?}");
    assert_eq!(before.3, json!("inactive"), "{before:?}");

    let change: ApiVersionsChange = serde_json::from_value(json!({
        "served": ["2026-10", "2027-01"],
        "current": "2027-01",
        "due_for_removal": [],
    }))
    .expect("a change");
    polar.set_api_versions(&change).expect("the switch");
    assert_eq!(rotation_verdicts(&webview), before);

    // The bare 404 every route answers a build pinned to a removed version: no verdict, never
    // "not found"; the cache keeps the app licensed.
    polar.set_fault(Some(Fault::Respond {
        status: 404,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"detail":"Not Found"}"#.into(),
    }));
    match common::invoke(&webview, "validate", json!({ "key": DEMO_KEY })) {
        Ok(v) => panic!("a bare 404 validated: {v}"),
        Err(e) => assert_ne!(e["code"], json!("not_found"), "{e}"),
    }
    let state: LicenseState = common::invoke(&webview, "check", json!({}))
        .map(|v| serde_json::from_value(v).expect("LicenseState"))
        .unwrap_or_else(|e| panic!("check rejected: {e}"));
    assert!(state.licensed, "{state:?}");
    polar.set_fault(None);

    let seen = polar.seen_requests();
    // The activation and the four validates at least (a check within its interval asks nothing).
    assert!(seen.len() >= 5, "{seen:?}");
    for r in &seen {
        let agent = r.user_agent.as_deref().unwrap_or_default();
        assert!(
            agent.starts_with("polar-license/") && agent.ends_with(" (rust)"),
            "{r:?}"
        );
        assert_eq!(r.polar_version, None, "{r:?}");
    }
}
