//! `liminal_delivery`: one attempt of one dispatch, as a consumer sees it,
//! and its answers.

use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

use crate::consumer::Delivery;
use crate::ffi::boundary::{free_handle, new_handle, out_ptr, read, utf8, with, Handle};
use crate::ffi::error::liminal_status;
use crate::ffi::message::liminal_message;

/// One delivery (one attempt of one dispatch). Inside a delivery callback it
/// is borrowed for the call; `liminal_delivery_keep` makes an owned copy to
/// answer later from any thread. Thread-safe.
pub struct liminal_delivery {
    delivery: Delivery,
    message: liminal_message,
    consumer_id: Arc<CString>,
}

impl Handle for liminal_delivery {
    const NAME: &'static str = "delivery";
}

impl liminal_delivery {
    pub(crate) fn new(delivery: Delivery, consumer_id: Arc<CString>) -> Self {
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

/// Make an owned copy of a delivery (for example of the one borrowed in a
/// delivery callback) to answer later from any thread. `*out` owns it.
#[no_mangle]
pub extern "C" fn liminal_delivery_keep(
    delivery: *const liminal_delivery,
    out: *mut *mut liminal_delivery,
) -> liminal_status {
    with(delivery, |d| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_delivery::new(
            d.delivery.clone(),
            Arc::clone(&d.consumer_id),
        ));
        Ok(())
    })
}

/// Acknowledge: the dispatch completes as delivered to this consumer.
/// Errors: `LIMINAL_STALE_DELIVERY` if this attempt was already answered,
/// re-routed or withdrawn (the answer is fenced off, never counted twice);
/// `LIMINAL_SHUT_DOWN` after the runtime shut down.
#[no_mangle]
pub extern "C" fn liminal_delivery_ack(delivery: *const liminal_delivery) -> liminal_status {
    with(delivery, |d| {
        d.delivery.token().ack()?;
        Ok(())
    })
}

/// Work on this delivery begins: if its consumer dies before answering it,
/// that counts as dying *handling* it (against the message's maximum
/// attempts), as when a delivery callback is running, not as merely holding
/// it. For pull-mode consumers and kept deliveries, whose work happens
/// outside the callback. On a remote worker it tells the host (`started`);
/// the library's worker already does so before each delivery callback.
/// Errors: `LIMINAL_STALE_DELIVERY` (no longer held), `LIMINAL_SHUT_DOWN`,
/// `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_delivery_started(delivery: *const liminal_delivery) -> liminal_status {
    with(delivery, |d| {
        d.delivery.token().started()?;
        Ok(())
    })
}

/// Declare the consumer holding this delivery crashed, with `reason`: it
/// dies, everything it holds is re-routed, and this delivery counts against
/// the message (it died handling it). Errors: `LIMINAL_STALE_DELIVERY`,
/// `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_delivery_crash(
    delivery: *const liminal_delivery,
    reason: *const c_char,
) -> liminal_status {
    with(delivery, |d| {
        // SAFETY: NUL-terminated per the contract.
        let reason = unsafe { utf8(reason, "reason") }?;
        d.delivery.token().crash(reason)?;
        Ok(())
    })
}

/// Hand the message back without dying: it is routed to another consumer
/// (never this one again) no sooner than `delay_ms` from now. Counts as a
/// failed attempt of the message, not as a crash. Works on the borrowed
/// delivery inside its callback too (then return `LIMINAL_VERDICT_DEFER`).
/// Errors: `LIMINAL_STALE_DELIVERY`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_delivery_release(
    delivery: *const liminal_delivery,
    delay_ms: u64,
) -> liminal_status {
    with(delivery, |d| {
        d.delivery
            .token()
            .release(Duration::from_millis(delay_ms))?;
        Ok(())
    })
}

/// Keep this delivery `lease_ms` more from now (when an acknowledgement
/// lease applies; at least 1). Errors: `LIMINAL_INVALID_ARGUMENT`,
/// `LIMINAL_STALE_DELIVERY` (the lease already expired: the message was
/// taken back), `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_delivery_extend_lease(
    delivery: *const liminal_delivery,
    lease_ms: u64,
) -> liminal_status {
    with(delivery, |d| {
        if lease_ms == 0 {
            return Err(crate::ffi::boundary::invalid(
                "lease_ms: must be at least 1",
            ));
        }
        d.delivery
            .token()
            .extend_lease(Duration::from_millis(lease_ms))?;
        Ok(())
    })
}

/// Free an owned delivery (NULL is accepted). Never free the borrowed one a
/// delivery callback receives. Freeing without answering leaves the attempt
/// held until its consumer crashes or leaves, or its lease or deadline ends.
#[no_mangle]
pub extern "C" fn liminal_delivery_free(delivery: *mut liminal_delivery) {
    // SAFETY: NULL or an owned delivery given up by the caller.
    unsafe { free_handle(delivery) };
}

/// The message (borrowed: valid while the delivery is).
#[no_mangle]
pub extern "C" fn liminal_delivery_message(
    delivery: *const liminal_delivery,
) -> *const liminal_message {
    read(delivery, std::ptr::null(), |d| &d.message as *const _)
}

/// The dispatch id (the same across attempts; 0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_dispatch_id(delivery: *const liminal_delivery) -> u64 {
    read(delivery, 0, |d| d.delivery.dispatch_id())
}

/// This attempt's id (0 for NULL): unique per runtime; on a remote worker,
/// the host's id, unique per host incarnation.
#[no_mangle]
pub extern "C" fn liminal_delivery_id(delivery: *const liminal_delivery) -> u64 {
    read(delivery, 0, |d| d.delivery.delivery_id())
}

/// Copy the message's stable id into `buffer`, snprintf-style (`*len_out`,
/// optional, receives its length): the same for every attempt of the
/// message, whichever consumer or worker incarnation receives it, distinct
/// from the delivery id. On a remote worker it is the id the host gave the
/// message, `<host incarnation>-<dispatch id>`, unique across host
/// restarts (deduplicate on it); for a local delivery it is the dispatch id
/// in decimal, unique in its runtime. A message of a durable group has its
/// store's id instead, locally and on remote workers alike, from its first
/// delivery on: `<store id>-<sequence number>` (16 lowercase hex digits, a
/// dash, decimal), the same after any number of host restarts on that
/// store. Errors: `LIMINAL_BUFFER_TOO_SMALL`, `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_delivery_message_id(
    delivery: *const liminal_delivery,
    buffer: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> liminal_status {
    with(delivery, |d| {
        let id = d.delivery.message_id();
        // SAFETY: buffer/len_out per the contract.
        unsafe { crate::ffi::boundary::copy_out(&id, buffer, capacity, len_out) }
    })
}

/// The attempt number: 1 for the first forward (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_attempt(delivery: *const liminal_delivery) -> u32 {
    read(delivery, 0, |d| d.delivery.attempt())
}

/// Whether an earlier attempt may have been processed (it reached a
/// consumer's callback or pull thread), or the message was recovered from a
/// durable group's store (its old host may have delivered it; the store
/// does not record deliveries): be idempotent (false for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_redelivered(delivery: *const liminal_delivery) -> bool {
    read(delivery, false, |d| d.delivery.redelivered())
}

/// Earlier attempts whose consumer died *handling* this message (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_crashed_handling(delivery: *const liminal_delivery) -> u32 {
    read(delivery, 0, |d| d.delivery.crashed_handling())
}

/// Earlier attempts whose consumer died merely *holding* it (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_delivery_crashed_holding(delivery: *const liminal_delivery) -> u32 {
    read(delivery, 0, |d| d.delivery.crashed_holding())
}

/// The receiving consumer's id (borrowed: valid while the delivery is).
#[no_mangle]
pub extern "C" fn liminal_delivery_consumer_id(delivery: *const liminal_delivery) -> *const c_char {
    read(delivery, std::ptr::null(), |d| d.consumer_id.as_ptr())
}
