//! `polar-license relay serve --store FILE --webhook-secret …` as a real process in front of
//! `polar-license emulator` (issue #37): Polar's webhooks delivered to it, a `kill -9` in the
//! middle, and a restart that has lost no verdict and no webhook id it acknowledged.

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::{clean_command, Launch, ScratchDir, Served};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("a request");
    let mut resp = agent().run(request).expect("an answer");
    let source = resp
        .headers()
        .get("polar-license-source")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        source,
    )
}

fn requests(polar: &Served) -> u64 {
    let (_, v, _) = call("GET", &format!("{}/__emulator/requests", polar.url), None);
    v["count"].as_u64().expect("count")
}

fn validate(relay: &Served) -> (u16, Option<String>) {
    let (status, _, source) = call(
        "POST",
        &format!("{}/v1/customer-portal/license-keys/validate", relay.url),
        Some(json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID})),
    );
    (status, source)
}

fn start_relay(polar: &Served, key: &str, store: &str, secret: &str) -> Served {
    Served::start_with_banner(
        clean_command(BIN)
            .args([
                "--base-url",
                &polar.url,
                "relay",
                "serve",
                "--signing-key",
                key,
            ])
            .args(["--port", "0", "--store", store])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
            .env("POLAR_WEBHOOK_SECRET", secret),
        "serving until killed",
    )
    .0
}

/// Waits until the endpoint's deliveries hold `n` successes.
fn acknowledged(polar: &Served, endpoint: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list, _) = call(
            "GET",
            &format!(
                "{}/v1/webhooks/deliveries?endpoint_id={endpoint}&limit=100",
                polar.url
            ),
            None,
        );
        let ok = list["items"].as_array().map_or(0, |items| {
            items.iter().filter(|d| d["succeeded"] == true).count()
        });
        if ok >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ok} of {n} deliveries acknowledged: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_kill_9_loses_no_acknowledged_verdict_and_no_webhook_id() {
    let dir = ScratchDir::new("relay-store-kill");
    let key_file = dir.path().join("relay.key");
    let key = key_file.to_str().expect("UTF-8");
    let o = clean_command(BIN)
        .args(["relay", "keygen", "--out", key])
        .launch();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let store = dir.path().join("verdicts.redb");
    let store = store.to_str().expect("UTF-8");
    let polar = Served::start(clean_command(BIN).args([
        "emulator",
        "--port",
        "0",
        "--webhook-time-scale",
        "0.0001",
    ]));
    let (status, endpoint, _) = call(
        "POST",
        &format!("{}/v1/webhooks/endpoints", polar.url),
        Some(json!({"url": "http://127.0.0.1:9/later", "format": "raw",
                    "events": ["benefit_grant.updated", "benefit_grant.revoked"]})),
    );
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().expect("secret");
    let id = endpoint["id"].as_str().expect("id");

    let relay = start_relay(&polar, key, store, secret);
    let hook = format!("{}/v1/webhooks/polar", relay.url);
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/v1/webhooks/endpoints/{id}", polar.url),
        Some(json!({"url": hook})),
    );
    assert_eq!(status, 200);
    assert_eq!(validate(&relay), (200, Some("polar".into())));
    assert_eq!(validate(&relay), (200, Some("store".into())));

    // A change in Polar: its webhook acknowledged by the relay makes the entry stale, so the
    // next check asks Polar again and stores the new answer.
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/__emulator/keys/{DEMO_KEY}", polar.url),
        Some(json!({"limit_activations": 5})),
    );
    assert_eq!(status, 200);
    acknowledged(&polar, id, 1);
    let before = requests(&polar);
    assert_eq!(validate(&relay), (200, Some("polar".into())));
    assert_eq!(requests(&polar), before + 1);

    // kill -9 (Served's drop kills), then the same file.
    drop(relay);
    let relay = start_relay(&polar, key, store, secret);
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/v1/webhooks/endpoints/{id}", polar.url),
        Some(json!({"url": format!("{}/v1/webhooks/polar", relay.url)})),
    );
    assert_eq!(status, 200);
    let before = requests(&polar);
    assert_eq!(
        validate(&relay),
        (200, Some("store".into())),
        "the verdict survived"
    );
    assert_eq!(requests(&polar), before, "answered with no call");

    // Polar redelivers the acknowledged event (the same webhook-id): the relay remembers it
    // was done, so it changes nothing (were it forgotten, the entry would go stale and the
    // next check would ask Polar).
    let (_, deliveries, _) = call(
        "GET",
        &format!("{}/v1/webhooks/deliveries?endpoint_id={id}", polar.url),
        None,
    );
    let event = deliveries["items"][0]["webhook_event"]["id"]
        .as_str()
        .expect("an event")
        .to_string();
    let (status, _, _) = call(
        "POST",
        &format!("{}/v1/webhooks/events/{event}/redeliver", polar.url),
        None,
    );
    assert_eq!(status, 202);
    acknowledged(&polar, id, 2);
    let before = requests(&polar);
    assert_eq!(validate(&relay), (200, Some("store".into())));
    assert_eq!(
        requests(&polar),
        before,
        "the webhook id was remembered across the kill"
    );
    drop(relay);

    // A damaged store is refused at start, with what to do.
    let damaged = dir.path().join("damaged.redb");
    std::fs::write(&damaged, vec![0x5a; 8192]).expect("write");
    let o = clean_command(BIN)
        .args([
            "--base-url",
            &polar.url,
            "relay",
            "serve",
            "--signing-key",
            key,
        ])
        .args(["--port", "0", "--store", damaged.to_str().expect("UTF-8")])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("damaged"), "{err}");

    // A webhook secret without a store is a usage error.
    let o = clean_command(BIN)
        .args([
            "--base-url",
            &polar.url,
            "relay",
            "serve",
            "--signing-key",
            key,
        ])
        .args(["--port", "0", "--webhook-secret", secret])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

// ---- relay serve's options, each through the real binary ------------------------------------

/// `relay serve` as a process whose stderr is kept (in `stderr`), killed (SIGKILL) on drop.
struct Relay {
    child: std::process::Child,
    url: String,
    banner: Vec<String>,
    stderr: std::path::PathBuf,
}

impl Relay {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_relay(mut cmd: std::process::Command, stderr: &std::path::Path) -> Relay {
    use std::io::BufRead;
    let err = std::fs::File::create(stderr).expect("a stderr file");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("relay serve spawns");
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("the banner");
        let done = line.starts_with("serving until killed");
        banner.push(line);
        if done {
            break;
        }
    }
    let url = banner
        .first()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| {
            panic!(
                "no banner: {banner:?} {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
        .to_string();
    Relay {
        child,
        url,
        banner,
        stderr: stderr.to_path_buf(),
    }
}

/// `relay serve` in front of `polar` with `args` after `serve` (the signing key, port 0 and
/// no rate limits given).
fn serve_cmd(polar: &Served, key: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = clean_command(BIN);
    cmd.args([
        "--base-url",
        &polar.url,
        "relay",
        "serve",
        "--signing-key",
        key,
    ])
    .args(["--port", "0", "--per-ip", "0", "--per-key", "0"])
    .args(args)
    .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN);
    cmd
}

/// A relay that does not start: its exit code and stderr (panics if it is still running
/// after 20 s: it started when it should not have).
fn refused(mut cmd: std::process::Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the relay started (it should have been refused)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn emulator_process() -> Served {
    Served::start(clean_command(BIN).args([
        "emulator",
        "--port",
        "0",
        "--webhook-time-scale",
        "0.0001",
    ]))
}

fn keygen(dir: &ScratchDir) -> String {
    let file = dir.path().join("relay.key");
    let key = file.to_str().expect("UTF-8").to_string();
    let o = clean_command(BIN)
        .args(["relay", "keygen", "--out", &key])
        .launch();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    key
}

fn validate_key(relay: &str, key: &str) -> (u16, Option<String>) {
    let (status, _, source) = call(
        "POST",
        &format!("{relay}/v1/customer-portal/license-keys/validate"),
        Some(json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID})),
    );
    (status, source)
}

/// §5a: add, never break. `POLAR_WEBHOOK_SECRET` set for another purpose (a webhook receiver
/// of the seller's own) does not stop a relay started as before, without a store: it runs,
/// says on stderr that webhooks are off, and forwards every check. Given explicitly without a
/// store, or empty with one, the secret is a usage error (exit 2).
#[test]
fn the_webhook_secret_in_the_environment_never_stops_a_relay_without_a_store() {
    let dir = ScratchDir::new("relay-env-secret");
    let key = keygen(&dir);
    let polar = emulator_process();
    let mut cmd = serve_cmd(&polar, &key, &[]);
    cmd.env(
        "POLAR_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let relay = spawn_relay(cmd, &dir.path().join("relay.err"));
    assert!(
        relay
            .banner
            .iter()
            .any(|l| l.starts_with("no verdict store")),
        "{:?}",
        relay.banner
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !relay.log().contains("POLAR_WEBHOOK_SECRET") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = relay.log();
    assert!(
        log.contains("warning") && log.contains("POLAR_WEBHOOK_SECRET") && log.contains("--store"),
        "{log}"
    );
    assert!(
        !log.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "the secret in the log"
    );
    assert_eq!(
        validate_key(&relay.url, DEMO_KEY),
        (200, Some("polar".into()))
    );
    assert_eq!(
        validate_key(&relay.url, DEMO_KEY),
        (200, Some("polar".into()))
    );
    let (status, _, _) = call(
        "POST",
        &format!("{}/v1/webhooks/polar", relay.url),
        Some(json!({})),
    );
    assert_eq!(status, 404, "no webhook route without a store");
    drop(relay);

    // Explicitly, without a store; or empty (or `whsec_` alone) with one: usage errors.
    let explicit = serve_cmd(
        &polar,
        &key,
        &["--webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    );
    assert_eq!(refused(explicit).0, Some(2));
    for secret in ["", "whsec_"] {
        let (code, err) = refused(serve_cmd(
            &polar,
            &key,
            &["--store", "memory", "--webhook-secret", secret],
        ));
        assert_eq!(code, Some(2), "{secret:?}: {err}");
        assert!(err.contains("webhook") && err.contains("empty"), "{err}");
        let mut from_env = serve_cmd(&polar, &key, &["--store", "memory"]);
        from_env.env("POLAR_WEBHOOK_SECRET", secret);
        let (code, err) = refused(from_env);
        assert_eq!(code, Some(2), "env {secret:?}: {err}");
    }
}

