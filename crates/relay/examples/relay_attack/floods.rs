//! Two floods that cost the relay's store and seats, each against the native relay over
//! loopback while known customers go on being served (issue #62's store byte cap, issue #67's
//! seats flood):
//!
//! - **`store [SECONDS] [CAP_KIB]`** (defaults 20, 1024): the relay's store capped at `CAP_KIB`
//!   (`--store-max-bytes`), its roster off and no per-address or per-key limit (the worst a
//!   seller can set: every unknown key's denial is Polar's and stored, as the budget part's
//!   "off" row), flooded for `SECONDS` by two clients validating new keys and one validating
//!   one activation under ever-new `conditions` of about 400 bytes, while a client checks 20
//!   known customers in turn. Sampled every 20 ms: the store's counted bytes (its most, against
//!   the cap) and the process's resident memory (`VmRSS`: the relay, the emulator and the
//!   clients). Per row: the flood's requests and answers, the known checks' answers and their
//!   latency.
//! - **`seats [SECONDS]`** (default 20): the relay with a store, seats on (the default seat
//!   options: a 5-minute life, 120 acquisitions a key an hour) and its default per-address and
//!   per-key limits, each client's address read from `x-forwarded-for`; for `SECONDS`, four
//!   clients acquire seats on one key of 5 seats as fast as they can, each request from a new
//!   address and machine (the per-address limit never bites), while 8 other keys of 2 seats
//!   each acquire, heartbeat and release in turn (one address a key, 20 operations a second in
//!   all) and a client validates 20 known customers at 4 a second. Per row: the flood's
//!   answers, the other keys' seat operations answered 200 and their latency, the checks'.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_relay::store::{Backend, MemoryBackend, StoreOptions};
use polar_license_relay::{Limits, SeatOptions, ServeOptions, SEATS_PREFIX};
use serde_json::{json, Value};

use super::rig;

/// Answers by status (`N × status`), and the latencies of those answered.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<u16, u64>,
    took: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, status: u16, took: Duration) {
        *self.answers.entry(status).or_default() += 1;
        self.took.push(took);
    }

    fn sent(&self) -> u64 {
        self.answers.values().sum()
    }

    fn of(&self, status: u16) -> u64 {
        self.answers.get(&status).copied().unwrap_or(0)
    }

    fn answers(&self) -> String {
        let parts: Vec<String> = self
            .answers
            .iter()
            .map(|(s, n)| format!("{n} × {s}"))
            .collect();
        parts.join(", ")
    }

    /// p50 / p99 / max in ms.
    fn latency(&mut self) -> String {
        if self.took.is_empty() {
            return "-".into();
        }
        self.took.sort();
        let at = |q: f64| {
            let i = ((self.took.len() as f64 - 1.0) * q).round() as usize;
            self.took[i].as_secs_f64() * 1e3
        };
        format!("{:.1} / {:.1} / {:.1} ms", at(0.5), at(0.99), at(1.0))
    }
}

/// Runs `each(i)` in a loop on a thread until `stop`, every `pace` at most (none: at once).
fn looped(
    stop: &Arc<AtomicBool>,
    pace: Option<Duration>,
    mut each: impl FnMut(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            each(i);
            i += 1;
            if let Some(p) = pace {
                std::thread::sleep(p.saturating_sub(t.elapsed()));
            }
        }
    })
}

/// A validate of `key` under `conditions` (`Value::Null`: none) from `from`, timed.
fn validate(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
    extra: Value,
    from: &str,
) -> (rig::Answer, Duration) {
    let mut body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID});
    if let (Some(b), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(extra.clone());
    }
    let t = Instant::now();
    let a = rig::post_with(
        agent,
        &format!("{base}{}validate", rig::PUBLIC),
        &body.to_string(),
        &[("x-forwarded-for", from), ("cf-connecting-ip", from)],
    );
    (a, t.elapsed())
}

/// The store's counted bytes and its cap, as the relay at `base` says them (`/healthz`'s
/// `store.bytes` and `store.max_bytes`: read from outside, the same on both hosts).
fn store_bytes(agent: &ureq::Agent, base: &str) -> Option<(u64, u64)> {
    let mut r = agent.get(&format!("{base}/healthz")).call().ok()?;
    let h: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
    Some((
        h["store"]["bytes"].as_u64()?,
        h["store"]["max_bytes"].as_u64()?,
    ))
}

/// The resident memory (`VmRSS`, KiB) of the process `pid` (`self`: this one), on Linux.
fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `store [SECONDS] [CAP_KIB] [--url BASE --polar POLAR_URL [--pid PID]]`: with `--url`,
/// against the relay at `BASE` (its store capped at `CAP_KIB`, its roster off and no
/// per-address or per-key limit, as `scripts/relay-attack-workerd.mjs` starts the npm relay),
/// the keys added to Polar through the emulator's admin routes, the relay's memory read from
/// `/proc/PID/status`.
pub fn store_table(args: &[String]) {
    let nums = super::crowds::numbers(args);
    let seconds = nums.first().copied().unwrap_or(20) as f64;
    let cap_kib: u64 = nums.get(1).copied().unwrap_or(1024);
    let cap = cap_kib * 1024;
    let pid = super::crowds::flag(args, "--pid").unwrap_or_else(|| "self".into());
    let target = super::crowds::Target::of(
        args,
        |polar_url| {
            let backend = Arc::new(MemoryBackend::new(1_000_000));
            let options = rig::flood_options(10_000_000, cap);
            let mut config = rig::config(polar_url, "flood-store");
            config.limits = rig::unlimited();
            config.client_ip_header = Some("x-forwarded-for".into());
            let stored: Arc<dyn Backend> = backend;
            config.store = rig::store(stored, options, None);
            rig::relay(config, rig::upstream(Duration::from_secs(10))).into()
        },
        ServeOptions::default(),
    );
    let known: Vec<String> = (0..20)
        .map(|i| format!("FLOOD-KNOWN-{i:02}-4A5B6C"))
        .collect();
    for k in &known {
        target.add_key(k, 3);
    }
    let bound = "FLOOD-BOUND-4A5B6C".to_string();
    target.add_key(&bound, 3);
    let base = target.base.clone();
    let agent = rig::agent(Duration::from_secs(30));
    let Some((_, option)) = store_bytes(&agent, &base) else {
        eprintln!("relay_attack: store: the relay at {base} tells no store bytes on /healthz");
        std::process::exit(2);
    };
    // The cap in force: the option, but never below one entry at its largest (the store's
    // floor, whatever the option says).
    let floor = (polar_license_relay::store::MAX_ENTRY_BYTES
        + polar_license_relay::store::ENTRY_OVERHEAD) as u64;
    let max_bytes = option.max(floor);
    for k in &known {
        let (a, _) = validate(&agent, &base, k, Value::Null, "192.0.2.1");
        assert_eq!(a.status, 200, "{k}: {}", a.body);
    }
    // One activation bound to its conditions, at Polar.
    let activated = rig::post_with(
        &agent,
        &format!("{}{}activate", target.polar, rig::PUBLIC),
        &json!({"key": bound, "organization_id": DEMO_ORGANIZATION_ID, "label": "flood",
                "conditions": {"machine": "m-1"}})
        .to_string(),
        &[],
    );
    assert_eq!(activated.status, 200, "{}", activated.body);
    let activation: Value = serde_json::from_str(&activated.body).unwrap_or_default();
    let activation_id = activation["id"].as_str().unwrap_or_default().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let flood = Arc::new(Mutex::new(Tally::default()));
    let checks = Arc::new(Mutex::new(Tally::default()));
    let sources = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let most = Arc::new(Mutex::new((0u64, 0u64)));
    let rss_start = rss_of(&pid);
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (agent, base, flood) = (agent.clone(), base.clone(), Arc::clone(&flood));
        threads.push(looped(&stop, None, move |i| {
            let from = format!("10.{t}.{}.{}", (i / 256) % 256, i % 256);
            let key = format!("FLOOD-NEW-{t}-{i:07}-4A5B6C");
            let (a, took) = validate(&agent, &base, &key, Value::Null, &from);
            flood.lock().expect("tally").add(a.status, took);
        }));
    }
    {
        let (agent, base, flood) = (agent.clone(), base.clone(), Arc::clone(&flood));
        let (bound, activation_id) = (bound.clone(), activation_id.clone());
        threads.push(looped(&stop, None, move |i| {
            let extra = json!({"activation_id": activation_id,
                               "conditions": {"machine": format!("m-forged-{i}"), "pad": "x".repeat(400)}});
            let from = format!("10.9.{}.{}", (i / 256) % 256, i % 256);
            let (a, took) = validate(&agent, &base, &bound, extra, &from);
            flood.lock().expect("tally").add(a.status, took);
        }));
    }
    {
        let (agent, base, checks, sources) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&checks),
            Arc::clone(&sources),
        );
        let known = known.clone();
        threads.push(looped(&stop, Some(Duration::from_millis(50)), move |i| {
            let k = &known[i as usize % known.len()];
            let (a, took) = validate(&agent, &base, k, Value::Null, "192.0.2.2");
            checks.lock().expect("tally").add(a.status, took);
            *sources
                .lock()
                .expect("sources")
                .entry(a.source.unwrap_or_else(|| "-".into()))
                .or_default() += 1;
        }));
    }
    {
        let (agent, base, most, pid) =
            (agent.clone(), base.clone(), Arc::clone(&most), pid.clone());
        threads.push(looped(&stop, Some(Duration::from_millis(50)), move |_| {
            let bytes = store_bytes(&agent, &base).map_or(0, |b| b.0);
            let rss = rss_of(&pid).unwrap_or(0);
            let mut m = most.lock().expect("most");
            m.0 = m.0.max(bytes);
            m.1 = m.1.max(rss);
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let (most_bytes, most_rss) = *most.lock().expect("most");
    let end_bytes = store_bytes(&agent, &base).map_or(0, |b| b.0);
    let flood = flood.lock().expect("tally");
    let mut checks = checks.lock().expect("tally");
    let sources: Vec<String> = sources
        .lock()
        .expect("sources")
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    println!(
        "The store's byte cap under a flood of new keys and new conditions ({seconds} s, cap \
         {max_bytes} bytes, roster off, no per-address or per-key limit; the relay {}; its \
         bytes read from /healthz every 50 ms):\n",
        target.named()
    );
    super::table_head(&[
        "flood requests sent",
        "their answers",
        "store's most bytes (cap)",
        "store at the end",
        "most RSS (at the start)",
        "within the cap, known checks all 200",
        "known checks sent",
        "answered 200",
        "their sources",
        "known checks p50 / p99 / max",
    ]);
    println!(
        "| {} ({:.0}/s) | {} | {most_bytes} ({max_bytes}) | {end_bytes} bytes | {} MiB ({} MiB) | {} | {} | {} ({}) | {} | {} |",
        flood.sent(),
        flood.sent() as f64 / seconds,
        flood.answers(),
        most_rss / 1024,
        rss_start.unwrap_or(0) / 1024,
        super::crowds::verdict(most_bytes > 0 && most_bytes <= max_bytes && checks.of(200) == checks.sent()),
        checks.sent(),
        checks.of(200),
        super::pct(checks.of(200), checks.sent()),
        sources.join(", "),
        checks.latency(),
    );
    target.stop();
}

/// A seat request `op` with `body` from `from`, timed: the status and body.
fn seat(
    agent: &ureq::Agent,
    base: &str,
    op: &str,
    body: &Value,
    from: &str,
) -> (u16, Value, Duration) {
    let t = Instant::now();
    let a = rig::post_with(
        agent,
        &format!("{base}{SEATS_PREFIX}{op}"),
        &body.to_string(),
        // The client's address as a proxy writes it (natively read from `x-forwarded-for`,
        // as configured; under workerd from `cf-connecting-ip`, as Cloudflare's edge writes it).
        &[("x-forwarded-for", from), ("cf-connecting-ip", from)],
    );
    let v = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    (a.status, v, t.elapsed())
}

fn seat_body(key: &str, machine: &str, seat: Option<&str>) -> Value {
    let mut body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "machine": machine});
    if let Some(s) = seat {
        body["seat"] = json!(s);
    }
    body
}

/// `seats [SECONDS] [--url BASE]`: with `--url`, against the relay at `BASE` (the npm relay
/// under workerd: `scripts/relay-attack-workerd.mjs` starts it, its defaults and seats on, and
/// adds the same keys to its Polar first).
pub fn seats_table(args: &[String]) {
    let remote = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let seconds: f64 = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let names = (
        "SEATFLOOD-TARGET-4A5B6C".to_string(),
        (0..8)
            .map(|i| format!("SEATFLOOD-OTHER-{i}-4A5B6C"))
            .collect::<Vec<_>>(),
        (0..20)
            .map(|i| format!("SEATFLOOD-KNOWN-{i:02}-4A5B6C"))
            .collect::<Vec<_>>(),
    );
    let (flooded, others, known) = names;
    let local = match &remote {
        Some(_) => None,
        None => {
            let polar = rig::emulator();
            rig::add_key(&polar, flooded.clone(), Some(5));
            for k in &others {
                rig::add_key(&polar, k.clone(), Some(2));
            }
            for k in &known {
                rig::add_key(&polar, k.clone(), Some(3));
            }
            let mut config = rig::config(polar.url(), "flood-seats");
            config.limits = Limits::default();
            config.client_ip_header = Some("x-forwarded-for".into());
            config.store = rig::store(rig::memory(10_000), StoreOptions::default(), None);
            let relay = rig::relay(config, rig::upstream(Duration::from_secs(10)))
                .with_seats(SeatOptions::default())
                .expect("seat options");
            Some((polar, rig::listen(relay, ServeOptions::default())))
        }
    };
    let base = match (&remote, &local) {
        (Some(url), _) => url.clone(),
        (None, Some((_, relay))) => relay.url(),
        (None, None) => return,
    };
    let agent = rig::agent(Duration::from_secs(30));
    for (i, k) in known.iter().enumerate() {
        let (a, _) = validate(
            &agent,
            &base,
            k,
            Value::Null,
            &format!("192.0.2.{}", 100 + i),
        );
        assert_eq!(a.status, 200, "{k}: {}", a.body);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flood = Arc::new(Mutex::new(Tally::default()));
    let ops = Arc::new(Mutex::new(Tally::default()));
    let checks = Arc::new(Mutex::new(Tally::default()));
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (agent, base, flood, key) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&flood),
            flooded.clone(),
        );
        threads.push(looped(&stop, None, move |i| {
            let from = format!("10.{t}.{}.{}", (i / 256) % 256, i % 256);
            let body = seat_body(&key, &format!("flood-{t}-{i}"), None);
            let (status, _, took) = seat(&agent, &base, "acquire", &body, &from);
            flood.lock().expect("tally").add(status, took);
        }));
    }
    {
        // Each other key in turn: acquire, heartbeat, release (one address a key).
        let (agent, base, ops, others) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&ops),
            others.clone(),
        );
        let mut held: Vec<Option<String>> = vec![None; others.len()];
        let mut step = vec![0u8; others.len()];
        threads.push(looped(&stop, Some(Duration::from_millis(50)), move |i| {
            let n = i as usize % others.len();
            let from = format!("192.0.2.{}", 10 + n);
            let machine = format!("team-{n}");
            let (op, body) = match (step[n], &held[n]) {
                (1, Some(s)) => ("heartbeat", seat_body(&others[n], &machine, Some(s))),
                (2, Some(s)) => ("release", seat_body(&others[n], &machine, Some(s))),
                _ => ("acquire", seat_body(&others[n], &machine, None)),
            };
            let (status, v, took) = seat(&agent, &base, op, &body, &from);
            ops.lock().expect("tally").add(status, took);
            match (op, status) {
                ("acquire", 200) => {
                    held[n] = v["seat"].as_str().map(str::to_string);
                    step[n] = 1;
                }
                ("heartbeat", 200) => step[n] = 2,
                ("release", _) => {
                    held[n] = None;
                    step[n] = 0;
                }
                _ => {}
            }
        }));
    }
    {
        let (agent, base, checks, known) = (
            agent.clone(),
            base.clone(),
            Arc::clone(&checks),
            known.clone(),
        );
        threads.push(looped(&stop, Some(Duration::from_millis(250)), move |i| {
            let k = &known[i as usize % known.len()];
            let (a, took) = validate(&agent, &base, k, Value::Null, "192.0.2.200");
            checks.lock().expect("tally").add(a.status, took);
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut flood = flood.lock().expect("tally");
    let mut ops = ops.lock().expect("tally");
    let mut checks = checks.lock().expect("tally");
    println!(
        "A flood of acquisitions on one key of 5 seats from new addresses ({seconds} s; the relay's \
         default limits and seat options; the relay {}):\n",
        remote.as_deref().unwrap_or("in this process")
    );
    super::table_head(&[
        "flood acquisitions sent",
        "their answers",
        "flood p50 / p99 / max",
        "other keys' seat operations",
        "answered 200",
        "their p50 / p99 / max",
        "checks sent",
        "answered 200",
        "checks p50 / p99 / max",
        "target",
    ]);
    // Issue #67's done-when: the flood gets no more than the key's 5 seats, and every other
    // key's seat operation and every check is answered 200 throughout.
    let met = flood.of(200) <= 5
        && ops.sent() > 0
        && ops.of(200) == ops.sent()
        && checks.sent() > 0
        && checks.of(200) == checks.sent();
    println!(
        "| {} ({:.0}/s) | {} | {} | {} | {} ({}) | {} | {} | {} ({}) | {} | {} |",
        flood.sent(),
        flood.sent() as f64 / seconds,
        flood.answers(),
        flood.latency(),
        ops.sent(),
        ops.of(200),
        super::pct(ops.of(200), ops.sent()),
        ops.latency(),
        checks.sent(),
        checks.of(200),
        super::pct(checks.of(200), checks.sent()),
        checks.latency(),
        super::crowds::verdict(met),
    );
    if let Some((_, relay)) = local {
        relay.stop();
    }
}
