//! Issue #76 finding 2, the Rust face: a `SeatGuard` (`BlockingClient::hold_seat`) holds its
//! seat only while the relay says so. Through real parts: the relay's hyper server on loopback
//! (`rig::listen`), a proxy in front of it that starts dropping every connection (the relay out
//! of reach), and a loopback server that answers a seat request with a forged `200`.

mod rig;

use std::time::{Duration, Instant};

use polar_license::lease::{key_hash, SeatClaims, SigningKey};
use polar_license::seat::SeatAnswer;
use polar_license::seat_hold::{HoldState, HoldTerms};
use polar_license::{system_clock_ms, Key, Reason};
use polar_license_emulator::{DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::{Relay, SeatOptions, ServeOptions};
use polar_license_testkit::{http, lease_proxy};

/// The seat's life on the relay (a test's only: `with_test_only_seat_seconds`): the guard
/// beats every 1.33 s.
const LIFE: u32 = 4;

/// The relay out of reach (a proxy that closes every connection from some point on): the
/// guard says `held` until the seat's signed lease ends and `lost` from then on (with
/// `seat_lost`), never `held` after it; the relay, which culls the seat at the same end,
/// gives it to another machine only once this one no longer says `held`. Before, the guard
/// said `held` for ever.
#[test]
fn a_guard_whose_relay_stops_answering_is_lost_at_the_leases_end() {
    let polar = rig::emulator();
    let k = rig::add_key(&polar, "GUARD-LOST-4A5B6C".into(), Some(1));
    let signer = SigningKey::generate(Some("guard")).expect("a key");
    let terms = HoldTerms::new(signer.relay_keys(), DEMO_ORGANIZATION_ID).expect("terms");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.store = rig::store(
        rig::memory(1_000),
        polar_license_relay::store::StoreOptions::default(),
        None,
    );
    let relay: Relay = rig::relay(config, rig::upstream(Duration::from_secs(10))).into();
    let relay = relay
        .with_seats(SeatOptions::default())
        .and_then(|r| r.with_test_only_seat_seconds(LIFE))
        .expect("seats of 4 s");
    let served = rig::listen(relay, ServeOptions::default());
    let proxy = lease_proxy::proxy(&served.url(), b"", b"");
    let through = rig::client(&proxy.url, Duration::from_secs(2));
    let direct = rig::client(&served.url(), Duration::from_secs(5));

    let guard = through
        .hold_seat(&terms, Key::new(k.clone()), "machine-A", false)
        .expect("an answer")
        .expect("the seat");
    assert_eq!(guard.state(), HoldState::Held);
    let end_ms = u64::try_from(guard.seat().expires_at).expect("a time") * 1_000;
    std::thread::sleep(Duration::from_millis(500));
    proxy.set(lease_proxy::DOWN);
    // Held while the lease runs, the relay unreachable.
    let mut last_held = 0;
    let lost_at = loop {
        let now = system_clock_ms();
        match guard.state() {
            HoldState::Held => {
                assert!(
                    now < end_ms,
                    "held {} ms past the lease's end",
                    now - end_ms
                );
                last_held = now;
            }
            HoldState::Lost => break now,
            other => panic!("{other:?}"),
        }
        assert!(now < end_ms + 5_000, "never lost");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        last_held + 1_500 >= end_ms && lost_at >= end_ms,
        "held until the end ({last_held} .. {lost_at}, the end {end_ms})"
    );
    let why = guard.lost().expect("why");
    assert_eq!(why.reason(), Reason::SeatLost);
    assert!(why.to_string().contains("offline"), "{why}");
    // The relay gives the seat away once its life ended; this machine no longer holds it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        match direct.hold_seat(&terms, Key::new(k.clone()), "machine-B", false) {
            Ok(Ok(b)) => break b,
            Ok(Err(SeatAnswer::Full { .. })) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => panic!("machine-B: {other:?}"),
        }
    };
    assert_ne!(guard.state(), HoldState::Held, "two machines on one seat");
    assert_eq!(b.state(), HoldState::Held);
    b.release().expect("released");
    drop(guard);
}

/// A `200` forged by no relay at all (a loopback server answering every request with a seat)
/// holds nothing: no lease, or a lease signed by another key under the relay's kid, is
/// `protocol_error` and no guard; a client without relay keys cannot even make the terms
/// (`invalid_input`, `relay_keys`). Before, the bare 200 was a seat.
#[test]
fn a_forged_200_is_no_seat() {
    const SEAT: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let k = Key::new("GUARD-FORGED-4A5B6C");
    let relay_key = SigningKey::generate(Some("relay")).expect("a key");
    let terms = HoldTerms::new(relay_key.relay_keys(), DEMO_ORGANIZATION_ID).expect("terms");
    let forger = SigningKey::generate(Some("relay")).expect("another key, the same kid");
    let now = i64::try_from(system_clock_ms() / 1_000).expect("a time");
    let lease = forger
        .sign_seat(
            &SeatClaims {
                organization_id: DEMO_ORGANIZATION_ID.into(),
                key_sha256: key_hash(&k),
                seat: SEAT.into(),
                kind: "floating".into(),
                issued_at: now,
                expires_at: now + 300,
                size: 1,
                borrowed: false,
            },
            "machine-A",
        )
        .expect("signed");
    let body = format!(
        r#"{{"seat":"{SEAT}","kind":"floating","expires_at":"2099-01-15T08:00:00Z","expires_in":300,"in_use":1,"size":1}}"#
    );
    for (why, headers) in [
        ("no lease", vec![]),
        (
            "another key's lease",
            vec![("polar-license-seat", lease.as_str())],
        ),
    ] {
        let (url, asked) = http::fixed_answer(200, &headers, &body);
        let client = rig::client(&url, Duration::from_secs(5));
        match client.hold_seat(&terms, k.clone(), "machine-A", false) {
            Err(e) => {
                assert_eq!(e.reason(), Reason::ProtocolError, "{why}: {e}");
                assert!(e.to_string().contains("no lease"), "{why}: {e}");
            }
            Ok(other) => panic!("{why}: a forged 200 held {other:?}"),
        }
        // The acquisition, and the release of the seat it named.
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2, "{why}");
    }
    let no_keys = HoldTerms::new(polar_license::lease::RelayKeys::new(), DEMO_ORGANIZATION_ID)
        .expect_err("no terms without keys");
    assert_eq!(
        (no_keys.reason(), no_keys.field()),
        (Reason::InvalidInput, Some("relay_keys"))
    );
}
