//! `polar-license-forge-c`: the attack issue #25 is about, as a program the C tests run
//! (`bindings/c/tests/test_signed.c`). Test-only, never published.
//!
//! The threat model: whoever controls the machine can read the install secret beside the
//! cache and the app secret out of the app, so they can re-seal a cache record with this
//! crate's own code. This program does exactly that, as `tests/signed_mode.rs`'s `forge`
//! does: it opens the key's record with those secrets, marks its last good verdict as
//! verified now, drops any denial, and seals it again. An app without relay keys believes the
//! result; one in signed mode must not, since the record's lease (signed by the seller's relay)
//! still ends when it ended.
//!
//! ```text
//! polar-license-forge-c --dir DIR --base-url URL --org ORG --key KEY --app-secret TEXT
//!     [--machine-id ID] [--clock-offset SECONDS] [--impostor-kid KID]
//! ```
//!
//! * `--machine-id`: the raw machine id the record is sealed with (default: this machine's,
//!   read as the library reads it, e.g. `/etc/machine-id`).
//! * `--clock-offset`: "now" is the system clock plus this (the C tests' clock hook).
//! * `--impostor-kid`: also replace the record's lease with one signed, for a year, by a key
//!   the forger made, under this `kid` (the relay's, say): it must not verify either.
//!
//! Prints `forged <record file>` and exits 0, or prints why on stderr and exits 1 (no trusted
//! record to start from, unreadable secrets) or 2 (usage).

use polar_license::fingerprint::{fingerprint_from, machine_fingerprint};
use polar_license::grace::LicenseData;
use polar_license::lease::{key_hash, LeaseClaims, SigningKey};
use polar_license::store::Store;
use polar_license::testing::{self, Slot};
use polar_license::{FileStore, Key};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: polar-license-forge-c --dir DIR --base-url URL --org ORG --key KEY \
                     --app-secret TEXT [--machine-id ID] [--clock-offset SECONDS] \
                     [--impostor-kid KID]";

#[derive(Default)]
struct Args {
    dir: Option<PathBuf>,
    base_url: Option<String>,
    org: Option<String>,
    key: Option<String>,
    app_secret: Option<String>,
    machine_id: Option<String>,
    clock_offset: i64,
    impostor_kid: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--base-url" => a.base_url = Some(value()?),
            "--org" => a.org = Some(value()?),
            "--key" => a.key = Some(value()?),
            "--app-secret" => a.app_secret = Some(value()?),
            "--machine-id" => a.machine_id = Some(value()?),
            "--clock-offset" => {
                let text = value()?;
                a.clock_offset = text
                    .parse()
                    .map_err(|_| format!("--clock-offset: not a number: {text}"))?;
            }
            "--impostor-kid" => a.impostor_kid = Some(value()?),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn now(offset: i64) -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    secs.saturating_add(offset)
}

fn forge(a: &Args) -> Result<PathBuf, String> {
    let missing = |name: &str| format!("{name} is required\n{USAGE}");
    let dir = a.dir.as_ref().ok_or_else(|| missing("--dir"))?;
    let base_url = a.base_url.as_deref().ok_or_else(|| missing("--base-url"))?;
    let org = a.org.as_deref().ok_or_else(|| missing("--org"))?;
    let key = Key::new(a.key.as_deref().ok_or_else(|| missing("--key"))?);
    let app_secret = a
        .app_secret
        .as_deref()
        .ok_or_else(|| missing("--app-secret"))?;

    // What an attacker on the machine reads: the install secret beside the cache, the
    // machine's id, the app's secret.
    let secret = FileStore::new(dir)
        .install_secret()
        .map_err(|e| format!("the install secret: {e}"))?;
    let seal = match &a.machine_id {
        Some(id) => Some(fingerprint_from(id, org)),
        None => machine_fingerprint(org).map_err(|e| format!("the machine id: {e}"))?,
    };
    let app_secret = (!app_secret.is_empty()).then_some(app_secret.as_bytes());
    let slot = Slot::new(base_url, org, &key, &secret, seal.as_deref(), app_secret);

    let path = |name: &str| dir.join(format!("{name}.cache"));
    // "Verified just now", whatever Polar said since: the core's one forger.
    let now = now(a.clock_offset);
    let mut edited: Result<(), String> = Ok(());
    testing::forge_in(
        &FileStore::new(dir),
        &slot,
        (org, &key),
        |record: &mut polar_license::Record| {
            edited = redate(
                record,
                now,
                a.impostor_kid.as_deref(),
                org,
                &key,
                seal.as_deref(),
            );
        },
    )?;
    edited?;
    Ok(path(&slot.name))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match forge(&args) {
        Ok(record) => {
            println!("forged {}", record.display());
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("polar-license-forge-c: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The record as a forger re-dates it: verified at `now`, no denial, and with `impostor_kid`
/// a lease signed by a key of that id the relay never had.
fn redate(
    record: &mut polar_license::Record,
    now: i64,
    impostor_kid: Option<&str>,
    org: &str,
    key: &Key,
    seal: Option<&str>,
) -> Result<(), String> {
    let activation_id = record.activation.as_ref().map(|s| s.id.clone());
    let good = record
        .good
        .as_mut()
        .ok_or("the record holds no good verdict to re-date")?;
    good.verified_at = now;
    if let Some(kid) = impostor_kid {
        let fake = SigningKey::generate(Some(kid)).map_err(|e| format!("a key: {e}"))?;
        let claims = LeaseClaims {
            organization_id: org.to_string(),
            key_sha256: key_hash(key),
            activation_id,
            status: "granted".into(),
            license_expires_at: None,
            subscription_ends_at: None,
            benefit_id: good.license.benefit_id().to_string(),
            usage: 0,
            limit_usage: None,
            limit_activations: None,
            issued_at: now,
            not_before: now,
            expires_at: now + 365 * 86_400,
            id: "7f1e2d3c-4b5a-4968-8776-655443322110".into(),
            nonce: None,
            entitlements: None,
        };
        good.lease = Some(
            fake.sign(&claims, seal)
                .map_err(|e| format!("signing: {e}"))?,
        );
    }
    record.latest_seen = now;
    record.denied = None;
    Ok(())
}
