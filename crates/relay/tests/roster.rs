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

#[test]
fn a_flood_of_guesses_from_many_addresses_leaves_new_customers_polars_verdict() {
    // Polar: 30 customers who bought before the relay started, a budget of 20 calls a 3 s
    // window, webhooks delivered at once.
    let mut seed = Seed::demo();
    for i in 0..30 {
        seed.license_keys.push(SeedKey {
            limit_activations: Some(3),
            ..SeedKey::new(customer_key(i))
        });
    }
    let options = Options {
        token_budget: Some(BUDGET),
        token_window: Some(WINDOW),
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
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
    let stop = Arc::new(AtomicBool::new(false));
    let flood_denials = Arc::new(AtomicU64::new(0));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let to = relay_addr(&relay);
    let flooders: Vec<_> = (0..16u8)
        .map(|n| {
            let (stop, denials, sent) = (
                Arc::clone(&stop),
                Arc::clone(&flood_denials),
                Arc::clone(&flood_sent),
            );
            std::thread::spawn(move || {
                let from = Ipv4Addr::new(127, 0, 0, 100 + n);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let op = if i.is_multiple_of(2) {
                        "validate"
                    } else {
                        "activate"
                    };
                    let key = format!("GUESS-{n}-{i}-000000");
                    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID,
                                      "label": "guess"});
                    let path = format!("/v1/customer-portal/license-keys/{op}");
                    if let Some(a) = post_from(from, to, &path, &body) {
                        sent.fetch_add(1, Ordering::Relaxed);
                        if a.status == 404 {
                            denials.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(40));
                }
            })
        })
        .collect();

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
        let mut last = None;
        for _ in 0..8 {
            let a = activate_from(customer, &relay, &key).expect("an answer");
            let done = a.status != 429;
            last = Some((key.clone(), a.status, a.source));
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        answers.extend(last);
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().expect("a flooder");
    }
    let elapsed = started.elapsed();
    let calls = polar.request_count();
    let sent = flood_sent.load(Ordering::Relaxed);
    let denials = flood_denials.load(Ordering::Relaxed);

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
