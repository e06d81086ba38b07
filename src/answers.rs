//! Polar's answers read through the core's schema table ([`crate::schema`]) instead of serde's
//! typed model: the license as the JSON Polar sent, checked against Polar's model, with the
//! fields the rules read taken out ([`SchemaLicense`]), and the answers classified and held to
//! the request exactly as [`proto::parse_validate_for`] and [`proto::parse_activate_for`] do.
//!
//! The npm package's engine reads every answer this way (it carries no serde code), so this is
//! where "the same answer, the same verdict on every face" is decided for it; the native faces
//! read with serde. Both read the body through [`crate::strict`] first, and
//! `tests/one_answer.rs` holds the two paths to one verdict on generated answers.

use crate::error::{Error, Verdict};
use crate::grace::{ActivationData, LicenseData};
use crate::json::{JsonIn, JsonOut};
use crate::proto::{self, Expect, HttpResponse, LicenseFacts, Operation};
use crate::schema;
use crate::strict::{self, Value};

/// A license as the schema path holds it: the objects Polar sent (the license, and the
/// activation answered with it, if any), checked against Polar's model, and the fields the
/// core's rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaLicense {
    license: Value,
    activation: Option<Value>,
    /// The key it carries (the caller's in an answer, the display key in a record).
    key: String,
    benefit_id: String,
    display_key: String,
    expires_at: Option<i64>,
    usage: i64,
    limit_usage: Option<i64>,
    /// The answered activation's id and `license_key_id`.
    activation_ids: Option<(String, String)>,
}

impl SchemaLicense {
    /// The license `license` with `activation`, checked against Polar's model
    /// (`ValidatedLicenseKey`): why not, as the schema says.
    fn new(license: Value, activation: Option<Value>) -> Result<SchemaLicense, schema::Bad> {
        let mut check = JsonOut::new();
        schema::write_validated(&license, activation.as_ref(), None, &mut check)?;
        let text = |name: &str| {
            license
                .member(name)
                .and_then(|v| v.string())
                .unwrap_or_default()
        };
        let activation_ids = match &activation {
            Some(a) => {
                let id = |name: &str| a.member(name).and_then(|v| v.string()).unwrap_or_default();
                Some((id("id"), id("license_key_id")))
            }
            None => None,
        };
        Ok(SchemaLicense {
            key: text("key"),
            benefit_id: text("benefit_id"),
            display_key: text("display_key"),
            expires_at: license
                .member("expires_at")
                .and_then(|v| v.string())
                .and_then(|t| schema::rfc3339(&t)),
            usage: license.member("usage").and_then(|v| v.int()).unwrap_or(0),
            limit_usage: license.member("limit_usage").and_then(|v| v.int()),
            activation_ids,
            license,
            activation,
        })
    }

    /// A validate's answer, or a record's license: the flat object, `activation` in it.
    fn validated(v: Value) -> Result<SchemaLicense, schema::Bad> {
        let activation = v.member("activation").filter(|a| !JsonIn::is_null(a));
        SchemaLicense::new(v, activation)
    }

    /// Holds it to the request ([`Expect::validated`], or [`Expect::activated`] when
    /// `activated`): the checks read its facts.
    fn held(&self, expect: &Expect<'_>, activated: bool, date: Option<i64>) -> Result<(), Error> {
        let text = |name: &str| {
            self.license
                .member(name)
                .and_then(|v| v.string())
                .unwrap_or_default()
        };
        let (id, organization_id, customer_id) =
            (text("id"), text("organization_id"), text("customer_id"));
        // The status as the typed model reads it: its name, also in serde's other form of an
        // enum (`{"granted": null}`), which the schema accepts as serde does.
        let status = self
            .license
            .member("status")
            .and_then(|s| schema::enum_name(&s))
            .unwrap_or_default();
        let facts = LicenseFacts {
            id: &id,
            key: &self.key,
            organization_id: &organization_id,
            benefit_id: &self.benefit_id,
            customer_id: &customer_id,
            status: &status,
            expires_at: self.expires_at,
        };
        let (answered, license_key_id) = match &self.activation_ids {
            Some((a, l)) => (Some(a.as_str()), l.as_str()),
            None => (None, ""),
        };
        if activated {
            expect.activated(&facts, license_key_id, date)
        } else {
            expect.validated(&facts, answered, date)
        }
    }

    /// The license as Polar's model writes it (its `activation` apart), with its key.
    pub fn write_license(&self, out: &mut JsonOut) {
        if schema::write_license(&self.license, Some(&self.key), out).is_err() {
            out.null();
        }
    }

    /// The id of the activation answered with it, if any.
    pub fn activation_id(&self) -> Option<&str> {
        self.activation_ids.as_ref().map(|(id, _)| id.as_str())
    }

    /// The activation answered with it, as Polar's model writes it, or `null`.
    pub fn write_activation(&self, out: &mut JsonOut) {
        match &self.activation {
            Some(a) if schema::write_activation(a, out).is_ok() => {}
            _ => {
                out.null();
            }
        }
    }
}

impl LicenseData for SchemaLicense {
    type Json = Value;

    fn parse(text: &str) -> Option<Value> {
        strict::parse(text.as_bytes()).ok()
    }

    fn read(v: &Value) -> Option<SchemaLicense> {
        SchemaLicense::validated(v.clone()).ok()
    }

    fn write(&self, out: &mut JsonOut) {
        let written = schema::write_validated(
            &self.license,
            self.activation.as_ref(),
            Some(&self.key),
            out,
        );
        // Checked when it was read: writing it cannot fail; `null` would only make the record
        // unreadable (no cache), never wrong.
        if written.is_err() {
            out.null();
        }
    }

    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    fn display_key(&self) -> &str {
        &self.display_key
    }

    fn key_id(&self) -> String {
        self.license
            .member("id")
            .and_then(|v| v.string())
            .unwrap_or_default()
    }

    fn benefit_id(&self) -> &str {
        &self.benefit_id
    }

    fn remaining_usage(&self) -> Option<i64> {
        self.limit_usage
            .map(|limit| limit.saturating_sub(self.usage))
    }

    fn with_key(&self, key: &str) -> SchemaLicense {
        SchemaLicense {
            key: key.to_string(),
            ..self.clone()
        }
    }

    // API version 2027-01's subscription, read as the typed model reads it (grace.rs): the
    // schema has checked its shape when the license was read.
    fn cancelled_until(&self) -> Option<i64> {
        let sub = self.subscription()?;
        let cancelled = sub
            .member("cancel_at_period_end")
            .and_then(|v| v.boolean())
            .unwrap_or(false)
            || sub.member("status").and_then(|v| v.string()).as_deref() == Some("canceled");
        if !cancelled {
            return None;
        }
        SchemaLicense::time(&sub, "ends_at")
            .or_else(|| SchemaLicense::time(&sub, "current_period_end"))
    }

    fn trialing(&self) -> bool {
        self.subscription()
            .and_then(|sub| sub.member("status").and_then(|v| v.string()))
            .as_deref()
            == Some("trialing")
    }

    fn period_end(&self) -> Option<i64> {
        SchemaLicense::time(&self.subscription()?, "current_period_end")
    }
}

impl SchemaLicense {
    /// The 2027-01 `subscription` object, when the key was granted through one.
    fn subscription(&self) -> Option<Value> {
        self.license
            .member("subscription")
            .filter(|s| !JsonIn::is_null(s))
    }

    /// The timestamp member `name` of `object` (unix seconds), when set.
    fn time(object: &Value, name: &str) -> Option<i64> {
        object
            .member(name)
            .and_then(|v| v.string())
            .and_then(|t| schema::rfc3339(&t))
    }
}

/// An activate's answer as the schema path holds it: the activation and its license.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaActivation {
    id: String,
    label: String,
    license: SchemaLicense,
}

impl SchemaActivation {
    /// The license, with this activation.
    pub fn license(&self) -> &SchemaLicense {
        &self.license
    }

    /// A heal's adoption (issue #80, [`crate::flow::heal`]): the license a validate of the
    /// listed activation `id` (labelled `label`) granted, as that activation's answer.
    pub(crate) fn adopted(license: SchemaLicense, id: &str, label: &str) -> SchemaActivation {
        let id = license
            .activation_ids
            .as_ref()
            .map_or(id, |(answered, _)| answered.as_str())
            .to_string();
        SchemaActivation {
            id,
            label: label.to_string(),
            license,
        }
    }
}

impl ActivationData for SchemaActivation {
    type License = SchemaLicense;

    fn activation_id(&self) -> &str {
        &self.id
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn validated(&self) -> SchemaLicense {
        self.license.clone()
    }
}

/// A denial (`Ok(Denied)`) or error, for an answer that is not a success: the one table,
/// [`proto::failure`], over the error body as the strict reading sees it.
fn refused<T>(op: Operation, a: &HttpResponse) -> Result<Verdict<T>, Error> {
    proto::classify_failure(op, a).map(Verdict::Denied)
}

/// The 200's body as Polar's JSON, else the `protocol_error` of a malformed answer (the same
/// words as the typed path's: [`proto::strict_body`]).
fn json_200(op: Operation, a: &HttpResponse) -> Result<Value, Error> {
    proto::strict_body(op, a)
}

/// A validate's answer, classified and held to the request: the schema path's twin of
/// [`proto::parse_validate_for`], which reads the same answer with serde's typed model.
pub fn validate_answer(
    a: &HttpResponse,
    expect: &Expect<'_>,
) -> Result<Verdict<SchemaLicense>, Error> {
    proto::unechoed(validated(a, expect), expect.key)
}

/// [`validate_answer`] before the key sent is taken out of its words.
fn validated(a: &HttpResponse, expect: &Expect<'_>) -> Result<Verdict<SchemaLicense>, Error> {
    let op = Operation::Validate;
    if a.status != 200 {
        return refused(op, a);
    }
    let license =
        SchemaLicense::validated(json_200(op, a)?).map_err(|bad| proto::malformed(op, &bad.0))?;
    license.held(expect, false, a.date())?;
    Ok(Verdict::Accepted(license))
}

/// An activate's answer, classified and held to the request: the schema path's twin of
/// [`proto::parse_activate_for`].
pub fn activate_answer(
    a: &HttpResponse,
    expect: &Expect<'_>,
) -> Result<Verdict<SchemaActivation>, Error> {
    proto::unechoed(activated(a, expect), expect.key)
}

/// [`activate_answer`] before the key sent is taken out of its words.
fn activated(a: &HttpResponse, expect: &Expect<'_>) -> Result<Verdict<SchemaActivation>, Error> {
    let op = Operation::Activate;
    if a.status != 200 {
        return refused(op, a);
    }
    let read = json_200(op, a)?;
    let license = read
        .member("license_key")
        .ok_or_else(|| proto::malformed(op, "license_key: missing"))?;
    let license = SchemaLicense::new(license, Some(read.clone()))
        .map_err(|bad| proto::malformed(op, &bad.0))?;
    license.held(expect, true, a.date())?;
    let id = license
        .activation_ids
        .as_ref()
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let label = read
        .member("label")
        .and_then(|l| l.string())
        .unwrap_or_default();
    Ok(Verdict::Accepted(SchemaActivation { id, label, license }))
}

/// A deactivate's answer (204 on success), classified.
pub fn deactivate_answer(a: &HttpResponse) -> Result<Verdict<()>, Error> {
    match a.status {
        204 => Ok(Verdict::Accepted(())),
        _ => refused(Operation::Deactivate, a),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// The npm engine's path takes the key sent out of an answer's words as the typed path
    /// does (tests/core_protocol.rs::an_answer_that_echoes_the_key_never_carries_it).
    #[test]
    fn an_echoed_key_is_redacted_on_the_schema_path_too() {
        const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
        let expect = Expect {
            key: KEY,
            organization_id: "d2fcbff8-108b-411e-bf2b-6383e0a8802d",
            activation_id: None,
            benefit_id: None,
            customer_id: None,
            now: 0,
        };
        for (status, body) in [
            (500, format!("Traceback: {KEY}")),
            (
                422,
                format!(r#"{{"detail":[{{"loc":["body","key"],"msg":"x","input":"{KEY}"}}]}}"#),
            ),
            (200, format!(r#"{{"status":"{KEY}"}}"#)),
        ] {
            let a = HttpResponse::new(status, body);
            for said in [
                format!("{:?}", validate_answer(&a, &expect)),
                format!("{:?}", activate_answer(&a, &expect)),
            ] {
                assert!(!said.contains(KEY), "{said}");
            }
        }
    }
}
