//! Issue #62's door rows (`door [N]`, default 200): requests that cost the relay without a
//! call to Polar, each kind sent `N` times over loopback on one keep-alive connection to the
//! relay with its defaults (per-IP 5/s, bursts of 10; a store and a webhook secret) and its
//! client's address read from `x-forwarded-for` (so one connection can be many addresses):
//! per row the answers and the process's CPU per request (user + system from
//! `/proc/self/stat`: the relay's handling, the client's writes and reads).
//!
//! - CORS preflights from one address (before issue #62 every one was 204: they skipped the
//!   per-address bucket);
//! - forged 1 MiB deliveries, a new address each (every one verified: two HMACs over 1 MiB,
//!   until the global budget of failures, 1,000 a minute);
//! - forged 1 MiB deliveries from one address past its 10 failures (429, no HMAC);
//! - forged 64 KiB deliveries from one address past its 10 failures (verified: a genuine one
//!   is never refused for its address's forged ones; before, 429).
//!
//! `door N --url BASE --pid PID`: the same rows against a relay running at `BASE` with this
//! webhook secret and its defaults (the npm relay under workerd:
//! `scripts/relay-attack-workerd.mjs`), the CPU read from `/proc/PID/stat`; each address also
//! sent in `cf-connecting-ip`, where Workers read it.

use std::time::Duration;

use polar_license_relay::store::StoreOptions;
use polar_license_relay::ServeOptions;

use super::bodies::{cpu_of, remote};
use super::rig;

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

/// A forged delivery's body of `len` bytes.
fn forged_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"type":"benefit_grant.revoked","data":{"pad":""#.to_vec();
    body.resize(len - 3, b'x');
    body.extend(b"\"}}");
    body
}

/// `door [N]`.
pub fn table(args: &[String]) {
    let remote = remote(args);
    let n: usize = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let local = match &remote {
        Some(_) => None,
        None => {
            let polar = rig::emulator();
            let mut config = rig::config(polar.url(), "door");
            config.client_ip_header = Some("x-forwarded-for".into());
            config.store = rig::store(
                rig::memory(1_000),
                StoreOptions::default(),
                Some(SECRET.into()),
            );
            let relay = rig::listen(
                rig::relay(config, rig::upstream(Duration::from_secs(10))),
                ServeOptions::default(),
            );
            Some((polar, relay))
        }
    };
    let (base, pid) = match (&remote, &local) {
        (Some(r), _) => (r.base.clone(), r.pid.clone()),
        (None, Some((_, relay))) => (relay.url(), "self".to_string()),
        (None, None) => return,
    };
    let cpu = || cpu_of(&pid);
    let agent = rig::agent(Duration::from_secs(60));
    println!(
        "{n} requests of each kind, one connection, the relay's defaults (the relay {}):\n",
        remote
            .as_ref()
            .map_or("in this process", |r| r.base.as_str())
    );
    super::table_head(&["requests", "answers", "CPU per request"]);
    let row = |what: &str, send: &mut dyn FnMut(usize) -> u16| {
        let before = cpu();
        let mut answers = std::collections::BTreeMap::new();
        for i in 0..n {
            *answers.entry(send(i)).or_insert(0u32) += 1;
        }
        let used = cpu().zip(before).map(|(b, a)| b.saturating_sub(a));
        let answers: Vec<String> = answers.iter().map(|(s, c)| format!("{c} × {s}")).collect();
        println!(
            "| {what} | {} | {} |",
            answers.join(", "),
            used.map_or("?".into(), |u| format!(
                "{:.3} ms",
                u.as_secs_f64() * 1e3 / n as f64
            )),
        );
    };
    let preflight_url = format!("{base}{}validate", rig::PUBLIC);
    row("CORS preflights, one address", &mut |_| {
        agent
            .options(&preflight_url)
            .header("x-forwarded-for", "198.51.100.1")
            .header("cf-connecting-ip", "198.51.100.1")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .call()
            .map_or(0, |r| r.status().as_u16())
    });
    let hook_url = format!("{base}{}", rig::WEBHOOK);
    let forge = |i: usize, from: &str, body: &[u8]| {
        agent
            .post(&hook_url)
            .header("content-type", "application/json")
            .header("x-forwarded-for", from)
            .header("cf-connecting-ip", from)
            .header("webhook-id", &format!("msg_forged_{i}"))
            .header("webhook-timestamp", &rig::now().to_string())
            .header(
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            )
            .send(body)
            .map_or(0, |r| r.status().as_u16())
    };
    let mib = forged_body(1 << 20);
    row("forged 1 MiB deliveries, a new address each", &mut |i| {
        forge(i, &format!("10.{}.{}.1", i / 256, i % 256), &mib)
    });
    row("forged 1 MiB deliveries, one address", &mut |i| {
        forge(i, "198.51.100.2", &mib)
    });
    let small = forged_body(64 * 1024);
    row("forged 64 KiB deliveries, one address", &mut |i| {
        forge(i, "198.51.100.3", &small)
    });
    if let Some((_, relay)) = local {
        relay.stop();
    }
}
