//! Why a key stopped survives the relay (issue #68 item 4): the native relay over its file
//! store told by Polar's webhooks (the emulator's, over loopback) that a key's subscription
//! paused, then stopped and started again over the same file, still answers the key's denial
//! with its typed detail (`polar-license-stopped`): what the webhooks explained is kept in
//! the store, not only in the relay's memory.

mod rig;

use std::sync::Arc;
use std::time::Duration;

use polar_license::stopped::{StopKind, Stopped, STOPPED_HEADER};
use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, SeedSubscription, WebhookOptions, DEMO_ORGANIZATION_ID,
    DEMO_TOKEN,
};
use polar_license_relay::store::{RedbBackend, StoreOptions};
use polar_license_relay::{Running, ServeOptions};
use polar_license_testkit::http::json_request;
use polar_license_testkit::{customers_key, ScratchDir};
use serde_json::json;

const LICENSE: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
const PAUSED: &str = "KEEP-PAUSE-1B2C3D";
const RESUMES_AT: &str = "2031-06-03T00:00:00Z";
const EVENTS: [&str; 4] = [
    "subscription.updated",
    "subscription.paused",
    "benefit_grant.revoked",
    "benefit_grant.updated",
];

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.license_keys.push(SeedKey {
        subscription: Some(SeedSubscription {
            id: Some("9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a31".into()),
            ..SeedSubscription::default()
        }),
        ..customers_key(PAUSED, LICENSE, CUSTOMER)
    });
    seed
}

/// The relay over the file `path`, verifying webhooks with `secret`, no rate limits.
fn relay_over(polar: &Emulator, path: &std::path::Path, secret: &str) -> Running {
    let signer = polar_license::lease::SigningKey::generate(Some("keep")).expect("a key");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    let backend = Arc::new(RedbBackend::open(path, 1_000).expect("the file store"));
    config.store = rig::store(backend, StoreOptions::default(), Some(secret.into()));
    rig::listen_with(config, ServeOptions::default())
}

/// A validate's status and detail header.
fn validate(relay: &Running) -> (u16, Option<String>) {
    let agent = rig::agent(Duration::from_secs(10));
    let mut r = agent
        .post(&format!("{}{}validate", relay.url(), rig::PUBLIC))
        .header("content-type", "application/json")
        .send(json!({"key": PAUSED, "organization_id": DEMO_ORGANIZATION_ID}).to_string())
        .expect("an answer");
    let _ = r.body_mut().read_to_string();
    (r.status().as_u16(), rig::header_of(&r, STOPPED_HEADER))
}

fn change(polar: &Emulator, body: serde_json::Value) {
    let body = body.to_string();
    let r = json_request(
        polar.port(),
        "POST",
        &format!("/__emulator/keys/{PAUSED}/subscription"),
        Some(&body),
        Some(DEMO_TOKEN),
    );
    assert!(r.status < 300, "{} {}", r.status, r.text());
}

#[test]
fn a_restarted_relay_still_explains_a_paused_keys_denial() {
    let dir = ScratchDir::new("relay-lifecycle-restart");
    let path = dir.path().join("store.redb");
    let options = Options {
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    let polar = Emulator::start(seed(), options).expect("the emulator");
    let (endpoint, secret) = rig::endpoint(&polar, &EVENTS);
    let relay = relay_over(&polar, &path, &secret);
    rig::point_endpoint_at(&polar, &endpoint, &relay);
    // Licensed first, through the relay (it learns the string's key id).
    assert_eq!(validate(&relay), (200, None));
    change(
        &polar,
        json!({"action": "pause_at_period_end", "resumes_at": RESUMES_AT}),
    );
    change(&polar, json!({"action": "period_end"}));
    let mut last = (0, None);
    let told = rig::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        last = validate(&relay);
        last.0 == 404 && last.1.is_some()
    });
    assert!(told, "no detail before the restart: {last:?}");
    let before = Stopped::from_text(last.1.as_deref().unwrap_or_default()).expect("read");
    assert_eq!(before.kind, StopKind::Paused);
    // Stopped (its memory gone) and started again over the same file.
    relay.stop();
    let relay = relay_over(&polar, &path, &secret);
    // Its denial (and the next) answered with the detail the store kept.
    for _ in 0..2 {
        let (status, text) = validate(&relay);
        assert_eq!(status, 404);
        let after = Stopped::from_text(&text.expect("the detail after the restart"))
            .expect("a detail the client reads");
        assert_eq!(after, before);
        assert_eq!(
            after.until,
            Some(polar_license::schema::rfc3339(RESUMES_AT).expect("a date"))
        );
    }
    relay.stop();
}
