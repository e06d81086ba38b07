//! The grace-aware flow shared by the native `Licensing` and the wasm `AsyncLicensing`: every
//! decision between the store's IO and the network's, written once. Pure: no IO, no clock.
//!
//! A check is `prepare` (record → the request to send, or an answer with no request), one
//! validate, then `conclude` (the answer and what to write back).

use crate::cache::{self, MacKey, Untrusted};
use crate::error::{Error, Verdict};
use crate::fingerprint::MACHINE_CONDITION;
use crate::grace::{
    self, CheckOutcome, GracePolicy, Plan, Query, Record, Source, StoreAction, StoredActivation,
};
use crate::key::Key;
use crate::metadata::MetaValue;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{ActivateRequest, Api, HttpRequest, ValidateRequest};
use crate::reason::Reason;
use std::time::Duration;

/// What the cache holds for a key, read without any request.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState {
    /// Nothing stored.
    Empty,
    /// Something is stored but cannot be trusted (edited, copied from another install, another
    /// format version); it is treated as no cache.
    Untrusted(Untrusted),
    /// A trusted record.
    Present(Box<Record>),
}

/// What the cache says about a key: the answer to `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStatus {
    /// What is stored.
    pub state: CacheState,
    /// The clock reading used.
    pub now: i64,
    /// How long the cache could still license if Polar were unreachable now.
    pub grace_remaining: Option<Duration>,
    /// How far the clock moved back past the tolerance, if it did.
    pub clock_rollback: Option<u64>,
}

/// The MAC key of one key's record. The machine identity (`seal`) and the app's secret are
/// framed with their lengths so no two inputs collide.
pub(crate) fn mac_key(
    key: &Key,
    organization_id: &str,
    install_secret: &[u8],
    seal: Option<&str>,
    app_secret: Option<&[u8]>,
) -> MacKey {
    let mut extra = Vec::new();
    for part in [seal.map(str::as_bytes), app_secret] {
        let part = part.unwrap_or_default();
        extra.extend_from_slice(&(part.len() as u64).to_be_bytes());
        extra.extend_from_slice(part);
    }
    MacKey::derive(key.expose(), organization_id, install_secret, Some(&extra))
}

/// Decodes stored bytes into a trusted record for `key`, or `None` (missing or untrusted).
pub(crate) fn trusted(
    bytes: Option<&[u8]>,
    mac: &MacKey,
    organization_id: &str,
    key: &Key,
) -> Option<Record> {
    cache::decode(bytes?, mac)
        .ok()
        .filter(|r| r.is_for(organization_id, key))
}

/// What `status` reports for stored bytes at `now`.
pub(crate) fn status(
    bytes: Option<&[u8]>,
    mac: &MacKey,
    organization_id: &str,
    key: &Key,
    now: i64,
    policy: &GracePolicy,
) -> CacheStatus {
    let state = match bytes {
        None => CacheState::Empty,
        Some(bytes) => match cache::decode(bytes, mac) {
            Ok(record) if record.is_for(organization_id, key) => {
                CacheState::Present(Box::new(record))
            }
            Ok(_) => CacheState::Untrusted(Untrusted::BadMac),
            Err(why) => CacheState::Untrusted(why),
        },
    };
    let (grace_remaining, clock_rollback) = match &state {
        CacheState::Present(r) => (r.grace_remaining(now, policy), r.rollback(now, policy)),
        _ => (None, None),
    };
    CacheStatus {
        state,
        now,
        grace_remaining,
        clock_rollback,
    }
}

/// The validate request a plain `check` sends: the remembered activation with its conditions,
/// the machine fingerprint replaced by this machine's current one (so an activation carried to
/// another machine fails with `conditions_mismatch`).
pub(crate) fn remembered_request(
    key: &Key,
    record: Option<&Record>,
    machine: Option<&str>,
) -> ValidateRequest {
    let mut req = ValidateRequest::new(key.clone());
    if let Some(a) = record.and_then(|r| r.activation.as_ref()) {
        req.activation_id = Some(a.id.clone());
        req.conditions = a.conditions.clone();
        if req.conditions.contains_key(MACHINE_CONDITION) {
            match machine {
                Some(fp) => {
                    req.conditions
                        .insert(MACHINE_CONDITION.to_string(), MetaValue::from(fp));
                }
                // Binding turned off since: the server will answer conditions_mismatch.
                None => {
                    req.conditions.remove(MACHINE_CONDITION);
                }
            }
        }
    }
    req
}

/// The request of a plain `check` ([`remembered_request`]), or, when the client requires an
/// activation and none is remembered, the `invalid_input` error naming `activation_id`.
pub(crate) fn plain_check_request(
    key: &Key,
    record: Option<&Record>,
    machine: Option<&str>,
    require_activation: bool,
) -> Result<ValidateRequest, Error> {
    let req = remembered_request(key, record, machine);
    if require_activation && req.activation_id.is_none() {
        return Err(Error::invalid(
            "activation_id",
            "no activation remembered on this machine: activate first",
        ));
    }
    Ok(req)
}

/// The activate request with the machine fingerprint added to its conditions (when bound),
/// and its key.
pub(crate) fn bound_activation(
    req: &ActivateRequest,
    machine: Option<&str>,
) -> Result<(ActivateRequest, Key), Error> {
    let mut req = req.clone();
    if let Some(fp) = machine {
        req.conditions
            .entry(MACHINE_CONDITION.to_string())
            .or_insert_with(|| MetaValue::from(fp));
    }
    let key = req
        .key
        .clone()
        .ok_or_else(|| Error::invalid("key", "is required"))?;
    Ok((req, key))
}

/// What to remember of a successful activation.
pub(crate) fn stored_activation(
    read: &LicenseKeyActivationRead,
    req: &ActivateRequest,
    now: i64,
) -> StoredActivation {
    StoredActivation {
        id: read.activation.id.clone(),
        label: read.activation.label.clone(),
        conditions: req.conditions.clone(),
        created_at: now,
    }
}

/// The error when Polar activated but the cache could not remember it: it names the new
/// activation id, so nothing is lost.
pub(crate) fn unremembered(read: &LicenseKeyActivationRead, e: &Error) -> Error {
    Error::Cache {
        detail: format!(
            "activated as {}, but the cache could not remember it: {e}",
            read.activation.id
        ),
    }
}

/// The record after a successful activate.
pub(crate) fn remember(
    record: Option<Record>,
    organization_id: &str,
    key: &Key,
    activation: StoredActivation,
    now: i64,
) -> Record {
    match record {
        Some(mut r) => {
            // A successful activate proves the key is granted and unexpired now.
            r.denied = None;
            r.latest_seen = r.latest_seen.max(now);
            r.activation = Some(activation);
            r
        }
        None => Record::with_activation(organization_id, key, activation, now),
    }
}

/// The activation a deactivate frees: the one given, else the remembered one.
pub(crate) fn deactivation_target(
    given: Option<&str>,
    record: Option<&Record>,
) -> Result<String, Error> {
    match (given, record.and_then(|r| r.activation.as_ref())) {
        (Some(id), _) => Ok(id.to_string()),
        (None, Some(a)) => Ok(a.id.clone()),
        (None, None) => Err(Error::invalid(
            "activation_id",
            "none given and no activation remembered for this key",
        )),
    }
}

/// The record to write after a deactivate of `id` answered `verdict`, if any: the activation
/// (and a verdict bound to it) is forgotten once it is gone on the server.
pub(crate) fn forget_activation(
    record: Option<Record>,
    id: &str,
    verdict: &Verdict<()>,
) -> Option<Record> {
    let gone = match verdict {
        Verdict::Accepted(()) => true,
        Verdict::Denied(d) => d.reason == Reason::NotFound,
    };
    let mut record = record.filter(|_| gone)?;
    let same = |other: &str| other.eq_ignore_ascii_case(id);
    if record.activation.as_ref().is_some_and(|a| same(&a.id)) {
        record.activation = None;
    }
    if record
        .good
        .as_ref()
        .is_some_and(|g| g.activation_id.as_deref().is_some_and(same))
    {
        record.good = None;
    }
    Some(record)
}

/// Step 1 of a check, once the record is loaded.
pub(crate) enum Prepared {
    /// Answered without a request (fresh cache, a running 429 block, or bad input).
    Done(CheckOutcome),
    /// Send `http`, then call [`conclude`] with `query`.
    Ask {
        /// What the check is about.
        query: Query,
        /// The validate request to send.
        http: HttpRequest,
    },
}

/// Checks the request and asks the grace policy whether to send it.
pub(crate) fn prepare(
    api: &Api,
    record: Option<&Record>,
    req: &ValidateRequest,
    now: i64,
    policy: &GracePolicy,
) -> Prepared {
    // Bad input is refused before the cache is consulted; the body is encoded only when
    // the plan sends it (a warm check answered from the cache never needs it).
    if let Err(e) = api.check_validate_request(req) {
        return Prepared::Done(CheckOutcome::Unverified(e));
    }
    let query = match Query::from_request(api.organization_id(), req) {
        Ok(q) => q,
        Err(e) => return Prepared::Done(CheckOutcome::Unverified(e)),
    };
    match grace::plan(record, &query, now, policy) {
        Plan::Cached(outcome) | Plan::Refuse(outcome) => Prepared::Done(outcome),
        Plan::Ask => match api.validate_request(req) {
            Ok(http) => Prepared::Ask { query, http },
            Err(e) => Prepared::Done(CheckOutcome::Unverified(e)),
        },
    }
}

/// What to do with the store after a check's request.
pub(crate) enum Write {
    /// Nothing.
    Nothing,
    /// Save this record. When `must_not_grant` and the save fails, remove the stored record:
    /// a denial's tombstone that cannot be written must not leave an old grant behind.
    Save {
        /// The record.
        record: Box<Record>,
        /// The record carries a denial.
        must_not_grant: bool,
    },
}

/// Step 2 of a check: folds the online answer into the record.
pub(crate) fn conclude(
    record: Option<Record>,
    query: &Query,
    now: i64,
    policy: &GracePolicy,
    online: Result<(Verdict<ValidatedLicenseKey>, Option<i64>), Error>,
) -> (Write, CheckOutcome) {
    let (online, date) = match online {
        Ok((verdict, date)) => (Ok(verdict), date),
        Err(e) => (Err(e), None),
    };
    let (action, outcome) = grace::settle(record, query, now, policy, online, date);
    let write = match action {
        StoreAction::Keep => Write::Nothing,
        StoreAction::Write(record) => Write::Save {
            must_not_grant: record.denied.is_some(),
            record,
        },
    };
    (write, outcome)
}

/// The answer of a check that could not use the cache at all, from an online answer.
pub(crate) fn online_only(
    online: Result<Verdict<ValidatedLicenseKey>, Error>,
    cache_error: &Error,
    now: i64,
) -> CheckOutcome {
    match online {
        Ok(Verdict::Accepted(license)) => CheckOutcome::Licensed {
            source: Source::Online,
            license: Box::new(license),
            grace_remaining: None,
            verified_at: now,
        },
        Ok(Verdict::Denied(denial)) => CheckOutcome::Denied(denial),
        Err(e) if e.is_unverified() => CheckOutcome::Unverified(Error::Cache {
            detail: format!("{cache_error}; and Polar could not be asked: {e}"),
        }),
        Err(e) => CheckOutcome::Unverified(e),
    }
}
