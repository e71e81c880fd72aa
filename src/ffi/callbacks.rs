//! Every callback type of the C ABI, with its contract, and the ownership of
//! the host's `user` pointers.
//!
//! Every callback is a `{function, user, free_user}` struct. The library
//! owns it from the call that takes it (even when that call fails), runs
//! `free_user(user)` exactly once after the last call of `function`
//! returned, and runs every call and `free_user` inside the callback scope:
//! there, calls that would block a library thread or free what the caller
//! stands on return `LIMINAL_WOULD_DEADLOCK` instead.

use std::ffi::{c_char, c_void};

use crate::base::scope::call_host;
use crate::ffi::delivery::liminal_delivery;
use crate::ffi::error::liminal_status;
use crate::ffi::message::liminal_message;
use crate::ffi::outcome::liminal_outcome;
use crate::ffi::routing::liminal_consumer_view;

/// Destructor of a callback's `user` pointer; runs exactly once, after the
/// last call of its callback returned (at once, before the call returns, if
/// the call that took the callback failed). It runs inside the callback
/// scope: blocking calls there return `LIMINAL_WOULD_DEADLOCK`.
pub type liminal_free_fn = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// A host `user` pointer with its optional destructor, owned by the library.
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
            // SAFETY: the host gave this destructor for this pointer; it
            // runs once, after the last callback returned.
            let _ignored = call_host(|| unsafe { free_user(ptr) });
        }
    }
}

/// A delivery callback's answer: one of `LIMINAL_VERDICT_*`. Verdicts are
/// non-zero: 0 (for example a C callback that fell off its end) or any
/// unknown value is a crash of the consumer, with a reason that names the
/// value — never an accidental acknowledgement. (Python `ctypes`: a callback
/// that raises returns an undefined value, which may happen to be a
/// verdict; catch every exception and return `LIMINAL_VERDICT_CRASH`.)
pub type liminal_verdict = i32;
/// Processed: the dispatch completes as delivered to this consumer.
pub const LIMINAL_VERDICT_ACK: liminal_verdict = 1;
/// This consumer is broken: it dies, and everything it holds is re-routed.
/// This delivery counts against the message (the consumer died handling it).
pub const LIMINAL_VERDICT_CRASH: liminal_verdict = 2;
/// Answer later, from any thread, through a kept copy
/// (`liminal_delivery_keep`, then `liminal_delivery_ack`/`_crash`/
/// `_release`). Also the verdict to return after answering the borrowed
/// delivery directly inside the callback (for example with
/// `liminal_delivery_release` and a delay).
pub const LIMINAL_VERDICT_DEFER: liminal_verdict = 3;
/// Hand the message back without dying: it is routed to another consumer
/// (never this one again) at once. Counts as a failed attempt of the
/// message, not as a crash. For a delay, call `liminal_delivery_release`
/// and return `LIMINAL_VERDICT_DEFER`.
pub const LIMINAL_VERDICT_RELEASE: liminal_verdict = 4;

/// A delivery callback (push mode).
///
/// | contract | |
/// |---|---|
/// | thread | a scheduler worker thread of the runtime (the consumer's process) |
/// | overlap | never for one consumer (deliveries are handed over one at a time); different consumers may run concurrently when the runtime has more than one scheduler thread |
/// | may call | any non-blocking function: answering this or other deliveries, `liminal_consumer_crash`/`_leave`/`_free` on its own consumer (after a leave, this callback's answer still counts; after a crash, this delivery is re-routed), `liminal_group_dispatch_async`, `liminal_group_free` (this callback's answer still counts). Refused with `LIMINAL_WOULD_DEADLOCK`: `liminal_group_dispatch`, `liminal_consumer_next_delivery` with a timeout, `liminal_group_drain`, `liminal_runtime_drain`, `liminal_runtime_shutdown`, `liminal_runtime_free` |
/// | may block | no: it holds a scheduler worker, and the push consumers parked on that worker wait behind it (pull-mode consumers do not). Defer and finish the work elsewhere, or use pull mode |
///
/// `delivery` is borrowed until the callback returns. The runtime's
/// shutdown waits for a running callback, and its answer counts.
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
    /// gone (after a crash, a leave, the group's free or the runtime's
    /// shutdown).
    pub free_user: liminal_free_fn,
}

/// Why a consumer is reported to its crash callback.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum liminal_crash_kind {
    /// Its delivery callback returned `LIMINAL_VERDICT_CRASH` (or an invalid verdict).
    LIMINAL_CRASH_VERDICT = 1,
    /// Its delivery callback panicked (a Rust consumer). C++ consumers of
    /// `liminal.hpp` that throw are reported as `LIMINAL_CRASH_DECLARED`,
    /// with the exception's `what()` as the reason.
    LIMINAL_CRASH_PANICKED = 2,
    /// The host declared it crashed (`liminal_consumer_crash`, `liminal_delivery_crash`).
    LIMINAL_CRASH_DECLARED = 3,
    /// Fault injection (`liminal_consumer_crash_at_next_delivery`).
    LIMINAL_CRASH_INJECTED = 4,
    /// Its process exited without being asked to.
    LIMINAL_CRASH_EXITED = 5,
    /// It did not answer a delivery within the acknowledgement lease
    /// (`alive` tells whether the group's lease policy kept it).
    LIMINAL_CRASH_LEASE_EXPIRED = 6,
    /// A remote worker's liveliness token went while it had been heard from
    /// within 3/4 of its session lease: its process died (`kill -9`
    /// included) or its connection was closed.
    LIMINAL_CRASH_CONNECTION_LOST = 7,
    /// A remote worker fell silent: for 7/8 of its session lease, or for 3/4
    /// of it when its liveliness token went (frozen, or cut off without its
    /// connection closing).
    LIMINAL_CRASH_SESSION_EXPIRED = 8,
}

impl From<crate::CrashKind> for liminal_crash_kind {
    fn from(kind: crate::CrashKind) -> Self {
        use crate::CrashKind as K;
        match kind {
            K::Verdict => Self::LIMINAL_CRASH_VERDICT,
            K::Panicked => Self::LIMINAL_CRASH_PANICKED,
            K::Declared => Self::LIMINAL_CRASH_DECLARED,
            K::Injected => Self::LIMINAL_CRASH_INJECTED,
            K::Exited => Self::LIMINAL_CRASH_EXITED,
            K::LeaseExpired => Self::LIMINAL_CRASH_LEASE_EXPIRED,
            K::ConnectionLost => Self::LIMINAL_CRASH_CONNECTION_LOST,
            K::SessionExpired => Self::LIMINAL_CRASH_SESSION_EXPIRED,
        }
    }
}

/// A crash callback: the consumer failed.
///
/// | contract | |
/// |---|---|
/// | thread | the thread that noticed: the one calling `liminal_consumer_crash` or `liminal_delivery_crash` (always, unless another report of the same consumer is being delivered at that moment: then right after it, on that thread), the consumer's worker (crash verdict, panic, fault injection), the exit watcher (killed), the timer thread (lease expiry) |
/// | overlap | never for one consumer |
/// | may call | any non-blocking function, registering a replacement consumer included; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no |
///
/// Called for each lease expiry the consumer survives (`alive` true) and at
/// most once when it dies (`alive` false); never for a graceful leave.
/// `consumer_id` and `reason` are borrowed for the call. It is not ordered
/// with what the consumer held: those messages may already be re-routed,
/// delivered or dead-lettered, their completions run, before this call
/// (count crashes here or in `liminal_runtime_metrics`, not at completion).
pub type liminal_crash_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        consumer_id: *const c_char,
        kind: liminal_crash_kind,
        reason: *const c_char,
        alive: bool,
    ),
>;

/// `{function, user, free_user}` for crash reports (all may be NULL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_crash_callback {
    /// The callback, or NULL.
    pub function: liminal_crash_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`; runs after the last report (once the
    /// consumer died, left, or the runtime shut down).
    pub free_user: liminal_free_fn,
}

/// A worker's host-lost callback: the host incarnation this worker served
/// is gone (its liveliness token went, a new host incarnation replaced it,
/// or it closed the group). What the worker held from it was dropped:
/// answering those deliveries now returns `LIMINAL_STALE_DELIVERY` (the
/// host re-routes them, or they are gone with it). The worker joins the
/// next host incarnation by itself, as a new worker incarnation.
///
/// | contract | |
/// |---|---|
/// | thread | the worker's delivery thread, after every delivery of the lost host and before any of the next one |
/// | overlap | never (one delivery thread per worker); never during the worker's delivery callback |
/// | may call | any non-blocking function; blocking calls return `LIMINAL_WOULD_DEADLOCK`; not `liminal_worker_free` of its own worker |
/// | may block | briefly: the worker's deliveries and host messages wait behind it |
///
/// `consumer_id` and `reason` are borrowed for the call.
pub type liminal_host_lost_fn = Option<
    unsafe extern "C" fn(user: *mut c_void, consumer_id: *const c_char, reason: *const c_char),
>;

/// `{function, user, free_user}` for a worker's host-lost notices.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_host_lost_callback {
    /// The callback; NULL clears the worker's host-lost callback.
    pub function: liminal_host_lost_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs when the callback is replaced
    /// or cleared, or when the worker is freed (after its last call
    /// returned).
    pub free_user: liminal_free_fn,
}

/// A completion callback: an asynchronous dispatch ended.
///
/// | contract | |
/// |---|---|
/// | thread | the thread that ended it: a scheduler worker (a callback's answer, a crash), the thread answering a kept or pulled delivery, declaring a crash, making a consumer leave or freeing the group, the timer thread (deadline, lease, release delay), the routing thread, the thread calling `liminal_runtime_shutdown`/`_free`, or the dispatching thread itself before `liminal_group_dispatch_async` returns |
/// | overlap | exactly once per accepted dispatch; completions of different dispatches may overlap |
/// | may call | any non-blocking function, `liminal_group_dispatch_async` included; blocking calls (`liminal_runtime_free` and `_shutdown` among them) return `LIMINAL_WOULD_DEADLOCK` |
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

/// A dead-letter callback: a dispatch ended without a delivery (attempts
/// used up, deadline passed, dropped at overflow, blocking timeout, routing
/// failed, group closed; never for shutdown, nor for a durable group's
/// message failed by the group's closing: that one stays in its store).
/// The message is already out of its ordering key when this runs (a key
/// held by `liminal_group_options_set_hold_failed_keys` is held).
///
/// | contract | |
/// |---|---|
/// | thread | the thread that ends the dispatch (see the completion callback), right before its completion |
/// | overlap | calls may overlap on different threads |
/// | may call | any non-blocking function, `liminal_group_dispatch_async` included; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: keep it short |
///
/// `message` and `trail` are borrowed for the call; `trail` carries the
/// status and what happened to the message on its way.
pub type liminal_dead_letter_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        message: *const liminal_message,
        trail: *const liminal_outcome,
    ),
>;

/// `{function, user, free_user}` for dead letters.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_dead_letter_callback {
    /// The callback; NULL clears the group's dead-letter callback.
    pub function: liminal_dead_letter_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs when the callback is replaced
    /// or cleared, when the group is freed, or at the runtime's shutdown,
    /// whichever comes first (after its last call returned).
    pub free_user: liminal_free_fn,
}

/// A durable group's recovered-message callback: a message its store gave
/// back when the group was opened (accepted by an earlier host, not
/// completed) has ended. Its dispatcher died with that host, so this is
/// the only completion it gets; it is called once per recovered message.
///
/// | contract | |
/// |---|---|
/// | thread | the thread that ended it (as for the completion callback) |
/// | overlap | calls may overlap on different threads |
/// | may call | any non-blocking function, `liminal_group_dispatch_async` included; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: it may hold a scheduler worker |
///
/// `message` and `outcome` are borrowed for the call; the outcome's status
/// is `LIMINAL_OK` when a consumer acknowledged it, otherwise why it failed
/// (a failed one also reaches the dead-letter callback, if one is set).
pub type liminal_recovered_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        message: *const liminal_message,
        outcome: *const liminal_outcome,
    ),
>;

/// `{function, user, free_user}` for a durable group's recovered messages.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_recovered_callback {
    /// The callback; NULL: recovered messages end silently (failures still
    /// reach the dead-letter callback).
    pub function: liminal_recovered_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs once the options and every
    /// group created with them let go of it (after its last call).
    pub free_user: liminal_free_fn,
}

/// One record of a host's store: a sequence number and the record's bytes
/// (opaque to the host; borrowed for the call that gives them).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_store_record {
    /// Its sequence number: the key to store it under (0 is the store's
    /// own header record).
    pub seq: u64,
    /// Its bytes.
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

/// A host store's commit: store every record of `puts` (replacing one
/// stored under the same `seq`), then remove every sequence number of
/// `removes` (a number not stored is no error; one put in this same call
/// is then removed), **durably**: once it returns `LIMINAL_OK`, all of it
/// must survive the host's crash (one database transaction with a synced
/// commit is the natural shape). It returns `LIMINAL_OK` (0) or any other
/// value for a failure (an `int32_t`, so any value is safe), which stops
/// the group's store:
/// nothing more is accepted (a retry could not know what a failed commit
/// left), and dispatches waiting for this commit fail with
/// `LIMINAL_STORE_FAILED`.
///
/// | contract | |
/// |---|---|
/// | thread | a thread dispatching to the group (the commit's leader), the store's flusher thread, or the thread freeing the group or shutting the runtime down (the last commit) |
/// | overlap | never two calls of one group's store callbacks at once |
/// | may call | non-blocking functions on other groups; never a dispatch to this group (it would wait for this commit); blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | yes: it is the durable write; dispatchers to this group wait for it |
pub type liminal_store_commit_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        puts: *const liminal_store_record,
        put_count: usize,
        removes: *const u64,
        remove_count: usize,
    ) -> i32,
>;

/// Receives one stored record during a host store's scan (`data` is copied
/// before it returns).
pub type liminal_store_emit_fn =
    Option<unsafe extern "C" fn(context: *mut c_void, seq: u64, data: *const u8, len: usize)>;

/// A host store's scan: call `emit(context, seq, data, len)` once for every
/// stored record, in any order, then return `LIMINAL_OK` (0; any other
/// value fails `liminal_group_new` with `LIMINAL_STORE_FAILED`). Runs on the
/// thread calling `liminal_group_new`, before it returns; same rules as the
/// commit otherwise.
pub type liminal_store_scan_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        emit: liminal_store_emit_fn,
        context: *mut c_void,
    ) -> i32,
>;

/// A host's own store for durable groups: `{commit, scan, user, free_user}`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_store_callbacks {
    /// Commits a batch durably (required).
    pub commit: liminal_store_commit_fn,
    /// Gives back every stored record (required).
    pub scan: liminal_store_scan_fn,
    /// Passed to both; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs once the options and every
    /// group created with them let go of it (after the last call).
    pub free_user: liminal_free_fn,
}

/// The answer of a routing callback: one of `LIMINAL_ROUTE_*`.
pub type liminal_route_result = i32;
/// `*selected_id` names the chosen consumer.
pub const LIMINAL_ROUTE_SELECTED: liminal_route_result = 0;
/// No consumer should take this message now: it waits for the next change
/// (an answer, a join, a tag or capacity change) or its deadline.
pub const LIMINAL_ROUTE_NONE: liminal_route_result = 1;
/// The routing function failed; the dispatch fails with `LIMINAL_ROUTING_CRASHED`.
pub const LIMINAL_ROUTE_FAILED: liminal_route_result = 2;

/// A routing callback.
///
/// | contract | |
/// |---|---|
/// | thread | the runtime's routing thread (never a dispatching thread) |
/// | overlap | calls of one function never overlap: while a call that timed out is still running, evaluations of that function fail at once with `LIMINAL_ROUTING_TIMED_OUT`; different functions never run concurrently either (one routing thread) |
/// | may call | message getters, non-blocking functions (`liminal_consumer_*` updates, `liminal_group_deploy`, `liminal_group_dispatch_async`); blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | up to the runtime's routing timeout; past it the dispatch fails with `LIMINAL_ROUTING_TIMED_OUT` and the call is abandoned on its thread (its `free_user` runs when it returns); a call that returns after the timeout fails its dispatch the same way, whatever it answered |
///
/// `views` holds `count` eligible consumers in id order, with their figures
/// taken just before the call. To select, write a consumer id to
/// `*selected_id` (for example `views[i].id`; it is copied before the
/// borrowed data goes away) and return `LIMINAL_ROUTE_SELECTED`. Capacity is
/// enforced: choosing a consumer whose `in_flight` has reached
/// `max_in_flight` leaves the message waiting, as `LIMINAL_ROUTE_NONE` does.
pub type liminal_route_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        message: *const liminal_message,
        views: *const liminal_consumer_view,
        count: usize,
        selected_id: *mut *const c_char,
    ) -> liminal_route_result,
>;

/// `{function, user, free_user}` for a routing function.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_route_callback {
    /// The callback (required).
    pub function: liminal_route_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs when the last holder of the
    /// function lets go (routing handles freed, groups freed or redeployed)
    /// or at the runtime's shutdown, whichever comes first — except for a
    /// call that timed out and still runs: then when that call returns, on
    /// its thread.
    pub free_user: liminal_free_fn,
}

/// A stats callback: the runtime's statistics as JSON, every interval.
///
/// | contract | |
/// |---|---|
/// | thread | the runtime's timer thread |
/// | overlap | never |
/// | may call | any non-blocking function; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: deadlines and leases of the runtime wait behind it |
///
/// `json` (NUL-terminated, `len` bytes without the NUL) is borrowed for the call.
pub type liminal_stats_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, json: *const c_char, len: usize)>;

/// `{function, user, free_user}` for periodic statistics.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_stats_callback {
    /// The callback; NULL stops the periodic statistics.
    pub function: liminal_stats_fn,
    /// Passed to every call; must be usable from any thread.
    pub user: *mut c_void,
    /// Optional destructor for `user`: runs when the callback is replaced
    /// or stopped, or at the runtime's shutdown (after its last call
    /// returned).
    pub free_user: liminal_free_fn,
}

/// Call a completion with a borrowed outcome (used by the dispatch calls).
pub(crate) fn complete(
    function: unsafe extern "C" fn(*mut c_void, liminal_status, *const liminal_outcome),
    user: &UserData,
    outcome: &liminal_outcome,
) {
    // SAFETY: the host's callback, with a borrowed, live outcome.
    unsafe { function(user.ptr(), outcome.status(), outcome) };
}
