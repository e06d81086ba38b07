//! The whole benchmark of issue #45's first "done when", in one run: the attack's load
//! throughout (known customers' validates at 24 times the budget, random keys at 10 times on
//! validate and 10 times on activate from 64 addresses, a new customer buying and activating
//! every 0.4 s, a signed webhook every second) against the relay with its store in a redb
//! file and the roster on, through six phases:
//!
//! 1. Polar up;
//! 2. Polar answering every call after 20 s (the emulator's `Delay` fault);
//! 3. Polar gone: its port refuses connections ([`Proxy`] closed; the emulator keeps its
//!    state and keeps delivering webhooks, so a few known keys are revoked then, and their
//!    `benefit_grant.revoked` reaches the relay while Polar's API is gone);
//! 4. the relay stopped and started again on the same file and listener (`serve_on`: the
//!    socket is kept across the restart, as systemd's socket activation keeps it, so the
//!    connections that arrive meanwhile wait in the kernel's queue), Polar still gone;
//! 5. Polar back;
//! 6. the relay restarted again, Polar up.
//!
//! Per phase: what the known customers, the new customers, the guesses and the webhooks got,
//! how fast, the calls that reached Polar (the most in any window of Polar's) and Polar's
//! 429s; then each target of the issue, met or missed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use polar_license_emulator::{
    Emulator, Fault, KeyUpdate, SeedKey, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
};
use polar_license_relay::store::{RedbBackend, StoreOptions};
use polar_license_relay::{serve_on, Relay, Running, ServeOptions};
use serde_json::json;

use super::proxy::Proxy;
use super::{
    attack_polar, attack_store, breaker, guesses, known_checks, known_key, pct, post_from, rig,
    runtime, table_head, warm_up, webhook, Posted,
};

/// Known keys revoked while Polar is gone (keys 0 to 5).
const REVOKED: usize = 6;

/// How long a client waits for an answer in all (the clients' 10 s): a later one is none.
const PATIENCE: Duration = Duration::from_secs(10);

/// The run's lengths and scale, from `key=value` arguments.
pub struct Args {
    /// Polar's minute and the store's windows scaled by this (0.1: a 6 s minute).
    scale: f64,
    /// Polar's budget a window (the emulator's and the relay's).
    budget: u32,
    /// Known customers (their keys in Polar, checked once before the load).
    keys: usize,
    /// Seconds of each phase: Polar up, slow, gone, after each restart, back.
    up: f64,
    slow: f64,
    gone: f64,
    restart: f64,
    back: f64,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut a = Args {
            scale: 0.1,
            budget: 100,
            keys: super::KNOWN,
            up: 45.0,
            slow: 60.0,
            gone: 30.0,
            restart: 20.0,
            back: 45.0,
        };
        for arg in args {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| format!("{arg}: expected KEY=VALUE"))?;
            let n: f64 = v.parse().map_err(|_| format!("{arg}: not a number"))?;
            match k {
                "scale" => a.scale = n,
                "budget" => a.budget = n as u32,
                "keys" if n >= 1.0 => a.keys = n as usize,
                "keys" => return Err(format!("{arg}: at least 1 key")),
                "up" => a.up = n,
                "slow" => a.slow = n,
                "gone" => a.gone = n,
                "restart" => a.restart = n,
                "back" => a.back = n,
                _ => {
                    return Err(format!(
                        "{arg}: unknown (scale, budget, keys, up, slow, gone, restart, back)"
                    ))
                }
            }
        }
        Ok(a)
    }

    fn window(&self) -> Duration {
        Duration::from_secs_f64(60.0 * self.scale)
    }
}

/// The phases, in order: their names and what Polar does in them.
const PHASES: [(&str, &str); 6] = [
    ("Polar up", "answers"),
    ("Polar slow", "after 20 s"),
    ("Polar gone", "refused"),
    ("relay restarted", "refused"),
    ("Polar back", "answers"),
    ("relay restarted", "answers"),
];

/// What one phase saw.
#[derive(Default)]
struct Tally {
    started: Option<Instant>,
    ended: Option<Instant>,
    /// Answers to requests sent from here count as the phase's first (a restart: once the
    /// relay had stopped).
    cutoff: Option<Instant>,
    /// Known keys' checks: sent; 200 from Polar or from the store within `--fresh-for`;
    /// 200 `stale`; another answer; no answer within the client's 10 s (or none at all).
    known: u64,
    verdict: u64,
    stale: u64,
    other: u64,
    none: u64,
    stale_ms: Vec<u64>,
    /// Revoked keys' checks sent once their revocation was acknowledged, and those granted.
    revoked: u64,
    revoked_granted: u64,
    guesses: u64,
    guesses_polar: u64,
    new: u64,
    new_polar: u64,
    /// The benchmark's signed webhooks: status (0: no connection) and ms.
    hooks: Vec<(u16, u64)>,
    /// The first answer (any status) and the first of Polar's verdicts (`polar`, 200 or 404)
    /// to a known key's check sent after `cutoff`.
    first_answer: Option<Instant>,
    first_polar: Option<Instant>,
    polar_429: u64,
    breaker: String,
    /// Known keys' other answers and new customers' answers not Polar's, by kind, status
    /// and source.
    seen: std::collections::BTreeMap<String, u64>,
}

/// `who`'s answer as the breakdown names it: `who STATUS source`, or `who none`.
fn kind(who: &str, answer: &Option<(u16, Option<String>)>) -> String {
    match answer {
        Some((status, source)) => {
            format!(
                "{who} {status} {}",
                source.as_deref().unwrap_or("(no source)")
            )
        }
        None => format!("{who} none"),
    }
}

struct Shared {
    phase: AtomicUsize,
    stop: Arc<AtomicBool>,
    tallies: Vec<Mutex<Tally>>,
    /// Revoked keys' checks sent from then on count as such.
    revoked_from: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn tally_of(&self, phase: usize) -> MutexGuard<'_, Tally> {
        lock(&self.tallies[phase])
    }

    /// The phase under way at `at`.
    fn phase_at(&self, at: Instant) -> usize {
        (0..self.tallies.len())
            .rev()
            .find(|p| self.tally_of(*p).started.is_some_and(|s| s <= at))
            .unwrap_or(0)
    }

    fn begin(&self, phase: usize) {
        let now = Instant::now();
        if let Some(last) = phase.checked_sub(1) {
            self.tally_of(last).ended = Some(now);
        }
        {
            let mut t = self.tally_of(phase);
            t.started = Some(now);
            t.cutoff = Some(now);
        }
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// A known key's check sent at `sent` in `phase`: its answer.
    fn known(&self, phase: usize, i: usize, sent: Instant, answer: Option<(u16, Option<String>)>) {
        let took = sent.elapsed();
        let answer = answer.filter(|_| took <= PATIENCE);
        let revoked = i < REVOKED && lock(&self.revoked_from).is_some_and(|from| sent >= from);
        let mut t = self.tally_of(phase);
        if let Some((status, source)) = &answer {
            if t.cutoff.is_some_and(|c| sent >= c) {
                let now = Instant::now();
                t.first_answer.get_or_insert(now);
                // Polar's verdict, not a refusal of the relay's own (429, 502).
                if source.as_deref() == Some("polar") && matches!(status, 200 | 404) {
                    t.first_polar.get_or_insert(now);
                }
            }
            if revoked {
                t.revoked += 1;
                t.revoked_granted += u64::from(*status == 200);
                return;
            }
        }
        if revoked {
            return;
        }
        t.known += 1;
        let seen = kind("known", &answer);
        match answer {
            None => {
                t.none += 1;
                *t.seen.entry(seen).or_default() += 1;
            }
            Some((200, Some(s))) if s == "polar" || s == "store" => t.verdict += 1,
            Some((200, Some(s))) if s == "stale" => {
                t.stale += 1;
                t.stale_ms.push(took.as_millis() as u64);
            }
            Some(_) => {
                t.other += 1;
                *t.seen.entry(seen).or_default() += 1;
            }
        }
    }
}

/// The relay over the store file at `path`, calling Polar at `polar_url`, on a copy of
/// `listener` (the run keeps it: across a restart the port stays open and the connections
/// wait in its queue).
fn start_relay(
    path: &Path,
    store: &StoreOptions,
    secret: &str,
    polar_url: &str,
    listener: &std::net::TcpListener,
) -> Running {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The file is closed once the last run's server has let go of the relay.
        let opened = RedbBackend::open(path, 1_000_000)
            .map_err(|e| e.0)
            .and_then(|backend| {
                let mut config = rig::config(polar_url.to_string(), "attack");
                config.store = rig::store(Arc::new(backend), store.clone(), Some(secret.into()));
                // The breaker's longest wait, 30 s, scaled as Polar's minute (half of it).
                config.breaker.open_for_ms = store.budget_window_ms / 2;
                // The relay's defaults: 10 s a call, 8 calls at once, the breaker's 5.
                let relay = Relay::new(config, Box::new(rig::upstream(Duration::from_secs(10))))
                    .map_err(|e| format!("{e:?}"))?;
                let handed = listener.try_clone().map_err(|e| e.to_string())?;
                serve_on(Arc::new(relay), handed, ServeOptions::default())
                    .map_err(|e| e.to_string())
            });
        match opened {
            Ok(running) => return running,
            Err(e) if Instant::now() < deadline => {
                eprintln!("the relay starts again: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the relay does not start again: {e}"),
        }
    }
}

/// How many deliveries Polar (the emulator) made to its endpoint `id` that match `query`.
fn deliveries(polar: &Emulator, id: &str, query: &str) -> u64 {
    let listed: serde_json::Value = rig::agent(Duration::from_secs(10))
        .get(&format!(
            "{}/v1/webhooks/deliveries?endpoint_id={id}&limit=1&{query}",
            polar.url()
        ))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    listed["pagination"]["total_count"].as_u64().unwrap_or(0)
}

/// Every load thread of the run, started: they stop with `shared.stop`.
fn load(
    shared: &Arc<Shared>,
    polar: &Arc<Emulator>,
    to: SocketAddr,
    per_window: f64,
    secret: &str,
    keys: usize,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    // Known customers: 24 times the budget, 4 threads.
    for t in 0..4u64 {
        let (shared, stop) = (Arc::clone(shared), Arc::clone(&shared.stop));
        let each = move |i, sent, answer| {
            // The phase it was sent in.
            let phase = shared.phase_at(sent);
            shared.known(phase, i, sent, answer);
        };
        threads.push(known_checks(
            t,
            24.0 * per_window / 4.0,
            to,
            stop,
            keys,
            each,
        ));
    }
    // Guesses: 10 times the budget on validate and 10 on activate, from 64 addresses.
    for t in 0..4u8 {
        let (shared, stop) = (Arc::clone(shared), Arc::clone(&shared.stop));
        let each = move |answer: Posted| {
            let mut tally = shared.tally_of(shared.phase.load(Ordering::SeqCst));
            tally.guesses += 1;
            if answer.is_some_and(|(s, src)| s == 404 && src.as_deref() == Some("polar")) {
                tally.guesses_polar += 1;
            }
        };
        threads.push(guesses(t, 20.0 * per_window / 4.0, to, stop, each));
    }
    // New customers: one buys every 400 ms (Polar's `benefit_grant.created` to the relay)
    // and activates 300 ms later, once, from 127.0.0.2, on a thread of its own (a slow
    // answer holds no other customer back).
    {
        let (shared, polar) = (Arc::clone(shared), Arc::clone(polar));
        threads.push(std::thread::spawn(move || {
            let mut buyers = Vec::new();
            let mut i = 0;
            while !shared.stop.load(Ordering::Relaxed) {
                let key = format!("NEWBUYER-{i:06}-7D8E9F");
                i += 1;
                let bought = polar.add_key(SeedKey {
                    limit_activations: Some(3),
                    ..SeedKey::new(&key)
                });
                if bought.is_err() {
                    std::thread::sleep(Duration::from_millis(400));
                    continue;
                }
                let shared = Arc::clone(&shared);
                buyers.push(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    let rt = runtime();
                    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID,
                                      "label": "new"});
                    let phase = shared.phase.load(Ordering::SeqCst);
                    let sent = Instant::now();
                    let from = Ipv4Addr::new(127, 0, 0, 2);
                    let answer = post_from(&rt, from, to, "activate", &body);
                    let answer = answer.filter(|_| sent.elapsed() <= PATIENCE);
                    let polar = answer
                        .as_ref()
                        .is_some_and(|(s, src)| *s == 200 && src.as_deref() == Some("polar"));
                    let mut tally = shared.tally_of(phase);
                    tally.new += 1;
                    tally.new_polar += u64::from(polar);
                    if !polar {
                        *tally.seen.entry(kind("new", &answer)).or_default() += 1;
                    }
                }));
                buyers.retain(|b| !b.is_finished());
                std::thread::sleep(Duration::from_millis(400));
            }
            for b in buyers {
                let _ = b.join();
            }
        }));
    }
    // A signed webhook every second (a grant update naming no key: it changes nothing).
    {
        let shared = Arc::clone(shared);
        let secret = secret.to_string();
        let url = format!("http://{to}");
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                n += 1;
                let phase = shared.phase.load(Ordering::SeqCst);
                let (status, took) = webhook(&url, &secret, &format!("msg_bench_{n}"));
                let ms = took.as_millis() as u64;
                shared.tally_of(phase).hooks.push((status, ms));
            }
        }));
    }
    threads
}

/// The `q` quantile of `sorted` ms.
fn q_ms(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[at])
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("{v} ms"))
}

/// The most of `calls` in any `window` that begins in `[from, to)`.
fn most_in_window(calls: &[Instant], window: Duration, from: Instant, to: Instant) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (i, t) in calls.iter().enumerate() {
        if *t < from || *t >= to {
            continue;
        }
        end = end.max(i);
        while end < calls.len() && calls[end].duration_since(*t) < window {
            end += 1;
        }
        most = most.max(end - i);
    }
    most
}

/// What a restart measured: when the stop began, when the relay had stopped, when it
/// listened again.
struct Restart {
    began: Instant,
    stopped: Instant,
    listening: Instant,
}

/// The relay's log lines (info and above) to the file named by `RELAY_ATTACK_LOG`, each with
/// the ms since the run began: what answered each check (`stale`, and why Polar was not
/// asked), to diagnose a phase.
struct FileLog {
    began: Instant,
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl log::Log for FileLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record) {
        use std::io::Write;
        if self.enabled(r.metadata()) {
            let ms = self.began.elapsed().as_millis();
            let _ = writeln!(lock(&self.out), "{ms} {}", r.args());
        }
    }

    fn flush(&self) {
        use std::io::Write;
        let _ = lock(&self.out).flush();
    }
}

/// Logs to `RELAY_ATTACK_LOG` when it names a file.
fn log_to_file() {
    let Some(path) = std::env::var_os("RELAY_ATTACK_LOG") else {
        return;
    };
    let file = std::fs::File::create(&path).expect("the log file");
    let log = FileLog {
        began: Instant::now(),
        out: Mutex::new(std::io::BufWriter::new(file)),
    };
    if log::set_logger(Box::leak(Box::new(log))).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

pub fn run(args: &Args) {
    log_to_file();
    let window = args.window();
    let budget = args.budget;
    // Polar's own 10 s for a webhook.
    let (polar, endpoint_id, secret) =
        attack_polar(budget, args.scale, Duration::from_secs(10), args.keys);
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], polar.port()))).expect("proxy");
    let dir = polar_license_testkit::ScratchDir::new("relay-attack");
    let path = dir.path().join("store.redb");
    let store = attack_store(args.scale, budget, true);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let first = start_relay(&path, &store, &secret, &proxy.url(), &listener);
    let (url, port) = (first.url(), first.port());
    rig::point_endpoint_at(&polar, &endpoint_id, &first);
    let mut relay = Some(first);
    let to = SocketAddr::from(([127, 0, 0, 1], port));

    warm_up(&runtime(), to, args.keys);
    // Polar's window of the warm-up over.
    std::thread::sleep(window);
    let warm_429 = proxy.polar_429();

    let shared = Arc::new(Shared {
        phase: AtomicUsize::new(0),
        stop: Arc::new(AtomicBool::new(false)),
        tallies: (0..PHASES.len()).map(|_| Mutex::default()).collect(),
        revoked_from: Mutex::new(None),
    });
    let per_window = f64::from(budget) / window.as_secs_f64();
    shared.begin(0);
    let threads = load(&shared, &polar, to, per_window, &secret, args.keys);
    let lengths = [
        args.up,
        args.slow,
        args.gone,
        args.restart,
        args.back,
        args.restart,
    ];
    let mut restarts: Vec<Restart> = Vec::new();
    let mut revocation_acknowledged = None;
    let mut last_429 = warm_429;
    for (phase, seconds) in lengths.iter().enumerate() {
        let began = Instant::now();
        if phase > 0 {
            shared.begin(phase);
        }
        log::info!("relay_attack: phase {} begins", phase + 1);
        match phase {
            1 => polar.set_fault(Some(Fault::Delay { ms: 20_000 })),
            2 => {
                polar.set_fault(None);
                proxy.set_up(false);
                while proxy.listening() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Revoked now: Polar's webhooks reach the relay while its API is gone.
                for i in 0..REVOKED {
                    let revoked = KeyUpdate {
                        status: Some("revoked".into()),
                        ..KeyUpdate::default()
                    };
                    assert!(polar.update_key(&known_key(i), revoked), "revoked");
                }
                let delivered =
                    rig::wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
                        let revoked = "succeeded=true&event_type=benefit_grant.revoked";
                        deliveries(&polar, &endpoint_id, revoked) >= REVOKED as u64
                    });
                assert!(delivered, "the revocations were not delivered");
                revocation_acknowledged = Some(began.elapsed());
                *lock(&shared.revoked_from) = Some(Instant::now());
            }
            3 | 5 => {
                let stopping = Instant::now();
                if let Some(old) = relay.take() {
                    old.stop();
                }
                let stopped = Instant::now();
                {
                    // Only checks sent once it had stopped count for its first answer.
                    let mut t = shared.tally_of(phase);
                    t.cutoff = Some(stopped);
                    t.first_answer = None;
                    t.first_polar = None;
                }
                relay = Some(start_relay(&path, &store, &secret, &proxy.url(), &listener));
                restarts.push(Restart {
                    began: stopping,
                    stopped,
                    listening: Instant::now(),
                });
            }
            4 => {
                proxy.set_up(true);
                while !proxy.listening() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let now = Instant::now();
                shared.tally_of(phase).cutoff = Some(now);
            }
            _ => {}
        }
        let end = began + Duration::from_secs_f64(*seconds);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut t = shared.tally_of(phase);
        t.breaker = breaker(&url);
        let now_429 = proxy.polar_429();
        t.polar_429 = now_429 - last_429;
        last_429 = now_429;
    }
    shared.stop.store(true, Ordering::SeqCst);
    log::info!("relay_attack: the load ends");
    log::logger().flush();
    if let Some(last) = PHASES.len().checked_sub(1) {
        shared.tally_of(last).ended = Some(Instant::now());
    }
    for t in threads {
        let _ = t.join();
    }
    if let Some(relay) = relay {
        relay.stop();
    }
    let tries = deliveries(&polar, &endpoint_id, "");
    let failed_tries = deliveries(&polar, &endpoint_id, "succeeded=false");
    let mut calls = proxy.calls();
    calls.sort_unstable();
    report(
        args,
        &shared,
        &calls,
        &restarts,
        revocation_acknowledged,
        warm_429,
        (tries, failed_tries),
    );
}

fn report(
    args: &Args,
    shared: &Shared,
    calls: &[Instant],
    restarts: &[Restart],
    revocation_acknowledged: Option<Duration>,
    warm_429: u64,
    (tries, failed_tries): (u64, u64),
) {
    let window = args.window();
    let budget = args.budget as usize;
    let header = [
        "phase",
        "Polar",
        "length",
        "known checks",
        "Polar's verdict within `--fresh-for`",
        "`stale` (200)",
        "other answer / none in 10 s",
        "`stale` p50 / p99 / max",
        "new customers' activations answered by Polar",
        "guesses (Polar's answers)",
        "webhooks 200 / sent, p99 / max",
        "most calls reaching Polar in a window",
        "Polar's 429s",
        "first answer / first of Polar's",
        "breaker at the end",
    ];
    table_head(&header);
    let mut most_all = 0;
    let mut all_429 = warm_429;
    for (phase, (name, polar)) in PHASES.iter().enumerate() {
        let mut t = shared.tally_of(phase);
        let (Some(started), Some(ended)) = (t.started, t.ended) else {
            continue;
        };
        t.stale_ms.sort_unstable();
        let mut hook_ms: Vec<u64> = t.hooks.iter().filter(|h| h.0 == 200).map(|h| h.1).collect();
        hook_ms.sort_unstable();
        let most = most_in_window(calls, window, started, ended);
        most_all = most_all.max(most);
        all_429 += t.polar_429;
        let since = |at: Option<Instant>| {
            at.map_or("-".into(), |at| {
                format!("{:.1} s", at.duration_since(started).as_secs_f64())
            })
        };
        let row = [
            format!("{}. {name}", phase + 1),
            polar.to_string(),
            format!("{:.0} s", ended.duration_since(started).as_secs_f64()),
            t.known.to_string(),
            pct(t.verdict, t.known),
            pct(t.stale, t.known),
            format!("{} / {}", t.other, t.none),
            format!(
                "{} / {} / {}",
                ms(q_ms(&t.stale_ms, 0.5)),
                ms(q_ms(&t.stale_ms, 0.99)),
                ms(q_ms(&t.stale_ms, 1.0))
            ),
            format!("{} of {} ({})", t.new_polar, t.new, pct(t.new_polar, t.new)),
            format!("{} ({})", t.guesses, t.guesses_polar),
            format!(
                "{} / {}, {} / {}",
                hook_ms.len(),
                t.hooks.len(),
                ms(q_ms(&hook_ms, 0.99)),
                ms(q_ms(&hook_ms, 1.0))
            ),
            format!("{most} (budget {budget})"),
            t.polar_429.to_string(),
            format!("{} / {}", since(t.first_answer), since(t.first_polar)),
            t.breaker.clone(),
        ];
        println!("| {} |", row.join(" | "));
    }

    println!();
    println!("Answers other than Polar's verdict or `stale` to known keys, and other than Polar's to new customers' activations (kind, status, `polar-license-source`):");
    println!();
    for (phase, (name, _)) in PHASES.iter().enumerate() {
        let t = shared.tally_of(phase);
        let seen: Vec<String> = t.seen.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        if !seen.is_empty() {
            println!("- {}. {name}: {}", phase + 1, seen.join("; "));
        }
    }

    // The targets.
    let sum = |phases: &[usize], f: &dyn Fn(&Tally) -> u64| -> u64 {
        phases.iter().map(|p| f(&shared.tally_of(*p))).sum()
    };
    let answering = [0, 4, 5];
    let (known, verdict) = (
        sum(&answering, &|t| t.known),
        sum(&answering, &|t| t.verdict),
    );
    let (new, new_polar) = (
        sum(&answering, &|t| t.new),
        sum(&answering, &|t| t.new_polar),
    );
    let away = [1, 2, 3];
    let mut stale: Vec<u64> = away
        .iter()
        .flat_map(|p| shared.tally_of(*p).stale_ms.clone())
        .collect();
    stale.sort_unstable();
    let stale_p99 = q_ms(&stale, 0.99);
    let hooks: Vec<(u16, u64)> = (0..PHASES.len())
        .flat_map(|p| shared.tally_of(p).hooks.clone())
        .collect();
    let refused = hooks.iter().filter(|h| h.0 == 0).count();
    let answered: Vec<&(u16, u64)> = hooks.iter().filter(|h| h.0 != 0).collect();
    let hooks_ok = answered
        .iter()
        .filter(|h| h.0 == 200 && h.1 <= 2_000)
        .count();
    let hook_max = answered.iter().map(|h| h.1).max();
    let (revoked, revoked_granted) = (
        sum(&[3, 4, 5], &|t| t.revoked),
        sum(&[3, 4, 5], &|t| t.revoked_granted),
    );
    let (revoked_before, revoked_granted_before) =
        (sum(&[2], &|t| t.revoked), sum(&[2], &|t| t.revoked_granted));
    let met = |ok: bool| if ok { "met" } else { "**missed**" };

    println!();
    println!("| target (issue #45) | measured | |");
    println!("|---|---|---|");
    println!(
        "| Polar never over its budget | {all_429} of Polar's 429s; at most {most_all} calls reached Polar in a window of {:.0} s (budget {budget}) | {} |",
        window.as_secs_f64(),
        met(all_429 == 0 && most_all <= budget)
    );
    // After an outage longer than `--fresh-for` every known grant needs a refresh, and a window
    // holds at most B - ceil(R/2) of them (the refresh cap; R the reserve, a quarter of B).
    let refresh_cap = budget - (budget / 4).div_ceil(2);
    println!(
        "| ≥ 99 % of known keys' checks answered with Polar's verdict within `--fresh-for` (phases 1, 5, 6: Polar answering) | {verdict} of {known} ({}); {} known keys, a window holds {refresh_cap} refreshes | {} |",
        pct(verdict, known),
        args.keys,
        met(known > 0 && verdict * 100 >= known * 99)
    );
    println!(
        "| ≥ 95 % of new customers' activations answered by Polar (phases 1, 5, 6) | {new_polar} of {new} ({}) | {} |",
        pct(new_polar, new),
        met(new > 0 && new_polar * 100 >= new * 95)
    );
    println!(
        "| `stale` answers within 1 s (p99) while Polar is slow or gone (phases 2 to 4) | {} answers: p99 {}, max {} | {} |",
        stale.len(),
        ms(stale_p99),
        ms(q_ms(&stale, 1.0)),
        met(stale_p99.is_some_and(|p| p <= 1_000))
    );
    println!(
        "| every webhook answered within 2 s (the relay listening) | {hooks_ok} of {} answered 200 within 2 s, max {}; {refused} sent while a restarting relay's port was closed (Polar retries those) | {} |",
        answered.len(),
        ms(hook_max),
        met(!answered.is_empty() && hooks_ok == answered.len())
    );
    println!(
        "| revocations kept: a revoked key never granted once its webhook was answered | Polar gone: {revoked_granted_before} of {revoked_before} checks granted; after the restarts: {revoked_granted} of {revoked} | {} |",
        met(revoked > 0 && revoked_granted == 0 && revoked_granted_before == 0)
    );
    for (n, (r, phase)) in restarts.iter().zip([3usize, 5]).enumerate() {
        let t = shared.tally_of(phase);
        let first = t.first_answer.map(|a| a.duration_since(r.began));
        println!(
            "| answers resume after restart {} (Polar {}) | stopped in {} ms (in-flight answers drained), serving again {} ms later (the listener kept: connections queued meanwhile); first answer {} after the stop began | {} |",
            n + 1,
            PHASES[phase].1,
            r.stopped.duration_since(r.began).as_millis(),
            r.listening.duration_since(r.stopped).as_millis(),
            ms(first.map(|d| d.as_millis() as u64)),
            met(first.is_some())
        );
    }
    println!();
    println!(
        "Revocations: {REVOKED} known keys revoked at the start of phase 3; all {REVOKED} `benefit_grant.revoked` deliveries answered {} after it began. Polar's webhook deliveries: {tries} tries, {failed_tries} failed.",
        ms(revocation_acknowledged.map(|d| d.as_millis() as u64))
    );
}
