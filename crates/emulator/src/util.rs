//! Small helpers: timestamps in pydantic's format, HTTP dates, UUIDs as
//! pydantic reports them, SHA-256 (for Gravatar URLs), lock recovery.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// Locks a mutex, recovering the data if another thread panicked while holding it.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A time in UTC truncated to microseconds (Python's `datetime` precision).
pub(crate) fn micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.nanosecond() / 1000;
    t.replace_nanosecond(micros * 1000).unwrap_or(t)
}

/// pydantic's JSON form of an aware datetime in UTC: `2026-08-22T09:30:12.551023Z`,
/// without the fraction when the microseconds are zero.
pub(crate) fn fmt_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.nanosecond() / 1000;
    if micros == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{micros:06}Z")
    }
}

/// Parses an RFC 3339 timestamp into UTC, truncated to microseconds.
pub(crate) fn parse_ts(text: &str) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?
        .to_offset(UtcOffset::UTC);
    let micros = t.nanosecond() / 1000;
    Ok(t.replace_nanosecond(micros * 1000).unwrap_or(t))
}

/// An IMF-fixdate for the `date` response header.
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(UtcOffset::UTC);
    let day = DAYS
        .get(usize::from(t.weekday().number_days_from_monday()))
        .copied()
        .unwrap_or("Mon");
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{day}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses a UUID that must be version 4 (for seed files and admin calls).
pub(crate) fn parse_uuid4(text: &str, what: &str) -> Result<Uuid, String> {
    let id = Uuid::parse_str(text).map_err(|e| format!("{what} `{text}` is not a UUID: {e}"))?;
    if id.get_version_num() != 4 || id.get_variant() != uuid::Variant::RFC4122 {
        return Err(format!("{what} `{text}` is not a version 4 UUID"));
    }
    Ok(id)
}

/// SHA-256 of `data`, as lowercase hex (for Gravatar URLs).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes `%XX` escapes in a URL path (as the ASGI server does for `scope["path"]`).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_values() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"jane.doe@gmail.com"),
            "831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982"
        );
    }

    #[test]
    fn timestamps() {
        let t = parse_ts("2026-08-22T11:30:12.551023+02:00");
        assert_eq!(t.map(fmt_ts), Ok("2026-08-22T09:30:12.551023Z".to_string()));
        let t = parse_ts("2026-01-01T00:00:00Z");
        assert_eq!(t.map(fmt_ts), Ok("2026-01-01T00:00:00Z".to_string()));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b/%76alidate%"), "/a b/validate%");
    }
}
