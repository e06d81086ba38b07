//! Issue #76 finding 2, the Rust face: a `SeatGuard` (`BlockingClient::hold_seat`) holds its
//! seat only while the relay says so. Through real parts: the relay's hyper server on loopback
//! (`rig::listen`), a proxy in front of it that starts dropping every connection (the relay out
//! of reach), and a loopback server that answers a seat request with a forged `200`.

mod rig;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use polar_license::lease::SigningKey;
use polar_license::seat::SeatAnswer;
use polar_license::seat_hold::{HoldPoll, HoldState, HoldTerms};
use polar_license::{system_clock_ms, Beating, Key, Reason};
use polar_license_emulator::{DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::{Relay, SeatOptions, ServeOptions};
use polar_license_testkit::{forged_seat_lease, http, lease_proxy};

/// The seat's life on the relay (a test's only: `with_test_only_seat_seconds`): the guard
/// beats every 1.33 s.
const LIFE: u32 = 4;

/// A relay of seats of [`LIFE`] seconds in front of an emulator, and a proxy in front of it.
struct Seats {
    polar: polar_license_emulator::Emulator,
    terms: HoldTerms,
    served: polar_license_relay::Running,
    proxy: lease_proxy::Proxy,
}

impl Seats {
    fn new() -> Seats {
        let polar = rig::emulator();
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
        Seats {
            polar,
            terms,
            served,
            proxy,
        }
    }
}

/// The relay out of reach (a proxy that closes every connection from some point on): the
/// guard says `held` until the seat's signed lease ends and `lost` from then on (with
/// `seat_lost`), never `held` after it; the relay, which culls the seat at the same end,
/// gives it to another machine only once this one no longer says `held`. Before, the guard
/// said `held` for ever.
#[test]
fn a_guard_whose_relay_stops_answering_is_lost_at_the_leases_end() {
    let seats = Seats::new();
    let (polar, terms, served, proxy) = (&seats.polar, &seats.terms, &seats.served, &seats.proxy);
    let k = rig::add_key(polar, "GUARD-LOST-4A5B6C".into(), Some(1));
    let through = rig::client(&proxy.url, Duration::from_secs(2));
    let direct = rig::client(&served.url(), Duration::from_secs(5));

    let guard = through
        .hold_seat(terms, Key::new(k.clone()), "machine-A", false)
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
        match direct.hold_seat(terms, Key::new(k.clone()), "machine-B", false) {
            Ok(Ok(b)) => break b,
            Ok(Err(SeatAnswer::Full(_))) if Instant::now() < deadline => {
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
    // Another key under the same kid.
    let lease = forged_seat_lease("relay", k.expose(), (SEAT, "floating"), "machine-A");
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

/// A watched hold (`Beating::watched`, the Tauri plugin's seats): the relay out of reach, its
/// thread tells the owner once, at the lease's end and not before; a hold its owner stopped is
/// never told, its lease ending all the same. Before, the plugin ran a heartbeat loop of its own.
#[test]
fn a_watched_hold_tells_its_owner_once_at_its_end_and_never_once_stopped() {
    let seats = Seats::new();
    let through = rig::client(&seats.proxy.url, Duration::from_secs(2));
    let watch = |name: &str| {
        let k = rig::add_key(&seats.polar, name.into(), Some(1));
        let hold = through
            .acquire_hold(&seats.terms, Key::new(k), "machine-A".into(), false)
            .expect("an answer")
            .expect("the seat");
        let end_ms = hold.ends_at_ms();
        let (told, heard) = mpsc::channel();
        let beating = Beating::watched(&through, hold, move || {
            let _ = told.send(system_clock_ms());
        })
        .expect("a thread");
        (beating, heard, end_ms)
    };
    let (kept, heard, _) = watch("WATCHED-KEPT-4A5B6C");
    let (mut stopped, unheard, stopped_end) = watch("WATCHED-STOP-4A5B6C");
    stopped.stop(true);
    // A heartbeat renewed the kept seat before the relay goes out of reach.
    std::thread::sleep(Duration::from_millis(1_800));
    let end_ms = kept.with(|b| b.hold().ends_at_ms());
    assert!(
        end_ms > stopped_end,
        "renewed: {end_ms} after {stopped_end}"
    );
    seats.proxy.set(lease_proxy::DOWN);
    let wait = end_ms.saturating_sub(system_clock_ms()) + 3_000;
    let at = heard
        .recv_timeout(Duration::from_millis(wait))
        .expect("told at the lease's end");
    assert!(at >= end_ms, "told {} ms before the end", end_ms - at);
    assert!(at < end_ms + 1_500, "told {} ms after the end", at - end_ms);
    assert_eq!(kept.with(|b| b.hold().state()), HoldState::Lost);
    assert!(
        heard.recv_timeout(Duration::from_millis(300)).is_err(),
        "told once"
    );
    assert!(unheard.try_recv().is_err(), "a stopped hold told");
}

/// A watched hold the app heartbeats itself (`Beating::with`, as the Tauri plugin's
/// `seat_heartbeat` does) and then wakes (`Beating::wake`): the thread asks the machine again
/// at once, so a heartbeat that found the seat gone ends the hold and tells the owner within
/// a moment, not at the thread's next planned heartbeat (a third of the life later).
#[test]
fn a_watched_hold_woken_after_the_apps_own_heartbeat_asks_its_machine_again_at_once() {
    let seats = Seats::new();
    let client = rig::client(&seats.served.url(), Duration::from_secs(2));
    let k = rig::add_key(&seats.polar, "WATCHED-WAKE-4A5B6C".into(), Some(1));
    let hold = client
        .acquire_hold(&seats.terms, Key::new(k), "machine-A".into(), false)
        .expect("an answer")
        .expect("the seat");
    let (told, heard) = mpsc::channel();
    let beating = Beating::watched(&client, hold, move || {
        let _ = told.send(Instant::now());
    })
    .expect("a thread");
    // The relay frees the seat behind the hold's back.
    let release = beating.with(|b| b.hold().release_ask()).expect("a release");
    assert!(matches!(
        client.seat(&release),
        Ok(SeatAnswer::Released(true))
    ));
    // The app's own heartbeat: the relay says the seat is gone.
    let polled = beating.with(|b| b.hold_mut().heartbeat_now(system_clock_ms()));
    let HoldPoll::Send(ask) = polled else {
        panic!("a heartbeat to send: {polled:?}")
    };
    let answer = client.seat(&ask);
    let state = beating.with(|b| b.hold_mut().heartbeat_answered(system_clock_ms(), &answer));
    assert_eq!(state.expect("an answer"), HoldState::Gone);
    let woken = Instant::now();
    beating.wake();
    let at = heard
        .recv_timeout(Duration::from_secs(3))
        .expect("told the hold ended");
    assert!(
        at - woken < Duration::from_millis(500),
        "told {:?} after the wake",
        at - woken
    );
}
