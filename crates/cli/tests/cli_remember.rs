//! The remembered key from the command line (issue #15, item 5): `activate --remember`,
//! `remember`, `check`/`deactivate`/`status` without `--key`, `forget-key`; a key remembered
//! by the library is the CLI's and the reverse. Real processes, a real cache directory, the
//! emulator on loopback.

use polar_license::{Licensing, MachineBinding};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY, DEMO_KEY_REVOKED};
use polar_license_testkit::{Launch, ScratchDir};
use serde_json::Value;

mod common;
use common::{answered, cli, cli_at};

#[track_caller]
fn no_key(got: &(i32, Value, String)) {
    assert_eq!(got.0, 2, "{}", got.1);
    assert_eq!(got.1["reason"], "invalid_input", "{}", got.1);
    assert_eq!(got.1["field"], "key", "{}", got.1);
    assert!(
        got.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no key is remembered") && d.contains("--remember")),
        "{}",
        got.1
    );
}

fn tail(key: &str) -> &str {
    &key[key.len() - 6..]
}

#[test]
fn activate_remember_then_check_deactivate_and_status_need_no_key() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-remember-flow");
    // Nothing remembered: check and deactivate say how to remember one, with no request.
    no_key(&cli(&polar, &d, &["check"]));
    no_key(&cli(&polar, &d, &["deactivate"]));
    assert_eq!(polar.request_count(), 0);

    // Activated without --remember: still nothing remembered.
    let plain = cli(&polar, &d, &["activate", "--key", DEMO_KEY, "--label", "a"]);
    assert_eq!(
        (plain.0, &plain.1["key_remembered"]),
        (0, &Value::Bool(false))
    );
    no_key(&cli(&polar, &d, &["check"]));

    let act = cli(
        &polar,
        &d,
        &["activate", "--key", DEMO_KEY, "--label", "b", "--remember"],
    );
    assert_eq!(act.0, 0, "{}", act.1);
    assert_eq!(act.1["key_remembered"], true, "{}", act.1);
    let activation = act.1["activation_id"].as_str().unwrap().to_string();

    let check = cli(&polar, &d, &["check"]);
    answered(&check, 0, "outcome", "licensed");
    assert_eq!(check.1["activation_id"], activation.as_str(), "{}", check.1);
    let status = cli(&polar, &d, &["status"]);
    assert_eq!(status.0, 0, "{}", status.1);
    assert_eq!(
        status.1["activation_id"],
        activation.as_str(),
        "{}",
        status.1
    );
    // --key still wins over the remembered key.
    let other = cli(&polar, &d, &["check", "--key", DEMO_KEY_REVOKED]);
    answered(&other, 1, "reason", "inactive");

    // Deactivating the remembered key frees its slot and forgets it.
    let deact = cli(&polar, &d, &["deactivate"]);
    assert_eq!(deact.0, 0, "{}", deact.1);
    assert_eq!(deact.1["activation_id"], activation.as_str(), "{}", deact.1);
    no_key(&cli(&polar, &d, &["check"]));
    // And status without a key lists the directory: two records (the revoked key's too).
    let listing = cli(&polar, &d, &["status"]);
    assert_eq!(listing.0, 0, "{}", listing.1);
    assert_eq!(listing.1["cache"]["records"], 2, "{}", listing.1);
}

/// Issue #27: after `activate --remember` replaced an activation, the suggested
/// `deactivate --activation-id <old>` freed the old slot but also forgot the remembered key
/// while the current activation stayed: the next `check` failed with `invalid_input`.
#[test]
fn deactivating_a_replaced_activation_keeps_the_remembered_key() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-remember-replaced");
    let args = ["activate", "--key", DEMO_KEY, "--label", "a", "--remember"];
    let first = cli(&polar, &d, &args);
    assert_eq!(first.0, 0, "{}", first.1);
    let old = first.1["activation_id"].as_str().unwrap().to_string();
    let second = cli(&polar, &d, &args);
    assert_eq!(second.0, 0, "{}", second.1);
    assert_eq!(
        second.1["replaced_activation_id"],
        old.as_str(),
        "{}",
        second.1
    );
    let current = second.1["activation_id"].as_str().unwrap().to_string();
    let freed = cli(&polar, &d, &["deactivate", "--activation-id", &old]);
    assert_eq!(freed.0, 0, "{}", freed.1);
    let left: Vec<String> = polar
        .activations(DEMO_KEY)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![current.clone()]);

    // The key is still remembered, and the check validates the current activation.
    let check = cli(&polar, &d, &["check"]);
    answered(&check, 0, "outcome", "licensed");
    assert_eq!(check.1["activation_id"], current.as_str(), "{}", check.1);

    // Deactivating the current one forgets the key, as before.
    let last = cli(&polar, &d, &["deactivate"]);
    assert_eq!(last.0, 0, "{}", last.1);
    no_key(&cli(&polar, &d, &["check"]));
}

#[test]
fn remember_and_forget_key_commands() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-remember-commands");
    let bad = cli(&polar, &d, &["remember", "--key", " KEY"]);
    answered(&bad, 2, "field", "key");
    let none = cli(&polar, &d, &["forget-key"]);
    assert_eq!((none.0, &none.1["key"]), (0, &Value::Null), "{}", none.1);

    let remembered = cli(&polar, &d, &["remember", "--key", DEMO_KEY]);
    assert_eq!(remembered.0, 0, "{}", remembered.1);
    assert_eq!(remembered.1["command"], "remember");
    assert_eq!(remembered.1["key"], format!("****-{}", tail(DEMO_KEY)));
    assert!(
        !remembered.2.contains(&DEMO_KEY[..DEMO_KEY.len() - 6]),
        "{}",
        remembered.2
    );
    assert_eq!(polar.request_count(), 0, "remembering asks nothing");
    // A key this app cannot open leaves status to list the directory: the key file is no
    // record.
    let listing = cli(&polar, &d, &["--app-secret", "another app", "status"]);
    assert_eq!(listing.1["cache"]["records"], 0, "{}", listing.1);
    assert_eq!(listing.1["cache"]["exists"], true, "{}", listing.1);
    let check = cli(&polar, &d, &["check"]);
    answered(&check, 0, "source", "online");

    let forgot = cli(&polar, &d, &["forget-key"]);
    assert_eq!(forgot.0, 0, "{}", forgot.1);
    assert_eq!(forgot.1["key"], format!("****-{}", tail(DEMO_KEY)));
    no_key(&cli(&polar, &d, &["check"]));
    // The record stays: the key checks from the cache with --key.
    let cached = cli(&polar, &d, &["check", "--key", DEMO_KEY]);
    answered(&cached, 0, "source", "cache");
}

#[test]
fn the_library_and_the_cli_share_the_remembered_key() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-remember-shared");
    // The CLI binds to the OS machine id; the library does too by default.
    let lib = Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .cache_dir(&d)
        .machine_binding(MachineBinding::Os)
        .build()
        .unwrap();
    lib.remember_key(DEMO_KEY).unwrap();
    let check = cli(&polar, &d, &["check"]);
    assert_eq!(check.0, 0, "{}", check.1);

    lib.forget_key().unwrap();
    let act = cli(
        &polar,
        &d,
        &["activate", "--key", DEMO_KEY, "--label", "x", "--remember"],
    );
    assert_eq!(act.0, 0, "{}", act.1);
    assert_eq!(lib.remembered_key().unwrap().unwrap().expose(), DEMO_KEY);
    assert!(lib.check_remembered().is_licensed());

    // Another app secret is another app: the CLI with one sees no key.
    let out = cli_at(&polar, &d)
        .args(["--json", "--app-secret", "another app", "check"])
        .launch();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Deactivate's forget race on the command line: `deactivate` (no `--key`: the remembered
/// key) waits on a slow Polar while another process runs `activate --remember` of another
/// key. When the deactivation's answer arrives, the other key is the one remembered: it stays
/// (the forget compares under the entry's lock when it writes, not before the request).
#[test]
fn a_key_remembered_while_deactivate_waits_on_polar_stays_remembered() {
    use polar_license_emulator::{Fault, DEMO_KEY_USAGE};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-remember-race");
    let act = cli(
        &polar,
        &d,
        &["activate", "--key", DEMO_KEY, "--label", "a", "--remember"],
    );
    assert_eq!(act.0, 0, "{}", act.1);
    let before = polar.request_count();

    // Polar answers the deactivate 1.5 s after it arrives.
    polar.set_fault(Some(Fault::Delay { ms: 1500 }));
    let mut deactivating = cli_at(&polar, &d)
        .args(["--json", "deactivate"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start();
    let asked = Instant::now();
    while polar.request_count() == before {
        assert!(asked.elapsed() < Duration::from_secs(20), "never asked");
        std::thread::sleep(Duration::from_millis(5));
    }
    polar.set_fault(None);

    // Meanwhile another process activates another key and remembers it.
    let other = cli(
        &polar,
        &d,
        &[
            "activate",
            "--key",
            DEMO_KEY_USAGE,
            "--label",
            "b",
            "--remember",
        ],
    );
    assert_eq!(other.0, 0, "{}", other.1);
    assert_eq!(other.1["key_remembered"], true, "{}", other.1);
    assert!(
        deactivating.try_wait().expect("the deactivate").is_none(),
        "the deactivate must still wait on Polar for this race to be tested"
    );
    let out = deactivating.wait_with_output().expect("deactivate ends");
    let deact: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(0), "{deact}");
    assert!(polar.activations(DEMO_KEY).is_empty(), "the slot freed");

    // The key remembered meanwhile stays: `check` with no key checks it.
    let check = cli(&polar, &d, &["check"]);
    answered(&check, 0, "outcome", "licensed");
    assert!(
        check.1["license"]["display_key"]
            .as_str()
            .is_some_and(|k| k.ends_with(tail(DEMO_KEY_USAGE))),
        "{}",
        check.1
    );
}

/// Issue #65: Polar answers the same bare 404 for an unknown key and an unknown activation.
/// A `deactivate` of this machine's activation, freed meanwhile from another device (or the
/// portal), says the activation is gone, not "check the key for typos": this cache knows the
/// key is good.
#[test]
fn deactivate_of_an_activation_freed_elsewhere_says_the_activation_is_gone() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let here = ScratchDir::new("cli-deactivate-gone-here");
    let there = ScratchDir::new("cli-deactivate-gone-there");
    // Activated here (the key remembered), that activation freed from there: its id.
    let freed_elsewhere = || {
        let act = cli(
            &polar,
            &here,
            &["activate", "--key", DEMO_KEY, "--label", "a", "--remember"],
        );
        assert_eq!(act.0, 0, "{}", act.1);
        let id = act.1["activation_id"].as_str().unwrap().to_string();
        let freed = cli(
            &polar,
            &there,
            &["deactivate", "--key", DEMO_KEY, "--activation-id", &id],
        );
        assert_eq!(freed.0, 0, "{}", freed.1);
        id
    };
    let id = freed_elsewhere();

    let gone = cli(&polar, &here, &["deactivate"]);
    answered(&gone, 1, "reason", "not_found");
    assert_eq!(gone.1["activation_gone"], true, "{}", gone.1);
    let said = gone.1["user_message"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("This device's activation no longer exists") && !said.contains("typo"),
        "{said}"
    );
    // The text output says it too, and no typo advice (activated and freed once more: the
    // deactivate above forgot the activation that was gone).
    freed_elsewhere();
    let out = cli_at(&polar, &here).arg("deactivate").launch();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("activation no longer exists"), "{text}");
    assert!(
        text.contains("what to do: Activate again to use the key on this device.")
            && !text.contains("typos"),
        "{text}"
    );

    // A cache that never saw the key good keeps the typo advice: nothing says it is good.
    let fresh = ScratchDir::new("cli-deactivate-gone-fresh");
    let unknown = cli(
        &polar,
        &fresh,
        &["deactivate", "--key", DEMO_KEY, "--activation-id", &id],
    );
    answered(&unknown, 1, "reason", "not_found");
    assert_eq!(unknown.1["activation_gone"], false, "{}", unknown.1);
}
