//! The store's byte cap (issue #62): no stream of requests (new keys, new `conditions` for one
//! key) grows the relay's store past `StoreOptions::max_bytes`. Over loopback against the
//! emulator: a relay on a small cap, its roster off (every unknown key's denial is Polar's and
//! stored, as the relay's "defaults off" rows of the attack benchmark), flooded with validates
//! of distinct unknown keys and with one activation's validates under ever-new conditions. The
//! store's bytes stay under the cap throughout, the known keys' grants are still answered from
//! the store, a revocation a webhook told of still refuses, and the conditions flood leaves one
//! entry for its key (the conditions are no part of the entry's id: its answer is replayed only
//! to the same conditions).

mod rig;

use std::sync::Arc;
use std::time::Duration;

use polar_license::lease::key_hash;
use polar_license::Key;
use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_relay::store::{key_tag, Backend, MemoryBackend, StoreOptions};
use polar_license_relay::ServeOptions;
use rig::PUBLIC;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The cap: 256 KiB, a few hundred of Polar's denials.
const CAP: u64 = 256 * 1024;

/// A `benefit_grant.revoked` of the license key `license_key_id`, as Polar sends it.
fn revocation(license_key_id: &str) -> String {
    let at = rig::rfc3339(rig::now());
    json!({"type": "benefit_grant.revoked", "timestamp": at,
           "data": {"modified_at": at, "customer_id": "c", "benefit": {"type": "license_keys"},
                    "properties": {"license_key_id": license_key_id}}})
    .to_string()
}

#[test]
fn floods_of_new_keys_and_new_conditions_keep_the_store_under_its_cap() {
    let polar = rig::budgeted_emulator(100_000);
    let known: Vec<String> = (0..3)
        .map(|i| rig::add_key(&polar, format!("CAP-KNOWN-{i}-4A5B6C"), Some(3)))
        .collect();
    let revoked = rig::add_key(&polar, "CAP-REVOKED-4A5B6C".into(), Some(3));
    let bound = rig::add_key(&polar, "CAP-BOUND-4A5B6C".into(), Some(3));

    let backend = Arc::new(MemoryBackend::new(1_000_000));
    let options = rig::flood_options(100_000, CAP);
    let mut config = rig::config(polar.url(), "store-cap");
    config.limits = rig::unlimited();
    let stored: Arc<dyn Backend> = backend.clone();
    config.store = rig::store(stored, options, Some(SECRET.into()));
    let relay = rig::listen_with(config, ServeOptions::default());
    let agent = rig::agent(Duration::from_secs(10));
    let base = relay.url();
    let under = |what: &str| {
        let bytes = backend.stored_bytes().expect("counted");
        assert!(
            bytes <= CAP,
            "{what}: the store holds {bytes} bytes, past {CAP}"
        );
        bytes
    };

    // The known keys' grants, and a key Polar granted whose revocation a webhook told of.
    for k in &known {
        let a = rig::validate_at(&agent, &base, k, &[]);
        assert_eq!((a.status, a.source.as_deref()), (200, Some("polar")), "{k}");
    }
    let granted = rig::validate_at(&agent, &base, &revoked, &[]);
    assert_eq!(granted.status, 200, "{}", granted.body);
    let body: Value = serde_json::from_str(&granted.body).expect("JSON");
    let event = revocation(body["id"].as_str().expect("the key's id"));
    let headers = rig::signed(SECRET, "evt-cap-1", rig::now(), &event);
    assert_eq!(rig::deliver_at(&agent, &base, &headers, &event), 200);
    let refused = rig::validate_at(&agent, &base, &revoked, &[]);
    assert_eq!(
        (refused.status, refused.source.as_deref()),
        (404, Some("store"))
    );

    // An activation bound to its conditions, made at Polar.
    let activated = rig::post_with(
        &agent,
        &format!("{}{PUBLIC}activate", polar.url()),
        &json!({"key": bound, "organization_id": DEMO_ORGANIZATION_ID, "label": "cap",
                "conditions": {"machine": "m-1"}})
        .to_string(),
        &[],
    );
    assert_eq!(activated.status, 200, "{}", activated.body);
    let activation: Value = serde_json::from_str(&activated.body).expect("JSON");
    let activation_id = activation["id"].as_str().expect("an id").to_string();

    // The flood of new keys: each Polar's denial, stored.
    for i in 0..600 {
        let a = rig::validate_at(&agent, &base, &format!("CAP-UNKNOWN-{i:04}-4A5B6C"), &[]);
        assert_eq!(a.status, 404, "{i}: {:?} {}", a.source, a.body);
        if i % 50 == 0 {
            under("the new keys' flood");
        }
    }
    let after_keys = under("after the new keys' flood");
    assert!(
        after_keys > CAP / 2,
        "the flood filled the store ({after_keys} bytes)"
    );

    // The flood of conditions: one activation's validates, each with conditions of its own.
    let validate_bound = |conditions: Value| {
        rig::post_with(
            &agent,
            &format!("{base}{PUBLIC}validate"),
            &json!({"key": bound, "organization_id": DEMO_ORGANIZATION_ID,
                    "activation_id": activation_id, "conditions": conditions})
            .to_string(),
            &[],
        )
    };
    for i in 0..100 {
        let a = validate_bound(json!({"machine": format!("m-forged-{i}"), "pad": "x".repeat(400)}));
        assert_eq!(a.status, 404, "conditions {i}: {}", a.body);
    }
    under("after the conditions' flood");
    let tag = key_tag(DEMO_ORGANIZATION_ID, &key_hash(&Key::new(bound.clone())));
    let entries = backend.index(&tag).expect("the key's row").len();
    assert!(
        entries <= 1,
        "{entries} entries for one activation's conditions"
    );
    // The activation's own conditions are still Polar's grant, then the store's, and a
    // stored answer is never replayed to other conditions.
    let own = validate_bound(json!({"machine": "m-1"}));
    assert_eq!((own.status, own.source.as_deref()), (200, Some("polar")));
    let again = validate_bound(json!({"machine": "m-1"}));
    assert_eq!(
        (again.status, again.source.as_deref()),
        (200, Some("store"))
    );
    let other = validate_bound(json!({"machine": "m-2"}));
    assert_eq!(
        (other.status, other.source.as_deref()),
        (404, Some("polar"))
    );

    // The known keys' grants outlived both floods (denials go first), and the revocation
    // still refuses.
    for k in &known {
        let a = rig::validate_at(&agent, &base, k, &[]);
        assert_eq!((a.status, a.source.as_deref()), (200, Some("store")), "{k}");
    }
    let refused = rig::validate_at(&agent, &base, &revoked, &[]);
    assert_eq!(
        (refused.status, refused.source.as_deref()),
        (404, Some("store"))
    );
    under("at the end");
    relay.stop();
}

/// `/healthz`'s `store.max_bytes` is the cap the store enforces, not the option as given: the
/// option unset, the default cap; set under one entry of the largest size with its overhead
/// (what the store keeps whatever is set), that least cap, which the store's bytes then pass
/// the option for; set above it, the option.
#[test]
fn healthz_reports_the_byte_cap_in_force() {
    use polar_license_relay::store::{DEFAULT_MAX_BYTES, ENTRY_OVERHEAD, MAX_ENTRY_BYTES};
    let polar = rig::budgeted_emulator(100_000);
    let key = rig::add_key(&polar, "CAP-HEALTH-4A5B6C".into(), Some(3));
    let least = (MAX_ENTRY_BYTES + ENTRY_OVERHEAD) as u64;
    let agent = rig::agent(Duration::from_secs(10));
    for (set, in_force) in [
        (None, DEFAULT_MAX_BYTES),
        (Some(1), least),
        (Some(0), least),
        (Some(CAP), CAP),
    ] {
        let backend = Arc::new(MemoryBackend::new(1_000));
        let mut options = StoreOptions::default();
        options.roster = false;
        if let Some(set) = set {
            options.max_bytes = set;
        }
        let mut config = rig::config(polar.url(), "store-cap-health");
        config.limits = rig::unlimited();
        let stored: Arc<dyn Backend> = backend.clone();
        config.store = rig::store(stored, options, None);
        let relay = rig::listen_with(config, ServeOptions::default());
        let base = relay.url();
        let a = rig::validate_at(&agent, &base, &key, &[]);
        assert_eq!(
            (a.status, a.source.as_deref()),
            (200, Some("polar")),
            "{set:?}"
        );
        let mut resp = agent
            .get(format!("{base}/healthz"))
            .call()
            .expect("an answer");
        let health: Value =
            serde_json::from_str(&resp.body_mut().read_to_string().expect("a body")).expect("JSON");
        let bytes = backend.stored_bytes().expect("counted");
        assert_eq!(health["store"]["bytes"], json!(bytes), "{health}");
        assert_eq!(
            health["store"]["max_bytes"],
            json!(in_force),
            "max_bytes {set:?}: {health}"
        );
        // The grant kept: the cap in force holds it, past an option of a byte.
        assert!(
            bytes > 1 && bytes <= in_force,
            "{bytes} bytes, cap {in_force}"
        );
        assert_eq!(
            rig::validate_at(&agent, &base, &key, &[]).source.as_deref(),
            Some("store"),
            "{set:?}"
        );
    }
}
