//! The clock as the core reads it: given, never read ([`Now`]).

/// A clock reading, given to the machines ([`crate::flow::Exchange::want`]): the core reads no
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock unix seconds (the lease's `iat`, `nbf`, `exp`, the expiry check).
    pub unix_seconds: i64,
    /// A monotonic reading in milliseconds (the rate limit's buckets).
    pub monotonic_ms: u64,
}
