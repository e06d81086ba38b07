//! Issue #17's proof that "one core" holds after the npm engine stopped using serde: the same
//! answers of Polar's (and of everything that is not Polar) are classified the same way by the
//! native parser (serde's typed model, `proto::parse_*_for`, what the Rust, C and CLI faces
//! run) and by the npm engine (the host's `JSON.parse` and the core's schema table), and the
//! engine writes records byte for byte as the native code encodes them. Both run here, in one
//! wasm process, in node and in headless Chromium (scripts/test-wasm.sh).

use super::engine::{operate, Reply, Storage};
use crate::engine::Engine;
use polar_license::cache::{self, MacKey};
use polar_license::proto::{
    self, ActivateRequest, Expect, HttpResponse, ValidateRequest, PRODUCTION_URL,
};
use polar_license::transport::{TransportError, TransportErrorKind};
use polar_license::{Error, Key, LicenseKeyActivationRead, ValidatedLicenseKey, Verdict};
use polar_license_testkit::answers::DETAILS_404;
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

pub(super) const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
pub(super) const KEY: &str = "FACES-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const LICENSE_ID: &str = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
const ACTIVATION: &str = "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c";
const BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
const CUSTOMER: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
pub(super) const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub(super) const NOW: i64 = 1_790_000_000;

pub(super) fn engine() -> Engine {
    Engine::new(&json!({ "organizationId": ORG }).to_string(), "null").unwrap()
}

/// The activation object of an answer.
fn activation() -> Value {
    json!({
        "id": ACTIVATION,
        "license_key_id": LICENSE_ID,
        "label": "laptop ✓",
        "meta": { "os": "linux", "cores": 8, "ratio": 0.25, "beta": true },
        "created_at": "2026-08-01T10:14:58.120000Z",
        "modified_at": null
    })
}

/// A license as Polar answers it; `full`: 2027-01's member, subscription and order, a full
/// customer (billing address, tax id, metadata of every kind), timestamps with offsets.
fn license(full: bool) -> Value {
    let mut v = json!({
        "id": LICENSE_ID,
        "created_at": "2025-01-01T00:00:00Z",
        "modified_at": null,
        "organization_id": ORG,
        "customer_id": CUSTOMER,
        "customer": {
            "id": CUSTOMER,
            "created_at": "2025-01-01T00:00:00Z",
            "organization_id": ORG,
            "metadata": { "plan_tier": "pro" }
        },
        "benefit_id": BENEFIT,
        "key": KEY,
        "display_key": "****-6ED415",
        "status": "granted",
        "limit_activations": 3,
        "usage": 2,
        "limit_usage": 10,
        "validations": 1,
        "last_validated_at": null,
        "expires_at": null,
        "user_id": CUSTOMER,
        "activation": null
    });
    if full {
        v["customer"] = json!({
            "id": CUSTOMER,
            "created_at": "2025-01-01T00:00:00.5+02:00",
            "modified_at": "2026-03-04T05:06:07.123456789Z",
            "metadata": { "tier": "team", "seats": 5, "discount": 0.15, "vip": false },
            "external_id": "crm-7",
            "email": "ada@example.com",
            "email_verified": true,
            "type": "team",
            "name": "Ada",
            "billing_name": "Ada Ltd",
            "billing_address": { "line1": "1 Main St", "country": "FR", "city": "Paris" },
            "tax_id": ["FR123", "eu_vat"],
            "organization_id": ORG,
            "avatar_url": "https://example.com/a.png"
        });
        v["expires_at"] = json!("2099-12-31T23:59:59-05:00");
        v["last_validated_at"] = json!("2026-11-01T12:00:00.000001Z");
        v["member_id"] = json!("m-1");
        v["member"] = json!({ "id": "m-1", "email": "seat@acme.io", "external_id": "seat-7" });
        v["subscription_id"] = json!("s-1");
        v["subscription"] = json!({
            "id": "s-1", "status": "active",
            "current_period_start": "2026-11-01T00:00:00Z",
            "current_period_end": "2026-12-01T00:00:00Z",
            "cancel_at_period_end": true, "ends_at": null
        });
        v["order_id"] = json!("o-1");
        v["order"] = json!({ "id": "o-1", "created_at": null, "status": "paid", "paid": true });
    }
    v
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let (last, parents) = path.split_last().unwrap();
    let mut at = &mut v;
    for p in parents {
        at = &mut at[*p];
    }
    match value {
        Value::Null if last.starts_with('-') => {
            at.as_object_mut().unwrap().remove(&last[1..]);
        }
        value => at[*last] = value,
    }
    v
}

/// A removal: `with(v, &["customer", "-email"], Value::Null)`.
fn without(v: Value, path: &[&str]) -> Value {
    let mut path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
    let last = path.pop().unwrap();
    path.push(format!("-{last}"));
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    with(v, &refs, Value::Null)
}

/// An answer to classify: status, headers, body; or a transport failure (`fail` 1..3).
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<&'static str>,
    date: Option<i64>,
    fail: u8,
}

fn answer(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    Answer {
        status,
        body: body.into(),
        retry_after: None,
        date: None,
        fail: 0,
    }
}

fn polar(status: u16, error: &str, detail: &str) -> Answer {
    answer(
        status,
        json!({ "error": error, "detail": detail }).to_string(),
    )
}

impl Answer {
    /// The answer as `license.js` gives it to the engine.
    fn reply(&self) -> Reply {
        Reply {
            status: self.status,
            body: self.body.clone(),
            date: self.date.map(http_date),
            retry_after: self.retry_after.map(String::from),
            fail: self.fail,
            detail: "the transport failed".into(),
            ..Reply::default()
        }
    }
}

fn http_date(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    t.format(&time::format_description::well_known::Rfc2822)
        .unwrap()
        .replace("+0000", "GMT")
}

impl Answer {
    /// The native face's view: the response, or the transport's error.
    fn native(&self) -> Result<HttpResponse, Error> {
        let kind = match self.fail {
            0 => {
                let mut r = HttpResponse::new(self.status, self.body.clone());
                if let Some(v) = self.retry_after {
                    r = r.with_header("retry-after", v);
                }
                if let Some(d) = self.date {
                    r = r.with_header("date", &http_date(d));
                }
                return Ok(r);
            }
            2 => TransportErrorKind::Timeout,
            3 => TransportErrorKind::TooLarge,
            _ => TransportErrorKind::Connect,
        };
        Err(Error::from(TransportError::new(
            kind,
            "the transport failed",
        )))
    }
}

/// A validate's grant as [`native_json`] and the engine write it.
pub(super) fn validated_json(v: &ValidatedLicenseKey) -> Value {
    json!({ "license": v.license_key, "activation": v.activation })
}

/// An activate's grant as [`native_json`] and the engine write it.
pub(super) fn activated_json(v: &LicenseKeyActivationRead) -> Value {
    json!({ "activation": v.activation, "license": v.license_key })
}

/// What the native parser (`parse`, held to `expect`) makes of the answer `a`, written by
/// [`native_json`].
fn native_of<T>(
    a: &Answer,
    expect: &Expect<'_>,
    parse: fn(&HttpResponse, &Expect<'_>) -> Result<Verdict<T>, Error>,
    ok: impl Fn(&T) -> Value,
) -> Value {
    native_json(a.native().and_then(|r| parse(&r, expect)), ok)
}

/// A native outcome in the engine's answer shape: `{"ok": {license, activation}}` or the
/// error with its code, detail and extras.
pub(super) fn native_json<T>(online: Result<Verdict<T>, Error>, ok: impl Fn(&T) -> Value) -> Value {
    match online {
        Ok(Verdict::Accepted(v)) => json!({ "ok": ok(&v) }),
        Ok(Verdict::Denied(d)) => {
            let mut e = json!({ "code": d.reason.code(), "detail": d.detail, "status": d.status });
            if let Some(n) = d.remaining_usages {
                e["remainingUsages"] = json!(n);
            }
            // The customer portal as the next step's place: the core's rule, as the engine says it.
            if d.offers_portal() {
                e["portal"] = json!(true);
            }
            json!({ "error": e })
        }
        Err(err) => {
            let mut e = json!({ "code": err.reason().code(), "detail": err.detail() });
            if let Some(status) = err.status() {
                e["status"] = json!(status);
            }
            match &err {
                Error::RateLimited {
                    retry_after: Some(s),
                } => e["retryAfter"] = json!(s),
                Error::InvalidInput { field, .. } => e["field"] = json!(field),
                Error::Offline { timeout, .. } => e["timeout"] = json!(timeout),
                _ => {}
            }
            json!({ "error": e })
        }
    }
}

/// The engine's answer reduced to what the native one has (no user message nor next step: the
/// core's words, tested in src/message.rs; no features, no `lease`: always `null` here, where
/// no engine holds relay keys).
pub(super) fn engine_json(text: &str) -> Value {
    let step: Value = serde_json::from_str(text).unwrap();
    let mut a = step["answer"].clone();
    if let Some(e) = a.get_mut("error").and_then(Value::as_object_mut) {
        e.remove("userMessage");
        e.remove("nextStep");
    }
    if let Some(o) = a.get_mut("ok").and_then(Value::as_object_mut) {
        o.remove("userMessage");
        o.remove("features");
        if let Some(lease) = o.remove("lease") {
            assert_eq!(
                lease,
                Value::Null,
                "an engine without relay keys reports no lease"
            );
        }
    }
    a
}

/// The two answers agree: the same reason code, detail and extras, or the same license and
/// activation. A malformed 200's detail names what each parser found wrong in its own words
/// (serde's message or the schema table's), so only its prefix is compared.
fn assert_same(what: &str, native: Value, engine: Value) {
    let malformed = |v: &Value| {
        v["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("malformed "))
    };
    if malformed(&native) || malformed(&engine) {
        let prefix = |v: &Value| {
            let d = v["error"]["detail"].as_str().unwrap_or_default();
            d.split(':').next().unwrap_or_default().to_string()
        };
        assert_eq!(
            (native["error"]["code"].clone(), prefix(&native)),
            (engine["error"]["code"].clone(), prefix(&engine)),
            "{what}:\n native {native}\n engine {engine}"
        );
        return;
    }
    assert_eq!(native, engine, "{what}");
}

/// Everything a server (Polar, or whatever answers in its place) may send, for every
/// operation: the failures first, then each operation's own 200s.
fn failures() -> Vec<(String, Answer)> {
    let mut out: Vec<(String, Answer)> = Vec::new();
    let mut add = |name: &str, a: Answer| out.push((name.to_string(), a));
    for detail in DETAILS_404.into_iter().chain(["Something new"]) {
        add(
            &format!("404 {detail}"),
            polar(404, "ResourceNotFound", detail),
        );
    }
    for detail in [
        "License key activation limit already reached",
        "This license key does not support activations. Contact the seller.",
        "License key has expired.",
        "License key is no longer active.",
        "Something new",
    ] {
        add(&format!("403 {detail}"), polar(403, "NotPermitted", detail));
    }
    for body in [
        r#"{"detail":"Not Found"}"#,
        "<html>Sign in to the hotel network</html>",
        r#"{"error":7,"detail":"Not found"}"#,
        r#"{"error":"Teapot","detail":"Not found"}"#,
        r#"{"error":"ResourceNotFound","detail":["Not found"]}"#,
        r#"["ResourceNotFound","Not found"]"#,
        "",
    ] {
        add(&format!("404 {body}"), answer(404, body));
        add(&format!("403 {body}"), answer(403, body));
    }
    add(
        "403 oauth",
        answer(
            403,
            r#"{"error":"insufficient_scope","error_description":"The token lacks a scope."}"#,
        ),
    );
    for detail in [
        "License key only has 3 more usages.",
        "License key only has -2 more usages.",
        "License key only has many more usages.",
    ] {
        add(&format!("400 {detail}"), polar(400, "BadRequest", detail));
    }
    add("400 bare", answer(400, r#"{"detail":"bad"}"#));
    add(
        "401",
        answer(
            401,
            r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}"#,
        ),
    );
    add("401 html", answer(401, "<h1>401</h1>"));
    add(
        "422",
        answer(
            422,
            r#"{"detail":[{"type":"string_too_long","loc":["body","conditions","machine",0],"msg":"String should have at most 500 characters","input":"x"}]}"#,
        ),
    );
    add("422 empty", answer(422, r#"{"detail":[]}"#));
    add("422 garbage", answer(422, "nope"));
    for (name, retry) in [
        ("429 30", Some("30")),
        ("429 years", Some("315360000")),
        ("429 soon", Some("soon")),
        ("429", None),
    ] {
        add(
            name,
            Answer {
                retry_after: retry,
                ..answer(429, "")
            },
        );
    }
    add("500", answer(500, "Internal Server Error"));
    add(
        "502 html",
        answer(502, "<html><body>Bad Gateway</body></html>"),
    );
    add("503 binary", answer(503, vec![0xff, 0xfe, b'x']));
    add(
        "503 long",
        answer(503, "é".repeat(150).into_bytes()), // cut inside a character at byte 200
    );
    add("302", answer(302, "redirect not followed"));
    add("411", answer(411, "Length Required"));
    add("413", answer(413, "Payload Too Large"));
    add("418", answer(418, r#"{"detail":"I'm a teapot"}"#));
    for fail in [1u8, 2, 3] {
        add(
            &format!("transport {fail}"),
            Answer {
                fail,
                ..answer(0, "")
            },
        );
    }
    out
}

/// 200 bodies that are no valid license, or no license at all, or valid ones.
fn bodies_200(activation_asked: bool) -> Vec<(String, Value)> {
    let base = || {
        let mut v = license(false);
        if activation_asked {
            v["activation"] = activation();
        }
        v
    };
    // `base()` with the member at `path` set to `value`, or removed, under its case's name.
    let edit =
        |name: &str, path: &[&str], value: Value| (name.to_string(), with(base(), path, value));
    let remove = |name: &str, path: &[&str]| (name.to_string(), without(base(), path));
    let mut out = vec![
        ("valid".to_string(), base()),
        ("valid full".to_string(), {
            let mut v = license(true);
            if activation_asked {
                v["activation"] = activation();
            }
            v
        }),
        edit("another key", &["key"], json!("OTHER-123456789")),
        edit("another org", &["organization_id"], json!(BENEFIT)),
        edit("revoked", &["status"], json!("revoked")),
        edit("disabled", &["status"], json!("disabled")),
        edit("unknown status", &["status"], json!("suspended")),
        edit("expired", &["expires_at"], json!("2020-01-01T00:00:00Z")),
        edit(
            "expires later",
            &["expires_at"],
            json!("2099-01-01T00:00:00+01:00"),
        ),
        edit("expiry not a date", &["expires_at"], json!("tomorrow")),
        edit("usage a float", &["usage"], json!(1.5)),
        remove("no customer", &["customer"]),
        remove("no key", &["key"]),
        remove("customer without created_at", &["customer", "created_at"]),
        edit(
            "customer type unknown",
            &["customer", "type"],
            json!("company"),
        ),
        edit("tax id of one", &["customer", "tax_id"], json!(["x"])),
        edit(
            "metadata with a list",
            &["customer", "metadata", "x"],
            json!([1]),
        ),
        edit("member null", &["member"], Value::Null),
        ("an array".into(), json!([1, 2])),
        ("null".into(), Value::Null),
        ("a string".into(), json!("granted")),
    ];
    if activation_asked {
        out.push(edit("no activation", &["activation"], Value::Null));
        out.push(edit(
            "another activation",
            &["activation", "id"],
            json!(BENEFIT),
        ));
        out.push(remove("activation without label", &["activation", "label"]));
    }
    out
}

fn raw_200s() -> Vec<(String, Answer)> {
    vec![
        ("200 not json".into(), answer(200, "{not json")),
        ("200 empty".into(), answer(200, "")),
        (
            "200 truncated".into(),
            answer(200, license(false).to_string()[..300].to_string()),
        ),
        ("200 login page".into(), answer(200, "<html>login</html>")),
        (
            "200 not UTF-8".into(),
            answer(
                200,
                license(false)
                    .to_string()
                    .replace("pro", "p\u{1}o")
                    .into_bytes()
                    .into_iter()
                    .map(|b| if b == 1 { 0xff } else { b })
                    .collect::<Vec<u8>>(),
            ),
        ),
    ]
}

#[wasm_bindgen_test]
fn every_validate_answer_is_classified_as_natively() {
    let e = engine();
    let mut cases = 0;
    for asked in [false, true] {
        let mut req = ValidateRequest::new(KEY);
        let mut options = json!({});
        if asked {
            req = req
                .activation_id(ACTIVATION)
                .benefit_id(BENEFIT)
                .customer_id(CUSTOMER);
            options =
                json!({ "activationId": ACTIVATION, "benefitId": BENEFIT, "customerId": CUSTOMER });
        }
        let mut all = failures();
        all.extend(raw_200s());
        for (name, body) in bodies_200(asked) {
            all.push((name, answer(200, body.to_string())));
        }
        // A 200 whose Date shows the local clock ahead: expiry held to the server's time.
        all.push((
            "expired by the server's clock only".into(),
            Answer {
                date: Some(NOW - 7200),
                ..answer(
                    200,
                    with(
                        license(false),
                        &["expires_at"],
                        json!("2026-09-21T13:00:00Z"),
                    )
                    .to_string(),
                )
            },
        ));
        for (name, a) in all {
            let expect = Expect::validate(ORG, &req, NOW).unwrap();
            let native = native_of(&a, &expect, proto::parse_validate_for, validated_json);
            let op = ("validate", KEY, &*options.to_string());
            let engine = engine_json(&operate(&e, None, op, NOW as f64, &a.reply()));
            assert_same(
                &format!("validate {name} (activation asked: {asked})"),
                native,
                engine,
            );
            cases += 1;
        }
    }
    assert!(cases > 120, "{cases}");
}

#[wasm_bindgen_test]
fn every_activate_answer_is_classified_as_natively() {
    let e = engine();
    let req = ActivateRequest::new(KEY, "laptop ✓");
    let options = json!({ "label": "laptop ✓" }).to_string();
    let read = |license: Value| {
        let mut v = activation();
        v["license_key"] = license;
        v
    };
    let mut all = failures();
    all.extend(raw_200s());
    for (name, license) in bodies_200(false) {
        all.push((name, answer(200, read(license).to_string())));
    }
    all.push((
        "activation of another license".into(),
        answer(
            200,
            with(read(license(false)), &["license_key_id"], json!(BENEFIT)).to_string(),
        ),
    ));
    all.push((
        "no license_key".into(),
        answer(200, activation().to_string()),
    ));
    all.push((
        "activation without created_at".into(),
        answer(
            200,
            without(read(license(true)), &["created_at"]).to_string(),
        ),
    ));
    let mut cases = 0;
    for (name, a) in all {
        let expect = Expect::activate(ORG, &req, NOW).unwrap();
        let native = native_of(&a, &expect, proto::parse_activate_for, activated_json);
        // An activate needs its storage first (no slot on Polar is taken for an activation no
        // one remembers).
        let op = ("activate", KEY, &*options);
        let mut s = Storage::default();
        let engine = engine_json(&operate(&e, Some(&mut s), op, NOW as f64, &a.reply()));
        assert_same(&format!("activate {name}"), native, engine);
        cases += 1;
    }
    assert!(cases > 60, "{cases}");
}

#[wasm_bindgen_test]
fn every_deactivate_answer_is_classified_as_natively() {
    let e = engine();
    let mut all = failures();
    all.push(("204".into(), answer(204, "")));
    all.push(("200".into(), answer(200, "{}")));
    for (name, a) in all {
        let native = native_json(
            a.native()
                .and_then(|r| proto::parse_deactivate_for(&r, Some(&Key::new(KEY)))),
            |()| json!({ "activationId": ACTIVATION }),
        );
        let options = json!({ "activationId": ACTIVATION }).to_string();
        let mut s = Storage::default();
        let op = ("deactivate", KEY, &*options);
        let engine = engine_json(&operate(&e, Some(&mut s), op, NOW as f64, &a.reply()));
        assert_same(&format!("deactivate {name}"), native, engine);
    }
}

/// The native seals of `KEY`'s record on production (no machine id, no app secret).
fn native_mac() -> MacKey {
    let secret: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&SECRET[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    MacKey::for_slot(KEY, ORG, &secret, PRODUCTION_URL, None, None)
}

/// Records the engine writes are the bytes the native code encodes for the same record: the
/// native face decodes them with its typed model and writes them back identical, after an
/// activation and a validate, for a plain license and a full 2027-01 one.
#[wasm_bindgen_test]
fn records_are_byte_for_byte_the_native_encoding() {
    let e = engine();
    let mac = native_mac();
    for full in [false, true] {
        let mut read = activation();
        read["license_key"] = license(full);
        let mut s = Storage::default();
        let options =
            json!({ "label": "laptop ✓", "conditions": { "seat": 2, "x": 1.5 } }).to_string();
        let reply = answer(200, read.to_string()).reply();
        let activated: Value = serde_json::from_str(&operate(
            &e,
            Some(&mut s),
            ("activate", KEY, &options),
            NOW as f64,
            &reply,
        ))
        .unwrap();
        assert!(activated["answer"]["ok"].is_object(), "{activated}");
        let writes = activated["write"].as_array().unwrap();
        let record_text = writes[1][1].as_str().unwrap().to_string();
        let record = cache::decode(record_text.as_bytes(), &mac).unwrap();
        assert_eq!(
            String::from_utf8(cache::encode(&record, &mac)).unwrap(),
            record_text,
            "activate, full: {full}"
        );
        assert!(record.activation.is_some());
        // The license the record keeps is Polar's, normalized exactly as serde does.
        let license_json = serde_json::to_value(&record.good.as_ref().unwrap().license).unwrap();
        assert_eq!(license_json["key"], "****-6ED415");
        assert_eq!(
            license_json.get("user_id"),
            None,
            "unknown members are not kept"
        );

        let mut validated = license(full);
        validated["activation"] = activation();
        let options = json!({ "activationId": ACTIVATION, "conditions": { "seat": 2, "x": 1.5 } })
            .to_string();
        let reply = answer(200, validated.to_string()).reply();
        let end: Value = serde_json::from_str(&operate(
            &e,
            Some(&mut s),
            ("validate", KEY, &options),
            (NOW + 60) as f64,
            &reply,
        ))
        .unwrap();
        let again = end["write"][0][1].as_str().unwrap();
        let record = cache::decode(again.as_bytes(), &mac).unwrap();
        assert_eq!(record.seq, 2);
        assert_eq!(
            String::from_utf8(cache::encode(&record, &mac)).unwrap(),
            again,
            "validate, full: {full}"
        );
        // What a JS user reads is what the native face serializes, the caller's key back.
        let mut native = serde_json::to_value(&record.good.unwrap().license).unwrap();
        native["key"] = json!(KEY);
        let activation = native
            .as_object_mut()
            .unwrap()
            .remove("activation")
            .unwrap();
        assert_eq!(end["answer"]["ok"]["license"], native, "full: {full}");
        assert_eq!(end["answer"]["ok"]["activation"], activation);
    }
}
