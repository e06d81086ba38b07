//! The npm engine's JSON: the JS host's own `JSON.parse`, read through [`JsonIn`], and the
//! license as the engine holds it ([`HostLicense`]): the parsed object Polar sent, checked
//! against Polar's model by the core's table ([`polar_license::schema`]) and written back from it, with
//! the fields the rules read taken out. No serde code is compiled into the package's wasm.
//!
//! Every decision stays the core's: the grace rules, the record format and its seal
//! ([`polar_license::cache::encode_as`], [`polar_license::cache::decode_as`]), the classification of Polar's
//! answers ([`polar_license::proto::failure`], [`polar_license::proto::Expect`]), feature gating.

use polar_license::error::{Error, Verdict};
use polar_license::grace::{ActivationData, LicenseData};
use polar_license::json::{JsonIn, JsonOut};
use polar_license::proto::{self, ErrorBody, Expect, HttpResponse, LicenseFacts, Operation};
use polar_license::schema;
use wasm_bindgen::JsValue;

/// Parses JSON text with the host's `JSON.parse` (`None` when it is not JSON).
pub(crate) fn parse(text: &str) -> Option<JsValue> {
    js_sys::JSON::parse(text).ok()
}

/// Parses a body: UTF-8, then JSON (`None` when it is either not).
fn parse_body(body: &[u8]) -> Option<JsValue> {
    parse(std::str::from_utf8(body).ok()?)
}

/// A license as the npm engine holds it: the objects Polar sent (the license, and the
/// activation answered with it, if any), checked against Polar's model, and the fields the
/// core's rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLicense {
    license: JsValue,
    activation: Option<JsValue>,
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

impl HostLicense {
    /// The license `license` with `activation`, checked against Polar's model
    /// (`ValidatedLicenseKey`): why not, as the schema says.
    fn new(license: JsValue, activation: Option<JsValue>) -> Result<HostLicense, schema::Bad> {
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
        Ok(HostLicense {
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
    fn validated(v: JsValue) -> Result<HostLicense, schema::Bad> {
        let activation = v.member("activation").filter(|a| !JsonIn::is_null(a));
        HostLicense::new(v, activation)
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
        let (id, organization_id, customer_id, status) = (
            text("id"),
            text("organization_id"),
            text("customer_id"),
            text("status"),
        );
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
    pub(crate) fn write_license(&self, out: &mut JsonOut) {
        if schema::write_license(&self.license, Some(&self.key), out).is_err() {
            out.null();
        }
    }

    /// The activation answered with it, as Polar's model writes it, or `null`.
    pub(crate) fn write_activation(&self, out: &mut JsonOut) {
        match &self.activation {
            Some(a) if schema::write_activation(a, out).is_ok() => {}
            _ => {
                out.null();
            }
        }
    }
}

impl LicenseData for HostLicense {
    type Json = JsValue;

    fn parse(text: &str) -> Option<JsValue> {
        parse(text)
    }

    fn read(v: &JsValue) -> Option<HostLicense> {
        HostLicense::validated(v.clone()).ok()
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

    fn benefit_id(&self) -> &str {
        &self.benefit_id
    }

    fn remaining_usage(&self) -> Option<i64> {
        self.limit_usage
            .map(|limit| limit.saturating_sub(self.usage))
    }

    fn with_key(&self, key: &str) -> HostLicense {
        HostLicense {
            key: key.to_string(),
            ..self.clone()
        }
    }
}

/// An activate's answer as the npm engine holds it: the activation and its license.
#[derive(Debug, Clone, PartialEq)]
pub struct HostActivation {
    id: String,
    label: String,
    license: HostLicense,
}

impl HostActivation {
    /// The license, with this activation.
    pub(crate) fn license(&self) -> &HostLicense {
        &self.license
    }
}

impl ActivationData for HostActivation {
    type License = HostLicense;

    fn activation_id(&self) -> &str {
        &self.id
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn validated(&self) -> HostLicense {
        self.license.clone()
    }
}

/// A denial (`Ok(Denied)`) or error, for an answer that is not a success.
fn refused<T>(op: Operation, a: &HttpResponse) -> Result<Verdict<T>, Error> {
    let parsed = parse_body(&a.body).and_then(|v| ErrorBody::read(&v));
    let retry_after = a.header("retry-after");
    proto::failure(op, a.status, &a.body, parsed.as_ref(), retry_after).map(Verdict::Denied)
}

/// The 200's body as JSON, else the `protocol_error` of a malformed answer.
fn json_200(op: Operation, body: &[u8]) -> Result<JsValue, Error> {
    let text = std::str::from_utf8(body).map_err(|_| proto::malformed(op, "not UTF-8"))?;
    parse(text).ok_or_else(|| proto::malformed(op, "not JSON"))
}

/// A validate's answer, classified and held to the request (the host's twin of
/// [`proto::parse_validate_for`]; `date`: the response's `Date`, unix seconds).
pub(crate) fn validate_answer(
    a: &HttpResponse,
    expect: &Expect<'_>,
    date: Option<i64>,
) -> Result<Verdict<HostLicense>, Error> {
    let op = Operation::Validate;
    if a.status != 200 {
        return refused(op, a);
    }
    let license = HostLicense::validated(json_200(op, &a.body)?)
        .map_err(|bad| proto::malformed(op, &bad.0))?;
    license.held(expect, false, date)?;
    Ok(Verdict::Accepted(license))
}

/// An activate's answer, classified and held to the request (the host's twin of
/// [`proto::parse_activate_for`]).
pub(crate) fn activate_answer(
    a: &HttpResponse,
    expect: &Expect<'_>,
    date: Option<i64>,
) -> Result<Verdict<HostActivation>, Error> {
    let op = Operation::Activate;
    if a.status != 200 {
        return refused(op, a);
    }
    let read = json_200(op, &a.body)?;
    let license = read
        .member("license_key")
        .ok_or_else(|| proto::malformed(op, "license_key: missing"))?;
    let license = HostLicense::new(license, Some(read.clone()))
        .map_err(|bad| proto::malformed(op, &bad.0))?;
    license.held(expect, true, date)?;
    let id = license
        .activation_ids
        .as_ref()
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let label = read
        .member("label")
        .and_then(|l| l.string())
        .unwrap_or_default();
    Ok(Verdict::Accepted(HostActivation { id, label, license }))
}

/// A deactivate's answer (204 on success), classified.
pub(crate) fn deactivate_answer(a: &HttpResponse) -> Result<Verdict<()>, Error> {
    match a.status {
        204 => Ok(Verdict::Accepted(())),
        _ => refused(Operation::Deactivate, a),
    }
}
