//! The hostile-input table's requests (issue #62 item 5) as JSON, for a host that is not this
//! crate's server: the npm relay under workerd (`tests/js/relay-hostile.test.mjs`). Every
//! route of the relay's own list ([`polar_license_relay::ROUTES`]) crossed with every shape of
//! the testkit's generator (`polar_license_testkit::hostile::shapes`), the same list the native
//! table (`crates/relay/tests/hostile.rs`) sends, each as the raw bytes of one request to
//! `ADDR`: a route added to the list, or a shape added to the generator, reaches the JS table
//! with no JS edited.
//!
//! `hostile_shapes ADDR [--webhook-secret whsec_…] [--metrics-path /metrics]
//! [--metrics-token TOKEN] [--full]` prints one JSON object:
//!
//! ```text
//! {"full": false, "body_cap": 65536, "webhook_cap": 1048576,
//!  "targets": [{"method", "path", "reads_body", "webhook", "shapes": [
//!     {"name", "pace": "whole" | "unending", "expect": "refused" | "no_fault", "json", "bytes"}],
//!   "crowds": [{"name", "pace": "whole" | "unending", "connections": [{"from", "bytes"}]}],
//!   "genuine_after_forged": null | {"forged": [bytes], "genuine": bytes}}]}
//! ```
//!
//! (`genuine_after_forged`: the testkit's `hostile::genuine_after_forged`, on a route that
//! verifies signatures: forged deliveries from one address past its failure limit, each to be
//! refused, then a signed one to be acknowledged.)
//!
//! (`crowds`: the testkit's `hostile::crowds`, 8 addresses of 8 connections each, 16 × 16
//! with `--full`: each connection from `from`, a loopback address, its request held open.)
//!
//! (`bytes`: standard base64.) The webhook route's bodies are signed with the secret, as the
//! native table signs them, so that they are read; the metrics route (a listener of its own
//! natively) is asked at `--metrics-path` with the token, where a fetch host serves it. A
//! signature's time is now (the replayed delivery's an hour before, to be refused): send
//! them within Polar's five minutes. `--full`: the bigger matrix
//! (`FULL=1` natively: every method of every route, larger heads, the webhook's bodies to its
//! own 1 MiB cap).
//!
//! Run: `cargo run -p polar-license-relay --example hostile_shapes -- 127.0.0.1:8787`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ct_codecs::{Base64, Encoder};
use polar_license_relay::{Limits, Listener, ROUTES, WEBHOOK_MAX_BODY_BYTES, WEBHOOK_ROUTE};
use polar_license_testkit::hostile::{self, Expect, Pace, Target};
use serde_json::{json, Value};

#[path = "../tests/rig/mod.rs"]
mod rig;

struct Args {
    addr: SocketAddr,
    secret: Option<String>,
    metrics_path: Option<String>,
    metrics_token: Option<String>,
    full: bool,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut out = Args {
        addr: it
            .next()
            .ok_or("usage: hostile_shapes ADDR [--webhook-secret S] [--metrics-path P] [--metrics-token T] [--full]")?
            .parse()
            .map_err(|e| format!("ADDR: {e}"))?,
        secret: None,
        metrics_path: None,
        metrics_token: None,
        full: false,
    };
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--webhook-secret" => out.secret = Some(value()?),
            "--metrics-path" => out.metrics_path = Some(value()?),
            "--metrics-token" => out.metrics_token = Some(value()?),
            "--full" => out.full = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hostile_shapes: {e}");
            std::process::exit(2);
        }
    };
    let ids = Arc::new(AtomicU64::new(0));
    let body_cap = Limits::default().max_body_bytes;
    let mut targets = Vec::new();
    for route in ROUTES {
        let (path, headers) = match route.listener {
            Listener::Public => (route.path.to_string(), Vec::new()),
            Listener::Metrics => match &args.metrics_path {
                Some(p) => (
                    p.clone(),
                    args.metrics_token
                        .iter()
                        .map(|t| ("authorization".to_string(), format!("Bearer {t}")))
                        .collect(),
                ),
                // Not served at ADDR: left out, said on stderr.
                None => {
                    eprintln!(
                        "hostile_shapes: {} left out (no --metrics-path)",
                        route.path
                    );
                    continue;
                }
            },
            other => {
                eprintln!("hostile_shapes: a listener this dump does not know: {other:?}");
                std::process::exit(1);
            }
        };
        let methods = if args.full {
            route.methods
        } else {
            &route.methods[..1]
        };
        let webhook = route.path == WEBHOOK_ROUTE;
        for method in methods {
            let sign: Option<hostile::Sign> = match (&args.secret, webhook) {
                (Some(secret), true) => {
                    let (ids, secret) = (Arc::clone(&ids), secret.clone());
                    Some(Arc::new(move |body: &[u8], age: i64| {
                        let n = ids.fetch_add(1, Ordering::Relaxed);
                        let text = String::from_utf8_lossy(body);
                        rig::signed(
                            &secret,
                            &format!("msg_hostile_{n}"),
                            rig::now() - age,
                            &text,
                        )
                    }) as hostile::Sign)
                }
                _ => None,
            };
            let t = Target {
                addr: args.addr,
                method: method.to_string(),
                path: path.clone(),
                headers: headers.clone(),
                reads_body: route.reads_body,
                sign,
            };
            let cap = if args.full && webhook {
                WEBHOOK_MAX_BODY_BYTES
            } else {
                body_cap
            };
            let shapes: Vec<Value> = hostile::shapes(&t, cap, args.full)
                .into_iter()
                .map(|s| {
                    json!({
                        "name": s.name,
                        "pace": if s.pace == Pace::Whole { "whole" } else { "unending" },
                        "expect": if s.expect == Expect::Refused { "refused" } else { "no_fault" },
                        "json": s.json,
                        "bytes": Base64::encode_to_string(&s.bytes).unwrap_or_default(),
                    })
                })
                .collect();
            let (addresses, per_address) = if args.full { (16, 16) } else { (8, 8) };
            let crowds: Vec<Value> = hostile::crowds(&t, addresses, per_address)
                .into_iter()
                .map(|c| {
                    let connections: Vec<Value> = c
                        .connections
                        .iter()
                        .map(|(from, bytes)| {
                            json!({
                                "from": from.to_string(),
                                "bytes": Base64::encode_to_string(bytes).unwrap_or_default(),
                            })
                        })
                        .collect();
                    json!({
                        "name": c.name,
                        "pace": if c.pace == Pace::Whole { "whole" } else { "unending" },
                        "connections": connections,
                    })
                })
                .collect();
            // A genuine delivery after forged ones (the routes that sign; null elsewhere).
            let b64 = |b: &[u8]| Base64::encode_to_string(b).unwrap_or_default();
            let genuine_after_forged =
                hostile::genuine_after_forged(&t).map(|(forged, genuine)| {
                    json!({
                        "forged": forged.iter().map(|b| b64(b)).collect::<Vec<_>>(),
                        "genuine": b64(&genuine),
                    })
                });
            targets.push(json!({
                "method": method,
                "path": path,
                "reads_body": route.reads_body,
                "webhook": webhook,
                "shapes": shapes,
                "crowds": crowds,
                "genuine_after_forged": genuine_after_forged,
            }));
        }
    }
    let out = json!({
        "full": args.full,
        "body_cap": body_cap,
        "webhook_cap": WEBHOOK_MAX_BODY_BYTES,
        "targets": targets,
    });
    println!("{out}");
}
