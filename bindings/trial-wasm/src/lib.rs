//! The local trial's add-on for the npm package (issue #54 item 4): the core's own trial step
//! (`polar_license::trial`: the record sealed with `TrialSeal`, the rule
//! `polar_license::trial::local`) for `wasm32-unknown-unknown` only (natively this crate is
//! empty).
//!
//! The trial is the core's machine, its slot's IO the steps of the package's one step protocol:
//! `license.js` drives it with the package's one drive loop (`pkg-template/drive.js`) and the
//! client's storage, as it drives the engine's machines; it orders nothing itself.
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
use polar_license::flow::{Given, Standalone, Want};
use polar_license::grace::GracePolicy;
use polar_license::json::{JsonIn, JsonOut, Num};
use polar_license::proto::{Api, Server};
use polar_license::strict::{self, Value};
use polar_license::trial::{LocalTrial, TrialDays, TrialSeal};
use polar_license_wasm_steps as steps;
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

/// A local trial's check for the client's `options` (JSON, as the engine gets them: `trial`
/// days, the server, the organization, the machine and app secrets the store is sealed with,
/// `gracePolicy.clockTolerance`) at `now` (unix seconds), with the install `secret` (hex): the
/// core's machine (`polar_license::trial::LocalTrial`), whose steps are the package's one step
/// protocol (`polar-license-wasm-steps`), driven by `pkg-template/drive.js` with the client's
/// storage: `{"lock": name}`, `{"load": name}` (the app's slot; while it holds nothing, the
/// slot every app of the organization shared before issue #62, whose record is adopted when
/// it is this app's), `{"clock": true}` (the client's clock, answered `{"clock": ms}`: read
/// between the load and the write), `{"write": [name, text], "compare"?: [name, null]}` (a first record,
/// stored only where still none is), `{"unlock": true}`, then `{"done": {"error": {code,
/// detail, userMessage, field?, trial?: {local, state, startedAt, endsAt, daysLeft}}}}`: the
/// error of a check with no key (`invalid_input`, field `key`) or `clock_rollback` with the
/// trial, as `Licensing::check_trial_report` answers natively, or `cache_error` with none.
#[wasm_bindgen]
pub struct Trial {
    machine: Result<LocalTrial, Error>,
}

#[wasm_bindgen]
impl Trial {
    /// The trial's machine (nothing done yet: [`Trial::start`]); it asks the client's clock
    /// itself.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, secret: &str) -> Trial {
        let client = Client::new(options);
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
        // license.js has checked the days (1 to 3650); the core's range again, for a direct
        // caller.
        let days = match TrialDays::new(client.days as u32) {
            Ok(days) if client.days.fract() == 0.0 => Ok(days),
            Ok(_) => Err(Error::invalid("trial", "must be a whole number of days")),
            Err(e) => Err(e),
        };
        let app_secret = client.app_secret.as_deref().map(str::as_bytes);
        Trial {
            machine: days
                .map(|days| LocalTrial::new(client.seal(secret), app_secret, days, None, policy)),
        }
    }

    /// What the trial wants first.
    pub fn start(&self) -> String {
        self.want()
    }

    /// What the loop gave (the step protocol's JSON: a storage answer): what the trial wants
    /// next. A given of another kind is one out of turn (the machine's `cache_error`).
    pub fn give(&mut self, given: &str) -> String {
        if let (Ok(m), Some((kind, v))) = (&mut self.machine, steps::given(given)) {
            let given = match (kind.as_str(), v.number()) {
                // The client's clock (`{"clock": ms}`), read once the slots are loaded.
                ("clock", Some(Num::Int(ms))) => Given::Clock(u64::try_from(ms).unwrap_or(0)),
                ("clock", Some(Num::Float(ms))) => Given::Clock(ms as u64),
                _ => steps::store_given(&kind, &v).unwrap_or(Given::Verified),
            };
            m.give(given);
        }
        self.want()
    }

    fn want(&self) -> String {
        let mut j = JsonOut::new();
        let answer = match &self.machine {
            Ok(m) => {
                let want = m.want();
                if steps::storage_want(&mut j, &want) {
                    return j.done();
                }
                if let Want::Clock = want {
                    return "{\"clock\":true}".to_string();
                }
                // Done (a trial wants nothing else): its answer, or why the store failed.
                m.answer()
            }
            Err(e) => Some(Err(e)),
        };
        match answer {
            Some(Ok(a)) => {
                let error = a.error.clone().unwrap_or_else(Error::no_remembered_key);
                error_json(&mut j, &error);
                a.trial.write_json(j.key("trial"));
            }
            Some(Err(e)) => error_json(&mut j, e),
            None => error_json(
                &mut j,
                &Error::Cache {
                    detail: "the trial ended without an answer".to_string(),
                },
            ),
        }
        steps::done(&j.raw("}}").done())
    }
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
