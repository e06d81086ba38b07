//! Hostile inputs as a table (issue #62 item 5): every route of the emulator's own list
//! ([`polar_license_emulator::routes::ROUTES`]) crossed with every hostile shape of the
//! testkit's generator (`polar_license_testkit::hostile`), over loopback. Each is answered with
//! a 4xx (or, where the route does not read what the shape spoils, anything but a 5xx) within a
//! bound, the emulator serves the next request, and a normal validate after it is 200; requests
//! that never end do not stop it serving others. A route added to the list is attacked without
//! this file being edited, and a path the router compares with that the list does not hold
//! fails `every_route_in_the_code_is_in_the_list`.
//!
//! The figures (the slowest answer and the CPU per exchange, by shape) are printed: run with
//! `--no-capture` to read them. `FULL=1`: every method of every route, larger heads and bodies
//! (1 MiB), and each request that never ends waited for until the emulator cuts it (its 30 s
//! stall limit).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use polar_license_emulator::routes::{Caller, ROUTES};
use polar_license_emulator::{
    Emulator, Options, Seed, DEMO_BENEFIT_ID, DEMO_CHECKOUT_LINK, DEMO_CUSTOMER_ID, DEMO_KEY,
    DEMO_KEY_USAGE, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
};
use polar_license_testkit::hostile::{self, Expect, Figures, Outcome, Target};

/// How long a whole hostile request may take to be answered: generous (two shared cores, a
/// debug build), it catches a hang, not a slow answer.
const BOUND: Duration = Duration::from_secs(20);
/// The emulator's stall limit (a request that stops sending), and a margin.
const STALL: Duration = Duration::from_secs(40);
const OTHER_ID: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

fn start() -> Emulator {
    Emulator::start(
        Seed::demo(),
        Options {
            // No budget and no rate limit: every answer is the route's own, never a 429.
            token_budget: Some(0),
            ..Options::default()
        },
    )
    .expect("the emulator")
}

fn addr(em: &Emulator) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], em.port()))
}

/// One raw request's outcome: `method path` with `headers` and `body`.
fn send(
    em: &Emulator,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> Outcome {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    hostile::exchange(addr(em), text.as_bytes(), BOUND).0
}

/// A customer session's token for the demo customer.
fn session(em: &Emulator) -> String {
    let answer = send(
        em,
        "POST",
        "/v1/customer-sessions/",
        &[("authorization".into(), format!("Bearer {DEMO_TOKEN}"))],
        &format!(r#"{{"customer_id":"{DEMO_CUSTOMER_ID}"}}"#),
    );
    let Outcome::Answered { status: 201, body } = answer else {
        panic!("a customer session: {answer:?}")
    };
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    v["token"].as_str().expect("token").to_string()
}

/// The path of `template` with its parameters filled: the usage key's id, the usage key, the
/// demo benefit, another id where none exists.
fn fill(template: &str, key_id: &str) -> String {
    let mut path = template.to_string();
    let license_key_id = template.starts_with("/v1/license-keys/")
        || template.starts_with("/v1/customer-portal/license-keys/");
    for (name, value) in [
        (
            "{id}",
            if license_key_id {
                key_id
            } else if template.contains("/benefits/") {
                DEMO_BENEFIT_ID
            } else if template.contains("/customers/") {
                DEMO_CUSTOMER_ID
            } else {
                OTHER_ID
            },
        ),
        ("{activation_id}", OTHER_ID),
        ("{key}", DEMO_KEY_USAGE),
        ("{benefit_id}", DEMO_BENEFIT_ID),
        (
            "{client_secret}",
            if template.starts_with("/v1/checkout-links/") {
                DEMO_CHECKOUT_LINK
            } else {
                "polar_c_unknown"
            },
        ),
    ] {
        path = path.replace(name, value);
    }
    assert!(
        !path.contains('{'),
        "a parameter this suite does not fill: {template}"
    );
    path
}

/// Every (route, method) of the list as a target on `em` (every method with `full`, else the
/// first), with the caller's credentials.
fn targets(em: &Emulator, full: bool) -> Vec<Target> {
    // The usage key's: the portal's rotate changes it, never the demo key the checks use.
    let key_id = em.key(DEMO_KEY_USAGE).expect("the usage key")["id"]
        .as_str()
        .expect("its id")
        .to_string();
    let session = session(em);
    let mut out = Vec::new();
    for route in ROUTES {
        let headers = match route.caller {
            Caller::Token => vec![("authorization".into(), format!("Bearer {DEMO_TOKEN}"))],
            Caller::Session => vec![("authorization".into(), format!("Bearer {session}"))],
            _ => Vec::new(),
        };
        let methods = if full {
            route.methods
        } else {
            &route.methods[..1]
        };
        for method in methods {
            out.push(Target {
                addr: addr(em),
                method: method.to_string(),
                path: fill(route.path, &key_id),
                headers: headers.clone(),
                // A route's `GET` reads no body (its `POST` or `PATCH` does).
                reads_body: route.reads_body && !matches!(*method, "GET" | "HEAD"),
                sign: None,
            });
        }
    }
    out
}

/// A normal validate: 200.
fn still_serves(em: &Emulator, after: &str) {
    let answer = send(
        em,
        "POST",
        "/v1/customer-portal/license-keys/validate",
        &[],
        &format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#),
    );
    assert_eq!(
        answer.status(),
        Some(200),
        "the validate after {after}: {answer:?}"
    );
}

#[test]
fn every_route_answers_every_hostile_shape_and_the_emulator_still_serves() {
    let full = hostile::full();
    let em = start();
    still_serves(&em, "nothing");
    let cap = if full { 1 << 20 } else { 64 * 1024 };
    let mut figures = Figures::default();
    let mut unending = Vec::new();
    let mut polars_500s = 0;
    let started = Instant::now();
    let targets = targets(&em, full);
    for t in &targets {
        for shape in hostile::shapes(t, cap, full) {
            let Some((what, status, outcome)) =
                hostile::send_shape(t, &shape, BOUND, &mut figures, &mut unending)
            else {
                continue;
            };
            // The emulator's control routes take any JSON document their fields allow, and an
            // empty body as "none" (`POST /__emulator/fault` with none clears the fault).
            let admin = t.path.starts_with("/__emulator/");
            let expect = if admin && (shape.json || shape.name == "empty") {
                Expect::NoFault
            } else {
                shape.expect
            };
            // Polar's own 500: a float out of range echoed in a 422 that Starlette cannot
            // write (`json.dumps(allow_nan=False)` raises; the rules crate's `NonFinite`), as
            // Polar answers it. The next request is served (checked below).
            let polars_500 = shape.name == "a huge exponent"
                && status == 500
                && matches!(&outcome, Outcome::Answered { body, .. } if body == b"Internal Server Error");
            if polars_500 {
                polars_500s += 1;
            }
            match expect {
                _ if polars_500 => {}
                Expect::Refused => assert!(
                    (400..500).contains(&status),
                    "{what}: {status}, {}",
                    String::from_utf8_lossy(match &outcome {
                        Outcome::Answered { body, .. } => &body[..body.len().min(300)],
                        _ => &[],
                    })
                ),
                Expect::NoFault => assert!(status < 500, "{what}: {status}, {outcome:?}"),
            }
            still_serves(&em, &what);
        }
    }
    let whole = started.elapsed();
    assert!(!unending.is_empty());
    // Each request that never ends holds one connection: the emulator serves others meanwhile.
    still_serves(&em, "the requests that never end, opened");
    let mut cut = 0;
    if full {
        for (what, expect, mut conn, opened) in unending {
            let within = STALL.saturating_sub(opened.elapsed());
            hostile::expect_cut(&what, expect, &mut conn, within);
            cut += 1;
        }
    } else {
        drop(unending);
    }
    still_serves(&em, "the requests that never end");
    eprintln!(
        "emulator hostile table ({} routes, {} targets, full: {full}): whole requests in {} ms; \
         {cut} requests that never end waited for until cut; {polars_500s} answers Polar's own \
         500 (a float out of range)\n{}",
        ROUTES.len(),
        targets.len(),
        whole.as_millis(),
        figures.table()
    );
}

#[test]
fn every_route_in_the_code_is_in_the_list() {
    let paths = hostile::code_paths(env!("CARGO_MANIFEST_DIR"));
    // `/api/v1/…` is Polar's old prefix for `/v1/…`, rewritten before routing.
    let paths: Vec<_> = paths.iter().filter(|(_, p)| p != "/api/v1").collect();
    for (file, path) in &paths {
        assert!(
            ROUTES.iter().any(|r| r.path.contains(path.as_str())),
            "{file} compares with {path:?}, which no route of \
             polar_license_emulator::routes::ROUTES names: add the route to the list (the \
             hostile table then attacks it)"
        );
    }
    let found = paths.len();
    assert!(found >= 20, "the router's paths were read: {found}");
}

#[test]
fn every_route_of_the_list_is_answered_as_a_route() {
    // A route of the list the emulator does not answer would be a table attacking nothing:
    // each answers its methods (on an emulator of its own, as some change the keys) with
    // something else than the unknown path's `404 {"detail":"Not Found"}`.
    let n = targets(&start(), true).len();
    for i in 0..n {
        let fresh = start();
        let t = targets(&fresh, true).swap_remove(i);
        let body = if t.reads_body { "{}" } else { "" };
        let outcome = send(&fresh, &t.method, &t.path, &t.headers, body);
        let Outcome::Answered { status, body } = &outcome else {
            panic!("{t:?}: {outcome:?}")
        };
        assert!(
            !(*status == 404 && body.as_slice() == br#"{"detail":"Not Found"}"#) && *status < 500,
            "{t:?}: {status} {}",
            String::from_utf8_lossy(body)
        );
    }
}
