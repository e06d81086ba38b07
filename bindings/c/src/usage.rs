//! Usage reports (issue #68 item 3): `units` of a meter used with a key, reported to the
//! seller's relay (the client's base URL; `relay serve --record-usage`). The rules are the
//! core's (`polar_license::usage::RecordUsage`, driven by the native client's `send_usage`):
//! the report's one idempotency id, its sends of the same id, which answers end it. This file
//! only hands them to C.
//!
//! Threads: `polar_license_client_record_usage` may be called from any thread, at the same
//! time as any other call on the same client (it holds no lock of the client's while it
//! waits: it blocks its own thread for its sends, up to three of them, each bounded by the
//! client's timeout, and the waits the core's machine asks between them: 200 ms and 400 ms
//! after an unreachable relay or its 5xx, a `429`'s `Retry-After` while the waits come to
//! at most 30 s, `polar_license::flow::timed::RETRY_BUDGET`). A result is the caller's: read it
//! from any one thread at a time, free it once.

use super::client::polar_license_client;
use super::enums::{polar_license_reason, polar_license_status};
use super::out;
use super::panic::read;
use super::strings::to_cstring;
use polar_license::usage::UsageAnswer;
use polar_license::{Error, Key};
use std::ffi::{c_char, CString};

/// What a usage report came to, as `polar_license_usage_result_error` tells it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_usage_error {
    /// Recorded (or, `polar_license_usage_result_duplicate`, recorded before under the same
    /// id: counted once).
    None = 0,
    /// `invalid_input`: a key, meter, units, id or organization refused before anything was
    /// sent (`polar_license_usage_result_message` names the field), or the relay's refusal of
    /// the report's body.
    InvalidInput = 1,
    /// `credits_exhausted`: the seller's rule at zero credits refused it (not recorded);
    /// `polar_license_usage_result_balance` is the balance the relay knows.
    CreditsExhausted = 2,
    /// `usage_backlog`: too many reports wait at the relay, even after the sends again; send it
    /// later with the same id (`polar_license_usage_result_id`,
    /// `polar_license_usage_result_retry_after`).
    Backlog = 3,
    /// `denied`: Polar denied the key (the reason says why: `not_found`, `inactive`, …).
    Denied = 4,
    /// `rate_limited`: Polar's or the relay's rate limit;
    /// `polar_license_usage_result_retry_after` says how long to wait.
    RateLimited = 5,
    /// `offline` (or `server_error`, `protocol_error`: the reason says which): no answer of the
    /// relay's, after the sends again of the same id. It may have been recorded: send it again
    /// with the same id, and it counts once.
    Offline = 6,
}

face_errors!(polar_license_usage_error);

/// The answer of a usage report (opaque), freed by `polar_license_usage_result_free`.
pub struct polar_license_usage_result {
    error: polar_license_usage_error,
    reason: polar_license_reason,
    code: CString,
    message: CString,
    /// The core's one sentence and next step for a failure (`UsageAnswer::message`,
    /// `Error::message`), empty when recorded.
    user_message: CString,
    next_step: CString,
    id: CString,
    duplicate: bool,
    balance: Option<f64>,
    retry_after: Option<u64>,
}

impl polar_license_usage_result {
    fn new(error: polar_license_usage_error, code: &str, message: &str) -> Self {
        polar_license_usage_result {
            error,
            reason: polar_license_reason::None,
            code: to_cstring(code),
            message: to_cstring(message),
            user_message: CString::default(),
            next_step: CString::default(),
            id: CString::default(),
            duplicate: false,
            balance: None,
            retry_after: None,
        }
    }

    /// The core's words for this failure, passed on as they are.
    fn said(mut self, said: Option<polar_license::Message>) -> Self {
        if let Some(said) = said {
            self.user_message = to_cstring(&said.text());
            self.next_step = to_cstring(said.next_step());
        }
        self
    }

    fn of_error(e: &Error) -> Self {
        use polar_license::Reason;
        let reason = e.reason();
        let kind = match reason {
            Reason::InvalidInput => polar_license_usage_error::InvalidInput,
            Reason::RateLimited => polar_license_usage_error::RateLimited,
            _ => polar_license_usage_error::Offline,
        };
        let mut r = Self::new(kind, reason.code(), &e.to_string()).said(Some(e.message()));
        r.reason = reason.into();
        if let Error::RateLimited { retry_after } = e {
            r.retry_after = *retry_after;
        }
        r
    }

    pub(crate) fn of_answer(answer: &UsageAnswer) -> Self {
        Self::answered(answer).said(answer.message())
    }

    fn answered(answer: &UsageAnswer) -> Self {
        match answer {
            UsageAnswer::Recorded {
                duplicate, balance, ..
            } => {
                let mut r = Self::new(polar_license_usage_error::None, "", "");
                r.duplicate = *duplicate;
                r.balance = *balance;
                r
            }
            UsageAnswer::CreditsExhausted { balance } => {
                let mut r = Self::new(
                    polar_license_usage_error::CreditsExhausted,
                    "credits_exhausted",
                    &format!("no credits left (balance {balance}): the report was not recorded"),
                );
                r.reason = polar_license_reason::CreditsExhausted;
                r.balance = Some(*balance);
                r
            }
            UsageAnswer::Backlog { retry_after } => {
                // The core's code (polar_license::usage::BACKLOG_CODE), not one of this face's.
                let mut r = Self::new(
                    polar_license_usage_error::Backlog,
                    answer.code(),
                    "too many reports wait at the relay: send it again later with the same id",
                );
                r.retry_after = *retry_after;
                r
            }
            UsageAnswer::Denied(d) => {
                let mut r = Self::new(
                    polar_license_usage_error::Denied,
                    d.reason.code(),
                    &d.detail,
                );
                r.reason = d.reason.into();
                r
            }
        }
    }
}

/// An optional string argument: `Ok(None)` for NULL.
fn opt_str<'a>(ptr: *const c_char) -> Result<Option<&'a str>, super::strings::StrError> {
    if ptr.is_null() {
        return Ok(None);
    }
    super::strings::str_arg(ptr).map(Some)
}

/// Reports `units` of `meter` (the event name the seller's meter counts, 1 to 128 bytes of
/// printable text) used with `key` to the seller's relay (`relay serve --record-usage`): the
/// one `polar_license_config_set_relay_url` named, else the client's base URL. `units`: above 0, at
/// most 1,000,000,000 (NaN, infinities, zero and negatives are `INVALID_INPUT`, nothing sent).
/// `id`: the report's idempotency id (1 to 64 characters of `A-Z a-z 0-9 - _ .`), or NULL for a new
/// one made here; a report sent again with the same id is counted once. The core sends it again
/// with the same id when the relay cannot be reached, answers 5xx or asks to wait, three sends at
/// most.
///
/// Returns `POLAR_LICENSE_STATUS_OK` and writes a usage result to `*out_result` whatever the
/// relay answered (`polar_license_usage_result_error`). Any other status means the call itself
/// was refused (a NULL `client`, `key`, `meter` or `out_result`, or a string not UTF-8: see
/// `polar_license_client_last_error`) and nothing was written or sent. Any thread (see the
/// module's thread rules in bindings/c/README.md).
#[no_mangle]
pub extern "C" fn polar_license_client_record_usage(
    client: *const polar_license_client,
    key: *const c_char,
    meter: *const c_char,
    units: f64,
    id: *const c_char,
    out_result: *mut *mut polar_license_usage_result,
) -> polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        let key = arg_str!(client, key, "key");
        let meter = arg_str!(client, meter, "meter");
        let id = match opt_str(id) {
            Ok(id) => id,
            Err(_) => return client.fail(polar_license_status::InvalidUtf8, "id is not valid UTF-8"),
        };
        if out_result.is_null() {
            return client.fail(polar_license_status::NullArgument, "out_result is NULL");
        }
        // Through the licensing's `record_usage`: with the client's relay keys (signed mode,
        // issue #76) the answer is believed only from the relay's signed acknowledgement (a
        // missing or forged one is `protocol_error`, never recorded).
        let (id, sent) = client
            .licensing()
            .record_usage(None, &Key::new(key), meter, units, id);
        let mut result = match sent {
            Ok(answer) => polar_license_usage_result::of_answer(&answer),
            Err(e) => polar_license_usage_result::of_error(&e),
        };
        if !id.is_empty() {
            result.id = to_cstring(&id);
        }
        out::give(out_result, result);
        polar_license_status::Ok
    }
}

/// Frees a usage result. NULL is a no-op.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_free(result: *mut polar_license_usage_result) {
    ffi_boundary! { out::free(result) }
}

/// What the report came to (`POLAR_LICENSE_USAGE_ERROR_NONE`: recorded; `_INVALID_INPUT` for
/// NULL).
#[no_mangle]
pub extern "C" fn polar_license_usage_result_error(
    result: *const polar_license_usage_result,
) -> polar_license_usage_error {
    ffi_boundary! { read(result, |r| r.error) }
}

/// The reason code (docs/interfaces.md §1): `CREDITS_EXHAUSTED`, Polar's denial (`NOT_FOUND`,
/// …), `RATE_LIMITED`, `INVALID_INPUT`, `OFFLINE`, `SERVER_ERROR`, `PROTOCOL_ERROR`; `NONE`
/// when recorded, for a backlog, or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_reason(
    result: *const polar_license_usage_result,
) -> polar_license_reason {
    ffi_boundary! { read(result, |r| r.reason) }
}

/// The failure's name for scripts (`"credits_exhausted"`, `"usage_backlog"`,
/// `"invalid_input"`, `"offline"`, a denial's reason code); `""` when recorded. Owned by the
/// result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_code(
    result: *const polar_license_usage_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.code.as_ptr()) }
}

/// The failure in one sentence (`""` when recorded). Owned by the result. Never NULL. It holds
/// no whole key.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_message(
    result: *const polar_license_usage_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.message.as_ptr()) }
}

/// For a report not recorded: the core's one sentence and next step to show the person using
/// the app (for `CREDITS_EXHAUSTED`, the backlog, Polar's denial), the same words as every
/// face's; `""` when recorded. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_user_message(
    result: *const polar_license_usage_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.user_message.as_ptr()) }
}

/// For a report not recorded: the next step alone, the second half of
/// `polar_license_usage_result_user_message`; `""` when recorded. Owned by the result. Never
/// NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_next_step(
    result: *const polar_license_usage_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.next_step.as_ptr()) }
}

/// The report's idempotency id (the one given, or the one made): send it again with this id
/// and it counts once. `""` when the report was refused before it had one, or for NULL. Owned
/// by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_id(
    result: *const polar_license_usage_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.id.as_ptr()) }
}

/// Whether the relay had recorded a report with this id before (counted once). `false` for
/// NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_duplicate(
    result: *const polar_license_usage_result,
) -> bool {
    ffi_boundary! { read(result, |r| r.duplicate) }
}

/// The meter's balance as the relay knows it after this report (recorded, or
/// `CREDITS_EXHAUSTED`): writes it to `*out_balance` and returns `true`; `false` (nothing
/// written) when the relay has not read it yet, or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_balance(
    result: *const polar_license_usage_result,
    out_balance: *mut f64,
) -> bool {
    ffi_boundary! {
        check_out!(out_balance);
        read(result, |r| out::write_some(out_balance, r.balance))
    }
}

/// For `BACKLOG` and `RATE_LIMITED`, the seconds to wait as the relay said them: writes them
/// to `*out_seconds` and returns `true`; `false` (nothing written) when not known.
#[no_mangle]
pub extern "C" fn polar_license_usage_result_retry_after(
    result: *const polar_license_usage_result,
    out_seconds: *mut u64,
) -> bool {
    ffi_boundary! {
        check_out!(out_seconds);
        read(result, |r| out::write_some(out_seconds, r.retry_after))
    }
}
