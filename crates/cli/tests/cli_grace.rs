//! The offline grace cache through the `polar-license` binary, against the embedded emulator
//! and its faults (down, 429, 500, slow): `activate` remembers, `check` answers from the cache
//! as the policy says, `deactivate` forgets, `status` reads the cache with no request.
//!
//! Time moves with the hidden `POLAR_LICENSE_CLOCK_OFFSET` hook (seconds added to the clock),
//! never with sleeps. Every test has its own cache directory.

use polar_license_emulator::{Fault, KeyUpdate, DEMO_KEY};
use polar_license_testkit::{expect_answer_keys, json_answer, Launch, World};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
const SHOWN: &str = "****-4C5B6A";
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const GRACE: i64 = 7 * DAY;

/// This suite's world: the testkit's.
fn world() -> World {
    World::new("cli-grace")
}

/// One run of the binary, `--json` parsed.
#[derive(Debug)]
struct Answer {
    code: i32,
    v: Value,
}

/// This suite's commands on the testkit's world.
trait Here {
    fn command(&self, offset: i64, args: &[&str]) -> Command;
    fn at(&self, offset: i64, args: &[&str]) -> Answer;
    fn check(&self, offset: i64, extra: &[&str]) -> Answer;
    fn status(&self, offset: i64) -> Answer;
    fn activated_and_verified(&self) -> String;
}

impl Here for World {
    /// The command, with the clock moved by `offset` seconds (the emulator's too, so that its
    /// `Date` agrees with the client's clock).
    fn command(&self, offset: i64, args: &[&str]) -> Command {
        let mut cmd = self.cli(BIN, &self.dir, offset);
        cmd.args(args);
        cmd
    }

    /// `polar-license --json ARGS…` at clock offset `offset`.
    fn at(&self, offset: i64, args: &[&str]) -> Answer {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        parse(&self.command(offset, &all).launch())
    }

    /// `check --key DEMO_KEY` at clock offset `offset`, with extra global options.
    fn check(&self, offset: i64, extra: &[&str]) -> Answer {
        let mut args = extra.to_vec();
        args.extend_from_slice(&["check", "--key", DEMO_KEY]);
        self.at(offset, &args)
    }

    fn status(&self, offset: i64) -> Answer {
        self.at(offset, &["status", "--key", DEMO_KEY])
    }

    /// Activates (remembered) at offset 0: the activation is the verdict, so a check right
    /// after it answers from the cache; returns the activation id.
    fn activated_and_verified(&self) -> String {
        let a = self.at(0, &["activate", "--key", DEMO_KEY, "--label", "laptop"]);
        assert_eq!((a.code, a.str("outcome")), (0, Some("done")), "{a:?}");
        assert_eq!(a.v["remembered"], true, "{a:?}");
        let id = a.str("activation_id").expect("activation id").to_string();
        let c = self.check(0, &[]);
        cached(&c, GRACE);
        assert_eq!(c.str("activation_id"), Some(id.as_str()), "{c:?}");
        assert_eq!(c.v["activation"]["id"], id.as_str(), "{c:?}");
        assert_eq!(self.requests(), 1, "the activate only");
        id
    }
}

impl Answer {
    fn str(&self, field: &str) -> Option<&str> {
        self.v[field].as_str()
    }

    fn grace(&self) -> Option<i64> {
        self.v["grace_remaining_seconds"].as_i64()
    }
}

fn parse(out: &Output) -> Answer {
    let (code, v) = json_answer(out);
    expect_answer_keys(&v);
    Answer { code, v }
}

/// Licensed by a fresh online answer.
#[track_caller]
fn online(a: &Answer) {
    assert_eq!(
        (a.code, a.str("outcome"), a.str("source"), a.grace()),
        (0, Some("licensed"), Some("online"), None),
        "{a:?}"
    );
    assert!(a.v["reason"].is_null(), "{a:?}");
    assert!(a.str("verified_at").is_some(), "{a:?}");
    assert_eq!(a.v["license"]["key"], DEMO_KEY, "{a:?}");
    // The core's words for a licensed device (issue #80), as every face says them.
    assert_eq!(
        a.str("user_message"),
        Some(polar_license::message::LICENSED),
        "{a:?}"
    );
}

/// Licensed from the cache with `grace` seconds left (±2 s).
#[track_caller]
fn cached(a: &Answer, grace: i64) {
    assert_eq!(
        (a.code, a.str("outcome"), a.str("source")),
        (0, Some("licensed"), Some("cache")),
        "{a:?}"
    );
    let left = a.grace().expect("grace_remaining_seconds");
    assert!(
        (left - grace).abs() <= 2,
        "grace {left}, wanted {grace}: {a:?}"
    );
    assert_eq!(a.v["license"]["key"], DEMO_KEY, "{a:?}");
    // Polar could not be reached (a reason is given): how long the device stays licensed,
    // in the core's words; a fresh cache answer (Polar not asked) is simply licensed.
    let said = a.str("user_message").expect("user_message");
    if a.str("reason").is_some() {
        assert!(
            said.starts_with("Polar could not be reached, so this device stays licensed for "),
            "{a:?}"
        );
    } else {
        assert_eq!(said, polar_license::message::LICENSED, "{a:?}");
    }
}

/// Not licensed: exit code, outcome and reason; no source, no grace.
#[track_caller]
fn refused(a: &Answer, code: i32, outcome: &str, reason: &str) {
    assert_eq!(
        (a.code, a.str("outcome"), a.str("reason")),
        (code, Some(outcome), Some(reason)),
        "{a:?}"
    );
    assert!(a.grace().is_none(), "{a:?}");
    if outcome != "denied" {
        assert!(a.v["source"].is_null(), "{a:?}");
    }
}

/// No activation to use: `invalid_input` on `activation_id` (exit 2), refused before any
/// request.
#[track_caller]
fn no_activation(w: &World, a: &Answer) {
    refused(a, 2, "error", "invalid_input");
    assert_eq!(a.v["field"], "activation_id", "{a:?}");
    assert_eq!(w.requests(), 0, "refused before any request");
}

#[test]
fn a_fresh_cache_sends_no_request() {
    let w = world();
    let id = w.activated_and_verified();
    for offset in [0, 60, HOUR - 60] {
        let c = w.check(offset, &[]);
        cached(&c, GRACE - offset);
        assert_eq!(c.str("activation_id"), Some(id.as_str()), "{c:?}");
        assert_eq!(w.requests(), 0, "at +{offset} s");
    }
    // The human line (the clock kept where the last check saw it: every cached answer
    // records the time it was given, so an hour back would be a rollback).
    let out = w.command(HOUR - 60, &["check", "--key", DEMO_KEY]).launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text.starts_with(&format!("licensed {SHOWN} (from cache, grace 6d 23h left)")),
        "{text}"
    );
    assert!(!text.contains(DEMO_KEY), "{text}");
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_stale_cache_with_polar_up_revalidates() {
    let w = world();
    w.activated_and_verified();
    online(&w.check(HOUR + 1, &[]));
    assert_eq!(w.requests(), 1);
    // Re-anchored: fresh again for an hour from there.
    cached(&w.check(HOUR + 11, &[]), GRACE - 10);
    assert_eq!(w.requests(), 0);
    // --revalidate-after 0 and its variable: always ask.
    online(&w.check(HOUR + 12, &["--revalidate-after", "0"]));
    assert_eq!(w.requests(), 1);
    let mut cmd = w.command(HOUR + 13, &["--json", "check", "--key", DEMO_KEY]);
    online(&parse(&cmd.env("POLAR_REVALIDATE_AFTER", "0").launch()));
    assert_eq!(w.requests(), 1);
}

#[test]
fn polar_down_licenses_within_the_grace_then_expires() {
    let mut w = world();
    w.activated_and_verified();
    w.down();
    cached(&w.check(2 * HOUR, &[]), GRACE - 2 * HOUR);
    cached(&w.check(3 * DAY, &[]), GRACE - 3 * DAY);
    // A shorter grace period, from the flag or the variable: over.
    refused(
        &w.check(3 * DAY + 1, &["--grace-period", "86400"]),
        3,
        "unverified",
        "grace_expired",
    );
    let mut cmd = w.command(3 * DAY + 2, &["--json", "check", "--key", DEMO_KEY]);
    let a = parse(&cmd.env("POLAR_GRACE_PERIOD", "86400").launch());
    refused(&a, 3, "unverified", "grace_expired");
    // status reads the cache with no network: the grace left.
    let s = w.status(6 * DAY);
    assert_eq!((s.code, s.str("outcome")), (0, Some("done")), "{s:?}");
    assert!((s.grace().expect("grace") - DAY).abs() <= 2, "{s:?}");
    assert_eq!(s.v["cache"]["state"], "present", "{s:?}");
    cached(&w.check(GRACE - 60, &[]), 60);
    let a = w.check(GRACE + HOUR, &[]);
    refused(&a, 3, "unverified", "grace_expired");
    assert!(
        a.str("detail")
            .is_some_and(|d| d.contains("past the grace period")),
        "{a:?}"
    );
}

#[test]
fn server_errors_and_slow_servers_fall_back_within_the_grace() {
    let w = world();
    w.activated_and_verified();
    w.fault(Some(Fault::Status {
        status: 500,
        body: "Internal Server Error".into(),
    }));
    cached(&w.check(2 * HOUR, &[]), GRACE - 2 * HOUR);
    assert_eq!(w.requests(), 1);
    w.fault(Some(Fault::Delay { ms: 3000 }));
    cached(&w.check(3 * HOUR, &["--timeout", "0.5"]), GRACE - 3 * HOUR);
    w.fault(Some(Fault::Hang));
    cached(&w.check(4 * HOUR, &["--timeout", "0.5"]), GRACE - 4 * HOUR);
    assert_eq!(w.requests(), 2);
    // Past the grace, the same faults are grace_expired.
    refused(
        &w.check(GRACE + HOUR, &["--timeout", "0.5"]),
        3,
        "unverified",
        "grace_expired",
    );
    w.fault(Some(Fault::Status {
        status: 503,
        body: "Service Unavailable".into(),
    }));
    refused(
        &w.check(GRACE + 2 * HOUR, &[]),
        3,
        "unverified",
        "grace_expired",
    );
    // Polar back: licensed online again, the grace restarts.
    w.fault(None);
    online(&w.check(GRACE + 3 * HOUR, &[]));
    cached(&w.check(GRACE + 3 * HOUR + 5, &[]), GRACE - 5);
}

#[test]
fn rate_limited_answers_from_the_cache_and_waits_for_the_block() {
    let w = world();
    w.activated_and_verified();
    w.fault(Some(Fault::RateLimited {
        retry_after: Some(60),
    }));
    let t = 2 * HOUR;
    cached(&w.check(t, &[]), GRACE - t);
    assert_eq!(w.requests(), 1);
    // During the block: no request at all.
    for dt in [1, 20, 50] {
        cached(&w.check(t + dt, &[]), GRACE - t - dt);
    }
    assert_eq!(w.requests(), 0, "no request before the block ends");
    let s = w.status(t + 30);
    assert!(s.v["cache"]["blocked_until"].is_string(), "{s:?}");
    // After it: ask again.
    w.fault(None);
    online(&w.check(t + 61, &[]));
    assert_eq!(w.requests(), 1);
    let s = w.status(t + 62);
    assert!(s.v["cache"]["blocked_until"].is_null(), "{s:?}");
}

#[test]
fn rate_limited_with_no_cache_sends_nothing_until_the_block_ends() {
    let w = world();
    w.fault(Some(Fault::RateLimited {
        retry_after: Some(60),
    }));
    refused(&w.check(0, &[]), 3, "unverified", "rate_limited");
    refused(&w.check(30, &[]), 3, "unverified", "rate_limited");
    assert_eq!(w.requests(), 1);
    w.fault(None);
    online(&w.check(61, &[]));
    assert_eq!(w.requests(), 1);
}

#[test]
fn a_revocation_is_never_overridden_by_the_cache() {
    let w = world();
    w.activated_and_verified();
    assert!(w.polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    // Still fresh: the cache answers (no request) until it is stale.
    cached(&w.check(60, &[]), GRACE - 60);
    let a = w.check(2 * HOUR, &[]);
    refused(&a, 1, "denied", "inactive");
    assert_eq!(a.str("source"), Some("online"), "{a:?}");
    assert_eq!(
        a.str("detail"),
        Some("License key is no longer active."),
        "{a:?}"
    );
    let s = w.status(2 * HOUR + 1);
    assert_eq!(s.v["cache"]["denied"]["reason"], "inactive", "{s:?}");
    assert!(s.grace().is_none(), "{s:?}");
    // Polar unreachable now: still not licensed.
    w.fault(Some(Fault::CloseImmediately));
    refused(&w.check(2 * HOUR + 10, &[]), 3, "unverified", "offline");
    refused(&w.check(2 * HOUR + 20, &[]), 3, "unverified", "offline");
}

#[test]
fn a_clock_set_back_is_clock_rollback() {
    let w = world();
    w.activated_and_verified();
    online(&w.check(DAY, &[]));
    w.fault(Some(Fault::CloseImmediately));
    // Within the tolerance (10 min): fine.
    cached(&w.check(DAY - 300, &[]), GRACE);
    // Beyond it: never licensed from the cache.
    let a = w.check(DAY - 2 * HOUR, &[]);
    refused(&a, 3, "unverified", "clock_rollback");
    let s = w.status(DAY - 2 * HOUR);
    assert!(
        (s.v["cache"]["clock_rollback_seconds"]
            .as_i64()
            .expect("rollback")
            - 2 * HOUR)
            .abs()
            <= 2,
        "{s:?}"
    );
    // A looser tolerance accepts it.
    cached(
        &w.check(DAY - 2 * HOUR, &["--clock-tolerance", "10800"]),
        GRACE,
    );
    // Polar reachable: the online answer re-anchors the clock.
    w.fault(None);
    online(&w.check(DAY - 2 * HOUR, &[]));
    w.fault(Some(Fault::CloseImmediately));
    cached(&w.check(DAY - 2 * HOUR + 10, &[]), GRACE - 10);
}

#[test]
fn a_tampered_cache_is_untrusted() {
    let w = world();
    let id = w.activated_and_verified();
    let record = std::fs::read_dir(&w.dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "cache")
                && !p.to_string_lossy().ends_with("-seq.cache")
                && !p.to_string_lossy().ends_with("-clock.cache")
        })
        .expect("a .cache record");
    let mut bytes = std::fs::read(&record).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&record, &bytes).expect("write");

    let s = w.status(0);
    assert_eq!((s.code, s.str("outcome")), (0, Some("done")), "{s:?}");
    assert!(s.v["reason"].is_null(), "{s:?}");
    assert_eq!(s.v["cache"]["state"], "untrusted", "{s:?}");
    let kind = s.v["cache"]["untrusted"].as_str().unwrap_or_default();
    assert!(["bad_mac", "malformed"].contains(&kind), "{s:?}");
    // A one-byte edit may hit the activation itself; when it does not, the untrusted record
    // still names it (no secret: the next check validates it online).
    let named = s.v["activation_id"].as_str();
    assert!(named.is_none() || named == Some(id.as_str()), "{s:?}");
    let out = w.command(0, &["status", "--key", DEMO_KEY]).launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("present but not trusted: treated as no cache"),
        "{text}"
    );

    // Unreachable: nothing to fall back on.
    w.fault(Some(Fault::CloseImmediately));
    refused(&w.check(0, &[]), 3, "unverified", "offline");
    // Reachable: re-validated online.
    w.fault(None);
    w.requests();
    online(&w.check(0, &[]));
    assert_eq!(w.requests(), 1);
    assert_eq!(w.status(0).v["cache"]["state"], "present");
}

/// An explicit `--activation-id` needs no cache: when the cache cannot be opened (its
/// directory is a file here) or the key's record cannot be read, the deactivate machine sends
/// it online only (done, the slot freed on Polar, `forgotten` false: the cache was not told).
/// Without an id nothing is sent.
#[test]
fn deactivate_of_an_explicit_id_goes_online_only_when_the_cache_cannot_be_read() {
    let w = world();
    let id = w.activated_and_verified();
    let blocked = w.dir.join("not-a-directory");
    std::fs::write(&blocked, b"a file").expect("write the file");
    let deactivate = |extra: &[&str]| {
        let mut cmd = w.cli(BIN, &blocked, 0);
        cmd.args(["--json", "deactivate", "--key", DEMO_KEY])
            .args(extra);
        parse(&cmd.launch())
    };
    let d = deactivate(&[]);
    assert_eq!(d.str("reason"), Some("cache_error"), "{d:?}");
    assert_eq!(w.requests(), 0, "no id, no cache: nothing sent");
    let d = deactivate(&["--activation-id", &id]);
    assert_eq!((d.code, d.str("outcome")), (0, Some("done")), "{d:?}");
    assert_eq!(d.v["forgotten"], false, "{d:?}");
    assert_eq!(d.str("activation_id"), Some(id.as_str()), "{d:?}");
    assert_eq!(w.requests(), 1);
    assert!(w.polar.activations(DEMO_KEY).is_empty());

    // A slot whose record cannot be read (a symbolic link to itself in its place): the same.
    #[cfg(unix)]
    {
        let a = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "again"]);
        let id = a
            .str("activation_id")
            .expect("an activation id")
            .to_string();
        let record = std::fs::read_dir(&w.dir)
            .expect("the cache directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let entry = name.ends_with("-seq.cache") || name.ends_with("-clock.cache");
                name.ends_with(".cache") && !entry
            })
            .expect("the record's file");
        std::fs::remove_file(&record).expect("remove the record");
        std::os::unix::fs::symlink(&record, &record).expect("a link to itself in its place");
        w.requests();
        let d = w.at(0, &["deactivate", "--key", DEMO_KEY]);
        assert_eq!(d.str("reason"), Some("cache_error"), "{d:?}");
        assert_eq!(w.requests(), 0, "no id, no record: nothing sent");
        let d = w.at(
            0,
            &["deactivate", "--key", DEMO_KEY, "--activation-id", &id],
        );
        assert_eq!((d.code, d.str("outcome")), (0, Some("done")), "{d:?}");
        assert_eq!(d.v["forgotten"], false, "{d:?}");
        assert_eq!(w.requests(), 1);
        assert!(w.polar.activations(DEMO_KEY).is_empty());
    }
}

#[test]
fn deactivate_uses_and_forgets_the_remembered_activation() {
    let w = world();
    let id = w.activated_and_verified();
    let s = w.status(0);
    assert_eq!(s.str("activation_id"), Some(id.as_str()), "{s:?}");
    assert_eq!(s.v["cache"]["activation"]["label"], "laptop", "{s:?}");

    let d = w.at(0, &["deactivate", "--key", DEMO_KEY]);
    assert_eq!((d.code, d.str("outcome")), (0, Some("done")), "{d:?}");
    assert_eq!(d.str("activation_id"), Some(id.as_str()), "{d:?}");
    assert_eq!(d.v["forgotten"], true, "{d:?}");
    assert_eq!(w.requests(), 1);
    assert!(w.polar.activations(DEMO_KEY).is_empty());
    let s = w.status(0);
    assert!(
        s.v["activation_id"].is_null() && s.v["cache"]["activation"].is_null(),
        "{s:?}"
    );
    // Nothing remembered any more: invalid input, no request.
    let again = w.at(0, &["deactivate", "--key", DEMO_KEY]);
    no_activation(&w, &again);
}

#[test]
fn activating_again_names_the_activation_it_replaced() {
    let w = world();
    let first = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "a"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.v["replaced_activation_id"].is_null(), "{first:?}");
    let old = first.str("activation_id").expect("id").to_string();
    let second = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "b"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.str("replaced_activation_id"), Some(old.as_str()));
    // Polar keeps both: the replaced one still takes a slot until it is deactivated.
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 2);
    let human = w
        .command(0, &["activate", "--key", DEMO_KEY, "--label", "c"])
        .launch();
    let text = String::from_utf8_lossy(&human.stdout);
    let newest = second.str("activation_id").expect("id");
    assert!(
        text.contains(&format!("replaced activation {newest}"))
            && text.contains(&format!("deactivate --activation-id {newest}")),
        "{text}"
    );
}

/// The library's activate of the demo key with `label` over `w`'s cache, as the command runs
/// it (the OS's machine binding).
fn library_activate(w: &World, label: &str) -> polar_license::flow::update::Activated {
    let licensing = w
        .licensing_builder(polar_license::MachineBinding::Os)
        .build()
        .expect("the library");
    licensing.activate_update(&polar_license::ActivateRequest::new(DEMO_KEY, label))
}

/// The activate machine, not the command, reads the cache before it sends (issue #63, item 5):
/// with a stale record (past its grace, its activation freed on Polar meanwhile) `activate`
/// makes one request, no validate before it, and names the activation the record remembered;
/// the library's `activate_update` over the same cache answers the same way (the CLI's answer
/// is the machine's).
#[test]
fn activate_over_a_stale_cache_names_what_it_replaced_as_the_library_does() {
    let w = world();
    let first = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "a"]);
    assert_eq!(first.code, 0, "{first:?}");
    let old = first.str("activation_id").expect("id").to_string();
    // Freed on Polar from elsewhere: the record here still names it.
    let elsewhere = w.dir.join("elsewhere");
    let mut cmd = w.cli(BIN, &elsewhere, 0);
    cmd.args([
        "--json",
        "deactivate",
        "--key",
        DEMO_KEY,
        "--activation-id",
        &old,
    ]);
    assert_eq!(parse(&cmd.launch()).code, 0);
    w.requests();
    let later = GRACE + 3 * DAY;
    let second = w.at(later, &["activate", "--key", DEMO_KEY, "--label", "b"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.str("replaced_activation_id"), Some(old.as_str()));
    assert_eq!(
        w.requests(),
        1,
        "the activation alone: no validate before it"
    );
    let new = second.str("activation_id").expect("id").to_string();
    assert_eq!(w.status(later).str("activation_id"), Some(new.as_str()));

    // The library over the same cache: the same order of steps, the same answer.
    let activated = library_activate(&w, "c");
    assert!(
        activated.cache_error.is_none(),
        "{:?}",
        activated.cache_error
    );
    assert!(activated.online.is_ok(), "{:?}", activated.online);
    assert_eq!(
        activated.replaced_activation_id.as_deref(),
        Some(new.as_str())
    );
    assert_eq!(w.requests(), 1, "one activation");
}

/// A cache whose record cannot be read (a link to itself in its place): `activate` takes no
/// slot on Polar and says why, as the library's `activate_update` does: the machine reads the
/// slot before it sends.
#[cfg(unix)]
#[test]
fn activate_with_an_unreadable_record_takes_no_slot_as_the_library_does() {
    let w = world();
    let first = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "a"]);
    assert_eq!(first.code, 0, "{first:?}");
    let record = w.record_file();
    std::fs::remove_file(&record).expect("remove the record");
    std::os::unix::fs::symlink(&record, &record).expect("a link to itself in its place");
    w.requests();
    let a = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "b"]);
    assert_eq!(a.str("reason"), Some("cache_error"), "{a:?}");
    assert!(a.v["replaced_activation_id"].is_null(), "{a:?}");
    assert_eq!(w.requests(), 0, "nothing sent");
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1);

    let activated = library_activate(&w, "c");
    assert_eq!(
        activated.online.as_ref().err().map(|e| e.reason().code()),
        Some("cache_error"),
        "{:?}",
        activated.online
    );
    assert_eq!(w.requests(), 0, "nothing sent");
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1);
}

#[test]
fn require_activation_refuses_a_key_not_activated_here() {
    let w = world();
    // Polar validates the bare key, so without the option a machine that never activated is
    // licensed.
    online(&w.check(0, &[]));
    assert_eq!(w.requests(), 1);
    let required = w.check(0, &["--require-activation"]);
    no_activation(&w, &required);

    let id = w.activated_and_verified();
    let c = w.check(0, &["--require-activation"]);
    assert_eq!((c.code, c.str("outcome")), (0, Some("licensed")), "{c:?}");
    assert_eq!(c.str("activation_id"), Some(id.as_str()), "{c:?}");

    // Deactivated: refused again, and the environment variable turns it on too.
    let d = w.at(0, &["deactivate", "--key", DEMO_KEY]);
    assert_eq!(d.code, 0, "{d:?}");
    w.requests();
    let out = w
        .command(0, &["--json", "check", "--key", DEMO_KEY])
        .env("POLAR_LICENSE_REQUIRE_ACTIVATION", "1")
        .launch();
    let again = parse(&out);
    no_activation(&w, &again);
}

#[test]
fn machine_binding_is_on_by_default_and_can_be_turned_off() {
    let w = world();
    let bound = w.at(0, &["activate", "--key", DEMO_KEY, "--label", "a"]);
    let unbound = w.at(
        0,
        &[
            "--no-machine-binding",
            "activate",
            "--key",
            DEMO_KEY,
            "--label",
            "b",
        ],
    );
    assert_eq!((bound.code, unbound.code), (0, 0), "{bound:?} {unbound:?}");
    assert_eq!(unbound.v["machine_bound"], false, "{unbound:?}");
    let conditions = |id: Option<&str>| {
        w.polar
            .activations(DEMO_KEY)
            .into_iter()
            .find(|a| a["id"].as_str() == id)
            .map(|a| a["conditions"].clone())
            .expect("activation")
    };
    assert!(conditions(unbound.str("activation_id"))
        .get("machine_fingerprint")
        .is_none());
    // Bound when the OS has a machine id.
    let has_fp = conditions(bound.str("activation_id"))
        .get("machine_fingerprint")
        .is_some();
    assert_eq!(bound.v["machine_bound"], has_fp, "{bound:?}");
    // The unbound activation is remembered and checked as it was made (the activation is the
    // verdict: from the cache).
    let c = w.check(0, &["--no-machine-binding"]);
    cached(&c, GRACE);
    assert_eq!(
        c.str("activation_id"),
        unbound.str("activation_id"),
        "{c:?}"
    );
}

#[test]
fn concurrent_checks_send_one_request() {
    let w = world();
    w.activated_and_verified();
    // Stale for everyone: the first to take the lock asks, the others find the fresh record.
    let children: Vec<_> = (0..4)
        .map(|_| {
            w.command(2 * HOUR, &["--json", "check", "--key", DEMO_KEY])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .start()
        })
        .collect();
    let answers: Vec<Answer> = children
        .into_iter()
        .map(|c| parse(&c.wait_with_output().expect("waits")))
        .collect();
    assert!(
        answers
            .iter()
            .all(|a| a.code == 0 && a.str("outcome") == Some("licensed")),
        "{answers:?}"
    );
    let online_answers = answers
        .iter()
        .filter(|a| a.str("source") == Some("online"))
        .count();
    assert_eq!(online_answers, 1, "{answers:?}");
    assert_eq!(w.requests(), 1);
}

#[test]
fn options_are_checked_and_status_needs_no_network() {
    let mut w = world();
    let invalid = |a: &Answer, field: &str| {
        refused(a, 2, "error", "invalid_input");
        assert_eq!(a.v["field"], field, "{a:?}");
    };
    invalid(&w.check(0, &["--grace-period", "0"]), "grace_period");
    invalid(
        &w.check(0, &["--revalidate-after", "700000"]),
        "revalidate_after",
    );
    invalid(
        &w.check(0, &["--clock-tolerance", "700000"]),
        "clock_tolerance",
    );
    invalid(&w.check(0, &["--grace-period=-5"]), "grace_period");
    // `-5` alone reads as an unknown flag: a usage error that names no field.
    let a = w.check(0, &["--grace-period", "-5"]);
    refused(&a, 2, "error", "invalid_input");
    assert!(a.v["field"].is_null(), "{a:?}");
    let mut cmd = w.command(0, &["--json", "check", "--key", DEMO_KEY]);
    invalid(
        &parse(&cmd.env("POLAR_LICENSE_CLOCK_OFFSET", "soon").launch()),
        "clock_offset",
    );
    // The hidden clock hooks: an offset or a held clock, not both.
    let mut cmd = w.command(0, &["--json", "check", "--key", DEMO_KEY]);
    invalid(
        &parse(&cmd.env("POLAR_LICENSE_CLOCK_AT", "1790000000").launch()),
        "clock_offset",
    );
    invalid(&w.at(0, &["check", "--key", ""]), "key");
    assert_eq!(w.requests(), 0);

    // status without a key: the directory, no org needed.
    let s = w.at(0, &["status"]);
    assert_eq!(
        (s.code, s.v["cache"]["records"].as_i64()),
        (0, Some(0)),
        "{s:?}"
    );
    w.activated_and_verified();
    // A different app secret cannot read the record.
    let other = w.at(0, &["--app-secret", "other", "status", "--key", DEMO_KEY]);
    assert_eq!(other.v["cache"]["state"], "untrusted", "{other:?}");
    w.down();
    let mut cmd = w.command(0, &["--json", "status"]);
    let s = parse(&cmd.env_remove("POLAR_ORGANIZATION_ID").launch());
    assert_eq!(
        (s.code, s.v["cache"]["records"].as_i64()),
        (0, Some(1)),
        "{s:?}"
    );
    assert!(
        s.str("detail").is_some_and(|d| d.contains("--key")),
        "{s:?}"
    );
    let s = w.status(0);
    assert_eq!(
        (s.code, s.v["cache"]["state"].as_str()),
        (0, Some("present")),
        "{s:?}"
    );
    assert!(s.v["cache"]["verified_at"].is_string(), "{s:?}");
}

#[test]
fn validate_stays_online_only() {
    let mut w = world();
    w.activated_and_verified();
    w.down();
    let a = w.at(0, &["validate", "--key", DEMO_KEY]);
    assert_eq!(
        (a.code, a.str("reason"), a.str("source")),
        (3, Some("offline"), Some("online")),
        "{a:?}"
    );
    cached(&w.check(0, &[]), GRACE);
}

#[test]
fn the_cache_dir_is_only_used_where_told() {
    let w = world();
    let elsewhere: &Path = &w.dir.join("nested");
    let a = w.at(
        0,
        &[
            "--cache-dir",
            elsewhere.to_str().expect("utf-8"),
            "activate",
            "--key",
            DEMO_KEY,
            "--label",
            "x",
        ],
    );
    assert_eq!(a.code, 0, "{a:?}");
    let records = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cache"))
                    .count()
            })
            .unwrap_or(0)
    };
    // The record and its ledger.
    assert_eq!((records(elsewhere), records(&w.dir)), (2, 0));
}
