//! `Licensing` (the grace-aware native face) end to end: the emulator over loopback, a real
//! file store in a temp dir, and a fake clock the test moves.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::{
    ActivateRequest, CacheState, Error, Licensing, MachineBinding, Reason, ValidateRequest,
};
use polar_license_emulator::{Fault, KeyUpdate, DEMO_KEY};
use polar_license_testkit::{licensing_builder, World};
use std::path::PathBuf;
use std::time::Duration;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// This suite's world: the testkit's, its directory named for the test.
fn world(name: &str) -> World {
    World::new(&format!("licensing-{name}"))
}

/// This suite's helpers on the testkit's world.
trait Here {
    fn licensing(&self, machine: &str) -> Licensing;
    fn cache_file(&self) -> PathBuf;
    fn edit_cache(&self) -> (PathBuf, Vec<u8>);
}

impl Here for World {
    fn licensing(&self, machine: &str) -> Licensing {
        self.builder(&self.dir, machine)
            .build()
            .expect("licensing builds")
    }

    fn cache_file(&self) -> PathBuf {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "cache")
                    && !p.to_string_lossy().ends_with("-seq.cache")
                    && !p.to_string_lossy().ends_with("-clock.cache")
            })
            .expect("a cache file")
    }

    /// Flips a bit of the cache file's middle byte: the file, and its good bytes.
    fn edit_cache(&self) -> (PathBuf, Vec<u8>) {
        let file = self.cache_file();
        let good = std::fs::read(&file).unwrap();
        let mut edited = good.clone();
        let at = edited.len() / 2;
        edited[at] ^= 0x01;
        std::fs::write(&file, &edited).unwrap();
        (file, good)
    }
}

fn activate(l: &Licensing) -> String {
    let v = l
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .expect("activate answers");
    v.accepted().expect("activated").activation.id.clone()
}

/// A world whose `machine-A` has activated the demo key: the activation is a verdict, it starts
/// the grace, so the first check answers from the cache with the whole grace left and needs no
/// request.
#[track_caller]
fn activated(name: &str) -> (World, Licensing) {
    let w = world(name);
    let l = w.licensing("machine-A");
    activate(&l);
    cached(&l.check(DEMO_KEY), 7 * DAY);
    (w, l)
}

/// Licensed from the cache, with `grace_left` seconds of grace left.
#[track_caller]
fn cached(outcome: &CheckOutcome, grace_left: i64) {
    licensed(outcome, Source::Cache, Some(grace_left as u64));
}

#[track_caller]
fn licensed(outcome: &CheckOutcome, source: Source, grace: Option<u64>) {
    match outcome {
        CheckOutcome::Licensed {
            source: s,
            grace_remaining,
            license,
            ..
        } => {
            assert_eq!(*s, source);
            assert_eq!(grace_remaining.map(|d| d.as_secs()), grace);
            assert_eq!(license.license_key.key.expose(), DEMO_KEY);
        }
        other => panic!("expected licensed from {source:?}, got {other:?}"),
    }
}

#[test]
fn the_grace_story() {
    let w = world("story");
    let l = w.licensing("machine-A");
    let id = activate(&l);
    assert_eq!(w.requests(), 1);

    // The activation is a verdict: the first check answers from the cache, with the
    // activation Polar returned, and sends nothing.
    let first = l.check(DEMO_KEY);
    cached(&first, 7 * DAY);
    if let CheckOutcome::Licensed { license, .. } = &first {
        assert_eq!(
            license.activation.as_ref().map(|a| a.id.as_str()),
            Some(id.as_str())
        );
    }
    assert_eq!(w.requests(), 0);

    // Fresh: answered from the cache, nothing sent.
    w.advance(59 * 60);
    cached(&l.check(DEMO_KEY), 7 * DAY - 59 * 60);
    assert_eq!(w.requests(), 0);

    // Stale with the server up: refreshed online.
    w.advance(2 * 60);
    licensed(&l.check(DEMO_KEY), Source::Online, None);
    assert_eq!(w.requests(), 1);

    // Stale and the server unreachable: licensed from the cache with the exact grace left.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(3 * DAY);
    cached(&l.check(DEMO_KEY), 4 * DAY);
    // A 500 is the same.
    w.polar.set_fault(Some(Fault::Status {
        status: 500,
        body: "Internal Server Error".into(),
    }));
    cached(&l.check(DEMO_KEY), 4 * DAY);

    // Past the grace: grace_expired.
    w.advance(4 * DAY + 1);
    let expired = l.check(DEMO_KEY);
    assert_eq!(expired.reason(), Some(Reason::GraceExpired), "{expired:?}");

    // Back online: licensed again.
    w.polar.set_fault(None);
    licensed(&l.check(DEMO_KEY), Source::Online, None);
}

#[test]
fn a_revoked_key_never_rides_the_grace_window() {
    let (w, l) = activated("revoked");

    w.polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        },
    );
    w.advance(2 * HOUR);
    let denied = l.check(DEMO_KEY);
    assert_eq!(denied.reason(), Some(Reason::Inactive), "{denied:?}");

    // Now offline, well within the old grace window: still not licensed.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(HOUR);
    let after = l.check(DEMO_KEY);
    assert!(!after.is_licensed(), "{after:?}");
    assert_eq!(after.reason(), Some(Reason::Offline));
    // status says why.
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => assert_eq!(r.denied.map(|d| d.reason), Some(Reason::Inactive)),
        other => panic!("{other:?}"),
    }
}

/// The status reports a revocation the moment any call has seen it, whichever call it was
/// (docs/interfaces.md §4, "one truth per key"): `standing` is `denied` at once, though the
/// last good verdict is still young and would otherwise answer from the cache for an hour.
#[test]
fn status_reports_a_revocation_the_moment_any_call_saw_it() {
    use polar_license::Standing;
    let revoke = |w: &World, status: &str| {
        w.polar.update_key(
            DEMO_KEY,
            KeyUpdate {
                status: Some(status.into()),
                ..KeyUpdate::default()
            },
        );
    };
    for call in ["validate", "activate", "check"] {
        let w = world(&format!("status-after-{call}"));
        let l = w.licensing("machine-A");
        activate(&l);
        let fresh = l.status(DEMO_KEY).unwrap();
        assert_eq!(fresh.standing, Standing::Licensed, "{call}: {fresh:?}");
        revoke(&w, "revoked");
        // A minute later: the good verdict is fresh, and `check` would not ask Polar yet.
        w.advance(60);
        match call {
            "validate" => {
                let v = l
                    .validate(&ValidateRequest::new(DEMO_KEY))
                    .expect("answers");
                assert_eq!(v.denial().map(|d| d.reason), Some(Reason::Inactive));
            }
            "activate" => {
                let v = l
                    .activate(&ActivateRequest::new(DEMO_KEY, "desktop"))
                    .expect("answers");
                assert_eq!(v.denial().map(|d| d.reason), Some(Reason::Inactive));
            }
            _ => {
                // The fresh cache answers without asking: then an online check sees the denial.
                w.advance(2 * HOUR);
                assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive));
            }
        }
        let status = l.status(DEMO_KEY).unwrap();
        assert_eq!(status.standing, Standing::Denied, "{call}: {status:?}");
        assert_eq!(status.grace_remaining, None, "{call}");
        // A check agrees with the status: it asks Polar (no cached grant) and is denied.
        w.requests();
        assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive), "{call}");
        assert_eq!(w.requests(), 1, "{call}: the check asked Polar");
        // Polar says yes again: the standing follows.
        revoke(&w, "granted");
        assert!(l.check(DEMO_KEY).is_licensed(), "{call}");
        assert_eq!(
            l.status(DEMO_KEY).unwrap().standing,
            Standing::Licensed,
            "{call}"
        );
    }
}

#[test]
fn rate_limit_blocks_requests_until_retry_after() {
    let (w, l) = activated("ratelimit");
    let verified_at = w.clock.now();
    let grace_left = || (7 * DAY - (w.clock.now() - verified_at)) as u64;
    w.requests();

    w.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(60),
    }));
    w.advance(2 * HOUR);
    // Within grace: licensed from the cache, and the block is recorded.
    licensed(&l.check(DEMO_KEY), Source::Cache, Some(grace_left()));
    assert_eq!(w.requests(), 1);
    // The server would answer now, but nothing is sent before the block ends.
    w.polar.set_fault(None);
    for _ in 0..5 {
        w.advance(10);
        licensed(&l.check(DEMO_KEY), Source::Cache, Some(grace_left()));
    }
    assert_eq!(w.requests(), 0, "a request was sent during the 429 block");
    w.advance(11);
    licensed(&l.check(DEMO_KEY), Source::Online, None);
    assert_eq!(w.requests(), 1);
}

#[test]
fn rate_limited_without_a_cache_refuses_without_sending() {
    let w = world("ratelimit-nocache");
    let l = w.licensing("machine-A");
    w.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(30),
    }));
    let first = l.check(DEMO_KEY);
    assert_eq!(
        first,
        CheckOutcome::Unverified(Error::RateLimited {
            retry_after: Some(30)
        })
    );
    w.polar.set_fault(None);
    w.requests();
    w.advance(10);
    assert_eq!(
        l.check(DEMO_KEY),
        CheckOutcome::Unverified(Error::RateLimited {
            retry_after: Some(20)
        })
    );
    assert_eq!(w.requests(), 0);
    w.advance(21);
    licensed(&l.check(DEMO_KEY), Source::Online, None);
}

#[test]
fn clock_rollback_is_caught() {
    let (w, l) = activated("rollback");
    w.advance(2 * HOUR);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    cached(&l.check(DEMO_KEY), 7 * DAY - 2 * HOUR);
    // Within the tolerance (10 min) nothing changes.
    w.advance(-9 * 60);
    assert!(l.check(DEMO_KEY).is_licensed());
    // Further back: clock_rollback, offline or not.
    w.advance(-HOUR);
    let back = l.check(DEMO_KEY);
    assert_eq!(back.reason(), Some(Reason::ClockRollback), "{back:?}");
    assert!(l.status(DEMO_KEY).unwrap().clock_rollback.is_some());
}

/// Two checkers of one key at once (two processes, two tabs): a check reads the clock, then
/// another checker that read it a second later stores its cached answer, then the first check
/// reads the record. The record's latest time is a second ahead of the first check's reading,
/// but no clock moved back: a check reads its time again once the slot's bytes are read. With
/// a zero tolerance this was `clock_rollback` before (the browser tabs test saw it in 1 of 600
/// page-rounds, CI of 2026-11-27).
#[test]
fn a_record_stored_after_the_check_read_its_clock_is_no_rollback() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let w = world("clock-race");
    let policy = GracePolicy {
        clock_tolerance: Duration::ZERO,
        ..GracePolicy::default()
    };
    let other = w
        .builder(&w.dir, "machine-A")
        .policy(policy)
        .build()
        .unwrap();
    activate(&other);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let t0 = w.clock.now();
    let clock = w.clock.reader();
    let calls = Arc::new(AtomicUsize::new(0));
    let raced = Arc::clone(&calls);
    let moved = w.clock.reader();
    let stepper = std::sync::Mutex::new(Some((other, t0)));
    let first = move || {
        if raced.fetch_add(1, Ordering::SeqCst) == 0 {
            // Right after this check's first reading: the other checker, a second later,
            // answers from the cache and stores its answer (latest time t0 + 1).
            if let Some((other, t0)) = stepper.lock().unwrap().take() {
                let later = other.check(DEMO_KEY);
                assert!(later.is_licensed(), "{later:?}");
                return t0;
            }
        }
        moved()
    };
    // The other checker's clock is the world's, moved a second on before it checks.
    w.clock.advance(1);
    let late = w
        .builder(&w.dir, "machine-A")
        .policy(policy)
        .clock(first)
        .build()
        .unwrap();
    // Both clocks read t0 + 1 from here; this check's first reading is t0.
    let checked = late.check(DEMO_KEY);
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the clock was read again"
    );
    licensed(&checked, Source::Cache, Some((7 * 24 * 3600 - 1) as u64));
    assert_eq!(clock(), t0 + 1);
}

/// A warm check reuses the record it decoded last time only for the very same stored bytes:
/// an edit, a removal or another process's newer record is seen on the next check.
#[test]
fn a_warm_check_sees_every_change_to_the_stored_record() {
    let (w, l) = activated("warm");
    w.requests();
    // Two cache answers: the second one can come from what the first decoded.
    w.advance(60);
    cached(&l.check(DEMO_KEY), 7 * DAY - 60);
    cached(&l.check(DEMO_KEY), 7 * DAY - 60);
    assert_eq!(w.requests(), 0);

    // One edited byte: untrusted, so the check asks (and with the server down, no grant).
    let (file, good) = w.edit_cache();
    w.polar.set_fault(Some(Fault::CloseImmediately));
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Offline));
    assert_eq!(w.requests(), 1);

    // The good bytes back: from the cache again. Then removed: asks again.
    std::fs::write(&file, &good).unwrap();
    cached(&l.check(DEMO_KEY), 7 * DAY - 60);
    assert_eq!(w.requests(), 0);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Offline));
    assert_eq!(w.requests(), 1);

    // Another process (another instance on the same directory) refreshes the record once
    // this one's copy is stale: this instance answers from the newer record, asking nothing
    // (a reuse of the old decoded record would be stale and ask).
    w.polar.set_fault(None);
    licensed(&l.check(DEMO_KEY), Source::Online, None);
    cached(&l.check(DEMO_KEY), 7 * DAY);
    w.advance(2 * HOUR);
    let other = w.licensing("machine-A");
    licensed(&other.check(DEMO_KEY), Source::Online, None);
    w.requests();
    cached(&l.check(DEMO_KEY), 7 * DAY);
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_copied_or_edited_cache_is_not_trusted() {
    let (w, l) = activated("tamper");

    // Edit one byte in the middle (e.g. a date): untrusted, and with the server down nothing
    // grants.
    let (file, good) = w.edit_cache();
    assert!(matches!(
        l.status(DEMO_KEY).unwrap().state,
        CacheState::Untrusted(_)
    ));
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(2 * HOUR);
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Offline));

    // The same bytes read on another machine (same directory, other fingerprint): untrusted.
    std::fs::write(&file, &good).unwrap();
    assert!(matches!(
        l.status(DEMO_KEY).unwrap().state,
        CacheState::Present(_)
    ));
    let other = w.licensing("machine-B");
    assert!(matches!(
        other.status(DEMO_KEY).unwrap().state,
        CacheState::Untrusted(_)
    ));
    assert!(!other.check(DEMO_KEY).is_licensed());
}

#[test]
fn machine_binding_and_drift_recovery() {
    let w = world("binding");
    let a = w.licensing("machine-A");
    let id = activate(&a);
    cached(&a.check(DEMO_KEY), 7 * DAY);

    // The activation validated from another machine: conditions_mismatch.
    let b = w.licensing("machine-B");
    let fingerprint_b = b.machine_fingerprint().unwrap().to_string();
    let moved = b.check_request(
        &ValidateRequest::new(DEMO_KEY)
            .activation_id(&id)
            .condition(polar_license::fingerprint::MACHINE_CONDITION, fingerprint_b),
    );
    assert_eq!(
        moved.reason(),
        Some(Reason::ConditionsMismatch),
        "{moved:?}"
    );

    // Drift: B recovers by deactivating the stale activation and activating again.
    let again = b
        .reactivate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .unwrap();
    let new_id = again.accepted().unwrap().activation.id.clone();
    assert_ne!(new_id, id);
    cached(&b.check(DEMO_KEY), 7 * DAY);
    // The stale activation was named by the record B could no longer trust: it was freed,
    // not leaked (an activation id is no secret; it takes a key to free it).
    let live = w.polar.activation_ids(DEMO_KEY);
    assert_eq!(live, vec![new_id], "only B's new activation holds a slot");
}

#[test]
fn deactivate_forgets_the_remembered_activation() {
    let (w, l) = activated("deactivate");
    assert!(l.deactivate(DEMO_KEY, None).unwrap().is_accepted());
    assert!(w.polar.activations(DEMO_KEY).is_empty());
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => {
            assert!(r.activation.is_none());
            assert!(r.good.is_none());
        }
        other => panic!("{other:?}"),
    }
    let err = l.deactivate(DEMO_KEY, None).unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidInput);
}

#[test]
fn a_deactivate_of_an_activation_freed_elsewhere_says_the_activation_is_gone() {
    let w = world("deactivate-gone");
    let l = w.licensing("machine-A");
    let id = activate(&l);
    // Another device (its own cache) frees this device's activation, as the portal would.
    let elsewhere = w.dir.join("other-device");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let other = w.builder(&elsewhere, "machine-B").build().unwrap();
    assert!(other.deactivate(DEMO_KEY, Some(&id)).unwrap().is_accepted());
    // Polar answers the same bare 404 as for an unknown key; this install knows the key is
    // good, so the activation is what is gone.
    let denial = match l.deactivate(DEMO_KEY, None) {
        Ok(polar_license::Verdict::Denied(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(denial.reason, Reason::NotFound);
    assert_eq!(denial.detail, "Not found");
    assert!(
        denial.activation_gone && denial.previously_valid,
        "{denial:?}"
    );
    let m = denial.user_message();
    assert!(
        m.starts_with("This device's activation no longer exists"),
        "{m}"
    );
    assert!(!m.contains("typo"), "{m}");
    // A key this install never saw keeps the typo sentence: nothing says it is good.
    let fresh = w.dir.join("fresh-device");
    std::fs::create_dir_all(&fresh).unwrap();
    let unknown = w.builder(&fresh, "machine-C").build().unwrap();
    let d = match unknown.deactivate(DEMO_KEY, Some(&id)) {
        Ok(polar_license::Verdict::Denied(d)) => d,
        other => panic!("{other:?}"),
    };
    assert!(!d.activation_gone && !d.previously_valid, "{d:?}");
    assert!(d.user_message().contains("typos"), "{}", d.user_message());
}

#[test]
fn background_check_answers_at_once_then_delivers() {
    let (w, l) = activated("background");

    // Fresh: the cache answers, no thread.
    let (now, handle) = l.check_in_background(DEMO_KEY, |_| {});
    cached(&now, 7 * DAY);
    assert!(handle.is_none());

    // Stale: the cache answers now, the fresh verdict comes on the channel.
    w.advance(2 * HOUR);
    let (tx, rx) = std::sync::mpsc::channel();
    let (now, handle) = l.check_in_background(DEMO_KEY, move |fresh| {
        let _ = tx.send(fresh);
    });
    cached(&now, 7 * DAY - 2 * HOUR);
    handle.expect("a background check").join().unwrap();
    licensed(&rx.recv().unwrap(), Source::Online, None);

    // Nothing cached yet for a new install: "not verified yet", then the real answer.
    let fresh_install = world("background-new");
    let l2 = fresh_install.licensing("machine-A");
    let (now, handle) = l2.check_in_background(DEMO_KEY, |_| {});
    // Its own reason (issue #15): nothing failed, Polar is being asked.
    assert_eq!(now.reason(), Some(Reason::NotYetVerified));
    assert_eq!(now.kind(), "unverified");
    handle.unwrap().join().unwrap();
    assert!(l2.status(DEMO_KEY).unwrap().grace_remaining.is_some());
}

#[test]
fn threads_checking_at_once_send_one_request() {
    let (w, l) = activated("threads");
    w.advance(2 * HOUR);
    w.requests();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let l = l.clone();
            std::thread::spawn(move || l.check(DEMO_KEY).is_licensed())
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
    assert_eq!(
        w.requests(),
        1,
        "the lock lets one thread ask and the rest read its answer"
    );
}

#[test]
fn policy_is_checked_when_building() {
    let bad = GracePolicy {
        grace_period: Duration::ZERO,
        ..GracePolicy::default()
    };
    let err = Licensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
        .policy(bad)
        .memory_store()
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidInput);
}

#[test]
fn require_activation_refuses_a_bare_key_check_and_binding_does_not_change_the_seal() {
    let w = world("require");
    let build = |binding: MachineBinding, require: bool| {
        licensing_builder(&w.polar, &w.dir, binding)
            .require_activation(require)
            .clock(w.clock.reader())
            .build()
            .unwrap()
    };
    let strict = build(MachineBinding::Os, true);
    let refused = strict.check(DEMO_KEY);
    assert_eq!(refused.reason(), Some(Reason::InvalidInput), "{refused:?}");
    assert_eq!(w.requests(), 0);

    assert!(strict
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .unwrap()
        .is_accepted());
    cached(&strict.check(DEMO_KEY), 7 * DAY);
    // Binding off on the same machine: the cache is still trusted (same seal).
    let loose = build(MachineBinding::Off, false);
    assert!(matches!(
        loose.status(DEMO_KEY).unwrap().state,
        CacheState::Present(_)
    ));

    // The cache deleted: the strict check refuses rather than validating the bare key.
    std::fs::remove_file(w.cache_file()).unwrap();
    w.requests();
    assert_eq!(strict.check(DEMO_KEY).reason(), Some(Reason::InvalidInput));
    assert_eq!(w.requests(), 0);
}

/// Polar activates but the cache cannot be written (every write lock of the directory is a
/// directory): `activate_report` gives the activation with the cache error apart, and
/// `activate` the `cache_error` naming it; nothing is lost.
#[cfg(unix)]
#[test]
fn an_activation_the_cache_cannot_remember_is_reported_with_its_id() {
    let w = world("unremembered");
    let l = w.licensing("machine-A");
    activate(&l);
    for entry in std::fs::read_dir(&w.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".wlock") {
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
    }
    let (answer, cache_error) = l.activate_report(&ActivateRequest::new(DEMO_KEY, "second"));
    let read = answer
        .expect("activated")
        .accepted()
        .expect("accepted")
        .clone();
    let cache_error = cache_error.expect("the cache error, apart");
    assert_eq!(cache_error.reason(), Reason::CacheError, "{cache_error:?}");
    match l.activate(&ActivateRequest::new(DEMO_KEY, "third")) {
        Err(Error::Cache { detail }) => {
            assert!(detail.starts_with("activated as "), "{detail}");
            assert!(
                !detail.contains(&read.activation.id),
                "a new activation: {detail}"
            );
        }
        other => panic!("expected cache_error, got {other:?}"),
    }
}

/// A check refused as input is the check machine's answer before it wants the key's slot:
/// `invalid_input`, with no cache directory made, no file written and no request sent, for a
/// plain check, an explicit request and the background check (which starts no thread).
#[test]
fn a_check_refused_as_input_touches_no_cache() {
    let w = world("refused-input");
    let dir = w.path("never-made");
    let l = w
        .builder(&dir, "machine-A")
        .build()
        .expect("licensing builds");
    w.requests();
    let field_of = |outcome: &CheckOutcome| match outcome {
        CheckOutcome::Unverified(Error::InvalidInput { field, .. }) => field.clone(),
        other => panic!("expected invalid_input, got {other:?}"),
    };
    let plain = l.check_report("");
    assert_eq!(field_of(&plain.outcome), "key");
    assert_eq!((plain.cache_error, plain.activation_id), (None, None));
    let explicit = ValidateRequest::new(DEMO_KEY).activation_id("not-a-uuid");
    assert_eq!(field_of(&l.check_request(&explicit)), "activation_id");
    let (now, thread) = l.check_report_in_background("", |_| panic!("no fresh answer"));
    assert_eq!(field_of(&now.outcome), "key");
    assert!(thread.is_none());
    assert!(
        !dir.exists(),
        "the cache directory was made for refused input"
    );
    assert_eq!(w.requests(), 0, "a request was sent for refused input");
    // Good input with the same client: the directory is made.
    let checked = l.check(DEMO_KEY);
    assert!(checked.is_licensed(), "{checked:?}");
    assert!(dir.exists());
}

/// With no cache at all (`LicensingBuilder::no_cache`, what the command line's `validate`
/// runs with when it has no cache directory) every call still runs its machine: a validate
/// asks Polar and answers, its `cache_error` the reason there is no cache; an activate takes
/// no slot on Polar (it answers that reason, nothing sent); a deactivate of an explicit id
/// frees it online only; a check asks Polar, its report's `cache_error` the reason; `status`
/// answers the reason.
#[test]
fn with_no_cache_the_machines_answer_what_needs_none_and_take_no_slot() {
    let w = world("no-cache");
    let why = Error::Cache {
        detail: "no local data directory on this platform; set a cache directory".into(),
    };
    let l = w
        .builder(&w.dir, "m1")
        .no_cache(why.clone())
        .build()
        .expect("licensing builds");
    w.requests();
    let validated = l.validate_update(&ValidateRequest::new(DEMO_KEY));
    assert!(
        matches!(validated.online, Ok(polar_license::Verdict::Accepted(_))),
        "{:?}",
        validated.online
    );
    assert_eq!(validated.cache_error.as_ref(), Some(&why));
    assert!(validated.lease.is_none());
    assert_eq!(w.requests(), 1);

    let activated = l.activate_update(&ActivateRequest::new(DEMO_KEY, "laptop"));
    assert_eq!(activated.online.as_ref().err(), Some(&why));
    assert!(activated.replaced_activation_id.is_none());
    assert_eq!(w.requests(), 0, "no slot taken");
    assert!(w.polar.activations(DEMO_KEY).is_empty());

    // An activation made elsewhere, freed from here by its id: online only.
    let id = activate(&w.licensing("m2"));
    w.requests();
    assert!(l.deactivate(DEMO_KEY, Some(id.as_str())).is_ok());
    assert_eq!(w.requests(), 1);
    assert!(w.polar.activations(DEMO_KEY).is_empty());

    assert_eq!(l.status(DEMO_KEY).err(), Some(why.clone()));
    // A check asks Polar (nothing to answer from), and says the cache was not refreshed.
    let checked = l.check_report(DEMO_KEY);
    licensed(&checked.outcome, Source::Online, None);
    assert_eq!(checked.cache_error.as_ref(), Some(&why));
    assert_eq!(w.requests(), 1);
}

/// A blank machine id would be every machine's (the same fingerprint everywhere: a copied cache
/// or activation trusted anywhere): refused when the licensing is built, naming `machine_id`,
/// on every face that passes it through (Python's `machine_binding=""`, C's setter).
#[test]
fn a_blank_machine_id_is_refused_when_built() {
    let dir = polar_license_testkit::ScratchDir::new("blank-machine");
    for blank in ["", "  ", "\t"] {
        let built = polar_license::Licensing::builder(polar_license_emulator::DEMO_ORGANIZATION_ID)
            .cache_dir(&*dir)
            .machine_binding(polar_license::MachineBinding::Id(blank.to_string()))
            .build();
        match built {
            Err(e) => assert_eq!(e.field(), Some("machine_id"), "{blank:?}: {e:?}"),
            Ok(_) => panic!("{blank:?} was taken"),
        }
    }
    let named = polar_license::Licensing::builder(polar_license_emulator::DEMO_ORGANIZATION_ID)
        .cache_dir(&*dir)
        .machine_binding(polar_license::MachineBinding::Id("m-1".into()))
        .build();
    assert!(named.is_ok());
}
