//! Out of activations from the command line (issue #64): `sign-in` with the emailed code,
//! `devices` (this machine marked), `free ID`, then `activate` here; and each failure's words
//! and exit code: device management off, an expired session, a used code, the code rate
//! limit. Real processes, real cache directories, the emulator on loopback (the code read
//! from its control state, as a person reads it from the email).

use polar_license_emulator::{
    Emulator, Options, Seed, SeedBenefit, DEMO_BENEFIT_ID, DEMO_KEY, DEMO_KEY_EXPIRED,
    DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_REVOKED, DEMO_KEY_USAGE,
};
#[cfg(unix)]
use polar_license_testkit::on_terminal;
use polar_license_testkit::{relay_in_front_of, Launch, ScratchDir};
use serde_json::Value;
use std::path::Path;

mod common;
use common::{answered, cli, cli_at, run, BIN};

const EMAIL: &str = "jane.doe@gmail.com";

fn last_code(polar: &Emulator) -> String {
    polar
        .customer_session_codes()
        .last()
        .and_then(|c| c["code"].as_str().map(str::to_string))
        .expect("a code")
}

/// Signs in as a script does: ask for the code, then pass it (typed in lower case). Returns
/// the code.
fn sign_in(polar: &Emulator, dir: &Path) -> String {
    let asked = cli(polar, dir, &["sign-in", "--email", EMAIL]);
    assert_eq!(asked.0, 0, "{}", asked.2);
    assert_eq!(
        (&asked.1["code_sent"], &asked.1["signed_in"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{}",
        asked.1
    );
    let code = last_code(polar).to_ascii_lowercase();
    let done = cli(polar, dir, &["sign-in", "--code", &code]);
    assert_eq!(done.0, 0, "{}", done.2);
    assert_eq!(done.1["signed_in"], true, "{}", done.1);
    assert!(done.1["session_expires_at"].is_string(), "{}", done.1);
    // The session is a credential: never printed, never in plain text beside the cache.
    assert!(!done.2.contains("polar_cst_"), "{}", done.2);
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("polar_cst_"),
            "a session in plain text in the cache directory"
        );
    }
    code
}

/// `command` without a session: `not_signed_in` (exit 2), and no request sent.
fn not_signed_in(polar: &Emulator, dir: &Path, command: &str) {
    let before = polar.request_count();
    let none = cli(polar, dir, &[command]);
    assert_eq!(
        (none.0, none.1["portal_error"].as_str()),
        (2, Some("not_signed_in")),
        "{command}: {}",
        none.1
    );
    assert_eq!(polar.request_count(), before, "{command}");
}

/// The labels of the stand-ins for other machines in these tests.
const ELSEWHERE: [&str; 3] = ["Old laptop", "Desktop", "New laptop"];

/// Activates the demo key in `dir` as the machine `label`. Every "machine" of these tests runs
/// on this one OS, so the stand-ins for other machines ([`ELSEWHERE`]) are unbound
/// (`--no-machine-binding`), as docs/guides/first-run.md's limit example: bound, each would
/// carry this machine's fingerprint in its meta and be listed as this machine (and a stand-in
/// at the limit would adopt one of them: issue #80's self-healing).
fn activate(polar: &Emulator, dir: &Path, label: &str) -> (i32, Value, String) {
    let args = ["activate", "--key", DEMO_KEY, "--label", label];
    if !ELSEWHERE.contains(&label) {
        cli(polar, dir, &args)
    } else {
        let mut unbound = vec!["--no-machine-binding"];
        unbound.extend(args);
        cli(polar, dir, &unbound)
    }
}

/// Runs `args` without `--json`: asserts the exit `code` and that what it printed says each
/// of `words` (showing it when not); returns it.
#[track_caller]
fn says(polar: &Emulator, dir: &Path, args: &[&str], code: i32, words: &[&str]) -> String {
    let (got, _, text) = run(polar, dir, false, args);
    assert_eq!(got, code, "{text}");
    for word in words {
        assert!(text.contains(word), "{word:?} not said: {text}");
    }
    text
}

/// A `--json` answer's `next_step` (empty when it has none).
fn next_step(got: &(i32, Value, String)) -> &str {
    got.1["next_step"].as_str().unwrap_or_default()
}

/// The labels of a `devices --json` answer's devices, in its order.
pub fn labels(listed: &Value) -> Vec<&str> {
    listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect()
}

#[test]
fn sign_in_list_free_another_and_activate_here_at_the_limit() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let (old, desk, here) = (
        ScratchDir::new("cli-devices-old"),
        ScratchDir::new("cli-devices-desk"),
        ScratchDir::new("cli-devices-here"),
    );
    // The key (limit 3) is on three machines, this one among them.
    let gone = activate(&polar, &old, "Old laptop");
    assert_eq!(gone.0, 0, "{}", gone.2);
    let gone_id = gone.1["activation_id"].as_str().unwrap().to_string();
    assert_eq!(activate(&polar, &desk, "Desktop").0, 0);
    let mine = activate(&polar, &here, "This laptop");
    assert_eq!(mine.0, 0, "{}", mine.2);
    let mine_id = mine.1["activation_id"].as_str().unwrap().to_string();
    // A fourth machine is refused: the limit.
    let new = ScratchDir::new("cli-devices-new");
    let refused = activate(&polar, &new, "New laptop");
    answered(&refused, 1, "reason", "activation_limit");

    // The refusal's text says how to free a seat from here.
    says(
        &polar,
        &new,
        &["activate", "--key", DEMO_KEY, "--label", "x"],
        1,
        &[
            "or from here: Sign in (polar-license sign-in --email EMAIL)",
            "polar-license free ID",
        ],
    );
    // Before signing in, `devices` says to sign in, with no request.
    let before = polar.request_count();
    let none = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(none.0, 2, "{}", none.1);
    assert_eq!(none.1["portal_error"], "not_signed_in", "{}", none.1);
    assert!(none.2.contains("sign-in --email"), "{}", none.2);
    assert!(
        none.2
            .contains("or list the devices through the seller's relay (--relay URL)"),
        "{}",
        none.2
    );
    assert_eq!(polar.request_count(), before);

    let _ = sign_in(&polar, &here);
    let listed = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(listed.0, 0, "{}", listed.2);
    let devices = listed.1["devices"].as_array().unwrap();
    let rows: Vec<(&str, &str, bool)> = devices
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap(),
                d["label"].as_str().unwrap(),
                d["this_machine"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{}", listed.1);
    assert_eq!(rows[0], (gone_id.as_str(), "Old laptop", false));
    assert_eq!(rows[1].1, "Desktop");
    assert_eq!(rows[2], (mine_id.as_str(), "This laptop", true));
    assert!(devices.iter().all(|d| d["activated_at"].is_string()));
    assert_eq!(listed.1["activation_id"], mine_id.as_str());
    assert_eq!(listed.1["limit_activations"], 3);
    // The key is redacted everywhere it is printed.
    assert!(!listed.2.contains(DEMO_KEY), "{}", listed.2);
    assert!(listed.1["key"].as_str().unwrap().starts_with("****-"));

    // The text marks this machine.
    let text = says(
        &polar,
        &here,
        &["devices", "--key", DEMO_KEY],
        0,
        &["3 of 3 activations in use"],
    );
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(this machine)"))
        .collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].contains(&mine_id) && marked[0].contains("This laptop"));

    // Free the dead laptop from this machine (the public deactivate: the session is not used).
    let freed = cli(&polar, &here, &["free", &gone_id, "--key", DEMO_KEY]);
    assert_eq!(freed.0, 0, "{}", freed.2);
    assert_eq!(
        (freed.1["command"].as_str(), &freed.1["this_machine"]),
        (Some("free"), &Value::Bool(false)),
        "{}",
        freed.1
    );
    assert!(!freed.2.contains(DEMO_KEY), "{}", freed.2);
    // Freed twice: Polar no longer knows it.
    let again = cli(&polar, &new, &["free", &gone_id, "--key", DEMO_KEY]);
    answered(&again, 1, "reason", "not_found");
    assert!(
        again.1["user_message"]
            .as_str()
            .is_some_and(|s| s.contains("already freed")),
        "{}",
        again.1
    );
    assert!(
        next_step(&again).contains("(polar-license devices)"),
        "{}",
        again.1
    );

    // Now the new machine activates at what was the limit.
    let now = activate(&polar, &new, "New laptop");
    assert_eq!(now.0, 0, "{}", now.2);
    let listed = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(labels(&listed.1), ["Desktop", "This laptop", "New laptop"]);
    // Freeing another device left this machine's activation remembered and marked.
    assert_eq!(listed.1["activation_id"], mine_id.as_str(), "{}", listed.1);
    let check = cli(&polar, &here, &["check", "--key", DEMO_KEY]);
    assert_eq!(check.0, 0, "{}", check.2);
}

#[test]
fn device_management_off_says_the_seller_must_enable_it() {
    let mut seed = Seed::demo();
    seed.benefits = vec![SeedBenefit {
        id: DEMO_BENEFIT_ID.to_string(),
        enable_customer_admin: false,
        ..SeedBenefit::default()
    }];
    let polar = Emulator::start(seed, Options::default()).unwrap();
    let here = ScratchDir::new("cli-devices-off");
    assert_eq!(activate(&polar, &here, "This laptop").0, 0);
    let _ = sign_in(&polar, &here);
    let off = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(off.0, 1, "{}", off.2);
    assert_eq!(off.1["outcome"], "denied", "{}", off.1);
    assert_eq!(off.1["portal_error"], "device_management_off", "{}", off.1);
    // The seller's setting is named in the detail (for the seller and the logs); the person is
    // told the way around it from here, in the core's words.
    let detail = off.1["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("customers can manage activations")
            && detail.contains("enable_customer_admin"),
        "{}",
        off.1
    );
    says(
        &polar,
        &here,
        &["devices", "--key", DEMO_KEY],
        1,
        &[
            "from here: Free the device by its id (polar-license free ID)",
            "ask the seller to free it",
        ],
    );
}

#[test]
fn a_key_not_the_customers_an_expired_session_and_a_used_code() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let here = ScratchDir::new("cli-devices-expired");
    let used = sign_in(&polar, &here);
    // `status` without a key counts records only: the sealed session is none.
    let listing = cli_at(&polar, &here).args(["--json", "status"]).launch();
    let listing: Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert!(
        listing["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("0 record(s)")),
        "{listing}"
    );
    // A key this customer does not hold.
    let other = cli(&polar, &here, &["devices", "--key", "NOT-A-KEY-OF-HERS"]);
    assert_eq!(other.0, 1, "{}", other.2);
    assert_eq!(
        (other.1["reason"].as_str(), other.1["portal_error"].as_str()),
        (Some("not_found"), Some("key_not_found")),
        "{}",
        other.1
    );
    assert!(!other.2.contains("NOT-A-KEY-OF-HERS"), "{}", other.2);
    // A key with no activation list is still listed (none).
    let listed = cli(
        &polar,
        &here,
        &["devices", "--key", DEMO_KEY_NO_ACTIVATIONS],
    );
    assert_eq!(listed.0, 0, "{}", listed.2);

    // The code was used: typing it again is refused, and says to ask for a new one.
    says(
        &polar,
        &here,
        &["sign-in", "--code", &used],
        1,
        &[
            "code_invalid_or_expired",
            "Ask for a new code (polar-license sign-in",
        ],
    );

    // Polar's hour passes.
    polar.set_clock_offset(3601);
    let expired = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    answered(&expired, 1, "portal_error", "session_expired");
    // The core's words for it (issue #80), and how to take the step from here.
    assert_eq!(
        next_step(&expired),
        polar_license::portal::PortalError::SessionExpired
            .message()
            .next_step(),
        "{}",
        expired.1
    );
    assert!(
        expired.1["from_here"]
            .as_str()
            .is_some_and(|s| s == "Sign in again (polar-license sign-in --email EMAIL)."),
        "{}",
        expired.1
    );
    // It is forgotten: the next try asks to sign in, with no request.
    let before = polar.request_count();
    let next = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(next.1["portal_error"], "not_signed_in", "{}", next.1);
    assert_eq!(polar.request_count(), before);
}

#[test]
fn the_code_rate_limit_gives_the_wait() {
    let options = Options {
        rate_limit: true,
        ..Options::default()
    };
    let polar = Emulator::start(Seed::demo(), options).unwrap();
    let here = ScratchDir::new("cli-devices-rate");
    // Polar: 6 a minute per address on the code routes, then 900 s blocked.
    for _ in 0..6 {
        let asked = cli(&polar, &here, &["sign-in", "--email", EMAIL]);
        assert_eq!(asked.0, 0, "{}", asked.2);
    }
    let limited = cli(&polar, &here, &["sign-in", "--email", EMAIL]);
    assert_eq!(limited.0, 3, "{}", limited.2);
    assert_eq!(limited.1["reason"], "rate_limited", "{}", limited.1);
    let wait = limited.1["retry_after"].as_u64().expect("the wait");
    assert!(wait > 0 && wait <= 900, "{}", limited.1);
    says(
        &polar,
        &here,
        &["sign-in", "--email", EMAIL],
        3,
        &["from here: Wait ", " seconds, then try again."],
    );
}

#[test]
fn bad_input_is_refused_unsent() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let here = ScratchDir::new("cli-devices-bad");
    for args in [
        &["sign-in", "--email", "jane"][..],
        &["sign-in", "--code", "ABC"][..],
        &["free", "not-an-id", "--key", DEMO_KEY][..],
    ] {
        let got = cli(&polar, &here, args);
        // Words for the person at the terminal, not an app's settings.
        let said = got.1["user_message"].as_str().unwrap_or_default();
        assert!(
            !said.contains("settings") && !said.contains("not activated"),
            "{}",
            got.1
        );
        assert!(got.1["next_step"].is_string(), "{}", got.1);
        assert_eq!(
            (got.0, got.1["reason"].as_str()),
            (2, Some("invalid_input")),
            "{args:?}: {}",
            got.1
        );
    }
    // Neither --email nor --code: a usage error.
    assert_eq!(cli(&polar, &here, &["sign-in"]).0, 2);
    assert_eq!(polar.request_count(), 0);
}

/// `sign-in --email E` on a terminal (`script -qfec`: a real pseudo-terminal): the code is
/// asked for once it was sent, typed without echo, and the session works for `devices`.
#[cfg(unix)]
#[test]
fn sign_in_asks_for_the_code_on_a_terminal_without_echo() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let here = ScratchDir::new("cli-devices-tty");
    assert_eq!(activate(&polar, &here, "This laptop").0, 0);
    let args = [
        BIN.to_string(),
        "--base-url".into(),
        polar.url(),
        "--org".into(),
        polar.organization_id(),
        "--cache-dir".into(),
        here.to_str().unwrap().into(),
        "sign-in".into(),
        "--email".into(),
        EMAIL.into(),
    ];
    // The code was sent before the prompt: read it as the person reads the email.
    let mut code = String::new();
    let (status, screen) = on_terminal(&args, "Code from the email", || {
        code = last_code(&polar);
        code.clone()
    });
    assert_eq!(status, Some(0), "{screen}");
    assert!(screen.contains("signed in"), "{screen}");
    assert!(!screen.contains(&code), "the code was echoed: {screen}");
    let listed = cli(&polar, &here, &["devices", "--key", DEMO_KEY]);
    assert_eq!(listed.0, 0, "{}", listed.2);
    assert_eq!(listed.1["devices"][0]["this_machine"], true, "{}", listed.1);
}

/// `activate` without `--label` labels the activation with this machine's host name and OS
/// (issue #64 item 6), so that `devices` tells machines apart.
#[cfg(target_os = "linux")]
#[test]
fn activate_without_a_label_names_the_machine() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let here = ScratchDir::new("cli-devices-label");
    let done = cli(&polar, &here, &["activate", "--key", DEMO_KEY]);
    assert_eq!(done.0, 0, "{}", done.2);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let label = done.1["activation"]["label"].as_str().unwrap().to_string();
    assert_eq!(label, format!("{} (Linux)", host.trim()), "{}", done.1);
    // Polar holds that label, as `devices` lists it.
    let held = polar.activations(DEMO_KEY);
    assert_eq!(held[0]["label"], label.as_str());
}

#[test]
fn a_lost_key_is_recovered_by_signing_in_never_shown_whole() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let dir = ScratchDir::new("cli-devices-recover");
    // Not signed in: said so, no request.
    not_signed_in(&polar, &dir, "recover");

    sign_in(&polar, &dir);
    // The demo customer holds every demo key: offered are the granted, unexpired ones, by id
    // and redacted form; revoked, disabled and expired ones are not; no whole key anywhere.
    let listed = cli(&polar, &dir, &["recover"]);
    assert_eq!(listed.0, 0, "{}", listed.2);
    let keys = listed.1["keys"].as_array().unwrap().clone();
    let shown: Vec<&str> = keys
        .iter()
        .map(|k| k["display_key"].as_str().unwrap())
        .collect();
    let mut want: Vec<String> = [DEMO_KEY, DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_USAGE]
        .iter()
        .map(|k| format!("****-{}", &k[k.len() - 6..]))
        .collect();
    let mut got: Vec<String> = shown.iter().map(|s| s.to_string()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{}", listed.1);
    let text = run(&polar, &dir, false, &["recover"]).2;
    for whole in [
        DEMO_KEY,
        DEMO_KEY_NO_ACTIVATIONS,
        DEMO_KEY_USAGE,
        DEMO_KEY_REVOKED,
        DEMO_KEY_EXPIRED,
    ] {
        assert!(!listed.2.contains(whole), "{}", listed.2);
        assert!(!text.contains(whole), "{text}");
    }
    assert!(
        text.contains("what to do: Activate one here by its id (polar-license recover ID)."),
        "{text}"
    );

    // An id not listed: refused before any activation.
    let before = polar.activations(DEMO_KEY).len();
    let wrong = cli(&polar, &dir, &["recover", DEMO_BENEFIT_ID]);
    answered(&wrong, 2, "field", "id");
    assert_eq!(polar.activations(DEMO_KEY).len(), before);

    // The chosen one is activated here and remembered: `check` needs no key.
    let id = keys
        .iter()
        .find(|k| k["display_key"] == format!("****-{}", &DEMO_KEY[DEMO_KEY.len() - 6..]))
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    let done = cli(&polar, &dir, &["recover", &id, "--label", "New laptop"]);
    assert_eq!(done.0, 0, "{}", done.2);
    assert_eq!(done.1["key_id"], id.as_str(), "{}", done.1);
    assert_eq!(done.1["key_remembered"], true, "{}", done.1);
    assert!(!done.2.contains(DEMO_KEY), "{}", done.2);
    let activations = polar.activations(DEMO_KEY);
    assert_eq!(activations.len(), before + 1);
    assert!(activations.iter().any(|a| a["label"] == "New laptop"));
    let check = cli(&polar, &dir, &["check"]);
    assert_eq!(check.0, 0, "{}", check.2);
    assert_eq!(check.1["outcome"], "licensed", "{}", check.1);
}

#[test]
fn follow_rotation_follows_the_remembered_key_with_this_machines_activation() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let dir = ScratchDir::new("cli-devices-follow");
    let act = activate(&polar, &dir, "Laptop");
    assert_eq!(cli(&polar, &dir, &["remember", "--key", DEMO_KEY]).0, 0);
    assert_eq!(act.0, 0, "{}", act.2);
    let activation = act.1["activation_id"].as_str().unwrap().to_string();
    // Nothing rotated yet, not signed in: said so, nothing sent.
    not_signed_in(&polar, &dir, "follow-rotation");
    sign_in(&polar, &dir);
    let same = cli(&polar, &dir, &["follow-rotation"]);
    answered(&same, 1, "portal_error", "key_not_found");

    // The seller rotates the key: the old string is not_found at once.
    let new = polar.rotate_key(DEMO_KEY).expect("rotated");
    let stale = cli(&polar, &dir, &["validate", "--key", DEMO_KEY]);
    assert_eq!(stale.1["reason"], "not_found", "{}", stale.1);
    let used = polar.activations(&new).len();
    let done = cli(&polar, &dir, &["follow-rotation"]);
    assert_eq!(done.0, 0, "{}", done.2);
    assert_eq!(done.1["command"], "follow-rotation", "{}", done.1);
    assert_eq!(done.1["outcome"], "licensed", "{}", done.1);
    assert_eq!(done.1["activation_id"], activation.as_str(), "{}", done.1);
    assert_eq!(done.1["remembered"], true, "{}", done.1);
    assert_eq!(
        done.1["key"],
        format!("****-{}", &new[new.len() - 6..]).as_str(),
        "{}",
        done.1
    );
    // The new string is never printed whole; no slot was taken for it.
    assert!(!done.2.contains(&new), "{}", done.2);
    assert_eq!(polar.activations(&new).len(), used);
    // `check` of the remembered key is the new string's, with the same activation.
    let check = cli(&polar, &dir, &["check"]);
    assert_eq!(check.0, 0, "{}", check.2);
    assert_eq!(check.1["activation_id"], activation.as_str(), "{}", check.1);
}

#[test]
fn through_the_relay_without_a_sign_in_list_free_another_and_activate_here() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let keys = ScratchDir::new("cli-devices-relay-key");
    let relay = relay_in_front_of(BIN, &polar.url(), &keys);
    let (old, desk, here) = (
        ScratchDir::new("cli-devices-relay-old"),
        ScratchDir::new("cli-devices-relay-desk"),
        ScratchDir::new("cli-devices-relay-here"),
    );
    let gone = activate(&polar, &old, "Old laptop");
    let gone_id = gone.1["activation_id"].as_str().unwrap().to_string();
    assert_eq!(activate(&polar, &desk, "Desktop").0, 0);
    let mine = activate(&polar, &here, "This laptop");
    let mine_id = mine.1["activation_id"].as_str().unwrap().to_string();
    let new = ScratchDir::new("cli-devices-relay-new");
    assert_eq!(activate(&polar, &new, "New laptop").0, 1);

    // No sign-in, no email code: the relay lists them, this machine marked.
    let listed = cli(
        &polar,
        &here,
        &["devices", "--key", DEMO_KEY, "--relay", &relay.url],
    );
    assert_eq!(listed.0, 0, "{}", listed.2);
    let rows: Vec<(String, String, bool)> = listed.1["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["label"].as_str().unwrap().to_string(),
                d["this_machine"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{}", listed.1);
    assert_eq!(rows[0], (gone_id.clone(), "Old laptop".to_string(), false));
    assert_eq!(rows[2], (mine_id.clone(), "This laptop".to_string(), true));
    assert_eq!(listed.1["limit_activations"], 3);
    assert!(!listed.2.contains(DEMO_KEY), "{}", listed.2);
    // No customer session was asked for.
    assert!(polar.customer_session_codes().is_empty());

    // The relay URL from the environment, as an app's settings give it; the dead laptop
    // freed (Polar's public deactivate), then the new machine activates.
    let out = cli_at(&polar, &new)
        .args([
            "--json",
            "--no-machine-binding",
            "devices",
            "--key",
            DEMO_KEY,
        ])
        .env("POLAR_LICENSE_RELAY_URL", &relay.url)
        .launch();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let from_env: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_env["devices"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        from_env["activation_id"],
        Value::Null,
        "nothing is this machine's"
    );
    assert_eq!(
        cli(&polar, &new, &["free", &gone_id, "--key", DEMO_KEY]).0,
        0
    );
    assert_eq!(activate(&polar, &new, "New laptop").0, 0);
    let after = cli(
        &polar,
        &here,
        &["devices", "--key", DEMO_KEY, "--relay", &relay.url],
    );
    assert_eq!(labels(&after.1), ["Desktop", "This laptop", "New laptop"]);

    // A key the relay's Polar does not know: `key_not_found`, exit 1.
    let through =
        |key: &str, relay: &str| cli(&polar, &here, &["devices", "--key", key, "--relay", relay]);
    let unknown = through("NOT-A-REAL-KEY-1", &relay.url);
    assert_eq!(unknown.1["portal_error"], "key_not_found", "{}", unknown.1);
    assert_ne!(unknown.0, 0);
    // A relay URL that is no base URL is refused unsent (exit 2).
    let bad = through(DEMO_KEY, "http://relay.example.com");
    answered(&bad, 2, "reason", "invalid_input");
    // A relay that is not there: offline (exit 3).
    let down = through(DEMO_KEY, "http://127.0.0.1:9");
    answered(&down, 3, "reason", "offline");
}
