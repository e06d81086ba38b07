//! The one place a value is written through a C out-pointer, handed to C as an object, or freed
//! when C gives it back.

/// Writes `value` to `*out`. NULL writes nothing: callers check it first, to say so.
pub(crate) fn write<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: not NULL, and by the documented contract of every function a non-NULL
        // out-pointer points to writable storage for a `T`.
        unsafe { out.write(value) };
    }
}

/// Writes the value to `*out` when there is one, and says whether there was (an accessor's
/// "known or not").
pub(crate) fn write_some<T>(out: *mut T, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            write(out, value);
            true
        }
        None => false,
    }
}

/// Moves `value` to the heap and writes the pointer to `*out`: an object C owns until it gives
/// it to the type's `_free` ([`free`]). NULL writes nothing and drops `value`.
pub(crate) fn give<T>(out: *mut *mut T, value: T) {
    if !out.is_null() {
        write(out, Box::into_raw(Box::new(value)));
    }
}

/// Frees an object [`give`] handed to C. NULL is a no-op.
pub(crate) fn free<T>(object: *mut T) {
    if !object.is_null() {
        // SAFETY: a non-NULL object was made by `give` (Box::into_raw) and, per the documented
        // contract of every `_free`, is freed once, when no other thread uses it.
        drop(unsafe { Box::from_raw(object) });
    }
}
