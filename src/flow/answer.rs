//! What an update's answer makes of the record ([`validated`], [`activated`], [`deactivated`]),
//! how its request is bound to this machine ([`bound_validate`], [`bound_activation`]), and
//! whether a deactivation ends the remembered key. The [`update`](super::update) machine's
//! rules.

use super::phases::remembered_request;
use crate::error::{Error, Verdict};
use crate::fingerprint::{platform, MACHINE_CONDITION, MACHINE_META, PLATFORM_META};
use crate::grace::{
    self, ActivationData, GracePolicy, LicenseData, Query, Record, StoredActivation,
};
use crate::key::Key;
use crate::metadata::MetaValue;
use crate::proto::{ActivateRequest, Stamp, ValidateRequest};
use crate::reason::Reason;
use crate::slot::{keep_remembered, Opened};

/// A validate request with this machine's fingerprint among its conditions when it names an
/// activation and activations are machine-bound (a condition the app set itself is kept):
/// every command of one install sends the same conditions as `activate` stored.
pub fn bound_validate(req: &ValidateRequest, machine: Option<&str>) -> ValidateRequest {
    let mut req = req.clone();
    if let (Some(fp), Some(_)) = (machine, &req.activation_id) {
        req.conditions
            .entry(MACHINE_CONDITION.to_string())
            .or_insert_with(|| MetaValue::from(fp));
    }
    req
}

/// The activate request with the machine fingerprint added to its conditions and its `meta`
/// (when bound), the platform family to its `meta` (issue #80), and its key.
pub fn bound_activation(
    req: &ActivateRequest,
    machine: Option<&str>,
) -> Result<(ActivateRequest, Key), Error> {
    let mut req = req.clone();
    if let Some(fp) = machine {
        req.conditions
            .entry(MACHINE_CONDITION.to_string())
            .or_insert_with(|| MetaValue::from(fp));
        // The same hash in `meta`, which Polar's listings return (issue #80): a reinstall at
        // the limit finds this machine's activation by it ([`super::heal`]). An app's own
        // value under the name is kept (then this machine's row is not found by it).
        req.meta
            .entry(MACHINE_META.to_string())
            .or_insert_with(|| MetaValue::from(fp));
    }
    if let Some(platform) = platform() {
        req.meta
            .entry(PLATFORM_META.to_string())
            .or_insert_with(|| MetaValue::from(platform.as_str()));
    }
    let key = req
        .key
        .clone()
        .ok_or_else(|| Error::invalid("key", "is required"))?;
    Ok((req, key))
}

/// The error when Polar activated but the cache could not remember it: it names the new
/// activation id, so nothing is lost.
pub fn unremembered<A: ActivationData>(read: &A, e: &Error) -> Error {
    Error::Cache {
        detail: [
            "activated as ",
            read.activation_id(),
            ", but the cache could not remember it: ",
            &e.text(),
        ]
        .concat(),
    }
}

/// Says on a denial whether this install had a good verdict for the key before
/// ([`crate::error::Denial::previously_valid`]).
fn mark_known<L, T>(opened: &Opened<L>, online: &mut Result<(Verdict<T>, Stamp), Error>) {
    if let Ok((Verdict::Denied(denial), _)) = online {
        denial.previously_valid = grace::was_valid(opened.record.as_ref());
    }
}

/// Says on a deactivate's denial whether this install had a good verdict for the key before
/// and, for a `not_found`, that the activation is what is gone: Polar answers the same bare
/// 404 for an unknown key and an unknown activation, and a key this install knows is good is
/// not the unknown one ([`crate::error::Denial::activation_gone`]).
pub fn deactivation_denied<L>(opened: &Opened<L>, answer: &mut Result<Verdict<()>, Error>) {
    if let Ok(Verdict::Denied(denial)) = answer {
        denial.previously_valid = grace::was_valid(opened.record.as_ref());
        denial.activation_gone = denial.previously_valid && denial.reason == Reason::NotFound;
    }
}

/// The record to write after an online activate answer, if any (one truth per key: a good
/// activation is a verdict and starts the grace; a denial about the key is a tombstone). A
/// denial is marked with whether the key was valid here before.
pub fn activated<A: ActivationData>(
    opened: &Opened<A::License>,
    organization_id: &str,
    req: &ActivateRequest,
    key: &Key,
    now: i64,
    policy: &GracePolicy,
    online: &mut Result<(Verdict<A>, Stamp), Error>,
) -> Option<Record<A::License>> {
    mark_known(opened, online);
    let mut query = Query::new(organization_id, key.clone());
    let remember = match online {
        Ok((Verdict::Accepted(read), _)) => {
            query.activation_id = Some(read.activation_id().to_string());
            query.conditions = req.conditions.clone();
            Some(StoredActivation {
                id: read.activation_id().to_string(),
                label: read.label().to_string(),
                conditions: req.conditions.clone(),
                created_at: now,
            })
        }
        _ => None,
    };
    grace::observe_activate(opened.record.clone(), &query, now, policy, online, remember)
}

/// The record to write after an online validate answer that was no check (a face's plain
/// `validate`), if any: see [`grace::observe_validate`]. A denial is marked with whether the
/// key was valid here before.
pub fn validated<L: LicenseData>(
    opened: &Opened<L>,
    organization_id: &str,
    req: &ValidateRequest,
    machine: Option<&str>,
    now: i64,
    policy: &GracePolicy,
    online: &mut Result<(Verdict<L>, Stamp), Error>,
) -> Option<Record<L>> {
    mark_known(opened, online);
    let query = Query::from_request(organization_id, req).ok()?;
    let key = req.key.as_ref()?;
    let plain = remembered_request(key, opened.remembered.as_ref(), machine);
    let check = Query::from_request(organization_id, &plain).ok();
    let record = grace::observe_validate(
        opened.record.clone(),
        &query,
        check.as_ref(),
        now,
        policy,
        online,
    );
    record.map(|r| keep_remembered(r, opened, &query))
}

/// The activation a deactivate frees: the one given, else the remembered one.
pub fn deactivation_target<L>(given: Option<&str>, opened: &Opened<L>) -> Result<String, Error> {
    match (given, opened.remembered.as_ref()) {
        (Some(id), _) => Ok(id.to_string()),
        (None, Some(a)) => Ok(a.id.clone()),
        (None, None) => Err(Error::invalid(
            "activation_id",
            "none given and no activation remembered for this key",
        )),
    }
}

/// Whether a deactivate's answer says the activation is gone on the server (freed now, or
/// not found: freed already).
fn gone(verdict: &Verdict<()>) -> bool {
    match verdict {
        Verdict::Accepted(()) => true,
        Verdict::Denied(d) => d.reason == Reason::NotFound,
    }
}

/// The trusted record with activation `id` (and a verdict bound to it) forgotten.
fn forget_activation<L: LicenseData>(opened: &Opened<L>, id: &str) -> Option<Record<L>> {
    let mut record = opened.record.clone()?;
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

/// The record to write after a deactivate of `id` answered `verdict`, if any: once the
/// activation is gone on the server, it (and a verdict bound to it) is forgotten; when only an
/// untrusted record named it, a new empty record takes that one's place (so no later check
/// validates an activation that is gone).
pub fn deactivated<L: LicenseData>(
    opened: &Opened<L>,
    organization_id: &str,
    key: &Key,
    now: i64,
    id: &str,
    verdict: &Verdict<()>,
) -> Option<Record<L>> {
    if !gone(verdict) {
        return None;
    }
    let named = opened
        .remembered
        .as_ref()
        .is_some_and(|a| a.id.eq_ignore_ascii_case(id));
    match &opened.record {
        Some(_) => forget_activation(opened, id),
        None if named => Some(Record::new(organization_id, key, now)),
        None => None,
    }
}

/// Whether a deactivation of `id` that Polar answered with `verdict` ends the remembered key
/// (with remembering on): only when it freed the activation the cache remembers. Freeing
/// another one (the activation a later activate replaced, still taking a slot) leaves the
/// key remembered, and the current activation checked at the next launch.
pub fn ends_remembered_key<L>(opened: &Opened<L>, id: &str, verdict: &Verdict<()>) -> bool {
    matches!(verdict, Verdict::Accepted(()))
        && opened
            .remembered
            .as_ref()
            .is_some_and(|a| a.id.eq_ignore_ascii_case(id))
}
