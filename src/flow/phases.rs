//! A check's phases, so that no lock is held while Polar is asked: under the slot's lock
//! [`begin`] answers from the cache, refuses, or asks; without it [`while_asked`] answers from
//! the cache when another check of the key is asking; under the lock again, with the slot read
//! anew, [`finish`] folds the answer into the record as it is now. The [`check`](super::check)
//! machine takes them in that order; its request is [`check_request`]'s.

use crate::error::{Error, Verdict};
use crate::fingerprint::MACHINE_CONDITION;
use crate::grace::{
    self, CheckOutcome, GracePolicy, LicenseData, Plan, Query, Record, Source, StoreAction,
    StoredActivation,
};
use crate::key::Key;
use crate::metadata::MetaValue;
use crate::model::ValidatedLicenseKey;
use crate::proto::{Api, Expect, HttpRequest, Stamp, ValidateRequest};
use crate::slot::{keep_remembered, noted_enough, Opened};

/// The validate request a plain `check` sends: the remembered activation with its conditions,
/// the machine fingerprint replaced by this machine's current one (so an activation carried to
/// another machine fails with `conditions_mismatch`).
pub fn remembered_request(
    key: &Key,
    remembered: Option<&StoredActivation>,
    machine: Option<&str>,
) -> ValidateRequest {
    let mut req = ValidateRequest::new(key.clone());
    if let Some(a) = remembered {
        req.activation_id = Some(a.id.clone());
        // The stored conditions, the fingerprint this machine's; when binding was turned off
        // since, without it (the server will answer conditions_mismatch). Built by inserting
        // only (no map removal: the npm package's wasm carries no B-tree removal code).
        for (name, value) in &a.conditions {
            let value = match (name.as_str(), machine) {
                (MACHINE_CONDITION, Some(fp)) => MetaValue::from(fp),
                (MACHINE_CONDITION, None) => continue,
                _ => value.clone(),
            };
            req.conditions.insert(name.clone(), value);
        }
    }
    req
}

/// The request of a check: the explicit one, or a plain check's ([`remembered_request`]);
/// when the client requires an activation and none is remembered, the `invalid_input` error
/// naming `activation_id` ("activate first"). One rule for `check` and `check_in_background`.
///
/// A stored record that cannot be trusted and whose activation cannot be read either (a byte
/// flipped in the activation's own bytes: its seal fails; a record that plainly held none is
/// "activate first" still) is no "activate first": this
/// machine was activated, and another activation would take a second slot while the first
/// stays held. It is the `cache_error` of a slot that cannot be used (as when the slot's
/// secret cannot be read): unverified, nothing sent, the damaged record left as it is
/// (issue #76, finding 5).
pub fn check_request<L>(
    key: &Key,
    explicit: Option<&ValidateRequest>,
    opened: &Opened<L>,
    machine: Option<&str>,
    require_activation: bool,
) -> Result<ValidateRequest, Error> {
    if let Some(req) = explicit {
        return Ok(req.clone());
    }
    let req = remembered_request(key, opened.remembered.as_ref(), machine);
    if require_activation && req.activation_id.is_none() {
        if let Some(why) = opened.untrusted.filter(|_| opened.activation_lost) {
            return Err(Error::Cache {
                detail: format!(
                    "the stored record is not trusted ({}) and {}: nothing was sent; \
                     activating again takes a new slot (the old one can be freed from the \
                     key's devices)",
                    why.as_str(),
                    crate::error::ACTIVATION_UNREADABLE,
                ),
            });
        }
        return Err(Error::invalid(
            "activation_id",
            "no activation remembered on this machine: activate first",
        ));
    }
    Ok(req)
}

/// A check that sends a request: what it asks, and when.
#[derive(Debug, Clone)]
pub struct Asking {
    /// What the check is about.
    pub query: Query,
    /// The validate request to send.
    pub http: HttpRequest,
    /// The request, to hold Polar's 200 to it.
    request: ValidateRequest,
    /// The clock when the check began, brought up to the reading taken after each later read
    /// of the slot (a record another writer stored meanwhile is no clock moved back).
    pub now: i64,
    /// When the denial the record held as the check began was received (`None`: none). A
    /// denial other than this one was received during the check, and its grant does not
    /// lift it ([`grace::settle_begun`]).
    seen_denial: Option<i64>,
}

impl Asking {
    /// What Polar's 200 must match.
    pub fn expect<'a>(&'a self, organization_id: &'a str) -> Option<Expect<'a>> {
        Expect::validate(organization_id, &self.request, self.now)
    }
}

/// Phase 1 of a check, once the slot is opened (under its lock).
pub enum Begin<L = ValidatedLicenseKey> {
    /// Answered without a request and without writing: bad input, or a running 429 block
    /// that the cache cannot answer.
    Done(CheckOutcome<L>),
    /// Licensed from the cache. Store `write` (the answer recorded) before answering; when
    /// that fails, the answer cannot be counted, so ask Polar instead ([`asking`], built only
    /// then: a cached answer never encodes a request), unless a 429 block forbids any
    /// request (`may_ask` is false).
    Cached {
        /// The answer.
        outcome: CheckOutcome<L>,
        /// The record with the answer noted.
        write: Box<Record<L>>,
        /// Whether Polar may be asked when the write fails.
        may_ask: bool,
        /// The answer may be recorded as a clock note alone ([`crate::slot::cached_writes`]).
        clock_only: bool,
    },
    /// Send the request.
    Ask(Box<Asking>),
}

/// Checks the request and asks the grace policy whether to send it.
pub fn begin<L: LicenseData>(
    api: &Api,
    opened: &Opened<L>,
    req: &ValidateRequest,
    now: i64,
    policy: &GracePolicy,
) -> Begin<L> {
    // Bad input is refused before the cache is consulted; the body is encoded only when
    // the plan sends it (a warm check answered from the cache never needs it).
    if let Err(e) = api.check_validate_request(req) {
        return Begin::Done(CheckOutcome::Unverified(e));
    }
    let query = match Query::from_request(api.organization_id(), req) {
        Ok(q) => q,
        Err(e) => return Begin::Done(CheckOutcome::Unverified(e)),
    };
    let record = opened.record.as_ref();
    match grace::plan(record, &query, now, policy) {
        Plan::Refuse(outcome) => Begin::Done(outcome),
        Plan::Cached(outcome) => {
            let Some(mut write) = record.cloned() else {
                return Begin::Done(outcome);
            };
            write.note_answer(now);
            let blocked = write.blocked_until.is_some_and(|until| now < until);
            // Only the clock moved, by less than a tenth of the tolerance past what the record
            // itself says, and no held clock is stopped: a note is enough (see `cached_writes`).
            let clock_only = noted_enough(opened, &write, policy);
            Begin::Cached {
                outcome,
                write: Box::new(write),
                may_ask: !blocked,
                clock_only,
            }
        }
        Plan::Ask => match asking_for(api, req, query, now) {
            Ok(mut asking) => {
                asking.seen_denial = record.and_then(|r| r.denied.as_ref()).map(|d| d.at);
                Begin::Ask(asking)
            }
            Err(outcome) => Begin::Done(outcome),
        },
    }
}

/// The request of a check of `req` that began at `now` (what [`begin`] checked): for a
/// [`Begin::Cached`] whose write failed, when `may_ask`. `None` when it cannot be made (the
/// cached answer is then given, the cache not refreshed).
pub fn asking(api: &Api, req: &ValidateRequest, now: i64) -> Option<Box<Asking>> {
    let query = Query::from_request(api.organization_id(), req).ok()?;
    asking_for::<()>(api, req, query, now).ok()
}

fn asking_for<L>(
    api: &Api,
    req: &ValidateRequest,
    query: Query,
    now: i64,
) -> Result<Box<Asking>, CheckOutcome<L>> {
    match api.validate_request(req) {
        Ok(http) => Ok(Box::new(Asking {
            query,
            http,
            request: req.clone(),
            now,
            seen_denial: None,
        })),
        Err(e) => Err(CheckOutcome::Unverified(e)),
    }
}

/// Phase 2, when another check of the key is asking Polar right now: the cache's answer
/// within the grace, at once, with the record that notes it (`None` when the cache cannot
/// license: then ask as well, rather than wait a whole timeout in turn).
pub fn while_asked<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
) -> Option<(CheckOutcome<L>, Record<L>)> {
    let busy = Error::Offline {
        timeout: false,
        detail: "another check of this key is asking Polar right now".to_string(),
    };
    let record = opened.record.as_ref();
    let outcome = grace::fall_back(record, &asking.query, asking.now, policy, busy);
    let mut write = record?.clone();
    if !outcome.is_licensed() {
        return None;
    }
    write.note_answer(asking.now);
    Some((outcome, write))
}

/// The best answer before a background revalidation ends: the cache's within the grace, the
/// tombstone's denial, else "not verified yet" (reason `not_yet_verified`). Every face.
pub fn pending<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
) -> CheckOutcome<L> {
    if let Some(denial) = opened.record.as_ref().and_then(Record::denial) {
        return CheckOutcome::Denied(denial);
    }
    let pending = Error::NotYetVerified;
    grace::fall_back(
        opened.record.as_ref(),
        &asking.query,
        asking.now,
        policy,
        pending,
    )
}

/// The end of a check: the answer, why it came from the cache, and what to store.
#[derive(Debug, Clone)]
pub struct Finished<L = ValidatedLicenseKey> {
    /// The answer.
    pub outcome: CheckOutcome<L>,
    /// For a cached answer after Polar could not be asked: what happened online.
    pub fallback: Option<Error>,
    /// The record to store, if any. When it carries a denial and cannot be stored, remove
    /// the stored record: a tombstone that cannot be written must not leave an old grant.
    pub write: Option<Record<L>>,
}

/// Phase 3 of a check: folds the online answer into the record as it is now (`opened`, read
/// again under the lock: another check's answer is folded in, never overwritten).
pub fn finish<L: LicenseData>(
    opened: &Opened<L>,
    asking: &Asking,
    policy: &GracePolicy,
    online: Result<(Verdict<L>, Stamp), Error>,
) -> Finished<L> {
    let (online, stamp) = match online {
        Ok((verdict, stamp)) => (Ok(verdict), stamp),
        Err(e) => (Err(e), Stamp::default()),
    };
    let cause = online.as_ref().err().filter(|e| e.falls_back()).cloned();
    let (action, outcome) = grace::settle_begun(
        opened.record.clone(),
        &asking.query,
        asking.now,
        policy,
        online,
        stamp,
        asking.seen_denial,
    );
    let fallback = match &outcome {
        CheckOutcome::Licensed {
            source: Source::Cache,
            ..
        } => cause,
        _ => None,
    };
    let write = match action {
        StoreAction::Keep => None,
        StoreAction::Write(record) => Some(keep_remembered(*record, opened, &asking.query)),
    };
    Finished {
        outcome,
        fallback,
        write,
    }
}

/// The answer of a check that could not use the cache at all, from an online answer.
pub fn online_only<L>(
    online: Result<Verdict<L>, Error>,
    cache_error: &Error,
    now: i64,
) -> CheckOutcome<L> {
    match online {
        Err(e) if e.falls_back() => CheckOutcome::Unverified(Error::Cache {
            detail: [
                cache_error.text(),
                "; and Polar could not be asked: ".to_string(),
                e.text(),
            ]
            .concat(),
        }),
        online => CheckOutcome::online(online, now),
    }
}
