//! The Rust API over real HTTP (loopback) against the embedded emulator: every row of
//! docs/polar-api.md §6.4, the success shapes of §6.1–6.3, and the transport faults.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{
    ActivateRequest, BlockingClient, DeactivateRequest, Error, Reason, ValidateRequest, Verdict,
};
use polar_license_emulator::{Emulator, Fault, Options, Seed};
use polar_license_testkit::refused;
use serde_json::json;
use std::time::Duration;

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const OTHER_ORG: &str = "5e4f3a2b-1c0d-4e9f-8a7b-6c5d4e3f2a1b";
const BENEFIT: &str = "45f87221-45ae-4f65-8dbd-073318bc6372";
const CUSTOMER: &str = "854fa59b-860f-4262-a6ac-ae0388a7f579";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const TOKEN: &str = "polar_oat_test_token_0123456789";

fn seed() -> Seed {
    let mut keys = vec![
        json!({"key": KEY, "limit_activations": 2, "limit_usage": 100, "usage": 99,
         "benefit_id": BENEFIT, "customer_id": CUSTOMER, "customer_email": "jane.doe@gmail.com"}),
    ];
    keys.extend(refused::seed_rows());
    keys.push(json!({"key": "OTHER-ORG-KEY-0001", "organization_id": OTHER_ORG}));
    Seed::from_json(
        &json!({
            "organization_id": ORG,
            "license_keys": keys,
            "access_tokens": [{"token": TOKEN, "organization_id": ORG}]
        })
        .to_string(),
    )
    .expect("seed parses")
}

fn start(options: Options) -> (Emulator, BlockingClient) {
    let emulator = Emulator::start(seed(), options).expect("emulator starts");
    let client = BlockingClient::builder(ORG)
        .base_url(emulator.url())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds");
    (emulator, client)
}

fn up() -> (Emulator, BlockingClient) {
    start(Options::default())
}

#[track_caller]
fn denied<T: std::fmt::Debug>(v: Result<Verdict<T>, Error>, reason: Reason, detail: &str) {
    match v {
        Ok(Verdict::Denied(d)) => {
            assert_eq!((d.reason, d.detail.as_str()), (reason, detail));
        }
        other => panic!("expected {reason} ({detail}), got {other:?}"),
    }
}

fn activate(client: &BlockingClient, label: &str, machine: &str) -> String {
    match client
        .activate(&ActivateRequest::new(KEY, label).condition("machine", machine))
        .expect("activate answers")
    {
        Verdict::Accepted(a) => a.activation.id,
        Verdict::Denied(d) => panic!("activation denied: {d}"),
    }
}

#[test]
fn activation_lifecycle_and_counters() {
    let (polar, client) = up();
    let id = activate(&client, "Jane's MacBook Pro", "A");
    // Same label again takes a second slot (no de-duplication), the third is refused.
    let id2 = activate(&client, "Jane's MacBook Pro", "A");
    assert_ne!(id, id2);
    denied(
        client.activate(&ActivateRequest::new(KEY, "third")),
        Reason::ActivationLimit,
        "License key activation limit already reached",
    );

    // A validate of the first activation, as asked from `machine`.
    let from = |machine: &str| {
        ValidateRequest::new(KEY)
            .activation_id(&id)
            .condition("machine", machine)
    };
    // Validate with the activation and its conditions: licensed, counters move.
    let v = client
        .validate(&from("A").benefit_id(BENEFIT).customer_id(CUSTOMER))
        .unwrap();
    let v = v.accepted().expect("licensed");
    assert_eq!(
        v.activation.as_ref().map(|a| a.id.as_str()),
        Some(id.as_str())
    );
    assert_eq!(v.license_key.validations, 1);
    assert_eq!(v.license_key.usage, 99);
    assert!(v.license_key.last_validated_at.is_some());
    assert_eq!(v.license_key.display_key, "****-6ED415");

    // Another machine: conditions differ.
    denied(
        client.validate(&from("B")),
        Reason::ConditionsMismatch,
        "License key does not match required conditions",
    );
    // Missing conditions also differ (stored ones are non-empty).
    denied(
        client.validate(&ValidateRequest::new(KEY).activation_id(&id)),
        Reason::ConditionsMismatch,
        "License key does not match required conditions",
    );
    // A failed validate changes nothing.
    assert_eq!(polar.key(KEY).unwrap()["validations"], json!(1));

    // Deactivate frees a slot; a second deactivate is not found; the freed id no longer validates.
    assert!(client
        .deactivate(&DeactivateRequest::new(KEY, &id))
        .unwrap()
        .is_accepted());
    denied(
        client.deactivate(&DeactivateRequest::new(KEY, &id)),
        Reason::NotFound,
        "Not found",
    );
    denied(client.validate(&from("A")), Reason::NotFound, "Not found");
    activate(&client, "replacement", "C");
}

#[test]
fn validate_denials_follow_the_table() {
    let (_polar, client) = up();
    let v = |req: ValidateRequest| client.validate(&req);
    denied(
        v(ValidateRequest::new("NO-SUCH-KEY")),
        Reason::NotFound,
        "Not found",
    );
    denied(
        v(ValidateRequest::new("OTHER-ORG-KEY-0001")),
        Reason::NotFound,
        "Not found",
    );
    for key in ["REVOKED-KEY-0001", "DISABLED-KEY-0001"] {
        denied(
            v(ValidateRequest::new(key)),
            Reason::Inactive,
            "License key is no longer active.",
        );
    }
    denied(
        v(ValidateRequest::new("EXPIRED-KEY-0001")),
        Reason::Expired,
        "License key has expired.",
    );
    denied(
        v(ValidateRequest::new(KEY).activation_id("9b2f6d1e-3c4a-4f5b-8e7d-1a2b3c4d5e6f")),
        Reason::NotFound,
        "Not found",
    );
    denied(
        v(ValidateRequest::new(KEY).benefit_id("1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")),
        Reason::BenefitMismatch,
        "License key does not match given benefit.",
    );
    denied(
        v(ValidateRequest::new(KEY).customer_id("1f0e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")),
        Reason::CustomerMismatch,
        "License key does not match given user.",
    );
    // limit 100, usage 99, increment 5.
    match v(ValidateRequest::new(KEY).increment_usage(5)).unwrap() {
        Verdict::Denied(d) => {
            assert_eq!(d.reason, Reason::UsageExhausted);
            assert_eq!(d.detail, "License key only has 1 more usages.");
            assert_eq!(d.status, 400);
            assert_eq!(d.remaining_usages, Some(1));
        }
        other => panic!("{other:?}"),
    }
    // Exactly the remaining usage is fine and applied (post-update values returned).
    let ok = v(ValidateRequest::new(KEY).increment_usage(1)).unwrap();
    assert_eq!(ok.accepted().unwrap().license_key.usage, 100);
    assert_eq!(
        ok.accepted().unwrap().license_key.remaining_usage(),
        Some(0)
    );
    // At the limit without an increment Polar still answers 200.
    assert!(v(ValidateRequest::new(KEY)).unwrap().is_accepted());
}

#[test]
fn activate_denials_follow_the_table() {
    let (_polar, client) = up();
    let a = |key: &str| client.activate(&ActivateRequest::new(key, "l"));
    denied(a("NO-SUCH-KEY"), Reason::NotFound, "Not found");
    for key in ["REVOKED-KEY-0001", "DISABLED-KEY-0001"] {
        denied(
            a(key),
            Reason::Inactive,
            "License key is no longer active. This license key can not be activated.",
        );
    }
    denied(
        a("EXPIRED-KEY-0001"),
        Reason::Expired,
        "License key has expired.",
    );
    denied(
        a("NO-ACTIVATIONS-0001"),
        Reason::ActivationsNotSupported,
        "This license key does not support activations. Use the /validate endpoint instead to check license validity.",
    );
    denied(
        client.deactivate(&DeactivateRequest::new(
            KEY,
            "9b2f6d1e-3c4a-4f5b-8e7d-1a2b3c4d5e6f",
        )),
        Reason::NotFound,
        "Not found",
    );
}

#[test]
fn the_422_rows_are_caught_locally_and_send_nothing() {
    let (polar, client) = up();
    let long = "k".repeat(41);
    let errs = [
        client.validate(&ValidateRequest::new("")).unwrap_err(),
        client
            .validate(&ValidateRequest::new(KEY).increment_usage(-1))
            .unwrap_err(),
        client
            .validate(&ValidateRequest::new(KEY).condition(long.as_str(), 1))
            .unwrap_err(),
        client
            .validate(&ValidateRequest::new(KEY).condition("k", ""))
            .unwrap_err(),
        client
            .validate(
                &ValidateRequest::new(KEY).activation_id("0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"),
            )
            .unwrap_err(),
        client
            .activate(&ActivateRequest::new(KEY, "l").meta("m", ""))
            .unwrap_err(),
        client
            .deactivate(&DeactivateRequest::new(KEY, "not-a-uuid"))
            .unwrap_err(),
    ];
    for e in errs {
        assert_eq!(e.reason(), Reason::InvalidInput, "{e}");
    }
    for org in ["not-a-uuid", "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"] {
        let e = BlockingClient::builder(org)
            .base_url(polar.url())
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { ref field, .. } if field == "organization_id"));
    }
    assert_eq!(
        polar.request_count(),
        0,
        "a rejected input reached the server"
    );
}

#[test]
fn token_twins_and_junk_tokens() {
    let (polar, _) = up();
    let with_token = |token: &str| {
        BlockingClient::builder(ORG)
            .base_url(polar.url())
            .access_token(token)
            .build()
            .unwrap()
    };
    // A known token uses /v1/license-keys/... with the same logic.
    let client = with_token(TOKEN);
    assert!(client
        .validate(&ValidateRequest::new(KEY))
        .unwrap()
        .is_accepted());
    denied(
        client.validate(&ValidateRequest::new("REVOKED-KEY-0001")),
        Reason::Inactive,
        "License key is no longer active.",
    );
    // A junk token is 401 invalid_token: a protocol error, not a denial.
    let err = with_token("xyz")
        .validate(&ValidateRequest::new(KEY))
        .unwrap_err();
    assert_eq!(err.reason(), Reason::ProtocolError);
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn rate_limit_gives_rate_limited_with_retry_after() {
    let (_polar, client) = start(Options {
        rate_limit: true,
        rate_limit_block: Duration::from_secs(2),
        ..Options::default()
    });
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(client.validate(&ValidateRequest::new(KEY)));
    }
    // The fixed one-second window may straddle a boundary; at least one of 4 quick calls is
    // refused once three land in one window, and the first refusal carries the block length.
    let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert_eq!(
        refused[0],
        &Error::RateLimited {
            retry_after: Some(2)
        }
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert!(client
        .validate(&ValidateRequest::new(KEY))
        .unwrap()
        .is_accepted());
}

#[test]
fn faults_map_to_reasons() {
    let (polar, client) = up();
    let check = |fault: Fault, reason: Reason| {
        polar.set_fault(Some(fault.clone()));
        let err = client.validate(&ValidateRequest::new(KEY)).unwrap_err();
        assert_eq!(err.reason(), reason, "{fault:?}: {err}");
        err
    };
    for status in [500, 502, 503] {
        check(
            Fault::Status {
                status,
                body: "Internal Server Error".into(),
            },
            Reason::ServerError,
        );
    }
    for (status, body) in [
        (
            411,
            r#"{"error":"LengthRequired","detail":"A Content-Length header is required."}"#,
        ),
        (
            413,
            r#"{"error":"RequestBodyTooLarge","detail":"Request body exceeded the maximum allowed size of 10485760 bytes."}"#,
        ),
        (418, "teapot"),
    ] {
        check(
            Fault::Status {
                status,
                body: body.into(),
            },
            Reason::ProtocolError,
        );
    }
    let e = check(
        Fault::RateLimited {
            retry_after: Some(60),
        },
        Reason::RateLimited,
    );
    assert_eq!(
        e,
        Error::RateLimited {
            retry_after: Some(60)
        }
    );
    let e = check(
        Fault::RateLimited { retry_after: None },
        Reason::RateLimited,
    );
    assert_eq!(e, Error::RateLimited { retry_after: None });
    check(Fault::Malformed, Reason::ProtocolError);
    check(Fault::Truncated, Reason::ProtocolError);
    check(
        Fault::Huge {
            bytes: 50 * 1024 * 1024,
        },
        Reason::ProtocolError,
    );
    check(Fault::CloseImmediately, Reason::Offline);

    // A bad Polar-Version answer (or a wrong base path) is a bare 404 without Polar's error
    // envelope: no verdict on the key, a protocol_error (docs/interfaces.md §1).
    polar.set_fault(Some(Fault::Status {
        status: 404,
        body: r#"{"detail":"Not Found"}"#.into(),
    }));
    let e = client.validate(&ValidateRequest::new(KEY)).unwrap_err();
    assert_eq!(e.reason(), Reason::ProtocolError, "{e:?}");
    // A 404 inside the envelope with a detail this version does not know: not_found.
    polar.set_fault(Some(Fault::Status {
        status: 404,
        body: r#"{"error":"ResourceNotFound","detail":"Gone fishing"}"#.into(),
    }));
    denied(
        client.validate(&ValidateRequest::new(KEY)),
        Reason::NotFound,
        "Gone fishing",
    );

    // Timeouts: a server that never answers and one that dribbles the body.
    let quick = BlockingClient::builder(ORG)
        .base_url(polar.url())
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    polar.set_fault(Some(Fault::Hang));
    let e = quick.validate(&ValidateRequest::new(KEY)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    polar.set_fault(Some(Fault::SlowBody { ms_per_byte: 50 }));
    let e = quick.validate(&ValidateRequest::new(KEY)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // A delay shorter than the timeout is fine.
    polar.set_fault(Some(Fault::Delay { ms: 100 }));
    assert!(quick
        .validate(&ValidateRequest::new(KEY))
        .unwrap()
        .is_accepted());

    polar.set_fault(None);
    assert!(client
        .validate(&ValidateRequest::new(KEY))
        .unwrap()
        .is_accepted());

    // Down: connection refused.
    polar.stop();
    let e = client.validate(&ValidateRequest::new(KEY)).unwrap_err();
    assert_eq!(e.reason(), Reason::Offline, "{e}");
    assert!(!e.is_timeout());
}
