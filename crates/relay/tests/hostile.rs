//! Hostile inputs as a table (issue #62 item 5): every route of the relay's own list
//! ([`polar_license_relay::ROUTES`], the native server's and the npm handler's through the same
//! core) crossed with every hostile shape of the testkit's generator
//! (`polar_license_testkit::hostile`), over loopback against `relay serve`'s server. Each is
//! answered with a 4xx (or, where the route does not read what the shape spoils, anything but a
//! 5xx) within a bound, the relay serves the next request, and a normal check after it is
//! licensed; requests that never end are cut by the server's timeouts while it serves others.
//! A route added to the list is attacked without this file being edited, and a path the
//! relay's routers compare with that the list does not hold fails
//! `every_route_in_the_code_is_in_the_list`.
//!
//! The same requests reach the npm relay under workerd (`tests/js/relay-hostile.test.mjs`),
//! printed for it by the example `hostile_shapes`: one table for both hosts.
//!
//! The crowds (`hostile::crowds`: preflight-only connections and requests that never end, from
//! many addresses) are rows of the same table: per route, filling the server's connection cap
//! while another address's validate must be licensed.
//!
//! The figures (the slowest answer and the CPU per exchange, by shape) are printed: run with
//! `--no-capture` to read them. The bytes each whole request leaves in the relay's store
//! (`/healthz`'s count) are measured and bounded: none. `FULL=1`: every method of every route, larger heads, and the
//! webhook's bodies to its own 1 MiB cap.

mod rig;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polar_license_emulator::DEMO_KEY;
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{
    Limits, Listener, Running, ServeOptions, ROUTES, ROUTE_PREFIX, WEBHOOK_MAX_BODY_BYTES,
    WEBHOOK_ROUTE,
};
use polar_license_testkit::hostile::{self, Expect, Figures, Pace, Target};

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
/// The server's header and body timeouts here: what a request that never ends may hold.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long a whole hostile request may take to be answered: generous (two shared cores, a
/// debug build), it catches a hang, not a slow answer.
const BOUND: Duration = Duration::from_secs(20);

fn start(polar: &polar_license_emulator::Emulator) -> Running {
    let mut config = rig::config(polar.url(), "hostile");
    config.limits = rig::unlimited();
    // Usage reports taken (issue #68 item 3): their route is attacked with the others.
    let mut store = StoreOptions::default();
    store.usage = true;
    config.store = rig::store(rig::memory(1_000), store, Some(SECRET.into()));
    let mut options = ServeOptions::default();
    options.header_timeout = TIMEOUT;
    options.body_timeout = TIMEOUT;
    options.metrics_addr = Some("127.0.0.1:0".into());
    // Checkouts made (issue #80): their route is attacked with the others.
    let relay = polar_license_relay::Relay::from(rig::relay(
        config,
        rig::upstream(std::time::Duration::from_secs(10)),
    ))
    .with_checkouts(polar_license_relay::CheckoutOptions {
        products: vec![polar_license_emulator::DEMO_PRODUCT_ID.into()],
        ..Default::default()
    })
    .expect("the checkout options");
    rig::listen(relay, options)
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("http://").expect("http");
    let host = rest.split('/').next().expect("host");
    host.parse().expect("an address")
}

/// Every (route, method) of the list as a target on `relay` (every method with `full`, else
/// the first), a webhook's bodies signed so that they are read.
fn targets(relay: &Running, full: bool) -> Vec<Target> {
    let public = addr_of(&relay.url());
    let metrics = addr_of(&relay.metrics_url().expect("a metrics listener"));
    let ids = Arc::new(AtomicU64::new(0));
    let mut out = Vec::new();
    for route in ROUTES {
        let addr = match route.listener {
            Listener::Public => public,
            Listener::Metrics => metrics,
            other => panic!("a listener this suite does not know: {other:?}"),
        };
        let methods = if full {
            route.methods
        } else {
            &route.methods[..1]
        };
        for method in methods {
            let sign: Option<hostile::Sign> = (route.path == WEBHOOK_ROUTE).then(|| {
                let ids = Arc::clone(&ids);
                Arc::new(move |body: &[u8], age: i64| {
                    let n = ids.fetch_add(1, Ordering::Relaxed);
                    let text = String::from_utf8_lossy(body);
                    // A body that is not UTF-8 is signed over its lossy text: refused (401).
                    rig::signed(SECRET, &format!("msg_hostile_{n}"), rig::now() - age, &text)
                }) as hostile::Sign
            });
            out.push(Target {
                addr,
                method: method.to_string(),
                path: route.path.to_string(),
                headers: Vec::new(),
                reads_body: route.reads_body,
                sign,
            });
        }
    }
    out
}

/// The bytes the relay's store counts (`/healthz`'s `store.bytes`, the figure its byte cap
/// bounds), on a new connection.
fn store_bytes(relay: &Running) -> u64 {
    let agent = rig::agent(Duration::from_secs(30));
    let mut resp = agent
        .get(format!("{}/healthz", relay.url()))
        .call()
        .expect("/healthz answers");
    let text = resp.body_mut().read_to_string().expect("a body");
    let health: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    health["store"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("/healthz counts the store's bytes: {health}"))
}

/// A normal check through the relay, on a new connection (an agent's pooled one may have been
/// closed by the server's idle timeout meanwhile): licensed.
fn still_serves(relay: &Running, after: &str) {
    let agent = rig::agent(Duration::from_secs(30));
    let next = rig::validate_at(&agent, &relay.url(), DEMO_KEY, &[]);
    assert_eq!(
        next.status, 200,
        "the validate after {after}: {}",
        next.body
    );
}

#[test]
fn every_route_answers_every_hostile_shape_and_the_relay_still_serves() {
    let full = hostile::full();
    let polar = rig::emulator();
    let relay = start(&polar);
    // The measure sees what a request keeps: the first check stores Polar's grant.
    let empty = store_bytes(&relay);
    still_serves(&relay, "nothing");
    assert!(
        store_bytes(&relay) > empty,
        "/healthz counted no bytes for a stored grant"
    );
    let mut figures = Figures::default();
    let mut unending = Vec::new();
    let started = Instant::now();
    for t in targets(&relay, full) {
        let cap = if full && t.path == WEBHOOK_ROUTE {
            WEBHOOK_MAX_BODY_BYTES
        } else {
            Limits::default().max_body_bytes
        };
        for shape in hostile::shapes(&t, cap, full) {
            let before = store_bytes(&relay);
            let Some((what, status, outcome)) =
                hostile::send_shape(&t, &shape, BOUND, &mut figures, &mut unending)
            else {
                continue;
            };
            // The bytes a hostile request leaves in the store: none (each is refused before
            // Polar is asked, or a signed event that names no key), so a flood of them keeps
            // nothing; the cap bounds what asking Polar keeps (`store_cap.rs`).
            let kept = store_bytes(&relay).saturating_sub(before);
            assert_eq!(
                kept, 0,
                "{what}: {status}: the store kept {kept} bytes more"
            );
            // A signed delivery of any JSON document is acknowledged (Polar would retry a
            // refused one forever); the license routes refuse every shape.
            let expect = if shape.json && t.path == WEBHOOK_ROUTE {
                Expect::NoFault
            } else {
                shape.expect
            };
            match expect {
                Expect::Refused => assert!(
                    (400..500).contains(&status),
                    "{what}: {status}, {outcome:?}"
                ),
                Expect::NoFault => assert!(status < 500, "{what}: {status}, {outcome:?}"),
            }
            still_serves(&relay, &what);
        }
    }
    let whole = started.elapsed();
    // Every request that never ends is still open: the relay serves others meanwhile, then
    // cuts each within its timeout (408 for a body, a close for a head).
    assert!(!unending.is_empty());
    still_serves(&relay, "the requests that never end, opened");
    let mut slowest = Duration::ZERO;
    for (what, expect, mut conn, opened) in unending {
        hostile::expect_cut(&what, expect, &mut conn, TIMEOUT * 10);
        slowest = slowest.max(opened.elapsed());
    }
    still_serves(&relay, "the requests that never end, cut");
    eprintln!(
        "relay hostile table ({} routes, full: {full}): whole requests in {} ms; the last \
         request that never ends cut {} ms after it was opened (timeouts {} ms)\n{}",
        ROUTES.len(),
        whole.as_millis(),
        slowest.as_millis(),
        TIMEOUT.as_millis(),
        figures.table()
    );
}

/// The crowds' size in the default run: addresses, and connections from each (`FULL=1`: 16 ×
/// 16, the issue's). The server's connection cap is their product, so a crowd takes all of it.
const CROWD: (u8, usize) = (8, 8);
const CROWD_FULL: (u8, usize) = (16, 16);

/// The crowds as rows of the table (issue #62 item 4): every route of the list, each crowd of
/// the testkit's (`hostile::crowds`: preflight-only connections, requests that never end) from
/// many addresses filling the server's whole connection cap, held open while another client
/// (an address holding none, on a new connection) validates: licensed. Each crowd's answers
/// are refusals or preflights, never a 5xx; after all are let go the relay still serves.
#[test]
fn every_route_under_a_crowd_of_addresses_leaves_a_connection_for_another_client() {
    let full = hostile::full();
    let (addresses, per_address) = if full { CROWD_FULL } else { CROWD };
    let polar = rig::emulator();
    let mut config = rig::config(polar.url(), "hostile-crowd");
    config.limits = rig::unlimited();
    config.store = rig::store(
        rig::memory(1_000),
        StoreOptions::default(),
        Some(SECRET.into()),
    );
    let mut options = ServeOptions::default();
    options.header_timeout = Duration::from_secs(30);
    options.max_connections = usize::from(addresses) * per_address;
    options.metrics_addr = Some("127.0.0.1:0".into());
    let relay = rig::listen_with(config, options);
    let rt = rig::runtime();
    let public = addr_of(&relay.url());
    let another = |after: &str| {
        let body = serde_json::json!({"key": DEMO_KEY, "organization_id": polar_license_emulator::DEMO_ORGANIZATION_ID});
        let got = rig::post_from(
            &rt,
            std::net::Ipv4Addr::new(127, 0, 0, 9),
            public,
            &format!("{ROUTE_PREFIX}validate"),
            &body,
        );
        assert_eq!(
            got.map(|g| g.0),
            Some(200),
            "another client's validate, {after}"
        );
    };
    another("before any crowd");
    let started = Instant::now();
    let mut rows = 0;
    for t in targets(&relay, false) {
        for crowd in hostile::crowds(&t, addresses, per_address) {
            let what = format!("{t:?}, {} ({addresses} x {per_address})", crowd.name);
            let mut held = Vec::new();
            let mut answers = std::collections::BTreeMap::<u16, usize>::new();
            for (ip, bytes) in &crowd.connections {
                let Some(mut conn) = rig::connect_from(&rt, *ip, t.addr, Duration::from_secs(5))
                else {
                    *answers.entry(0).or_default() += 1;
                    continue;
                };
                let _ = conn.write_all(bytes);
                if crowd.pace == Pace::Whole {
                    let status = match hostile::read_answer(&mut conn, BOUND) {
                        hostile::Outcome::Answered { status, .. } => status,
                        hostile::Outcome::Silent => panic!("{what}: no answer within {BOUND:?}"),
                        _ => 0,
                    };
                    assert!(status < 500, "{what}: {status}");
                    *answers.entry(status).or_default() += 1;
                }
                held.push(conn);
            }
            another(&what);
            rows += 1;
            eprintln!("{what}: {} held, answers {answers:?}", held.len());
            drop(held);
        }
    }
    assert_eq!(
        rows,
        2 * ROUTES.len(),
        "a crowd of each kind on every route"
    );
    still_serves(&relay, "every crowd, let go");
    eprintln!(
        "relay crowds ({rows} rows of {addresses} x {per_address} connections): {} ms",
        started.elapsed().as_millis()
    );
}

/// A genuine delivery after forged ones as a row of the table (issue #62 item 4): every
/// route of the list that verifies signatures (the webhook route), the testkit's row
/// (`hostile::genuine_after_forged`): more forged deliveries from one address than its
/// failure limit (10 a minute), each refused, then Polar's signed one from the same address is
/// acknowledged. Before issue #62 it got 429 (a revocation never heard).
#[test]
fn every_signing_route_hears_a_genuine_delivery_after_forged_ones() {
    let polar = rig::emulator();
    let relay = start(&polar);
    let mut rows = 0;
    for t in targets(&relay, false) {
        let Some((forged, genuine)) = hostile::genuine_after_forged(&t) else {
            continue;
        };
        let status = |bytes: &[u8]| match hostile::exchange(t.addr, bytes, BOUND).0 {
            hostile::Outcome::Answered { status, .. } => status,
            other => panic!("{t:?}: {other:?}"),
        };
        let refused: Vec<u16> = forged.iter().map(|b| status(b)).collect();
        assert!(
            refused.iter().all(|s| (400..500).contains(s)),
            "{t:?}: the forged ones {refused:?}"
        );
        let heard = status(&genuine);
        assert!(
            (200..300).contains(&heard),
            "{t:?}: the genuine delivery after {} forged ones ({refused:?}): {heard}",
            forged.len()
        );
        rows += 1;
    }
    assert_eq!(rows, 1, "the webhook route, the one that signs");
    still_serves(&relay, "the genuine delivery");
}

#[test]
fn every_route_in_the_code_is_in_the_list() {
    let paths = hostile::code_paths(env!("CARGO_MANIFEST_DIR"));
    for (file, path) in &paths {
        assert!(
            ROUTES.iter().any(|r| r.path.contains(path.as_str())),
            "{file} compares with {path:?}, which no route of polar_license_relay::ROUTES \
             names: add the route to the list (the hostile table then attacks it)"
        );
    }
    let found = paths.len();
    assert!(found >= 3, "the routers' paths were read: {found}");
    // The three license routes are the prefix and their operation, as the router reads them.
    for op in ["validate", "activate", "deactivate"] {
        let path = format!("{ROUTE_PREFIX}{op}");
        assert!(ROUTES.iter().any(|r| r.path == path), "{path}");
    }
}

#[test]
fn every_route_of_the_list_is_answered_as_a_route() {
    // A route of the list the relay does not answer would be a table attacking nothing: each
    // answers its method with something else than the unknown path's 404.
    let polar = rig::emulator();
    let relay = start(&polar);
    for t in targets(&relay, true) {
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\n",
            t.method, t.path, t.addr
        )
        .into_bytes();
        let body = format!(
            r#"{{"key":"{DEMO_KEY}","organization_id":"{}"}}"#,
            polar_license_emulator::DEMO_ORGANIZATION_ID
        );
        let body = if t.reads_body { body } else { String::new() };
        if let Some(sign) = &t.sign {
            for (k, v) in sign(body.as_bytes(), 0) {
                bytes.extend(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        bytes.extend(format!("content-length: {}\r\n\r\n{body}", body.len()).as_bytes());
        let (outcome, _) = hostile::exchange(t.addr, &bytes, BOUND);
        let status = outcome.status().expect("an answer");
        assert!(status != 404 && status < 500, "{t:?}: {outcome:?}");
    }
}
