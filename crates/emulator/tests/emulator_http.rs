//! Raw HTTP/1.1 tests of the Polar emulator, against `docs/polar-api.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use polar_license_emulator::{
    Emulator, Fault, KeyUpdate, Options, Seed, SeedKey, SeedMember, SeedOrder, SeedSubscription,
    SeedToken, API_VERSIONS, CURRENT_API_VERSION, DEMO_BENEFIT_ID, DEMO_CUSTOMER_ID, DEMO_KEY,
    DEMO_KEY_DISABLED, DEMO_KEY_EXPIRED, DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_REVOKED, DEMO_KEY_USAGE,
    DEMO_ORGANIZATION_ID, DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::budgeted_emulator;
use polar_license_testkit::http::HttpAnswer;
use serde_json::{json, Value};

mod common;
use common::{assert_error, demo_with};

const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";
const ACTIVATE: &str = "/v1/customer-portal/license-keys/activate";
const DEACTIVATE: &str = "/v1/customer-portal/license-keys/deactivate";
const ORG: &str = DEMO_ORGANIZATION_ID;
const OTHER_V4: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

// ---- a tiny raw HTTP client (the answer read into the suites' shared `HttpAnswer`) ------

fn read_head(reader: &mut impl BufRead) -> Option<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some((status, headers))
}

fn read_response(reader: &mut impl BufRead, head_request: bool) -> HttpAnswer {
    let (status, headers) = read_head(reader).expect("a response head");
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
    let mut body = vec![0u8; if head_request { 0 } else { length.unwrap_or(0) }];
    reader.read_exact(&mut body).expect("the whole body");
    HttpAnswer {
        status,
        headers,
        body,
    }
}

fn connect(em: &Emulator) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", em.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Sends raw bytes on a new connection and reads one response.
fn raw(em: &Emulator, request: &[u8]) -> HttpAnswer {
    let mut stream = connect(em);
    stream.write_all(request).expect("write");
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, request.starts_with(b"HEAD "))
}

fn request(
    em: &Emulator,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpAnswer {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        em.port()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("Connection: close\r\n\r\n");
    if let Some(body) = body {
        text.push_str(body);
    }
    raw(em, text.as_bytes())
}

fn post(em: &Emulator, path: &str, body: &Value) -> HttpAnswer {
    request(em, "POST", path, Some(&body.to_string()), &[])
}

fn post_h(em: &Emulator, path: &str, body: &Value, headers: &[(&str, &str)]) -> HttpAnswer {
    request(em, "POST", path, Some(&body.to_string()), headers)
}

fn demo() -> Emulator {
    Emulator::start(Seed::demo(), Options::default()).expect("emulator starts")
}

fn validate(em: &Emulator, key: &str, extra: Value) -> HttpAnswer {
    let mut body = json!({"key": key, "organization_id": ORG});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(em, VALIDATE, &body)
}

fn activate(em: &Emulator, key: &str, extra: Value) -> HttpAnswer {
    let mut body = json!({"key": key, "organization_id": ORG, "label": "Jane's MacBook Pro"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(em, ACTIVATE, &body)
}

fn deactivate(em: &Emulator, key: &str, activation_id: &str) -> HttpAnswer {
    post(
        em,
        DEACTIVATE,
        &json!({"key": key, "organization_id": ORG, "activation_id": activation_id}),
    )
}

fn activation_id(r: &HttpAnswer) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_str().expect("an id").to_string()
}

fn not_found(r: &HttpAnswer, detail: &str) {
    assert_error(r, 404, "ResourceNotFound", detail);
}

fn not_permitted(r: &HttpAnswer, detail: &str) {
    assert_error(r, 403, "NotPermitted", detail);
}

/// Top-level keys of a JSON object body, in the order they appear on the wire.
fn key_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0usize);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
                if depth == 1 && bytes.get(i + 1) == Some(&b':') {
                    keys.push(text[start + 1..i].to_string());
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                start = i;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

const KEY_FIELDS: [&str; 18] = [
    "id",
    "created_at",
    "modified_at",
    "organization_id",
    "user_id",
    "customer_id",
    "user",
    "customer",
    "benefit_id",
    "key",
    "display_key",
    "status",
    "limit_activations",
    "usage",
    "limit_usage",
    "validations",
    "last_validated_at",
    "expires_at",
];

fn is_timestamp(v: &Value) -> bool {
    let Some(t) = v.as_str() else { return false };
    let b = t.as_bytes();
    (t.len() == 20 || t.len() == 27)
        && b[4] == b'-'
        && b[10] == b'T'
        && t.ends_with('Z')
        && (t.len() == 20 || b[19] == b'.')
}

// ---- seed ---------------------------------------------------------------------------------

#[test]
fn seed_from_json_accepts_the_contract_example() {
    let example = r#"{
      "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
      "license_keys": [
        {
          "key": "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A",
          "organization_id": "optional; defaults to the top-level one",
          "status": "granted",
          "limit_activations": 3,
          "limit_usage": null,
          "usage": 0,
          "expires_at": null,
          "benefit_id": "optional UUID v4",
          "customer_id": "optional UUID v4",
          "customer_email": "optional"
        }
      ]
    }"#;
    let seed = Seed::from_json(example).expect("the seed example of docs/interfaces.md §3 parses");
    assert_eq!(seed.organization_id, ORG);
    assert_eq!(seed.license_keys.len(), 1);
    let key = &seed.license_keys[0];
    assert_eq!(key.key, DEMO_KEY);
    assert_eq!(key.organization_id, None);
    assert_eq!(key.benefit_id, None);
    assert_eq!(key.limit_activations, Some(3));
    assert!(seed.access_tokens.is_empty());

    let em = Emulator::start(seed, Options::default()).expect("starts");
    assert_eq!(em.organization_id(), ORG);
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["limit_activations"], 3);
    assert_eq!(body["status"], "granted");
    let benefit = body["benefit_id"].as_str().expect("generated benefit");
    assert_eq!(uuid_version(benefit), Some('4'));

    // Minimal seed: defaults.
    let seed = Seed::from_json(r#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","license_keys":[{"key":"K"}]}"#)
        .expect("minimal seed");
    assert_eq!(seed.license_keys[0], SeedKey::new("K"));
    // Errors are reported, not ignored.
    assert!(Seed::from_json(r#"{"organization_id":"nope","license_keys":[]}"#).is_err());
    assert!(Seed::from_json(&example.replace("\"granted\"", "\"paused\"")).is_err());
    let duplicate = r#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","license_keys":[{"key":"K"},{"key":"K"}]}"#;
    assert!(Seed::from_json(duplicate).is_err());
    let tokens = r#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","license_keys":[],"access_tokens":[{"token":"polar_oat_x"}]}"#;
    let seed = Seed::from_json(tokens).expect("tokens");
    assert!(seed.access_tokens[0]
        .scopes
        .iter()
        .any(|s| s == "license_keys:write"));
}

fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36).then(|| id.as_bytes()[14] as char)
}

// ---- docs/polar-api.md §6.1–6.3 success paths ----------------------------------------------------------------

#[test]
fn minimal_validate_returns_the_full_shape_with_null_activation() {
    let em = demo();
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));
    assert_eq!(r.header("x-polar-sandbox"), None);
    assert!(r.header("date").is_some());

    let mut expected_order: Vec<String> = KEY_FIELDS.iter().map(|s| s.to_string()).collect();
    expected_order.push("activation".to_string());
    assert_eq!(key_order(&r.text()), expected_order);

    let body = r.json();
    assert_eq!(body["activation"], Value::Null);
    assert_eq!(body["validations"], 1);
    assert_eq!(body["usage"], 0);
    assert_eq!(body["modified_at"], Value::Null, "pre-update modified_at");
    assert!(is_timestamp(&body["last_validated_at"]));
    assert!(is_timestamp(&body["created_at"]));
    assert_eq!(body["expires_at"], Value::Null);
    assert_eq!(body["key"], DEMO_KEY);
    assert_eq!(body["display_key"], "****-4C5B6A");
    assert_eq!(body["organization_id"], ORG);
    assert_eq!(body["customer_id"], DEMO_CUSTOMER_ID);
    assert_eq!(body["user_id"], DEMO_CUSTOMER_ID);
    assert_eq!(body["benefit_id"], DEMO_BENEFIT_ID);
    assert_eq!(
        body["user"],
        json!({
            "id": DEMO_CUSTOMER_ID,
            "email": "jane.doe@gmail.com",
            "public_name": "j",
            "avatar_url": "https://www.gravatar.com/avatar/831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982?d=404"
        })
    );
    let customer = &body["customer"];
    assert_eq!(
        key_order(&serde_json::to_string(customer).unwrap_or_default()).len(),
        18
    );
    assert_eq!(customer["id"], DEMO_CUSTOMER_ID);
    assert_eq!(customer["organization_id"], ORG);
    assert_eq!(customer["type"], "individual");
    assert_eq!(customer["metadata"], json!({}));
    assert_eq!(customer["email_verified"], true);
    for field in [
        "name",
        "billing_name",
        "billing_address",
        "tax_id",
        "deleted_at",
    ] {
        assert_eq!(customer[field], Value::Null, "{field}");
    }
    assert_eq!(customer["avatar_url"], body["user"]["avatar_url"]);

    // The counter moved; the key read back shows the flushed modified_at.
    let again = validate(&em, DEMO_KEY, json!({})).json();
    assert_eq!(again["validations"], 2);
    assert!(is_timestamp(&again["modified_at"]));
    let key = em.key(DEMO_KEY).expect("key");
    assert_eq!(key["validations"], 2);
    assert!(key.get("activation").is_none());
}

#[test]
fn activate_then_validate_with_activation_conditions_and_usage() {
    let em = demo();
    let r = activate(
        &em,
        DEMO_KEY,
        json!({
            "conditions": {"machine_id": "c0ffee42", "major_version": 2},
            "meta": {"hostname": "janes-mbp", "os": "macOS 15.5"}
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let mut order: Vec<&str> = vec![
        "id",
        "license_key_id",
        "label",
        "meta",
        "created_at",
        "modified_at",
        "license_key",
    ];
    assert_eq!(key_order(&r.text()), order);
    let body = r.json();
    let activation = body["id"].as_str().expect("id").to_string();
    assert_eq!(uuid_version(&activation), Some('4'));
    assert_eq!(body["label"], "Jane's MacBook Pro");
    assert_eq!(
        body["meta"],
        json!({"hostname": "janes-mbp", "os": "macOS 15.5"})
    );
    assert_eq!(body["modified_at"], Value::Null);
    assert!(is_timestamp(&body["created_at"]));
    assert!(body.get("conditions").is_none());
    let license_key = &body["license_key"];
    assert_eq!(license_key["id"], body["license_key_id"]);
    assert!(license_key.get("activation").is_none());
    assert_eq!(license_key["validations"], 0, "activate does not validate");
    assert_eq!(license_key["limit_activations"], 3);
    let stored = em.activations(DEMO_KEY);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["conditions"],
        json!({"machine_id": "c0ffee42", "major_version": 2})
    );

    let r = validate(
        &em,
        DEMO_KEY,
        json!({
            "activation_id": activation,
            "benefit_id": DEMO_BENEFIT_ID,
            "customer_id": DEMO_CUSTOMER_ID,
            "conditions": {"major_version": 2, "machine_id": "c0ffee42"},
            "increment_usage": 1
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["usage"], 1);
    assert_eq!(body["validations"], 1);
    order = vec![
        "id",
        "license_key_id",
        "label",
        "meta",
        "created_at",
        "modified_at",
    ];
    let activation_text = serde_json::to_string(&body["activation"]).unwrap_or_default();
    assert_eq!(key_order(&activation_text).len(), order.len());
    assert_eq!(body["activation"]["id"], activation.as_str());
    assert_eq!(body["activation"]["meta"]["os"], "macOS 15.5");
    assert!(body["activation"].get("conditions").is_none());
}

#[test]
fn deactivate_is_204_empty_then_404() {
    let em = demo();
    let id = activation_id(&activate(&em, DEMO_KEY, json!({})));
    let r = deactivate(&em, DEMO_KEY, &id);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert!(em.activations(DEMO_KEY).is_empty());
    not_found(&deactivate(&em, DEMO_KEY, &id), "Not found");
    // A deactivated activation no longer validates.
    not_found(
        &validate(&em, DEMO_KEY, json!({"activation_id": id})),
        "Not found",
    );
}

// ---- docs/polar-api.md §6.4 error table ------------------------------------------------------------------------

#[test]
fn unknown_key_or_wrong_org_is_not_found_on_all_three() {
    let em = demo();
    let unknown = "NOPE-0000";
    not_found(&validate(&em, unknown, json!({})), "Not found");
    not_found(&activate(&em, unknown, json!({})), "Not found");
    not_found(&deactivate(&em, unknown, OTHER_V4), "Not found");
    let wrong_org = json!({"key": DEMO_KEY, "organization_id": OTHER_V4});
    not_found(&post(&em, VALIDATE, &wrong_org), "Not found");
    // Keys are case-sensitive.
    not_found(
        &validate(&em, &DEMO_KEY.to_lowercase(), json!({})),
        "Not found",
    );
    // A failed call changes nothing.
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);
}

#[test]
fn validate_status_and_expiry_errors() {
    let em = demo();
    not_found(
        &validate(&em, DEMO_KEY_REVOKED, json!({})),
        "License key is no longer active.",
    );
    not_found(
        &validate(&em, DEMO_KEY_DISABLED, json!({})),
        "License key is no longer active.",
    );
    not_found(
        &validate(&em, DEMO_KEY_EXPIRED, json!({})),
        "License key has expired.",
    );
    assert_eq!(em.key(DEMO_KEY_REVOKED).expect("key")["validations"], 0);
}

#[test]
fn validate_activation_errors() {
    let em = demo();
    // Unknown activation.
    not_found(
        &validate(&em, DEMO_KEY, json!({"activation_id": OTHER_V4})),
        "Not found",
    );
    // Activation of another key.
    let other = activation_id(&activate(&em, DEMO_KEY_USAGE, json!({})));
    not_found(
        &validate(&em, DEMO_KEY, json!({"activation_id": other})),
        "Not found",
    );
    // Conditions mismatch (no trailing period).
    let id = activation_id(&activate(
        &em,
        DEMO_KEY,
        json!({"conditions": {"machine": "A"}}),
    ));
    not_found(
        &validate(
            &em,
            DEMO_KEY,
            json!({"activation_id": id, "conditions": {"machine": "B"}}),
        ),
        "License key does not match required conditions",
    );
    not_found(
        &validate(&em, DEMO_KEY, json!({"activation_id": id})),
        "License key does not match required conditions",
    );
    // Benefit and customer mismatches.
    not_found(
        &validate(&em, DEMO_KEY, json!({"benefit_id": OTHER_V4})),
        "License key does not match given benefit.",
    );
    not_found(
        &validate(&em, DEMO_KEY, json!({"customer_id": OTHER_V4})),
        "License key does not match given user.",
    );
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);
}

#[test]
fn validate_usage_limit_error() {
    let em = demo();
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            limit_usage: Some(Some(100)),
            usage: Some(99),
            ..KeyUpdate::default()
        }
    ));
    let r = validate(&em, DEMO_KEY, json!({"increment_usage": 5}));
    assert_error(&r, 400, "BadRequest", "License key only has 1 more usages.");
    let key = em.key(DEMO_KEY).expect("key");
    assert_eq!(key["usage"], 99);
    assert_eq!(key["validations"], 0);
    // Exactly the remaining amount passes.
    let r = validate(&em, DEMO_KEY, json!({"increment_usage": 1}));
    assert_eq!(r.json()["usage"], 100);
}

#[test]
fn activate_errors() {
    let em = demo();
    let inactive = "License key is no longer active. This license key can not be activated.";
    not_permitted(&activate(&em, DEMO_KEY_REVOKED, json!({})), inactive);
    not_permitted(&activate(&em, DEMO_KEY_DISABLED, json!({})), inactive);
    not_permitted(
        &activate(&em, DEMO_KEY_EXPIRED, json!({})),
        "License key has expired.",
    );
    not_permitted(
        &activate(&em, DEMO_KEY_NO_ACTIVATIONS, json!({})),
        "This license key does not support activations. Use the /validate endpoint instead to check license validity.",
    );
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            limit_activations: Some(Some(1)),
            ..KeyUpdate::default()
        }
    ));
    activation_id(&activate(&em, DEMO_KEY, json!({})));
    not_permitted(
        &activate(&em, DEMO_KEY, json!({})),
        "License key activation limit already reached",
    );
    assert_eq!(em.activations(DEMO_KEY).len(), 1);
}

#[test]
fn deactivate_errors_and_no_status_check() {
    let em = demo();
    not_found(&deactivate(&em, DEMO_KEY, OTHER_V4), "Not found");
    let other = activation_id(&activate(&em, DEMO_KEY_USAGE, json!({})));
    not_found(&deactivate(&em, DEMO_KEY, &other), "Not found");
    // Deactivate works on a key that was revoked after activating.
    let id = activation_id(&activate(&em, DEMO_KEY, json!({})));
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    assert_eq!(deactivate(&em, DEMO_KEY, &id).status, 204);
}

fn assert_422(r: &HttpAnswer, detail: Value) {
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": "RequestValidationError", "detail": detail})
    );
}

#[test]
fn validation_errors_match_the_table() {
    let em = demo();
    assert_422(
        &post(&em, VALIDATE, &json!({"key": "K"})),
        json!([{"type":"missing","loc":["body","organization_id"],"msg":"Field required","input":{"key":"K"}}]),
    );
    assert_422(
        &post(&em, DEACTIVATE, &json!({"key": "K"})),
        json!([
            {"type":"missing","loc":["body","organization_id"],"msg":"Field required","input":{"key":"K"}},
            {"type":"missing","loc":["body","activation_id"],"msg":"Field required","input":{"key":"K"}}
        ]),
    );
    assert_422(
        &post(
            &em,
            VALIDATE,
            &json!({"key": "K", "organization_id": "not-a-uuid"}),
        ),
        json!([{"type":"uuid_parsing","loc":["body","organization_id"],"msg":"Input should be a valid UUID, invalid character: found `n` at 1","input":"not-a-uuid","ctx":{"error":"invalid character: found `n` at 1"}}]),
    );
    assert_422(
        &post(
            &em,
            ACTIVATE,
            &json!({"key": "K", "organization_id": "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c", "label": "x"}),
        ),
        json!([{"type":"uuid_version","loc":["body","organization_id"],"msg":"UUID version 4 expected","input":"0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c","ctx":{"expected_version":4}}]),
    );
    // Version 4 but not the RFC 4122 variant: pydantic-core answers uuid_version too.
    assert_422(
        &post(
            &em,
            VALIDATE,
            &json!({"key": "K", "organization_id": "d2fcbff8-108b-411e-6f2b-6383e0a8802d"}),
        ),
        json!([{"type":"uuid_version","loc":["body","organization_id"],"msg":"UUID version 4 expected","input":"d2fcbff8-108b-411e-6f2b-6383e0a8802d","ctx":{"expected_version":4}}]),
    );
    assert_422(
        &validate(&em, DEMO_KEY, json!({"increment_usage": -1})),
        json!([{"type":"greater_than_equal","loc":["body","increment_usage"],"msg":"Input should be greater than or equal to 0","input":-1,"ctx":{"ge":0}}]),
    );
    let long = "k".repeat(41);
    assert_422(
        &validate(&em, DEMO_KEY, json!({"conditions": {long.clone(): 1}})),
        json!([{"type":"string_too_long","loc":["body","conditions",long.clone(),"[key]"],"msg":"String should have at most 40 characters","input":long,"ctx":{"max_length":40}}]),
    );
    assert_422(
        &activate(&em, DEMO_KEY, json!({"meta": {"os": ""}})),
        json!([
            {"type":"string_too_short","loc":["body","meta","os","constrained-str"],"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}},
            {"type":"int_parsing","loc":["body","meta","os","int"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":""},
            {"type":"float_parsing","loc":["body","meta","os","float"],"msg":"Input should be a valid number, unable to parse string as a number","input":""},
            {"type":"bool_parsing","loc":["body","meta","os","bool"],"msg":"Input should be a valid boolean, unable to interpret input","input":""}
        ]),
    );
    let body = json!({"key": "K", "organization_id": ORG});
    assert_422(
        &post(&em, ACTIVATE, &body),
        json!([{"type":"missing","loc":["body","label"],"msg":"Field required","input":body}]),
    );
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);
}

#[test]
fn more_validation_shapes() {
    let em = demo();
    // Invalid JSON.
    let r = request(&em, "POST", VALIDATE, Some("{\"key\": }"), &[]);
    assert_422(
        &r,
        json!([{"type":"json_invalid","loc":["body",8],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]),
    );
    // Not an object.
    assert_422(
        &request(&em, "POST", VALIDATE, Some("[1]"), &[]),
        json!([{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[1]}]),
    );
    // Empty body.
    assert_422(
        &request(&em, "POST", VALIDATE, Some(""), &[]),
        json!([{"type":"missing","loc":["body"],"msg":"Field required","input":null}]),
    );
    // Every error, in field order; wrong types.
    assert_422(
        &post(
            &em,
            VALIDATE,
            &json!({"increment_usage": 1.5, "organization_id": 7, "key": 5, "conditions": [], "activation_id": null}),
        ),
        json!([
            {"type":"string_type","loc":["body","key"],"msg":"Input should be a valid string","input":5},
            {"type":"uuid_type","loc":["body","organization_id"],"msg":"UUID input should be a string, bytes or UUID object","input":7},
            {"type":"int_from_float","loc":["body","increment_usage"],"msg":"Input should be a valid integer, got a number with a fractional part","input":1.5},
            {"type":"dict_type","loc":["body","conditions"],"msg":"Input should be a valid dictionary","input":[]}
        ]),
    );
    // Bad metadata value types give four union errors.
    assert_422(
        &activate(&em, DEMO_KEY, json!({"conditions": {"a": null}})),
        json!([
            {"type":"string_type","loc":["body","conditions","a","constrained-str"],"msg":"Input should be a valid string","input":null},
            {"type":"int_type","loc":["body","conditions","a","int"],"msg":"Input should be a valid integer","input":null},
            {"type":"float_type","loc":["body","conditions","a","float"],"msg":"Input should be a valid number","input":null},
            {"type":"bool_type","loc":["body","conditions","a","bool"],"msg":"Input should be a valid boolean","input":null}
        ]),
    );
    // More than 50 entries.
    let mut many = serde_json::Map::new();
    for i in 0..51 {
        many.insert(format!("k{i}"), json!(i));
    }
    let r = validate(&em, DEMO_KEY, json!({"conditions": many.clone()}));
    assert_422(
        &r,
        json!([{"type":"too_long","loc":["body","conditions"],"msg":"Dictionary should have at most 50 items after validation, not 51","input":many,"ctx":{"field_type":"Dictionary","max_length":50,"actual_length":51}}]),
    );
    // NUL characters.
    assert_422(
        &validate(&em, "A\u{0}B", json!({})),
        json!([{"type":"value_error","loc":["body","key"],"msg":"Value error, This value contains invalid characters","input":"A\u{0}B","ctx":{"error":{}}}]),
    );
    assert_422(
        &activate(&em, DEMO_KEY, json!({"meta": {"os": "mac\u{0}"}})),
        json!([{"type":"value_error","loc":["body","meta"],"msg":"Value error, This value contains invalid characters","input":{"os":"mac\u{0}"},"ctx":{"error":{}}}]),
    );
    // Lax integers are accepted; extra fields ignored.
    for inc in [json!("2"), json!(2.0)] {
        let r = validate(
            &em,
            DEMO_KEY,
            json!({"increment_usage": inc, "unexpected": true}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(em.key(DEMO_KEY).expect("key")["usage"], 4);
    // A non-JSON content type: the body is bytes, not an object.
    let r = raw(
        &em,
        format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes(),
    );
    assert_422(
        &r,
        json!([{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"{}"}]),
    );
}

#[test]
fn junk_bearer_token_is_401_invalid_token_on_public_routes() {
    let em = demo();
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    let r = post_h(&em, VALIDATE, &body, &[("Authorization", "Bearer xyz")]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."})
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"polar\", error=\"invalid_token\", error_description=\"The access token provided is expired, revoked, malformed, or invalid for other reasons.\"")
    );
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));
    // An empty Bearer value or another scheme is anonymous; a known token is fine.
    assert_eq!(
        post_h(&em, VALIDATE, &body, &[("Authorization", "Bearer")]).status,
        200
    );
    assert_eq!(
        post_h(&em, VALIDATE, &body, &[("Authorization", "Basic abc")]).status,
        200
    );
    let auth = format!("Bearer {DEMO_TOKEN}");
    assert_eq!(
        post_h(&em, VALIDATE, &body, &[("Authorization", &auth)]).status,
        200
    );
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 3);
}

#[test]
fn missing_content_length_is_411() {
    let em = demo();
    let r = raw(
        &em,
        format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_error(
        &r,
        411,
        "LengthRequired",
        "A Content-Length header is required.",
    );
    assert_eq!(
        r.header("cache-control"),
        None,
        "outside CacheControlMiddleware"
    );
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));
    let chunked = format!(
        "POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    assert_error(
        &raw(&em, chunked.as_bytes()),
        411,
        "LengthRequired",
        "A Content-Length header is required.",
    );
}

#[test]
fn oversized_body_is_413_without_reading_it() {
    let em = demo();
    let started = Instant::now();
    let r = raw(
        &em,
        format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485761\r\n\r\n").as_bytes(),
    );
    assert_error(
        &r,
        413,
        "RequestBodyTooLarge",
        "Request body exceeded the maximum allowed size of 10485760 bytes.",
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(em.request_count(), 1);
}

#[test]
fn bad_polar_version_is_a_bare_404() {
    let em = demo();
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    for version in ["2025-01", "2026-4", "latest"] {
        let r = post_h(
            &em,
            VALIDATE,
            &body,
            &[
                ("Polar-Version", version),
                ("Origin", "https://app.example"),
            ],
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.json(), json!({"detail": "Not Found"}));
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(r.header("polar-version"), None);
        assert_eq!(r.header("cache-control"), None);
    }
    let r = post_h(&em, VALIDATE, &body, &[("Polar-Version", "2026-10")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("polar-version"), Some("2026-10"));
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 1);
}

#[test]
fn legacy_api_prefix_works_with_a_deprecation_notice() {
    let em = demo();
    let r = post(
        &em,
        "/api/v1/customer-portal/license-keys/validate",
        &json!({"key": DEMO_KEY, "organization_id": ORG}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-polar-deprecation-notice"),
        Some("The API root has moved from /api/v1 to /v1. Please update your integration.")
    );
    assert_eq!(em.request_count(), 1);
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.header("x-polar-deprecation-notice"), None);
}

#[test]
fn cors_preflight_and_actual_requests() {
    let em = demo();
    let preflight = |headers: &str| {
        raw(
            &em,
            format!(
                "OPTIONS {VALIDATE} HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n{headers}Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let r =
        preflight("Access-Control-Request-Headers: content-type, polar-version, authorization\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some(
            "Accept, Accept-Language, Authorization, Content-Language, Content-Type, Polar-Version"
        )
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));

    let r = preflight("Access-Control-Request-Headers: content-type, x-foo\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Disallowed CORS headers");
    assert_eq!(em.request_count(), 0, "preflights are not counted");

    let r = post_h(
        &em,
        VALIDATE,
        &json!({"key": DEMO_KEY, "organization_id": ORG}),
        &[("Origin", "https://app.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Polar-Version")
    );
    assert_eq!(r.header("vary"), None);
    // Errors carry CORS headers too.
    let r = post_h(
        &em,
        VALIDATE,
        &json!({"key": "X", "organization_id": ORG}),
        &[("Origin", "https://app.example")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // No Origin, no CORS headers.
    assert_eq!(
        validate(&em, DEMO_KEY, json!({})).header("access-control-allow-origin"),
        None
    );
}

#[test]
fn sandbox_header_and_cache_control() {
    let em = demo_with(Options {
        sandbox: true,
        ..Options::default()
    });
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.header("x-polar-sandbox"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let r = validate(&em, "nope", json!({}));
    assert_eq!(r.header("x-polar-sandbox"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let em = demo();
    let r = request(&em, "GET", "/v1/nothing-here", None, &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"detail": "Not Found"}));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let r = request(&em, "PUT", VALIDATE, Some("{}"), &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.json(), json!({"detail": "Method Not Allowed"}));
    assert_eq!(r.header("allow"), Some("POST"));
    // GET matches the customer-session route `/{id}`.
    let r = request(&em, "GET", VALIDATE, None, &[]);
    assert_error(&r, 401, "Unauthorized", "Unauthorized");
    // Trailing slash redirects.
    let r = request(&em, "POST", &format!("{VALIDATE}/"), Some("{}"), &[]);
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(format!("http://127.0.0.1:{}{VALIDATE}", em.port()).as_str())
    );
}

// ---- check order, conditions, slots, usage ---------------------------------------------------

#[test]
fn check_order_first_failure_wins() {
    let em = demo();
    not_found(
        &validate(
            &em,
            DEMO_KEY_REVOKED,
            json!({"benefit_id": OTHER_V4, "activation_id": OTHER_V4}),
        ),
        "License key is no longer active.",
    );
    not_found(
        &validate(
            &em,
            DEMO_KEY_EXPIRED,
            json!({"customer_id": OTHER_V4, "activation_id": OTHER_V4}),
        ),
        "License key has expired.",
    );
    not_found(
        &validate(
            &em,
            DEMO_KEY,
            json!({"activation_id": OTHER_V4, "benefit_id": OTHER_V4}),
        ),
        "Not found",
    );
    let id = activation_id(&activate(&em, DEMO_KEY, json!({"conditions": {"m": 1}})));
    not_found(
        &validate(
            &em,
            DEMO_KEY,
            json!({"activation_id": id, "conditions": {"m": 2}, "benefit_id": OTHER_V4}),
        ),
        "License key does not match required conditions",
    );
    not_found(
        &validate(
            &em,
            DEMO_KEY,
            json!({"benefit_id": OTHER_V4, "customer_id": OTHER_V4}),
        ),
        "License key does not match given benefit.",
    );
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            limit_usage: Some(Some(1)),
            ..KeyUpdate::default()
        }
    ));
    not_found(
        &validate(
            &em,
            DEMO_KEY,
            json!({"customer_id": OTHER_V4, "increment_usage": 5}),
        ),
        "License key does not match given user.",
    );
    // Activate: status before expiry before support before limit.
    assert!(em.update_key(
        DEMO_KEY_EXPIRED,
        KeyUpdate {
            status: Some("disabled".into()),
            ..KeyUpdate::default()
        }
    ));
    not_permitted(
        &activate(&em, DEMO_KEY_EXPIRED, json!({})),
        "License key is no longer active. This license key can not be activated.",
    );
    assert!(em.update_key(
        DEMO_KEY_EXPIRED,
        KeyUpdate {
            status: Some("granted".into()),
            limit_activations: Some(None),
            ..KeyUpdate::default()
        }
    ));
    not_permitted(
        &activate(&em, DEMO_KEY_EXPIRED, json!({})),
        "License key has expired.",
    );
    // Validation (422) comes before the lookup.
    assert_eq!(
        post(
            &em,
            VALIDATE,
            &json!({"key": "nope", "organization_id": "x"})
        )
        .status,
        422
    );
}

#[test]
fn conditions_use_python_equality() {
    let em = demo();
    let id = activation_id(&activate(
        &em,
        DEMO_KEY,
        json!({"conditions": {"major": 1, "machine": "m1"}}),
    ));
    let check = |conditions: Value| {
        validate(
            &em,
            DEMO_KEY,
            json!({"activation_id": id, "conditions": conditions}),
        )
        .status
    };
    assert_eq!(
        check(json!({"machine": "m1", "major": 1})),
        200,
        "key order is irrelevant"
    );
    assert_eq!(
        check(json!({"machine": "m1", "major": 1.0})),
        200,
        "1 == 1.0"
    );
    assert_eq!(
        check(json!({"machine": "m1", "major": true})),
        200,
        "1 == True"
    );
    assert_eq!(
        check(json!({"machine": "m1", "major": "1"})),
        404,
        "\"1\" != 1"
    );
    assert_eq!(check(json!({"machine": "m1"})), 404, "missing key");
    assert_eq!(
        check(json!({"machine": "m1", "major": 1, "extra": 1})),
        404,
        "extra key"
    );
    // Stored-empty conditions ignore the request's.
    let empty = activation_id(&activate(&em, DEMO_KEY, json!({})));
    let r = validate(
        &em,
        DEMO_KEY,
        json!({"activation_id": empty, "conditions": {"anything": "goes"}}),
    );
    assert_eq!(r.status, 200);
    // Conditions without activation_id are ignored.
    assert_eq!(
        validate(&em, DEMO_KEY, json!({"conditions": {"x": 1}})).status,
        200
    );
}

#[test]
fn activation_slots() {
    let em = demo();
    let a = activation_id(&activate(&em, DEMO_KEY, json!({"label": "same"})));
    let b = activation_id(&activate(&em, DEMO_KEY, json!({"label": "same"})));
    assert_ne!(a, b, "no de-duplication");
    let _c = activation_id(&activate(&em, DEMO_KEY, json!({"label": ""})));
    assert_eq!(em.activations(DEMO_KEY).len(), 3);
    not_permitted(
        &activate(&em, DEMO_KEY, json!({})),
        "License key activation limit already reached",
    );
    assert_eq!(deactivate(&em, DEMO_KEY, &a).status, 204);
    let d = activation_id(&activate(&em, DEMO_KEY, json!({})));
    assert_eq!(em.activations(DEMO_KEY).len(), 3);
    not_found(&deactivate(&em, DEMO_KEY, &a), "Not found");
    assert_eq!(deactivate(&em, DEMO_KEY, &d).status, 204);
}

#[test]
fn usage_rules() {
    let em = demo();
    // increment_usage 0 is the same as omitting it.
    let r = validate(&em, DEMO_KEY_USAGE, json!({"increment_usage": 0}));
    assert_eq!(
        (r.json()["usage"].clone(), r.json()["validations"].clone()),
        (json!(0), json!(1))
    );
    // Usage without a limit still counts.
    assert_eq!(
        validate(&em, DEMO_KEY, json!({"increment_usage": 7})).json()["usage"],
        7
    );
    // At the limit with no increment: 200.
    assert!(em.update_key(
        DEMO_KEY_USAGE,
        KeyUpdate {
            usage: Some(10),
            ..KeyUpdate::default()
        }
    ));
    let r = validate(&em, DEMO_KEY_USAGE, json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["usage"], 10);
    assert_error(
        &validate(&em, DEMO_KEY_USAGE, json!({"increment_usage": 1})),
        400,
        "BadRequest",
        "License key only has 0 more usages.",
    );
    // Over the limit (the merchant lowered it): negative remaining.
    assert!(em.update_key(
        DEMO_KEY_USAGE,
        KeyUpdate {
            limit_usage: Some(Some(7)),
            ..KeyUpdate::default()
        }
    ));
    assert_eq!(validate(&em, DEMO_KEY_USAGE, json!({})).status, 200);
    assert_error(
        &validate(&em, DEMO_KEY_USAGE, json!({"increment_usage": 1})),
        400,
        "BadRequest",
        "License key only has -3 more usages.",
    );
}

// ---- token twins ---------------------------------------------------------------------------

#[test]
fn token_authenticated_twins() {
    let mut seed = Seed::demo();
    seed.access_tokens.push(SeedToken {
        token: "polar_oat_other_org".into(),
        organization_id: Some(OTHER_V4.into()),
        ..SeedToken::default()
    });
    let em = Emulator::start(seed, Options::default()).expect("starts");
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    let path = "/v1/license-keys/validate";

    let r = post(&em, path, &body);
    assert_error(&r, 401, "Unauthorized", "Unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"polar\""));

    let r = post_h(
        &em,
        path,
        &body,
        &[("Authorization", "Bearer polar_oat_unknown")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_token");

    let auth = format!("Bearer {DEMO_TOKEN_READ_ONLY}");
    let r = post_h(&em, path, &body, &[("Authorization", &auth)]);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token."})
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"polar\", scope=\"license_keys:write\", error=\"insufficient_scope\", error_description=\"The request requires higher privileges than provided by the access token.\"")
    );

    let auth = format!("Bearer {DEMO_TOKEN}");
    let r = post_h(&em, path, &body, &[("Authorization", &auth)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["activation"], Value::Null);
    let r = post_h(
        &em,
        "/v1/license-keys/activate",
        &json!({"key": DEMO_KEY, "organization_id": ORG, "label": "srv"}),
        &[("Authorization", &auth)],
    );
    let id = activation_id(&r);
    let r = post_h(
        &em,
        "/v1/license-keys/deactivate",
        &json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": id}),
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 204);

    // A token of another organization cannot see the key.
    let r = post_h(
        &em,
        path,
        &body,
        &[("Authorization", "Bearer polar_oat_other_org")],
    );
    not_found(&r, "Not found");
    assert_eq!(em.request_count(), 7);
}

// ---- rate limit ----------------------------------------------------------------------------

#[test]
fn rate_limit_blocks_the_fourth_call_then_clears() {
    let em = demo_with(Options {
        rate_limit: true,
        rate_limit_block: Duration::from_secs(2),
        ..Options::default()
    });
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    let origin = [("Origin", "https://app.example")];
    assert_eq!(post_h(&em, VALIDATE, &body, &origin).status, 200);
    assert_eq!(
        post_h(
            &em,
            ACTIVATE,
            &json!({"key": DEMO_KEY, "organization_id": ORG, "label": "l"}),
            &origin
        )
        .status,
        200
    );
    assert_eq!(
        post_h(
            &em,
            DEACTIVATE,
            &json!({"key": "nope", "organization_id": ORG, "activation_id": OTHER_V4}),
            &origin
        )
        .status,
        404
    );
    let r = post_h(&em, VALIDATE, &body, &origin);
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.header("polar-version"), Some(CURRENT_API_VERSION));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Still blocked, and the failed call changed nothing.
    let r = post(&em, VALIDATE, &body);
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=2).contains(&retry));
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 1);
    // Preflights and token twins are outside the zone; another client IP is not blocked.
    let pre = raw(&em, format!("OPTIONS {VALIDATE} HTTP/1.1\r\nHost: x\r\nOrigin: https://a\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(pre.status, 200);
    let auth = format!("Bearer {DEMO_TOKEN}");
    assert_eq!(
        post_h(
            &em,
            "/v1/license-keys/validate",
            &body,
            &[("Authorization", &auth)]
        )
        .status,
        200
    );
    assert_eq!(
        post_h(&em, VALIDATE, &body, &[("True-Client-IP", "203.0.113.9")]).status,
        200
    );
    assert_eq!(em.request_count(), 7);

    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(post(&em, VALIDATE, &body).status, 200);
}

// ---- faults ----------------------------------------------------------------------------------

#[test]
fn fault_status_rate_limited_and_malformed() {
    let em = demo();
    em.set_fault(Some(Fault::Status {
        status: 500,
        body: "Internal Server Error".into(),
    }));
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "Internal Server Error");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    em.set_fault(Some(Fault::Status {
        status: 503,
        body: "{\"detail\":\"down\"}".into(),
    }));
    let r = activate(&em, DEMO_KEY, json!({}));
    assert_eq!((r.status, r.json()), (503, json!({"detail": "down"})));

    em.set_fault(Some(Fault::RateLimited {
        retry_after: Some(7),
    }));
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!((r.status, r.header("retry-after")), (429, Some("7")));
    assert!(r.body.is_empty());
    em.set_fault(Some(Fault::RateLimited { retry_after: None }));
    assert_eq!(
        validate(&em, DEMO_KEY, json!({})).header("retry-after"),
        None
    );

    em.set_fault(Some(Fault::Malformed));
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    // Faults hit the token twins and the alias too, and are counted; state is untouched.
    em.set_fault(Some(Fault::Status {
        status: 502,
        body: "Bad Gateway".into(),
    }));
    assert_eq!(
        post(&em, "/v1/license-keys/validate", &json!({})).status,
        502
    );
    assert_eq!(
        post(
            &em,
            "/api/v1/customer-portal/license-keys/validate",
            &json!({})
        )
        .status,
        502
    );
    assert_eq!(em.request_count(), 7);
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);

    em.set_fault(None);
    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 200);
}

/// `Fault::Respond` answers exactly what something between the app and Polar would: its
/// status, headers and body, and none of Polar's headers.
#[test]
fn fault_respond_is_a_foreign_page() {
    let em = demo();
    em.set_fault(Some(Fault::Respond {
        status: 302,
        headers: vec![
            ("location".into(), "http://login.hotel.example/".into()),
            ("content-type".into(), "text/html".into()),
        ],
        body: "<html>moved</html>".into(),
    }));
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://login.hotel.example/"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.text(), "<html>moved</html>");
    assert_eq!(r.header("polar-version"), None);
    assert_eq!(r.header("cache-control"), None);
    // Through the admin route, as the JS and C suites set it.
    let admin = post(
        &em,
        "/__emulator/fault",
        &json!({"kind": "respond", "status": 200, "headers": [["content-type", "text/html"]],
                "body": "<html>login</html>"}),
    );
    assert!(admin.status < 300, "{}", admin.status);
    let r = activate(&em, DEMO_KEY, json!({}));
    assert_eq!((r.status, r.text().as_str()), (200, "<html>login</html>"));
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);
}

#[test]
fn fault_hang_and_close_immediately() {
    let em = demo();
    em.set_fault(Some(Fault::Hang));
    let mut stream = connect(&em);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let body = json!({"key": DEMO_KEY, "organization_id": ORG}).to_string();
    let req = format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(req.as_bytes()).expect("write");
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).expect_err("no answer while hanging");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));

    em.set_fault(Some(Fault::CloseImmediately));
    let mut stream = connect(&em);
    stream.write_all(req.as_bytes()).expect("write");
    let mut got = Vec::new();
    let result = stream.read_to_end(&mut got);
    assert!(result.is_err() || got.is_empty(), "no response bytes");
    assert_eq!(em.request_count(), 2);
    assert_eq!(em.key(DEMO_KEY).expect("key")["validations"], 0);
}

#[test]
fn fault_delay_and_slow_body() {
    let em = demo();
    em.set_fault(Some(Fault::Delay { ms: 300 }));
    let started = Instant::now();
    let r = validate(&em, DEMO_KEY, json!({}));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["validations"],
        1,
        "a delayed answer is a normal answer"
    );

    em.set_fault(Some(Fault::SlowBody { ms_per_byte: 1 }));
    let started = Instant::now();
    let r = validate(&em, DEMO_KEY, json!({}));
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["validations"], 2);
    assert!(
        elapsed >= Duration::from_millis(r.body.len() as u64),
        "{elapsed:?} for {} bytes",
        r.body.len()
    );
}

#[test]
fn fault_truncated_and_huge() {
    let em = demo();
    em.set_fault(Some(Fault::Truncated));
    let mut stream = connect(&em);
    let body = json!({"key": DEMO_KEY, "organization_id": ORG}).to_string();
    let req = format!(
        "POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).expect("head");
    assert_eq!(status, 200);
    let declared: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("content-length");
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert!(got.len() < declared, "{} of {declared}", got.len());

    let size = 3 * 1024 * 1024 + 5;
    em.set_fault(Some(Fault::Huge { bytes: size }));
    let r = validate(&em, DEMO_KEY, json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, size);
    assert_eq!(
        r.json()["p"].as_str().map(str::len),
        Some(size as usize - 8)
    );
}

// ---- transport ------------------------------------------------------------------------------

#[test]
fn keep_alive_and_expect_continue() {
    let em = demo();
    let stream = connect(&em);
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let body = json!({"key": DEMO_KEY, "organization_id": ORG}).to_string();
    for i in 1..=3 {
        let req = format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        writer.write_all(req.as_bytes()).expect("write");
        let r = read_response(&mut reader, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["validations"], i);
        assert_eq!(r.header("connection"), None);
    }
    // An error answered before the body was read keeps the connection usable.
    let req = format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nPolar-Version: 1999-01\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    writer.write_all(req.as_bytes()).expect("write");
    assert_eq!(read_response(&mut reader, false).status, 404);

    // Expect: 100-continue gets an interim response before the body is sent.
    let req = format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    writer.write_all(req.as_bytes()).expect("write");
    let (status, _) = read_head(&mut reader).expect("interim");
    assert_eq!(status, 100);
    writer.write_all(body.as_bytes()).expect("body");
    let r = read_response(&mut reader, false);
    assert_eq!(r.json()["validations"], 4);

    // Connection: close is honoured.
    let req = format!("POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    writer.write_all(req.as_bytes()).expect("write");
    let r = read_response(&mut reader, false);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        reader
            .read_to_end(&mut rest)
            .map(|_| rest.len())
            .unwrap_or(0),
        0
    );
}

#[test]
fn emulator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Emulator>();
    check::<Options>();
    check::<Fault>();
}

#[test]
fn stop_refuses_connections() {
    let em = demo();
    let port = em.port();
    assert_eq!(em.url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 200);
    em.stop();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

// ---- admin routes ----------------------------------------------------------------------------

#[test]
fn admin_routes() {
    let em = demo();
    let r = request(
        &em,
        "GET",
        "/__emulator/health",
        None,
        &[("Origin", "https://a")],
    );
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 200);
    let r = request(&em, "GET", "/__emulator/requests", None, &[]);
    assert_eq!(r.json(), json!({"count": 1}));
    assert_eq!(
        request(&em, "POST", "/__emulator/requests/reset", Some(""), &[]).status,
        204
    );
    assert_eq!(em.request_count(), 0);

    let r = request(
        &em,
        "POST",
        "/__emulator/fault",
        Some(r#"{"kind":"status","status":500,"body":"Internal Server Error"}"#),
        &[],
    );
    assert_eq!(r.status, 204);
    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 500);
    assert_eq!(
        request(&em, "POST", "/__emulator/fault", Some("null"), &[]).status,
        204
    );
    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 200);
    assert_eq!(
        request(
            &em,
            "POST",
            "/__emulator/fault",
            Some(r#"{"kind":"nope"}"#),
            &[]
        )
        .status,
        400
    );
    let r = request(
        &em,
        "POST",
        "/__emulator/fault",
        Some(r#"{"kind":"delay","ms":1}"#),
        &[],
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        request(&em, "GET", "/__emulator/fault", None, &[]).json(),
        json!({"kind": "delay", "ms": 1})
    );
    em.set_fault(None);

    let r = request(
        &em,
        "GET",
        &format!("/__emulator/keys/{DEMO_KEY}"),
        None,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(key_order(&r.text()), KEY_FIELDS.to_vec());
    assert_eq!(r.json()["validations"], 2);
    assert_eq!(
        request(&em, "GET", "/__emulator/keys/NOPE", None, &[]).status,
        404
    );

    let r = request(
        &em,
        "PATCH",
        &format!("/__emulator/keys/{DEMO_KEY}"),
        Some(r#"{"status":"revoked","limit_usage":5,"expires_at":null}"#),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.json()["status"].clone(), r.json()["limit_usage"].clone()),
        (json!("revoked"), json!(5))
    );
    not_found(
        &validate(&em, DEMO_KEY, json!({})),
        "License key is no longer active.",
    );
    assert_eq!(
        request(
            &em,
            "PATCH",
            &format!("/__emulator/keys/{DEMO_KEY}"),
            Some(r#"{"status":"weird"}"#),
            &[]
        )
        .status,
        400
    );

    let r = request(
        &em,
        "POST",
        "/__emulator/keys",
        Some(r#"{"key":"NEW-KEY-1","limit_activations":1,"expires_at":"2999-01-01T00:00:00Z"}"#),
        &[],
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["expires_at"], "2999-01-01T00:00:00Z");
    assert_eq!(
        request(
            &em,
            "POST",
            "/__emulator/keys",
            Some(r#"{"key":"NEW-KEY-1"}"#),
            &[]
        )
        .status,
        400
    );
    let id = activation_id(&activate(
        &em,
        "NEW-KEY-1",
        json!({"conditions": {"m": "x"}}),
    ));
    let r = request(
        &em,
        "GET",
        "/__emulator/keys/NEW-KEY-1/activations",
        None,
        &[],
    );
    assert_eq!(r.json()[0]["id"], id.as_str());
    assert_eq!(r.json()[0]["conditions"], json!({"m": "x"}));

    assert_eq!(
        request(&em, "GET", "/__emulator/nothing", None, &[]).status,
        404
    );
    assert_eq!(em.request_count(), 4, "admin calls are not counted");

    // Rust-side equivalents.
    assert!(em.add_key(SeedKey::new("NEW-KEY-2")).is_ok());
    assert!(em.add_key(SeedKey::new("NEW-KEY-2")).is_err());
    assert!(!em.update_key("NOPE", KeyUpdate::default()));
    assert!(em.key("NEW-KEY-2").is_some());
}

// ---- docs/polar-api.md §13: version rotation, 2027-01, key rotation ------------------------------------------

/// A demo seed whose main key has 2027-01's member, subscription and order.
fn seed_2027() -> Seed {
    let mut seed = Seed::demo();
    let key = &mut seed.license_keys[0];
    key.member = Some(SeedMember {
        id: Some("6b1c9a4e-2f3d-4b5a-8c7d-9e0f1a2b3c4d".into()),
        email: Some("seat@acme.io".into()),
        external_id: Some("seat-7".into()),
    });
    key.subscription = Some(SeedSubscription {
        id: Some("0e4f7a2b-3c5d-4e6f-9a8b-7c6d5e4f3a2b".into()),
        status: Some("active".into()),
        current_period_start: Some("2026-11-01T00:00:00Z".into()),
        current_period_end: Some("2026-12-01T00:00:00Z".into()),
        cancel_at_period_end: true,
        ends_at: Some("2026-12-01T00:00:00Z".into()),
    });
    key.order = Some(SeedOrder {
        id: Some("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a".into()),
        created_at: Some("2026-11-01T00:00:00.250000Z".into()),
        status: None,
        paid: None,
    });
    seed
}

const FIELDS_2027_READ: [&str; 2] = ["member_id", "member"];
const FIELDS_2027_GRANTED: [&str; 4] = ["subscription_id", "subscription", "order_id", "order"];

/// `KEY_FIELDS` as 2027-01 orders them in a granted license (validate, activate's key).
fn key_fields_2027() -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for f in KEY_FIELDS {
        fields.push(f.to_string());
        if f == "customer" {
            fields.extend(FIELDS_2027_READ.iter().map(|s| s.to_string()));
        }
    }
    fields.extend(FIELDS_2027_GRANTED.iter().map(|s| s.to_string()));
    fields
}

#[test]
fn three_versions_are_served_and_the_current_one_is_the_default() {
    assert_eq!(API_VERSIONS, ["2026-04", "2026-10", "2027-01"]);
    assert_eq!(CURRENT_API_VERSION, "2026-10");
    let em = Emulator::start(seed_2027(), Options::default()).expect("starts");
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    // No header: the current version, whose license shape is 2026-04's.
    let r = post(&em, VALIDATE, &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("polar-version"), Some("2026-10"));
    let mut plain = KEY_FIELDS.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    plain.push("activation".into());
    assert_eq!(key_order(&r.text()), plain);
    for version in ["2026-04", "2026-10"] {
        let r = post_h(&em, VALIDATE, &body, &[("Polar-Version", version)]);
        assert_eq!(r.header("polar-version"), Some(version));
        assert_eq!(key_order(&r.text()), plain, "{version}");
    }
    // 2027-01: member after customer; subscription and order after expires_at.
    let r = post_h(&em, VALIDATE, &body, &[("Polar-Version", "2027-01")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("polar-version"), Some("2027-01"));
    let mut fields = key_fields_2027();
    fields.push("activation".into());
    assert_eq!(key_order(&r.text()), fields);
    let v = r.json();
    assert_eq!(v["member_id"], "6b1c9a4e-2f3d-4b5a-8c7d-9e0f1a2b3c4d");
    assert_eq!(
        v["member"],
        json!({"id": "6b1c9a4e-2f3d-4b5a-8c7d-9e0f1a2b3c4d", "email": "seat@acme.io", "external_id": "seat-7"})
    );
    assert_eq!(v["subscription_id"], "0e4f7a2b-3c5d-4e6f-9a8b-7c6d5e4f3a2b");
    assert_eq!(
        v["subscription"],
        json!({"id": "0e4f7a2b-3c5d-4e6f-9a8b-7c6d5e4f3a2b", "status": "active",
               "current_period_start": "2026-11-01T00:00:00Z",
               "current_period_end": "2026-12-01T00:00:00Z",
               "cancel_at_period_end": true, "ends_at": "2026-12-01T00:00:00Z"})
    );
    assert_eq!(
        v["order"],
        json!({"id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "created_at": "2026-11-01T00:00:00.250000Z",
               "status": "paid", "paid": true})
    );
    assert_eq!(v["order_id"], v["order"]["id"]);
}

#[test]
fn a_2027_key_without_member_subscription_or_order_answers_nulls() {
    let em = demo();
    let body = json!({"key": DEMO_KEY_NO_ACTIVATIONS, "organization_id": ORG});
    let r = post_h(&em, VALIDATE, &body, &[("Polar-Version", "2027-01")]);
    assert_eq!(r.status, 200);
    let v = r.json();
    for field in FIELDS_2027_READ.iter().chain(FIELDS_2027_GRANTED.iter()) {
        assert_eq!(
            v.get(*field),
            Some(&Value::Null),
            "{field} present and null"
        );
    }
}

#[test]
fn the_2027_activate_answer_nests_a_granted_license() {
    let em = Emulator::start(seed_2027(), Options::default()).expect("starts");
    let body = json!({"key": DEMO_KEY, "organization_id": ORG, "label": "seat"});
    let r = post_h(&em, ACTIVATE, &body, &[("Polar-Version", "2027-01")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let license = &v["license_key"];
    assert_eq!(license["member"]["email"], "seat@acme.io");
    assert_eq!(license["subscription"]["status"], "active");
    assert_eq!(license["order"]["paid"], true);
    assert_eq!(
        license.get("activation"),
        None,
        "no activation inside the key"
    );
    // 2026-10: the nested key has none of them.
    let r = post_h(&em, ACTIVATE, &body, &[("Polar-Version", "2026-10")]);
    let v = r.json();
    for field in FIELDS_2027_READ.iter().chain(FIELDS_2027_GRANTED.iter()) {
        assert_eq!(
            v["license_key"].get(*field),
            None,
            "{field} absent before 2027-01"
        );
    }
}

#[test]
fn a_removed_version_answers_like_an_unknown_one() {
    // Polar rotated 2026-04 out: a client still pinning it gets a bare 404 on every route.
    let options = Options {
        api_versions: vec!["2026-10".into(), "2027-01".into(), "2027-04".into()],
        api_version: "2027-01".into(),
        ..Options::default()
    };
    let em = Emulator::start(Seed::demo(), options).expect("starts");
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});
    for path in [VALIDATE, ACTIVATE, DEACTIVATE] {
        let r = post_h(&em, path, &body, &[("Polar-Version", "2026-04")]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json(), json!({"detail": "Not Found"}), "{path}");
        assert_eq!(r.header("polar-version"), None);
    }
    let r = post(&em, VALIDATE, &body);
    assert_eq!(r.header("polar-version"), Some("2027-01"));
    assert!(
        r.json().get("member").is_some(),
        "the new current version's shape"
    );
    // A default that is not served is refused at start.
    let bad = Options {
        api_versions: vec!["2026-10".into()],
        api_version: "2027-01".into(),
        ..Options::default()
    };
    let err = Emulator::start(Seed::demo(), bad).expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_rotated_key_answers_not_found_and_its_successor_is_the_same_license() {
    let em = demo();
    let a = activate(&em, DEMO_KEY, json!({}));
    assert_eq!(a.status, 200);
    let activation = a.json()["id"].as_str().expect("id").to_string();
    let new_key = em.rotate_key(DEMO_KEY).expect("rotated");
    assert_ne!(new_key, DEMO_KEY);
    assert!(new_key.starts_with("DEMO-"), "{new_key}");
    for r in [
        validate(&em, DEMO_KEY, json!({})),
        activate(&em, DEMO_KEY, json!({})),
        deactivate(&em, DEMO_KEY, &activation),
    ] {
        assert_error(&r, 404, "ResourceNotFound", "Not found");
    }
    let r = validate(&em, &new_key, json!({"activation_id": activation}));
    assert_eq!(r.status, 200, "the activation stays with the key");
    assert_eq!(r.json()["key"], new_key.as_str());
    // Through the admin route, as separate-process tests do it.
    let r = request(
        &em,
        "POST",
        &format!("/__emulator/keys/{new_key}/rotate"),
        Some(""),
        &[],
    );
    assert_eq!(r.status, 200);
    let newer = r.json()["key"].as_str().expect("key").to_string();
    assert_eq!(validate(&em, &new_key, json!({})).status, 404);
    assert_eq!(validate(&em, &newer, json!({})).status, 200);
    let r = request(&em, "POST", "/__emulator/keys/NOPE/rotate", Some(""), &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn seed_2027_fields_are_checked() {
    let base = r#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","license_keys":[{"key":"K",EXTRA}]}"#;
    let ok = base.replace(
        "EXTRA",
        r#""member":{"email":"a@b.c"},"subscription":{},"order":{"status":"refunded"}"#,
    );
    let seed = Seed::from_json(&ok).expect("defaults");
    let em = Emulator::start(seed, Options::default()).expect("starts");
    let r = post_h(
        &em,
        VALIDATE,
        &json!({"key": "K", "organization_id": ORG}),
        &[("Polar-Version", "2027-01")],
    );
    let v = r.json();
    assert_eq!(
        uuid_version(v["member"]["id"].as_str().expect("id")),
        Some('4')
    );
    assert_eq!(v["subscription"]["status"], "active");
    assert_eq!(v["subscription"]["cancel_at_period_end"], false);
    assert_eq!(v["subscription"]["ends_at"], Value::Null);
    assert!(is_timestamp(&v["subscription"]["current_period_end"]));
    assert_eq!(v["order"]["status"], "refunded");
    assert_eq!(v["order"]["paid"], false);
    for bad in [
        r#""member":{"id":"nope"}"#,
        r#""subscription":{"current_period_end":"soon"}"#,
        r#""order":{"id":"0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"}"#,
    ] {
        let text = base.replace("EXTRA", bad);
        assert!(Seed::from_json(&text).is_err(), "{bad}");
    }
}

// ---- The read routes: GET /v1/license-keys/ and GET /v1/license-keys/{id} ---------------

fn get_as(em: &Emulator, path: &str, token: &str) -> HttpAnswer {
    let auth = format!("Bearer {token}");
    request(em, "GET", path, None, &[("Authorization", &auth)])
}

#[test]
fn the_organizations_keys_listed_in_pages_with_their_full_keys_and_one_by_id() {
    const OTHER_ORG: &str = "7c1d9e2a-4b3f-4a5e-9d8c-1b2a3c4d5e6f";
    const OTHER_TOKEN: &str = "polar_oat_other_org_0123456789abcdef01";
    const NO_LICENSE_SCOPE: &str = "polar_oat_no_license_scope_0123456789ab";
    let mut seed = Seed::demo();
    seed.license_keys.push(SeedKey {
        organization_id: Some(OTHER_ORG.to_string()),
        ..SeedKey::new("OTHER-ORG-KEY-000001")
    });
    seed.access_tokens.push(SeedToken {
        token: OTHER_TOKEN.to_string(),
        organization_id: Some(OTHER_ORG.to_string()),
        ..SeedToken::default()
    });
    seed.access_tokens.push(SeedToken {
        token: NO_LICENSE_SCOPE.to_string(),
        organization_id: None,
        scopes: vec!["orders:read".to_string()],
    });
    let options = Options {
        token_budget: Some(1000),
        ..Options::default()
    };
    let em = Emulator::start(seed, options).expect("emulator starts");
    // Pages of 4 over the demo organization's 6 keys: 4, then 2, each key whole.
    let first = get_as(
        &em,
        "/v1/license-keys/?limit=4&page=1",
        DEMO_TOKEN_READ_ONLY,
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(
        first["pagination"],
        json!({"total_count": 6, "max_page": 2})
    );
    let second = get_as(&em, "/v1/license-keys/?limit=4&page=2", DEMO_TOKEN).json();
    let keys: Vec<String> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .map(|k| k["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            DEMO_KEY,
            DEMO_KEY_NO_ACTIVATIONS,
            DEMO_KEY_REVOKED,
            DEMO_KEY_DISABLED,
            DEMO_KEY_EXPIRED,
            DEMO_KEY_USAGE
        ]
    );
    let item = &first["items"][0];
    for field in [
        "id",
        "organization_id",
        "customer_id",
        "benefit_id",
        "key",
        "display_key",
        "status",
        "limit_activations",
        "usage",
        "limit_usage",
        "validations",
        "expires_at",
    ] {
        assert!(item.get(field).is_some(), "{field} in {item}");
    }
    assert!(item.get("activations").is_none());
    // Past the last page: no items, the same pagination.
    let past = get_as(&em, "/v1/license-keys/?limit=4&page=3", DEMO_TOKEN).json();
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["pagination"]["max_page"], 2);
    // Default 10 a page; a limit over 100 is served as 100; filters narrow.
    let all = get_as(&em, "/v1/license-keys/?limit=1000", DEMO_TOKEN).json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(6));
    assert_eq!(all["pagination"]["max_page"], 1);
    let revoked = get_as(&em, "/v1/license-keys/?status=revoked", DEMO_TOKEN).json();
    assert_eq!(revoked["items"][0]["key"], DEMO_KEY_REVOKED);
    assert_eq!(revoked["pagination"]["total_count"], 1);
    let by_benefit = format!("/v1/license-keys/?benefit_id={OTHER_V4}");
    assert_eq!(
        get_as(&em, &by_benefit, DEMO_TOKEN).json()["pagination"]["total_count"],
        0
    );
    let by_benefit =
        format!("/v1/license-keys/?benefit_id={DEMO_BENEFIT_ID}&organization_id={ORG}");
    assert_eq!(
        get_as(&em, &by_benefit, DEMO_TOKEN).json()["pagination"]["total_count"],
        6
    );
    // A token sees its own organization only, whatever it asks for.
    let other = get_as(
        &em,
        &format!("/v1/license-keys/?organization_id={ORG}"),
        OTHER_TOKEN,
    );
    assert_eq!(other.json()["pagination"]["total_count"], 0);
    let other = get_as(&em, "/v1/license-keys/", OTHER_TOKEN).json();
    assert_eq!(other["items"][0]["key"], "OTHER-ORG-KEY-000001");
    // Bad queries: pydantic's 422s, all of them at once.
    let bad = get_as(
        &em,
        "/v1/license-keys/?page=0&limit=x&organization_id=nope",
        DEMO_TOKEN,
    );
    assert_eq!(bad.status, 422);
    let types: Vec<Value> = bad.json()["detail"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| json!([e["type"], e["loc"]]))
        .collect();
    assert_eq!(
        types,
        [
            json!(["greater_than", ["query", "page"]]),
            json!(["int_parsing", ["query", "limit"]]),
            json!(["uuid_parsing", ["query", "organization_id"]]),
        ]
    );
    // Auth: none is 401, a token without a license-key scope 403, the slash-less path a 307.
    assert_eq!(
        request(&em, "GET", "/v1/license-keys/", None, &[]).status,
        401
    );
    let r = get_as(&em, "/v1/license-keys/", NO_LICENSE_SCOPE);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "insufficient_scope");
    let r = get_as(&em, "/v1/license-keys?limit=2", DEMO_TOKEN);
    assert_eq!(r.status, 307);
    assert!(r
        .header("location")
        .is_some_and(|l| l.ends_with("/v1/license-keys/?limit=2")));

    // One key by id, with its live activations; another organization's id is not found.
    let activated = activate(&em, DEMO_KEY, json!({"label": "laptop"}));
    assert_eq!(activated.status, 200);
    let id = item["id"].as_str().unwrap_or_default().to_string();
    let one = get_as(&em, &format!("/v1/license-keys/{id}"), DEMO_TOKEN_READ_ONLY);
    assert_eq!(one.status, 200, "{}", one.text());
    let one = one.json();
    assert_eq!(one["key"], DEMO_KEY);
    assert_eq!(one["status"], "granted");
    assert_eq!(one["activations"][0]["label"], "laptop");
    assert_eq!(one["activations"].as_array().map(Vec::len), Some(1));
    let r = get_as(&em, &format!("/v1/license-keys/{id}"), OTHER_TOKEN);
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": "ResourceNotFound", "detail": "Not found"})
        )
    );
    let r = get_as(&em, &format!("/v1/license-keys/{OTHER_V4}"), DEMO_TOKEN);
    assert_eq!(r.status, 404);
    let r = get_as(&em, "/v1/license-keys/not-a-uuid", DEMO_TOKEN);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["path", "id"]));
    // A key whose status changed is read as it is now.
    assert!(em.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    let now = get_as(&em, &format!("/v1/license-keys/{id}"), DEMO_TOKEN).json();
    assert_eq!(now["status"], "revoked");
}

#[test]
fn the_read_routes_spend_the_organizations_token_budget() {
    let em = budgeted_emulator(Seed::demo(), 2, Duration::from_secs(30));
    let list = get_as(&em, "/v1/license-keys/", DEMO_TOKEN);
    assert_eq!(list.status, 200);
    let id = list.json()["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        get_as(&em, &format!("/v1/license-keys/{id}"), DEMO_TOKEN).status,
        200
    );
    let third = get_as(&em, "/v1/license-keys/", DEMO_TOKEN_READ_ONLY);
    assert_eq!(third.status, 429);
    assert!(third.header("retry-after").is_some());
}

/// Issue #62: a body nested past the parser's limit (`polar_license_rules::json::MAX_DEPTH`)
/// is CPython's `RecursionError`, FastAPI's 400 for that request alone, on every license
/// route up to the emulator's 10 MiB body cap; the next request is served.
#[test]
fn deep_nesting_is_fastapis_400_and_the_next_request_is_served() {
    let em = demo();
    let token = format!("Bearer {DEMO_TOKEN}");
    let deep_conditions = format!(
        r#"{{"key":"{DEMO_KEY}","organization_id":"{ORG}","label":"l","conditions":{{"a":{}"#,
        "[".repeat(64 * 1024)
    );
    let bodies = [
        "[".repeat(10_000),
        "{\"a\":".repeat(10_000),
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        deep_conditions,
        "[".repeat(10 * 1024 * 1024),
    ];
    let routes = [
        (VALIDATE, None),
        (ACTIVATE, None),
        (DEACTIVATE, None),
        ("/v1/license-keys/validate", Some(token.as_str())),
        ("/v1/license-keys/activate", Some(token.as_str())),
        ("/v1/license-keys/deactivate", Some(token.as_str())),
    ];
    for (path, auth) in routes {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        for body in &bodies {
            let r = request(&em, "POST", path, Some(body), &headers);
            assert_eq!(r.status, 400, "{path}, {} bytes: {}", body.len(), r.text());
            assert_eq!(
                r.text(),
                r#"{"detail":"There was an error parsing the body"}"#
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(
                validate(&em, DEMO_KEY, json!({})).status,
                200,
                "after {path}"
            );
        }
    }
    // The emulator's own routes read JSON with serde_json (its recursion limit): refused.
    let r = request(&em, "POST", "/__emulator/keys", Some(&bodies[0]), &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(validate(&em, DEMO_KEY, json!({})).status, 200);
}
