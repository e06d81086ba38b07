//! A `429` is waited out by the core's machines (issue #77, `polar_license::flow::timed`),
//! so the command line gets it as every face does: `usage` and `devices --relay` against a
//! relay that first answers `429` with `Retry-After: 1`, then the answer, are asked again
//! after the second and succeed (before, the CLI retried only its seat requests, by a loop
//! of its own, and `usage` and `devices` ended `rate_limited` at once).

use polar_license_emulator::DEMO_ORGANIZATION_ID;
use polar_license_testkit::{clean_command, Launch, ScratchDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::BIN;

const KEY: &str = "RETRY-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";

/// A relay of loopback that answers the requests it gets with `answers`, in order, one a
/// connection, and keeps each request's body.
fn scripted(answers: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for (status, extra, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(n) = lower.strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap_or(0);
                }
            }
            let mut got = vec![0; length];
            let _ = reader.read_exact(&mut got);
            kept.lock()
                .expect("the bodies")
                .push(String::from_utf8_lossy(&got).into_owned());
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = reader.into_inner();
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, bodies)
}

fn run(dir: &ScratchDir, args: &[&str]) -> (i32, Value, Duration) {
    let cache = dir.path().join("cache");
    let started = Instant::now();
    let out = clean_command(BIN)
        .args(["--org", DEMO_ORGANIZATION_ID, "--json"])
        .args(["--cache-dir", cache.to_str().expect("UTF-8")])
        .args(args)
        .launch();
    let took = started.elapsed();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: not JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v, took)
}

const LIMITED: &str = r#"{"error":"TooManyRequests","detail":"slow down"}"#;

/// `args` (with `--relay` and the scripted relay's URL after them) against a relay that
/// answers `429` with `Retry-After: 1`, then `answer`: the command's JSON, once it has waited
/// the second and asked again, and the bodies the relay got.
fn asked_again(name: &str, args: &[&str], answer: &'static str) -> (Value, Vec<String>) {
    let dir = ScratchDir::new(name);
    let (relay, bodies) = scripted(vec![
        (429, "retry-after: 1\r\n", LIMITED),
        (200, "", answer),
    ]);
    let args = [args, &["--relay", &relay]].concat();
    let (code, v, took) = run(&dir, &args);
    assert_eq!(code, 0, "{v}");
    assert!(
        took >= Duration::from_secs(1),
        "the Retry-After waited: {took:?}"
    );
    let bodies = bodies.lock().expect("the bodies").clone();
    assert_eq!(bodies.len(), 2, "asked again once");
    (v, bodies)
}

#[test]
fn usage_waits_out_a_429_and_sends_the_same_report_again() {
    let (v, bodies) = asked_again(
        "cli-retry-usage",
        &["usage", "tokens_used", "1", "--key", KEY],
        r#"{"recorded":true,"duplicate":false,"balance":9}"#,
    );
    assert_eq!(v["outcome"], "done", "{v}");
    assert_eq!(v["duplicate"], false, "{v}");
    assert_eq!(bodies[0], bodies[1], "the same report, the same id");
}

#[test]
fn devices_through_the_relay_wait_out_a_429() {
    let (v, _) = asked_again(
        "cli-retry-devices",
        &["devices", "--key", KEY],
        r#"{"license_key_id":"9b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b","limit_activations":3,"activations":[]}"#,
    );
    assert_eq!(v["limit_activations"], 3, "{v}");
}
