//! How an answer that is not a 200 is read (docs/polar-api.md §2): Polar's error envelope
//! ([`ErrorBody`]), its `Retry-After`, and the denial or error it means ([`failure`]): a denial
//! only from Polar's own envelope, anything else an error that says what came instead.

use super::{HttpResponse, Operation};
use crate::decimal::digits;
use crate::error::{Denial, Error};
use crate::json::{JsonIn, JsonOut, Num};
use crate::reason::Reason;

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
fn not_polar(what: &str, status: u16, body: &[u8]) -> Error {
    Error::protocol(
        Some(status),
        [
            &digits(u64::from(status)),
            " for ",
            what,
            " without Polar's error envelope (a wrong base URL, a removed Polar-Version, or a \
             proxy's or login page): ",
            &snippet(body),
        ]
        .concat(),
    )
}

/// Maps a non-success response to a denial (`Ok`) or an error (`Err`). Only Polar's own
/// error envelope is ever a denial.
pub(crate) fn classify_failure(op: Operation, resp: &HttpResponse) -> Result<Denial, Error> {
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
    failure_named(op.as_str(), op, status, body, parsed, retry_after)
}

/// [`failure`] of a relay's own request that Polar's rules for `op` classify (a seat's, a usage
/// report's: the relay passes Polar's validate answers on), its protocol errors naming `what`
/// (`a usage report`), not the operation it is classified as.
pub(crate) fn failure_named(
    what: &str,
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
            let detail = envelope_detail(parsed).ok_or_else(|| not_polar(what, status, body))?;
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
            let said = parsed
                .and_then(|b| b.detail.clone().or_else(|| b.error.clone()))
                .unwrap_or_else(|| snippet(body));
            Err(Error::protocol(
                Some(status),
                [
                    "unexpected status ",
                    &digits(u64::from(status)),
                    " for ",
                    what,
                    ": ",
                    &said,
                ]
                .concat(),
            ))
        }
    }
}

/// A 422 in Polar's wrapper means the server found the input invalid: `invalid_input`, naming the
/// first field; any other 422 is no answer of Polar's (`protocol_error`).
fn validation_error(parsed: Option<&ErrorBody>, body: &[u8]) -> Error {
    // Polar's own wrapper only (`RequestValidationError`, or a service's
    // `PolarRequestValidationError`): a proxy's or a portal's 422 is no answer of Polar's, and
    // must not keep a paying user from the cache (docs/interfaces.md §1).
    let polar = |b: &&ErrorBody| {
        b.error
            .as_deref()
            .is_some_and(|e| e.strip_prefix("Polar").unwrap_or(e) == "RequestValidationError")
    };
    let Some((field, msg)) = parsed.filter(polar).and_then(|b| b.invalid.clone()) else {
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
