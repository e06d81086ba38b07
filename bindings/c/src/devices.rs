//! Devices (issue #64): out of activations, sign in with the code Polar emails, list the key's
//! devices (this machine's marked) and free one by id, then activate here.
//!
//! The session lives in the client's memory only (never written, never logged) for its hour;
//! the order of steps is the core's (`Licensing::list_devices`, the sans-IO
//! `polar_license::portal::ListDevices`), this file only hands its answers to C.

use super::client::polar_license_client;
use super::enums::polar_license_reason;
use super::out;
use super::panic::read;
use super::result::polar_license_result;
use super::strings::to_cstring;
use polar_license::error::Verdict;
use polar_license::portal::{KeyDevices, PortalError};
use std::ffi::{c_char, CString};

/// Why a portal call (`polar_license_client_request_sign_in_code`, `_sign_in`,
/// `_list_devices`) failed, as `polar_license_portal_result_error` tells it. Its name for
/// scripts (`polar_license_portal_result_code`) is the CLI's `portal_error`
/// (docs/interfaces.md §2).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_portal_error {
    /// No failure: the call did what it was asked.
    None = 0,
    /// `invalid_input`: an email, code or key refused before anything was sent
    /// (`polar_license_portal_result_message` names the field).
    InvalidInput = 1,
    /// `offline` (or `server_error`, `protocol_error`: the code names which): no answer of
    /// Polar's; try again later.
    Offline = 2,
    /// `code_invalid_or_expired`: the code is wrong, used, or older than 30 minutes: ask for a
    /// new one.
    CodeInvalidOrExpired = 3,
    /// `session_expired`: the session's hour is over: sign in again (the client forgot it).
    SessionExpired = 4,
    /// `not_signed_in`: no session in this client: sign in first.
    NotSignedIn = 5,
    /// `device_management_off`: the portal lists no device although this machine holds one:
    /// the seller must enable "customers can manage activations" (`enable_customer_admin`) on
    /// the product's license-key benefit. Freeing a device by its id still works.
    DeviceManagementOff = 6,
    /// `rate_limited`: too many tries; `polar_license_portal_result_retry_after` says how long
    /// to wait (the sign-in routes block an address 900 s).
    RateLimited = 7,
    /// `key_not_found`: the key is not among the signed-in customer's keys.
    KeyNotFound = 8,
    /// `customer_selection_required`: several customers have this email: ask again naming one
    /// (`polar_license_portal_result_customer_id`).
    CustomerSelectionRequired = 9,
    /// `refused`: another refusal of Polar's (the message has its status and words).
    Refused = 10,
}

face_errors!(polar_license_portal_error);

/// One device of a list, as C reads it.
struct DeviceRow {
    id: CString,
    label: CString,
    activated_at: i64,
    this_machine: bool,
    /// The platform family its `meta` records (`""`: none).
    platform: CString,
    /// When the seller's relay last saw it, unix seconds (`-1`: not known).
    last_seen: i64,
}

/// One recoverable key, as C reads it (never the whole key).
struct KeyRow {
    id: CString,
    display_key: CString,
    expires_at: Option<i64>,
}

/// The answer of a portal call (opaque): done, or a typed failure; for a device list, the
/// devices. Made by the portal calls, freed by `polar_license_portal_result_free`.
pub struct polar_license_portal_result {
    error: polar_license_portal_error,
    reason: polar_license_reason,
    code: CString,
    message: CString,
    retry_after: Option<u64>,
    devices: Vec<DeviceRow>,
    limit_activations: Option<i64>,
    key_id: CString,
    customers: Vec<(CString, Option<CString>)>,
    keys: Vec<KeyRow>,
    /// A followed rotation's new key (whole: the app keeps it) and the activation Polar
    /// validated it with.
    new_key: CString,
    display_key: CString,
    activation_id: CString,
}

impl polar_license_portal_result {
    fn done() -> polar_license_portal_result {
        polar_license_portal_result {
            error: polar_license_portal_error::None,
            reason: polar_license_reason::None,
            code: CString::default(),
            message: CString::default(),
            retry_after: None,
            devices: Vec::new(),
            limit_activations: None,
            key_id: CString::default(),
            customers: Vec::new(),
            keys: Vec::new(),
            new_key: CString::default(),
            display_key: CString::default(),
            activation_id: CString::default(),
        }
    }

    fn listed(found: &KeyDevices) -> polar_license_portal_result {
        let mut r = polar_license_portal_result::done();
        r.limit_activations = found.limit_activations;
        r.key_id = to_cstring(&found.key_id);
        r.devices = found
            .devices
            .iter()
            .map(|d| DeviceRow {
                id: to_cstring(&d.id),
                label: to_cstring(&d.label),
                activated_at: d.activated_at.unix_timestamp(),
                this_machine: d.this_machine,
                platform: to_cstring(d.platform.as_deref().unwrap_or("")),
                last_seen: d.last_seen.map_or(-1, |t| t.unix_timestamp()),
            })
            .collect();
        r
    }

    fn failed(error: &PortalError) -> polar_license_portal_result {
        use polar_license_portal_error as E;
        let kind = match error {
            PortalError::Invalid(_) => E::InvalidInput,
            PortalError::Offline(_) | PortalError::Protocol(_) => E::Offline,
            PortalError::CodeInvalidOrExpired => E::CodeInvalidOrExpired,
            PortalError::SessionExpired => E::SessionExpired,
            PortalError::NotSignedIn => E::NotSignedIn,
            PortalError::DeviceManagementOff => E::DeviceManagementOff,
            PortalError::RateLimited(_) => E::RateLimited,
            PortalError::NotFound => E::KeyNotFound,
            PortalError::CustomerSelectionRequired(_) => E::CustomerSelectionRequired,
            _ => E::Refused,
        };
        let mut r = polar_license_portal_result::done();
        r.error = kind;
        r.reason = error
            .reason()
            .map_or(polar_license_reason::None, Into::into);
        r.code = to_cstring(error.code());
        r.message = to_cstring(&error.to_string());
        if let PortalError::RateLimited(wait) = error {
            r.retry_after = *wait;
        }
        if let PortalError::CustomerSelectionRequired(customers) = error {
            r.customers = customers
                .iter()
                .map(|(id, name)| (to_cstring(id), name.as_deref().map(to_cstring)))
                .collect();
        }
        r
    }

    fn of(answer: Result<polar_license_portal_result, PortalError>) -> polar_license_portal_result {
        answer.unwrap_or_else(|e| polar_license_portal_result::failed(&e))
    }
}

/// The body of a portal call, in the order every result call keeps: the client (NULL:
/// NULL_ARGUMENT), this thread's last error cleared, the arguments, `out_result` checked, then
/// the result written (OK).
macro_rules! portal_call {
    ($client:ident, $out:ident, [$($args:tt)*] $body:block) => {
        ffi_boundary! {
            let $client = try_ref!($client);
            $client.begin();
            $($args)*
            if $out.is_null() {
                return $client.fail(
                    super::enums::polar_license_status::NullArgument,
                    "out_result is NULL",
                );
            }
            let result: polar_license_portal_result = $body;
            out::give($out, result);
            super::enums::polar_license_status::Ok
        }
    };
}

/// Asks Polar to email a 6-character sign-in code to `email` (valid 30 minutes, single use).
/// `customer_id` is NULL, or one of the ids a `CUSTOMER_SELECTION_REQUIRED` answer listed.
/// Done whether or not the email is a customer's (Polar does not say: tell the user a code is
/// on its way if it is). Failures: `INVALID_INPUT` (not an email; nothing sent), `RATE_LIMITED`
/// (6 a minute, 12 an hour per address, then 900 s), `CUSTOMER_SELECTION_REQUIRED`, `OFFLINE`.
///
/// Returns `POLAR_LICENSE_STATUS_OK` and writes a portal result to `*out_result` whatever
/// Polar answered; any other status means the call itself was refused (NULL, not UTF-8: see
/// `polar_license_client_last_error`) and nothing was written.
#[no_mangle]
pub extern "C" fn polar_license_client_request_sign_in_code(
    client: *const polar_license_client,
    email: *const c_char,
    customer_id: *const c_char,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [
        let email = arg_str!(client, email, "email");
        let customer_id = if customer_id.is_null() {
            None
        } else {
            Some(arg_str!(client, customer_id, "customer_id"))
        };
    ] {
        let asked = client
            .licensing()
            .client()
            .request_sign_in_code_for(email, customer_id);
        polar_license_portal_result::of(asked.map(|()| polar_license_portal_result::done()))
    })
}

/// Signs in with the emailed `code` (any case; spaces around it ignored): the session (one
/// hour, no refresh) is held in this client's memory, for every thread, in place of any
/// earlier one; it is never written to disk, never logged, and forgotten with
/// `polar_license_client_sign_out` or the client's free. Failures: `INVALID_INPUT` (not 6
/// letters and digits; nothing sent), `CODE_INVALID_OR_EXPIRED`, `RATE_LIMITED`, `OFFLINE`.
/// Status and out-pointer as for `polar_license_client_request_sign_in_code`.
#[no_mangle]
pub extern "C" fn polar_license_client_sign_in(
    client: *const polar_license_client,
    code: *const c_char,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [let code = arg_str!(client, code, "code");] {
        let signed = client.licensing().client().sign_in(code).map(|token| {
            client.set_session(Some(token));
            polar_license_portal_result::done()
        });
        polar_license_portal_result::of(signed)
    })
}

/// Forgets the session `polar_license_client_sign_in` kept (none: nothing to do). NULL is a
/// no-op.
#[no_mangle]
pub extern "C" fn polar_license_client_sign_out(client: *const polar_license_client) {
    ffi_boundary! {
        let client = try_ref!(client);
        client.set_session(None);
    }
}

/// Whether this client holds a session (`polar_license_client_sign_in` succeeded, and neither
/// a sign-out nor Polar's "expired" came since). `false` for NULL.
#[no_mangle]
pub extern "C" fn polar_license_client_signed_in(client: *const polar_license_client) -> bool {
    ffi_boundary! {
        let client = try_ref!(client);
        client.session().is_some()
    }
}

/// The devices (live activations) of `key` through the session, oldest first, the one this
/// machine's cache remembers marked (`polar_license_portal_result_device_this_machine`), and
/// the key's activation limit. Failures: `NOT_SIGNED_IN` (no session: nothing sent),
/// `SESSION_EXPIRED` (its hour is over: the client forgets it; sign in again), `KEY_NOT_FOUND`
/// (not among the signed-in customer's keys), `DEVICE_MANAGEMENT_OFF` (the portal lists no
/// device while this machine holds one: the seller must enable `enable_customer_admin`; free by
/// id still works), `RATE_LIMITED`, `INVALID_INPUT` (a key every request refuses), `OFFLINE`.
/// Status and out-pointer as for `polar_license_client_request_sign_in_code`.
#[no_mangle]
pub extern "C" fn polar_license_client_list_devices(
    client: *const polar_license_client,
    key: *const c_char,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [let key = arg_str!(client, key, "key");] {
        // Polar no longer knowing the session: it is forgotten (nothing kept that cannot be used).
        let listed = client.signed_in(|session| client.licensing().list_devices(session, key));
        polar_license_portal_result::of(listed.map(|found| polar_license_portal_result::listed(&found)))
    })
}

/// The devices (live activations) of `key` through the seller's relay at `relay_url` (issue
/// #64: its `POST /v1/devices/list`), with no session: the key proves it is the caller's, and
/// the relay reads every live activation with the seller's token, whatever the product's
/// device management. Oldest first, the one this machine's cache remembers marked, and the
/// key's activation limit, as `polar_license_client_list_devices`. An app lists this way
/// while `polar_license_client_signed_in` is false. Failures: `KEY_NOT_FOUND` (a key Polar
/// does not know), `RATE_LIMITED` (the relay's per-key or per-address rate, or its token's
/// budget: the wait in `polar_license_portal_result_retry_after`), `INVALID_INPUT` (a relay
/// URL that is not `https://`, or `http://` on loopback; a key every request refuses: nothing
/// sent), `OFFLINE` (the relay, or Polar behind it, out of reach). Status and out-pointer as
/// for `polar_license_client_request_sign_in_code`.
#[no_mangle]
pub extern "C" fn polar_license_client_list_devices_via_relay(
    client: *const polar_license_client,
    relay_url: *const c_char,
    key: *const c_char,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [
        let relay_url = arg_str!(client, relay_url, "relay_url");
        let key = arg_str!(client, key, "key");
    ] {
        let listed = client.licensing().list_devices_via_relay(relay_url, key);
        polar_license_portal_result::of(listed.map(|found| polar_license_portal_result::listed(&found)))
    })
}

/// Frees the device `activation_id` of `key` (an id from `polar_license_client_list_devices`):
/// the public deactivate, which needs no session. When it is this machine's activation, the
/// cache forgets it (as `polar_license_client_deactivate`). Then activate here with
/// `polar_license_client_activate`. Outcome `POLAR_LICENSE_OUTCOME_DONE`, or a denial
/// (`POLAR_LICENSE_REASON_NOT_FOUND`: already freed, or not this key's) or an error
/// (`invalid_input` naming `key` or `activation_id`; `offline`, `rate_limited`, …). Status and
/// out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_free_device(
    client: *const polar_license_client,
    key: *const c_char,
    activation_id: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> super::enums::polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        let key = arg_str!(client, key, "key");
        let activation_id = arg_str!(client, activation_id, "activation_id");
        if out_result.is_null() {
            return client.fail(
                super::enums::polar_license_status::NullArgument,
                "out_result is NULL",
            );
        }
        let freed = client.licensing().deactivate_update(key, Some(activation_id));
        let result = polar_license_result::deactivated(freed.answer, Some(activation_id));
        out::give(out_result, result);
        super::enums::polar_license_status::Ok
    }
}

/// Frees a portal result. NULL is a no-op.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_free(result: *mut polar_license_portal_result) {
    ffi_boundary! { out::free(result) }
}

/// Why the call failed (`POLAR_LICENSE_PORTAL_ERROR_NONE`: it did what it was asked;
/// `_INVALID_INPUT` for NULL).
#[no_mangle]
pub extern "C" fn polar_license_portal_result_error(
    result: *const polar_license_portal_result,
) -> polar_license_portal_error {
    ffi_boundary! { read(result, |r| r.error) }
}

/// The failure's name for scripts, as the CLI's `portal_error` (`"session_expired"`,
/// `"device_management_off"`, …; a failure with no portal answer: its reason code, such as
/// `"invalid_input"` or `"offline"`); `""` on success. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_code(
    result: *const polar_license_portal_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.code.as_ptr()) }
}

/// The reason code of the failure (docs/interfaces.md §1), as the CLI's `--json` gives it with
/// `portal_error`: `RATE_LIMITED`, `NOT_FOUND` (`KEY_NOT_FOUND`), `INVALID_INPUT` (bad input,
/// `NOT_SIGNED_IN`, `CUSTOMER_SELECTION_REQUIRED`), `OFFLINE`, `SERVER_ERROR`,
/// `PROTOCOL_ERROR`; `NONE` for the portal's own refusals (a wrong code, an expired session,
/// device management off, `REFUSED`), on success, or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_reason(
    result: *const polar_license_portal_result,
) -> polar_license_reason {
    ffi_boundary! { read(result, |r| r.reason) }
}

/// The failure in one sentence with what to do (`""` on success). Owned by the result. Never
/// NULL. It holds no session, no code and no whole key.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_message(
    result: *const polar_license_portal_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.message.as_ptr()) }
}

/// For `RATE_LIMITED`, the seconds to wait as Polar said them: writes them to
/// `*out_seconds` and returns `true`; `false` (nothing written) when not known.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_retry_after(
    result: *const polar_license_portal_result,
    out_seconds: *mut u64,
) -> bool {
    ffi_boundary! {
        check_out!(out_seconds);
        read(result, |r| out::write_some(out_seconds, r.retry_after))
    }
}

/// How many devices a `polar_license_client_list_devices` result lists (0 otherwise, or for
/// NULL).
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_count(
    result: *const polar_license_portal_result,
) -> usize {
    ffi_boundary! { read(result, |r| r.devices.len()) }
}

/// The activation id of device `index` (what `polar_license_client_free_device` takes);
/// `""` when `index` is out of range or for NULL. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_id(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).map_or(c"".as_ptr(), |d| d.id.as_ptr()))
    }
}

/// The label device `index` was activated with; `""` when out of range. Owned by the result.
/// Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_label(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).map_or(c"".as_ptr(), |d| d.label.as_ptr()))
    }
}

/// When device `index` was activated, unix seconds; `-1` when out of range or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_activated_at(
    result: *const polar_license_portal_result,
    index: usize,
) -> i64 {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).map_or(-1, |d| d.activated_at))
    }
}

/// Whether device `index` is this machine's (the activation its cache remembers for the key,
/// or the one whose `meta` records this machine's fingerprint: a reinstall knows its own row);
/// `false` when out of range or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_this_machine(
    result: *const polar_license_portal_result,
    index: usize,
) -> bool {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).is_some_and(|d| d.this_machine))
    }
}

/// The platform family device `index` recorded when it was activated (`linux/x86_64`,
/// `macos/aarch64`, `windows/x86_64`, or what a JavaScript app named), to tell devices apart;
/// `""` when it recorded none or out of range. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_platform(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).map_or(c"".as_ptr(), |d| d.platform.as_ptr()))
    }
}

/// When the seller's relay last saw device `index` validated, unix seconds; `-1` when not
/// known (no relay, or it keeps no record of it), out of range or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_device_last_seen(
    result: *const polar_license_portal_result,
    index: usize,
) -> i64 {
    ffi_boundary! {
        read(result, |r| r.devices.get(index).map_or(-1, |d| d.last_seen))
    }
}

/// The key's activation limit, from a device list: writes it to `*out_limit` and returns
/// `true`; `false` (nothing written) when the key has none or the result is no list.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_limit_activations(
    result: *const polar_license_portal_result,
    out_limit: *mut i64,
) -> bool {
    ffi_boundary! {
        check_out!(out_limit);
        read(result, |r| out::write_some(out_limit, r.limit_activations))
    }
}

/// For `CUSTOMER_SELECTION_REQUIRED`, how many customers have the email (0 otherwise).
#[no_mangle]
pub extern "C" fn polar_license_portal_result_customer_count(
    result: *const polar_license_portal_result,
) -> usize {
    ffi_boundary! { read(result, |r| r.customers.len()) }
}

/// The id of customer `index` (pass it to `polar_license_client_request_sign_in_code`); `""`
/// when out of range. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_customer_id(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.customers.get(index).map_or(c"".as_ptr(), |c| c.0.as_ptr()))
    }
}

/// The name of customer `index`, `""` when Polar gave none or out of range. Owned by the
/// result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_customer_name(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| {
            r.customers
                .get(index)
                .and_then(|c| c.1.as_ref())
                .map_or(c"".as_ptr(), |n| n.as_ptr())
        })
    }
}

/// Key recovery ("I lost my key"): the signed-in customer's keys this machine can activate
/// (granted and unexpired, newest first: the core's `Licensing::recoverable_keys`), read with
/// `polar_license_portal_result_key_count`, `_key_id`, `_key_display` and `_key_expires_at`;
/// never the whole key. Activate one here with `polar_license_client_recover`. Failures:
/// `NOT_SIGNED_IN` (nothing sent), `SESSION_EXPIRED` (the client forgets it), `RATE_LIMITED`,
/// `OFFLINE`. Status and out-pointer as for `polar_license_client_request_sign_in_code`.
#[no_mangle]
pub extern "C" fn polar_license_client_recoverable_keys(
    client: *const polar_license_client,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [] {
        let listed = client.signed_in(|session| client.licensing().recoverable_keys(session));
        polar_license_portal_result::of(listed.map(|keys| {
            let mut r = polar_license_portal_result::done();
            r.keys = keys
                .iter()
                .map(|k| KeyRow {
                    id: to_cstring(&k.id),
                    display_key: to_cstring(&k.display_key),
                    expires_at: k.expires_at.map(|e| e.unix_timestamp()),
                })
                .collect();
            r
        }))
    })
}

/// The failure of recovery's portal step as an activate result's error: the portal's own
/// failures are `invalid_input` naming `session` (sign in again) or `key_id` (not a recoverable
/// key), the rest keep their reason (`offline`, `rate_limited`, …).
fn recovery_error(e: &PortalError) -> polar_license::Error {
    use polar_license::Error;
    match e {
        PortalError::Invalid(e) | PortalError::Offline(e) | PortalError::Protocol(e) => e.clone(),
        PortalError::RateLimited(wait) => Error::RateLimited { retry_after: *wait },
        PortalError::NotFound => Error::invalid(
            "key_id",
            "is not one of the keys polar_license_client_recoverable_keys lists",
        ),
        other => Error::invalid("session", other.to_string()),
    }
}

/// Activates here the recoverable key `key_id` (an id from
/// `polar_license_client_recoverable_keys`) with `label`, through the session: the whole key
/// goes only into the activation (and is remembered when the config's `remember_keys` is on:
/// then `polar_license_client_check_remembered` checks it). The result is an activate's
/// (`polar_license_client_activate`): `POLAR_LICENSE_OUTCOME_DONE` with the activation, a
/// denial (`activation_limit`: free a device first), or an error: `invalid_input` naming
/// `session` (not signed in, or the session expired: the client forgets it) or `key_id` (not a
/// recoverable key of the customer; nothing activated), `offline`, `rate_limited`, ….
/// Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_recover(
    client: *const polar_license_client,
    key_id: *const c_char,
    label: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> super::enums::polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        let key_id = arg_str!(client, key_id, "key_id");
        let label = arg_str!(client, label, "label");
        if out_result.is_null() {
            return client.fail(
                super::enums::polar_license_status::NullArgument,
                "out_result is NULL",
            );
        }
        let recovered =
            client.signed_in(|session| client.licensing().recover_key(session, key_id, label));
        let result = match recovered {
            Err(e) => polar_license_result::error(&recovery_error(&e)),
            Ok(activated) => polar_license_result::activated(activated),
        };
        out::give(out_result, result);
        super::enums::polar_license_status::Ok
    }
}

/// How many keys a `polar_license_client_recoverable_keys` result lists (0 otherwise, or for
/// NULL).
#[no_mangle]
pub extern "C" fn polar_license_portal_result_key_count(
    result: *const polar_license_portal_result,
) -> usize {
    ffi_boundary! { read(result, |r| r.keys.len()) }
}

/// The record id of key `index` (what `polar_license_client_recover` takes); `""` when out of
/// range or for NULL. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_key_id(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.keys.get(index).map_or(c"".as_ptr(), |k| k.id.as_ptr()))
    }
}

/// The display form of key `index` (`****-6ED415`: show this, never the whole key); `""` when
/// out of range or for NULL. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_key_display(
    result: *const polar_license_portal_result,
    index: usize,
) -> *const c_char {
    ffi_boundary! {
        read(result, |r| r.keys.get(index).map_or(c"".as_ptr(), |k| k.display_key.as_ptr()))
    }
}

/// When key `index` expires, unix seconds: writes it to `*out_expires_at` and returns `true`;
/// `false` (nothing written) when it never expires, `index` is out of range, or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_key_expires_at(
    result: *const polar_license_portal_result,
    index: usize,
    out_expires_at: *mut i64,
) -> bool {
    ffi_boundary! {
        check_out!(out_expires_at);
        read(result, |r| {
            out::write_some(out_expires_at, r.keys.get(index).and_then(|k| k.expires_at))
        })
    }
}

/// Follows the rotated `old_key` (issue #64 item 4): rotation at Polar keeps a key's record id,
/// limits and activations, and Polar answers the old string `not_found` at once. Through the
/// session this client holds, the customer's keys are read for the record id this machine's
/// cache remembers of `old_key`'s license, and the new string is validated with the activation
/// that cache remembers (no slot is taken; the core's follow machine,
/// `polar_license::flow::follow::Follow`, orders every step). Once Polar grants it, the old
/// string's record is forgotten and, when the config's `remember_keys` is on and `old_key` was
/// the remembered key, the new one is remembered in its place.
///
/// Done (`POLAR_LICENSE_PORTAL_ERROR_NONE`): `polar_license_portal_result_new_key` (the whole
/// new key: keep it in place of the old one), `_display_key` and `_activation_id` (the one kept).
/// Failures: `NOT_SIGNED_IN` (no session: nothing sent), `SESSION_EXPIRED` (the client forgets
/// it; sign in again), `KEY_NOT_FOUND` (the customer has no key of that record id, or it was
/// not rotated: keep using `old_key`), `INVALID_INPUT` (nothing of `old_key`'s license is
/// cached here: no record id to follow; nothing sent), `RATE_LIMITED`, `OFFLINE`, and
/// `REFUSED` when Polar refuses the new string (`polar_license_portal_result_reason` has its
/// reason code, such as `POLAR_LICENSE_REASON_REVOKED`).
///
/// Threads: any thread, as the other portal calls (the session is the client's, for every
/// thread). Ownership: `old_key` is read during the call only; the result is the caller's, freed
/// with `polar_license_portal_result_free`. Status and out-pointer as for
/// `polar_license_client_request_sign_in_code` (`NULL_ARGUMENT`, `INVALID_UTF8` for `old_key`).
#[no_mangle]
pub extern "C" fn polar_license_client_follow_rotation(
    client: *const polar_license_client,
    old_key: *const c_char,
    out_result: *mut *mut polar_license_portal_result,
) -> super::enums::polar_license_status {
    portal_call!(client, out_result, [let old_key = arg_str!(client, old_key, "old_key");] {
        let followed =
            client.signed_in(|session| client.licensing().follow_rotation(session, old_key));
        polar_license_portal_result::of(followed.map(|(new, verdict)| match verdict {
            Verdict::Accepted(v) => {
                let mut r = polar_license_portal_result::done();
                r.new_key = to_cstring(new.expose());
                r.display_key = to_cstring(&new.redacted());
                r.key_id = to_cstring(&v.license_key.id);
                r.activation_id = to_cstring(v.activation.as_ref().map_or("", |a| a.id.as_str()));
                r
            }
            Verdict::Denied(d) => {
                let mut r = polar_license_portal_result::done();
                r.error = polar_license_portal_error::Refused;
                r.reason = d.reason.into();
                r.code = to_cstring(d.reason.code());
                r.message = to_cstring(&d.user_message());
                r.display_key = to_cstring(&new.redacted());
                r
            }
        }))
    })
}

/// A followed rotation's new key, whole (`polar_license_client_follow_rotation`: keep it in
/// place of the old one; never log it); `""` for any other result or NULL. Owned by the result.
/// Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_new_key(
    result: *const polar_license_portal_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.new_key.as_ptr()) }
}

/// A followed rotation's new key in display form (`****-6ED415`: show this); `""` for any other
/// result or NULL. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_display_key(
    result: *const polar_license_portal_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.display_key.as_ptr()) }
}

/// The activation a followed rotation's new key was validated with (the one this machine held
/// before the rotation); `""` for any other result or NULL. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_portal_result_activation_id(
    result: *const polar_license_portal_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.activation_id.as_ptr()) }
}
