//! `liminal_consumer` and its options: registration, updates, crash and
//! leave, fault injection, pull mode.

use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

use crate::base::scope::in_callback;
use crate::consumer::{Consumer, ConsumerSpec, CrashReport, Delivery, DeliveryHandler, Verdict};
use crate::ffi::boundary::{
    self, borrow_mut, free_handle, guard, new_handle, out_ptr, read, utf8, utf8_array, with,
    Failure, Handle,
};
use crate::ffi::callbacks::{
    liminal_crash_callback, liminal_delivery_callback, liminal_verdict, UserData,
    LIMINAL_VERDICT_ACK, LIMINAL_VERDICT_CRASH, LIMINAL_VERDICT_DEFER, LIMINAL_VERDICT_RELEASE,
};
use crate::ffi::delivery::liminal_delivery;
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;

/// A handle to a registered consumer. Thread-safe. Freeing the handle does
/// not remove the consumer (use `liminal_consumer_leave`); several handles
/// may stand for one consumer (`liminal_group_consumer`).
pub struct liminal_consumer {
    pub(crate) consumer: Consumer,
    id: Arc<CString>,
}

impl Handle for liminal_consumer {
    const NAME: &'static str = "consumer";
}

impl liminal_consumer {
    pub(crate) fn new(consumer: Consumer) -> Self {
        let id = Arc::new(boundary::c_string(consumer.id()));
        Self { consumer, id }
    }
}

/// Options for `liminal_consumer_register`. Not thread-safe: do not modify
/// one from two threads at once. Reusable.
pub struct liminal_consumer_options {
    max_in_flight: u32,
    buffer_depth: u32,
    tags: Vec<String>,
    ack_lease: Option<Duration>,
}

impl Handle for liminal_consumer_options {
    const NAME: &'static str = "options";
}

#[cfg_attr(not(feature = "remote"), allow(dead_code))]
impl liminal_consumer_options {
    pub(crate) fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    pub(crate) fn tags(&self) -> &[String] {
        &self.tags
    }
}

impl Default for liminal_consumer_options {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            buffer_depth: 0,
            tags: Vec::new(),
            ack_lease: None,
        }
    }
}

/// Create consumer options holding the defaults: max in flight 64, buffer
/// depth 0, no tags, the group's ack lease. `*out` owns them; free with
/// `liminal_consumer_options_free`.
#[no_mangle]
pub extern "C" fn liminal_consumer_options_new(
    out: *mut *mut liminal_consumer_options,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_consumer_options::default());
        Ok(())
    })
}

/// Free consumer options (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_consumer_options_free(options: *mut liminal_consumer_options) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(options) };
}

fn set_consumer_option(
    options: *mut liminal_consumer_options,
    set: impl FnOnce(&mut liminal_consumer_options) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, not modified concurrently (documented).
        let options = unsafe { borrow_mut(options) }?;
        set(options)
    })
}

/// Most deliveries it may hold at once (default 64, at least 1). Enforced:
/// a slot is reserved atomically with the choice of this consumer.
/// Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_consumer_options_set_max_in_flight(
    options: *mut liminal_consumer_options,
    max_in_flight: u32,
) -> liminal_status {
    set_consumer_option(options, |o| {
        if max_in_flight == 0 {
            return Err(boundary::invalid("max_in_flight: must be at least 1"));
        }
        o.max_in_flight = max_in_flight;
        Ok(())
    })
}

/// The buffer depth routing functions see at first (default 0).
#[no_mangle]
pub extern "C" fn liminal_consumer_options_set_buffer_depth(
    options: *mut liminal_consumer_options,
    buffer_depth: u32,
) -> liminal_status {
    set_consumer_option(options, |o| {
        o.buffer_depth = buffer_depth;
        Ok(())
    })
}

/// Affinity tags: `count` non-empty UTF-8 strings, copied (NULL when 0).
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_consumer_options_set_tags(
    options: *mut liminal_consumer_options,
    tags: *const *const c_char,
    count: usize,
) -> liminal_status {
    set_consumer_option(options, |o| {
        // SAFETY: `count` NUL-terminated strings per the contract.
        let tags = unsafe { utf8_array(tags, count, "tags") }?;
        if tags.iter().any(String::is_empty) {
            return Err(boundary::invalid("tags: a tag is empty"));
        }
        o.tags = tags;
        Ok(())
    })
}

/// This consumer's acknowledgement lease in milliseconds, overriding the
/// group's (default 0: the group's).
#[no_mangle]
pub extern "C" fn liminal_consumer_options_set_ack_lease_ms(
    options: *mut liminal_consumer_options,
    lease_ms: u64,
) -> liminal_status {
    set_consumer_option(options, |o| {
        o.ack_lease = boundary::millis_opt(lease_ms);
        Ok(())
    })
}

/// The C delivery callback as a [`DeliveryHandler`]: shared by local
/// consumers and remote workers.
pub(crate) struct CDelivery {
    function: DeliveryFunction,
    user: UserData,
    consumer_id: Arc<CString>,
}

type DeliveryFunction =
    unsafe extern "C" fn(*mut std::ffi::c_void, *mut liminal_delivery) -> liminal_verdict;

impl CDelivery {
    /// Wrap `function` with its user data; `consumer_id` is what
    /// `liminal_delivery_consumer_id` reports.
    pub(crate) fn new(
        function: DeliveryFunction,
        user: UserData,
        consumer_id: Arc<CString>,
    ) -> Self {
        Self {
            function,
            user,
            consumer_id,
        }
    }
}

impl DeliveryHandler for CDelivery {
    fn deliver(&mut self, delivery: &Delivery) -> Verdict {
        let mut handle = liminal_delivery::new(delivery.clone(), Arc::clone(&self.consumer_id));
        // SAFETY: the host's callback, with a delivery valid for the call.
        let verdict = unsafe { (self.function)(self.user.ptr(), &mut handle) };
        match verdict {
            LIMINAL_VERDICT_ACK => Verdict::Ack,
            LIMINAL_VERDICT_DEFER => Verdict::Defer,
            LIMINAL_VERDICT_RELEASE => Verdict::Release(Duration::ZERO),
            LIMINAL_VERDICT_CRASH => {
                Verdict::Crash("delivery callback returned LIMINAL_VERDICT_CRASH".into())
            }
            other => Verdict::Crash(format!(
                "delivery callback returned {other}, which is not a verdict \
                 (LIMINAL_VERDICT_ACK=1, _CRASH=2, _DEFER=3, _RELEASE=4)"
            )),
        }
    }
}

/// Register a consumer in `group` and start its process.
///
/// `id`: non-empty UTF-8, unique in the group. `options` (borrowed; NULL
/// means all defaults). The library owns both callbacks from this call on,
/// even when it fails (their `free_user` then run before this returns).
/// `*out` owns the handle.
///
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_DUPLICATE_CONSUMER`, `LIMINAL_SHUT_DOWN`, `LIMINAL_SPAWN_FAILED`.
#[no_mangle]
pub extern "C" fn liminal_consumer_register(
    group: *const liminal_group,
    id: *const c_char,
    on_delivery: liminal_delivery_callback,
    on_crash: liminal_crash_callback,
    options: *const liminal_consumer_options,
    out: *mut *mut liminal_consumer,
) -> liminal_status {
    let delivery_user = UserData::new(on_delivery.user, on_delivery.free_user);
    let crash_user = UserData::new(on_crash.user, on_crash.free_user);
    with(group, move |group| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        // SAFETY: NUL-terminated per the contract.
        let id = unsafe { utf8(id, "id") }?.to_owned();
        // SAFETY: NULL or a live handle.
        let defaults = liminal_consumer_options::default();
        let options = unsafe { options.as_ref() }.unwrap_or(&defaults);
        let c_id = Arc::new(boundary::c_string(&id));
        let mut spec = match on_delivery.function {
            Some(function) => ConsumerSpec::push(
                id,
                CDelivery::new(function, delivery_user, Arc::clone(&c_id)),
            ),
            None => {
                drop(delivery_user);
                ConsumerSpec::pull(id)
            }
        };
        spec = spec
            .max_in_flight(options.max_in_flight)
            .buffer_depth(options.buffer_depth)
            .tags(options.tags.clone());
        if let Some(lease) = options.ack_lease {
            spec = spec.ack_lease(lease);
        }
        if let Some(function) = on_crash.function {
            spec = spec.on_crash(move |report: &CrashReport| {
                let consumer_id = boundary::c_string(&report.consumer_id);
                let reason = boundary::c_string(&report.reason);
                // SAFETY: the host's callback, with strings valid for the call.
                unsafe {
                    function(
                        crash_user.ptr(),
                        consumer_id.as_ptr(),
                        report.kind.into(),
                        reason.as_ptr(),
                        report.alive,
                    );
                };
            });
        } else {
            drop(crash_user);
        }
        let consumer = group.group.register(spec)?;
        *out = new_handle(liminal_consumer { consumer, id: c_id });
        Ok(())
    })
}

/// Release a consumer handle (NULL is accepted). The consumer itself stays
/// in its group until it leaves, crashes, or the group is freed. Safe from
/// the consumer's own callback.
#[no_mangle]
pub extern "C" fn liminal_consumer_free(consumer: *mut liminal_consumer) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(consumer) };
}

/// The consumer's id (borrowed, valid while the handle lives; NULL for NULL).
#[no_mangle]
pub extern "C" fn liminal_consumer_id(consumer: *const liminal_consumer) -> *const c_char {
    read(consumer, std::ptr::null(), |c| c.id.as_ptr())
}

/// Whether it is alive: registered, not crashed, not left, runtime up
/// (false for NULL).
#[no_mangle]
pub extern "C" fn liminal_consumer_is_alive(consumer: *const liminal_consumer) -> bool {
    read(consumer, false, |c| c.consumer.is_alive())
}

/// Whether it is paused after an expired lease under
/// `LIMINAL_LEASE_QUARANTINE` (it gets nothing new until it answers
/// something; false for NULL).
#[no_mangle]
pub extern "C" fn liminal_consumer_is_paused(consumer: *const liminal_consumer) -> bool {
    read(consumer, false, |c| c.consumer.is_paused())
}

/// Deliveries reserved for or held by it now. Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_in_flight(
    consumer: *const liminal_consumer,
    out: *mut u32,
) -> liminal_status {
    with(consumer, |c| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = c.consumer.in_flight()?;
        Ok(())
    })
}

/// Update the buffer depth routing functions see. Errors:
/// `LIMINAL_CONSUMER_GONE`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_set_buffer_depth(
    consumer: *const liminal_consumer,
    buffer_depth: u32,
) -> liminal_status {
    with(consumer, |c| {
        c.consumer.update(Some(buffer_depth), None)?;
        Ok(())
    })
}

/// Replace the affinity tags (`count` non-empty UTF-8 strings, copied).
/// Waiting messages are looked at again. Errors: `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_CONSUMER_GONE`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_set_tags(
    consumer: *const liminal_consumer,
    tags: *const *const c_char,
    count: usize,
) -> liminal_status {
    with(consumer, |c| {
        // SAFETY: `count` NUL-terminated strings per the contract.
        let tags = unsafe { utf8_array(tags, count, "tags") }?;
        c.consumer.update(None, Some(tags))?;
        Ok(())
    })
}

/// Change its `max_in_flight` (at least 1). Raising it lets waiting messages
/// in at once; lowering it below what it holds takes nothing away. Errors:
/// `LIMINAL_INVALID_ARGUMENT`, `LIMINAL_CONSUMER_GONE`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_set_max_in_flight(
    consumer: *const liminal_consumer,
    max_in_flight: u32,
) -> liminal_status {
    with(consumer, |c| {
        c.consumer.set_max_in_flight(max_in_flight)?;
        Ok(())
    })
}

/// Declare the consumer crashed (a host worker that died, or fault
/// injection): it dies now, on this thread — its crash callback runs here
/// (`LIMINAL_CRASH_DECLARED`, `reason`) — every delivery it held is
/// re-routed at once (even one whose callback is still running: that
/// callback's later answer is fenced off), and its process is killed. Safe
/// from its own callback. Errors: `LIMINAL_CONSUMER_GONE` if it is already
/// gone, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_crash(
    consumer: *const liminal_consumer,
    reason: *const c_char,
) -> liminal_status {
    with(consumer, |c| {
        // SAFETY: NUL-terminated per the contract.
        let reason = unsafe { utf8(reason, "reason") }?;
        c.consumer.crash(reason)?;
        Ok(())
    })
}

/// Fault injection: crash (`LIMINAL_CRASH_INJECTED`) at the next delivery,
/// before the callback sees it. The message it was about to get is re-routed
/// as if never delivered: not flagged redelivered, not counted against it.
/// Errors: `LIMINAL_CONSUMER_GONE`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_crash_at_next_delivery(
    consumer: *const liminal_consumer,
) -> liminal_status {
    with(consumer, |c| {
        c.consumer.crash_at_next_delivery()?;
        Ok(())
    })
}

/// Leave the group now: no new deliveries; deliveries it held are re-routed
/// (flagged redelivered if it had seen them, not counted as crashes); a
/// delivery whose callback is running finishes, and its answer counts. Its
/// crash callback is released without being called. Safe from its own
/// callback. Errors: `LIMINAL_CONSUMER_GONE` if already gone, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_consumer_leave(consumer: *const liminal_consumer) -> liminal_status {
    with(consumer, |c| {
        c.consumer.leave()?;
        Ok(())
    })
}

/// Pull mode: wait up to `timeout_ms` for the next delivery. `*out` owns
/// it: answer with `liminal_delivery_ack`/`_crash`/`_release`, then
/// `liminal_delivery_free`. Errors: `LIMINAL_TIMED_OUT`;
/// `LIMINAL_CONSUMER_GONE` once this consumer crashed or left;
/// `LIMINAL_SHUT_DOWN` once the runtime shut down; `LIMINAL_INVALID_ARGUMENT`
/// for a push-mode consumer; `LIMINAL_WOULD_DEADLOCK` from a callback with a
/// timeout above 0.
#[no_mangle]
pub extern "C" fn liminal_consumer_next_delivery(
    consumer: *const liminal_consumer,
    timeout_ms: u64,
    out: *mut *mut liminal_delivery,
) -> liminal_status {
    with(consumer, |c| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        if in_callback() && timeout_ms > 0 {
            return Err(Failure::new(
                liminal_status::LIMINAL_WOULD_DEADLOCK,
                "waiting for a delivery inside a callback",
            ));
        }
        let delivery = c
            .consumer
            .next_delivery(Duration::from_millis(timeout_ms))?;
        *out = new_handle(liminal_delivery::new(delivery, Arc::clone(&c.id)));
        Ok(())
    })
}
