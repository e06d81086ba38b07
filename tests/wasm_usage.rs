//! Usage reports on the Rust-on-wasm face (issue #68 item 3), in node and in headless browsers
//! (`scripts/test-wasm.sh`): `AsyncLicensing::record_usage` drives the core's `BufferedUsage`
//! (the same `RecordUsage` every face drives, and the backlog's order of steps) against the
//! native relay (`relay serve --record-usage`, `POLAR_WASM_USAGE_RELAY_URL`) in front of an
//! emulator seeded with a meter summing `units` (`POLAR_WASM_USAGE_URL`). Each test adds its own
//! key of a new customer, so Polar's meter of that customer counts only its reports:
//!
//! - a report recorded with the app's id, the same id again a duplicate, counted once;
//! - a send whose answer is lost on the way: the core sends the same id again, counted once;
//! - a report while the relay is down (`POLAR_WASM_DEAD_URL`): `usage_backlog`, kept in the
//!   licensing's storage (its key sealed), then sent first by the next report once the relay is
//!   back, both ingested once; a flush after that sends nothing.
#![cfg(target_arch = "wasm32")]

use gloo_net::http::Request;
use polar_license::proto::{HttpRequest, HttpResponse};
use polar_license::transport::{TransportError, TransportErrorKind};
use polar_license::usage::{UsageAnswer, BACKLOG_CODE};
use polar_license::wasm::{
    AsyncLicensing, AsyncStore, AsyncTransport, FetchTransport, MemoryStore,
};
use polar_license_testkit::fetch::{dead, new_key, sleep_ms, usage_polar, usage_relay};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const TOKEN: &str = "polar_oat_emulator_demo_0123456789abcdef";
/// The seeded meter (`tokens_used`, a sum of `units`) and its credit benefit.
const TOKENS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
const METER: &str = "tokens_used";

/// A fresh key of a new customer, granted the meter's credits.
async fn customer_key() -> (String, String) {
    let customer = polar_license_testkit::fetch::random_uuid4();
    let key = new_key(
        usage_polar(),
        "USE",
        json!({ "customer_id": customer, "benefits": [CREDIT] }),
    )
    .await;
    (key, customer)
}

fn app(store: MemoryStore) -> AsyncLicensing {
    AsyncLicensing::builder(ORG)
        .base_url(usage_polar())
        .store(store)
        .build()
        .expect("licensing builds")
}

/// The units Polar's meter shows `customer` consumed (the organization's read).
async fn consumed(customer: &str) -> f64 {
    let resp = Request::get(&format!(
        "{}/v1/customer-meters/?customer_id={customer}",
        usage_polar()
    ))
    .header("authorization", &format!("Bearer {TOKEN}"))
    .send()
    .await
    .expect("the meters route");
    let body: Value = serde_json::from_str(&resp.text().await.expect("text")).expect("json");
    body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["meter_id"] == TOKENS)
        .and_then(|m| m["consumed_units"].as_f64())
        .unwrap_or(0.0)
}

/// Waits (15 s at most) until Polar's meter shows `want` consumed by `customer`, then a while
/// longer to see it does not grow past it (the relay ingests in the background).
async fn until_consumed(customer: &str, want: f64) {
    let mut got = 0.0;
    for _ in 0..150 {
        got = consumed(customer).await;
        if (got - want).abs() < 1e-9 {
            break;
        }
        sleep_ms(100).await;
    }
    assert_eq!(got, want, "Polar's meter");
    sleep_ms(600).await;
    assert_eq!(consumed(customer).await, want, "counted once");
}

fn recorded(answer: &Result<UsageAnswer, polar_license::Error>) -> bool {
    match answer {
        Ok(UsageAnswer::Recorded { duplicate, .. }) => *duplicate,
        other => panic!("not recorded: {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn a_report_counts_once_with_its_id() {
    let (key, customer) = customer_key().await;
    let app = app(MemoryStore::new());
    let id = format!("wasm-{}", polar_license_testkit::fetch::random_hex(16));
    let (sent, answer) = app
        .record_usage(Some(usage_relay()), key.as_str(), METER, 2.0, Some(&id))
        .await;
    assert_eq!(sent, id);
    assert!(!recorded(&answer), "recorded, not a duplicate");
    // The app's retry with the same id: a duplicate.
    let (_, again) = app
        .record_usage(Some(usage_relay()), key.as_str(), METER, 2.0, Some(&id))
        .await;
    assert!(recorded(&again), "the same id: recorded before");
    until_consumed(&customer, 2.0).await;
}

/// The transport: `fetch`, the first answer lost after the relay had it.
fn lossy(sends: Rc<Cell<u32>>) -> impl AsyncTransport + 'static {
    move |request: HttpRequest| {
        let sends = sends.clone();
        async move {
            sends.set(sends.get() + 1);
            let fetch = FetchTransport::new(Duration::from_secs(5), 1 << 20);
            let response: HttpResponse = fetch.send(&request).await?;
            if sends.get() == 1 && request.url.ends_with("/v1/usage/record") {
                return Err(TransportError::new(
                    TransportErrorKind::Reset,
                    "the answer was lost (test)",
                ));
            }
            Ok(response)
        }
    }
}

#[wasm_bindgen_test]
async fn a_send_whose_answer_was_lost_is_sent_again_with_its_id_and_counted_once() {
    let (key, customer) = customer_key().await;
    let sends = Rc::new(Cell::new(0));
    let app = AsyncLicensing::builder(ORG)
        .base_url(usage_polar())
        .store(MemoryStore::new())
        .build_with_transport(lossy(sends.clone()))
        .expect("licensing builds");
    let (id, answer) = app
        .record_usage(Some(usage_relay()), key.as_str(), METER, 3.0, None)
        .await;
    assert_eq!(sends.get(), 2, "sent again once");
    assert_eq!(id.len(), 36, "a UUID v4: {id}");
    assert!(
        recorded(&answer),
        "the second send found the first recorded"
    );
    until_consumed(&customer, 3.0).await;
}

#[wasm_bindgen_test]
async fn a_report_while_the_relay_is_down_waits_in_the_backlog_then_is_ingested_once() {
    let (key, customer) = customer_key().await;
    let store = MemoryStore::new();
    let app = app(store.clone());
    let (first, answer) = app
        .record_usage(Some(dead()), key.as_str(), METER, 4.0, None)
        .await;
    let answer = answer.expect("an answer");
    assert_eq!(answer.code(), BACKLOG_CODE, "{answer:?}");
    assert!(matches!(answer, UsageAnswer::Backlog { .. }));
    assert_eq!(
        app.usage_backlog().await.expect("read"),
        vec![first.clone()]
    );
    // Kept in the licensing's storage, the key sealed.
    let name = format!("polar-license.usage-backlog-{ORG}");
    let stored = store
        .get(&name)
        .await
        .expect("read")
        .expect("the backlog stored");
    assert!(stored.contains(&first), "{stored}");
    assert!(!stored.contains(&key), "the key in plain text: {stored}");
    // Still down: still waiting, nothing lost.
    assert_eq!(app.flush_usage(Some(dead())).await.expect("a flush"), 1);
    // Another licensing over the same storage (the app started again), the relay back: the
    // waiting report goes first, then this one.
    let again = self::app(store.clone());
    let (second, answer) = again
        .record_usage(Some(usage_relay()), key.as_str(), METER, 1.0, None)
        .await;
    assert!(!recorded(&answer));
    assert_ne!(first, second);
    assert!(again.usage_backlog().await.expect("read").is_empty());
    until_consumed(&customer, 5.0).await;
    assert_eq!(
        again
            .flush_usage(Some(usage_relay()))
            .await
            .expect("a flush"),
        0
    );
    sleep_ms(300).await;
    assert_eq!(consumed(&customer).await, 5.0, "each once");
}
