//! `polar-license-forge`: the forged-record attack of issue #25, for the npm package's tests
//! (tests/js/signed.test.mjs). What the threat model says an attacker on the machine can do:
//! read the install secret beside the cache and the app secret out of the app, open the
//! key's record with this crate's own code and re-seal it as freshly verified.
//!
//! ```text
//! polar-license-forge DIR BASE_URL ORG KEY MACHINE_ID APP_SECRET NOW [LEASE]
//! ```
//!
//! `DIR` is the file store of the node entries (the native layout: `<slot>.cache` files and
//! the binary `install-secret`), sealed with `MACHINE_ID` (the client's `machineId` option, as
//! the engine seals with it) and `APP_SECRET` (its `appSecret`). The record's good verdict is
//! marked verified at `NOW` (unix seconds), its latest clock reading too, its denial removed;
//! with `LEASE`, that text becomes the stored lease. Exits 1 when there is no trusted record
//! to start from. A test tool: never shipped.

use polar_license::answers::SchemaLicense;
use polar_license::fingerprint::fingerprint_from;
use polar_license::store::Store;
use polar_license::testing::{self, Slot};
use polar_license::{FileStore, Key};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match forge(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("polar-license-forge: {why}");
            ExitCode::FAILURE
        }
    }
}

fn forge(args: &[String]) -> Result<(), String> {
    let [dir, base_url, org, key, machine_id, app_secret, now, rest @ ..] = args else {
        return Err(
            "usage: polar-license-forge DIR BASE_URL ORG KEY MACHINE_ID APP_SECRET NOW [LEASE]"
                .into(),
        );
    };
    let now: i64 = now.parse().map_err(|_| "NOW is unix seconds")?;
    let dir = Path::new(dir);
    let key = Key::new(key.as_str());
    let secret = FileStore::new(dir)
        .install_secret()
        .map_err(|e| format!("the install secret: {e}"))?;
    let seal = fingerprint_from(machine_id, org);
    let slot = Slot::new(
        base_url,
        org,
        &key,
        &secret,
        Some(&seal),
        Some(app_secret.as_bytes()),
    );
    let mut good = false;
    testing::forge_in::<SchemaLicense>(&FileStore::new(dir), &slot, (org, &key), |record| {
        if let Some(verdict) = record.good.as_mut() {
            good = true;
            verdict.verified_at = now;
            if let Some(lease) = rest.first() {
                verdict.lease = Some(lease.clone());
            }
        }
        record.latest_seen = now;
        record.denied = None;
    })?;
    if !good {
        return Err("the record has no good verdict to forge".into());
    }
    Ok(())
}
