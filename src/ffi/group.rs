//! `liminal_group`: consumer groups, snapshots, dead letters, hot deploy.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use crate::ffi::boundary::{self, borrow, guard, into_handle, out_ptr, take_handle, UserData};
use crate::ffi::dispatch::liminal_outcome;
use crate::ffi::error::liminal_status;
use crate::ffi::message::liminal_message;
use crate::ffi::routing::{liminal_consumer_view, liminal_free_fn, liminal_routing, ViewTable};
use crate::ffi::runtime::liminal_runtime;
use crate::group::{Group, GroupOptions};

/// A consumer group. Thread-safe.
pub struct liminal_group {
    pub(crate) group: Group,
}

/// A point-in-time copy of a group's consumers. Immutable.
pub struct liminal_snapshot {
    table: ViewTable,
}

/// A dead-letter callback: a dispatch ended without a delivery (attempts
/// exhausted, no consumer available, routing failed; not shutdown).
///
/// | contract | |
/// |---|---|
/// | thread | whichever library thread (or dispatching thread) ended the dispatch |
/// | overlap | calls may overlap on different threads |
/// | may call | any non-blocking function, `liminal_group_dispatch_async` included; blocking calls return `LIMINAL_WOULD_DEADLOCK` |
/// | may block | no: keep it short |
///
/// `message` and `trail` are borrowed for the call; `trail` carries the
/// status and the consumers that crashed holding the message.
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
    /// Optional destructor for `user`.
    pub free_user: liminal_free_fn,
}

/// Create a group on `runtime`, routed by `routing` (borrowed; the group
/// keeps its own reference). `max_attempts` 0 means the default (3);
/// `handoff_window_ms` 0 means acknowledgement mode, otherwise the reference
/// hand-off-window mode. `*out` owns the group.
#[no_mangle]
pub extern "C" fn liminal_group_new(
    runtime: *const liminal_runtime,
    routing: *const liminal_routing,
    max_attempts: u32,
    handoff_window_ms: u64,
    out: *mut *mut liminal_group,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handles / writable output.
        let runtime = unsafe { borrow(runtime, "runtime") }?;
        // SAFETY: as above.
        let routing = unsafe { borrow(routing, "routing") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        let mut options = GroupOptions::default();
        if max_attempts != 0 {
            options.max_attempts = max_attempts;
        }
        if handoff_window_ms != 0 {
            options.handoff_window = Some(Duration::from_millis(handoff_window_ms));
        }
        let group = runtime.runtime.group(routing.function.clone(), options)?;
        *out = into_handle(liminal_group { group });
        Ok(())
    })
}

/// Close and free: every consumer leaves (deliveries they held are
/// re-routed, and with no consumer left fail `LIMINAL_NO_CONSUMER_AVAILABLE`),
/// then the handle is released. Consumer handles stay valid to free. NULL is
/// accepted. Safe from any callback.
#[no_mangle]
pub extern "C" fn liminal_group_free(group: *mut liminal_group) {
    boundary::guard_void((), || {
        // SAFETY: NULL or a live handle given up by the caller.
        if let Some(group) = unsafe { take_handle(group) } {
            group.group.close();
        }
    });
}

/// Hot-deploy `routing` (borrowed): evaluations already running keep the
/// version they started with; the next one uses this.
#[no_mangle]
pub extern "C" fn liminal_group_deploy(
    group: *const liminal_group,
    routing: *const liminal_routing,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handles.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        let routing = unsafe { borrow(routing, "routing") }?;
        drop(group.group.deploy(routing.function.clone()));
        Ok(())
    })
}

/// The content hash of the routing function in use (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_group_routing_hash(group: *const liminal_group) -> u64 {
    boundary::guard_void(0, || {
        // SAFETY: NULL or a live handle.
        unsafe { group.as_ref() }.map_or(0, |g| g.group.routing().hash())
    })
}

/// Number of live consumers.
#[no_mangle]
pub extern "C" fn liminal_group_consumer_count(
    group: *const liminal_group,
    out: *mut usize,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handle / writable output.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        *unsafe { out_ptr(out, "out") }? = group.group.len();
        Ok(())
    })
}

/// Copy the group's consumers (id order) into a snapshot. `*out` owns it.
#[no_mangle]
pub extern "C" fn liminal_group_snapshot(
    group: *const liminal_group,
    out: *mut *mut liminal_snapshot,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handle / writable output.
        let group = unsafe { borrow(group, "group") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        let table = ViewTable::new(&group.group.consumers());
        *out = into_handle(liminal_snapshot { table });
        Ok(())
    })
}

/// Number of consumers in a snapshot (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_snapshot_count(snapshot: *const liminal_snapshot) -> usize {
    boundary::guard_void(0, || {
        // SAFETY: NULL or a live handle.
        unsafe { snapshot.as_ref() }.map_or(0, |s| s.table.views.len())
    })
}

/// Consumer `index` of a snapshot. The view's pointers stay valid until the
/// snapshot is freed. Errors: `LIMINAL_INVALID_ARGUMENT` for an index out of range.
#[no_mangle]
pub extern "C" fn liminal_snapshot_get(
    snapshot: *const liminal_snapshot,
    index: usize,
    out: *mut liminal_consumer_view,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or live handle / writable output.
        let snapshot = unsafe { borrow(snapshot, "snapshot") }?;
        // SAFETY: as above.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = *snapshot
            .table
            .views
            .get(index)
            .ok_or_else(|| boundary::invalid(format!("index {index} out of range")))?;
        Ok(())
    })
}

/// Free a snapshot (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_snapshot_free(snapshot: *mut liminal_snapshot) {
    boundary::guard_void((), || {
        // SAFETY: NULL or a live handle given up by the caller.
        drop(unsafe { take_handle(snapshot) });
    });
}

/// Install the group's dead-letter callback (a NULL `function` clears it).
/// The library owns `callback` from this call on, even when it fails; a
/// replaced callback's `free_user` runs once its last call returned.
#[no_mangle]
pub extern "C" fn liminal_group_set_dead_letter(
    group: *const liminal_group,
    callback: liminal_dead_letter_callback,
) -> liminal_status {
    let user = UserData::new(callback.user, callback.free_user);
    guard(move || {
        // SAFETY: NULL or a live handle.
        let group = unsafe { borrow(group, "group") }?;
        let Some(function) = callback.function else {
            group.group.set_dead_letter_handler(None);
            return Ok(());
        };
        group
            .group
            .set_dead_letter_handler(Some(Arc::new(move |message, failure| {
                let handle = liminal_message {
                    message: Arc::clone(message),
                };
                let trail = liminal_outcome::from_failure(failure);
                // SAFETY: the host's callback with borrowed, live arguments.
                unsafe { function(user.ptr(), &handle, &trail) };
            })));
        Ok(())
    })
}
