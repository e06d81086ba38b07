//! Signed mode's hold on what a client reads (contract §5): the gate an opened slot's lease
//! sets on its record ([`gate_lease`], with the last verification kept in a [`LeaseMemo`]), an
//! online grant held to the relay's lease for its request ([`held`], [`held_activation`],
//! [`fresh_grant`]), a signed denial held to its request ([`held_denial`]), and the lease kept
//! with the record written after it ([`with_lease`]). Unsigned mode (no relay keys) passes
//! everything through. The lease's own verification is [`crate::lease`]'s.

use crate::error::{Error, Verdict};
use crate::fingerprint::MACHINE_CONDITION;
use crate::grace::{ActivationData, GracePolicy, LicenseData, Record};
use crate::grace::{GoodVerdict, LeaseGate, LeaseWindow};
use crate::key::Key;
use crate::lease::{self, LeaseExpect, RelayKeys};
use crate::metadata::{MetaValue, Metadata};
use crate::proto::{ActivateRequest, Stamp, ValidateRequest};
use crate::reason::Reason;
use crate::slot::Opened;

/// Signed mode (`keys` not empty): what the opened record's lease allows, set on the record
/// ([`LeaseGate`]). A lease that does not verify for the record's own verdict (organization,
/// key, activation, benefit, the machine the activation is bound to) is no lease: the record
/// keeps its history but never licenses from the cache. Unsigned mode changes nothing.
///
/// `memo` keeps the last verification (the lease and everything it was checked against): a
/// cached answer rewrites the record but not its lease, and an Ed25519 verification costs
/// more than the rest of a cached check. `ed25519` checks the signature ([`lease::Ed25519`]);
/// an answer it does not have yet ([`lease::Checked::Pending`]) is no lease, and not kept.
pub fn gate_lease<L: LicenseData>(
    opened: &mut Opened<L>,
    keys: &RelayKeys,
    organization_id: &str,
    key: &Key,
    memo: &LeaseMemo,
    ed25519: &dyn lease::Ed25519,
) {
    if keys.is_empty() {
        return;
    }
    if let Some(record) = opened.record.as_mut() {
        let window = record
            .good
            .as_ref()
            .and_then(|good| lease_window(good, keys, organization_id, key, memo, ed25519));
        record.lease_gate = LeaseGate::Signed(window);
        // The stored denial's signature (issue #62): believed only as verified here, for the
        // record's own verdict's binding; the clock and nonce were held online.
        let verified = match (record.good.as_ref(), record.denied.as_ref()) {
            (Some(good), Some(mark)) => mark.signed.as_deref().and_then(|token| {
                let expect = lease::DenialExpect {
                    organization_id,
                    key,
                    activation_id: good.activation_id.as_deref(),
                    machine: machine_of(&good.conditions),
                };
                lease::verify_denial_with(token, keys, &expect, ed25519).ok()
            }),
            _ => None,
        };
        if let Some(mark) = record.denied.as_mut() {
            mark.verified = verified.filter(|s| s.reason() == mark.reason);
        }
    }
}

/// The last lease verified by one client, with what it was checked against (the core's gate
/// on an opened slot's lease keeps it). The relay keys are a client's own, fixed when it is built.
#[derive(Debug, Default)]
pub struct LeaseMemo(std::sync::Mutex<Option<(String, Option<LeaseWindow>)>>);

impl LeaseMemo {
    /// The window kept for `id`, else `verify`'s (kept unless the verification is pending).
    fn get_or(
        &self,
        id: String,
        verify: impl FnOnce() -> Result<LeaseWindow, lease::NoLease>,
    ) -> Option<LeaseWindow> {
        let mut memo = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, window)) = memo.as_ref() {
            if *known == id {
                return window.clone();
            }
        }
        let window = match verify() {
            Ok(window) => Some(window),
            Err(lease::NoLease::Pending) => return None,
            Err(_) => None,
        };
        *memo = Some((id, window.clone()));
        window
    }
}

/// The machine a verdict was asked for: the `machine_fingerprint` condition it was sent with
/// (what the relay binds the lease to), if any.
fn machine_of(conditions: &Metadata) -> Option<&str> {
    match conditions.get(MACHINE_CONDITION) {
        Some(MetaValue::Str(fp)) => Some(fp),
        _ => None,
    }
}

fn lease_window<L: LicenseData>(
    good: &GoodVerdict<L>,
    keys: &RelayKeys,
    organization_id: &str,
    key: &Key,
    memo: &LeaseMemo,
    ed25519: &dyn lease::Ed25519,
) -> Option<LeaseWindow> {
    let token = good.lease.as_deref()?;
    let benefit_id = good.license.benefit_id();
    let machine = machine_of(&good.conditions);
    let activation_id = good.activation_id.as_deref();
    // Everything the verification depends on, each part length-prefixed.
    let mut id = String::new();
    for part in [
        token,
        organization_id,
        key.expose(),
        activation_id.unwrap_or("\u{0}none"),
        benefit_id,
        machine.unwrap_or("\u{0}none"),
    ] {
        crate::decimal::push_digits(&mut id, part.len() as u64);
        id.push(':');
        id.push_str(part);
    }
    memo.get_or(id, || {
        let expect = LeaseExpect {
            organization_id,
            key,
            activation_id,
            benefit_id: Some(benefit_id),
            machine,
        };
        let lease = lease::verify_signed_with(token, keys, &expect, ed25519)?;
        Ok(LeaseWindow {
            not_before: lease.claims.not_before.max(lease.claims.issued_at),
            expires_at: lease.claims.expires_at,
            facts: lease.facts().clone(),
            kid: lease.kid,
        })
    })
    .filter(|window| signed_usage(&window.facts, &good.license))
}

/// Whether the usages left that a lease signed ([`lease::SignedFacts::remaining_usage`]) are
/// the ones `license` says: else the license is not the answer the lease was signed for (a
/// body edited on its way, a record re-sealed with another count) and the lease is no lease
/// for it, so a metered feature never reads an unsigned count in signed mode (contract §5).
fn signed_usage<L: LicenseData>(facts: &lease::SignedFacts, license: &L) -> bool {
    facts.remaining_usage() == license.remaining_usage()
}

/// What an online grant needs in signed mode: the request it answered.
#[derive(Debug, Clone, Copy)]
pub struct Granted<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The key.
    pub key: &'a Key,
    /// The activation the grant is about (the one validated, or the one just made).
    pub activation_id: Option<&'a str>,
    /// The conditions sent (the machine the lease must be bound to is among them).
    pub conditions: &'a Metadata,
    /// The nonce the request carried ([`lease::NONCE_HEADER`]), when it carried one: the
    /// lease must carry the same (contract §5, freshness).
    pub nonce: Option<&'a str>,
}

impl<'a> Granted<'a> {
    /// A validate's grant: `key` of `organization_id` validated as `req` asks (its activation
    /// and conditions), with the request's `nonce`.
    pub fn validate(
        organization_id: &'a str,
        key: &'a Key,
        req: &'a ValidateRequest,
        nonce: Option<&'a str>,
    ) -> Granted<'a> {
        Granted {
            organization_id,
            key,
            activation_id: req.activation_id.as_deref(),
            conditions: &req.conditions,
            nonce,
        }
    }
}

/// A lease that verified for an online grant, with the question it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldLease {
    token: String,
    activation_id: Option<String>,
    conditions: Metadata,
    issued_at: i64,
    window: LeaseWindow,
}

/// Signed mode: why an online grant held to `lease` is a replay given the record as it is
/// now, if it is one (contract §5, freshness): its lease was issued before the stored lease
/// (both the relay's clock), or before the stored denial by more than the clock tolerance
/// (the denial is dated by this machine's clock).
#[inline(never)]
pub fn replayed<L>(
    record: Option<&Record<L>>,
    lease: &HeldLease,
    policy: &GracePolicy,
) -> Option<Error> {
    let record = record?;
    let iat = lease.issued_at;
    if let Some(stored) = record.lease_gate.window() {
        if iat < stored.not_before {
            return Some(older(stored.not_before, iat, "the lease the cache holds"));
        }
    }
    let denied = record.denied.as_ref()?;
    (iat.saturating_add(policy.tolerance_secs()) < denied.at)
        .then(|| older(denied.at, iat, "the denial the cache holds"))
}

/// [`replayed`]'s refusal: a lease issued `at - iat` seconds before what the cache holds.
#[cold]
fn older(at: i64, iat: i64, what: &str) -> Error {
    Error::Replayed {
        detail: [
            "signed mode: the grant's lease was issued ",
            &crate::decimal::digits(at.abs_diff(iat)),
            " s before ",
            what,
            ": an old answer replayed, refused",
        ]
        .concat(),
    }
}

/// Signed mode: an online grant counts only with a lease from the relay that verifies for it
/// at `now` (its signature checked by `ed25519`). Gives the lease to store with the verdict
/// (`Ok(None)` in unsigned mode, where the lease, if any, is not read); a grant without one is
/// `protocol_error` (not a verdict: the cache's own lease may still answer).
pub fn hold_lease<L: LicenseData>(
    signing: Signing<'_>,
    granted: &Granted<'_>,
    license: &L,
    token: Option<&str>,
    now: i64,
) -> Result<Option<HeldLease>, Error> {
    let Signing {
        keys,
        policy,
        ed25519,
    } = signing;
    if keys.is_empty() {
        return Ok(None);
    }
    let expect = LeaseExpect {
        organization_id: granted.organization_id,
        key: granted.key,
        activation_id: granted.activation_id,
        benefit_id: Some(license.benefit_id()),
        machine: machine_of(granted.conditions),
    };
    let tolerance = i64::try_from(policy.clock_tolerance.as_secs()).unwrap_or(i64::MAX);
    let why = match token {
        None => lease::NoLease::Missing,
        Some(token) => match lease::verify_with(token, keys, &expect, now, tolerance, ed25519) {
            Ok(lease) if !signed_usage(lease.facts(), license) => lease::NoLease::Mismatch,
            Ok(lease) => {
                fresh(granted.nonce, lease.claims.nonce.as_deref())?;
                let window = LeaseWindow {
                    not_before: lease.claims.not_before.max(lease.claims.issued_at),
                    expires_at: lease.claims.expires_at,
                    facts: lease.facts().clone(),
                    kid: lease.kid.clone(),
                };
                return Ok(Some(HeldLease {
                    token: token.to_string(),
                    activation_id: granted.activation_id.map(str::to_string),
                    conditions: granted.conditions.clone(),
                    issued_at: lease.claims.issued_at,
                    window,
                }));
            }
            Err(why) => why,
        },
    };
    if why == lease::NoLease::UnknownKid {
        return Err(Error::Protocol {
            status: Some(200),
            detail: [
                crate::error::RELAY_KEY_MISMATCH,
                ": the app's relay key does not match the relay's signing key; give the app \
                 the public key the relay prints (`polar-license relay keygen`)",
            ]
            .concat(),
        });
    }
    Err(Error::Protocol {
        status: Some(200),
        detail: [
            "signed mode: the grant came without a lease that verifies (",
            why.as_str(),
            "); is the base URL the seller's relay, and are its keys among the relay keys?",
        ]
        .concat(),
    })
}

/// Signed mode: the relay's signed denial of an online denial ([`lease::DENIAL_HEADER`]), held
/// to its request (issue #62): it verifies for the key, organization, activation and machine
/// asked about, carries this request's nonce, names the reason the core read from Polar's
/// answer, and is not dated ahead of the clock. `None` otherwise (and in unsigned mode, and
/// for a request sent without a nonce): such a denial still denies, and widens nothing.
pub fn held_denial<L>(
    signing: Signing<'_>,
    online: &Result<(Verdict<L>, Stamp), Error>,
    token: Option<&str>,
    granted: &Granted<'_>,
    now: i64,
) -> Option<(String, lease::SignedDenial)> {
    let Signing {
        keys,
        policy,
        ed25519,
    } = signing;
    let Ok((Verdict::Denied(denial), _)) = online else {
        return None;
    };
    if keys.is_empty() {
        return None;
    }
    let (token, nonce) = (token?, granted.nonce?);
    let expect = lease::DenialExpect {
        organization_id: granted.organization_id,
        key: granted.key,
        activation_id: granted.activation_id,
        machine: machine_of(granted.conditions),
    };
    let signed = lease::verify_denial_with(token, keys, &expect, ed25519).ok()?;
    let ahead = now.saturating_add(policy.tolerance_secs());
    (signed.nonce() == nonce && signed.reason() == denial.reason && signed.at() <= ahead)
        .then(|| (token.to_string(), signed))
}

/// Why the key stopped (issue #68), read into an online denial: in signed mode only from the
/// relay's signed denial of this request (`denial`, from [`held_denial`]: the header beside it
/// is anyone's to write), otherwise from the relay's [`crate::stopped::STOPPED_HEADER`]
/// (`header`). A grant, or a detail that does not read, is left as it is.
pub fn with_stopped<L>(
    mut online: Result<(Verdict<L>, Stamp), Error>,
    header: Option<&str>,
    keys: &RelayKeys,
    denial: &Option<(String, lease::SignedDenial)>,
) -> Result<(Verdict<L>, Stamp), Error> {
    if let Ok((Verdict::Denied(d), _)) = &mut online {
        d.stopped = if keys.is_empty() {
            header.and_then(crate::stopped::Stopped::from_text)
        } else {
            denial.as_ref().and_then(|(_, signed)| signed.stopped())
        };
    }
    online
}

/// [`with_stopped`] of an update's answer (validate, activate): the relay's signed denial of
/// this request (`token`, its [`lease::DENIAL_HEADER`]) verified as [`held_denial`] does, then
/// the detail read from it in signed mode, or from `header` otherwise.
pub fn stopped_of<L>(
    signing: Signing<'_>,
    online: Result<(Verdict<L>, Stamp), Error>,
    header: Option<&str>,
    token: Option<&str>,
    granted: &Granted<'_>,
    now: i64,
) -> Result<(Verdict<L>, Stamp), Error> {
    let signed = held_denial(signing, &online, token, granted, now);
    with_stopped(online, header, signing.keys, &signed)
}

/// Signed mode: the record a check writes, its denial carrying the relay's signed denial of
/// this request (`denial`, from [`held_denial`]) when the denial written is the one it signs
/// (`denied`: the reason of the check's own denial). Anything else is written as it is.
pub fn with_denial<L>(
    mut record: Record<L>,
    denied: Option<Reason>,
    denial: Option<&(String, lease::SignedDenial)>,
) -> Record<L> {
    if let (Some(mark), Some(reason), Some((token, signed))) =
        (record.denied.as_mut(), denied, denial)
    {
        if mark.reason == reason && signed.reason() == reason {
            mark.signed = Some(token.clone());
            mark.verified = Some(signed.clone());
        }
    }
    record
}

/// A lease's `nonce` claim held to the nonce its request carried (contract §5, freshness): the
/// same, or the grant is another request's answer replayed (`replayed`); none at all is a
/// relay older than the claim, refused in signed mode (`protocol_error`, naming the update).
/// A request sent without a nonce (a face with no randomness for one) asks for none.
fn fresh(sent: Option<&str>, signed: Option<&str>) -> Result<(), Error> {
    match (sent, signed) {
        (None, _) => Ok(()),
        (Some(sent), Some(signed)) if sent == signed => Ok(()),
        (Some(_), Some(_)) => Err(Error::Replayed {
            detail: "signed mode: the grant's lease answers another request (its nonce is not \
                     this request's): an old answer replayed, refused"
                .to_string(),
        }),
        (Some(_), None) => Err(Error::Protocol {
            status: Some(200),
            detail: "signed mode: the relay signed no nonce into the lease (a relay older than \
                     the freshness claim, contract §5): update the relay; its grants are \
                     refused until then"
                .to_string(),
        }),
    }
}

/// Signed mode, under the slot's lock with the record read anew: an online grant held to its
/// lease is refused as a replay when the lease is older than what the record knows
/// ([`replayed`]: the answer becomes `replayed`, the lease is dropped, and the record keeps
/// its denial and its clock); else it is dated from the lease's issue time (its `Date` is
/// the relay's signed `iat`, with the `Age` it came with), never the unsigned `Date`.
/// Unsigned mode (no lease held) changes nothing.
pub fn fresh_grant<T, L: LicenseData>(
    record: Option<&Record<L>>,
    online: Result<(Verdict<T>, Stamp), Error>,
    lease: Option<HeldLease>,
    policy: &GracePolicy,
) -> Held<T> {
    match (online, lease) {
        (Ok((Verdict::Accepted(v), stamp)), Some(lease)) => {
            if let Some(e) = replayed(record, &lease, policy) {
                return (Err(e), None);
            }
            let stamp = Stamp {
                date: Some(lease.issued_at.saturating_add(stamp.age.max(0))),
                age: stamp.age,
            };
            (Ok((Verdict::Accepted(v), stamp)), Some(lease))
        }
        (online, lease) => (online, lease),
    }
}

/// [`hold_lease`]'s refusal of a grant for the activation `id` Polar just made, naming it. It
/// took one of the license's slots on Polar, and the client remembers nothing of it (an
/// unsigned grant is no verdict in signed mode), so the error is the only place its id
/// survives: deactivate it to free the slot.
#[cold]
fn activation_named(e: Error, id: &str) -> Error {
    match e {
        Error::Protocol { status, detail } => Error::Protocol {
            status,
            detail: [
                &detail,
                "; Polar activated this key as ",
                id,
                ", which takes one of its activation slots: free it by deactivating ",
                id,
            ]
            .concat(),
        },
        e => e,
    }
}

/// An online answer, its stamp, and the relay's lease header when there was one.
pub type Leased<T> = ((Verdict<T>, Stamp), Option<String>);

/// An online answer without its lease header, and the lease held for it.
pub type Held<T> = (Result<(Verdict<T>, Stamp), Error>, Option<HeldLease>);

/// What signed mode holds an online answer with: the client's relay keys (empty: unsigned),
/// its policy (the clock tolerance) and its Ed25519 verification.
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    /// The relay keys.
    pub keys: &'a RelayKeys,
    /// The grace policy.
    pub policy: &'a GracePolicy,
    /// The signature check.
    pub ed25519: &'a dyn lease::Ed25519,
}

/// Signed mode: an online grant stands only with a lease that verifies for it (else it is
/// `protocol_error`, see [`hold_lease`]); the lease to store with it. Every shell's validate.
pub fn held<L: LicenseData>(
    signing: Signing<'_>,
    online: Result<Leased<L>, Error>,
    granted: &Granted<'_>,
    now: i64,
) -> Held<L> {
    hold(online, |license, token| {
        hold_lease(signing, granted, license, token, now)
    })
}

/// [`held`] for an activation: the lease is for the activation just made, and a grant
/// without a lease that verifies names it ([`activation_named`]). Every shell's activate.
pub fn held_activation<A: ActivationData>(
    signing: Signing<'_>,
    online: Result<Leased<A>, Error>,
    organization_id: &str,
    req: &ActivateRequest,
    key: &Key,
    nonce: Option<&str>,
    now: i64,
) -> Held<A> {
    hold(online, |read, token| {
        let id = read.activation_id();
        let granted = Granted {
            organization_id,
            key,
            activation_id: Some(id),
            conditions: &req.conditions,
            nonce,
        };
        hold_lease(signing, &granted, &read.validated(), token, now)
            .map_err(|e| activation_named(e, id))
    })
}

/// [`held`] and [`held_activation`]'s answer: a grant kept with the lease `lease` holds for
/// it (given the grant and its lease header), or with `lease`'s error in its place; a denial
/// or an error passes as it is, with no lease.
fn hold<T>(
    online: Result<Leased<T>, Error>,
    lease: impl FnOnce(&T, Option<&str>) -> Result<Option<HeldLease>, Error>,
) -> Held<T> {
    match online {
        Ok(((Verdict::Accepted(answer), stamp), token)) => match lease(&answer, token.as_deref()) {
            Ok(lease) => (Ok((Verdict::Accepted(answer), stamp)), lease),
            Err(e) => (Err(e), None),
        },
        Ok((answer, _)) => (Ok(answer), None),
        Err(e) => (Err(e), None),
    }
}

/// Puts an online grant's lease into the record written after it, when the record's good
/// verdict is that grant's (a validate of another question leaves the record's verdict, and
/// its lease, as they were), and gates the record with it as [`gate_lease`] would once it is
/// read again: the record's `lease_gate` is the slot's lease as the call leaves it.
pub fn with_lease<L>(mut record: Record<L>, lease: Option<HeldLease>) -> Record<L> {
    if let (Some(good), Some(lease)) = (record.good.as_mut(), lease) {
        if good.activation_id == lease.activation_id && good.conditions == lease.conditions {
            good.lease = Some(lease.token);
            record.lease_gate = LeaseGate::Signed(Some(lease.window));
        }
    }
    record
}
