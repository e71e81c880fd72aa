//! Dispatch from C: blocking and asynchronous, and the outcome handle.

use std::ffi::{c_char, c_void, CString};

use crate::dispatch::{DispatchFailure, Outcome, RerouteTiming};
use crate::error::Error;
use crate::ffi::boundary::{
    self, borrow, guard, into_handle, out_ptr, take_handle, Failure, UserData,
};
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;
use crate::ffi::message::liminal_message;
use crate::ffi::routing::liminal_free_fn;

/// How a dispatch ended: delivered (status `LIMINAL_OK`) or failed, with the
/// consumers that crashed holding the message and one re-route timing each.
/// Immutable and thread-safe.
pub struct liminal_outcome {
    status: liminal_status,
    dispatch_id: u64,
    attempts: u32,
    delivered_to: Option<CString>,
    rerouted_from: Vec<CString>,
    reroute_ns: Vec<u64>,
}

fn nanos(timings: &[RerouteTiming]) -> Vec<u64> {
    timings
        .iter()
        .map(|t| u64::try_from(t.latency().as_nanos()).unwrap_or(u64::MAX))
        .collect()
}

impl liminal_outcome {
    fn from_outcome(outcome: &Outcome) -> Self {
        Self {
            status: liminal_status::LIMINAL_OK,
            dispatch_id: outcome.dispatch_id,
            attempts: outcome.attempts,
            delivered_to: Some(boundary::c_string(&outcome.delivered_to)),
            rerouted_from: outcome
                .rerouted_from
                .iter()
                .map(|c| boundary::c_string(c))
                .collect(),
            reroute_ns: nanos(&outcome.reroute_timings),
        }
    }

    pub(crate) fn from_failure(failure: &DispatchFailure) -> Self {
        Self {
            status: liminal_status::from_dispatch(&failure.error),
            dispatch_id: failure.dispatch_id,
            attempts: failure.attempts,
            delivered_to: None,
            rerouted_from: failure
                .rerouted_from
                .iter()
                .map(|c| boundary::c_string(c))
                .collect(),
            reroute_ns: nanos(&failure.reroute_timings),
        }
    }
}

/// A completion callback: an asynchronous dispatch ended.
///
/// | contract | |
/// |---|---|
/// | thread | the library thread that finished it (a scheduler worker, the routing or timer thread), the thread acknowledging a kept delivery, the thread calling `liminal_runtime_shutdown`/`_free`, or — for a failure found before anything was forwarded — the dispatching thread, before `liminal_group_dispatch_async` returns |
/// | overlap | called exactly once per accepted dispatch; completions of different dispatches may overlap |
/// | may call | any non-blocking function, `liminal_group_dispatch_async` included; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: it may hold a scheduler worker |
///
/// `outcome` is borrowed for the call (`liminal_outcome_status` equals
/// `status`). `free_user` runs right after the call.
pub type liminal_completion_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        status: liminal_status,
        outcome: *const liminal_outcome,
    ),
>;

/// `{function, user, free_user}` for one asynchronous dispatch.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_completion_callback {
    /// The callback (required).
    pub function: liminal_completion_fn,
    /// Passed to the call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`.
    pub free_user: liminal_free_fn,
}

fn failure_detail(failure: &DispatchFailure) -> String {
    if failure.rerouted_from.is_empty() {
        failure.to_string()
    } else {
        format!(
            "{failure} (crashed holding it: {})",
            failure.rerouted_from.join(", ")
        )
    }
}

/// Dispatch `message` (borrowed; a snapshot is taken) and wait for the
/// outcome. On success `*out` owns it (free with `liminal_outcome_free`);
/// on failure nothing is written and `liminal_last_error()` tells why.
///
/// Errors: `LIMINAL_NO_CONSUMER_AVAILABLE`, `LIMINAL_UNKNOWN_CONSUMER_SELECTED`,
/// `LIMINAL_ROUTING_CRASHED`, `LIMINAL_ROUTING_TIMED_OUT`, `LIMINAL_SPAWN_FAILED`,
/// `LIMINAL_ATTEMPTS_EXHAUSTED`, `LIMINAL_CONVERSATION_FAILED`, `LIMINAL_SHUT_DOWN`,
/// `LIMINAL_WOULD_DEADLOCK` (called from a library callback).
#[no_mangle]
pub extern "C" fn liminal_group_dispatch(
    group: *const liminal_group,
    message: *const liminal_message,
    out: *mut *mut liminal_outcome,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handles / writable output.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        let message = unsafe { borrow(message, "message") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        match group.group.dispatch(message.message.clone()) {
            Ok(outcome) => {
                *out = into_handle(liminal_outcome::from_outcome(&outcome));
                Ok(())
            }
            Err(Error::Dispatch(failure)) => Err(Failure::new(
                liminal_status::from_dispatch(&failure.error),
                failure_detail(&failure),
            )),
            Err(other) => Err(other.into()),
        }
    })
}

/// Dispatch `message` (borrowed; a snapshot is taken) and return at once.
/// `completion` runs exactly once with the result. `*dispatch_id` (optional)
/// receives the dispatch id. The library owns `completion` from this call
/// on: if the dispatch is refused (`LIMINAL_SHUT_DOWN`, bad arguments) its
/// function is not called and its `free_user` runs before this returns.
#[no_mangle]
pub extern "C" fn liminal_group_dispatch_async(
    group: *const liminal_group,
    message: *const liminal_message,
    completion: liminal_completion_callback,
    dispatch_id: *mut u64,
) -> liminal_status {
    let user = UserData::new(completion.user, completion.free_user);
    guard(move || {
        // SAFETY: NULL or live handles.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        let message = unsafe { borrow(message, "message") }?;
        let function = completion
            .function
            .ok_or_else(|| boundary::null("completion.function"))?;
        let id = group.group.dispatch_async(
            message.message.clone(),
            Box::new(move |result| {
                let outcome = match &result {
                    Ok(outcome) => liminal_outcome::from_outcome(outcome),
                    Err(failure) => liminal_outcome::from_failure(failure),
                };
                // SAFETY: the host's callback, with a borrowed, live outcome.
                unsafe { function(user.ptr(), outcome.status, &outcome) };
            }),
        )?;
        // SAFETY: NULL or writable.
        if let Some(slot) = unsafe { dispatch_id.as_mut() } {
            *slot = id;
        }
        Ok(())
    })
}

fn read<T: Copy>(
    outcome: *const liminal_outcome,
    fallback: T,
    f: impl FnOnce(&liminal_outcome) -> T,
) -> T {
    boundary::guard_void(fallback, || {
        // SAFETY: NULL or a live outcome.
        unsafe { outcome.as_ref() }.map_or(fallback, f)
    })
}

/// `LIMINAL_OK` if delivered, otherwise why not (`LIMINAL_NULL_ARGUMENT` for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_status(outcome: *const liminal_outcome) -> liminal_status {
    read(outcome, liminal_status::LIMINAL_NULL_ARGUMENT, |o| o.status)
}

/// The dispatch id (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_dispatch_id(outcome: *const liminal_outcome) -> u64 {
    read(outcome, 0, |o| o.dispatch_id)
}

/// Forwards made, the successful one included (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_attempts(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.attempts)
}

/// The consumer that acknowledged it; NULL if it was not delivered (or for
/// NULL). Borrowed: valid while the outcome is.
#[no_mangle]
pub extern "C" fn liminal_outcome_delivered_to(outcome: *const liminal_outcome) -> *const c_char {
    read(outcome, std::ptr::null(), |o| {
        o.delivered_to
            .as_ref()
            .map_or(std::ptr::null(), |c| c.as_ptr())
    })
}

/// How many consumers crashed while holding it (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_rerouted_count(outcome: *const liminal_outcome) -> usize {
    read(outcome, 0, |o| o.rerouted_from.len())
}

/// The `index`-th consumer that crashed holding it, in order; NULL when out
/// of range. Borrowed: valid while the outcome is.
#[no_mangle]
pub extern "C" fn liminal_outcome_rerouted_from(
    outcome: *const liminal_outcome,
    index: usize,
) -> *const c_char {
    read(outcome, std::ptr::null(), |o| {
        o.rerouted_from
            .get(index)
            .map_or(std::ptr::null(), |c| c.as_ptr())
    })
}

/// Re-route timing `index` in nanoseconds: from the moment the crashed
/// consumer's EXIT was observed to the moment the re-route was initiated.
/// A message dead-lettered for exhausting its attempts has no timing for its
/// last crash. Errors: `LIMINAL_INVALID_ARGUMENT` when out of range.
#[no_mangle]
pub extern "C" fn liminal_outcome_reroute_ns(
    outcome: *const liminal_outcome,
    index: usize,
    out: *mut u64,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live outcome / writable output.
        let outcome = unsafe { borrow(outcome, "outcome") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = *outcome
            .reroute_ns
            .get(index)
            .ok_or_else(|| boundary::invalid(format!("index {index} out of range")))?;
        Ok(())
    })
}

/// Free an outcome (NULL is accepted). Never free the borrowed one a
/// completion or dead-letter callback receives.
#[no_mangle]
pub extern "C" fn liminal_outcome_free(outcome: *mut liminal_outcome) {
    boundary::guard_void((), || {
        // SAFETY: NULL or an owned outcome given up by the caller.
        drop(unsafe { take_handle(outcome) });
    });
}
