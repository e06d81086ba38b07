//! The sans-IO core: builds requests as plain data and turns responses into verdicts.
//!
//! Nothing here touches a socket, a file or a clock. A transport sends the [`HttpRequest`]
//! and hands back an [`HttpResponse`]; the `parse_*` functions classify it.

use crate::decimal::digits;
use crate::error::{Denial, Error, Verdict};
use crate::json::{JsonIn, JsonOut, Num};
use crate::key::{redact, AccessToken, Key};
use crate::metadata::{
    check_increment_usage, check_key, check_metadata, check_no_nul, check_uuid_v4, Metadata,
};
use crate::model::{
    LicenseKeyActivationRead, LicenseKeyRead, LicenseKeyStatus, ValidatedLicenseKey,
};
use crate::reason::Reason;
use serde::de::DeserializeOwned;

/// Polar's production API.
pub const PRODUCTION_URL: &str = "https://api.polar.sh";
/// Polar's sandbox API (separate data: a sandbox key is `not_found` on production).
pub const SANDBOX_URL: &str = "https://sandbox-api.polar.sh";
/// The `User-Agent` the native client sends.
pub const USER_AGENT: &str = concat!("polar-license/", env!("CARGO_PKG_VERSION"), " (rust)");

/// Which Polar to talk to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Server {
    /// `https://api.polar.sh` (the default).
    #[default]
    Production,
    /// `https://sandbox-api.polar.sh`.
    Sandbox,
    /// Any `https://` URL, or `http://` on a loopback host (an emulator, a test proxy).
    Custom(String),
}

impl Server {
    /// Parses `production`, `sandbox` or a URL.
    pub fn parse(text: &str) -> Server {
        match text {
            "production" => Server::Production,
            "sandbox" => Server::Sandbox,
            url => Server::Custom(url.to_string()),
        }
    }

    /// The checked base URL, without a trailing slash.
    pub fn base_url(&self) -> Result<String, Error> {
        match self {
            Server::Production => Ok(PRODUCTION_URL.to_string()),
            Server::Sandbox => Ok(SANDBOX_URL.to_string()),
            Server::Custom(url) => check_base_url(url),
        }
    }
}

/// Checks a custom base URL: `https://`, or `http://` only for a loopback host; no user info,
/// query or fragment. Returns it without trailing slashes.
pub fn check_base_url(url: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid("base_url", why.to_string());
    let (scheme, rest) = url
        .split_once(':')
        .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
        .ok_or_else(|| bad("must start with https:// or http://"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(bad("must start with https:// or http://"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let authority = before_slash(rest);
    if authority.contains('@') {
        return Err(bad("must not contain user info"));
    }
    let host = if let Some(inner) = authority.strip_prefix('[') {
        inner.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if scheme == "http" && !is_loopback_host(host) {
        return Err(bad(
            "plain http:// is only allowed for loopback hosts; use https://",
        ));
    }
    Ok([scheme.as_str(), "://", rest.trim_end_matches('/')].concat())
}

/// The origin of a checked base URL: its scheme, host and port, without the path
/// (`https://api.polar.sh/v1` → `https://api.polar.sh`); scheme and host lowercased.
pub fn origin(base_url: &str) -> String {
    let (scheme, rest) = base_url
        .split_once(':')
        .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
        .unwrap_or(("", base_url));
    let authority = before_slash(rest);
    [
        scheme.to_ascii_lowercase(),
        "://".to_string(),
        authority.to_ascii_lowercase(),
    ]
    .concat()
}

/// `text` up to its first `/`.
fn before_slash(text: &str) -> &str {
    text.find('/').map_or(text, |i| &text[..i])
}

/// `localhost`, or an address literal of the loopback: std's `Ipv4Addr` or `Ipv6Addr` parsers'
/// answer with `is_loopback` (the tests hold these readers to it, spelling by spelling), read
/// by hand: those parsers were 0.76 KB of the npm engine gzipped, these readers 0.38 KB.
#[inline(never)] // one body, however many callers inline check_base_url
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || is_ipv4_loopback(host) || is_ipv6_loopback(host)
}

/// `127.x.y.z` as std reads an IPv4 address: four decimal parts (one to three digits, 0-255,
/// no leading zero) separated by dots.
fn is_ipv4_loopback(text: &str) -> bool {
    let mut parts = 0;
    text.split('.').all(|part| {
        parts += 1;
        (1..=3).contains(&part.len())
            && !(part.len() > 1 && part.starts_with('0'))
            && part
                .bytes()
                .try_fold(0, |n, c| {
                    c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
                })
                .is_some_and(|n| n < 256)
    }) && parts == 4
        && text.starts_with("127.")
}

/// `::1` in any spelling std reads: eight groups of one to four hex digits separated by
/// colons, one `::` at most for one or more zero groups, the last two groups maybe written
/// as an IPv4 address (`0.0.0.1` for the loopback's `0:1`). Only the loopback's digits are
/// read (every group zero but the last, one): any other digit is another address.
fn is_ipv6_loopback(text: &str) -> bool {
    let owned;
    let text = match text.strip_suffix("0.0.0.1") {
        Some(head) if head.ends_with(':') => {
            owned = [head, "0:1"].concat();
            &owned
        }
        _ => text,
    };
    let b = text.as_bytes();
    // Ends in the last group's 1, and starts with a group or `::`.
    if b.last() != Some(&b'1') || (b.first() == Some(&b':') && !b.starts_with(b"::")) {
        return false;
    }
    let (mut groups, mut digits, mut colons, mut doubles) = (0, 0, 0, 0);
    for (i, &c) in b.iter().enumerate() {
        if c == b':' {
            (colons, digits) = (colons + 1, 0);
            doubles += usize::from(colons == 2);
        } else if c == b'0' || i + 1 == b.len() {
            groups += usize::from(digits == 0);
            (colons, digits) = (0, digits + 1);
        } else {
            return false;
        }
        if colons > 2 || digits > 4 {
            return false;
        }
    }
    match doubles {
        0 => groups == 8,
        1 => groups < 8,
        _ => false,
    }
}

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
    organization_id: String,
    access_token: Option<AccessToken>,
    user_agent: Option<String>,
}

impl Api {
    /// Checks the organization id (UUID v4) and the server's URL.
    pub fn new(organization_id: &str, server: &Server) -> Result<Api, Error> {
        Ok(Api {
            base_url: server.base_url()?,
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

    /// Sends this `User-Agent` header (browsers forbid it, so the wasm build leaves it out).
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Api {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The checked base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
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

/// Classifies a validate response and holds a 200 to the request ([`Expect::validated`]).
pub fn parse_validate_for(
    resp: &HttpResponse,
    expect: &Expect<'_>,
) -> Result<Verdict<ValidatedLicenseKey>, Error> {
    let verdict = parse_validate(resp)?;
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
    let verdict = parse_activate(resp)?;
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

/// Polar's error body as the classification reads it: `{"error": "...", "detail": "..."}`
/// (`detail` is a list for a 422), or an OAuth error's `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    /// `error`, when a string.
    pub error: Option<String>,
    /// `detail`, when a string.
    pub detail: Option<String>,
    /// For a 422 (`detail` a list): its first entry's field (`loc` after `body`, joined with
    /// `.`; `None` when empty) and `msg`; `None` when `detail` is no non-empty list.
    pub invalid: Option<(Option<String>, Option<String>)>,
    /// `error_description`, when a string.
    pub error_description: Option<String>,
}

impl ErrorBody {
    /// Reads an error body from parsed JSON: `None` when it is no object, or when `error` or
    /// `error_description` is there and is no string.
    pub fn read<J: JsonIn>(v: &J) -> Option<ErrorBody> {
        if !v.is_object() {
            return None;
        }
        let detail = v.member("detail");
        let invalid = detail
            .as_ref()
            .and_then(JsonIn::items)
            .and_then(|items| items.into_iter().next())
            .map(|first| {
                let field = first
                    .member("loc")
                    .and_then(|l| l.items())
                    .map(|parts| {
                        let mut field = String::new();
                        for part in parts.iter().skip(1) {
                            // "body" skipped
                            if !field.is_empty() {
                                field.push('.');
                            }
                            field.push_str(&loc_part(part));
                        }
                        field
                    })
                    .filter(|s| !s.is_empty());
                (field, first.member("msg").and_then(|m| m.string()))
            });
        Some(ErrorBody {
            error: v.optional("error", JsonIn::string)?,
            detail: detail.and_then(|d| d.string()),
            invalid,
            error_description: v.optional("error_description", JsonIn::string)?,
        })
    }
}

/// A part of a 422's `loc`: a field name, or an index.
fn loc_part<J: JsonIn>(v: &J) -> String {
    if let Some(s) = v.string() {
        return s;
    }
    match v.number() {
        Some(Num::Int(n)) => JsonOut::new().int(n).done(),
        Some(Num::Float(x)) => JsonOut::new().float(x).done(),
        None => "?".to_string(),
    }
}

/// The error body of an answer that is not a success, as the strict reading sees it (`None`
/// when it is not Polar's JSON: then no answer of that status is a denial).
pub fn error_body(resp: &HttpResponse) -> Option<ErrorBody> {
    ErrorBody::read(&crate::strict::parse(&resp.body).ok()?)
}

/// The error names Polar sends its denials under (`PolarError` subclasses).
const ENVELOPE_ERRORS: [&str; 3] = ["ResourceNotFound", "NotPermitted", "BadRequest"];

/// The `detail` of Polar's own error envelope, `{"error": "ResourceNotFound" | "NotPermitted" |
/// "BadRequest", "detail": "…"}`, or `None` when the body is anything else: a bare
/// `{"detail":"Not Found"}` (a wrong base path, a removed `Polar-Version`), a proxy's or a
/// captive portal's page. Only an answer in this envelope is a verdict (docs/interfaces.md §1).
fn envelope_detail(body: Option<&ErrorBody>) -> Option<String> {
    let body = body?;
    let polar = body
        .error
        .as_deref()
        .is_some_and(|e| ENVELOPE_ERRORS.contains(&e));
    body.detail.clone().filter(|_| polar)
}

/// A short, printable start of a body for diagnostics.
///
/// Up to 200 bytes, cut at the last whole UTF-8 character (bytes that are not UTF-8 end it).
fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(200)];
    let (text, whole) = match std::str::from_utf8(head) {
        Ok(text) => (text, true),
        Err(e) => (
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
            // A character cut at byte 200 is no flaw of the body.
            head.len() == 200 && e.error_len().is_none(),
        ),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    match (text.is_empty(), whole) {
        (true, true) => "empty body".to_string(),
        (true, false) => "a body that is not UTF-8 text".to_string(),
        (false, _) => text,
    }
}

fn denial(reason: Reason, detail: String, status: u16) -> Denial {
    Denial {
        previously_valid: false,
        activation_gone: false,
        stopped: None,
        reason,
        detail,
        status,
        remaining_usages: None,
    }
}

/// The longest `retry-after` honoured, in seconds (docs/interfaces.md §4): a longer value, from a
/// misconfigured proxy or a hostile one, must not stop every request for years.
pub const MAX_RETRY_AFTER: u64 = 3600;

/// Parses the `retry-after` header: whole seconds (asgi-ratelimit sends those), capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(resp: &HttpResponse) -> Option<u64> {
    retry_after_value(resp.single("retry-after")?)
}

/// [`retry_after`] of a header's value.
pub fn retry_after_value(value: &str) -> Option<u64> {
    let secs = crate::decimal::parse_u64(value.trim())?;
    Some(secs.min(MAX_RETRY_AFTER))
}

/// The protocol error for a status whose body is not Polar's error envelope.
fn not_polar(op: Operation, status: u16, body: &[u8]) -> Error {
    Error::protocol(
        Some(status),
        [
            &digits(u64::from(status)),
            " for ",
            op.as_str(),
            " without Polar's error envelope (a wrong base URL, a removed Polar-Version, or a \
             proxy's or login page): ",
            &snippet(body),
        ]
        .concat(),
    )
}

/// Maps a non-success response to a denial (`Ok`) or an error (`Err`). Only Polar's own
/// error envelope is ever a denial.
fn classify_failure(op: Operation, resp: &HttpResponse) -> Result<Denial, Error> {
    failure(
        op,
        resp.status,
        &resp.body,
        error_body(resp).as_ref(),
        resp.single("retry-after"),
    )
}

/// The classification of a non-success answer, once parsed: its status, its raw body (for
/// diagnostics), its error body when it is a JSON object ([`ErrorBody::read`]) and its
/// `retry-after` header. A denial (`Ok`) or an error (`Err`); only Polar's own error envelope
/// is ever a denial. The one table every face classifies Polar's answers by.
pub fn failure(
    op: Operation,
    status: u16,
    body: &[u8],
    parsed: Option<&ErrorBody>,
    retry_after: Option<&str>,
) -> Result<Denial, Error> {
    // 401's and 403's description when the body is not Polar's envelope.
    let description = || {
        parsed
            .and_then(|b| b.error_description.clone().or_else(|| b.error.clone()))
            .unwrap_or_else(|| snippet(body))
    };
    match status {
        404 => {
            let detail = envelope_detail(parsed).ok_or_else(|| not_polar(op, status, body))?;
            let reason = match detail.as_str() {
                "License key is no longer active." => Reason::Inactive,
                "License key has expired." => Reason::Expired,
                "License key does not match required conditions" => Reason::ConditionsMismatch,
                "License key does not match given benefit." => Reason::BenefitMismatch,
                "License key does not match given user." => Reason::CustomerMismatch,
                // "Not found", and any 404 detail this version does not know
                // (docs/interfaces.md §1).
                _ => Reason::NotFound,
            };
            Ok(denial(reason, detail, status))
        }
        403 => {
            let Some(detail) = envelope_detail(parsed) else {
                return Err(Error::protocol(
                    Some(403),
                    ["403 without Polar's error envelope: ", &description()].concat(),
                ));
            };
            let reason = if detail.starts_with("This license key does not support activations") {
                Reason::ActivationsNotSupported
            } else if detail == "License key activation limit already reached" {
                Reason::ActivationLimit
            } else if detail == "License key has expired." {
                Reason::Expired
            } else if detail
                .as_bytes()
                .windows(16)
                .any(|w| w == b"no longer active")
            {
                Reason::Inactive
            } else {
                return Err(Error::protocol(
                    Some(403),
                    ["unexpected 403: ", &detail].concat(),
                ));
            };
            Ok(denial(reason, detail, status))
        }
        400 if op == Operation::Validate => {
            let detail = envelope_detail(parsed).unwrap_or_default();
            let remaining = detail
                .strip_prefix("License key only has ")
                .and_then(|rest| rest.strip_suffix(" more usages."))
                .and_then(|n| n.parse::<i64>().ok());
            match remaining {
                Some(n) => Ok(Denial {
                    previously_valid: false,
                    activation_gone: false,
                    stopped: None,
                    reason: Reason::UsageExhausted,
                    detail,
                    status,
                    remaining_usages: Some(n),
                }),
                None => Err(Error::protocol(
                    Some(400),
                    ["unexpected 400: ", &snippet(body)].concat(),
                )),
            }
        }
        422 => Err(validation_error(parsed, body)),
        429 => Err(Error::RateLimited {
            retry_after: retry_after.and_then(retry_after_value),
        }),
        500..=599 => Err(Error::ServerError {
            status,
            detail: snippet(body),
        }),
        401 => Err(Error::protocol(
            Some(401),
            ["401 unauthorized: ", &description()].concat(),
        )),
        // A proxy on the way asks for credentials: `fetch` cannot even see this status (the
        // Fetch standard makes it a network error), so on every face it is what it is for
        // the browser, no answer from Polar (docs/interfaces.md §1: offline).
        407 => Err(Error::Offline {
            timeout: false,
            detail: "407: a proxy between here and Polar asks for credentials".to_string(),
        }),
        // No final answer: an informational status that reached us as if final (`fetch` never
        // hands one over), or no HTTP status at all.
        0..=199 | 600.. => Err(Error::Offline {
            timeout: false,
            detail: [
                "no final HTTP answer (status ",
                &digits(u64::from(status)),
                ")",
            ]
            .concat(),
        }),
        _ => {
            let what = parsed
                .and_then(|b| b.detail.clone().or_else(|| b.error.clone()))
                .unwrap_or_else(|| snippet(body));
            Err(Error::protocol(
                Some(status),
                [
                    "unexpected status ",
                    &digits(u64::from(status)),
                    " for ",
                    op.as_str(),
                    ": ",
                    &what,
                ]
                .concat(),
            ))
        }
    }
}

/// A 422 means the server found the input invalid: `invalid_input`, naming the first field.
fn validation_error(parsed: Option<&ErrorBody>, body: &[u8]) -> Error {
    let Some((field, msg)) = parsed.and_then(|b| b.invalid.clone()) else {
        return Error::protocol(Some(422), ["422: ", &snippet(body)].concat());
    };
    Error::InvalidInput {
        field: field.unwrap_or_else(|| "body".to_string()),
        message: [
            msg.as_deref().unwrap_or("rejected by the server"),
            " (server)",
        ]
        .concat(),
    }
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
    mut verdict: crate::Verdict<T>,
    response: &HttpResponse,
) -> crate::Verdict<T> {
    if let crate::Verdict::Denied(d) = &mut verdict {
        d.stopped = response
            .single(crate::stopped::STOPPED_HEADER)
            .and_then(crate::stopped::Stopped::from_text);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::{is_ipv4_loopback, is_ipv6_loopback, is_loopback_host};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Both readers against std's parsers and `is_loopback`, on `host`.
    fn agrees(host: &str) {
        let v4 = host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
        let v6 = host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
        assert_eq!(is_ipv4_loopback(host), v4, "IPv4 {host:?}");
        assert_eq!(is_ipv6_loopback(host), v6, "IPv6 {host:?}");
    }

    #[test]
    fn loopback_hosts_are_what_std_parses_as_the_loopback() {
        for host in [
            "localhost",
            "LocalHost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.255.255.255",
            "127.0.0.0",
            "127.1",
            "127.0.1",
            "127.0.0.01",
            "127.0.0.256",
            "127.0.0.255",
            "127.0.0.300",
            "127.0.0.1000",
            "0127.0.0.1",
            "127.0.0.1.",
            ".127.0.0.1",
            "127..0.1",
            "128.0.0.1",
            "126.0.0.1",
            "127.0.0.+1",
            "127.0.0.1 ",
            " 127.0.0.1",
            "127.0.0.a",
            "::1",
            "0:0:0:0:0:0:0:1",
            "0000:0000:0000:0000:0000:0000:0000:0001",
            "::0001",
            "::00001",
            "0::1",
            "::0:1",
            "0:0:0::0:0:1",
            "0:0:0:0:0:0:0::1",
            "::0:0:0:0:0:0:1",
            "::0:0:0:0:0:0:0:1",
            ":0:0:0:0:0:0:0:1",
            "0:0:0:0:0:0:0:1:",
            "::1:",
            "::1::",
            "1::",
            "::",
            ":::1",
            "::0.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.1",
            "0:0:0:0:0:0:0.0.0.1",
            "0:0:0:0:0:0::0.0.0.1",
            "0:0:0:0:0::0.0.0.1",
            "::00.0.0.1",
            "::0.0.0.01",
            "0.0.0.1",
            "0.0.0.1::",
            "0.0.0.1::1",
            "::127.0.0.1",
            "::10",
            "::1:0",
            "::11",
            "1::1",
            "::01",
            "0:0:0:0:0:0:0:0:1",
            "0:0:0:0:0:0:1",
            "[::1]",
            "",
            ":",
            "1",
            "::1%lo",
            "::1 ",
            "::１",
            "::0:0.0.0.1",
            "::0:0:0:0:0:0.0.0.1",
            "::0:0:0:0:0:0:0.0.0.1",
        ] {
            agrees(host);
            let std = host.eq_ignore_ascii_case("localhost")
                || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
                || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
            assert_eq!(is_loopback_host(host), std, "{host:?}");
        }
        // Every text of up to seven characters of these.
        let alphabet = b"01:.72f";
        let mut text = Vec::new();
        for len in 1..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                agrees(std::str::from_utf8(&text).unwrap_or_default());
            }
        }
        // Longer texts from pieces of addresses (a fixed xorshift: the same texts every run).
        let pieces = [
            "0",
            "00",
            "000",
            "0000",
            "00000",
            "1",
            "01",
            "001",
            "0001",
            "10",
            "f",
            "ffff",
            "127",
            "255",
            "256",
            "7f00",
            ":",
            "::",
            ".",
            "0.0.0.1",
            "0.0.0.",
            "127.0.0.1",
            ":0",
            "0:",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % below as u64).unwrap_or_default()
        };
        let mut hits = 0;
        for _ in 0..300_000 {
            let text: String = (0..1 + next(16))
                .map(|_| pieces[next(pieces.len())])
                .collect();
            agrees(&text);
            hits += usize::from(is_ipv6_loopback(&text));
        }
        // The pieces do spell the loopback, often enough to mean something.
        assert!(hits > 100, "{hits} loopback spellings");
    }
}
