//! `liminal_key_list`: a bounded copy of a group's waiting ordering keys,
//! for a host's admin page.

use std::ffi::{c_char, CString};

use crate::ffi::boundary::{self, free_handle, out_ptr, read, with, Handle};
use crate::ffi::error::liminal_status;
use crate::ffi::group::liminal_group;

/// The most keys one `liminal_group_waiting_keys` call lists.
pub const LIMINAL_KEY_LIST_MAX: usize = 65_536;

/// A point-in-time list of a group's ordering keys that have messages
/// waiting behind their head, deepest first. Immutable and thread-safe.
pub struct liminal_key_list {
    keys: Vec<(CString, usize, u64)>,
    total: usize,
}

impl Handle for liminal_key_list {
    const NAME: &'static str = "list";
}

/// List at most `max_keys` (1 to `LIMINAL_KEY_LIST_MAX`) of the group's
/// ordering keys that have messages waiting behind their head: the deepest
/// first (ties: the key whose head has been its head longest first). `*out`
/// owns the list; free with `liminal_key_list_free`. The group's lock is
/// held only to copy the keys. Errors: `LIMINAL_INVALID_ARGUMENT` (`max_keys`
/// out of range), `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_group_waiting_keys(
    group: *const liminal_group,
    max_keys: usize,
    out: *mut *mut liminal_key_list,
) -> liminal_status {
    with(group, |g| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        if max_keys == 0 || max_keys > LIMINAL_KEY_LIST_MAX {
            return Err(boundary::invalid(format!(
                "max_keys: {max_keys} is not between 1 and {LIMINAL_KEY_LIST_MAX}"
            )));
        }
        if g.group.dispatcher.services.is_shut_down() {
            return Err(crate::Error::ShutDown.into());
        }
        let listed = g.group.waiting_keys(max_keys);
        let keys = listed
            .keys
            .iter()
            .map(|k| {
                let age = u64::try_from(k.head_age.as_nanos()).unwrap_or(u64::MAX);
                (boundary::c_string(&k.key), k.depth, age)
            })
            .collect();
        *out = boundary::new_handle(liminal_key_list {
            keys,
            total: listed.total,
        });
        Ok(())
    })
}

/// Keys in the list (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_key_list_count(list: *const liminal_key_list) -> usize {
    read(list, 0, |l| l.keys.len())
}

/// How many keys were waiting when the list was made, listed or not (0 for
/// NULL).
#[no_mangle]
pub extern "C" fn liminal_key_list_total(list: *const liminal_key_list) -> usize {
    read(list, 0, |l| l.total)
}

/// Key `index` of the list: `*key` (valid until the list is freed), `*depth`
/// (its messages not completed: the head plus those behind it) and
/// `*head_age_ns` (how long its head has been its head); each output is
/// optional. Errors: `LIMINAL_INVALID_ARGUMENT` for an index out of range.
#[no_mangle]
pub extern "C" fn liminal_key_list_get(
    list: *const liminal_key_list,
    index: usize,
    key: *mut *const c_char,
    depth: *mut usize,
    head_age_ns: *mut u64,
) -> liminal_status {
    with(list, |l| {
        let (name, count, age) = l
            .keys
            .get(index)
            .ok_or_else(|| boundary::invalid(format!("index {index} out of range")))?;
        // SAFETY: each output is NULL or writable.
        unsafe {
            if let Some(slot) = key.as_mut() {
                *slot = name.as_ptr();
            }
            if let Some(slot) = depth.as_mut() {
                *slot = *count;
            }
            if let Some(slot) = head_age_ns.as_mut() {
                *slot = *age;
            }
        }
        Ok(())
    })
}

/// Free a key list (NULL is accepted).
#[no_mangle]
pub extern "C" fn liminal_key_list_free(list: *mut liminal_key_list) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(list) };
}
