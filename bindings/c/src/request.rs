//! `polar_license_request`: the inputs of validate, activate and an explicit check.
//!
//! Conditions and meta are added one typed entry at a time (string, integer, float or
//! boolean), never as a JSON string: C code cannot get the quoting wrong, and each value's
//! JSON type is the C type it was given in. Everything is checked (UUIDs, sizes, counts) when
//! the request is sent, and a bad value comes back as a result with reason `invalid_input`
//! naming the field, before any request leaves the machine.

use super::enums::polar_license_status;
use super::out;
use polar_license::metadata::{MetaValue, Metadata};
use std::ffi::c_char;

/// The inputs of one call (opaque). Made by `polar_license_request_new` with the license key,
/// filled by the `polar_license_request_set_*` / `_add_*` functions, freed by
/// `polar_license_request_free`. A request is only read by the calls it is passed to, so it
/// may be reused, and used from several threads at once while nobody changes it.
#[derive(Debug, Clone, Default)]
pub struct polar_license_request {
    pub(crate) key: String,
    pub(crate) label: Option<String>,
    pub(crate) activation_id: Option<String>,
    pub(crate) benefit_id: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) increment_usage: Option<i64>,
    pub(crate) conditions: Metadata,
    pub(crate) meta: Metadata,
}

/// Makes a request for the license key `key` and writes it to `*out_request`.
#[no_mangle]
pub extern "C" fn polar_license_request_new(
    key: *const c_char,
    out_request: *mut *mut polar_license_request,
) -> polar_license_status {
    ffi_boundary! {
        let key = try_str!(key);
        check_out!(out_request);
        let request = polar_license_request {
            key: key.to_string(),
            ..polar_license_request::default()
        };
        out::give(out_request, request);
        polar_license_status::Ok
    }
}

/// Frees a request. NULL is a no-op.
#[no_mangle]
pub extern "C" fn polar_license_request_free(request: *mut polar_license_request) {
    ffi_boundary! { out::free(request) }
}

/// Sets a text field of `request`.
fn set_text(
    request: *mut polar_license_request,
    value: *const c_char,
    field: fn(&mut polar_license_request) -> &mut Option<String>,
) -> polar_license_status {
    let request = try_mut!(request);
    let value = try_str!(value);
    *field(request) = Some(value.to_string());
    polar_license_status::Ok
}

/// Sets the activation's label (activate only). Not set, or `""`: the core's default label
/// for this machine, its host name and OS (e.g. `jane-laptop (Linux)`), so the customer's
/// device list tells machines apart; never a secret.
#[no_mangle]
pub extern "C" fn polar_license_request_set_label(
    request: *mut polar_license_request,
    label: *const c_char,
) -> polar_license_status {
    ffi_boundary! { set_text(request, label, |r| &mut r.label) }
}

/// Sets the activation id to validate (validate and check only; a UUID v4).
#[no_mangle]
pub extern "C" fn polar_license_request_set_activation_id(
    request: *mut polar_license_request,
    activation_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! { set_text(request, activation_id, |r| &mut r.activation_id) }
}

/// Requires the key to belong to this benefit (validate and check only; a UUID v4).
#[no_mangle]
pub extern "C" fn polar_license_request_set_benefit_id(
    request: *mut polar_license_request,
    benefit_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! { set_text(request, benefit_id, |r| &mut r.benefit_id) }
}

/// Requires the key to belong to this customer (validate and check only; a UUID v4).
#[no_mangle]
pub extern "C" fn polar_license_request_set_customer_id(
    request: *mut polar_license_request,
    customer_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! { set_text(request, customer_id, |r| &mut r.customer_id) }
}

/// Adds `increment` to the key's usage counter (validate and check only; 0 to 2^31-1).
#[no_mangle]
pub extern "C" fn polar_license_request_set_increment_usage(
    request: *mut polar_license_request,
    increment: i64,
) -> polar_license_status {
    ffi_boundary! {
        let request = try_mut!(request);
        request.increment_usage = Some(increment);
        polar_license_status::Ok
    }
}

/// Which metadata object an entry goes to.
#[derive(Clone, Copy)]
enum Target {
    Conditions,
    Meta,
}

fn add_entry(
    request: *mut polar_license_request,
    target: Target,
    name: *const c_char,
    value: impl FnOnce() -> Result<MetaValue, polar_license_status>,
) -> polar_license_status {
    let request = try_mut!(request);
    let name = try_str!(name);
    let value = match value() {
        Ok(v) => v,
        Err(status) => return status,
    };
    let map = match target {
        Target::Conditions => &mut request.conditions,
        Target::Meta => &mut request.meta,
    };
    map.insert(name.to_string(), value);
    polar_license_status::Ok
}

fn string_value(value: *const c_char) -> Result<MetaValue, polar_license_status> {
    match super::strings::str_arg(value) {
        Ok(s) => Ok(MetaValue::Str(s.to_string())),
        Err(super::strings::StrError::Null) => Err(polar_license_status::NullArgument),
        Err(super::strings::StrError::Utf8) => Err(polar_license_status::InvalidUtf8),
    }
}

/// Adds (or replaces) the condition `name` with a string value (1-500 characters). Activate
/// stores conditions; validate compares them with the activation's.
#[no_mangle]
pub extern "C" fn polar_license_request_add_condition_string(
    request: *mut polar_license_request,
    name: *const c_char,
    value: *const c_char,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Conditions, name, || string_value(value)) }
}

/// Adds (or replaces) the condition `name` with an integer value.
#[no_mangle]
pub extern "C" fn polar_license_request_add_condition_int(
    request: *mut polar_license_request,
    name: *const c_char,
    value: i64,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Conditions, name, || Ok(MetaValue::Int(value))) }
}

/// Adds (or replaces) the condition `name` with a floating-point value (must be finite).
#[no_mangle]
pub extern "C" fn polar_license_request_add_condition_double(
    request: *mut polar_license_request,
    name: *const c_char,
    value: f64,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Conditions, name, || Ok(MetaValue::Float(value))) }
}

/// Adds (or replaces) the condition `name` with a boolean value.
#[no_mangle]
pub extern "C" fn polar_license_request_add_condition_bool(
    request: *mut polar_license_request,
    name: *const c_char,
    value: bool,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Conditions, name, || Ok(MetaValue::Bool(value))) }
}

/// Adds (or replaces) the meta entry `name` with a string value (activate only; 1-500
/// characters).
#[no_mangle]
pub extern "C" fn polar_license_request_add_meta_string(
    request: *mut polar_license_request,
    name: *const c_char,
    value: *const c_char,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Meta, name, || string_value(value)) }
}

/// Adds (or replaces) the meta entry `name` with an integer value (activate only).
#[no_mangle]
pub extern "C" fn polar_license_request_add_meta_int(
    request: *mut polar_license_request,
    name: *const c_char,
    value: i64,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Meta, name, || Ok(MetaValue::Int(value))) }
}

/// Adds (or replaces) the meta entry `name` with a floating-point value (activate only; must
/// be finite).
#[no_mangle]
pub extern "C" fn polar_license_request_add_meta_double(
    request: *mut polar_license_request,
    name: *const c_char,
    value: f64,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Meta, name, || Ok(MetaValue::Float(value))) }
}

/// Adds (or replaces) the meta entry `name` with a boolean value (activate only).
#[no_mangle]
pub extern "C" fn polar_license_request_add_meta_bool(
    request: *mut polar_license_request,
    name: *const c_char,
    value: bool,
) -> polar_license_status {
    ffi_boundary! { add_entry(request, Target::Meta, name, || Ok(MetaValue::Bool(value))) }
}
