//! `cache::encode` -> `cache::decode` of arbitrary in-memory records (arbitrary strings,
//! times, conditions, denial marks, a license from a real emulator answer with arbitrary
//! meta): the record must come back equal. This is the cache's promise that a remembered
//! activation's conditions and a good verdict's binding are sent and compared unchanged.

use crate::cache_key::mac_key;
use arbitrary::Arbitrary;
use polar_license::cache;
use polar_license::grace::{DenialMark, GoodVerdict, Record, StoredActivation};
use polar_license::{MetaValue, Metadata, Reason, ValidatedLicenseKey};
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
enum Meta {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

fn metadata(entries: Vec<(String, Meta)>) -> Metadata {
    entries
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Meta::Bool(b) => MetaValue::Bool(b),
                Meta::Int(i) => MetaValue::Int(i),
                // NaN and infinities are refused by the request checks before anything is
                // stored, so they never reach a record.
                Meta::Float(x) if x.is_finite() => MetaValue::Float(x),
                Meta::Float(_) => MetaValue::Int(0),
                Meta::Str(s) => MetaValue::Str(s),
            };
            (k, v)
        })
        .collect()
}

#[derive(Debug, Arbitrary)]
struct Good {
    activation_id: Option<String>,
    benefit_id: Option<String>,
    customer_id: Option<String>,
    conditions: Vec<(String, Meta)>,
    verified_at: i64,
    server_date: Option<i64>,
    lease: Option<String>,
    activation_meta: Vec<(String, Meta)>,
    usage: i64,
    limit_usage: Option<i64>,
}

#[derive(Debug, Arbitrary)]
struct Denied {
    reason: u8,
    detail: String,
    status: u16,
    remaining_usages: Option<i64>,
    at: i64,
}

#[derive(Debug, Arbitrary)]
struct Input {
    origin: String,
    organization_id: String,
    display_key: String,
    good: Option<Good>,
    latest_seen: i64,
    stalled: u32,
    seq: u64,
    denied: Option<Denied>,
    blocked_until: Option<i64>,
    activation: Option<Activation>,
}

#[derive(Debug, Arbitrary)]
struct Activation {
    id: String,
    label: String,
    conditions: Vec<(String, Meta)>,
    created_at: i64,
}

/// A real validate answer (the emulator's, with an activation), parsed once.
fn license() -> &'static ValidatedLicenseKey {
    static LICENSE: OnceLock<ValidatedLicenseKey> = OnceLock::new();
    LICENSE.get_or_init(|| {
        serde_json::from_str(include_str!(
            "../../../../fuzz/seeds/bodies/emu_validate_200.json"
        ))
        .unwrap_or_else(|e| panic!("seed license: {e}"))
    })
}

/// The target on one input, as libFuzzer gives it: the bytes read as [`Input`] the way
/// `fuzz_target!` reads a typed input (a panic is a finding).
pub fn run(data: &[u8]) {
    if let Some(input) = crate::decode::<Input>(data) {
        fuzz_one(input);
    }
}

/// The target on one decoded input.
fn fuzz_one(input: Input) {
    let record = Record {
        origin: input.origin,
        organization_id: input.organization_id,
        display_key: input.display_key,
        good: input.good.map(|g| {
            let mut license = license().clone();
            license.license_key.usage = g.usage;
            license.license_key.limit_usage = g.limit_usage;
            if let Some(a) = license.activation.as_mut() {
                a.meta = metadata(g.activation_meta);
            }
            GoodVerdict {
                license,
                activation_id: g.activation_id,
                benefit_id: g.benefit_id,
                customer_id: g.customer_id,
                conditions: metadata(g.conditions),
                verified_at: g.verified_at,
                server_date: g.server_date,
                lease: g.lease,
            }
        }),
        latest_seen: input.latest_seen,
        stalled: input.stalled,
        seq: input.seq,
        denied: input.denied.map(|d| DenialMark {
            reason: Reason::ALL[usize::from(d.reason) % Reason::ALL.len()],
            detail: d.detail,
            status: d.status,
            remaining_usages: d.remaining_usages,
            at: d.at,
            signed: None,
            verified: None,
        }),
        blocked_until: input.blocked_until,
        activation: input.activation.map(|a| StoredActivation {
            id: a.id,
            label: a.label,
            conditions: metadata(a.conditions),
            created_at: a.created_at,
        }),
        lease_gate: Default::default(),
    };
    let key = mac_key();
    let bytes = cache::encode(&record, key);
    let back = cache::decode(&bytes, key)
        .unwrap_or_else(|e| panic!("our own encoding does not decode ({e:?}): {record:?}"));
    // Exact, floats included (the float_roundtrip regression, fixed in a47706d).
    assert_eq!(back, record, "the record changed in the cache");
}
