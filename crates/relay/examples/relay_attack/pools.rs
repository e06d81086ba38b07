//! `relay_attack pools [SECONDS] [CAP_KIB] [--url BASE --polar POLAR_URL]` (issue #76,
//! finding 1): one granted key tries to fill the relay's store with seat pools. For `SECONDS`
//! (default 20) against a relay whose store is capped at `CAP_KIB` (default 1024, the size of
//! the demonstration), its default limits and seat options, each request from a new
//! address: one client acquires seats on a key of 5 seats, each time under another spelling of
//! the organization id (case flips, no hyphens, braces, `urn:uuid:`: about a million spellings
//! Polar reads as one organization) and another machine; another acquires seats with ever-new
//! keys (none of them granted); 20 other customers' grants were stored before. The row: the
//! flood's answers, the pools and seats the relay holds after it and the store's bytes
//! (`/healthz`: read the same on both hosts), and how many of the other customers' checks
//! after the flood were still answered from the store. Before issue #76 each spelling made a
//! pool of its own and each refused acquisition wrote one too: 1,300 spellings filled a 1 MiB
//! store, every other grant evicted. `met` when the flood held at most the key's 5 seats in
//! one pool, the store stayed within its cap and every other customer's grant was still stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license_emulator::DEMO_ORGANIZATION_ID as ORG;
use polar_license_relay::store::{Backend, MemoryBackend};
use polar_license_relay::{SeatOptions, ServeOptions};
use serde_json::json;

use super::rig;

/// The `n`th of many spellings of the demo organization (as `tests/pool_flood.rs` makes them).
fn spelling(n: u64) -> String {
    polar_license_testkit::ids::spelling(ORG, n)
}

fn acquire(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
    org: &str,
    machine: &str,
    from: &str,
) -> u16 {
    rig::post_with(
        agent,
        &format!("{base}{}acquire", polar_license_relay::SEATS_PREFIX),
        &json!({"key": key, "organization_id": org, "machine": machine}).to_string(),
        &[("x-forwarded-for", from), ("cf-connecting-ip", from)],
    )
    .status
}

/// `/healthz`: the store's bytes and cap, the seats held and the pools holding them.
fn health(agent: &ureq::Agent, base: &str) -> (u64, u64, u64, u64) {
    let h = rig::health(agent, base);
    (
        h["store"]["bytes"].as_u64().unwrap_or(0),
        h["store"]["max_bytes"].as_u64().unwrap_or(0),
        h["seats"]["in_use"].as_u64().unwrap_or(0),
        h["seats"]["pools_in_use"].as_u64().unwrap_or(0),
    )
}

/// The table (see the module doc).
pub fn pools_table(args: &[String]) {
    let nums = super::crowds::numbers(args);
    let seconds = nums.first().copied().unwrap_or(20);
    let cap = nums.get(1).copied().unwrap_or(1024) * 1024;
    let target = super::crowds::Target::of(
        args,
        |polar_url| {
            let mut config = rig::config(polar_url, "flood-pools");
            config.client_ip_header = Some("x-forwarded-for".into());
            let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
            let mut options = polar_license_relay::store::StoreOptions::default();
            options.max_bytes = cap;
            config.store = rig::store(backend, options, None);
            rig::relay(config, rig::upstream(Duration::from_secs(10)))
                .with_seats(SeatOptions::default())
                .expect("seat options")
                .into()
        },
        ServeOptions::default(),
    );
    let flooder = "POOLFLOOD-TARGET-4A5B6C".to_string();
    target.add_key(&flooder, 5);
    let known: Vec<String> = (0..20)
        .map(|i| format!("POOLFLOOD-KNOWN-{i:02}-4A5B6C"))
        .collect();
    for k in &known {
        target.add_key(k, 3);
    }
    let base = target.base.clone();
    let agent = rig::agent(Duration::from_secs(30));
    for (i, k) in known.iter().enumerate() {
        let a = rig::validate_at(
            &agent,
            &base,
            k,
            &[
                ("cf-connecting-ip", &format!("192.0.2.{}", i + 1)),
                ("x-forwarded-for", &format!("192.0.2.{}", i + 1)),
            ],
        );
        assert_eq!(a.status, 200, "{k}: {}", a.body);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new([BTreeMap::<u16, u64>::new(), BTreeMap::new()]));
    let most = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for which in 0..2usize {
        let (agent, base, stop, answers, flooder) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&stop),
            Arc::clone(&answers),
            flooder.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let from = format!("10.{which}.{}.{}", (n / 256) % 256, n % 256);
                let status = match which {
                    0 => acquire(
                        &agent,
                        &base,
                        &flooder,
                        &spelling(n),
                        &format!("m-{n}"),
                        &from,
                    ),
                    _ => acquire(
                        &agent,
                        &base,
                        &format!("POOLFLOOD-NEW-{n:08}-4A5B6C"),
                        &spelling(n),
                        &format!("m-{n}"),
                        &from,
                    ),
                };
                *answers.lock().expect("answers")[which]
                    .entry(status)
                    .or_default() += 1;
            }
        }));
    }
    {
        let (agent, base, stop, most) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&stop),
            Arc::clone(&most),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(health(&agent, &base).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let (bytes, max_bytes, in_use, pools) = health(&agent, &base);
    let most = most.load(Ordering::Relaxed).max(bytes);
    let mut stored = 0;
    for (i, k) in known.iter().enumerate() {
        let from = format!("192.0.2.{}", i + 1);
        let a = rig::validate_at(
            &agent,
            &base,
            k,
            &[("cf-connecting-ip", &from), ("x-forwarded-for", &from)],
        );
        stored += usize::from(a.status == 200 && a.source.as_deref() == Some("store"));
    }
    let answers = answers.lock().expect("answers");
    let said = |m: &BTreeMap<u16, u64>| {
        let sent: u64 = m.values().sum();
        let each: Vec<String> = m.iter().map(|(s, n)| format!("{n} × {s}")).collect();
        format!("{sent}: {}", each.join(", "))
    };
    let met = in_use <= 5 && pools <= 1 && most <= max_bytes && stored == known.len();
    println!(
        "A pool flood ({seconds} s; the store capped at {max_bytes} bytes; the relay {}, its \
         default limits and seat options; each request from a new address):\n",
        target.named()
    );
    super::table_head(&[
        "one key of 5 seats, a new spelling of its organization each",
        "ever-new keys (not granted)",
        "seats held / pools holding them after",
        "store's most bytes (cap), at the end",
        "other customers' grants still stored",
        "target",
    ]);
    println!(
        "| {} | {} | {in_use} / {pools} | {most} ({max_bytes}), {bytes} | {stored} of {} | {} |",
        said(&answers[0]),
        said(&answers[1]),
        known.len(),
        super::crowds::verdict(met),
    );
    if !met {
        super::crowds::MISSED.store(true, Ordering::Relaxed);
    }
    target.stop();
}
