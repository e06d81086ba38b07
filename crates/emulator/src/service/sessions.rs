//! Customer sessions as Polar serves them (docs/polar-api.md §16.0, §16.1): the email
//! one-time code (`POST /v1/customer-portal/customer-session/request` and `…/authenticate`),
//! a session made with an organization token (`POST /v1/customer-sessions/`), and the
//! `polar_cst_` tokens' life (1 h on the emulator's clock, then `invalid_token` everywhere).
//!
//! The emulator sends no email: a code is readable from `GET /__emulator/customer-session/codes`
//! and printed to the emulator's log ([`Core::take_log`]). It serves Polar's "other
//! organizations" (no member model): every session is a customer session.

use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{method_not_allowed, Auth, Core, Exchange, Pending, Resp, Step, Time};
use crate::json::{obj, opt_s, s, J};
use crate::state::CustomerRef;
use crate::util::{fmt_ts, micros};
use crate::validate::{body_missing, body_not_object, error_body, query_uuid_error, VErr};

/// `CUSTOMER_SESSION_CODE_TTL`: 30 minutes.
const CODE_TTL: Duration = Duration::from_secs(30 * 60);
/// `CUSTOMER_SESSION_TTL`: 1 hour, no refresh.
const SESSION_TTL: Duration = Duration::from_secs(60 * 60);
/// Codes kept at most (the oldest dropped first): without the rate limit a caller could
/// otherwise grow the store without end. Polar keeps every code for its 30 minutes.
const MAX_CODES: usize = 1_000;
/// Session tokens kept at most (the oldest dropped first).
const MAX_SESSIONS: usize = 10_000;
/// Log lines kept for the host at most.
const MAX_LOG: usize = 100;
/// `CUSTOMER_SESSION_CODE_LENGTH` characters from this alphabet (`secrets.choice`).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// `string.ascii_letters + string.digits`: the 37 random characters of a token.
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// `_crc32_to_base62`'s digits.
const BASE62_DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const CODE_INVALID: &str = "This customer session code is invalid or has expired.";
const SELECTION_REQUIRED: &str = "Multiple customers found for this email. Please select one.";

/// The paths of this module's collection routes (Starlette's slash redirect names them).
pub(super) const SESSION_COLLECTIONS: [&str; 2] = [
    "/v1/customer-sessions/",
    "/v1/customer-portal/license-keys/",
];

/// An email code waiting to be used.
#[derive(Debug, Clone)]
struct Code {
    code: String,
    email: String,
    customer_id: Uuid,
    organization_id: Uuid,
    expires_at: OffsetDateTime,
}

/// A customer session token.
#[derive(Clone)]
struct Session {
    token: String,
    customer_id: Uuid,
    organization_id: Uuid,
    expires_at: OffsetDateTime,
    /// The `return_url` it was made with (`POST /v1/customer-sessions/`), for `introspect`.
    return_url: Option<String>,
}

/// The customer a valid session token authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionAuth {
    pub(crate) customer_id: Uuid,
    pub(crate) organization_id: Uuid,
}

/// The customer sessions' state: live codes and tokens, the benefits with device management
/// (`enable_customer_admin`), and the log lines the host has not printed yet.
#[derive(Default)]
pub(crate) struct Sessions {
    codes: Vec<Code>,
    sessions: Vec<Session>,
    /// Benefits whose `properties.activations.enable_customer_admin` is true.
    pub(crate) admin_benefits: Vec<Uuid>,
    log: Vec<String>,
}

impl std::fmt::Debug for Sessions {
    /// Counts only: codes and tokens are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("codes", &self.codes.len())
            .field("sessions", &self.sessions.len())
            .field("admin_benefits", &self.admin_benefits)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The sessions' state of a seed: its benefits with device management.
    pub(crate) fn from_seed(seed: &crate::Seed) -> Result<Sessions, String> {
        let mut admin_benefits = Vec::new();
        for b in &seed.benefits {
            let id = crate::util::parse_uuid4(&b.id, "id of a benefit")?;
            if b.enable_customer_admin {
                admin_benefits.push(id);
            }
        }
        Ok(Sessions {
            admin_benefits,
            ..Sessions::default()
        })
    }

    /// The customer of a live session `token` at `now` (the emulator's clock); `None` for an
    /// unknown or expired one (Polar: 401 `invalid_token`).
    pub(crate) fn lookup(&mut self, token: &str, now: OffsetDateTime) -> Option<SessionAuth> {
        self.sessions.retain(|s| s.expires_at > now);
        self.sessions
            .iter()
            .find(|s| s.token == token)
            .map(|s| SessionAuth {
                customer_id: s.customer_id,
                organization_id: s.organization_id,
            })
    }

    /// A live session token's expiry and `return_url` (`GET …/customer-session/introspect`).
    pub(crate) fn details(&self, token: &str) -> Option<(OffsetDateTime, Option<String>)> {
        self.sessions
            .iter()
            .find(|s| s.token == token)
            .map(|s| (s.expires_at, s.return_url.clone()))
    }

    fn push_log(&mut self, line: String) {
        if self.log.len() >= MAX_LOG {
            self.log.remove(0);
        }
        self.log.push(line);
    }

    fn add_session(&mut self, session: Session) {
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.remove(0);
        }
        self.sessions.push(session);
    }
}

/// A session route that waits for its body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionOp {
    /// `POST /v1/customer-portal/customer-session/request`.
    Request,
    /// `POST /v1/customer-portal/customer-session/authenticate`.
    Authenticate,
    /// `POST /v1/customer-sessions/` with a token of this organization.
    Create(Uuid),
}

/// zlib's CRC-32 (IEEE, reflected).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `_crc32_to_base62`: base 62, zero-padded to 6.
fn base62(mut n: u32) -> String {
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(BASE62_DIGITS[(n % 62) as usize]);
        n /= 62;
    }
    while digits.len() < 6 {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

/// `generate_token(prefix=…)`: the prefix, 37 random `[A-Za-z0-9]`, the CRC-32 of those 37 in
/// base 62 (6 characters).
pub(crate) fn token_with_checksum(prefix: &str, random: &str) -> String {
    format!("{prefix}{random}{}", base62(crc32(random.as_bytes())))
}

/// A pydantic error entry.
fn verr(typ: &'static str, loc: &[&str], msg: &str, input: &J, ctx: Option<J>) -> VErr {
    VErr::new(typ, loc.iter().map(|p| s(p)).collect(), msg, input, ctx)
}

/// The body object's fields, and the errors pydantic reports for them.
struct Fields<'a> {
    items: &'a [(String, J)],
    whole: &'a J,
    errors: Vec<VErr>,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a J> {
        self.items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// pydantic's `missing` for a required field: always `None`.
    fn missing<T>(&mut self, name: &str) -> Option<T> {
        let e = verr(
            "missing",
            &["body", name],
            "Field required",
            self.whole,
            None,
        );
        self.errors.push(e);
        None
    }

    /// A required (or, with `optional`, nullable and defaulted) `str`.
    fn string(&mut self, name: &str, optional: bool) -> Option<String> {
        match self.get(name) {
            None | Some(J::Null) if optional => None,
            None => self.missing(name),
            Some(J::Str(text)) => Some(text.clone()),
            Some(other) => {
                self.errors.push(verr(
                    "string_type",
                    &["body", name],
                    "Input should be a valid string",
                    other,
                    None,
                ));
                None
            }
        }
    }

    /// A UUID v4, required or nullable.
    fn uuid4(&mut self, name: &str, optional: bool) -> Option<Uuid> {
        match self.get(name) {
            None | Some(J::Null) if optional => None,
            None => self.missing(name),
            Some(J::Str(text)) => match query_uuid_error(name, text) {
                Some(mut e) => {
                    e.loc = vec![s("body"), s(name)];
                    self.errors.push(e);
                    None
                }
                None => Uuid::parse_str(text).ok(),
            },
            Some(other) => {
                self.errors.push(verr(
                    "uuid_type",
                    &["body", name],
                    "UUID input should be a string, bytes or UUID object",
                    other,
                    None,
                ));
                None
            }
        }
    }
}

/// The body's object, or the 422 of a missing or non-object body.
fn body_object(body: &J) -> Result<&[(String, J)], Resp> {
    match body {
        J::Obj(items) => Ok(items),
        J::Null => Err(Resp::json(422, &error_body(&[body_missing()]))),
        other => Err(Resp::json(422, &error_body(&[body_not_object(other)]))),
    }
}

/// A service's 422 (`PolarRequestValidationError`, no `ctx`).
fn polar_validation_error(loc: &[&str], msg: &str, input: &J) -> Resp {
    let entry = verr("value_error", loc, msg, input, None);
    Resp::json(
        422,
        &obj(vec![
            ("error", s("PolarRequestValidationError")),
            ("detail", J::Arr(vec![entry.to_j()])),
        ]),
    )
}

fn plus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(time::Duration::seconds(d.as_secs() as i64))
        .unwrap_or(t)
}

impl Core {
    /// The session routes of this module (`None`: not one of them). `auth` is the caller as
    /// the auth middleware resolved it; `ex.session` its customer session, if any.
    pub(super) fn session_route(&mut self, ex: &Exchange, auth: &Auth) -> Option<Step> {
        let method = ex.method();
        let path = ex.path.as_str();
        if let Some(op) = path.strip_prefix("/v1/customer-portal/customer-session/") {
            let op = match op {
                "request" => SessionOp::Request,
                "authenticate" => SessionOp::Authenticate,
                _ => return None,
            };
            return Some(match method {
                "POST" => Step::Body(Pending::Session(op)),
                _ => Step::Done(method_not_allowed("POST")),
            });
        }
        if path == "/v1/customer-sessions/" {
            if method != "POST" {
                return Some(Step::Done(method_not_allowed("POST")));
            }
            return Some(match auth.organization_with(&["customer_sessions:write"]) {
                Ok(org) => Step::Body(Pending::Session(SessionOp::Create(org))),
                Err(r) => Step::Done(r),
            });
        }
        None
    }

    /// Runs a session route with its body read as JSON.
    pub(super) fn session_with_body(&mut self, op: SessionOp, body: J, now: Time) -> Resp {
        let items = match body_object(&body) {
            Ok(items) => items,
            Err(r) => return r,
        };
        let mut fields = Fields {
            items,
            whole: &body,
            errors: Vec::new(),
        };
        match op {
            SessionOp::Request => self.request_code(&mut fields, now),
            SessionOp::Authenticate => self.authenticate(&mut fields, now),
            SessionOp::Create(organization_id) => {
                self.create_session(&mut fields, organization_id, now)
            }
        }
    }

    /// `CustomerSessionCodeRequest` → 202 `null`, a code made when exactly one customer of the
    /// organization has that email (or `customer_id` picks one of several).
    fn request_code(&mut self, fields: &mut Fields, now: Time) -> Resp {
        let mut email = fields.string("email", false);
        if let Some(text) = &email {
            match crate::email::check(text) {
                // `EmailStr` hands the service the normalized address (stripped, the domain
                // lower-cased).
                Ok(normalized) => email = Some(normalized),
                Err(reason) => fields.errors.push(verr(
                    "value_error",
                    &["body", "email"],
                    &format!("value is not a valid email address: {reason}"),
                    &J::Str(text.clone()),
                    Some(obj(vec![("reason", s(&reason))])),
                )),
            }
        }
        let organization_id = fields.uuid4("organization_id", false);
        let customer_id = fields.uuid4("customer_id", true);
        let (Some(email), Some(organization_id)) = (email, organization_id) else {
            return Resp::json(422, &error_body(&fields.errors));
        };
        if !fields.errors.is_empty() {
            return Resp::json(422, &error_body(&fields.errors));
        }
        let customers = self.store.customers_by_email(organization_id, &email);
        let chosen: Option<CustomerRef> = match customers.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            several => match customer_id {
                Some(id) => several.iter().find(|c| c.id == id).cloned(),
                None => {
                    let listed = several
                        .iter()
                        .map(|c| obj(vec![("id", s(&c.id.to_string())), ("name", J::Null)]))
                        .collect();
                    return Resp::json(
                        409,
                        &obj(vec![
                            ("error", s("customer_selection_required")),
                            ("detail", s(SELECTION_REQUIRED)),
                            ("customers", J::Arr(listed)),
                        ]),
                    );
                }
            },
        };
        if let Some(customer) = chosen {
            let code = self.random_text(CODE_ALPHABET, 6);
            let clock = self.clock(now);
            let expires_at = plus(clock, CODE_TTL);
            let sessions = &mut self.sessions;
            sessions.codes.retain(|c| c.expires_at > clock);
            if sessions.codes.len() >= MAX_CODES {
                sessions.codes.remove(0);
            }
            let to = customer.email.unwrap_or(email);
            sessions.push_log(format!(
                "customer session code {code} for {to} (customer {}, organization {organization_id}), valid until {}",
                customer.id,
                fmt_ts(expires_at)
            ));
            sessions.codes.push(Code {
                code,
                email: to,
                customer_id: customer.id,
                organization_id,
                expires_at,
            });
        }
        Resp::json_text(202, "null")
    }

    /// `CustomerSessionCodeAuthenticate` → 200 `{"token": "polar_cst_…"}`; the code is used
    /// up. An unknown, used or expired code: 401 `CustomerSessionCodeInvalidOrExpired`.
    fn authenticate(&mut self, fields: &mut Fields, now: Time) -> Resp {
        let Some(code) = fields.string("code", false) else {
            return Resp::json(422, &error_body(&fields.errors));
        };
        // `get_token_hash` encodes the code as ASCII: anything else raises (a 500).
        if !code.is_ascii() {
            return Resp::internal_error();
        }
        let clock = self.clock(now);
        self.sessions.codes.retain(|c| c.expires_at > clock);
        let Some(at) = self.sessions.codes.iter().position(|c| c.code == code) else {
            return Resp::error(401, "CustomerSessionCodeInvalidOrExpired", CODE_INVALID);
        };
        let used = self.sessions.codes.remove(at);
        let token = self.new_session(used.customer_id, used.organization_id, clock, None);
        Resp::json(200, &obj(vec![("token", s(&token))]))
    }

    /// A new `polar_cst_` token for a customer, living 1 h from `clock`.
    pub(super) fn new_session(
        &mut self,
        customer_id: Uuid,
        organization_id: Uuid,
        clock: OffsetDateTime,
        return_url: Option<String>,
    ) -> String {
        let random = self.random_text(TOKEN_ALPHABET, 37);
        let token = token_with_checksum("polar_cst_", &random);
        self.sessions.add_session(Session {
            token: token.clone(),
            customer_id,
            organization_id,
            expires_at: plus(clock, SESSION_TTL),
            return_url,
        });
        token
    }

    /// `POST /v1/customer-sessions/` (`CustomerSessionCustomerIDCreate` or
    /// `…CustomerExternalIDCreate`) → 201 `CustomerSession`.
    fn create_session(&mut self, fields: &mut Fields, organization_id: Uuid, now: Time) -> Resp {
        let external = ["external_customer_id", "customer_external_id"]
            .iter()
            .find_map(|name| fields.get(name).map(|v| (*name, v)));
        let return_url = fields.string("return_url", true);
        if let Some(url) = &return_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok {
                fields.errors.push(verr(
                    "url_parsing",
                    &["body", "return_url"],
                    "Input should be a valid URL, relative URL without a base",
                    &J::Str(url.clone()),
                    Some(obj(vec![("error", s("relative URL without a base"))])),
                ));
            }
        }
        let customer = match (fields.get("customer_id"), external) {
            (Some(_), _) => fields.uuid4("customer_id", false).map(Ok),
            (None, Some((name, value))) => match value {
                J::Str(text) => Some(Err((name, text.clone()))),
                other => {
                    fields.errors.push(verr(
                        "string_type",
                        &["body", "CustomerSessionCustomerExternalIDCreate", name],
                        "Input should be a valid string",
                        other,
                        None,
                    ));
                    None
                }
            },
            (None, None) => {
                // Neither member of the union: pydantic reports both, tagged by model.
                let whole = fields.whole.clone();
                fields.errors.push(verr(
                    "missing",
                    &["body", "CustomerSessionCustomerIDCreate", "customer_id"],
                    "Field required",
                    &whole,
                    None,
                ));
                fields.errors.push(verr(
                    "missing",
                    &[
                        "body",
                        "CustomerSessionCustomerExternalIDCreate",
                        "external_customer_id",
                    ],
                    "Field required",
                    &whole,
                    None,
                ));
                None
            }
        };
        if !fields.errors.is_empty() {
            return Resp::json(422, &error_body(&fields.errors));
        }
        let found = match customer {
            Some(Ok(id)) => match self.store.customer(organization_id, id) {
                Some(found) => found,
                None => {
                    return polar_validation_error(
                        &["body", "customer_id"],
                        "Customer does not exist.",
                        &J::Str(id.to_string()),
                    )
                }
            },
            // By the seller's id (`external_customer_id`, or its alias `customer_external_id`):
            // `customer_session/service.py` looks it up in the organization as the id.
            Some(Err((_, text))) => match self.store.customer_by_external(organization_id, &text) {
                Some(found) => found,
                None => {
                    return polar_validation_error(
                        &["body", "external_customer_id"],
                        "Customer does not exist.",
                        &J::Str(text),
                    )
                }
            },
            None => return Resp::internal_error(),
        };
        let (customer, customer_json) = found;
        let clock = self.clock(now);
        let token = self.new_session(customer.id, organization_id, clock, return_url.clone());
        let id = self.store.next_id();
        let frontend = if self.options.sandbox {
            "https://sandbox.polar.sh"
        } else {
            "https://polar.sh"
        };
        let email = customer.email.as_deref().unwrap_or("");
        let portal = format!(
            "{frontend}/emulator/portal?customer_session_token={token}&email={}",
            url_encode(email)
        );
        let session = obj(vec![
            ("id", s(&id.to_string())),
            ("created_at", s(&fmt_ts(clock))),
            ("modified_at", J::Null),
            ("token", s(&token)),
            ("expires_at", s(&fmt_ts(plus(clock, SESSION_TTL)))),
            ("return_url", opt_s(return_url.as_deref())),
            ("customer_portal_url", s(&portal)),
            ("customer_id", s(&customer.id.to_string())),
            ("customer", customer_json),
        ]);
        Resp::json(201, &session)
    }

    /// `n` characters drawn uniformly from `alphabet` (rejection sampling over bytes of the
    /// core's id source, hashed).
    pub(super) fn random_text(&mut self, alphabet: &[u8], n: usize) -> String {
        let len = alphabet.len();
        // The largest multiple of the alphabet's size that fits in a byte.
        let bound = 256 - 256 % len;
        let mut out = String::with_capacity(n);
        while out.len() < n {
            let digest = Sha256::digest(self.store.next_id().as_bytes());
            for byte in digest {
                if out.len() < n && usize::from(byte) < bound {
                    out.push(char::from(alphabet[usize::from(byte) % len]));
                }
            }
        }
        out
    }

    /// The live email codes, oldest first, each `{code, email, customer_id, organization_id,
    /// expires_at}` (`GET /__emulator/customer-session/codes`).
    pub fn customer_session_codes(&self, now: Time) -> Vec<serde_json::Value> {
        let clock = self.clock(now);
        self.sessions
            .codes
            .iter()
            .filter(|c| c.expires_at > clock)
            .map(|c| {
                obj(vec![
                    ("code", s(&c.code)),
                    ("email", s(&c.email)),
                    ("customer_id", s(&c.customer_id.to_string())),
                    ("organization_id", s(&c.organization_id.to_string())),
                    ("expires_at", s(&fmt_ts(c.expires_at))),
                ])
                .to_value()
            })
            .collect()
    }

    /// The log lines made since the last call (each email code, as Polar would mail it): the
    /// native server prints them to stderr.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sessions.log)
    }

    /// The `GET /__emulator/customer-session/codes` answer.
    pub(super) fn codes_resp(&self, now: Time) -> Resp {
        let codes = self.customer_session_codes(now);
        match serde_json::to_string(&serde_json::json!({ "codes": codes })) {
            Ok(text) => Resp::json_text(200, &text),
            Err(_) => Resp::internal_error(),
        }
    }

    /// The customer of a live session token, at `now` (the emulator's clock).
    pub(super) fn session_of(&mut self, token: &str, now: Time) -> Option<SessionAuth> {
        let clock = micros(self.clock(now));
        self.sessions.lookup(token, clock)
    }
}

/// Percent-encodes a query value (`urllib.parse.quote`'s safe set: letters, digits, `_.-~`).
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_base62_match_zlib_and_polar() {
        // zlib.crc32(b"123456789") == 0xCBF43926 (the CRC-32 check value).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Python: _crc32_to_base62(zlib.crc32(b"123456789")), and Polar's whole token.
        assert_eq!(base62(crc32(b"123456789")), "3jZRME");
        assert_eq!(base62(0), "000000");
        assert_eq!(base62(61), "00000z");
        let token = token_with_checksum("polar_cst_", &"a".repeat(37));
        assert_eq!(token, format!("polar_cst_{}2sN54l", "a".repeat(37)));
    }
}
