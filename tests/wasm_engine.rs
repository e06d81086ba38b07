//! The npm package's sans-IO engine (`polar_license::wasm::engine::Engine`), step by step with
//! no server and no JS storage, in node and in headless Chromium: its records are the native
//! cache format under the native MAC (both ways), and its answers carry the reason codes and
//! extras `LicenseError` needs. (The package's IO layer around it is tested by tests/js.)
#![cfg(target_arch = "wasm32")]

use polar_license::cache::{self, MacKey};
use polar_license::wasm::engine::{secret_ok, Engine};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const KEY: &str = "ENGINE-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const ACTIVATION: &str = "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c";
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NOW: f64 = 1_790_000_000.0;

fn license(activation: bool) -> Value {
    json!({
        "id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "created_at": "2025-01-01T00:00:00Z",
        "modified_at": null,
        "organization_id": ORG,
        "customer_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        "customer": {
            "id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
            "created_at": "2025-01-01T00:00:00Z",
            "organization_id": ORG,
            "metadata": { "plan_tier": "pro" }
        },
        "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
        "key": KEY,
        "display_key": "****-6ED415",
        "status": "granted",
        "limit_activations": 3,
        "usage": 0,
        "limit_usage": null,
        "validations": 1,
        "last_validated_at": null,
        "expires_at": null,
        "activation": if activation {
            json!({
                "id": ACTIVATION,
                "license_key_id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                "label": "laptop",
                "meta": {},
                "created_at": "2025-01-01T00:00:00Z",
                "modified_at": null
            })
        } else {
            Value::Null
        }
    })
}

fn engine(extra: Value) -> Engine {
    let mut options = json!({ "organizationId": ORG, "appSecret": "app" });
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    Engine::new(&options.to_string(), JsValue::UNDEFINED).unwrap()
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The native MAC of `KEY`'s record: key, org, install secret and the framed (machine, app
/// secret) pair, as the native `Licensing` derives it.
fn native_mac() -> MacKey {
    let secret: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&SECRET[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut extra = Vec::new();
    for part in [&b""[..], &b"app"[..]] {
        extra.extend_from_slice(&(part.len() as u64).to_be_bytes());
        extra.extend_from_slice(part);
    }
    MacKey::derive(KEY, ORG, &secret, Some(&extra))
}

/// One check: step 1, then (if it asks) step 2 with `status` and `body`.
fn check(e: &Engine, stored: Option<String>, now: f64, status: u16, body: &Value) -> Value {
    let begin = parsed(&e.check_begin(KEY.into(), SECRET, stored.clone(), now, None, None));
    if begin.get("ask").is_none() {
        return json!({ "answer": begin, "write": null, "asked": false });
    }
    let body = body.to_string().into_bytes();
    let mut end = parsed(&e.check_end(
        KEY.into(),
        SECRET,
        stored,
        now,
        None,
        None,
        status,
        body,
        None,
        None,
        0,
        String::new(),
    ));
    end["asked"] = json!(true);
    end
}

#[wasm_bindgen_test]
fn engine_records_are_the_native_format_both_ways() {
    let e = engine(json!({}));
    assert!(e.slot(KEY).starts_with("polar-license.v1-"));
    assert_eq!(
        e.slot(KEY),
        format!("polar-license.{}", cache::slot_name(ORG, KEY))
    );

    let first = check(&e, None, NOW, 200, &license(false));
    assert_eq!(first["asked"], true);
    assert_eq!(first["answer"]["ok"]["source"], "online");
    assert_eq!(first["answer"]["ok"]["license"]["key"], KEY);
    let text = first["write"].as_str().unwrap().to_string();
    assert!(text.starts_with("polar-license-cache v1\n"), "{text}");
    assert!(!text.contains(KEY));

    // Natively decoded with the native MAC.
    let mut record = cache::decode(text.as_bytes(), &native_mac()).unwrap();
    assert_eq!(record.display_key, "****-6ED415");
    assert_eq!(
        record.good.as_ref().map(|g| g.verified_at),
        Some(NOW as i64)
    );

    // A natively encoded record is trusted by the engine: fresh, so no request.
    record.latest_seen += 60;
    let native = String::from_utf8(cache::encode(&record, &native_mac())).unwrap();
    let again = check(&e, Some(native.clone()), NOW + 60.0, 0, &Value::Null);
    assert_eq!(again["asked"], false);
    assert_eq!(again["answer"]["ok"]["source"], "cache");
    assert_eq!(again["answer"]["ok"]["license"]["key"], KEY);
    let status = parsed(&e.status(KEY.into(), SECRET, Some(native), NOW + 60.0));
    assert_eq!(status["ok"]["state"], "present");
    assert_eq!(status["ok"]["verifiedAt"], NOW as i64);

    // Another app secret cannot read it (untrusted, so no cache), nor can an edited copy.
    let stranger = engine(json!({ "appSecret": "other" }));
    let status = parsed(&stranger.status(KEY.into(), SECRET, Some(text.clone()), NOW));
    assert_eq!(status["ok"]["state"], "untrusted");
    assert_eq!(status["ok"]["untrusted"], "bad_mac");
    let edited = text.replace("\"granted\"", "\"grantex\"");
    let status = parsed(&e.status(KEY.into(), SECRET, Some(edited), NOW));
    assert_eq!(status["ok"]["untrusted"], "bad_mac");

    assert!(secret_ok(SECRET));
    assert!(!secret_ok("not hex"));
}

#[wasm_bindgen_test]
fn engine_answers_carry_codes_and_extras() {
    let e = engine(json!({}));
    let fail = |fail: u8, detail: &str| {
        parsed(&e.check_end(
            KEY.into(),
            SECRET,
            None,
            NOW,
            None,
            None,
            0,
            Vec::new(),
            None,
            None,
            fail,
            detail.into(),
        ))
    };
    let offline = fail(1, "TypeError: fetch failed (ECONNREFUSED)");
    assert_eq!(
        offline["answer"]["error"],
        json!({ "code": "offline", "detail": "TypeError: fetch failed (ECONNREFUSED)", "timeout": false })
    );
    assert_eq!(offline["write"], Value::Null);
    assert_eq!(
        fail(2, "no complete answer within 10000 ms")["answer"]["error"]["timeout"],
        true
    );
    assert_eq!(
        fail(3, "truncated")["answer"]["error"]["code"],
        "protocol_error"
    );

    let limited = parsed(&e.check_end(
        KEY.into(),
        SECRET,
        None,
        NOW,
        None,
        None,
        429,
        Vec::new(),
        None,
        Some("30".into()),
        0,
        String::new(),
    ));
    assert_eq!(limited["answer"]["error"]["code"], "rate_limited");
    assert_eq!(limited["answer"]["error"]["retryAfter"], 30);
    // The block is remembered: the next check within it sends nothing.
    let stored = limited["write"].as_str().map(str::to_string);
    assert!(stored.is_some());
    let blocked = parsed(&e.check_begin(KEY.into(), SECRET, stored, NOW + 10.0, None, None));
    assert_eq!(blocked["error"]["code"], "rate_limited");

    let denied = check(
        &e,
        None,
        NOW,
        404,
        &json!({ "error": "ResourceNotFound", "detail": "License key is no longer active." }),
    );
    assert_eq!(
        denied["answer"]["error"],
        json!({ "code": "inactive", "detail": "License key is no longer active.", "status": 404 })
    );
    assert_eq!(
        denied["strict"], true,
        "a tombstone that must not leave a grant behind"
    );

    // With `feature`: a denial answers (not granted), an error-class reason fails.
    let feature =
        parsed(&e.check_begin(String::new(), SECRET, None, NOW, None, Some("pro".into())));
    assert_eq!(feature["error"]["field"], "key");

    let bad = Engine::new(r#"{"organizationId":"nope"}"#, JsValue::UNDEFINED)
        .err()
        .unwrap();
    let bad = parsed(&bad.as_string().unwrap());
    assert_eq!(bad["error"]["code"], "invalid_input");
    assert_eq!(bad["error"]["field"], "organization_id");
}

#[wasm_bindgen_test]
fn an_activation_is_remembered_and_validated_by_later_checks() {
    let e = engine(json!({ "machineId": "electron-machine" }));
    let ask =
        parsed(&e.activate_begin(KEY.into(), r#"{"label":"laptop","conditions":{"seat":1}}"#));
    let body = ask["ask"]["body"].as_str().unwrap();
    assert!(body.contains("\"machine_fingerprint\""), "{body}");
    assert!(ask["ask"]["url"].as_str().unwrap().ends_with("/activate"));

    let mut read = license(true)["activation"].clone();
    let mut key = license(false);
    key.as_object_mut().unwrap().remove("activation");
    read["license_key"] = key;
    let answer = parsed(&e.activate_end(
        201,
        read.to_string().into_bytes(),
        None,
        None,
        0,
        String::new(),
    ));
    assert_eq!(
        answer["error"]["code"], "protocol_error",
        "activate answers 200, not 201"
    );
    let answer = parsed(&e.activate_end(
        200,
        read.to_string().into_bytes(),
        None,
        None,
        0,
        String::new(),
    ));
    assert_eq!(answer["ok"]["activation"]["id"], ACTIVATION);

    let record = parsed(&e.remember(
        KEY.into(),
        r#"{"label":"laptop","conditions":{"seat":1}}"#,
        SECRET,
        None,
        ACTIVATION.into(),
        "laptop".into(),
        NOW,
    ));
    let stored = record["ok"].as_str().map(str::to_string);
    let ask = parsed(&e.check_begin(KEY.into(), SECRET, stored.clone(), NOW, None, None));
    let body = ask["ask"]["body"].as_str().unwrap();
    assert!(body.contains(ACTIVATION), "{body}");
    assert!(body.contains("\"seat\":1"), "{body}");

    let gone = parsed(&e.deactivate_begin(KEY.into(), "", SECRET, stored.clone()));
    assert_eq!(gone["id"], ACTIVATION);
    let end = parsed(&e.deactivate_end(
        KEY.into(),
        SECRET,
        stored,
        ACTIVATION.into(),
        204,
        Vec::new(),
        None,
        None,
        0,
        String::new(),
    ));
    assert_eq!(end["answer"]["ok"]["activationId"], ACTIVATION);
    let after = end["write"].as_str().map(str::to_string);
    let none = parsed(&e.deactivate_begin(KEY.into(), "", SECRET, after));
    assert_eq!(none["error"]["field"], "activation_id");
}
