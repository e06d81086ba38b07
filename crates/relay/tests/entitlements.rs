//! The relay's join of a key to its entitlements (issue #68 item 2, docs/polar-api.md
//! §16.4–16.5), on the emulator's answers read over loopback: a flag's values typed as
//! Polar's metadata values, a value changed, a flag revoked, another purchase's flags kept
//! apart, a revoked key with none, and a customer's meter balance. Then the relay's half
//! (issue #68 item 2) end to end: the native relay with `entitlements` on signs them into its
//! leases, kept fresh by Polar's webhooks, and the Rust face reads them offline.

mod rig;

use std::collections::BTreeMap;

use polar_license_emulator::{Emulator, Options, Seed, SeedKey, DEMO_TOKEN};
use polar_license_relay::entitlements::{
    key_entitlements, meter_balances, page_items, Entitlement,
};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::ids::{CREDIT, CUSTOMER, LICENSE, PRO, SUBSCRIPTION};
use polar_license_testkit::leases::edit_payload;
use polar_license_testkit::{feature_flag, meter, meter_credit, poll, subscribed_key};
use serde_json::{json, Value};

const TEAM: &str = "1a7d2e6f-9c3b-4d4e-8f5a-6b7c8d9e0f1a";
const CALLS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
const OTHER: &str = "TIER-9F8E7D6C-5B4A-4392-8180-7F6E5D4C3B2A";
const LAPSED: &str = "TIER-2C3D4E5F-6A7B-4C8D-9E0F-1A2B3C4D5E6F";

fn seed() -> Seed {
    let mut seed = Seed::demo();
    let flag = feature_flag;
    seed.benefits.push(flag(
        PRO,
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true}),
    ));
    seed.benefits
        .push(flag(TEAM, json!({"seats": 5, "role": "admin"})));
    seed.meters
        .push(meter(CALLS, "API calls", "api_call", None));
    seed.benefits.push(meter_credit(CREDIT, CALLS, 50));
    let key = |key: &str, subscription: &str, benefits: Vec<&str>| {
        subscribed_key(key, LICENSE, CUSTOMER, subscription, &benefits)
    };
    // One customer, two purchases: each key's flags are its purchase's only.
    seed.license_keys
        .push(key(KEY, SUBSCRIPTION, vec![PRO, CREDIT]));
    seed.license_keys.push(key(
        OTHER,
        "8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f1a",
        vec![TEAM],
    ));
    seed.license_keys.push(SeedKey {
        status: Some("revoked".into()),
        ..key(LAPSED, "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f", vec![PRO])
    });
    seed
}

fn get(em: &Emulator, path: &str) -> Value {
    let r = raw_exchange(
        em.port(),
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {DEMO_TOKEN}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn key_id(em: &Emulator, key: &str) -> String {
    em.key(key).expect("the key")["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

fn entitlements(em: &Emulator, key: &str) -> BTreeMap<String, Entitlement> {
    let page = get(
        em,
        &format!("/v1/benefit-grants/?customer_id={CUSTOMER}&limit=100"),
    );
    let items = page_items(&page).expect("a list");
    key_entitlements(items, &key_id(em, key))
}

#[test]
fn a_keys_flag_values_are_its_purchases_typed_as_polar_sends_them() {
    let em = Emulator::start(seed(), Options::default()).expect("starts");
    let got = entitlements(&em, KEY);
    let want: BTreeMap<String, Entitlement> = [
        ("max_upload_size", Entitlement::Int(10)),
        ("role", Entitlement::Str("editor".into())),
        ("ratio", Entitlement::Float(1.5)),
        ("beta", Entitlement::Bool(true)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
    // The other purchase of the same customer: its own flag's values only.
    let other = entitlements(&em, OTHER);
    assert_eq!(other.get("role"), Some(&Entitlement::Str("admin".into())));
    assert_eq!(other.get("seats"), Some(&Entitlement::Int(5)));
    assert_eq!(other.get("max_upload_size"), None);
    // A revoked key has none, though its flag grant of the seed is its purchase's.
    assert!(entitlements(&em, LAPSED).is_empty());

    // A value changed: the next read has it.
    let new = json!({"max_upload_size": 100, "role": "owner"});
    em.set_benefit_metadata(PRO, new.as_object().expect("obj").clone())
        .expect("valid")
        .expect("known");
    let got = entitlements(&em, KEY);
    assert_eq!(got.get("max_upload_size"), Some(&Entitlement::Int(100)));
    assert_eq!(got.get("beta"), None);
    // The flag revoked: its values are gone; granted again, back.
    em.set_flag_grant(KEY, PRO, false).expect("valid");
    assert!(entitlements(&em, KEY).is_empty());
    em.set_flag_grant(KEY, PRO, true).expect("valid");
    assert_eq!(
        entitlements(&em, KEY).get("role"),
        Some(&Entitlement::Str("owner".into()))
    );
}

#[test]
fn a_customers_balance_is_read_by_meter_name() {
    let em = Emulator::start(seed(), Options::default()).expect("starts");
    let body = json!({"events": [
        {"name": "api_call", "customer_id": CUSTOMER},
        {"name": "api_call", "customer_id": CUSTOMER},
    ]})
    .to_string();
    let r = raw_exchange(
        em.port(),
        &format!(
            "POST /v1/events/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = get(&em, &format!("/v1/customer-meters/?customer_id={CUSTOMER}"));
    let balances = meter_balances(page_items(&page).expect("a list"), CUSTOMER);
    assert_eq!(balances, BTreeMap::from([("API calls".to_string(), 48.0)]));
    assert!(meter_balances(page_items(&page).expect("a list"), PRO).is_empty());
    assert!(page_items(&json!({"detail": "Not found"})).is_err());
}

#[test]
fn values_polar_cannot_hold_are_left_out() {
    assert_eq!(Entitlement::from_json(&Value::Null), None);
    assert_eq!(Entitlement::from_json(&json!([1])), None);
    assert_eq!(Entitlement::from_json(&json!(u64::MAX)), None);
    assert_eq!(
        Entitlement::from_json(&json!(-3)),
        Some(Entitlement::Int(-3))
    );
    assert_eq!(
        Entitlement::from_json(&json!(2.0)),
        Some(Entitlement::Float(2.0))
    );
}

// ---- The relay signs them into its leases; the Rust face reads them offline ----------------

use polar_license::lease::{self, EntitlementValue, RelayKeys, SigningKey, NONCE_HEADER};
use polar_license::licensing::MachineBinding;
use polar_license::{Key, Licensing};
use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Running, ServeOptions};
use std::time::Duration;

/// The seed's emulator, with webhooks delivered at once, and a relay in front of it with a
/// memory store and entitlements on, its webhook endpoint registered in Polar for the events
/// that keep the values fresh; the relay's public key.
fn signed_relay() -> (Emulator, Running, RelayKeys) {
    signed_relay_of(seed())
}

/// [`signed_relay`] with the emulator seeded with `seed`.
fn signed_relay_of(seed: Seed) -> (Emulator, Running, RelayKeys) {
    let options = Options {
        webhooks: polar_license_emulator::WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    let polar = Emulator::start(seed, options).expect("starts");
    let (endpoint, secret) = rig::endpoint(
        &polar,
        &[
            "benefit.updated",
            "benefit_grant.created",
            "benefit_grant.revoked",
            "benefit_grant.updated",
            "customer.state_changed",
        ],
    );
    let signer = SigningKey::generate(Some("ent-test")).expect("a key");
    let keys = signer.relay_keys();
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    let mut store = StoreOptions::default();
    store.entitlements = true;
    store.reconcile_every = 0;
    store.roster = false;
    config.store = rig::store(rig::memory(100), store, Some(secret));
    let upstream = rig::upstream(Duration::from_secs(5));
    let relay = rig::listen(rig::relay(config, upstream), ServeOptions::default());
    rig::point_endpoint_at(&polar, &endpoint, &relay);
    (polar, relay, keys)
}

/// The app in signed mode through `relay`, its cache in memory.
fn app(relay: &Running, keys: &RelayKeys) -> Licensing {
    Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(relay.url())
        .relay_keys(keys.clone())
        .machine_binding(MachineBinding::Off)
        .policy(polar_license::GracePolicy {
            revalidate_after: Duration::ZERO,
            ..polar_license::GracePolicy::default()
        })
        .memory_store()
        .expect("a memory store")
        .build()
        .expect("builds")
}

/// Checks `key` until `done` holds of the app's `max_upload_size` (each check licensed),
/// within 10 s; every value seen on the way, in order.
fn until(
    app: &Licensing,
    key: &str,
    done: impl Fn(&Option<EntitlementValue>) -> bool,
) -> Vec<Option<EntitlementValue>> {
    let mut seen = Vec::new();
    poll(
        "the value awaited",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let report = app.check_report(Key::new(key));
            assert!(report.outcome.is_licensed(), "{:?}", report.outcome);
            let v = app.entitlement("max_upload_size");
            assert_eq!(report.entitlement("max_upload_size"), v);
            seen.push(v.clone());
            v
        },
        &done,
    );
    seen
}

#[test]
fn the_relay_signs_a_keys_values_and_the_app_reads_them_offline_granted_changed_revoked() {
    let (polar, relay, keys) = signed_relay();
    let app = app(&relay, &keys);
    // Granted: the first lease may go without them (the relay reads them after it); within a
    // few checks the lease carries the key's values, typed as Polar's metadata.
    let seen = until(&app, KEY, |v| v.is_some());
    assert_eq!(seen.last(), Some(&Some(EntitlementValue::Int(10))));
    let report = app.check_report(Key::new(KEY));
    let signed = report.entitlements().expect("signed values").clone();
    assert_eq!(
        signed.value("role"),
        Some(&EntitlementValue::Str("editor".into()))
    );
    assert_eq!(signed.value("ratio"), Some(&EntitlementValue::Float(1.5)));
    assert_eq!(signed.value("beta"), Some(&EntitlementValue::Bool(true)));
    assert_eq!(signed.value("seats"), None, "the other purchase's flag");
    assert_eq!(signed.balance("API calls"), Some(50.0));
    // The other purchase of the same customer: its own flag's values (the customer's values
    // are cached: no wait).
    let other = app.check_report(Key::new(OTHER));
    let other = other.entitlements().expect("signed values");
    assert_eq!(other.value("seats"), Some(&EntitlementValue::Int(5)));
    assert_eq!(
        other.value("role"),
        Some(&EntitlementValue::Str("admin".into()))
    );
    assert_eq!(other.value("max_upload_size"), None);

    // Changed: `benefit.updated` marks the customer's values stale; the next read has the new.
    polar
        .set_benefit_metadata(
            PRO,
            json!({"max_upload_size": 100, "role": "owner"})
                .as_object()
                .expect("obj")
                .clone(),
        )
        .expect("valid")
        .expect("known");
    until(&app, KEY, |v| *v == Some(EntitlementValue::Int(100)));
    let report = app.check_report(Key::new(KEY));
    let signed = report.entitlements().expect("signed values");
    assert_eq!(
        signed.value("role"),
        Some(&EntitlementValue::Str("owner".into()))
    );
    assert_eq!(signed.value("beta"), None, "gone from the flag's metadata");

    // Revoked: the flag's grant revoked (`benefit_grant.revoked`): its values are gone, the
    // key still licensed, the customer's balance still signed.
    polar.set_flag_grant(KEY, PRO, false).expect("valid");
    until(&app, KEY, |v| {
        v.is_none()
            && app
                .check_report(Key::new(KEY))
                .entitlements()
                .is_some_and(|e| e.values.is_empty())
    });
    let report = app.check_report(Key::new(KEY));
    assert_eq!(
        report.entitlements().and_then(|e| e.balance("API calls")),
        Some(50.0)
    );
}

/// Issue #80: a new customer's values are known from the first answer, not up to an hour
/// later. The relay holds none of the customer's values yet, so it reads them from Polar
/// before it makes the first lease: the first check's lease carries them, and so does a
/// first activation's (on a relay of its own, which holds nothing either).
#[test]
fn the_first_answer_after_activation_carries_the_values() {
    let (_polar, relay, keys) = signed_relay();
    let checking = app(&relay, &keys);
    let report = checking.check_report(Key::new(KEY));
    assert!(report.outcome.is_licensed(), "{:?}", report.outcome);
    let signed = report
        .entitlements()
        .expect("the first lease carries the values");
    assert_eq!(
        signed.value("max_upload_size"),
        Some(&EntitlementValue::Int(10))
    );
    assert_eq!(signed.balance("API calls"), Some(50.0));
    assert_eq!(
        report.entitlement_state("max_upload_size").0,
        polar_license::EntitlementState::Granted
    );

    // The key activated on up to 3 machines (Polar's activate answers 403 without a limit).
    let mut activated_seed = seed();
    for k in &mut activated_seed.license_keys {
        if k.key == KEY {
            k.limit_activations = Some(3);
        }
    }
    let (_polar, relay, keys) = signed_relay_of(activated_seed);
    let activating = app(&relay, &keys);
    let req = polar_license::proto::ActivateRequest::new(KEY, "first-machine");
    let activated = activating.activate_update(&req);
    assert!(
        matches!(activated.online, Ok(polar_license::Verdict::Accepted(_))),
        "{:?}",
        activated.online
    );
    let values = activated
        .lease
        .as_ref()
        .and_then(|l| l.facts.entitlements())
        .expect("the first activation's lease carries the values");
    assert_eq!(
        values.value("max_upload_size"),
        Some(&EntitlementValue::Int(10))
    );
    assert_eq!(values.balance("API calls"), Some(50.0));
}

/// A lease whose values were altered does not verify: re-signed by another key, or its
/// claims' bytes edited (the signature then covers other bytes).
#[test]
fn a_lease_with_altered_values_is_refused() {
    let (_polar, relay, keys) = signed_relay();
    let app = app(&relay, &keys);
    until(&app, KEY, |v| v.is_some());
    let nonce = lease::nonce_text(&[9; 16]);
    let answer = rig::validate_at(
        &rig::agent(Duration::from_secs(30)),
        &relay.url(),
        KEY,
        &[(NONCE_HEADER, &nonce)],
    );
    let token = answer.lease.expect("a lease");
    let key = Key::new(KEY);
    let expect = rig::expect_lease(&key, None, None);
    let good = lease::verify_signed(&token, &keys, &expect).expect("verifies");
    let mut claims = good.claims.clone();
    assert_eq!(
        claims
            .entitlements
            .as_ref()
            .and_then(|e| e.value("max_upload_size")),
        Some(&EntitlementValue::Int(10))
    );
    // Re-signed by a key the app does not trust, under the trusted key's kid.
    let forger = SigningKey::generate(Some("ent-test")).expect("a key");
    if let Some(e) = claims.entitlements.as_mut() {
        e.values
            .insert("max_upload_size".into(), EntitlementValue::Int(1_000_000));
    }
    let forged = forger.sign(&claims, None).expect("signed");
    assert!(lease::verify_signed(&forged, &forger.relay_keys(), &expect).is_ok());
    assert_eq!(
        lease::verify_signed(&forged, &keys, &expect).map(|_| ()),
        Err(lease::NoLease::Signature)
    );
    // The trusted token's payload edited: `10` made `90` in place.
    let edited = edit_payload(&token, b"\"max_upload_size\":10", b"\"max_upload_size\":90")
        .expect("the value in the payload");
    assert_eq!(
        lease::verify_signed(&edited, &keys, &expect).map(|_| ()),
        Err(lease::NoLease::Signature)
    );
}
