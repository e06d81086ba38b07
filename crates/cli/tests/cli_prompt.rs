//! `activate` without `--key` (issue #54, item 2): on a terminal the key is asked for, typed
//! without echo and never printed whole; without a terminal it is `invalid_input` on `key`
//! with no request sent. Each refusal's text output says what to do next. Real processes: the
//! binary under `script` (util-linux: a real pseudo-terminal), the emulator on loopback.
#![cfg(unix)]

use polar_license::Key;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::{clean_command, Launch, ScratchDir};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// The global flags for `polar` and the cache directory `dir`.
fn globals(polar: &Emulator, dir: &Path) -> Vec<String> {
    vec![
        "--base-url".into(),
        polar.url(),
        "--org".into(),
        polar.organization_id(),
        "--cache-dir".into(),
        dir.to_str().unwrap().into(),
    ]
}

/// Runs the binary with `args` on a pseudo-terminal (`script -qfec`), types `typed` and Enter
/// once the prompt is on the screen, and returns the exit code and everything the terminal
/// showed.
fn on_terminal(args: &[String], typed: &str) -> (i32, String) {
    let command: Vec<String> = std::iter::once(BIN.to_string())
        .chain(args.iter().cloned())
        .collect();
    let (code, screen) =
        polar_license_testkit::on_terminal(&command, "License key", || typed.to_string());
    (code.unwrap_or(-1), screen)
}

#[test]
fn activate_asks_for_the_key_on_a_terminal_without_echo() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-prompt-asked");
    let mut args = globals(&polar, d.path());
    args.extend(["activate".into(), "--label".into(), "desk".into()]);
    let (code, screen) = on_terminal(&args, &format!("  {DEMO_KEY}  "));
    assert_eq!(code, 0, "the terminal showed: {screen}");
    let shown = Key::new(DEMO_KEY).redacted();
    assert!(
        screen.contains(&format!("activated {shown}")),
        "no 'activated {shown}' line: {screen}"
    );
    // Typed without echo: the whole key is nowhere on the screen (with echo it would be, on
    // the line after the prompt).
    assert!(
        !screen.contains(DEMO_KEY),
        "the key was shown on the terminal: {screen}"
    );
    // The key typed (its spaces trimmed) is the one Polar activated, once.
    let activations = polar.activations(DEMO_KEY);
    assert_eq!(activations.len(), 1, "{activations:?}");
    assert_eq!(activations[0]["label"], "desk", "{activations:?}");
}

#[test]
fn activate_without_a_key_or_a_terminal_is_invalid_input_and_sends_nothing() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-prompt-no-terminal");
    polar.reset_request_count();
    let out = clean_command(BIN)
        .args(globals(&polar, d.path()))
        .args(["--json", "activate", "--label", "desk"])
        .stdin(Stdio::null())
        .launch();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{v}");
    assert_eq!(v["reason"], "invalid_input", "{v}");
    assert_eq!(v["field"], "key", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("--key") && d.contains("terminal")),
        "{v}"
    );
    assert_eq!(polar.request_count(), 0, "a request was sent without a key");
}

/// The text output of one command (stdout and stderr), and its exit code.
fn text(polar: &Emulator, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = clean_command(BIN)
        .args(globals(polar, dir))
        .args(args)
        .stdin(Stdio::null())
        .launch();
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), all)
}

#[test]
fn each_refusal_says_what_to_do() {
    let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
    let d = ScratchDir::new("cli-prompt-next-steps");
    // The demo key allows a few activations: take them all, then one more is refused.
    let mut refused = None;
    for n in 0..10 {
        let label = format!("machine-{n}");
        let got = text(
            &polar,
            d.path(),
            &["activate", "--key", DEMO_KEY, "--label", &label],
        );
        if got.0 != 0 {
            refused = Some(got);
            break;
        }
    }
    let (code, out) = refused.expect("the demo key never reached its activation limit");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("activation_limit"), "{out}");
    assert!(
        out.contains(&format!(
            "what to do: {}",
            polar_license::Reason::ActivationLimit.next_step()
        )),
        "{out}"
    );

    let (code, out) = text(
        &polar,
        d.path(),
        &["activate", "--key", "NOT-A-KEY-1234567", "--label", "x"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not_found"), "{out}");
    assert!(
        out.contains(&format!(
            "what to do: {}",
            polar_license::Reason::NotFound.next_step()
        )),
        "{out}"
    );

    // No verdict: Polar down (the emulator stopped) says what to do too.
    let url = polar.url();
    drop(polar);
    let out = clean_command(BIN)
        .args([
            "--base-url",
            &url,
            "--org",
            "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
        ])
        .args(["--cache-dir", d.path().to_str().unwrap()])
        .args(["validate", "--key", DEMO_KEY])
        .stdin(Stdio::null())
        .launch();
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("offline"), "{all}");
    assert!(
        all.contains(&format!(
            "what to do: {}",
            polar_license::Reason::Offline.next_step()
        )),
        "{all}"
    );
}
