//! Issue #62's rows of connections and deliveries from few addresses, each against the native
//! relay in this process or against a relay at a URL (`--url BASE --polar POLAR_URL`: the
//! native `relay serve` or the npm relay under workerd, `scripts/relay-attack-workerd.mjs`),
//! the keys each row needs added to Polar through the emulator's admin routes (so the same
//! code drives both). Each client's address is its socket's own (a `127.0.0.N` address, all of
//! 127/8 on lo) and is also sent in `cf-connecting-ip`, where Workers read it. Each row prints
//! its verdict (`met` or `MISSED`); a missed row makes the run exit 1.
//!
//! - **`office [N]`** (default 40): the relay's per-address request limits off (`--per-ip 0
//!   --per-key 0`, as a seller whose customers share offices sets them) and nothing else
//!   waiting; `N` connections from one address opened first, then a validate of a key of its
//!   own on each and Polar's signed delivery beside them on one more: met when every one is
//!   answered 200 (before issue #62, natively: 16 answers of 40, the delivery reset).
//! - **`crowd [ADDRESSES] [EACH]`** (defaults 16, 16): the relay's defaults; each of
//!   `ADDRESSES` addresses opens `EACH` connections that send a CORS preflight and then hold
//!   the connection idle, then another address validates: met when it is answered 200 (before
//!   issue #62, natively: 16 × 16 held all 256 connections, 0 of 25 answered for 25 s).
//! - **`hooks [FORGED]`** (default 15): the per-address limits off and every client one
//!   address (a proxy whose client header is not configured); a key checked (its grant
//!   stored), `FORGED` forged 2 KiB deliveries and a forged 1 MiB one from that address, then
//!   Polar revokes the key and delivers the signed revocation from the same address: met when
//!   the delivery is answered 200 and the next check is refused from the store (before issue
//!   #62: the revocation got 429, never heard).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_relay::{Running, ServeOptions};
use serde_json::{json, Value};

use super::rig;

/// The rows' webhook secret (the driver gives the npm relay the same).
pub(crate) const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

/// Set when a row missed its target: the run exits 1.
pub(crate) static MISSED: AtomicBool = AtomicBool::new(false);

/// `met`, or `MISSED` (and the run's exit code 1).
pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        MISSED.store(true, Ordering::Relaxed);
        "MISSED"
    }
}

/// The value after `name` among `args`.
pub(crate) fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The arguments before the first `--flag`.
pub(crate) fn positional(args: &[String]) -> Vec<String> {
    args.iter()
        .take_while(|a| !a.starts_with("--"))
        .cloned()
        .collect()
}

/// The numbers before the first `--flag`.
pub(crate) fn numbers(args: &[String]) -> Vec<u64> {
    positional(args)
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Where a row sends: the relay's base URL and Polar's (the emulator's, for its admin routes).
pub(crate) struct Target {
    pub(crate) base: String,
    pub(crate) polar: String,
    /// The relay and the emulator when they run in this process.
    local: Option<(polar_license_emulator::Emulator, Running)>,
}

impl Target {
    /// `--url BASE --polar POLAR_URL` among `args`, else the native relay of `config` (given the
    /// emulator's URL) served with `options` in this process.
    pub(crate) fn of(
        args: &[String],
        config: impl FnOnce(String) -> polar_license_relay::Relay,
        options: ServeOptions,
    ) -> Target {
        if let Some(base) = flag(args, "--url") {
            let Some(polar) = flag(args, "--polar") else {
                eprintln!(
                    "relay_attack: --url needs --polar POLAR_URL (the emulator's admin routes)"
                );
                std::process::exit(2);
            };
            return Target {
                base,
                polar,
                local: None,
            };
        }
        // Polar's token budget out of the way (the store row's flood asks for new keys as
        // fast as the relay answers), its webhooks scheduled at once.
        let polar = polar_license_emulator::Emulator::start(
            polar_license_emulator::Seed::demo(),
            polar_license_emulator::Options {
                token_budget: Some(10_000_000),
                webhooks: polar_license_emulator::WebhookOptions {
                    schedule_scale: 0.0001,
                    timeout: Duration::from_secs(5),
                },
                ..polar_license_emulator::Options::default()
            },
        )
        .expect("emulator");
        let relay = rig::listen(config(polar.url()), options);
        Target {
            base: relay.url(),
            polar: polar.url(),
            local: Some((polar, relay)),
        }
    }

    /// Where the relay is, as the tables say it.
    pub(crate) fn named(&self) -> String {
        match &self.local {
            Some(_) => "in this process".into(),
            None => self.base.clone(),
        }
    }

    /// The relay's socket address (its URL's host and port).
    fn address(&self) -> SocketAddr {
        let host = self
            .base
            .trim_start_matches("http://")
            .trim_end_matches('/');
        host.parse().unwrap_or_else(|e| {
            eprintln!("relay_attack: the relay's URL must be http://IP:PORT ({host}: {e})");
            std::process::exit(2);
        })
    }

    /// `key` added to Polar with `limit` activations (the emulator's admin route).
    pub(crate) fn add_key(&self, key: &str, limit: i64) {
        let a = rig::post_with(
            &rig::agent(Duration::from_secs(10)),
            &format!("{}/__emulator/keys", self.polar),
            &json!({"key": key, "limit_activations": limit}).to_string(),
            &[],
        );
        assert!(a.status < 300, "adding {key}: {} {}", a.status, a.body);
    }

    /// Polar's key `key` given `status` (`revoked`, `disabled`), telling no one.
    pub(crate) fn set_status(&self, key: &str, status: &str) {
        let code = rig::agent(Duration::from_secs(10))
            .patch(&format!("{}/__emulator/keys/{key}", self.polar))
            .header("content-type", "application/json")
            .send(json!({ "status": status }).to_string())
            .map_or(0, |r| r.status().as_u16());
        assert!(code < 300, "{key} {status}: {code}");
    }

    pub(crate) fn stop(self) {
        if let Some((_, relay)) = self.local {
            relay.stop();
        }
    }
}

/// The native relay with a store and [`SECRET`], the per-address and per-key limits off
/// unless `limited`.
fn stored_relay(polar_url: String, limited: bool) -> polar_license_relay::Relay {
    let mut config = rig::config(polar_url, "crowds");
    if !limited {
        config.limits = rig::unlimited();
    }
    config.store = rig::store(
        rig::memory(10_000),
        polar_license_relay::store::StoreOptions::default(),
        Some(SECRET.into()),
    );
    rig::relay(config, rig::upstream(Duration::from_secs(10))).into()
}

/// A request's raw bytes from `from` (its address also in `cf-connecting-ip`).
fn raw(
    to: SocketAddr,
    method: &str,
    path: &str,
    from: Ipv4Addr,
    headers: &[(String, String)],
    body: &str,
    close: bool,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {to}\r\ncf-connecting-ip: {from}\r\n\
         content-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.as_bytes().to_vec()].concat()
}

fn status_in(raw: &[u8]) -> u16 {
    String::from_utf8_lossy(raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn tally(statuses: &[u16]) -> String {
    let mut by = BTreeMap::new();
    for s in statuses {
        *by.entry(*s).or_insert(0u32) += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(s, n)| {
            if *s == 0 {
                format!("{n} × none")
            } else {
                format!("{n} × {s}")
            }
        })
        .collect();
    parts.join(", ")
}

/// `--url BASE --polar POLAR_URL` among `args`, else [`stored_relay`] (`limited`) served with
/// the default options in this process.
fn stored_target(args: &[String], limited: bool) -> Target {
    Target::of(
        args,
        |polar| stored_relay(polar, limited),
        ServeOptions::default(),
    )
}

/// `office [N] [--url BASE --polar POLAR_URL]`.
pub fn office_table(args: &[String]) {
    let n = numbers(args).first().copied().unwrap_or(40) as usize;
    let target = stored_target(args, false);
    let keys: Vec<String> = (0..n).map(|i| format!("OFFICE-{i:03}-4A5B6C")).collect();
    for k in &keys {
        target.add_key(k, 3);
    }
    let to = target.address();
    let rt = super::runtime();
    let office = Ipv4Addr::new(127, 0, 0, 2);
    let t = Instant::now();
    let open = |count: usize| -> Vec<Option<std::net::TcpStream>> {
        (0..count)
            .map(|_| rig::connect_from(&rt, office, to, Duration::from_secs(30)))
            .collect()
    };
    let mut checks = open(n);
    let mut hook = open(1);
    for (stream, key) in checks.iter_mut().zip(&keys) {
        let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string();
        if let Some(s) = stream {
            let path = format!("{}validate", rig::PUBLIC);
            let _ = s.write_all(&raw(to, "POST", &path, office, &[], &body, true));
        }
    }
    let body = rig::grant_updated();
    let headers = rig::signed(SECRET, "msg_office", rig::now(), &body);
    if let Some(s) = &mut hook[0] {
        let _ = s.write_all(&raw(
            to,
            "POST",
            rig::WEBHOOK,
            office,
            &headers,
            &body,
            true,
        ));
    }
    let read = |s: &mut Option<std::net::TcpStream>| s.as_mut().map_or(0, rig::status_of);
    let statuses: Vec<u16> = checks.iter_mut().map(read).collect();
    let delivered = read(&mut hook[0]);
    let took = t.elapsed();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    println!(
        "{n} clients at once from one address, per-address limits off, the relay {}:\n",
        target.named()
    );
    super::table_head(&[
        "validates",
        "their answers",
        "the delivery beside them",
        "all answered in",
        "every one 200",
    ]);
    println!(
        "| {n} | {} | {delivered} | {:.0} ms | {} |",
        tally(&statuses),
        took.as_secs_f64() * 1e3,
        verdict(ok == n && delivered == 200)
    );
    target.stop();
}

/// A connection from `from` that sends a CORS preflight and reads its answer's head, then is
/// held idle: the status (0: none) and the stream.
fn held(
    rt: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
) -> (u16, Option<std::net::TcpStream>) {
    let Some(mut stream) = rig::connect_from(rt, from, to, Duration::from_secs(10)) else {
        return (0, None);
    };
    let path = format!("{}validate", rig::PUBLIC);
    let headers = [
        ("origin".to_string(), "https://app.example".to_string()),
        (
            "access-control-request-method".to_string(),
            "POST".to_string(),
        ),
    ];
    let mut got = [0u8; 1024];
    let n = stream
        .write_all(&raw(to, "OPTIONS", &path, from, &headers, "", false))
        .ok()
        .and_then(|()| stream.read(&mut got).ok())
        .unwrap_or(0);
    (status_in(&got[..n]), Some(stream))
}

/// `crowd [ADDRESSES] [EACH] [--url BASE --polar POLAR_URL]`.
pub fn crowd_table(args: &[String]) {
    let nums = numbers(args);
    let addresses = nums.first().copied().unwrap_or(16).clamp(1, 200) as u8;
    let each = nums.get(1).copied().unwrap_or(16) as usize;
    let target = stored_target(args, true);
    let key = "CROWD-VICTIM-4A5B6C";
    target.add_key(key, 3);
    let to = target.address();
    let rt = super::runtime();
    let t = Instant::now();
    let mut statuses = Vec::new();
    let mut streams = Vec::new();
    for a in 0..addresses {
        for _ in 0..each {
            let (status, stream) = held(&rt, Ipv4Addr::new(127, 0, 1, 10 + a), to);
            statuses.push(status);
            streams.extend(stream);
        }
    }
    let crowd_took = t.elapsed();
    // Another client, while the crowd holds its connections.
    let victim = Ipv4Addr::new(127, 0, 0, 250);
    let t = Instant::now();
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string();
    let path = format!("{}validate", rig::PUBLIC);
    let answer = rig::connect_from(&rt, victim, to, Duration::from_secs(30)).map_or(0, |mut s| {
        let _ = s.write_all(&raw(to, "POST", &path, victim, &[], &body, true));
        rig::status_of(&mut s)
    });
    let victim_took = t.elapsed();
    // How many of the crowd's connections the relay still holds open.
    let mut open = 0;
    for s in &mut streams {
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => open += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                open += 1
            }
            Err(_) => {}
        }
    }
    drop(streams);
    println!(
        "{addresses} addresses × {each} connections, each a CORS preflight then held idle, the \
         relay's defaults, the relay {}; then another address validates:\n",
        target.named()
    );
    super::table_head(&[
        "crowd connections",
        "their preflights' answers",
        "still open after",
        "crowd's time",
        "another client's validate",
        "in",
        "answered",
    ]);
    println!(
        "| {} | {} | {open} | {:.0} ms | {answer} | {:.0} ms | {} |",
        statuses.len(),
        tally(&statuses),
        crowd_took.as_secs_f64() * 1e3,
        victim_took.as_secs_f64() * 1e3,
        verdict(answer == 200)
    );
    target.stop();
}

/// A forged delivery of `len` bytes from `from` to `to` (its id `n`): its status (0: none, the
/// relay answered on the head and closed before the body was written, or the connection
/// failed). It asks `expect: 100-continue` and sends the body only when the relay asks for it.
fn forge(
    rt: &tokio::runtime::Runtime,
    to: SocketAddr,
    from: Ipv4Addr,
    n: usize,
    len: usize,
) -> u16 {
    let mut body = br#"{"type":"benefit_grant.revoked","data":{"pad":""#.to_vec();
    body.resize(len - 3, b'x');
    body.extend(b"\"}}");
    let Some(mut stream) = rig::connect_from(rt, from, to, Duration::from_secs(30)) else {
        return 0;
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         cf-connecting-ip: {from}\r\nwebhook-id: msg_forged_{n}\r\nwebhook-timestamp: {}\r\n\
         webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\r\n\
         content-length: {len}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        rig::WEBHOOK,
        rig::now(),
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut first = [0u8; 256];
    let Ok(got) = stream.read(&mut first) else {
        return 0;
    };
    let text = String::from_utf8_lossy(&first[..got]).into_owned();
    if status_in(text.as_bytes()) != 100 {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        return status_in(text.as_bytes());
    }
    if stream.write_all(&body).is_err() {
        return 0;
    }
    // The answer after the interim `100 Continue` (its start may have come with it).
    let mut raw = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let _ = stream.read_to_end(&mut raw);
    status_in(&raw)
}

/// `hooks [FORGED] [--url BASE --polar POLAR_URL]`.
pub fn hooks_table(args: &[String]) {
    let forged = numbers(args).first().copied().unwrap_or(15) as usize;
    let target = stored_target(args, false);
    // A new key each run (a relay at a URL may have heard an earlier run's revocation).
    let key = format!("HOOKS-{:06}-4A5B6C", rig::now() % 1_000_000);
    target.add_key(&key, 3);
    let to = target.address();
    let rt = super::runtime();
    let proxy = Ipv4Addr::new(127, 0, 0, 3);
    let from = proxy.to_string();
    let agent = rig::agent(Duration::from_secs(30));
    let headers = [("cf-connecting-ip", from.as_str())];
    let first = rig::validate_at(&agent, &target.base, &key, &headers);
    let license: Value = serde_json::from_str(&first.body).unwrap_or_default();
    let lid = license["id"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    let small: Vec<u16> = (0..forged)
        .map(|n| forge(&rt, to, proxy, n, 2_048))
        .collect();
    let large = forge(&rt, to, proxy, forged, 1 << 20);
    let forged_took = t.elapsed();
    // Polar revokes the key and delivers the event, from the same address.
    target.set_status(&key, "revoked");
    let body = rig::revocation(&lid);
    let signed = rig::signed(SECRET, &format!("msg_revoked_{key}"), rig::now(), &body);
    let t = Instant::now();
    let delivered =
        rig::connect_from(&rt, proxy, to, Duration::from_secs(30)).map_or(0, |mut s| {
            let _ = s.write_all(&raw(to, "POST", rig::WEBHOOK, proxy, &signed, &body, true));
            rig::status_of(&mut s)
        });
    let delivery_took = t.elapsed();
    let after = rig::validate_at(&agent, &target.base, &key, &headers);
    let heard = first.status == 200
        && delivered == 200
        && after.status == 404
        && after.source.as_deref() == Some("store");
    println!(
        "A genuine revocation beside forged deliveries from one address (per-address limits off), \
         the relay {}:\n",
        target.named()
    );
    super::table_head(&[
        "check before",
        "forged 2 KiB deliveries",
        "a forged 1 MiB one",
        "forgeries' time",
        "Polar's signed revocation",
        "in",
        "the check after (source)",
        "the revocation heard",
    ]);
    println!(
        "| {} | {} | {large} | {:.0} ms | {delivered} | {:.0} ms | {} ({}) | {} |",
        first.status,
        tally(&small),
        forged_took.as_secs_f64() * 1e3,
        delivery_took.as_secs_f64() * 1e3,
        after.status,
        after.source.as_deref().unwrap_or("-"),
        verdict(heard)
    );
    target.stop();
}
