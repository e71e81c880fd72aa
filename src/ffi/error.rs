//! Status codes, their names, descriptions and classes, and the per-thread
//! detail of the last failure.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::{DispatchError, Error, RoutingError};
use crate::ffi::boundary;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record the detail of a failure for `liminal_last_error`.
pub(crate) fn set_last_error(detail: &str) {
    let text = boundary::c_string(detail);
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The result of every fallible call. `LIMINAL_OK` is 0; every other value
/// is a distinct failure. `liminal_last_error()` has the detail.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum liminal_status {
    /// Success.
    LIMINAL_OK = 0,
    /// A required pointer argument was NULL.
    LIMINAL_NULL_ARGUMENT = 1,
    /// An argument was malformed or out of range (bad UTF-8, empty id, zero capacity…).
    LIMINAL_INVALID_ARGUMENT = 2,
    /// A consumer with this id is already registered in the group.
    LIMINAL_DUPLICATE_CONSUMER = 3,
    /// No such consumer (or it has already left or died).
    LIMINAL_UNKNOWN_CONSUMER = 4,
    /// The message's group closed (was freed) while it waited or was held.
    LIMINAL_NO_CONSUMER_AVAILABLE = 5,
    /// The routing function selected an id that is not an eligible consumer.
    LIMINAL_UNKNOWN_CONSUMER_SELECTED = 6,
    /// The routing function crashed (or reported failure).
    LIMINAL_ROUTING_CRASHED = 7,
    /// The routing function ran past the routing timeout and was abandoned.
    LIMINAL_ROUTING_TIMED_OUT = 8,
    /// A beamr process or thread could not be started.
    LIMINAL_SPAWN_FAILED = 9,
    /// The dispatch conversation could not be driven.
    LIMINAL_CONVERSATION_FAILED = 10,
    /// The message used up its failed attempts (dead-lettered);
    /// `liminal_outcome_is_poison` tells whether every one was a consumer
    /// dying while handling it (poison that kills its consumers).
    LIMINAL_ATTEMPTS_EXHAUSTED = 11,
    /// The delivery was already answered, re-routed or withdrawn; this
    /// answer was fenced off.
    LIMINAL_STALE_DELIVERY = 12,
    /// The runtime is shut down (or shutting down).
    LIMINAL_SHUT_DOWN = 13,
    /// A wait ran out of time (a blocking dispatch's own timeout included:
    /// the message was withdrawn).
    LIMINAL_TIMED_OUT = 14,
    /// The call would block a library thread it needs (made from inside a callback).
    LIMINAL_WOULD_DEADLOCK = 15,
    /// A caller buffer was too small; the needed length was reported.
    LIMINAL_BUFFER_TOO_SMALL = 16,
    /// The message has no field of that name, or not of that type.
    LIMINAL_NOT_FOUND = 17,
    /// A Rust panic was caught at the boundary (a library bug).
    LIMINAL_PANIC = 18,
    /// The consumer crashed or left; its handle can only be freed.
    LIMINAL_CONSUMER_GONE = 19,
    /// The group's waiting room is full (overflow policy reject, or the
    /// block timed out). Retriable.
    LIMINAL_QUEUE_FULL = 20,
    /// The message was not delivered by its deadline.
    LIMINAL_EXPIRED = 21,
    /// The message was the oldest waiting when the waiting room overflowed
    /// (overflow policy drop-oldest).
    LIMINAL_DROPPED = 22,
    /// The group or runtime is draining: no new dispatches accepted.
    LIMINAL_DRAINING = 23,
    /// This library was built without the feature the call needs (remote
    /// consumers: `liminal_has_remote()`).
    LIMINAL_UNSUPPORTED = 24,
    /// A durable group's store is held by another live group, in this
    /// process or another (two hosts must never both dispatch one store's
    /// messages).
    LIMINAL_STORE_LOCKED = 25,
    /// A durable group's store failed: it could not be opened or read (a
    /// newer format, a file that cannot be read), or a write or sync failed
    /// and the store stopped accepting. Nothing was accepted.
    LIMINAL_STORE_FAILED = 26,
}

use liminal_status as S;

/// Every status, in numeric order.
pub(crate) const ALL: [liminal_status; 27] = [
    S::LIMINAL_OK,
    S::LIMINAL_NULL_ARGUMENT,
    S::LIMINAL_INVALID_ARGUMENT,
    S::LIMINAL_DUPLICATE_CONSUMER,
    S::LIMINAL_UNKNOWN_CONSUMER,
    S::LIMINAL_NO_CONSUMER_AVAILABLE,
    S::LIMINAL_UNKNOWN_CONSUMER_SELECTED,
    S::LIMINAL_ROUTING_CRASHED,
    S::LIMINAL_ROUTING_TIMED_OUT,
    S::LIMINAL_SPAWN_FAILED,
    S::LIMINAL_CONVERSATION_FAILED,
    S::LIMINAL_ATTEMPTS_EXHAUSTED,
    S::LIMINAL_STALE_DELIVERY,
    S::LIMINAL_SHUT_DOWN,
    S::LIMINAL_TIMED_OUT,
    S::LIMINAL_WOULD_DEADLOCK,
    S::LIMINAL_BUFFER_TOO_SMALL,
    S::LIMINAL_NOT_FOUND,
    S::LIMINAL_PANIC,
    S::LIMINAL_CONSUMER_GONE,
    S::LIMINAL_QUEUE_FULL,
    S::LIMINAL_EXPIRED,
    S::LIMINAL_DROPPED,
    S::LIMINAL_DRAINING,
    S::LIMINAL_UNSUPPORTED,
    S::LIMINAL_STORE_LOCKED,
    S::LIMINAL_STORE_FAILED,
];

impl liminal_status {
    pub(crate) fn from_dispatch(error: &DispatchError) -> Self {
        match error {
            DispatchError::NoConsumerAvailable => S::LIMINAL_NO_CONSUMER_AVAILABLE,
            DispatchError::UnknownConsumerSelected(_) => S::LIMINAL_UNKNOWN_CONSUMER_SELECTED,
            DispatchError::Routing(RoutingError::Crashed(_)) => S::LIMINAL_ROUTING_CRASHED,
            DispatchError::Routing(RoutingError::TimedOut(_)) => S::LIMINAL_ROUTING_TIMED_OUT,
            DispatchError::Routing(RoutingError::SpawnFailed(_)) => S::LIMINAL_SPAWN_FAILED,
            DispatchError::AttemptsExhausted(_) => S::LIMINAL_ATTEMPTS_EXHAUSTED,
            DispatchError::Expired => S::LIMINAL_EXPIRED,
            DispatchError::TimedOut => S::LIMINAL_TIMED_OUT,
            DispatchError::Dropped => S::LIMINAL_DROPPED,
            DispatchError::Conversation(_) => S::LIMINAL_CONVERSATION_FAILED,
            DispatchError::ShutDown => S::LIMINAL_SHUT_DOWN,
        }
    }

    pub(crate) fn from_error(error: &Error) -> Self {
        match error {
            Error::InvalidArgument(_) => S::LIMINAL_INVALID_ARGUMENT,
            Error::DuplicateConsumer(_) => S::LIMINAL_DUPLICATE_CONSUMER,
            Error::UnknownConsumer(_) => S::LIMINAL_UNKNOWN_CONSUMER,
            Error::ConsumerGone(_) => S::LIMINAL_CONSUMER_GONE,
            Error::StaleDelivery(_) => S::LIMINAL_STALE_DELIVERY,
            Error::ShutDown => S::LIMINAL_SHUT_DOWN,
            Error::Draining => S::LIMINAL_DRAINING,
            Error::QueueFull => S::LIMINAL_QUEUE_FULL,
            Error::TimedOut => S::LIMINAL_TIMED_OUT,
            Error::WouldDeadlock(_) => S::LIMINAL_WOULD_DEADLOCK,
            Error::SpawnFailed(_) => S::LIMINAL_SPAWN_FAILED,
            Error::StoreLocked(_) => S::LIMINAL_STORE_LOCKED,
            Error::StoreFailed(_) => S::LIMINAL_STORE_FAILED,
            Error::Dispatch(failure) => Self::from_dispatch(&failure.error),
        }
    }

    fn name(self) -> &'static std::ffi::CStr {
        match self {
            S::LIMINAL_OK => c"LIMINAL_OK",
            S::LIMINAL_NULL_ARGUMENT => c"LIMINAL_NULL_ARGUMENT",
            S::LIMINAL_INVALID_ARGUMENT => c"LIMINAL_INVALID_ARGUMENT",
            S::LIMINAL_DUPLICATE_CONSUMER => c"LIMINAL_DUPLICATE_CONSUMER",
            S::LIMINAL_UNKNOWN_CONSUMER => c"LIMINAL_UNKNOWN_CONSUMER",
            S::LIMINAL_NO_CONSUMER_AVAILABLE => c"LIMINAL_NO_CONSUMER_AVAILABLE",
            S::LIMINAL_UNKNOWN_CONSUMER_SELECTED => c"LIMINAL_UNKNOWN_CONSUMER_SELECTED",
            S::LIMINAL_ROUTING_CRASHED => c"LIMINAL_ROUTING_CRASHED",
            S::LIMINAL_ROUTING_TIMED_OUT => c"LIMINAL_ROUTING_TIMED_OUT",
            S::LIMINAL_SPAWN_FAILED => c"LIMINAL_SPAWN_FAILED",
            S::LIMINAL_CONVERSATION_FAILED => c"LIMINAL_CONVERSATION_FAILED",
            S::LIMINAL_ATTEMPTS_EXHAUSTED => c"LIMINAL_ATTEMPTS_EXHAUSTED",
            S::LIMINAL_STALE_DELIVERY => c"LIMINAL_STALE_DELIVERY",
            S::LIMINAL_SHUT_DOWN => c"LIMINAL_SHUT_DOWN",
            S::LIMINAL_TIMED_OUT => c"LIMINAL_TIMED_OUT",
            S::LIMINAL_WOULD_DEADLOCK => c"LIMINAL_WOULD_DEADLOCK",
            S::LIMINAL_BUFFER_TOO_SMALL => c"LIMINAL_BUFFER_TOO_SMALL",
            S::LIMINAL_NOT_FOUND => c"LIMINAL_NOT_FOUND",
            S::LIMINAL_PANIC => c"LIMINAL_PANIC",
            S::LIMINAL_CONSUMER_GONE => c"LIMINAL_CONSUMER_GONE",
            S::LIMINAL_QUEUE_FULL => c"LIMINAL_QUEUE_FULL",
            S::LIMINAL_EXPIRED => c"LIMINAL_EXPIRED",
            S::LIMINAL_DROPPED => c"LIMINAL_DROPPED",
            S::LIMINAL_DRAINING => c"LIMINAL_DRAINING",
            S::LIMINAL_UNSUPPORTED => c"LIMINAL_UNSUPPORTED",
            S::LIMINAL_STORE_LOCKED => c"LIMINAL_STORE_LOCKED",
            S::LIMINAL_STORE_FAILED => c"LIMINAL_STORE_FAILED",
        }
    }

    fn description(self) -> &'static std::ffi::CStr {
        match self {
            S::LIMINAL_OK => c"success",
            S::LIMINAL_NULL_ARGUMENT => c"a required pointer argument was NULL",
            S::LIMINAL_INVALID_ARGUMENT => c"invalid argument",
            S::LIMINAL_DUPLICATE_CONSUMER => c"a consumer with this id is already registered",
            S::LIMINAL_UNKNOWN_CONSUMER => c"unknown consumer",
            S::LIMINAL_NO_CONSUMER_AVAILABLE => c"no consumer available: the group closed",
            S::LIMINAL_UNKNOWN_CONSUMER_SELECTED => {
                c"the routing function selected an unknown consumer"
            }
            S::LIMINAL_ROUTING_CRASHED => c"routing evaluation failed: crashed",
            S::LIMINAL_ROUTING_TIMED_OUT => c"routing evaluation failed: timed out",
            S::LIMINAL_SPAWN_FAILED => c"routing evaluation failed: spawn failed",
            S::LIMINAL_CONVERSATION_FAILED => c"the dispatch conversation failed",
            S::LIMINAL_ATTEMPTS_EXHAUSTED => c"dead-lettered: maximum failed attempts reached",
            S::LIMINAL_STALE_DELIVERY => {
                c"stale delivery: already answered, re-routed or withdrawn"
            }
            S::LIMINAL_SHUT_DOWN => c"the runtime is shut down",
            S::LIMINAL_TIMED_OUT => c"timed out waiting",
            S::LIMINAL_WOULD_DEADLOCK => c"refused: would deadlock when called from a callback",
            S::LIMINAL_BUFFER_TOO_SMALL => c"buffer too small",
            S::LIMINAL_NOT_FOUND => c"not found",
            S::LIMINAL_PANIC => c"internal panic caught at the C boundary",
            S::LIMINAL_CONSUMER_GONE => c"the consumer crashed or left",
            S::LIMINAL_QUEUE_FULL => c"the waiting room is full",
            S::LIMINAL_EXPIRED => c"expired: not delivered by its deadline",
            S::LIMINAL_DROPPED => c"dropped: the oldest waiting message at overflow",
            S::LIMINAL_DRAINING => c"draining: no new dispatches accepted",
            S::LIMINAL_UNSUPPORTED => c"not built into this library",
            S::LIMINAL_STORE_LOCKED => c"the store is held by another live process",
            S::LIMINAL_STORE_FAILED => c"the store failed (see the error text)",
        }
    }

    fn is_retriable(self) -> bool {
        matches!(
            self,
            S::LIMINAL_ROUTING_TIMED_OUT
                | S::LIMINAL_TIMED_OUT
                | S::LIMINAL_QUEUE_FULL
                | S::LIMINAL_EXPIRED
                | S::LIMINAL_DROPPED
        )
    }

    fn is_fatal(self) -> bool {
        matches!(self, S::LIMINAL_SHUT_DOWN | S::LIMINAL_PANIC)
    }
}

fn known(status: i32) -> Option<liminal_status> {
    ALL.iter().copied().find(|known| *known as i32 == status)
}

/// A static, human-readable description of `status` (a `liminal_status`
/// value, taken as an integer so any value is safe: an unknown one gives
/// "unknown status"). Never NULL.
#[no_mangle]
pub extern "C" fn liminal_status_str(status: i32) -> *const c_char {
    let fallback = c"unknown status".as_ptr();
    boundary::guard_value(fallback, || {
        known(status).map_or(fallback, |known| known.description().as_ptr())
    })
}

/// The status's enumerator name, e.g. "LIMINAL_NO_CONSUMER_AVAILABLE"
/// ("LIMINAL_UNKNOWN_STATUS" for an unknown value). Static, never NULL.
#[no_mangle]
pub extern "C" fn liminal_status_name(status: i32) -> *const c_char {
    let fallback = c"LIMINAL_UNKNOWN_STATUS".as_ptr();
    boundary::guard_value(fallback, || {
        known(status).map_or(fallback, |known| known.name().as_ptr())
    })
}

/// Whether trying again later may succeed: `LIMINAL_QUEUE_FULL`,
/// `LIMINAL_TIMED_OUT`, `LIMINAL_ROUTING_TIMED_OUT`, `LIMINAL_EXPIRED`,
/// `LIMINAL_DROPPED`.
#[no_mangle]
pub extern "C" fn liminal_status_is_retriable(status: i32) -> bool {
    boundary::guard_value(false, || {
        known(status).is_some_and(liminal_status::is_retriable)
    })
}

/// Whether the handle that returned it can no longer be used
/// (`LIMINAL_SHUT_DOWN`, `LIMINAL_PANIC`).
#[no_mangle]
pub extern "C" fn liminal_status_is_fatal(status: i32) -> bool {
    boundary::guard_value(false, || {
        known(status).is_some_and(liminal_status::is_fatal)
    })
}

/// The detail of the last failure on the calling thread ("" if none). The
/// pointer stays valid until the next failing call on this thread.
#[no_mangle]
pub extern "C" fn liminal_last_error() -> *const c_char {
    boundary::guard_value(c"".as_ptr(), || {
        LAST_ERROR.with(|slot| slot.borrow().as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::ffi::CStr;

    fn all_errors() -> Vec<Error> {
        let dispatch = |error| {
            Error::Dispatch(Box::new(crate::DispatchFailure {
                error,
                trail: crate::Trail::default(),
            }))
        };
        vec![
            Error::InvalidArgument(String::new()),
            Error::DuplicateConsumer(String::new()),
            Error::UnknownConsumer(String::new()),
            Error::ConsumerGone(String::new()),
            Error::StaleDelivery(1),
            Error::ShutDown,
            Error::Draining,
            Error::QueueFull,
            Error::TimedOut,
            Error::WouldDeadlock(String::new()),
            Error::SpawnFailed(String::new()),
            dispatch(DispatchError::NoConsumerAvailable),
            dispatch(DispatchError::UnknownConsumerSelected(String::new())),
            dispatch(DispatchError::Routing(RoutingError::Crashed(1))),
            dispatch(DispatchError::Routing(RoutingError::TimedOut(1))),
            dispatch(DispatchError::AttemptsExhausted(3)),
            dispatch(DispatchError::Expired),
            dispatch(DispatchError::Dropped),
            dispatch(DispatchError::Conversation(String::new())),
        ]
    }

    #[test]
    fn every_status_has_a_distinct_name_and_a_description() {
        let mut names = HashSet::new();
        for (index, status) in ALL.iter().enumerate() {
            assert_eq!(*status as usize, index, "numbered in order");
            // SAFETY: both functions return static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(liminal_status_name(*status as i32)) };
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(liminal_status_str(*status as i32)) };
            assert!(name.to_str().unwrap().starts_with("LIMINAL_"));
            assert!(!text.to_bytes().is_empty());
            assert!(names.insert(name.to_owned()));
        }
    }

    #[test]
    fn every_core_error_maps_to_a_distinct_status() {
        let mut seen = HashSet::new();
        for error in all_errors() {
            let status = liminal_status::from_error(&error);
            assert_ne!(status, liminal_status::LIMINAL_OK);
            assert!(seen.insert(status), "{error:?} shares {status:?}");
        }
        // The same condition in two places shares a status: a spawn failure
        // (routing or API), a timeout (a wait, or the blocking dispatch's),
        // shutdown (API call, or a dispatch completed by it).
        assert_eq!(
            liminal_status::from_dispatch(&DispatchError::Routing(RoutingError::SpawnFailed(
                String::new()
            ))),
            liminal_status::LIMINAL_SPAWN_FAILED
        );
        assert_eq!(
            liminal_status::from_dispatch(&DispatchError::ShutDown),
            liminal_status::LIMINAL_SHUT_DOWN
        );
        assert_eq!(
            liminal_status::from_dispatch(&DispatchError::TimedOut),
            liminal_status::LIMINAL_TIMED_OUT
        );
    }
}
