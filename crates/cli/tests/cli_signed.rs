//! Signed mode through the real binary (issue #25): `polar-license relay serve` as a process in
//! front of the emulator, the command line as the app with `--relay-key`. The lease in every
//! `--json`, the cache licensing offline only until the lease ends, the forged-record attack
//! (re-sealed with this crate's own code: an unsigned command grants, a signed one refuses), and
//! the air-gapped `lease request | fetch | install` round trip.

use polar_license::fingerprint::machine_fingerprint;
use polar_license_emulator::{Fault, DEMO_KEY};
use polar_license_testkit::{clean_command, forge, Forgery, Launch, Tape, World};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const DAY: i64 = 86_400;
const APP_SECRET: &str = "the app's own secret";

/// This suite's world: the testkit's, with the relay as a process signing leases for
/// `lease_days`.
fn world(lease_days: &str) -> World {
    World::new("cli-signed").with_relay_process(BIN, lease_days)
}

struct Answer {
    code: i32,
    v: Value,
    stdout: String,
}

/// Runs `cmd` with `stdin` (empty when `None`); its `--json` answer.
fn run(cmd: &mut Command, stdin: Option<&str>) -> Answer {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start();
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("stdin written");
    drop(input);
    let out = child.wait_with_output().expect("the binary ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Answer {
        code: out.status.code().unwrap_or(-1),
        v,
        stdout,
    }
}

/// This suite's commands on the testkit's world.
trait Here {
    fn cli_app(&self, cache: &str, offset: i64, signed: bool) -> Command;
    fn cmd(&self, cache: &str, offset: i64, signed: bool, args: &[&str]) -> Answer;
    fn activate_signed(&self) -> Answer;
    fn forge_at(&self, cache: &str, edit: impl FnOnce(&mut polar_license::Record));
}

impl Here for World {
    /// The binary as the app: through the relay, the cache `cache`, the clock moved by
    /// `offset` seconds (the emulator's too), in signed mode when `signed`.
    fn cli_app(&self, cache: &str, offset: i64, signed: bool) -> Command {
        app_at(
            self,
            &self.relay_process().served.url,
            cache,
            offset,
            signed,
        )
    }

    fn cmd(&self, cache: &str, offset: i64, signed: bool, args: &[&str]) -> Answer {
        run(self.cli_app(cache, offset, signed).args(args), None)
    }

    /// `activate` in signed mode, in the cache `app`, at the clock's start.
    fn activate_signed(&self) -> Answer {
        let args = ["activate", "--key", DEMO_KEY, "--label", "laptop"];
        self.cmd("app", 0, true, &args)
    }

    /// Re-seals the record in `cache` after `edit`, with the install secret read from disk,
    /// the app secret and this crate's own code: what the threat model says anyone can do.
    fn forge_at(&self, cache: &str, edit: impl FnOnce(&mut polar_license::Record)) {
        let org = self.polar.organization_id();
        let seal = machine_fingerprint(&org).expect("this machine's id");
        forge(
            &Forgery {
                dir: &self.path(cache),
                base_url: &self.relay_process().served.url,
                organization_id: &org,
                key: DEMO_KEY,
                seal: seal.as_deref(),
                app_secret: Some(APP_SECRET.as_bytes()),
            },
            edit,
        );
    }
}

impl Answer {
    /// Asserts that `field` is the string `value` (showing the answer when not).
    #[track_caller]
    fn has(&self, field: &str, value: &str) {
        assert_eq!(self.v[field].as_str(), Some(value), "{}", self.v);
    }

    /// [`Answer::has`], showing `case` too.
    #[track_caller]
    fn has_in(&self, case: &str, field: &str, value: &str) {
        assert_eq!(self.v[field].as_str(), Some(value), "{case}: {}", self.v);
    }

    /// Asserts that the outcome is not `licensed` (showing the answer when it is).
    #[track_caller]
    fn not_licensed(&self) {
        assert_ne!(self.v["outcome"].as_str(), Some("licensed"), "{}", self.v);
    }

    /// [`Answer::not_licensed`], showing `case` too.
    #[track_caller]
    fn not_licensed_in(&self, case: &str) {
        assert_ne!(
            self.v["outcome"].as_str(),
            Some("licensed"),
            "{case}: {}",
            self.v
        );
    }
}

fn lease_kid(a: &Answer) -> Option<&str> {
    a.v["lease"]["kid"].as_str()
}

#[test]
fn the_lease_is_in_every_answer_and_the_cache_licenses_offline_until_it_ends() {
    let w = world("2");
    let a = w.activate_signed();
    assert_eq!((a.code, lease_kid(&a)), (0, Some("relay-1")), "{}", a.v);
    let ends = a.v["lease"]["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_string();
    for args in [
        &["check", "--key", DEMO_KEY][..],
        &["status", "--key", DEMO_KEY][..],
        &["validate", "--key", DEMO_KEY][..],
    ] {
        let a = w.cmd("app", 0, true, args);
        assert_eq!(lease_kid(&a), Some("relay-1"), "{args:?}: {}", a.v);
    }
    // Without --relay-key: the same record, no lease read (null).
    let a = w.cmd("app", 0, false, &["status", "--key", DEMO_KEY]);
    assert!(a.v["lease"].is_null(), "{}", a.v);

    // Polar unreachable (the relay answers 502): licensed from the cache a day later…
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let a = w.cmd("app", DAY, true, &["check", "--key", DEMO_KEY]);
    assert_eq!(
        (a.code, a.v["outcome"].as_str(), a.v["source"].as_str()),
        (0, Some("licensed"), Some("cache")),
        "{}",
        a.v
    );
    // Its grace ends with the lease it stands on (2 days), not 7 days after the verdict.
    assert_eq!(a.v["grace_ends_at"], a.v["lease"]["expires_at"], "{}", a.v);
    // …not once the lease has ended (day 2), though the grace (7 days) has not.
    let a = w.cmd("app", 2 * DAY + 60, true, &["check", "--key", DEMO_KEY]);
    a.has("reason", "grace_expired");
    let a = w.cmd("app", 2 * DAY + 60, false, &["check", "--key", DEMO_KEY]);
    assert_eq!(a.v["source"].as_str(), Some("cache"), "unsigned: {}", a.v);
    assert!(!ends.is_empty());
}

#[test]
fn the_forged_record_attack_fools_an_unsigned_command_and_not_a_signed_one() {
    let w = world("7");
    let a = w.activate_signed();
    assert_eq!(a.code, 0, "{}", a.v);
    // Revoked on Polar, which the attacker then keeps unreachable; a month later the record is
    // re-sealed as freshly verified.
    w.revoke();
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let month = 30 * DAY;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
        + month;
    w.forge_at("app", |r| {
        let good = r.good.as_mut().expect("a good verdict");
        good.verified_at = now;
        r.latest_seen = now;
        r.denied = None;
    });
    let unsigned = w.cmd("app", month, false, &["check", "--key", DEMO_KEY]);
    assert_eq!(
        (unsigned.code, unsigned.v["source"].as_str()),
        (0, Some("cache")),
        "today's ceiling: {}",
        unsigned.v
    );
    let signed = w.cmd("app", month, true, &["check", "--key", DEMO_KEY]);
    assert_ne!(signed.code, 0, "{}", signed.v);
    signed.has("reason", "grace_expired");
    assert!(
        signed.v["lease"].is_object(),
        "the lease is shown, ended: {}",
        signed.v
    );
}

#[test]
fn an_air_gapped_activation_through_lease_request_fetch_and_install() {
    let w = world("7");
    // The offline machine: only the organization and the relay's key (its base URL is never
    // reached: nothing listens there).
    let offline = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = clean_command(BIN);
        cmd.args(["--json", "--org", &w.polar.organization_id()])
            .args(["--base-url", "http://127.0.0.1:9"])
            .args(["--cache-dir", w.path("offline").to_str().expect("UTF-8")])
            .args(["--relay-key", &w.relay_process().pair])
            .args(args);
        run(&mut cmd, stdin)
    };
    let request = offline(
        &["lease", "request", "--key", DEMO_KEY, "--label", "lab"],
        None,
    );
    assert_eq!(request.code, 0, "{}", request.v);
    let line = request.v["line"].as_str().expect("line").to_string();
    assert!(
        line.starts_with("polar-license-activation-request.v1."),
        "{line}"
    );

    // Any online machine: the relay at --base-url; the organization comes from the request.
    let mut fetch = clean_command(BIN);
    fetch
        .args(["--json", "--base-url", &w.relay_process().served.url])
        .args(["lease", "fetch"]);
    let fetched = run(&mut fetch, Some(&line));
    assert_eq!(fetched.code, 0, "{}", fetched.v);
    let response = fetched.v["line"].as_str().expect("line").to_string();

    // A damaged response installs nothing; the real one does, and the machine is licensed
    // with no network at all.
    let cut = &response[..response.len() - 8];
    let bad = offline(&["lease", "install"], Some(cut));
    bad.has("reason", "invalid_input");
    let installed = offline(&["lease", "install"], Some(&response));
    assert_eq!(
        (installed.code, lease_kid(&installed)),
        (0, Some("relay-1")),
        "{}",
        installed.v
    );
    let check = offline(&["check", "--key", DEMO_KEY], None);
    assert_eq!(
        (check.code, check.v["source"].as_str()),
        (0, Some("cache")),
        "{}",
        check.v
    );
    // Without --json the request is the only line on stdout (to pipe or redirect).
    let mut plain = clean_command(BIN);
    plain
        .args(["--org", &w.polar.organization_id()])
        .args(["--cache-dir", w.path("offline").to_str().expect("UTF-8")])
        .args(["lease", "request", "--key", DEMO_KEY, "--label", "lab"]);
    let out = plain.launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("polar-license-activation-request.v1."));
    assert!(!request.stdout.is_empty());
}

#[test]
fn a_relay_key_that_does_not_parse_is_invalid_input_before_any_request() {
    let w = world("7");
    w.polar.reset_request_count();
    for bad in ["relay-1", "relay-1=k4.public.AAAA", "=k4.public.x", "a=b=c"] {
        let mut cmd = w.cli_app("bad", 0, false);
        cmd.args(["--relay-key", bad, "check", "--key", DEMO_KEY]);
        let a = run(&mut cmd, None);
        assert_eq!(
            (a.v["reason"].as_str(), a.v["field"].as_str()),
            (Some("invalid_input"), Some("relay_keys")),
            "{bad}: {}",
            a.v
        );
    }
    assert_eq!(w.polar.request_count(), 0);
}

/// The command as the app in signed mode, through the proxy `tape`, the clock moved by
/// `offset` seconds (the emulator's too).
fn through(w: &World, tape: &Tape, cache: &str, offset: i64, args: &[&str]) -> Answer {
    through_as(w, tape, cache, offset, true, args)
}

/// [`through`], in signed mode through the relay when `signed`, else unsigned with the proxy
/// in front of the emulator itself (the proxy `tape` was started on the one or the other).
fn through_as(
    w: &World,
    tape: &Tape,
    cache: &str,
    offset: i64,
    signed: bool,
    args: &[&str],
) -> Answer {
    run(app_at(w, &tape.url, cache, offset, signed).args(args), None)
}

/// `activate` of the demo key in `cache` at the clock's start, [`through_as`]; it must
/// succeed.
fn activate_through(w: &World, tape: &Tape, cache: &str, signed: bool) {
    let activate = ["activate", "--key", DEMO_KEY, "--label", "laptop"];
    let a = through_as(w, tape, cache, 0, signed, &activate);
    assert_eq!(a.code, 0, "{}", a.v);
}

/// The binary as the app at `base_url`: the cache `cache`, the clock moved by `offset` seconds
/// (the emulator's too), in signed mode (the relay's key) when `signed`.
fn app_at(w: &World, base_url: &str, cache: &str, offset: i64, signed: bool) -> Command {
    w.polar.set_clock_offset(offset);
    let mut cmd = clean_command(BIN);
    cmd.args(["--json", "--org", &w.polar.organization_id()])
        .args(["--base-url", base_url])
        .args(["--cache-dir", w.path(cache).to_str().expect("UTF-8")])
        .args(["--app-secret", APP_SECRET])
        .env("POLAR_LICENSE_CLOCK_OFFSET", offset.to_string());
    if signed {
        cmd.args(["--relay-key", &w.relay_process().pair]);
    }
    cmd
}

/// Issue #53 item 2 on the command line's face, the late-grant race: two `polar-license`
/// processes on one cache directory. The first one's `check` gets Polar's 200, which the
/// recording proxy holds; meanwhile the key is revoked and the second process's `validate`
/// records Polar's `inactive` denial; then the held answer arrives. The first check must not
/// end licensed (it ends denied, `inactive`), and later checks deny: at once, and an hour
/// later with Polar unreachable. Played signed (through the relay) and unsigned (the proxy
/// in front of Polar), with the denial dated the second the held check began and 4 s after.
#[test]
fn a_denial_recorded_while_a_checks_grant_was_held_survives_the_grant() {
    for signed in [true, false] {
        for moved in [0, 4] {
            let w = world("7");
            let upstream = if signed {
                w.relay_process().served.url.clone()
            } else {
                w.polar.url()
            };
            let tape = Tape::start(&upstream);
            let case = format!("signed {signed}, moved {moved}");
            let activated = through_as(
                &w,
                &tape,
                "app",
                0,
                signed,
                &["activate", "--key", DEMO_KEY, "--label", "laptop"],
            );
            assert_eq!(activated.code, 0, "{case}: {}", activated.v);
            let id = activated.v["activation_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{case}: an activation id: {}", activated.v))
                .to_string();

            // The first process: its check asks Polar (`--revalidate-after 0`: the verdict just
            // made is not fresh enough), at the relay's clock; the 200 is held.
            let start = 0;
            let check = ["--revalidate-after", "0", "check", "--key", DEMO_KEY];
            tape.hold_next();
            let first = app_at(&w, &tape.url, "app", start, signed)
                .args(check)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .start();
            assert!(
                tape.wait_held(std::time::Duration::from_secs(30)),
                "{case}: the first check's grant is held"
            );

            // Meanwhile the key is revoked, and the second process records Polar's denial.
            w.revoke();
            let validate = ["validate", "--key", DEMO_KEY, "--activation-id", &id];
            let denied = through_as(&w, &tape, "app", start + moved, signed, &validate);
            denied.has_in(&case, "reason", "inactive");

            // The held grant arrives: the first check does not end licensed.
            tape.release();
            let out = first.wait_with_output().expect("the first check ends");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let late: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!(
                    "{case}: not one JSON object ({e}): {stdout}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            assert_ne!(late["outcome"].as_str(), Some("licensed"), "{case}: {late}");
            assert_eq!(late["outcome"].as_str(), Some("denied"), "{case}: {late}");
            assert_eq!(late["reason"].as_str(), Some("inactive"), "{case}: {late}");
            assert_ne!(out.status.code(), Some(0), "{case}: {late}");

            // Later checks deny: at once, and an hour later with Polar unreachable.
            let next = through_as(&w, &tape, "app", start + moved, signed, &check);
            assert_ne!(next.code, 0, "{case}: {}", next.v);
            next.has_in(&case, "reason", "inactive");
            w.polar.set_fault(Some(Fault::CloseImmediately));
            let offline = through_as(&w, &tape, "app", start + moved + 3600, signed, &check);
            assert_ne!(offline.code, 0, "{case}: {}", offline.v);
            offline.not_licensed_in(&case);
            w.polar.set_fault(None);
        }
    }
}

/// Issue #53, as the issue tried it: the command in signed mode behind `relay serve`, a
/// recording proxy in between. The key revoked and denied twice online, the proxy replays an
/// earlier 200 of the relay with its genuine lease: refused (`replayed`), and with the proxy
/// gone the cache does not license. Then the clock 30 days ahead and set back 28: the replay
/// is refused and `clock_rollback` stays; a fresh grant through the relay licenses online.
#[test]
fn a_replayed_relay_grant_undoes_neither_a_revocation_nor_a_clock_set_back() {
    let w = world("7");
    let tape = Tape::start(&w.relay_process().served.url);
    let check = ["check", "--key", DEMO_KEY];
    activate_through(&w, &tape, "app", true);
    let hours = 2 * 3600;
    let online = through(&w, &tape, "app", hours, &check);
    online.has("source", "online");
    assert!(tape.captured(), "a 200 captured");

    // The clock set ahead and back, offline (the relay unreachable through the proxy).
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let ahead = through(&w, &tape, "app", 30 * DAY, &check);
    assert_ne!(ahead.code, 0, "{}", ahead.v);
    let back = through(&w, &tape, "app", 2 * DAY, &check);
    back.has("reason", "clock_rollback");
    w.polar.set_fault(None);
    tape.passed();
    tape.replaying(true);
    let replayed = through(&w, &tape, "app", 2 * DAY, &check);
    replayed.has("reason", "replayed");
    replayed.has("outcome", "unverified");
    assert_eq!(tape.passed(), 0, "the proxy answered alone");
    tape.replaying(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let kept = through(&w, &tape, "app", 2 * DAY + 60, &check);
    kept.has("reason", "clock_rollback");
    w.polar.set_fault(None);

    // A fresh grant, its nonce signed by the relay: licensed online.
    let fresh = through(&w, &tape, "app", 2 * DAY + 120, &check);
    fresh.has("source", "online");

    // Revoked: denied twice online; the proxy's replay is refused and the denial kept.
    w.revoke();
    for i in 0..2 {
        let denied = through(&w, &tape, "app", 2 * DAY + 180 + i, &check);
        denied.has("reason", "inactive");
    }
    tape.replaying(true);
    let replayed = through(&w, &tape, "app", 2 * DAY + 300, &check);
    replayed.has("reason", "replayed");
    tape.replaying(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let offline = through(&w, &tape, "app", 2 * DAY + 3 * 3600, &check);
    assert_ne!(offline.code, 0, "{}", offline.v);
    offline.not_licensed();
    let status = through(
        &w,
        &tape,
        "app",
        2 * DAY + 3 * 3600,
        &["status", "--key", DEMO_KEY],
    );
    assert!(
        status.stdout.contains("inactive") || status.stdout.contains("denied"),
        "the denial kept: {}",
        status.v
    );
}

/// Issue #62 on the command line's face: signed mode trusts only signed facts. The key is
/// paid through 30 days from now and refunded (revoked); the proxy turns fake relay and answers
/// every validate with an unsigned `404 "License key has expired."`. A build released today
/// is not licensed by it in signed mode: online, offline (the relay unreachable), nor 40 days
/// later, and the denial is kept. Without relay keys the same forgery falls back (nothing is
/// signed there: docs/threat-model.md says so).
#[test]
fn a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode() {
    let w = world("7");
    w.expire_at(polar_license_testkit::unix_now() + 30 * DAY);
    let tape = Tape::start(&w.relay_process().served.url);
    let today = polar_license_testkit::rfc3339(polar_license_testkit::unix_now());
    let check = ["check", "--key", DEMO_KEY, "--released", &today[..10]];
    for (cache, signed) in [("signed", true), ("unsigned", false)] {
        activate_through(&w, &tape, cache, signed);
        let online = through_as(&w, &tape, cache, 3600, signed, &check);
        online.has("outcome", "licensed");
    }
    w.revoke();
    tape.forging_expiry(true);
    let forged = through(&w, &tape, "signed", 2 * 3600, &check);
    assert_ne!(forged.code, 0, "{}", forged.v);
    forged.has("reason", "expired");
    assert_eq!(forged.v["fallback"].as_bool(), Some(false), "{}", forged.v);
    let why = forged.v["fallback_refused"].as_str().unwrap_or_default();
    assert!(why.contains("signed denial"), "{}", forged.v);
    // Unsigned mode: nothing is signed, so the forged expiry is believed (the limit stated).
    let unsigned = through_as(&w, &tape, "unsigned", 2 * 3600, false, &check);
    assert_eq!(
        unsigned.v["fallback"].as_bool(),
        Some(true),
        "{}",
        unsigned.v
    );

    // Offline: the relay cannot reach Polar (502), the proxy passes it on.
    tape.forging_expiry(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let offline = through(&w, &tape, "signed", 3 * 3600, &check);
    assert_ne!(offline.code, 0, "{}", offline.v);
    offline.not_licensed();
    // 40 days later: the fake relay again, then offline again.
    w.polar.set_fault(None);
    tape.forging_expiry(true);
    let later = through(&w, &tape, "signed", 40 * DAY, &check);
    later.not_licensed();
    tape.forging_expiry(false);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let later_offline = through(&w, &tape, "signed", 40 * DAY + 60, &check);
    later_offline.not_licensed();
    w.polar.set_fault(None);
    let status = through(
        &w,
        &tape,
        "signed",
        40 * DAY + 120,
        &["status", "--key", DEMO_KEY],
    );
    assert!(
        status.stdout.contains("denied") || status.v["standing"].as_str() == Some("denied"),
        "the denial kept: {}",
        status.v
    );
}

/// Issue #62: one unsigned cancelled `subscription` added by the proxy to the relay's genuine
/// grant, then Polar's own "no longer active" (revoked): in signed mode no fallback on it,
/// online or offline; the signed `sub_end` claim is the only subscription fact believed.
#[test]
fn an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual() {
    let w = world("7");
    let tape = Tape::start(&w.relay_process().served.url);
    // A build released three days ago: before the injected subscription's end (yesterday).
    let today = polar_license_testkit::rfc3339(polar_license_testkit::unix_now() - 3 * DAY);
    let check = ["check", "--key", DEMO_KEY, "--released", &today[..10]];
    activate_through(&w, &tape, "app", true);
    tape.injecting_subscription(true);
    tape.passed();
    let injected = through(&w, &tape, "app", 2 * 3600, &check);
    injected.has("source", "online");
    assert!(
        tape.passed() >= 1,
        "the injected grant came through the proxy"
    );
    injected.has("outcome", "licensed");
    tape.injecting_subscription(false);
    w.revoke();
    let revoked = through(&w, &tape, "app", 4 * 3600, &check);
    revoked.has("reason", "inactive");
    assert_eq!(
        revoked.v["fallback"].as_bool(),
        Some(false),
        "{}",
        revoked.v
    );
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let offline = through(&w, &tape, "app", 5 * 3600, &check);
    offline.not_licensed();
    w.polar.set_fault(None);
}

/// Issue #62, the genuine case through the real relay: Polar says "expired"; `relay serve`
/// signs that denial for the request's nonce, so a build released before the end falls back
/// in signed mode (online); a relay that did not sign it would leave `fallback_refused` set.
#[test]
fn a_relay_signed_expiry_falls_back_in_signed_mode() {
    let w = world("7");
    let now = polar_license_testkit::unix_now();
    w.expire_at(now + DAY);
    let released = polar_license_testkit::rfc3339(now - DAY);
    let check = ["check", "--key", DEMO_KEY, "--released", &released[..10]];
    let activate = ["activate", "--key", DEMO_KEY, "--label", "laptop"];
    let a = run(w.cli_app("app", 0, true).args(activate), None);
    assert_eq!(a.code, 0, "{}", a.v);
    let ended = run(w.cli_app("app", 2 * DAY, true).args(check), None);
    assert_eq!(ended.code, 0, "{}", ended.v);
    ended.has("outcome", "licensed");
    assert_eq!(ended.v["fallback"].as_bool(), Some(true), "{}", ended.v);
    assert_eq!(ended.v["fallback_refused"], Value::Null, "{}", ended.v);
}
