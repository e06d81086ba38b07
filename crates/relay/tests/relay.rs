//! The relay over loopback HTTP, in front of the emulator (issue #25): Polar's routes replayed
//! through it (same status and body as the emulator's public route, plus a lease on grants
//! that verifies for the right machine only), faults passed through, the rate limits and the
//! bad-input answers without a call upstream, CORS, and the token kept out of logs and bodies;
//! and the server's limits on slow, silent and too many clients, and on accept errors.

mod rig;

use polar_license::lease::{self, SigningKey, LEASE_HEADER};
use polar_license::{AccessToken, Key, Server, UreqTransport};
use polar_license_emulator::{
    Emulator, Fault, Options, Seed, SeedKey, DEMO_KEY, DEMO_KEY_DISABLED, DEMO_KEY_EXPIRED,
    DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_REVOKED, DEMO_KEY_USAGE, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
    DEMO_TOKEN_READ_ONLY,
};
use polar_license_relay::{Limits, Rate, Relay, RelayConfig, Running, ServeOptions};
use polar_license_testkit::http::HttpAnswer as Answer;
use polar_license_testkit::{leases, logs};
use serde_json::{json, Value};
use std::time::Duration;

const ORG: &str = DEMO_ORGANIZATION_ID;
const OTHER_ORG: &str = "5e4f3a2b-1c0d-4e9f-8a7b-6c5d4e3f2a1b";
const PUBLIC: &str = "/v1/customer-portal/license-keys/";

// ---- Set-up -------------------------------------------------------------------------------

struct Rig {
    polar: Emulator,
    relay: Option<Running>,
    url: String,
    keys: lease::RelayKeys,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
    }
}

fn generous() -> Limits {
    Limits {
        per_ip: Rate::new(1000, 1000),
        per_key: Rate::new(1000, 1000),
        ..Limits::default()
    }
}

fn rig_with(seed: Seed, token: &str, limits: Limits, org: Option<&str>, base: Option<&str>) -> Rig {
    rig_serving(seed, token, limits, org, base, None)
}

/// [`rig_with`], served by `serve_with(options)` when there are options, by `serve` otherwise.
fn rig_serving(
    seed: Seed,
    token: &str,
    limits: Limits,
    org: Option<&str>,
    base: Option<&str>,
    options: Option<ServeOptions>,
) -> Rig {
    logs::capture();
    let polar = Emulator::start(seed, Options::default()).expect("emulator starts");
    let signing = SigningKey::generate(Some("k1")).expect("a key");
    let keys = signing.relay_keys();
    let upstream = base.map_or_else(|| polar.url(), str::to_string);
    let mut config = rig::config_with(upstream, token, signing);
    config.limits = limits;
    config.organization_id = org.map(str::to_string);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    // `serve` is `serve_with` the default options.
    let running = rig::listen(relay, options.unwrap_or_default());
    Rig {
        url: running.url(),
        relay: Some(running),
        polar,
        keys,
    }
}

fn rig() -> Rig {
    rig_with(Seed::demo(), DEMO_TOKEN, generous(), None, None)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.to_vec()).expect("a request");
    Answer::read(agent().run(req).expect("an answer"))
}

fn post(base: &str, op: &str, body: &Value) -> Answer {
    send(
        "POST",
        &format!("{base}{PUBLIC}{op}"),
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// What changes between two answers about the same key: counters, clocks and new ids.
fn masked(mut v: Value) -> Value {
    fn mask(v: &mut Value) {
        if let Value::Object(m) = v {
            for name in [
                "validations",
                "last_validated_at",
                "modified_at",
                "created_at",
                "usage",
            ] {
                if m.contains_key(name) {
                    m.insert(name.into(), json!("*"));
                }
            }
            for (_, inner) in m.iter_mut() {
                mask(inner);
            }
        }
    }
    if let Some(a) = v.get_mut("activation").filter(|a| a.is_object()) {
        a["id"] = json!("*");
    }
    if v.get("license_key_id").is_some() {
        v["id"] = json!("*");
    }
    mask(&mut v);
    v
}

fn verifies(
    rig: &Rig,
    answer: &Answer,
    key: &str,
    act: Option<&str>,
    machine: Option<&str>,
) -> bool {
    let Some(token) = answer.header(LEASE_HEADER) else {
        return false;
    };
    let key = Key::new(key);
    let expect = rig::expect_lease(&key, act, machine);
    let now = rig::now();
    lease::verify(token, &rig.keys, &expect, now, 600).is_ok()
}

// ---- Replay ---------------------------------------------------------------------------------

/// Sends `body` to the emulator's public route and through the relay: the same status and
/// body (counters, clocks and new ids masked), and a lease exactly when `leased`.
fn replay(rig: &Rig, op: &str, body: Value, status: u16, leased: bool) -> (Answer, Answer) {
    replay_with(rig, op, body, &[], status, leased)
}

/// [`replay`] with these request headers besides `content-type`.
fn replay_with(
    rig: &Rig,
    op: &str,
    body: Value,
    extra: &[(&str, &str)],
    status: u16,
    leased: bool,
) -> (Answer, Answer) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let text = body.to_string();
    let direct = send(
        "POST",
        &format!("{}{PUBLIC}{op}", rig.polar.url()),
        &headers,
        text.as_bytes(),
    );
    let relayed = send(
        "POST",
        &format!("{}{PUBLIC}{op}", rig.url),
        &headers,
        text.as_bytes(),
    );
    assert_eq!(direct.status, status, "{op} {body}: {}", direct.text());
    assert_eq!(relayed.status, status, "{op} {body}: {}", relayed.text());
    if status == 200 {
        assert_eq!(masked(relayed.json()), masked(direct.json()), "{op} {body}");
    } else {
        assert_eq!(relayed.text(), direct.text(), "{op} {body}");
    }
    assert_eq!(
        relayed.header("content-type"),
        direct.header("content-type"),
        "{op} {body}"
    );
    assert_eq!(
        relayed.header(LEASE_HEADER).is_some(),
        leased,
        "{op} {body}: lease header"
    );
    (direct, relayed)
}

#[test]
fn the_routes_replayed_through_the_relay_answer_as_polar_does_with_a_lease_on_grants() {
    let rig = rig();
    let v = |key: &str| json!({"key": key, "organization_id": ORG});

    // Granted, no activation: a lease for no machine and no activation.
    let (_, r) = replay(&rig, "validate", v(DEMO_KEY), 200, true);
    assert!(verifies(&rig, &r, DEMO_KEY, None, None));
    assert!(!verifies(&rig, &r, DEMO_KEY, None, Some("machine-b")));
    assert!(!verifies(&rig, &r, DEMO_KEY_USAGE, None, None));

    // Activate bound to a machine: the lease verifies for it, with the new activation only.
    let activate = json!({"key": DEMO_KEY, "organization_id": ORG, "label": "laptop",
        "conditions": {"machine_fingerprint": "machine-a"}, "meta": {"os": "linux"}});
    let (_, r) = replay(&rig, "activate", activate, 200, true);
    let act = r.json()["id"]
        .as_str()
        .expect("an activation id")
        .to_string();
    assert!(verifies(&rig, &r, DEMO_KEY, Some(&act), Some("machine-a")));
    assert!(!verifies(&rig, &r, DEMO_KEY, Some(&act), Some("machine-b")));
    assert!(!verifies(&rig, &r, DEMO_KEY, None, Some("machine-a")));

    // Validate with that activation and its conditions.
    let with_act = json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": act,
        "conditions": {"machine_fingerprint": "machine-a"}});
    let (_, r) = replay(&rig, "validate", with_act, 200, true);
    assert!(verifies(&rig, &r, DEMO_KEY, Some(&act), Some("machine-a")));
    assert!(!verifies(&rig, &r, DEMO_KEY, Some(&act), Some("machine-b")));
    // Another machine's conditions: Polar's 404, no lease.
    let other = json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": act,
        "conditions": {"machine_fingerprint": "machine-b"}});
    replay(&rig, "validate", other, 404, false);

    // Denials: revoked, disabled, expired, unknown, wrong organization, usage limit.
    for key in [
        DEMO_KEY_REVOKED,
        DEMO_KEY_DISABLED,
        DEMO_KEY_EXPIRED,
        "NO-SUCH-KEY",
    ] {
        replay(&rig, "validate", v(key), 404, false);
    }
    let other_org = json!({"key": DEMO_KEY, "organization_id": OTHER_ORG});
    replay(&rig, "validate", other_org.clone(), 404, false);
    let usage = json!({"key": DEMO_KEY_USAGE, "organization_id": ORG, "increment_usage": 11});
    let (d, _) = replay(&rig, "validate", usage, 400, false);
    assert_eq!(d.json()["error"], "BadRequest");

    // Activate's denials: revoked, expired, no activations, the activation limit.
    let a = |key: &str| json!({"key": key, "organization_id": ORG, "label": "x"});
    for key in [
        DEMO_KEY_REVOKED,
        DEMO_KEY_DISABLED,
        DEMO_KEY_EXPIRED,
        DEMO_KEY_NO_ACTIVATIONS,
    ] {
        replay(&rig, "activate", a(key), 403, false);
    }
    replay(&rig, "activate", a("NO-SUCH-KEY"), 404, false);
    rig.polar
        .add_key(SeedKey {
            key: "ONE-SLOT-KEY".into(),
            limit_activations: Some(2),
            ..SeedKey::default()
        })
        .expect("a key added");
    replay(&rig, "activate", a("ONE-SLOT-KEY"), 200, true);
    let (d, _) = replay(&rig, "activate", a("ONE-SLOT-KEY"), 403, false);
    assert_eq!(
        d.json()["detail"],
        "License key activation limit already reached"
    );

    // Bad input: Polar's 422 bytes, from the relay's own checks.
    for (op, body) in [
        ("validate", json!({"key": "K"})),
        (
            "validate",
            json!({"key": "K", "organization_id": "not-a-uuid"}),
        ),
        (
            "validate",
            json!({"key": "K", "organization_id": "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c"}),
        ),
        (
            "validate",
            json!({"key": "K", "organization_id": ORG, "increment_usage": -1}),
        ),
        (
            "validate",
            json!({"key": "K", "organization_id": ORG, "conditions": {"a": ""}}),
        ),
        ("activate", json!({"key": "K", "organization_id": ORG})),
        ("deactivate", json!({"key": "K", "organization_id": ORG})),
        ("validate", json!(["not", "an", "object"])),
    ] {
        replay(&rig, op, body, 422, false);
    }

    // Deactivate: 204 through the relay, then Polar's 404 for the same activation.
    let deactivate = json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": act});
    let r = post(&rig.url, "deactivate", &deactivate);
    assert_eq!(
        (r.status, r.body.len(), r.header(LEASE_HEADER)),
        (204, 0, None)
    );
    replay(&rig, "deactivate", deactivate, 404, false);
}

#[test]
fn a_relay_for_one_organization_answers_another_with_polars_404_without_a_call() {
    let rig = rig_with(Seed::demo(), DEMO_TOKEN, generous(), Some(ORG), None);
    let direct = post(
        &rig.polar.url(),
        "validate",
        &json!({"key": DEMO_KEY, "organization_id": OTHER_ORG}),
    );
    rig.polar.reset_request_count();
    let relayed = post(
        &rig.url,
        "validate",
        &json!({"key": DEMO_KEY, "organization_id": OTHER_ORG}),
    );
    assert_eq!(
        (relayed.status, relayed.text()),
        (direct.status, direct.text())
    );
    assert_eq!(rig.polar.request_count(), 0);
    let granted = post(
        &rig.url,
        "validate",
        &json!({"key": DEMO_KEY, "organization_id": ORG}),
    );
    assert_eq!((granted.status, rig.polar.request_count()), (200, 1));
    assert!(verifies(&rig, &granted, DEMO_KEY, None, None));
}

// ---- Faults ---------------------------------------------------------------------------------

#[test]
fn polars_faults_pass_through_and_are_never_leased() {
    let rig = rig();
    let body = json!({"key": DEMO_KEY, "organization_id": ORG});

    rig.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(60),
    }));
    let r = post(&rig.url, "validate", &body);
    assert_eq!(
        (r.status, r.header("retry-after"), r.body.len()),
        (429, Some("60"), 0)
    );
    assert_eq!(r.header(LEASE_HEADER), None);

    rig.polar.set_fault(Some(Fault::Status {
        status: 500,
        body: "Internal Server Error".into(),
    }));
    let r = post(&rig.url, "validate", &body);
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(r.header(LEASE_HEADER), None);

    // A captive portal's login page, with a 200.
    rig.polar.set_fault(Some(Fault::Respond {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<html>please log in</html>".into(),
    }));
    let r = post(&rig.url, "validate", &body);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "<html>please log in</html>")
    );
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header(LEASE_HEADER), None);

    // A 200 that says the key is revoked, or that is about another key: no lease.
    rig.polar.set_fault(None);
    let real = post(&rig.polar.url(), "validate", &body).json();
    for (field, value) in [("status", json!("revoked")), ("key", json!("OTHER-KEY"))] {
        let mut forged = real.clone();
        forged[field] = value;
        rig.polar.set_fault(Some(Fault::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: forged.to_string(),
        }));
        let r = post(&rig.url, "validate", &body);
        assert_eq!((r.status, r.json()), (200, forged));
        assert_eq!(r.header(LEASE_HEADER), None, "{field}");
    }
    // A 200 whose license expired an hour ago: no lease.
    let mut expired = real.clone();
    expired["expires_at"] = json!("2020-01-01T00:00:00Z");
    rig.polar.set_fault(Some(Fault::Respond {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: expired.to_string(),
    }));
    assert_eq!(post(&rig.url, "validate", &body).header(LEASE_HEADER), None);
}

#[test]
fn polar_unreachable_is_502_for_the_client_to_fall_back() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let down = format!("http://127.0.0.1:{port}");
    let rig = rig_with(Seed::demo(), DEMO_TOKEN, generous(), None, Some(&down));
    let r = post(
        &rig.url,
        "validate",
        &json!({"key": DEMO_KEY, "organization_id": ORG}),
    );
    assert_eq!(r.status, 502);
    assert!(r.json()["detail"].is_string(), "{}", r.text());
    assert_eq!(r.header(LEASE_HEADER), None);
    // The relay's own answer: Polar gave none.
    assert_eq!(r.header("polar-license-source"), Some("relay"));
}

#[test]
fn a_refused_seller_token_is_502_and_an_error_line_never_showing_the_token() {
    let bad = "polar_oat_not_a_real_token_777777";
    for token in [bad, DEMO_TOKEN_READ_ONLY] {
        let rig = rig_with(Seed::demo(), token, generous(), None, None);
        let r = post(
            &rig.url,
            "validate",
            &json!({"key": DEMO_KEY, "organization_id": ORG}),
        );
        assert_eq!(r.status, 502, "{token}: {}", r.text());
        assert_eq!(r.header("polar-license-source"), Some("relay"));
        assert!(!r.text().contains(token), "{}", r.text());
        assert!(r.headers.iter().all(|(_, v)| !v.contains(token)));
        assert_eq!(rig.polar.request_count(), 1);
    }
    let lines = logs::lines();
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR")
                && l.contains("refused the relay's access token")
                // The setting named as `relay serve` takes it.
                && l.contains("check --access-token (POLAR_ACCESS_TOKEN) and")),
        "{lines:#?}"
    );
    for secret in [bad, DEMO_TOKEN_READ_ONLY, DEMO_TOKEN, DEMO_KEY] {
        assert!(
            lines.iter().all(|l| !l.contains(secret)),
            "{secret} logged: {lines:#?}"
        );
    }
}

// ---- Limits and bad input: no call upstream ------------------------------------------------

/// Sends `body` until the relay answers 429 (at most 20 times): how many went through first,
/// and the 429. Real time passes between requests, so the exact count is the core tests'
/// (src/lib.rs, a fixed clock); here: a 429 comes, with `retry-after`, and Polar saw exactly
/// the requests that went through.
fn until_429(url: &str, body: impl Fn(usize) -> Value) -> (u64, Answer) {
    for i in 0..20 {
        let r = post(url, "validate", &body(i));
        if r.status == 429 {
            return (i as u64, r);
        }
        assert_eq!(r.status, 200, "{}", r.text());
    }
    panic!("no 429 in 20 requests");
}

/// The rig with `limits`, sent validates of `body` [`until_429`]: the 429 says `retry-after: 1`
/// and Polar saw exactly the requests that went through. The rig, how many went through, and
/// the 429.
fn limited(limits: Limits, body: impl Fn(usize) -> Value) -> (Rig, u64, Answer) {
    let rig = rig_with(Seed::demo(), DEMO_TOKEN, limits, None, None);
    let (through, r) = until_429(&rig.url, body);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    // The relay's own refusal, not Polar's.
    assert_eq!(r.header("polar-license-source"), Some("relay"));
    assert_eq!(rig.polar.request_count(), through);
    (rig, through, r)
}

#[test]
fn the_per_ip_limit_answers_429_with_retry_after_and_no_call() {
    let keys = [DEMO_KEY, DEMO_KEY_USAGE, DEMO_KEY_NO_ACTIVATIONS];
    let per_ip = Limits {
        per_ip: Rate::new(1, 2),
        ..generous()
    };
    let (_rig, through, r) = limited(
        per_ip,
        |i| json!({"key": keys[i % keys.len()], "organization_id": ORG}),
    );
    assert!(through >= 2, "{through}");
    assert_eq!(r.body.len(), 0);
}

#[test]
fn the_per_key_limit_holds_one_key_back_and_not_the_others() {
    let v = |key: &str| json!({"key": key, "organization_id": ORG});
    let per_key = Limits {
        per_key: Rate::new(1, 1),
        ..generous()
    };
    let (rig, through, _) = limited(per_key, |_| v(DEMO_KEY));
    // Another key right after: its own bucket.
    assert_eq!(post(&rig.url, "validate", &v(DEMO_KEY_USAGE)).status, 200);
    assert_eq!(rig.polar.request_count(), through + 1);
}

#[test]
fn oversized_and_bad_bodies_are_answered_without_a_call() {
    let rig = rig();
    let big = format!(
        r#"{{"key":"{DEMO_KEY}","organization_id":"{ORG}","label":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let url = format!("{}{PUBLIC}activate", rig.url);
    let r = send(
        "POST",
        &url,
        &[("content-type", "application/json")],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "RequestBodyTooLarge");

    // Not JSON, not UTF-8, not an object, an empty body: Polar's answers, compared.
    let direct_url = format!("{}{PUBLIC}validate", rig.polar.url());
    let relay_url = format!("{}{PUBLIC}validate", rig.url);
    let bodies: [&[u8]; 4] = [b"{\"key\": ", b"\xff\xfe\x00", b"42", b""];
    let mut expected = Vec::new();
    for body in bodies {
        let d = send(
            "POST",
            &direct_url,
            &[("content-type", "application/json")],
            body,
        );
        expected.push((d.status, d.text()));
    }
    rig.polar.reset_request_count();
    for (body, want) in bodies.iter().zip(&expected) {
        let r = send(
            "POST",
            &relay_url,
            &[("content-type", "application/json")],
            body,
        );
        assert_eq!(&(r.status, r.text()), want, "{body:?}");
    }
    // The core's stricter checks: an empty key, one with a trailing space.
    for key in ["", "KEY "] {
        let r = post(
            &rig.url,
            "validate",
            &json!({"key": key, "organization_id": ORG}),
        );
        assert_eq!(
            (r.status, r.json()["detail"][0]["loc"].clone()),
            (422, json!(["body", "key"]))
        );
    }
    assert_eq!(rig.polar.request_count(), 0);
}

#[test]
fn cors_preflights_and_headers_and_unknown_routes() {
    let rig = rig();
    let url = format!("{}{PUBLIC}validate", rig.url);
    let r = send(
        "OPTIONS",
        &url,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("content-type")));
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|h| h.contains("POST")));
    let g = post(
        &rig.url,
        "validate",
        &json!({"key": DEMO_KEY, "organization_id": ORG}),
    );
    assert_eq!(g.header("access-control-allow-origin"), Some("*"));
    let exposed = g
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for name in [LEASE_HEADER, "retry-after", "date"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let r = send("GET", &url, &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, OPTIONS")));
    let r = send(
        "POST",
        &format!("{}/v1/license-keys/validate", rig.url),
        &[],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(rig.polar.request_count(), 1);
}

#[test]
fn more_of_polars_rows_and_its_versions_replayed() {
    let rig = rig();
    let other = "9b1d7c2e-3f4a-4b5c-8d6e-7f8091a2b3c4";
    let base = || json!({"key": DEMO_KEY, "organization_id": ORG});
    let with = |name: &str, value: Value| {
        let mut b = base();
        b[name] = value;
        b
    };
    for (name, detail) in [
        ("benefit_id", "License key does not match given benefit."),
        ("customer_id", "License key does not match given user."),
    ] {
        let (d, _) = replay(&rig, "validate", with(name, json!(other)), 404, false);
        assert_eq!(d.json()["detail"], detail, "{name}");
    }
    let long_key = "k".repeat(41);
    replay(
        &rig,
        "validate",
        with("conditions", json!({ long_key: 1 })),
        422,
        false,
    );
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("c{i}"), json!(i))).collect();
    replay(
        &rig,
        "activate",
        {
            let mut b = with("conditions", Value::Object(many));
            b["label"] = json!("x");
            b
        },
        422,
        false,
    );
    replay(
        &rig,
        "validate",
        json!({"key": "A\u{0}B", "organization_id": ORG}),
        422,
        false,
    );
    replay(
        &rig,
        "validate",
        with("increment_usage", json!(1.5)),
        422,
        false,
    );
    // Polar-Version: a removed one is Polar's bare 404; the newest one's answer (member,
    // subscription, order) is a grant the core reads, leased.
    replay_with(
        &rig,
        "validate",
        base(),
        &[("polar-version", "2025-01")],
        404,
        false,
    );
    let (_, r) = replay_with(
        &rig,
        "validate",
        base(),
        &[("polar-version", "2027-01")],
        200,
        true,
    );
    assert_eq!(r.header("polar-version"), Some("2027-01"));
    assert!(verifies(&rig, &r, DEMO_KEY, None, None));
}

#[test]
fn a_lease_ends_with_the_license_when_that_comes_first() {
    let rig = rig();
    let now = rig::now();
    let in_two_days = time::OffsetDateTime::from_unix_timestamp(now + 2 * 86_400)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    rig.polar
        .add_key(SeedKey {
            key: "SHORT-LIVED-KEY".into(),
            expires_at: Some(in_two_days),
            ..SeedKey::default()
        })
        .expect("a key added");
    let expect_for = |key: &'static str| {
        let r = post(
            &rig.url,
            "validate",
            &json!({"key": key, "organization_id": ORG}),
        );
        let token = r.header(LEASE_HEADER).expect("a lease");
        leases::verify_plain(token, &rig.keys, ORG, key, rig::now()).expect("verifies")
    };
    let short = expect_for("SHORT-LIVED-KEY");
    assert_eq!(
        Some(short.claims.expires_at),
        short.claims.license_expires_at
    );
    assert!((short.claims.expires_at - now - 2 * 86_400).abs() <= 1);
    let long = expect_for(DEMO_KEY);
    assert_eq!(long.claims.expires_at - long.claims.issued_at, 7 * 86_400);
    assert_eq!(long.claims.license_expires_at, None);
    assert_ne!(short.claims.id, long.claims.id);
}

// ---- The machine, with a signer held elsewhere (the npm package's relay) --------------------

/// A relay whose leases are signed outside it (`Signer::External`), its request machine driven
/// as a JS host drives it (the rig's host): the call (here through ureq), then an Ed25519
/// signature of the bytes the machine asks to sign ([`Need::Sign`]) made with the key's secret
/// by ed25519-compact (WebCrypto's stand-in). Its answers are the emulator's, with a lease on
/// grants that verifies for the machine asked; a signature by another key, or none, gives the
/// grant without a lease.
#[test]
fn an_external_signer_signs_what_the_machine_asks_and_answers_as_polar() {
    use polar_license::Transport;
    use polar_license_relay::flow::{Given, Need};
    use polar_license_relay::{Now, RelayRequest};
    logs::capture();
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let (mut config, signing, secret) = rig::externally_signed(polar.url());
    let keys = signing.relay_keys();
    let other = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32]));
    config.limits = generous();
    let relay = Relay::with_entropy(
        config,
        Box::new(|_: &polar_license::HttpRequest| {
            Err(polar_license::TransportError::new(
                polar_license::TransportErrorKind::Connect,
                "unused",
            ))
        }),
        Box::new(|| None),
    )
    .expect("relay config");
    let transport = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1024 * 1024);
    let now = || Now {
        unix_seconds: rig::now(),
        monotonic_ms: 0,
    };
    let request = |op: &str, body: &Value| RelayRequest {
        method: "POST".into(),
        path: format!("{PUBLIC}{op}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
        client_ip: "192.0.2.7".into(),
    };
    // The answer, and whether a lease was signed and verified (`Need::Sign` asked, no error).
    let run = |req: RelayRequest, sign: &dyn Fn(&[u8]) -> Vec<u8>| -> (Answer, bool) {
        let mut drive = rig::Drive::new(&relay, req, now());
        drive.entropy = Some([3; 16]);
        let mut signed = false;
        let r = drive.run_with(|x, need| match need {
            Need::Send { request, .. } => x.give(Given::Upstream(transport.send(&request))),
            Need::Sign(bytes) => {
                signed = true;
                x.give(Given::Signature(sign(&bytes)));
            }
            other => x.as_host(other),
        });
        let leased = signed && r.lease().is_some();
        (
            Answer {
                status: r.status,
                headers: r.headers,
                body: r.body,
            },
            leased,
        )
    };
    let honest = |b: &[u8]| secret.sign(b, None).to_vec();
    let impostor = |b: &[u8]| other.sk.sign(b, None).to_vec();

    // A grant bound to a machine: the lease verifies for it alone.
    let body = json!({"key": DEMO_KEY, "organization_id": ORG, "label": "ext",
        "conditions": {"machine_fingerprint": "machine-X"}});
    let (activated, leased) = run(request("activate", &body), &honest);
    assert_eq!(activated.status, 200, "{}", activated.text());
    assert!(leased);
    let act = activated.json()["id"].as_str().map(str::to_string);
    let token = activated.header(LEASE_HEADER).expect("a lease").to_string();
    let key = Key::new(DEMO_KEY);
    let expect = |machine| rig::expect_lease(&key, act.as_deref(), machine);
    lease::verify(&token, &keys, &expect(Some("machine-X")), rig::now(), 600).expect("verifies");
    assert!(lease::verify(&token, &keys, &expect(Some("machine-Y")), rig::now(), 600).is_err());
    assert_eq!(activated.header("access-control-allow-origin"), Some("*"));

    // Another key's signature: the grant, without a lease.
    let body = json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": act,
        "conditions": {"machine_fingerprint": "machine-X"}});
    let (validated, leased) = run(request("validate", &body), &impostor);
    assert_eq!(validated.status, 200);
    assert!(!leased);
    assert_eq!(validated.header(LEASE_HEADER), None);
    assert!(logs::lines().iter().any(|l| l.contains("does not verify")));

    // The same answers as the emulator's public routes for a denial and a 422; no lease.
    for (op, body) in [
        (
            "validate",
            json!({"key": DEMO_KEY_REVOKED, "organization_id": ORG}),
        ),
        ("validate", json!({"organization_id": ORG})),
        (
            "deactivate",
            json!({"key": DEMO_KEY, "organization_id": ORG,
            "activation_id": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"}),
        ),
    ] {
        let (relayed, leased) = run(request(op, &body), &honest);
        let direct = post(&polar.url(), op, &body);
        assert_eq!(
            (relayed.status, relayed.text()),
            (direct.status, direct.text()),
            "{op} {body}"
        );
        assert!(!leased);
        assert_eq!(relayed.header(LEASE_HEADER), None);
    }

    // Answered by the core alone, no call asked: a preflight and an unknown route.
    let mut preflight = request("validate", &json!({}));
    preflight.method = "OPTIONS".into();
    let mut unknown = request("other", &json!({}));
    unknown.path = "/v1/other".into();
    for (what, req, status) in [
        ("a preflight", preflight, 204),
        ("an unknown route", unknown, 404),
    ] {
        let answer = rig::Drive::new(&relay, req, now()).expect_answer();
        assert_eq!(answer.status, status, "{what}");
    }

    // No randomness: no lease id, so no lease (and nothing to sign).
    let body = json!({"key": DEMO_KEY, "organization_id": ORG, "activation_id": act,
        "conditions": {"machine_fingerprint": "machine-X"}});
    let mut drive = rig::Drive::new(&relay, request("validate", &body), now());
    drive.entropy = None;
    drive.expect_send();
    drive.give(Given::Upstream(transport.send(drive.sent())));
    let answer = drive.expect_answer();
    assert_eq!((answer.status, answer.lease()), (200, None));
}

/// The machine takes a request's per-IP token before it asks its host to load anything (the
/// npm relay over a Durable Object loads what a request touches), so a flood past the limit is
/// refused before any read; and it takes it once: a request let through is not refused later
/// on its own token.
#[test]
fn the_machine_takes_the_per_ip_token_once_before_the_store_is_read() {
    use polar_license_relay::flow::{ExchangeOptions, Given, Need};
    use polar_license_relay::store::StoreOptions;
    use polar_license_relay::{Now, RelayRequest};
    let signing = SigningKey::generate(Some("adm")).expect("a key");
    let mut config = RelayConfig::new(
        Server::Custom("http://127.0.0.1:9".into()),
        AccessToken::new(DEMO_TOKEN),
        signing,
    );
    config.limits = Limits {
        per_ip: Rate::new(1, 1),
        ..generous()
    };
    // A store the host keeps (loaded before the core reads it), as on Workers.
    let paged = std::sync::Arc::new(polar_license_relay::store::PagedBackend::new(10, 16));
    paged.restore(Vec::new());
    config.store = rig::store(paged.clone(), StoreOptions::default(), None);
    let unused = |_: &polar_license::HttpRequest| {
        Err(polar_license::TransportError::new(
            polar_license::TransportErrorKind::Connect,
            "unused",
        ))
    };
    let relay =
        Relay::with_entropy(config, Box::new(unused), Box::new(|| None)).expect("relay config");
    let now = Now {
        unix_seconds: rig::now(),
        monotonic_ms: 1_000,
    };
    let request = |method: &str, op: &str| RelayRequest {
        method: method.into(),
        path: format!("{PUBLIC}{op}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({"key": DEMO_KEY, "organization_id": ORG})
            .to_string()
            .into_bytes(),
        client_ip: "192.0.2.8".into(),
    };
    let validate = request("POST", "validate");
    let drive =
        |req: &RelayRequest| rig::Drive::with(&relay, req.clone(), now, ExchangeOptions::default());
    let answer = |req: &RelayRequest| drive(req).run_with(|x, need| x.as_host(need));
    // A preflight takes its client's token as a post does (issue #62: preflights alone held
    // the relay's connections for free), here another client's.
    let mut preflight = request("OPTIONS", "validate");
    preflight.client_ip = "192.0.2.9".into();
    assert_eq!(answer(&preflight).status, 204);
    assert_eq!(answer(&preflight).status, 429);
    // Requests the per-IP limit does not concern take nothing.
    assert_eq!(answer(&request("POST", "other")).status, 404);
    assert_eq!(answer(&request("GET", "validate")).status, 405);
    // The one token: taken before the load, not again after it (the call is asked).
    let mut first = drive(&validate);
    match first.next() {
        // An empty storage: what the check touches is loaded as absent.
        Need::Load(load) => {
            let missing = paged.missing(load.store.as_ref().expect("the entry to load"));
            let entries = missing.entries.into_iter().map(|id| (id, None)).collect();
            paged.load(
                entries,
                missing.tags.into_iter().map(|t| (t, Vec::new())).collect(),
            );
        }
        other => panic!("the first check within its rate loads its entry: {other:?}"),
    }
    first.give(Given::Loaded);
    match first.next() {
        // The native host asks a slot to call on first: a call either way.
        Need::Send { .. } | Need::Slot { .. } => {}
        other => panic!("the first check within its rate asks Polar: {other:?}"),
    }
    // It was taken: the next check is refused before anything is loaded, with Retry-After.
    let mut second = drive(&validate);
    let refused = match second.next() {
        Need::Respond(r) => r,
        other => panic!("over the per-IP limit, refused before any load: {other:?}"),
    };
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
}

// ---- The server's own defences: slow, silent and too many clients -------------------------
//
// Raw sockets, for what an HTTP client library never does: send a head and stall, send
// nothing, hold connections open. The bounds asserted are liveness bounds, generous for a
// loaded machine: they tell "closed after its timeout" from "never closed".

/// A request head promising a 2000-byte body that never comes (under the 64 KiB cap; over the
/// 1 KiB that tiny_http, the server before this one, read on its connection thread before
/// handing a request to a worker, so such a body held a worker).
const STALLED_HEAD: &str = "POST /v1/customer-portal/license-keys/validate HTTP/1.1\r\n\
    Host: relay\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n";

/// A CORS preflight: answered (204) without a call to Polar.
const PREFLIGHT: &str = "OPTIONS /v1/customer-portal/license-keys/validate HTTP/1.1\r\n\
    Host: relay\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n";

/// The rig, its server's options the defaults as `set` changes them.
fn rig_with_options(set: impl FnOnce(&mut ServeOptions)) -> Rig {
    let mut options = ServeOptions::default();
    set(&mut options);
    rig_serving(
        Seed::demo(),
        DEMO_TOKEN,
        generous(),
        None,
        None,
        Some(options),
    )
}

fn connect(base: &str) -> std::net::TcpStream {
    let addr = base.trim_start_matches("http://");
    std::net::TcpStream::connect(addr).expect("the relay accepts the connection")
}

/// How long a test waits for the server to close a connection (generous: every deadline the
/// tests set is a second or a minute).
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// What a connection reads until the server closes it or [`CLOSE_WITHIN`] passes: the bytes,
/// and whether it was closed (end of stream or a reset; `false`: still open then).
fn read_until_closed(stream: &mut std::net::TcpStream) -> (Vec<u8>, bool) {
    use std::io::{ErrorKind, Read};
    let deadline = std::time::Instant::now() + CLOSE_WITHIN;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return (bytes, false);
        }
        stream.set_read_timeout(Some(left)).expect("a read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (bytes, false)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset or an abort: the server closed it.
            Err(_) => return (bytes, true),
        }
    }
}

/// A validate of the demo key through `base` by a client that waits up to `patience`.
fn validate_patiently(base: &str, patience: Duration) -> Result<u16, ureq::Error> {
    validate_with(&rig::agent(patience), base)
}

/// A validate of the demo key through `agent` (its connection reused when it has one): the
/// status, the body read.
fn validate_with(agent: &ureq::Agent, base: &str) -> Result<u16, ureq::Error> {
    let body = json!({"key": DEMO_KEY, "organization_id": ORG}).to_string();
    let mut resp = agent
        .post(&format!("{base}{PUBLIC}validate"))
        .header("content-type", "application/json")
        .send(body.as_str())?;
    let _ = resp.body_mut().read_to_vec();
    Ok(resp.status().as_u16())
}

/// Issue #63 item 3: the server's own answers (a body not in by its deadline: 408) carry the
/// core's CORS rule as every answer does: with `cors_origins`, the page named gets its origin
/// back, another page no grant; never `*` then.
#[test]
fn a_408_carries_the_configured_cors_origin_not_a_star() {
    logs::capture();
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let signing = SigningKey::generate(Some("k1")).expect("a key");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signing);
    config.limits = generous();
    config.cors_origins = Some(vec!["https://app.example".into()]);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    let mut options = ServeOptions::default();
    options.body_timeout = Duration::from_millis(300);
    let running = rig::listen(relay, options);
    for (origin, granted) in [
        ("https://app.example", Some("https://app.example")),
        ("https://evil.example", None),
    ] {
        let mut s = connect(&running.url());
        let head = STALLED_HEAD.replace(
            "Host: relay\r\n",
            &format!("Host: relay\r\nOrigin: {origin}\r\n"),
        );
        std::io::Write::write_all(&mut s, head.as_bytes()).expect("the head");
        let (bytes, closed) = read_until_closed(&mut s);
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(closed, "{text}");
        assert!(text.starts_with("http/1.1 408"), "{text}");
        let allowed = text
            .lines()
            .find_map(|l| l.strip_prefix("access-control-allow-origin: "))
            .map(str::trim);
        assert_eq!(allowed, granted, "{text}");
        assert!(text.contains("polar-license-source: relay"), "{text}");
    }
    running.stop();
}

#[test]
fn stalled_bodies_hold_no_worker_and_get_408_at_their_deadline() {
    let rig = rig_with_options(|o| {
        o.header_timeout = Duration::from_secs(1);
        o.body_timeout = Duration::from_secs(1);
        o.concurrent_requests = 2;
    });
    let started = std::time::Instant::now();
    // More stalled requests than requests handled at once (and than the 8 workers the
    // tiny_http server had), a little apart as a patient client sends them (tiny_http's
    // connection threads picked up a burst only as later connections came).
    let mut stalled: Vec<_> = (0..10)
        .map(|_| {
            let mut s = connect(&rig.url);
            std::io::Write::write_all(&mut s, STALLED_HEAD.as_bytes()).expect("the head");
            std::thread::sleep(Duration::from_millis(50));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));

    // A normal request on a fresh connection is answered (well before the client's 15 s).
    let asked = std::time::Instant::now();
    let status = validate_patiently(&rig.url, Duration::from_secs(15));
    assert!(
        matches!(status, Ok(200)),
        "not answered behind the stalled bodies: {status:?} after {:?}",
        asked.elapsed()
    );

    // Each stalled one: a 408, or closed, within a few seconds of its 1 s deadline.
    for (i, s) in stalled.iter_mut().enumerate() {
        let (bytes, closed) = read_until_closed(s);
        let text = String::from_utf8_lossy(&bytes);
        assert!(closed, "stalled connection {i} still open: {text:?}");
        assert!(
            bytes.is_empty() || text.starts_with("HTTP/1.1 408"),
            "stalled connection {i}: {text:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "stalled connection {i} closed after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_silent_connection_and_an_idle_kept_alive_one_are_closed_after_the_header_timeout() {
    let rig = rig_with_options(|o| o.header_timeout = Duration::from_secs(1));

    // Connects and sends nothing: closed at the 1 s set, long before the default 10 s (the
    // bound is generous for a loaded machine, and fails if the option were not applied).
    let connected = std::time::Instant::now();
    let mut silent = connect(&rig.url);
    let (bytes, closed) = read_until_closed(&mut silent);
    assert!(
        closed,
        "a silent connection still open after 10 s: {bytes:?}"
    );
    assert!(
        connected.elapsed() < Duration::from_secs(6),
        "closed after {:?}, not at the header timeout set",
        connected.elapsed()
    );

    // One request answered, then nothing: the answer, then the close.
    let mut idle = connect(&rig.url);
    std::io::Write::write_all(&mut idle, PREFLIGHT.as_bytes()).expect("the request");
    let (bytes, closed) = read_until_closed(&mut idle);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 204"), "{text:?}");
    assert!(
        closed,
        "an idle kept-alive connection still open after 10 s: {text:?}"
    );
}

#[test]
fn connections_past_the_cap_are_closed_at_once_and_the_server_recovers() {
    let rig = rig_with_options(|o| {
        o.max_connections = 4;
        // Long enough that the idle connections below stay for the whole test.
        o.header_timeout = Duration::from_secs(60);
    });
    let idle: Vec<_> = (0..4).map(|_| connect(&rig.url)).collect();

    // The fifth is closed at once (long before the idle ones' 60 s), and so is a client's
    // request: not answered.
    let mut fifth = connect(&rig.url);
    let (bytes, closed) = read_until_closed(&mut fifth);
    assert!(closed, "a connection past the cap still open: {bytes:?}");
    assert!(bytes.is_empty(), "{bytes:?}");
    assert!(validate_patiently(&rig.url, Duration::from_secs(10)).is_err());

    // Once the idle ones are gone, the server answers again.
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = validate_patiently(&rig.url, Duration::from_secs(5));
    while !matches!(last, Ok(200)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        last = validate_patiently(&rig.url, Duration::from_secs(5));
    }
    assert!(matches!(last, Ok(200)), "not answered again: {last:?}");
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout() {
    let rig = rig_with_options(|o| o.write_timeout = Duration::from_secs(1));
    // Requests sent back to back and no answer read: once the socket buffers between the two
    // are full, the server's writes stall, and then it closes the connection (the client's
    // next write fails). Without a write timeout, the writes here would block for good (15 s).
    let mut client = connect(&rig.url);
    client
        .set_write_timeout(Some(Duration::from_secs(15)))
        .expect("a write timeout");
    let batch = PREFLIGHT.repeat(100);
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let error = loop {
        match std::io::Write::write_all(&mut client, batch.as_bytes()) {
            Ok(()) => sent += 100,
            Err(e) => break e,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still writing after {sent} requests"
        );
    };
    assert!(
        !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the connection was still open after {sent} requests: {error}"
    );
}

/// A relay stopped and started again on the listener it was handed (`serve_on`, as systemd's
/// socket activation or a restart that keeps the socket does it) refuses no connection: the
/// checks sent while no server accepts wait in the kernel's queue and the next one answers
/// them. Four clients over fresh connections and two reusing theirs (keep-alive, as the
/// library's own client does) check all the while, across four restarts: the server's drain
/// ([`ServeOptions::drain`]) tells the keep-alive ones to reconnect. (Bound anew
/// instead, with the port closed between, the checks sent meanwhile are refused.)
#[test]
fn a_relay_restarted_on_its_handed_over_listener_refuses_no_connection() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    logs::capture();
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let start = |listener: &std::net::TcpListener| {
        let mut config = rig::config(polar.url(), "k1");
        config.limits = generous();
        let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
        let handed = listener.try_clone().expect("a copy of the listener");
        polar_license_relay::serve_on(
            Arc::new(polar_license_relay::Relay::from(relay)),
            handed,
            ServeOptions::default(),
        )
        .expect("it serves on the listener")
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let mut running = start(&listener);
    let url = running.url();

    // Each check: which client, when sent, when answered, and its answer.
    type Sent = Vec<(usize, Instant, Instant, Result<u16, String>)>;
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|client| {
            let (sent, stop, url) = (Arc::clone(&sent), Arc::clone(&stop), url.clone());
            // Clients 4 and 5 reuse their connection.
            let agent = rig::agent(Duration::from_secs(10));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let answer = if client >= 4 {
                        validate_with(&agent, &url)
                    } else {
                        validate_patiently(&url, Duration::from_secs(10))
                    };
                    let answer = answer.map_err(|e| e.to_string());
                    let done = Instant::now();
                    sent.lock().expect("sent").push((client, at, done, answer));
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    let answered = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent.lock().expect("sent").len() < n {
            assert!(Instant::now() < deadline, "fewer than {n} checks answered");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    answered(20);
    let mut restarts = Vec::new();
    for _ in 0..4 {
        running.stop();
        // No server accepts for 300 ms: the checks sent meanwhile wait.
        std::thread::sleep(Duration::from_millis(300));
        restarts.push(Instant::now());
        running = start(&listener);
        let before = sent.lock().expect("sent").len();
        answered(before + 20);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client");
    }
    running.stop();

    let sent = sent.lock().expect("sent");
    for (i, restart) in restarts.iter().enumerate() {
        // Held over the gap: sent before the next server existed, answered after it started
        // (the one before had drained and stopped). A client is serial, so on a slow machine
        // (wine) the only such checks may be those in flight when the server stopped.
        let held = sent
            .iter()
            .filter(|(_, at, done, _)| at < restart && done >= restart)
            .count();
        assert!(
            held >= 1,
            "restart {i}: no check waited while no server accepted"
        );
    }
    let reused = sent.iter().filter(|(client, ..)| *client >= 4).count();
    assert!(reused >= 8, "the keep-alive clients made {reused} checks");
    let failed: Vec<_> = sent
        .iter()
        .filter(|(.., a)| *a != Ok(200))
        .map(|(client, .., a)| (client, a))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} checks not answered 200 (clients 4 and 5 reuse their connection): {failed:?}",
        failed.len(),
        sent.len(),
    );
}

/// Set in the child process of the test below.
#[cfg(unix)]
const EMFILE_CHILD: &str = "POLAR_LICENSE_RELAY_TEST_EMFILE_CHILD";

/// Runs out of file descriptors while a connection waits to be accepted: the server's
/// `accept` fails with EMFILE (logged), and once descriptors are free again it accepts and
/// answers. In a child process with `ulimit -n 256`, as the descriptors are the process's.
#[cfg(unix)]
#[test]
fn an_accept_error_such_as_out_of_file_descriptors_does_not_stop_the_server() {
    const NAME: &str = "an_accept_error_such_as_out_of_file_descriptors_does_not_stop_the_server";
    if std::env::var_os(EMFILE_CHILD).is_none() {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new("sh")
            .args(["-c", r#"ulimit -n 256 && exec "$0" "$@""#])
            .arg(exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(EMFILE_CHILD, "1")
            .output()
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
        return;
    }

    let rig = rig_with_options(|_| {});
    let request = PREFLIGHT.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    // Every free descriptor taken, then one given back for a client's socket and any other
    // spare one taken again: the server has none left to accept with. (A descriptor another
    // thread let go of in between lets the server accept that client: then again.)
    let mut files = Vec::new();
    let fill = |files: &mut Vec<std::fs::File>| loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break,
            Err(e) => panic!("opening /dev/null: {e}"),
        }
    };
    fill(&mut files);
    let mut clients = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        files.pop();
        let mut client = connect(&rig.url);
        std::io::Write::write_all(&mut client, request.as_bytes()).expect("the request");
        fill(&mut files);
        clients.push(client);
        let round = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < round
            && !logs::lines().iter().any(|l| l.contains("(os error 24)"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if logs::lines().iter().any(|l| l.contains("(os error 24)")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server's accept never failed: {:?}",
            logs::lines()
        );
    }
    drop(files);

    // The last client, refused by a failed accept, is accepted and answered now.
    let last = clients.last_mut().expect("a client");
    let (bytes, _) = read_until_closed(last);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 204"), "not answered: {text:?}");
    let status = validate_patiently(&rig.url, Duration::from_secs(10));
    assert!(matches!(status, Ok(200)), "{status:?}");
}
