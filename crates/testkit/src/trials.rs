//! What the trial suites assert on both clients (issue #54 item 4): tests/trials.rs holds the
//! native face, tests/wasm_trials.rs the Rust-on-wasm one; the calls differ (blocking, async),
//! the answers they must give are these. Builds for wasm32 too.

use polar_license::trial::{Trial, TrialState};
use polar_license::{CheckReport, Reason};

/// The local trial a report shows, which must be `state` with `days_left` days left, the
/// outcome not licensed (a trial is no license).
#[track_caller]
pub fn local(report: &CheckReport, state: TrialState, days_left: u32) -> Trial {
    let t = *report.trial.clone().expect("a trial answer");
    assert!(t.local, "{t:?}");
    assert_eq!(t.state, state, "{report:?}");
    assert_eq!(t.days_left, days_left, "{report:?}");
    assert!(!report.outcome.is_licensed(), "{report:?}");
    t
}

/// The report's outcome must be not licensed for `reason`.
#[track_caller]
fn denied(report: &CheckReport, reason: Reason) {
    assert_eq!(report.outcome.reason(), Some(reason), "{report:?}");
}

/// A clock set back during a local trial: `clock_rollback`, the trial refused.
#[track_caller]
pub fn rolled_back(report: &CheckReport) {
    denied(report, Reason::ClockRollback);
    let t = *report.trial.clone().expect("a trial answer");
    assert_eq!(t.state, TrialState::Refused);
    assert!(!t.is_active());
}

/// An edited trial record: refused with no day left, the outcome still asking for a key.
#[track_caller]
pub fn refused(report: &CheckReport) {
    let t = *report.trial.clone().expect("a trial answer");
    assert_eq!(t.state, TrialState::Refused, "{report:?}");
    assert_eq!(t.days_left, 0);
    assert_eq!(report.outcome.reason(), Some(Reason::InvalidInput));
}

/// A key of a trial product (a named benefit): licensed, and a trial that is not local,
/// active, ending at `ends_at` with `days_left` days left.
#[track_caller]
pub fn key_trial(report: &CheckReport, ends_at: i64, days_left: u32) -> Trial {
    assert!(report.outcome.is_licensed(), "{report:?}");
    let t = *report.trial.clone().expect("a trial");
    assert!(!t.local);
    assert_eq!(t.state, TrialState::Active);
    assert_eq!(t.ends_at, Some(ends_at));
    assert_eq!(t.days_left, days_left);
    t
}

/// A key revoked (a refund): denied as inactive, and no trial.
#[track_caller]
pub fn revoked(report: &CheckReport) {
    denied(report, Reason::Inactive);
    assert_eq!(report.trial, None);
}

/// A licensed answer with no trial (a paid key, or no trial stated).
#[track_caller]
pub fn no_trial(report: &CheckReport) {
    assert!(report.outcome.is_licensed(), "{report:?}");
    assert_eq!(report.trial, None);
}

/// The trial of a 2027-01 `trialing` subscription whose period ends at `ends_at`: not local,
/// active, no start of its own.
pub fn trialing(ends_at: i64, days_left: u32) -> Trial {
    Trial {
        local: false,
        state: TrialState::Active,
        started_at: None,
        ends_at: Some(ends_at),
        days_left,
    }
}
