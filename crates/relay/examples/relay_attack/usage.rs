//! `relay_attack usage [SECONDS] [BUDGET]` (issue #76): one key's usage flood from four client
//! addresses (tiny reports as fast as they go, each address within the per-IP limit) against
//! a relay with usage and entitlements on and the default limits, while other customers'
//! first validates arrive, one every 250 ms from addresses of their own. The row: the flood's
//! reports kept and limited, and the first validates answered and refused (429), with their
//! p50 and p99. `--url BASE --polar POLAR_URL`: against a relay running elsewhere (the npm
//! relay under workerd, `scripts/relay-attack-workerd.mjs`: usage and entitlements on, the same
//! budget), the keys added through the emulator's admin routes. Before issue #76 the flood's batches (and the read of meters each asked) took
//! the budget's whole shared part and the first validates got 429.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Limits, ServeOptions, USAGE_ROUTE};

use serde_json::json;

use super::rig;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The table (see the module doc).
pub fn usage_table(args: &[String]) {
    let nums = super::crowds::numbers(args);
    let seconds = nums.first().copied().unwrap_or(10) as f64;
    let budget = u32::try_from(nums.get(1).copied().unwrap_or(100)).unwrap_or(100);
    let target = super::crowds::Target::of(
        args,
        |polar_url| {
            let mut config = rig::config(polar_url, "usage-flood");
            config.limits = Limits::default();
            config.client_ip_header = Some("x-forwarded-for".into());
            let mut store = StoreOptions::default();
            store.budget = budget;
            store.reserve = budget / 4;
            store.roster = false;
            store.reconcile_every = 0;
            store.entitlements = true;
            store.usage = true;
            config.store = rig::store(rig::memory(10_000), store, None);
            rig::relay(config, rig::upstream(Duration::from_secs(10))).into()
        },
        ServeOptions::default(),
    );
    let flooded = "USAGEFLOOD-TARGET-4A5B6C".to_string();
    target.add_key(&flooded, 3);
    let firsts: Vec<String> = (0..((seconds * 4.0) as usize + 8))
        .map(|i| format!("USAGEFLOOD-FIRST-{i:03}-4A5B6C"))
        .collect();
    for k in &firsts {
        target.add_key(k, 3);
    }
    let base = target.base.clone();
    let agent = rig::agent(Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new((0u32, 0u32, 0u32)));
    let flood: Vec<_> = (1..=4)
        .map(|a| {
            let (base, agent, stop, tally, key) = (
                base.clone(),
                agent.clone(),
                Arc::clone(&stop),
                Arc::clone(&tally),
                flooded.clone(),
            );
            std::thread::spawn(move || {
                let from = format!("198.51.100.{a}");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({
                        "key": key, "organization_id": DEMO_ORGANIZATION_ID,
                        "meter": "api_call", "units": 0.001, "id": format!("f-{a}-{n}"),
                    });
                    let r = rig::post_with(
                        &agent,
                        &format!("{base}{USAGE_ROUTE}"),
                        &body.to_string(),
                        &[("x-forwarded-for", &from), ("cf-connecting-ip", &from)],
                    );
                    let mut t = tally.lock().expect("the tally");
                    match r.status {
                        200 => t.0 += 1,
                        429 => t.1 += 1,
                        _ => t.2 += 1,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let (mut ok, mut refused, mut other) = (Vec::new(), 0u32, 0u32);
    for (i, key) in firsts.iter().enumerate() {
        if started.elapsed().as_secs_f64() >= seconds {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let t = Instant::now();
        let a = rig::validate_at(
            &agent,
            &base,
            key,
            &[
                ("x-forwarded-for", &format!("203.0.113.{}", 10 + i % 200)),
                ("cf-connecting-ip", &format!("203.0.113.{}", 10 + i % 200)),
            ],
        );
        match a.status {
            200 => ok.push(t.elapsed()),
            429 => refused += 1,
            _ => other += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        let _ = t.join();
    }
    ok.sort();
    let (kept, limited, failed) = *tally.lock().expect("the tally");
    println!(
        "| usage flood: one key, 4 addresses, {seconds} s, budget {budget}, the relay {} | reports \
         kept {kept}, 429 {limited}, other {failed} | first validates 200: {} (p50 {:.1} ms, p99 \
         {:.1} ms), 429: {refused}, other: {other} |",
        target.named(),
        ok.len(),
        percentile(&ok, 0.5),
        percentile(&ok, 0.99)
    );
    if refused > 0 {
        super::crowds::MISSED.store(true, Ordering::Relaxed);
    }
    target.stop();
}
