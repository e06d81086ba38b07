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
//!
//! Nothing is read from stored bytes before a seal is checked (issue #76, finding 5): the
//! bytes are a [`Sealed`], whose only ways out are [`Sealed::open_as`] (the record, its MAC
//! checked) and [`Sealed::activation`] (the remembered activation alone, its own seal
//! checked). The activation carries a seal of its own (`"seal"`, the last member of its
//! object) under a key made without the install secret ([`MacKey::derive`]): a record that
//! can no longer be trusted because the install secret was lost still names the activation
//! this machine holds, so that no new slot is taken, while a byte flipped in the activation
//! itself makes it no activation at all, never another one. An activation id is no secret
//! and grants nothing by itself (Polar checks it with the key and the machine's conditions),
//! so its seal is integrity, not authority: whoever has the license key can make one.

use crate::decimal::digits;
use crate::grace::{DenialMark, GoodVerdict, LicenseData, Record, StoredActivation};
use crate::json::{read_metadata, JsonIn, JsonOut};
use crate::reason::Reason;
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
const ACTIVATION_LABEL: &[u8] = b"polar-license/activation-seal/v1";
const SLOT_LABEL: &[u8] = b"polar-license/slot/v2";

/// The ledger's header line (it is not a record: a record never passes for a ledger).
const LEDGER_HEADER: &str = "polar-license-ledger v1\n";
const CLOCK_HEADER: &str = "polar-license-clock v1\n";

/// The key that seals a record, and the one that seals its remembered activation. Its
/// `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey {
    record: [u8; 32],
    /// The activation's seal: the same inputs but the install secret (see the module's notes).
    activation: [u8; 32],
}

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
    /// flag telling "no app secret" from "empty app secret"), and the activation's seal key
    /// from the same inputs under another label, without the install secret.
    pub fn derive(
        license_key: &str,
        organization_id: &str,
        install_secret: &[u8],
        app_secret: Option<&[u8]>,
    ) -> MacKey {
        let key = |label: &[u8], install_secret: Option<&[u8]>| -> [u8; 32] {
            let mut mac = hmac_with(label);
            framed(&mut mac, organization_id.as_bytes());
            framed(&mut mac, license_key.as_bytes());
            if let Some(install_secret) = install_secret {
                framed(&mut mac, install_secret);
            }
            match app_secret {
                Some(secret) => {
                    mac.update(&[1]);
                    framed(&mut mac, secret);
                }
                None => mac.update(&[0]),
            }
            mac.finalize().into_bytes().into()
        };
        MacKey {
            record: key(MAC_LABEL, Some(install_secret)),
            activation: key(ACTIVATION_LABEL, None),
        }
    }

    /// The keys of a key's slot, as every face derives them: the record's from the license
    /// key, the organization, the install secret and, each framed with its length so no two
    /// inputs collide, the server's origin, the machine's identity and the app's secret; the
    /// activation's from the same but the install secret and the machine's identity, so that
    /// a record no longer trusted because either was lost or changed (a profile restored, a
    /// machine's id drifted) still names the activation to validate or free.
    pub fn for_slot(
        license_key: &str,
        organization_id: &str,
        install_secret: &[u8],
        origin: &str,
        machine: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> MacKey {
        let framed_all = |parts: &[&[u8]]| {
            let mut out = Vec::new();
            for part in parts {
                out.extend_from_slice(&(part.len() as u64).to_be_bytes());
                out.extend_from_slice(part);
            }
            out
        };
        let app = app_secret.unwrap_or_default();
        let machine = machine.map(str::as_bytes).unwrap_or_default();
        let extra = framed_all(&[origin.as_bytes(), machine, app]);
        let mut key = MacKey::derive(license_key, organization_id, install_secret, Some(&extra));
        let unbound = framed_all(&[origin.as_bytes(), app]);
        key.activation =
            MacKey::derive(license_key, organization_id, &[], Some(&unbound)).activation;
        key
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
    [MAGIC, &digits(u64::from(FORMAT_VERSION)), "\n"].concat()
}

fn tag(key: &MacKey, signed: &[u8]) -> HmacSha256 {
    let mut mac = hmac_with(&key.record);
    mac.update(signed);
    mac
}

/// The activation's seal over its object's bytes as [`write_activation`] writes them.
fn activation_tag(key: &MacKey, object: &[u8]) -> HmacSha256 {
    let mut mac = hmac_with(&key.activation);
    mac.update(object);
    mac
}

/// The member that ends a sealed activation's object: `,"seal":"` 64 hex digits `"}`.
const SEAL_MEMBER: &str = ",\"seal\":\"";
/// The bytes of the seal member after its name: 64 hex digits, `"` and the object's `}`.
const SEAL_TAIL: usize = 64 + 2;

/// Stored record bytes, not yet verified. Nothing can be read from them but through a seal:
/// the whole record with the record's key ([`Sealed::open_as`]), or the remembered
/// activation alone with its own ([`Sealed::activation`]).
#[derive(Clone, Copy)]
pub struct Sealed<'a>(&'a [u8]);

impl fmt::Debug for Sealed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl<'a> Sealed<'a> {
    /// The bytes a store holds for a record.
    pub fn new(bytes: &'a [u8]) -> Sealed<'a> {
        Sealed(bytes)
    }

    /// The record, once the header and the MAC are checked: or why it is not trusted.
    pub fn open_as<L: LicenseData>(&self, key: &MacKey) -> Result<Record<L>, Untrusted> {
        let body = opened_body(self.0, key)?;
        let text = std::str::from_utf8(body).map_err(|_| Untrusted::Malformed)?;
        L::parse(text)
            .as_ref()
            .and_then(read_record)
            .ok_or(Untrusted::Malformed)
    }

    /// The activation the record remembers, read only when its own seal verifies under
    /// `key`: for a record that cannot be trusted (the install secret lost, a byte flipped
    /// elsewhere in it), which still tells which activation to validate instead of taking a
    /// new activation slot. Found by its bytes alone (the last member of the record's body:
    /// the rest of the file need not parse), so a flip anywhere outside it leaves it readable,
    /// and one inside it makes it none. A record written before activations were sealed has
    /// none to give. Never used for a cached answer.
    pub fn activation(&self, key: &MacKey) -> Option<StoredActivation> {
        self.activation_as::<crate::model::ValidatedLicenseKey>(key)
    }

    /// Whether the stored body plainly held no activation (its last member
    /// `"activation":null`, as a bare key's verdict writes it): read with no seal checked, and
    /// used only to tell "activate first" from an activation that was there and is now
    /// unreadable. One flipped byte cannot write that member over an activation's object, so
    /// a damaged activation is never taken for none.
    pub fn held_no_activation(&self) -> bool {
        const NONE: &[u8] = b",\"activation\":null}\n";
        self.0.windows(NONE.len()).any(|w| w == NONE)
    }

    /// [`Sealed::activation`], its object read by `L`'s JSON reader (the npm engine's strict
    /// one, [`crate::answers::SchemaLicense`], keeps serde_json out of its wasm).
    pub fn activation_as<L: LicenseData>(&self, key: &MacKey) -> Option<StoredActivation> {
        let bytes = self.0;
        if bytes.len() > MAX_RECORD_BYTES {
            return None;
        }
        let seal_at = rfind(bytes, SEAL_MEMBER.as_bytes())?;
        let hex_at = seal_at + SEAL_MEMBER.len();
        let tail = bytes.get(hex_at..hex_at + SEAL_TAIL)?;
        let (seal_hex, end) = tail.split_at(64);
        if end != b"\"}" {
            return None;
        }
        let seal = unhex(seal_hex)?;
        // The object begins with its id; a condition named `id` may begin the same way, so
        // the last few beginnings are tried (only the object's own verifies). The member's
        // name before it is not needed: a byte flipped there leaves the object whole.
        let mut before = seal_at;
        for _ in 0..ACTIVATION_TRIES {
            let begin = rfind(&bytes[..before], ACTIVATION_BEGINS.as_bytes())?;
            // The object as written before its seal was added: its members, then `}`.
            let mut object = bytes[begin..seal_at].to_vec();
            object.push(b'}');
            if activation_tag(key, &object).verify_slice(&seal).is_ok() {
                let text = std::str::from_utf8(&object).ok()?;
                return read_activation(&L::parse(text)?);
            }
            before = begin;
        }
        None
    }
}

/// How a sealed activation's object begins: with its id.
const ACTIVATION_BEGINS: &str = "{\"id\":\"";
/// The most beginnings [`Sealed::activation`] tries (a condition named `id`, nested in the
/// object, is the only other kind).
const ACTIVATION_TRIES: usize = 4;

/// The start of the last occurrence of `needle` in `hay`.
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
}

pub use crate::hex::{hex, unhex};

/// Bytes of the per-install secret, on every face (stored raw in a file natively, as 64 hex
/// digits in Web Storage and the npm package's stores).
pub const INSTALL_SECRET_LEN: usize = 32;

/// The install secret stored as hex, or `None` when it is not exactly 64 hex digits (either
/// case: what a store holds was written by some face, and a bad one is replaced).
pub fn install_secret_from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != INSTALL_SECRET_LEN * 2 {
        return None;
    }
    unhex(text.to_ascii_lowercase().as_bytes())
}

/// Seals a record into the cache format.
pub fn encode(record: &Record, key: &MacKey) -> Vec<u8> {
    encode_as(record, key)
}

/// Seals a record of any license type ([`LicenseData`]) into the cache format: the same bytes
/// whichever face writes them.
pub fn encode_as<L: LicenseData>(record: &Record<L>, key: &MacKey) -> Vec<u8> {
    let mut out = header().into_bytes();
    out.extend(record_body_as(record, Some(key)).into_bytes());
    out.push(b'\n');
    let mac = tag(key, &out).finalize().into_bytes();
    out.extend(hex(&mac).into_bytes());
    out.push(b'\n');
    out
}

/// Opens stored bytes: the record, or why it is not trusted.
pub fn decode(bytes: &[u8], key: &MacKey) -> Result<Record, Untrusted> {
    decode_as(bytes, key)
}

/// Opens stored bytes into a record of any license type ([`LicenseData`]).
pub fn decode_as<L: LicenseData>(bytes: &[u8], key: &MacKey) -> Result<Record<L>, Untrusted> {
    Sealed::new(bytes).open_as(key)
}

/// A record's body line read alone, with no seal checked: for benchmarks and tools that
/// inspect a record's JSON. Never trust what it returns (see [`decode`]).
pub fn read_body(body: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(body).ok()?;
    read_record(&<crate::model::ValidatedLicenseKey as LicenseData>::parse(
        text,
    )?)
}

/// The body line of sealed record bytes, once the header and the MAC are checked.
fn opened_body<'a>(bytes: &'a [u8], key: &MacKey) -> Result<&'a [u8], Untrusted> {
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
    if version != digits(u64::from(FORMAT_VERSION)).as_bytes() {
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
    Ok(&rest[..body_len])
}

/// A record's body: one line of compact JSON, its members in this order (the order the format
/// has always had). `Option`s are written `null`, metadata with its keys sorted.
#[cfg(test)]
fn record_body<L: LicenseData>(r: &Record<L>) -> String {
    record_body_as(r, None)
}

/// A record's body (one line of compact JSON, its members in the format's order), the activation
/// sealed with `key` when there is one (the activation's object then ends with its `"seal"` member:
/// readers that do not know it skip it).
fn record_body_as<L: LicenseData>(r: &Record<L>, key: Option<&MacKey>) -> String {
    let mut j = JsonOut::new();
    j.raw("{");
    j.key("origin").str(&r.origin);
    j.key("organization_id").str(&r.organization_id);
    j.key("display_key").str(&r.display_key);
    opt_member(&mut j, "good", r.good.as_ref(), write_good);
    j.key("latest_seen").int(r.latest_seen);
    j.key("stalled").uint(u64::from(r.stalled));
    j.key("seq").uint(r.seq);
    opt_member(&mut j, "denied", r.denied.as_ref(), write_denied);
    j.key("blocked_until").opt_int(r.blocked_until);
    match (r.activation.as_ref(), key) {
        (Some(a), Some(key)) => {
            j.key("activation").raw(&sealed_activation(a, key));
        }
        (a, _) => opt_member(&mut j, "activation", a, write_activation),
    }
    j.raw("}");
    j.done()
}

/// The activation's object as [`write_activation`] writes it, with its seal as its last
/// member.
fn sealed_activation(a: &StoredActivation, key: &MacKey) -> String {
    let mut j = JsonOut::new();
    write_activation(&mut j, a);
    let object = j.done();
    let seal = activation_tag(key, object.as_bytes())
        .finalize()
        .into_bytes();
    let open = object.strip_suffix('}').unwrap_or(&object);
    [open, SEAL_MEMBER, &hex(&seal), "\"}"].concat()
}

/// The member `name`: `value` written by `write`, or `null` when there is none.
fn opt_member<T>(j: &mut JsonOut, name: &str, value: Option<&T>, write: fn(&mut JsonOut, &T)) {
    j.key(name);
    match value {
        Some(v) => write(j, v),
        None => {
            j.null();
        }
    }
}

/// A record's last good verdict.
fn write_good<L: LicenseData>(j: &mut JsonOut, g: &GoodVerdict<L>) {
    j.raw("{");
    j.key("license");
    g.license.write(j);
    j.key("activation_id").opt_str(g.activation_id.as_deref());
    j.key("benefit_id").opt_str(g.benefit_id.as_deref());
    j.key("customer_id").opt_str(g.customer_id.as_deref());
    j.key("conditions").meta(&g.conditions);
    j.key("verified_at").int(g.verified_at);
    j.key("server_date").opt_int(g.server_date);
    // Written only when there is one: a record without a lease keeps its bytes.
    if let Some(lease) = &g.lease {
        j.key("lease").str(lease);
    }
    j.raw("}");
}

/// A record's remembered denial.
fn write_denied(j: &mut JsonOut, d: &DenialMark) {
    j.raw("{");
    j.key("reason").str(d.reason.code());
    j.key("detail").str(&d.detail);
    j.key("status").uint(u64::from(d.status));
    j.key("remaining_usages").opt_int(d.remaining_usages);
    j.key("at").int(d.at);
    if let Some(token) = &d.signed {
        j.key("signed").str(token);
    }
    j.raw("}");
}

/// A remembered activation as records keep it (and the npm package's `status` shows it).
pub fn write_activation(j: &mut JsonOut, a: &StoredActivation) {
    j.raw("{");
    j.key("id").str(&a.id);
    j.key("label").str(&a.label);
    j.key("conditions").meta(&a.conditions);
    j.key("created_at").int(a.created_at);
    j.raw("}");
}

/// A required string member.
fn text<J: JsonIn>(v: &J, name: &str) -> Option<String> {
    v.member(name)?.string()
}

/// A required integer member.
fn int<J: JsonIn>(v: &J, name: &str) -> Option<i64> {
    v.member(name)?.int()
}

/// A member that may be absent (then `default`), else read by `read`.
fn or_default<J: JsonIn, T>(
    v: &J,
    name: &str,
    default: T,
    read: impl FnOnce(&J) -> Option<T>,
) -> Option<T> {
    match v.member(name) {
        None => Some(default),
        Some(m) => read(&m),
    }
}

/// A record's body as [`record_body_as`] writes it (and as every version of the format wrote it):
/// `None` when it is not one. Unknown members are ignored.
fn read_record<L: LicenseData>(v: &L::Json) -> Option<Record<L>> {
    Some(Record {
        origin: or_default(v, "origin", String::new(), JsonIn::string)?,
        organization_id: text(v, "organization_id")?,
        display_key: text(v, "display_key")?,
        good: v.optional("good", read_good::<L>)?,
        latest_seen: int(v, "latest_seen")?,
        stalled: or_default(v, "stalled", 0, |m| u32::try_from(m.int()?).ok())?,
        seq: or_default(v, "seq", 0, JsonIn::unsigned)?,
        denied: v.optional("denied", read_denial)?,
        blocked_until: v.optional("blocked_until", JsonIn::int)?,
        activation: v.optional("activation", read_activation)?,
        lease_gate: crate::grace::LeaseGate::Unsigned,
    })
}

fn read_good<L: LicenseData>(v: &L::Json) -> Option<GoodVerdict<L>> {
    if !v.is_object() {
        return None;
    }
    Some(GoodVerdict {
        license: L::read(&v.member("license")?)?,
        activation_id: v.optional("activation_id", JsonIn::string)?,
        benefit_id: v.optional("benefit_id", JsonIn::string)?,
        customer_id: v.optional("customer_id", JsonIn::string)?,
        conditions: read_metadata(&v.member("conditions")?)?,
        verified_at: int(v, "verified_at")?,
        server_date: v.optional("server_date", JsonIn::int)?,
        lease: v.optional("lease", JsonIn::string)?,
    })
}

fn read_denial<J: JsonIn>(v: &J) -> Option<DenialMark> {
    Some(DenialMark {
        reason: Reason::from_code(&text(v, "reason")?)?,
        detail: text(v, "detail")?,
        status: u16::try_from(int(v, "status")?).ok()?,
        remaining_usages: v.optional("remaining_usages", JsonIn::int)?,
        at: int(v, "at")?,
        signed: v.optional("signed", JsonIn::string)?,
        verified: None,
    })
}

fn read_activation<J: JsonIn>(v: &J) -> Option<StoredActivation> {
    Some(StoredActivation {
        id: text(v, "id")?,
        label: text(v, "label")?,
        conditions: read_metadata(&v.member("conditions")?)?,
        created_at: int(v, "created_at")?,
    })
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
    ["v2-", &hex(&digest[..16])].concat()
}

/// The slot of a record's ledger.
pub fn ledger_name(slot: &str) -> String {
    [slot, "-seq"].concat()
}

/// A one-line sealed file (a ledger, a clock note): `header`, `line`, a newline, then the hex
/// HMAC of all that and a newline.
fn seal_line(header: &str, line: &str, key: &MacKey) -> Vec<u8> {
    let mut out = [header, line, "\n"].concat().into_bytes();
    let mac = tag(key, &out).finalize().into_bytes();
    out.extend(hex(&mac).into_bytes());
    out.push(b'\n');
    out
}

/// The line of a file [`seal_line`] wrote with `header`, once its seal is checked.
fn open_line<'a>(bytes: &'a [u8], header: &str, key: &MacKey) -> Result<&'a [u8], Untrusted> {
    let rest = bytes
        .strip_prefix(header.as_bytes())
        .ok_or(Untrusted::Malformed)?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Untrusted::Malformed)?;
    let mac_hex = rest[end + 1..]
        .strip_suffix(b"\n")
        .filter(|m| m.len() == 64)
        .ok_or(Untrusted::Malformed)?;
    let mac = unhex(mac_hex).ok_or(Untrusted::Malformed)?;
    tag(key, &bytes[..header.len() + end + 1])
        .verify_slice(&mac)
        .map_err(|_| Untrusted::BadMac)?;
    Ok(&rest[..end])
}

/// Seals a ledger: the highest record sequence number written to a slot.
pub fn encode_ledger(seq: u64, key: &MacKey) -> Vec<u8> {
    seal_line(LEDGER_HEADER, &digits(seq), key)
}

/// Opens a ledger: the sequence number, or why it is not trusted.
pub fn decode_ledger(bytes: &[u8], key: &MacKey) -> Result<u64, Untrusted> {
    let digits = open_line(bytes, LEDGER_HEADER, key)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Untrusted::Malformed);
    }
    crate::decimal::read_u64(digits).ok_or(Untrusted::Malformed)
}

/// The clock note's slot name for a record slot.
pub fn clock_name(slot: &str) -> String {
    [slot, "-clock"].concat()
}

/// What a cached answer at a clock close to the record's noted: the record it belongs to (its
/// sequence number) and the record's `latest_seen` and `stalled` as they are after that answer.
/// Stored without fsync or rename, so it may be lost or torn: it only ever adds to its record
/// (a later clock, more answers at a still one), and one that is missing, torn, sealed under
/// another key or for another record is no note at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockNote {
    /// The sequence number of the record it adds to.
    pub seq: u64,
    /// The latest clock an answer from that record was given at.
    pub latest_seen: i64,
    /// Answers given at a clock that had not moved past `latest_seen`.
    pub stalled: u32,
}

/// Seals a clock note.
pub fn encode_clock(note: &ClockNote, key: &MacKey) -> Vec<u8> {
    // Built without `core::fmt` (crate::decimal), as every format of the core.
    let sign = if note.latest_seen < 0 { "-" } else { "" };
    let line = [
        &digits(note.seq),
        " ",
        sign,
        &digits(note.latest_seen.unsigned_abs()),
        " ",
        &digits(u64::from(note.stalled)),
    ]
    .concat();
    seal_line(CLOCK_HEADER, &line, key)
}

/// Opens a clock note, or says why it is not one.
pub fn decode_clock(bytes: &[u8], key: &MacKey) -> Result<ClockNote, Untrusted> {
    let line = open_line(bytes, CLOCK_HEADER, key)?;
    let line = std::str::from_utf8(line).map_err(|_| Untrusted::Malformed)?;
    let mut parts = line.split(' ');
    let mut next = || {
        let part = parts.next().ok_or(Untrusted::Malformed)?;
        let (negative, digits) = match part.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, part),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Untrusted::Malformed);
        }
        let n = crate::decimal::read_u64(digits.as_bytes()).ok_or(Untrusted::Malformed)?;
        Ok((negative, n))
    };
    let (seq, latest_seen, stalled) = (next()?, next()?, next()?);
    if parts.next().is_some() || seq.0 || stalled.0 {
        return Err(Untrusted::Malformed);
    }
    let magnitude = i64::try_from(latest_seen.1).map_err(|_| Untrusted::Malformed)?;
    Ok(ClockNote {
        seq: seq.1,
        latest_seen: if latest_seen.0 { -magnitude } else { magnitude },
        stalled: u32::try_from(stalled.1).map_err(|_| Untrusted::Malformed)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
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

    /// `decode` refuses `bytes` (sealed under the key the tests derive from "k") under another
    /// key, and with the text `edit.0` changed to `edit.1`: a bad MAC both times.
    fn refuses_other_key_and_edit<T: std::fmt::Debug + PartialEq>(
        decode: fn(&[u8], &MacKey) -> Result<T, Untrusted>,
        bytes: &[u8],
        edit: (&str, &str),
    ) {
        let key = MacKey::derive("k", "o", b"s", None);
        let other = MacKey::derive("k2", "o", b"s", None);
        assert_eq!(decode(bytes, &other), Err(Untrusted::BadMac));
        let edited = String::from_utf8_lossy(bytes).replacen(edit.0, edit.1, 1);
        assert_eq!(decode(edited.as_bytes(), &key), Err(Untrusted::BadMac));
    }

    #[test]
    fn clock_notes_roundtrip_and_refuse_edits_tears_and_ledgers() {
        let key = MacKey::derive("k", "o", b"s", None);
        let note = ClockNote {
            seq: 7,
            latest_seen: 1_790_000_123,
            stalled: 3,
        };
        let bytes = encode_clock(&note, &key);
        assert_eq!(decode_clock(&bytes, &key), Ok(note));
        // The text is what Display writes; a clock before 1970 (set back that far) and the
        // extremes come back as they were.
        assert!(String::from_utf8_lossy(&bytes).contains("\n7 1790000123 3\n"));
        for latest_seen in [-1, -1_790_000_123, i64::MIN + 1, i64::MAX, 0] {
            let n = ClockNote {
                seq: u64::MAX,
                latest_seen,
                stalled: u32::MAX,
            };
            assert_eq!(decode_clock(&encode_clock(&n, &key), &key), Ok(n));
        }
        refuses_other_key_and_edit(decode_clock, &bytes, (" 3\n", " 0\n"));
        // Torn: any prefix, or the old bytes' tail after a shorter new note, is no note.
        for cut in 0..bytes.len() {
            assert!(decode_clock(&bytes[..cut], &key).is_err(), "prefix {cut}");
        }
        let mut tail = bytes.clone();
        tail.extend_from_slice(b"ff\n");
        assert!(decode_clock(&tail, &key).is_err());
        // A ledger sealed under the same key is not a note, nor a note a ledger.
        assert!(decode_clock(&encode_ledger(7, &key), &key).is_err());
        assert!(decode_ledger(&bytes, &key).is_err());
        assert!(clock_name(&slot_name("o", "org", "KEY")).len() <= 64);
    }

    #[test]
    fn ledgers_roundtrip_and_refuse_edits() {
        let key = MacKey::derive("k", "o", b"s", None);
        let bytes = encode_ledger(42, &key);
        assert_eq!(decode_ledger(&bytes, &key), Ok(42));
        refuses_other_key_and_edit(decode_ledger, &bytes, ("42", "43"));
        assert_eq!(decode_ledger(b"", &key), Err(Untrusted::Malformed));
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert_eq!(decode_ledger(&longer, &key), Err(Untrusted::Malformed));
    }

    /// A record with every member set, license and metadata of every value kind included.
    fn rich_record() -> Record {
        let license: crate::model::ValidatedLicenseKey = serde_json::from_str(
            r#"{"id":"0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e","created_at":"2025-01-01T00:00:00.120000Z",
            "modified_at":null,"organization_id":"o","customer_id":"c","customer":{"id":"c",
            "created_at":"2025-01-01T00:00:00Z","organization_id":"o","metadata":{"tier":"pro","n":2,"x":1.5}},
            "benefit_id":"b","key":"****-6ED415","display_key":"****-6ED415","status":"granted",
            "limit_activations":3,"usage":1,"limit_usage":10,"validations":4,"last_validated_at":null,
            "expires_at":"2030-01-01T00:00:00Z","member_id":"m","member":{"id":"m","email":"a@b.c"},
            "activation":{"id":"a","license_key_id":"0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e","label":"l\u00e9\n",
            "meta":{"v":true},"created_at":"2025-01-01T00:00:00Z","modified_at":null}}"#,
        )
        .unwrap();
        let mut conditions = crate::metadata::Metadata::new();
        conditions.insert("machine_fingerprint".into(), "f\"p".into());
        conditions.insert("f".into(), crate::metadata::MetaValue::Float(0.1));
        conditions.insert("i".into(), crate::metadata::MetaValue::Int(-7));
        conditions.insert("b".into(), crate::metadata::MetaValue::Bool(false));
        Record {
            origin: "https://api.polar.sh".into(),
            organization_id: "o".into(),
            display_key: "****-6ED415".into(),
            good: Some(GoodVerdict {
                license,
                activation_id: Some("a".into()),
                benefit_id: None,
                customer_id: Some("c".into()),
                conditions: conditions.clone(),
                verified_at: 1_790_000_000,
                server_date: Some(1_789_999_990),
                lease: Some("v4.public.eyJ9.eyJraWQiOiJrMSJ9".into()),
            }),
            latest_seen: 1_790_000_100,
            stalled: 3,
            seq: 42,
            denied: Some(DenialMark {
                reason: Reason::UsageExhausted,
                detail: "License key only has 0 more usages.".into(),
                status: 400,
                remaining_usages: Some(0),
                at: 1_790_000_050,
                signed: Some("v4.public.x".into()),
                verified: None,
            }),
            blocked_until: Some(1_790_000_160),
            activation: Some(StoredActivation {
                id: "a".into(),
                label: "laptop".into(),
                conditions,
                created_at: 1_789_000_000,
            }),
            lease_gate: crate::grace::LeaseGate::Unsigned,
        }
    }

    /// The record body is written and read by this module's own code (no serde derive, so the
    /// npm package's wasm needs none): the bytes are exactly what serde's derive wrote before,
    /// and what it wrote reads back the same, for a full record and an empty one.
    #[test]
    fn the_record_codec_is_the_serde_format_byte_for_byte() {
        let key = MacKey::derive("k", "o", b"s", None);
        let empty = Record::new("o", &crate::key::Key::new("KEY-6ED415-ABCDEF"), 5);
        for record in [rich_record(), empty] {
            let derived = serde_json::to_string(&record).unwrap();
            assert_eq!(record_body(&record), derived);
            let mut old = header().into_bytes();
            old.extend(derived.into_bytes());
            old.push(b'\n');
            let mac = tag(&key, &old).finalize().into_bytes();
            old.extend(hex(&mac).into_bytes());
            old.push(b'\n');
            // A record without an activation is written as serde wrote it; one with an
            // activation adds the activation's seal, which serde's reader (and an older
            // library) skips.
            if record.activation.is_none() {
                assert_eq!(encode(&record, &key), old);
            }
            assert_eq!(decode(&old, &key), Ok(record.clone()));
            assert_eq!(decode(&encode(&record, &key), &key), Ok(record.clone()));
            let sealed = encode(&record, &key);
            let body = std::str::from_utf8(&sealed)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap();
            assert_eq!(serde_json::from_str::<Record>(body).unwrap(), record);
            // Unsealed, the activation is none; sealed, it is read back alone.
            assert_eq!(Sealed::new(&old).activation(&key), None);
            assert_eq!(Sealed::new(&sealed).activation(&key), record.activation);
        }
    }

    /// What serde's derive refused, this reader refuses; members it defaulted, it defaults.
    #[test]
    fn the_record_reader_refuses_what_serde_refused() {
        let full: serde_json::Value = serde_json::to_value(rich_record()).unwrap();
        let mut paths = Vec::new();
        fn walk(v: &serde_json::Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
            if let Some(map) = v.as_object() {
                for (k, x) in map {
                    let mut p = at.clone();
                    p.push(k.clone());
                    // The license's own members are the schema module's (tests/schema_agreement.rs).
                    if k != "license" {
                        walk(x, p.clone(), out);
                    }
                    out.push(p);
                }
            }
        }
        walk(&full, Vec::new(), &mut paths);
        let replacements = [
            None,
            Some(serde_json::Value::Null),
            Some(serde_json::json!("x")),
            Some(serde_json::json!(1)),
            Some(serde_json::json!(-1)),
            Some(serde_json::json!(u64::MAX)),
            Some(serde_json::json!(1u64 << 63)),
            Some(serde_json::json!(1.5)),
            Some(serde_json::json!(true)),
            Some(serde_json::json!({})),
            Some(serde_json::json!([])),
        ];
        let mut cases = 0;
        for path in &paths {
            for replacement in &replacements {
                let mut v = full.clone();
                let (last, parents) = path.split_last().unwrap();
                let mut target = &mut v;
                for p in parents {
                    target = target.get_mut(p).unwrap();
                }
                let map = target.as_object_mut().unwrap();
                match replacement {
                    None => {
                        map.remove(last);
                    }
                    Some(r) => {
                        map.insert(last.clone(), r.clone());
                    }
                }
                let derived = serde_json::from_value::<Record>(v.clone()).ok();
                let ours = read_record::<crate::model::ValidatedLicenseKey>(&v);
                assert_eq!(ours, derived, "{path:?} -> {replacement:?}");
                cases += 1;
            }
        }
        assert!(cases > 300, "{cases}");
    }

    /// A slot's record key is the one records were always sealed with (they stay readable);
    /// its activation key leaves out the install secret and the machine's identity, and
    /// nothing else.
    #[test]
    fn a_slots_keys_keep_the_records_and_free_the_activation_of_secret_and_machine() {
        let mut extra = Vec::new();
        for part in [&b"https://api.polar.sh"[..], b"machine", b"app"] {
            extra.extend_from_slice(&(part.len() as u64).to_be_bytes());
            extra.extend_from_slice(part);
        }
        let slot = |secret: &[u8], machine, app: &[u8], origin| {
            MacKey::for_slot("k", "o", secret, origin, Some(machine), Some(app))
        };
        let base = slot(b"s", "machine", b"app", "https://api.polar.sh");
        assert_eq!(
            base.record,
            MacKey::derive("k", "o", b"s", Some(&extra)).record
        );
        let lost = slot(b"s2", "machine-2", b"app", "https://api.polar.sh");
        assert_ne!(base.record, lost.record);
        assert_eq!(base.activation, lost.activation);
        assert_ne!(
            base.activation,
            slot(b"s", "machine", b"app2", "https://api.polar.sh").activation
        );
        assert_ne!(
            base.activation,
            slot(b"s", "machine", b"app", "http://127.0.0.1:1").activation
        );
        assert_ne!(
            base.activation,
            MacKey::for_slot(
                "k2",
                "o",
                b"s",
                "https://api.polar.sh",
                Some("machine"),
                Some(b"app")
            )
            .activation
        );
        assert_ne!(
            base.activation,
            MacKey::for_slot(
                "k",
                "o2",
                b"s",
                "https://api.polar.sh",
                Some("machine"),
                Some(b"app")
            )
            .activation
        );
        assert_ne!(base.activation, base.record);
    }

    /// An activation read alone: only under its own key, not when any byte of its object is
    /// changed, and whatever else in the file is.
    #[test]
    fn an_activation_is_read_alone_only_under_its_own_seal() {
        let key = MacKey::derive("k", "o", b"s", None);
        let record = rich_record();
        assert!(record.activation.is_some());
        let sealed = encode(&record, &key);
        let text = std::str::from_utf8(&sealed).unwrap();
        let begin = text.rfind("{\"id\":\"").unwrap();
        let end = text.rfind("}\n").unwrap();
        for at in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x01;
            let read = Sealed::new(&flipped).activation(&key);
            if (begin..end).contains(&at) {
                assert_eq!(read, None, "byte {at}");
            } else {
                assert_eq!(read, record.activation, "byte {at}");
            }
            assert!(decode(&flipped, &key).is_err(), "byte {at}");
        }
        let other = MacKey::derive("k2", "o", b"s", None);
        assert_eq!(Sealed::new(&sealed).activation(&other), None);
        // Another install's secret: the record is not trusted, its activation still reads.
        let lost = MacKey::derive("k", "o", b"s2", None);
        assert!(decode(&sealed, &lost).is_err());
        assert_eq!(Sealed::new(&sealed).activation(&lost), record.activation);
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
