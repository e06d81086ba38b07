//! The panic boundary and the NULL checks every `extern "C"` function starts with.
//!
//! A Rust panic must never unwind into C (that is undefined behaviour). `ffi_boundary!`
//! runs a function body under [`std::panic::catch_unwind`] and turns a panic into the
//! function's [`Boundary::on_panic`] value; `try_ref!`, `try_mut!` and `try_str!` turn
//! a NULL pointer or a non-UTF-8 string into an early return of [`Boundary::on_null`] /
//! [`Boundary::on_bad_utf8`].

use super::enums::{
    polar_license_cache_state, polar_license_entitlement, polar_license_feature_why,
    polar_license_outcome, polar_license_reason, polar_license_relay_source, polar_license_source,
    polar_license_status, polar_license_stopped, polar_license_trial,
};
use std::ffi::c_char;

/// What an `extern "C"` function returns when it cannot do its work.
pub(crate) trait Boundary: Sized {
    /// The value returned after a caught panic.
    fn on_panic() -> Self;
    /// The value returned when a required pointer is NULL.
    fn on_null() -> Self;
    /// The value returned when a string argument is not UTF-8.
    fn on_bad_utf8() -> Self {
        Self::on_null()
    }
}

impl Boundary for polar_license_status {
    fn on_panic() -> Self {
        polar_license_status::Panic
    }
    fn on_null() -> Self {
        polar_license_status::NullArgument
    }
    fn on_bad_utf8() -> Self {
        polar_license_status::InvalidUtf8
    }
}

/// The types whose value after a panic is the same as for a NULL argument: that neutral value.
macro_rules! neutral {
    ($($(#[$doc:meta])* $ty:ty => $value:expr;)*) => {$(
        $(#[$doc])*
        impl Boundary for $ty {
            fn on_panic() -> Self {
                $value
            }
            fn on_null() -> Self {
                $value
            }
        }
    )*};
}

neutral! {
    /// String accessors never return NULL: an empty static string instead.
    *const c_char => c"".as_ptr();
    /// Numeric accessors: `-1` means "not known".
    i64 => -1;
    u32 => 0;
    /// Counts (a device list's length): none.
    usize => 0;
    bool => false;
    () => ();
    /// An outcome that cannot be read is never "licensed".
    polar_license_outcome => polar_license_outcome::Error;
    polar_license_reason => polar_license_reason::None;
    polar_license_source => polar_license_source::None;
    polar_license_relay_source => polar_license_relay_source::None;
    /// An access that cannot be read is never "granted".
    polar_license_feature_why => polar_license_feature_why::None;
    polar_license_cache_state => polar_license_cache_state::None;
    /// A trial that cannot be read is never "active".
    polar_license_trial => polar_license_trial::None;
    /// A detail that cannot be read is none.
    polar_license_stopped => polar_license_stopped::None;
    /// An entitlement that cannot be read is not known (never granted).
    polar_license_entitlement => polar_license_entitlement::Unknown;
}

/// A face's own error code (a portal, seat or usage call), said beside its enum: a panic is
/// `offline` (no answer to trust), a NULL argument `invalid_input` (refused before anything was
/// sent). Invoked where each enum is defined, so that this file names no face (the faces import
/// the boundary, never the other way round).
macro_rules! face_errors {
    ($ty:ident) => {
        impl $crate::panic::Boundary for $ty {
            fn on_panic() -> Self {
                $ty::Offline
            }
            fn on_null() -> Self {
                $ty::InvalidInput
            }
        }
    };
}

/// Runs an `extern "C"` body, turning a panic into the return type's [`Boundary::on_panic`].
macro_rules! ffi_boundary {
    ($($body:tt)*) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::panic::Boundary::on_panic(),
        }
    }};
}

/// The reference behind a pointer argument (`as_ref` of a `*const T` for `try_ref!`,
/// `as_mut` of a `*mut T` for `try_mut!`), or an early return of [`Boundary::on_null`] when
/// it is NULL.
///
/// The caller promises (in the C documentation) that a non-NULL pointer points to a live
/// object of the right type made by this library.
macro_rules! non_null {
    ($ptr:expr, as_ref) => {
        non_null!(@deref $ptr, as_ref)
    };
    ($ptr:expr, as_mut) => {
        non_null!(@deref $ptr, as_mut)
    };
    (@deref $ptr:expr, $as:ident) => {{
        let ptr = $ptr;
        // SAFETY: NULL is checked by `as_ref`/`as_mut`; a non-NULL pointer is, by the
        // documented contract of every function, a live object made by this library and not
        // yet freed, and (for `as_mut`) the documented rules forbid using it from two threads
        // at once.
        match unsafe { ptr.$as() } {
            Some(r) => r,
            None => return $crate::panic::Boundary::on_null(),
        }
    }};
}

/// `&T` from a `*const T`, or an early return of [`Boundary::on_null`] when it is NULL.
macro_rules! try_ref {
    ($ptr:expr) => {
        non_null!($ptr, as_ref)
    };
}

/// `&mut T` from a `*mut T`, or an early return of [`Boundary::on_null`] when it is NULL.
macro_rules! try_mut {
    ($ptr:expr) => {
        non_null!($ptr, as_mut)
    };
}

/// `&str` from a `*const c_char`, or an early return of [`Boundary::on_null`] (NULL) or
/// [`Boundary::on_bad_utf8`] (not UTF-8).
macro_rules! try_str {
    ($ptr:expr) => {{
        match $crate::strings::str_arg($ptr) {
            Ok(s) => s,
            Err($crate::strings::StrError::Null) => return $crate::panic::Boundary::on_null(),
            Err($crate::strings::StrError::Utf8) => return $crate::panic::Boundary::on_bad_utf8(),
        }
    }};
}

/// Checks that an out-pointer is not NULL (early return of [`Boundary::on_null`]).
macro_rules! check_out {
    ($ptr:expr) => {{
        if $ptr.is_null() {
            return $crate::panic::Boundary::on_null();
        }
    }};
}

/// A required string argument of a call on a client, or an early return of NULL_ARGUMENT /
/// INVALID_UTF8 with this thread's last error set (`$client.fail`), naming the argument.
macro_rules! arg_str {
    ($client:expr, $ptr:expr, $name:literal) => {
        match $crate::strings::str_arg($ptr) {
            Ok(s) => s,
            Err($crate::strings::StrError::Null) => {
                return $client.fail(
                    $crate::enums::polar_license_status::NullArgument,
                    concat!($name, " is NULL"),
                )
            }
            Err($crate::strings::StrError::Utf8) => {
                return $client.fail(
                    $crate::enums::polar_license_status::InvalidUtf8,
                    concat!($name, " is not valid UTF-8"),
                )
            }
        }
    };
}

/// Reads an object an accessor is given (a result, a seat), or returns the accessor type's
/// neutral value ([`Boundary::on_null`]) for NULL.
pub(crate) fn read<R, T: Boundary>(object: *const R, f: impl FnOnce(&R) -> T) -> T {
    let r = try_ref!(object);
    f(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(n: u32) -> polar_license_status {
        ffi_boundary! {
            if n > 0 {
                #[allow(clippy::panic)]
                {
                    panic!("boom");
                }
            }
            polar_license_status::Ok
        }
    }

    fn reads(p: *const u32) -> i64 {
        ffi_boundary! {
            let v: &u32 = try_ref!(p);
            i64::from(*v)
        }
    }

    #[test]
    fn a_panic_becomes_a_status() {
        assert_eq!(panics(0), polar_license_status::Ok);
        assert_eq!(panics(1), polar_license_status::Panic);
    }

    #[test]
    fn null_becomes_the_neutral_value() {
        assert_eq!(reads(std::ptr::null()), -1);
        assert_eq!(reads(&7), 7);
    }
}
