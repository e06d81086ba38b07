//! The clock as the core reads it: given, never read ([`Now`]); and Polar's times (RFC 3339).

use time::format_description::well_known::Rfc3339;

/// A clock reading, given to the machines ([`crate::flow::Exchange::want`]): the core reads no
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock unix seconds (the lease's `iat`, `nbf`, `exp`, the expiry check).
    pub unix_seconds: i64,
    /// A monotonic reading in milliseconds (the rate limit's buckets).
    pub monotonic_ms: u64,
}

/// The tests' clock: wall-clock 1_790_000_000 (2026-09-21), `ms` on the monotonic one.
#[cfg(test)]
pub(crate) const fn at(ms: u64) -> Now {
    Now {
        unix_seconds: 1_790_000_000,
        monotonic_ms: ms,
    }
}

/// RFC 3339 in UTC of unix seconds (empty when it cannot be written).
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The unix seconds of an RFC 3339 time (`None`: not one).
pub(crate) fn unix_of(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
