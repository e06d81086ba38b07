//! Bodies shaped to hurt the relay's parsing (issue #62), over loopback, as a table: each
//! shape (nesting, key counts, huge strings, bad UTF-8, to the body cap) on every route that
//! reads a body is answered for that request alone, as Polar (the emulator) answers it, without
//! a call, and the relay answers the next request as usual.
//! Before the rules crate's depth limit, 10,000 `[` overflowed `relay-handle`'s stack and
//! aborted the process.

mod rig;

use std::time::Duration;

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_relay::{Limits, Running};

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
const ORG: &str = DEMO_ORGANIZATION_ID;
/// FastAPI's answer to a body `json.loads` raised on with something else than a decode error.
const PARSE_ERROR: &str = r#"{"detail":"There was an error parsing the body"}"#;

fn start(polar: &polar_license_emulator::Emulator) -> Running {
    let mut config = rig::config(polar.url(), "hostile");
    config.limits = rig::unlimited();
    rig::listen_stored(config, SECRET)
}

/// `body` posted as JSON to `url` with `headers`: its status and text.
fn post(agent: &ureq::Agent, url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent.post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Hostile bodies up to the relay's body cap (64 KiB), by shape, and whether each nests past
/// the parser's limit: bare, the issue's two, balanced, a well-formed request whose
/// `conditions` fill the rest of the cap; then the cap filled with distinct keys (6,664), one
/// key repeated, one huge string, bytes that are not UTF-8.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, bool)> {
    let cap = Limits::default().max_body_bytes;
    let half = cap / 2;
    let head = format!(
        r#"{{"key":"{DEMO_KEY}","organization_id":"{ORG}","activation_id":"{ORG}","label":"l","conditions":{{"a":"#
    );
    let keys = rig::distinct_keys(cap);
    let mut not_utf8 =
        format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{ORG}","label":""#).into_bytes();
    not_utf8.resize(cap - 2, 0xff);
    not_utf8.extend(b"\"}");
    vec![
        ("10,000 [", "[".repeat(10_000).into_bytes(), true),
        (
            "10,000 {\"a\":",
            "{\"a\":".repeat(10_000).into_bytes(),
            true,
        ),
        ("the cap of [", "[".repeat(cap).into_bytes(), true),
        (
            "balanced to the cap",
            format!("{}{}", "[".repeat(half), "]".repeat(half)).into_bytes(),
            true,
        ),
        (
            "deep conditions",
            format!("{head}{}", "[".repeat(cap - head.len())).into_bytes(),
            true,
        ),
        ("distinct keys", keys.into_bytes(), false),
        (
            "one key repeated",
            format!("{{{}\"a\":1}}", "\"a\":0,".repeat((cap - 8) / 6)).into_bytes(),
            false,
        ),
        // No organization: Polar's 422 echoes the whole body back.
        (
            "a huge key",
            format!(r#"{{"key":"{}"}}"#, "K".repeat(cap - 20)).into_bytes(),
            false,
        ),
        ("not UTF-8", not_utf8, false),
    ]
}

#[test]
fn hostile_bodies_to_the_cap_are_answered_alone_on_every_route_and_the_relay_still_serves() {
    let polar = rig::emulator();
    let relay = start(&polar);
    let agent = rig::agent(Duration::from_secs(30));
    let bodies = hostile_bodies();
    for (shape, body, _) in &bodies {
        assert!(body.len() <= Limits::default().max_body_bytes, "{shape}");
    }
    for op in ["validate", "activate", "deactivate"] {
        for (shape, body, deep) in &bodies {
            let what = format!("{op}, {shape} ({} bytes)", body.len());
            // The relay first (the process's stack is the relay's before it is the
            // emulator's), then Polar's own answer to the same body.
            polar.reset_request_count();
            let via = post(
                &agent,
                &format!("{}{}{op}", relay.url(), rig::PUBLIC),
                body,
                &[],
            );
            assert_eq!(polar.request_count(), 0, "{what}: refused without a call");
            let direct = post(
                &agent,
                &format!("{}{}{op}", polar.url(), rig::PUBLIC),
                body,
                &[],
            );
            if *deep {
                assert_eq!(direct, (400, PARSE_ERROR.to_string()), "Polar: {what}");
            }
            assert_eq!(via, direct, "{what}");
            let next = rig::validate_at(&agent, &relay.url(), DEMO_KEY, &[]);
            assert_eq!(next.status, 200, "the validate after {what}: {}", next.body);
        }
    }
    // The webhook route reads its body (signed, so that it is read) with serde_json: a body
    // nested past its recursion limit, or not UTF-8, is refused; any other is an event the
    // relay does not act on. The next delivery and request are served.
    let url = format!("{}{}", relay.url(), rig::WEBHOOK);
    for (n, (shape, body, deep)) in bodies.iter().enumerate() {
        let text = String::from_utf8_lossy(body);
        let headers = rig::signed(SECRET, &format!("msg_hostile_{n}"), rig::now(), &text);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, answer) = post(&agent, &url, text.as_bytes(), &headers);
        if *deep {
            assert_eq!(status, 400, "webhook, {shape}: {answer}");
        } else {
            assert!(status < 500, "webhook, {shape}: {status} {answer}");
        }
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
