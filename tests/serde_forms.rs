//! The JSON forms of the models whose serde impls are written by hand (to keep the
//! WebAssembly build small): they read and write exactly what the derived impls did
//! (`#[serde(flatten)]` for the two flat answers, `#[serde(untagged)]` for `MetaValue`).
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{
    LicenseKeyActivationRead, LicenseKeyRead, MetaValue, Metadata, ValidatedLicenseKey,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

fn license() -> Value {
    json!({
        "id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "created_at": "2025-01-01T00:00:00.123456Z",
        "modified_at": null,
        "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
        "customer_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        "customer": {
            "id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
            "created_at": "2025-01-01T00:00:00Z",
            "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            "metadata": { "tier": "pro", "seats": 3 }
        },
        "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
        "key": "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415",
        "display_key": "****-6ED415",
        "status": "granted",
        "limit_activations": 3,
        "usage": 2,
        "limit_usage": 10,
        "validations": 1,
        "last_validated_at": "2025-02-01T10:00:00+01:00",
        "expires_at": null,
        "user_id": "deprecated and ignored"
    })
}

fn activation() -> Value {
    json!({
        "id": "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c",
        "license_key_id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "label": "laptop",
        "meta": { "os": "linux" },
        "created_at": "2025-01-01T00:00:00Z",
        "modified_at": null
    })
}

fn merged(mut base: Value, name: &str, value: Value) -> Value {
    if let Value::Object(map) = &mut base {
        map.insert(name.to_string(), value);
    }
    base
}

/// The flat wire structs read and write what `#[serde(flatten)]` did: the nested part's
/// fields, in order, then the other field.
#[test]
fn validated_key_is_one_flat_object_both_ways() {
    let body = merged(license(), "activation", activation());
    let v: ValidatedLicenseKey = serde_json::from_value(body).unwrap();
    let alone: LicenseKeyRead = serde_json::from_value(license()).unwrap();
    assert_eq!(v.license_key, alone);
    assert_eq!(
        v.activation.as_ref().map(|a| a.label.as_str()),
        Some("laptop")
    );

    flat_both_ways(&v, &v.license_key, "activation", &v.activation);

    let none: ValidatedLicenseKey = serde_json::from_value(license()).unwrap();
    assert_eq!(none.activation, None);
    assert!(serde_json::to_string(&none)
        .unwrap()
        .ends_with(",\"activation\":null}"));
}

/// `whole` is written as `outer`'s object with `inner` as its last field `name` (one flat
/// object), and reads back the same.
fn flat_both_ways<T>(whole: &T, outer: &impl Serialize, name: &str, inner: &impl Serialize)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(whole).unwrap();
    let outer = serde_json::to_string(outer).unwrap();
    let inner = serde_json::to_string(inner).unwrap();
    let flat = format!("{},\"{name}\":{inner}}}", outer.strip_suffix('}').unwrap());
    assert_eq!(text, flat);
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, whole);
}

#[test]
fn activation_read_is_one_flat_object_both_ways() {
    let body = merged(activation(), "license_key", license());
    let a: LicenseKeyActivationRead = serde_json::from_value(body).unwrap();
    flat_both_ways(&a, &a.activation, "license_key", &a.license_key);
}

#[test]
fn only_objects_are_read() {
    let e = serde_json::from_str::<ValidatedLicenseKey>("[]").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid type: sequence, expected struct ValidatedLicenseKey"),
        "{e}"
    );
    assert!(serde_json::from_str::<LicenseKeyActivationRead>("[]").is_err());
    let mut missing = license();
    if let Value::Object(map) = &mut missing {
        map.remove("usage");
    }
    let e = serde_json::from_value::<ValidatedLicenseKey>(missing).unwrap_err();
    assert_eq!(e.to_string(), "missing field `usage`");
}

/// The hand-written serde impls read and write what `#[serde(untagged)]` did.
#[test]
fn meta_values_are_bare_json_values() {
    let m: Metadata = serde_json::from_str(
        r#"{"b":true,"i":-7,"u":7,"big":18446744073709551615,"f":2.5,"s":"x","e":1e3}"#,
    )
    .unwrap();
    assert_eq!(m["b"], MetaValue::Bool(true));
    assert_eq!(m["i"], MetaValue::Int(-7));
    assert_eq!(m["u"], MetaValue::Int(7));
    assert_eq!(m["big"], MetaValue::Float(18446744073709551615.0));
    assert_eq!(m["f"], MetaValue::Float(2.5));
    assert_eq!(m["s"], MetaValue::Str("x".into()));
    assert_eq!(m["e"], MetaValue::Float(1000.0));
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"b":true,"big":1.8446744073709552e+19,"e":1000.0,"f":2.5,"i":-7,"s":"x","u":7}"#
    );
    for bad in ["null", "[1]", r#"{"a":1}"#] {
        let e = serde_json::from_str::<MetaValue>(bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("data did not match any variant of untagged enum MetaValue"),
            "{bad}: {e}"
        );
    }
}

/// The nested structs read JSON objects only, in every build: derive's array form of them is
/// refused, as the core's schema table (what the npm engine checks licenses with) refuses it.
#[test]
fn nested_structs_are_read_from_objects_only() {
    let body = merged(license(), "customer", json!(["x"]));
    let e = serde_json::from_value::<ValidatedLicenseKey>(body).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid type: sequence, expected struct LicenseKeyCustomer"),
        "{e}"
    );
    let back: ValidatedLicenseKey = serde_json::from_value(license()).unwrap();
    assert_eq!(back.license_key.customer.metadata.len(), 2);
}
