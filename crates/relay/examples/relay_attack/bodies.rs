//! Issue #62's hostile bodies (`bodies [N] [SHAPES]`): each shape posted `N` times (default
//! 200) to the relay's validate route over loopback, one keep-alive connection, the relay
//! with its defaults but no per-address limit; per shape its answer, the process's CPU per
//! request (user + system from `/proc/self/stat`: the relay's handling, the client's writes of
//! the body and the answer's read; the emulator behind it is never called) and whether a
//! normal validate is answered after it. `SHAPES`: a comma-separated choice of `small`,
//! `keys`, `dup`, `bad-conditions`, `deep`, `deep-objects` (default all; `deep` aborted the
//! process before the depth limit, so leave it out to measure an older relay).
//!
//! `bodies N SHAPES --url BASE --pid PID [--key KEY]`: the same rows against a relay already
//! running at `BASE` (the npm relay under workerd: `scripts/relay-attack-workerd.mjs` starts
//! it and runs this), the CPU per request read from `/proc/PID/stat` (the relay's process:
//! its handling only, the client's writes not in it), the validate after each shape of `KEY`
//! (default the demo key); Polar's calls are not counted there.

use std::time::{Duration, Instant};

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_relay::{Limits, ServeOptions};

use super::rig;

/// The CPU so far (user + system) of the process `pid` (`self`: this one), from
/// `/proc/PID/stat` in clock ticks of 10 ms (Linux's `USER_HZ`).
pub(crate) fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A body of `cap` bytes at most, shaped `shape`.
fn body(shape: &str, cap: usize) -> Option<String> {
    Some(match shape {
        // The floor: a small body refused by the same checks (a decode error).
        "small" => r#"{"key": "#.to_string(),
        // 64 KiB of distinct keys (6,664 of `"kN":0,`; the issue's 7,733 were shorter).
        "keys" => rig::distinct_keys(cap),
        // `conditions` of bad values to the cap: pydantic's four errors per value, each
        // echoing it (Polar's 422, which the relay answers itself).
        "bad-conditions" => rig::filled(
            &format!(r#"{{"key":"K","organization_id":"{DEMO_ORGANIZATION_ID}","conditions":{{"#),
            |n| format!("\"{n:x}\":null,"),
            "\"z\":null}}",
            cap - 24,
        ),
        // One key repeated to the cap.
        "dup" => format!("{{{}\"a\":1}}", "\"a\":0,".repeat((cap - 8) / 6)),
        // 64 KiB of `[`, and of `{"a":`.
        "deep" => "[".repeat(cap),
        "deep-objects" => "{\"a\":".repeat(cap / 5),
        _ => return None,
    })
}

/// A relay already running elsewhere: its base URL, its process, the key a check asks.
pub(crate) struct Remote {
    pub(crate) base: String,
    pub(crate) pid: String,
    pub(crate) key: String,
}

/// `--url BASE [--pid PID] [--key KEY]` among `args`: a relay running elsewhere.
pub(crate) fn remote(args: &[String]) -> Option<Remote> {
    let value = |name: &str| super::crowds::flag(args, name);
    Some(Remote {
        base: value("--url")?,
        pid: value("--pid").unwrap_or_else(|| "self".into()),
        key: value("--key").unwrap_or_else(|| DEMO_KEY.into()),
    })
}

/// `bodies [N] [SHAPES] [--url BASE --pid PID [--key KEY]]`.
pub fn table(args: &[String]) {
    let remote = remote(args);
    let args = super::crowds::positional(args);
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200);
    let shapes: Vec<String> = args
        .get(1)
        .map_or(
            "small,keys,dup,bad-conditions,deep,deep-objects",
            String::as_str,
        )
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let cap = Limits::default().max_body_bytes;
    // In process (the native relay in front of the emulator), or the relay at `--url`.
    let local = match &remote {
        Some(_) => None,
        None => {
            let polar = rig::emulator();
            let mut config = rig::config(polar.url(), "bodies");
            config.limits = rig::unlimited();
            let relay = rig::listen(
                rig::relay(config, rig::upstream(Duration::from_secs(10))),
                ServeOptions::default(),
            );
            Some((polar, relay))
        }
    };
    let (base, pid, key) = match (&remote, &local) {
        (Some(r), _) => (r.base.clone(), r.pid.clone(), r.key.clone()),
        (None, Some((_, relay))) => (relay.url(), "self".into(), DEMO_KEY.into()),
        (None, None) => return,
    };
    let agent = rig::agent(Duration::from_secs(60));
    let url = format!("{base}{}validate", rig::PUBLIC);
    println!(
        "{n} requests of each shape to the relay's validate route at {}, one connection:\n",
        if remote.is_some() {
            base.as_str()
        } else {
            "this process"
        }
    );
    super::table_head(&[
        "shape",
        "bytes",
        "answer",
        "answer bytes",
        "CPU per request",
        "wall per request",
        "Polar called",
        "a validate after it",
    ]);
    for shape in &shapes {
        let Some(text) = body(shape, cap) else {
            eprintln!("relay_attack: bodies: no shape {shape}");
            std::process::exit(2);
        };
        if let Some((polar, _)) = &local {
            polar.reset_request_count();
        }
        let (cpu0, wall0) = (cpu_of(&pid), Instant::now());
        let mut answers = std::collections::BTreeMap::new();
        let mut answer_bytes = 0;
        for _ in 0..n {
            let a = rig::post_with(&agent, &url, &text, &[]);
            *answers.entry(a.status).or_insert(0u32) += 1;
            answer_bytes = a.body.len();
        }
        let wall = wall0.elapsed();
        let used = cpu_of(&pid).zip(cpu0).map(|(b, a)| b.saturating_sub(a));
        let calls = local.as_ref().map_or("n/a".to_string(), |(polar, _)| {
            polar.request_count().to_string()
        });
        let after = rig::validate_at(&agent, &base, &key, &[]);
        let answers: Vec<String> = answers.iter().map(|(s, c)| format!("{c} × {s}")).collect();
        println!(
            "| {shape} | {} | {} | {answer_bytes} | {} | {:.2} ms | {calls} | {} |",
            text.len(),
            answers.join(", "),
            used.map_or("?".into(), |u| format!(
                "{:.2} ms",
                u.as_secs_f64() * 1e3 / n as f64
            )),
            wall.as_secs_f64() * 1e3 / n as f64,
            after.status,
        );
    }
    if let Some((_, relay)) = local {
        relay.stop();
    }
}
