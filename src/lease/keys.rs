//! The relay's keys: the signing key it holds ([`SigningKey`], read from its key file) and the
//! public keys a client trusts ([`RelayKeys`], two at once while one is rotated in), each in
//! PASERK text, each `Debug` showing only the `kid`.

use super::{message_and_footer, message_and_footer_of, DenialClaims, LeaseClaims, MAX_RELAY_KEYS};
use crate::error::Error;
use ct_codecs::Decoder;
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::version4::{PublicToken, V4};
use std::fmt;

/// The longest `kid` accepted (printable ASCII, no `=` or `,`).
const MAX_KID_LEN: usize = 100;

/// One trusted relay key: its `kid` and its Ed25519 public key.
#[derive(Clone)]
struct RelayKey {
    kid: String,
    key: [u8; 32],
}

/// The relay public keys a client in signed mode trusts (`{kid: public key}`, at most
/// [`MAX_RELAY_KEYS`]). Each key is given as `KID=k4.public.…` (PASERK), the form
/// `polar-license relay keygen` prints.
#[derive(Clone, Default)]
pub struct RelayKeys(Vec<RelayKey>);

impl fmt::Debug for RelayKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| k.kid.as_str()))
            .finish()
    }
}

impl PartialEq for RelayKeys {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.kid == b.kid && a.key == b.key)
    }
}

pub(super) fn check_kid(kid: &str) -> Result<(), Error> {
    let printable = kid
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'=' && b != b',');
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !printable {
        return Err(Error::invalid(
            "relay_keys",
            "a kid is 1 to 100 printable ASCII characters without '=' or ','",
        ));
    }
    Ok(())
}

impl RelayKeys {
    /// No keys (signed mode off).
    pub fn new() -> RelayKeys {
        RelayKeys(Vec::new())
    }

    /// Parses a comma-separated list of `KID=k4.public.…` (the `POLAR_LICENSE_RELAY_KEYS`
    /// form); spaces around entries are ignored, empty entries are skipped.
    #[inline(never)] // the npm engine calls it only with relay keys: compiled by V8 only then (issue #38)
    pub fn parse(list: &str) -> Result<RelayKeys, Error> {
        let mut keys = RelayKeys::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            keys.add_pair(entry)?;
        }
        Ok(keys)
    }

    /// Adds one `KID=k4.public.…` entry.
    pub fn add_pair(&mut self, pair: &str) -> Result<(), Error> {
        let (kid, public) = pair.split_once('=').ok_or_else(|| {
            Error::invalid(
                "relay_keys",
                "each relay key is KID=k4.public.… (no '=' found)",
            )
        })?;
        self.add(kid.trim(), public.trim())
    }

    /// Adds the key `public` (PASERK `k4.public.…`) under `kid`.
    pub fn add(&mut self, kid: &str, public: &str) -> Result<(), Error> {
        check_kid(kid)?;
        let key = public_paserk_bytes(public).ok_or_else(|| {
            Error::invalid(
                "relay_keys",
                "a relay public key is PASERK text: k4.public. and 43 base64url characters",
            )
        })?;
        if self.0.iter().any(|k| k.kid == kid) {
            return Err(Error::invalid("relay_keys", "a kid is given twice"));
        }
        if self.0.len() >= MAX_RELAY_KEYS {
            return Err(Error::invalid(
                "relay_keys",
                "at most 8 relay keys are trusted at once",
            ));
        }
        self.0.push(RelayKey {
            kid: kid.to_string(),
            key,
        });
        Ok(())
    }

    /// `true` when no key is held (signed mode off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trusted `kid`s, in the order given.
    pub fn kids(&self) -> Vec<&str> {
        self.0.iter().map(|k| k.kid.as_str()).collect()
    }

    pub(super) fn find(&self, kid: &str) -> Option<&[u8; 32]> {
        self.0.iter().find(|k| k.kid == kid).map(|k| &k.key)
    }
}

/// The 32 bytes of a PASERK `k4.public.…` key (what pasetors' `AsymmetricPublicKey::try_from`
/// reads: the prefix, then unpadded base64url of exactly 32 bytes; `tests/lease_vectors.rs`
/// holds it to the standard's vectors and to pasetors).
fn public_paserk_bytes(text: &str) -> Option<[u8; 32]> {
    let encoded = text.strip_prefix("k4.public.")?;
    let mut key = [0u8; 32];
    // One byte more room than a key: a longer encoding decodes to more than 32 bytes and
    // is refused instead of failing for want of room.
    let mut room = [0u8; 33];
    let decoded = ct_codecs::Base64UrlSafeNoPadding::decode(&mut room, encoded, None).ok()?;
    if decoded.len() != 32 {
        return None;
    }
    key.copy_from_slice(decoded);
    Some(key)
}

/// A relay's signing key: its `kid` and its Ed25519 key pair. `Debug` shows only the `kid`.
pub struct SigningKey {
    kid: String,
    pub(super) pair: AsymmetricKeyPair<V4>,
    /// The public half's bytes (what [`RelayKeys`] holds).
    pub(super) public: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn paserk<K: FormatAsPaserk>(key: &K) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = key.fmt(&mut out);
    out
}

/// A signing key file's text (one line `KID=k4.secret.…`, as `polar-license relay keygen`
/// writes it) read as its kid and the secret's 64 bytes (the Ed25519 seed, then the public
/// half), with nothing derived: the one reader of the format, for [`SigningKey::from_file_text`]
/// and for a host that signs with a key of its own (the npm relay's WebCrypto key, which
/// checks that the halves match). The error never holds the secret.
pub fn read_key_file(text: &str) -> Result<(String, [u8; 64]), Error> {
    let bad = || {
        Error::invalid(
            "signing_key",
            "a signing key file holds one line KID=k4.secret.… (polar-license relay keygen)",
        )
    };
    let (kid, secret) = text.trim().split_once('=').ok_or_else(bad)?;
    check_kid(kid)?;
    // pasetors panics on an all-zero seed (ed25519-compact's `from_seed`); such a key is
    // refused here, before it sees it.
    let raw = secret.strip_prefix("k4.secret.").ok_or_else(bad)?;
    let mut bytes = [0u8; 64];
    let decoded =
        ct_codecs::Base64UrlSafeNoPadding::decode(&mut bytes, raw, None).map_err(|_| bad())?;
    if decoded.len() != 64 || decoded[..32].iter().all(|&b| b == 0) {
        return Err(bad());
    }
    Ok((kid.to_string(), bytes))
}

impl SigningKey {
    /// A new random key pair. `kid` defaults to the public key's PASERK id (`k4.pid.…`).
    pub fn generate(kid: Option<&str>) -> Result<SigningKey, Error> {
        let pair = AsymmetricKeyPair::<V4>::generate()
            .map_err(|_| Error::invalid("signing_key", "the system's random source failed"))?;
        let kid = match kid {
            Some(kid) => kid.to_string(),
            None => paserk(&Id::from(&pair.public)),
        };
        check_kid(&kid)?;
        SigningKey::of(kid, pair)
    }

    fn of(kid: String, pair: AsymmetricKeyPair<V4>) -> Result<SigningKey, Error> {
        let public = pair
            .public
            .as_bytes()
            .try_into()
            .map_err(|_| Error::invalid("signing_key", "an Ed25519 public key is 32 bytes"))?;
        Ok(SigningKey { kid, pair, public })
    }

    /// Reads a key file's text: one line `KID=k4.secret.…` (what [`SigningKey::to_file_text`]
    /// writes).
    pub fn from_file_text(text: &str) -> Result<SigningKey, Error> {
        let bad = || {
            Error::invalid(
                "signing_key",
                "a signing key file holds one line KID=k4.secret.… (polar-license relay keygen)",
            )
        };
        let (kid, _) = read_key_file(text)?;
        let secret = text.trim().split_once('=').ok_or_else(bad)?.1;
        let secret = AsymmetricSecretKey::<V4>::try_from(secret).map_err(|_| bad())?;
        let public = AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| bad())?;
        SigningKey::of(kid.to_string(), AsymmetricKeyPair { public, secret })
    }

    /// The key file's text: `KID=k4.secret.…` and a newline. It is the secret: keep the file
    /// readable by its owner only.
    pub fn to_file_text(&self) -> String {
        format!("{}={}\n", self.kid, paserk(&self.pair.secret))
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as PASERK text (`k4.public.…`).
    pub fn public_paserk(&self) -> String {
        paserk(&self.pair.public)
    }

    /// `KID=k4.public.…`: what a client's `relay_keys` takes.
    pub fn public_pair(&self) -> String {
        format!("{}={}", self.kid, self.public_paserk())
    }

    /// The trusted-key set of this key alone (for tests and the relay's own checks).
    pub fn relay_keys(&self) -> RelayKeys {
        RelayKeys(vec![RelayKey {
            kid: self.kid.clone(),
            key: self.public,
        }])
    }

    /// Signs `claims` as a `v4.public` token bound to `machine` (the implicit assertion;
    /// `None`: an activation not bound to a machine).
    pub fn sign(&self, claims: &LeaseClaims, machine: Option<&str>) -> Result<String, Error> {
        let (message, footer) = message_and_footer(claims, &self.kid)?;
        PublicToken::sign(
            &self.pair.secret,
            &message,
            Some(&footer),
            Some(machine.unwrap_or("").as_bytes()),
        )
        .map_err(|_| Error::invalid("lease", "the lease could not be signed"))
    }

    /// Signs a denial ([`DenialClaims`]) as a `v4.public` token bound to `machine`, as
    /// [`SigningKey::sign`] signs a lease.
    pub fn sign_denial(
        &self,
        claims: &DenialClaims,
        machine: Option<&str>,
    ) -> Result<String, Error> {
        let (message, footer) = message_and_footer_of(&claims.to_wire()?, &self.kid)?;
        PublicToken::sign(
            &self.pair.secret,
            &message,
            Some(&footer),
            Some(machine.unwrap_or("").as_bytes()),
        )
        .map_err(|_| Error::invalid("lease", "the denial could not be signed"))
    }
}
