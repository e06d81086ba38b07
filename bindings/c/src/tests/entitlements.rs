//! Entitlement values through the C ABI (issue #68 item 2, docs/entitlements.md): the
//! emulator seeded with a Feature Flag benefit, the native relay in front of it signing the
//! key's values into its leases (`--sign-entitlements`, in process over loopback), and
//! `polar_license_result_entitlement` with its typed accessors on the result of a check in
//! signed mode; then a check in unsigned mode, where no value is known.
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, client_of, demo_config, text};
use crate::*;
use polar_license::lease::SigningKey;
use polar_license::proto::Server;
use polar_license::{AccessToken, UreqTransport};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_TOKEN};
use polar_license_relay::store::{MemoryBackend, StoreOptions};
use polar_license_relay::{
    serve_with, Limits, Rate, Relay, RelayConfig, Running, ServeOptions, StoreConfig,
};
use polar_license_testkit::ids::{CUSTOMER, LICENSE, PRO, SUBSCRIPTION};
use polar_license_testkit::lease_proxy::{proxy, ALTER, DOWN};
use polar_license_testkit::{feature_flag, subscribed_key, ScratchDir};
use serde_json::json;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.benefits.push(feature_flag(
        PRO,
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true}),
    ));
    seed.license_keys
        .push(subscribed_key(KEY, LICENSE, CUSTOMER, SUBSCRIPTION, &[PRO]));
    seed
}

/// The native relay in front of `polar` with a memory store and entitlements on; its public
/// key pair.
fn relay(polar: &Emulator) -> (Running, String) {
    let signer = SigningKey::generate(Some("c-ent")).expect("a key");
    let pair = signer.public_pair();
    let mut config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    config.limits = Limits {
        per_ip: Rate::new(0, 0),
        per_key: Rate::new(0, 0),
        ..Limits::default()
    };
    let mut options = StoreOptions::default();
    options.entitlements = true;
    options.reconcile_every = 0;
    options.roster = false;
    config.store = Some(StoreConfig {
        backend: Arc::new(MemoryBackend::new(100)),
        options,
        webhook_secret: None,
    });
    let upstream = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = Relay::new(config, Box::new(upstream)).expect("the relay");
    let running =
        serve_with(Arc::new(relay), "127.0.0.1:0", ServeOptions::default()).expect("it listens");
    (running, pair)
}

/// A client at `url` caching in `dir`, every check online, signed mode with `pair` if given.
fn client(url: &str, dir: &ScratchDir, pair: Option<&str>) -> super::Client {
    let config = demo_config(url, dir.path());
    assert_eq!(
        polar_license_config_set_grace_policy(config, 0, 7 * 86_400, 600),
        polar_license_status::Ok
    );
    assert_eq!(
        polar_license_config_set_machine_binding(config, false),
        polar_license_status::Ok
    );
    if let Some(pair) = pair {
        assert_eq!(
            polar_license_config_set_relay_keys(config, c(pair).as_ptr()),
            polar_license_status::Ok
        );
    }
    client_of(config)
}

/// A check of KEY: the result (the caller frees it), asserted licensed.
fn check(client: &super::Client) -> *mut polar_license_result {
    let mut result = ptr::null_mut();
    let status = polar_license_client_check(client.0, c(KEY).as_ptr(), &mut result);
    assert_eq!(status, polar_license_status::Ok);
    assert!(polar_license_result_is_licensed(result));
    result
}

#[test]
fn signed_values_are_read_typed_and_unsigned_mode_knows_none() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, pair) = relay(&polar);
    let dir = ScratchDir::new("c-entitlements");
    let app = client(&relay.url(), &dir, Some(&pair));

    // The first lease may go without the values (the relay reads the customer after it).
    let start = Instant::now();
    let result = loop {
        let result = check(&app);
        let kind = polar_license_result_entitlement(result, c("role").as_ptr());
        if kind != polar_license_entitlement::Unknown {
            break result;
        }
        polar_license_result_free(result);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no values in 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let name = |n: &str| c(n);
    let kind = |n: &str| polar_license_result_entitlement(result, name(n).as_ptr());
    assert_eq!(kind("role"), polar_license_entitlement::String);
    assert_eq!(kind("max_upload_size"), polar_license_entitlement::Int);
    assert_eq!(kind("ratio"), polar_license_entitlement::Float);
    assert_eq!(kind("beta"), polar_license_entitlement::Bool);
    assert_eq!(kind("seats"), polar_license_entitlement::Absent);
    assert_eq!(
        text(polar_license_result_entitlement_string(
            result,
            name("role").as_ptr()
        )),
        "editor"
    );
    let mut int = -7i64;
    assert!(polar_license_result_entitlement_int(
        result,
        name("max_upload_size").as_ptr(),
        &mut int
    ));
    assert_eq!(int, 10);
    let mut float = 0.0f64;
    assert!(polar_license_result_entitlement_float(
        result,
        name("ratio").as_ptr(),
        &mut float
    ));
    assert_eq!(float, 1.5);
    let mut flag = false;
    assert!(polar_license_result_entitlement_bool(
        result,
        name("beta").as_ptr(),
        &mut flag
    ));
    assert!(flag);
    // The wrong accessor for a kind, an absent name, NULLs: false or "", nothing written.
    let mut untouched = -7i64;
    assert!(!polar_license_result_entitlement_int(
        result,
        name("role").as_ptr(),
        &mut untouched
    ));
    assert!(!polar_license_result_entitlement_int(
        result,
        name("ratio").as_ptr(),
        &mut untouched
    ));
    assert!(!polar_license_result_entitlement_int(
        result,
        name("seats").as_ptr(),
        &mut untouched
    ));
    assert_eq!(untouched, -7);
    assert!(!polar_license_result_entitlement_int(
        result,
        name("max_upload_size").as_ptr(),
        ptr::null_mut()
    ));
    assert_eq!(
        text(polar_license_result_entitlement_string(
            result,
            name("max_upload_size").as_ptr()
        )),
        ""
    );
    assert_eq!(
        polar_license_result_entitlement(result, ptr::null()),
        polar_license_entitlement::Unknown
    );
    assert_eq!(
        polar_license_result_entitlement(ptr::null(), name("role").as_ptr()),
        polar_license_entitlement::Unknown
    );
    let bad_utf8 = [0xffu8, 0];
    assert_eq!(
        polar_license_result_entitlement(result, bad_utf8.as_ptr().cast()),
        polar_license_entitlement::Unknown
    );
    polar_license_result_free(result);

    // Unsigned mode, straight at the emulator: licensed, and no value known.
    let dir = ScratchDir::new("c-entitlements-unsigned");
    let plain = client(&polar.url(), &dir, None);
    let result = check(&plain);
    assert_eq!(
        polar_license_result_entitlement(result, c("role").as_ptr()),
        polar_license_entitlement::Unknown
    );
    let mut int = -7i64;
    assert!(!polar_license_result_entitlement_int(
        result,
        c("max_upload_size").as_ptr(),
        &mut int
    ));
    assert_eq!(int, -7);
    polar_license_result_free(result);
    drop(relay);
}

/// KEY's `max_upload_size` in `result`, if it has one (an `Int`).
fn max_upload_size(result: *const polar_license_result) -> Option<i64> {
    let mut int = -7i64;
    polar_license_result_entitlement_int(result, c("max_upload_size").as_ptr(), &mut int)
        .then_some(int)
}

/// `client`'s check answered from its cache, with the value of the lease it verified.
#[track_caller]
fn cached_values(client: &super::Client) {
    let result = check(client);
    assert_eq!(
        polar_license_result_source(result),
        polar_license_source::Cache
    );
    assert_eq!(max_upload_size(result), Some(10));
    polar_license_result_free(result);
}

/// Issue #68: the signed lease with values verifies offline (the relay unreachable, the lease
/// kept in the cache licenses with its values), and a lease whose values were altered on the
/// way (`10` made `90` inside its signed payload) is refused, no altered value read.
#[test]
fn the_signed_lease_verifies_offline_and_a_lease_with_altered_values_is_refused() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, pair) = relay(&polar);
    let proxy = proxy(
        &relay.url(),
        b"\"max_upload_size\":10",
        b"\"max_upload_size\":90",
    );
    let dir = ScratchDir::new("c-entitlements-offline");
    let app = client(&proxy.url, &dir, Some(&pair));
    // Through the proxy passing answers as they came: online, with the values.
    let start = Instant::now();
    loop {
        let result = check(&app);
        let value = max_upload_size(result);
        let source = polar_license_result_source(result);
        polar_license_result_free(result);
        if value.is_some() {
            assert_eq!((value, source), (Some(10), polar_license_source::Online));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no values");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Offline: the cached lease verifies with the relay's public key alone.
    proxy.set(DOWN);
    cached_values(&app);

    // Altered: a client with nothing cached is refused (not the relay's answer), no value.
    proxy.set(ALTER);
    let fresh_dir = ScratchDir::new("c-entitlements-altered");
    let fresh = client(&proxy.url, &fresh_dir, Some(&pair));
    for _ in 0..2 {
        let mut result = ptr::null_mut();
        let status = polar_license_client_check(fresh.0, c(KEY).as_ptr(), &mut result);
        assert_eq!(status, polar_license_status::Ok);
        assert!(
            !polar_license_result_is_licensed(result),
            "a lease that does not verify licensed"
        );
        assert_eq!(
            polar_license_result_reason(result),
            polar_license_reason::ProtocolError
        );
        assert_eq!(max_upload_size(result), None, "an altered value was read");
        polar_license_result_free(result);
    }
    // The client holding the earlier lease: from its cache, the values it verified then.
    cached_values(&app);
    assert!(proxy.edited() >= 3, "the proxy altered the leases");
}
