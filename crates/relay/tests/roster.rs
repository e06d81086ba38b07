//! Issue #45, item 1, over loopback: the relay's roster of the seller's keys and the
//! first-seen share. Random keys from many client addresses (`127.0.0.N`: Linux routes all
//! of 127/8 to lo) flood validate and activate while new customers activate: customers the
//! roster paged in at start, and customers who bought during the flood (known through Polar's
//! `benefit_grant.created` webhook, their key refetched by id). The emulator stands in for
//! Polar with its organization token budget; counts and times are small and bounded.

mod rig;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, WebhookOptions, DEMO_ORGANIZATION_ID,
};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Running, ServeOptions};
use serde_json::{json, Value};

/// Polar's budget as the emulator enforces it, and the relay's: calls per window.
const BUDGET: u32 = 20;
const WINDOW: Duration = Duration::from_secs(3);

struct Answer {
    status: u16,
    source: Option<String>,
}

/// One `POST` on a connection of its own from `from` (a 127.0.0.N address) to `to`.
fn post_from(from: Ipv4Addr, to: SocketAddr, path: &str, body: &Value) -> Option<Answer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .ok()?;
    let (status, source) = rig::post_from(&runtime, from, to, path, body)?;
    Some(Answer { status, source })
}

fn activate_from(from: Ipv4Addr, relay: &Running, key: &str) -> Option<Answer> {
    post_from(
        from,
        relay_addr(relay),
        "/v1/customer-portal/license-keys/activate",
        &json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "label": "new"}),
    )
}

fn relay_addr(relay: &Running) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], relay.port()))
}

/// `activate_from` until an answer other than 429, at most `tries` times 300 ms apart (a
/// client told 429 tries again a little later): the key, the last status and source.
fn activate_retrying(
    from: Ipv4Addr,
    relay: &Running,
    key: &str,
    tries: usize,
) -> Option<(String, u16, Option<String>)> {
    let mut last = None;
    for _ in 0..tries {
        let a = activate_from(from, relay, key).expect("an answer");
        let done = a.status != 429;
        last = Some((key.to_string(), a.status, a.source));
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    last
}

/// Guesses sent to the relay until stopped: thread `n` sends from 127.0.0.(`first` + n), its
/// `i`-th request to the route and with the key `guess(n, i)` gives, then sleeps `pause`.
struct Guesses {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    denials: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Guesses {
    fn start(
        relay: &Running,
        threads: u8,
        first: u8,
        pause: Duration,
        guess: fn(u8, u64) -> (&'static str, String),
    ) -> Guesses {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let denials = Arc::new(AtomicU64::new(0));
        let to = relay_addr(relay);
        let threads = (0..threads)
            .map(|n| {
                let (stop, sent, denials) =
                    (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&denials));
                std::thread::spawn(move || {
                    let from = Ipv4Addr::new(127, 0, 0, first + n);
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let (op, key) = guess(n, i);
                        let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID,
                                          "label": "guess"});
                        let path = format!("/v1/customer-portal/license-keys/{op}");
                        if let Some(a) = post_from(from, to, &path, &body) {
                            sent.fetch_add(1, Ordering::Relaxed);
                            if a.status == 404 {
                                denials.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Guesses {
            stop,
            sent,
            denials,
            threads,
        }
    }

    /// Stops the guesses: how many were answered, and how many of those were Polar's 404.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a guesser");
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.denials.load(Ordering::Relaxed),
        )
    }
}

/// A webhook endpoint registered in Polar (the emulator) for the grant events: its id and
/// its secret.
fn endpoint(polar: &Emulator) -> (String, String) {
    rig::endpoint(
        polar,
        &[
            "benefit_grant.created",
            "benefit_grant.updated",
            "benefit_grant.revoked",
        ],
    )
}

fn start_relay(polar: &Emulator, options: StoreOptions, secret: String) -> Running {
    // The default per-IP (5 a second, bursts of 10) and per-key limits.
    let mut config = rig::config(polar.url(), "roster");
    config.store = rig::store(rig::memory(100_000), options, Some(secret));
    let upstream = rig::upstream(Duration::from_secs(5));
    rig::listen(rig::relay(config, upstream), ServeOptions::default())
}

fn customer_key(i: usize) -> String {
    format!("CUSTOMER-{i:04}-4A5B6C")
}

/// The body of a `GET` of `url`.
fn get(url: String) -> String {
    let mut r = rig::agent(Duration::from_secs(10))
        .get(&url)
        .call()
        .expect("an answer");
    r.body_mut().read_to_string().expect("body")
}

/// The relay's `/healthz`.
fn health(relay: &Running) -> Value {
    serde_json::from_str(&get(format!("{}/healthz", relay.url()))).expect("JSON")
}

/// The demo seed with `n` customers who bought before the relay started (`customer_key(0..n)`,
/// three activations each).
fn with_customers(n: usize) -> Seed {
    let mut seed = Seed::demo();
    for i in 0..n {
        seed.license_keys.push(SeedKey {
            limit_activations: Some(3),
            ..SeedKey::new(customer_key(i))
        });
    }
    seed
}

/// The emulator's options with Polar's budget: [`BUDGET`] calls a [`WINDOW`].
fn budgeted() -> Options {
    Options {
        token_budget: Some(BUDGET),
        token_window: Some(WINDOW),
        ..Options::default()
    }
}

#[test]
fn a_flood_of_guesses_from_many_addresses_leaves_new_customers_polars_verdict() {
    // Polar: 30 customers who bought before the relay started, a budget of 20 calls a 3 s
    // window, webhooks delivered at once.
    let seed = with_customers(30);
    let options = Options {
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..budgeted()
    };
    let polar = Emulator::start(seed, options).expect("emulator");
    let (endpoint_id, secret) = endpoint(&polar);
    let mut store = StoreOptions::default();
    store.budget = BUDGET;
    store.reserve = 5;
    store.budget_window_ms = WINDOW.as_millis() as u64;
    store.roster = true;
    store.first_seen_share = 10;
    let relay = start_relay(&polar, store, secret);
    rig::point_endpoint_at(&polar, &endpoint_id, &relay);
    // One window: the roster's page is read, and Polar's window of the set-up calls is over.
    std::thread::sleep(WINDOW + Duration::from_millis(300));

    polar.reset_request_count();
    let started = Instant::now();
    // Validates and activates of random keys, one every 40 ms from each of 16 addresses.
    let flood = Guesses::start(&relay, 16, 100, Duration::from_millis(40), |n, i| {
        let op = if i.is_multiple_of(2) {
            "validate"
        } else {
            "activate"
        };
        (op, format!("GUESS-{n}-{i}-000000"))
    });

    let customer = Ipv4Addr::new(127, 0, 0, 2);
    let mut answers = Vec::new();
    // Customers of before the start (the roster paged them in), one every half second.
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        let a = activate_from(customer, &relay, &customer_key(i)).expect("an answer");
        answers.push((customer_key(i), a.status, a.source));
    }
    // Customers who buy now: Polar's benefit_grant.created reaches the relay, which refetches
    // the key by id; then they activate (a client that is told 429 tries again a little
    // later, a few times).
    for i in 0..3 {
        let key = rig::add_key(&polar, format!("NEWBUYER-{i:04}-7D8E9F"), Some(3));
        std::thread::sleep(Duration::from_millis(700));
        answers.extend(activate_retrying(customer, &relay, &key, 8));
    }
    let (sent, denials) = flood.stop();
    let elapsed = started.elapsed();
    let calls = polar.request_count();

    // Every new customer's activation got Polar's verdict.
    for (key, status, source) in &answers {
        assert_eq!(
            (*status, source.as_deref()),
            (200, Some("polar")),
            "{key}: {answers:?}"
        );
    }
    // The flood was real, and cost at most its share: 10 % of 20 is 2 calls a window.
    let windows = elapsed.as_millis().div_ceil(WINDOW.as_millis()) as u64 + 1;
    assert!(sent > 200, "the flood sent {sent} requests");
    assert!(
        denials <= 2 * windows,
        "the guesses got {denials} of Polar's answers in {windows} windows"
    );
    // Polar never over its budget (its calls are at most the budget a window).
    assert!(
        calls <= u64::from(BUDGET) * windows,
        "{calls} calls to Polar in {elapsed:?}"
    );
    assert!(calls >= answers.len() as u64);
    eprintln!("flood: {sent} sent, {denials} answered by Polar; {calls} calls to Polar in {elapsed:?}; customers: {answers:?}");
}

/// Issue #52, item 1: the relay with a store, a token and a webhook secret and otherwise its
/// defaults (`StoreOptions::default()`: the roster is not named) is safe. Random keys sent to
/// `activate` from four addresses (each within its own per-IP rate) while 14 customers who
/// bought before the start activate from their own: every customer gets Polar's verdict. With
/// the roster off by default (as before #52) the guesses took the reserve: 0 of 14.
#[test]
fn the_relays_defaults_leave_new_customers_polars_verdict_under_guesses_from_four_addresses() {
    const CUSTOMERS: usize = 14;
    let polar = Emulator::start(with_customers(CUSTOMERS), budgeted()).expect("emulator");
    let (_, secret) = endpoint(&polar);
    // The defaults, scaled to the emulator's budget and window (the reserve a quarter, as
    // `relay serve` sets it).
    let mut store = StoreOptions::default();
    store.budget = BUDGET;
    store.reserve = BUDGET / 4;
    store.budget_window_ms = WINDOW.as_millis() as u64;
    let relay = start_relay(&polar, store, secret);
    // The roster's pages in (or no roster at all: then the attack below shows what it costs).
    rig::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        health(&relay)["roster"]["state"] != "loading"
    });
    let roster = health(&relay)["roster"].clone();
    // Polar's window of the roster's page over.
    std::thread::sleep(WINDOW + Duration::from_millis(300));

    polar.reset_request_count();
    let started = Instant::now();
    // Activates of random keys from four addresses, each within the default per-IP rate (5 a
    // second).
    let guesses = Guesses::start(&relay, 4, 110, Duration::from_millis(200), |n, i| {
        ("activate", format!("RANDOM-{n}-{i}-9F8E7D"))
    });
    // The guesses first spend what they can.
    std::thread::sleep(Duration::from_millis(500));
    let mut answers = Vec::new();
    for i in 0..CUSTOMERS {
        let from = Ipv4Addr::new(127, 0, 0, 20 + i as u8);
        // A client told 429 tries again a little later, twice.
        answers.extend(activate_retrying(from, &relay, &customer_key(i), 3));
        std::thread::sleep(Duration::from_millis(150));
    }
    let (sent, denials) = guesses.stop();
    let elapsed = started.elapsed();
    let answered = answers
        .iter()
        .filter(|(_, status, source)| *status == 200 && source.as_deref() == Some("polar"))
        .count();
    eprintln!(
        "defaults: {answered} of {CUSTOMERS} customers answered by Polar; guesses: {sent} sent, \
         {denials} answered by Polar in {elapsed:?}; {answers:?}"
    );
    assert_eq!(answered, CUSTOMERS, "{answers:?}");
    assert_eq!(roster["state"], "current", "the roster, on by default");
    // The guesses had only the first-seen share: 10 % of 20, 2 calls a window.
    let windows = elapsed.as_millis().div_ceil(WINDOW.as_millis()) as u64 + 1;
    assert!(sent > 40, "the guesses sent {sent}");
    assert!(
        denials <= 2 * windows,
        "{denials} guesses answered by Polar"
    );
    relay.stop();
}

/// A front for Polar (the emulator at `polar`) whose `GET /v1/license-keys/` answers 403, as
/// Polar does to a token without `license_keys:read`; every other request is passed through
/// byte for byte. Its address.
fn polar_refusing_the_list(polar: SocketAddr) -> SocketAddr {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut client = client;
                let mut first = [0u8; 1024];
                let Ok(n) = client.read(&mut first) else {
                    return;
                };
                if first[..n].starts_with(b"GET /v1/license-keys/?") {
                    let body = r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token."}"#;
                    let _ = write!(
                        client,
                        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let Ok(mut upstream) = TcpStream::connect(polar) else {
                    return;
                };
                if upstream.write_all(&first[..n]).is_err() {
                    return;
                }
                let (Ok(mut up_read), Ok(mut client_write)) =
                    (upstream.try_clone(), client.try_clone())
                else {
                    return;
                };
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut client_write);
                    let _ = client_write.shutdown(std::net::Shutdown::Both);
                });
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Both);
                let _ = back.join();
            });
        }
    });
    addr
}

/// Issue #52, item 1: a token that cannot list the organization's keys (Polar's 403 to
/// `GET /v1/license-keys/`) gives one warning, `/healthz` says so (`status` `warning`, the
/// roster `unreadable`) and so does the metric `roster_unreadable`; the protection stays:
/// guesses from several addresses still spend only the first-seen share, and a key Polar
/// grants through the relay is known from then on.
#[test]
fn a_token_that_cannot_list_keys_warns_once_and_unknown_keys_keep_only_their_share() {
    polar_license_testkit::logs::capture();
    let polar = Emulator::start(Seed::demo(), budgeted()).expect("emulator");
    let (_, secret) = endpoint(&polar);
    let front = polar_refusing_the_list(SocketAddr::from(([127, 0, 0, 1], polar.port())));
    let mut store = StoreOptions::default();
    store.budget = BUDGET;
    store.reserve = BUDGET / 4;
    store.budget_window_ms = WINDOW.as_millis() as u64;
    let mut config = rig::config(format!("http://{front}"), "unreadable");
    config.store = rig::store(rig::memory(10_000), store, Some(secret));
    let upstream = rig::upstream(Duration::from_secs(5));
    let mut serve = ServeOptions::default();
    serve.metrics_addr = Some("127.0.0.1:0".into());
    let relay = rig::listen(rig::relay(config, upstream), serve);
    let unreadable = rig::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        health(&relay)["roster"]["state"] == "unreadable"
    });
    let h = health(&relay);
    assert!(unreadable, "{h}");
    assert_eq!(h["status"], "warning", "{h}");
    assert!(
        h["roster"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("license_keys:read")),
        "{h}"
    );
    let metrics = get(relay.metrics_url().expect("metrics on"));
    assert!(
        metrics.contains("\npolar_license_relay_roster_unreadable 1\n"),
        "{metrics}"
    );
    std::thread::sleep(WINDOW + Duration::from_millis(300));

    // Guesses from four addresses: 10 % of 20 is 2 of Polar's answers a window at most.
    polar.reset_request_count();
    let started = Instant::now();
    let to = relay_addr(&relay);
    let mut polar_answers = 0;
    let mut refused = 0;
    for i in 0..40u8 {
        let from = Ipv4Addr::new(127, 0, 0, 120 + i % 4);
        let body = json!({"key": format!("GUESS-{i}-00AA11"), "organization_id": DEMO_ORGANIZATION_ID,
                          "label": "guess"});
        let a = post_from(from, to, "/v1/customer-portal/license-keys/activate", &body)
            .expect("an answer");
        match (a.status, a.source.as_deref()) {
            (404, Some("polar")) => polar_answers += 1,
            (429, Some("relay")) => refused += 1,
            other => panic!("a guess got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let windows = started.elapsed().as_millis().div_ceil(WINDOW.as_millis()) as u64 + 1;
    assert!(
        polar_answers <= 2 * windows && refused >= 40 - 2 * windows,
        "{polar_answers} guesses answered by Polar, {refused} refused, {windows} windows"
    );
    // Said once, whatever the relay read since.
    let warnings = polar_license_testkit::logs::lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN") && l.contains("the roster cannot be read"))
        .count();
    assert_eq!(warnings, 1);
    relay.stop();
}
