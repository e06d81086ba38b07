//! Relay throughput on loopback (issue #25's benchmark): requests per second through
//! `polar-license relay serve`'s server in front of the embedded emulator, against the same
//! requests sent to the emulator directly, with the same client threads. Validates of the demo
//! key, each a grant, so every relayed answer is classified and signed (a lease per answer).
//! The relay's own rate limits are off: this measures the relay, not its buckets.
//!
//! Twice: against Polar's organization-token budget (500 calls a minute for the whole
//! organization, docs/polar-api.md §14: the emulator's default), which a relay that forwards
//! one-for-one spends in its first half-second, and with the budget off, a Polar that does not
//! exist, which measures the relay's own speed. Answers are counted by status: 200 (a grant,
//! with its lease) and 429 (Polar's budget, passed through).
//!
//! Run: `cargo run --release -p polar-license-relay --example load [SECONDS] [THREADS]`
//! (defaults 5 and 4).
//!
//! `load seats [SECONDS] [THREADS] [SEATS]` (issue #76, finding 6): seat heartbeats with
//! `SEATS` seats held (default 1,000: two keys of 500, under the 512 a pool holds), each
//! heartbeated in turn by `THREADS` client threads for `SECONDS`, on the memory store and on
//! the durable one (a redb file): heartbeats a second and their p50 / p99 / max.

// The relay's tests' rig: the relay started as they start it.
#[path = "../tests/rig/mod.rs"]
mod rig;

use polar_license::lease::LEASE_HEADER;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_relay::ServeOptions;
use std::time::{Duration, Instant};

/// Sends validates to `base` from `threads` threads for `secs`; returns (grants, leases, 429s).
fn hammer(base: &str, threads: usize, secs: u64) -> (u64, u64, u64) {
    let url = format!("{base}/v1/customer-portal/license-keys/validate");
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let stop = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                let (mut answers, mut leases, mut refused) = (0u64, 0u64, 0u64);
                while Instant::now() < stop {
                    let resp = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_str());
                    if let Ok(mut resp) = resp {
                        let _ = resp.body_mut().read_to_vec();
                        match resp.status().as_u16() {
                            200 => {
                                answers += 1;
                                leases += u64::from(resp.headers().contains_key(LEASE_HEADER));
                            }
                            429 => refused += 1,
                            _ => {}
                        }
                    }
                }
                (answers, leases, refused)
            })
        })
        .collect();
    workers
        .into_iter()
        .map(|w| w.join().unwrap_or((0, 0, 0)))
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("seats") {
        let mut args = std::env::args().skip(2);
        let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
        let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
        let seats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
        seats::table(secs, threads, seats);
        return;
    }
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    println!("{threads} client threads, {secs} s each, validates of one key (each a grant):");
    for (label, budget) in [
        ("Polar's token budget (500/min per organization)", None),
        (
            "no token budget (not Polar: the relay's own speed)",
            Some(0),
        ),
    ] {
        run(label, budget, threads, secs);
    }
}

fn run(label: &str, token_budget: Option<u32>, threads: usize, secs: u64) {
    // Polar's public 3/s per IP is off by default in the emulator (Options::rate_limit).
    let options = Options {
        token_budget,
        ..Options::default()
    };
    let polar = Emulator::start(Seed::demo(), options).expect("the emulator starts");
    let (limit, window) = polar.token_budget();
    let mut config = rig::config(polar.url(), "load");
    config.limits = rig::unlimited();
    let upstream = rig::upstream(Duration::from_secs(5));
    let relay = rig::listen(rig::relay(config, upstream), ServeOptions::default());

    let (direct, _, _) = hammer(&polar.url(), threads, secs);
    let (relayed, leases, refused) = hammer(&relay.url(), threads, secs);
    let rate = |n: u64| n as f64 / secs as f64;
    match limit {
        0 => println!("{label}:"),
        _ => println!("{label}: {limit} calls per {}s", window.as_secs()),
    }
    println!(
        "  emulator directly (public routes): {:8.0} grants/s",
        rate(direct)
    );
    println!(
        "  through the relay:                 {:8.0} grants/s ({leases} of {relayed} with a lease), {:.0} 429s/s",
        rate(relayed),
        rate(refused)
    );
    relay.stop();
    polar.stop();
}

/// Seat heartbeats at scale (issue #76, finding 6): the relay's attack benchmark's
/// `heartbeats` row too.
#[path = "relay_attack/heartbeats.rs"]
mod seats;
