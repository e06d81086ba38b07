//! The operator's tools (issue #45, contract §5b) over loopback HTTP, the relay's native
//! server in front of the emulator: `GET /healthz`, the Prometheus metrics on their own
//! listener (read with a Prometheus text-format parser), and the webhook-silence warning (a
//! step of the background machine).

mod rig;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polar_license_emulator::{Emulator, Fault, SeedKey, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::flow::background::Background;
use polar_license_relay::store::{Backend, MemoryBackend, RedbBackend, StoreError, StoreOptions};
use polar_license_relay::{Now, Running, ServeOptions};
use polar_license_testkit::{logs, ScratchDir};
use serde_json::{json, Value};

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

fn agent() -> ureq::Agent {
    rig::agent(Duration::from_secs(30))
}

fn get(url: &str) -> (u16, String) {
    let mut resp = agent().get(url).call().expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn validate(relay: &Running, key: &str) -> (u16, Option<String>) {
    let answer = rig::validate_at(&agent(), &relay.url(), key, &[]);
    (answer.status, answer.source)
}

/// A webhook signed as Polar signs it (Standard Webhooks: HMAC-SHA256 of `id.ts.body`).
fn deliver(relay: &Running, id: &str, secret: &str) -> u16 {
    let body = rig::grant_updated();
    let headers = rig::signed(secret, id, rig::now(), &body);
    rig::deliver_at(&agent(), &relay.url(), &headers, &body)
}

fn key(polar: &Emulator, name: &str) -> String {
    let key = format!("OPS-{name}-7C8D9E");
    polar.add_key(SeedKey::new(&key)).expect("a key");
    key
}

struct Setup {
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    silence: u64,
    serve: ServeOptions,
}

fn start(polar: &Emulator, setup: Setup) -> Running {
    let mut config = rig::config(polar.url(), "ops");
    config.limits = rig::unlimited();
    config.webhook_silence = setup.silence;
    config.store = rig::store(setup.backend, setup.options, Some(SECRET.into()));
    let upstream = rig::upstream(Duration::from_secs(10));
    rig::listen(rig::relay(config, upstream), setup.serve)
}

/// Every sample of a scrape, parsed by `prometheus-parse` (a Prometheus text-format parser):
/// `name{label="v",…}` (labels sorted) to its value.
fn scrape(url: &str) -> HashMap<String, f64> {
    let resp = agent().get(url).call().expect("a scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let kind = rig::header_of(&resp, "content-type").unwrap_or_default();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = resp.into_body().read_to_string().expect("text");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus' text format");
    // Every family announced is typed: counters as counters, gauges as gauges.
    for (name, _) in parsed.docs.iter() {
        assert!(name.starts_with("polar_license_relay_"), "{name}");
    }
    let mut out = HashMap::new();
    for s in parsed.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v) => {
                assert!(s.metric.ends_with("_total"), "{} is a counter", s.metric);
                v
            }
            prometheus_parse::Value::Gauge(v) => {
                assert!(!s.metric.ends_with("_total"), "{} is a gauge", s.metric);
                v
            }
            other => panic!("{}: {other:?}", s.metric),
        };
        let mut labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            s.metric.clone()
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        out.insert(name, value);
    }
    // No label names a key, a customer or anything a client sent.
    assert!(!text.contains("OPS-"), "{text}");
    assert!(!text.contains(DEMO_ORGANIZATION_ID), "{text}");
    out
}

fn at(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

/// The metrics listener, scraped and parsed before and after traffic: answers by route,
/// source and status, Polar's calls and errors, the budget used and refused, webhooks by
/// outcome and the store's entries and bytes all move with what was done, and nothing in
/// them names a key.
#[test]
fn the_metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let polar = rig::emulator();
    let dir = ScratchDir::new("relay-ops-metrics");
    let path = dir.path().join("store.redb");
    let backend = Arc::new(RedbBackend::open(&path, 10_000).expect("a store"));
    let mut options = StoreOptions::default();
    options.budget = 4;
    options.reserve = 1;
    // No roster (on by default): its reads of Polar would spend budget this test counts.
    options.roster = false;
    let mut serve = ServeOptions::default();
    serve.metrics_addr = Some("127.0.0.1:0".into());
    let relay = start(
        &polar,
        Setup {
            backend,
            options,
            silence: 86_400,
            serve,
        },
    );
    let url = relay.metrics_url().expect("a metrics listener");
    // Its own listener: the relay's port does not serve it, and it serves nothing else.
    assert_ne!(url, format!("{}/metrics", relay.url()));
    assert_eq!(get(&format!("{}/metrics", relay.url())).0, 404);
    assert_eq!(get(&url.replace("/metrics", "/healthz")).0, 404);

    let before = scrape(&url);
    assert_eq!(at(&before, "polar_license_relay_polar_calls_total"), 0.0);
    assert_eq!(at(&before, "polar_license_relay_budget_limit"), 4.0);
    assert_eq!(at(&before, "polar_license_relay_budget_reserve"), 1.0);
    assert_eq!(at(&before, "polar_license_relay_store_up"), 1.0);
    assert_eq!(at(&before, "polar_license_relay_store_entries"), 0.0);
    assert!(at(&before, "polar_license_relay_store_bytes") > 0.0);

    let keys: Vec<String> = (0..4).map(|i| key(&polar, &format!("K{i}"))).collect();
    assert_eq!(validate(&relay, &keys[0]), (200, Some("polar".into())));
    assert_eq!(validate(&relay, &keys[0]), (200, Some("store".into())));
    // Polar failing: a 503 passed on, counted as Polar's error.
    polar.set_fault(Some(Fault::Status {
        status: 503,
        body: "Service Unavailable".into(),
    }));
    assert_eq!(validate(&relay, &keys[1]).0, 503);
    polar.set_fault(None);
    assert_eq!(validate(&relay, &keys[2]), (200, Some("polar".into())));
    // Three validates spent what validates may (4 - 1 kept): the next is refused, no call.
    assert_eq!(validate(&relay, &keys[3]).0, 429);
    // Webhooks: one signed as Polar signs, one forged.
    assert_eq!(deliver(&relay, "msg_ops_1", SECRET), 200);
    assert_eq!(
        deliver(
            &relay,
            "msg_ops_2",
            "whsec_d3JvbmctdGhlLW90aGVyLXNlY3JldA=="
        ),
        401
    );

    let after = scrape(&url);
    let v = |route: &str, source: &str, status: &str| {
        format!(
            "polar_license_relay_answers_total{{route=\"{route}\",source=\"{source}\",status=\"{status}\"}}"
        )
    };
    let m = |name: &str| format!("polar_license_relay_{name}");
    let want = [
        (v("validate", "polar", "200"), 2.0),
        (v("validate", "store", "200"), 1.0),
        (v("validate", "polar", "503"), 1.0),
        // The relay's own 429: `relay`, not Polar's.
        (v("validate", "relay", "429"), 1.0),
        (v("validate", "polar", "429"), 0.0),
        (m("polar_calls_total"), 3.0),
        (m("polar_errors_total{kind=\"server_error\"}"), 1.0),
        (m("polar_errors_total{kind=\"unreachable\"}"), 0.0),
        (m("budget_used"), 3.0),
        (m("budget_refused_total"), 1.0),
        (m("webhooks_total{outcome=\"accepted\"}"), 1.0),
        (m("webhooks_total{outcome=\"bad_signature\"}"), 1.0),
        (m("webhook_silent"), 0.0),
        (m("store_entries"), 2.0),
    ];
    for (name, value) in want {
        assert_eq!(at(&after, &name), value, "{name}");
    }
    assert_eq!(
        polar.request_count(),
        3,
        "the metrics count Polar's own count"
    );
    relay.stop();
}

/// A store that can be broken on purpose: every call fails while `broken` is set (the rig's
/// [`rig::Hooked`], its hook this flag).
fn breakable(broken: &Arc<AtomicBool>) -> Arc<dyn Backend> {
    let broken = Arc::clone(broken);
    let hook = move |_: rig::Call| {
        if broken.load(Ordering::SeqCst) {
            return Err(StoreError("the disk is gone".into()));
        }
        Ok(())
    };
    Arc::new(rig::Hooked {
        inner: Arc::new(MemoryBackend::new(100)),
        hook,
    })
}

/// `GET /healthz`: 200 and a small JSON body (the store open and its entries, the budget,
/// the webhooks' silence) while the relay can answer, `"warning"` once no webhook came for
/// the silence limit and `"ok"` again when one does, 503 while the store does not read; no
/// key in it. It is answered while every request slot waits for a slow Polar.
#[test]
fn healthz_says_how_the_relay_is_and_503_when_its_store_fails() {
    let polar = rig::emulator();
    let broken = Arc::new(AtomicBool::new(false));
    let mut serve = ServeOptions::default();
    serve.concurrent_requests = 1;
    // No roster (on by default): its read of Polar would spend budget counted here.
    let mut options = StoreOptions::default();
    options.roster = false;
    let relay = start(
        &polar,
        Setup {
            backend: breakable(&broken),
            options,
            silence: 2,
            serve,
        },
    );
    let health = format!("{}/healthz", relay.url());
    let k = key(&polar, "HEALTH");
    assert_eq!(validate(&relay, &k).0, 200);
    let (status, body) = get(&health);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("OPS-") && !body.contains(DEMO_TOKEN),
        "{body}"
    );
    let h: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["store"], json!({"open": true, "entries": 1}));
    assert_eq!(h["budget"]["per_minute"], 500);
    assert_eq!(h["budget"]["reserve"], 125);
    assert_eq!(h["budget"]["used"], 1);
    assert_eq!(h["budget"]["refused"], 0);
    assert_eq!(h["webhooks"]["silence_seconds"], 2);
    assert_eq!(h["webhooks"]["seconds_since_last"], Value::Null);
    assert_eq!(h["webhooks"]["silent"], false);

    // No webhook for the limit (2 s, counted from the start): a warning, still 200.
    std::thread::sleep(Duration::from_millis(2_200));
    let (status, body) = get(&health);
    let h: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, &h["status"]), (200, &json!("warning")), "{h}");
    assert_eq!(h["webhooks"]["silent"], true);
    // One arrives: ok again.
    assert_eq!(deliver(&relay, "msg_health_1", SECRET), 200);
    let h: Value = serde_json::from_str(&get(&health).1).expect("JSON");
    assert_eq!(h["status"], "ok", "{h}");
    // Whole seconds: 0, or 1 when a second turned between the two.
    let since = h["webhooks"]["seconds_since_last"].as_i64();
    assert!(matches!(since, Some(0 | 1)), "{h}");

    // Its one request slot held by a call Polar answers after 3 s: health still answers,
    // before that call ends.
    polar.set_fault(Some(Fault::Delay { ms: 3_000 }));
    let other = key(&polar, "SLOW");
    let url = relay.url();
    let slow = std::thread::spawn(move || {
        let resp = agent()
            .post(&format!("{url}/v1/customer-portal/license-keys/validate"))
            .header("content-type", "application/json")
            .send(json!({"key": other, "organization_id": DEMO_ORGANIZATION_ID}).to_string())
            .expect("an answer");
        (resp.status().as_u16(), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = get(&health);
    let answered = Instant::now();
    assert_eq!(status, 200);
    let (slow_status, slow_done) = slow.join().expect("the slow call");
    assert_eq!(slow_status, 200);
    assert!(answered < slow_done, "health waited for the request slot");
    polar.set_fault(None);

    // The store stops reading: 503, and the body says which part.
    broken.store(true, Ordering::SeqCst);
    let (status, body) = get(&health);
    let h: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!((status, &h["status"]), (503, &json!("unavailable")), "{h}");
    assert_eq!(h["store"]["open"], false);
    broken.store(false, Ordering::SeqCst);
    assert_eq!(get(&health).0, 200);
    relay.stop();
}

/// The silence warning is a step of the background machine every host drives (issue #63):
/// an idle relay (no request at all, no roster, no reconcile: nothing else for the machine to
/// do) warns once no webhook came for the limit, counted from its start, not before, and once
/// per period while the silence lasts; meanwhile the machine waits for the silence's end, never
/// past it (the Durable Object's alarm rings for it), and `/healthz` says `warning`. Never
/// with the limit at 0, nor without webhooks: then the machine is done.
#[test]
fn an_idle_relay_warns_of_webhook_silence_through_its_background_machine() {
    logs::capture();
    // This test's warnings (its limit is no other test's here).
    let warned = || {
        logs::lines()
            .iter()
            .filter(|l| l.starts_with("WARN ") && l.contains("no webhook from Polar"))
            .filter(|l| l.contains("since the relay's start; the limit is 60 s"))
            .count()
    };
    let polar = rig::emulator();
    let t = |s: i64| Now {
        unix_seconds: 1_800_000_000 + s,
        monotonic_ms: u64::try_from(s).unwrap_or(0) * 1000,
    };
    let relay = |silence: u64, secret: Option<&str>| {
        let mut config = rig::config(polar.url(), "ops");
        config.webhook_silence = silence;
        let mut options = StoreOptions::default();
        options.roster = false;
        options.reconcile_every = 0;
        config.store = rig::store(rig::memory(10), options, secret.map(str::to_string));
        rig::relay(config, rig::upstream(Duration::from_secs(5)))
    };
    let run = |r: &rig::Relayed, m: &mut Background, at: Now| rig::background_run(r, m, at);
    let r = relay(60, Some(SECRET));
    let mut m = Background::new(None);
    assert_eq!(
        run(&r, &mut m, t(0)),
        Some(60_000),
        "it waits for the silence's end"
    );
    assert_eq!(run(&r, &mut m, t(59)), Some(1_000));
    assert_eq!(warned(), 0, "not before the limit");
    assert_eq!(
        run(&r, &mut m, t(60)),
        Some(60_000),
        "then the next period's"
    );
    assert_eq!(warned(), 1, "warned at the limit, with no request");
    assert_eq!(run(&r, &mut m, t(61)), Some(59_000));
    assert_eq!(warned(), 1, "once per period");
    let h: Value =
        serde_json::from_slice(&r.handle(&rig::get("/healthz"), t(61)).body).expect("JSON");
    assert_eq!(
        (&h["status"], &h["webhooks"]["silent"]),
        (&json!("warning"), &json!(true))
    );
    assert_eq!(run(&r, &mut m, t(120)), Some(60_000));
    assert_eq!(warned(), 2, "again a period later");
    // Off at 0, and without a secret (no webhooks to miss): nothing to watch, done.
    let off = relay(0, Some(SECRET));
    assert_eq!(run(&off, &mut Background::new(None), t(1_000_000)), None);
    let quiet = relay(60, None);
    let mut m = Background::new(None);
    assert_eq!(run(&quiet, &mut m, t(0)), None);
    assert_eq!(run(&quiet, &mut m, t(1_000)), None);
    assert_eq!(warned(), 2);
    let h: Value =
        serde_json::from_slice(&quiet.handle(&rig::get("/healthz"), t(1_000)).body).expect("JSON");
    assert_eq!((&h["status"], &h["webhooks"]), (&json!("ok"), &Value::Null));
}

/// Issue #63 item 3: the native metrics listener answers as the npm relay's metrics route
/// (the core's answer): with `metrics_token`, 401 and `www-authenticate: Bearer` without the
/// bearer or with another, the metrics with it; `cache-control: no-store` either way.
#[test]
fn the_metrics_listener_asks_for_its_bearer_as_the_workers_route_does() {
    const TOKEN: &str = "ops-metrics-token-0123456789";
    let polar = rig::emulator();
    for token in [Some(TOKEN), None] {
        let mut serve = ServeOptions::default();
        serve.metrics_addr = Some("127.0.0.1:0".into());
        serve.metrics_token = token.map(str::to_string);
        assert!(
            !format!("{serve:?}").contains(TOKEN),
            "the token is never in Debug"
        );
        let relay = start(
            &polar,
            Setup {
                backend: Arc::new(MemoryBackend::new(100)),
                options: StoreOptions::default(),
                silence: 86_400,
                serve,
            },
        );
        let url = relay.metrics_url().expect("a metrics listener");
        let ask = |authorization: Option<&str>| {
            let mut req = agent().get(&url);
            if let Some(a) = authorization {
                req = req.header("authorization", a);
            }
            let resp = req.call().expect("an answer");
            (
                resp.status().as_u16(),
                rig::header_of(&resp, "www-authenticate"),
                rig::header_of(&resp, "cache-control"),
            )
        };
        let bearer = format!("Bearer {TOKEN}");
        if token.is_some() {
            let refused = (401, Some("Bearer".to_string()), None);
            assert_eq!(ask(None), refused);
            assert_eq!(ask(Some(&format!("{bearer}x"))), refused);
            assert_eq!(ask(Some(&bearer)), (200, None, Some("no-store".into())));
            scrape_with(&url, &bearer);
        } else {
            assert_eq!(ask(None), (200, None, Some("no-store".into())));
        }
        relay.stop();
    }
}

/// A scrape with `authorization`: Prometheus' text, with the answers' family.
fn scrape_with(url: &str, authorization: &str) {
    let mut resp = agent()
        .get(url)
        .header("authorization", authorization)
        .call()
        .expect("a scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.body_mut().read_to_string().expect("text");
    assert!(text.contains("polar_license_relay_answers_total"), "{text}");
}

/// The metrics options both hosts read through the core (`host::metrics_token`,
/// `host::metrics_route`): the Workers path keeps off every public route (`ROUTES`: a route
/// added there is covered) and under the license routes, the token has 16 characters at least,
/// and no error holds the token.
#[test]
fn the_metrics_route_keeps_off_every_route_and_asks_a_long_token() {
    use polar_license_relay::host::{metrics_route, metrics_token, MIN_METRICS_TOKEN};
    use polar_license_relay::{Listener, ROUTES};
    let token = "metrics-token-0123456789";
    assert_eq!(
        metrics_route("/ops/metrics", Some(token)).unwrap(),
        ("/ops/metrics".to_string(), token.to_string())
    );
    let field = |r: Result<(String, String), polar_license::Error>| match r {
        Err(polar_license::Error::InvalidInput { field, message }) => {
            assert!(!message.contains(token), "{message}");
            field
        }
        other => panic!("{other:?}"),
    };
    for route in ROUTES.iter().filter(|r| r.listener == Listener::Public) {
        assert_eq!(
            field(metrics_route(route.path, Some(token))),
            "metrics_path"
        );
    }
    for path in [
        "metrics",
        "/metrics?x=1",
        "/v1/customer-portal/license-keys/x",
    ] {
        assert_eq!(
            field(metrics_route(path, Some(token))),
            "metrics_path",
            "{path}"
        );
    }
    assert_eq!(field(metrics_route("/metrics", None)), "metrics_token");
    assert_eq!(
        field(metrics_route("/metrics", Some("short"))),
        "metrics_token"
    );
    assert!(metrics_token(&"x".repeat(MIN_METRICS_TOKEN)).is_ok());
    assert!(metrics_token(&"x".repeat(MIN_METRICS_TOKEN - 1)).is_err());
}
