//! `liminal_message`: typed routing fields and an optional payload.

use std::ffi::c_char;
use std::sync::Arc;

use crate::ffi::boundary::{
    self, borrow_mut, bytes, copy_out, free_handle, guard, new_handle, out_ptr, utf8, with,
    Failure, Handle,
};
use crate::ffi::error::liminal_status;
use crate::message::{FieldValue, Message};

/// A message. Not thread-safe for concurrent modification; dispatching it
/// takes a snapshot, so it can be changed or freed right after the call.
pub struct liminal_message {
    pub(crate) message: Arc<Message>,
}

impl Handle for liminal_message {
    const NAME: &'static str = "message";
}

/// The type of a routing field.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum liminal_field_type {
    /// UTF-8 text.
    LIMINAL_FIELD_TEXT = 0,
    /// Signed 64-bit integer.
    LIMINAL_FIELD_INT = 1,
    /// Double.
    LIMINAL_FIELD_DOUBLE = 2,
    /// Boolean.
    LIMINAL_FIELD_BOOL = 3,
    /// Null.
    LIMINAL_FIELD_NULL = 4,
}

/// Create an empty message. `*out` owns it; free with `liminal_message_free`.
#[no_mangle]
pub extern "C" fn liminal_message_new(out: *mut *mut liminal_message) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable, per the contract.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_message {
            message: Arc::new(Message::new()),
        });
        Ok(())
    })
}

/// Free a message (NULL is accepted). Dispatches already made keep their copy.
#[no_mangle]
pub extern "C" fn liminal_message_free(message: *mut liminal_message) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(message) };
}

fn set_field(
    message: *mut liminal_message,
    name: *const c_char,
    value: impl FnOnce() -> Result<FieldValue, Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle; the header forbids concurrent modification.
        let message = unsafe { borrow_mut(message) }?;
        // SAFETY: NULL or NUL-terminated.
        let name = unsafe { utf8(name, "name") }?;
        if name.is_empty() {
            return Err(boundary::invalid("field name is empty"));
        }
        let value = value()?;
        Arc::make_mut(&mut message.message).set(name, value);
        Ok(())
    })
}

/// Set text field `name` (UTF-8) to `value`, replacing any field of that name.
/// Like every `liminal_message_set_*`: an empty or non-UTF-8 `name` is
/// `LIMINAL_INVALID_ARGUMENT`, a NULL one `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_message_set_text(
    message: *mut liminal_message,
    name: *const c_char,
    value: *const c_char,
) -> liminal_status {
    set_field(message, name, || {
        // SAFETY: NULL or NUL-terminated.
        let value = unsafe { utf8(value, "value") }?;
        Ok(FieldValue::Text(value.to_owned()))
    })
}

/// Set integer field `name`.
#[no_mangle]
pub extern "C" fn liminal_message_set_int(
    message: *mut liminal_message,
    name: *const c_char,
    value: i64,
) -> liminal_status {
    set_field(message, name, || Ok(FieldValue::Int(value)))
}

/// Set double field `name` (non-finite values are allowed; JSON shows them as null).
#[no_mangle]
pub extern "C" fn liminal_message_set_double(
    message: *mut liminal_message,
    name: *const c_char,
    value: f64,
) -> liminal_status {
    set_field(message, name, || Ok(FieldValue::Double(value)))
}

/// Set boolean field `name`.
#[no_mangle]
pub extern "C" fn liminal_message_set_bool(
    message: *mut liminal_message,
    name: *const c_char,
    value: bool,
) -> liminal_status {
    set_field(message, name, || Ok(FieldValue::Bool(value)))
}

/// Set field `name` to null.
#[no_mangle]
pub extern "C" fn liminal_message_set_null(
    message: *mut liminal_message,
    name: *const c_char,
) -> liminal_status {
    set_field(message, name, || Ok(FieldValue::Null))
}

/// Copy `len` bytes from `data` as the payload (`data` may be NULL when
/// `len` is 0, which sets an empty payload).
#[no_mangle]
pub extern "C" fn liminal_message_set_payload(
    message: *mut liminal_message,
    data: *const u8,
    len: usize,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle; the header forbids concurrent modification.
        let message = unsafe { borrow_mut(message) }?;
        // SAFETY: `data` readable for `len` bytes per the contract.
        let payload = unsafe { bytes(data, len, "data") }?;
        Arc::make_mut(&mut message.message).set_payload(payload.to_vec());
        Ok(())
    })
}

fn field(message: &liminal_message, name: *const c_char) -> Result<&FieldValue, Failure> {
    // SAFETY: NULL or NUL-terminated.
    let name = unsafe { utf8(name, "name") }?;
    message.message.get(name).ok_or_else(|| {
        Failure::new(
            liminal_status::LIMINAL_NOT_FOUND,
            format!("no field {name:?}"),
        )
    })
}

fn wrong_type(expected: &str) -> Failure {
    Failure::new(
        liminal_status::LIMINAL_NOT_FOUND,
        format!("field is not of type {expected}"),
    )
}

/// The type of field `name`. Errors: `LIMINAL_NOT_FOUND`.
#[no_mangle]
pub extern "C" fn liminal_message_field_type(
    message: *const liminal_message,
    name: *const c_char,
    out: *mut liminal_field_type,
) -> liminal_status {
    with(message, |message| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = match field(message, name)? {
            FieldValue::Text(_) => liminal_field_type::LIMINAL_FIELD_TEXT,
            FieldValue::Int(_) => liminal_field_type::LIMINAL_FIELD_INT,
            FieldValue::Double(_) => liminal_field_type::LIMINAL_FIELD_DOUBLE,
            FieldValue::Bool(_) => liminal_field_type::LIMINAL_FIELD_BOOL,
            FieldValue::Null => liminal_field_type::LIMINAL_FIELD_NULL,
        };
        Ok(())
    })
}

/// Copy text field `name` into `buffer` (`capacity` bytes, NUL-terminated).
/// `*len_out` (optional) receives the text's length without the NUL. To ask
/// the length first, pass a NULL `buffer` with `capacity` 0 (the answer is
/// `LIMINAL_BUFFER_TOO_SMALL` with `*len_out` set). Errors:
/// `LIMINAL_NOT_FOUND` (no such text field), `LIMINAL_BUFFER_TOO_SMALL` (the
/// truncated text is still written and NUL-terminated),
/// `LIMINAL_NULL_ARGUMENT` (a NULL `buffer` with a non-zero `capacity`).
#[no_mangle]
pub extern "C" fn liminal_message_get_text(
    message: *const liminal_message,
    name: *const c_char,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(message, |message| {
        let FieldValue::Text(text) = field(message, name)? else {
            return Err(wrong_type("text"));
        };
        // SAFETY: buffer/len_out per the contract.
        unsafe { copy_out(text, buffer, capacity, len_out) }
    })
}

/// Read a scalar field through `extract`, writing `*out` only on success.
fn get_scalar<T>(
    message: *const liminal_message,
    name: *const c_char,
    out: *mut T,
    type_name: &str,
    extract: impl FnOnce(&FieldValue) -> Option<T>,
) -> liminal_status {
    with(message, |message| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = extract(field(message, name)?).ok_or_else(|| wrong_type(type_name))?;
        Ok(())
    })
}

/// Read integer field `name`. Errors: `LIMINAL_NOT_FOUND`.
#[no_mangle]
pub extern "C" fn liminal_message_get_int(
    message: *const liminal_message,
    name: *const c_char,
    out: *mut i64,
) -> liminal_status {
    get_scalar(message, name, out, "int", |value| match value {
        FieldValue::Int(value) => Some(*value),
        _ => None,
    })
}

/// Read double field `name`. Errors: `LIMINAL_NOT_FOUND`.
#[no_mangle]
pub extern "C" fn liminal_message_get_double(
    message: *const liminal_message,
    name: *const c_char,
    out: *mut f64,
) -> liminal_status {
    get_scalar(message, name, out, "double", |value| match value {
        FieldValue::Double(value) => Some(*value),
        _ => None,
    })
}

/// Read boolean field `name`. Errors: `LIMINAL_NOT_FOUND`.
#[no_mangle]
pub extern "C" fn liminal_message_get_bool(
    message: *const liminal_message,
    name: *const c_char,
    out: *mut bool,
) -> liminal_status {
    get_scalar(message, name, out, "bool", |value| match value {
        FieldValue::Bool(value) => Some(*value),
        _ => None,
    })
}

/// Number of fields.
#[no_mangle]
pub extern "C" fn liminal_message_field_count(
    message: *const liminal_message,
    out: *mut usize,
) -> liminal_status {
    with(message, |message| {
        // SAFETY: NULL or writable.
        *unsafe { out_ptr(out, "out") }? = message.message.fields().len();
        Ok(())
    })
}

/// Borrow the payload: `*data` (NULL when there is none) and `*len`. Valid
/// until the message is modified or freed (for a delivery's message: until
/// the delivery is freed or its callback returns).
#[no_mangle]
pub extern "C" fn liminal_message_payload(
    message: *const liminal_message,
    data: *mut *const u8,
    len: *mut usize,
) -> liminal_status {
    with(message, |message| {
        // SAFETY: NULL or writable.
        let data = unsafe { out_ptr(data, "data") }?;
        // SAFETY: as above.
        let len = unsafe { out_ptr(len, "len") }?;
        match message.message.payload() {
            Some(payload) => {
                *data = payload.as_ptr();
                *len = payload.len();
            }
            None => {
                *data = std::ptr::null();
                *len = 0;
            }
        }
        Ok(())
    })
}

/// Copy the fields as a JSON object (non-finite doubles as null) into
/// `buffer`, like `liminal_message_get_text`.
#[no_mangle]
pub extern "C" fn liminal_message_fields_json(
    message: *const liminal_message,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(message, |message| {
        let json = message.message.fields_json();
        // SAFETY: buffer/len_out per the contract.
        unsafe { copy_out(&json, buffer, capacity, len_out) }
    })
}

/// Copy the message's ordering key into `buffer`, like
/// `liminal_message_get_text`: the key its dispatch gave it (the group's key
/// field's value, or the key set with `liminal_dispatch_options_set_key`).
/// Routing callbacks, delivery callbacks and dead-letter callbacks see it;
/// a message not dispatched yet has none. At most
/// `LIMINAL_ORDERING_KEY_MAX` bytes plus the NUL. Errors:
/// `LIMINAL_NOT_FOUND` (unordered), `LIMINAL_BUFFER_TOO_SMALL`.
#[no_mangle]
pub extern "C" fn liminal_message_ordering_key(
    message: *const liminal_message,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(message, |message| {
        let key = message.message.ordering_key().ok_or_else(|| {
            Failure::new(
                liminal_status::LIMINAL_NOT_FOUND,
                "the message has no ordering key",
            )
        })?;
        // SAFETY: buffer/len_out per the contract.
        unsafe { copy_out(key, buffer, capacity, len_out) }
    })
}
