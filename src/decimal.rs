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

/// A duration for people: whole days and hours from a day up (`14 days`, `2 days 3 hours`),
/// hours and minutes from an hour (`3 hours`, `1 hour 20 minutes`), else minutes or seconds
/// (`5 minutes`, `42 seconds`). What a human line says; `--json` and the logs' fields keep
/// the number of seconds.
pub fn duration_words(secs: u64) -> String {
    fn unit(n: u64, one: &str) -> String {
        let mut out = digits(n);
        out.push(' ');
        out.push_str(one);
        if n != 1 {
            out.push('s');
        }
        out
    }
    fn pair(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
        if small == 0 {
            unit(big, big_unit)
        } else {
            [unit(big, big_unit), unit(small, small_unit)].join(" ")
        }
    }
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    if secs >= DAY {
        pair(secs / DAY, "day", secs % DAY / HOUR, "hour")
    } else if secs >= HOUR {
        pair(secs / HOUR, "hour", secs % HOUR / MINUTE, "minute")
    } else if secs >= MINUTE {
        unit(secs / MINUTE, "minute")
    } else {
        unit(secs, "second")
    }
}

/// The value of `digits`, ASCII decimal digits and nothing else, as `u64`'s `FromStr` reads
/// them; `None` for no digits, any other byte, or a value past `u64::MAX`. Read by hand: the
/// core's readers (the ledger, the clock note, the JSON reader, `Retry-After`, the trial's
/// record) share it rather than each linking `FromStr` (the npm engine's wasm carried two
/// monomorphised copies).
pub fn read_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// `s` as `u64`'s `FromStr` reads it: an optional `+`, then [`read_u64`].
pub fn parse_u64(s: &str) -> Option<u64> {
    read_u64(s.strip_prefix('+').unwrap_or(s).as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn durations_read_in_days_and_hours() {
        assert_eq!(duration_words(0), "0 seconds");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(300), "5 minutes");
        assert_eq!(duration_words(3600), "1 hour");
        assert_eq!(duration_words(4800), "1 hour 20 minutes");
        assert_eq!(duration_words(1_209_600), "14 days");
        assert_eq!(
            duration_words(6 * 86_400 + 23 * 3600 + 59),
            "6 days 23 hours"
        );
    }

    use super::{digits, duration_words, parse_u64};

    /// Texts to hold a number reader to `FromStr` with: `fixed`, then each of `numbers`
    /// written in each of `forms` (`{}` where the number goes), in that order.
    pub(crate) fn number_texts<N: std::fmt::Display>(
        fixed: &[&str],
        numbers: &[N],
        forms: &[&str],
    ) -> Vec<String> {
        let mut texts: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        for n in numbers {
            let n = n.to_string();
            texts.extend(forms.iter().map(|form| form.replace("{}", &n)));
        }
        texts
    }

    #[test]
    fn parse_u64_reads_as_from_str_reads() {
        let texts = number_texts(
            &[
                "",
                "+",
                "-",
                "-0",
                "+0",
                "++1",
                "+-1",
                "0",
                "007",
                " 1",
                "1 ",
                "1a",
                "a1",
                "٣",
                "1_000",
                "18446744073709551615",
                "18446744073709551616",
                "99999999999999999999",
                "+18446744073709551615",
                "00000000000000000000000000001",
            ],
            &[
                0u64,
                1,
                9,
                10,
                4_294_967_295,
                4_294_967_296,
                u64::MAX / 10,
                u64::MAX,
            ],
            &["{}", "+{}", "{}0", "-{}"],
        );
        for t in &texts {
            assert_eq!(parse_u64(t), t.parse::<u64>().ok(), "{t:?}");
        }
    }

    #[test]
    fn digits_are_what_display_writes() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(digits(n), n.to_string());
        }
    }
}
