//! The remembered license key: opt-in, one per organization and server in a store, kept beside
//! the records and sealed like them (pure, no IO, wasm-safe; every face stores these bytes).
//!
//! Layout (UTF-8 text, three lines, each ending in `\n`, nothing after):
//!
//! ```text
//! polar-license-key v1
//! <32 lowercase hex digits: the synthetic IV>
//! <lowercase hex: the key, encrypted>
//! ```
//!
//! Deterministic authenticated encryption (the SIV construction of RFC 5297, built from the
//! HMAC-SHA256 and HKDF this crate already ships rather than another cipher): the IV is the
//! first 16 bytes of HMAC-SHA256 over the key under a MAC key, the key is XORed with
//! HKDF-Expand(encryption key, label ‖ IV), and opening recomputes the IV from the decrypted key
//! and compares it in constant time. Both keys are derived from the organization, the server's
//! origin, the per-install secret, the machine's identity and the app's secret: the bytes
//! copied to another install or machine, or edited, open to nothing.
//!
//! What this protects: a key that does not sit in plain text in the cache directory (a backup,
//! a support bundle, a `grep`), and that does not follow the directory to another machine.
//! What it does not: a program running as the same user on the same machine can read the
//! install secret and the machine id too, and open it; so can the app that stored it.

use crate::cache::{hex, unhex};
use crate::key::Key;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The header line of a remembered key.
pub const HEADER: &str = "polar-license-key v1\n";

/// Longer keys are refused (Polar's keys are far shorter); it also bounds what is read.
pub const MAX_KEY_BYTES: usize = 1024;

const DERIVE_LABEL: &[u8] = b"polar-license/key-seal/v1";
const SLOT_LABEL: &[u8] = b"polar-license/key-slot/v1";
const SESSION_SLOT_LABEL: &[u8] = b"polar-license/session-slot/v1";
const SESSION_DERIVE_LABEL: &[u8] = b"polar-license/session-seal/v1";
const IV_BYTES: usize = 16;

/// Where a store keeps the remembered key, and the keys that seal it. `Debug` shows no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySeal {
    /// The store slot (`key-` and 32 hex digits: no key, organization or origin in it).
    pub slot: String,
    mac: [u8; 32],
    enc: [u8; 32],
}

impl fmt::Debug for KeySeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySeal")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// Why stored bytes did not open to a key. Callers treat every one as "no key remembered".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unopened {
    /// Not in the format (or truncated, or another version).
    Malformed,
    /// Sealed for another organization, server, install, machine or app secret, or edited.
    BadSeal,
}

pub(crate) fn hmac_with(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails; the fallback keeps it panic-free.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

fn framed_mac(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// A seal's two derivations (the remembered key's here, the trial's in [`crate::trial`]): the
/// slot's name, a hash of `slot_label`, the server's origin and the organization (what two
/// installs share, so the same slot is found again); and the root key, an HMAC under
/// `derive_label` of the organization, the origin, the install secret, the machine's identity
/// and the app's secret, each framed with its length (and "none" told from "empty").
pub(crate) fn derive(
    slot_label: &[u8],
    derive_label: &[u8],
    base_url: &str,
    organization_id: &str,
    install_secret: &[u8],
    machine: Option<&str>,
    app_secret: Option<&[u8]>,
) -> ([u8; 32], [u8; 32]) {
    let origin = crate::proto::origin(base_url);
    let mut slot = Sha256::new();
    slot.update(slot_label);
    for part in [origin.as_bytes(), organization_id.as_bytes()] {
        slot.update((part.len() as u64).to_be_bytes());
        slot.update(part);
    }
    let mut root = hmac_with(derive_label);
    framed_mac(&mut root, organization_id.as_bytes());
    framed_mac(&mut root, origin.as_bytes());
    framed_mac(&mut root, install_secret);
    for optional in [machine.map(str::as_bytes), app_secret] {
        match optional {
            Some(bytes) => {
                root.update(&[1]);
                framed_mac(&mut root, bytes);
            }
            None => root.update(&[0]),
        }
    }
    (slot.finalize().into(), root.finalize().into_bytes().into())
}

/// A seal's constructor: [`KeySeal::new`], [`KeySeal::session`], [`crate::trial::TrialSeal::new`]
/// (the server's URL, the organization, the install secret, the machine's identity and the
/// app's secret).
pub(crate) type MakeSeal<S> = fn(&str, &str, &[u8], Option<&str>, Option<&[u8]>) -> S;

impl KeySeal {
    /// The seal for `organization_id` on the server at `base_url` (only its origin counts, as
    /// for records), with the install secret, the machine's identity (`machine`) and the app's
    /// secret, each framed with its length (and "none" told from "empty").
    pub fn new(
        base_url: &str,
        organization_id: &str,
        install_secret: &[u8],
        machine: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> KeySeal {
        KeySeal::labelled(
            (SLOT_LABEL, DERIVE_LABEL, "key-"),
            base_url,
            organization_id,
            install_secret,
            machine,
            app_secret,
        )
    }

    /// The seal of the customer-portal session ([`crate::portal::SessionToken`], issue #64)
    /// remembered beside the cache for its hour: as [`KeySeal::new`], with its own slot
    /// (`session-…`) and keys, so neither opens the other's bytes.
    pub fn session(
        base_url: &str,
        organization_id: &str,
        install_secret: &[u8],
        machine: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> KeySeal {
        KeySeal::labelled(
            (SESSION_SLOT_LABEL, SESSION_DERIVE_LABEL, "session-"),
            base_url,
            organization_id,
            install_secret,
            machine,
            app_secret,
        )
    }

    fn labelled(
        (slot_label, derive_label, prefix): (&[u8], &[u8], &str),
        base_url: &str,
        organization_id: &str,
        install_secret: &[u8],
        machine: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> KeySeal {
        let (slot, root) = derive(
            slot_label,
            derive_label,
            base_url,
            organization_id,
            install_secret,
            machine,
            app_secret,
        );
        let sub = |label: &[u8]| -> [u8; 32] {
            let mut m = hmac_with(&root);
            m.update(label);
            m.finalize().into_bytes().into()
        };
        KeySeal {
            slot: [prefix, &hex(&slot[..16])].concat(),
            mac: sub(b"iv"),
            enc: sub(b"enc"),
        }
    }

    fn iv_mac(&self, key: &[u8]) -> HmacSha256 {
        let mut m = hmac_with(&self.mac);
        framed_mac(&mut m, key);
        m
    }

    /// `bytes` XORed with the key stream for `iv` (HKDF-Expand; `None` past its 8160 bytes,
    /// which [`MAX_KEY_BYTES`] keeps out of reach).
    fn xor(&self, iv: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
        let hk = Hkdf::<Sha256>::from_prk(&self.enc).ok()?;
        let mut stream = vec![0u8; bytes.len()];
        hk.expand_multi_info(&[DERIVE_LABEL, iv], &mut stream)
            .ok()?;
        Some(bytes.iter().zip(stream).map(|(b, s)| b ^ s).collect())
    }

    /// The stored bytes of `key` (checked as every request checks it, and at most
    /// [`MAX_KEY_BYTES`]). The same key under the same seal gives the same bytes.
    pub fn seal(&self, key: &Key) -> Result<Vec<u8>, crate::error::Error> {
        let plain = key.expose();
        crate::metadata::check_key(plain)?;
        if plain.len() > MAX_KEY_BYTES {
            return Err(crate::error::Error::invalid(
                "key",
                "is longer than 1024 bytes: not a license key",
            ));
        }
        let iv = self.iv_mac(plain.as_bytes()).finalize().into_bytes();
        let iv = &iv[..IV_BYTES];
        let sealed = self
            .xor(iv, plain.as_bytes())
            .ok_or_else(|| crate::error::Error::invalid("key", "is too long to remember"))?;
        let mut out = String::with_capacity(HEADER.len() + 2 * (IV_BYTES + sealed.len()) + 2);
        out.push_str(HEADER);
        out.push_str(&hex(iv));
        out.push('\n');
        out.push_str(&hex(&sealed));
        out.push('\n');
        Ok(out.into_bytes())
    }

    /// The key stored in `bytes`, if they were sealed here and not edited.
    pub fn open(&self, bytes: &[u8]) -> Result<Key, Unopened> {
        let rest = bytes
            .strip_prefix(HEADER.as_bytes())
            .ok_or(Unopened::Malformed)?;
        let rest = rest.strip_suffix(b"\n").ok_or(Unopened::Malformed)?;
        let mut lines = rest.split(|&b| b == b'\n');
        let (Some(iv), Some(sealed), None) = (lines.next(), lines.next(), lines.next()) else {
            return Err(Unopened::Malformed);
        };
        let iv = unhex(iv).filter(|iv| iv.len() == IV_BYTES);
        let sealed = unhex(sealed).filter(|s| !s.is_empty() && s.len() <= MAX_KEY_BYTES);
        let (Some(iv), Some(sealed)) = (iv, sealed) else {
            return Err(Unopened::Malformed);
        };
        let plain = self.xor(&iv, &sealed).ok_or(Unopened::Malformed)?;
        self.iv_mac(&plain)
            .verify_truncated_left(&iv)
            .map_err(|_| Unopened::BadSeal)?;
        String::from_utf8(plain)
            .map(Key::new)
            .map_err(|_| Unopened::BadSeal)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";

    fn seal() -> KeySeal {
        KeySeal::new(
            "https://api.polar.sh/",
            "org",
            b"secret",
            Some("machine"),
            None,
        )
    }

    #[test]
    fn seals_open_and_are_deterministic() {
        let s = seal();
        let bytes = s.seal(&Key::new(KEY)).unwrap();
        assert_eq!(s.seal(&Key::new(KEY)).unwrap(), bytes);
        assert_eq!(s.open(&bytes).unwrap().expose(), KEY);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(
            !text.contains("6ED415") && !text.contains("MYAPP"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
        assert!(
            s.slot.starts_with("key-") && s.slot.len() == 36,
            "{}",
            s.slot
        );
        // A valid store slot name (as `store::check_slot` wants it), on every target.
        assert!(s
            .slot
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert!(!format!("{s:?}").contains(&hex(&s.enc)));
    }

    #[test]
    fn the_session_seal_is_its_own() {
        let args = (
            "https://api.polar.sh/",
            "org",
            &b"secret"[..],
            Some("machine"),
            None,
        );
        let session = KeySeal::session(args.0, args.1, args.2, args.3, args.4);
        assert!(session.slot.starts_with("session-"), "{}", session.slot);
        assert_ne!(session.slot, seal().slot);
        let bytes = session.seal(&Key::new("1790000000:polar_cst_abc")).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("polar_cst"));
        assert_eq!(
            session.open(&bytes).unwrap().expose(),
            "1790000000:polar_cst_abc"
        );
        assert!(seal().open(&bytes).is_err());
    }

    #[test]
    fn another_install_machine_org_origin_or_app_secret_opens_nothing() {
        let bytes = seal().seal(&Key::new(KEY)).unwrap();
        // `seal()` with one input changed: the install secret, the machine (another, none), the
        // organization, the origin, the app secret (empty, not none).
        type Inputs<'a> = (
            &'a str,
            &'a str,
            &'a [u8],
            Option<&'a str>,
            Option<&'a [u8]>,
        );
        let others: [Inputs; 6] = [
            (
                "https://api.polar.sh",
                "org",
                b"other",
                Some("machine"),
                None,
            ),
            (
                "https://api.polar.sh",
                "org",
                b"secret",
                Some("laptop"),
                None,
            ),
            ("https://api.polar.sh", "org", b"secret", None, None),
            (
                "https://api.polar.sh",
                "org2",
                b"secret",
                Some("machine"),
                None,
            ),
            (
                "http://127.0.0.1:1",
                "org",
                b"secret",
                Some("machine"),
                None,
            ),
            (
                "https://api.polar.sh",
                "org",
                b"secret",
                Some("machine"),
                Some(b""),
            ),
        ];
        let of = |(base_url, org, install, machine, app): Inputs| {
            KeySeal::new(base_url, org, install, machine, app)
        };
        for inputs in others {
            let other = of(inputs);
            assert_eq!(other.open(&bytes), Err(Unopened::BadSeal), "{other:?}");
        }
        // Only the origin names the server: a path does not change the seal or the slot.
        let same = of((
            "https://api.polar.sh/v1",
            "org",
            b"secret",
            Some("machine"),
            None,
        ));
        assert_eq!(same.open(&bytes).unwrap().expose(), KEY);
        assert_eq!(same.slot, seal().slot);
        // The slot names the organization (and the origin).
        assert_ne!(seal().slot, of(others[3]).slot);
        assert_ne!(seal().slot, of(others[4]).slot);
    }

    #[test]
    fn every_edit_is_refused() {
        let s = seal();
        let bytes = s.seal(&Key::new(KEY)).unwrap();
        for i in 0..bytes.len() {
            for flip in [1u8, 0x20] {
                let mut edited = bytes.clone();
                edited[i] ^= flip;
                assert!(s.open(&edited).is_err(), "byte {i} ^ {flip}");
            }
        }
        assert_eq!(s.open(&bytes[..bytes.len() - 1]), Err(Unopened::Malformed));
        assert_eq!(s.open(b""), Err(Unopened::Malformed));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"00\n");
        assert_eq!(s.open(&longer), Err(Unopened::Malformed));
    }

    #[test]
    fn keys_are_checked_before_sealing() {
        let s = seal();
        for bad in ["", " KEY", "KEY\n", "K\0EY"] {
            assert!(s.seal(&Key::new(bad)).is_err(), "{bad:?}");
        }
        assert!(s.seal(&Key::new("K".repeat(MAX_KEY_BYTES + 1))).is_err());
        let long = Key::new("K".repeat(MAX_KEY_BYTES));
        assert_eq!(s.open(&s.seal(&long).unwrap()).unwrap(), long);
        let unicode = Key::new("clé-ÉTÉ-✓");
        assert_eq!(s.open(&s.seal(&unicode).unwrap()).unwrap(), unicode);
    }
}
