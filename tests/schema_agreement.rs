//! `polar_license::schema` (the model as tables, read through `JsonIn`, written through
//! `JsonOut`) against the typed serde model: for realistic answers and every automatic mutation
//! of them (each field path removed, set to `null`, to every other JSON type, to edge numbers,
//! to odd timestamps, enum names and tuple lengths), both refuse, or both accept and write
//! byte-identical text.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::json::{JsonIn, JsonOut};
use polar_license::schema::{self, Bad};
use polar_license::{
    LicenseKeyActivation, LicenseKeyActivationRead, LicenseKeyRead, ValidatedLicenseKey,
};
use polar_license_testkit::LICENSE_6_2;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A 2027-01 validate answer as the emulator renders one (`render_key_fields` with
/// `extended`): member, subscription, order; a team customer with a full billing address, a
/// tax id, metadata of every scalar type; an activation with a `modified_at` and no `meta`.
fn license_2027() -> Value {
    json!({
        "id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "created_at": "2027-01-05T08:00:00.000001Z",
        "modified_at": "2027-02-01T12:30:00.5+02:00",
        "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
        "user_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        "customer_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        "user": {"id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d", "email": "ops@acme.io",
                 "public_name": "O", "avatar_url": "https://img.logo.dev/acme.io?x=1"},
        "customer": {
            "id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
            "created_at": "2026-12-31T23:59:59.999999999Z",
            "modified_at": null,
            "metadata": {"tier": "pro", "seats": 3, "ratio": 0.25, "trial": false,
                          "big": 18446744073709551615u64, "neg": -9, "quote\"d": "é✓\n"},
            "external_id": "acme-42",
            "email": "ops@acme.io",
            "email_verified": false,
            "type": "team",
            "name": "ACME Ops",
            "billing_name": "ACME SAS",
            "billing_address": {"line1": "1 rue de la Paix", "line2": "Bât. B",
                                "postal_code": "75002", "city": "Paris", "state": "IDF",
                                "country": "FR"},
            "tax_id": ["FR61954506077", "eu_vat"],
            "locale": "fr-FR",
            "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            "default_payment_method_id": "pm_123",
            "deleted_at": "2027-03-01T00:00:00-05:00",
            "first_user_event_at": "2027-01-06T10:00:00Z",
            "avatar_url": "https://img.logo.dev/acme.io?x=1"
        },
        "member_id": "6e5d4c3b-2a19-4f8e-9d7c-6b5a4f3e2d1c",
        "member": {"id": "6e5d4c3b-2a19-4f8e-9d7c-6b5a4f3e2d1c", "email": "bob@acme.io",
                   "external_id": null},
        "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
        "key": "ACME-0B1C2D3E-4F5A-4B6C-8D7E-9F0A1B2C3D4E",
        "display_key": "****-3D4E",
        "status": "revoked",
        "limit_activations": null,
        "usage": 0,
        "limit_usage": null,
        "validations": 9223372036854775807i64,
        "last_validated_at": null,
        "expires_at": "2028-01-05T08:00:00Z",
        "subscription_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
        "subscription": {"id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "status": "active",
                         "current_period_start": "2027-01-05T08:00:00Z",
                         "current_period_end": "2027-02-04T08:00:00.000Z",
                         "cancel_at_period_end": true, "ends_at": null},
        "order_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "order": {"id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                  "created_at": "2027-01-05T07:59:58Z", "status": "paid", "paid": true},
        "activation": {
            "id": "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c",
            "license_key_id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
            "label": "build-box",
            "created_at": "2027-01-06T10:00:00Z",
            "modified_at": "2027-01-07T10:00:00.100Z"
        }
    })
}

/// Only what the model requires: every default and `None` taken.
fn minimal() -> Value {
    json!({
        "id": "i", "created_at": "2026-01-01T00:00:00Z", "organization_id": "o",
        "customer_id": "c", "benefit_id": "b", "key": "K", "display_key": "****-K",
        "status": "disabled", "usage": -3, "validations": 0,
        "customer": {"id": "c", "created_at": "2026-01-01T00:00:00Z", "organization_id": "o"}
    })
}

/// The bodies read as a `ValidatedLicenseKey` (and as a `LicenseKeyRead`).
fn validated_bodies() -> Vec<(&'static str, Value)> {
    let full: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    let mut no_activation = full.clone();
    no_activation["activation"] = Value::Null;
    let mut extended_null = license_2027();
    for name in ["member", "subscription", "order", "member_id"] {
        extended_null[name] = Value::Null;
    }
    vec![
        ("6.2 with activation", full),
        ("6.2 activation null", no_activation),
        ("2027-01 full", license_2027()),
        ("2027-01 nulls", extended_null),
        ("minimal", minimal()),
    ]
}

/// An activate answer (`LicenseKeyActivationRead`): the activation's fields, `license_key`.
fn activate_bodies() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (name, body) in [
        (
            "activate 6.2",
            serde_json::from_str::<Value>(LICENSE_6_2).unwrap(),
        ),
        ("activate 2027-01", license_2027()),
    ] {
        let mut license = body;
        let mut answer = license["activation"].take();
        license.as_object_mut().unwrap().remove("activation");
        answer["license_key"] = license;
        out.push((name, answer));
    }
    out
}

/// What serde natively does: the text written, or `None` when reading or writing fails.
fn serde_text<T: DeserializeOwned + Serialize>(v: &Value) -> Option<String> {
    let typed: T = serde_json::from_value(v.clone()).ok()?;
    serde_json::to_string(&typed).ok()
}

fn text(r: Result<(), Bad>, out: &mut JsonOut) -> Option<String> {
    let written = out.done();
    r.ok().map(|()| written)
}

fn schema_license(v: &Value, key: Option<&str>) -> Option<String> {
    let mut out = JsonOut::new();
    text(schema::write_license(v, key, &mut out), &mut out)
}

fn schema_validated(v: &Value) -> Option<String> {
    let activation = v.member("activation").filter(|a| !a.is_null());
    let mut out = JsonOut::new();
    text(
        schema::write_validated(v, activation.as_ref(), None, &mut out),
        &mut out,
    )
}

fn schema_activation(v: &Value) -> Option<String> {
    let mut out = JsonOut::new();
    text(schema::write_activation(v, &mut out), &mut out)
}

/// An activate answer through the schema: the activation, then `license_key` (refused when
/// missing, as the caller must).
fn schema_activate(v: &Value) -> Option<String> {
    let activation = schema_activation(v)?;
    let license = schema_license(&v.member("license_key")?, None)?;
    Some(format!(
        "{},\"license_key\":{license}}}",
        activation.strip_suffix('}')?
    ))
}

const OTHER_KEY: &str = "NEW-\"KEY\"-é";

/// Every check of one body: `(what, serde's text, the schema's text)`.
fn checks(activate: bool, v: &Value) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    if activate {
        out.push((
            "LicenseKeyActivationRead",
            serde_text::<LicenseKeyActivationRead>(v),
            schema_activate(v),
        ));
        out.push((
            "LicenseKeyActivation",
            serde_text::<LicenseKeyActivation>(v),
            schema_activation(v),
        ));
        if let Some(l) = v.get("license_key") {
            out.push((
                "license_key as LicenseKeyRead",
                serde_text::<LicenseKeyRead>(l),
                schema_license(l, None),
            ));
        }
        return out;
    }
    out.push((
        "ValidatedLicenseKey",
        serde_text::<ValidatedLicenseKey>(v),
        schema_validated(v),
    ));
    let read = serde_text::<LicenseKeyRead>(v);
    // With `key` replaced: what serde writes of the same license with that key, when serde
    // reads the license as it is.
    let replaced = read.as_ref().and_then(|_| {
        let mut w = v.clone();
        w["key"] = json!(OTHER_KEY);
        serde_text::<LicenseKeyRead>(&w)
    });
    out.push(("LicenseKeyRead", read, schema_license(v, None)));
    out.push((
        "LicenseKeyRead, key replaced",
        replaced,
        schema_license(v, Some(OTHER_KEY)),
    ));
    if let Some(a) = v.get("activation") {
        out.push((
            "activation as LicenseKeyActivation",
            serde_text::<LicenseKeyActivation>(a),
            schema_activation(a),
        ));
    }
    out
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every path below the root, depth first.
fn paths(v: &Value, at: &mut Vec<Seg>, all: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push(Seg::Key(k.clone()));
                all.push(at.clone());
                paths(child, at, all);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                all.push(at.clone());
                paths(child, at, all);
                at.pop();
            }
        }
        _ => {}
    }
}

fn parent_mut<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    let mut cur = v;
    for seg in &path[..path.len() - 1] {
        cur = match seg {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::Index(i) => &mut cur[*i],
        };
    }
    cur
}

/// `v` with the value at `path` replaced (or removed when `with` is `None`).
fn mutated(v: &Value, path: &[Seg], with: Option<&Value>) -> Value {
    let mut w = v.clone();
    let parent = parent_mut(&mut w, path);
    match (path.last().unwrap(), with) {
        (Seg::Key(k), Some(x)) => parent[k.as_str()] = x.clone(),
        (Seg::Key(k), None) => {
            parent.as_object_mut().unwrap().remove(k);
        }
        (Seg::Index(i), Some(x)) => parent[*i] = x.clone(),
        (Seg::Index(i), None) => {
            parent.as_array_mut().unwrap().remove(*i);
        }
    }
    w
}

fn label(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// What every path is set to, besides being removed.
fn replacements() -> Vec<Value> {
    let mut out: Vec<Value> = vec![
        // Every JSON type.
        Value::Null,
        json!("a string"),
        json!(""),
        json!("q\"b\\s\n\u{1}\u{7f} é✓ 😀"),
        json!(7),
        json!(1.5),
        json!(true),
        json!(false),
        json!({}),
        json!([]),
        // Numbers at i64's edges and the floats an integer field must refuse.
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(9223372036854775808u64),
        json!(u64::MAX),
        // Natively `1.0` and `1e2` are floats for both; through the JS host's `JSON.parse`
        // (wasm only, not tested here) they would read as integers (schema.rs says so).
        json!(1.0),
        json!(-0.0),
        json!(1e300),
        serde_json::from_str("100000000000000000000000").unwrap(),
        serde_json::from_str("-9223372036854775809").unwrap(),
        serde_json::from_str("1e2").unwrap(),
        // tax_id with 1, 2 (other types) and 3 items; objects of every metadata shape.
        json!(["a"]),
        json!(["a", "b"]),
        json!(["a", "b", "c"]),
        json!(["a", 1]),
        json!([null, "b"]),
        json!({"x": 1, "y": "z", "b": false, "f": 2.5}),
        json!({"x": null}),
        json!({"x": []}),
        json!({"x": {}}),
        json!({"big": u64::MAX, "neg": i64::MIN}),
        // Enum names, known and not, and serde_json's `{"name": null}` enum form.
        json!("granted"),
        json!("revoked"),
        json!("disabled"),
        json!("individual"),
        json!("team"),
        json!("other"),
        json!("Granted"),
        json!("TEAM"),
        json!("paused"),
        json!({"granted": null}),
        json!({"team": null}),
        json!({"other": null}),
        json!({"zzz": null}),
        json!({"granted": 1}),
        json!({"team": {}}),
        json!({"granted": null, "x": null}),
    ];
    // Timestamps, good and bad.
    for t in [
        "2026-13-01T00:00:00Z",
        "2026-01-01",
        "2026-01-01T00:00:00+02:00",
        "2026-01-01T00:00:00.120000Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00-00:00",
        "2026-01-01T00:00:00+23:59",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:00.123456789Z",
        "2026-01-01T00:00:00.1234567891Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z ",
        "2026-06-30T23:59:60Z",
        "2026-01-01T23:59:60Z",
        "2026-06-30T23:59:60.5Z",
        "2026-07-01T01:59:60+02:00",
        "2026-02-29T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59.999999999Z",
        "+2026-01-01T00:00:00Z",
        "20260-01-01T00:00:00Z",
        "2026-1-01T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00+0200",
    ] {
        out.push(json!(t));
    }
    out
}

/// The default run's share of the mutations (issue #77, the test command's budget): one
/// (path, replacement) pair in 3, counted across every body, so that each path and each
/// replacement still come round (3 is prime to the replacements' count plus the removal);
/// `FULL=1` tries them all (124,944 cases on 2026-11-29, 27 s of a core).
fn sampled() -> usize {
    if polar_license_testkit::hostile::full() {
        1
    } else {
        3
    }
}

#[test]
fn every_mutation_agrees_with_serde() {
    let replacements = replacements();
    let stride = sampled();
    let mut pair = 0usize;
    let mut bodies: Vec<(bool, &str, Value)> = Vec::new();
    bodies.extend(validated_bodies().into_iter().map(|(n, b)| (false, n, b)));
    bodies.extend(activate_bodies().into_iter().map(|(n, b)| (true, n, b)));

    let (mut cases, mut accepted) = (0usize, 0usize);
    let mut disagreements = Vec::new();
    for (activate, name, body) in &bodies {
        // The body itself is accepted by both (its activation alone too, unless null).
        for (what, serde, ours) in checks(*activate, body) {
            let null_activation = body.get("activation").is_some_and(Value::is_null);
            assert!(
                serde.is_some() || null_activation,
                "{name}: serde refuses {what}"
            );
            assert_eq!(serde, ours, "{name}: {what}");
        }
        let mut all = Vec::new();
        paths(body, &mut Vec::new(), &mut all);
        for path in &all {
            let withs = std::iter::once(None).chain(replacements.iter().map(Some));
            for with in withs {
                pair += 1;
                if !pair.is_multiple_of(stride) {
                    continue;
                }
                let v = mutated(body, path, with);
                for (what, serde, ours) in checks(*activate, &v) {
                    cases += 1;
                    accepted += usize::from(serde.is_some());
                    if serde != ours {
                        disagreements.push(format!(
                            "{name}: {} = {}: {what}:\n  serde:  {serde:?}\n  schema: {ours:?}",
                            label(path),
                            with.map_or("(removed)".to_string(), Value::to_string),
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "schema agreement: {cases} cases ({accepted} accepted, {} refused)",
        cases - accepted
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements, first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(20)].join("\n")
    );
    assert!(cases > 20_000 && accepted > 3_000, "{cases} {accepted}");
}

/// Unknown members at every level are ignored: the same text as without them.
#[test]
fn unknown_members_are_ignored_everywhere() {
    let mut bodies: Vec<(bool, Value)> = Vec::new();
    bodies.extend(validated_bodies().into_iter().map(|(_, b)| (false, b)));
    bodies.extend(activate_bodies().into_iter().map(|(_, b)| (true, b)));
    let extras = [
        json!(null),
        json!("x"),
        json!(1.5),
        json!(u64::MAX),
        json!([1, {"a": null}]),
        json!({"id": 5, "created_at": "never"}),
    ];
    let mut cases = 0;
    for (activate, body) in &bodies {
        let expected: Vec<_> = checks(*activate, body)
            .into_iter()
            .map(|(_, _, ours)| ours)
            .collect();
        let mut objects = vec![Vec::new()];
        let mut all = Vec::new();
        paths(body, &mut Vec::new(), &mut all);
        objects.extend(all.into_iter().filter(|p| {
            let mut cur = body;
            for seg in p {
                cur = match seg {
                    Seg::Key(k) => &cur[k.as_str()],
                    Seg::Index(i) => &cur[*i],
                };
            }
            // Metadata objects take any member: not the place for an unknown field.
            let metadata = matches!(p.last(), Some(Seg::Key(k)) if k == "metadata" || k == "meta");
            cur.is_object() && !metadata
        }));
        for at in &objects {
            for name in [
                "zz_unknown",
                "ID",
                "Key",
                "customer_type",
                "user_id",
                "user",
            ] {
                for extra in &extras {
                    let mut v = body.clone();
                    let mut cur = &mut v;
                    for seg in at {
                        cur = match seg {
                            Seg::Key(k) => &mut cur[k.as_str()],
                            Seg::Index(i) => &mut cur[*i],
                        };
                    }
                    cur[name] = extra.clone();
                    let got = checks(*activate, &v);
                    assert_eq!(got.len(), expected.len());
                    for ((what, serde, ours), want) in got.into_iter().zip(&expected) {
                        cases += 1;
                        assert_eq!(serde, ours, "{} + {name}: {what}", label(at));
                        assert_eq!(&ours, want, "{} + {name}", label(at));
                    }
                }
            }
        }
    }
    eprintln!("unknown members: {cases} cases");
}

/// The given key replaces the license's own in what is written, nothing else changes.
#[test]
fn key_replacement_writes_the_given_key() {
    for (name, body) in validated_bodies() {
        let mut with_key = body.clone();
        with_key["key"] = json!("****-6ED415");
        let mut out = JsonOut::new();
        let activation = body.member("activation").filter(|a| !a.is_null());
        schema::write_validated(&body, activation.as_ref(), Some("****-6ED415"), &mut out).unwrap();
        assert_eq!(
            Some(out.done()),
            serde_text::<ValidatedLicenseKey>(&with_key),
            "{name}"
        );
        let got: Value =
            serde_json::from_str(&schema_license(&body, Some("A\"B")).unwrap()).unwrap();
        assert_eq!(got["key"], "A\"B", "{name}");
    }
    // The license's own `key` must still be the model's (a string), as `with_key` of a read
    // license needs it.
    let mut v = minimal();
    v["key"] = json!(5);
    assert_eq!(schema_license(&v, Some("K")), None);
    v.as_object_mut().unwrap().remove("key");
    assert_eq!(schema_license(&v, Some("K")), None);
}

/// `write_validated` writes the activation it is given, not the license's own member.
#[test]
fn write_validated_uses_the_activation_given() {
    let body: Value = serde_json::from_str(LICENSE_6_2).unwrap();
    let other = license_2027()["activation"].clone();
    let mut expected = body.clone();
    expected["activation"] = other.clone();
    let mut out = JsonOut::new();
    schema::write_validated(&body, Some(&other), None, &mut out).unwrap();
    assert_eq!(
        Some(out.done()),
        serde_text::<ValidatedLicenseKey>(&expected)
    );
    // None (or a null) writes `"activation":null` whatever the license holds.
    expected["activation"] = Value::Null;
    for given in [None, Some(&Value::Null)] {
        let mut out = JsonOut::new();
        schema::write_validated(&body, given, None, &mut out).unwrap();
        assert_eq!(
            Some(out.done()),
            serde_text::<ValidatedLicenseKey>(&expected)
        );
    }
    // A bad activation is reported under `activation`.
    let mut bad = other;
    bad["created_at"] = json!("2026-01-01");
    let err = schema::write_validated(&body, Some(&bad), None, &mut JsonOut::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "activation.created_at: not an RFC 3339 date-time"
    );
}

/// An activate answer: `write_activation` and `write_license` of its `license_key` both
/// accept exactly when serde reads the `LicenseKeyActivationRead`; a missing `license_key`
/// is the caller's to refuse.
#[test]
fn activate_answer_is_the_activation_and_its_license() {
    for (name, answer) in activate_bodies() {
        let ours = schema_activate(&answer);
        assert!(ours.is_some(), "{name}");
        assert_eq!(
            ours,
            serde_text::<LicenseKeyActivationRead>(&answer),
            "{name}"
        );
        let mut missing = answer.clone();
        missing.as_object_mut().unwrap().remove("license_key");
        assert_eq!(serde_text::<LicenseKeyActivationRead>(&missing), None);
        // The activation alone is still one; the caller refuses the answer.
        assert!(schema_activation(&missing).is_some());
        assert_eq!(schema_activate(&missing), None);
    }
}

/// serde_json's `{"name": null}` form of an enum is read as the name.
#[test]
fn enums_in_object_form() {
    let mut v = minimal();
    v["status"] = json!({"revoked": null});
    v["customer"]["type"] = json!({"whatever": null});
    let text = schema_license(&v, None).unwrap();
    let ours: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ours["status"], "revoked");
    assert_eq!(ours["customer"]["type"], "other");
    assert_eq!(serde_text::<LicenseKeyRead>(&v), Some(text));
}

/// A nested struct as a JSON array of its fields (derive's sequence form) is refused by both:
/// the model reads objects only (`map_only!`), as the schema does.
#[test]
fn sequence_form_of_nested_structs() {
    let mut v = minimal();
    v["member"] = json!(["m", "bob@acme.io"]);
    assert_eq!(schema_license(&v, None), None);
    assert_eq!(serde_text::<LicenseKeyRead>(&v), None);
}

/// `schema::rfc3339` against `time` on many strings, including every one-character edit of a
/// few date-times.
#[test]
fn rfc3339_agrees_with_time() {
    let mut inputs: Vec<String> = replacements()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let chars = [
        '0', '1', '2', '5', '9', '-', ':', '+', '.', 'T', 't', 'Z', 'z', ' ', 'x', '6',
    ];
    for base in [
        "2026-06-30T23:59:60.120000Z",
        "1999-12-31T23:59:59+01:30",
        "0000-01-01T00:00:00-00:01",
    ] {
        inputs.push(base.to_string());
        let b: Vec<char> = base.chars().collect();
        for i in 0..b.len() {
            let mut cut = b.clone();
            cut.remove(i);
            inputs.push(cut.iter().collect());
            for c in chars {
                let mut edit = b.clone();
                edit[i] = c;
                inputs.push(edit.iter().collect());
                let mut ins = b.clone();
                ins.insert(i, c);
                inputs.push(ins.iter().collect());
            }
        }
    }
    // Leap seconds at every month end and offset, and dates across the whole range.
    for (y, m, d) in [
        (1972, 6, 30),
        (2016, 12, 31),
        (2024, 2, 29),
        (2023, 2, 28),
        (2100, 2, 28),
    ] {
        for off in ["Z", "+00:00", "-00:00", "+05:30", "-11:45", "+23:59"] {
            inputs.push(format!("{y:04}-{m:02}-{d:02}T23:59:60{off}"));
            inputs.push(format!("{y:04}-{m:02}-{d:02}T23:59:60.000000001{off}"));
        }
    }
    for year in (0..=9999).step_by(37) {
        inputs.push(format!("{year:04}-02-29T12:34:56.7{}Z", year % 10));
    }
    let mut parsed = 0;
    for s in &inputs {
        let theirs = OffsetDateTime::parse(s, &Rfc3339).ok();
        let want = theirs.map(OffsetDateTime::unix_timestamp);
        parsed += usize::from(want.is_some());
        assert_eq!(schema::rfc3339(s), want, "{s:?}");
        // And written back as `time` writes it (what the schema puts in a record).
        let ours = polar_license::rfc3339::DateTime::parse(s).map(|t| {
            let mut text = String::new();
            t.write(&mut text);
            text
        });
        assert_eq!(ours, theirs.map(|t| t.format(&Rfc3339).unwrap()), "{s:?}");
    }
    assert_eq!(schema::rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        schema::rfc3339("2026-01-01T02:00:00+02:00"),
        Some(1_767_225_600)
    );
    eprintln!("rfc3339: {} strings, {parsed} parsed", inputs.len());
}
