//! C strings in and out.

use std::ffi::{c_char, CStr, CString};

/// Why a string argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrError {
    /// The pointer was NULL.
    Null,
    /// The bytes are not UTF-8.
    Utf8,
}

/// Borrows a NUL-terminated C string as `&str`, checking it is UTF-8 (never assumed).
///
/// The lifetime is chosen by the caller: it must not outlive the call the string was passed
/// to (C keeps ownership).
pub(crate) fn str_arg<'a>(ptr: *const c_char) -> Result<&'a str, StrError> {
    if ptr.is_null() {
        return Err(StrError::Null);
    }
    // SAFETY: `ptr` is not NULL and, by the documented contract, points to a NUL-terminated
    // string that stays valid for the duration of the call.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|_| StrError::Utf8)
}

/// An owned C string for text that may, in theory, hold a NUL (a server's `detail`): NULs are
/// dropped rather than failing.
pub(crate) fn to_cstring(text: &str) -> CString {
    match CString::new(text) {
        Ok(c) => c,
        Err(e) => {
            let mut bytes = e.into_vec();
            bytes.retain(|b| *b != 0);
            CString::new(bytes).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_are_checked() {
        assert_eq!(str_arg(std::ptr::null()), Err(StrError::Null));
        let bad = [0xffu8 as c_char, 0];
        assert_eq!(str_arg(bad.as_ptr()), Err(StrError::Utf8));
        assert_eq!(str_arg(c"k\u{e9}y".as_ptr()), Ok("k\u{e9}y"));
    }

    #[test]
    fn nuls_are_dropped_out() {
        assert_eq!(to_cstring("a\0b").as_bytes(), b"ab");
        assert_eq!(to_cstring("ok").as_bytes(), b"ok");
    }
}
