//! The seller's rows (issue #54, "Done when" 2nd bullet) through the Rust-on-wasm client
//! (`AsyncLicensing`), in node and in headless Chromium (`scripts/test-wasm.sh`): perpetual
//! fallback and trials as one table (tests/vectors/seller-rows.json, read by every face), the
//! app's clock (the builder's `clock`) and Polar's (the emulator's `/__emulator/clock`) moved
//! together. Every row runs against one emulator (`POLAR_WASM_SELLER_URL`, this suite's
//! alone: its clock and faults move), each with a fresh key seeded as the row says, in the
//! API version the row names (sent as `Polar-Version` by the testkit's `Versioned` transport).
//!
//! A wasm test writes no files: the rows are printed as TSV lines after
//! [`TSV_MARKER`](polar_license_testkit::seller_rows::TSV_MARKER), and scripts/test-wasm.sh
//! (run with `--nocapture`) keeps them as target/seller-table/wasm.tsv for
//! scripts/seller-table.sh. The test fails when a step of any row answers otherwise than the
//! table says.
//!
//! The values rows (issue #68, `"world": "values"`) are played on each values world
//! scripts/test-wasm.sh started (tests/js/values-world.mjs --http, one a relay host: `relay
//! serve` and the npm relay under workerd), their control URLs baked in as
//! `POLAR_WASM_VALUES_WORLDS`: the world's Polar steps over its control routes, the face's own
//! (`value`, `usage`, `relay_check`) through an `AsyncLicensing` in signed mode asking the
//! row's relay. Not baked in (the browser runs), they are not played: the table then shows the
//! face's values cells from the node run alone.
#![cfg(target_arch = "wasm32")]

use polar_license::grace::GracePolicy;
use polar_license::lease::RelayKeys;
use polar_license::portal::{PortalError, SessionToken};
use polar_license::wasm::{date_now, AsyncLicensing};
use polar_license::ActivateRequest;
use polar_license::Verdict as Answer;
use polar_license_testkit::fetch::{
    elsewhere, emailed_codes, new_key, patch_key, rotate_key, seller, seller_relay, set_clock,
    set_fault_at, set_rate_limit, Versioned,
};
use polar_license_testkit::seller_rows::{
    activated_cell, codes_cell, emailed_code, followed_answer_cell, listed_cell, recovered_cell,
    refusal, rows, seconds, shows_key, tsv, Found, Row, Step, Verdict, DEVICES_EMAIL, TSV_MARKER,
};
use polar_license_testkit::values_rows::{
    check_cell, play_row, usage_cell, value_cell, values_rows, Hello, ValuesFace, ValuesRow,
    ValuesWorld,
};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

async fn run_row(row: &Row) -> Found {
    let polar = seller();
    set_fault_at(polar, Value::Null).await;
    set_clock(polar, 0).await;
    let start = date_now();
    let key = new_key(polar, "SELLER", row.seed_key(start)).await;
    // Polar's per-address limits for the row alone, counted afresh (the emulator is shared).
    if row.rate_limit() {
        set_rate_limit(polar, true).await;
    }
    let clock = Rc::new(Cell::new(start));
    let reading = Rc::clone(&clock);
    let builder = AsyncLicensing::builder(ORG)
        .base_url(polar)
        .memory_store()
        .machine_id("machine-A")
        .clock(move || reading.get());
    let app = row
        .set_up(start, builder)
        .build_with_transport(Versioned::new(row.api()))
        .expect("licensing builds");
    let mut found = Found::new(row);
    let mut session: Option<SessionToken> = None;
    // The activation this machine took (a rotation keeps it).
    let mut mine: Option<String> = None;
    for (i, step) in row.steps.iter().enumerate() {
        if let Some(offset) = step.day().map(seconds) {
            set_clock(polar, offset).await;
            clock.set(start + offset);
        }
        match step {
            Step::Activate(_) => {
                let v = app
                    .activate(&ActivateRequest::new(key.as_str(), "laptop"))
                    .await;
                if !v.as_ref().is_ok_and(|v| v.accepted().is_some()) {
                    found.failures.push(format!("step {i}: activate: {v:?}"));
                }
            }
            Step::Check(_, want) => {
                let got = Verdict::of_report(row, &app.check_report(key.as_str()).await, start);
                found.compare(i, want.as_ref(), &got);
            }
            Step::Trial(_, want) => {
                let got = Verdict::of_report(row, &app.check_trial_report().await, start);
                found.compare(i, want.as_ref(), &got);
            }
            Step::Revoke(_) => patch_key(polar, &key, json!({ "status": "revoked" })).await,
            Step::Offline => set_fault_at(polar, json!({ "kind": "close_immediately" })).await,
            Step::Elsewhere(label) => elsewhere(polar, &key, label).await,
            // Polar's clock alone (the app's stays).
            Step::PolarClock(day) => set_clock(polar, seconds(*day)).await,
            Step::Rotate => rotate_key(polar, &key).await,
            // The rotated key followed through the session to its new string.
            Step::FollowRotation(want) => {
                let followed = match &session {
                    Some(s) => app.follow_rotation(s, key.as_str()).await,
                    None => Err(PortalError::NotSignedIn),
                };
                let got = followed_answer_cell(followed, mine.as_deref());
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::TryActivate(want) => {
                let answer = app
                    .activate(&ActivateRequest::new(key.as_str(), "This laptop"))
                    .await;
                if let Ok(Answer::Accepted(a)) = &answer {
                    mine = Some(a.activation.id.clone());
                }
                found.compare(i, want.as_ref(), &Verdict::word(activated_cell(&answer)));
            }
            Step::SignIn => {
                let signed = match app.client().request_sign_in_code(DEVICES_EMAIL).await {
                    Ok(()) => {
                        let code = emailed_code(&emailed_codes(polar).await);
                        app.client().sign_in(&code).await
                    }
                    Err(e) => Err(e),
                };
                match signed {
                    Ok(token) => session = Some(token),
                    Err(e) => found.failures.push(format!("step {i}: sign in: {e:?}")),
                }
            }
            Step::Devices(want) => {
                let listed = match &session {
                    Some(s) => app.list_devices(s, key.as_str()).await,
                    None => Err(PortalError::NotSignedIn),
                };
                found.compare(i, want.as_ref(), &Verdict::word(listed_cell(listed)));
            }
            // No session: through the seller's relay in front of the row's Polar.
            Step::DevicesRelay(want) => {
                let listed = app
                    .list_devices_via_relay(seller_relay(), key.as_str())
                    .await;
                found.compare(i, want.as_ref(), &Verdict::word(listed_cell(listed)));
            }
            // "I lost my key": the customer's keys through the session; the one shown as the
            // row's key activated here (the whole key only into the activation).
            Step::Recover(want) => {
                let listed = match &session {
                    Some(s) => app.recoverable_keys(s).await,
                    None => Err(PortalError::NotSignedIn),
                };
                let got = match listed {
                    Ok(keys) => match keys.iter().find(|k| shows_key(&k.display_key, &key)) {
                        Some(lost) => {
                            let request = ActivateRequest::new(lost.key.expose(), "Recovered here");
                            recovered_cell(&activated_cell(&app.activate(&request).await))
                        }
                        None => "unlisted".to_string(),
                    },
                    Err(e) => e.code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            // Codes asked for until Polar refuses: the refusal typed, with its wait (in a
            // browser, which cannot read `retry-after`, the core's: the zone's block).
            Step::RequestCodes(times, want) => {
                let mut sent = 0;
                let mut refused = None;
                for _ in 0..*times {
                    match app.client().request_sign_in_code(DEVICES_EMAIL).await {
                        Ok(()) => sent += 1,
                        Err(e) => {
                            refused = Some(refusal(&e));
                            break;
                        }
                    }
                }
                let got = codes_cell(sent, refused);
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::FreeOther => {
                let other = match &session {
                    Some(s) => app.list_devices(s, key.as_str()).await.ok().and_then(|d| {
                        d.devices
                            .into_iter()
                            .find(|d| !d.this_machine)
                            .map(|d| d.id)
                    }),
                    None => None,
                };
                let freed = match other {
                    Some(id) => Some(app.deactivate(key.as_str(), Some(&id)).await),
                    None => None,
                };
                if !matches!(freed, Some(Ok(Answer::Accepted(())))) {
                    found
                        .failures
                        .push(format!("step {i}: free another: {freed:?}"));
                }
            }
        }
    }
    set_fault_at(polar, Value::Null).await;
    set_clock(polar, 0).await;
    if row.rate_limit() {
        set_rate_limit(polar, false).await;
    }
    found
}

#[wasm_bindgen_test]
async fn seller_table() {
    let rows = rows();
    let mut found = Vec::new();
    for row in &rows {
        found.push(run_row(row).await);
    }
    if let Some(worlds) = VALUES_WORLDS {
        let values = values_rows();
        for control in worlds.split_whitespace() {
            found.extend(play_values(control, &values).await);
        }
    }
    let (tsv, failures) = tsv("wasm", &found);
    for line in tsv.lines() {
        console_log!("{TSV_MARKER}{line}");
    }
    assert!(found.len() >= 11, "the table lost rows");
    assert!(
        failures.is_empty(),
        "wasm: seller table failures:\n{failures}"
    );
}

/// The values worlds' control URLs, space-separated (scripts/test-wasm.sh).
const VALUES_WORLDS: Option<&str> = option_env!("POLAR_WASM_VALUES_WORLDS");

/// A values world (tests/js/values-world.mjs --http): its control URL and its hello.
struct World {
    control: String,
    hello: Hello,
}

impl World {
    async fn hello(control: &str) -> Result<World, String> {
        let resp = gloo_net::http::Request::get(&format!("{control}/hello"))
            .send()
            .await
            .map_err(|e| format!("{control}/hello: {e}"))?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let hello: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        Ok(World {
            control: control.to_string(),
            hello: Hello::read(&hello),
        })
    }
}

impl ValuesWorld for World {
    fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn step(&mut self, step: &Value) -> Result<Option<String>, String> {
        let host = &self.hello.host;
        let resp = gloo_net::http::Request::post(&format!("{}/step", self.control))
            .header("content-type", "application/json")
            .body(step.to_string())
            .map_err(|e| e.to_string())?
            .send()
            .await
            .map_err(|e| format!("the values world ({host}): {e}"))?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        match answer.get("error") {
            Some(e) => Err(format!("the values world ({host}): {e}")),
            None => Ok(answer["got"].as_str().map(str::to_string)),
        }
    }
}

/// The face of the values rows: an `AsyncLicensing` a relay, signed mode with the relay's key,
/// every check asking it (as the native runners' faces).
struct Face {
    org: String,
    keys: RelayKeys,
    apps: RefCell<BTreeMap<String, Rc<AsyncLicensing>>>,
}

impl Face {
    fn app(&self, relay: &str) -> Rc<AsyncLicensing> {
        self.apps
            .borrow_mut()
            .entry(relay.to_string())
            .or_insert_with(|| {
                let app = AsyncLicensing::builder(&self.org)
                    .base_url(relay)
                    .memory_store()
                    .machine_id("machine-A")
                    .relay_keys(self.keys.clone())
                    .policy(GracePolicy {
                        revalidate_after: Duration::ZERO,
                        ..GracePolicy::default()
                    })
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("licensing builds");
                Rc::new(app)
            })
            .clone()
    }
}

impl ValuesFace for Face {
    async fn value(&self, relay: &str, key: &str, name: &str) -> String {
        let app = self.app(relay);
        let _ = app.check(key).await;
        value_cell(app.entitlement(name))
    }

    async fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String {
        let app = self.app(relay);
        usage_cell(
            app.record_usage(Some(relay), key, meter, units, Some(id))
                .await
                .1,
        )
    }

    async fn relay_check(&self, relay: &str, key: &str) -> String {
        check_cell(&self.app(relay).check(key).await)
    }
}

/// Plays the values rows of the world at `control` on its host (the testkit's `play_row`, as
/// the native runners).
async fn play_values(control: &str, rows: &[ValuesRow]) -> Vec<Found> {
    let mut world = match World::hello(control).await {
        Ok(w) => w,
        Err(e) => {
            return vec![Found {
                id: format!("values world {control}"),
                failures: vec![e],
                ..Found::default()
            }]
        }
    };
    let face = Face {
        org: world.hello.org.clone(),
        keys: RelayKeys::parse(&world.hello.pair).expect("the relay's key"),
        apps: RefCell::new(BTreeMap::new()),
    };
    let host = world.hello.host.clone();
    let mut all = Vec::new();
    for row in rows.iter().filter(|r| r.hosts.contains(&host)) {
        all.push(play_row(row, &mut world, &face).await);
    }
    all
}
