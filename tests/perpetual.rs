//! Perpetual fallback (issue #54 item 3) on the native face (`Licensing`, which the C ABI and
//! the command line share), against the emulator over loopback: a key whose paid time ran out
//! keeps licensing the builds released on or before the date it was paid through, and only
//! those; a revoked key never; with no release date stated, every answer is as before.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, Source};
use polar_license::perpetual::{Perpetual, ReleaseDate};
use polar_license::{ActivateRequest, CheckReport, Licensing, MachineBinding, Reason};
use polar_license_emulator::{Emulator, Fault, Seed, SeedSubscription, DEMO_KEY};
use polar_license_testkit::seller_rows::{expire_at, revoke, DAY};
use polar_license_testkit::{
    emulator_answering, licensing_builder, rfc3339, subscription, unix_now, FakeClock, ScratchDir,
    World, APP_SECRET, MACHINE,
};
use std::time::Duration;

/// A client of `polar` keeping its records in `dir`, on `clock`, for a build released on
/// `released` (none: no release date stated).
fn app(polar: &Emulator, dir: &ScratchDir, clock: &FakeClock, released: Option<i64>) -> Licensing {
    let builder = licensing_builder(polar, dir, MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(5))
        .clock(clock.reader());
    let builder = match released {
        Some(at) => builder.released(ReleaseDate::from_unix(at)),
        None => builder,
    };
    builder.build().expect("licensing builds")
}

fn activate(l: &Licensing) {
    let v = l
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .expect("activate answers");
    assert!(v.accepted().is_some(), "{v:?}");
}

/// Moves both clocks (the client's and Polar's) `days` past `start`.
fn at_day(polar: &Emulator, clock: &FakeClock, start: i64, days: i64) {
    polar.set_clock_offset(days * DAY);
    clock.set(start + days * DAY);
}

/// A revoked key: denied as inactive, never a fallback.
#[track_caller]
fn never_falls_back(report: &CheckReport) {
    assert_eq!(
        report.outcome.reason(),
        Some(Reason::Inactive),
        "{report:?}"
    );
    assert_eq!(report.perpetual.map(|p| p.fallback), Some(false));
}

#[track_caller]
fn fallback(report: &CheckReport, source: Source, paid_through: i64) {
    match &report.outcome {
        CheckOutcome::Licensed {
            source: s, license, ..
        } => {
            assert_eq!(*s, source, "{report:?}");
            assert_eq!(license.license_key.key.expose(), DEMO_KEY);
        }
        other => panic!("expected a licensed fallback, got {other:?}"),
    }
    let p = report.perpetual.expect("a perpetual answer");
    assert!(p.fallback, "{p:?}");
    assert_eq!(p.paid_through, Some(paid_through));
    assert_eq!(report.paid_through(), Some(paid_through));
}

#[test]
fn an_expired_key_keeps_licensing_older_builds_online_and_says_so() {
    let start = unix_now();
    let expires = start + 30 * DAY;
    let polar = emulator_answering(Seed::demo(), "2026-10");
    expire_at(&polar, expires);
    let dir = ScratchDir::new("perpetual-online");
    let clock = FakeClock::new(start);
    let old_build = app(&polar, &dir, &clock, Some(start - 10 * DAY));
    let new_build = app(&polar, &dir, &clock, Some(expires + DAY));
    let unstated = app(&polar, &dir, &clock, None);
    activate(&old_build);

    // Before the expiry: licensed as always, with the date the key is paid through, which
    // answers an update's question for a candidate release.
    let before = old_build.check_report(DEMO_KEY);
    assert!(before.outcome.is_licensed(), "{before:?}");
    assert_eq!(
        before.perpetual,
        Some(Perpetual {
            released: ReleaseDate::from_unix(start - 10 * DAY),
            paid_through: Some(expires),
            fallback: false,
            refused: None,
        })
    );
    assert!(before.covers(ReleaseDate::from_unix(expires)));
    assert!(!before.covers(ReleaseDate::from_unix(expires + DAY)));
    assert_eq!(unstated.check_report(DEMO_KEY).perpetual, None);

    // Past it, Polar says "License key has expired.": the older build stays licensed, marked
    // as a fallback with the paid-through date from the key's last good answer here.
    at_day(&polar, &clock, start, 31);
    let old = old_build.check_report(DEMO_KEY);
    fallback(&old, Source::Online, expires);
    assert!(old.covers(ReleaseDate::from_unix(expires - 3 * DAY)));
    assert!(!old.covers(ReleaseDate::from_unix(expires + DAY)));

    // A build released after the expiry: expired, as today, with the date it missed.
    let new = new_build.check_report(DEMO_KEY);
    assert_eq!(new.outcome.reason(), Some(Reason::Expired), "{new:?}");
    assert_eq!(new.perpetual.map(|p| p.fallback), Some(false));
    assert_eq!(new.paid_through(), Some(expires));
    assert!(new.covers(ReleaseDate::from_unix(start)));

    // No release date stated: exactly as before.
    let plain = unstated.check_report(DEMO_KEY);
    assert_eq!(plain.outcome.reason(), Some(Reason::Expired), "{plain:?}");
    assert_eq!(plain.perpetual, None);

    // Polar unreachable after it confirmed the expiry: the older build stays licensed from the
    // cache, counted from that answer within the grace period; past it, not.
    polar.set_fault(Some(Fault::CloseImmediately));
    clock.set(start + 33 * DAY);
    let offline = old_build.check_report(DEMO_KEY);
    fallback(&offline, Source::Cache, expires);
    assert_eq!(
        offline.outcome.grace_remaining(),
        Some(Duration::from_secs((5 * DAY) as u64))
    );
    assert_eq!(offline.fallback.map(|e| e.reason()), Some(Reason::Offline));
    clock.set(start + 39 * DAY);
    let late = old_build.check_report(DEMO_KEY);
    assert!(!late.outcome.is_licensed(), "{late:?}");
    polar.set_fault(None);

    // A refund after the expiry: revoked never falls back, online or from the cache.
    at_day(&polar, &clock, start, 40);
    revoke(&polar);
    never_falls_back(&old_build.check_report(DEMO_KEY));
    polar.set_fault(Some(Fault::CloseImmediately));
    clock.set(start + 41 * DAY);
    let revoked_offline = old_build.check_report(DEMO_KEY);
    assert!(
        !revoked_offline.outcome.is_licensed(),
        "{revoked_offline:?}"
    );
}

#[test]
fn a_cached_expiry_passed_offline_falls_back_within_the_grace_rules() {
    let start = unix_now();
    let expires = start + DAY;
    let polar = emulator_answering(Seed::demo(), "2026-10");
    expire_at(&polar, expires);
    let dir = ScratchDir::new("perpetual-cache");
    let clock = FakeClock::new(start);
    let old_build = app(&polar, &dir, &clock, Some(start));
    let new_build = app(&polar, &dir, &clock, Some(expires + DAY));
    let unstated = app(&polar, &dir, &clock, None);
    activate(&old_build);
    assert!(old_build.check(DEMO_KEY).is_licensed());

    // Offline two days later: the cached expires_at has passed. Today's answer is offline;
    // the older build is licensed from the cache, the grace counted from the last good answer.
    polar.set_fault(Some(Fault::CloseImmediately));
    clock.set(start + 2 * DAY);
    let plain = unstated.check_report(DEMO_KEY);
    assert_eq!(plain.outcome.reason(), Some(Reason::Offline), "{plain:?}");
    assert_eq!(plain.perpetual, None);
    let old = old_build.check_report(DEMO_KEY);
    fallback(&old, Source::Cache, expires);
    assert_eq!(
        old.outcome.grace_remaining(),
        Some(Duration::from_secs((5 * DAY) as u64))
    );
    let new = new_build.check_report(DEMO_KEY);
    assert_eq!(new.outcome.reason(), Some(Reason::Offline), "{new:?}");
    assert_eq!(new.perpetual.map(|p| p.fallback), Some(false));

    // The clock set back past the tolerance: no fallback from the cache.
    clock.set(start + DAY);
    let back = old_build.check_report(DEMO_KEY);
    assert!(!back.outcome.is_licensed(), "{back:?}");

    // Past the grace period: no fallback either.
    clock.set(start + 8 * DAY);
    let late = old_build.check_report(DEMO_KEY);
    assert!(!late.outcome.is_licensed(), "{late:?}");
}

/// The demo key granted through a subscription the customer cancelled, ending at `end`.
fn cancelled(end: i64) -> Seed {
    let mut seed = Seed::demo();
    seed.license_keys[0].subscription = Some(SeedSubscription {
        cancel_at_period_end: true,
        ends_at: Some(rfc3339(end)),
        ..subscription("active", end)
    });
    seed
}

#[test]
fn a_cancelled_subscription_that_ran_out_falls_back_and_a_refund_does_not() {
    // 2027-01: the subscription's end is the paid-through date; Polar revokes the key at that
    // end, so "no longer active" at or after it is the paid time running out.
    let start = unix_now();
    let end = start + 10 * DAY;
    let polar_ended = emulator_answering(cancelled(end), "2027-01");
    let dir = ScratchDir::new("perpetual-subscription");
    let clock = FakeClock::new(start);
    let old_build = app(&polar_ended, &dir, &clock, Some(start));
    let unstated = app(&polar_ended, &dir, &clock, None);
    activate(&old_build);
    let before = old_build.check_report(DEMO_KEY);
    assert!(before.outcome.is_licensed(), "{before:?}");
    assert_eq!(before.paid_through(), Some(end));
    at_day(&polar_ended, &clock, start, 11);
    revoke(&polar_ended);
    fallback(&old_build.check_report(DEMO_KEY), Source::Online, end);
    let plain = unstated.check_report(DEMO_KEY);
    assert_eq!(plain.outcome.reason(), Some(Reason::Inactive), "{plain:?}");

    // A refund (or chargeback) revokes before the period's end: never a fallback.
    let polar_refunded = emulator_answering(cancelled(end), "2027-01");
    let dir = ScratchDir::new("perpetual-refund");
    let clock = FakeClock::new(start);
    let old_build = app(&polar_refunded, &dir, &clock, Some(start));
    activate(&old_build);
    assert!(old_build.check(DEMO_KEY).is_licensed());
    at_day(&polar_refunded, &clock, start, 2);
    revoke(&polar_refunded);
    never_falls_back(&old_build.check_report(DEMO_KEY));
    // Still not past the end either: the denial was before it.
    at_day(&polar_refunded, &clock, start, 12);
    polar_refunded.set_fault(Some(Fault::CloseImmediately));
    assert!(!old_build.check(DEMO_KEY).is_licensed());
}

#[test]
fn release_dates_read_and_compare_by_day() {
    let d = ReleaseDate::parse("2026-10-01").expect("a date");
    assert_eq!(d.to_string(), "2026-10-01");
    assert_eq!(d, ReleaseDate::from_ymd(2026, 10, 1).expect("a date"));
    assert_eq!(
        ReleaseDate::parse("2026-10-01T23:59:59Z").expect("a time"),
        d
    );
    // On the paid-through day itself, the build is covered; the next day, not.
    let paid = d.unix() + 13 * 3600;
    assert!(d.within(paid));
    assert!(!ReleaseDate::parse("2026-10-02")
        .expect("a date")
        .within(paid));
    for bad in ["2026-13-01", "2026-02-30", "2026-1-01", "yesterday", ""] {
        let e = ReleaseDate::parse(bad).expect_err(bad);
        assert_eq!(e.reason(), Reason::InvalidInput, "{bad}");
        assert_eq!(e.field(), Some("released"), "{bad}");
    }
}

/// Signed mode: the demo key activated through the relay rig (3-day leases), for a build
/// released on `released`.
fn signed_app(w: &World, released: i64) -> Licensing {
    licensing_builder(&w.polar, &w.dir, MachineBinding::Id(MACHINE.into()))
        .timeout(Duration::from_secs(5))
        .clock(w.clock.reader())
        .app_secret(APP_SECRET.to_vec())
        .relay_keys(w.relay_keys())
        .released(ReleaseDate::from_unix(released))
        .build_with_transport(w.relay_transport())
        .expect("the signed app builds")
}

#[test]
fn signed_mode_falls_back_only_on_a_lease_that_verifies() {
    let w = World::new("perpetual-signed").signed();
    let start = unix_now();
    w.set_clock(start);
    let expires = start + 2 * DAY;
    expire_at(&w.polar, expires);
    let app = signed_app(&w, start);
    w.activate(&app);
    let move_to = |at: i64| {
        if let Some(polar) = w.polar.running() {
            polar.set_clock_offset(at - start);
        }
        w.set_clock(at);
    };

    // Within the record's lease: Polar says expired, the older build falls back.
    move_to(start + 2 * DAY + 12 * 3600);
    fallback(&app.check_report(DEMO_KEY), Source::Online, expires);

    // The relay signs leases no further than the license's expiry: the paid-through date is
    // believed that far (here the expiry itself).
    // A record whose lease is gone (re-sealed by someone holding the install secret) is not
    // believed at all: no fallback.
    w.forge(|r| {
        if let Some(good) = r.good.as_mut() {
            good.lease = None;
        }
    });
    move_to(start + 2 * DAY + 13 * 3600);
    let forged = app.check_report(DEMO_KEY);
    assert_eq!(forged.outcome.reason(), Some(Reason::Expired), "{forged:?}");
    assert_eq!(forged.perpetual.map(|p| p.fallback), Some(false));
}
