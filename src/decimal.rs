//! Integers as decimal text without `core::fmt`: the core's messages and formats are built by
//! concatenation, so the npm package's wasm carries none of the formatting machinery. A leaf:
//! the JSON writer, the errors, the input checks and the record format all use it.

/// Appends `n`'s decimal digits to `out`.
pub fn push_digits(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// `n`'s decimal digits.
pub fn digits(n: u64) -> String {
    let mut out = String::with_capacity(20);
    push_digits(&mut out, n);
    out
}

#[cfg(test)]
mod tests {
    use super::digits;

    #[test]
    fn digits_are_what_display_writes() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(digits(n), n.to_string());
        }
    }
}
