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
#![cfg(target_arch = "wasm32")]

use polar_license::portal::{PortalError, SessionToken};
use polar_license::wasm::{date_now, AsyncLicensing};
use polar_license::ActivateRequest;
use polar_license::Verdict as Answer;
use polar_license_testkit::fetch::{
    elsewhere, emailed_codes, new_key, patch_key, rotate_key, seller, seller_relay, set_clock,
    set_fault_at, set_rate_limit, Versioned,
};
use polar_license_testkit::seller_rows::{
    codes_cell, devices_cell, emailed_code, followed_cell, recovered_cell, rows, seconds,
    shows_key, tsv, Found, Row, Step, Verdict, DEVICES_EMAIL, TSV_MARKER,
};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
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
                let got = match followed {
                    Ok((_, Answer::Accepted(v))) => followed_cell(
                        "licensed",
                        mine.is_some() && v.activation.map(|a| a.id) == mine,
                    ),
                    Ok((_, Answer::Denied(d))) => followed_cell(d.reason.code(), false),
                    Err(e) => e.code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::TryActivate(want) => {
                let answer = app
                    .activate(&ActivateRequest::new(key.as_str(), "This laptop"))
                    .await;
                let got = match answer {
                    Ok(Answer::Accepted(a)) => {
                        mine = Some(a.activation.id);
                        "activated".to_string()
                    }
                    Ok(Answer::Denied(d)) => d.reason.code().to_string(),
                    Err(e) => e.reason().code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
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
                let got = match listed {
                    Ok(d) => {
                        devices_cell(d.devices.len(), d.devices.iter().any(|d| d.this_machine))
                    }
                    Err(e) => e.code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            // No session: through the seller's relay in front of the row's Polar.
            Step::DevicesRelay(want) => {
                let listed = app
                    .list_devices_via_relay(seller_relay(), key.as_str())
                    .await;
                let got = match listed {
                    Ok(d) => {
                        devices_cell(d.devices.len(), d.devices.iter().any(|d| d.this_machine))
                    }
                    Err(e) => e.code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
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
                            recovered_cell(&match app.activate(&request).await {
                                Ok(Answer::Accepted(_)) => "activated".to_string(),
                                Ok(Answer::Denied(d)) => d.reason.code().to_string(),
                                Err(e) => e.reason().code().to_string(),
                            })
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
                            let wait = match e {
                                PortalError::RateLimited(wait) => wait,
                                _ => None,
                            };
                            refused = Some((e.code(), wait));
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
