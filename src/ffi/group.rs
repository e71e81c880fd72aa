//! `liminal_group` and its options: consumer groups, their waiting room,
//! dead letters, hot deployment, lookup, drain.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::{GroupOptions, Overflow};
use crate::ffi::boundary::{
    self, borrow_mut, free_handle, guard, new_handle, out_ptr, read, utf8, with, Failure, Handle,
};
use crate::ffi::callbacks::{
    liminal_dead_letter_callback, liminal_recovered_callback, liminal_store_callbacks, UserData,
};
use crate::ffi::consumer::liminal_consumer;
use crate::ffi::error::liminal_status;
use crate::ffi::message::liminal_message;
use crate::ffi::outcome::liminal_outcome;
use crate::ffi::routing::{liminal_routing, ViewTable};
use crate::ffi::runtime::liminal_runtime;
use crate::ffi::snapshot::liminal_snapshot;
use crate::ffi::store::CallbackStore;
use crate::group::Group;
use crate::{LeasePolicy, RecoveredHandler, StoreOptions, SyncPolicy};
use std::ffi::c_void;

/// A consumer group. Thread-safe.
pub struct liminal_group {
    pub(crate) group: Group,
}

impl Handle for liminal_group {
    const NAME: &'static str = "group";
}

/// Options for `liminal_group_new`. Not thread-safe: do not modify one from
/// two threads at once. Reusable: a group copies what it needs.
pub struct liminal_group_options {
    options: GroupOptions,
    /// A durable group's store, when set.
    store: Option<StoreOptions>,
    /// A durable group's recovered-message callback.
    recovered: Option<RecoveredCallback>,
    /// A durable group's store in the host's hands (instead of `store`).
    host_store: Option<CallbackStore>,
}

/// Where a durable group's messages live.
enum Durable {
    Embedded(StoreOptions),
    Host(CallbackStore),
}

/// The host's recovered-message callback, shared by the options and every
/// group created with them.
#[derive(Clone)]
struct RecoveredCallback {
    function: unsafe extern "C" fn(*mut c_void, *const liminal_message, *const liminal_outcome),
    user: Arc<UserData>,
}

impl Handle for liminal_group_options {
    const NAME: &'static str = "options";
}

/// What a dispatch does when its group's waiting room is full.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum liminal_overflow {
    /// Refuse the new dispatch at once with `LIMINAL_QUEUE_FULL` (retriable). The default.
    LIMINAL_OVERFLOW_REJECT = 1,
    /// Block the dispatching thread until there is room, up to a timeout,
    /// then `LIMINAL_QUEUE_FULL`. Inside a callback it behaves as reject.
    LIMINAL_OVERFLOW_BLOCK = 2,
    /// Accept the new dispatch; the oldest waiting message fails with
    /// `LIMINAL_DROPPED` (and goes to the dead-letter callback).
    LIMINAL_OVERFLOW_DROP_OLDEST = 3,
}

/// What happens to a consumer that lets an acknowledgement lease expire.
/// Either way its delivery is taken back and routed to another consumer.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum liminal_lease_policy {
    /// It is declared crashed: everything it holds is re-routed. The default.
    LIMINAL_LEASE_CRASH = 1,
    /// It is kept, but given nothing new until it answers something.
    LIMINAL_LEASE_QUARANTINE = 2,
}

/// Create group options holding the defaults: name `group-<n>`, 3 failed
/// attempts, holding crashes not counted, no auto-acknowledgement, a
/// waiting room of 65,536 with overflow reject, no deadline, no ack lease,
/// lease policy crash, not durable (no store). `*out` owns them; free with `liminal_group_options_free`.
#[no_mangle]
pub extern "C" fn liminal_group_options_new(
    out: *mut *mut liminal_group_options,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = new_handle(liminal_group_options {
            options: GroupOptions::default(),
            store: None,
            recovered: None,
            host_store: None,
        });
        Ok(())
    })
}

/// Free group options (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_group_options_free(options: *mut liminal_group_options) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(options) };
}

fn set_group_option(
    options: *mut liminal_group_options,
    set: impl FnOnce(&mut GroupOptions) -> Result<(), Failure>,
) -> liminal_status {
    set_options(options, |o| set(&mut o.options))
}

fn set_options(
    options: *mut liminal_group_options,
    set: impl FnOnce(&mut liminal_group_options) -> Result<(), Failure>,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or a live handle, not modified concurrently (documented).
        let options = unsafe { borrow_mut(options) }?;
        set(options)
    })
}

/// Make groups created with these options **durable**, keeping their
/// messages in the store at the directory `path` (UTF-8, copied; created
/// if missing; NULL makes them non-durable again).
///
/// A dispatch to a durable group returns `LIMINAL_OK` only once its
/// message is on stable storage: written and `fdatasync`ed (dispatches
/// arriving while a sync runs share the next one). The dispatching thread
/// waits for that, `liminal_group_dispatch_async` included (so several
/// dispatching threads, not one, give group commit its batches). A full
/// waiting room refuses before anything is written. What ends a message
/// (acknowledged, dead-lettered, expired, dropped, timed out) is recorded
/// too, without waiting for a sync: a crash before the next sync delivers
/// that message again (a duplicate, never a loss). A message failed only
/// because its host is going away (`LIMINAL_SHUT_DOWN`, or the group freed:
/// `LIMINAL_NO_CONSUMER_AVAILABLE`) stays in the store: its completion (or
/// recovered callback) still runs with that status, for this host is done
/// with it, but it is not a dead letter (the dead-letter callback is not
/// called) and the next opening brings it back.
///
/// `liminal_group_new` then opens the store and brings back every message
/// an earlier host accepted and did not complete, in acceptance order,
/// with its attempt and crash counts and its absolute deadline; they wait
/// for consumers like new messages, count as redelivered, and end in the
/// recovered-message callback (`liminal_group_options_set_recovered`).
/// Delivery is at least once: a message being handled when its host died
/// is delivered again, with the same `liminal_delivery_message_id`
/// (`<store id>-<sequence number>`), for consumers to deduplicate.
///
/// `liminal_group_new` fails with `LIMINAL_STORE_LOCKED` while another
/// group or process holds the store (freeing the group, or the runtime's
/// shutdown, lets it go; so does the holder's death, however it dies), and
/// with `LIMINAL_STORE_FAILED` when it cannot be created or read or was
/// written by a newer liminal. A damaged store (a torn last write, a
/// flipped byte) opens with every intact record; what was left out is in
/// the statistics (`liminal.store.dropped_*`). After a failed write or
/// sync the store accepts nothing more (dispatches fail with
/// `LIMINAL_STORE_FAILED`): the kernel may have dropped the unwritten data,
/// so the host must reopen the group to know what is stored.
///
/// Recovered messages keep the counts of their failed attempts (crashes,
/// releases, lease expiries: what counts toward the group's max attempts);
/// the attempt that was out when the host died is not one of them (the
/// host died, not the consumer), so `liminal_delivery_attempt` may start
/// again from the last recorded failure.
///
/// Errors: `LIMINAL_NULL_ARGUMENT` (NULL options), `LIMINAL_INVALID_ARGUMENT`
/// for an empty path.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_store(
    options: *mut liminal_group_options,
    path: *const c_char,
) -> liminal_status {
    set_options(options, |o| {
        // SAFETY: NULL or NUL-terminated.
        let path = unsafe { boundary::utf8_opt(path, "path") }?;
        o.store = match path {
            None => None,
            Some("") => return Err(boundary::invalid("path: must not be empty")),
            Some(path) => {
                let sync = o.store.as_ref().map(|s| s.sync).unwrap_or_default();
                let mut store = StoreOptions::new(path);
                store.sync = sync;
                o.host_store = None;
                Some(store)
            }
        };
        Ok(())
    })
}

/// Make groups created with these options **durable** on the host's own
/// store (its SQLite, Postgres or log) instead of the embedded one
/// (`liminal_group_options_set_store`, whose promises all hold, except
/// those of the embedded store's files: its lock, its damage report).
/// The library keeps one opaque, checked record per accepted message,
/// keyed by a sequence number; `commit` stores and removes them in
/// batches, durably, and `scan` gives them back when `liminal_group_new`
/// opens the store (see `liminal_store_commit_fn`, `liminal_store_scan_fn`).
/// A record the library finds damaged on scan is left out and counted
/// (`liminal.store.dropped_damaged`). The sync interval does not apply:
/// the host's commit is durable when it returns.
///
/// Only one live group may use one store: the host keeps that promise
/// (the library cannot see its database's locks). The options own
/// `callbacks` from this call on: its `free_user` runs once the options and
/// every group created with them are freed, or before this returns when
/// the call fails. Replaces a store set with
/// `liminal_group_options_set_store`.
///
/// Errors: `LIMINAL_NULL_ARGUMENT` (NULL options, a NULL `commit` or
/// `scan`).
#[no_mangle]
pub extern "C" fn liminal_group_options_set_store_callbacks(
    options: *mut liminal_group_options,
    callbacks: liminal_store_callbacks,
) -> liminal_status {
    let user = Arc::new(UserData::new(callbacks.user, callbacks.free_user));
    set_options(options, move |o| {
        let store = CallbackStore::new(callbacks, user)
            .ok_or_else(|| boundary::null("callbacks.commit and callbacks.scan"))?;
        o.store = None;
        o.host_store = Some(store);
        Ok(())
    })
}

/// A durable group's sync policy: 0 (the default) syncs every group commit
/// before any dispatch in it returns. A positive `interval_ms` lets a
/// dispatch return once its message is written to the operating system
/// (it survives the host process being killed) and syncs every
/// `interval_ms`: an operating-system crash or power loss may then lose
/// what was accepted in the last interval. Applies to the store set with
/// `liminal_group_options_set_store` (set that first).
/// Errors: `LIMINAL_INVALID_ARGUMENT` when no store is set.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_store_sync_interval_ms(
    options: *mut liminal_group_options,
    interval_ms: u32,
) -> liminal_status {
    set_options(options, |o| {
        let Some(store) = o.store.as_mut() else {
            return Err(boundary::invalid(
                "no store set: call liminal_group_options_set_store first",
            ));
        };
        store.sync = match interval_ms {
            0 => SyncPolicy::EveryCommit,
            ms => SyncPolicy::Interval(Duration::from_millis(u64::from(ms))),
        };
        Ok(())
    })
}

/// The callback that receives the end of every message a durable group's
/// store gives back when the group is created (see
/// `liminal_recovered_fn`; a NULL `function` clears it). The options own
/// `callback` from this call on: its `free_user` runs once the options and
/// every group created with them are freed, or before this returns when
/// the call fails (or `function` is NULL).
/// Set it before `liminal_group_new`: recovered messages may end (a
/// deadline already passed) before `liminal_group_new` returns.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_recovered(
    options: *mut liminal_group_options,
    callback: liminal_recovered_callback,
) -> liminal_status {
    let user = Arc::new(UserData::new(callback.user, callback.free_user));
    set_options(options, move |o| {
        o.recovered = callback
            .function
            .map(|function| RecoveredCallback { function, user });
        Ok(())
    })
}

/// The group's name in statistics (non-empty UTF-8, copied; default
/// `group-<n>`). Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_name(
    options: *mut liminal_group_options,
    name: *const c_char,
) -> liminal_status {
    set_group_option(options, |o| {
        // SAFETY: NULL or NUL-terminated.
        let name = unsafe { utf8(name, "name") }?;
        if name.is_empty() {
            return Err(boundary::invalid("name: must not be empty"));
        }
        o.name = Some(name.to_owned());
        Ok(())
    })
}

/// Failed attempts after which a message is dead-lettered with
/// `LIMINAL_ATTEMPTS_EXHAUSTED` (default 3, at least 1). A failed attempt:
/// its consumer died handling it (its callback was running with it, or it
/// answered crash for it), released it, or let its lease expire.
/// Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_max_attempts(
    options: *mut liminal_group_options,
    max_attempts: u32,
) -> liminal_status {
    set_group_option(options, |o| {
        if max_attempts == 0 {
            return Err(boundary::invalid("max_attempts: must be at least 1"));
        }
        o.max_attempts = max_attempts;
        Ok(())
    })
}

/// Also count consumers that died merely *holding* a message (default
/// false: a consumer killed while the message sat in its queue or was
/// deferred is no evidence against the message).
#[no_mangle]
pub extern "C" fn liminal_group_options_set_count_holding_crashes(
    options: *mut liminal_group_options,
    count: bool,
) -> liminal_status {
    set_group_option(options, |o| {
        o.count_holding_crashes = count;
        Ok(())
    })
}

/// Auto-acknowledgement, in milliseconds (default 0: off). For consumers
/// that never acknowledge: a delivery counts as delivered once its consumer
/// stayed alive this long after the forward. What it gives up: a consumer
/// that crashes after the window loses the message silently, and each
/// dispatch takes the window unless acknowledged earlier.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_auto_ack_ms(
    options: *mut liminal_group_options,
    window_ms: u64,
) -> liminal_status {
    set_group_option(options, |o| {
        o.auto_ack_after = boundary::millis_opt(window_ms);
        Ok(())
    })
}

/// How many messages may wait for a consumer at once (default 65,536, at
/// least 1). Re-routes after a failure always get in.
/// Errors: `LIMINAL_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_waiting_room(
    options: *mut liminal_group_options,
    capacity: usize,
) -> liminal_status {
    set_group_option(options, |o| {
        if capacity == 0 {
            return Err(boundary::invalid("waiting_room: must be at least 1"));
        }
        o.waiting_room = capacity;
        Ok(())
    })
}

/// The overflow policy (default `LIMINAL_OVERFLOW_REJECT`) and, for
/// `LIMINAL_OVERFLOW_BLOCK`, how long a dispatch may block (milliseconds,
/// at least 1; ignored otherwise). Errors: `LIMINAL_INVALID_ARGUMENT`
/// (also for a value that is not a `liminal_overflow`).
#[no_mangle]
pub extern "C" fn liminal_group_options_set_overflow(
    options: *mut liminal_group_options,
    policy: i32,
    block_timeout_ms: u64,
) -> liminal_status {
    set_group_option(options, |o| {
        o.overflow = match policy {
            1 => Overflow::Reject,
            2 if block_timeout_ms == 0 => {
                return Err(boundary::invalid(
                    "overflow: block_timeout_ms must be at least 1 for LIMINAL_OVERFLOW_BLOCK",
                ))
            }
            2 => Overflow::Block(Duration::from_millis(block_timeout_ms)),
            3 => Overflow::DropOldest,
            other => {
                return Err(boundary::invalid(format!(
                    "overflow: {other} is not a liminal_overflow"
                )))
            }
        };
        Ok(())
    })
}

/// Default deadline of each message, in milliseconds from acceptance
/// (default 0: none, a message waits as long as it takes). A message not
/// delivered by then fails with `LIMINAL_EXPIRED`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_deadline_ms(
    options: *mut liminal_group_options,
    deadline_ms: u64,
) -> liminal_status {
    set_group_option(options, |o| {
        o.deadline = boundary::millis_opt(deadline_ms);
        Ok(())
    })
}

/// Acknowledgement lease, in milliseconds (default 0: none). A delivery not
/// answered within it is taken back and routed to another consumer; the
/// holder's crash callback is told (`LIMINAL_CRASH_LEASE_EXPIRED`) and the
/// lease policy decides its fate. Holders extend it with
/// `liminal_delivery_extend_lease`; consumers may override it.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_ack_lease_ms(
    options: *mut liminal_group_options,
    lease_ms: u64,
) -> liminal_status {
    set_group_option(options, |o| {
        o.ack_lease = boundary::millis_opt(lease_ms);
        Ok(())
    })
}

/// The lease policy (default `LIMINAL_LEASE_CRASH`). Errors:
/// `LIMINAL_INVALID_ARGUMENT` for a value that is not a `liminal_lease_policy`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_lease_policy(
    options: *mut liminal_group_options,
    policy: i32,
) -> liminal_status {
    set_group_option(options, |o| {
        o.lease_policy = match policy {
            1 => LeasePolicy::Crash,
            2 => LeasePolicy::Quarantine,
            other => {
                return Err(boundary::invalid(format!(
                    "lease_policy: {other} is not a liminal_lease_policy"
                )))
            }
        };
        Ok(())
    })
}

/// Order messages by key: `field` (non-empty UTF-8, copied) names the
/// routing field whose value is each message's **ordering key** (a text
/// field as is, an integer field in decimal); NULL clears it (the default:
/// only keys given with `liminal_dispatch_options_set_key` order messages).
///
/// Messages that share a key are delivered one at a time, in the order the
/// group accepted them; every way a message comes back (crash, lease
/// expiry, release with or without delay, a remote worker's death) puts it
/// back at the front of its key; other keys pass it. When a key's head is
/// dead-lettered (attempts exhausted), expires or is dropped, the key moves
/// on to its next message and the dead letter carries the reason (or waits
/// for the host: `liminal_group_options_set_hold_failed_keys`). A
/// deadline that passes while a message waits behind its key fails that
/// message with `LIMINAL_EXPIRED` and takes it out of its key; the key's
/// order is otherwise unchanged. A head whose deadline passes while a
/// consumer holds it is withdrawn (the holder's later answer is fenced) and
/// the key moves on at once, so give ordered messages deadlines longer than
/// their handling. A message without the field is unordered; one whose
/// field is a double, boolean or null, or whose key is empty or longer than
/// `LIMINAL_ORDERING_KEY_MAX` bytes, is refused by the dispatch with
/// `LIMINAL_INVALID_ARGUMENT`, nothing dispatched.
///
/// Errors: `LIMINAL_INVALID_ARGUMENT` for an empty name; `liminal_group_new`
/// refuses a key field together with auto-acknowledgement
/// (`LIMINAL_INVALID_ARGUMENT`).
#[no_mangle]
pub extern "C" fn liminal_group_options_set_key_field(
    options: *mut liminal_group_options,
    field: *const c_char,
) -> liminal_status {
    set_group_option(options, |o| {
        // SAFETY: NULL or NUL-terminated.
        let field = unsafe { boundary::utf8_opt(field, "field") }?;
        if field == Some("") {
            return Err(boundary::invalid("key_field: must not be empty"));
        }
        o.key_field = field.map(str::to_owned);
        Ok(())
    })
}

/// Hold a key whose head fails (dead-lettered: attempts used up, expired,
/// dropped, timed out): its next message waits, and other keys pass, until
/// the host calls `liminal_group_release_key` (typically from the
/// dead-letter callback, which sees the failed message's key with
/// `liminal_message_ordering_key`, once it has dealt with it). `false` (the
/// default): the key moves on at once and the dead letter carries the
/// reason. Held keys are counted in `liminal.ordering.keys_held`. A held
/// key is not kept across a durable group's restart (its next message
/// leads after it). Errors: `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_hold_failed_keys(
    options: *mut liminal_group_options,
    hold: bool,
) -> liminal_status {
    set_group_option(options, |o| {
        o.hold_failed_keys = hold;
        Ok(())
    })
}

/// Sticky keys: an ordered key's next message goes to the consumer its
/// previous one went to, while that consumer is alive, not excluded (it did
/// not fail this message) and has room; otherwise the routing function
/// chooses (and the key sticks to its choice). Keeps what a consumer
/// cached about a key warm. The library remembers the last consumer of at
/// most 131,072 keys (past that it starts over: a key may lose its
/// preference, never its order). `false` (the default): the routing
/// function chooses every time. Errors: `LIMINAL_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn liminal_group_options_set_sticky_keys(
    options: *mut liminal_group_options,
    sticky: bool,
) -> liminal_status {
    set_group_option(options, |o| {
        o.sticky_keys = sticky;
        Ok(())
    })
}

/// Let `key` (UTF-8, borrowed), held after its head failed
/// (`liminal_group_options_set_hold_failed_keys`), move on: its next
/// message is routed. Safe from any callback. Errors:
/// `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT` (not UTF-8),
/// `LIMINAL_NOT_FOUND` (the key is not held).
#[no_mangle]
pub extern "C" fn liminal_group_release_key(
    group: *const liminal_group,
    key: *const c_char,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or NUL-terminated.
        let key = unsafe { utf8(key, "key") }?;
        if g.group.release_key(key) {
            Ok(())
        } else {
            Err(Failure::new(
                liminal_status::LIMINAL_NOT_FOUND,
                format!("key {key:?} is not held"),
            ))
        }
    })
}

/// Create a group on `runtime`, routed by `routing` (borrowed; the group
/// keeps its own reference), with `options` (borrowed; NULL means all
/// defaults). `*out` owns the group. With a store in `options` the group is
/// durable (`liminal_group_options_set_store`): its store is opened and
/// what it holds is brought back before this returns. Errors:
/// `LIMINAL_NULL_ARGUMENT`, `LIMINAL_SHUT_DOWN`, `LIMINAL_INVALID_ARGUMENT`
/// (options that cannot go together: a key field with
/// auto-acknowledgement), `LIMINAL_STORE_LOCKED`, `LIMINAL_STORE_FAILED`.
#[no_mangle]
pub extern "C" fn liminal_group_new(
    runtime: *const liminal_runtime,
    routing: *const liminal_routing,
    options: *const liminal_group_options,
    out: *mut *mut liminal_group,
) -> liminal_status {
    with(runtime, |runtime| {
        // SAFETY: NULL or live handles / writable output.
        let routing = unsafe { boundary::borrow(routing) }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        // SAFETY: NULL or a live handle.
        let options = unsafe { options.as_ref() };
        let group_options = options.map(|o| o.options.clone()).unwrap_or_default();
        let durable = options.and_then(|o| {
            o.store
                .clone()
                .map(Durable::Embedded)
                .or_else(|| o.host_store.clone().map(Durable::Host))
        });
        let group = match durable {
            None => runtime
                .runtime
                .group(routing.function.clone(), group_options)?,
            Some(store) => {
                let callback = options.and_then(|o| o.recovered.clone());
                let handler: RecoveredHandler = Arc::new(move |message, result| {
                    let Some(callback) = &callback else { return };
                    let handle = liminal_message {
                        message: Arc::clone(message),
                    };
                    let outcome = liminal_outcome::of(result);
                    // SAFETY: the host's callback with borrowed, live arguments.
                    unsafe { (callback.function)(callback.user.ptr(), &handle, &outcome) };
                });
                let function = routing.function.clone();
                match store {
                    Durable::Embedded(store) => {
                        runtime
                            .runtime
                            .durable_group(function, group_options, store, handler)?
                    }
                    Durable::Host(store) => runtime.runtime.durable_group_in(
                        function,
                        group_options,
                        Box::new(store),
                        handler,
                    )?,
                }
            }
        };
        *out = new_handle(liminal_group { group });
        Ok(())
    })
}

/// Close and free: the group accepts nothing more, every consumer leaves,
/// and what waits or is held fails with `LIMINAL_NO_CONSUMER_AVAILABLE` (a
/// delivery whose callback is running finishes, and its answer counts). A
/// durable group's messages that fail so stay in its store for the next
/// opening, and the store is let go.
/// Consumer handles stay valid to free. NULL is accepted. Safe from any
/// callback, its own consumers' included.
#[no_mangle]
pub extern "C" fn liminal_group_free(group: *mut liminal_group) {
    boundary::guard_value((), || {
        // SAFETY: NULL or a live handle.
        if let Some(handle) = unsafe { group.as_ref() } {
            handle.group.close();
        }
        // SAFETY: NULL or a live handle given up by the caller.
        unsafe { free_handle(group) };
    });
}

/// Hot-deploy `routing` (borrowed): evaluations already running keep the
/// version they started with; the next one uses this, and waiting messages
/// are looked at again with it. Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_deploy(
    group: *const liminal_group,
    routing: *const liminal_routing,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or a live handle.
        let routing = unsafe { boundary::borrow(routing) }?;
        drop(g.group.deploy(routing.function.clone())?);
        Ok(())
    })
}

/// The content hash of the routing function in use (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_group_routing_hash(group: *const liminal_group) -> u64 {
    read(group, 0, |g| g.group.routing().hash())
}

fn live(group: &liminal_group) -> Result<&Group, Failure> {
    if group.group.dispatcher.services.is_shut_down() {
        return Err(crate::Error::ShutDown.into());
    }
    Ok(&group.group)
}

/// Number of live consumers. Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_consumer_count(
    group: *const liminal_group,
    out: *mut usize,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = live(g)?.len();
        Ok(())
    })
}

/// Messages waiting for a consumer now (in the waiting room, behind their
/// ordering key's head included, released with a delay, or being routed).
/// Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_waiting(
    group: *const liminal_group,
    out: *mut usize,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = live(g)?.waiting();
        Ok(())
    })
}

/// Accepted dispatches not completed yet. Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_in_flight(
    group: *const liminal_group,
    out: *mut usize,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = live(g)?.in_flight();
        Ok(())
    })
}

/// A new handle to the live consumer `id` (for example to find a consumer
/// again from a callback). `*out` owns it. Errors: `LIMINAL_UNKNOWN_CONSUMER`,
/// `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_consumer(
    group: *const liminal_group,
    id: *const c_char,
    out: *mut *mut liminal_consumer,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NUL-terminated per the contract.
        let id = unsafe { utf8(id, "id") }?;
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        let consumer = live(g)?
            .consumer(id)
            .ok_or_else(|| crate::Error::UnknownConsumer(id.to_owned()))?;
        *out = new_handle(liminal_consumer::new(consumer));
        Ok(())
    })
}

/// Copy the group's consumers (id order) into a snapshot. `*out` owns it.
/// Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_snapshot(
    group: *const liminal_group,
    out: *mut *mut liminal_snapshot,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        let table = ViewTable::new(&live(g)?.consumers());
        *out = new_handle(liminal_snapshot { table });
        Ok(())
    })
}

/// Stop accepting dispatches (new ones get `LIMINAL_DRAINING`), then wait up
/// to `timeout_ms` until every accepted one completed (waiting messages
/// still fail by their deadlines meanwhile). `*left` (optional) receives how
/// many had not completed. Errors: `LIMINAL_SHUT_DOWN`;
/// `LIMINAL_WOULD_DEADLOCK` from a callback.
#[no_mangle]
pub extern "C" fn liminal_group_drain(
    group: *const liminal_group,
    timeout_ms: u64,
    left: *mut usize,
) -> liminal_status {
    with(group, |g| {
        let count = g.group.drain(Duration::from_millis(timeout_ms))?;
        // SAFETY: NULL or writable.
        if let Some(left) = unsafe { left.as_mut() } {
            *left = count;
        }
        Ok(())
    })
}

/// Install the group's dead-letter callback (a NULL `function` clears it).
/// The library owns `callback` from this call on, even when it fails; a
/// replaced callback's `free_user` runs once its last call returned; the runtime's
/// shutdown releases the callback (no dead letter comes after it).
/// Errors: `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_set_dead_letter(
    group: *const liminal_group,
    callback: liminal_dead_letter_callback,
) -> liminal_status {
    let user = UserData::new(callback.user, callback.free_user);
    with(group, move |g| {
        let Some(function) = callback.function else {
            drop(user);
            g.group.set_dead_letter_handler(None)?;
            return Ok(());
        };
        g.group
            .set_dead_letter_handler(Some(Arc::new(move |message, failure| {
                let handle = liminal_message {
                    message: Arc::clone(message),
                };
                let trail = liminal_outcome::failed(failure);
                // SAFETY: the host's callback with borrowed, live arguments.
                unsafe { function(user.ptr(), &handle, &trail) };
            })))?;
        Ok(())
    })
}
