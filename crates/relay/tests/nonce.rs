//! Issue #53, the relay's half of signed mode's freshness (contract §5): a client's
//! `polar-license-nonce` is signed, unchanged, into the lease of the answer to that request,
//! whoever answers it (Polar now, or the store); a header that is not a nonce is signed into
//! nothing; a browser may send it (CORS). Over loopback HTTP against the emulator.

mod rig;

use polar_license::lease::{self, RelayKeys, SigningKey, NONCE_HEADER};
use polar_license::Key;
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Running, ServeOptions};
use std::time::Duration;

/// A relay in front of a fresh emulator, with a store (or none), signing with a key whose
/// public half is returned; and a key of the emulator's.
fn relay(stored: bool) -> (polar_license_emulator::Emulator, Running, RelayKeys, String) {
    let polar = rig::webhook_emulator();
    let key = rig::add_key(&polar, "NONCE-KEY-4A5B6C".to_string(), Some(3));
    let signer = SigningKey::generate(Some("nonce-test")).expect("a key");
    let keys = signer.relay_keys();
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    if stored {
        config.store = rig::store(rig::memory(100), StoreOptions::default(), None);
    }
    let upstream = rig::upstream(Duration::from_secs(5));
    let running = rig::listen(rig::relay(config, upstream), ServeOptions::default());
    (polar, running, keys, key)
}

/// A validate of `key` with these headers: its source and its lease's `nonce` claim (the
/// lease verified with `keys`).
fn nonce_of(
    relay: &Running,
    keys: &RelayKeys,
    key: &str,
    headers: &[(&str, &str)],
) -> (Option<String>, Option<String>) {
    let answer = rig::validate_at(
        &rig::agent(Duration::from_secs(30)),
        &relay.url(),
        key,
        headers,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer.lease.expect("a lease on a grant");
    let key = Key::new(key);
    let expect = rig::expect_lease(&key, None, None);
    let lease = lease::verify_signed(&token, keys, &expect).expect("the lease verifies");
    (answer.source, lease.claims.nonce)
}

#[test]
fn each_request_s_nonce_is_signed_into_its_own_lease_from_polar_and_from_the_store() {
    let (_polar, relay, keys, key) = relay(true);
    let first = "AAAAAAAAAAAAAAAAAAAAAA";
    let second = "b-_9Zz0123456789abcdefABCDEF";
    let (source, nonce) = nonce_of(&relay, &keys, &key, &[(NONCE_HEADER, first)]);
    assert_eq!(
        (source.as_deref(), nonce.as_deref()),
        (Some("polar"), Some(first))
    );
    // The store answers the next one: with the nonce of that request, not the first's.
    let (source, nonce) = nonce_of(&relay, &keys, &key, &[(NONCE_HEADER, second)]);
    assert_eq!(
        (source.as_deref(), nonce.as_deref()),
        (Some("store"), Some(second))
    );
    // No header (an older client): no claim, so that client still reads the lease.
    let (_, nonce) = nonce_of(&relay, &keys, &key, &[]);
    assert_eq!(nonce, None);
}

#[test]
fn a_header_that_is_not_a_nonce_is_signed_into_nothing() {
    let (_polar, relay, keys, key) = relay(false);
    let long = "A".repeat(87);
    for hostile in [
        "short",
        "AAAAAAAAAAAAAAAAAAAAA=",
        "AAAAAAAAAAAAAAAAAAAAAA\"",
        "AAAAAAAAAAAA AAAAAAAAAA",
        long.as_str(),
    ] {
        let (_, nonce) = nonce_of(&relay, &keys, &key, &[(NONCE_HEADER, hostile)]);
        assert_eq!(nonce, None, "{hostile:?}");
    }
    let longest = "A".repeat(86);
    let (_, nonce) = nonce_of(&relay, &keys, &key, &[(NONCE_HEADER, &longest)]);
    assert_eq!(nonce.as_deref(), Some(longest.as_str()));
}

#[test]
fn a_browser_may_send_the_nonce() {
    let (_polar, relay, _keys, _key) = relay(false);
    let answer = rig::agent(Duration::from_secs(10))
        .options(format!(
            "{}/v1/customer-portal/license-keys/validate",
            relay.url()
        ))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, polar-license-nonce",
        )
        .call()
        .expect("a preflight answer");
    let allowed = rig::header_of(&answer, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("polar-license-nonce"), "{allowed}");
}
