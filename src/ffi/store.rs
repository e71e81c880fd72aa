//! A host's own store for durable groups, through C callbacks
//! (`liminal_store_callbacks`): the [`HostStore`] the group's journal
//! commits to and scans.

use std::ffi::c_void;
use std::sync::Arc;

use crate::base::scope::call_host;
use crate::ffi::callbacks::{liminal_store_callbacks, liminal_store_record, UserData};
use crate::ffi::error::liminal_status;
use crate::store::HostStore;

type CommitFn =
    unsafe extern "C" fn(*mut c_void, *const liminal_store_record, usize, *const u64, usize) -> i32;
type EmitFn = unsafe extern "C" fn(*mut c_void, u64, *const u8, usize);
type ScanFn = unsafe extern "C" fn(*mut c_void, Option<EmitFn>, *mut c_void) -> i32;

/// The host's callbacks, shared by the options and the groups made with
/// them.
#[derive(Clone)]
pub(crate) struct CallbackStore {
    commit: CommitFn,
    scan: ScanFn,
    user: Arc<UserData>,
}

impl CallbackStore {
    /// From the host's struct; `None` when a required callback is NULL.
    pub(crate) fn new(callbacks: liminal_store_callbacks, user: Arc<UserData>) -> Option<Self> {
        Some(Self {
            commit: callbacks.commit?,
            scan: callbacks.scan?,
            user,
        })
    }
}

fn refused(what: &str, status: Option<i32>) -> String {
    match status {
        Some(status) => format!("the host's {what} returned {status}"),
        None => format!("the host's {what} panicked"),
    }
}

const OK: i32 = liminal_status::LIMINAL_OK as i32;

/// What a scan's `emit` fills (its `context`).
struct Emitted<'a> {
    emit: &'a mut dyn FnMut(u64, &[u8]),
}

unsafe extern "C" fn emit_one(context: *mut c_void, seq: u64, data: *const u8, len: usize) {
    // SAFETY: `context` is the `Emitted` this scan passed, live for the
    // scan's duration (the header says `emit` is called during it).
    let Some(emitted) = (unsafe { context.cast::<Emitted<'_>>().as_mut() }) else {
        return;
    };
    let bytes: &[u8] = if data.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the host passes `len` readable bytes at `data` (documented).
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    (emitted.emit)(seq, bytes);
}

impl HostStore for CallbackStore {
    fn commit(&mut self, puts: &[(u64, &[u8])], removes: &[u64]) -> Result<(), String> {
        let records: Vec<liminal_store_record> = puts
            .iter()
            .map(|(seq, bytes)| liminal_store_record {
                seq: *seq,
                data: bytes.as_ptr(),
                len: bytes.len(),
            })
            .collect();
        let commit = self.commit;
        let user = self.user.ptr();
        // SAFETY: the host's callback, with arrays borrowed for the call.
        let status = call_host(|| unsafe {
            commit(
                user,
                records.as_ptr(),
                records.len(),
                removes.as_ptr(),
                removes.len(),
            )
        });
        match status {
            Some(OK) => Ok(()),
            other => Err(refused("commit", other)),
        }
    }

    fn scan(&mut self, emit: &mut dyn FnMut(u64, &[u8])) -> Result<(), String> {
        let mut emitted = Emitted { emit };
        let context: *mut Emitted<'_> = &mut emitted;
        let scan = self.scan;
        let user = self.user.ptr();
        // SAFETY: the host's callback; `context` lives across the call.
        let status = call_host(|| unsafe { scan(user, Some(emit_one), context.cast()) });
        match status {
            Some(OK) => Ok(()),
            other => Err(refused("scan", other)),
        }
    }
}
