//! The verdict store against forwarding, side by side in one run (issue #37's benchmark): the
//! emulator behind the relay enforcing the organization token's real budget (500 calls a
//! minute), time scaled (`SCALE`: 0.1 makes Polar's minute 6 s, the relay's windows with it),
//! tens of thousands of keys with skewed (Zipf) popularity, checks at 24 times the budget,
//! new customers activating, revocations made in Polar arriving as webhooks, a Polar outage
//! window and a relay restart in the middle. The same workload runs twice: a relay that
//! forwards every check (today's), and one with a store (a redb file).
//!
//! Run: `cargo run --release -p polar-license-relay --example store_bench [SCALE] [MINUTES]
//! [KEYS]` (defaults 0.1, 4 and 20000). It prints one table (markdown).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use polar_license_emulator::{
    Emulator, Fault, KeyUpdate, Options, Seed, SeedKey, WebhookOptions, DEMO_ORGANIZATION_ID,
    DEMO_TOKEN,
};
use polar_license_relay::store::{Backend, RedbBackend, StoreOptions};
use polar_license_relay::{Running, ServeOptions};
use polar_license_testkit::answers::Rng;

// The relay's tests' rig: the relay and Polar's webhook endpoint set up as they do it.
#[path = "../tests/rig/mod.rs"]
mod rig;

/// Polar's production budget, calls per (scaled) minute.
const BUDGET: u32 = 500;
/// The load, in multiples of the budget.
const LOAD: f64 = 24.0;
/// Load threads.
const THREADS: usize = 8;

fn agent() -> ureq::Agent {
    rig::agent(Duration::from_secs(10))
}

/// Zipf(1.0) over `n` keys: the cumulative weights, for a binary search.
fn zipf(n: usize) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for i in 1..=n {
        total += 1.0 / i as f64;
        cdf.push(total);
    }
    cdf.iter().map(|c| c / total).collect()
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|c| *c < u).min(cdf.len() - 1)
}

fn key_name(i: usize) -> String {
    format!("BENCH-{i:08}-4A5B6C")
}

#[derive(Default)]
struct Tally {
    checks: AtomicU64,
    known: AtomicU64,
    known_answered: AtomicU64,
    outage_checks: AtomicU64,
    outage_answered: AtomicU64,
    activations: AtomicU64,
    activations_answered: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    answered_keys: Mutex<HashSet<usize>>,
    revocation_delays_ms: Mutex<Vec<u64>>,
    polar_calls_per_window: Mutex<Vec<u64>>,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

struct Mode {
    name: &'static str,
    store: bool,
}

fn start_relay(
    polar: &Emulator,
    store: Option<(Arc<dyn Backend>, StoreOptions, String)>,
) -> Running {
    let mut config = rig::config(polar.url(), "bench");
    config.limits = rig::unlimited();
    config.store =
        store.and_then(|(backend, options, secret)| rig::store(backend, options, Some(secret)));
    let mut options = ServeOptions::default();
    options.concurrent_requests = 16;
    rig::listen(
        rig::relay(config, rig::upstream(Duration::from_secs(5))),
        options,
    )
}

fn run(mode: &Mode, scale: f64, minutes: f64, keys: usize, dir: &std::path::Path) -> Vec<String> {
    let minute = Duration::from_secs_f64(60.0 * scale);
    let options = Options {
        token_budget: Some(BUDGET),
        token_window: Some(minute),
        webhooks: WebhookOptions {
            schedule_scale: scale,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    let polar = Arc::new(Emulator::start(Seed::demo(), options).expect("emulator"));
    for i in 0..keys {
        polar
            .add_key(SeedKey {
                limit_activations: Some(1_000),
                ..SeedKey::new(key_name(i))
            })
            .expect("a key");
    }
    // New customers: keys nobody has checked yet, activated during the run.
    let fresh_base = keys;
    let new_keys = 2_000;
    for i in 0..new_keys {
        polar
            .add_key(SeedKey {
                limit_activations: Some(3),
                ..SeedKey::new(key_name(fresh_base + i))
            })
            .expect("a key");
    }
    let (endpoint_id, secret) = rig::endpoint(
        &polar,
        &[
            "benefit_grant.revoked",
            "benefit_grant.updated",
            "benefit_grant.created",
        ],
    );
    let path = dir.join(format!("{}.redb", mode.name.replace(' ', "-")));
    let _ = std::fs::remove_file(&path);
    let mut store_options = StoreOptions::default();
    let scaled = |s: u64| ((s as f64 * scale).round() as u64).max(1);
    store_options.fresh_for = scaled(300);
    store_options.stale_for = scaled(86_400);
    store_options.denial_for = scaled(60);
    store_options.budget = BUDGET;
    store_options.budget_window_ms = minute.as_millis() as u64;
    // As its figures were measured (issue #37, before the roster): the roster, on by default
    // since #52, is measured by relay_attack's budget rows.
    store_options.roster = false;
    let make = |polar: &Emulator| {
        let store = mode.store.then(|| {
            let backend: Arc<dyn Backend> =
                Arc::new(RedbBackend::open(&path, 1_000_000).expect("a store"));
            (backend, store_options.clone(), secret.clone())
        });
        start_relay(polar, store)
    };
    let point = |polar: &Emulator, url: &str| {
        let status = agent()
            .patch(&format!(
                "{}/v1/webhooks/endpoints/{endpoint_id}",
                polar.url()
            ))
            .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
            .header("content-type", "application/json")
            .send(
                serde_json::json!({"url": format!("{url}/v1/webhooks/polar"), "enabled": true})
                    .to_string(),
            )
            .expect("patched")
            .status();
        assert_eq!(status.as_u16(), 200);
    };
    let relay = make(&polar);
    point(&polar, &relay.url());
    let relay_url = Arc::new(RwLock::new(relay.url()));
    let mut relay_slot = Some(relay);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    let next_new = Arc::new(AtomicU64::new(0));
    let cdf = Arc::new(zipf(keys));
    let rate = LOAD * f64::from(BUDGET) / minute.as_secs_f64();
    let per_thread = Duration::from_secs_f64(THREADS as f64 / rate);
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tally, stop, outage, cdf, url, next_new) = (
                Arc::clone(&tally),
                Arc::clone(&stop),
                Arc::clone(&outage),
                Arc::clone(&cdf),
                Arc::clone(&relay_url),
                Arc::clone(&next_new),
            );
            std::thread::spawn(move || {
                let agent = agent();
                // The same keys and order in both runs.
                let mut rng = Rng::new(t as u64 + 1);
                let mut due = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    due += per_thread;
                    let base = url.read().map(|u| u.clone()).unwrap_or_default();
                    let began = Instant::now();
                    // One in a hundred is a new customer activating; the rest are checks.
                    if rng.unit() < 0.01 {
                        let n = next_new.fetch_add(1, Ordering::Relaxed) as usize;
                        if n < new_keys {
                            tally.activations.fetch_add(1, Ordering::Relaxed);
                            let body = serde_json::json!({"key": key_name(fresh_base + n),
                                "organization_id": DEMO_ORGANIZATION_ID, "label": "bench"});
                            let ok = agent
                                .post(&format!("{base}/v1/customer-portal/license-keys/activate"))
                                .header("content-type", "application/json")
                                .send(body.to_string())
                                .map(|r| r.status().as_u16() == 200)
                                .unwrap_or(false);
                            if ok {
                                tally.activations_answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    } else {
                        let i = pick(&cdf, rng.unit());
                        let known = tally
                            .answered_keys
                            .lock()
                            .map(|k| k.contains(&i))
                            .unwrap_or(false);
                        let body = serde_json::json!({"key": key_name(i),
                            "organization_id": DEMO_ORGANIZATION_ID});
                        let status = agent
                            .post(&format!("{base}/v1/customer-portal/license-keys/validate"))
                            .header("content-type", "application/json")
                            .send(body.to_string())
                            .map(|mut r| {
                                let _ = r.body_mut().read_to_vec();
                                r.status().as_u16()
                            })
                            .unwrap_or(0);
                        let answered = status == 200 || status == 404;
                        tally.checks.fetch_add(1, Ordering::Relaxed);
                        if known {
                            tally.known.fetch_add(1, Ordering::Relaxed);
                            if answered {
                                tally.known_answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if outage.load(Ordering::Relaxed) {
                            tally.outage_checks.fetch_add(1, Ordering::Relaxed);
                            if answered {
                                tally.outage_answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if answered {
                            if let Ok(mut k) = tally.answered_keys.lock() {
                                k.insert(i);
                            }
                        }
                        if let Ok(mut l) = tally.latencies_us.lock() {
                            l.push(began.elapsed().as_micros() as u64);
                        }
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    } else {
                        due = Instant::now();
                    }
                }
            })
        })
        .collect();

    // The conductor: Polar's calls per window, revocations, the outage, the restart.
    let total = minute.mul_f64(minutes);
    let mut window_start = polar.request_count();
    let mut next_window = start + minute;
    let mut next_revocation = start + minute.mul_f64(0.5);
    let mut revoked = 0usize;
    let mut restarted = false;
    let outage_from = start + minute.mul_f64(2.0);
    let outage_to = start + minute.mul_f64(2.5);
    while start.elapsed() < total {
        let now = Instant::now();
        if now >= next_window {
            let count = polar.request_count();
            if let Ok(mut w) = tally.polar_calls_per_window.lock() {
                w.push(count - window_start);
            }
            window_start = count;
            next_window += minute;
        }
        let in_outage = now >= outage_from && now < outage_to;
        if in_outage != outage.load(Ordering::Relaxed) {
            outage.store(in_outage, Ordering::Relaxed);
            polar.set_fault(in_outage.then(|| Fault::Status {
                status: 503,
                body: "Service Unavailable".into(),
            }));
        }
        if !restarted && now >= start + minute.mul_f64(3.0) {
            restarted = true;
            if let Some(old) = relay_slot.take() {
                old.stop();
            }
            let relay = make(&polar);
            point(&polar, &relay.url());
            if let Ok(mut u) = relay_url.write() {
                *u = relay.url();
            }
            relay_slot = Some(relay);
        }
        if now >= next_revocation && !in_outage {
            next_revocation += minute.mul_f64(0.5);
            // A popular key the relay has answered, revoked in Polar; probed until refused.
            let i = 1 + revoked * 7;
            revoked += 1;
            let key = key_name(i);
            let url = relay_url.read().map(|u| u.clone()).unwrap_or_default();
            let began = Instant::now();
            polar.update_key(
                &key,
                KeyUpdate {
                    status: Some("revoked".into()),
                    ..KeyUpdate::default()
                },
            );
            let probe = agent();
            let body = serde_json::json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID});
            let delay = loop {
                let status = probe
                    .post(&format!("{url}/v1/customer-portal/license-keys/validate"))
                    .header("content-type", "application/json")
                    .send(body.to_string())
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                if status == 404 {
                    break Some(began.elapsed().as_millis() as u64);
                }
                if began.elapsed() > minute {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if let Ok(mut d) = tally.revocation_delays_ms.lock() {
                d.push(delay.unwrap_or(u64::MAX));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    polar.set_fault(None);
    let rss = rss_kb();
    if let Some(r) = relay_slot.take() {
        r.stop();
    }
    let store_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let share = |n: u64, d: u64| {
        if d == 0 {
            "-".to_string()
        } else {
            format!("{:.2}%", 100.0 * n as f64 / d as f64)
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    let windows = tally
        .polar_calls_per_window
        .lock()
        .map(|w| w.clone())
        .unwrap_or_default();
    let max_calls = windows.iter().copied().max().unwrap_or(0);
    let mut lat = tally
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let mut delays = tally
        .revocation_delays_ms
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    let refused = delays.iter().filter(|d| **d != u64::MAX).count();
    let p99_delay = percentile(&mut delays, 0.99);
    vec![
        mode.name.to_string(),
        format!("{:.0}/s", g(&tally.checks) as f64 / elapsed),
        format!("{max_calls} (budget {BUDGET})"),
        share(g(&tally.known_answered), g(&tally.known)),
        format!(
            "{} of {}",
            g(&tally.activations_answered),
            g(&tally.activations)
        ),
        if p99_delay == u64::MAX {
            format!("{refused} of {} refused within a minute", delays.len())
        } else {
            format!("{p99_delay} ms ({refused} of {})", delays.len())
        },
        share(g(&tally.outage_answered), g(&tally.outage_checks)),
        format!(
            "{:.1} / {:.1} ms",
            percentile(&mut lat, 0.5) as f64 / 1000.0,
            percentile(&mut lat, 0.99) as f64 / 1000.0
        ),
        format!(
            "{:.0} MB RSS{}",
            rss as f64 / 1024.0,
            if mode.store {
                format!(", store {:.1} MB", store_bytes as f64 / 1_048_576.0)
            } else {
                String::new()
            }
        ),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let minutes: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4.0);
    let keys: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("polar-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    println!(
        "{keys} keys (Zipf), checks at {LOAD}x the budget ({BUDGET} calls per minute), 1% activations \
         of new keys, time scaled by {scale} (Polar's minute is {:.1} s), {minutes} minutes each; \
         a revocation every half minute, Polar answering 503 from minute 2 to 2.5, the relay \
         restarted at minute 3\n",
        60.0 * scale
    );
    println!("| relay | checks sent | Polar calls per minute, most | known keys' checks answered (grant or denial) | new keys' activations answered | revocation to refusal, p99 | checks answered in the outage | latency p50 / p99 | memory |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for mode in [
        Mode {
            name: "forwarding",
            store: false,
        },
        Mode {
            name: "verdict store",
            store: true,
        },
    ] {
        let row = run(&mode, scale, minutes, keys, &dir);
        println!("| {} |", row.join(" | "));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
