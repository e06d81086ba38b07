//! Usage acknowledgements (issue #76): what a seller's relay signs when it answers a usage
//! report ([`crate::usage`]). Unsigned, the answer `recorded` with a balance is whatever
//! answered the client: a proxy (or a fake relay) saying `recorded` with any balance keeps
//! the report from ever being billed and makes the seller's `--refuse-at-zero-credits` void,
//! since the client reads credits it does not have.
//!
//! The acknowledgement is a `v4.public` token like a lease ([`super`]), with claims of its own
//! (`typ: "usage"`): this key (`sub`, its SHA-256) of this organization reported `units` of
//! `meter` under the idempotency id `rid`, in the request that carried `nonce`; the relay
//! `recorded` it (or not: a refusal at zero credits), `dup` when it had it already, and knew
//! the meter's balance `bal` after it (`null`: not read yet). Its implicit assertion is empty
//! (a usage report names no machine). A client that holds relay keys sends a fresh nonce with
//! each send and believes an answer (its `recorded`, its balance) only from a token that
//! verifies and names that nonce, that key, that report and those units
//! ([`verify_usage_with`]).

use super::{
    key_hash, message_and_footer_of, rfc3339, signed_parts, strict_object, unix, unsigned_of,
    Ed25519, NoLease, RelayKeys, SigningKey, UnsignedLease, ISSUER,
};
use crate::error::Error;
use crate::key::Key;
use serde::Serialize;

/// The response header a relay puts a usage acknowledgement in.
pub const USAGE_HEADER: &str = "polar-license-usage";

/// The `typ` claim of a usage acknowledgement.
const USAGE_TYP: &str = "usage";

/// What a usage acknowledgement says. Times are unix seconds here, RFC 3339 in the token.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageClaims {
    /// The seller organization.
    pub organization_id: String,
    /// SHA-256 of the license key ([`key_hash`]).
    pub key_sha256: String,
    /// The report's idempotency id.
    pub report_id: String,
    /// The event name the report counts on.
    pub meter: String,
    /// The units reported, as the relay read them.
    pub units: f64,
    /// The relay kept the report (now, or before under the same id): it will be billed.
    /// `false`: refused at zero credits (`credits_exhausted`), not kept.
    pub recorded: bool,
    /// The relay had the report already (sent again): counted once.
    pub duplicate: bool,
    /// The meter's balance the relay knew after the report (`None`: not read yet).
    pub balance: Option<f64>,
    /// When the relay signed it.
    pub issued_at: i64,
    /// A unique id (a UUID v4).
    pub id: String,
    /// The request's nonce ([`super::NONCE_HEADER`]), copied unchanged.
    pub nonce: String,
}

#[derive(Serialize)]
struct UsageWire {
    iss: String,
    typ: String,
    sub: String,
    iat: String,
    jti: String,
    org: String,
    nonce: String,
    rid: String,
    meter: String,
    units: f64,
    recorded: bool,
    dup: bool,
    bal: Option<f64>,
}

const USAGE_FIELDS: [&str; 13] = [
    "iss", "typ", "sub", "iat", "jti", "org", "nonce", "rid", "meter", "units", "recorded", "dup",
    "bal",
];

/// A JSON number as a float (an integer read as one).
fn float_of(v: &crate::strict::Value) -> Option<f64> {
    use crate::json::{JsonIn, Num};
    #[allow(clippy::cast_precision_loss)] // units and balances are far inside f64's integers
    match v.number()? {
        Num::Int(n) => Some(n as f64),
        Num::Float(x) => Some(x),
    }
}

impl UsageClaims {
    fn to_wire(&self) -> Result<UsageWire, Error> {
        let finite = |x: f64| x.is_finite().then_some(x);
        Ok(UsageWire {
            iss: ISSUER.to_string(),
            typ: USAGE_TYP.to_string(),
            sub: self.key_sha256.clone(),
            iat: rfc3339(self.issued_at)?,
            jti: self.id.clone(),
            org: self.organization_id.clone(),
            nonce: self.nonce.clone(),
            rid: self.report_id.clone(),
            meter: self.meter.clone(),
            units: finite(self.units)
                .ok_or_else(|| Error::invalid("usage", "the units are not a finite number"))?,
            recorded: self.recorded,
            dup: self.duplicate,
            bal: self.balance.and_then(finite),
        })
    }

    fn read(payload: &[u8]) -> Option<UsageClaims> {
        use crate::json::JsonIn;
        std::str::from_utf8(payload).ok()?;
        let v = strict_object(payload, &USAGE_FIELDS)?;
        let text = |name: &str| v.member(name)?.string();
        if text("iss")? != ISSUER || text("typ")? != USAGE_TYP {
            return None;
        }
        Some(UsageClaims {
            organization_id: text("org")?,
            key_sha256: text("sub")?,
            report_id: text("rid")?,
            meter: text("meter")?,
            units: float_of(&v.member("units")?)?,
            recorded: v.member("recorded")?.boolean()?,
            duplicate: v.member("dup")?.boolean()?,
            balance: v.optional("bal", float_of)?,
            issued_at: unix(&text("iat")?)?,
            id: text("jti")?,
            nonce: text("nonce")?,
        })
    }
}

impl SigningKey {
    /// Signs a usage acknowledgement (no machine: its implicit assertion is empty), as
    /// [`SigningKey::sign`] signs a lease.
    pub fn sign_usage(&self, claims: &UsageClaims) -> Result<String, Error> {
        let (message, footer) = message_and_footer_of(&claims.to_wire()?, self.kid())?;
        pasetors::version4::PublicToken::sign(&self.pair.secret, &message, Some(&footer), Some(b""))
            .map_err(|_| Error::invalid("lease", "the usage acknowledgement could not be signed"))
    }
}

/// The usage acknowledgement for `claims` under `kid`, before its signature (as
/// [`super::prepare`] for a lease; its header is [`USAGE_HEADER`], its implicit assertion
/// empty): a relay whose key is held elsewhere (the npm relay's WebCrypto key on Workers)
/// signs [`UnsignedLease::pre_auth`] and assembles the token, the same bytes
/// [`SigningKey::sign_usage`] makes with that key (Ed25519 signatures are deterministic).
pub fn prepare_usage(claims: &UsageClaims, kid: &str) -> Result<UnsignedLease, Error> {
    let (message, footer) = message_and_footer_of(&claims.to_wire()?, kid)?;
    Ok(unsigned_of(message, footer, None, USAGE_HEADER))
}

/// What a usage acknowledgement must match: the report as the client sent it, and the nonce
/// of the send it answers.
#[derive(Debug, Clone, Copy)]
pub struct UsageExpect<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The license key.
    pub key: &'a Key,
    /// The report's idempotency id.
    pub report_id: &'a str,
    /// The event name reported.
    pub meter: &'a str,
    /// The units reported.
    pub units: f64,
    /// The nonce this send carried.
    pub nonce: &'a str,
}

/// Verifies a usage acknowledgement `token` against the trusted `keys` for `expect`: its
/// signature (by `ed25519`) and its claims (a usage acknowledgement's, naming the
/// organization, key, report, meter, units and nonce expected; a finite balance). No clock:
/// the nonce of this very send is its freshness.
pub fn verify_usage_with(
    token: &str,
    keys: &RelayKeys,
    expect: &UsageExpect<'_>,
    ed25519: &dyn Ed25519,
) -> Result<UsageClaims, NoLease> {
    let (parts, _footer) = signed_parts(token, keys, None, ed25519)?;
    let claims = UsageClaims::read(&parts.message).ok_or(NoLease::Claims)?;
    let same = claims.organization_id == expect.organization_id
        && claims.key_sha256 == key_hash(expect.key)
        && claims.report_id == expect.report_id
        && claims.meter == expect.meter
        && claims.units.to_bits() == expect.units.to_bits()
        && claims.nonce == expect.nonce;
    if !same {
        return Err(NoLease::Mismatch);
    }
    if claims.balance.is_some_and(|b| !b.is_finite()) {
        return Err(NoLease::Claims);
    }
    Ok(claims)
}

/// [`verify_usage_with`] with the core's own Ed25519 ([`super::Builtin`]).
pub fn verify_usage(
    token: &str,
    keys: &RelayKeys,
    expect: &UsageExpect<'_>,
) -> Result<UsageClaims, NoLease> {
    verify_usage_with(token, keys, expect, &super::Builtin)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn claims(key: &Key) -> UsageClaims {
        UsageClaims {
            organization_id: ORG.into(),
            key_sha256: key_hash(key),
            report_id: "r-1".into(),
            meter: "tokens_used".into(),
            units: 2.5,
            recorded: true,
            duplicate: false,
            balance: Some(7.5),
            issued_at: 1_800_000_000,
            id: "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            nonce: "0123456789abcdef0123456789abcdef-ent-stop-facts".into(),
        }
    }

    fn expect<'a>(key: &'a Key, nonce: &'a str) -> UsageExpect<'a> {
        UsageExpect {
            organization_id: ORG,
            key,
            report_id: "r-1",
            meter: "tokens_used",
            units: 2.5,
            nonce,
        }
    }

    /// A signed acknowledgement verifies for its report and its send only: another nonce
    /// (a replay of another send's answer), key, report, meter or units, another relay's key,
    /// or a lease or denial token in its place, is no acknowledgement.
    #[test]
    fn an_acknowledgement_verifies_for_its_report_and_send_only() {
        let (signer, keys, key, _) = super::super::seat_rig();
        let c = claims(&key);
        let token = signer.sign_usage(&c).unwrap();
        let nonce = c.nonce.as_str();
        assert_eq!(
            verify_usage(&token, &keys, &expect(&key, nonce)).unwrap(),
            c
        );
        let other = Key::new("K-2");
        let cases: Vec<(UsageExpect<'_>, NoLease)> = vec![
            (expect(&key, "ffff"), NoLease::Mismatch),
            (expect(&other, nonce), NoLease::Mismatch),
            (
                UsageExpect {
                    report_id: "r-2",
                    ..expect(&key, nonce)
                },
                NoLease::Mismatch,
            ),
            (
                UsageExpect {
                    meter: "other",
                    ..expect(&key, nonce)
                },
                NoLease::Mismatch,
            ),
            (
                UsageExpect {
                    units: 2.500_000_1,
                    ..expect(&key, nonce)
                },
                NoLease::Mismatch,
            ),
        ];
        for (e, why) in cases {
            assert_eq!(verify_usage(&token, &keys, &e), Err(why));
        }
        let stranger = SigningKey::generate(Some("k1")).unwrap();
        let forged = stranger.sign_usage(&c).unwrap();
        assert_eq!(
            verify_usage(&forged, &keys, &expect(&key, nonce)),
            Err(NoLease::Signature)
        );
        let denial = super::super::DenialClaims {
            organization_id: ORG.into(),
            key_sha256: key_hash(&key),
            activation_id: None,
            reason: "revoked".into(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_000_600,
            id: c.id.clone(),
            nonce: c.nonce.clone(),
            stop: None,
        };
        let denial = signer.sign_denial(&denial, None).unwrap();
        assert_eq!(
            verify_usage(&denial, &keys, &expect(&key, nonce)),
            Err(NoLease::Claims)
        );
        // No balance known is a signed `null`.
        let unknown = UsageClaims {
            balance: None,
            ..c.clone()
        };
        let token = signer.sign_usage(&unknown).unwrap();
        assert_eq!(
            verify_usage(&token, &keys, &expect(&key, nonce))
                .unwrap()
                .balance,
            None
        );
    }

    /// An acknowledgement signed elsewhere (the npm relay's WebCrypto key on Workers) is the
    /// token the relay's own key makes: the bytes to sign are those it signs, with an empty
    /// implicit assertion, and the token goes in [`USAGE_HEADER`].
    #[test]
    fn an_acknowledgement_signed_elsewhere_is_the_token_the_key_makes() {
        let (signer, keys, key, _) = super::super::seat_rig();
        let c = claims(&key);
        let unsigned = prepare_usage(&c, signer.kid()).unwrap();
        assert_eq!(unsigned.header(), USAGE_HEADER);
        let token = signer.sign_usage(&c).unwrap();
        let parts = super::super::Parts::split(&token).unwrap();
        assert_eq!(unsigned.pre_auth(), parts.pre_auth(None).as_slice());
        let assembled = unsigned.assemble(&parts.signature).unwrap();
        assert_eq!(assembled, token);
        assert_eq!(
            verify_usage(&assembled, &keys, &expect(&key, &c.nonce)).unwrap(),
            c
        );
    }
}
