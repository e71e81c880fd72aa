//! Boundary helpers, written once: the panic guard, handle casts, pointer,
//! string and buffer checks. Every `unsafe` the C ABI needs for raw
//! pointers lives here or right next to the call that needs it.
//!
//! Every C handle type is a heap box owned by the caller ([`Handle`]):
//! `new_handle` hands one to C, `borrow` reads one for a call, `free_handle`
//! takes it back. Handles share the Rust objects they stand for (`Arc`s
//! inside), so freeing one never invalidates another.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::error::{liminal_status, set_last_error};

/// A C handle type: a boxed Rust value the caller owns.
pub(crate) trait Handle: Sized + 'static {
    /// What error messages call a NULL one ("group is NULL").
    const NAME: &'static str;
}

/// A failure at the boundary: a status and its detail.
pub(crate) struct Failure {
    pub(crate) status: liminal_status,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn new(status: liminal_status, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

impl From<crate::Error> for Failure {
    fn from(error: crate::Error) -> Self {
        let detail = match &error {
            crate::Error::Dispatch(failure) => failure.to_string(),
            other => other.to_string(),
        };
        Self::new(liminal_status::from_error(&error), detail)
    }
}

/// Run an exported function body: no panic crosses the boundary, every
/// failure leaves its detail in `liminal_last_error`.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> liminal_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => liminal_status::LIMINAL_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.detail);
            failure.status
        }
        Err(panic) => {
            let message = crate::base::scope::panic_message(panic.as_ref());
            set_last_error(&format!("internal panic: {message}"));
            liminal_status::LIMINAL_PANIC
        }
    }
}

/// Like [`guard`] for functions that return a value instead of a status
/// (`_free`, accessors): a panic returns `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// `guard` + `borrow`: the shape of most exported functions.
pub(crate) fn with<T: Handle>(
    handle: *const T,
    body: impl FnOnce(&T) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, per the header contract.
        let handle = unsafe { borrow(handle) }?;
        body(handle)
    })
}

/// An accessor: `read(handle)` or `fallback` for NULL (or a panic).
pub(crate) fn read<T: Handle, R: Copy>(
    handle: *const T,
    fallback: R,
    read: impl FnOnce(&T) -> R,
) -> R {
    guard_value(fallback, || {
        // SAFETY: NULL or a live handle, per the header contract.
        unsafe { handle.as_ref() }.map_or(fallback, read)
    })
}

pub(crate) fn null(name: &str) -> Failure {
    Failure::new(
        liminal_status::LIMINAL_NULL_ARGUMENT,
        format!("{name} is NULL"),
    )
}

pub(crate) fn invalid(detail: impl Into<String>) -> Failure {
    Failure::new(liminal_status::LIMINAL_INVALID_ARGUMENT, detail)
}

/// Borrow a handle for the duration of a call.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library.
pub(crate) unsafe fn borrow<'a, T: Handle>(ptr: *const T) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is a live handle.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(T::NAME))
}

/// Borrow a handle mutably (handles documented as not thread-safe for
/// modification: messages and options).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T`, not used concurrently.
pub(crate) unsafe fn borrow_mut<'a, T: Handle>(ptr: *mut T) -> Result<&'a mut T, Failure> {
    // SAFETY: as above, per the caller.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(T::NAME))
}

/// Hand a new handle to C.
pub(crate) fn new_handle<T: Handle>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Take back and drop a handle C gave up (NULL is accepted).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library, not
/// used again after this call.
pub(crate) unsafe fn free_handle<T: Handle>(ptr: *mut T) {
    guard_value((), || {
        if !ptr.is_null() {
            // SAFETY: the caller guarantees `ptr` came from `new_handle` and
            // is given up.
            drop(unsafe { Box::from_raw(ptr) });
        }
    });
}

/// An output slot, checked before any work is done; written only on success.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn out_ptr<'a, T>(out: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees a non-NULL `out` is writable.
    unsafe { out.as_mut() }.ok_or_else(|| null(name))
}

/// A borrowed C string as UTF-8.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// An optional C string (NULL gives `None`).
///
/// # Safety
/// As [`utf8`].
pub(crate) unsafe fn utf8_opt<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: as the caller guarantees.
    unsafe { utf8(ptr, name) }.map(Some)
}

/// An array of C strings (may be NULL when `count` is 0).
///
/// # Safety
/// `ptr` points to `count` NUL-terminated strings valid for the call.
pub(crate) unsafe fn utf8_array(
    ptr: *const *const c_char,
    count: usize,
    name: &str,
) -> Result<Vec<String>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if count > 1 << 20 {
        return Err(invalid(format!("{name}: count {count} out of range")));
    }
    // SAFETY: the caller guarantees `count` readable elements.
    let items = unsafe { std::slice::from_raw_parts(ptr, count) };
    items
        .iter()
        // SAFETY: each element is a NUL-terminated string per the contract.
        .map(|&item| unsafe { utf8(item, name) }.map(str::to_owned))
        .collect()
}

/// Bytes from C (NULL allowed when `len` is 0).
///
/// # Safety
/// `ptr` is valid for `len` bytes.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if isize::try_from(len).is_err() {
        return Err(invalid(format!("{name}: length out of range")));
    }
    // SAFETY: the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Copy `text` into a caller buffer, snprintf-style: always NUL-terminates
/// when `capacity > 0`, reports the full length in `len_out`, and fails with
/// `LIMINAL_BUFFER_TOO_SMALL` when it had to truncate.
///
/// # Safety
/// `buffer` is NULL (only with `capacity == 0`) or writable for `capacity`
/// bytes; `len_out` is NULL or writable.
pub(crate) unsafe fn copy_out(
    text: &str,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> Result<(), Failure> {
    if capacity > 0 && buffer.is_null() {
        return Err(null("buffer"));
    }
    // SAFETY: `len_out` is NULL or writable per the contract.
    if let Some(len) = unsafe { len_out.as_mut() } {
        *len = text.len();
    }
    let too_small = || {
        Failure::new(
            liminal_status::LIMINAL_BUFFER_TOO_SMALL,
            format!("{} bytes needed", text.len() + 1),
        )
    };
    if capacity == 0 {
        return Err(too_small());
    }
    let copied = text.len().min(capacity - 1);
    // SAFETY: `buffer` is writable for `capacity > copied` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), copied);
        *buffer.add(copied) = 0;
    }
    if copied < text.len() {
        return Err(too_small());
    }
    Ok(())
}

/// A duration in milliseconds from C, where 0 means "none".
pub(crate) fn millis_opt(ms: u64) -> Option<std::time::Duration> {
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

/// A Rust string as an owned C string (interior NULs cannot come from C).
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}
