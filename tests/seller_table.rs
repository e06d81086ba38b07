//! The seller's rows (issue #54, "Done when" 2nd bullet) through the Rust API: perpetual
//! fallback and trials as one table (tests/vectors/seller-rows.json, read by every face), each
//! row against its own emulator, the app's clock and Polar's moved together. The rows are
//! written to target/seller-table/rust.tsv for scripts/seller-table.sh; the test fails when a
//! step of any row answers otherwise than the table says.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::portal::{PortalError, SessionToken};
use polar_license::{ActivateRequest, Licensing, MachineBinding, Verdict as Answer};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::seller_rows::{
    activated_cell, codes_cell, followed_answer_cell, listed_cell, play_with_values,
    recovered_cell, refusal, shows_key, Found, Row, RowPolar, Step, Verdict, DEVICES_EMAIL,
};
use polar_license_testkit::values_rows::{
    check_cell, play_values, usage_cell, value_cell, Hello, ValuesFace,
};
use polar_license_testkit::{cli_bin, licensing_builder, relay_in_front_of, ScratchDir};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

fn run_row(row: &Row) -> Found {
    let world = RowPolar::new(row);
    let start = world.start;
    let dir = ScratchDir::new(&format!("seller-{}", row.id));
    let builder = licensing_builder(&world.polar, &dir, MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(10))
        .clock(world.clock.reader());
    let app = row
        .set_up(start, builder)
        .build()
        .expect("licensing builds");
    // The seller's relay (`relay serve`) in front of the row's Polar, when a step lists
    // through it.
    let relays = ScratchDir::new(&format!("seller-{}-relay", row.id));
    let relay = row
        .relay()
        .then(|| relay_in_front_of(&cli_bin(), &world.polar.url(), &relays));
    let mut found = Found::new(row);
    let mut session: Option<SessionToken> = None;
    // The activation this machine took (a rotation keeps it).
    let mut mine: Option<String> = None;
    for (i, step) in row.steps.iter().enumerate() {
        // The clocks, Polar's revocation and its outage; the app's calls below.
        world.play(step);
        match step {
            Step::Activate(_) => {
                let v = app.activate(&ActivateRequest::new(DEMO_KEY, "laptop"));
                if !v.as_ref().is_ok_and(|v| v.accepted().is_some()) {
                    found.failures.push(format!("step {i}: activate: {v:?}"));
                }
            }
            Step::Check(_, want) => {
                let got = Verdict::of_report(row, &app.check_report(DEMO_KEY), start);
                found.compare(i, want.as_ref(), &got);
            }
            Step::Trial(_, want) => {
                let got = Verdict::of_report(row, &app.check_trial_report(), start);
                found.compare(i, want.as_ref(), &got);
            }
            Step::TryActivate(want) => {
                let answer = app.activate(&ActivateRequest::new(DEMO_KEY, "This laptop"));
                if let Ok(Answer::Accepted(a)) = &answer {
                    mine = Some(a.activation.id.clone());
                }
                found.compare(i, want.as_ref(), &Verdict::word(activated_cell(&answer)));
            }
            Step::SignIn => {
                let signed = app
                    .client()
                    .request_sign_in_code(DEVICES_EMAIL)
                    .and_then(|()| app.client().sign_in(&world.emailed_code()));
                match signed {
                    Ok(token) => session = Some(token),
                    Err(e) => found.failures.push(format!("step {i}: sign in: {e:?}")),
                }
            }
            Step::Devices(want) => {
                let got = listed_cell(listed(&app, session.as_ref()));
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            Step::FreeOther => {
                let other = listed(&app, session.as_ref()).ok().and_then(|d| {
                    d.devices
                        .into_iter()
                        .find(|d| !d.this_machine)
                        .map(|d| d.id)
                });
                let freed = other.map(|id| app.deactivate(DEMO_KEY, Some(&id)));
                if !matches!(freed, Some(Ok(Answer::Accepted(())))) {
                    found
                        .failures
                        .push(format!("step {i}: free another: {freed:?}"));
                }
            }
            Step::DevicesRelay(want) => {
                let listed = match &relay {
                    Some(relay) => app.list_devices_via_relay(&relay.url, DEMO_KEY),
                    None => Err(PortalError::NotSignedIn),
                };
                found.compare(i, want.as_ref(), &Verdict::word(listed_cell(listed)));
            }
            // "I lost my key": the customer's keys through the session, the one shown as the
            // row's key activated here by its id.
            Step::Recover(want) => {
                let got = match recovered(&app, session.as_ref()) {
                    Ok(got) => got,
                    Err(e) => e.code().to_string(),
                };
                found.compare(i, want.as_ref(), &Verdict::word(got));
            }
            // Codes asked for until Polar refuses: the refusal typed, with its wait.
            Step::RequestCodes(times, want) => {
                let mut sent = 0;
                let mut refused = None;
                for _ in 0..*times {
                    match app.client().request_sign_in_code(DEVICES_EMAIL) {
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
            // The rotated key followed through the session to its new string.
            Step::FollowRotation(want) => {
                let followed = session
                    .as_ref()
                    .ok_or(PortalError::NotSignedIn)
                    .and_then(|s| app.follow_rotation(s, DEMO_KEY));
                let got = followed_answer_cell(followed, mine.as_deref());
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

/// Key recovery through the row's session: the listed key shown as [`DEMO_KEY`] activated
/// here by its id ([`recovered_cell`]), or `unlisted`.
fn recovered(app: &Licensing, session: Option<&SessionToken>) -> Result<String, PortalError> {
    let session = session.ok_or(PortalError::NotSignedIn)?;
    let keys = app.recoverable_keys(session)?;
    let Some(lost) = keys.iter().find(|k| shows_key(&k.display_key, DEMO_KEY)) else {
        return Ok("unlisted".to_string());
    };
    let activated = app.recover_key(session, &lost.id, "Recovered here")?;
    Ok(recovered_cell(&activated_cell(&activated.online)))
}

/// The key's devices through the row's session (none: not signed in).
fn listed(
    app: &Licensing,
    session: Option<&SessionToken>,
) -> Result<polar_license::portal::KeyDevices, PortalError> {
    app.list_devices(session.ok_or(PortalError::NotSignedIn)?, DEMO_KEY)
}

/// The values rows' face (issue #68): a `Licensing` a relay, signed mode with the relay's
/// key, every check asking it; its `entitlement`, `record_usage` and a denial's `stopped`.
struct RustFace {
    org: String,
    keys: polar_license::lease::RelayKeys,
    dir: ScratchDir,
    apps: Mutex<BTreeMap<String, std::sync::Arc<Licensing>>>,
}

impl RustFace {
    fn new(world: &Hello) -> RustFace {
        RustFace {
            org: world.org.clone(),
            keys: polar_license::lease::RelayKeys::parse(&world.pair).expect("the relay's key"),
            dir: ScratchDir::new(&format!("seller-values-{}", world.host)),
            apps: Mutex::new(BTreeMap::new()),
        }
    }

    fn app(&self, relay: &str) -> std::sync::Arc<Licensing> {
        let mut apps = self.apps.lock().expect("apps");
        let n = apps.len();
        apps.entry(relay.to_string())
            .or_insert_with(|| {
                let app = Licensing::builder(&self.org)
                    .base_url(relay)
                    .cache_dir(self.dir.path().join(format!("app-{n}")))
                    .machine_binding(MachineBinding::Id("machine-A".into()))
                    .relay_keys(self.keys.clone())
                    .policy(polar_license::GracePolicy {
                        revalidate_after: Duration::ZERO,
                        ..polar_license::GracePolicy::default()
                    })
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("licensing builds");
                std::sync::Arc::new(app)
            })
            .clone()
    }
}

impl ValuesFace for RustFace {
    async fn value(&self, relay: &str, key: &str, name: &str) -> String {
        let app = self.app(relay);
        let _ = app.check(key);
        value_cell(app.entitlement(name))
    }

    async fn usage(&self, relay: &str, key: &str, meter: &str, units: f64, id: &str) -> String {
        let app = self.app(relay);
        usage_cell(
            app.record_usage(Some(relay), &key.into(), meter, units, Some(id))
                .1,
        )
    }

    async fn relay_check(&self, relay: &str, key: &str) -> String {
        check_cell(&self.app(relay).check(key))
    }
}

#[test]
fn seller_table() {
    play_with_values("rust", run_row, || play_values(&cli_bin(), RustFace::new));
}
