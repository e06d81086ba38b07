//! The fuzz targets' bodies, their shared inputs and oracles. `fuzz/` (cargo-fuzz, nightly)
//! runs each body under libFuzzer (`scripts/fuzz.sh`, the `fuzz` stage of `FULL=1 bash
//! scripts/test.sh`); `tests/corpus.rs` here replays every committed input (`fuzz/corpus`,
//! `fuzz/seeds`) through the same bodies in the ordinary test stage, on stable. What they found
//! is pinned by `tests/fuzz_regressions.rs`.

/// One module per fuzz target (`fuzz/Cargo.toml` names a binary for each).
pub mod targets {
    pub mod cache_decode;
    pub mod cache_roundtrip;
    pub mod lease;
    pub mod one_answer;
    pub mod parse_response;
    pub mod requests;
    pub mod rules_input;
}

/// A target's body: one input, as libFuzzer hands it over (a panic is a finding).
pub type Body = fn(&[u8]);

/// Every target by name, as `fuzz/Cargo.toml` and `fuzz/corpus/<name>` name them.
pub const TARGETS: [(&str, Body); 7] = [
    ("cache_decode", targets::cache_decode::run),
    ("cache_roundtrip", targets::cache_roundtrip::run),
    ("lease", targets::lease::run),
    ("one_answer", targets::one_answer::run),
    ("parse_response", targets::parse_response::run),
    ("requests", targets::requests::run),
    ("rules_input", targets::rules_input::run),
];

/// Reads bytes as a typed input the way libfuzzer-sys's `fuzz_target!` does: too short for the
/// type's minimum size, or not readable, is no input.
pub fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

use arbitrary::{Arbitrary, Unstructured};
use polar_license::proto::Operation;
use polar_license::HttpResponse;
use polar_license_testkit::answers::Case;

/// Header names the parsers look at, and a few they do not.
pub const HEADER_NAMES: [&str; 6] = [
    "retry-after",
    "date",
    "content-type",
    "www-authenticate",
    "Retry-After",
    "polar-version",
];

/// The operation a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `parse_validate`
    Validate,
    /// `parse_activate`
    Activate,
    /// `parse_deactivate`
    Deactivate,
}

/// A response for the `parse_response` target. The byte layout is simple so that seeds can be
/// written by hand (`fuzz/seeds.py`):
///
/// ```text
/// [op % 3] [status: u16 big-endian] [header count % 4]
///   per header: [name index] [value length] [value bytes]   (index >= 6: the name is raw
///                                                            bytes, length-prefixed, first)
/// [body: the rest]
/// ```
#[derive(Debug, Clone)]
pub struct ResponseInput {
    /// Which parser.
    pub op: Op,
    /// The response.
    pub response: HttpResponse,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn short_bytes<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    let len = usize::from(u.arbitrary::<u8>()?);
    let len = len.min(u.len());
    u.bytes(len)
}

impl<'a> Arbitrary<'a> for ResponseInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let op = match u.arbitrary::<u8>()? % 3 {
            0 => Op::Validate,
            1 => Op::Activate,
            _ => Op::Deactivate,
        };
        let hi = u.arbitrary::<u8>()?;
        let lo = u.arbitrary::<u8>()?;
        let status = u16::from_be_bytes([hi, lo]);
        let count = u.arbitrary::<u8>()? % 4;
        let mut headers = Vec::new();
        for _ in 0..count {
            let index = usize::from(u.arbitrary::<u8>()?);
            let name = match HEADER_NAMES.get(index) {
                Some(name) => name.to_ascii_lowercase(),
                None => lossy(short_bytes(u)?),
            };
            let value = lossy(short_bytes(u)?);
            headers.push((name, value));
        }
        let body = u.bytes(u.len())?.to_vec();
        Ok(ResponseInput {
            op,
            response: HttpResponse {
                status,
                headers,
                body,
            },
        })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// The `one_answer` target's input: an answer to one of the requests of
/// `polar_license_testkit::answers` (its key, organization and ids), as a [`Case`]. The byte
/// layout (`fuzz/seeds.py` writes seeds in it):
///
/// ```text
/// [op % 3] [flags: bit 0, a validate that asks about the activation]
/// [status: u16 big-endian]
/// [date length + 1, 0 for none] [date bytes]
/// [retry-after length + 1, 0 for none] [retry-after bytes]
/// [body: the rest]
/// ```
///
/// Header values are read as UTF-8, lossily (a transport hands the core text).
pub fn answer_case(data: &[u8]) -> Option<Case> {
    let mut u = Unstructured::new(data);
    let op = match u.arbitrary::<u8>().ok()? % 3 {
        0 => Operation::Validate,
        1 => Operation::Activate,
        _ => Operation::Deactivate,
    };
    let flags = u.arbitrary::<u8>().ok()?;
    let asked = op == Operation::Validate && flags & 1 == 1;
    let status = u16::from_be_bytes([u.arbitrary().ok()?, u.arbitrary().ok()?]);
    let mut headers = Vec::new();
    for name in ["date", "retry-after"] {
        let len = usize::from(u.arbitrary::<u8>().ok()?);
        if len > 0 {
            let value = u.bytes((len - 1).min(u.len())).ok()?;
            headers.push((name.to_string(), lossy(value)));
        }
    }
    Some(Case {
        op,
        status,
        headers,
        body: u.take_rest().to_vec(),
        activation_asked: asked,
        what: "libFuzzer's input".to_string(),
    })
}

/// Writes an [`answer_case`] input (for seeds and regression tests).
pub fn answer_bytes(
    op: u8,
    asked: bool,
    status: u16,
    date: Option<&str>,
    retry_after: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = vec![op, u8::from(asked)];
    out.extend(status.to_be_bytes());
    for value in [date, retry_after] {
        match value {
            None => out.push(0),
            Some(v) => {
                let v = &v.as_bytes()[..v.len().min(254)];
                out.push(u8::try_from(v.len() + 1).unwrap_or(u8::MAX));
                out.extend_from_slice(v);
            }
        }
    }
    out.extend_from_slice(body);
    out
}

/// Writes a [`ResponseInput`] in its byte layout (for seeds and regression tests).
pub fn response_bytes(op: u8, status: u16, headers: &[(u8, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = vec![op];
    out.extend(status.to_be_bytes());
    out.push(u8::try_from(headers.len()).unwrap_or(0) % 4);
    for (index, value) in headers {
        out.push(*index);
        out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        out.extend(value.as_bytes().iter().take(255));
    }
    out.extend_from_slice(body);
    out
}

/// Checks that `value` survives JSON exactly: `decode(encode(value)) == value` (what the
/// offline cache does to a license; floats included, see the float_roundtrip regression).
pub fn assert_json_roundtrip<T>(what: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(value).unwrap_or_else(|e| panic!("{what}: serialize: {e}"));
    let back: T = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{what}: reparse of our own JSON failed: {e}"));
    assert_eq!(&back, value, "{what} does not round-trip through JSON");
}

/// The cache's MAC, rebuilt here so the `cache_decode` target can seal arbitrary bodies. It
/// is checked against `cache::encode` on first use, so a format change fails loudly.
pub mod cache_key {
    use hmac::{Hmac, Mac};
    use polar_license::cache::{self, MacKey};
    use polar_license::grace::{Record, StoredActivation};
    use polar_license::{Key, MetaValue, Metadata};
    use sha2::Sha256;
    use std::sync::OnceLock;

    /// The fixed license key.
    pub const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
    /// The fixed organization.
    pub const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
    /// The fixed install secret.
    pub const INSTALL_SECRET: [u8; 32] = [7; 32];
    /// The fixed app secret.
    pub const APP_SECRET: &[u8] = b"fuzz";

    type HmacSha256 = Hmac<Sha256>;

    fn hmac(key: &[u8]) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
    }

    fn framed(mac: &mut HmacSha256, bytes: &[u8]) {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    }

    /// `MacKey::derive(KEY, ORG, INSTALL_SECRET, Some(APP_SECRET))`'s bytes.
    fn key_bytes() -> [u8; 32] {
        let mut mac = hmac(b"polar-license/cache-mac/v2");
        framed(&mut mac, ORG.as_bytes());
        framed(&mut mac, KEY.as_bytes());
        framed(&mut mac, &INSTALL_SECRET);
        mac.update(&[1]);
        framed(&mut mac, APP_SECRET);
        mac.finalize().into_bytes().into()
    }

    /// Seals `body` as the record line of a cache file, with the right MAC.
    pub fn seal(body: &[u8]) -> Vec<u8> {
        let mut out = format!("{}{}\n", cache::MAGIC, cache::FORMAT_VERSION).into_bytes();
        out.extend_from_slice(body);
        out.push(b'\n');
        let mut mac = hmac(&key_bytes());
        mac.update(&out);
        for b in mac.finalize().into_bytes() {
            out.extend(format!("{b:02x}").into_bytes());
        }
        out.push(b'\n');
        out
    }

    /// The fixed `MacKey`, after checking [`seal`] against `cache::encode`.
    pub fn mac_key() -> &'static MacKey {
        static KEY_ONCE: OnceLock<MacKey> = OnceLock::new();
        KEY_ONCE.get_or_init(|| {
            let key = MacKey::derive(KEY, ORG, &INSTALL_SECRET, Some(APP_SECRET));
            let mut conditions = Metadata::new();
            conditions.insert(
                "machine_fingerprint".into(),
                MetaValue::Str("c0ffee42".into()),
            );
            let record = Record::with_activation(
                ORG,
                &Key::new(KEY),
                StoredActivation {
                    id: "21bf892b-2e46-4f50-8060-8fdaf02aa482".into(),
                    label: "fuzz".into(),
                    conditions,
                    created_at: 1_790_000_000,
                },
                1_790_000_000,
            );
            let encoded = cache::encode(&record, &key);
            let body = encoded.split(|&b| b == b'\n').nth(1).unwrap_or_default();
            assert_eq!(
                encoded,
                seal(body),
                "the cache format changed: update crates/fuzz-bodies/src/lib.rs (cache_key)"
            );
            key
        })
    }
}
