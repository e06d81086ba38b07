//! Polar's metadata objects (`conditions`, `meta`) and the local checks on every input.

use crate::decimal::digits;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A metadata value: Polar accepts a 1–500 character string, an integer, a float or a boolean.
///
/// In JSON it is the bare value (what `#[serde(untagged)]` gives, read without untagged's
/// buffering: an integer that does not fit `i64` is a float, as untagged's order made it).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (must be finite).
    Float(f64),
    /// A string of 1–500 characters.
    Str(String),
}

impl MetaValue {
    /// Parses a command-line value the way docs/interfaces.md §2 says: an integer, a float,
    /// `true`/`false`, or else a string.
    pub fn parse_scalar(text: &str) -> MetaValue {
        if let Ok(i) = text.parse::<i64>() {
            return MetaValue::Int(i);
        }
        if text == "true" {
            return MetaValue::Bool(true);
        }
        if text == "false" {
            return MetaValue::Bool(false);
        }
        match text.parse::<f64>() {
            // "inf" and "NaN" parse as floats but are not JSON numbers: keep them strings.
            Ok(f) if f.is_finite() && text.bytes().any(|b| b.is_ascii_digit()) => {
                MetaValue::Float(f)
            }
            _ => MetaValue::Str(text.to_string()),
        }
    }
}

/// What `#[serde(untagged)]` says when no variant matches.
const NO_VARIANT: &str = "data did not match any variant of untagged enum MetaValue";

impl Serialize for MetaValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetaValue::Bool(b) => s.serialize_bool(*b),
            MetaValue::Int(i) => s.serialize_i64(*i),
            MetaValue::Float(x) => s.serialize_f64(*x),
            MetaValue::Str(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for MetaValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MetaValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(NO_VARIANT)
            }
            fn visit_bool<E>(self, b: bool) -> Result<MetaValue, E> {
                Ok(MetaValue::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<MetaValue, E> {
                Ok(MetaValue::Int(i))
            }
            fn visit_u64<E>(self, u: u64) -> Result<MetaValue, E> {
                Ok(i64::try_from(u).map_or(MetaValue::Float(u as f64), MetaValue::Int))
            }
            fn visit_f64<E>(self, x: f64) -> Result<MetaValue, E> {
                Ok(MetaValue::Float(x))
            }
            fn visit_str<E>(self, t: &str) -> Result<MetaValue, E> {
                Ok(MetaValue::Str(t.to_string()))
            }
            fn visit_string<E>(self, t: String) -> Result<MetaValue, E> {
                Ok(MetaValue::Str(t))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<MetaValue, E> {
                Err(E::custom(NO_VARIANT))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<MetaValue, E> {
                Err(E::custom(NO_VARIANT))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<MetaValue, A::Error> {
                Err(serde::de::Error::custom(NO_VARIANT))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<MetaValue, A::Error> {
                Err(serde::de::Error::custom(NO_VARIANT))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Bool(b) => write!(f, "{b}"),
            MetaValue::Int(i) => write!(f, "{i}"),
            MetaValue::Float(x) => write!(f, "{x}"),
            MetaValue::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::Str(s.to_string())
    }
}
impl From<i32> for MetaValue {
    fn from(i: i32) -> Self {
        MetaValue::Int(i64::from(i))
    }
}

/// `From` for the types each variant holds as they are.
macro_rules! meta_value_from {
    ($($type:ty => $variant:ident),+) => {
        $(impl From<$type> for MetaValue {
            fn from(v: $type) -> Self {
                MetaValue::$variant(v)
            }
        })+
    };
}
meta_value_from!(String => Str, i64 => Int, f64 => Float, bool => Bool);

/// A builder method `$method(name, value)` that adds `name = value` to the [`Metadata`] field
/// `self.$field` and gives the builder back: the `condition` of validate requests, activate
/// requests and cache queries, and the activate request's `meta`, written once.
macro_rules! metadata_adder {
    ($(#[$doc:meta])* $method:ident => $field:ident) => {
        $(#[$doc])*
        pub fn $method(
            mut self,
            name: impl Into<String>,
            value: impl Into<$crate::metadata::MetaValue>,
        ) -> Self {
            self.$field.insert(name.into(), value.into());
            self
        }
    };
}
pub(crate) use metadata_adder;

/// A `conditions` or `meta` object: at most 50 keys of 1–40 characters.
pub type Metadata = BTreeMap<String, MetaValue>;

/// Most keys a metadata object may have.
pub const MAX_METADATA_KEYS: usize = 50;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 40;
/// Longest metadata string value, in characters.
pub const MAX_METADATA_STRING_CHARS: usize = 500;

// The messages below spell the limits out (no `core::fmt`): keep them in step.
const _: () = assert!(
    MAX_METADATA_KEYS == 50 && MAX_METADATA_KEY_CHARS == 40 && MAX_METADATA_STRING_CHARS == 500
);

/// Checks a metadata object against Polar's limits; `field` is `conditions` or `meta`.
pub fn check_metadata(field: &str, metadata: &Metadata) -> Result<(), Error> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(Error::invalid(
            field,
            ["at most 50 keys, not ", &digits(metadata.len() as u64)].concat(),
        ));
    }
    for (key, value) in metadata {
        check_text(
            field,
            key,
            MAX_METADATA_KEY_CHARS,
            "keys must have 1-40 characters, found ",
        )?;
        let at = [field, ".", key].concat();
        match value {
            MetaValue::Str(s) => check_text(
                &at,
                s,
                MAX_METADATA_STRING_CHARS,
                "string values must have 1-500 characters, found ",
            )?,
            MetaValue::Float(x) if !x.is_finite() => {
                return Err(Error::invalid(at, "floats must be finite"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rejects a string with a NUL character (Polar answers 422 to those).
pub fn check_no_nul(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL character"));
    }
    Ok(())
}

/// Checks that a metadata key or string value `text` has 1 to `max` characters (else the
/// error is `must` followed by the count found) and no NUL; `field` names it.
fn check_text(field: &str, text: &str, max: usize, must: &str) -> Result<(), Error> {
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(Error::invalid(
            field,
            [must, &digits(chars as u64)].concat(),
        ));
    }
    check_no_nul(field, text)
}

/// Checks that `value` is a UUID version 4 of the RFC 4122 variant (as Polar requires) and
/// returns its canonical (lowercase, hyphenated) form.
pub fn check_uuid_v4(field: &str, value: &str) -> Result<String, Error> {
    let parsed = uuid::Uuid::try_parse(value)
        .map_err(|_| Error::invalid(field, "must be a UUID (version 4)"))?;
    if parsed.get_version_num() != 4 {
        return Err(Error::invalid(
            field,
            [
                "must be a version 4 UUID, found version ",
                &digits(parsed.get_version_num() as u64),
            ]
            .concat(),
        ));
    }
    // Polar's validator (pydantic-core) also requires the RFC 4122 / 9562 variant.
    if parsed.get_variant() != uuid::Variant::RFC4122 {
        return Err(Error::invalid(
            field,
            "must be a version 4 UUID of the RFC 4122 variant (4th group starting with 8, 9, a or b)",
        ));
    }
    Ok(parsed
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_string())
}

/// Checks a license key: non-empty, no whitespace at either end (a key pasted with a space or a
/// line break would only come back as `not_found`) and free of NUL characters.
pub fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    if key.trim() != key {
        return Err(Error::invalid(
            "key",
            "starts or ends with whitespace (pasted with a space or a line break?)",
        ));
    }
    check_no_nul("key", key)
}

/// Largest `increment_usage` accepted: Polar stores usage in a 32-bit column.
pub const MAX_INCREMENT_USAGE: i64 = i32::MAX as i64;

/// Checks `increment_usage`: 0 to [`MAX_INCREMENT_USAGE`].
pub fn check_increment_usage(n: i64) -> Result<(), Error> {
    if n < 0 {
        return Err(Error::invalid("increment_usage", "must be >= 0"));
    }
    if n > MAX_INCREMENT_USAGE {
        return Err(Error::invalid(
            "increment_usage",
            ["must be <= ", &digits(MAX_INCREMENT_USAGE as u64)].concat(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_scalar_follows_the_contract() {
        assert_eq!(MetaValue::parse_scalar("2"), MetaValue::Int(2));
        assert_eq!(MetaValue::parse_scalar("-7"), MetaValue::Int(-7));
        assert_eq!(MetaValue::parse_scalar("2.5"), MetaValue::Float(2.5));
        assert_eq!(MetaValue::parse_scalar("true"), MetaValue::Bool(true));
        assert_eq!(MetaValue::parse_scalar("false"), MetaValue::Bool(false));
        assert_eq!(
            MetaValue::parse_scalar("True"),
            MetaValue::Str("True".into())
        );
        assert_eq!(MetaValue::parse_scalar("inf"), MetaValue::Str("inf".into()));
        assert_eq!(MetaValue::parse_scalar("NaN"), MetaValue::Str("NaN".into()));
        assert_eq!(
            MetaValue::parse_scalar("c0ffee42"),
            MetaValue::Str("c0ffee42".into())
        );
    }

    #[test]
    fn uuid_checks() {
        assert_eq!(
            check_uuid_v4("x", "D2FCBFF8-108B-411E-BF2B-6383E0A8802D"),
            Ok("d2fcbff8-108b-411e-bf2b-6383e0a8802d".to_string())
        );
        assert!(check_uuid_v4("x", "0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c").is_err());
        assert!(check_uuid_v4("x", "not-a-uuid").is_err());
        assert!(check_uuid_v4("x", "").is_err());
    }

    #[test]
    fn metadata_limits() {
        let mut m = Metadata::new();
        for i in 0..50 {
            m.insert(format!("k{i}"), MetaValue::Int(i));
        }
        assert!(check_metadata("conditions", &m).is_ok());
        m.insert("one-too-many".into(), MetaValue::Bool(true));
        assert!(check_metadata("conditions", &m).is_err());

        let bad = |k: &str, v: MetaValue| {
            let mut m = Metadata::new();
            m.insert(k.to_string(), v);
            check_metadata("meta", &m)
        };
        assert!(bad(&"a".repeat(40), MetaValue::Int(1)).is_ok());
        assert!(bad(&"a".repeat(41), MetaValue::Int(1)).is_err());
        assert!(bad("", MetaValue::Int(1)).is_err());
        assert!(bad("k", MetaValue::Str(String::new())).is_err());
        assert!(bad("k", MetaValue::Str("é".repeat(500))).is_ok());
        assert!(bad("k", MetaValue::Str("é".repeat(501))).is_err());
        assert!(bad("k", MetaValue::Str("a\0b".into())).is_err());
        assert!(bad("k\0", MetaValue::Int(1)).is_err());
        assert!(bad("k", MetaValue::Float(f64::NAN)).is_err());
        assert_eq!(
            bad("k", MetaValue::Str(String::new())),
            Err(Error::invalid(
                "meta.k",
                "string values must have 1-500 characters, found 0"
            ))
        );
    }
}
