//! `cache::decode` with a fixed `MacKey`, on arbitrary bytes and on arbitrary record bodies
//! sealed with the right MAC (so the fuzzer gets past the HMAC into the JSON parser): never a
//! panic, a bad MAC or format is an `Untrusted` reason, and every record that decodes must
//! survive `encode` -> `decode` unchanged (the cache's own round trip). The remembered key's
//! sealed file likewise: arbitrary bytes never panic `KeySeal::open`, and any key sealed from
//! the bytes opens to itself.

use crate::cache_key::{mac_key, seal};
use polar_license::cache::{self, Untrusted};
use polar_license::keyseal::KeySeal;
use polar_license::Key;

fn roundtrip(record: &polar_license::Record) {
    let key = mac_key();
    let bytes = cache::encode(record, key);
    let back = cache::decode(&bytes, key)
        .unwrap_or_else(|e| panic!("our own encoding does not decode ({e:?}): {record:?}"));
    // Exact, floats included (the float_roundtrip regression, fixed in a47706d).
    assert_eq!(&back, record, "the record changed in the cache");
}

/// The target on one input, as libFuzzer gives it (a panic is a finding).
pub fn run(data: &[u8]) {
    let key_seal = KeySeal::new(
        "https://api.polar.sh",
        "org",
        b"install",
        Some("machine"),
        None,
    );
    if let Ok(key) = key_seal.open(data) {
        let again = key_seal.seal(&key).ok();
        assert_eq!(
            again.as_deref(),
            Some(data),
            "a key file that opens is ours"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = key_seal.seal(&Key::new(text)) {
            let opened = key_seal.open(&bytes).map(|k| k.expose().to_string());
            assert_eq!(opened, Ok(text.to_string()));
        }
    }
    let key = mac_key();
    // The ledger and an untrusted record's activation read alone: never a panic;
    // a ledger that opens is one this library wrote (it survives its own encoding).
    if let Ok(seq) = cache::decode_ledger(data, key) {
        assert_eq!(
            cache::decode_ledger(&cache::encode_ledger(seq, key), key),
            Ok(seq)
        );
    }
    let _ = cache::Sealed::new(data).activation(key);
    // The bytes as they are: almost always untrusted, never a panic.
    if let Ok(record) = cache::decode(data, key) {
        roundtrip(&record);
    }
    // The bytes as the record line of a well-sealed file: the JSON parser's turn.
    let sealed = seal(data);
    match cache::decode(&sealed, key) {
        Ok(record) => {
            assert!(!data.contains(&b'\n'));
            roundtrip(&record);
            // Any one-bit flip of the MAC line is caught.
            let mut tampered = sealed.clone();
            let at = sealed.len() - 2 - usize::from(data.first().copied().unwrap_or(0) % 64);
            tampered[at] ^= 0x01;
            assert!(
                cache::decode(&tampered, key).is_err(),
                "a flipped MAC bit decoded"
            );
        }
        Err(why) => {
            if !data.contains(&b'\n') && sealed.len() <= cache::MAX_RECORD_BYTES {
                assert_eq!(why, Untrusted::Malformed, "a sealed record body: {why:?}");
            }
        }
    }
}
