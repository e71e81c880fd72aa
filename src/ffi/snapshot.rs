//! `liminal_snapshot`: a point-in-time copy of a group's consumers.

use crate::ffi::boundary::{self, free_handle, out_ptr, read, with, Handle};
use crate::ffi::error::liminal_status;
use crate::ffi::routing::{liminal_consumer_view, ViewTable};

/// A point-in-time copy of a group's consumers, in id order. Immutable and
/// thread-safe.
pub struct liminal_snapshot {
    pub(crate) table: ViewTable,
}

impl Handle for liminal_snapshot {
    const NAME: &'static str = "snapshot";
}

/// Number of consumers in a snapshot (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_snapshot_count(snapshot: *const liminal_snapshot) -> usize {
    read(snapshot, 0, |s| s.table.views.len())
}

/// Consumer `index` of a snapshot. The view's pointers stay valid until the
/// snapshot is freed. Errors: `LIMINAL_INVALID_ARGUMENT` for an index out
/// of range.
#[no_mangle]
pub extern "C" fn liminal_snapshot_get(
    snapshot: *const liminal_snapshot,
    index: usize,
    out: *mut liminal_consumer_view,
) -> liminal_status {
    with(snapshot, |s| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        *out = *s
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
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(snapshot) };
}
