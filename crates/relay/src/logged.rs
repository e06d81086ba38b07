//! What a log line holds of a request: escaped, so that no request (a key ending in
//! `\nERROR …`, a forwarded-for header, an event's type) can end the line or forge another.

use polar_license::Key;

/// Text that came from a request, as a log line shows it: a backslash, a quote, and every
/// control or whitespace character (a space, a line or paragraph separator included) escaped
/// (`\n`, `\r`, `\t`, `\\`, `\"`, else `\u{…}`). Text without them is shown as it is.
pub(crate) fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c.is_whitespace() => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// A whole text line as the relay's own logger writes it: a control character escaped as
/// [`escaped`] writes it (the last guard: a field a log call did not escape still cannot end
/// the line). Other characters, spaces and quotes included, are the line's own.
pub(crate) fn line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&escaped(&c.to_string()));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The text of one of the relay's log lines as every host writes it (issue #63: one log
/// channel): the native server's stderr logger and the npm relay's console logger
/// (bindings/relay-wasm) both write this, so a line reads the same on both. `None` for a
/// record that is not the relay's own (another crate's target). Keys are redacted and the
/// token never logged by the lines themselves; control characters are escaped here.
pub fn log_text(record: &log::Record<'_>) -> Option<String> {
    if !record.target().starts_with("polar_license") {
        return None;
    }
    let text = record.args().to_string();
    Some(match line(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    })
}

/// An instant as a log line shows it: RFC 3339 in UTC (`2026-12-04T10:00:00Z`), never epoch
/// seconds.
pub(crate) fn instant(unix_seconds: i64) -> String {
    let mut out = String::with_capacity(20);
    polar_license::rfc3339::DateTime::from_unix(unix_seconds).write(&mut out);
    out
}

/// A key as a log line shows it: redacted (`****-` and its last six characters), escaped.
pub(crate) fn key(key: &Key) -> String {
    escaped(&key.redacted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_is_rfc3339() {
        assert_eq!(instant(1_796_400_831), "2026-12-04T16:13:51Z");
        assert_eq!(instant(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn nothing_from_a_request_ends_a_line() {
        assert_eq!(escaped("192.0.2.1"), "192.0.2.1");
        assert_eq!(escaped("a\nERROR b\r\"\\"), "a\\nERROR\\u{20}b\\r\\\"\\\\");
        assert_eq!(escaped("\u{2028}\u{85}\u{1b}"), "\\u{2028}\\u{85}\\u{1b}");
        let key = Key::new("ABCDEF-0123\nERROR");
        assert_eq!(super::key(&key), "****-\\nERROR");
        assert_eq!(line("a \"b\"\nERROR\r"), "a \"b\"\\nERROR\\r");
    }
}
