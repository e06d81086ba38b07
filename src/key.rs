//! Secrets that must never be printed whole: license keys and access tokens.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A license key. Its `Debug` shows only Polar's `display_key` form (`****-6ED415`), so a key
/// never lands in a log line or an error message by accident. Use [`Key::expose`] to get the
/// string itself.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    /// Wraps a key string (no checks here; the request builders check it).
    pub fn new(key: impl Into<String>) -> Key {
        Key(key.into())
    }

    /// The full key. Handle with care.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The redacted form: `****-` and the last 6 characters, like Polar's `display_key`.
    /// Keys of 12 characters or fewer are shown as `****` only, since 6 characters would
    /// give away too much of them.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// Redacts a secret string: `****-` and its last 6 characters, or `****` when it is short.
pub fn redact(secret: &str) -> String {
    let count = secret.chars().count();
    if count <= 12 {
        return "****".to_string();
    }
    let tail: String = secret.chars().skip(count - 6).collect();
    ["****-", &tail].concat()
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.redacted())
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key(s.to_string())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key(s)
    }
}

/// `check(&key)` with the key a `String` someone typed or read from a file.
impl From<&String> for Key {
    fn from(s: &String) -> Key {
        Key(s.clone())
    }
}

/// `check(&key)` with a [`Key`] kept for later calls.
impl From<&Key> for Key {
    fn from(k: &Key) -> Key {
        k.clone()
    }
}

/// An access token for the token-authenticated `/v1/license-keys/…` routes. Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token (`polar_oat_…`, `polar_pat_…` or an OAuth2 access token).
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(token.into())
    }

    /// The token itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken({})", redact(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
        assert_eq!(format!("{k:?}"), "Key(****-6ED415)");
        assert_eq!(Key::new("SHORT").redacted(), "****");
        assert_eq!(Key::new("").redacted(), "****");
        let t = AccessToken::new("polar_oat_abcdefghijklmnop");
        assert_eq!(format!("{t:?}"), "AccessToken(****-klmnop)");
    }
}
