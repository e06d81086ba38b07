//! The cache record's stored bytes: versioned, MACed, pure (no IO, wasm-safe).
//!
//! Layout (UTF-8 text, three lines, each ending in `\n`, nothing after):
//!
//! ```text
//! polar-license-cache v2
//! {"origin":"https://api.polar.sh","organization_id":"…","display_key":"****-6ED415","seq":7,…}
//! <64 lowercase hex digits: HMAC-SHA256 over the first two lines, newlines included>
//! ```
//!
//! The MAC key ([`MacKey::derive`]) comes from the license key, the organization, the server's
//! origin, a random per-install secret kept beside the cache, the machine's identity and an
//! optional secret the app supplies. Any edit of the bytes makes [`decode`] fail with an
//! [`Untrusted`] reason, which callers treat as *no cache* (never as `cache_error`), and which
//! `status` can report as "present but not trusted". An unknown version is untrusted too (a
//! newer format is never half-read; a v1 record, which was not bound to its server, is never
//! read).
//!
//! Each record carries a sequence number, and a second sealed entry, the *ledger*
//! ([`encode_ledger`], in the slot [`ledger_name`]), holds the highest one written. A record
//! older than its ledger (a saved copy put back after a denial) or without a ledger is
//! [`Untrusted::Replayed`].
//!
//! This is tamper *evidence*: someone holding the license key and the install secret (both
//! on the machine) can forge a record; an app secret compiled into the app raises the bar.

use crate::grace::Record;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The format version [`encode`] writes and [`decode`] reads.
pub const FORMAT_VERSION: u32 = 2;

/// The header line's prefix, before the version number.
pub const MAGIC: &str = "polar-license-cache v";

/// Records larger than this are never decoded.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

const MAC_LABEL: &[u8] = b"polar-license/cache-mac/v2";
const SLOT_LABEL: &[u8] = b"polar-license/slot/v2";

/// The ledger's header line (it is not a record: a record never passes for a ledger).
const LEDGER_HEADER: &str = "polar-license-ledger v1\n";

/// The key that seals a record. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey([u8; 32]);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// Feeds `bytes` with a 64-bit big-endian length prefix, so no two input lists collide.
fn framed(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn hmac_with(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails; the fallback keeps it panic-free.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

impl MacKey {
    /// Derives the MAC key (HKDF-extract style: HMAC-SHA256 keyed with a domain label over
    /// the length-prefixed organization, license key, install secret and app secret, with a
    /// flag telling "no app secret" from "empty app secret").
    pub fn derive(
        license_key: &str,
        organization_id: &str,
        install_secret: &[u8],
        app_secret: Option<&[u8]>,
    ) -> MacKey {
        let mut mac = hmac_with(MAC_LABEL);
        framed(&mut mac, organization_id.as_bytes());
        framed(&mut mac, license_key.as_bytes());
        framed(&mut mac, install_secret);
        match app_secret {
            Some(secret) => {
                mac.update(&[1]);
                framed(&mut mac, secret);
            }
            None => mac.update(&[0]),
        }
        MacKey(mac.finalize().into_bytes().into())
    }
}

/// Why stored bytes are not trusted. Callers treat every one of these as "no cache".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Untrusted {
    /// A cache header with a version this library does not read.
    UnknownVersion,
    /// The MAC does not match: the record was edited, or was sealed with another key,
    /// organization, install secret or app secret.
    BadMac,
    /// Not in the cache format at all (or truncated).
    Malformed,
    /// Sealed correctly, but older than the newest record written here (a saved copy put
    /// back), or its ledger was removed or edited.
    Replayed,
}

impl Untrusted {
    /// `unknown_version`, `bad_mac` or `malformed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Untrusted::UnknownVersion => "unknown_version",
            Untrusted::BadMac => "bad_mac",
            Untrusted::Malformed => "malformed",
            Untrusted::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Untrusted::UnknownVersion => "cache present but in an unknown format version",
            Untrusted::BadMac => {
                "cache present but sealed with other keys: edited, copied from another machine \
                 or install, or this machine's id, the install secret, the app secret or the \
                 server changed"
            }
            Untrusted::Malformed => "cache present but not in the cache format (corrupt)",
            Untrusted::Replayed => {
                "cache present but older than the newest record written here (a saved copy put \
                 back), or its ledger is missing"
            }
        })
    }
}

impl std::error::Error for Untrusted {}

fn header() -> String {
    format!("{MAGIC}{FORMAT_VERSION}\n")
}

fn tag(key: &MacKey, signed: &[u8]) -> HmacSha256 {
    let mut mac = hmac_with(&key.0);
    mac.update(signed);
    mac
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Strict lowercase hex (an uppercase digit is malformed, so no two encodings of one MAC).
pub(crate) fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Seals a record into the cache format.
pub fn encode(record: &Record, key: &MacKey) -> Vec<u8> {
    let mut out = header().into_bytes();
    // Serializing plain data (strings, numbers, maps with string keys) cannot fail; an empty
    // body would only make the record unreadable (no cache), never wrong.
    out.extend(serde_json::to_vec(record).unwrap_or_default());
    out.push(b'\n');
    let mac = tag(key, &out).finalize().into_bytes();
    out.extend(hex(&mac).into_bytes());
    out.push(b'\n');
    out
}

/// Opens stored bytes: the record, or why it is not trusted.
pub fn decode(bytes: &[u8], key: &MacKey) -> Result<Record, Untrusted> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Untrusted::Malformed);
    }
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Untrusted::Malformed)?;
    let first = &bytes[..header_end];
    let version = first
        .strip_prefix(MAGIC.as_bytes())
        .ok_or(Untrusted::Malformed)?;
    if version != FORMAT_VERSION.to_string().as_bytes() {
        return Err(Untrusted::UnknownVersion);
    }
    // The body is one line of compact JSON (no raw newline can occur in it); the MAC line
    // is exactly 64 hex digits and a newline, the end of the bytes.
    let rest = &bytes[header_end + 1..];
    let body_len = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Untrusted::Malformed)?;
    let signed = &bytes[..header_end + 1 + body_len + 1];
    let mac_line = &rest[body_len + 1..];
    let mac_hex = mac_line.strip_suffix(b"\n").ok_or(Untrusted::Malformed)?;
    if mac_hex.len() != 64 {
        return Err(Untrusted::Malformed);
    }
    let mac = unhex(mac_hex).ok_or(Untrusted::Malformed)?;
    tag(key, signed)
        .verify_slice(&mac)
        .map_err(|_| Untrusted::BadMac)?;
    serde_json::from_slice(&rest[..body_len]).map_err(|_| Untrusted::Malformed)
}

/// The store slot for a server origin, an organization and a key: `v2-` and 32 hex digits of
/// a SHA-256 over the three (never the raw key), safe as a file name everywhere. Records of
/// one key made against different servers (production, sandbox, an emulator) never share a
/// slot.
pub fn slot_name(origin: &str, organization_id: &str, license_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(SLOT_LABEL);
    for part in [
        origin.as_bytes(),
        organization_id.as_bytes(),
        license_key.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    format!("v2-{}", hex(&digest[..16]))
}

/// The slot of a record's ledger.
pub fn ledger_name(slot: &str) -> String {
    format!("{slot}-seq")
}

/// Seals a ledger: the highest record sequence number written to a slot.
pub fn encode_ledger(seq: u64, key: &MacKey) -> Vec<u8> {
    let mut out = format!("{LEDGER_HEADER}{seq}\n").into_bytes();
    let mac = tag(key, &out).finalize().into_bytes();
    out.extend(hex(&mac).into_bytes());
    out.push(b'\n');
    out
}

/// Opens a ledger: the sequence number, or why it is not trusted.
pub fn decode_ledger(bytes: &[u8], key: &MacKey) -> Result<u64, Untrusted> {
    let rest = bytes
        .strip_prefix(LEDGER_HEADER.as_bytes())
        .ok_or(Untrusted::Malformed)?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Untrusted::Malformed)?;
    let digits = &rest[..end];
    let mac_hex = rest[end + 1..]
        .strip_suffix(b"\n")
        .filter(|m| m.len() == 64)
        .ok_or(Untrusted::Malformed)?;
    let mac = unhex(mac_hex).ok_or(Untrusted::Malformed)?;
    tag(key, &bytes[..LEDGER_HEADER.len() + end + 1])
        .verify_slice(&mac)
        .map_err(|_| Untrusted::BadMac)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Untrusted::Malformed);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(Untrusted::Malformed)
}

/// The activation an untrusted (or unsealable) record remembers, read without its seal.
///
/// An activation id is no secret and grants nothing by itself: Polar still checks it with the
/// key and this machine's conditions. So a record that can no longer be trusted (this
/// machine's id could not be read, the install secret was lost) still tells which activation
/// to validate, instead of taking a new activation slot. Never used for a cached answer.
pub fn peek_activation(bytes: &[u8]) -> Option<crate::grace::StoredActivation> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(default)]
        activation: Option<crate::grace::StoredActivation>,
    }
    if bytes.len() > MAX_RECORD_BYTES {
        return None;
    }
    let mut lines = bytes.split(|&b| b == b'\n');
    lines.next()?.strip_prefix(MAGIC.as_bytes())?;
    let body = lines.next()?;
    serde_json::from_slice::<Peek>(body).ok()?.activation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrips_strictly() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex(b"00abff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex(b"00ABff"), None);
        assert_eq!(unhex(b"0"), None);
    }

    #[test]
    fn slot_names_are_safe_and_distinct() {
        let a = slot_name("https://api.polar.sh", "org", "KEY-1");
        assert_eq!(a.len(), 35);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(a, slot_name("https://api.polar.sh", "org", "KEY-2"));
        assert_ne!(a, slot_name("http://127.0.0.1:8787", "org", "KEY-1"));
        assert_ne!(slot_name("o", "ab", "c"), slot_name("o", "a", "bc"));
        assert!(!a.contains("KEY"));
        assert!(ledger_name(&a).len() <= 64);
    }

    #[test]
    fn ledgers_roundtrip_and_refuse_edits() {
        let key = MacKey::derive("k", "o", b"s", None);
        let bytes = encode_ledger(42, &key);
        assert_eq!(decode_ledger(&bytes, &key), Ok(42));
        assert_eq!(
            decode_ledger(&bytes, &MacKey::derive("k2", "o", b"s", None)),
            Err(Untrusted::BadMac)
        );
        let edited = String::from_utf8_lossy(&bytes).replacen("42", "43", 1);
        assert_eq!(
            decode_ledger(edited.as_bytes(), &key),
            Err(Untrusted::BadMac)
        );
        assert_eq!(decode_ledger(b"", &key), Err(Untrusted::Malformed));
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert_eq!(decode_ledger(&longer, &key), Err(Untrusted::Malformed));
    }

    #[test]
    fn derived_keys_differ_by_every_input() {
        let base = MacKey::derive("k", "o", b"s", None);
        assert_ne!(base, MacKey::derive("k2", "o", b"s", None));
        assert_ne!(base, MacKey::derive("k", "o2", b"s", None));
        assert_ne!(base, MacKey::derive("k", "o", b"s2", None));
        assert_ne!(base, MacKey::derive("k", "o", b"s", Some(b"")));
        assert_ne!(
            MacKey::derive("k", "o", b"s", Some(b"a")),
            MacKey::derive("k", "o", b"s", Some(b"b"))
        );
        assert_eq!(format!("{base:?}"), "MacKey(..)");
    }
}
