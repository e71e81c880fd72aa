//! `liminal_consumer`: registration, updates, crash/leave, pull mode, and
//! the delivery handle given to consumers.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

use crate::consumer::{Consumer, ConsumerSpec, Delivery, DeliveryHandler, Verdict};
use crate::ffi::boundary::{
    self, borrow, guard, into_handle, out_ptr, take_handle, utf8, utf8_array, Failure, UserData,
};
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;
use crate::ffi::message::liminal_message;
use crate::ffi::routing::liminal_free_fn;

/// A handle to a registered consumer. Thread-safe. Freeing the handle does
/// not remove the consumer: use `liminal_consumer_leave` for that.
pub struct liminal_consumer {
    consumer: Consumer,
    id: Arc<CString>,
}

/// One delivery (one attempt of one dispatch). Inside a delivery callback it
/// is borrowed for the call; `liminal_delivery_keep` makes an owned copy to
/// answer later from any thread. Thread-safe.
pub struct liminal_delivery {
    delivery: Delivery,
    message: liminal_message,
    consumer_id: Arc<CString>,
}

impl liminal_delivery {
    fn new(delivery: Delivery, consumer_id: Arc<CString>) -> Self {
        let message = liminal_message {
            message: Arc::clone(delivery.message_arc()),
        };
        Self {
            delivery,
            message,
            consumer_id,
        }
    }
}

/// A delivery callback's answer: one of `LIMINAL_VERDICT_*`.
pub type liminal_verdict = i32;
/// Processed: the dispatch completes as delivered to this consumer.
pub const LIMINAL_VERDICT_ACK: liminal_verdict = 0;
/// This consumer is broken: it exits, and everything it holds is re-routed.
pub const LIMINAL_VERDICT_CRASH: liminal_verdict = 1;
/// Answer later with `liminal_delivery_ack`/`_crash` on a kept copy.
pub const LIMINAL_VERDICT_DEFER: liminal_verdict = 2;

/// A delivery callback.
///
/// | contract | |
/// |---|---|
/// | thread | a scheduler worker thread of the runtime |
/// | overlap | never for one consumer (deliveries are handed over one at a time); different consumers may run concurrently |
/// | may call | any non-blocking function: `liminal_delivery_keep`/`_ack`/`_crash`, `liminal_consumer_crash`/`_leave`/`_free` on its own consumer, `liminal_group_dispatch_async`, `liminal_group_free`. Blocking calls (`liminal_group_dispatch`, `liminal_consumer_next_delivery`, `liminal_runtime_shutdown`, `liminal_runtime_free`) return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: it holds a scheduler worker, and the push consumers parked on that worker wait behind it (pull-mode consumers do not). Return `LIMINAL_VERDICT_DEFER` and finish the work elsewhere, or use pull mode |
///
/// `delivery` is valid only until the callback returns. Any other return
/// value than the three verdicts counts as a crash.
pub type liminal_delivery_fn = Option<
    unsafe extern "C" fn(user: *mut c_void, delivery: *mut liminal_delivery) -> liminal_verdict,
>;

/// `{function, user, free_user}` for deliveries. A NULL `function` makes a
/// pull-mode consumer (see `liminal_consumer_next_delivery`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_delivery_callback {
    /// The callback, or NULL for pull mode.
    pub function: liminal_delivery_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs once the consumer's process is
    /// gone (after a crash, leave, group free or runtime shutdown).
    pub free_user: liminal_free_fn,
}

/// A crash callback: the consumer's process exited abnormally.
///
/// | contract | |
/// |---|---|
/// | thread | the runtime's exit-watcher process (a scheduler worker), or the thread that declared the crash |
/// | overlap | called at most once per consumer |
/// | may call | any non-blocking function (registering a replacement consumer included) |
/// | may block | no |
///
/// `consumer_id` and `reason` are borrowed for the call.
pub type liminal_crash_fn = Option<
    unsafe extern "C" fn(user: *mut c_void, consumer_id: *const c_char, reason: *const c_char),
>;

/// `{function, user, free_user}` for the crash notification (all may be NULL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_crash_callback {
    /// The callback, or NULL.
    pub function: liminal_crash_fn,
    /// Passed to the call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`; runs once after the call (or once the
    /// consumer is gone without crashing).
    pub free_user: liminal_free_fn,
}

struct CDelivery {
    function: unsafe extern "C" fn(*mut c_void, *mut liminal_delivery) -> liminal_verdict,
    user: UserData,
    consumer_id: Arc<CString>,
}

impl DeliveryHandler for CDelivery {
    fn deliver(&mut self, delivery: &Delivery) -> Verdict {
        let mut handle = liminal_delivery::new(delivery.clone(), Arc::clone(&self.consumer_id));
        // SAFETY: the host's callback, with a delivery valid for the call.
        let verdict = unsafe { (self.function)(self.user.ptr(), &mut handle) };
        match verdict {
            LIMINAL_VERDICT_ACK => Verdict::Ack,
            LIMINAL_VERDICT_DEFER => Verdict::Defer,
            LIMINAL_VERDICT_CRASH => {
                Verdict::Crash("delivery callback returned LIMINAL_VERDICT_CRASH".into())
            }
            other => Verdict::Crash(format!(
                "delivery callback returned invalid verdict {other}"
            )),
        }
    }
}

/// Register a consumer in `group` and start its process.
///
/// `id`: non-empty UTF-8, unique in the group. `max_in_flight` ≥ 1.
/// `tags`: `tag_count` non-empty UTF-8 strings (NULL when 0). The library
/// owns both callbacks from this call on, even when it fails (their
/// `free_user` then run before this returns). `*out` owns the handle.
///
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_DUPLICATE_CONSUMER`, `LIMINAL_SHUT_DOWN`, `LIMINAL_SPAWN_FAILED`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn liminal_consumer_register(
    group: *const liminal_group,
    id: *const c_char,
    max_in_flight: u32,
    buffer_depth: u32,
    tags: *const *const c_char,
    tag_count: usize,
    on_delivery: liminal_delivery_callback,
    on_crash: liminal_crash_callback,
    out: *mut *mut liminal_consumer,
) -> liminal_status {
    let delivery_user = UserData::new(on_delivery.user, on_delivery.free_user);
    let crash_user = UserData::new(on_crash.user, on_crash.free_user);
    guard(move || {
        // SAFETY: NULL or live handle / writable output.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        // SAFETY: NUL-terminated per the contract.
        let id = unsafe { utf8(id, "id") }?.to_owned();
        // SAFETY: `tag_count` NUL-terminated strings per the contract.
        let tags = unsafe { utf8_array(tags, tag_count, "tags") }?;
        let c_id = Arc::new(boundary::c_string(&id));
        let mut spec = match on_delivery.function {
            Some(function) => ConsumerSpec::push(
                id,
                CDelivery {
                    function,
                    user: delivery_user,
                    consumer_id: Arc::clone(&c_id),
                },
            ),
            None => {
                drop(delivery_user);
                ConsumerSpec::pull(id)
            }
        };
        spec = spec
            .max_in_flight(max_in_flight)
            .buffer_depth(buffer_depth)
            .tags(tags);
        if let Some(function) = on_crash.function {
            spec = spec.on_crash(move |report| {
                let consumer_id = boundary::c_string(&report.consumer_id);
                let reason = boundary::c_string(&report.reason);
                // SAFETY: the host's callback, with strings valid for the call.
                unsafe { function(crash_user.ptr(), consumer_id.as_ptr(), reason.as_ptr()) };
            });
        } else {
            drop(crash_user);
        }
        let consumer = group.group.register(spec)?;
        *out = into_handle(liminal_consumer { consumer, id: c_id });
        Ok(())
    })
}

/// Release a consumer handle (NULL is accepted). The consumer itself stays
/// in its group until it leaves, crashes, or the group is freed. Safe from
/// the consumer's own callback.
#[no_mangle]
pub extern "C" fn liminal_consumer_free(consumer: *mut liminal_consumer) {
    boundary::guard_void((), || {
        // SAFETY: NULL or a live handle given up by the caller.
        drop(unsafe { take_handle(consumer) });
    });
}

fn with_consumer(
    consumer: *const liminal_consumer,
    body: impl FnOnce(&liminal_consumer) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let consumer = unsafe { borrow(consumer, "consumer") }?;
        body(consumer)
    })
}

/// The consumer's id (borrowed, valid while the handle lives; NULL for NULL).
#[no_mangle]
pub extern "C" fn liminal_consumer_id(consumer: *const liminal_consumer) -> *const c_char {
    boundary::guard_void(std::ptr::null(), || {
        // SAFETY: NULL or a live handle.
        unsafe { consumer.as_ref() }.map_or(std::ptr::null(), |c| c.id.as_ptr())
    })
}

/// Whether its process is alive (false for NULL).
#[no_mangle]
pub extern "C" fn liminal_consumer_is_alive(consumer: *const liminal_consumer) -> bool {
    boundary::guard_void(false, || {
        // SAFETY: NULL or a live handle.
        unsafe { consumer.as_ref() }.is_some_and(|c| c.consumer.is_alive())
    })
}

/// Deliveries it holds now.
#[no_mangle]
pub extern "C" fn liminal_consumer_in_flight(
    consumer: *const liminal_consumer,
    out: *mut u32,
) -> liminal_status {
    with_consumer(consumer, |c| {
        // SAFETY: NULL or writable.
        *unsafe { out_ptr(out, "out") }? = c.consumer.state().in_flight;
        Ok(())
    })
}

/// Update the buffer depth routing functions see.
#[no_mangle]
pub extern "C" fn liminal_consumer_set_buffer_depth(
    consumer: *const liminal_consumer,
    buffer_depth: u32,
) -> liminal_status {
    with_consumer(consumer, |c| {
        c.consumer.update(Some(buffer_depth), None)?;
        Ok(())
    })
}

/// Replace the affinity tags (`tag_count` non-empty UTF-8 strings).
#[no_mangle]
pub extern "C" fn liminal_consumer_set_tags(
    consumer: *const liminal_consumer,
    tags: *const *const c_char,
    tag_count: usize,
) -> liminal_status {
    with_consumer(consumer, |c| {
        // SAFETY: `tag_count` NUL-terminated strings per the contract.
        let tags = unsafe { utf8_array(tags, tag_count, "tags") }?;
        c.consumer.update(None, Some(tags))?;
        Ok(())
    })
}

/// Declare the consumer crashed (fault injection, or a host worker that
/// died): its process is killed now, its crash callback gets `reason`
/// (UTF-8), and every delivery it held is re-routed — at once, even while
/// its callback is still running (that callback's later answer is fenced
/// off). Safe from its own callback, which then gives up the delivery in
/// hand. The crash callback runs on the calling thread.
/// Errors: `LIMINAL_UNKNOWN_CONSUMER` if it is already gone.
#[no_mangle]
pub extern "C" fn liminal_consumer_crash(
    consumer: *const liminal_consumer,
    reason: *const c_char,
) -> liminal_status {
    with_consumer(consumer, |c| {
        // SAFETY: NUL-terminated per the contract.
        let reason = unsafe { utf8(reason, "reason") }?;
        c.consumer.crash(reason)?;
        Ok(())
    })
}

/// Fault injection: crash at the next delivery, before the callback sees it.
#[no_mangle]
pub extern "C" fn liminal_consumer_crash_at_next_delivery(
    consumer: *const liminal_consumer,
) -> liminal_status {
    with_consumer(consumer, |c| {
        if !c.consumer.is_alive() {
            return Err(Failure::new(
                liminal_status::LIMINAL_UNKNOWN_CONSUMER,
                "consumer is gone",
            ));
        }
        c.consumer.crash_at_next_delivery();
        Ok(())
    })
}

/// Leave the group now: no new deliveries; deliveries it held are re-routed
/// (flagged redelivered if it had seen them, not counted as crashes). Its
/// crash callback is released without being called. Safe from its own
/// callback, which then gives up the delivery in hand (re-routed; its verdict
/// is ignored). Errors: `LIMINAL_UNKNOWN_CONSUMER` if already gone.
#[no_mangle]
pub extern "C" fn liminal_consumer_leave(consumer: *const liminal_consumer) -> liminal_status {
    with_consumer(consumer, |c| {
        c.consumer.leave()?;
        Ok(())
    })
}

/// Pull mode: wait up to `timeout_ms` for the next delivery. `*out` owns it:
/// answer with `liminal_delivery_ack`/`_crash`, then `liminal_delivery_free`.
/// Errors: `LIMINAL_TIMED_OUT`; `LIMINAL_SHUT_DOWN` once the consumer is
/// gone; `LIMINAL_INVALID_ARGUMENT` for a push-mode consumer;
/// `LIMINAL_WOULD_DEADLOCK` from inside a library callback.
#[no_mangle]
pub extern "C" fn liminal_consumer_next_delivery(
    consumer: *const liminal_consumer,
    timeout_ms: u64,
    out: *mut *mut liminal_delivery,
) -> liminal_status {
    with_consumer(consumer, |c| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        if crate::in_library_thread() && timeout_ms > 0 {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "waiting for a delivery inside a callback",
            ));
        }
        let delivery = c
            .consumer
            .next_delivery(Duration::from_millis(timeout_ms))?;
        *out = into_handle(liminal_delivery::new(delivery, Arc::clone(&c.id)));
        Ok(())
    })
}

fn with_delivery(
    delivery: *const liminal_delivery,
    body: impl FnOnce(&liminal_delivery) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live (borrowed or owned) delivery.
        let delivery = unsafe { borrow(delivery, "delivery") }?;
        body(delivery)
    })
}

/// Make an owned copy of a delivery (for example of the one borrowed in a
/// delivery callback) to answer later from any thread. `*out` owns it.
#[no_mangle]
pub extern "C" fn liminal_delivery_keep(
    delivery: *const liminal_delivery,
    out: *mut *mut liminal_delivery,
) -> liminal_status {
    with_delivery(delivery, |d| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = into_handle(liminal_delivery::new(
            d.delivery.clone(),
            Arc::clone(&d.consumer_id),
        ));
        Ok(())
    })
}

/// Acknowledge: the dispatch completes as delivered to this consumer.
/// Errors: `LIMINAL_STALE_DELIVERY` if this attempt was already completed or
/// re-routed (the acknowledgement is fenced off, never counted twice).
#[no_mangle]
pub extern "C" fn liminal_delivery_ack(delivery: *const liminal_delivery) -> liminal_status {
    with_delivery(delivery, |d| {
        d.delivery.token().ack()?;
        Ok(())
    })
}

/// Declare the consumer holding this delivery crashed, with `reason`: it
/// exits and everything it holds is re-routed. Errors:
/// `LIMINAL_STALE_DELIVERY` if this attempt is no longer held.
#[no_mangle]
pub extern "C" fn liminal_delivery_crash(
    delivery: *const liminal_delivery,
    reason: *const c_char,
) -> liminal_status {
    with_delivery(delivery, |d| {
        // SAFETY: NUL-terminated per the contract.
        let reason = unsafe { utf8(reason, "reason") }?;
        d.delivery.token().crash(reason)?;
        Ok(())
    })
}

/// Free an owned delivery (NULL is accepted). Never free the borrowed one a
/// delivery callback receives. Freeing without answering leaves the attempt
/// held until the consumer crashes or leaves.
#[no_mangle]
pub extern "C" fn liminal_delivery_free(delivery: *mut liminal_delivery) {
    boundary::guard_void((), || {
        // SAFETY: NULL or an owned delivery given up by the caller.
        drop(unsafe { take_handle(delivery) });
    });
}

/// The message (borrowed: valid while the delivery is).
#[no_mangle]
pub extern "C" fn liminal_delivery_message(
    delivery: *const liminal_delivery,
) -> *const liminal_message {
    boundary::guard_void(std::ptr::null(), || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.map_or(std::ptr::null(), |d| &d.message as *const _)
    })
}

/// The dispatch id (the same across attempts; 0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_dispatch_id(delivery: *const liminal_delivery) -> u64 {
    boundary::guard_void(0, || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.map_or(0, |d| d.delivery.dispatch_id())
    })
}

/// This attempt's id, unique per runtime (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_id(delivery: *const liminal_delivery) -> u64 {
    boundary::guard_void(0, || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.map_or(0, |d| d.delivery.delivery_id())
    })
}

/// The attempt number: 1 for the first forward (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_attempt(delivery: *const liminal_delivery) -> u32 {
    boundary::guard_void(0, || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.map_or(0, |d| d.delivery.attempt())
    })
}

/// Whether an earlier attempt may have been processed (be idempotent).
#[no_mangle]
pub extern "C" fn liminal_delivery_redelivered(delivery: *const liminal_delivery) -> bool {
    boundary::guard_void(false, || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.is_some_and(|d| d.delivery.redelivered())
    })
}

/// The receiving consumer's id (borrowed: valid while the delivery is).
#[no_mangle]
pub extern "C" fn liminal_delivery_consumer_id(delivery: *const liminal_delivery) -> *const c_char {
    boundary::guard_void(std::ptr::null(), || {
        // SAFETY: NULL or a live delivery.
        unsafe { delivery.as_ref() }.map_or(std::ptr::null(), |d| d.consumer_id.as_ptr())
    })
}
