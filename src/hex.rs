//! Lowercase hex, strict both ways: the one hex writer and reader of every face (MACs, slot
//! names, the install secret, a lease's key hash and nonce), below the cache and the lease so
//! that neither needs the other for it (`polar_license::cache::hex` re-exports them).

/// Lowercase hex: the one hex writer of every face (MACs, slot names, the install secret as
/// Web Storage keeps it).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Strict lowercase hex (an uppercase digit is malformed, so no two encodings of one MAC).
pub fn unhex(text: &[u8]) -> Option<Vec<u8>> {
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
