//! The local trial's add-on for the npm package (issue #54 item 4): the core's own trial step
//! (`polar_license::trial`: the record sealed with `TrialSeal`, the rule
//! `polar_license::trial::local`) for `wasm32-unknown-unknown` only (natively this crate is
//! empty).
//!
//! The package's default engine carries no local trial (issue #54 caps what the default entry
//! may grow). `license.js` loads this module only for a client built with `trial: N` whose
//! `check()` has no key and none remembered; a keyed check, or a client without `trial`, never
//! loads it. The record is the native library's, byte for byte, in the same slot under the same
//! seal, so a native app and an npm one on the same store agree about the trial.

#![cfg(target_arch = "wasm32")]

use polar_license::cache::install_secret_from_hex;
use polar_license::error::Error;
use polar_license::fingerprint::fingerprint_from;
use polar_license::grace::GracePolicy;
use polar_license::json::{JsonIn, JsonOut, Num};
use polar_license::proto::{Api, Server};
use polar_license::strict::{self, Value};
use polar_license::trial::{self, TrialDays, TrialSeal};
use polar_license::wasm::STORAGE_PREFIX;
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// The client's options the trial depends on, as `license.js` has checked them (and the engine
/// was built with them, so they are valid here).
struct Client {
    base_url: String,
    organization_id: String,
    /// The machine's identity the store is sealed with (`machineId`, else `sealMachineId`),
    /// fingerprinted as the engine does.
    seal: Option<String>,
    app_secret: Option<String>,
    /// `trial`: the days (license.js has checked 1 to 3650; the core checks again).
    days: f64,
    /// `gracePolicy.clockTolerance`, seconds (`None`: the default).
    clock_tolerance: Option<f64>,
}

/// The number member `name` of `o`.
fn number(o: &Value, name: &str) -> Option<f64> {
    o.member(name).and_then(|v| match v.number()? {
        Num::Int(n) => Some(n as f64),
        Num::Float(x) => Some(x),
    })
}

impl Client {
    /// The client's options as the engine reads them (`license.js` hands both the same JSON):
    /// the server is `baseUrl`, else `server`, else production.
    fn new(options: &str) -> Client {
        let o = strict::parse(options.as_bytes()).unwrap_or(Value::Null);
        let text = |name: &str| o.member(name).and_then(|v| v.string());
        let organization_id = text("organizationId").unwrap_or_default();
        let server = match (text("baseUrl"), text("server")) {
            (Some(url), _) => Server::Custom(url),
            (None, Some(server)) => Server::parse(&server),
            (None, None) => Server::Production,
        };
        let base_url = Api::new(&organization_id, &server)
            .map(|api| api.base_url().to_owned())
            .unwrap_or_default();
        let seal = text("machineId")
            .or_else(|| text("sealMachineId"))
            .map(|id| fingerprint_from(&id, &organization_id));
        let clock_tolerance = o
            .member("gracePolicy")
            .and_then(|p| number(&p, "clockTolerance"));
        Client {
            base_url,
            seal,
            app_secret: text("appSecret"),
            days: number(&o, "trial").unwrap_or(0.0),
            clock_tolerance,
            organization_id,
        }
    }

    /// The trial's seal with the install secret (hex), as on native.
    fn seal(&self, secret: &str) -> TrialSeal {
        TrialSeal::new(
            &self.base_url,
            &self.organization_id,
            &install_secret_from_hex(secret).unwrap_or_default(),
            self.seal.as_deref(),
            self.app_secret.as_deref().map(str::as_bytes),
        )
    }
}

/// A store slot of the client's local trial (the package's prefix and `trial-` with 32 hex
/// digits, as natively): with `shared` false the app's own slot (the origin, the organization
/// and the app's secret: `TrialSeal::app_slot`, issue #62), with `shared` true the slot every
/// app of the organization shared before it (read only while the app's own holds nothing, its
/// record adopted when it is this app's). `options`: the client's options as JSON, as the
/// engine gets them.
#[wasm_bindgen]
pub fn slot(options: &str, shared: bool) -> String {
    let client = Client::new(options);
    let seal = client.seal("");
    let name = match shared {
        true => seal.slot,
        false => seal.app_slot(client.app_secret.as_deref().map(str::as_bytes)),
    };
    [STORAGE_PREFIX, &name].concat()
}

/// The local trial at `now` (unix seconds) for a check with no key, for the client's
/// `options` (JSON, as the engine gets them: `trial` days, the server, the organization, the
/// machine and app secrets the store is sealed with, `gracePolicy.clockTolerance`), from the
/// app's slot's stored text `stored` (`None`: nothing stored) or, when it holds nothing, the
/// shared slot's `shared` (adopted when it opens under this app's seal; else this check
/// starts the trial), with the install
/// `secret` (hex). JSON: `{"error": {code, detail, userMessage, field?, trial: {local, state,
/// startedAt, endsAt, daysLeft}}, "write": the text to store in the app's slot or null}`. The error is the one of
/// a check with no key (`invalid_input`, field `key`) or `clock_rollback`, as
/// `Licensing::check_trial_report` answers natively.
#[wasm_bindgen]
pub fn step(
    options: &str,
    secret: &str,
    stored: Option<String>,
    shared: Option<String>,
    now: f64,
) -> String {
    let client = Client::new(options);
    let seal = client.seal(secret);
    let d = GracePolicy::default();
    let policy = GracePolicy {
        clock_tolerance: client
            .clock_tolerance
            .filter(|s| s.is_finite() && (0.0..=1e12).contains(s))
            .map_or(d.clock_tolerance, |s| {
                Duration::from_micros((s * 1e6) as u64)
            }),
        ..d
    };
    let mut j = JsonOut::new();
    // license.js has checked the days (1 to 3650); the core's range again, for a direct caller.
    let days = match TrialDays::new(client.days as u32) {
        Ok(days) if client.days.fract() == 0.0 => days,
        Ok(_) => {
            error_json(
                &mut j,
                &Error::invalid("trial", "must be a whole number of days"),
            );
            return j.raw("}}").done();
        }
        Err(e) => {
            error_json(&mut j, &e);
            return j.raw("}}").done();
        }
    };
    let stored = seal.stored(
        stored.as_deref().map(str::as_bytes),
        shared.as_deref().map(str::as_bytes),
    );
    let answer = trial::local(stored.record, days, now as i64, &policy);
    let write = stored.write(&answer);
    let error = answer.error.unwrap_or_else(Error::no_remembered_key);
    error_json(&mut j, &error);
    answer.trial.write_json(j.key("trial")).raw("}");
    j.key("write");
    match write {
        // The sealed record is text (a header, decimal lines and hex): lossless.
        Some(record) => j.str(std::str::from_utf8(&seal.seal(&record)).unwrap_or_default()),
        None => j.null(),
    };
    j.raw("}").done()
}

/// `{"error":{code, detail, userMessage, field?, status?` of `err` (left open for the trial),
/// the members the engine's `error_json` writes for these errors.
fn error_json(j: &mut JsonOut, err: &Error) {
    j.raw("{\"error\":{").error_members(err);
    if let Some(status) = err.status() {
        j.key("status").int(i64::from(status));
    }
}

/// The module's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
