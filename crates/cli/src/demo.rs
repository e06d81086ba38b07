//! `demo`: a walkthrough on the embedded emulator that checks every answer (a smoke test).
//!
//! The grace part uses a cache in a fresh temp directory (never the user's data dir), removed
//! at the end, and a clock of its own that it moves forward.

use crate::args::Global;
use crate::output::{check_report, error_report, print_out, report, Op, Report};
use polar_license::fingerprint::machine_fingerprint;
use polar_license::lease::{RelayKeys, SigningKey};
use polar_license::store::Store;
use polar_license::testing::{self, Slot};
use polar_license::{
    system_clock, AccessToken, ActivateRequest, BlockingClient, DeactivateRequest, Error,
    FileStore, Key, Licensing, Server, UreqTransport, ValidateRequest, Verdict,
};
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_TOKEN};
use polar_license_relay::{Relay, RelayConfig};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// A temp cache directory, removed when dropped.
struct TempCache(PathBuf);

impl TempCache {
    fn new() -> TempCache {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        TempCache(std::env::temp_dir().join(format!(
            "polar-license-demo-{}-{nanos:08x}",
            std::process::id()
        )))
    }
}

impl Drop for TempCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Turns `got` into a failed step unless `ok` holds (the outcome word alone cannot say).
fn unless(ok: bool, mut got: Report, why: &str) -> Report {
    if !ok {
        got.json.insert("outcome".into(), json!("unexpected"));
        let headline = format!("{} ({why})", got.headline());
        got.lines.insert(0, headline);
    }
    got
}

fn source_is(got: &Report, source: &str) -> bool {
    got.json.get("source").and_then(Value::as_str) == Some(source)
}

/// A check of `key` as `check` renders it.
fn checked(licensing: &Licensing, key: &Key) -> Report {
    check_report(
        key,
        &licensing.check_report(key.clone()),
        None,
        licensing.policy(),
    )
}

/// `got`, marked unexpected unless its answer came from `source`.
fn from_source(got: &Report, source: &str) -> Report {
    unless(
        source_is(got, source),
        got.clone(),
        &format!("wanted source {source}"),
    )
}

struct Walk {
    lines: Vec<String>,
    steps: Vec<Value>,
    failures: usize,
}

impl Walk {
    /// Records one step: what was run, what came back, and whether it was the expected answer.
    fn step(&mut self, title: &str, command: &str, got: &Report, want: (&str, Option<&str>)) {
        let n = self.steps.len() + 1;
        let ok = got.outcome() == want.0 && got.reason() == want.1;
        self.lines.push(format!("{n}. {title}"));
        self.lines.push(format!("   $ polar-license {command}"));
        self.lines.push(format!("   {}", got.headline()));
        if !ok {
            self.failures += 1;
            self.lines.push(format!(
                "   UNEXPECTED: wanted {}{}",
                want.0,
                want.1.map(|r| format!(": {r}")).unwrap_or_default()
            ));
        }
        self.steps.push(json!({
            "step": n,
            "title": title,
            "command": format!("polar-license {command}"),
            "expected": { "outcome": want.0, "reason": want.1 },
            "answer": Value::Object(got.json.clone()),
            "ok": ok,
        }));
    }
}

/// Runs the walkthrough; exit 0 only when every step gave the expected answer.
pub fn run(g: &Global) -> u8 {
    let seed = Seed::demo();
    let keys: Vec<String> = seed.license_keys.iter().map(|k| k.key.clone()).collect();
    let emulator = match Emulator::start(seed, Options::default()) {
        Ok(e) => e,
        Err(e) => return fail(g, &format!("cannot start the embedded emulator: {e}")),
    };
    let status_of = |k: &str| {
        emulator
            .key(k)
            .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
    };
    let slots_of = |k: &str| {
        emulator
            .key(k)
            .and_then(|v| v.get("limit_activations").and_then(Value::as_i64))
    };
    let main_key = keys
        .iter()
        .find(|k| status_of(k).as_deref() == Some("granted") && slots_of(k).unwrap_or(0) > 0);
    let revoked_key = keys
        .iter()
        .find(|k| status_of(k).as_deref() == Some("revoked"));
    let (Some(main_key), Some(revoked_key)) = (main_key, revoked_key) else {
        return fail(
            g,
            "the demo seed lacks a key with activations or a revoked key",
        );
    };
    let client = match BlockingClient::builder(emulator.organization_id())
        .base_url(emulator.url())
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(g, &format!("cannot build the client: {e}")),
    };
    let key = Key::new(main_key.as_str());
    let revoked = Key::new(revoked_key.as_str());

    let mut walk = Walk {
        lines: vec![
            format!(
                "Local Polar emulator at {} (organization {})",
                emulator.url(),
                emulator.organization_id()
            ),
            format!(
                "KEY is the demo key {} with {} activation slots; `polar-license emulator` prints it",
                key.redacted(),
                slots_of(main_key).unwrap_or(0)
            ),
            String::new(),
        ],
        steps: Vec::new(),
        failures: 0,
    };

    // 1. Activate on machine A.
    let activated =
        client.activate(&ActivateRequest::new(key.clone(), "machine A").condition("machine", "A"));
    let activation_id = match &activated {
        Ok(Verdict::Accepted(a)) => a.activation.id.clone(),
        _ => String::new(),
    };
    let shown_id = if activation_id.is_empty() {
        "$ID"
    } else {
        activation_id.as_str()
    };
    walk.step(
        "Activate this key on machine A",
        "activate --key $KEY --label \"machine A\" --condition machine=A",
        &report(Op::Activate, &key, None, &activated),
        ("done", None),
    );
    walk.lines
        .push(format!("   activation {shown_id} (call it $ID)"));

    // 2. Validate on machine A.
    let on = |machine: &str| {
        ValidateRequest::new(key.clone())
            .activation_id(activation_id.as_str())
            .condition("machine", machine)
    };
    let on_a = on("A");
    walk.step(
        "Validate on machine A",
        "validate --key $KEY --activation-id $ID --condition machine=A",
        &report(Op::Validate, &key, Some(shown_id), &client.validate(&on_a)),
        ("licensed", None),
    );

    // 3. Validate from another machine.
    walk.step(
        "Validate the same activation from machine B",
        "validate --key $KEY --activation-id $ID --condition machine=B",
        &report(
            Op::Validate,
            &key,
            Some(shown_id),
            &client.validate(&on("B")),
        ),
        ("denied", Some("conditions_mismatch")),
    );

    // 4. Deactivate.
    let freed = client.deactivate(&DeactivateRequest::new(key.clone(), activation_id.as_str()));
    walk.step(
        "Deactivate machine A, freeing its slot",
        "deactivate --key $KEY --activation-id $ID",
        &report(Op::Deactivate, &key, Some(shown_id), &freed),
        ("done", None),
    );

    // 5. The freed activation is gone.
    walk.step(
        "Validate the freed activation",
        "validate --key $KEY --activation-id $ID --condition machine=A",
        &report(Op::Validate, &key, Some(shown_id), &client.validate(&on_a)),
        ("denied", Some("not_found")),
    );

    // 6. A revoked key.
    walk.step(
        &format!("Validate a revoked key ({})", revoked.redacted()),
        "validate --key $REVOKED_KEY",
        &report(
            Op::Validate,
            &revoked,
            None,
            &client.validate(&ValidateRequest::new(revoked.clone())),
        ),
        ("denied", Some("inactive")),
    );

    // 7. Bad input never leaves the machine.
    let before = emulator.request_count();
    let bad = client.validate(&ValidateRequest::new(key.clone()).condition("machine", ""));
    let sent = emulator.request_count().saturating_sub(before);
    let mut got = report(Op::Validate, &key, None, &bad);
    if sent != 0 {
        // Not what we promised: make the step fail.
        got = error_report(
            Some(Op::Validate),
            None,
            &Error::invalid("demo", format!("{sent} request(s) reached the server")),
        );
        got.json.insert("outcome".into(), json!("unexpected"));
    }
    walk.step(
        "An empty condition value, caught locally",
        "validate --key $KEY --condition machine=",
        &got,
        ("error", Some("invalid_input")),
    );
    walk.lines
        .push(format!("   requests that reached the emulator: {sent}"));

    // 8-12. The offline grace cache.
    let cache = TempCache::new();
    let offset = Arc::new(AtomicI64::new(0));
    let clock = Arc::clone(&offset);
    let licensing = match Licensing::builder(emulator.organization_id())
        .base_url(emulator.url())
        .timeout(Duration::from_secs(5))
        .cache_dir(&cache.0)
        .clock(move || system_clock().saturating_add(clock.load(Ordering::SeqCst)))
        .build()
    {
        Ok(l) => l,
        Err(e) => return fail(g, &format!("cannot build the licensing: {e}")),
    };
    walk.lines
        .push("Offline grace (a temp cache; the demo moves its own clock):".into());
    walk.step(
        "Activate with the cache: remembered, and a verdict (the grace starts)",
        "activate --key $KEY --label laptop",
        &report(
            Op::Activate,
            &key,
            None,
            &licensing.activate(&ActivateRequest::new(key.clone(), "laptop")),
        ),
        ("done", None),
    );
    let before = emulator.request_count();
    let got = checked(&licensing, &key);
    let sent = emulator.request_count().saturating_sub(before);
    walk.step(
        "Check within the hour: from the cache, no request",
        "check --key $KEY",
        &unless(
            source_is(&got, "cache") && sent == 0,
            got.clone(),
            "wanted source cache and no request",
        ),
        ("licensed", None),
    );
    offset.store(2 * HOUR, Ordering::SeqCst);
    let got = checked(&licensing, &key);
    walk.step(
        "Two hours later: stale, so it asks Polar",
        "check --key $KEY",
        &from_source(&got, "online"),
        ("licensed", None),
    );
    emulator.set_fault(Some(Fault::Respond {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<html><form>Hotel Wi-Fi: log in</form></html>".into(),
    }));
    offset.store(4 * HOUR, Ordering::SeqCst);
    let got = checked(&licensing, &key);
    walk.step(
        "A hotel login page answers instead of Polar: licensed from the cache",
        "check --key $KEY",
        &from_source(&got, "cache"),
        ("licensed", Some("protocol_error")),
    );
    emulator.set_fault(Some(Fault::CloseImmediately));
    offset.store(2 * DAY, Ordering::SeqCst);
    let got = checked(&licensing, &key);
    walk.step(
        "Two days later, Polar unreachable: licensed within the 7-day grace",
        "check --key $KEY",
        &from_source(&got, "cache"),
        ("licensed", Some("offline")),
    );
    offset.store(8 * DAY, Ordering::SeqCst);
    walk.step(
        "Eight days later, still unreachable: the grace is over",
        "check --key $KEY",
        &checked(&licensing, &key),
        ("unverified", Some("grace_expired")),
    );
    emulator.set_fault(None);
    drop(cache);

    // 13-16. Signed mode: the relay in front of the emulator, and a forged record.
    if let Err(why) = signed_mode(&emulator, &key, &mut walk) {
        return fail(g, &why);
    }

    let total = walk.steps.len();
    let summary = if walk.failures == 0 {
        format!("all {total} steps gave the expected answer")
    } else {
        format!(
            "{} of {total} steps gave an unexpected answer",
            walk.failures
        )
    };
    emulator.stop();
    let code = if walk.failures == 0 { 0 } else { 3 };
    if g.json {
        let mut m = Map::new();
        m.insert(
            "outcome".into(),
            json!(if code == 0 { "done" } else { "error" }),
        );
        m.insert("reason".into(), Value::Null);
        m.insert("detail".into(), json!(summary));
        m.insert("source".into(), Value::Null);
        m.insert("activation_id".into(), Value::Null);
        m.insert("grace_remaining_seconds".into(), Value::Null);
        m.insert("license".into(), Value::Null);
        m.insert("command".into(), json!("demo"));
        m.insert("steps".into(), Value::Array(walk.steps));
        print_out(&format!("{}\n", Value::Object(m)));
    } else {
        walk.lines.push(String::new());
        walk.lines.push(summary);
        print_out(&format!("{}\n", walk.lines.join("\n")));
    }
    code
}

/// Steps 13-16: a relay (in this process) in front of the emulator signs leases; a lease
/// survives an offline week; a record re-sealed with the secrets on this machine fools an app
/// without relay keys and not one in signed mode.
fn signed_mode(emulator: &Emulator, key: &Key, walk: &mut Walk) -> Result<(), String> {
    let signer = SigningKey::generate(Some("demo-relay")).map_err(|e| e.text())?;
    let keys = signer.relay_keys();
    let config = RelayConfig::new(
        Server::Custom(emulator.url()),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    let upstream = UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = Relay::new(config, Box::new(upstream)).map_err(|e| e.text())?;
    let relay = polar_license_relay::serve(Arc::new(relay), "127.0.0.1:0")
        .map_err(|e| format!("cannot start the relay: {e}"))?;
    let cache = TempCache::new();
    let offset = Arc::new(AtomicI64::new(0));
    let build = |keys: RelayKeys| {
        let clock = Arc::clone(&offset);
        Licensing::builder(emulator.organization_id())
            .base_url(relay.url())
            .timeout(Duration::from_secs(5))
            .cache_dir(&cache.0)
            .relay_keys(keys)
            .clock(move || system_clock().saturating_add(clock.load(Ordering::SeqCst)))
            .build()
            .map_err(|e| format!("cannot build the licensing: {e}"))
    };
    let signed = build(keys)?;
    let unsigned = build(RelayKeys::new())?;
    walk.lines.push(String::new());
    walk.lines.push(format!(
        "Signed mode (a relay at {} signs 7-day leases; the demo forges a record):",
        relay.url()
    ));
    walk.step(
        "Activate through the relay, with its key: the answer carries a signed lease",
        "--base-url $RELAY --relay-key $RELAY_KEY activate --key $KEY --label laptop",
        &report(
            Op::Activate,
            key,
            None,
            &signed.activate(&ActivateRequest::new(key.clone(), "laptop")),
        ),
        ("done", None),
    );
    emulator.set_fault(Some(Fault::CloseImmediately));
    offset.store(6 * DAY, Ordering::SeqCst);
    let got = checked(&signed, key);
    walk.step(
        "Six days later, Polar unreachable (the relay answers 502): licensed within the lease",
        "--relay-key $RELAY_KEY check --key $KEY",
        &from_source(&got, "cache"),
        ("licensed", Some("server_error")),
    );
    // The attack the threat model states: the install secret (beside the cache) and the
    // library's own code re-seal the record as verified just now, three weeks on.
    offset.store(21 * DAY, Ordering::SeqCst);
    let now = system_clock().saturating_add(21 * DAY);
    forge(emulator, &relay.url(), &cache.0, key, now)?;
    let got = checked(&unsigned, key);
    walk.step(
        "Three weeks on, the record re-sealed as fresh with this machine's secrets: an app \
         without relay keys believes it",
        "check --key $KEY",
        &from_source(&got, "cache"),
        ("licensed", None),
    );
    walk.step(
        "The same forged record in signed mode: refused as forged (no relay signed it fresh; \
         its last lease ended on day 7)",
        "--relay-key $RELAY_KEY check --key $KEY",
        &checked(&signed, key),
        ("unverified", Some("grace_expired")),
    );
    emulator.set_fault(None);
    relay.stop();
    Ok(())
}

/// Re-seals `key`'s record in `dir` as verified at `now`, as anyone holding this machine's
/// install secret can with this library (no app secret here).
fn forge(
    emulator: &Emulator,
    base_url: &str,
    dir: &Path,
    key: &Key,
    now: i64,
) -> Result<(), String> {
    let org = emulator.organization_id();
    let secret = FileStore::new(dir).install_secret().map_err(|e| e.text())?;
    let seal = machine_fingerprint(&org).map_err(|e| e.text())?;
    let slot = Slot::new(base_url, &org, key, &secret, seal.as_deref(), None);
    // The core's one forger (what an attacker with this crate's code can make).
    testing::forge_in(
        &FileStore::new(dir),
        &slot,
        (&org, key),
        |forged: &mut polar_license::Record| {
            if let Some(good) = forged.good.as_mut() {
                good.verified_at = now;
            }
            forged.latest_seen = now;
        },
    )
    .map_err(|e| format!("no record to forge: {e}"))
}

fn fail(g: &Global, why: &str) -> u8 {
    let mut r = error_report(None, None, &Error::invalid("demo", why));
    r.json.insert("reason".into(), Value::Null);
    r.json.insert("command".into(), json!("demo"));
    r.lines = vec![format!("error: {why}")];
    r.exit = 3;
    r.print(g.json)
}
