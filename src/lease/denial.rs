//! Signed denials (issue #62): what the seller's relay signs when Polar denies a key
//! ([`DenialClaims`]), and a client's reading of one ([`verify_denial`]), so a proxy cannot
//! forge a "revoked" any more than a grant. The token is a lease's (PASETO v4.public, the same
//! keys and footer); its claims carry a `typ` that no lease has.

use super::{
    key_hash, rfc3339, signed_parts, strict_object, unix, Builtin, Ed25519, NoLease, RelayKeys,
    ISSUER,
};
use crate::error::Error;
use crate::key::Key;
use serde::Serialize;

/// The `typ` of a signed denial's claims (a lease's claims have no `typ`: neither reads as
/// the other, each reader refusing a member it does not know).
const DENIAL_TYP: &str = "denial";

/// What a signed denial says (issue #62): Polar denied this key of this organization, with
/// this activation, on this machine (the implicit assertion), for the reason `reason`, at
/// `iat`, in answer to the request that carried `nonce`; a client may stand on it offline
/// (a perpetual fallback) until `exp`. Times are unix seconds here, RFC 3339 in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialClaims {
    /// The seller organization.
    pub organization_id: String,
    /// SHA-256 of the license key ([`key_hash`]).
    pub key_sha256: String,
    /// The activation the request named (`None`: none).
    pub activation_id: Option<String>,
    /// The denial's reason code as the core classifies Polar's answer (`expired`,
    /// `inactive`, …: [`crate::reason::Reason::code`]).
    pub reason: String,
    /// When the relay signed it (Polar's answer's time).
    pub issued_at: i64,
    /// Until when a client may stand on it offline (the relay's lease length).
    pub expires_at: i64,
    /// A unique id (a UUID v4).
    pub id: String,
    /// The request's [`super::NONCE_HEADER`], copied unchanged: a denial is signed only for a
    /// request that carried one.
    pub nonce: String,
    /// Why the key stopped, as the relay's lifecycle record explains the denial (issue #68,
    /// [`crate::stopped`]): written only when there is one, and only for a request whose nonce
    /// asks for it ([`crate::stopped::STOP_MARK`]); an older client's reading refuses a
    /// member it does not know.
    pub stop: Option<crate::stopped::Stopped>,
}

#[derive(Serialize)]
pub(super) struct DenialWire {
    iss: String,
    typ: String,
    sub: String,
    iat: String,
    exp: String,
    jti: String,
    org: String,
    act: Option<String>,
    reason: String,
    nonce: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
}

const DENIAL_FIELDS: [&str; 11] = [
    "iss", "typ", "sub", "iat", "exp", "jti", "org", "act", "reason", "nonce", "stop",
];

impl DenialClaims {
    pub(super) fn to_wire(&self) -> Result<DenialWire, Error> {
        Ok(DenialWire {
            iss: ISSUER.to_string(),
            typ: DENIAL_TYP.to_string(),
            sub: self.key_sha256.clone(),
            iat: rfc3339(self.issued_at)?,
            exp: rfc3339(self.expires_at)?,
            jti: self.id.clone(),
            org: self.organization_id.clone(),
            act: self.activation_id.clone(),
            reason: self.reason.clone(),
            nonce: self.nonce.clone(),
            stop: self.stop.as_ref().map(crate::stopped::Stopped::to_text),
        })
    }

    fn read(payload: &[u8]) -> Option<DenialClaims> {
        use crate::json::JsonIn;
        std::str::from_utf8(payload).ok()?;
        let v = strict_object(payload, &DENIAL_FIELDS)?;
        let text = |name: &str| v.member(name)?.string();
        if text("iss")? != ISSUER || text("typ")? != DENIAL_TYP {
            return None;
        }
        Some(DenialClaims {
            organization_id: text("org")?,
            key_sha256: text("sub")?,
            activation_id: v.optional("act", JsonIn::string)?,
            reason: text("reason")?,
            issued_at: unix(&text("iat")?)?,
            expires_at: unix(&text("exp")?)?,
            id: text("jti")?,
            nonce: text("nonce")?,
            // A detail this library cannot read (a kind a newer relay adds) is no detail: the
            // denial itself stands as signed.
            stop: v
                .optional("stop", JsonIn::string)?
                .as_deref()
                .and_then(crate::stopped::Stopped::from_text),
        })
    }
}

/// What a denial must match to be this check's: as [`super::LeaseExpect`], without a benefit (a
/// denial names none).
#[derive(Debug, Clone, Copy)]
pub struct DenialExpect<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The license key.
    pub key: &'a Key,
    /// The activation the request named (`None`: none).
    pub activation_id: Option<&'a str>,
    /// This machine's fingerprint, as the request sent it (`None`: none).
    pub machine: Option<&'a str>,
}

/// A denial the relay signed, verified ([`verify_denial_with`]): the one kind of denial a
/// client in signed mode may widen a verdict on (the perpetual fallback). Only this module
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDenial {
    kid: String,
    reason: crate::reason::Reason,
    at: i64,
    until: i64,
    nonce: String,
    stop: Option<crate::stopped::Stopped>,
}

impl SignedDenial {
    /// Why the key stopped, as the relay signed it (issue #68): the one detail a client in
    /// signed mode believes.
    pub fn stopped(&self) -> Option<crate::stopped::Stopped> {
        self.stop
    }

    /// The key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The reason the relay signed.
    pub fn reason(&self) -> crate::reason::Reason {
        self.reason
    }

    /// When the relay signed it (unix seconds, the relay's clock).
    pub fn at(&self) -> i64 {
        self.at
    }

    /// Until when a client may stand on it offline.
    pub fn until(&self) -> i64 {
        self.until
    }

    /// The nonce of the request it answers.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

/// Verifies a signed denial `token` against the trusted `keys` for `expect`: its signature
/// (checked by `ed25519`), its claims (a denial's, the organization, key and activation
/// expected, a reason code this library knows). The clock and the nonce are the caller's
/// to hold it to (an online denial to its request's nonce; a stored one is read offline).
pub fn verify_denial_with(
    token: &str,
    keys: &RelayKeys,
    expect: &DenialExpect<'_>,
    ed25519: &dyn Ed25519,
) -> Result<SignedDenial, NoLease> {
    let (parts, footer) = signed_parts(token, keys, expect.machine, ed25519)?;
    let claims = DenialClaims::read(&parts.message).ok_or(NoLease::Claims)?;
    let reason = crate::reason::Reason::from_code(&claims.reason).ok_or(NoLease::Claims)?;
    let same = claims.organization_id == expect.organization_id
        && claims.key_sha256 == key_hash(expect.key)
        && claims.activation_id.as_deref() == expect.activation_id;
    if !same {
        return Err(NoLease::Mismatch);
    }
    Ok(SignedDenial {
        kid: footer.kid,
        reason,
        at: claims.issued_at,
        until: claims.expires_at,
        nonce: claims.nonce,
        stop: claims.stop,
    })
}

/// [`verify_denial_with`] with the core's own Ed25519 ([`Builtin`]).
pub fn verify_denial(
    token: &str,
    keys: &RelayKeys,
    expect: &DenialExpect<'_>,
) -> Result<SignedDenial, NoLease> {
    verify_denial_with(token, keys, expect, &Builtin)
}
