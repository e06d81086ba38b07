//! Issue #25 on the native face (`Licensing`; the CLI and the C ABI share it): signed mode.
//!
//! A client holding relay keys licenses from its cache only with a lease that verifies, and
//! takes an online grant only with one. The relay here is a stand-in transport in front of the
//! emulator that signs leases as the relay does, or signs them wrong on purpose (another key,
//! another machine, expired, dated ahead, garbage, too long, sent twice): every wrong one must
//! be "no lease", never a grant, never a panic. The attack the threat model states (read the
//! install secret and the app secret, re-seal a forged record with this crate's own code) is
//! played against an unsigned app (it grants: today's ceiling) and a signed one (it refuses).
//!
//! The rows every face plays (tests/signed/rows.tsv: a valid lease, the forged record, a lease
//! signed by another key or for another machine) run here through `the_signed_mode_table`;
//! the tests below hold what the table does not.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::cache;
use polar_license::fingerprint::fingerprint_from;
use polar_license::flow::Slot;
use polar_license::grace::Source;
use polar_license::lease::{key_hash, LeaseClaims, RelayKeys, SigningKey};
use polar_license::proto::{HttpRequest, HttpResponse, Operation};
use polar_license::store::Store;
use polar_license::{
    ActivateRequest, CacheState, FileStore, Key, Licensing, MachineBinding, Reason, Standing,
    Transport, TransportError, ValidateRequest,
};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::answers::imf_fixdate;
use polar_license_testkit::leases::{self, Facts};
use polar_license_testkit::signed_rows::{self, Row, Signs, Then, OTHER_KEY};
use polar_license_testkit::{
    from_cache, take_requests, Lease, ScratchDir, World, APP_SECRET, MACHINE, START,
};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: i64 = 86_400;

/// This suite's world: the testkit's, with the relay rig.
fn world() -> World {
    World::new("signed").signed()
}

/// An app of `w` in signed mode (the relay's keys), the key activated through it.
fn signed_and_activated(w: &World) -> Licensing {
    let app = w.app(w.relay_keys());
    w.activate(&app);
    app
}

/// One row of the table in a fresh world: the relay signs as the row says, the key is
/// activated in signed mode, the row's steps happen, and the row's app checks.
fn play(row: &Row) -> Result<(), String> {
    let w = world();
    w.set_lease(match row.signs {
        Signs::Honest => Lease::Honest { days: 3 },
        Signs::OtherKey => Lease::OtherKey(Arc::new(
            SigningKey::from_file_text(OTHER_KEY).map_err(|e| format!("{e:?}"))?,
        )),
        Signs::OtherMachine => Lease::OtherMachine,
    });
    let signed = w.app(w.relay_keys());
    let activated = signed.activate(&ActivateRequest::new(DEMO_KEY, "laptop"));
    row.activate.activated(&activated)?;
    for step in &row.then {
        match *step {
            Then::Offline => w.offline(),
            Then::Advance(seconds) => w.clock.advance(seconds),
            Then::Forge => {
                let now = w.clock.now();
                w.forge(|r| {
                    if let Some(good) = r.good.as_mut() {
                        good.verified_at = now;
                    }
                    r.latest_seen = now;
                    r.denied = None;
                });
            }
        }
    }
    let app = match row.relay_keys {
        true => signed,
        false => w.app(RelayKeys::new()),
    };
    row.expect.check(&app.check(DEMO_KEY))
}

/// Every row of tests/signed/rows.tsv; a failure (or a panic) names its row.
#[test]
fn the_signed_mode_table() {
    let rows = signed_rows::rows();
    assert!(rows.len() >= 9, "{rows:?}");
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let played = catch_unwind(AssertUnwindSafe(|| play(row)))
                .unwrap_or_else(|_| Err("panicked (above)".to_string()));
            played.err().map(|e| format!("row \"{}\": {e}", row.name))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_lease_is_kept_with_its_window_and_renewed_online() {
    let w = world();
    let app = signed_and_activated(&w);
    let status = app.status(DEMO_KEY).unwrap();
    let CacheState::Present(record) = &status.state else {
        panic!("{status:?}")
    };
    let window = record
        .lease_gate
        .window()
        .expect("the activation's lease verified");
    assert_eq!(window.kid, "relay-2026");
    assert_eq!(window.expires_at, START + 3 * DAY);

    // Offline past the lease (the table's rows: licensed until day 3, not after).
    w.offline();
    w.clock.advance(3 * DAY + 1);
    assert!(!app.check(DEMO_KEY).is_licensed());

    // Back online, a fresh lease: licensed online, then from the cache again.
    w.online();
    assert!(app.check(DEMO_KEY).is_licensed());
    w.offline();
    w.clock.advance(DAY);
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());
}

#[test]
fn a_lease_forged_into_the_record_with_another_key_does_not_verify() {
    let w = world();
    let signed = w.app(w.relay_keys());
    w.activate(&signed);
    assert!(signed.check(DEMO_KEY).is_licensed());

    // The key is revoked; the attacker keeps Polar unreachable and, a month on, re-seals the
    // record as freshly verified with the secrets on the machine and our own code.
    w.revoke();
    w.offline();
    w.clock.advance(30 * DAY);
    let now = w.clock.now();
    w.forge(|r| {
        let good = r.good.as_mut().unwrap();
        good.verified_at = now;
        r.latest_seen = now;
        r.denied = None;
    });

    // The table's rows: this licenses an app without relay keys, and not the signed one.
    let unsigned = w.app(RelayKeys::new());

    // A lease forged with the attacker's own key under the relay's kid does not verify.
    let fake = SigningKey::generate(Some("relay-2026")).unwrap();
    let org = w.polar.organization_id();
    let key = Key::new(DEMO_KEY);
    let activation = {
        let s = signed.status(DEMO_KEY).unwrap();
        s.activation.unwrap().id
    };
    w.forge(|r| {
        let good = r.good.as_mut().unwrap();
        let benefit = polar_license::grace::LicenseData::benefit_id(&good.license);
        let claims = leases::claims(&Facts::granted(&org, &key, &activation, benefit), now, 365);
        good.lease = Some(
            fake.sign(&claims, Some(&fingerprint_from(MACHINE, &org)))
                .unwrap(),
        );
    });
    let outcome = signed.check(DEMO_KEY);
    assert!(!outcome.is_licensed(), "{outcome:?}");
    assert_eq!(outcome.reason(), Some(Reason::Offline));
    // …while the same forged record still fools the unsigned app.
    assert!(from_cache(&unsigned.check(DEMO_KEY)).is_some());
}

#[test]
fn an_unsigned_record_never_licenses_offline_in_signed_mode() {
    let w = world();
    w.set_lease(Lease::Missing);
    let unsigned = w.app(RelayKeys::new());
    w.activate(&unsigned);
    w.offline();
    w.clock.advance(DAY);
    assert!(from_cache(&unsigned.check(DEMO_KEY)).is_some());
    let signed = w.app(w.relay_keys());
    let outcome = signed.check(DEMO_KEY);
    assert_eq!(outcome.reason(), Some(Reason::Offline), "{outcome:?}");
    let status = signed.status(DEMO_KEY).unwrap();
    let CacheState::Present(record) = &status.state else {
        panic!("{status:?}")
    };
    assert_eq!(record.lease_gate.window(), None);
    assert_eq!(status.grace_remaining, None);
}

#[test]
fn a_grant_without_a_lease_that_verifies_is_no_verdict_and_no_lease() {
    let w = world();
    let app = signed_and_activated(&w); // an honest 3-day lease
    let good_until = START + 3 * DAY;
    let other = Arc::new(SigningKey::generate(Some("stranger")).unwrap());
    let impostor = Arc::new(SigningKey::generate(Some("relay-2026")).unwrap());
    let long = "A".repeat(5000);
    let hostile = [
        ("missing", Lease::Missing),
        ("empty", Lease::Text(String::new())),
        ("garbage", Lease::Text("v4.public.not-a-token".into())),
        ("v4.local", Lease::Text("v4.local.AAAA".into())),
        ("oversized", Lease::Text(format!("v4.public.{long}"))),
        ("unknown kid", Lease::OtherKey(other)),
        ("impostor key, trusted kid", Lease::OtherKey(impostor)),
        ("other machine", Lease::OtherMachine),
        ("other license key", Lease::OtherKey2),
        ("expired", Lease::Expired),
        ("dated a day ahead", Lease::Future),
        ("sent twice", Lease::Twice),
    ];
    for (i, (name, lease)) in hostile.into_iter().enumerate() {
        w.clock.advance(2 * 3600); // past the fresh window: every check asks
        take_requests(&w.polar);
        w.set_lease(lease);
        let outcome = app.check(DEMO_KEY);
        assert_eq!(take_requests(&w.polar), 1, "{name}: one request");
        // Polar said yes, the relay's lease does not verify: the grant is no verdict, and
        // the cache's own honest lease answers instead.
        let left = from_cache(&outcome).unwrap_or_else(|| panic!("{name}: {outcome:?}"));
        let now = START + 2 * 3600 * (i as i64 + 1);
        assert_eq!(left.as_secs() as i64, good_until - now, "{name}");
        // Nothing was stored from it: the window is still the honest lease's.
        let status = app.status(DEMO_KEY).unwrap();
        let CacheState::Present(record) = &status.state else {
            panic!("{name}: {status:?}")
        };
        let window = record.lease_gate.window().cloned();
        assert_eq!(window.map(|w| w.expires_at), Some(good_until), "{name}");
    }
    // An honest relay again: a fresh lease and an online grant.
    w.set_lease(Lease::Honest { days: 3 });
    w.clock.advance(2 * 3600);
    let outcome = app.check(DEMO_KEY);
    assert_eq!(outcome.source(), Some(Source::Online), "{outcome:?}");
}

#[test]
fn a_grant_without_a_lease_is_protocol_error_when_the_cache_cannot_answer() {
    let w = world();
    w.set_lease(Lease::Missing);
    let app = w.app(w.relay_keys());
    let answer = app.activate(&ActivateRequest::new(DEMO_KEY, "laptop"));
    let err = answer.expect_err("an activation without a lease is no verdict");
    assert_eq!(err.reason(), Reason::ProtocolError, "{err:?}");
    assert!(err.to_string().contains("lease"), "{err}");
    assert!(!err.to_string().contains(DEMO_KEY), "{err}");
    // Polar took a slot: the error names the activation, which frees it when deactivated.
    let made = w.polar.activation_ids(DEMO_KEY);
    let id = made.last().expect("Polar made an activation");
    assert!(
        err.to_string()
            .contains(&format!("Polar activated this key as {id}")),
        "{err}"
    );
    let freed = app.deactivate(DEMO_KEY, Some(id.as_str()));
    assert!(freed.is_ok(), "{freed:?}");
    assert!(w
        .polar
        .activations(DEMO_KEY)
        .iter()
        .all(|a| a["id"] != id.as_str()));
}

/// Issue #65: an app built with another relay's key (`unknown_kid`, a seller's setup mistake)
/// is told so, not sent to "try another network".
#[test]
fn an_app_with_another_relays_key_says_the_relay_key_does_not_match() {
    let w = world();
    let other = SigningKey::generate(Some("someone-else")).unwrap();
    let app = w.app(RelayKeys::parse(&other.public_pair()).unwrap());
    let err = app
        .validate(&ValidateRequest::new(DEMO_KEY))
        .expect_err("a lease signed with an unknown key is no verdict");
    assert_eq!(err.reason(), Reason::ProtocolError, "{err:?}");
    assert!(err.relay_key_mismatch(), "{err:?}");
    let said = err.user_message();
    assert!(said.contains("relay key does not match"), "{said}");
    assert!(
        !said.contains("another one") && !said.contains("login page"),
        "{said}"
    );
    assert!(err.to_string().contains("unknown_kid"), "{err}");
}

#[test]
fn two_relay_keys_at_once_for_rotation() {
    let w = world();
    let old = SigningKey::generate(Some("relay-2025")).unwrap();
    let keys = RelayKeys::parse(&format!(
        "{},{}",
        old.public_pair(),
        w.signer().public_pair()
    ))
    .unwrap();
    assert_eq!(keys.kids(), vec!["relay-2025", "relay-2026"]);
    let app = w.app(keys);
    w.activate(&app);
    w.offline();
    w.clock.advance(DAY);
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());
    // Only the old key: the new key's lease is an unknown kid, so no cache.
    let old_only = w.app(RelayKeys::parse(&old.public_pair()).unwrap());
    assert_eq!(old_only.check(DEMO_KEY).reason(), Some(Reason::Offline));
}

#[test]
fn the_record_keeps_the_lease_as_received_and_its_seal_covers_it() {
    let w = world();
    let _app = signed_and_activated(&w);
    let org = w.polar.organization_id();
    let key = Key::new(DEMO_KEY);
    let secret = FileStore::new(w.dir.path()).install_secret().unwrap();
    let seal = fingerprint_from(MACHINE, &org);
    let slot = Slot::new(
        &w.polar.url(),
        &org,
        &key,
        &secret,
        Some(&seal),
        Some(APP_SECRET),
    );
    let bytes = std::fs::read(w.dir.path().join(format!("{}.cache", slot.name))).unwrap();
    let record = cache::decode(&bytes, &slot.mac).expect("sealed");
    let lease = record.good.and_then(|g| g.lease).expect("stored");
    assert!(lease.starts_with("v4.public."), "{lease}");
    assert!(!String::from_utf8_lossy(&bytes).contains(DEMO_KEY));
}

/// tests/vectors/lease-relay.json: the token the relay's signer writes for these claims, which
/// the npm package's tests sign again with their own PASETO code (tests/js/signed.test.mjs).
#[test]
fn the_lease_fixture_the_js_tests_sign_again_is_what_the_relay_signs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/lease-relay.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let signer = SigningKey::from_file_text(doc["signing_key"].as_str().unwrap()).unwrap();
    assert_eq!(signer.public_pair(), doc["public_pair"].as_str().unwrap());
    let c = &doc["claims"];
    let text = |name: &str| c[name].as_str().unwrap().to_string();
    let claims = LeaseClaims {
        organization_id: text("organization_id"),
        key_sha256: key_hash(&Key::new(text("key"))),
        activation_id: Some(text("activation_id")),
        status: text("status"),
        license_expires_at: c["license_expires_at"].as_i64(),
        subscription_ends_at: None,
        benefit_id: text("benefit_id"),
        usage: c["usage"].as_i64().unwrap(),
        limit_usage: c["limit_usage"].as_i64(),
        limit_activations: c["limit_activations"].as_i64(),
        issued_at: c["issued_at"].as_i64().unwrap(),
        not_before: c["not_before"].as_i64().unwrap(),
        expires_at: c["expires_at"].as_i64().unwrap(),
        id: text("id"),
        nonce: None,
        entitlements: None,
    };
    let machine = doc["machine"].as_str().unwrap();
    let token = signer.sign(&claims, Some(machine)).unwrap();
    assert_eq!(token, doc["token"].as_str().unwrap());
    // …and it verifies for what it says.
    let keys = RelayKeys::parse(doc["public_pair"].as_str().unwrap()).unwrap();
    let key = Key::new(text("key"));
    let expect = polar_license::lease::LeaseExpect {
        organization_id: &claims.organization_id,
        key: &key,
        activation_id: claims.activation_id.as_deref(),
        benefit_id: Some(&claims.benefit_id),
        machine: Some(machine),
    };
    let lease = polar_license::lease::verify(&token, &keys, &expect, claims.issued_at, 600);
    assert_eq!(lease.map(|l| l.claims), Ok(claims));
}

/// An air-gapped app in signed mode (its cache in a scratch directory `name`) and the request
/// line it shows for an activation labelled `label`.
fn air_gapped(w: &World, name: &str, label: &str) -> (ScratchDir, Licensing, String) {
    let dir = ScratchDir::new(name);
    let app = w.offline_app(MACHINE, &dir, w.relay_keys());
    let line = app
        .lease_request(&ActivateRequest::new(DEMO_KEY, label))
        .unwrap();
    (dir, app, line)
}

#[test]
fn an_air_gapped_machine_is_licensed_by_a_response_carried_to_it() {
    let w = world();
    let (dir, app, line) = air_gapped(&w, "airgap", "lab machine");
    assert!(line.starts_with(polar_license::airgap::REQUEST_PREFIX));
    assert_eq!(app.check(DEMO_KEY).reason(), Some(Reason::Offline));

    // On the online machine: one activate, through the relay.
    take_requests(&w.polar);
    let response = w.online_client().lease_fetch(&line).unwrap();
    let response = response.accepted().cloned().expect("granted");
    assert_eq!(take_requests(&w.polar), 1);

    // Damaged in transit, installed without keys, or on another machine: nothing stored.
    let cut = &response[..response.len() - 10];
    assert_eq!(
        app.lease_install(cut).unwrap_err().reason(),
        Reason::InvalidInput
    );
    let keyless = w.offline_app(MACHINE, &dir, RelayKeys::new());
    assert_eq!(
        keyless.lease_install(&response).unwrap_err().reason(),
        Reason::InvalidInput
    );
    let other_dir = ScratchDir::new("airgap-other");
    let other = w.offline_app("machine-B", &other_dir, w.relay_keys());
    assert_eq!(
        other.lease_install(&response).unwrap_err().reason(),
        Reason::InvalidInput
    );
    assert_eq!(other.check(DEMO_KEY).reason(), Some(Reason::Offline));
    assert_eq!(app.check(DEMO_KEY).reason(), Some(Reason::Offline));

    // Installed on the machine it was made for: licensed with no network, until the lease ends.
    let installed = app.lease_install(&response).unwrap();
    let activation = installed
        .accepted()
        .expect("installed")
        .activation
        .id
        .clone();
    assert_eq!(
        app.status(DEMO_KEY).unwrap().activation.map(|a| a.id),
        Some(activation)
    );
    w.clock.advance(2 * DAY);
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());
    w.clock.advance(DAY);
    assert_eq!(app.check(DEMO_KEY).reason(), Some(Reason::GraceExpired));
}

#[test]
fn an_air_gapped_response_needs_a_relay_lease() {
    let w = world();
    let (_dir, app, line) = air_gapped(&w, "airgap-nolease", "lab");
    // Fetched from Polar itself (no relay): no lease, so no response line.
    w.set_lease(Lease::Missing);
    let err = w.online_client().lease_fetch(&line).unwrap_err();
    assert_eq!(err.reason(), Reason::ProtocolError);
    // A relay whose lease is signed by an impostor under the trusted kid: the line is made,
    // but it does not install.
    let impostor = Arc::new(SigningKey::generate(Some("relay-2026")).unwrap());
    w.set_lease(Lease::OtherKey(impostor));
    let response = w.online_client().lease_fetch(&line).unwrap();
    let response = response.accepted().cloned().unwrap();
    assert_eq!(
        app.lease_install(&response).unwrap_err().reason(),
        Reason::ProtocolError
    );
    assert_eq!(app.check(DEMO_KEY).reason(), Some(Reason::Offline));
    // A request for another organization is refused before anything is sent.
    let other_org = polar_license::BlockingClient::builder("5e0c8a9b-3f1d-4e2a-8b7c-1d2e3f4a5b6c")
        .base_url(w.polar.url())
        .build()
        .unwrap();
    take_requests(&w.polar);
    assert_eq!(
        other_org.lease_fetch(&line).unwrap_err().reason(),
        Reason::InvalidInput
    );
    assert_eq!(take_requests(&w.polar), 0);
}

#[test]
fn a_validate_of_another_question_keeps_the_records_lease() {
    // Found by the CLI suite: a plain validate (no activation) got a lease for its own
    // question, which must not replace the activation's lease in the record.
    let w = world();
    let app = signed_and_activated(&w);
    let before = app.status(DEMO_KEY).unwrap();
    let window = |s: &polar_license::CacheStatus| match &s.state {
        CacheState::Present(r) => r.lease_gate.window().cloned(),
        _ => None,
    };
    assert!(window(&before).is_some());
    w.clock.advance(60);
    let answer = app.validate(&polar_license::ValidateRequest::new(DEMO_KEY));
    assert!(answer.unwrap().is_accepted());
    assert_eq!(window(&app.status(DEMO_KEY).unwrap()), window(&before));
    w.offline();
    w.clock.advance(DAY);
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());
}

/// The user's own recording proxy between the app and the relay (issue #53): every request
/// passed on, the last 200 of a validate kept; replaying, that 200 answered again, verbatim,
/// with nothing passed on.
#[derive(Clone, Default)]
struct Tape {
    last: Arc<Mutex<Option<HttpResponse>>>,
    replay: Arc<AtomicBool>,
    /// The `Date` the proxy writes on every answer it passes on (unix seconds), if any.
    date: Arc<Mutex<Option<i64>>>,
}

struct Recorder<T> {
    inner: T,
    tape: Tape,
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.tape.replay.load(Ordering::SeqCst) {
            if let Some(captured) = self.tape.last.lock().unwrap().clone() {
                return Ok(captured);
            }
        }
        let mut response = self.inner.send(request)?;
        if let Some(date) = *self.tape.date.lock().unwrap() {
            response.headers.retain(|(name, _)| name != "date");
            response = response.with_header("date", &imf_fixdate(date));
        }
        if response.status == 200 && request.operation == Operation::Validate {
            *self.tape.last.lock().unwrap() = Some(response.clone());
        }
        Ok(response)
    }
}

/// An app of `w` in signed mode behind the recording proxy `tape`.
fn recorded_app(w: &World, tape: &Tape) -> Licensing {
    w.licensing_builder(MachineBinding::Id(MACHINE.into()))
        .timeout(Duration::from_secs(5))
        .app_secret(APP_SECRET.to_vec())
        .relay_keys(w.relay_keys())
        .build_with_transport(Recorder {
            inner: w.relay_transport(),
            tape: tape.clone(),
        })
        .unwrap()
}

/// [`recorded_app`] activated, and checked online two hours later: the proxy has that grant
/// on tape.
fn recorded_and_checked(w: &World, tape: &Tape) -> Licensing {
    let app = recorded_app(w, tape);
    w.activate(&app);
    w.clock.advance(2 * 3600);
    let captured = app.check(DEMO_KEY);
    assert_eq!(captured.source(), Some(Source::Online), "{captured:?}");
    app
}

/// The record `app` holds for the demo key (there must be one).
fn record(app: &Licensing) -> polar_license::Record {
    match app.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => *r,
        other => panic!("{other:?}"),
    }
}

fn reason(outcome: &polar_license::CheckOutcome) -> Option<Reason> {
    outcome.reason()
}

/// Issue #53: the key revoked and denied twice online, the proxy replays the relay's earlier
/// 200 with its genuine lease: refused as a replay (not this request's nonce), never licensed
/// online or from the cache after, and the denial kept.
#[test]
fn a_replayed_relay_grant_after_a_denial_is_refused_and_the_denial_kept() {
    let w = world();
    let tape = Tape::default();
    let app = recorded_and_checked(&w, &tape);
    assert!(tape.last.lock().unwrap().is_some(), "a grant was captured");

    w.revoke();
    for _ in 0..2 {
        w.clock.advance(2 * 3600);
        let denied = app.check(DEMO_KEY);
        assert_eq!(reason(&denied), Some(Reason::Inactive), "{denied:?}");
    }

    tape.replay.store(true, Ordering::SeqCst);
    w.clock.advance(60);
    take_requests(&w.polar);
    let replayed = app.check(DEMO_KEY);
    assert_eq!(reason(&replayed), Some(Reason::Replayed), "{replayed:?}");
    assert_eq!(replayed.kind(), "unverified", "{replayed:?}");
    assert_eq!(take_requests(&w.polar), 0, "the proxy answered, not Polar");
    assert!(
        replayed.detail().unwrap_or_default().contains("replayed"),
        "{replayed:?}"
    );

    // The denial is kept: offline (the proxy replaying, or no network at all), denied.
    let again = app.check(DEMO_KEY);
    assert_eq!(reason(&again), Some(Reason::Replayed), "{again:?}");
    tape.replay.store(false, Ordering::SeqCst);
    w.offline();
    w.clock.advance(3600);
    let offline = app.check(DEMO_KEY);
    assert!(!offline.is_licensed(), "{offline:?}");
    let status = app.status(DEMO_KEY).unwrap();
    assert_eq!(status.standing, Standing::Denied, "{status:?}");
    let CacheState::Present(record) = &status.state else {
        panic!("{status:?}")
    };
    assert_eq!(
        record.denied.as_ref().map(|d| d.reason),
        Some(Reason::Inactive),
        "the denial kept: {record:?}"
    );
}

/// Issue #53: the clock moved 30 days ahead, then set back 28: offline, `clock_rollback`; the
/// proxy's replay of an earlier genuine 200 is refused as a replay, and the rollback evidence
/// kept (`latest_seen` never moves back in signed mode). A fresh grant, with its own nonce,
/// licenses online.
#[test]
fn a_replayed_relay_grant_after_a_clock_set_back_is_refused_and_the_rollback_kept() {
    let w = world();
    w.set_lease(Lease::Honest { days: 5 });
    let tape = Tape::default();
    let app = recorded_and_checked(&w, &tape);

    w.offline();
    w.clock.advance(30 * DAY);
    let ahead = app.check(DEMO_KEY);
    assert!(!ahead.is_licensed(), "{ahead:?}");
    w.clock.advance(-28 * DAY);
    let back = app.check(DEMO_KEY);
    assert_eq!(reason(&back), Some(Reason::ClockRollback), "{back:?}");
    let seen = |app: &Licensing| record(app).latest_seen;
    let evidence = seen(&app);

    w.online();
    tape.replay.store(true, Ordering::SeqCst);
    let replayed = app.check(DEMO_KEY);
    assert_eq!(reason(&replayed), Some(Reason::Replayed), "{replayed:?}");
    assert_eq!(seen(&app), evidence, "the rollback evidence kept");
    tape.replay.store(false, Ordering::SeqCst);
    w.offline();
    let offline = app.check(DEMO_KEY);
    assert_eq!(reason(&offline), Some(Reason::ClockRollback), "{offline:?}");

    // A fresh grant through the relay, with this request's nonce: licensed online; the record's
    // clock still does not move back.
    w.online();
    let fresh = app.check(DEMO_KEY);
    assert_eq!(fresh.source(), Some(Source::Online), "{fresh:?}");
    assert!(seen(&app) >= evidence);
}

/// A relay older than the nonce claim (it signs none): an online grant is refused in signed
/// mode, the refusal naming the relay's update; the cache's own lease may still answer.
#[test]
fn a_relay_that_signs_no_nonce_is_refused_naming_why() {
    let w = world();
    let app = signed_and_activated(&w);
    w.set_lease(Lease::WithoutNonce);
    w.clock.advance(2 * 3600);
    take_requests(&w.polar);
    let report = app.check_report(DEMO_KEY);
    assert_eq!(take_requests(&w.polar), 1);
    // The grant is no verdict: the cache's honest lease answers, saying why it did.
    assert!(from_cache(&report.outcome).is_some(), "{report:?}");
    let why = report.fallback.expect("why the cache answered");
    assert_eq!(why.reason(), Reason::ProtocolError, "{why:?}");
    assert!(why.detail().contains("update the relay"), "{why:?}");
}

/// Issue #53, whatever the transport: an air-gapped response carries no nonce, so a lease
/// older than the one the cache holds is what refuses it. A newer response installed, the
/// older one installed again is `replayed`, and the record keeps the newer activation and
/// lease.
#[test]
fn an_older_air_gapped_response_installed_again_is_a_replay() {
    let w = world();
    let (_dir, app, line) = air_gapped(&w, "airgap-replay", "lab");
    let fetch = || {
        w.online_client()
            .lease_fetch(&line)
            .unwrap()
            .accepted()
            .cloned()
            .unwrap()
    };
    let older = fetch();
    w.clock.advance(DAY);
    let newer = fetch();
    let installed = app.lease_install(&newer).unwrap();
    let newest = installed.accepted().unwrap().activation.id.clone();
    let window = |app: &Licensing| record(app).lease_gate.window().cloned();
    let kept = window(&app);
    assert_eq!(kept.as_ref().map(|w| w.not_before), Some(START + DAY));

    let err = app.lease_install(&older).unwrap_err();
    assert_eq!(err.reason(), Reason::Replayed, "{err:?}");
    assert_eq!(window(&app), kept, "the newer lease kept");
    assert_eq!(
        app.status(DEMO_KEY).unwrap().activation.map(|a| a.id),
        Some(newest)
    );
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());
}

/// Issue #53: a lease issued more than the clock tolerance before the denial the record holds
/// is a replay, whatever brought it. An air-gapped response (no nonce) installed, the key's
/// denial recorded a day later, the same response installed again: `replayed`, the denial
/// kept, nothing licensed from the cache.
#[test]
fn an_air_gapped_response_older_than_a_recorded_denial_is_a_replay() {
    let w = world();
    let (dir, app, line) = air_gapped(&w, "airgap-denied", "lab");
    let response = w
        .online_client()
        .lease_fetch(&line)
        .unwrap()
        .accepted()
        .cloned()
        .unwrap();
    assert!(app.lease_install(&response).unwrap().accepted().is_some());
    assert!(from_cache(&app.check(DEMO_KEY)).is_some());

    // A day later the record holds Polar's denial (as a validate on the way would leave it).
    w.clock.advance(DAY);
    let org = w.polar.organization_id();
    let seal = fingerprint_from(MACHINE, &org);
    let denied_at = w.clock.now();
    polar_license_testkit::forge(
        &polar_license_testkit::Forgery {
            dir: dir.path(),
            base_url: &w.polar.url(),
            organization_id: &org,
            key: DEMO_KEY,
            seal: Some(&seal),
            app_secret: None,
        },
        |r| {
            r.denied = Some(polar_license::grace::DenialMark {
                reason: Reason::Inactive,
                detail: "License key is no longer active.".into(),
                status: 404,
                remaining_usages: None,
                at: denied_at,
                signed: None,
                verified: None,
            });
        },
    );
    assert!(!app.check(DEMO_KEY).is_licensed());

    let err = app.lease_install(&response).unwrap_err();
    assert_eq!(err.reason(), Reason::Replayed, "{err:?}");
    assert!(err.detail().contains("denial"), "{err:?}");
    let status = app.status(DEMO_KEY).unwrap();
    assert_eq!(status.standing, Standing::Denied, "{status:?}");
    assert!(!app.check(DEMO_KEY).is_licensed());
}

/// Issue #53: a replay while the cache still licenses on its own (no denial, the clock right,
/// the lease running) is answered by the cache, the report's fallback naming the replay: a
/// relay instance behind another locks no one out, and the replay gains nothing.
#[test]
fn a_replay_while_the_cache_licenses_is_answered_by_the_cache() {
    let w = world();
    let tape = Tape::default();
    let app = recorded_and_checked(&w, &tape);
    let window = |app: &Licensing| record(app).lease_gate.window().cloned();
    let lease = window(&app);
    tape.replay.store(true, Ordering::SeqCst);
    w.clock.advance(2 * 3600);
    let report = app.check_report(DEMO_KEY);
    assert!(from_cache(&report.outcome).is_some(), "{report:?}");
    assert_eq!(
        report.fallback.as_ref().map(|e| e.reason()),
        Some(Reason::Replayed),
        "{report:?}"
    );
    assert_eq!(window(&app), lease, "the lease is not renewed by a replay");
}

/// Issue #53: in signed mode a verdict is dated from its lease's issue time, never from the
/// unsigned `Date`. The proxy writes a `Date` three days behind the clock on a fresh grant
/// (before, the local clock "ahead" of it was re-anchored there, dating the verdict back and
/// pulling `latest_seen` with it); the verdict is the lease's `iat`, and the record's clock
/// does not move back.
#[test]
fn a_signed_verdict_is_dated_from_its_lease_not_the_unsigned_date() {
    let w = world();
    let tape = Tape::default();
    let app = recorded_app(&w, &tape);
    w.activate(&app);
    w.clock.advance(2 * 3600);
    let now = w.clock.now();
    *tape.date.lock().unwrap() = Some(now - 3 * DAY);
    let online = app.check(DEMO_KEY);
    assert_eq!(online.source(), Some(Source::Online), "{online:?}");
    assert_eq!(online.verified_at(), Some(now), "{online:?}");
    let CacheState::Present(record) = app.status(DEMO_KEY).unwrap().state else {
        panic!("a record")
    };
    assert_eq!(record.good.as_ref().map(|g| g.verified_at), Some(now));
    assert_eq!(record.latest_seen, now);
}

/// The usages left of a key with a usage limit: the license's count as the check read it.
fn usages_left(outcome: &polar_license::CheckOutcome) -> Option<i64> {
    outcome
        .license()
        .and_then(|l| l.license_key.remaining_usage())
}

/// Contract §5, only signed facts decide: the usage count a metered feature reads is the one
/// the lease signed. The demo key has spent all 3 of its usages; the attacker re-seals the
/// record with none spent and keeps Polar unreachable. The signed app licenses nothing from
/// that record (its lease was signed for another count), where the honest record licensed with
/// its true count a moment before; an app without relay keys is fooled (today's ceiling).
#[test]
fn a_record_re_sealed_with_another_usage_count_licenses_nothing_in_signed_mode() {
    let seed = polar_license_testkit::demo_usage_spent(3);
    let w = World::with_seed("signed-usage", seed).signed();
    let signed = signed_and_activated(&w);
    let online = signed.check(DEMO_KEY);
    assert_eq!(usages_left(&online), Some(0), "{online:?}");
    w.offline();
    w.clock.advance(DAY);
    let honest = signed.check(DEMO_KEY);
    assert!(from_cache(&honest).is_some(), "{honest:?}");
    assert_eq!(usages_left(&honest), Some(0), "{honest:?}");

    w.forge(|r| {
        let good = r.good.as_mut().unwrap();
        good.license.license_key.usage = 0;
    });
    let forged = signed.check(DEMO_KEY);
    assert!(!forged.is_licensed(), "{forged:?}");
    assert_eq!(forged.reason(), Some(Reason::Offline), "{forged:?}");
    let unsigned = w.app(RelayKeys::new());
    let fooled = unsigned.check(DEMO_KEY);
    assert!(from_cache(&fooled).is_some(), "{fooled:?}");
    assert_eq!(usages_left(&fooled), Some(3), "{fooled:?}");
}
