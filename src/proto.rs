//! The sans-IO core: builds requests as plain data and turns responses into verdicts.
//!
//! Nothing here touches a socket, a file or a clock. A transport sends the [`HttpRequest`]
//! and hands back an [`HttpResponse`]; the `parse_*` functions classify it.

use crate::error::{Error, Verdict};
use crate::json::JsonOut;
use crate::key::{redact, AccessToken, Key};
use crate::metadata::{
    check_increment_usage, check_key, check_metadata, check_no_nul, check_uuid_v4, Metadata,
};
use crate::model::{
    LicenseKeyActivationRead, LicenseKeyRead, LicenseKeyStatus, ValidatedLicenseKey,
};
use serde::de::DeserializeOwned;

mod base_url;
mod classify;
pub use base_url::{check_base_url, origin, Server, PRODUCTION_URL, SANDBOX_URL, USER_AGENT};
pub(crate) use classify::{classify_failure, failure_named};
pub use classify::{
    error_body, failure, retry_after, retry_after_value, ErrorBody, MAX_RETRY_AFTER,
};

/// The three license-key operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `…/validate`
    Validate,
    /// `…/activate`
    Activate,
    /// `…/deactivate`
    Deactivate,
}

impl Operation {
    /// The last path segment.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Validate => "validate",
            Operation::Activate => "activate",
            Operation::Deactivate => "deactivate",
        }
    }
}

/// A request ready for a transport: always `POST` with a JSON body whose length is known, so
/// `Content-Length` can always be sent (Polar answers 411 without it).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The operation, for transports that want to log it.
    pub operation: Operation,
    /// The full URL.
    pub url: String,
    /// Headers to send besides `Content-Length` (which the transport derives from `body`).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body. It holds the license key: never log it.
    pub body: Vec<u8>,
}

/// A request's headers as `Debug` shows them: an `authorization` header's token redacted.
pub(crate) fn redacted_headers(headers: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("authorization") {
                (*k, "Bearer ****".to_string())
            } else {
                (*k, v.clone())
            }
        })
        .collect()
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers = redacted_headers(&self.headers);
        f.debug_struct("HttpRequest")
            .field("operation", &self.operation)
            .field("url", &self.url)
            .field("headers", &headers)
            .field(
                "body",
                &format_args!("<{} bytes, redacted>", self.body.len()),
            )
            .finish()
    }
}

/// A response as a transport received it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The whole body (transports cap its size).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and a body, for tests and custom transports.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The response a JS host got over its `fetch` (`headers`: `name\nvalue\n…`, as fetch's
    /// names and values hold no line break), or the failure it had (`status` 0: no answer,
    /// `body` the host's description of why): one reading for the npm package's modules.
    pub fn from_host(status: u16, headers: &str, body: &str) -> Result<HttpResponse, Error> {
        if status == 0 {
            return Err(Error::Offline {
                timeout: body.contains("timed out"),
                detail: body.to_string(),
            });
        }
        let mut r = HttpResponse::new(status, body.as_bytes().to_vec());
        let mut lines = headers.split('\n');
        while let (Some(name), Some(value)) = (lines.next(), lines.next()) {
            r = r.with_header(name, value);
        }
        Ok(r)
    }

    /// Adds a header (name lowercased).
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the header `name` when it came exactly once: a header sent twice reads as
    /// none on every face (`fetch` joins the two with ", ", which no reader here takes).
    pub fn single(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }

    /// The `Date` header in unix seconds, when there is one that reads (see [`http_date`]):
    /// what the expiry check and the grace rules anchor a verdict at when the local clock is
    /// off. Two `Date` headers read as none (`fetch` joins them into one that does not parse).
    pub fn date(&self) -> Option<i64> {
        self.single("date").and_then(http_date)
    }

    /// The `Age` header in seconds, when there is one that reads: how long ago the answer was
    /// given by Polar, as a relay answering from its store says (`polar-license-source:
    /// store` or `stale`). Delta-seconds exactly (RFC 9111 §5.1: digits only); anything else,
    /// two headers included, is no age. A value past `i64::MAX` reads as `i64::MAX`.
    pub fn age(&self) -> Option<i64> {
        // Bytes, not a `char` pattern: the reader is in every client's wasm.
        let mut v = self.single("age")?.as_bytes();
        while let [b' ' | b'\t', rest @ ..] = v {
            v = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = v {
            v = rest;
        }
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0i64, |n, b| {
            n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        }))
    }

    /// Where a relay says its answer came from (its `polar-license-source` header, a single
    /// value that reads): `None` from Polar itself, or a header that does not read.
    pub fn relayed(&self) -> Option<Relayed> {
        match self.single(RELAY_SOURCE_HEADER)?.trim() {
            "polar" => Some(Relayed::Polar),
            "store" => Some(Relayed::Store),
            "stale" => Some(Relayed::Stale),
            _ => None,
        }
    }

    /// When this answer was given: its `Date` and `Age` headers ([`Stamp`]).
    pub fn stamp(&self) -> Stamp {
        Stamp {
            date: self.date(),
            age: self.age().unwrap_or(0),
        }
    }
}

/// The header a relay names the source of its answer with (`polar`, `store` or `stale`).
pub const RELAY_SOURCE_HEADER: &str = "polar-license-source";

/// Where a relay's answer came from, as its [`RELAY_SOURCE_HEADER`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relayed {
    /// The relay asked Polar just now.
    Polar,
    /// The relay replayed Polar's answer from its store, within `--fresh-for`.
    Store,
    /// The relay replayed a stored grant because Polar could not be asked (at the budget, a
    /// 429, a 5xx or unreachable), within `--stale-for`.
    Stale,
}

impl Relayed {
    /// `polar`, `store` or `stale`: the header's value, and the code every face prints.
    pub const fn as_str(self) -> &'static str {
        match self {
            Relayed::Polar => "polar",
            Relayed::Store => "store",
            Relayed::Stale => "stale",
        }
    }
}

/// When an answer was given, as its response says: the `Date` header (unix seconds, when it
/// read: [`HttpResponse::date`]) and the `Age` header (seconds, 0 without one:
/// [`HttpResponse::age`]). Polar answers with no `Age`; a relay replaying an answer it stored
/// says how old it is, so the grace cache dates the verdict from when Polar gave it, not from
/// when the replay arrived (a replayed grant never restarts the grace: docs/threat-model.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// The `Date` header in unix seconds.
    pub date: Option<i64>,
    /// The `Age` header in seconds (never negative).
    pub age: i64,
}

impl From<Option<i64>> for Stamp {
    /// A stamp with this `Date` and no `Age`.
    fn from(date: Option<i64>) -> Stamp {
        Stamp { date, age: 0 }
    }
}

/// Parses an HTTP `Date` header into unix seconds: the IMF-fixdate every HTTP/1.1 server sends
/// (`Sun, 06 Nov 1994 08:49:37 GMT`; RFC 9110 §5.6.7), exactly, the weekday agreeing with the
/// date. Anything else (the obsolete RFC 850 and asctime forms, another zone, a second 60, a
/// list of dates) is no date: the local clock is used instead, as when there is no header. The
/// one reading on every face (the npm package hands the engine the header as `fetch` gives it).
pub fn http_date(value: &str) -> Option<i64> {
    use crate::rfc3339::{days_from_civil, days_in_month};
    const DAYS: [&[u8]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = value.trim().as_bytes();
    // "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, every one in its place.
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    if [(7, b' '), (11, b' '), (16, b' '), (19, b':'), (22, b':')]
        .iter()
        .any(|&(at, c)| b[at] != c)
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as i64 + 1;
    let (year, day) = (num(12, 16)?, num(5, 7)?);
    let (hour, minute, second) = (num(17, 19)?, num(20, 22)?, num(23, 25)?);
    if !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday: the weekday named must be the date's.
    if DAYS[days.rem_euclid(7) as usize] != &b[0..3] {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// A validate request (`LicenseKeyValidate`). Ids are checked as UUID v4 before sending.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidateRequest {
    /// The license key.
    pub key: Option<Key>,
    /// The activation to check (its stored conditions are then compared with `conditions`).
    pub activation_id: Option<String>,
    /// Require the key to belong to this benefit.
    pub benefit_id: Option<String>,
    /// Require the key to belong to this customer.
    pub customer_id: Option<String>,
    /// Add this much to the key's usage (refused with `usage_exhausted` past `limit_usage`).
    pub increment_usage: Option<i64>,
    /// Compared with the activation's stored conditions (ignored without `activation_id`).
    pub conditions: Metadata,
}

impl ValidateRequest {
    /// A validate request for `key`.
    pub fn new(key: impl Into<Key>) -> ValidateRequest {
        ValidateRequest {
            key: Some(key.into()),
            ..ValidateRequest::default()
        }
    }

    /// Sets the activation id.
    pub fn activation_id(mut self, id: impl Into<String>) -> Self {
        self.activation_id = Some(id.into());
        self
    }

    /// Sets the benefit id.
    pub fn benefit_id(mut self, id: impl Into<String>) -> Self {
        self.benefit_id = Some(id.into());
        self
    }

    /// Sets the customer id.
    pub fn customer_id(mut self, id: impl Into<String>) -> Self {
        self.customer_id = Some(id.into());
        self
    }

    /// Sets the usage increment.
    pub fn increment_usage(mut self, n: i64) -> Self {
        self.increment_usage = Some(n);
        self
    }

    crate::metadata::metadata_adder!(
        /// Adds a condition.
        condition => conditions
    );
}

/// `validate_async(&req)`, as `validate(&req)` takes it.
impl From<&ValidateRequest> for ValidateRequest {
    fn from(req: &ValidateRequest) -> ValidateRequest {
        req.clone()
    }
}

/// An activate request (`LicenseKeyActivate`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActivateRequest {
    /// The license key.
    pub key: Option<Key>,
    /// A label for the activation, e.g. the machine's name (may be empty).
    pub label: String,
    /// Stored on the activation and compared on every later validate that names it.
    pub conditions: Metadata,
    /// Stored and returned as `meta`.
    pub meta: Metadata,
}

impl ActivateRequest {
    /// An activate request for `key` with `label`.
    pub fn new(key: impl Into<Key>, label: impl Into<String>) -> ActivateRequest {
        ActivateRequest {
            key: Some(key.into()),
            label: label.into(),
            ..ActivateRequest::default()
        }
    }

    /// An activate request for `key` labelled with this machine's default label (its host
    /// name and OS, [`crate::device_label::default_device_label`], e.g. `jane-laptop (Linux)`),
    /// for an app that has no label of its own to give: a customer reading the key's device
    /// list can tell this machine from the others. Never a secret.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn for_this_machine(key: impl Into<Key>) -> ActivateRequest {
        ActivateRequest::new(key, crate::device_label::default_device_label())
    }

    crate::metadata::metadata_adder!(
        /// Adds a condition.
        condition => conditions
    );

    crate::metadata::metadata_adder!(
        /// Adds a meta entry.
        meta => meta
    );
}

/// `activate_async(&req)`, as `activate(&req)` takes it.
impl From<&ActivateRequest> for ActivateRequest {
    fn from(req: &ActivateRequest) -> ActivateRequest {
        req.clone()
    }
}

/// A deactivate request (`LicenseKeyDeactivate`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeactivateRequest {
    /// The license key.
    pub key: Option<Key>,
    /// The activation to free.
    pub activation_id: String,
}

impl DeactivateRequest {
    /// A deactivate request.
    pub fn new(key: impl Into<Key>, activation_id: impl Into<String>) -> DeactivateRequest {
        DeactivateRequest {
            key: Some(key.into()),
            activation_id: activation_id.into(),
        }
    }
}

/// A validate request's body, checked: `key`, `organization_id`, then what is set (an absent
/// id, a zero increment and empty conditions are left out).
struct ValidateBody<'a> {
    key: &'a str,
    organization_id: &'a str,
    activation_id: Option<String>,
    benefit_id: Option<String>,
    customer_id: Option<String>,
    increment_usage: Option<i64>,
    conditions: &'a Metadata,
}

impl ValidateBody<'_> {
    fn write(&self) -> String {
        let mut j = JsonOut::new();
        j.raw("{");
        j.key("key").str(self.key);
        j.key("organization_id").str(self.organization_id);
        for (name, value) in [
            ("activation_id", &self.activation_id),
            ("benefit_id", &self.benefit_id),
            ("customer_id", &self.customer_id),
        ] {
            if let Some(v) = value {
                j.key(name).str(v);
            }
        }
        if let Some(n) = self.increment_usage {
            j.key("increment_usage").int(n);
        }
        if !self.conditions.is_empty() {
            j.key("conditions").meta(self.conditions);
        }
        j.raw("}").done()
    }
}

/// Everything needed to build requests: base URL, organization, optional access token.
///
/// With an access token the requests go to the token-authenticated `/v1/license-keys/…`
/// routes (for backends and CI tools); without one, to the public
/// `/v1/customer-portal/license-keys/…` routes, with no `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    base_url: String,
    /// The customer portal's and checkouts' base URL (`base_url` unless set apart).
    portal_base_url: String,
    organization_id: String,
    access_token: Option<AccessToken>,
    user_agent: Option<String>,
}

impl Api {
    /// Checks the organization id (UUID v4) and the server's URL.
    pub fn new(organization_id: &str, server: &Server) -> Result<Api, Error> {
        let base_url = server.base_url()?;
        Ok(Api {
            portal_base_url: base_url.clone(),
            base_url,
            organization_id: check_uuid_v4("organization_id", organization_id)?,
            access_token: None,
            user_agent: None,
        })
    }

    /// Uses the token-authenticated routes with this token.
    pub fn with_access_token(mut self, token: AccessToken) -> Result<Api, Error> {
        let t = token.expose();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "access_token",
                "must be non-empty printable ASCII",
            ));
        }
        self.access_token = Some(token);
        Ok(self)
    }

    /// Asks the customer portal and checkouts at `server` instead (signed mode: Polar, where
    /// the base URL is the seller's relay). Its URL checked as a base URL is, a refusal naming
    /// `portal_base_url`.
    pub fn with_portal(mut self, server: &Server) -> Result<Api, Error> {
        self.portal_base_url = server.base_url_of("portal_base_url")?;
        Ok(self)
    }

    /// Sends this `User-Agent` header (browsers forbid it, so the wasm build leaves it out).
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Api {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The checked base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The customer portal's and checkouts' checked base URL: the base URL unless
    /// [`Api::with_portal`] set it apart.
    pub fn portal_base_url(&self) -> &str {
        &self.portal_base_url
    }

    /// The organization id, canonical form.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// The URL of an operation.
    pub fn url(&self, op: Operation) -> String {
        let prefix = if self.access_token.is_some() {
            "/v1/license-keys/"
        } else {
            "/v1/customer-portal/license-keys/"
        };
        [self.base_url.as_str(), prefix, op.as_str()].concat()
    }

    fn request(&self, op: Operation, body: String) -> Result<HttpRequest, Error> {
        let body = body.into_bytes();
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("accept", "application/json".to_string()),
        ];
        if let Some(ua) = &self.user_agent {
            headers.push(("user-agent", ua.clone()));
        }
        if let Some(token) = &self.access_token {
            headers.push(("authorization", ["Bearer ", token.expose()].concat()));
        }
        Ok(HttpRequest {
            operation: op,
            url: self.url(op),
            headers,
            body,
        })
    }

    /// Checks a validate request locally and builds it.
    pub fn validate_request(&self, req: &ValidateRequest) -> Result<HttpRequest, Error> {
        self.request(Operation::Validate, self.validate_body(req)?.write())
    }

    /// The local checks of [`validate_request`](Api::validate_request) alone (what it
    /// would refuse, without encoding the body).
    pub fn check_validate_request(&self, req: &ValidateRequest) -> Result<(), Error> {
        self.validate_body(req).map(drop)
    }

    fn validate_body<'a>(&'a self, req: &'a ValidateRequest) -> Result<ValidateBody<'a>, Error> {
        let key = checked_key(&req.key)?;
        let opt_uuid = |field: &str, v: &Option<String>| {
            v.as_deref().map(|s| check_uuid_v4(field, s)).transpose()
        };
        if let Some(n) = req.increment_usage {
            check_increment_usage(n)?;
        }
        check_metadata("conditions", &req.conditions)?;
        Ok(ValidateBody {
            key,
            organization_id: &self.organization_id,
            activation_id: opt_uuid("activation_id", &req.activation_id)?,
            benefit_id: opt_uuid("benefit_id", &req.benefit_id)?,
            customer_id: opt_uuid("customer_id", &req.customer_id)?,
            increment_usage: req.increment_usage.filter(|n| *n > 0),
            conditions: &req.conditions,
        })
    }

    /// Checks an activate request locally and builds it.
    pub fn activate_request(&self, req: &ActivateRequest) -> Result<HttpRequest, Error> {
        let key = checked_key(&req.key)?;
        check_no_nul("label", &req.label)?;
        check_metadata("conditions", &req.conditions)?;
        check_metadata("meta", &req.meta)?;
        let mut j = JsonOut::new();
        j.raw("{");
        j.key("key").str(key);
        j.key("organization_id").str(&self.organization_id);
        j.key("label").str(&req.label);
        for (name, map) in [("conditions", &req.conditions), ("meta", &req.meta)] {
            if !map.is_empty() {
                j.key(name).meta(map);
            }
        }
        self.request(Operation::Activate, j.raw("}").done())
    }

    /// Checks a deactivate request locally and builds it.
    pub fn deactivate_request(&self, req: &DeactivateRequest) -> Result<HttpRequest, Error> {
        let key = checked_key(&req.key)?;
        let activation_id = check_uuid_v4("activation_id", &req.activation_id)?;
        let mut j = JsonOut::new();
        j.raw("{");
        j.key("key").str(key);
        j.key("organization_id").str(&self.organization_id);
        j.key("activation_id").str(&activation_id);
        self.request(Operation::Deactivate, j.raw("}").done())
    }
}

fn checked_key(key: &Option<Key>) -> Result<&str, Error> {
    let key = key
        .as_ref()
        .ok_or_else(|| Error::invalid("key", "is required"))?
        .expose();
    check_key(key)?;
    Ok(key)
}

/// Classifies a validate response: a verdict from Polar's answer alone. It does not hold a 200
/// to the request (use [`parse_validate_for`], as every client here does).
pub fn parse_validate(resp: &HttpResponse) -> Result<Verdict<ValidatedLicenseKey>, Error> {
    parse_json(Operation::Validate, resp)
}

/// Classifies an activate response (see [`parse_activate_for`], which also holds a 200 to the
/// request).
pub fn parse_activate(resp: &HttpResponse) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
    parse_json(Operation::Activate, resp)
}

/// What the checks on a 200 read of the license it carries: the fields that make it Polar's
/// verdict on the request asked (every face reads them from its own parse of the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseFacts<'a> {
    /// The license key record's id.
    pub id: &'a str,
    /// The full key.
    pub key: &'a str,
    /// The seller organization.
    pub organization_id: &'a str,
    /// The benefit.
    pub benefit_id: &'a str,
    /// The customer.
    pub customer_id: &'a str,
    /// `granted`, `revoked` or `disabled`.
    pub status: &'a str,
    /// `expires_at`, in unix seconds.
    pub expires_at: Option<i64>,
}

impl<'a> LicenseFacts<'a> {
    /// The facts of a typed license.
    pub fn of(license: &'a LicenseKeyRead) -> LicenseFacts<'a> {
        LicenseFacts {
            id: &license.id,
            key: license.key.expose(),
            organization_id: &license.organization_id,
            benefit_id: &license.benefit_id,
            customer_id: &license.customer_id,
            status: license.status.as_str(),
            expires_at: license.expires_at.map(|t| t.unix_timestamp()),
        }
    }
}

/// What a request asked about, to hold a 200 answer to it: Polar's answer must be about this
/// key and organization (and activation, benefit, customer, when asked) and must say the
/// license is valid. An answer that contradicts the request is not Polar's verdict on it (a
/// misrouted or forged answer): `protocol_error` (docs/interfaces.md §1), never a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The license key sent.
    pub key: &'a str,
    /// The organization sent.
    pub organization_id: &'a str,
    /// The activation sent, if any.
    pub activation_id: Option<&'a str>,
    /// The benefit sent, if any.
    pub benefit_id: Option<&'a str>,
    /// The customer sent, if any.
    pub customer_id: Option<&'a str>,
    /// The local clock (unix seconds): an `expires_at` at or before it (or before the
    /// response's `Date`, when it has one) is an expired license.
    pub now: i64,
}

/// The `protocol_error` of a 200 that is no valid license for the request.
fn no_valid_license(what: &str) -> Error {
    Error::protocol(
        Some(200),
        [
            "a 200 answer that is no valid license for this request: ",
            what,
        ]
        .concat(),
    )
}

impl<'a> Expect<'a> {
    /// What a validate request expects of its answer (`None` without a key).
    pub fn validate(
        organization_id: &'a str,
        req: &'a ValidateRequest,
        now: i64,
    ) -> Option<Expect<'a>> {
        Some(Expect {
            key: req.key.as_ref()?.expose(),
            organization_id,
            activation_id: req.activation_id.as_deref(),
            benefit_id: req.benefit_id.as_deref(),
            customer_id: req.customer_id.as_deref(),
            now,
        })
    }

    /// What an activate request expects of its answer (`None` without a key).
    pub fn activate(
        organization_id: &'a str,
        req: &'a ActivateRequest,
        now: i64,
    ) -> Option<Expect<'a>> {
        Some(Expect {
            key: req.key.as_ref()?.expose(),
            organization_id,
            activation_id: None,
            benefit_id: None,
            customer_id: None,
            now,
        })
    }

    /// Holds a license from a 200 answer to the request: `Err(protocol_error)` when it is for
    /// another key, organization, benefit or customer, or is not granted, or has expired.
    pub fn license(&self, license: &LicenseKeyRead, resp: &HttpResponse) -> Result<(), Error> {
        let date = resp.date();
        self.holds(&LicenseFacts::of(license), date)
    }

    /// [`Expect::license`] over a license's facts, with the response's `Date` (unix seconds)
    /// when it had one: the one rule every face holds a 200 to.
    pub fn holds(&self, license: &LicenseFacts<'_>, date: Option<i64>) -> Result<(), Error> {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if license.key != self.key {
            let other = ["it is about another key (", &redact(license.key), ")"].concat();
            return Err(no_valid_license(&other));
        }
        if !same(license.organization_id, self.organization_id) {
            return Err(no_valid_license("it is about another organization"));
        }
        if self
            .benefit_id
            .is_some_and(|b| !same(b, license.benefit_id))
        {
            return Err(no_valid_license("it is about another benefit"));
        }
        if self
            .customer_id
            .is_some_and(|c| !same(c, license.customer_id))
        {
            return Err(no_valid_license("it is about another customer"));
        }
        if license.status != LicenseKeyStatus::Granted.as_str() {
            return Err(no_valid_license(
                &["its status is ", license.status].concat(),
            ));
        }
        let reference = date.map_or(self.now, |d| d.min(self.now));
        if license.expires_at.is_some_and(|at| at <= reference) {
            return Err(no_valid_license("it expired already"));
        }
        Ok(())
    }

    /// Holds a validate's 200 to the request: the license ([`Expect::holds`]), and the
    /// activation answered (`answered`, its id) must be the one asked about, if one was.
    pub fn validated(
        &self,
        license: &LicenseFacts<'_>,
        answered: Option<&str>,
        date: Option<i64>,
    ) -> Result<(), Error> {
        self.holds(license, date)?;
        if let Some(id) = self.activation_id {
            if !answered.is_some_and(|a| a.eq_ignore_ascii_case(id)) {
                return Err(no_valid_license("it is not about the activation asked"));
            }
        }
        Ok(())
    }

    /// Holds an activate's 200 to the request: the license ([`Expect::holds`]), and the
    /// activation must belong to it (its `license_key_id` is the license's id).
    pub fn activated(
        &self,
        license: &LicenseFacts<'_>,
        license_key_id: &str,
        date: Option<i64>,
    ) -> Result<(), Error> {
        self.holds(license, date)?;
        if !license_key_id.eq_ignore_ascii_case(license.id) {
            return Err(Error::protocol(
                Some(200),
                "a 200 answer that is no valid activation: it belongs to another license"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// `answer`, to a request that sent the key `key`, with every copy of the key in the words
/// taken from the server's body (a 5xx's or a foreign answer's start, a denial's detail) in its
/// redacted form (`****-6ED415`): a server or a proxy that echoes the request (a FastAPI 422's
/// `input`, a traceback page) never puts the key into an error or a detail, on any face.
pub(crate) fn unechoed<T>(
    answer: Result<Verdict<T>, Error>,
    key: &str,
) -> Result<Verdict<T>, Error> {
    let hide = |text: &mut String| hide_in(text, key);
    match answer {
        Ok(Verdict::Denied(mut d)) => {
            hide(&mut d.detail);
            Ok(Verdict::Denied(d))
        }
        Err(Error::Protocol { status, mut detail }) => {
            hide(&mut detail);
            Err(Error::Protocol { status, detail })
        }
        Err(Error::ServerError { status, mut detail }) => {
            hide(&mut detail);
            Err(Error::ServerError { status, detail })
        }
        other => other,
    }
}

/// `text` with every copy of `key` (not empty) in its redacted form. Compared by bytes, not by
/// `str::replace`, which measured 302 bytes more in the npm entry (gzipped) for this one use.
/// A match starts and ends on character boundaries: `key` is UTF-8 text too.
fn hide_in(text: &mut String, key: &str) {
    let (bytes, k) = (text.as_bytes(), key.as_bytes());
    if k.is_empty() {
        return;
    }
    let mut out = String::new();
    let (mut last, mut at) = (0, 0);
    while let Some(window) = bytes.get(at..at + k.len()) {
        if window == k {
            out.push_str(text.get(last..at).unwrap_or_default());
            out.push_str(&redact(key));
            at += k.len();
            last = at;
        } else {
            at += 1;
        }
    }
    if last > 0 {
        out.push_str(text.get(last..).unwrap_or_default());
        *text = out;
    }
}

/// Classifies a validate response and holds a 200 to the request ([`Expect::validated`]).
pub fn parse_validate_for(
    resp: &HttpResponse,
    expect: &Expect<'_>,
) -> Result<Verdict<ValidatedLicenseKey>, Error> {
    let verdict = unechoed(parse_validate(resp), expect.key)?;
    if let Verdict::Accepted(v) = &verdict {
        let date = resp.date();
        let answered = v.activation.as_ref().map(|a| a.id.as_str());
        expect.validated(&LicenseFacts::of(&v.license_key), answered, date)?;
    }
    Ok(verdict)
}

/// Classifies an activate response and holds a 200 to the request ([`Expect::activated`]).
pub fn parse_activate_for(
    resp: &HttpResponse,
    expect: &Expect<'_>,
) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
    let verdict = unechoed(parse_activate(resp), expect.key)?;
    if let Verdict::Accepted(read) = &verdict {
        let date = resp.date();
        let facts = LicenseFacts::of(&read.license_key);
        expect.activated(&facts, &read.activation.license_key_id, date)?;
    }
    Ok(verdict)
}

/// Classifies a deactivate response (204 on success).
pub fn parse_deactivate(resp: &HttpResponse) -> Result<Verdict<()>, Error> {
    match resp.status {
        204 => Ok(Verdict::Accepted(())),
        _ => classify_failure(Operation::Deactivate, resp).map(Verdict::Denied),
    }
}

/// [`parse_deactivate`] of the answer to a deactivation of `key`: the key never in its words.
pub fn parse_deactivate_for(resp: &HttpResponse, key: Option<&Key>) -> Result<Verdict<()>, Error> {
    unechoed(parse_deactivate(resp), key.map_or("", Key::expose))
}

fn parse_json<T: DeserializeOwned>(
    op: Operation,
    resp: &HttpResponse,
) -> Result<Verdict<T>, Error> {
    if resp.status != 200 {
        return classify_failure(op, resp).map(Verdict::Denied);
    }
    // What the strict reading refuses is not Polar's answer, whatever serde would let through
    // (an ignored string that is not UTF-8, a lone surrogate, a member twice): every face
    // reads the body through it first.
    strict_body(op, resp)?;
    serde_json::from_slice(&resp.body)
        .map(Verdict::Accepted)
        .map_err(|e| malformed(op, &e.to_string()))
}

/// The body of a 200 as Polar's JSON ([`crate::strict`]), else the `protocol_error` of a
/// malformed answer: the first reading of every success, on every face.
pub fn strict_body(op: Operation, resp: &HttpResponse) -> Result<crate::strict::Value, Error> {
    crate::strict::parse(&resp.body).map_err(|e| malformed(op, &e.text()))
}

/// The `protocol_error` of a 200 whose body is not the answer `op` gives.
pub fn malformed(op: Operation, why: &str) -> Error {
    Error::protocol(
        Some(200),
        ["malformed ", op.as_str(), " response: ", why].concat(),
    )
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod http_date_tests {
    use super::{http_date, HttpResponse};
    use time::format_description::well_known::Rfc2822;
    use time::OffsetDateTime;

    /// Every IMF-fixdate reads as `time` reads it, over four centuries, a day and a few
    /// seconds apart each time (leap years, month ends and weekdays all passed).
    #[test]
    fn imf_fixdates_read_as_time_reads_them() {
        let mut t = -2_208_988_800i64; // 1900-01-01
        while t < 10_413_792_000 {
            let date = OffsetDateTime::from_unix_timestamp(t).unwrap();
            let text = date.format(&Rfc2822).unwrap().replace("+0000", "GMT");
            assert_eq!(http_date(&text), Some(t), "{text}");
            t += 86_400 * 3 + 3_607;
        }
    }

    #[test]
    fn anything_but_an_imf_fixdate_is_no_date() {
        for text in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "1994-11-06T08:49:37Z",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 08:49:37 A",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
            "",
        ] {
            assert_eq!(http_date(text), None, "{text:?}");
        }
        assert_eq!(
            http_date("  Sun, 06 Nov 1994 08:49:37 GMT "),
            Some(784_111_777)
        );
        // Two Date headers read as none, as fetch joins them.
        let twice = HttpResponse::new(200, "")
            .with_header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
            .with_header("date", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(twice.date(), None);
        let once = HttpResponse::new(200, "").with_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(once.date(), Some(784_111_777));
    }
}

/// A client without signed mode (the bare clients' `validate`): a denial's detail read from the
/// relay's [`crate::stopped::STOPPED_HEADER`] beside it. A grant is left as it is; so is a
/// detail that does not read. The check flow reads it in [`crate::held`], where signed mode
/// believes only the signed one.
pub(crate) fn read_stopped_unsigned<T>(
    mut verdict: Verdict<T>,
    response: &HttpResponse,
) -> Verdict<T> {
    if let Verdict::Denied(d) = &mut verdict {
        d.stopped = response
            .single(crate::stopped::STOPPED_HEADER)
            .and_then(crate::stopped::Stopped::from_text);
    }
    verdict
}

#[cfg(test)]
mod hide_tests {
    use super::hide_in;

    #[test]
    fn every_copy_of_the_key_is_redacted_and_nothing_else_moves() {
        const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
        let hidden = |text: &str| {
            let mut t = text.to_string();
            hide_in(&mut t, KEY);
            t
        };
        assert_eq!(hidden("no key here"), "no key here");
        assert_eq!(hidden(KEY), "****-6ED415");
        assert_eq!(
            hidden(&format!("é{KEY}✓ and {KEY}{KEY}.")),
            "é****-6ED415✓ and ****-6ED415****-6ED415."
        );
        // A near miss stays as it was.
        assert_eq!(hidden(&KEY[1..]), &KEY[1..]);
        let mut untouched = String::from("text");
        hide_in(&mut untouched, "");
        assert_eq!(untouched, "text");
    }
}
