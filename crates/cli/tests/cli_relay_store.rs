//! `polar-license relay serve --store FILE --webhook-secret …` as a real process in front of
//! `polar-license emulator` (issue #37): Polar's webhooks delivered to it, a `kill -9` in the
//! middle, and a restart that has lost no verdict and no webhook id it acknowledged.

use polar_license_emulator::{DEMO_KEY, DEMO_KEY_NO_ACTIVATIONS, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http::{self, HttpAnswer};
use polar_license_testkit::{
    clean_command, emulator_served, relay_keygen, relay_serve, Launch, ScratchDir, Served,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn agent() -> ureq::Agent {
    http::agent(Duration::from_secs(30))
}

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
    let answer = http::bearer_call(method, url, DEMO_TOKEN, body);
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        answer.header("polar-license-source").map(str::to_string),
    )
}

fn requests(polar: &Served) -> u64 {
    let (_, v, _) = call("GET", &format!("{}/__emulator/requests", polar.url), None);
    v["count"].as_u64().expect("count")
}

fn validate(relay: &Served) -> (u16, Option<String>) {
    validate_key(&relay.url, DEMO_KEY)
}

fn start_relay(polar: &Served, key: &str, store: &str, secret: &str) -> Served {
    Served::start_with_banner(
        relay_serve(BIN, &polar.url, key)
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
    let (dir, key, polar) = polar_and_key("relay-store-kill");
    let key = key.as_str();
    let store = &store_file(&dir);
    let (secret, id) = http::webhook_endpoint(
        &polar.url,
        DEMO_TOKEN,
        &["benefit_grant.updated", "benefit_grant.revoked"],
    );
    let (secret, id) = (secret.as_str(), id.as_str());

    let relay = start_relay(&polar, key, store, secret);
    http::point_endpoint(&polar.url, DEMO_TOKEN, id, &relay.url);
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
    http::point_endpoint(&polar.url, DEMO_TOKEN, id, &relay.url);
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
    let o = relay_serve(BIN, &polar.url, key)
        .args(["--port", "0", "--store", damaged.to_str().expect("UTF-8")])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("damaged"), "{err}");

    // A webhook secret without a store is a usage error.
    let o = relay_serve(BIN, &polar.url, key)
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

    /// Sends the relay `SIG{signal}` (`TERM`: what `systemctl stop` and `docker stop` send).
    #[cfg(unix)]
    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Waits for the relay to exit (at most `within`): its status.
    #[cfg(unix)]
    fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Relay {
    /// Asserts that a line of the banner contains `text`.
    fn assert_banner(&self, text: &str) {
        assert!(
            self.banner.iter().any(|l| l.contains(text)),
            "{:?}",
            self.banner
        );
    }

    /// Asserts that a line of the banner starts with `text`.
    fn assert_banner_line(&self, text: &str) {
        assert!(
            self.banner.iter().any(|l| l.starts_with(text)),
            "{:?}",
            self.banner
        );
    }

    /// Waits (at most 20 s) for the roster's page, read in the background: its log line.
    fn wait_for_roster(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains("the roster holds the organization's") {
            assert!(Instant::now() < deadline, "no roster: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Four keys the roster does not know (`PREFIX-0` to `PREFIX-3`) validated through `relay`:
/// each is Polar's 404, within the first-seen share (10 % of `--budget 40`). Polar's request
/// count before them.
fn unknown_keys_spend_the_share(relay: &Relay, polar: &Served, prefix: &str) -> u64 {
    let calls = requests(polar);
    for i in 0..4 {
        assert_eq!(
            validate_key(&relay.url, &format!("{prefix}-{i}")),
            (404, Some("polar".into()))
        );
    }
    calls
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`serve_cmd`] with the store in memory (`--store memory`) and `options`.
fn memory_cmd(polar: &Served, key: &str, options: &[&str]) -> std::process::Command {
    serve_cmd(polar, key, &[&["--store", "memory"], options].concat())
}

/// [`memory_cmd`] started, its stderr kept in `dir`'s `relay.err`.
fn in_memory(dir: &ScratchDir, polar: &Served, key: &str, options: &[&str]) -> Relay {
    spawn_relay(
        memory_cmd(polar, key, options),
        &dir.path().join("relay.err"),
    )
}

fn spawn_relay(mut cmd: std::process::Command, stderr: &std::path::Path) -> Relay {
    use std::io::BufRead;
    let err = std::fs::File::create(stderr).expect("a stderr file");
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(err).start();
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
        .start();
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
    emulator_served(BIN)
}

/// A scratch directory named `name`, a relay signing key kept in it, and the emulator.
fn polar_and_key(name: &str) -> (ScratchDir, String, Served) {
    let dir = ScratchDir::new(name);
    let key = keygen(&dir);
    (dir, key, emulator_process())
}

/// The verdict store's file in `dir` (`verdicts.redb`): its path.
fn store_file(dir: &ScratchDir) -> String {
    let store = dir.path().join("verdicts.redb");
    store.to_str().expect("UTF-8").to_string()
}

fn keygen(dir: &ScratchDir) -> String {
    relay_keygen(BIN, dir, "relay.key").0
}

/// Asserts that `relay` answers a validate of each `(key, status, source)` of `want` with that
/// status and `polar-license-source` header, in order, one request a row.
fn answers(relay: &str, want: &[(&str, u16, &str)]) {
    for &(key, status, source) in want {
        assert_eq!(
            validate_key(relay, key),
            (status, Some(source.to_string())),
            "validate {key}"
        );
    }
}

fn validate_key(relay: &str, key: &str) -> (u16, Option<String>) {
    let (status, _, source) = call(
        "POST",
        &format!("{relay}/v1/customer-portal/license-keys/validate"),
        Some(json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID})),
    );
    (status, source)
}

fn set_fault(polar: &Served, fault: Value) {
    let (status, body, _) = call(
        "POST",
        &format!("{}/__emulator/fault", polar.url),
        Some(fault),
    );
    assert_eq!(status, 204, "{body}");
}

/// A new key in the emulator; its license key id.
fn add_key(polar: &Served, key: &str) -> String {
    let (status, body, _) = call(
        "POST",
        &format!("{}/__emulator/keys", polar.url),
        Some(json!({"key": key, "limit_activations": 3})),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// §5a: add, never break. `POLAR_WEBHOOK_SECRET` set for another purpose (a webhook receiver
/// of the seller's own) does not stop a relay started as before, without a store: it runs,
/// says on stderr that webhooks are off, and forwards every check. Given explicitly without a
/// store, or empty with one, the secret is a usage error (exit 2).
#[test]
fn the_webhook_secret_in_the_environment_never_stops_a_relay_without_a_store() {
    let (dir, key, polar) = polar_and_key("relay-env-secret");
    let mut cmd = serve_cmd(&polar, &key, &[]);
    cmd.env(
        "POLAR_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let relay = spawn_relay(cmd, &dir.path().join("relay.err"));
    relay.assert_banner_line("no verdict store");
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
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "polar"), (DEMO_KEY, 200, "polar")],
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
        let (code, err) = refused(memory_cmd(&polar, &key, &["--webhook-secret", secret]));
        assert_eq!(code, Some(2), "{secret:?}: {err}");
        assert!(err.contains("webhook") && err.contains("empty"), "{err}");
        let mut from_env = serve_cmd(&polar, &key, &["--store", "memory"]);
        from_env.env("POLAR_WEBHOOK_SECRET", secret);
        let (code, err) = refused(from_env);
        assert_eq!(code, Some(2), "env {secret:?}: {err}");
    }
}

/// `--fresh-for`, `--stale-for` and `--denial-for` as the emulator's request count and the
/// `polar-license-source` header show them: a grant and a denial answered with no call while
/// fresh, asked again after; while Polar fails, answered `stale` until `--stale-for`, then
/// Polar's failure passes through.
#[test]
fn fresh_for_stale_for_and_denial_for_take_effect() {
    let (dir, key, polar) = polar_and_key("relay-fresh-stale");
    let relay = in_memory(
        &dir,
        &polar,
        &key,
        &["--fresh-for", "2", "--stale-for", "4", "--denial-for", "2"],
    );
    relay.assert_banner("fresh 2 s, stale 4 s");
    let unknown = "UNKNOWN-0000-NEVER-SOLD";
    let calls = requests(&polar);
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "polar"), (unknown, 404, "polar")],
    );
    assert_eq!(requests(&polar), calls + 2);
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "store"), (unknown, 404, "store")],
    );
    assert_eq!(
        requests(&polar),
        calls + 2,
        "a stored grant and denial: no call"
    );
    std::thread::sleep(Duration::from_millis(2_100));
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "polar"), (unknown, 404, "polar")],
    );
    assert_eq!(
        requests(&polar),
        calls + 4,
        "past --fresh-for and --denial-for: asked"
    );

    // Polar fails: within --stale-for the stored answers stand in, past it the failure passes.
    set_fault(
        &polar,
        json!({"kind": "status", "status": 503, "body": "Service Unavailable"}),
    );
    std::thread::sleep(Duration::from_millis(2_100));
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "stale"), (unknown, 404, "stale")],
    );
    std::thread::sleep(Duration::from_millis(2_100));
    answers(
        &relay.url,
        &[(DEMO_KEY, 503, "polar"), (unknown, 503, "polar")],
    );
}

/// `--budget N`: never more than N calls a minute (a quarter kept for activations), the next
/// validate a 429 with no call; `--server sandbox` defaults it to 100.
#[test]
fn the_budget_holds_and_the_sandbox_defaults_it_to_100() {
    let (dir, key, polar) = polar_and_key("relay-budget");
    // --no-roster (on by default since #52): these never-seen keys may each take the budget,
    // and the roster's page read spends none of it here.
    let relay = in_memory(&dir, &polar, &key, &["--budget", "4", "--no-roster"]);
    let calls = requests(&polar);
    for i in 0..3 {
        assert_eq!(
            validate_key(&relay.url, &format!("UNKNOWN-BUDGET-{i}")),
            (404, Some("polar".into()))
        );
    }
    assert_eq!(
        validate_key(&relay.url, "UNKNOWN-BUDGET-3"),
        (429, Some("relay".into())),
        "past the validates' share of --budget 4"
    );
    assert_eq!(requests(&polar), calls + 3, "the budget is never exceeded");
    drop(relay);

    // The sandbox (never asked here: the banner says what the relay will spend).
    for (args, budget) in [
        (
            vec!["--server", "sandbox"],
            "budget 100 calls/min (25 kept for activations)",
        ),
        (vec![], "budget 500 calls/min (125 kept for activations)"),
    ] {
        let mut cmd = clean_command(BIN);
        cmd.args(&args)
            .args([
                "relay",
                "serve",
                "--signing-key",
                &key,
                "--port",
                "0",
                "--store",
                "memory",
            ])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN);
        let relay = spawn_relay(cmd, &dir.path().join("sandbox.err"));
        assert!(
            relay.banner.iter().any(|l| l.contains(budget)),
            "{args:?}: {:?}",
            relay.banner
        );
    }
}

/// `--store memory` and `POLAR_LICENSE_RELAY_STORE=memory` keep the store in memory (answers
/// from it, nothing written in the data directory); `--store` alone is a file there.
#[test]
fn store_memory_by_option_and_by_environment() {
    let dir = ScratchDir::new("relay-store-memory");
    let key = keygen(&dir);
    let data = if cfg!(windows) {
        // %LOCALAPPDATA% is a known folder no environment variable moves: the user's real
        // one, so this runs only in a throwaway profile (scripts/test-windows.sh's wine prefix).
        if std::env::var_os("POLAR_LICENSE_TEST_THROWAWAY_PROFILE").is_none() {
            eprintln!("skipped on Windows outside a throwaway profile: the default directory");
            return;
        }
        dirs::data_local_dir().expect("a data dir")
    } else {
        dir.path().join("data")
    };
    std::fs::create_dir_all(&data).expect("data dir");
    let file = data.join("polar-license").join("relay-store.redb");
    let _ = std::fs::remove_file(&file);
    let polar = emulator_process();
    for by_env in [false, true] {
        let mut cmd = serve_cmd(
            &polar,
            &key,
            if by_env { &[] } else { &["--store", "memory"] },
        );
        cmd.env("XDG_DATA_HOME", &data).env("HOME", dir.path());
        if by_env {
            cmd.env("POLAR_LICENSE_RELAY_STORE", "memory");
        }
        let relay = spawn_relay(cmd, &dir.path().join("relay.err"));
        relay.assert_banner_line("verdict store: memory (nothing on disk)");
        let calls = requests(&polar);
        answers(
            &relay.url,
            &[(DEMO_KEY, 200, "polar"), (DEMO_KEY, 200, "store")],
        );
        assert_eq!(requests(&polar), calls + 1);
        if cfg!(windows) {
            // The profile holds other programs' folders: the relay's file is what must not be.
            assert!(!file.exists(), "written on disk: {file:?}");
        } else {
            let written: Vec<_> = walk(&data);
            assert!(written.is_empty(), "written on disk: {written:?}");
        }
    }
    let mut cmd = serve_cmd(&polar, &key, &["--store"]);
    cmd.env("XDG_DATA_HOME", &data).env("HOME", dir.path());
    let relay = spawn_relay(cmd, &dir.path().join("relay.err"));
    relay.assert_banner(file.to_str().expect("UTF-8"));
    assert!(file.exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// What a check or a webhook was answered, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Granted,
    Denied,
}

/// `kill -9` while checks (Polar slowed, so calls are under way) and Polar's revocations are
/// in flight: after a restart on the same file, every revocation whose delivery got a 2xx is
/// refused from the store, every grant and denial the relay answered is answered from the
/// store, with no call to Polar. Then the file, truncated or with bits flipped, is refused at
/// start (and stays refused), never read.
#[test]
fn a_kill_9_under_load_loses_no_acknowledged_revocation_and_no_answer_sent() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = ScratchDir::new("relay-store-load");
    let key = keygen(&dir);
    let store = store_file(&dir);
    let polar = emulator_process();
    let keys: Vec<(String, String)> = (0..16)
        .map(|i| {
            let k = format!("LOAD-{i:02}-7H3K9Q");
            let id = add_key(&polar, &k);
            (k, id)
        })
        .collect();
    let (secret, endpoint_id) =
        http::webhook_endpoint(&polar.url, DEMO_TOKEN, &["benefit_grant.revoked"]);
    let mut cmd = serve_cmd(&polar, &key, &["--store", &store, "--fresh-for", "1"]);
    cmd.env("POLAR_WEBHOOK_SECRET", &secret);
    let relay = spawn_relay(cmd, &dir.path().join("relay.err"));
    http::point_endpoint(&polar.url, DEMO_TOKEN, &endpoint_id, &relay.url);
    for (k, _) in &keys {
        assert_eq!(validate_key(&relay.url, k).0, 200);
    }

    // Load: checks of every key (Polar answering slowly), revocations of the second half.
    set_fault(&polar, json!({"kind": "delay", "ms": 40}));
    let answers: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let checkers: Vec<_> = (0..4)
        .map(|t| {
            let (url, keys) = (relay.url.clone(), keys.clone());
            let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let k = &keys[i % keys.len()].0;
                    i += 1;
                    let request = ureq::http::Request::builder()
                        .method("POST")
                        .uri(format!("{url}/v1/customer-portal/license-keys/validate"))
                        .header("content-type", "application/json")
                        .body(
                            json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
                        )
                        .expect("a request");
                    let seen = match agent().run(request).map(|r| r.status().as_u16()) {
                        Ok(200) => Seen::Granted,
                        Ok(404) => Seen::Denied,
                        _ => continue,
                    };
                    answers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(k.clone(), seen);
                }
            })
        })
        .collect();
    let revoked: Vec<&(String, String)> = keys[8..].iter().collect();
    for (k, _) in &revoked {
        let (status, _, _) = call(
            "PATCH",
            &format!("{}/__emulator/keys/{k}", polar.url),
            Some(json!({"status": "revoked"})),
        );
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(40));
    }
    drop(relay); // kill -9, checks and deliveries under way
    stop.store(true, Ordering::SeqCst);
    for t in checkers {
        t.join().expect("a checker");
    }
    set_fault(&polar, Value::Null);
    // The revocations the relay acknowledged (the emulator cannot deliver any more: the
    // endpoint names the dead relay).
    let (_, list, _) = call(
        "GET",
        &format!(
            "{}/v1/webhooks/deliveries?endpoint_id={endpoint_id}&limit=100",
            polar.url
        ),
        None,
    );
    let acked: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["succeeded"] == true)
        .filter_map(|d| d["webhook_event"]["payload"].as_str())
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .filter_map(|e| {
            e["data"]["properties"]["license_key_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(
        !acked.is_empty(),
        "no revocation was acknowledged before the kill: {list}"
    );
    let answers = answers.lock().unwrap_or_else(|e| e.into_inner()).clone();

    // The same file: every acknowledged revocation refused, every answer sent answered again,
    // from the store, with no call.
    let relay = spawn_relay(
        serve_cmd(&polar, &key, &["--store", &store]),
        &dir.path().join("relay2.err"),
    );
    let before = requests(&polar);
    let mut checked = 0;
    for (k, id) in &keys {
        let expected = if acked.contains(id) {
            Some((404, Some("store".to_string())))
        } else if revoked.iter().any(|(r, _)| r == k) {
            // Revoked in Polar, its webhook not acknowledged: Polar's own answer, if it
            // reached the client, was stored.
            (answers.get(k) == Some(&Seen::Denied)).then(|| (404, Some("store".to_string())))
        } else {
            Some((200, Some("store".to_string())))
        };
        if let Some(expected) = expected {
            assert_eq!(validate_key(&relay.url, k), expected, "{k}");
            checked += 1;
        }
    }
    assert!(checked >= 8 + acked.len());
    assert_eq!(requests(&polar), before, "all from the store, no call");
    drop(relay);

    // Damaged copies of the real file: refused at start with what to do, and again after.
    let bytes = std::fs::read(&store).expect("the store");
    let id = keys[0].1.as_bytes();
    let mut flipped = bytes.clone();
    let mut n = 0;
    for at in 0..bytes.len().saturating_sub(id.len()) {
        if &bytes[at..at + id.len()] == id {
            flipped[at + 3] ^= 0x04;
            n += 1;
        }
    }
    assert!(n > 0, "the license key id is in the file");
    let truncated = bytes[..bytes.len() / 2].to_vec();
    for (name, damaged) in [("flipped", flipped), ("truncated", truncated)] {
        let path = dir.path().join(format!("{name}.redb"));
        std::fs::write(&path, &damaged).expect("write");
        for attempt in 0..2 {
            let (code, err) = refused(serve_cmd(
                &polar,
                &key,
                &["--store", path.to_str().expect("UTF-8")],
            ));
            assert_eq!(code, Some(3), "{name} {attempt}: {err}");
            assert!(err.contains("damaged"), "{name} {attempt}: {err}");
        }
    }
}

/// SIGTERM (what `systemctl stop` and `docker stop` send) and Ctrl-C (SIGINT): `relay serve`
/// stops taking connections, answers the request under way (Polar slowed to 1.5 s, the signal
/// sent 0.4 s into it), closes its store and exits 0, saying so on stderr. The store opens
/// again and answers the verdict it kept, without asking Polar.
#[cfg(unix)]
#[test]
fn sigterm_and_ctrl_c_answer_the_request_under_way_and_close_the_store() {
    let (dir, key, polar) = polar_and_key("relay-signals");
    let store = &store_file(&dir);
    for signal in ["TERM", "INT"] {
        let log = dir.path().join(format!("relay-{signal}.log"));
        let mut relay = spawn_relay(serve_cmd(&polar, &key, &["--store", store]), &log);
        assert_eq!(validate_key(&relay.url, DEMO_KEY).0, 200);
        // A request under way when the signal comes: a key the store does not know, so the
        // relay asks Polar, which takes 1.5 s.
        let fresh = format!("SIG{signal}-1A2B3C4D-5E6F-4A1B-8C2D-3E4F5A6B7C8D");
        add_key(&polar, &fresh);
        set_fault(&polar, json!({"kind": "delay", "ms": 1500}));
        let url = relay.url.clone();
        let asking = std::thread::spawn(move || validate_key(&url, &fresh));
        std::thread::sleep(Duration::from_millis(400));
        relay.signal(signal);
        let status = relay.exited(Duration::from_secs(20));
        let (answered, source) = asking.join().expect("the request");
        assert_eq!(
            (answered, source.as_deref()),
            (200, Some("polar")),
            "{}",
            relay.log()
        );
        set_fault(&polar, Value::Null);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {}", relay.log());
        let said = relay.log();
        assert!(
            said.contains(&format!("relay: SIG{signal}: no new connections"))
                && said.contains("relay: stopped"),
            "{said}"
        );
        // Nothing came after the signal: a new connection is refused.
        assert!(agent().get(&relay.url).call().is_err());
    }
    // The store opens again, closed cleanly, and still holds the key's verdict.
    let log = dir.path().join("relay-again.log");
    let relay = spawn_relay(serve_cmd(&polar, &key, &["--store", store]), &log);
    let before = requests(&polar);
    let (status, source) = validate_key(&relay.url, DEMO_KEY);
    assert_eq!(status, 200, "{}", relay.log());
    assert_eq!(source.as_deref(), Some("store"), "{}", relay.log());
    assert_eq!(requests(&polar), before, "answered from the store");
    assert!(!relay.log().contains("damaged"), "{}", relay.log());
}

/// One CORS preflight of the validate route on a kept-alive connection (answered by the relay
/// alone, 204; `/healthz` closes its connection): the answer's head (lower case), or `None`
/// when the connection is closed before an answer.
#[cfg(unix)]
fn preflight_on(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::{Read, Write};
    stream
        .write_all(
            b"OPTIONS /v1/customer-portal/license-keys/validate HTTP/1.1\r\nhost: relay\r\n\
              origin: https://app.example.com\r\naccess-control-request-method: POST\r\n\r\n",
        )
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// `--drain` and `POLAR_LICENSE_RELAY_DRAIN` reach the server: after SIGTERM, a kept-alive
/// connection opened before it may still bring a request for the drain's length (5 s here),
/// answered with `connection: close`, and the relay then exits 0. Without them (the default
/// 0.5 s) or with `--drain 0`, that connection is closed once the relay has stopped.
#[cfg(unix)]
#[test]
fn the_drain_by_option_or_environment_keeps_an_idle_connection_after_sigterm() {
    let (dir, key, polar) = polar_and_key("relay-drain");
    let none: &[&str] = &[];
    for (name, args, env, kept) in [
        ("--drain 5", &["--drain", "5"][..], None, true),
        ("POLAR_LICENSE_RELAY_DRAIN=5", none, Some("5"), true),
        ("the default", none, None, false),
        ("--drain 0", &["--drain", "0"][..], None, false),
    ] {
        let log = dir.path().join("relay-drain.log");
        let mut cmd = serve_cmd(&polar, &key, args);
        if let Some(seconds) = env {
            cmd.env("POLAR_LICENSE_RELAY_DRAIN", seconds);
        }
        let mut relay = spawn_relay(cmd, &log);
        let addr = relay
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut conn = std::net::TcpStream::connect(addr).expect("a connection");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("a timeout");
        let head = preflight_on(&mut conn).unwrap_or_else(|| panic!("{name}: {}", relay.log()));
        assert!(head.starts_with("http/1.1 204"), "{name}: {head}");
        assert!(!head.contains("connection: close"), "{name}: {head}");
        relay.signal("TERM");
        if kept {
            std::thread::sleep(Duration::from_millis(1500));
            assert!(
                relay.child.try_wait().expect("wait").is_none(),
                "{name}: stopped before its drain: {}",
                relay.log()
            );
            let head = preflight_on(&mut conn)
                .unwrap_or_else(|| panic!("{name}: closed within the drain: {}", relay.log()));
            assert!(head.starts_with("http/1.1 204"), "{name}: {head}");
            assert!(head.contains("connection: close"), "{name}: {head}");
            let status = relay.exited(Duration::from_secs(20));
            assert_eq!(status.code(), Some(0), "{name}: {}", relay.log());
        } else {
            let status = relay.exited(Duration::from_secs(20));
            assert_eq!(status.code(), Some(0), "{name}: {}", relay.log());
            assert_eq!(
                preflight_on(&mut conn),
                None,
                "{name}: answered after it stopped"
            );
        }
    }
}

/// A SIGTERM sent the moment the relay has said it listens (a service manager stopping it
/// at once) stops it as a later one does: exit 0, "relay: stopped", never the signal's
/// default action. The relay listens for it from before it serves; listened for only after
/// its banner (as before), a SIGTERM in between killed it (the drain test above, under load).
/// Timing-dependent against that bug (see the closing note), never against the fix.
#[cfg(unix)]
#[test]
fn a_sigterm_right_after_the_banner_stops_the_relay_cleanly() {
    use std::os::unix::process::ExitStatusExt;
    let (dir, key, polar) = polar_and_key("relay-early-term");
    for round in 0..30 {
        let log = dir.path().join(format!("relay-early-term-{round}.log"));
        let mut relay = spawn_relay(serve_cmd(&polar, &key, &[]), &log);
        // kill(2) at once (not a `kill` process: the few milliseconds it takes to start are
        // the window this test looks into).
        let pid = i32::try_from(relay.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
        let status = relay.exited(Duration::from_secs(20));
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "round {round}: {}",
            relay.log()
        );
        assert!(
            relay.log().contains("relay: stopped"),
            "round {round}: {}",
            relay.log()
        );
    }
}

/// A relay key pair: `relay keygen`'s file and the `KID=PUBLIC` it prints.
fn keygen_pair(dir: &ScratchDir) -> (String, String) {
    relay_keygen(BIN, dir, "relay-pair.key")
}

/// docs/threat-model.md's row on a relay's `stale` answers, played with the real binaries: the
/// relay holds a grant, Polar revokes the key and then fails (no webhook reaches the relay),
/// and the relay answers from its store, `polar-license-source: stale`. A client without relay
/// keys cannot tell: it reads the grant as Polar's verdict and its grace restarts from it (the
/// limit is `--stale-for`). In signed mode the lease it gets is dated from Polar's answer, so
/// its end does not move and the client licenses offline no longer than Polar's last grant
/// allowed.
#[test]
fn a_stale_grant_restarts_neither_a_clients_grace_nor_a_lease() {
    let dir = ScratchDir::new("relay-stale-client");
    let (key_file, pair) = keygen_pair(&dir);
    let polar = emulator_process();
    let relay = in_memory(
        &dir,
        &polar,
        &key_file,
        &["--fresh-for", "1", "--stale-for", "3600"],
    );
    let unsigned_key = "STALE-UNSIGNED-0001";
    let signed_key = "STALE-SIGNED-0002";
    add_key(&polar, unsigned_key);
    add_key(&polar, signed_key);
    let client = |key: &str, signed: bool, args: &[&str]| -> Value {
        let mut cmd = clean_command(BIN);
        let cache = dir.path().join(if signed { "signed" } else { "unsigned" });
        cmd.args([
            "--json",
            "--base-url",
            &relay.url,
            "--org",
            DEMO_ORGANIZATION_ID,
        ])
        .args(["--cache-dir", cache.to_str().expect("UTF-8")]);
        if signed {
            cmd.args(["--relay-key", &pair]);
        }
        let o = cmd.args(args).args(["--key", key]).launch();
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
    };
    let verified_at = |v: &Value| v["cache"]["verified_at"].as_str().map(str::to_string);
    let lease_end = |v: &Value| v["lease"]["expires_at"].as_str().map(str::to_string);

    for (key, signed) in [(unsigned_key, false), (signed_key, true)] {
        let v = client(key, signed, &["validate"]);
        assert_eq!(
            (v["outcome"].as_str(), v["source"].as_str()),
            (Some("licensed"), Some("online")),
            "{v}"
        );
    }
    let before = client(unsigned_key, false, &["status"]);
    let lease_before = lease_end(&client(signed_key, true, &["status"]));
    assert!(verified_at(&before).is_some(), "{before}");
    assert!(lease_before.is_some(), "the signed client holds a lease");

    // Polar revokes both keys, then fails; the relay is told nothing (no webhook secret).
    for key in [unsigned_key, signed_key] {
        let (status, body, _) = call(
            "PATCH",
            &format!("{}/__emulator/keys/{key}", polar.url),
            Some(json!({"status": "revoked"})),
        );
        assert_eq!(status, 200, "{body}");
    }
    set_fault(
        &polar,
        json!({"kind": "status", "status": 503, "body": "Service Unavailable"}),
    );
    // Whole seconds later (the record's times are seconds), past --fresh-for.
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(
        validate_key(&relay.url, unsigned_key),
        (200, Some("stale".into())),
        "the relay answers its stored grant"
    );

    let unsigned = client(unsigned_key, false, &["validate"]);
    assert_eq!(
        (unsigned["outcome"].as_str(), unsigned["source"].as_str()),
        (Some("licensed"), Some("online")),
        "an unsigned client is licensed by the stale grant: {unsigned}"
    );
    // The client's verdict says where the relay took it from (contract §5a): a check that
    // asks gets the stale grant and says so; a validate is Polar's answer as it came.
    let checked = client(unsigned_key, false, &["--revalidate-after", "0", "check"]);
    assert_eq!(
        (
            checked["outcome"].as_str(),
            checked["source"].as_str(),
            checked["relay_source"].as_str()
        ),
        (Some("licensed"), Some("online"), Some("stale")),
        "{checked}"
    );
    let after = client(unsigned_key, false, &["status"]);
    let seconds = |v: &Value| {
        let at = verified_at(v).unwrap_or_else(|| panic!("no verified_at: {v}"));
        polar_license::rfc3339::DateTime::parse(&at)
            .unwrap_or_else(|| panic!("not RFC 3339: {at}"))
            .unix_timestamp()
    };
    // The relay's answer says its Age: the verdict is dated from when Polar gave it (the
    // relay's clock and the client's read whole seconds apart, so one second either way).
    assert!(
        (seconds(&after) - seconds(&before)).abs() <= 1,
        "its grace runs from Polar's answer, not from the replay of it 2 s later: {before} then \
         {after}"
    );

    let signed = client(signed_key, true, &["validate"]);
    assert_eq!(signed["outcome"].as_str(), Some("licensed"), "{signed}");
    assert_eq!(
        lease_end(&signed),
        lease_before,
        "the lease is dated from Polar's answer, not the relay's: {signed}"
    );
}

// ---- the operator's tools (issue #45, contract §5b) -----------------------------------------

/// The banner's `metrics: URL; health: URL` line.
/// `cmd` started with its metrics on a listener of their own (`POLAR_LICENSE_RELAY_METRICS_ADDR`),
/// its stderr in `log`; the relay and its metrics and health URLs.
fn spawn_with_metrics(
    mut cmd: std::process::Command,
    log: &std::path::Path,
) -> (Relay, String, String) {
    cmd.env("POLAR_LICENSE_RELAY_METRICS_ADDR", "127.0.0.1:0");
    let relay = spawn_relay(cmd, log);
    let (metrics, health) = metrics_and_health(&relay);
    (relay, metrics, health)
}

fn metrics_and_health(relay: &Relay) -> (String, String) {
    let line = relay
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("metrics: "))
        .unwrap_or_else(|| panic!("no metrics line: {:?}", relay.banner));
    let (metrics, health) = line.split_once("; health: ").expect("both");
    (metrics.to_string(), health.to_string())
}

/// One sample of a scrape (no labels), by name.
fn sample(metrics_url: &str, name: &str) -> Option<f64> {
    let mut resp = agent().get(metrics_url).call().ok()?;
    let text = resp.body_mut().read_to_string().ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// `--log-format json`, `--webhook-silence` and the metrics listener (by its environment
/// variable) through the real binary: every stderr line is one JSON object, an answer's has
/// the text line's parts (route, the key redacted, status, source), the silence warning comes
/// at warning level and `/healthz` says so, and the metrics route counts the answers.
#[test]
fn json_logs_the_silence_warning_healthz_and_metrics_from_relay_serve() {
    let (dir, key, polar) = polar_and_key("relay-ops");
    let log = dir.path().join("relay.log");
    let mut cmd = memory_cmd(
        &polar,
        &key,
        &["--log-format", "json", "--webhook-silence", "1"],
    );
    cmd.env(
        "POLAR_WEBHOOK_SECRET",
        "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=",
    );
    let (relay, metrics, health) = spawn_with_metrics(cmd, &log);
    answers(
        &relay.url,
        &[(DEMO_KEY, 200, "polar"), (DEMO_KEY, 200, "store")],
    );
    assert_eq!(
        sample(&metrics, "polar_license_relay_polar_calls_total"),
        Some(1.0)
    );
    // No webhook for 1 s: the warning (the relay looks every second), and /healthz says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines: Vec<Value> = relay
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        if lines.iter().any(|l| l["level"] == "WARN") {
            break lines;
        }
        assert!(Instant::now() < deadline, "no warning: {}", relay.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let warning = lines
        .iter()
        .find(|l| l["level"] == "WARN")
        .expect("a warning");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("no webhook from Polar")),
        "{warning}"
    );
    let (status, body, _) = call("GET", &health, None);
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("warning")),
        "{body}"
    );
    assert_eq!(body["webhooks"]["silent"], true);
    // One object per answer, with the text line's parts; the key only redacted.
    let answers: Vec<&Value> = lines.iter().filter(|l| l["route"] == "validate").collect();
    assert_eq!(answers.len(), 2, "{lines:?}");
    for (answer, source) in answers.iter().zip(["polar", "store"]) {
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["source"], source, "{answer}");
        assert_eq!(answer["level"], "INFO", "{answer}");
        let redacted = answer["key"].as_str().expect("the key, redacted");
        assert!(redacted.starts_with("****") && DEMO_KEY.ends_with(&redacted[5..]));
    }
    assert!(!relay.log().contains(DEMO_KEY), "{}", relay.log());
    assert!(!relay.log().contains(DEMO_TOKEN), "{}", relay.log());
    // A metrics address it cannot listen on stops it at start (exit 3), naming the option.
    let (code, err) = refused(serve_cmd(
        &polar,
        &key,
        &["--metrics-addr", "not-an-address"],
    ));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot listen for metrics"), "{err}");
}

/// Issue #63 item 3: `--metrics-token` (by its environment variable, a secret): the metrics
/// listener answers 401 without its bearer and the metrics with it, as the npm relay's
/// metrics route; a token under 16 characters stops it at start, naming the option and not
/// the token.
#[test]
fn the_metrics_token_is_asked_for_by_relay_serve() {
    const TOKEN: &str = "cli-metrics-token-0123456789";
    let (dir, key, polar) = polar_and_key("relay-metrics-token");
    let log = dir.path().join("relay.log");
    let mut cmd = serve_cmd(&polar, &key, &["--metrics-addr", "127.0.0.1:0"]);
    cmd.env("POLAR_LICENSE_RELAY_METRICS_TOKEN", TOKEN);
    let relay = spawn_relay(cmd, &log);
    let (metrics, _) = metrics_and_health(&relay);
    let status = |authorization: Option<String>| {
        let mut req = agent().get(&metrics);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.call().map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(format!("Bearer {TOKEN}x"))), 401);
    assert_eq!(status(Some(format!("Bearer {TOKEN}"))), 200);
    assert!(!relay.log().contains(TOKEN), "{}", relay.log());
    let (code, err) = refused(serve_cmd(
        &polar,
        &key,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-token",
            "short-secret",
        ],
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("metrics-token"), "{err}");
    assert!(!err.contains("short-secret"), "{err}");
}

/// `--breaker-failures` and `--breaker-open-for` through the real binary: two calls in a row
/// that Polar answers 503 open the breaker, the next check is the relay's 502 with no call
/// (the metrics count none), `/healthz` and the metrics say `open`; an open time of 0 is
/// refused at start (exit 2).
#[test]
fn the_breaker_options_open_it_after_their_failures() {
    let (dir, key, polar) = polar_and_key("relay-breaker");
    let log = dir.path().join("relay.log");
    let cmd = memory_cmd(
        &polar,
        &key,
        &["--breaker-failures", "2", "--breaker-open-for", "60"],
    );
    let (relay, metrics, health) = spawn_with_metrics(cmd, &log);
    set_fault(
        &polar,
        json!({"kind": "status", "status": 503, "body": "unavailable"}),
    );
    for _ in 0..2 {
        assert_eq!(validate_key(&relay.url, DEMO_KEY).0, 503);
    }
    assert_eq!(validate_key(&relay.url, DEMO_KEY).0, 502);
    assert_eq!(
        sample(&metrics, "polar_license_relay_polar_calls_total"),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, "polar_license_relay_breaker_open"),
        Some(1.0)
    );
    let (status, body, _) = call("GET", &health, None);
    assert_eq!(
        (status, &body["breaker"]["state"]),
        (200, &json!("open")),
        "{body}"
    );
    let (code, err) = refused(serve_cmd(&polar, &key, &["--breaker-open-for", "0"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("breaker-open-for"), "{err}");
}

/// A validate that reports a failed connection instead of panicking.
#[cfg(unix)]
fn try_validate(relay: &str, key: &str) -> Result<(u16, Option<String>), ureq::Error> {
    let resp = agent()
        .post(&format!("{relay}/v1/customer-portal/license-keys/validate"))
        .header("content-type", "application/json")
        .send(json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string())?;
    let source = resp
        .headers()
        .get("polar-license-source")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((resp.status().as_u16(), source))
}

/// SIGTERM under load: twelve requests read (the metrics' in-flight gauge says so), four of
/// them waiting for Polar (1.5 s each) and eight for a request slot, and a client looping
/// on a stored key: every one of the twelve is answered with Polar's grant, the looping
/// client gets only whole answers until the listener closes, the process exits 0, and the
/// store opens again cleanly and answers all twelve keys from what it kept, without a call.
#[cfg(unix)]
#[test]
fn sigterm_under_load_answers_every_request_under_way_and_the_store_reopens_clean() {
    let (dir, key, polar) = polar_and_key("relay-sigterm-load");
    let store = &store_file(&dir);
    let log = dir.path().join("relay.log");
    let args = [
        "--store",
        store,
        "--concurrent-requests",
        "4",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut relay = spawn_relay(serve_cmd(&polar, &key, &args), &log);
    let (metrics, _) = metrics_and_health(&relay);
    assert_eq!(validate_key(&relay.url, DEMO_KEY).0, 200);
    let keys: Vec<String> = (0..12)
        .map(|i| format!("LOAD{i:02}-1A2B3C4D-5E6F-4A1B-8C2D-3E4F5A6B7C8D"))
        .collect();
    for k in &keys {
        add_key(&polar, k);
    }
    set_fault(&polar, json!({"kind": "delay", "ms": 1500}));
    let asking: Vec<_> = keys
        .iter()
        .map(|k| {
            let (url, k) = (relay.url.clone(), k.clone());
            std::thread::spawn(move || try_validate(&url, &k))
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let (url, stop) = (relay.url.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match try_validate(&url, DEMO_KEY) {
                    Ok(answer) => answers.push(answer),
                    // The listener closed (the signal): no more answers to expect.
                    Err(_) => break,
                }
            }
            answers
        })
    };
    // All twelve read by the relay before the signal.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&metrics, "polar_license_relay_requests_in_flight").unwrap_or(0.0) < 12.0 {
        assert!(
            Instant::now() < deadline,
            "not all in flight: {}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    relay.signal("TERM");
    let status = relay.exited(Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for (k, asked) in keys.iter().zip(asking) {
        let answer = asked.join().expect("the request");
        assert!(
            matches!(&answer, Ok((200, Some(s))) if s == "polar"),
            "{k}: {answer:?} {}",
            relay.log()
        );
    }
    let looped = looping.join().expect("the loop");
    assert!(
        looped.iter().all(|a| a.0 == 200),
        "{looped:?} {}",
        relay.log()
    );
    set_fault(&polar, Value::Null);
    assert_eq!(status.code(), Some(0), "{}", relay.log());
    assert!(relay.log().contains("relay: stopped"), "{}", relay.log());

    // The store opens again, cleanly, and answers every key it kept without asking Polar.
    let log = dir.path().join("relay-again.log");
    let relay = spawn_relay(serve_cmd(&polar, &key, &["--store", store]), &log);
    let before = requests(&polar);
    for k in &keys {
        assert_eq!(
            validate_key(&relay.url, k),
            (200, Some("store".into())),
            "{k}: {}",
            relay.log()
        );
    }
    assert_eq!(requests(&polar), before, "answered from the store");
    assert!(!relay.log().contains("damaged"), "{}", relay.log());
}

/// `--roster` (issue #45): the relay pages in the organization's keys, so a known key that was
/// never checked goes to Polar while keys it does not know spend only `--first-seen-share` of
/// `--budget` (here 10 % of 40: 4 calls), then get 429 with `Retry-After`, never a denial;
/// `--first-seen-share` above 100 is a usage error.
#[test]
fn the_roster_gives_unknown_keys_only_their_share_and_known_keys_the_budget() {
    let (dir, key, polar) = polar_and_key("relay-roster");
    let relay = in_memory(&dir, &polar, &key, &["--budget", "40", "--roster"]);
    relay.assert_banner("roster on (keys it does not know: 10 % of the budget)");
    // The roster's page is read in the background: its log line says when.
    relay.wait_for_roster();
    let calls = unknown_keys_spend_the_share(&relay, &polar, "UNKNOWN-ROSTER");
    let (status, headers, source) = call_with_headers(
        &format!("{}/v1/customer-portal/license-keys/validate", relay.url),
        json!({"key": "UNKNOWN-ROSTER-4", "organization_id": DEMO_ORGANIZATION_ID}),
    );
    assert_eq!((status, source.as_deref()), (429, Some("relay")));
    assert!(headers.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    // A key of the organization never checked before: Polar's verdict, within the budget.
    answers(&relay.url, &[(DEMO_KEY_NO_ACTIVATIONS, 200, "polar")]);
    assert_eq!(requests(&polar), calls + 5, "4 guesses and the known key");
    drop(relay);

    let (code, err) = refused(memory_cmd(
        &polar,
        &key,
        &["--roster", "--first-seen-share", "101"],
    ));
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = refused(serve_cmd(&polar, &key, &["--roster"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs --store"), "{err}");
}

/// Issue #52: with a store, a token and a webhook secret and no other flag, the roster is on
/// (the banner says so, the keys are paged in, keys it does not know spend only their share:
/// 10 % of `--budget 40`, then 429 from the relay); `--no-roster` or
/// `POLAR_LICENSE_RELAY_ROSTER=0` turns it off (every key may spend the budget), `--roster`
/// is still accepted, and `--no-roster` needs no store.
#[test]
fn the_roster_is_on_by_default_with_a_store_and_no_roster_turns_it_off() {
    let (dir, key, polar) = polar_and_key("relay-roster-default");
    let secret = "whsec_cm9zdGVyLWRlZmF1bHQtdGVzdC1zZWNyZXQ=";
    let relay = in_memory(
        &dir,
        &polar,
        &key,
        &["--budget", "40", "--webhook-secret", secret],
    );
    let on = "roster on (keys it does not know: 10 % of the budget)";
    relay.assert_banner(on);
    relay.wait_for_roster();
    let calls = unknown_keys_spend_the_share(&relay, &polar, "UNKNOWN-DEFAULT");
    answers(&relay.url, &[("UNKNOWN-DEFAULT-4", 429, "relay")]);
    assert_eq!(requests(&polar), calls + 4, "the fifth guess asked nothing");
    drop(relay);

    let off = "roster off (every key may spend the whole budget: --no-roster)";
    let mut by_env = memory_cmd(&polar, &key, &["--budget", "40"]);
    by_env.env("POLAR_LICENSE_RELAY_ROSTER", "0");
    for (i, cmd) in [
        memory_cmd(&polar, &key, &["--budget", "40", "--no-roster"]),
        by_env,
    ]
    .into_iter()
    .enumerate()
    {
        let relay = spawn_relay(cmd, &dir.path().join(format!("relay-off-{i}.err")));
        relay.assert_banner(off);
        let calls = requests(&polar);
        for n in 0..6 {
            assert_eq!(
                validate_key(&relay.url, &format!("UNKNOWN-OFF-{i}-{n}")),
                (404, Some("polar".into())),
                "no share without the roster"
            );
        }
        assert_eq!(requests(&polar), calls + 6);
    }
    let relay = spawn_relay(
        memory_cmd(&polar, &key, &["--roster"]),
        &dir.path().join("relay-flag.err"),
    );
    relay.assert_banner(on);
    drop(relay);
    let relay = spawn_relay(
        serve_cmd(&polar, &key, &["--no-roster"]),
        &dir.path().join("relay-nostore.err"),
    );
    assert!(relay.url.starts_with("http://"));
}

/// A validate's status, its `retry-after` and its source.
fn call_with_headers(url: &str, body: Value) -> (u16, Option<String>, Option<String>) {
    let resp = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("an answer");
    HttpAnswer::read(resp).status_and("retry-after", "polar-license-source")
}

/// `--reconcile-every`, `--stale-after-ms` and `--marked-stale-for` through the real binary:
/// with `--reconcile-every 1` the stored grant's key is asked of Polar again by id within
/// seconds (the default, 600 s, would not in this test); with `--stale-after-ms 3000` a check
/// of a stored grant past `--fresh-for` waits 3 s for a slow Polar before it is answered stale
/// (the default waits 0.8 s); out-of-range values are refused at start (exit 2).
#[test]
fn the_reconcile_and_stale_wait_options_take_effect() {
    let (dir, key, polar) = polar_and_key("relay-reconcile-options");
    let license = "RECONCILE-OPTIONS-1A2B3C";
    add_key(&polar, license);
    let log = dir.path().join("relay.log");
    let cmd = memory_cmd(
        &polar,
        &key,
        &[
            "--fresh-for",
            "1",
            "--reconcile-every",
            "1",
            "--stale-after-ms",
            "3000",
            "--marked-stale-for",
            "600",
        ],
    );
    let (relay, metrics, _) = spawn_with_metrics(cmd, &log);
    answers(&relay.url, &[(license, 200, "polar")]);
    let granted = "polar_license_relay_reconcile_calls_total{outcome=\"granted\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&metrics, granted).unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "no reconcile call in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past --fresh-for, Polar slow: the stored grant after --stale-after-ms, not before.
    set_fault(&polar, json!({"kind": "delay", "ms": 8000}));
    std::thread::sleep(Duration::from_millis(1_200));
    let began = Instant::now();
    let answer = validate_key(&relay.url, license);
    let waited = began.elapsed();
    assert_eq!(answer, (200, Some("stale".into())));
    assert!(waited >= Duration::from_millis(2_900), "{waited:?}");
    let (code, err) = refused(serve_cmd(&polar, &key, &["--stale-after-ms", "10001"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("stale-after-ms"), "{err}");
}

/// Issue #52: a key's last six characters (its redacted form, `****-XXXXXX`) went into the
/// relay's text log unescaped, so a key ending in `\nERROR` forged a log line. `relay serve`
/// as a real process, validates of keys ending in `\nERROR`, `\rERROR` and a line separator:
/// each logs one line, the key's characters escaped, and no line of the log is forged.
#[test]
fn a_key_holding_line_breaks_forges_no_log_line() {
    let (dir, key, polar) = polar_and_key("relay-log-escape");
    let relay = in_memory(&dir, &polar, &key, &[]);
    let keys = [
        "FORGED-LOG-LINE\nERROR",
        "FORGED-LOG-LINE\rERROR",
        "FORGED-LOG-LINE\u{2028}ERROR",
    ];
    for k in keys {
        let (status, source) = validate_key(&relay.url, k);
        assert_eq!((status, source.as_deref()), (404, Some("polar")), "{k:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.log().matches("no lease").count() < keys.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = relay.log();
    assert_eq!(log.matches("no lease").count(), keys.len(), "{log}");
    assert!(!log.contains('\r'), "{log:?}");
    for line in log.lines() {
        // Every line of the relay's log says `relay:` after its level; a forged one does not.
        assert!(
            !line.starts_with("ERROR") || line.starts_with("ERROR relay: "),
            "a forged line {line:?} in {log}"
        );
    }
    for tail in ["\\nERROR", "\\rERROR", "\\u{2028}ERROR"] {
        assert!(log.contains(&format!("****-{tail} 404")), "{tail}: {log}");
    }
}
