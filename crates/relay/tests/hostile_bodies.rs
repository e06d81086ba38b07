//! Bodies shaped to hurt the relay's parsing (issue #62), over loopback: nesting to the body
//! cap on every route that reads a body is answered for that request alone, as Polar (the
//! emulator) answers it, without a call, and the relay answers the next request as usual.
//! Before the rules crate's depth limit, 10,000 `[` overflowed `relay-handle`'s stack and
//! aborted the process.

mod rig;

use std::time::Duration;

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Limits, Running, ServeOptions};

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
const ORG: &str = DEMO_ORGANIZATION_ID;
/// FastAPI's answer to a body `json.loads` raised on with something else than a decode error.
const PARSE_ERROR: &str = r#"{"detail":"There was an error parsing the body"}"#;

fn start(polar: &polar_license_emulator::Emulator) -> Running {
    let mut config = rig::config(polar.url(), "hostile");
    config.limits = rig::unlimited();
    config.store = rig::store(
        rig::memory(1_000),
        StoreOptions::default(),
        Some(SECRET.into()),
    );
    rig::listen(
        rig::relay(config, rig::upstream(Duration::from_secs(10))),
        ServeOptions::default(),
    )
}

/// `body` posted as JSON to `url`: its status and text.
fn post(agent: &ureq::Agent, url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let a = rig::post_with(agent, url, body, headers);
    (a.status, a.body)
}

/// Nested bodies up to the relay's body cap (64 KiB): bare, the issue's two, balanced, and a
/// well-formed request whose `conditions` fill the rest of the cap.
fn nested_bodies() -> Vec<String> {
    let cap = Limits::default().max_body_bytes;
    let half = cap / 2;
    let head = format!(
        r#"{{"key":"{DEMO_KEY}","organization_id":"{ORG}","activation_id":"{ORG}","label":"l","conditions":{{"a":"#
    );
    vec![
        "[".repeat(10_000),
        "{\"a\":".repeat(10_000),
        "[".repeat(cap),
        format!("{}{}", "[".repeat(half), "]".repeat(half)),
        format!("{head}{}", "[".repeat(cap - head.len())),
    ]
}

#[test]
fn nested_bodies_to_the_cap_are_refused_alone_on_every_route_and_the_relay_still_serves() {
    let polar = rig::emulator();
    let relay = start(&polar);
    let agent = rig::agent(Duration::from_secs(30));
    let bodies = nested_bodies();
    for body in &bodies {
        assert!(body.len() <= Limits::default().max_body_bytes);
    }
    for op in ["validate", "activate", "deactivate"] {
        for body in &bodies {
            // The relay first (the process's stack is the relay's before it is the
            // emulator's), then Polar's own answer to the same body.
            polar.reset_request_count();
            let via = post(
                &agent,
                &format!("{}{}{op}", relay.url(), rig::PUBLIC),
                body,
                &[],
            );
            assert_eq!(polar.request_count(), 0, "{op}: refused without a call");
            let direct = post(
                &agent,
                &format!("{}{}{op}", polar.url(), rig::PUBLIC),
                body,
                &[],
            );
            assert_eq!(direct, (400, PARSE_ERROR.to_string()), "Polar: {op}");
            assert_eq!(via, direct, "{op}, {} bytes", body.len());
            let next = rig::validate_at(&agent, &relay.url(), DEMO_KEY, &[]);
            assert_eq!(next.status, 200, "the validate after {op}: {}", next.body);
        }
    }
    // The webhook route reads its body (signed, so that it is read) with serde_json, whose
    // recursion limit refuses it; the next delivery and request are served.
    let url = format!("{}{}", relay.url(), rig::WEBHOOK);
    for (n, body) in bodies.iter().enumerate() {
        let headers = rig::signed(SECRET, &format!("msg_deep_{n}"), rig::now(), body);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, text) = post(&agent, &url, body, &headers);
        assert_eq!(status, 400, "webhook, {} bytes: {text}", body.len());
        let next = rig::validate_at(&agent, &relay.url(), DEMO_KEY, &[]);
        assert_eq!(
            next.status, 200,
            "the validate after a webhook: {}",
            next.body
        );
    }
    let event = rig::grant_updated();
    let headers = rig::signed(SECRET, "msg_after", rig::now(), &event);
    assert_eq!(rig::deliver_at(&agent, &relay.url(), &headers, &event), 200);
    relay.stop();
}

#[test]
fn a_64_kib_body_of_distinct_keys_is_polars_answer_without_a_call() {
    let polar = rig::emulator();
    let relay = start(&polar);
    let agent = rig::agent(Duration::from_secs(30));
    let cap = Limits::default().max_body_bytes;
    // The issue's 7,733 keys (each `"kNNNN":0,`), and as many as one key repeated.
    let distinct = {
        let mut text = String::from("{");
        let mut n = 0;
        while text.len() + 16 < cap {
            text.push_str(&format!("\"k{n}\":0,"));
            n += 1;
        }
        text.push_str("\"z\":0}");
        text
    };
    let repeated = format!("{{{}\"a\":1}}", "\"a\":0,".repeat((cap - 8) / 6));
    for body in [distinct, repeated] {
        assert!(body.len() <= cap);
        let direct = post(
            &agent,
            &format!("{}{}validate", polar.url(), rig::PUBLIC),
            &body,
            &[],
        );
        assert_eq!(direct.0, 422, "Polar: the fields are missing");
        polar.reset_request_count();
        let via = post(
            &agent,
            &format!("{}{}validate", relay.url(), rig::PUBLIC),
            &body,
            &[],
        );
        assert_eq!(via, direct, "{} bytes", body.len());
        assert_eq!(polar.request_count(), 0);
    }
    assert_eq!(
        rig::validate_at(&agent, &relay.url(), DEMO_KEY, &[]).status,
        200
    );
    relay.stop();
}
