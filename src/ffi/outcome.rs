//! `liminal_outcome`: how a dispatch ended, and what happened on the way.

use std::ffi::{c_char, CString};

use crate::error::DispatchFailure;
use crate::ffi::boundary::{self, free_handle, out_ptr, read, with, Handle};
use crate::ffi::error::liminal_status;
use crate::outcome::{Outcome, RerouteTiming, Trail};

/// How a dispatch ended: delivered (status `LIMINAL_OK`) or failed, and its
/// trail: the consumers that failed holding the message with one re-route
/// timing each, how often it was released or its lease expired, how long it
/// waited. Immutable and thread-safe.
pub struct liminal_outcome {
    status: liminal_status,
    delivered_to: Option<CString>,
    rerouted_from: Vec<CString>,
    reroute_ns: Vec<u64>,
    poison: bool,
    trail: Trail,
}

impl Handle for liminal_outcome {
    const NAME: &'static str = "outcome";
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl liminal_outcome {
    fn new(
        status: liminal_status,
        delivered_to: Option<&str>,
        poison: bool,
        trail: &Trail,
    ) -> Self {
        Self {
            status,
            poison,
            delivered_to: delivered_to.map(boundary::c_string),
            rerouted_from: trail
                .rerouted_from
                .iter()
                .map(|c| boundary::c_string(c))
                .collect(),
            reroute_ns: trail
                .reroute_timings
                .iter()
                .map(RerouteTiming::latency)
                .map(nanos)
                .collect(),
            trail: Trail {
                rerouted_from: Vec::new(),
                reroute_timings: Vec::new(),
                ..trail.clone()
            },
        }
    }

    pub(crate) fn delivered(outcome: &Outcome) -> Self {
        Self::new(
            liminal_status::LIMINAL_OK,
            Some(&outcome.delivered_to),
            false,
            &outcome.trail,
        )
    }

    pub(crate) fn failed(failure: &DispatchFailure) -> Self {
        Self::new(
            liminal_status::from_dispatch(&failure.error),
            None,
            failure.is_poison(),
            &failure.trail,
        )
    }

    /// The outcome of a dispatch result, delivered or failed.
    pub(crate) fn of(result: &crate::dispatch::DispatchResult) -> Self {
        match result {
            Ok(outcome) => Self::delivered(outcome),
            Err(failure) => Self::failed(failure),
        }
    }

    pub(crate) fn status(&self) -> liminal_status {
        self.status
    }
}

/// `LIMINAL_OK` if delivered, otherwise why not (`LIMINAL_NULL_ARGUMENT` for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_status(outcome: *const liminal_outcome) -> liminal_status {
    read(outcome, liminal_status::LIMINAL_NULL_ARGUMENT, |o| o.status)
}

/// The dispatch id (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_dispatch_id(outcome: *const liminal_outcome) -> u64 {
    read(outcome, 0, |o| o.trail.dispatch_id)
}

/// Forwards made, the successful one included (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_attempts(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.trail.attempts)
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

/// How many consumers failed while holding it: crashed, or let its lease
/// expire (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_rerouted_count(outcome: *const liminal_outcome) -> usize {
    read(outcome, 0, |o| o.rerouted_from.len())
}

/// The `index`-th consumer that failed holding it, in order; NULL when out
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

/// Re-route timing `index` in nanoseconds: from the moment the failure was
/// noticed (the consumer's exit observed, its crash verdict or declaration
/// received, its lease found expired) to the moment the message's re-route
/// was initiated. A message failed for using up its attempts has no timing
/// for its last failure. Errors: `LIMINAL_INVALID_ARGUMENT` when out of range.
#[no_mangle]
pub extern "C" fn liminal_outcome_reroute_ns(
    outcome: *const liminal_outcome,
    index: usize,
    out: *mut u64,
) -> liminal_status {
    with(outcome, |o| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = *o
            .reroute_ns
            .get(index)
            .ok_or_else(|| boundary::invalid(format!("index {index} out of range")))?;
        Ok(())
    })
}

/// Consumers that died *handling* it: their callback was running with it, or
/// they answered crash for it (0 for NULL). These count against
/// `max_attempts`.
#[no_mangle]
pub extern "C" fn liminal_outcome_crashed_handling(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.trail.crashed_handling)
}

/// Whether it was dead-lettered as poison that kills its consumers (false
/// for NULL): its status is `LIMINAL_ATTEMPTS_EXHAUSTED` and every failed
/// attempt was a consumer dying *handling* it (a crash while its callback
/// ran, a crash verdict, a remote worker that died after answering
/// `started`); none was a release or an expired lease.
#[no_mangle]
pub extern "C" fn liminal_outcome_is_poison(outcome: *const liminal_outcome) -> bool {
    read(outcome, false, |o| o.poison)
}

/// Consumers that died merely *holding* it (0 for NULL). These count
/// against `max_attempts` only with `count_holding_crashes`.
#[no_mangle]
pub extern "C" fn liminal_outcome_crashed_holding(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.trail.crashed_holding)
}

/// Times a consumer released it (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_released(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.trail.released)
}

/// Times its acknowledgement lease expired (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_lease_expired(outcome: *const liminal_outcome) -> u32 {
    read(outcome, 0, |o| o.trail.lease_expired)
}

/// Total time it spent in the waiting room, in nanoseconds (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_outcome_waited_ns(outcome: *const liminal_outcome) -> u64 {
    read(outcome, 0, |o| nanos(o.trail.waited))
}

/// Free an outcome (NULL is accepted). Never free the borrowed one a
/// completion or dead-letter callback receives.
#[no_mangle]
pub extern "C" fn liminal_outcome_free(outcome: *mut liminal_outcome) {
    // SAFETY: NULL or an owned outcome given up by the caller.
    unsafe { free_handle(outcome) };
}
