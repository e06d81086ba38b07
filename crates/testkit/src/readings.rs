//! One [`Case`] read by the core's two paths, natively: serde's typed model
//! (`proto::parse_validate_for`, `parse_activate_for`, `parse_deactivate`: what the Rust, C
//! and command-line faces run) and the schema table (`answers::validate_answer`,
//! `activate_answer`, `deactivate_answer`: what the npm engine runs), each reduced to a
//! [`Reading`] that must be equal (`tests/one_answer.rs`, `crates/fuzz-bodies/src/targets/one_answer.rs`).
//!
//! A grant is compared as each path writes it: the license and the activation of the answer
//! (serde's serialization of the typed model against `SchemaLicense::write_license` and
//! `write_activation`), the license a record keeps (`LicenseData::write` of each), the facts
//! the rules read, and the sealed record `testing::validated` or `testing::activated` makes
//! of the verdict (`cache::encode_as`): byte for byte. A denial or an error is compared on its
//! reason code, HTTP status, `retry-after`, remaining usages and detail, and on the record it
//! leaves. Natively only: in wasm32 the schema path writes floats as the JS host does (`1`
//! for `1.0`), so there the npm engine's test compares numbers by value.

use crate::answers::{Case, ACTIVATION, KEY, NOW, ORG};
use polar_license::answers;
use polar_license::cache::{self, MacKey};
use polar_license::grace::{ActivationData, LicenseData, Record};
use polar_license::json::JsonOut;
use polar_license::proto::{self, Expect, HttpResponse, Operation, Stamp};
use polar_license::testing::{self, Opened};
use polar_license::{ActivateRequest, Error, GracePolicy, Key, ValidateRequest, Verdict};
use std::fmt;

/// What one path made of a case, reduced to what every face must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A success (for a deactivate, every text is empty).
    Granted {
        /// The answer's license as the path writes it (the caller's key in it).
        license: String,
        /// The answer's activation as the path writes it, or `null`.
        activation: String,
        /// The license as a record keeps it (`LicenseData::write`).
        kept: String,
        /// What the rules read of it: expiry, display key, benefit, usages left, and for an
        /// activation its id and label.
        facts: String,
        /// The sealed record the verdict leaves, if any.
        record: Option<String>,
    },
    /// Polar's denial.
    Denied {
        /// The reason code.
        code: &'static str,
        /// The HTTP status.
        status: u16,
        /// Polar's detail, as sent.
        detail: String,
        /// Usages left, for `usage_exhausted`.
        remaining_usages: Option<i64>,
        /// The sealed record the denial leaves, if any.
        record: Option<String>,
    },
    /// An error (no verdict from Polar).
    Failed {
        /// The reason code.
        code: &'static str,
        /// `Error::status()`.
        status: Option<u16>,
        /// A rate limit's `retry-after`, in seconds.
        retry_after: Option<u64>,
        /// The detail; for a malformed 200 that the strict reader read, only its first part
        /// (`malformed validate response`): each path names the fault in its own words.
        detail: String,
        /// The sealed record the error leaves, if any (a 429 blocks).
        record: Option<String>,
    },
}

impl Reading {
    /// `grant`, `denial` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reading::Granted { .. } => "grant",
            Reading::Denied { .. } => "denial",
            Reading::Failed { .. } => "error",
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:#?}")
    }
}

/// A disagreement: the case and both readings.
#[derive(Debug, Clone)]
pub struct Disagreement {
    /// The case.
    pub case: Case,
    /// Serde's typed model.
    pub typed: Reading,
    /// The schema table.
    pub schema: Reading,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DISAGREEMENT on {}\n typed (serde): {}\n schema (npm engine): {}",
            self.case, self.typed, self.schema
        )
    }
}

/// The key records are sealed with (any fixed key: both paths seal with the same).
fn mac() -> MacKey {
    MacKey::derive(KEY, ORG, &[7; 32], None)
}

fn sealed<L: LicenseData>(record: Option<Record<L>>) -> Option<String> {
    record.map(|r| String::from_utf8_lossy(&cache::encode_as(&r, &mac())).into_owned())
}

fn written(write: impl FnOnce(&mut JsonOut)) -> String {
    let mut out = JsonOut::new();
    write(&mut out);
    out.done()
}

fn facts<L: LicenseData>(l: &L) -> String {
    format!(
        "expires_at {:?}, display_key {:?}, benefit_id {:?}, remaining_usage {:?}",
        l.expires_at(),
        l.display_key(),
        l.benefit_id(),
        l.remaining_usage()
    )
}

/// A refusal or an error, reduced (the same way for both paths).
fn not_granted<T>(
    resp: &HttpResponse,
    verdict: Result<Verdict<T>, Error>,
    record: Option<String>,
) -> Result<T, Reading> {
    match verdict {
        Ok(Verdict::Accepted(v)) => Ok(v),
        Ok(Verdict::Denied(d)) => Err(Reading::Denied {
            code: d.reason.code(),
            status: d.status,
            detail: d.detail,
            remaining_usages: d.remaining_usages,
            record,
        }),
        Err(e) => {
            let mut detail = e.detail();
            // The strict reader's refusals are worded once, for both; what each typed reading
            // found wrong in a body it read is worded its own way.
            let read = polar_license::strict::parse(&resp.body).is_ok();
            if read && resp.status == 200 && detail.starts_with("malformed ") {
                detail = detail.split(':').next().unwrap_or_default().to_string();
            }
            Err(Reading::Failed {
                code: e.reason().code(),
                status: e.status(),
                retry_after: match e {
                    Error::RateLimited { retry_after } => retry_after,
                    _ => None,
                },
                detail,
                record,
            })
        }
    }
}

/// What reading a validate or activate answer needs: the answer, its date, and the request
/// asked (with the key, for an activate).
struct At<'a, Q> {
    resp: &'a HttpResponse,
    date: Stamp,
    req: Q,
}

impl<Q: Copy> At<'_, Q> {
    /// One reader's reading of the answer, `verdict`: the record the session writes for it
    /// (`record`, given the verdict and its date) and, for a grant, `granted`'s reading of it
    /// with that record sealed.
    fn read<V: Clone, L: LicenseData>(
        &self,
        verdict: Result<Verdict<V>, Error>,
        record: impl FnOnce(Q, &mut Result<(Verdict<V>, Stamp), Error>) -> Option<Record<L>>,
        granted: impl FnOnce(&V, Option<String>) -> Reading,
    ) -> Reading {
        let mut online = verdict.clone().map(|v| (v, self.date));
        let record = record(self.req, &mut online);
        match not_granted(self.resp, verdict, sealed(record.clone())) {
            Ok(v) => granted(&v, sealed(record)),
            Err(r) => r,
        }
    }
}

/// The record the session writes for a validate answered `online` (no record before).
fn validated_record<L: LicenseData>(
    req: &ValidateRequest,
    online: &mut Result<(Verdict<L>, Stamp), Error>,
) -> Option<Record<L>> {
    let policy = GracePolicy::default();
    testing::validated(&Opened::default(), ORG, req, None, NOW, &policy, online)
}

/// The record the session writes for an activation of `key` answered `online` (no record
/// before).
fn activated_record<A: ActivationData>(
    (req, key): (&ActivateRequest, &Key),
    online: &mut Result<(Verdict<A>, Stamp), Error>,
) -> Option<Record<A::License>> {
    let policy = GracePolicy::default();
    testing::activated(&Opened::default(), ORG, req, key, NOW, &policy, online)
}

/// An activation's facts: its license's, its id and its label.
fn activation_facts<A: ActivationData>(read: &A) -> String {
    format!(
        "{}, activation {:?} {:?}",
        facts(&read.validated()),
        read.activation_id(),
        read.label()
    )
}

/// The case read by serde's typed model and by the schema table: `(typed, schema)`.
pub fn read_both(case: &Case) -> (Reading, Reading) {
    let resp = case.response();
    let date = resp.stamp();
    match case.op {
        Operation::Validate => {
            let req = case.validate_request();
            let Some(expect) = Expect::validate(ORG, &req, NOW) else {
                unreachable!("the request has a key")
            };
            let at = At {
                resp: &resp,
                date,
                req: &req,
            };
            let typed = proto::parse_validate_for(&resp, &expect);
            let schema = answers::validate_answer(&resp, &expect);
            let typed = at.read(typed, validated_record, |v, record| Reading::Granted {
                license: serde_json::to_string(&v.license_key).unwrap_or_default(),
                activation: serde_json::to_string(&v.activation).unwrap_or_default(),
                kept: written(|o| v.write(o)),
                facts: facts(v),
                record,
            });
            let schema = at.read(schema, validated_record, |v, record| Reading::Granted {
                license: written(|o| v.write_license(o)),
                activation: written(|o| v.write_activation(o)),
                kept: written(|o| v.write(o)),
                facts: facts(v),
                record,
            });
            (typed, schema)
        }
        Operation::Activate => {
            let req = case.activate_request();
            let Some(expect) = Expect::activate(ORG, &req, NOW) else {
                unreachable!("the request has a key")
            };
            let key = Key::new(KEY);
            let at = At {
                resp: &resp,
                date,
                req: (&req, &key),
            };
            let typed = proto::parse_activate_for(&resp, &expect);
            let schema = answers::activate_answer(&resp, &expect);
            let typed = at.read(typed, activated_record, |read, record| Reading::Granted {
                license: serde_json::to_string(&read.license_key).unwrap_or_default(),
                activation: serde_json::to_string(&read.activation).unwrap_or_default(),
                kept: written(|o| read.validated().write(o)),
                facts: activation_facts(read),
                record,
            });
            let schema = at.read(schema, activated_record, |read, record| Reading::Granted {
                license: written(|o| read.license().write_license(o)),
                activation: written(|o| read.license().write_activation(o)),
                kept: written(|o| read.validated().write(o)),
                facts: activation_facts(read),
                record,
            });
            (typed, schema)
        }
        Operation::Deactivate => {
            let key = Key::new(KEY);
            let mut out = Vec::new();
            for verdict in [
                proto::parse_deactivate(&resp),
                answers::deactivate_answer(&resp),
            ] {
                let record = verdict.as_ref().ok().and_then(|v| {
                    testing::deactivated::<polar_license::ValidatedLicenseKey>(
                        &Opened::default(),
                        ORG,
                        &key,
                        NOW,
                        ACTIVATION,
                        v,
                    )
                });
                out.push(match not_granted(&resp, verdict, sealed(record)) {
                    Ok(()) => Reading::Granted {
                        license: String::new(),
                        activation: String::new(),
                        kept: String::new(),
                        facts: String::new(),
                        record: None,
                    },
                    Err(r) => r,
                });
            }
            let schema = out.pop().unwrap_or_else(|| unreachable!());
            let typed = out.pop().unwrap_or_else(|| unreachable!());
            (typed, schema)
        }
    }
}

/// The case's two readings when they differ.
pub fn disagreement(case: &Case) -> Option<Disagreement> {
    let (typed, schema) = read_both(case);
    (typed != schema).then(|| Disagreement {
        case: case.clone(),
        typed,
        schema,
    })
}

/// Counts of a run: cases, and each kind of agreed reading, and the disagreements.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Cases read.
    pub cases: usize,
    /// Both granted.
    pub grants: usize,
    /// Both denied.
    pub denials: usize,
    /// Both failed.
    pub errors: usize,
    /// The cases whose readings differ (all of them counted, the first few kept).
    pub disagreements: Vec<Disagreement>,
    /// How many disagreements there were.
    pub disagreeing: usize,
}

impl Tally {
    /// Reads `case` both ways and counts it.
    pub fn add(&mut self, case: &Case) {
        let (typed, schema) = read_both(case);
        self.count(case, typed, schema);
    }

    /// Counts a case read both ways (by any two faces).
    pub fn count(&mut self, case: &Case, a: Reading, b: Reading) {
        self.cases += 1;
        if a != b {
            self.disagreeing += 1;
            if self.disagreements.len() < 20 {
                self.disagreements.push(Disagreement {
                    case: case.clone(),
                    typed: a,
                    schema: b,
                });
            }
            return;
        }
        match a {
            Reading::Granted { .. } => self.grants += 1,
            Reading::Denied { .. } => self.denials += 1,
            Reading::Failed { .. } => self.errors += 1,
        }
    }
}

/// `one answer: N cases, M grants, K denials, E errors, D disagreements`.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "one answer: {} cases, {} grants, {} denials, {} errors, {} disagreements",
            self.cases, self.grants, self.denials, self.errors, self.disagreeing
        )
    }
}
