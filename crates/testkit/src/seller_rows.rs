//! The seller's rows (issue #54, "Done when" 2nd bullet): perpetual fallback and trials as one
//! table (`tests/vectors/seller-rows.json`), read here for the native faces that run it (the
//! Rust API in tests/seller_table.rs, the command line in crates/cli/tests/cli_seller_table.rs).
//! Each face plays a row's steps its own way and renders what it got with [`Verdict::render`];
//! the expected verdict is rendered the same way, so a cell passes when both strings match.
//! Every face writes its rows to `target/seller-table/FACE.tsv` ([`write_tsv`]), which
//! scripts/seller-table.sh prints as one table. The rows, the verdicts and the TSV's lines
//! ([`tsv`]) build for wasm32 too, where the Rust-on-wasm runner (tests/wasm_seller_table.rs)
//! prints the lines for scripts/test-wasm.sh to write (a wasm test has no files); the emulator
//! in process, the files and the threads are native only.

use polar_license::model::ValidatedLicenseKey;
use polar_license::perpetual::ReleaseDate;
use polar_license::portal::{KeyDevices, PortalError};
use polar_license::trial::TrialDays;
use polar_license::{Key, Verdict as Answer};
#[cfg(not(target_arch = "wasm32"))]
use polar_license_emulator::{Emulator, Fault, KeyUpdate, Seed, SeedSubscription, DEMO_KEY};
use serde_json::{json, Value};
use std::fmt::Write as _;
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

/// The table, as every face builds it in.
pub const TABLE: &str = include_str!("../../../tests/vectors/seller-rows.json");

/// What a face's runner prints before each TSV line when it cannot write the file itself (the
/// Rust-on-wasm runner): scripts/test-wasm.sh keeps the lines after it.
pub const TSV_MARKER: &str = "SELLER-TSV\t";

/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// The benefit a trial product's keys carry (the app names it with `trial_benefit`).
pub const TRIAL_BENEFIT: &str = "7f3c1e2a-9b4d-4c8e-a1f2-3d4e5f6a7b8c";
/// The benefit of a paid product's keys.
pub const PAID_BENEFIT: &str = "4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d";

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id (the TSV's and the script's).
    pub id: String,
    /// What it plays, in words.
    pub label: String,
    /// The row's `polar` object: what the emulator serves.
    pub polar: Value,
    /// The build's release day (perpetual fallback), when stated.
    pub released_day: Option<i64>,
    /// The local trial's days, when stated.
    pub trial_days: Option<u32>,
    /// Whether the app names [`TRIAL_BENEFIT`] as a trial benefit.
    pub trial_benefit: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The step whose verdict is the row's cell (`"cell": true`), else the last expected one.
    pub cell: Option<usize>,
}

/// One step of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Activate the demo key at this day.
    Activate(f64),
    /// Check the demo key at this day; must give the verdict when one is given.
    Check(f64, Option<Verdict>),
    /// Check with no key (the local trial) at this day.
    Trial(f64, Option<Verdict>),
    /// Polar revokes the key at this day.
    Revoke(f64),
    /// Polar becomes unreachable.
    Offline,
    /// Another machine activates the row's key with this label (set-up: Polar's public
    /// activate, not the face's call).
    Elsewhere(String),
    /// This machine activates the key: `activated`, or the refusal's reason code.
    TryActivate(Option<Verdict>),
    /// The customer signs in with the code the emulator "emailed" to the key's customer
    /// ([`DEVICES_EMAIL`]; read from `/__emulator/customer-session/codes`).
    SignIn,
    /// The key's devices listed through a customer session: [`devices_cell`] of the face's
    /// answer, or the failure's code (contract §2's `portal_error` names).
    Devices(Option<Verdict>),
    /// Frees (the public deactivate, by its id) the oldest device the session lists that is
    /// not this machine's.
    FreeOther,
    /// The key's devices listed through the seller's relay (`relay serve` in front of the
    /// row's Polar; no session): [`devices_cell`] of the face's answer, or the failure's code.
    DevicesRelay(Option<Verdict>),
    /// Key recovery ("I lost my key"): the signed-in customer's keys listed through the
    /// session, the one whose display form ([`shows_key`]) is the row's key activated here by
    /// its id: [`recovered_cell`] of the face's answer, `unlisted`, or the session's failure.
    Recover(Option<Verdict>),
    /// Polar's clock alone moves to this day (the app's stays where it is): a customer
    /// session the app still holds, past its hour at Polar.
    PolarClock(f64),
    /// The customer asks for a sign-in code (to [`DEVICES_EMAIL`]) this many times in a row,
    /// stopping at the first refusal: [`codes_cell`] of the face's answers.
    RequestCodes(u32, Option<Verdict>),
    /// The row's key is rotated at Polar (the emulator's `POST /__emulator/keys/{key}/rotate`,
    /// what Polar's rotate does: the record id, limits and activations kept, the old string
    /// `404` at once).
    Rotate,
    /// The row's key followed through the session to its new string (the core's follow
    /// machine): [`followed_cell`] of the face's answer, or the failure's code.
    FollowRotation(Option<Verdict>),
}

/// A `request_codes` step's cell: how many codes Polar took (`sent:N`), then the first
/// refusal's code, with for `rate_limited` the seconds to wait the face gave (`:wait=S`, `?`
/// none), e.g. `sent:6,rate_limited:wait=900`.
pub fn codes_cell(sent: u32, refused: Option<(&str, Option<u64>)>) -> String {
    let mut cell = format!("sent:{sent}");
    if let Some((code, wait)) = refused {
        let _ = write!(cell, ",{code}");
        if code == "rate_limited" {
            let _ = write!(
                cell,
                ":wait={}",
                wait.map_or("?".to_string(), |w| w.to_string())
            );
        }
    }
    cell
}

/// Whether Polar's display form of a key (`****-6ED415`: what the customer who lost the key
/// still sees in an old email or receipt) is `key`'s: its last six characters.
pub fn shows_key(display_key: &str, key: &str) -> bool {
    let tail: String = key
        .chars()
        .skip(key.chars().count().saturating_sub(6))
        .collect();
    display_key.len() > tail.len() && display_key.to_uppercase().ends_with(&tail.to_uppercase())
}

/// A recovery's cell: `recovered:` and `activated` or the activation's reason code.
pub fn recovered_cell(outcome: &str) -> String {
    format!("recovered:{outcome}")
}

/// The email of the customer who owns a devices row's key (the emulator's demo customer).
pub const DEVICES_EMAIL: &str = "jane.doe@gmail.com";
/// The demo customer's id (`polar_license_emulator::DEMO_CUSTOMER_ID`).
pub const DEVICES_CUSTOMER: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
/// The demo benefit (device management, `enable_customer_admin`, on).
pub const DEVICES_BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
/// A benefit no seed describes: device management off (a devices row with
/// `"customer_admin": false`).
pub const UNMANAGED_BENEFIT: &str = "0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b";

/// A device listing's cell: how many devices, and whether one is marked as this machine's.
pub fn devices_cell(count: usize, this_marked: bool) -> String {
    format!(
        "devices:{count},this:{}",
        if this_marked { "marked" } else { "unmarked" }
    )
}

/// A followed rotation's cell: `followed:` and `licensed` or Polar's reason code for the new
/// string, then whether its activation is the one this machine took before the rotation
/// (`activation:kept`, else `activation:changed`).
pub fn followed_cell(outcome: &str, kept: bool) -> String {
    format!(
        "followed:{outcome},activation:{}",
        if kept { "kept" } else { "changed" }
    )
}

/// The Rust faces' (native and wasm) `devices`/`devices_relay` cell from the core's listing:
/// [`devices_cell`], or the failure's code.
pub fn listed_cell(listed: Result<KeyDevices, PortalError>) -> String {
    match listed {
        Ok(d) => devices_cell(d.devices.len(), d.devices.iter().any(|d| d.this_machine)),
        Err(e) => e.code().to_string(),
    }
}

/// The Rust faces' (native and wasm) cell of an activation: `activated`, or the denial's or
/// the failure's reason code.
pub fn activated_cell<T>(answer: &Result<Answer<T>, polar_license::Error>) -> String {
    match answer {
        Ok(Answer::Accepted(_)) => "activated".to_string(),
        Ok(Answer::Denied(d)) => d.reason.code().to_string(),
        Err(e) => e.reason().code().to_string(),
    }
}

/// The Rust faces' (native and wasm) `follow_rotation` cell from the core's answer:
/// [`followed_cell`] (kept: the new string's activation is `mine`, the one this machine took),
/// or the failure's code.
pub fn followed_answer_cell(
    followed: Result<(Key, Answer<ValidatedLicenseKey>), PortalError>,
    mine: Option<&str>,
) -> String {
    match followed {
        Ok((_, Answer::Accepted(v))) => followed_cell(
            "licensed",
            mine.is_some() && v.activation.map(|a| a.id).as_deref() == mine,
        ),
        Ok((_, Answer::Denied(d))) => followed_cell(d.reason.code(), false),
        Err(e) => e.code().to_string(),
    }
}

/// A refused code request as [`codes_cell`] takes it: the code, and for `rate_limited` the
/// wait the face gave.
pub fn refusal(e: &PortalError) -> (&'static str, Option<u64>) {
    let wait = match e {
        PortalError::RateLimited(wait) => *wait,
        _ => None,
    };
    (e.code(), wait)
}

/// A trial as the faces report it, its end in days from the row's start.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialCell {
    /// The app's local trial (no key), or a key from a trial product.
    pub local: bool,
    /// `active`, `ended`, `refused`.
    pub state: String,
    /// Whole days left.
    pub days_left: u64,
    /// When it ends (seconds from the row's start), when known.
    pub ends: Option<i64>,
}

/// What a check answered, in the faces' shared vocabulary; times in seconds from the row's
/// start. `None` in `fallback`/`trial` means the face gave no such field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// `licensed`, `trial` (a local trial running) or the reason code.
    pub verdict: String,
    /// `online` or `cache` for a licensed verdict.
    pub source: Option<String>,
    /// The perpetual answer: fallback or not, and the paid-through time when known.
    pub fallback: Option<(bool, Option<i64>)>,
    /// The trial answer: `Some(None)` is "not a trial".
    pub trial: Option<Option<TrialCell>>,
}

/// `+Nd`, or `+Nd+Mm` when not on a whole day: a time (seconds from the start) rounded to
/// the minute, so the command line's few seconds of its own clock do not count.
fn at(seconds: i64) -> String {
    let minutes = (seconds as f64 / 60.0).round() as i64;
    let (d, m) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    if m == 0 {
        format!("{d:+}d")
    } else {
        format!("{d:+}d+{m}m")
    }
}

impl Verdict {
    /// A verdict that is one word (a devices step's cell, an activation's `activated` or its
    /// reason code): no perpetual or trial part.
    pub fn word(word: impl Into<String>) -> Verdict {
        Verdict {
            verdict: word.into(),
            ..Verdict::default()
        }
    }

    /// A verdict as a face stated it, in the row's terms: the perpetual answer counts only when
    /// the row states a release day (none given: no fallback), the trial answer only when it
    /// states a trial (local or by benefit). `perpetual`'s paid-through time and `trial`'s end
    /// are in seconds from the row's start.
    pub fn stated(
        row: &Row,
        (verdict, source): (String, Option<String>),
        perpetual: Option<(bool, Option<i64>)>,
        trial: Option<TrialCell>,
    ) -> Verdict {
        Verdict {
            verdict,
            source,
            fallback: row.released_day.map(|_| perpetual.unwrap_or((false, None))),
            trial: (row.trial_days.is_some() || row.trial_benefit).then_some(trial),
        }
    }

    /// A report of the Rust API (the native client and the Rust-on-wasm one) in the table's
    /// vocabulary, times from `start`.
    pub fn of_report(row: &Row, report: &polar_license::CheckReport, start: i64) -> Verdict {
        use polar_license::grace::CheckOutcome;
        let named = match &report.outcome {
            CheckOutcome::Licensed { source, .. } => {
                ("licensed".to_string(), Some(source.as_str().to_string()))
            }
            _ if report
                .trial
                .as_ref()
                .is_some_and(|t| t.local && t.is_active()) =>
            {
                ("trial".to_string(), None)
            }
            other => (
                other.reason().map_or("none", |r| r.code()).to_string(),
                None,
            ),
        };
        let perpetual = report
            .perpetual
            .map(|p| (p.fallback, p.paid_through.map(|t| t - start)));
        let trial = report.trial.as_ref().map(|t| TrialCell {
            local: t.local,
            state: t.state.as_str().to_string(),
            days_left: u64::from(t.days_left),
            ends: t.ends_at.map(|e| e - start),
        });
        Verdict::stated(row, named, perpetual, trial)
    }

    /// The one line a cell shows and compares, e.g. `licensed online · fallback to +30d`.
    pub fn render(&self) -> String {
        let mut s = self.verdict.clone();
        if let Some(source) = &self.source {
            let _ = write!(s, " {source}");
        }
        match self.fallback {
            Some((true, paid)) => {
                let _ = write!(s, " · fallback to {}", paid.map_or("?".into(), at));
            }
            Some((false, Some(paid))) => {
                let _ = write!(s, " · no fallback, paid to {}", at(paid));
            }
            Some((false, None)) => s.push_str(" · no fallback"),
            None => {}
        }
        match &self.trial {
            Some(Some(t)) => {
                let _ = write!(
                    s,
                    " · trial {} {} {}d left, ends {}",
                    if t.local { "local" } else { "key" },
                    t.state,
                    t.days_left,
                    t.ends.map_or("?".into(), at)
                );
            }
            Some(None) => s.push_str(" · no trial"),
            None => {}
        }
        s
    }
}

fn day(v: &Value) -> Option<i64> {
    v.as_f64().map(|d| (d * DAY as f64).round() as i64)
}

fn expect(v: &Value) -> Option<Verdict> {
    let e = v.get("expect")?;
    let verdict = e["verdict"].as_str().unwrap_or_default().to_string();
    let fallback = e
        .get("fallback")
        .and_then(Value::as_bool)
        .map(|f| (f, day(&e["paid_through_day"])));
    let trial = e.get("trial").map(|t| {
        (!t.is_null()).then(|| TrialCell {
            local: t["local"].as_bool().unwrap_or_default(),
            state: t["state"].as_str().unwrap_or_default().to_string(),
            days_left: t["days_left"].as_u64().unwrap_or_default(),
            ends: day(&t["ends_day"]),
        })
    });
    Some(Verdict {
        verdict,
        source: e["source"].as_str().map(str::to_string),
        fallback,
        trial,
    })
}

/// The table's rows, in order.
pub fn rows() -> Vec<Row> {
    let table: Value = serde_json::from_str(TABLE).expect("tests/vectors/seller-rows.json");
    let rows = table["rows"].as_array().expect("rows");
    // (The values rows, `"world": "values"`, are crate::values_rows's.)
    rows.iter()
        .filter(|r| r.get("world").is_none())
        .map(|r| {
            let steps = r["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| {
                    let at = s["day"].as_f64().unwrap_or_default();
                    match s["do"].as_str() {
                        Some("activate") => Step::Activate(at),
                        Some("check") => Step::Check(at, expect(s)),
                        Some("trial") => Step::Trial(at, expect(s)),
                        Some("revoke") => Step::Revoke(at),
                        Some("offline") => Step::Offline,
                        Some("elsewhere") => {
                            Step::Elsewhere(s["label"].as_str().expect("label").to_string())
                        }
                        Some("try_activate") => Step::TryActivate(expect(s)),
                        Some("sign_in") => Step::SignIn,
                        Some("devices") => Step::Devices(expect(s)),
                        Some("free_other") => Step::FreeOther,
                        Some("devices_relay") => Step::DevicesRelay(expect(s)),
                        Some("recover") => Step::Recover(expect(s)),
                        Some("polar_clock") => Step::PolarClock(at),
                        Some("request_codes") => Step::RequestCodes(
                            s["times"].as_u64().expect("times") as u32,
                            expect(s),
                        ),
                        Some("rotate") => Step::Rotate,
                        Some("follow_rotation") => Step::FollowRotation(expect(s)),
                        other => panic!("unknown step {other:?} in {}", r["id"]),
                    }
                })
                .collect();
            let app = &r["app"];
            Row {
                id: r["id"].as_str().expect("id").to_string(),
                label: r["label"].as_str().expect("label").to_string(),
                polar: r["polar"].clone(),
                released_day: app["released_day"].as_i64(),
                trial_days: app["trial_days"].as_u64().map(|d| d as u32),
                trial_benefit: app["trial_benefit"].as_bool().unwrap_or_default(),
                steps,
                cell: r["steps"].as_array().and_then(|s| {
                    s.iter()
                        .position(|s| s["cell"].as_bool().unwrap_or_default())
                }),
            }
        })
        .collect()
}

/// The seat holder's id of [`Row::with_holder_and_order`]'s key.
pub const MEMBER_ID: &str = "6b1c9a4e-2f3d-4b5a-8c7d-9e0f1a2b3c4d";

impl Row {
    /// A row of the table's shape, with no steps, whose Polar answers in `api` for a key with
    /// a seat holder ([`MEMBER_ID`], `seat@acme.io`, `acme-42`), a subscription cancelled at its
    /// period end (day 30) and a paid order: what the faces' 2027-01 tests read back.
    pub fn with_holder_and_order(api: &str) -> Row {
        Row {
            id: format!("versions-{api}"),
            label: format!("Polar answering in {api}"),
            polar: json!({
                "api": api,
                "member": { "id": MEMBER_ID, "email": "seat@acme.io", "external_id": "acme-42" },
                "subscription": {
                    "status": "active",
                    "period_end_day": 30,
                    "cancel_at_period_end": true,
                    "ends_day": 30
                },
                "order": { "status": "paid" }
            }),
            released_day: None,
            trial_days: None,
            trial_benefit: false,
            steps: Vec::new(),
            cell: None,
        }
    }
}

impl Row {
    /// The release date the app states (unix seconds), for a row starting at `start`.
    pub fn released(&self, start: i64) -> Option<i64> {
        self.released_day.map(|d| start + d * DAY)
    }

    /// A face's app set up as the row states it, for a row starting at `start`: the build's
    /// release date, the local trial's days and the trial benefit, each given to the face's
    /// own setter (`released`, `trial`, `trial_benefit`); what the row does not state is left
    /// unset.
    pub fn set_up_with<B>(
        &self,
        start: i64,
        mut app: B,
        released: impl FnOnce(B, ReleaseDate) -> B,
        trial: impl FnOnce(B, TrialDays) -> B,
        trial_benefit: impl FnOnce(B, &str) -> B,
    ) -> B {
        if let Some(at) = self.released(start) {
            app = released(app, ReleaseDate::from_unix(at));
        }
        if let Some(days) = self.trial_days {
            app = trial(app, TrialDays::new(days).expect("trial days"));
        }
        if self.trial_benefit {
            app = trial_benefit(app, TRIAL_BENEFIT);
        }
        app
    }

    /// [`Row::set_up_with`] for the Rust API's builders ([`RowApp`]).
    pub fn set_up<B: RowApp>(&self, start: i64, app: B) -> B {
        self.set_up_with(start, app, B::released, B::trial, B::trial_benefit)
    }

    /// The emulator's seed-key fields of the row's key (`POST /__emulator/keys`), for a row
    /// starting at `start`: its benefit, its 2027-01 subscription, member and order, and its
    /// `expires_at`. For the faces that share one running emulator (a fresh key each row)
    /// rather than start one.
    pub fn seed_key(&self, start: i64) -> Value {
        let p = &self.polar;
        // Activation slots as the demo key has them, unless the row says.
        let mut fields = json!({ "limit_activations": self.limit_activations() });
        if self.devices() {
            fields["customer_id"] = json!(DEVICES_CUSTOMER);
            fields["customer_email"] = json!(DEVICES_EMAIL);
            fields["benefit_id"] = json!(if self.customer_admin() {
                DEVICES_BENEFIT
            } else {
                UNMANAGED_BENEFIT
            });
        }
        match p["benefit"].as_str() {
            Some("trial") => fields["benefit_id"] = json!(TRIAL_BENEFIT),
            Some("paid") => fields["benefit_id"] = json!(PAID_BENEFIT),
            _ => {}
        }
        if let Some(sub) = p.get("subscription") {
            let time = |k: &str| day(&sub[k]).map(|d| crate::rfc3339(start + d));
            fields["subscription"] = json!({
                "status": sub["status"].as_str(),
                "current_period_end": time("period_end_day"),
                "cancel_at_period_end": sub["cancel_at_period_end"].as_bool().unwrap_or_default(),
                "ends_at": time("ends_day"),
            });
        }
        if let Some(expires) = day(&p["expires_day"]) {
            fields["expires_at"] = json!(crate::rfc3339(start + expires));
        }
        for extra in ["member", "order"] {
            if let Some(v) = p.get(extra) {
                fields[extra] = v.clone();
            }
        }
        fields
    }

    /// The key's activation slots: the row's `limit_activations`, else the demo key's 3.
    pub fn limit_activations(&self) -> i64 {
        self.polar["limit_activations"].as_i64().unwrap_or(3)
    }

    /// Whether the key's benefit lets customers manage their devices (`enable_customer_admin`):
    /// the row's `customer_admin`, else on.
    pub fn customer_admin(&self) -> bool {
        self.polar["customer_admin"].as_bool().unwrap_or(true)
    }

    /// Whether the row is about the key's devices (a step signs in, lists or frees).
    pub fn devices(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s,
                Step::Elsewhere(_)
                    | Step::SignIn
                    | Step::Devices(_)
                    | Step::FreeOther
                    | Step::DevicesRelay(_)
                    | Step::Recover(_)
                    | Step::RequestCodes(..)
            )
        })
    }

    /// Whether Polar's per-address rate limits are on for the row (its `rate_limit`): the
    /// emulator's `--rate-limit`, or `POST /__emulator/rate-limit` on a shared one.
    pub fn rate_limit(&self) -> bool {
        self.polar["rate_limit"].as_bool().unwrap_or_default()
    }

    /// Whether a step lists through the seller's relay: the face starts one in front of the
    /// row's Polar.
    pub fn relay(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::DevicesRelay(_)))
    }

    /// The API version the row's Polar answers in (`Polar-Version`).
    pub fn api(&self) -> &str {
        self.polar["api"].as_str().unwrap_or("2026-10")
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Row {
    /// The emulator this row runs against, for a row starting at `start` (unix seconds).
    pub fn emulator(&self, start: i64) -> Emulator {
        let p = &self.polar;
        let mut seed = Seed::demo();
        seed.license_keys[0].limit_activations = Some(self.limit_activations());
        if !self.customer_admin() {
            seed.license_keys[0].benefit_id = Some(UNMANAGED_BENEFIT.into());
        }
        match p["benefit"].as_str() {
            Some("trial") => seed.license_keys[0].benefit_id = Some(TRIAL_BENEFIT.into()),
            Some("paid") => seed.license_keys[0].benefit_id = Some(PAID_BENEFIT.into()),
            _ => {}
        }
        if let Some(sub) = p.get("subscription") {
            let time = |k: &str| day(&sub[k]).map(|d| crate::rfc3339(start + d));
            seed.license_keys[0].subscription = Some(SeedSubscription {
                status: sub["status"].as_str().map(str::to_string),
                current_period_end: time("period_end_day"),
                cancel_at_period_end: sub["cancel_at_period_end"].as_bool().unwrap_or_default(),
                ends_at: time("ends_day"),
                ..SeedSubscription::default()
            });
        }
        // 2027-01's seat holder and order, when the row's `polar` names them (the emulator's
        // seed shapes: `{ "id"?, "email"?, "external_id"? }`, `{ "status"?, "paid"?, … }`).
        if let Some(member) = p.get("member") {
            seed.license_keys[0].member =
                Some(serde_json::from_value(member.clone()).expect("polar.member"));
        }
        if let Some(order) = p.get("order") {
            seed.license_keys[0].order =
                Some(serde_json::from_value(order.clone()).expect("polar.order"));
        }
        let polar = crate::emulator_answering(seed, self.api());
        if self.rate_limit() {
            polar.set_rate_limit(true);
        }
        if let Some(expires) = day(&p["expires_day"]) {
            expire_at(&polar, start + expires);
        }
        polar
    }
}

/// Polar revokes the demo key.
#[cfg(not(target_arch = "wasm32"))]
pub fn revoke(polar: &Emulator) {
    assert!(polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
}

/// Polar's demo key expires at `at` (unix seconds) from now on.
#[cfg(not(target_arch = "wasm32"))]
pub fn expire_at(polar: &Emulator, at: i64) {
    assert!(polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            expires_at: Some(Some(crate::rfc3339(at))),
            ..KeyUpdate::default()
        }
    ));
}

/// Seconds in a step's day.
pub fn seconds(day: f64) -> i64 {
    (day * DAY as f64).round() as i64
}

impl Step {
    /// The day the step happens at (the clocks move there first); none for [`Step::Offline`].
    pub fn day(&self) -> Option<f64> {
        match self {
            Step::Activate(day) | Step::Check(day, _) | Step::Trial(day, _) | Step::Revoke(day) => {
                Some(*day)
            }
            Step::Offline
            | Step::Elsewhere(_)
            | Step::TryActivate(_)
            | Step::SignIn
            | Step::Devices(_)
            | Step::FreeOther
            | Step::DevicesRelay(_)
            | Step::Recover(_)
            | Step::PolarClock(_)
            | Step::RequestCodes(..)
            | Step::Rotate
            | Step::FollowRotation(_) => None,
        }
    }
}

/// The Rust API's app builders, as [`Row::set_up`] sets them up: the native `LicensingBuilder`
/// and, on wasm32, the `AsyncLicensingBuilder` (the same setters).
pub trait RowApp: Sized {
    /// The build's release date (perpetual fallback).
    fn released(self, date: ReleaseDate) -> Self;
    /// A local trial of these days.
    fn trial(self, days: TrialDays) -> Self;
    /// A benefit whose keys are trials.
    fn trial_benefit(self, benefit_id: &str) -> Self;
}

macro_rules! row_app {
    ($builder:ty) => {
        impl RowApp for $builder {
            fn released(self, date: ReleaseDate) -> Self {
                <$builder>::released(self, date)
            }
            fn trial(self, days: TrialDays) -> Self {
                <$builder>::trial(self, days)
            }
            fn trial_benefit(self, benefit_id: &str) -> Self {
                <$builder>::trial_benefit(self, benefit_id)
            }
        }
    };
}
#[cfg(not(target_arch = "wasm32"))]
row_app!(polar_license::LicensingBuilder);
#[cfg(target_arch = "wasm32")]
row_app!(polar_license::wasm::AsyncLicensingBuilder);

/// A native face's row in motion: the emulator it runs against (its own, [`Row::emulator`])
/// and the app's fake clock, both from `start` (now) and moved together.
#[cfg(not(target_arch = "wasm32"))]
pub struct RowPolar {
    /// When the row starts (unix seconds).
    pub start: i64,
    /// The row's Polar.
    pub polar: Emulator,
    /// The app's clock.
    pub clock: crate::FakeClock,
}

#[cfg(not(target_arch = "wasm32"))]
impl RowPolar {
    /// The row's Polar and clock, starting now.
    pub fn new(row: &Row) -> RowPolar {
        let start = crate::unix_now();
        RowPolar {
            start,
            polar: row.emulator(start),
            clock: crate::FakeClock::new(start),
        }
    }

    /// Plays what of `step` is Polar's and the clocks': both clocks move to the step's day,
    /// Polar revokes the key ([`Step::Revoke`]) or becomes unreachable ([`Step::Offline`]).
    /// The face plays the rest (activate, check) through its own calls.
    pub fn play(&self, step: &Step) {
        if let Some(day) = step.day() {
            self.polar.set_clock_offset(seconds(day));
            self.clock.set(self.start + seconds(day));
        }
        match step {
            Step::Revoke(_) => revoke(&self.polar),
            Step::Offline => self.polar.set_fault(Some(Fault::CloseImmediately)),
            Step::Elsewhere(label) => {
                elsewhere(&self.polar, DEMO_KEY, label);
            }
            Step::PolarClock(day) => self.polar.set_clock_offset(seconds(*day)),
            Step::Rotate => {
                assert!(self.polar.rotate_key(DEMO_KEY).is_some(), "the key rotated");
            }
            _ => {}
        }
    }

    /// The code the emulator last "emailed" to [`DEVICES_EMAIL`].
    pub fn emailed_code(&self) -> String {
        emailed_code(&self.polar.customer_session_codes())
    }
}

/// The newest code in the emulator's `/__emulator/customer-session/codes` list (`codes`) sent
/// to [`DEVICES_EMAIL`].
pub fn emailed_code(codes: &[Value]) -> String {
    codes
        .iter()
        .rev()
        .find(|c| c["email"] == DEVICES_EMAIL)
        .and_then(|c| c["code"].as_str())
        .expect("a code emailed")
        .to_string()
}

/// Another machine activates `key` at the emulator `polar` as `label` (Polar's public
/// activate): the activation's id.
#[cfg(not(target_arch = "wasm32"))]
pub fn elsewhere(polar: &Emulator, key: &str, label: &str) -> String {
    let body = json!({
        "key": key,
        "organization_id": polar.organization_id(),
        "label": label,
    });
    let mut resp = crate::http::agent(std::time::Duration::from_secs(10))
        .post(&format!(
            "{}/v1/customer-portal/license-keys/activate",
            polar.url()
        ))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("an answer");
    assert_eq!(resp.status().as_u16(), 200, "elsewhere activates");
    let v: Value =
        serde_json::from_str(&resp.body_mut().read_to_string().expect("body")).expect("JSON");
    v["id"].as_str().expect("an id").to_string()
}

/// What a face found for a row: the row's cell (its last expected check) and every mismatch.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The row's id.
    pub id: String,
    /// The last expected verdict, rendered.
    pub expected: String,
    /// What the face answered there, rendered.
    pub got: String,
    /// Each step whose answer was not the expected one.
    pub failures: Vec<String>,
    /// The row's cell step, when it names one.
    pub cell: Option<usize>,
}

impl Found {
    /// A face's findings for `row`, none yet.
    pub fn new(row: &Row) -> Found {
        Found {
            id: row.id.clone(),
            cell: row.cell,
            ..Found::default()
        }
    }

    /// Compares a check's answer with its expectation (none: nothing to compare); the row's
    /// cell step (else the last expected one) is what the TSV shows.
    pub fn compare(&mut self, step: usize, want: Option<&Verdict>, got: &Verdict) {
        let Some(want) = want else { return };
        let (w, g) = (want.render(), got.render());
        if w != g {
            self.failures
                .push(format!("step {step}: expected `{w}`, got `{g}`"));
        }
        if self.cell.is_none_or(|c| c == step) {
            self.expected = w;
            self.got = g;
        }
    }
}

/// Where the rows go: `$POLAR_SELLER_TABLE_DIR`, else target/seller-table of the workspace.
#[cfg(not(target_arch = "wasm32"))]
pub fn table_dir() -> PathBuf {
    match std::env::var_os("POLAR_SELLER_TABLE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/seller-table"),
    }
}

/// `face`'s rows as a TSV (columns: face, row, expected, got, result, a header line first),
/// and every failure, one a line (empty when every row passed).
pub fn tsv(face: &str, found: &[Found]) -> (String, String) {
    let mut tsv = String::from("face\trow\texpected\tgot\tresult\n");
    let mut failures = String::new();
    for f in found {
        let pass = f.failures.is_empty() && !f.expected.is_empty();
        let _ = writeln!(
            tsv,
            "{face}\t{}\t{}\t{}\t{}",
            f.id,
            f.expected,
            f.got,
            if pass { "pass" } else { "FAIL" }
        );
        for why in &f.failures {
            let _ = writeln!(failures, "{}: {why}", f.id);
        }
        if f.expected.is_empty() {
            let _ = writeln!(failures, "{}: no expected check", f.id);
        }
    }
    (tsv, failures)
}

/// Writes `face`'s rows to `target/seller-table/FACE.tsv` ([`tsv`]) and returns every failure,
/// one a line.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_tsv(face: &str, found: &[Found]) -> String {
    let (tsv, failures) = tsv(face, found);
    let dir = table_dir();
    std::fs::create_dir_all(&dir).expect("target/seller-table");
    std::fs::write(dir.join(format!("{face}.tsv")), &tsv).expect("write the rows");
    print!("{tsv}");
    failures
}

/// Adds `face`'s rows `found` to its `target/seller-table/FACE.tsv`: the file's rows of other
/// ids kept as they were, in their order, those of `found` replacing any of the same id
/// (appended). Returns every failure of `found`, one a line. For a run that plays only some of
/// the face's cells ([`workers_only`]) after its full run wrote the rest.
#[cfg(not(target_arch = "wasm32"))]
pub fn merge_tsv(face: &str, found: &[Found]) -> String {
    let (tsv, failures) = tsv(face, found);
    let dir = table_dir();
    std::fs::create_dir_all(&dir).expect("target/seller-table");
    let file = dir.join(format!("{face}.tsv"));
    let ours: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    let mut merged = String::from("face\trow\texpected\tgot\tresult\n");
    for line in old.lines().skip(1) {
        if !ours.contains(&line.split('\t').nth(1).unwrap_or_default()) {
            merged.push_str(line);
            merged.push('\n');
        }
    }
    for line in tsv.lines().skip(1) {
        merged.push_str(line);
        merged.push('\n');
    }
    std::fs::write(&file, merged).expect("write the rows");
    print!("{tsv}");
    failures
}

/// Whether this run plays only the values rows' cells on the Workers relay
/// (`POLAR_SELLER_ONLY=workers`): scripts/seller-workers.sh runs a face's runner so once the
/// installed npm package is there, after the face's own stage played and wrote the rest.
#[cfg(not(target_arch = "wasm32"))]
pub fn workers_only() -> bool {
    std::env::var_os("POLAR_SELLER_ONLY").is_some_and(|v| v == "workers")
}

/// Plays every row of the table on `face` (each row on a thread of its own, with `run_row`),
/// writes the face's TSV and fails the test on any failed row (or a table that lost rows).
#[cfg(not(target_arch = "wasm32"))]
pub fn play(face: &str, run_row: impl Fn(&Row) -> Found + Sync) {
    play_with_values(face, run_row, Vec::new);
}

/// [`play`], with the values rows (issue #68, [`crate::values_rows::play_values`]) that
/// `values` plays meanwhile written with the others; with [`workers_only`], `values` alone
/// (their Workers cells), added to the face's TSV ([`merge_tsv`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn play_with_values(
    face: &str,
    run_row: impl Fn(&Row) -> Found + Sync,
    values: impl FnOnce() -> Vec<Found> + Send,
) {
    if workers_only() {
        // The Workers cells only ([`crate::values_rows::values_hosts`]), added to the TSV.
        let found = values();
        let failures = merge_tsv(face, &found);
        assert!(!found.is_empty(), "the table lost its values rows");
        assert!(
            failures.is_empty(),
            "{face}: seller table failures:\n{failures}"
        );
        return;
    }
    let found = std::thread::scope(|s| {
        let values = s.spawn(values);
        let mut found = crate::each_on_a_thread(&rows(), run_row);
        found.extend(values.join().expect("the values rows"));
        found
    });
    let failures = write_tsv(face, &found);
    assert!(found.len() >= 11, "the table lost rows");
    assert!(
        failures.is_empty(),
        "{face}: seller table failures:\n{failures}"
    );
}
