//! The wasm face of the emulator: what JS passes in (options, header pairs, times), and the
//! answers as the core gives them; run by scripts/test-wasm.sh in node.

use std::time::Duration;

use polar_license_emulator::{DEMO_KEY, DEMO_KEY_REVOKED, DEMO_ORGANIZATION_ID};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::{header_pairs, read_options, Emulator};

const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";
/// 2026-09-21T12:00:00Z.
const NOON: f64 = 1_789_992_000_000.0;

fn emulator() -> Emulator {
    Emulator::new(None, None, &[7; 32], NOON, 0.0)
        .map_err(|_| "new")
        .unwrap()
}

fn post(e: &mut Emulator, path: &str, body: &Value, at_ms: f64) -> crate::Answer {
    let body = body.to_string().into_bytes();
    let headers = vec![
        "Content-Type".to_string(),
        "application/json".to_string(),
        "Content-Length".to_string(),
        body.len().to_string(),
    ];
    e.handle(
        "POST".into(),
        path.into(),
        headers,
        body,
        "127.0.0.1".into(),
        NOON + at_ms,
        at_ms,
    )
    .map_err(|_| "handle")
    .unwrap()
}

fn json_of(a: &crate::Answer) -> Value {
    serde_json::from_slice(&a.body()).unwrap()
}

fn validate(key: &str) -> Value {
    json!({ "key": key, "organization_id": DEMO_ORGANIZATION_ID })
}

#[wasm_bindgen_test]
fn options_are_read_with_the_native_defaults() {
    let o = read_options("null").unwrap();
    assert_eq!(o, polar_license_emulator::Options::default());
    let o = read_options(
        r#"{"rateLimit":true,"rateLimitBlockMs":1500,"sandbox":true,"apiVersions":["2026-10"],"apiVersion":"2026-10"}"#,
    )
    .unwrap();
    assert!(o.rate_limit && o.sandbox);
    assert_eq!(o.rate_limit_block, Duration::from_millis(1500));
    assert_eq!(o.api_versions, vec!["2026-10".to_string()]);
    assert_eq!(
        read_options(r#"{"port":1}"#).unwrap_err(),
        "unknown option port"
    );
    assert_eq!(
        read_options(r#"{"rateLimit":"yes"}"#).unwrap_err(),
        "options.rateLimit has the wrong type"
    );
    assert!(read_options("[]").is_err());
    assert!(read_options("{").is_err());
}

#[wasm_bindgen_test]
fn headers_come_in_pairs() {
    let pairs = header_pairs(vec!["a".into(), "1".into(), "a".into(), "2".into()]).unwrap();
    assert_eq!(
        pairs,
        vec![("a".into(), "1".into()), ("a".into(), "2".into())]
    );
    assert!(header_pairs(vec!["a".into()]).is_err());
}

#[wasm_bindgen_test]
fn the_demo_seed_answers_as_the_native_emulator() {
    let mut e = emulator();
    assert_eq!(e.organization_id(), DEMO_ORGANIZATION_ID);
    assert_eq!(e.keys()[0], DEMO_KEY);
    assert!(e
        .banner()
        .starts_with(&format!("key {DEMO_KEY} (granted, benefit ")));

    let a = post(&mut e, VALIDATE, &validate(DEMO_KEY), 1_500.0);
    assert_eq!((a.status(), a.delivery().as_str()), (200, "whole"));
    assert_eq!(
        a.headers()[..2],
        [
            "date".to_string(),
            "Mon, 21 Sep 2026 12:00:01 GMT".to_string()
        ]
    );
    assert_eq!(
        json_of(&a)["last_validated_at"],
        "2026-09-21T12:00:01.500000Z"
    );
    assert_eq!(e.request_count(), 1.0);

    let a = post(&mut e, VALIDATE, &validate(DEMO_KEY_REVOKED), 2_000.0);
    assert_eq!(a.status(), 404);
    assert_eq!(json_of(&a)["detail"], "License key is no longer active.");
}

#[wasm_bindgen_test]
fn faults_and_controls() {
    let mut e = emulator();
    e.set_fault(Some(r#"{"kind":"delay","ms":250}"#.into()))
        .map_err(|_| "fault")
        .unwrap();
    let a = post(&mut e, VALIDATE, &validate(DEMO_KEY), 0.0);
    assert_eq!(
        (a.status(), a.delivery().as_str(), a.amount()),
        (0, "delay", 250.0)
    );
    assert_eq!(e.fault().as_deref(), Some(r#"{"kind":"delay","ms":250}"#));
    e.set_fault(None).map_err(|_| "clear").unwrap();
    assert_eq!(e.fault(), None);

    e.add_key(
        r#"{"key":"WASM-1","limit_activations":1}"#.into(),
        NOON,
        0.0,
    )
    .map_err(|_| "add")
    .unwrap();
    let a = post(&mut e, VALIDATE, &validate("WASM-1"), 10.0);
    assert_eq!(a.status(), 200);
    assert!(e
        .update_key(
            "WASM-1".into(),
            r#"{"status":"disabled"}"#.into(),
            NOON,
            20.0
        )
        .map_err(|_| "update")
        .unwrap());
    let key: Value = serde_json::from_str(&e.key("WASM-1".into()).unwrap()).unwrap();
    assert_eq!(key["status"], "disabled");
    assert_eq!(e.activations("WASM-1".into()), "[]");
    let rotated = e
        .rotate_key("WASM-1".into(), NOON, 30.0)
        .map_err(|_| "rotate")
        .unwrap()
        .unwrap();
    assert_ne!(rotated, "WASM-1");
    assert_eq!(e.key("WASM-1".into()), None);
    e.reset_request_count();
    assert_eq!(e.request_count(), 0.0);
    e.set_clock_offset(86_400.0).map_err(|_| "offset").unwrap();
    assert!(e.set_clock_offset(0.5).is_err());
}
