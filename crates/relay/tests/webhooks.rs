//! Forged webhook deliveries against the native relay over loopback HTTP (issue #52): one post
//! with an 8,000-byte `webhook-signature` of `v1,` entries and a 1 MiB body cost 4.7 s of CPU,
//! and eight at once made a stored answer wait 38 s. Attackers post from many 127.0.0.x
//! addresses while a client asks for a stored answer: it is answered as quickly as without
//! them, and Polar's own delivery, signed, is still applied.

mod rig;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polar_license_emulator::SeedKey;
use polar_license_relay::Running;

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

/// One forged `v1,` entry (a well-formed signature under no one's secret).
const FORGED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// A delivery posted raw from `from` (a 127.0.0.N address) to `to`: its status, or `None` when
/// the connection failed (the relay may answer and close before it read the whole body).
fn forge(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    signature: &str,
    body: &[u8],
) -> Option<u16> {
    let mut stream = rig::connect_from(runtime, from, to, Duration::from_secs(60))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         webhook-id: msg_forged\r\nwebhook-timestamp: {}\r\nwebhook-signature: {signature}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        rig::WEBHOOK,
        rig::now(),
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    // A write cut short by the relay's answer still leaves the answer to read.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A 1 MiB JSON body (an event no one sent).
fn huge_body() -> Vec<u8> {
    let mut body = br#"{"type":"benefit_grant.revoked","data":{"pad":""#.to_vec();
    body.resize(1024 * 1024 - 3, b'x');
    body.extend(b"\"}}");
    body
}

/// The relay with a store and the webhook secret, in front of `polar`, no rate limits.
fn start(polar: &polar_license_emulator::Emulator) -> Running {
    let mut config = rig::config(polar.url(), "hooks");
    config.limits = rig::unlimited();
    rig::listen_stored(config, SECRET)
}

/// `n` stored answers of `key`, asked one after another: each one's time, sorted.
fn stored_times(url: &str, key: &str, n: usize) -> Vec<Duration> {
    let agent = rig::agent(Duration::from_secs(120));
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let asked = Instant::now();
            let a = rig::validate_at(&agent, url, key, &[]);
            let took = asked.elapsed();
            assert_eq!((a.status, a.source.as_deref()), (200, Some("store")), "{i}");
            std::thread::sleep(Duration::from_millis(30));
            took
        })
        .collect();
    times.sort();
    times
}

/// Attackers on `threads` threads posting `signature` with a 1 MiB body, each from addresses
/// of its own (127.0.T.1 to 127.0.T.250 in turn: every address has failures left for a
/// while, the worst case for a per-address limit), while `during` runs: its result, and the
/// statuses the attackers got.
fn under_attack<T>(
    relay: SocketAddr,
    threads: u8,
    signature: &str,
    during: impl FnOnce() -> T,
) -> (T, Attack) {
    let body = Arc::new(huge_body());
    let stop = Arc::new(AtomicBool::new(false));
    let posts = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..threads)
        .map(|t| {
            let (body, stop, posts) = (body.clone(), stop.clone(), posts.clone());
            let signature = signature.to_string();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .expect("a runtime");
                let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
                let mut times = Vec::new();
                let mut n: u8 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let from = Ipv4Addr::new(127, 0, t + 1, n % 250 + 1);
                    n = n.wrapping_add(1);
                    let sent = Instant::now();
                    let status = forge(&runtime, from, relay, &signature, &body).unwrap_or(0);
                    times.push(sent.elapsed());
                    *statuses.entry(status).or_default() += 1;
                    posts.fetch_add(1, Ordering::Relaxed);
                }
                (statuses, times)
            })
        })
        .collect();
    // The attack under way: every thread's first post sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    while posts.load(Ordering::Relaxed) < u64::from(threads) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = during();
    stop.store(true, Ordering::Relaxed);
    let mut all = std::collections::BTreeMap::<u16, u64>::new();
    let mut times = Vec::new();
    for a in attackers {
        let (statuses, took) = a.join().expect("an attacker");
        for (status, n) in statuses {
            *all.entry(status).or_default() += n;
        }
        times.extend(took);
    }
    times.sort();
    (
        out,
        Attack {
            statuses: all.into_iter().collect(),
            times,
        },
    )
}

/// What the attackers got: how many of each status (0: the connection failed), and how long
/// each post took to be answered, sorted.
#[derive(Debug)]
struct Attack {
    statuses: Vec<(u16, u64)>,
    times: Vec<Duration>,
}

fn median(times: &[Duration]) -> Duration {
    times[times.len() / 2]
}

/// Eight attackers post the issue's delivery (an 8,000-byte header of `v1,` entries, a 1 MiB
/// body), then eight post eight entries each (within the header's limits: two HMACs a post)
/// from addresses that have failures left, while a client asks for a stored answer ten times:
/// the median answer comes within 100 ms (measured about as fast as without the attack), none
/// waits a second, and the attackers got 400 (over the limits) and 401 (within them); then
/// Polar's signed delivery is applied. On the code before issue #52 the first stored answer
/// waited seconds (each forged post cost thousands of HMACs over its body).
#[test]
fn forged_deliveries_never_hold_up_a_stored_answer() {
    let polar = rig::emulator();
    let key = "HOOK-STORED-7C8D9E";
    polar.add_key(SeedKey::new(key)).expect("a key");
    let relay = start(&polar);
    let url = relay.url();
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let agent = rig::agent(Duration::from_secs(30));
    assert_eq!(rig::validate_at(&agent, &url, key, &[]).status, 200);

    let quiet = stored_times(&url, key, 10);
    let huge = vec![FORGED; 8_000 / (FORGED.len() + 1)].join(" ");
    assert!(huge.len() > 7_900, "{}", huge.len());
    let (over, over_attack) = under_attack(addr, 8, &huge, || stored_times(&url, key, 10));
    let within = [FORGED; 8].join(" ");
    let (under, under_attack) = under_attack(addr, 8, &within, || stored_times(&url, key, 10));
    eprintln!(
        "stored answers: quiet median {:?} max {:?}; under the issue's posts median {:?} max \
         {:?}; under eight-entry posts median {:?} max {:?}",
        median(&quiet),
        quiet[9],
        median(&over),
        over[9],
        median(&under),
        under[9],
    );
    for (what, attack) in [
        ("the issue's posts", &over_attack),
        ("eight-entry posts", &under_attack),
    ] {
        eprintln!(
            "{what}: {:?}; answered in median {:?}, max {:?}",
            attack.statuses,
            median(&attack.times),
            attack.times.last()
        );
    }
    for (what, times, attack, refused, bound) in [
        (
            "an 8,000-byte header",
            &over,
            &over_attack,
            400,
            Duration::from_secs(2),
        ),
        (
            "eight entries",
            &under,
            &under_attack,
            401,
            Duration::from_secs(5),
        ),
    ] {
        // On a loaded 2-core machine a single answer may wait for the scheduler: the median
        // is held to the issue's 100 ms, every answer to a second (the old code: seconds).
        assert!(
            median(times) < Duration::from_millis(100),
            "{what}: {times:?} (quiet {quiet:?})"
        );
        assert!(
            times[9] < Duration::from_secs(1),
            "{what}: {times:?} (quiet {quiet:?})"
        );
        // The work a forged post costs, bounded: answered (refused) within 2 s for the issue's
        // header (no HMAC), within 5 s for eight entries (two HMACs over 1 MiB: about 0.2 s
        // in a debug build, and eight attackers share the relay's two webhook slots), the
        // sending of its 1 MiB included. Before issue #52 one post of the issue's header cost
        // 340 HMACs over its body: seconds of CPU.
        assert!(median(&attack.times) < bound, "{what}: {attack:?}");
        let statuses = &attack.statuses;
        assert!(
            statuses.iter().any(|(s, n)| *s == refused && *n > 0),
            "{what}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|(s, _)| [0, 400, 401, 429].contains(s)),
            "{what}: {statuses:?}"
        );
    }

    // Polar's delivery, signed, from the loopback address the attackers never used.
    let body = rig::grant_updated();
    let headers = rig::signed(SECRET, "msg_polar", rig::now(), &body);
    assert_eq!(rig::deliver_at(&agent, &url, &headers, &body), 200);
    relay.stop();
}
