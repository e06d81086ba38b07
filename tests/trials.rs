//! Trials (issue #54 item 4) on the native face (`Licensing`, which the C ABI and the command
//! line share), against the emulator over loopback: a local trial of N days starts at the
//! first check with no key, counts down, ends; a clock set back during it is
//! `clock_rollback`; an edited or copied trial record is refused (never restarted); a key
//! from a trial product (a named benefit, a 2027-01 `trialing` subscription) is reported as a
//! trial with its end; a revoked key is not one; with no trial stated, nothing changes.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::trial::{TrialDays, TrialSeal, TrialState};
use polar_license::{ActivateRequest, Licensing, MachineBinding, Reason};
use polar_license_emulator::{Emulator, Seed, DEMO_KEY};
use polar_license_testkit::seller_rows::{expire_at, revoke, DAY, PAID_BENEFIT, TRIAL_BENEFIT};
use polar_license_testkit::trials::{
    key_trial, local, no_trial, refused, revoked, rolled_back, trialing,
};
use polar_license_testkit::{
    emulator_answering, licensing_builder, subscription, unix_now, FakeClock, ScratchDir,
};
use std::path::PathBuf;
use std::time::Duration;

/// A client of `polar` keeping its records in `dir` on `machine`, on `clock`, with a local
/// trial of `days` (none: no trial stated) and the trial benefits `benefits`.
fn app_on(
    polar: &Emulator,
    dir: &ScratchDir,
    machine: &str,
    clock: &FakeClock,
    days: Option<u32>,
    benefits: &[&str],
) -> Licensing {
    let mut builder = licensing_builder(polar, dir.path(), MachineBinding::Id(machine.into()))
        .timeout(Duration::from_secs(5))
        .clock(clock.reader());
    if let Some(days) = days {
        builder = builder.trial(TrialDays::new(days).expect("days"));
    }
    for b in benefits {
        builder = builder.trial_benefit(*b);
    }
    builder.build().expect("licensing builds")
}

fn app(polar: &Emulator, dir: &ScratchDir, clock: &FakeClock, days: Option<u32>) -> Licensing {
    app_on(polar, dir, "machine-A", clock, days, &[])
}

/// A local trial's set-up: the start (now), Polar (2026-10, the demo key), the records'
/// directory `name`, the clock at the start, and the app with a trial of `days`.
fn local_trial(name: &str, days: Option<u32>) -> (i64, Emulator, ScratchDir, FakeClock, Licensing) {
    let start = unix_now();
    let polar = emulator_answering(Seed::demo(), "2026-10");
    let dir = ScratchDir::new(name);
    let clock = FakeClock::new(start);
    let l = app(&polar, &dir, &clock, days);
    (start, polar, dir, clock, l)
}

/// [`local_trial`] started: its first check, with no key, starts the trial of `days`.
fn started_trial(name: &str, days: u32) -> (i64, Emulator, ScratchDir, FakeClock, Licensing) {
    let set_up = local_trial(name, Some(days));
    local(&set_up.4.check_trial_report(), TrialState::Active, days);
    set_up
}

/// An app with no local trial that names [`TRIAL_BENEFIT`] as a trial benefit, its records in
/// the directory `name`, the demo key activated.
fn trial_benefit_app(polar: &Emulator, name: &str, clock: &FakeClock) -> (ScratchDir, Licensing) {
    let dir = ScratchDir::new(name);
    let l = app_on(polar, &dir, "machine-A", clock, None, &[TRIAL_BENEFIT]);
    activate(&l);
    (dir, l)
}

/// The trial file in `dir` (the store's `trial-…` slot).
fn trial_file(dir: &ScratchDir) -> PathBuf {
    let entries = std::fs::read_dir(dir.path()).expect("read dir");
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trial-") && n.ends_with(".cache"))
        })
        .expect("a trial record")
}

#[track_caller]
fn activate(l: &Licensing) {
    let v = l
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .expect("activate answers");
    assert!(v.accepted().is_some(), "{v:?}");
}

#[test]
fn a_local_trial_starts_at_the_first_check_counts_down_and_ends() {
    let (start, polar, dir, clock, l) = local_trial("trial-local", Some(14));

    // No key: the first check starts the trial; the outcome still asks for a key.
    let first = l.check_remembered_report();
    let t = local(&first, TrialState::Active, 14);
    assert_eq!(t.started_at, Some(start));
    assert_eq!(t.ends_at, Some(start + 14 * DAY));
    assert_eq!(first.outcome.reason(), Some(Reason::InvalidInput));
    assert!(first.outcome.needs_key());

    // It counts down from the sealed start, not from each launch.
    clock.set(start + 3 * DAY + 60);
    let later = l.check_trial_report();
    let t = local(&later, TrialState::Active, 11);
    assert_eq!(t.started_at, Some(start));
    // Another client of the same cache (the app launched again) sees the same trial.
    let again = app(&polar, &dir, &clock, Some(14)).check_trial_report();
    assert_eq!(again.trial, later.trial);

    // On its last day, one day left; at its end: ended, a distinct answer.
    clock.set(start + 14 * DAY - 60);
    local(&l.check_trial_report(), TrialState::Active, 1);
    clock.set(start + 14 * DAY);
    let ended = l.check_remembered_report();
    let t = local(&ended, TrialState::Ended, 0);
    assert_eq!(t.ends_at, Some(start + 14 * DAY));
    clock.set(start + 40 * DAY);
    local(&l.check_trial_report(), TrialState::Ended, 0);

    // A remembered key is checked as always, not the trial.
    activate(&l);
    l.remember_key(DEMO_KEY).expect("remembered");
    let licensed = l.check_remembered_report();
    assert!(licensed.outcome.is_licensed(), "{licensed:?}");
    assert_eq!(licensed.trial, None);

    // Wiping the app's data restarts the trial (the docs say so).
    l.forget_key().expect("forgotten");
    std::fs::remove_file(trial_file(&dir)).expect("wiped");
    local(&l.check_trial_report(), TrialState::Active, 14);
}

#[test]
fn no_trial_stated_changes_nothing() {
    let (_, _polar, dir, _, l) = local_trial("trial-none", None);
    let plain = l.check_remembered_report();
    assert_eq!(plain.trial, None);
    assert_eq!(plain.outcome.reason(), Some(Reason::InvalidInput));
    let asked = l.check_trial_report();
    assert_eq!(asked.outcome.field(), Some("trial"), "{asked:?}");
    assert!(std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with("trial-")));
    assert!(TrialDays::new(0).is_err());
    assert!(TrialDays::new(3651).is_err());
}

#[test]
fn a_clock_set_back_during_a_trial_is_clock_rollback() {
    let (start, _polar, _dir, clock, l) = started_trial("trial-rollback", 7);
    clock.set(start + 6 * DAY);
    local(&l.check_trial_report(), TrialState::Active, 1);

    // Set back five days to stretch the trial: refused, clock_rollback.
    clock.set(start + DAY);
    rolled_back(&l.check_trial_report());
    // Within the tolerance (10 minutes): no rollback, and no day regained.
    clock.set(start + 6 * DAY - 300);
    local(&l.check_trial_report(), TrialState::Active, 1);
    // Forward again past the end: ended.
    clock.set(start + 7 * DAY + 1);
    local(&l.check_trial_report(), TrialState::Ended, 0);
}

#[test]
fn an_edited_or_copied_trial_record_is_refused_not_restarted() {
    let (start, polar, dir, clock, l) = started_trial("trial-edited", 14);
    clock.set(start + 20 * DAY);
    local(&l.check_trial_report(), TrialState::Ended, 0);

    // Move the start forward by 19 days in the file: the seal no longer matches.
    let path = trial_file(&dir);
    let text = std::fs::read_to_string(&path).expect("trial record");
    let edited = text.replacen(&start.to_string(), &(start + 19 * DAY).to_string(), 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).expect("edited");
    refused(&l.check_trial_report());
    // Refused, and left as it is: the next check refuses too (no fresh trial written).
    assert_eq!(
        l.check_trial_report().trial.map(|t| t.state),
        Some(TrialState::Refused)
    );

    // The record copied to another machine (same directory, another machine id): refused.
    let dir_b = ScratchDir::new("trial-copied");
    let a = app(&polar, &dir_b, &clock, Some(14));
    local(&a.check_trial_report(), TrialState::Active, 14);
    let other = app_on(&polar, &dir_b, "machine-B", &clock, Some(14), &[]);
    assert_eq!(
        other.check_trial_report().trial.map(|t| t.state),
        Some(TrialState::Refused)
    );
}

/// The demo key granted through a subscription with `status`, its period ending at `end`,
/// and the benefit `benefit`.
fn subscribed(status: &str, end: i64, benefit: &str) -> Seed {
    let mut seed = Seed::demo();
    seed.license_keys[0].benefit_id = Some(benefit.into());
    seed.license_keys[0].subscription = Some(subscription(status, end));
    seed
}

#[test]
fn a_trialing_subscription_is_a_trial_with_its_end_and_a_revoked_key_is_not() {
    let start = unix_now();
    let end = start + 5 * DAY + 3600;
    let polar = emulator_answering(subscribed("trialing", end, PAID_BENEFIT), "2027-01");
    let dir = ScratchDir::new("trial-trialing");
    let clock = FakeClock::new(start);
    let l = app(&polar, &dir, &clock, Some(14));
    let unstated = app(&polar, &dir, &clock, None);
    activate(&l);
    let r = l.check_report(DEMO_KEY);
    assert!(r.outcome.is_licensed(), "{r:?}");
    assert_eq!(r.trial.as_deref(), Some(&trialing(end, 6)));
    // No trial stated: the same answer, no trial field.
    no_trial(&unstated.check_report(DEMO_KEY));

    // Revoked (a refund): denied, and no trial.
    revoke(&polar);
    clock.advance(2 * 3600); // past the fresh window: the check asks Polar
    revoked(&l.check_report(DEMO_KEY));
}

#[test]
fn a_key_of_a_named_trial_benefit_is_a_trial_and_a_paid_one_is_not() {
    let start = unix_now();
    let expires = start + 10 * DAY;
    let polar_trial = emulator_answering(
        subscribed("active", start + 30 * DAY, TRIAL_BENEFIT),
        "2027-01",
    );
    expire_at(&polar_trial, expires);
    let clock = FakeClock::new(start);
    let (_dir, l) = trial_benefit_app(&polar_trial, "trial-benefit", &clock);
    // The earlier of the key's expiry and the period's end.
    key_trial(&l.check_report(DEMO_KEY), expires, 10);

    // A key of another (paid) benefit, same client: licensed, no trial.
    let polar_paid = emulator_answering(
        subscribed("active", start + 30 * DAY, PAID_BENEFIT),
        "2027-01",
    );
    let (_dir, l) = trial_benefit_app(&polar_paid, "trial-paid", &clock);
    no_trial(&l.check_report(DEMO_KEY));
}

/// A client of `polar` on `machine-A` with a trial of 14 days and the app secret `secret`.
fn app_with_secret(
    polar: &Emulator,
    dir: &ScratchDir,
    clock: &FakeClock,
    secret: &str,
) -> Licensing {
    licensing_builder(polar, dir.path(), MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(5))
        .clock(clock.reader())
        .trial(TrialDays::new(14).expect("days"))
        .app_secret(secret.as_bytes().to_vec())
        .build()
        .expect("licensing builds")
}

/// The file of the store slot `slot` in `dir`.
fn slot_file(dir: &ScratchDir, slot: &str) -> PathBuf {
    dir.path().join(format!("{slot}.cache"))
}

/// The slots of the app with `secret` (its own, the one every app of the organization shares)
/// on `polar`: their names depend on the server's origin, the organization and the app's
/// secret only.
fn slots_of(polar: &Emulator, secret: &str) -> (String, String) {
    let seal = TrialSeal::new(
        &polar.url(),
        &polar.organization_id(),
        b"",
        None,
        Some(secret.as_bytes()),
    );
    (seal.app_slot(Some(secret.as_bytes())), seal.slot)
}

/// Now, the demo organization's emulator, a scratch cache directory named `name` and a clock
/// set to now: what the apps of one organization share.
fn apps_world(name: &str) -> (i64, Emulator, ScratchDir, FakeClock) {
    let start = unix_now();
    let polar = emulator_answering(Seed::demo(), "2026-10");
    (start, polar, ScratchDir::new(name), FakeClock::new(start))
}

#[test]
fn two_apps_of_one_organization_on_one_cache_directory_each_have_their_own_trial() {
    let (start, polar, dir, clock) = apps_world("trial-two-apps");
    let editor = app_with_secret(&polar, &dir, &clock, "editor-secret");
    let viewer = app_with_secret(&polar, &dir, &clock, "viewer-secret");

    // The editor starts its trial; three days later the viewer starts its own (before issue
    // #62 it found the editor's record in the one shared slot and refused it).
    let t = local(&editor.check_trial_report(), TrialState::Active, 14);
    assert_eq!(t.started_at, Some(start));
    clock.set(start + 3 * DAY);
    let t = local(&viewer.check_trial_report(), TrialState::Active, 14);
    assert_eq!(t.started_at, Some(start + 3 * DAY));
    // Neither clobbers the other: each counts down from its own start.
    clock.set(start + 5 * DAY);
    let t = local(&editor.check_trial_report(), TrialState::Active, 9);
    assert_eq!(t.started_at, Some(start));
    let t = local(&viewer.check_trial_report(), TrialState::Active, 12);
    assert_eq!(t.started_at, Some(start + 3 * DAY));
    // Two records, in two slots, none in the shared one.
    let (editor_slot, shared) = slots_of(&polar, "editor-secret");
    let (viewer_slot, viewer_shared) = slots_of(&polar, "viewer-secret");
    assert_ne!(editor_slot, viewer_slot);
    assert_eq!(shared, viewer_shared);
    assert!(slot_file(&dir, &editor_slot).exists());
    assert!(slot_file(&dir, &viewer_slot).exists());
    assert!(!slot_file(&dir, &shared).exists());
}

#[test]
fn an_old_shared_trial_slot_is_adopted_by_its_app_and_left_alone_by_another() {
    let (start, polar, dir, clock) = apps_world("trial-adopted");
    let editor = app_with_secret(&polar, &dir, &clock, "editor-secret");
    let (editor_slot, shared) = slots_of(&polar, "editor-secret");
    // The editor's trial as a release before issue #62 kept it: the same sealed bytes, in
    // the slot every app of the organization shared.
    local(&editor.check_trial_report(), TrialState::Active, 14);
    std::fs::rename(slot_file(&dir, &editor_slot), slot_file(&dir, &shared)).expect("moved");
    let old = std::fs::read(slot_file(&dir, &shared)).expect("the old record");

    // Another app of the organization: the old record does not open under its seal, so it is
    // not its trial (its own starts, not refused) and it is left where it is.
    clock.set(start + 2 * DAY);
    let viewer = app_with_secret(&polar, &dir, &clock, "viewer-secret");
    let t = local(&viewer.check_trial_report(), TrialState::Active, 14);
    assert_eq!(t.started_at, Some(start + 2 * DAY));
    assert_eq!(
        std::fs::read(slot_file(&dir, &shared)).ok().as_ref(),
        Some(&old)
    );

    // Its own app adopts it: the trial goes on from its start (not a new one), copied to the
    // app's slot (the shared one left as it was, where the npm add-on reads it).
    clock.set(start + 4 * DAY);
    let t = local(&editor.check_trial_report(), TrialState::Active, 10);
    assert_eq!(t.started_at, Some(start));
    assert!(slot_file(&dir, &editor_slot).exists());
    assert_eq!(std::fs::read(slot_file(&dir, &shared)).ok(), Some(old));
    // Read once: from now on the app's slot answers (a shared record edited now changes
    // nothing; the viewer's trial untouched).
    std::fs::write(slot_file(&dir, &shared), b"not a record").expect("edited");
    clock.set(start + 6 * DAY);
    let t = local(&editor.check_trial_report(), TrialState::Active, 8);
    assert_eq!(t.started_at, Some(start));
    let t = local(&viewer.check_trial_report(), TrialState::Active, 10);
    assert_eq!(t.started_at, Some(start + 2 * DAY));
}
