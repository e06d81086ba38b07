//! What the entitlements and lifecycle suites seed and read alike: a Feature Flag benefit, the
//! tier key of a subscription granting it, and a webhook endpoint's deliveries; and a raw HTTP
//! request as a client sends it (the checkouts suite), and a seeded key's id.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license_emulator::{Emulator, Options, SeedKey, DEMO_TOKEN};
use polar_license_testkit::http::{json_receiver, json_request, take_deliveries, HttpAnswer};
/// The Feature Flag benefit, the license benefit the keys are bought with, the keys' customer,
/// the tier key's subscription: the testkit's ids.
pub use polar_license_testkit::ids::{CUSTOMER, LICENSE, PRO, SUBSCRIPTION};
use polar_license_testkit::{customers_key, subscription_with_id};
use serde_json::{json, Value};

/// The tier key.
pub const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";

/// The tier key: the customer's (`tier@example.com`), two activations, of the subscription,
/// granting the flag.
pub fn tier_key() -> SeedKey {
    SeedKey {
        customer_email: Some("tier@example.com".into()),
        limit_activations: Some(2),
        subscription: Some(subscription_with_id(SUBSCRIPTION)),
        benefits: vec![PRO.into()],
        ..customers_key(KEY, LICENSE, CUSTOMER)
    }
}

/// A raw webhook endpoint for `events` registered (201) with `em` through Polar's route, on
/// loopback: every delivery's body, in the order received.
pub fn subscribe(em: &Emulator, events: &[&str]) -> Arc<Mutex<Vec<Value>>> {
    let (url, got) = json_receiver();
    let body = json!({"url": url, "format": "raw", "events": events}).to_string();
    let r = json_request(
        em.port(),
        "POST",
        "/v1/webhooks/endpoints",
        Some(&body),
        Some(DEMO_TOKEN),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    got
}

/// The types of the events a [`subscribe`]d endpoint received once `n` have come (then a
/// further `settle` for any that should not), and their bodies; the received list emptied.
pub fn take_events(
    got: &Mutex<Vec<Value>>,
    n: usize,
    settle: Duration,
) -> (Vec<String>, Vec<Value>) {
    let events = take_deliveries(got, n, settle);
    let kinds = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    (kinds, events)
}

/// `r` is Polar's error answer: `status`, `{"error": error, "detail": detail}` as JSON.
pub fn assert_error(r: &HttpAnswer, status: u16, error: &str, detail: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), json!({"error": error, "detail": detail}));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// `GET path` with the organization token: its JSON body, once it is a 200.
pub fn ok(em: &Emulator, path: &str) -> Value {
    let r = json_request(em.port(), "GET", path, None, Some(DEMO_TOKEN));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// The emulator serving the demo seed with `options`.
pub fn demo_with(options: Options) -> Emulator {
    Emulator::start(polar_license_emulator::Seed::demo(), options).expect("starts")
}

/// The id Polar gave the seeded key `key` of `em`'s.
pub fn key_id(em: &Emulator, key: &str) -> String {
    em.key(key).expect("a key")["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

/// `method path` sent to `em` over loopback as an HTTP/1.1 client sends it (`headers` added, a
/// `POST` with its JSON body and `Content-Length`), the connection closed after: its answer.
pub fn raw_request(
    em: &Emulator,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> polar_license_testkit::http::HttpAnswer {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body);
    polar_license_testkit::http::raw_exchange(em.port(), &text)
}

/// A `POST` of `body` as JSON to `path` by [`raw_request`]: its answer.
pub fn raw_post(
    em: &Emulator,
    path: &str,
    body: &serde_json::Value,
) -> polar_license_testkit::http::HttpAnswer {
    raw_request(em, "POST", path, Some(&body.to_string()), &[])
}
