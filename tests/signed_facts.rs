//! Issue #62 item 2 on the native face (`Licensing`; the CLI, the C ABI and Tauri share it):
//! signed mode trusts only signed facts.
//!
//! The app states its build's release date (perpetual fallback). Between it and the relay rig
//! (the testkit's stand-in relay in front of the emulator, which signs leases, and signs
//! denials for their request, as the relay does) sits the attacker's proxy ([`Forger`]): a fake
//! relay that answers every validate with an unsigned `404 "License key has expired."`, or a
//! proxy that adds an unsigned cancelled `subscription` to the relay's genuine grant. Before
//! issue #62 either turned a revoked (refunded) key into `licensed, fallback: true`, online,
//! from the cache offline, and again 40 days later. In signed mode neither widens anything
//! now; without relay keys nothing is signed, and the first test shows plainly what a forged
//! denial can do there (docs/threat-model.md).
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::lease::RelayKeys;
use polar_license::perpetual::ReleaseDate;
use polar_license::proto::{HttpRequest, HttpResponse, Operation};
use polar_license::{CacheState, CheckReport, Licensing, MachineBinding, Reason, Transport};
use polar_license::{Standing, TransportError};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::seller_rows::expire_at;
use polar_license_testkit::{rfc3339, unix_now, Lease, World, APP_SECRET, MACHINE};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: i64 = 86_400;

/// The attacker's proxy in front of the relay rig.
#[derive(Clone, Default)]
struct Forger {
    /// Every validate answered with an unsigned `404 "License key has expired."` (a fake
    /// relay: nothing is passed on).
    expired: Arc<AtomicBool>,
    /// A cancelled subscription that ended the day before `now` added, unsigned, to every
    /// validate's 200 (the relay's genuine answer and lease otherwise kept).
    inject: Arc<AtomicBool>,
    /// The last denial of a validate that came through, kept (headers and all).
    denial: Arc<Mutex<Option<HttpResponse>>>,
    /// Every validate answered with the kept denial (a captured signed denial replayed).
    replay: Arc<AtomicBool>,
    /// The forged expiry dressed as the relay's store answer (`polar-license-source: store`
    /// and an `age`), as a stored denial is replayed.
    as_stored: Arc<AtomicBool>,
    /// Every validate's 200 with its `usage` set to 0 (the relay's lease kept).
    no_usage: Arc<AtomicBool>,
}

struct Through<T> {
    inner: T,
    forger: Forger,
    clock: polar_license_testkit::FakeClock,
}

impl<T: Transport> Transport for Through<T> {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let validate = request.operation == Operation::Validate;
        if validate && self.forger.expired.load(Ordering::SeqCst) {
            let forged = HttpResponse::new(
                404,
                r#"{"error":"ResourceNotFound","detail":"License key has expired."}"#,
            )
            .with_header("content-type", "application/json");
            if self.forger.as_stored.load(Ordering::SeqCst) {
                return Ok(forged
                    .with_header("polar-license-source", "store")
                    .with_header("age", "30"));
            }
            return Ok(forged);
        }
        if validate && self.forger.replay.load(Ordering::SeqCst) {
            if let Some(kept) = self.forger.denial.lock().unwrap().clone() {
                return Ok(kept);
            }
        }
        let response = self.inner.send(request)?;
        if validate && response.status == 404 {
            *self.forger.denial.lock().unwrap() = Some(response.clone());
        }
        let edits = self.forger.inject.load(Ordering::SeqCst);
        let no_usage = self.forger.no_usage.load(Ordering::SeqCst);
        if !(validate && response.status == 200 && (edits || no_usage)) {
            return Ok(response);
        }
        let mut body: Value = serde_json::from_slice(&response.body).expect("a JSON grant");
        if no_usage {
            body["usage"] = 0.into();
            let mut forged = HttpResponse::new(200, serde_json::to_vec(&body).expect("JSON"));
            forged.headers = response.headers.clone();
            return Ok(forged);
        }
        let ended = rfc3339(self.clock.now() - DAY);
        body["subscription"] = serde_json::json!({
            "id": "7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
            "status": "canceled",
            "current_period_start": rfc3339(self.clock.now() - 31 * DAY),
            "current_period_end": ended,
            "cancel_at_period_end": true,
            "ends_at": ended,
        });
        let mut forged = HttpResponse::new(200, serde_json::to_vec(&body).expect("JSON"));
        forged.headers = response.headers.clone();
        Ok(forged)
    }
}

/// An app of `w` behind `forger`, for a build released on `released`, in signed mode when
/// `keys` is not empty.
fn app(w: &World, forger: &Forger, keys: RelayKeys, released: i64) -> Licensing {
    w.licensing_builder(MachineBinding::Id(MACHINE.into()))
        .timeout(Duration::from_secs(5))
        .app_secret(APP_SECRET.to_vec())
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .relay_keys(keys)
        .released(ReleaseDate::from_unix(released))
        .build_with_transport(Through {
            inner: w.relay_transport(),
            forger: forger.clone(),
            clock: w.clock.clone(),
        })
        .expect("the app builds")
}

/// Both clocks (the app's and Polar's) moved to `at`.
fn move_to(w: &World, start: i64, at: i64) {
    if let Some(polar) = w.polar.running() {
        polar.set_clock_offset(at - start);
    }
    w.set_clock(at);
}

/// A world whose demo key is paid through `start + 30 days`, activated and checked online by
/// `app` (signed when `signed`), its build released at `start`.
fn activated(label: &str, signed: bool) -> (World, Forger, Licensing, i64) {
    let w = World::new(label).signed();
    let start = unix_now();
    w.set_clock(start);
    expire_at(&w.polar, start + 30 * DAY);
    let forger = Forger::default();
    let keys = if signed {
        w.relay_keys()
    } else {
        RelayKeys::new()
    };
    let app = app(&w, &forger, keys, start);
    w.activate(&app);
    let first = app.check_report(DEMO_KEY);
    assert_eq!(first.outcome.source(), Some(Source::Online), "{first:?}");
    (w, forger, app, start)
}

#[track_caller]
fn not_licensed(report: &CheckReport) {
    assert!(!report.outcome.is_licensed(), "{report:?}");
    assert_eq!(
        report.perpetual.map(|p| p.fallback),
        Some(false),
        "{report:?}"
    );
}

#[track_caller]
fn fell_back(report: &CheckReport) {
    assert!(report.outcome.is_licensed(), "{report:?}");
    assert_eq!(
        report.perpetual.map(|p| p.fallback),
        Some(true),
        "{report:?}"
    );
}

/// The record's denial, as `status` reads it.
fn denied(app: &Licensing) -> Option<Reason> {
    let status = app.status(DEMO_KEY).expect("status");
    assert_eq!(status.standing, Standing::Denied, "{status:?}");
    match &status.state {
        CacheState::Present(record) => record.denied.as_ref().map(|d| d.reason),
        other => panic!("{other:?}"),
    }
}

/// The key refunded (revoked) on Polar; a fake relay answers an unsigned "expired": in signed
/// mode it widens nothing, online, offline, nor 40 days later; the denial is kept. Without
/// relay keys (nothing signed) the same forgery falls back, as docs/threat-model.md says.
#[test]
fn a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode() {
    let (w, forger, app, start) = activated("facts-forged-expiry", true);
    w.revoke();
    move_to(&w, start, start + 3600);
    let refunded = app.check_report(DEMO_KEY);
    assert_eq!(
        refunded.outcome.reason(),
        Some(Reason::Inactive),
        "{refunded:?}"
    );
    not_licensed(&refunded);

    forger.expired.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 2 * 3600);
    let forged = app.check_report(DEMO_KEY);
    assert_eq!(forged.outcome.reason(), Some(Reason::Expired), "{forged:?}");
    not_licensed(&forged);
    let why = forged.perpetual.and_then(|p| p.refused).unwrap_or_default();
    assert!(why.contains("signed denial"), "{why:?}");
    assert!(denied(&app).is_some(), "a denial is kept");

    // Offline (Polar and the relay out of reach): the cache does not fall back either.
    forger.expired.store(false, Ordering::SeqCst);
    w.offline();
    move_to(&w, start, start + 3 * 3600);
    not_licensed(&app.check_report(DEMO_KEY));

    // 40 days later, the fake relay again, then offline again.
    w.online();
    forger.expired.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 40 * DAY);
    not_licensed(&app.check_report(DEMO_KEY));
    forger.expired.store(false, Ordering::SeqCst);
    w.offline();
    move_to(&w, start, start + 40 * DAY + 60);
    not_licensed(&app.check_report(DEMO_KEY));
    assert!(denied(&app).is_some(), "the denial kept");
}

/// The same forgery dressed as a denial the relay answered from its store (issue #62: the
/// relay signs those too, so an unsigned one is no signed fact wherever it says it came from):
/// in signed mode it widens nothing, online or offline.
#[test]
fn a_forged_unsigned_stored_expiry_never_licenses_a_revoked_key_in_signed_mode() {
    let (w, forger, app, start) = activated("facts-forged-stored", true);
    w.revoke();
    forger.as_stored.store(true, Ordering::SeqCst);
    forger.expired.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 3600);
    let forged = app.check_report(DEMO_KEY);
    assert_eq!(forged.outcome.reason(), Some(Reason::Expired), "{forged:?}");
    not_licensed(&forged);
    let why = forged.perpetual.and_then(|p| p.refused).unwrap_or_default();
    assert!(why.contains("signed denial"), "{why:?}");
    forger.expired.store(false, Ordering::SeqCst);
    w.offline();
    move_to(&w, start, start + 2 * 3600);
    not_licensed(&app.check_report(DEMO_KEY));
    assert!(denied(&app).is_some(), "the denial kept");
}

/// What the same forgery does without relay keys: nothing is signed, so an unsigned "expired"
/// is believed as Polar's (the key's last good answer gives the date). This is the limit of
/// unsigned mode that docs/threat-model.md states; signed mode is the answer to it.
#[test]
fn without_relay_keys_a_forged_expiry_falls_back_as_the_threat_model_says() {
    let (w, forger, app, start) = activated("facts-forged-unsigned", false);
    w.revoke();
    forger.expired.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 3600);
    let forged = app.check_report(DEMO_KEY);
    fell_back(&forged);
    assert_eq!(forged.perpetual.and_then(|p| p.refused), None);
}

/// One unsigned cancelled `subscription` added to the relay's genuine grant; then Polar's own
/// "no longer active" (the key revoked): in signed mode the subscription is not a signed fact,
/// so no fallback, online or offline, and the denial is kept.
#[test]
fn an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual() {
    let (w, forger, app, start) = activated("facts-injected-sub", true);
    forger.inject.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 3600);
    let injected = app.check_report(DEMO_KEY);
    assert_eq!(
        injected.outcome.source(),
        Some(Source::Online),
        "{injected:?}"
    );
    // The license as it came carries the forged subscription; the signed date does not.
    let CheckOutcome::Licensed { license, .. } = &injected.outcome else {
        panic!("{injected:?}")
    };
    assert!(license.license_key.subscription.is_some(), "injected");
    assert_eq!(
        injected.paid_through(),
        Some(start + 30 * DAY),
        "{injected:?}"
    );

    forger.inject.store(false, Ordering::SeqCst);
    w.revoke();
    move_to(&w, start, start + 2 * 3600);
    let revoked = app.check_report(DEMO_KEY);
    assert_eq!(
        revoked.outcome.reason(),
        Some(Reason::Inactive),
        "{revoked:?}"
    );
    not_licensed(&revoked);
    w.offline();
    move_to(&w, start, start + 3 * 3600);
    not_licensed(&app.check_report(DEMO_KEY));
    assert_eq!(denied(&app), Some(Reason::Inactive), "the denial kept");
}

/// The genuine case still works in signed mode: Polar says "expired" through the relay, which
/// signs that denial for this request; the build falls back online, then from the cache
/// offline (within the grace and the signed denial's end), and not 40 days later offline.
#[test]
fn a_signed_expiry_falls_back_online_and_offline_within_its_signed_end() {
    let (w, _forger, app, start) = activated("facts-signed-expiry", true);
    let expires = start + 30 * DAY;
    move_to(&w, start, expires + 3600);
    let ended = app.check_report(DEMO_KEY);
    fell_back(&ended);
    assert_eq!(ended.outcome.source(), Some(Source::Online), "{ended:?}");
    assert_eq!(ended.perpetual.and_then(|p| p.paid_through), Some(expires));

    w.offline();
    move_to(&w, start, expires + 2 * 3600);
    let offline = app.check_report(DEMO_KEY);
    fell_back(&offline);
    assert_eq!(offline.outcome.source(), Some(Source::Cache), "{offline:?}");

    move_to(&w, start, expires + 40 * DAY);
    not_licensed(&app.check_report(DEMO_KEY));
}

/// A relay older than signed denials (it signs leases, never a denial): a genuine "expired"
/// cannot be told from a forged one, so no fallback, and the report says why (contract §5:
/// add, never break; the safe answer).
#[test]
fn a_relay_older_than_signed_denials_gives_no_fallback_and_says_why() {
    let (w, _forger, app, start) = activated("facts-older-relay", true);
    w.set_lease(Lease::Older { days: 3 });
    move_to(&w, start, start + 30 * DAY + 3600);
    let ended = app.check_report(DEMO_KEY);
    assert_eq!(ended.outcome.reason(), Some(Reason::Expired), "{ended:?}");
    not_licensed(&ended);
    let why = ended.perpetual.and_then(|p| p.refused).unwrap_or_default();
    assert!(why.contains("update the relay"), "{why:?}");
}

/// A genuine signed denial is this request's only: the relay's signed "expired", captured by
/// the proxy when the key ran out, replayed after the seller renewed and then refunded the key,
/// is not this request's (its nonce): no fallback, and Polar's own denial is what the record
/// keeps once the proxy stops.
#[test]
fn a_captured_signed_expiry_replayed_for_another_request_is_no_fallback() {
    let (w, forger, app, start) = activated("facts-replayed-denial", true);
    let expires = start + 30 * DAY;
    move_to(&w, start, expires + 3600);
    let ended = app.check_report(DEMO_KEY);
    fell_back(&ended);
    assert!(
        forger.denial.lock().unwrap().is_some(),
        "the signed denial captured"
    );

    // Renewed, then refunded: Polar now says "no longer active".
    expire_at(&w.polar, expires + 365 * DAY);
    move_to(&w, start, expires + 2 * 3600);
    let renewed = app.check_report(DEMO_KEY);
    assert_eq!(
        renewed.outcome.source(),
        Some(Source::Online),
        "{renewed:?}"
    );
    w.revoke();
    forger.replay.store(true, Ordering::SeqCst);
    move_to(&w, start, expires + 3 * 3600);
    let replayed = app.check_report(DEMO_KEY);
    assert_eq!(
        replayed.outcome.reason(),
        Some(Reason::Expired),
        "{replayed:?}"
    );
    not_licensed(&replayed);
    forger.replay.store(false, Ordering::SeqCst);
    w.offline();
    move_to(&w, start, expires + 4 * 3600);
    not_licensed(&app.check_report(DEMO_KEY));
}

/// Contract §5, only signed facts decide: a grant whose usage count is not the one its lease
/// signed is no grant. The demo key has spent all 3 of its usages; a proxy sets the relay's
/// answer's `usage` to 0 and keeps its genuine lease: the signed app takes nothing online from
/// it (`protocol_error`) and answers from its cache, with the count the lease signed.
#[test]
fn a_grant_with_another_usage_count_than_its_lease_is_no_grant() {
    let seed = polar_license_testkit::demo_usage_spent(3);
    let w = World::with_seed("facts-usage", seed).signed();
    let start = unix_now();
    w.set_clock(start);
    let forger = Forger::default();
    let app = app(&w, &forger, w.relay_keys(), start);
    w.activate(&app);
    let left = |r: &CheckReport| {
        r.outcome
            .license()
            .and_then(|l| l.license_key.remaining_usage())
    };
    let first = app.check_report(DEMO_KEY);
    assert_eq!(first.outcome.source(), Some(Source::Online), "{first:?}");
    assert_eq!(left(&first), Some(0), "{first:?}");

    forger.no_usage.store(true, Ordering::SeqCst);
    move_to(&w, start, start + 60);
    let edited = app.check_report(DEMO_KEY);
    assert_eq!(edited.outcome.source(), Some(Source::Cache), "{edited:?}");
    assert_eq!(
        edited.fallback.as_ref().map(|e| e.reason()),
        Some(Reason::ProtocolError),
        "{edited:?}"
    );
    assert_eq!(left(&edited), Some(0), "{edited:?}");
    forger.no_usage.store(false, Ordering::SeqCst);
    move_to(&w, start, start + 120);
    let honest = app.check_report(DEMO_KEY);
    assert_eq!(honest.outcome.source(), Some(Source::Online), "{honest:?}");
    assert_eq!(left(&honest), Some(0), "{honest:?}");
}
