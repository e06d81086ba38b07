//! The sans-IO core through the blocking client over a scripted transport: every answer of
//! docs/polar-api.md §6 classified, every local check sending nothing, and the exact
//! requests built. No network: the transport is a closure that records what it gets.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{
    ActivateRequest, BlockingClient, DeactivateRequest, Error, HttpRequest, HttpResponse, Reason,
    Server, TransportError, TransportErrorKind, ValidateRequest, Verdict,
};
use polar_license_testkit::LICENSE_6_2;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const ACTIVATION: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

/// A client whose transport always answers `response` and records every request.
/// `call` is refused as invalid input in `field`, and nothing is sent.
#[track_caller]
fn refused_before_sending<T: std::fmt::Debug>(
    field: &str,
    call: impl FnOnce(&BlockingClient) -> Result<T, Error>,
) {
    let (client, seen) = scripted(Ok(HttpResponse::new(500, "")));
    let err = call(&client).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 0);
}

fn scripted(
    response: Result<HttpResponse, TransportError>,
) -> (BlockingClient, Arc<Mutex<Vec<HttpRequest>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let transport = move |req: &HttpRequest| {
        log.lock().unwrap().push(req.clone());
        response.clone()
    };
    let client = BlockingClient::builder(ORG)
        .base_url("https://api.polar.sh")
        .build_with_transport(transport)
        .unwrap();
    (client, seen)
}

fn polar_error(status: u16, error: &str, detail: &str) -> HttpResponse {
    HttpResponse::new(
        status,
        json!({"error": error, "detail": detail}).to_string(),
    )
    .with_header("content-type", "application/json")
}

fn body(req: &HttpRequest) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

#[test]
fn validate_success_parses_every_field_and_tolerates_extras() {
    let (client, seen) = scripted(Ok(HttpResponse::new(200, LICENSE_6_2)));
    let verdict = client
        .validate(
            &ValidateRequest::new(KEY)
                .activation_id(ACTIVATION)
                .benefit_id("45F87221-45AE-4F65-8DBD-073318BC6372")
                .condition("major_version", 2)
                .condition("machine_id", "c0ffee42")
                .increment_usage(1),
        )
        .unwrap();
    let Verdict::Accepted(v) = verdict else {
        panic!("expected accepted, got {verdict:?}")
    };
    assert_eq!(v.license_key.usage, 8);
    assert_eq!(v.license_key.validations, 42);
    assert_eq!(v.license_key.remaining_usage(), Some(92));
    assert_eq!(v.license_key.key.expose(), KEY);
    assert_eq!(
        v.license_key.customer.tax_id,
        Some(("FR61954506077".to_string(), "eu_vat".to_string()))
    );
    // Both timestamp forms: with microseconds and without.
    assert_eq!(
        v.license_key.last_validated_at.unwrap().microsecond(),
        551023
    );
    assert_eq!(v.license_key.modified_at.unwrap().second(), 11);
    let activation = v.activation.unwrap();
    assert_eq!(activation.id, ACTIVATION);
    assert_eq!(activation.meta["cores"], polar_license::MetaValue::Int(10));
    assert_eq!(
        activation.meta["ratio"],
        polar_license::MetaValue::Float(1.5)
    );

    // The request: public route, no Authorization, JSON, canonical lowercase UUIDs.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        req.url,
        "https://api.polar.sh/v1/customer-portal/license-keys/validate"
    );
    assert!(req.headers.iter().all(|(k, _)| *k != "authorization"));
    assert!(req
        .headers
        .contains(&("content-type", "application/json".to_string())));
    assert!(req
        .headers
        .iter()
        .any(|(k, v)| *k == "user-agent" && v.starts_with("polar-license/")));
    assert_eq!(
        body(req),
        json!({
            "key": KEY,
            "organization_id": ORG,
            "activation_id": ACTIVATION,
            "benefit_id": "45f87221-45ae-4f65-8dbd-073318bc6372",
            "increment_usage": 1,
            "conditions": {"major_version": 2, "machine_id": "c0ffee42"}
        })
    );
}

#[test]
fn minimal_validate_sends_only_key_and_org() {
    let mut minimal: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    minimal["activation"] = Value::Null;
    let (client, seen) = scripted(Ok(HttpResponse::new(200, minimal.to_string())));
    let v = client
        .validate(&ValidateRequest::new(KEY).increment_usage(0))
        .unwrap();
    assert!(v.accepted().unwrap().activation.is_none());
    // increment_usage 0 is the same as omitting it; empty conditions are omitted.
    assert_eq!(
        body(&seen.lock().unwrap()[0]),
        json!({"key": KEY, "organization_id": ORG})
    );
}

#[test]
fn activate_and_deactivate_success() {
    let mut read: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    let activation = read["activation"].take();
    let mut answer = activation.clone();
    read.as_object_mut().unwrap().remove("activation");
    answer["license_key"] = read;
    let (client, seen) = scripted(Ok(HttpResponse::new(200, answer.to_string())));
    let a = client
        .activate(
            &ActivateRequest::new(KEY, "Jane's MacBook Pro")
                .condition("machine_id", "c0ffee42")
                .meta("hostname", "janes-mbp"),
        )
        .unwrap();
    let a = a.accepted().unwrap();
    assert_eq!(a.activation.id, ACTIVATION);
    assert_eq!(a.license_key.limit_activations, Some(3));
    assert_eq!(
        body(&seen.lock().unwrap()[0]),
        json!({"key": KEY, "organization_id": ORG, "label": "Jane's MacBook Pro",
               "conditions": {"machine_id": "c0ffee42"}, "meta": {"hostname": "janes-mbp"}})
    );

    let (client, seen) = scripted(Ok(HttpResponse::new(204, "")));
    assert_eq!(
        client
            .deactivate(&DeactivateRequest::new(KEY, ACTIVATION))
            .unwrap(),
        Verdict::Accepted(())
    );
    let req = &seen.lock().unwrap()[0];
    assert!(req
        .url
        .ends_with("/v1/customer-portal/license-keys/deactivate"));
    assert_eq!(
        body(req),
        json!({"key": KEY, "organization_id": ORG, "activation_id": ACTIVATION})
    );
}

/// One row per denial of docs/polar-api.md §6.4: (operation, status, body detail, reason).
#[test]
fn every_denial_row_maps_to_its_reason_and_keeps_the_detail() {
    let rows: &[(&str, u16, &str, &str, Reason)] = &[
        ("validate", 404, "ResourceNotFound", "Not found", Reason::NotFound),
        ("activate", 404, "ResourceNotFound", "Not found", Reason::NotFound),
        ("deactivate", 404, "ResourceNotFound", "Not found", Reason::NotFound),
        ("validate", 404, "ResourceNotFound", "License key is no longer active.", Reason::Inactive),
        ("validate", 404, "ResourceNotFound", "License key has expired.", Reason::Expired),
        ("validate", 404, "ResourceNotFound", "License key does not match required conditions", Reason::ConditionsMismatch),
        ("validate", 404, "ResourceNotFound", "License key does not match given benefit.", Reason::BenefitMismatch),
        ("validate", 404, "ResourceNotFound", "License key does not match given user.", Reason::CustomerMismatch),
        ("validate", 404, "ResourceNotFound", "Some future 404 text", Reason::NotFound),
        ("activate", 403, "NotPermitted", "License key is no longer active. This license key can not be activated.", Reason::Inactive),
        ("activate", 403, "NotPermitted", "License key has expired.", Reason::Expired),
        ("activate", 403, "NotPermitted", "This license key does not support activations. Use the /validate endpoint instead to check license validity.", Reason::ActivationsNotSupported),
        ("activate", 403, "NotPermitted", "License key activation limit already reached", Reason::ActivationLimit),
        ("validate", 400, "BadRequest", "License key only has 1 more usages.", Reason::UsageExhausted),
    ];
    for (op, status, error, detail, reason) in rows {
        let (client, _) = scripted(Ok(polar_error(*status, error, detail)));
        let denial = match *op {
            "validate" => client
                .validate(&ValidateRequest::new(KEY))
                .unwrap()
                .denial()
                .cloned(),
            "activate" => client
                .activate(&ActivateRequest::new(KEY, "l"))
                .unwrap()
                .denial()
                .cloned(),
            _ => client
                .deactivate(&DeactivateRequest::new(KEY, ACTIVATION))
                .unwrap()
                .denial()
                .cloned(),
        }
        .unwrap_or_else(|| panic!("{op} {status} {detail}: not a denial"));
        assert_eq!(denial.reason, *reason, "{op} {status} {detail}");
        assert_eq!(denial.detail, *detail);
        assert_eq!(denial.status, *status);
        assert_eq!(denial.reason.class(), polar_license::ReasonClass::Denied);
    }
}

#[test]
fn usage_exhausted_carries_the_remaining_count_even_when_negative() {
    for (text, n) in [("1", 1), ("0", 0), ("-4", -4)] {
        let detail = format!("License key only has {text} more usages.");
        let (client, _) = scripted(Ok(polar_error(400, "BadRequest", &detail)));
        let v = client
            .validate(&ValidateRequest::new(KEY).increment_usage(5))
            .unwrap();
        assert_eq!(v.denial().unwrap().remaining_usages, Some(n));
    }
}

fn validate_error(response: Result<HttpResponse, TransportError>) -> Error {
    let (client, _) = scripted(response);
    client.validate(&ValidateRequest::new(KEY)).unwrap_err()
}

#[test]
fn unverified_and_error_answers() {
    let cases: Vec<(Result<HttpResponse, TransportError>, Reason)> = vec![
        (
            Ok(HttpResponse::new(429, "").with_header("retry-after", "60")),
            Reason::RateLimited,
        ),
        (
            Ok(HttpResponse::new(500, "Internal Server Error")),
            Reason::ServerError,
        ),
        (
            Ok(HttpResponse::new(502, "<html>bad gateway</html>")),
            Reason::ServerError,
        ),
        (Ok(HttpResponse::new(503, "")), Reason::ServerError),
        (
            Ok(HttpResponse::new(
                401,
                r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}"#,
            )),
            Reason::ProtocolError,
        ),
        (
            Ok(polar_error(
                411,
                "LengthRequired",
                "A Content-Length header is required.",
            )),
            Reason::ProtocolError,
        ),
        (
            Ok(polar_error(
                413,
                "RequestBodyTooLarge",
                "Request body exceeded the maximum allowed size of 10485760 bytes.",
            )),
            Reason::ProtocolError,
        ),
        // A bad Polar-Version gets `{"detail":"Not Found"}`: a 404 whose detail is not in the
        // table maps to not_found (docs/interfaces.md §1); tested as a denial above. Here: 404 without JSON.
        (
            Ok(HttpResponse::new(404, "<html>nginx</html>")),
            Reason::ProtocolError,
        ),
        (
            Ok(HttpResponse::new(200, "{not json")),
            Reason::ProtocolError,
        ),
        (
            Ok(HttpResponse::new(200, r#"{"id": "x"}"#)),
            Reason::ProtocolError,
        ),
        (Ok(HttpResponse::new(201, "{}")), Reason::ProtocolError),
        (Ok(HttpResponse::new(302, "")), Reason::ProtocolError),
        (
            Ok(polar_error(403, "NotPermitted", "Something new")),
            Reason::ProtocolError,
        ),
        (
            Ok(polar_error(400, "BadRequest", "Bad request")),
            Reason::ProtocolError,
        ),
        (
            Err(TransportError::new(
                TransportErrorKind::Connect,
                "connection refused",
            )),
            Reason::Offline,
        ),
        (
            Err(TransportError::new(
                TransportErrorKind::Timeout,
                "timed out",
            )),
            Reason::Offline,
        ),
        (
            Err(TransportError::new(TransportErrorKind::Dns, "no such host")),
            Reason::Offline,
        ),
        (
            Err(TransportError::new(TransportErrorKind::Tls, "bad cert")),
            Reason::Offline,
        ),
        (
            Err(TransportError::new(TransportErrorKind::Reset, "reset")),
            Reason::Offline,
        ),
        (
            Err(TransportError::new(TransportErrorKind::Truncated, "short")),
            Reason::ProtocolError,
        ),
        (
            Err(TransportError::new(TransportErrorKind::TooLarge, "huge")),
            Reason::ProtocolError,
        ),
    ];
    for (response, reason) in cases {
        let shown = format!("{response:?}");
        let err = validate_error(response);
        assert_eq!(err.reason(), reason, "{shown} gave {err}");
    }
    assert_eq!(
        validate_error(Ok(
            HttpResponse::new(429, "").with_header("Retry-After", "17")
        )),
        Error::RateLimited {
            retry_after: Some(17)
        }
    );
    assert_eq!(
        validate_error(Ok(HttpResponse::new(429, ""))),
        Error::RateLimited { retry_after: None }
    );
    assert!(
        validate_error(Err(TransportError::new(TransportErrorKind::Timeout, "t"))).is_timeout()
    );
}

#[test]
fn a_server_422_is_invalid_input_naming_the_field() {
    let body = r#"{"error":"RequestValidationError","detail":[{"type":"string_too_long","loc":["body","conditions","kkkk","[key]"],"msg":"String should have at most 40 characters","input":"kkkk","ctx":{"max_length":40}}]}"#;
    let err = validate_error(Ok(HttpResponse::new(422, body)));
    assert_eq!(
        err,
        Error::InvalidInput {
            field: "conditions.kkkk.[key]".into(),
            message: "String should have at most 40 characters (server)".into()
        }
    );
}

/// Only Polar's wrapper is a refusal of the input: a service's `PolarRequestValidationError`
/// is one too; a 422 with the same list and no such `error` (a proxy's, a captive portal's) is
/// no answer of Polar's, `protocol_error`, which a grace-aware check answers from the cache.
#[test]
fn a_422_not_in_polar_s_wrapper_is_protocol_error() {
    let list = r#"[{"type":"missing","loc":["body","label"],"msg":"Field required","input":{}}]"#;
    let invalid = |error: &str| {
        let body = format!(r#"{{"error":{error},"detail":{list}}}"#);
        validate_error(Ok(HttpResponse::new(422, body))).reason()
    };
    assert_eq!(invalid(r#""RequestValidationError""#), Reason::InvalidInput);
    assert_eq!(
        invalid(r#""PolarRequestValidationError""#),
        Reason::InvalidInput
    );
    for not_polar in [
        r#""Polar""#,
        r#""XRequestValidationError""#,
        "\"\"",
        "null",
        "7",
    ] {
        assert_eq!(invalid(not_polar), Reason::ProtocolError, "{not_polar}");
    }
    let bare = format!(r#"{{"detail":{list}}}"#);
    let err = validate_error(Ok(HttpResponse::new(422, bare)));
    assert_eq!(err.reason(), Reason::ProtocolError, "{err:?}");
}

/// A server or a proxy that echoes the request (a FastAPI 422's `input`, a traceback page, a
/// denial's detail naming the key) never puts the key sent into an error or a detail: it is
/// there in its redacted form, on validate, activate and deactivate alike.
#[test]
fn an_answer_that_echoes_the_key_never_carries_it() {
    let echoes = [
        (
            422,
            format!(r#"{{"detail":[{{"loc":["body","key"],"msg":"bad","input":"{KEY}"}}]}}"#),
        ),
        (500, format!("Traceback: validate({KEY}) failed")),
        (502, format!("<html>upstream refused {KEY}</html>")),
        (
            404,
            format!(r#"{{"error":"ResourceNotFound","detail":"{KEY} is not found"}}"#),
        ),
        (
            403,
            format!(r#"{{"error":"NotPermitted","detail":"{KEY}: no"}}"#),
        ),
    ];
    let shown = |said: String| {
        assert!(!said.contains(KEY), "{said}");
        assert!(
            said.contains("****-6ED415") || !said.contains("6ED415"),
            "{said}"
        );
    };
    for (status, body) in echoes {
        let (client, _) = scripted(Ok(HttpResponse::new(status, body.clone())));
        let validated = client.validate(&ValidateRequest::new(KEY));
        let activated = client.activate(&ActivateRequest::new(KEY, "laptop"));
        let deactivated = client.deactivate(&DeactivateRequest::new(KEY, ACTIVATION));
        for said in [
            format!("{validated:?}"),
            format!("{activated:?}"),
            format!("{deactivated:?}"),
        ] {
            shown(said);
        }
        if let Err(e) = &validated {
            shown(e.detail());
            shown(e.to_string());
        }
    }
}

/// A timeout past a day is refused when the client is built, naming its field: no deadline
/// past the clock's range ever reaches the transport (whose arithmetic would panic on it).
#[test]
fn a_timeout_past_a_day_is_refused_naming_its_field() {
    let day = polar_license::options::MAX_TIMEOUT;
    let built = |timeout: Duration, connect: Duration| {
        BlockingClient::builder(ORG)
            .timeout(timeout)
            .connect_timeout(connect)
            .build()
            .map(|_| ())
            .map_err(|e| (e.reason(), e.field().map(str::to_string)))
    };
    let second = Duration::from_secs(1);
    assert_eq!(built(day, day), Ok(()));
    let huge = Duration::from_secs(u64::MAX / 2);
    for (timeout, connect, field) in [
        (day + second, second, "timeout"),
        (huge, second, "timeout"),
        (second, day + second, "connect_timeout"),
    ] {
        assert_eq!(
            built(timeout, connect),
            Err((Reason::InvalidInput, Some(field.to_string())))
        );
    }
}

/// Each local check refuses before the transport is called: zero requests.
#[test]
fn invalid_input_sends_zero_requests() {
    let long_key = "k".repeat(41);
    let v7 = "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c";
    let mut too_many = ValidateRequest::new(KEY).activation_id(ACTIVATION);
    for i in 0..51 {
        too_many = too_many.condition(format!("k{i}"), i);
    }
    let validates: Vec<(&str, ValidateRequest)> = vec![
        ("key", ValidateRequest::new("")),
        ("key", ValidateRequest::default()),
        ("key", ValidateRequest::new("AB\0CD")),
        ("key", ValidateRequest::new(" AB-CD")),
        ("key", ValidateRequest::new("AB-CD\n")),
        (
            "activation_id",
            ValidateRequest::new(KEY).activation_id("not-a-uuid"),
        ),
        ("activation_id", ValidateRequest::new(KEY).activation_id(v7)),
        ("benefit_id", ValidateRequest::new(KEY).benefit_id("123")),
        ("customer_id", ValidateRequest::new(KEY).customer_id(v7)),
        (
            "increment_usage",
            ValidateRequest::new(KEY).increment_usage(-1),
        ),
        (
            "increment_usage",
            ValidateRequest::new(KEY).increment_usage(1 << 40),
        ),
        ("conditions", too_many),
        (
            "conditions",
            ValidateRequest::new(KEY).condition(long_key.clone(), 1),
        ),
        ("conditions", ValidateRequest::new(KEY).condition("", 1)),
        ("conditions.k", ValidateRequest::new(KEY).condition("k", "")),
        (
            "conditions.k",
            ValidateRequest::new(KEY).condition("k", "x".repeat(501)),
        ),
        (
            "conditions.k",
            ValidateRequest::new(KEY).condition("k", f64::INFINITY),
        ),
        (
            "conditions.k",
            ValidateRequest::new(KEY).condition("k", "a\0"),
        ),
    ];
    for (field, req) in validates {
        let (client, seen) = scripted(Ok(HttpResponse::new(500, "")));
        let err = client.validate(&req).unwrap_err();
        match &err {
            Error::InvalidInput { field: f, .. } => assert_eq!(f, field, "{req:?}"),
            other => panic!("{req:?}: expected invalid input, got {other}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 0, "{field}: a request was sent");
    }

    let activates: Vec<(&str, ActivateRequest)> = vec![
        ("key", ActivateRequest::new("", "label")),
        ("key", ActivateRequest::new("AB-CD\r\n", "label")),
        ("label", ActivateRequest::new(KEY, "a\0b")),
        ("meta.k", ActivateRequest::new(KEY, "l").meta("k", "")),
        ("meta", ActivateRequest::new(KEY, "l").meta(long_key, 1)),
        (
            "conditions.m",
            ActivateRequest::new(KEY, "l").condition("m", f64::NAN),
        ),
    ];
    for (field, req) in activates {
        refused_before_sending(field, |client| client.activate(&req));
    }

    for (field, req) in [
        ("activation_id", DeactivateRequest::new(KEY, "")),
        ("activation_id", DeactivateRequest::new(KEY, v7)),
        ("key", DeactivateRequest::new("", ACTIVATION)),
    ] {
        refused_before_sending(field, |client| client.deactivate(&req));
    }
}

#[test]
fn bad_configuration_is_refused_when_building() {
    let build = |org: &str, server: Server| {
        BlockingClient::builder(org)
            .server(server)
            .build()
            .map(|_| ())
    };
    let field = |r: Result<(), Error>| match r {
        Err(Error::InvalidInput { field, .. }) => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    assert_eq!(
        field(build("not-a-uuid", Server::Production)),
        "organization_id"
    );
    assert_eq!(
        field(build(
            "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c",
            Server::Sandbox
        )),
        "organization_id"
    );
    for url in [
        "http://api.polar.sh",
        "ftp://127.0.0.1",
        "http://10.0.0.1:8000",
        "https://user:pw@api.polar.sh",
        "https://api.polar.sh/?x=1",
        "127.0.0.1:8000",
        "https://",
    ] {
        assert_eq!(
            field(build(ORG, Server::Custom(url.into()))),
            "base_url",
            "{url}"
        );
    }
    for url in [
        "http://127.0.0.1:8000",
        "http://localhost:1/",
        "http://[::1]:9",
        "http://127.5.6.7",
        "https://example.com/polar/",
    ] {
        assert!(build(ORG, Server::Custom(url.into())).is_ok(), "{url}");
    }
    assert_eq!(
        BlockingClient::builder(ORG)
            .base_url("http://localhost:9/")
            .build()
            .unwrap()
            .api()
            .url(polar_license::Operation::Validate),
        "http://localhost:9/v1/customer-portal/license-keys/validate"
    );
    assert!(BlockingClient::builder(ORG)
        .timeout(std::time::Duration::ZERO)
        .build()
        .is_err());
}

#[test]
fn access_token_uses_the_server_routes_and_is_redacted() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let client = BlockingClient::builder(ORG)
        .server(Server::Sandbox)
        .access_token("polar_oat_0123456789abcdef")
        .build_with_transport(move |req: &HttpRequest| {
            log.lock().unwrap().push(req.clone());
            Ok(HttpResponse::new(204, ""))
        })
        .unwrap();
    assert!(client
        .deactivate(&DeactivateRequest::new(KEY, ACTIVATION))
        .unwrap()
        .is_accepted());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].url,
        "https://sandbox-api.polar.sh/v1/license-keys/deactivate"
    );
    assert!(seen[0].headers.contains(&(
        "authorization",
        "Bearer polar_oat_0123456789abcdef".to_string()
    )));
    let shown = format!("{:?} {:?}", seen[0], client);
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let (client, _) = scripted(Ok(HttpResponse::new(200, LICENSE_6_2)));
    let v = client.validate(&ValidateRequest::new(KEY)).unwrap();
    let shown = format!("{v:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("****-6ED415"));
    let req = ValidateRequest::new(KEY).activation_id("bad");
    assert!(!format!("{req:?}").contains(KEY));
    let err = client.validate(&req).unwrap_err();
    assert!(!err.to_string().contains(KEY));
}

/// Issue #12, item 5: only Polar's own error envelope is a verdict. A bare 404 from a wrong
/// base path or a removed `Polar-Version`, a proxy's 403 page, a WAF's JSON, an HTML 400:
/// `protocol_error`, never a denial (so never a tombstone).
#[test]
fn only_polars_error_envelope_is_a_denial() {
    let not_polar = [
        HttpResponse::new(404, r#"{"detail":"Not Found"}"#),
        HttpResponse::new(404, "<html><h1>404</h1></html>")
            .with_header("content-type", "text/html"),
        HttpResponse::new(404, r#"{"error":"NotFound","detail":"Not found"}"#),
        HttpResponse::new(403, r#"{"detail":"License key is no longer active."}"#),
        HttpResponse::new(403, "<html>Access denied by corporate policy</html>"),
        HttpResponse::new(400, r#"{"detail":"License key only has 0 more usages."}"#),
        HttpResponse::new(400, "<html>Bad Request</html>"),
        HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":42}"#),
        HttpResponse::new(404, ""),
    ];
    for resp in not_polar {
        let (client, _) = scripted(Ok(resp.clone()));
        let answer = client.validate(&ValidateRequest::new(KEY));
        assert_eq!(
            answer.as_ref().map_err(Error::reason).err(),
            Some(Reason::ProtocolError),
            "{} {:?}: {answer:?}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        assert!(answer.unwrap_err().falls_back());
    }
    // The same details inside the envelope are verdicts.
    let (client, _) = scripted(Ok(polar_error(404, "ResourceNotFound", "Not Found")));
    let v = client.validate(&ValidateRequest::new(KEY)).unwrap();
    assert_eq!(v.denial().map(|d| d.reason), Some(Reason::NotFound));
    let (client, _) = scripted(Ok(polar_error(
        403,
        "NotPermitted",
        "License key is no longer active. This license key can not be activated.",
    )));
    let v = client
        .activate(&ActivateRequest::new(KEY, "laptop"))
        .unwrap();
    assert_eq!(v.denial().map(|d| d.reason), Some(Reason::Inactive));
}

/// Issue #12, item 4: a 200 that contradicts the request or says the license is not valid is
/// no grant: `protocol_error`.
#[test]
fn a_200_that_is_no_valid_license_for_the_request_is_a_protocol_error() {
    let good: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        HttpResponse::new(200, v.to_string())
    };
    let req = ValidateRequest::new(KEY).activation_id(ACTIVATION);
    let rows: Vec<(&str, HttpResponse)> = vec![
        ("revoked", edit(&|v| v["status"] = "revoked".into())),
        ("disabled", edit(&|v| v["status"] = "disabled".into())),
        (
            "expired",
            edit(&|v| v["expires_at"] = "2020-01-01T00:00:00Z".into()),
        ),
        (
            "another key",
            edit(&|v| v["key"] = "MYAPP-00000000-0000-4000-8000-000000000000".into()),
        ),
        (
            "another organization",
            edit(&|v| v["organization_id"] = "8f14e45f-ceea-467a-9c1e-5f2b3b2f9b11".into()),
        ),
        ("no activation", edit(&|v| v["activation"] = Value::Null)),
        (
            "another activation",
            edit(&|v| v["activation"]["id"] = "9c6f3a0e-3f43-4b8e-9d7e-5b1c8f7a2e11".into()),
        ),
    ];
    for (what, resp) in rows {
        let (client, _) = scripted(Ok(resp));
        let e = client.validate(&req).unwrap_err();
        assert_eq!(e.reason(), Reason::ProtocolError, "{what}: {e:?}");
        assert!(!e.detail().contains(KEY), "{what}: the key leaked: {e:?}");
    }
    // A benefit or customer asked for must be the one answered.
    let (client, _) = scripted(Ok(HttpResponse::new(200, LICENSE_6_2)));
    let e = client
        .validate(&ValidateRequest::new(KEY).benefit_id("1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e"))
        .unwrap_err();
    assert_eq!(e.reason(), Reason::ProtocolError, "{e:?}");
    // An expiry in the future is fine; one that passed by the server's own Date is not, even
    // with a local clock that is behind.
    let future = edit(&|v| v["expires_at"] = "2999-01-01T00:00:00Z".into());
    let (client, _) = scripted(Ok(future));
    assert!(client.validate(&req).unwrap().is_accepted());
    let soon = edit(&|v| v["expires_at"] = "2999-01-01T00:00:00Z".into())
        .with_header("date", "Tue, 01 Jan 3000 00:00:00 GMT");
    let (client, _) = scripted(Ok(soon));
    // The local clock (2026) says valid, the server's Date says expired: the earlier wins
    // only when both agree, so this stays valid; a license expired by both is refused.
    assert!(client.validate(&req).unwrap().is_accepted());
    // Activate: the activation must belong to the license answered.
    let mut activation: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    let license = activation.clone();
    activation = json!({
        "id": ACTIVATION,
        "license_key_id": "00000000-0000-4000-8000-000000000000",
        "label": "x",
        "meta": {},
        "created_at": "2026-08-22T09:20:03Z",
        "modified_at": null,
        "license_key": license,
    });
    let (client, _) = scripted(Ok(HttpResponse::new(200, activation.to_string())));
    let e = client
        .activate(&ActivateRequest::new(KEY, "laptop"))
        .unwrap_err();
    assert_eq!(e.reason(), Reason::ProtocolError, "{e:?}");
}

/// Issue #12, item 8: a `retry-after` of ten years blocks one hour at most.
#[test]
fn retry_after_is_capped_at_one_hour() {
    for (header, expected) in [
        ("315360000", 3600),
        ("3601", 3600),
        ("3600", 3600),
        ("60", 60),
    ] {
        let (client, _) = scripted(Ok(
            HttpResponse::new(429, "").with_header("retry-after", header)
        ));
        let e = client.validate(&ValidateRequest::new(KEY)).unwrap_err();
        assert_eq!(
            e,
            Error::RateLimited {
                retry_after: Some(expected)
            },
            "{header}"
        );
    }
}
