//! `polar_license_feature_access`: the answer to "may this copy use feature X?"
//! (`polar_license_client_has_feature`), read through accessors.

use super::enums::{polar_license_feature_why, polar_license_reason, polar_license_source};
use super::out;
use super::strings::to_cstring;
use polar_license::features::FeatureAccess;
use polar_license::grace::Source;
use std::ffi::{c_char, CString};

/// The answer to "may this copy use feature X?" (opaque): made by
/// `polar_license_client_has_feature`, read with the `polar_license_feature_access_*`
/// accessors (from any thread), freed by `polar_license_feature_access_free`.
#[derive(Debug)]
pub struct polar_license_feature_access {
    feature: CString,
    granted: bool,
    why: polar_license_feature_why,
    license_reason: polar_license_reason,
    remaining_usage: Option<i64>,
    source: polar_license_source,
}

impl From<FeatureAccess> for polar_license_feature_access {
    fn from(a: FeatureAccess) -> Self {
        polar_license_feature_access {
            feature: to_cstring(&a.feature),
            // Granted only with the one why that says so.
            granted: a.granted && a.why == polar_license::features::FeatureWhy::Granted,
            why: a.why.into(),
            license_reason: a
                .license_reason
                .map_or(polar_license_reason::None, Into::into),
            remaining_usage: a.remaining_usage,
            source: match a.source {
                Some(Source::Online) => polar_license_source::Online,
                Some(Source::Cache) => polar_license_source::Cache,
                None => polar_license_source::None,
            },
        }
    }
}

/// Frees an access. NULL is a no-op. Its feature string is invalid afterwards.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_free(access: *mut polar_license_feature_access) {
    ffi_boundary! { out::free(access) }
}

/// `true` only when the feature is granted (`false` for NULL): the one test an app needs
/// before unlocking the feature.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_granted(
    access: *const polar_license_feature_access,
) -> bool {
    ffi_boundary! { try_ref!(access).granted }
}

/// Why the feature is or is not granted (`POLAR_LICENSE_FEATURE_WHY_NONE` for NULL);
/// `polar_license_feature_why_code` gives its snake_case code.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_why(
    access: *const polar_license_feature_access,
) -> polar_license_feature_why {
    ffi_boundary! { try_ref!(access).why }
}

/// For `POLAR_LICENSE_FEATURE_WHY_LICENSE_NOT_VALID`: why the license is not valid (`inactive`,
/// `offline`, `grace_expired`, …); `POLAR_LICENSE_REASON_NONE` otherwise and for NULL.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_license_reason(
    access: *const polar_license_feature_access,
) -> polar_license_reason {
    ffi_boundary! { try_ref!(access).license_reason }
}

/// For a metered feature on a key with a usage limit: the usages left, `limit_usage - usage`
/// (0 or negative when exhausted). Writes it to `*out_remaining` and returns `true`, or returns
/// `false` (and writes nothing) when there is no count: not metered, no limit, not licensed,
/// or NULL.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_remaining_usage(
    access: *const polar_license_feature_access,
    out_remaining: *mut i64,
) -> bool {
    ffi_boundary! {
        let a = try_ref!(access);
        check_out!(out_remaining);
        out::write_some(out_remaining, a.remaining_usage)
    }
}

/// Where the licensed verdict the answer rests on came from: `POLAR_LICENSE_SOURCE_ONLINE`,
/// `POLAR_LICENSE_SOURCE_CACHE` (within the grace period), or `POLAR_LICENSE_SOURCE_NONE`
/// when the verdict does not license (and for NULL).
#[no_mangle]
pub extern "C" fn polar_license_feature_access_source(
    access: *const polar_license_feature_access,
) -> polar_license_source {
    ffi_boundary! { try_ref!(access).source }
}

/// The feature asked about.
///
/// Never NULL (`""` for a NULL access); owned by the access, valid until
/// `polar_license_feature_access_free`.
#[no_mangle]
pub extern "C" fn polar_license_feature_access_feature(
    access: *const polar_license_feature_access,
) -> *const c_char {
    ffi_boundary! { try_ref!(access).feature.as_ptr() }
}
