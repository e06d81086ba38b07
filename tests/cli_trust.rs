//! Issue #12 through the real `polar-license` binary: each test plays an attack or an unlucky
//! user with only the shipped tools and ordinary system tools (copying files, a held clock, a
//! read-only directory, a FIFO, many processes at once), against the emulator over loopback.
//!
//! Time moves with the hidden `POLAR_LICENSE_CLOCK_OFFSET` hook, and the emulator's clock with
//! it (`Emulator::set_clock_offset`), never with sleeps.
#![cfg(feature = "cli")]

use polar_license::emulator::{
    Emulator, Fault, KeyUpdate, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const HOUR: i64 = 3600;

/// Environment variables the binary reads; cleared so the host's settings cannot leak in.
const ENV_VARS: [&str; 15] = [
    "POLAR_LICENSE_ENTITLEMENTS",
    "POLAR_ORGANIZATION_ID",
    "POLAR_SERVER",
    "POLAR_API_URL",
    "POLAR_LICENSE_CACHE_DIR",
    "POLAR_TIMEOUT",
    "POLAR_ACCESS_TOKEN",
    "POLAR_LICENSE_KEY",
    "POLAR_REVALIDATE_AFTER",
    "POLAR_GRACE_PERIOD",
    "POLAR_CLOCK_TOLERANCE",
    "POLAR_LICENSE_APP_SECRET",
    "POLAR_LICENSE_NO_MACHINE_BINDING",
    "POLAR_LICENSE_REQUIRE_ACTIVATION",
    "POLAR_LICENSE_CLOCK_OFFSET",
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct World {
    polar: Emulator,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
struct Answer {
    code: i32,
    v: Value,
}

impl Answer {
    fn str(&self, field: &str) -> Option<&str> {
        self.v[field].as_str()
    }

    fn licensed_from(&self) -> Option<&str> {
        (self.code == 0 && self.str("outcome") == Some("licensed"))
            .then(|| self.str("source"))
            .flatten()
    }
}

fn parse(out: &Output) -> Answer {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}): {stdout:?} {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Answer {
        code: out.status.code().unwrap_or(-1),
        v,
    }
}

impl World {
    fn new() -> World {
        let dir = std::env::temp_dir().join(format!(
            "polar-license-cli-trust-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        World {
            polar: Emulator::start(Seed::demo(), Options::default()).expect("emulator starts"),
            dir,
        }
    }

    /// The binary against the emulator with the world's cache, the clock moved by `offset`.
    fn command(&self, offset: i64, args: &[&str]) -> Command {
        self.polar.set_clock_offset(offset);
        let mut cmd = Command::new(BIN);
        for var in ENV_VARS {
            cmd.env_remove(var);
        }
        cmd.env("POLAR_API_URL", self.polar.url())
            .env("POLAR_ORGANIZATION_ID", DEMO_ORGANIZATION_ID)
            .env("POLAR_LICENSE_CACHE_DIR", &self.dir)
            .env("POLAR_TIMEOUT", "5")
            .env("POLAR_LICENSE_CLOCK_OFFSET", offset.to_string())
            .arg("--json")
            .args(args);
        cmd
    }

    fn at(&self, offset: i64, args: &[&str]) -> Answer {
        parse(&self.command(offset, args).output().expect("binary runs"))
    }

    fn check(&self, offset: i64) -> Answer {
        self.at(offset, &["check", "--key", DEMO_KEY])
    }

    fn sent(&self) -> u64 {
        let n = self.polar.request_count();
        self.polar.reset_request_count();
        n
    }

    fn activated(&self) -> String {
        let a = self.at(0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
        assert_eq!((a.code, a.str("outcome")), (0, Some("done")), "{a:?}");
        self.sent();
        a.str("activation_id")
            .expect("an activation id")
            .to_string()
    }

    fn revoke(&self) {
        self.polar.update_key(
            DEMO_KEY,
            KeyUpdate {
                status: Some("revoked".into()),
                ..KeyUpdate::default()
            },
        );
    }

    /// The record file (`<slot>.cache`), not its ledger (`<slot>-seq.cache`).
    fn record(&self) -> PathBuf {
        std::fs::read_dir(&self.dir)
            .expect("cache dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|x| x == "cache")
                    && !p.to_string_lossy().ends_with("-seq.cache")
            })
            .expect("a record")
    }
}

/// Item 1: a record forged with our own CLI and emulator (the app's organization, a made-up
/// key) never answers a client configured for production, and the CLI's default directory is
/// not an app's.
#[test]
fn a_record_forged_with_the_cli_and_the_emulator_never_licenses_production() {
    let w = World::new();
    w.activated();
    assert_eq!(w.check(0).licensed_from(), Some("cache"));
    for extra in [&[][..], &["--require-activation"][..]] {
        // The same directory, Polar's production server (unreachable from here).
        let mut cmd = Command::new(BIN);
        for var in ENV_VARS {
            cmd.env_remove(var);
        }
        let out = cmd
            .args(["--json", "--org", DEMO_ORGANIZATION_ID, "--timeout", "2"])
            .arg("--cache-dir")
            .arg(&w.dir)
            .args(extra)
            .args(["check", "--key", DEMO_KEY])
            .output()
            .expect("runs");
        let a = parse(&out);
        assert_ne!(a.str("outcome"), Some("licensed"), "{a:?}");
        assert_ne!(a.code, 0, "{a:?}");
    }
    // Without --cache-dir, the CLI keeps its records in its own directory.
    let data = w.dir.join("xdg");
    let mut cmd = w.command(0, &["activate", "--key", DEMO_KEY, "--label", "cli"]);
    cmd.env_remove("POLAR_LICENSE_CACHE_DIR")
        .env("XDG_DATA_HOME", &data);
    let a = parse(&cmd.output().expect("runs"));
    assert_eq!(a.code, 0, "{a:?}");
    let own = data.join("polar-license").join("polar-license");
    assert!(own.is_dir(), "{own:?}");
    let apps: Vec<_> = std::fs::read_dir(data.join("polar-license"))
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(apps, vec![std::ffi::OsString::from("polar-license")]);
}

/// Item 2a: a saved record put back after the revocation was seen, the clock set 30 minutes
/// after the last good verdict: not licensed, and Polar is asked.
#[test]
fn a_record_put_back_after_a_revocation_grants_nothing() {
    let w = World::new();
    w.activated();
    let record = w.record();
    let saved = std::fs::read(&record).expect("read");
    w.revoke();
    let denied = w.check(2 * HOUR);
    assert_eq!(denied.str("reason"), Some("inactive"), "{denied:?}");
    std::fs::write(&record, &saved).expect("put back");
    w.sent();
    let a = w.check(30 * 60);
    assert_eq!(a.licensed_from(), None, "{a:?}");
    assert_eq!(a.str("reason"), Some("inactive"), "{a:?}");
    assert_eq!(w.sent(), 1, "it asked Polar");
    let s = w.at(30 * 60, &["status", "--key", DEMO_KEY]);
    assert!(
        ["replayed", "bad_mac"].contains(&s.v["cache"]["untrusted"].as_str().unwrap_or_default())
            || s.v["cache"]["denied"]["reason"] == "inactive",
        "{s:?}"
    );
}

/// Item 2b: a clock held 30 minutes after the last good verdict, every launch: the answers are
/// counted, and within 33 launches Polar is asked and the revocation seen.
#[test]
fn a_held_clock_sees_the_revocation_within_a_bounded_number_of_launches() {
    let w = World::new();
    w.activated();
    w.revoke();
    let mut launches = 0;
    let last = loop {
        let a = w.check(30 * 60);
        launches += 1;
        if a.licensed_from().is_none() || launches > 40 {
            break a;
        }
    };
    assert_eq!(
        last.str("reason"),
        Some("inactive"),
        "after {launches}: {last:?}"
    );
    assert!(launches <= 34, "{launches} launches");
    assert_eq!(w.sent(), 1);
}

/// Item 5: pages that are not Polar's answer fall back to a good cache, with the reason, and
/// never leave a denial.
#[test]
fn login_pages_and_proxies_fall_back_and_never_deny() {
    let w = World::new();
    w.activated();
    let html = || vec![("content-type".to_string(), "text/html".to_string())];
    let pages = [
        Fault::Respond {
            status: 200,
            headers: html(),
            body: "<html><form>Hotel Wi-Fi login</form></html>".into(),
        },
        Fault::Respond {
            status: 302,
            headers: vec![("location".into(), "http://login.example/".into())],
            body: String::new(),
        },
        Fault::Respond {
            status: 407,
            headers: vec![("proxy-authenticate".into(), "Basic".into())],
            body: String::new(),
        },
        Fault::Respond {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"detail":"Not Found"}"#.into(),
        },
        Fault::Respond {
            status: 403,
            headers: html(),
            body: "<html>blocked</html>".into(),
        },
        Fault::Respond {
            status: 200,
            headers: Vec::new(),
            body: String::new(),
        },
    ];
    for (i, page) in pages.into_iter().enumerate() {
        w.polar.set_fault(Some(page));
        let at = 2 * HOUR + i as i64;
        let a = w.check(at);
        assert_eq!(a.licensed_from(), Some("cache"), "page {i}: {a:?}");
        assert_eq!(a.str("reason"), Some("protocol_error"), "page {i}: {a:?}");
        assert_eq!(a.v["cache_refreshed"], true, "page {i}: {a:?}");
        let s = w.at(at, &["status", "--key", DEMO_KEY]);
        assert!(s.v["cache"]["denied"].is_null(), "page {i}: {s:?}");
    }
    w.polar.set_fault(None);
    assert_eq!(w.check(3 * HOUR).licensed_from(), Some("online"));
}

/// Item 7: a read-only cache directory with a good record: licensed (online, or from the cache
/// when Polar is unreachable), never cache_error, and it says the cache was not refreshed.
#[cfg(unix)]
#[test]
fn a_read_only_cache_directory_still_licenses() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    w.activated();
    let root = running_as_root();
    // Readable by anyone, writable by no one but the owner.
    for entry in std::fs::read_dir(&w.dir).expect("dir").flatten() {
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let run = |offset: i64, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["check", "--key", DEMO_KEY]);
        let mut cmd = w.command(offset, &args);
        if root {
            // Root writes anywhere: run as nobody, for whom the directory is read-only.
            let program = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            let mut wrapped = Command::new("setpriv");
            wrapped
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(program)
                .args(args);
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => wrapped.env(k, v),
                    None => wrapped.env_remove(k),
                };
            }
            wrapped.env("HOME", "/nonexistent");
            cmd = wrapped;
        }
        parse(&cmd.output().expect("runs"))
    };
    for extra in [&[][..], &["--require-activation"][..]] {
        let fresh = run(60, extra);
        assert_eq!(fresh.licensed_from(), Some("online"), "{fresh:?}");
        assert_eq!(fresh.v["cache_refreshed"], false, "{fresh:?}");
        w.polar.set_fault(Some(Fault::CloseImmediately));
        let offline = run(2 * HOUR, extra);
        assert_eq!(offline.licensed_from(), Some("cache"), "{offline:?}");
        assert_eq!(offline.str("reason"), Some("offline"), "{offline:?}");
        w.polar.set_fault(None);
    }
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

/// `true` when this process runs as root (who may write a 0555 directory).
#[cfg(unix)]
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Item 8: a 429 asking for ten years blocks one hour.
#[test]
fn a_ten_year_retry_after_is_one_hour() {
    let w = World::new();
    w.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(315_360_000),
    }));
    let a = w.at(0, &["validate", "--key", DEMO_KEY]);
    assert_eq!(
        (a.str("reason"), a.v["retry_after"].as_u64()),
        (Some("rate_limited"), Some(3600)),
        "{a:?}"
    );
    let blocked = w.check(0);
    assert_eq!(blocked.str("reason"), Some("rate_limited"), "{blocked:?}");
    w.polar.set_fault(None);
    w.sent();
    assert_eq!(w.check(HOUR + 1).licensed_from(), Some("online"));
    assert_eq!(w.sent(), 1);
}

/// Item 9: twenty checks started at once while Polar hangs (timeout 2 s) do not queue: the
/// batch ends in about one timeout, not twenty (40 s before), all licensed from the cache.
#[test]
fn twenty_checks_while_polar_hangs_do_not_queue() {
    let w = World::new();
    w.activated();
    w.polar.set_fault(Some(Fault::Hang));
    let started = Instant::now();
    let children: Vec<_> = (0..20)
        .map(|_| {
            w.command(2 * HOUR, &["--timeout", "2", "check", "--key", DEMO_KEY])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawns")
        })
        .collect();
    let answers: Vec<Answer> = children
        .into_iter()
        .map(|c| parse(&c.wait_with_output().expect("waits")))
        .collect();
    let took = started.elapsed();
    for a in &answers {
        assert_eq!(a.licensed_from(), Some("cache"), "{a:?}");
    }
    // A bound on queueing, far above one timeout and far below twenty.
    assert!(took < Duration::from_secs(12), "the batch took {took:?}");
    assert!(
        w.sent() < 20,
        "the checks that found another asking did not ask"
    );
}

/// Item 10: the install secret lost (every record untrusted): the activation the record names
/// is shown and validated online, no new slot taken.
#[test]
fn a_lost_install_secret_does_not_cost_an_activation_slot() {
    let w = World::new();
    let id = w.activated();
    std::fs::remove_file(w.dir.join("install-secret")).expect("remove the secret");
    let s = w.at(0, &["status", "--key", DEMO_KEY]);
    assert_eq!(s.v["cache"]["state"], "untrusted", "{s:?}");
    assert_eq!(s.str("activation_id"), Some(id.as_str()), "{s:?}");
    let text = w
        .command(0, &["status", "--key", DEMO_KEY])
        .arg("--json")
        .output()
        .expect("runs");
    assert!(!String::from_utf8_lossy(&text.stdout).contains("tampered"));
    let a = w.at(0, &["--require-activation", "check", "--key", DEMO_KEY]);
    assert_eq!(a.licensed_from(), Some("online"), "{a:?}");
    assert_eq!(a.str("activation_id"), Some(id.as_str()), "{a:?}");
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1, "no new slot");
}

/// Item 11: every command of one install sends the same conditions, and every online answer
/// updates the key's record.
#[test]
fn activate_validate_and_check_agree() {
    let w = World::new();
    let a = w.at(
        0,
        &[
            "activate",
            "--key",
            DEMO_KEY,
            "--label",
            "laptop",
            "--condition",
            "machine=abc",
        ],
    );
    assert_eq!(a.code, 0, "{a:?}");
    let id = a.str("activation_id").expect("id").to_string();
    let validate = |offset| {
        w.at(
            offset,
            &[
                "validate",
                "--key",
                DEMO_KEY,
                "--activation-id",
                &id,
                "--condition",
                "machine=abc",
            ],
        )
    };
    let v = validate(0);
    assert_eq!(v.licensed_from(), Some("online"), "{v:?}");
    w.revoke();
    let v = validate(60);
    assert_eq!(v.str("reason"), Some("inactive"), "{v:?}");
    // Fresh by age, but validate saw the revocation: no grant from the cache.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let c = w.check(120);
    assert_eq!(c.licensed_from(), None, "{c:?}");
}

/// Also: a FIFO planted at the record path does not hang `check`, and a record that cannot
/// be written is said.
#[cfg(unix)]
#[test]
fn a_fifo_or_an_unwritable_record_is_no_hang_and_is_said() {
    let w = World::new();
    w.activated();
    let record = w.record();
    std::fs::remove_file(&record).expect("remove");
    assert!(Command::new("mkfifo")
        .arg(&record)
        .status()
        .expect("mkfifo")
        .success());
    let mut child = w
        .command(60, &["check", "--key", DEMO_KEY])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawns");
    // A bound on a hang, not a timing assertion: a blocked open never returns.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waits").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("check hung on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = parse(&child.wait_with_output().expect("output"));
    assert_eq!(a.licensed_from(), Some("online"), "{a:?}");
    // The FIFO replaced by a directory: the record cannot be written.
    std::fs::remove_file(&record).expect("remove");
    std::fs::create_dir(&record).expect("mkdir");
    let a = w.check(2 * HOUR);
    assert_eq!(a.licensed_from(), Some("online"), "{a:?}");
    assert_eq!(a.v["cache_refreshed"], false, "{a:?}");
    assert!(a.str("cache_error").is_some(), "{a:?}");
    assert!(Path::new(&record).is_dir());
}
