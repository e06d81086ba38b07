//! Issue #12 through the real `polar-license` binary: each test plays one numbered item of the
//! issue the way an attacker or an unlucky user would, with only the shipped tools and ordinary
//! system tools (a seed file and the `emulator` command, copying files, a held clock, a
//! read-only directory, a FIFO, many processes at once), against the emulator over loopback.
//!
//! Time moves with the hidden `POLAR_LICENSE_CLOCK_OFFSET` hook (or stands still with
//! `POLAR_LICENSE_CLOCK_AT`), and the emulator's clock with it (`Emulator::set_clock_offset`),
//! never with sleeps. Item 3 (`check_in_background` and `require_activation`) has no CLI face:
//! it is tested on the native face (tests/trust.rs).

use polar_license_emulator::{Fault, DEMO_KEY, DEMO_ORGANIZATION_ID};
use polar_license_testkit::{clean_command, json_answer, Launch, ScratchDir, Served, World};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const HOUR: i64 = 3600;

/// `program` with none of the host's settings: no `POLAR_*` variable, no `XDG_DATA_HOME` (the
/// default directory is where a test says).
fn bare_at(program: &Path) -> Command {
    let mut cmd = clean_command(program);
    cmd.env_remove("XDG_DATA_HOME");
    cmd
}

/// The binary with none of the host's settings.
fn bare() -> Command {
    bare_at(Path::new(BIN))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// This suite's world: the testkit's.
fn world() -> World {
    World::new("cli-trust-cache")
}

/// One run of the binary, `--json` parsed.
#[derive(Debug)]
struct Answer {
    code: i32,
    v: Value,
}

impl Answer {
    fn str(&self, field: &str) -> Option<&str> {
        self.v[field].as_str()
    }

    /// `Some(source)` when licensed (exit 0), else `None`.
    fn licensed_from(&self) -> Option<&str> {
        (self.code == 0 && self.str("outcome") == Some("licensed"))
            .then(|| self.str("source"))
            .flatten()
    }

    /// (exit code, outcome, reason).
    fn verdict(&self) -> (i32, Option<&str>, Option<&str>) {
        (self.code, self.str("outcome"), self.str("reason"))
    }
}

fn parse(out: &Output) -> Answer {
    let (code, v) = json_answer(out);
    Answer { code, v }
}

/// This suite's commands on the testkit's world.
trait Here {
    fn base(&self, offset: i64) -> Command;
    fn command(&self, offset: i64, args: &[&str]) -> Command;
    fn at(&self, offset: i64, args: &[&str]) -> Answer;
    fn check(&self, offset: i64) -> Answer;
    fn status(&self, offset: i64) -> Answer;
    fn human(&self, offset: i64, args: &[&str]) -> String;
    fn activated(&self) -> String;
}

impl Here for World {
    /// The binary against the emulator with the world's cache, the clock moved by `offset`
    /// seconds (the emulator's too, so its `Date` agrees with the client's clock), and no
    /// `XDG_DATA_HOME`.
    fn base(&self, offset: i64) -> Command {
        let mut cmd = self.cli(BIN, &self.dir, offset);
        cmd.env_remove("XDG_DATA_HOME");
        cmd
    }

    /// [`Here::base`] with `--json` and `args`.
    fn command(&self, offset: i64, args: &[&str]) -> Command {
        let mut cmd = self.base(offset);
        cmd.arg("--json").args(args);
        cmd
    }

    fn at(&self, offset: i64, args: &[&str]) -> Answer {
        parse(&self.command(offset, args).launch())
    }

    fn check(&self, offset: i64) -> Answer {
        self.at(offset, &["check", "--key", DEMO_KEY])
    }

    fn status(&self, offset: i64) -> Answer {
        self.at(offset, &["status", "--key", DEMO_KEY])
    }

    /// The human text (stdout and stderr) of a run without `--json`.
    fn human(&self, offset: i64, args: &[&str]) -> String {
        let out = self.base(offset).args(args).launch();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Activates at offset 0 (remembered) and checks there (licensed: from the cache, the
    /// activation being a verdict; before issue #12, online); the activation id. The check
    /// makes a good verdict either way, so that each test fails before the fix on the attack
    /// it plays, not on this setup.
    fn activated(&self) -> String {
        let a = self.at(0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
        assert_eq!((a.code, a.str("outcome")), (0, Some("done")), "{a:?}");
        let c = self.check(0);
        assert!(c.licensed_from().is_some(), "{c:?}");
        self.requests();
        a.str("activation_id")
            .expect("an activation id")
            .to_string()
    }
}

/// Licensed from the cache after Polar was asked, saying what happened online.
#[track_caller]
fn cached_after(a: &Answer, reason: &str) {
    assert_eq!(a.licensed_from(), Some("cache"), "{a:?}");
    assert_eq!(a.str("reason"), Some(reason), "{a:?}");
    assert!(a.str("detail").is_some(), "{a:?}");
    assert!(a.v["grace_remaining_seconds"].as_u64().is_some(), "{a:?}");
}

/// The status shows no denial and a cache that can license.
#[track_caller]
fn no_denial(s: &Answer) {
    assert_eq!(s.v["cache"]["state"], "present", "{s:?}");
    assert!(s.v["cache"]["denied"].is_null(), "{s:?}");
    assert!(s.v["grace_remaining_seconds"].as_u64().is_some(), "{s:?}");
    assert_eq!(s.v["standing"], "licensed", "{s:?}");
}

/// Item 1: a record forged with our own tools (a seed with the app's organization and a
/// made-up key, `polar-license emulator --seed`, then `activate` and `check`) never answers a
/// client configured for production or sandbox, with or without `--require-activation`: the
/// record is bound to the server it came from. And the command's default directory is its
/// own, never an app's.
#[test]
fn a_record_forged_with_the_cli_and_the_emulator_never_licenses_production() {
    const FORGED: &str = "FORGED-0BADC0DE-1111-4222-8333-444455556666";
    let dir = ScratchDir::new("cli-trust-forged");
    let seed = dir.join("seed.json");
    std::fs::write(
        &seed,
        json!({"organization_id": DEMO_ORGANIZATION_ID,
               "license_keys": [{"key": FORGED, "limit_activations": 100}]})
        .to_string(),
    )
    .expect("seed");
    let served = Served::start(
        bare()
            .args(["emulator", "--port", "0", "--seed"])
            .arg(&seed),
    );
    let url = served.url.clone();

    let cache = dir.join("cache");
    let run = |args: &[&str], extra_env: &[(&str, &Path)]| {
        let mut cmd = bare();
        cmd.args(["--json", "--org", DEMO_ORGANIZATION_ID, "--timeout", "2"]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        parse(&cmd.args(args).launch())
    };
    let forge = |extra: &[&str], env: &[(&str, &Path)]| {
        let mut args = vec!["--base-url", url.as_str()];
        args.extend_from_slice(extra);
        let mut activate = args.clone();
        activate.extend_from_slice(&["activate", "--key", FORGED, "--label", "forged"]);
        let a = run(&activate, env);
        assert_eq!(a.code, 0, "{a:?}");
        let mut check = args.clone();
        check.extend_from_slice(&["check", "--key", FORGED]);
        let c = run(&check, env);
        assert!(
            c.licensed_from().is_some(),
            "the forgery works locally: {c:?}"
        );
    };
    let cache_dir = cache.to_str().expect("utf-8");
    forge(&["--cache-dir", cache_dir], &[]);

    // The same directory, read by a client of Polar's production or sandbox server (not
    // reachable from here: what matters is that the record does not answer).
    for server in ["production", "sandbox"] {
        for extra in [&[][..], &["--require-activation"][..]] {
            let mut args = vec!["--server", server, "--cache-dir", cache_dir];
            args.extend_from_slice(extra);
            let mut check = args.clone();
            check.extend_from_slice(&["check", "--key", FORGED]);
            let a = run(&check, &[]);
            assert_ne!(
                a.str("outcome"),
                Some("licensed"),
                "{server} {extra:?}: {a:?}"
            );
            assert_ne!(a.code, 0, "{server} {extra:?}: {a:?}");
            let mut status = args.clone();
            status.extend_from_slice(&["status", "--key", FORGED]);
            let s = run(&status, &[]);
            assert_eq!(s.v["cache"]["state"], "empty", "{server}: {s:?}");
        }
    }

    // Without --cache-dir the command keeps its records in its own directory, also when the
    // binary is renamed after an app: never where an app (here `editor`) looks.
    let (data, home): (PathBuf, Vec<(&str, PathBuf)>) = if cfg!(windows) {
        // %LOCALAPPDATA% is a known folder no environment variable moves: the user's real
        // one, so this part runs only in a throwaway profile (scripts/test-windows.sh's wine
        // prefix says so).
        if std::env::var_os("POLAR_LICENSE_TEST_THROWAWAY_PROFILE").is_none() {
            eprintln!("skipped on Windows outside a throwaway profile: the default directory");
            return;
        }
        (dirs::data_local_dir().expect("a data dir"), Vec::new())
    } else {
        let data = dir.join("xdg");
        (data.clone(), vec![("XDG_DATA_HOME", data)])
    };
    let home: Vec<(&str, &Path)> = home.iter().map(|(k, v)| (*k, v.as_path())).collect();
    forge(&[], &home);
    let own = data.join("polar-license").join("polar-license");
    assert!(own.join("install-secret").is_file(), "{own:?}");
    let renamed = dir.join(format!("editor{}", std::env::consts::EXE_SUFFIX));
    if std::fs::hard_link(BIN, &renamed).is_err() {
        std::fs::copy(BIN, &renamed).expect("copy the binary");
    }
    let out = bare_at(&renamed)
        .envs(home.iter().copied())
        .args(["--json", "status"])
        .launch();
    let s = parse(&out);
    assert_eq!(
        s.v["cache"]["dir"].as_str().map(PathBuf::from),
        Some(own.clone()),
        "{s:?}"
    );
    let apps: Vec<_> = std::fs::read_dir(data.join("polar-license"))
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The renamed copy made no directory of its own (on Windows the throwaway profile also
    // holds other programs' directories, each under its own name).
    assert!(apps.iter().any(|a| a == "polar-license"), "{apps:?}");
    assert!(!apps.iter().any(|a| a.starts_with("editor")), "{apps:?}");
    if cfg!(unix) {
        assert_eq!(apps, ["polar-license"]);
    }
}

/// Item 2a: a saved copy of the record put back after `check` saw the revocation, the clock
/// 30 minutes after the last good verdict: `replayed`, not licensed, and Polar is asked.
#[test]
fn a_record_put_back_after_a_revocation_grants_nothing() {
    let w = world();
    w.activated();
    let record = w.record_file();
    let saved = std::fs::read(&record).expect("read");
    w.revoke();
    let denied = w.check(2 * HOUR);
    assert_eq!(
        denied.verdict(),
        (1, Some("denied"), Some("inactive")),
        "{denied:?}"
    );
    std::fs::write(&record, &saved).expect("put back");
    // What status says of the copy (read with no request, before the check replaces it).
    let s = w.status(30 * 60);
    let text = w.human(30 * 60, &["status", "--key", DEMO_KEY]);
    w.requests();
    let a = w.check(30 * 60);
    assert_eq!(a.licensed_from(), None, "{a:?}");
    assert_eq!(a.verdict(), (1, Some("denied"), Some("inactive")), "{a:?}");
    assert_eq!(w.requests(), 1, "it asked Polar");
    assert_eq!(
        (
            s.v["cache"]["state"].as_str(),
            s.v["cache"]["untrusted"].as_str()
        ),
        (Some("untrusted"), Some("replayed")),
        "{s:?}"
    );
    assert!(text.contains("replayed"), "{text}");
    assert!(text.contains("a saved copy put back"), "{text}");
    let s = w.status(30 * 60);
    assert_eq!(s.v["cache"]["denied"]["reason"], "inactive", "{s:?}");
}

/// Item 2b: the clock held 30 minutes after the last good verdict for every launch, the key
/// revoked meanwhile: the cache answers 33 launches at most, then Polar is asked (one request)
/// and the revocation seen; with Polar unreachable, the held clock stops licensing
/// (`clock_rollback`) after as many.
#[test]
fn a_held_clock_sees_the_revocation_within_a_bounded_number_of_launches() {
    for reachable in [true, false] {
        let w = world();
        w.activated();
        w.revoke();
        if !reachable {
            w.fault(Some(Fault::CloseImmediately));
        }
        let held = unix_now() + 30 * 60;
        let launch = || {
            w.polar.set_clock_offset(held - unix_now());
            let mut cmd = w.command(0, &["check", "--key", DEMO_KEY]);
            cmd.env_remove("POLAR_LICENSE_CLOCK_OFFSET")
                .env("POLAR_LICENSE_CLOCK_AT", held.to_string());
            parse(&cmd.launch())
        };
        let mut cached = 0;
        let last = loop {
            let a = launch();
            if a.licensed_from() != Some("cache") || cached > 40 {
                break a;
            }
            cached += 1;
        };
        assert_eq!(cached, 33, "cached answers at a held clock: {last:?}");
        assert_eq!(w.requests(), 1, "the 34th launch asked Polar");
        if reachable {
            assert_eq!(
                last.verdict(),
                (1, Some("denied"), Some("inactive")),
                "{last:?}"
            );
        } else {
            assert_eq!(
                last.verdict(),
                (3, Some("unverified"), Some("clock_rollback")),
                "{last:?}"
            );
            let s = w.status(0);
            assert_eq!(s.v["cache"]["stalled_answers"], 32, "{s:?}");
            // Still held, still unreachable: no grant, and Polar is asked each time.
            assert_eq!(launch().licensed_from(), None);
            assert_eq!(w.requests(), 1);
            // The clock moves on: the cache answers again (the key was never seen revoked).
            let a = w.check(31 * 60);
            assert_eq!(a.licensed_from(), Some("cache"), "{a:?}");
        }
    }
}

/// The body of Polar's answer to `validate --activation-id` for the demo key, taken from a
/// real answer of the emulator (the license and the activation of the CLI's `--json`).
fn real_validate_body(w: &World, id: &str) -> Value {
    let v = w.at(60, &["validate", "--key", DEMO_KEY, "--activation-id", id]);
    assert_eq!(v.licensed_from(), Some("online"), "{v:?}");
    let mut body = v.v["license"].clone();
    body["activation"] = v.v["activation"].clone();
    assert_eq!(body["activation"]["id"], id, "{body}");
    body
}

/// Item 4: a 200 that says "not valid" (revoked, disabled, expired, another key, another
/// organization, another or no activation) is `protocol_error`: `validate` exits 3, and
/// `check` with a stale good cache answers from the cache with that reason, never a
/// denial. The same body unmodified is licensed (the plumbing is not what refuses).
#[test]
fn a_200_that_says_not_valid_is_a_protocol_error() {
    // Unbound activations: `validate --activation-id` then sends what `activate` stored, also
    // before issue #12 (item 11), so this plays item 4 alone.
    let mut w = world();
    w.env.push(("POLAR_LICENSE_NO_MACHINE_BINDING", "1"));
    let id = w.activated();
    let good = real_validate_body(&w, &id);
    let hostile: Vec<(&str, Value)> = vec![
        ("revoked", json!({"status": "revoked"})),
        ("disabled", json!({"status": "disabled"})),
        ("expired", json!({"expires_at": "2001-01-01T00:00:00Z"})),
        (
            "another key",
            json!({"key": "DEMO-00000000-0000-4000-8000-000000000000"}),
        ),
        (
            "another organization",
            json!({"organization_id": "11111111-2222-4333-8444-555555555555"}),
        ),
        (
            "another activation",
            json!({"activation": {"id": "99999999-8888-4777-8666-555555555555"}}),
        ),
        ("no activation", json!({"activation": null})),
    ];
    let validate = |offset| {
        w.at(
            offset,
            &["validate", "--key", DEMO_KEY, "--activation-id", &id],
        )
    };
    for (i, (what, change)) in hostile.into_iter().enumerate() {
        let mut body = good.clone();
        for (field, value) in change.as_object().expect("object") {
            match (field.as_str(), value) {
                ("activation", Value::Object(a)) => {
                    for (k, v) in a {
                        body["activation"][k] = v.clone();
                    }
                }
                _ => body[field] = value.clone(),
            }
        }
        w.fault(Some(Fault::Status {
            status: 200,
            body: body.to_string(),
        }));
        let at = 2 * HOUR + 10 * i as i64;
        let v = validate(at);
        assert_eq!(
            v.verdict(),
            (3, Some("error"), Some("protocol_error")),
            "{what}: {v:?}"
        );
        let c = w.check(at + 1);
        cached_after(&c, "protocol_error");
        no_denial(&w.status(at + 2));
    }
    // The same answer, unmodified: licensed online (validate and check).
    w.fault(Some(Fault::Status {
        status: 200,
        body: good.to_string(),
    }));
    assert_eq!(validate(3 * HOUR).licensed_from(), Some("online"));
    assert_eq!(w.check(5 * HOUR).licensed_from(), Some("online"));
}

/// Item 5: what a captive portal, a proxy or a CDN answers instead of Polar (a login page,
/// a redirect, a 407, 401/403/404/400 pages, an empty or garbage 200, a bare 404 as a wrong
/// base path or a removed `Polar-Version` gives) is `protocol_error`, never a denial: with a
/// stale good cache `check` answers from it with that reason, and the record is never
/// tombstoned (Polar back: licensed online). A base URL ending in `/v1` or on a wrong path
/// is `protocol_error` (exit 3) too, and leaves no denial.
#[test]
fn login_pages_and_proxies_fall_back_and_never_deny() {
    let w = world();
    w.activated();
    let html = || vec![("content-type".to_string(), "text/html".to_string())];
    let page = |status: u16, body: &str| Fault::Respond {
        status,
        headers: html(),
        body: body.to_string(),
    };
    let faults = [
        page(
            200,
            "<html><form>Hotel Wi-Fi: accept the terms</form></html>",
        ),
        Fault::Respond {
            status: 302,
            headers: vec![("location".into(), "http://login.example/portal".into())],
            body: String::new(),
        },
        Fault::Respond {
            status: 407,
            headers: vec![("proxy-authenticate".into(), "Basic realm=\"corp\"".into())],
            body: String::new(),
        },
        page(401, "<html>Sign in to the network</html>"),
        page(403, "<html>Forbidden by policy</html>"),
        page(404, "<html><h1>404 Not Found</h1></html>"),
        page(400, "<html>Bad Request</html>"),
        Fault::Respond {
            status: 200,
            headers: Vec::new(),
            body: String::new(),
        },
        Fault::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: "\u{1}\u{2}garbage{".into(),
        },
        Fault::Malformed,
        Fault::Respond {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"detail":"Not Found"}"#.into(),
        },
        Fault::Status {
            status: 404,
            body: r#"{"detail":"Not Found"}"#.into(),
        },
        Fault::Status {
            status: 403,
            body: r#"{"detail":"Forbidden"}"#.into(),
        },
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let what = format!("{fault:?}");
        // A proxy's 407 is no answer at all (fetch cannot see one: offline on every face); the
        // others are answers that are not Polar's.
        let proxy_auth = matches!(fault, Fault::Respond { status: 407, .. });
        let (class, reason) = if proxy_auth {
            ("unverified", "offline")
        } else {
            ("error", "protocol_error")
        };
        w.fault(Some(fault));
        let at = 2 * HOUR + 10 * i as i64;
        let v = w.at(at, &["validate", "--key", DEMO_KEY]);
        assert_eq!(v.verdict(), (3, Some(class), Some(reason)), "{what}: {v:?}");
        let c = w.check(at + 1);
        cached_after(&c, reason);
        assert_eq!(c.v["cache_refreshed"], true, "{what}: {c:?}");
        no_denial(&w.status(at + 2));
    }
    // The human headline says it.
    let text = w.human(3 * HOUR, &["check", "--key", DEMO_KEY]);
    assert!(
        text.starts_with("licensed ****-4C5B6A (from cache after protocol_error, grace "),
        "{text}"
    );
    w.fault(None);
    assert_eq!(w.check(4 * HOUR).licensed_from(), Some("online"));
}

/// Item 5, a base URL on the wrong path (ending in `/v1`, or another path: Polar's routes
/// answer a bare 404 there): `protocol_error` (exit 3), never a denial, no tombstone; and, as
/// for any answer that is not Polar's, a stale good cache of that server answers
/// (docs/interfaces.md §4: a vendor's update with a wrong base path must not lock every
/// customer out at once).
///
/// The last part FAILS with today's core: the record is bound to the whole base URL
/// (`flow::Slot::new` gets `Api::base_url()`, path included), so the good record made
/// against `http://127.0.0.1:PORT` is not seen by a client of `http://127.0.0.1:PORT/v1`,
/// which answers `protocol_error` with no grace. Binding to the origin proper (scheme, host
/// and port) would keep item 1 (another host never shares a record) and give this grace.
#[test]
fn a_wrong_base_path_is_a_protocol_error_never_a_denial() {
    let w = world();
    w.activated();
    let bases = [
        format!("{}/v1", w.polar.url()),
        format!("{}/wrong/path", w.polar.url()),
    ];
    let on = |base: &str, offset: i64, args: &[&str]| {
        let mut all = vec!["--base-url", base];
        all.extend_from_slice(args);
        w.at(offset, &all)
    };
    for base in &bases {
        let v = on(base, 2 * HOUR, &["validate", "--key", DEMO_KEY]);
        assert_eq!(
            v.verdict(),
            (3, Some("error"), Some("protocol_error")),
            "{base}: {v:?}"
        );
        let s = on(base, 2 * HOUR, &["status", "--key", DEMO_KEY]);
        assert!(s.v["cache"]["denied"].is_null(), "{base}: {s:?}");
    }
    // The right base URL's record is untouched.
    no_denial(&w.status(2 * HOUR));
    for (i, base) in bases.iter().enumerate() {
        let at = 2 * HOUR + 10 * i as i64;
        let c = on(base, at, &["check", "--key", DEMO_KEY]);
        assert_ne!(c.str("outcome"), Some("denied"), "{base}: {c:?}");
        cached_after(&c, "protocol_error");
    }
}

/// Item 6: the activation is a verdict: activated, then Polar down, `check` is licensed from
/// the cache (fresh at once, and within the grace once stale).
#[test]
fn activate_then_offline_is_licensed_from_the_cache() {
    let mut w = world();
    let a = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
    assert_eq!((a.code, a.str("outcome")), (0, Some("done")), "{a:?}");
    let id = a
        .str("activation_id")
        .expect("an activation id")
        .to_string();
    w.down();
    let a = w.check(10);
    assert_eq!(a.licensed_from(), Some("cache"), "{a:?}");
    assert_eq!(a.str("activation_id"), Some(id.as_str()), "{a:?}");
    let a = w.check(2 * HOUR);
    cached_after(&a, "offline");
    let a = w.at(
        2 * HOUR + 1,
        &["--require-activation", "check", "--key", DEMO_KEY],
    );
    cached_after(&a, "offline");
}

/// Item 7: a read-only cache directory with a good record inside the grace (read by a user
/// who cannot write it): `check`, also with `--require-activation`, is licensed (online when
/// Polar answers, from the cache when it does not), says the cache was not refreshed, and is
/// never `cache_error`.
#[cfg(unix)]
#[test]
fn a_read_only_cache_directory_still_licenses() {
    use std::os::unix::fs::PermissionsExt;
    let w = world();
    w.activated();
    let root = running_as_root();
    // Readable by anyone, writable by no one but the owner.
    for entry in std::fs::read_dir(&w.dir).expect("dir").flatten() {
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let run = |offset: i64, args: &[&str]| {
        let mut cmd = w.command(offset, args);
        if root {
            // Root writes anywhere: run as nobody, for whom the directory is read-only.
            let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
            cmd = polar_license_testkit::wrapped("setpriv", &setpriv, &cmd);
            cmd.env("HOME", "/nonexistent");
        }
        parse(&cmd.launch())
    };
    let s = run(60, &["status", "--key", DEMO_KEY]);
    no_denial(&s);
    for extra in [&["--require-activation"][..], &[][..]] {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["check", "--key", DEMO_KEY]);
        // Fresh, and stale; Polar unreachable, then up.
        for (offset, reachable) in [
            (60, false),
            (2 * HOUR, false),
            (120, true),
            (3 * HOUR, true),
        ] {
            w.fault((!reachable).then_some(Fault::CloseImmediately));
            let a = run(offset, &args);
            let what = format!("{extra:?} at +{offset}, reachable {reachable}");
            if reachable {
                assert_eq!(a.licensed_from(), Some("online"), "{what}: {a:?}");
            } else {
                cached_after(&a, "offline");
            }
            assert_ne!(a.str("reason"), Some("cache_error"), "{what}: {a:?}");
            assert_eq!(a.v["cache_refreshed"], false, "{what}: {a:?}");
            assert!(a.str("cache_error").is_some(), "{what}: {a:?}");
        }
        w.fault(None);
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

/// Item 8: a 429 asking for ten years blocks one hour: `retry_after` 3600, no request during
/// the block, and a check two hours later asks again.
#[test]
fn a_ten_year_retry_after_is_one_hour() {
    let w = world();
    w.fault(Some(Fault::RateLimited {
        retry_after: Some(315_360_000),
    }));
    let a = w.at(0, &["validate", "--key", DEMO_KEY]);
    assert_eq!(
        (a.str("reason"), a.v["retry_after"].as_u64()),
        (Some("rate_limited"), Some(3600)),
        "{a:?}"
    );
    assert_eq!(w.requests(), 1);
    // validate's 429 blocks the checks too (one truth per key), for one hour at most.
    let blocked = w.check(10);
    assert_eq!(
        blocked.verdict(),
        (3, Some("unverified"), Some("rate_limited")),
        "{blocked:?}"
    );
    assert!(
        blocked.v["retry_after"].as_u64().is_some_and(|s| s <= 3600),
        "{blocked:?}"
    );
    assert_eq!(w.requests(), 0, "no request during the block");
    w.fault(None);
    assert_eq!(w.check(2 * HOUR).licensed_from(), Some("online"));
    assert_eq!(w.requests(), 1);
}

/// Item 9: twenty checks started at once while Polar hangs (`--timeout 2`), with a stale good
/// cache: none queues behind another (before, the 20th waited 40 s): each ends well within
/// two timeouts, all licensed from the cache, and the others did not ask Polar meanwhile.
#[test]
fn twenty_checks_while_polar_hangs_do_not_queue() {
    let w = world();
    w.activated();
    w.fault(Some(Fault::Hang));
    let commands: Vec<Command> = (0..20)
        .map(|_| w.command(2 * HOUR, &["--timeout", "2", "check", "--key", DEMO_KEY]))
        .collect();
    let started = Instant::now();
    let runs: Vec<_> = commands
        .into_iter()
        .map(|mut cmd| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let out = cmd.launch();
                (t.elapsed(), out)
            })
        })
        .collect();
    let answers: Vec<(Duration, Answer)> = runs
        .into_iter()
        .map(|h| {
            let (took, out) = h.join().expect("thread");
            (took, parse(&out))
        })
        .collect();
    let batch = started.elapsed();
    for (took, a) in &answers {
        assert_eq!(a.licensed_from(), Some("cache"), "{a:?}");
        assert!(
            *took < Duration::from_secs(4),
            "one check took {took:?}: {a:?}"
        );
    }
    assert!(batch < Duration::from_secs(6), "the batch took {batch:?}");
    let asked = w.requests();
    assert!(asked < 5, "{asked} of 20 checks asked Polar");
}

/// Item 10: the install secret lost or damaged (every record untrusted): `status` shows the
/// activation the record still names and does not only blame tampering; `check
/// --require-activation` validates that activation online, and no new slot is taken.
#[test]
fn a_lost_install_secret_does_not_cost_an_activation_slot() {
    for damage in ["removed", "truncated", "replaced"] {
        let w = world();
        let id = w.activated();
        let secret = w.dir.join("install-secret");
        match damage {
            "removed" => std::fs::remove_file(&secret).expect("remove"),
            "truncated" => std::fs::write(&secret, b"short").expect("write"),
            _ => {
                let mut bytes = std::fs::read(&secret).expect("read");
                for b in &mut bytes {
                    *b = !*b;
                }
                std::fs::write(&secret, bytes).expect("write");
            }
        }
        let s = w.status(0);
        assert_eq!(s.v["cache"]["state"], "untrusted", "{damage}: {s:?}");
        assert_eq!(s.str("activation_id"), Some(id.as_str()), "{damage}: {s:?}");
        assert_eq!(
            s.v["cache"]["activation"]["id"],
            id.as_str(),
            "{damage}: {s:?}"
        );
        let text = w.human(0, &["status", "--key", DEMO_KEY]);
        assert!(text.contains("install secret"), "{damage}: {text}");
        assert!(
            text.contains(&id) && text.contains("the next check validates it"),
            "{damage}: {text}"
        );
        let a = w.at(0, &["--require-activation", "check", "--key", DEMO_KEY]);
        assert_eq!(a.licensed_from(), Some("online"), "{damage}: {a:?}");
        assert_eq!(a.str("activation_id"), Some(id.as_str()), "{damage}: {a:?}");
        assert_eq!(w.requests(), 1, "{damage}");
        assert_eq!(
            w.polar.activations(DEMO_KEY).len(),
            1,
            "{damage}: no new slot"
        );
        // Trusted again, still remembering the activation.
        let s = w.status(1);
        assert_eq!(s.v["cache"]["state"], "present", "{damage}: {s:?}");
        assert_eq!(s.str("activation_id"), Some(id.as_str()), "{damage}: {s:?}");
    }
}

/// Item 11: every command of one install sends the same conditions (`activate --condition`
/// then `validate --activation-id --condition` on the same machine is licensed), and every
/// online answer updates the key's record (a revocation `validate` sees is the next check's:
/// never licensed from the cache).
#[test]
fn activate_validate_and_check_agree() {
    let w = world();
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
    assert_eq!(v.v["cache_refreshed"], true, "{v:?}");
    w.revoke();
    let v = validate(60);
    assert_eq!(v.verdict(), (1, Some("denied"), Some("inactive")), "{v:?}");
    // The status says so at once, in every field that would read as a grant: the good
    // verdict before it is history (its time stays), not the key's status.
    let st = w.status(60);
    assert_eq!(st.v["cache"]["denied"]["reason"], "inactive", "{st:?}");
    assert_eq!(st.v["standing"], "denied", "{st:?}");
    assert_eq!(st.v["cache"]["standing"], "denied", "{st:?}");
    assert!(st.v["cache"]["license_status"].is_null(), "{st:?}");
    assert_eq!(st.v["cache"]["revalidate_in_seconds"], 0, "{st:?}");
    assert!(st.v["grace_remaining_seconds"].is_null(), "{st:?}");
    assert!(st.v["cache"]["verified_at"].is_string(), "{st:?}");
    // Fresh by age, but validate saw the revocation: no grant from the cache, offline or not.
    w.fault(Some(Fault::CloseImmediately));
    let c = w.check(120);
    assert_eq!(c.licensed_from(), None, "{c:?}");
    w.fault(None);
    w.requests();
    let c = w.check(130);
    assert_eq!(c.verdict(), (1, Some("denied"), Some("inactive")), "{c:?}");
    assert_eq!(w.requests(), 1, "the check asked Polar");
}

/// Also: a FIFO planted at the record path does not hang `check`; a record that cannot be
/// written (a directory in its place) is said (`cache_refreshed: false`); and a cache that
/// cannot be opened at all does not stop `validate`, which says the cache did not learn it.
#[cfg(unix)]
#[test]
fn a_fifo_or_an_unwritable_record_is_no_hang_and_is_said() {
    let w = world();
    w.activated();
    let record = w.record_file();
    std::fs::remove_file(&record).expect("remove");
    assert!(Command::new("mkfifo")
        .arg(&record)
        .status()
        .expect("mkfifo")
        .success());
    let mut child = w
        .command(60, &["check", "--key", DEMO_KEY])
        .stdout(std::process::Stdio::piped())
        .start();
    // A bound on a hang, not a timing assertion: a blocked open never returns.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waits").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check hung on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = parse(&child.wait_with_output().expect("output"));
    assert_eq!(a.licensed_from(), Some("online"), "{a:?}");
    // The answer replaced the FIFO with a record.
    assert!(std::fs::metadata(&record).expect("record").is_file());

    // The FIFO replaced by a directory: the record cannot be written.
    std::fs::remove_file(&record).expect("remove");
    std::fs::create_dir(&record).expect("mkdir");
    let a = w.check(2 * HOUR);
    assert_eq!(a.licensed_from(), Some("online"), "{a:?}");
    assert_eq!(a.v["cache_refreshed"], false, "{a:?}");
    assert!(a.str("cache_error").is_some(), "{a:?}");
    let text = w.human(2 * HOUR + 1, &["check", "--key", DEMO_KEY]);
    assert!(text.contains("the cache was not refreshed"), "{text}");
    // The question `check` asks (the record that named the activation is gone: the bare key).
    let v = w.at(2 * HOUR + 2, &["validate", "--key", DEMO_KEY]);
    assert_eq!(v.licensed_from(), Some("online"), "{v:?}");
    assert_eq!(v.v["cache_refreshed"], false, "{v:?}");
    assert!(Path::new(&record).is_dir());

    // No cache at all (the install secret cannot be read or made): validate answers online.
    let secret = w.dir.join("install-secret");
    std::fs::remove_file(&secret).expect("remove");
    std::fs::create_dir(&secret).expect("mkdir");
    let v = w.at(2 * HOUR + 3, &["validate", "--key", DEMO_KEY]);
    assert_eq!(v.licensed_from(), Some("online"), "{v:?}");
    assert_eq!(v.v["cache_refreshed"], false, "{v:?}");
    assert!(v.str("cache_error").is_some(), "{v:?}");
}

/// Issue #13 item 4: the command can be pointed at an app's own directory (`--app-id`), to
/// read or repair what the app wrote there; an id that is not one is a usage error.
#[cfg(unix)]
#[test]
fn the_command_reaches_an_apps_directory_with_app_id() {
    let w = world();
    let data = ScratchDir::new("cli-trust-xdg-app");
    // The app (this process, as the library): its records under its own id.
    std::env::set_var("XDG_DATA_HOME", &data);
    let app = polar_license::Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(w.polar.url())
        .app_id("com.vendor.editor")
        .build()
        .expect("builds");
    assert!(app.check(DEMO_KEY).is_licensed());
    let app_dir = data.join("polar-license").join("com.vendor.editor");
    assert!(app_dir.join("install-secret").is_file(), "{app_dir:?}");

    let status = |extra: &[&str]| {
        let mut cmd = bare();
        cmd.env("XDG_DATA_HOME", &data)
            .env("POLAR_API_URL", w.polar.url())
            .env("POLAR_ORGANIZATION_ID", DEMO_ORGANIZATION_ID)
            .args(["--json"])
            .args(extra)
            .args(["status", "--key", DEMO_KEY]);
        parse(&cmd.launch())
    };
    let s = status(&["--app-id", "com.vendor.editor"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert_eq!(
        s.v["cache"]["dir"].as_str().map(PathBuf::from),
        Some(app_dir)
    );
    assert_eq!(s.v["cache"]["state"], "present", "{s:?}");
    // Its own directory otherwise: nothing there.
    let s = status(&[]);
    assert_eq!(s.v["cache"]["state"], "empty", "{s:?}");
    let s = status(&["--app-id", "../escape"]);
    assert_eq!(
        (s.code, s.str("reason")),
        (2, Some("invalid_input")),
        "{s:?}"
    );
    assert!(s.v.to_string().contains("app_id"), "{s:?}");
}

/// The cache directory's files (records, ledgers, clock notes, the install secret) and their
/// bytes.
fn cache_snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the cache directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            p.is_file() && (name.ends_with(".cache") || name == "install-secret")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a cache file");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Puts `files` back as they were (those changed), and removes any cache file written since.
fn cache_restore(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (p, _) in cache_snapshot(dir) {
        if !files.iter().any(|(q, _)| *q == p) {
            std::fs::remove_file(p).expect("remove");
        }
    }
    for (p, bytes) in files {
        if std::fs::read(p).ok().as_ref() != Some(bytes) {
            std::fs::write(p, bytes).expect("restore");
        }
    }
}

/// Issue #76, finding 5, through the real binary: a byte flipped in any cache file (the
/// record, its ledger, its clock note, the install secret; at its first bytes and at each
/// sixteenth of its length, the positions of the issue's run, and at every 4th byte of the
/// record's activation) is never `invalid_input` (exit 2, "not activated on this computer
/// yet") for `--require-activation check`. The record or its ledger flipped: `status` says
/// untrusted; offline the check is unverified (exit 3): `offline` when the activation, sealed
/// on its own, still reads (it was asked for), `cache_error` with nothing sent when the flip
/// is in the activation's own bytes; online the activation that reads is validated and kept
/// (licensed online, the same id, no new slot). A flipped clock note is no note: licensed.
/// Before, the activation was read before any seal: a flip in the header or in the activation
/// was `invalid_input`, exit 2.
#[test]
fn a_byte_flipped_in_any_cache_file_is_an_untrusted_cache_never_invalid_input() {
    let w = world();
    let id = w.activated();
    // A cached answer a minute later: the clock note is written too.
    let c = w.at(60, &["--require-activation", "check", "--key", DEMO_KEY]);
    assert_eq!(c.licensed_from(), Some("cache"), "{c:?}");
    let files = cache_snapshot(&w.dir);
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        files.len(),
        4,
        "record, ledger, clock note, install secret: {names:?}"
    );
    let record = w.record_file();
    let record_bytes = &files
        .iter()
        .find(|(p, _)| *p == record)
        .expect("the record")
        .1;
    let text = String::from_utf8_lossy(record_bytes).into_owned();
    let span = text.rfind("{\"id\":\"").expect("an activation")..text.rfind("}\n").expect("a body");
    let mut kinds = std::collections::BTreeSet::new();
    for online in [false, true] {
        w.polar
            .set_fault((!online).then_some(Fault::CloseImmediately));
        for (path, original) in &files {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let clock = name.ends_with("-clock.cache");
            let len = original.len();
            let mut at: Vec<usize> = (0..3).chain((0..16).map(|k| k * len / 16)).collect();
            if *path == record {
                at.extend(span.clone().step_by(4));
            }
            at.sort_unstable();
            at.dedup();
            for at in at {
                cache_restore(&w.dir, &files);
                let mut flipped = original.clone();
                flipped[at] ^= 0x01;
                std::fs::write(path, &flipped).expect("flip");
                let in_activation = *path == record && span.contains(&at);
                w.requests();
                let s = w.status(60);
                let a = w.at(60, &["--require-activation", "check", "--key", DEMO_KEY]);
                let sent = w.requests();
                let case = format!("{name} byte {at} online {online}: {a:?}");
                assert_ne!(a.code, 2, "{case}");
                assert_ne!(a.str("reason"), Some("invalid_input"), "{case}");
                if clock {
                    assert!(a.licensed_from().is_some(), "{case}");
                    kinds.insert("clock: licensed");
                    continue;
                }
                assert_eq!(s.v["cache"]["state"], "untrusted", "{case}: {s:?}");
                if in_activation {
                    assert_eq!(a.verdict().0, 3, "{case}");
                    assert_eq!(a.str("reason"), Some("cache_error"), "{case}");
                    assert_eq!(sent, 0, "{case}: nothing sent");
                    kinds.insert("activation: cache_error");
                    continue;
                }
                assert_eq!(s.str("activation_id"), Some(id.as_str()), "{case}: {s:?}");
                if online {
                    assert_eq!(a.licensed_from(), Some("online"), "{case}");
                    assert_eq!(a.str("activation_id"), Some(id.as_str()), "{case}");
                    kinds.insert("elsewhere: licensed online");
                } else {
                    assert_eq!(
                        a.verdict(),
                        (3, Some("unverified"), Some("offline")),
                        "{case}"
                    );
                    kinds.insert("elsewhere: offline");
                }
            }
        }
    }
    w.polar.set_fault(None);
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1, "never a new slot");
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}
