//! The seller's rows (issue #54, "Done when" 2nd bullet) through the Rust API: perpetual
//! fallback and trials as one table (tests/vectors/seller-rows.json, read by every face), each
//! row against its own emulator, the app's clock and Polar's moved together. The rows are
//! written to target/seller-table/rust.tsv for scripts/seller-table.sh; the test fails when a
//! step of any row answers otherwise than the table says.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::perpetual::ReleaseDate;
use polar_license::trial::TrialDays;
use polar_license::{ActivateRequest, MachineBinding};
use polar_license_emulator::{Fault, DEMO_KEY};
use polar_license_testkit::seller_rows::{
    play, revoke, seconds, Found, Row, Step, Verdict, TRIAL_BENEFIT,
};
use polar_license_testkit::{licensing_builder, unix_now, FakeClock, ScratchDir};
use std::time::Duration;

fn run_row(row: &Row) -> Found {
    let start = unix_now();
    let polar = row.emulator(start);
    let dir = ScratchDir::new(&format!("seller-{}", row.id));
    let clock = FakeClock::new(start);
    let mut builder = licensing_builder(&polar, &dir, MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(10))
        .clock(clock.reader());
    if let Some(at) = row.released(start) {
        builder = builder.released(ReleaseDate::from_unix(at));
    }
    if let Some(days) = row.trial_days {
        builder = builder.trial(TrialDays::new(days).expect("trial days"));
    }
    if row.trial_benefit {
        builder = builder.trial_benefit(TRIAL_BENEFIT);
    }
    let app = builder.build().expect("licensing builds");
    let move_to = |day: f64| {
        polar.set_clock_offset(seconds(day));
        clock.set(start + seconds(day));
    };
    let mut found = Found::new(row);
    for (i, step) in row.steps.iter().enumerate() {
        match step {
            Step::Activate(day) => {
                move_to(*day);
                let v = app.activate(&ActivateRequest::new(DEMO_KEY, "laptop"));
                if !v.as_ref().is_ok_and(|v| v.accepted().is_some()) {
                    found.failures.push(format!("step {i}: activate: {v:?}"));
                }
            }
            Step::Check(day, want) => {
                move_to(*day);
                let got = Verdict::of_report(row, &app.check_report(DEMO_KEY), start);
                found.compare(i, want.as_ref(), &got);
            }
            Step::Trial(day, want) => {
                move_to(*day);
                let got = Verdict::of_report(row, &app.check_trial_report(), start);
                found.compare(i, want.as_ref(), &got);
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
    play("rust", run_row);
}
