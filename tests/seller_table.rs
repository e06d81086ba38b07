//! The seller's rows (issue #54, "Done when" 2nd bullet) through the Rust API: perpetual
//! fallback and trials as one table (tests/vectors/seller-rows.json, read by every face), each
//! row against its own emulator, the app's clock and Polar's moved together. The rows are
//! written to target/seller-table/rust.tsv for scripts/seller-table.sh; the test fails when a
//! step of any row answers otherwise than the table says.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{ActivateRequest, MachineBinding};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::seller_rows::{play, Found, Row, RowPolar, Step, Verdict};
use polar_license_testkit::{licensing_builder, ScratchDir};
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
    let mut found = Found::new(row);
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
            Step::Revoke(_) | Step::Offline => {}
        }
    }
    found
}

#[test]
fn seller_table() {
    play("rust", run_row);
}
