//! Seat leases (issue #67): what a seller's relay signs when it gives a machine one of a key's
//! floating (or CI) seats. A seat lease is a `v4.public` token like a lease ([`super`]), with
//! claims of its own (`typ: "seat"`) and a short life (minutes, extended by each heartbeat):
//! this key of this organization holds seat `jti` on this machine (the implicit assertion, as
//! a lease's) until `exp`. It licenses nothing past `exp`; a client verifies it offline with
//! the relay's public keys ([`verify_seat`]).

use super::{
    key_hash, message_and_footer_of, rfc3339, signed_parts, strict_object, unix, unsigned_of,
    Ed25519, NoLease, RelayKeys, SigningKey, UnsignedLease, ISSUER,
};
use crate::error::Error;
use crate::key::Key;
use serde::Serialize;

/// The response header a relay puts a seat lease in.
pub const SEAT_HEADER: &str = "polar-license-seat";

/// The `typ` claim of a seat lease.
const SEAT_TYP: &str = "seat";

/// The seat kinds a relay gives: `floating` (a person's machine) or `ci` (a job), which the
/// seller may cap apart.
pub const SEAT_KINDS: [&str; 2] = ["floating", "ci"];

/// What a seat lease says. Times are unix seconds here, RFC 3339 in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatClaims {
    /// The seller organization.
    pub organization_id: String,
    /// SHA-256 of the license key ([`key_hash`]).
    pub key_sha256: String,
    /// The seat's id (a UUID v4): what a heartbeat and a release name.
    pub seat: String,
    /// `floating` or `ci` ([`SEAT_KINDS`]).
    pub kind: String,
    /// When the relay gave or extended it.
    pub issued_at: i64,
    /// When it frees unless heard from again.
    pub expires_at: i64,
    /// The pool's size when it was given (the seats of this key at once).
    pub size: u32,
    /// Borrowed for offline use (the `borrowed` claim): the seat is this machine's until
    /// `expires_at` (days, not minutes) with no heartbeat, unless given back first; this
    /// lease licenses offline until then and not after.
    pub borrowed: bool,
}

#[derive(Serialize)]
struct SeatWire {
    iss: String,
    typ: String,
    sub: String,
    iat: String,
    exp: String,
    jti: String,
    org: String,
    kind: String,
    size: u32,
    /// Present (`true`) on a borrowed seat's lease only: a seat lease without it is the same
    /// token as before borrowing existed.
    #[serde(skip_serializing_if = "is_false")]
    borrowed: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

const SEAT_FIELDS: [&str; 10] = [
    "iss", "typ", "sub", "iat", "exp", "jti", "org", "kind", "size", "borrowed",
];

impl SeatClaims {
    fn to_wire(&self) -> Result<SeatWire, Error> {
        Ok(SeatWire {
            iss: ISSUER.to_string(),
            typ: SEAT_TYP.to_string(),
            sub: self.key_sha256.clone(),
            iat: rfc3339(self.issued_at)?,
            exp: rfc3339(self.expires_at)?,
            jti: self.seat.clone(),
            org: self.organization_id.clone(),
            kind: self.kind.clone(),
            size: self.size,
            borrowed: self.borrowed,
        })
    }

    fn read(payload: &[u8]) -> Option<SeatClaims> {
        use crate::json::JsonIn;
        std::str::from_utf8(payload).ok()?;
        let v = strict_object(payload, &SEAT_FIELDS)?;
        let text = |name: &str| v.member(name)?.string();
        if text("iss")? != ISSUER || text("typ")? != SEAT_TYP {
            return None;
        }
        let kind = text("kind")?;
        if !SEAT_KINDS.contains(&kind.as_str()) {
            return None;
        }
        Some(SeatClaims {
            organization_id: text("org")?,
            key_sha256: text("sub")?,
            seat: text("jti")?,
            kind,
            issued_at: unix(&text("iat")?)?,
            expires_at: unix(&text("exp")?)?,
            size: u32::try_from(v.member("size")?.int()?).ok()?,
            borrowed: v.optional("borrowed", JsonIn::boolean)?.unwrap_or(false),
        })
    }
}

impl SigningKey {
    /// Signs a seat lease bound to `machine` (the implicit assertion), as
    /// [`SigningKey::sign`] signs a lease.
    pub fn sign_seat(&self, claims: &SeatClaims, machine: &str) -> Result<String, Error> {
        let (message, footer) = message_and_footer_of(&claims.to_wire()?, self.kid())?;
        pasetors::version4::PublicToken::sign(
            &self.pair.secret,
            &message,
            Some(&footer),
            Some(machine.as_bytes()),
        )
        .map_err(|_| Error::invalid("lease", "the seat lease could not be signed"))
    }
}

/// The seat lease for `claims` under `kid`, bound to `machine`, before its signature (as
/// [`super::prepare`] for a lease; its header is [`SEAT_HEADER`]).
pub fn prepare_seat(claims: &SeatClaims, kid: &str, machine: &str) -> Result<UnsignedLease, Error> {
    let (message, footer) = message_and_footer_of(&claims.to_wire()?, kid)?;
    Ok(unsigned_of(message, footer, Some(machine), SEAT_HEADER))
}

/// What a seat lease must match: the organization, the key, this machine.
#[derive(Debug, Clone, Copy)]
pub struct SeatExpect<'a> {
    /// The configured organization.
    pub organization_id: &'a str,
    /// The license key.
    pub key: &'a Key,
    /// This machine's binding, as the seat request sent it.
    pub machine: &'a str,
}

/// Verifies a seat lease `token` against the trusted `keys` for `expect` at `now` (unix
/// seconds): its signature (by `ed25519`), its claims (a seat's, the organization and key
/// expected) and its time (`iat` at most 5 minutes ahead of `now`, `exp` after `now`).
pub fn verify_seat_with(
    token: &str,
    keys: &RelayKeys,
    expect: &SeatExpect<'_>,
    now: i64,
    ed25519: &dyn Ed25519,
) -> Result<SeatClaims, NoLease> {
    let (parts, _footer) = signed_parts(token, keys, Some(expect.machine), ed25519)?;
    let claims = SeatClaims::read(&parts.message).ok_or(NoLease::Claims)?;
    if claims.organization_id != expect.organization_id || claims.key_sha256 != key_hash(expect.key)
    {
        return Err(NoLease::Mismatch);
    }
    if claims.issued_at > now.saturating_add(SEAT_CLOCK_SKEW) {
        return Err(NoLease::NotYetValid);
    }
    if claims.expires_at <= now || claims.expires_at < claims.issued_at {
        return Err(NoLease::Expired);
    }
    Ok(claims)
}

/// How far a seat lease's `iat` may be ahead of the verifier's clock (5 minutes).
const SEAT_CLOCK_SKEW: i64 = 300;

/// [`verify_seat_with`] with the core's own Ed25519 ([`super::Builtin`]).
pub fn verify_seat(
    token: &str,
    keys: &RelayKeys,
    expect: &SeatExpect<'_>,
    now: i64,
) -> Result<SeatClaims, NoLease> {
    verify_seat_with(token, keys, expect, now, &super::Builtin)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn claims(key: &Key, now: i64) -> SeatClaims {
        SeatClaims {
            organization_id: ORG.into(),
            key_sha256: key_hash(key),
            seat: "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            kind: "ci".into(),
            issued_at: now,
            expires_at: now + 300,
            size: 2,
            borrowed: false,
        }
    }

    #[test]
    fn a_seat_lease_verifies_on_its_machine_until_it_expires_and_nowhere_else() {
        let (signer, keys, key, now) = crate::lease::seat_rig();
        let token = signer.sign_seat(&claims(&key, now), "machine-a").unwrap();
        let expect = SeatExpect {
            organization_id: ORG,
            key: &key,
            machine: "machine-a",
        };
        let seat = verify_seat(&token, &keys, &expect, now + 10).unwrap();
        assert_eq!(seat, claims(&key, now));
        assert_eq!(
            verify_seat(&token, &keys, &expect, now + 300),
            Err(NoLease::Expired)
        );
        let elsewhere = SeatExpect {
            machine: "machine-b",
            ..expect
        };
        assert_eq!(
            verify_seat(&token, &keys, &elsewhere, now),
            Err(NoLease::Signature)
        );
        let other = Key::new("K-2");
        let other_key = SeatExpect {
            key: &other,
            ..expect
        };
        assert_eq!(
            verify_seat(&token, &keys, &other_key, now),
            Err(NoLease::Mismatch)
        );
        let stranger = SigningKey::generate(Some("k1")).unwrap().relay_keys();
        assert_eq!(
            verify_seat(&token, &stranger, &expect, now),
            Err(NoLease::Signature)
        );
        assert_eq!(
            verify_seat(&token, &keys, &expect, now - 400),
            Err(NoLease::NotYetValid)
        );
    }

    #[test]
    fn a_borrowed_seat_says_so_and_licenses_until_its_end_and_not_after() {
        let (signer, keys, key, now) = crate::lease::seat_rig();
        let week = 7 * 86_400;
        let borrowed = SeatClaims {
            kind: "floating".into(),
            expires_at: now + week,
            borrowed: true,
            ..claims(&key, now)
        };
        let token = signer.sign_seat(&borrowed, "m").unwrap();
        let expect = SeatExpect {
            organization_id: ORG,
            key: &key,
            machine: "m",
        };
        assert_eq!(
            verify_seat(&token, &keys, &expect, now + week - 1).unwrap(),
            borrowed
        );
        assert_eq!(
            verify_seat(&token, &keys, &expect, now + week),
            Err(NoLease::Expired)
        );
        // A seat lease that is not borrowed has no such claim (the token as before).
        let plain = signer.sign_seat(&claims(&key, now), "m").unwrap();
        let parts = super::super::Parts::split(&plain).unwrap();
        assert!(!String::from_utf8_lossy(&parts.message).contains("borrowed"));
        assert!(!verify_seat(&plain, &keys, &expect, now).unwrap().borrowed);
    }

    #[test]
    fn a_seat_signed_elsewhere_is_the_token_the_key_makes() {
        let (signer, _, key, now) = crate::lease::seat_rig();
        let c = claims(&key, now);
        let unsigned = prepare_seat(&c, "k1", "m").unwrap();
        assert_eq!(unsigned.header(), SEAT_HEADER);
        let token = signer.sign_seat(&c, "m").unwrap();
        // The bytes to sign elsewhere are those the key signed: its signature assembles the
        // same token.
        let parts = super::super::Parts::split(&token).unwrap();
        assert_eq!(unsigned.pre_auth(), parts.pre_auth(Some("m")).as_slice());
        assert_eq!(unsigned.assemble(&parts.signature).unwrap(), token);
    }

    #[test]
    fn a_lease_or_a_denial_is_no_seat() {
        let (signer, _, key, now) = crate::lease::seat_rig();
        let denial = super::super::DenialClaims {
            organization_id: ORG.into(),
            key_sha256: key_hash(&key),
            activation_id: None,
            reason: "expired".into(),
            issued_at: now,
            expires_at: now + 300,
            id: "j".into(),
            nonce: "n".into(),
            stop: None,
        };
        let token = signer.sign_denial(&denial, Some("m")).unwrap();
        let expect = SeatExpect {
            organization_id: ORG,
            key: &key,
            machine: "m",
        };
        assert_eq!(
            verify_seat(&token, &signer.relay_keys(), &expect, now),
            Err(NoLease::Claims)
        );
    }
}
