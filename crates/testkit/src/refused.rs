//! The keys a seed holds for docs/polar-api.md §6.4's refusals, shared by the suites that read
//! every row of that table (the Rust API's and the command line's): a revoked, a disabled and
//! an expired key, each allowing two activations, and one that takes no activations.

use serde_json::{json, Value};

/// Revoked (`status: revoked`): Polar's 404 on every route.
pub const REVOKED: &str = "REVOKED-KEY-0001";
/// Disabled (`status: disabled`).
pub const DISABLED: &str = "DISABLED-KEY-0001";
/// Expired on 2020-01-01.
pub const EXPIRED: &str = "EXPIRED-KEY-0001";
/// A key with no activation limit: it takes no activations.
pub const NO_ACTIVATIONS: &str = "NO-ACTIVATIONS-0001";

/// The four keys as rows of a seed's `license_keys`.
pub fn seed_rows() -> [Value; 4] {
    [
        json!({"key": REVOKED, "status": "revoked", "limit_activations": 2}),
        json!({"key": DISABLED, "status": "disabled", "limit_activations": 2}),
        json!({"key": EXPIRED, "expires_at": "2020-01-01T00:00:00Z", "limit_activations": 2}),
        json!({"key": NO_ACTIVATIONS}),
    ]
}
