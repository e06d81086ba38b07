//! What needs the host (not built for wasm32): scratch directories, the `Licensing` builder
//! and request counts against the emulator, the feature-gating seed, the `polar-license`
//! binary with the host's settings cleared (and its `emulator` command as a process), and a
//! CONNECT proxy on loopback. The crate root re-exports all of it.

use polar_license::{Licensing, LicensingBuilder, MachineBinding};

mod world;
use polar_license_emulator::{
    Emulator, Options, Seed, SeedBenefit, SeedKey, SeedMeter, SeedSubscription,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
pub use world::*;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// `run` on each of `items`, each on a thread of its own (a table's rows, each against its own
/// emulator), the answers in the items' order; a panic on one thread fails the caller.
pub fn each_on_a_thread<T: Sync, R: Send>(items: &[T], run: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let run = &run;
    thread::scope(|s| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| s.spawn(move || run(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a row panicked"))
            .collect()
    })
}

/// A fresh directory under the system's temp dir, unique to this process and call, removed
/// (with everything in it) when dropped: never the user's data dir, never another test's.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new, empty directory named `polar-license-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "polar-license-{label}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("scratch dir {}: {e}", dir.display());
        }
        ScratchDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Removes it now and says whether that worked, for a test that checks it can (dropping
    /// it removes it too, silently).
    pub fn remove(self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.0)
    }

    /// Its path as UTF-8 (for command-line arguments).
    pub fn arg(&self) -> &str {
        match self.0.to_str() {
            Some(s) => s,
            None => panic!("the temp dir is not UTF-8: {}", self.0.display()),
        }
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// Also makes `&ScratchDir` a `PathBuf` (`impl Into<PathBuf>` arguments) and an environment
/// variable's value.
impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `program` with every `POLAR_*` variable of the host removed, so the environment the tests
/// run in (a developer's own settings, CI's) can never change what the command line does:
/// each test sets what it means to. One rule instead of a list that drifts from the options.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("POLAR_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `inner` run under `wrapper` (`strace`, `setpriv`): `wrapper ARGS… PROGRAM ITS-ARGS…`, with
/// the environment `inner` sets and removes.
pub fn wrapped(wrapper: &str, args: &[&str], inner: &Command) -> Command {
    let mut cmd = Command::new(wrapper);
    cmd.args(args)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// Runs `command` (the program and its arguments) on a pseudo-terminal (`script -qfec`), and
/// once `prompt` is on the screen types what `typed` gives (asked then: what the person reads
/// once prompted) and Enter: the exit code (`None`: killed by a signal) and everything the
/// terminal showed. Panics when the program exits without prompting, or shows no prompt in
/// 60 s.
#[cfg(unix)]
pub fn on_terminal(
    command: &[String],
    prompt: &str,
    typed: impl FnOnce() -> String,
) -> (Option<i32>, String) {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let line = command
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = clean_command("script")
        .args(["-qfec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().expect("its stdout");
    let reader = {
        let screen = Arc::clone(&screen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown =
        || String::from_utf8_lossy(&screen.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let start = Instant::now();
    while !shown().contains(prompt) {
        if let Some(exit) = child.try_wait().expect("its state") {
            panic!(
                "exited ({exit}) without asking; the terminal showed: {}",
                shown()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no prompt within 60 s; the terminal showed: {}",
            shown()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut stdin = child.stdin.take().expect("its stdin");
    stdin
        .write_all(format!("{}\n", typed()).as_bytes())
        .expect("typed");
    stdin.flush().expect("typed");
    let status = child.wait().expect("it ends");
    drop(stdin);
    reader.join().expect("the screen read");
    (status.code(), shown())
}

/// Runs or starts a command, trying again only when the process could not be *started*:
/// wine, which runs the Windows stage (scripts/test-windows.sh), now and then fails to spawn
/// one of many quick launches ("Internal error", 1359), and one such failure made a whole CI
/// run red (twice: once in [`Command::output`], once in a [`Served`] emulator's spawn). What a
/// started process answers is never retried.
pub trait Launch {
    /// [`Command::output`], with a spawn failure tried again; panics after the last try.
    fn launch(&mut self) -> Output;
    /// [`Command::spawn`], with a spawn failure tried again; panics after the last try.
    fn start(&mut self) -> Child;
}

/// How many times a spawn is tried before a test gives up, and the pause before the next
/// try, growing (a moment for wine's server before it is asked again).
const SPAWN_TRIES: u32 = 4;

fn retrying<T>(cmd: &mut Command, run: impl Fn(&mut Command) -> std::io::Result<T>) -> T {
    let mut tries = 1;
    loop {
        match run(cmd) {
            Ok(done) => return done,
            Err(e) if tries < SPAWN_TRIES => {
                eprintln!("could not start {cmd:?} ({e}): trying again");
                thread::sleep(std::time::Duration::from_millis(100 * u64::from(tries)));
                tries += 1;
            }
            Err(e) => panic!("could not start {cmd:?} ({SPAWN_TRIES} tries): {e}"),
        }
    }
}

impl Launch for Command {
    fn launch(&mut self) -> Output {
        retrying(self, Command::output)
    }

    fn start(&mut self) -> Child {
        retrying(self, Command::spawn)
    }
}

/// [`clean_command`] pointed by its environment at a Polar at `url` (`POLAR_API_URL`), for the
/// organization `organization_id`, caching in `cache_dir`, with a 5 s timeout: how the command
/// line tests run the binary against the emulator.
pub fn cli_against(
    program: impl AsRef<std::ffi::OsStr>,
    url: &str,
    organization_id: &str,
    cache_dir: &Path,
) -> Command {
    let mut cmd = clean_command(program);
    cmd.env("POLAR_API_URL", url)
        .env("POLAR_ORGANIZATION_ID", organization_id)
        .env("POLAR_LICENSE_CACHE_DIR", cache_dir)
        .env("POLAR_TIMEOUT", "5");
    cmd
}

/// `bin emulator` on a free port with its webhooks sent at once (`--webhook-time-scale
/// 0.0001`): Polar as the command line's suites run it, a real process.
pub fn emulator_served(bin: &str) -> Served {
    Served::start(clean_command(bin).args([
        "emulator",
        "--port",
        "0",
        "--webhook-time-scale",
        "0.0001",
    ]))
}

/// `bin relay keygen --out DIR/NAME`, which must exit 0: the key file's path and the public
/// pair it printed (`kid=k4.public.…`).
pub fn relay_keygen(bin: &str, dir: &ScratchDir, name: &str) -> (String, String) {
    let file = dir.path().join(name);
    let key = file.to_str().expect("UTF-8").to_string();
    let made = clean_command(bin)
        .args(["relay", "keygen", "--out", &key])
        .launch();
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let pair = String::from_utf8_lossy(&made.stdout).trim().to_string();
    (key, pair)
}

/// `bin --base-url POLAR_URL relay serve --signing-key KEY_FILE`, the host's settings
/// cleared ([`clean_command`]): the command line's relay in front of the emulator at
/// `polar_url`, for a suite to add its own options to.
pub fn relay_serve(bin: &str, polar_url: &str, signing_key: &str) -> Command {
    let mut cmd = clean_command(bin);
    cmd.args([
        "--base-url",
        polar_url,
        "relay",
        "serve",
        "--signing-key",
        signing_key,
    ]);
    cmd
}

/// The seller's relay in front of the emulator at `polar_url`: `bin relay serve` as a process
/// on a port of its own, its signing key made by `relay keygen` in `dir`, reading with the
/// emulator's demo token. Killed when dropped.
pub fn relay_in_front_of(bin: &str, polar_url: &str, dir: &ScratchDir) -> Served {
    let (key, _) = relay_keygen(bin, dir, "relay.key");
    Served::start(
        relay_serve(bin, polar_url, &key)
            .args(["--port", "0"])
            .env("POLAR_ACCESS_TOKEN", polar_license_emulator::DEMO_TOKEN),
    )
}

/// The `polar-license` binary for a suite outside the command line's crate:
/// `POLAR_LICENSE_CLI` when set, else the one cargo built next to the test's own directory
/// (`target/debug/polar-license`; `cargo build -p polar-license-cli` makes it, as the
/// workspace's test run does).
pub fn cli_bin() -> String {
    if let Some(bin) = std::env::var_os("POLAR_LICENSE_CLI").filter(|b| !b.is_empty()) {
        return bin.to_string_lossy().into_owned();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let name = format!("polar-license{}", std::env::consts::EXE_SUFFIX);
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!("no {name} next to {exe:?}: build it (cargo build -p polar-license-cli) or set POLAR_LICENSE_CLI")
        });
    bin.to_string_lossy().into_owned()
}

/// The emulator serving `seed`, answering as Polar's API `version` (`2026-10`, `2027-01`).
pub fn emulator_answering(seed: Seed, version: &str) -> Emulator {
    let options = Options {
        api_version: version.to_string(),
        ..Options::default()
    };
    Emulator::start(seed, options).expect("the emulator starts")
}

/// The emulator serving `seed` and keeping its state in `file` (`--state FILE`): started
/// again on the same file, it serves what the last one left.
pub fn emulator_kept(seed: Seed, file: &std::path::Path) -> Emulator {
    let options = Options {
        state: Some(file.to_path_buf()),
        ..Options::default()
    };
    Emulator::start(seed, options).expect("the emulator starts")
}

/// The demo shop, its orders' keys issued `delay_ms` after payment (the buying suites' start:
/// a buyer who waits for the key, or one who gets it at once).
pub fn shop_issuing_after(delay_ms: u64) -> Emulator {
    let mut seed = Seed::demo();
    seed.key_issue_delay_ms = Some(delay_ms);
    Emulator::start(seed, Options::default()).expect("emulator")
}

/// The demo seed with the demo key's usages all spent: `limit` of a `limit_usage` of `limit`
/// (a metered feature exhausted), for the suites that hold its count to the lease.
pub fn demo_usage_spent(limit: i64) -> Seed {
    let mut seed = Seed::demo();
    for k in seed
        .license_keys
        .iter_mut()
        .filter(|k| k.key == polar_license_emulator::DEMO_KEY)
    {
        k.limit_usage = Some(limit);
        k.usage = limit;
    }
    seed
}

/// The demo seed with one more key, `key`, of the demo customer's (`email`): one activation
/// only. The customer-portal suites' start (a rotation, a reinstall at the limit).
pub fn demo_with_one_seat_key(key: &str, email: &str) -> Emulator {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    em.add_key(SeedKey {
        key: key.to_string(),
        benefit_id: Some(polar_license_emulator::DEMO_BENEFIT_ID.to_string()),
        customer_id: Some(polar_license_emulator::DEMO_CUSTOMER_ID.to_string()),
        customer_email: Some(email.to_string()),
        limit_activations: Some(1),
        ..SeedKey::default()
    })
    .expect("a key added");
    em
}

/// A seed key `key` of `customer_id`'s, bought with the license benefit `benefit_id`; the
/// rest as [`SeedKey::new`] leaves it.
pub fn customers_key(key: &str, benefit_id: &str, customer_id: &str) -> SeedKey {
    SeedKey {
        benefit_id: Some(benefit_id.into()),
        customer_id: Some(customer_id.into()),
        ..SeedKey::new(key)
    }
}

/// [`customers_key`] bought under the subscription `subscription_id`, granted `benefits` (the
/// ids of the purchase's other benefits: flags, credits).
pub fn subscribed_key(
    key: &str,
    benefit_id: &str,
    customer_id: &str,
    subscription_id: &str,
    benefits: &[&str],
) -> SeedKey {
    SeedKey {
        subscription: Some(subscription_with_id(subscription_id)),
        benefits: benefits.iter().map(|b| b.to_string()).collect(),
        ..customers_key(key, benefit_id, customer_id)
    }
}

/// A meter `id` named `name` counting the events named `event_name`, aggregated as
/// `aggregation` says (Polar's JSON; `None` counts them).
pub fn meter(
    id: &str,
    name: &str,
    event_name: &str,
    aggregation: Option<serde_json::Value>,
) -> SeedMeter {
    SeedMeter {
        id: id.into(),
        name: name.into(),
        event_name: event_name.into(),
        aggregation,
    }
}

/// A meter credit benefit `id` granting `units` of the meter `meter_id`.
pub fn meter_credit(id: &str, meter_id: &str, units: i64) -> SeedBenefit {
    SeedBenefit {
        id: id.into(),
        kind: Some("meter_credit".into()),
        meter_id: Some(meter_id.into()),
        units: Some(units),
        ..SeedBenefit::default()
    }
}

/// A Feature Flag benefit `id` with `metadata` (a JSON object; panics on anything else).
pub fn feature_flag(id: &str, metadata: serde_json::Value) -> SeedBenefit {
    SeedBenefit {
        id: id.into(),
        kind: Some("feature_flag".into()),
        metadata: metadata.as_object().expect("an object").clone(),
        ..SeedBenefit::default()
    }
}

/// The seed subscription with the id `id`, the rest its default.
pub fn subscription_with_id(id: &str) -> SeedSubscription {
    SeedSubscription {
        id: Some(id.into()),
        ..SeedSubscription::default()
    }
}

/// A subscription in `status` whose current period ends at `period_end` (unix seconds), for a
/// seed key.
pub fn subscription(status: &str, period_end: i64) -> SeedSubscription {
    SeedSubscription {
        status: Some(status.into()),
        current_period_end: Some(crate::rfc3339(period_end)),
        ..SeedSubscription::default()
    }
}

/// The emulator serving `seed` with an organization token's budget of `calls` per `window`
/// (docs/polar-api.md §8).
pub fn budgeted_emulator(seed: Seed, calls: u32, window: std::time::Duration) -> Emulator {
    let options = Options {
        token_budget: Some(calls),
        token_window: Some(window),
        ..Options::default()
    };
    Emulator::start(seed, options).expect("the emulator starts")
}

/// A run of the command line with `--json`: its exit code (-1 when killed) and its stdout as
/// one JSON object; panics (showing stdout and stderr) when it is not one.
pub fn json_answer(out: &Output) -> (i32, serde_json::Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {stdout:?} {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.is_object(), "{v}");
    (out.status.code().unwrap_or(-1), v)
}

/// Asserts that an operation's `--json` answer has every key docs/interfaces.md §2 promises
/// (`null` when it does not apply), showing the object when not.
#[track_caller]
pub fn expect_answer_keys(v: &serde_json::Value) {
    for field in [
        "outcome",
        "reason",
        "detail",
        "source",
        "activation_id",
        "grace_remaining_seconds",
        "license",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
}

/// Asserts that a run of the command line with `--json` exited `code` with `field` set to
/// `value` (showing the object when not); returns the object.
#[track_caller]
pub fn expect_json_field(out: &Output, code: i32, field: &str, value: &str) -> serde_json::Value {
    let (got, v) = json_answer(out);
    assert_eq!((got, v[field].as_str()), (code, Some(value)), "{v}");
    v
}

/// `polar-license emulator` running as a process, killed (and waited for) when dropped, so a
/// failing test leaves no server behind.
#[derive(Debug)]
pub struct Served {
    /// The process.
    pub child: Child,
    /// Where it listens: the URL of its banner's first line, `listening on URL`.
    pub url: String,
}

impl Served {
    /// Spawns `cmd` (an `emulator` command line) with its stdout piped and its stderr
    /// discarded, and reads its banner's first line.
    pub fn start(cmd: &mut Command) -> Served {
        Served::start_reading(cmd, None).0
    }

    /// [`Served::start`], then reads the banner's next lines up to and including the first
    /// that starts with `last`; returns them.
    pub fn start_with_banner(cmd: &mut Command, last: &str) -> (Served, Vec<String>) {
        Served::start_reading(cmd, Some(last))
    }

    fn start_reading(cmd: &mut Command, last: Option<&str>) -> (Served, Vec<String>) {
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).start();
        let mut served = Served {
            child,
            url: String::new(),
        };
        let Some(stdout) = served.child.stdout.take() else {
            panic!("no stdout")
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            other => panic!("no first line: {other:?}"),
        };
        served.url = match first.trim().strip_prefix("listening on ") {
            Some(url) => url.to_string(),
            None => panic!("first line: {first:?}"),
        };
        let mut rest = Vec::new();
        if let Some(last) = last {
            for line in lines.by_ref() {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => panic!("the banner is not readable: {e}"),
                };
                let done = line.starts_with(last);
                rest.push(line);
                if done {
                    break;
                }
            }
        }
        (served, rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Licensing::builder` for the emulator `polar`: its organization and URL, the cache in
/// `dir`, the machine binding `machine`. Timeouts, clocks and policies are the caller's.
pub fn licensing_builder(
    polar: &Emulator,
    dir: impl Into<PathBuf>,
    machine: MachineBinding,
) -> LicensingBuilder {
    Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .cache_dir(dir)
        .machine_binding(machine)
}

/// The benches' client of `polar` (benches/check.rs, benches/check_instructions.rs): the cache
/// in `dir`, a fixed machine id (a bench does not depend on /etc/machine-id existing), 5 s
/// timeouts, and `DEMO_KEY` activated through it, so the record is fresh and a check answers
/// from the cache.
pub fn activated_bench_client(polar: &Emulator, dir: impl Into<PathBuf>) -> Licensing {
    let machine = MachineBinding::Id("bench-machine".to_string());
    let licensing = licensing_builder(polar, dir, machine)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("licensing builds");
    let activated = licensing
        .activate(&polar_license::ActivateRequest::new(
            polar_license_emulator::DEMO_KEY,
            "bench",
        ))
        .expect("activate answers");
    assert!(activated.is_accepted(), "activation refused: {activated:?}");
    licensing
}

/// `licensing`'s customer signed in at the emulator `polar` as `email`: the code asked for,
/// read off the emulator's outbox (the newest sent) and typed back, as a user would.
pub fn signed_in(
    polar: &Emulator,
    licensing: &Licensing,
    email: &str,
) -> polar_license::portal::SessionToken {
    licensing
        .client()
        .request_sign_in_code(email)
        .expect("asked");
    let code = polar
        .customer_session_codes()
        .last()
        .and_then(|c| c["code"].as_str().map(str::to_string))
        .expect("a code");
    licensing.client().sign_in(&code).expect("signed in")
}

/// A seat lease of the demo organization's for `key` on `machine` (the seat `seat` of `kind`,
/// issued now for 300 s, one seat) signed by a new key named `kid`: a forger's, under the name
/// of the relay's key, which verifies under no relay key the app trusts.
pub fn forged_seat_lease(
    kid: &str,
    key: &str,
    (seat, kind): (&str, &str),
    machine: &str,
) -> String {
    use polar_license::lease::{key_hash, SeatClaims, SigningKey};
    let forger = SigningKey::generate(Some(kid)).expect("a key");
    let now = crate::unix_now();
    let claims = SeatClaims {
        organization_id: polar_license_emulator::DEMO_ORGANIZATION_ID.into(),
        key_sha256: key_hash(&polar_license::Key::new(key)),
        seat: seat.into(),
        kind: kind.into(),
        issued_at: now,
        expires_at: now + 300,
        size: 1,
        borrowed: false,
    };
    forger.sign_seat(&claims, machine).expect("signed")
}

/// Requests that reached the emulator since the last call (the count is reset).
pub fn take_requests(polar: &Emulator) -> u64 {
    let n = polar.request_count();
    polar.reset_request_count();
    n
}

/// The feature-gating cases (tests/features.rs, the C ABI's and the command line's twins): one
/// organization, three benefits, keys granted by each, metered and spent ones, a revoked one,
/// and the map of features to benefits they are checked against.
pub mod features {
    use polar_license_emulator::Seed;
    use serde_json::json;

    /// The organization.
    pub const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    /// The pro benefit.
    pub const PRO: &str = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
    /// The team benefit.
    pub const TEAM: &str = "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e";
    /// The basic benefit (in no feature of the map).
    pub const BASIC: &str = "2d3e4f50-6172-4c8d-ae9f-1a2b3c4d5e6f";
    /// A key of the pro benefit, no usage limit.
    pub const PRO_KEY: &str = "PRO-KEY-0000-0000-0001";
    /// A key of the team benefit.
    pub const TEAM_KEY: &str = "TEAM-KEY-0000-0000-0001";
    /// A key of the basic benefit.
    pub const BASIC_KEY: &str = "BASIC-KEY-0000-0000-0001";
    /// A pro key with 3 uses left of 10.
    pub const METERED_KEY: &str = "METERED-KEY-0000-0001";
    /// A pro key with no use left.
    pub const SPENT_KEY: &str = "SPENT-KEY-0000-0001";
    /// A revoked pro key.
    pub const REVOKED_KEY: &str = "REVOKED-KEY-0000-0001";

    /// The emulator's seed: every key above.
    pub fn seed() -> Seed {
        let json = json!({
            "organization_id": ORG,
            "license_keys": [
                {"key": PRO_KEY, "benefit_id": PRO},
                {"key": TEAM_KEY, "benefit_id": TEAM},
                {"key": BASIC_KEY, "benefit_id": BASIC},
                {"key": METERED_KEY, "benefit_id": PRO, "limit_usage": 10, "usage": 7},
                {"key": SPENT_KEY, "benefit_id": PRO, "limit_usage": 10, "usage": 10},
                {"key": REVOKED_KEY, "benefit_id": PRO, "status": "revoked"}
            ]
        });
        match Seed::from_json(&json.to_string()) {
            Ok(seed) => seed,
            Err(e) => panic!("the features seed: {e}"),
        }
    }

    /// The map as JSON: `pro_export` granted by pro and team, `team_sync` by team,
    /// `api_calls` by pro and metered.
    pub fn map_json() -> String {
        json!({
            "pro_export": [PRO, TEAM],
            "team_sync": [TEAM],
            "api_calls": {"benefits": [PRO], "metered": true}
        })
        .to_string()
    }
}

/// A CONNECT proxy on loopback: each tunnel is counted and spliced to its target.
#[derive(Debug)]
pub struct ConnectProxy {
    /// `http://[user:password@]127.0.0.1:PORT`.
    pub url: String,
    /// How many tunnels it has opened.
    pub tunnels: Arc<AtomicUsize>,
}

fn splice(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn tunnel(client: TcpStream, counter: &AtomicUsize) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let mut client = client;
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
    };
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let t = thread::spawn(move || splice(c2, u2));
    splice(upstream, client);
    let _ = t.join();
}

impl ConnectProxy {
    /// Starts one, asking for `user:password` credentials in its URL when given (it does not
    /// check them: what matters is that they never show in an error).
    pub fn start(credentials: Option<&str>) -> ConnectProxy {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind a loopback port: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&tunnels);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counter = Arc::clone(&counter);
                thread::spawn(move || tunnel(client, &counter));
            }
        });
        let auth = credentials.map(|c| format!("{c}@")).unwrap_or_default();
        ConnectProxy {
            url: format!("http://{auth}127.0.0.1:{port}"),
            tunnels,
        }
    }

    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

/// Reads `read` every `every` until `done` holds of what it read, and returns that; panics
/// when `within` passes first, with the last reading and `what` was awaited. The suites'
/// waits for what arrives in the background (a meter's count, a lease's values, a webhook's
/// effect).
pub fn poll<T: std::fmt::Debug>(
    what: &str,
    within: std::time::Duration,
    every: std::time::Duration,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let start = std::time::Instant::now();
    loop {
        let got = read();
        if done(&got) {
            return got;
        }
        assert!(
            start.elapsed() < within,
            "not within {within:?}: {what}; last read {got:?}"
        );
        thread::sleep(every);
    }
}

/// The units of the meter `meter_id` that the emulator on `port` shows `customer` consumed
/// (the organization's read of its customer meters; 0 when it lists none).
pub fn consumed_units(port: u16, customer: &str, meter_id: &str) -> f64 {
    let r = crate::http::raw_exchange(
        port,
        &format!(
            "GET /v1/customer-meters/?customer_id={customer} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            polar_license_emulator::DEMO_TOKEN
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["meter_id"] == meter_id)
        .and_then(|m| m["consumed_units"].as_f64())
        .unwrap_or(0.0)
}

/// The ids the suites' sellers seed alike (the relay's, the Tauri plugin's and the C face's
/// entitlements and usage suites): one place, so a key of one suite reads as a key of another.
pub mod ids {
    /// The Feature Flag benefit (a tier's values).
    pub const PRO: &str = "0f6c1f5e-8b2a-4c3d-9e4f-5a6b7c8d9e0f";
    /// The license benefit the keys are bought with.
    pub const LICENSE: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
    /// The keys' customer.
    pub const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
    /// The meter credit benefit.
    pub const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
    /// The first key's subscription.
    pub const SUBSCRIPTION: &str = "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b";

    /// The `n`th of many spellings of the UUID `id` that Polar reads as the same id (case
    /// flips of its hex letters, with and without hyphens, braces, `urn:uuid:`): about a
    /// million exist. The pool flood's test and attack both spell the organization so.
    pub fn spelling(id: &str, n: u64) -> String {
        let flipped: String = id
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if c.is_ascii_alphabetic() && (n >> (i % 20)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        match n % 4 {
            0 => flipped,
            1 => flipped.replace('-', ""),
            2 => format!("{{{flipped}}}"),
            _ => format!("urn:uuid:{flipped}"),
        }
    }
}

/// The webhook events of a key's subscription lifecycle (docs/polar-api.md §16.6) that the
/// lifecycle suites subscribe to alike (the emulator's and the relay's): an order refunded, a
/// seat revoked, and the subscription's own changes.
pub const LIFECYCLE_EVENTS: [&str; 8] = [
    "order.refunded",
    "customer_seat.revoked",
    "subscription.past_due",
    "subscription.updated",
    "subscription.canceled",
    "subscription.revoked",
    "subscription.paused",
    "subscription.resumed",
];
