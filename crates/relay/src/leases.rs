//! The leases the relay issues: who signs them ([`SignWith`]) and for how long, and the
//! claims of a grant Polar gave (now, or earlier: the store's), with the license key's and
//! customer's ids it names.

use polar_license::lease::{key_hash, prepare_denial, DenialClaims, LeaseClaims, DENIAL_HEADER};
use polar_license::proto::{
    parse_activate_for, parse_validate_for, Expect, HttpResponse, Operation,
};
use polar_license::Verdict;
use polar_license_rules::CheckedBody;

use crate::clock::Now;
use crate::pending::Pending;
use crate::types::{machine_of, Call, Holder, RelayResponse, SignWith, Unsigned};

/// Who signs the relay's leases, and how long a lease lasts.
pub(crate) struct Leases {
    pub(crate) signer: SignWith,
    /// A lease's length (never past the license's `expires_at`).
    pub(crate) seconds: i64,
}

impl Leases {
    /// The lease's claims when `upstream` is a grant the core accepts for the request, with the
    /// license key's and customer's ids it names, else why not. Polar gave the answer at
    /// `verified_at` (`now` for one just given, the store's time for a stored one): checked as
    /// of `now`, its lease issued at `verified_at`, so it never outlives what Polar said by
    /// more than the lease length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn grant(
        &self,
        op: Operation,
        checked: &CheckedBody,
        call: &Call,
        upstream: &HttpResponse,
        now: Now,
        verified_at: i64,
        entropy: Option<[u8; 16]>,
    ) -> Result<(LeaseClaims, Holder), String> {
        if upstream.status != 200 {
            return Err("not a grant".into());
        }
        let org = checked.organization_id.as_str();
        let at = now.unix_seconds;
        let (license, activation_id) = match call {
            Call::Validate(req) => {
                let expect = Expect::validate(org, req, at).ok_or("no key")?;
                match parse_validate_for(upstream, &expect).map_err(|e| e.text())? {
                    Verdict::Accepted(v) => (v.license_key, v.activation.map(|a| a.id)),
                    Verdict::Denied(d) => return Err(d.detail),
                }
            }
            Call::Activate(req) => {
                let expect = Expect::activate(org, req, at).ok_or("no key")?;
                match parse_activate_for(upstream, &expect).map_err(|e| e.text())? {
                    Verdict::Accepted(a) => (a.license_key, Some(a.activation.id)),
                    Verdict::Denied(d) => return Err(d.detail),
                }
            }
            Call::Deactivate(_) => return Err(format!("{} is never leased", op.as_str())),
        };
        let license_expires_at = license.expires_at.map(|t| t.unix_timestamp());
        // A cancelled subscription's end (2027-01), signed so that a client's perpetual
        // fallback reads it from the lease, never from the unsigned body (issue #62); written
        // only for a client that asks ([`Pending::claims`](crate::pending::Pending::claims)).
        let subscription_ends_at = license.subscription.as_ref().and_then(|sub| {
            (sub.cancel_at_period_end || sub.status == "canceled")
                .then_some(sub.ends_at.or(sub.current_period_end))
                .flatten()
                .map(|t| t.unix_timestamp())
        });
        let at = verified_at.min(at);
        let expires_at = license_expires_at.map_or(at.saturating_add(self.seconds), |l| {
            l.min(at.saturating_add(self.seconds))
        });
        let id = entropy
            .map(|bytes| uuid::Builder::from_random_bytes(bytes).into_uuid())
            .ok_or("no randomness for the lease id")?;
        let holder = Holder {
            license_key_id: license.id,
            customer_id: license.customer_id,
        };
        let claims = LeaseClaims {
            organization_id: license.organization_id,
            key_sha256: key_hash(&license.key),
            activation_id,
            status: license.status.as_str().to_string(),
            license_expires_at,
            subscription_ends_at,
            benefit_id: license.benefit_id,
            usage: license.usage,
            limit_usage: license.limit_usage,
            limit_activations: license.limit_activations,
            issued_at: at,
            not_before: at,
            expires_at,
            id: id.hyphenated().to_string(),
            nonce: None,
            entitlements: None,
        };
        Ok((claims, holder))
    }

    /// The signed denial's claims (issue #62) when `upstream` is Polar's denial of the
    /// request, as the core reads it (the reason code a client's fallback reads), and the
    /// request carried a nonce that asks for signed facts (`nonce`): dated `now`, standing
    /// offline no longer than a lease. `None` otherwise (then the denial goes unsigned, and a
    /// client in signed mode widens nothing on it).
    pub(crate) fn denial(
        &self,
        checked: &CheckedBody,
        call: &Call,
        upstream: &HttpResponse,
        now: Now,
        nonce: Option<&str>,
        entropy: Option<[u8; 16]>,
    ) -> Option<DenialClaims> {
        let nonce = nonce.filter(|n| polar_license::lease::asks_facts(n))?;
        let org = checked.organization_id.as_str();
        let at = now.unix_seconds;
        let (key, activation_id, reason) = match call {
            Call::Validate(req) => {
                let expect = Expect::validate(org, req, at)?;
                match parse_validate_for(upstream, &expect).ok()? {
                    Verdict::Denied(d) => (&req.key, req.activation_id.clone(), d.reason),
                    Verdict::Accepted(_) => return None,
                }
            }
            Call::Activate(req) => {
                let expect = Expect::activate(org, req, at)?;
                match parse_activate_for(upstream, &expect).ok()? {
                    Verdict::Denied(d) => (&req.key, None, d.reason),
                    Verdict::Accepted(_) => return None,
                }
            }
            Call::Deactivate(_) => return None,
        };
        let id = entropy.map(|bytes| uuid::Builder::from_random_bytes(bytes).into_uuid())?;
        Some(DenialClaims {
            organization_id: org.to_string(),
            key_sha256: key_hash(key.as_ref()?),
            activation_id,
            reason: reason.code().to_string(),
            issued_at: at,
            expires_at: at.saturating_add(self.seconds),
            id: id.hyphenated().to_string(),
            nonce: nonce.to_string(),
            // Issue #68's detail: crate::lifecycle::signed adds it.
            stop: None,
        })
    }

    /// `r` (a denial's answer to `pending`) with its signed denial `denial` (issue #62) signed
    /// here, or to be signed elsewhere; without one when it cannot be signed (the client then
    /// widens nothing on it). `stored`: the answer is the store's (said so in the log line).
    pub(crate) fn sign_denial(
        &self,
        pending: &Pending,
        mut r: RelayResponse,
        denial: &DenialClaims,
        stored: bool,
    ) -> (RelayResponse, Unsigned) {
        let machine = machine_of(&pending.checked);
        let signed = match &self.signer {
            SignWith::Key(key) => key.sign_denial(denial, machine.as_deref()).map(|token| {
                r.set(DENIAL_HEADER, &token);
                None
            }),
            SignWith::External { kid, .. } => prepare_denial(denial, kid, machine.as_deref())
                .map(|prepared| Some((prepared, machine))),
        };
        match signed {
            Ok(unsigned) => (r, unsigned),
            Err(e) => {
                log::error!(
                    "relay: {} {} {}{} without a signed denial: {}",
                    pending.op.as_str(),
                    crate::logged::key(&pending.key),
                    r.status,
                    if stored { " (stored)" } else { "" },
                    e.text()
                );
                (r, None)
            }
        }
    }
}
