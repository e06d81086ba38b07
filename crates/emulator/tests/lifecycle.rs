//! A key's subscription through its lifecycle (docs/polar-api.md §16.6) over raw HTTP on
//! loopback: cancel at period end, pause at period end, the period's end and a resume, each
//! with the key's answers as the table says and Polar's webhooks read in the order queued; and
//! a paused subscription kept by `--state FILE`.

// Meters, credits and the lifecycle's control routes are the `billing` feature's.
#![cfg(feature = "billing")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, SeedMember, SeedOrder, DEMO_KEY, DEMO_ORGANIZATION_ID,
    DEMO_TOKEN,
};
use polar_license_testkit::http::{json_request, raw_exchange, HttpAnswer};
use polar_license_testkit::{
    customers_key, feature_flag, subscription_with_id, ScratchDir, LIFECYCLE_EVENTS,
};
use serde_json::{json, Value};

mod common;
use common::{
    assert_error, subscribe, take_events, tier_key, CUSTOMER, KEY, LICENSE, PRO, SUBSCRIPTION,
};

const ORG: &str = DEMO_ORGANIZATION_ID;
const ONE_TIME: &str = "ONCE-2C3D4E5F-6A7B-4C8D-9E0F-1A2B3C4D5E6F";
const SEAT: &str = "SEAT-3D4E5F6A-7B8C-4D9E-8F0A-2B3C4D5E6F7A";
const ORDER: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const SUB_ORDER: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
const MEMBER: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
/// The lifecycle's events, a refund's, and what the keys' grants and flags send.
fn events() -> Vec<&'static str> {
    [
        &["refund.created"][..],
        &LIFECYCLE_EVENTS,
        &[
            "benefit_grant.created",
            "benefit_grant.updated",
            "benefit_grant.revoked",
            "customer.state_changed",
            "benefit.updated",
        ],
    ]
    .concat()
}

fn request(em: &Emulator, method: &str, path: &str, body: Option<&str>) -> HttpAnswer {
    json_request(em.port(), method, path, body, Some(DEMO_TOKEN))
}

fn change(em: &Emulator, key: &str, body: Value) -> HttpAnswer {
    request(
        em,
        "POST",
        &format!("/__emulator/keys/{key}/subscription"),
        Some(&body.to_string()),
    )
}

fn validate(em: &Emulator, activation: Option<&str>) -> HttpAnswer {
    validate_as(em, KEY, activation)
}

/// `POST /v1/customer-portal/license-keys/validate` of `key` (with `activation`), no token.
fn validate_as(em: &Emulator, key: &str, activation: Option<&str>) -> HttpAnswer {
    let mut body = json!({"key": key, "organization_id": ORG});
    if let Some(a) = activation {
        body["activation_id"] = json!(a);
    }
    raw_exchange(
        em.port(),
        &format!(
            "POST /v1/customer-portal/license-keys/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.to_string().len()
        ),
    )
}

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.benefits
        .push(feature_flag(PRO, json!({"role": "editor"})));
    seed.license_keys.push(SeedKey {
        order: Some(SeedOrder {
            id: Some(SUB_ORDER.into()),
            ..SeedOrder::default()
        }),
        ..tier_key()
    });
    seed.license_keys.push(SeedKey {
        order: Some(SeedOrder {
            id: Some(ORDER.into()),
            ..SeedOrder::default()
        }),
        ..customers_key(ONE_TIME, LICENSE, CUSTOMER)
    });
    seed.license_keys.push(SeedKey {
        member: Some(SeedMember {
            id: Some(MEMBER.into()),
            email: Some("seat@example.com".into()),
            ..SeedMember::default()
        }),
        subscription: Some(subscription_with_id(SUBSCRIPTION)),
        ..customers_key(SEAT, LICENSE, CUSTOMER)
    });
    seed
}

fn validate_key(em: &Emulator, key: &str) -> u16 {
    validate_as(em, key, None).status
}

/// An emulator with an endpoint for the lifecycle's events, and what it received.
fn start(options: Options) -> (Emulator, Arc<Mutex<Vec<Value>>>) {
    let em = Emulator::start(seed(), options).expect("the emulator starts");
    let got = subscribe(&em, &events());
    (em, got)
}

/// The types of the events received once `n` have come (in order: one endpoint, one in
/// flight), then the bodies; the received list emptied.
fn take(got: &Arc<Mutex<Vec<Value>>>, n: usize) -> (Vec<String>, Vec<Value>) {
    take_events(got, n, Duration::from_millis(300))
}

#[test]
fn a_cancellation_keeps_the_key_until_the_period_ends() {
    let (em, got) = start(Options::default());
    let r = change(&em, KEY, json!({"action": "cancel_at_period_end"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let sub = r.json();
    assert_eq!(sub["id"], SUBSCRIPTION);
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["cancel_at_period_end"], true);
    assert_eq!(sub["ends_at"], sub["current_period_end"]);
    assert_eq!(sub["customer_id"], CUSTOMER);
    let (kinds, events) = take(&got, 2);
    assert_eq!(kinds, ["subscription.updated", "subscription.canceled"]);
    assert_eq!(events[1]["data"]["cancel_at_period_end"], true);
    // Still licensed until the period ends.
    assert_eq!(validate(&em, None).status, 200);
    // A second cancellation has nothing to cancel.
    assert_eq!(
        change(&em, KEY, json!({"action": "cancel_at_period_end"})).status,
        400
    );

    let r = change(&em, KEY, json!({"action": "period_end"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "canceled");
    assert!(r.json()["ended_at"].is_string());
    // Every key of the subscription goes (the seat's too), each grant's webhook after the
    // subscription's, then the state once.
    let (kinds, events) = take(&got, 5);
    assert_eq!(
        kinds,
        [
            "subscription.revoked",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    assert_eq!(events[1]["data"]["benefit_id"], LICENSE);
    assert_eq!(events[1]["data"]["subscription_id"], SUBSCRIPTION);
    assert!(events[1]["data"]["properties"]["license_key_id"].is_string());
    assert_eq!(events[2]["data"]["benefit_id"], PRO);
    assert_eq!(events[3]["data"]["member_id"], MEMBER);
    assert_eq!(events[4]["data"]["active_subscriptions"], json!([]));
    // What stays granted: the one-time order's key alone.
    let granted = events[4]["data"]["granted_benefits"]
        .as_array()
        .expect("grants")
        .clone();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(validate_key(&em, ONE_TIME), 200);
    assert_eq!(validate_key(&em, SEAT), 404);
    let v = validate(&em, None);
    assert_error(
        &v,
        404,
        "ResourceNotFound",
        "License key is no longer active.",
    );
    // Ended: nothing more is due, nothing resumes.
    assert_eq!(
        change(&em, KEY, json!({"action": "period_end"})).status,
        400
    );
    assert_eq!(change(&em, KEY, json!({"action": "resume"})).status, 400);
}

#[test]
fn a_pause_revokes_at_period_end_and_a_resume_licenses_the_same_key_again() {
    let (em, got) = start(Options::default());
    let activation = request(
        &em,
        "POST",
        "/v1/license-keys/activate",
        Some(&json!({"key": KEY, "organization_id": ORG, "label": "laptop"}).to_string()),
    );
    assert_eq!(activation.status, 200, "{}", activation.text());
    let activation = activation.json()["id"].as_str().expect("an id").to_string();
    let resumes = "2030-06-03T00:00:00Z";
    let r = change(
        &em,
        KEY,
        json!({"action": "pause_at_period_end", "resumes_at": resumes}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["pause_at_period_end"], true);
    assert_eq!(r.json()["resumes_at"], "2030-06-03T00:00:00Z");
    let (kinds, _) = take(&got, 1);
    assert_eq!(kinds, ["subscription.updated"]);
    assert_eq!(validate(&em, Some(&activation)).status, 200);

    let r = change(&em, KEY, json!({"action": "period_end"}));
    assert_eq!(r.json()["status"], "paused");
    assert!(r.json()["paused_at"].is_string());
    let (kinds, events) = take(&got, 7);
    assert_eq!(
        kinds,
        [
            "subscription.updated",
            "subscription.paused",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "customer_seat.revoked",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    assert_eq!(events[4]["data"]["member_id"], Value::Null);
    assert_eq!(events[5]["data"]["member_id"], MEMBER);
    assert_eq!(events[1]["data"]["status"], "paused");
    assert_eq!(events[1]["data"]["resumes_at"], resumes);
    assert_eq!(validate(&em, Some(&activation)).status, 404);
    // The key itself is revoked, as a revoked grant leaves it.
    assert_eq!(em.key(KEY).expect("the key")["status"], "revoked");

    let r = change(&em, KEY, json!({"action": "resume"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(r.json()["paused_at"], Value::Null);
    let (kinds, events) = take(&got, 5);
    assert_eq!(
        kinds,
        [
            "subscription.updated",
            "subscription.resumed",
            "benefit_grant.created",
            "benefit_grant.created",
            "customer.state_changed"
        ]
    );
    assert_eq!(events[2]["data"]["benefit_id"], LICENSE);
    assert_eq!(events[3]["data"]["benefit_id"], PRO);
    let flags: Vec<&Value> = events[4]["data"]["granted_benefits"]
        .as_array()
        .expect("grants")
        .iter()
        .filter(|g| g["benefit_id"] == PRO)
        .collect();
    assert_eq!(flags[0]["benefit_metadata"], json!({"role": "editor"}));
    // A seat is not granted again until it is claimed again.
    assert_eq!(validate_key(&em, SEAT), 404);
    // The same key and the same activation validate again.
    let v = validate(&em, Some(&activation));
    assert_eq!(v.status, 200, "{}", v.text());
    assert_eq!(v.json()["activation"]["id"], activation);
}

#[test]
fn the_control_route_refuses_what_does_not_apply() {
    let (em, _) = start(Options::default());
    let r = change(&em, KEY, json!({"action": "period_end"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("/cycle"), "{}", r.text());
    let r = change(&em, KEY, json!({"action": "resume"}));
    assert_eq!(r.status, 400);
    let r = change(&em, KEY, json!({"action": "explode"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown action"), "{}", r.text());
    let r = change(&em, DEMO_KEY, json!({"action": "cancel_at_period_end"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no subscription"), "{}", r.text());
    let r = change(&em, "NOPE", json!({"action": "cancel_at_period_end"}));
    assert_eq!(r.status, 404);
    let r = request(
        &em,
        "GET",
        &format!("/__emulator/keys/{KEY}/subscription"),
        None,
    );
    assert_eq!(r.status, 405);
    let r = change(
        &em,
        KEY,
        json!({"action": "pause_at_period_end", "resumes_at": "soon"}),
    );
    assert_eq!(r.status, 400);
    // Nothing of the refused changes happened.
    assert_eq!(validate(&em, None).status, 200);
}

#[test]
fn a_paused_subscription_survives_a_restart_and_resumes_after_it() {
    let dir = ScratchDir::new("emulator-lifecycle-state");
    let file = dir.join("polar.json");
    let options = || Options {
        state: Some(file.clone()),
        ..Options::default()
    };
    let (em, _) = start(options());
    assert_eq!(
        change(&em, KEY, json!({"action": "pause_at_period_end"})).status,
        200
    );
    assert_eq!(
        change(&em, KEY, json!({"action": "period_end"})).status,
        200
    );
    em.stop();
    let (again, got) = start(options());
    assert_eq!(validate(&again, None).status, 404);
    let r = change(&again, KEY, json!({"action": "resume"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (kinds, _) = take(&got, 5);
    assert_eq!(kinds[..2], ["subscription.updated", "subscription.resumed"]);
    assert_eq!(validate(&again, None).status, 200);
}

#[test]
fn past_due_revokes_at_once_without_grace_and_after_it_with_grace() {
    let (em, got) = start(Options::default());
    let r = change(&em, KEY, json!({"action": "past_due", "grace_days": 3}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "past_due");
    let (kinds, _) = take(&got, 2);
    assert_eq!(kinds, ["subscription.updated", "subscription.past_due"]);
    // Within the grace the key still validates.
    assert_eq!(validate(&em, None).status, 200);
    let r = change(&em, KEY, json!({"action": "grace_end"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (kinds, _) = take(&got, 4);
    assert_eq!(
        kinds,
        [
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    assert_eq!(validate(&em, None).status, 404);

    // No grace: revoked with the past_due.
    let (em, got) = start(Options::default());
    assert_eq!(change(&em, KEY, json!({"action": "past_due"})).status, 200);
    let (kinds, _) = take(&got, 6);
    assert_eq!(
        kinds,
        [
            "subscription.updated",
            "subscription.past_due",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    assert_eq!(validate(&em, None).status, 404);
}

#[test]
fn a_refund_revokes_a_one_time_key_only_when_asked() {
    let (em, got) = start(Options::default());
    let refund = |key: &str, revoke: bool| {
        request(
            &em,
            "POST",
            &format!("/__emulator/keys/{key}/refund"),
            Some(&json!({"revoke_benefits": revoke}).to_string()),
        )
    };
    // A subscription's benefits cannot be revoked by a refund: Polar's own 400.
    let r = refund(KEY, true);
    assert_error(
        &r,
        400,
        "RevokeSubscriptionBenefitsProhibited",
        "Subscription benefits can only be revoked upon cancellation",
    );
    // Without revocation a subscription order's key is unaffected.
    let r = refund(KEY, false);
    assert_eq!(r.status, 200, "{}", r.text());
    let (kinds, events) = take(&got, 2);
    assert_eq!(kinds, ["refund.created", "order.refunded"]);
    assert_eq!(events[0]["data"]["order_id"], SUB_ORDER);
    assert_eq!(events[0]["data"]["revoke_benefits"], false);
    assert_eq!(events[1]["data"]["id"], SUB_ORDER);
    assert_eq!(events[1]["data"]["status"], "refunded");
    assert_eq!(events[1]["data"]["subscription_id"], SUBSCRIPTION);
    assert_eq!(validate_key(&em, KEY), 200);
    assert_eq!(refund(KEY, false).status, 400, "refunded already");

    // A one-time order refunded with revocation: its key goes.
    let r = refund(ONE_TIME, true);
    assert_eq!(r.status, 200, "{}", r.text());
    let (kinds, events) = take(&got, 4);
    assert_eq!(
        kinds,
        [
            "refund.created",
            "order.refunded",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    assert_eq!(events[1]["data"]["subscription_id"], Value::Null);
    assert_eq!(events[2]["data"]["order_id"], ORDER);
    assert_eq!(validate_key(&em, ONE_TIME), 404);
    assert_eq!(refund(DEMO_KEY, false).status, 400, "no order");
}

#[test]
fn a_revoked_seat_sends_its_nulled_payload_then_the_members_grant() {
    let (em, got) = start(Options::default());
    let r = request(
        &em,
        "POST",
        &format!("/__emulator/keys/{SEAT}/seat/revoke"),
        Some(""),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (kinds, events) = take(&got, 3);
    assert_eq!(
        kinds,
        [
            "customer_seat.revoked",
            "benefit_grant.revoked",
            "customer.state_changed"
        ]
    );
    let seat = &events[0]["data"];
    assert_eq!(seat["status"], "revoked");
    assert_eq!(seat["subscription_id"], SUBSCRIPTION);
    for nulled in ["customer_id", "member_id", "member", "email"] {
        assert_eq!(seat[nulled], Value::Null, "{nulled}");
    }
    assert!(seat["revoked_at"].is_string());
    // The grant that follows says whose it was.
    let grant = &events[1]["data"];
    assert_eq!(grant["member_id"], MEMBER);
    assert_eq!(grant["customer_id"], CUSTOMER);
    assert!(grant["properties"]["license_key_id"].is_string());
    assert_eq!(validate_key(&em, SEAT), 404);
    // The other keys of the customer stay.
    assert_eq!(validate_key(&em, KEY), 200);
    let again = request(
        &em,
        "POST",
        &format!("/__emulator/keys/{SEAT}/seat/revoke"),
        Some(""),
    );
    assert_eq!(again.status, 400);
    let none = request(
        &em,
        "POST",
        &format!("/__emulator/keys/{KEY}/seat/revoke"),
        Some(""),
    );
    assert_eq!(none.status, 400);
}
