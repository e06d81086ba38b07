//! Issue #45's adversarial benchmark, the part about the budget: the emulator behind the relay
//! (with a store) enforcing the organization token's budget, time scaled (`SCALE`: 0.1 makes
//! Polar's minute 6 s, the relay's window with it); known customers' validates at 24 times the
//! budget, random keys from 64 loopback addresses (`127.0.0.64` to `.127`) at 10 times the
//! budget on validate and on activate, and new customers buying (Polar's
//! `benefit_grant.created` reaches the relay) and activating throughout, once each, from
//! `127.0.0.2`. The same run twice: the relay without its roster (as before issue #45), and
//! with `roster` on (a first-seen share of 10 %). Not measured here: a slow Polar, an outage,
//! a restart (issue #45's other items).
//!
//! Run: `cargo run --release -p polar-license-relay --example relay_attack [SCALE] [MINUTES]
//! [BUDGET]` (defaults 0.1, 2 and 100). It prints one markdown table. Linux: every 127/8
//! address is on lo.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polar_license::lease::SigningKey;
use polar_license::proto::{HttpRequest, HttpResponse, Server};
use polar_license::{AccessToken, Transport, TransportError, UreqTransport};
use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, WebhookOptions, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
};
use polar_license_relay::store::{MemoryBackend, StoreOptions};
use polar_license_relay::{Relay, RelayConfig, Running, StoreConfig, SOURCE_HEADER};
use serde_json::json;

/// Known customers (each checked once before the load, so the store holds them).
const KNOWN: usize = 120;

/// Counts Polar's 429s on the relay's calls (the budget exceeded at Polar).
struct Counting {
    inner: UreqTransport,
    polar_429: Arc<AtomicU64>,
}

impl Transport for Counting {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let r = self.inner.send(request);
        if r.as_ref().is_ok_and(|r| r.status == 429) {
            self.polar_429.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// One `POST` on a connection of its own from `from`: its status and source.
fn post_from(
    rt: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    op: &str,
    body: &serde_json::Value,
) -> Option<(u16, Option<String>)> {
    let body = body.to_string();
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from.into(), 0)).ok()?;
    let stream = rt.block_on(socket.connect(to)).ok()?;
    let mut stream = {
        let _entered = rt.enter();
        stream.into_std().ok()?
    };
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let request = format!(
        "POST /v1/customer-portal/license-keys/{op} HTTP/1.1\r\nhost: {to}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let source = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(SOURCE_HEADER)
            .then(|| value.trim().to_string())
    });
    Some((status, source))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn known_key(i: usize) -> String {
    format!("KNOWN-{i:06}-4A5B6C")
}

/// Paces a loop to `per_second`.
struct Pace {
    started: Instant,
    per_second: f64,
    n: u64,
}

impl Pace {
    fn wait(&mut self) {
        self.n += 1;
        let due = self.started + Duration::from_secs_f64(self.n as f64 / self.per_second);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

#[derive(Default)]
struct Tally {
    known: AtomicU64,
    known_verdict: AtomicU64,
    guesses: AtomicU64,
    guesses_polar: AtomicU64,
    new: AtomicU64,
    new_polar: AtomicU64,
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        return "-".into();
    }
    format!("{:.1} %", 100.0 * a as f64 / b as f64)
}

fn run(roster: bool, scale: f64, minutes: f64, budget: u32) -> Vec<String> {
    let window = Duration::from_secs_f64(60.0 * scale);
    let mut seed = Seed::demo();
    for i in 0..KNOWN {
        seed.license_keys.push(SeedKey {
            limit_activations: Some(1_000),
            ..SeedKey::new(known_key(i))
        });
    }
    let options = Options {
        token_budget: Some(budget),
        token_window: Some(window),
        webhooks: WebhookOptions {
            schedule_scale: scale,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    let polar = Arc::new(Emulator::start(seed, options).expect("emulator"));
    let a = agent();
    let mut created = a
        .post(&format!("{}/v1/webhooks/endpoints", polar.url()))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .send(
            json!({"url": "http://127.0.0.1:9/none", "format": "raw",
                   "events": ["benefit_grant.created", "benefit_grant.updated",
                              "benefit_grant.revoked"]})
            .to_string(),
        )
        .expect("an endpoint");
    let endpoint: serde_json::Value =
        serde_json::from_str(&created.body_mut().read_to_string().expect("body")).expect("json");
    let secret = endpoint["secret"].as_str().expect("secret").to_string();
    let endpoint_id = endpoint["id"].as_str().expect("id").to_string();

    let mut store = StoreOptions::default();
    let scaled = |s: u64| ((s as f64 * scale).round() as u64).max(1);
    store.fresh_for = scaled(300);
    store.stale_for = scaled(86_400);
    store.denial_for = scaled(60);
    store.budget = budget;
    store.reserve = budget / 4;
    store.budget_window_ms = window.as_millis() as u64;
    store.roster = roster;
    store.first_seen_share = 10;
    let polar_429 = Arc::new(AtomicU64::new(0));
    let signer = SigningKey::generate(Some("attack")).expect("a key");
    let mut config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    // The default limits: 5 a second per address (bursts of 10), 3 per key.
    config.store = Some(StoreConfig {
        backend: Arc::new(MemoryBackend::new(1_000_000)),
        options: store,
        webhook_secret: Some(secret),
    });
    let upstream = Counting {
        inner: UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20),
        polar_429: Arc::clone(&polar_429),
    };
    let relay = Relay::new(config, Box::new(upstream)).expect("the relay");
    let mut serve = polar_license_relay::ServeOptions::default();
    serve.concurrent_requests = 16;
    let relay: Running =
        polar_license_relay::serve_with(Arc::new(relay), "127.0.0.1:0", serve).expect("listens");
    let status = a
        .patch(&format!(
            "{}/v1/webhooks/endpoints/{endpoint_id}",
            polar.url()
        ))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .send(json!({"url": format!("{}/v1/webhooks/polar", relay.url())}).to_string())
        .expect("pointed")
        .status();
    assert_eq!(status.as_u16(), 200);
    let to = SocketAddr::from(([127, 0, 0, 1], relay.port()));

    // Warm-up: every known customer checked once (their grants stored), within the budget.
    let rt = runtime();
    let warm_deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..KNOWN {
        let from = Ipv4Addr::new(127, 0, 1, (i % 250) as u8);
        let body = json!({"key": known_key(i), "organization_id": DEMO_ORGANIZATION_ID});
        while post_from(&rt, from, to, "validate", &body).is_some_and(|(s, _)| s != 200) {
            assert!(Instant::now() < warm_deadline, "the warm-up did not end");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Polar's window of the warm-up over.
    std::thread::sleep(window);
    polar.reset_request_count();
    polar_429.store(0, Ordering::Relaxed);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let per_window = |times: f64| times * f64::from(budget) / window.as_secs_f64();
    let started = Instant::now();
    let mut threads = Vec::new();
    // Known customers: 24 times the budget, from 250 addresses (127.0.1.x), 4 threads.
    for t in 0..4usize {
        let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
        let rate = per_window(24.0) / 4.0;
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            let mut pace = Pace {
                started: Instant::now(),
                per_second: rate,
                n: 0,
            };
            // xorshift64: keys and addresses (1,000 of them: 127.0.1-4.x) at random.
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                pace.wait();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % KNOWN as u64) as usize;
                let from =
                    Ipv4Addr::new(127, 0, 1 + ((x >> 20) % 4) as u8, ((x >> 32) % 250) as u8);
                let body = json!({"key": known_key(i), "organization_id": DEMO_ORGANIZATION_ID});
                if let Some((status, source)) = post_from(&rt, from, to, "validate", &body) {
                    tally.known.fetch_add(1, Ordering::Relaxed);
                    let verdict =
                        status == 200 && matches!(source.as_deref(), Some("polar") | Some("store"));
                    if verdict {
                        tally.known_verdict.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Guesses: 10 times the budget on validate and on activate, from 64 addresses, 4 threads.
    for t in 0..4u8 {
        let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
        let rate = per_window(20.0) / 4.0;
        threads.push(std::thread::spawn(move || {
            let rt = runtime();
            let mut pace = Pace {
                started: Instant::now(),
                per_second: rate,
                n: 0,
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace.wait();
                n += 1;
                let from = Ipv4Addr::new(127, 0, 0, 64 + t * 16 + (n % 16) as u8);
                let op = if n.is_multiple_of(2) {
                    "validate"
                } else {
                    "activate"
                };
                let body = json!({"key": format!("GUESS-{t}-{n}-000000"),
                                  "organization_id": DEMO_ORGANIZATION_ID, "label": "x"});
                if let Some((status, source)) = post_from(&rt, from, to, op, &body) {
                    tally.guesses.fetch_add(1, Ordering::Relaxed);
                    if status == 404 && source.as_deref() == Some("polar") {
                        tally.guesses_polar.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Polar's license-route calls, sampled every 50 ms.
    let samples = Arc::new(Mutex::new(Vec::new()));
    {
        let (polar, stop, samples) = (Arc::clone(&polar), Arc::clone(&stop), Arc::clone(&samples));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let n = polar.request_count();
                samples.lock().expect("samples").push((at, n));
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    // New customers: one buys every 400 ms, activates 300 ms later, once.
    let load = Duration::from_secs_f64(60.0 * scale * minutes);
    let mut i = 0;
    while started.elapsed() < load {
        let key = format!("NEWBUYER-{i:06}-7D8E9F");
        i += 1;
        polar
            .add_key(SeedKey {
                limit_activations: Some(3),
                ..SeedKey::new(&key)
            })
            .expect("bought");
        std::thread::sleep(Duration::from_millis(300));
        let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "label": "new"});
        if let Some((status, source)) =
            post_from(&rt, Ipv4Addr::new(127, 0, 0, 2), to, "activate", &body)
        {
            tally.new.fetch_add(1, Ordering::Relaxed);
            if status != 429 && source.as_deref() == Some("polar") {
                tally.new_polar.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed();
    let samples = samples.lock().expect("samples").clone();
    let mut most = 0;
    for (j, (t0, n0)) in samples.iter().enumerate() {
        for (t1, n1) in &samples[j..] {
            if t1.duration_since(*t0) > window {
                break;
            }
            most = most.max(n1 - n0);
        }
    }
    relay.stop();
    let secs = elapsed.as_secs_f64();
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    vec![
        if roster {
            "with `roster` (first-seen share 10 %)".into()
        } else {
            "without the roster (before #45)".into()
        },
        format!("{:.1} s", secs),
        format!(
            "{} ({:.0}/s)",
            g(&tally.known),
            g(&tally.known) as f64 / secs
        ),
        pct(g(&tally.known_verdict), g(&tally.known)),
        format!(
            "{} ({:.0}/s)",
            g(&tally.guesses),
            g(&tally.guesses) as f64 / secs
        ),
        g(&tally.guesses_polar).to_string(),
        format!(
            "{} of {} ({})",
            g(&tally.new_polar),
            g(&tally.new),
            pct(g(&tally.new_polar), g(&tally.new))
        ),
        format!("{most} (budget {budget})"),
        g(&polar_429).to_string(),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scale: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.1);
    let minutes: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let budget: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let header = [
        "relay",
        "load",
        "known checks sent",
        "with Polar's verdict (polar or store)",
        "guesses sent",
        "guesses answered by Polar",
        "new customers' activations answered by Polar",
        "most license calls to Polar in a window",
        "Polar's 429s",
    ];
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for roster in [false, true] {
        let row = run(roster, scale, minutes, budget);
        println!("| {} |", row.join(" | "));
    }
}
