//! Signed mode trusts only signed facts (issue #62), denials answered from the relay's store
//! included: a revocation a webhook told of, and Polar's denial replayed from the store, come
//! with the relay's signed denial for the request that asked for signed facts (its nonce),
//! as Polar's denial passed on does. Over loopback against the emulator; the tokens are checked
//! with the client library's own verifier, for this request's nonce only.

mod rig;

use std::time::Duration;

use polar_license::lease::{
    nonce_text, verify_denial, DenialExpect, RelayKeys, SigningKey, DENIAL_HEADER, NONCE_HEADER,
};
use polar_license::Key;
use polar_license_emulator::{DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::ServeOptions;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A validate of `key` with `nonce`: status, `polar-license-source`, and the signed denial.
fn validate(base: &str, key: &str, nonce: &str) -> (u16, Option<String>, Option<String>) {
    let agent = rig::agent(Duration::from_secs(10));
    let mut r = agent
        .post(&format!("{base}{}validate", rig::PUBLIC))
        .header("content-type", "application/json")
        .header(NONCE_HEADER, nonce)
        .send(json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string())
        .expect("an answer");
    let _ = r.body_mut().read_to_string();
    (
        r.status().as_u16(),
        rig::header_of(&r, "polar-license-source"),
        rig::header_of(&r, DENIAL_HEADER),
    )
}

#[test]
fn denials_answered_from_the_store_are_signed_for_the_request_that_asks() {
    let polar = rig::emulator();
    let revoked = rig::add_key(&polar, "SIGNED-STORE-4A5B6C".into(), Some(3));
    let signer = SigningKey::generate(Some("store")).expect("a key");
    let mut keys = RelayKeys::new();
    keys.add_pair(&signer.public_pair())
        .expect("the relay's key");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    let mut options = StoreOptions::default();
    options.roster = false;
    config.store = rig::store(rig::memory(1_000), options, Some(SECRET.into()));
    let relay = rig::listen_with(config, ServeOptions::default());
    let base = relay.url();
    let nonce = |n: u8| nonce_text(&[n; 16]);
    let verified = |token: Option<String>, key: &str, nonce: &str| {
        let token = token.expect("a signed denial");
        let key = Key::new(key.to_string());
        let expect = DenialExpect {
            organization_id: DEMO_ORGANIZATION_ID,
            key: &key,
            activation_id: None,
            machine: None,
        };
        let denial = verify_denial(&token, &keys, &expect).expect("it verifies");
        assert_eq!(denial.nonce(), nonce, "signed for this request");
        denial.reason().code().to_string()
    };

    // Granted, then revoked by a webhook: the store answers the revocation, signed.
    let agent = rig::agent(Duration::from_secs(10));
    let granted = rig::validate_at(&agent, &base, &revoked, &[]);
    assert_eq!(granted.status, 200, "{}", granted.body);
    let id = serde_json::from_str::<Value>(&granted.body).expect("JSON")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let at = rig::rfc3339(rig::now());
    let event = json!({"type": "benefit_grant.revoked", "timestamp": at,
        "data": {"modified_at": at, "customer_id": "c", "benefit": {"type": "license_keys"},
                 "properties": {"license_key_id": id}}})
    .to_string();
    let headers = rig::signed(SECRET, "evt-signed-store", rig::now(), &event);
    assert_eq!(rig::deliver_at(&agent, &base, &headers, &event), 200);
    let (status, source, token) = validate(&base, &revoked, &nonce(1));
    assert_eq!((status, source.as_deref()), (404, Some("store")));
    let reason = verified(token, &revoked, &nonce(1));
    assert_ne!(
        reason, "expired",
        "a revocation is never signed as an expiry"
    );

    // Polar's denial of an unknown key, then the same from the store: both signed.
    let unknown = "SIGNED-UNKNOWN-4A5B6C";
    let (status, source, token) = validate(&base, unknown, &nonce(2));
    assert_eq!((status, source.as_deref()), (404, Some("polar")));
    let first = verified(token, unknown, &nonce(2));
    let (status, source, token) = validate(&base, unknown, &nonce(3));
    assert_eq!((status, source.as_deref()), (404, Some("store")));
    assert_eq!(verified(token, unknown, &nonce(3)), first);

    // A request that does not ask for signed facts gets none (an older client's nonce).
    let (status, _, token) = validate(&base, unknown, "0123456789abcdef0123456789abcdef");
    assert_eq!((status, token), (404, None));
    relay.stop();
}
