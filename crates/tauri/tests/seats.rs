//! Issue #76 finding 2 through the plugin's seat commands on the mock runtime: a seat is held
//! only while the relay says so.
//!
//! - The relay out of reach (a proxy in front of the relay in process that starts dropping
//!   every connection): the plugin's heartbeat thread, driven by the core's machine, retries
//!   within the lease and ends the hold at the lease's end, emitting
//!   `polar-license://seat-ended` with `seat_lost` (not before the end, and not long after
//!   it); `seat_heartbeat` then answers `seat_lost` (`gone`). Before, the seat stayed held for
//!   ever.
//! - A `200` forged by a loopback server with no relay behind it (no lease, or a lease signed
//!   by another key under the relay's kid) holds no seat (`protocol_error`; the seat it named
//!   given back); a plugin without relay keys holds none (`invalid_input`, `relay_keys`) and
//!   sends nothing.

use polar_license::lease::SigningKey;
use polar_license::{system_clock_ms, AccessToken, Key, MachineBinding, Server, UreqTransport};
use polar_license_emulator::{Emulator, Options as EmulatorOptions, Seed, SeedKey, DEMO_TOKEN};
use polar_license_relay::store::{MemoryBackend, StoreOptions};
use polar_license_relay::{serve, Relay, RelayConfig, SeatOptions, StoreConfig};
use polar_license_tauri::{Options, SeatEnded, SeatError, SeatInfo, SEAT_ENDED_EVENT};
use polar_license_testkit::{forged_seat_lease, http, lease_proxy, ScratchDir};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tauri::Listener;

use crate::common;

/// The seat's life at the relay (a test's only: `with_test_only_seat_seconds`): the plugin's
/// thread beats every 1.33 s, and a relay out of reach ends the hold 4 s after the last answer.
const LIFE: u32 = 4;

/// The plugin's options: its base URL `url`, its cache in `dir`, the relay's `keys` (none:
/// unsigned, no seat).
fn options(
    url: String,
    dir: &ScratchDir,
    keys: Option<polar_license::lease::RelayKeys>,
) -> Options {
    Options::default()
        .base_url(url)
        .cache_dir(dir.path())
        .configure(move |builder| {
            let builder = builder
                .machine_binding(MachineBinding::Id("machine-A".into()))
                .timeout(Duration::from_secs(2));
            match keys {
                Some(keys) => builder.relay_keys(keys),
                None => builder,
            }
        })
}

fn seat_error(answer: Result<Value, Value>) -> SeatError {
    serde_json::from_value(answer.expect_err("a rejection")).expect("a SeatError")
}

#[test]
fn a_seat_whose_relay_stops_answering_is_lost_at_its_leases_end_and_the_guest_is_told() {
    let key = "SEAT-LOST-TAURI-4A5B";
    let mut seed = Seed::demo();
    seed.license_keys.push(SeedKey {
        limit_activations: Some(1),
        ..SeedKey::new(key)
    });
    let polar = Emulator::start(seed, EmulatorOptions::default()).expect("the emulator");
    let signer = SigningKey::generate(Some("tauri-seats")).expect("a key");
    let keys = signer.relay_keys();
    let mut config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    config.store = Some(StoreConfig {
        backend: Arc::new(MemoryBackend::new(1024)),
        options: StoreOptions::default(),
        webhook_secret: None,
    });
    let transport = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = Relay::new(config, Box::new(transport))
        .expect("the relay")
        .with_seats(SeatOptions::default())
        .and_then(|r| r.with_test_only_seat_seconds(LIFE))
        .expect("seats of 4 s");
    let running = serve(Arc::new(relay), "127.0.0.1:0").expect("the relay listens");
    let proxy = lease_proxy::proxy(&running.url(), b"", b"");
    let dir = ScratchDir::new("tauri-seat-lost");
    let (app, webview) = common::app_with_window(
        polar.organization_id(),
        options(proxy.url.clone(), &dir, Some(keys)),
        &["polar-license:default"],
    );
    let (tx, ended) = mpsc::channel();
    app.listen_any(SEAT_ENDED_EVENT, move |event| {
        let _ = tx.send((system_clock_ms(), event.payload().to_string()));
    });

    let held: SeatInfo = serde_json::from_value(
        common::invoke(
            &webview,
            "seat_acquire",
            json!({ "key": key, "machine": "machine-A" }),
        )
        .expect("a seat"),
    )
    .expect("a SeatInfo");
    let end = held.ends_at_ms;
    assert!(
        end <= system_clock_ms() + u64::from(LIFE) * 1_000,
        "{held:?}"
    );
    // The plugin's thread heartbeats by itself: a second past the first lease's end (no
    // command sent meanwhile) the seat is still held, its end moved on, and nothing was told.
    std::thread::sleep(Duration::from_millis(
        end.saturating_sub(system_clock_ms()) + 1_000,
    ));
    assert!(
        ended.try_recv().is_err(),
        "the hold ended while the relay answered"
    );
    let beat: SeatInfo = serde_json::from_value(
        common::invoke(&webview, "seat_heartbeat", json!({ "seat": held.id })).expect("held"),
    )
    .expect("a SeatInfo");
    assert!(beat.ends_at_ms > end, "{beat:?} after {held:?}");
    let end = beat.ends_at_ms;
    proxy.set(lease_proxy::DOWN);

    // Nothing until a second before the end: the plugin's thread retries within the lease.
    let quiet = end.saturating_sub(system_clock_ms() + 1_000);
    match ended.recv_timeout(Duration::from_millis(quiet)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("the hold ended before its lease did: {other:?}"),
    }
    let (at, payload) = ended
        .recv_timeout(Duration::from_secs(6))
        .expect("seat-ended at the lease's end");
    assert!(at >= end, "told {} ms before the end", end - at);
    assert!(at < end + 1_500, "told {} ms after the end", at - end);
    let told: SeatEnded = serde_json::from_str(&payload).expect("a SeatEnded");
    assert_eq!(
        (told.seat.as_str(), told.state.as_str()),
        (held.id.as_str(), "lost")
    );
    assert_eq!(told.error.error.code, "seat_lost", "{told:?}");
    assert!(told.error.gone, "{told:?}");
    assert_eq!(
        ended.recv_timeout(Duration::from_millis(500)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "told once"
    );
    // The command says so too, and the plugin forgets the seat.
    let lost = seat_error(common::invoke(
        &webview,
        "seat_heartbeat",
        json!({ "seat": held.id }),
    ));
    assert_eq!(lost.error.code, "seat_lost", "{lost:?}");
    assert!(lost.gone);
}

#[test]
fn a_forged_200_holds_no_seat_and_no_relay_keys_hold_none() {
    const SEAT: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let org = polar_license_emulator::DEMO_ORGANIZATION_ID;
    let k = Key::new("SEAT-FORGED-TAURI-4A5B");
    let relay_key = SigningKey::generate(Some("relay")).expect("a key");
    // Another key under the same kid.
    let lease = forged_seat_lease("relay", k.expose(), (SEAT, "floating"), "machine-A");
    let body = format!(
        r#"{{"seat":"{SEAT}","kind":"floating","expires_at":"2099-01-15T08:00:00Z","expires_in":300,"in_use":1,"size":1}}"#
    );
    let dir = ScratchDir::new("tauri-seat-forged");
    for (why, headers) in [
        ("no lease", vec![]),
        (
            "another key's lease",
            vec![("polar-license-seat", lease.as_str())],
        ),
    ] {
        let (url, asked) = http::fixed_answer(200, &headers, &body);
        let (_app, webview) = common::app_with_window(
            org,
            options(url, &dir, Some(relay_key.relay_keys())),
            &["polar-license:default"],
        );
        let e = seat_error(common::invoke(
            &webview,
            "seat_acquire",
            json!({ "key": k.expose(), "machine": "machine-A" }),
        ));
        assert_eq!(e.error.code, "protocol_error", "{why}: {e:?}");
        assert!(e.error.detail.contains("no lease"), "{why}: {e:?}");
        // The acquisition, and the release of the seat it named.
        assert_eq!(asked.load(Ordering::SeqCst), 2, "{why}");
    }
    let (url, asked) = http::fixed_answer(200, &[], &body);
    let (_app, webview) =
        common::app_with_window(org, options(url, &dir, None), &["polar-license:default"]);
    let e = seat_error(common::invoke(
        &webview,
        "seat_acquire",
        json!({ "key": k.expose(), "machine": "machine-A" }),
    ));
    assert_eq!(
        (e.error.code.as_str(), e.error.field.as_deref()),
        ("invalid_input", Some("relay_keys")),
        "{e:?}"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "nothing sent without relay keys"
    );
}
