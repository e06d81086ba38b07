//! The emulator's core without a socket, a thread or a clock: every time is passed in, so the
//! rate limiter's window and block, the clock offset and the fault deliveries are checked
//! exactly. (`tests/emulator_http.rs` checks the same answers over real HTTP.)

use std::time::Duration;

use polar_license_emulator::{
    huge_body_parts, Core, Delivery, Fault, KeyUpdate, Options, Request, Response, Seed, SeedKey,
    Time, DEMO_KEY, DEMO_ORGANIZATION_ID,
};
use serde_json::{json, Value};

const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";
const ACTIVATE: &str = "/v1/customer-portal/license-keys/activate";
const DEACTIVATE: &str = "/v1/customer-portal/license-keys/deactivate";

/// 2026-09-21T12:00:00Z, and a monotonic reading `mono_ms`.
fn at(mono_ms: f64) -> Time {
    Time::from_millis(1_789_992_000_000.0 + mono_ms, mono_ms).expect("a valid time")
}

fn core(options: Options) -> Core {
    Core::with_entropy(Seed::demo(), options, at(0.0), [1; 32]).expect("the demo seed")
}

fn post(path: &str, body: &Value) -> Request {
    let body = body.to_string().into_bytes();
    Request {
        method: "POST".into(),
        target: path.into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Length".into(), body.len().to_string()),
        ],
        body,
        peer: "127.0.0.1".into(),
    }
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).expect("a JSON body")
}

fn validate_body(key: &str) -> Value {
    json!({ "key": key, "organization_id": DEMO_ORGANIZATION_ID })
}

#[test]
fn validate_answers_with_polars_headers_and_the_given_clock() {
    let mut polar = core(Options::default());
    let r = polar.handle(&post(VALIDATE, &validate_body(DEMO_KEY)), at(1_500.0));
    assert_eq!(r.status, 200);
    assert_eq!(r.delivery, Delivery::Whole);
    assert!(!r.close);
    assert_eq!(
        r.headers[0],
        ("date".into(), "Mon, 21 Sep 2026 12:00:01 GMT".into())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("polar-version"), Some("2026-10"));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("content-length"), None);
    let body = json_of(&r);
    assert_eq!(body["key"], DEMO_KEY);
    assert_eq!(body["validations"], 1);
    assert_eq!(body["last_validated_at"], "2026-09-21T12:00:01.500000Z");
    assert_eq!(polar.request_count(), 1);

    polar.set_clock_offset(86_400);
    let r = polar.handle(&post(VALIDATE, &validate_body(DEMO_KEY)), at(2_000.0));
    assert_eq!(r.header("date"), Some("Tue, 22 Sep 2026 12:00:02 GMT"));
    assert_eq!(json_of(&r)["last_validated_at"], "2026-09-22T12:00:02Z");
}

#[test]
fn activate_then_deactivate_and_the_errors() {
    let mut polar = core(Options::default());
    let r = polar.handle(
        &post(
            ACTIVATE,
            &json!({ "key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "label": "box" }),
        ),
        at(0.0),
    );
    assert_eq!(r.status, 200);
    let id = json_of(&r)["id"].as_str().expect("an id").to_string();
    assert_eq!(polar.activations(DEMO_KEY).len(), 1);
    let r = polar.handle(
        &post(
            DEACTIVATE,
            &json!({ "key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": id }),
        ),
        at(10.0),
    );
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(polar.activations(DEMO_KEY).is_empty());

    let r = polar.handle(&post(VALIDATE, &validate_body("NOPE")), at(20.0));
    assert_eq!(r.status, 404);
    assert_eq!(
        json_of(&r),
        json!({ "error": "ResourceNotFound", "detail": "Not found" })
    );
    let r = polar.handle(&post(VALIDATE, &json!({ "key": DEMO_KEY })), at(30.0));
    assert_eq!(r.status, 422);
    assert_eq!(json_of(&r)["detail"][0]["type"], "missing");
    assert_eq!(
        json_of(&r)["detail"][0]["loc"],
        json!(["body", "organization_id"])
    );
}

#[test]
fn framing_comes_from_the_headers() {
    let mut polar = core(Options::default());
    let mut req = post(VALIDATE, &validate_body(DEMO_KEY));
    req.headers.retain(|(k, _)| k != "Content-Length");
    let r = polar.handle(&req, at(0.0));
    assert_eq!(r.status, 411);
    req.headers.push(("content-length".into(), "1".into()));
    req.headers.push(("content-length".into(), "2".into()));
    let r = polar.handle(&req, at(0.0));
    assert_eq!((r.status, r.close), (400, true));
    assert_eq!(r.body, b"Invalid HTTP request received.");
}

#[test]
fn the_rate_limit_runs_on_the_monotonic_clock() {
    let mut polar = core(Options {
        rate_limit: true,
        ..Options::default()
    });
    let req = post(VALIDATE, &validate_body(DEMO_KEY));
    for ms in [0.0, 300.0, 600.0] {
        assert_eq!(polar.handle(&req, at(ms)).status, 200);
    }
    let r = polar.handle(&req, at(900.0));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert!(r.body.is_empty());
    let r = polar.handle(&req, at(30_900.0));
    assert_eq!(r.header("retry-after"), Some("30"));
    // Another client is not blocked.
    let mut other = req.clone();
    other.peer = "10.0.0.2".into();
    assert_eq!(polar.handle(&other, at(31_000.0)).status, 200);
    // The block ends 60 s after it began, on the monotonic clock alone.
    let mut late = at(60_901.0);
    late.wall = at(0.0).wall;
    assert_eq!(polar.handle(&req, late).status, 200);
    assert_eq!(polar.request_count(), 7);
}

#[test]
fn faults_say_how_they_are_delivered() {
    let mut polar = core(Options::default());
    let req = post(VALIDATE, &validate_body(DEMO_KEY));
    polar.set_fault(Some(Fault::Delay { ms: 250 }));
    let r = polar.handle(&req, at(0.0));
    assert_eq!((r.status, r.delivery), (0, Delivery::Delay { ms: 250 }));
    assert!(polar.key(DEMO_KEY).is_some_and(|k| k["validations"] == 0));
    let r = polar.resume(&req, at(250.0));
    assert_eq!((r.status, r.delivery), (200, Delivery::Whole));
    assert_eq!(json_of(&r)["validations"], 1);
    assert_eq!(polar.request_count(), 1);

    polar.set_fault(Some(Fault::Status {
        status: 503,
        body: "down".into(),
    }));
    let r = polar.handle(&req, at(300.0));
    assert_eq!((r.status, r.body.as_slice()), (503, &b"down"[..]));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(7),
    }));
    let r = polar.handle(&req, at(300.0));
    assert_eq!((r.status, r.header("retry-after")), (429, Some("7")));
    assert_eq!(r.header("polar-version"), Some("2026-10"));

    polar.set_fault(Some(Fault::Truncated));
    let r = polar.handle(&req, at(300.0));
    let Delivery::Truncated { content_length } = r.delivery else {
        panic!("not truncated: {r:?}");
    };
    assert!(r.close);
    assert_eq!(r.body.len() as u64, content_length / 2);

    polar.set_fault(Some(Fault::Huge { bytes: 100 }));
    let r = polar.handle(&req, at(300.0));
    assert_eq!(r.delivery, Delivery::Huge { bytes: 100 });
    assert_eq!(huge_body_parts(100), (&b"{\"p\":\""[..], 92, &b"\"}"[..]));
    assert_eq!(huge_body_parts(5), (&b""[..], 5, &b""[..]));

    polar.set_fault(Some(Fault::SlowBody { ms_per_byte: 3 }));
    let r = polar.handle(&req, at(300.0));
    assert_eq!(
        (r.status, r.delivery),
        (200, Delivery::SlowBody { ms_per_byte: 3 })
    );

    for (fault, delivery) in [
        (Fault::Hang, Delivery::Hang),
        (Fault::CloseImmediately, Delivery::Close),
    ] {
        polar.set_fault(Some(fault));
        assert_eq!(polar.handle(&req, at(300.0)).delivery, delivery);
    }
    // The admin routes are never faulted, and they clear it.
    let clear = Request {
        method: "POST".into(),
        target: "/__emulator/fault".into(),
        headers: vec![("content-length".into(), "4".into())],
        body: b"null".to_vec(),
        peer: "127.0.0.1".into(),
    };
    assert_eq!(polar.handle(&clear, at(400.0)).status, 204);
    assert_eq!(polar.fault(), None);
    assert_eq!(polar.handle(&req, at(400.0)).status, 200);
}

#[test]
fn the_same_entropy_gives_the_same_ids() {
    let activate = post(
        ACTIVATE,
        &json!({ "key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "label": "box" }),
    );
    let ids = |entropy: [u8; 32]| {
        let mut polar =
            Core::with_entropy(Seed::demo(), Options::default(), at(0.0), entropy).expect("seed");
        polar
            .add_key(&SeedKey::new("EXTRA-1"), at(0.0))
            .expect("a new key");
        let activation = json_of(&polar.handle(&activate, at(1.0)))["id"].clone();
        let rotated = polar.rotate_key("EXTRA-1", at(2.0));
        (
            activation,
            rotated,
            polar.key(DEMO_KEY).map(|k| k["id"].clone()),
        )
    };
    assert_eq!(ids([3; 32]), ids([3; 32]));
    assert_ne!(ids([3; 32]).0, ids([4; 32]).0);
}

#[test]
fn control_operations() {
    let mut polar = core(Options::default());
    assert_eq!(polar.organization_id(), DEMO_ORGANIZATION_ID);
    assert!(polar.update_key(
        DEMO_KEY,
        &KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        },
        at(5.0),
    ));
    let r = polar.handle(&post(VALIDATE, &validate_body(DEMO_KEY)), at(6.0));
    assert_eq!(json_of(&r)["detail"], "License key is no longer active.");
    polar.stream_started();
    assert_eq!(polar.open_streams(), 1);
    polar.stream_ended();
    polar.stream_ended();
    assert_eq!(polar.open_streams(), 0);
    polar.reset_request_count();
    assert_eq!(polar.request_count(), 0);
    assert!(Core::with_entropy(
        Seed::demo(),
        Options {
            api_version: "2020-01".into(),
            ..Options::default()
        },
        at(0.0),
        [0; 32]
    )
    .is_err());
    assert!(Time::from_millis(f64::NAN, 0.0).is_none());
    assert!(Time::from_millis(0.0, -1.0).is_none());
    assert_eq!(
        Time::from_millis(1_500.25, 2.5).map(|t| t.monotonic),
        Some(Duration::from_micros(2_500))
    );
}

/// `POST /__emulator/clock` with `body` at `t`: the status.
fn set_clock(polar: &mut Core, body: &Value, t: f64) -> u16 {
    polar.handle(&post("/__emulator/clock", body), at(t)).status
}

/// `GET /__emulator/clock` at `t`: the offset it reads back.
fn clock_offset(polar: &mut Core, t: f64) -> Value {
    let get = Request {
        method: "GET".into(),
        target: "/__emulator/clock".into(),
        headers: Vec::new(),
        body: Vec::new(),
        peer: "127.0.0.1".into(),
    };
    json_of(&polar.handle(&get, at(t)))
}

#[test]
fn the_clock_route_moves_polars_clock_and_reads_it_back() {
    let mut polar = core(Options::default());
    assert_eq!(
        clock_offset(&mut polar, 1.0),
        json!({ "offset_seconds": 0 })
    );
    let day = json!({ "offset_seconds": 86_400 });
    assert_eq!(set_clock(&mut polar, &day, 2.0), 204);
    assert_eq!(clock_offset(&mut polar, 3.0), day);
    // Polar's answers follow it: the `date` header a day on.
    let r = polar.handle(&post(VALIDATE, &validate_body(DEMO_KEY)), at(4.0));
    assert_eq!(r.header("date"), Some("Tue, 22 Sep 2026 12:00:00 GMT"));
    // Not a clock: refused, the offset left as it was.
    assert_eq!(set_clock(&mut polar, &json!({ "offset": 5 }), 5.0), 400);
    assert_eq!(clock_offset(&mut polar, 6.0), day);
    // Back to the wall clock.
    assert_eq!(
        set_clock(&mut polar, &json!({ "offset_seconds": 0 }), 7.0),
        204
    );
    let r = polar.handle(&post(VALIDATE, &validate_body(DEMO_KEY)), at(8.0));
    assert_eq!(r.header("date"), Some("Mon, 21 Sep 2026 12:00:00 GMT"));
}
