//! Seat heartbeats at scale (issue #76, finding 6): `SEATS` seats held (default 1,000: two
//! keys of 500, under the 512 a pool holds), each heartbeated in turn by `THREADS` client
//! threads for `SECONDS`, on the memory store and on the durable one (a redb file):
//! heartbeats a second and their p50 / p99 / max. Run by `load seats [SECONDS] [THREADS]
//! [SEATS]` and by `relay_attack heartbeats [SECONDS] [THREADS] [SEATS]` (the same rows).

use super::rig;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::{Backend, RedbBackend, StoreOptions};
use polar_license_relay::{SeatOptions, ServeOptions, SEATS_PREFIX};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seats per key (a pool holds at most 512).
const PER_KEY: usize = 500;

fn percentile(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

pub fn table(secs: u64, threads: usize, seats: usize) {
    println!("{seats} seats held, heartbeated in turn by {threads} client threads for {secs} s:\n");
    println!("| store | heartbeats | per second | p50 | p99 | max | not 200 |");
    println!("|---|---|---|---|---|---|---|");
    let dir = polar_license_testkit::ScratchDir::new("seat-bench");
    let stores: [(&str, Arc<dyn Backend>); 2] = [
        ("memory", rig::memory(100_000)),
        (
            "durable (redb)",
            Arc::new(RedbBackend::open(&dir.path().join("seats.redb"), 100_000).expect("redb")),
        ),
    ];
    for (name, backend) in stores {
        run(name, backend, secs, threads, seats);
    }
}

fn run(name: &str, backend: Arc<dyn Backend>, secs: u64, threads: usize, seats: usize) {
    let polar = Emulator::start(
        Seed::demo(),
        Options {
            token_budget: Some(0),
            ..Options::default()
        },
    )
    .expect("the emulator starts");
    let keys: Vec<String> = (0..seats.div_ceil(PER_KEY))
        .map(|i| {
            rig::add_key(
                &polar,
                format!("SEATBENCH-{i:04}-4A5B6C"),
                Some(PER_KEY as i64),
            )
        })
        .collect();
    let mut config = rig::config(polar.url(), "seat-bench");
    config.limits = rig::unlimited();
    config.store = rig::store(backend, StoreOptions::default(), None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(SeatOptions {
            churn: 0,
            ..SeatOptions::default()
        })
        .expect("seat options");
    let mut options = ServeOptions::default();
    options.concurrent_requests = 16;
    let running = rig::listen(relay, options);
    let url = |op: &str| format!("{}{SEATS_PREFIX}{op}", running.url());
    let body = |key: &str, machine: &str, seat: Option<&str>| {
        let mut b = serde_json::json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID,
            "machine": machine});
        if let Some(seat) = seat {
            b["seat"] = serde_json::json!(seat);
        }
        b.to_string()
    };
    let agent = rig::agent(Duration::from_secs(10));
    let held: Vec<(String, String, String)> = (0..seats)
        .map(|i| {
            let key = keys[i / PER_KEY].clone();
            let machine = format!("machine-{i}");
            let r = rig::post_with(&agent, &url("acquire"), &body(&key, &machine, None), &[]);
            assert_eq!(r.status, 200, "seat {i}: {}", r.body);
            let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
            let seat = v["seat"].as_str().expect("a seat").to_string();
            (key, machine, seat)
        })
        .collect();
    let held = Arc::new(held);
    let stop = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let held = Arc::clone(&held);
            let url = url("heartbeat");
            std::thread::spawn(move || {
                let agent = rig::agent(Duration::from_secs(10));
                let mut times = Vec::new();
                let mut bad = 0u64;
                let mut i = t;
                while Instant::now() < stop {
                    let (key, machine, seat) = &held[i % held.len()];
                    let b = serde_json::json!({"key": key,
                        "organization_id": DEMO_ORGANIZATION_ID, "machine": machine,
                        "seat": seat})
                    .to_string();
                    let start = Instant::now();
                    let r = rig::post_with(&agent, &url, &b, &[]);
                    times.push(start.elapsed().as_micros() as u64);
                    bad += u64::from(r.status != 200);
                    i += threads;
                }
                (times, bad)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut bad = 0;
    for w in workers {
        let (t, b) = w.join().expect("a client thread");
        times.extend(t);
        bad += b;
    }
    times.sort_unstable();
    println!(
        "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {bad} |",
        times.len(),
        times.len() as f64 / secs as f64,
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    );
    running.stop();
    polar.stop();
}
