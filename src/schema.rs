//! Polar's license model ([`crate::model`]) as data: one table per object (each field's name,
//! kind and presence rule, in the serde declaration order) and one small interpreter over
//! [`JsonIn`] that checks a parsed value and writes its canonical JSON through [`JsonOut`].
//!
//! It accepts exactly what `serde_json::from_value` accepts for the typed model and writes,
//! byte for byte, what `serde_json::to_string` writes for it, without any serde code: the npm
//! package's WebAssembly reads Polar's answers with it (issue #17). `tests/schema_agreement.rs`
//! compares the two on thousands of mutated answers.
//!
//! What the typed model does and the tables say:
//!
//! * unknown members are ignored;
//! * a field of type `Option<T>` is `None` when missing or `null` (written `null`, or not at all
//!   for the 2027-01 fields `member_id`, `member`, `subscription_id`, `subscription`,
//!   `order_id`, `order`);
//! * a `#[serde(default)]` field of another type takes its default when missing, but `null` is
//!   an error (`metadata`/`meta` `{}`, `email_verified`, `cancel_at_period_end`, `paid` `false`,
//!   the customer's `type` `"individual"`);
//! * an `i64` is an integer that fits (not `1.5`, not `1.0`, not 2⁶³);
//! * a timestamp is read and written back by `time`'s RFC 3339 rules ([`crate::rfc3339`], held
//!   to `time` by the tests), so `.120000Z` is written `.12Z`;
//! * an enum is its name as a string, or serde_json's other enum form, an object with that name
//!   as its only member whose value is `null`; `status` knows only `granted`, `revoked`,
//!   `disabled`, the customer's `type` reads any other name as `other`;
//! * `tax_id` is an array of exactly two strings.
//!
//! * a nested struct (`customer`, `billing_address`, `member`, …) is an object, never serde
//!   derive's sequence form (an array of its fields), which the model refuses too
//!   (`map_only!`).
//!
//! Natively (`serde_json::Value` as the [`JsonIn`]) there is no difference. Through the
//! JS host's `JSON.parse` the numbers are the host's: an integral float (`1.0`, `1e2`) reads as
//! an integer there (serde refuses it for an `i64`), and an integer beyond 2⁵³ arrives rounded.

use crate::json::{read_metadata, JsonIn, JsonOut, Num};
use crate::rfc3339::DateTime;

/// Why a value is not Polar's model: the path of the field at fault and what is wrong, e.g.
/// `customer.created_at: not an RFC 3339 date-time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Bad {}

/// What a field holds.
#[derive(Clone, Copy)]
enum Kind {
    /// A string.
    Str,
    /// The license's `key` (a string), written as the caller's replacement when given.
    Key,
    /// An integer that fits `i64`.
    Int,
    /// `true` or `false`.
    Bool,
    /// An RFC 3339 date-time string.
    Time,
    /// A metadata object (`crate::metadata::Metadata`).
    Meta,
    /// A unit-only enum.
    Enum(&'static Names),
    /// `[String, String]`.
    Pair,
    /// A nested object.
    Obj(&'static [Field]),
}

/// A unit-only enum's wire names.
struct Names {
    /// The names read and written as they are.
    known: &'static [&'static str],
    /// The name written for any other string (`#[serde(other)]`), if the enum has one.
    other: Option<&'static str>,
    /// What an unknown name is refused as (when there is no `other`).
    expected: &'static str,
}

/// When a field may be missing or `null`, and what is written then.
#[derive(Clone, Copy)]
enum Rule {
    /// Required, never `null`.
    Req,
    /// `Option<T>`: `None` when missing or `null`, written `null`.
    Opt,
    /// `Option<T>` with `skip_serializing_if = "Option::is_none"`: `None` is not written.
    Skip,
    /// `#[serde(default)]` on a type that is no `Option`: when missing, this JSON text is
    /// written; `null` is refused.
    Def(&'static str),
}

/// One field: its JSON name, kind and rule.
struct Field(&'static str, Kind, Rule);

use Kind::{Bool, Enum, Int, Key, Meta, Obj, Pair, Str, Time};
use Rule::{Def, Opt, Req, Skip};

const STATUS: Names = Names {
    known: &["granted", "revoked", "disabled"],
    other: None,
    expected: "not granted, revoked or disabled",
};

const CUSTOMER_TYPE: Names = Names {
    known: &["individual", "team"],
    other: Some("other"),
    expected: "",
};

/// `Address`.
const ADDRESS: &[Field] = &[
    Field("line1", Str, Opt),
    Field("line2", Str, Opt),
    Field("postal_code", Str, Opt),
    Field("city", Str, Opt),
    Field("state", Str, Opt),
    Field("country", Str, Req),
];

/// `LicenseKeyCustomer`.
const CUSTOMER: &[Field] = &[
    Field("id", Str, Req),
    Field("created_at", Time, Req),
    Field("modified_at", Time, Opt),
    Field("metadata", Meta, Def("{}")),
    Field("external_id", Str, Opt),
    Field("email", Str, Opt),
    Field("email_verified", Bool, Def("false")),
    Field("type", Enum(&CUSTOMER_TYPE), Def("\"individual\"")),
    Field("name", Str, Opt),
    Field("billing_name", Str, Opt),
    Field("billing_address", Obj(ADDRESS), Opt),
    Field("tax_id", Pair, Opt),
    Field("locale", Str, Opt),
    Field("organization_id", Str, Req),
    Field("default_payment_method_id", Str, Opt),
    Field("deleted_at", Time, Opt),
    Field("first_user_event_at", Time, Opt),
    Field("avatar_url", Str, Opt),
];

/// `LicenseKeyMember`.
const MEMBER: &[Field] = &[
    Field("id", Str, Req),
    Field("email", Str, Opt),
    Field("external_id", Str, Opt),
];

/// `LicenseKeySubscription`.
const SUBSCRIPTION: &[Field] = &[
    Field("id", Str, Req),
    Field("status", Str, Req),
    Field("current_period_start", Time, Opt),
    Field("current_period_end", Time, Opt),
    Field("cancel_at_period_end", Bool, Def("false")),
    Field("ends_at", Time, Opt),
];

/// `LicenseKeyOrder`.
const ORDER: &[Field] = &[
    Field("id", Str, Req),
    Field("created_at", Time, Opt),
    Field("status", Str, Req),
    Field("paid", Bool, Def("false")),
];

/// `LicenseKeyRead` (also the first fields of `ValidatedLicenseKey`).
const LICENSE: &[Field] = &[
    Field("id", Str, Req),
    Field("created_at", Time, Req),
    Field("modified_at", Time, Opt),
    Field("organization_id", Str, Req),
    Field("customer_id", Str, Req),
    Field("customer", Obj(CUSTOMER), Req),
    Field("benefit_id", Str, Req),
    Field("key", Key, Req),
    Field("display_key", Str, Req),
    Field("status", Enum(&STATUS), Req),
    Field("limit_activations", Int, Opt),
    Field("usage", Int, Req),
    Field("limit_usage", Int, Opt),
    Field("validations", Int, Req),
    Field("last_validated_at", Time, Opt),
    Field("expires_at", Time, Opt),
    Field("member_id", Str, Skip),
    Field("member", Obj(MEMBER), Skip),
    Field("subscription_id", Str, Skip),
    Field("subscription", Obj(SUBSCRIPTION), Skip),
    Field("order_id", Str, Skip),
    Field("order", Obj(ORDER), Skip),
];

/// `LicenseKeyActivation`.
const ACTIVATION: &[Field] = &[
    Field("id", Str, Req),
    Field("license_key_id", Str, Req),
    Field("label", Str, Req),
    Field("meta", Meta, Def("{}")),
    Field("created_at", Time, Req),
    Field("modified_at", Time, Opt),
];

/// A refusal on its way up: the field names from the fault outwards, and why.
struct Fail(Vec<&'static str>, &'static str);

impl Fail {
    /// The same refusal, inside the field `name`.
    fn under(mut self, name: &'static str) -> Fail {
        self.0.push(name);
        self
    }
}

impl From<Fail> for Bad {
    fn from(fail: Fail) -> Bad {
        let Fail(path, why) = fail;
        let mut text = String::new();
        for name in path.iter().rev() {
            if !text.is_empty() {
                text.push('.');
            }
            text.push_str(name);
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(why);
        Bad(text)
    }
}

/// Writes `v` (a `LicenseKeyRead`) as the typed model writes it, `key` replacing its `key`
/// field when given.
///
/// The `key` member must still be what the model requires (a string) when it is replaced.
/// On error `out` is left as it was.
pub fn write_license<J: JsonIn>(v: &J, key: Option<&str>, out: &mut JsonOut) -> Result<(), Bad> {
    emit(out, |o| object(v, LICENSE, key, o))
}

/// Writes a `ValidatedLicenseKey`: the license `license` (its fields, `key` replaced when
/// given) and then `"activation"`: `activation` written as a `LicenseKeyActivation`, or `null`
/// when None. (The license object's own `activation` member, if any, is ignored: the caller
/// passes it or another one.)
///
/// Passing `license.member("activation")` (a `null` one is read as None) gives exactly
/// `serde_json::to_string` of the `ValidatedLicenseKey` read from `license`. An error in the
/// activation is reported under `activation.`. On error `out` is left as it was.
pub fn write_validated<J: JsonIn>(
    license: &J,
    activation: Option<&J>,
    key: Option<&str>,
    out: &mut JsonOut,
) -> Result<(), Bad> {
    emit(out, |o| {
        if !license.is_object() {
            return Err(Fail(Vec::new(), "not an object"));
        }
        o.raw("{");
        fields(license, LICENSE, key, o)?;
        o.key("activation");
        match activation.filter(|a| !a.is_null()) {
            Some(a) => object(a, ACTIVATION, None, o).map_err(|e| e.under("activation"))?,
            None => {
                o.null();
            }
        }
        o.raw("}");
        Ok(())
    })
}

/// Writes a `LicenseKeyActivation` (members other than its fields, such as an activate
/// answer's `license_key`, are ignored).
///
/// For an activate answer (`LicenseKeyActivationRead`), the typed model accepts it exactly when
/// this accepts it, its `license_key` member is present, and [`write_license`] accepts that
/// member: the caller must refuse a missing `license_key` itself. On error `out` is left as it
/// was.
pub fn write_activation<J: JsonIn>(v: &J, out: &mut JsonOut) -> Result<(), Bad> {
    emit(out, |o| object(v, ACTIVATION, None, o))
}

/// Parses an RFC 3339 date-time as the typed model does, to unix seconds.
pub fn rfc3339(text: &str) -> Option<i64> {
    DateTime::parse(text).map(|t| t.unix_timestamp())
}

/// Runs `write` into a new text and appends it to `out` only when it succeeds.
fn emit(
    out: &mut JsonOut,
    write: impl FnOnce(&mut JsonOut) -> Result<(), Fail>,
) -> Result<(), Bad> {
    let mut text = JsonOut::new();
    write(&mut text)?;
    out.raw(text.as_str());
    Ok(())
}

/// An object of `table`'s fields.
fn object<J: JsonIn>(
    v: &J,
    table: &[Field],
    key: Option<&str>,
    out: &mut JsonOut,
) -> Result<(), Fail> {
    if !v.is_object() {
        return Err(Fail(Vec::new(), "not an object"));
    }
    out.raw("{");
    fields(v, table, key, out)?;
    out.raw("}");
    Ok(())
}

/// `table`'s fields read from the object `v`, written as members (no braces).
fn fields<J: JsonIn>(
    v: &J,
    table: &[Field],
    key: Option<&str>,
    out: &mut JsonOut,
) -> Result<(), Fail> {
    for &Field(name, kind, rule) in table {
        let member = match v.member(name) {
            Some(m) if m.is_null() => match rule {
                Opt | Skip => None,
                Req | Def(_) => return Err(Fail(vec![name], "is null")),
            },
            m => m,
        };
        match (member, rule) {
            (Some(m), _) => {
                out.key(name);
                value(&m, kind, key, out).map_err(|e| e.under(name))?;
            }
            (None, Req) => return Err(Fail(vec![name], "is missing")),
            (None, Opt) => {
                out.key(name).null();
            }
            (None, Skip) => {}
            (None, Def(text)) => {
                out.key(name).raw(text);
            }
        }
    }
    Ok(())
}

/// One value (not `null`) of `kind`.
fn value<J: JsonIn>(v: &J, kind: Kind, key: Option<&str>, out: &mut JsonOut) -> Result<(), Fail> {
    let why = match kind {
        Str | Key => match v.string() {
            Some(s) => {
                out.str(match (kind, key) {
                    (Key, Some(k)) => k,
                    _ => &s,
                });
                return Ok(());
            }
            None => "not a string",
        },
        Int => match v.number() {
            Some(Num::Int(n)) => {
                out.int(n);
                return Ok(());
            }
            _ => "not an integer that fits i64",
        },
        Bool => match v.boolean() {
            Some(b) => {
                out.bool(b);
                return Ok(());
            }
            None => "not a boolean",
        },
        Time => match v.string().and_then(|s| DateTime::parse(&s)) {
            Some(t) => {
                let mut text = String::with_capacity(32);
                t.write(&mut text);
                out.str(&text);
                return Ok(());
            }
            None => "not an RFC 3339 date-time",
        },
        Meta => match read_metadata(v) {
            Some(m) => {
                out.meta(&m);
                return Ok(());
            }
            None => "not an object of strings, numbers and booleans",
        },
        Enum(names) => match enum_name(v) {
            Some(name) => match names.known.iter().find(|k| **k == name) {
                Some(known) => {
                    out.str(known);
                    return Ok(());
                }
                None => match names.other {
                    Some(other) => {
                        out.str(other);
                        return Ok(());
                    }
                    None => names.expected,
                },
            },
            None => "not a string",
        },
        Pair => match v.items().as_deref() {
            Some([a, b]) => match (a.string(), b.string()) {
                (Some(a), Some(b)) => {
                    out.raw("[").str(&a).raw(",").str(&b).raw("]");
                    return Ok(());
                }
                _ => "not an array of two strings",
            },
            _ => "not an array of two strings",
        },
        Obj(table) => return object(v, table, None, out),
    };
    Err(Fail(Vec::new(), why))
}

/// An enum's name: a string, or (serde_json's externally tagged form of a unit variant) an
/// object whose only member is that name with the value `null`.
pub(crate) fn enum_name<J: JsonIn>(v: &J) -> Option<String> {
    if let Some(s) = v.string() {
        return Some(s);
    }
    match v.members()?.as_slice() {
        [(name, unit)] if unit.is_null() => Some(name.clone()),
        _ => None,
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use serde_json::json;

    fn license() -> serde_json::Value {
        json!({
            "id": "i", "created_at": "2026-01-01T00:00:00.120000Z", "organization_id": "o",
            "customer_id": "c", "benefit_id": "b", "key": "K-1", "display_key": "****-1",
            "status": "granted", "usage": 0, "validations": 1,
            "customer": {"id": "c", "created_at": "2026-01-01T00:00:00Z", "organization_id": "o"}
        })
    }

    #[test]
    fn writes_defaults_nulls_and_canonical_times() {
        let mut out = JsonOut::new();
        write_license(&license(), None, &mut out).unwrap();
        assert_eq!(
            out.done(),
            concat!(
                r#"{"id":"i","created_at":"2026-01-01T00:00:00.12Z","modified_at":null,"#,
                r#""organization_id":"o","customer_id":"c","customer":{"id":"c","#,
                r#""created_at":"2026-01-01T00:00:00Z","modified_at":null,"metadata":{},"#,
                r#""external_id":null,"email":null,"email_verified":false,"type":"individual","#,
                r#""name":null,"billing_name":null,"billing_address":null,"tax_id":null,"#,
                r#""locale":null,"organization_id":"o","default_payment_method_id":null,"#,
                r#""deleted_at":null,"first_user_event_at":null,"avatar_url":null},"#,
                r#""benefit_id":"b","key":"K-1","display_key":"****-1","status":"granted","#,
                r#""limit_activations":null,"usage":0,"limit_usage":null,"validations":1,"#,
                r#""last_validated_at":null,"expires_at":null}"#
            )
        );
    }

    #[test]
    fn refusals_name_the_path_and_leave_the_output_alone() {
        let mut v = license();
        v["customer"]["created_at"] = json!("yesterday");
        let mut out = JsonOut::new();
        out.raw("[");
        assert_eq!(
            write_license(&v, None, &mut out),
            Err(Bad("customer.created_at: not an RFC 3339 date-time".into()))
        );
        assert_eq!(out.as_str(), "[");
        let act = json!({"id": "a", "license_key_id": "i", "label": "l",
                         "created_at": "2026-01-01T00:00:00Z", "meta": {"x": null}});
        assert_eq!(
            write_validated(&license(), Some(&act), None, &mut out)
                .unwrap_err()
                .to_string(),
            "activation.meta: not an object of strings, numbers and booleans"
        );
        assert_eq!(
            write_activation(&json!([]), &mut out),
            Err(Bad("not an object".into()))
        );
        v = license();
        v["status"] = json!("paused");
        assert_eq!(
            write_license(&v, Some("K"), &mut out),
            Err(Bad("status: not granted, revoked or disabled".into()))
        );
    }

    #[test]
    fn rfc3339_reads_unix_seconds() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("1970-01-01T01:00:00.9+01:00"), Some(0));
        assert_eq!(rfc3339("1970-01-01"), None);
    }
}
