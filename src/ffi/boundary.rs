//! Boundary helpers: the panic guard, pointer and string checks, handle
//! casts, and callback user data. Every `unsafe` the C ABI needs for raw
//! pointers lives here or right next to the call that needs it.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::error::liminal_status;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record the detail of a failure for `liminal_last_error`.
pub(crate) fn set_last_error(detail: &str) {
    let text = CString::new(detail.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The current thread's last error text (valid until it is replaced).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
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
        Self::new(liminal_status::from_error(&error), error.to_string())
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
            let message = crate::runtime::beam::panic_message(panic.as_ref());
            set_last_error(&format!("internal panic: {message}"));
            liminal_status::LIMINAL_PANIC
        }
    }
}

/// Like [`guard`] for functions that return no status (`_free`, accessors).
pub(crate) fn guard_void<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
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

/// Borrow a handle.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library.
pub(crate) unsafe fn borrow<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is a live handle.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(name))
}

/// Hand a new handle to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Take back a handle C gave up (NULL gives `None`).
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` made by this library, not used
/// again after this call.
pub(crate) unsafe fn take_handle<T>(ptr: *mut T) -> Option<Box<T>> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees `ptr` came from `into_handle` and is
        // given up.
        Some(unsafe { Box::from_raw(ptr) })
    }
}

/// Write an output only on success.
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
    if capacity == 0 {
        return Err(Failure::new(
            liminal_status::LIMINAL_BUFFER_TOO_SMALL,
            format!("{} bytes needed", text.len() + 1),
        ));
    }
    let copied = text.len().min(capacity - 1);
    // SAFETY: `buffer` is writable for `capacity > copied` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), copied);
        *buffer.add(copied) = 0;
    }
    if copied < text.len() {
        return Err(Failure::new(
            liminal_status::LIMINAL_BUFFER_TOO_SMALL,
            format!("{} bytes needed", text.len() + 1),
        ));
    }
    Ok(())
}

/// A host `user` pointer with its optional destructor. The library owns it
/// once passed in; `free_user` runs exactly once, when the last call that
/// could use it has returned.
pub(crate) struct UserData {
    ptr: *mut c_void,
    free_user: Option<unsafe extern "C" fn(*mut c_void)>,
}

// SAFETY: the header requires every `user` pointer handed to the library to
// be usable from any thread (callbacks run on library threads).
unsafe impl Send for UserData {}
// SAFETY: as above; the library never dereferences `ptr` itself.
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn new(
        ptr: *mut c_void,
        free_user: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> Self {
        Self { ptr, free_user }
    }

    /// The host pointer (a method, so closures capture the whole `UserData`).
    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free_user) = self.free_user.take() {
            let ptr = self.ptr;
            let _ignored = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the host gave this destructor for this pointer; it
                // runs once, after the last callback returned.
                unsafe { free_user(ptr) }
            }));
        }
    }
}

/// A Rust string as an owned C string (interior NULs cannot come from C).
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}
