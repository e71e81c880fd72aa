//! Dispatch from C: blocking and asynchronous, and per-dispatch options.

use crate::dispatch::DispatchOptions;
use std::ffi::c_char;

use crate::ffi::boundary::{
    self, borrow_mut, free_handle, guard, new_handle, out_ptr, utf8_opt, with, Failure, Handle,
};
use crate::ffi::callbacks::{self, liminal_completion_callback, liminal_completion_fn, UserData};
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;
use crate::ffi::message::liminal_message;
use crate::ffi::outcome::liminal_outcome;

/// Options for one dispatch. Not thread-safe: do not modify one from two
/// threads at once. Reusable for many dispatches.
pub struct liminal_dispatch_options {
    options: DispatchOptions,
}

impl Handle for liminal_dispatch_options {
    const NAME: &'static str = "options";
}

/// Create dispatch options holding the defaults: the group's deadline, and
/// for a blocking dispatch no timeout of its own. `*out` owns them; free
/// with `liminal_dispatch_options_free`.
#[no_mangle]
pub extern "C" fn liminal_dispatch_options_new(
    out: *mut *mut liminal_dispatch_options,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_dispatch_options {
            options: DispatchOptions::default(),
        });
        Ok(())
    })
}

/// Free dispatch options (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_dispatch_options_free(options: *mut liminal_dispatch_options) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(options) };
}

fn set_dispatch_option(
    options: *mut liminal_dispatch_options,
    set: impl FnOnce(&mut DispatchOptions) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, not modified concurrently (documented).
        let options = unsafe { borrow_mut(options) }?;
        set(&mut options.options)
    })
}

/// This message's deadline in milliseconds from acceptance (default 0: the
/// group's). Not delivered by then: it fails with `LIMINAL_EXPIRED`,
/// wherever it is (a later answer of its holder is fenced off).
#[no_mangle]
pub extern "C" fn liminal_dispatch_options_set_deadline_ms(
    options: *mut liminal_dispatch_options,
    deadline_ms: u64,
) -> liminal_status {
    set_dispatch_option(options, |o| {
        o.deadline = boundary::millis_opt(deadline_ms);
        Ok(())
    })
}

/// Blocking dispatch only: how long to wait for the outcome, in
/// milliseconds (default 0: as long as it takes). When it passes, the
/// message is withdrawn and the call returns `LIMINAL_TIMED_OUT`.
#[no_mangle]
pub extern "C" fn liminal_dispatch_options_set_timeout_ms(
    options: *mut liminal_dispatch_options,
    timeout_ms: u64,
) -> liminal_status {
    set_dispatch_option(options, |o| {
        o.timeout = boundary::millis_opt(timeout_ms);
        Ok(())
    })
}

/// The longest ordering key accepted, in bytes of UTF-8 (without the NUL).
pub const LIMINAL_ORDERING_KEY_MAX: usize = 256;

/// This message's **ordering key** (UTF-8, copied; NULL clears it, the
/// default), overriding the group's key field (see
/// `liminal_group_options_set_key_field`).
///
/// The promise: messages that share a key are delivered one at a time, in
/// the order the group accepted them. The next one is forwarded only once
/// the one before it completed (acknowledged, dead-lettered, expired,
/// dropped, or failed at shutdown or close); every way a message comes back
/// without completing (its consumer crashed, left or was declared dead, its
/// lease expired, it was released with or without a delay) puts it back at
/// the front of its key. Messages with other keys, or none, pass it: a slow
/// key never holds up the rest, and any consumer may take any key, chosen
/// by the routing function as usual.
///
/// Errors (nothing is changed): `LIMINAL_INVALID_ARGUMENT` for an empty
/// key, one longer than `LIMINAL_ORDERING_KEY_MAX` bytes, or not UTF-8. A
/// dispatch with a key on a group that auto-acknowledges is refused with
/// `LIMINAL_INVALID_ARGUMENT` (order needs explicit acknowledgements).
#[no_mangle]
pub extern "C" fn liminal_dispatch_options_set_key(
    options: *mut liminal_dispatch_options,
    key: *const c_char,
) -> liminal_status {
    set_dispatch_option(options, |o| {
        // SAFETY: NULL or NUL-terminated.
        let key = unsafe { utf8_opt(key, "key") }?;
        if let Some(key) = key {
            crate::ordering::key::validate(key)?;
        }
        o.key = key.map(str::to_owned);
        Ok(())
    })
}

fn options_of(options: *const liminal_dispatch_options) -> DispatchOptions {
    // SAFETY: NULL or a live handle.
    unsafe { options.as_ref() }.map_or_else(DispatchOptions::default, |o| o.options.clone())
}

/// Dispatch `message` (borrowed; a snapshot is taken) with `options`
/// (borrowed; NULL means defaults) and wait for the outcome. On success
/// `*out` owns it (free with `liminal_outcome_free`); on failure nothing is
/// written and `liminal_last_error()` tells why.
///
/// Errors: `LIMINAL_ATTEMPTS_EXHAUSTED`, `LIMINAL_EXPIRED`,
/// `LIMINAL_TIMED_OUT` (its own timeout), `LIMINAL_UNKNOWN_CONSUMER_SELECTED`,
/// `LIMINAL_ROUTING_CRASHED`, `LIMINAL_ROUTING_TIMED_OUT`,
/// `LIMINAL_SPAWN_FAILED`, `LIMINAL_NO_CONSUMER_AVAILABLE` (group closed),
/// `LIMINAL_DROPPED`, `LIMINAL_CONVERSATION_FAILED`; refused (nothing
/// dispatched): `LIMINAL_QUEUE_FULL`, `LIMINAL_DRAINING`, `LIMINAL_SHUT_DOWN`,
/// `LIMINAL_WOULD_DEADLOCK` (from a callback), `LIMINAL_INVALID_ARGUMENT`
/// (a bad ordering key: see `liminal_group_options_set_key_field`),
/// `LIMINAL_STORE_FAILED` (a durable group whose store stopped accepting).
#[no_mangle]
pub extern "C" fn liminal_group_dispatch(
    group: *const liminal_group,
    message: *const liminal_message,
    options: *const liminal_dispatch_options,
    out: *mut *mut liminal_outcome,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or live handles / writable output.
        let message = unsafe { boundary::borrow(message) }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        let outcome = g
            .group
            .dispatch_with(message.message.clone(), &options_of(options))?;
        *out = new_handle(liminal_outcome::delivered(&outcome));
        Ok(())
    })
}

/// Dispatch `message` (borrowed; a snapshot is taken) with `options`
/// (borrowed; NULL means defaults) and return at once. `completion` runs
/// exactly once with the result. `*dispatch_id` (optional) receives the
/// dispatch id. The library owns `completion` from this call on: if the
/// dispatch is refused (`LIMINAL_QUEUE_FULL`, `LIMINAL_DRAINING`,
/// `LIMINAL_SHUT_DOWN`, `LIMINAL_STORE_FAILED`, bad arguments such as a
/// bad ordering key) its
/// function is not called and its
/// `free_user` runs before this returns (also for `LIMINAL_STORE_FAILED`).
/// Under the block overflow policy this call blocks while the waiting room
/// is full (not from a callback). To a durable group it returns only once
/// the message is on stable storage: it waits for the store's sync (a
/// fraction of a millisecond on a fast disk, milliseconds on a busy one),
/// from a callback too, where it holds that library thread meanwhile; for
/// throughput dispatch durable messages from several host threads (their
/// dispatches share syncs).
#[no_mangle]
pub extern "C" fn liminal_group_dispatch_async(
    group: *const liminal_group,
    message: *const liminal_message,
    options: *const liminal_dispatch_options,
    completion: liminal_completion_callback,
    dispatch_id: *mut u64,
) -> liminal_status {
    let user = UserData::new(completion.user, completion.free_user);
    with(group, move |g| {
        // SAFETY: NULL or a live handle.
        let message = unsafe { boundary::borrow(message) }?;
        let function = completion
            .function
            .ok_or_else(|| boundary::null("completion.function"))?;
        let id = g.group.dispatch_async_with(
            message.message.clone(),
            &options_of(options),
            completion_of(function, user),
        )?;
        // SAFETY: NULL or writable.
        if let Some(slot) = unsafe { dispatch_id.as_mut() } {
            *slot = id;
        }
        Ok(())
    })
}

/// The library's completion for a host's completion callback.
fn completion_of(
    function: unsafe extern "C" fn(*mut std::ffi::c_void, liminal_status, *const liminal_outcome),
    user: UserData,
) -> crate::dispatch::Completion {
    Box::new(move |result| {
        callbacks::complete(function, &user, &liminal_outcome::of(&result));
    })
}

/// Dispatch `count` messages (`messages[i]` borrowed; snapshots are taken)
/// with the same `options` (borrowed; NULL means defaults), each with its
/// own completion `completions[i]`, and return at once, as `count` calls of
/// `liminal_group_dispatch_async` would, in that order. To a durable group
/// the whole batch is written to its store with one sync before this
/// returns: the way for one thread to dispatch durable messages fast (a
/// full waiting room refuses the messages it has no place for before
/// anything is written).
///
/// `statuses[i]` (required, `count` entries) receives each message's
/// status: `LIMINAL_OK` when accepted (its completion runs later, exactly
/// once), otherwise why it was refused (its completion's function is not
/// called and its `free_user` runs before this returns).
/// `dispatch_ids[i]` (optional) receives each accepted dispatch's id (0
/// for a refused one). The library owns every completion from this call
/// on, even when the call itself fails. Returns `LIMINAL_OK` when every
/// message was accepted; otherwise the status of the first refused one.
/// Errors (nothing dispatched, every `free_user` run): `LIMINAL_NULL_ARGUMENT`
/// (a NULL group, array, message or completion function).
#[no_mangle]
pub extern "C" fn liminal_group_dispatch_batch(
    group: *const liminal_group,
    messages: *const *const liminal_message,
    count: usize,
    options: *const liminal_dispatch_options,
    completions: *const liminal_completion_callback,
    statuses: *mut liminal_status,
    dispatch_ids: *mut u64,
) -> liminal_status {
    // The library owns every completion from here on: take their user data
    // first, so each `free_user` runs once whatever happens.
    let callbacks: Vec<(liminal_completion_fn, UserData)> = if completions.is_null() {
        Vec::new()
    } else {
        // SAFETY: a non-NULL `completions` has `count` entries (documented).
        unsafe { std::slice::from_raw_parts(completions, count) }
            .iter()
            .map(|c| (c.function, UserData::new(c.user, c.free_user)))
            .collect()
    };
    with(group, move |g| {
        if messages.is_null() && count > 0 {
            return Err(boundary::null("messages"));
        }
        if callbacks.len() != count {
            return Err(boundary::null("completions"));
        }
        if statuses.is_null() {
            return Err(boundary::null("statuses"));
        }
        let pointers: &[*const liminal_message] = if count == 0 {
            &[]
        } else {
            // SAFETY: non-NULL with `count` entries (documented).
            unsafe { std::slice::from_raw_parts(messages, count) }
        };
        // A bad entry fails the call before anything is dispatched; the
        // completions not yet taken are dropped with the iterator, so every
        // `free_user` still runs once.
        let mut batch = Vec::with_capacity(count);
        for (&pointer, (function, user)) in pointers.iter().zip(callbacks) {
            // SAFETY: NULL or a live handle.
            let message = unsafe { boundary::borrow(pointer) }?;
            let function = function.ok_or_else(|| boundary::null("completion.function"))?;
            batch.push((message.message.clone(), completion_of(function, user)));
        }
        let results = g.group.dispatch_batch(batch, &options_of(options));
        let mut first_refusal = None;
        for (index, result) in results.into_iter().enumerate() {
            let (status, id) = match result {
                Ok(id) => (liminal_status::LIMINAL_OK, id),
                Err(error) => {
                    let status = liminal_status::from_error(&error);
                    first_refusal.get_or_insert(error);
                    (status, 0)
                }
            };
            // SAFETY: `statuses` has `count` entries (documented).
            unsafe { *statuses.add(index) = status };
            if !dispatch_ids.is_null() {
                // SAFETY: a non-NULL `dispatch_ids` has `count` entries.
                unsafe { *dispatch_ids.add(index) = id };
            }
        }
        match first_refusal {
            None => Ok(()),
            Some(error) => Err(error.into()),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_c_key_limit_is_the_core_limit() {
        assert_eq!(super::LIMINAL_ORDERING_KEY_MAX, crate::ORDERING_KEY_MAX);
    }
}
