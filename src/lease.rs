//! Signed leases (issue #25): what a seller's relay signs on every grant, and what a client in
//! *signed mode* needs before it licenses from its cache.
//!
//! Polar signs none of its answers, so an ordinary record is sealed only with secrets that
//! live on the user's machine ([`crate::cache`]): whoever reads them can re-seal a forged one.
//! A relay run by the seller (`polar-license relay serve`) holds the seller's Polar token and an
//! Ed25519 signing key; on every granted validate or activate it adds a **lease**: a
//! [PASETO `v4.public`](https://github.com/paseto-standard/paseto-spec) token saying "this key of
//! this organization, with this activation, on this machine, was granted by Polar at `iat`, good
//! offline until `exp`". The client holds only public keys ([`RelayKeys`]), so forging a lease
//! takes the relay's private key, which never leaves the seller.
//!
//! The token, as the relay sends it in the [`LEASE_HEADER`] response header:
//!
//! ```text
//! v4.public.<base64url(claims JSON ‖ Ed25519 signature)>.<base64url({"kid":"…"})>
//! ```
//!
//! * The footer names the signing key (`kid`), so two keys can be trusted at once (rotation).
//! * The **implicit assertion** (signed, never sent) is the machine fingerprint the activation
//!   is bound to ([`crate::fingerprint`]): a lease copied to another machine does not verify.
//! * The claims ([`LeaseClaims`]): PASETO's registered `iss`, `sub` (the SHA-256 of the license
//!   key, never the key), `iat`, `nbf`, `exp` and `jti`, and Polar's facts: organization,
//!   activation, status, the license's `expires_at`, benefit, usage and limits. `exp` is never
//!   past the license's own expiry.
//!
//! Why PASETO `v4.public` rather than a JWS with `EdDSA`: one algorithm per version (no `alg`
//! header to downgrade or confuse), the implicit assertion binds the machine without sending
//! it, PASERK gives the public key one text form (`k4.public.…`) every face takes, and a
//! well-kept implementation (`pasetors`) passes the official test vectors
//! (`tests/lease_vectors.rs`). `pasetors` makes keys and signs; to verify, the core reads the
//! token itself (the same few rules, held to pasetors on thousands of edited tokens and to the
//! standard's vectors) and asks an [`Ed25519`] only whether the signature verifies: natively
//! its own ([`Builtin`], the `ed25519-compact` pasetors uses), in the npm package the host's
//! (issue #38: apps without a relay key load no signature verifier).
//!
//! Verification ([`verify`]) never fails loudly: a lease that does not verify for any reason
//! (size, format, unknown `kid`, signature, claims, organization, key, activation, benefit,
//! machine, time) is [`NoLease`], which the caller treats as *no lease*: never a grant, never an
//! error that stops a check.

use crate::error::Error;
use crate::key::Key;
use ct_codecs::{Decoder, Encoder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

mod usage;
pub use usage::{
    prepare_usage, verify_usage, verify_usage_with, UsageClaims, UsageExpect, USAGE_HEADER,
};

mod asked;
pub use asked::AskedEd25519;

mod denial;
pub use denial::{verify_denial, verify_denial_with, DenialClaims, DenialExpect, SignedDenial};

mod entitlements;
#[cfg(feature = "entitlement-text")]
use entitlements::entitlement_text;
#[cfg(feature = "entitlements")]
use entitlements::{read_entitlements, WireEntitlements};
pub use entitlements::{EntitlementClaims, EntitlementValue};

mod keys;
use keys::check_kid;
pub use keys::{read_key_file, RelayKeys, SigningKey};

mod seat;
pub use seat::{
    prepare_seat, verify_seat, verify_seat_with, SeatClaims, SeatExpect, SEAT_HEADER, SEAT_KINDS,
};

/// The response header a relay puts the lease in (its answers' bodies are Polar's own).
pub const LEASE_HEADER: &str = "polar-license-lease";

/// The request header a client in signed mode sends with each online request to a relay: a
/// fresh random nonce (128 random bits, written as 32 lowercase hex digits: characters of
/// base64url's alphabet), which the relay signs into the lease's `nonce` claim (contract §5,
/// freshness).
pub const NONCE_HEADER: &str = "polar-license-nonce";

/// How a client in signed mode asks its relay for signed facts (issue #62): the lease's
/// `sub_end` claim (a cancelled subscription's end) and, on a denial, a signed denial
/// ([`DENIAL_HEADER`]). Its nonce ([`NONCE_HEADER`]) ends with this mark. A client older than
/// them sends a nonce without it, and the relay then signs neither (such a client's reading
/// of a lease refuses a claim it does not know). The ask rides in the nonce rather than in a
/// header of its own so that a browser's CORS preflight to a relay older than it asks for
/// nothing that relay does not allow: such a relay copies the nonce as it is, and signs
/// neither fact (the client then falls back on nothing, and says why).
pub const FACTS_MARK: &str = "-facts";

/// Whether the request whose nonce is `nonce` asks for signed facts ([`FACTS_MARK`]).
pub fn asks_facts(nonce: &str) -> bool {
    nonce.ends_with(FACTS_MARK)
}

/// How a client in signed mode asks its relay for the key's entitlements (issue #68): the
/// lease's `ent` claim ([`EntitlementClaims`]). Its nonce ends with this mark, which ends with
/// [`crate::stopped::STOP_MARK`] and [`FACTS_MARK`] (such a client reads the signed facts and
/// a signed denial's `stop` claim too). A client older than the claim
/// sends a nonce without it, and the relay then leaves the claim out (that client's reading
/// refuses a member it does not know).
pub const ENTITLEMENTS_MARK: &str = "-ent-stop-facts";

/// Whether the request whose nonce is `nonce` asks for the entitlements claim
/// ([`ENTITLEMENTS_MARK`]).
pub fn asks_entitlements(nonce: &str) -> bool {
    nonce.ends_with(ENTITLEMENTS_MARK)
}

/// The response header a relay puts a signed denial in ([`DenialClaims`]): Polar's denial of
/// this key, for the request that carried the nonce it names. In signed mode a denial
/// widens nothing (the perpetual fallback) unless it comes with one that verifies.
pub const DENIAL_HEADER: &str = "polar-license-denial";

/// Whether `text` is a nonce as [`NONCE_HEADER`] carries it: 22 to 86 characters of base64url
/// without padding (128 to 512 bits). A relay signs nothing else into a lease.
pub fn is_nonce(text: &str) -> bool {
    (22..=86).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A nonce for [`NONCE_HEADER`] from 16 random bytes: 32 hex digits (hex rather than
/// base64's 22 characters: the npm engine has hex already, and no base64 encoder), then
/// [`ENTITLEMENTS_MARK`] (this client reads the entitlements claim; the mark ends with
/// [`crate::stopped::STOP_MARK`], which ends with [`FACTS_MARK`]: it reads the signed facts and
/// a signed denial's `stop` claim too).
pub fn nonce_text(random: &[u8; 16]) -> String {
    let mut text = crate::hex::hex(random);
    // Without the feature the client reads no `ent` claim: it asks for the rest only.
    if cfg!(any(feature = "entitlements", feature = "entitlement-text")) {
        text.push_str(ENTITLEMENTS_MARK);
    } else {
        text.push_str(crate::stopped::STOP_MARK);
    }
    text
}

/// A lease longer than this is never parsed (a real one is about 700 bytes).
pub const MAX_LEASE_BYTES: usize = 4096;

/// At most this many relay keys are trusted at once (two is the rotation case).
pub const MAX_RELAY_KEYS: usize = 8;

/// The `iss` of every lease.
pub const ISSUER: &str = "polar-license-relay";

/// What a lease says. Times are unix seconds here and RFC 3339 in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseClaims {
    /// The seller organization.
    pub organization_id: String,
    /// SHA-256 of the license key, 64 lowercase hex digits ([`key_hash`]).
    pub key_sha256: String,
    /// The activation the grant was for (`None`: a validate without one).
    pub activation_id: Option<String>,
    /// Polar's status of the key (always `granted`: nothing else is signed).
    pub status: String,
    /// Polar's `expires_at` of the license.
    pub license_expires_at: Option<i64>,
    /// The end of the subscription the key was granted through when the customer cancelled
    /// it (API version 2027-01: `cancel_at_period_end`, or status `canceled`; its `ends_at`,
    /// else its `current_period_end`), as [`crate::grace::LicenseData::cancelled_until`]
    /// reads it. Signed only for a client that asks for signed facts ([`FACTS_MARK`]).
    pub subscription_ends_at: Option<i64>,
    /// The license-key benefit.
    pub benefit_id: String,
    /// Polar's `usage`.
    pub usage: i64,
    /// Polar's `limit_usage`.
    pub limit_usage: Option<i64>,
    /// Polar's `limit_activations`.
    pub limit_activations: Option<i64>,
    /// When the relay signed it.
    pub issued_at: i64,
    /// Not valid before.
    pub not_before: i64,
    /// Not valid from this time on (never past `license_expires_at`).
    pub expires_at: i64,
    /// A unique id (a UUID v4).
    pub id: String,
    /// The client's [`NONCE_HEADER`] of the request this lease answers, copied unchanged
    /// (contract §5, freshness): an online grant in signed mode stands only with its own
    /// request's nonce. `None`: the request carried none, or the relay is older than the claim.
    pub nonce: Option<String>,
    /// What Polar knows of the key's customer (issue #68): the key's Feature Flag values and
    /// its customer's meter balances, as the relay last read them with its organization token.
    /// `None`: the relay did not sign them (unsigned for a client that does not ask
    /// ([`ENTITLEMENTS_MARK`]), a relay older than the claim, or values it had not read yet
    /// or a webhook made stale). `Some` with an empty map: Polar grants the key no values.
    pub entitlements: Option<EntitlementClaims>,
}

/// The claims as they are written in the token (PASETO's registered names where one exists).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    iss: String,
    sub: String,
    iat: String,
    nbf: String,
    exp: String,
    jti: String,
    org: String,
    act: Option<String>,
    status: String,
    license_expires_at: Option<String>,
    /// Written only when there is one, and only for a client that asks ([`FACTS_MARK`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub_end: Option<String>,
    benefit: String,
    usage: i64,
    limit_usage: Option<i64>,
    limit_activations: Option<i64>,
    /// Written only when there is one: a client older than the claim reads every lease
    /// without it as before (its reading refuses unknown members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// Written only when the relay signs them, and only for a client that asks
    /// ([`ENTITLEMENTS_MARK`]).
    #[cfg(feature = "entitlements")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ent: Option<WireEntitlements>,
    /// The `ent` claim's values as JSON text ([`entitlement_text`]), never written.
    #[cfg(feature = "entitlement-text")]
    #[serde(skip)]
    ent_text: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer {
    kid: String,
}

/// [`Wire`]'s members, for [`read_wire`].
const WIRE_FIELDS: [&str; 17] = [
    "iss",
    "sub",
    "iat",
    "nbf",
    "exp",
    "jti",
    "org",
    "act",
    "status",
    "license_expires_at",
    "sub_end",
    "benefit",
    "usage",
    "limit_usage",
    "limit_activations",
    "nonce",
    "ent",
];

/// An object whose members are all among `fields` (`deny_unknown_fields`), read by the core's
/// strict reader ([`crate::strict`]: no member twice, no lone surrogate).
fn strict_object(bytes: &[u8], fields: &[&str]) -> Option<crate::strict::Value> {
    use crate::json::JsonIn;
    let v = crate::strict::parse(bytes).ok()?;
    let known = v
        .members()?
        .iter()
        .all(|(k, _)| fields.contains(&k.as_str()));
    known.then_some(v)
}

/// The claims of a verified token as serde reads [`Wire`] (every member of its type, the
/// `Option`s absent or `null`, no other member), through the core's strict reader instead of
/// serde_json: verification is the npm engine's only use of serde_json, 25 KB of its wasm.
fn read_wire(payload: &[u8]) -> Option<Wire> {
    use crate::json::JsonIn;
    let v = strict_object(payload, &WIRE_FIELDS)?;
    // Without the feature a lease with the claim is refused, as by a client older than it.
    #[cfg(not(any(feature = "entitlements", feature = "entitlement-text")))]
    if v.member("ent").is_some() {
        return None;
    }
    let text = |name: &str| v.member(name)?.string();
    Some(Wire {
        iss: text("iss")?,
        sub: text("sub")?,
        iat: text("iat")?,
        nbf: text("nbf")?,
        exp: text("exp")?,
        jti: text("jti")?,
        org: text("org")?,
        act: v.optional("act", JsonIn::string)?,
        status: text("status")?,
        license_expires_at: v.optional("license_expires_at", JsonIn::string)?,
        sub_end: v.optional("sub_end", JsonIn::string)?,
        benefit: text("benefit")?,
        usage: v.member("usage")?.int()?,
        limit_usage: v.optional("limit_usage", JsonIn::int)?,
        limit_activations: v.optional("limit_activations", JsonIn::int)?,
        nonce: v.optional("nonce", JsonIn::string)?,
        #[cfg(feature = "entitlements")]
        ent: match v.member("ent") {
            None => None,
            Some(ent) => Some(WireEntitlements::from(read_entitlements(&ent)?)),
        },
        #[cfg(feature = "entitlement-text")]
        ent_text: match v.member("ent") {
            None => None,
            Some(ent) => Some(entitlement_text(&ent)?),
        },
    })
}

/// The footer `{"kid":…}`, as serde reads [`Footer`] (see [`read_wire`]).
fn read_footer(bytes: &[u8]) -> Option<Footer> {
    use crate::json::JsonIn;
    let v = strict_object(bytes, &["kid"])?;
    Some(Footer {
        kid: v.member("kid")?.string()?,
    })
}

fn rfc3339(unix: i64) -> Result<String, Error> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| Error::invalid("lease", "a time out of range"))
}

fn unix(text: &str) -> Option<i64> {
    crate::rfc3339::DateTime::parse(text).map(|t| t.unix_timestamp())
}

/// SHA-256 of a license key as a lease names it: 64 lowercase hex digits.
pub fn key_hash(key: &Key) -> String {
    crate::hex::hex(&Sha256::digest(key.expose().as_bytes()))
}

impl LeaseClaims {
    fn to_wire(&self) -> Result<Wire, Error> {
        Ok(Wire {
            iss: ISSUER.to_string(),
            sub: self.key_sha256.clone(),
            iat: rfc3339(self.issued_at)?,
            nbf: rfc3339(self.not_before)?,
            exp: rfc3339(self.expires_at)?,
            jti: self.id.clone(),
            org: self.organization_id.clone(),
            act: self.activation_id.clone(),
            status: self.status.clone(),
            license_expires_at: self.license_expires_at.map(rfc3339).transpose()?,
            sub_end: self.subscription_ends_at.map(rfc3339).transpose()?,
            benefit: self.benefit_id.clone(),
            usage: self.usage,
            limit_usage: self.limit_usage,
            limit_activations: self.limit_activations,
            nonce: self.nonce.clone(),
            #[cfg(feature = "entitlements")]
            ent: self.entitlements.clone().map(WireEntitlements::from),
            #[cfg(feature = "entitlement-text")]
            ent_text: None,
        })
    }

    fn from_wire(w: Wire) -> Option<LeaseClaims> {
        if w.iss != ISSUER {
            return None;
        }
        Some(LeaseClaims {
            organization_id: w.org,
            key_sha256: w.sub,
            activation_id: w.act,
            status: w.status,
            license_expires_at: match w.license_expires_at {
                Some(t) => Some(unix(&t)?),
                None => None,
            },
            subscription_ends_at: match w.sub_end {
                Some(t) => Some(unix(&t)?),
                None => None,
            },
            benefit_id: w.benefit,
            usage: w.usage,
            limit_usage: w.limit_usage,
            limit_activations: w.limit_activations,
            issued_at: unix(&w.iat)?,
            not_before: unix(&w.nbf)?,
            expires_at: unix(&w.exp)?,
            id: w.jti,
            nonce: w.nonce,
            #[cfg(feature = "entitlements")]
            entitlements: w.ent.map(|e| EntitlementClaims {
                values: e.values,
                balances: e.balances,
            }),
            #[cfg(not(feature = "entitlements"))]
            entitlements: None,
        })
    }
}

/// The token's message (the claims' JSON) and footer (`{"kid":…}`), as [`SigningKey::sign`]
/// and [`prepare`] write them.
fn message_and_footer(claims: &LeaseClaims, kid: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
    message_and_footer_of(&claims.to_wire()?, kid)
}

/// [`message_and_footer`] of any claims' wire form (a lease's, a denial's).
fn message_and_footer_of<W: Serialize>(wire: &W, kid: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
    check_kid(kid)?;
    let message = serde_json::to_vec(wire)
        .map_err(|_| Error::invalid("lease", "the claims could not be written"))?;
    let footer = serde_json::to_vec(&Footer {
        kid: kid.to_string(),
    })
    .map_err(|_| Error::invalid("lease", "the footer could not be written"))?;
    Ok((message, footer))
}

const V4_PUBLIC_HEADER: &str = "v4.public.";

/// PASETO's pre-authentication encoding: the piece count, then each piece's length (both
/// little-endian u64 with the top bit clear) and bytes.
fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let le64 = |n: usize| ((n as u64) & (u64::MAX >> 1)).to_le_bytes();
    let mut out = Vec::with_capacity(8 + pieces.iter().map(|p| 8 + p.len()).sum::<usize>());
    out.extend_from_slice(&le64(pieces.len()));
    for piece in pieces {
        out.extend_from_slice(&le64(piece.len()));
        out.extend_from_slice(piece);
    }
    out
}

/// A lease ready to be signed by a key held elsewhere (WebCrypto's non-extractable key in the
/// npm package's relay): sign [`UnsignedLease::pre_auth`] with Ed25519, then
/// [`UnsignedLease::assemble`] the token. The result is the token [`SigningKey::sign`] makes
/// with the same key (Ed25519 signatures are deterministic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedLease {
    message: Vec<u8>,
    footer: Vec<u8>,
    pre_auth: Vec<u8>,
    /// The response header the token goes in ([`LEASE_HEADER`], [`DENIAL_HEADER`],
    /// [`SEAT_HEADER`] or [`USAGE_HEADER`]).
    header: &'static str,
}

/// The `v4.public` lease for `claims` under `kid`, bound to `machine`, before its signature.
pub fn prepare(
    claims: &LeaseClaims,
    kid: &str,
    machine: Option<&str>,
) -> Result<UnsignedLease, Error> {
    let (message, footer) = message_and_footer(claims, kid)?;
    Ok(unsigned_of(message, footer, machine, LEASE_HEADER))
}

/// The signed denial for `claims` under `kid`, bound to `machine`, before its signature (as
/// [`prepare`] for a lease; its header is [`DENIAL_HEADER`]).
pub fn prepare_denial(
    claims: &DenialClaims,
    kid: &str,
    machine: Option<&str>,
) -> Result<UnsignedLease, Error> {
    let (message, footer) = message_and_footer_of(&claims.to_wire()?, kid)?;
    Ok(unsigned_of(message, footer, machine, DENIAL_HEADER))
}

fn unsigned_of(
    message: Vec<u8>,
    footer: Vec<u8>,
    machine: Option<&str>,
    header: &'static str,
) -> UnsignedLease {
    let implicit = machine.unwrap_or("").as_bytes();
    let pre_auth = pae(&[V4_PUBLIC_HEADER.as_bytes(), &message, &footer, implicit]);
    UnsignedLease {
        message,
        footer,
        pre_auth,
        header,
    }
}

/// Whether `token`'s signature verifies under the key its footer names in `keys`, for the
/// implicit assertion `machine`: the signature alone (no claim, time or binding checked). A
/// relay that signs elsewhere checks its own tokens with it before sending one.
pub fn signature_verifies(token: &str, keys: &RelayKeys, machine: Option<&str>) -> bool {
    let Some(parts) = Parts::split(token) else {
        return false;
    };
    let Some(key) = read_footer(&parts.footer).and_then(|f| keys.find(&f.kid)) else {
        return false;
    };
    Builtin.verify(key, &parts.pre_auth(machine), &parts.signature) == Checked::Valid
}

/// What a signature check answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The signature verifies.
    Valid,
    /// It does not (or the key or signature is malformed).
    Invalid,
    /// Not known yet: the verifier has asked its host, and the caller runs again once it
    /// answered (the npm engine's verifier; until then the lease is no lease,
    /// [`NoLease::Pending`]).
    Pending,
}

/// Verifies Ed25519 signatures for the lease code: the one step of a lease's verification that
/// may be done outside the core. Everything else (the token's format, the key its `kid`
/// names, the bytes signed, the claims and what they must match, the times) is the core's, on
/// every face.
///
/// [`Builtin`] is the core's own (the native library, the CLI, the C library, the relay). The
/// npm engine's is the host's `crypto.subtle` Ed25519, or a separately loaded wasm verifier
/// where the host has none, so that apps without a relay key never load a signature verifier
/// (issue #38). A verifier that lies (answers [`Checked::Valid`] for any signature) makes a
/// forged lease with the right claims verify (bound to any machine: the machine is only in
/// the signed bytes): it must be trusted as the process that runs the check is. It cannot
/// make anything license without a lease, nor with a lease for another organization, key,
/// activation or benefit, one that is not a grant, nor an expired one.
pub trait Ed25519 {
    /// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Checked;

    /// Whether this verifier may answer [`Checked::Pending`] (it asks a host that answers
    /// later): a machine of the core then keeps what it was given until the answers are in
    /// (`flow::Want::Verify`). `false` for a verifier that answers at once, as the core's.
    fn defers(&self) -> bool {
        false
    }

    /// Whether a verification answered [`Checked::Pending`] since the host last took the
    /// questions (always `false` for a verifier that answers at once).
    fn pending(&self) -> bool {
        false
    }
}

/// The core's Ed25519 verification: `ed25519-compact`, the implementation pasetors verifies
/// PASETO `v4.public` with (the same checks: a canonical `S`, no small-order key or `R`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl Ed25519 for Builtin {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Checked {
        let key = ed25519_compact::PublicKey::new(*public_key);
        let signature = ed25519_compact::Signature::new(*signature);
        match key.verify(message, &signature) {
            Ok(()) => Checked::Valid,
            Err(_) => Checked::Invalid,
        }
    }
}

/// A `v4.public` token's parts, before anything is verified: the message (the claims' JSON),
/// the signature and the footer, decoded as pasetors' `UntrustedToken` decodes them (the
/// header, a non-empty payload longer than a signature, at most one footer, unpadded
/// base64url). The core splits tokens itself so that the signature alone can be checked
/// elsewhere ([`Ed25519`]); `tests/lease_vectors.rs` holds this to the standard's vectors and
/// to pasetors.
struct Parts {
    message: Vec<u8>,
    signature: [u8; 64],
    footer: Vec<u8>,
}

impl Parts {
    fn split(token: &str) -> Option<Parts> {
        let rest = token.strip_prefix(V4_PUBLIC_HEADER)?;
        let (payload, footer) = match rest.split_once('.') {
            Some((payload, footer)) => (payload, footer),
            None => (rest, ""),
        };
        if payload.is_empty() || footer.contains('.') {
            return None;
        }
        let b64 = |text: &str| ct_codecs::Base64UrlSafeNoPadding::decode_to_vec(text, None).ok();
        let mut message = b64(payload)?;
        if message.len() <= 64 {
            return None;
        }
        let at = message.len() - 64;
        let signature: [u8; 64] = message[at..].try_into().ok()?;
        message.truncate(at);
        Some(Parts {
            message,
            signature,
            footer: b64(footer)?,
        })
    }

    /// The bytes the signature is over, for the implicit assertion `machine`.
    fn pre_auth(&self, machine: Option<&str>) -> Vec<u8> {
        let implicit = machine.unwrap_or("").as_bytes();
        pae(&[
            V4_PUBLIC_HEADER.as_bytes(),
            &self.message,
            &self.footer,
            implicit,
        ])
    }
}

impl UnsignedLease {
    /// The bytes the Ed25519 signature is made over (PASETO v4.public's PAE of the header,
    /// the message, the footer and the implicit assertion).
    pub fn pre_auth(&self) -> &[u8] {
        &self.pre_auth
    }

    /// The response header the assembled token goes in: [`LEASE_HEADER`] for a lease,
    /// [`DENIAL_HEADER`] for a signed denial.
    pub fn header(&self) -> &'static str {
        self.header
    }

    /// The token, from a 64-byte Ed25519 signature over [`UnsignedLease::pre_auth`]. Nothing
    /// here checks the signature: verify the token ([`verify_signed`]) before trusting it.
    pub fn assemble(&self, signature: &[u8]) -> Result<String, Error> {
        if signature.len() != 64 {
            return Err(Error::invalid("lease", "an Ed25519 signature is 64 bytes"));
        }
        let mut signed = Vec::with_capacity(self.message.len() + 64);
        signed.extend_from_slice(&self.message);
        signed.extend_from_slice(signature);
        let b64 = |bytes: &[u8]| {
            ct_codecs::Base64UrlSafeNoPadding::encode_to_string(bytes)
                .map_err(|_| Error::invalid("lease", "the token could not be encoded"))
        };
        Ok(format!(
            "{V4_PUBLIC_HEADER}{}.{}",
            b64(&signed)?,
            b64(&self.footer)?
        ))
    }
}

/// What a lease must match to license this check.
#[derive(Debug, Clone, Copy)]
pub struct LeaseExpect<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The license key.
    pub key: &'a Key,
    /// The activation the check validates (`None`: none).
    pub activation_id: Option<&'a str>,
    /// The benefit the check requires, if any.
    pub benefit_id: Option<&'a str>,
    /// This machine's fingerprint (`None` when the OS has none: activations are not bound).
    pub machine: Option<&'a str>,
}

/// A lease that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The key that signed it.
    pub kid: String,
    /// What it says.
    pub claims: LeaseClaims,
    /// The facts a verdict may widen on, made here only ([`SignedFacts`]).
    facts: SignedFacts,
}

impl Lease {
    /// What the relay signed that a verdict may widen on (its paid-through date): made only
    /// by this module's verification, so a rule that takes it reads nothing unsigned.
    pub fn facts(&self) -> &SignedFacts {
        &self.facts
    }
}

/// The facts of a verified lease that a verdict may widen on in signed mode (issue #62): the
/// perpetual fallback's paid-through date, the license's expiry, a cancelled subscription's
/// end. Only the lease verifier makes one (its fields are private and it has no public
/// constructor), so a rule that takes a `SignedFacts` cannot be handed a fact that came
/// unsigned, now or when a field is added later: like rustls's `ServerCertVerified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFacts {
    remaining_usage: Option<i64>,
    license_expires_at: Option<i64>,
    subscription_ends_at: Option<i64>,
    issued_at: i64,
    #[cfg(feature = "entitlements")]
    entitlements: Option<EntitlementClaims>,
    #[cfg(feature = "entitlement-text")]
    entitlement_text: Option<String>,
}

impl SignedFacts {
    fn of(claims: &LeaseClaims) -> SignedFacts {
        SignedFacts {
            remaining_usage: claims
                .limit_usage
                .map(|limit| limit.saturating_sub(claims.usage)),
            license_expires_at: claims.license_expires_at,
            subscription_ends_at: claims.subscription_ends_at,
            issued_at: claims.issued_at,
            #[cfg(feature = "entitlements")]
            entitlements: claims.entitlements.clone(),
            #[cfg(feature = "entitlement-text")]
            entitlement_text: None,
        }
    }

    /// The key's entitlement values as the relay signed them, as JSON text (an object of
    /// metadata values by name, in name order; the balances left out): the
    /// `entitlement-text` feature's reading, for a host that parses JSON itself (the npm
    /// engine). `None` as [`SignedFacts::entitlements`]'s `None`, or without the feature.
    pub fn entitlement_values_json(&self) -> Option<&str> {
        #[cfg(feature = "entitlement-text")]
        return self.entitlement_text.as_deref();
        #[cfg(not(feature = "entitlement-text"))]
        None
    }

    /// The key's entitlement values and its customer's meter balances as the relay signed
    /// them (issue #68): `None` when the lease carries none (a relay without
    /// `--sign-entitlements`, older than the claim, or that had not read them yet).
    pub fn entitlements(&self) -> Option<&EntitlementClaims> {
        #[cfg(feature = "entitlements")]
        return self.entitlements.as_ref();
        #[cfg(not(feature = "entitlements"))]
        None
    }

    /// The usages left before the key's `limit_usage` as the relay signed them (`None`: no
    /// limit), which a license must say too for the lease to be its lease in signed mode.
    pub fn remaining_usage(&self) -> Option<i64> {
        self.remaining_usage
    }

    /// The license's `expires_at` as the relay signed it.
    pub fn license_expires_at(&self) -> Option<i64> {
        self.license_expires_at
    }

    /// A cancelled subscription's end as the relay signed it (`None`: none, or a relay older
    /// than the claim: the safe reading, no fallback on it).
    pub fn cancelled_until(&self) -> Option<i64> {
        self.subscription_ends_at
    }

    /// When the relay signed them (Polar's answer's time).
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// The end of the time the key was paid for, as signed: the earlier of the license's
    /// expiry and a cancelled subscription's end (`None` when neither is known).
    pub fn paid_through(&self) -> Option<i64> {
        match (self.license_expires_at, self.subscription_ends_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Facts for the core's own unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(
        license_expires_at: Option<i64>,
        subscription_ends_at: Option<i64>,
        issued_at: i64,
    ) -> SignedFacts {
        SignedFacts {
            remaining_usage: None,
            license_expires_at,
            subscription_ends_at,
            issued_at,
            #[cfg(feature = "entitlements")]
            entitlements: None,
            #[cfg(feature = "entitlement-text")]
            entitlement_text: None,
        }
    }
}

/// Why a lease is no lease. Every one is treated the same way (no lease, never a grant); the
/// variants are for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoLease {
    /// None was stored or sent.
    Missing,
    /// Longer than [`MAX_LEASE_BYTES`].
    TooLarge,
    /// Not a `v4.public` token with a `{"kid":…}` footer.
    Format,
    /// Its `kid` is not among the trusted keys.
    UnknownKid,
    /// The signature does not verify (an edit, another key, another machine).
    Signature,
    /// The claims are not a lease's.
    Claims,
    /// Another organization, key, activation or benefit, or a status other than `granted`.
    Mismatch,
    /// Its `nbf` or `iat` is ahead of the clock by more than the tolerance.
    NotYetValid,
    /// Expired at the clock reading (or its `exp` is past the license's expiry).
    Expired,
    /// Its signature is being checked by the host ([`Checked::Pending`]): no lease until the
    /// answer is in.
    Pending,
}

impl NoLease {
    /// A short code: `missing`, `too_large`, `format`, `unknown_kid`, `signature`, `claims`,
    /// `mismatch`, `not_yet_valid`, `expired` or `pending`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoLease::Missing => "missing",
            NoLease::TooLarge => "too_large",
            NoLease::Format => "format",
            NoLease::UnknownKid => "unknown_kid",
            NoLease::Signature => "signature",
            NoLease::Claims => "claims",
            NoLease::Mismatch => "mismatch",
            NoLease::NotYetValid => "not_yet_valid",
            NoLease::Expired => "expired",
            NoLease::Pending => "pending",
        }
    }
}

impl fmt::Display for NoLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `kid` a token's footer names, without verifying anything (for diagnostics).
pub fn footer_kid(token: &str) -> Option<String> {
    if token.len() > MAX_LEASE_BYTES {
        return None;
    }
    read_footer(&Parts::split(token)?.footer).map(|f| f.kid)
}

/// Verifies `token` against the trusted `keys` for `expect`, at the clock reading `seen` (the
/// latest time the record has seen, for expiry: a clock held back gains nothing), with
/// `tolerance` seconds for a relay clock slightly ahead of this one. The signature is checked
/// by the core's own Ed25519 ([`Builtin`]; [`verify_with`] takes another).
pub fn verify(
    token: &str,
    keys: &RelayKeys,
    expect: &LeaseExpect<'_>,
    seen: i64,
    tolerance: i64,
) -> Result<Lease, NoLease> {
    verify_with(token, keys, expect, seen, tolerance, &Builtin)
}

/// [`verify`] with the signature checked by `ed25519`.
pub fn verify_with(
    token: &str,
    keys: &RelayKeys,
    expect: &LeaseExpect<'_>,
    seen: i64,
    tolerance: i64,
    ed25519: &dyn Ed25519,
) -> Result<Lease, NoLease> {
    let lease = verify_signed_with(token, keys, expect, ed25519)?;
    let claims = &lease.claims;
    let ahead = seen.saturating_add(tolerance);
    if claims.not_before > ahead || claims.issued_at > ahead {
        return Err(NoLease::NotYetValid);
    }
    if seen >= claims.expires_at {
        return Err(NoLease::Expired);
    }
    Ok(lease)
}

/// [`verify`] without the clock: the signature, the `kid`, the claims and what they must
/// match, and an `exp` never past the license's own expiry. The grace rules apply the lease's
/// window themselves ([`crate::grace::LeaseGate`]).
pub fn verify_signed(
    token: &str,
    keys: &RelayKeys,
    expect: &LeaseExpect<'_>,
) -> Result<Lease, NoLease> {
    verify_signed_with(token, keys, expect, &Builtin)
}

/// A token's parts and footer once its signature verified: within the size cap, a `v4.public` token whose
/// footer names one of the trusted `keys`, signed by it for `machine` (checked by `ed25519`).
/// What a lease and a signed denial both are before their claims are read.
fn signed_parts(
    token: &str,
    keys: &RelayKeys,
    machine: Option<&str>,
    ed25519: &dyn Ed25519,
) -> Result<(Parts, Footer), NoLease> {
    if token.len() > MAX_LEASE_BYTES {
        return Err(NoLease::TooLarge);
    }
    let parts = Parts::split(token).ok_or(NoLease::Format)?;
    let footer = read_footer(&parts.footer).ok_or(NoLease::Format)?;
    let key = keys.find(&footer.kid).ok_or(NoLease::UnknownKid)?;
    match ed25519.verify(key, &parts.pre_auth(machine), &parts.signature) {
        Checked::Valid => Ok((parts, footer)),
        Checked::Invalid => Err(NoLease::Signature),
        Checked::Pending => Err(NoLease::Pending),
    }
}

/// [`verify_signed`] with the signature checked by `ed25519`. Only the signature is asked of
/// it: a lease whose claims do not match `expect` is no lease whatever it answers.
pub fn verify_signed_with(
    token: &str,
    keys: &RelayKeys,
    expect: &LeaseExpect<'_>,
    ed25519: &dyn Ed25519,
) -> Result<Lease, NoLease> {
    let (parts, footer) = signed_parts(token, keys, expect.machine, ed25519)?;
    // pasetors gives a verified payload only as UTF-8 text; so does this.
    std::str::from_utf8(&parts.message).map_err(|_| NoLease::Claims)?;
    #[cfg_attr(not(feature = "entitlement-text"), allow(unused_mut))]
    let mut wire = read_wire(&parts.message).ok_or(NoLease::Claims)?;
    #[cfg(feature = "entitlement-text")]
    let ent_text = wire.ent_text.take();
    let claims = LeaseClaims::from_wire(wire).ok_or(NoLease::Claims)?;
    let same = claims.organization_id == expect.organization_id
        && claims.key_sha256 == key_hash(expect.key)
        && claims.activation_id.as_deref() == expect.activation_id
        && expect.benefit_id.is_none_or(|b| b == claims.benefit_id)
        && claims.status == "granted";
    if !same {
        return Err(NoLease::Mismatch);
    }
    if claims
        .license_expires_at
        .is_some_and(|at| claims.expires_at > at)
    {
        return Err(NoLease::Expired);
    }
    #[cfg_attr(not(feature = "entitlement-text"), allow(unused_mut))]
    let mut facts = SignedFacts::of(&claims);
    #[cfg(feature = "entitlement-text")]
    {
        facts.entitlement_text = ent_text;
    }
    Ok(Lease {
        kid: footer.kid,
        facts,
        claims,
    })
}

/// Tests' rig for seat leases (here and in [`crate::seat`]): a relay's signing key (`k1`),
/// its relay keys, the key `K-1` and a clock reading.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn seat_rig() -> (SigningKey, RelayKeys, Key, i64) {
    let signer = SigningKey::generate(Some("k1")).unwrap();
    let keys = signer.relay_keys();
    (signer, keys, Key::new("K-1"), 1_800_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasetors::keys::AsymmetricPublicKey;
    use pasetors::version4::{PublicToken, V4};

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
    const ACT: &str = "b6724bc8-7ad0-4ad5-a5d1-2b1a6b0a4a4a";

    fn claims(key: &Key, now: i64) -> LeaseClaims {
        LeaseClaims {
            organization_id: ORG.into(),
            key_sha256: key_hash(key),
            activation_id: Some(ACT.into()),
            status: "granted".into(),
            license_expires_at: None,
            subscription_ends_at: None,
            benefit_id: "f2b2c2a1-1d2b-4c53-9b4a-0c8f2f0f8a11".into(),
            usage: 0,
            limit_usage: None,
            limit_activations: Some(3),
            issued_at: now,
            not_before: now,
            expires_at: now + 7 * 86_400,
            id: "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            nonce: None,
            entitlements: None,
        }
    }

    fn expect<'a>(key: &'a Key, machine: Option<&'a str>) -> LeaseExpect<'a> {
        LeaseExpect {
            organization_id: ORG,
            key,
            activation_id: Some(ACT),
            benefit_id: None,
            machine,
        }
    }

    /// The strict reading of the claims and footer agrees with serde's typed reading of `Wire`
    /// and `Footer` (what verification used before), member by member.
    #[test]
    fn the_strict_reading_of_claims_is_serdes() {
        let good = r#"{"iss":"polar-license-relay","sub":"ab","iat":"2026-01-01T00:00:00Z","nbf":"2026-01-01T00:00:00Z","exp":"2026-01-08T00:00:00Z","jti":"j","org":"o","act":"a","status":"granted","license_expires_at":null,"benefit":"b","usage":2,"limit_usage":10,"limit_activations":null}"#;
        let edits: Vec<String> = vec![
            good.to_string(),
            good.replace(r#","act":"a""#, ""),
            good.replace(r#""act":"a""#, r#""act":null"#),
            good.replace(r#""act":"a""#, r#""act":5"#),
            good.replace(r#","limit_usage":10"#, ""),
            good.replace(r#""usage":2"#, r#""usage":2.0"#),
            good.replace(r#""usage":2"#, r#""usage":"2""#),
            good.replace(r#""usage":2"#, r#""usage":-3"#),
            good.replace(r#""usage":2"#, r#""usage":18446744073709551615"#),
            good.replace(r#","usage":2"#, ""),
            good.replace(r#""iss":"polar-license-relay","#, ""),
            good.replace(r#""jti":"j""#, r#""jti":null"#),
            good.replace(r#""org":"o""#, r#""org":"o","extra":1"#),
            good.replace(r#""org":"o""#, r#""org":"o","org":"p""#),
            good.replace('}', r#","limit_usage":3}"#),
            "[]".to_string(),
            "null".to_string(),
            "{}".to_string(),
            good.replace(r#""sub":"ab""#, r#""sub":"aé""#),
        ];
        for text in &edits {
            let serde = serde_json::from_str::<Wire>(text).ok();
            let strict = read_wire(text.as_bytes());
            let write = |w: &Wire| serde_json::to_string(w).unwrap_or_default();
            assert_eq!(
                strict.as_ref().map(write),
                serde.as_ref().map(write),
                "{text}"
            );
        }
        for text in [
            r#"{"kid":"k1"}"#,
            r#"{"kid":1}"#,
            r#"{"kid":"k1","x":1}"#,
            r#"{}"#,
            r#"{"kid":null}"#,
            "[]",
        ] {
            let serde = serde_json::from_str::<Footer>(text).ok().map(|f| f.kid);
            let strict = read_footer(text.as_bytes()).map(|f| f.kid);
            assert_eq!(strict, serde, "{text}");
        }
    }

    /// PAE as the PASETO specification's examples give it.
    #[test]
    fn pae_matches_the_specification() {
        assert_eq!(pae(&[]), [0u8; 8]);
        assert_eq!(pae(&[b""]), [[1u8, 0, 0, 0, 0, 0, 0, 0], [0; 8]].concat());
        assert_eq!(
            pae(&[b"test"]),
            [
                &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
                &[4, 0, 0, 0, 0, 0, 0, 0],
                b"test"
            ]
            .concat()
        );
    }

    /// Issue #68: the entitlements claim round-trips through the token, typed as Polar's
    /// metadata values (an integer stays an integer, `2.0` a float); its reading refuses an
    /// `ent` that is not exactly `values` and `balances` of scalars and numbers.
    #[test]
    #[cfg(feature = "entitlements")]
    fn the_entitlements_claim_round_trips_and_a_bad_one_is_no_lease() -> Result<(), Error> {
        use crate::metadata::MetaValue;
        let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        let signer = SigningKey::generate(Some("k1"))?;
        let mut c = claims(&key, 1_800_000_000);
        let mut ent = EntitlementClaims::default();
        ent.values.insert("size".into(), MetaValue::Int(10));
        ent.values.insert("ratio".into(), MetaValue::Float(2.0));
        ent.values
            .insert("role".into(), MetaValue::Str("editor".into()));
        ent.values.insert("beta".into(), MetaValue::Bool(false));
        ent.balances.insert("API calls".into(), 48.5);
        ent.balances.insert("seats".into(), 3.0);
        c.entitlements = Some(ent.clone());
        let token = signer.sign(&c, None)?;
        let lease = verify_signed(&token, &signer.relay_keys(), &expect(&key, None))
            .map_err(|e| Error::invalid("lease", e.as_str()))?;
        assert_eq!(lease.claims.entitlements.as_ref(), Some(&ent));
        assert_eq!(lease.facts().entitlements(), Some(&ent));
        assert_eq!(ent.value("ratio"), Some(&MetaValue::Float(2.0)));
        assert_eq!(ent.balance("API calls"), Some(48.5));
        // Without the claim: none (not "none granted").
        c.entitlements = None;
        let token = signer.sign(&c, None)?;
        let lease = verify_signed(&token, &signer.relay_keys(), &expect(&key, None))
            .map_err(|e| Error::invalid("lease", e.as_str()))?;
        assert_eq!(lease.facts().entitlements(), None);
        // The strict reading of `ent` itself.
        let read = |text: &str| {
            crate::strict::parse(text.as_bytes())
                .ok()
                .and_then(|v| read_entitlements(&v))
        };
        assert!(
            read(r#"{"values":{"a":1,"b":"x","c":true,"d":1.5},"balances":{"m":2}}"#).is_some()
        );
        for bad in [
            r#"{"values":{}}"#,
            r#"{"values":{},"balances":{},"more":1}"#,
            r#"{"values":{"a":[1]},"balances":{}}"#,
            r#"{"values":{"a":null},"balances":{}}"#,
            r#"{"values":{},"balances":{"m":"1"}}"#,
            r#"null"#,
        ] {
            assert!(read(bad).is_none(), "{bad}");
        }
        Ok(())
    }

    /// The `entitlement-text` reading (the npm engine's): the values of the verified claim as
    /// the JSON text the typed claim writes (name order, the balances left out), `None` without
    /// the claim, and the same refusals as the typed reading.
    #[test]
    #[cfg(all(feature = "entitlements", feature = "entitlement-text"))]
    fn the_entitlement_text_is_the_typed_claims_values() -> Result<(), Error> {
        use crate::metadata::MetaValue;
        let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        let signer = SigningKey::generate(Some("k1"))?;
        let mut c = claims(&key, 1_800_000_000);
        let mut ent = EntitlementClaims::default();
        ent.values.insert("size".into(), MetaValue::Int(10));
        ent.values.insert("ratio".into(), MetaValue::Float(2.5));
        ent.values
            .insert("role".into(), MetaValue::Str("ed\"itor".into()));
        ent.values.insert("beta".into(), MetaValue::Bool(false));
        ent.balances.insert("API calls".into(), 48.5);
        c.entitlements = Some(ent.clone());
        let token = signer.sign(&c, None)?;
        let lease = verify_signed(&token, &signer.relay_keys(), &expect(&key, None))
            .map_err(|e| Error::invalid("lease", e.as_str()))?;
        let mut typed = crate::json::JsonOut::new();
        typed.meta(&ent.values);
        assert_eq!(
            lease.facts().entitlement_values_json(),
            Some(r#"{"beta":false,"ratio":2.5,"role":"ed\"itor","size":10}"#)
        );
        assert_eq!(
            lease.facts().entitlement_values_json(),
            Some(typed.as_str())
        );
        c.entitlements = None;
        let token = signer.sign(&c, None)?;
        let lease = verify_signed(&token, &signer.relay_keys(), &expect(&key, None))
            .map_err(|e| Error::invalid("lease", e.as_str()))?;
        assert_eq!(lease.facts().entitlement_values_json(), None);
        let read = |text: &str| {
            crate::strict::parse(text.as_bytes())
                .ok()
                .and_then(|v| entitlement_text(&v))
        };
        assert_eq!(
            read(r#"{"values":{"a":1,"b":"x"},"balances":{"m":2}}"#).as_deref(),
            Some(r#"{"a":1,"b":"x"}"#)
        );
        for bad in [
            r#"{"values":{}}"#,
            r#"{"balances":{}}"#,
            r#"{"values":{},"balances":{},"more":1}"#,
            r#"{"values":{"a":[1]},"balances":{}}"#,
            r#"{"values":{"a":null},"balances":{}}"#,
            r#"{"values":{},"balances":{"m":"1"}}"#,
            r#"{"values":[],"balances":{}}"#,
            r#"null"#,
        ] {
            assert!(read(bad).is_none(), "{bad}");
        }
        Ok(())
    }

    /// A lease prepared here and signed elsewhere is the token the key signs itself: the same
    /// message and footer, the signature over the same PAE (Ed25519 is deterministic, so the
    /// key's own signature assembles into its own token, which verifies).
    #[test]
    fn a_prepared_lease_assembles_into_the_keys_own_token() -> Result<(), Error> {
        let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        let signer = SigningKey::generate(Some("k1"))?;
        let c = claims(&key, 1_800_000_000);
        for machine in [Some("machine-A"), None] {
            let token = signer.sign(&c, machine)?;
            let unsigned = prepare(&c, "k1", machine)?;
            let body = token
                .strip_prefix(V4_PUBLIC_HEADER)
                .and_then(|t| t.split('.').next())
                .unwrap_or_default();
            let raw = ct_codecs::Base64UrlSafeNoPadding::decode_to_vec(body, None)
                .map_err(|_| Error::invalid("lease", "base64"))?;
            let signature = &raw[raw.len() - 64..];
            assert_eq!(unsigned.assemble(signature)?, token);
            assert!(signature_verifies(&token, &signer.relay_keys(), machine));
            assert!(!signature_verifies(
                &token,
                &signer.relay_keys(),
                Some("machine-B")
            ));
            let other = SigningKey::generate(Some("k1"))?;
            assert!(!signature_verifies(&token, &other.relay_keys(), machine));
            let mut flipped = signature.to_vec();
            flipped[0] ^= 1;
            let forged = unsigned.assemble(&flipped)?;
            assert!(!signature_verifies(&forged, &signer.relay_keys(), machine));
            assert!(unsigned.assemble(&signature[..63]).is_err());
        }
        assert!(prepare(&c, "bad kid", None).is_err());
        Ok(())
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect()
    }

    /// The official `v4.public` vectors (tests/vectors/paseto/v4.json) through the core's own
    /// reading of a token and its own Ed25519 ([`Parts`], [`Builtin`]): what the npm engine
    /// hands its host to verify is exactly what the standard signs.
    #[test]
    fn the_cores_token_reading_passes_the_standards_vectors() -> Result<(), serde_json::Error> {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/paseto/v4.json"))?;
        let tests = doc["tests"].as_array().cloned().unwrap_or_default();
        let mut seen = 0;
        for t in tests.iter().filter(|t| t["public-key"].is_string()) {
            let text = |field: &str| t[field].as_str().unwrap_or_default().to_string();
            let name = text("name");
            let key: [u8; 32] = hex_bytes(&text("public-key")).try_into().unwrap_or([0; 32]);
            let implicit = text("implicit-assertion");
            let verified = Parts::split(&text("token")).filter(|p| {
                Builtin.verify(&key, &p.pre_auth(Some(&implicit)), &p.signature) == Checked::Valid
            });
            if t["expect-fail"].as_bool() == Some(true) {
                assert!(verified.is_none(), "{name} must fail");
            } else {
                let parts = verified.ok_or_else(|| format!("{name} must verify"));
                assert!(parts.is_ok(), "{parts:?}", parts = parts.err());
                if let Ok(parts) = parts {
                    assert_eq!(parts.message, text("payload").as_bytes(), "{name}");
                    assert_eq!(parts.footer, text("footer").as_bytes(), "{name}");
                    // Another implicit assertion (another machine): no longer verifies.
                    let other = parts.pre_auth(Some("another machine"));
                    assert_eq!(
                        Builtin.verify(&key, &other, &parts.signature),
                        Checked::Invalid
                    );
                }
            }
            seen += 1;
        }
        assert_eq!(seen, 4, "4-S-1..3 and 4-F-1");
        Ok(())
    }

    /// The core's reading of a token agrees with pasetors' (`UntrustedToken`, then
    /// `PublicToken::verify`), which the leases used before issue #38, on the relay's own
    /// tokens edited in every small way (seeded, 4,000 of them): where one reads a token
    /// the other does, the parts are the same, and one verifies where the other does.
    #[test]
    fn the_cores_token_reading_is_pasetors_on_edited_tokens() -> Result<(), Error> {
        use pasetors::token::UntrustedToken;
        use pasetors::Public;
        let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        let signer = SigningKey::generate(Some("k1"))?;
        let public = AsymmetricPublicKey::<V4>::from(&signer.public)
            .map_err(|_| Error::invalid("key", "32 bytes"))?;
        let token = signer.sign(&claims(&key, 1_790_000_000), Some("m"))?;
        let alphabet: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        };
        let (mut read, mut valid) = (0, 0);
        for round in 0..4000 {
            let mut t = token.clone().into_bytes();
            for _ in 0..=(round % 3) {
                let at = next(t.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(5) {
                    0 if at < t.len() => t[at] = c,
                    1 if at < t.len() => {
                        t.remove(at);
                    }
                    2 => t.insert(at.min(t.len()), c),
                    3 => t.truncate(at),
                    _ => {}
                }
            }
            let Ok(t) = String::from_utf8(t) else {
                continue;
            };
            let ours = Parts::split(&t);
            let theirs = UntrustedToken::<Public, V4>::try_from(t.as_str()).ok();
            assert_eq!(ours.is_some(), theirs.is_some(), "{t}");
            let (Some(ours), Some(theirs)) = (ours, theirs) else {
                continue;
            };
            read += 1;
            assert_eq!(ours.message, theirs.untrusted_payload(), "{t}");
            assert_eq!(ours.footer, theirs.untrusted_footer(), "{t}");
            let ours_ok =
                Builtin.verify(&signer.public, &ours.pre_auth(Some("m")), &ours.signature)
                    == Checked::Valid
                    && std::str::from_utf8(&ours.message).is_ok();
            let theirs_ok = PublicToken::verify(&public, &theirs, None, Some(b"m")).is_ok();
            assert_eq!(ours_ok, theirs_ok, "{t}");
            valid += usize::from(ours_ok);
        }
        // Both branches were taken: tokens read (some still verifying: an edit of nothing,
        // or a truncation that only cut an empty footer) and tokens refused.
        assert!(read > 300 && valid > 0, "read {read}, valid {valid}");
        Ok(())
    }

    #[test]
    fn a_signed_lease_verifies_only_where_it_was_signed_for() -> Result<(), Error> {
        let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        let signer = SigningKey::generate(Some("k1"))?;
        let now = 1_790_000_000;
        let token = signer.sign(&claims(&key, now), Some("machine-a"))?;
        let keys = signer.relay_keys();
        let lease = verify(&token, &keys, &expect(&key, Some("machine-a")), now, 600);
        assert_eq!(lease.map(|l| l.kid), Ok("k1".to_string()));
        // Another machine, another key, past expiry, an unknown kid, an edit.
        assert_eq!(
            verify(&token, &keys, &expect(&key, Some("machine-b")), now, 600),
            Err(NoLease::Signature)
        );
        let other = Key::new("MYAPP-OTHER");
        assert_eq!(
            verify(&token, &keys, &expect(&other, Some("machine-a")), now, 600),
            Err(NoLease::Mismatch)
        );
        assert_eq!(
            verify(
                &token,
                &keys,
                &expect(&key, Some("machine-a")),
                now + 7 * 86_400,
                600
            ),
            Err(NoLease::Expired)
        );
        let stranger = SigningKey::generate(Some("k2"))?.relay_keys();
        assert_eq!(
            verify(
                &token,
                &stranger,
                &expect(&key, Some("machine-a")),
                now,
                600
            ),
            Err(NoLease::UnknownKid)
        );
        assert_eq!(
            verify(
                &token,
                &keys,
                &expect(&key, Some("machine-a")),
                now - 3600,
                600
            ),
            Err(NoLease::NotYetValid)
        );
        Ok(())
    }

    #[test]
    fn key_files_and_relay_key_lists_round_trip() -> Result<(), Error> {
        let signer = SigningKey::generate(None)?;
        assert!(signer.kid().starts_with("k4.pid."), "{}", signer.kid());
        let again = SigningKey::from_file_text(&signer.to_file_text())?;
        assert_eq!(again.public_pair(), signer.public_pair());
        let keys = RelayKeys::parse(&format!(" {} ,", signer.public_pair()))?;
        assert_eq!(keys, signer.relay_keys());
        assert!(RelayKeys::parse("k1=k4.public.AAAA").is_err());
        assert!(RelayKeys::parse("k4.public.AAAA").is_err());
        let twice = format!("{0},{0}", signer.public_pair());
        assert!(RelayKeys::parse(&twice).is_err());
        assert!(SigningKey::from_file_text(&signer.public_pair()).is_err());
        assert!(!format!("{signer:?}").contains("k4.secret"));
        Ok(())
    }
}
