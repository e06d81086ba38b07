//! What the command line's suites share: the binary pointed at an emulator, with its cache in
//! a directory of the test's, and its answer read.
// Each suite includes this module and uses a part of it.
#![allow(dead_code)]

use polar_license_emulator::{Emulator, Seed, SeedKey};
use polar_license_testkit::{
    clean_command, relay_keygen, relay_serve, subscribed_key, Launch, ScratchDir, Served,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// The binary (the host's settings cleared) pointed at `polar` (`--base-url`, `--org`), its
/// cache in `dir` (`--cache-dir`), for a test to add the rest of the line to.
pub fn cli_at(polar: &Emulator, dir: &Path) -> Command {
    let mut cmd = clean_command(BIN);
    cmd.args([
        "--base-url",
        &polar.url(),
        "--org",
        &polar.organization_id(),
    ])
    .arg("--cache-dir")
    .arg(dir);
    cmd
}

/// Runs [`cli_at`] with `--json` (or not) and `args`: the exit code (-1 when killed), the JSON
/// object (when `json`; panics, naming `args`, when stdout is not one; else `null`) and
/// everything it printed (stdout, then stderr).
pub fn run(polar: &Emulator, dir: &Path, json: bool, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = cli_at(polar, dir);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.args(args).launch();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = if json {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {stdout}"))
    } else {
        Value::Null
    };
    (out.status.code().unwrap_or(-1), v, stdout + &stderr)
}

/// [`run`] with `--json`.
pub fn cli(polar: &Emulator, dir: &Path, args: &[&str]) -> (i32, Value, String) {
    run(polar, dir, true, args)
}

/// Asserts a [`run`]'s exit `code`, and `field` set to `value` (showing the answer when not).
#[track_caller]
pub fn answered(got: &(i32, Value, String), code: i32, field: &str, value: &str) {
    assert_eq!(
        (got.0, got.1[field].as_str()),
        (code, Some(value)),
        "{}",
        got.1
    );
}

/// `seed` written to the file `name` in `dir`: its path.
pub fn seed_file(dir: &ScratchDir, name: &str, seed: &Seed) -> String {
    let file = dir.path().join(name);
    std::fs::write(&file, serde_json::to_vec(seed).expect("JSON")).expect("write the seed");
    file.to_str().expect("UTF-8").to_string()
}

/// `polar-license emulator` as a process on a free port, on the seed file `seed`.
pub fn emulator_on(seed: &str) -> Served {
    Served::start(clean_command(BIN).args(["emulator", "--port", "0", "--seed", seed]))
}

/// `polar-license relay serve` as a process in front of `polar` with a store in memory, its
/// signing key made in `dir`, reading Polar with `token`, with `options` added: the relay
/// (its banner read to `serving until killed`) and its public key (`KID=k4.public.…`). No
/// per-client limits: the tests poll until the relay has read what they wait for (under load
/// the polls passed the default 5/s and were answered 429).
pub fn relay_with_store(
    dir: &ScratchDir,
    polar: &Served,
    token: &str,
    options: &[&str],
) -> (Served, String) {
    let (signing_key, pair) = relay_keygen(BIN, dir, "relay.key");
    let relay = Served::start_with_banner(
        relay_serve(BIN, &polar.url, &signing_key)
            .args(["--port", "0", "--store", "memory"])
            .args(["--per-ip", "0", "--per-key", "0"])
            .args(options)
            .env("POLAR_ACCESS_TOKEN", token),
        "serving until killed",
    )
    .0;
    (relay, pair)
}

/// The license benefit and the customer of the keys the relay suites add to the demo seed.
pub const LICENSE: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
pub const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";

/// A seed key `key` of [`CUSTOMER`]'s with [`LICENSE`], bought under the subscription
/// `subscription`, granted `benefits`.
pub fn customers_subscribed_key(key: &str, subscription: &str, benefits: &[&str]) -> SeedKey {
    subscribed_key(key, LICENSE, CUSTOMER, subscription, benefits)
}
